"""Scaling of crnn's forward time with sequence length T and hidden size H.

    python bench/scaling.py [--out bench/results] [--threads N] [--dtype float32]

Times one compiled handle's forward (all hidden states returned) over a sweep of T at fixed
(B, D, H) and over a sweep of H at fixed (B, T, D), for batch 1 and batch 16; reports median
microseconds per call, time per step (T sweep) and GFLOP/s (H sweep), and writes
scaling.{md,json,png}. A linear cost in T shows as a flat time-per-step column; a cliff in H as
a sudden drop of GFLOP/s between neighbouring sizes. Needs matplotlib for the PNG only.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import crnn


def median_us(fn, budget_s: float = 0.4, max_calls: int = 2000) -> float:
    fn()  # warm-up (pool start, caches)
    times, start = [], time.perf_counter()
    while len(times) < max_calls and (len(times) < 5 or time.perf_counter() - start < budget_s):
        t = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t)
    return float(np.median(times)) / 1e3


def handle_and_input(b: int, t: int, d: int, h: int, dtype, rng):
    k = (rng.standard_normal((d, h)) / np.sqrt(d)).astype(dtype)
    r = (rng.standard_normal((h, h)) * 0.5 / np.sqrt(h)).astype(dtype)
    x = rng.uniform(-1, 1, (b, t, d)).astype(dtype)
    return crnn._core.RNN([[[k, r, np.zeros(h, dtype)]]], dtype=dtype), x


def sweep(points, dtype, rng):
    rows = []
    for b, t, d, h in points:
        handle, x = handle_and_input(b, t, d, h, dtype, rng)
        us = median_us(lambda: handle.forward(x))
        flops = 2.0 * b * t * (d * h + h * h)
        rows.append({"B": b, "T": t, "D": d, "H": h, "us": us, "us_per_step": us / t,
                     "gflops": flops / us / 1e3})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    ap.add_argument("--threads", type=int, default=None, help="crnn.set_num_threads (default: crnn's)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = ap.parse_args()
    if args.threads:
        crnn.set_num_threads(args.threads)
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    steps = [10, 20, 50, 100, 200, 500, 1000, 2000]
    sizes = [16, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512, 768, 1024]
    result = {"threads": crnn.get_num_threads(), "dtype": dtype.name, "T": {}, "H": {}}
    for b in (1, 16):
        result["T"][b] = sweep([(b, t, 64, 128) for t in steps], dtype, rng)
        result["H"][b] = sweep([(b, 50, 64, h) for h in sizes], dtype, rng)

    os.makedirs(args.out, exist_ok=True)
    lines = [f"# crnn scaling ({dtype.name}, {result['threads']} threads)", ""]
    for b in (1, 16):
        lines += [f"## T sweep, B={b}, D=64, H=128", "", "| T | µs/call | µs/step |", "|---|---|---|"]
        lines += [f"| {r['T']} | {r['us']:.1f} | {r['us_per_step']:.3f} |" for r in result["T"][b]]
        lines += ["", f"## H sweep, B={b}, T=50, D=64", "", "| H | µs/call | GFLOP/s |", "|---|---|---|"]
        lines += [f"| {r['H']} | {r['us']:.1f} | {r['gflops']:.1f} |" for r in result["H"][b]]
        lines.append("")
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(args.out, "scaling.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, "scaling.json"), "w") as f:
        json.dump(result, f, indent=1)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no PNG")
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for b in (1, 16):
        ax1.plot(steps, [r["us"] for r in result["T"][b]], "o-", label=f"B={b}, D=64, H=128")
        ax2.plot(sizes, [r["gflops"] for r in result["H"][b]], "o-", label=f"B={b}, T=50, D=64")
    ax1.set(xscale="log", yscale="log", xlabel="timesteps T", ylabel="µs per call",
            title="time against T (slope 1 = linear)")
    ax2.set(xscale="log", xlabel="hidden units H", ylabel="GFLOP/s", title="throughput against H")
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"crnn {crnn.__version__}, {dtype.name}, {result['threads']} threads")
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "scaling.png"), dpi=110)
    print("wrote", os.path.join(args.out, "scaling.png"))


if __name__ == "__main__":
    main()
