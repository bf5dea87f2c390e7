"""Property-based tests (hypothesis): model files from anywhere, and the core's contract."""

import io
import json
import zipfile

import numpy as np
import pytest
from conftest import PAIRS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpubp
from gpubp.functions import ACTIVATIONS

FILES = settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _valid_file(tmp_path_factory, suffix):
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = np.arange(40) % 3
    model = gpubp.MLPClassifier((4,), max_iter=3, random_state=0).fit(X, y)
    path = tmp_path_factory.mktemp("model") / f"m{suffix}"
    gpubp.save(model, path)
    return path.read_bytes(), X, suffix, gpubp.load(path, backend="numpy").predict_proba(X)


@pytest.fixture(scope="module", params=[".safetensors", ".npz"])
def valid(tmp_path_factory, request):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _valid_file(tmp_path_factory, request.param)


def _edited(meta, key_path, value):
    """The JSON description with one entry replaced."""
    node = meta
    for key in key_path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else {}
    if isinstance(node, dict):
        node[key_path[-1]] = value
    return json.dumps(meta)


def _rewrite_meta(blob, path, key_path, value):
    """The valid file with one entry of its JSON description replaced."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.numpy import save_file

        path.write_bytes(blob)
        with safe_open(path, framework="np") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            meta = json.loads(f.metadata()["gpubp"])
        save_file(tensors, str(path), metadata={"gpubp": _edited(meta, key_path, value)})
        return
    with zipfile.ZipFile(path, "w") as out, zipfile.ZipFile(io.BytesIO(blob)) as z:
        for name in z.namelist():
            data = z.read(name)
            if name == "__gpubp__.npy":
                meta = json.loads(str(np.load(io.BytesIO(data))))
                buf = io.BytesIO()
                np.save(buf, np.array(_edited(meta, key_path, value)))
                data = buf.getvalue()
            out.writestr(name, data)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
meta_keys = st.sampled_from(
    [
        ("version",),
        ("kind",),
        ("format",),
        ("label_type",),
        ("network", "layer_sizes"),
        ("network", "activation"),
        ("network", "output"),
        ("network", "dtype"),
        ("params", "activation"),
        ("params", "hidden_layer_sizes"),
        ("params", "solver"),
        ("fitted", "n_features_in_"),
        ("fitted", "out_activation_"),
        ("fitted", "loss_curve_"),
        ("fitted", "n_iter_"),
        ("arrays", "W_1"),
        ("arrays", "W_1", "sha256"),
        ("arrays", "classes"),
        ("arrays",),
        ("classes",),
        ("classes", "values"),
        ("classes", "dtype"),
    ]
)

corruptions = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(
        st.just("flip"),
        st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=12),
    ),
    st.tuples(st.just("random"), st.binary(max_size=3000)),
    st.tuples(st.just("meta"), st.tuples(meta_keys, json_values)),
)


@FILES
@given(corruption=corruptions)
def test_load_gives_a_model_or_model_file_error_and_nothing_else(valid, tmp_path, corruption):
    """A damaged file is refused, or (the damage fell where nothing is read) predicts
    exactly as the undamaged one; an edited description gives a model or an error."""
    blob, X, suffix, expected = valid
    kind, arg = corruption
    path = tmp_path / f"bad{suffix}"
    if kind == "truncate":
        path.write_bytes(blob[: int(arg * (len(blob) - 1))])
    elif kind == "flip":
        data = bytearray(blob)
        for where, byte in arg:
            data[int(where * (len(data) - 1))] = byte
        path.write_bytes(bytes(data))
    elif kind == "random":
        path.write_bytes(arg)
    else:
        _rewrite_meta(blob, path, *arg)
    try:
        model = gpubp.load(path, backend="numpy")
    except gpubp.ModelFileError:
        return
    with np.errstate(all="ignore"):  # an edited description may ask for other outputs
        P = model.predict_proba(X)
    assert P.shape == (len(X), len(model.classes_))
    if kind != "meta":
        assert np.array_equal(P, expected)


def _weight_spans(blob, suffix):
    """{weight name: (first byte, end)} of each weight's values in a model file."""
    if suffix == ".safetensors":
        size = int.from_bytes(blob[:8], "little")
        header = json.loads(blob[8 : 8 + size])
        return {
            k: (8 + size + v["data_offsets"][0], 8 + size + v["data_offsets"][1])
            for k, v in header.items()
            if k[:2] in ("W_", "b_")
        }
    spans = {}
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        for info in z.infolist():
            if info.filename[:2] in ("W_", "b_"):
                start = info.header_offset + 30 + len(info.filename) + len(info.extra)
                spans[info.filename[:-4]] = (start + info.file_size - 4, start + info.file_size)
    return spans


def test_a_changed_byte_in_any_weight_is_refused(valid, tmp_path):
    blob, _, suffix, _ = valid
    spans = _weight_spans(blob, suffix)
    assert len(spans) == 4  # W_1, b_1, W_2, b_2
    for name, (start, end) in spans.items():
        for where in (start, end - 1):
            data = bytearray(blob)
            data[where] ^= 0x01
            path = tmp_path / f"{name}-{where}{suffix}"
            path.write_bytes(bytes(data))
            with pytest.raises(gpubp.ModelFileError):
                gpubp.load(path, backend="numpy")


def test_a_description_that_lost_a_sha256_is_refused(valid, tmp_path):
    blob, _, suffix, _ = valid
    if suffix != ".safetensors":
        pytest.skip("version 1 (.npz) files hold no SHA-256s")
    from safetensors import safe_open
    from safetensors.numpy import save_file

    source = tmp_path / f"m{suffix}"
    source.write_bytes(blob)
    with safe_open(source, framework="np") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = json.loads(f.metadata()["gpubp"])
    for name in meta["arrays"]:
        edited = json.loads(json.dumps(meta))
        del edited["arrays"][name]["sha256"]
        path = tmp_path / f"{name}{suffix}"
        save_file(tensors, str(path), metadata={"gpubp": json.dumps(edited)})
        with pytest.raises(gpubp.ModelFileError, match=name):
            gpubp.load(path, backend="numpy")


@settings(max_examples=60, deadline=None)
@given(
    hidden=st.lists(st.integers(1, 5), min_size=0, max_size=3),
    p=st.integers(1, 4),
    K=st.integers(1, 4),
    N=st.integers(1, 6),
    activation=st.sampled_from(list(ACTIVATIONS)),
    pair=st.sampled_from(PAIRS),
    weight_decay=st.sampled_from([0.0, 0.1]),
    reduction=st.sampled_from(["mean", "sum"]),
    seed=st.integers(0, 2**16),
)
def test_gradients_are_finite_and_match_central_differences(
    hidden, p, K, N, activation, pair, weight_decay, reduction, seed
):
    output, loss = pair
    K += output == "softmax"  # a softmax needs K >= 2
    net = gpubp.MLP(
        [p, *hidden, K], activation, output, loss, weight_decay, "float64", "numpy", seed
    )
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, p))
    Y = rng.dirichlet(np.ones(K), size=N) if output == "softmax" else rng.uniform(size=(N, K))
    _, grads = net.loss_and_gradients(X, Y, reduction)
    assert all(np.all(np.isfinite(g)) for pair_ in grads for g in pair_)
    result = gpubp.gradcheck(net, X, Y, reduction=reduction)
    # relu's kink: a difference across it is not a derivative, so relu nets are held to
    # the bound only where no pre-activation lies within the stencil's reach of 0
    assert result.max_rel_error < 1e-6 or near_a_kink(net, X, activation), str(result)


def near_a_kink(net, X, activation, reach=1e-2) -> bool:
    """Whether a relu unit's pre-activation is within ``reach`` of 0 for some case."""
    if activation != "relu":
        return False
    Z, nearest = X, np.inf
    for W, b in net.get_weights()[:-1]:
        A = Z @ W + b
        nearest = min(nearest, float(np.abs(A).min()))
        Z = np.maximum(A, 0)
    return nearest < reach


@settings(max_examples=40, deadline=None)
@given(
    hidden=st.lists(st.integers(1, 6), min_size=0, max_size=2),
    n_classes=st.integers(2, 5),
    N=st.integers(6, 30),
    batch=st.integers(1, 40),
    dtype=st.sampled_from(["float32", "float64"]),
    seed=st.integers(0, 2**16),
)
def test_predictions_have_the_right_shapes_and_probabilities_sum_to_one(
    hidden, n_classes, N, batch, dtype, seed
):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, 3))
    y = np.arange(N) % n_classes
    clf = gpubp.MLPClassifier(
        tuple(hidden), batch_size=batch, max_iter=2, random_state=seed, dtype=dtype
    )
    with pytest.warns(Warning):  # ConvergenceWarning, and batch_size > N
        clf.fit(X, y)
    P = clf.predict_proba(X)
    assert P.shape == (N, n_classes) and P.dtype == dtype
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-5)
    assert clf.predict(X).shape == (N,) and set(clf.predict(X)) <= set(range(n_classes))


@settings(max_examples=20, deadline=None)
@given(
    solver=st.sampled_from(["sgd", "adam", "gd", "lbfgs"]),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_the_same_seed_trains_bit_identical_weights(solver, seed, dtype):
    X = np.random.default_rng(seed).normal(size=(30, 4))
    y = (X[:, 0] > 0).astype(int)
    kw = dict(hidden_layer_sizes=(5,), solver=solver, max_iter=4, random_state=seed, dtype=dtype)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = gpubp.MLPClassifier(**kw).fit(X, y)
        b = gpubp.MLPClassifier(**kw).fit(X, y)
    for Wa, Wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert np.array_equal(Wa, Wb)
