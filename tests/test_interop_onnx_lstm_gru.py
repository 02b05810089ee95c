"""crnn.load_onnx on the ONNX LSTM and GRU operators, against ONNX Runtime and the maths.

The expected values come from two independent places: ONNX Runtime (layout 0, float32), and
:mod:`crnn.reference` in float64 on the ONNX weights, regrouped here gate by gate from the ONNX
gate orders (LSTM i, o, f, c; GRU z, r, h) into Keras's (LSTM i, f, c, o; GRU z, r, h), written
out separately from crnn's own mapping.  ONNX's Python reference ops ignore ``sequence_lens`` and
``clip``, so ``sequence_lens`` is checked here against both, and ``clip`` (which crnn cannot run)
for its refusal.

Tolerances: 1e-5 absolute in float32 (the project ceiling on hidden states).  crnn and ONNX
Runtime both compute in float32 with different summation orders: one step is a dot product of
K = D + H <= 16 terms, a few eps * log2(K) ~ 1e-6 per step, and the weights keep every
pre-activation O(1) (recurrent blocks of norm <= 0.5) so errors do not grow over the steps; an
LSTM's cell state c is a sum of at most T = 7 terms of size <= 1, so |c| <= 7 and its error a few
eps * T * |c| ~ 5e-6.  float64: 1e-12 against the float64 reference.  Measured: ~2e-7 (float32).
"""
import warnings

import numpy as np
import pytest

import crnn
from crnn import reference
from crnn.interop.onnx import OnnxError

onnx = pytest.importorskip("onnx", reason="onnx not installed: pip install '.[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install '.[onnx]'")
from onnx import TensorProto as TP  # noqa: E402
from onnx import helper as oh  # noqa: E402
from onnx import numpy_helper  # noqa: E402
from test_interop_onnx import _close, _like_ort_and_torch, _ort, _rnn_graph  # noqa: E402

TOL32, TOL64 = 1e-5, 1e-12
GATES = {"LSTM": 4, "GRU": 3}


def _weights(op, D, H, ndir, seed, npdt=np.float32):
    """W, R, B in the ONNX layouts, every pre-activation O(1)."""
    rng = np.random.default_rng(seed)
    G = GATES[op]
    W = rng.uniform(-0.5, 0.5, (ndir, G * H, D))
    R = rng.uniform(-1, 1, (ndir, G * H, H))
    for d in range(ndir):
        for g in range(G):
            blk = R[d, g * H:(g + 1) * H]
            blk *= 0.5 / np.linalg.norm(blk, 2)
    B = rng.uniform(-0.5, 0.5, (ndir, 2 * G * H))
    return W.astype(npdt), R.astype(npdt), B.astype(npdt)


def _graph(op, D, H, *, direction="forward", bias=True, seq=False, h0=False, c0=False,
           layout=0, dtype=TP.FLOAT, seed=0, attrs=None, P=None, outputs=None, opset=14):
    """A one-node model; returns (serialized model, (W, R, B))."""
    ndir = 2 if direction == "bidirectional" else 1
    npdt = np.float32 if dtype == TP.FLOAT else np.float64
    W, R, B = _weights(op, D, H, ndir, seed, npdt)
    names = ["X", "W", "R", "B" if bias else "", "seq" if seq else "", "h0" if h0 else "",
             "c0" if c0 else "", "P" if P is not None else ""]
    if op == "GRU":
        names = names[:6]
    while names[-1] == "":
        names.pop()
    at = {"hidden_size": H}
    if direction != "forward":
        at["direction"] = direction
    if layout:
        at["layout"] = layout
    at.update(attrs or {})
    outs = outputs or (["Y", "Y_h", "Y_c"] if op == "LSTM" else ["Y", "Y_h"])
    node = oh.make_node(op, names, outs, name=f"my_{op.lower()}", **at)
    ins = [oh.make_tensor_value_info("X", dtype, ["T", "B", D] if layout == 0 else ["B", "T", D])]
    if seq:
        ins.append(oh.make_tensor_value_info("seq", TP.INT32, ["B"]))
    for name, on in (("h0", h0), ("c0", c0)):
        if on:
            ins.append(oh.make_tensor_value_info(
                name, dtype, [ndir, "B", H] if layout == 0 else ["B", ndir, H]))
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R")]
    if bias:
        inits.append(numpy_helper.from_array(B, "B"))
    if isinstance(P, np.ndarray):
        inits.append(numpy_helper.from_array(P.astype(npdt), "P"))
    elif P == "input":
        ins.append(oh.make_tensor_value_info("P", dtype, [ndir, 3 * H]))
    g = oh.make_graph([node], "g", ins, [oh.make_tensor_value_info(o, dtype, None)
                                         for o in outs if o], inits)
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", opset)])
    m.ir_version = 8
    return m.SerializeToString(), (W, R, B if bias else None)


def _keras_entry(op, W, R, B, d):
    """One direction's ONNX weights as a crnn.reference entry (Keras gate order), by gate name."""
    G = GATES[op]
    w, r = np.split(W[d].astype(np.float64), G), np.split(R[d].astype(np.float64), G)
    b = rb = None
    if B is not None:
        gh = W.shape[1]
        b = np.split(B[d, :gh].astype(np.float64), G)        # Wb
        rb = np.split(B[d, gh:].astype(np.float64), G)       # Rb
    if op == "LSTM":
        i, o, f, c = 0, 1, 2, 3          # ONNX's order
        order = [i, f, c, o]             # Keras's order
    else:
        order = [0, 1, 2]                # z, r, h in both
    entry = [np.concatenate([w[k] for k in order]).T, np.concatenate([r[k] for k in order]).T]
    if B is not None:
        entry += [np.concatenate([b[k] for k in order]), np.concatenate([rb[k] for k in order])]
    return entry


def _expected(op, x_tbd, W, R, B, direction, *, acts=("tanh", "sigmoid"), reset_after=False,
              h0=None, c0=None, lens=None):
    """(Y, Y_h[, Y_c]) in layout 0 from crnn.reference in float64."""
    ndir = 2 if direction == "bidirectional" else 1
    xb = np.asarray(x_tbd, np.float64).transpose(1, 0, 2)
    ys, hs, cs = [], [], []
    for d in range(ndir):
        init = None
        if h0 is not None or c0 is not None:
            h = None if h0 is None else np.asarray(h0[d], np.float64)
            c = None if c0 is None else np.asarray(c0[d], np.float64)
            init = [[h, c] if op == "LSTM" else h]
        y, st = reference.rnn_stack(
            xb, [[_keras_entry(op, W, R, B, d)]], cell=op.lower(),
            activation=acts[0], recurrent_activation=acts[1], reset_after=reset_after,
            direction=("reverse" if direction == "reverse" or d == 1 else "forward"),
            initial_state=init, lengths=lens, return_sequences=True, return_state=True)
        ys.append(y)
        hs.append(st[0][0] if op == "LSTM" else st[0])
        cs.append(st[0][1] if op == "LSTM" else None)
    out = [np.stack(ys, axis=2).transpose(1, 2, 0, 3), np.stack(hs)]
    return out + [np.stack(cs)] if op == "LSTM" else out


def _feed(op, D, H, ndir, seed, *, T=7, B=4, seq=False, h0=False, c0=False, npdt=np.float32):
    rng = np.random.default_rng(seed)
    feed = {"X": rng.standard_normal((T, B, D)).astype(npdt)}
    if seq:
        feed["seq"] = np.array([T, 3, 1, T - 1][:B], np.int32)
    if h0:
        feed["h0"] = (rng.standard_normal((ndir, B, H)) * 0.5).astype(npdt)
    if c0:
        feed["c0"] = (rng.standard_normal((ndir, B, H)) * 0.5).astype(npdt)
    return feed


# ============================================================================ against ORT + maths
cases = [
    # (op, direction, linear_before_reset, bias, seq, h0, c0)
    ("LSTM", "forward", None, True, False, False, False),
    ("LSTM", "reverse", None, True, True, True, True),
    ("LSTM", "bidirectional", None, False, True, True, False),
    ("LSTM", "bidirectional", None, True, False, False, True),
    ("GRU", "forward", 0, True, False, False, False),
    ("GRU", "forward", 1, True, True, True, False),
    ("GRU", "reverse", 0, True, True, True, False),
    ("GRU", "reverse", 1, False, False, False, False),
    ("GRU", "bidirectional", 0, False, True, True, False),
    ("GRU", "bidirectional", 1, True, True, True, False),
]


@pytest.mark.parametrize("op,direction,lbr,bias,seq,h0,c0", cases,
                         ids=[f"{c[0]}-{c[1]}-lbr{c[2]}-{'b' if c[3] else 'nob'}-"
                              f"{'seq' if c[4] else 'noseq'}-{'h0' if c[5] else ''}"
                              f"{'c0' if c[6] else ''}" for c in cases])
def test_operator_matches_onnxruntime_and_the_maths(op, direction, lbr, bias, seq, h0, c0):
    D, H = 3, 5
    ndir = 2 if direction == "bidirectional" else 1
    attrs = {} if lbr is None else {"linear_before_reset": lbr}
    data, (W, R, B) = _graph(op, D, H, direction=direction, bias=bias, seq=seq, h0=h0, c0=c0,
                             attrs=attrs, seed=len(direction) + 10 * bool(lbr))
    feed = _feed(op, D, H, ndir, 1, seq=seq, h0=h0, c0=c0)
    got = crnn.load_onnx(data).run(None, feed)
    want = _ort(data).run(None, feed)
    ref = _expected(op, feed["X"], W, R, B, direction, reset_after=bool(lbr),
                    h0=feed.get("h0"), c0=feed.get("c0"), lens=feed.get("seq"))
    names = ["Y", "Y_h", "Y_c"]
    assert len(got) == len(want) == len(ref)
    for g, w, r, name in zip(got, want, ref, names):
        assert g.dtype == np.float32
        _close(g, w, TOL32, f"{name} vs onnxruntime")
        _close(g, r, TOL32, f"{name} vs reference")


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_layout_1_which_onnxruntime_refuses(op, direction):
    D, H, B, T = 3, 4, 3, 6
    ndir = 2 if direction == "bidirectional" else 1
    kw = dict(direction=direction, seq=True, h0=True, c0=op == "LSTM",
              attrs={"linear_before_reset": 1} if op == "GRU" else None)
    data1, _ = _graph(op, D, H, layout=1, **kw)
    data0, _ = _graph(op, D, H, layout=0, **kw)
    feed0 = _feed(op, D, H, ndir, 2, T=T, B=B, seq=True, h0=True, c0=op == "LSTM")
    feed1 = {k: (v.transpose(1, 0, 2) if v.ndim == 3 else v) for k, v in feed0.items()}
    got = crnn.load_onnx(data1).run(None, feed1)
    want = _ort(data0).run(None, feed0)
    assert got[0].shape == (B, T, ndir, H)
    _close(got[0], want[0].transpose(2, 0, 1, 3), TOL32, "layout-1 Y vs onnxruntime layout 0")
    for g, w in zip(got[1:], want[1:]):
        assert g.shape == (B, ndir, H)
        _close(g, w.transpose(1, 0, 2), TOL32, "layout-1 states vs onnxruntime layout 0")
    with pytest.raises(Exception, match="layout"):   # why crnn's support matters
        _ort(data1)


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_zero_length_sequence_keeps_the_initial_states(op, direction):
    """sequence_lens 0 runs no step: Y_h (and Y_c) are initial_h (and initial_c), Y is 0.

    ONNX Runtime returns zeros as Y_h and Y_c here instead; crnn follows the spec, as for RNN
    (see the module docstring of crnn.interop.onnx).  Other sequences agree with it.
    """
    D, H, B = 3, 4, 3
    ndir = 2 if direction == "bidirectional" else 1
    lstm = op == "LSTM"
    data, (W, R, Bv) = _graph(op, D, H, direction=direction, seq=True, h0=True, c0=lstm)
    feed = _feed(op, D, H, ndir, 3, B=B, seq=True, h0=True, c0=lstm)
    feed["seq"] = np.array([0, 7, 2], np.int32)
    got = crnn.load_onnx(data).run(None, feed)
    np.testing.assert_array_equal(got[0][:, :, 0], 0)
    np.testing.assert_array_equal(got[1][:, 0], feed["h0"][:, 0])
    if lstm:
        np.testing.assert_array_equal(got[2][:, 0], feed["c0"][:, 0])
    ref = _expected(op, feed["X"], W, R, Bv, direction, h0=feed["h0"],
                    c0=feed.get("c0"), lens=feed["seq"])
    for g, r in zip(got, ref):
        _close(g, r, TOL32, "vs reference")
    want = _ort(data).run(None, feed)
    _close(got[0], want[0], TOL32, "Y vs onnxruntime")
    for g, w in zip(got[1:], want[1:]):
        _close(g[:, 1:], w[:, 1:], TOL32, "states vs onnxruntime")
        assert not np.any(w[:, 0])


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
@pytest.mark.parametrize("opset", [7, 22])
def test_other_opsets(op, opset):
    attrs = {"linear_before_reset": 1} if op == "GRU" else None
    data, _ = _graph(op, 3, 4, direction="bidirectional", seq=True, h0=True, c0=op == "LSTM",
                     attrs=attrs, opset=opset)
    feed = _feed(op, 3, 4, 2, 8, seq=True, h0=True, c0=op == "LSTM")
    for g, w in zip(crnn.load_onnx(data).run(None, feed), _ort(data).run(None, feed)):
        _close(g, w, TOL32, f"opset {opset} vs onnxruntime")


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_float64_against_the_maths(op):
    D, H = 4, 3
    data, (W, R, B) = _graph(op, D, H, direction="bidirectional", seq=True, h0=True,
                             c0=op == "LSTM", dtype=TP.DOUBLE)
    feed = _feed(op, D, H, 2, 4, seq=True, h0=True, c0=op == "LSTM", npdt=np.float64)
    got = crnn.load_onnx(data).run(None, feed)
    ref = _expected(op, feed["X"], W, R, B, "bidirectional", h0=feed["h0"], c0=feed.get("c0"),
                    lens=feed["seq"])
    for g, r in zip(got, ref):
        assert g.dtype == np.float64
        _close(g, r, TOL64, "float64 vs reference")


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_empty_batch(op):
    """No sequences in, empty outputs out (ONNX Runtime 1.32 aborts the process here)."""
    data, _ = _graph(op, 3, 4, direction="bidirectional", h0=True, c0=op == "LSTM")
    feed = {k: v[:, :0] for k, v in _feed(op, 3, 4, 2, 9, h0=True, c0=op == "LSTM").items()}
    outs = crnn.load_onnx(data).run(None, feed)
    assert [o.shape for o in outs] == [(7, 2, 0, 4)] + [(2, 0, 4)] * (len(outs) - 1)


def test_only_the_outputs_the_node_names_are_computed():
    data, (W, R, B) = _graph("LSTM", 3, 4, outputs=["", "", "Y_c"])
    feed = _feed("LSTM", 3, 4, 1, 5)
    (yc,) = crnn.load_onnx(data).run(None, feed)
    _close(yc, _ort(data).run(None, feed)[0], TOL32, "Y_c alone")


# ============================================================================ activations
act_cases = [
    # (op, activations, alpha, beta, crnn's (activation, recurrent_activation) per direction)
    ("LSTM", ["Sigmoid", "Relu", "Relu"], [], [], [("relu", "sigmoid")]),
    ("LSTM", ["HardSigmoid", "Tanh", "Tanh"], [1 / 6], [0.5], [("tanh", "hard_sigmoid")]),
    ("LSTM", ["Sigmoid", "Affine", "Affine"], [1.0, 1.0], [0.0, 0.0], [("linear", "sigmoid")]),
    ("GRU", ["HardSigmoid", "Relu"], [1 / 6], [0.5], [("relu", "hard_sigmoid")]),
    ("GRU", ["Sigmoid", "Tanh", "HardSigmoid", "Relu"], [1 / 6], [0.5],
     [("tanh", "sigmoid"), ("relu", "hard_sigmoid")]),            # one per direction
    ("LSTM", ["Sigmoid", "Tanh", "Tanh", "Sigmoid", "Affine", "Affine"], [1.0, 1.0],
     [0.0, 0.0], [("tanh", "sigmoid"), ("linear", "sigmoid")]),
]


@pytest.mark.parametrize("op,acts,alpha,beta,core", act_cases)
def test_activations_with_alpha_and_beta(op, acts, alpha, beta, core):
    """Activations and their alpha / beta, consumed in order (f, g[, h] per direction), that
    crnn runs exactly: HardSigmoid(1/6, 0.5) is Keras 3's hard_sigmoid, Affine(1, 0) linear."""
    D, H = 3, 4
    per = 3 if op == "LSTM" else 2
    direction = "bidirectional" if len(acts) > per else "forward"
    attrs = {"activations": acts}
    if alpha:
        attrs["activation_alpha"] = alpha
        attrs["activation_beta"] = beta
    data, (W, R, B) = _graph(op, D, H, direction=direction, attrs=attrs, seq=True)
    ndir = 2 if direction == "bidirectional" else 1
    feed = _feed(op, D, H, ndir, 6, seq=True)
    got = crnn.load_onnx(data).run(None, feed)
    want = _ort(data).run(None, feed)
    refs = [_expected(op, feed["X"], W[d:d + 1], R[d:d + 1], B[d:d + 1],
                      ("forward", "reverse")[d], acts=core[d], lens=feed["seq"])
            for d in range(ndir)]
    for i, (g, w) in enumerate(zip(got, want)):
        _close(g, w, TOL32, f"output {i} vs onnxruntime")
        r = np.concatenate([ref[i] for ref in refs], axis=1 if i == 0 else 0)
        _close(g, r, TOL32, f"output {i} vs reference")


# ============================================================================ refusals
refusals = [
    ("LSTM", {"clip": 3.0}, None, r"my_lstm.*attribute clip=3\.0"),
    ("GRU", {"clip": 1e30}, None, r"my_gru.*attribute clip"),
    ("LSTM", {"input_forget": 1}, None, r"my_lstm.*attribute input_forget=1"),
    ("LSTM", {}, "input", r"my_lstm.*input P \(peepholes\) 'P', a graph input"),
    ("LSTM", {}, np.full((1, 12), 0.1), r"my_lstm.*input P \(peepholes\).*non-zero"),
    ("LSTM", {"activations": ["Sigmoid", "Tanh", "Relu"]}, None,
     r"my_lstm.*attribute activations.*\(g: Tanh\).*\(h: Relu\) differ"),
    ("LSTM", {"activations": ["HardSigmoid", "Tanh", "Tanh"]}, None,
     r"my_lstm.*HardSigmoid with activation_alpha=0\.2"),     # Keras 2's hard_sigmoid
    ("GRU", {"activations": ["Sigmoid", "LeakyRelu"], "activation_alpha": [0.1]}, None,
     r"my_gru.*'LeakyRelu' in attribute activations"),
    ("GRU", {"activations": ["Sigmoid", "Softsign"]}, None, r"my_gru.*Softsign"),
    ("GRU", {"activations": ["Sigmoid", "Tanh", "Tanh"]}, None, r"my_gru.*3 activations"),
    ("GRU", {"linear_before_reset": 2}, None, r"my_gru.*linear_before_reset=2"),
    ("LSTM", {"linear_before_reset": 1}, None, r"my_lstm.*unknown attribute.*linear_before_reset"),
    ("GRU", {"input_forget": 0}, None, r"my_gru.*unknown attribute.*input_forget"),
    ("GRU", {"hidden_size": 7}, None, r"my_gru.*hidden_size=7"),
]


@pytest.mark.parametrize("op,attrs,P,match", refusals,
                         ids=[f"{r[0]}-{'-'.join(r[1]) or 'P'}" for r in refusals])
def test_what_crnn_cannot_run_is_refused_at_load_naming_node_and_attribute(op, attrs, P, match):
    data, _ = _graph(op, 3, 4, attrs=attrs, P=P)
    with pytest.raises(OnnxError, match=match):
        crnn.load_onnx(data)


def test_all_zero_peepholes_are_no_peepholes():
    D, H = 3, 4
    data, _ = _graph("LSTM", D, H, P=np.zeros((1, 3 * H)), seq=True, h0=True, c0=True)
    plain, _ = _graph("LSTM", D, H, seq=True, h0=True, c0=True)
    feed = _feed("LSTM", D, H, 1, 7, seq=True, h0=True, c0=True)
    for g, w in zip(crnn.load_onnx(data).run(None, feed), _ort(plain).run(None, feed)):
        _close(g, w, TOL32, "P = 0 vs no P")
    bad, _ = _graph("LSTM", D, H, P=np.zeros((1, 2 * H)))
    with pytest.raises(OnnxError, match=r"got P of shape \(1, 8\), expected \(1, 3\*hidden_size\)"):
        crnn.load_onnx(bad)


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_weights_of_the_wrong_shape_are_refused(op):
    data, _ = _graph(op, 3, 4)
    model = onnx.load_from_string(data)
    model.graph.initializer[1].CopyFrom(numpy_helper.from_array(
        np.zeros((1, 4, 4), np.float32), "R"))                     # an RNN's R
    with pytest.raises(OnnxError, match=rf"my_{op.lower()}': got W .* and R \(1, 4, 4\)"):
        crnn.load_onnx(model.SerializeToString())
    data, _ = _graph(op, 3, 4)
    model = onnx.load_from_string(data)
    model.graph.initializer[2].CopyFrom(numpy_helper.from_array(
        np.zeros((1, 8), np.float32), "B"))
    with pytest.raises(OnnxError, match=r"got B of shape \(1, 8\)"):
        crnn.load_onnx(model.SerializeToString())


def _one_node(op):
    """A one-node RNN, LSTM or GRU model (an onnx.ModelProto), its node named my_<op>."""
    if op == "RNN":
        model, _ = _rnn_graph(3, 4, 1)
        model.graph.node[0].name = "my_rnn"
        return model
    return onnx.load_from_string(_graph(op, 3, 4)[0])


@pytest.mark.parametrize("op,outputs", [
    ("RNN", ["Y", "Y_h", "Y_c"]), ("GRU", ["Y", "Y_h", "Y_c"]), ("GRU", ["", "Y_h", ""]),
    ("LSTM", ["Y", "Y_h", "Y_c", "Y_d"])])
def test_more_outputs_than_the_operator_has_are_refused_at_load(op, outputs):
    """RNN and GRU have the outputs Y and Y_h, LSTM also Y_c; ONNX Runtime refuses more at load
    too (crnn once loaded such a node and failed when it ran, with a KeyError)."""
    model = _one_node(op)
    del model.graph.node[0].output[:]
    model.graph.node[0].output.extend(outputs)
    del model.graph.output[:]
    model.graph.output.extend(oh.make_tensor_value_info(o, TP.FLOAT, None) for o in outputs if o)
    most = 3 if op == "LSTM" else 2
    with pytest.raises(OnnxError, match=rf"{op} node 'my_{op.lower()}': got {len(outputs)} "
                                        rf"outputs .*, expected at most {most}"):
        crnn.load_onnx(model.SerializeToString())


@pytest.mark.parametrize("op,extra", [("RNN", ["W"]), ("GRU", ["", "W"]), ("GRU", [""]),
                                      ("LSTM", ["", "", "", "", "W"])])
def test_more_inputs_than_the_operator_has_are_refused_at_load(op, extra):
    """RNN and GRU take X, W, R, B, sequence_lens, initial_h; LSTM also initial_c and P.  An
    input past those was ignored; ONNX Runtime refuses such a node at load."""
    model = _one_node(op)
    node = model.graph.node[0]
    node.input.extend([""] * (6 - len(node.input)) + extra)
    most = 8 if op == "LSTM" else 6
    with pytest.raises(OnnxError, match=rf"{op} node 'my_{op.lower()}': got {len(node.input)} "
                                        rf"inputs .*, expected at most {most}"):
        crnn.load_onnx(model.SerializeToString())


@pytest.mark.parametrize("op", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("W,match", [
    (np.zeros((1, 0, 0), np.float32), r"got shape \(0, \d+\), expected \(input_dim, \d+\)"),
    (np.zeros((1, 0, 3), np.bool_), r"got dtype bool")], ids=["input_size_0", "bool"])
def test_weights_the_core_refuses_are_refused_naming_the_node(op, W, match):
    """crnn's core checks the weights at load; its error names the node (a bool W was once a
    TypeError and input size 0 a ValueError, neither naming the node)."""
    model = _one_node(op)
    G = {"RNN": 1, "LSTM": 4, "GRU": 3}[op]
    W = np.zeros((1, G * 4) + W.shape[2:], W.dtype)
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(W, "W"))
    with pytest.raises(OnnxError, match=rf"{op} node 'my_{op.lower()}': .*W .*{match}"):
        crnn.load_onnx(model.SerializeToString())


# ============================================================================ torch.onnx.export
torch_cases = [
    # (module, num_layers, batch_first, bidirectional, bias, initial states as graph inputs)
    ("LSTM", 1, False, False, True, False),
    ("LSTM", 2, True, True, True, True),
    ("LSTM", 3, False, True, False, True),
    ("GRU", 1, True, False, True, True),
    ("GRU", 2, False, True, True, False),
    ("GRU", 2, True, True, False, True),
]


def _torch_net(kind, L, bf, bi, bias, packed=False):
    import torch
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(nn, kind)(4, 6, num_layers=L, batch_first=bf, bidirectional=bi,
                                         bias=bias)
            self.fc = nn.Linear(6 * (2 if bi else 1), 3)

        def forward(self, x, *state):
            if packed:
                lens = state[-1]
                state = state[:-1]
                x = torch.nn.utils.rnn.pack_padded_sequence(x, lens, batch_first=bf,
                                                            enforce_sorted=False)
            hx = None if not state else (tuple(state) if kind == "LSTM" else state[0])
            y, h = self.rnn(x, hx)
            if packed:
                y = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=bf,
                                                           total_length=lens.max())[0]
            h = h if kind == "GRU" else torch.cat(h, -1)
            return torch.softmax(self.fc(y), -1), torch.tanh(h)

    torch.manual_seed(L + 3 * bf + 5 * bi)
    net = Net().eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.uniform_(-0.4, 0.4)
            if "weight_hh" in name:
                for blk in p.split(6):
                    blk.mul_(0.5 / torch.linalg.matrix_norm(blk, ord=2))
    return net


def _export(net, args, names, dyn, path):
    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, args, path, dynamo=False, input_names=names,
                          output_names=["probs", "state"], dynamic_axes=dyn)


@pytest.mark.parametrize("kind,L,bf,bi,bias,states", torch_cases,
                         ids=[f"{c[0]}-L{c[1]}-{'bf' if c[2] else 'tf'}-{'bi' if c[3] else 'uni'}"
                              f"-{'b' if c[4] else 'nob'}-{'h0' if c[5] else 'noh0'}"
                              for c in torch_cases])
def test_torch_export_runs_like_onnxruntime_and_torch(tmp_path, kind, L, bf, bi, bias, states):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: pip install '.[torch]'")
    net = _torch_net(kind, L, bf, bi, bias)
    ndir = 2 if bi else 1
    n_states = (2 if kind == "LSTM" else 1) if states else 0
    xdims = {0: "batch", 1: "time"} if bf else {0: "time", 1: "batch"}

    def inputs(B, T, seed):
        torch.manual_seed(seed)
        x = torch.randn(B, T, 4) if bf else torch.randn(T, B, 4)
        return (x,) + tuple(torch.randn(L * ndir, B, 6) * 0.5 for _ in range(n_states))

    names = ["x", "h0", "c0"][:1 + n_states]
    path = str(tmp_path / "net.onnx")
    _export(net, inputs(2, 5, 0), names, {"x": xdims, **{k: {1: "batch"} for k in names[1:]}},
            path)
    model = crnn.load_onnx(path)
    assert model.op_types.count(kind) == L
    args = inputs(3, 9, 1)                  # another batch and time than the export's
    with torch.no_grad():
        want_torch = net(*args)
    _like_ort_and_torch(path, {k: v.numpy() for k, v in zip(names, args)}, want_torch,
                        ["probs", "state"])


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_torch_export_packed_sequence(tmp_path, kind):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: pip install '.[torch]'")
    net = _torch_net(kind, 2, False, True, True, packed=True)
    torch.manual_seed(2)
    x, lens = torch.randn(7, 4, 4), torch.tensor([7, 2, 5, 3])
    path = str(tmp_path / "packed.onnx")
    _export(net, (x, lens), ["x", "lens"], None, path)
    assert crnn.load_onnx(path).op_types.count(kind) == 2
    with torch.no_grad():
        want_t = net(x, lens)
    _like_ort_and_torch(path, {"x": x.numpy(), "lens": lens.numpy()}, want_t,
                        ["probs", "state"])


# ============================================================================ to_onnx
def _check_export(model, x, tmp_path, tol=TOL32):
    """The export passes onnx's checker, and ONNX Runtime and crnn.load_onnx run it as the
    crnn model does."""
    path = tmp_path / "exported.onnx"
    data = crnn.to_onnx(model, path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    want = model(x)
    feed = x.astype(np.int64) if x.dtype.kind in "iu" else x
    _close(_ort(data).run(None, {"input": feed})[0], want, tol, "onnxruntime on the export")
    _close(crnn.load_onnx(data)(feed), want, tol, "crnn.load_onnx on the export")
    return data


@pytest.mark.parametrize("return_sequences", [False, True])
def test_to_onnx_lstm_gru_stack(tmp_path, return_sequences):
    m = crnn.Sequential([
        crnn.LSTM(5, return_sequences=True, input_shape=(None, 3), seed=1),
        crnn.GRU(4, return_sequences=True, reset_after=False, go_backwards=True, seed=2),
        crnn.GRU(6, activation="relu", recurrent_activation="hard_sigmoid",
                 return_sequences=True, seed=3),
        crnn.LSTM(3, recurrent_activation="hard_sigmoid", activation=None, use_bias=False,
                  go_backwards=True, return_sequences=True, seed=4),
        crnn.SimpleRNN(4, activation="relu", return_sequences=True, seed=5),
        crnn.GRU(3, use_bias=False, go_backwards=True, return_sequences=return_sequences,
                 seed=6)])
    x = np.random.default_rng(7).standard_normal((4, 9, 3)).astype(np.float32)
    data = _check_export(m, x, tmp_path)
    ops = [n.op_type for n in onnx.load_from_string(data).graph.node]
    assert [o for o in ops if o in ("RNN", "LSTM", "GRU")] == \
        ["LSTM", "GRU", "GRU", "LSTM", "RNN", "GRU"]


@pytest.mark.parametrize("kind,kw", [("LSTM", {}), ("GRU", {}), ("GRU", {"reset_after": False})])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_to_onnx_bidirectional(tmp_path, kind, kw, merge_mode, return_sequences):
    L = crnn.layers
    m = crnn.Sequential([
        L.Bidirectional(getattr(L, kind)(4, return_sequences=True, input_shape=(None, 3),
                                         seed=1, **kw)),
        L.Bidirectional(getattr(L, kind)(5, activation="relu",
                                         return_sequences=return_sequences, seed=2, **kw),
                        merge_mode=merge_mode),
        L.Dense(3, activation="tanh", seed=3)])
    x = np.random.default_rng(8).standard_normal((3, 6, 3)).astype(np.float32)
    _check_export(m, x, tmp_path)


def _masked_input(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    x[0, 5:] = 0.0        # right-padded
    x[1, 2] = 0.0         # a masked step inside
    x[1, 6] = 0.0
    x[2, :3] = 0.0        # left-padded
    x[3, :] = 0.0         # nothing valid
    return x


@pytest.mark.parametrize("zero_output", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_to_onnx_masking_keeps_keras_semantics(tmp_path, zero_output, return_sequences):
    """Masked steps are skipped (states carry over); the output at a masked step repeats the
    previous one (zeros with zero_output_for_mask), forwards and backwards."""
    L = crnn.layers
    m = crnn.Sequential([
        L.Masking(0.0, input_shape=(None, 3)),
        L.LSTM(4, return_sequences=True, zero_output_for_mask=zero_output, seed=1),
        L.GRU(5, return_sequences=True, go_backwards=True, zero_output_for_mask=zero_output,
              seed=2),
        L.Dense(4, seed=3),
        L.SimpleRNN(3, return_sequences=True, seed=4),
        L.GRU(3, go_backwards=True, reset_after=False, return_sequences=return_sequences,
              zero_output_for_mask=zero_output, seed=5)])
    x = _masked_input(np.random.default_rng(9), (5, 8, 3))
    _check_export(m, x, tmp_path)


@pytest.mark.parametrize("return_sequences", [False, True])
def test_to_onnx_embedding_mask_and_bidirectional(tmp_path, return_sequences):
    L = crnn.layers
    m = crnn.Sequential([L.Embedding(30, 6, mask_zero=True, seed=1),
                         L.Bidirectional(L.LSTM(5, return_sequences=True, seed=2)),
                         L.Bidirectional(L.GRU(4, return_sequences=return_sequences, seed=3),
                                         merge_mode="ave"),
                         L.Dense(2, activation="sigmoid", seed=4)])
    ids = np.random.default_rng(10).integers(1, 30, (5, 8))
    ids[0, 5:] = 0
    ids[1, 2] = 0
    ids[2, :4] = 0
    ids[3, :] = 0
    m(ids)
    _check_export(m, ids, tmp_path)


def test_to_onnx_float64_lstm_gru_run_in_crnn(tmp_path):
    L = crnn.layers
    m = crnn.Sequential([L.Masking(0.0, input_shape=(None, 3), dtype="float64"),
                         L.LSTM(5, return_sequences=True, dtype="float64", seed=1),
                         L.Bidirectional(L.GRU(3, dtype="float64", seed=2))])
    x = _masked_input(np.random.default_rng(11), (4, 7, 3)).astype(np.float64)
    data = crnn.to_onnx(m)
    _close(crnn.load_onnx(data)(x), m(x), TOL64, "float64 export in crnn")
    data32 = crnn.to_onnx(m, dtype="float32")
    _close(_ort(data32).run(None, {"input": x.astype(np.float32)})[0], m(x), TOL32,
           "float32 export in onnxruntime")


def test_to_onnx_refuses_what_one_node_cannot_express():
    L = crnn.layers
    mixed = crnn.Sequential([L.Bidirectional(
        L.LSTM(3, return_sequences=True, input_shape=(None, 2), seed=1),
        backward_layer=L.GRU(3, return_sequences=True, go_backwards=True, seed=2))])
    with pytest.raises(ValueError, match=r"different cells \(LSTM, GRU\)"):
        crnn.to_onnx(mixed)
    with pytest.raises(ValueError, match="return_state=True cannot be exported"):
        crnn.to_onnx(L.LSTM(3, return_state=True, input_shape=(None, 2), seed=1))
