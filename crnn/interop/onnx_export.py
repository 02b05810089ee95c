"""Export a crnn model to ONNX (the ``RNN``, ``LSTM`` and ``GRU`` operators, layout 0), written
without the onnx package.

:func:`to_onnx` turns a :class:`crnn.Sequential` (or a single layer) of ``SimpleRNN``, ``LSTM``,
``GRU``, ``Bidirectional`` (around one of them), ``Dense``, ``Embedding``, ``Masking``,
``Activation`` (and ``Dropout``, an identity at inference) into an ONNX model that ONNX Runtime
runs with crnn's results::

    crnn.to_onnx(model, "model.onnx")
    sess = onnxruntime.InferenceSession("model.onnx")
    y = sess.run(None, {"input": x})[0]          # == model(x)

Graph: the batch-major input ``(batch, timesteps, features)`` is transposed once to the ONNX
layout 0 ``(timesteps, batch, features)``; consecutive recurrent layers stay time-major; a
``Transpose`` back happens only where a sequence leaves the recurrent part.  Opset 14, IR 8.
Batch and timesteps are dynamic (named ``batch`` and ``timesteps``).  Weights are regrouped
from crnn's (Keras's) gate order into ONNX's (LSTM i, f, c, o -> i, o, f, c; GRU z, r, h as it
is); a GRU's ``reset_after`` is ``linear_before_reset``; activations are ``Tanh``, ``Relu``,
``Sigmoid``, ``Affine`` (alpha 1, beta 0: linear) and ``HardSigmoid`` (alpha 1/6, beta 0.5:
Keras 3's hard_sigmoid).

Masks (``Masking``, ``Embedding(mask_zero=True)``) keep Keras's semantics: each recurrent
layer reads its sequences with the valid steps moved to the front, in order
(``ScatterElements``), runs them with ``sequence_lens``, and puts its outputs back at the input's
steps (``GatherElements``): the previous output repeated at a masked step (zeros with
``zero_output_for_mask``, and inside ``Bidirectional``), as crnn and Keras compute them.

Not exportable (error naming the layer): stateful layers, ``return_state``, ``Bidirectional``
with ``merge_mode=None`` or directions of different sizes or cells.  A float64 model exports as
float64 (valid ONNX that crnn runs, but ONNX Runtime has no float64 recurrent kernels): pass
``dtype="float32"`` for ONNX Runtime.
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
        arr = np.array(value, dtype=dtype, order="C")     # 0-d stays 0-d
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


#: crnn activation -> ONNX activation of the recurrent operators, and its (alpha, beta).
_RECURRENT_ACT = {"tanh": ("Tanh", None), "relu": ("Relu", None), "sigmoid": ("Sigmoid", None),
                  "linear": ("Affine", (1.0, 0.0)),
                  "hard_sigmoid": ("HardSigmoid", (float(np.float32(1 / 6)), 0.5))}
#: crnn cell -> (ONNX operator, ONNX gate blocks as indices of crnn's (Keras's) gate blocks).
#: ONNX's LSTM is i, o, f, c and crnn's i, f, c, o; GRU is z, r, h in both.
_RECURRENT_OP = {"simple": ("RNN", (0,)), "lstm": ("LSTM", (0, 3, 1, 2)),
                 "gru": ("GRU", (0, 1, 2))}
_RECURRENT_LAYERS = ("SimpleRNN", "LSTM", "GRU")


def _check_rnn_exportable(layer: Any, where: str) -> None:
    if getattr(layer, "stateful", False):
        raise ValueError(f"{where}: stateful layers cannot be exported (ONNX models keep no "
                         "state between runs); export a stateless copy of the model")
    if getattr(layer, "return_state", False):
        raise ValueError(f"{where}: return_state=True cannot be exported; export a model whose "
                         "layers return only their output")


def _recurrent_node(g: _Graph, x: str, layers: List[Any], direction: str, hint: str,
                    lens: Optional[str]) -> List[str]:
    """One ONNX RNN / LSTM / GRU node from crnn layers (one per direction, one cell kind);
    ``x`` is time-major.  Returns [Y, Y_h]."""
    cell = layers[0].cell
    op, order = _RECURRENT_OP[cell.kind]
    entries = []      # per direction: [kernel, recurrent_kernel, bias, recurrent_bias]
    for layer in layers:
        w = layer.get_weights()
        e = list(cell.core_entry((w[0], w[1], w[2] if len(w) > 2 else None)))
        entries.append(e + [None] * (4 - len(e)))
    H = entries[0][1].shape[0]
    rows = np.concatenate([np.arange(k * H, (k + 1) * H) for k in order])

    def stack(i: int) -> np.ndarray:
        """Weight ``i`` of every direction, gate blocks in ONNX's order (zeros if absent)."""
        return np.stack([np.zeros(len(rows)) if e[i] is None else np.asarray(e[i])[..., rows]
                         for e in entries])
    inputs = [x, g.weight(np.swapaxes(stack(0), 1, 2), f"{hint}_W"),
              g.weight(np.swapaxes(stack(1), 1, 2), f"{hint}_R")]              # (ndir, G*H, .)
    biased = any(e[2] is not None or e[3] is not None for e in entries)
    inputs.append(g.weight(np.concatenate([stack(2), stack(3)], axis=1), f"{hint}_B")
                  if biased else "")                                            # [Wb, Rb]
    inputs.append(lens or "")
    while inputs[-1] == "":
        inputs.pop()
    acts, alphas, betas = [], [], []
    for layer in layers:
        c = layer.cell
        names = {"simple": [c.activation], "lstm": [c.recurrent_activation, c.activation,
                                                    c.activation],
                 "gru": [c.recurrent_activation, c.activation]}[c.kind]
        for a in names:
            onnx_name, ab = _RECURRENT_ACT[a or "linear"]
            acts.append(onnx_name)
            if ab is not None:      # only activations that take alpha / beta consume them
                alphas.append(ab[0])
                betas.append(ab[1])
    attrs: Dict[str, Any] = {"hidden_size": H, "activations": acts}
    if direction != "forward":
        attrs["direction"] = direction
    if alphas:
        attrs["activation_alpha"] = alphas
        attrs["activation_beta"] = betas
    if cell.kind == "gru":
        attrs["linear_before_reset"] = int(bool(cell.reset_after))
    return g.node(op, inputs, hint, n_out=2, **attrs)


class _Masked:
    """A mask's index tensors, time-major ``(T, B)`` int64, built once per mask.

    For a sequence, ``cs[t]`` counts its valid steps up to and including t, ``rc[t]`` those
    at t or later, ``lens`` all of them.  The valid steps are moved, in order, to the front
    (``pos[t]``: the place of step t; masked steps after them), so the ONNX operator runs them
    with ``sequence_lens``; outputs come back by gathering: at step t a forward run's output is
    its output after its ``cs[t]``-th valid step (Keras repeats the previous output at a
    masked step; zeros before the first), a backward run's after its ``rc[t]``-th.
    """

    def __init__(self, g: _Graph, mask: str, hint: str) -> None:
        i64 = lambda v, h: g.const(np.asarray(v, np.int64), h)  # noqa: E731
        self.m = g.one("Transpose", [mask], hint, perm=[1, 0])                  # (T, B) bool
        m64 = g.one("Cast", [self.m], hint, to=7)
        zero, one = i64(0, "zero"), i64(1, "one")
        self.cs = g.one("CumSum", [m64, zero], hint)
        self.rc = g.one("CumSum", [m64, zero], hint, reverse=1)
        self.lens = g.one("ReduceSum", [m64, i64([0], "axes")], hint, keepdims=0)   # (B,)
        self.lens32 = g.one("Cast", [self.lens], hint, to=6)
        steps = g.one("Gather", [g.one("Shape", [m64], hint), zero], hint, axis=0)
        t = g.one("Unsqueeze", [g.one("Range", [zero, steps, one], hint), i64([1], "axes")], hint)
        cs1 = g.one("Sub", [self.cs, one], hint)
        tail = g.one("Sub", [g.one("Add", [self.lens, t], hint), self.cs], hint)
        self.pos = g.one("Where", [self.m, cs1, tail], hint)
        self.fwd_idx = g.one("Max", [cs1, zero], hint)
        back = g.one("Sub", [self.lens, self.rc], hint)
        self.bwd_idx = g.one("Max", [g.one("Min", [back, g.one("Sub", [self.lens, one], hint)],
                                           hint), zero], hint)
        self.fwd_valid = g.one("Greater", [self.cs, zero], hint)
        self.bwd_valid = g.one("Greater", [self.rc, zero], hint)
        self.last = {False: g.one("Gather", [mask, i64(-1, "last")], hint, axis=1),   # (B,)
                     True: g.one("Gather", [mask, zero], hint, axis=1)}

    def compact(self, g: _Graph, x: str, hint: str) -> str:
        """``x`` (T, B, D) with each sequence's valid steps moved to its front, in order."""
        idx = g.one("Expand", [g.one("Unsqueeze", [self.pos, g.const(np.array([2]), "axes")],
                                     hint), g.one("Shape", [x], hint)], hint)
        return g.one("ScatterElements", [x, idx, x], hint, axis=0)

    def expand(self, g: _Graph, y: str, backward: bool, zero_masked: bool, hint: str) -> str:
        """One direction's compacted output (T, B, H) back at the input's steps, Keras's way."""
        idx = self.pos if zero_masked else (self.bwd_idx if backward else self.fwd_idx)
        valid = self.m if zero_masked else (self.bwd_valid if backward else self.fwd_valid)
        axes2 = g.const(np.array([2]), "axes")
        gather = g.one("Expand", [g.one("Unsqueeze", [idx, axes2], hint),
                                  g.one("Shape", [y], hint)], hint)
        out = g.one("GatherElements", [y, gather], hint, axis=0)
        keep = g.one("Cast", [g.one("Unsqueeze", [valid, axes2], hint)], hint, to=_FLOAT[g.dtype])
        return g.one("Mul", [out, keep], hint)

    def keep_last(self, g: _Graph, h: str, backward: bool, hint: str) -> str:
        """A last output (B, H) zeroed where the last processed step is masked."""
        keep = g.one("Cast", [g.one("Unsqueeze", [self.last[backward], g.const(
            np.array([1]), "axes")], hint)], hint, to=_FLOAT[g.dtype])
        return g.one("Mul", [h, keep], hint)


def _reverse_time(g: _Graph, seq: str, hint: str) -> str:
    return g.one("Slice", [seq, g.const([-1], "starts", np.int64),
                           g.const([_INT64_MIN], "ends", np.int64),
                           g.const([0], "axes", np.int64), g.const([-1], "steps", np.int64)], hint)


def _direction(g: _Graph, y: str, yh: str, d: int, hint: str) -> Tuple[str, str]:
    """Direction ``d`` of a node's Y (T, ndir, B, H) and Y_h (ndir, B, H)."""
    i = g.const(np.asarray(d, np.int64), "dir")
    return (g.one("Gather", [y, i], hint, axis=1), g.one("Gather", [yh, i], hint, axis=0))


def _recurrent(g: _Graph, t: _Tensor, layer: Any, where: str,
               masked: Optional[_Masked]) -> _Tensor:
    """A SimpleRNN, LSTM or GRU layer."""
    _check_rnn_exportable(layer, where)
    t = _time_major(g, t)
    x = masked.compact(g, t.name, layer.name) if masked else t.name
    backwards = bool(getattr(layer, "go_backwards", False))
    H = layer.units
    y, yh = _recurrent_node(g, x, [layer], "reverse" if backwards else "forward", layer.name,
                            masked.lens32 if masked else None)
    y, yh = _direction(g, y, yh, 0, layer.name)
    zero_masked = bool(layer.zero_output_for_mask)
    if not layer.return_sequences:
        if masked and zero_masked:
            yh = masked.keep_last(g, yh, backwards, layer.name)
        return _Tensor(yh, "B", H)
    if masked:
        y = masked.expand(g, y, backwards, zero_masked, layer.name)
    if backwards:  # Keras returns a go_backwards sequence in processing (reversed) order
        y = _reverse_time(g, y, layer.name)
    return _Tensor(y, "TB", H)


def _bidirectional(g: _Graph, t: _Tensor, layer: Any, where: str,
                   masked: Optional[_Masked]) -> _Tensor:
    fwd = getattr(layer, "forward_layer", None) or getattr(layer, "layer")
    bwd = getattr(layer, "backward_layer")
    for sub in (fwd, bwd):
        if _layer_kind(sub) not in _RECURRENT_LAYERS:
            raise ValueError(f"{where}: Bidirectional wraps a {_layer_kind(sub)}; only "
                             f"{', '.join(_RECURRENT_LAYERS)} can be exported")
        _check_rnn_exportable(sub, where)
    if getattr(fwd, "go_backwards", False) or not getattr(bwd, "go_backwards", True):
        raise ValueError(f"{where}: only a Bidirectional whose forward layer reads forwards and "
                         "whose backward layer has go_backwards=True can be exported")
    merge = layer.merge_mode
    if merge not in ("concat", "sum", "ave", "mul"):
        raise ValueError(f"{where}: merge_mode={merge!r} cannot be exported (two outputs); "
                         "expected 'concat', 'sum', 'ave' or 'mul'")
    if fwd.units != bwd.units:
        raise ValueError(f"{where}: forward and backward layers have {fwd.units} and "
                         f"{bwd.units} units; an ONNX node has one hidden_size")
    if (fwd.cell.kind, fwd.cell.reset_after) != (bwd.cell.kind, bwd.cell.reset_after):
        raise ValueError(f"{where}: forward and backward layers are different cells "
                         f"({_layer_kind(fwd)}, {_layer_kind(bwd)}); one ONNX node runs one")
    t = _time_major(g, t)
    x = masked.compact(g, t.name, layer.name) if masked else t.name
    y, yh = _recurrent_node(g, x, [fwd, bwd], "bidirectional", layer.name,
                            masked.lens32 if masked else None)
    H = fwd.units
    halves = []
    for d in (0, 1):
        yd, hd = _direction(g, y, yh, d, layer.name)
        if not fwd.return_sequences:
            halves.append(hd)
        elif masked:   # Keras: inside Bidirectional, masked steps of sequences are zero
            halves.append(masked.expand(g, yd, d == 1, True, layer.name))
        else:
            halves.append(yd)
    if merge == "concat":
        out = g.one("Concat", halves, layer.name, axis=-1)
    elif merge == "sum":
        out = g.one("Add", halves, layer.name)
    elif merge == "mul":
        out = g.one("Mul", halves, layer.name)
    else:
        out = g.one("Div", [g.one("Add", halves, layer.name),
                            g.weight(np.asarray(2.0), "two")], layer.name)
    width = 2 * H if merge == "concat" else H
    return _Tensor(out, "TB" if fwd.return_sequences else "B", width)


def _masking(g: _Graph, t: _Tensor, layer: Any) -> Tuple[_Tensor, str]:
    """Keras ``Masking``: the mask ``any(x != mask_value, -1)`` (B, T) and ``x * mask``."""
    t = _batch_major(g, t)
    value = g.weight(np.asarray(layer.mask_value), f"{layer.name}_value")
    differs = g.one("Cast", [g.one("Not", [g.one("Equal", [t.name, value], layer.name)],
                                   layer.name)], layer.name, to=_FLOAT[g.dtype])
    count = g.one("ReduceSum", [differs, g.const([2], "axes", np.int64)], layer.name, keepdims=0)
    mask = g.one("Cast", [count], layer.name, to=9)
    keep = g.one("Unsqueeze", [g.one("Cast", [mask], layer.name, to=_FLOAT[g.dtype]),
                               g.const([2], "axes", np.int64)], layer.name)
    return _Tensor(g.one("Mul", [t.name, keep], layer.name), "BT", t.width), mask


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


def _embedding(g: _Graph, t: _Tensor, layer: Any, where: str) -> Tuple[_Tensor, Optional[str]]:
    """The looked-up vectors, and the mask ``ids != 0`` (B, T) with ``mask_zero``."""
    emb = layer.get_weights()[0]
    mask = None
    if getattr(layer, "mask_zero", False):
        mask = g.one("Not", [g.one("Equal", [t.name, g.const(np.asarray(0, np.int64), "zero")],
                                   layer.name)], layer.name)
    return _Tensor(g.one("Gather", [g.weight(emb, f"{layer.name}_embeddings"), t.name],
                         layer.name, axis=0), "BT", emb.shape[1]), mask


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
        Layers: SimpleRNN, LSTM, GRU, Bidirectional (around one of them), Dense, Embedding
        (``mask_zero`` too), Masking, Activation, Dropout.
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
        sub = next((l for l in layers if _layer_kind(l) not in ("Masking", "Activation")), first)
        if _layer_kind(sub) == "Bidirectional":
            sub = getattr(sub, "forward_layer", None) or getattr(sub, "layer")
        weights = sub.get_weights() if hasattr(sub, "get_weights") else []
        if not weights:
            raise ValueError(f"layer 0 {getattr(first, 'name', '')!r} "
                             f"({_layer_kind(first)}): the first layer with weights must be "
                             "SimpleRNN, LSTM, GRU, Bidirectional, Dense or Embedding (it fixes "
                             "the input width)")
        in_type, in_shape = _FLOAT[dt], ["batch", timesteps or "timesteps",
                                         int(weights[0].shape[0])]

    t = _Tensor(input_name, "BT", 0 if embedding_first else in_shape[-1])
    mask: Optional[str] = None                 # the Keras mask (B, T) reaching this layer
    contexts: Dict[str, _Masked] = {}
    for i, layer in enumerate(layers):
        kind = _layer_kind(layer)
        where = f"layer {i} {getattr(layer, 'name', kind)!r} ({kind})"
        if kind in _RECURRENT_LAYERS or kind == "Bidirectional":
            masked = None
            if mask is not None:
                if mask not in contexts:
                    contexts[mask] = _Masked(g, mask, "mask")
                masked = contexts[mask]
            step = _recurrent if kind in _RECURRENT_LAYERS else _bidirectional
            t = step(g, t, layer, where, masked)
            if t.layout == "B":
                mask = None
        elif kind == "Dense":
            t = _dense(g, t, layer, where)
        elif kind == "Activation":
            t = _activation(g, t, layer.activation, getattr(layer, "name", "activation"))
        elif kind == "Embedding":
            if i:
                raise ValueError(f"{where}: Embedding must be the first layer")
            t, mask = _embedding(g, t, layer, where)
        elif kind == "Masking":
            t, mask = _masking(g, t, layer)
        else:
            raise ValueError(f"{where}: cannot be exported to ONNX (supported: SimpleRNN, LSTM, "
                             "GRU, Bidirectional, Dense, Embedding, Masking, Activation, "
                             "Dropout)")
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
