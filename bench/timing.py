"""Timing primitives shared by bench/peers.py and its crnn worker processes (bench/crnn_worker.py).

Only the standard library: a worker imports this before it imports the crnn it times.
"""
from __future__ import annotations

import gc
import time
from typing import Callable, List


def settle(max_s: float = 0.3, window_s: float = 0.004, busy: float = 0.15) -> float:
    """Wait until no thread of this process burns CPU (idle BLAS/OpenMP/ORT workers spin for up
    to ~0.1 s after a multi-threaded call and would steal a core from the next implementation).
    Returns the seconds waited."""
    start = time.perf_counter()
    while True:
        c0, t0 = time.process_time(), time.perf_counter()
        time.sleep(window_s)
        t1 = time.perf_counter()
        if time.process_time() - c0 < busy * (t1 - t0) or t1 - start > max_s:
            return t1 - start


def time_calls(run: Callable[[], object], count: int, warm: bool) -> List[int]:
    """``count`` calls of ``run``, each timed alone (ns), the garbage collector off; one untimed
    call first when ``warm``."""
    samples: List[int] = []
    clock = time.perf_counter_ns
    if warm:
        run()
    gc.disable()
    try:
        for _ in range(count):
            t0 = clock()
            run()
            samples.append(clock() - t0)
    finally:
        gc.enable()
    return samples
