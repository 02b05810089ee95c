"""The Keras-like Python surface: crnn.SimpleRNN and crnn.Sequential against crnn.reference.

Values are compared with the derived tolerances of _helpers.py. Where a test needs relu/linear
values to stay O(1), it installs its own weights (spectral norm 0.5 recurrent kernel) with
set_weights; the Keras default initialisers (orthogonal recurrent kernel, norm exactly 1) are
only run with tanh, whose outputs are bounded by 1 whatever the weights.
"""
import itertools
import math

import numpy as np
import pytest

import crnn
from crnn import reference

from _helpers import (ACTIVATIONS, assert_close, assert_unchanged, deep_copy, derived_tol,
                      make_layer_weights, to64, value_scale)

DT_IDS = {"float32": "f32", "float64": "f64"}


def _ref_layer(x, weights, **kw):
    """Oracle for one layer from its get_weights() list (bias optional)."""
    w = to64(weights)
    k, r = w[0], w[1]
    b = w[2] if len(w) == 3 else None
    return reference.simple_rnn(to64(x), k, r, b, return_state=True, **kw)


def _controlled(rng, layer, D, dtype, act):
    """Install O(1)-keeping weights (see module docstring) and return them."""
    k, r, b = make_layer_weights(rng, D, layer.units, dtype, bias=layer.use_bias)
    if act in ("tanh", "sigmoid"):
        k = k * k.dtype.type(4)
        b = None if b is None else b * b.dtype.type(4)
    w = [k, r] + ([b] if b is not None else [])
    layer.set_weights(w)
    return w


@pytest.mark.parametrize("dtype", ["float32", "float64"], ids=DT_IDS.get)
def test_simple_rnn_layer_matches_reference(dtype, rng):
    B, T, D, H = 4, 7, 5, 6
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    x_copy = x.copy()
    for act, use_bias, gb, rs, rst in itertools.product(ACTIVATIONS + (None,), (True, False),
                                                        (False, True), (False, True), (False, True)):
        msg = f"{dtype} {act} use_bias={use_bias} go_backwards={gb} rs={rs} rst={rst}"
        layer = crnn.SimpleRNN(H, activation=act, use_bias=use_bias, go_backwards=gb,
                               return_sequences=rs, return_state=rst, input_shape=(T, D),
                               dtype=dtype, seed=1)
        w = _controlled(rng, layer, D, dtype, act)
        got_w = layer.get_weights()
        assert len(got_w) == (3 if use_bias else 2), msg
        exp_out, exp_h = _ref_layer(x, got_w, activation=act, go_backwards=gb, return_sequences=rs)
        tol = derived_tol(dtype, D + H, T, value_scale(exp_out))
        res = layer(x)
        if rst:
            assert isinstance(res, list) and len(res) == 2, f"{msg}: expected [output, state]"
            out, h = res
            assert_close(h, exp_h, tol, msg + " state", dtype)
        else:
            assert isinstance(res, np.ndarray), msg
            out = res
        assert_close(out, exp_out, tol, msg + " output", dtype)
        for a, b in zip(got_w, w):
            np.testing.assert_array_equal(a, b)
    assert_unchanged(x_copy, x, "x")


@pytest.mark.parametrize("dtype", ["float32", "float64"], ids=DT_IDS.get)
def test_default_weights_tanh_matches_reference(dtype, rng):
    """The layer as a user gets it: Keras default initialisers, tanh."""
    B, T, D, H = 3, 5, 4, 16
    layer = crnn.SimpleRNN(H, return_sequences=True, dtype=dtype, seed=3)
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    out = layer(x)  # builds on first call
    assert layer.built
    w = layer.get_weights()
    assert [a.shape for a in w] == [(D, H), (H, H), (H,)]
    assert all(a.dtype == np.dtype(dtype) for a in w)
    exp, _ = _ref_layer(x, w, return_sequences=True)
    assert_close(out, exp, derived_tol(dtype, D + H, T), "default weights", dtype)


def test_go_backwards_returns_processing_order(rng):
    """Keras: with go_backwards the sequence comes back reversed; frame 0 has read only x[:, -1]."""
    B, T, D, H = 2, 6, 3, 4
    x = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
    layer = crnn.SimpleRNN(H, go_backwards=True, return_sequences=True, input_shape=(T, D), seed=0)
    w = _controlled(rng, layer, D, np.float32, "tanh")
    out = layer(x)
    tol = derived_tol(np.float32, D + H, T)
    first = reference.simple_rnn(to64(x[:, -1:]), *to64(w))
    assert_close(out[:, 0], first, tol, "frame 0 reads the last step")
    fwd_on_reversed = reference.simple_rnn(to64(x[:, ::-1]), *to64(w), return_sequences=True)
    assert_close(out, fwd_on_reversed, tol, "go_backwards == forward over reversed time")
    last = crnn.SimpleRNN(H, go_backwards=True, input_shape=(T, D))
    last.set_weights(w)
    assert_close(last(x), fwd_on_reversed[:, -1], tol, "go_backwards last output")


@pytest.mark.parametrize("dtype", ["float32", "float64"], ids=DT_IDS.get)
def test_initial_state(dtype, rng):
    B, T, D, H = 3, 4, 2, 5
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    h0 = rng.uniform(-1, 1, (B, H)).astype(dtype)
    h0_copy = h0.copy()
    for gb in (False, True):
        layer = crnn.SimpleRNN(H, return_sequences=True, return_state=True, go_backwards=gb,
                               input_shape=(T, D), dtype=dtype)
        w = _controlled(rng, layer, D, dtype, "tanh")
        exp_out, exp_h = _ref_layer(x, w, initial_state=to64(h0), go_backwards=gb, return_sequences=True)
        tol = derived_tol(dtype, D + H, T)
        for spelling in (h0, [h0]):
            out, h = layer(x, initial_state=spelling)
            assert_close(out, exp_out, tol, f"initial_state go_backwards={gb}", dtype)
            assert_close(h, exp_h, tol, f"final state go_backwards={gb}", dtype)
        zero_out, _ = layer(x)
        assert not np.allclose(zero_out, out), "initial_state had no effect"
    assert_unchanged(h0_copy, h0, "initial_state")


@pytest.mark.parametrize("fixed_batch", [True, False])
def test_stateful_two_halves_equal_one_call(fixed_batch, rng):
    B, T, D, H = 4, 10, 3, 5
    x = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
    if fixed_batch:
        st = crnn.SimpleRNN(H, stateful=True, return_sequences=True, batch_input_shape=(B, None, D))
    else:  # batch size taken from the first call (Keras 3 style)
        st = crnn.SimpleRNN(H, stateful=True, return_sequences=True)
        st.build((B, None, D))
    whole = crnn.SimpleRNN(H, return_sequences=True, return_state=True, input_shape=(None, D))
    w = _controlled(rng, whole, D, np.float32, "tanh")
    st.set_weights(w)
    ref_out, ref_h = whole(x)
    tol = derived_tol(np.float32, D + H, T)
    first = st(x[:, :4])
    second = st(x[:, 4:])
    assert_close(np.concatenate([first, second], axis=1), ref_out, tol, "stateful halves")
    st.reset_states()
    again = st(x[:, :4])
    assert_close(again, first, 0.0, "after reset_states the state is zero again")
    assert_close(again, ref_out[:, :4], tol, "after reset_states")
    # a stateless layer with the same weights does not carry state
    stateless = crnn.SimpleRNN(H, return_sequences=True, input_shape=(None, D))
    stateless.set_weights(w)
    s1 = stateless(x[:, :4])
    s2 = stateless(x[:, 4:])
    assert_close(s1, first, tol, "stateless first half")
    assert not np.allclose(s2, second, atol=1e-3), "a stateless layer must not keep state"


def test_seed_determinism_and_keras_initialisers():
    D, H = 7, 12
    a = crnn.SimpleRNN(H, input_shape=(None, D), seed=123)
    b = crnn.SimpleRNN(H, input_shape=(None, D), seed=123)
    c = crnn.SimpleRNN(H, input_shape=(None, D), seed=124)
    wa, wb, wc = a.get_weights(), b.get_weights(), c.get_weights()
    for x, y in zip(wa, wb):
        assert x.tobytes() == y.tobytes(), "same seed must give the same weights"
    assert not np.array_equal(wa[0], wc[0]) and not np.array_equal(wa[1], wc[1])
    for dtype in ("float32", "float64"):
        layer = crnn.SimpleRNN(H, input_shape=(None, D), seed=5, dtype=dtype)
        k, r, bias = layer.get_weights()
        assert k.dtype == r.dtype == bias.dtype == np.dtype(dtype)
        limit = math.sqrt(6.0 / (D + H))  # glorot_uniform
        assert np.all(np.abs(k) <= limit)
        assert np.abs(k).max() > 0.5 * limit, "kernel should fill the glorot range"
        assert abs(float(k.mean())) < 0.25 * limit
        eps = np.finfo(dtype).eps
        np.testing.assert_allclose(r.T.astype(np.float64) @ r, np.eye(H), rtol=0, atol=50 * eps)
        np.testing.assert_allclose(r.astype(np.float64) @ r.T, np.eye(H), rtol=0, atol=50 * eps)
        assert np.all(bias == 0)
    # a layer built lazily with a seed gets the same weights as one built from its input shape
    lazy = crnn.SimpleRNN(H, seed=123)
    lazy(np.zeros((1, 2, D), np.float32))
    for x, y in zip(lazy.get_weights(), wa):
        assert x.tobytes() == y.tobytes()


def test_input_shape_spellings_are_equivalent():
    T, D, H = 2, 10, 3
    layers = [crnn.SimpleRNN(H, input_shape=(T, D), seed=0),
              crnn.SimpleRNN(H, input_length=T, input_dim=D, seed=0),
              crnn.SimpleRNN(H, batch_input_shape=(None, T, D), seed=0),
              crnn.SimpleRNN(H, batch_input_shape=(8, T, D), seed=0)]
    ref = layers[0].get_weights()
    for layer in layers:
        assert layer.count_params() == 42
        for x, y in zip(layer.get_weights(), ref):
            assert x.tobytes() == y.tobytes()


def test_set_get_weights_round_trip_and_copies(rng):
    D, H = 4, 3
    layer = crnn.SimpleRNN(H, input_shape=(None, D), seed=0)
    w = [rng.uniform(-1, 1, (D, H)), rng.uniform(-1, 1, (H, H)), rng.uniform(-1, 1, (H,))]
    w_copy = deep_copy(w)
    layer.set_weights(w)
    assert_unchanged(w_copy, w, "set_weights argument")
    got = layer.get_weights()
    assert [g.dtype for g in got] == [np.dtype(np.float32)] * 3
    for g, s in zip(got, w):
        np.testing.assert_array_equal(g, s.astype(np.float32))
    # the layer holds copies both ways
    x = rng.uniform(-1, 1, (2, 3, D)).astype(np.float32)
    before = layer(x)
    w[0][...] = 9.0
    got[1][...] = 9.0
    try:
        got[2][...] = 9.0
    except ValueError:
        pass  # read-only copies are fine too
    assert layer(x).tobytes() == before.tobytes(), "mutating arrays outside changed the layer"
    for g, s in zip(layer.get_weights(), w_copy):
        np.testing.assert_array_equal(g, s.astype(np.float32))
    # setting new weights changes the result
    layer.set_weights([a * 0.5 for a in w_copy])
    assert not np.allclose(layer(x), before)
    # without bias: two arrays
    nb = crnn.SimpleRNN(H, use_bias=False, input_shape=(None, D))
    assert len(nb.get_weights()) == 2
    nb.set_weights(w_copy[:2])
    exp = reference.simple_rnn(to64(x), *to64([a.astype(np.float32) for a in w_copy[:2]]))
    assert_close(nb(x), exp, derived_tol(np.float32, D + H, 3, value_scale(exp)), "use_bias=False")


def test_count_params():
    assert crnn.SimpleRNN(3, input_shape=(2, 10)).count_params() == 42
    assert crnn.SimpleRNN(3, input_shape=(2, 10), use_bias=False).count_params() == 39
    assert crnn.SimpleRNN(128, input_dim=300).count_params() == 300 * 128 + 128 * 128 + 128
    assert crnn.SimpleRNN(1, input_dim=1).count_params() == 3
    lazy = crnn.SimpleRNN(4)
    with pytest.raises(ValueError):
        lazy.count_params()  # not built yet, as in Keras
    lazy(np.zeros((1, 1, 2)))
    assert lazy.count_params() == 2 * 4 + 16 + 4


def test_dtype_float64_layer(rng):
    B, T, D, H = 2, 9, 3, 7
    layer = crnn.SimpleRNN(H, activation="relu", return_sequences=True, input_shape=(T, D),
                           dtype="float64")
    w = _controlled(rng, layer, D, np.float64, "relu")
    x = rng.uniform(-1, 1, (B, T, D))
    for xin in (x, x.astype(np.float32), (x * 3).astype(np.int64)):
        out = layer(xin)
        assert out.dtype == np.float64
        exp = reference.simple_rnn(to64(xin), *to64(w), activation="relu", return_sequences=True)
        assert_close(out, exp, derived_tol(np.float64, D + H, T, value_scale(exp)), f"x {xin.dtype}")
    # default float32 layer casts float64 input down
    l32 = crnn.SimpleRNN(H, input_shape=(T, D))
    assert l32(x).dtype == np.float32


def test_layer_zero_batch_and_int_input(rng):
    layer = crnn.SimpleRNN(5, return_sequences=True, input_shape=(3, 2))
    assert layer(np.zeros((0, 3, 2), np.float32)).shape == (0, 3, 5)
    out = layer(np.ones((2, 3, 2), dtype=np.int32))
    assert out.dtype == np.float32 and out.shape == (2, 3, 5)
    exp = reference.simple_rnn(np.ones((2, 3, 2)), *to64(layer.get_weights()), return_sequences=True)
    assert_close(out, exp, derived_tol(np.float32, 7, 3), "int input")


# ---------------------------------------------------------------------------------------------
# Sequential
# ---------------------------------------------------------------------------------------------
def _model(rng, D, units, acts, dtype="float32", last_rs=True):
    model = crnn.Sequential()
    for i, (h, a) in enumerate(zip(units, acts)):
        kw = {"input_shape": (None, D)} if i == 0 else {}
        rs = last_rs if i == len(units) - 1 else True
        model.add(crnn.SimpleRNN(h, activation=a, return_sequences=rs, dtype=dtype, **kw))
    flat = []
    d = D
    for h, a in zip(units, acts):
        k, r, b = make_layer_weights(rng, d, h, dtype)
        if a in ("tanh", "sigmoid"):
            k, b = k * k.dtype.type(4), b * b.dtype.type(4)
        flat += [k, r, b]
        d = h
    model.set_weights(flat)
    return model, flat


def _ref_chain(x, flat, acts, last_rs=True):
    out = to64(x)
    n = len(acts)
    for i, a in enumerate(acts):
        k, r, b = to64(flat[3 * i:3 * i + 3])
        out = reference.simple_rnn(out, k, r, b, activation=a,
                                   return_sequences=last_rs if i == n - 1 else True)
    return out


@pytest.mark.parametrize("dtype", ["float32", "float64"], ids=DT_IDS.get)
@pytest.mark.parametrize("last_rs", [True, False])
def test_sequential_matches_chained_reference(dtype, last_rs, rng):
    B, T, D = 5, 8, 4
    units, acts = [6, 9, 3], ["tanh", "relu", None]
    model, flat = _model(rng, D, units, acts, dtype, last_rs)
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    exp = _ref_chain(x, flat, acts, last_rs)
    k = max(d + h for d, h in zip([D] + units[:-1], units))
    tol = derived_tol(dtype, k, T * len(units), value_scale(exp))
    out = model(x)
    assert_close(out, exp, tol, "Sequential __call__", dtype)
    assert_close(model.predict(x), exp, tol, "Sequential predict", dtype)
    for bs in (1, 2, 3, 5, 64):
        assert_close(model.predict(x, batch_size=bs), out, tol, f"predict(batch_size={bs})", dtype)
    assert model.count_params() == sum(a.size for a in flat)


def test_sequential_with_go_backwards_layer_in_the_middle(rng):
    B, T, D = 3, 6, 4
    model = crnn.Sequential()
    l1 = crnn.SimpleRNN(5, return_sequences=True, input_shape=(T, D))
    l2 = crnn.SimpleRNN(4, return_sequences=True, go_backwards=True)
    l3 = crnn.SimpleRNN(3)
    for layer in (l1, l2, l3):
        model.add(layer)
    w = [_controlled(rng, l1, D, np.float32, "tanh"), _controlled(rng, l2, 5, np.float32, "tanh"),
         _controlled(rng, l3, 4, np.float32, "tanh")]
    x = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
    h = reference.simple_rnn(to64(x), *to64(w[0]), return_sequences=True)
    h = reference.simple_rnn(h, *to64(w[1]), go_backwards=True, return_sequences=True)
    exp = reference.simple_rnn(h, *to64(w[2]))
    assert_close(model(x), exp, derived_tol(np.float32, 10, 3 * T), "go_backwards in a stack")
    assert model.output_shape == (None, 3)


def test_sequential_get_set_weights(rng):
    D = 3
    model, flat = _model(rng, D, [4, 2], ["tanh", "tanh"])
    got = model.get_weights()
    assert [g.shape for g in got] == [(3, 4), (4, 4), (4,), (4, 2), (2, 2), (2,)]
    for g, f in zip(got, flat):
        np.testing.assert_array_equal(g, f)
    x = rng.uniform(-1, 1, (2, 5, D)).astype(np.float32)
    out = model(x)
    other, _ = _model(rng, D, [4, 2], ["tanh", "tanh"])
    assert not np.allclose(other(x), out)
    other.set_weights(got)
    assert other(x).tobytes() == out.tobytes()
    # layer weights are reachable and consistent
    assert len(model.layers) == 2
    np.testing.assert_array_equal(model.layers[1].get_weights()[0], flat[3])
    # setting a layer's weights after a call is seen by the model
    model.layers[0].set_weights([a * 0.5 for a in flat[:3]])
    exp = _ref_chain(x, [a * 0.5 for a in flat[:3]] + flat[3:], ["tanh", "tanh"])
    assert_close(model(x), exp, derived_tol(np.float32, 8, 10), "after layer.set_weights")


def test_sequential_constructor_list_and_lazy_build(rng):
    l1 = crnn.SimpleRNN(4, return_sequences=True)
    l2 = crnn.SimpleRNN(2)
    model = crnn.Sequential([l1, l2])
    assert not model.built
    x = rng.uniform(-1, 1, (3, 5, 6)).astype(np.float32)
    out = model(x)
    assert out.shape == (3, 2) and model.built
    assert model.count_params() == (6 * 4 + 16 + 4) + (4 * 2 + 4 + 2)
    exp = _ref_chain(x, model.get_weights(), ["tanh", "tanh"], last_rs=False)
    assert_close(out, exp, derived_tol(np.float32, 10, 10), "lazy build")


def test_summary_text(capsys):
    model = crnn.Sequential()
    model.add(crnn.SimpleRNN(16, input_shape=(None, 7), return_sequences=True))
    model.add(crnn.SimpleRNN(5, use_bias=False))
    model.summary()
    lines = [l.rstrip() for l in capsys.readouterr().out.splitlines()]
    assert lines[0].startswith('Model: "sequential') and lines[0].endswith('"')
    assert lines[1] == "_" * 65
    assert lines[2] == "Layer (type)                 Output Shape              Param #"
    assert lines[3] == "=" * 65
    n1 = 7 * 16 + 16 * 16 + 16
    n2 = 16 * 5 + 25
    row1, row2 = lines[4], lines[6]
    for row, shape, n in ((row1, "(None, None, 16)", n1), (row2, "(None, 5)", n2)):
        assert row.split(" (SimpleRNN)")[0].startswith("simple_rnn")
        assert row.index(shape) == 29, row
        assert row[55:] == str(n), row
    assert lines[5] == "_" * 65 and lines[7] == "=" * 65
    assert lines[8:] == [f"Total params: {n1 + n2:,}", f"Trainable params: {n1 + n2:,}",
                         "Non-trainable params: 0", "_" * 65]
    # print_fn receives the same lines
    got = []
    model.summary(print_fn=got.append)
    assert [g.rstrip() for g in got] == lines
    with pytest.raises(ValueError):
        crnn.Sequential().summary()  # not built


def test_assigning_a_configured_attribute_reconfigures_the_layer(rng):
    """``layer.activation = ...`` and the like go through the same checks as the constructor
    keywords and change what the layer and every model holding it compute (they used to change
    the config only: the compiled handle kept the old activation)."""
    x = rng.uniform(-1, 1, (2, 3, 4))
    layer = crnn.SimpleRNN(3, dtype="float64", seed=1)
    layer(x)
    model = crnn.Sequential([layer])
    model.predict(x, verbose=0)
    layer.activation = "relu"
    want = reference.simple_rnn(x, *layer.get_weights(), activation="relu")
    assert layer.get_config()["activation"] == "relu"
    np.testing.assert_allclose(layer(x), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=0, atol=1e-12)
    layer.return_sequences = True
    assert layer(x).shape == model.predict(x, verbose=0).shape == (2, 3, 3)
    with pytest.raises(ValueError, match=r"activation: got 'gelu'"):
        layer.activation = "gelu"
    with pytest.raises(ValueError, match=r"use_bias: cannot be changed .* after its weights"):
        layer.use_bias = False
    with pytest.raises(ValueError, match=r"units: cannot be changed .* after its weights"):
        layer.units = 5
    assert layer.activation == "relu" and layer.use_bias and layer.units == 3
    fresh = crnn.LSTM(3)  # before the weights exist the width may still change
    fresh.units = 4
    assert fresh(x.astype(np.float32)).shape == (2, 4)
