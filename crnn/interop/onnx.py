"""Run ONNX models whose recurrent part is the ONNX ``RNN``, ``LSTM`` or ``GRU`` operator, on the
crnn C core.

:func:`load_onnx` reads an ``.onnx`` file with crnn's own protobuf reader (neither ``onnx`` nor
``onnxruntime`` is needed) and returns an :class:`OnnxModel`, a small graph executor: every
``RNN``, ``LSTM`` and ``GRU`` node runs as one call of a compiled :class:`crnn._core.RNN` (built
once at load time when its weights are constants), every other node in NumPy.  It offers ONNX
Runtime's call::

    sess = crnn.load_onnx("model.onnx")
    outputs = sess.run(None, {"x": x})          # like onnxruntime.InferenceSession.run
    y, h = sess(x)                              # graph inputs positionally, outputs in order

Supported: the ``RNN``, ``LSTM`` and ``GRU`` operators (opsets 7, 14, 22) with ``direction``
forward / reverse / bidirectional, ``initial_h`` (and ``initial_c``), ``sequence_lens``, ``layout``
0 and 1 (ONNX Runtime refuses ``layout=1``; crnn does not), GRU's ``linear_before_reset`` 0 and 1,
and the activations crnn's cells compute exactly: Tanh, Relu, Sigmoid, ``HardSigmoid`` with alpha
1/6 and beta 0.5 (Keras 3's ``hard_sigmoid``) and ``Affine`` with alpha 1 and beta 0 (linear), in
any combination per direction, except that an LSTM's cell input and cell output activations (g
and h) must be the same.  Gate orders: ONNX's LSTM weights are in the order i, o, f, c and are regrouped
into crnn's (Keras's) i, f, c, o; GRU is z, r, h in both; ``linear_before_reset=1`` is crnn's
(Keras's) ``reset_after=True``.  Around them, the ops :data:`SUPPORTED_OPS` that
``torch.onnx.export`` emits (shape arithmetic, transposes, slicing, ``Gemm``/``MatMul``/``Add``
heads, activations, reductions, packed-sequence sorting).

Refused at load time with an error naming the node and the attribute or input: ``clip``, LSTM
``input_forget=1`` and peepholes (an input ``P`` that is not a constant of zeros), other
activations or alpha / beta values, and different g and h; also control flow (If/Loop/Scan)
and ops outside the default domain, by name.  crnn's C core has no cell clipping, coupled
input-forget gate or peephole connections, and crnn does not emulate them.  Also refused at load,
as ONNX Runtime refuses them: a node with more outputs than its operator defines, or with more
or fewer inputs than it takes in the model's opset (variadic ops such as ``Concat`` and ``Sum``
take one or more), or with a required input left empty (``""``); a graph that defines a name
twice (by graph inputs, initializers or node outputs; an initializer may also be listed as a
graph input).

Semantics where implementations differ, decided by the ONNX specification:

- ``activation_alpha`` / ``activation_beta`` are consumed in the order of the activations, each
  activation taking only the values it uses (Affine, ScaledTanh and HardSigmoid take an alpha and
  a beta; LeakyRelu, ThresholdedRelu and Elu an alpha; the others nothing), as ONNX Runtime does.
  ``Affine`` without an explicit alpha is refused: the spec's default (that of the ONNX Affine
  operator, alpha 1) and ONNX Runtime's (alpha 0) disagree.
- A ``sequence_lens`` entry of 0 runs no step for that sequence: its ``Y_h`` is its
  ``initial_h`` (the spec defines the hidden state recursively from ``initial_h``, and zero
  steps leave it unchanged; Keras returns the initial state for a fully masked sequence too)
  and its ``Y`` is 0 at every step; an LSTM's ``Y_c`` is likewise its ``initial_c``.  ONNX
  Runtime 1.32 returns zeros as ``Y_h`` and ``Y_c`` instead.
- ``Dropout`` runs as the identity; one whose ``training_mode`` input is not a constant False
  is refused (crnn runs inference only).
- ``Mod`` follows ``fmod`` (``fmod=0`` on floating point inputs as opset 28 defines it: the
  sign of the divisor); integer ``Div`` truncates towards zero in exact integer arithmetic.

Limits (a model that exceeds one is refused with :class:`OnnxError` naming the limit):
:data:`MAX_FOLD_ELEMENTS` and :data:`MAX_FOLD_WORK` bound the constant folding done at load
time, :data:`MAX_TENSOR_RANK` the rank of any tensor, and
:data:`crnn.interop._protobuf.MAX_DEPTH` the nesting of protobuf messages.  Tensors read from
the file, inline or as external data, must be backed by that many bytes, and external data must
be a regular file inside the model's directory (symbolic links are resolved first).
"""
from __future__ import annotations

import os
import stat
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .. import _core
from . import _protobuf as pb

__all__ = ["OnnxModel", "NodeArg", "load_onnx", "SUPPORTED_OPS", "OnnxError"]


class OnnxError(ValueError):
    """A malformed ONNX model, or one crnn cannot run."""


MAX_FOLD_ELEMENTS = 2**26
"""Largest tensor, in elements, that constant folding may create while loading a model.

Nodes fed only by constants run once, at load time; a node whose result would be larger
(``ConstantOfShape``, ``Expand``, ``Range``, broadcasting, ``MatMul``, ``Gather``, ``Concat``
...) is refused before anything is allocated.  Folding in models that exporters write
handles shapes and small index tensors; weights are stored already folded.
"""

MAX_FOLD_WORK = 2**28
"""Element operations constant folding may spend on one model, in total.

Each folded node is charged the elements of its inputs and its output (``MatMul`` and ``Gemm``:
``M * N * K``); about a second of NumPy at most, however many nodes the file holds.
"""

MAX_TENSOR_RANK = 32
"""Highest rank of a tensor in the file (NumPy's own limit is 64)."""


# TensorProto.DataType -> NumPy dtype (names as ONNX Runtime prints them in NodeArg.type).
_DTYPES: Dict[int, Tuple[Any, str]] = {
    1: (np.float32, "float"), 2: (np.uint8, "uint8"), 3: (np.int8, "int8"),
    4: (np.uint16, "uint16"), 5: (np.int16, "int16"), 6: (np.int32, "int32"),
    7: (np.int64, "int64"), 9: (np.bool_, "bool"), 10: (np.float16, "float16"),
    11: (np.float64, "double"), 12: (np.uint32, "uint32"), 13: (np.uint64, "uint64")}
_DTYPE_NAMES = {0: "UNDEFINED", 8: "STRING", 14: "COMPLEX64", 15: "COMPLEX128", 16: "BFLOAT16",
                17: "FLOAT8E4M3FN", 18: "FLOAT8E4M3FNUZ", 19: "FLOAT8E5M2", 20: "FLOAT8E5M2FNUZ",
                21: "UINT4", 22: "INT4", 23: "FLOAT4E2M1", 24: "FLOAT8E8M0", 25: "UINT2",
                26: "INT2"}
_ONNX_TYPE = {np.dtype(v[0]): k for k, v in _DTYPES.items()}


def _np_dtype(code: int, what: str) -> np.dtype:
    if code not in _DTYPES:
        raise OnnxError(f"{what}: got data type {_DTYPE_NAMES.get(code, code)}, which crnn "
                        f"cannot run; expected one of {sorted(v[1] for v in _DTYPES.values())}")
    return np.dtype(_DTYPES[code][0])


def _dims(dims: Sequence[int], what: str) -> Tuple[Tuple[int, ...], int]:
    """Validated dims and their element count (Python ints: no overflow)."""
    if len(dims) > MAX_TENSOR_RANK:
        raise OnnxError(f"{what}: got rank {len(dims)}, more than the limit {MAX_TENSOR_RANK}")
    dims = tuple(int(d) for d in dims)
    if any(d < 0 for d in dims):
        raise OnnxError(f"{what}: got negative dims {dims}")
    count = 1
    for d in dims:
        count *= d
    nonzero = 1
    for d in dims:
        nonzero *= max(d, 1)
    if nonzero > 2**60:   # NumPy refuses such a shape even with no elements
        raise OnnxError(f"{what}: got dims {dims}, whose non-zero dims multiply past 2**60")
    return dims, count


def _external_bytes(info: Dict[str, str], base_dir: Optional[str], nbytes: int,
                    what: str) -> bytes:
    """Read an external tensor: a regular file inside ``base_dir``, ``nbytes`` at ``offset``."""
    loc = info.get("location", "")
    if base_dir is None:
        raise OnnxError(f"{what}: stored in external file {loc!r}, but the model was not loaded "
                        "from a path; pass a path, or base_dir=")
    if not loc or "\0" in loc or os.path.isabs(loc) or ".." in loc.replace("\\", "/").split("/"):
        raise OnnxError(f"{what}: external data location {loc!r} must be a relative path "
                        "inside the model's directory")
    nums = {}
    for key in ("offset", "length"):
        v = info.get(key)
        if v is not None and not (v.isascii() and v.isdigit()):
            raise OnnxError(f"{what}: external data {key} {v!r}, expected a non-negative integer")
        nums[key] = None if v is None else int(v)
    offset = nums["offset"] or 0
    if nums["length"] is not None and nums["length"] != nbytes:
        raise OnnxError(f"{what}: external data length {nums['length']}, expected {nbytes}")
    root = os.path.realpath(base_dir)
    path = os.path.realpath(os.path.join(root, loc))
    if os.path.commonpath([root, path]) != root:
        raise OnnxError(f"{what}: external data path {loc!r} escapes the model's directory "
                        f"{root!r} (through a symbolic link)")
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except (OSError, ValueError) as err:
        raise OnnxError(f"{what}: cannot read external data {loc!r}: {err}") from None
    try:
        # checked before fdopen, which refuses a directory itself (and would leave fd open)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OnnxError(f"{what}: external data {loc!r} is not a regular file")
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        if offset + nbytes > st.st_size:
            raise OnnxError(f"{what}: external file {loc!r} holds {st.st_size} bytes, expected "
                            f"{nbytes} at offset {offset}")
        f.seek(offset)
        raw = f.read(nbytes)
    if len(raw) != nbytes:
        raise OnnxError(f"{what}: external file {loc!r} holds {len(raw)} bytes at offset "
                        f"{offset}, expected {nbytes}")
    return raw


def _tensor(t: Dict[str, Any], base_dir: Optional[str], what: str) -> np.ndarray:
    """TensorProto dict -> ndarray (zero-copy and read-only for raw_data).

    Every tensor must be backed by as many bytes (or values) in the file as its dims need, so
    reading one costs at most what the file holds.
    """
    name = t["name"] or what
    dt = _np_dtype(t["data_type"], f"tensor {name!r}")
    dims, count = _dims(t["dims"], f"tensor {name!r}")
    if t["data_location"] == 1:
        info = {e["key"]: e["value"] for e in t["external_data"]}
        raw = _external_bytes(info, base_dir, count * dt.itemsize, f"tensor {name!r}")
        return np.frombuffer(raw, dt.newbyteorder("<")).astype(dt, copy=False).reshape(dims)
    raw = t["raw_data"]
    if len(raw):
        if len(raw) != count * dt.itemsize:
            raise OnnxError(f"tensor {name!r}: raw_data holds {len(raw)} bytes, expected "
                            f"{count * dt.itemsize} for dims {dims} of {dt.name}")
        return np.frombuffer(raw, dt.newbyteorder("<")).astype(dt, copy=False).reshape(dims)
    if dt == np.float32:
        vals = np.asarray(t["float_data"], np.float32)
    elif dt == np.float64:
        vals = np.asarray(t["double_data"], np.float64)
    elif dt == np.int64:
        vals = np.asarray(t["int64_data"], np.int64)
    elif dt in (np.uint32, np.uint64):
        vals = np.asarray(t["uint64_data"], np.uint64).astype(dt)
    elif dt == np.float16:
        vals = np.asarray(t["int32_data"], np.int32).astype(np.uint16).view(np.float16)
    else:  # int32, int16, int8, uint16, uint8, bool
        vals = np.asarray(t["int32_data"], np.int64).astype(dt)
    if vals.size != count:
        raise OnnxError(f"tensor {name!r}: holds {vals.size} values, expected {count} for "
                        f"dims {dims}")
    return vals.reshape(dims)


class NodeArg:
    """A graph input or output as ONNX Runtime describes it: ``name``, ``shape``, ``type``."""

    __slots__ = ("name", "shape", "type", "dtype")

    def __init__(self, name: str, shape: Optional[List[Any]], type: str,
                 dtype: Optional[np.dtype]) -> None:
        self.name, self.shape, self.type, self.dtype = name, shape, type, dtype

    def __repr__(self) -> str:
        return f"NodeArg(name={self.name!r}, type={self.type!r}, shape={self.shape})"


def _value_info(vi: Dict[str, Any], what: str) -> NodeArg:
    tt = (vi["type"] or {}).get("tensor_type")
    if vi["type"] is not None and tt is None:
        kinds = [k for k, v in vi["type"].items() if v not in (None, b"") and k != "tensor_type"]
        raise OnnxError(f"{what} {vi['name']!r}: got a {kinds[0] if kinds else 'non-tensor'} "
                        "type, expected a tensor")
    if tt is None:
        return NodeArg(vi["name"], None, "tensor(unknown)", None)
    dt = _np_dtype(tt["elem_type"], f"{what} {vi['name']!r}") if tt["elem_type"] else None
    shape = None
    if tt["shape"] is not None:
        # A named dimension keeps its name (as ONNX Runtime shows it); an unset one is None.
        shape = [d["dim_param"] or (d["dim_value"] if d["dim_value"] > 0 else None)
                 for d in tt["shape"]["dim"]]
    tname = f"tensor({_DTYPES[tt['elem_type']][1]})" if dt is not None else "tensor(unknown)"
    return NodeArg(vi["name"], shape, tname, dt)


# ============================================================================= ops
# Each op: fn(attrs, inputs, ctx) -> list of outputs.  ``inputs`` has None for an omitted
# optional input ("" in the node).  ``ctx`` is the _Node (attrs, opset, cache).

def _axis(axis: int, ndim: int, what: str) -> int:
    if not -ndim <= axis < max(ndim, 1):
        raise OnnxError(f"{what}: got axis {axis}, expected one in [{-ndim}, {ndim - 1}]")
    return axis % ndim if ndim else 0


def _ints(a: Optional[np.ndarray]) -> List[int]:
    return [] if a is None else [int(v) for v in np.asarray(a).reshape(-1)]


def _op_identity(at, x, n):
    return [x[0]]


def _op_constant(at, x, n):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in at:
            v = at[key]
            if key == "value":
                return [v]
            dt = np.float32 if "float" in key else np.int64
            return [np.asarray(v, dt)]
    raise OnnxError(f"{n.describe()}: got no value attribute crnn supports "
                    "(value, value_float(s), value_int(s))")


def _op_shape(at, x, n):
    shape = np.asarray(x[0].shape, np.int64)
    r = len(shape)
    start, end = at.get("start", 0), at.get("end", r)
    start = min(max(start + r if start < 0 else start, 0), r)
    end = min(max(end + r if end < 0 else end, 0), r)
    return [shape[start:end]]


def _op_size(at, x, n):
    return [np.asarray(x[0].size, np.int64)]


def _op_gather(at, x, n):
    data, idx = x[0], np.asarray(x[1])
    axis = _axis(at.get("axis", 0), data.ndim, n.describe())
    if idx.dtype.kind not in "iu":
        raise OnnxError(f"{n.describe()}: got indices of dtype {idx.dtype}, expected integers")
    dim = data.shape[axis]
    if idx.size and (idx.min() < -dim or idx.max() >= dim):
        raise OnnxError(f"{n.describe()}: got indices in [{idx.min()}, {idx.max()}], expected "
                        f"[{-dim}, {dim - 1}] for axis {axis} of shape {data.shape}")
    return [np.take(data, idx.astype(np.int64), axis=axis)]


def _op_gather_elements(at, x, n):
    data, idx = x[0], np.asarray(x[1]).astype(np.int64)
    axis = _axis(at.get("axis", 0), data.ndim, n.describe())
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    return [np.take_along_axis(data, idx, axis=axis)]


def _axes_arg(at, x, n, pos: int, opset_from: int) -> Optional[List[int]]:
    if n.opset >= opset_from:
        return None if len(x) <= pos or x[pos] is None else _ints(x[pos])
    return at.get("axes")


def _op_unsqueeze(at, x, n):
    axes = _axes_arg(at, x, n, 1, 13)
    if not axes:
        raise OnnxError(f"{n.describe()}: got no axes")
    out_rank = x[0].ndim + len(axes)
    axes = sorted(_axis(a, out_rank, n.describe()) for a in axes)
    return [np.expand_dims(x[0], tuple(axes))]


def _op_squeeze(at, x, n):
    axes = _axes_arg(at, x, n, 1, 13)
    if not axes:
        return [np.squeeze(x[0])]
    axes = tuple(_axis(a, x[0].ndim, n.describe()) for a in axes)
    for a in axes:
        if x[0].shape[a] != 1:
            raise OnnxError(f"{n.describe()}: cannot squeeze axis {a} of shape {x[0].shape}")
    return [np.squeeze(x[0], axis=axes)]


def _op_concat(at, x, n):
    arrs = [a for a in x if a is not None]
    axis = _axis(at["axis"], arrs[0].ndim, n.describe())
    return [np.concatenate(arrs, axis=axis)]


def _op_slice(at, x, n):
    data = x[0]
    if n.opset < 10:
        starts, ends = at["starts"], at["ends"]
        axes = at.get("axes", list(range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = _ints(x[1]), _ints(x[2])
        axes = _ints(x[3]) if len(x) > 3 and x[3] is not None else list(range(len(starts)))
        steps = _ints(x[4]) if len(x) > 4 and x[4] is not None else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise OnnxError(f"{n.describe()}: starts, ends, axes and steps differ in length")
    index = [slice(None)] * data.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = _axis(a, data.ndim, n.describe())
        if st == 0:
            raise OnnxError(f"{n.describe()}: got step 0")
        # Python's slice clamping is ONNX's: negatives count from the end, out-of-range
        # values (INT64_MAX, -INT64_MAX) clamp to the ends for either sign of step.
        index[a] = slice(s, e, st)
    return [data[tuple(index)]]


def _op_transpose(at, x, n):
    perm = at.get("perm")
    return [np.transpose(x[0], perm if perm else None)]


def _op_reshape(at, x, n):
    data = x[0]
    shape = list(at["shape"]) if n.opset < 5 else _ints(x[1])
    allowzero = at.get("allowzero", 0)
    if not allowzero:
        shape = [data.shape[i] if s == 0 and i < data.ndim else s for i, s in enumerate(shape)]
    try:
        return [data.reshape(shape)]
    except ValueError as err:
        raise OnnxError(f"{n.describe()}: cannot reshape {data.shape} to {shape}: {err}") from None


def _op_flatten(at, x, n):
    data = x[0]
    axis = at.get("axis", 1)
    axis = axis + data.ndim if axis < 0 else axis
    lead = int(np.prod(data.shape[:axis], dtype=np.int64))
    return [data.reshape(lead, int(np.prod(data.shape[axis:], dtype=np.int64)))]


def _op_expand(at, x, n):
    shape = _ints(x[1])
    out = np.broadcast_shapes(x[0].shape, tuple(shape))
    return [np.broadcast_to(x[0], out)]


def _op_constant_of_shape(at, x, n):
    shape = _ints(x[0])
    if any(d < 0 for d in shape):
        raise OnnxError(f"{n.describe()}: got shape {shape}, expected non-negative dims")
    v = at.get("value")
    if v is not None and np.size(v) != 1:
        raise OnnxError(f"{n.describe()}: got a value of shape {np.shape(v)}, expected one element")
    fill = np.zeros((), np.float32) if v is None else np.asarray(v).reshape(())
    return [np.full(shape, fill, dtype=fill.dtype)]


def _op_cast(at, x, n):
    return [np.asarray(x[0]).astype(_np_dtype(at["to"], n.describe()))]


def _op_cast_like(at, x, n):
    return [np.asarray(x[0]).astype(x[1].dtype)]


def _op_range(at, x, n):
    start, limit, delta = (np.asarray(v).reshape(()) for v in x[:3])
    return [np.arange(start, limit, delta, dtype=np.result_type(start, limit, delta))]


def _binary(fn: Callable) -> Callable:
    def op(at, x, n):
        a, b = x[0], x[1]
        if n.opset < 7 and at.get("broadcast"):
            axis = at.get("axis")
            if axis is not None and b.ndim:
                b = b.reshape(b.shape + (1,) * (a.ndim - axis - b.ndim))
        out = fn(a, b)
        if isinstance(a, np.ndarray) and out.dtype != a.dtype and a.dtype.kind in "fiu" and \
                fn not in _COMPARE:
            out = out.astype(a.dtype)
        return [out]
    return op


def _div(a, b):
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        # Truncating division in exact integer arithmetic (no detour through float64, which
        # rounds above 2**53): a - fmod(a, b) is a multiple of b, so floor division is exact.
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            return np.floor_divide(np.subtract(a, np.fmod(a, b)), b)
    return np.divide(a, b)


def _op_mod(at, x, n):
    a, b = x[0], x[1]
    if at.get("fmod", 0):   # C fmod: the result has the sign of the dividend
        with np.errstate(divide="ignore", invalid="ignore"):
            return [np.fmod(a, b).astype(a.dtype, copy=False)]
    # fmod=0: A - floor(A / B) * B, the sign of the divisor (Python's %).  Opsets before 28
    # required fmod=1 for floating point inputs; opset 28 defines fmod=0 for them this way.
    with np.errstate(divide="ignore", invalid="ignore"):
        return [np.mod(a, b).astype(a.dtype, copy=False)]


_COMPARE = (np.equal, np.less, np.greater, np.less_equal, np.greater_equal,
            np.logical_and, np.logical_or, np.logical_xor)


def _variadic(fn: Callable) -> Callable:
    def op(at, x, n):
        out = x[0]
        for a in x[1:]:
            out = fn(out, a)
        return [out]
    return op


def _unary(fn: Callable) -> Callable:
    def op(at, x, n):
        return [fn(x[0])]
    return op


def _sigmoid(z):
    # Same numerically safe logistic as crnn.reference, keeping the dtype.
    z = np.asarray(z)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1 / (1 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1 + ez)
    return out


def _op_leaky_relu(at, x, n):
    a = x[0].dtype.type(at.get("alpha", 0.01))
    return [np.where(x[0] >= 0, x[0], x[0] * a)]


def _op_elu(at, x, n):
    a = x[0].dtype.type(at.get("alpha", 1.0))
    return [np.where(x[0] >= 0, x[0], a * np.expm1(np.minimum(x[0], 0)))]


def _op_hard_sigmoid(at, x, n):
    a, b = at.get("alpha", 0.2), at.get("beta", 0.5)
    t = x[0].dtype.type
    return [np.clip(x[0] * t(a) + t(b), 0, 1).astype(x[0].dtype)]


def _op_clip(at, x, n):
    if n.opset < 11:
        lo, hi = at.get("min"), at.get("max")
    else:
        lo = None if len(x) < 2 or x[1] is None else x[1]
        hi = None if len(x) < 3 or x[2] is None else x[2]
    out = x[0]
    if lo is not None:
        out = np.maximum(out, np.asarray(lo, out.dtype))
    if hi is not None:
        out = np.minimum(out, np.asarray(hi, out.dtype))
    return [out]


def _softmax_like(log: bool) -> Callable:
    def op(at, x, n):
        data = x[0]
        if n.opset < 13:
            # Opsets 1-12 coerce the input to 2-D at `axis` (default 1).
            axis = _axis(at.get("axis", 1), data.ndim, n.describe())
            flat = data.reshape(int(np.prod(data.shape[:axis], dtype=np.int64)), -1)
            return [op13(flat, 1).reshape(data.shape)]
        return [op13(data, _axis(at.get("axis", -1), data.ndim, n.describe()))]

    def op13(data, axis):
        z = data - np.max(data, axis=axis, keepdims=True)
        if log:
            return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))
        e = np.exp(z)
        return e / np.sum(e, axis=axis, keepdims=True)
    return op


def _op_matmul(at, x, n):
    return [np.matmul(x[0], x[1])]


def _op_gemm(at, x, n):
    a, b = x[0], x[1]
    if at.get("transA", 0):
        a = a.T
    if at.get("transB", 0):
        b = b.T
    y = a @ b
    alpha, beta = at.get("alpha", 1.0), at.get("beta", 1.0)
    if alpha != 1.0:
        y = y * y.dtype.type(alpha)
    if len(x) > 2 and x[2] is not None and beta != 0.0:
        c = x[2] if beta == 1.0 else x[2] * x[2].dtype.type(beta)
        y = y + c
    return [y]


def _reduce(fn: Callable, axes_input_from: int) -> Callable:
    def op(at, x, n):
        data = x[0]
        axes = _axes_arg(at, x, n, 1, axes_input_from)
        keep = bool(at.get("keepdims", 1))
        if not axes:
            if at.get("noop_with_empty_axes", 0):
                return [data]
            axes = list(range(data.ndim))
        axes_t = tuple(_axis(a, data.ndim, n.describe()) for a in axes)
        kw = {}
        if fn in (np.max, np.min) and data.size == 0:
            # The spec: an empty set reduces to the identity (-inf / the type's minimum for max).
            big = fn is np.min
            if data.dtype.kind == "f":
                kw["initial"] = np.inf if big else -np.inf
            elif data.dtype.kind == "b":
                kw["initial"] = big
            else:
                info = np.iinfo(data.dtype)
                kw["initial"] = info.max if big else info.min
        out = fn(data, axis=axes_t, keepdims=keep, **kw)
        return [np.asarray(out).astype(data.dtype, copy=False)]
    return op


def _op_argmax(at, x, n, fn=np.argmax):
    data = x[0]
    axis = _axis(at.get("axis", 0), data.ndim, n.describe())
    if at.get("select_last_index", 0):
        flipped = np.flip(data, axis)
        out = data.shape[axis] - 1 - fn(flipped, axis=axis)
    else:
        out = fn(data, axis=axis)
    out = out.astype(np.int64)
    return [np.expand_dims(out, axis) if at.get("keepdims", 1) else out]


def _op_topk(at, x, n):
    data = x[0]
    k = int(at["k"]) if n.opset < 10 else int(np.asarray(x[1]).reshape(-1)[0])
    axis = _axis(at.get("axis", -1), data.ndim, n.describe())
    largest = at.get("largest", 1)
    # ONNX: among equal values the lower index comes first; a stable sort gives that.
    key = -data if largest else data
    if data.dtype.kind == "u" and largest:
        key = np.iinfo(data.dtype).max - data
    idx = np.argsort(key, axis=axis, kind="stable")
    idx = np.take(idx, np.arange(k), axis=axis)
    return [np.take_along_axis(data, idx, axis=axis), idx.astype(np.int64)]


_SCATTER_REDUCTIONS = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _op_scatter_elements(at, x, n):
    data, idx, upd = x[0], np.asarray(x[1]).astype(np.int64), x[2]
    axis = _axis(at.get("axis", 0), data.ndim, n.describe())
    if idx.shape != np.shape(upd) or idx.ndim != data.ndim:
        raise OnnxError(f"{n.describe()}: got indices {idx.shape} and updates {np.shape(upd)}, "
                        f"expected equal shapes of rank {data.ndim}")
    dim = data.shape[axis]
    if idx.size and (idx.min() < -dim or idx.max() >= dim):
        raise OnnxError(f"{n.describe()}: got indices in [{idx.min()}, {idx.max()}], expected "
                        f"[{-dim}, {dim - 1}] for axis {axis} of shape {data.shape}")
    idx = np.where(idx < 0, idx + dim, idx)
    out = np.array(data, copy=True)
    red = at.get("reduction", "none")
    if red == "none":
        np.put_along_axis(out, idx, upd, axis=axis)
    else:   # duplicates combine, in index order
        where = list(np.indices(idx.shape, sparse=True))
        where[axis] = idx
        _SCATTER_REDUCTIONS[red].at(out, tuple(where), np.asarray(upd, out.dtype))
    return [out]


def _op_where(at, x, n):
    return [np.where(x[0], x[1], x[2])]


def _op_not(at, x, n):
    return [np.logical_not(x[0])]


def _op_split(at, x, n):
    data = x[0]
    what = n.describe()
    axis = _axis(at.get("axis", 0), data.ndim, what)
    split = at.get("split") if n.opset < 13 else None
    if len(x) > 1 and x[1] is not None:   # an input in opset 1 and from 13 on
        split = _ints(x[1])
    parts, dim = len(n.outputs), data.shape[axis]
    if not split:
        # num_outputs is checked at load time; the last chunk is smaller if dim does not divide.
        size = -(-dim // parts)
        split = [max(0, min(size, dim - i * size)) for i in range(parts)]
    elif len(split) != parts or any(v < 0 for v in split) or sum(split) != dim:
        raise OnnxError(f"{what}: got split {list(split)}, expected {parts} non-negative sizes "
                        f"summing to {dim} (axis {axis} of shape {data.shape})")
    bounds = np.cumsum(split)[:-1]
    return list(np.split(data, bounds, axis=axis))


def _op_dropout(at, x, n):
    # Inference: identity; the optional mask output is all True.  A training_mode input that
    # is not a constant False was refused at load time.
    return [x[0], np.ones(x[0].shape, np.bool_)]


def _op_cumsum(at, x, n):
    data = x[0]
    ax = _ints(x[1])
    if len(ax) != 1:
        raise OnnxError(f"{n.describe()}: got axis {ax}, expected one integer")
    axis = _axis(ax[0], data.ndim, n.describe())
    rev = bool(at.get("reverse", 0))
    src = np.flip(data, axis) if rev else data
    out = np.cumsum(src, axis=axis, dtype=data.dtype)
    if at.get("exclusive", 0):
        out = np.concatenate([np.zeros_like(np.take(out, [0], axis=axis)),
                              np.take(out, np.arange(out.shape[axis] - 1), axis=axis)], axis=axis)
    return [np.flip(out, axis) if rev else out]


def _op_pow(at, x, n):
    out = np.power(x[0], x[1])
    return [out.astype(x[0].dtype) if out.dtype != x[0].dtype else out]


# --------------------------------------------------------------------------- RNN, LSTM, GRU
#: The recurrent operators: the crnn cell, gates, activations per direction and their defaults,
#: the operator's own attributes, its inputs, its outputs, and the ONNX gate blocks in crnn's
#: (Keras's) gate order (ONNX LSTM is i, o, f, c; crnn i, f, c, o; GRU is z, r, h in both).
_RNN_INPUTS = ("X", "W", "R", "B", "sequence_lens", "initial_h")
_RECURRENT: Dict[str, Dict[str, Any]] = {
    "RNN": {"cell": "simple", "gates": 1, "acts": ("Tanh",), "attrs": (), "inputs": _RNN_INPUTS,
            "outputs": 2, "order": (0,)},
    "LSTM": {"cell": "lstm", "gates": 4, "acts": ("Sigmoid", "Tanh", "Tanh"),
             "attrs": ("input_forget",), "inputs": _RNN_INPUTS + ("initial_c", "P"),
             "outputs": 3, "order": (0, 2, 3, 1)},
    "GRU": {"cell": "gru", "gates": 3, "acts": ("Sigmoid", "Tanh"),
            "attrs": ("linear_before_reset",), "inputs": _RNN_INPUTS, "outputs": 2,
            "order": (0, 1, 2)},
}
#: Attributes every recurrent operator has (``output_sequence``: opset 1 only; crnn computes
#: ``Y`` whenever the node names it).
_RECURRENT_ATTRS = {"activations", "direction", "hidden_size", "layout", "clip",
                    "activation_alpha", "activation_beta", "output_sequence"}
#: How many values of activation_alpha / activation_beta each activation of the spec consumes
#: (ONNX Runtime's table; lower-case names).
_ACT_ARGS = {"relu": (0, 0), "tanh": (0, 0), "sigmoid": (0, 0), "affine": (1, 1),
             "leakyrelu": (1, 0), "thresholdedrelu": (1, 0), "scaledtanh": (1, 1),
             "hardsigmoid": (1, 1), "elu": (1, 0), "softsign": (0, 0), "softplus": (0, 0)}
#: HardSigmoid(x) = max(0, min(1, alpha * x + beta)) is crnn's (Keras 3's) hard_sigmoid,
#: relu6(x + 3) / 6, for alpha = 1/6 (as float32) and beta = 0.5.
_HARD_SIGMOID_ALPHA = float(np.float32(1 / 6))
_SUPPORTED_ACTS = ("Tanh, Relu, Sigmoid, HardSigmoid with activation_alpha 1/6 and "
                   "activation_beta 0.5, or Affine with activation_alpha 1 and activation_beta 0")


def _attr_of(at: Dict[str, Any], key: str, kinds: Tuple[type, ...], what: str,
             expected: str) -> Any:
    """``at[key]`` (None if absent) after checking its type, e.g. a list of floats."""
    v = at.get(key)
    if v is None:
        return None
    ok = isinstance(v, kinds) and not isinstance(v, bool)
    if ok and isinstance(v, list):
        item = {"strings": str, "floats": float, "ints": int}[expected.split()[-1]]
        ok = all(isinstance(e, item) for e in v)
    if not ok:
        raise OnnxError(f"{what}: got attribute {key}={v!r}, expected {expected}")
    return v


def _core_activation(name: str, alpha: Optional[float], beta: Optional[float],
                     what: str) -> str:
    """The crnn activation that computes ONNX activation ``name`` with these alpha / beta
    exactly; OnnxError naming the node and the attribute otherwise."""
    key = name.lower()
    if key in ("tanh", "relu", "sigmoid"):
        return key
    if key == "affine":
        # Affine(x) = alpha * x + beta; crnn runs only the identity (alpha 1, beta 0).
        if alpha is None:
            raise OnnxError(f"{what}: got activation Affine with no activation_alpha; the "
                            "spec's default (1.0) and ONNX Runtime's (0.0) differ, so give "
                            "it explicitly (crnn runs Affine as the identity: alpha 1.0, "
                            "beta 0.0)")
        if alpha != 1.0 or (beta or 0.0) != 0.0:
            raise OnnxError(f"{what}: got activation Affine with activation_alpha={alpha}, "
                            f"activation_beta={beta}; crnn supports Affine only as the "
                            "identity (alpha 1.0, beta 0.0)")
        return "linear"
    if key == "hardsigmoid":
        a = 0.2 if alpha is None else alpha
        b = 0.5 if beta is None else beta
        if a == _HARD_SIGMOID_ALPHA and b == 0.5:
            return "hard_sigmoid"
        raise OnnxError(f"{what}: got activation HardSigmoid with activation_alpha={a}, "
                        f"activation_beta={b}; crnn runs HardSigmoid only as Keras 3's "
                        f"hard_sigmoid (alpha 1/6 = {_HARD_SIGMOID_ALPHA}, beta 0.5)")
    raise OnnxError(f"{what}: got activation {name!r} in attribute activations, which crnn "
                    f"cannot run; expected {_SUPPORTED_ACTS}")


def _recurrent_config(node: "_Node") -> Dict[str, Any]:
    """Validate an RNN, LSTM or GRU node's inputs and attributes once, at load time."""
    spec = _RECURRENT[node.op]
    at = node.attrs
    what = node.describe()
    ins = node.inputs + [""] * (3 - len(node.inputs))
    if not all(ins[:3]):
        raise OnnxError(f"{what}: got inputs {node.inputs}, expected inputs X, W and R (the "
                        "first three are required)")
    if len(node.inputs) > len(spec["inputs"]):
        raise OnnxError(f"{what}: got {len(node.inputs)} inputs {node.inputs}, expected at most "
                        f"{len(spec['inputs'])} ({', '.join(spec['inputs'])})")
    extra = sorted(set(at) - _RECURRENT_ATTRS - set(spec["attrs"]))
    if extra:
        raise OnnxError(f"{what}: got unknown attribute(s) {extra}")
    if "clip" in at:
        raise OnnxError(f"{what}: got attribute clip={at['clip']}, which crnn does not support "
                        "(the C core has no cell clipping); re-export without clip")
    if node.op == "LSTM":
        forget = _attr_of(at, "input_forget", (int,), what, "an integer")
        if forget:
            raise OnnxError(f"{what}: got attribute input_forget={forget}, which crnn does not "
                            "support (the C core's LSTM has separate input and forget gates); "
                            "expected 0")
    reset_after = False
    if node.op == "GRU":
        lbr = _attr_of(at, "linear_before_reset", (int,), what, "an integer")
        if lbr not in (None, 0, 1):
            raise OnnxError(f"{what}: got attribute linear_before_reset={lbr}, expected 0 or 1")
        reset_after = bool(lbr)
    direction = _attr_of(at, "direction", (str,), what, "a string")
    direction = "forward" if direction is None else direction
    if direction not in ("forward", "reverse", "bidirectional"):
        raise OnnxError(f"{what}: got direction {direction!r}, expected 'forward', 'reverse' "
                        "or 'bidirectional'")
    hidden = _attr_of(at, "hidden_size", (int,), what, "an integer")
    layout = _attr_of(at, "layout", (int,), what, "an integer")
    layout = 0 if layout is None else layout
    if layout not in (0, 1):
        raise OnnxError(f"{what}: got layout={layout}, expected 0 or 1")
    ndir = 2 if direction == "bidirectional" else 1
    per = len(spec["acts"])
    acts = _attr_of(at, "activations", (list,), what, "a list of strings") or []
    if not acts:
        acts = list(spec["acts"]) * ndir
    if len(acts) == per and ndir == 2:
        acts = acts * 2
    if len(acts) != per * ndir:
        raise OnnxError(f"{what}: got {len(acts)} activations {acts}, expected {per * ndir} "
                        f"({per} per direction) for direction {direction!r}")
    alphas = list(_attr_of(at, "activation_alpha", (list,), what, "a list of floats") or [])
    betas = list(_attr_of(at, "activation_beta", (list,), what, "a list of floats") or [])
    # The spec: the values are consumed in the order of the activations, by the activations
    # that take them (ONNX Runtime does the same); values left over are not used.
    names = []
    for a in acts:
        n_alpha, n_beta = _ACT_ARGS.get(a.lower(), (0, 0))
        al = alphas.pop(0) if n_alpha and alphas else None
        be = betas.pop(0) if n_beta and betas else None
        names.append(_core_activation(a, al, be, what))
    # Per direction: (activation, recurrent_activation) of the core.  RNN: f; LSTM: f for the
    # gates, g for the candidate and h for the cell output (one activation in crnn); GRU: f, g.
    pairs = []
    for d in range(ndir):
        f = names[d * per:(d + 1) * per]
        if node.op == "RNN":
            pairs.append((f[0], "sigmoid"))
            continue
        if node.op == "LSTM" and f[1] != f[2]:
            got = acts[d * per:(d + 1) * per]
            raise OnnxError(f"{what}: got activations {got} in attribute activations: the cell "
                            f"input (g: {got[1]}) and the cell output (h: {got[2]}) differ; "
                            "crnn's LSTM uses one activation for both")
        pairs.append((f[1], f[0]))
    return {"op": node.op, "cell": spec["cell"], "gates": spec["gates"], "order": spec["order"],
            "direction": direction, "ndir": ndir, "acts": pairs, "layout": layout,
            "hidden_size": hidden, "reset_after": reset_after}


def _recurrent_handles(cfg: Dict[str, Any], W: np.ndarray, R: np.ndarray,
                       B: Optional[np.ndarray], dtype: np.dtype,
                       what: str) -> List[Tuple[Any, int]]:
    """Compiled handles for one RNN / LSTM / GRU node: one for all directions, or one per
    direction when the two use different activations.  Returns ``[(handle, n_directions)]``."""
    ndir, G = cfg["ndir"], cfg["gates"]
    if W.ndim != 3 or R.ndim != 3 or W.shape[0] != ndir or R.shape[0] != ndir:
        raise OnnxError(f"{what}: got W {W.shape} and R {R.shape}, expected "
                        f"({ndir}, {G}*hidden_size, input_size) and ({ndir}, {G}*hidden_size, "
                        "hidden_size)")
    H = R.shape[2]
    if H < 1 or R.shape[1] != G * H or W.shape[1] != G * H:
        raise OnnxError(f"{what}: got W {W.shape} and R {R.shape}, expected "
                        f"({ndir}, {G * max(H, 1)}, input_size) and ({ndir}, {G * max(H, 1)}, "
                        f"{max(H, 1)})")
    if cfg["hidden_size"] is not None and cfg["hidden_size"] != H:
        raise OnnxError(f"{what}: got hidden_size={cfg['hidden_size']}, but R has shape {R.shape}")
    if B is not None and B.shape != (ndir, 2 * G * H):
        raise OnnxError(f"{what}: got B of shape {B.shape}, expected ({ndir}, {2 * G * H}) = "
                        "[Wb, Rb]")
    # Gate blocks of H rows in crnn's order; the weights transposed to (in, gates * H).
    rows = np.concatenate([np.arange(g * H, (g + 1) * H) for g in cfg["order"]])
    entries = []
    for d in range(ndir):
        entry = [W[d][rows].T, R[d][rows].T]
        if B is not None:
            entry += [B[d, :G * H][rows], B[d, G * H:][rows]]
        entries.append(entry)
    kw = {"cell": cfg["cell"], "reset_after": cfg["reset_after"], "dtype": dtype}
    acts = cfg["acts"]
    try:
        if ndir == 1 or acts[0] == acts[1]:
            act, ract = acts[0]
            return [(_core.RNN([entries], activation=act, recurrent_activation=ract,
                               direction=cfg["direction"], **kw), ndir)]
        return [(_core.RNN([[entries[d]]], activation=acts[d][0],
                           recurrent_activation=acts[d][1],
                           direction=("forward", "reverse")[d], **kw), 1) for d in range(2)]
    except (ValueError, TypeError) as err:   # e.g. input size 0, or a bool W
        got = ", ".join(f"{k} {v.dtype} {v.shape}" for k, v in (("W", W), ("R", R), ("B", B))
                        if v is not None)
        raise OnnxError(f"{what}: got {got}, which crnn's core refuses: {err}") from None


def _check_peepholes(node: "_Node", consts: Dict[str, np.ndarray]) -> None:
    """An LSTM node's input P (peepholes) must be absent or a constant of zeros: crnn's LSTM
    cell has no peephole connections.  Checked at load time."""
    name = node.inputs[7] if len(node.inputs) > 7 else ""
    if not name:
        return
    P = consts.get(name)
    if P is None or np.any(P):
        why = "a graph input" if P is None else "a constant with non-zero values"
        raise OnnxError(f"{node.describe()}: got input P (peepholes) {name!r}, {why}; crnn's "
                        "LSTM cell has no peephole connections (only an all-zero P, which "
                        "changes nothing, is accepted)")
    ndir = node.rnn["ndir"]
    if P.ndim != 2 or P.shape[0] != ndir or P.shape[1] % 3:
        raise OnnxError(f"{node.describe()}: got P of shape {P.shape}, expected ({ndir}, "
                        "3*hidden_size)")


def _state_input(s: Optional[np.ndarray], name: str, cfg: Dict[str, Any], batch: int, H: int,
                 what: str) -> List[Optional[np.ndarray]]:
    """initial_h / initial_c as one ``(batch, H)`` array per direction (None entries if absent)."""
    ndir = cfg["ndir"]
    if s is None:
        return [None] * ndir
    want = (ndir, batch, H) if cfg["layout"] == 0 else (batch, ndir, H)
    if s.shape != want:
        raise OnnxError(f"{what}: got {name} of shape {s.shape}, expected {want}")
    return [s[d] if cfg["layout"] == 0 else s[:, d] for d in range(ndir)]


def _op_recurrent(at, x, n):
    cfg = n.rnn
    x = list(x) + [None] * (8 - len(x))
    X, W, R, B, seq, h0, c0 = x[:7]
    what = n.describe()
    if X is None or W is None or R is None:
        raise OnnxError(f"{what}: inputs X, W and R are required")
    if X.dtype.kind != "f":
        raise OnnxError(f"{what}: got X of dtype {X.dtype}, expected float")
    dt = np.dtype(np.float64) if X.dtype == np.float64 else np.dtype(np.float32)
    if X.ndim != 3:
        raise OnnxError(f"{what}: got X of shape {X.shape}, expected 3-D "
                        f"({'(batch, seq, input)' if cfg['layout'] else '(seq, batch, input)'})")
    xb = X.transpose(1, 0, 2) if cfg["layout"] == 0 else X            # (B, T, D)
    batch, steps = xb.shape[0], xb.shape[1]
    key = (id(W), id(R), id(B), dt.name)
    cached = n.cache.get("handles")
    if cached is not None and cached[0] == key:
        handles = cached[1]
    else:
        handles = _recurrent_handles(cfg, W, R, B, dt, what)
        if n.const_weights:
            n.cache["handles"] = (key, handles, (W, R, B))
    H = R.shape[2]
    ndir = cfg["ndir"]
    if W.shape[2] != xb.shape[2]:
        raise OnnxError(f"{what}: got X with input size {xb.shape[2]}, expected {W.shape[2]} "
                        f"(from W of shape {W.shape})")
    hs0 = _state_input(h0, "initial_h", cfg, batch, H, what)
    lstm = cfg["cell"] == "lstm"
    cs0 = _state_input(c0, "initial_c", cfg, batch, H, what) if lstm else [None] * ndir
    states0 = None
    if h0 is not None or c0 is not None:
        states0 = [[h, c] if lstm else h for h, c in zip(hs0, cs0)]
    lens = None
    if seq is not None:
        lens = np.asarray(seq)
        if lens.shape != (batch,) or lens.dtype.kind not in "iu":
            raise OnnxError(f"{what}: got sequence_lens {lens.dtype} of shape {lens.shape}, "
                            f"expected int32 of shape ({batch},)")
        if batch and (lens.min() < 0 or lens.max() > steps):
            raise OnnxError(f"{what}: got sequence_lens in [{lens.min()}, {lens.max()}], "
                            f"expected [0, {steps}]")
    outs: List[Optional[np.ndarray]] = [None] * _RECURRENT[n.op]["outputs"]
    want_y = len(n.outputs) > 0 and n.outputs[0] != ""
    ys, hs, cs = [], [], []
    d0 = 0
    for handle, nd in handles:
        out, states = handle.forward(xb, initial_state=None if states0 is None
                                     else states0[d0:d0 + nd], lengths=lens,
                                     return_sequences=want_y, return_state=True)
        if want_y:
            ys.append(out)
        for s in states:
            hs.append(s[0] if lstm else s)
            cs.append(s[1] if lstm else None)
        d0 += nd
    axis = 0 if cfg["layout"] == 0 else 1
    if want_y:
        y = ys[0] if len(ys) == 1 else np.concatenate(ys, axis=2)    # (B, T, ndir*H)
        y = y.reshape(batch, steps, ndir, H)
        outs[0] = y.transpose(1, 2, 0, 3) if cfg["layout"] == 0 else y
    outs[1] = np.stack(hs, axis=axis)
    if lstm:
        outs[2] = np.stack(cs, axis=axis)
    if X.dtype != dt:  # float16 in, float16 out
        outs = [None if o is None else o.astype(X.dtype) for o in outs]
    return outs


# --------------------------------------------------------------------------- registry
SUPPORTED_OPS: Dict[str, Callable] = {
    "Identity": _op_identity, "Constant": _op_constant, "Shape": _op_shape, "Size": _op_size,
    "Gather": _op_gather, "GatherElements": _op_gather_elements,
    "Unsqueeze": _op_unsqueeze, "Squeeze": _op_squeeze, "Concat": _op_concat,
    "Slice": _op_slice, "Transpose": _op_transpose, "Reshape": _op_reshape,
    "Flatten": _op_flatten, "Expand": _op_expand, "ConstantOfShape": _op_constant_of_shape,
    "Cast": _op_cast, "CastLike": _op_cast_like, "Range": _op_range, "Split": _op_split,
    "Add": _binary(np.add), "Sub": _binary(np.subtract), "Mul": _binary(np.multiply),
    "Div": _binary(_div), "Mod": _op_mod, "Pow": _op_pow,
    "Equal": _binary(np.equal), "Less": _binary(np.less), "Greater": _binary(np.greater),
    "LessOrEqual": _binary(np.less_equal), "GreaterOrEqual": _binary(np.greater_equal),
    "And": _binary(np.logical_and), "Or": _binary(np.logical_or), "Xor": _binary(np.logical_xor),
    "Not": _op_not, "Where": _op_where,
    "Max": _variadic(np.maximum), "Min": _variadic(np.minimum), "Sum": _variadic(np.add),
    "Neg": _unary(np.negative), "Abs": _unary(np.abs), "Sqrt": _unary(np.sqrt),
    "Exp": _unary(np.exp), "Log": _unary(np.log), "Reciprocal": _unary(np.reciprocal),
    "Floor": _unary(np.floor), "Ceil": _unary(np.ceil),
    "Relu": _unary(lambda z: np.maximum(z, z.dtype.type(0))), "Tanh": _unary(np.tanh),
    "Sigmoid": _unary(_sigmoid), "LeakyRelu": _op_leaky_relu, "Elu": _op_elu,
    "HardSigmoid": _op_hard_sigmoid, "Clip": _op_clip,
    "Softmax": _softmax_like(False), "LogSoftmax": _softmax_like(True),
    "MatMul": _op_matmul, "Gemm": _op_gemm,
    "ReduceSum": _reduce(np.sum, 13), "ReduceMean": _reduce(np.mean, 18),
    "ReduceMax": _reduce(np.max, 18), "ReduceMin": _reduce(np.min, 18),
    "ReduceProd": _reduce(np.prod, 18),
    "ArgMax": _op_argmax, "ArgMin": lambda at, x, n: _op_argmax(at, x, n, np.argmin),
    "TopK": _op_topk, "ScatterElements": _op_scatter_elements,
    "Dropout": _op_dropout, "CumSum": _op_cumsum,
    "RNN": _op_recurrent, "LSTM": _op_recurrent, "GRU": _op_recurrent,
}
#: The most outputs a node of each op may declare (the ONNX schemas'; None: any number);
#: every op not listed has one.
_MAX_OUTPUTS: Dict[str, Optional[int]] = {
    "Split": None, "Dropout": 2, "TopK": 2,
    **{op: spec["outputs"] for op, spec in _RECURRENT.items()}}
#: The inputs a node of each op may have, the ONNX schemas' (a test compares them in every
#: opset): (opset, fewest, most) from that opset on (most None: any number; the first entry
#: holds before its opset too).  Every op not listed takes one input.
_INPUTS: Dict[str, Tuple[Tuple[int, int, Optional[int]], ...]] = {
    **dict.fromkeys(("Add", "Sub", "Mul", "Div", "Mod", "Pow", "Equal", "Less", "Greater",
                     "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "MatMul", "Gather",
                     "GatherElements", "Expand", "CastLike", "CumSum"), ((1, 2, 2),)),
    **dict.fromkeys(("Concat", "Max", "Min", "Sum"), ((1, 1, None),)),
    **dict.fromkeys(("Range", "Where", "ScatterElements"), ((1, 3, 3),)),
    **dict.fromkeys(("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd"),
                    ((1, 1, 1), (18, 1, 2))),
    "Constant": ((1, 0, 0),), "ReduceSum": ((1, 1, 1), (13, 1, 2)),
    "Squeeze": ((1, 1, 1), (13, 1, 2)), "Unsqueeze": ((1, 1, 1), (13, 2, 2)),
    "Reshape": ((1, 1, 1), (5, 2, 2)), "Slice": ((1, 1, 1), (10, 3, 5)),
    "TopK": ((1, 1, 1), (10, 2, 2)), "Clip": ((1, 1, 1), (11, 1, 3)),
    "Gemm": ((1, 3, 3), (11, 2, 3)), "Dropout": ((1, 1, 1), (12, 1, 3)),
    "Split": ((1, 1, 2), (2, 1, 1), (13, 1, 2)),
    **{op: ((1, 3, len(spec["inputs"])),) for op, spec in _RECURRENT.items()}}


def _input_range(op: str, opset: int) -> Tuple[int, Optional[int]]:
    """(fewest, most) inputs of an ``op`` node in ``opset`` (most None: any number)."""
    spans = _INPUTS.get(op, ((1, 1, 1),))
    return max((s for s in spans if s[0] <= opset), default=spans[0])[1:]


_NOT_YET = {"If": "control flow is not supported", "Loop": "control flow is not supported",
            "Scan": "control flow is not supported"}


class _Node:
    __slots__ = ("index", "op", "name", "inputs", "outputs", "attrs", "opset", "fn", "rnn",
                 "cache", "const_weights")

    def __init__(self, index: int, proto: Dict[str, Any], opset: int, base_dir: Optional[str]):
        self.index = index
        self.op = proto["op_type"]
        self.name = proto["name"]
        self.inputs = list(proto["input"])
        self.outputs = list(proto["output"])
        self.opset = opset
        most = _MAX_OUTPUTS.get(self.op, 1)
        if most is not None and len(self.outputs) > most:
            raise OnnxError(f"{self.describe()}: got {len(self.outputs)} outputs {self.outputs}, "
                            f"expected at most {most} (the outputs {self.op} defines)")
        # RNN, LSTM and GRU inputs: checked by _recurrent_config, which names them.
        lo, hi = (0, None) if self.op in _RECURRENT else _input_range(self.op, opset)
        given = len(self.inputs)
        if given < lo or (hi is not None and given > hi):
            takes = f"{lo}" if lo == hi else f"at least {lo}" if hi is None else f"{lo} to {hi}"
            raise OnnxError(f"{self.describe()}: got {given} inputs {self.inputs}, expected "
                            f"{takes} (the inputs {self.op} takes in opset {opset})")
        if not all(self.inputs[:lo]):
            first = "first input is" if lo == 1 else f"first {lo} inputs are"
            raise OnnxError(f"{self.describe()}: got inputs {self.inputs}, whose input "
                            f"{self.inputs.index('')} is empty; expected a name (the {first} "
                            f"required by {self.op} in opset {opset})")
        try:
            self.attrs = {a["name"]: _attr_value(a, base_dir) for a in proto["attribute"]}
        except OnnxError as err:
            raise OnnxError(f"{self.describe()}: {err}") from None
        self.fn = SUPPORTED_OPS[self.op]
        self.rnn = _recurrent_config(self) if self.op in _RECURRENT else None
        _check_attrs(self)
        self.cache: Dict[str, Any] = {}
        self.const_weights = False

    def describe(self) -> str:
        return f"{self.op} node {self.name!r}" if self.name else f"{self.op} node #{self.index}"


def _attr_value(a: Dict[str, Any], base_dir: Optional[str]) -> Any:
    """AttributeProto -> Python value (by its declared type, else by the field that is set).

    Errors do not name the node: :class:`_Node` adds that."""
    typ = a["type"]
    if a["ref_attr_name"]:
        raise OnnxError(f"attribute {a['name']!r} refers to a function attribute; functions are "
                        "not supported")
    if typ in (5, 10, 11, 12, 13, 14) or a["g"] is not None or a["graphs"]:
        raise OnnxError(f"attribute {a['name']!r} holds a graph, sparse tensor or type, which "
                        "crnn does not support")
    if typ == 1:
        return a["f"]
    if typ == 2:
        return a["i"]
    if typ == 3:
        return bytes(a["s"]).decode("utf-8", "replace")
    if typ == 4:
        return _tensor(a["t"], base_dir, a["name"])
    if typ == 6:
        return a["floats"].tolist()
    if typ == 7:
        return a["ints"].tolist()
    if typ == 8:
        return [bytes(s).decode("utf-8", "replace") for s in a["strings"]]
    if typ == 9:
        return [_tensor(t, base_dir, a["name"]) for t in a["tensors"]]
    # type missing (very old files): whichever field is set
    if a["t"] is not None:
        return _tensor(a["t"], base_dir, a["name"])
    if len(a["floats"]):
        return a["floats"].tolist()
    if len(a["ints"]):
        return a["ints"].tolist()
    if a["strings"]:
        return [bytes(s).decode("utf-8", "replace") for s in a["strings"]]
    if len(a["s"]):
        return bytes(a["s"]).decode("utf-8", "replace")
    return a["f"] if a["f"] else a["i"]


def _check_attrs(node: "_Node") -> None:
    """Load-time checks of attributes that would otherwise only fail when the node runs."""
    at, what = node.attrs, node.describe()
    if node.op == "Split" and node.opset >= 18 and "num_outputs" in at:
        num = at["num_outputs"]
        if not isinstance(num, int) or num != len(node.outputs) or num < 1:
            raise OnnxError(f"{what}: got attribute num_outputs={num!r}, expected the number of "
                            f"the node's outputs ({len(node.outputs)})")
    elif node.op == "ScatterElements":
        red = at.get("reduction", "none")
        if red != "none" and red not in _SCATTER_REDUCTIONS:
            raise OnnxError(f"{what}: got attribute reduction={red!r}, expected one of "
                            f"{['none'] + sorted(_SCATTER_REDUCTIONS)}")
    elif node.op == "Cast":
        if not isinstance(at.get("to"), int) or isinstance(at.get("to"), bool):
            raise OnnxError(f"{what}: got attribute to={at.get('to')!r}, expected a data type")
        _np_dtype(at["to"], f"{what}: attribute to")
    elif node.op == "Mod" and at.get("fmod", 0) not in (0, 1):
        raise OnnxError(f"{what}: got attribute fmod={at['fmod']!r}, expected 0 or 1")


# ============================================================================= model
def _apply(node: "_Node", args: list) -> Any:
    """Run one node; a failure inside an op becomes an OnnxError naming the node."""
    try:
        return node.fn(node.attrs, args, node)
    except OnnxError:
        raise
    except (ValueError, IndexError, TypeError, KeyError, ArithmeticError) as err:
        shapes = [None if a is None else getattr(a, "shape", None) for a in args]
        raise OnnxError(f"{node.describe()} failed on inputs of shapes {shapes}: "
                        f"{type(err).__name__}: {err}") from err
    except MemoryError as err:
        raise MemoryError(f"{node.describe()}: out of memory ({err})") from err


_BROADCASTING = {"Add", "Sub", "Mul", "Div", "Mod", "Pow", "Equal", "Less", "Greater",
                 "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Where", "Max", "Min",
                 "Sum", "Clip"}


def _broadcast_bound(shapes: Sequence[Tuple[int, ...]]) -> int:
    """Elements of the broadcast of ``shapes`` (an upper bound when they do not broadcast;
    anything above 2**63 is reported as soon as it is reached)."""
    rank = max((len(sh) for sh in shapes), default=0)
    dims = [max(sh[-i] if len(sh) >= i else 1 for sh in shapes) for i in range(1, rank + 1)]
    if 0 in dims:
        return 0
    total = 1
    for d in dims:
        total *= d
        if total > 2**63:
            break
    return total


def _shape_arg(a: np.ndarray, what: str) -> Tuple[int, ...]:
    """A shape given as data (ConstantOfShape, Expand), checked against MAX_TENSOR_RANK."""
    if a.size > MAX_TENSOR_RANK:
        raise OnnxError(f"{what}: got a shape of rank {a.size}, more than the limit "
                        f"MAX_TENSOR_RANK = {MAX_TENSOR_RANK}")
    return tuple(max(d, 0) for d in _ints(a))


def _fold_cost(node: "_Node", args: list) -> Tuple[int, int]:
    """(elements of the node's largest output, element operations to compute it): an upper
    bound from the inputs' shapes and the small shape / index inputs, known before it runs."""
    arrs = [np.asarray(a) for a in args if a is not None]
    sizes = [int(a.size) for a in arrs]
    op, what = node.op, node.describe()
    out, work = max(sizes, default=0), 0
    if op in _BROADCASTING:
        out = _broadcast_bound([a.shape for a in arrs])
    elif op == "Concat":
        out = sum(sizes)
    elif op == "ConstantOfShape" and arrs:
        out = _broadcast_bound([_shape_arg(arrs[0], what)])
    elif op == "Expand" and len(arrs) == 2:
        out = _broadcast_bound([arrs[0].shape, _shape_arg(arrs[1], what)])
    elif op == "Range" and len(arrs) == 3:
        if any(a.size != 1 for a in arrs):
            raise OnnxError(f"{what}: got start, limit and delta of shapes "
                            f"{[a.shape for a in arrs]}, expected scalars")
        start, limit, delta = (float(a.reshape(())) for a in arrs)
        if not delta or not np.isfinite([start, limit, delta]).all():
            raise OnnxError(f"{what}: got start {start}, limit {limit}, delta {delta}, expected "
                            "finite values and a non-zero delta")
        out = max(int(np.ceil((limit - start) / delta)), 0)
    elif op in ("MatMul", "Gemm") and len(arrs) >= 2:
        a, b = arrs[0].shape, arrs[1].shape
        if op == "Gemm" and len(a) == 2 and len(b) == 2:
            m, k = a[::-1] if node.attrs.get("transA", 0) else a
            n = b[0] if node.attrs.get("transB", 0) else b[1]
            out = max(m * n, _broadcast_bound([(m, n)] + [c.shape for c in arrs[2:]]))
            work = m * n * k
        elif op == "MatMul" and a and b:
            a2, b2 = (a if len(a) > 1 else (1,) + a), (b if len(b) > 1 else b + (1,))
            out = _broadcast_bound([a2[:-2], b2[:-2]]) * a2[-2] * b2[-1]
            work = out * a2[-1]
    elif op == "Gather" and len(arrs) == 2:
        data, idx = arrs
        axis = node.attrs.get("axis", 0)
        if isinstance(axis, int) and -data.ndim <= axis < data.ndim:
            out = idx.size * (data.size // max(data.shape[axis], 1))
    elif op == "GatherElements" and len(arrs) == 2:
        out = arrs[1].size
    return out, sum(sizes) + out + work


class OnnxModel:
    """An ONNX model loaded by :func:`load_onnx`: a graph executor running RNN, LSTM and GRU
    nodes in crnn.

    Mirrors ``onnxruntime.InferenceSession`` where it matters:

    - :meth:`run` ``(output_names, input_feed, run_options=None)`` -> list of arrays;
    - :meth:`get_inputs` / :meth:`get_outputs` -> :class:`NodeArg` (``name``, ``shape``,
      ``type``);

    and adds ``model(*inputs, **named_inputs)``: the graph's outputs in order (a single array
    when the graph has one output, else a tuple).

    Inputs are cast to the declared element type (ONNX Runtime would refuse a float64 array
    for a float input; crnn converts it) and their rank and fixed dimensions are checked.
    Thread-safe: runs share only immutable state.
    """

    def __init__(self, model: Dict[str, Any], base_dir: Optional[str] = None) -> None:
        graph = model["graph"]
        if graph is None:
            raise OnnxError("model: has no graph (is this an ONNX model file?)")
        # Nodes: check every op before anything else (types, opsets...), and name all
        # unsupported ones at once.
        bad: Dict[str, str] = {}
        for p in graph["node"]:
            dom = p["domain"] or "ai.onnx"
            if dom != "ai.onnx":
                bad[f"{dom}::{p['op_type']}"] = f"domain {dom!r} is not supported"
            elif p["op_type"] not in SUPPORTED_OPS:
                bad[p["op_type"]] = _NOT_YET.get(p["op_type"], "not supported")
        if bad:
            detail = "; ".join(f"{op} ({why})" for op, why in sorted(bad.items()))
            raise OnnxError(f"model: uses operator(s) crnn cannot run: {detail}. "
                            f"Supported: {', '.join(sorted(SUPPORTED_OPS))}")
        opsets = {o["domain"] or "ai.onnx": o["version"] for o in model["opset_import"]}
        if "ai.onnx" not in opsets:
            raise OnnxError(f"model: imports no default-domain opset (got {opsets}), expected "
                            "an 'ai.onnx' opset")
        self.opset = int(opsets["ai.onnx"])
        self.ir_version = model["ir_version"]
        self.producer = f"{model['producer_name']} {model['producer_version']}".strip()
        self.metadata = {e["key"]: e["value"] for e in model["metadata_props"]}
        if model["functions"]:
            raise OnnxError("model: defines local functions, which crnn does not support")
        if graph["sparse_initializer"]:
            raise OnnxError("model: has sparse initializers, which crnn does not support")

        # Constants: initializers (they may also be listed as inputs in old IR versions).
        # Every name is defined once: by a graph input, an initializer or a node output.
        consts: Dict[str, np.ndarray] = {}
        for t in graph["initializer"]:
            if not t["name"]:
                raise OnnxError("model: an initializer has no name")
            if t["name"] in consts:
                raise OnnxError(f"model: the name {t['name']!r} is defined twice, by two "
                                "initializers")
            consts[t["name"]] = _tensor(t, base_dir, "initializer")
        declared = set()
        for vi in graph["input"]:
            if vi["name"] in declared:
                raise OnnxError(f"model: the name {vi['name']!r} is defined twice, by two graph "
                                "inputs")
            declared.add(vi["name"])
        self._inputs = [_value_info(vi, "input") for vi in graph["input"]
                        if vi["name"] not in consts]
        self._outputs = [_value_info(vi, "output") for vi in graph["output"]]
        if not self._outputs:
            raise OnnxError("model: the graph has no outputs")

        nodes = [_Node(i, p, self.opset, base_dir) for i, p in enumerate(graph["node"])]

        # Declared element types, for the dtype an RNN node with constant weights compiles for.
        elem_types = {vi["name"]: vi["type"]["tensor_type"]["elem_type"]
                      for vi in list(graph["input"]) + list(graph["value_info"])
                      if vi["type"] and vi["type"]["tensor_type"]}

        # Topological check and constant folding (nodes fed only by constants run once, now,
        # within MAX_FOLD_ELEMENTS per tensor and MAX_FOLD_WORK in total).
        known = dict.fromkeys(consts, "an initializer")    # name -> what defines it
        known.update(dict.fromkeys((a.name for a in self._inputs), "a graph input"))
        run_nodes: List[_Node] = []
        budget = MAX_FOLD_WORK
        for node in nodes:
            missing = [i for i in node.inputs if i and i not in known]
            if missing:
                raise OnnxError(f"model: {node.describe()} reads {missing}, which no graph input, "
                                "initializer or earlier node produces (the graph is malformed "
                                "or not topologically sorted)")
            for o in [o for o in node.outputs if o]:
                if o in known:
                    raise OnnxError(f"model: the name {o!r} is defined twice, by {known[o]} and "
                                    f"by {node.describe()}")
                known[o] = node.describe()
            if node.op == "Dropout" and len(node.inputs) > 2 and node.inputs[2]:
                mode = consts.get(node.inputs[2])
                if mode is None or np.size(mode) != 1 or bool(np.asarray(mode).reshape(())):
                    raise OnnxError(f"model: {node.describe()}: got input training_mode "
                                    f"{node.inputs[2]!r}, which is not a constant False; crnn "
                                    "runs inference only (Dropout as the identity)")
            if node.op not in _RECURRENT and all(i == "" or i in consts for i in node.inputs):
                args = [consts[i] if i else None for i in node.inputs]
                size, work = _fold_cost(node, args)
                budget -= work
                if size > MAX_FOLD_ELEMENTS:
                    raise OnnxError(f"model: {node.describe()}: constant folding would create a "
                                    f"tensor of {size} elements, more than the limit "
                                    f"MAX_FOLD_ELEMENTS = {MAX_FOLD_ELEMENTS}")
                if budget < 0:
                    raise OnnxError(f"model: constant folding needs more than the limit "
                                    f"MAX_FOLD_WORK = {MAX_FOLD_WORK} element operations (reached "
                                    f"at {node.describe()})")
                outs = _apply(node, args)
                for name, val in zip(node.outputs, outs):
                    if name:
                        consts[name] = val
            else:
                if node.op in _RECURRENT:
                    if node.op == "LSTM":
                        _check_peepholes(node, consts)
                    w = node.inputs[1:4] + [""] * (4 - len(node.inputs[1:4]))
                    node.const_weights = all(i == "" or i in consts for i in w[:3])
                    if node.const_weights:  # compile now; reuse on every run
                        W = consts[w[0]]
                        dt = np.dtype(np.float64) if W.dtype == np.float64 or \
                            elem_types.get(node.inputs[0]) == 11 else np.dtype(np.float32)
                        Bw = consts[w[2]] if w[2] else None
                        handles = _recurrent_handles(node.rnn, W, consts[w[1]], Bw, dt,
                                                     node.describe())
                        node.cache["handles"] = ((id(W), id(consts[w[1]]), id(Bw), dt.name),
                                                 handles, (W, consts[w[1]], Bw))
                run_nodes.append(node)
        missing = [o.name for o in self._outputs if o.name not in known]
        if missing:
            raise OnnxError(f"model: graph outputs {missing} are produced by no node")
        self._consts = consts
        self._const_ids = frozenset(id(v) for v in consts.values())
        self._nodes = run_nodes
        # Last use of each value, to free intermediates early.
        last: Dict[str, int] = {}
        for i, node in enumerate(run_nodes):
            for name in node.inputs:
                last[name] = i
        self._free_after = [[n for n in node.inputs if n and last.get(n) == i and n not in consts]
                            for i, node in enumerate(run_nodes)]

    # ------------------------------------------------------------------ description
    def get_inputs(self) -> List[NodeArg]:
        """The graph inputs (initializers excluded), like ``InferenceSession.get_inputs()``."""
        return list(self._inputs)

    def get_outputs(self) -> List[NodeArg]:
        """The graph outputs, like ``InferenceSession.get_outputs()``."""
        return list(self._outputs)

    @property
    def input_names(self) -> List[str]:
        return [a.name for a in self._inputs]

    @property
    def output_names(self) -> List[str]:
        return [a.name for a in self._outputs]

    @property
    def op_types(self) -> List[str]:
        """Op types of the nodes that run per call (after constant folding)."""
        return [n.op for n in self._nodes]

    def __repr__(self) -> str:
        rnn = sum(n.op in _RECURRENT for n in self._nodes)
        return (f"<OnnxModel opset={self.opset} inputs={self.input_names} "
                f"outputs={self.output_names} nodes={len(self._nodes)} rnn_nodes={rnn}>")

    # ------------------------------------------------------------------ running
    def _feed(self, arg: NodeArg, value: Any) -> np.ndarray:
        if hasattr(value, "detach") and hasattr(value, "cpu"):
            value = value.detach().cpu().numpy()
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"input {arg.name!r}: got dtype {arr.dtype}, expected {arg.type}")
        if arg.dtype is not None and arr.dtype != arg.dtype:
            if arg.dtype.kind in "iu" and arr.dtype.kind == "f":
                raise TypeError(f"input {arg.name!r}: got dtype {arr.dtype}, expected {arg.type}")
            arr = arr.astype(arg.dtype)
        if arg.shape is not None:
            if arr.ndim != len(arg.shape):
                raise ValueError(f"input {arg.name!r}: got shape {arr.shape}, expected rank "
                                 f"{len(arg.shape)} {tuple(arg.shape)}")
            for got, want in zip(arr.shape, arg.shape):
                if isinstance(want, int) and want > 0 and got != want:
                    raise ValueError(f"input {arg.name!r}: got shape {arr.shape}, expected "
                                     f"{tuple(arg.shape)}")
        return arr

    def run(self, output_names: Optional[Sequence[str]], input_feed: Mapping[str, Any],
            run_options: Any = None) -> List[np.ndarray]:
        """Compute ``output_names`` (None: all graph outputs) from ``input_feed`` {name: array}.

        Same call as ``onnxruntime.InferenceSession.run``; returns a list of NumPy arrays.
        """
        if not isinstance(input_feed, Mapping):
            raise TypeError(f"input_feed: got {type(input_feed).__name__}, expected a dict "
                            "{input name: array}")
        outputs, inputs = set(self.output_names), set(self.input_names)
        wanted = self.output_names if output_names is None else list(output_names)
        unknown = [n for n in wanted if n not in outputs]
        if unknown:
            raise ValueError(f"output_names: got {unknown}, expected names from {self.output_names}")
        extra = [k for k in input_feed if k not in inputs]
        if extra:
            raise ValueError(f"input_feed: got unknown input(s) {extra}, expected {self.input_names}")
        missing = [a.name for a in self._inputs if a.name not in input_feed]
        if missing:
            raise ValueError(f"input_feed: missing input(s) {missing}, expected {self.input_names}")
        env: Dict[str, Any] = dict(self._consts)
        for arg in self._inputs:
            env[arg.name] = self._feed(arg, input_feed[arg.name])
        fed = [env[a.name] for a in self._inputs]     # alive until the end: ids stay unique
        shared = set(self._const_ids) | {id(v) for v in fed}
        keep = set(wanted)
        for node, free in zip(self._nodes, self._free_after):
            args = [env[i] if i else None for i in node.inputs]
            outs = _apply(node, args)
            for name, val in zip(node.outputs, outs):
                if name:
                    env[name] = val
            for name in free:
                if name not in keep:
                    env.pop(name, None)
        # Every output is a C-contiguous array of its own, with its own shape (0-d stays 0-d):
        # a constant, a graph input, a view of either or an array returned twice is copied, so
        # writing into a result changes neither later runs nor the caller's inputs.
        results = []
        for name in wanted:
            value = env[name]
            arr = np.asarray(value)
            if id(value) in shared or id(arr) in shared or not arr.flags.owndata \
                    or not arr.flags.c_contiguous or not arr.flags.writeable:
                arr = np.array(arr, order="C", copy=True)
            shared.add(id(arr))
            results.append(arr)
        return results

    def __call__(self, *inputs: Any, **named: Any):
        """Run with the graph inputs positionally (in graph order) and/or by name.

        Returns the graph's outputs in order: one array for a one-output graph, else a tuple.
        """
        names = self.input_names
        if len(inputs) > len(names):
            raise TypeError(f"got {len(inputs)} positional inputs, expected at most {len(names)} "
                            f"({names})")
        feed = dict(zip(names, inputs))
        for k, v in named.items():
            if k in feed:
                raise TypeError(f"input {k!r}: given both positionally and by name")
            feed[k] = v
        outs = self.run(None, feed)
        return outs[0] if len(outs) == 1 else tuple(outs)


def load_onnx(path_or_bytes: Any, *, base_dir: Optional[str] = None) -> OnnxModel:
    """Load an ONNX model (a path, ``bytes``, a binary file object or an ``onnx.ModelProto``).

    Parameters
    ----------
    path_or_bytes : str, os.PathLike, bytes, file-like or onnx.ModelProto
    base_dir : str, optional
        Directory of external tensor data (default: the model file's directory).

    Raises
    ------
    OnnxError (a ValueError)
        A file that is not a valid ONNX model, or uses operators/attributes crnn cannot run
        (the message names them).
    """
    if hasattr(path_or_bytes, "SerializeToString"):
        data = path_or_bytes.SerializeToString()
    elif isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
    elif hasattr(path_or_bytes, "read"):
        data = path_or_bytes.read()
    elif isinstance(path_or_bytes, (str, os.PathLike)):
        path = os.fspath(path_or_bytes)
        with open(path, "rb") as f:
            data = f.read()
        if base_dir is None:
            base_dir = os.path.dirname(os.path.abspath(path))
    else:
        raise TypeError(f"load_onnx: got {type(path_or_bytes).__name__}, expected a path, bytes, "
                        "a binary file or an onnx.ModelProto")
    if not data:
        raise OnnxError("model: the file is empty")
    try:
        model = pb.decode(data, pb.MODEL)
    except pb.DecodeError as err:
        raise OnnxError(f"model: not a valid ONNX protobuf ({err})") from None
    if model["graph"] is None or (model["ir_version"] <= 0 and not model["opset_import"]):
        raise OnnxError("model: not an ONNX model (no graph or IR version found)")
    return OnnxModel(model, base_dir)
