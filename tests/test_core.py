"""The compiled core (crnn.simple_rnn_stack, crnn.simple_rnn, crnn._core.RNN) against the
NumPy oracle crnn.reference.

The oracle always runs in float64 on the float64 upcast of exactly the arrays crnn received, so
every difference is crnn's own rounding. Tolerances are derived per case (see _helpers.py:
eps(dtype) * ceil(log2(K * T * L)) * FACTOR * value scale, K = input width + units) and must stay
under the ceilings 1e-5 (float32) / 1e-12 (float64).

Test data keep every value O(1) (measured max |h| <= 1.04 over the grid, the initial states'
U(-1, 1) included): x ~ U(-1, 1); kernel and bias ~ U(-s, s) with s = 0.5 / sqrt(D + H), times an
exact 4 for tanh/sigmoid so those run well into saturation; recurrent kernels have spectral norm
0.5, so relu/linear states stay below |x @ kernel + b| / (1 - 0.5) after any number of steps.
"""
import itertools
import sys
import threading

import numpy as np
import pytest

import crnn
from crnn import reference

from _helpers import (ACTIVATIONS, BOUNDED_GAIN, DIRECTIONS, assert_close, assert_unchanged,
                      deep_copy, derived_tol, make_cell_weights, make_layer_weights,
                      make_stack_weights, run_threaded, scaled, stack_k, to64, value_scale)

DT_IDS = {np.float32: "f32", np.float64: "f64"}


def _ndir(direction):
    return 2 if direction == "bidirectional" else 1


def _last(states, ndir):
    """Expected output for return_sequences=False: last layer's final states, concatenated."""
    return states[-1] if ndir == 1 else np.concatenate(states[-2:], axis=1)


def _weights_for(act, w):
    return scaled(w, BOUNDED_GAIN) if act in ("tanh", "sigmoid") else w


def _ref_stack(x, weights, h0=None, **kw):
    """Oracle in float64: (sequence output, states)."""
    return reference.simple_rnn_stack(to64(x), to64(weights), initial_state=to64(h0),
                                      return_sequences=True, return_state=True, **kw)


def _check_stack_result(res, ref_seq, ref_states, ndir, return_sequences, return_state,
                        dtype, tol, msg):
    expected = ref_seq if return_sequences else _last(ref_states, ndir)
    if return_state:
        assert isinstance(res, tuple) and len(res) == 2, f"{msg}: expected (output, states), got {type(res)}"
        out, states = res
        assert isinstance(states, list), f"{msg}: states is {type(states)}, expected list"
        assert len(states) == len(ref_states), f"{msg}: {len(states)} states, expected {len(ref_states)}"
        for i, (s, e) in enumerate(zip(states, ref_states)):
            assert_close(s, e, tol, f"{msg} state[{i}]", dtype)
    else:
        assert isinstance(res, np.ndarray), f"{msg}: expected an ndarray, got {type(res)}"
        out = res
    assert_close(out, expected, tol, f"{msg} output", dtype)


# ---------------------------------------------------------------------------------------------
# The grid: 216 shape items; inside each, every layers x direction x bias x initial state x
# activation x return_sequences x return_state combination (96 oracle runs, 384 crnn calls).
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("H", [1, 3, 8, 33])
@pytest.mark.parametrize("D", [1, 4, 10])
@pytest.mark.parametrize("T", [1, 2, 17])
@pytest.mark.parametrize("B", [1, 3, 8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DT_IDS.get)
def test_stack_grid(dtype, B, T, D, H, rng):
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    x_copy = x.copy()
    checked = 0
    for L, direction, bias in itertools.product((1, 2), DIRECTIONS, (True, False)):
        ndir = _ndir(direction)
        w_base = make_stack_weights(rng, D, [H] * L, ndir, dtype, bias=bias)
        k = stack_k(D, [H] * L, ndir)
        for init in (False, True):
            h0 = [rng.uniform(-1, 1, (B, H)).astype(dtype) for _ in range(L * ndir)] if init else None
            for act in ACTIVATIONS:
                w = _weights_for(act, w_base)
                w_copy, h0_copy = deep_copy(w), deep_copy(h0)
                ref_seq, ref_states = _ref_stack(x, w, h0, activation=act, direction=direction)
                tol = derived_tol(dtype, k, T * L, value_scale(ref_seq, ref_states, h0))
                for rs, rst in itertools.product((True, False), (True, False)):
                    msg = (f"{np.dtype(dtype)} B={B} T={T} D={D} H={H} layers={L} {direction} "
                           f"bias={bias} h0={'given' if init else 'none'} {act} "
                           f"return_sequences={rs} return_state={rst}")
                    res = crnn.simple_rnn_stack(x, w, activation=act, direction=direction,
                                                initial_state=h0, return_sequences=rs,
                                                return_state=rst)
                    _check_stack_result(res, ref_seq, ref_states, ndir, rs, rst, dtype, tol, msg)
                    checked += 1
                assert_unchanged(w_copy, w, "weights")
                assert_unchanged(h0_copy, h0, "initial_state")
    assert_unchanged(x_copy, x, "x")
    assert checked == 2 * 3 * 2 * 2 * 4 * 4


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DT_IDS.get)
@pytest.mark.parametrize("B,T,D,H", [(1, 40, 64, 256), (33, 9, 100, 129), (128, 5, 7, 300),
                                     (2, 200, 8, 16), (5, 3, 513, 2)])
def test_larger_shapes(dtype, B, T, D, H, rng):
    """Shapes past the small-shape paths: GEMV at B=1, odd large H, long T, wide D."""
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    for L, direction in [(1, "forward"), (2, "bidirectional"), (1, "reverse")]:
        ndir = _ndir(direction)
        w_base = make_stack_weights(rng, D, [H] * L, ndir, dtype)
        for act in ("tanh", "relu"):
            w = _weights_for(act, w_base)
            ref_seq, ref_states = _ref_stack(x, w, activation=act, direction=direction)
            tol = derived_tol(dtype, stack_k(D, [H] * L, ndir), T * L, value_scale(ref_seq))
            res = crnn.simple_rnn_stack(x, w, activation=act, direction=direction, return_state=True)
            _check_stack_result(res, ref_seq, ref_states, ndir, True, True, dtype, tol,
                                f"{np.dtype(dtype)} B={B} T={T} D={D} H={H} L={L} {direction} {act}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DT_IDS.get)
def test_per_layer_units_activations_and_none_states(dtype, rng):
    """Layers of different widths and activations; initial_state lists with None entries."""
    B, T, D = 4, 7, 6
    units = [5, 3, 9]
    for direction in DIRECTIONS:
        ndir = _ndir(direction)
        w = make_stack_weights(rng, D, units, ndir, dtype)
        acts = ["relu", None, "sigmoid"]
        h0 = []
        for u in units:
            for d in range(ndir):
                h0.append(None if (len(h0) % 2) else rng.uniform(-1, 1, (B, u)).astype(dtype))
        x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
        ref_seq, ref_states = _ref_stack(x, w, h0, activation=acts, direction=direction)
        assert ref_seq.shape == (B, T, ndir * units[-1])
        tol = derived_tol(dtype, stack_k(D, units, ndir), T * len(units), value_scale(ref_seq, h0))
        for rs, rst in itertools.product((True, False), (True, False)):
            res = crnn.simple_rnn_stack(x, w, activation=acts, direction=direction, initial_state=h0,
                                        return_sequences=rs, return_state=rst)
            _check_stack_result(res, ref_seq, ref_states, ndir, rs, rst, dtype, tol,
                                f"{direction} units={units} acts={acts} rs={rs} rst={rst}")


# ---------------------------------------------------------------------------------------------
# lengths
# ---------------------------------------------------------------------------------------------
def _alone(x, w, h0, lengths, act, direction):
    """Expected results built by running each sequence alone (and truncated) through the oracle."""
    B, T, _ = x.shape
    ndir = _ndir(direction)
    nent = sum(1 for layer in w for _ in layer)
    units = [layer[0][1].shape[0] for layer in w]
    ent_units = [u for u in units for _ in range(ndir)]
    seq = np.zeros((B, T, ndir * units[-1]))
    states = [np.zeros((B, u)) for u in ent_units]
    for i in range(B):
        n = int(lengths[i])
        h0_i = None if h0 is None else [None if h is None else to64(h)[i:i + 1] for h in h0]
        if n == 0:  # no step taken: output zero, final state = initial state
            for e in range(nent):
                if h0_i is not None and h0_i[e] is not None:
                    states[e][i] = h0_i[e][0]
            continue
        o, s = reference.simple_rnn_stack(to64(x)[i:i + 1, :n], to64(w), activation=act,
                                          direction=direction, initial_state=h0_i,
                                          return_state=True)
        seq[i, :n] = o[0]
        for e in range(nent):
            states[e][i] = s[e][0]
    return seq, states


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DT_IDS.get)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("L", [1, 2])
def test_lengths_equal_running_each_sequence_alone(dtype, direction, L, rng):
    B, T, D, H = 6, 9, 4, 7
    ndir = _ndir(direction)
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    # Poison the padding: whatever lies past a sequence's length must not leak into anything.
    lengths = np.array([T, 0, 1, 5, T - 1, 3], dtype=np.int64)
    for i, n in enumerate(lengths):
        x[i, n:] = np.nan
    x_copy = x.copy()
    for act in ACTIVATIONS:
        w = _weights_for(act, make_stack_weights(rng, D, [H] * L, ndir, dtype))
        for init in (False, True):
            h0 = [rng.uniform(-1, 1, (B, H)).astype(dtype) for _ in range(L * ndir)] if init else None
            exp_seq, exp_states = _alone(x, w, h0, lengths, act, direction)
            tol = derived_tol(dtype, stack_k(D, [H] * L, ndir), T * L, value_scale(exp_seq, h0))
            for lens in (lengths, lengths.astype(np.int32), lengths.tolist()):
                for rs, rst in itertools.product((True, False), (True, False)):
                    msg = (f"lengths={list(lengths)} {type(lens).__name__} {direction} L={L} {act} "
                           f"h0={init} rs={rs} rst={rst}")
                    res = crnn.simple_rnn_stack(x, w, activation=act, direction=direction,
                                                initial_state=h0, lengths=lens,
                                                return_sequences=rs, return_state=rst)
                    _check_stack_result(res, exp_seq, exp_states, ndir, rs, rst, dtype, tol, msg)
            # the oracle agrees with running alone too (guards the expectation itself)
            ref_seq, ref_states = _ref_stack(x, w, h0, activation=act, direction=direction,
                                             lengths=lengths)
            assert_close(ref_seq, exp_seq, 1e-12, "reference vs alone")
    assert_unchanged(x_copy, x, "x")


def test_lengths_all_full_equals_no_lengths(rng):
    B, T, D, H = 3, 5, 2, 4
    x = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
    w = make_stack_weights(rng, D, [H], 2, np.float32)
    full = crnn.simple_rnn_stack(x, w, direction="bidirectional", lengths=np.full(B, T))
    plain = crnn.simple_rnn_stack(x, w, direction="bidirectional")
    ref = reference.simple_rnn_stack(to64(x), to64(w), direction="bidirectional")
    tol = derived_tol(np.float32, D + H, T)
    assert_close(full, ref, tol, "lengths=T", np.float32)
    assert_close(plain, ref, tol, "no lengths", np.float32)


# ---------------------------------------------------------------------------------------------
# crnn.simple_rnn (one Keras layer, functionally)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DT_IDS.get)
@pytest.mark.parametrize("B,T,D,H", [(1, 1, 1, 1), (3, 6, 5, 4), (8, 17, 10, 33)])
def test_simple_rnn_variants(dtype, B, T, D, H, rng):
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    for act, bias, init in itertools.product(ACTIVATIONS + (None,), (True, False), (False, True)):
        k, r, b = make_layer_weights(rng, D, H, dtype, bias=bias)
        if act in ("tanh", "sigmoid"):
            k, b = k * dtype(4), None if b is None else b * dtype(4)
        h0 = rng.uniform(-1, 1, (B, H)).astype(dtype) if init else None
        for gb, rs, rst in itertools.product((False, True), repeat=3):
            msg = f"{np.dtype(dtype)} {act} bias={bias} h0={init} go_backwards={gb} rs={rs} rst={rst}"
            exp = reference.simple_rnn(to64(x), to64(k), to64(r), to64(b), to64(h0), activation=act,
                                       go_backwards=gb, return_sequences=rs, return_state=True)
            tol = derived_tol(dtype, D + H, T, value_scale(exp, h0))
            res = crnn.simple_rnn(x, k, r, b, h0, activation=act, go_backwards=gb,
                                  return_sequences=rs, return_state=rst)
            if rst:
                assert isinstance(res, list) and len(res) == 2, f"{msg}: got {type(res)}"
                assert_close(res[0], exp[0], tol, msg + " output", dtype)
                assert_close(res[1], exp[1], tol, msg + " state", dtype)
            else:
                assert isinstance(res, np.ndarray), msg
                assert_close(res, exp[0], tol, msg + " output", dtype)
            if gb and rs:
                # Keras: go_backwards returns the sequence in processing (reversed) order, so its
                # first frame is the state after reading x[:, -1] alone.
                one = reference.simple_rnn(to64(x[:, -1:]), to64(k), to64(r), to64(b), to64(h0),
                                           activation=act)
                assert_close((res[0] if rst else res)[:, 0], one, tol, msg + " first frame", dtype)


def test_simple_rnn_last_equals_sequence_end(rng):
    """Independent of the oracle: last output == final state == last frame of the sequence."""
    x = rng.uniform(-1, 1, (4, 6, 3)).astype(np.float32)
    k, r, b = make_layer_weights(rng, 3, 5, np.float32)
    seq, h = crnn.simple_rnn(x, k, r, b, return_sequences=True, return_state=True)
    last = crnn.simple_rnn(x, k, r, b)
    assert seq.shape == (4, 6, 5) and h.shape == (4, 5) and last.shape == (4, 5)
    np.testing.assert_array_equal(seq[:, -1], h)
    np.testing.assert_array_equal(last, h)
    # one step by hand
    z = x[:, 0].astype(np.float64) @ k + b
    assert_close(seq[:, 0], np.tanh(z), derived_tol(np.float32, 8, 1), "first step by hand")


def test_dtype_keyword(rng):
    B, T, D, H = 3, 5, 4, 6
    x32 = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
    w32 = make_stack_weights(rng, D, [H], 1, np.float32)
    # float32 inputs computed in float64: exact upcast, so the float64 tolerance applies.
    out = crnn.simple_rnn_stack(x32, w32, dtype="float64")
    assert out.dtype == np.float64
    assert_close(out, reference.simple_rnn_stack(to64(x32), to64(w32)), derived_tol(np.float64, D + H, T),
                 "dtype=float64")
    out = crnn.simple_rnn_stack(x32, w32, dtype=np.float64)
    assert out.dtype == np.float64
    # float64 inputs computed in float32: compare to the oracle on the float32-rounded inputs.
    x64 = rng.uniform(-1, 1, (B, T, D))
    w64 = make_stack_weights(rng, D, [H], 1, np.float64)
    out = crnn.simple_rnn_stack(x64, w64, dtype="float32")
    assert out.dtype == np.float32
    exp = reference.simple_rnn_stack(to64(x64.astype(np.float32)),
                                     to64([[[a.astype(np.float32) for a in w64[0][0]]]]))
    assert_close(out, exp, derived_tol(np.float32, D + H, T), "dtype=float32")
    # default inference: all float64 -> float64; any float32 -> float32
    assert crnn.simple_rnn_stack(x64, w64).dtype == np.float64
    assert crnn.simple_rnn_stack(x32, w64).dtype == np.float32
    assert crnn.simple_rnn_stack(x64, w32).dtype == np.float32
    assert crnn.simple_rnn(x64, *w64[0][0], dtype="float32").dtype == np.float32


# ---------------------------------------------------------------------------------------------
# edge sizes
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DT_IDS.get)
def test_zero_batch(dtype, rng):
    T, D, H = 4, 3, 5
    x = np.zeros((0, T, D), dtype)
    for L, direction in itertools.product((1, 2), DIRECTIONS):
        ndir = _ndir(direction)
        w = make_stack_weights(rng, D, [H] * L, ndir, dtype)
        for rs, rst in itertools.product((True, False), (True, False)):
            for extra in ({}, {"lengths": np.zeros(0, np.int64),
                               "initial_state": [np.zeros((0, H), dtype)] * (L * ndir)}):
                res = crnn.simple_rnn_stack(x, w, direction=direction, return_sequences=rs,
                                            return_state=rst, **extra)
                out, states = res if rst else (res, None)
                want = (0, T, ndir * H) if rs else (0, ndir * H)
                assert isinstance(out, np.ndarray) and out.shape == want and out.dtype == dtype, \
                    f"{direction} L={L} rs={rs}: got {getattr(out, 'shape', out)}, expected {want}"
                if rst:
                    assert isinstance(states, list) and len(states) == L * ndir
                    for s in states:
                        assert s.shape == (0, H) and s.dtype == dtype
    k, r, b = make_layer_weights(rng, D, H, dtype)
    out, h = crnn.simple_rnn(x, k, r, b, return_sequences=True, return_state=True)
    assert out.shape == (0, T, H) and h.shape == (0, H)
    assert crnn.simple_rnn(x, k, r, b).shape == (0, H)


def test_zero_timesteps_raise(rng):
    w = make_stack_weights(rng, 3, [4], 1, np.float32)
    handle = crnn._core.RNN(w, dtype="float32")
    for shape in [(2, 0, 3), (0, 0, 3)]:
        x = np.zeros(shape, np.float32)
        with pytest.raises(ValueError, match=r"\bx\b|timesteps"):
            crnn.simple_rnn_stack(x, w)
        with pytest.raises(ValueError, match=r"\bx\b|timesteps"):
            crnn.simple_rnn(x, *w[0][0])
        with pytest.raises(ValueError, match=r"\bx\b|timesteps"):
            handle.forward(x)
        with pytest.raises(ValueError):
            reference.simple_rnn_stack(x, w)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DT_IDS.get)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("B,T,D,H", [(5, 6, 3, 5), (12, 10, 16, 130), (5, 20, 16, 200)],
                         ids=["serial", "batch-split", "unit-split"])
def test_nan_inf_propagate_like_reference(dtype, direction, B, T, D, H, rng):
    """Shapes: one serial, and two past the core's ~2 Mflop parallel threshold (batch split;
    hidden-unit / direction split), so NaN crosses thread boundaries too."""
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    x[0, 2, 1] = np.nan
    x[1, 3, 0] = np.inf
    x[2, 1, 2] = -np.inf
    x[3, 4, :] = np.inf   # several infinities in one step
    # row 4 (and any later row) stays finite: must stay finite and correct (no cross-talk)
    x_copy = x.copy()
    acts = ACTIVATIONS if B * T * H < 1000 else ("tanh", "relu")  # keep the big shapes quick
    for L, act in itertools.product((1, 2), acts):
        ndir = _ndir(direction)
        w = _weights_for(act, make_stack_weights(rng, D, [H] * L, ndir, dtype))
        with np.errstate(invalid="ignore"):  # inf - inf inside the oracle's matmul
            ref_seq, ref_states = _ref_stack(x, w, activation=act, direction=direction)
        assert np.isnan(ref_seq).any()  # the test exercises something
        tol = derived_tol(dtype, stack_k(D, [H] * L, ndir), T * L)
        res = crnn.simple_rnn_stack(x, w, activation=act, direction=direction, return_state=True)
        _check_stack_result(res, ref_seq, ref_states, ndir, True, True, dtype, tol,
                            f"NaN/Inf {direction} L={L} {act}")
        assert np.isfinite(res[0][4:]).all()
    assert_unchanged(x_copy, x, "x")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DT_IDS.get)
def test_large_finite_inputs_saturate_without_nan(dtype, rng):
    """|z| >= 48 everywhere: tanh -> +-1, sigmoid -> 0/1 exactly enough, never NaN.

    A tanh/sigmoid written with exp() must handle its overflow (inf/inf would be NaN). Every
    pre-activation is one large input term (|x*k| >= 50) plus recurrent and bias terms below 2,
    so the activation's derivative is < 1e-40 there and rounding of z cannot matter: the
    tolerance stays the plain derived one at scale 1.
    """
    B, T, H = 4, 5, 6
    sign = rng.choice([-1.0, 1.0], (B, T, 1))
    x = (sign * rng.uniform(500, 1000, (B, T, 1))).astype(dtype)
    for act in ("tanh", "sigmoid"):
        k = (rng.choice([-1.0, 1.0], (1, H)) * rng.uniform(0.1, 0.5, (1, H))).astype(dtype)
        _, r, b = make_layer_weights(rng, 1, H, dtype)
        w = [[[k, r, b]]]
        ref = reference.simple_rnn_stack(to64(x), to64(w), activation=act)
        out = crnn.simple_rnn_stack(x, w, activation=act)
        assert np.isfinite(out).all(), f"{act}: non-finite output for large finite inputs"
        assert_close(out, ref, derived_tol(dtype, 1 + H, T), f"saturated {act}", dtype)
        xx = np.full((1, 1, 1), 1e30 if dtype == np.float32 else 1e300, dtype)
        for sgn in (1, -1):
            big = crnn.simple_rnn_stack(sgn * xx, w, activation=act)
            exp = reference.simple_rnn_stack(to64(sgn * xx), to64(w), activation=act)
            assert_close(big, exp, derived_tol(dtype, 1 + H, 1), f"{act} at +-huge", dtype)


# ---------------------------------------------------------------------------------------------
# strides, read-only, broadcast; inputs never modified
# ---------------------------------------------------------------------------------------------
def _x_variants(x):
    """Views of arrays equal to x (B, T, D) with unusual memory layouts."""
    B, T, D = x.shape
    out = {"contiguous": x.copy(), "fortran": np.asfortranarray(x),
           "swapaxes": np.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1),
           "time_reversed": np.ascontiguousarray(x[:, ::-1])[:, ::-1],
           "batch_reversed": np.ascontiguousarray(x[::-1])[::-1],
           "feature_reversed": np.ascontiguousarray(x[..., ::-1])[..., ::-1]}
    big = np.empty((B, 2 * T, D), x.dtype)
    big[:, ::2] = x
    big[:, 1::2] = np.nan  # anything read from the gaps would show
    out["every_other_step"] = big[:, ::2]
    ro = x.copy()
    ro.setflags(write=False)
    out["readonly"] = ro
    ro2 = np.ascontiguousarray(x[::-1, ::-1])[::-1, ::-1]
    ro2.setflags(write=False)
    out["readonly_reversed"] = ro2
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DT_IDS.get)
def test_noncontiguous_x(dtype, rng):
    B, T, D, H = 3, 6, 5, 4
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    for direction in DIRECTIONS:
        ndir = _ndir(direction)
        w = make_stack_weights(rng, D, [H, H], ndir, dtype)
        ref_seq, ref_states = _ref_stack(x, w, direction=direction)
        tol = derived_tol(dtype, stack_k(D, [H, H], ndir), 2 * T)
        handle = crnn._core.RNN(w, direction=direction, dtype=dtype)
        for name, xv in _x_variants(x).items():
            assert np.array_equal(xv, x)
            before = np.array(xv, copy=True)
            msg = f"x {name} {direction}"
            res = crnn.simple_rnn_stack(xv, w, direction=direction, return_state=True)
            _check_stack_result(res, ref_seq, ref_states, ndir, True, True, dtype, tol, msg)
            _check_stack_result(handle.forward(xv, return_state=True), ref_seq, ref_states, ndir,
                                True, True, dtype, tol, msg + " (handle)")
            assert_unchanged(before, xv, f"x ({name})")
        if direction == "forward":
            k, r, b = w[0][0]
            exp = reference.simple_rnn(to64(x), to64(k), to64(r), to64(b), return_sequences=True)
            for name, xv in _x_variants(x).items():
                got = crnn.simple_rnn(xv, k, r, b, return_sequences=True)
                assert_close(got, exp, derived_tol(dtype, D + H, T), f"simple_rnn x {name}", dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DT_IDS.get)
def test_broadcast_x(dtype, rng):
    """Zero strides: every sequence of the batch (or every step) is the same memory."""
    B, T, D, H = 4, 5, 3, 6
    one = rng.uniform(-1, 1, (1, T, D)).astype(dtype)
    step = rng.uniform(-1, 1, (1, 1, D)).astype(dtype)
    w = make_stack_weights(rng, D, [H], 2, dtype)
    tol = derived_tol(dtype, 2 * H + D, T)
    for name, xv in {"batch": np.broadcast_to(one, (B, T, D)),
                     "time": np.broadcast_to(step, (B, T, D)),
                     "scalar": np.broadcast_to(dtype(0.25), (B, T, D))}.items():
        before = np.array(xv)
        ref_seq, ref_states = _ref_stack(before, w, direction="bidirectional")
        res = crnn.simple_rnn_stack(xv, w, direction="bidirectional", return_state=True)
        _check_stack_result(res, ref_seq, ref_states, 2, True, True, dtype, tol, f"broadcast {name}")
        assert_unchanged(before, xv, f"x ({name})")
        if name == "batch":  # same sequence everywhere -> identical rows
            for i in range(1, B):
                np.testing.assert_allclose(res[0][i], res[0][0], rtol=0, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DT_IDS.get)
def test_noncontiguous_weights_and_states(dtype, rng):
    B, T, D, H = 3, 5, 4, 6
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    k, r, b = make_layer_weights(rng, D, H, dtype)
    h0 = rng.uniform(-1, 1, (B, H)).astype(dtype)
    exp_seq, exp_h = reference.simple_rnn(to64(x), to64(k), to64(r), to64(b), to64(h0),
                                          return_sequences=True, return_state=True)
    tol = derived_tol(dtype, D + H, T, value_scale(h0))

    def ro(a):
        a = a.copy()
        a.setflags(write=False)
        return a

    bgap = np.full(2 * H, np.nan, dtype)
    bgap[::2] = b
    variants = {
        "fortran_kernels": (np.asfortranarray(k), np.asfortranarray(r), b, np.asfortranarray(h0)),
        "transposed_views": (np.ascontiguousarray(k.T).T, np.ascontiguousarray(r.T).T, b,
                             np.ascontiguousarray(h0.T).T),
        "reversed_strides": (np.ascontiguousarray(k[::-1, ::-1])[::-1, ::-1],
                             np.ascontiguousarray(r[::-1])[::-1], np.ascontiguousarray(b[::-1])[::-1],
                             np.ascontiguousarray(h0[::-1])[::-1]),
        "strided_bias": (k, r, bgap[::2], h0),
        "readonly": (ro(k), ro(r), ro(b), ro(h0)),
    }
    for name, (kv, rv, bv, hv) in variants.items():
        before = deep_copy([kv, rv, bv, hv])
        got_seq, got_h = crnn.simple_rnn(x, kv, rv, bv, hv, return_sequences=True, return_state=True)
        assert_close(got_seq, exp_seq, tol, f"{name} sequence", dtype)
        assert_close(got_h, exp_h, tol, f"{name} state", dtype)
        res = crnn.simple_rnn_stack(x, [[[kv, rv, bv]]], initial_state=[hv], return_state=True)
        _check_stack_result(res, exp_seq, [exp_h], 1, True, True, dtype, tol, f"stack {name}")
        assert_unchanged(before, [kv, rv, bv, hv], f"weights/state ({name})")

    # zero-stride weights, bias and initial state (np.broadcast_to): compare to dense copies
    kb = np.broadcast_to(k[:1], (D, H))
    rb = np.broadcast_to(r[:, :1] * dtype(0.3), (H, H))
    bb = np.broadcast_to(dtype(0.125), (H,))
    hb = np.broadcast_to(h0[:1], (B, H))
    exp_seq, exp_h = reference.simple_rnn(to64(x), to64(np.array(kb)), to64(np.array(rb)),
                                          to64(np.array(bb)), to64(np.array(hb)),
                                          return_sequences=True, return_state=True)
    got_seq, got_h = crnn.simple_rnn(x, kb, rb, bb, hb, return_sequences=True, return_state=True)
    assert_close(got_seq, exp_seq, tol, "broadcast weights sequence", dtype)
    assert_close(got_h, exp_h, tol, "broadcast weights state", dtype)


@pytest.mark.parametrize("xdtype", [np.int64, np.int32, np.uint8, np.int8])
def test_integer_x_is_cast(xdtype, rng):
    B, T, D, H = 3, 4, 5, 6
    xi = rng.integers(0 if xdtype == np.uint8 else -2, 3, (B, T, D)).astype(xdtype)
    xi_copy = xi.copy()
    w32 = make_stack_weights(rng, D, [H], 1, np.float32)
    exp = reference.simple_rnn_stack(xi.astype(np.float64), to64(w32), activation="relu")
    out = crnn.simple_rnn_stack(xi, w32, activation="relu")
    assert out.dtype == np.float32
    assert_close(out, exp, derived_tol(np.float32, D + H, T, value_scale(exp)), f"x {xdtype}")
    handle = crnn._core.RNN(to64(w32), activation="relu", dtype="float64")
    out = handle.forward(xi)
    assert out.dtype == np.float64
    assert_close(out, exp, derived_tol(np.float64, D + H, T, value_scale(exp)), f"x {xdtype} (f64 handle)")
    # nested Python lists work too
    out = crnn.simple_rnn_stack(xi.tolist(), w32, activation="relu")
    assert_close(out, exp, derived_tol(np.float32, D + H, T, value_scale(exp)), "x as list")
    assert_unchanged(xi_copy, xi, "x")


# ---------------------------------------------------------------------------------------------
# the handle
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_handle_attributes_and_forward(dtype, rng):
    D = 5
    w = make_stack_weights(rng, D, [4, 7], 2, np.float64)
    handle = crnn._core.RNN(w, activation=["relu", "tanh"], direction="bidirectional", dtype=dtype)
    assert handle.input_size == D
    assert handle.num_layers == 2
    assert list(handle.units) == [4, 7]
    assert handle.num_directions == 2
    assert handle.dtype == np.dtype(dtype)
    assert list(handle.activations) == ["relu", "tanh"]
    assert handle.direction == "bidirectional"
    x = rng.uniform(-1, 1, (3, 6, D))
    wd = [[[None if a is None else a.astype(dtype) for a in e] for e in layer] for layer in w]
    ref_seq, ref_states = _ref_stack(x.astype(dtype), wd, activation=["relu", "tanh"],
                                     direction="bidirectional")
    tol = derived_tol(dtype, stack_k(D, [4, 7], 2), 12, value_scale(ref_seq))
    for _ in range(3):  # a handle is reusable
        res = handle.forward(x, return_state=True)
        _check_stack_result(res, ref_seq, ref_states, 2, True, True, dtype, tol, "handle")
    res = handle.forward(x, return_sequences=False)
    assert_close(res, _last(ref_states, 2), tol, "handle last", dtype)


def test_handle_alternating_shapes(rng):
    """One handle sizes its workspace for the shape it last ran and reuses that size for a call
    of the same shape: calls that alternate shapes, with a refused one between them, each get
    their own shape's result."""
    D = 3
    w = make_stack_weights(rng, D, [5, 7], 1, np.float64)
    handle = crnn._core.RNN(w, dtype="float64")
    shapes = [(3, 6, D), (3, 2, D), (1, 1, D), (1, 2, D), (4, 2, D), (0, 3, D)]
    xs = {s: rng.uniform(-1, 1, s) for s in shapes}
    refs = {s: _ref_stack(x, w)[0] for s, x in xs.items()}
    huge = np.broadcast_to(np.zeros((1, 1, D)), (1, 2**31 // 7 + 1, D))  # T * 7 units > 2**31
    # each shape after one that needs a smaller workspace and differs in batch or in timesteps
    # only, and the refused shape after a call of its batch
    order = [(3, 6, D), (3, 6, D), (3, 2, D), (3, 6, D), (1, 1, D), (1, 2, D), (4, 2, D),
             (0, 3, D), (1, 1, D), None, (1, 1, D), None, None, (4, 2, D), (3, 6, D)]
    for s in order:
        if s is None:
            with pytest.raises((ValueError, MemoryError), match="x: shape"):
                handle.forward(huge)
            continue
        out = handle.forward(xs[s])
        assert out.shape == s[:2] + (7,)
        assert_close(out, refs[s], 1e-12, f"shape {s}", np.float64)


def test_handle_copies_weights(rng):
    w = make_stack_weights(rng, 3, [4], 1, np.float32)
    x = rng.uniform(-1, 1, (2, 5, 3)).astype(np.float32)
    handle = crnn._core.RNN(w, dtype="float32")
    before = handle.forward(x)
    for a in w[0][0]:
        a[...] = 7.0  # mutate the caller's arrays after construction
    after = handle.forward(x)
    assert after.tobytes() == before.tobytes(), "the handle must own a copy of the weights"
    assert not np.allclose(crnn.simple_rnn_stack(x, w), before)  # the mutation does matter


# ---------------------------------------------------------------------------------------------
# determinism and thread-count independence
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DT_IDS.get)
def test_bitwise_determinism(dtype, rng):
    for (B, T, D, H) in [(3, 17, 10, 33), (64, 20, 48, 128), (1, 50, 32, 300)]:
        x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
        w = make_stack_weights(rng, D, [H, H], 2, dtype)
        first = crnn.simple_rnn_stack(x, w, direction="bidirectional", return_state=True)
        for _ in range(3):
            again = crnn.simple_rnn_stack(x, w, direction="bidirectional", return_state=True)
            assert again[0].tobytes() == first[0].tobytes(), f"output differs between calls {B, T, D, H}"
            for s1, s2 in zip(first[1], again[1]):
                assert s1.tobytes() == s2.tobytes(), f"state differs between calls {B, T, D, H}"


def test_thread_count_does_not_change_results_beyond_tolerance(rng):
    B, T, D, H = 32, 12, 40, 96
    x = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
    w = make_stack_weights(rng, D, [H], 1, np.float32)
    ref = reference.simple_rnn_stack(to64(x), to64(w))
    tol = derived_tol(np.float32, D + H, T)
    old = crnn.get_num_threads()
    assert isinstance(old, int) and old >= 1
    try:
        outs = {}
        for n in (1, 2):
            crnn.set_num_threads(n)
            assert crnn.get_num_threads() == n
            outs[n] = crnn.simple_rnn_stack(x, w)
            assert crnn.simple_rnn_stack(x, w).tobytes() == outs[n].tobytes()
            assert_close(outs[n], ref, tol, f"{n} threads", np.float32)
    finally:
        crnn.set_num_threads(old)
    assert crnn.get_num_threads() == old


def test_batch_rows_do_not_depend_on_each_other(rng):
    B, T, D, H = 16, 9, 6, 20
    x = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
    w = make_stack_weights(rng, D, [H], 2, np.float32)
    full = crnn.simple_rnn_stack(x, w, direction="bidirectional")
    tol = derived_tol(np.float32, D + 2 * H, T)
    for i in (0, 7, 15):
        alone = crnn.simple_rnn_stack(x[i:i + 1], w, direction="bidirectional")
        assert_close(full[i:i + 1], alone, tol, f"row {i} alone vs in batch", np.float32)


# ---------------------------------------------------------------------------------------------
# large outputs: their memory kept for the next ones (RNN._output)
# ---------------------------------------------------------------------------------------------

def _data_address(a):
    return a.__array_interface__["data"][0]


def _large_output_case(rng, cell="simple", direction="forward", dtype=np.float32, units=256):
    """A handle and an input whose output (B, T, units * ndir) is past KEPT_OUTPUT_MIN."""
    ndir = _ndir(direction)
    B, D = 2, 8
    T = crnn._core.KEPT_OUTPUT_MIN // (B * units * ndir * np.dtype(dtype).itemsize) + 7
    w = [[make_cell_weights(rng, cell, D, units, dtype, recurrent_bias=cell == "gru")
          for _ in range(ndir)]]
    handle = crnn._core.RNN(w, cell=cell, direction=direction, dtype=dtype)
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    return handle, w, x


def test_large_output_reuses_memory_nobody_holds(rng):
    """An output past KEPT_OUTPUT_MIN leaves its memory, once freed, to a later output: a loop
    that replaces each call's output alternates between two blocks, another handle's output of
    the size takes a freed one too; the outputs are ordinary arrays owning their data."""
    handle, w, x = _large_output_case(rng)
    first = handle.forward(x)
    assert first.nbytes >= crnn._core.KEPT_OUTPUT_MIN
    assert first.flags.c_contiguous and first.flags.writeable and first.flags.aligned
    assert first.flags.owndata and first.base is None and _data_address(first) % 64 == 0
    assert sys.getsizeof(first) > first.nbytes
    expected = first.copy()
    ref = reference.rnn_stack(to64(x), to64(w))
    assert_close(first, ref, derived_tol(np.float32, x.shape[2] + 256, x.shape[1]), "first call",
                 np.float32)
    address = _data_address(first)
    del first
    assert crnn._core.kept_outputs() >= 1
    again = handle.forward(x)
    assert _data_address(again) == address
    assert again.tobytes() == expected.tobytes()
    addresses = set()
    for _ in range(6):
        again = handle.forward(x)  # the previous output is dropped only after the call
        addresses.add(_data_address(again))
        assert again.tobytes() == expected.tobytes()
    assert len(addresses) == 2
    address = _data_address(again)
    del again
    other = crnn._core.RNN(w).forward(x)  # a handle of its own
    assert _data_address(other) == address and other.tobytes() == expected.tobytes()
    # NumPy's own operations on such an output, as on any array
    other.resize((x.shape[0], x.shape[1] + 3, 256), refcheck=False)
    flat = other.ravel()  # resize keeps the flat order and zeroes what it adds
    assert flat[:expected.size].tobytes() == expected.tobytes() and not flat[expected.size:].any()
    del other
    for t in (300, 900, 1500, 2100, 2700, 3300):  # many sizes: two blocks kept at most
        handle.forward(np.resize(x, (x.shape[0], t, x.shape[2])).astype(np.float32))
        assert crnn._core.kept_outputs() <= 2


@pytest.mark.parametrize("cell,direction,dtype,lengths", [
    ("simple", "forward", np.float32, False),
    ("lstm", "bidirectional", np.float32, True),
    ("gru", "reverse", np.float64, True),
])
def test_large_output_reused_memory_is_written_whole(cell, direction, dtype, lengths, rng):
    """Reused memory holds the previous output's values (here NaN, written by the caller):
    every element of the next output is written again, masked steps' zeros included."""
    handle, w, x = _large_output_case(rng, cell, direction, dtype, units=128)
    B, T = x.shape[:2]
    lens = np.array([T, T // 3]) if lengths else None
    first = handle.forward(x, None, lens)
    expected = first.copy()
    ref = reference.rnn_stack(to64(x), to64(w), cell=cell, direction=direction, lengths=lens)
    assert_close(first, ref, 1e-5 if dtype == np.float32 else 1e-12, "first call", dtype)
    for _ in range(3):
        address = _data_address(first)
        first[...] = np.nan
        del first
        first = handle.forward(x, None, lens)
        assert _data_address(first) == address
        assert first.tobytes() == expected.tobytes()


def test_large_outputs_still_held_are_never_written(rng):
    """Whatever still reaches an output's memory keeps it: the output itself, a view of it, a
    memoryview, an output passed back in as the input; later calls (other inputs, other
    shapes) write elsewhere."""
    handle, w, x = _large_output_case(rng, units=256)
    B, T, D = x.shape
    other = rng.uniform(-1, 1, x.shape).astype(np.float32)
    held = handle.forward(x)
    held_copy = held.copy()
    view = handle.forward(x)[1, 5:]  # the output itself is dropped at once, its view kept
    view_copy = view.copy()
    mem = memoryview(handle.forward(x))
    mem_copy = np.asarray(mem).copy()
    keep = [held, view, mem]
    for shape_t in (T, T, 2 * T, T // 2 + 1, T):
        new = handle.forward(np.ascontiguousarray(np.resize(other, (B, shape_t, D))))
        for h in keep:
            assert not np.shares_memory(new, np.asarray(h))
        keep.append(new.copy())  # values only: `new` itself is dropped
    assert held.tobytes() == held_copy.tobytes()
    assert view.tobytes() == view_copy.tobytes()
    assert np.asarray(mem).tobytes() == mem_copy.tobytes()
    # an output fed back into a handle whose input width is the output's
    w2 = [[make_cell_weights(rng, "simple", 256, 256, np.float32)]]
    h2 = crnn._core.RNN(w2)
    y1 = h2.forward(held)
    y1_copy = y1.copy()
    y2 = h2.forward(y1)
    assert y1.tobytes() == y1_copy.tobytes()
    assert y2.tobytes() == h2.forward(y1_copy).tobytes()


def test_large_outputs_from_threads_sharing_a_handle(rng):
    """Calls from several threads on one handle each get an output nobody else writes: each
    thread keeps some of its outputs while dropping others (memory comes free while other
    threads' calls run) and checks the kept ones once every thread is done."""
    handle, w, x = _large_output_case(rng, units=256)
    xs = [np.ascontiguousarray(np.roll(x, i, axis=1)) for i in range(4)]
    expected = [handle.forward(xi).tobytes() for xi in xs]
    done = threading.Barrier(4)

    def work(i):
        kept = []
        try:
            for r in range(8):
                j = (i + r) % 4
                out = handle.forward(xs[j])
                assert out.tobytes() == expected[j]
                if r % 3 == 0:
                    kept.append((j, out))
        except BaseException:
            done.abort()  # the others' wait raises instead of hanging
            raise
        done.wait(timeout=120)
        return all(out.tobytes() == expected[j] for j, out in kept)

    assert all(run_threaded(work, n_threads=4))
