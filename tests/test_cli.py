"""The gpubp command end to end: in a process of its own once, then through its ``main``
in this process (the same code, without the 1.3 s a process takes to import gpubp)."""

import contextlib
import csv
import io
import os
import subprocess
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

import gpubp
from gpubp.cli import main
from gpubp.cli.train import fold_standardization


def gpubp_process(*args, cwd):
    """``python -m gpubp.cli args`` in ``cwd``: the process's status, stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "gpubp.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _printed(message, category, filename, lineno, file=None, line=None):
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def gpubp_cmd(*args, cwd):
    """``gpubp args`` in ``cwd`` through the command's ``main`` in this process, as
    ``gpubp_process`` would run it: its status (argparse's exits included), stdout and
    stderr, warnings shown on stderr under Python's default filters."""
    out, err = io.StringIO(), io.StringIO()
    before = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            with warnings.catch_warnings():
                warnings.resetwarnings()
                for category in (DeprecationWarning, PendingDeprecationWarning, ResourceWarning):
                    warnings.simplefilter("ignore", category)
                warnings.showwarning = _printed  # not to pytest's record
                try:
                    code = main(list(args))
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(before)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


@pytest.mark.slow
@pytest.mark.parametrize(
    "args", [["train", "--hidden", "0"], ["train", "--data", "nothing.csv"], ["info"]]
)
def test_the_command_in_this_process_answers_as_in_a_process_of_its_own(tmp_path, args):
    """``gpubp_cmd``, which most tests use, against the real command: an argparse error
    (status 2), a gpubp error (status 1), a success."""
    here, there = gpubp_cmd(*args, cwd=tmp_path), gpubp_process(*args, cwd=tmp_path)
    assert (here.returncode, here.stdout, here.stderr) == (
        there.returncode,
        there.stdout,
        there.stderr,
    )


def test_a_warning_of_the_command_reaches_its_stderr_in_this_process_too(tmp_path):
    """Python's filters, not the suite's (which turn warnings into errors): a warning is
    printed, as a process of its own prints it."""
    args = ["train", "--batch-size", "5000", "--epochs", "1", "--hidden", "4", "--quiet"]
    out = gpubp_cmd(*args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stderr == (  # one line in the command's words, not Python's two
        "gpubp train: warning: Got `batch_size` less than 1 or larger than sample size. It is "
        "going to be clipped\n"
    )


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


@pytest.mark.slow
def test_train_digits_then_predict(tmp_path):
    out = gpubp_process("train", "--epochs", "30", "--hidden", "32", "--out", "run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    backend = gpubp.get_backend().name  # numpy, or cupy in the CuPy-path run
    assert f"backend   : {backend}" in out.stdout and "test accuracy" in out.stdout
    accuracy = float(out.stdout.split("test accuracy :")[1].split()[0])
    assert accuracy > 0.9
    assert "epochs" in out.stderr  # the progress bar
    assert (tmp_path / "run" / "model.safetensors").exists()
    assert (tmp_path / "run" / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"

    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    write_csv(
        tmp_path / "digits.csv",
        [f"px{i}" for i in range(64)] + ["label"],
        np.c_[X[:50], y[:50]].astype(int).tolist(),
    )
    out = gpubp_process(
        "predict",
        "run/model.safetensors",
        "digits.csv",
        "--target",
        "label",
        "--out",
        "p.csv",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    rows = list(csv.reader((tmp_path / "p.csv").read_text().splitlines()))
    assert rows[0] == ["prediction"] and len(rows) == 51
    model = gpubp.load(tmp_path / "run" / "model.safetensors")
    assert [int(r[0]) for r in rows[1:]] == model.predict(X[:50]).tolist()
    assert np.mean(model.predict(X[:50]) == y[:50]) > 0.9  # raw pixels: scaling is folded in


def test_train_on_a_csv_with_a_named_target_and_the_missing_column_error(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    labels = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    write_csv(
        tmp_path / "d.csv",
        ["a", "b", "c", "answer"],
        [[*map(str, x), t] for x, t in zip(X, labels)],
    )
    out = gpubp_cmd(
        "train", "--data", "d.csv", "--target", "answer", "--quiet", "--epochs", "50", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "test accuracy" in out.stdout and out.stderr == ""
    out = gpubp_cmd(
        "predict", "gpubp-run/model.safetensors", "d.csv", "--target", "answer", "--proba",
        cwd=tmp_path,
    )
    assert out.returncode == 0 and out.stdout.splitlines()[0] == "p_no,p_yes"

    out = gpubp_cmd("train", "--data", "d.csv", "--target", "label", "--out", "o", cwd=tmp_path)
    assert out.returncode == 1 and not (tmp_path / "o").exists()
    assert out.stderr.strip() == (
        "gpubp train: error: d.csv has no column 'label'; its 4 columns: 'a', 'b', 'c', 'answer'"
    )


def test_malformed_csv_files_are_one_line_errors(tmp_path):
    (tmp_path / "ragged.csv").write_text("a,b,t\n1,2,0\n3,1\n")
    (tmp_path / "long.csv").write_text("a,b,t\n1,2,0\n3,1,1,5\n")
    (tmp_path / "text.csv").write_text("a,b,t\n1,2,0\n3,oops,1\n")
    (tmp_path / "empty.csv").write_text("a,b,t\n")
    for name, words in [
        ("ragged.csv", "the target column 't' is empty on line 3"),
        ("long.csv", "line 3: 4 fields, the header has 3"),
        ("text.csv", "line 3: column 'b' holds 'oops', not a number"),
        ("empty.csv", "expected a header line and at least one row"),
    ]:
        out = gpubp_cmd("train", "--data", name, "--target", "t", cwd=tmp_path)
        assert out.returncode == 1 and words in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args,words",
    [
        (["train", "--data", "nothing.csv"], "neither one of digits"),
        (["train", "--hidden", "0"], "positive integers"),
        (["train", "--backend", "tpu"], "invalid choice"),
        (["predict", "missing.npz", "x.csv"], "no such file"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, args, words):
    out = gpubp_cmd(*args, cwd=tmp_path)
    assert out.returncode != 0 and words in out.stderr
    assert "Traceback" not in out.stderr


def test_train_on_mnist1d_generated_offline(tmp_path):
    pytest.importorskip("mnist1d")
    out = gpubp_cmd("train", "--data", "mnist1d", "--epochs", "3", "--quiet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "mnist1d, 4000 training and 1000 test cases" in out.stdout


def test_info_prints_the_configuration(tmp_path):
    out = gpubp_cmd("info", cwd=tmp_path)
    assert out.returncode == 0 and "auto backend" in out.stdout


def test_fold_standardization_gives_the_same_predictions_on_raw_inputs():
    from sklearn.datasets import load_diabetes
    from sklearn.preprocessing import StandardScaler

    X, y = load_diabetes(return_X_y=True)
    scaler = StandardScaler().fit(X)
    model = gpubp.MLPRegressor(
        hidden_layer_sizes=(8,), max_iter=20, dtype="float64", random_state=0
    ).fit(scaler.transform(X), (y - 150) / 80)
    before = model.predict(scaler.transform(X)) * 80 + 150
    fold_standardization(model, scaler.mean_, scaler.scale_, 150.0, 80.0)
    np.testing.assert_allclose(model.predict(X), before, rtol=1e-10)


def test_export_writes_an_onnx_file_that_predicts_as_the_model(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    model = gpubp.MLPClassifier((16,), max_iter=10, random_state=0).fit(X, y)
    gpubp.save(model, tmp_path / "model.safetensors")
    out = gpubp_cmd("export", "model.safetensors", "model.onnx", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "inputs    : X float32 [N, 64]" in out.stdout
    assert "outputs   : label int64 [N], probabilities float32 [N, 10]" in out.stdout
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    label, P = session.run(None, {"X": X.astype(np.float32)})
    np.testing.assert_allclose(P, model.predict_proba(X), atol=1e-5)
    gpubp.save(gpubp.MLP([3, 2]), tmp_path / "net.safetensors")
    for args, words in [
        (["net.safetensors", "net.onnx"], "holds a bare network; export needs an estimator"),
        (["model.safetensors", "model.safetensors"], "is the model being read"),
        (["missing.safetensors", "m.onnx"], "no such file"),
    ]:
        out = gpubp_cmd("export", *args, cwd=tmp_path)
        assert out.returncode == 1 and words in out.stderr and "Traceback" not in out.stderr
