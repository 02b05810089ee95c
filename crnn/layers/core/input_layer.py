"""Keras ``InputLayer`` / ``Input``: a model's declared input shape."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np

from ... import _core
from ..arguments import ArrayLike, Shape, _reject_unknown_kwargs, _resolve_generic_shape
from ..layer import Layer

__all__ = ["InputLayer", "Input"]


class InputLayer(Layer):
    """The model's input: shape (without the batch) and dtype (Keras ``InputLayer``).

    As the first entry of a :class:`~crnn.models.Sequential` model it fixes the input
    shape (like ``input_shape=`` on the first layer); it is not listed in
    ``model.layers`` or the summary (as in Keras).  :func:`Input` makes one.

    Parameters
    ----------
    shape : tuple, optional
        Input shape without the batch dimension, e.g. ``(None, 8)`` or ``(20,)``.
    batch_size : int, optional
    dtype : str, optional
        Informational ("float32", "float64", "int32", "int64", ...).
    batch_shape : tuple, optional
        The full shape with the batch dimension (Keras 3; ``batch_input_shape`` in Keras 2).
    input_shape, batch_input_shape : optional
        Keras 2 spellings of ``shape`` and ``batch_shape``.
    name : str, optional
    """

    _name_prefix = "input_layer"
    supports_masking = False
    _fixed_when_built = ("batch_input_shape", "dtype")

    def __init__(self, shape: Optional[Sequence[Optional[int]]] = None,
                 batch_size: Optional[int] = None, dtype: Any = None,
                 batch_shape: Optional[Sequence[Optional[int]]] = None,
                 name: Optional[str] = None, *,
                 input_shape: Optional[Sequence[Optional[int]]] = None,
                 batch_input_shape: Optional[Sequence[Optional[int]]] = None,
                 **kwargs: Any) -> None:
        _reject_unknown_kwargs(self, kwargs)
        if shape is not None and input_shape is not None and tuple(shape) != tuple(input_shape):
            raise ValueError(f"input_shape: got {input_shape!r}, which conflicts with shape={shape!r}")
        if batch_shape is not None and batch_input_shape is not None \
                and tuple(batch_shape) != tuple(batch_input_shape):
            raise ValueError(f"batch_input_shape: got {batch_input_shape!r}, which conflicts with "
                             f"batch_shape={batch_shape!r}")
        ins = shape if shape is not None else input_shape
        bis = batch_shape if batch_shape is not None else batch_input_shape
        self.batch_input_shape = _resolve_generic_shape(ins, bis, batch_size, None, 1)
        if self.batch_input_shape is None:
            raise ValueError("shape: got None, expected the input shape (e.g. shape=(None, 8)) "
                             "or batch_shape")
        if dtype is not None:
            try:
                dt = np.dtype(dtype)
            except TypeError:
                dt = None
            if dt is None or dt.kind not in "fiu":
                raise ValueError(f"dtype: got {dtype!r}, expected a real numeric dtype")
            dtype = dt.name
        self.dtype = dtype
        self._set_name(name)
        self.built = True
        self._version = 0
        self._handle = None

    def get_config(self) -> Dict[str, Any]:
        """``{"name", "batch_shape", "dtype"}``."""
        return {"name": self.name, "batch_shape": self.batch_input_shape, "dtype": self.dtype}

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]) -> Shape:
        return tuple(input_shape)

    def __call__(self, x: ArrayLike, mask: Optional[ArrayLike] = None,
                 training: Optional[bool] = None) -> np.ndarray:
        """``x`` as an array, unchanged."""
        return _core.as_real_array(x, "x")


def Input(shape: Optional[Sequence[Optional[int]]] = None, batch_size: Optional[int] = None,
          name: Optional[str] = None, dtype: Any = None,
          batch_shape: Optional[Sequence[Optional[int]]] = None) -> InputLayer:
    """Keras ``Input``: declare a model's input shape, e.g. ``Sequential([Input((None, 8)), ...])``.

    crnn has no symbolic tensors: this returns an :class:`InputLayer`, which a
    :class:`~crnn.models.Sequential` model takes as its input shape.
    """
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape,
                      name=name)
