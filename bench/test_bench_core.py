"""pytest-benchmark cases: crnn's C core against the NumPy reference.

Run (from the repository root, after ``pip install -e ".[bench]"``)::

    pytest bench/ --benchmark-only

Useful extras: ``--benchmark-group-by=group`` (the default here: one table per shape),
``--benchmark-columns=min,median,mean,iqr,rounds``, ``--benchmark-save=NAME`` /
``--benchmark-compare``, ``-k "float64"`` or ``-k "crnn"`` to select.

The normal test run does not collect this directory (``testpaths = ["tests"]`` in
pyproject.toml), and nothing here is a timing assertion: the only assertions are that crnn's
output equals the reference (before timing, at shapes where the reference is affordable).

What is timed: ``handle.forward(x)`` of a prebuilt ``crnn._core.RNN`` handle (one layer of each
cell: SimpleRNN (tanh), LSTM and GRU (``reset_after=True``, with a recurrent bias); bias,
``return_sequences=True``, zero initial state) at crnn's default thread count, and
``crnn.reference.rnn_stack`` on the same data. Shapes (B, T, D, H), for every cell: the
``python -m crnn`` shapes (core and reference), the grid of issue 4 and three batches of 2-4
rows (core; the reference only where B*T*G*H*H <= 5e7, G the cell's gates: it is far too slow
beyond) and float64 variants of two large shapes. ``-k lstm`` (or ``simple``, ``gru``) selects
one cell. Besides, ``test_predict_in_batches`` times ``model.predict`` of a GRU model in
batches of 32, at the default thread count and at one thread.
For the side-by-side comparison with PyTorch, ONNX Runtime and oneDNN, see ``bench/peers.py``.
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
# Batches of 2-7 rows, which split their rows down to a row a thread, pipeline, or split their
# units over large weights (the plan depends on the cell and the machine's L2).
SMALL_BATCH_SHAPES = [(2, 100, 16, 128), (3, 100, 128, 128), (4, 100, 16, 448)]
FLOAT64_SHAPES = [(32, 50, 128, 256), (64, 20, 512, 1024)]
CELLS = {"simple": 1, "lstm": 4, "gru": 3}  # cell: gates G
REFERENCE_MAX_WORK = 5e7  # B*T*G*H*H above which the reference is not run
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}  # max abs error against the float64 reference


def _reference_affordable(cell, shape) -> bool:
    B, T, _, H = shape
    return B * T * CELLS[cell] * H * H <= REFERENCE_MAX_WORK


def _cases():
    cases = []
    # CLI shapes first, no duplicates
    shapes = list(dict.fromkeys(CLI_SHAPES + GRID_SHAPES + SMALL_BATCH_SHAPES))
    for cell in CELLS:
        for dtype, cell_shapes in (("float32", shapes), ("float64", FLOAT64_SHAPES)):
            for shape in cell_shapes:
                cases.append(("crnn", cell, shape, dtype))
                if _reference_affordable(cell, shape):
                    cases.append(("reference", cell, shape, dtype))
    return cases


def _id(case) -> str:
    impl, cell, (B, T, D, H), dtype = case
    return f"{impl}-{cell}-{dtype}-B{B}-T{T}-D{D}-H{H}"


_DATA: dict = {}


def _data(cell, shape, dtype):
    """Same weights and input for every implementation of a cell and shape (cached): Keras
    layout, kernel (D, G*H), recurrent kernel (H, G*H), bias (G*H,), and for GRU a recurrent
    bias (G*H,)."""
    key = (cell, shape, dtype)
    if key not in _DATA:
        B, T, D, H = shape
        G = CELLS[cell]
        rng = np.random.default_rng(1234)
        scale = 1.0 / np.sqrt(H)
        K = rng.uniform(-scale, scale, (D, G * H)).astype(dtype)
        R = rng.uniform(-scale, scale, (H, G * H)).astype(dtype)
        b = rng.uniform(-scale, scale, (G * H,)).astype(dtype)
        x = rng.standard_normal((B, T, D)).astype(dtype)
        entry = [K, R, b]
        if cell == "gru":
            entry.append(rng.uniform(-scale, scale, (G * H,)).astype(dtype))
        _DATA[key] = (x, [[entry]])
    return _DATA[key]


def _exact(cell, shape, dtype):
    """The float64 reference output, when affordable (cached)."""
    key = ("exact", cell, shape, dtype)
    if key not in _DATA:
        x, weights = _data(cell, shape, dtype)
        f64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
        w64 = [[[f64(a) for a in w] for w in layer] for layer in weights]
        _DATA[key] = crnn.reference.rnn_stack(f64(x), w64, cell=cell, reset_after=True,
                                              return_sequences=True)
    return _DATA[key]


@pytest.mark.parametrize("case", _cases(), ids=_id)
def test_forward(benchmark, case):
    impl, cell, shape, dtype = case
    B, T, D, H = shape
    x, weights = _data(cell, shape, dtype)
    benchmark.group = f"{cell} (B,T,D,H)=({B},{T},{D},{H}) {dtype}"
    benchmark.extra_info.update({
        "cell": cell, "shape": list(shape), "dtype": dtype, "impl": impl,
        "flops": 2 * B * T * CELLS[cell] * (D * H + H * H),
        "crnn_threads": crnn.get_num_threads(),
    })
    if impl == "crnn":
        handle = crnn._core.RNN(weights, cell=cell, activation="tanh", reset_after=True,
                                direction="forward", dtype=dtype)
        fn, args = handle.forward, (x,)
    else:
        def fn(x, weights):
            return crnn.reference.rnn_stack(x, weights, cell=cell, reset_after=True,
                                            return_sequences=True)
        args = (x, weights)

    if _reference_affordable(cell, shape):  # correctness first: a wrong result is not timed
        got = fn(*args)
        assert got.shape == (B, T, H) and got.dtype == np.dtype(dtype)
        err = float(np.max(np.abs(got.astype(np.float64) - _exact(cell, shape, dtype))))
        assert err <= TOLERANCE[dtype], f"max abs error {err:.3g} > {TOLERANCE[dtype]:g}"

    out = benchmark(fn, *args)
    assert out.shape == (B, T, H)


@pytest.mark.parametrize("threads", ["default", 1])
def test_predict_in_batches(benchmark, threads):
    """``model.predict`` of a GRU model over 256 sequences (256,100,256) -> 512 units in Keras's
    default batches of 32: a stream of units-split calls, each writing a fresh output (page
    faults in the call). At 2 threads it took 0.55-0.6 of the one-thread time on a 2-vCPU Xeon
    (193 against 323 ms); a pool that gives up its threads after rare stalls takes the
    one-thread time."""
    model = crnn.Sequential()
    model.add(crnn.GRU(512, input_shape=(100, 256), return_sequences=True))
    x = np.random.default_rng(7).standard_normal((256, 100, 256)).astype(np.float32)
    benchmark.group = "predict GRU (256,100,256,512) in batches of 32"
    saved = crnn.get_num_threads()
    if threads != "default":
        crnn.set_num_threads(threads)
    benchmark.extra_info.update({"crnn_threads": crnn.get_num_threads()})
    try:
        model.predict(x[:32])  # built, warm
        out = benchmark.pedantic(model.predict, args=(x,), rounds=5, iterations=1)
    finally:
        crnn.set_num_threads(saved)
    assert out.shape == (256, 100, 512)
