#!/usr/bin/env python
"""Side-by-side SimpleRNN inference benchmark: crnn against NumPy, PyTorch and ONNX Runtime.

Run from the repository root (after ``pip install -e ".[bench]"``)::

    python bench/peers.py                      # the 9 shapes of issue 4, float32, ~3-5 minutes
    python bench/peers.py --quick              # 4 small shapes, few repeats, ~20 seconds
    python bench/peers.py --shapes "8,2,10,3;1,10,4,8" --dtype float64 --out /tmp/res

Writes ``peers.md`` (Markdown tables), ``peers.json`` (everything, machine included) and
``peers.png`` (speed-ups per shape, if matplotlib is installed) into ``--out`` (default
``bench/results/``).

What is measured, per shape (B, T, D, H): one SimpleRNN layer (tanh, with bias) returning every
hidden state, ``(B, T, H)``, from a zero initial state. Every implementation gets the same random
weights (Keras layout: kernel (D, H), recurrent_kernel (H, H), bias (H,)) and the same input, and
its output is first checked against ``crnn.reference.simple_rnn_stack`` computed in float64; an
implementation whose output is wrong is reported and not timed.

Implementations ("peers"; an optional one that cannot be imported is skipped with a note):

* ``numpy-loop``: per-timestep NumPy, ``h = tanh(x_t @ Wx + h @ Wh + b)`` batched over B.
* ``numpy-hoisted``: one NumPy matmul for the input projection of all timesteps, then per step
  ``h @ Wh`` into a preallocated buffer. Both NumPy peers run at 1 and 2 threads of NumPy's own
  OpenBLAS (set through threadpoolctl; without it they run at NumPy's default).
* ``torch``: PyTorch ``nn.RNN(batch_first=True)`` under ``torch.inference_mode()``, at
  ``torch.set_num_threads(1)`` and ``(2)``. Its output is a view, left as PyTorch returns it.
* ``onnxruntime``: ONNX Runtime's ``RNN`` operator in a one-node model (W = kernel.T,
  R = recurrent_kernel.T, B = [bias, 0]), ``intra_op_num_threads`` 1 and 2. The input is
  transposed to ONNX's (T, B, D) layout once, **outside** the timing, and the output is left in
  ONNX's (T, 1, B, H) layout: both favour ONNX Runtime. (ORT's CPU RNN kernel is float32 only.)
* ``crnn``: a prebuilt ``crnn._core.RNN`` handle's ``forward(x)`` at ``crnn.set_num_threads(1)``,
  ``(2)`` and at crnn's default (when the default is 1 or 2 it is that row, not measured twice).

Timing: ``time.perf_counter_ns`` around each single call, garbage collector off while timing.
Implementations are interleaved: the samples of every implementation are spread over several
rounds, and each round runs every implementation in turn (a short chunk of calls, preceded by one
untimed call when a call is cheaper than 5 ms); after each chunk the harness sleeps until no
thread of the process is spinning any more (idle OpenBLAS / OpenMP / ORT workers spin for up to
~0.1 s after a multi-threaded call, and on a 2-core machine they would steal a core from the next
implementation). Repeats are adaptive: up to ``--repeats`` samples
but at most ``--budget`` seconds per implementation and shape (at least 3 samples). The per-step
NumPy loop is skipped at shapes where one call takes more than 1 s. Reported: the median.

Speed-up = (best peer's median, over every peer and thread count) / (crnn's median at its default
thread count); > 1 means crnn is faster. GFLOP/s use flops = 2*B*T*(D*H + H*H). The GEMM peak is
measured here with NumPy's OpenBLAS (float32: sgemm, float64: dgemm; N x N x N matmul, best of a
few, at the start and again at the end of the run, the better of the two) at every thread count
used; "% peak" divides an implementation's GFLOP/s by the peak at its
own thread count. crnn's own BLAS (scipy-openblas32) is not callable from Python; both OpenBLAS
copies and the core type each chose are recorded (``OPENBLAS_CORETYPE`` forces it).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shlex
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

import crnn
import crnn._core
import crnn.reference

# (B, T, D, H): the grid of issue 4.
DEFAULT_SHAPES = [
    (8, 2, 10, 3), (1, 10, 4, 8), (1, 50, 64, 128), (1, 100, 128, 256), (1, 1000, 32, 64),
    (16, 50, 128, 128), (32, 50, 128, 256), (64, 20, 512, 1024), (256, 100, 256, 512),
]
# --quick: the shapes `python -m crnn` benchmarks.
QUICK_SHAPES = [(8, 2, 10, 3), (1, 10, 4, 8), (16, 50, 128, 128), (1, 100, 128, 256)]

TOLERANCE = {"float32": 1e-4, "float64": 1e-9}  # max abs error against the float64 reference
NUMPY_LOOP_MAX_SECONDS = 1.0  # skip the per-step NumPy loop where one call is slower than this
WARM_CHUNK_BELOW_NS = 5_000_000  # an untimed call starts each chunk when calls are this cheap
PEER_FAMILIES = ("numpy-loop", "numpy-hoisted", "torch", "onnxruntime")


def flops(B: int, T: int, D: int, H: int) -> int:
    return 2 * B * T * (D * H + H * H)


# --------------------------------------------------------------------------------------------
# Thread control of NumPy's OpenBLAS (never crnn's: that one is its own copy)

class NumpyBlasThreads:
    """Set NumPy's BLAS threads through threadpoolctl, leaving crnn's OpenBLAS alone."""

    def __init__(self) -> None:
        self.controllers = []
        self.note = ""
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            self.note = "threadpoolctl not installed: NumPy peers run at NumPy's default threads"
            return
        ctl = ThreadpoolController()
        for lc in ctl.lib_controllers:
            info = lc.info()
            path = info.get("filepath") or ""
            if info.get("user_api") == "blas" and "scipy_openblas32" not in path \
                    and "numpy" in path:
                self.controllers.append(lc)
        if not self.controllers:
            self.note = "NumPy's BLAS not found by threadpoolctl: NumPy peers run at its default"

    @property
    def available(self) -> bool:
        return bool(self.controllers)

    def set(self, n: int) -> None:
        for lc in self.controllers:
            lc.set_num_threads(n)

    def get(self) -> Optional[int]:
        return self.controllers[0].num_threads if self.controllers else None


# --------------------------------------------------------------------------------------------
# Machine information

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(mod: str) -> Optional[str]:
    try:
        from importlib.metadata import version
        return version(mod)
    except Exception:
        return None


def machine_info() -> dict:
    info = {
        "cpu_model": _cpu_model(),
        "nproc": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "env": {k: os.environ.get(k) for k in
                ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                 "OPENBLAS_THREAD_TIMEOUT", "OMP_NUM_THREADS", "MKL_NUM_THREADS")},
        "versions": {"crnn": crnn.__version__, "numpy": np.__version__,
                     "torch": _version("torch"), "onnxruntime": _version("onnxruntime"),
                     "onnx": _version("onnx"), "threadpoolctl": _version("threadpoolctl"),
                     "scipy-openblas32": _version("scipy-openblas32")},
        "crnn_default_threads": None,
        "threadpools": [],
        "openblas_core": {"crnn": None, "numpy": None},
    }
    try:
        from threadpoolctl import threadpool_info
        pools = threadpool_info()
    except ImportError:
        pools = []
        info["threadpools_note"] = "threadpoolctl not installed: BLAS core types unknown"
    info["threadpools"] = pools
    for p in pools:
        if p.get("internal_api") != "openblas":
            continue
        who = "crnn" if "scipy_openblas32" in (p.get("filepath") or "") else \
            ("numpy" if "numpy" in (p.get("filepath") or "") else None)
        if who:
            info["openblas_core"][who] = {k: p.get(k) for k in
                                         ("architecture", "version", "filepath", "num_threads")}
    return info


# --------------------------------------------------------------------------------------------
# GEMM peak (NumPy's OpenBLAS)

def gemm_peak(dtype: np.dtype, threads: List[int], blas: NumpyBlasThreads, n: int,
              reps: int) -> Dict[int, float]:
    """Best GFLOP/s of an n x n x n matmul at each thread count of NumPy's BLAS."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype=dtype)
    out = {}
    old = blas.get()
    for t in threads:
        if blas.available:
            blas.set(t)
        elif t != threads[0]:
            continue
        np.matmul(a, b, out=c)  # warm up (threads, caches, page faults)
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter_ns()
            np.matmul(a, b, out=c)
            best = min(best, time.perf_counter_ns() - t0)
        out[t] = 2.0 * n ** 3 / best  # GFLOP/s (flops / ns)
    if blas.available and old is not None:
        blas.set(old)
    return out


# --------------------------------------------------------------------------------------------
# Implementations

class Impl:
    """One implementation at one thread setting: ``run()`` computes the (B, T, H) output."""

    def __init__(self, name: str, family: str, threads: Optional[int], run: Callable,
                 to_bth: Callable = np.asarray, enter: Callable = None, leave: Callable = None,
                 note: str = ""):
        self.name, self.family, self.threads = name, family, threads
        self.run, self.to_bth = run, to_bth
        self.enter = enter or (lambda: None)
        self.leave = leave or (lambda: None)
        self.note = note
        self.samples: List[int] = []
        self.status = "ok"  # ok | wrong | skipped | error
        self.max_err: Optional[float] = None
        self.est_ns: Optional[float] = None
        self.alias_of: Optional[str] = None


def make_numpy_loop(K, R, b, x):
    B, T, _ = x.shape
    H = R.shape[0]

    def run():
        y = np.empty((B, T, H), dtype=x.dtype)
        h = np.zeros((B, H), dtype=x.dtype)
        for t in range(T):
            h = np.tanh(x[:, t] @ K + h @ R + b)
            y[:, t] = h
        return y
    return run


def make_numpy_hoisted(K, R, b, x):
    B, T, D = x.shape
    H = R.shape[0]
    x2 = x.reshape(B * T, D)

    def run():
        y = np.matmul(x2, K).reshape(B, T, H)  # input projection of all timesteps at once
        y += b
        tmp = np.empty((B, H), dtype=x.dtype)
        np.tanh(y[:, 0], out=y[:, 0])  # h_0 = 0: nothing recurrent at the first step
        for t in range(1, T):
            np.matmul(y[:, t - 1], R, out=tmp)
            tmp += y[:, t]
            np.tanh(tmp, out=y[:, t])
        return y
    return run


def make_torch(K, R, b, x, threads: int):
    import torch
    dt = torch.float32 if x.dtype == np.float32 else torch.float64
    B, T, D = x.shape
    H = R.shape[0]
    rnn = torch.nn.RNN(D, H, num_layers=1, nonlinearity="tanh", bias=True, batch_first=True)
    rnn = rnn.to(dt).eval()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(K.T)))
        rnn.weight_hh_l0.copy_(torch.from_numpy(np.ascontiguousarray(R.T)))
        rnn.bias_ih_l0.copy_(torch.from_numpy(b))
        rnn.bias_hh_l0.zero_()
    xt = torch.from_numpy(x)
    state = {}

    def enter():
        torch.set_num_threads(threads)
        state["ctx"] = torch.inference_mode()
        state["ctx"].__enter__()

    def leave():
        state.pop("ctx").__exit__(None, None, None)

    def run():
        return rnn(xt)[0]

    return run, (lambda out: out.detach().numpy()), enter, leave


def make_onnxruntime(K, R, b, x, threads: int):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    B, T, D = x.shape
    H = R.shape[0]
    elem = TensorProto.FLOAT if x.dtype == np.float32 else TensorProto.DOUBLE
    inits = [
        numpy_helper.from_array(np.ascontiguousarray(K.T)[None], "W"),          # (1, H, D)
        numpy_helper.from_array(np.ascontiguousarray(R.T)[None], "R"),          # (1, H, H)
        numpy_helper.from_array(np.concatenate([b, np.zeros_like(b)])[None], "B"),  # (1, 2H)
    ]
    node = helper.make_node("RNN", ["X", "W", "R", "B"], ["Y"], hidden_size=H)  # Tanh, layout 0
    graph = helper.make_graph(
        [node], "simple_rnn", [helper.make_tensor_value_info("X", elem, [T, B, D])],
        [helper.make_tensor_value_info("Y", elem, [T, 1, B, H])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = min(model.ir_version, 8)
    onnx.checker.check_model(model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {"X": np.ascontiguousarray(x.transpose(1, 0, 2))}  # (T, B, D), outside the timing
    names = ["Y"]

    def run():
        return sess.run(names, feeds)[0]

    return run, (lambda out: np.asarray(out)[:, 0].transpose(1, 0, 2))


def make_crnn(K, R, b, x, threads: int):
    handle = crnn._core.RNN([[[K, R, b]]], activation="tanh", direction="forward",
                            dtype=x.dtype.name)
    fwd = handle.forward

    def run():
        return fwd(x)

    return run, (lambda: crnn.set_num_threads(threads))


def build_impls(K, R, b, x, args, blas: NumpyBlasThreads, crnn_default: int,
                notes: List[str]) -> List[Impl]:
    impls: List[Impl] = []
    thread_counts = (1, 2)
    want = set(args.peers)

    def np_enter(n):
        return (lambda: blas.set(n)) if blas.available else None

    for fam, maker in (("numpy-loop", make_numpy_loop), ("numpy-hoisted", make_numpy_hoisted)):
        if fam not in want:
            continue
        for n in (thread_counts if blas.available else (None,)):
            impls.append(Impl(f"{fam} ({n} thr)" if n else fam, fam, n, maker(K, R, b, x),
                              enter=np_enter(n)))
    for fam, maker in (("torch", make_torch), ("onnxruntime", make_onnxruntime)):
        if fam not in want:
            continue
        for n in thread_counts:
            name = f"{fam} ({n} thr)"
            try:
                made = maker(K, R, b, x, n)
            except ImportError as err:
                notes.append(f"{fam}: skipped, not importable ({err})")
                break
            except Exception as err:  # e.g. ORT has no float64 RNN kernel
                imp = Impl(name, fam, n, None)
                imp.status = "skipped"
                imp.note = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
                impls.append(imp)
                continue
            run, to_bth, *rest = made
            enter, leave = (rest + [None, None])[:2]
            impls.append(Impl(name, fam, n, run, to_bth, enter, leave))
    if "crnn" in want:
        by_threads = {}
        for n in sorted({1, 2, crnn_default}):
            run, enter = make_crnn(K, R, b, x, n)
            imp = Impl(f"crnn ({n} thr)", "crnn", n, run, enter=enter)
            by_threads[n] = imp
            impls.append(imp)
        # The default row: the same measurement as the row with that thread count.
        impls.append(Impl(f"crnn default ({crnn_default} thr)", "crnn-default", crnn_default,
                          None))
        impls[-1].alias_of = by_threads[crnn_default].name
    return impls


# --------------------------------------------------------------------------------------------
# Check and time

def reference_output(K, R, b, x) -> np.ndarray:
    f64 = lambda a: np.asarray(a, dtype=np.float64)
    return crnn.reference.simple_rnn_stack(f64(x), [[[f64(K), f64(R), f64(b)]]],
                                           activation="tanh", return_sequences=True)


def check(imp: Impl, ref: np.ndarray, tol: float) -> None:
    """Run once (after a warm-up call), compare with the reference, estimate the call time."""
    settle()
    imp.enter()
    try:
        t0 = time.perf_counter_ns()
        out = imp.run()
        first = time.perf_counter_ns() - t0
        got = np.asarray(imp.to_bth(out), dtype=np.float64)
        if got.shape != ref.shape:
            imp.status, imp.note = "wrong", f"output shape {got.shape}, expected {ref.shape}"
            return
        err = float(np.max(np.abs(got - ref))) if ref.size else 0.0
        imp.max_err = err
        if not np.isfinite(err) or err > tol:
            imp.status, imp.note = "wrong", f"max abs error {err:.3g} > {tol:g}: not timed"
            return
        if imp.family == "numpy-loop" and first > NUMPY_LOOP_MAX_SECONDS * 1e9:
            imp.status = "skipped"
            imp.note = f"one call takes {first / 1e9:.1f} s > {NUMPY_LOOP_MAX_SECONDS:g} s"
            return
        if first < 1e9:  # a second call gives a warm estimate
            t0 = time.perf_counter_ns()
            imp.run()
            first = time.perf_counter_ns() - t0
        imp.est_ns = max(first, 1)
    except Exception as err:
        imp.status, imp.note = "error", f"{type(err).__name__}: {err}"
    finally:
        imp.leave()


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


def time_interleaved(impls: List[Impl], repeats: int, budget_s: float, rounds: int) -> None:
    """Collect samples, round-robin over the implementations, each call timed on its own.

    Each implementation aims at min(repeats, budget / estimated call time) samples (at least 3)
    spread evenly over the rounds; the budget is rechecked before every chunk against the time
    actually spent (warm-up calls included), so a call slower than its estimate (a disturbed
    machine) shortens its run instead of stretching it."""
    budget_ns = budget_s * 1e9
    plan = []
    for imp in impls:
        warm = imp.est_ns < WARM_CHUNK_BELOW_NS
        n = max(3, min(repeats, int(budget_ns / imp.est_ns)))
        plan.append({"imp": imp, "target": n, "warm": warm, "spent": 0})
    nrounds = max(1, min(rounds, max(p["target"] for p in plan)))
    for rnd in range(nrounds):
        left_rounds = nrounds - rnd
        for p in plan:
            imp = p["imp"]
            samples = imp.samples
            missing = p["target"] - len(samples)
            if missing <= 0:
                continue
            est = statistics.median(samples) if samples else imp.est_ns
            per_call = est * (1 + (1 / max(1, missing / left_rounds) if p["warm"] else 0))
            affordable = int((budget_ns - p["spent"]) / max(per_call, 1))
            k = min(-(-missing // left_rounds), max(0, affordable // left_rounds or affordable))
            if len(samples) < 3:
                k = max(k, 1)  # a median of at least 3, whatever the budget says
            if k <= 0:
                continue
            run, clock = imp.run, time.perf_counter_ns
            chunk0 = clock()
            imp.enter()
            try:
                if p["warm"]:
                    run()
                gc.disable()
                for _ in range(k):
                    t0 = clock()
                    run()
                    samples.append(clock() - t0)
            finally:
                gc.enable()
                imp.leave()
            p["spent"] += clock() - chunk0
            settle()


def summarize(samples: List[int]) -> dict:
    s = sorted(samples)
    q = statistics.quantiles(s, n=4) if len(s) >= 2 else [s[0]] * 3
    return {"median_us": statistics.median(s) / 1e3, "min_us": s[0] / 1e3,
            "q1_us": q[0] / 1e3, "q3_us": q[2] / 1e3, "mean_us": statistics.fmean(s) / 1e3,
            "n": len(s)}


def cpu_busy_seconds() -> Optional[float]:
    """CPU seconds all processes of the machine have been busy (Linux /proc/stat), else None."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
        vals = [int(v) for v in fields]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
        return (sum(vals[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class LoadMeter:
    """How many cores other processes kept busy meanwhile (a quiet machine shows ~0)."""

    def __init__(self):
        self.busy0, self.own0, self.t0 = cpu_busy_seconds(), time.process_time(), time.perf_counter()

    def other_cores(self) -> Optional[float]:
        busy = cpu_busy_seconds()
        if busy is None or self.busy0 is None:
            return None
        other = (busy - self.busy0) - (time.process_time() - self.own0)
        return max(0.0, other) / max(time.perf_counter() - self.t0, 1e-9)


def bench_shape(shape, args, blas, crnn_default, peaks, notes) -> dict:
    B, T, D, H = shape
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(args.seed)
    scale = 1.0 / np.sqrt(H)  # PyTorch's default init range: keeps tanh out of saturation
    K = rng.uniform(-scale, scale, (D, H)).astype(dtype)
    R = rng.uniform(-scale, scale, (H, H)).astype(dtype)
    b = rng.uniform(-scale, scale, (H,)).astype(dtype)
    x = rng.standard_normal((B, T, D)).astype(dtype)

    meter = LoadMeter()
    t0 = time.perf_counter()
    ref = reference_output(K, R, b, x)
    ref_s = time.perf_counter() - t0
    impls = build_impls(K, R, b, x, args, blas, crnn_default, notes)
    tol = TOLERANCE[dtype.name]
    measured = [i for i in impls if i.status == "ok" and i.alias_of is None]
    for imp in measured:
        check(imp, ref, tol)
    timed = [i for i in measured if i.status == "ok"]
    time_interleaved(timed, args.repeats, args.budget, args.rounds)

    fl = flops(B, T, D, H)
    rows = {}
    for imp in impls:
        src = next((i for i in impls if i.name == imp.alias_of), imp) if imp.alias_of else imp
        row = {"family": imp.family, "threads": imp.threads, "status": src.status,
               "note": src.note or imp.note, "max_abs_err": src.max_err}
        if imp.alias_of:
            row["same_as"] = imp.alias_of
        if src.status == "ok" and src.samples:
            row.update(summarize(src.samples))
            gflops = fl / (row["median_us"] * 1e3)
            row["gflops"] = gflops
            peak = peaks.get(imp.threads)
            row["pct_peak"] = 100.0 * gflops / peak if peak else None
        rows[imp.name] = row

    def med(name):
        return rows[name].get("median_us")

    peers = [n for n, r in rows.items() if r["family"] in PEER_FAMILIES and r.get("median_us")]
    best_peer = min(peers, key=med) if peers else None
    crnn_rows = [n for n, r in rows.items() if r["family"] == "crnn" and r.get("median_us")]
    default_row = next((n for n, r in rows.items() if r["family"] == "crnn-default"), None)
    crnn_best = min(crnn_rows, key=med) if crnn_rows else None
    res = {"shape": list(shape), "dtype": dtype.name, "flops": fl, "reference_seconds": ref_s,
           "impls": rows, "best_peer": best_peer, "best_crnn": crnn_best,
           "crnn_default": default_row, "other_load_cores": meter.other_cores()}
    if best_peer and default_row and med(default_row):
        res["speedup"] = med(best_peer) / med(default_row)
        res["speedup_best_crnn"] = med(best_peer) / med(crnn_best)
        res["speedup_per_family"] = {}
        for fam in PEER_FAMILIES:
            fam_rows = [n for n in peers if rows[n]["family"] == fam]
            if fam_rows:
                res["speedup_per_family"][fam] = min(med(n) for n in fam_rows) / med(default_row)
    return res


# --------------------------------------------------------------------------------------------
# Reports

def _fmt_us(v: Optional[float]) -> str:
    if v is None:
        return "—"
    return f"{v:.2f}" if v < 10 else (f"{v:.1f}" if v < 1000 else f"{v:.0f}")


def write_markdown(path: str, report: dict) -> str:
    m, res = report["machine"], report["results"]
    lines = []
    lines.append(f"# crnn vs peers: SimpleRNN forward, {report['dtype']}, all hidden states returned")
    lines.append("")
    lines.append(f"Command: `{report['command']}`  ")
    lines.append(f"Machine: {m['cpu_model']}, nproc {m['nproc']}; "
                 f"OPENBLAS_CORETYPE={m['env']['OPENBLAS_CORETYPE'] or '(unset)'}, "
                 f"OPENBLAS_L2_SIZE={m['env']['OPENBLAS_L2_SIZE'] or '(unset)'}; "
                 f"OpenBLAS core chosen: crnn "
                 f"{(m['openblas_core']['crnn'] or {}).get('architecture', '?')}, numpy "
                 f"{(m['openblas_core']['numpy'] or {}).get('architecture', '?')}  ")
    pk = report["gemm_peak"]
    lines.append(f"{pk['kind']} peak (NumPy's OpenBLAS, {pk['n']}³ matmul, best of {pk['reps']} "
                 f"at the start and at the end): "
                 + ", ".join(f"{g:.0f} GFLOP/s at {t} thr" for t, g in sorted(pk['gflops'].items()))
                 + "  ")
    v = m["versions"]
    lines.append(f"Versions: crnn {v['crnn']}, numpy {v['numpy']}, torch {v['torch']}, "
                 f"onnxruntime {v['onnxruntime']}; crnn default threads {m['crnn_default_threads']}")
    lines.append("")
    lines.append("Median µs per forward call (lower is better); speed-up = best peer / crnn at its "
                 "default threads (> 1: crnn faster). Best peer in bold.")
    lines.append("")
    # Summary table: columns per family with "1 thr / 2 thr".
    fams = [f for f in PEER_FAMILIES if any(r["impls"][n]["family"] == f
                                             for r in res for n in r["impls"])]
    head = ["(B,T,D,H)"] + fams + ["crnn 1 / 2 thr", "crnn default", "speed-up",
                                   "crnn GFLOP/s", "% 2-thr peak", "other load"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for r in res:
        rows = r["impls"]
        cells = [f"({','.join(map(str, r['shape']))})"]
        for fam in fams + ["crnn"]:
            parts = []
            for n, row in rows.items():
                if row["family"] != fam:
                    continue
                if row.get("median_us") is not None:
                    s = _fmt_us(row["median_us"])
                    parts.append(f"**{s}**" if n == r["best_peer"] else s)
                else:
                    parts.append({"wrong": "wrong", "skipped": "skip", "error": "error"}.get(
                        row["status"], "—"))
            cells.append(" / ".join(parts) if parts else "—")
        d = rows.get(r["crnn_default"]) if r["crnn_default"] else None
        cells.append(_fmt_us(d.get("median_us")) if d else "—")
        cells.append(f"{r['speedup']:.2f}×" if r.get("speedup") else "—")
        if d and d.get("gflops") is not None:
            cells.append(f"{d['gflops']:.1f}")
            p2 = pk["gflops"].get(2) or pk["gflops"].get(max(pk["gflops"]))
            cells.append(f"{100 * d['gflops'] / p2:.0f} %")
        else:
            cells += ["—", "—"]
        ol = r.get("other_load_cores")
        cells.append("?" if ol is None else f"{ol:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("\"other load\": cores kept busy by other processes while the shape ran "
                 "(/proc/stat minus this process); above ~0.1 the figures are disturbed.")
    lines.append("")
    lines.append("## Details")
    lines.append("")
    lines.append("| (B,T,D,H) | implementation | median µs | q1–q3 µs | n | GFLOP/s | % peak (own threads) "
                 "| max abs err | note |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for r in res:
        for n, row in r["impls"].items():
            if row.get("same_as"):
                lines.append(f"| ({','.join(map(str, r['shape']))}) | {n} | = {row['same_as']} "
                             f"| | | | | | |")
                continue
            err = row.get("max_abs_err")
            cells = [f"({','.join(map(str, r['shape']))})", n,
                     _fmt_us(row.get("median_us")),
                     (f"{_fmt_us(row['q1_us'])}–{_fmt_us(row['q3_us'])}"
                      if row.get("median_us") is not None else "—"),
                     str(row.get("n", "—")),
                     f"{row['gflops']:.2f}" if row.get("gflops") is not None else "—",
                     f"{row['pct_peak']:.1f}" if row.get("pct_peak") is not None else "—",
                     f"{err:.1e}" if err is not None else "—",
                     (row["status"] if row["status"] != "ok" else "") +
                     (": " if row["status"] != "ok" and row["note"] else "") + (row["note"] or "")]
            lines.append("| " + " | ".join(cells) + " |")
    if report["notes"]:
        lines.append("")
        lines.append("Notes:")
        for note in report["notes"]:
            lines.append(f"- {note}")
    lines.append("")
    lines.append("Timing: each call timed alone (perf_counter_ns), implementations interleaved "
                 "round-robin, medians. ONNX Runtime: input transposed to (T,B,D) outside the "
                 "timing, output left in (T,1,B,H). PyTorch: output left as the batch_first view.")
    text = "\n".join(lines) + "\n"
    with open(path, "w") as f:
        f.write(text)
    return text


def write_png(path: str, report: dict) -> Optional[str]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: peers.png not written"
    res = [r for r in report["results"] if r.get("speedup_per_family")]
    if not res:
        return "no speed-ups to plot"
    fams = [f for f in PEER_FAMILIES if any(f in r["speedup_per_family"] for r in res)]
    labels = [f"({','.join(map(str, r['shape']))})" for r in res]
    width = 0.8 / len(fams)
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(res)), 5))
    xs = np.arange(len(res))
    for k, fam in enumerate(fams):
        vals = [r["speedup_per_family"].get(fam, np.nan) for r in res]
        ax.bar(xs + (k - (len(fams) - 1) / 2) * width, vals, width, label=f"vs {fam}")
    ax.scatter(xs, [r["speedup"] for r in res], color="black", marker="D", zorder=3,
               label="vs best peer")
    ax.axhline(1.0, color="red", linewidth=1)
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.set_xlabel("(B, T, D, H)")
    ax.set_ylabel("speed-up of crnn (default threads), ×  (> 1: crnn faster)")
    ax.set_title(f"crnn speed-up over each peer's best thread count ({report['dtype']})")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# --------------------------------------------------------------------------------------------

def parse_shapes(text: str) -> List[Tuple[int, int, int, int]]:
    shapes = []
    for part in text.replace(" ", "").split(";"):
        if not part:
            continue
        vals = tuple(int(v) for v in part.strip("()").split(","))
        if len(vals) != 4 or min(vals) < 1:
            raise argparse.ArgumentTypeError(f"shape {part!r}: expected B,T,D,H (all >= 1)")
        shapes.append(vals)
    if not shapes:
        raise argparse.ArgumentTypeError("--shapes: no shape given")
    return shapes


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", type=parse_shapes, default=None,
                   help='"B,T,D,H;B,T,D,H;..." (default: the 9 shapes of issue 4)')
    p.add_argument("--quick", action="store_true",
                   help="the 4 `python -m crnn` shapes, few repeats, small GEMM for the peak")
    p.add_argument("--repeats", type=int, default=None,
                   help="max timed calls per implementation and shape (default 400, quick 60)")
    p.add_argument("--budget", type=float, default=None,
                   help="max seconds of timed calls per implementation and shape "
                        "(default 2, quick 0.3)")
    p.add_argument("--rounds", type=int, default=10, help="round-robin rounds (default 10)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--peers", default=",".join(PEER_FAMILIES + ("crnn",)),
                   help="comma-separated subset of: " + ",".join(PEER_FAMILIES + ("crnn",)))
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "results"),
                   help="output directory (default bench/results/)")
    args = p.parse_args(argv)
    args.peers = [s.strip() for s in args.peers.split(",") if s.strip()]
    shapes = args.shapes or (QUICK_SHAPES if args.quick else DEFAULT_SHAPES)
    if args.repeats is None:
        args.repeats = 60 if args.quick else 400
    if args.budget is None:
        args.budget = 0.3 if args.quick else 2.0
    os.makedirs(args.out, exist_ok=True)

    started = time.perf_counter()
    crnn_default = crnn.get_num_threads()  # before this script changes it
    blas = NumpyBlasThreads()
    notes: List[str] = []
    if blas.note:
        notes.append(blas.note)
    # Import the optional peers before reading the thread pools, so theirs are listed too.
    for mod in ("torch", "onnxruntime"):
        if mod in args.peers:
            try:
                __import__(mod)
            except ImportError as err:
                notes.append(f"{mod}: not importable ({err}); skipped")
                args.peers.remove(mod)
    info = machine_info()
    info["crnn_default_threads"] = crnn_default
    dtype = np.dtype(args.dtype)
    gemm_n, gemm_reps = (1024, 3) if args.quick else (2048, 5)
    peak_threads = sorted({1, 2, crnn_default})
    print(f"measuring the {'s' if dtype == np.float32 else 'd'}gemm peak "
          f"({gemm_n}^3, threads {peak_threads}) ...", flush=True)
    meter = LoadMeter()
    peaks_start = gemm_peak(dtype, peak_threads, blas, gemm_n, gemm_reps)
    load_start = meter.other_cores()
    print("  " + ", ".join(f"{t} thr: {g:.1f} GFLOP/s" for t, g in peaks_start.items()),
          flush=True)
    peaks = dict(peaks_start)

    results = []
    for shape in shapes:
        t0 = time.perf_counter()
        r = bench_shape(shape, args, blas, crnn_default, peaks, notes)
        results.append(r)
        best = r.get("best_peer")
        msg = f"{str(tuple(shape)):>22}: " + ", ".join(
            f"{n} {_fmt_us(row.get('median_us'))}" if row.get("median_us") is not None
            else f"{n} {row['status']}" for n, row in r["impls"].items() if not row.get("same_as"))
        if r.get("speedup"):
            msg += f"  | best peer {best}, speed-up {r['speedup']:.2f}x"
        ol = r.get("other_load_cores")
        print(msg + f"  [{time.perf_counter() - t0:.1f} s"
              + ("" if ol is None else f", other processes {ol:.2f} cores") + "]", flush=True)
    crnn.set_num_threads(crnn_default)

    # The peak once more at the end; the better of the two counts (a busy moment only lowers it).
    meter = LoadMeter()
    peaks_end = gemm_peak(dtype, peak_threads, blas, gemm_n, gemm_reps)
    load_end = meter.other_cores()
    print("GEMM peak at the end: " + ", ".join(f"{t} thr: {g:.1f} GFLOP/s"
                                              for t, g in peaks_end.items()), flush=True)
    peaks = {t: max(peaks_start.get(t, 0), peaks_end.get(t, 0)) for t in peaks_start}
    for r in results:
        for row in r["impls"].values():
            if row.get("gflops") is not None and peaks.get(row["threads"]):
                row["pct_peak"] = 100.0 * row["gflops"] / peaks[row["threads"]]

    report = {
        "command": "python " + shlex.join([os.path.relpath(__file__)] + (argv or sys.argv[1:])),
        "dtype": args.dtype, "machine": info,
        "gemm_peak": {"kind": "sgemm" if dtype == np.float32 else "dgemm", "n": gemm_n,
                      "reps": gemm_reps, "blas": "numpy's OpenBLAS",
                      "gflops": {int(k): v for k, v in peaks.items()},
                      "gflops_start": {int(k): v for k, v in peaks_start.items()},
                      "gflops_end": {int(k): v for k, v in peaks_end.items()},
                      "other_load_cores": [load_start, load_end]},
        "settings": {"repeats": args.repeats, "budget_s": args.budget, "rounds": args.rounds,
                     "seed": args.seed, "tolerance": TOLERANCE[args.dtype],
                     "peers": args.peers},
        "notes": list(dict.fromkeys(notes)), "results": results,
        "total_seconds": None,
    }
    report["total_seconds"] = time.perf_counter() - started
    with open(os.path.join(args.out, "peers.json"), "w") as f:
        json.dump(report, f, indent=1, default=float)
    md = write_markdown(os.path.join(args.out, "peers.md"), report)
    png_note = write_png(os.path.join(args.out, "peers.png"), report)
    print()
    print(md)
    if png_note:
        print("note:", png_note)
    print(f"wrote {args.out}/peers.md, peers.json" + ("" if png_note else ", peers.png")
          + f" in {report['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
