"""Functional API: one call runs a SimpleRNN layer or stack on the C core.

Same signatures and results as :mod:`crnn.reference` (plus ``dtype``). Each call builds a
compiled handle, which copies the weights; code that calls the same weights repeatedly should keep
a layer (:class:`crnn.SimpleRNN`) or a handle (``crnn._core.RNN``) instead.
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
    if isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__"):
        raise TypeError(f"weights: got {type(weights).__name__}, expected a list over layers")
    flat = [(f"weights[{i}][{d}]", a) for i, layer in enumerate(weights) if hasattr(layer, "__iter__")
            for d, w in enumerate(layer) if hasattr(w, "__iter__") for a in w]
    dt = _infer_dtype([("x", x)] + flat, dtype)
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
