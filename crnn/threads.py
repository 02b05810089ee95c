"""Thread settings of the C core."""
from __future__ import annotations

import os

from crnn import _core
from crnn.layers.arguments import _check_int

# crnn parallelises by itself (a large batch is split across its own threads) and callers often
# run several forward calls at once with the GIL released, so its private BLAS runs each call on
# one thread. NumPy's BLAS is a different library and is never touched.
_core.set_blas_threads(1)


# Larger requests are clamped (the core itself uses at most 64 threads per call).
_MAX_THREADS = 1024


def _available_cpus() -> int:
    """CRNN_CPUS where the core took it, else the CPUs this process may run on."""
    m = _core.machine()
    if m["cpus_from"] == "env":
        return int(m["cpus"])
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def set_num_threads(n: int) -> None:
    """Set how many threads one crnn call may use (process-wide).

    A call with enough work (~2 Mflop) splits a batch of 8 or more into one contiguous range per
    thread, unless every layer's recurrent weights fill one core's L2 and the batch has at most
    16 rows a thread: that batch splits the hidden units of layers with >= 128 units across
    threads. So does a batch of 2-7 where each layer's recurrent weights fill a quarter of L2 per
    row a thread; other such batches split their rows down to a row a thread, or, in float32
    with 16 or more timesteps, pipeline (below) where the input projections cost at least as
    much as the recurrent products (at least half as much where the rows split unevenly, and
    over weights filling two L1 caches where they split evenly). Batch 1 splits the units
    where each layer's recurrent weights fill 3/2 of an L1 cache (two for a reset-before GRU;
    and then also for narrower layers whose input is at most half as wide), or else has a
    second thread make the input projection just ahead of the recurrence. Smaller calls
    run on the calling thread, and so does the share of a worker thread that does not start in
    time (no free core). For a fixed setting on a machine, results are bitwise reproducible,
    whichever threads ran them.

    Parameters
    ----------
    n : int, >= 1 (values above 1024 are taken as 1024; a call uses at most 64)
    """
    n = _check_int(n, "n")  # NumPy integers too, as everywhere else an int is asked for
    _core.set_num_threads(min(n, _MAX_THREADS))


def get_num_threads() -> int:
    """Threads one crnn call may use (default: the CPUs this process may run on, or CRNN_CPUS)."""
    return int(_core.get_num_threads())


set_num_threads(_available_cpus())
