"""crnn.load_onnx / crnn.to_onnx against ONNX Runtime, torch.onnx.export and crnn.reference.

Tolerances: hidden states 1e-5 absolute in float32 (the project ceiling; crnn and ONNX Runtime
both compute in float32 with different summation orders, a few eps * log2(K) per step with
K = D + H <= 32, and recurrent kernels of norm < 1 so errors do not grow over steps), 1e-12 in
float64 against the float64 reference.  Heads (Linear/Gemm, softmax, sigmoid, means) on O(1)
hidden states with O(1) weights add at most K * eps * max|h| ~ 1e-6 more: the same 1e-5 holds
for every graph output.  Measured differences are ~1e-7.
"""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import crnn
from crnn import reference
from crnn.interop.onnx import OnnxError, OnnxModel

from _onnx_helpers import onnx_model

onnx = pytest.importorskip("onnx", reason="onnx not installed: pip install '.[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install '.[onnx]'")
from onnx import TensorProto as TP  # noqa: E402
from onnx import helper as oh  # noqa: E402
from onnx import numpy_helper  # noqa: E402

TOL32, TOL64 = 1e-5, 1e-12


def _close(got, want, tol, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    err = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) if got.size else 0.0
    assert err <= tol, f"{what}: max abs diff {err:.3g} > {tol:g}"


def _ort(model_bytes):
    return ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])


def _like_ort_and_torch(path, feed, want_torch, names):
    """crnn.load_onnx(path) runs ``feed`` like ONNX Runtime and like torch (``want_torch``,
    tensors in the order of the graph outputs); returns crnn's outputs."""
    got = crnn.load_onnx(path).run(None, feed)
    want_ort = _ort(path).run(None, feed)
    assert len(got) == len(want_ort) == len(want_torch) == len(names)
    for g, w_o, w_t, name in zip(got, want_ort, want_torch, names):
        _close(g, w_o, TOL32, f"{name} vs onnxruntime")
        _close(g, w_t.numpy(), TOL32, f"{name} vs torch")
    return got


# ============================================================================ torch.onnx.export
torch_cases = [
    # (num_layers, nonlinearity, batch_first, bidirectional, bias, head, h0_input)
    (1, "tanh", False, False, True, "linear", False),
    (3, "relu", True, True, True, "linear", False),
    (2, "tanh", False, True, False, None, True),
    (2, "relu", True, False, True, "last_softmax", True),
    (1, "tanh", True, True, True, "mean", False),
]


def _torch_model(L, nl, bf, bi, bias, head):
    import torch
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(4, 6, num_layers=L, nonlinearity=nl, batch_first=bf,
                              bidirectional=bi, bias=bias)
            self.fc = nn.Linear(6 * (2 if bi else 1), 3)

        def forward(self, x, h0=None):
            y, h = self.rnn(x, h0)
            if head == "linear":
                return self.fc(y), h
            if head == "last_softmax":
                last = y[:, -1] if bf else y[-1]
                return torch.softmax(self.fc(last), -1), torch.sigmoid(h[-1])
            if head == "mean":
                return y.mean(1 if bf else 0), h
            return y, h

    torch.manual_seed(L * 7 + bf + 2 * bi)
    net = Net().eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.uniform_(-0.3, 0.3)
            if "weight_hh" in name:
                p.mul_(0.5 / torch.linalg.matrix_norm(p, ord=2))
    return net


@pytest.mark.parametrize("L,nl,bf,bi,bias,head,h0_input", torch_cases,
                         ids=[f"L{c[0]}-{c[1]}-{'bf' if c[2] else 'tf'}-{'bi' if c[3] else 'uni'}"
                              f"-{'b' if c[4] else 'nob'}-{c[5]}-{'h0' if c[6] else 'noh0'}"
                              for c in torch_cases])
def test_torch_export_runs_like_ort_and_torch(tmp_path, L, nl, bf, bi, bias, head, h0_input):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: pip install '.[torch]'")
    net = _torch_model(L, nl, bf, bi, bias, head)
    ndir = 2 if bi else 1
    B, T = 2, 5
    x = torch.randn(B, T, 4) if bf else torch.randn(T, B, 4)
    h0 = torch.randn(L * ndir, B, 6) * 0.5
    args = (x, h0) if h0_input else (x,)
    names = ["x", "h0"] if h0_input else ["x"]
    dyn = {"x": {0: "batch", 1: "time"} if bf else {0: "time", 1: "batch"}}
    if h0_input:
        dyn["h0"] = {1: "batch"}
    path = str(tmp_path / "net.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, args, path, dynamo=False, input_names=names,
                          output_names=["out", "state"], dynamic_axes=dyn)
    model = crnn.load_onnx(path)
    assert isinstance(model, OnnxModel) and model.op_types.count("RNN") == L
    # Other batch and time sizes than the export's: the shape arithmetic must be dynamic.
    B2, T2 = 3, 9
    x2 = torch.randn(B2, T2, 4) if bf else torch.randn(T2, B2, 4)
    h2 = torch.randn(L * ndir, B2, 6) * 0.5
    feed = {"x": x2.numpy()}
    if h0_input:
        feed["h0"] = h2.numpy()
    with torch.no_grad():
        want_torch = net(x2, h2) if h0_input else net(x2)
    assert [o.name for o in model.get_outputs()] == ["out", "state"]
    got = _like_ort_and_torch(path, feed, want_torch, ["out", "state"])
    # Plain call: inputs positionally, outputs in order.
    res = model(*feed.values())
    assert isinstance(res, tuple) and all(np.array_equal(a, b) for a, b in zip(res, got))


def test_torch_export_packed_sequence(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: pip install '.[torch]'")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.RNN(4, 5, num_layers=2, bidirectional=True)

        def forward(self, x, lens):
            y, h = self.rnn(pack_padded_sequence(x, lens, enforce_sorted=False))
            return pad_packed_sequence(y, total_length=x.shape[0])[0], h

    torch.manual_seed(0)
    net = Net().eval()
    x, lens = torch.randn(7, 4, 4), torch.tensor([7, 2, 5, 3])
    path = str(tmp_path / "packed.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x, lens), path, dynamo=False, input_names=["x", "lens"])
    model = crnn.load_onnx(path)
    assert "TopK" in model.op_types   # torch sorts by length inside the graph
    with torch.no_grad():
        want_t = net(x, lens)
    _like_ort_and_torch(path, {"x": x.numpy(), "lens": lens.numpy()}, want_t, ["y", "h"])


# ============================================================================ hand-built RNN
def _rnn_graph(D, H, ndir, *, direction="forward", acts=None, bias=True, h0=False, seq=False,
               layout=0, dtype=TP.FLOAT, seed=0, extra_attrs=None, op="RNN"):
    rng = np.random.default_rng(seed)
    npdt = np.float32 if dtype == TP.FLOAT else np.float64
    W = rng.uniform(-0.5, 0.5, (ndir, H, D)).astype(npdt)
    R = rng.uniform(-1, 1, (ndir, H, H))
    R = (R * (0.5 / np.linalg.norm(R, 2, axis=(1, 2))[:, None, None])).astype(npdt)
    Bv = rng.uniform(-0.5, 0.5, (ndir, 2 * H)).astype(npdt)
    inputs = ["X", "W", "R", "B" if bias else "", "seq" if seq else "", "h0" if h0 else ""]
    while inputs[-1] == "":
        inputs.pop()
    attrs = {"hidden_size": H}
    if direction != "forward":
        attrs["direction"] = direction
    if acts:
        attrs["activations"] = acts
    if layout:
        attrs["layout"] = layout
    attrs.update(extra_attrs or {})
    node = oh.make_node(op, inputs, ["Y", "Y_h"], **attrs)
    xshape = ["T", "B", D] if layout == 0 else ["B", "T", D]
    ins = [oh.make_tensor_value_info("X", dtype, xshape)]
    if seq:
        ins.append(oh.make_tensor_value_info("seq", TP.INT32, ["B"]))
    if h0:
        ins.append(oh.make_tensor_value_info("h0", dtype, [ndir, "B", H] if layout == 0
                                             else ["B", ndir, H]))
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R")]
    if bias:
        inits.append(numpy_helper.from_array(Bv, "B"))
    outs = [oh.make_tensor_value_info("Y", dtype, None), oh.make_tensor_value_info("Y_h", dtype, None)]
    graph = oh.make_graph([node], "rnn", ins, outs, inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 14)])
    model.ir_version = 8
    return model, (W, R, Bv if bias else None)


def _reference(x_tbd, W, R, Bv, ndir, direction, acts, h0=None, lens=None):
    """crnn.reference in float64 on the ONNX weights (layout 0 in, (Y, Y_h) layout 0 out)."""
    H = R.shape[1]
    entries = []
    for d in range(ndir):
        b = None if Bv is None else Bv[d, :H].astype(np.float64) + Bv[d, H:]
        entries.append([W[d].T.astype(np.float64), R[d].T.astype(np.float64), b])
    names = [a.lower() for a in acts] if acts else ["tanh"] * ndir
    xb = np.asarray(x_tbd, np.float64).transpose(1, 0, 2)
    ys, hs = [], []
    dirs = ["forward", "reverse"] if ndir == 2 else [direction]
    for d in range(ndir):
        y, st = reference.simple_rnn_stack(
            xb, [[entries[d]]], activation=names[d], direction=dirs[d],
            initial_state=None if h0 is None else [np.asarray(h0[d], np.float64)],
            lengths=lens, return_sequences=True, return_state=True)
        ys.append(y)
        hs.append(st[0])
    Y = np.stack(ys, axis=2).transpose(1, 2, 0, 3)          # (T, ndir, B, H)
    return Y, np.stack(hs)


rnn_cases = [
    ("forward", None, True, False, False),
    ("reverse", ["Relu"], True, True, False),
    ("bidirectional", ["Tanh", "Tanh"], False, True, True),
    ("bidirectional", ["Sigmoid", "Relu"], True, False, True),   # different per direction
    ("forward", ["Sigmoid"], True, True, True),
    ("reverse", None, False, False, True),
]


@pytest.mark.parametrize("direction,acts,bias,h0,seq", rnn_cases,
                         ids=[f"{c[0]}-{'-'.join(c[1] or ['default'])}-{'b' if c[2] else 'nob'}"
                              f"-{'h0' if c[3] else 'noh0'}-{'seq' if c[4] else 'noseq'}"
                              for c in rnn_cases])
def test_rnn_operator_matches_ort_and_reference(direction, acts, bias, h0, seq):
    D, H, B, T = 3, 5, 4, 8
    ndir = 2 if direction == "bidirectional" else 1
    model, (W, R, Bv) = _rnn_graph(D, H, ndir, direction=direction, acts=acts, bias=bias,
                                   h0=h0, seq=seq)
    data = model.SerializeToString()
    rng = np.random.default_rng(1)
    feed = {"X": rng.standard_normal((T, B, D)).astype(np.float32)}
    if seq:
        feed["seq"] = np.array([8, 3, 1, 6], np.int32)
    if h0:
        feed["h0"] = (rng.standard_normal((ndir, B, H)) * 0.5).astype(np.float32)
    got = crnn.load_onnx(data).run(None, feed)
    want = _ort(data).run(None, feed)
    ref = _reference(feed["X"], W, R, Bv, ndir, direction, acts, feed.get("h0"), feed.get("seq"))
    for g, w, r, name in zip(got, want, ref, ["Y", "Y_h"]):
        assert g.dtype == np.float32
        _close(g, w, TOL32, f"{name} vs onnxruntime")
        _close(g, r, TOL32, f"{name} vs reference")


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_rnn_layout_1_which_onnxruntime_refuses(direction):
    D, H, B, T = 3, 4, 2, 6
    ndir = 2 if direction == "bidirectional" else 1
    model1, (W, R, Bv) = _rnn_graph(D, H, ndir, direction=direction, h0=True, seq=True, layout=1)
    model0, _ = _rnn_graph(D, H, ndir, direction=direction, h0=True, seq=True, layout=0)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    h0 = (rng.standard_normal((B, ndir, H)) * 0.5).astype(np.float32)
    lens = np.array([6, 4], np.int32)
    y1, yh1 = crnn.load_onnx(model1.SerializeToString()).run(
        None, {"X": x, "h0": h0, "seq": lens})
    assert y1.shape == (B, T, ndir, H) and yh1.shape == (B, ndir, H)
    # ONNX Runtime runs the layout-0 twin; layout 1 is its transpose.
    y0, yh0 = _ort(model0.SerializeToString()).run(
        None, {"X": x.transpose(1, 0, 2), "h0": h0.transpose(1, 0, 2), "seq": lens})
    _close(y1, y0.transpose(2, 0, 1, 3), TOL32, "layout-1 Y vs onnxruntime layout 0")
    _close(yh1, yh0.transpose(1, 0, 2), TOL32, "layout-1 Y_h vs onnxruntime layout 0")
    with pytest.raises(Exception):   # documents why crnn's support matters
        _ort(model1.SerializeToString()).run(None, {"X": x, "h0": h0, "seq": lens})


def test_rnn_float64_and_linear_affine():
    """float64 graphs (no ONNX Runtime kernel) and Affine(1, 0) = linear, against the reference."""
    D, H, B, T = 4, 3, 2, 7
    for dtype, tol in ((TP.DOUBLE, TOL64), (TP.FLOAT, TOL32)):
        model, (W, R, Bv) = _rnn_graph(
            D, H, 2, direction="bidirectional", acts=["Affine", "Tanh"], dtype=dtype,
            extra_attrs={"activation_alpha": [1.0, 0.0], "activation_beta": [0.0, 0.0]})
        npdt = np.float64 if dtype == TP.DOUBLE else np.float32
        x = np.random.default_rng(3).standard_normal((T, B, D)).astype(npdt)
        y, yh = crnn.load_onnx(model.SerializeToString())(x)
        assert y.dtype == npdt
        ry, ryh = _reference(x, W, R, Bv, 2, "bidirectional", ["linear", "tanh"])
        _close(y, ry, tol, "Y")
        _close(yh, ryh, tol, "Y_h")


# ============================================================================ the file reader
def test_reader_agrees_with_onnx_package(tmp_path):
    """crnn's own protobuf reader sees the same graph and initializers as the onnx package."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed: pip install '.[torch]'")
    net = _torch_model(2, "tanh", True, True, True, "linear")
    path = str(tmp_path / "m.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(2, 5, 4),), path, dynamo=False, input_names=["x"])
    from crnn.interop import _protobuf as pb
    with open(path, "rb") as f:
        mine = pb.decode(f.read(), pb.MODEL)
    theirs = onnx.load(path)
    assert mine["ir_version"] == theirs.ir_version
    assert [(o["domain"], o["version"]) for o in mine["opset_import"]] == \
        [(o.domain, o.version) for o in theirs.opset_import]
    g = mine["graph"]
    assert [n["op_type"] for n in g["node"]] == [n.op_type for n in theirs.graph.node]
    assert [list(n["input"]) for n in g["node"]] == [list(n.input) for n in theirs.graph.node]
    from crnn.interop.onnx import _tensor
    for mt, tt in zip(g["initializer"], theirs.graph.initializer):
        assert mt["name"] == tt.name
        assert np.array_equal(_tensor(mt, None, "t"), numpy_helper.to_array(tt))


def test_typed_fields_external_data_and_no_onnx_package(tmp_path):
    """Tensors in float_data (not raw_data), external data files, and loading with onnx absent."""
    D, H = 3, 4
    model, (W, R, Bv) = _rnn_graph(D, H, 1, bias=True)
    typed = onnx.ModelProto()
    typed.CopyFrom(model)
    # Rewrite the initializers as typed float_data fields.
    inits = [oh.make_tensor(t.name, TP.FLOAT, list(t.dims),
                            numpy_helper.to_array(t).ravel().tolist(), raw=False)
             for t in typed.graph.initializer]
    del typed.graph.initializer[:]
    typed.graph.initializer.extend(inits)
    assert not typed.graph.initializer[0].raw_data
    x = np.random.default_rng(4).standard_normal((5, 2, D)).astype(np.float32)
    want = _ort(model.SerializeToString()).run(None, {"X": x})
    _close(crnn.load_onnx(typed)(x)[0], want[0], TOL32, "typed float_data")
    ext = str(tmp_path / "ext.onnx")
    onnx.save_model(model, ext, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.data", size_threshold=0)
    assert os.path.exists(tmp_path / "ext.data")
    _close(crnn.load_onnx(ext)(x)[0], want[0], TOL32, "external data")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "want.npy", want[0])
    code = (
        "import sys; sys.modules['onnx'] = None; sys.modules['onnxruntime'] = None\n"
        "import numpy as np, crnn\n"
        f"d = {str(tmp_path)!r}\n"
        "y = crnn.load_onnx(d + '/ext.onnx')(np.load(d + '/x.npy'))[0]\n"
        "assert np.abs(y - np.load(d + '/want.npy')).max() <= 1e-5\n"
        "assert 'onnx' not in [m for m in sys.modules if sys.modules[m] is not None]\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def _varints_one_at_a_time(data):
    """Packed varints read with the scalar reader, as unsigned Python ints (the reference)."""
    from crnn.interop import _protobuf as pb
    out, pos, view = [], 0, memoryview(data)
    while pos < len(data):
        v, pos = pb._varint(view, pos, len(data))
        out.append(v)
    return out


def _varint_encodings(rng, n):
    """n varints of every length from 1 to 10 bytes: 0, 2**63 - 1, 2**64 - 1, negatives
    (10 bytes), and some non-canonical encodings (padded with 0x80 groups)."""
    from crnn.interop import _protobuf as pb
    special = [0, 1, 127, 128, 2**31 - 1, -2**31, 2**32, 2**63 - 1, -1, -2**63, 2**63, 2**64 - 1]
    bits = rng.integers(1, 65, n)
    values = special + [int(rng.integers(0, 2**62)) >> max(0, 62 - int(b)) if b < 64 else
                        -int(rng.integers(1, 2**62)) for b in bits]
    encs = []
    for v in values:
        e = pb._enc_varint(v)
        pad = int(rng.integers(0, 11 - len(e))) if rng.random() < 0.2 else 0
        if pad:   # the same value in len(e) + pad bytes
            e = e[:-1] + bytes([e[-1] | 0x80]) + b"\x80" * (pad - 1) + b"\x00"
        encs.append(e)
    return encs


@pytest.mark.parametrize("chunk", [None, 10, 11, 37])
def test_packed_varints_decode_like_the_scalar_reader(monkeypatch, chunk):
    """The NumPy decoder of packed varints gives exactly the scalar reader's values (unsigned,
    or int64 two's complement) and refuses what it refuses: truncated varints, varints longer
    than 10 bytes and 10-byte ones past 64 bits.  Short runs, which are read one at a time, and
    varints across the decoder's chunk boundaries included."""
    from crnn.interop import _protobuf as pb
    if chunk:
        monkeypatch.setattr(pb, "_VARINT_CHUNK", chunk)
    rng = np.random.default_rng(chunk or 0)
    encs = _varint_encodings(rng, 30000 if chunk is None else 3000)
    for lo, hi in [(0, 1), (0, 3), (5, 25), (0, len(encs))] + \
            [tuple(sorted(rng.integers(0, len(encs), 2))) for _ in range(30)]:
        data = b"".join(encs[lo:hi])
        want = _varints_one_at_a_time(data)
        got = pb._packed("uint64", memoryview(data))
        assert got.dtype == np.uint64 and got.tolist() == want
        got = pb._packed("int64", memoryview(data))
        assert got.dtype == np.int64 and got.tolist() == [pb._signed(v) for v in want]
    data = b"".join(encs)
    for bad in [data + b"\x80", data[:-1] + bytes([data[-1] | 0x80]), b"\xff" * 9,
                data + b"\xff" * 10 + b"\x01", data + b"\xff" * 12,
                data + b"\xff" * 9 + b"\x02", b"\x81" * 9 + b"\x7f" + data]:
        with pytest.raises(pb.DecodeError) as scalar:
            _varints_one_at_a_time(bad)
        with pytest.raises(pb.DecodeError) as vectorised:
            pb._packed("int64", memoryview(bad))
        assert str(vectorised.value) == str(scalar.value)
    for _ in range(300):   # damaged bytes: the same values or the same error
        bad = bytearray(data[:int(rng.integers(1, 400))])
        for i in rng.integers(0, len(bad), 3):
            bad[i] = int(rng.choice([0x80, 0xff, 0x01, rng.integers(0, 256)]))
        try:
            want = _varints_one_at_a_time(bytes(bad))
        except pb.DecodeError as err:
            with pytest.raises(pb.DecodeError, match=str(err)):
                pb._packed("uint64", memoryview(bytes(bad)))
        else:
            assert pb._packed("uint64", memoryview(bytes(bad))).tolist() == want


def test_repeated_numbers_are_arrays_in_file_order():
    """Repeated numbers are 1-D arrays, whether written packed, one by one, or both."""
    from crnn.interop import _protobuf as pb
    one = b"".join(pb._key(7, 0) + pb._enc_varint(v) for v in (-5, 2**40))
    data = pb.encode({"int64_data": [1, -2, 3]}, pb.TENSOR) + one + \
        pb.encode({"int64_data": [2**63 - 1], "float_data": [0.5, -1.25]}, pb.TENSOR) + \
        pb._key(4, 5) + np.float32(3.0).tobytes()
    t = pb.decode(data, pb.TENSOR)
    assert t["int64_data"].dtype == np.int64
    assert t["int64_data"].tolist() == [1, -2, 3, -5, 2**40, 2**63 - 1]
    assert t["float_data"].dtype == np.float32 and t["float_data"].tolist() == [0.5, -1.25, 3.0]
    assert t["dims"].shape == (0,) and t["uint64_data"].dtype == np.uint64
    t = pb.decode(pb.encode({"uint64_data": [2**64 - 1, 7]}, pb.TENSOR), pb.TENSOR)
    assert t["uint64_data"].dtype == np.uint64 and t["uint64_data"].tolist() == [2**64 - 1, 7]


# ============================================================================ run API
def test_run_api_like_onnxruntime():
    model, _ = _rnn_graph(3, 4, 2, direction="bidirectional", h0=True)
    m = crnn.load_onnx(model.SerializeToString())
    assert [a.name for a in m.get_inputs()] == ["X", "h0"]
    assert m.get_inputs()[0].shape == ["T", "B", 3] and m.get_inputs()[0].type == "tensor(float)"
    x = np.random.default_rng(5).standard_normal((6, 2, 3))          # float64: cast to float
    h0 = np.zeros((2, 2, 4), np.float32)
    y, yh = m.run(None, {"X": x, "h0": h0})
    assert y.dtype == np.float32 and y.shape == (6, 2, 2, 4)
    (only_h,) = m.run(["Y_h"], {"X": x, "h0": h0})
    assert np.array_equal(only_h, yh)
    y2, yh2 = m(x, h0=h0)
    assert np.array_equal(y2, y) and np.array_equal(yh2, yh)
    with pytest.raises(ValueError, match=r"missing input\(s\) \['h0'\]"):
        m.run(None, {"X": x})
    with pytest.raises(ValueError, match=r"unknown input\(s\) \['Z'\]"):
        m.run(None, {"X": x, "h0": h0, "Z": x})
    with pytest.raises(ValueError, match=r"output_names: got \['nope'\]"):
        m.run(["nope"], {"X": x, "h0": h0})
    with pytest.raises(ValueError, match=r"input 'X': got shape \(6, 2\), expected rank 3"):
        m.run(None, {"X": x[..., 0], "h0": h0})
    with pytest.raises(ValueError, match=r"input 'X': got shape \(6, 2, 5\)"):
        m.run(None, {"X": np.zeros((6, 2, 5)), "h0": h0})
    with pytest.raises(ValueError, match="initial_h of shape"):
        m.run(None, {"X": x, "h0": np.zeros((2, 3, 4), np.float32)})


# ============================================================================ rejections
def _single_node_model(op, attrs=None, domain=""):
    model, _ = _rnn_graph(3, 4, 1, op=op, extra_attrs=attrs)
    if domain:
        model.graph.node[0].domain = domain
    return model.SerializeToString()


@pytest.mark.parametrize("attrs,match", [
    ({"clip": 3.0}, "clip"),
    ({"activations": ["LeakyRelu"], "activation_alpha": [0.1]}, "LeakyRelu"),
    ({"activations": ["Affine"], "activation_alpha": [2.0], "activation_beta": [0.0]}, "Affine"),
    ({"activations": ["Tanh", "Tanh"]}, "2 activations"),
    ({"layout": 2}, "layout=2"),
    ({"direction": "sideways"}, "sideways"),
])
def test_unsupported_rnn_attributes_rejected(attrs, match):
    with pytest.raises(OnnxError, match=match):
        crnn.load_onnx(_single_node_model("RNN", attrs))


def test_unsupported_ops_and_domains_named():
    x = oh.make_tensor_value_info("x", TP.FLOAT, [1, 3, 8, 8])
    y = oh.make_tensor_value_info("y", TP.FLOAT, None)
    w = numpy_helper.from_array(np.zeros((2, 3, 3, 3), np.float32), "w")
    g = oh.make_graph([oh.make_node("Conv", ["x", "w"], ["c"]),
                       oh.make_node("MaxPool", ["c"], ["y"], kernel_shape=[2, 2])],
                      "g", [x], [y], [w])
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", 14)])
    with pytest.raises(OnnxError, match=r"Conv \(not supported\); MaxPool \(not supported\)"):
        crnn.load_onnx(m.SerializeToString())
    with pytest.raises(OnnxError, match="com.microsoft::RNN"):
        crnn.load_onnx(_single_node_model("RNN", domain="com.microsoft"))


def test_malformed_files_rejected(tmp_path):
    good = _single_node_model("RNN")
    with pytest.raises(OnnxError, match="empty"):
        crnn.load_onnx(b"")
    with pytest.raises(OnnxError, match="not a valid ONNX protobuf"):
        crnn.load_onnx(good[: len(good) // 2])
    with pytest.raises(OnnxError, match="not"):
        crnn.load_onnx(np.random.default_rng(0).bytes(1000))
    with pytest.raises(OnnxError, match="not"):
        crnn.load_onnx(b"PK\x03\x04 this is a zip, not a model")
    with pytest.raises(FileNotFoundError):
        crnn.load_onnx(str(tmp_path / "missing.onnx"))
    with pytest.raises(TypeError, match="expected a path"):
        crnn.load_onnx(42)
    # Edges that nothing produces / nodes out of order.
    x = oh.make_tensor_value_info("x", TP.FLOAT, [2])
    y = oh.make_tensor_value_info("y", TP.FLOAT, [2])
    g = oh.make_graph([oh.make_node("Relu", ["t"], ["y"]), oh.make_node("Neg", ["x"], ["t"])],
                      "g", [x], [y])
    with pytest.raises(OnnxError, match="not topologically sorted"):
        crnn.load_onnx(oh.make_model(g).SerializeToString())
    g = oh.make_graph([oh.make_node("Relu", ["x"], ["t"])], "g", [x], [y])
    with pytest.raises(OnnxError, match=r"outputs \['y'\] are produced by no node"):
        crnn.load_onnx(oh.make_model(g).SerializeToString())
    # Initializer whose raw_data does not match its dims.
    model = onnx.load_from_string(good)
    model.graph.initializer[0].raw_data = b"\0" * 4
    with pytest.raises(OnnxError, match="raw_data holds 4 bytes"):
        crnn.load_onnx(model.SerializeToString())


_TWICE = {
    # case: (nodes, graph inputs, initializers, the name defined twice, who defines it)
    "two_nodes": ([("Neg", ["x"], ["y"]), ("Relu", ["x"], ["y"])], ["x"], [], "y",
                  "Neg node #0 and by Relu node #1"),
    "one_node_twice": ([("TopK", ["x", "k"], ["y", "y"])], ["x"], ["k"], "y",
                       "TopK node #0 and by TopK node #0"),
    "node_and_input": ([("Neg", ["x"], ["x"]), ("Relu", ["x"], ["y"])], ["x"], [], "x",
                       "a graph input and by Neg node #0"),
    "node_and_initializer": ([("Neg", ["x"], ["c"]), ("Add", ["x", "c"], ["y"])], ["x"], ["c"],
                             "c", "an initializer and by Neg node #0"),
    "two_inputs": ([("Neg", ["x"], ["y"])], ["x", "x"], [], "x", "two graph inputs"),
    "two_initializers": ([("Add", ["x", "c"], ["y"])], ["x"], ["c", "c"], "c",
                         "two initializers"),
}


def _graph_defining(nodes, inputs, inits):
    ins = [oh.make_tensor_value_info(n, TP.FLOAT if n != "k" else TP.INT64, [2] if n != "k"
                                     else [1]) for n in inputs]
    values = {"c": np.full(2, 5, np.float32), "k": np.array([2])}
    g = oh.make_graph([oh.make_node(op, i, o) for op, i, o in nodes], "g", ins,
                      [oh.make_tensor_value_info("y", TP.FLOAT, None)],
                      [numpy_helper.from_array(values[n] + k, n) for k, n in enumerate(inits)])
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


@pytest.mark.parametrize("case", sorted(_TWICE))
def test_names_defined_twice_are_refused(case):
    """Every name in a graph is defined once, by a graph input, an initializer or a node
    output; a second definition is refused at load, naming both (the last one used to win
    silently).  ONNX Runtime refuses all of these but two initializers of one name, which it
    warns about; the onnx checker refuses that too."""
    nodes, inputs, inits, name, by = _TWICE[case]
    with pytest.raises(OnnxError, match=rf"the name '{name}' is defined twice, by {by}"):
        crnn.load_onnx(_graph_defining(nodes, inputs, inits))


def test_initializers_listed_as_graph_inputs_are_one_definition():
    """Before IR version 4 every initializer is also a graph input (and later ones may be)."""
    model = crnn.load_onnx(_graph_defining([("Add", ["x", "c"], ["y"])], ["x", "c"], ["c"]))
    assert model.input_names == ["x"]
    np.testing.assert_array_equal(model(np.ones(2, np.float32)), [6, 6])


def test_attribute_errors_name_the_node():
    """An attribute crnn cannot read names its node (by name, else by index and op type)."""
    bad = numpy_helper.from_array(np.zeros(2, np.float32), "v")
    bad.raw_data = b"\0" * 4
    node = oh.make_node("Constant", [], ["y"], name="k", value=bad)
    data = onnx_model([node], [], [("y", TP.FLOAT, None)])
    with pytest.raises(OnnxError, match=r"Constant node 'k': tensor 'v': raw_data holds 4 bytes"):
        crnn.load_onnx(data)
    node = oh.make_node("Relu", ["x"], ["y"])
    node.attribute.append(oh.make_attribute_ref("alpha", TP.FLOAT))
    data = onnx_model([node], [("x", TP.FLOAT, [2])], [("y", TP.FLOAT, None)])
    with pytest.raises(OnnxError, match=r"Relu node #0: attribute 'alpha' refers to a function"):
        crnn.load_onnx(data)
    model, _ = _rnn_graph(3, 4, 1)
    untyped = oh.make_attribute("activations", [b"\xff"])
    untyped.type = 0            # very old files leave the type out
    model.graph.node[0].attribute.append(untyped)
    with pytest.raises(OnnxError, match=r"RNN node #0: got activation .* in attribute activations"):
        crnn.load_onnx(model.SerializeToString())


# ============================================================================ to_onnx
def _check_export(model, x, tmp_path, tol=TOL32):
    path = tmp_path / "exported.onnx"
    data = crnn.to_onnx(model, path)
    assert path.read_bytes() == data
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    want = model(x)
    got_ort = _ort(data).run(None, {"input": x})[0]
    _close(got_ort, want, tol, "onnxruntime on the export vs crnn")
    got_crnn = crnn.load_onnx(data)(x)
    _close(got_crnn, want, tol, "crnn.load_onnx on the export vs crnn")
    return data


@pytest.mark.parametrize("return_sequences", [False, True])
def test_to_onnx_simple_rnn_stack(tmp_path, return_sequences):
    m = crnn.Sequential([
        crnn.SimpleRNN(5, return_sequences=True, input_shape=(None, 3), seed=1),
        crnn.SimpleRNN(4, activation="relu", go_backwards=True, return_sequences=True,
                       use_bias=False, seed=2),
        crnn.SimpleRNN(6, activation="sigmoid", return_sequences=True, seed=3),
        crnn.SimpleRNN(3, activation=None, go_backwards=True, seed=4,
                       return_sequences=return_sequences)])
    x = np.random.default_rng(6).standard_normal((4, 9, 3)).astype(np.float32)
    _check_export(m, x, tmp_path)


def test_to_onnx_float64_model_runs_in_crnn(tmp_path):
    m = crnn.Sequential([crnn.SimpleRNN(5, input_shape=(None, 3), dtype="float64", seed=1)])
    x = np.random.default_rng(7).standard_normal((2, 6, 3))
    data = crnn.to_onnx(m)
    _close(crnn.load_onnx(data)(x), m(x), TOL64, "float64 export in crnn")
    data32 = crnn.to_onnx(m, dtype="float32")     # for ONNX Runtime, which has no f64 RNN
    _close(_ort(data32).run(None, {"input": x.astype(np.float32)})[0], m(x), TOL32, "f32 export")


def test_to_onnx_rejects_what_onnx_cannot_express():
    stateful = crnn.Sequential([crnn.SimpleRNN(3, stateful=True, batch_input_shape=(2, 4, 3))])
    with pytest.raises(ValueError, match="stateful"):
        crnn.to_onnx(stateful)
    unbuilt = crnn.Sequential([crnn.SimpleRNN(3)])
    with pytest.raises(ValueError, match="has no weights yet"):
        crnn.to_onnx(unbuilt)
    unbuilt(np.ones((1, 4, 2)))          # a call builds it
    assert crnn.load_onnx(crnn.to_onnx(unbuilt))(np.ones((1, 4, 2))).shape == (1, 3)


def _crnn_layers():
    L = crnn.layers
    missing = [n for n in ("Dense", "Embedding", "Bidirectional", "Activation", "Masking")
               if not hasattr(L, n)]
    assert not missing, f"crnn.layers lacks {missing}"
    return L


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_to_onnx_bidirectional_dense_activation(tmp_path, merge_mode, return_sequences):
    L = _crnn_layers()
    m = crnn.Sequential([
        L.Bidirectional(L.SimpleRNN(4, return_sequences=True, input_shape=(None, 3), seed=1)),
        L.Bidirectional(L.SimpleRNN(5, activation="relu", return_sequences=return_sequences,
                                    seed=2), merge_mode=merge_mode),
        L.Dense(6, activation="tanh", seed=3),
        L.Dense(3, seed=4),
        L.Activation("softmax")])
    x = np.random.default_rng(8).standard_normal((4, 7, 3)).astype(np.float32)
    _check_export(m, x, tmp_path)


def test_to_onnx_embedding_classifier(tmp_path):
    L = _crnn_layers()
    m = crnn.Sequential([L.Embedding(30, 6, seed=1),
                         L.SimpleRNN(5, return_sequences=True, seed=2),
                         L.SimpleRNN(4, go_backwards=True, seed=3),
                         L.Dense(2, activation="sigmoid", seed=4)])
    ids = np.random.default_rng(9).integers(0, 30, (3, 8))
    m(ids)
    path = tmp_path / "emb.onnx"
    data = crnn.to_onnx(m, path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    want = m(ids)
    _close(_ort(data).run(None, {"input": ids.astype(np.int64)})[0], want, TOL32, "onnxruntime")
    _close(crnn.load_onnx(data)(ids), want, TOL32, "crnn.load_onnx")


# ============================================================================ semantics of ops
def _same_as_ort(data, feed):
    """crnn's outputs equal ONNX Runtime's exactly: same shapes, dtypes and values."""
    got = crnn.load_onnx(data).run(None, feed)
    want = _ort(data).run(None, feed)
    for g, w in zip(got, want):
        assert (g.shape, g.dtype) == (w.shape, w.dtype)
        np.testing.assert_array_equal(g, w)
    return got


def test_scalar_outputs_keep_their_shape():
    """0-d results (Size, 1-D x 1-D MatMul, ReduceSum keepdims=0) come back 0-d, as in ORT."""
    data = onnx_model(
        [oh.make_node("Size", ["x"], ["n"]), oh.make_node("MatMul", ["v", "v"], ["dot"]),
         oh.make_node("ReduceSum", ["x"], ["s"], keepdims=0)],
        [("x", TP.FLOAT, [2, 3]), ("v", TP.FLOAT, [4])],
        [("n", TP.INT64, []), ("dot", TP.FLOAT, []), ("s", TP.FLOAT, [])])
    n, dot, s = _same_as_ort(data, {"x": np.ones((2, 3), np.float32),
                                    "v": np.arange(4, dtype=np.float32)})
    assert n.shape == dot.shape == s.shape == ()


def test_outputs_are_not_shared_with_constants_or_inputs():
    """Writing into a returned array changes neither later runs nor the caller's input."""
    data = onnx_model(
        [oh.make_node("Constant", [], ["c"], value=numpy_helper.from_array(
            np.array([1.0, 2.0], np.float32))),
         oh.make_node("Add", ["c", "c"], ["folded"]), oh.make_node("Identity", ["x"], ["same"]),
         oh.make_node("Reshape", ["x", "shape"], ["view"])],
        [("x", TP.FLOAT, [2])], [("folded", TP.FLOAT, [2]), ("same", TP.FLOAT, [2]),
                                 ("view", TP.FLOAT, [1, 2])],
        {"shape": np.array([1, 2], np.int64)})
    m = crnn.load_onnx(data)
    x = np.array([5.0, 6.0], np.float32)
    for out in m.run(None, {"x": x}):
        out[...] = -1
    folded, same, view = m.run(None, {"x": x})
    assert folded.tolist() == [2.0, 4.0]
    assert x.tolist() == [5.0, 6.0] and same.tolist() == [5.0, 6.0] and view.tolist() == [[5, 6]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
@pytest.mark.parametrize("fmod", [0, 1])
def test_mod_follows_fmod(dtype, fmod):
    """fmod=1: the sign of the dividend (C fmod); fmod=0: the sign of the divisor (floats: as
    opset 28 defines it)."""
    et = {np.float32: TP.FLOAT, np.float64: TP.DOUBLE, np.int32: TP.INT32,
          np.int64: TP.INT64}[dtype]
    data = onnx_model([oh.make_node("Mod", ["a", "b"], ["y"], fmod=fmod)],
                     [("a", et, [6]), ("b", et, [6])], [("y", et, [6])])
    a = np.array([-5, 5, -5, 5, 7, -7], dtype)
    b = np.array([3, -3, -3, 3, 2, 2], dtype)
    (y,) = crnn.load_onnx(data).run(None, {"a": a, "b": b})
    want = np.fmod(a, b) if fmod else np.mod(a, b)
    np.testing.assert_array_equal(y, want.astype(dtype))
    assert y[0] == (-2 if fmod else 1)
    if fmod or np.dtype(dtype).kind != "f":   # ONNX Runtime refuses fmod=0 on floats
        _same_as_ort(data, {"a": a, "b": b})


@pytest.mark.parametrize("dtype,et", [(np.int64, TP.INT64), (np.int32, TP.INT32),
                                      (np.uint64, TP.UINT64), (np.int8, TP.INT8)])
def test_integer_div_is_exact_and_truncates(dtype, et):
    info = np.iinfo(dtype)
    a = np.array([info.max, info.max - 1, 7, 9, info.min, 1], dtype)
    b = np.array([1, 3, 2, 4, 1, 3], dtype)
    if info.min < 0:
        a = np.concatenate([a, np.array([-7, 7, -7, -9, info.min + 1], dtype)])
        b = np.concatenate([b, np.array([2, -2, -2, 4, -1], dtype)])
    data = onnx_model([oh.make_node("Div", ["a", "b"], ["y"])],
                     [("a", et, [len(a)]), ("b", et, [len(a)])], [("y", et, [len(a)])])
    (y,) = crnn.load_onnx(data).run(None, {"a": a, "b": b})
    want = [int(p / q) if abs(int(p)) < 2**52 else (abs(int(p)) // abs(int(q))) *
            (1 if (p < 0) == (q < 0) else -1) for p, q in zip(a.tolist(), b.tolist())]
    assert y.dtype == dtype and y.tolist() == want
    if dtype in (np.int64, np.int32):
        _same_as_ort(data, {"a": a, "b": b})


def _dropout_model(training):
    inits = {} if training is None or training == "input" else {"t": np.array(training)}
    ins = [("x", TP.FLOAT, [4])] + ([("t", TP.BOOL, [])] if training == "input" else [])
    node_in = ["x", "r", "t"] if training is not None else ["x"]
    inits["r"] = np.array(0.5, np.float32)
    return onnx_model([oh.make_node("Dropout", node_in, ["y"])], ins, [("y", TP.FLOAT, [4])], inits)


@pytest.mark.parametrize("training", [True, "input"])
def test_dropout_in_training_mode_is_refused(training):
    with pytest.raises(OnnxError, match="Dropout.*training_mode"):
        crnn.load_onnx(_dropout_model(training))


@pytest.mark.parametrize("training", [None, False])
def test_dropout_in_inference_mode_is_the_identity(training):
    x = np.arange(4, dtype=np.float32)
    (y,) = crnn.load_onnx(_dropout_model(training)).run(None, {"x": x})
    np.testing.assert_array_equal(y, x)


# ============================================================================ RNN attributes
def test_rnn_activation_alpha_beta_are_consumed_in_activation_order():
    """Only activations that take alpha/beta consume them (Affine takes both, Tanh none)."""
    D, H, B, T = 3, 4, 2, 5
    x = np.random.default_rng(10).standard_normal((T, B, D)).astype(np.float32)
    # Tanh takes nothing, so Affine gets alpha 1 and beta 0: the identity, which crnn runs.
    model, (W, R, Bv) = _rnn_graph(D, H, 2, direction="bidirectional", acts=["Tanh", "Affine"],
                                   extra_attrs={"activation_alpha": [1.0],
                                                "activation_beta": [0.0]})
    data = model.SerializeToString()
    got = crnn.load_onnx(data).run(None, {"X": x})
    want = _ort(data).run(None, {"X": x})
    ref = _reference(x, W, R, Bv, 2, "bidirectional", ["tanh", "linear"])
    for g, w, r in zip(got, want, ref):
        _close(g, w, TOL32, "vs onnxruntime")
        _close(g, r, TOL32, "vs reference")
    # Alpha [5, 1]: Affine consumes 5 (ONNX Runtime scales by 5), which crnn cannot run.
    model, _ = _rnn_graph(D, H, 2, direction="bidirectional", acts=["Tanh", "Affine"],
                          extra_attrs={"activation_alpha": [5.0, 1.0],
                                       "activation_beta": [0.0, 0.0]})
    with pytest.raises(OnnxError, match=r"Affine.*activation_alpha=5\.0"):
        crnn.load_onnx(model.SerializeToString())


@pytest.mark.parametrize("attrs,match", [
    ({"activations": ["Affine"]}, "Affine.*no activation_alpha"),     # spec 1.0, ORT 0.0
    ({"activations": ["Affine"], "activation_alpha": [1.0], "activation_beta": [0.5]},
     "activation_beta=0.5"),
    ({"activations": ["ScaledTanh"], "activation_alpha": [1.0], "activation_beta": [1.0]},
     "ScaledTanh"),
    ({"activations": ["HardSigmoid"]}, "HardSigmoid"),
    ({"activations": ["Softsign"]}, "Softsign"),
    ({"activations": 5}, "activations"),
    ({"activations": ["Tanh"], "activation_alpha": 1.0}, "activation_alpha"),
    ({"activations": [b"\xff"]}, "activations"),
    ({"direction": 5}, "direction"),
    ({"hidden_size": 2.5}, "hidden_size"),
    ({"layout": "x"}, "layout"),
])
def test_rnn_attributes_checked_at_load(attrs, match):
    model, _ = _rnn_graph(3, 4, 1)
    node = model.graph.node[0]
    for k, v in attrs.items():
        for a in list(node.attribute):
            if a.name == k:
                node.attribute.remove(a)
        node.attribute.append(oh.make_attribute(k, v))
    with pytest.raises(OnnxError, match=match):
        crnn.load_onnx(model.SerializeToString())


@pytest.mark.parametrize("inputs", [["X"], ["X", "W"], ["X", "", "R"], ["X", "W", ""]])
def test_rnn_without_its_weights_is_refused(inputs):
    model, _ = _rnn_graph(3, 4, 1, bias=False)
    node = model.graph.node[0]
    del node.input[:]
    node.input.extend(inputs)
    with pytest.raises(OnnxError, match="RNN node.*X, W and R"):
        crnn.load_onnx(model.SerializeToString())


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
def test_rnn_zero_length_sequence_returns_initial_h(direction, layout):
    """A sequence of length 0 runs no step: Y_h is its initial_h, Y is 0 at every step.

    ONNX Runtime returns zeros for Y_h here instead; crnn follows the spec (see the module
    docstring of crnn.interop.onnx).
    """
    D, H, B, T = 3, 4, 3, 5
    ndir = 2 if direction == "bidirectional" else 1
    model, (W, R, Bv) = _rnn_graph(D, H, ndir, direction=direction, h0=True, seq=True,
                                   layout=layout)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    h0 = rng.standard_normal((ndir, B, H)).astype(np.float32)
    lens = np.array([0, 5, 2], np.int32)
    feed = {"X": x if layout == 0 else x.transpose(1, 0, 2),
            "h0": h0 if layout == 0 else h0.transpose(1, 0, 2), "seq": lens}
    y, yh = crnn.load_onnx(model.SerializeToString()).run(None, feed)
    if layout == 1:
        y, yh = y.transpose(1, 2, 0, 3), yh.transpose(1, 0, 2)
    np.testing.assert_array_equal(yh[:, 0], h0[:, 0])
    np.testing.assert_array_equal(y[:, :, 0], 0)
    np.testing.assert_array_equal(y[2:, :, 2], 0)
    ry, ryh = _reference(x, W, R, Bv, ndir, direction, None, h0, lens)
    _close(yh, ryh, TOL32, "Y_h vs reference")
    _close(y, ry, TOL32, "Y vs reference")
    if layout == 0:   # ONNX Runtime agrees on every sequence but the empty one
        oy, oyh = _ort(model.SerializeToString()).run(None, feed)
        _close(yh[:, 1:], oyh[:, 1:], TOL32, "Y_h vs onnxruntime")
        _close(y, oy, TOL32, "Y vs onnxruntime")
        assert not np.any(oyh[:, 0])


@pytest.mark.parametrize("attrs,split,match", [
    ({"num_outputs": 0}, None, "num_outputs"),
    ({"num_outputs": 3}, None, "num_outputs=3"),
    ({}, [1, 1], "split"),
    ({}, [2, -1, 3], "split"),
])
def test_split_arguments_checked(attrs, split, match):
    inits = {} if split is None else {"s": np.array(split, np.int64)}
    ins = ["x"] if split is None else ["x", "s"]
    outs = ["a", "b", "c"][:max(2, len(split or []))]
    data = onnx_model([oh.make_node("Split", ins, outs, axis=0, **attrs)],
                     [("x", TP.FLOAT, [4])], [(o, TP.FLOAT, None) for o in outs], inits, opset=18)
    with pytest.raises(OnnxError, match=match):
        crnn.load_onnx(data).run(None, {"x": np.arange(4, dtype=np.float32)})


@pytest.mark.parametrize("opset", [1, 13])
def test_split_sizes_given_as_an_input_are_used(opset):
    """Split takes its sizes as an optional input in opset 1 (also as an attribute) and from
    opset 13 on; opset 1's input was ignored, splitting [0, 1, 2, 3] into equal halves."""
    dt, et = (np.float32, TP.FLOAT) if opset == 1 else (np.int64, TP.INT64)  # opset 1: type T
    data = onnx_model([oh.make_node("Split", ["x", "s"], ["a", "b"], axis=0)],
                      [("x", TP.FLOAT, [4]), ("s", et, [2])],
                      [("a", TP.FLOAT, None), ("b", TP.FLOAT, None)], opset=opset)
    a, b = crnn.load_onnx(data).run(None, {"x": np.arange(4, dtype=np.float32),
                                           "s": np.array([1, 3], dt)})
    assert a.tolist() == [0.0] and b.tolist() == [1.0, 2.0, 3.0]


def test_more_outputs_than_the_operator_has_are_refused_at_load():
    """Add has one output; a second one was accepted and never set (ONNX Runtime refuses it)."""
    data = onnx_model([oh.make_node("Add", ["x", "x"], ["y", "z"])], [("x", TP.FLOAT, [2])],
                      [("y", TP.FLOAT, None)])
    with pytest.raises(OnnxError, match=r"Add node #0: got 2 outputs \['y', 'z'\], expected at "
                                        r"most 1"):
        crnn.load_onnx(data)


def test_output_counts_are_those_of_the_onnx_schemas():
    """The most outputs crnn allows each supported operator is its schema's, in every opset."""
    from crnn.interop.onnx import _MAX_OUTPUTS, SUPPORTED_OPS
    seen = set()
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain in ("", "ai.onnx") and schema.name in SUPPORTED_OPS:
            want = None if schema.max_output >= 2**31 - 1 else schema.max_output
            got = _MAX_OUTPUTS.get(schema.name, 1)
            assert got == want, f"{schema.name} (opset {schema.since_version}): {got} != {want}"
            seen.add(schema.name)
    assert seen == set(SUPPORTED_OPS)


def _one_node_model(op, inputs, opset, **attrs):
    """One ``op`` node reading ``inputs`` (names of the graph input x, or "") into y."""
    return onnx_model([oh.make_node(op, inputs, ["y"], **attrs)], [("x", TP.FLOAT, [2, 2])],
                      [("y", TP.FLOAT, None)], opset=opset)


@pytest.mark.parametrize("op,n,opset,takes", [
    ("Add", 3, 17, "2"), ("Relu", 2, 17, "1"), ("Constant", 1, 17, "0"),
    ("Where", 4, 17, "3"), ("Clip", 4, 13, "1 to 3"), ("Gemm", 4, 13, "2 to 3"),
    ("Squeeze", 3, 13, "1 to 2"), ("Slice", 3, 9, "1"), ("Reshape", 2, 4, "1"),
    ("Split", 2, 11, "1")])
def test_more_inputs_than_the_operator_takes_are_refused_at_load(op, n, opset, takes):
    """An Add with 3 inputs loaded and ignored the third (a Slice of opset 9, which takes its
    starts and ends as attributes, ignored any input after data); ONNX Runtime refuses them."""
    data = _one_node_model(op, ["x"] * n, opset)
    with pytest.raises(OnnxError, match=rf"{op} node #0: got {n} inputs \[.*\], expected "
                                        rf"{takes} \(the inputs {op} takes in opset {opset}\)"):
        crnn.load_onnx(data)


@pytest.mark.parametrize("op,n,opset,takes", [
    ("Add", 1, 17, "2"), ("Identity", 0, 17, "1"), ("Sum", 0, 17, "at least 1"),
    ("Concat", 0, 17, "at least 1"), ("Gather", 1, 17, "2"), ("Where", 2, 17, "3"),
    ("Slice", 2, 13, "3 to 5"), ("Unsqueeze", 1, 13, "2"), ("Gemm", 1, 13, "2 to 3"),
    ("Gemm", 2, 9, "3"), ("Range", 2, 17, "3")])
def test_fewer_inputs_than_the_operator_requires_are_refused_at_load(op, n, opset, takes):
    """An Add with one input loaded and failed when it ran, with an IndexError."""
    data = _one_node_model(op, ["x"] * n, opset, **({"axis": 0} if op == "Concat" else {}))
    with pytest.raises(OnnxError, match=rf"{op} node #0: got {n} inputs \[.*\], expected "
                                        rf"{takes} \(the inputs {op} takes in opset {opset}\)"):
        crnn.load_onnx(data)


@pytest.mark.parametrize("op,inputs,opset,first", [
    ("Add", ["x", ""], 17, "first 2 inputs are"), ("Max", ["", "x"], 17, "first input is"),
    ("Slice", ["x", "", "x"], 13, "first 3 inputs are")])
def test_required_inputs_left_empty_are_refused_at_load(op, inputs, opset, first):
    """An empty name omits an optional input; a required one left empty failed at run time."""
    data = _one_node_model(op, inputs, opset)
    k = inputs.index("")
    with pytest.raises(OnnxError, match=rf"{op} node #0: got inputs \[.*\], whose input {k} is "
                                        rf"empty; expected a name \(the {first} required by "
                                        rf"{op} in opset {opset}\)"):
        crnn.load_onnx(data)


@pytest.mark.parametrize("op,inputs,opset", [
    ("Sum", ["x"] * 4, 17), ("Max", ["x"], 17), ("Concat", ["x"] * 3, 17),
    ("Clip", ["x", "", ""], 13), ("Gemm", ["x", "x"], 13), ("Gemm", ["x", "x", ""], 13)])
def test_input_counts_the_operator_allows_run(op, inputs, opset):
    """Variadic ops take any number of inputs and optional ones may be left out or empty."""
    data = _one_node_model(op, inputs, opset, **({"axis": 0} if op == "Concat" else {}))
    _same_as_ort(data, {"x": np.arange(4, dtype=np.float32).reshape(2, 2)})


def test_input_counts_are_those_of_the_onnx_schemas():
    """The inputs crnn allows each supported operator are its schema's, in every opset."""
    from crnn.interop.onnx import _input_range, SUPPORTED_OPS
    seen = set()
    for opset in range(1, onnx.defs.onnx_opset_version() + 1):
        for op in SUPPORTED_OPS:
            try:
                schema = onnx.defs.get_schema(op, opset)
            except onnx.defs.SchemaError:   # not defined yet in this opset
                continue
            want = (schema.min_input, None if schema.max_input >= 2**31 - 1 else schema.max_input)
            got = _input_range(op, opset)
            assert got == want, f"{op} (opset {opset}): {got} != {want}"
            seen.add(op)
    assert seen == set(SUPPORTED_OPS)
