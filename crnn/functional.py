"""Functional API: one call runs a SimpleRNN, LSTM or GRU layer, or a stack of them, on the C core.

Same signatures and results as :mod:`crnn.reference` (plus ``dtype``). Each call builds a
compiled handle, which copies the weights; code that calls the same weights repeatedly should keep
a layer (:class:`crnn.SimpleRNN`, :class:`crnn.LSTM`, :class:`crnn.GRU`) or a handle
(``crnn._core.RNN``) instead.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from crnn import _core

ArrayLike = Any


def _infer_dtype(arrays: Sequence[Tuple[str, Any]], dtype: Any) -> np.dtype:
    """float64 when every floating input is float64, float32 otherwise (integers don't vote)."""
    if dtype is not None:
        return _core.as_dtype(dtype)
    kinds = [a.dtype if isinstance(a, np.ndarray) else _core.as_real_array(a, name).dtype
             for name, a in arrays if a is not None]
    floats = [dt for dt in kinds if dt.kind == "f"]
    if floats and all(dt == np.float64 for dt in floats):
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def _flat_weights(weights: Any) -> List[Tuple[str, Any]]:
    if isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__"):
        raise TypeError(f"weights: got {type(weights).__name__}, expected a list over layers")
    return [(f"weights[{i}][{d}]", a) for i, layer in enumerate(weights)
            if hasattr(layer, "__iter__") for d, w in enumerate(layer) if hasattr(w, "__iter__")
            for a in w]


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
    dtype: Any = None,
):
    """Run a stack of recurrent layers of any cell kinds (e.g. LSTM -> GRU -> SimpleRNN) in one
    C call.

    See :func:`crnn.reference.rnn_stack` for the parameters and results; ``dtype``
    (``"float32"``/``"float64"``, default: float64 when every floating input is float64, else
    float32) selects the precision the core computes in.
    """
    dt = _infer_dtype([("x", x)] + _flat_weights(weights), dtype)
    rnn = _core.RNN(weights, cell=cell, activation=activation,
                    recurrent_activation=recurrent_activation, reset_after=reset_after,
                    direction=direction, dtype=dt)
    return rnn.forward(x, initial_state=initial_state, lengths=lengths,
                       return_sequences=return_sequences, return_state=return_state)


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
    dtype: Any = None,
):
    """Run a stack of SimpleRNN layers in one C call.

    See :func:`crnn.reference.simple_rnn_stack` for the parameters and results; ``dtype``
    (``"float32"``/``"float64"``, default: float64 when every floating input is float64, else
    float32) selects the precision the core computes in.
    """
    dt = _infer_dtype([("x", x)] + _flat_weights(weights), dtype)
    rnn = _core.RNN(weights, activation=activation, direction=direction, dtype=dt)
    return rnn.forward(x, initial_state=initial_state, lengths=lengths,
                       return_sequences=return_sequences, return_state=return_state)


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
    dtype: Any = None,
) -> Union[np.ndarray, List[np.ndarray]]:
    """One Keras ``SimpleRNN`` layer, functionally, on the C core.

    Parameters
    ----------
    x : array_like, shape (batch, timesteps, input_dim)
    kernel : (input_dim, units)
    recurrent_kernel : (units, units)
    bias : (units,) or None
    initial_state : (batch, units) or None (zeros)
    activation : "tanh", "relu", "sigmoid", "linear" or None
    go_backwards : process the sequence backwards; as in Keras, the returned sequence is in
        processing (reversed) order.
    return_sequences : every step ``(batch, timesteps, units)`` instead of the last ``(batch, units)``
    return_state : return ``[output, final_state]``
    dtype : "float32" or "float64" (default: inferred as in :func:`simple_rnn_stack`)

    Returns
    -------
    output, or ``[output, final_state]`` when ``return_state``.
    """
    out, states = simple_rnn_stack(
        x, [[[kernel, recurrent_kernel, bias]]], activation=activation,
        direction="reverse" if go_backwards else "forward",
        initial_state=None if initial_state is None else [initial_state],
        return_sequences=return_sequences, return_state=True, dtype=dtype)
    if return_sequences and go_backwards:
        out = out[:, ::-1]
    return [out, states[0]] if return_state else out


def _one_layer(x: ArrayLike, cell: str, w: list, initial_state: Any, go_backwards: bool,
               return_sequences: bool, dtype: Any, **kw: Any):
    out, states = rnn_stack(x, [[w]], cell=cell, direction="reverse" if go_backwards else "forward",
                            initial_state=None if initial_state is None else [initial_state],
                            return_sequences=return_sequences, return_state=True, dtype=dtype, **kw)
    if return_sequences and go_backwards:
        out = out[:, ::-1]
    return out, states[0]


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
    dtype: Any = None,
) -> Union[np.ndarray, List[np.ndarray]]:
    """One Keras ``LSTM`` layer, functionally, on the C core.

    Parameters
    ----------
    x : array_like, shape (batch, timesteps, input_dim)
    kernel : (input_dim, 4*units); recurrent_kernel : (units, 4*units); bias : (4*units,) or None
        Gates i, f, c, o (Keras order).
    initial_state : ``[h0, c0]``, each (batch, units) or None (zeros)
    activation, recurrent_activation : "tanh", "relu", "sigmoid", "hard_sigmoid", "linear"
    go_backwards, return_sequences : as :func:`simple_rnn`
    return_state : return ``[output, h, c]``
    dtype : "float32" or "float64" (default: inferred as in :func:`rnn_stack`)
    """
    if initial_state is not None and (isinstance(initial_state, np.ndarray)
                                      or not isinstance(initial_state, (list, tuple))):
        raise ValueError(f"initial_state: got {type(initial_state).__name__}, expected [h0, c0]")
    out, (h, c) = _one_layer(x, "lstm", [kernel, recurrent_kernel, bias],
                             None if initial_state is None else list(initial_state),
                             go_backwards, return_sequences, dtype, activation=activation,
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
    dtype: Any = None,
) -> Union[np.ndarray, List[np.ndarray]]:
    """One Keras ``GRU`` layer, functionally, on the C core.

    Parameters
    ----------
    x : array_like, shape (batch, timesteps, input_dim)
    kernel : (input_dim, 3*units); recurrent_kernel : (units, 3*units); gates z, r, h
    bias : None, ``(2, 3*units)`` (input and recurrent bias, Keras with ``reset_after``) or
        ``(3*units,)``
    initial_state : (batch, units) or None (zeros)
    reset_after : where the reset gate applies (see :func:`crnn.reference.gru`)
    return_state : return ``[output, h]``
    dtype : "float32" or "float64" (default: inferred as in :func:`rnn_stack`)
    """
    b = rb = None
    if bias is not None:
        ba = _core.as_real_array(bias, "bias")
        if ba.ndim == 2 and ba.shape[0] == 2:
            b, rb = ba[0], ba[1]
        else:
            b = ba
    out, h = _one_layer(x, "gru", [kernel, recurrent_kernel, b, rb], initial_state, go_backwards,
                        return_sequences, dtype, activation=activation,
                        recurrent_activation=recurrent_activation, reset_after=reset_after)
    return [out, h] if return_state else out
