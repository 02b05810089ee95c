#!/usr/bin/env python
"""Where the time of one small crnn call goes: C core alone vs the Python entry points.

Run from the repository root (needs a C compiler and ``make``; crnn installed in this Python)::

    python bench/overhead.py                    # (B,T,D,H) = (8,2,10,3), the seed example
    python bench/overhead.py --shapes "8,2,10,3;1,10,4,8;16,50,128,128"

It builds ``csrc/`` into a temporary ``libcrnn.a`` (``make -C csrc``, ``OPT=-O3`` like setup.py)
and links ``bench/c_forward_timing.c`` against it, so the C figures come from the source tree,
the Python figures from the installed ``crnn``: rebuild/reinstall both from the same tree before
comparing. Every figure is the median over batches of back-to-back calls (ns per call), float32,
crnn's default thread count. Nothing is written; a Markdown table is printed.

Rows:
  C: crnn_rnn_forward, library workspace   the exact C call handle.forward(x) makes
  C: ... caller's workspace                 the same with a preallocated workspace (no malloc)
  C: ... linear activation                  the same without tanh (what the activation costs)
  Python: handle.forward(x)                 prebuilt crnn._core.RNN, float32 C-contiguous x
  Python: handle.forward(x64)               the same with float64 x (conversion inside)
  Python: handle.workspace_size(B, T)       floor: one Cython method call + one tiny C call
  Python: np.empty((B,T,H), float32)        one output allocation through NumPy's Python API
  Python: layer(x) / model.predict(x)       the Keras-like API (SimpleRNN, return_sequences=True)
  Python: crnn.simple_rnn_stack(x, w)       functional API (builds a handle every call)
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import crnn
import crnn._core

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def per_call_ns(fn, batches: int = 51, batch_s: float = 0.002) -> float:
    """Median ns per call over batches of back-to-back calls, minus the empty-loop cost."""
    fn()
    t0 = time.perf_counter_ns()
    fn()
    one = max(time.perf_counter_ns() - t0, 50)
    reps = max(1, min(100_000, int(batch_s * 1e9 / one)))
    rng = range(reps)
    out = []
    for _ in range(batches):
        t0 = time.perf_counter_ns()
        for _ in rng:
            fn()
        out.append((time.perf_counter_ns() - t0) / reps)
    return statistics.median(out)


def build_c_driver(tmp: str) -> str:
    """Build libcrnn.a from csrc/ and the timing driver; return the driver's path."""
    build = os.path.join(tmp, "build")
    make = ["make", "-s", "-C", os.path.join(ROOT, "csrc"), f"BUILD={build}",
            f"PYTHON={sys.executable}", "OPT=-O3"]
    subprocess.run(make + ["lib"], check=True, stdout=subprocess.DEVNULL)
    libs = subprocess.run(make + ["print-libs"], check=True, capture_output=True,
                          text=True).stdout.split("\n")
    inc, link = libs[0].strip(), libs[1].strip()
    exe = os.path.join(tmp, "c_forward_timing")
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-O2", "-std=c99", inc, os.path.join(HERE, "c_forward_timing.c"),
                    "-o", exe] + link.split(), check=True)
    return exe


def c_times(exe: str, shape, threads: int) -> dict:
    B, T, D, H = shape
    out = subprocess.run([exe, str(B), str(T), str(D), str(H), str(threads)], check=True,
                         capture_output=True, text=True).stdout
    res = {}
    for line in out.splitlines():
        name, *vals = line.split()
        res[name] = float(vals[0])
    return res


def python_times(shape) -> dict:
    B, T, D, H = shape
    rng = np.random.default_rng(0)
    K = rng.uniform(-0.3, 0.3, (D, H)).astype(np.float32)
    R = rng.uniform(-0.3, 0.3, (H, H)).astype(np.float32)
    b = rng.uniform(-0.3, 0.3, (H,)).astype(np.float32)
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    x64 = x.astype(np.float64)
    handle = crnn._core.RNN([[[K, R, b]]], dtype="float32")
    res = {}
    res["empty Python call (harness floor, subtracted nowhere)"] = per_call_ns(lambda: None)
    res["handle.forward(x)"] = per_call_ns(lambda: handle.forward(x))
    res["handle.forward(x64) (float64 x, converted)"] = per_call_ns(lambda: handle.forward(x64))
    res["handle.workspace_size(B, T)"] = per_call_ns(lambda: handle.workspace_size(B, T))
    res["np.empty((B,T,H), float32)"] = per_call_ns(lambda: np.empty((B, T, H), np.float32))
    try:
        layer = crnn.SimpleRNN(H, return_sequences=True, input_shape=(T, D))
        layer.set_weights([K, R, b])
        layer(x)
        res["SimpleRNN(return_sequences=True)(x)"] = per_call_ns(lambda: layer(x))
        model = crnn.Sequential()
        model.add(crnn.SimpleRNN(H, return_sequences=True, input_shape=(T, D)))
        model.layers[0].set_weights([K, R, b])
        model.predict(x)
        res["Sequential.predict(x)"] = per_call_ns(lambda: model.predict(x))
    except Exception as err:  # the Keras-like API may still be under construction
        res[f"layer/model API unavailable ({type(err).__name__}: {err})"] = float("nan")
    w = [[[K, R, b]]]
    res["crnn.simple_rnn_stack(x, w)"] = per_call_ns(lambda: crnn.simple_rnn_stack(x, w))
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", default="8,2,10,3", help='"B,T,D,H;..." (default 8,2,10,3)')
    p.add_argument("--no-c", action="store_true", help="skip building/timing the C driver")
    args = p.parse_args(argv)
    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes.split(";") if s.strip()]
    threads = crnn.get_num_threads()
    tmp = tempfile.mkdtemp(prefix="crnn-overhead-")
    try:
        exe = None
        if not args.no_c:
            try:
                exe = build_c_driver(tmp)
            except (subprocess.CalledProcessError, FileNotFoundError) as err:
                print(f"note: C driver not built ({err}); C rows skipped", file=sys.stderr)
        print(f"crnn {crnn.__version__}, {threads} thread(s), float32; median ns per call\n")
        for shape in shapes:
            rows = []
            c = c_times(exe, shape, threads) if exe else {}
            if c:
                rows.append(("C: crnn_rnn_forward, library workspace (what forward() calls)",
                             c["lib_workspace"]))
                rows.append(("C: crnn_rnn_forward, caller's workspace", c["own_workspace"]))
                rows.append(("C: crnn_rnn_forward, library workspace + final state",
                             c["with_state"]))
                rows.append(("C: crnn_rnn_forward, linear activation (tanh cost = difference)",
                             c["linear_act"]))
            py = python_times(shape)
            rows += [("Python: " + k, v) for k, v in py.items()]
            print(f"### (B,T,D,H) = {shape}" + (f", workspace {int(c['workspace_bytes'])} B"
                                                 if c else ""))
            print()
            print("| call | ns | minus C call |")
            print("|---|---|---|")
            base = c.get("lib_workspace")
            for name, v in rows:
                runs_rnn = name.startswith("Python") and any(
                    s in name for s in ("forward", "SimpleRNN", "predict", "simple_rnn"))
                extra = f"{v - base:.0f}" if base is not None and runs_rnn else ""
                print(f"| {name} | {v:.0f} | {extra} |")
            print()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
