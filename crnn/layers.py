"""Keras-like layers running on the crnn C core.

The layers here mirror Keras names, arguments and semantics (Keras 2's
``batch_input_shape`` / ``input_length`` / ``input_dim`` spellings included) so
that code written for ``tensorflow.keras.layers`` runs with ``crnn.layers`` in
its place, for inference::

    from crnn.layers import SimpleRNN
    from crnn.models import Sequential

    model = Sequential()
    model.add(SimpleRNN(3, input_shape=(2, 10)))
    model.summary()

A layer owns its weights (NumPy arrays in the Keras layout) and an immutable
compiled handle (:class:`crnn._core.RNN`) built from them, which does the work
of every call.  crnn is inference only: there is no training, so arguments that
only matter to training (``dropout``) are accepted and ignored.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from .reference import ACTIVATIONS

__all__ = ["Layer", "SimpleRNN", "clear_session"]

ArrayLike = Any
Shape = Tuple[Optional[int], ...]

#: Largest number of elements crnn allocates for one weight matrix.
MAX_MATRIX_ELEMENTS = 2**31 - 1

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
# Argument validation helpers ("<arg>: got X, expected Y")
# --------------------------------------------------------------------------- #
def _check_bool(value: Any, name: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name}: got {value!r}, expected True or False")


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


def _check_seed(value: Any) -> Any:
    if value is None or isinstance(value, np.random.Generator):
        return value
    return _check_int(value, "seed", minimum=0)


def _physical_memory() -> Optional[int]:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def _format_shape(shape: Any) -> str:
    return str(tuple(shape)) if isinstance(shape, tuple) else str(shape)


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

    Subclasses implement :meth:`build`, :meth:`__call__`,
    :meth:`compute_output_shape`, :meth:`get_weights`, :meth:`set_weights`,
    :meth:`count_params` and :meth:`get_config`.
    """

    #: Class-level prefix of automatic names (Keras: the snake_case class name).
    _name_prefix = "layer"
    #: Constructor keywords :meth:`crnn.models.Sequential.add` may override.
    _overridable: Tuple[str, ...] = ()

    name: str
    built: bool
    batch_input_shape: Optional[Shape]
    stateful: bool = False

    def _set_name(self, name: Optional[str]) -> None:
        if name is None:
            name = unique_name(self._name_prefix)
        elif not isinstance(name, str) or not name:
            raise TypeError(f"name: got {name!r}, expected a non-empty str or None")
        self.name = name

    @property
    def trainable(self) -> bool:
        """Always True: like Keras, every weight counts as trainable in summaries."""
        return True

    def _configure(self, **overrides: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Layer":
        """Create a layer from :meth:`get_config` output (weights are not included)."""
        return cls(**config)

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
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(f"SimpleRNN: got unexpected keyword argument(s) {sorted(kwargs)}, "
                            f"expected only {sorted(self._overridable + ('units', 'name'))}")
        units = _check_int(units, "units")
        if units * units > MAX_MATRIX_ELEMENTS:
            raise ValueError(f"units: got {units}, expected units**2 <= {MAX_MATRIX_ELEMENTS} "
                             f"(the recurrent kernel would have {units * units} elements)")
        self.units: int = units
        self._set_name(name)
        self.built = False
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
        # float64 draws + QR workspace (a, q, r) + stored copies in the layer dtype.
        need = 8 * (dim * h + 3 * h * h) + np.dtype(self.dtype).itemsize * (dim * h + h * h + h)
        ram = _physical_memory()
        if ram is not None and need > ram:
            raise MemoryError(f"SimpleRNN(units={h}) with input_dim={dim}: building needs "
                              f"{need / 2**30:.1f} GiB, more than this machine's {ram / 2**30:.1f} GiB")
        if h > 2000:
            warnings.warn(f"SimpleRNN(units={h}): the orthogonal initialiser takes a QR of a "
                          f"{h}x{h} matrix; slowness may result", stacklevel=2)
        rng = self.seed if isinstance(self.seed, np.random.Generator) else np.random.default_rng(self.seed)
        try:
            kernel = _glorot_uniform(rng, dim, h)
            rk = _orthogonal(rng, h)
            bias = np.zeros(h) if self.use_bias else None
        except MemoryError as exc:
            raise MemoryError(f"SimpleRNN(units={h}) with input_dim={dim}: out of memory "
                              "creating the weights") from exc
        self._store_weights(kernel, rk, bias)

    def _store_weights(self, kernel: np.ndarray, rk: np.ndarray, bias: Optional[np.ndarray]) -> None:
        def own(a: Optional[np.ndarray]) -> Optional[np.ndarray]:
            if a is None:
                return None
            a = np.array(a, dtype=self.dtype, order="C", copy=True)
            a.setflags(write=False)
            return a
        self._weights = (own(kernel), own(rk), own(bias))
        self.built = True
        self._version += 1

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

    def get_weights(self) -> List[np.ndarray]:
        """Copies of ``[kernel (D, H), recurrent_kernel (H, H), bias (H,)]``.

        ``bias`` is left out when ``use_bias=False``; the list is empty
        before the layer is built (as in Keras).
        """
        w = self._weights
        if w is None:
            return []
        return [a.copy() for a in w if a is not None]

    @property
    def weights(self) -> List[np.ndarray]:
        """Same as :meth:`get_weights`."""
        return self.get_weights()

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
        self, weights: Sequence[ArrayLike]
    ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """Validate a :meth:`set_weights` list; return ``(kernel, recurrent_kernel, bias_or_None)``."""
        if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
            raise TypeError(f"set_weights: got {type(weights).__name__}, expected a list of arrays")
        names = ["kernel", "recurrent_kernel"] + (["bias"] if self.use_bias else [])
        if len(weights) != len(names):
            raise ValueError(f"set_weights: got {len(weights)} arrays, expected {len(names)} "
                             f"({', '.join(names)}) for layer {self.name!r}")
        arrs = []
        for wname, w in zip(names, weights):
            arrs.append(_core.as_real_array(w, f"set_weights: {wname}"))
        h = self.units
        dim = self.input_dim
        if dim is None and arrs[0].ndim == 2 and arrs[0].shape[0] > 0:
            dim = arrs[0].shape[0]  # an unbuilt layer takes input_dim from the kernel
        expected = [(dim, h), (h, h), (h,)]
        for wname, a, shp in zip(names, arrs, expected):
            if a.shape != shp:
                want = "(input_dim, %d)" % h if shp[0] is None else str(shp)
                raise ValueError(f"set_weights: got {wname} shape {a.shape}, expected {want}")
        if dim * h > MAX_MATRIX_ELEMENTS:
            raise ValueError(f"set_weights: got kernel shape {arrs[0].shape}, expected at most "
                             f"{MAX_MATRIX_ELEMENTS} elements")
        return arrs[0], arrs[1], (arrs[2] if self.use_bias else None)

    def count_params(self) -> int:
        """Number of weights: ``units * (input_dim + units + 1)`` (no ``+ 1`` without bias).

        Raises ValueError if the layer is not built (as in Keras).
        """
        if not self.built:
            raise ValueError(f"You tried to call count_params on layer {self.name!r}, but the layer "
                             "isn't built. You can build it manually via: "
                             "layer.build(batch_input_shape)")
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
            raise AttributeError(f"reset_states: layer {self.name!r} is not stateful, "
                                 "expected a layer created with stateful=True")
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

    # ------------------------------------------------------------------ call
    def _check_x(self, x: ArrayLike) -> np.ndarray:
        xa = _core.as_real_array(x, "x")
        if xa.ndim != 3:
            raise ValueError(f"x: got shape {xa.shape}, expected (batch, timesteps, input_dim)")
        if xa.shape[1] == 0:
            raise ValueError("x: got 0 timesteps, expected at least 1")
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
            zeros before the first valid step).

        Returns
        -------
        numpy.ndarray or list
            ``(batch, timesteps, units)`` with ``return_sequences``, else
            ``(batch, units)``, in the layer dtype; ``[output, final_state]``
            with ``return_state``.
        """
        cached = self._handle
        if (cached is not None and cached[0] == self._version and initial_state is None
                and mask is None and not training and not self.stateful and not self.go_backwards):
            # Fast path for the common call: the compiled handle validates x itself.
            if self.return_state:
                out, states = cached[1].forward(x, None, None, self.return_sequences, True)
                return [out, states[0]]
            return cached[1].forward(x, None, None, self.return_sequences, False)
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
                fixed = self._stateful_batch()
                if fixed is not None and batch != fixed:
                    raise ValueError(f"x: got batch size {batch}, expected {fixed} "
                                     f"(stateful layer {self.name!r} has a fixed batch size)")
                if h0 is None:
                    h0 = self._states
                out, h = self._run(xa, h0, mask)
                self._states = h
        return [out, h] if self.return_state else out

    def _run(self, xa: np.ndarray, h0: Optional[np.ndarray],
             mask: Optional[ArrayLike]) -> Tuple[np.ndarray, np.ndarray]:
        """Compute ``(output, final_state)`` in Keras semantics."""
        batch, steps, _ = xa.shape
        h = self.units
        if batch == 0:
            empty = np.zeros((0, steps, h) if self.return_sequences else (0, h), self.dtype)
            return empty, np.zeros((0, h), self.dtype)
        handle = self._get_handle()
        init = None if h0 is None else [h0]
        if mask is not None:
            m = np.asarray(mask)
            if m.shape != (batch, steps) or m.dtype.kind not in "biu":
                raise ValueError(f"mask: got {m.dtype} shape {m.shape}, expected bool ({batch}, {steps})")
            m = m.astype(bool, copy=False)
            if not m.all():
                return self._run_masked(handle, xa, init, m)
        out, states = handle.forward(xa, initial_state=init,
                                     return_sequences=self.return_sequences, return_state=True)
        if self.return_sequences and self.go_backwards:
            out = np.ascontiguousarray(out[:, ::-1])
        return out, states[0]

    def _run_masked(self, handle: Any, xa: np.ndarray, init: Optional[list],
                    m: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        # Keras skips masked steps.  Move each sequence's valid steps to its
        # front (original order), run with lengths, and scatter back.
        batch, steps, _ = xa.shape
        lengths = m.sum(axis=1)
        right_padded = np.array_equal(m, np.arange(steps) < lengths[:, None])
        order = None
        if not right_padded:
            order = np.argsort(~m, axis=1, kind="stable")
            xa = np.take_along_axis(xa, order[:, :, None], axis=1)
        y, states = handle.forward(xa, initial_state=init, lengths=lengths.astype(np.int64),
                                   return_sequences=self.return_sequences, return_state=True)
        h_n = states[0]
        valid = (lengths > 0)[:, None]
        if not self.return_sequences:
            # Keras returns the last *output*, zeros when no step was valid.
            return np.where(valid, y, 0).astype(self.dtype, copy=False), h_n
        if order is not None:
            aligned = np.zeros_like(y)
            np.put_along_axis(aligned, order[:, :, None], y, axis=1)
            y = aligned
        mp = m
        if self.go_backwards:
            y, mp = y[:, ::-1], m[:, ::-1]
        # A masked step repeats the previous output (zeros before the first valid one).
        src = np.where(mp, np.arange(steps), -1)
        np.maximum.accumulate(src, axis=1, out=src)
        out = np.take_along_axis(y, np.maximum(src, 0)[:, :, None], axis=1)
        out[src < 0] = 0
        return out, h_n
