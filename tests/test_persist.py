"""save/load: exact round trips, and clear errors for files that are not ours."""

import json
import zipfile

import numpy as np
import pytest
from sklearn.datasets import make_classification

import gpubp
from gpubp import MLPClassifier, MLPRegressor, ModelFileError


@pytest.fixture(scope="module")
def data():
    return make_classification(
        n_samples=60, n_features=5, n_classes=3, n_informative=3, random_state=0
    )


def test_bare_network_round_trip(tmp_path):
    net = gpubp.MLP([4, 6, 3], "tanh", "sigmoid", "squared_error", 0.1, "float64", "numpy", 0)
    gpubp.save(net, tmp_path / "net.npz")
    back = gpubp.load(tmp_path / "net.npz", backend="numpy")
    assert repr(back) == repr(net) and back.weight_decay == 0.1
    X = np.random.default_rng(0).normal(size=(5, 4))
    np.testing.assert_array_equal(back.forward(X), net.forward(X))


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_classifier_round_trip_predicts_exactly_and_keeps_attributes(tmp_path, data, solver):
    X, y = data
    labels = np.array(["a", "b", "c"])[y]
    clf = MLPClassifier((8,), solver=solver, max_iter=30, random_state=0).fit(X, labels)
    gpubp.save(clf, tmp_path / "clf.npz")
    back = gpubp.load(tmp_path / "clf.npz")
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(back.predict(X), clf.predict(X))
    assert back.get_params() == {**clf.get_params(), "hidden_layer_sizes": [8]}
    for key in ("n_iter_", "loss_", "n_features_in_", "out_activation_", "n_outputs_"):
        assert getattr(back, key) == getattr(clf, key), key
    if solver == "adam":
        assert back.loss_curve_ == clf.loss_curve_ and back.t_ == clf.t_
        back.set_params(warm_start=True).fit(X, labels)  # training goes on from the file
        assert len(back.loss_curve_) == 2 * len(clf.loss_curve_)


def test_regressor_and_binary_and_multilabel_round_trips(tmp_path, data):
    X, y = data
    for model, target in [
        (MLPRegressor(hidden_layer_sizes=(6,), max_iter=20, random_state=0), np.c_[y, -y]),
        (MLPClassifier((6,), max_iter=20, random_state=0), y > 0),
        (MLPClassifier((6,), max_iter=20, random_state=0), np.c_[y > 0, y > 1]),
    ]:
        model.fit(X, target)
        gpubp.save(model, tmp_path / "m.npz")
        back = gpubp.load(tmp_path / "m.npz")
        np.testing.assert_array_equal(back.predict(X), model.predict(X))
        assert type(back) is type(model)


def test_feature_names_survive(tmp_path, data):
    pd = pytest.importorskip("pandas")
    X, y = data
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
    clf = MLPClassifier((4,), max_iter=10, random_state=0).fit(frame, y)
    gpubp.save(clf, tmp_path / "m.npz")
    back = gpubp.load(tmp_path / "m.npz")
    assert list(back.feature_names_in_) == list(clf.feature_names_in_)
    np.testing.assert_array_equal(back.predict(frame), clf.predict(frame))


def test_save_replaces_atomically_and_leaves_no_temporary_files(tmp_path, data):
    X, y = data
    clf = MLPClassifier((4,), max_iter=5, random_state=0).fit(X, y)
    gpubp.save(clf, tmp_path / "m.npz")
    gpubp.save(clf, tmp_path / "m.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_unfitted_and_foreign_objects_are_refused(tmp_path):
    with pytest.raises(gpubp.InputError, match="not fitted"):
        gpubp.save(MLPClassifier(), tmp_path / "m.npz")
    with pytest.raises(gpubp.InputError, match="MLP, MLPClassifier or MLPRegressor"):
        gpubp.save(object(), tmp_path / "m.npz")


def _rewrite(path, out, edit_meta=None, drop=None, replace=None):
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["__gpubp__"]))
    if edit_meta:
        edit_meta(meta)
    arrays["__gpubp__"] = np.array(json.dumps(meta))
    if drop:
        del arrays[drop]
    if replace:
        arrays.update(replace)
    np.savez(out, **arrays)


@pytest.fixture
def saved(tmp_path, data):
    X, y = data
    gpubp.save(MLPClassifier((4,), max_iter=5, random_state=0).fit(X, y), tmp_path / "m.npz")
    return tmp_path / "m.npz"


def test_bad_files_give_one_clear_error(tmp_path, saved):
    blob = saved.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "text.npz").write_text("hello")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    np.save(tmp_path / "array.npy", np.zeros(3))
    cases = {
        "array.npy": "not a gpubp model",
        "truncated.npz": "not a readable",
        "text.npz": r"not a gpubp model file \(not an .npz archive\)$",
        "other.npz": "not a gpubp model",
        "missing.npz": "no such file",
    }
    for name, words in cases.items():
        with pytest.raises(ModelFileError, match=words) as caught:
            gpubp.load(tmp_path / name)
        assert "pickle" not in str(caught.value)


@pytest.mark.parametrize(
    "edit,words",
    [
        (dict(edit_meta=lambda m: m.update(version=2)), "format version 2"),
        (dict(edit_meta=lambda m: m.update(format="other")), "not a gpubp model"),
        (dict(edit_meta=lambda m: m.update(kind="SVC")), "unknown kind"),
        (dict(edit_meta=lambda m: m["network"].update(layer_sizes=[5, 0, 3])), "layer_sizes"),
        (dict(drop="W_2"), "holds arrays"),
        (dict(replace={"W_1": np.zeros((5, 5), np.float32)}), "shape"),
        (dict(replace={"b_1": np.zeros(4)}), "dtype"),
        (dict(replace={"W_1": np.full((5, 4), np.nan, np.float32)}), "NaN"),
        (dict(edit_meta=lambda m: m["params"].update(activation="softsign")), "inconsistent"),
    ],
)
def test_inconsistent_files_are_rejected_before_building(tmp_path, saved, edit, words):
    _rewrite(saved, tmp_path / "bad.npz", **edit)
    with pytest.raises(ModelFileError, match=words):
        gpubp.load(tmp_path / "bad.npz")


def test_loading_never_unpickles(tmp_path, saved):
    """An object array in the file would need pickle: np.load refuses it, so do we."""
    _rewrite(saved, tmp_path / "obj.npz", replace={"classes": np.array([0, "x", None], object)})
    with pytest.raises(ModelFileError):
        gpubp.load(tmp_path / "obj.npz")
    with zipfile.ZipFile(saved) as z:
        assert all(name.endswith(".npy") for name in z.namelist())
