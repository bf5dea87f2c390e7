"""The CuPy stand-in keeps CuPy's rules: if it were lenient, the tests on the CuPy path
would prove nothing. Runs once (imported under its own name where cupy is a real CuPy)."""

import importlib
import pickle
import sys

import numpy as np
import pytest
from conftest import DLPackProducer

from gpubp.backend import out_of_memory


@pytest.fixture(scope="module")
def cp():
    installed = sys.modules.get("cupy")
    if installed is not None and getattr(installed, "__standin__", False):
        return installed
    return importlib.import_module("cupy_standin.cupy")


def test_implicit_conversion_to_numpy_is_refused(cp):
    a = cp.asarray(np.ones(3))
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(a)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.array([a, a])


def test_host_arrays_are_refused_as_operands_arguments_and_values(cp):
    a, host = cp.ones(3, cp.float32), np.ones(3, np.float32)
    for attempt in (
        lambda: a + host,
        lambda: host + a,
        lambda: host * a,
        lambda: a.__iadd__(host),
        lambda: cp.maximum(a, host),
        lambda: cp.matmul(cp.ones((3, 3)), host),
        lambda: np.exp(host) + a,
        lambda: cp.concatenate([a, host]),
    ):
        with pytest.raises(TypeError, match="Unsupported type"):
            attempt()
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray"):
        a[...] = host
    a[...] = np.float32(2)  # a host scalar is a fill value, as in CuPy
    assert a.sum().item() == 6


def test_reductions_and_element_access_give_0d_device_arrays(cp):
    a = cp.arange(6, dtype=cp.float32).reshape(2, 3)
    for value in (a.sum(), cp.sum(a), np.sum(a), a.max(), a[1, 2], a[0][1], cp.all(a > -1)):
        assert isinstance(value, cp.ndarray) and value.shape == ()
    assert isinstance(np.exp(a), cp.ndarray)  # NumPy's functions dispatch to CuPy's


def test_every_device_to_host_read_and_host_to_device_copy_is_counted(cp):
    a = cp.asarray(np.arange(4.0))
    reads = [
        lambda: a.get(),
        lambda: a[0].item(),
        lambda: float(a[0]),
        lambda: int(a[1]),
        lambda: bool(a[1]),
        lambda: a.tolist(),
        lambda: cp.asnumpy(a),
        lambda: repr(a),
        lambda: f"{a[0]:.2f}",
        lambda: pickle.dumps(a),
        lambda: a[a > 1],  # CuPy reads the mask's count to size the result
    ]
    for read in reads:
        with cp.counting() as seen:
            read()
        assert (seen.d2h, seen.h2d) == (1, 0), read
    for copy in (lambda: cp.asarray([1.0]), lambda: a.set(np.zeros(4)), lambda: a[np.array([0])]):
        with cp.counting() as seen:
            copy()
        assert (seen.d2h, seen.h2d) == (0, 1)
    with cp.counting() as seen:
        b = cp.exp(a) * 2 + a.sum()
        cp.asarray(b, dtype=cp.float32)  # a cast on the device
    assert (seen.d2h, seen.h2d) == (0, 0) and seen.launches == 5


def test_elementwise_kernels_take_the_type_from_arrays_and_cast_scalars(cp):
    axpy = cp.ElementwiseKernel("T x, T a, T y_in", "T y", "y = y_in + a * x", "gpubp_axpy")
    x = cp.asarray(np.arange(3, dtype=np.float32))
    y = cp.ones(3, cp.float32)
    assert axpy(x, np.float64(0.5), y, y) is y  # the output aliases an input
    assert y.dtype == np.float32 and y.tolist() == [1.0, 1.5, 2.0]
    fresh = axpy(x, 2, y)
    assert fresh is not y and fresh.dtype == np.float32
    with pytest.raises(TypeError, match="Type is mismatched"):
        axpy(x, 1.0, cp.ones(3, cp.float64))
    with pytest.raises(TypeError, match="Wrong number of arguments"):
        axpy(x, 1.0)
    with pytest.raises(TypeError, match="Unsupported type"):
        axpy(x, 1.0, np.ones(3, np.float32))
    with pytest.raises(TypeError, match="Unsupported type"):
        axpy(x, 1.0, y, np.empty(3, np.float32))
    unknown = cp.ElementwiseKernel("T x", "T y", "y = x", "not_a_gpubp_kernel")
    with pytest.raises(NotImplementedError, match="no reference formula"):
        unknown(x)


def test_raw_kernels_check_arguments_against_the_c_signature(cp):
    from gpubp.functions import cross_entropy

    code = (
        'extern "C" __global__ void softmax_ce_float(float* t, const float* b, '
        "long long b_stride, int has_b, const float* y, long long y_rows, const float* scales, "
        "long long n_scales, float scale, float* f, float* r, float* d, long long N, "
        "long long n_cases, int K) {}"
    )
    module = cp.RawModule(code=code)
    with cp.counting() as seen:
        kernel = module.get_function("softmax_ce_float")
    assert seen.get_function == 1
    rng = np.random.default_rng(0)
    T = cp.asarray(rng.normal(size=(5, 3)).astype(np.float32))
    Y = cp.asarray(np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1]])
    F, R, D = cp.zeros((5, 3), cp.float32), cp.zeros(5, cp.float32), cp.zeros((5, 3), cp.float32)
    i32, i64, one = np.int32, np.int64, np.float32(1)
    five, three = i64(5), i32(3)

    def args(y=Y, n=five, k=three):
        return (T, R, i64(0), i32(0), y, five, R, i64(0), one, F, R, D, n, five, k)

    with pytest.raises(TypeError, match="numpy.int64"):
        kernel((1,), (8,), args(n=5))  # Python ints would not be C integers
    with pytest.raises(TypeError, match="float32 device array"):
        kernel((1,), (8,), args(y=Y.astype(cp.float64)))
    kernel((1,), (4,), args())  # 4 threads for 5 rows
    want = cross_entropy(np, "softmax", T.get(), Y.get())
    np.testing.assert_allclose(F.get()[:4], want[0][:4], rtol=1e-6)
    assert F.get()[4].tolist() == [0, 0, 0]  # the row no thread reached
    with pytest.raises(RuntimeError, match="not found"):
        module.get_function("softmax_ce_half")


def test_dlpack_from_a_cuda_producer_only(cp):
    a = cp.arange(3.0)
    assert cp.from_dlpack(a) is a
    assert cp.from_dlpack(DLPackProducer(a, device=(2, 0))).tolist() == [0, 1, 2]
    with pytest.raises(BufferError):
        cp.from_dlpack(np.arange(3.0))


def test_an_allocation_larger_than_the_card_is_out_of_memory(cp, monkeypatch):
    monkeypatch.setenv("GPUBP_STANDIN_MEMORY", str(2**20))
    with pytest.raises(cp.cuda.memory.OutOfMemoryError) as info:
        cp.zeros((2**20,), cp.float32)
    assert out_of_memory(info.value)
    with pytest.raises(MemoryError):
        cp.ones((600, 1)) @ cp.ones((1, 600))
    assert cp.cuda.runtime.memGetInfo()[1] == 2**20


def test_a_device_beyond_those_there_is_refused(cp, monkeypatch):
    monkeypatch.setenv("GPUBP_STANDIN_DEVICES", "2")
    assert cp.cuda.Device(1).id == 1 and cp.cuda.Device().id == 0
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match="invalid device ordinal"):
        cp.cuda.Device(2)


def test_event_times_need_the_end_event_synchronised(cp):
    start, end = cp.cuda.Event(), cp.cuda.Event()
    start.record()
    end.record()
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match="NotReady"):
        cp.cuda.get_elapsed_time(start, end)
    with cp.counting() as seen:
        end.synchronize()
    assert seen.syncs == 1 and cp.cuda.get_elapsed_time(start, end) >= 0


def test_a_pickled_device_array_needs_cupy_to_load(cp):
    assert b"cupy" in pickle.dumps(cp.ones(2))


def test_a_copy_on_another_stream_waits_for_its_event(cp):
    """A copy put on a stream of its own runs when its event is waited for: read before,
    the device buffer is as it was; a host buffer refilled before it ran is copied with
    what it holds then (as a pinned buffer is on a GPU)."""
    target = cp.zeros(3)
    host = np.ones(3)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        target.set(host, stream=stream)
        done = stream.record()
    assert not done.done
    host[...] = 2.0  # refilled before the copy ran
    np.testing.assert_array_equal(target.get(), 0.0)
    cp.cuda.get_current_stream().wait_event(done)
    np.testing.assert_array_equal(target.get(), 2.0)
    assert done.done
    target.set(np.full(3, 5.0))  # the null stream: at once
    np.testing.assert_array_equal(target.get(), 5.0)


def test_a_captured_graph_replays_with_the_scalars_it_was_captured_with(cp):
    """Capturing records and leaves device memory as it was; a launch runs the record on
    the arrays as they are then, the scalars as they were, into the arrays it made; a
    transfer to or from the host cannot be captured."""
    a, total = cp.arange(3.0), cp.zeros(3)
    scale = 2.0
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        doubled = a * scale  # made in the capture
        total += doubled
        graph = stream.end_capture()
    np.testing.assert_array_equal(total.get(), 0.0)  # the capture ran nothing
    scale = 10.0  # a Python value changed after the capture is not seen
    a[...] = cp.ones(3)
    graph.launch(stream)
    graph.launch(stream)
    np.testing.assert_array_equal(total.get(), 4.0)  # twice 1 * 2
    np.testing.assert_array_equal(doubled.get(), 2.0)
    assert scale == 10.0
    with stream:
        stream.begin_capture()
        with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match="capturing"):
            a.get()
        with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match="Invalidated"):
            stream.end_capture()
