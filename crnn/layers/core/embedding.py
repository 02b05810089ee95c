"""Keras ``Embedding``: integer indices to dense vectors, with ``mask_zero``."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..arguments import (MAX_MATRIX_ELEMENTS, ArrayLike, Shape, _check_bool, _check_dtype,
                         _check_int, _check_memory, _check_seed, _input_shape_arg,
                         _reject_unknown_kwargs, _resolve_generic_shape, _rng)
from ..layer import InvalidIndexError, Layer, _deferring, _freeze, _placeholder, _touch

__all__ = ["Embedding"]


class Embedding(Layer):
    """Turn integer indices into dense vectors: ``embeddings[x]`` (Keras ``Embedding``).

    Parameters
    ----------
    input_dim : int
        Vocabulary size: indices must lie in ``[0, input_dim)``.
    output_dim : int
        Width of each vector.
    embeddings_initializer : "uniform"
        Keras's default, ``RandomUniform(-0.05, 0.05)`` (the only one crnn has).
    mask_zero : bool, default False
        Index 0 is padding: the layer emits the mask ``x != 0`` (so
        ``input_dim`` should be the vocabulary size + 1, as in Keras).
    input_length : int, optional
        Keras 2 spelling of ``input_shape=(input_length,)``.
    input_shape, batch_input_shape, batch_size : optional
        Default ``input_shape=(None,)`` (Keras 2), so a model starting with
        an Embedding is built, and summarised, without knowing the length.
    weights : list of one array, optional
        Initial ``[embeddings]`` (e.g. pre-trained vectors).
    trainable : bool, default True
    dtype : {"float32", "float64"}, default "float32"
    seed : int or numpy.random.Generator, optional
    name : str, optional
        Default ``"embedding"``, ``"embedding_1"``, ...

    Notes
    -----
    Input must be integers (or floats holding whole numbers).  An index
    outside ``[0, input_dim)`` raises :class:`InvalidIndexError` (a
    ``ValueError`` and an ``IndexError``) naming ``x`` and the position;
    Keras on CPU raises too.
    """

    _name_prefix = "embedding"
    _fixed_when_built = ("input_dim", "output_dim", "input_length", "dtype")

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        *,
        embeddings_initializer: str = "uniform",
        mask_zero: bool = False,
        input_length: Optional[int] = None,
        input_shape: Optional[Sequence[Optional[int]]] = None,
        batch_input_shape: Optional[Sequence[Optional[int]]] = None,
        batch_size: Optional[int] = None,
        weights: Optional[Sequence[ArrayLike]] = None,
        trainable: bool = True,
        dtype: Union[str, np.dtype, type] = "float32",
        seed: Optional[int] = None,
        name: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        _reject_unknown_kwargs(self, kwargs)
        self.input_dim = _check_int(input_dim, "input_dim")
        self.output_dim = _check_int(output_dim, "output_dim")
        if self.input_dim * self.output_dim > MAX_MATRIX_ELEMENTS:
            raise ValueError(f"input_dim: got {self.input_dim} with output_dim={self.output_dim}, "
                             f"expected input_dim*output_dim <= {MAX_MATRIX_ELEMENTS}")
        if embeddings_initializer not in ("uniform", "random_uniform", "RandomUniform"):
            raise ValueError(f"embeddings_initializer: got {embeddings_initializer!r}, expected "
                             "'uniform' (crnn only does inference: load trained weights with "
                             "set_weights or weights=)")
        self.mask_zero = _check_bool(mask_zero, "mask_zero")
        self.input_length = _check_int(input_length, "input_length", allow_none=True)
        self.trainable = _check_bool(trainable, "trainable")
        self.dtype = _check_dtype(dtype)
        self.seed = _check_seed(seed)
        self._set_name(name)
        self.built = False
        self._weights: Optional[Tuple[np.ndarray]] = None
        self._version = 0
        self._handle = None
        bis = _resolve_generic_shape(input_shape, batch_input_shape, batch_size,
                                     ("input_length", self.input_length), 1)
        # Keras 2 defaults input_shape to (None,): a model starting here knows its input rank.
        self._explicit_shape = bis is not None
        self.batch_input_shape = bis if bis is not None else (
            _check_int(batch_size, "batch_size", allow_none=True), None)
        if self._explicit_shape:
            self.build(self.batch_input_shape)
        if weights is not None:
            self.set_weights(weights)

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments that recreate this layer (without its weights)."""
        cfg: Dict[str, Any] = {"name": self.name, "input_dim": self.input_dim,
                               "output_dim": self.output_dim,
                               "embeddings_initializer": "uniform", "mask_zero": self.mask_zero,
                               "input_length": self.input_length, "trainable": self.trainable,
                               "dtype": self.dtype,
                               "seed": self.seed if isinstance(self.seed, int) else None}
        bis = self.batch_input_shape
        if self._explicit_shape:
            if self.input_length is None or bis != (None, self.input_length):
                cfg["batch_input_shape"] = bis
        elif bis[0] is not None:
            cfg["batch_size"] = bis[0]
        return cfg

    @property
    def embeddings(self) -> Optional[np.ndarray]:
        """``(input_dim, output_dim)`` (read-only), None before build."""
        return None if self._weights is None else self._weights[0]

    def _placeholder_input_shape(self) -> Optional[Shape]:
        return (None, None)

    def _input_complete(self, shape: Shape) -> bool:
        return True

    def build(self, input_shape: Optional[Sequence[Optional[int]]] = None) -> None:
        """Create ``embeddings (input_dim, output_dim)`` ~ uniform(-0.05, 0.05)."""
        if input_shape is not None:
            _input_shape_arg(input_shape, 1)
        if self.built:
            return
        n, d = self.input_dim, self.output_dim
        if _deferring():
            self._store_built(_placeholder((n, d), self.dtype))
            return
        _check_memory(f"Embedding({n}, {d})", (8 + np.dtype(self.dtype).itemsize) * n * d)
        emb = _rng(self.seed).uniform(-0.05, 0.05, size=(n, d))
        self._store_built(emb)

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]) -> Shape:
        """``input_shape + (output_dim,)``."""
        return _input_shape_arg(input_shape, 1) + (self.output_dim,)

    def _weight_names(self) -> List[str]:
        return ["embeddings"]

    def _prepare_weights(self, weights: Sequence[ArrayLike], input_dim: Optional[int] = None) -> Any:
        (emb,) = self._check_weight_list(weights)
        want = (self.input_dim, self.output_dim)
        if emb.shape != want:
            raise ValueError(f"set_weights: got embeddings shape {emb.shape}, expected {want} "
                             f"(input_dim, output_dim) for layer {self.name!r}")
        return emb

    def _store_prepared(self, prepared: Any) -> None:
        self._weights = (_freeze(prepared, self.dtype),)
        self._build_input_shape = (None, None)
        self.built = True
        self._version += 1
        _touch()

    def _output_width(self, prepared: Any, width: Optional[int]) -> Optional[int]:
        return self.output_dim

    def _indices(self, x: ArrayLike) -> np.ndarray:
        """``x`` as a validated integer index array."""
        try:
            xa = x if type(x) is np.ndarray else np.asarray(x)
        except (ValueError, TypeError) as err:
            raise ValueError(f"x: got an object NumPy cannot turn into an array ({err})") from None
        kind = xa.dtype.kind
        n = self.input_dim
        if kind not in "iuf":
            raise TypeError(f"x: got dtype {xa.dtype}, expected integer token indices in [0, {n})")
        if xa.ndim < 1:
            raise ValueError(f"x: got shape {xa.shape}, expected (batch, input_length) integer "
                             "indices")
        if xa.size:
            lo, hi = xa.min(), xa.max()
            if not (lo >= 0 and hi < n):  # also catches NaN
                bad = ~((xa >= 0) & (xa < n))
                pos = tuple(int(i) for i in np.argwhere(bad)[0])
                raise InvalidIndexError(f"x: got index {xa[pos]!r} at position {pos}, expected "
                                        f"indices in [0, {n}) (input_dim={n} of layer "
                                        f"{self.name!r})")
            if kind == "f":
                frac = xa != np.floor(xa)
                if frac.any():
                    pos = tuple(int(i) for i in np.argwhere(frac)[0])
                    raise ValueError(f"x: got non-integer value {xa[pos]!r} at position {pos}, "
                                     "expected integer token indices")
        if kind == "f":
            xa = xa.astype(np.intp)
        return xa

    def __call__(self, x: ArrayLike, mask: Optional[ArrayLike] = None,
                 training: Optional[bool] = None) -> np.ndarray:
        """``embeddings[x]``: shape ``x.shape + (output_dim,)``."""
        idx = self._indices(x)
        if self._weights is None:
            self.build()
        return np.take(self._weights[0], idx, axis=0)

    def compute_mask(self, inputs: Any, mask: Optional[ArrayLike] = None) -> Optional[np.ndarray]:
        """``inputs != 0`` with ``mask_zero``, else None (an incoming mask is not passed on)."""
        if not self.mask_zero:
            return None
        return np.asarray(inputs) != 0

    def _call_masked(self, x: ArrayLike, mask: Any) -> Tuple[Any, Any]:
        idx = self._indices(x)
        if self._weights is None:
            self.build()
        return np.take(self._weights[0], idx, axis=0), (idx != 0 if self.mask_zero else None)

    def _bound_call(self) -> Callable[[Any, Any], Tuple[Any, Any]]:
        emb = self._weights[0]

        def call(x: Any, mask: Any) -> Tuple[Any, Any]:
            idx = self._indices(x)
            return np.take(emb, idx, axis=0), (idx != 0 if self.mask_zero else None)
        return call
