"""Minibatch steps as one CUDA graph launch each, on the CuPy backend.

A step of a small network is 20 to 30 kernels of a few microseconds each; issued
one by one from Python, they leave the GPU idle most of the time. Here the step
(gather the minibatch, forward, backward, optimiser, loss sum) is captured once
into a CUDA graph and replayed for every full minibatch of every epoch. What
changes from step to step is read from the device, never baked into the graph:
the epoch's case order, a step counter k that the graph itself increments, and
the optimiser's rate for each step (a table uploaded once per epoch). The last,
partial minibatch runs as before.

The step's temporaries come from a memory pool of the graph's own, so nothing
else can be given the memory its replays write. Where a graph cannot be
captured (CuPy without direct cuBLAS calls, such as the tests' CuPy stand-in, or
an operation that refuses capture), a replay runs the step's Python code again:
the same bookkeeping on the device, without the speed-up.

``GPUBP_CUDA_GRAPHS=0`` in the environment turns graphs off (steps as before).
"""

from __future__ import annotations

import weakref

import numpy as np

from .backend import is_sparse, switched_on

ENV_VAR = "GPUBP_CUDA_GRAPHS"
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # network -> {key: steps}
CACHED = 2  # graphed steps kept per network: a streamed epoch's full chunks and its last


def enabled() -> bool:
    """Whether CUDA graphs may be used (``GPUBP_CUDA_GRAPHS`` is not 0)."""
    return switched_on(ENV_VAR)


def for_epoch(net, optimizer, data, objective, batch_size: int):
    """The graphed steps for this network, optimiser, data and batch size (made once and
    kept while they stay the same), or None where the steps run one kernel at a time:
    NumPy, case weights, sparse or strided inputs, fewer than two full minibatches."""
    fused = net.backend.fused
    if net.backend.name != "cupy" or not enabled():
        return None
    if fused is None or data.w is not None or data.n_total is not None:
        return None
    if getattr(optimizer, "fused", None) is None or not hasattr(optimizer, "apply"):
        return None
    X, Y = data.X, data.Y
    if is_sparse(X) or not (X.flags.c_contiguous and Y.flags.c_contiguous):
        return None
    if X.dtype != net.theta.dtype or Y.dtype != net.theta.dtype or data.n // batch_size < 2:
        return None
    if batch_size * max(X.shape[1], Y.shape[1]) >= 2**32:  # the row gather's 32-bit index
        return None
    key = _key(net, optimizer, data, objective, batch_size)
    kept = _CACHE.setdefault(net, {})
    steps = kept.pop(key, None)
    if steps is None:
        steps = GraphedSteps(net, optimizer, data, objective, batch_size, key)
        while len(kept) >= CACHED:
            kept.pop(next(iter(kept)))  # the least recently used
    kept[key] = steps
    return steps


def latest(net):
    """The graphed steps ``net`` last trained with, or None (for tests and benchmarks)."""
    kept = _CACHE.get(net)
    return next(reversed(kept.values())) if kept else None


def _key(net, optimizer, data, objective, batch_size):
    """What a captured step has baked in: device addresses, shapes, constants."""
    state = [getattr(optimizer, k) for k in optimizer._state] + [net.theta, data.X]
    baked = ("momentum", "nesterov", "beta_1", "beta_2", "epsilon")
    return (
        type(optimizer),
        tuple(getattr(optimizer, k, None) for k in baked),
        tuple((a.data.ptr, a.shape, a.strides) for a in state if a is not None),
        tuple(data.Y.shape),
        data.n,
        np.shape(optimizer.learning_rate),
        batch_size,
        objective.loss_factor,
        tuple(np.ravel(objective.alpha)),
        net.penalty,
        net.w0,
        net.matmul_precision,
    )


class GraphedSteps:
    """One training step of ``net`` as a CUDA graph over device-resident bookkeeping."""

    def __init__(self, net, optimizer, data, objective, batch_size, key):
        xp, to_device = net.backend.xp, net.backend.to_device
        dtype = net.theta.dtype
        # weakly: the cache's value must not keep its key, the network, alive
        self.net, self.optimizer, self.key = weakref.proxy(net), optimizer, key
        self.batch_size, self.n = batch_size, data.n
        self.n_steps = data.n // batch_size  # full minibatches per epoch
        self.X = data.X
        self.Y = xp.empty_like(data.Y)  # a copy of our own: Y is encoded again by every fit
        self._Y_from = self._rates_from = None
        self.Xb = xp.empty((batch_size, data.X.shape[1]), dtype=dtype)
        self.Yb = xp.empty((batch_size, data.Y.shape[1]), dtype=dtype)
        self.order = xp.empty(data.n, dtype=xp.int64)
        self.in_turn = False  # self.order holds 0 .. n - 1
        self.k = xp.zeros(1, dtype=xp.int64)
        self.total = xp.zeros(net.theta.shape[:-1], dtype=dtype)  # () or (R,) for a stack
        width = int(np.prod(np.shape(optimizer.learning_rate)))  # 1, or R rates for a stack
        self.rates = xp.empty((self.n_steps, width), dtype=dtype)
        self.rate_row = xp.empty(width, dtype=dtype)
        # as the update broadcasts it: over theta (P,), or one row each of a stack's (R, P)
        self.rate = xp.reshape(self.rate_row, (width, 1) if net.theta.ndim == 2 else (1,))
        self.grad = xp.empty_like(net.theta)
        self.out = net.views(self.grad)
        self.scale, decay = objective.constants(float(batch_size))
        self.decay = decay if np.ndim(decay) == 0 else to_device(np.asarray(decay), dtype=dtype)
        self.launch = self.stream = self.pool = self.graph = None
        fused = net.backend.fused
        self.capturable = fused.direct_cublas()[0] is not None and hasattr(
            getattr(xp.cuda, "Stream", None), "begin_capture"
        )
        self.why_not_captured = "" if self.capturable else "no direct cuBLAS calls here"

    def step(self) -> None:
        """Step k of the epoch: its minibatch, forward and backward, the update, the loss."""
        net, fused, B = self.net, self.net.backend.fused, self.batch_size
        width_X, width_Y = np.uint32(self.X.shape[1]), np.uint32(self.Y.shape[1])
        fused.GATHER_ROWS(self.X, self.order, self.k, width_X, B, self.Xb)
        fused.GATHER_ROWS(self.Y, self.order, self.k, width_Y, B, self.Yb)
        fused.TABLE_ROW(self.rates, self.k, self.rate_row.size, self.rate_row)
        trace = net.backprop_unchecked(
            self.Xb, self.Yb, self.scale, self.decay, None, self.out, penalty=False
        )
        self.optimizer.apply(net.theta, self.grad, self.rate)
        self.total += trace.loss * B
        fused.INCREMENT(self.k, self.k)

    def run(self, optimizer, Y, order, stop, total=0, first=0):
        """The full minibatches from minibatch ``first`` on: (``total`` plus their summed
        losses, on the device; steps taken).

        ``optimizer`` may be a copy of the one the step was captured with (its state
        arrays the same, as the key checks); ``Y`` the targets, encoded again; ``order``
        the rows of X in turn (None: 0 .. n - 1)."""
        xp, to_device = self.net.backend.xp, self.net.backend.to_device
        self.optimizer = optimizer
        on_stream = self.capturable
        if on_stream:  # our stream, ordered after the caller's work and before its next
            caller = xp.cuda.get_current_stream()
            if self.stream is None:
                self.stream = xp.cuda.Stream(non_blocking=True)
            self.stream.wait_event(caller.record())
            self.stream.__enter__()
        try:
            if self._Y_from is not Y:
                self.Y[...] = Y
                self._Y_from = Y
            if order is not None:
                self.order[...] = to_device(order)
            elif not self.in_turn:  # a streamed chunk's rows in turn: uploaded once
                self.order[...] = to_device(np.arange(self.n))
            self.in_turn = order is None
            rates = optimizer.rates(self.n_steps - first).reshape(self.n_steps - first, -1)
            rates = np.concatenate([np.repeat(rates[:1], first, axis=0), rates])  # row k: step k
            if self._rates_from is None or not np.array_equal(rates, self._rates_from):
                self.rates[...] = to_device(rates, dtype=self.rates.dtype)
                self._rates_from = rates
            self.k[...] = first
            self.total[...] = total
            steps = 0
            for _ in range(self.n_steps - first):
                if stop is not None and stop["now"] and (stop["quit"] or steps):
                    break  # a checkpoint's pause once a step is taken (``train._Pass``)
                if self.launch is None:
                    self.step()  # the first step runs as is: kernels compiled, handles made
                    self.launch = self._capture()
                else:
                    self.launch()
                steps += 1
            optimizer.advance(steps)
            total = self.total.copy()
        finally:
            if on_stream:
                self.stream.__exit__(None, None, None)
                caller.wait_event(self.stream.record())
        return total, steps

    def _capture(self):
        """A callable that runs ``step`` again: a CUDA graph's launch where one can be
        captured, else ``step`` itself."""
        if not self.capturable:
            return self.step
        xp = self.net.backend.xp
        pool = xp.cuda.MemoryPool()
        graph = None
        with xp.cuda.using_allocator(pool.malloc):
            self.stream.begin_capture()
            try:
                self.step()
            except Exception as exc:  # noqa: BLE001 - an operation that refuses capture
                self.why_not_captured = f"{type(exc).__name__}: {exc}"
            finally:
                try:
                    graph = self.stream.end_capture()
                except Exception as exc:  # noqa: BLE001 - the capture was invalidated
                    self.why_not_captured = self.why_not_captured or f"{type(exc).__name__}: {exc}"
        if graph is None or self.why_not_captured:
            self.capturable = False
            return self.step
        self.pool, self.graph = pool, graph
        stream = self.stream
        return lambda: graph.launch(stream)
