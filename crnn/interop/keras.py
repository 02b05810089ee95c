"""Keras 3 models -> :class:`crnn.Sequential`.

Two entry points, one path:

- :func:`from_keras` takes a live Keras 3 model (``keras.Sequential`` or a functional
  ``keras.Model``): its ``get_config()`` and each layer's ``get_weights()``.
- :func:`load_keras` reads a model file **without Keras or TensorFlow**, with ``h5py``:

  - a ``.keras`` file, a zip holding ``config.json`` (the same architecture JSON),
    ``metadata.json`` and ``model.weights.h5``.  In that HDF5 file each layer's variables sit in
    ``layers/<snake_case class name>[_<n>]/vars/<i>`` (a recurrent layer's in
    ``.../cell/vars``, a Bidirectional's in ``.../forward_layer/cell/vars`` and
    ``.../backward_layer/cell/vars``), numbered per class in layer order; each ``vars`` group
    records the layer's name in its ``name`` attribute, which is how layers are matched to the
    config;
  - a legacy HDF5 model file (``model.save("model.h5")``, Keras 3's ``legacy_h5_format``, the
    layout Keras 2 wrote too): the config is the root attribute ``model_config``, and each
    layer's weights sit in ``model_weights/<layer name>``, in the order its attribute
    ``weight_names`` lists them.

Both build the same crnn model: a Sequential of SimpleRNN, LSTM, GRU, Dense, Embedding,
Bidirectional (around SimpleRNN, LSTM or GRU), Masking and Activation layers (``InputLayer``
gives the input shape; Dropout-like layers are identities at inference and are left out).  The
weights keep Keras's layout and gate order (LSTM i, f, c, o; GRU z, r, h, with ``reset_after``
either way), which is crnn's.  A functional model must be a single chain from one input to one
output.  Anything else raises an error naming the layer.  ``hard_sigmoid`` is Keras 3's,
relu6(x + 3) / 6; a file written by Keras 2 (whose hard_sigmoid was clip(0.2 x + 0.5, 0, 1))
that uses it is refused.

A model file is untrusted input.  :func:`load_keras` reads the config first (at most
:data:`crnn.saving.MAX_CONFIG_BYTES`, at most :data:`crnn.saving.MAX_CONFIG_LAYERS` layers),
builds the model's skeleton without weights, and so knows the name, shape and dtype of every
weight before any is read; they may total :data:`MAX_WEIGHTS_BYTES`.  A ``.keras`` file's
``model.weights.h5`` member is read streaming and capped at what those weights can need (five
times their bytes, for an optimizer's saved slots, plus HDF5 metadata per layer); a legacy
``.h5`` file is read in place, its string attributes checked for shape before they are read.
In either HDF5 file, only hard links, groups and float datasets of exactly the expected shapes,
stored inside the file (no external storage, external or soft links, virtual datasets, or
filters beyond deflate, shuffle, fletcher32, szip, scale-offset and LZF, so no filter plugin is
ever loaded) and holding their data, are read.  Every problem is a
:class:`KerasConversionError` naming it.
"""
from __future__ import annotations

import collections
import contextlib
import io
import os
import re
import warnings
import zipfile
import zlib
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..saving import MAX_CONFIG_LAYERS

__all__ = ["from_keras", "load_keras", "KerasConversionError", "MAX_WEIGHTS_BYTES"]


class KerasConversionError(ValueError):
    """A Keras model or file crnn cannot rebuild (the message says what and why)."""


MAX_WEIGHTS_BYTES = 2**32
"""Most bytes of weights the config of a ``.keras`` file may declare (checked before reading)."""

#: ``model.weights.h5`` may hold up to this many times the weights' bytes (an optimizer's slot
#: variables are saved beside the weights: Adam with amsgrad keeps three per weight) ...
_H5_WEIGHT_COPIES = 5
#: ... plus this much HDF5 metadata per layer of the config (Keras writes ~1 KiB per group),
_H5_BYTES_PER_LAYER = 64 * 2**10
#: ... plus this much for the file's own structures.
_H5_BASE_BYTES = 2**20
#: HDF5 filters that are built into HDF5 or h5py; any other would make HDF5 look for a plugin.
_H5_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 4: "szip", 6: "scaleoffset",
               32000: "lzf"}


SUPPORTED = ("SimpleRNN", "LSTM", "GRU", "Dense", "Embedding", "Bidirectional", "Masking",
             "Activation")
#: The recurrent layers (also what Bidirectional may wrap).
RECURRENT = ("SimpleRNN", "LSTM", "GRU")
#: Identities at inference (no weights, masks pass through unchanged).
SKIPPED = ("InputLayer", "Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout",
           "AlphaDropout", "ActivityRegularization")
#: Ops Keras records in a functional graph to compute a Masking layer's mask; crnn derives the
#: same mask itself.
_MASK_OPS = ("NotEqual", "Any")
_RNN_ACTIVATIONS = ("tanh", "relu", "sigmoid", "hard_sigmoid", "linear")
_DENSE_ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "softmax")


# ============================================================================ config helpers
def _snake(name: str) -> str:
    """keras.src.utils.naming.to_snake_case."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
    return name


def _activation_name(value: Any) -> str:
    """A Keras activation config (string, None or serialized function dict) as a name."""
    if value is None:
        return "linear"
    if isinstance(value, dict):
        inner = value.get("config")
        if value.get("class_name", "function") == "function" and isinstance(inner, str):
            return inner  # a function of keras.activations (or a registered one: "pkg>name")
        # Anything else is an object (a layer such as ReLU(max_value=...) or LeakyReLU): its
        # config's "name" is the layer's name, not what it computes, so it is named by class
        # and refused by the caller.
        return f"{value.get('class_name', '?')} object"
    if callable(value) and hasattr(value, "__name__"):
        return value.__name__
    return str(value)


def _dtype_name(cfg: Mapping[str, Any], where: str) -> str:
    """Layer dtype policy -> "float32"/"float64" (mixed/half precision runs in float32)."""
    d = cfg.get("dtype", "float32")
    if isinstance(d, dict):
        d = (d.get("config") or {}).get("name", "float32")
    d = "float32" if d is None else str(d)
    if d in ("float32", "float64"):
        return d
    if d in ("mixed_float16", "mixed_bfloat16", "float16", "bfloat16"):
        warnings.warn(f"{where}: dtype policy {d!r} runs in float32 in crnn; results differ "
                      "from Keras by its half-precision rounding", RuntimeWarning, stacklevel=4)
        return "float32"
    raise KerasConversionError(f"{where}: got dtype policy {d!r}, expected float32 or float64")


class _LayerSpec:
    """One layer of the chain: class name, config, weights (NumPy, Keras order)."""

    def __init__(self, class_name: str, config: Dict[str, Any], name: str,
                 build_shape: Optional[List[Any]] = None) -> None:
        self.class_name = class_name
        self.config = config
        self.name = name
        self.build_shape = build_shape
        self.weights: List[np.ndarray] = []

    def where(self) -> str:
        return f"layer {self.name!r} ({self.class_name})"


def _model_layers(config: Mapping[str, Any]) -> Tuple[str, List[Dict[str, Any]], Dict[str, Any]]:
    """(class_name, layer entries, inner config) of a serialized model, its structure checked:
    every entry a dict with a ``class_name`` string and a ``config`` dict (a Bidirectional's
    wrapped layers too), at most MAX_CONFIG_LAYERS entries."""
    cls = config.get("class_name")
    inner = config.get("config")
    if cls not in ("Sequential", "Functional", "Model") or not isinstance(inner, dict) \
            or not isinstance(inner.get("layers"), list):
        raise KerasConversionError(
            f"model: got a {cls or type(config).__name__} whose config lists no layers; crnn "
            "rebuilds Sequential and functional models (subclassed models have no portable "
            "architecture)")
    entries = inner["layers"]
    if len(entries) > MAX_CONFIG_LAYERS:
        raise KerasConversionError(f"model: lists {len(entries)} layers, more than the limit "
                                   f"MAX_CONFIG_LAYERS = {MAX_CONFIG_LAYERS}")
    for i, e in enumerate(entries):
        where = f"model: layers[{i}]"
        _check_entry(e, where)
        if e["class_name"] == "Bidirectional":
            for key in ("layer", "backward_layer"):
                sub = e["config"].get(key)
                if sub is not None or key == "layer":
                    _check_entry(sub, f"{where}: {key}")
    return cls, entries, inner


def _check_entry(e: Any, where: str) -> None:
    if not isinstance(e, dict):
        raise KerasConversionError(f"{where}: got {type(e).__name__}, expected a layer config "
                                   "(a dict with class_name and config)")
    if not isinstance(e.get("class_name"), str):
        raise KerasConversionError(f"{where}: class_name: got {e.get('class_name')!r}, "
                                   "expected a string")
    if not isinstance(e.get("config", {}), dict):
        raise KerasConversionError(f"{where}: config: got {type(e['config']).__name__}, "
                                   "expected a dict")


def _chain(config: Mapping[str, Any]) -> Tuple[List[_LayerSpec], Optional[List[Any]]]:
    """The model as a linear list of layers, and the input's batch shape if known."""
    cls, entries, inner = _model_layers(config)
    if cls == "Sequential":
        specs = [_spec(e) for e in entries]
        input_shape = inner.get("build_input_shape")
        return specs, input_shape if input_shape is not None else _input_layer_shape(specs)
    return _functional_chain(entries, inner)


def _input_layer_shape(specs: List[_LayerSpec]) -> Optional[List[Any]]:
    if specs and specs[0].class_name == "InputLayer":
        c = specs[0].config
        return c.get("batch_shape") or c.get("batch_input_shape")
    return None


def _spec(e: Dict[str, Any]) -> _LayerSpec:
    c = e.get("config", {})
    build = e.get("build_config")
    shape = build.get("input_shape") if isinstance(build, dict) else None
    return _LayerSpec(e["class_name"], c, e.get("name") or c.get("name", "?"),
                      shape if isinstance(shape, list) else None)


def _history(t: Any) -> Optional[str]:
    """Name of the layer that produced a serialized Keras tensor, else None."""
    if isinstance(t, dict) and t.get("class_name") == "__keras_tensor__":
        cfg = t.get("config")
        hist = cfg.get("keras_history") if isinstance(cfg, dict) else None
        if not isinstance(hist, list) or not hist or not isinstance(hist[0], str):
            raise KerasConversionError(f"model: a serialized tensor has keras_history {hist!r}, "
                                       "expected [layer name, node index, tensor index]")
        return hist[0]
    if isinstance(t, list) and len(t) == 3 and isinstance(t[0], str):  # older [name, n, i]
        return t[0]
    return None


def _io_names(v: Any) -> List[str]:
    """input_layers / output_layers: [name, 0, 0] or [[name, 0, 0], ...]."""
    if isinstance(v, list) and v and isinstance(v[0], str):
        return [v[0]]
    if not isinstance(v, list) or not all(isinstance(x, list) and x and isinstance(x[0], str)
                                          for x in v):
        raise KerasConversionError(f"model: input_layers / output_layers: got {v!r}, expected "
                                   "[[layer name, 0, 0], ...]")
    return [x[0] for x in v]


def _functional_chain(entries: List[Dict[str, Any]],
                      inner: Mapping[str, Any]) -> Tuple[List[_LayerSpec], Optional[List[Any]]]:
    by_name = {e.get("name") or e.get("config", {}).get("name"): e for e in entries}
    ins, outs = _io_names(inner.get("input_layers")), _io_names(inner.get("output_layers"))
    if len(ins) != 1 or len(outs) != 1:
        raise KerasConversionError(
            f"model: has {len(ins)} inputs and {len(outs)} outputs; crnn rebuilds models with "
            "one input and one output (a chain of layers)")
    chain: List[Dict[str, Any]] = []
    name = outs[0]
    seen = set()
    masked = set()  # layers called with a mask argument
    while True:
        if name in seen or name not in by_name:
            raise KerasConversionError(f"model: the graph around layer {name!r} is malformed")
        seen.add(name)
        e = by_name[name]
        chain.append(e)
        if name == ins[0]:
            break
        nodes = e.get("inbound_nodes") or []
        where = f"layer {name!r} ({e.get('class_name')})"
        if not isinstance(nodes, list) or len(nodes) != 1:
            raise KerasConversionError(f"{where}: is called {len(nodes)} times; crnn rebuilds a "
                                       "chain in which each layer is used once")
        node = nodes[0]
        if isinstance(node, list):  # Keras 2.13+ format: [[name, node_index, tensor_index, kw]]
            srcs = [a[0] for a in node if isinstance(a, list) and a and isinstance(a[0], str)]
            kw0 = node[0][3] if node and isinstance(node[0], list) and len(node[0]) > 3 else {}
            args, kwargs = [], kw0 or {}
        elif isinstance(node, dict):
            args, kwargs = node.get("args", []), node.get("kwargs", {}) or {}
            if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
                raise KerasConversionError(f"{where}: malformed inbound node {node!r}")
            first = args[0] if args else None
            many = isinstance(first, (list, tuple)) and first and not isinstance(first[0], str)
            srcs = [h for h in (_history(a) for a in (first if many else [first])) if h]
        else:
            raise KerasConversionError(f"{where}: malformed inbound node {node!r}")
        if not isinstance(kwargs, dict):
            raise KerasConversionError(f"{where}: malformed inbound node {node!r}")
        extra = [h for h in (_history(a) for a in args[1:]) if h]
        if len(srcs) != 1 or extra:
            raise KerasConversionError(
                f"{where}: takes {len(srcs) + len(extra)} tensors; crnn rebuilds a chain of "
                "single-input layers (no merges or branches)")
        for k, v in kwargs.items():
            if _history(v) and k != "mask":
                raise KerasConversionError(f"{where}: receives tensor argument {k!r}; crnn does "
                                           "not support initial states or other side inputs")
            if _history(v):
                masked.add(name)
        name = srcs[0]
    chain.reverse()
    specs = [_spec(e) for e in chain]
    # Keras records the mask a Masking or Embedding(mask_zero=True) layer propagates as a mask
    # argument of the layers after it; crnn rebuilds that mask from the layer. A mask argument
    # with no such layer before it was computed some other way, and would be lost.
    has_source = False
    for sp in specs:
        has_source = has_source or sp.class_name == "Masking" or (
            sp.class_name == "Embedding" and bool(sp.config.get("mask_zero")))
        if sp.name in masked and not has_source:
            raise KerasConversionError(
                f"{sp.where()}: receives a mask computed in the model; crnn takes only the mask "
                "of a Masking or Embedding(mask_zero=True) layer in the chain")
    return specs, _input_layer_shape(specs)


# ============================================================================ weights
_WEIGHT_PATHS = {"SimpleRNN": ("cell/vars",), "LSTM": ("cell/vars",), "GRU": ("cell/vars",),
                 "Dense": ("vars",), "Embedding": ("vars",),
                 "Bidirectional": ("forward_layer/cell/vars", "backward_layer/cell/vars")}


def _h5_child(h5py: Any, group: Any, key: str, member: str = "model.weights.h5") -> Any:
    """``group[key]`` if that is a hard link, None if absent; other links are refused before
    they are followed (an external link opens another file, a soft link points anywhere).
    ``member`` names the HDF5 file in messages (empty: a legacy ``.h5`` file itself)."""
    where = _h5_where(member, f"{group.name.rstrip('/')}/{key}")
    link = group.get(key, getlink=True)
    if link is None:
        return None
    if isinstance(link, h5py.ExternalLink):
        raise KerasConversionError(f"{where}: is an external link to {link.filename!r}; crnn "
                                   f"reads only data inside {member or 'the file'}")
    if isinstance(link, h5py.SoftLink):
        raise KerasConversionError(f"{where}: is a soft link to {link.path!r}; crnn follows "
                                   "only hard links (Keras writes no others)")
    if not isinstance(link, h5py.HardLink):
        raise KerasConversionError(f"{where}: is a {type(link).__name__}; crnn follows only "
                                   "hard links")
    return group[key]


def _h5_where(member: str, path: str) -> str:
    return f"{member}: {path}" if member else path


def _h5_group(h5py: Any, group: Any, path: str, member: str = "model.weights.h5") -> Any:
    """The group at ``path`` below ``group`` through hard links only, or None if absent."""
    node = group
    for part in path.split("/"):
        node = _h5_child(h5py, node, part, member)
        if node is None:
            return None
        if not isinstance(node, h5py.Group):
            raise KerasConversionError(f"{_h5_where(member, node.name)}: is not a group (got "
                                       f"a {type(node).__name__})")
    return node


def _h5_groups(h5py: Any, h5: Any, entries: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Layer name -> its HDF5 group, by the ``name`` attribute Keras writes on ``vars`` groups,
    else by Keras's path rule (snake_case class name, numbered per class in layer order)."""
    root = _h5_group(h5py, h5, "layers")
    if root is None:
        raise KerasConversionError("model.weights.h5: has no 'layers' group; expected the "
                                   "weights of a Keras 3 Sequential or functional model")
    found: Dict[str, Any] = {}
    for key in root:
        if not isinstance(root.get(key, getlink=True), h5py.HardLink):
            continue          # refused below if a layer's path leads there
        group = root[key]
        if not isinstance(group, h5py.Group) or \
                not isinstance(group.get("vars", getlink=True), h5py.HardLink):
            continue
        vars_group = group["vars"]
        name = vars_group.attrs.get("name") if isinstance(vars_group, h5py.Group) else None
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        if isinstance(name, str) and name:
            found[name] = key
    counts: Dict[str, int] = {}
    paths: Dict[str, str] = {}
    for e in entries:
        name = e.get("name") or e.get("config", {}).get("name")
        snake = _snake(e["class_name"])
        n = counts.get(snake)
        counts[snake] = 0 if n is None else n + 1
        path = snake if n is None else f"{snake}_{n + 1}"
        if e["class_name"] in _WEIGHT_PATHS:
            paths[name] = found.get(name, path)
    return {name: _h5_group(h5py, root, path) for name, path in paths.items()}


def _read_vars(h5py: Any, group: Any, shapes: List[Tuple[int, ...]]) -> List[np.ndarray]:
    """Datasets ``0``, ``1``, ... of ``group``, each checked against its expected shape and
    storage before it is read."""
    keys = list(group.keys())
    want = [str(i) for i in range(len(shapes))]
    if sorted(keys) != sorted(want):
        raise KerasConversionError(f"model.weights.h5: {group.name}: holds {sorted(keys)}, "
                                   f"expected the {len(want)} weights {want} of shapes {shapes}")
    datasets = []
    for key, shape in zip(want, shapes):
        d = _h5_child(h5py, group, key)
        where = f"model.weights.h5: {d.name}"
        if not isinstance(d, h5py.Dataset):
            raise KerasConversionError(f"{where}: is not a dataset")
        _check_dataset(d, tuple(shape), where)
        datasets.append(d)
    return [np.asarray(d[()]) for d in datasets]


def _check_dataset(d: Any, shape: Tuple[int, ...], where: str,
                   member: str = "model.weights.h5") -> None:
    """Refuse a dataset that is not what the config needs, or whose data lives elsewhere."""
    if tuple(d.shape) != shape:
        raise KerasConversionError(f"{where}: got shape {tuple(d.shape)}, expected {shape} "
                                   "(what the config's layer needs)")
    if d.dtype.kind != "f":
        raise KerasConversionError(f"{where}: got dtype {d.dtype}, expected float")
    if d.external:
        raise KerasConversionError(f"{where}: uses external storage "
                                   f"({[e[0] for e in d.external]}); crnn reads only data "
                                   f"inside {member or 'the file'}")
    if d.is_virtual:
        raise KerasConversionError(f"{where}: is a virtual dataset (its data lives in other "
                                   "datasets or files); crnn reads only plain datasets")
    plist = d.id.get_create_plist()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    unknown = [f for f in filters if f not in _H5_FILTERS]
    if unknown:
        raise KerasConversionError(f"{where}: uses HDF5 filter(s) {unknown}; crnn reads only "
                                   f"{sorted(_H5_FILTERS.values())} (others load plugins)")
    nbytes = int(np.prod(shape, dtype=np.int64)) * d.dtype.itemsize
    stored = d.id.get_storage_size()
    if nbytes and (stored == 0 or (not filters and stored < nbytes)):
        raise KerasConversionError(f"{where}: holds {stored} bytes of its {nbytes} (an "
                                   "unwritten or truncated dataset)")


# ============================================================================ building crnn
def _int_arg(cfg: Mapping[str, Any], key: str, where: str) -> int:
    v = cfg.get(key)
    if not isinstance(v, int) or isinstance(v, bool):
        raise KerasConversionError(f"{where}: {key}: got {v!r}, expected an integer")
    return v


def _rnn_activation(cfg: Mapping[str, Any], key: str, default: str, where: str,
                    keras2: bool) -> str:
    act = _activation_name(cfg.get(key, default))
    if act not in _RNN_ACTIVATIONS:
        raise KerasConversionError(f"{where}: got {key} {act!r}, expected one of "
                                   f"{list(_RNN_ACTIVATIONS)}")
    if act == "hard_sigmoid" and keras2:
        raise KerasConversionError(
            f"{where}: got {key} 'hard_sigmoid' in a file written by Keras 2, whose "
            "hard_sigmoid is clip(0.2 * x + 0.5, 0, 1); crnn runs Keras 3's, "
            "relu6(x + 3) / 6")
    return act


def _rnn_kwargs(class_name: str, cfg: Mapping[str, Any], where: str,
                keras2: bool = False) -> Dict[str, Any]:
    """Keyword arguments of crnn's SimpleRNN / LSTM / GRU from the Keras config."""
    act = _rnn_activation(cfg, "activation", "tanh", where, keras2)
    other = {"SimpleRNN": ("unit_forget_bias", "reset_after", "recurrent_activation"),
             "LSTM": ("reset_after",), "GRU": ("unit_forget_bias",)}[class_name]
    if any(cfg.get(k) is not None for k in other):
        raise KerasConversionError(f"{where}: is not a {class_name} config (it has "
                                   f"{[k for k in other if cfg.get(k) is not None]})")
    if cfg.get("time_major"):
        raise KerasConversionError(f"{where}: got time_major=True (Keras 2); crnn reads "
                                   "(batch, timesteps, features) inputs")
    kw = {"units": _int_arg(cfg, "units", where), "activation": act,
          "use_bias": bool(cfg.get("use_bias", True)),
          "return_sequences": bool(cfg.get("return_sequences", False)),
          "return_state": bool(cfg.get("return_state", False)),
          "go_backwards": bool(cfg.get("go_backwards", False)),
          "stateful": bool(cfg.get("stateful", False)),
          "zero_output_for_mask": bool(cfg.get("zero_output_for_mask", False)),
          "dtype": _dtype_name(cfg, where)}
    if class_name != "SimpleRNN":
        kw["recurrent_activation"] = _rnn_activation(cfg, "recurrent_activation", "sigmoid",
                                                     where, keras2)
    if class_name == "GRU":
        kw["reset_after"] = bool(cfg.get("reset_after", True))
    return kw


def _build(specs: List[_LayerSpec], input_shape: Optional[Sequence[Any]], name: Optional[str],
           keras2: bool = False):
    """crnn.Sequential from the chain, with placeholder weights (no memory, no random draws),
    built if the input shape is known.  Returns ``(model, [(spec, layer)])``; errors name
    unsupported layers.  ``keras2``: the file was written by Keras 2 (its hard_sigmoid differs)."""
    import crnn
    from crnn import layers as L

    bad = [s for s in specs if s.class_name not in SUPPORTED + SKIPPED + _MASK_OPS]
    if bad:
        names = ", ".join(f"{s.name!r} ({s.class_name})" for s in bad)
        raise KerasConversionError(
            f"model: has layer(s) crnn does not support: {names}. Supported: "
            f"{', '.join(SUPPORTED)} (and {', '.join(SKIPPED)}, which are identities at "
            "inference)")
    kept = [s for s in specs if s.class_name not in SKIPPED + _MASK_OPS]
    if not kept:
        raise KerasConversionError("model: has no layers crnn can run")
    if input_shape is None:
        input_shape = kept[0].build_shape
    shape = tuple(input_shape) if isinstance(input_shape, (list, tuple)) else None
    with L._deferred_weights():
        pairs = []
        for s in kept:
            try:
                pairs.append((s, _make_layer(L, s, keras2)))
            except KerasConversionError:
                raise
            except (ValueError, TypeError, KeyError, AttributeError) as err:
                raise KerasConversionError(f"{s.where()}: {err}") from None
        model = crnn.Sequential(name=name) if isinstance(name, str) and name else crnn.Sequential()
        for s, layer in pairs:
            try:
                model.add(layer)
            except (ValueError, TypeError) as err:
                raise KerasConversionError(f"{s.where()}: cannot follow the previous layer: "
                                           f"{err}") from None
        if shape is not None and (shape[-1] is not None or kept[0].class_name == "Embedding"):
            try:
                model.build(shape)
            except (ValueError, TypeError) as err:
                raise KerasConversionError(f"model: input shape {shape} does not fit the "
                                           f"layers: {err}") from None
    return model, pairs


def _install(pairs: List[Tuple[_LayerSpec, Any]]) -> None:
    for s, layer in pairs:
        if s.class_name in _WEIGHT_PATHS and not s.weights:
            raise KerasConversionError(f"{s.where()}: has no weights (is the Keras model built?)")
        if s.weights:
            try:
                layer.set_weights(s.weights)
            except (ValueError, TypeError) as err:
                raise KerasConversionError(f"{s.where()}: weights do not fit: {err}") from None


def _make_layer(L: Any, s: _LayerSpec, keras2: bool = False):
    cfg, where = s.config, s.where()
    name = s.name
    if s.class_name in RECURRENT:
        return getattr(L, s.class_name)(name=name, **_rnn_kwargs(s.class_name, cfg, where, keras2))
    if s.class_name == "Dense":
        act = _activation_name(cfg.get("activation"))
        if act not in _DENSE_ACTIVATIONS:
            raise KerasConversionError(f"{where}: got activation {act!r}, expected one of "
                                       f"{list(_DENSE_ACTIVATIONS)}")
        return L.Dense(_int_arg(cfg, "units", where), activation=act,
                       use_bias=bool(cfg.get("use_bias", True)),
                       dtype=_dtype_name(cfg, where), name=name)
    if s.class_name == "Embedding":
        return L.Embedding(_int_arg(cfg, "input_dim", where), _int_arg(cfg, "output_dim", where),
                           mask_zero=bool(cfg.get("mask_zero", False)),
                           dtype=_dtype_name(cfg, where), name=name)
    if s.class_name == "Masking":
        return L.Masking(mask_value=float(cfg.get("mask_value", 0.0)), name=name)
    if s.class_name == "Activation":
        act = _activation_name(cfg.get("activation"))
        if act not in _DENSE_ACTIVATIONS:
            raise KerasConversionError(f"{where}: got activation {act!r}, expected one of "
                                       f"{list(_DENSE_ACTIVATIONS)}")
        return L.Activation(act, name=name)
    if s.class_name == "Bidirectional":
        subs = []
        for key in ("layer", "backward_layer"):
            sub = cfg.get(key)
            if sub is None:
                continue
            kind = sub.get("class_name")
            if kind not in RECURRENT:
                raise KerasConversionError(f"{where}: wraps a {kind}; crnn supports "
                                           f"Bidirectional around {', '.join(RECURRENT)}")
            subs.append(getattr(L, kind)(**_rnn_kwargs(kind, sub.get("config", {}), where,
                                                       keras2)))
        kw: Dict[str, Any] = {"merge_mode": cfg.get("merge_mode", "concat"), "name": name}
        if len(subs) == 2:
            kw["backward_layer"] = subs[1]
        return L.Bidirectional(subs[0], **kw)
    raise AssertionError(s.class_name)  # pragma: no cover - filtered by _build


# ============================================================================ entry points
def from_keras(model: Any):
    """Rebuild a live Keras 3 model as a :class:`crnn.Sequential` with the same weights.

    Parameters
    ----------
    model : keras.Sequential or functional keras.Model
        Layers: SimpleRNN, LSTM, GRU, Dense, Embedding, Bidirectional (around SimpleRNN, LSTM
        or GRU), Masking, Activation, InputLayer (and Dropout-like layers, left out).  A
        functional model must be one chain.

    Raises
    ------
    KerasConversionError (a ValueError)
        Unsupported layers (named), activations, graphs or dtypes.
    """
    if not hasattr(model, "get_config") or not hasattr(model, "layers"):
        raise TypeError(f"from_keras: got {type(model).__name__}, expected a Keras model "
                        "(keras.Sequential or keras.Model); for a file use crnn.load_keras")
    cls = type(model).__name__
    try:
        cfg = model.get_config()
    except NotImplementedError:
        raise KerasConversionError(f"model: {cls} has no config (a subclassed model?); crnn "
                                   "rebuilds Sequential and functional models") from None
    if cls not in ("Sequential", "Functional"):
        cls = "Functional" if "input_layers" in cfg else cls
    specs, shape = _chain({"class_name": cls, "config": cfg})
    layers = {layer.name: layer for layer in model.layers}
    for s in specs:
        if s.class_name in _WEIGHT_PATHS:
            layer = layers.get(s.name)
            if layer is None:
                raise KerasConversionError(f"{s.where()}: not found in model.layers")
            s.weights = [np.array(w) for w in layer.get_weights()]
    if shape is None:
        try:
            shape = list(model.input_shape)
        except (AttributeError, ValueError, TypeError):
            shape = None
    keras2 = any(k.__module__.startswith(("tf_keras", "keras.engine", "tensorflow"))
                 for k in type(model).__mro__)
    crnn_model, pairs = _build(specs, shape, cfg.get("name"), keras2)
    _install(pairs)
    return crnn_model


def _archive_members(zf: zipfile.ZipFile) -> Dict[str, zipfile.ZipInfo]:
    """Name -> entry of a .keras archive: no duplicated names (counted in linear time),
    config.json and model.weights.h5 present."""
    infos = zf.infolist()
    counts = collections.Counter(i.filename for i in infos)
    dups = sorted(n for n, k in counts.items() if k > 1)
    if dups:
        raise KerasConversionError(f"archive: got duplicated member(s) {dups}")
    missing = [n for n in ("config.json", "model.weights.h5") if n not in counts]
    if missing:
        raise KerasConversionError(f".keras archive lacks {missing} (has {sorted(counts)[:20]})")
    return {i.filename: i for i in infos}


def _expected_weights(pairs: List[Tuple[_LayerSpec, Any]]) -> Tuple[Dict[str, List[Any]], int]:
    """Layer name -> shapes of its weights in Keras order, from the model built with
    placeholders, and their total bytes (at most MAX_WEIGHTS_BYTES)."""
    shapes: Dict[str, List[Any]] = {}
    total = 0
    for s, layer in pairs:
        if s.class_name not in _WEIGHT_PATHS:
            continue
        arrays = layer._weight_arrays()
        if not arrays:
            raise KerasConversionError(
                "config.json: does not give the model's input shape (an InputLayer's "
                "batch_shape, build_input_shape or the first layer's build_config); crnn "
                "needs it to check the weights before reading them")
        shapes[s.name] = [tuple(int(d) for d in a.shape) for a in arrays]
        total += sum(int(a.size) * a.dtype.itemsize for a in arrays)
    if total > MAX_WEIGHTS_BYTES:
        raise KerasConversionError(f"config.json: declares {total} bytes of weights, more than "
                                   f"the limit MAX_WEIGHTS_BYTES = {MAX_WEIGHTS_BYTES}")
    return shapes, total


def _read_h5_weights(h5py: Any, h5: Any, pairs: List[Tuple[_LayerSpec, Any]],
                     entries: List[Dict[str, Any]], shapes: Dict[str, List[Any]]) -> None:
    groups = _h5_groups(h5py, h5, entries)
    for s, _ in pairs:
        paths = _WEIGHT_PATHS.get(s.class_name)
        if not paths:
            continue
        g = groups.get(s.name)
        if g is None:
            raise KerasConversionError(f"{s.where()}: has no weights in model.weights.h5")
        want = shapes[s.name]
        per_path = len(want) // len(paths)
        s.weights = []
        for k, p in enumerate(paths):
            sub = _h5_group(h5py, g, p)
            if sub is None:
                raise KerasConversionError(f"{s.where()}: model.weights.h5 has no group "
                                           f"{g.name}/{p}")
            s.weights.extend(_read_vars(h5py, sub, want[k * per_path:(k + 1) * per_path]))


# ============================================================================ legacy .h5
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _h5_text_attr(h5: Any, key: str, where: str, cap: int,
                  count: Optional[int] = None) -> Optional[Any]:
    """A string attribute (``count`` None: one string; else a list of ``count`` strings) of at
    most ``cap`` bytes, or None if absent.  Its shape is checked before it is read, so reading
    costs at most what the file holds per string (a variable-length string's size is only
    known once read; a fixed-length one's is checked before)."""
    if key not in h5.attrs:
        return None
    aid = h5.attrs.get_id(key)
    shape = tuple(aid.shape or ())
    if count is None and shape not in ((), (1,)) or count is not None and shape != (count,):
        want = "one string" if count is None else f"a list of {count} strings"
        raise KerasConversionError(f"{where}: attribute {key} has shape {shape}, expected {want}")
    if aid.get_storage_size() > cap:
        raise KerasConversionError(f"{where}: attribute {key} holds {aid.get_storage_size()} "
                                   f"bytes, more than {cap}")
    value = h5.attrs[key]

    def text(v: Any) -> str:
        if isinstance(v, bytes):
            return v.decode("utf-8")
        if isinstance(v, str):
            return v
        raise KerasConversionError(f"{where}: attribute {key}: got {type(v).__name__}, "
                                   "expected text")
    try:
        items = [text(v) for v in np.asarray(value, dtype=object).reshape(-1).tolist()]
    except UnicodeDecodeError:
        raise KerasConversionError(f"{where}: attribute {key} is not valid UTF-8") from None
    size = sum(len(v) for v in items)
    if size > cap:
        raise KerasConversionError(f"{where}: attribute {key} holds {size} bytes, more than "
                                   f"{cap}")
    return items if count is not None else items[0]


def _legacy_config(h5: Any) -> Tuple[Dict[str, Any], str]:
    """The model config and the Keras version of a legacy ``.h5`` model file."""
    import json

    from ..saving import MAX_CONFIG_BYTES
    raw = _h5_text_attr(h5, "model_config", "file", MAX_CONFIG_BYTES)
    if raw is None:
        raise KerasConversionError("has no model_config attribute: not a Keras model file (a "
                                   "weights-only file, as save_weights writes, has no "
                                   "architecture)")
    try:
        config = json.loads(raw) if isinstance(raw, str) else None
    except ValueError as err:
        raise KerasConversionError(f"attribute model_config: not valid JSON ({err})") from None
    except RecursionError:
        raise KerasConversionError("attribute model_config: JSON nested too deeply") from None
    if not isinstance(config, dict):
        raise KerasConversionError("attribute model_config is not a model config")
    version = _h5_text_attr(h5, "keras_version", "file", 256)
    return config, version if isinstance(version, str) else ""


def _read_legacy_weights(h5py: Any, h5: Any, pairs: List[Tuple[_LayerSpec, Any]],
                         shapes: Dict[str, List[Any]]) -> None:
    """Each layer's weights from ``/model_weights/<layer name>``, in the order of that group's
    ``weight_names`` attribute (how Keras's legacy HDF5 format stores them)."""
    root = _h5_group(h5py, h5, "model_weights", member="")
    if root is None:
        raise KerasConversionError("has no model_weights group")
    for s, _ in pairs:
        if s.class_name not in _WEIGHT_PATHS:
            continue
        g = _h5_child(h5py, root, s.name, member="")
        if not isinstance(g, h5py.Group):
            raise KerasConversionError(f"{s.where()}: has no weights in /model_weights")
        want = shapes[s.name]
        names = _h5_text_attr(g, "weight_names", f"{s.where()}: {g.name}", 2**16, len(want))
        if names is None:
            raise KerasConversionError(f"{s.where()}: {g.name} has no attribute weight_names")
        datasets = []
        for name, shape in zip(names, want):
            *parents, leaf = name.split("/")
            parent = _h5_group(h5py, g, "/".join(parents), member="") if parents else g
            d = None if parent is None else _h5_child(h5py, parent, leaf, member="")
            if not isinstance(d, h5py.Dataset):
                raise KerasConversionError(f"{g.name}/{name}: is not a dataset (listed in "
                                           "weight_names)")
            _check_dataset(d, tuple(shape), d.name, member="")
            datasets.append(d)
        s.weights = [np.asarray(d[()]) for d in datasets]


def _skeleton(config: Dict[str, Any], version: Any):
    """The crnn model a file's config describes, with placeholder weights: ``(model,
    [(spec, layer)], config entries)``; ``version`` is the Keras version that wrote the file."""
    specs, shape = _chain(config)
    _, entries, inner = _model_layers(config)
    model, pairs = _build(specs, shape, inner.get("name"),
                          keras2=str(version or "").startswith(("1.", "2.")))
    return model, pairs, entries


@contextlib.contextmanager
def _reading_h5(label: str, what: str) -> Iterator[None]:
    """Errors while reading HDF5 weights as KerasConversionError prefixed by the file's label."""
    try:
        yield
    except KerasConversionError as err:
        raise KerasConversionError(f"{label}: {err}") from None
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as err:
        raise KerasConversionError(f"{label}: {what} ({type(err).__name__}: {err})") from None


def _load_legacy_h5(h5py: Any, src: Any, label: str):
    """A model file in Keras's legacy HDF5 format (``model.save("model.h5")``)."""
    try:
        h5 = h5py.File(src, "r")
    except OSError as err:
        raise KerasConversionError(f"{label}: is not a valid HDF5 file ({err})") from None
    with _reading_h5(label, "cannot be read as a Keras HDF5 model"), h5:
        config, version = _legacy_config(h5)
        model, pairs, _ = _skeleton(config, version)
        shapes, _ = _expected_weights(pairs)
        _read_legacy_weights(h5py, h5, pairs, shapes)
    _install(pairs)
    return model


def _signature(src: Any) -> bytes:
    """The first 8 bytes of a path or a seekable binary file (its position kept)."""
    if isinstance(src, str):
        with open(src, "rb") as f:
            return f.read(8)
    pos = src.tell()
    head = src.read(8)
    src.seek(pos)
    return head if isinstance(head, bytes) else b""


def load_keras(path: Any):
    """Load a Keras model file as a :class:`crnn.Sequential`, without Keras.

    Reads ``.keras`` files and the legacy HDF5 format (``model.save("model.h5")``), told apart
    by their first bytes.  Needs only ``h5py`` (``pip install "crnn[keras]"``).  Accepts a
    path or a seekable binary file object.  The file is not trusted: see the module docstring
    for what is checked, and the limits (:data:`crnn.saving.MAX_CONFIG_BYTES`,
    :data:`crnn.saving.MAX_CONFIG_LAYERS`, :data:`MAX_WEIGHTS_BYTES`).

    Raises
    ------
    KerasConversionError (a ValueError)
        Neither a ``.keras`` archive nor a Keras HDF5 model, missing or duplicated members, a
        malformed or oversized config, unsupported layers (named), weights that do not match
        the architecture, HDF5 links, storage or filters that crnn does not read, or a limit
        exceeded (named).
    OSError
        The file cannot be read.
    """
    try:
        import h5py
    except ImportError:
        raise ImportError("load_keras needs h5py to read the weights: pip install h5py "
                          "(or pip install 'crnn[keras]')") from None
    from ..saving import _Bad, _read_capped, _read_json

    src = os.fspath(path) if isinstance(path, (str, os.PathLike)) else path
    label = repr(src) if isinstance(src, str) else "file object"
    if _signature(src) == _HDF5_SIGNATURE:
        return _load_legacy_h5(h5py, src, label)
    try:
        zf = zipfile.ZipFile(src)
    except zipfile.BadZipFile:
        raise KerasConversionError(f"{label}: is not a Keras model file (neither a .keras zip "
                                   "archive nor HDF5)") from None
    try:
        with zf:
            infos = _archive_members(zf)
            config = _read_json(zf, infos["config.json"], "config.json")
            if not isinstance(config, dict):
                raise KerasConversionError("config.json is not a model config")
            meta = (_read_json(zf, infos["metadata.json"], "metadata.json")
                    if "metadata.json" in infos else {})
            version = meta.get("keras_version") if isinstance(meta, dict) else None
            model, pairs, entries = _skeleton(config, version)
            shapes, need = _expected_weights(pairs)
            cap = _H5_WEIGHT_COPIES * need + _H5_BYTES_PER_LAYER * len(entries) + _H5_BASE_BYTES
            weights_bytes = _read_capped(zf, infos["model.weights.h5"], cap, "model.weights.h5")
    except KerasConversionError as err:
        raise KerasConversionError(f"{label}: {err}") from None
    except _Bad as err:
        raise KerasConversionError(f"{label}: {err}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError,
            RuntimeError) as err:
        # NotImplementedError: an unknown compression; RuntimeError: an encrypted member.
        raise KerasConversionError(f"{label}: damaged .keras archive ({type(err).__name__}: "
                                   f"{err})") from None
    try:
        h5 = h5py.File(io.BytesIO(weights_bytes), "r")
    except OSError as err:
        raise KerasConversionError(f"{label}: model.weights.h5 is not a valid HDF5 file "
                                   f"({err})") from None
    with _reading_h5(label, "model.weights.h5 cannot be read"), h5:
        _read_h5_weights(h5py, h5, pairs, entries, shapes)
    _install(pairs)
    return model
