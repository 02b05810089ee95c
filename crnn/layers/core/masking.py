"""Keras ``Masking``: mask the timesteps whose features all equal a value."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ..arguments import ArrayLike, _reject_unknown_kwargs
from ..layer import _Weightless

__all__ = ["Masking"]


class Masking(_Weightless):
    """Mask timesteps whose features all equal ``mask_value`` (Keras ``Masking``).

    The output is the input with masked timesteps set to zero; the mask
    ``any(x != mask_value, axis=-1)`` goes to the next layers, so recurrent
    layers skip those steps.

    Parameters
    ----------
    mask_value : float, default 0.0
    input_shape, batch_input_shape, batch_size : optional
        E.g. ``input_shape=(timesteps, features)``.
    dtype : {"float32", "float64"}, default "float32"
        The input is cast to it (Keras autocasting).
    name : str, optional
        Default ``"masking"``, ``"masking_1"``, ...
    """

    _name_prefix = "masking"
    _min_input_ndim = 2

    def __init__(self, mask_value: float = 0.0, *,
                 input_shape: Optional[Sequence[Optional[int]]] = None,
                 batch_input_shape: Optional[Sequence[Optional[int]]] = None,
                 batch_size: Optional[int] = None, input_dim: Optional[int] = None,
                 trainable: bool = True, dtype: Union[str, np.dtype, type] = "float32",
                 name: Optional[str] = None, **kwargs: Any) -> None:
        _reject_unknown_kwargs(self, kwargs)
        if isinstance(mask_value, (bool, np.bool_)) or not isinstance(
                mask_value, (int, float, np.integer, np.floating)):
            raise TypeError(f"mask_value: got {mask_value!r}, expected a real number")
        self.mask_value = float(mask_value)
        self._init_weightless(input_shape, batch_input_shape, batch_size, input_dim, trainable,
                              dtype, name)

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments that recreate this layer."""
        cfg = self._base_config()
        cfg["mask_value"] = self.mask_value
        return cfg

    def _mask_of(self, xa: np.ndarray) -> np.ndarray:
        return np.any(xa != xa.dtype.type(self.mask_value), axis=-1)

    def __call__(self, x: ArrayLike, mask: Optional[ArrayLike] = None,
                 training: Optional[bool] = None) -> np.ndarray:
        """``x`` with masked timesteps zeroed (as Keras: ``x * mask``)."""
        xa = self._as_input(x)
        return xa * self._mask_of(xa)[..., None]

    def compute_mask(self, inputs: Any, mask: Optional[ArrayLike] = None) -> np.ndarray:
        """``any(inputs != mask_value, axis=-1)`` (an incoming mask is replaced)."""
        return self._mask_of(self._as_input(inputs))

    def _call_masked(self, x: ArrayLike, mask: Any) -> Tuple[Any, Any]:
        xa = self._as_input(x)
        m = self._mask_of(xa)
        return xa * m[..., None], m
