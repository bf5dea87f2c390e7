"""The command where real users hit it: column order, Ctrl-C, CSVs as people have them,
output files and folders."""

import csv
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from test_cli import gpubp_cmd, write_csv

import gpubp
from gpubp.persist import describe

IRIS_NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = np.array(["setosa", "versicolor", "virginica"])


def iris_csv(path, order=(0, 1, 2, 3), target_first=False):
    X, y = load_iris(return_X_y=True)
    names = [IRIS_NAMES[i] for i in order]
    rows = [[*map(str, x[list(order)])] for x in X]
    if target_first:
        write_csv(path, ["species", *names], [[s, *r] for s, r in zip(SPECIES[y], rows)])
    else:
        write_csv(path, [*names, "species"], [[*r, s] for s, r in zip(SPECIES[y], rows)])
    return SPECIES[y]


@pytest.fixture(scope="module")
def iris_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("iris")
    iris_csv(folder / "iris.csv")
    args = ["train", "--data", "iris.csv", "--target", "species", "--epochs", "300", "--quiet"]
    out = gpubp_cmd(*args, "--out", "run", cwd=folder)
    assert out.returncode == 0, out.stderr
    return folder


def predictions(out):
    assert out.returncode == 0, out.stderr
    return np.array(out.stdout.split()[1:])


# -- 1. columns by name --------------------------------------------------------------------


def test_predict_matches_columns_by_name_and_leaves_out_the_target(iris_model):
    species = iris_csv(iris_model / "shuffled.csv", order=(3, 0, 2, 1), target_first=True)
    same = predictions(gpubp_cmd("predict", "run/model.safetensors", "iris.csv", cwd=iris_model))
    shuffled = predictions(
        gpubp_cmd("predict", "run/model.safetensors", "shuffled.csv", cwd=iris_model)
    )
    np.testing.assert_array_equal(shuffled, same)
    assert np.mean(shuffled == species) > 0.9
    info = describe(iris_model / "run" / "model.safetensors")
    assert info["feature_names"] == IRIS_NAMES and info["record"]["target"] == "species"


def test_predict_refuses_missing_columns_and_notes_unknown_ones(iris_model):
    X, _ = load_iris(return_X_y=True)
    write_csv(iris_model / "three.csv", IRIS_NAMES[:2] + ["petal_width"], X[:, [0, 1, 3]])
    out = gpubp_cmd("predict", "run/model.safetensors", "three.csv", cwd=iris_model)
    assert out.returncode == 1
    assert "three.csv lacks 1 of the model's 4 columns: 'petal_length'" in out.stderr
    write_csv(iris_model / "extra.csv", ["id", *IRIS_NAMES], np.c_[np.arange(150), X])
    out = gpubp_cmd("predict", "run/model.safetensors", "extra.csv", cwd=iris_model)
    assert len(predictions(out)) == 150
    assert "leaving out columns the model was not trained on: 'id'" in out.stderr


# -- 2. Ctrl-C -----------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_says_so_exits_130_and_keeps_the_earlier_model(tmp_path):
    (tmp_path / "run").mkdir()
    earlier = b"an earlier model"
    (tmp_path / "run" / "model.safetensors").write_bytes(earlier)
    command = [sys.executable, "-m", "gpubp.cli", "train", "--epochs", "100000"]
    command += ["--hidden", "16", "--n-iter-no-change", "100000", "--out", "run", "--force"]
    with subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        err = []
        reader = threading.Thread(target=lambda: err.extend(iter(lambda: proc.stderr.read(1), "")))
        reader.start()
        deadline = time.monotonic() + 120
        # epochs are done: the bar on a terminal, or a log's line (stderr is a pipe here)
        while not re.search(r"(\| *|epochs: )[1-9]\d*/100000", "".join(err)):
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        stdout = proc.stdout.read()
        proc.wait(timeout=120)
        reader.join()
    err = "".join(err)
    assert proc.returncode == 130, err
    epochs = int(re.search(r"interrupted after (\d+) epochs", err).group(1))
    assert epochs >= 1
    assert (
        "run/model.interrupted.safetensors" in err
        and "run/model.safetensors is left as it was" in err
    )
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == earlier
    partial = gpubp.load(tmp_path / "run" / "model.interrupted.safetensors")
    assert partial.n_iter_ == epochs and partial.stop_reason_ == "interrupted"
    assert "stopped   : interrupted" in stdout


# -- 5, 6, 7. CSV files as people have them --------------------------------------------------


def small_table(rng, n=60):
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


@pytest.mark.parametrize(
    "name,encoding,sep,bom,label",
    [
        ("bom.csv", "utf-8", ",", True, "{}"),
        ("semicolon.csv", "utf-8", ";", False, "{}"),
        ("tab.tsv", "utf-8", "\t", False, "{}"),
        ("quoted.csv", "utf-8", ",", False, '"class, {}"'),
        ("floats.csv", "utf-8", ",", False, "{}.0"),
        ("latin.csv", "latin-1", ",", False, "caf\u00e9 {}"),
    ],
)
def test_csv_files_as_people_have_them(tmp_path, name, encoding, sep, bom, label):
    X, y = small_table(np.random.default_rng(0))
    header = sep.join(["\u00e2ge" if encoding == "latin-1" else "a", '"b"', "c", "t"])
    lines = [sep.join([*(f"{v:.6f}" for v in x), label.format(t)]) for x, t in zip(X, y)]
    text = ("\ufeff" if bom else "") + "\n".join([header, *lines]) + "\n"
    (tmp_path / name).write_bytes(text.encode(encoding))
    args = ["train", "--data", name, "--target", "t", "--quiet", "--epochs", "5"]
    if encoding != "utf-8":
        out = gpubp_cmd(*args, cwd=tmp_path)
        assert out.returncode == 1
        assert f"{name} is not utf-8 text" in out.stderr and "--encoding latin-1" in out.stderr
        args += ["--encoding", encoding]
    out = gpubp_cmd(*args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    info = describe(tmp_path / "gpubp-run" / "model.safetensors")
    assert info["feature_names"][1:] == ["b", "c"]
    assert len(info["classes"]) == 2 and info["record"]["task"] == "classification"
    if label == "{}.0":
        assert info["classes"] == [0, 1]


def test_empty_target_cells_are_an_error_naming_the_column_and_lines(tmp_path):
    rows = [[1.5, 2.0, v] for v in [3.25, "", 1.5, 2.75, ""]] + [[0.5, 1.0, 4.0]] * 30
    write_csv(tmp_path / "reg.csv", ["a", "b", "y"], rows)
    out = gpubp_cmd("train", "--data", "reg.csv", "--target", "y", cwd=tmp_path)
    assert out.returncode == 1
    assert "the target column 'y' is empty on line 3, 6" in out.stderr
    write_csv(tmp_path / "cls.csv", ["a", "y"], [[i, "yes" if i % 3 else ""] for i in range(40)])
    out = gpubp_cmd("train", "--data", "cls.csv", "--target", "y", cwd=tmp_path)
    assert out.returncode == 1
    assert "empty on line 2, 5, 8, 11, 14 and 9 more" in out.stderr


def test_no_error_message_lists_hundreds_of_values(tmp_path):
    header = [f"pixel{i}" for i in range(300)]
    write_csv(tmp_path / "wide.csv", header, [list(range(300))] * 3)
    out = gpubp_cmd("train", "--data", "wide.csv", cwd=tmp_path)
    assert out.returncode == 1 and len(out.stderr) < 300, out.stderr
    assert "'pixel9' and 290 more" in out.stderr


def test_target_for_a_bundled_data_set_is_an_error(tmp_path):
    out = gpubp_cmd("train", "--data", "digits", "--target", "label", cwd=tmp_path)
    assert out.returncode == 1
    assert "--target is for a data file; the digits data set has its own columns" in out.stderr


# -- 8. --out checked before training ----------------------------------------------------------


def test_out_is_checked_before_training_and_errors_name_the_users_path(tmp_path):
    (tmp_path / "taken").write_text("a file")
    out = gpubp_cmd("train", "--out", "taken", cwd=tmp_path)
    assert out.returncode == 1 and "--out taken is a file; give a folder" in out.stderr
    assert "epochs" not in out.stderr  # no training started
    out = gpubp_cmd("train", "--out", "taken/run", cwd=tmp_path)
    assert out.returncode == 1 and "cannot create the folder --out taken/run" in out.stderr
    model = gpubp.MLP([2, 2], output="identity")
    with pytest.raises(OSError, match="cannot write .*taken/model.safetensors") as caught:
        gpubp.save(model, tmp_path / "taken" / "model.safetensors")
    assert ".tmp" not in str(caught.value)


# -- 10, 11. model files, predict --out, pipes, info --------------------------------------------


def test_predict_on_a_file_that_is_not_a_model_says_so(tmp_path):
    (tmp_path / "notes.npz").write_text("just some text\n")
    (tmp_path / "x.csv").write_text("a\n1\n")
    out = gpubp_cmd("predict", "notes.npz", "x.csv", cwd=tmp_path)
    assert out.returncode == 1 and "notes.npz: not a gpubp model file" in out.stderr
    assert "no such file" not in out.stderr and "pickle" not in out.stderr


def test_predict_never_overwrites_what_it_reads(iris_model):
    model = iris_model / "run" / "model.safetensors"
    before = model.read_bytes()
    for target in ("run/model.safetensors", "iris.csv", "./run/../run/model.safetensors"):
        out = gpubp_cmd(
            "predict", "run/model.safetensors", "iris.csv", "--out", target, cwd=iris_model
        )
        assert out.returncode == 1 and "being read; give another file" in out.stderr
    assert model.read_bytes() == before


@pytest.mark.slow
def test_predict_into_head_ends_quietly(iris_model):
    X, _ = load_iris(return_X_y=True)
    write_csv(iris_model / "many.csv", IRIS_NAMES, np.tile(X, (400, 1)))
    out = subprocess.run(
        f"{sys.executable} -m gpubp.cli predict run/model.safetensors many.csv | head -n 2",
        shell=True,
        cwd=iris_model,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.stdout.splitlines()[0] == "prediction" and len(out.stdout.splitlines()) == 2
    assert out.stderr == ""


def test_info_describes_a_model_file(iris_model):
    out = gpubp_cmd("info", "run/model.safetensors", cwd=iris_model)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "format    : gpubp-model version 2 (safetensors)" in text
    assert "kind      : MLPClassifier" in text
    assert "layers    : 4 -> 100 -> 3 (relu hidden units, softmax output" in text
    assert "classes   : 'setosa', 'versicolor', 'virginica' (3)" in text
    assert "features  : 'sepal_length', 'sepal_width', 'petal_length', 'petal_width' (4)" in text
    assert re.search(r"target +: species", text) and re.search(r"test_score +: 0\.9", text)
    out = gpubp_cmd("info", "nothing.npz", cwd=iris_model)
    assert out.returncode == 1 and "nothing.npz: no such file" in out.stderr


# -- 9. permissions ------------------------------------------------------------------------------


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_models_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        gpubp.save(gpubp.MLP([2, 2], output="identity"), tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "m.safetensors").st_mode & 0o777 == mode


# -- 12. lbfgs and the loss curve ------------------------------------------------------------------


def test_an_lbfgs_run_leaves_no_stale_loss_curve(tmp_path):
    out = gpubp_cmd("train", "--epochs", "3", "--hidden", "8", "--quiet", cwd=tmp_path)
    assert out.returncode == 0 and (tmp_path / "gpubp-run" / "loss_curve.png").exists()
    args = ["train", "--solver", "lbfgs", "--epochs", "3", "--hidden", "8", "--quiet", "--force"]
    out = gpubp_cmd(*args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert not (tmp_path / "gpubp-run" / "loss_curve.png").exists()
    assert "loss curve: none for lbfgs (removed the earlier gpubp-run/loss_curve.png)" in out.stdout
    assert "time      : " in out.stdout and "3 iterations" in out.stdout


def test_csv_reading_keeps_up_with_a_large_file(tmp_path):
    """Correctness of the pandas path on a file of some size (speed: see the closing note)."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(5000, 20)).round(4)
    with open(tmp_path / "big.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"x{i}" for i in range(20)] + ["t"])
        w.writerows(np.c_[X, X[:, 0] * 3].tolist())
    from gpubp.tables import numbers, read_csv

    table = read_csv(tmp_path / "big.csv")
    np.testing.assert_array_equal(numbers(table.drop(columns="t"), "big.csv"), X)


@pytest.mark.parametrize("dtype", [object, "string[pyarrow]"])
def test_text_labels_hold_one_string_object_per_class(dtype):
    """A target column of text keeps 8 bytes a row (a reference), not a string per row."""
    pytest.importorskip("pyarrow")
    from gpubp.tables import target

    words = pd.Series(["up", "down", "down", "up", "sideways"] * 200, name="t", dtype=dtype)
    y, classify = target(words, "auto", "d.parquet")
    assert classify and y.dtype == object and y.tolist() == words.astype(str).tolist()
    assert len({id(v) for v in y}) == 3


def test_an_out_folder_without_write_permission_is_refused_before_training(
    tmp_path, monkeypatch, capsys
):
    from gpubp import cli
    from gpubp.cli import train

    (tmp_path / "locked").mkdir()
    real_access = os.access
    monkeypatch.setattr(  # root may write anywhere: the permission is what os.access says
        train.os, "access", lambda p, mode: False if "locked" in str(p) else real_access(p, mode)
    )
    assert cli.main(["train", "--out", str(tmp_path / "locked"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"cannot write in the folder --out {tmp_path / 'locked'}: permission denied" in err
    assert list((tmp_path / "locked").iterdir()) == []
