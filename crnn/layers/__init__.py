"""Keras-like layers running on the crnn C core.

The layers here mirror Keras names, arguments and semantics (Keras 2's
``batch_input_shape`` / ``input_length`` / ``input_dim`` spellings included) so
that code written for ``tensorflow.keras.layers`` runs with ``crnn.layers`` in
its place, for inference::

    from crnn.layers import Bidirectional, Dense, Embedding, SimpleRNN
    from crnn.models import Sequential

    model = Sequential()
    model.add(Embedding(10000, 32, mask_zero=True))
    model.add(Bidirectional(SimpleRNN(32)))
    model.add(Dense(1, activation="sigmoid"))
    model.summary()

Layers: :class:`SimpleRNN`, :class:`LSTM`, :class:`GRU` (all built on the
base :class:`RNN`), :class:`Bidirectional`, :class:`Dense`,
:class:`Embedding`, :class:`Masking`, :class:`Activation`, :class:`Dropout`
(the identity at inference), and :func:`Input` / :class:`InputLayer` to
declare a model's input shape.

The package follows Keras 3's layout: ``rnn/`` (the base ``RNN``, the cell
descriptions, ``SimpleRNN``, ``LSTM``, ``GRU``, ``Bidirectional``), ``core/``
(``Dense``, ``Embedding``, ``Masking``, ``InputLayer``), ``activations/``,
``regularization/``, with the ``Layer`` base in ``layer.py``.

A layer owns its weights (NumPy arrays in the Keras layout).  Recurrent layers
also own an immutable compiled handle (:class:`crnn._core.RNN`) built from
them, which does the work of every call; a :class:`Bidirectional` layer
runs both directions in one C call.  crnn is inference only: there is no
training, so arguments that only matter to training (``dropout``) are
accepted and ignored.

Masks follow Keras: :class:`Embedding` (``mask_zero=True``) and
:class:`Masking` create a boolean ``(batch, timesteps)`` mask, :class:`Dense`
and :class:`Activation` pass it on, and a recurrent layer skips the masked
steps (the state carries over; with ``return_sequences`` the output at a masked
step repeats the previous output, or is zero inside a ``Bidirectional``) and
passes the mask on only if it returns sequences.  A right-padded mask (each
sequence a prefix of valid steps) runs as per-sequence lengths inside the C
call; any other mask first moves each sequence's valid steps to its front.

Every layer supports ``get_config()`` / ``from_config()`` and pickling (the
compiled handle is rebuilt lazily after unpickling).
"""

from .activations import DENSE_ACTIVATIONS, Activation
from .arguments import MAX_MATRIX_ELEMENTS, _check_bool, _check_int, _format_shape
from .core import Dense, Embedding, Input, InputLayer, Masking
from .layer import (WEIGHTS_LOCK, InputSpec, InvalidIndexError, Layer, _EPOCH, _deferred_weights,
                    clear_session, unique_name)
from .regularization import Dropout
from .rnn import GRU, LSTM, MERGE_MODES, RNN, Bidirectional, SimpleRNN
from .rnn.rnn import _check_sequence_input, _mask_array, _run_recurrent
from .serialization import LAYER_CLASSES, deserialize, serialize

__all__ = ["Layer", "InputSpec", "RNN", "SimpleRNN", "LSTM", "GRU", "Bidirectional", "Dense",
           "Embedding", "Masking", "Activation", "Dropout", "InputLayer", "Input",
           "InvalidIndexError", "clear_session", "serialize", "deserialize"]
