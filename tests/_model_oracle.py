"""Oracles for the Keras-like layers and models: ``crnn.reference`` calls composed with NumPy.

Everything here computes in float64 from the (upcast) weights a crnn layer actually holds, and
follows Keras semantics written out the plain way, one sequence at a time:

- masks: a recurrent layer runs ``crnn.reference.simple_rnn`` over each sequence's *valid* steps
  only (in processing order), so a masked step leaves the state unchanged; the output at a masked
  step repeats the previous output (zeros before the first valid step), or is zero with
  ``zero_output`` (Keras ``zero_output_for_mask``, which it forces inside ``Bidirectional`` when
  returning sequences): the last output is then zero when the last processed step is masked;
- ``go_backwards`` returns the sequence in processing (reversed) order;
- ``Bidirectional`` re-reverses the backward sequence, then merges;
- Dense / Activation / Embedding / Masking are one line of NumPy each.

Tolerances (used by the tests): a model is a chain of at most ``L`` recurrent layers over ``T``
steps followed by Dense heads.  The recurrent part errs by at most the derived tolerance of
``_helpers.derived_tol`` (eps * ceil(log2(K*T*L)) * FACTOR * scale).  A Dense layer of fan-in
``K_d`` with |w| <= s (s = 0.5 / sqrt(K_d + U), so sum |w| over a column <= 0.5 * sqrt(K_d))
maps an input error e to at most 0.5 * sqrt(K_d) * e plus its own rounding (eps * log2(K_d)
* scale); tanh, sigmoid and softmax have derivatives (Jacobian row sums) <= 1.  With
K_d <= 16 the head adds at most a factor 2 and a few eps, covered by computing the
tolerance with ``steps = T * L + 2`` and the factor ``2 * FACTOR``.
"""
from __future__ import annotations

import math
from typing import List, Optional

import numpy as np

from crnn import reference

from _helpers import FACTOR, derived_tol, to64


def np_activation(name, y):
    y = np.asarray(y, dtype=np.float64)
    if name is None or name == "linear":
        return y
    if name == "relu":
        return np.maximum(y, 0.0)
    if name == "tanh":
        return np.tanh(y)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-y))
    if name == "softmax":
        e = np.exp(y - y.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise ValueError(name)


def ref_dense(x, weights, activation=None):
    w = to64(weights)
    y = to64(x) @ w[0]
    if len(w) > 1:
        y = y + w[1]
    return np_activation(activation, y)


def ref_embedding(ids, embeddings):
    return to64(embeddings)[np.asarray(ids)]


def ref_masking(x, mask_value=0.0):
    x = to64(x)
    m = np.any(x != mask_value, axis=-1)
    return x * m[..., None], m


def ref_rnn(x, weights, mask=None, *, activation="tanh", go_backwards=False,
            return_sequences=False, zero_output=False, initial_state=None, cell="simple",
            recurrent_activation="sigmoid", reset_after=True):
    """A Keras recurrent layer (SimpleRNN, LSTM or GRU) with an optional mask, in float64.

    ``weights`` are the layer's ``get_weights()`` (a reset-after GRU's bias is (2, 3H));
    ``initial_state`` is h, or ``[h, c]`` for an LSTM. Returns ``(output, final_state)``,
    the state being h, or ``[h, c]`` for an LSTM.
    """
    x = to64(x)
    w = to64(weights)
    k, r = w[0], w[1]
    b = w[2] if len(w) > 2 else None
    rb = None
    if b is not None and b.ndim == 2:
        b, rb = b[0], b[1]
    batch, steps, _ = x.shape
    units = r.shape[0]
    lstm = cell == "lstm"
    if initial_state is None:
        h0, c0 = np.zeros((batch, units)), np.zeros((batch, units))
    elif lstm:
        h0, c0 = to64(initial_state[0]), to64(initial_state[1])
    else:
        h0, c0 = to64(initial_state), None
    outs = np.zeros((batch, steps, units))
    last = np.zeros((batch, units))
    h_n, c_n = h0.copy(), (c0.copy() if lstm else None)
    for i in range(batch):
        order = list(range(steps))[::-1] if go_backwards else list(range(steps))
        valid = [t for t in order if mask is None or mask[i, t]]
        hs = []
        if valid:
            init = [h0[i][None], c0[i][None]] if lstm else h0[i][None]
            hs, st = reference.rnn_stack(
                x[i, valid][None], [[[k, r, b, rb]]], cell=cell, activation=activation,
                recurrent_activation=recurrent_activation, reset_after=reset_after,
                initial_state=[init], return_sequences=True, return_state=True)
            hs = hs[0]
            if lstm:
                h_n[i], c_n[i] = st[0][0][0], st[0][1][0]
            else:
                h_n[i] = st[0][0]
        prev = np.zeros(units)
        j = 0
        for p, t in enumerate(order):
            if mask is None or mask[i, t]:
                prev = hs[j]
                j += 1
                outs[i, p] = prev
            else:
                outs[i, p] = 0.0 if zero_output else prev
        # Keras returns the last processed step's output: with zero_output, zero when that step
        # is masked (checked against Keras 3 in test_interop_keras.py)
        last[i] = 0.0 if zero_output and mask is not None and not mask[i, order[-1]] else prev
    return (outs if return_sequences else last), ([h_n, c_n] if lstm else h_n)


def merge(mode, y, y_rev):
    if mode == "concat":
        return np.concatenate([y, y_rev], axis=-1)
    if mode == "sum":
        return y + y_rev
    if mode == "mul":
        return y * y_rev
    if mode == "ave":
        return (y + y_rev) / 2
    return [y, y_rev]


def ref_bidirectional(x, fwd_weights, bwd_weights, mask=None, *, activation="tanh",
                      merge_mode="concat", return_sequences=False, initial_state=None,
                      fwd_backwards=False, bwd_activation=None, **cell):
    """Keras Bidirectional around a recurrent layer (``cell``: ref_rnn's cell keywords);
    returns ``(output, [state_forward, state_backward])``."""
    h0f, h0b = (None, None) if initial_state is None else initial_state
    y, hf = ref_rnn(x, fwd_weights, mask, activation=activation, go_backwards=fwd_backwards,
                    return_sequences=return_sequences, zero_output=return_sequences,
                    initial_state=h0f, **cell)
    y_rev, hb = ref_rnn(x, bwd_weights, mask,
                        activation=activation if bwd_activation is None else bwd_activation,
                        go_backwards=not fwd_backwards, return_sequences=return_sequences,
                        zero_output=return_sequences, initial_state=h0b, **cell)
    if return_sequences:
        y_rev = y_rev[:, ::-1]
    return merge(merge_mode, y, y_rev), [hf, hb]


def model_tol(dtype, k: int, steps: int, scale: float = 1.0) -> float:
    """Tolerance of a recurrent stack (``steps`` = T * L) followed by Dense heads (see above)."""
    return derived_tol(dtype, k, steps + 2, scale, factor=2 * FACTOR)


def dense_weights(rng, d: int, u: int, dtype, bias: bool = True) -> List[np.ndarray]:
    s = 0.5 / math.sqrt(d + u)
    w = [rng.uniform(-s, s, (d, u)).astype(dtype)]
    if bias:
        w.append(rng.uniform(-s, s, (u,)).astype(dtype))
    return w


def random_masks(batch: int, steps: int, rng) -> dict:
    """A right-padded mask (lengths incl. 0 and full) and an arbitrary one (incl. all-masked)."""
    lengths = np.array([steps, 0, 1, steps - 1] + list(rng.integers(0, steps + 1, batch)))[:batch]
    prefix = np.arange(steps)[None, :] < lengths[:, None]
    arb = rng.random((batch, steps)) < 0.6
    arb[0] = True
    if batch > 1:
        arb[1] = False
    if batch > 2:
        arb[2] = [(t % 2 == 1) for t in range(steps)]  # starts masked, then alternates
    return {"prefix": prefix, "arbitrary": arb}


def to_f64_list(out) -> List[np.ndarray]:
    return [np.asarray(o, dtype=np.float64) for o in (out if isinstance(out, list) else [out])]


def optional(x: Optional[np.ndarray]):
    return None if x is None else np.asarray(x)
