"""Cell descriptions: what tells one recurrent cell kind from another, for :class:`~crnn.layers.RNN`.

A recurrent layer owns its weights in the Keras layout and order; a :class:`CellSpec` says how
many gates and states the cell has, the weights' shapes and initial values, and how they map
onto the C core's stack entries (``crnn._core.RNN``). A new cell kind is a new ``kind`` here and
in the core's cell table, not edits to the layer's time loop or call logic.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ... import _core

#: Cell kind -> gates G: kernels are ``(input_dim, G*units)`` and ``(units, G*units)``.
GATES: Dict[str, int] = dict(_core.GATES)

#: Activations the recurrent cells run (``None`` means ``"linear"``).
RNN_ACTIVATIONS = tuple(sorted(_core.ACTIVATIONS))


def glorot_uniform(rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
    """Keras ``GlorotUniform``: U(-l, l), l = sqrt(6 / (fan_in + fan_out)), float64."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


def orthogonal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Keras ``Orthogonal(gain=1)`` of shape ``(rows, cols)``: QR of a standard normal
    ``(max, min)`` matrix, columns signed by diag(R) (uniform over orthogonal matrices),
    transposed when ``rows < cols`` (an LSTM's ``(units, 4 * units)``)."""
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    return q.T if rows < cols else q


@dataclass(frozen=True)
class CellSpec:
    """One cell kind with its options.

    Attributes
    ----------
    kind : "simple", "lstm" or "gru"
    activation, recurrent_activation : activation names (None: linear); the recurrent one is
        that of the LSTM / GRU gates (ignored for SimpleRNN).
    reset_after : GRU only: the reset gate applies after the recurrent product (Keras 3's
        default; its bias is then ``(2, 3*units)``: input bias and recurrent bias).
    unit_forget_bias : LSTM only: the initial forget-gate bias is 1 (Keras's default).
    """

    kind: str
    activation: Optional[str] = "tanh"
    recurrent_activation: Optional[str] = "sigmoid"
    reset_after: bool = False
    unit_forget_bias: bool = False

    @property
    def gates(self) -> int:
        return GATES[self.kind]

    @property
    def num_states(self) -> int:
        """States a layer carries: h, and c for an LSTM."""
        return 2 if self.kind == "lstm" else 1

    def weight_shapes(self, input_dim: Optional[int], units: int,
                      use_bias: bool) -> List[Tuple[str, Tuple[Optional[int], ...]]]:
        """``[(name, shape)]`` of the Keras weights, in :meth:`Layer.get_weights` order."""
        g = self.gates * units
        out = [("kernel", (input_dim, g)), ("recurrent_kernel", (units, g))]
        if use_bias:
            out.append(("bias", (2, g) if self.kind == "gru" and self.reset_after else (g,)))
        return out

    def count_params(self, input_dim: int, units: int, use_bias: bool) -> int:
        """Keras's count: ``G * (D*H + H*H + H)``, a reset-after GRU ``3 * (D*H + H*H + 2H)``."""
        return sum(math.prod(s) for _, s in self.weight_shapes(input_dim, units, use_bias))

    def initial_weights(self, rng: np.random.Generator, input_dim: int, units: int,
                        use_bias: bool) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """Keras's defaults: glorot-uniform kernel, orthogonal recurrent kernel, zero bias (an
        LSTM with ``unit_forget_bias``: ones for the forget gate), in float64."""
        g = self.gates * units
        kernel = glorot_uniform(rng, input_dim, g)
        rk = orthogonal(rng, units, g)
        bias = None
        if use_bias:
            bias = np.zeros(self.weight_shapes(input_dim, units, True)[2][1])
            if self.kind == "lstm" and self.unit_forget_bias:
                bias[units:2 * units] = 1.0
        return kernel, rk, bias

    def core_entry(self, weights: Tuple[Any, ...]) -> List[Any]:
        """A stack entry of ``crnn._core.RNN``: ``[kernel, recurrent_kernel, bias,
        recurrent_bias]`` (a reset-after GRU's bias rows are the last two)."""
        kernel, rk, bias = weights
        if bias is not None and bias.ndim == 2:
            return [kernel, rk, bias[0], bias[1]]
        return [kernel, rk, bias]

    def core_kwargs(self) -> Dict[str, Any]:
        """This layer's entries of the per-layer lists ``crnn._core.RNN`` takes."""
        return {"cell": self.kind, "activation": self.activation or "linear",
                "recurrent_activation": self.recurrent_activation or "linear",
                "reset_after": bool(self.reset_after)}

    def same_computation(self, other: "CellSpec") -> bool:
        """True when a stack entry of each computes the same function of its weights (two
        directions of one Bidirectional layer can then run as one bidirectional layer)."""
        return self.core_kwargs() == other.core_kwargs()
