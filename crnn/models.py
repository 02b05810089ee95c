"""Keras-like models: :class:`Sequential`, a linear stack of crnn layers.

Mirrors ``tensorflow.keras.models.Sequential`` for inference::

    from crnn.layers import SimpleRNN
    from crnn.models import Sequential

    model = Sequential()
    model.add(SimpleRNN(8, input_length=10, input_dim=5, return_sequences=True))
    model.add(SimpleRNN(8, return_sequences=True))
    model.summary()
    y = model.predict(x)          # x: (batch, 10, 5) -> y: (batch, 10, 8)

Runs of stacked SimpleRNN layers execute in one call into the C core (one
compiled handle for the whole run, no Python between layers).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from . import layers as _layers
from .layers import Layer, SimpleRNN, unique_name

__all__ = ["Sequential"]

ArrayLike = Any
Shape = Tuple[Optional[int], ...]

_NOT_BUILT = ("This model has not yet been built. Build the model first by calling `build()` or "
              "by calling the model on a batch of data, or specify an `input_shape` argument in "
              "the first layer(s) for automatic build.")


def _num_weights(layer: Layer) -> int:
    return 3 if getattr(layer, "use_bias", True) else 2


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
    ``batch_input_shape`` / ``input_dim``, from :meth:`build`, or from the
    first call.  The batch size shown in shapes is None unless fixed by
    ``batch_input_shape``.

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
        self._build_shape: Optional[Shape] = None  # set by build() or the first call
        self._plan: Optional[Tuple[tuple, list]] = None  # (key, steps) of the fused call plan
        if layers is not None:
            if isinstance(layers, Layer) or not isinstance(layers, (list, tuple)):
                raise TypeError(f"layers: got {type(layers).__name__}, expected a list of layers")
            for layer in layers:
                self.add(layer)

    # ------------------------------------------------------------------ structure
    @property
    def layers(self) -> List[Layer]:
        """The layers, in order (a new list; the layers themselves are shared)."""
        return list(self._layers)

    def add(self, layer: Layer, **overrides: Any) -> None:
        """Append ``layer`` to the stack.

        Parameters
        ----------
        layer : Layer
            A crnn layer; its input width must match the previous layer's
            output (a layer that returns 2-D output cannot feed a SimpleRNN).
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
            Duplicate layer name, a layer returning states (``return_state``),
            or incompatible shapes.
        """
        if not isinstance(layer, Layer):
            raise TypeError(f"layer: got {layer!r} of type {type(layer).__name__}, "
                            "expected an instance of crnn.layers.Layer")
        if any(layer is other for other in self._layers):
            raise ValueError(f"layer: got {layer.name!r}, which is already in model {self.name!r}")
        if any(layer.name == other.name for other in self._layers):
            raise ValueError(f"layer: got name {layer.name!r}, expected a name unique in model "
                             f"{self.name!r} (all layers of a Sequential model need unique names)")
        bad = [k for k in overrides if k not in layer._overridable]
        if bad:
            raise TypeError(f"add: got unexpected keyword argument(s) {sorted(bad)}, expected "
                            f"constructor arguments of {type(layer).__name__}: "
                            f"{sorted(layer._overridable)}")
        if overrides.get("return_state", getattr(layer, "return_state", False)):
            raise ValueError(f"layer: got {layer.name!r} with return_state=True, expected a layer "
                             "with a single output (a Sequential model passes one array along)")
        if self._layers:
            prev = self._layers[-1]
            if isinstance(layer, SimpleRNN) and not getattr(prev, "return_sequences", True):
                raise ValueError(
                    f"layer: {layer.name!r} expects 3-D input (batch, timesteps, input_dim), but the "
                    f"previous layer {prev.name!r} outputs 2-D (batch, units) because it has "
                    f"return_sequences=False; create {prev.name!r} with return_sequences=True")
        before = {k: layer._config_values()[k] for k in overrides} if overrides else {}
        if overrides:
            layer._configure(**overrides)
        self._layers.append(layer)
        try:
            shape = self._input_shape()
            if shape is not None:
                self._propagate(shape, build=True)
            else:
                self._propagate((None, None, None), build=False)
        except Exception:
            self._layers.pop()
            if before:
                try:
                    layer._configure(**before)
                except (TypeError, ValueError):  # pragma: no cover - best effort
                    pass
            raise
        self._plan = None

    def pop(self) -> Layer:
        """Remove and return the last layer (Keras ``Sequential.pop``)."""
        if not self._layers:
            raise TypeError("There are no layers in the model.")
        layer = self._layers.pop()
        if not self._layers:
            self._build_shape = None
        self._plan = None
        return layer

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
        """The model's input shape if known with its input_dim, else None."""
        if not self._layers:
            return None
        if self._build_shape is not None:
            return self._build_shape
        bis = getattr(self._layers[0], "batch_input_shape", None)
        if bis is not None and bis[-1] is not None:
            return tuple(bis)
        return None

    def _propagate(self, input_shape: Shape, *, build: bool) -> List[Any]:
        """Output shape of every layer for ``input_shape``, building layers if ``build``."""
        shapes: List[Any] = []
        shape: Any = tuple(input_shape)
        for i, layer in enumerate(self._layers):
            if not isinstance(shape, tuple) or len(shape) != 3:
                prev = self._layers[i - 1]
                raise ValueError(f"layer: {layer.name!r} expects 3-D input (batch, timesteps, "
                                 f"input_dim), but {prev.name!r} outputs {shape}")
            dim = getattr(layer, "input_dim", None)
            if dim is not None and shape[2] is not None and shape[2] != dim:
                src = f"layer {self._layers[i - 1].name!r}" if i else "the model input"
                raise ValueError(f"layer: {layer.name!r} has input_dim {dim}, but its input from "
                                 f"{src} has shape {shape}, expected (..., {dim})")
            if build and not layer.built:
                layer.build(shape)
            shape = layer.compute_output_shape(shape)
            shapes.append(shape)
        return shapes

    @property
    def built(self) -> bool:
        """True once the input shape is known and every layer has its weights."""
        return self._input_shape() is not None and all(l.built for l in self._layers)

    def build(self, input_shape: Optional[Sequence[Optional[int]]] = None) -> None:
        """Build every layer for inputs of shape ``(batch, timesteps, input_dim)``.

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
        self._build_shape = shape if input_shape is not None else self._build_shape

    @property
    def input_shape(self) -> Shape:
        """``(batch, timesteps, input_dim)``, None where unknown; AttributeError before build."""
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
        """Output shape for inputs of ``input_shape`` (``(batch, timesteps, input_dim)``)."""
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
        counts = [_num_weights(layer) for layer in self._layers]
        if len(weights) != sum(counts):
            raise ValueError(f"set_weights: got {len(weights)} arrays, expected {sum(counts)} "
                             f"for model {self.name!r}")
        prepared = []
        pos = 0
        width: Optional[int] = None
        for layer, n in zip(self._layers, counts):
            arrs = layer._prepare_weights(list(weights[pos:pos + n]))
            if width is not None and arrs[0].shape[0] != width:
                raise ValueError(f"set_weights: got kernel shape {arrs[0].shape} for layer "
                                 f"{layer.name!r}, expected ({width}, {layer.units})")
            width = layer.units
            prepared.append(arrs)
            pos += n
        for layer, arrs in zip(self._layers, prepared):
            layer._store_weights(*arrs)
        self._plan = None

    def reset_states(self) -> None:
        """Zero the states of every stateful layer."""
        for layer in self._layers:
            if layer.stateful:
                layer.reset_states()

    # ------------------------------------------------------------------ inference
    def _get_plan(self) -> list:
        """Steps of a call: single layers, and runs of SimpleRNN layers fused into one handle.

        A run is consecutive stateless, forward, single-output SimpleRNN
        layers of one dtype, each but the last returning sequences; it runs
        as one ``crnn._core.RNN`` stack call (identical math, no Python
        between layers).  Cached per layer weight version.
        """
        key = tuple((id(layer), getattr(layer, "_version", 0)) for layer in self._layers)
        plan = self._plan
        if plan is not None and plan[0] == key:
            return plan[1]
        steps: list = []
        run: List[SimpleRNN] = []

        def flush() -> None:
            if len(run) > 1:
                handle = _core.RNN([[list(l._weights)] for l in run],
                                   activation=[l.activation or "linear" for l in run],
                                   direction="forward", dtype=run[0].dtype)
                steps.append(("stack", handle, list(run)))
            elif run:
                steps.append(("layer", run[0]))
            run.clear()

        for layer in self._layers:
            fusable = (type(layer) is SimpleRNN and layer.built and not layer.stateful
                       and not layer.go_backwards and not layer.return_state)
            if run and not (fusable and run[-1].return_sequences and layer.dtype == run[0].dtype):
                flush()
            if fusable:
                run.append(layer)
            else:
                steps.append(("layer", layer))
        flush()
        self._plan = (key, steps)
        return steps

    def __call__(self, x: ArrayLike, training: Optional[bool] = None,
                 mask: Optional[ArrayLike] = None) -> np.ndarray:
        """Run the stack on ``x`` of shape ``(batch, timesteps, input_dim)``.

        Parameters
        ----------
        x : array_like
        training : bool, optional
            Accepted for Keras compatibility (inference only).
        mask : array_like of bool ``(batch, timesteps)``, optional
            Passed to the first layer, and on to the next while layers
            return sequences (Keras mask propagation).

        Returns
        -------
        numpy.ndarray
        """
        if not self._layers:
            raise ValueError(f"model {self.name!r} has no layers, expected at least one")
        xa = _core.as_real_array(x, "x")
        if xa.ndim != 3 or xa.shape[1] == 0:
            raise ValueError(f"x: got shape {xa.shape}, expected (batch, timesteps, input_dim) "
                             "with timesteps >= 1")
        self._note_input(xa.shape)
        if training or mask is not None or xa.shape[0] == 0:
            out: Any = xa
            for layer in self._layers:
                out = layer(out, training=training, mask=mask)
                if not getattr(layer, "return_sequences", False):
                    mask = None
            return out
        out = xa
        for step in self._get_plan():
            if step[0] == "layer":
                out = step[1](out)
            else:
                run = step[2]
                out = step[1].forward(run[0]._check_x(out),
                                      return_sequences=run[-1].return_sequences)
        return out

    def _note_input(self, shape: Tuple[int, ...]) -> None:
        """Build on the first call (batch None, as in Keras); relax timesteps that vary."""
        known = self._input_shape()
        if known is None:
            self.build((None,) + tuple(shape[1:]))
        elif self._build_shape is not None and known[1] is not None and known[1] != shape[1]:
            self._build_shape = (known[0], None, known[2])

    def predict(self, x: ArrayLike, batch_size: Optional[int] = None,
                verbose: Union[int, str] = 0) -> np.ndarray:
        """Run the model on ``x`` in batches of ``batch_size`` and concatenate the results.

        Parameters
        ----------
        x : array_like, shape (samples, timesteps, input_dim)
        batch_size : int, optional
            Default 32.  A model with stateful layers uses its fixed batch
            size (``samples`` must be a multiple of it); consecutive batches
            then continue each other's states, as in Keras.
        verbose : {0, 1, 2, "auto"}
            Accepted for Keras compatibility; crnn prints no progress bar.

        Returns
        -------
        numpy.ndarray
        """
        if verbose not in (0, 1, 2, "auto") or isinstance(verbose, bool):
            raise ValueError(f"verbose: got {verbose!r}, expected 0, 1, 2 or 'auto'")
        if batch_size is not None:
            batch_size = _layers._check_int(batch_size, "batch_size")
        xa = _core.as_real_array(x, "x")
        if xa.ndim != 3:
            raise ValueError(f"x: got shape {xa.shape}, expected (samples, timesteps, input_dim)")
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
        if n <= batch_size:
            return self(xa)
        return np.concatenate([self(xa[i:i + batch_size]) for i in range(0, n, batch_size)])

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
        emit(f"Total params: {total:,}")
        emit(f"Trainable params: {total:,}")
        emit("Non-trainable params: 0")
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

    # ------------------------------------------------------------------ config
    def get_config(self) -> Dict[str, Any]:
        """``{"name": ..., "layers": [{"class_name": ..., "config": ...}, ...]}`` (no weights)."""
        return {"name": self.name,
                "layers": [{"class_name": type(l).__name__, "config": l.get_config()}
                           for l in self._layers]}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Sequential":
        """Recreate a model from :meth:`get_config` output (fresh weights)."""
        layers = []
        for entry in config.get("layers", []):
            klass = getattr(_layers, entry["class_name"], None)
            if not (isinstance(klass, type) and issubclass(klass, Layer)):
                raise ValueError(f"class_name: got {entry['class_name']!r}, expected a crnn layer")
            layers.append(klass.from_config(entry["config"]))
        return cls(layers, name=config.get("name"))

    def __repr__(self) -> str:
        return f"<Sequential name={self.name!r}, layers={[l.name for l in self._layers]}>"
