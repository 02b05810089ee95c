"""Sequences per second on Dask with 1 and 2 workers, beside plain local ``model.predict``.

    python bench/dask_scaling.py [--rows 16384] [--timesteps 50] [--features 32] [--units 128]
                                 [--chunk-rows 1024] [--repeat 5] [--out bench/results]

(after ``pip install -e ".[dask]"``). One model, ``SimpleRNN(units, return_sequences=True)`` ->
``SimpleRNN(units)`` -> ``Dense(1)``, float32, scores ``rows`` sequences stored in a ``.npy``
file: locally with ``model.predict`` on the array in memory (crnn at 1 and at 2 threads), and
with ``crnn.dask.predict`` on a ``distributed.LocalCluster`` of 1 and of 2 worker processes (one
Dask thread and one crnn thread each), every task reading its own rows of the file, as
``python -m crnn predict`` does; the cluster runs twice: with Dask's defaults, and with
``MALLOC_MMAP_THRESHOLD_`` set for the workers (see below).  Each setting runs once to warm up
(the model reaches the workers, the handles are built), then ``repeat`` times; the table gives
the best run (the machine is shared: the best is the least disturbed) and the median.  Every Dask
result is checked bitwise against local predict at 1 thread.  Writes ``dask_scaling.{md,json}``
to ``--out``.

Dask's nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_=65536``.  Setting any glibc malloc
threshold turns off glibc's dynamic mmap threshold, so every buffer of 128 KiB or more allocated
in a call is mapped, faulted in and unmapped again on every call.  That made a chunk ~1.5x slower
than in a plain process while crnn allocated its workspace per call; its handles now keep their
workspaces, and only the outputs (and NumPy's temporaries) are still allocated per call, so the
difference depends on the model's output size.  ``MALLOC_MMAP_THRESHOLD_`` (here 32 MiB, given
to the workers through ``distributed.nanny.pre-spawn-environ``) restores the reuse of freed
memory.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from typing import Tuple

import dask
import numpy as np

import crnn
import crnn.dask
from crnn._dask_cli import _input_array


#: glibc's mmap threshold given to the tuned workers (32 MiB, glibc's own dynamic maximum).
MMAP_THRESHOLD = 32 << 20


def _cluster_setting(workers: int, tuned: bool) -> str:
    return (f"LocalCluster, {workers} worker(s) x 1 thread x 1 crnn"
            + (", MALLOC_MMAP_THRESHOLD_" if tuned else ""))


def _model(features: int, units: int) -> crnn.Sequential:
    return crnn.Sequential([
        crnn.SimpleRNN(units, return_sequences=True, input_shape=(None, features), seed=1),
        crnn.SimpleRNN(units, seed=2),
        crnn.Dense(1, activation="sigmoid", seed=3),
    ])


def _seconds(run, repeat: int) -> Tuple[float, float]:
    """(best, median) seconds of ``repeat`` runs after one warm-up run."""
    run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=16384)
    ap.add_argument("--timesteps", type=int, default=50)
    ap.add_argument("--features", type=int, default=32)
    ap.add_argument("--units", type=int, default=128)
    ap.add_argument("--chunk-rows", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = ap.parse_args()
    from distributed import Client, LocalCluster

    model = _model(args.features, args.units)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, args.timesteps, args.features), dtype=np.float32)
    rows = []

    def record(setting: str, times: Tuple[float, float]) -> None:
        best, median = times
        rows.append({"setting": setting, "best_s": best, "median_s": median,
                     "seq_per_s": args.rows / best, "seq_per_s_median": args.rows / median})
        print(f"  {setting:<44} best {best:7.3f} s {args.rows / best:10,.0f} seq/s, median "
              f"{median:7.3f} s {args.rows / median:10,.0f} seq/s", flush=True)

    print(f"{args.rows} sequences of {args.timesteps} x {args.features}, SimpleRNN({args.units}) "
          f"x 2 + Dense(1), float32, chunks of {args.chunk_rows} rows, {args.repeat} runs each")
    saved = crnn.get_num_threads()
    crnn.set_num_threads(1)
    want = model.predict(x, verbose=0)
    for threads in (1, 2):
        crnn.set_num_threads(threads)
        record(f"local model.predict, {threads} crnn thread(s)",
               _seconds(lambda: model.predict(x, verbose=0), args.repeat))
    crnn.set_num_threads(saved)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.npy")
        np.save(path, x)
        xd = _input_array(path, "npy", x.shape, x.dtype, args.chunk_rows)
        y = crnn.dask.predict(model, xd)
        got = y.compute(scheduler="threads")
        assert np.array_equal(got, want), "threaded scheduler differs from local predict"
        record("Dask threaded scheduler, 2 threads x 1 crnn",
               _seconds(lambda: y.compute(scheduler="threads"), args.repeat))
        # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's
        # dynamic mmap threshold: every buffer of 128 KiB or more crnn allocates per call is then
        # mapped and unmapped again (page faults). MALLOC_MMAP_THRESHOLD_ restores heap reuse.
        for tuned in (False, True):
            env = {"distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD}
            for workers in (1, 2):
                with dask.config.set(env if tuned else {}), \
                        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                     dashboard_address=None, silence_logs=40) as cluster, \
                        Client(cluster) as client:
                    got = client.compute(y).result()
                    assert np.array_equal(got, want), f"{workers} worker(s) differ from local"
                    record(_cluster_setting(workers, tuned),
                           _seconds(lambda: client.compute(y).result(), args.repeat))
                os.environ.pop("MALLOC_MMAP_THRESHOLD_", None)  # the nanny set it here too

    by = {r["setting"]: r["seq_per_s"] for r in rows}
    local1 = by["local model.predict, 1 crnn thread(s)"]
    local2 = by["local model.predict, 2 crnn thread(s)"]
    lines = ["| setting | best s | sequences/s (best) | (median) | vs local, 1 thread |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['setting']} | {r['best_s']:.3f} | {r['seq_per_s']:,.0f} | "
              f"{r['seq_per_s_median']:,.0f} | {r['seq_per_s'] / local1:.2f} |" for r in rows]
    ratios = {}
    summary = []
    for tuned in (False, True):
        one, two = by[_cluster_setting(1, tuned)], by[_cluster_setting(2, tuned)]
        ratios["tuned" if tuned else "default"] = two / one
        summary.append(f"{'MALLOC_MMAP_THRESHOLD_ set' if tuned else 'Dask defaults'}: 2 workers / "
                       f"1 worker {two / one:.2f}x; 1 worker / local 1 thread {one / local1:.2f}; "
                       f"2 workers / local 2 threads {two / local2:.2f}")
    summary = "\n".join(summary)
    print()
    print("\n".join(lines))
    print(summary)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "dask_scaling.md"), "w") as f:
        f.write("\n".join(lines) + "\n\n" + summary + "\n")
    with open(os.path.join(args.out, "dask_scaling.json"), "w") as f:
        json.dump({"args": vars(args), "rows": rows, "ratio_2_over_1_workers": ratios}, f,
                  indent=1)


if __name__ == "__main__":
    main()
