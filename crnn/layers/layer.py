"""The base :class:`Layer`, Keras-style automatic names, and the machinery every layer shares:
the weights lock and epoch (so models see every ``set_weights`` whole), deferred weights (for
loaders) and read-only weight copies."""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import _core
from .arguments import (ArrayLike, Shape, _check_bool, _check_dtype, _check_int,
                        _input_shape_arg, _resolve_generic_shape)

# --------------------------------------------------------------------------- #
# Keras-style automatic names: "simple_rnn", "simple_rnn_1", ...
# --------------------------------------------------------------------------- #
_NAME_LOCK = threading.Lock()
_NAME_UIDS: Dict[str, int] = {}


def unique_name(prefix: str) -> str:
    """Return the next automatic name for ``prefix`` (``prefix``, ``prefix_1``, ...).

    The counters are per prefix and process-wide, like Keras's; reset them
    with :func:`clear_session`.
    """
    with _NAME_LOCK:
        n = _NAME_UIDS.get(prefix, 0)
        _NAME_UIDS[prefix] = n + 1
    return prefix if n == 0 else f"{prefix}_{n}"


def clear_session() -> None:
    """Reset the automatic layer and model name counters (Keras ``clear_session``).

    After it, the next :class:`SimpleRNN` is named ``"simple_rnn"`` again and
    the next :class:`~crnn.models.Sequential` ``"sequential"``.  Existing
    objects keep their names and weights.
    """
    with _NAME_LOCK:
        _NAME_UIDS.clear()


# --------------------------------------------------------------------------- #
# Weights: one lock and one epoch for all layers
# --------------------------------------------------------------------------- #
#: Held while any layer's (or model's) weights are replaced, and while a compiled handle or a
#: model's call plan is built from them: a handle or plan is then made from weights that are
#: wholly before or wholly after any ``set_weights``, never a mixture. Calls themselves never
#: take it (they run on handles and plans already built).
WEIGHTS_LOCK = threading.RLock()

#: Bumped (under WEIGHTS_LOCK) after any layer's weights or computation change, so a model can
#: check its cached call plan with one comparison.
_EPOCH = [0]


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        a, b = tuple(a), tuple(b)  # a shape spelled as a list
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # an array against an int, say
        return False


def _same_dtype(a: Any, b: Any) -> bool:
    try:
        return bool(np.dtype(a) == np.dtype(b))
    except TypeError:
        return False


def _touch() -> None:
    with WEIGHTS_LOCK:
        _EPOCH[0] += 1


# Deferred weights (load_model): build() makes free placeholders, not random draws
# --------------------------------------------------------------------------- #
_INIT = threading.local()


@contextlib.contextmanager
def _deferred_weights():
    """Inside this block (this thread), ``build()`` skips the initialisers.

    Weights are then read-only zero-stride zero arrays that cost no memory;
    :func:`crnn.load_model` uses this to learn the architecture's weight
    shapes from a config before any real weight is read.
    """
    prev = getattr(_INIT, "deferred", False)
    _INIT.deferred = True
    try:
        yield
    finally:
        _INIT.deferred = prev


def _deferring() -> bool:
    return getattr(_INIT, "deferred", False)


def _placeholder(shape: Tuple[int, ...], dtype: str) -> np.ndarray:
    return np.broadcast_to(np.zeros((), dtype), shape)


def _freeze(a: Optional[ArrayLike], dtype: str) -> Optional[np.ndarray]:
    """A read-only C-contiguous copy of ``a`` in ``dtype`` (placeholders are kept as they are)."""
    if a is None:
        return None
    if _deferring() and isinstance(a, np.ndarray) and not any(a.strides) and not a.flags.writeable:
        return a  # a _placeholder: never copied (it would materialise the zeros)
    a = np.array(a, dtype=dtype, order="C", copy=True)
    a.setflags(write=False)
    return a


class InvalidIndexError(ValueError, IndexError):
    """An :class:`Embedding` input index outside ``[0, input_dim)`` (a ValueError and an IndexError)."""


class InputSpec:
    """What a layer accepts: rank and known dimensions (Keras ``InputSpec``).

    ``shape`` is ``(batch, timesteps, input_dim)`` with None for a dimension
    the layer does not check.  Only ``input_dim`` is checked on every call;
    ``batch`` only for stateful layers (as in Keras).
    """

    __slots__ = ("ndim", "shape")

    def __init__(self, ndim: int, shape: Optional[Shape] = None) -> None:
        self.ndim = ndim
        self.shape = shape

    def __repr__(self) -> str:
        return f"InputSpec(ndim={self.ndim}, shape={self.shape})"


# --------------------------------------------------------------------------- #
# Layer base
# --------------------------------------------------------------------------- #
class Layer:
    """Base class of crnn layers (the subset of ``keras.layers.Layer`` crnn needs).

    A layer is called as ``layer(x, mask=None)``; :meth:`compute_mask` gives
    the mask it passes on.  Weights are NumPy arrays in the Keras layout:
    :meth:`get_weights` / :meth:`set_weights`, :meth:`count_params`.
    :meth:`get_config` returns JSON-compatible constructor arguments
    (without weights) and :meth:`from_config` recreates the layer.
    """

    #: Class-level prefix of automatic names (Keras: the snake_case class name).
    _name_prefix = "layer"
    #: Constructor keywords :meth:`crnn.models.Sequential.add` may override.
    _overridable: Tuple[str, ...] = ()
    #: Exact input rank the layer needs, or None (then at least ``_min_input_ndim``).
    _input_ndim: Optional[int] = None
    _min_input_ndim = 1
    #: Attributes dropped when pickling (rebuilt lazily).
    _transient: Tuple[str, ...] = ("_handle",)

    supports_masking = True
    name: str
    built: bool = False
    batch_input_shape: Optional[Shape] = None
    stateful: bool = False
    trainable: bool = True
    dtype: str = "float32"
    _version: Any = 0
    _weights: Optional[tuple] = None
    _build_input_shape: Optional[Shape] = None

    #: Attributes that shape or type the weights (Dense's units, Embedding's output_dim...) or
    #: the input (InputLayer's shape): fixed once the layer is built, as a recurrent layer's are
    #: (RNN.__setattr__). An assignment after that changed the config, and so a saved file, but
    #: not the weights.
    _fixed_when_built: Tuple[str, ...] = ()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._fixed_when_built and self.__dict__.get("built"):
            old = self.__dict__.get(name)
            if not (_same_dtype(value, old) if name == "dtype" else _same_value(value, old)):
                raise ValueError(f"{name}: cannot be changed on layer {self.name!r} once it is "
                                 f"built; pass it to the {type(self).__name__} constructor")
            return  # the same value: keep the spelling the layer checked
        object.__setattr__(self, name, value)

    def _set_name(self, name: Optional[str]) -> None:
        if name is None:
            name = unique_name(self._name_prefix)
        elif not isinstance(name, str) or not name:
            raise TypeError(f"name: got {name!r}, expected a non-empty str or None")
        self.name = name

    def _configure(self, **overrides: Any) -> None:  # pragma: no cover - only SimpleRNN has overrides
        raise TypeError(f"{type(self).__name__}: got unexpected keyword argument(s) {sorted(overrides)}")

    # ------------------------------------------------------------------ config
    def get_config(self) -> Dict[str, Any]:  # pragma: no cover - abstract
        """Constructor arguments that recreate this layer (without its weights)."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Layer":
        """Create a layer from :meth:`get_config` output (weights are not included)."""
        if not isinstance(config, dict):
            raise TypeError(f"config: got {type(config).__name__}, expected a dict from get_config()")
        return cls(**config)

    # ------------------------------------------------------------------ weights
    def _weight_arrays(self) -> List[np.ndarray]:
        """The weights themselves (no copies), in :meth:`get_weights` order."""
        w = self._weights
        return [] if w is None else [a for a in w if a is not None]

    def _weight_names(self) -> List[str]:
        """Keras names of the :meth:`get_weights` arrays ("kernel", "bias", ...)."""
        return []

    def _num_weight_arrays(self) -> int:
        """Number of arrays :meth:`set_weights` takes."""
        return len(self._weight_names())

    def get_weights(self) -> List[np.ndarray]:
        """Copies of the weights, in the Keras order (empty before the layer is built)."""
        return [a.copy() for a in self._weight_arrays()]

    @property
    def weights(self) -> List[np.ndarray]:
        """Same as :meth:`get_weights`."""
        return self.get_weights()

    def set_weights(self, weights: Sequence[ArrayLike]) -> None:
        """Replace the weights with copies of ``weights`` (the :meth:`get_weights` layout).

        Raises
        ------
        ValueError
            Wrong number of arrays or a wrong shape.
        TypeError
            A non-real dtype (bool, complex, object, str).

        Notes
        -----
        The replacement is atomic for callers on other threads: a call (of this layer, or of a
        model holding it) runs wholly on the old weights or wholly on the new ones.
        """
        prepared = self._prepare_weights(weights)
        with WEIGHTS_LOCK:
            self._store_prepared(prepared)

    def _store_built(self, prepared: Any) -> None:
        """Store weights :meth:`build` drew, unless another thread built the layer meanwhile:
        a layer is built once, and every call computes with those weights."""
        with WEIGHTS_LOCK:
            if not self.built:
                self._store_prepared(prepared)

    def _check_weight_list(self, weights: Any) -> List[np.ndarray]:
        if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
            raise TypeError(f"set_weights: got {type(weights).__name__}, expected a list of arrays")
        names = self._weight_names()
        if len(weights) != len(names):
            raise ValueError(f"set_weights: got {len(weights)} arrays, expected {len(names)} "
                             f"({', '.join(names) or 'this layer has no weights'}) "
                             f"for layer {self.name!r}")
        return [_core.as_real_array(w, f"set_weights: {n}") for n, w in zip(names, weights)]

    def _prepare_weights(self, weights: Sequence[ArrayLike], input_dim: Optional[int] = None) -> Any:
        """Validate a :meth:`set_weights` list (``input_dim``: width of the input, if known)."""
        self._check_weight_list(weights)
        return None

    def _store_prepared(self, prepared: Any) -> None:
        """Install what :meth:`_prepare_weights` returned."""

    def _output_width(self, prepared: Any, width: Optional[int]) -> Optional[int]:
        """Last dimension of the output given prepared weights and the input width."""
        return width

    def count_params(self) -> int:
        """Number of weights.  Raises ValueError if the layer is not built (as in Keras)."""
        if not self.built:
            raise ValueError(f"You tried to call count_params on layer {self.name!r}, but the layer "
                             "isn't built. You can build it manually via: "
                             "layer.build(batch_input_shape)")
        return int(sum(a.size for a in self._weight_arrays()))

    # ------------------------------------------------------------------ shapes
    def _placeholder_input_shape(self) -> Optional[Shape]:
        """Input shape assumed when nothing is known (None: rank unknown too)."""
        return None

    def _input_complete(self, shape: Shape) -> bool:
        """True if ``shape`` tells :meth:`build` everything it needs."""
        return shape[-1] is not None

    def _expected_input_dim(self) -> Optional[int]:
        """Last input dimension the built weights require, or None."""
        return None

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        """Create the weights for inputs of ``input_shape`` (a no-op for weightless layers)."""
        self._build_input_shape = _input_shape_arg(input_shape, self._min_input_ndim)
        self.built = True

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]) -> Any:
        """Output shape for an input of ``input_shape`` (same shape by default)."""
        return _input_shape_arg(input_shape, self._min_input_ndim)

    # ------------------------------------------------------------------ masks and calls
    def compute_mask(self, inputs: Any, mask: Optional[ArrayLike] = None) -> Any:
        """The mask passed on to the next layer (by default: the incoming one)."""
        return mask

    def _call_masked(self, x: ArrayLike, mask: Any) -> Tuple[Any, Any]:
        """``(output, output_mask)`` of one call (what a model runs)."""
        return self(x, mask=mask), self.compute_mask(x, mask)

    def _bound_call(self) -> Callable[[Any, Any], Tuple[Any, Any]]:
        """:meth:`_call_masked` bound to the layer's current weights (a model's call plan is
        built from these under :data:`WEIGHTS_LOCK`, so a plan never mixes old and new weights).
        Weightless layers have nothing to bind."""
        return self._call_masked

    # ------------------------------------------------------------------ states
    @property
    def states(self) -> List[Optional[np.ndarray]]:
        """Recurrent states of a stateful layer (empty for other layers)."""
        return []

    def reset_states(self, states: Any = None) -> None:
        """Clear the state of a stateful layer; AttributeError otherwise (as in Keras)."""
        raise AttributeError(f"reset_states: layer {self.name!r} is not stateful, "
                             "expected a layer created with stateful=True")

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        for key in self._transient:
            if key in state:
                state[key] = None
        state.pop("_state_lock", None)
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._state_lock = threading.Lock()
        for a in self._weights or ():
            if a is not None and a.flags.writeable:
                a.setflags(write=False)

    def __sizeof__(self) -> int:
        """Bytes held, weights and states included (what ``sys.getsizeof`` and Dask see)."""
        arrays = self._weight_arrays() + [s for s in self.states if s is not None]
        return object.__sizeof__(self) + sum(a.nbytes for a in arrays)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}, built={self.built}>"


class _Weightless(Layer):
    """Shared parts of the weightless layers."""

    _min_input_ndim = 1

    def _init_weightless(self, input_shape: Any, batch_input_shape: Any, batch_size: Any,
                         input_dim: Any, trainable: Any, dtype: Any, name: Any) -> None:
        self.trainable = _check_bool(trainable, "trainable")
        self.dtype = _check_dtype(dtype)
        self._set_name(name)
        self._weights = None
        self._version = 0
        self._handle = None
        self.batch_input_shape = _resolve_generic_shape(input_shape, batch_input_shape, batch_size,
                                                        ("input_dim", input_dim),
                                                        self._min_input_ndim)
        self.built = True  # nothing to build

    def _base_config(self) -> Dict[str, Any]:
        cfg: Dict[str, Any] = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}
        if self.batch_input_shape is not None:
            cfg["batch_input_shape"] = self.batch_input_shape
        return cfg

    def _input_complete(self, shape: Shape) -> bool:
        return True

    def _as_input(self, x: ArrayLike) -> np.ndarray:
        xa = _core.as_real_array(x, "x")
        if xa.ndim < self._min_input_ndim:
            raise ValueError(f"x: got shape {xa.shape}, expected at least {self._min_input_ndim} "
                             "dimensions")
        if xa.dtype != self.dtype:
            xa = xa.astype(self.dtype)
        return xa
