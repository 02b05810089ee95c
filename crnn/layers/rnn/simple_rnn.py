"""Keras ``SimpleRNN``: the fully-connected recurrent layer (one gate)."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from ..arguments import ArrayLike, _reject_unknown_kwargs
from .cells import CellSpec
from .rnn import RNN

__all__ = ["SimpleRNN"]


class SimpleRNN(RNN):
    """Fully-connected RNN whose output is fed back to its input (Keras ``SimpleRNN``).

    Each step computes ``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``.

    Parameters
    ----------
    units : int
        Size of the hidden state (the output width).
    activation : {"tanh", "relu", "sigmoid", "hard_sigmoid", "linear"} or None, default "tanh"
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
        Keras RNN option: with a mask, output zeros (instead of repeating the
        previous output) at masked steps (and, without ``return_sequences``,
        when the last step is masked).  :class:`Bidirectional` sets it on its
        two layers when they return sequences, as Keras does.
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
        _reject_unknown_kwargs(self, kwargs)
        super().__init__(
            units, activation=activation, use_bias=use_bias, return_sequences=return_sequences,
            return_state=return_state, go_backwards=go_backwards, stateful=stateful,
            input_shape=input_shape, batch_input_shape=batch_input_shape,
            input_length=input_length, input_dim=input_dim, batch_size=batch_size,
            dropout=dropout, recurrent_dropout=recurrent_dropout, dtype=dtype, seed=seed,
            name=name, zero_output_for_mask=zero_output_for_mask, weights=weights,
            trainable=trainable)

    @classmethod
    def _cell_for(cls, options: Dict[str, Any]) -> CellSpec:
        return CellSpec("simple", options.get("activation", "tanh"))
