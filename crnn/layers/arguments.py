"""Argument validation shared by the layers: every check raises ``TypeError`` / ``ValueError``
naming the argument, with "got X, expected Y" messages (PyTorch ``check_rnn_cell_forward_*``
style), and the Keras input-shape spellings resolved into one ``batch_input_shape``."""

from __future__ import annotations

import inspect
import os
from typing import Any, Dict, Optional, Tuple

import numpy as np

ArrayLike = Any
Shape = Tuple[Optional[int], ...]

#: Largest number of elements crnn allocates for one weight matrix.
MAX_MATRIX_ELEMENTS = 2**31 - 1


def _check_bool(value: Any, name: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name}: got {value!r}, expected True or False")


def _reject_unknown_kwargs(layer: Any, kwargs: Dict[str, Any]) -> None:
    """TypeError naming unknown constructor keywords and the accepted ones, read from the
    signature of the layer's ``__init__`` (so the list cannot drift from the constructor)."""
    if kwargs:
        params = inspect.signature(type(layer).__init__).parameters
        known = sorted(p for p, v in params.items()
                       if p != "self" and v.kind is not inspect.Parameter.VAR_KEYWORD)
        raise TypeError(f"{type(layer).__name__}: got unexpected keyword argument(s) "
                        f"{sorted(kwargs)}, expected only {known}")


def _check_int(value: Any, name: str, *, minimum: int = 1, allow_none: bool = False) -> Optional[int]:
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise TypeError(f"{name}: got {value!r} of type {type(value).__name__}, expected {what}"
                        + (" or None" if allow_none else ""))
    value = int(value)
    if value < minimum:
        what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name}: got {value}, expected {what}")
    return value


def _check_activation(value: Any, choices: Any, name: str = "activation") -> Optional[str]:
    """``value`` if it is None or one of ``choices`` (names), else ValueError naming ``name``."""
    if value is None or (isinstance(value, str) and value in choices):
        return value
    raise ValueError(f"{name}: got {value!r}, expected one of {sorted(choices)} or None")


def _check_rate(value: Any, name: str) -> float:
    """A dropout-like rate: a real number in [0, 1]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                      np.floating)):
        raise TypeError(f"{name}: got {value!r}, expected a float in [0, 1]")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name}: got {value!r}, expected a float in [0, 1]")
    return float(value)


def _check_dtype(value: Any) -> str:
    try:
        dt = np.dtype(value)
    except TypeError:
        dt = None
    if value is None or dt is None or dt not in (np.float32, np.float64):
        raise ValueError(f"dtype: got {value!r}, expected 'float32' or 'float64'")
    return dt.name


def _check_shape(value: Any, name: str, rank: int) -> Shape:
    """A tuple of ``rank`` entries, each a positive int or None."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise TypeError(f"{name}: got {value!r}, expected a tuple of {rank} ints or None")
    if len(value) != rank:
        raise ValueError(f"{name}: got {tuple(value)!r} of length {len(value)}, expected {rank} entries")
    return tuple(_check_int(v, name, allow_none=True) for v in value)


def _check_any_shape(value: Any, name: str, min_rank: int) -> Shape:
    """A tuple of at least ``min_rank`` entries, each a positive int or None."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise TypeError(f"{name}: got {value!r}, expected a tuple of ints or None")
    if len(value) < min_rank:
        raise ValueError(f"{name}: got {tuple(value)!r} of length {len(value)}, expected at least "
                         f"{min_rank} entries")
    return tuple(_check_int(v, name, allow_none=True) for v in value)


def _check_seed(value: Any) -> Any:
    if value is None or isinstance(value, np.random.Generator):
        return value
    return _check_int(value, "seed", minimum=0)


def _physical_memory() -> Optional[int]:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def _check_memory(what: str, need: int) -> None:
    ram = _physical_memory()
    if ram is not None and need > ram:
        raise MemoryError(f"{what}: building needs {need / 2**30:.1f} GiB, more than this "
                          f"machine's {ram / 2**30:.1f} GiB")


def _format_shape(shape: Any) -> str:
    return str(tuple(shape)) if isinstance(shape, tuple) else str(shape)


def _rng(seed: Any) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _input_shape_arg(shape: Any, min_rank: int) -> Shape:
    """Validate a ``build()`` / ``compute_output_shape()`` shape of any rank >= min_rank."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, (tuple, list)):
        raise TypeError(f"input_shape: got {shape!r}, expected a tuple (batch, ..., features)")
    if len(shape) < min_rank:
        raise ValueError(f"input_shape: got {tuple(shape)!r}, expected at least {min_rank} "
                         "dimensions")
    return tuple(_check_int(v, "input_shape", minimum=0, allow_none=True) for v in shape)


def _resolve_generic_shape(input_shape: Any, batch_input_shape: Any, batch_size: Any,
                           legacy: Optional[Tuple[str, Any]], min_rank: int) -> Optional[Shape]:
    """Combine Keras input-shape spellings of a non-recurrent layer into ``batch_input_shape``.

    ``legacy`` is Keras 2's one-int spelling (``("input_dim", n)`` -> ``input_shape=(n,)``,
    ``("input_length", n)`` -> ``input_shape=(n,)``).  Conflicts raise ValueError.
    """
    batch = _check_int(batch_size, "batch_size", allow_none=True)
    ins = None if input_shape is None else _check_any_shape(input_shape, "input_shape",
                                                            max(min_rank - 1, 1))
    bis = None if batch_input_shape is None else _check_any_shape(batch_input_shape,
                                                                  "batch_input_shape", min_rank)
    leg = None
    if legacy is not None and legacy[1] is not None:
        leg = (_check_int(legacy[1], legacy[0]),)
    if bis is None:
        base = ins if ins is not None else leg
        if base is None:
            return None
        bis = (batch,) + tuple(base)
    for arg, val, want in (("input_shape", ins, bis[1:]), ("batch_size", batch, bis[0]),
                           (legacy[0] if legacy else "", leg, bis[1:])):
        if val is not None and val != want:
            raise ValueError(f"{arg}: got {val!r}, which conflicts with the input shape {bis!r} "
                             "given by the other input-shape arguments")
    return bis


# --------------------------------------------------------------------------- #
# Activations of Dense / Activation (in place on a fresh float array)
