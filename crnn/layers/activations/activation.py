"""Keras ``Activation`` and the activations of the feed-forward layers (Dense, Activation)."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from ... import _core
from ..arguments import ArrayLike, _check_activation, _reject_unknown_kwargs
from ..layer import _Weightless

__all__ = ["Activation", "DENSE_ACTIVATIONS", "apply_activation"]

#: Activations of :class:`~crnn.layers.Dense` and :class:`Activation` (``None`` means ``"linear"``).
DENSE_ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "hard_sigmoid", "softmax")


def apply_activation(name: Optional[str], y: np.ndarray) -> np.ndarray:
    """``name`` applied in place to the fresh float array ``y`` (softmax over the last axis);
    NaN propagates."""
    if name is None or name == "linear":
        return y
    if name == "relu":
        np.maximum(y, y.dtype.type(0), out=y)  # propagates NaN
    elif name == "tanh":
        np.tanh(y, out=y)
    elif name == "hard_sigmoid":
        np.minimum(np.maximum(y + y.dtype.type(3), y.dtype.type(0)), y.dtype.type(6), out=y)
        y /= y.dtype.type(6)
    elif name == "sigmoid":
        e = np.exp(-np.abs(y))  # never overflows
        pos = y >= 0
        one = y.dtype.type(1)
        y[...] = np.where(pos, one / (one + e), e / (one + e))
    elif name == "softmax":
        if y.shape[-1]:
            y -= y.max(axis=-1, keepdims=True)
            np.exp(y, out=y)
            y /= y.sum(axis=-1, keepdims=True)
    else:  # pragma: no cover - validated at construction
        raise ValueError(f"activation: got {name!r}")
    return y


class Activation(_Weightless):
    """Apply an activation function elementwise (Keras ``Activation``); masks pass through.

    Parameters
    ----------
    activation : {"linear", "relu", "tanh", "sigmoid", "hard_sigmoid", "softmax"} or None
        Softmax normalises over the last axis.
    input_shape, batch_input_shape, batch_size : optional
    dtype : {"float32", "float64"}, default "float32"
        The input is cast to it (Keras autocasting).
    name : str, optional
        Default ``"activation"``, ``"activation_1"``, ...
    """

    _name_prefix = "activation"

    def __init__(self, activation: Optional[str], *,
                 input_shape: Optional[Sequence[Optional[int]]] = None,
                 batch_input_shape: Optional[Sequence[Optional[int]]] = None,
                 batch_size: Optional[int] = None, input_dim: Optional[int] = None,
                 trainable: bool = True, dtype: Union[str, np.dtype, type] = "float32",
                 name: Optional[str] = None, **kwargs: Any) -> None:
        _reject_unknown_kwargs(self, kwargs)
        self.activation = _check_activation(activation, DENSE_ACTIVATIONS)
        self._init_weightless(input_shape, batch_input_shape, batch_size, input_dim, trainable,
                              dtype, name)

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments that recreate this layer."""
        cfg = self._base_config()
        cfg["activation"] = self.activation
        return cfg

    def __call__(self, x: ArrayLike, mask: Optional[ArrayLike] = None,
                 training: Optional[bool] = None) -> np.ndarray:
        """``activation(x)``, elementwise (softmax: over the last axis)."""
        xa = _core.as_real_array(x, "x")
        if xa.ndim < 1:
            raise ValueError(f"x: got shape {xa.shape}, expected at least 1 dimension")
        return apply_activation(self.activation, np.array(xa, dtype=self.dtype, copy=True))
