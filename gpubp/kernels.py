"""Fused CUDA kernels for the CuPy backend, handed out by ``gpubp.backend``.

Each replaces several array operations of the reference formulas in
``gpubp.functions`` and ``gpubp.optim`` (which stay the definition, and which
the NumPy backend runs) by one kernel launch: bias + activation, the
activation derivative, softmax + cross-entropy, sigmoid + binary
cross-entropy, weight decay's dW += 2 lambda W, and every optimiser step over
the flat parameter vector. Only
``gpubp.backend`` imports this module, after CuPy has imported and a device
has answered.
"""

from __future__ import annotations

import functools

import cupy as cp

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

BIAS_ACTIVATION = {
    name: cp.ElementwiseKernel(
        "T a_in, T b", "T z", f"T a = a_in + b; z = {formula};", f"gpubp_bias_{name}"
    )
    for name, formula in _SIGMA.items()
}

DERIVATIVE = {  # g <- g * sigma'(z), in place: call with g as input and output
    name: cp.ElementwiseKernel("T z, T g_in", "T g", f"g = g_in * ({formula});", f"gpubp_d{name}")
    for name, formula in _SIGMA_PRIME.items()
}

_SOFTMAX_CE = r"""
template <typename T>
__device__ void softmax_ce(const T* t, const T* y, T* f, T* r, T* d, int N, int K) {
    int i = blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= N) return;
    t += (long long)i * K; y += (long long)i * K; f += (long long)i * K; d += (long long)i * K;
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
    for (int k = 0; k < K; ++k) d[k] = f[k] * y_sum - y[k];
}
extern "C" __global__ void softmax_ce_float(const float* t, const float* y, float* f,
                                           float* r, float* d, int N, int K) {
    softmax_ce<float>(t, y, f, r, d, N, K);
}
extern "C" __global__ void softmax_ce_double(const double* t, const double* y, double* f,
                                            double* r, double* d, int N, int K) {
    softmax_ce<double>(t, y, f, r, d, N, K);
}
"""
_SOFTMAX_CE_MODULE = cp.RawModule(code=_SOFTMAX_CE)


@functools.cache
def _softmax_ce_kernel(dtype):
    return _SOFTMAX_CE_MODULE.get_function(f"softmax_ce_{_ctype(dtype)}")


def softmax_cross_entropy(T, Y):
    """(F, R_i, delta) of softmax + cross-entropy, one thread per case (a case of each
    network of a stack: Y is broadcast against T's leading axes)."""
    T = cp.ascontiguousarray(T)
    Y = cp.ascontiguousarray(cp.broadcast_to(Y.astype(T.dtype, copy=False), T.shape))
    K = T.shape[-1]
    N = T.size // K
    F, D = cp.empty_like(T), cp.empty_like(T)
    R = cp.empty(T.shape[:-1], dtype=T.dtype)
    kernel = _softmax_ce_kernel(T.dtype)
    threads = 128
    kernel(((N + threads - 1) // threads,), (threads,), (T, Y, F, R, D, cp.int32(N), cp.int32(K)))
    return F, R, D


def _ctype(dtype) -> str:
    return {"float32": "float", "float64": "double"}[dtype.name]


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


LOSSES = {  # by (output, loss); squared error keeps the reference formulas
    ("softmax", "cross_entropy"): softmax_cross_entropy,
    ("sigmoid", "binary_cross_entropy"): sigmoid_binary_cross_entropy,
}


def column_sums(D, out=None):
    """db = the sum of D over its cases (axis -2), into ``out`` when given."""
    return cp.sum(D, axis=-2, out=out)


AXPY = cp.ElementwiseKernel(  # y += a x: weight decay's dW += 2 lambda W, no temporary
    "T x, T a, T y_in", "T y", "y = y_in + a * x", "gpubp_axpy"
)

SGD = cp.ElementwiseKernel(
    "T g, T lr, T theta_in", "T theta", "theta = theta_in - lr * g", "gpubp_sgd"
)
SGD_MOMENTUM = cp.ElementwiseKernel(
    "T g, T lr, T mu, T v_in, T theta_in",
    "T v, T theta",
    "v = mu * v_in - lr * g; theta = theta_in + v;",
    "gpubp_sgd_momentum",
)
SGD_NESTEROV = cp.ElementwiseKernel(
    "T g, T lr, T mu, T v_in, T theta_in",
    "T v, T theta",
    "v = mu * v_in - lr * g; theta = theta_in + mu * v - lr * g;",
    "gpubp_sgd_nesterov",
)
ADAM = cp.ElementwiseKernel(
    "T g, T lr_t, T b1, T b2, T eps, T m_in, T v_in, T theta_in",
    "T m, T v, T theta",
    """
    m = b1 * m_in + ((T)1 - b1) * g;
    v = b2 * v_in + ((T)1 - b2) * g * g;
    theta = theta_in - lr_t * m / (sqrt(v) + eps);
    """,
    "gpubp_adam",
)


# -- matrix products, and what a CUDA graph of a training step reads from the device --

_DIRECT = {}  # device id -> (gpubp.cublas.Cublas or None, why not)


def direct_cublas():
    """This device's cuBLAS for direct calls (capturable in a CUDA graph), or None and why."""
    device = cp.cuda.Device().id
    if device not in _DIRECT:
        from . import cublas

        _DIRECT[device] = cublas.load()
    return _DIRECT[device]


def matmul(a, b, out=None, precision="float32"):
    """``a @ b`` through cuBLAS called directly where it can be (float32/float64, at most
    one batch axis), else ``cupy.matmul``, which cannot be captured in a CUDA graph and
    ignores ``precision="tf32"``."""
    direct, _ = direct_cublas()
    if direct is not None:
        result = direct.matmul(a, b, out, precision)
        if result is not None:
            return result
    return cp.matmul(a, b, out=out)


GATHER_ROWS = cp.ElementwiseKernel(  # dst = rows order[k*batch : (k+1)*batch] of src
    "raw T src, raw int64 order, raw int64 k, int64 width, int64 batch",
    "T dst",
    "dst = src[order[k[0] * batch + i / width] * width + i % width]",
    "gpubp_gather_rows",
)

TABLE_ROW = cp.ElementwiseKernel(  # dst = row k of a table of per-step values
    "raw T table, raw int64 k, int64 width",
    "T dst",
    "dst = table[k[0] * width + i]",
    "gpubp_table_row",
)

INCREMENT = cp.ElementwiseKernel("int64 k_in", "int64 k", "k = k_in + 1", "gpubp_increment")
