"""Fused CUDA kernels for the CuPy backend, handed out by ``gpubp.backend``.

Each replaces several array operations of the reference formulas in
``gpubp.functions`` and ``gpubp.optim`` (which stay the definition, and which
the NumPy backend runs) by one kernel launch: bias + activation, the
activation derivative, softmax + cross-entropy, sigmoid + binary
cross-entropy, the gradients of weight decay and weight elimination, and every optimiser step over
the flat parameter vector (each an ``Elementwise`` of ``gpubp.vectorized``), with the
matrix products of ``gpubp.gemm``. Only ``gpubp.backend`` imports this module, after
CuPy has imported and a device has answered.
"""

from __future__ import annotations

import functools

import cupy as cp

from .gemm import column_sums, direct_cublas, matmul
from .vectorized import VECTORIZED, Elementwise, c_type, vectorized_source

__all__ = ["VECTORIZED", "column_sums", "direct_cublas", "matmul", "vectorized_source"]

_SIGMA = {
    "sigmoid": "(T)0.5 * tanh((T)0.5 * a) + (T)0.5",
    "tanh": "tanh(a)",
    "relu": "(a > (T)0 ? a : (T)0)",
    "identity": "a",
}

_SIGMA_PRIME = {  # written from the output z; the identity's is 1, nothing to launch
    "sigmoid": "z * ((T)1 - z)",
    "tanh": "(T)1 - z * z",
    "relu": "(z > (T)0 ? (T)1 : (T)0)",
}

_BIAS_BROADCAST = {  # b broadcast against a: any shapes (a stack's (R, 1, K) biases)
    name: cp.ElementwiseKernel(
        "T a_in, T b", "T z", f"T a = a_in + b; z = {formula};", f"gpubp_bias_{name}"
    )
    for name, formula in _SIGMA.items()
}

_BIAS_ROWS = {  # a C-contiguous: element i is in column i % K (32-bit arithmetic)
    name: Elementwise(
        "T a_in, raw T b, uint32 K",
        "T z",
        f"T a = a_in + b[(unsigned int)i % K]; z = {formula};",
        f"gpubp_bias_rows_{name}",
    )
    for name, formula in _SIGMA.items()
}


class _BiasActivation:
    """z = sigma(a + b). A C-contiguous ``a`` (and ``z``) with one bias vector b reads b by
    column in a flat loop (16 bytes at a time where ``Vectorized`` applies); any other
    shapes (a stack's (R, 1, K) biases) broadcast as CuPy does."""

    def __init__(self, name: str):
        self.rows, self.broadcast = _BIAS_ROWS[name], _BIAS_BROADCAST[name]

    def __call__(self, a, b, z=None):
        flat = (
            a.flags.c_contiguous
            and (z is None or (z.flags.c_contiguous and z.shape == a.shape))
            and b.ndim == 1
            and b.flags.c_contiguous
            and a.ndim >= 1
            and a.shape[-1] == b.shape[0] > 0
            and a.size < 2**32
        )
        if not flat:
            return self.broadcast(a, b) if z is None else self.broadcast(a, b, z)
        z = cp.empty_like(a) if z is None else z
        return self.rows(a, b, cp.uint32(b.shape[0]), z)


BIAS_ACTIVATION = {name: _BiasActivation(name) for name in _SIGMA}

DERIVATIVE = {  # g <- g * sigma'(z), in place: call with g as input and output
    name: Elementwise("T z, T g_in", "T g", f"g = g_in * ({formula});", f"gpubp_d{name}")
    for name, formula in _SIGMA_PRIME.items()
}

_SOFTMAX_CE = r"""
// One thread per case i of N (n_cases per network of a stack: network i / n_cases).
// Adds the output bias in place first where has_b (network j's bias at b + j b_stride),
// and scales delta by the case's network's scale (scales[j], or scale where n_scales is 0).
// Y has y_rows rows: case i's targets are row i % y_rows (shared by a stack's networks).
template <typename T>
__device__ void softmax_ce(T* t, const T* b, long long b_stride, int has_b, const T* y,
                           long long y_rows, const T* scales, long long n_scales, T scale,
                           T* f, T* r, T* d, long long N, long long n_cases, int K) {
    long long i = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= N) return;
    long long j = i / n_cases;
    t += i * K; f += i * K; d += i * K; y += (i % y_rows) * K;
    if (has_b) {
        b += j * b_stride;
        for (int k = 0; k < K; ++k) t[k] = t[k] + b[k];
    }
    T c = n_scales == 0 ? scale : scales[n_scales == 1 ? 0 : j];
    T m = t[0];
    for (int k = 1; k < K; ++k) m = t[k] > m ? t[k] : m;
    T s = 0;
    for (int k = 0; k < K; ++k) s += exp(t[k] - m);
    T log_s = log(s), y_sum = 0, loss = 0;
    for (int k = 0; k < K; ++k) {
        f[k] = exp(t[k] - m) / s;
        y_sum += y[k];
        loss += y[k] * (log_s - (t[k] - m));
    }
    r[i] = loss;
    for (int k = 0; k < K; ++k) {
        T delta = f[k] * y_sum - y[k];
        d[k] = c * delta;
    }
}
extern "C" __global__ void softmax_ce_float(
        float* t, const float* b, long long b_stride, int has_b, const float* y,
        long long y_rows, const float* scales, long long n_scales, float scale, float* f,
        float* r, float* d, long long N, long long n_cases, int K) {
    softmax_ce<float>(t, b, b_stride, has_b, y, y_rows, scales, n_scales, scale, f, r, d, N,
                      n_cases, K);
}
extern "C" __global__ void softmax_ce_double(
        double* t, const double* b, long long b_stride, int has_b, const double* y,
        long long y_rows, const double* scales, long long n_scales, double scale, double* f,
        double* r, double* d, long long N, long long n_cases, int K) {
    softmax_ce<double>(t, b, b_stride, has_b, y, y_rows, scales, n_scales, scale, f, r, d, N,
                       n_cases, K);
}
"""
_SOFTMAX_CE_MODULE = cp.RawModule(code=_SOFTMAX_CE)


@functools.cache
def _softmax_ce_kernel(dtype):
    return _SOFTMAX_CE_MODULE.get_function(f"softmax_ce_{c_type(dtype)}")


def softmax_cross_entropy(T, Y):
    """(F, R_i, delta) of softmax + cross-entropy, one thread per case (a case of each
    network of a stack: Y is broadcast against T's leading axes)."""
    _, F, R, D = softmax_cross_entropy_output(T, Y)
    return F, R, D


def softmax_cross_entropy_output(A, Y, bias=None, bias_stride=0, scale=1.0):
    """(T, F, R_i, scale * delta) from the output layer's product A = Z_L W_{L+1}: one
    kernel adds the bias (T = A + b, in place), takes softmax and cross-entropy, and
    scales delta. ``bias``: a contiguous vector holding network j's b at j * bias_stride;
    ``scale``: a number, or one per network (a device array of R or 1)."""
    T = cp.ascontiguousarray(A)
    Y = cp.ascontiguousarray(Y.astype(T.dtype, copy=False))
    K = T.shape[-1]
    N = T.size // K
    n_cases = T.shape[-2] if T.ndim >= 2 and T.shape[-2] else 1
    y_rows = Y.size // K if K else 1
    if N and (Y.shape[-1] != K or not y_rows or N % y_rows or y_rows % n_cases):
        Y, y_rows = cp.ascontiguousarray(cp.broadcast_to(Y, T.shape)), N  # one row per case
    F, D = cp.empty_like(T), cp.empty_like(T)
    R = cp.empty(T.shape[:-1], dtype=T.dtype)
    if N == 0:
        return T, F, R, D
    if isinstance(scale, cp.ndarray):
        scales = cp.ascontiguousarray(scale.reshape(-1).astype(T.dtype, copy=False))
        n_scales, by_value = scales.size, T.dtype.type(0)
    else:
        scales, n_scales, by_value = R, 0, T.dtype.type(scale)  # R: a T pointer, unread
    has_b = bias is not None
    kernel = _softmax_ce_kernel(T.dtype)
    threads = 128
    args = (
        T, bias if has_b else R, cp.int64(bias_stride), cp.int32(has_b),
        Y, cp.int64(y_rows), scales, cp.int64(n_scales),
        by_value, F, R, D, cp.int64(N), cp.int64(n_cases), cp.int32(K),
    )  # fmt: skip
    kernel(((N + threads - 1) // threads,), (threads,), args)
    return T, F, R, D


_SIGMOID_BCE = cp.ElementwiseKernel(
    "T t, T y",
    "T f, T r, T d",
    """
    f = (T)0.5 * tanh((T)0.5 * t) + (T)0.5;
    r = (t > (T)0 ? t : (T)0) + log1p(exp(-fabs(t))) - y * t;
    d = f - y;
    """,
    "gpubp_sigmoid_bce",
)


def sigmoid_binary_cross_entropy(T, Y):
    """(F, R_i, delta) of sigmoid + binary cross-entropy: one kernel and a row sum."""
    F, r, D = _SIGMOID_BCE(T, Y)
    return F, cp.sum(r, axis=-1), D


OUTPUT_ERRORS = {  # by (output, loss): T = A + b, F, R_i and scaled delta in one kernel
    ("softmax", "cross_entropy"): softmax_cross_entropy_output,
}

LOSSES = {  # by (output, loss); squared error keeps the reference formulas
    ("softmax", "cross_entropy"): softmax_cross_entropy,
    ("sigmoid", "binary_cross_entropy"): sigmoid_binary_cross_entropy,
}


AXPY = Elementwise(  # y += a x: weight decay's dW += 2 lambda W, no temporary
    "T x, T a, T y_in", "T y", "y = y_in + a * x", "gpubp_axpy", values=("a",)
)

WEIGHT_ELIMINATION = Elementwise(  # dW += a W q / (1 + q W^2)^2, ESL eq. 11.17
    "T x, T a, T q, T y_in",
    "T y",
    "T d = 1 + x * x * q; y = y_in + a * (x * q / (d * d))",
    "gpubp_weight_elimination",
    values=("a", "q"),
)

_STEPS = {  # name: (inputs, outputs, update); the rate (lr or lr_t) is the second input
    "gpubp_sgd": ("T g, T lr, T theta_in", "T theta", "theta = theta_in - lr * g"),
    "gpubp_sgd_momentum": (
        "T g, T lr, T mu, T v_in, T theta_in",
        "T v, T theta",
        "v = mu * v_in - lr * g; theta = theta_in + v;",
    ),
    "gpubp_sgd_nesterov": (
        "T g, T lr, T mu, T v_in, T theta_in",
        "T v, T theta",
        "v = mu * v_in - lr * g; theta = theta_in + mu * v - lr * g;",
    ),
    "gpubp_adam": (
        "T g, T lr_t, T b1, T b2, T eps, T m_in, T v_in, T theta_in",
        "T m, T v, T theta",
        """
    m = b1 * m_in + ((T)1 - b1) * g;
    v = b2 * v_in + ((T)1 - b2) * g * g;
    theta = theta_in - lr_t * m / (sqrt(v) + eps);
    """,
    ),
}


class _Step:
    """An optimiser step over theta, called as ``step(g, rate, ..., theta_in, ..., theta)``.

    A rate on the device, one value or a stack's one per network as an (R, 1) array
    against C-contiguous (R, P) arrays, is read by row (``rate[i / P]``, 32-bit; P = 0:
    the one value) in a flat loop; a number is passed by value; any other rate broadcasts
    as CuPy does."""

    def __init__(self, name: str):
        inputs, outputs, update = _STEPS[name]
        params = [p.strip() for p in inputs.split(",")]
        rate = params[1].split()[1]
        numbers = [p.split()[1] for p in params[2:] if not p.endswith("_in")]  # mu, b1, ...
        rows = ", ".join([params[0], f"raw T {rate}_rows, uint32 P", *params[2:]])
        self.broadcast = Elementwise(inputs, outputs, update, name, values=(rate, *numbers))
        self.rows = Elementwise(
            rows, outputs, f"const T {rate} = {rate}_rows[P ? (unsigned int)i / P : 0u];" + update,
            f"{name}_rows", values=numbers,
        )  # fmt: skip

    def __call__(self, g, rate, *rest):
        arrays = [g, *(a for a in rest if isinstance(a, cp.ndarray))]
        P = None
        if isinstance(rate, cp.ndarray) and 0 < g.size < 2**32:
            if rate.size == 1:
                P = 0
            elif g.ndim == 2 and rate.shape == (g.shape[0], 1) and rate.flags.c_contiguous:
                P = g.shape[1]
        if P is None or not all(a.shape == g.shape and a.flags.c_contiguous for a in arrays):
            return self.broadcast(g, rate, *rest)
        return self.rows(g, rate.reshape(-1), cp.uint32(P), *rest)


SGD = _Step("gpubp_sgd")
SGD_MOMENTUM = _Step("gpubp_sgd_momentum")
SGD_NESTEROV = _Step("gpubp_sgd_nesterov")
ADAM = _Step("gpubp_adam")


# -- what a CUDA graph of a training step reads from the device --------------------

GATHER_ROWS = Elementwise(  # dst = rows order[k*batch : (k+1)*batch] of src
    "raw T src, raw int64 order, raw int64 k, uint32 width, int64 batch",
    "T dst",
    """
    unsigned int j = (unsigned int)i, row = j / width;  // dst has under 2^32 elements
    dst = src[order[k[0] * batch + row] * (long long)width + (j - row * width)];
    """,
    "gpubp_gather_rows",
)

TABLE_ROW = cp.ElementwiseKernel(  # dst = row k of a table of per-step values
    "raw T table, raw int64 k, int64 width",
    "T dst",
    "dst = table[k[0] * width + i]",
    "gpubp_table_row",
)

INCREMENT = cp.ElementwiseKernel("int64 k_in", "int64 k", "k = k_in + 1", "gpubp_increment")
