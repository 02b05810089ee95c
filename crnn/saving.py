"""Save and load crnn models: the ``.crnn`` file format, version 1.

``model.save(path)`` / :func:`save_model` write, and ``crnn.load_model(path)``
/ :func:`load_model` read, one file holding a :class:`~crnn.models.Sequential`
model's architecture and weights.  The format is crnn's own, small, and
readable without crnn: no pickle anywhere, nothing executed on load.

Format
------
A ZIP archive (conventionally named ``*.crnn``) with exactly two members:

``config.json``
    A UTF-8 JSON object::

        {
          "format": "crnn-model",          # identifies the file type
          "format_version": 1,             # this document describes version 1
          "crnn_version": "0.1.0",         # the crnn that wrote it (informational)
          "class_name": "Sequential",
          "config": {                      # Sequential.get_config()
            "name": "sequential",
            "layers": [
              {"class_name": "Embedding",  # crnn.layers.<class_name>
               "config": {...},            # <class_name>.get_config(): constructor arguments
               "build_config": {"input_shape": [null, null]}},   # shape the weights were built for
              ...
            ],
            "build_input_shape": [null, 20, 8]   # optional: the model's input shape
          },
          "weights": [                     # manifest: one entry per array of weights.npz, in
            {"name": "layer_0/embeddings", #   Sequential.get_weights() order
             "shape": [1000, 16], "dtype": "float32"},
            ...
          ]
        }

    Layer classes: ``SimpleRNN``, ``Bidirectional`` (its config nests the
    wrapped layer as ``{"class_name", "config"}`` under ``"layer"``, and under
    ``"backward_layer"`` if one was given), ``Dense``, ``Embedding``,
    ``Masking``, ``Activation``.  Shapes are lists with ``null`` for unknown
    dimensions.

``weights.npz``
    A NumPy ``.npz`` archive (as written by ``numpy.savez``: a ZIP of ``.npy``
    files) with one array per manifest entry, under the same name:
    ``layer_<i>/<weight>``, where ``<i>`` is the layer's position in the model
    and ``<weight>`` its Keras weight name (``kernel``, ``recurrent_kernel``,
    ``bias``, ``embeddings``; ``forward/...`` and ``backward/...`` inside a
    ``Bidirectional``).  Arrays are float32 or float64 in Keras layout
    (SimpleRNN kernel ``(input_dim, units)``, recurrent kernel ``(units,
    units)``, bias ``(units,)``; Dense kernel ``(input_dim, units)``;
    Embedding ``(input_dim, output_dim)``).  Read it with
    ``numpy.load(f, allow_pickle=False)``.

Recurrent states of stateful layers are not saved (as in Keras): a loaded
model starts from zero states.  Pickling a model keeps them.

Loading validates everything before trusting it: the archive must be a ZIP
with exactly those two members (an extra, missing, duplicated or
path-like member name, an encrypted member or an unknown compression is
rejected; duplicates are counted in linear time); ``format`` and
``format_version`` must be known; the config may list at most
:data:`MAX_CONFIG_LAYERS` layers and be at most :data:`MAX_CONFIG_BYTES`
long; every class name must be one of the layer classes above; the model
rebuilt from the config fixes the name, shape and dtype of every weight, and
the manifest and the ``.npy`` headers must match them exactly; member sizes are capped by what the
config needs (so a zip bomb or an oversized member is refused before it is
read), and a truncated archive or array is an error.  Every such problem
raises ``ValueError`` naming the file and what is wrong.
"""

from __future__ import annotations

import collections
import io
import json
import os
import tempfile
import zipfile
import zlib
from typing import Any, Dict, List, Tuple

import numpy as np

from . import layers as _layers
from ._version import __version__
from .models import Sequential

__all__ = ["save_model", "load_model", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "crnn-model"
FORMAT_VERSION = 1
CONFIG_MEMBER = "config.json"
WEIGHTS_MEMBER = "weights.npz"

MAX_CONFIG_BYTES = 16 * 2**20
"""Largest ``config.json`` accepted, in bytes (read at most this much, however it is compressed)."""
MAX_NPY_HEADER = 10000
"""Largest ``.npy`` header accepted, in bytes (NumPy's own default limit)."""
MAX_CONFIG_LAYERS = 1000
"""Most layers a model config may list; a longer list is refused before any layer is built."""
#: Allowance per ZIP member for headers and extra fields, plus the name twice.
_ZIP_MEMBER_OVERHEAD = 512
_ZIP_END_OVERHEAD = 4096
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # reproducible archives


def _weight_specs(model: Sequential) -> List[Tuple[str, Tuple[int, ...], str]]:
    """``(name, shape, dtype)`` of every weight, in ``get_weights()`` order (no copies)."""
    specs = []
    for i, layer in enumerate(model._layers):
        arrays = layer._weight_arrays()
        names = layer._weight_names()
        if arrays and len(arrays) != len(names):  # pragma: no cover - internal invariant
            raise RuntimeError(f"layer {layer.name!r}: {len(arrays)} arrays, {len(names)} names")
        for name, a in zip(names, arrays):
            specs.append((f"layer_{i}/{name}", tuple(int(d) for d in a.shape), a.dtype.name))
    return specs


# --------------------------------------------------------------------------- #
# save
# --------------------------------------------------------------------------- #
def save_model(model: Sequential, filepath: Any, overwrite: bool = True) -> None:
    """Write ``model`` (architecture + weights) to ``filepath`` in the ``.crnn`` format.

    Parameters
    ----------
    model : Sequential
    filepath : str, os.PathLike or writable binary file object
    overwrite : bool, default True
        False: raise FileExistsError if ``filepath`` exists.

    The file is written to a temporary name beside ``filepath`` and renamed
    into place, so a failure never leaves a half-written model behind.

    Raises
    ------
    TypeError
        ``model`` is not a Sequential.
    ValueError
        A layer is built but the model cannot record its input shape, or the
        config holds a value JSON cannot store (NaN).
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"model: got {type(model).__name__}, expected a crnn Sequential model")
    _layers._check_bool(overwrite, "overwrite")
    model._check_layers()  # layers that no longer fit together: load_model would refuse it
    specs = _weight_specs(model)
    config = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "crnn_version": __version__,
              "class_name": "Sequential", "config": model.get_config(),
              "weights": [{"name": n, "shape": list(s), "dtype": d} for n, s, d in specs]}
    try:
        text = json.dumps(config, indent=1, allow_nan=False)
    except ValueError as err:
        raise ValueError(f"model: its config cannot be stored as JSON ({err})") from None
    arrays = {}
    for (name, _, dtype), a in zip(specs, (a for l in model._layers for a in l._weight_arrays())):
        arr = np.ascontiguousarray(a)
        if not arr.dtype.isnative or arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        arrays[name] = arr
    npz = io.BytesIO()
    np.savez(npz, **arrays)

    def write(fileobj: Any) -> None:
        with zipfile.ZipFile(fileobj, "w") as zf:
            info = zipfile.ZipInfo(CONFIG_MEMBER, date_time=_FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, text.encode("utf-8"))
            info = zipfile.ZipInfo(WEIGHTS_MEMBER, date_time=_FIXED_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, npz.getbuffer())

    if hasattr(filepath, "write"):
        write(filepath)
        return
    path = os.fspath(filepath)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"filepath: {path!r} exists and overwrite=False")
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".crnn-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# --------------------------------------------------------------------------- #
# load
# --------------------------------------------------------------------------- #
class _Bad(ValueError):
    pass


def _members(zf: zipfile.ZipFile, expected: List[str], what: str) -> Dict[str, zipfile.ZipInfo]:
    """Map each expected member name to its entry; anything else is an error."""
    infos = zf.infolist()
    names = [i.filename for i in infos]
    extra = sorted({n for n in names if n not in expected})
    if extra:
        raise _Bad(f"{what}: got unexpected member(s) {extra}, expected only {sorted(expected)}")
    dups = sorted(n for n, k in collections.Counter(names).items() if k > 1)
    if dups:
        raise _Bad(f"{what}: got duplicated member(s) {dups}")
    missing = sorted(set(expected) - set(names))
    if missing:
        raise _Bad(f"{what}: missing member(s) {missing}")
    out = {}
    for info in infos:
        if info.flag_bits & 0x1:
            raise _Bad(f"{what}: member {info.filename!r} is encrypted")
        if info.compress_type not in _COMPRESSIONS:
            raise _Bad(f"{what}: member {info.filename!r} uses compression method "
                       f"{info.compress_type}, expected stored or deflated")
        out[info.filename] = info
    return out


def _read_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, what: str,
                 limit: str = "") -> bytes:
    """Member ``info``, read streaming: at most ``cap`` bytes, whatever its header says.

    ``limit`` names the documented limit ``cap`` comes from (else: what the model can need).
    """
    most = f"the limit {limit} = {cap}" if limit else f"the {cap} this model can need"
    if info.file_size > cap:
        raise _Bad(f"{what}: is {info.file_size} bytes, more than {most}")
    with zf.open(info) as f:
        data = f.read(cap + 1)
    if len(data) > cap:
        raise _Bad(f"{what}: holds more than {most} bytes")
    if len(data) != info.file_size:
        raise _Bad(f"{what}: got {len(data)} bytes, the archive says {info.file_size}")
    return data


def _read_json(zf: zipfile.ZipFile, info: zipfile.ZipInfo, what: str) -> Any:
    """A JSON member of at most MAX_CONFIG_BYTES, parsed (errors are _Bad)."""
    raw = _read_capped(zf, info, MAX_CONFIG_BYTES, what, "MAX_CONFIG_BYTES")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise _Bad(f"{what}: not valid UTF-8 JSON ({err})") from None
    except RecursionError:
        raise _Bad(f"{what}: JSON nested too deeply") from None


def _model_from_config(config: Any) -> Sequential:
    if not isinstance(config, dict):
        raise _Bad(f"{CONFIG_MEMBER}: got a JSON {type(config).__name__}, expected an object")
    fmt = config.get("format")
    if fmt != FORMAT_NAME:
        raise _Bad(f"{CONFIG_MEMBER}: format: got {fmt!r}, expected {FORMAT_NAME!r}")
    version = config.get("format_version")
    if type(version) is not int:
        raise _Bad(f"{CONFIG_MEMBER}: format_version: got {version!r}, expected an integer")
    if version != FORMAT_VERSION:
        newer = " (written by a newer crnn; upgrade crnn to read it)" if version > FORMAT_VERSION else ""
        raise _Bad(f"{CONFIG_MEMBER}: format_version: got {version}, expected {FORMAT_VERSION}"
                   + newer)
    cls = config.get("class_name")
    if cls != "Sequential":
        raise _Bad(f"{CONFIG_MEMBER}: class_name: got {cls!r}, expected 'Sequential'")
    layers = config.get("config", {}).get("layers") if isinstance(config.get("config"), dict) \
        else None
    if isinstance(layers, list) and len(layers) > MAX_CONFIG_LAYERS:
        raise _Bad(f"{CONFIG_MEMBER}: lists {len(layers)} layers, more than the limit "
                   f"MAX_CONFIG_LAYERS = {MAX_CONFIG_LAYERS}")
    try:
        with _layers._deferred_weights():
            return Sequential.from_config(config.get("config"))
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise _Bad(f"{CONFIG_MEMBER}: invalid model config: {err}") from None


def _check_manifest(manifest: Any, specs: List[Tuple[str, Tuple[int, ...], str]]) -> None:
    want = [{"name": n, "shape": list(s), "dtype": d} for n, s, d in specs]
    if manifest != want:
        if not isinstance(manifest, list):
            raise _Bad(f"{CONFIG_MEMBER}: weights: got {type(manifest).__name__}, expected a list")
        for i, (got, exp) in enumerate(zip(manifest, want)):
            if got != exp:
                raise _Bad(f"{CONFIG_MEMBER}: weights[{i}]: got {got!r}, expected {exp!r} "
                           "(what the architecture in the config needs)")
        raise _Bad(f"{CONFIG_MEMBER}: weights: got {len(manifest)} entries, expected "
                   f"{len(want)} (what the architecture in the config needs)")


def _read_array(zf: zipfile.ZipFile, info: zipfile.ZipInfo, shape: Tuple[int, ...],
                dtype: str, what: str) -> np.ndarray:
    want = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    nbytes = count * want.itemsize
    if info.file_size > nbytes + MAX_NPY_HEADER + 16:
        raise _Bad(f"{what}: is {info.file_size} bytes, more than a {shape} {dtype} array needs")
    with zf.open(info) as f:
        try:
            major, minor = np.lib.format.read_magic(f)
            if (major, minor) == (1, 0):
                hshape, fortran, hdtype = np.lib.format.read_array_header_1_0(
                    f, max_header_size=MAX_NPY_HEADER)
            elif (major, minor) == (2, 0):
                hshape, fortran, hdtype = np.lib.format.read_array_header_2_0(
                    f, max_header_size=MAX_NPY_HEADER)
            else:
                raise _Bad(f"{what}: .npy format version {major}.{minor}, expected 1.0 or 2.0")
        except _Bad:
            raise
        except (ValueError, EOFError, OSError, SyntaxError) as err:
            raise _Bad(f"{what}: not a valid .npy array ({err})") from None
        if hdtype.hasobject or hdtype.kind != "f" or hdtype.itemsize != want.itemsize:
            raise _Bad(f"{what}: got dtype {hdtype}, expected {dtype}")
        if tuple(hshape) != tuple(shape):
            raise _Bad(f"{what}: got shape {tuple(hshape)}, expected {tuple(shape)}")
        data = f.read(nbytes + 1)
    if len(data) != nbytes:
        raise _Bad(f"{what}: got {len(data)} bytes of data, expected {nbytes}"
                   + (" (truncated)" if len(data) < nbytes else ""))
    arr = np.frombuffer(data, dtype=hdtype, count=count).reshape(shape, order="F" if fortran else "C")
    return np.array(arr, dtype=want, order="C")


def load_model(filepath: Any) -> Sequential:
    """Read a model written by :func:`save_model` / ``Sequential.save``.

    Parameters
    ----------
    filepath : str, os.PathLike or readable binary file object

    Returns
    -------
    Sequential
        With the saved architecture and weights (stateful layers start from
        zero states).

    Raises
    ------
    ValueError
        Not a crnn model file, an unsupported ``format_version``, an unknown
        layer class, weights that do not match the architecture, or a
        malformed, oversized or truncated archive; the message names the
        file and the problem.
    OSError
        The file cannot be read.
    """
    label = repr(os.fspath(filepath)) if not hasattr(filepath, "read") else "file object"
    try:
        try:
            zf = zipfile.ZipFile(filepath if hasattr(filepath, "read") else os.fspath(filepath))
        except zipfile.BadZipFile as err:
            raise _Bad(f"not a crnn model file: not a ZIP archive ({err})") from None
        with zf:
            infos = _members(zf, [CONFIG_MEMBER, WEIGHTS_MEMBER], "archive")
            config = _read_json(zf, infos[CONFIG_MEMBER], CONFIG_MEMBER)
            model = _model_from_config(config)
            specs = _weight_specs(model)
            _check_manifest(config.get("weights"), specs)
            need = sum(int(np.prod(s, dtype=np.int64)) * np.dtype(d).itemsize for _, s, d in specs)
            cap = (need + _ZIP_END_OVERHEAD
                   + sum(MAX_NPY_HEADER + _ZIP_MEMBER_OVERHEAD + 2 * len(n) for n, _, _ in specs))
            data = _read_capped(zf, infos[WEIGHTS_MEMBER], cap, WEIGHTS_MEMBER)
        try:
            inner = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as err:
            raise _Bad(f"{WEIGHTS_MEMBER}: not an .npz (ZIP) archive ({err})") from None
        with inner:
            entries = _members(inner, [n + ".npy" for n, _, _ in specs], WEIGHTS_MEMBER)
            arrays = [_read_array(inner, entries[n + ".npy"], s, d, f"{WEIGHTS_MEMBER}: {n}")
                      for n, s, d in specs]
    except _Bad as err:
        raise ValueError(f"load_model({label}): {err}") from None
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, zlib.error, NotImplementedError) as err:
        # NotImplementedError: zipfile's answer to a compression method it does not know.
        raise ValueError(f"load_model({label}): damaged or truncated archive ({err})") from None
    pos = 0
    for layer in model._layers:
        n = len(layer._weight_arrays())
        if n:
            layer.set_weights(arrays[pos:pos + n])
            pos += n
    return model
