"""The documentation site: it builds with warnings as errors (numpydoc's check that every
parameter of the public API is documented among them), every public name of gpubp has a
page, and every page links only to pages, anchors and files that exist. The README's
links, too, reach files that exist.

The site is built once, by the test that checks it. ``.ci/run`` builds it before the tests
and names the build in ``GPUBP_DOCS_HTML``, which the test then checks instead of building
it again.
"""

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

import gpubp

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


class Links(HTMLParser):
    """The ids a page defines and the local targets it links to."""

    def __init__(self):
        super().__init__()
        self.ids, self.targets = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        for name in ("href", "src"):
            target = attrs.get(name)
            if target and not urlsplit(target).scheme and not target.startswith("//"):
                self.targets.append(target)


def read_page(path: Path) -> Links:
    links = Links()
    links.feed(path.read_text(encoding="utf-8"))
    return links


def broken_links(site: Path) -> list[str]:
    """Every local href or src of the site's pages whose file, or anchor, is not there."""
    # the site's pages; _static holds the theme's templates, not pages
    pages = {path: read_page(path) for path in site.rglob("*.html") if "_static" not in path.parts}
    broken = []
    for page, links in pages.items():
        for target in links.targets:
            parts = urlsplit(target)
            file = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if not file.exists():
                broken.append(f"{page.relative_to(site)}: {target}")
            elif parts.fragment and file.suffix == ".html":
                ids = pages[file].ids if file in pages else read_page(file).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{page.relative_to(site)}: {target} (no such anchor)")
    return broken


def listed_in_api_page() -> set[str]:
    """The names the API page's autosummary tables list."""
    text = (DOCS / "api.md").read_text()
    tables = re.findall(r"\.\. autosummary::\n((?:   .*\n|\n)*)", text)
    return {line.strip() for table in tables for line in table.splitlines()
            if line.strip() and not line.strip().startswith(":")}


def test_the_api_page_lists_every_public_name_and_nothing_else():
    assert listed_in_api_page() == set(gpubp.__all__)


def test_the_readme_links_only_to_files_that_exist():
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    assert len(targets) >= 10
    local = [t for t in targets if not urlsplit(t).scheme]
    missing = [t for t in local if not (ROOT / unquote(urlsplit(t).path)).exists()]
    assert not missing


def test_the_readme_stays_a_few_screens():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250
    assert not re.search(r"\bissue \d+|\(c32\)|pip install \"?gpubp", "\n".join(lines))


def test_the_link_checker_sees_a_missing_page_and_a_missing_anchor(tmp_path):
    (tmp_path / "a.html").write_text('<p id="here"><a href="b.html#there">b</a>'
                                     '<a href="#here">a</a><img src="gone.png"></p>')
    (tmp_path / "b.html").write_text('<p id="elsewhere"><a href="https://example.org">x</a></p>')
    assert broken_links(tmp_path) == ["a.html: b.html#there (no such anchor)",
                                      "a.html: gone.png"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    built = os.environ.get("GPUBP_DOCS_HTML")
    if built:
        return ROOT / built  # relative to the repository, or absolute
    pytest.importorskip("sphinx", reason="the docs extra: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(out / "doctrees"), str(DOCS), str(out / "html")],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return out / "html"


@pytest.mark.slow
def test_the_site_has_a_page_for_every_public_name_and_no_broken_link(site):
    for name in gpubp.__all__:
        page = site / "generated" / f"gpubp.{name}.html"
        text = page.read_text(encoding="utf-8")
        assert f'id="gpubp.{name}"' in text, name
        assert "int([x])" not in text, f"{name}'s page shows int's docstring, not its own"
    for page in ("index", "getting-started", "equations", "guide/index", "notebooks",
                 "notebooks/01_backprop_by_hand", "api", "performance", "testing",
                 "architecture", "performance-history"):
        assert (site / f"{page}.html").exists(), page
    assert not broken_links(site)
