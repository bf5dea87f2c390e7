"""Today's results, kept: the fits of tests/reference/make_reference.py end as they ended when the
references were made (the same random draws in the same order), and the checkpoint
folders it made resume to the same weights.

The references were made on one machine; another BLAS (another CPU, or
OPENBLAS_CORETYPE) rounds the same products differently, so the weights are compared
to a tolerance far below what a change in the draws or the steps moves them by, and
the counts (epochs, stop reasons, the chosen start and alpha, the bootstrap seed)
exactly."""

import pickle
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "reference"))

import make_reference as make  # noqa: E402

import gpubp  # noqa: E402

pytestmark = [pytest.mark.backends("reference"), pytest.mark.usefixtures("leaves_nothing_behind")]
FITS = np.load(HERE / "reference" / "fits.npz")
EXACT = ("n_iter", "stop_reason", "best_init", "alpha", "t")
# (rtol, atol): L-BFGS's line search carries another BLAS's rounding further (1.6e-4
# relative under OPENBLAS_CORETYPE=Sandybridge, 1.2e-5 at most for every other fit)
TOLERANCE = {"lbfgs": (1e-3, 1e-4)}


def expected(name) -> dict:
    return {k.split("/", 1)[1]: FITS[k] for k in FITS.files if k.startswith(f"{name}/")}


def assert_as_made(name, got):
    want = expected(name)
    rtol, atol = TOLERANCE.get(name, (1e-4, 2e-5))
    assert set(got) == set(want), name
    for key, value in want.items():
        if key in EXACT or value.dtype.kind in "US":
            assert np.array_equal(got[key], value), f"{name}: {key} {got[key]} != {value}"
        else:
            np.testing.assert_allclose(got[key], value, rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("name", [*make.SCENARIOS, *make.MORE])
def test_a_fit_ends_as_the_reference(tmp_path, name):
    model, X, y, w, extra = make.problem(name, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make.fit(model, X, y, w, extra)
    assert_as_made(name, make.outcome(model))


def counting_steps(monkeypatch) -> dict:
    """A count of the optimisers' steps in this process from now on."""
    steps = {"n": 0}

    def count():
        steps["n"] += 1

    for kind in (make.gpubp.optim.SGD, make.gpubp.optim.Adam):
        original = kind.step

        def step(self, *args, original=original):
            count()
            return original(self, *args)

        monkeypatch.setattr(kind, "step", step)
    return steps


@pytest.mark.parametrize("stopped", list(make.STOPPED))
def test_a_checkpoint_of_the_reference_code_resumes_to_its_weights(tmp_path, monkeypatch, stopped):
    """One network and an n_init stack stopped by Ctrl-C inside an epoch, a CV estimator
    crashed after a checkpoint: the fit goes on from the checkpoint (fewer steps than a
    whole fit) and ends with the uninterrupted fit's weights."""
    scenario, settings, _, _ = make.STOPPED[stopped]
    folder = tmp_path / "checkpoint"
    shutil.copytree(HERE / "reference" / "checkpoints" / stopped, folder)
    steps = counting_steps(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make.fit(*make.problem(scenario, tmp_path))
        whole, steps["n"] = steps["n"], 0
        model, X, y, w, extra = make.problem(scenario, tmp_path)
        make.fit(model.set_params(checkpoint=str(folder), **settings), X, y, w, extra)
    assert_as_made(scenario, make.outcome(model))
    assert 0 < steps["n"] < whole, (steps["n"], whole)


def test_pickles_and_model_files_of_the_reference_code_load_predict_and_go_on(tmp_path):
    """Estimators fitted, pickled and saved by the reference code: unpickled and loaded
    they predict as they did then, and an unpickled one's next partial_fit epoch ends
    where it ended then (its optimiser and record came through the pickle)."""
    reference = HERE / "reference"
    kept = pickle.loads((reference / "estimators.pkl").read_bytes())
    assert set(kept) == set(make.KEPT)
    for name, (scenario, goes_on) in make.KEPT.items():
        _, X, y, _, _ = make.problem(scenario, tmp_path)
        want = FITS[f"pickled/{name}/predict"]
        loaded = gpubp.load(reference / "models" / f"{name}.safetensors")
        for model in (kept[name], loaded):
            got = np.asarray(model.predict(X[:50]))
            if want.dtype.kind == "f":
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)
            else:
                assert np.array_equal(got, want), name
        if goes_on:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kept[name].partial_fit(X, y)
            got = np.concatenate([W.ravel() for W in kept[name].coefs_])
            want = FITS[f"pickled/{name}/partial_fit"]
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5, err_msg=name)
