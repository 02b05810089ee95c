"""float64 against float32: crnn's speed in both, measured in one run.

    python bench/dtypes.py [--shapes "B,T,D,H;..."] [--rounds 10] [--out bench/results]

For each shape, one compiled handle per dtype (same weights, rounded to float32 first so both
compute the same model), at crnn's default thread count; their calls are interleaved in
chunks over several rounds and each call is timed on its own. Reports the median µs of each, the
ratio speed(float64) / speed(float32) (= time32 / time64; issue 4 asks >= 0.45 on the large
shapes) and each one's GFLOP/s (flops = 2*B*T*(D*H + H*H)). Writes dtypes.{md,json}.
A float64 GEMM does half the multiply-adds per vector instruction of a float32 one and moves
twice the bytes, so 0.5 is the ratio of the machine's dgemm and sgemm peaks.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time

import numpy as np

import crnn
import crnn._core
# bench/ is this script's directory, so on sys.path: the same --shapes syntax as peers.py
from peers import parse_shapes

DEFAULT_SHAPES = [(16, 50, 128, 128), (32, 50, 128, 256), (64, 20, 512, 1024),
                  (256, 100, 256, 512), (1, 100, 128, 256), (1, 1000, 32, 64)]


def bench_shape(shape, rounds: int, budget_s: float) -> dict:
    B, T, D, H = shape
    rng = np.random.default_rng(0)
    scale = 1.0 / np.sqrt(H)
    w32 = [rng.uniform(-scale, scale, s).astype(np.float32) for s in ((D, H), (H, H), (H,))]
    x32 = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)
    runs = {}
    for name in ("float32", "float64"):
        w = [a.astype(name) for a in w32]
        x = x32.astype(name)
        handle = crnn._core.RNN([[w]], activation="tanh", direction="forward", dtype=name)
        runs[name] = (handle.forward, x)
    outs = {name: fwd(x) for name, (fwd, x) in runs.items()}  # warm-up and a sanity check
    diff = float(np.abs(outs["float32"] - outs["float64"]).max())
    est = {}
    for name, (fwd, x) in runs.items():
        t = time.perf_counter()
        fwd(x)
        est[name] = time.perf_counter() - t
    per_round = {n: max(1, min(50, int(budget_s / rounds / max(e, 1e-7)))) for n, e in est.items()}
    samples = {n: [] for n in runs}
    for _ in range(rounds):
        for name, (fwd, x) in runs.items():
            fwd(x)  # untimed: wake the workers after the other dtype's chunk
            gc.disable()
            try:
                for _ in range(per_round[name]):
                    t = time.perf_counter_ns()
                    fwd(x)
                    samples[name].append(time.perf_counter_ns() - t)
            finally:
                gc.enable()
    flops = 2.0 * B * T * (D * H + H * H)
    med = {n: statistics.median(s) / 1e3 for n, s in samples.items()}
    return {"shape": list(shape), "median_us": med, "n": {n: len(s) for n, s in samples.items()},
            "gflops": {n: flops / (m * 1e3) for n, m in med.items()},
            "speed_ratio_f64_over_f32": med["float32"] / med["float64"],
            "max_abs_diff_f32_vs_f64": diff}


def write_markdown(path: str, report: dict) -> str:
    lines = ["# crnn float64 vs float32 (one run, interleaved)", "",
             f"Command: `python bench/dtypes.py`; crnn {crnn.__version__}, "
             f"{report['threads']} thread(s).", "",
             "| (B,T,D,H) | float32 µs | float64 µs | speed f64 / f32 | GFLOP/s f32 | GFLOP/s f64 |",
             "|---|---|---|---|---|---|"]
    for r in report["results"]:
        m, g = r["median_us"], r["gflops"]
        lines.append(f"| ({','.join(map(str, r['shape']))}) | {m['float32']:.1f} | "
                     f"{m['float64']:.1f} | {r['speed_ratio_f64_over_f32']:.2f} | "
                     f"{g['float32']:.1f} | {g['float64']:.1f} |")
    text = "\n".join(lines) + "\n"
    with open(path, "w") as f:
        f.write(text)
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", type=parse_shapes, default=DEFAULT_SHAPES)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--budget", type=float, default=4.0, help="seconds per dtype and shape")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "results"))
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    results = []
    for shape in args.shapes:
        r = bench_shape(shape, args.rounds, args.budget)
        print(f"{tuple(shape)}: f32 {r['median_us']['float32']:.1f} us, "
              f"f64 {r['median_us']['float64']:.1f} us, speed ratio "
              f"{r['speed_ratio_f64_over_f32']:.2f}", flush=True)
        results.append(r)
    report = {"threads": crnn.get_num_threads(), "results": results}
    with open(os.path.join(args.out, "dtypes.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(write_markdown(os.path.join(args.out, "dtypes.md"), report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
