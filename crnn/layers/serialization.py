"""Layers to and from ``{"class_name", "config", "build_config"}`` dicts, by class name."""
from __future__ import annotations

from typing import Any, Dict

from .activations import Activation
from .core import Dense, Embedding, InputLayer, Masking
from .layer import Layer
from .regularization import Dropout
from .rnn import GRU, LSTM, Bidirectional, SimpleRNN

__all__ = ["LAYER_CLASSES", "serialize", "deserialize"]

#: The layer classes :func:`deserialize` (and :func:`crnn.load_model`) accept, by name.
LAYER_CLASSES: Dict[str, type] = {cls.__name__: cls for cls in
                                  (SimpleRNN, LSTM, GRU, Bidirectional, Dense, Embedding, Masking,
                                   Activation, Dropout, InputLayer)}


def serialize(layer: Layer) -> Dict[str, Any]:
    """``{"class_name": ..., "config": layer.get_config()}`` plus ``"build_config"`` once built.

    ``build_config`` (Keras 3's name) is ``{"input_shape": [...]}``, the shape
    the layer's weights were made for, so :func:`deserialize` can rebuild a
    layer whose config alone does not fix its input width.
    """
    if not isinstance(layer, Layer):
        raise TypeError(f"layer: got {type(layer).__name__}, expected a crnn layer")
    out: Dict[str, Any] = {"class_name": type(layer).__name__, "config": layer.get_config()}
    if layer._weight_names() and layer.built and layer._build_input_shape is not None:
        out["build_config"] = {"input_shape": list(layer._build_input_shape)}
    return out


def deserialize(config: Any) -> Layer:
    """Recreate a layer from :func:`serialize` output; unknown class names raise ValueError."""
    if not isinstance(config, dict) or "class_name" not in config or "config" not in config:
        raise ValueError(f"layer config: got {type(config).__name__}"
                         + (f" with keys {sorted(config)}" if isinstance(config, dict) else "")
                         + ", expected {'class_name': ..., 'config': {...}}")
    name = config["class_name"]
    klass = LAYER_CLASSES.get(name) if isinstance(name, str) else None
    if klass is None:
        raise ValueError(f"class_name: got {name!r}, expected one of {sorted(LAYER_CLASSES)}")
    if not isinstance(config["config"], dict):
        raise ValueError(f"config of {name}: got {type(config['config']).__name__}, expected a dict")
    layer = klass.from_config(config["config"])
    build = config.get("build_config")
    if build is not None and not layer.built:
        if not isinstance(build, dict) or not isinstance(build.get("input_shape"), (list, tuple)):
            raise ValueError(f"build_config of {name}: got {build!r}, expected "
                             "{'input_shape': [...]}")
        layer.build(tuple(build["input_shape"]))
    return layer
