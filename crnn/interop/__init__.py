"""Run recurrent models trained elsewhere: PyTorch, Keras 3 and ONNX.

=================================  ==============================================================
``crnn.from_torch(module)``        a ``torch.nn.RNN``, ``LSTM``, ``GRU`` or one of their cells (or
                                   its ``state_dict``), called as torch calls it:
                                   ``output, (h_n, c_n) = lstm(x, (h0, c0))``
``crnn.from_keras(model)``         a live Keras 3 model as a :class:`crnn.Sequential`
``crnn.load_keras(path)``          a ``.keras`` or legacy ``.h5`` Keras file as a
                                   :class:`crnn.Sequential`, read with ``h5py`` alone (no Keras,
                                   no TensorFlow)
``crnn.load_onnx(path)``           an ONNX model with ``RNN``, ``LSTM`` or ``GRU`` nodes as an
                                   :class:`~crnn.interop.onnx.OnnxModel` (ONNX Runtime's
                                   ``run(output_names, input_feed)``), with no ``onnx`` or
                                   ``onnxruntime`` installed
``crnn.to_onnx(model, path)``      a crnn model as an ONNX file ONNX Runtime runs
=================================  ==============================================================

Every submodule imports its framework (if it needs one at all) only when called, so
``import crnn`` never imports torch, keras, h5py or onnx.
"""
from __future__ import annotations

from typing import Any

__all__ = ["from_torch", "from_keras", "load_keras", "load_onnx", "to_onnx"]


def from_torch(module_or_state_dict: Any, **kwargs: Any):
    """Convert a torch recurrent module or its ``state_dict``; see
    :func:`crnn.interop.torch.from_torch`."""
    from .torch import from_torch as impl
    return impl(module_or_state_dict, **kwargs)


def from_keras(model: Any, **kwargs: Any):
    """Convert a live Keras 3 model; see :func:`crnn.interop.keras.from_keras`."""
    from .keras import from_keras as impl
    return impl(model, **kwargs)


def load_keras(path: Any, **kwargs: Any):
    """Load a ``.keras`` or ``.h5`` Keras file without Keras; see
    :func:`crnn.interop.keras.load_keras`."""
    from .keras import load_keras as impl
    return impl(path, **kwargs)


def load_onnx(path_or_bytes: Any, **kwargs: Any):
    """Load an ONNX model; see :func:`crnn.interop.onnx.load_onnx`."""
    from .onnx import load_onnx as impl
    return impl(path_or_bytes, **kwargs)


def to_onnx(model: Any, path: Any = None, **kwargs: Any):
    """Export a crnn model to ONNX; see :func:`crnn.interop.onnx_export.to_onnx`."""
    from .onnx_export import to_onnx as impl
    return impl(model, path, **kwargs)
