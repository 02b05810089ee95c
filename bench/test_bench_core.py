"""pytest-benchmark cases: crnn's C core against the NumPy reference.

Run (from the repository root, after ``pip install -e ".[bench]"``)::

    pytest bench/ --benchmark-only

Useful extras: ``--benchmark-group-by=group`` (the default here: one table per shape),
``--benchmark-columns=min,median,mean,iqr,rounds``, ``--benchmark-save=NAME`` /
``--benchmark-compare``, ``-k "float64"`` or ``-k "crnn"`` to select.

The normal test run does not collect this directory (``testpaths = ["tests"]`` in
pyproject.toml), and nothing here is a timing assertion: the only assertions are that crnn's
output equals the reference (before timing, at shapes where the reference is affordable).

What is timed: ``handle.forward(x)`` of a prebuilt ``crnn._core.RNN`` handle (one SimpleRNN layer,
tanh, bias, ``return_sequences=True``, zero initial state) at crnn's default thread count, and
``crnn.reference.simple_rnn_stack`` on the same data. Shapes (B, T, D, H): the ``python -m crnn``
shapes (core and reference), the grid of issue 4 (core; the reference only where
B*T*H*H <= 5e7, it is far too slow beyond) and float64 variants of two large shapes.
For the side-by-side comparison with PyTorch and ONNX Runtime, see ``bench/peers.py``.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")

import crnn  # noqa: E402
import crnn._core  # noqa: E402
import crnn.reference  # noqa: E402

# The shapes `python -m crnn` benchmarks.
CLI_SHAPES = [(8, 2, 10, 3), (1, 10, 4, 8), (16, 50, 128, 128), (1, 100, 128, 256)]
# The grid of issue 4.
GRID_SHAPES = [
    (8, 2, 10, 3), (1, 10, 4, 8), (1, 50, 64, 128), (1, 100, 128, 256), (1, 1000, 32, 64),
    (16, 50, 128, 128), (32, 50, 128, 256), (64, 20, 512, 1024), (256, 100, 256, 512),
]
FLOAT64_SHAPES = [(32, 50, 128, 256), (64, 20, 512, 1024)]
REFERENCE_MAX_WORK = 5e7  # B*T*H*H above which the reference is not run
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}  # max abs error against the float64 reference


def _reference_affordable(shape) -> bool:
    B, T, _, H = shape
    return B * T * H * H <= REFERENCE_MAX_WORK


def _cases():
    cases = []
    shapes = list(dict.fromkeys(CLI_SHAPES + GRID_SHAPES))  # CLI shapes first, no duplicates
    for shape in shapes:
        cases.append(("crnn", shape, "float32"))
        if _reference_affordable(shape):
            cases.append(("reference", shape, "float32"))
    for shape in FLOAT64_SHAPES:
        cases.append(("crnn", shape, "float64"))
        if _reference_affordable(shape):
            cases.append(("reference", shape, "float64"))
    return cases


def _id(case) -> str:
    impl, (B, T, D, H), dtype = case
    return f"{impl}-{dtype}-B{B}-T{T}-D{D}-H{H}"


_DATA: dict = {}


def _data(shape, dtype):
    """Same weights and input for every implementation of a shape (cached)."""
    key = (shape, dtype)
    if key not in _DATA:
        B, T, D, H = shape
        rng = np.random.default_rng(1234)
        scale = 1.0 / np.sqrt(H)
        K = rng.uniform(-scale, scale, (D, H)).astype(dtype)
        R = rng.uniform(-scale, scale, (H, H)).astype(dtype)
        b = rng.uniform(-scale, scale, (H,)).astype(dtype)
        x = rng.standard_normal((B, T, D)).astype(dtype)
        _DATA[key] = (x, [[[K, R, b]]])
    return _DATA[key]


def _exact(shape, dtype):
    """The float64 reference output, when affordable (cached)."""
    key = ("exact", shape, dtype)
    if key not in _DATA:
        x, weights = _data(shape, dtype)
        f64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
        w64 = [[[f64(a) for a in w] for w in layer] for layer in weights]
        _DATA[key] = crnn.reference.simple_rnn_stack(f64(x), w64, return_sequences=True)
    return _DATA[key]


@pytest.mark.parametrize("case", _cases(), ids=_id)
def test_forward(benchmark, case):
    impl, shape, dtype = case
    B, T, D, H = shape
    x, weights = _data(shape, dtype)
    benchmark.group = f"(B,T,D,H)=({B},{T},{D},{H}) {dtype}"
    benchmark.extra_info.update({
        "shape": list(shape), "dtype": dtype, "impl": impl,
        "flops": 2 * B * T * (D * H + H * H), "crnn_threads": crnn.get_num_threads(),
    })
    if impl == "crnn":
        handle = crnn._core.RNN(weights, activation="tanh", direction="forward", dtype=dtype)
        fn, args = handle.forward, (x,)
    else:
        fn, args = crnn.reference.simple_rnn_stack, (x, weights)

    if _reference_affordable(shape):  # correctness first: a wrong result is not timed
        got = fn(*args)
        assert got.shape == (B, T, H) and got.dtype == np.dtype(dtype)
        err = float(np.max(np.abs(got.astype(np.float64) - _exact(shape, dtype))))
        assert err <= TOLERANCE[dtype], f"max abs error {err:.3g} > {TOLERANCE[dtype]:g}"

    out = benchmark(fn, *args)
    assert out.shape == (B, T, H)
