"""Thread settings of the C core."""
from __future__ import annotations

from crnn import _core

# crnn's BLAS is its own copy: limit it to one thread by default, since callers often run several
# forward calls at once (the GIL is released) and per-step GEMMs are small. NumPy's BLAS is a
# different library and is never touched.
_core.set_blas_threads(1)


def set_num_threads(n: int) -> None:
    """Set the threads one crnn call may use (currently: the BLAS threads inside each call).

    Parameters
    ----------
    n : int, >= 1
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n: got {type(n).__name__}, expected int >= 1")
    if n < 1:
        raise ValueError(f"n: got {n}, expected int >= 1")
    _core.set_blas_threads(n)


def get_num_threads() -> int:
    """The threads one crnn call may use (see :func:`set_num_threads`)."""
    return int(_core.get_blas_threads())
