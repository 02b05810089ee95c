"""Shared helpers for the crnn test-suite: weight factories, derived tolerances,
comparisons and an isolated-subprocess runner.

Tolerances (benchdnn ``rnn.cpp`` style)
---------------------------------------
The oracle is :mod:`crnn.reference` evaluated in float64 on the *same* (upcast)
inputs and weights that crnn received, so the only differences come from
crnn's own rounding in ``dtype``.  One SimpleRNN step computes a dot product of
length ``K = input_dim + units`` and applies an activation whose derivative is
at most 1, so a step adds an error of roughly ``eps * log2(K) * |z|`` (blocked /
pairwise / FMA summation) plus an ulp or two from the activation.  The
recurrent kernels used here have spectral norm ``RHO < 1``, so an error made at
one step is contracted, not amplified, by the following steps; over a chain of
``T * L`` dependent steps (timesteps times layers) the accumulated error is
bounded by the per-step error times a small constant.  Hence::

    tol = eps(dtype) * ceil(log2(K * T * L)) * FACTOR * scale

with ``scale = max(1, max|expected|)`` (the inputs are constructed so that every
value stays O(1)), and ``FACTOR`` a small constant covering the activation's
own ulps and the 1 / (1 - RHO) contraction sum.  A derived tolerance must
never exceed the stated ceiling (1e-5 for float32, 1e-12 for float64 on hidden
states); :func:`derived_tol` asserts that, so a test whose values grew too big
fails loudly instead of silently loosening.
"""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys
import textwrap
from typing import List, Optional, Sequence

import numpy as np

ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")
DIRECTIONS = ("forward", "reverse", "bidirectional")
DTYPES = (np.float32, np.float64)

#: Hard ceilings on the absolute error of hidden states.  Never raise these.
CEILING = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}

#: Spectral norm of every recurrent kernel the tests draw.  < 1 keeps relu and
#: linear networks bounded over 17 steps x 2 layers (|h| <= |input part| / (1 - RHO)).
RHO = 0.5

#: Small safety factor of the derived tolerance (see module docstring).  The
#: float32 NumPy reference (BLAS sgemv + libm tanhf) measured at most ~0.6 of
#: eps*ceil(log2(K*T*L)) over the whole test grid; 4 leaves room for a
#: vectorised float32 tanh/sigmoid that is accurate to a few ulp.
FACTOR = 4.0


def derived_tol(dtype, k: int, steps: int, scale: float = 1.0, factor: float = FACTOR) -> float:
    """benchdnn-style absolute tolerance; asserts it stays under the ceiling."""
    dt = np.dtype(dtype)
    eps = float(np.finfo(dt).eps)
    tol = eps * math.ceil(math.log2(max(2, k * steps))) * factor * max(1.0, float(scale))
    ceiling = CEILING[dt]
    assert tol <= ceiling, (
        f"derived tolerance {tol:.3g} for {dt} (K={k}, steps={steps}, scale={scale:.3g}) "
        f"exceeds the ceiling {ceiling:g}: the test inputs are too large, fix the test data")
    return tol


def value_scale(*arrays) -> float:
    """max(1, max |finite value|) over arrays (lists of arrays allowed)."""
    m = 1.0
    for a in arrays:
        if a is None:
            continue
        if isinstance(a, (list, tuple)):
            m = max(m, value_scale(*a))
            continue
        a = np.asarray(a)
        if a.size:
            fin = a[np.isfinite(a)]
            if fin.size:
                m = max(m, float(np.max(np.abs(fin))))
    return m


def recurrent_matrix(rng: np.random.Generator, units: int, rho: float = RHO) -> np.ndarray:
    """(units, units) float64 matrix with spectral norm ``rho`` (to rounding)."""
    r = rng.uniform(-1.0, 1.0, (units, units))
    # The largest singular value as the root of r.T @ r's largest eigenvalue: half the time of
    # np.linalg.norm(r, 2)'s SVD, which was 40 % of the cell and threading tests' time (the
    # suite builds ~20,000 of these, three times over with the instruction-set runs).
    return r * (rho / math.sqrt(np.linalg.eigvalsh(r.T @ r)[-1]))


#: kernel/bias ~ U(-s, s) with s = GAIN / sqrt(D + H).
GAIN = 0.5

#: Exact (power of two) extra gain applied to kernel and bias for the bounded
#: activations, so tanh/sigmoid are exercised well into saturation.
BOUNDED_GAIN = 4.0


def make_layer_weights(rng, input_dim: int, units: int, dtype, bias: bool = True,
                       rho: float = RHO, gain: float = GAIN):
    """[kernel (D,H), recurrent_kernel (H,H), bias (H,) or None] in ``dtype``.

    kernel and bias ~ U(-s, s) with s = gain/sqrt(D + H), so |x_t @ kernel + b|
    is O(gain) for |x| <= 1; recurrent kernel has spectral norm ``rho`` < 1, so a
    relu/linear state stays below |x_t @ kernel + b| / (1 - rho): O(1) over any
    number of steps and layers (measured: max |h| < 1.5 over the test grid).
    """
    s = gain / math.sqrt(input_dim + units)
    k = rng.uniform(-s, s, (input_dim, units)).astype(dtype)
    r = recurrent_matrix(rng, units, rho).astype(dtype)
    b = rng.uniform(-s, s, (units,)).astype(dtype) if bias else None
    return [k, r, b]


#: Gates of each cell kind (kernel (D, G*H), recurrent kernel (H, G*H)).
GATES = {"simple": 1, "lstm": 4, "gru": 3}


def make_cell_weights(rng, cell: str, input_dim: int, units: int, dtype, bias: bool = True,
                      recurrent_bias: bool = False, rho: float = RHO, gain: float = GAIN):
    """A core stack entry ``[kernel, recurrent_kernel, bias, recurrent_bias]`` for ``cell``.

    As :func:`make_layer_weights`, per gate: kernel and biases ~ U(-s, s) with
    s = gain / sqrt(D + H), each gate's block of the recurrent kernel of spectral norm ``rho``.
    The gates of LSTM and GRU are then moderate (sigmoid of small arguments) and the states stay
    O(1) with bounded activations: |h| <= 1; an LSTM's c grows by at most |i * g| per step.
    """
    g = GATES[cell]
    s = gain / math.sqrt(input_dim + units)
    k = rng.uniform(-s, s, (input_dim, g * units)).astype(dtype)
    r = np.hstack([recurrent_matrix(rng, units, rho) for _ in range(g)]).astype(dtype)
    b = rng.uniform(-s, s, (g * units,)).astype(dtype) if bias else None
    rb = rng.uniform(-s, s, (g * units,)).astype(dtype) if recurrent_bias else None
    return [k, r, b, rb]


def state_tol(dtype, k: int, steps: int, scale: float = 1.0) -> float:
    """Tolerance of an unbounded state (an LSTM's c, or h through a relu / linear activation):
    the derived tolerance of a value of order one (:func:`derived_tol`, under the ceiling),
    relative to the state's magnitude ``scale``."""
    return derived_tol(dtype, k, steps) * max(1.0, float(scale))


def make_stack_weights(rng, input_dim: int, units: Sequence[int], ndir: int, dtype,
                       bias: bool = True, gain: float = GAIN) -> List[List[list]]:
    """Weights for crnn.simple_rnn_stack: layers x directions x [k, r, b]."""
    weights = []
    d = input_dim
    for h in units:
        weights.append([make_layer_weights(rng, d, h, dtype, bias, gain=gain) for _ in range(ndir)])
        d = h * ndir
    return weights


def scaled(weights, g: float):
    """Kernels and biases times ``g`` (recurrent kernels untouched); exact for g = 2**n."""
    return [[[k * k.dtype.type(g), r, None if b is None else b * b.dtype.type(g)]
             for (k, r, b) in layer] for layer in weights]


def stack_k(input_dim: int, units: Sequence[int], ndir: int) -> int:
    """Longest dot product (input width + units) over the layers of a stack."""
    k, d = 0, input_dim
    for h in units:
        k = max(k, d + h)
        d = h * ndir
    return k


def units_for_bytes(nbytes: float, gates: int, es: int) -> int:
    """The fewest units whose recurrent weights (gates x units x units of es bytes) fill
    nbytes: sizes a layer against the caches `crnn._core.machine()` reports."""
    return int(math.ceil(math.sqrt(nbytes / (gates * es))))


@functools.lru_cache(maxsize=None)
def blas_column_splits_agree(dtype) -> bool:
    """Whether crnn's BLAS gives each column of an input projection of 16 inputs (the tests'
    width) the same bits whichever columns one call covers (a units split projects each
    thread's columns apart). OpenBLAS's SkylakeX kernels do; its Haswell sgemm (AVX2 CPUs) does
    not, dgemm there does. Wider inputs may not: SkylakeX dgemm split by columns moved 1-2 ulp
    from about 200 inputs on (a float64 SimpleRNN (1,120,200,247) on two threads against one),
    which only a test with such inputs would need to check."""
    import crnn
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (120, 16)).astype(dtype)
    k = rng.uniform(-1, 1, (16, 192)).astype(dtype)
    whole = crnn._core.dense_forward(x, k, None)
    for c in (32, 64, 96, 128):
        parts = [crnn._core.dense_forward(x, np.ascontiguousarray(k[:, :c]), None),
                 crnn._core.dense_forward(x, np.ascontiguousarray(k[:, c:]), None)]
        if np.concatenate(parts, axis=1).tobytes() != whole.tobytes():
            return False
    return True


def flat_states(states) -> list:
    """Final states as returned (one entry per layer and direction: h, or [h, c] for an LSTM)
    as one flat list of arrays; None: empty."""
    return [a for e in (states or []) for a in (e if isinstance(e, (list, tuple)) else [e])]


def to64(obj):
    """Recursively upcast arrays (in lists) to float64; keeps None."""
    if obj is None:
        return None
    if isinstance(obj, (list, tuple)):
        return type(obj)(to64(o) for o in obj)
    return np.asarray(obj, dtype=np.float64)


def deep_copy(obj):
    if obj is None:
        return None
    if isinstance(obj, (list, tuple)):
        return type(obj)(deep_copy(o) for o in obj)
    return np.array(obj, copy=True)


def assert_unchanged(before, after, what: str = "input"):
    """Bitwise equality of nested arrays (NaN-safe)."""
    if before is None:
        assert after is None, what
        return
    if isinstance(before, (list, tuple)):
        assert len(before) == len(after), what
        for i, (b, a) in enumerate(zip(before, after)):
            assert_unchanged(b, a, f"{what}[{i}]")
        return
    a = np.asarray(after)
    assert a.shape == before.shape and a.dtype == before.dtype, f"{what} changed shape/dtype"
    assert a.tobytes() == np.ascontiguousarray(before).tobytes(), f"{what} was modified in place"


def assert_close(actual, expected, tol: float, msg: str = "", dtype=None):
    """Same shape (and dtype if given), same NaN/+-Inf positions, |diff| <= tol elsewhere."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{msg}: shape {actual.shape} != expected {expected.shape}"
    if dtype is not None:
        assert actual.dtype == np.dtype(dtype), f"{msg}: dtype {actual.dtype} != expected {np.dtype(dtype)}"
    if actual.size == 0:
        return
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    assert np.array_equal(nan_a, nan_e), (
        f"{msg}: NaN positions differ: {int(nan_a.sum())} NaN in result vs {int(nan_e.sum())} "
        f"expected; first mismatch at {np.argwhere(nan_a != nan_e)[0].tolist()}")
    inf_a = np.isinf(a)
    inf_e = np.isinf(e)
    assert np.array_equal(inf_a, inf_e) and np.array_equal(a[inf_a], e[inf_e]), (
        f"{msg}: +-Inf positions differ ({int(inf_a.sum())} vs {int(inf_e.sum())} expected)")
    fin = np.isfinite(e)
    if not fin.any():
        return
    err = np.abs(a[fin] - e[fin])
    worst = int(np.argmax(err))
    assert err[worst] <= tol, (
        f"{msg}: max abs error {err[worst]:.3g} > tol {tol:.3g} "
        f"(at {np.argwhere(fin)[worst].tolist()}: got {a[fin][worst]!r}, expected {e[fin][worst]!r})")


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_isolated(code: str, timeout: float = 120.0, mem_limit_gib: Optional[float] = None,
                 args: Sequence[str] = ()) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (so a segfault fails a test, not pytest).

    ``mem_limit_gib`` caps the child's address space with RLIMIT_AS so that a
    test about huge sizes can never eat the machine's memory.
    """
    prelude = ""
    if mem_limit_gib is not None:
        lim = int(mem_limit_gib * 2**30)
        prelude = ("import resource\n"
                   f"resource.setrlimit(resource.RLIMIT_AS, ({lim}, {lim}))\n")
    env = _child_env()
    if mem_limit_gib is not None:
        env["OPENBLAS_NUM_THREADS"] = "1"  # fewer thread buffers under the address-space cap
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=REPO_ROOT)


def run_module(*args: str, timeout: float = 300.0) -> subprocess.CompletedProcess:
    """``python -m <args>`` in a fresh interpreter, from the repository root."""
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          timeout=timeout, env=_child_env(), cwd=REPO_ROOT)


def _child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def describe(proc: subprocess.CompletedProcess) -> str:
    return (f"exit code {proc.returncode}\n--- stdout ---\n{proc.stdout[-3000:]}"
            f"\n--- stderr ---\n{proc.stderr[-3000:]}")


def run_threaded(fn, n_threads: int = 8, timeout: float = 300.0) -> list:
    """Call fn(i) in n threads released together (cython-blis ``run_threaded`` pattern); return
    the results in thread order and re-raise the first error in the calling thread."""
    import threading

    barrier = threading.Barrier(n_threads)
    results = [None] * n_threads
    errors = []

    def worker(i):
        try:
            barrier.wait()
            results[i] = fn(i)
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results
