"""Core layers (Keras ``keras/src/layers/core``): Dense, Embedding, Masking, InputLayer."""
from .dense import Dense
from .embedding import Embedding
from .input_layer import Input, InputLayer
from .masking import Masking

__all__ = ["Dense", "Embedding", "Masking", "InputLayer", "Input"]
