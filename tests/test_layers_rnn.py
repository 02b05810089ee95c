"""crnn's LSTM and GRU layers (crnn/layers/rnn/) against real Keras 3 layers, and their Keras
behaviour: every constructor option, masks, initial and final states, stateful streaming,
Bidirectional, counts and summaries, config / pickling / save and load.

Keras runs on its torch backend (no TensorFlow), in float32, with the crnn layer's weights copied
into it.  Tolerance 2e-5 absolute (the issue's bound for real Keras layers): both compute in
float32 with different summation orders; the weights keep every value O(1) (each gate's
recurrent block of spectral norm 0.5), where one step's error is a few eps * log2(K).  An LSTM's
c, not bounded by 1, is compared relative to its magnitude.  float64 layers are compared with
crnn.reference (``_model_oracle.ref_rnn``) within the derived tolerance (tests/_helpers.py).
"""
from __future__ import annotations

import io
import itertools
import os
import pickle

import numpy as np
import pytest

import crnn

from _helpers import assert_close, make_cell_weights, state_tol, value_scale
from _model_oracle import ref_bidirectional, ref_rnn

TOL_KERAS = 2e-5
# Keras's own NumPy 2 deprecation noise (its torch tensors' __array__ lacks copy=).
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy")

CELLS = [("lstm", True), ("gru", True), ("gru", False)]
IDS = ["lstm", "gru", "gru_reset_before"]


@pytest.fixture(scope="module")
def keras():
    pytest.importorskip("torch", reason="Keras tests use the torch backend: pip install '.[torch]'")
    os.environ["KERAS_BACKEND"] = "torch"
    k = pytest.importorskip("keras", reason="Keras not installed: pip install '.[keras]'")
    if k.backend.backend() != "torch":
        pytest.skip(f"keras was already imported with the {k.backend.backend()!r} backend")
    return k


def _np(t):
    import keras
    return keras.ops.convert_to_numpy(t)


def _layer_weights(rng, cell, reset_after, d, h, dtype, use_bias=True):
    """Keras-layout weights: a reset-after GRU's bias is (2, 3H)."""
    k, r, b, rb = make_cell_weights(rng, cell, d, h, dtype, use_bias, use_bias and reset_after)
    if not use_bias:
        return [k, r]
    return [k, r, np.stack([b, rb]) if cell == "gru" and reset_after else b]


def _pair(keras, cell, reset_after, d, rng, batch=None, **kw):
    """A crnn layer and the Keras layer of the same options and weights (``batch``: the fixed
    batch size a stateful Keras layer is built with)."""
    cls = {"lstm": (crnn.LSTM, keras.layers.LSTM), "gru": (crnn.GRU, keras.layers.GRU)}[cell]
    if cell == "gru":
        kw["reset_after"] = reset_after
    ours = cls[0](**kw)
    ours.build((None, None, d))
    ours.set_weights(_layer_weights(rng, cell, reset_after, d, kw["units"], "float32",
                                    kw.get("use_bias", True)))
    theirs = cls[1](**{k: v for k, v in kw.items() if k != "dtype"})
    theirs.build((batch, None, d))
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def _compare(got, want, what):
    got = list(got) if isinstance(got, (list, tuple)) else [got]
    want = list(want) if isinstance(want, (list, tuple)) else [want]
    assert len(got) == len(want), f"{what}: {len(got)} outputs, Keras {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        w = _np(w)
        assert g.shape == w.shape, f"{what} output {i}: shape {g.shape} != Keras {w.shape}"
        err = float(np.max(np.abs(g.astype(np.float64) - w))) if g.size else 0.0
        assert err <= TOL_KERAS * max(1.0, float(np.max(np.abs(w))) if w.size else 1.0), \
            f"{what} output {i}: max abs diff {err:.3g}"


@pytest.mark.parametrize("cell,reset_after", CELLS, ids=IDS)
def test_every_option_matches_keras(keras, cell, reset_after):
    """activation x recurrent_activation x use_bias x go_backwards x return_sequences x
    return_state, with and without an initial state and a mask (zero_output_for_mask too)."""
    rng = np.random.default_rng(7)
    B, T, D, H = 3, 5, 4, 6
    x = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 1, 0], [0, 0, 0, 0, 0]], bool)
    acts = ["tanh", "relu", "sigmoid", "hard_sigmoid", "linear"]
    racts = ["sigmoid", "hard_sigmoid", "tanh", "linear", "relu"]
    combos = itertools.product([True, False], [False, True], [False, True], [False, True])
    for n, (use_bias, go_backwards, rs, with_state) in enumerate(combos):
        act, ract = acts[n % 5], racts[(n // 5 + n) % 5]
        ours, theirs = _pair(keras, cell, reset_after, D, rng, units=H, activation=act,
                             recurrent_activation=ract, use_bias=use_bias,
                             go_backwards=go_backwards, return_sequences=rs, return_state=True)
        init = None
        if with_state:
            init = [rng.uniform(-1, 1, (B, H)).astype(np.float32)
                    for _ in range(2 if cell == "lstm" else 1)]
        what = f"{cell} reset_after={reset_after} {act}/{ract} bias={use_bias} " \
               f"gb={go_backwards} rs={rs} h0={with_state}"
        _compare(ours(x, initial_state=init), theirs(x, initial_state=init), what)
        _compare(ours(x, initial_state=init, mask=mask), theirs(x, initial_state=init, mask=mask),
                 what + " masked")
    for zero in (False, True):
        ours, theirs = _pair(keras, cell, reset_after, D, rng, units=H, return_sequences=True,
                             zero_output_for_mask=zero)
        _compare(ours(x, mask=mask), theirs(x, mask=mask), f"{cell} zero_output_for_mask={zero}")


@pytest.mark.parametrize("cell,reset_after", CELLS, ids=IDS)
def test_bidirectional_matches_keras(keras, cell, reset_after):
    rng = np.random.default_rng(8)
    B, T, D, H = 4, 6, 3, 5
    x = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
    mask = np.arange(T)[None] < np.array([6, 3, 1, 0])[:, None]
    for merge_mode, rs in itertools.product(["concat", "sum", "mul", "ave", None], [False, True]):
        inner, kinner = _pair(keras, cell, reset_after, D, rng, units=H, return_sequences=rs,
                              return_state=True)
        ours = crnn.Bidirectional(inner, merge_mode=merge_mode)
        ours.build((None, None, D))
        theirs = keras.layers.Bidirectional(kinner, merge_mode=merge_mode)
        theirs.build((None, T, D))
        w = [rng.uniform(-0.3, 0.3, a.shape).astype(np.float32) for a in ours.get_weights()]
        ours.set_weights(w)
        theirs.set_weights(w)
        what = f"Bidirectional({cell}, reset_after={reset_after}) {merge_mode} rs={rs}"
        assert ours._fusable(), what
        _compare(ours(x), theirs(x), what)
        _compare(ours(x, mask=mask), theirs(x, mask=mask), what + " masked")
        n = 2 if cell == "lstm" else 1
        init = [rng.uniform(-1, 1, (B, H)).astype(np.float32) for _ in range(2 * n)]
        _compare(ours(x, initial_state=init), theirs(x, initial_state=init), what + " h0")


@pytest.mark.parametrize("cell,reset_after", CELLS, ids=IDS)
def test_stateful_matches_keras(keras, cell, reset_after):
    """Two calls of a stateful layer continue the states (Keras's stateful=True)."""
    rng = np.random.default_rng(9)
    B, T, D, H = 2, 4, 3, 5
    ours, theirs = _pair(keras, cell, reset_after, D, rng, batch=B, units=H,
                         return_sequences=True, stateful=True)
    for i in range(3):
        x = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
        _compare(ours(x), theirs(x), f"stateful {cell} call {i}")
    assert len(ours.states) == (2 if cell == "lstm" else 1)
    ours.reset_states()
    theirs.reset_state()
    x = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
    _compare(ours(x), theirs(x), f"stateful {cell} after reset")


@pytest.mark.parametrize("cell,reset_after", CELLS, ids=IDS)
def test_counts_summary_and_shapes_match_keras(keras, cell, reset_after):
    """count_params (LSTM 4(DH + HH + H); GRU 3(DH + HH + 2H) with reset_after, 3(DH + HH + H)
    without) and the summary rows of a Sequential are Keras's."""
    kw = {"reset_after": reset_after} if cell == "gru" else {}
    for D, H, use_bias in [(10, 3, True), (7, 1, False), (1, 16, True)]:
        ours = getattr(crnn, cell.upper())(H, use_bias=use_bias, input_shape=(None, D), **kw)
        theirs = getattr(keras.layers, cell.upper())(H, use_bias=use_bias, **kw)
        theirs.build((None, None, D))
        assert ours.count_params() == theirs.count_params(), (cell, D, H, use_bias)
        assert [w.shape for w in ours.get_weights()] == \
            [tuple(w.shape) for w in theirs.get_weights()]
    m = crnn.Sequential([getattr(crnn, cell.upper())(8, return_sequences=True,
                                                     input_shape=(None, 5), **kw),
                         crnn.Bidirectional(getattr(crnn, cell.upper())(4, **kw)),
                         crnn.Dense(2)])
    k = keras.Sequential([keras.Input((None, 5)),
                          getattr(keras.layers, cell.upper())(8, return_sequences=True, **kw),
                          keras.layers.Bidirectional(getattr(keras.layers, cell.upper())(4, **kw)),
                          keras.layers.Dense(2)])
    assert m.count_params() == k.count_params()
    assert [layer.count_params() for layer in m.layers] == \
        [layer.count_params() for layer in k.layers]
    assert m.output_shape == (None, 2)
    lines = []
    m.summary(print_fn=lines.append)
    rows = {line.split()[0]: line for line in lines if line[:1].isalpha()}
    assert "(None, None, 8)" in rows[m.layers[0].name] and f"({cell.upper()})" in \
        rows[m.layers[0].name]
    assert "(None, 8)" in rows[m.layers[1].name]  # (a long "name (class)" wraps after it)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell,reset_after", CELLS, ids=IDS)
def test_layers_match_reference_with_masks(cell, reset_after, dtype):
    """float32 and float64 against the NumPy oracle: masks (prefix and arbitrary), go_backwards,
    initial states, Bidirectional, within the derived tolerances."""
    rng = np.random.default_rng(10)
    B, T, D, H = 5, 7, 4, 6
    x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
    masks = {"prefix": np.arange(T)[None] < np.array([7, 0, 1, 4, 6])[:, None],
             "arbitrary": rng.random((B, T)) < 0.6}
    cls = {"lstm": crnn.LSTM, "gru": crnn.GRU}[cell]
    kw = {"reset_after": reset_after} if cell == "gru" else {}
    cellkw = dict(cell=cell, reset_after=reset_after)
    for (mname, m), gb, rs in itertools.product(masks.items(), [False, True], [False, True]):
        layer = cls(H, go_backwards=gb, return_sequences=rs, return_state=True, dtype=dtype, **kw)
        layer.build((None, None, D))
        w = _layer_weights(rng, cell, reset_after, D, H, dtype)
        layer.set_weights(w)
        n = 2 if cell == "lstm" else 1
        init = [rng.uniform(-1, 1, (B, H)).astype(dtype) for _ in range(n)]
        got = layer(x, mask=m, initial_state=init)
        exp, st = ref_rnn(x, w, m, go_backwards=gb, return_sequences=rs,
                          initial_state=init if n == 2 else init[0], **cellkw)
        exp_all = [exp] + (st if n == 2 else [st])
        tol = state_tol(dtype, D + H, T, value_scale(exp_all))
        what = f"{cell} {dtype} {mname} gb={gb} rs={rs}"
        for i, (g, e) in enumerate(zip(got, exp_all)):
            assert_close(g, e, tol, f"{what} [{i}]", dtype)
        bi = crnn.Bidirectional(cls(H, return_sequences=rs, dtype=dtype, **kw))
        bi.build((None, None, D))
        wb = _layer_weights(rng, cell, reset_after, D, H, dtype)
        bi.set_weights(w + wb)
        exp, _ = ref_bidirectional(x, w, wb, m, return_sequences=rs, **cellkw)
        assert_close(bi(x, mask=m), exp, state_tol(dtype, D + H, T, value_scale(exp)),
                     f"Bidirectional {what}", dtype)


@pytest.mark.parametrize("cell,reset_after", CELLS, ids=IDS)
def test_streaming_equals_whole_sequence(cell, reset_after):
    """A stateful layer (and a stateful model of mixed cells) fed one step at a time equals one
    whole call: the same arithmetic, but for the input projection's GEMM, run over all steps at
    once or per step, which the BLAS may round differently by an ulp (it picks its kernels by
    size); equal within 1e-6 float32 / 1e-12 float64 on O(1) values, relative to an LSTM's c."""
    rng = np.random.default_rng(11)
    B, T, D, H = 3, 9, 4, 7
    cls = {"lstm": crnn.LSTM, "gru": crnn.GRU}[cell]
    kw = {"reset_after": reset_after} if cell == "gru" else {}
    for dtype, tol in (("float32", 1e-6), ("float64", 1e-12)):
        x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
        w = _layer_weights(rng, cell, reset_after, D, H, dtype)
        whole = cls(H, return_sequences=True, return_state=True, dtype=dtype, **kw)
        whole.build((None, None, D))
        whole.set_weights(w)
        out_whole = whole(x)
        s = cls(H, return_sequences=True, stateful=True, batch_input_shape=(B, None, D),
                dtype=dtype, **kw)
        s.set_weights(w)
        steps = np.concatenate([s(x[:, t:t + 1]) for t in range(T)], axis=1)
        scale = value_scale(out_whole)
        assert_close(steps, out_whole[0], tol * scale, f"{cell} streamed output", dtype)
        for got, want in zip(s.states, out_whole[1:]):
            assert_close(got, want, tol * value_scale(want), f"{cell} streamed states", dtype)
        model = crnn.Sequential([
            cls(H, return_sequences=True, stateful=True, batch_input_shape=(B, None, D),
                dtype=dtype, **kw),
            crnn.SimpleRNN(5, return_sequences=True, stateful=True, dtype=dtype),
            crnn.LSTM(4, return_sequences=True, stateful=True, dtype=dtype)])
        full = model.predict(x, verbose=0)
        model.reset_states()
        streamed = np.concatenate([model(x[:, t:t + 1]) for t in range(T)], axis=1)
        assert_close(streamed, full, tol * value_scale(full), f"{cell} stateful model", dtype)


@pytest.mark.parametrize("cell,reset_after", CELLS, ids=IDS)
def test_config_pickle_and_save_round_trip(cell, reset_after, tmp_path):
    """get_config / from_config, pickling and .crnn save / load keep the layer (and a model of
    mixed cells) and its results bitwise."""
    rng = np.random.default_rng(12)
    cls = {"lstm": crnn.LSTM, "gru": crnn.GRU}[cell]
    kw = {"reset_after": reset_after} if cell == "gru" else {}
    layer = cls(5, activation="hard_sigmoid", recurrent_activation="tanh", go_backwards=True,
                return_sequences=True, input_shape=(None, 3), seed=4, **kw)
    cfg = layer.get_config()
    assert cfg["recurrent_activation"] == "tanh" and cfg["activation"] == "hard_sigmoid"
    if cell == "gru":
        assert cfg["reset_after"] is reset_after
    else:
        assert cfg["unit_forget_bias"] is True
    x = rng.uniform(-1, 1, (2, 6, 3)).astype(np.float32)
    again = cls.from_config(cfg)
    assert again(x).tobytes() == layer(x).tobytes()  # same seed, same weights
    assert pickle.loads(pickle.dumps(layer))(x).tobytes() == layer(x).tobytes()
    m = crnn.Sequential([crnn.Embedding(10, 3, mask_zero=True),
                         cls(6, return_sequences=True, **kw),
                         crnn.Bidirectional(crnn.LSTM(4, return_sequences=True)),
                         crnn.GRU(3, reset_after=False), crnn.Dense(2, activation="softmax")])
    ids = rng.integers(0, 10, (4, 7))
    ids[0, 5:] = 0
    want = m.predict(ids, verbose=0)
    path = tmp_path / "mixed.crnn"
    m.save(path)
    loaded = crnn.load_model(path)
    assert loaded.predict(ids, verbose=0).tobytes() == want.tobytes()
    assert [type(a).__name__ for a in loaded.layers] == [type(a).__name__ for a in m.layers]
    assert pickle.loads(pickle.dumps(m)).predict(ids, verbose=0).tobytes() == want.tobytes()
    buf = io.BytesIO()
    m.save(buf)
    assert crnn.load_model(io.BytesIO(buf.getvalue())).predict(ids, verbose=0).tobytes() == \
        want.tobytes()


def test_unit_forget_bias_and_initialisers():
    """Keras's defaults: forget-gate bias 1 (unit_forget_bias), orthogonal recurrent blocks
    (the (H, 4H) recurrent kernel has orthonormal rows), glorot-uniform kernel bounds."""
    lstm = crnn.LSTM(5, input_shape=(None, 3), seed=0)
    k, r, b = lstm.get_weights()
    assert np.array_equal(b, np.r_[np.zeros(5), np.ones(5), np.zeros(10)].astype(np.float32))
    assert np.allclose(r @ r.T, np.eye(5), atol=1e-6)
    assert np.abs(k).max() <= np.sqrt(6 / (3 + 20))
    assert not crnn.LSTM(5, unit_forget_bias=False, input_shape=(None, 3)).get_weights()[2].any()
    g = crnn.GRU(4, input_shape=(None, 2), seed=1)
    assert g.get_weights()[2].shape == (2, 12)
    assert crnn.GRU(4, reset_after=False, input_shape=(None, 2)).get_weights()[2].shape == (12,)


def test_bad_arguments_of_the_gated_layers():
    """Every new argument is checked, with the argument named."""
    with pytest.raises(ValueError, match=r"recurrent_activation: got 'softmax'"):
        crnn.LSTM(3, recurrent_activation="softmax")
    with pytest.raises(TypeError, match=r"reset_after: got 1"):
        crnn.GRU(3, reset_after=1)
    with pytest.raises(TypeError, match=r"unit_forget_bias"):
        crnn.LSTM(3, unit_forget_bias="yes")
    with pytest.raises(TypeError, match=r"unexpected keyword.*reset_after"):
        crnn.LSTM(3, reset_after=True)
    with pytest.raises(TypeError, match=r"unexpected keyword.*unit_forget_bias"):
        crnn.GRU(3, unit_forget_bias=True)
    lstm = crnn.LSTM(3, input_shape=(None, 2), return_state=True)
    x = np.zeros((2, 4, 2), np.float32)
    with pytest.raises(ValueError, match=r"initial_state: got one array, expected a list of 2"):
        lstm(x, initial_state=np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"initial_state: got a list of 1 arrays, expected 2"):
        lstm(x, initial_state=[np.zeros((2, 3))])
    with pytest.raises(ValueError, match=r"initial_state\[1\]: got shape \(2, 4\), expected"):
        lstm(x, initial_state=[np.zeros((2, 3)), np.zeros((2, 4))])
    gru = crnn.GRU(3, input_shape=(None, 2))
    with pytest.raises(ValueError, match=r"set_weights: got bias shape \(9,\), expected \(2, 9\)"):
        gru.set_weights([np.zeros((2, 9)), np.zeros((3, 9)), np.zeros(9)])
    with pytest.raises(ValueError, match=r"recurrent_kernel shape \(3, 3\), expected \(3, 12\)"):
        crnn.LSTM(3, input_shape=(None, 2)).set_weights(
            [np.zeros((2, 12)), np.zeros((3, 3)), np.zeros(12)])
    with pytest.raises(ValueError, match=r"cell: got 'rnn'"):
        crnn._core.RNN([[[np.zeros((2, 3)), np.zeros((3, 3))]]], cell="rnn")
    with pytest.raises(ValueError, match=r"recurrent_kernel: got shape \(3, 3\), expected "
                                         r"\(units, 4 \* units\)"):
        crnn._core.RNN([[[np.zeros((2, 3)), np.zeros((3, 3))]]], cell="lstm")
    with pytest.raises(ValueError, match=r"initial_state\[0\]: got ndarray, expected \[h, c\]"):
        crnn._core.RNN([[[np.zeros((2, 12)), np.zeros((3, 12))]]], cell="lstm").forward(
            np.zeros((1, 2, 2)), initial_state=[np.zeros((1, 3))])
