"""Whole pipelines in skops files: gpubp.save/gpubp.load route there, a round trip
predicts identically, a planted untrusted type is refused, and the command's predict and
info read such a file."""

import io
import json
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from test_cli import gpubp_cmd

import gpubp
from gpubp.errors import InputError, ModelFileError
from gpubp.persist import describe
from gpubp.pipeline_files import TRUSTED


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "size": rng.normal(size=150),
            "age": rng.normal(size=150),
            "colour": rng.choice(["red", "green", "blue"], 150),
        }
    )
    y = np.where(df["size"] + (df["colour"] == "red") > 0.4, "keep", "drop")
    return df, y


def pipeline(**kw):
    columns = ColumnTransformer(
        [("numbers", StandardScaler(), ["size", "age"]), ("words", OneHotEncoder(), ["colour"])]
    )
    kw = {"hidden_layer_sizes": (8,), "max_iter": 6, "random_state": 0, **kw}
    return make_pipeline(columns, gpubp.MLPClassifier(**kw))


def fitted(df, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pipeline(**kw).fit(df, y)


def test_a_pipeline_round_trips_with_identical_predictions(tmp_path, table):
    df, y = table
    pipe = fitted(df, y, class_weight="balanced", early_stopping=True, n_init=2)
    gpubp.save(pipe, tmp_path / "model.skops")
    loaded = gpubp.load(tmp_path / "model.skops", backend="numpy")
    np.testing.assert_array_equal(loaded.predict(df), pipe.predict(df))
    np.testing.assert_array_equal(loaded.predict_proba(df), pipe.predict_proba(df))
    final = loaded[-1]
    assert final.get_params() == {**pipe[-1].get_params(), "backend": "numpy"}
    assert final.loss_curve_ == pipe[-1].loss_curve_
    info = describe(tmp_path / "model.skops")
    assert info["steps"] == [
        ["columntransformer", "ColumnTransformer"],
        ["mlpclassifier", "MLPClassifier"],
    ]
    assert info["classes"] == ["drop", "keep"] and info["feature_names"] == [
        "size",
        "age",
        "colour",
    ]
    # warm_start goes on from the loaded weights
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded.set_params(mlpclassifier__warm_start=True, mlpclassifier__max_iter=2).fit(df, y)
    assert loaded[-1].n_iter_ == 2


def test_a_poisson_regressor_pipeline_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 3))
    y = rng.poisson(np.exp(X[:, 0] / 2)).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = make_pipeline(
            StandardScaler(), gpubp.MLPRegressor(loss="poisson", max_iter=5, random_state=0)
        ).fit(X, y)
    gpubp.save(pipe, tmp_path / "counts.skops")
    np.testing.assert_array_equal(gpubp.load(tmp_path / "counts.skops").predict(X), pipe.predict(X))


def plant(path, to, old="gpubp.train.History"):
    """Rewrite the file's schema so that the type ``old`` reads as ``to``."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    module, name = old.rsplit(".", 1)
    text = members["schema.json"].decode()
    assert f'"{module}"' in text and f'"{name}"' in text
    members["schema.json"] = (
        text.replace(f'"{module}"', '"subprocess"').replace(f'"{name}"', f'"{to}"').encode()
    )
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)


def test_a_file_with_a_planted_untrusted_type_is_refused(tmp_path, table):
    df, y = table
    path = tmp_path / "model.skops"
    gpubp.save(fitted(df, y), path)
    plant(path, "Popen")
    with pytest.raises(
        ModelFileError, match=r"neither skops nor gpubp trusts: \['subprocess.Popen'\]"
    ):
        gpubp.load(path)
    with pytest.raises(ModelFileError, match="subprocess.Popen"):
        describe(path)


def test_gpubps_trusted_types_are_its_own_and_every_one_is_needed(tmp_path, table):
    import skops.io

    df, y = table
    assert all(t.startswith("gpubp.") for t in TRUSTED)
    path = tmp_path / "model.skops"
    gpubp.save(fitted(df, y, solver="sgd"), path)
    untrusted = set(skops.io.get_untrusted_types(file=path))
    assert untrusted == {
        "gpubp.estimators.classifier.MLPClassifier",
        "gpubp.optim.SGD",
        "gpubp.train.History",
    }
    assert untrusted <= set(TRUSTED)


def test_save_refuses_what_a_pipeline_file_cannot_hold(tmp_path, table):
    df, y = table
    pipe = fitted(df, y)
    with pytest.raises(InputError, match=r"ending in \.skops"):
        gpubp.save(pipe, tmp_path / "model.safetensors")
    with pytest.raises(InputError, match="no training record"):
        gpubp.save(pipe, tmp_path / "model.skops", record={"data": "x.csv"})
    assert not list(tmp_path.iterdir())


def test_callbacks_are_not_written_and_stay_on_the_estimator(tmp_path, table):
    callback = pytest.importorskip("sklearn.callback")
    df, y = table
    pipe = fitted(df, y)
    monitor = callback.ScoringMonitor(scoring="accuracy")
    pipe[-1].set_callbacks(monitor)
    gpubp.save(pipe, tmp_path / "model.skops")
    assert pipe[-1]._skl_callbacks == [monitor]
    assert not hasattr(gpubp.load(tmp_path / "model.skops")[-1], "_skl_callbacks")


def test_the_command_predicts_with_and_describes_a_pipeline_file(tmp_path, table):
    df, y = table
    pipe = fitted(df, y)
    gpubp.save(pipe, tmp_path / "model.skops")
    df.assign(label=y).to_csv(tmp_path / "rows.csv", index=False)
    done = gpubp_cmd(
        "predict", "model.skops", "rows.csv", "--target", "label", "--proba", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    got = pd.read_csv(io.StringIO(done.stdout))
    assert list(got.columns) == ["p_drop", "p_keep"]
    np.testing.assert_allclose(got.to_numpy(), pipe.predict_proba(df), rtol=1e-6)
    done = gpubp_cmd("info", "model.skops", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "steps     : columntransformer (ColumnTransformer), mlpclassifier (MLPClassifier)" in out
    assert "layers    : 5 -> 8 -> 1" in out and "'size', 'age', 'colour'" in out
    json.dumps(describe(tmp_path / "model.skops"))  # the description is plain data
