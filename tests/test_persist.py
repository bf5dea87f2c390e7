"""save/load in both file formats: exact round trips, and clear errors for files that are
not ours."""

import hashlib
import json
import zipfile

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file
from sklearn.datasets import make_classification

import gpubp
from gpubp import MLPClassifier, MLPRegressor, ModelFileError

pytestmark = pytest.mark.backends

SUFFIXES = [".safetensors", ".npz"]  # format versions 2 and 1


@pytest.fixture(scope="module")
def data():
    return make_classification(
        n_samples=60, n_features=5, n_classes=3, n_informative=3, random_state=0
    )


@pytest.fixture(params=SUFFIXES)
def suffix(request):
    return request.param


@pytest.mark.parametrize("n_networks", [None, 3])
def test_bare_network_round_trip(tmp_path, suffix, n_networks):
    net = gpubp.MLP(
        [4, 6, 3], "tanh", "sigmoid", "squared_error", 0.1, "float64", "numpy", 0, n_networks
    )
    gpubp.save(net, tmp_path / f"net{suffix}")
    back = gpubp.load(tmp_path / f"net{suffix}", backend="numpy")
    assert repr(back) == repr(net) and back.weight_decay == 0.1
    X = np.random.default_rng(0).normal(size=(5, 4))
    np.testing.assert_array_equal(back.forward(X), net.forward(X))


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_classifier_round_trip_predicts_exactly_and_keeps_attributes(
    tmp_path, data, solver, suffix
):
    X, y = data
    labels = np.array(["a", "b", "c"])[y]
    clf = MLPClassifier((8,), solver=solver, max_iter=30, random_state=0).fit(X, labels)
    gpubp.save(clf, tmp_path / f"clf{suffix}")
    back = gpubp.load(tmp_path / f"clf{suffix}")
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(back.predict(X), clf.predict(X))
    assert back.get_params() == {**clf.get_params(), "hidden_layer_sizes": [8]}
    for key in ("n_iter_", "loss_", "n_features_in_", "out_activation_", "n_outputs_"):
        assert getattr(back, key) == getattr(clf, key), key
    if solver == "adam":
        assert back.loss_curve_ == clf.loss_curve_ and back.t_ == clf.t_
        back.set_params(warm_start=True).fit(X, labels)  # training goes on from the file
        assert len(back.loss_curve_) == 2 * len(clf.loss_curve_)


def test_regressor_and_binary_and_multilabel_round_trips(tmp_path, data, suffix):
    X, y = data
    for model, target in [
        (MLPRegressor(hidden_layer_sizes=(6,), max_iter=20, random_state=0), np.c_[y, -y]),
        (MLPClassifier((6,), max_iter=20, random_state=0), y > 0),
        (MLPClassifier((6,), max_iter=20, random_state=0), np.c_[y > 0, y > 1]),
    ]:
        model.fit(X, target)
        gpubp.save(model, tmp_path / f"m{suffix}")
        back = gpubp.load(tmp_path / f"m{suffix}")
        np.testing.assert_array_equal(back.predict(X), model.predict(X))
        assert type(back) is type(model)


def test_feature_names_survive(tmp_path, data, suffix):
    pd = pytest.importorskip("pandas")
    X, y = data
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
    clf = MLPClassifier((4,), max_iter=10, random_state=0).fit(frame, y)
    gpubp.save(clf, tmp_path / f"m{suffix}")
    back = gpubp.load(tmp_path / f"m{suffix}")
    assert list(back.feature_names_in_) == list(clf.feature_names_in_)
    np.testing.assert_array_equal(back.predict(frame), clf.predict(frame))


def test_save_replaces_atomically_and_leaves_no_temporary_files(tmp_path, data, suffix):
    X, y = data
    clf = MLPClassifier((4,), max_iter=5, random_state=0).fit(X, y)
    gpubp.save(clf, tmp_path / f"m{suffix}")
    gpubp.save(clf, tmp_path / f"m{suffix}")
    assert [p.name for p in tmp_path.iterdir()] == [f"m{suffix}"]


def test_unfitted_and_foreign_objects_are_refused(tmp_path, suffix):
    with pytest.raises(gpubp.InputError, match="not fitted"):
        gpubp.save(MLPClassifier(), tmp_path / f"m{suffix}")
    with pytest.raises(gpubp.InputError, match="MLP, MLPClassifier or MLPRegressor"):
        gpubp.save(object(), tmp_path / f"m{suffix}")


def test_the_name_chooses_the_format(tmp_path, data):
    X, y = data
    clf = MLPClassifier((4,), max_iter=5, random_state=0).fit(X, y)
    for name, version in [("m.safetensors", 2), ("m.NPZ", 1), ("m.model", 2), ("m", 2)]:
        gpubp.save(clf, tmp_path / name)
        assert zipfile.is_zipfile(tmp_path / name) == (version == 1), name
        assert gpubp.persist.describe(tmp_path / name)["version"] == version
        np.testing.assert_array_equal(gpubp.load(tmp_path / name).predict(X), clf.predict(X))


def test_safetensors_alone_reads_the_weights_and_the_description(tmp_path, data):
    """What the README shows: the file needs neither gpubp nor scikit-learn to predict."""
    X, y = data
    clf = MLPClassifier((6, 5), activation="tanh", max_iter=20, random_state=0)
    clf.fit(X, np.array(["ant", "bee", "cat"])[y])
    gpubp.save(clf, tmp_path / "m.safetensors")
    with safe_open(tmp_path / "m.safetensors", framework="np") as f:
        about = json.loads(f.metadata()["gpubp"])
        W = [f.get_tensor(f"W_{l}") for l in range(1, 4)]
        b = [f.get_tensor(f"b_{l}") for l in range(1, 4)]
    assert about["network"]["activation"] == "tanh" and about["network"]["output"] == "softmax"
    assert about["classes"] == {"dtype": "<U3", "values": ["ant", "bee", "cat"]}
    Z = X.astype(np.float32)
    for l in range(2):
        Z = np.tanh(Z @ W[l] + b[l])
    T = Z @ W[2] + b[2]
    F = np.exp(T - T.max(axis=1, keepdims=True))
    np.testing.assert_allclose(F / F.sum(axis=1, keepdims=True), clf.predict_proba(X), atol=1e-6)
    for l, (Wl, bl) in enumerate(zip(W, b)):
        entry = about["arrays"][f"W_{l + 1}"]
        assert entry["sha256"] == hashlib.sha256(Wl.tobytes()).hexdigest()
        np.testing.assert_array_equal(Wl, clf.coefs_[l])
        np.testing.assert_array_equal(bl, clf.intercepts_[l])


def test_torch_reads_the_weights(tmp_path, data):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    X, y = data
    clf = MLPClassifier((4,), max_iter=5, random_state=0).fit(X, y)
    gpubp.save(clf, tmp_path / "m.safetensors")
    tensors = load_file(tmp_path / "m.safetensors")
    assert tensors["W_1"].dtype == torch.float32
    np.testing.assert_array_equal(tensors["W_1"].numpy(), clf.coefs_[0])


@pytest.mark.parametrize(
    "classes",
    [
        np.array([3, 7, 11], dtype=np.int32),
        np.array([1.0, 2.0, -3.0]),
        np.array([-1, 2**40, 5], dtype=np.int64),
        np.array([10, 20, 30], dtype=np.uint8),
        np.array(["α", "βb", "γcc"]),
    ],
)
def test_classes_keep_their_values_and_dtype(tmp_path, data, suffix, classes):
    X, y = data
    clf = MLPClassifier((4,), max_iter=5, random_state=0).fit(X, classes[y])
    gpubp.save(clf, tmp_path / f"m{suffix}")
    back = gpubp.load(tmp_path / f"m{suffix}")
    assert back.classes_.dtype == clf.classes_.dtype
    np.testing.assert_array_equal(back.predict(X), clf.predict(X))


def test_classes_that_json_cannot_hold_are_refused_in_safetensors(tmp_path, data):
    X, y = data
    days = np.array(["2026-01-01", "2026-06-01", "2026-12-01"], dtype="datetime64[D]")
    clf = MLPClassifier((4,), max_iter=5, random_state=0).fit(X, days[y])
    with pytest.raises(gpubp.InputError, match="classes of dtype datetime64.D. in a safetensors"):
        gpubp.save(clf, tmp_path / "m.safetensors")
    gpubp.save(clf, tmp_path / "m.npz")  # an .npz holds any plain array
    np.testing.assert_array_equal(gpubp.load(tmp_path / "m.npz").predict(X), clf.predict(X))


def test_an_npz_is_format_1_as_it_was(tmp_path, data):
    """.npz files are written and read as before format 2: the arrays, classes and the
    description as members, no SHA-256."""
    X, y = data
    clf = MLPClassifier((4,), max_iter=5, random_state=0).fit(X, np.array(["a", "b", "c"])[y])
    gpubp.save(clf, tmp_path / "m.npz")
    with zipfile.ZipFile(tmp_path / "m.npz") as z:
        members = sorted(z.namelist())
    assert members == [f"{k}.npy" for k in ["W_1", "W_2", "__gpubp__", "b_1", "b_2", "classes"]]
    arrays, meta = _contents(tmp_path / "m.npz")
    assert meta["version"] == 1 and "classes" not in meta
    assert all(set(entry) == {"shape", "dtype"} for entry in meta["arrays"].values())
    np.testing.assert_array_equal(arrays["classes"], ["a", "b", "c"])


def _contents(path):
    """(arrays, description) of a model file of either format."""
    if path.suffix == ".npz":
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files}
        return arrays, json.loads(str(arrays.pop("__gpubp__")))
    with safe_open(path, framework="np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, json.loads(f.metadata()["gpubp"])


def _rewrite(path, out, edit_meta=None, drop=None, replace=None):
    """The file at ``path`` written to ``out`` (its format) with these changes; replaced
    weights of a safetensors file get their SHA-256 recomputed, so that only the change
    meant is caught."""
    arrays, meta = _contents(path)
    if edit_meta:
        edit_meta(meta)
    if drop:
        del arrays[drop]
    for name, value in (replace or {}).items():
        if out.suffix == ".npz" or name not in arrays:
            if out.suffix == ".npz":
                arrays[name] = value
            else:
                meta[name]["values"] = value.tolist()
        else:
            arrays[name] = value
            digest = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
            meta["arrays"][name]["sha256"] = digest
    if out.suffix == ".npz":
        np.savez(out, **arrays, __gpubp__=np.array(json.dumps(meta)))
    else:
        save_file(arrays, str(out), metadata={"gpubp": json.dumps(meta)})


@pytest.fixture
def saved(tmp_path, data, suffix):
    X, y = data
    path = tmp_path / f"m{suffix}"
    gpubp.save(MLPClassifier((4,), max_iter=5, random_state=0).fit(X, y), path)
    return path


def test_bad_files_give_one_clear_error(tmp_path, saved):
    blob = saved.read_bytes()
    (tmp_path / "truncated").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "text.npz").write_text("hello")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    np.save(tmp_path / "array.npy", np.zeros(3))
    save_file({"a": np.zeros(3)}, str(tmp_path / "other.safetensors"), metadata={"x": "y"})
    cases = {
        "array.npy": "not a gpubp model",
        "truncated": "not a readable",
        "text.npz": r"not a gpubp model file \(neither a safetensors file nor an .npz archive\)$",
        "other.npz": "not a gpubp model",
        "other.safetensors": "not a gpubp model file .a safetensors file without",
        "missing.npz": "no such file",
        ".": "a folder",
    }
    for name, words in cases.items():
        with pytest.raises(ModelFileError, match=words) as caught:
            gpubp.load(tmp_path / name)
        assert "pickle" not in str(caught.value)


def test_a_changed_weight_is_caught(tmp_path, saved):
    """safetensors has no checksum of its own: format 2 keeps each weight's SHA-256
    (an .npz member has its CRC-32)."""
    blob = bytearray(saved.read_bytes())
    W = gpubp.load(saved).coefs_[0].tobytes()
    where = bytes(blob).index(W)
    blob[where + 5] ^= 0x10
    (tmp_path / f"bad{saved.suffix}").write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match="damaged|CRC|Bad"):
        gpubp.load(tmp_path / f"bad{saved.suffix}")


@pytest.mark.parametrize(
    "edit,words",
    [
        (dict(edit_meta=lambda m: m.update(version=9)), "format version 9"),
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
    bad = tmp_path / f"bad{saved.suffix}"
    _rewrite(saved, bad, **edit)
    with pytest.raises(ModelFileError, match=words):
        gpubp.load(bad)


def test_loading_never_unpickles(tmp_path, saved):
    """An object array in the file would need pickle: np.load refuses it, so do we."""
    bad = tmp_path / f"obj{saved.suffix}"
    _rewrite(saved, bad, replace={"classes": np.array([0, "x", None], object)})
    with pytest.raises(ModelFileError):
        gpubp.load(bad)
    if saved.suffix == ".npz":
        with zipfile.ZipFile(saved) as z:
            assert all(name.endswith(".npy") for name in z.namelist())
