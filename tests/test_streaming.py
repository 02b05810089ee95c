"""Stateful layers and models: streaming one timestep at a time equals one whole call.

Tolerance: the streamed and the whole computation do the same arithmetic except that the input
projection runs as one GEMM over all timesteps in the whole call and per step when streaming, so
a step's pre-activation may round differently by a few ulps; with recurrent kernels of spectral
norm 0.5 such differences are contracted, never amplified.  The bounds are the issue's: 1e-6
(float32) and 1e-12 (float64) absolute, with every value O(1).
"""
import pickle

import numpy as np
import pytest

import crnn
from crnn.models import _FusedRun

from _helpers import assert_close, make_layer_weights
from _model_oracle import dense_weights, ref_bidirectional, ref_rnn

DT_IDS = {"float32": "f32", "float64": "f64"}
STREAM_TOL = {"float32": 1e-6, "float64": 1e-12}


def _weights(rng, d, h, dtype):
    return [a for a in make_layer_weights(rng, d, h, dtype) if a is not None]


def _stream(call, x, chunks=None):
    """Feed ``x`` to ``call`` chunk by chunk (default: one timestep at a time); concatenate."""
    steps = x.shape[1]
    bounds = list(range(steps + 1)) if chunks is None else chunks
    return [call(x[:, a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


@pytest.mark.parametrize("dtype", ["float32", "float64"], ids=DT_IDS.get)
@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_stateful_layer_one_step_at_a_time(dtype, act, rng):
    B, T, D, H = 3, 12, 4, 8
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    w = _weights(rng, D, H, dtype)
    whole = crnn.SimpleRNN(H, activation=act, return_sequences=True, return_state=True, dtype=dtype,
                           weights=w)
    exp_seq, exp_h = whole(x)
    for rs in (True, False):
        st = crnn.SimpleRNN(H, activation=act, return_sequences=rs, stateful=True, dtype=dtype,
                            batch_input_shape=(B, None, D), weights=w)
        outs = _stream(st, x)
        got = np.concatenate(outs, axis=1) if rs else outs[-1]
        assert_close(got, exp_seq if rs else exp_seq[:, -1], STREAM_TOL[dtype], f"rs={rs}", dtype)
        assert_close(st.states[0], exp_h, STREAM_TOL[dtype], "final state", dtype)
        # uneven chunks, after a reset
        st.reset_states()
        outs = _stream(st, x, [0, 1, 4, 5, 11, 12])
        got = np.concatenate(outs, axis=1) if rs else outs[-1]
        assert_close(got, exp_seq if rs else exp_seq[:, -1], STREAM_TOL[dtype], "chunks", dtype)
    # the oracle agrees with the whole call
    ref_seq, _ = ref_rnn(x, w, activation=act, return_sequences=True)
    assert_close(exp_seq, ref_seq, 1e-5 if dtype == "float32" else 1e-12, "whole vs reference")


@pytest.mark.parametrize("dtype", ["float32", "float64"], ids=DT_IDS.get)
def test_stateful_stack_model_one_step_at_a_time(dtype, rng):
    B, T, D = 2, 10, 3

    def make(stateful):
        kw = {"stateful": True, "batch_input_shape": (B, None, D)} if stateful else \
            {"input_shape": (None, D)}
        return crnn.Sequential([crnn.SimpleRNN(8, return_sequences=True, dtype=dtype, **kw),
                                crnn.SimpleRNN(6, return_sequences=True, stateful=stateful,
                                               activation="relu", dtype=dtype),
                                crnn.SimpleRNN(5, return_sequences=True, stateful=stateful,
                                               dtype=dtype),
                                crnn.Dense(2, activation="softmax", dtype=dtype)])
    stream, whole = make(True), make(False)
    w = _weights(rng, D, 8, dtype) + _weights(rng, 8, 6, dtype) + _weights(rng, 6, 5, dtype) \
        + dense_weights(rng, 5, 2, dtype)
    stream.set_weights(w)
    whole.set_weights(w)
    runs = [s for s in stream._get_plan() if isinstance(s, _FusedRun)]
    assert len(runs) == 1 and len(runs[0].layers) == 3, "the stateful stack is one C call"
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    exp = whole(x)
    for _ in range(2):  # twice: reset_states() restarts the stream
        got = np.concatenate(_stream(stream, x), axis=1)
        assert_close(got, exp, STREAM_TOL[dtype], "stacked model, one step at a time", dtype)
        stream.reset_states()
    # states: the last layer's state is its last output
    _stream(stream, x)
    last = stream.layers[2].states[0]
    assert_close(last, whole.layers[2](whole.layers[1](whole.layers[0](x)))[:, -1],
                 STREAM_TOL[dtype], "kept state")
    # predict: consecutive batches continue the states (Keras); one call == streamed
    stream.reset_states()
    pred = stream.predict(x, verbose=0)
    assert_close(pred, exp, STREAM_TOL[dtype], "stateful predict")


def test_stateful_many_to_one_model_and_errors(rng):
    B, T, D, H = 4, 6, 3, 8
    w = _weights(rng, D, H, np.float32) + dense_weights(rng, H, 1, np.float32)
    stream = crnn.Sequential([crnn.SimpleRNN(H, stateful=True, batch_input_shape=(B, None, D)),
                              crnn.Dense(1, activation="sigmoid")])
    whole = crnn.Sequential([crnn.SimpleRNN(H, input_shape=(None, D)),
                             crnn.Dense(1, activation="sigmoid")])
    stream.set_weights(w)
    whole.set_weights(w)
    x = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
    assert_close(_stream(stream, x)[-1], whole(x), STREAM_TOL["float32"], "many-to-one stream")
    with pytest.raises(ValueError, match=r"\bx\b.*batch size"):
        stream(x[:2, :1])
    with pytest.raises(ValueError, match=r"\bx\b.*batch size"):
        stream.layers[0](x[:2, :1])
    with pytest.raises(AttributeError):
        whole.layers[0].reset_states()
    layer = stream.layers[0]
    h = rng.uniform(-1, 1, (B, H)).astype(np.float32)
    layer.reset_states(h)
    exp = crnn.SimpleRNN(H, weights=w[:3])(x, initial_state=h)
    assert_close(layer(x), exp, STREAM_TOL["float32"], "reset_states(states)")
    with pytest.raises(ValueError, match=r"states"):
        layer.reset_states(np.zeros((B + 1, H)))


def test_stateful_layer_learns_batch_from_first_call(rng):
    """No fixed batch size: the first call fixes it (Keras 3); a reset keeps it."""
    D, H = 2, 4
    st = crnn.SimpleRNN(H, stateful=True, return_sequences=True)
    x = rng.uniform(-1, 1, (3, 5, D)).astype(np.float32)
    first = np.concatenate(_stream(st, x), axis=1)
    exp = crnn.SimpleRNN(H, return_sequences=True, weights=st.get_weights())(x)
    assert_close(first, exp, STREAM_TOL["float32"], "lazy stateful")
    st.reset_states()
    assert st.states[0].shape == (3, H) and not st.states[0].any()


def test_pickle_mid_stream_keeps_state(rng):
    B, T, D = 2, 8, 3
    model = crnn.Sequential([crnn.SimpleRNN(6, stateful=True, return_sequences=True,
                                            batch_input_shape=(B, None, D), seed=1),
                             crnn.SimpleRNN(4, stateful=True, return_sequences=True, seed=2)])
    x = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
    model(x[:, :3])
    clone = pickle.loads(pickle.dumps(model))
    for layer, other in zip(model.layers, clone.layers):
        assert layer.states[0].tobytes() == other.states[0].tobytes()
    assert clone(x[:, 3:]).tobytes() == model(x[:, 3:]).tobytes()
    assert clone(x[:, :1]).tobytes() == model(x[:, :1]).tobytes()


def test_stateful_bidirectional_keeps_both_states(rng):
    B, T, D, H = 2, 5, 3, 4
    w = _weights(rng, D, H, np.float64) + _weights(rng, D, H, np.float64)
    bi = crnn.Bidirectional(crnn.SimpleRNN(H, stateful=True, return_sequences=True, dtype="float64"),
                            batch_input_shape=(B, None, D), weights=w)
    x = rng.uniform(-1, 1, (B, 2 * T, D))
    first = bi(x[:, :T])
    exp1, states = ref_bidirectional(x[:, :T], w[:3], w[3:], return_sequences=True)
    assert_close(first, exp1, 1e-12, "first chunk")
    second = bi(x[:, T:])
    exp2, _ = ref_bidirectional(x[:, T:], w[:3], w[3:], return_sequences=True, initial_state=states)
    assert_close(second, exp2, 1e-12, "second chunk starts from both kept states")
    assert len(bi.states) == 2
    bi.reset_states()
    assert all(not s.any() for s in bi.states)
    assert_close(bi(x[:, :T]), exp1, 1e-12, "after reset_states")
    model = crnn.Sequential([bi])
    bi.reset_states()
    assert_close(model(x[:, :T]), exp1, 1e-12, "in a model")
    assert_close(model(x[:, T:]), exp2, 1e-12, "in a model, second chunk")
    with pytest.raises(ValueError, match=r"states"):
        bi.reset_states([np.zeros((B, H))])


@pytest.mark.parametrize("dtype", ["float32", "float64"], ids=DT_IDS.get)
def test_masked_stream_carries_state(dtype, rng):
    """A masked step inside a stream leaves the kept state as it was (Keras)."""
    B, T, D, H = 3, 6, 2, 5
    w = _weights(rng, D, H, dtype)
    st = crnn.SimpleRNN(H, stateful=True, batch_input_shape=(B, None, D), dtype=dtype, weights=w)
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    m = rng.random((B, T)) < 0.6
    for t in range(T):
        st(x[:, t:t + 1], mask=m[:, t:t + 1])
    _, exp_h = ref_rnn(x, w, m)
    assert_close(st.states[0], exp_h, STREAM_TOL[dtype], "state after a masked stream", dtype)
