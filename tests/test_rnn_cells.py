"""The C core's cells (SimpleRNN, LSTM, GRU reset after / before) against crnn.reference.

A grid per cell: dtypes x directions x layer counts x activation pairs x odd sizes (H = 1, primes,
T = 1, B = 1 on the batch-1 panels, units <= 8 on the plain loop) x lengths (0 and T included)
x initial states (none, some, all; h and c), through ``crnn._core.RNN`` (the compiled stack) and
the functional API. Whole random models across every threading mode are in test_differential.py.

Tolerance: :func:`_helpers.derived_tol` (eps * ceil(log2(K * T * L)) * 4 * scale, derived in
tests/_helpers.py), applied to LSTM / GRU states relative to their magnitude
(:func:`_helpers.state_tol`): an LSTM's c is not bounded (it adds up to |i * g| per step), nor
is h through a relu or linear activation. The weights (``make_cell_weights``: each gate's
recurrent block of spectral norm 0.5) keep every value of order one otherwise.
"""
import itertools

import numpy as np
import pytest

import crnn
from crnn import reference

from _helpers import GATES, assert_close, assert_unchanged, deep_copy, flat_states, \
    make_cell_weights, state_tol, to64, units_for_bytes, value_scale

CELLS = {"simple": ("simple", True), "lstm": ("lstm", True), "gru": ("gru", True),
         "gru_before": ("gru", False)}
#: (activation, recurrent_activation): every activation in each role.
ACT_PAIRS = [("tanh", "sigmoid"), ("relu", "hard_sigmoid"), ("linear", "tanh"),
             ("sigmoid", "relu"), ("hard_sigmoid", "linear")]
#: (batch, timesteps, input_dim, units): units 1 and <= 8 (plain loop), primes, T = 1, B = 1 with
#: more than 8 units (the batch-1 panels), a wider layer (BLAS GEMM) and a zero-row batch.
SHAPES = [(1, 1, 1, 1), (3, 5, 7, 13), (2, 4, 3, 1), (1, 7, 5, 17), (4, 1, 2, 3), (5, 6, 11, 29),
          (2, 3, 4, 70), (0, 3, 2, 5)]


@pytest.fixture(autouse=True)
def one_thread():
    old = crnn.get_num_threads()
    crnn.set_num_threads(1)
    yield
    crnn.set_num_threads(old)


def _case(rng, cell, reset_after, dtype, B, T, D, H, layers, ndir, state_mode):
    weights, d = [], D
    for _ in range(layers):
        weights.append([make_cell_weights(rng, cell, d, H, dtype, rng.random() < 0.8,
                                          rng.random() < 0.5) for _ in range(ndir)])
        d = H * ndir
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    init = None
    if state_mode != "none":
        def st():
            if state_mode == "some" and rng.random() < 0.4:
                return None
            return rng.uniform(-1, 1, (B, H)).astype(dtype)
        init = [[st(), st()] if cell == "lstm" else st() for _ in range(layers * ndir)]
    return weights, x, init


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(CELLS))
def test_cell_grid_matches_reference(name, dtype, rng):
    cell, reset_after = CELLS[name]
    checked = 0
    for (B, T, D, H), direction, layers, use_lengths, state_mode in itertools.product(
            SHAPES, ["forward", "reverse", "bidirectional"], [1, 2], [False, True],
            ["none", "some", "all"]):
        if (layers == 2 and state_mode == "some") or (use_lengths and B == 0):
            continue
        act, ract = ACT_PAIRS[checked % len(ACT_PAIRS)]
        ndir = 2 if direction == "bidirectional" else 1
        weights, x, init = _case(rng, cell, reset_after, dtype, B, T, D, H, layers, ndir,
                                 state_mode)
        lengths = None
        if use_lengths:
            lengths = rng.integers(0, T + 1, B)
            lengths[0] = 0
            lengths[-1] = T
        kw = dict(cell=cell, activation=act, recurrent_activation=ract, reset_after=reset_after,
                  direction=direction)
        before = deep_copy([x, weights, init])
        handle = crnn._core.RNN(weights, dtype=dtype, **kw)
        got, states = handle.forward(x, init, lengths, True, True)
        assert_unchanged(before, [x, weights, init], "inputs")
        exp, exp_states = reference.rnn_stack(to64(x), to64(weights), initial_state=to64(init),
                                              lengths=lengths, return_state=True, **kw)
        K = D + H if layers == 1 else max(D, H * ndir) + H
        tol = state_tol(dtype, K, T * layers, value_scale(exp, flat_states(exp_states)))
        what = f"{name} {act}/{ract} {direction} layers={layers} B,T,D,H={B, T, D, H} " \
               f"lengths={use_lengths} states={state_mode}"
        assert_close(got, exp, tol, what + " output", dtype)
        assert len(states) == layers * ndir
        for i, (s, e) in enumerate(zip(flat_states(states), flat_states(exp_states))):
            assert_close(s, e, tol, what + f" state {i}", dtype)
        if use_lengths:
            # a sequence of length 0 outputs zeros (and keeps its initial states: compared above)
            assert not got[lengths == 0].any()
        last = handle.forward(x, init, lengths, False, False)
        assert last.tobytes() == np.concatenate(
            [s[0] if isinstance(s, list) else s for s in states[-ndir:]], axis=1).tobytes()
        checked += 1
    assert checked >= 200


def _units_past(nbytes: int, gates: int, itemsize: int) -> int:
    """The fewest units (> 8, so on the panels) whose recurrent weights outgrow nbytes."""
    h = 9
    while h * gates * h * itemsize <= nbytes:
        h += 1
    return h


def _check_one_layer(rng, name: str, dtype, shape, threads: int, direction: str) -> None:
    """One layer of cell `name` (Keras's activations, both biases) on random data of `shape`
    (B, T, D, H) at `threads` threads, its output and states against the reference."""
    cell, reset_after = CELLS[name]
    B, T, D, H = shape
    weights = [[make_cell_weights(rng, cell, D, H, dtype, True, True)]]
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    kw = dict(cell=cell, activation="tanh", recurrent_activation="sigmoid",
              reset_after=reset_after, direction=direction)
    crnn.set_num_threads(threads)
    got, states = crnn._core.RNN(weights, dtype=dtype, **kw).forward(x, None, None, True, True)
    exp, exp_states = reference.rnn_stack(to64(x), to64(weights), return_state=True, **kw)
    tol = state_tol(dtype, D + H, T, value_scale(exp, flat_states(exp_states)))
    what = f"{name} B,T,D,H={B, T, D, H} threads={threads} {direction}"
    assert_close(got, exp, tol, what + " output", dtype)
    for i, (s, e) in enumerate(zip(flat_states(states), flat_states(exp_states))):
        assert_close(s, e, tol, what + f" state {i}", dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(CELLS))
def test_batch1_steps_walk_their_weights_both_ways(name, dtype, rng):
    """At batch 1 the product walks a slice of weights backward on alternate steps where the
    slice is more than half of L1 (csrc/kernels.h, row_backward): layers sized from this
    machine's caches on both sides of that edge and past twice L1 and half of L2, at 1 and 2
    threads (where the units split halves the slices, and may start them inside a panel),
    against the reference."""
    caches = crnn._core.machine()
    es, gates = np.dtype(dtype).itemsize, GATES[CELLS[name][0]]
    sizes = {_units_past(caches["l1_bytes"] // 2, gates, es) - 1,
             _units_past(caches["l1_bytes"] // 2, gates, es),
             _units_past(2 * caches["l1_bytes"], gates, es),
             _units_past(caches["l2_bytes"] // 2, gates, es)}
    for H, threads, direction in itertools.product(sorted(sizes), [1, 2],
                                                   ["forward", "reverse"]):
        _check_one_layer(rng, name, dtype, (1, 7, 5, H), threads, direction)


#: (batch, timesteps, input_dim, units per cell): input projections of 150-250 rows whose gates
#: are no multiple of 64 columns, past the BLAS small-matrix kernel's 1e6 multiply-adds, with input
#: rows of at most 256 KiB (csrc/blas_shim.c: tiles of 64-column blocks and 120 rows at D = 128,
#: 52 at D = 300, each with a ragged last block and tile).
TILED = [(5, 50, 128, {"simple": 200, "lstm": 50, "gru": 67}),
         (3, 37, 300, {"simple": 180, "lstm": 45, "gru": 61})]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(CELLS))
def test_input_projection_in_tiles(name, dtype, rng):
    """The input projection cut into tiles of rows and columns where OpenBLAS has its
    small-matrix kernel (and into column blocks, or not at all, elsewhere): every tile's rows and
    columns land where they belong, at 1 and 2 threads, both directions, against the
    reference."""
    for (B, T, D, units), threads, direction in itertools.product(TILED, [1, 2],
                                                                  ["forward", "reverse"]):
        _check_one_layer(rng, name, dtype, (B, T, D, units[CELLS[name][0]]), threads, direction)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_batch1_lstm_steps_block_by_block(dtype, rng):
    """A batch of one's LSTM step computes each block of units' product, then that block's
    element-wise part, before the next block (csrc/cell_lstm.h, lstm_step_row, AVX2 and
    AVX-512): whole blocks with Keras's activations in one pass, and through lstm_post the
    others: other activations, no bias, the narrow last block, a step past the row's length.
    One block, several, several and a narrow one, at 1 and 2 threads (a pipeline, or a units
    split whose slices are whole blocks), both directions, with and without initial states."""
    vb = 64 // np.dtype(dtype).itemsize  # units per block (CRNN__BLOCK_UNITS)
    T, D = 9, 6
    for H, (act, ract), bias, threads, direction, short, states in itertools.product(
            [vb, 2 * vb + 3, 5 * vb, 8 * vb + 1], [("tanh", "sigmoid"), ("relu", "hard_sigmoid")],
            [True, False], [1, 2], ["forward", "reverse"], [False, True], [False, True]):
        weights = [[make_cell_weights(rng, "lstm", D, H, dtype, bias)]]
        x = rng.uniform(-1, 1, (1, T, D)).astype(dtype)
        lengths = np.array([T - 3]) if short else None
        init = [[rng.uniform(-1, 1, (1, H)).astype(dtype) for _ in range(2)]] if states else None
        kw = dict(cell="lstm", activation=act, recurrent_activation=ract, direction=direction)
        crnn.set_num_threads(threads)
        got, got_states = crnn._core.RNN(weights, dtype=dtype, **kw).forward(x, init, lengths,
                                                                            True, True)
        exp, exp_states = reference.rnn_stack(to64(x), to64(weights), initial_state=to64(init),
                                              lengths=lengths, return_state=True, **kw)
        tol = state_tol(dtype, D + H, T, value_scale(exp, flat_states(exp_states)))
        what = f"H={H} {act}/{ract} bias={bias} threads={threads} {direction} " \
               f"lengths={lengths} states={states}"
        assert_close(got, exp, tol, what + " output", dtype)
        for i, (s, e) in enumerate(zip(flat_states(got_states), flat_states(exp_states))):
            assert_close(s, e, tol, what + f" state {i}", dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["lstm", "gru", "gru_before"])
def test_narrow_last_block_gathered_from_the_rows(name, dtype, rng):
    """A gated layer's last block of units, where it is narrower than a block (64 bytes of units:
    16 float32 / 8 float64), is gathered from the rows of a step of 4 rows or more, at most 128
    values of a gate at a time (csrc/cell_*.h: lstm_post_tail, gru_post_tail and
    gru_before_post_tail): widths of 1, 3 and one short of a block, at batches under, at and past
    the threshold and past one chunk, with rows masked out (in the middle of a chunk and whole
    chunks), every activation pair, at 1 and 2 threads (`wide` units at batch 5: the units split,
    which takes weights of half of L2 or more at 2 rows a thread, the narrow block in the last
    slice)."""
    cell, reset_after = CELLS[name]
    es = np.dtype(dtype).itemsize
    vb = 64 // es
    wide = units_for_bytes(crnn._core.machine()["l2_bytes"] / 2, GATES[cell], es)
    wide = max(wide + (wide % vb == 0), 133)
    checked = 0
    for (H, B, T), threads in itertools.product(
            [(1, 130, 4), (3, 4, 4), (3, 50, 4), (vb + 3, 3, 4), (vb + 3, 5, 4),
             (2 * vb - 1, 19, 4), (3 * vb - 1, 40, 4), (wide, 5, 12)], [1, 2]):
        act, ract = ACT_PAIRS[checked % len(ACT_PAIRS)]
        D = 5
        weights, x, init = _case(rng, cell, reset_after, dtype, B, T, D, H, 1, 1, "some")
        lengths = rng.integers(0, T + 1, B)
        lengths[:B // 3] = T  # whole chunks of active rows at every step
        lengths[B // 2: B // 2 + 3] = 0  # and rows that never take part, within a chunk
        kw = dict(cell=cell, activation=act, recurrent_activation=ract, reset_after=reset_after)
        crnn.set_num_threads(threads)
        handle = crnn._core.RNN(weights, dtype=dtype, **kw)
        if H == wide and threads == 2:
            assert handle.plan(B, T)[0] == "units"
        got, states = handle.forward(x, init, lengths, True, True)
        exp, exp_states = reference.rnn_stack(to64(x), to64(weights), initial_state=to64(init),
                                              lengths=lengths, return_state=True, **kw)
        tol = state_tol(dtype, D + H, T, value_scale(exp, flat_states(exp_states)))
        what = f"{name} {act}/{ract} B={B} H={H} threads={threads}"
        assert_close(got, exp, tol, what + " output", dtype)
        for i, (s, e) in enumerate(zip(flat_states(states), flat_states(exp_states))):
            assert_close(s, e, tol, what + f" state {i}", dtype)
        checked += 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_mixed_cells_in_one_stack(dtype, rng):
    """LSTM -> GRU -> SimpleRNN -> GRU (reset before), mixed directions, in one compiled stack:
    the same as the layers one after another."""
    B, T, D = 3, 9, 4
    spec = [("lstm", True, "bidirectional", 6), ("gru", True, "forward", 11),
            ("simple", True, "reverse", 5), ("gru", False, "bidirectional", 3)]
    weights, d = [], D
    for cell, _, direction, h in spec:
        ndir = 2 if direction == "bidirectional" else 1
        weights.append([make_cell_weights(rng, cell, d, h, dtype, True, True)
                        for _ in range(ndir)])
        d = h * ndir
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    lengths = np.array([T, 0, 4])
    kw = dict(cell=[s[0] for s in spec], reset_after=[s[1] for s in spec],
              direction=[s[2] for s in spec], activation="tanh",
              recurrent_activation="sigmoid")
    got, states = crnn.rnn_stack(x, weights, lengths=lengths, return_state=True, dtype=dtype, **kw)
    exp, inp = None, to64(x)
    exp_states = []
    for (cell, ra, direction, _), w in zip(spec, weights):
        inp, st = reference.rnn_stack(inp, [to64(w)], cell=cell, reset_after=ra,
                                      direction=direction, lengths=lengths, return_state=True)
        exp_states += st
    exp = inp
    tol = state_tol(dtype, 16, T * len(spec), value_scale(exp))
    assert_close(got, exp, tol, "mixed stack", dtype)
    for i, (s, e) in enumerate(zip(flat_states(states), flat_states(exp_states))):
        assert_close(s, e, tol, f"mixed stack state {i}", dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_functional_lstm_and_gru(dtype, rng):
    """crnn.lstm / crnn.gru have the signatures and results of crnn.reference.lstm / gru (Keras
    layouts: a reset-after GRU's bias (2, 3H)), go_backwards returning processing order."""
    B, T, D, H = 4, 6, 5, 7
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    k, r, b, _ = make_cell_weights(rng, "lstm", D, H, dtype)
    h0, c0 = (rng.uniform(-1, 1, (B, H)).astype(dtype) for _ in range(2))
    for gb, rs in itertools.product([False, True], [False, True]):
        got = crnn.lstm(x, k, r, b, [h0, c0], go_backwards=gb, return_sequences=rs,
                        return_state=True)
        exp = reference.lstm(to64(x), *to64([k, r, b]), to64([h0, c0]), go_backwards=gb,
                             return_sequences=rs, return_state=True)
        for g, e in zip(got, exp):
            assert_close(g, e, state_tol(dtype, D + H, T, value_scale(e)), f"lstm gb={gb}", dtype)
    kg, rg, bg, rbg = make_cell_weights(rng, "gru", D, H, dtype, True, True)
    for reset_after, gb in itertools.product([True, False], [False, True]):
        bias = np.stack([bg, rbg]) if reset_after else bg
        got = crnn.gru(x, kg, rg, bias, h0, reset_after=reset_after, go_backwards=gb,
                       return_sequences=True, return_state=True)
        exp = reference.gru(to64(x), *to64([kg, rg, bias]), to64(h0), reset_after=reset_after,
                            go_backwards=gb, return_sequences=True, return_state=True)
        for g, e in zip(got, exp):
            assert_close(g, e, state_tol(dtype, D + H, T, value_scale(e)),
                         f"gru reset_after={reset_after} gb={gb}", dtype)


def test_hard_sigmoid_is_keras_3():
    """hard_sigmoid is Keras 3's relu6(x + 3) / 6 (Keras 2's 0.2 x + 0.5 differs), NaN kept."""
    z = np.array([[-4.0, -3.0, -1.5, 0.0, 1.0, 2.9, 3.0, 7.0, np.nan]])
    want = np.array([[0.0, 0.0, 0.25, 0.5, 4 / 6, 5.9 / 6, 1.0, 1.0, np.nan]])
    for dtype in (np.float32, np.float64):
        # through the core's activation kernel: a 1 x 1 identity Dense, one value per row
        y = crnn._core.dense_forward(z.T.astype(dtype), np.ones((1, 1), dtype), None,
                                     "hard_sigmoid").T
        assert_close(y, want, 4 * np.finfo(dtype).eps, "hard_sigmoid", dtype)
        assert_close(reference.activation_fn("hard_sigmoid")(z.astype(dtype)), want,
                     4 * np.finfo(dtype).eps, "reference hard_sigmoid", dtype)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gates_in_keras_order(cell):
    """One step by hand: each Keras gate block of the kernel drives the gate it names."""
    H = 2
    G = GATES[cell]
    x = np.ones((1, 1, 1))
    for g in range(G):
        k = np.zeros((1, G * H))
        k[0, g * H:(g + 1) * H] = 10.0  # saturate gate g only
        y = crnn._core.RNN([[[k, np.zeros((H, G * H)), None]]], cell=cell,
                           dtype="float64").forward(x, return_sequences=False)
        s = 1 / (1 + np.exp(-10.0))
        if cell == "lstm":      # i, f, c, o: c = i * tanh(z_c) (c_0 = 0); h = o * tanh(c)
            gate_i, gate_o = (s if g == 0 else 0.5), (s if g == 3 else 0.5)
            gate_c = np.tanh(10.0) if g == 2 else 0.0
            want = gate_o * np.tanh(gate_i * gate_c)
        else:                   # z, r, h: h = (1 - z) * tanh(z_h)
            z = s if g == 0 else 0.5
            want = (1 - z) * np.tanh(10.0 if g == 2 else 0.0)
        assert np.allclose(y, want, atol=1e-15), (cell, g, y, want)
