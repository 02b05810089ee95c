"""Regularization layers (Keras ``keras/src/layers/regularization``): identities at inference."""
from .dropout import Dropout

__all__ = ["Dropout"]
