"""Keras ``Bidirectional``: any recurrent layer run forwards and backwards, outputs merged."""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ... import _core
from ..arguments import ArrayLike, Shape, _check_bool, _reject_unknown_kwargs
from ..layer import WEIGHTS_LOCK, Layer, _deferred_weights, _touch
from .rnn import (RNN, _check_sequence_input, _core_state, _layer_states, _mask_array,
                  _run_recurrent)

__all__ = ["Bidirectional", "MERGE_MODES"]

#: Merge modes of :class:`Bidirectional`.
MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class Bidirectional(Layer):
    """Run a recurrent layer forwards and backwards and merge the outputs (Keras ``Bidirectional``).

    Parameters
    ----------
    layer : SimpleRNN, LSTM or GRU
        The forward layer's template: the forward layer is a copy of it
        (named ``"forward_" + layer.name``, with ``layer``'s weights if it has
        any) and, unless ``backward_layer`` is given, the backward layer is a
        copy with ``go_backwards`` flipped (named ``"backward_" + layer.name``,
        fresh weights).
    merge_mode : {"concat", "sum", "mul", "ave", None}, default "concat"
        How the two outputs combine; None returns ``[forward, backward]``.
    weights : list of arrays, optional
        Initial weights: the forward layer's, then the backward layer's.
    backward_layer : SimpleRNN, LSTM or GRU, optional
        The backward layer's template.  It must have the opposite
        ``go_backwards`` and the same ``units``, ``return_sequences``,
        ``return_state``, ``stateful`` and ``dtype`` as ``layer`` (ValueError
        otherwise).
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
    ``[output, *forward_states, *backward_states]`` (``[output, h_f, h_b]``
    for SimpleRNN and GRU, ``[output, h_f, c_f, h_b, c_b]`` for LSTM; two
    outputs first when ``merge_mode`` is None); masked steps give zero outputs
    when returning sequences;
    :meth:`get_weights` lists the forward weights, then the backward ones;
    parameters count twice the wrapped layer's.

    When both directions are layers of one kind, size and cell options (the
    usual case), a call runs them in **one** C call
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
        if not isinstance(layer, RNN):
            raise ValueError(f"layer: got {layer!r} of type {type(layer).__name__}, expected a "
                             "recurrent layer instance (crnn.SimpleRNN, crnn.LSTM or crnn.GRU)")
        if backward_layer is not None and not isinstance(backward_layer, RNN):
            raise ValueError(f"backward_layer: got {backward_layer!r} of type "
                             f"{type(backward_layer).__name__}, expected a recurrent layer "
                             "instance (crnn.SimpleRNN, crnn.LSTM or crnn.GRU)")
        self._set_name(name)
        self.trainable = _check_bool(trainable, "trainable")
        self.merge_mode = merge_mode
        self._handle: Optional[Tuple[Any, Any]] = None
        self._state_lock = threading.Lock()
        self._layer_class = type(layer)
        self._layer_config = layer.get_config()
        self.forward_layer = self._copy_layer(layer, self._layer_config, "forward_")
        if backward_layer is None:
            self._backward_config = None
            self.backward_layer = self._copy_layer(type(layer),
                                                   self._reversed_config(self._layer_config),
                                                   "backward_", layer.name)
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
        # (units too: the merged output, its shape and the sum / mul / ave modes take both halves
        # to be one width)
        for attr in ("units", "stateful", "return_sequences", "return_state", "dtype"):
            if getattr(fwd, attr) != getattr(bwd, attr):
                raise ValueError(f"backward_layer: got {attr}={getattr(bwd, attr)!r}, expected "
                                 f"{getattr(fwd, attr)!r} (the same as layer's)")
        # Keras: inside Bidirectional, masked steps of returned sequences are zero.
        fwd.zero_output_for_mask = fwd.return_sequences
        bwd.zero_output_for_mask = bwd.return_sequences
        self._own_batch_input_shape: Optional[Shape] = RNN._resolve_input_shape(
            {"batch_input_shape": batch_input_shape, "input_shape": input_shape,
             "input_length": None, "input_dim": None, "batch_size": batch_size})
        bis = self.batch_input_shape
        if not (fwd.built and bwd.built) and bis is not None and bis[2] is not None:
            self.build(bis)
        if weights is not None:
            self.set_weights(weights)

    @staticmethod
    def _copy_layer(layer: Union[RNN, type], config: Dict[str, Any], prefix: str,
                    base_name: Optional[str] = None) -> RNN:
        """A copy of ``layer`` made from ``config`` (with its weights when it has any), or a
        fresh layer of class ``layer``."""
        cfg = dict(config)
        cfg["name"] = prefix + (base_name if base_name is not None else config["name"])
        if isinstance(layer, type):
            return layer.from_config(cfg)
        if layer.built:
            with _deferred_weights():
                copy = type(layer).from_config(cfg)
            copy.set_weights(layer.get_weights())
            return copy
        return type(layer).from_config(cfg)

    # ------------------------------------------------------------------ properties
    @property
    def layer(self) -> RNN:
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

    @property
    def merge_mode(self) -> Optional[str]:
        return self._merge_mode

    @merge_mode.setter
    def merge_mode(self, value: Optional[str]) -> None:
        if not (value is None or (isinstance(value, str) and value in MERGE_MODES)):
            raise ValueError(f"merge_mode: got {value!r}, expected one of 'concat', 'sum', "
                             "'mul', 'ave' or None")
        self._merge_mode = value
        _touch()  # a model's call plan merges as it was told when the plan was made

    # The flags both halves share are the halves' own: read from the forward layer, and an
    # assignment goes to both (through their checks; the compiled call is rebuilt), so the
    # wrapper, its halves and its config never disagree.
    def _shared(name: str) -> property:  # type: ignore[misc]
        def get(self: "Bidirectional") -> Any:
            return getattr(self.forward_layer, name)

        def set_(self: "Bidirectional", value: Any) -> None:
            for half in (self.forward_layer, self.backward_layer):
                setattr(half, name, value)
                # Keras: inside Bidirectional, masked steps of returned sequences are zero
                half.zero_output_for_mask = half.return_sequences
            # the configs get_config saves (and from_config rebuilds the halves from)
            for cfg in (self._layer_config, self._backward_config):
                if cfg is not None:
                    cfg[name] = getattr(self.forward_layer, name)

        return property(get, set_, doc=f"``{name}`` of both halves.")

    stateful = _shared("stateful")
    return_sequences = _shared("return_sequences")
    return_state = _shared("return_state")
    dtype = _shared("dtype")
    del _shared

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
    @staticmethod
    def _reversed_config(config: Dict[str, Any]) -> Dict[str, Any]:
        """The backward half's config made from the wrapped layer's: the other direction, and
        the next seed (Keras draws the two layers' weights independently)."""
        cfg = dict(config)
        cfg["go_backwards"] = not cfg["go_backwards"]
        if isinstance(cfg.get("seed"), int):
            cfg["seed"] += 1
        return cfg

    @staticmethod
    def _half_config(half: RNN, made_from: Dict[str, Any]) -> Dict[str, Any]:
        """The config a half was made from, with the values it has now: a half's own attributes
        may have been assigned since (``bi.backward_layer.activation = "relu"``), and a saved
        model must compute what this one does. Its name, seed and the masking Bidirectional
        forces stay as they were made."""
        cfg = dict(made_from)
        cfg.update((k, v) for k, v in half.get_config().items()
                   if k not in ("name", "seed", "zero_output_for_mask"))
        return cfg

    def get_config(self) -> Dict[str, Any]:
        """``{"name", "layer": {"class_name", "config"}, "merge_mode", ...}`` (no weights)."""
        layer_cfg = self._half_config(self.forward_layer, self._layer_config)
        cfg: Dict[str, Any] = {"name": self.name,
                               "layer": {"class_name": self._layer_class.__name__,
                                         "config": layer_cfg},
                               "merge_mode": self.merge_mode, "trainable": self.trainable}
        back = self._backward_config
        if back is None:
            # the backward half was made from layer's config, going the other way: written out
            # only where it no longer is that
            now = self._half_config(self.backward_layer,
                                    self._reversed_config(self._layer_config))
            back = None if now == self._reversed_config(layer_cfg) else now
        else:
            back = self._half_config(self.backward_layer, back)
        if back is not None:
            cfg["backward_layer"] = {"class_name": type(self.backward_layer).__name__,
                                     "config": back}
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
        from ..serialization import deserialize
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
        states: List[Any] = []
        if self.return_state:
            out, states = out[0], out[1:]
        if self.merge_mode == "concat":
            out = tuple(out[:-1]) + (out[-1] * 2,)
        elif self.merge_mode is None:
            out = [out, out]
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + states + states
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
        """Reset both layers' states (or set them to ``[*forward_states, *backward_states]``)."""
        if not self.stateful:
            super().reset_states()
        if states is None:
            self.forward_layer.reset_states()
            self.backward_layer.reset_states()
            return
        fs, bs = self._split_states(states, "states")
        self.forward_layer.reset_states(fs)
        self.backward_layer.reset_states(bs)

    def _split_states(self, states: Any, argname: str) -> Tuple[Any, Any]:
        """``[*forward_states, *backward_states]`` as the two halves (one array each for
        single-state layers, as Keras's ``[forward_state, backward_state]``)."""
        n = self.forward_layer.cell.num_states
        if isinstance(states, np.ndarray) or not isinstance(states, (list, tuple)) \
                or len(states) != 2 * n:
            want = ("[forward_state, backward_state]" if n == 1 else
                    "[forward_h, forward_c, backward_h, backward_c]")
            raise ValueError(f"{argname}: got {type(states).__name__}"
                             + (f" of length {len(states)}" if isinstance(states, (list, tuple)) else "")
                             + f", expected a list of {2 * n} arrays {want}")
        if n == 1:
            return states[0], states[1]
        return list(states[:n]), list(states[n:])

    # ------------------------------------------------------------------ call
    def _fusable(self) -> bool:
        """Both directions can run as one ``direction="bidirectional"`` C call."""
        fwd, bwd = self.forward_layer, self.backward_layer
        return (type(fwd) is type(bwd) and fwd.built and bwd.built
                and not fwd.go_backwards and bwd.go_backwards and fwd.units == bwd.units
                and fwd.cell.same_computation(bwd.cell)
                and fwd.dtype == bwd.dtype and fwd.input_dim == bwd.input_dim)

    def _core_kwargs(self) -> Dict[str, Any]:
        """This layer's entry of a compiled stack (see :meth:`RNN._core_kwargs`)."""
        return self.forward_layer.cell.core_kwargs()

    def _core_entries(self) -> List[List[Any]]:
        """The two stack entries of this layer (call under WEIGHTS_LOCK for a consistent pair)."""
        fwd, bwd = self.forward_layer, self.backward_layer
        return [fwd.cell.core_entry(fwd._weights), bwd.cell.core_entry(bwd._weights)]

    def _get_handle(self) -> Any:
        cached = self._handle
        if cached is not None and cached[0] == self._version:
            return cached[1]
        with WEIGHTS_LOCK:  # both directions' weights from before, or after, a set_weights
            version, entries = self._version, self._core_entries()
        handle = _core.RNN([entries], direction="bidirectional", dtype=self.forward_layer.dtype,
                           **self._core_kwargs())
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
        initial_state : list ``[*forward_states, *backward_states]``, optional
            ``[h_f, h_b]``, or ``[h_f, c_f, h_b, c_b]`` around an LSTM.
        training : bool, optional
            Accepted for Keras compatibility; crnn only does inference.
        mask : array_like of bool ``(batch, timesteps)``, optional
            Keras masking (both directions skip masked steps; returned
            sequences are zero there).
        """
        xa = self._check_x(x)
        if not self._fusable() or (training and (self.forward_layer.dropout
                                                  or self.forward_layer.recurrent_dropout)):
            return self._call_pair(None, xa, initial_state, training, mask)
        return self._call_fused(self._get_handle(), xa, initial_state, mask)

    def _call_fused(self, handle: Any, xa: np.ndarray, initial_state: Any, mask: Any) -> Any:
        fwd, bwd = self.forward_layer, self.backward_layer
        batch, steps = xa.shape[0], xa.shape[1]
        n = fwd.cell.num_states
        init = None
        if initial_state is not None:
            fs, bs = self._split_states(initial_state, "initial_state")
            init = [_core_state(fwd._parse_states(fs, batch, "initial_state[0]")),
                    _core_state(bwd._parse_states(bs, batch, "initial_state[1]"))]
        m = _mask_array(mask, batch, steps)
        rs = self.return_sequences
        if batch == 0:
            width = 2 * fwd.units
            out = np.zeros((0, steps, width) if rs else (0, width), self.dtype)
            states = [np.zeros((0, fwd.units), self.dtype)] * (2 * n)
        elif self.stateful:
            with self._state_lock:
                if init is None:
                    init = [_core_state(fwd._kept_state(batch)), _core_state(bwd._kept_state(batch))]
                out, entries = _run_recurrent(handle, xa, init, m, rs, True, rs)
                fwd._states, bwd._states = _layer_states(entries[0]), _layer_states(entries[1])
            states = [s.copy() for s in fwd._states + bwd._states]
        else:
            out, entries = _run_recurrent(handle, xa, init, m, rs, self.return_state, rs)
            states = [] if entries is None else [*_layer_states(entries[0]),
                                                 *_layer_states(entries[1])]
        if self.merge_mode != "concat":
            u = fwd.units
            out = self._merge(out[..., :u], out[..., u:])
            if isinstance(out, list):
                out = [np.ascontiguousarray(o) for o in out]
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + states
        return out

    def _call_pair(self, handles: Optional[Tuple[Any, Any]], xa: np.ndarray, initial_state: Any,
                   training: Any, mask: Any) -> Any:
        """The two layers one after the other (on ``handles`` if given, else their own)."""
        fwd, bwd = self.forward_layer, self.backward_layer
        fs = bs = None
        if initial_state is not None:
            fs, bs = self._split_states(initial_state, "initial_state")
        hf, hb = handles if handles is not None else (fwd._get_handle(), bwd._get_handle())
        y = fwd._call_with(hf, xa, fs, training, mask)
        y_rev = bwd._call_with(hb, xa, bs, training, mask)
        states: List[np.ndarray] = []
        if self.return_state:
            states = list(y[1:]) + list(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = np.ascontiguousarray(y_rev[:, ::-1])
        out = self._merge(y, y_rev)
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + states
        return out

    def _bound_call(self) -> Callable[[Any, Any], Tuple[Any, Any]]:
        with WEIGHTS_LOCK:
            fused = self._fusable()
            handles = ((self._get_handle(),) if fused else
                       (self.forward_layer._get_handle(), self.backward_layer._get_handle()))

        def call(x: Any, mask: Any) -> Tuple[Any, Any]:
            xa = self._check_x(x)
            out = (self._call_fused(handles[0], xa, None, mask) if fused else
                   self._call_pair(handles, xa, None, None, mask))
            return out, (mask if self.return_sequences else None)
        return call

    def compute_mask(self, inputs: Any, mask: Optional[ArrayLike] = None) -> Any:
        """The incoming mask if returning sequences, else None (per output for merge_mode None)."""
        out = mask if self.return_sequences else None
        if self.merge_mode is None:
            out = [out, out]
        if self.return_state:
            n = self.forward_layer.cell.num_states
            return (out if isinstance(out, list) else [out]) + [None] * (2 * n)
        return out

    def _call_masked(self, x: ArrayLike, mask: Any) -> Tuple[Any, Any]:
        return self(x, mask=mask), (mask if self.return_sequences else None)
