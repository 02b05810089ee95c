"""Keras ``Dense``: ``activation(x @ kernel + bias)`` on the last axis."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ... import _core
from ..activations.activation import DENSE_ACTIVATIONS, apply_activation
from ..arguments import (MAX_MATRIX_ELEMENTS, ArrayLike, Shape, _check_activation, _check_bool,
                         _check_dtype, _check_int, _check_memory, _check_seed, _input_shape_arg,
                         _reject_unknown_kwargs, _resolve_generic_shape, _rng)
from ..layer import Layer, _deferring, _freeze, _placeholder, _touch
from ..rnn.cells import glorot_uniform

__all__ = ["Dense"]


class Dense(Layer):
    """Densely-connected layer ``activation(x @ kernel + bias)`` on the last axis (Keras ``Dense``).

    On 3-D input ``(batch, timesteps, features)`` it applies to every
    timestep, as in Keras, and passes a mask through unchanged.

    Parameters
    ----------
    units : int
        Output width.
    activation : {"linear", "relu", "tanh", "sigmoid", "hard_sigmoid", "softmax"} or None, default None
        None means linear; softmax normalises over the last axis.
    use_bias : bool, default True
    input_shape : tuple, optional
        Input shape without the batch, e.g. ``(features,)`` or ``(timesteps, features)``.
    batch_input_shape : tuple, optional
    batch_size : int, optional
    input_dim : int, optional
        Keras 2 spelling of ``input_shape=(input_dim,)``.
    weights : list of arrays, optional
        Initial ``[kernel, bias]``.
    trainable : bool, default True
    dtype : {"float32", "float64"}, default "float32"
    seed : int or numpy.random.Generator, optional
        Seed of the initial weights (Keras defaults: glorot-uniform kernel, zero bias).
    name : str, optional
        Default ``"dense"``, ``"dense_1"``, ...
    """

    _name_prefix = "dense"
    _min_input_ndim = 2
    _fixed_when_built = ("units", "use_bias", "dtype")

    def __init__(
        self,
        units: int,
        activation: Optional[str] = None,
        use_bias: bool = True,
        *,
        input_shape: Optional[Sequence[Optional[int]]] = None,
        batch_input_shape: Optional[Sequence[Optional[int]]] = None,
        batch_size: Optional[int] = None,
        input_dim: Optional[int] = None,
        weights: Optional[Sequence[ArrayLike]] = None,
        trainable: bool = True,
        dtype: Union[str, np.dtype, type] = "float32",
        seed: Optional[int] = None,
        name: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        _reject_unknown_kwargs(self, kwargs)
        units = _check_int(units, "units")
        if units > MAX_MATRIX_ELEMENTS:
            raise ValueError(f"units: got {units}, expected at most {MAX_MATRIX_ELEMENTS}")
        self.units = units
        self.activation = _check_activation(activation, DENSE_ACTIVATIONS)
        self.use_bias = _check_bool(use_bias, "use_bias")
        self.trainable = _check_bool(trainable, "trainable")
        self.dtype = _check_dtype(dtype)
        self.seed = _check_seed(seed)
        self._set_name(name)
        self.built = False
        self._weights: Optional[Tuple[np.ndarray, Optional[np.ndarray]]] = None
        self._version = 0
        self._handle = None
        self.batch_input_shape = _resolve_generic_shape(input_shape, batch_input_shape, batch_size,
                                                        ("input_dim", input_dim), 2)
        bis = self.batch_input_shape
        if bis is not None and bis[-1] is not None:
            self.build(bis)
        if weights is not None:
            self.set_weights(weights)

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments that recreate this layer (without its weights)."""
        cfg: Dict[str, Any] = {"name": self.name, "units": self.units,
                               "activation": self.activation, "use_bias": self.use_bias,
                               "trainable": self.trainable, "dtype": self.dtype,
                               "seed": self.seed if isinstance(self.seed, int) else None}
        if self.batch_input_shape is not None:
            cfg["batch_input_shape"] = self.batch_input_shape
        return cfg

    @property
    def input_dim(self) -> Optional[int]:
        """Width of the input's last axis, or None before the layer is built."""
        w = self._weights
        return None if w is None else int(w[0].shape[0])

    @property
    def kernel(self) -> Optional[np.ndarray]:
        """``(input_dim, units)`` (read-only), None before build."""
        return None if self._weights is None else self._weights[0]

    @property
    def bias(self) -> Optional[np.ndarray]:
        """``(units,)`` (read-only), None before build or without bias."""
        return None if self._weights is None else self._weights[1]

    def _expected_input_dim(self) -> Optional[int]:
        return self.input_dim

    def _check_input_shape(self, input_shape: Any) -> Shape:
        shape = _input_shape_arg(input_shape, 2)
        dim = self.input_dim
        if dim is not None and shape[-1] is not None and shape[-1] != dim:
            raise ValueError(f"input_shape: got last dimension {shape[-1]}, expected {dim} "
                             f"(layer {self.name!r} was built for input_dim {dim})")
        return shape

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        """Create ``kernel (input_dim, units)`` (glorot-uniform) and ``bias`` (zeros)."""
        shape = self._check_input_shape(input_shape)
        if self.built:
            return
        dim = shape[-1]
        if dim is None or dim < 1:
            raise ValueError(f"input_shape: got last dimension {dim!r}, expected a positive int "
                             f"to build layer {self.name!r}")
        u = self.units
        if dim * u > MAX_MATRIX_ELEMENTS:
            raise ValueError(f"input_dim: got {dim} with units={u}, expected input_dim*units <= "
                             f"{MAX_MATRIX_ELEMENTS} (the kernel would have {dim * u} elements)")
        if _deferring():
            kernel = _placeholder((dim, u), self.dtype)
            bias = _placeholder((u,), self.dtype) if self.use_bias else None
            self._store_built((kernel, bias))
            return
        _check_memory(f"Dense(units={u}) with input_dim={dim}",
                      (8 + np.dtype(self.dtype).itemsize) * (dim * u + u))
        kernel = glorot_uniform(_rng(self.seed), dim, u)
        bias = np.zeros(u) if self.use_bias else None
        self._store_built((kernel, bias))

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]) -> Shape:
        """``input_shape`` with the last dimension replaced by ``units``."""
        shape = self._check_input_shape(input_shape)
        return shape[:-1] + (self.units,)

    def _weight_names(self) -> List[str]:
        return ["kernel"] + (["bias"] if self.use_bias else [])

    def _prepare_weights(self, weights: Sequence[ArrayLike], input_dim: Optional[int] = None) -> Any:
        arrs = self._check_weight_list(weights)
        u = self.units
        dim = self.input_dim if self.input_dim is not None else input_dim
        if dim is None and arrs[0].ndim == 2 and arrs[0].shape[0] > 0:
            dim = arrs[0].shape[0]
        for wname, a, shp in zip(self._weight_names(), arrs, [(dim, u), (u,)]):
            if a.shape != shp:
                want = f"(input_dim, {u})" if shp[0] is None else str(shp)
                raise ValueError(f"set_weights: got {wname} shape {a.shape}, expected {want}"
                                 + (f" for layer {self.name!r}" if wname == "kernel" else ""))
        return arrs[0], (arrs[1] if self.use_bias else None)

    def _store_prepared(self, prepared: Any) -> None:
        kernel, bias = prepared
        self._weights = (_freeze(kernel, self.dtype), _freeze(bias, self.dtype))
        self._build_input_shape = (None, int(self._weights[0].shape[0]))
        self.built = True
        self._version += 1
        _touch()

    def _output_width(self, prepared: Any, width: Optional[int]) -> Optional[int]:
        return self.units

    def __call__(self, x: ArrayLike, mask: Optional[ArrayLike] = None,
                 training: Optional[bool] = None) -> np.ndarray:
        """``activation(x @ kernel + bias)`` over the last axis of ``x`` ``(batch, ..., input_dim)``.

        One C call (``crnn_dense_forward``: one GEMM over every row, bias and activation fused);
        softmax normalises afterwards. ``mask`` is accepted (and passed on by
        :meth:`compute_mask`), as in Keras.
        """
        xa = x if type(x) is np.ndarray else _core.as_real_array(x, "x")
        if xa.ndim < 2:
            raise ValueError(f"x: got shape {xa.shape}, expected (batch, ..., input_dim) with at "
                             "least 2 dimensions")
        w = self._weights
        if w is None:
            self.build((None,) + xa.shape[1:])
            w = self._weights
        return self._apply(w, xa)

    def _apply(self, w: Tuple[np.ndarray, Optional[np.ndarray]], xa: np.ndarray) -> np.ndarray:
        kernel, bias = w
        dim = kernel.shape[0]
        if xa.ndim < 2 or xa.shape[-1] != dim:
            raise ValueError(f"x: got input_dim {xa.shape[-1] if xa.ndim else None} (shape "
                             f"{xa.shape}), expected {dim}")
        lead = xa.shape[:-1]
        act = "linear" if self.activation in (None, "softmax") else self.activation
        y = _core.dense_forward(xa.reshape(-1, dim), kernel, bias, act)
        if self.activation == "softmax":
            apply_activation("softmax", y)
        return y if len(lead) == 1 else y.reshape(lead + (self.units,))

    def _bound_call(self) -> Callable[[Any, Any], Tuple[Any, Any]]:
        w = self._weights

        def call(x: Any, mask: Any) -> Tuple[Any, Any]:
            xa = x if type(x) is np.ndarray else _core.as_real_array(x, "x")
            return self._apply(w, xa), mask
        return call
