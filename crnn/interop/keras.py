"""Keras 3 models -> :class:`crnn.Sequential`.

Two entry points, one path:

- :func:`from_keras` takes a live Keras 3 model (``keras.Sequential`` or a functional
  ``keras.Model``): its ``get_config()`` and each layer's ``get_weights()``.
- :func:`load_keras` reads a ``.keras`` file **without Keras or TensorFlow**: the file is a zip
  holding ``config.json`` (the same architecture JSON), ``metadata.json`` and
  ``model.weights.h5``, read here with ``h5py``.  In the HDF5 file each layer's variables sit in
  ``layers/<snake_case class name>[_<n>]/vars/<i>`` (a recurrent layer's in ``.../cell/vars``,
  a Bidirectional's in ``.../forward_layer/cell/vars`` and ``.../backward_layer/cell/vars``),
  numbered per class in layer order; each ``vars`` group records the layer's name in its
  ``name`` attribute, which is how layers are matched to the config.

Both build the same crnn model: a Sequential of SimpleRNN, Dense, Embedding, Bidirectional,
Masking and Activation layers (``InputLayer`` gives the input shape; Dropout-like layers are
identities at inference and are left out).  A functional model must be a single chain from one
input to one output.  Anything else raises an error naming the layer.
"""
from __future__ import annotations

import io
import json
import os
import re
import warnings
import zipfile
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = ["from_keras", "load_keras", "KerasConversionError"]


class KerasConversionError(ValueError):
    """A Keras model or file crnn cannot rebuild (the message says what and why)."""


SUPPORTED = ("SimpleRNN", "Dense", "Embedding", "Bidirectional", "Masking", "Activation")
#: Identities at inference (no weights, masks pass through unchanged).
SKIPPED = ("InputLayer", "Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout",
           "AlphaDropout", "ActivityRegularization")
#: Ops Keras records in a functional graph to compute a Masking layer's mask; crnn derives the
#: same mask itself.
_MASK_OPS = ("NotEqual", "Any")
_RNN_ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")
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
        if isinstance(inner, str):
            return inner
        if isinstance(inner, dict) and isinstance(inner.get("name"), str):
            return inner["name"]
        return str(value.get("class_name", value))
    if callable(value):
        return getattr(value, "__name__", str(value))
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

    def __init__(self, class_name: str, config: Dict[str, Any], name: str) -> None:
        self.class_name = class_name
        self.config = config
        self.name = name
        self.weights: List[np.ndarray] = []

    def where(self) -> str:
        return f"layer {self.name!r} ({self.class_name})"


def _model_layers(config: Mapping[str, Any]) -> Tuple[str, List[Dict[str, Any]], Dict[str, Any]]:
    """(class_name, layer entries, inner config) of a serialized model."""
    cls = config.get("class_name")
    inner = config.get("config")
    if cls not in ("Sequential", "Functional", "Model") or not isinstance(inner, dict) \
            or not isinstance(inner.get("layers"), list):
        raise KerasConversionError(
            f"model: got a {cls or type(config).__name__} whose config lists no layers; crnn "
            "rebuilds Sequential and functional models (subclassed models have no portable "
            "architecture)")
    return cls, inner["layers"], inner


def _chain(config: Mapping[str, Any]) -> Tuple[List[_LayerSpec], Optional[List[Any]]]:
    """The model as a linear list of layers, and the input's batch shape if known."""
    cls, entries, inner = _model_layers(config)
    if cls == "Sequential":
        specs = []
        for e in entries:
            c = e.get("config", {})
            specs.append(_LayerSpec(e.get("class_name", "?"), c, c.get("name", "?")))
        input_shape = inner.get("build_input_shape")
        return specs, input_shape
    return _functional_chain(entries, inner)


def _history(t: Any) -> Optional[str]:
    """Name of the layer that produced a serialized Keras tensor, else None."""
    if isinstance(t, dict) and t.get("class_name") == "__keras_tensor__":
        return t["config"]["keras_history"][0]
    if isinstance(t, list) and len(t) == 3 and isinstance(t[0], str):  # older [name, n, i]
        return t[0]
    return None


def _io_names(v: Any) -> List[str]:
    """input_layers / output_layers: [name, 0, 0] or [[name, 0, 0], ...]."""
    if isinstance(v, list) and v and isinstance(v[0], str):
        return [v[0]]
    return [x[0] for x in (v or [])]


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
        if len(nodes) != 1:
            raise KerasConversionError(f"{where}: is called {len(nodes)} times; crnn rebuilds a "
                                       "chain in which each layer is used once")
        node = nodes[0]
        if isinstance(node, list):  # Keras 2.13+ format: [[name, node_index, tensor_index, kw]]
            srcs = [a[0] for a in node if isinstance(a, list) and a and isinstance(a[0], str)]
            args, kwargs = [], (node[0][3] if node and len(node[0]) > 3 else {}) or {}
        else:
            args, kwargs = node.get("args", []), node.get("kwargs", {}) or {}
            first = args[0] if args else None
            many = isinstance(first, list) and first and not isinstance(first[0], str)
            srcs = [h for h in (_history(a) for a in (first if many else [first])) if h]
        extra = [h for h in (_history(a) for a in args[1:]) if h]
        if len(srcs) != 1 or extra:
            raise KerasConversionError(
                f"{where}: takes {len(srcs) + len(extra)} tensors; crnn rebuilds a chain of "
                "single-input layers (no merges or branches)")
        for k, v in kwargs.items():
            if _history(v) and k != "mask":
                raise KerasConversionError(f"{where}: receives tensor argument {k!r}; crnn does "
                                           "not support initial states or other side inputs")
        name = srcs[0]
    chain.reverse()
    specs = [_LayerSpec(e.get("class_name", "?"), e.get("config", {}),
                        e.get("name") or e.get("config", {}).get("name")) for e in chain]
    shape = None
    if specs and specs[0].class_name == "InputLayer":
        c = specs[0].config
        shape = c.get("batch_shape") or c.get("batch_input_shape")
    return specs, shape


# ============================================================================ weights
_WEIGHT_PATHS = {"SimpleRNN": ("cell/vars",), "Dense": ("vars",), "Embedding": ("vars",),
                 "Bidirectional": ("forward_layer/cell/vars", "backward_layer/cell/vars")}


def _read_vars(group: Any) -> List[np.ndarray]:
    keys = sorted(group.keys(), key=lambda k: int(k) if k.isdigit() else 10 ** 9)
    return [np.array(group[k]) for k in keys]


def _h5_groups(h5: Any, entries: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Layer name -> its HDF5 group, by the ``name`` attribute Keras writes on ``vars`` groups,
    else by Keras's path rule (snake_case class name, numbered per class in layer order)."""
    root = h5.get("layers")
    if root is None:
        raise KerasConversionError("model.weights.h5: has no 'layers' group; expected the "
                                   "weights of a Keras 3 Sequential or functional model")
    found: Dict[str, Any] = {}
    for key in root:
        vars_group = root[key].get("vars")
        name = vars_group.attrs.get("name") if vars_group is not None else None
        if isinstance(name, bytes):
            name = name.decode()
        if name:
            found[str(name)] = root[key]
    counts: Dict[str, int] = {}
    for e in entries:
        cls = e.get("class_name", "")
        name = e.get("name") or e.get("config", {}).get("name")
        snake = _snake(cls)
        n = counts.get(snake)
        counts[snake] = 0 if n is None else n + 1
        path = snake if n is None else f"{snake}_{n + 1}"
        if name not in found and path in root:
            found[name] = root[path]
    return found


def _attach_h5_weights(specs: List[_LayerSpec], h5: Any, entries: List[Dict[str, Any]]) -> None:
    groups = _h5_groups(h5, entries)
    for s in specs:
        paths = _WEIGHT_PATHS.get(s.class_name)
        if not paths:
            continue
        g = groups.get(s.name)
        if g is None:
            raise KerasConversionError(f"{s.where()}: has no weights in model.weights.h5")
        s.weights = []
        for p in paths:
            sub = g.get(p)
            if sub is None:
                raise KerasConversionError(f"{s.where()}: model.weights.h5 has no group "
                                           f"{g.name}/{p}")
            s.weights.extend(_read_vars(sub))


# ============================================================================ building crnn
def _rnn_kwargs(cfg: Mapping[str, Any], where: str) -> Dict[str, Any]:
    act = _activation_name(cfg.get("activation", "tanh"))
    if act not in _RNN_ACTIVATIONS:
        raise KerasConversionError(f"{where}: got activation {act!r}, expected one of "
                                   f"{list(_RNN_ACTIVATIONS)}")
    if cfg.get("unit_forget_bias") is not None or cfg.get("reset_after") is not None:
        raise KerasConversionError(f"{where}: is not a SimpleRNN config")
    kw = {"units": int(cfg["units"]), "activation": act, "use_bias": bool(cfg.get("use_bias", True)),
          "return_sequences": bool(cfg.get("return_sequences", False)),
          "return_state": bool(cfg.get("return_state", False)),
          "go_backwards": bool(cfg.get("go_backwards", False)),
          "stateful": bool(cfg.get("stateful", False)), "dtype": _dtype_name(cfg, where)}
    return kw


def _build(specs: List[_LayerSpec], input_shape: Optional[Sequence[Any]], name: Optional[str]):
    """crnn.Sequential from the chain; weights installed; errors name unsupported layers."""
    import crnn
    from crnn import layers as L

    bad = [s for s in specs if s.class_name not in SUPPORTED + SKIPPED + _MASK_OPS]
    if bad:
        names = ", ".join(f"{s.name!r} ({s.class_name})" for s in bad)
        raise KerasConversionError(
            f"model: has layer(s) crnn does not support: {names}. Supported: "
            f"{', '.join(SUPPORTED)} (and {', '.join(SKIPPED)}, which are identities at "
            "inference)")
    out = []
    for s in specs:
        if s.class_name in SKIPPED + _MASK_OPS:
            continue
        if s.class_name in _WEIGHT_PATHS and not s.weights:
            raise KerasConversionError(f"{s.where()}: has no weights (is the Keras model built?)")
        out.append((s, _make_layer(L, s)))
    if not out:
        raise KerasConversionError("model: has no layers crnn can run")
    for s, layer in out:
        if s.weights:
            try:
                layer.set_weights(s.weights)
            except (ValueError, TypeError) as err:
                raise KerasConversionError(f"{s.where()}: weights do not fit: {err}") from None
    model = crnn.Sequential(name=name) if name else crnn.Sequential()
    for s, layer in out:
        try:
            model.add(layer)
        except (ValueError, TypeError) as err:
            raise KerasConversionError(f"{s.where()}: cannot follow the previous layer: "
                                       f"{err}") from None
    shape = None if input_shape is None else tuple(input_shape)
    if shape is not None and shape[-1] is not None:
        try:
            model.build(shape)
        except (ValueError, TypeError) as err:
            raise KerasConversionError(f"model: input shape {shape} does not fit the layers: "
                                       f"{err}") from None
    return model


def _make_layer(L: Any, s: _LayerSpec):
    cfg, where = s.config, s.where()
    name = s.name
    if s.class_name == "SimpleRNN":
        return L.SimpleRNN(name=name, **_rnn_kwargs(cfg, where))
    if s.class_name == "Dense":
        act = _activation_name(cfg.get("activation"))
        if act not in _DENSE_ACTIVATIONS:
            raise KerasConversionError(f"{where}: got activation {act!r}, expected one of "
                                       f"{list(_DENSE_ACTIVATIONS)}")
        return L.Dense(int(cfg["units"]), activation=act, use_bias=bool(cfg.get("use_bias", True)),
                       dtype=_dtype_name(cfg, where), name=name)
    if s.class_name == "Embedding":
        return L.Embedding(int(cfg["input_dim"]), int(cfg["output_dim"]),
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
        inner = cfg.get("layer", {})
        back = cfg.get("backward_layer")
        for sub in (inner, back):
            if sub is not None and sub.get("class_name") != "SimpleRNN":
                raise KerasConversionError(f"{where}: wraps a {sub.get('class_name')}; crnn "
                                           "supports Bidirectional(SimpleRNN) only")
        fwd = L.SimpleRNN(**_rnn_kwargs(inner.get("config", {}), where))
        kw: Dict[str, Any] = {"merge_mode": cfg.get("merge_mode", "concat"), "name": name}
        if back is not None:
            bkw = _rnn_kwargs(back.get("config", {}), where)
            kw["backward_layer"] = L.SimpleRNN(**bkw)
        return L.Bidirectional(fwd, **kw)
    raise AssertionError(s.class_name)  # pragma: no cover - filtered by _build


# ============================================================================ entry points
def from_keras(model: Any):
    """Rebuild a live Keras 3 model as a :class:`crnn.Sequential` with the same weights.

    Parameters
    ----------
    model : keras.Sequential or functional keras.Model
        Layers: SimpleRNN, Dense, Embedding, Bidirectional(SimpleRNN), Masking, Activation,
        InputLayer (and Dropout-like layers, left out).  A functional model must be one chain.

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
    return _build(specs, shape, cfg.get("name"))


def load_keras(path: Any):
    """Load a Keras 3 ``.keras`` file as a :class:`crnn.Sequential`, without Keras.

    Needs only ``h5py`` (``pip install "crnn[keras]"``).  Accepts a path or a binary file
    object.

    Raises
    ------
    KerasConversionError (a ValueError)
        Not a ``.keras`` archive, missing members, unsupported layers (named), or weights that
        do not match the architecture.
    """
    try:
        import h5py
    except ImportError:
        raise ImportError("load_keras needs h5py to read the weights: pip install h5py "
                          "(or pip install 'crnn[keras]')") from None
    src = os.fspath(path) if isinstance(path, (str, os.PathLike)) else path
    try:
        zf = zipfile.ZipFile(src)
    except zipfile.BadZipFile:
        hint = ""
        if isinstance(src, str) and src.endswith((".h5", ".hdf5")):
            hint = " (legacy Keras 2 HDF5 models are not supported; re-save as .keras)"
        raise KerasConversionError(f"{src!r}: is not a .keras file (not a zip archive){hint}") \
            from None
    with zf:
        names = set(zf.namelist())
        missing = [n for n in ("config.json", "model.weights.h5") if n not in names]
        if missing:
            raise KerasConversionError(f"{src!r}: .keras archive lacks {missing} (has "
                                       f"{sorted(names)})")
        try:
            config = json.loads(zf.read("config.json"))
        except ValueError as err:
            raise KerasConversionError(f"{src!r}: config.json is not valid JSON ({err})") from None
        weights_bytes = zf.read("model.weights.h5")
    if not isinstance(config, dict):
        raise KerasConversionError(f"{src!r}: config.json is not a model config")
    specs, shape = _chain(config)
    _, entries, inner = _model_layers(config)
    try:
        h5 = h5py.File(io.BytesIO(weights_bytes), "r")
    except OSError as err:
        raise KerasConversionError(f"{src!r}: model.weights.h5 is not a valid HDF5 file "
                                   f"({err})") from None
    with h5:
        _attach_h5_weights(specs, h5, entries)
    return _build(specs, shape, inner.get("name"))
