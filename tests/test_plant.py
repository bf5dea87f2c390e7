"""scripts/plant.py, the audit of planted slips (docs/testing.md): every slip still finds
its place in the code, and planting touches a copy of the tree, never the tree."""

import subprocess
from pathlib import Path

from scripts import plant

ROOT = Path(__file__).resolve().parents[1]


def test_every_slip_finds_its_text_once_and_names_test_files_that_exist():
    assert len(plant.SLIPS) >= 15 and len({s.name for s in plant.SLIPS}) == len(plant.SLIPS)
    for slip in plant.SLIPS:
        assert (ROOT / slip.path).read_text().count(slip.old) == 1, slip.name
        assert slip.old != slip.new
        assert all((ROOT / "tests" / f"{name}.py").exists() for name in slip.tests), slip.name


def test_a_slip_is_planted_in_a_copy_and_the_tree_is_left_alone(tmp_path):
    slip = next(s for s in plant.SLIPS if s.name == "cv-refit")
    before = (ROOT / slip.path).read_text()
    plant.copy_tree(ROOT, tmp_path)
    assert plant.plant(tmp_path, slip)
    planted = (tmp_path / slip.path).read_text()
    assert planted == before.replace(slip.old, slip.new) and planted != before
    assert (ROOT / slip.path).read_text() == before
    assert not plant.plant(tmp_path, slip)  # planted already: its text is gone, it is stale
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert all((tmp_path / name).exists() for name in tracked if (ROOT / name).is_file())
