"""Activation layers (Keras ``keras/src/layers/activations``)."""
from .activation import DENSE_ACTIVATIONS, Activation, apply_activation

__all__ = ["Activation", "DENSE_ACTIVATIONS", "apply_activation"]
