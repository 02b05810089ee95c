"""Sequential models of every layer type against the oracles of ``_model_oracle.py``.

Covers the README's examples (many-to-one classifiers with SimpleRNN and LSTM, many-to-many
taggers with Bidirectional SimpleRNN and GRU), deep
stacks fused into one C call (with Bidirectional layers and masks), mask propagation,
summary / parameter counts, predict (batches, progress bar) and whole-model weights.
"""
import re

import numpy as np
import pytest

import crnn
from crnn.models import _FusedRun

from _helpers import (assert_close, make_cell_weights, make_layer_weights, state_tol, to64,
                      value_scale)
from _model_oracle import (dense_weights, model_tol, ref_bidirectional, ref_dense, ref_embedding,
                           ref_masking, ref_rnn)

DT_IDS = {"float32": "f32", "float64": "f64"}


def _padded_ids(rng, batch, steps, vocab, padding):
    """Token ids padded with 0 (Keras pad_sequences: 'post' or 'pre'), lengths incl. 0 and full."""
    lengths = np.array([steps, 0, 1] + list(rng.integers(1, steps + 1, batch)))[:batch]
    ids = np.zeros((batch, steps), np.int64)
    for i, n in enumerate(lengths):
        tokens = rng.integers(1, vocab, n)
        if padding == "post":
            ids[i, :n] = tokens
        elif n:
            ids[i, -n:] = tokens
    return ids


def _install(model, rng, dtype, acts=None):
    """O(1)-keeping weights for every layer (see _helpers / _model_oracle); returns them."""
    flat = []
    for layer in model.layers:
        if isinstance(layer, crnn.Embedding):
            w = [rng.uniform(-1, 1, (layer.input_dim, layer.output_dim)).astype(dtype)]
        elif isinstance(layer, crnn.Dense):
            w = dense_weights(rng, layer.input_dim, layer.units, dtype, layer.use_bias)
        elif isinstance(layer, crnn.SimpleRNN):
            w = [a for a in make_layer_weights(rng, layer.input_dim, layer.units, dtype,
                                                bias=layer.use_bias) if a is not None]
        elif isinstance(layer, crnn.Bidirectional):
            d = layer.forward_layer.input_dim
            w = (make_layer_weights(rng, d, layer.units, dtype)
                 + make_layer_weights(rng, d, layer.units, dtype))
        else:
            w = []
        flat += w
    model.set_weights(flat)
    return flat


# ---------------------------------------------------------------------------------------------
# The README examples
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"], ids=DT_IDS.get)
@pytest.mark.parametrize("padding", ["post", "pre"])
def test_classifier_many_to_one(dtype, padding, rng):
    V, E, H, B, T = 30, 8, 6, 7, 9
    model = crnn.Sequential([crnn.Embedding(V, E, mask_zero=True, dtype=dtype),
                             crnn.SimpleRNN(H, dtype=dtype),
                             crnn.Dense(1, activation="sigmoid", dtype=dtype)])
    emb, rnn, dense = (w for w in np.split(np.array(_install(model, rng, dtype), dtype=object), [1, 4]))
    ids = _padded_ids(rng, B, T, V, padding)
    h, _ = ref_rnn(ref_embedding(ids, emb[0]), list(rnn), ids != 0)
    exp = ref_dense(h, list(dense), "sigmoid")
    tol = model_tol(dtype, E + H, T)
    out = model.predict(ids, verbose=0)
    assert_close(out, exp, tol, f"classifier {padding}-padded", dtype)
    assert out.shape == (B, 1)
    assert_close(out[1], ref_dense(np.zeros((1, H)), list(dense), "sigmoid")[0], tol,
                 "an all-padding sequence reads as zeros")


@pytest.mark.parametrize("dtype", ["float32", "float64"], ids=DT_IDS.get)
@pytest.mark.parametrize("padding", ["post", "pre"])
def test_tagger_many_to_many(dtype, padding, rng):
    V, E, H, C, B, T = 25, 6, 5, 4, 6, 8
    model = crnn.Sequential([crnn.Embedding(V, E, mask_zero=True, dtype=dtype),
                             crnn.Bidirectional(crnn.SimpleRNN(H, return_sequences=True, dtype=dtype)),
                             crnn.Dense(C, activation="softmax", dtype=dtype)])
    w = _install(model, rng, dtype)
    ids = _padded_ids(rng, B, T, V, padding)
    seq, _ = ref_bidirectional(ref_embedding(ids, w[0]), w[1:4], w[4:7], ids != 0,
                               return_sequences=True)
    exp = ref_dense(seq, w[7:9], "softmax")
    out = model(ids)
    assert out.shape == (B, T, C) and out.dtype == np.dtype(dtype)
    assert_close(out, exp, model_tol(dtype, E + H, T), f"tagger {padding}-padded", dtype)
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, atol=1e-5)
    assert model(np.zeros((0, T), np.int64)).shape == (0, T, C)


def _gated_weights(rng, cell, d, h, dtype):
    k, r, b, rb = make_cell_weights(rng, cell, d, h, dtype, True, cell == "gru")
    return [k, r, np.stack([b, rb]) if cell == "gru" else b]


@pytest.mark.parametrize("dtype", ["float32", "float64"], ids=DT_IDS.get)
@pytest.mark.parametrize("padding", ["post", "pre"])
def test_lstm_classifier(dtype, padding, rng):
    """The README's LSTM sentiment classifier: Embedding(mask_zero) -> LSTM -> Dense(sigmoid)."""
    V, E, H, B, T = 40, 8, 6, 7, 9
    model = crnn.Sequential([crnn.Embedding(V, E, mask_zero=True, dtype=dtype),
                             crnn.LSTM(H, dtype=dtype),
                             crnn.Dense(1, activation="sigmoid", dtype=dtype)])
    emb = rng.uniform(-1, 1, (V, E)).astype(dtype)
    lstm = _gated_weights(rng, "lstm", E, H, dtype)
    dense = dense_weights(rng, H, 1, dtype)
    model.set_weights([emb] + lstm + dense)
    ids = _padded_ids(rng, B, T, V, padding)
    h, _ = ref_rnn(ref_embedding(ids, emb), lstm, ids != 0, cell="lstm")
    exp = ref_dense(h, dense, "sigmoid")
    out = model.predict(ids, verbose=0)
    assert out.shape == (B, 1)
    assert_close(out, exp, state_tol(dtype, E + H, T + 2), f"LSTM classifier {padding}", dtype)
    assert model.count_params() == V * E + 4 * (E * H + H * H + H) + H + 1


@pytest.mark.parametrize("dtype", ["float32", "float64"], ids=DT_IDS.get)
@pytest.mark.parametrize("padding", ["post", "pre"])
def test_gru_tagger(dtype, padding, rng):
    """The README's tagger: Embedding(mask_zero) -> Bidirectional(GRU) -> Dense(softmax)."""
    V, E, H, C, B, T = 25, 6, 5, 4, 6, 8
    model = crnn.Sequential([crnn.Embedding(V, E, mask_zero=True, dtype=dtype),
                             crnn.Bidirectional(crnn.GRU(H, return_sequences=True, dtype=dtype)),
                             crnn.Dense(C, activation="softmax", dtype=dtype)])
    emb = rng.uniform(-1, 1, (V, E)).astype(dtype)
    fw, bw = (_gated_weights(rng, "gru", E, H, dtype) for _ in range(2))
    dense = dense_weights(rng, 2 * H, C, dtype)
    model.set_weights([emb] + fw + bw + dense)
    ids = _padded_ids(rng, B, T, V, padding)
    seq, _ = ref_bidirectional(ref_embedding(ids, emb), fw, bw, ids != 0, return_sequences=True,
                               cell="gru")
    exp = ref_dense(seq, dense, "softmax")
    out = model(ids)
    assert out.shape == (B, T, C) and out.dtype == np.dtype(dtype)
    assert_close(out, exp, state_tol(dtype, E + H, T + 2), f"GRU tagger {padding}", dtype)
    assert len(model._get_plan()) == 3  # Embedding, the fused Bidirectional GRU, Dense


# ---------------------------------------------------------------------------------------------
# Deep stacks: one C call
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"], ids=DT_IDS.get)
def test_deep_stack_with_bidirectional_is_one_call(dtype, rng):
    V, E, B, T = 20, 5, 6, 7
    model = crnn.Sequential([
        crnn.Embedding(V, E, mask_zero=True, dtype=dtype),
        crnn.SimpleRNN(6, return_sequences=True, activation="relu", dtype=dtype),
        crnn.Bidirectional(crnn.SimpleRNN(4, return_sequences=True, dtype=dtype)),
        crnn.SimpleRNN(3, dtype=dtype),
        crnn.Dense(2, dtype=dtype)])
    w = _install(model, rng, dtype)
    steps = model._get_plan()
    runs = [s for s in steps if isinstance(s, _FusedRun)]
    assert len(steps) == 3 and len(runs) == 1, "Embedding, one fused recurrent run, Dense"
    assert runs[0].handle.directions == ["forward", "bidirectional", "forward"]
    assert runs[0].handle.units == [6, 4, 3]
    for padding in ("post", "pre"):
        ids = _padded_ids(rng, B, T, V, padding)
        m = ids != 0
        a, _ = ref_rnn(ref_embedding(ids, w[0]), w[1:4], m, activation="relu", return_sequences=True)
        b, _ = ref_bidirectional(a, w[4:7], w[7:10], m, return_sequences=True)
        c, _ = ref_rnn(b, w[10:13], m)
        exp = ref_dense(c, w[13:15])
        tol = model_tol(dtype, 6 + 8, 3 * T, value_scale(a, b, c))
        assert_close(model(ids), exp, tol, f"deep fused stack, {padding}-padded", dtype)
        # the layer-by-layer path (what training=True runs) gives the same
        assert_close(model(ids, training=True), exp, tol, f"layer by layer, {padding}", dtype)


def test_fusion_boundaries(rng):
    """Runs break where a layer cannot read the previous full output; results still match."""
    D, B, T = 3, 4, 5
    mk = lambda *layers: crnn.Sequential(list(layers))  # noqa: E731
    cases = [
        (mk(crnn.SimpleRNN(4, return_sequences=True, input_shape=(None, D)),
            crnn.Bidirectional(crnn.SimpleRNN(3, return_sequences=True), merge_mode="sum"),
            crnn.SimpleRNN(2)), [2, 1]),
        (mk(crnn.SimpleRNN(4, return_sequences=True, input_shape=(None, D)),
            crnn.Bidirectional(crnn.SimpleRNN(3), merge_mode="ave")), [2]),
        (mk(crnn.SimpleRNN(4, return_sequences=True, input_shape=(None, D)),
            crnn.SimpleRNN(4, return_sequences=True, go_backwards=True),
            crnn.SimpleRNN(2)), [1, 1]),
        (mk(crnn.SimpleRNN(4, return_sequences=True, input_shape=(None, D)),
            crnn.Dense(3), crnn.SimpleRNN(2)), [1, 1]),
    ]
    x = rng.uniform(-1, 1, (B, T, D)).astype(np.float64)
    m = rng.random((B, T)) < 0.7
    for model, sizes in cases:
        _install(model, rng, np.float32)
        runs = [len(s.layers) for s in model._get_plan() if isinstance(s, _FusedRun)]
        assert runs == sizes, [l.name for l in model.layers]
        for mask in (None, m):
            fused = model(x, mask=mask)
            by_layer = model(x, mask=mask, training=True)
            assert_close(fused, by_layer, model_tol(np.float32, 8, 3 * T), "fused vs by layer")


def test_mask_propagation_through_dense_and_masking(rng):
    """Masking -> SimpleRNN(seq) -> Dense -> Activation -> SimpleRNN: the mask reaches the last RNN."""
    B, T, D = 5, 6, 4
    model = crnn.Sequential([crnn.Masking(input_shape=(None, D)),
                             crnn.SimpleRNN(5, return_sequences=True),
                             crnn.Dense(3), crnn.Activation("tanh"),
                             crnn.SimpleRNN(2, return_sequences=True)])
    w = _install(model, rng, np.float32)
    x = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
    x[0, 4:] = 0
    x[1, :2] = 0
    x[2, 3] = 0
    xm, m = ref_masking(x)
    a, _ = ref_rnn(xm, w[0:3], m, return_sequences=True)
    b = np.tanh(ref_dense(a, w[3:5]))
    exp, _ = ref_rnn(b, w[5:8], m, return_sequences=True)
    tol = model_tol(np.float32, 9, 2 * T)
    assert_close(model(x), exp, tol, "Masking mask propagated")
    # a caller's mask= on a model without Masking: same propagation
    plain = crnn.Sequential(model.layers[1:])
    assert_close(plain(xm, mask=m), exp, tol, "caller mask propagated")
    # without any mask the results differ (the mask mattered)
    assert not np.allclose(plain(xm), exp, atol=1e-3)


# ---------------------------------------------------------------------------------------------
# summary, shapes, weights, config
# ---------------------------------------------------------------------------------------------
def _rows(model):
    lines = []
    model.summary(print_fn=lines.append)
    return lines


def test_summary_every_layer_type_keras_counts():
    model = crnn.Sequential([
        crnn.Embedding(1000, 16, input_length=20, trainable=False),
        crnn.SimpleRNN(8, return_sequences=True),
        crnn.Bidirectional(crnn.SimpleRNN(4, return_sequences=True)),
        crnn.Dense(3, use_bias=False),
        crnn.Activation("softmax")])
    lines = _rows(model)
    counts = [1000 * 16, 8 * (16 + 8 + 1), 2 * 4 * (8 + 4 + 1), 8 * 3, 0]
    shapes = ["(None, 20, 16)", "(None, 20, 8)", "(None, 20, 8)", "(None, 20, 3)", "(None, 20, 3)"]
    types = ["Embedding", "SimpleRNN", "Bidirectional", "Dense", "Activation"]
    rows = [l for l in lines[4:] if re.match(r"^\w+ \(", l)]
    assert len(rows) == 5, lines
    for row, n, shape, typ in zip(rows, counts, shapes, types):
        assert row.rstrip().endswith(" " + str(n)), row
        assert shape in row, row
        assert f"({typ[:6]}" in row, row
    total = sum(counts)
    assert f"Total params: {total:,}" in lines
    assert f"Trainable params: {total - 16000:,}" in lines
    assert "Non-trainable params: 16,000" in lines
    assert model.count_params() == total
    assert model.output_shape == (None, 20, 3)
    masked = crnn.Sequential([crnn.Masking(input_shape=(None, 5)), crnn.SimpleRNN(6),
                              crnn.Dense(1, activation="sigmoid")])
    assert [l.count_params() for l in masked.layers] == [0, 72, 7]
    assert masked.output_shape == (None, 1)
    lazy = crnn.Sequential([crnn.Embedding(50, 4), crnn.SimpleRNN(3)])
    assert lazy.built and lazy.output_shape == (None, 3)  # Keras 2: Embedding knows its rank


def test_add_rejects_and_explains():
    m = crnn.Sequential([crnn.SimpleRNN(3, input_shape=(None, 2))])
    with pytest.raises(ValueError, match=r"return_sequences=True"):
        m.add(crnn.SimpleRNN(2))
    with pytest.raises(ValueError, match=r"merge_mode=None"):
        m.add(crnn.Bidirectional(crnn.SimpleRNN(2), merge_mode=None))
    with pytest.raises(ValueError, match=r"return_state"):
        m.add(crnn.Bidirectional(crnn.SimpleRNN(2, return_state=True)))
    assert len(m.layers) == 1
    m.add(crnn.Dense(4))  # 2-D into Dense is fine
    assert m.output_shape == (None, 4)
    with pytest.raises(ValueError, match=r"input_dim"):
        m.add(crnn.Dense(2, input_dim=5))
    with pytest.raises(ValueError, match=r"\bx\b"):
        m(np.ones((2, 3)))  # a SimpleRNN-first model needs 3-D input
    e = crnn.Sequential([crnn.Embedding(5, 2), crnn.SimpleRNN(2)])
    with pytest.raises(ValueError, match=r"\bx\b"):
        e(np.array([[1, 7]]))
    # ids of another rank than the model's (batch, timesteps): the shape the caller passed is
    # named, not the Embedding's output
    for ids in (np.array([1, 2]), np.array([[[1], [2]]])):
        with pytest.raises(ValueError, match=re.escape(f"x: got shape {ids.shape}, expected 2 "
                                                       "dimensions")):
            e(ids)
    d = crnn.Sequential([crnn.Embedding(5, 2), crnn.Dense(3)])  # takes ids of any rank
    assert d(np.array([[1, 2]])).shape == (1, 2, 3)
    assert d(np.array([[[1], [2]]])).shape == (1, 2, 1, 3)


def test_whole_model_weights_and_config(rng):
    def make():
        return crnn.Sequential([
            crnn.Embedding(12, 4, mask_zero=True),
            crnn.Bidirectional(crnn.SimpleRNN(3, return_sequences=True)),
            crnn.SimpleRNN(5, use_bias=False),
            crnn.Dense(2, activation="softmax")])
    a, b = make(), make()
    w = _install(a, rng, np.float32)
    assert [x.shape for x in a.get_weights()] == [
        (12, 4), (4, 3), (3, 3), (3,), (4, 3), (3, 3), (3,), (6, 5), (5, 5), (5, 2), (2,)]
    ids = _padded_ids(rng, 4, 6, 12, "post")
    assert not np.allclose(a(ids), b(ids))
    b.set_weights(a.get_weights())
    assert a(ids).tobytes() == b(ids).tobytes()
    before = [x.copy() for x in b.get_weights()]
    bad = list(w)
    bad[7] = bad[7][:-1]
    with pytest.raises(ValueError, match=r"kernel"):
        b.set_weights(bad)
    with pytest.raises(ValueError, match=r"set_weights"):
        b.set_weights(w[:-1])
    for x, y in zip(b.get_weights(), before):
        assert x.tobytes() == y.tobytes(), "a failed set_weights changed the model"
    cfg = a.get_config()
    c = crnn.Sequential.from_config(cfg)
    assert c.get_config()["layers"] == cfg["layers"]
    c.set_weights(a.get_weights())
    assert c(ids).tobytes() == a(ids).tobytes()
    with pytest.raises(ValueError, match=r"'ConvLSTM1D'"):
        crnn.Sequential.from_config({"name": "m", "layers": [{"class_name": "ConvLSTM1D",
                                                              "config": {}}]})


# ---------------------------------------------------------------------------------------------
# predict
# ---------------------------------------------------------------------------------------------
def test_predict_batches_and_progress_bar(capsys, rng):
    model = crnn.Sequential([crnn.SimpleRNN(4, input_shape=(None, 3), return_sequences=True),
                             crnn.Dense(2)])
    x = rng.uniform(-1, 1, (70, 5, 3)).astype(np.float32)
    whole = model(x)
    capsys.readouterr()
    out = model.predict(x, verbose=1)  # Keras default batch_size 32: 3 batches
    bar = capsys.readouterr().out
    assert re.fullmatch(r"3/3 \[=+\] - \d+s \d+(us|ms|s)/step\n", bar), repr(bar)
    assert bar.count("=") == 30
    assert_close(out, whole, model_tol(np.float32, 7, 5), "predict == call")
    model.predict(x, batch_size=10, verbose=1)
    assert capsys.readouterr().out.startswith("7/7 [")
    model.predict(x, verbose=2)
    assert re.fullmatch(r"3/3 - \d+s - \d+(us|ms|s)/step\n", capsys.readouterr().out)
    for quiet in (0, "auto"):  # "auto": a bar only on a terminal; pytest captures stdout
        model.predict(x, verbose=quiet)
        assert capsys.readouterr().out == ""
    for bs in (1, 7, 70, 100):
        assert_close(model.predict(x, batch_size=bs, verbose=0), whole, model_tol(np.float32, 7, 5),
                     f"batch_size={bs}")
    with pytest.raises(ValueError, match=r"verbose"):
        model.predict(x, verbose=3)
    with pytest.raises((TypeError, ValueError), match=r"batch_size"):
        model.predict(x, batch_size=0)
    ids_model = crnn.Sequential([crnn.Embedding(9, 2), crnn.SimpleRNN(3)])
    assert ids_model.predict(rng.integers(0, 9, (40, 4)), verbose=0).shape == (40, 3)


def test_predict_writes_each_batch_into_the_result(rng):
    """predict puts each batch's output into the result as it comes (a large one then leaves
    its memory to the next batch's): bitwise the batches' outputs one after the other, for
    sequences past crnn._core.KEPT_OUTPUT_MIN, a Dense head, float64 and a last batch short."""
    for dtype, head in (("float32", False), ("float64", True)):
        layers = [crnn.SimpleRNN(256, input_shape=(None, 8), return_sequences=True, dtype=dtype)]
        if head:
            layers.append(crnn.Dense(300, dtype=dtype))
        model = crnn.Sequential(layers)
        x = rng.uniform(-1, 1, (70, 40, 8)).astype(dtype)
        batches = [model(x[s:s + 32]) for s in range(0, 70, 32)]
        assert batches[0].nbytes >= crnn._core.KEPT_OUTPUT_MIN
        expected = np.concatenate(batches)
        del batches
        out = model.predict(x, verbose=0)
        assert out.dtype == np.dtype(dtype) and out.flags.c_contiguous
        assert out.tobytes() == expected.tobytes()


def test_auto_progress_bar_only_for_long_jobs_on_a_terminal(capsys, monkeypatch, rng):
    import sys

    import crnn.models as M
    model = crnn.Sequential([crnn.SimpleRNN(3, input_shape=(None, 2))])
    x = rng.uniform(-1, 1, (64, 4, 2)).astype(np.float32)
    capsys.readouterr()
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    model.predict(x)  # a short job: nothing even on a terminal
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(M, "_AUTO_BAR_DELAY", 1e-9)
    model.predict(x, batch_size=16)  # a "long" job on a terminal: the bar, redrawn in place
    out = capsys.readouterr().out
    assert out.startswith("\r") and out.endswith("/step\n") and "4/4 [" in out


def test_input_layer_with_open_widths_builds_from_the_first_call(rng):
    """An Input that leaves a width open (``Input((None, None))``) builds the layers from the
    first x, as a model without an Input does (it failed with a bare TypeError: the layers were
    never built); later calls of another width are refused, naming x."""
    x3 = rng.uniform(-1, 1, (4, 5, 3)).astype(np.float32)
    for layers, out in (([crnn.SimpleRNN(3)], (4, 3)),
                        ([crnn.SimpleRNN(3, return_sequences=True), crnn.Dense(2)], (4, 5, 2)),
                        ([crnn.Dense(3)], (4, 5, 3))):
        model = crnn.Sequential([crnn.Input((None, None)), *layers])
        assert model(x3).shape == model.predict(x3, verbose=0).shape == out
        with pytest.raises(ValueError, match=r"x: got input_dim 4"):
            model(np.ones((4, 5, 4), np.float32))
    dense = crnn.Sequential([crnn.Input((None,)), crnn.Dense(2)])
    assert dense(x3[:, 0]).shape == (4, 2)
    # a first x of another rank than the Input's, where the layers take it (Dense)
    for shape, x in (((None, None), x3[:, 0]), ((None,), x3)):
        model = crnn.Sequential([crnn.Input(shape), crnn.Masking(), crnn.Dense(4)])
        assert model(x).shape == x.shape[:-1] + (4,)


def test_input_layer_and_dropout(rng):
    x = rng.uniform(-1, 1, (3, 5, 4)).astype(np.float32)
    m = crnn.Sequential([crnn.Input(shape=(None, 4)), crnn.SimpleRNN(3, return_sequences=True),
                         crnn.Dropout(0.5), crnn.Dense(2)])
    assert m.built and m.input_shape == (None, None, 4) and len(m.layers) == 3
    assert [type(l).__name__ for l in m.layers] == ["SimpleRNN", "Dropout", "Dense"]
    w = _install(m, rng, np.float32)
    seq, _ = ref_rnn(x, w[:3], return_sequences=True)
    assert_close(m(x), ref_dense(seq, w[3:]), model_tol(np.float32, 7, 5), "Input + Dropout")
    assert m.layers[1](x) is x or m.layers[1](x).tobytes() == x.tobytes()
    with pytest.raises(NotImplementedError):
        m.layers[1](x, training=True)
    cfg = m.get_config()
    assert cfg["layers"][0]["class_name"] == "InputLayer"
    again = crnn.Sequential.from_config(cfg)
    assert again.input_shape == (None, None, 4) and len(again.layers) == 3
    with pytest.raises(ValueError, match=r"InputLayer"):
        m.add(crnn.InputLayer(shape=(4,)))
    e = crnn.Sequential([crnn.InputLayer(batch_shape=(None, 6), dtype="int32"),
                         crnn.Embedding(9, 2), crnn.SimpleRNN(3)])
    assert e.output_shape == (None, 3) and e.layers[0].compute_output_shape((None, 6)) == (None, 6, 2)
    with pytest.raises(ValueError, match=r"shape"):
        crnn.Input()
    with pytest.raises(ValueError, match=r"rate"):
        crnn.Dropout(1.5)


@pytest.mark.parametrize("seed", range(12))
def test_random_architectures(seed):
    """Random stacks of every layer type, random masks: fused plan == layer by layer == oracle."""
    rng = np.random.default_rng(1000 + seed)
    dtype = ("float32", "float64")[seed % 2]
    B, T = int(rng.integers(1, 5)), int(rng.integers(1, 7))
    use_emb = bool(rng.integers(0, 2))
    layers, width = [], None
    if use_emb:
        layers.append(crnn.Embedding(12, 3, mask_zero=bool(rng.integers(0, 2)), dtype=dtype))
        width = 3
    else:
        width = int(rng.integers(1, 5))
        if rng.integers(0, 2):
            layers.append(crnn.Masking(input_shape=(None, width), dtype=dtype))
    n_rnn = int(rng.integers(1, 4))
    for i in range(n_rnn):
        rs = i < n_rnn - 1 or bool(rng.integers(0, 2))
        units = int(rng.integers(1, 5))
        act = ("tanh", "relu", "linear", "sigmoid")[int(rng.integers(0, 4))]
        kind = int(rng.integers(0, 3))
        kw = {} if layers else {"input_shape": (None, width)}
        if kind == 0:
            layers.append(crnn.SimpleRNN(units, activation=act, return_sequences=rs, dtype=dtype, **kw))
        elif kind == 1:
            layers.append(crnn.SimpleRNN(units, activation=act, return_sequences=rs, dtype=dtype,
                                         go_backwards=bool(rng.integers(0, 2)), **kw))
        else:
            mode = ("concat", "sum", "mul", "ave")[int(rng.integers(0, 4))]
            layers.append(crnn.Bidirectional(crnn.SimpleRNN(units, activation=act, return_sequences=rs,
                                                            dtype=dtype), merge_mode=mode, **kw))
        if rs and rng.integers(0, 3) == 0:
            layers.append(crnn.Dense(int(rng.integers(1, 4)), activation="tanh", dtype=dtype))
    layers.append(crnn.Dense(2, activation=("softmax", "sigmoid", None)[seed % 3], dtype=dtype))
    model = crnn.Sequential(layers)
    if use_emb:
        x = rng.integers(0, 12, (B, T))
    else:
        x = rng.uniform(-1, 1, (B, T, width)).astype(dtype)
        x[rng.random((B, T)) < 0.3] = 0.0
    model(x)  # build
    w = _install(model, rng, dtype)
    # the oracle, layer by layer, with Keras mask propagation
    out, mask, pos = x, None, 0
    for layer in model.layers:
        n = layer._num_weight_arrays()
        lw = w[pos:pos + n]
        pos += n
        if isinstance(layer, crnn.Embedding):
            out, mask = to64(lw[0])[np.asarray(out)], (np.asarray(out) != 0 if layer.mask_zero else None)
        elif isinstance(layer, crnn.Masking):
            out, mask = ref_masking(out)
        elif isinstance(layer, crnn.Dense):
            out = ref_dense(out, lw, layer.activation)
        elif isinstance(layer, crnn.SimpleRNN):
            out, _ = ref_rnn(out, lw, mask, activation=layer.activation, go_backwards=layer.go_backwards,
                             return_sequences=layer.return_sequences)
            mask = mask if layer.return_sequences else None
        else:
            f = layer.forward_layer
            out, _ = ref_bidirectional(out, lw[:3], lw[3:], mask, activation=f.activation,
                                       merge_mode=layer.merge_mode, return_sequences=f.return_sequences)
            mask = mask if layer.return_sequences else None
    tol = model_tol(dtype, 16, T * n_rnn, value_scale(out))
    msg = f"seed {seed}: {[type(l).__name__ for l in model.layers]}"
    assert_close(model(x), out, tol, msg, dtype)
    assert_close(model(x, training=True), out, tol, msg + " (layer by layer)", dtype)


def test_adding_many_layers_is_linear():
    """Sequential.add checks and builds only the new layer (the earlier ones were checked when
    added) and finds names in a dict: 16,000 layers once took 18 s (quadratic)."""
    import time
    for n in (2000, 8000):
        t0 = time.perf_counter()
        m = crnn.Sequential([crnn.Dense(4, input_shape=(3,))] +
                            [crnn.Activation("relu") for _ in range(n)])
        elapsed = time.perf_counter() - t0
        assert m.output_shape == (None, 4) and len(m.layers) == n + 1
        if n == 2000:
            small = elapsed
    # 4x the layers in well under 16x the time (a generous bound for a shared machine)
    assert elapsed < 8 * small + 0.5, (small, elapsed)
    with pytest.raises(ValueError, match=r"already in model"):
        m.add(m.layers[-1])
    with pytest.raises(ValueError, match=r"unique"):
        m.add(crnn.Activation("relu", name=m.layers[-1].name))
    m.pop()
    m.add(crnn.Activation("tanh", name="after_pop"))
    assert m.layers[-1].name == "after_pop"
