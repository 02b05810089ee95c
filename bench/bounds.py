"""What the hardware allows at small batches: floors under any implementation's time, from
figures measured on this machine, set against the targets of a ``bench/peers.py`` run.

    python bench/peers.py --cell all --out bench/results/run   # first, on the same machine
    python bench/bounds.py --peers bench/results/run/peers.json --out bench/results/run

Measured here (``bench/membw.c``, compiled on first use like ``bench/onednn_rnn.c``):

* one core's read bandwidth from L1 and from L2 (buffers of half of each, as
  ``crnn._core.machine()`` reports them);
* the one-way hand-off of a cache line between two cores (a ping-pong, halved): the fastest of
  20 short probes, with their median and slowest beside it, since on a VM it depends on where
  the host runs the two vCPUs at the moment (a 2-vCPU Zen 4 measured 45-50 ns in some spells and
  170-200 ns in others, seconds apart);
* a units split's step with nothing but its reads, for the batch-1 layers crnn splits over two
  cores: two threads each sum their share of the step's weights (a buffer of their own) and
  meet after every pass as crnn's threads meet after every step; the best of 5 probes of 2,000
  passes. It holds what the two figures above leave out: that the two cores finish their passes
  at slightly different times, and that a meeting costs more than one hand-off;
* the sgemm peak on 1 and 2 threads is the peers run's own (its ``gemm_peak``).

For a layer of H units, G gates (SimpleRNN 1, LSTM 4, GRU 3) and B rows, a step must read the
recurrent weights, G·H·H·4 bytes in float32, and do 2·B·G·H·H flops. Shared by ``c`` cores (1 or
2), a step takes at least

    step(c) = max(G·H·H·4 / c / bandwidth, 2·B·G·H·H / (c · peak_1)) + (c > 1) · hand-off

where bandwidth is L1's if a core's share fits in L1, else L2's (an optimistic floor: a share
larger than L2 streams from L3). The input projection, 2·B·T·G·H·D flops, is one GEMM at the
peak at best. The floor under a call is the better way of placing the two:

    floor = min(max(T · step(1), projection / peak_1),  # steps on one core, projection on the other
                T · step(2) + projection / peak_2)      # both cores on both

The issue's small-batch target for a shape is ``best peer / 2``, or the time at 80 % of the
two-thread peak where that is slower: ``required = max(best / 2, flops / (0.8 · peak_2))``. A
target is **met** when crnn's time is at most ``required``, **ruled out** when even the floor is
above it, and **open** otherwise. The same target on the run's paired figures (``peers.py``:
round by round, the fastest peer over crnn and crnn's share of the peak probed at the round's
end) gives a second verdict, met where the paired speed-up is at least 2 or the paired share at
least 80 % (crnn <= max(a, b) is crnn <= a or crnn <= b). For batch 1 the per-step figure is
also measured directly (slope between T and 3T, as the batch-1 target is stated per step) and
set against the time to stream the step's weights from L2 on the cores crnn's plan uses (the
issue's 1.5× target), and, where that is two cores, against the measured step of reads and
meetings above, for layers of 32 units or more (a step of a tinier one is a few instructions;
the tiny-call target covers those).

The peers' times are the run's; the bandwidths are measured when this script runs: run it right
after ``peers.py`` on the same machine.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import time
from typing import Dict, List, Optional

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import crnn  # noqa: E402
from cbuild import build_shared  # noqa: E402
from timing import settle  # noqa: E402

# Seconds of calls before a batch-1 step is timed. Building a layer runs NumPy's BLAS (its
# initialisers' QR), whose idle worker then spins on the other CPU for ~0.1 s (OpenBLAS's thread
# timeout): crnn's two-thread calls meanwhile run at about one thread's speed (measured on a
# 2-vCPU Zen 4: SimpleRNN (1,300,16,256) 780-880 us for ~0.2 s, then 450-520).
WARM_S = 0.3
# Short hand-off probes (20,000 round trips each), spread over about a second.
HANDOFF_PROBES = 20
# Probes of the two-core step of reads and meetings, and the passes of each.
SYNCED_PROBES, SYNCED_PASSES = 5, 2000

SOURCE = os.path.join(HERE, "membw.c")
GATES = crnn._core.GATES  # gates per cell: simple 1, lstm 4, gru 3
LAYERS = {"simple": crnn.SimpleRNN, "lstm": crnn.LSTM, "gru": crnn.GRU}


def build() -> str:
    """Path of the compiled probe, built now unless the cache holds it."""
    return build_shared(SOURCE, "membw", ["-O2", "-march=native", "-std=c11", "-Wall"],
                        ["-pthread"])


def _probe() -> ctypes.CDLL:
    """The compiled probe, loaded, its functions typed."""
    lib = ctypes.CDLL(build())
    lib.membw_read_gbps.restype = ctypes.c_double
    lib.membw_read_gbps.argtypes = [ctypes.c_size_t, ctypes.c_int]
    lib.membw_handoff_ns.restype = ctypes.c_double
    lib.membw_handoff_ns.argtypes = [ctypes.c_int]
    lib.membw_synced_ns.restype = ctypes.c_double
    lib.membw_synced_ns.argtypes = [ctypes.c_size_t, ctypes.c_int]
    return lib


def synced_step(share_bytes: int) -> float:
    """Seconds of a two-core step that only reads `share_bytes` on each core and meets after it
    (membw_synced_ns): the best of SYNCED_PROBES probes; NaN with one CPU."""
    lib = _probe()
    got = []
    for _ in range(SYNCED_PROBES):
        got.append(lib.membw_synced_ns(share_bytes, SYNCED_PASSES))
        time.sleep(0.05)
    got = [g for g in got if g > 0]
    return min(got) * 1e-9 if got else float("nan")


def measure_machine() -> Dict[str, float]:
    """L1 / L2 read bandwidth of one core (bytes/s), and the core-to-core hand-off (s)."""
    lib = _probe()
    m = crnn._core.machine()
    l1, l2 = int(m["l1_bytes"]), int(m["l2_bytes"])
    bw1 = max(lib.membw_read_gbps(l1 // 2, 400) for _ in range(3)) * 1e9
    bw2 = max(lib.membw_read_gbps(l2 // 2, 60) for _ in range(3)) * 1e9
    # two spinning threads on one CPU would wait a time slice per hand-off: not measured there
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    hand = []
    for _ in range(HANDOFF_PROBES if (cpus or 1) >= 2 else 0):
        hand.append(lib.membw_handoff_ns(20_000))
        time.sleep(0.05)  # spread over about a second: the spells last seconds
    hand = sorted(h * 1e-9 for h in hand if h > 0)
    nan = float("nan")
    return {"l1_bytes": l1, "l2_bytes": l2, "l1_bw": bw1, "l2_bw": bw2,
            "handoff": hand[0] if hand else nan,
            "handoff_median": float(np.median(hand)) if hand else nan,
            "handoff_max": hand[-1] if hand else nan, "isa": m["isa"]}


def step_floor(G: int, B: int, H: int, cores: int, mach: Dict[str, float], peak1: float,
               es: int = 4) -> float:
    """Seconds a step takes at least on `cores` cores (see the module docstring)."""
    share = G * H * H * es / cores
    bw = mach["l1_bw"] if share <= mach["l1_bytes"] else mach["l2_bw"]
    t = max(share / bw, 2.0 * B * G * H * H / (cores * peak1))
    return t + (mach["handoff"] if cores > 1 else 0.0)


def call_floor(cell: str, shape: List[int], mach: Dict[str, float], peak1: float,
               peak2: float) -> float:
    """Seconds a whole call takes at least (see the module docstring)."""
    B, T, D, H = shape
    G = GATES[cell]
    proj = 2.0 * B * T * G * H * D
    one = max(T * step_floor(G, B, H, 1, mach, peak1), proj / peak1)
    two = T * step_floor(G, B, H, 2, mach, peak1) + proj / peak2
    return min(one, two)


def measured_step(cell: str, H: int, T: int = 100, D: int = 16) -> Dict[str, object]:
    """crnn's seconds per step at batch 1, default threads: slope between T and 3T."""
    layer = LAYERS[cell](H, return_sequences=True, seed=0)
    xs = {t: np.random.default_rng(0).standard_normal((1, t, D)).astype(np.float32)
          for t in (T, 3 * T)}
    layer(xs[T])
    settle()
    for x in xs.values():
        end = time.perf_counter() + WARM_S / 2
        while time.perf_counter() < end:
            layer(x)

    def best(x: np.ndarray) -> float:
        out = []
        for _ in range(3):
            ts = []
            for _ in range(60):
                t0 = time.perf_counter()
                layer(x)
                ts.append(time.perf_counter() - t0)
            out.append(float(np.median(ts)))
        return min(out)

    step = (best(xs[3 * T]) - best(xs[T])) / (2 * T)
    mode, threads = layer._get_handle().plan(1, T)
    return {"step": step, "mode": mode, "threads": threads}


def _us(row: Optional[dict]) -> Optional[float]:
    return None if not row or row.get("status", "ok") != "ok" else row.get("median_us")


def run(peers: dict, mach: Dict[str, float], max_batch: int) -> dict:
    peak = {int(k): v * 1e9 for k, v in peers["gemm_peak"]["gflops"].items()}
    peak1, peak2 = peak[1], peak.get(2, 2 * peak[1])
    rows, steps = [], []
    for res in peers["results"]:
        B, T, D, H = res["shape"]
        if res["dtype"] != "float32" or B > max_batch:
            continue
        impls = res["impls"]
        crnn_row = impls.get(res["crnn_default"]) or {}
        crnn_row = impls.get(crnn_row.get("alias_of"), crnn_row)
        best_us, crnn_us = _us(impls.get(res["best_peer"])), _us(crnn_row)
        if best_us is None or crnn_us is None:
            continue
        required = max(best_us / 2, res["flops"] / (0.8 * peak2) * 1e6)
        floor = call_floor(res["cell"], res["shape"], mach, peak1, peak2) * 1e6
        verdict = ("met" if crnn_us <= required else
                   "ruled out" if floor > required else "open")
        # the same target on the round-by-round figures (peers.py's paired()): crnn <= max(best
        # / 2, time at 80 % of the peak) is a speed-up of 2 or 80 % of the peak
        pr = res.get("paired") or {}
        ps, pp = pr.get("speedup"), pr.get("pct_peak")
        paired_verdict = (None if ps is None and pp is None else
                          "met" if (ps or 0) >= 2 or (pp or 0) >= 80 else
                          "ruled out" if floor > required else "open")
        rows.append({"cell": res["cell"], "shape": res["shape"], "best_peer": res["best_peer"],
                     "best_peer_us": best_us, "required_us": required, "crnn_us": crnn_us,
                     "floor_us": floor, "verdict": verdict, "paired_speedup": ps,
                     "paired_pct_peak": pp, "paired_verdict": paired_verdict})
    for cell in sorted({r["cell"] for r in rows}, key=list(GATES).index):
        for H in sorted({r["shape"][3] for r in rows
                         if r["cell"] == cell and r["shape"][0] == 1 and r["shape"][3] >= 32}):
            G = GATES[cell]
            got = measured_step(cell, H)
            cores = got["threads"] if got["mode"] == "units" else 1
            l2_bound = G * H * H * 4 / cores / mach["l2_bw"]
            synced = synced_step(G * H * H * 4 // 2) if cores == 2 else None
            steps.append({"cell": cell, "H": H, "step_us": got["step"] * 1e6,
                          "mode": got["mode"], "cores": cores, "l2_bound_us": l2_bound * 1e6,
                          "ratio": got["step"] / l2_bound,
                          "synced_us": synced * 1e6 if synced is not None else None,
                          "synced_ratio": got["step"] / synced if synced else None,
                          "floor_us": min(step_floor(G, 1, H, c, mach, peak1)
                                          for c in (1, 2)) * 1e6})
    return {"machine": mach, "peak_gflops": {"1": peak1 / 1e9, "2": peak2 / 1e9},
            "shapes": rows, "batch1_steps": steps}


def markdown(rep: dict, source: str) -> str:
    m = rep["machine"]
    out = [
        "# Floors at small batches: what the hardware allows",
        "",
        f"Peers run: `{source}`; sgemm peak of that run {rep['peak_gflops']['1']:.0f} / "
        f"{rep['peak_gflops']['2']:.0f} GFLOP/s on 1 / 2 threads. Measured by bounds.py "
        f"({m['isa']}): "
        f"one core reads {m['l1_bw'] / 1e9:.0f} GB/s from L1 ({m['l1_bytes'] // 1024} KiB), "
        f"{m['l2_bw'] / 1e9:.0f} GB/s from L2 ({m['l2_bytes'] // 1024} KiB); a cache line "
        f"goes from one core to the other in {m['handoff'] * 1e9:.0f} ns"
        + (f" at best (median {m['handoff_median'] * 1e9:.0f} ns, slowest "
           f"{m['handoff_max'] * 1e9:.0f} ns over {HANDOFF_PROBES} probes; the floors take the "
           "best)" if "handoff_median" in m else "") + ".",
        "",
        "required = max(best peer / 2, time at 80 % of the 2-thread peak); floor: the least time "
        "any implementation needs (bench/bounds.py's docstring). met: crnn <= required; ruled "
        "out: floor > required; open: neither. Paired: the same target on the run's "
        "round-by-round figures (peers.py: the fastest peer over crnn, and crnn's share of the "
        "GEMM peak probed at each round's end, medians over the rounds): met where the paired "
        "speed-up is at least 2 or the paired share at least 80 %.",
        "",
        "| cell | (B,T,D,H) | best peer | its µs | required µs | crnn µs | floor µs | verdict "
        "| paired speed-up / % peak | paired verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rep["shapes"]:
        ps, pp = r.get("paired_speedup"), r.get("paired_pct_peak")
        paired = (f"{ps:.2f}× / {pp:.0f} %" if ps is not None and pp is not None else
                  f"{ps:.2f}× / —" if ps is not None else "—")
        out.append(f"| {r['cell']} | ({','.join(map(str, r['shape']))}) | {r['best_peer']} | "
                   f"{r['best_peer_us']:.4g} | {r['required_us']:.4g} | {r['crnn_us']:.4g} | "
                   f"{r['floor_us']:.4g} | {r['verdict']} | {paired} | "
                   f"{r.get('paired_verdict') or '—'} |")
    if rep["batch1_steps"]:
        out += ["", "## Batch 1, per step (slope between T = 100 and 300, D = 16)", "",
                "| cell | H | crnn µs/step | plan | L2 bound µs (cores of the plan) | ratio | "
                "floor µs (best of 1 and 2 cores, with the hand-off) | two cores reading and "
                "meeting µs (measured) | crnn / that |",
                "|---|---|---|---|---|---|---|---|---|"]
        for s in rep["batch1_steps"]:
            synced = s.get("synced_us")
            measured = synced is not None and synced == synced  # NaN: one CPU
            both = f"{synced:.3g} | {s['synced_ratio']:.2f}" if measured else "— | —"
            out.append(f"| {s['cell']} | {s['H']} | {s['step_us']:.3g} | {s['mode']} | "
                       f"{s['l2_bound_us']:.3g} ({s['cores']}) | {s['ratio']:.2f} | "
                       f"{s['floor_us']:.3g} | {both} |")
    return "\n".join(out) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peers", default=os.path.join(HERE, "published", "peers.json"),
                    help="a peers.py report (default: the published run)")
    ap.add_argument("--max-batch", type=int, default=32,
                    help="shapes up to this batch (the issue's small-batch range)")
    ap.add_argument("--out", help="directory for bounds.md and bounds.json")
    args = ap.parse_args(argv)
    with open(args.peers) as f:
        peers = json.load(f)
    rep = run(peers, measure_machine(), args.max_batch)
    text = markdown(rep, os.path.relpath(args.peers))
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "bounds.json"), "w") as f:
            json.dump(rep, f, indent=1)
        with open(os.path.join(args.out, "bounds.md"), "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
