"""Render pages of the built documentation site to PNG with headless Chromium, to look at.

    sphinx-build -W -b html docs docs/_build/html
    python scripts/screenshots.py                     # the home page, MLPClassifier, notebook 01
    python scripts/screenshots.py --out shots performance guide/long-runs

Needs Chromium (Debian: ``apt-get install chromium``; as root it runs with --no-sandbox).
The pages' MathJax is served with them, so math renders without a network. Writes
OUT/<page>.png, a window 1400 pixels wide and --height tall.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["index", "generated/gpubp.MLPClassifier", "notebooks/01_backprop_by_hand"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", default=PAGES, help="pages, without .html")
    parser.add_argument("--site", type=Path, default=ROOT / "docs" / "_build" / "html")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "_build" / "screenshots")
    parser.add_argument("--height", type=int, default=3000)
    args = parser.parse_args(argv)
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("no chromium here: apt-get install chromium", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []
    for page in args.pages:
        html = args.site / f"{page}.html"
        if not html.exists():
            print(f"{html}: no such page (build the site first)", file=sys.stderr)
            return 1
        png = args.out / f"{page.replace('/', '_')}.png"
        subprocess.run(
            [browser, "--headless", *sandbox, "--disable-gpu", "--hide-scrollbars",
             "--virtual-time-budget=5000", f"--window-size=1400,{args.height}",
             f"--screenshot={png}", html.as_uri()],
            check=True, capture_output=True, timeout=120,
        )
        print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
