"""The notebooks run top to bottom in a fresh kernel, in full, asserting what their text
claims, and their saved outputs come from scripts/run_notebooks.py. Once, on the default
backend: a notebook is a user's whole session, not a test of a backend."""

import os
from pathlib import Path

import pytest
from conftest import STANDIN

nbformat = pytest.importorskip("nbformat")  # the test extra; the GPU machine lacks it
NotebookClient = pytest.importorskip("nbclient").NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_the_six_notebooks_are_there():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_a_fresh_kernel_and_its_claims_hold(path, monkeypatch, tmp_path):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p != str(STANDIN)))
    book = nbformat.read(path, as_version=4)
    NotebookClient(
        book, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [
        o
        for c in book.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_saved_outputs_come_from_one_run_top_to_bottom(path):
    book = nbformat.read(path, as_version=4)
    assert book.cells[0].cell_type == "markdown" and book.cells[0].source.startswith("# ")
    assert book.metadata["gpubp"]["outputs_from"] == "python scripts/run_notebooks.py"
    code = [c for c in book.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, "every notebook shows at least one plot"
    assert "assert " in code[-1].source, "every notebook checks what its text claims"
    assert book.cells[-2].cell_type == "markdown" and book.cells[-2].source.startswith("## Checks")
    elsewhere = [c.execution_count for c in code[:-1] if "assert" in c.source]
    assert not elsewhere, "a learner reads no assert before the checks at the end"
    assert not [c for c in book.cells if "GPUBP_" in c.source], "no test switch in sight"
