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


@pytest.mark.parametrize("kind", ["model", "bidirectional"])
def test_set_weights_is_atomic_for_concurrent_calls(xs, kind):
    """set_weights (a model's, or one Bidirectional layer's two directions) racing with calls on
    other threads: every output is bitwise that of the old weights or of the new ones, never of a
    mixture (before the weights lock, 477 of 3,000 outputs of such a race matched neither)."""
    if kind == "model":
        target = _model(dense_between=True)
        call = target
    else:
        target = crnn.Bidirectional(crnn.SimpleRNN(H, return_sequences=True), input_shape=(None, D))
        call = target
    x = xs[0]
    rng = np.random.default_rng(5)
    wa = target.get_weights()
    wb = [rng.uniform(-0.3, 0.3, w.shape).astype(w.dtype) for w in wa]
    target.set_weights(wb)
    out_b = call(x).tobytes()
    target.set_weights(wa)
    out_a = call(x).tobytes()
    rounds = 60

    def worker(i):
        if i == 0:
            for r in range(rounds):
                target.set_weights(wb if r % 2 == 0 else wa)
            return []
        return [call(x).tobytes() for _ in range(rounds)]
    got = [o for outs in run_threaded(worker, n_threads=4) for o in outs]
    mixed = sum(o not in (out_a, out_b) for o in got)
    assert mixed == 0, f"{mixed} of {len(got)} outputs came from a mixture of old and new weights"


def test_unbuilt_model_called_from_threads_is_built_once():
    """The first calls of an unbuilt model, from several threads at once, build it once: every
    result comes from the weights the model keeps (before, 42 of 160 first results came from
    weights each thread drew for itself and then lost)."""
    rng = np.random.default_rng(21)
    x = rng.uniform(-1, 1, (4, 6, 5)).astype(np.float32)
    for trial in range(6):
        model = crnn.Sequential([crnn.LSTM(16, return_sequences=True), crnn.SimpleRNN(8),
                                 crnn.Dense(3)])
        outs = run_threaded(lambda i: model(x).tobytes(), n_threads=N_THREADS)
        final = model(x).tobytes()
        stray = sum(o != final for o in outs)
        assert stray == 0, f"trial {trial}: {stray} of {len(outs)} first calls used other weights"


def test_rnn_handle_init_runs_once():
    """A compiled handle is immutable: __init__ again raises, and the handle keeps working (a
    re-init used to swap the metadata but not the handle: out-of-bounds writes, leaks)."""
    rng = np.random.default_rng(2)
    w1 = make_layer_weights(rng, 3, 4, np.float32)
    w2 = make_layer_weights(rng, 5, 64, np.float32)
    x = rng.uniform(-1, 1, (2, 3, 3)).astype(np.float32)
    handle = crnn._core.RNN([[w1]])
    before = handle.forward(x)
    for bad in ([[w2]], [[[w2[0], w2[1][:1], None]]], "junk"):
        with pytest.raises(RuntimeError, match=r"already built"):
            handle.__init__(bad)
    assert handle.units == [4] and handle.input_size == 3
    assert handle.forward(x).tobytes() == before.tobytes()
