"""PyTorch ``nn.RNN``, ``nn.LSTM``, ``nn.GRU`` and their cells -> crnn.

:func:`from_torch` turns a torch recurrent module, or its ``state_dict`` plus the constructor
arguments its keys cannot tell, into an object that takes and returns what the torch module does,
running on the crnn C core (every layer and direction of a stack in one C call)::

    import crnn
    lstm = crnn.from_torch(torch_lstm)        # or crnn.from_torch(state_dict, batch_first=True)
    output, (h_n, c_n) = lstm(x, (h0, c0))    # torch's layouts, NumPy arrays
    gru = crnn.from_torch(torch_gru)
    output, h_n = gru(x, h0)
    cell = crnn.from_torch(torch.nn.LSTMCell(10, 32))
    h, c = cell(x_t, (h, c))                  # one step, for hand-written decoding loops

=================  ====================  ==============================================
torch              crnn object           call
=================  ====================  ==============================================
``nn.RNN``         :class:`TorchRNN`     ``output, h_n = m(input, h_0)``
``nn.LSTM``        :class:`TorchLSTM`    ``output, (h_n, c_n) = m(input, (h_0, c_0))``
``nn.GRU``         :class:`TorchGRU`     ``output, h_n = m(input, h_0)``
``nn.RNNCell``     :class:`TorchRNNCell` ``h' = m(input, h)``
``nn.LSTMCell``    :class:`TorchLSTMCell` ``h', c' = m(input, (h, c))``
``nn.GRUCell``     :class:`TorchGRUCell` ``h' = m(input, h)``
=================  ====================  ==============================================

Weight mapping (torch stores ``W`` as ``(gates * hidden, in)``, crnn/Keras as
``(in, gates * hidden)``; ``*`` marks a transposition)::

    kernel           = weight_ih*  (gate blocks regrouped)       (D, G*H)
    recurrent_kernel = weight_hh*  (gate blocks regrouped)       (H, G*H)
    bias             = bias_ih + bias_hh, summed in float64, then cast (RNN, LSTM; GRU's r, z)

Gate orders: torch's LSTM is i, f, g, o, which is crnn's (Keras's) i, f, c, o: nothing moves.
torch's GRU is r, z, n and crnn's z, r, h: the first two blocks swap.  torch's GRU applies the
reset gate after the recurrent product, ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``: crnn's
``reset_after=True`` (ONNX ``linear_before_reset=1``), whose candidate recurrent bias ``b_hn``
stays apart.  Torch adds its two biases to two separate products; crnn adds their sum once, one
rounding of ``b_ih + b_hh`` per unit, well inside float32 tolerance (the tests measure outputs
against torch within 1e-5 absolute).

An LSTM with ``proj_size = P > 0`` projects its output, ``h_t = W_hr (o_t * tanh(c_t))``, and
feeds the projection back.  With ``m_t = o_t * tanh(c_t)`` the gates read
``h_{t-1} W_hh^T = m_{t-1} (W_hr^T W_hh^T)``, and the next layer reads
``[h^fwd, h^rev] W_ih^T = [m^fwd, m^rev] (blockdiag(W_hr^fwd^T, W_hr^rev^T) W_ih^T)``: so crnn
runs an LSTM stack of ``hidden_size`` units on those products (formed once, in float64) and
projects the last layer's outputs and every final ``h`` with ``W_hr^T`` after the C call.  The
same function, rounded differently; its recurrent step costs ``hidden_size / proj_size`` times
torch's.  An initial ``h_0`` (width P) is lifted to the ``m_0`` with ``m_0 W_hr^T = h_0``, which
exists when ``W_hr`` has full rank P (always, for trained weights); crnn checks the lift's residual
and refuses an ``h_0`` it cannot represent within rounding.

torch is only needed to pass a module, torch tensors or a ``PackedSequence``; a ``state_dict``
of NumPy arrays works without it.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from .. import _core

__all__ = ["TorchRNN", "TorchLSTM", "TorchGRU", "TorchRNNCell", "TorchLSTMCell", "TorchGRUCell",
           "from_torch"]

#: torch module kind -> (crnn cell, gates, crnn gate blocks as indices of torch's).
_CELLS = {"RNN": ("simple", 1, (0,)), "LSTM": ("lstm", 4, (0, 1, 2, 3)),
          "GRU": ("gru", 3, (1, 0, 2))}
#: Constructor arguments of each torch module (``device`` and ``dropout`` are accepted and
#: ignored: crnn runs on the CPU, and dropout acts only in training).
_CTOR_KEYS = {
    "RNN": ("input_size", "hidden_size", "num_layers", "nonlinearity", "bias", "batch_first",
            "dropout", "bidirectional", "proj_size", "device"),
    "LSTM": ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
             "bidirectional", "proj_size", "device"),
    "GRU": ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
            "bidirectional", "proj_size", "device"),
    "RNNCell": ("input_size", "hidden_size", "bias", "nonlinearity", "device"),
    "LSTMCell": ("input_size", "hidden_size", "bias", "device"),
    "GRUCell": ("input_size", "hidden_size", "bias", "device"),
}
_KEY_RE = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


def _to_numpy(value: Any, name: str) -> np.ndarray:
    """A torch tensor (any device, requires_grad or not) or array-like as a NumPy array."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        t = value.detach()
        if getattr(t, "is_complex", lambda: False)() or str(getattr(t, "dtype", "")) == "torch.bool":
            raise TypeError(f"{name}: got a {t.dtype} tensor, expected a real numeric tensor")
        try:
            t = t.cpu()
            try:
                arr = t.numpy()
            except TypeError:  # bfloat16 and other dtypes NumPy lacks
                arr = t.float().numpy()
        except (TypeError, RuntimeError, NotImplementedError) as err:  # sparse, meta, ...
            raise TypeError(f"{name}: got a tensor NumPy cannot read (layout "
                            f"{getattr(t, 'layout', '?')}, device {getattr(t, 'device', '?')}: "
                            f"{str(err).splitlines()[0] if str(err) else type(err).__name__}), "
                            "expected a dense tensor") from None
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name}: got {type(value).__name__}, expected a tensor or array "
                            f"({err})") from None
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: got dtype {arr.dtype}, expected a real numeric array")
    return arr


def _torch_rnn_kind(obj: Any) -> Optional[str]:
    """'RNN', 'LSTM', 'GRU', 'RNNCell', ... if ``obj`` is a torch.nn recurrent module, else None."""
    for klass in type(obj).__mro__:
        if klass.__module__ == "torch.nn.modules.rnn" and klass.__name__ in _CTOR_KEYS:
            return klass.__name__
    return None


def _is_packed(obj: Any) -> bool:
    return type(obj).__name__ == "PackedSequence" and hasattr(obj, "batch_sizes")


def _core_entry(kind: str, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: Optional[np.ndarray],
                b_hh: Optional[np.ndarray], dtype: np.dtype) -> List[Optional[np.ndarray]]:
    """One direction's torch weights as a ``crnn._core.RNN`` entry, in float64 until the biases
    are summed (the core casts the rest): ``[kernel, recurrent_kernel, bias, recurrent_bias]``."""
    _, G, order = _CELLS[kind]
    H = w_ih.shape[0] // G
    rows = np.concatenate([np.arange(g * H, (g + 1) * H) for g in order])
    entry: List[Optional[np.ndarray]] = [w_ih[rows].T, w_hh[rows].T, None, None]
    if b_ih is not None:
        bi, bh = b_ih[rows].astype(np.float64), b_hh[rows].astype(np.float64)
        if kind == "GRU":   # b_hn stays inside the reset: r * (W_hn h + b_hn)
            entry[2] = np.concatenate([bi[:2 * H] + bh[:2 * H], bi[2 * H:]]).astype(dtype)
            entry[3] = np.concatenate([np.zeros(2 * H), bh[2 * H:]]).astype(dtype)
        else:
            entry[2] = (bi + bh).astype(dtype)
    return entry


class _TorchRecurrent:
    """What TorchRNN, TorchLSTM and TorchGRU share: weights, compilation, torch's call."""

    _kind = "RNN"

    def __init__(self, state_dict: Mapping[str, Any], *, input_size: int, hidden_size: int,
                 num_layers: int = 1, bias: bool = True, batch_first: bool = False,
                 bidirectional: bool = False, dtype: Any = "float32", nonlinearity: str = "tanh",
                 proj_size: int = 0) -> None:
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.nonlinearity = nonlinearity
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.proj_size = int(proj_size)
        self.dtype = _core.as_dtype(dtype)
        # Keep the torch-named weights (separate biases) for state_dict() and pickling.
        self._state = {k: np.array(v, dtype=np.result_type(v, np.float32), copy=True)
                       for k, v in state_dict.items()}
        self.handle = self._compile()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _out_size(self) -> int:
        """Width of h: proj_size if set, else hidden_size."""
        return self.proj_size or self.hidden_size

    def _sfx(self) -> Tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def _compile(self) -> "_core.RNN":
        sd = self._state
        weights = []
        for k in range(self.num_layers):
            layer = []
            for sfx in self._sfx():
                g = lambda name: sd[f"{name}_l{k}{sfx}"].astype(np.float64)  # noqa: E731
                w_ih, w_hh = g("weight_ih"), g("weight_hh")
                if self.proj_size:   # see the module docstring
                    w_hh = w_hh @ g("weight_hr")
                    if k:
                        prev = [sd[f"weight_hr_l{k - 1}{s}"].astype(np.float64)
                                for s in self._sfx()]
                        P = self.proj_size
                        w_ih = np.concatenate([w_ih[:, i * P:(i + 1) * P] @ hr
                                               for i, hr in enumerate(prev)], axis=1)
                bi = g("bias_ih") if self.bias else None
                bh = g("bias_hh") if self.bias else None
                layer.append(_core_entry(self._kind, w_ih, w_hh, bi, bh, self.dtype))
            weights.append(layer)
        cell = _CELLS[self._kind][0]
        return _core.RNN(weights, cell=cell,
                         activation=self.nonlinearity if cell == "simple" else "tanh",
                         recurrent_activation="sigmoid", reset_after=True,
                         direction="bidirectional" if self.bidirectional else "forward",
                         dtype=self.dtype)

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Copies of the weights under torch's names (the torch module's ``load_state_dict``
        takes them after ``torch.from_numpy``)."""
        return {k: v.copy() for k, v in self._state.items()}

    def __getstate__(self) -> Dict[str, Any]:
        d = dict(self.__dict__)
        del d["handle"]
        return d

    def __setstate__(self, d: Dict[str, Any]) -> None:
        self.__dict__.update(d)
        self.handle = self._compile()

    def __repr__(self) -> str:
        extra = "" if self.num_layers == 1 else f", num_layers={self.num_layers}"
        if self.nonlinearity != "tanh":
            extra += f", nonlinearity={self.nonlinearity!r}"
        if not self.bias:
            extra += ", bias=False"
        if self.batch_first:
            extra += ", batch_first=True"
        if self.bidirectional:
            extra += ", bidirectional=True"
        if self.proj_size:
            extra += f", proj_size={self.proj_size}"
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}{extra}, "
                f"dtype={self.dtype.name})")

    # ------------------------------------------------------------------ call
    def __call__(self, input: Any, hx: Any = None, *, lengths: Any = None):
        if _is_packed(input):
            if lengths is not None:
                raise ValueError("lengths: got lengths with a PackedSequence, which carries its own")
            return self._forward_packed(input, hx)
        x = _to_numpy(input, "input")
        if x.ndim not in (2, 3):
            raise ValueError(f"input: got shape {x.shape}, expected 3-D "
                             f"({'(B, T, D)' if self.batch_first else '(T, B, D)'}) or 2-D (T, D)")
        unbatched = x.ndim == 2
        if unbatched:
            xb = x[None]                                   # (1, T, D)
        else:
            xb = x if self.batch_first else x.transpose(1, 0, 2)
        states = self._parse_hx(hx, xb.shape[0], unbatched)
        lens = None
        if lengths is not None:
            lens = _to_numpy(lengths, "lengths")
            if unbatched and lens.ndim == 0:
                lens = lens.reshape(1)
            if lens.dtype.kind not in "iu":
                raise ValueError(f"lengths: got dtype {lens.dtype}, expected integers")
        out, finals = self._run(xb, states, lens)
        if unbatched:
            return out[0], self._pack_hx([f[:, 0] for f in finals])
        if not self.batch_first:
            out = np.ascontiguousarray(out.transpose(1, 0, 2))
        return out, self._pack_hx(finals)

    forward = __call__

    def _state_names(self) -> Tuple[str, ...]:
        return ("hx",)

    def _pack_hx(self, finals: List[np.ndarray]) -> Any:
        """torch's form of the final states: h_n, or (h_n, c_n) for an LSTM."""
        return finals[0]

    def _split_hx(self, hx: Any) -> List[Any]:
        """torch's ``hx`` as one value per state."""
        return [hx]

    def _parse_hx(self, hx: Any, batch: int, unbatched: bool) -> Optional[List[Any]]:
        """``hx`` as the core's initial states: one entry per (layer, direction)."""
        if hx is None:
            return None
        n = self.num_layers * self.num_directions
        arrays = []
        for name, value, width in zip(self._state_names(), self._split_hx(hx),
                                      (self._out_size, self.hidden_size)):
            a = _to_numpy(value, name)
            want = (n, width) if unbatched else (n, batch, width)
            if a.shape != want:
                size = "proj_size" if width != self.hidden_size else "hidden_size"
                raise ValueError(f"{name}: got shape {a.shape}, expected {want} "
                                 + ("for an unbatched input" if unbatched else
                                    f"(num_layers * num_directions, batch, {size})"))
            arrays.append(a[:, None] if unbatched else a)
        if self.proj_size:
            arrays[0] = self._lift_h0(arrays[0])
        if len(arrays) == 1:
            return [arrays[0][i] for i in range(n)]
        return [[arrays[0][i], arrays[1][i]] for i in range(n)]

    def _lift_h0(self, h0: np.ndarray) -> np.ndarray:
        """Projected initial states (n, B, P) -> the unprojected m_0 (n, B, H) with
        ``m_0 W_hr^T = h_0`` (see the module docstring)."""
        out = np.empty(h0.shape[:2] + (self.hidden_size,))
        i = 0
        for k in range(self.num_layers):
            for sfx in self._sfx():
                hr = self._state[f"weight_hr_l{k}{sfx}"].astype(np.float64)     # (P, H)
                h = h0[i].astype(np.float64)
                m, *_ = np.linalg.lstsq(hr, h.T, rcond=None)        # W_hr m^T = h^T
                out[i] = m.T
                resid = np.abs(out[i] @ hr.T - h).max() if h.size else 0.0
                scale = max(1.0, float(np.abs(h).max()) if h.size else 0.0)
                if resid > 16 * np.finfo(self.dtype).eps * scale:   # within rounding
                    raise ValueError(
                        f"hx: h_0[{i}] cannot be represented with proj_size={self.proj_size}: "
                        f"weight_hr_l{k}{sfx} is (nearly) rank-deficient (the lift m_0 with "
                        f"m_0 weight_hr^T = h_0 leaves a residual of {resid:.3g}); crnn runs a "
                        "projected LSTM on unprojected states")
                i += 1
        return out

    def _run(self, xb: np.ndarray, states: Optional[List[Any]],
             lens: Optional[np.ndarray]) -> Tuple[np.ndarray, List[np.ndarray]]:
        """(B, T, D) -> output (B, T, ndir * out) and the stacked final states [(n, B, .)]."""
        out, finals = self.handle.forward(xb, initial_state=states, lengths=lens,
                                          return_sequences=True, return_state=True)
        if isinstance(finals[0], list):
            hs = np.stack([f[0] for f in finals])
            res = [hs, np.stack([f[1] for f in finals])]
        else:
            res = [np.stack(finals)]
        if self.proj_size:   # h = m W_hr^T: the final h of every entry, the last layer's output
            n, nd, H = len(finals), self.num_directions, self.hidden_size
            res[0] = np.stack([res[0][e] @ self._hr(e).T for e in range(n)])
            out = np.concatenate([out[..., d * H:(d + 1) * H] @ self._hr(n - nd + d).T
                                  for d in range(nd)], axis=-1)
        return out, res

    def _hr(self, e: int) -> np.ndarray:
        """weight_hr (P, H) of stack entry ``e`` (layer-major), in the computation dtype."""
        k, d = divmod(e, self.num_directions)
        return self._state[f"weight_hr_l{k}{self._sfx()[d]}"].astype(self.dtype)

    def _forward_packed(self, packed: Any, hx: Any):
        import torch  # a PackedSequence means torch is there
        data = _to_numpy(packed.data, "input.data")
        batch_sizes = _to_numpy(packed.batch_sizes, "input.batch_sizes").astype(np.int64)
        T, B = len(batch_sizes), int(batch_sizes[0])
        # Packed data is time-major over sequences sorted by decreasing length.
        mask = np.arange(B)[None, :] < batch_sizes[:, None]          # (T, B), sorted order
        x = np.zeros((T, B, data.shape[-1]), dtype=data.dtype)
        x[mask] = data
        lens = mask.sum(axis=0)
        sorted_idx = packed.sorted_indices
        unsorted_idx = packed.unsorted_indices
        states = None
        if hx is not None:
            parts = [_to_numpy(v, name) for v, name in zip(self._split_hx(hx), self._state_names())]
            if sorted_idx is not None:
                order = _to_numpy(sorted_idx, "sorted_indices")
                parts = [p[:, order] if p.ndim == 3 else p for p in parts]
            states = self._parse_hx(self._pack_hx(parts), B, False)
        out, finals = self._run(np.ascontiguousarray(x.transpose(1, 0, 2)), states, lens)
        if unsorted_idx is not None:
            order = _to_numpy(unsorted_idx, "unsorted_indices")
            finals = [np.ascontiguousarray(f[:, order]) for f in finals]
        out_data = out.transpose(1, 0, 2)[mask]
        result = torch.nn.utils.rnn.PackedSequence(
            torch.from_numpy(np.ascontiguousarray(out_data)), packed.batch_sizes,
            sorted_idx, unsorted_idx)
        return result, self._pack_hx(finals)


class TorchRNN(_TorchRecurrent):
    """A ``torch.nn.RNN`` running on the crnn C core (made by :func:`from_torch`).

    Calling it mirrors ``torch.nn.RNN.forward``::

        output, h_n = rnn(input, hx=None)

    ``input`` is ``(T, B, input_size)``, or ``(B, T, input_size)`` when ``batch_first``, or
    ``(T, input_size)`` unbatched; ``hx`` is ``(num_layers * num_directions, B, hidden_size)``
    (``(num_layers * num_directions, hidden_size)`` unbatched), zeros when None.  ``output`` has
    the layout of ``input`` with ``num_directions * hidden_size`` features (forward then reverse,
    both aligned with the input time index) and ``h_n`` the layout of ``hx``.  Inputs may be
    NumPy arrays, anything array-like, or torch tensors; results are NumPy arrays of
    :attr:`dtype`.

    Variable lengths, as with ``pack_padded_sequence``: pass ``lengths=`` (one int per sequence)
    with a padded input; outputs past a sequence's length are zero and its ``h_n`` is the state
    after its last valid step.  A torch ``PackedSequence`` input is accepted as well and gives
    ``(PackedSequence, h_n)``, as torch does.

    Attributes mirror the torch module: ``input_size``, ``hidden_size``, ``num_layers``,
    ``nonlinearity``, ``bias``, ``batch_first``, ``bidirectional``; plus ``dtype`` and
    ``handle`` (the :class:`crnn._core.RNN`).  Thread-safe: calls share nothing mutable.
    """

    _kind = "RNN"

    def __init__(self, state_dict: Mapping[str, Any], *, input_size: int, hidden_size: int,
                 num_layers: int = 1, nonlinearity: str = "tanh", bias: bool = True,
                 batch_first: bool = False, bidirectional: bool = False,
                 dtype: Any = "float32") -> None:
        super().__init__(state_dict, input_size=input_size, hidden_size=hidden_size,
                         num_layers=num_layers, nonlinearity=nonlinearity, bias=bias,
                         batch_first=batch_first, bidirectional=bidirectional, dtype=dtype)


class TorchGRU(_TorchRecurrent):
    """A ``torch.nn.GRU`` running on the crnn C core (made by :func:`from_torch`).

    Calling it mirrors ``torch.nn.GRU.forward``: ``output, h_n = gru(input, hx=None)``, with
    the layouts, ``lengths=`` and ``PackedSequence`` inputs of :class:`TorchRNN`.  Runs as
    crnn's GRU with ``reset_after=True`` (torch's gates r, z, n regrouped as z, r, h).
    Attributes mirror the torch module (``input_size``, ``hidden_size``, ``num_layers``,
    ``bias``, ``batch_first``, ``bidirectional``), plus ``dtype`` and ``handle``.
    """

    _kind = "GRU"

    def __init__(self, state_dict: Mapping[str, Any], *, input_size: int, hidden_size: int,
                 num_layers: int = 1, bias: bool = True, batch_first: bool = False,
                 bidirectional: bool = False, dtype: Any = "float32") -> None:
        super().__init__(state_dict, input_size=input_size, hidden_size=hidden_size,
                         num_layers=num_layers, bias=bias, batch_first=batch_first,
                         bidirectional=bidirectional, dtype=dtype)


class TorchLSTM(_TorchRecurrent):
    """A ``torch.nn.LSTM`` running on the crnn C core (made by :func:`from_torch`).

    Calling it mirrors ``torch.nn.LSTM.forward``::

        output, (h_n, c_n) = lstm(input, hx=None)      # hx: (h_0, c_0) or None (zeros)

    with the layouts, ``lengths=`` and ``PackedSequence`` inputs of :class:`TorchRNN`; ``h_0``
    and ``h_n`` are ``(num_layers * num_directions, B, proj_size or hidden_size)``, ``c_0`` and
    ``c_n`` ``(num_layers * num_directions, B, hidden_size)``.  ``proj_size > 0`` is supported
    (see the module docstring).  Attributes mirror the torch module (``input_size``,
    ``hidden_size``, ``num_layers``, ``bias``, ``batch_first``, ``bidirectional``,
    ``proj_size``), plus ``dtype`` and ``handle``.
    """

    _kind = "LSTM"

    def __init__(self, state_dict: Mapping[str, Any], *, input_size: int, hidden_size: int,
                 num_layers: int = 1, bias: bool = True, batch_first: bool = False,
                 bidirectional: bool = False, proj_size: int = 0,
                 dtype: Any = "float32") -> None:
        super().__init__(state_dict, input_size=input_size, hidden_size=hidden_size,
                         num_layers=num_layers, bias=bias, batch_first=batch_first,
                         bidirectional=bidirectional, proj_size=proj_size, dtype=dtype)

    def _state_names(self) -> Tuple[str, ...]:
        return ("hx[0] (h_0)", "hx[1] (c_0)")

    def _pack_hx(self, finals: List[np.ndarray]) -> Any:
        return finals[0], finals[1]

    def _split_hx(self, hx: Any) -> List[Any]:
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise ValueError(f"hx: got {type(hx).__name__}, expected a tuple (h_0, c_0), as "
                             "torch.nn.LSTM takes")
        return list(hx)


# ---------------------------------------------------------------------------------------------
class _TorchCell:
    """What the three cells share: one step of a one-layer stack, torch's call."""

    _kind = "RNN"

    def __init__(self, state_dict: Mapping[str, Any], *, input_size: int, hidden_size: int,
                 bias: bool = True, nonlinearity: str = "tanh", dtype: Any = "float32") -> None:
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.bias = bool(bias)
        self.nonlinearity = nonlinearity
        self.dtype = _core.as_dtype(dtype)
        self._state = {k: np.array(v, dtype=np.result_type(v, np.float32), copy=True)
                       for k, v in state_dict.items()}
        self.handle = self._compile()

    def _compile(self) -> "_core.RNN":
        sd = {k: v.astype(np.float64) for k, v in self._state.items()}
        entry = _core_entry(self._kind, sd["weight_ih"], sd["weight_hh"], sd.get("bias_ih"),
                            sd.get("bias_hh"), self.dtype)
        cell = _CELLS[self._kind][0]
        return _core.RNN([[entry]], cell=cell,
                         activation=self.nonlinearity if cell == "simple" else "tanh",
                         recurrent_activation="sigmoid", reset_after=True, dtype=self.dtype)

    state_dict = _TorchRecurrent.state_dict
    __getstate__ = _TorchRecurrent.__getstate__
    __setstate__ = _TorchRecurrent.__setstate__

    def __repr__(self) -> str:
        extra = "" if self.bias else ", bias=False"
        if self.nonlinearity != "tanh":
            extra += f", nonlinearity={self.nonlinearity!r}"
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}{extra}, "
                f"dtype={self.dtype.name})")

    def _states(self) -> Tuple[str, ...]:
        return ("hx",)

    def __call__(self, input: Any, hx: Any = None):
        x = _to_numpy(input, "input")
        if x.ndim not in (1, 2):
            raise ValueError(f"input: got shape {x.shape}, expected (batch, {self.input_size}) "
                             f"or ({self.input_size},)")
        unbatched = x.ndim == 1
        xb = x[None, None] if unbatched else x[:, None]           # (B, 1, D)
        B = xb.shape[0]
        init = None
        if hx is not None:
            names = self._states()
            if len(names) == 2 and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
                raise ValueError(f"hx: got {type(hx).__name__}, expected a tuple (h, c), as "
                                 "torch.nn.LSTMCell takes")
            parts = list(hx) if len(names) == 2 else [hx]
            arrs = []
            for name, p in zip(names, parts):
                a = _to_numpy(p, name)
                want = (self.hidden_size,) if unbatched else (B, self.hidden_size)
                if a.shape != want:
                    raise ValueError(f"{name}: got shape {a.shape}, expected {want}")
                arrs.append(a.reshape(B, self.hidden_size))
            init = [arrs if len(arrs) == 2 else arrs[0]]
        if B == 0:
            zero = np.zeros((0, self.hidden_size), self.dtype)
            return (zero, zero.copy()) if self._kind == "LSTM" else zero
        _, finals = self.handle.forward(xb, initial_state=init, return_sequences=False,
                                        return_state=True)
        st = finals[0]
        if isinstance(st, list):
            return (st[0][0], st[1][0]) if unbatched else (st[0], st[1])
        return st[0] if unbatched else st

    forward = __call__


class TorchRNNCell(_TorchCell):
    """A ``torch.nn.RNNCell`` on the crnn C core: ``h' = cell(input, hx=None)``.

    ``input`` is ``(B, input_size)`` or ``(input_size,)``; ``hx`` ``(B, hidden_size)`` or
    ``(hidden_size,)``, zeros when None.  One step of the cell, torch's call, NumPy results.
    """

    _kind = "RNN"


class TorchGRUCell(_TorchCell):
    """A ``torch.nn.GRUCell`` on the crnn C core: ``h' = cell(input, hx=None)`` (see
    :class:`TorchRNNCell` for the shapes)."""

    _kind = "GRU"


class TorchLSTMCell(_TorchCell):
    """A ``torch.nn.LSTMCell`` on the crnn C core: ``h', c' = cell(input, hx=None)``, ``hx``
    a tuple ``(h, c)`` or None (zeros); shapes as :class:`TorchRNNCell`."""

    _kind = "LSTM"

    def _states(self) -> Tuple[str, ...]:
        return ("hx[0] (h)", "hx[1] (c)")


_CLASSES = {"RNN": TorchRNN, "LSTM": TorchLSTM, "GRU": TorchGRU, "RNNCell": TorchRNNCell,
            "LSTMCell": TorchLSTMCell, "GRUCell": TorchGRUCell}


# ---------------------------------------------------------------------------------------------
def _require_matrices(sd: Mapping[str, np.ndarray], keys: Tuple[str, ...]) -> None:
    """The keys the configuration is read from, where present, hold 2-D weights."""
    for key in keys:
        if key in sd and sd[key].ndim != 2:
            raise ValueError(f"state_dict: {key} has shape {sd[key].shape}, expected a 2-D "
                             "weight matrix")


def _infer_config(sd: Mapping[str, np.ndarray], proj_size: Any = 0) -> Dict[str, Any]:
    """What the keys and shapes of a state_dict say about the module and its arguments (a
    ``proj_size`` given by the caller says it is a projected LSTM)."""
    if "weight_ih" in sd or "weight_hh" in sd:
        return _infer_cell_config(sd)
    layers, reverse, bias = set(), False, False
    for key in sd:
        m = _KEY_RE.match(key)
        if m:
            layers.add(int(m.group(2)))
            reverse = reverse or bool(m.group(3))
            bias = bias or m.group(1).startswith("bias")
    cfg: Dict[str, Any] = {"bidirectional": reverse, "bias": bias}
    _require_matrices(sd, ("weight_ih_l0", "weight_hh_l0", "weight_hr_l0"))
    if layers:
        cfg["num_layers"] = max(layers) + 1
    w_hh, w_hr = sd.get("weight_hh_l0"), sd.get("weight_hr_l0")
    if w_hr is not None and w_hr.ndim == 2:
        cfg["kind"], cfg["proj_size"], cfg["hidden_size"] = "LSTM", w_hr.shape[0], w_hr.shape[1]
    elif w_hh is not None and w_hh.ndim == 2:
        rows, cols = w_hh.shape
        try:
            cfg["kind"], cfg["hidden_size"] = _kind_of(rows, cols, ("RNN", "GRU", "LSTM"),
                                                       "weight_hh_l0"), cols
        except ValueError:
            if not (proj_size and rows % 4 == 0):
                raise
            cfg["kind"], cfg["hidden_size"] = "LSTM", rows // 4   # weight_hr_l0 missing
    w_ih = sd.get("weight_ih_l0")
    if w_ih is not None and w_ih.ndim == 2:
        cfg["input_size"] = w_ih.shape[1]
    return cfg


def _kind_of(rows: int, cols: int, kinds: Tuple[str, str, str], key: str) -> str:
    """The module whose ``weight_hh`` is ``(rows, cols)``: (G * hidden_size, hidden_size)."""
    for kind, gates in zip(kinds, (1, 3, 4)):
        if cols and rows == gates * cols:
            return kind
    raise ValueError(f"state_dict: {key} has shape ({rows}, {cols}), which is (gates * "
                     f"hidden_size, hidden_size) for no nn.{kinds[0]} (1 gate), nn.{kinds[1]} "
                     f"(3) or nn.{kinds[2]} (4) (a projected LSTM also has weight_hr_l0 keys)")


def _infer_cell_config(sd: Mapping[str, np.ndarray]) -> Dict[str, Any]:
    cfg: Dict[str, Any] = {"bias": "bias_ih" in sd or "bias_hh" in sd, "num_layers": 1}
    _require_matrices(sd, ("weight_ih", "weight_hh"))
    w_hh, w_ih = sd.get("weight_hh"), sd.get("weight_ih")
    if w_hh is not None and w_hh.ndim == 2:
        rows, cols = w_hh.shape
        cfg["kind"] = _kind_of(rows, cols, ("RNNCell", "GRUCell", "LSTMCell"), "weight_hh")
        cfg["hidden_size"] = cols
    if w_ih is not None and w_ih.ndim == 2:
        cfg["input_size"] = w_ih.shape[1]
    return cfg


def _expected_keys(kind: str, cfg: Dict[str, Any]) -> Dict[str, Tuple[int, ...]]:
    H, D = cfg["hidden_size"], cfg["input_size"]
    G = _CELLS[kind.replace("Cell", "")][1]
    if kind.endswith("Cell"):
        keys = {"weight_ih": (G * H, D), "weight_hh": (G * H, H)}
        if cfg["bias"]:
            keys.update(bias_ih=(G * H,), bias_hh=(G * H,))
        return keys
    P = cfg.get("proj_size", 0)
    out = P or H
    ndir = 2 if cfg["bidirectional"] else 1
    keys = {}
    for k in range(cfg["num_layers"]):
        d_in = D if k == 0 else out * ndir
        for sfx in ("", "_reverse")[:ndir]:
            keys[f"weight_ih_l{k}{sfx}"] = (G * H, d_in)
            keys[f"weight_hh_l{k}{sfx}"] = (G * H, out)
            if cfg["bias"]:
                keys[f"bias_ih_l{k}{sfx}"] = (G * H,)
                keys[f"bias_hh_l{k}{sfx}"] = (G * H,)
            if P:
                keys[f"weight_hr_l{k}{sfx}"] = (P, H)
    return keys


def _check_state_dict(sd: Mapping[str, np.ndarray], kind: str, cfg: Dict[str, Any]) -> None:
    """Every expected key present with its shape, nothing else; one error listing all problems."""
    expected = _expected_keys(kind, cfg)
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    shapes = [f"{k}: got shape {tuple(sd[k].shape)}, expected {expected[k]}"
              for k in expected if k in sd and tuple(sd[k].shape) != expected[k]]
    if missing or unexpected or shapes:
        args = [f"input_size={cfg['input_size']}", f"hidden_size={cfg['hidden_size']}"]
        if not kind.endswith("Cell"):
            args += [f"num_layers={cfg['num_layers']}", f"bias={cfg['bias']}",
                     f"bidirectional={cfg['bidirectional']}"]
            if cfg.get("proj_size"):
                args.append(f"proj_size={cfg['proj_size']}")
        else:
            args.append(f"bias={cfg['bias']}")
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        parts.extend(shapes)
        raise ValueError(f"state_dict: does not match nn.{kind}({', '.join(args)}): "
                         + "; ".join(parts))


def _module_config(module: Any, kind: str) -> Dict[str, Any]:
    cfg = {"input_size": module.input_size, "hidden_size": module.hidden_size,
           "bias": bool(module.bias)}
    if kind in ("RNN", "RNNCell"):
        mode = getattr(module, "mode", None)
        nl = getattr(module, "nonlinearity", None)
        cfg["nonlinearity"] = "relu" if mode == "RNN_RELU" or nl == "relu" else "tanh"
    if not kind.endswith("Cell"):
        cfg.update(num_layers=module.num_layers, batch_first=bool(module.batch_first),
                   bidirectional=bool(module.bidirectional),
                   proj_size=int(getattr(module, "proj_size", 0)))
    return cfg


def _check_given(given: Dict[str, Any], cfg: Dict[str, Any]) -> None:
    """Type-check constructor arguments given with a state_dict, then apply them to ``cfg``.
    A value that disagrees with the keys is reported by _check_state_dict, with the full list
    of missing, unexpected and mis-shaped keys."""
    for key, value in given.items():
        if key in ("input_size", "hidden_size", "num_layers", "proj_size"):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise TypeError(f"{key}: got {value!r}, expected a non-negative int")
            value = int(value)
        elif key in ("bias", "batch_first", "bidirectional"):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{key}: got {value!r}, expected True or False")
            value = bool(value)
        cfg[key] = value


def from_torch(module_or_state_dict: Any, *, dtype: Any = None, prefix: str = "",
               **ctor_kwargs: Any) -> Any:
    """Convert a torch recurrent module (or its ``state_dict``) into its crnn counterpart.

    Parameters
    ----------
    module_or_state_dict : torch.nn.RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell, or a mapping
        A module (any ``num_layers``, ``bias``, ``batch_first``, ``bidirectional``; RNN's
        ``nonlinearity`` "tanh"/"relu"; LSTM's ``proj_size``; ``dropout`` acts only in training
        and is ignored), or a ``state_dict`` whose values are torch tensors or NumPy arrays.
    dtype : "float32" or "float64" (or torch.float32/torch.float64), optional
        Dtype of the computation and results.  Default: float64 if the weights are float64,
        else float32.
    prefix : str, optional
        Only for a state_dict: use the keys that start with ``prefix`` (e.g. ``"rnn."`` in the
        state_dict of a larger model), with the prefix removed; other keys are ignored.
    **ctor_kwargs
        The torch module's constructor arguments (``input_size``, ``hidden_size``,
        ``num_layers``, ``nonlinearity``, ``bias``, ``batch_first``, ``bidirectional``,
        ``proj_size``, ``dropout`` and ``device``, the last two ignored).  With a state_dict,
        the module (RNN, LSTM, GRU or a cell: from the keys and ``weight_hh``'s shape) and the
        arguments not given are read off its keys and shapes, except ``nonlinearity``
        ("tanh") and ``batch_first`` (False), which default as in torch; the ones given are
        checked against them.  With a module they must agree with the module's.

    Returns
    -------
    TorchRNN, TorchLSTM, TorchGRU, TorchRNNCell, TorchLSTMCell or TorchGRUCell

    Raises
    ------
    ValueError
        A state_dict with missing, unexpected or mis-shaped keys; inconsistent arguments.
    TypeError
        Anything else.
    """
    kind = _torch_rnn_kind(module_or_state_dict)
    given = dict(ctor_kwargs)
    if kind is not None:
        module = module_or_state_dict
        if prefix:
            raise TypeError("prefix: only applies to a state_dict, got a module")
        _reject_unknown(kind, given)
        cfg = _module_config(module, kind)
        sd = {k: _to_numpy(v, k) for k, v in module.state_dict().items()}
        for key, value in given.items():
            if key in cfg and value != cfg[key]:
                raise ValueError(f"{key}: got {value!r}, but the module has {key}={cfg[key]!r}")
    elif isinstance(module_or_state_dict, Mapping):
        raw = module_or_state_dict
        if prefix:
            raw = {k[len(prefix):]: v for k, v in raw.items() if k.startswith(prefix)}
            if not raw:
                raise ValueError(f"state_dict: no key starts with prefix {prefix!r}")
        sd = {str(k): _to_numpy(v, str(k)) for k, v in raw.items()}
        cfg = _infer_config(sd, given.get("proj_size", 0))
        kind = cfg.pop("kind", "RNN")
        _reject_unknown(kind, given)
        for key in ("input_size", "hidden_size"):
            if key not in given and key not in cfg:
                raise ValueError(f"state_dict: has no weight_ih_l0/weight_hh_l0 (or weight_ih/"
                                 f"weight_hh) key to read {key} from; expected the state_dict "
                                 f"of a torch recurrent module (keys {sorted(sd)[:8]}"
                                 f"{'...' if len(sd) > 8 else ''})")
        if kind in ("RNN", "RNNCell"):
            cfg.setdefault("nonlinearity", "tanh")
        if not kind.endswith("Cell"):
            cfg.setdefault("batch_first", False)
            cfg.setdefault("proj_size", 0)
        _check_given(given, cfg)
    else:
        raise TypeError(f"from_torch: got {type(module_or_state_dict).__name__}, expected a "
                        "torch.nn.RNN, LSTM, GRU, RNNCell, LSTMCell or GRUCell module or its "
                        "state_dict (a mapping of name -> tensor)")

    if cfg.get("proj_size", 0) and kind != "LSTM":
        raise ValueError(f"proj_size: got {cfg['proj_size']}, but only nn.LSTM has a "
                         f"projection, not nn.{kind}")
    if cfg.get("proj_size", 0) >= cfg["hidden_size"] > 0:
        raise ValueError(f"proj_size: got {cfg['proj_size']}, expected less than hidden_size "
                         f"({cfg['hidden_size']}), as torch requires")
    if cfg.get("nonlinearity", "tanh") not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity: got {cfg['nonlinearity']!r}, expected 'tanh' or 'relu'")
    for key in ("input_size", "hidden_size", "num_layers"):
        if key in cfg and cfg[key] < 1:
            raise ValueError(f"{key}: got {cfg[key]}, expected a positive int")
    _check_state_dict(sd, kind, cfg)

    if dtype is None:
        w = sd["weight_ih" if kind.endswith("Cell") else "weight_ih_l0"]
        dtype = "float64" if w.dtype == np.float64 else "float32"
    elif str(dtype) in ("torch.float32", "torch.float64", "torch.float", "torch.double"):
        dtype = "float64" if str(dtype) in ("torch.float64", "torch.double") else "float32"
    args = {k: cfg[k] for k in ("input_size", "hidden_size", "bias")}
    if kind in ("RNN", "RNNCell"):
        args["nonlinearity"] = cfg["nonlinearity"]
    if not kind.endswith("Cell"):
        args.update(num_layers=cfg["num_layers"], batch_first=cfg["batch_first"],
                    bidirectional=cfg["bidirectional"])
    if kind == "LSTM":
        args["proj_size"] = cfg["proj_size"]
    return _CLASSES[kind](sd, dtype=dtype, **args)


def _reject_unknown(kind: str, given: Dict[str, Any]) -> None:
    """Refuse keywords the torch module does not take; drop the ignored ones."""
    keys = _CTOR_KEYS[kind]
    unknown = [k for k in given if k not in keys]
    if unknown:
        raise TypeError(f"from_torch: got unexpected keyword argument(s) {sorted(unknown)} for "
                        f"a torch.nn.{kind}, expected its {list(keys)} or dtype, prefix")
    given.pop("device", None)
    given.pop("dropout", None)
