"""The command on data files read a chunk at a time: Parquet (by row groups), .npy
(memory-mapped) and CSV files, each larger than WHOLE_BYTES (0 here)."""

import csv
import gc
import io
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from conftest import on_standin
from test_cli import gpubp_cmd

import gpubp
from gpubp import cli, tables
from gpubp.estimators import predicting
from gpubp.inputs import data as inputs_data
from gpubp.inputs import sources

pa = pytest.importorskip("pyarrow")


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Chunks of rows and of bytes far smaller than the data (their defaults are MBs)."""
    monkeypatch.setattr(tables, "CHUNK_ROWS", 700)
    monkeypatch.setattr(tables, "WHOLE_BYTES", 0)  # every file is read in chunks
    monkeypatch.setattr(inputs_data, "CHUNK_BYTES", 2**18)
    monkeypatch.setattr(sources, "BLOCK_BYTES", 2**18)
    monkeypatch.setattr(predicting, "PREDICT_CHUNK_BYTES", 2**18)


def frame(n=3000, seed=0, p=6):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * np.arange(1, p + 1) * 10 + 100  # far from standardised
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(p)])
    df["label"] = np.where((X[:, 0] - 100) / 10 + (X[:, 1] - 100) / 20 > 0, "up", "down")
    df["level"] = (X[:, 0] - 100) / 10 - (X[:, 2] - 100) / 15
    return df


def run(*args, capsys):
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def predictions(path):
    return list(csv.reader(io.StringIO(path.read_text())))


def parquet_run(tmp_path, n, capsys, p=6):
    """(train output, model, frame, peak bytes of train, of predict above what it started
    with, peak bytes of Arrow's buffers in both) for n rows (tracemalloc counts Python's
    and NumPy's allocations, not Arrow's)."""
    df = frame(n=n, p=p)
    data, folder = tmp_path / f"d{n}.parquet", tmp_path / f"m{n}"
    df.to_parquet(data, row_group_size=2500)
    args = ["--target", "label", "--task", "classification", "--quiet", "--epochs", "3"]
    default_pool = pa.default_memory_pool()
    arrow = pa.proxy_memory_pool(default_pool)
    pa.set_memory_pool(arrow)
    tracemalloc.start()
    out = run("train", "--data", str(data), "--out", str(folder), *args, capsys=capsys)
    training = tracemalloc.get_traced_memory()[1]
    gc.collect()  # what train left for the collector is not predict's
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    run("predict", str(folder / "model.safetensors"), str(data), "--out",
        str(tmp_path / f"p{n}.csv"), capsys=capsys)  # fmt: skip
    predicting = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    pa.set_memory_pool(default_pool)
    model = gpubp.load(folder / "model.safetensors")
    assert not list(folder.glob(".gpubp-data-*"))  # the temporary copy is gone
    return out, model, df, training, predicting, arrow.max_memory()


def test_a_parquet_file_trains_and_predicts(tmp_path, capsys):
    out, model, df, *_ = parquet_run(tmp_path, 4000, capsys)
    assert "3000 training and 1000 test cases" in out
    assert float(out.split("test accuracy :")[1].split()[0]) > 0.9
    rows = predictions(tmp_path / "p4000.csv")
    assert rows[0] == ["prediction"] and len(rows) == 4001
    assert [r[0] for r in rows[1:]] == model.predict(df.drop(columns=["label"])).tolist()


@pytest.mark.slow
def test_a_parquet_file_trains_and_predicts_in_bounded_memory(tmp_path, capsys):
    """4x the rows, about the same memory: what the command allocates (NumPy's and pandas'
    arrays, as tracemalloc counts them) grows by far less than the features do (50
    float64 columns, 400 bytes a row; the labels and the split's indices stay in memory,
    about 40 bytes a row); predict's, from where train left it, by far less again; Arrow
    holds a row group at a time, whatever the rows."""
    if on_standin():
        pytest.skip("the stand-in's device copy of X is host memory too")
    parquet_run(tmp_path, 1000, capsys, p=50)  # imports and first compilations
    _, _, _, train_n, predict_n, arrow_n = parquet_run(tmp_path, 5000, capsys, p=50)
    _, _, _, train_4n, predict_4n, arrow_4n = parquet_run(tmp_path, 20_000, capsys, p=50)
    more_features = 15_000 * 50 * 8
    assert train_4n - train_n < more_features / 4, (train_n, train_4n)
    # predict writes each chunk's predictions as it goes: gathering them first adds 0.25 MB
    assert predict_4n - predict_n < more_features / 50, (predict_n, predict_4n)
    assert arrow_4n - arrow_n < more_features / 10, (arrow_n, arrow_4n)


def test_a_large_csv_is_read_in_chunks_with_the_csv_rules(tmp_path, capsys, monkeypatch):
    df = frame()
    df.drop(columns=["level"]).to_csv(tmp_path / "d.csv", index=False, sep=";")
    out = run("train", "--data", str(tmp_path / "d.csv"), "--target", "label", "--quiet",
              "--epochs", "40", "--out", str(tmp_path / "m"), capsys=capsys)  # fmt: skip
    assert float(out.split("test accuracy :")[1].split()[0]) > 0.95
    whole = run("predict", str(tmp_path / "m" / "model.safetensors"), str(tmp_path / "d.csv"),
                capsys=capsys)  # fmt: skip
    monkeypatch.setattr(tables, "WHOLE_BYTES", 2**40)
    chunked = run("predict", str(tmp_path / "m" / "model.safetensors"), str(tmp_path / "d.csv"),
                  capsys=capsys)  # fmt: skip
    assert whole == chunked and len(whole.splitlines()) == len(df) + 1
    monkeypatch.setattr(tables, "WHOLE_BYTES", 0)
    text = (tmp_path / "d.csv").read_text().splitlines()
    line = 2345  # in the fourth chunk of 700 rows
    text[line - 1] = text[line - 1].replace(text[line - 1].split(";")[3], "oops", 1)
    (tmp_path / "bad.csv").write_text("\n".join(text) + "\n")
    code = cli.main(["train", "--data", str(tmp_path / "bad.csv"), "--target", "label",
                     "--out", str(tmp_path / "b")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and f"line {line}: column 'x3' holds 'oops', not a number" in err, err


def test_npy_files_name_their_target_by_column(tmp_path, capsys):
    df = frame()
    plain = df[[*(f"x{i}" for i in range(6)), "level"]].to_numpy()
    np.save(tmp_path / "plain.npy", plain)
    out = run("train", "--data", str(tmp_path / "plain.npy"), "--target", "6", "--quiet",
              "--epochs", "30", "--out", str(tmp_path / "a"), capsys=capsys)  # fmt: skip
    assert float(out.split("test R^2 :")[1].split()[0]) > 0.9
    model = gpubp.load(tmp_path / "a" / "model.safetensors")
    assert list(model.feature_names_in_) == [str(i) for i in range(6)]
    structured = np.empty(len(df), dtype=[("a", "f8"), ("b", "f4"), ("kind", "i8")])
    structured["a"], structured["b"] = df["x0"], df["x1"]
    structured["kind"] = (df["x0"] > 100).astype(int) + (df["x1"] > 120)
    np.save(tmp_path / "s.npy", structured)
    out = run("train", "--data", str(tmp_path / "s.npy"), "--target", "kind", "--quiet",
              "--epochs", "30", "--out", str(tmp_path / "s"), capsys=capsys)  # fmt: skip
    assert "test accuracy" in out
    code = cli.main(["train", "--data", str(tmp_path / "s.npy"), "--target", "nope"])
    assert code == 1 and "has no column 'nope'" in capsys.readouterr().err


def test_damaged_data_files_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "x.parquet").write_bytes(b"not parquet at all")
    (tmp_path / "x.npy").write_bytes(b"\x93NUMPY garbage")
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    for name, words in [
        ("x.parquet", "not a readable Parquet file"),
        ("x.npy", "not a readable .npy file"),
        ("cube.npy", "expected a 2-D array"),
    ]:
        code = cli.main(["train", "--data", str(tmp_path / name), "--target", "t"])
        err = capsys.readouterr().err
        assert code == 1 and words in err and "Traceback" not in err, err


def test_chunks_of_blank_lines_are_dropped_and_a_file_of_no_rows_is_an_error(tmp_path):
    """Blank lines go with their chunk (a chunk of only blank lines yields nothing, the
    others keep their line numbers); a file with a header and no rows, in any of the
    three forms, is an InputError."""
    path = tmp_path / "gaps.csv"
    path.write_text("a,b\n1,2\n\n\n3,4\n")
    chunks = list(tables.table_chunks(path, rows=1))
    assert [list(t.index) for t in chunks] == [[2], [5]]
    assert [t.values.tolist() for t in chunks] == [[[1, 2]], [[3, 4]]]
    (tmp_path / "none.csv").write_text("a,b\n\n")
    pd.DataFrame({"a": [], "b": []}).to_parquet(tmp_path / "none.parquet")
    np.save(tmp_path / "none.npy", np.empty((0, 2)))
    for name in ("none.csv", "none.parquet", "none.npy"):
        with pytest.raises(gpubp.InputError, match="at least one row"):
            list(tables.table_chunks(tmp_path / name))


# -- the command's readers, several chunks and a short last one --------------------------------


def _write(tmp_path, kind, table):
    path = tmp_path / f"data.{kind}"
    if kind == "csv":
        table.to_csv(path, index=False)
    elif kind == "parquet":
        table.to_parquet(path, index=False)
    else:
        np.save(path, table.to_numpy())
    return str(path)


@pytest.mark.parametrize("kind", ["csv", "parquet", "npy"])
def test_each_reader_gives_every_row_once_numbered_from_the_file(tmp_path, kind):
    if kind == "parquet":
        pytest.importorskip("pyarrow")
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(31, 3)), columns=["0", "1", "2"])
    path = _write(tmp_path, kind, table)
    chunks = list(tables.table_chunks(path, rows=7))
    assert [len(c) for c in chunks] == [7, 7, 7, 7, 3]
    whole = pd.concat(chunks)
    np.testing.assert_array_equal(whole.to_numpy(), table.to_numpy())
    first = 2 if kind == "csv" else 1  # a CSV's line numbers count its header line
    assert list(whole.index) == list(range(first, first + 31))


@pytest.mark.parametrize("kind", ["parquet", "npy"])
def test_the_command_names_a_bad_row_in_a_later_chunk(tmp_path, monkeypatch, kind):
    if kind == "parquet":
        pytest.importorskip("pyarrow")
    monkeypatch.setattr(tables, "CHUNK_ROWS", 16)
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(70, 3)), columns=["0", "1", "2"])  # as .npy's
    table["2"] = (table["0"] > 0).astype(float)
    table.loc[40, "1"] = np.nan  # row 41, in the third chunk
    out = tmp_path / "out"
    path = _write(tmp_path, kind, table)
    ran = gpubp_cmd(
        "train", "--data", path, "--target", "2", "--out", str(out), "--epochs", "1", cwd=tmp_path
    )
    assert ran.returncode != 0 and "'1' is empty on line 41 " in ran.stderr, ran.stderr
    assert not list(out.glob(".gpubp-*"))  # its temporary copy of the data went too
