"""Keras-like layers running on the crnn C core.

The layers here mirror Keras names, arguments and semantics (Keras 2's
``batch_input_shape`` / ``input_length`` / ``input_dim`` spellings included) so
that code written for ``tensorflow.keras.layers`` runs with ``crnn.layers`` in
its place, for inference::

    from crnn.layers import Bidirectional, Dense, Embedding, SimpleRNN
    from crnn.models import Sequential

    model = Sequential()
    model.add(Embedding(10000, 32, mask_zero=True))
    model.add(Bidirectional(SimpleRNN(32)))
    model.add(Dense(1, activation="sigmoid"))
    model.summary()

Layers: :class:`SimpleRNN`, :class:`Bidirectional`, :class:`Dense`,
:class:`Embedding`, :class:`Masking`, :class:`Activation`, :class:`Dropout`
(the identity at inference), and :func:`Input` / :class:`InputLayer` to
declare a model's input shape.

A layer owns its weights (NumPy arrays in the Keras layout).  Recurrent layers
also own an immutable compiled handle (:class:`crnn._core.RNN`) built from
them, which does the work of every call; a :class:`Bidirectional` SimpleRNN
runs both directions in one C call.  crnn is inference only: there is no
training, so arguments that only matter to training (``dropout``) are
accepted and ignored.

Masks follow Keras: :class:`Embedding` (``mask_zero=True``) and
:class:`Masking` create a boolean ``(batch, timesteps)`` mask, :class:`Dense`
and :class:`Activation` pass it on, and a recurrent layer skips the masked
steps (the state carries over; with ``return_sequences`` the output at a masked
step repeats the previous output, or is zero inside a ``Bidirectional``) and
passes the mask on only if it returns sequences.  A right-padded mask (each
sequence a prefix of valid steps) runs as per-sequence lengths inside the C
call; any other mask first moves each sequence's valid steps to its front.

Every layer supports ``get_config()`` / ``from_config()`` and pickling (the
compiled handle is rebuilt lazily after unpickling).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import threading
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from .reference import ACTIVATIONS

__all__ = ["Layer", "InputSpec", "SimpleRNN", "Bidirectional", "Dense", "Embedding", "Masking",
           "Activation", "Dropout", "InputLayer", "Input", "InvalidIndexError", "clear_session",
           "serialize", "deserialize"]

ArrayLike = Any
Shape = Tuple[Optional[int], ...]

#: Largest number of elements crnn allocates for one weight matrix.
MAX_MATRIX_ELEMENTS = 2**31 - 1

#: Activations of :class:`Dense` and :class:`Activation` (``None`` means ``"linear"``).
DENSE_ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "softmax")

#: Merge modes of :class:`Bidirectional`.
MERGE_MODES = ("concat", "sum", "mul", "ave", None)

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
# Weights epoch: bumped after any layer's weights or computation change, so a
# model can check its cached call plan with one comparison.
# --------------------------------------------------------------------------- #
_EPOCH = [0]
_EPOCH_LOCK = threading.Lock()


def _touch() -> None:
    with _EPOCH_LOCK:
        _EPOCH[0] += 1


# --------------------------------------------------------------------------- #
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


# --------------------------------------------------------------------------- #
# Argument validation helpers ("<arg>: got X, expected Y")
# --------------------------------------------------------------------------- #
def _check_bool(value: Any, name: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name}: got {value!r}, expected True or False")


def _reject_unknown_kwargs(layer: Any, kwargs: Dict[str, Any]) -> None:
    """TypeError naming unknown constructor keywords and the accepted ones, read from the
    signature of the layer's ``__init__`` (so the list cannot drift from the constructor)."""
    if kwargs:
        params = inspect.signature(type(layer).__init__).parameters
        known = sorted(p for p, v in params.items()
                       if p != "self" and v.kind is not inspect.Parameter.VAR_KEYWORD)
        raise TypeError(f"{type(layer).__name__}: got unexpected keyword argument(s) "
                        f"{sorted(kwargs)}, expected only {known}")


def _check_int(value: Any, name: str, *, minimum: int = 1, allow_none: bool = False) -> Optional[int]:
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise TypeError(f"{name}: got {value!r} of type {type(value).__name__}, expected {what}"
                        + (" or None" if allow_none else ""))
    value = int(value)
    if value < minimum:
        what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name}: got {value}, expected {what}")
    return value


def _check_activation(value: Any) -> Optional[str]:
    if value is None or (isinstance(value, str) and value in ACTIVATIONS):
        return value
    raise ValueError(f"activation: got {value!r}, expected one of {sorted(ACTIVATIONS)} or None")


def _check_dense_activation(value: Any) -> Optional[str]:
    if value is None or (isinstance(value, str) and value in DENSE_ACTIVATIONS):
        return value
    raise ValueError(f"activation: got {value!r}, expected one of {sorted(DENSE_ACTIVATIONS)} "
                     "or None")


def _check_dtype(value: Any) -> str:
    try:
        dt = np.dtype(value)
    except TypeError:
        dt = None
    if value is None or dt is None or dt not in (np.float32, np.float64):
        raise ValueError(f"dtype: got {value!r}, expected 'float32' or 'float64'")
    return dt.name


def _check_shape(value: Any, name: str, rank: int) -> Shape:
    """A tuple of ``rank`` entries, each a positive int or None."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise TypeError(f"{name}: got {value!r}, expected a tuple of {rank} ints or None")
    if len(value) != rank:
        raise ValueError(f"{name}: got {tuple(value)!r} of length {len(value)}, expected {rank} entries")
    return tuple(_check_int(v, name, allow_none=True) for v in value)


def _check_any_shape(value: Any, name: str, min_rank: int) -> Shape:
    """A tuple of at least ``min_rank`` entries, each a positive int or None."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise TypeError(f"{name}: got {value!r}, expected a tuple of ints or None")
    if len(value) < min_rank:
        raise ValueError(f"{name}: got {tuple(value)!r} of length {len(value)}, expected at least "
                         f"{min_rank} entries")
    return tuple(_check_int(v, name, allow_none=True) for v in value)


def _check_seed(value: Any) -> Any:
    if value is None or isinstance(value, np.random.Generator):
        return value
    return _check_int(value, "seed", minimum=0)


def _physical_memory() -> Optional[int]:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def _check_memory(what: str, need: int) -> None:
    ram = _physical_memory()
    if ram is not None and need > ram:
        raise MemoryError(f"{what}: building needs {need / 2**30:.1f} GiB, more than this "
                          f"machine's {ram / 2**30:.1f} GiB")


def _format_shape(shape: Any) -> str:
    return str(tuple(shape)) if isinstance(shape, tuple) else str(shape)


def _rng(seed: Any) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _input_shape_arg(shape: Any, min_rank: int) -> Shape:
    """Validate a ``build()`` / ``compute_output_shape()`` shape of any rank >= min_rank."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, (tuple, list)):
        raise TypeError(f"input_shape: got {shape!r}, expected a tuple (batch, ..., features)")
    if len(shape) < min_rank:
        raise ValueError(f"input_shape: got {tuple(shape)!r}, expected at least {min_rank} "
                         "dimensions")
    return tuple(_check_int(v, "input_shape", minimum=0, allow_none=True) for v in shape)


def _resolve_generic_shape(input_shape: Any, batch_input_shape: Any, batch_size: Any,
                           legacy: Optional[Tuple[str, Any]], min_rank: int) -> Optional[Shape]:
    """Combine Keras input-shape spellings of a non-recurrent layer into ``batch_input_shape``.

    ``legacy`` is Keras 2's one-int spelling (``("input_dim", n)`` -> ``input_shape=(n,)``,
    ``("input_length", n)`` -> ``input_shape=(n,)``).  Conflicts raise ValueError.
    """
    batch = _check_int(batch_size, "batch_size", allow_none=True)
    ins = None if input_shape is None else _check_any_shape(input_shape, "input_shape",
                                                            max(min_rank - 1, 1))
    bis = None if batch_input_shape is None else _check_any_shape(batch_input_shape,
                                                                  "batch_input_shape", min_rank)
    leg = None
    if legacy is not None and legacy[1] is not None:
        leg = (_check_int(legacy[1], legacy[0]),)
    if bis is None:
        base = ins if ins is not None else leg
        if base is None:
            return None
        bis = (batch,) + tuple(base)
    for arg, val, want in (("input_shape", ins, bis[1:]), ("batch_size", batch, bis[0]),
                           (legacy[0] if legacy else "", leg, bis[1:])):
        if val is not None and val != want:
            raise ValueError(f"{arg}: got {val!r}, which conflicts with the input shape {bis!r} "
                             "given by the other input-shape arguments")
    return bis


# --------------------------------------------------------------------------- #
# Activations of Dense / Activation (in place on a fresh float array)
# --------------------------------------------------------------------------- #
def _apply_activation(name: Optional[str], y: np.ndarray) -> np.ndarray:
    if name is None or name == "linear":
        return y
    if name == "relu":
        np.maximum(y, y.dtype.type(0), out=y)  # propagates NaN
    elif name == "tanh":
        np.tanh(y, out=y)
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


# --------------------------------------------------------------------------- #
# Masks and the masked recurrent run (shared by SimpleRNN, Bidirectional, Sequential)
# --------------------------------------------------------------------------- #
def _mask_array(mask: Any, batch: int, steps: int) -> Optional[np.ndarray]:
    """The mask as bool ``(batch, steps)``, or None when absent or all True."""
    if mask is None:
        return None
    m = mask if type(mask) is np.ndarray else np.asarray(mask)
    if m.shape != (batch, steps) or m.dtype.kind not in "biu":
        raise ValueError(f"mask: got {m.dtype} shape {m.shape}, expected bool ({batch}, {steps})")
    if m.dtype != np.bool_:
        m = m != 0
    return None if m.all() else m


def _run_recurrent(handle: Any, xa: np.ndarray, init: Optional[list], m: Optional[np.ndarray],
                   return_sequences: bool, need_states: bool, zero_masked: bool,
                   go_backwards: bool = False) -> Tuple[np.ndarray, Optional[list]]:
    """Run a compiled stack with Keras mask semantics for its last layer's output.

    Returns ``(output, states)``: ``output`` is ``(B, T, W)`` aligned with the
    input time (in processing order for ``go_backwards``) or the last output
    ``(B, W)``; ``states`` the final states (None unless ``need_states``).

    Keras skips a masked step: the state carries over, so each layer of a
    stack sees only the valid steps of its input, in order.  A right-padded
    mask is passed to the C core as per-sequence lengths; any other mask first
    moves each sequence's valid steps to its front (stable), runs with lengths,
    and scatters the outputs back.  At a masked step the output repeats the
    previous one (zeros before the first valid step), or is zero when
    ``zero_masked`` (Keras ``zero_output_for_mask``, forced inside
    ``Bidirectional``); with no valid step at all the last output is zero.
    """
    if m is None:
        if need_states:
            out, states = handle.forward(xa, init, None, return_sequences, True)
        else:
            out, states = handle.forward(xa, init, None, return_sequences, False), None
        if go_backwards and return_sequences:
            out = np.ascontiguousarray(out[:, ::-1])
        return out, states
    steps = m.shape[1]
    lengths = m.sum(axis=1)
    order = None
    if steps > 1 and not np.all(m[:, :-1] >= m[:, 1:]):  # not right-padded: compact
        order = np.argsort(~m, axis=1, kind="stable")
        xa = np.take_along_axis(xa, order[:, :, None], axis=1)
    if need_states:
        y, states = handle.forward(xa, init, lengths, return_sequences, True)
    else:
        y, states = handle.forward(xa, init, lengths, return_sequences, False), None
    if not return_sequences:
        valid = lengths > 0
        if not valid.all():
            y = np.where(valid[:, None], y, y.dtype.type(0))
        return y, states
    if order is not None:
        aligned = np.empty_like(y)
        np.put_along_axis(aligned, order[:, :, None], y, axis=1)
        y = aligned  # zeros at the masked steps (the core zeroes steps past a length)
    if go_backwards:
        y, m = y[:, ::-1], m[:, ::-1]
    if not zero_masked:
        src = np.where(m, np.arange(steps), -1)
        np.maximum.accumulate(src, axis=1, out=src)
        y = np.take_along_axis(y, np.maximum(src, 0)[:, :, None], axis=1)
        y[src < 0] = 0
    elif go_backwards:
        y = np.ascontiguousarray(y)
    return y, states


def _check_sequence_input(x: ArrayLike, dim: Optional[int]) -> np.ndarray:
    """``x`` as a real ``(batch, timesteps >= 1, dim)`` array (dtype not changed)."""
    xa = _core.as_real_array(x, "x")
    if xa.ndim != 3:
        raise ValueError(f"x: got shape {xa.shape}, expected (batch, timesteps, input_dim)")
    if xa.shape[1] == 0:
        raise ValueError("x: got 0 timesteps, expected at least 1")
    if dim is not None and xa.shape[2] != dim:
        raise ValueError(f"x: got input_dim {xa.shape[2]}, expected {dim}")
    return xa


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
        """
        self._store_prepared(self._prepare_weights(weights))

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


# --------------------------------------------------------------------------- #
# Keras default initialisers
# --------------------------------------------------------------------------- #
def _glorot_uniform(rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


def _orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
    # Keras Orthogonal(gain=1): QR of a standard normal matrix, columns signed
    # by diag(R) so that the distribution is uniform over orthogonal matrices.
    a = rng.standard_normal((n, n))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    return q


# --------------------------------------------------------------------------- #
# SimpleRNN
# --------------------------------------------------------------------------- #
class SimpleRNN(Layer):
    """Fully-connected RNN whose output is fed back to its input (Keras ``SimpleRNN``).

    Each step computes ``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``.

    Parameters
    ----------
    units : int
        Size of the hidden state (the output width).
    activation : {"tanh", "relu", "sigmoid", "linear"} or None, default "tanh"
        ``None`` means linear.
    use_bias : bool, default True
    return_sequences : bool, default False
        Return every step ``(batch, timesteps, units)`` instead of the last
        ``(batch, units)``.
    return_state : bool, default False
        Return ``[output, final_state]``.
    go_backwards : bool, default False
        Process the sequence from its last step to its first; as in Keras,
        a returned sequence is in processing (reversed) order.
    stateful : bool, default False
        Keep the final state of each sequence in the batch as the initial
        state of the same position in the next call.  Needs a fixed batch
        size (``batch_input_shape`` or ``batch_size``; otherwise the first
        call's).
    input_shape : tuple, optional
        ``(timesteps, input_dim)``; ``timesteps`` may be None.
    batch_input_shape : tuple, optional
        Keras 2 spelling ``(batch, timesteps, input_dim)``.
    input_length, input_dim : int, optional
        Keras 2 spelling of ``input_shape=(input_length, input_dim)``.
    batch_size : int, optional
        Fixed batch size, used with ``input_shape`` (as in Keras).
    dropout, recurrent_dropout : float in [0, 1], default 0
        Accepted for Keras compatibility.  Dropout only acts in training,
        which crnn does not do, so inference ignores them, as Keras does.
    zero_output_for_mask : bool, default False
        Keras RNN option: with ``return_sequences`` and a mask, output zeros
        (instead of repeating the previous output) at masked steps.
        :class:`Bidirectional` sets it on its two layers, as Keras does.
    weights : list of arrays, optional
        Initial weights ``[kernel, recurrent_kernel, bias]`` (Keras ``weights=``).
    trainable : bool, default True
        Only affects :meth:`~crnn.models.Sequential.summary`'s counts.
    dtype : {"float32", "float64"}, default "float32"
        Dtype of the weights, the computation and the outputs.
    seed : int or numpy.random.Generator, optional
        Seed of the initial weights (Keras defaults: ``glorot_uniform``
        kernel, ``orthogonal`` recurrent kernel, zero bias).
    name : str, optional
        Default: ``"simple_rnn"``, ``"simple_rnn_1"``, ... in creation order.

    Notes
    -----
    The weights are created as soon as ``input_dim`` is known: at
    construction if the input shape gives it, otherwise when a
    :class:`~crnn.models.Sequential` propagates shapes, on :meth:`build`, on
    :meth:`set_weights` or on the first call.

    Examples
    --------
    >>> import numpy as np
    >>> from crnn.layers import SimpleRNN
    >>> layer = SimpleRNN(3, input_shape=(2, 10), seed=0)
    >>> layer.count_params()
    42
    >>> layer(np.ones((8, 2, 10))).shape
    (8, 3)
    """

    _name_prefix = "simple_rnn"
    _input_ndim = 3
    _min_input_ndim = 3
    _overridable = ("activation", "use_bias", "return_sequences", "return_state", "go_backwards",
                    "stateful", "input_shape", "batch_input_shape", "input_length", "input_dim",
                    "batch_size", "dropout", "recurrent_dropout", "dtype", "seed")
    # Keywords that change the weights: only overridable before the layer is built.
    _weight_keys = ("use_bias", "input_shape", "batch_input_shape", "input_length", "input_dim",
                    "dtype", "seed")

    def __init__(
        self,
        units: int,
        activation: Optional[str] = "tanh",
        use_bias: bool = True,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        input_shape: Optional[Sequence[Optional[int]]] = None,
        batch_input_shape: Optional[Sequence[Optional[int]]] = None,
        input_length: Optional[int] = None,
        input_dim: Optional[int] = None,
        batch_size: Optional[int] = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        dtype: Union[str, np.dtype, type] = "float32",
        seed: Optional[int] = None,
        name: Optional[str] = None,
        zero_output_for_mask: bool = False,
        weights: Optional[Sequence[ArrayLike]] = None,
        trainable: bool = True,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            known = self._overridable + ("units", "name", "weights", "trainable",
                                         "zero_output_for_mask")
            raise TypeError(f"SimpleRNN: got unexpected keyword argument(s) {sorted(kwargs)}, "
                            f"expected only {sorted(known)}")
        units = _check_int(units, "units")
        if units * units > MAX_MATRIX_ELEMENTS:
            raise ValueError(f"units: got {units}, expected units**2 <= {MAX_MATRIX_ELEMENTS} "
                             f"(the recurrent kernel would have {units * units} elements)")
        self.units: int = units
        self._set_name(name)
        self.built = False
        self.trainable = _check_bool(trainable, "trainable")
        self.zero_output_for_mask = _check_bool(zero_output_for_mask, "zero_output_for_mask")
        # (kernel, recurrent_kernel, bias or None), replaced as a whole so a
        # concurrent reader never sees a mix of old and new arrays.
        self._weights: Optional[Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]] = None
        # Bumped (last) whenever the weights or the computation change; the
        # compiled handles here and in Sequential are cached per version.
        self._version = 0
        self._handle: Optional[Tuple[int, Any]] = None
        self._state_lock = threading.Lock()
        self._states: Optional[np.ndarray] = None
        self._configure(activation=activation, use_bias=use_bias,
                        return_sequences=return_sequences, return_state=return_state,
                        go_backwards=go_backwards, stateful=stateful, input_shape=input_shape,
                        batch_input_shape=batch_input_shape, input_length=input_length,
                        input_dim=input_dim, batch_size=batch_size, dropout=dropout,
                        recurrent_dropout=recurrent_dropout, dtype=dtype, seed=seed)
        if weights is not None:
            self.set_weights(weights)

    # ------------------------------------------------------------------ config
    def _configure(self, **kw: Any) -> None:
        """Validate and apply constructor keywords (all at construction, some later).

        Used by the constructor and by :meth:`crnn.models.Sequential.add`
        overrides.  Weight-shaping keywords may only change before the layer
        is built.  Nothing is modified unless every keyword is valid.
        """
        unknown = [k for k in kw if k not in self._overridable]
        if unknown:
            raise TypeError(f"SimpleRNN: got unexpected keyword argument(s) {sorted(unknown)}, "
                            f"expected only {sorted(self._overridable)}")
        first = not hasattr(self, "activation")
        if not first and self.built:
            fixed = [k for k in kw if k in self._weight_keys]
            if fixed:
                raise ValueError(f"{fixed[0]}: cannot be changed on layer {self.name!r} after its "
                                 "weights exist; pass it to the SimpleRNN constructor")
        cur = {} if first else self._config_values()
        cur.update(kw)

        activation = _check_activation(cur["activation"])
        flags = {k: _check_bool(cur[k], k) for k in
                 ("use_bias", "return_sequences", "return_state", "go_backwards", "stateful")}
        for k in ("dropout", "recurrent_dropout"):
            v = cur[k]
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"{k}: got {v!r}, expected a float in [0, 1]")
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"{k}: got {v!r}, expected a float in [0, 1]")
        dtype = _check_dtype(cur["dtype"])
        seed = _check_seed(cur["seed"])
        bis = self._resolve_input_shape(cur)

        self.activation: Optional[str] = activation
        self.use_bias: bool = flags["use_bias"]
        self.return_sequences: bool = flags["return_sequences"]
        self.return_state: bool = flags["return_state"]
        self.go_backwards: bool = flags["go_backwards"]
        self.stateful: bool = flags["stateful"]
        self.dropout = float(cur["dropout"])
        self.recurrent_dropout = float(cur["recurrent_dropout"])
        self.dtype: str = dtype
        self.seed = seed
        self.batch_input_shape: Optional[Shape] = bis
        # Remember the raw spellings so later overrides combine the same way.
        self._shape_args = {k: cur[k] for k in ("input_shape", "batch_input_shape", "input_length",
                                                "input_dim", "batch_size")}
        with self._state_lock:
            st, batch = self._states, (bis[0] if bis is not None else None)
            if not self.stateful:
                self._states = None
            elif batch is not None and (st is None or st.shape != (batch, self.units)
                                        or st.dtype != dtype):
                self._states = np.zeros((batch, self.units), dtype)
        self._version += 1
        _touch()
        if not self.built and bis is not None and bis[2] is not None:
            self.build(bis)

    def _config_values(self) -> Dict[str, Any]:
        vals = {"activation": self.activation, "use_bias": self.use_bias,
                "return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards, "stateful": self.stateful,
                "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
                "dtype": self.dtype, "seed": self.seed}
        vals.update(self._shape_args)
        return vals

    @staticmethod
    def _resolve_input_shape(kw: Dict[str, Any]) -> Optional[Shape]:
        """Combine the Keras input-shape spellings into one ``batch_input_shape``.

        Conflicting spellings raise ValueError (Keras silently picks one).
        """
        bis = kw["batch_input_shape"]
        ins = kw["input_shape"]
        length = _check_int(kw["input_length"], "input_length", allow_none=True)
        dim = _check_int(kw["input_dim"], "input_dim", allow_none=True)
        batch = _check_int(kw["batch_size"], "batch_size", allow_none=True)
        if bis is not None:
            bis = _check_shape(bis, "batch_input_shape", 3)
        if ins is not None:
            ins = _check_shape(ins, "input_shape", 2)
        if bis is None and ins is None and length is None and dim is None:
            if batch is not None:
                return (batch, None, None)
            return None
        if bis is None:
            bis = (batch,) + (ins if ins is not None else (length, dim))
        for arg, val, pos in (("input_shape", ins, None), ("input_length", length, 1),
                              ("input_dim", dim, 2), ("batch_size", batch, 0)):
            if val is None:
                continue
            want = bis[1:] if pos is None else bis[pos]
            if val != want:
                raise ValueError(f"{arg}: got {val!r}, which conflicts with the input shape "
                                 f"{bis!r} given by the other input-shape arguments")
        return bis

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments that recreate this layer (without its weights).

        ``SimpleRNN.from_config(layer.get_config())`` builds an equivalent
        layer with fresh weights (the same ones if ``seed`` is an int).
        """
        cfg: Dict[str, Any] = {"name": self.name, "units": self.units}
        cfg.update({k: v for k, v in self._config_values().items() if k not in self._shape_args})
        if isinstance(cfg["seed"], np.random.Generator):
            cfg["seed"] = None
        cfg["trainable"] = self.trainable
        if self.zero_output_for_mask:
            cfg["zero_output_for_mask"] = True
        if self.batch_input_shape is not None:
            cfg["batch_input_shape"] = self.batch_input_shape
        return cfg

    # ------------------------------------------------------------------ shapes
    @property
    def input_spec(self) -> InputSpec:
        """Accepted input: rank 3, ``(batch if stateful else None, None, input_dim)``."""
        dim = self.input_dim
        if dim is None and self.batch_input_shape is not None:
            dim = self.batch_input_shape[2]
        return InputSpec(3, (self._stateful_batch() if self.stateful else None, None, dim))

    @property
    def input_dim(self) -> Optional[int]:
        """Width of the input, or None before the layer is built."""
        w = self._weights
        return None if w is None else int(w[0].shape[0])

    def _expected_input_dim(self) -> Optional[int]:
        return self.input_dim

    def _placeholder_input_shape(self) -> Optional[Shape]:
        return (None, None, None)

    def _stateful_batch(self) -> Optional[int]:
        if self.batch_input_shape is not None and self.batch_input_shape[0] is not None:
            return self.batch_input_shape[0]
        st = self._states
        return None if st is None else st.shape[0]

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]) -> Union[Shape, List[Shape]]:
        """Output shape for an input of shape ``(batch, timesteps, input_dim)``.

        Returns ``(batch, timesteps, units)`` with ``return_sequences``, else
        ``(batch, units)``; with ``return_state``, the list
        ``[output_shape, (batch, units)]``.
        """
        shape = self._check_input_shape(input_shape)
        batch = shape[0]
        out = (batch, shape[1], self.units) if self.return_sequences else (batch, self.units)
        return [out, (batch, self.units)] if self.return_state else out

    def _check_input_shape(self, input_shape: Any) -> Shape:
        if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, (tuple, list)):
            raise TypeError(f"input_shape: got {input_shape!r}, expected a tuple "
                            "(batch, timesteps, input_dim)")
        if len(input_shape) != 3:
            raise ValueError(f"input_shape: got {tuple(input_shape)!r}, expected 3-D "
                             f"(batch, timesteps, input_dim): layer {self.name!r} needs ndim=3, "
                             f"found ndim={len(input_shape)}")
        shape = tuple(_check_int(v, "input_shape", minimum=0, allow_none=True) for v in input_shape)
        dim = self.input_dim
        if dim is not None and shape[2] is not None and shape[2] != dim:
            raise ValueError(f"input_shape: got input_dim {shape[2]}, expected {dim} "
                             f"(layer {self.name!r} was built for input_dim {dim})")
        return shape

    # ------------------------------------------------------------------ weights
    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        """Create the weights for inputs of shape ``(batch, timesteps, input_dim)``.

        Uses the Keras default initialisers with ``numpy.random.default_rng(seed)``.
        A no-op if already built for the same ``input_dim``.

        Raises
        ------
        ValueError
            ``input_dim`` unknown, or different from the built one, or the
            kernel would exceed ``2**31 - 1`` elements.
        MemoryError
            The weights would not fit in this machine's memory.
        """
        shape = self._check_input_shape(input_shape)
        dim = shape[2]
        if self.built:
            return
        if dim is None or dim < 1:
            raise ValueError(f"input_shape: got input_dim {dim!r}, expected a positive int "
                             f"to build layer {self.name!r}")
        h = self.units
        if dim * h > MAX_MATRIX_ELEMENTS:
            raise ValueError(f"input_dim: got {dim} with units={h}, expected input_dim*units <= "
                             f"{MAX_MATRIX_ELEMENTS} (the kernel would have {dim * h} elements)")
        if _deferring():
            self._store_weights(_placeholder((dim, h), self.dtype), _placeholder((h, h), self.dtype),
                                _placeholder((h,), self.dtype) if self.use_bias else None)
            self._build_input_shape = (None, None, dim)
            return
        # float64 draws + QR workspace (a, q, r) + stored copies in the layer dtype.
        need = 8 * (dim * h + 3 * h * h) + np.dtype(self.dtype).itemsize * (dim * h + h * h + h)
        _check_memory(f"SimpleRNN(units={h}) with input_dim={dim}", need)
        if h > 2000:
            warnings.warn(f"SimpleRNN(units={h}): the orthogonal initialiser takes a QR of a "
                          f"{h}x{h} matrix; slowness may result", stacklevel=2)
        rng = _rng(self.seed)
        try:
            kernel = _glorot_uniform(rng, dim, h)
            rk = _orthogonal(rng, h)
            bias = np.zeros(h) if self.use_bias else None
        except MemoryError as exc:
            raise MemoryError(f"SimpleRNN(units={h}) with input_dim={dim}: out of memory "
                              "creating the weights") from exc
        self._store_weights(kernel, rk, bias)

    def _store_weights(self, kernel: np.ndarray, rk: np.ndarray, bias: Optional[np.ndarray]) -> None:
        self._weights = (_freeze(kernel, self.dtype), _freeze(rk, self.dtype), _freeze(bias, self.dtype))
        self._build_input_shape = (None, None, int(self._weights[0].shape[0]))
        self.built = True
        self._version += 1
        _touch()

    @property
    def kernel(self) -> Optional[np.ndarray]:
        """Input weights ``(input_dim, units)`` (read-only view), None before build."""
        return None if self._weights is None else self._weights[0]

    @property
    def recurrent_kernel(self) -> Optional[np.ndarray]:
        """Recurrent weights ``(units, units)`` (read-only view), None before build."""
        return None if self._weights is None else self._weights[1]

    @property
    def bias(self) -> Optional[np.ndarray]:
        """Bias ``(units,)`` (read-only view), None before build or without bias."""
        return None if self._weights is None else self._weights[2]

    def _weight_names(self) -> List[str]:
        return ["kernel", "recurrent_kernel"] + (["bias"] if self.use_bias else [])

    def get_weights(self) -> List[np.ndarray]:
        """Copies of ``[kernel (D, H), recurrent_kernel (H, H), bias (H,)]``.

        ``bias`` is left out when ``use_bias=False``; the list is empty
        before the layer is built (as in Keras).
        """
        return super().get_weights()

    def set_weights(self, weights: Sequence[ArrayLike]) -> None:
        """Replace the weights with copies of ``[kernel, recurrent_kernel, bias]``.

        Arrays are cast to the layer dtype.  Shapes must be ``(input_dim,
        units)``, ``(units, units)`` and ``(units,)``; ``bias`` is omitted
        when ``use_bias=False``.  An unbuilt layer takes ``input_dim`` from
        the kernel and is built by this call.

        Raises
        ------
        ValueError
            Wrong number of arrays or a wrong shape.
        TypeError
            A non-real dtype (bool, complex, object, str).
        """
        self._store_weights(*self._prepare_weights(weights))

    def _prepare_weights(
        self, weights: Sequence[ArrayLike], input_dim: Optional[int] = None
    ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """Validate a :meth:`set_weights` list; return ``(kernel, recurrent_kernel, bias_or_None)``."""
        arrs = self._check_weight_list(weights)
        names = self._weight_names()
        h = self.units
        dim = self.input_dim
        if dim is None:
            dim = input_dim
        if dim is None and arrs[0].ndim == 2 and arrs[0].shape[0] > 0:
            dim = arrs[0].shape[0]  # an unbuilt layer takes input_dim from the kernel
        expected = [(dim, h), (h, h), (h,)]
        for wname, a, shp in zip(names, arrs, expected):
            if a.shape != shp:
                want = "(input_dim, %d)" % h if shp[0] is None else str(shp)
                raise ValueError(f"set_weights: got {wname} shape {a.shape}, expected {want}"
                                 + (f" for layer {self.name!r}" if wname == "kernel" else ""))
        if dim * h > MAX_MATRIX_ELEMENTS:
            raise ValueError(f"set_weights: got kernel shape {arrs[0].shape}, expected at most "
                             f"{MAX_MATRIX_ELEMENTS} elements")
        return arrs[0], arrs[1], (arrs[2] if self.use_bias else None)

    def _store_prepared(self, prepared: Any) -> None:
        self._store_weights(*prepared)

    def _output_width(self, prepared: Any, width: Optional[int]) -> Optional[int]:
        return self.units

    def count_params(self) -> int:
        """Number of weights: ``units * (input_dim + units + 1)`` (no ``+ 1`` without bias).

        Raises ValueError if the layer is not built (as in Keras).
        """
        if not self.built:
            return super().count_params()
        return self.units * (self.input_dim + self.units + (1 if self.use_bias else 0))

    # ------------------------------------------------------------------ compiled handle
    def _get_handle(self) -> Any:
        # Read the version before the weights: a handle cached under a version
        # is never older than that version (a race only costs a rebuild).
        version = self._version
        cached = self._handle
        if cached is not None and cached[0] == version:
            return cached[1]
        handle = _core.RNN([[list(self._weights)]], activation=self.activation or "linear",
                           direction="reverse" if self.go_backwards else "forward",
                           dtype=self.dtype)
        self._handle = (version, handle)
        return handle

    # ------------------------------------------------------------------ states
    @property
    def states(self) -> List[Optional[np.ndarray]]:
        """``[state]`` of a stateful layer (a copy, ``(batch, units)``), ``[None]`` if none yet."""
        st = self._states
        return [None if st is None else st.copy()]

    def reset_states(self, states: Optional[Union[ArrayLike, Sequence[ArrayLike]]] = None) -> None:
        """Zero the state of a stateful layer, or set it to ``states``.

        Parameters
        ----------
        states : array ``(batch, units)`` or a one-element list of it, optional
            New state.  Without it the state becomes zeros (or, if the batch
            size is still unknown, is created as zeros on the first call).

        Raises
        ------
        AttributeError
            The layer is not stateful (as in Keras).
        ValueError
            ``states`` has the wrong shape or batch size.
        """
        if not self.stateful:
            super().reset_states()
        with self._state_lock:
            batch = self._stateful_batch()
            if states is None:
                self._states = None if batch is None else np.zeros((batch, self.units), self.dtype)
                return
            st = self._parse_state(states, batch, "states")
            self._states = np.array(st, dtype=self.dtype, copy=True)

    def _parse_state(self, state: Any, batch: Optional[int], argname: str) -> np.ndarray:
        if isinstance(state, (list, tuple)):
            if len(state) != 1:
                raise ValueError(f"{argname}: got a list of {len(state)} arrays, expected 1 "
                                 f"(SimpleRNN has one state)")
            state = state[0]
        st = _core.as_real_array(state, argname)
        want = (batch, self.units)
        if st.ndim != 2 or st.shape[1] != self.units or (batch is not None and st.shape[0] != batch):
            raise ValueError(f"{argname}: got shape {st.shape}, expected "
                             f"({'batch' if batch is None else batch}, {want[1]})")
        return st

    def _kept_state(self, batch: int) -> Optional[np.ndarray]:
        """The state a stateful call starts from (None: zeros); checks the fixed batch size."""
        fixed = self._stateful_batch()
        if fixed is not None and batch != fixed:
            raise ValueError(f"x: got batch size {batch}, expected {fixed} "
                             f"(stateful layer {self.name!r} has a fixed batch size)")
        return self._states

    # ------------------------------------------------------------------ call
    def _check_x(self, x: ArrayLike) -> np.ndarray:
        xa = _check_sequence_input(x, None)
        dim = self.input_dim
        if dim is None:
            self.build((None, None, xa.shape[2]))
        elif xa.shape[2] != dim:
            raise ValueError(f"x: got input_dim {xa.shape[2]}, expected {dim}")
        return xa

    def __call__(
        self,
        x: ArrayLike,
        initial_state: Optional[Union[ArrayLike, Sequence[ArrayLike]]] = None,
        training: Optional[bool] = None,
        mask: Optional[ArrayLike] = None,
    ) -> Union[np.ndarray, List[np.ndarray]]:
        """Run the layer on ``x`` of shape ``(batch, timesteps, input_dim)``.

        Parameters
        ----------
        x : array_like
            Real numbers (ints are cast to the layer dtype).
        initial_state : array ``(batch, units)`` or a one-element list of it, optional
            Default zeros, or, for a stateful layer, the kept state.
        training : bool, optional
            Accepted for Keras compatibility; crnn only does inference.
        mask : array_like of bool ``(batch, timesteps)``, optional
            Keras masking: steps where the mask is False are skipped (the
            state carries over; the output repeats the previous output,
            zeros before the first valid step, or zeros at every masked step
            with ``zero_output_for_mask``).

        Returns
        -------
        numpy.ndarray or list
            ``(batch, timesteps, units)`` with ``return_sequences``, else
            ``(batch, units)``, in the layer dtype; ``[output, final_state]``
            with ``return_state``.
        """
        cached = self._handle
        if (cached is not None and cached[0] == self._version and initial_state is None
                and mask is None and not training):
            # Fast paths for the common calls: the compiled handle validates x itself.
            handle = cached[1]
            if not self.stateful:
                if not self.go_backwards:
                    if self.return_state:
                        out, states = handle.forward(x, None, None, self.return_sequences, True)
                        return [out, states[0]]
                    return handle.forward(x, None, None, self.return_sequences, False)
            else:
                st = self._states
                if (st is not None and type(x) is np.ndarray and x.ndim == 3
                        and x.shape[0] == st.shape[0]):
                    with self._state_lock:
                        out, states = handle.forward(x, (self._states,), None,
                                                     self.return_sequences, True)
                        h = self._states = states[0]
                    if self.go_backwards and self.return_sequences:
                        out = np.ascontiguousarray(out[:, ::-1])
                    return [out, h.copy()] if self.return_state else out
        if training and (self.dropout or self.recurrent_dropout):
            raise NotImplementedError("training: got True with dropout, expected inference "
                                      "(crnn does not implement training-time dropout)")
        xa = self._check_x(x)
        batch = xa.shape[0]
        h0 = None if initial_state is None else self._parse_state(initial_state, batch, "initial_state")
        if not self.stateful:
            out, h = self._run(xa, h0, mask)
        else:
            with self._state_lock:
                kept = self._kept_state(batch)
                if h0 is None:
                    h0 = kept
                out, h = self._run(xa, h0, mask)
                self._states = h
            if self.return_state:
                h = h.copy()  # never hand out the kept state itself
        return [out, h] if self.return_state else out

    def _run(self, xa: np.ndarray, h0: Optional[np.ndarray],
             mask: Optional[ArrayLike]) -> Tuple[np.ndarray, np.ndarray]:
        """Compute ``(output, final_state)`` in Keras semantics."""
        batch, steps, _ = xa.shape
        h = self.units
        m = _mask_array(mask, batch, steps)
        if batch == 0:
            empty = np.zeros((0, steps, h) if self.return_sequences else (0, h), self.dtype)
            return empty, np.zeros((0, h), self.dtype)
        out, states = _run_recurrent(self._get_handle(), xa, None if h0 is None else [h0], m,
                                     self.return_sequences, True, self.zero_output_for_mask,
                                     self.go_backwards)
        return out, states[0]

    def compute_mask(self, inputs: Any, mask: Optional[ArrayLike] = None) -> Any:
        """The incoming mask if the layer returns sequences, else None (Keras ``RNN``)."""
        out = mask if self.return_sequences else None
        return [out, None] if self.return_state else out

    def _call_masked(self, x: ArrayLike, mask: Any) -> Tuple[Any, Any]:
        return self(x, mask=mask), (mask if self.return_sequences else None)


# --------------------------------------------------------------------------- #
# Bidirectional
# --------------------------------------------------------------------------- #
class Bidirectional(Layer):
    """Run a recurrent layer forwards and backwards and merge the outputs (Keras ``Bidirectional``).

    Parameters
    ----------
    layer : SimpleRNN
        The forward layer's template: the forward layer is a copy of it
        (named ``"forward_" + layer.name``, with ``layer``'s weights if it has
        any) and, unless ``backward_layer`` is given, the backward layer is a
        copy with ``go_backwards`` flipped (named ``"backward_" + layer.name``,
        fresh weights).
    merge_mode : {"concat", "sum", "mul", "ave", None}, default "concat"
        How the two outputs combine; None returns ``[forward, backward]``.
    weights : list of arrays, optional
        Initial weights: the forward layer's, then the backward layer's.
    backward_layer : SimpleRNN, optional
        The backward layer's template.  It must have the opposite
        ``go_backwards`` and the same ``return_sequences``,
        ``return_state`` and ``stateful`` as ``layer`` (ValueError otherwise).
    input_shape, batch_input_shape, batch_size : optional
        As for :class:`SimpleRNN` (``input_shape=(timesteps, input_dim)``);
        default: the wrapped layer's.
    trainable : bool, default True
    name : str, optional
        Default ``"bidirectional"``, ``"bidirectional_1"``, ...

    Notes
    -----
    As in Keras: with ``return_sequences`` the backward output is re-reversed
    so both halves are aligned with the input time; ``return_state`` returns
    ``[output, forward_state, backward_state]`` (``[forward_output,
    backward_output, forward_state, backward_state]`` when ``merge_mode`` is
    None); masked steps give zero outputs when returning sequences;
    :meth:`get_weights` lists the forward weights, then the backward ones;
    parameters count twice the wrapped layer's.

    When both directions are plain SimpleRNN layers of one size and
    activation (the usual case), a call runs them in **one** C call
    (``crnn._core.RNN(..., direction="bidirectional")``).
    """

    _name_prefix = "bidirectional"
    _input_ndim = 3
    _min_input_ndim = 3
    _transient = ("_handle",)

    def __init__(
        self,
        layer: Layer,
        merge_mode: Optional[str] = "concat",
        weights: Optional[Sequence[ArrayLike]] = None,
        backward_layer: Optional[Layer] = None,
        *,
        input_shape: Optional[Sequence[Optional[int]]] = None,
        batch_input_shape: Optional[Sequence[Optional[int]]] = None,
        batch_size: Optional[int] = None,
        trainable: bool = True,
        name: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        _reject_unknown_kwargs(self, kwargs)
        if not isinstance(layer, SimpleRNN):
            raise ValueError(f"layer: got {layer!r} of type {type(layer).__name__}, expected a "
                             "recurrent layer instance (crnn.SimpleRNN)")
        if backward_layer is not None and not isinstance(backward_layer, SimpleRNN):
            raise ValueError(f"backward_layer: got {backward_layer!r} of type "
                             f"{type(backward_layer).__name__}, expected a recurrent layer "
                             "instance (crnn.SimpleRNN)")
        if not (merge_mode is None or (isinstance(merge_mode, str) and merge_mode in MERGE_MODES)):
            raise ValueError(f"merge_mode: got {merge_mode!r}, expected one of 'concat', 'sum', "
                             "'mul', 'ave' or None")
        self._set_name(name)
        self.trainable = _check_bool(trainable, "trainable")
        self.merge_mode = merge_mode
        self._handle: Optional[Tuple[Any, Any]] = None
        self._state_lock = threading.Lock()
        self._layer_config = layer.get_config()
        self.forward_layer = self._copy_layer(layer, self._layer_config, "forward_")
        if backward_layer is None:
            self._backward_config = None
            bcfg = dict(self._layer_config)
            bcfg["go_backwards"] = not bcfg["go_backwards"]
            if isinstance(bcfg.get("seed"), int):
                bcfg["seed"] += 1  # Keras draws the two layers' weights independently
            self.backward_layer = self._copy_layer(None, bcfg, "backward_", layer.name)
        else:
            self._backward_config = backward_layer.get_config()
            self.backward_layer = self._copy_layer(backward_layer, self._backward_config,
                                                   "backward_")
        fwd, bwd = self.forward_layer, self.backward_layer
        if fwd.go_backwards == bwd.go_backwards:
            raise ValueError("backward_layer: got go_backwards="
                             f"{bwd.go_backwards}, expected the opposite of layer's "
                             f"({fwd.go_backwards}): forward and backward layers should have "
                             "different go_backwards values")
        for attr in ("stateful", "return_sequences", "return_state", "dtype"):
            if getattr(fwd, attr) != getattr(bwd, attr):
                raise ValueError(f"backward_layer: got {attr}={getattr(bwd, attr)!r}, expected "
                                 f"{getattr(fwd, attr)!r} (the same as layer's)")
        # Keras: inside Bidirectional, masked steps of returned sequences are zero.
        fwd.zero_output_for_mask = fwd.return_sequences
        bwd.zero_output_for_mask = bwd.return_sequences
        self.stateful = fwd.stateful
        self.return_sequences = fwd.return_sequences
        self.return_state = fwd.return_state
        self.dtype = fwd.dtype
        self._own_batch_input_shape: Optional[Shape] = SimpleRNN._resolve_input_shape(
            {"batch_input_shape": batch_input_shape, "input_shape": input_shape,
             "input_length": None, "input_dim": None, "batch_size": batch_size})
        bis = self.batch_input_shape
        if not (fwd.built and bwd.built) and bis is not None and bis[2] is not None:
            self.build(bis)
        if weights is not None:
            self.set_weights(weights)

    @staticmethod
    def _copy_layer(layer: Optional[SimpleRNN], config: Dict[str, Any], prefix: str,
                    base_name: Optional[str] = None) -> SimpleRNN:
        cfg = dict(config)
        cfg["name"] = prefix + (base_name if base_name is not None else config["name"])
        if layer is not None and layer.built:
            with _deferred_weights():
                copy = type(layer).from_config(cfg)
            copy.set_weights(layer.get_weights())
            return copy
        return SimpleRNN.from_config(cfg) if layer is None else type(layer).from_config(cfg)

    # ------------------------------------------------------------------ properties
    @property
    def layer(self) -> SimpleRNN:
        """The forward layer (Keras ``Wrapper.layer``)."""
        return self.forward_layer

    @property
    def built(self) -> bool:  # type: ignore[override]
        return self.forward_layer.built and self.backward_layer.built

    @built.setter
    def built(self, value: bool) -> None:
        pass  # derived from the two layers

    @property
    def batch_input_shape(self) -> Optional[Shape]:  # type: ignore[override]
        """Own input shape if given, else the wrapped layer's."""
        if self._own_batch_input_shape is not None:
            return self._own_batch_input_shape
        return self.forward_layer.batch_input_shape

    @property
    def _version(self) -> Tuple[Any, Any]:  # type: ignore[override]
        return (self.forward_layer._version, self.backward_layer._version)

    @property
    def units(self) -> int:
        return self.forward_layer.units

    def _expected_input_dim(self) -> Optional[int]:
        return self.forward_layer.input_dim

    def _placeholder_input_shape(self) -> Optional[Shape]:
        return (None, None, None)

    def _stateful_batch(self) -> Optional[int]:
        own = self._own_batch_input_shape
        if own is not None and own[0] is not None:
            return own[0]
        return self.forward_layer._stateful_batch()

    # ------------------------------------------------------------------ config
    def get_config(self) -> Dict[str, Any]:
        """``{"name", "layer": {"class_name", "config"}, "merge_mode", ...}`` (no weights)."""
        cfg: Dict[str, Any] = {"name": self.name,
                               "layer": {"class_name": "SimpleRNN", "config": dict(self._layer_config)},
                               "merge_mode": self.merge_mode, "trainable": self.trainable}
        if self._backward_config is not None:
            cfg["backward_layer"] = {"class_name": "SimpleRNN",
                                     "config": dict(self._backward_config)}
        if self._own_batch_input_shape is not None:
            cfg["batch_input_shape"] = self._own_batch_input_shape
        return cfg

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Bidirectional":
        """Recreate from :meth:`get_config` output (fresh weights)."""
        if not isinstance(config, dict):
            raise TypeError(f"config: got {type(config).__name__}, expected a dict from get_config()")
        config = dict(config)
        if "layer" not in config:
            raise ValueError("config: got no 'layer' entry, expected the wrapped layer's config")
        config["layer"] = deserialize(config["layer"])
        if config.get("backward_layer") is not None:
            config["backward_layer"] = deserialize(config["backward_layer"])
        return cls(**config)

    # ------------------------------------------------------------------ shapes and weights
    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        """Build both layers for inputs of shape ``(batch, timesteps, input_dim)``."""
        self.forward_layer.build(input_shape)
        self.backward_layer.build(input_shape)
        self._build_input_shape = self.forward_layer._build_input_shape

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]) -> Any:
        """Keras ``Bidirectional.compute_output_shape`` (concat doubles the last dimension)."""
        out = self.forward_layer.compute_output_shape(input_shape)
        self.backward_layer.compute_output_shape(input_shape)
        state = None
        if self.return_state:
            out, state = out[0], out[1]
        if self.merge_mode == "concat":
            out = tuple(out[:-1]) + (out[-1] * 2,)
        elif self.merge_mode is None:
            out = [out, out]
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + [state, state]
        return out

    def _weight_arrays(self) -> List[np.ndarray]:
        return self.forward_layer._weight_arrays() + self.backward_layer._weight_arrays()

    def _weight_names(self) -> List[str]:
        return (["forward/" + n for n in self.forward_layer._weight_names()]
                + ["backward/" + n for n in self.backward_layer._weight_names()])

    def get_weights(self) -> List[np.ndarray]:
        """The forward layer's weights, then the backward layer's (Keras order)."""
        return self.forward_layer.get_weights() + self.backward_layer.get_weights()

    def _prepare_weights(self, weights: Sequence[ArrayLike], input_dim: Optional[int] = None) -> Any:
        if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
            raise TypeError(f"set_weights: got {type(weights).__name__}, expected a list of arrays")
        nf = self.forward_layer._num_weight_arrays()
        nb = self.backward_layer._num_weight_arrays()
        if len(weights) != nf + nb:
            raise ValueError(f"set_weights: got {len(weights)} arrays, expected {nf + nb} "
                             f"({nf} forward then {nb} backward) for layer {self.name!r}")
        return (self.forward_layer._prepare_weights(list(weights[:nf]), input_dim),
                self.backward_layer._prepare_weights(list(weights[nf:]), input_dim))

    def _store_prepared(self, prepared: Any) -> None:
        self.forward_layer._store_prepared(prepared[0])
        self.backward_layer._store_prepared(prepared[1])
        self._build_input_shape = self.forward_layer._build_input_shape

    def _output_width(self, prepared: Any, width: Optional[int]) -> Optional[int]:
        return self.units * (2 if self.merge_mode == "concat" else 1)

    def count_params(self) -> int:
        """Twice the wrapped layer's count (forward + backward)."""
        if not self.built:
            return super().count_params()
        return self.forward_layer.count_params() + self.backward_layer.count_params()

    # ------------------------------------------------------------------ states
    @property
    def states(self) -> List[Optional[np.ndarray]]:
        """Forward then backward states of a stateful layer."""
        return self.forward_layer.states + self.backward_layer.states

    def reset_states(self, states: Any = None) -> None:
        """Reset both layers' states (or set them to ``[forward_state, backward_state]``)."""
        if not self.stateful:
            super().reset_states()
        if states is None:
            self.forward_layer.reset_states()
            self.backward_layer.reset_states()
            return
        fs, bs = self._split_states(states, "states")
        self.forward_layer.reset_states(fs)
        self.backward_layer.reset_states(bs)

    @staticmethod
    def _split_states(states: Any, argname: str) -> Tuple[Any, Any]:
        if isinstance(states, np.ndarray) or not isinstance(states, (list, tuple)) or len(states) != 2:
            raise ValueError(f"{argname}: got {type(states).__name__}"
                             + (f" of length {len(states)}" if isinstance(states, (list, tuple)) else "")
                             + ", expected a list of 2 arrays [forward_state, backward_state]")
        return states[0], states[1]

    # ------------------------------------------------------------------ call
    def _fusable(self) -> bool:
        """Both directions can run as one ``direction="bidirectional"`` C call."""
        fwd, bwd = self.forward_layer, self.backward_layer
        return (type(fwd) is SimpleRNN and type(bwd) is SimpleRNN and fwd.built and bwd.built
                and not fwd.go_backwards and bwd.go_backwards and fwd.units == bwd.units
                and (fwd.activation or "linear") == (bwd.activation or "linear")
                and fwd.dtype == bwd.dtype and fwd.input_dim == bwd.input_dim)

    def _get_handle(self) -> Any:
        version = self._version
        cached = self._handle
        if cached is not None and cached[0] == version:
            return cached[1]
        fwd, bwd = self.forward_layer, self.backward_layer
        handle = _core.RNN([[list(fwd._weights), list(bwd._weights)]],
                           activation=fwd.activation or "linear", direction="bidirectional",
                           dtype=fwd.dtype)
        self._handle = (version, handle)
        return handle

    def _check_x(self, x: ArrayLike) -> np.ndarray:
        xa = _check_sequence_input(x, None)
        if not self.built:
            self.build((None, None, xa.shape[2]))
        dim = self.forward_layer.input_dim
        if xa.shape[2] != dim:
            raise ValueError(f"x: got input_dim {xa.shape[2]}, expected {dim}")
        return xa

    def _merge(self, y: Any, y_rev: Any) -> Any:
        mode = self.merge_mode
        if mode == "concat":
            return np.concatenate([y, y_rev], axis=-1)
        if mode == "sum":
            return y + y_rev
        if mode == "mul":
            return y * y_rev
        if mode == "ave":
            return (y + y_rev) / y.dtype.type(2)
        return [y, y_rev]

    def __call__(
        self,
        x: ArrayLike,
        initial_state: Optional[Sequence[ArrayLike]] = None,
        training: Optional[bool] = None,
        mask: Optional[ArrayLike] = None,
    ) -> Union[np.ndarray, List[np.ndarray]]:
        """Run both directions on ``x`` ``(batch, timesteps, input_dim)`` and merge.

        Parameters
        ----------
        x : array_like
        initial_state : list ``[forward_state, backward_state]``, optional
        training : bool, optional
            Accepted for Keras compatibility; crnn only does inference.
        mask : array_like of bool ``(batch, timesteps)``, optional
            Keras masking (both directions skip masked steps; returned
            sequences are zero there).
        """
        xa = self._check_x(x)
        if not self._fusable() or (training and (self.forward_layer.dropout
                                                  or self.forward_layer.recurrent_dropout)):
            return self._call_pair(xa, initial_state, training, mask)
        fwd, bwd = self.forward_layer, self.backward_layer
        batch, steps = xa.shape[0], xa.shape[1]
        init = None
        if initial_state is not None:
            fs, bs = self._split_states(initial_state, "initial_state")
            init = [fwd._parse_state(fs, batch, "initial_state[0]"),
                    bwd._parse_state(bs, batch, "initial_state[1]")]
        m = _mask_array(mask, batch, steps)
        rs = self.return_sequences
        if batch == 0:
            width = 2 * fwd.units
            out = np.zeros((0, steps, width) if rs else (0, width), self.dtype)
            states = [np.zeros((0, fwd.units), self.dtype)] * 2
        elif self.stateful:
            with self._state_lock:
                if init is None:
                    init = [fwd._kept_state(batch), bwd._kept_state(batch)]
                out, states = _run_recurrent(self._get_handle(), xa, init, m, rs, True, True)
                fwd._states, bwd._states = states[0], states[1]
            states = [s.copy() for s in states]
        else:
            out, states = _run_recurrent(self._get_handle(), xa, init, m, rs, self.return_state, True)
        if self.merge_mode != "concat":
            u = fwd.units
            out = self._merge(out[..., :u], out[..., u:])
            if isinstance(out, list):
                out = [np.ascontiguousarray(o) for o in out]
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + [states[0], states[1]]
        return out

    def _call_pair(self, xa: np.ndarray, initial_state: Any, training: Any, mask: Any) -> Any:
        fs = bs = None
        if initial_state is not None:
            fs, bs = self._split_states(initial_state, "initial_state")
        y = self.forward_layer(xa, initial_state=fs, training=training, mask=mask)
        y_rev = self.backward_layer(xa, initial_state=bs, training=training, mask=mask)
        states: List[np.ndarray] = []
        if self.return_state:
            states = [y[1], y_rev[1]]
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = np.ascontiguousarray(y_rev[:, ::-1])
        out = self._merge(y, y_rev)
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + states
        return out

    def compute_mask(self, inputs: Any, mask: Optional[ArrayLike] = None) -> Any:
        """The incoming mask if returning sequences, else None (per output for merge_mode None)."""
        out = mask if self.return_sequences else None
        if self.merge_mode is None:
            out = [out, out]
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + [None, None]
        return out

    def _call_masked(self, x: ArrayLike, mask: Any) -> Tuple[Any, Any]:
        return self(x, mask=mask), (mask if self.return_sequences else None)


# --------------------------------------------------------------------------- #
# Dense
# --------------------------------------------------------------------------- #
class Dense(Layer):
    """Densely-connected layer ``activation(x @ kernel + bias)`` on the last axis (Keras ``Dense``).

    On 3-D input ``(batch, timesteps, features)`` it applies to every
    timestep, as in Keras, and passes a mask through unchanged.

    Parameters
    ----------
    units : int
        Output width.
    activation : {"linear", "relu", "tanh", "sigmoid", "softmax"} or None, default None
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
        self.activation = _check_dense_activation(activation)
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
        else:
            _check_memory(f"Dense(units={u}) with input_dim={dim}",
                          (8 + np.dtype(self.dtype).itemsize) * (dim * u + u))
            kernel = _glorot_uniform(_rng(self.seed), dim, u)
            bias = np.zeros(u) if self.use_bias else None
        self._store_prepared((kernel, bias))

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

    #: Up to this many units a call runs in the C core (see :meth:`_get_handle`).
    C_MAX_UNITS = 512

    def _get_handle(self) -> Any:
        """A one-step SimpleRNN handle computing ``activation(x @ kernel + bias)``.

        With no initial state the C core skips the recurrent product of the
        first step, so one step of an RNN with this kernel and bias *is* the
        Dense layer: one GEMM over all rows, then the fused bias + activation
        row kernel, in one C call (softmax: linear here, normalised after).
        The handle stores a ``(units, units)`` zero recurrent kernel, hence
        the :attr:`C_MAX_UNITS` limit; larger layers use NumPy.
        """
        version = self._version
        cached = self._handle
        if cached is not None and cached[0] == version:
            return cached[1]
        kernel, bias = self._weights
        u = self.units
        act = "linear" if self.activation in (None, "softmax") else self.activation
        handle = _core.RNN([[[kernel, np.zeros((u, u), self.dtype), bias]]], activation=act,
                           dtype=self.dtype)
        self._handle = (version, handle)
        return handle

    def __call__(self, x: ArrayLike, mask: Optional[ArrayLike] = None,
                 training: Optional[bool] = None) -> np.ndarray:
        """``activation(x @ kernel + bias)`` over the last axis of ``x`` ``(batch, ..., input_dim)``.

        ``mask`` is accepted (and passed on by :meth:`compute_mask`), as in Keras.
        """
        xa = x if type(x) is np.ndarray else _core.as_real_array(x, "x")
        if xa.ndim < 2:
            raise ValueError(f"x: got shape {xa.shape}, expected (batch, ..., input_dim) with at "
                             "least 2 dimensions")
        w = self._weights
        if w is None:
            self.build((None,) + xa.shape[1:])
            w = self._weights
        kernel, bias = w
        dim = kernel.shape[0]
        if xa.shape[-1] != dim:
            raise ValueError(f"x: got input_dim {xa.shape[-1]} (shape {xa.shape}), expected {dim}")
        lead = xa.shape[:-1]
        if self.units <= self.C_MAX_UNITS:
            # (rows, 1, dim): every row is a batch entry of a one-step run (the handle
            # casts ints / other floats, and rejects bool, complex and the like).
            y = self._get_handle().forward(xa.reshape(-1, 1, dim), None, None, False, False)
            if self.activation == "softmax":
                _apply_activation("softmax", y)
            return y if len(lead) == 1 else y.reshape(lead + (self.units,))
        xa = _core.as_real_array(xa, "x")
        if xa.dtype != kernel.dtype:
            xa = xa.astype(kernel.dtype)
        y = np.matmul(xa.reshape(-1, dim), kernel)  # one GEMM over every row
        if bias is not None:
            y += bias
        return _apply_activation(self.activation, y).reshape(lead + (self.units,))


# --------------------------------------------------------------------------- #
# Embedding
# --------------------------------------------------------------------------- #
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
            emb = _placeholder((n, d), self.dtype)
        else:
            _check_memory(f"Embedding({n}, {d})", (8 + np.dtype(self.dtype).itemsize) * n * d)
            emb = _rng(self.seed).uniform(-0.05, 0.05, size=(n, d))
        self._store_prepared(emb)

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


# --------------------------------------------------------------------------- #
# Masking and Activation (no weights)
# --------------------------------------------------------------------------- #
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


class Activation(_Weightless):
    """Apply an activation function elementwise (Keras ``Activation``); masks pass through.

    Parameters
    ----------
    activation : {"linear", "relu", "tanh", "sigmoid", "softmax"} or None
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
        self.activation = _check_dense_activation(activation)
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
        return _apply_activation(self.activation, np.array(xa, dtype=self.dtype, copy=True))


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
        if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, (int, float, np.integer,
                                                                       np.floating)):
            raise TypeError(f"rate: got {rate!r}, expected a float in [0, 1]")
        if not 0.0 <= float(rate) <= 1.0:
            raise ValueError(f"rate: got {rate!r}, expected a float in [0, 1]")
        self.rate = float(rate)
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


# --------------------------------------------------------------------------- #
# Serialisation by class name
# --------------------------------------------------------------------------- #
#: The layer classes :func:`deserialize` (and :func:`crnn.load_model`) accept, by name.
LAYER_CLASSES: Dict[str, type] = {cls.__name__: cls for cls in
                                  (SimpleRNN, Bidirectional, Dense, Embedding, Masking, Activation,
                                   Dropout, InputLayer)}


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
