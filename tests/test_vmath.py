"""The core's element-wise tanh and sigmoid (csrc/vmath.h) against NumPy in float64, over a
dense grid, through the public API: a SimpleRNN step with an identity kernel and no recurrence
is exactly act(x), so one call evaluates the activation on a whole (rows, 64) block, in the
vectorised loops of whichever instruction set the process runs (tests/test_isa.py runs this
file again under each lesser one).

The bounds are the ones vmath.h states, measured there over [-20, 20] in steps of 1e-5."""
from __future__ import annotations

import numpy as np
import pytest

import crnn

WIDTH = 64  # units: wide enough for the vector loops and their tails

#: (dtype, activation) -> stated max absolute error against float64 NumPy of the same input
BOUNDS = {
    ("float32", "tanh"): 4.0e-7,
    ("float32", "sigmoid"): 2.3e-7,
    ("float64", "tanh"): 2.3e-16,
    ("float64", "sigmoid"): 2.3e-16,
}


def _exact(activation: str, x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    if activation == "tanh":
        return np.tanh(x)
    return 0.5 + 0.5 * np.tanh(0.5 * x)  # sigmoid without overflow in exp


def _core_activation(activation: str, values: np.ndarray, dtype: str) -> np.ndarray:
    """act(values) computed by the core: values laid out as (rows, 1, WIDTH)."""
    n = values.size
    rows = -(-n // WIDTH)
    x = np.zeros(rows * WIDTH, dtype=dtype)
    x[:n] = values
    x = x.reshape(rows, 1, WIDTH)
    eye = np.eye(WIDTH, dtype=dtype)
    out = crnn.simple_rnn(x, eye, np.zeros_like(eye), np.zeros(WIDTH, dtype=dtype),
                          activation=activation)
    return out.reshape(-1)[:n]


def _grid(dtype: str) -> np.ndarray:
    # [-20, 20] in steps of 1e-5 (4M points), plus the region near 0 in finer steps, where
    # float64 tanh switches to its Taylor series (|x| < 2^-5)
    coarse = np.arange(-20.0, 20.0, 1e-5)
    fine = np.linspace(-0.05, 0.05, 200_001)
    return np.concatenate([coarse, fine]).astype(dtype)


@pytest.mark.parametrize("dtype,activation", sorted(BOUNDS))
def test_accuracy_within_stated_bound(dtype, activation):
    x = _grid(dtype)
    got = _core_activation(activation, x, dtype)
    err = np.abs(got.astype(np.float64) - _exact(activation, x))
    worst = int(np.argmax(err))
    assert err[worst] <= BOUNDS[(dtype, activation)], (
        f"{activation} {dtype}: error {err[worst]:.3g} at x={x[worst]!r} "
        f"({crnn._core.machine()['isa']} kernels)")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_saturation_and_special_values(dtype, activation):
    big = np.finfo(dtype).max
    lo, mid = (-1.0, 0.0) if activation == "tanh" else (0.0, 0.5)
    # finite values in the vector loops (an infinity cannot pass the identity product: inf * 0
    # is NaN in the other columns)
    x = np.array([big, -big, 1e4, -1e4, 30.0, -30.0, 0.0, -0.0], dtype=dtype)
    got = _core_activation(activation, x, dtype)
    assert np.all(np.abs(got.astype(np.float64) - _exact(activation, x))
                  <= BOUNDS[(dtype, activation)])
    assert np.all((got >= lo) & (got <= 1.0))
    assert list(got[-2:]) == [mid, mid]
    if activation == "tanh":  # saturates exactly, in both dtypes
        np.testing.assert_array_equal(got[:6], [1, -1, 1, -1, 1, -1])
    # a row of NaN stays NaN
    assert np.isnan(_core_activation(activation, np.full(WIDTH, np.nan, dtype), dtype)).all()
    # infinities and NaN through a one-unit layer (the tiny step's inlined activation)
    x = np.array([np.inf, -np.inf, np.nan], dtype=dtype).reshape(3, 1, 1)
    one = np.ones((1, 1), dtype=dtype)
    got = crnn.simple_rnn(x, one, np.zeros_like(one), activation=activation).reshape(-1)
    np.testing.assert_allclose(got[:2], [1, lo], rtol=0, atol=BOUNDS[(dtype, activation)])
    assert np.isnan(got[2]), "NaN must propagate"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_odd_and_monotone(dtype, activation):
    half = np.linspace(0, 12, 24_001).astype(dtype)
    x = np.concatenate([-half[::-1], half[1:]])  # exactly symmetric
    got = _core_activation(activation, x, dtype).astype(np.float64)
    # tanh is odd, sigmoid(-x) = 1 - sigmoid(x): up to the stated error on each side
    twin = -got[::-1] if activation == "tanh" else 1.0 - got[::-1]
    eps = np.finfo(dtype).eps
    assert np.max(np.abs(got - twin)) <= 2 * BOUNDS[(dtype, activation)] + eps
    # non-decreasing, up to the stated error (a rational approximation is not monotone to the
    # last ulp: float32 tanh steps back by up to 3 ulps near +-1)
    assert np.min(np.diff(got)) >= -2 * BOUNDS[(dtype, activation)]
