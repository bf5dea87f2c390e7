"""The Python examples of the README and of the documentation's pages run as written and
print what their comments say."""

import math
import pathlib
import re
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# (page, its n-th block): every ```python block of every page
BLOCKS = [
    (page, i, block)
    for page in PAGES
    for i, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S))
]
NUMBER = r"~?-?\d+(?:\.\d+)?(?:e-?\d+)?"


def claimed_numbers(block):
    """{line number: the numbers in the comment of each ``print(...)  # ...`` line}."""
    claims = {}
    for i, line in enumerate(block.splitlines(), start=1):
        code, _, comment = line.partition("  # ")
        if code.lstrip().startswith("print(") and re.search(NUMBER, comment):
            claims[i] = re.findall(NUMBER, comment)
    return claims


def agrees(claim: str, printed: float) -> bool:
    """ "0.98" holds for what rounds to 0.98; "~1e-8" for what is within half a decade."""
    if claim.startswith("~"):
        value = float(claim[1:])
        return abs(math.log10(abs(printed)) - math.log10(abs(value))) <= 0.5
    decimals = len(claim.partition(".")[2]) if "e" not in claim else None
    if decimals is None:
        return printed == pytest.approx(float(claim), rel=0.05)
    return round(printed, decimals) == float(claim)


def test_the_readme_and_the_guide_have_examples_with_claims():
    readme = [b for page, _, b in BLOCKS if page.name == "README.md"]
    assert readme and sum(len(claimed_numbers(b)) for b in readme) >= 2
    guide = {page.name for page, _, _ in BLOCKS if page.parent.name == "guide"}
    assert len(guide) >= 5, guide


def test_the_claim_checker_can_fail():
    assert agrees("0.98", 0.9804) and not agrees("0.98", 0.975)
    assert agrees("~1e-8", 2e-8) and not agrees("~1e-8", 1e-6)


@pytest.mark.parametrize(
    "page, block",
    [(page, block) for page, _, block in BLOCKS],
    ids=[f"{page.relative_to(ROOT)}:{i}" for page, i, _ in BLOCKS],
)
def test_example_prints_what_its_comments_say(page, block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GPUBP_BACKEND", "numpy")
    printed = {}

    def record(*args, **kwargs):
        printed[sys._getframe(1).f_lineno] = " ".join(str(a) for a in args)

    exec(compile(block, str(page), "exec"), {"print": record})
    assert printed
    for line, claims in claimed_numbers(block).items():
        numbers = [float(n) for n in re.findall(r"-?\d+\.\d+(?:e-?\d+)?|\d+e-?\d+", printed[line])]
        for claim in claims:
            assert any(agrees(claim, n) for n in numbers), (line, claim, printed[line])
