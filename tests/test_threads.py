"""Concurrency: 8 Python threads calling one layer / one compiled handle at once must get
bitwise the results of sequential calls (each call has its own workspace; the handle is
immutable), and a forward call must release the GIL (pattern of cython-blis ``run_threaded``).
"""
import threading
import time

import numpy as np
import pytest

import crnn

from _helpers import run_threaded, make_stack_weights

N_THREADS = 8
ROUNDS = 6


# Large enough that each call spends milliseconds in C (GIL released), so calls really overlap.
B, T, D, H = 16, 40, 64, 256


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(7)
    return [rng.uniform(-1, 1, (B, T, D)).astype(np.float32) for _ in range(N_THREADS)]


def test_threads_share_one_layer(inputs):
    layer = crnn.SimpleRNN(H, return_sequences=True, return_state=True, input_shape=(None, D), seed=0)
    expected = [layer(x) for x in inputs]

    def work(i):
        outs = []
        for r in range(ROUNDS):
            x = inputs[(i + r) % N_THREADS]
            outs.append(((i + r) % N_THREADS, layer(x)))
        return outs

    for outs in run_threaded(work):
        for j, (out, h) in outs:
            assert out.tobytes() == expected[j][0].tobytes(), f"input {j}: output differs under threads"
            assert h.tobytes() == expected[j][1].tobytes(), f"input {j}: state differs under threads"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_threads_share_one_handle(dtype, inputs):
    rng = np.random.default_rng(11)
    w = make_stack_weights(rng, D, [H, 96], 2, dtype)
    handle = crnn._core.RNN(w, activation=["tanh", "relu"], direction="bidirectional", dtype=dtype)
    # every thread uses its own lengths and initial states too
    lengths = [rng.integers(0, T + 1, B) for _ in range(N_THREADS)]
    h0 = [[rng.uniform(-1, 1, (B, u)).astype(dtype) for u in (H, H, 96, 96)] for _ in range(N_THREADS)]
    xs = [x.astype(dtype) for x in inputs]

    def call(j):
        return handle.forward(xs[j], initial_state=h0[j], lengths=lengths[j], return_state=True)

    expected = [call(j) for j in range(N_THREADS)]

    def work(i):
        return [((i + r) % N_THREADS, call((i + r) % N_THREADS)) for r in range(ROUNDS)]

    for outs in run_threaded(work):
        for j, (out, states) in outs:
            assert out.tobytes() == expected[j][0].tobytes(), f"input {j}: output differs under threads"
            for s, e in zip(states, expected[j][1]):
                assert s.tobytes() == e.tobytes(), f"input {j}: a state differs under threads"


@pytest.mark.parametrize("core_threads", [2, 3])
@pytest.mark.parametrize("case", ["unit-split", "direction-split"])
def test_threads_share_one_handle_small_batch(case, core_threads):
    """Small batches with wide layers split hidden units (or directions) across crnn's own
    threads, meeting at a barrier every step: 8 callers at once must not mix their steps."""
    rng = np.random.default_rng(13)
    if case == "unit-split":
        Bs, Ts, Ds, units, direction = 1, 30, 32, [256], "forward"
    else:
        Bs, Ts, Ds, units, direction = 2, 30, 32, [128, 128], "bidirectional"
    ndir = 2 if direction == "bidirectional" else 1
    w = make_stack_weights(rng, Ds, units, ndir, np.float32)
    handle = crnn._core.RNN(w, direction=direction, dtype="float32")
    xs = [rng.uniform(-1, 1, (Bs, Ts, Ds)).astype(np.float32) for _ in range(N_THREADS)]
    old = crnn.get_num_threads()
    crnn.set_num_threads(core_threads)
    try:
        expected = [handle.forward(x, return_state=True) for x in xs]

        def work(i):
            return [((i + r) % N_THREADS, handle.forward(xs[(i + r) % N_THREADS], return_state=True))
                    for r in range(ROUNDS)]

        results = run_threaded(work)
    finally:
        crnn.set_num_threads(old)
    for outs in results:
        for j, (out, states) in outs:
            assert out.tobytes() == expected[j][0].tobytes(), f"input {j}: output differs under threads"
            for s, e in zip(states, expected[j][1]):
                assert s.tobytes() == e.tobytes(), f"input {j}: a state differs under threads"


def test_threads_functional_and_model(inputs):
    """Different entry points at once: functional calls, a Sequential, a layer."""
    rng = np.random.default_rng(3)
    w = make_stack_weights(rng, D, [64], 1, np.float32)
    model = crnn.Sequential()
    model.add(crnn.SimpleRNN(32, input_shape=(None, D), return_sequences=True, seed=1))
    model.add(crnn.SimpleRNN(16, seed=2))
    exp_f = [crnn.simple_rnn_stack(x, w) for x in inputs]
    exp_m = [model.predict(x) for x in inputs]

    def work(i):
        x = inputs[i]
        return [(crnn.simple_rnn_stack(x, w), model.predict(x)) for _ in range(3)]

    for i, outs in enumerate(run_threaded(work)):
        for f, m in outs:
            assert f.tobytes() == exp_f[i].tobytes()
            assert m.tobytes() == exp_m[i].tobytes()


def test_forward_releases_the_gil():
    """While one thread is inside a long forward call, another Python thread keeps running.

    A ticker thread records the longest pause between its loop iterations. If the call held
    the GIL, the ticker would be frozen for the whole call; with the GIL released its pauses
    stay at scheduler/switch-interval scale (ms), far below half the call's duration.
    """
    rng = np.random.default_rng(5)
    Bg, Tg, Dg, Hg = 64, 200, 128, 384
    w = make_stack_weights(rng, Dg, [Hg], 1, np.float32)
    handle = crnn._core.RNN(w, dtype="float32")
    x = rng.uniform(-1, 1, (Bg, Tg, Dg)).astype(np.float32)
    old = crnn.get_num_threads()
    crnn.set_num_threads(1)  # leave the second core to the ticker
    try:
        handle.forward(x)  # warm up
        t0 = time.perf_counter()
        handle.forward(x)
        duration = time.perf_counter() - t0
        reps = max(1, int(0.08 / duration) + 1)
        if reps > 1:  # make one call last >= ~80 ms by lengthening it
            x = np.concatenate([x] * reps, axis=1)
            t0 = time.perf_counter()
            handle.forward(x)
            duration = time.perf_counter() - t0

        stop = threading.Event()
        started = threading.Event()
        window = {}
        max_gap = [0.0]

        def ticker():
            last = time.perf_counter()
            started.set()
            while not stop.is_set():
                now = time.perf_counter()
                if "start" in window and now > window["start"]:
                    max_gap[0] = max(max_gap[0], now - max(last, window["start"]))
                last = now

        th = threading.Thread(target=ticker)
        th.start()
        started.wait()
        time.sleep(0.02)
        window["start"] = time.perf_counter()
        handle.forward(x)
        end = time.perf_counter()
        stop.set()
        th.join()
        call = end - window["start"]
    finally:
        crnn.set_num_threads(old)
    assert call > 0.04, f"call too short ({call * 1e3:.1f} ms) for the test to mean anything"
    assert max_gap[0] < 0.5 * call, (
        f"the ticker thread stalled {max_gap[0] * 1e3:.1f} ms of a {call * 1e3:.1f} ms forward "
        "call: the GIL seems to be held during the C call")
