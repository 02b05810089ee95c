"""Export a crnn model to ONNX (the ``RNN`` operator, layout 0), written without the onnx package.

:func:`to_onnx` turns a :class:`crnn.Sequential` (or a single layer) of ``SimpleRNN``,
``Bidirectional(SimpleRNN)``, ``Dense``, ``Embedding``, ``Activation`` (and ``Dropout``, an
identity at inference) into an ONNX model that ONNX Runtime runs with crnn's results::

    crnn.to_onnx(model, "model.onnx")
    sess = onnxruntime.InferenceSession("model.onnx")
    y = sess.run(None, {"input": x})[0]          # == model(x)

Graph: the batch-major input ``(batch, timesteps, features)`` is transposed once to the ONNX RNN
layout 0 ``(timesteps, batch, features)``; consecutive recurrent layers stay time-major; a
``Transpose`` back happens only where a sequence leaves the recurrent part.  Opset 14, IR 8.
Batch and timesteps are dynamic (named ``batch`` and ``timesteps``).

Not exportable (error naming the layer): masks (``Masking``, ``Embedding(mask_zero=True)``),
stateful layers, ``return_state``, ``Bidirectional`` with ``merge_mode=None`` or directions of
different sizes.  A float64 model exports as float64 (valid ONNX that crnn runs, but ONNX
Runtime has no float64 RNN kernel): pass ``dtype="float32"`` for ONNX Runtime.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _protobuf as pb

__all__ = ["to_onnx", "OPSET", "IR_VERSION"]

OPSET = 14
IR_VERSION = 8
_INT64_MIN = -(2 ** 63)
_ACT_OP = {"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid", "softmax": "Softmax"}
_FLOAT = {np.dtype(np.float32): 1, np.dtype(np.float64): 11}


class _Graph:
    """Accumulates nodes and initializers; names are unique by construction."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype
        self.nodes: List[Dict[str, Any]] = []
        self.inits: List[Dict[str, Any]] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value: Any, hint: str, dtype: Any = None) -> str:
        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        code = {np.dtype(np.float32): 1, np.dtype(np.float64): 11,
                np.dtype(np.int64): 7, np.dtype(np.int32): 6}[arr.dtype]
        name = self.name(hint)
        self.inits.append({"name": name, "dims": list(arr.shape), "data_type": code,
                           "raw_data": arr.astype(arr.dtype.newbyteorder("<")).tobytes()})
        return name

    def weight(self, value: np.ndarray, hint: str) -> str:
        return self.const(np.asarray(value, dtype=self.dtype), hint)

    def node(self, op: str, inputs: Sequence[str], hint: str, n_out: int = 1,
             outputs: Optional[List[str]] = None, **attrs: Any) -> List[str]:
        outs = outputs or [self.name(f"{hint}_{op.lower()}") for _ in range(n_out)]
        self.nodes.append({"op_type": op, "input": list(inputs), "output": outs,
                           "name": self.name(hint), "attribute": [_attr(k, v) for k, v in attrs.items()]})
        return outs

    def one(self, op: str, inputs: Sequence[str], hint: str, **attrs: Any) -> str:
        return self.node(op, inputs, hint, **attrs)[0]


def _attr(name: str, value: Any) -> Dict[str, Any]:
    if isinstance(value, float):
        return {"name": name, "type": 1, "f": value}
    if isinstance(value, (bool, int, np.integer)):
        return {"name": name, "type": 2, "i": int(value)}
    if isinstance(value, str):
        return {"name": name, "type": 3, "s": value.encode()}
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, float) for v in value):
        return {"name": name, "type": 6, "floats": list(value)}
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, np.integer)) for v in value):
        return {"name": name, "type": 7, "ints": [int(v) for v in value]}
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return {"name": name, "type": 8, "strings": [v.encode() for v in value]}
    raise TypeError(f"attribute {name}: cannot encode {value!r}")


class _Tensor:
    """The running value: name, layout ('BT' batch-major sequence, 'TB' time-major, 'B' 2-D)
    and width (last dimension)."""

    def __init__(self, name: str, layout: str, width: int) -> None:
        self.name, self.layout, self.width = name, layout, int(width)


def _batch_major(g: _Graph, t: _Tensor) -> _Tensor:
    if t.layout == "TB":
        return _Tensor(g.one("Transpose", [t.name], "to_batch_major", perm=[1, 0, 2]), "BT",
                       t.width)
    return t


def _time_major(g: _Graph, t: _Tensor) -> _Tensor:
    if t.layout == "BT":
        return _Tensor(g.one("Transpose", [t.name], "to_time_major", perm=[1, 0, 2]), "TB",
                       t.width)
    if t.layout != "TB":
        raise ValueError("a recurrent layer needs a 3-D (batch, timesteps, features) input, "
                         "but the previous layer returns 2-D (batch, features)")
    return t


def _layer_kind(layer: Any) -> str:
    return type(layer).__name__


def _rnn_activation(act: Optional[str], where: str) -> Tuple[str, Dict[str, Any]]:
    """ONNX RNN activation name (+ alpha/beta for linear, written as Affine(1, 0))."""
    a = "linear" if act is None else act
    if a in ("tanh", "relu", "sigmoid"):
        return _ACT_OP[a], {}
    if a == "linear":
        return "Affine", {"alpha": 1.0, "beta": 0.0}
    raise ValueError(f"{where}: activation {act!r} has no ONNX RNN equivalent")


def _check_rnn_exportable(layer: Any, where: str) -> None:
    if getattr(layer, "stateful", False):
        raise ValueError(f"{where}: stateful layers cannot be exported (ONNX models keep no "
                         "state between runs); export a stateless copy of the model")
    if getattr(layer, "return_state", False):
        raise ValueError(f"{where}: return_state=True cannot be exported; export a model whose "
                         "layers return only their output")


def _rnn_node(g: _Graph, t: _Tensor, entries: List[List[Optional[np.ndarray]]],
              acts: List[Tuple[str, Dict[str, Any]]], direction: str, hint: str) -> List[str]:
    """One ONNX RNN node from Keras-layout weights per direction; returns [Y, Y_h]."""
    t = _time_major(g, t)
    H = entries[0][1].shape[0]
    W = np.stack([k.T for k, _, _ in entries])                         # (ndir, H, D)
    R = np.stack([r.T for _, r, _ in entries])                         # (ndir, H, H)
    inputs = [t.name, g.weight(W, f"{hint}_W"), g.weight(R, f"{hint}_R")]
    if any(b is not None for _, _, b in entries):
        Bv = np.stack([np.concatenate([np.zeros(H) if b is None else b, np.zeros(H)])
                       for _, _, b in entries])                        # (ndir, 2H) = [Wb, Rb]
        inputs.append(g.weight(Bv, f"{hint}_B"))
    attrs: Dict[str, Any] = {"hidden_size": H, "activations": [a for a, _ in acts]}
    if direction != "forward":
        attrs["direction"] = direction
    if any(extra for _, extra in acts):
        attrs["activation_alpha"] = [extra.get("alpha", 1.0) for _, extra in acts]
        attrs["activation_beta"] = [extra.get("beta", 0.0) for _, extra in acts]
    return g.node("RNN", inputs, hint, n_out=2, **attrs)


def _simple_rnn(g: _Graph, t: _Tensor, layer: Any, where: str) -> _Tensor:
    _check_rnn_exportable(layer, where)
    w = layer.get_weights()
    entry = [w[0], w[1], w[2] if len(w) > 2 else None]
    backwards = bool(getattr(layer, "go_backwards", False))
    H = entry[1].shape[0]
    y, yh = _rnn_node(g, t, [entry], [_rnn_activation(layer.activation, where)],
                      "reverse" if backwards else "forward", layer.name)
    if not layer.return_sequences:
        return _Tensor(g.one("Squeeze", [yh, g.const([0], "axes", np.int64)], layer.name), "B", H)
    seq = g.one("Squeeze", [y, g.const([1], "axes", np.int64)], layer.name)      # (T, B, H)
    if backwards:  # Keras returns a go_backwards sequence in processing (reversed) order
        seq = g.one("Slice", [seq, g.const([-1], "starts", np.int64),
                              g.const([_INT64_MIN], "ends", np.int64),
                              g.const([0], "axes", np.int64), g.const([-1], "steps", np.int64)],
                    layer.name)
    return _Tensor(seq, "TB", H)


def _bidirectional(g: _Graph, t: _Tensor, layer: Any, where: str) -> _Tensor:
    fwd = getattr(layer, "forward_layer", None) or getattr(layer, "layer")
    bwd = getattr(layer, "backward_layer")
    for sub in (fwd, bwd):
        if _layer_kind(sub) != "SimpleRNN":
            raise ValueError(f"{where}: Bidirectional wraps a {_layer_kind(sub)}; only "
                             "SimpleRNN can be exported")
        _check_rnn_exportable(sub, where)
    if getattr(fwd, "go_backwards", False) or not getattr(bwd, "go_backwards", True):
        raise ValueError(f"{where}: only a Bidirectional whose forward layer reads forwards and "
                         "whose backward layer has go_backwards=True can be exported")
    merge = layer.merge_mode
    if merge not in ("concat", "sum", "ave", "mul"):
        raise ValueError(f"{where}: merge_mode={merge!r} cannot be exported (two outputs); "
                         "expected 'concat', 'sum', 'ave' or 'mul'")
    wf, wb = fwd.get_weights(), bwd.get_weights()
    if wf[1].shape != wb[1].shape:
        raise ValueError(f"{where}: forward and backward layers have {wf[1].shape[0]} and "
                         f"{wb[1].shape[0]} units; ONNX RNN needs one hidden_size")
    entries = [[w[0], w[1], w[2] if len(w) > 2 else None] for w in (wf, wb)]
    acts = [_rnn_activation(fwd.activation, where), _rnn_activation(bwd.activation, where)]
    y, yh = _rnn_node(g, t, entries, acts, "bidirectional", layer.name)
    H = wf[1].shape[0]
    if fwd.return_sequences:
        # Y (T, 2, B, H); Keras aligns the backward sequence with the input time, as ONNX does.
        if merge == "concat":
            yt = g.one("Transpose", [y], layer.name, perm=[0, 2, 1, 3])          # (T, B, 2, H)
            out = g.one("Reshape", [yt, g.const([0, 0, 2 * H], "shape", np.int64)], layer.name)
        else:
            out = _merge_dirs(g, y, 1, merge, layer.name)
        return _Tensor(out, "TB", 2 * H if merge == "concat" else H)
    if merge == "concat":
        ht = g.one("Transpose", [yh], layer.name, perm=[1, 0, 2])                # (B, 2, H)
        return _Tensor(g.one("Reshape", [ht, g.const([0, 2 * H], "shape", np.int64)],
                             layer.name), "B", 2 * H)
    return _Tensor(_merge_dirs(g, yh, 0, merge, layer.name), "B", H)


def _merge_dirs(g: _Graph, value: str, axis: int, merge: str, hint: str) -> str:
    op = {"sum": "ReduceSum", "ave": "ReduceMean", "mul": "ReduceProd"}[merge]
    if op == "ReduceSum":  # opset 13+: axes is an input
        return g.one(op, [value, g.const([axis], "axes", np.int64)], hint, keepdims=0)
    return g.one(op, [value], hint, axes=[axis], keepdims=0)


def _activation(g: _Graph, t: _Tensor, act: Optional[str], where: str) -> _Tensor:
    if act in (None, "linear"):
        return t
    if act not in _ACT_OP:
        raise ValueError(f"{where}: activation {act!r} cannot be exported; expected one of "
                         f"{sorted(_ACT_OP)} or 'linear'")
    attrs = {"axis": -1} if act == "softmax" else {}
    return _Tensor(g.one(_ACT_OP[act], [t.name], where, **attrs), t.layout, t.width)


def _dense(g: _Graph, t: _Tensor, layer: Any, where: str) -> _Tensor:
    w = layer.get_weights()
    y = g.one("MatMul", [t.name, g.weight(w[0], f"{layer.name}_kernel")], layer.name)
    if len(w) > 1 and w[1] is not None:
        y = g.one("Add", [y, g.weight(w[1], f"{layer.name}_bias")], layer.name)
    return _activation(g, _Tensor(y, t.layout, w[0].shape[1]), layer.activation, layer.name)


def _embedding(g: _Graph, t: _Tensor, layer: Any, where: str) -> _Tensor:
    if getattr(layer, "mask_zero", False):
        raise ValueError(f"{where}: Embedding(mask_zero=True) cannot be exported: ONNX RNN has "
                         "no per-step masks; export a model without masking")
    emb = layer.get_weights()[0]
    return _Tensor(g.one("Gather", [g.weight(emb, f"{layer.name}_embeddings"), t.name],
                         layer.name, axis=0), "BT", emb.shape[1])


def _flatten_layers(model: Any) -> List[Any]:
    """A model's layers (nested Sequentials flattened), or ``[model]`` for a single layer."""
    if type(model).__name__ == "Sequential" or isinstance(getattr(model, "layers", None), list):
        out = []
        for layer in model.layers:
            out.extend(_flatten_layers(layer))
        return out
    return [model]


def to_onnx(model: Any, path: Any = None, *, input_name: str = "input",
            output_name: str = "output", dtype: Any = None, timesteps: Optional[int] = None,
            opset: int = OPSET) -> bytes:
    """Export a crnn model to ONNX; returns the serialized model and writes it to ``path``.

    Parameters
    ----------
    model : crnn.Sequential or a crnn layer
        Layers: SimpleRNN, Bidirectional(SimpleRNN), Dense, Embedding, Activation, Dropout.
    path : str or os.PathLike, optional
        Where to write the ``.onnx`` file.
    input_name, output_name : str
        Names of the graph's input and output.
    dtype : "float32" or "float64", optional
        Dtype of the weights and the float input (default: the model's).  ONNX Runtime only
        runs float32 RNN nodes.
    timesteps : int, optional
        Fix the time dimension (default: dynamic).
    opset : int
        14 (default) or later.

    Raises
    ------
    ValueError
        A layer or setting that ONNX (or this exporter) cannot express, named in the message.
    """
    if opset < 14:
        raise ValueError(f"opset: got {opset}, expected >= 14 (Reduce*/Squeeze input forms)")
    layers = _flatten_layers(model)
    if not layers:
        raise ValueError("model: has no layers, expected at least one")
    layers = [l for l in layers if _layer_kind(l) not in ("Dropout", "InputLayer")]
    first_dtype = next((getattr(l, "dtype", None) for l in layers if getattr(l, "dtype", None)),
                       "float32")
    dt = np.dtype(dtype if dtype is not None else first_dtype)
    if dt not in _FLOAT:
        raise ValueError(f"dtype: got {dt}, expected float32 or float64")
    g = _Graph(dt)

    for i, layer in enumerate(layers):
        if getattr(layer, "built", True) is False:
            raise ValueError(f"layer {i} {getattr(layer, 'name', '')!r}: has no weights yet; "
                             "build the model (or call it once, or load weights) before export")
    first = layers[0]
    embedding_first = _layer_kind(first) == "Embedding"
    if embedding_first:
        in_type, in_shape = 7, ["batch", timesteps or "timesteps"]
    else:
        # The input width is the first weighted layer's kernel height.
        sub = first
        if _layer_kind(first) == "Bidirectional":
            sub = getattr(first, "forward_layer", None) or getattr(first, "layer")
        weights = sub.get_weights() if hasattr(sub, "get_weights") else []
        if not weights:
            raise ValueError(f"layer 0 {getattr(first, 'name', '')!r} "
                             f"({_layer_kind(first)}): the first layer must be SimpleRNN, "
                             "Bidirectional, Dense or Embedding (it fixes the input width)")
        in_type, in_shape = _FLOAT[dt], ["batch", timesteps or "timesteps",
                                         int(weights[0].shape[0])]

    t = _Tensor(input_name, "BT", 0 if embedding_first else in_shape[-1])
    for i, layer in enumerate(layers):
        kind = _layer_kind(layer)
        where = f"layer {i} {getattr(layer, 'name', kind)!r} ({kind})"
        if kind == "SimpleRNN":
            t = _simple_rnn(g, t, layer, where)
        elif kind == "Bidirectional":
            t = _bidirectional(g, t, layer, where)
        elif kind == "Dense":
            t = _dense(g, t, layer, where)
        elif kind == "Activation":
            t = _activation(g, t, layer.activation, getattr(layer, "name", "activation"))
        elif kind == "Embedding":
            if i:
                raise ValueError(f"{where}: Embedding must be the first layer")
            t = _embedding(g, t, layer, where)
        elif kind == "Masking":
            raise ValueError(f"{where}: masks cannot be exported: ONNX RNN has no per-step "
                             "masks; export a model without Masking")
        else:
            raise ValueError(f"{where}: cannot be exported to ONNX (supported: SimpleRNN, "
                             "Bidirectional(SimpleRNN), Dense, Embedding, Activation, Dropout)")
    t = _batch_major(g, t)
    g.node("Identity", [t.name], "output", outputs=[output_name])

    def vi(name: str, elem: int, shape: List[Any]) -> Dict[str, Any]:
        dims = [{"dim_param": d} if isinstance(d, str) else {"dim_value": int(d)} for d in shape]
        return {"name": name, "type": {"tensor_type": {"elem_type": elem, "shape": {"dim": dims}}}}

    out_shape: List[Any] = ["batch"] + (["timesteps" if timesteps is None else timesteps]
                                        if t.layout == "BT" else []) + [t.width]
    graph = {"node": g.nodes, "name": getattr(model, "name", "crnn_model") or "crnn_model",
             "initializer": g.inits, "input": [vi(input_name, in_type, in_shape)],
             "output": [vi(output_name, _FLOAT[dt], out_shape)]}
    from .._version import __version__
    proto = {"ir_version": IR_VERSION, "opset_import": [{"domain": "", "version": opset}],
             "producer_name": "crnn", "producer_version": __version__, "graph": graph}
    data = pb.encode(proto, pb.MODEL)
    if path is not None:
        with open(os.fspath(path), "wb") as f:
            f.write(data)
    return data
