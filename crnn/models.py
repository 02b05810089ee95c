"""Keras-like models: :class:`Sequential`, a linear stack of crnn layers.

Mirrors ``tensorflow.keras.models.Sequential`` for inference::

    from crnn.layers import Dense, Embedding, SimpleRNN
    from crnn.models import Sequential

    model = Sequential()
    model.add(Embedding(10000, 32, mask_zero=True))
    model.add(SimpleRNN(32, return_sequences=True))
    model.add(SimpleRNN(32))
    model.add(Dense(1, activation="sigmoid"))
    model.summary()
    y = model.predict(x)          # x: (batch, timesteps) integer token ids -> y: (batch, 1)
    model.save("classifier.crnn")

Runs of stacked recurrent layers (SimpleRNN, LSTM, GRU, and Bidirectional
around any of them, mixed freely) execute in one call into the C core (one
compiled handle for the whole run, no Python between layers), masks
included.  Masks propagate as in Keras.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from . import layers as _layers
from .layers import RNN, WEIGHTS_LOCK, Bidirectional, InputLayer, Layer, unique_name
from .layers.rnn.rnn import _core_state, _layer_states

__all__ = ["Sequential", "load_model"]

ArrayLike = Any
Shape = Tuple[Optional[int], ...]

#: verbose="auto" shows predict's progress bar only once a job has run this long (seconds).
_AUTO_BAR_DELAY = 0.5

_NOT_BUILT = ("This model has not yet been built. Build the model first by calling `build()` or "
              "by calling the model on a batch of data, or specify an `input_shape` argument in "
              "the first layer(s) for automatic build.")


# --------------------------------------------------------------------------- #
# A run of stacked recurrent layers, executed as one C call
# --------------------------------------------------------------------------- #
def _fusable(layer: Layer) -> bool:
    """Can ``layer`` be one entry of a fused stack (one ``crnn._core.RNN`` call)?"""
    if isinstance(layer, RNN):
        return layer.built and not layer.go_backwards and not layer.return_state
    if type(layer) is Bidirectional:
        return layer._fusable() and not layer.return_state and layer.merge_mode is not None
    return False


def _can_follow(prev: Layer, layer: Layer) -> bool:
    """Can ``layer`` read ``prev``'s full output inside one fused stack?"""
    return (prev.return_sequences and layer.dtype == prev.dtype
            and (type(prev) is not Bidirectional or prev.merge_mode == "concat"))


class _FusedRun:
    """Consecutive recurrent layers, of any cell kinds, as one compiled stack.

    Layer ``l > 0`` reads layer ``l - 1``'s full output, exactly what the
    layers do one by one; a mask becomes per-sequence lengths (or a
    compaction of the input) once, for the whole stack.  Stateful layers
    pass their kept states in and get the final states back. Built (by the
    model, under the weights lock) from the layers' current weights.
    """

    __slots__ = ("handle", "layers", "subs", "last", "rs", "zero_masked", "stateful",
                 "all_stateful", "lock", "units_last", "dim", "merge", "forward")

    def __init__(self, layers: List[Layer]) -> None:
        weights, subs = [], []
        kw: Dict[str, list] = {}
        for layer in layers:
            if type(layer) is Bidirectional:
                weights.append(layer._core_entries())
                dirs = "bidirectional"
                subs += [layer.forward_layer, layer.backward_layer]
            else:
                weights.append([layer.cell.core_entry(layer._weights)])
                dirs = "forward"
                subs.append(layer)
            for k, v in dict(layer._core_kwargs(), direction=dirs).items():
                kw.setdefault(k, []).append(v)
        self.handle = _core.RNN(weights, dtype=layers[0].dtype, **kw)
        self.layers = list(layers)
        self.subs = subs
        last = layers[-1]
        self.last = last
        self.rs = last.return_sequences
        bidir = type(last) is Bidirectional
        # Keras: inside Bidirectional, masked steps of returned sequences are zero
        self.zero_masked = self.rs if bidir else last.zero_output_for_mask
        self.merge = last.merge_mode if bidir and last.merge_mode != "concat" else None
        self.units_last = last.units
        self.stateful = any(s.stateful for s in subs)
        self.all_stateful = all(s.stateful for s in subs)
        self.lock = threading.Lock() if self.stateful else None
        first = layers[0]
        self.dim = (first.forward_layer if type(first) is Bidirectional else first).input_dim
        # The whole call, when it is one C call with no mask (a model of one such run calls it
        # directly; the handle validates x itself), else None.
        self.forward: Optional[Callable[[Any], Any]] = None
        if not self.stateful and self.merge is None:
            fwd, rs = self.handle.forward, self.rs
            self.forward = lambda x: fwd(x, None, None, rs, False)

    def __call__(self, x: ArrayLike, mask: Any) -> Tuple[Any, Any]:
        out = None
        if mask is None:
            if not self.stateful:
                out = self.handle.forward(x, None, None, self.rs, False)  # validates x itself
            elif self.all_stateful and type(x) is np.ndarray and x.ndim == 3:
                # Streaming fast path: every layer keeps states of this batch size.
                batch = x.shape[0]
                with self.lock:
                    init = [s._states for s in self.subs]
                    if all(st is not None and st[0].shape[0] == batch for st in init):
                        out, states = self.handle.forward(x, [_core_state(st) for st in init],
                                                          None, self.rs, True)
                        for s, st in zip(self.subs, states):
                            s._states = _layer_states(st)
        if out is None:
            out = self._call_general(x, mask)
        if self.merge is not None:
            u = self.units_last
            out = self.last._merge(out[..., :u], out[..., u:])
        return out, (mask if self.rs else None)

    def _call_general(self, x: ArrayLike, mask: Any) -> np.ndarray:
        xa = _layers._check_sequence_input(x, self.dim)
        batch = xa.shape[0]
        m = _layers._mask_array(mask, batch, xa.shape[1])
        if batch == 0:
            return self.handle.forward(xa, None, None, self.rs, False)
        if not self.stateful:
            return _layers._run_recurrent(self.handle, xa, None, m, self.rs, False,
                                          self.zero_masked)[0]
        with self.lock:
            init = [_core_state(s._kept_state(batch)) if s.stateful else None for s in self.subs]
            out, states = _layers._run_recurrent(self.handle, xa, init, m, self.rs, True,
                                                 self.zero_masked)
            for s, st in zip(self.subs, states):
                if s.stateful:
                    s._states = _layer_states(st)
        return out


# --------------------------------------------------------------------------- #
# Progress bar (Keras 2 ``Progbar`` look)
# --------------------------------------------------------------------------- #
class _ProgressBar:
    """``4/4 [==============================] - 0s 2ms/step`` on stdout.

    verbose=1: a bar redrawn in place on a terminal (only the final line
    otherwise); verbose=2: one final line ``4/4 - 0s - 2ms/step``.
    """

    width = 30
    interval = 0.05

    def __init__(self, target: int, verbose: int, start: float) -> None:
        self.target = max(int(target), 1)
        self.verbose = verbose
        self.start = start  # when the job began (time.perf_counter)
        self.last = 0.0
        self.shown = 0
        stream = sys.stdout
        self.dynamic = bool(getattr(stream, "isatty", lambda: False)()) or "ipykernel" in sys.modules

    @staticmethod
    def _per_step(seconds: float) -> str:
        if seconds >= 1 or seconds == 0:
            return f"{seconds:.0f}s/step"
        if seconds >= 1e-3:
            return f"{seconds * 1e3:.0f}ms/step"
        return f"{seconds * 1e6:.0f}us/step"

    def update(self, current: int) -> None:
        now = time.perf_counter()
        done = current >= self.target
        if self.verbose != 1 or not (self.dynamic or done):
            if self.verbose == 2 and done:
                elapsed = now - self.start
                sys.stdout.write(f"{current}/{self.target} - {elapsed:.0f}s - "
                                 f"{self._per_step(elapsed / max(current, 1))}\n")
                sys.stdout.flush()
            return
        if not done and now - self.last < self.interval:
            return
        self.last = now
        digits = len(str(self.target))
        bar = f"{current:{digits}d}/{self.target} ["
        filled = int(self.width * current / self.target)
        if filled > 0:
            bar += "=" * (filled - 1) + ("=" if done else ">")
        bar += "." * (self.width - filled) + "]"
        elapsed = now - self.start
        per = elapsed / max(current, 1)
        if done:
            info = f" - {elapsed:.0f}s {self._per_step(per)}"
        else:
            eta = per * (self.target - current)
            if eta > 3600:
                eta_s = f"{int(eta // 3600)}:{int(eta % 3600 // 60):02d}:{int(eta % 60):02d}"
            elif eta > 60:
                eta_s = f"{int(eta // 60)}:{int(eta % 60):02d}"
            else:
                eta_s = f"{int(eta)}s"
            info = f" - ETA: {eta_s}"
        line = bar + info
        pad = " " * max(self.shown - len(line), 0)
        self.shown = len(line)
        sys.stdout.write(("\r" if self.dynamic else "") + line + pad + ("\n" if done else ""))
        sys.stdout.flush()


# --------------------------------------------------------------------------- #
# Sequential
# --------------------------------------------------------------------------- #
def _check_single_output(layer: Layer, return_state: Any = None) -> None:
    """Refuse a layer with several outputs (``return_state``, ``Bidirectional(merge_mode=None)``;
    ``return_state`` given: the value an override is about to set): a Sequential model passes one
    array from layer to layer. Checked when a layer is added, and again whenever a model
    propagates shapes (Sequential._check_layers), since an attribute may be assigned later."""
    if return_state is None:
        # a Bidirectional's return_state is its forward half's: the halves may differ
        halves = ((layer.forward_layer, layer.backward_layer) if isinstance(layer, Bidirectional)
                  else (layer,))
        return_state = any(getattr(half, "return_state", False) for half in halves)
    if return_state:
        raise ValueError(f"layer: got {layer.name!r} with return_state=True, expected a layer "
                         "with a single output (a Sequential model passes one array along)")
    if isinstance(layer, Bidirectional) and layer.merge_mode is None:
        raise ValueError(f"layer: got {layer.name!r} with merge_mode=None (two outputs), "
                         "expected a layer with a single output (a Sequential model passes "
                         "one array along)")


class Sequential:
    """A linear stack of layers, each feeding the next (Keras ``Sequential``).

    Parameters
    ----------
    layers : list of Layer, optional
        Added in order with :meth:`add`.
    name : str, optional
        Default: ``"sequential"``, ``"sequential_1"``, ... in creation order.

    Notes
    -----
    The model is *built* (its weights exist and :meth:`summary` works) once
    the input shape is known: from the first layer's ``input_shape`` /
    ``batch_input_shape`` / ``input_dim`` (an :class:`~crnn.layers.Embedding`
    first layer always knows it, as in Keras 2), from :meth:`build`, or from
    the first call.  The batch size shown in shapes is None unless fixed by
    ``batch_input_shape``.

    Masks propagate as in Keras: an ``Embedding(mask_zero=True)`` or
    ``Masking`` layer creates one, ``Dense`` and ``Activation`` pass it
    through, and a recurrent layer consumes it unless it returns sequences.
    Consecutive recurrent layers run as one C call.

    Examples
    --------
    >>> from crnn.layers import SimpleRNN
    >>> from crnn.models import Sequential
    >>> model = Sequential()
    >>> model.add(SimpleRNN(3, batch_input_shape=(8, 2, 10)), return_sequences=True)
    >>> model.output_shape
    (8, 2, 3)
    """

    def __init__(self, layers: Optional[Sequence[Layer]] = None, name: Optional[str] = None) -> None:
        if name is None:
            name = unique_name("sequential")
        elif not isinstance(name, str) or not name:
            raise TypeError(f"name: got {name!r}, expected a non-empty str or None")
        self.name: str = name
        self._layers: List[Layer] = []
        self._input_layer: Optional[InputLayer] = None  # Input(...) given first, if any
        self._build_shape: Optional[Shape] = None  # set by build() or the first call
        # (key, steps, stateful, direct call or None) of the fused call plan (see _get_plan)
        self._plan: Optional[Tuple[Any, list, bool, Any]] = None
        self._seen: Optional[tuple] = None  # input shape[1:] of the last call (skips re-checks)
        self._tail: Optional[tuple] = None  # see _changed()
        self._names: Optional[Dict[str, Layer]] = None
        # Serialises whole calls of a model with stateful layers, so that concurrent calls see
        # every layer's state in one order (see __call__).
        self._call_lock = threading.RLock()
        if layers is not None:
            if isinstance(layers, Layer) or not isinstance(layers, (list, tuple)):
                raise TypeError(f"layers: got {type(layers).__name__}, expected a list of layers")
            for layer in layers:
                self.add(layer)

    # ------------------------------------------------------------------ structure
    @property
    def layers(self) -> List[Layer]:
        """The layers, in order (a new list; the layers themselves are shared; no InputLayer)."""
        return list(self._layers)

    def add(self, layer: Layer, **overrides: Any) -> None:
        """Append ``layer`` to the stack.

        Parameters
        ----------
        layer : Layer
            A crnn layer; its input must match the previous layer's output
            (a layer that returns 2-D output cannot feed a SimpleRNN).
        **overrides
            Tutorial-compatibility convenience (crnn extension, Keras has no
            such argument): constructor keywords applied to ``layer`` before it
            is added, as if passed to its constructor.  It makes the spelling
            ``model.add(SimpleRNN(3, batch_input_shape=(8, 2, 10)), return_sequences=True)``
            (keyword outside the layer's parentheses) behave as the tutorial
            intends.  Keywords that change the weights (``dtype``,
            ``use_bias``, input shape) only work on a layer without weights.

        Raises
        ------
        TypeError
            ``layer`` is not a Layer, or an override keyword is unknown.
        ValueError
            Duplicate layer name, a layer with several outputs
            (``return_state``, ``Bidirectional(merge_mode=None)``), or
            incompatible shapes.
        """
        if not isinstance(layer, Layer):
            raise TypeError(f"layer: got {layer!r} of type {type(layer).__name__}, "
                            "expected an instance of crnn.layers.Layer")
        if isinstance(layer, InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError(f"layer: got InputLayer {layer.name!r}, expected it only as the "
                                 f"first layer of model {self.name!r}")
            if overrides:
                raise TypeError(f"add: got unexpected keyword argument(s) {sorted(overrides)}")
            self._input_layer = layer
            self._changed()
            return
        names = {other.name: other for other in self._layers} if self._names is None \
            else self._names
        if names.get(layer.name) is layer:
            raise ValueError(f"layer: got {layer.name!r}, which is already in model {self.name!r}")
        if layer.name in names:
            raise ValueError(f"layer: got name {layer.name!r}, expected a name unique in model "
                             f"{self.name!r} (all layers of a Sequential model need unique names)")
        bad = [k for k in overrides if k not in layer._overridable]
        if bad:
            raise TypeError(f"add: got unexpected keyword argument(s) {sorted(bad)}, expected "
                            f"constructor arguments of {type(layer).__name__}: "
                            f"{sorted(layer._overridable)}")
        _check_single_output(layer, overrides.get("return_state"))
        before = {k: layer._config_values()[k] for k in overrides} if overrides else {}
        if overrides:
            layer._configure(**overrides)
        self._layers.append(layer)
        try:
            shape = self._input_shape()
            tail = self._tail
            if tail is not None and tail[0] == len(self._layers) - 1 and tail[1] == shape:
                # the earlier layers were checked (and built) when added: only the new one
                out = self._propagate(shape, build=shape is not None, start=tail[0],
                                      start_shape=tail[2])
            else:
                out = self._propagate(shape, build=shape is not None)
        except Exception:
            self._layers.pop()
            if before:
                try:
                    layer._configure(**before)
                except (TypeError, ValueError):  # pragma: no cover - best effort
                    pass
            raise
        self._changed()
        names[layer.name] = layer
        self._names = names
        self._tail = (len(self._layers), shape, out[-1] if out else None)

    def pop(self) -> Layer:
        """Remove and return the last layer (Keras ``Sequential.pop``)."""
        if not self._layers:
            raise TypeError("There are no layers in the model.")
        layer = self._layers.pop()
        if not self._layers:
            self._build_shape = None
        self._changed()
        return layer

    def _changed(self) -> None:
        self._plan = None
        self._seen = None
        self._tail = None   # (layers, input shape, last output shape) as of the last add()
        self._names = None  # name -> layer, as of the last add()

    def get_layer(self, name: Optional[str] = None, index: Optional[int] = None) -> Layer:
        """Return a layer by ``name`` or by ``index`` (as in Keras)."""
        if (name is None) == (index is None):
            raise ValueError("get_layer: got "
                             + ("both name and index" if name is not None else "neither name nor index")
                             + ", expected exactly one")
        if index is not None:
            if not -len(self._layers) <= index < len(self._layers):
                raise ValueError(f"index: got {index}, expected an index into "
                                 f"{len(self._layers)} layers")
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"name: got {name!r}, expected one of {[l.name for l in self._layers]}")

    # ------------------------------------------------------------------ shapes
    def _input_shape(self) -> Optional[Shape]:
        """The model's input shape if known well enough to build every layer, else None."""
        if not self._layers:
            return None
        if self._build_shape is not None:
            return self._build_shape
        if self._input_layer is not None:
            return tuple(self._input_layer.batch_input_shape)
        first = self._layers[0]
        bis = first.batch_input_shape
        if bis is not None and first._input_complete(bis):
            return tuple(bis)
        return None

    def _propagate(self, input_shape: Optional[Shape], *, build: bool, start: int = 0,
                   start_shape: Any = None) -> List[Any]:
        """Output shape of every layer for ``input_shape``, building layers if ``build``.

        An unknown shape (None) becomes each layer's placeholder (e.g.
        ``(None, None, None)`` for a recurrent layer) so ranks are still checked.
        With ``start``, only layers ``start:`` are visited, fed ``start_shape`` (the
        output shape of layer ``start - 1``), and only their shapes returned.
        """
        shapes: List[Any] = []
        shape: Any = None if input_shape is None else tuple(input_shape)
        if start:
            shape = start_shape
        for i, layer in enumerate(self._layers[start:], start):
            _check_single_output(layer)
            if shape is None:
                shape = layer._placeholder_input_shape()
                if shape is None:
                    shapes.append(None)
                    continue
            else:
                self._check_fits(i, layer, shape)
            if build and not layer.built and layer._input_complete(shape):
                layer.build(shape)
            shape = layer.compute_output_shape(shape)
            shapes.append(shape)
        return shapes

    def _check_layers(self) -> None:
        """The checks :meth:`add` made, on the layers as they are now: an attribute assigned
        since (``merge_mode``, ``return_sequences``, ``return_state``) may have given a layer
        two outputs or an output the next layer cannot take. Run when a call plan is made
        (after any assignment: each bumps the plan epoch) and before a save."""
        if self._layers:
            self._propagate(self._input_shape(), build=False)

    def _check_fits(self, i: int, layer: Layer, shape: Any) -> None:
        prev = self._layers[i - 1] if i else None
        src = f"layer {prev.name!r}" if prev is not None else "the model input"
        need = layer._input_ndim
        if not isinstance(shape, tuple) or (need is not None and len(shape) != need) \
                or len(shape) < layer._min_input_ndim:
            want = (f"{need}-D input (batch, timesteps, input_dim)" if need == 3 else
                    f"input with at least {layer._min_input_ndim} dimensions")
            hint = ""
            if prev is not None and getattr(prev, "return_sequences", True) is False:
                hint = (f" because it has return_sequences=False; create {prev.name!r} with "
                        "return_sequences=True")
            raise ValueError(f"layer: {layer.name!r} expects {want}, but {src} outputs "
                             f"{_layers._format_shape(shape)}{hint}")
        dim = layer._expected_input_dim()
        if dim is not None and shape[-1] is not None and shape[-1] != dim:
            raise ValueError(f"layer: {layer.name!r} has input_dim {dim}, but its input from "
                             f"{src} has shape {shape}, expected (..., {dim})")

    @property
    def built(self) -> bool:
        """True once the input shape is known and every layer has its weights."""
        return self._input_shape() is not None and all(l.built for l in self._layers)

    def build(self, input_shape: Optional[Sequence[Optional[int]]] = None) -> None:
        """Build every layer for inputs of ``input_shape`` (e.g. ``(batch, timesteps, input_dim)``).

        Without ``input_shape``, uses the first layer's declared shape.
        """
        if not self._layers:
            raise ValueError("build: got a model with no layers, expected at least one layer")
        if input_shape is None:
            shape = self._input_shape()
            if shape is None:
                raise ValueError("You must provide an `input_shape` argument.")
        else:
            if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, (tuple, list)):
                raise TypeError(f"input_shape: got {input_shape!r}, expected a tuple "
                                "(batch, timesteps, input_dim)")
            shape = tuple(input_shape)
        self._propagate(shape, build=True)
        if input_shape is not None:
            self._build_shape = shape
        self._changed()

    @property
    def input_shape(self) -> Shape:
        """The input shape, None where unknown; AttributeError before build."""
        shape = self._input_shape()
        if shape is None:
            raise AttributeError(f"input_shape: model {self.name!r} has not been built, so it has "
                                 "no defined input shape")
        return shape

    @property
    def output_shape(self) -> Any:
        """Shape of the last layer's output; AttributeError before build."""
        shape = self._input_shape()
        if shape is None:
            raise AttributeError(f"output_shape: model {self.name!r} has not been built, so it has "
                                 "no defined output shape")
        return self._propagate(shape, build=True)[-1]

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]) -> Any:
        """Output shape for inputs of ``input_shape``."""
        if not self._layers:
            raise ValueError("compute_output_shape: got a model with no layers, expected at least one")
        return self._propagate(tuple(input_shape), build=False)[-1]

    # ------------------------------------------------------------------ weights
    def count_params(self) -> int:
        """Total number of weights; ValueError before the model is built."""
        if not self.built:
            raise ValueError(_NOT_BUILT)
        return sum(layer.count_params() for layer in self._layers)

    def get_weights(self) -> List[np.ndarray]:
        """Copies of every layer's weights, concatenated in layer order."""
        return [w for layer in self._layers for w in layer.get_weights()]

    @property
    def weights(self) -> List[np.ndarray]:
        """Same as :meth:`get_weights`."""
        return self.get_weights()

    def set_weights(self, weights: Sequence[ArrayLike]) -> None:
        """Set every layer's weights from one flat list (the :meth:`get_weights` layout).

        All arrays are checked before any layer changes.

        Raises
        ------
        ValueError
            Wrong number of arrays, a wrong shape, or widths that do not chain.
        TypeError
            A non-real dtype.
        """
        if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
            raise TypeError(f"set_weights: got {type(weights).__name__}, expected a list of arrays")
        counts = [layer._num_weight_arrays() for layer in self._layers]
        if len(weights) != sum(counts):
            raise ValueError(f"set_weights: got {len(weights)} arrays, expected {sum(counts)} "
                             f"for model {self.name!r}")
        prepared = []
        pos = 0
        shape = self._input_shape()
        width: Optional[int] = None if shape is None else shape[-1]
        for layer, n in zip(self._layers, counts):
            p = layer._prepare_weights(list(weights[pos:pos + n]), width)
            prepared.append(p)
            width = layer._output_width(p, width)
            pos += n
        with WEIGHTS_LOCK:  # every layer at once: no call sees some old and some new weights
            for layer, p in zip(self._layers, prepared):
                layer._store_prepared(p)
            self._changed()

    @property
    def stateful(self) -> bool:
        """True if any layer is stateful."""
        return any(layer.stateful for layer in self._layers)

    def reset_states(self) -> None:
        """Zero the states of every stateful layer."""
        for layer in self._layers:
            if layer.stateful:
                layer.reset_states()

    # ------------------------------------------------------------------ inference
    def _get_plan(self) -> list:
        """Steps of a call: ``step(x, mask) -> (output, mask)``.

        A step is one layer, or a run of consecutive recurrent layers fused
        into one compiled stack (:class:`_FusedRun`): recurrent layers of any
        cell kind (forward, single output) and Bidirectional ones, of one
        dtype, each but the last returning sequences (and, but the last,
        merging by concatenation).  Every step is bound to the weights its
        layers held when the plan was made, under the weights lock, so a call
        runs wholly on weights from before or after any ``set_weights``.
        Cached per weights epoch.
        """
        plan = self._plan
        if plan is not None and plan[0] == _layers._EPOCH[0]:
            return plan[1]
        with WEIGHTS_LOCK:
            key = _layers._EPOCH[0]
            steps: list = []
            run: List[Layer] = []

            def flush() -> None:
                if run:
                    steps.append(_FusedRun(list(run)))
                run.clear()

            self._check_layers()
            for layer in self._layers:
                fusable = _fusable(layer)
                if run and not (fusable and _can_follow(run[-1], layer)):
                    flush()
                if fusable:
                    run.append(layer)
                else:
                    steps.append(layer._bound_call())
            flush()
        only = steps[0] if len(steps) == 1 and isinstance(steps[0], _FusedRun) else None
        self._plan = (key, steps, any(layer.stateful for layer in self._layers),
                      None if only is None else only.forward)
        return steps

    def _check_input(self, xa: np.ndarray) -> None:
        """Rank checks against the first layer, and build on the first call."""
        first = self._layers[0]
        need = first._input_ndim
        if need == 3 and (xa.ndim != 3 or xa.shape[1] == 0):
            raise ValueError(f"x: got shape {xa.shape}, expected (batch, timesteps, input_dim) "
                             "with timesteps >= 1")
        if need is None and xa.ndim < first._min_input_ndim:
            raise ValueError(f"x: got shape {xa.shape}, expected at least "
                             f"{first._min_input_ndim} dimensions (batch, ...)")
        known = self._input_shape()
        if known is None:
            dim = first._expected_input_dim()
            if dim is not None and xa.ndim and xa.shape[-1] != dim:
                raise ValueError(f"x: got input_dim {xa.shape[-1]} (shape {xa.shape}), "
                                 f"expected {dim}")
            self.build((None,) + tuple(xa.shape[1:]))
        elif len(known) != xa.ndim:
            # a first layer that takes any rank (Embedding): the later layers may not
            try:
                self._propagate((None,) + tuple(xa.shape[1:]), build=False)
            except ValueError as err:
                raise ValueError(f"x: got shape {xa.shape}, expected {len(known)} dimensions, "
                                 "as in the model's input shape "
                                 f"{_layers._format_shape(known)} ({err})") from None
        elif self._build_shape is not None and len(known) > 2:
            # Relax dimensions that vary between calls (timesteps), as Keras does.
            relaxed = ((known[0],) + tuple(k if k == s else None
                                           for k, s in zip(known[1:-1], xa.shape[1:-1]))
                       + (known[-1],))
            if relaxed != known:
                self._build_shape = relaxed
        if known is not None and not all(layer.built for layer in self._layers):
            # a declared input shape that leaves a width open (Input((None, None))), or an x of
            # another rank that the layers take: the layers it could not build take this x's
            shape = (None,) + tuple(xa.shape[1:])
            if len(known) == xa.ndim:
                shape = tuple(k if k is not None else s for k, s in zip(known, shape))
            self._propagate(shape, build=True)
        self._seen = tuple(xa.shape[1:])

    def __call__(self, x: ArrayLike, training: Optional[bool] = None,
                 mask: Optional[ArrayLike] = None) -> np.ndarray:
        """Run the stack on ``x`` (e.g. ``(batch, timesteps, input_dim)``, or token ids).

        Parameters
        ----------
        x : array_like
        training : bool, optional
            Accepted for Keras compatibility (inference only).
        mask : array_like of bool ``(batch, timesteps)``, optional
            Passed to the first layer and propagated as in Keras.

        Returns
        -------
        numpy.ndarray

        Notes
        -----
        Thread rules: a model without stateful layers may be called from any number of threads
        at once. Calls of a model with stateful layers are serialised (one at a time, each seeing
        and leaving every layer's state whole); calling its stateful layers directly from other
        threads at the same time is not supported.
        """
        plan = self._plan
        if (plan is not None and plan[0] == _layers._EPOCH[0] and not plan[2] and not training
                and type(x) is np.ndarray and x.shape[1:] == self._seen
                and x.dtype.kind in "fiu"):
            # a model without stateful layers, called again with inputs of a shape it has seen
            if plan[3] is not None and mask is None:
                return plan[3](x)  # one fused run: one C call
            out, m = x, mask
            for step in plan[1]:
                out, m = step(out, m)
            return out
        layers = self._layers
        if not layers:
            raise ValueError(f"model {self.name!r} has no layers, expected at least one")
        for layer in layers:
            if layer.stateful:
                with self._call_lock:
                    return self._call(x, training, mask)
        return self._call(x, training, mask)

    def _call(self, x: ArrayLike, training: Optional[bool], mask: Optional[ArrayLike]) -> np.ndarray:
        layers = self._layers
        if type(x) is not np.ndarray or x.dtype.kind not in "fiu":
            x = _core.as_real_array(x, "x")
        if x.shape[1:] != self._seen:
            self._check_input(x)
        if training:
            self._check_layers()
            out: Any = x
            for layer in layers:
                prev = out
                out = layer(out, training=training, mask=mask)
                mask = layer.compute_mask(prev, mask)
            return out
        plan = self._plan
        steps = plan[1] if plan is not None and plan[0] == _layers._EPOCH[0] else self._get_plan()
        out, m = x, mask
        for step in steps:
            out, m = step(out, m)
        return out

    def predict(self, x: ArrayLike, batch_size: Optional[int] = None,
                verbose: Union[int, str] = "auto") -> np.ndarray:
        """Run the model on ``x`` in batches of ``batch_size`` and concatenate the results.

        Parameters
        ----------
        x : array_like, shape (samples, ...)
        batch_size : int, optional
            Default 32 (Keras).  A model with stateful layers uses its fixed
            batch size (``samples`` must be a multiple of it); consecutive
            batches then continue each other's states, as in Keras.
        verbose : {"auto", 0, 1, 2}, default "auto"
            1: a Keras progress bar on stdout
            (``4/4 [==============================] - 0s 2ms/step``);
            2: one line at the end; 0: silent.  "auto": the bar of 1 for long
            jobs only, on a terminal (it appears once a call has run 0.5 s);
            Keras's "auto" always prints it.

        Returns
        -------
        numpy.ndarray
            Or, for a ``dask.array.Array`` ``x``, a lazy ``dask.array.Array`` computed chunk by
            chunk (:func:`crnn.dask.predict`; ``verbose`` is ignored there).
        """
        if isinstance(verbose, bool) or verbose not in (0, 1, 2, "auto"):
            raise ValueError(f"verbose: got {verbose!r}, expected 0, 1, 2 or 'auto'")
        if type(x) is not np.ndarray and hasattr(type(x), "__dask_graph__"):
            from .dask import predict as dask_predict  # a Dask collection: lazy, chunk by chunk
            return dask_predict(self, x, batch_size=batch_size)
        if batch_size is not None:
            batch_size = _layers._check_int(batch_size, "batch_size")
        xa = _core.as_real_array(x, "x")
        if xa.ndim < 1:
            raise ValueError(f"x: got shape {xa.shape}, expected (samples, ...)")
        n = xa.shape[0]
        stateful = [layer for layer in self._layers if layer.stateful]
        fixed = next((b for b in (l._stateful_batch() for l in stateful) if b is not None), None)
        if fixed is not None and batch_size is not None and batch_size != fixed:
            raise ValueError(f"batch_size: got {batch_size}, expected {fixed} (the fixed batch "
                             "size of the model's stateful layers)")
        batch_size = fixed or batch_size or 32
        if stateful and n > batch_size and n % batch_size:
            raise ValueError(f"x: got {n} samples, expected a multiple of the stateful batch "
                             f"size {batch_size}")
        starts = range(0, n, batch_size) if n else [0]
        # "auto": a bar only once the job has run _AUTO_BAR_DELAY, and only on a terminal (asked
        # then, not on every call: isatty is a system call, a tenth of a seed-sized predict)
        auto = verbose == "auto"
        start = time.perf_counter()
        bar = _ProgressBar(len(starts), verbose, start) if verbose and not auto else None
        # Each batch's output goes into the result as it comes, and is freed before the next
        # call: a large one leaves its memory to the next batch's (crnn's memory handler, see
        # crnn._core), and the batches' outputs are never all held at once.
        result = None
        for i, s in enumerate(starts):
            out = self(xa if len(starts) == 1 else xa[s:s + batch_size])
            if len(starts) == 1:
                result = out
            else:
                if result is None:
                    result = np.empty((n,) + out.shape[1:], out.dtype)
                result[s:s + batch_size] = out
            del out
            if auto and time.perf_counter() - start >= _AUTO_BAR_DELAY:
                auto = False
                if getattr(sys.stdout, "isatty", lambda: False)():
                    bar = _ProgressBar(len(starts), 1, start)
            if bar is not None:
                bar.update(i + 1)
        return result

    # ------------------------------------------------------------------ display
    def summary(self, line_length: Optional[int] = None,
                positions: Optional[Sequence[float]] = None,
                print_fn: Optional[Callable[[str], Any]] = None) -> None:
        """Print the layer table as Keras 2 does.

        Parameters
        ----------
        line_length : int, optional
            Total width (default 65).
        positions : list of float or int, optional
            Right edge of each column, as fractions of ``line_length`` or
            absolute (default ``[.45, .85, 1.]``).
        print_fn : callable, optional
            Called with each line (default :func:`print`).

        Raises
        ------
        ValueError
            The model is not built (input shape unknown).
        """
        if not self.built:
            raise ValueError(_NOT_BUILT)
        line_length = 65 if line_length is None else _layers._check_int(line_length, "line_length")
        positions = list(positions) if positions is not None else [0.45, 0.85, 1.0]
        if positions[-1] <= 1:
            positions = [int(line_length * p) for p in positions]
        emit = print if print_fn is None else print_fn
        shapes = self._propagate(self.input_shape, build=True)

        emit(f'Model: "{self.name}"')
        emit("_" * line_length)
        self._print_row(["Layer (type)", "Output Shape", "Param #"], positions, emit)
        emit("=" * line_length)
        for i, (layer, shape) in enumerate(zip(self._layers, shapes)):
            self._print_row([f"{layer.name} ({type(layer).__name__})", str(shape),
                             str(layer.count_params())], positions, emit)
            emit(("=" if i == len(self._layers) - 1 else "_") * line_length)
        total = self.count_params()
        trainable = sum(l.count_params() for l in self._layers if l.trainable)
        emit(f"Total params: {total:,}")
        emit(f"Trainable params: {trainable:,}")
        emit(f"Non-trainable params: {total - trainable:,}")
        emit("_" * line_length)

    @staticmethod
    def _print_row(fields: List[str], positions: List[int], emit: Callable[[str], Any]) -> None:
        # Keras 2 layout; a field too wide for its column wraps onto the next
        # line instead of running into its neighbour.
        left = list(fields)
        while True:
            line = ""
            for col, text in enumerate(left):
                start = positions[col - 1] if col else 0
                room = max(positions[col] - start - (1 if col < len(left) - 1 else 0), 1)
                line += text[:room]
                left[col] = text[room:]
                line += " " * (positions[col] - len(line))
            emit(line)
            if not any(left):
                return

    # ------------------------------------------------------------------ config, saving, pickling
    def get_config(self) -> Dict[str, Any]:
        """``{"name", "layers": [{"class_name", "config", "build_config"?}, ...]}`` (no weights).

        ``build_input_shape`` is included once :meth:`build` or a call fixed
        the input shape.
        """
        layers = ([] if self._input_layer is None else [self._input_layer]) + self._layers
        cfg: Dict[str, Any] = {"name": self.name,
                               "layers": [_layers.serialize(l) for l in layers]}
        if self._build_shape is not None:
            cfg["build_input_shape"] = list(self._build_shape)
        return cfg

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Sequential":
        """Recreate a model from :meth:`get_config` output (fresh weights).

        Raises
        ------
        ValueError
            A malformed config or an unknown layer class name.
        """
        if not isinstance(config, dict):
            raise ValueError(f"config: got {type(config).__name__}, expected a dict")
        entries = config.get("layers", [])
        if not isinstance(entries, list):
            raise ValueError(f"layers: got {type(entries).__name__}, expected a list")
        layers = [_layers.deserialize(entry) for entry in entries]
        model = cls(layers, name=config.get("name"))
        shape = config.get("build_input_shape")
        if shape is not None:
            if not isinstance(shape, (list, tuple)):
                raise ValueError(f"build_input_shape: got {shape!r}, expected a list")
            model.build(tuple(shape))
        return model

    def save(self, filepath: Any, overwrite: bool = True) -> None:
        """Save architecture and weights to one file (see :mod:`crnn.saving` for the format).

        Parameters
        ----------
        filepath : str, os.PathLike or binary file object
            Conventionally ending in ``.crnn``.
        overwrite : bool, default True
            False: raise FileExistsError if ``filepath`` exists.
        """
        from .saving import save_model
        save_model(self, filepath, overwrite=overwrite)

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        state["_plan"] = None
        state["_seen"] = None
        state.pop("_call_lock", None)
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._call_lock = threading.RLock()

    def __sizeof__(self) -> int:
        """Bytes held, weights and states included (what ``sys.getsizeof`` and Dask see)."""
        return object.__sizeof__(self) + sum(sys.getsizeof(layer) for layer in self._layers)

    def __repr__(self) -> str:
        return f"<Sequential name={self.name!r}, layers={[l.name for l in self._layers]}>"


def load_model(filepath: Any) -> Sequential:
    """Load a model written by :meth:`Sequential.save` (see :func:`crnn.saving.load_model`)."""
    from .saving import load_model as _load
    return _load(filepath)
