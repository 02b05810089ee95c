"""The C core's parallel paths against the reference, at several thread counts.

Once its work passes ~2 Mflop a call splits its batch into row ranges (batches of 8 or more),
or each layer's hidden units (smaller batches, layers of >= 128 units; one direction per thread
for a bidirectional stack; at batch 1 also narrower layers whose recurrent weights fill two L1
caches and whose input is at most half as wide), or pipelines (other small batches with 16 or
more timesteps: a second thread makes the input projection chunk by chunk ahead of the
recurrence). The shapes
here are chosen to take each path; the grid in test_core.py is too small to leave the serial
path.

Weights and tolerances come from _helpers (see its docstring for the derivation).
"""
import itertools
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import crnn
from crnn import reference

from _helpers import GATES, REPO_ROOT, blas_column_splits_agree, derived_tol, describe, \
    flat_states, make_cell_weights, make_stack_weights, run_threaded, stack_k, to64, \
    units_for_bytes
from _helpers import _child_env as child_env


@pytest.fixture(autouse=True)
def restore_threads():
    before = crnn.get_num_threads()
    yield
    crnn.set_num_threads(before)


# (batch, timesteps, input_dim, units): batch split, unit split, unit split at B=2 (weights past
# a quarter of L2, which a row a thread would each stream), a row a thread at B=2 and B=3 (2 rows
# and 1) over smaller weights, unit split at B=1 over 2 x 130 units and at its smallest width
# (2 x 64 units: 128), pipeline at B=1 (T=60: 7 chunks of 8 steps and one of 4), pipeline at B=3
# (T=17: a chunk of one step; the projection costs more than the steps), a pipeline whose
# projection is far costlier than its steps, and one too small to leave the serial path.
SHAPES = [(16, 12, 20, 40), (1, 6, 24, 520), (2, 4, 40, 512), (2, 20, 16, 128), (3, 9, 16, 130),
          (1, 16, 40, 260), (1, 40, 96, 128), (1, 60, 96, 100), (3, 17, 150, 168),
          (1, 128, 2000, 8), (3, 4, 5, 9)]


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_parallel_paths_match_reference(threads, dtype, shape):
    crnn.set_num_threads(threads)
    rng = np.random.default_rng(hash((threads, shape)) % 2**32)
    batch, steps, din, units = shape
    for direction, layers, use_lengths, use_h0 in itertools.product(
            ["forward", "reverse", "bidirectional"], [1, 2], [False, True], [False, True]):
        ndir = 2 if direction == "bidirectional" else 1
        weights = make_stack_weights(rng, din, [units] * layers, ndir, dtype)
        x = rng.uniform(-1, 1, (batch, steps, din)).astype(dtype)
        h0 = [rng.uniform(-1, 1, (batch, units)).astype(dtype) for _ in range(layers * ndir)] if use_h0 else None
        lengths = rng.integers(0, steps + 1, batch) if use_lengths else None
        ref, ref_states = reference.simple_rnn_stack(
            to64(x), to64(weights), direction=direction, initial_state=to64(h0),
            lengths=lengths, return_state=True)
        handle = crnn._core.RNN(weights, direction=direction, dtype=dtype)
        got, states = handle.forward(x, initial_state=h0, lengths=lengths, return_state=True)
        again, states2 = handle.forward(x, initial_state=h0, lengths=lengths, return_state=True)
        combo = f"{direction} layers={layers} lengths={use_lengths} h0={use_h0}"
        assert got.tobytes() == again.tobytes(), f"not bitwise reproducible: {combo}"
        assert all(a.tobytes() == b.tobytes() for a, b in zip(states, states2)), combo
        tol = derived_tol(dtype, stack_k(din, [units] * layers, ndir), steps * layers)
        assert np.abs(got - ref).max() <= tol, combo
        for s, r in zip(states, ref_states):
            assert np.abs(s - r).max() <= tol, combo


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("units", [9, 31, 32, 33, 63, 64, 65, 127, 129, 200, 257, 300])
def test_batch1_steps_on_panels(units, dtype, threads):
    # Batch-1 steps run on the recurrent kernel packed in panels of 64 float32 / 32 float64
    # columns: whole, partial and several panels, an odd and even number of rows, in the serial
    # and pipelined layer and in the units split (from 2 x 64 units), with and without lengths.
    crnn.set_num_threads(threads)
    rng = np.random.default_rng(units)
    steps, din = 24, 40
    weights = make_stack_weights(rng, din, [units], 1, dtype)
    handle = crnn._core.RNN(weights, direction="forward", dtype=dtype)
    x = rng.uniform(-1, 1, (1, steps, din)).astype(dtype)
    h0 = [rng.uniform(-1, 1, (1, units)).astype(dtype)]
    tol = derived_tol(dtype, stack_k(din, [units], 1), steps)
    for lengths in (None, np.array([steps - 5])):
        ref = reference.simple_rnn_stack(to64(x), to64(weights), initial_state=to64(h0),
                                         lengths=lengths)
        got = handle.forward(x, initial_state=h0, lengths=lengths)
        assert np.abs(got - ref).max() <= tol, f"lengths={lengths}"


# Batch-1 layers narrower than 2 x 64 units split their units when the input is at most half as
# wide, each half of the recurrent weights fills most of L1 (weights >= 3/2 x L1: 48 KiB with a
# 32 KiB L1), and the halves (on blocks of 16 float32 / 8 float64 units) are within 3/5 of each
# other; otherwise they pipeline. A reset-before GRU ("gru_before"), whose steps meet twice,
# needs twice L1. (cell, dtype, input, units, split if the weights are large enough):
def halving_pays(cell: str, units: int, dtype, reset_after: bool = True) -> bool:
    """Whether a batch-1 layer's recurrent weights are large enough for the units split: 3/2 of
    this machine's L1, twice L1 for a reset-before GRU (its steps meet twice)."""
    num, den = (2, 1) if cell == "gru" and not reset_after else (3, 2)
    return den * GATES[cell] * units * units * np.dtype(dtype).itemsize >= \
        num * crnn._core.machine()["l1_bytes"]


BATCH1_SPLITS = [("lstm", np.float32, 16, 64, True), ("lstm", np.float32, 32, 112, True),
                 ("lstm", np.float32, 33, 64, False),   # input wider than half the units
                 ("lstm", np.float32, 16, 48, False),   # 32 / 16: unbalanced
                 ("gru", np.float32, 16, 80, True),     # 48 / 32: the second half starts
                 ("gru", np.float32, 16, 112, True),    # inside a panel (3 x 48 columns)
                 ("gru", np.float32, 32, 64, True),     # 48 KiB: just enough with a 32 KiB
                 ("simple", np.float32, 16, 112, True),  # L1; 49 KiB: too small with a 48 KiB L1
                 ("simple", np.float32, 16, 96, True),   # 36 KiB: too small with 32 KiB L1
                 ("gru", np.float64, 16, 64, True),
                 ("gru", np.float64, 16, 96, "alike"),   # 48 / 48: a batch of one's edge
                 ("simple", np.float64, 16, 100, False),  # 64 / 36: unbalanced
                 ("lstm", np.float64, 8, 48, True),
                 ("gru_before", np.float32, 32, 64, True),  # 48 KiB: too small for two meetings
                 ("gru_before", np.float32, 16, 80, True)]  # 75 KiB


@pytest.mark.parametrize("cell, dtype, din, units, split", BATCH1_SPLITS,
                         ids=lambda v: getattr(v, "__name__", str(v)))
def test_batch1_units_split_of_narrow_layers(cell, dtype, din, units, split):
    # "alike": split where a batch of one's tiles sum every width alike and its edges move off
    # the panels' (not AVX2, csrc/cpu.h crnn__row_tiles_alike); there too, its bits are one
    # thread's
    tiles_alike = crnn._core.machine()["isa"] != "avx2"
    if split == "alike":
        split = tiles_alike
    crnn.set_num_threads(2)
    rng = np.random.default_rng(units + din)
    steps = 120
    reset_after = cell != "gru_before"
    cell = "gru" if cell == "gru_before" else cell
    split = split and halving_pays(cell, units, dtype, reset_after)
    weights = [[make_cell_weights(rng, cell, din, units, dtype, True, reset_after)]]
    handle = crnn._core.RNN(weights, cell=cell, reset_after=reset_after, dtype=dtype)
    assert handle.plan(1, steps) == (("units", 2) if split else ("pipeline", 2))
    assert handle.plan(2, steps)[0] == "batch"  # narrower than 128 units: a row a thread
    # a second layer reads the first one's full width: the stack pipelines
    stack = crnn._core.RNN(weights + [[make_cell_weights(rng, cell, units, units, dtype)]],
                           cell=cell, reset_after=reset_after, dtype=dtype)
    assert stack.plan(1, steps)[0] == "pipeline"
    x = rng.uniform(-1, 1, (1, steps, din)).astype(dtype)
    h0 = rng.uniform(-1, 1, (1, units)).astype(dtype)
    init = [[h0, h0 * dtype(0.5)]] if cell == "lstm" else [h0]
    for lengths in (None, np.array([steps - 7])):
        got, states = handle.forward(x, init, lengths, True, True)
        again, _ = handle.forward(x, init, lengths, True, True)
        assert got.tobytes() == again.tobytes()
        # a slice cut inside a panel sums its columns as the whole panel's tile does, but with
        # AVX2 (csrc/cpu.h, crnn__row_tiles_alike): the bits of one thread
        crnn.set_num_threads(1)
        alone, _ = handle.forward(x, init, lengths, True, True)
        crnn.set_num_threads(2)
        if blas_column_splits_agree(dtype) and tiles_alike:
            assert got.tobytes() == alone.tobytes(), f"lengths={lengths}"
        exp, exp_states = reference.rnn_stack(to64(x), to64(weights), initial_state=to64(init),
                                              lengths=lengths, return_state=True, cell=cell,
                                              reset_after=reset_after)
        tol = derived_tol(dtype, din + units, steps)
        assert np.abs(got - exp).max() <= tol, f"lengths={lengths}"
        got_h = states[0][0] if cell == "lstm" else states[0]
        exp_h = exp_states[0][0] if cell == "lstm" else exp_states[0]
        assert np.abs(got_h - exp_h).max() <= tol


def cell_stack_weights(rng, cells, units, dirs, din, dtype, reset_after=True):
    """Weights of a stack of these cells, widths and directions, each layer reading the whole
    output of the one before; a recurrent bias where a GRU resets after its product."""
    weights, d = [], din
    for cell, h, direction in zip(cells, units, dirs):
        ndir = 2 if direction == "bidirectional" else 1
        weights.append([make_cell_weights(rng, cell, d, h, dtype, True,
                                          cell == "gru" and reset_after) for _ in range(ndir)])
        d = h * ndir
    return weights


# A batch of one's units split whose threads' slices of the recurrent weights fit L1, or (two
# threads) take at most 5 lines of the hand-off each, ends its steps by handing h_t over in tagged
# lines, not at a barrier (csrc/rnn_template.h, hands_over_in_lines): layers of that size alone,
# reversed, bidirectional under the split (a direction after the other), stacked (the tags of every
# layer and direction differ) and beside a layer past both that keeps the barrier, over 1, 2, 3,
# 120 and 3 steps in one handle one after another (no tag of an earlier call may pass for a later
# one's), and with lengths (which keep the barrier). Every call: the one-thread bits where those
# are the split's (as above), else the first call's, and the reference within tolerance; calls of
# 120 steps repeat until the handle has timed one on its threads (RNN.pace), since a call that
# backs off computes the slices alone. On this machine's CPUs and L1, and in a child told of 3 or 4
# CPUs and a larger L1 (CRNN_CPUS, CRNN_L1_BYTES), where wider layers split three and four ways
# into slices that still fit.
HAND_OVER_CASES = {
    "lstm": (["lstm"], [64], ["forward"]),
    "lstm-reverse": (["lstm"], [64], ["reverse"]),
    "simple-stack": (["simple", "simple"], [128, 128], ["forward", "forward"]),
    # lines in both directions of the first layer; in the second too, its slices past L1 of 5
    # lines each
    "simple-bidirectional-gru": (["simple", "gru"], [128, 128], ["bidirectional", "forward"]),
    # slices past L1 of 5 lines (LSTM 128) in lines, of 7 (GRU 192) at the barrier
    "lstm-past-l1-gru": (["lstm", "gru"], [128, 192], ["forward", "forward"]),
}
# (CRNN_CPUS, CRNN_L1_BYTES, cells, units, directions)
FORCED_HAND_OVER_CASES = {
    "simple-3-threads": ("3", "48K", ["simple"], [192], ["forward"]),
    "simple-4-threads": ("4", "64K", ["simple"], [256], ["reverse"]),
    "lstm-gru-4-threads": ("4", "256K", ["lstm", "gru"], [256, 256], ["forward", "bidirectional"]),
}


def check_hand_over(cells, units, dirs, threads):
    """The checks above on one stack at `threads` threads (skips where it does not split so)."""
    rng = np.random.default_rng(len(cells) + sum(units) + threads)
    din, dtype = 16, np.float32
    l1 = crnn._core.machine()["l1_bytes"]
    weights = cell_stack_weights(rng, cells, units, dirs, din, dtype)
    kw = dict(cell=cells, direction=dirs)
    handle = crnn._core.RNN(weights, dtype=dtype, **kw)
    crnn.set_num_threads(threads)
    mode, threads = handle.plan(1, 120)  # (threads: at most the machine's CPUs)
    if mode != "units":
        pytest.skip(f"planned {mode} on this machine")
    # a thread's slice: about units / threads of a layer (float32: 14 values a line)
    if all(GATES[c] * h * -(-h // threads) * 4 > l1 and
           (threads > 2 or -(-h // threads) > 5 * 14) for c, h in zip(cells, units)):
        pytest.skip("slices past this machine's L1, of more than 5 lines: the barrier")
    alike = blas_column_splits_agree(dtype) and crnn._core.machine()["isa"] != "avx2"
    ndir = 2 if "bidirectional" in dirs else 1
    for steps in (1, 2, 3, 120, 3):
        x = rng.uniform(-1, 1, (1, steps, din)).astype(dtype)
        for lengths in (None, np.array([max(steps - 2, 0)])):
            crnn.set_num_threads(1)
            alone = handle.forward(x, None, lengths)
            crnn.set_num_threads(threads)
            first = handle.forward(x, None, lengths)
            deadline = time.monotonic() + (5 if steps == 120 and lengths is None else 0)
            calls = 0
            while calls < 20 or (time.monotonic() < deadline and
                                 not (handle.pace() or {}).get("ns_per_step", {}).get("threads")):
                got = handle.forward(x, None, lengths)
                assert got.tobytes() == (alone if alike else first).tobytes(), \
                    f"steps={steps} lengths={lengths}"
                calls += 1
            exp = reference.rnn_stack(to64(x), to64(weights), lengths=lengths, **kw)
            tol = derived_tol(dtype, stack_k(din, units, ndir), steps)
            assert np.abs(got - exp).max() <= tol, f"steps={steps} lengths={lengths}"
    return mode, threads


@pytest.mark.parametrize("case", list(HAND_OVER_CASES))
def test_batch1_units_split_hands_h_over_in_lines(case):
    check_hand_over(*HAND_OVER_CASES[case], 2)


@pytest.mark.parametrize("case", list(FORCED_HAND_OVER_CASES))
def test_batch1_units_split_hands_h_over_in_lines_on_more_threads(case):
    cpus, l1, cells, units, dirs = FORCED_HAND_OVER_CASES[case]
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "from test_parallel import check_hand_over\n"
            f"print(*check_hand_over({cells!r}, {units!r}, {dirs!r}, {cpus}))\n")
    run = subprocess.run([sys.executable, "-c", code, os.path.dirname(__file__)],
                         env=dict(os.environ, CRNN_CPUS=cpus, CRNN_L1_BYTES=l1),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.split() == ["units", cpus], run.stdout


# Layers of 2 x 64 units or more split their units at batch 1 only where each half of the
# recurrent weights still fills most of L1 (weights >= 3/2 x L1), as narrower ones do: smaller
# halves save less per step than the two cores' hand-off costs. They pipeline otherwise. At
# batch 2 the units split where the weights fill a quarter of L2, else a row a thread. Every
# batch-1 plan gives bitwise the same result where the BLAS gives a column of the input
# projection the same bits whichever columns a call covers (each thread of a units split projects
# its own); where it does not (OpenBLAS's Haswell sgemm), the split's own result is still
# repeatable bitwise.
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell, units", [("simple", 128), ("simple", 160), ("simple", 192),
                                         ("gru", 128), ("gru", 224)])
def test_batch1_units_split_of_wide_layers(cell, units, dtype):
    steps, din = 120, 16
    rng = np.random.default_rng(units)
    weights = [[make_cell_weights(rng, cell, din, units, dtype, True, cell == "gru")]]
    handle = crnn._core.RNN(weights, cell=cell, dtype=dtype)
    split = halving_pays(cell, units, dtype)
    x = rng.uniform(-1, 1, (1, steps, din)).astype(dtype)
    crnn.set_num_threads(1)
    alone = handle.forward(x)
    crnn.set_num_threads(2)
    assert handle.plan(1, steps) == (("units", 2) if split else ("pipeline", 2))
    rec = GATES[cell] * units * units * np.dtype(dtype).itemsize
    assert handle.plan(2, steps) == \
        ("units" if 4 * rec >= crnn._core.machine()["l2_bytes"] else "batch", 2)
    split_out = handle.forward(x)
    if blas_column_splits_agree(dtype):
        assert split_out.tobytes() == alone.tobytes()
    else:
        assert handle.forward(x).tobytes() == split_out.tobytes()
    exp = reference.rnn_stack(to64(x), to64(weights), cell=cell)
    tol = derived_tol(dtype, din + units, steps)
    assert np.abs(alone - exp).max() <= tol
    assert np.abs(split_out - exp).max() <= tol


# Batched steps whose recurrent weights outgrow half of L2, even a thread's half of them in the
# units split: the panels kernel then prefetches the next block of weights while one is in use.
# Weights past L2 split units, not rows, up to 16 rows a thread with AVX-512, 8 with AVX2 and 4
# with SSE2 (a row split's products per weight streamed grow with the vector width): at two
# threads batch 2 splits units with any kernels, 9 with AVX2 or AVX-512, 24 with AVX-512 only;
# batch 40 splits its rows, as does batch 9 of an all-bidirectional stack. The width comes from
# the L2 the core reads, odd so that the last panel is partial, and at least 129 units, which the
# units split takes at two threads (64 units a thread at least). The steps put every such call
# past the 2 Mflop under which a call runs serially, on a core of 256 KiB L2 too (SimpleRNN
# float64 there: 183 units, 2.3 Mflop at batch 2).
STREAM_MAX_ROWS = {"avx512": 16, "avx2": 8, "base": 4}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell, reset_after", [("simple", True), ("lstm", True), ("gru", True),
                                               ("gru", False)])
@pytest.mark.parametrize("batch", [2, 9, 24, 40])
def test_batched_steps_on_streamed_weights(batch, cell, reset_after, dtype, threads):
    crnn.set_num_threads(threads)
    rng = np.random.default_rng(batch * 7 + threads)
    gates = GATES[cell]
    es = np.dtype(dtype).itemsize
    units = max(int(np.sqrt(crnn._core.machine()["l2_bytes"] / (gates * es))) + 1 | 1, 129)
    assert gates * units * units * es / 2 > crnn._core.machine()["l2_bytes"] / 2
    steps, din = 16, 12
    weights = [[make_cell_weights(rng, cell, din, units, dtype, True, cell == "gru")]]
    handle = crnn._core.RNN(weights, cell=cell, reset_after=reset_after, dtype=dtype)
    if threads == 2:
        split_rows = batch > 2 * STREAM_MAX_ROWS[crnn._core.machine()["isa"]]
        assert handle.plan(batch, steps) == ("batch" if split_rows else "units", 2)
        # an all-bidirectional stack splits one direction a thread: not measured, rows kept
        bidir = crnn._core.RNN([weights[0] * 2], cell=cell, reset_after=reset_after,
                               direction="bidirectional", dtype=dtype)
        assert bidir.plan(batch, steps) == ("units" if batch < 8 else "batch", 2)
    x = rng.uniform(-1, 1, (batch, steps, din)).astype(dtype)
    h0 = rng.uniform(-1, 1, (batch, units)).astype(dtype)
    init = [[h0, h0 * dtype(0.5)]] if cell == "lstm" else [h0]
    got = handle.forward(x, init)
    assert got.tobytes() == handle.forward(x, init).tobytes()
    exp = reference.rnn_stack(to64(x), to64(weights), initial_state=to64(init), cell=cell,
                              reset_after=reset_after)
    assert np.abs(got - exp).max() <= derived_tol(dtype, din + units, steps)


# Where the units split of weights past L2 takes a batch the rows split would (8 rows or more,
# 4 a thread), and the two give bitwise the same result (every layer's units a whole number of
# blocks: 16 float32 values, 8 float64; the recurrent products on crnn's kernels), the calls
# time the row split (its "rival", RNN.plan_rival) against the units split and take the faster
# (RNN.pace). Both cut each input projection into the same GEMMs (a BLAS's sums can depend on a
# GEMM's shape: inputs of 700 values are blocked by OpenBLAS in some calls and not in others).
# Each way pinned (crnn._core._pin_way): every cell, both dtypes, lengths, initial states, a
# stack over a bidirectional layer, every batch with a rival up to 40 rows, 2 threads and 3 (3
# row ranges against 2 slices: the projections cut 3 x 2); the same bits, the reference's within
# tolerance. (test_isa.py runs this under each lesser instruction set.)
RIVAL_CASES = {  # cells, directions, reset_after, input width, timesteps, lengths
    "simple": (["simple"], ["forward"], True, 700, 5, False),
    "lstm": (["lstm"], ["forward"], True, 700, 4, False),
    "gru-after-reverse": (["gru"], ["reverse"], True, 700, 4, True),
    "gru-before": (["gru"], ["forward"], False, 300, 6, True),
    "lstm-bidirectional-gru": (["lstm", "gru"], ["bidirectional", "forward"], True, 40, 3, True),
}


def rival_units(cell: str, dtype) -> int:
    """The fewest units of whole blocks whose recurrent weights outgrow this machine's L2."""
    es = np.dtype(dtype).itemsize
    vb = 64 // es
    need = units_for_bytes(crnn._core.machine()["l2_bytes"], GATES[cell], es)
    return max(-(-need // vb) * vb, 128)


def rival_handle(case, dtype, rng):
    cells, dirs, reset_after, din, steps, use_lengths = RIVAL_CASES[case]
    units = [rival_units(c, dtype) for c in cells]
    weights = cell_stack_weights(rng, cells, units, dirs, din, dtype, reset_after)
    kw = dict(cell=cells, direction=dirs, reset_after=reset_after)
    return crnn._core.RNN(weights, dtype=dtype, **kw), weights, kw, units


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(RIVAL_CASES))
def test_units_split_and_its_row_split_rival_give_the_same_bits(case, dtype, threads):
    if crnn._core.machine()["cpus"] < 2:
        pytest.skip("one CPU: nothing splits")
    crnn.set_num_threads(threads)
    rng = np.random.default_rng(sum(map(ord, case)) + threads)
    handle, weights, kw, units = rival_handle(case, dtype, rng)
    _, dirs, _, din, steps, use_lengths = RIVAL_CASES[case]
    batches = [b for b in (8, 9, 13, 24, 31, 32, 40) if handle.plan_rival(b, steps)]
    # 8 rows at least up to 4 a thread (SSE2's limit), at most 16 a thread (AVX-512's)
    assert batches[:1] == [8] and max(batches) <= 32, batches
    ndir = [2 if d == "bidirectional" else 1 for d in dirs]
    for batch in batches:
        what = f"{case} batch={batch} units={units}"
        assert handle.plan(batch, steps)[0] == "units", what
        assert handle.plan_rival(batch, steps) == min(threads, batch // 4), what  # its threads
        x = rng.uniform(-1, 1, (batch, steps, din)).astype(dtype)
        lengths = rng.integers(0, steps + 1, batch) if use_lengths else None
        h0 = [rng.uniform(-1, 1, (batch, h)).astype(dtype)
              for h, n in zip(units, ndir) for _ in range(n)]
        init = [[h, h * dtype(0.5)] if c == "lstm" else h
                for h, c in zip(h0, [c for c, n in zip(kw["cell"], ndir) for _ in range(n)])]
        got = []
        try:
            for way in (0, 1, 0, 1):
                crnn._core._pin_way(way)
                out, states = handle.forward(x, init, lengths, return_state=True)
                got.append(out.tobytes() + b"".join(
                    a.tobytes() for e in states for a in (e if isinstance(e, list) else [e])))
        finally:
            crnn._core._pin_way(None)
        assert got[0] == got[2] and got[1] == got[3], what + ": a way not repeatable"
        assert got[0] == got[1], what + ": the units split and the row split differ"
        exp = reference.rnn_stack(to64(x), to64(weights), initial_state=to64(init),
                                  lengths=lengths, **kw)
        tol = derived_tol(dtype, stack_k(din, units, max(ndir)), steps * len(units))
        assert np.abs(out - exp).max() <= tol, what


def test_rival_only_where_the_bits_are_the_same():
    # units of a partial last block, batches under 8 rows, a stack of bidirectional layers only
    # (one direction a thread): no rival; the plan's threads are timed against the caller alone
    if crnn._core.machine()["cpus"] < 2:
        pytest.skip("one CPU: nothing splits")
    crnn.set_num_threads(2)
    rng = np.random.default_rng(11)
    h = rival_units("lstm", np.float32)
    whole = crnn._core.RNN([[make_cell_weights(rng, "lstm", 16, h, np.float32)]], cell="lstm")
    odd = crnn._core.RNN([[make_cell_weights(rng, "lstm", 16, h + 1, np.float32)]], cell="lstm")
    f64 = crnn._core.RNN([[make_cell_weights(rng, "lstm", 16, h + 8, np.float64)]], cell="lstm",
                         dtype=np.float64)
    assert whole.plan(8, 10) == odd.plan(8, 10) == f64.plan(8, 10) == ("units", 2)
    assert whole.plan_rival(8, 10) == 2 and f64.plan_rival(8, 10) == 2  # 8 float64 a block
    assert odd.plan_rival(8, 10) == 0
    assert whole.plan(7, 10)[0] != "batch" and whole.plan_rival(7, 10) == 0
    assert whole.plan_rival(1, 10) == whole.plan_rival(0, 10) == 0
    both = crnn._core.RNN([[make_cell_weights(rng, "lstm", 16, h, np.float32)] * 2],
                          cell="lstm", direction="bidirectional")
    assert both.plan(8, 10) == ("batch", 2) and both.plan_rival(8, 10) == 0
    x = rng.uniform(-1, 1, (8, 10, 16)).astype(np.float32)
    for handle in (whole, odd):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and handle.pace() is None:
            handle.forward(x)
        assert handle.pace()["other"] == ("batch" if handle is whole else "alone")
    with pytest.raises(ValueError, match="way"):
        crnn._core._pin_way(2)


@pytest.mark.parametrize("setting, rival", [("", 2), ("blas", 0)])
def test_rival_plan_follows_the_recurrent_setting(setting, rival):
    # with the BLAS on the recurrent products (CRNN_RECURRENT=blas) the two ways' products are
    # GEMMs of other shapes: no rival
    if crnn._core.machine()["cpus"] < 2:
        pytest.skip("one CPU: nothing splits")
    code = ("import numpy as np, crnn\n"
            "crnn.set_num_threads(2)\n"
            f"w = [[[np.full((16, {4 * rival_units('lstm', np.float32)}), 0.01, np.float32)]]]\n"
            "h = w[0][0][0].shape[1] // 4\n"
            "w[0][0] += [np.eye(h, 4 * h, dtype=np.float32), np.zeros(4 * h, np.float32)]\n"
            "r = crnn._core.RNN(w, cell='lstm')\n"
            "print(*r.plan(8, 10), r.plan_rival(8, 10))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=REPO_ROOT,
                          env=dict(child_env(), CRNN_RECURRENT=setting))
    assert proc.returncode == 0 and proc.stdout.split() == ["units", "2", str(rival)], \
        describe(proc)


def time_both_ways(handle, call, first, expect):
    """Calls ``call()`` until ``handle.pace()`` has timed both ways (10 s at most), every call
    giving ``first``'s bits, and checks the pace's fields ``expect``. Skips where the
    threads stalled or backed off all along (only clean threaded calls count towards the first
    probe)."""
    deadline = time.monotonic() + 10
    pace = handle.pace()
    while time.monotonic() < deadline and not (pace and all(pace["ns_per_step"].values())):
        for _ in range(10):
            assert call().tobytes() == first.tobytes()
        pace = handle.pace()
    assert pace and {k: pace[k] for k in expect} == expect, pace
    if not pace["ns_per_step"]["alone"] and pace["calls"] < 8:
        pytest.skip(f"the threads stalled or backed off for 10 s (a loaded machine): {pace}")
    assert all(pace["ns_per_step"].values()), f"one way never timed: {pace}"


def test_calls_time_the_row_split_rival_and_keep_the_bits():
    # unpinned, the calls time both ways (the units split first) and keep the first call's bits
    if crnn._core.machine()["cpus"] < 2:
        pytest.skip("one CPU: nothing splits")
    crnn.set_num_threads(2)
    rng = np.random.default_rng(3)
    handle, weights, kw, units = rival_handle("lstm", np.float32, rng)
    x = rng.uniform(-1, 1, (8, 12, 700)).astype(np.float32)
    assert handle.plan_rival(8, 12) == 2
    first = handle.forward(x)
    exp = reference.rnn_stack(to64(x), to64(weights), **kw)
    assert np.abs(first - exp).max() <= derived_tol(np.float32, 700 + units[0], 12)
    time_both_ways(handle, lambda: handle.forward(x), first,
                   {"batch": 8, "mode": "units", "threads": 2, "other": "batch"})
    for _ in range(20):
        assert handle.forward(x).tobytes() == first.tobytes()


# Batches of 2-7 rows at two threads (fewer than 4 rows a thread) over weights within L2: the
# units split where the weights fill a quarter of L2 per row a thread (rounded down; a step of a
# row or two streams its weights; halving them pays past the cores' hand-off each step); in
# float32 the pipeline where the input projections cost at least the steps and the weights
# stream from L2 (twice L1 or more), or, where the rows split unevenly, at least half the steps;
# else a row split, down to a row a thread. Sizes come from the caches this machine reports;
# each plan is checked against the reference, repeatable bit for bit.
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell", ["simple", "lstm", "gru"])
def test_small_batch_plans(cell, dtype):
    crnn.set_num_threads(2)
    machine = crnn._core.machine()
    l1, l2 = machine["l1_bytes"], machine["l2_bytes"]
    G, es = GATES[cell], np.dtype(dtype).itemsize
    big = max(units_for_bytes(l2 / 4, G, es), 128) | 1  # a quarter of L2, odd
    mid = max(units_for_bytes(2 * l1, G, es), 128) + 3  # twice L1, under L2 / 4 here
    small = 128 if 4 * G * 128 * 128 * es < l2 else 100
    rows_big = max(units_for_bytes(l2 / 2, G, es), 128) | 1  # 2 rows a thread
    steps = 60
    cases = [  # (batch, din, units, plan)
        (2, 16, small, "batch"), (3, 16, small, "batch"), (2, 12, big, "units"),
        (3, 12, big, "units"), (4, 12, big, "batch"), (5, 12, rows_big, "units"),
        (2, mid + 5, mid, "pipeline"), (5, mid, mid, "pipeline"), (4, mid - 1, mid, "batch"),
        (7, 16, mid, "batch"), (3, 48, 96, "pipeline"), (3, 40, 96, "batch")]
    for batch, din, units, plan in cases:
        if plan == "pipeline" and dtype == np.float64:
            plan = "batch"  # float64 never pipelines a batch
        rec = G * units * units * es
        if rec >= l2 or (plan != "units" and 4 * rec >= batch // 2 * l2):
            continue  # outside the case's band of sizes on this machine (a small L2)
        rng = np.random.default_rng(batch * 1000 + units)
        weights = [[make_cell_weights(rng, cell, din, units, dtype, True, cell == "gru")]]
        handle = crnn._core.RNN(weights, cell=cell, dtype=dtype)
        what = f"batch={batch} din={din} units={units}"
        assert handle.plan(batch, steps) == (plan, 2), what
        x = rng.uniform(-1, 1, (batch, steps, din)).astype(dtype)
        lengths = rng.integers(0, steps + 1, batch)
        got = handle.forward(x, lengths=lengths)
        assert got.tobytes() == handle.forward(x, lengths=lengths).tobytes(), what
        exp = reference.rnn_stack(to64(x), to64(weights), lengths=lengths, cell=cell)
        assert np.abs(got - exp).max() <= derived_tol(dtype, din + units, steps), what


@pytest.mark.parametrize("cell", ["simple", "lstm", "gru"])
def test_row_blocks_plan(cell):
    # A row split cuts its rows into two blocks a thread where every block keeps 4 rows and
    # every layer's recurrent weights fit in half of L2; else one range a thread (0 blocks).
    l2 = crnn._core.machine()["l2_bytes"]
    G, es = GATES[cell], 4
    small = 64
    past_half = units_for_bytes(l2 / 2, G, es) + 16  # past L2 / 2, under L2
    rng = np.random.default_rng(5)

    def handle(units_list):
        weights, din = [], 12
        for units in units_list:
            weights.append([make_cell_weights(rng, cell, din, units, np.float32, True,
                                              cell == "gru")])
            din = units
        return crnn._core.RNN(weights, cell=cell, dtype=np.float32)

    h = handle([small])
    for threads, batch, blocks in [(2, 16, 4), (2, 15, 0), (2, 40, 4), (3, 16, 0), (3, 24, 6),
                                   (1, 64, 0), (8, 64, 16), (9, 72, 0)]:
        crnn.set_num_threads(threads)
        assert h.plan(batch, 20)[0] == ("batch" if threads > 1 else "serial"), (threads, batch)
        assert h.plan_blocks(batch, 20) == blocks, (threads, batch)
    crnn.set_num_threads(2)
    assert handle([small, past_half]).plan(16, 20) == ("batch", 2)
    assert handle([small, past_half]).plan_blocks(16, 20) == 0  # one layer past L2 / 2
    assert handle([past_half - 32, small]).plan_blocks(16, 20) == 4
    with pytest.raises(ValueError, match="batch, timesteps"):
        h.plan_blocks(16, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_row_blocks_on_more_threads_than_cpus(cell, dtype):
    # Four threads on (typically) two CPUs: threads lose their core in the middle of a block's
    # chunk, the others take the free blocks, and blocks begun on one thread go on on another.
    # Every call gives the bits of the first and the reference's values: a bidirectional layer
    # over a reverse one, lengths, initial states in, final states (LSTM: h and c) out.
    crnn.set_num_threads(4)
    rng = np.random.default_rng(17)
    batch, steps, din, units = 37, 23, 11, 48
    weights = [[make_cell_weights(rng, cell, din, units, dtype, True, cell == "gru")
                for _ in range(2)],
               [make_cell_weights(rng, cell, 2 * units, units, dtype, True, cell == "gru")]]
    handle = crnn._core.RNN(weights, cell=cell, dtype=dtype,
                            direction=["bidirectional", "reverse"])
    assert handle.plan(batch, steps) == ("batch", 4)
    assert handle.plan_blocks(batch, steps) == 8
    x = rng.uniform(-1, 1, (batch, steps, din)).astype(dtype)
    lengths = rng.integers(0, steps + 1, batch)
    state = [rng.uniform(-1, 1, (batch, units)).astype(dtype) for _ in range(3)]
    if cell == "lstm":
        state = [[h, rng.uniform(-1, 1, (batch, units)).astype(dtype)] for h in state]
    first, first_states = handle.forward(x, state, lengths=lengths, return_state=True)
    exp, exp_states = reference.rnn_stack(to64(x), to64(weights), cell=cell,
                                          direction=["bidirectional", "reverse"],
                                          initial_state=to64(state), lengths=lengths,
                                          return_state=True)
    tol = derived_tol(dtype, 2 * units + units, steps)
    assert np.abs(first - exp).max() <= tol
    assert len(flat_states(first_states)) == len(flat_states(exp_states)) == \
        (6 if cell == "lstm" else 3)
    for got, want in zip(flat_states(first_states), flat_states(exp_states)):
        assert np.abs(got - want).max() <= tol
    for call in range(40):
        out, states = handle.forward(x, state, lengths=lengths, return_state=True)
        assert out.tobytes() == first.tobytes(), f"call {call}"
        assert [a.tobytes() for a in flat_states(states)] == \
            [a.tobytes() for a in flat_states(first_states)], f"call {call}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("units", [9, 65, 130])
def test_batch1_infinite_projection_is_not_nan(units, dtype):
    # An infinite input makes an infinite projection; with an initial state the first step adds
    # a finite recurrent term to it, and tanh(inf) = 1 as in the reference, never NaN.
    rng = np.random.default_rng(3)
    kernel = rng.uniform(0.1, 0.5, (4, units)).astype(dtype)  # > 0: x * kernel is +inf, not NaN
    recurrent = rng.uniform(-0.1, 0.1, (units, units)).astype(dtype)
    weights = [[[kernel, recurrent, np.zeros(units, dtype)]]]
    x = np.zeros((1, 3, 4), dtype)
    x[0, 0, 0] = np.inf
    h0 = [rng.uniform(-1, 1, (1, units)).astype(dtype)]
    got = crnn._core.RNN(weights, direction="forward", dtype=dtype).forward(x, initial_state=h0)
    ref = reference.simple_rnn_stack(to64(x), to64(weights), initial_state=to64(h0))
    assert not np.isnan(ref).any() and not np.isnan(got).any()
    assert np.abs(got - ref).max() <= derived_tol(dtype, stack_k(4, [units], 1), 3)


def test_pipeline_waits_for_chunks_in_flight():
    # The projection is far costlier than the steps (2000 inputs, 8 units), so the recurrent
    # thread keeps catching up with the projecting one and must wait for the chunk it is
    # writing; calls back to back keep the worker awake so that both really take part.
    crnn.set_num_threads(2)
    rng = np.random.default_rng(5)
    weights = make_stack_weights(rng, 2000, [8], 1, np.float32)
    handle = crnn._core.RNN(weights, direction="forward", dtype=np.float32)
    x = rng.uniform(-1, 1, (1, 512, 2000)).astype(np.float32)
    ref = reference.simple_rnn_stack(to64(x), to64(weights))
    tol = derived_tol(np.float32, stack_k(2000, [8], 1), 512)
    first = handle.forward(x)
    assert np.abs(first - ref).max() <= tol
    for _ in range(30):
        assert handle.forward(x).tobytes() == first.tobytes()


@pytest.mark.parametrize("shape", [(1, 60, 96, 100), (1, 16, 40, 260), (16, 30, 24, 64)],
                         ids=["pipeline", "units", "row blocks"])
def test_busy_pool_gives_the_same_bits(shape):
    # While one call holds the worker threads, concurrent calls compute the same chunks, slices
    # or row blocks on their own thread (the caller then runs every block, its own and the
    # others'): every result must be bitwise the one of a lone call.
    crnn.set_num_threads(2)
    batch, steps, din, units = shape
    rng = np.random.default_rng(11)
    weights = make_stack_weights(rng, din, [units, units], 1, np.float32)
    handle = crnn._core.RNN(weights, direction="forward", dtype=np.float32)
    if batch > 1:
        assert handle.plan_blocks(batch, steps) == 4, handle.plan(batch, steps)
    xs = [rng.uniform(-1, 1, (batch, steps, din)).astype(np.float32) for _ in range(4)]
    lengths = np.array([steps - 3] * batch)
    expected = [handle.forward(x, lengths=lengths).tobytes() for x in xs]

    def work(i):
        return [handle.forward(xs[(i + r) % 4], lengths=lengths).tobytes() for r in range(40)]

    for i, outs in enumerate(run_threaded(work, n_threads=4)):
        for r, got in enumerate(outs):
            assert got == expected[(i + r) % 4], f"thread {i}, call {r}"


def test_thread_count_setting():
    crnn.set_num_threads(3)
    assert crnn.get_num_threads() == 3
    with pytest.raises(ValueError, match="n: got 0"):
        crnn.set_num_threads(0)
    with pytest.raises(TypeError, match="n: got"):
        crnn.set_num_threads(1.5)
    assert crnn.get_num_threads() == 3


_FORKED = {}


def _forward_in_child():
    return _FORKED["handle"].forward(_FORKED["x"])


def test_forked_child_computes_with_threads():
    # The pool's workers do not survive fork(); the child must start its own, not hang.
    import multiprocessing as mp
    crnn.set_num_threads(2)
    rng = np.random.default_rng(5)
    _FORKED["x"] = rng.uniform(-1, 1, (1, 20, 24)).astype(np.float32)
    _FORKED["handle"] = crnn._core.RNN(make_stack_weights(rng, 24, [520], 1, np.float32))
    expected = _FORKED["handle"].forward(_FORKED["x"])  # starts the pool in the parent
    with mp.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(_forward_in_child).get(timeout=60)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("threads", [2, 3, 4])
def test_batch_split_over_layers_of_mixed_widths(threads):
    """Three layers of different widths with the batch split over threads: each thread's rows of
    the two ping-pong frames must stay disjoint across layers (layer l + 2 reuses layer l's frame;
    a thread running ahead once overwrote rows another thread still read: 31 of 100 calls wrong)."""
    crnn.set_num_threads(threads)
    m = crnn.Sequential([crnn.SimpleRNN(32, return_sequences=True, input_shape=(None, 16), seed=0),
                         crnn.SimpleRNN(64, return_sequences=True, seed=1),
                         crnn.SimpleRNN(128, seed=2)])
    x = np.random.default_rng(0).standard_normal((32, 20, 16)).astype("float32")
    assert m._get_plan()[0].handle.plan(32, 20)[0] == "batch"
    ref = x
    for layer in m.layers:
        ref = layer(ref)
    wrong = sum(np.abs(m(x) - ref).max() > 1e-5 for _ in range(100))
    assert wrong == 0, f"{wrong} of 100 calls differ from the layer-by-layer result"


# Handles whose batch-1 calls split their units or pipeline at 2 threads (on machines with an L1
# of up to 64 KiB): (cells, units per layer, directions, reset_after, input width, timesteps,
# lengths). The units split of one layer, of a reset-before GRU (two phases a step) with lengths,
# of a reversed layer over an odd number of steps, of a bidirectional layer under a forward one
# (two slices a direction); a pipeline.
PACE_CASES = {
    "units-simple": (["simple"], [256], ["forward"], True, 24, 40, None),
    "units-lstm": (["lstm"], [64], ["forward"], True, 16, 60, None),
    "units-gru-before-lengths": (["gru"], [128], ["forward"], False, 32, 40, [33]),
    "units-reverse": (["simple"], [256], ["reverse"], True, 24, 41, None),
    "units-mixed-stack": (["simple", "gru"], [128, 128], ["bidirectional", "forward"], True, 16,
                          30, [27]),
    "pipeline-gru": (["gru"], [100], ["forward"], True, 96, 60, None),
}


def _pace_handle(case, rng):
    cells, units, dirs, reset_after, din, steps, lengths = PACE_CASES[case]
    weights = cell_stack_weights(rng, cells, units, dirs, din, np.float32, reset_after)
    kw = dict(cell=cells, direction=dirs, reset_after=reset_after)
    handle = crnn._core.RNN(weights, dtype=np.float32, **kw)
    x = rng.uniform(-1, 1, (1, steps, din)).astype(np.float32)
    lengths = None if lengths is None else np.array(lengths)
    ref = reference.rnn_stack(to64(x), to64(weights), lengths=lengths, **kw)
    ndir = 2 if "bidirectional" in dirs else 1
    return handle, x, lengths, ref, derived_tol(np.float32, stack_k(din, units, ndir), steps)


@pytest.mark.parametrize("case", list(PACE_CASES))
def test_calls_time_their_threads_and_keep_the_bits(case):
    # A handle's units-split and pipelined calls time their threads against the caller computing
    # the same slices or chunks alone, and take the faster way (RNN.pace): every call, either
    # way, gives bitwise the first call's result, and the reference's within tolerance.
    if crnn._core.machine()["cpus"] < 2:
        pytest.skip("one CPU: nothing splits")
    crnn.set_num_threads(2)
    handle, x, lengths, ref, tol = _pace_handle(case, np.random.default_rng(5))
    batch, steps = x.shape[:2]
    mode = handle.plan(batch, steps)
    if mode[0] != case.split("-")[0]:
        pytest.skip(f"planned {mode} on this machine")
    first = handle.forward(x, None, lengths)
    assert np.abs(first - ref).max() <= tol
    # after the first calls (which may back off, crnn__backoff) both ways get timed
    time_both_ways(handle, lambda: handle.forward(x, None, lengths), first,
                   {"batch": batch, "mode": mode[0], "threads": mode[1]})
    # and either way keeps them: the way the calls take now, and the other when it is probed
    for _ in range(30):
        assert handle.forward(x, None, lengths).tobytes() == first.tobytes()
    # a call of another batch size and plan starts the timing afresh; one of the serial path
    # (too little work) leaves it alone
    other = next((b for b in (2, 3, 4) if handle.plan(b, steps)[0] in ("units", "pipeline")
                  and (b, *handle.plan(b, steps)) != (batch, *mode)), None)
    handle.forward(x[:, :1])
    assert handle.pace()["batch"] == batch
    if other is not None:
        xs = np.concatenate([x] * other)
        ls = None if lengths is None else np.repeat(lengths, other)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and handle.pace()["batch"] != other:
            handle.forward(xs, None, ls)  # (calls that back off are not timed)
        pace = handle.pace()
        assert pace["batch"] == other and pace["ns_per_step"]["alone"] == 0, pace


def test_calls_far_apart_weigh_waking_the_worker():
    # A units split's threads pay a wait for the worker whenever a call comes after it went to
    # sleep (50 us after the pool's last call): the handle counts how many recent calls did
    # ("apart") and charges the threads that share of the process's recent waits ("wake_ns"), so
    # calls far apart are timed at what they cost. The bits stay the first call's either way.
    if crnn._core.machine()["cpus"] < 2:
        pytest.skip("one CPU: nothing splits")
    crnn.set_num_threads(2)
    handle, x, lengths, ref, tol = _pace_handle("units-simple", np.random.default_rng(7))
    if handle.plan(*x.shape[:2])[0] != "units":
        pytest.skip(f"planned {handle.plan(*x.shape[:2])} on this machine")
    first = handle.forward(x)
    assert np.abs(first - ref).max() <= tol
    # calls that back off (crnn__backoff: the worker stalled, as under other load on the CPUs)
    # are not timed: none of this handle's may be yet
    deadline = time.monotonic() + 10
    while handle.pace() is None and time.monotonic() < deadline:
        assert handle.forward(x).tobytes() == first.tobytes()
    if handle.pace() is None:
        pytest.skip("every call backed off for 10 s: other load on the CPUs")
    for _ in range(40):  # back to back
        assert handle.forward(x).tobytes() == first.tobytes()
    pace = handle.pace()
    # (one gap past 50 us, a page fault or a preemption, counts 1/4 and fades by 3/4 a call)
    assert pace["apart"] < 0.5 and isinstance(pace["wake_ns"], int), pace
    for _ in range(20):  # 5 ms apart
        time.sleep(0.005)
        assert handle.forward(x).tobytes() == first.tobytes()
    pace = handle.pace()
    assert pace["apart"] > 0.9, pace  # (the choice itself: tests/c/test_pool.c, test_pace)


def test_calls_keep_the_plans_threads_when_asked():
    code = ("import numpy as np, crnn\n"
            "crnn.set_num_threads(2)\n"
            "w = [[[np.full((24, 256), 0.01, np.float32), np.eye(256, dtype=np.float32) * 0.5,\n"
            "       np.zeros(256, np.float32)]]]\n"
            "h = crnn._core.RNN(w, direction='forward', dtype=np.float32)\n"
            "x = np.ones((1, 40, 24), np.float32)\n"
            "for _ in range(200): h.forward(x)\n"
            "print(crnn._core.machine()['adapt_threads'], h.plan(1, 40)[0], h.pace())\n")
    run = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", code],
                         env=dict(os.environ, CRNN_ADAPT_THREADS="0"), capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    adapt, mode, pace = run.stdout.split()
    if mode != "units":
        pytest.skip(f"planned {mode} on this machine")
    assert (adapt, pace) == ("False", "None"), run.stdout


@pytest.mark.parametrize("value", ["2", "yes", "off"])
def test_unusable_adapt_setting_warns(value):
    run = subprocess.run(
        [sys.executable, "-c", "import crnn; print(crnn._core.machine()['adapt_threads'])"],
        env=dict(os.environ, CRNN_ADAPT_THREADS=value), capture_output=True, text=True,
        timeout=120, check=True)
    assert run.stdout.strip() == "True"
    assert f"CRNN_ADAPT_THREADS={value!r} ignored" in run.stderr, run.stderr
