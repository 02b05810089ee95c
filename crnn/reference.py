"""Pure NumPy reference implementation of SimpleRNN, LSTM and GRU inference.

This module is the oracle every crnn test compares against, and a documented fallback that
needs nothing but NumPy.  It is the textbook per-timestep loop of the seed tutorial::

    h_t = act(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)

generalised to batches, both directions, stacked layers, initial states, per-sequence lengths
and the gated cells, each written from its equations (Keras gate orders; ``ract`` is the
recurrent activation, ``*`` the element-wise product)::

    LSTM (gates i, f, c, o)     z = x_t @ W + h_{t-1} @ R + b
                                i, f, o = ract(z_i), ract(z_f), ract(z_o)
                                c_t = f * c_{t-1} + i * act(z_c);   h_t = o * act(c_t)
    GRU  (gates z, r, h)        z = ract(x_t @ W_z + b_z + h_{t-1} @ R_z + rb_z), r likewise
         reset_after=True       n = act(x_t @ W_h + b_h + r * (h_{t-1} @ R_h + rb_h))
         reset_after=False      n = act(x_t @ W_h + b_h + (r * h_{t-1}) @ R_h + rb_h)
                                h_t = z * h_{t-1} + (1 - z) * n

The functions compute in the floating dtype the inputs promote to (float32 stays float32), one
step at a time, with no attempt at speed.  :func:`simple_rnn`, :func:`lstm`, :func:`gru`,
:func:`simple_rnn_stack` and :func:`rnn_stack` have exactly the signatures of their
counterparts in :mod:`crnn` (less ``dtype``).

Weights use the Keras layout: ``kernel`` is ``(input_dim, G*units)``, ``recurrent_kernel``
``(units, G*units)`` and ``bias`` ``(G*units,)`` (G = 1, 4, 3 gates), so a step is
``x_t @ kernel`` (the tutorial's ``Wx @ x_t`` with ``kernel = Wx.T``); a Keras GRU with
``reset_after=True`` has a bias of shape ``(2, 3*units)``: the input bias, then the recurrent
bias ``rb``.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["ACTIVATIONS", "DIRECTIONS", "CELLS", "simple_rnn", "lstm", "gru",
           "simple_rnn_stack", "rnn_stack", "activation_fn"]

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


def _hard_sigmoid(z: np.ndarray) -> np.ndarray:
    # Keras 3: relu6(z + 3) / 6; np.minimum / np.maximum propagate NaN.
    return np.minimum(np.maximum(z + z.dtype.type(3), z.dtype.type(0)), z.dtype.type(6)) / \
        z.dtype.type(6)


ACTIVATIONS: dict = {
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, z.dtype.type(0)),  # np.maximum propagates NaN
    "sigmoid": _sigmoid,
    "hard_sigmoid": _hard_sigmoid,
    "linear": lambda z: z,
}
"""Activation name -> elementwise NumPy function (``None`` means ``"linear"``)."""

DIRECTIONS = ("forward", "reverse", "bidirectional")

CELLS = {"simple": 1, "lstm": 4, "gru": 3}
"""Cell kind -> number of gates G."""


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


def _cell_step(cell: str, xw: np.ndarray, h: np.ndarray, c: Optional[np.ndarray],
               R: np.ndarray, rb: Optional[np.ndarray], act: Callable, ract: Callable,
               reset_after: bool) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """One step for all rows: ``xw = x_t @ kernel + bias``; returns ``(h_t, c_t)``."""
    H = h.shape[1]
    if cell == "simple":
        z = xw + h @ R
        if rb is not None:
            z = z + rb
        return act(z), None
    if cell == "lstm":
        z = xw + h @ R
        if rb is not None:
            z = z + rb
        i, f, g, o = (z[:, k * H:(k + 1) * H] for k in range(4))
        c_t = ract(f) * c + ract(i) * act(g)
        return ract(o) * act(c_t), c_t
    # GRU
    xz, xr, xh = (xw[:, k * H:(k + 1) * H] for k in range(3))
    rbz, rbr, rbh = (None, None, None) if rb is None else (rb[k * H:(k + 1) * H] for k in range(3))

    def plus(a: np.ndarray, b: Optional[np.ndarray]) -> np.ndarray:
        return a if b is None else a + b

    z = ract(xz + plus(h @ R[:, :H], rbz))
    r = ract(xr + plus(h @ R[:, H:2 * H], rbr))
    if reset_after:
        n = act(xh + r * plus(h @ R[:, 2 * H:], rbh))
    else:
        n = act(xh + plus((r * h) @ R[:, 2 * H:], rbh))
    return z * h + (1 - z) * n, None


def _run_direction(x: np.ndarray, cell: str, w: Sequence[Optional[np.ndarray]],
                   h0: np.ndarray, c0: Optional[np.ndarray], act: Callable, ract: Callable,
                   reset_after: bool, reverse: bool, lengths: Optional[np.ndarray]):
    """One layer, one direction, outputs aligned with the input time.

    Returns ``(y, h_n, c_n)``: ``y[:, t]`` is the state after the step that read ``x[:, t]``
    (zero past a sequence's length), ``h_n`` / ``c_n`` the states after the last step each
    sequence took (``c_n`` None but for LSTM).
    """
    batch, steps, _ = x.shape
    kernel, R, b, rb = w
    units = R.shape[0]
    y = np.zeros((batch, steps, units), dtype=x.dtype)
    h = np.array(h0, dtype=x.dtype, copy=True)
    c = None if c0 is None else np.array(c0, dtype=x.dtype, copy=True)
    lens = np.full(batch, steps) if lengths is None else np.asarray(lengths)
    for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
        xw = x[:, t] @ kernel
        if b is not None:
            xw = xw + b
        h_t, c_t = _cell_step(cell, xw, h, c, R, rb, act, ract, reset_after)
        # A row takes part in step t iff t < its length (forward runs 0..len-1, reverse
        # len-1..0); the others keep their state and output zeros.
        inside = (t < lens)[:, None]
        h = np.where(inside, h_t, h)
        if c is not None:
            c = np.where(inside, c_t, c)
        y[:, t] = np.where(inside, h_t, 0)
    return y, h, c


def _per_layer(value: Any, n: int, name: str) -> list:
    vals = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(vals) != n:
        raise ValueError(f"{name}: got {len(vals)} entries, expected {n} (one per layer)")
    return vals


def rnn_stack(
    x: ArrayLike,
    weights: Sequence[Sequence[Sequence[Optional[ArrayLike]]]],
    *,
    cell: Union[str, Sequence[str]] = "simple",
    activation: Union[Optional[str], Sequence[Optional[str]]] = "tanh",
    recurrent_activation: Union[Optional[str], Sequence[Optional[str]]] = "sigmoid",
    reset_after: Union[bool, Sequence[bool]] = True,
    direction: Union[str, Sequence[str]] = "forward",
    initial_state: Optional[Sequence[Any]] = None,
    lengths: Optional[ArrayLike] = None,
    return_sequences: bool = True,
    return_state: bool = False,
):
    """Run a stack of recurrent layers of any cell kinds and directions.

    Parameters
    ----------
    x : array_like, shape (batch, timesteps, input_dim)
    weights : list over layers of lists over directions (1, or 2 for ``"bidirectional"``) of
        ``[kernel, recurrent_kernel, bias_or_None, recurrent_bias_or_None]`` (the biases may be
        left out). Layer ``l > 0`` reads the previous layer's output, whose width is
        ``units * n_directions``.
    cell : "simple", "lstm" or "gru", or one per layer
    activation, recurrent_activation : str or None, or one per layer
        ``"tanh"``, ``"relu"``, ``"sigmoid"``, ``"hard_sigmoid"`` or ``"linear"`` (``None``);
        ``recurrent_activation`` is that of the LSTM / GRU gates.
    reset_after : bool, or one per layer (GRU only; see the module docstring)
    direction : {"forward", "reverse", "bidirectional"}, or one per layer
        ``"reverse"`` reads the sequence from its last valid step to the first; outputs stay
        aligned with the input time index (as in PyTorch and ONNX).  ``"bidirectional"``
        concatenates forward then reverse.
    initial_state : list of one entry per (layer, direction), layer-major: None (zeros), a
        ``(batch, units)`` array, or for an LSTM layer ``[h, c]`` (either may be None).
    lengths : array_like of int, shape (batch,), optional
        Valid steps per sequence (``0 <= length <= timesteps``).  Outputs past a sequence's
        length are zero and its final state is the state after its last valid step, as with
        PyTorch packed sequences.
    return_sequences : bool
        True: output ``(batch, timesteps, n_dir * units)`` of the last layer.  False:
        ``(batch, n_dir * units)``, the final h of each direction of the last layer,
        concatenated (Keras ``Bidirectional`` semantics).
    return_state : bool
        Also return the final states, one entry per (layer, direction): h, or ``[h, c]`` for an
        LSTM layer.

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
    nlayers = len(weights)
    if nlayers == 0:
        raise ValueError("weights: got 0 layers, expected at least 1")
    cells = _per_layer(cell, nlayers, "cell")
    for cl in cells:
        if cl not in CELLS:
            raise ValueError(f"cell: got {cl!r}, expected one of {sorted(CELLS)}")
    acts = [activation_fn(a) for a in _per_layer(activation, nlayers, "activation")]
    racts = [activation_fn(a) for a in
             _per_layer(recurrent_activation, nlayers, "recurrent_activation")]
    resets = [bool(r) for r in _per_layer(reset_after, nlayers, "reset_after")]
    dirs = _per_layer(direction, nlayers, "direction")
    for dn in dirs:
        if dn not in DIRECTIONS:
            raise ValueError(f"direction: got {dn!r}, expected one of {DIRECTIONS}")

    flat = []
    for li, layer in enumerate(weights):
        ndir = 2 if dirs[li] == "bidirectional" else 1
        if len(layer) != ndir:
            raise ValueError(f"weights: got {len(layer)} directions in a layer, expected {ndir}")
        for w in layer:
            k, r = _as_float(w[0], "kernel"), _as_float(w[1], "recurrent_kernel")
            b = None if len(w) < 3 or w[2] is None else _as_float(w[2], "bias")
            rb = None if len(w) < 4 or w[3] is None else _as_float(w[3], "recurrent_bias")
            flat.append((k, r, b, rb))
    dt = _result_dtype(xa, *[a for w in flat for a in w if a is not None])
    xa = xa.astype(dt, copy=False)

    lens = None
    if lengths is not None:
        lens = np.asarray(lengths)
        if lens.size == 0 and lens.dtype.kind == "f":
            lens = lens.astype(np.int64)  # [] (batch 0) becomes float64 in NumPy, as in the core
        if lens.shape != (batch,) or lens.dtype.kind not in "iu":
            raise ValueError(f"lengths: got {lens.dtype} shape {lens.shape}, expected int ({batch},)")
        if batch and (lens.min() < 0 or lens.max() > steps):
            raise ValueError(f"lengths: got values outside [0, {steps}]")

    states_in = list(initial_state) if initial_state is not None else [None] * len(flat)
    if len(states_in) != len(flat):
        raise ValueError(f"initial_state: got {len(states_in)} entries, expected {len(flat)}")

    def state(s: Any, units: int, e: int, what: str) -> np.ndarray:
        if s is None:
            return np.zeros((batch, units), dt)
        a = _as_float(s, what).astype(dt)
        if a.shape != (batch, units):
            raise ValueError(f"{what}: got shape {a.shape}, expected ({batch}, {units})")
        return a

    inp = xa
    states: List[Any] = []
    e = 0
    for li in range(nlayers):
        ndir = 2 if dirs[li] == "bidirectional" else 1
        G = CELLS[cells[li]]
        outs = []
        for d in range(ndir):
            k, r, b, rb = flat[e]
            units = r.shape[0]
            if k.shape != (inp.shape[2], G * units) or r.shape != (units, G * units):
                raise ValueError(
                    f"weights[{li}][{d}]: got kernel {k.shape}, recurrent_kernel {r.shape}, "
                    f"expected ({inp.shape[2]}, {G * units}) and ({units}, {G * units})")
            for a, nm in ((b, "bias"), (rb, "recurrent_bias")):
                if a is not None and a.shape != (G * units,):
                    raise ValueError(f"weights[{li}][{d}]: got {nm} {a.shape}, expected "
                                     f"({G * units},)")
            s = states_in[e]
            if cells[li] == "lstm":
                if s is not None and (isinstance(s, np.ndarray) or len(s) != 2):
                    raise ValueError(f"initial_state[{e}]: expected [h, c] for an LSTM layer")
                h0 = state(None if s is None else s[0], units, e, f"initial_state[{e}][0]")
                c0 = state(None if s is None else s[1], units, e, f"initial_state[{e}][1]")
            else:
                h0, c0 = state(s, units, e, f"initial_state[{e}]"), None
            rev = dirs[li] == "reverse" or d == 1
            cast = [None if a is None else a.astype(dt) for a in (k, r, b, rb)]
            y, hn, cn = _run_direction(inp, cells[li], cast, h0, c0, acts[li], racts[li],
                                       resets[li], rev, lens)
            outs.append(y)
            states.append([hn, cn] if cells[li] == "lstm" else hn)
            e += 1
        inp = outs[0] if ndir == 1 else np.concatenate(outs, axis=2)
    if return_sequences:
        out = inp
    else:
        last = [s[0] if isinstance(s, list) else s for s in states[-len(weights[-1]):]]
        out = last[0] if len(last) == 1 else np.concatenate(last, axis=1)
    return (out, states) if return_state else out


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

    :func:`rnn_stack` with ``cell="simple"``; ``weights`` entries are ``[kernel,
    recurrent_kernel, bias_or_None]``, the states plain ``(batch, units)`` arrays.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: got {direction!r}, expected one of {DIRECTIONS}")
    return rnn_stack(x, weights, cell="simple", activation=activation, direction=direction,
                     initial_state=initial_state, lengths=lengths,
                     return_sequences=return_sequences, return_state=return_state)


def _one_layer(x: ArrayLike, cell: str, w: list, initial_state: Any, go_backwards: bool,
               return_sequences: bool, **kw: Any):
    out, states = rnn_stack(x, [[w]], cell=cell, direction="reverse" if go_backwards else "forward",
                            initial_state=None if initial_state is None else [initial_state],
                            return_sequences=return_sequences, return_state=True, **kw)
    if return_sequences and go_backwards:
        out = out[:, ::-1]  # Keras: the sequence in processing (reversed) order
    return out, states[0]


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
    activation : "tanh", "relu", "sigmoid", "hard_sigmoid", "linear" or None
    go_backwards : process the sequence backwards; as in Keras, the returned
        sequence is in processing (reversed) order.
    return_sequences : return every step ``(batch, timesteps, units)``
        instead of the last ``(batch, units)``.
    return_state : return ``[output, final_state]``.
    """
    out, h = _one_layer(x, "simple", [kernel, recurrent_kernel, bias], initial_state,
                        go_backwards, return_sequences, activation=activation)
    return [out, h] if return_state else out


def lstm(
    x: ArrayLike,
    kernel: ArrayLike,
    recurrent_kernel: ArrayLike,
    bias: Optional[ArrayLike] = None,
    initial_state: Optional[Sequence[Optional[ArrayLike]]] = None,
    *,
    activation: Optional[str] = "tanh",
    recurrent_activation: Optional[str] = "sigmoid",
    go_backwards: bool = False,
    return_sequences: bool = False,
    return_state: bool = False,
):
    """One Keras ``LSTM`` layer, functionally.

    Parameters
    ----------
    x : array_like, shape (batch, timesteps, input_dim)
    kernel : (input_dim, 4*units); recurrent_kernel : (units, 4*units);
    bias : (4*units,) or None; gates i, f, c, o (Keras order)
    initial_state : ``[h0, c0]``, each (batch, units) or None (zeros)
    activation, recurrent_activation : see :data:`ACTIVATIONS`
    go_backwards, return_sequences : as :func:`simple_rnn`
    return_state : return ``[output, h, c]``.
    """
    out, (h, c) = _one_layer(x, "lstm", [kernel, recurrent_kernel, bias], initial_state,
                             go_backwards, return_sequences, activation=activation,
                             recurrent_activation=recurrent_activation)
    return [out, h, c] if return_state else out


def gru(
    x: ArrayLike,
    kernel: ArrayLike,
    recurrent_kernel: ArrayLike,
    bias: Optional[ArrayLike] = None,
    initial_state: Optional[ArrayLike] = None,
    *,
    activation: Optional[str] = "tanh",
    recurrent_activation: Optional[str] = "sigmoid",
    reset_after: bool = True,
    go_backwards: bool = False,
    return_sequences: bool = False,
    return_state: bool = False,
):
    """One Keras ``GRU`` layer, functionally.

    Parameters
    ----------
    x : array_like, shape (batch, timesteps, input_dim)
    kernel : (input_dim, 3*units); recurrent_kernel : (units, 3*units); gates z, r, h
    bias : None, ``(2, 3*units)`` (input bias, recurrent bias: Keras with ``reset_after``) or
        ``(3*units,)``
    initial_state : (batch, units) or None (zeros)
    reset_after : where the reset gate applies (see the module docstring)
    return_state : return ``[output, h]``.
    """
    b = rb = None
    if bias is not None:
        ba = _as_float(bias, "bias")
        b, rb = (ba[0], ba[1]) if ba.ndim == 2 else (ba, None)
    out, h = _one_layer(x, "gru", [kernel, recurrent_kernel, b, rb], initial_state,
                        go_backwards, return_sequences, activation=activation,
                        recurrent_activation=recurrent_activation, reset_after=reset_after)
    return [out, h] if return_state else out
