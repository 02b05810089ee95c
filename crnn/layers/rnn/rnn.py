"""The base recurrent layer (Keras 3 ``keras/src/layers/rnn/rnn.py``): everything SimpleRNN,
LSTM and GRU share, driven by a cell description (:class:`~crnn.layers.rnn.cells.CellSpec`).

:class:`RNN` owns ``return_sequences``, ``return_state``, ``go_backwards``, ``stateful`` (the
kept states and their lock), Keras masks, the input-shape spellings, weights and their
validation, and the compiled handle (``crnn._core.RNN``) cached per weights version. A subclass
is a constructor with its Keras signature and a :meth:`RNN.cell` description.
"""
from __future__ import annotations

import threading
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ... import _core
from ..arguments import (MAX_MATRIX_ELEMENTS, ArrayLike, Shape, _check_activation, _check_bool,
                         _check_dtype, _check_int, _check_memory, _check_rate, _check_seed,
                         _check_shape, _physical_memory, _rng)
from ..layer import (WEIGHTS_LOCK, InputSpec, Layer, _deferring, _freeze, _placeholder, _touch)
from .cells import RNN_ACTIVATIONS, CellSpec

__all__ = ["RNN"]

#: Largest batch a stateful layer keeps states for (the C core's 32-bit BLAS row count).
MAX_STATEFUL_BATCH = 2**31 - 1


# --------------------------------------------------------------------------- #
# Masks and the masked recurrent run (shared by RNN, Bidirectional, Sequential)
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
    ``(B, W)``; ``states`` the final states, one entry per stack entry in the
    core's format (h, or ``[h, c]`` for an LSTM entry), None unless ``need_states``.

    Keras skips a masked step: the state carries over, so each layer of a
    stack sees only the valid steps of its input, in order.  A right-padded
    mask is passed to the C core as per-sequence lengths; any other mask first
    moves each sequence's valid steps to its front (stable), runs with lengths,
    and scatters the outputs back.  At a masked step the output repeats the
    previous one (zeros before the first valid step), or is zero when
    ``zero_masked`` (Keras ``zero_output_for_mask``, forced inside
    ``Bidirectional``). The last output is zero for a sequence with no valid
    step, and, with ``zero_masked``, for one whose last processed step is
    masked (Keras returns the last step's output, which is then zero).
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
        last_valid = m[:, 0] if go_backwards else m[:, -1]
        keep = last_valid if zero_masked else lengths > 0
        if not keep.all():
            y = np.where(keep[:, None], y, y.dtype.type(0))
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


def _core_state(states: Optional[Tuple[np.ndarray, ...]]) -> Any:
    """A layer's states as one entry of the C core's ``initial_state`` (h, or [h, c])."""
    if states is None:
        return None
    return states[0] if len(states) == 1 else list(states)


def _layer_states(entry: Any) -> Tuple[np.ndarray, ...]:
    """One entry of the core's final states as a layer's states tuple."""
    return tuple(entry) if isinstance(entry, list) else (entry,)


# --------------------------------------------------------------------------- #
# RNN
# --------------------------------------------------------------------------- #
class RNN(Layer):
    """Base class of the recurrent layers (Keras ``RNN`` semantics, one cell kind per subclass).

    Not used directly: :class:`~crnn.layers.SimpleRNN`, :class:`~crnn.layers.LSTM` and
    :class:`~crnn.layers.GRU` describe their cells; this class runs them. See those classes
    for the parameters.

    Notes
    -----
    The weights are created as soon as ``input_dim`` is known: at
    construction if the input shape gives it, otherwise when a
    :class:`~crnn.models.Sequential` propagates shapes, on :meth:`build`, on
    :meth:`set_weights` or on the first call.  A layer is built once, even when
    several threads call it first at the same time.
    """

    _input_ndim = 3
    _min_input_ndim = 3
    #: Keywords :meth:`crnn.models.Sequential.add` may override: these, plus the cell's.
    _common_keys = ("activation", "use_bias", "return_sequences", "return_state", "go_backwards",
                    "stateful", "input_shape", "batch_input_shape", "input_length", "input_dim",
                    "batch_size", "dropout", "recurrent_dropout", "dtype", "seed")
    #: The subclass's own constructor keywords (and their defaults): validated by
    #: :meth:`_check_cell_option`, kept in the config, read by :meth:`cell`.
    _cell_defaults: Dict[str, Any] = {}
    #: Keywords that change the weights: only overridable before the layer is built.
    _weight_keys = ("use_bias", "input_shape", "batch_input_shape", "input_length", "input_dim",
                    "dtype", "seed", "reset_after", "unit_forget_bias")
    _overridable: Tuple[str, ...] = _common_keys

    def __init__(
        self,
        units: int,
        *,
        activation: Optional[str],
        use_bias: bool,
        return_sequences: bool,
        return_state: bool,
        go_backwards: bool,
        stateful: bool,
        input_shape: Optional[Sequence[Optional[int]]],
        batch_input_shape: Optional[Sequence[Optional[int]]],
        input_length: Optional[int],
        input_dim: Optional[int],
        batch_size: Optional[int],
        dropout: float,
        recurrent_dropout: float,
        dtype: Union[str, np.dtype, type],
        seed: Optional[int],
        name: Optional[str],
        zero_output_for_mask: bool,
        weights: Optional[Sequence[ArrayLike]],
        trainable: bool,
        **cell_options: Any,
    ) -> None:
        self.units: int = self._check_units(units, cell_options)
        self._set_name(name)
        self.built = False
        self.trainable = _check_bool(trainable, "trainable")
        self.zero_output_for_mask = _check_bool(zero_output_for_mask, "zero_output_for_mask")
        # (kernel, recurrent_kernel, bias or None), replaced as a whole under WEIGHTS_LOCK so a
        # concurrent reader never sees a mix of old and new arrays.
        self._weights: Optional[Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]] = None
        # Bumped whenever the weights or the computation change; the compiled handles here and
        # in Sequential are cached per version.
        self._version = 0
        self._handle: Optional[Tuple[int, Any]] = None
        self._state_lock = threading.Lock()
        self._states: Optional[Tuple[np.ndarray, ...]] = None
        self._configure(activation=activation, use_bias=use_bias,
                        return_sequences=return_sequences, return_state=return_state,
                        go_backwards=go_backwards, stateful=stateful, input_shape=input_shape,
                        batch_input_shape=batch_input_shape, input_length=input_length,
                        input_dim=input_dim, batch_size=batch_size, dropout=dropout,
                        recurrent_dropout=recurrent_dropout, dtype=dtype, seed=seed,
                        **cell_options)
        if weights is not None:
            self.set_weights(weights)

    # ------------------------------------------------------------------ the cell
    @classmethod
    def _cell_for(cls, options: Dict[str, Any]) -> CellSpec:  # pragma: no cover - abstract
        """The cell description for these constructor values (a dict holding some of
        ``activation`` and the subclass's own keywords; missing ones take their defaults)."""
        raise NotImplementedError

    @classmethod
    def _check_units(cls, units: Any, cell_options: Dict[str, Any]) -> int:
        units = _check_int(units, "units")
        gates = cls._cell_for(cell_options).gates
        if gates * units * units > MAX_MATRIX_ELEMENTS:
            raise ValueError(f"units: got {units}, expected {gates}*units**2 <= "
                             f"{MAX_MATRIX_ELEMENTS} (the recurrent kernel would have "
                             f"{gates * units * units} elements)")
        return units

    @property
    def cell(self) -> CellSpec:
        """The cell this layer runs (kind, activations, options)."""
        return self._cell_for(self._config_values())

    def _check_cell_option(self, key: str, value: Any) -> Any:
        """Validate one of the subclass's own keywords."""
        if key == "recurrent_activation":
            return _check_activation(value, RNN_ACTIVATIONS, key)
        return _check_bool(value, key)

    # ------------------------------------------------------------------ config
    def __setattr__(self, name: str, value: Any) -> None:
        # A configured keyword assigned after construction (``layer.activation = "relu"``) goes
        # through _configure like a Sequential.add override: validated, refused where it would
        # change the weights of a built layer, and the compiled handle and any model's plan are
        # rebuilt. A plain assignment would change the config but not what the layer computes.
        configured = "_shape_args" in self.__dict__ and not self.__dict__.get("_in_configure")
        if configured and name in self._overridable:
            self._configure(**{name: value})
            return
        if configured and name == "zero_output_for_mask":
            # not a constructor keyword Sequential.add takes, but a model's call plan reads it
            # when the plan is made
            object.__setattr__(self, name, _check_bool(value, name))
            with WEIGHTS_LOCK:
                self._version += 1
                _touch()
            return
        if configured and name == "units":
            units = self._check_units(value, self._config_values())
            if self.built and units != self.units:
                raise ValueError(f"units: cannot be changed on layer {self.name!r} after its "
                                 f"weights exist; pass it to the {type(self).__name__} "
                                 "constructor")
            old = self.units
            object.__setattr__(self, name, units)
            try:
                self._configure()  # stateful states resized, caches reset
            except Exception:
                object.__setattr__(self, name, old)
                raise
            return
        object.__setattr__(self, name, value)

    def _configure(self, **kw: Any) -> None:
        """Validate and apply constructor keywords (all at construction, some later).

        Used by the constructor, by :meth:`crnn.models.Sequential.add`
        overrides and by assignments to these attributes.  Weight-shaping
        keywords may only change before the layer is built.  Nothing is
        modified unless every keyword is valid.
        """
        object.__setattr__(self, "_in_configure", True)
        try:
            self._apply_config(kw)
        finally:
            object.__setattr__(self, "_in_configure", False)

    def _apply_config(self, kw: Dict[str, Any]) -> None:
        unknown = [k for k in kw if k not in self._overridable]
        if unknown:
            raise TypeError(f"{type(self).__name__}: got unexpected keyword argument(s) "
                            f"{sorted(unknown)}, expected only {sorted(self._overridable)}")
        first = not hasattr(self, "activation")
        if not first and self.built:
            fixed = [k for k in kw if k in self._weight_keys]
            if fixed:
                raise ValueError(f"{fixed[0]}: cannot be changed on layer {self.name!r} after its "
                                 f"weights exist; pass it to the {type(self).__name__} constructor")
        cur = dict(self._cell_defaults) if first else self._config_values()
        cur.update(kw)

        activation = _check_activation(cur["activation"], RNN_ACTIVATIONS)
        flags = {k: _check_bool(cur[k], k) for k in
                 ("use_bias", "return_sequences", "return_state", "go_backwards", "stateful")}
        rates = {k: _check_rate(cur[k], k) for k in ("dropout", "recurrent_dropout")}
        cell_values = {k: self._check_cell_option(k, cur[k]) for k in self._cell_defaults}
        dtype = _check_dtype(cur["dtype"])
        seed = _check_seed(cur["seed"])
        bis = self._resolve_input_shape(cur)
        batch = bis[0] if bis is not None else None
        n = self._cell_for(cell_values).num_states
        if flags["stateful"] and batch is not None:
            self._check_state_size(batch, dtype, n)

        self.activation: Optional[str] = activation
        self.use_bias: bool = flags["use_bias"]
        self.return_sequences: bool = flags["return_sequences"]
        self.return_state: bool = flags["return_state"]
        self.go_backwards: bool = flags["go_backwards"]
        self.stateful: bool = flags["stateful"]
        self.dropout = rates["dropout"]
        self.recurrent_dropout = rates["recurrent_dropout"]
        for k, v in cell_values.items():
            setattr(self, k, v)
        self.dtype: str = dtype
        self.seed = seed
        self.batch_input_shape: Optional[Shape] = bis
        # Remember the raw spellings so later overrides combine the same way.
        self._shape_args = {k: cur[k] for k in ("input_shape", "batch_input_shape", "input_length",
                                                "input_dim", "batch_size")}
        with self._state_lock:
            st = self._states
            if not self.stateful:
                self._states = None
            elif batch is not None and (st is None or len(st) != n
                                        or st[0].shape != (batch, self.units)
                                        or st[0].dtype != dtype):
                self._states = tuple(np.zeros((batch, self.units), dtype) for _ in range(n))
        with WEIGHTS_LOCK:
            self._version += 1
            _touch()
        if not self.built and bis is not None and bis[2] is not None:
            self.build(bis)

    def _check_state_size(self, batch: int, dtype: str, n: int) -> None:
        """Refuse a stateful batch whose ``n`` states could not be held (before allocating)."""
        need = n * batch * self.units * np.dtype(dtype).itemsize
        ram = _physical_memory()
        if batch > MAX_STATEFUL_BATCH or (ram is not None and need > ram):
            raise ValueError(f"batch_input_shape: got batch size {batch} for stateful layer "
                             f"{self.name!r}, expected at most {MAX_STATEFUL_BATCH} and states "
                             f"that fit in memory (they would take {need / 2**30:.1f} GiB)")

    def _config_values(self) -> Dict[str, Any]:
        vals = {"activation": self.activation, "use_bias": self.use_bias,
                "return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards, "stateful": self.stateful,
                "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
                "dtype": self.dtype, "seed": self.seed}
        vals.update({k: getattr(self, k) for k in self._cell_defaults})
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

        ``type(layer).from_config(layer.get_config())`` builds an equivalent
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
        return None if st is None else st[0].shape[0]

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]) -> Union[Shape, List[Shape]]:
        """Output shape for an input of shape ``(batch, timesteps, input_dim)``.

        Returns ``(batch, timesteps, units)`` with ``return_sequences``, else
        ``(batch, units)``; with ``return_state``, the list
        ``[output_shape, (batch, units), ...]`` with one entry per state.
        """
        shape = self._check_input_shape(input_shape)
        batch = shape[0]
        out = (batch, shape[1], self.units) if self.return_sequences else (batch, self.units)
        if self.return_state:
            return [out] + [(batch, self.units)] * self.cell.num_states
        return out

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
            ``input_dim`` unknown, or different from the built one, or a
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
        cell = self.cell
        g = cell.gates * h
        what = f"{type(self).__name__}(units={h}) with input_dim={dim}"
        if dim * g > MAX_MATRIX_ELEMENTS:
            raise ValueError(f"input_dim: got {dim} with units={h}, expected input_dim*{cell.gates}"
                             f"*units <= {MAX_MATRIX_ELEMENTS} (the kernel would have "
                             f"{dim * g} elements)")
        if _deferring():
            shapes = [s for _, s in cell.weight_shapes(dim, h, self.use_bias)]
            arrays = [_placeholder(s, self.dtype) for s in shapes]
            self._store_built((arrays[0], arrays[1], arrays[2] if self.use_bias else None))
            return
        # float64 draws + QR workspace (a, q, r) + stored copies in the layer dtype.
        need = 8 * (dim * g + 3 * h * g) + np.dtype(self.dtype).itemsize * (dim * g + h * g + 2 * g)
        _check_memory(what, need)
        if g > 2000:
            warnings.warn(f"{type(self).__name__}(units={h}): the orthogonal initialiser takes a "
                          f"QR of a {g}x{h} matrix; slowness may result", stacklevel=2)
        try:
            weights = cell.initial_weights(_rng(self.seed), dim, h, self.use_bias)
        except MemoryError as exc:
            raise MemoryError(f"{what}: out of memory creating the weights") from exc
        self._store_built(weights)

    def _store_prepared(self, prepared: Any) -> None:
        kernel, rk, bias = prepared
        self._weights = (_freeze(kernel, self.dtype), _freeze(rk, self.dtype),
                         _freeze(bias, self.dtype))
        self._build_input_shape = (None, None, int(self._weights[0].shape[0]))
        self.built = True
        self._version += 1
        _touch()

    @property
    def kernel(self) -> Optional[np.ndarray]:
        """Input weights ``(input_dim, G*units)`` (read-only view), None before build."""
        return None if self._weights is None else self._weights[0]

    @property
    def recurrent_kernel(self) -> Optional[np.ndarray]:
        """Recurrent weights ``(units, G*units)`` (read-only view), None before build."""
        return None if self._weights is None else self._weights[1]

    @property
    def bias(self) -> Optional[np.ndarray]:
        """Bias (read-only view), None before build or without bias."""
        return None if self._weights is None else self._weights[2]

    def _weight_names(self) -> List[str]:
        return [n for n, _ in self.cell.weight_shapes(None, self.units, self.use_bias)]

    def get_weights(self) -> List[np.ndarray]:
        """Copies of ``[kernel, recurrent_kernel, bias]`` in the Keras layout.

        ``bias`` is left out when ``use_bias=False``; the list is empty
        before the layer is built (as in Keras).
        """
        return super().get_weights()

    def set_weights(self, weights: Sequence[ArrayLike]) -> None:
        """Replace the weights with copies of ``[kernel, recurrent_kernel, bias]``.

        Arrays are cast to the layer dtype; the shapes are Keras's (see the
        class docstring); ``bias`` is omitted when ``use_bias=False``.  An
        unbuilt layer takes ``input_dim`` from the kernel and is built by this
        call.  Atomic for callers on other threads (see :meth:`Layer.set_weights`).

        Raises
        ------
        ValueError
            Wrong number of arrays or a wrong shape.
        TypeError
            A non-real dtype (bool, complex, object, str).
        """
        super().set_weights(weights)

    def _prepare_weights(self, weights: Sequence[ArrayLike], input_dim: Optional[int] = None) -> Any:
        """Validate a :meth:`set_weights` list; return ``(kernel, recurrent_kernel, bias_or_None)``."""
        arrs = self._check_weight_list(weights)
        h = self.units
        dim = self.input_dim
        if dim is None:
            dim = input_dim
        if dim is None and arrs[0].ndim == 2 and arrs[0].shape[0] > 0:
            dim = arrs[0].shape[0]  # an unbuilt layer takes input_dim from the kernel
        for (wname, shp), a in zip(self.cell.weight_shapes(dim, h, self.use_bias), arrs):
            if a.shape != shp:
                want = f"(input_dim, {shp[1]})" if shp[0] is None else str(shp)
                raise ValueError(f"set_weights: got {wname} shape {a.shape}, expected {want}"
                                 + (f" for layer {self.name!r}" if wname == "kernel" else ""))
        if arrs[0].size > MAX_MATRIX_ELEMENTS:
            raise ValueError(f"set_weights: got kernel shape {arrs[0].shape}, expected at most "
                             f"{MAX_MATRIX_ELEMENTS} elements")
        return arrs[0], arrs[1], (arrs[2] if self.use_bias else None)

    def _output_width(self, prepared: Any, width: Optional[int]) -> Optional[int]:
        return self.units

    def count_params(self) -> int:
        """Number of weights, as Keras counts them (SimpleRNN ``D*H + H*H + H``, LSTM
        ``4 * (D*H + H*H + H)``, GRU ``3 * (D*H + H*H + 2H)`` with ``reset_after``).

        Raises ValueError if the layer is not built (as in Keras).
        """
        if not self.built:
            return super().count_params()
        return self.cell.count_params(self.input_dim, self.units, self.use_bias)

    # ------------------------------------------------------------------ compiled handle
    def _core_kwargs(self) -> Dict[str, Any]:
        """This layer's entry of a compiled stack: cell options (per-layer lists take these)."""
        return self.cell.core_kwargs()

    def _get_handle(self) -> Any:
        """The compiled one-layer stack for the current weights (cached per version)."""
        cached = self._handle
        if cached is not None and cached[0] == self._version:
            return cached[1]
        with WEIGHTS_LOCK:  # version and weights read together: never a newer version's mix
            version, weights = self._version, self._weights
            kw = self._core_kwargs()
            direction = "reverse" if self.go_backwards else "forward"
            dtype = self.dtype
        handle = _core.RNN([[self.cell.core_entry(weights)]], direction=direction, dtype=dtype,
                           **kw)
        self._handle = (version, handle)
        return handle

    # ------------------------------------------------------------------ states
    @property
    def states(self) -> List[Optional[np.ndarray]]:
        """States of a stateful layer (copies, each ``(batch, units)``): ``[h]``, or
        ``[h, c]`` for an LSTM; ``None`` entries before the batch size is known."""
        st = self._states
        n = self.cell.num_states
        return [None] * n if st is None else [s.copy() for s in st]

    def reset_states(self, states: Any = None) -> None:
        """Zero the states of a stateful layer, or set them to ``states``.

        Parameters
        ----------
        states : array ``(batch, units)`` or a list of one array per state, optional
            New states (``[h]``, or ``[h, c]`` for an LSTM).  Without it the
            states become zeros (or, if the batch size is still unknown, are
            created as zeros on the first call).

        Raises
        ------
        AttributeError
            The layer is not stateful (as in Keras).
        ValueError
            ``states`` has the wrong shape, count or batch size.
        """
        if not self.stateful:
            super().reset_states()
        n = self.cell.num_states
        with self._state_lock:
            batch = self._stateful_batch()
            if states is None:
                self._states = (None if batch is None else
                                tuple(np.zeros((batch, self.units), self.dtype) for _ in range(n)))
                return
            st = self._parse_states(states, batch, "states")
            self._states = tuple(np.array(s, dtype=self.dtype, copy=True) for s in st)

    def _parse_states(self, state: Any, batch: Optional[int], argname: str) -> Tuple[np.ndarray, ...]:
        """``state`` (one array, or a list of one per state) as a tuple of checked arrays."""
        n = self.cell.num_states
        kind = type(self).__name__
        if isinstance(state, (list, tuple)):
            if len(state) != n:
                raise ValueError(f"{argname}: got a list of {len(state)} arrays, expected {n} "
                                 f"({kind} has {n} state{'s' if n > 1 else ''}"
                                 + (": [h, c])" if n == 2 else ")"))
            parts = list(state)
        elif n == 1:
            parts = [state]
        else:
            raise ValueError(f"{argname}: got one array, expected a list of {n} arrays [h, c] "
                             f"({kind} has {n} states)")
        out = []
        for i, s in enumerate(parts):
            what = argname if n == 1 else f"{argname}[{i}]"
            st = _core.as_real_array(s, what)
            if st.ndim != 2 or st.shape[1] != self.units or (batch is not None and st.shape[0] != batch):
                raise ValueError(f"{what}: got shape {st.shape}, expected "
                                 f"({'batch' if batch is None else batch}, {self.units})")
            if i and st.shape[0] != out[0].shape[0]:
                raise ValueError(f"{what}: got shape {st.shape}, expected ({out[0].shape[0]}, "
                                 f"{self.units}) like {argname}[0]")
            out.append(st)
        return tuple(out)

    def _kept_state(self, batch: int) -> Optional[Tuple[np.ndarray, ...]]:
        """The states a stateful call starts from (None: zeros); checks the fixed batch size."""
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
        initial_state : array ``(batch, units)`` or a list of one per state, optional
            ``[h]`` (or ``h``), ``[h, c]`` for an LSTM. Default zeros, or, for a
            stateful layer, the kept states.
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
            ``(batch, units)``, in the layer dtype; ``[output, *final_states]``
            with ``return_state``.
        """
        cached = self._handle
        if (cached is not None and cached[0] == self._version and initial_state is None
                and mask is None and not training):
            if not (self.stateful or self.go_backwards or self.return_state):
                # the commonest call, inline: the compiled handle validates x itself
                return cached[1].forward(x, None, None, self.return_sequences, False)
            fast = self._call_fast(cached[1], x)
            if fast is not None:
                return fast
        if self._weights is None:
            x = self._check_x(x)  # builds the layer from x's input_dim
        return self._call_with(self._get_handle(), x, initial_state, training, mask)

    def _call_fast(self, handle: Any, x: Any) -> Any:
        """The common calls (no mask, no initial state), or None to take the general path.
        The compiled handle validates ``x`` itself."""
        if not self.stateful:
            if not self.go_backwards:
                if self.return_state:
                    out, states = handle.forward(x, None, None, self.return_sequences, True)
                    return [out, *_layer_states(states[0])]
                return handle.forward(x, None, None, self.return_sequences, False)
            return None
        st = self._states
        if (st is not None and type(x) is np.ndarray and x.ndim == 3
                and x.shape[0] == st[0].shape[0]):
            with self._state_lock:
                out, states = handle.forward(x, (_core_state(self._states),), None,
                                             self.return_sequences, True)
                kept = self._states = _layer_states(states[0])
            if self.go_backwards and self.return_sequences:
                out = np.ascontiguousarray(out[:, ::-1])
            return [out, *(s.copy() for s in kept)] if self.return_state else out
        return None

    def _call_with(self, handle: Any, x: ArrayLike, initial_state: Any, training: Any,
                   mask: Any) -> Union[np.ndarray, List[np.ndarray]]:
        """The general call on a given compiled handle (of this layer's weights)."""
        if training and (self.dropout or self.recurrent_dropout):
            raise NotImplementedError("training: got True with dropout, expected inference "
                                      "(crnn does not implement training-time dropout)")
        xa = self._check_x(x)
        batch = xa.shape[0]
        h0 = None if initial_state is None else self._parse_states(initial_state, batch,
                                                                   "initial_state")
        if not self.stateful:
            out, states = self._run(handle, xa, h0, mask)
        else:
            with self._state_lock:
                kept = self._kept_state(batch)
                if h0 is None:
                    h0 = kept
                out, states = self._run(handle, xa, h0, mask)
                self._states = states
            if self.return_state:
                states = tuple(s.copy() for s in states)  # never hand out the kept states
        return [out, *states] if self.return_state else out

    def _run(self, handle: Any, xa: np.ndarray, h0: Optional[Tuple[np.ndarray, ...]],
             mask: Optional[ArrayLike]) -> Tuple[np.ndarray, Tuple[np.ndarray, ...]]:
        """Compute ``(output, final_states)`` in Keras semantics."""
        batch, steps, _ = xa.shape
        h = self.units
        m = _mask_array(mask, batch, steps)
        if batch == 0:
            empty = np.zeros((0, steps, h) if self.return_sequences else (0, h), self.dtype)
            return empty, tuple(np.zeros((0, h), self.dtype) for _ in range(self.cell.num_states))
        init = None if h0 is None else [_core_state(h0)]
        out, states = _run_recurrent(handle, xa, init, m, self.return_sequences, True,
                                     self.zero_output_for_mask, self.go_backwards)
        return out, _layer_states(states[0])

    def _bound_call(self) -> Callable[[Any, Any], Tuple[Any, Any]]:
        handle = self._get_handle()

        def call(x: Any, mask: Any) -> Tuple[Any, Any]:
            return (self._call_with(handle, x, None, None, mask),
                    mask if self.return_sequences else None)
        return call

    def compute_mask(self, inputs: Any, mask: Optional[ArrayLike] = None) -> Any:
        """The incoming mask if the layer returns sequences, else None (Keras ``RNN``)."""
        out = mask if self.return_sequences else None
        return [out] + [None] * self.cell.num_states if self.return_state else out

    def _call_masked(self, x: ArrayLike, mask: Any) -> Tuple[Any, Any]:
        return self(x, mask=mask), (mask if self.return_sequences else None)
