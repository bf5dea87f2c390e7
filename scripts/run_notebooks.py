"""Execute the notebooks top to bottom in fresh kernels and save them with their outputs.

    python scripts/run_notebooks.py            # every notebook in notebooks/
    python scripts/run_notebooks.py 03 04      # those whose names start so

Runs them in full (GPUBP_NOTEBOOK_QUICK unset), each in a temporary working folder,
so what a saved page shows is what its code gives. A notebook whose cell fails (an
assertion of one of its claims, say) is not saved, and the command exits with 1.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run(path: Path) -> bool:
    book = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        client = NotebookClient(
            book, timeout=1800, kernel_name="python3", resources={"metadata": {"path": folder}}
        )
        try:
            client.execute()
        except CellExecutionError as exc:
            print(f"{path.name}: a cell failed, not saved\n{exc}", file=sys.stderr)
            return False
    book.metadata["gpubp"] = {"outputs_from": "python scripts/run_notebooks.py"}
    nbformat.write(book, path)
    print(f"{path.name}: ran in {time.perf_counter() - start:.0f} s, saved")
    return True


def main(prefixes: list[str]) -> int:
    for name in ("GPUBP_NOTEBOOK_QUICK", "MPLBACKEND"):  # full cells, inline figures
        os.environ.pop(name, None)
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    if prefixes:
        paths = [p for p in paths if p.name.startswith(tuple(prefixes))]
    if not paths:
        print(f"no notebook in {NOTEBOOKS} starts with {prefixes}", file=sys.stderr)
        return 1
    return 0 if all([run(p) for p in paths]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
