"""Recurrent layers (Keras ``keras/src/layers/rnn``): the base RNN, its cells, Bidirectional."""
from .bidirectional import MERGE_MODES, Bidirectional
from .cells import CellSpec
from .gru import GRU
from .lstm import LSTM
from .rnn import RNN
from .simple_rnn import SimpleRNN

__all__ = ["RNN", "SimpleRNN", "LSTM", "GRU", "Bidirectional", "CellSpec", "MERGE_MODES"]
