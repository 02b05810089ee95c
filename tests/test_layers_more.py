"""Dense, Embedding, Masking, Activation, Bidirectional and SimpleRNN masks against the oracles.

Oracles and the tolerance derivation are in ``_model_oracle.py`` (``crnn.reference`` composed with
NumPy, float64, Keras semantics spelled out one sequence at a time).
"""
import itertools
import math
import pickle
import warnings

import numpy as np
import pytest

import crnn
from crnn import layers as L

from _helpers import assert_close, assert_unchanged, derived_tol, make_layer_weights, value_scale
from _model_oracle import (dense_weights, np_activation, random_masks, ref_bidirectional, ref_dense,
                           ref_masking, ref_rnn)

DT_IDS = {"float32": "f32", "float64": "f64"}
DENSE_ACTS = (None, "linear", "relu", "tanh", "sigmoid", "softmax")


def _rnn_weights(rng, d, h, dtype, act, bias=True):
    k, r, b = make_layer_weights(rng, d, h, dtype, bias=bias)
    if act in ("tanh", "sigmoid"):  # exercise saturation (exact power-of-two gain)
        k = k * k.dtype.type(4)
        b = None if b is None else b * b.dtype.type(4)
    return [k, r] + ([b] if b is not None else [])


# ---------------------------------------------------------------------------------------------
# Dense
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"], ids=DT_IDS.get)
def test_dense_matches_numpy(dtype, rng):
    D, U = 7, 5
    for act, use_bias, shape in itertools.product(DENSE_ACTS, (True, False),
                                                  [(4, D), (3, 6, D), (2, 3, 2, D), (0, D)]):
        layer = crnn.Dense(U, activation=act, use_bias=use_bias, dtype=dtype)
        x = rng.uniform(-2, 2, shape)
        w = dense_weights(rng, D, U, dtype, use_bias)
        layer.set_weights(w)
        y = layer(x)
        exp = ref_dense(x.astype(dtype), w, act)
        # One dot product of length D per output, then an activation of slope <= 1.
        tol = derived_tol(dtype, D, 1, value_scale(exp))
        assert_close(y, exp, tol, f"Dense {act} bias={use_bias} {shape}", dtype)
        assert layer.compute_mask(x, "m") == "m"  # masks pass through
    # non-contiguous / reversed-stride input, ints, float64 input to a float32 layer
    layer = crnn.Dense(U, activation="tanh", input_dim=D, seed=0)
    x = rng.uniform(-1, 1, (5, 2 * D))[:, ::-2]
    assert_close(layer(x), ref_dense(x.astype(np.float32), layer.get_weights(), "tanh"),
                 derived_tol(np.float32, D, 1), "strided input", np.float32)
    xi = rng.integers(-3, 4, (3, D))
    assert_close(layer(xi), ref_dense(xi, layer.get_weights(), "tanh"),
                 derived_tol(np.float32, D, 1, 3), "int input", np.float32)


def test_dense_softmax_sigmoid_extremes():
    layer = crnn.Dense(3, activation="softmax", input_dim=1)
    layer.set_weights([np.array([[1.0, -1.0, 0.0]]), np.zeros(3)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings
        y = layer(np.array([[1000.0], [-1000.0], [0.0]]))
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(y[0], [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(y[2], [1 / 3] * 3, atol=1e-6)
    sig = crnn.Activation("sigmoid")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = sig(np.array([[-1e4, -30.0, 0.0, 30.0, 1e4]], np.float32))
    np.testing.assert_allclose(s, [[0, 1 / (1 + math.exp(30)), 0.5, 1 / (1 + math.exp(-30)), 1]],
                               rtol=1e-6, atol=0)
    assert np.isnan(crnn.Activation("tanh")(np.array([np.nan]))[0])


def test_dense_build_init_and_params(rng):
    d = crnn.Dense(4, input_shape=(10,), seed=3)
    assert d.built and d.count_params() == 10 * 4 + 4
    k, b = d.get_weights()
    limit = math.sqrt(6 / (10 + 4))  # glorot uniform
    assert np.all(np.abs(k) <= limit) and np.abs(k).max() > 0.5 * limit and np.all(b == 0)
    same = crnn.Dense(4, input_dim=10, seed=3)
    assert same.get_weights()[0].tobytes() == k.tobytes()
    lazy = crnn.Dense(4, use_bias=False)
    assert not lazy.built
    with pytest.raises(ValueError):
        lazy.count_params()
    assert lazy(np.ones((2, 3, 6))).shape == (2, 3, 4)
    assert lazy.count_params() == 24 and len(lazy.get_weights()) == 1
    assert lazy.compute_output_shape((None, 7, 6)) == (None, 7, 4)
    with pytest.raises(ValueError, match=r"\bx\b"):
        lazy(np.ones((2, 3, 5)))  # built for 6
    with pytest.raises(ValueError, match=r"\bx\b"):
        lazy(np.ones(6))
    with pytest.raises(ValueError, match=r"kernel"):
        d.set_weights([np.ones((9, 4)), np.ones(4)])
    with pytest.raises(ValueError, match=r"bias"):
        d.set_weights([np.ones((10, 4)), np.ones(5)])
    with pytest.raises(ValueError, match=r"set_weights"):
        d.set_weights([np.ones((10, 4))])
    with pytest.raises(ValueError, match=r"activation"):
        crnn.Dense(3, activation="gelu")
    with pytest.raises((TypeError, ValueError), match=r"units"):
        crnn.Dense(0)
    with pytest.raises(TypeError):
        crnn.Dense(3, kernel_regularizer="l2")
    with pytest.raises(ValueError, match=r"input_dim|input_shape"):
        crnn.Dense(3, input_shape=(4,), input_dim=5)


# ---------------------------------------------------------------------------------------------
# Embedding
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"], ids=DT_IDS.get)
def test_embedding_lookup_and_mask(dtype, rng):
    emb = crnn.Embedding(11, 4, mask_zero=True, dtype=dtype, seed=1)
    ids = rng.integers(0, 11, (3, 7))
    ids[0, 5:] = 0
    out = emb(ids)
    table = emb.get_weights()[0]
    assert out.dtype == np.dtype(dtype) and out.shape == (3, 7, 4)
    assert out.tobytes() == table[ids].tobytes()  # a lookup is exact
    np.testing.assert_array_equal(emb.compute_mask(ids), ids != 0)
    assert np.all(np.abs(table) <= 0.05) and np.abs(table).max() > 0.025  # uniform(-0.05, 0.05)
    assert emb.count_params() == 44
    for spelling in (ids.astype(np.uint8), ids.astype(np.float64), ids.tolist()):
        assert emb(spelling).tobytes() == out.tobytes()
    assert emb(np.array([3])).shape == (1, 4)
    assert emb(np.zeros((0, 5), int)).shape == (0, 5, 4)
    nomask = crnn.Embedding(11, 4)
    assert nomask.compute_mask(ids) is None


def test_embedding_bad_indices_never_garbage():
    emb = crnn.Embedding(10, 3, input_length=4)
    good = np.array([[1, 2, 3, 4]])
    before = emb(good)
    for bad, pos in ((np.array([[1, 2, 10, 3]]), (0, 2)), (np.array([[1, -1, 2, 3]]), (0, 1)),
                     (np.array([[2**40, 1, 1, 1]]), (0, 0)), (np.array([[1, 1, np.nan, 1]]), (0, 2)),
                     (np.array([[1, 1, 1, np.inf]]), (0, 3))):
        with pytest.raises(ValueError, match=rf"\bx\b.*position \({pos[0]}, {pos[1]}\).*\[0, 10\)"):
            emb(bad)
        with pytest.raises(IndexError):
            emb(bad)
    with pytest.raises(ValueError, match=r"\bx\b.*non-integer"):
        emb(np.array([[1.5, 2, 3, 4]]))
    for bad in (np.array([[True, False]]), np.array([["a"]]), np.array([[1j]])):
        with pytest.raises(TypeError, match=r"\bx\b"):
            emb(bad)
    with pytest.raises(ValueError, match=r"\bx\b"):
        emb(np.int64(3))
    assert emb(good).tobytes() == before.tobytes()
    with pytest.raises(ValueError, match=r"embeddings"):
        emb.set_weights([np.ones((9, 3))])
    with pytest.raises(ValueError, match=r"embeddings_initializer"):
        crnn.Embedding(10, 3, embeddings_initializer="he_normal")
    with pytest.raises((TypeError, ValueError), match=r"input_dim"):
        crnn.Embedding(0, 3)


def test_embedding_shapes_and_config():
    e = crnn.Embedding(100, 8, input_length=12)
    assert e.built and e.batch_input_shape == (None, 12)
    assert e.compute_output_shape((None, 12)) == (None, 12, 8)
    lazy = crnn.Embedding(100, 8)
    assert not lazy.built and lazy.batch_input_shape == (None, None)
    for layer in (e, lazy, crnn.Embedding(5, 2, batch_input_shape=(4, 3), mask_zero=True)):
        cfg = layer.get_config()
        again = crnn.Embedding.from_config(cfg)
        assert again.get_config() == cfg
        assert again.batch_input_shape == layer.batch_input_shape


# ---------------------------------------------------------------------------------------------
# Masking, Activation
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"], ids=DT_IDS.get)
def test_masking_and_activation(dtype, rng):
    x = rng.uniform(-1, 1, (3, 5, 4)).astype(dtype)
    x[0, 3:] = 0.0
    x[1, 1] = -1.0
    x[2, :, 0] = 0.0  # partly zero: not masked
    layer = crnn.Masking(dtype=dtype)
    y = layer(x)
    exp, m = ref_masking(x)
    assert y.dtype == np.dtype(dtype) and y.tobytes() == exp.astype(dtype).tobytes()
    np.testing.assert_array_equal(layer.compute_mask(x), m)
    assert m[0].tolist() == [True, True, True, False, False] and m[2].all()
    neg = crnn.Masking(mask_value=-1.0, dtype=dtype)
    assert neg.compute_mask(x)[1].tolist() == [True, False, True, True, True]
    assert np.all(neg(x)[1, 1] == 0)
    assert layer.count_params() == 0 and layer.get_weights() == []
    for act in DENSE_ACTS:
        a = crnn.Activation(act, dtype=dtype)
        got = a(x)
        assert got.dtype == np.dtype(dtype)
        assert_close(got, np_activation(act, x), derived_tol(dtype, 1, 1), f"Activation {act}")
        assert a.compute_mask(x, m) is m
    xc = x.copy()
    crnn.Activation("relu", dtype=dtype)(x)
    assert_unchanged(xc, x, "Activation input")
    with pytest.raises(ValueError, match=r"activation"):
        crnn.Activation("swish")
    with pytest.raises(TypeError, match=r"mask_value"):
        crnn.Masking(mask_value="0")


# ---------------------------------------------------------------------------------------------
# SimpleRNN with masks (Keras semantics)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"], ids=DT_IDS.get)
@pytest.mark.parametrize("kind", ["prefix", "arbitrary"])
def test_simple_rnn_masks(dtype, kind, rng):
    B, T, D, H = 6, 7, 3, 5
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    m = random_masks(B, T, rng)[kind]
    h0 = rng.uniform(-1, 1, (B, H)).astype(dtype)
    for act, gb, rs, zero, init in itertools.product(("tanh", "relu"), (False, True), (False, True),
                                                     (False, True), (None, h0)):
        layer = crnn.SimpleRNN(H, activation=act, go_backwards=gb, return_sequences=rs,
                               return_state=True, zero_output_for_mask=zero, dtype=dtype)
        w = _rnn_weights(rng, D, H, dtype, act)
        layer.set_weights(w)
        out, h = layer(x, mask=m, initial_state=init)
        exp, exp_h = ref_rnn(x, w, m, activation=act, go_backwards=gb, return_sequences=rs,
                             zero_output=zero, initial_state=init)
        tol = derived_tol(dtype, D + H, T, value_scale(exp, exp_h))
        msg = f"{kind} {act} go_backwards={gb} rs={rs} zero={zero} h0={init is not None}"
        assert_close(out, exp, tol, msg + " output", dtype)
        assert_close(h, exp_h, tol, msg + " state", dtype)
        assert layer.compute_mask(x, m)[0] is (m if rs else None)
    # all-True mask == no mask; int mask; mask given as a list
    layer = crnn.SimpleRNN(H, return_sequences=True, dtype=dtype, seed=0)
    nomask = layer(x)
    assert layer(x, mask=np.ones((B, T), bool)).tobytes() == nomask.tobytes()
    assert layer(x, mask=m.astype(np.int8)).tobytes() == layer(x, mask=m.tolist()).tobytes()
    for bad in (m[:, :-1], m[:-1], m[..., None], m.astype(np.float32)):
        with pytest.raises(ValueError, match=r"\bmask\b"):
            layer(x, mask=bad)


# ---------------------------------------------------------------------------------------------
# Bidirectional
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"], ids=DT_IDS.get)
def test_bidirectional_merge_modes_against_reference(dtype, rng):
    B, T, D, H = 5, 6, 4, 3
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    masks = dict(random_masks(B, T, rng), none=None)
    h0 = [rng.uniform(-1, 1, (B, H)).astype(dtype) for _ in range(2)]
    for mode, rs, rst, mk, init in itertools.product(("concat", "sum", "mul", "ave", None),
                                                     (False, True), (False, True), masks,
                                                     (None, h0)):
        if init is not None and (mk == "arbitrary" or not rst):
            continue  # keep the grid small: initial states once per mask kind
        layer = crnn.Bidirectional(crnn.SimpleRNN(H, return_sequences=rs, return_state=rst,
                                                  dtype=dtype), merge_mode=mode)
        wf, wb = _rnn_weights(rng, D, H, dtype, "tanh"), _rnn_weights(rng, D, H, dtype, "tanh")
        layer.set_weights(wf + wb)
        got = layer(x, mask=masks[mk], initial_state=init)
        exp, states = ref_bidirectional(x, wf, wb, masks[mk], merge_mode=mode, return_sequences=rs,
                                        initial_state=init)
        exp_list = (exp if isinstance(exp, list) else [exp]) + (states if rst else [])
        got_list = got if isinstance(got, list) else [got]
        assert len(got_list) == len(exp_list), f"{mode} rs={rs} rst={rst}: output count"
        tol = derived_tol(dtype, D + H, T, value_scale(exp_list))
        for i, (g, e) in enumerate(zip(got_list, exp_list)):
            assert_close(g, e, tol, f"{mode} rs={rs} rst={rst} mask={mk} h0={init is not None} [{i}]",
                         dtype)
        assert layer._fusable()  # ran as one direction="bidirectional" C call
        assert layer._handle[1].directions == ["bidirectional"]
    assert layer.count_params() == 2 * (D * H + H * H + H)


def test_bidirectional_weights_config_and_validation(rng):
    D, H = 3, 4
    inner = crnn.SimpleRNN(H, return_sequences=True, input_shape=(None, D), seed=7, name="rnn")
    bi = crnn.Bidirectional(inner)
    assert bi.name.startswith("bidirectional")
    assert bi.forward_layer.name == "forward_rnn" and bi.backward_layer.name == "backward_rnn"
    assert bi.backward_layer.go_backwards and not bi.forward_layer.go_backwards
    w = bi.get_weights()
    assert [a.shape for a in w] == [(D, H), (H, H), (H,)] * 2  # forward weights, then backward
    for a, b in zip(w[:3], inner.get_weights()):
        assert a.tobytes() == b.tobytes()  # the wrapped layer's weights are the forward ones
    assert not np.array_equal(w[0], w[3])
    assert bi.compute_output_shape((None, 5, D)) == (None, 5, 2 * H)
    assert crnn.Bidirectional(crnn.SimpleRNN(H), merge_mode="sum").compute_output_shape(
        (2, 5, D)) == (2, H)
    assert crnn.Bidirectional(crnn.SimpleRNN(H, return_state=True), merge_mode=None) \
        .compute_output_shape((2, 5, D)) == [(2, H), (2, H), (2, H), (2, H)]
    cfg = bi.get_config()
    again = crnn.Bidirectional.from_config(cfg)
    assert again.get_config() == cfg and again.count_params() == bi.count_params()
    x = rng.uniform(-1, 1, (2, 5, D)).astype(np.float32)
    assert bi.compute_mask(x, "m") == "m"
    assert crnn.Bidirectional(crnn.SimpleRNN(H)).compute_mask(x, "m") is None
    with pytest.raises(ValueError, match=r"merge_mode"):
        crnn.Bidirectional(crnn.SimpleRNN(H), merge_mode="max")
    with pytest.raises(ValueError, match=r"\blayer\b"):
        crnn.Bidirectional(crnn.Dense(3))
    with pytest.raises(ValueError, match=r"go_backwards"):
        crnn.Bidirectional(crnn.SimpleRNN(H), backward_layer=crnn.SimpleRNN(H))
    with pytest.raises(ValueError, match=r"return_sequences"):
        crnn.Bidirectional(crnn.SimpleRNN(H), backward_layer=crnn.SimpleRNN(
            H, go_backwards=True, return_sequences=True))
    # halves of two widths: the merged width, output shape and sum / mul / ave need one
    with pytest.raises(ValueError, match=rf"backward_layer: got units={H + 1}, expected {H}"):
        crnn.Bidirectional(crnn.LSTM(H), backward_layer=crnn.LSTM(H + 1, go_backwards=True))
    with pytest.raises(ValueError, match=r"initial_state"):
        bi(x, initial_state=[np.zeros((2, H))])
    with pytest.raises(ValueError, match=r"set_weights"):
        bi.set_weights(w[:5])


def test_bidirectional_custom_backward_and_go_backwards_inner(rng):
    """Cases that cannot share one C call run as two layers, still with Keras results."""
    B, T, D, H = 4, 5, 3, 4
    x = rng.uniform(-1, 1, (B, T, D)).astype(np.float64)
    m = random_masks(B, T, rng)["arbitrary"]
    back = crnn.SimpleRNN(H, activation="relu", go_backwards=True, return_sequences=True,
                          dtype="float64")
    bi = crnn.Bidirectional(crnn.SimpleRNN(H, return_sequences=True, dtype="float64"),
                            backward_layer=back, merge_mode="ave")
    wf, wb = _rnn_weights(rng, D, H, np.float64, "tanh"), _rnn_weights(rng, D, H, np.float64, "relu")
    bi.set_weights(wf + wb)
    assert not bi._fusable()
    assert "backward_layer" in bi.get_config()
    for mask in (None, m):
        exp, _ = ref_bidirectional(x, wf, wb, mask, merge_mode="ave", return_sequences=True,
                                   bwd_activation="relu")
        assert_close(bi(x, mask=mask), exp, derived_tol(np.float64, D + H, T), "custom backward")
    # The wrapped layer goes backwards: its copy reads reversed time, the other forwards (Keras 2).
    flipped = crnn.Bidirectional(crnn.SimpleRNN(H, go_backwards=True, return_sequences=True,
                                                dtype="float64"))
    assert flipped.forward_layer.go_backwards and not flipped.backward_layer.go_backwards
    wf, wb = _rnn_weights(rng, D, H, np.float64, "tanh"), _rnn_weights(rng, D, H, np.float64, "tanh")
    flipped.set_weights(wf + wb)
    exp, _ = ref_bidirectional(x, wf, wb, m, return_sequences=True, fwd_backwards=True)
    assert_close(flipped(x, mask=m), exp, derived_tol(np.float64, D + H, T), "go_backwards inner")


def test_bidirectional_fused_equals_pair(rng):
    """The one-call path and the two-layer path agree (and both match the oracle above)."""
    B, T, D, H = 3, 6, 4, 5
    x = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
    for rs, mk in itertools.product((False, True), ("prefix", "arbitrary")):
        m = random_masks(B, T, rng)[mk]
        bi = crnn.Bidirectional(crnn.SimpleRNN(H, return_sequences=rs, return_state=True),
                                input_shape=(T, D))
        fused = bi(x, mask=m)
        pair = bi._call_pair(None, x, None, None, m)
        for f, p in zip(fused, pair):
            assert_close(f, p, derived_tol(np.float32, D + H, T), f"rs={rs} {mk}")


def test_layers_pickle_and_config_round_trip(rng):
    x = rng.uniform(-1, 1, (2, 4, 3)).astype(np.float32)
    layers = [crnn.SimpleRNN(5, input_shape=(None, 3), return_sequences=True, seed=1),
              crnn.Bidirectional(crnn.SimpleRNN(2, return_sequences=True), input_shape=(4, 3)),
              crnn.Dense(2, activation="softmax", input_dim=3), crnn.Masking(0.5),
              crnn.Activation("tanh")]
    for layer in layers:
        before = layer(x)
        again = pickle.loads(pickle.dumps(layer))
        assert again.name == layer.name and again.get_config() == layer.get_config()
        assert again(x).tobytes() == before.tobytes(), type(layer).__name__
        for a in again._weight_arrays():
            assert not a.flags.writeable
        clone = L.deserialize(L.serialize(layer))
        assert clone.get_config() == layer.get_config()
        assert [w.shape for w in clone.get_weights()] == [w.shape for w in layer.get_weights()]
    emb = crnn.Embedding(7, 3, mask_zero=True)
    ids = np.array([[1, 2, 0]])
    unbuilt = pickle.loads(pickle.dumps(emb))
    assert not unbuilt.built and unbuilt(ids).shape == (1, 3, 3)
    again = pickle.loads(pickle.dumps(emb))
    first = emb(ids)  # builds the original
    assert not again.built
    again = pickle.loads(pickle.dumps(emb))
    assert again(ids).tobytes() == first.tobytes()
    with pytest.raises(ValueError, match=r"class_name.*'ConvLSTM1D'"):
        L.deserialize({"class_name": "ConvLSTM1D", "config": {}})


def test_assignments_alone_after_a_call_reach_the_model(rng, tmp_path):
    """An assignment that alone changes what a model computes (merge_mode, zero_output_for_mask)
    rebuilds the model's call plan like the others do; one that would give a layer two outputs
    (return_state, merge_mode=None), which Sequential.add refuses, makes the model's next call,
    predict, shape query and save refuse it too, until it is undone."""
    x = rng.uniform(-1, 1, (5, 4, 3)).astype(np.float32)
    bi = crnn.Bidirectional(crnn.LSTM(2))
    model = crnn.Sequential([crnn.Input((None, 3)), bi])
    assert model(x).shape == (5, 4)
    bi.merge_mode = "sum"
    assert model(x).shape == model.predict(x, verbose=0).shape == bi(x).shape == (5, 2)
    np.testing.assert_array_equal(model(x), bi(x))
    assert model.output_shape == (None, 2)
    model.save(tmp_path / "sum.crnn")
    np.testing.assert_array_equal(crnn.load_model(tmp_path / "sum.crnn")(x), model(x))

    xm = x.copy()
    xm[:, 2:] = 0.0  # masked steps
    rnn = crnn.SimpleRNN(2, return_sequences=True)
    masked = crnn.Sequential([crnn.Masking(0.0, input_shape=(None, 3)), rnn])
    kept = masked(xm)
    np.testing.assert_array_equal(kept[:, 2], kept[:, 1])  # the last output repeated
    rnn.zero_output_for_mask = True
    assert not masked(xm)[:, 2:].any()
    np.testing.assert_array_equal(masked(xm)[:, :2], kept[:, :2])
    with pytest.raises(TypeError, match=r"zero_output_for_mask: got .yes."):
        rnn.zero_output_for_mask = "yes"

    lstm = crnn.LSTM(2)
    model = crnn.Sequential([crnn.Input((None, 3)), lstm])
    model(x)
    path = tmp_path / "two.crnn"
    for layer, name, bad, good in ((lstm, "return_state", True, False),
                                   (bi, "merge_mode", None, "concat")):
        if layer is bi:
            model = crnn.Sequential([crnn.Input((None, 3)), bi])
            model(x)
        setattr(layer, name, bad)
        for attempt in (lambda: model(x), lambda: model(x, training=True),
                        lambda: model.predict(x, batch_size=2, verbose=0),
                        lambda: model.output_shape, lambda: model.save(path)):
            with pytest.raises(ValueError, match=r"expected a layer with a single output"):
                attempt()
        assert not path.exists()
        setattr(layer, name, good)
        assert model(x).shape == (5, 2 if layer is lstm else 4)

    # a Bidirectional whose backward half alone returns its states (its return_state reads the
    # forward half's), and one whose new merge no longer fits the next layer: refused by the
    # next call and by save, with the layer that no longer fits named (not x)
    bwd = crnn.Bidirectional(crnn.LSTM(4, return_sequences=True),
                             backward_layer=crnn.GRU(4, return_sequences=True, go_backwards=True))
    model = crnn.Sequential([crnn.Input((None, 3)), bwd, crnn.GRU(2)])
    model(x)
    bwd.backward_layer.return_state = True
    for attempt in (lambda: model(x), lambda: model.save(path)):
        with pytest.raises(ValueError, match=r"'bidirectional.*' with return_state=True"):
            attempt()
    bwd.backward_layer.return_state = False
    model(x)
    bwd.merge_mode = "sum"
    for attempt in (lambda: model(x), lambda: model.predict(x, verbose=0),
                    lambda: model.save(path)):
        with pytest.raises(ValueError, match=r"layer: 'gru.*' has input_dim 8, but its input from "
                                             r"layer 'bidirectional.*' has shape \(None, None, 4\)"):
            attempt()
    assert not path.exists()
    bwd.merge_mode = "concat"
    assert model(x).shape == (5, 2)


def test_dense_and_embedding_keep_what_shapes_their_weights(rng, tmp_path):
    """Dense's units, use_bias and dtype, Embedding's input_dim, output_dim, input_length and
    dtype (and an InputLayer's shape) are fixed once built, as a recurrent layer's are: another
    value raises (it used to change the config, and so a saved file, but not the weights: use_bias =
    False kept adding the bias, and a saved model no longer loaded); the same value, or any value
    before the weights exist, is taken."""
    x = rng.uniform(-1, 1, (2, 4)).astype(np.float32)
    dense = crnn.Dense(3, input_dim=4)
    emb = crnn.Embedding(10, 3, input_length=5)
    emb.build((None, 5))
    for layer, name, value in ((dense, "units", 7), (dense, "use_bias", False),
                               (dense, "dtype", "float64"), (emb, "input_dim", 11),
                               (emb, "output_dim", 4), (emb, "input_length", 6),
                               (emb, "dtype", "float64")):
        before = getattr(layer, name)
        with pytest.raises(ValueError, match=rf"{name}: cannot be changed on layer "
                                             rf"'{layer.name}' once it is built"):
            setattr(layer, name, value)
        assert getattr(layer, name) == before
        setattr(layer, name, before)
    dense.dtype = np.float32  # the same dtype, spelled otherwise: kept as checked
    assert dense.dtype == "float32"
    with pytest.raises(ValueError, match=r"units: cannot be changed"):
        dense.units = np.array([3, 3])
    inp = crnn.Input((None, 4))
    with pytest.raises(ValueError, match=r"batch_input_shape: cannot be changed .* InputLayer"):
        inp.batch_input_shape = (None, None, 5)
    inp.batch_input_shape = [None, None, 4]  # the same shape as a list
    assert inp.batch_input_shape == (None, None, 4)
    model = crnn.Sequential([dense])
    model.save(tmp_path / "d.crnn")
    np.testing.assert_array_equal(crnn.load_model(tmp_path / "d.crnn")(x), model(x))
    fresh = crnn.Dense(3)
    fresh.units = 5  # no weights yet
    assert fresh(x).shape == (2, 5)


@pytest.mark.parametrize("explicit", [False, True])
def test_bidirectional_saves_its_halves_as_they_are(rng, tmp_path, explicit):
    """A half's own attributes assigned directly (``bi.backward_layer.activation``) reach the
    config and so a saved file: the reloaded model computes what this one does (the config kept
    the values the halves were made from, and the file computed the old thing). A Bidirectional
    whose halves are still what they were made from saves no backward_layer entry, as before."""
    x = rng.uniform(-1, 1, (2, 4, 3)).astype(np.float32)
    back = crnn.GRU(2, return_sequences=True, go_backwards=True) if explicit else None
    bi = crnn.Bidirectional(crnn.LSTM(2, return_sequences=True, seed=3), backward_layer=back)
    model = crnn.Sequential([crnn.Input((None, 3)), bi, crnn.SimpleRNN(2)])
    model(x)
    assert ("backward_layer" in bi.get_config()) == explicit
    bi.backward_layer.activation = "relu"
    bi.forward_layer.recurrent_activation = "hard_sigmoid"
    cfg = bi.get_config()
    assert cfg["layer"]["config"]["recurrent_activation"] == "hard_sigmoid"
    assert cfg["backward_layer"]["config"]["activation"] == "relu"
    assert cfg["backward_layer"]["config"]["go_backwards"]
    model.save(tmp_path / "bi.crnn")
    np.testing.assert_array_equal(crnn.load_model(tmp_path / "bi.crnn")(x), model(x))


def test_bidirectional_attribute_assignment_reaches_both_halves(rng):
    """The flags a Bidirectional shares with its halves are the halves' own: assigning one sets
    both (through their checks), and the output, the config and a reloaded copy follow;
    merge_mode is checked like the constructor argument."""
    x = rng.uniform(-1, 1, (2, 3, 4)).astype(np.float32)
    bi = crnn.Bidirectional(crnn.GRU(3), backward_layer=crnn.GRU(3, go_backwards=True))
    model = crnn.Sequential([bi])
    assert model.predict(x, verbose=0).shape == (2, 6)
    bi.return_sequences = True
    bi.merge_mode = "sum"
    assert bi.forward_layer.return_sequences and bi.backward_layer.return_sequences
    assert bi(x).shape == model.predict(x, verbose=0).shape == (2, 3, 3)
    cfg = bi.get_config()
    assert cfg["merge_mode"] == "sum"
    assert cfg["layer"]["config"]["return_sequences"]
    assert cfg["backward_layer"]["config"]["return_sequences"]
    again = crnn.Bidirectional.from_config(cfg)
    again.set_weights(bi.get_weights())
    np.testing.assert_array_equal(again(x), bi(x))
    with pytest.raises(ValueError, match=r"merge_mode: got 'max'"):
        bi.merge_mode = "max"
    with pytest.raises(ValueError, match=r"dtype: cannot be changed .* after its weights"):
        bi.dtype = "float64"
    assert bi.merge_mode == "sum" and bi.dtype == "float32"
