"""Just enough Protocol Buffers to read and write ONNX models, in plain Python.

crnn loads ONNX files without the ``onnx`` package (and without ``protobuf``): an ONNX model is
a ``ModelProto`` message, and the handful of message types inference needs are described here as
small schemas (field number -> name, kind, repeated) transcribed from ``onnx/onnx.proto``.
:func:`decode` turns bytes into nested dicts by schema; :func:`encode` does the reverse for
:mod:`crnn.interop.onnx_export`.  Unknown fields are skipped, as protobuf does.  Repeated numbers
are NumPy arrays, and packed ones (how ONNX writes them) are decoded with NumPy, not value by value.

Wire format (https://protobuf.dev/programming-guides/encoding/): each field is a varint key
``(field_number << 3) | wire_type`` followed by a varint (0), 8 bytes (1), a varint length and
that many bytes (2: strings, bytes, sub-messages, packed repeated numbers) or 4 bytes (5).
"""
from __future__ import annotations

import struct
from typing import Any, Dict, List, Tuple

import numpy as np

__all__ = ["DecodeError", "decode", "encode", "MODEL", "GRAPH", "NODE", "TENSOR", "ATTRIBUTE",
           "VALUE_INFO"]


class DecodeError(ValueError):
    """The bytes are not a valid protobuf message (truncated, bad wire type...)."""


MAX_DEPTH = 100
"""Deepest nesting of messages :func:`decode` follows (protobuf's own default recursion limit).

An ONNX model nests a few levels (model, graph, node, attribute, tensor); only sub-graphs inside
attributes nest further.  A deeper message is a :class:`DecodeError`, not a ``RecursionError``.
"""


# Field kinds: scalar kinds, or a schema dict for a sub-message.
# "int64"/"int32"/"enum": varint (negative numbers are 10-byte two's complement);
# "uint64": varint; "float": fixed32; "double": fixed64; "string": UTF-8; "bytes": raw.
_R, _S = True, False

STRING_ENTRY: Dict[int, Tuple[str, Any, bool]] = {
    1: ("key", "string", _S), 2: ("value", "string", _S)}
TENSOR: Dict[int, Tuple[str, Any, bool]] = {
    1: ("dims", "int64", _R), 2: ("data_type", "int32", _S), 4: ("float_data", "float", _R),
    5: ("int32_data", "int32", _R), 6: ("string_data", "bytes", _R),
    7: ("int64_data", "int64", _R), 8: ("name", "string", _S), 9: ("raw_data", "bytes", _S),
    13: ("external_data", STRING_ENTRY, _R), 14: ("data_location", "enum", _S),
    10: ("double_data", "double", _R), 11: ("uint64_data", "uint64", _R),
    3: ("segment", "bytes", _S)}
DIMENSION = {1: ("dim_value", "int64", _S), 2: ("dim_param", "string", _S)}
SHAPE = {1: ("dim", DIMENSION, _R)}
TENSOR_TYPE = {1: ("elem_type", "int32", _S), 2: ("shape", SHAPE, _S)}
TYPE = {1: ("tensor_type", TENSOR_TYPE, _S), 4: ("sequence_type", "bytes", _S),
        5: ("map_type", "bytes", _S), 7: ("opaque_type", "bytes", _S),
        8: ("sparse_tensor_type", "bytes", _S), 9: ("optional_type", "bytes", _S)}
VALUE_INFO = {1: ("name", "string", _S), 2: ("type", TYPE, _S), 3: ("doc_string", "string", _S)}
ATTRIBUTE: Dict[int, Tuple[str, Any, bool]] = {
    1: ("name", "string", _S), 21: ("ref_attr_name", "string", _S), 20: ("type", "enum", _S),
    2: ("f", "float", _S), 3: ("i", "int64", _S), 4: ("s", "bytes", _S), 5: ("t", TENSOR, _S),
    7: ("floats", "float", _R), 8: ("ints", "int64", _R), 9: ("strings", "bytes", _R),
    10: ("tensors", TENSOR, _R), 22: ("sparse_tensor", "bytes", _S),
    23: ("sparse_tensors", "bytes", _R), 13: ("doc_string", "string", _S)}
NODE = {1: ("input", "string", _R), 2: ("output", "string", _R), 3: ("name", "string", _S),
        4: ("op_type", "string", _S), 7: ("domain", "string", _S),
        5: ("attribute", ATTRIBUTE, _R), 6: ("doc_string", "string", _S)}
GRAPH: Dict[int, Tuple[str, Any, bool]] = {
    1: ("node", NODE, _R), 2: ("name", "string", _S), 5: ("initializer", TENSOR, _R),
    15: ("sparse_initializer", "bytes", _R), 10: ("doc_string", "string", _S),
    11: ("input", VALUE_INFO, _R), 12: ("output", VALUE_INFO, _R),
    13: ("value_info", VALUE_INFO, _R)}
# Sub-graphs (If/Loop/Scan bodies) are graphs inside attributes: recursive schemas.
ATTRIBUTE[6] = ("g", GRAPH, _S)
ATTRIBUTE[11] = ("graphs", GRAPH, _R)
OPSET = {1: ("domain", "string", _S), 2: ("version", "int64", _S)}
MODEL = {1: ("ir_version", "int64", _S), 8: ("opset_import", OPSET, _R),
         2: ("producer_name", "string", _S), 3: ("producer_version", "string", _S),
         4: ("domain", "string", _S), 5: ("model_version", "int64", _S),
         6: ("doc_string", "string", _S), 7: ("graph", GRAPH, _S),
         14: ("metadata_props", STRING_ENTRY, _R), 25: ("functions", "bytes", _R),
         20: ("training_info", "bytes", _R)}

_DEFAULTS = {"int64": 0, "int32": 0, "enum": 0, "uint64": 0, "float": 0.0, "double": 0.0,
             "string": "", "bytes": b""}
# The array dtype of each kind of repeated number, and an empty one (read-only, shared).
_ARRAY = {"int64": np.int64, "int32": np.int64, "enum": np.int64, "uint64": np.uint64,
          "float": np.float32, "double": np.float64}
_EMPTY = {kind: np.frombuffer(b"", dtype) for kind, dtype in _ARRAY.items()}
_VARINT_KINDS = ("int64", "int32", "enum", "uint64")
_WIRE = {"int64": 0, "int32": 0, "enum": 0, "uint64": 0, "float": 5, "double": 1,
         "string": 2, "bytes": 2}


# ----------------------------------------------------------------------------- decoding
def _varint(buf: memoryview, pos: int, end: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise DecodeError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            if shift == 63 and b > 1:
                raise DecodeError("varint overflows 64 bits")
            return result, pos
        shift += 7
        if shift > 63:
            raise DecodeError("varint longer than 10 bytes")


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= (1 << 63) else v


_VARINT_CHUNK = 1 << 16
"""Bytes of packed varints :func:`_varints` decodes per NumPy pass (at least 10, the longest
varint): its temporaries stay a few MB."""
_VARINT_SHORT = 64
"""Packed varints shorter than this many bytes (most ``dims``) are read one at a time: cheaper
than :func:`_varints`'s NumPy calls for a few values."""


def _varints(data: memoryview) -> np.ndarray:
    """Packed varints -> uint64 array: the values :func:`_varint` reads one at a time, with the
    same errors, decoded with NumPy.

    A varint is 7-bit groups, least significant first, in bytes up to the first one below 0x80
    (its terminator): each chunk's terminators delimit its varints, whose groups are shifted into
    place and summed per varint (their bits do not overlap).
    """
    b = np.frombuffer(data, np.uint8)
    out = np.empty(np.count_nonzero(b < 0x80), np.uint64)
    pos = k = 0
    while pos < len(b):
        window = b[pos:pos + _VARINT_CHUNK]
        ends = np.flatnonzero(window < 0x80)
        if not len(ends):
            raise DecodeError("varint longer than 10 bytes" if len(window) >= 10
                              else "truncated varint")
        piece = window[:ends[-1] + 1]
        starts = np.concatenate(([0], ends[:-1] + 1))
        lengths = ends - starts + 1
        bad = (lengths > 10) | ((lengths == 10) & (piece[ends] > 1))
        if bad.any():   # the first bad varint's error, as _varint reports it
            raise DecodeError("varint longer than 10 bytes" if lengths[bad.argmax()] > 10
                              else "varint overflows 64 bits")
        shifts = (np.arange(len(piece)) - np.repeat(starts, lengths)) * 7
        groups = (piece & 0x7F).astype(np.uint64) << shifts.astype(np.uint64)
        out[k:k + len(ends)] = np.add.reduceat(groups, starts)
        k += len(ends)
        pos += len(piece)
    return out


def _packed(kind: str, data: memoryview) -> np.ndarray:
    if kind == "float":
        if len(data) % 4:
            raise DecodeError("packed float field length is not a multiple of 4")
        return np.frombuffer(data, "<f4")
    if kind == "double":
        if len(data) % 8:
            raise DecodeError("packed double field length is not a multiple of 8")
        return np.frombuffer(data, "<f8")
    if len(data) < _VARINT_SHORT:
        out, pos = [], 0
        while pos < len(data):
            v, pos = _varint(data, pos, len(data))
            out.append(v)
        values = np.array(out, np.uint64)
    else:
        values = _varints(data)
    return values if kind == "uint64" else values.view(np.int64)   # two's complement


def _array(parts: List[Any], kind: str) -> np.ndarray:
    """A repeated number field as one array: its packed runs (arrays) and single values, in
    the order of the file."""
    if not parts:
        return _EMPTY[kind]
    if len(parts) == 1 and isinstance(parts[0], np.ndarray):
        return parts[0]
    dtype = _ARRAY[kind]
    if not any(isinstance(p, np.ndarray) for p in parts):
        return np.array(parts, dtype)
    return np.concatenate([np.asarray(p, dtype).reshape(-1) for p in parts])


def decode(data: Any, schema: Dict[int, Tuple[str, Any, bool]], _depth: int = 0) -> Dict[str, Any]:
    """Decode one message into a dict with every schema field (defaults for absent ones).

    Repeated numbers (packed or not) are 1-D NumPy arrays: int64 (int64, int32 and enum
    fields), uint64, float32 or float64; packed float and double ones, and ``raw_data`` and
    ``bytes`` fields, are zero-copy views of ``data``.  Other repeated fields are lists.
    Messages nested deeper than :data:`MAX_DEPTH` raise :class:`DecodeError`.
    """
    if _depth > MAX_DEPTH:
        raise DecodeError(f"messages nested more than {MAX_DEPTH} deep (the limit)")
    buf = data if isinstance(data, memoryview) else memoryview(data)
    if buf.ndim != 1 or buf.itemsize != 1:
        buf = buf.cast("B")
    msg: Dict[str, Any] = {}
    for name, kind, rep in schema.values():
        msg[name] = [] if rep else (None if isinstance(kind, dict) else _DEFAULTS[kind])
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos, end)
        num, wire = key >> 3, key & 7
        if num == 0:
            raise DecodeError("field number 0")
        if wire == 0:
            val, pos = _varint(buf, pos, end)
        elif wire == 1:
            if pos + 8 > end:
                raise DecodeError("truncated fixed64 field")
            val = buf[pos:pos + 8]
            pos += 8
        elif wire == 2:
            n, pos = _varint(buf, pos, end)
            if pos + n > end:
                raise DecodeError(f"field {num}: length {n} runs past the end of the message")
            val = buf[pos:pos + n]
            pos += n
        elif wire == 5:
            if pos + 4 > end:
                raise DecodeError("truncated fixed32 field")
            val = buf[pos:pos + 4]
            pos += 4
        else:
            raise DecodeError(f"field {num}: unsupported wire type {wire}")
        spec = schema.get(num)
        if spec is None:
            continue
        name, kind, rep = spec
        if isinstance(kind, dict):
            if wire != 2:
                raise DecodeError(f"field {name}: got wire type {wire}, expected a message")
            v: Any = decode(val, kind, _depth + 1)
        elif wire == 2 and kind not in ("string", "bytes"):
            if not rep:
                raise DecodeError(f"field {name}: got a length-delimited value for a scalar")
            msg[name].append(_packed(kind, val))
            continue
        elif kind in _VARINT_KINDS:
            if wire != 0:
                raise DecodeError(f"field {name}: got wire type {wire}, expected a varint")
            v = val if kind == "uint64" else _signed(val)
        elif kind == "float":
            if wire != 5:
                raise DecodeError(f"field {name}: got wire type {wire}, expected fixed32")
            v = struct.unpack("<f", val)[0]
        elif kind == "double":
            if wire != 1:
                raise DecodeError(f"field {name}: got wire type {wire}, expected fixed64")
            v = struct.unpack("<d", val)[0]
        elif kind == "string":
            if wire != 2:
                raise DecodeError(f"field {name}: got wire type {wire}, expected a string")
            try:
                v = bytes(val).decode("utf-8")
            except UnicodeDecodeError:
                raise DecodeError(f"field {name}: not valid UTF-8") from None
        else:  # bytes
            if wire != 2:
                raise DecodeError(f"field {name}: got wire type {wire}, expected bytes")
            v = val
        if rep:
            msg[name].append(v)
        else:
            msg[name] = v
    for name, kind, rep in schema.values():
        if rep and isinstance(kind, str) and kind in _ARRAY:
            msg[name] = _array(msg[name], kind)
    return msg


# ----------------------------------------------------------------------------- encoding
def _enc_varint(v: int) -> bytes:
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(num: int, wire: int) -> bytes:
    return _enc_varint((num << 3) | wire)


def _enc_scalar(kind: str, v: Any) -> bytes:
    if kind in _VARINT_KINDS:
        return _enc_varint(int(v))
    if kind == "float":
        return struct.pack("<f", float(v))
    if kind == "double":
        return struct.pack("<d", float(v))
    b = v.encode("utf-8") if kind == "string" else bytes(v)
    return _enc_varint(len(b)) + b


def encode(msg: Dict[str, Any], schema: Dict[int, Tuple[str, Any, bool]]) -> bytes:
    """Encode a dict (only the keys present and not None) as a message of ``schema``.

    Repeated numbers are written packed (proto3 style, which proto2 readers accept).
    """
    parts: List[bytes] = []
    for num in sorted(schema):
        name, kind, rep = schema[num]
        if name not in msg or msg[name] is None:
            continue
        value = msg[name]
        if isinstance(kind, dict):
            for item in (value if rep else [value]):
                body = encode(item, kind)
                parts.append(_key(num, 2) + _enc_varint(len(body)) + body)
        elif rep and kind not in ("string", "bytes"):
            if len(value) == 0:
                continue
            if kind == "float":
                body = np.asarray(value, "<f4").tobytes()
            elif kind == "double":
                body = np.asarray(value, "<f8").tobytes()
            else:
                body = b"".join(_enc_varint(int(v)) for v in value)
            parts.append(_key(num, 2) + _enc_varint(len(body)) + body)
        else:
            for item in (value if rep else [value]):
                parts.append(_key(num, _WIRE[kind]) + _enc_scalar(kind, item))
    return b"".join(parts)
