"""Pure NumPy reference implementation of SimpleRNN inference.

This module is the oracle every crnn test compares against, and a documented
fallback that needs nothing but NumPy.  It is the textbook per-timestep loop
of the seed tutorial::

    h_t = act(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)

generalised to batches, both directions, stacked layers, initial states and
per-sequence lengths.  The functions here have exactly the signatures of
:func:`crnn.simple_rnn` and :func:`crnn.simple_rnn_stack`; they compute in the
floating dtype the inputs promote to (float32 stays float32), one step at a
time, with no attempt at speed.

Weights use the Keras layout: ``kernel`` is ``(input_dim, units)``,
``recurrent_kernel`` is ``(units, units)`` and ``bias`` is ``(units,)``, so a
step is ``x_t @ kernel`` (the tutorial's ``Wx @ x_t`` with ``kernel = Wx.T``).
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["ACTIVATIONS", "DIRECTIONS", "simple_rnn", "simple_rnn_stack", "activation_fn"]

ArrayLike = Any


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # Numerically safe logistic: never overflows exp() for large |z|.
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    # NaN fails both comparisons above and lands in the ~pos branch: exp(NaN)
    # is NaN, so it propagates, as in every other activation.
    return out


ACTIVATIONS: dict = {
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, z.dtype.type(0)),  # np.maximum propagates NaN
    "sigmoid": _sigmoid,
    "linear": lambda z: z,
}
"""Activation name -> elementwise NumPy function (``None`` means ``"linear"``)."""

DIRECTIONS = ("forward", "reverse", "bidirectional")


def activation_fn(name: Optional[str]) -> Callable[[np.ndarray], np.ndarray]:
    """Return the NumPy function for activation ``name`` (``None`` is linear)."""
    key = "linear" if name is None else name
    if not isinstance(key, str) or key not in ACTIVATIONS:
        raise ValueError(
            f"activation: got {name!r}, expected one of {sorted(ACTIVATIONS)} or None"
        )
    return ACTIVATIONS[key]


def _as_float(a: ArrayLike, name: str) -> np.ndarray:
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{name}: got an object NumPy cannot turn into an array ({err})") from None
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: got dtype {arr.dtype}, expected a real numeric array")
    return arr


def _result_dtype(*arrays: np.ndarray) -> np.dtype:
    dt = np.result_type(*[a.dtype for a in arrays if a is not None])
    if dt.kind != "f":
        dt = np.dtype(np.float64)
    return dt


def _run_direction(x: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: Optional[np.ndarray],
                   h0: np.ndarray, act: Callable, reverse: bool,
                   lengths: Optional[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """One layer, one direction, aligned outputs.

    Returns ``(y, h_n)``: ``y[:, t]`` is the state after the step that read
    ``x[:, t]`` (zero past a sequence's length), ``h_n`` the state after the
    last step each sequence took.
    """
    batch, steps, _ = x.shape
    units = wh.shape[0]
    y = np.zeros((batch, steps, units), dtype=x.dtype)
    h_n = np.array(h0, dtype=x.dtype, copy=True)
    for i in range(batch):
        n = steps if lengths is None else int(lengths[i])
        order = range(n - 1, -1, -1) if reverse else range(n)
        h = h_n[i]
        for t in order:
            z = x[i, t] @ wx + h @ wh
            if b is not None:
                z = z + b
            h = act(z)
            y[i, t] = h
        h_n[i] = h
    return y, h_n


def simple_rnn_stack(
    x: ArrayLike,
    weights: Sequence[Sequence[Sequence[Optional[ArrayLike]]]],
    *,
    activation: Union[Optional[str], Sequence[Optional[str]]] = "tanh",
    direction: str = "forward",
    initial_state: Optional[Sequence[Optional[ArrayLike]]] = None,
    lengths: Optional[ArrayLike] = None,
    return_sequences: bool = True,
    return_state: bool = False,
):
    """Run a stack of SimpleRNN layers, every layer in the same direction mode.

    Parameters
    ----------
    x : array_like, shape (batch, timesteps, input_dim)
    weights : list over layers of lists over directions (1, or 2 for
        ``"bidirectional"``) of ``[kernel, recurrent_kernel, bias_or_None]``.
        Layer ``l > 0`` reads the previous layer's output, whose width is
        ``units * n_directions``.
    activation : str or None, or one per layer
        ``"tanh"``, ``"relu"``, ``"sigmoid"`` or ``"linear"`` (``None``).
    direction : {"forward", "reverse", "bidirectional"}
        ``"reverse"`` reads the sequence from its last valid step to the
        first; outputs stay aligned with the input time index (as in PyTorch
        and ONNX).  ``"bidirectional"`` concatenates forward then reverse.
    initial_state : list of ``n_layers * n_directions`` arrays ``(batch, units)``
        (entries may be ``None`` for zeros), ordered layer-major.
    lengths : array_like of int, shape (batch,), optional
        Valid steps per sequence (``0 <= length <= timesteps``).  Outputs past
        a sequence's length are zero and its final state is the state after
        its last valid step, as with PyTorch packed sequences.
    return_sequences : bool
        True: output ``(batch, timesteps, n_dir * units)`` of the last layer.
        False: ``(batch, n_dir * units)``, the final state of each direction
        of the last layer, concatenated (Keras ``Bidirectional`` semantics).
    return_state : bool
        Also return the list of final states, one ``(batch, units)`` array per
        layer and direction, layer-major.

    Returns
    -------
    output, or ``(output, states)`` when ``return_state``.
    """
    xa = _as_float(x, "x")
    if xa.ndim != 3:
        raise ValueError(f"x: got shape {xa.shape}, expected (batch, timesteps, input_dim)")
    batch, steps, _ = xa.shape
    if steps == 0:
        raise ValueError("x: got 0 timesteps, expected at least 1")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: got {direction!r}, expected one of {DIRECTIONS}")
    ndir = 2 if direction == "bidirectional" else 1
    nlayers = len(weights)
    if nlayers == 0:
        raise ValueError("weights: got 0 layers, expected at least 1")
    acts = list(activation) if isinstance(activation, (list, tuple)) else [activation] * nlayers
    if len(acts) != nlayers:
        raise ValueError(f"activation: got {len(acts)} entries, expected {nlayers}")
    fns = [activation_fn(a) for a in acts]

    flat = []
    for layer in weights:
        if len(layer) != ndir:
            raise ValueError(f"weights: got {len(layer)} directions in a layer, expected {ndir}")
        for w in layer:
            k, r = _as_float(w[0], "kernel"), _as_float(w[1], "recurrent_kernel")
            b = None if len(w) < 3 or w[2] is None else _as_float(w[2], "bias")
            flat.append((k, r, b))
    dt = _result_dtype(xa, *[a for w in flat for a in w if a is not None])
    xa = xa.astype(dt, copy=False)

    lens = None
    if lengths is not None:
        lens = np.asarray(lengths)
        if lens.shape != (batch,) or lens.dtype.kind not in "iu":
            raise ValueError(f"lengths: got {lens.dtype} shape {lens.shape}, expected int ({batch},)")
        if batch and (lens.min() < 0 or lens.max() > steps):
            raise ValueError(f"lengths: got values outside [0, {steps}]")

    states_in = list(initial_state) if initial_state is not None else [None] * len(flat)
    if len(states_in) != len(flat):
        raise ValueError(f"initial_state: got {len(states_in)} arrays, expected {len(flat)}")

    inp = xa
    states: List[np.ndarray] = []
    outs_last: List[np.ndarray] = []
    for li in range(nlayers):
        outs = []
        for d in range(ndir):
            k, r, b = flat[li * ndir + d]
            units = r.shape[0]
            if k.shape != (inp.shape[2], units) or r.shape != (units, units):
                raise ValueError(
                    f"weights[{li}][{d}]: got kernel {k.shape}, recurrent_kernel {r.shape}, "
                    f"expected ({inp.shape[2]}, {units}) and ({units}, {units})")
            if b is not None and b.shape != (units,):
                raise ValueError(f"weights[{li}][{d}]: got bias {b.shape}, expected ({units},)")
            h0 = states_in[li * ndir + d]
            h0 = np.zeros((batch, units), dt) if h0 is None else _as_float(h0, "initial_state").astype(dt)
            if h0.shape != (batch, units):
                raise ValueError(f"initial_state[{li * ndir + d}]: got shape {h0.shape}, expected ({batch}, {units})")
            rev = direction == "reverse" or d == 1
            y, hn = _run_direction(inp, k.astype(dt), r.astype(dt),
                                   None if b is None else b.astype(dt), h0, fns[li], rev, lens)
            outs.append(y)
            states.append(hn)
        inp = outs[0] if ndir == 1 else np.concatenate(outs, axis=2)
        outs_last = states[-ndir:]
    if return_sequences:
        out = inp
    else:
        out = outs_last[0] if ndir == 1 else np.concatenate(outs_last, axis=1)
    return (out, states) if return_state else out


def simple_rnn(
    x: ArrayLike,
    kernel: ArrayLike,
    recurrent_kernel: ArrayLike,
    bias: Optional[ArrayLike] = None,
    initial_state: Optional[ArrayLike] = None,
    *,
    activation: Optional[str] = "tanh",
    go_backwards: bool = False,
    return_sequences: bool = False,
    return_state: bool = False,
):
    """One Keras ``SimpleRNN`` layer, functionally.

    Parameters
    ----------
    x : array_like, shape (batch, timesteps, input_dim)
    kernel : (input_dim, units); recurrent_kernel : (units, units); bias : (units,) or None
    initial_state : (batch, units) or None (zeros)
    activation : "tanh", "relu", "sigmoid", "linear" or None
    go_backwards : process the sequence backwards; as in Keras, the returned
        sequence is in processing (reversed) order.
    return_sequences : return every step ``(batch, timesteps, units)``
        instead of the last ``(batch, units)``.
    return_state : return ``[output, final_state]``.
    """
    direction = "reverse" if go_backwards else "forward"
    out, states = simple_rnn_stack(
        x, [[[kernel, recurrent_kernel, bias]]], activation=activation, direction=direction,
        initial_state=None if initial_state is None else [initial_state],
        return_sequences=return_sequences, return_state=True)
    if return_sequences and go_backwards:
        out = out[:, ::-1]
    return [out, states[0]] if return_state else out
