"""PyTorch ``nn.RNN`` -> crnn.

:func:`from_torch` turns a ``torch.nn.RNN`` module, or its ``state_dict`` plus the constructor
arguments, into a :class:`TorchRNN`: one compiled crnn stack (every layer and direction in one C
call) that takes and returns what the torch module does::

    import crnn
    rnn = crnn.from_torch(torch_rnn)          # or crnn.from_torch(state_dict, hidden_size=...)
    output, h_n = rnn(x, h0)                  # torch's layouts, NumPy arrays

Weight mapping (torch stores ``W`` as ``(out, in)``, crnn/Keras as ``(in, out)``)::

    kernel           = weight_ih_l{k}{_reverse}.T      (D_k, H)
    recurrent_kernel = weight_hh_l{k}{_reverse}.T      (H, H)
    bias             = bias_ih_l{k} + bias_hh_l{k}      (H,), summed in float64, then cast

Torch adds its two biases to two separate products; crnn adds their sum once.  The difference is
one rounding of ``b_ih + b_hh`` per unit, well inside float32 tolerance: the tests measure the
outputs against torch within 1e-5 absolute.

torch is only needed to pass a module, torch tensors or a ``PackedSequence``; a ``state_dict``
of NumPy arrays works without it.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from .. import _core

__all__ = ["TorchRNN", "from_torch"]

_CTOR_KEYS = ("input_size", "hidden_size", "num_layers", "nonlinearity", "bias", "batch_first",
              "dropout", "bidirectional", "proj_size", "device")
_KEY_RE = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


def _to_numpy(value: Any, name: str) -> np.ndarray:
    """A torch tensor (any device, requires_grad or not) or array-like as a NumPy array."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        t = value.detach().cpu()
        try:
            return t.numpy()
        except TypeError:  # bfloat16 and other dtypes NumPy lacks
            return t.float().numpy()
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name}: got {type(value).__name__}, expected a tensor or array ({err})") from None
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: got dtype {arr.dtype}, expected a real numeric array")
    return arr


def _torch_rnn_kind(obj: Any) -> Optional[str]:
    """'RNN', 'LSTM', 'GRU', 'RNNCell', ... if ``obj`` is a torch.nn recurrent module, else None."""
    for klass in type(obj).__mro__:
        if klass.__module__ == "torch.nn.modules.rnn" and klass.__name__ in (
                "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"):
            return klass.__name__
    return None


def _is_packed(obj: Any) -> bool:
    return type(obj).__name__ == "PackedSequence" and hasattr(obj, "batch_sizes")


class TorchRNN:
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

    def __init__(self, state_dict: Mapping[str, Any], *, input_size: int, hidden_size: int,
                 num_layers: int = 1, nonlinearity: str = "tanh", bias: bool = True,
                 batch_first: bool = False, bidirectional: bool = False,
                 dtype: Any = "float32") -> None:
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.nonlinearity = nonlinearity
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.dtype = _core.as_dtype(dtype)
        # Keep the torch-named weights (separate biases) for state_dict() and pickling.
        self._state = {k: np.array(v, dtype=np.result_type(v, np.float32), copy=True)
                       for k, v in state_dict.items()}
        self.handle = self._compile()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _compile(self) -> "_core.RNN":
        sd = self._state
        weights = []
        for k in range(self.num_layers):
            layer = []
            for sfx in (("", "_reverse") if self.bidirectional else ("",)):
                kernel = sd[f"weight_ih_l{k}{sfx}"].T
                recurrent = sd[f"weight_hh_l{k}{sfx}"].T
                b = None
                if self.bias:
                    b = (sd[f"bias_ih_l{k}{sfx}"].astype(np.float64)
                         + sd[f"bias_hh_l{k}{sfx}"].astype(np.float64)).astype(self.dtype)
                layer.append([kernel, recurrent, b])
            weights.append(layer)
        return _core.RNN(weights, activation=self.nonlinearity,
                         direction="bidirectional" if self.bidirectional else "forward",
                         dtype=self.dtype)

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Copies of the weights under torch's names (``torch.nn.RNN.load_state_dict`` takes
        them after ``torch.from_numpy``)."""
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
        return f"TorchRNN({self.input_size}, {self.hidden_size}{extra}, dtype={self.dtype.name})"

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
        B = xb.shape[0]
        h0 = self._initial_state(hx, B, unbatched)
        lens = None
        if lengths is not None:
            lens = _to_numpy(lengths, "lengths")
            if unbatched and lens.ndim == 0:
                lens = lens.reshape(1)
            if lens.dtype.kind not in "iu":
                raise ValueError(f"lengths: got dtype {lens.dtype}, expected integers")
        out, states = self.handle.forward(xb, initial_state=h0, lengths=lens,
                                          return_sequences=True, return_state=True)
        h_n = np.stack(states)                             # (L * ndir, B, H)
        if unbatched:
            return out[0], h_n[:, 0]
        if not self.batch_first:
            out = np.ascontiguousarray(out.transpose(1, 0, 2))
        return out, h_n

    forward = __call__

    def _initial_state(self, hx: Any, batch: int, unbatched: bool) -> Optional[List[np.ndarray]]:
        if hx is None:
            return None
        h = _to_numpy(hx, "hx")
        n = self.num_layers * self.num_directions
        want = (n, self.hidden_size) if unbatched else (n, batch, self.hidden_size)
        if h.shape != want:
            raise ValueError(f"hx: got shape {h.shape}, expected {want} "
                             "(num_layers * num_directions, batch, hidden_size)"
                             if not unbatched else
                             f"hx: got shape {h.shape}, expected {want} for an unbatched input")
        if unbatched:
            h = h[:, None]
        return [h[i] for i in range(n)]

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
        h0 = None
        if hx is not None:
            h = _to_numpy(hx, "hx")
            if sorted_idx is not None and h.ndim == 3:
                h = h[:, _to_numpy(sorted_idx, "sorted_indices")]
            h0 = self._initial_state(h, B, False)
        out, states = self.handle.forward(x.transpose(1, 0, 2), initial_state=h0, lengths=lens,
                                          return_sequences=True, return_state=True)
        h_n = np.stack(states)
        if unsorted_idx is not None:
            h_n = np.ascontiguousarray(h_n[:, _to_numpy(unsorted_idx, "unsorted_indices")])
        out_data = out.transpose(1, 0, 2)[mask]
        result = torch.nn.utils.rnn.PackedSequence(
            torch.from_numpy(np.ascontiguousarray(out_data)), packed.batch_sizes,
            sorted_idx, unsorted_idx)
        return result, h_n


# ---------------------------------------------------------------------------------------------
def _infer_config(sd: Mapping[str, np.ndarray]) -> Dict[str, Any]:
    """What the keys and shapes of an nn.RNN state_dict say about its constructor arguments."""
    layers, reverse, bias = set(), False, False
    for key in sd:
        m = _KEY_RE.match(key)
        if m:
            if m.group(1) == "weight_hr":
                raise NotImplementedError(
                    f"state_dict: got key {key!r}, which only an nn.LSTM with proj_size > 0 "
                    "has; crnn runs nn.RNN (SimpleRNN) only, not LSTM or GRU")
            layers.add(int(m.group(2)))
            reverse = reverse or bool(m.group(3))
            bias = bias or m.group(1).startswith("bias")
    cfg: Dict[str, Any] = {"bidirectional": reverse, "bias": bias}
    if layers:
        cfg["num_layers"] = max(layers) + 1
    w_hh = sd.get("weight_hh_l0")
    if w_hh is not None and w_hh.ndim == 2:
        rows, cols = w_hh.shape
        if cols and rows in (3 * cols, 4 * cols) and rows != cols:
            kind = "LSTM" if rows == 4 * cols else "GRU"
            raise NotImplementedError(
                f"state_dict: weight_hh_l0 has shape {w_hh.shape} = ({rows // cols}*hidden_size, "
                f"hidden_size), the layout of an nn.{kind}; crnn runs nn.RNN (SimpleRNN) only, "
                "not LSTM or GRU")
        cfg["hidden_size"] = cols
    w_ih = sd.get("weight_ih_l0")
    if w_ih is not None and w_ih.ndim == 2:
        cfg["input_size"] = w_ih.shape[1]
    return cfg


def _check_state_dict(sd: Mapping[str, np.ndarray], cfg: Dict[str, Any]) -> None:
    """Every expected key present with its shape, nothing else; one error listing all problems."""
    H, D, L = cfg["hidden_size"], cfg["input_size"], cfg["num_layers"]
    ndir = 2 if cfg["bidirectional"] else 1
    expected: Dict[str, Tuple[int, ...]] = {}
    for k in range(L):
        d_in = D if k == 0 else H * ndir
        for sfx in ("", "_reverse")[:ndir]:
            expected[f"weight_ih_l{k}{sfx}"] = (H, d_in)
            expected[f"weight_hh_l{k}{sfx}"] = (H, H)
            if cfg["bias"]:
                expected[f"bias_ih_l{k}{sfx}"] = (H,)
                expected[f"bias_hh_l{k}{sfx}"] = (H,)
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    shapes = [f"{k}: got shape {tuple(sd[k].shape)}, expected {expected[k]}"
              for k in expected if k in sd and tuple(sd[k].shape) != expected[k]]
    if missing or unexpected or shapes:
        what = (f"nn.RNN(input_size={D}, hidden_size={H}, num_layers={L}, bias={cfg['bias']}, "
                f"bidirectional={cfg['bidirectional']})")
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        parts.extend(shapes)
        raise ValueError(f"state_dict: does not match {what}: " + "; ".join(parts))


def from_torch(module_or_state_dict: Any, *, dtype: Any = None, prefix: str = "",
               **ctor_kwargs: Any) -> TorchRNN:
    """Convert a ``torch.nn.RNN`` (or its ``state_dict``) into a :class:`TorchRNN`.

    Parameters
    ----------
    module_or_state_dict : torch.nn.RNN or mapping
        A module (any ``num_layers``, ``nonlinearity`` "tanh"/"relu", ``bias``, ``batch_first``,
        ``bidirectional``; ``dropout`` acts only in training and is ignored), or a
        ``state_dict`` whose values are torch tensors or NumPy arrays.
    dtype : "float32" or "float64" (or torch.float32/torch.float64), optional
        Dtype of the computation and results.  Default: float64 if the weights are float64,
        else float32.
    prefix : str, optional
        Only for a state_dict: use the keys that start with ``prefix`` (e.g. ``"rnn."`` in the
        state_dict of a larger model), with the prefix removed; other keys are ignored.
    **ctor_kwargs
        ``torch.nn.RNN`` constructor arguments: ``input_size``, ``hidden_size``, ``num_layers``,
        ``nonlinearity``, ``bias``, ``batch_first``, ``bidirectional``, ``dropout`` (ignored),
        ``proj_size`` (0 only), ``device`` (ignored).  With a state_dict, those not given are
        read off its keys and shapes, except ``nonlinearity`` ("tanh") and ``batch_first``
        (False), which default as in torch; the ones given are checked against them.  With a
        module they must agree with the module's.

    Raises
    ------
    NotImplementedError
        ``nn.LSTM``, ``nn.GRU``, cells, or ``proj_size > 0``.
    ValueError
        A state_dict with missing, unexpected or mis-shaped keys; inconsistent arguments.
    TypeError
        Anything else.
    """
    unknown = [k for k in ctor_kwargs if k not in _CTOR_KEYS]
    if unknown:
        raise TypeError(f"from_torch: got unexpected keyword argument(s) {sorted(unknown)}, "
                        f"expected torch.nn.RNN's {list(_CTOR_KEYS)} or dtype, prefix")
    kind = _torch_rnn_kind(module_or_state_dict)
    if kind is not None and kind != "RNN":
        raise NotImplementedError(
            f"from_torch: got a torch.nn.{kind}; crnn runs torch.nn.RNN (Elman RNN, tanh or relu) "
            "only: LSTM, GRU and the *Cell modules are not supported yet")
    given = dict(ctor_kwargs)
    given.pop("device", None)
    given.pop("dropout", None)
    if kind == "RNN":
        module = module_or_state_dict
        mode = getattr(module, "mode", "RNN_TANH")
        cfg = {"input_size": module.input_size, "hidden_size": module.hidden_size,
               "num_layers": module.num_layers,
               "nonlinearity": "relu" if mode == "RNN_RELU" else "tanh",
               "bias": bool(module.bias), "batch_first": bool(module.batch_first),
               "bidirectional": bool(module.bidirectional),
               "proj_size": int(getattr(module, "proj_size", 0))}
        if prefix:
            raise TypeError("prefix: only applies to a state_dict, got a module")
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
        cfg = _infer_config(sd)
        for key in ("input_size", "hidden_size", "num_layers"):
            if key not in given and key not in cfg:
                raise ValueError(f"state_dict: has no weight_ih_l0/weight_hh_l0 key to read "
                                 f"{key} from; expected an nn.RNN state_dict (keys "
                                 f"{sorted(sd)[:8]}{'...' if len(sd) > 8 else ''})")
        cfg.setdefault("nonlinearity", "tanh")
        cfg.setdefault("batch_first", False)
        cfg.setdefault("proj_size", 0)
        for key, value in given.items():
            if key in ("input_size", "hidden_size", "num_layers", "proj_size"):
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                    raise TypeError(f"{key}: got {value!r}, expected a non-negative int")
                value = int(value)
            elif key in ("bias", "batch_first", "bidirectional"):
                if not isinstance(value, (bool, np.bool_)):
                    raise TypeError(f"{key}: got {value!r}, expected True or False")
                value = bool(value)
            # A given value that disagrees with the keys is reported by _check_state_dict
            # below, with the full list of missing, unexpected and mis-shaped keys.
            cfg[key] = value
    else:
        raise TypeError(f"from_torch: got {type(module_or_state_dict).__name__}, expected a "
                        "torch.nn.RNN module or its state_dict (a mapping of name -> tensor)")

    if cfg.get("proj_size", 0):
        raise NotImplementedError(f"proj_size: got {cfg['proj_size']}, expected 0 (torch only "
                                  "supports projections for LSTM, and crnn has no LSTM yet)")
    if cfg["nonlinearity"] not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity: got {cfg['nonlinearity']!r}, expected 'tanh' or 'relu'")
    for key in ("input_size", "hidden_size", "num_layers"):
        if cfg[key] < 1:
            raise ValueError(f"{key}: got {cfg[key]}, expected a positive int")
    _check_state_dict(sd, cfg)

    if dtype is None:
        dtype = "float64" if sd["weight_ih_l0"].dtype == np.float64 else "float32"
    elif str(dtype) in ("torch.float32", "torch.float64", "torch.float", "torch.double"):
        dtype = "float64" if str(dtype) in ("torch.float64", "torch.double") else "float32"
    return TorchRNN(sd, input_size=cfg["input_size"], hidden_size=cfg["hidden_size"],
                    num_layers=cfg["num_layers"], nonlinearity=cfg["nonlinearity"],
                    bias=cfg["bias"], batch_first=cfg["batch_first"],
                    bidirectional=cfg["bidirectional"], dtype=dtype)
