"""The command in a new user's first hour: every message a user reads, its words and its
exit status (files, data handling, divergence, memory, checkpoints), and a fuzz of the
options: every run ends with 0, 1, 2, 75 or 130, a failure in one error line."""

import numpy as np
import pandas as pd
import pytest
from test_cli import gpubp_cmd

import gpubp
from gpubp import plotting, tables

pa = pytest.importorskip("pyarrow")

QUICK = ["--quiet", "--epochs", "3", "--hidden", "8"]


def table(n=400, seed=0):
    """Numbers, a text ID, a text label: what a user's own CSV holds."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    df = pd.DataFrame(X, columns=["height", "weight", "age", "income"])
    df.insert(0, "id", [f"c{i:05d}" for i in range(n)])
    df["label"] = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    return df


def one_error(out, status=1) -> str:
    """The error line of a run that failed with ``status``: the only line, no traceback."""
    assert out.returncode == status, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.splitlines()) == 1, out.stderr
    return out.stderr.strip()


# -- files ---------------------------------------------------------------------------------


def test_train_writes_into_a_folder_of_its_own_and_refuses_to_replace_a_model(tmp_path):
    assert gpubp_cmd("train", *QUICK, cwd=tmp_path).returncode == 0
    model = tmp_path / "gpubp-run" / "model.safetensors"
    first = model.read_bytes()
    line = one_error(gpubp_cmd("train", *QUICK, "--seed", "1", cwd=tmp_path))
    assert line.startswith("gpubp train: error: gpubp-run/model.safetensors exists (trained ")
    assert line.endswith("on digits): give --force to replace it, or another --out")
    assert model.read_bytes() == first
    assert gpubp_cmd("train", *QUICK, "--seed", "1", "--force", cwd=tmp_path).returncode == 0
    assert model.read_bytes() != first


def test_the_repository_ignores_the_quick_starts_folder():
    from pathlib import Path

    ignored = (Path(__file__).resolve().parents[1] / ".gitignore").read_text().splitlines()
    assert "gpubp-run/" in ignored


def test_a_run_refused_before_training_leaves_no_new_folder(tmp_path):
    table().to_csv(tmp_path / "d.csv", index=False)
    args = ["train", "--data", "d.csv", "--target", "nope", "--out", "a/b", "--checkpoint", "c/d"]
    one_error(gpubp_cmd(*args, *QUICK, cwd=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]


def test_a_run_of_a_checkpoint_may_replace_the_model_it_wrote(tmp_path):
    args = ["train", *QUICK, "--checkpoint", "ckpt"]
    assert gpubp_cmd(*args, cwd=tmp_path).returncode == 0
    again = gpubp_cmd(*args, "--epochs", "5", cwd=tmp_path)  # the same run, extended
    assert again.returncode == 0, again.stderr
    assert gpubp.load(tmp_path / "gpubp-run" / "model.safetensors").n_iter_ == 5
    other = gpubp_cmd("train", *QUICK, "--checkpoint", "other", cwd=tmp_path)
    assert "exists" in one_error(other) and not (tmp_path / "other").exists()


# -- checkpoints ---------------------------------------------------------------------------


def test_a_finished_run_says_so_trains_nothing_and_reports_the_time_it_took(tmp_path):
    from gpubp.checkpoint_files import Folder, read

    args = ["train", *QUICK, "--checkpoint", "ckpt"]
    assert gpubp_cmd(*args, cwd=tmp_path).returncode == 0
    folder = Folder(tmp_path / "ckpt")
    description, arrays = read(folder.files()[0])
    assert description["state"]["seconds"] > 0
    description["state"]["seconds"] = 123.45  # a time this run could not take
    del description["arrays"]
    folder.write(description, arrays)
    again = gpubp_cmd(*args, cwd=tmp_path)
    assert again.returncode == 0
    assert "gpubp: the run checkpointed in ckpt is finished (stopped: max_iter, after 3 " in (
        again.stderr
    )
    assert "time      : 123.45 s for 3 epochs (when it trained; it was finished, nothing " in (
        again.stdout
    )
    assert "raise --epochs, with the same --checkpoint to go on from this run" in again.stdout


def test_raising_epochs_goes_on_from_the_finished_run_as_the_longer_run(tmp_path):
    assert gpubp_cmd("train", *QUICK, "--checkpoint", "ckpt", cwd=tmp_path).returncode == 0
    more = gpubp_cmd("train", *QUICK, "--epochs", "6", "--checkpoint", "ckpt", cwd=tmp_path)
    assert more.returncode == 0
    assert "going on from the checkpoint ckpt/checkpoint-" in more.stderr
    assert "after epoch 3 of 6 (it had reached max_iter=3)" in more.stderr
    longer = gpubp_cmd("train", *QUICK, "--epochs", "6", "--out", "longer", cwd=tmp_path)
    assert longer.returncode == 0
    a = gpubp.load(tmp_path / "gpubp-run" / "model.safetensors")
    b = gpubp.load(tmp_path / "longer" / "model.safetensors")
    assert all(np.array_equal(x, y) for x, y in zip(a.coefs_, b.coefs_))
    assert a.loss_curve_ == b.loss_curve_


# -- divergence and memory -----------------------------------------------------------------


def test_a_diverging_run_exits_1_names_lr_and_keeps_the_earlier_model(tmp_path):
    assert gpubp_cmd("train", *QUICK, cwd=tmp_path).returncode == 0
    model = tmp_path / "gpubp-run" / "model.safetensors"
    before = model.read_bytes()
    line = one_error(gpubp_cmd("train", *QUICK, "--lr", "10", "--force", cwd=tmp_path))
    assert "training diverged: the training loss grew to" in line
    assert "more than 10 times the" in line and "Try a smaller --lr (it was 10.0)" in line
    assert line.endswith("No model written.") and model.read_bytes() == before


def test_a_network_too_large_for_memory_is_one_line(tmp_path):
    line = one_error(gpubp_cmd("train", "--hidden", "1000000,1000000", cwd=tmp_path))
    assert line.startswith(
        "gpubp train: error: MLPClassifier(hidden_layer_sizes=(1000000, 1000000)) needs about "
    )
    assert "of host memory with its weights in float32" in line and "is free. Use" in line
    assert not (tmp_path / "gpubp-run").exists()


# -- data ----------------------------------------------------------------------------------


def test_a_text_column_names_drop_and_drop_trains_and_predicts_the_raw_file(tmp_path):
    table().to_csv(tmp_path / "d.csv", index=False)
    line = one_error(gpubp_cmd("train", "--data", "d.csv", "--target", "label", cwd=tmp_path))
    assert "column 'id' holds 'c00000', not a number" in line
    assert "leave the column out with --drop id, or encode it as numbers" in line
    args = ["train", "--data", "d.csv", "--target", "label", "--drop", "id", *QUICK]
    assert gpubp_cmd(*args, cwd=tmp_path).returncode == 0
    out = gpubp_cmd("predict", "gpubp-run/model.safetensors", "d.csv", cwd=tmp_path)
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 401
    assert "leaving out columns the model was not trained on: 'id'" in out.stderr


def test_a_wrong_column_suggests_the_nearest(tmp_path):
    table().to_csv(tmp_path / "d.csv", index=False)
    line = one_error(gpubp_cmd("train", "--data", "d.csv", "--target", "lable", cwd=tmp_path))
    assert line == (
        "gpubp train: error: d.csv has no column 'lable'; did you mean 'label'? Its 6 columns: "
        "'id', 'height', 'weight', 'age', 'income', 'label'"
    )
    args = ["--data", "d.csv", "--target", "label", "--drop", "ID,wieght"]
    assert "no column 'ID'; did you mean 'id'?" in one_error(
        gpubp_cmd("train", *args, cwd=tmp_path)
    )


def test_predict_says_how_many_columns_are_missing_or_too_many(tmp_path):
    """A model of unnamed features takes the columns by position."""
    X, y = np.random.default_rng(0).normal(size=(50, 4)), np.arange(50) % 2
    model = gpubp.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2).fit(X, y)
    gpubp.save(model, tmp_path / "m.safetensors")
    pd.DataFrame(X[:, :3], columns=list("abc")).to_csv(tmp_path / "few.csv", index=False)
    line = one_error(gpubp_cmd("predict", "m.safetensors", "few.csv", cwd=tmp_path))
    assert line.endswith(
        "the model takes 4 features and few.csv has 3 columns to give it (none left out): 1 missing"
    )
    wide = pd.DataFrame(np.c_[X, X[:, :3]], columns=list("abcdefg"))
    wide.to_csv(tmp_path / "wide.csv", index=False)
    args = ["predict", "m.safetensors", "wide.csv", "--drop", "e"]
    assert one_error(gpubp_cmd(*args, cwd=tmp_path)).endswith(
        "the model takes 4 features and wide.csv has 6 columns to give it (after leaving out "
        "'e'): leave out 2 more with --drop (or --target)"
    )
    assert gpubp_cmd(*args[:-1], "e,f,g", cwd=tmp_path).returncode == 0


def test_the_same_rows_as_csv_parquet_and_npy_train_the_same_model(tmp_path, capsys):
    df = table(600).drop(columns=["id"])
    df["label"] = (df.label == "yes").astype(int)
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_parquet(tmp_path / "d.parquet", row_group_size=100)
    np.save(tmp_path / "d.npy", df.to_numpy())
    models = {}
    for name, target in [("d.csv", "label"), ("d.parquet", "label"), ("d.npy", "4")]:
        out = gpubp_cmd(
            "train",
            "--data",
            name,
            "--target",
            target,
            *QUICK,
            "--out",
            f"out-{name}",
            cwd=tmp_path,
        )
        assert out.returncode == 0 and "note" not in out.stderr, out.stderr
        models[name] = gpubp.load(tmp_path / f"out-{name}" / "model.safetensors")
    a = models.pop("d.csv")
    for other in models.values():
        assert all(np.array_equal(x, y) for x, y in zip(a.coefs_, other.coefs_))
        assert a.loss_curve_ == other.loss_curve_


def test_rows_read_in_chunks_train_as_the_same_rows_read_whole_to_rounding(tmp_path, monkeypatch):
    """The split and the training rows in file order either way; only the scaling, fitted
    chunk by chunk, may round differently."""
    df = table(600).drop(columns=["id"])
    df.to_csv(tmp_path / "d.csv", index=False)
    args = ["train", "--data", "d.csv", "--target", "label", *QUICK]
    assert gpubp_cmd(*args, "--out", "whole", cwd=tmp_path).returncode == 0
    monkeypatch.setattr(tables, "WHOLE_BYTES", 0)
    monkeypatch.setattr(tables, "CHUNK_ROWS", 100)
    assert gpubp_cmd(*args, "--out", "chunks", cwd=tmp_path).returncode == 0
    whole, chunks = (gpubp.load(tmp_path / f / "model.safetensors") for f in ("whole", "chunks"))
    for a, b in zip(whole.coefs_, chunks.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_file_read_in_chunks_says_so_once(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "WHOLE_BYTES", 0)
    monkeypatch.setattr(tables, "CHUNK_ROWS", 100)
    table(600).drop(columns=["id"]).to_parquet(tmp_path / "d.parquet")
    out = gpubp_cmd("train", "--data", "d.parquet", "--target", "label", *QUICK, cwd=tmp_path)
    assert out.returncode == 0
    assert out.stderr.count("note: d.parquet is read a chunk at a time") == 1
    assert "its standardisation is fitted chunk by chunk" in out.stderr


def test_early_stopping_draws_the_validation_loss_beside_the_training_loss(tmp_path, monkeypatch):
    drawn = []
    original = plotting.plot_loss_curves

    def plotted(model, ax=None, **kw):
        ax = original(model, ax, **kw)
        drawn.append(ax.get_legend_handles_labels()[1])
        return ax

    monkeypatch.setattr(plotting, "plot_loss_curves", plotted)
    args = ["train", *QUICK, "--epochs", "30", "--early-stopping", "--validation-fraction", "0.2"]
    out = gpubp_cmd(*args, cwd=tmp_path)
    assert out.returncode == 0 and drawn == [["training loss", "validation loss"]]
    model = gpubp.load(tmp_path / "gpubp-run" / "model.safetensors")
    assert model.early_stopping and model.validation_fraction == 0.2
    line = one_error(gpubp_cmd("train", "--validation-fraction", "1.5", cwd=tmp_path), 2)
    assert line == (
        "gpubp train: error: argument --validation-fraction: expected a number between 0 and "
        "1: '1.5' (see gpubp train --help)"
    )


# -- the estimators' words -----------------------------------------------------------------


@pytest.mark.parametrize(
    "Estimator", [gpubp.MLPClassifier, gpubp.MLPRegressor, gpubp.MLPClassifierCV]
)
def test_a_misspelled_parameter_names_the_class_called(Estimator):
    with pytest.raises(TypeError, match=rf"^{Estimator.__name__}\.__init__\(\) got an unexpected"):
        Estimator(hiden_layer_sizes=(3,))


def test_one_class_is_named_as_a_plain_label():
    with pytest.raises(ValueError, match=r"got only one class: 1\.$"):
        gpubp.MLPClassifier().fit(np.zeros((5, 2)), np.ones(5, dtype=np.int64))
    with pytest.raises(ValueError, match=r"^y: MLPClassifierCV needs .* one class: 'a'\.$"):
        gpubp.MLPClassifierCV().fit(np.zeros((5, 2)), np.array(["a"] * 5))


# -- a fuzz of the options -----------------------------------------------------------------

DATA = [  # (--data, --target, --drop): good, then bad
    [("digits", None, None), ("diabetes", None, None), ("d.csv", "label", "id,age")],
    [("missing.csv", None, None), ("empty.csv", "label", None), ("d.csv", "lable", "id"),
     ("d.csv", "label", None), ("d.csv", "label", "nope"), ("digits", "label", None)],
]  # fmt: skip
CHOICES = {  # each option's (good values, bad values); None leaves the option out
    "--hidden": (["8", "4,4"], ["0", "a", "1000000,1000000", "3,"]),
    "--epochs": (["1", "3"], ["0", "-2", "x"]),
    "--lr": ([None, "0.01", "1e-300"], ["10", "-1", "nan"]),
    "--batch-size": ([None, "1", "5000", "auto"], ["0"]),
    "--alpha": ([None, "0", "1e300"], ["-1", "nan"]),
    "--solver": ([None, "sgd", "gd", "lbfgs"], ["newton"]),
    "--activation": ([None, "tanh", "logistic"], ["softsign"]),
    "--dtype": ([None, "float64"], ["float16"]),
    "--seed": ([None, "7"], ["-1", "x"]),
    "--tol": ([None, "0"], ["-1"]),
    "--n-iter-no-change": ([None, "1"], ["0"]),
    "--task": ([None, "regression", "classification"], []),
    "--penalty": ([None, "weight_elimination"], []),
    "--w0": ([None, "0.5"], ["0"]),
    "--init": ([None, "esl"], []),
    "--validation-fraction": ([None, "0.2"], ["1"]),
    "--checkpoint-every": ([None, "1", "0s"], ["soon"]),
}
FLAGS = ["--early-stopping", "--force"]


def fuzz_args(rng, i):
    """A run's options: each a good value, or (one time in 25) a bad one."""
    args = ["train", "--quiet", "--out", f"o{i}"]
    data = DATA[rng.random() < 0.1]
    for option, value in zip(("--data", "--target", "--drop"), data[rng.integers(len(data))]):
        if value is not None:
            args += [option, value]
    for option, (good, bad) in CHOICES.items():
        values = bad if bad and rng.random() < 0.04 else good
        value = values[rng.integers(len(values))]
        if value is not None:
            args += [option, value]
    args += [flag for flag in FLAGS if rng.random() < 0.3]
    if rng.random() < 0.4:
        args += ["--checkpoint", f"c{i % 3}"]  # some runs share a folder: another run's
    return args


def test_a_fuzz_of_the_options_ends_every_run_in_a_status_and_at_most_one_error_line(tmp_path):
    """Random options, about 25 s: status 0, 1, 2, 75 or 130; on failure one error line,
    no traceback, no Python line on stderr, no output folder left; on success a model
    with the hidden layers and at most the epochs asked for."""
    import time

    table(300).to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "empty.csv").write_text("")
    rng = np.random.default_rng(2026)
    started, runs, statuses = time.monotonic(), 0, set()
    while runs < 60 and time.monotonic() - started < 25:
        args = fuzz_args(rng, runs)
        out = gpubp_cmd(*args, cwd=tmp_path)
        said = f"{' '.join(args)}\n{out.stderr}"
        assert out.returncode in (0, 1, 2, 75, 130), said
        assert "Traceback" not in out.stderr, said
        assert all(line.startswith("gpubp") for line in out.stderr.splitlines()), said
        folder = tmp_path / f"o{runs}"
        if out.returncode:
            assert sum(": error: " in line for line in out.stderr.splitlines()) == 1, said
            assert not folder.exists(), said
        else:
            model = gpubp.load(folder / "model.safetensors")
            hidden = args[args.index("--hidden") + 1]
            assert tuple(model.hidden_layer_sizes) == tuple(map(int, hidden.split(","))), said
            assert model.n_iter_ <= int(args[args.index("--epochs") + 1]), said
        statuses.add(out.returncode)
        runs += 1
    assert runs >= 20 and {0, 1, 2} <= statuses, (runs, statuses)
