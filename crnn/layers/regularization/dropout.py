"""Keras ``Dropout``: the identity at inference."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from ..arguments import ArrayLike, _check_rate, _check_seed, _reject_unknown_kwargs
from ..layer import _Weightless

__all__ = ["Dropout"]


class Dropout(_Weightless):
    """Keras ``Dropout``: the identity at inference (crnn does not train); masks pass through.

    Parameters
    ----------
    rate : float in [0, 1]
        Accepted (and kept in the config) for Keras compatibility.
    noise_shape, seed : optional
        Accepted for Keras compatibility.
    dtype : {"float32", "float64"}, default "float32"
        The input is cast to it (Keras autocasting).
    name : str, optional
        Default ``"dropout"``, ``"dropout_1"``, ...
    """

    _name_prefix = "dropout"

    def __init__(self, rate: float, noise_shape: Optional[Sequence[Optional[int]]] = None,
                 seed: Optional[int] = None, *,
                 input_shape: Optional[Sequence[Optional[int]]] = None,
                 batch_input_shape: Optional[Sequence[Optional[int]]] = None,
                 batch_size: Optional[int] = None, input_dim: Optional[int] = None,
                 trainable: bool = True, dtype: Union[str, np.dtype, type] = "float32",
                 name: Optional[str] = None, **kwargs: Any) -> None:
        _reject_unknown_kwargs(self, kwargs)
        self.rate = _check_rate(rate, "rate")
        self.noise_shape = None if noise_shape is None else list(noise_shape)
        self.seed = _check_seed(seed)
        self._init_weightless(input_shape, batch_input_shape, batch_size, input_dim, trainable,
                              dtype, name)

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments that recreate this layer."""
        cfg = self._base_config()
        cfg.update(rate=self.rate, noise_shape=self.noise_shape,
                   seed=self.seed if isinstance(self.seed, int) else None)
        return cfg

    def __call__(self, x: ArrayLike, mask: Optional[ArrayLike] = None,
                 training: Optional[bool] = None) -> np.ndarray:
        """``x`` unchanged (cast to the layer dtype)."""
        if training and self.rate:
            raise NotImplementedError("training: got True with dropout, expected inference "
                                      "(crnn does not implement training-time dropout)")
        return self._as_input(x)
