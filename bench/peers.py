#!/usr/bin/env python
"""Side-by-side RNN inference benchmark: crnn's SimpleRNN, LSTM and GRU against NumPy, PyTorch,
ONNX Runtime and oneDNN.

Run from the repository root (after ``pip install -e ".[bench]"``, which brings the oneDNN wheels
too)::

    python bench/peers.py                      # 3 cells x the 9 shapes of issue 4, float32
    python bench/peers.py --quick              # 4 small shapes, few repeats
    python bench/peers.py --cell lstm --shapes "8,2,10,3;1,10,4,8" --dtype float64 --out /tmp/r
    python bench/peers.py --avx2               # every library held to AVX2 (an older CPU)
    python bench/peers.py --baseline ../old    # also the crnn of another checkout: before/after
    python bench/peers.py --summarize A/peers.json B/peers.json  # one table of two runs

Writes ``peers.md`` (Markdown tables, one per cell), ``peers.json`` (everything, machine
included) and ``peers.png`` (speed-ups per shape, one panel per cell, if matplotlib is
installed) into ``--out`` (default ``bench/results/``); ``--avx2`` writes ``peers-avx2.*``.

What is measured, per cell and shape (B, T, D, H): one layer (tanh, with bias; LSTM / GRU gates
sigmoid) returning every hidden state, ``(B, T, H)``, from a zero initial state. GRU is
``reset_after=True`` (Keras 3's default, PyTorch's GRU, ONNX ``linear_before_reset=1``) unless
``--reset-after false`` (Keras 2's default; PyTorch has no such GRU). Every implementation gets
the same random weights (Keras layout and gate order: kernel (D, G*H), recurrent_kernel (H, G*H),
bias (G*H,), and for GRU reset-after a recurrent bias (G*H,); G = 1, 4, 3) and the same input,
and its output is first checked against ``crnn.reference.rnn_stack`` computed in float64; an
implementation whose output is wrong is reported and not timed.

Implementations ("peers"; an optional one that cannot be imported is skipped with a note):

* ``numpy-loop``: per-timestep NumPy, ``x_t @ K + b`` and ``h @ R`` then the cell, batched over B.
* ``numpy-hoisted``: one NumPy matmul for the input projection of all timesteps, then per step
  the recurrent matmul and the cell in NumPy, into preallocated buffers. Both NumPy peers run at
  1 and 2 threads of NumPy's own OpenBLAS (set through threadpoolctl; without it they run at
  NumPy's default).
* ``torch``: PyTorch ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (``batch_first=True``) under
  ``torch.inference_mode()``, at ``torch.set_num_threads(1)`` and ``(2)``. Its output is a view,
  left as PyTorch returns it. (PyTorch runs nn.LSTM on its bundled oneDNN and nn.RNN / nn.GRU on
  MKL GEMMs per step; the report's machine section says what this build does.)
* ``onnxruntime``: ONNX Runtime's ``RNN`` / ``LSTM`` / ``GRU`` operator in a one-node model
  (gate blocks in ONNX's order: LSTM i, o, f, c; GRU z, r, h), ``intra_op_num_threads`` 1 and 2.
  The input is transposed to ONNX's (T, B, D) layout once, **outside** the timing, and the
  output is left in ONNX's (T, 1, B, H) layout: both favour ONNX Runtime. (ORT's CPU kernels
  are float32 only.)
* ``onednn``: oneDNN 3.x's ``vanilla_rnn_forward`` / ``lstm_forward`` / ``lbr_gru_forward``
  (``gru_forward`` for reset-before), forward inference, from the ``onednn-cpu-gomp`` wheel,
  driven by ``bench/onednn_rnn.c`` (built on first use, see ``bench/onednn.py``): weights
  reordered once into the layout the primitive chose (``format_tag::any``), scratchpad allocated
  once, batch-first input and output (``ntc``), threads by ``omp_set_num_threads`` 1 and 2, each
  primitive created under the thread count it runs at (it keeps that count). float32 only.
* ``crnn``: a prebuilt ``crnn._core.RNN`` handle's ``forward(x)`` at ``crnn.set_num_threads(1)``,
  ``(2)`` and at crnn's default (when the default is 1 or 2 it is that row, not measured twice).
  It runs in a worker process (``bench/crnn_worker.py``) that times its own calls.
* ``crnn-baseline`` (``--baseline PATH``): the crnn of another checkout, built in place there
  (``python setup.py build_ext --inplace``, run by this script if PATH has no built extension),
  runs in a worker of its own, the same way, interleaved with the current crnn. A build without
  LSTM / GRU is reported as skipped for those cells.

Timing: ``time.perf_counter_ns`` around each single call, garbage collector off while timing.
Implementations are interleaved: the samples of every implementation are spread over several
rounds, and each round runs every implementation in turn (a short chunk of calls, preceded by one
untimed call when a call is cheaper than 5 ms); after each chunk the harness (and a crnn worker,
in its own process) sleeps until no thread of the process is spinning any more (idle OpenBLAS /
OpenMP / ORT workers spin for up to ~0.1 s after a multi-threaded call, and on a 2-core machine
they would steal a core from the next implementation). Repeats are adaptive: up to ``--repeats``
samples but at most ``--budget`` seconds per implementation and shape (at least 3 samples). The
per-step NumPy loop is skipped at shapes where one call takes more than 1 s. Reported: the median.

Speed-up = (best peer's median, over every peer and thread count) / (crnn's median at its default
thread count); > 1 means crnn is faster. With ``--baseline``, "vs baseline" = the baseline's
median at its default threads / crnn's (> 1: the current crnn is faster). GFLOP/s use
flops = 2*B*T*G*(D*H + H*H). The GEMM peak is measured here with NumPy's OpenBLAS and with
``torch.matmul`` (MKL in PyTorch's x86 builds) (float32: sgemm, float64: dgemm; N x N x N
matmul, best of a few, at the start and again at the end of the run, the better of the two) at
every thread count used; the peak used for "% peak" is the better of the two libraries at an
implementation's own thread count (without threadpoolctl NumPy's threads cannot be set, and its
OpenBLAS peak is not measured). crnn's own BLAS (scipy-openblas32) is not callable from
Python; both OpenBLAS copies and the core type each chose are recorded.

Paired figures, beside those: on a shared machine whole seconds run slower (another tenant on
the core, a vCPU back from idle), so the run's medians pool fast and slow spells, in proportions
that differ from one implementation to the next, and its peak is the best moment of the start
and the end. A round runs every implementation once in turn (a fraction of a second at the
small shapes, seconds at the largest), so the run also reports, per shape, the median over the
rounds of (the fastest peer's median in the round / crnn's in the same round),
and of crnn's GFLOP/s in the round over the two-thread GEMM peak probed at the end of that round
(one untimed and the faster of two timed N x N x N matmuls, on the library with the better
peak at the start): a spell slows both sides of each ratio. On a quiet machine the two kinds of
figure agree.

``--avx2`` runs the benchmark again in a fresh process with every library held to AVX2, standing
in for an older CPU: ``OPENBLAS_CORETYPE=Haswell`` (both OpenBLAS copies),
``MKL_ENABLE_INSTRUCTIONS=AVX2`` and ``ATEN_CPU_CAPABILITY=avx2`` (PyTorch),
``ONEDNN_MAX_CPU_ISA=AVX2`` (and its older spelling ``DNNL_MAX_CPU_ISA``, which oneDNN 3.2 and
PyTorch's bundled oneDNN both read too), ``NPY_DISABLE_CPU_FEATURES`` = NumPy's AVX-512 dispatch
targets, ``CRNN_ISA=avx2``. ONNX Runtime has no such switch (MLAS picks its kernels by CPUID). The
report records the ISA each one says it uses.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

import crnn
import crnn.reference
from crnn_worker import Worker  # bench/ is this script's directory, so on sys.path
from timing import settle, time_calls

# (B, T, D, H): the grid of issue 4.
DEFAULT_SHAPES = [
    (8, 2, 10, 3), (1, 10, 4, 8), (1, 50, 64, 128), (1, 100, 128, 256), (1, 1000, 32, 64),
    (16, 50, 128, 128), (32, 50, 128, 256), (64, 20, 512, 1024), (256, 100, 256, 512),
]
# --quick: the shapes `python -m crnn` benchmarks.
QUICK_SHAPES = [(8, 2, 10, 3), (1, 10, 4, 8), (16, 50, 128, 128), (1, 100, 128, 256)]

CELLS = ("simple", "lstm", "gru")
GATES = {"simple": 1, "lstm": 4, "gru": 3}
CELL_TITLES = {"simple": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}  # max abs error against the float64 reference
NUMPY_LOOP_MAX_SECONDS = 1.0  # skip the per-step NumPy loop where one call is slower than this
WARM_CHUNK_BELOW_NS = 5_000_000  # an untimed call starts each chunk when calls are this cheap
PEER_FAMILIES = ("numpy-loop", "numpy-hoisted", "torch", "onnxruntime", "onednn")
ISA_MODE_VAR = "CRNN_BENCH_ISA_MODE"  # set in the re-executed process of --avx2
# --avx2: the variables that hold each library to AVX2 (NumPy's is computed: see avx2_env()).
AVX2_ENV = {"OPENBLAS_CORETYPE": "Haswell", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
            "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
            "DNNL_MAX_CPU_ISA": "AVX2", "CRNN_ISA": "avx2"}
ISA_ENV_VARS = tuple(AVX2_ENV) + ("NPY_DISABLE_CPU_FEATURES",)
PEAK_LABELS = {"openblas": "OpenBLAS (np.matmul)", "mkl": "MKL (torch.matmul)",
               "torch": "torch.matmul (a build without MKL)"}


def flops(B: int, T: int, D: int, H: int, cell: str = "simple") -> int:
    return 2 * B * T * GATES[cell] * (D * H + H * H)


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
# Machine information and ISAs

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


def numpy_simd() -> dict:
    """NumPy's SIMD dispatch targets and which of them this process runs."""
    try:
        from numpy._core import _multiarray_umath as mu
    except ImportError:  # NumPy 1.x
        from numpy.core import _multiarray_umath as mu
    feats = mu.__cpu_features__
    return {"baseline": list(mu.__cpu_baseline__),
            "dispatch_enabled": [t for t in mu.__cpu_dispatch__ if feats.get(t)],
            "dispatch_disabled": [t for t in mu.__cpu_dispatch__ if not feats.get(t)]}


def avx2_env() -> Dict[str, str]:
    """The environment of ``--avx2``: :data:`AVX2_ENV` plus NumPy's AVX-512 dispatch targets
    disabled (a baseline feature cannot be, and AVX-512 is never one in NumPy's wheels)."""
    env = dict(AVX2_ENV)
    simd = numpy_simd()
    off = [t for t in simd["dispatch_enabled"] + simd["dispatch_disabled"]
           if t.startswith("AVX512") or t == "X86_V4"]
    if off:
        env["NPY_DISABLE_CPU_FEATURES"] = " ".join(off)
    return env


def torch_probe() -> dict:
    """What PyTorch runs, from a child process with MKL_VERBOSE / ONEDNN_VERBOSE on (the
    environment of this run otherwise): its ATen CPU capability, MKL's version line, its bundled
    oneDNN's version and ISA, and which of nn.RNN / nn.LSTM / nn.GRU execute a oneDNN RNN
    primitive (the others run GEMMs per step)."""
    code = ("import sys, torch\n"
            "print('CAP', torch.backends.cpu.get_cpu_capability(), flush=True)\n"
            "torch.set_num_threads(1)\n"
            "a = torch.ones(64, 64); a @ a\n"
            "for m in (torch.nn.RNN(4, 8, batch_first=True), torch.nn.LSTM(4, 8, batch_first=True),"
            " torch.nn.GRU(4, 8, batch_first=True)):\n"
            "    print('MODULE', type(m).__name__, flush=True)\n"
            "    with torch.inference_mode():\n"
            "        m(torch.ones(2, 3, 4))\n"
            "    sys.stdout.flush()\n")
    env = dict(os.environ, MKL_VERBOSE="1", ONEDNN_VERBOSE="1", DNNL_VERBOSE="1")
    try:
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as err:
        return {"error": str(err)}
    out = {"aten_capability": None, "mkl": None, "onednn_version": None, "onednn_isa": None,
           "modules_on_onednn_rnn": [], "onednn_rnn_impl": {}}
    module = None
    for line in proc.stdout.splitlines():
        if line.startswith("CAP "):
            out["aten_capability"] = line.split(" ", 1)[1]
        elif line.startswith("MODULE "):
            module = line.split(" ", 1)[1]
        elif line.startswith("MKL_VERBOSE") and "SGEMM" not in line and out["mkl"] is None:
            out["mkl"] = line[len("MKL_VERBOSE"):].strip()
        elif line.startswith("onednn_verbose") or line.startswith("dnnl_verbose"):
            fields = line.split(",")
            if ",info,oneDNN v" in line:
                out["onednn_version"] = line.split("oneDNN ", 1)[1].split()[0]
            elif ",cpu,isa:" in line:
                out["onednn_isa"] = line.split("isa:", 1)[1]
            elif ",exec,cpu,rnn," in line and module:
                if module not in out["modules_on_onednn_rnn"]:
                    out["modules_on_onednn_rnn"].append(module)
                out["onednn_rnn_impl"][module] = fields[fields.index("rnn") + 1]
    if proc.returncode != 0:
        out["error"] = proc.stderr.strip().splitlines()[-1:] or f"exit {proc.returncode}"
    return out


def machine_info() -> dict:
    info = {
        "cpu_model": _cpu_model(),
        "nproc": os.cpu_count(),
        "cpus_available": (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                           else None),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "env": {k: os.environ.get(k) for k in
                ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                 "OPENBLAS_THREAD_TIMEOUT", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
                + ISA_ENV_VARS},
        "versions": {"crnn": crnn.__version__, "numpy": np.__version__,
                     "torch": _version("torch"), "onnxruntime": _version("onnxruntime"),
                     "onnx": _version("onnx"), "threadpoolctl": _version("threadpoolctl"),
                     "scipy-openblas32": _version("scipy-openblas32"),
                     "onednn-cpu-gomp": _version("onednn-cpu-gomp")},
        "crnn_default_threads": None,
        "threadpools": [],
        "openblas_core": {"crnn": None, "numpy": None},
        "numpy_simd": numpy_simd(),
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


def isa_summary(info: dict) -> Dict[str, str]:
    """One line per library: the ISA (or kernel) it reports, and the variable that set it."""
    env = info["env"]

    def forced(var: str) -> str:
        return f" ({var}={env[var]})" if env.get(var) else ""

    isa = {}
    for who in ("crnn", "numpy"):
        core = (info["openblas_core"].get(who) or {}).get("architecture")
        isa[f"OpenBLAS ({who}'s)"] = (core or "?") + forced("OPENBLAS_CORETYPE")
    simd = info["numpy_simd"]["dispatch_enabled"]
    isa["NumPy SIMD dispatch"] = (", ".join(simd) or "baseline only") + \
        forced("NPY_DISABLE_CPU_FEATURES")
    tp = info.get("torch_probe") or {}
    if tp:
        isa["PyTorch ATen"] = f"{tp.get('aten_capability')}" + forced("ATEN_CPU_CAPABILITY")
        isa["PyTorch MKL"] = (f"MKL_VERBOSE says: {tp.get('mkl') or '?'}"
                              + forced("MKL_ENABLE_INSTRUCTIONS"))
        on = tp.get("modules_on_onednn_rnn") or []
        isa["PyTorch's oneDNN"] = (f"{tp.get('onednn_version')}, {tp.get('onednn_isa')}; runs "
                                   + (", ".join(f"nn.{m} ({tp['onednn_rnn_impl'][m]})" for m in on)
                                      or "no RNN module")) + forced("ONEDNN_MAX_CPU_ISA")
    if info.get("onednn"):
        d = info["onednn"]
        isa["oneDNN (onednn peer)"] = (f"{d.get('version')}, {d.get('isa')}"
                                       + forced("ONEDNN_MAX_CPU_ISA"))
    if info["versions"].get("onnxruntime"):
        isa["ONNX Runtime"] = "native: no switch (MLAS picks its kernels by CPUID)"
    for label, w in (info.get("crnn_workers") or {}).items():
        isa[label] = (w.get("isa") or "not reported by this crnn") + forced("CRNN_ISA")
    return isa


# --------------------------------------------------------------------------------------------
# GEMM peak (NumPy's OpenBLAS and torch.matmul's MKL)

def gemm_peak(dtype: np.dtype, threads: List[int], blas: NumpyBlasThreads, n: int,
              reps: int) -> Dict[int, float]:
    """Best GFLOP/s of an n x n x n matmul at each thread count of NumPy's BLAS."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype=dtype)
    out = {}
    if not blas.available:
        # NumPy's BLAS then runs at its own default threads (all CPUs, for OpenBLAS): a figure
        # measured so is no thread count's peak (on 2 CPUs it read as a 1-thread peak of 155
        # GFLOP/s where 1 thread reaches 95), so none is recorded
        return out
    old = blas.get()
    for t in threads:
        blas.set(t)
        out[t] = _best_gflops(lambda: np.matmul(a, b, out=c), n, reps)
    if old is not None:
        blas.set(old)
    return out


def torch_gemm_peak(dtype: np.dtype, threads: List[int], n: int, reps: int) -> Dict[int, float]:
    """Best GFLOP/s of an n x n x n ``torch.matmul`` at each thread count (MKL on x86)."""
    import torch
    dt = torch.float32 if dtype == np.float32 else torch.float64
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=gen, dtype=dt) for _ in range(2))
    c = torch.empty(n, n, dtype=dt)
    old = torch.get_num_threads()
    out = {}
    try:
        for t in threads:
            torch.set_num_threads(t)
            out[t] = _best_gflops(lambda: torch.matmul(a, b, out=c), n, reps)
    finally:
        torch.set_num_threads(old)
    return out


def _best_gflops(call: Callable[[], object], n: int, reps: int) -> float:
    call()  # warm up (threads, caches, page faults)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        call()
        best = min(best, time.perf_counter_ns() - t0)
    settle()
    return 2.0 * n ** 3 / best  # GFLOP/s (flops / ns)


class RoundPeak:
    """The GEMM peak of the moment, probed at the end of every round (``time_interleaved``):
    one untimed and the faster of two timed n x n x n matmuls on ``threads`` threads of ``lib``
    (the library with the better peak at the start of the run), its GFLOP/s. The matrices are
    made once."""

    def __init__(self, dtype: np.dtype, threads: int, blas: NumpyBlasThreads, n: int, lib: str):
        self.threads, self.n, self.lib, self.blas = threads, n, lib, blas
        if lib == "openblas":
            rng = np.random.default_rng(0)
            self.a, self.b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
            self.c = np.empty((n, n), dtype=dtype)
        else:
            import torch
            dt = torch.float32 if dtype == np.float32 else torch.float64
            gen = torch.Generator().manual_seed(0)
            self.a, self.b = (torch.randn(n, n, generator=gen, dtype=dt) for _ in range(2))
            self.c = torch.empty(n, n, dtype=dt)

    def __call__(self) -> Optional[float]:
        if self.lib == "openblas":
            if not self.blas.available:
                return None
            old = self.blas.get()
            self.blas.set(self.threads)
            try:
                return _best_gflops(lambda: np.matmul(self.a, self.b, out=self.c), self.n, 2)
            finally:
                if old is not None:
                    self.blas.set(old)
        import torch
        old = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return _best_gflops(lambda: torch.matmul(self.a, self.b, out=self.c), self.n, 2)
        finally:
            torch.set_num_threads(old)


def measure_peaks(dtype, threads, blas, n, reps, with_torch: bool) -> Dict[str, Dict[int, float]]:
    peaks = {"openblas": gemm_peak(dtype, threads, blas, n, reps)}
    if with_torch:
        import torch
        key = "mkl" if torch.backends.mkl.is_available() else "torch"
        peaks[key] = torch_gemm_peak(dtype, threads, n, reps)
    return peaks


# --------------------------------------------------------------------------------------------
# The problem: one cell, one shape, its weights and input

@dataclass
class Problem:
    cell: str
    reset_after: bool
    K: np.ndarray    # (D, G*H), Keras layout and gate order
    R: np.ndarray    # (H, G*H)
    b: np.ndarray    # (G*H,)
    rb: Optional[np.ndarray]  # (G*H,): GRU reset-after only
    x: np.ndarray    # (B, T, D)

    @property
    def shape(self) -> Tuple[int, int, int, int]:
        B, T, D = self.x.shape
        return B, T, D, self.R.shape[0]

    @property
    def entry(self) -> List[np.ndarray]:
        """The weights as one ``crnn._core.RNN`` / ``crnn.reference.rnn_stack`` entry."""
        return [self.K, self.R, self.b] + ([self.rb] if self.rb is not None else [])

    def crnn_kwargs(self) -> dict:
        kw = {"activation": "tanh", "direction": "forward", "dtype": self.x.dtype.name}
        if self.cell != "simple":  # (a crnn without cells takes none of these keywords)
            kw["cell"] = self.cell
            if self.cell == "gru":
                kw["reset_after"] = self.reset_after
        return kw


def make_problem(cell: str, shape, dtype: np.dtype, seed: int, reset_after: bool) -> Problem:
    B, T, D, H = shape
    G = GATES[cell]
    rng = np.random.default_rng(seed)
    scale = 1.0 / np.sqrt(H)  # PyTorch's default init range: keeps tanh out of saturation
    K = rng.uniform(-scale, scale, (D, G * H)).astype(dtype)
    R = rng.uniform(-scale, scale, (H, G * H)).astype(dtype)
    b = rng.uniform(-scale, scale, (G * H,)).astype(dtype)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    rb = (rng.uniform(-scale, scale, (G * H,)).astype(dtype)
          if cell == "gru" and reset_after else None)
    return Problem(cell, reset_after, K, R, b, rb, x)


# --------------------------------------------------------------------------------------------
# Implementations

class Impl:
    """One implementation at one thread setting: ``run()`` computes the (B, T, H) output,
    ``chunk(k, warm)`` times k calls (ns each; by default ``run`` between ``enter`` and
    ``leave``)."""

    def __init__(self, name: str, family: str, threads: Optional[int], run: Callable,
                 to_bth: Callable = np.asarray, enter: Callable = None, leave: Callable = None,
                 note: str = "", chunk: Optional[Callable[[int, bool], List[int]]] = None):
        self.name, self.family, self.threads = name, family, threads
        self.run, self.to_bth = run, to_bth
        self.enter = enter or (lambda: None)
        self.leave = leave or (lambda: None)
        self._chunk = chunk
        self.note = note
        self.samples: List[int] = []
        self.sample_rounds: List[int] = []  # the round of each sample (time_interleaved)
        self.status = "ok"  # ok | wrong | skipped | error
        self.max_err: Optional[float] = None
        self.est_ns: Optional[float] = None
        self.alias_of: Optional[str] = None

    def chunk(self, k: int, warm: bool) -> List[int]:
        if self._chunk is not None:
            return self._chunk(k, warm)
        self.enter()
        try:
            return time_calls(self.run, k, warm)
        finally:
            self.leave()


def gate_columns(units: int, order: List[int]) -> np.ndarray:
    """Column indices that put Keras's gate blocks (each ``units`` wide) in ``order``."""
    return np.concatenate([np.arange(g * units, (g + 1) * units) for g in order])


class Unsupported(Exception):
    """This implementation has no such cell / dtype: reported as skipped, with the reason."""


def _sigmoid_(a: np.ndarray) -> np.ndarray:
    """In place: sigmoid(a) = 0.5 * tanh(a / 2) + 0.5 (no overflow, one transcendental)."""
    a *= 0.5
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


def make_numpy(p: Problem, hoisted: bool) -> Callable[[], np.ndarray]:
    """NumPy, batched over B: the input projection hoisted out of the time loop (one matmul) or
    per step (``x_t @ K + b``), then per step ``h @ R`` and the cell, in preallocated buffers."""
    B, T, D, H = p.shape
    G, dt, cell = GATES[p.cell], p.x.dtype, p.cell
    K, R, b, x = p.K, p.R, p.b, p.x
    x2 = x.reshape(B * T, D)
    if cell == "gru" and not p.reset_after:
        R_zr, R_h = np.ascontiguousarray(R[:, :2 * H]), np.ascontiguousarray(R[:, 2 * H:])
    rb = p.rb

    def run():
        y = np.empty((B, T, H), dtype=dt)
        if hoisted:
            xw = np.matmul(x2, K).reshape(B, T, G * H)  # input projection of all timesteps
            xw += b
        h = np.zeros((B, H), dtype=dt)
        c = np.zeros((B, H), dtype=dt) if cell == "lstm" else None
        z = np.empty((B, G * H), dtype=dt)
        tmp = np.empty((B, H), dtype=dt)
        for t in range(T):
            if hoisted:
                xt = xw[:, t]
            else:
                xt = x[:, t] @ K
                xt += b
            out = y[:, t]
            if cell == "simple":
                np.matmul(h, R, out=z)
                z += xt
                np.tanh(z, out=out)
            elif cell == "lstm":
                np.matmul(h, R, out=z)
                z += xt
                _sigmoid_(z[:, :2 * H])                      # i, f
                np.tanh(z[:, 2 * H:3 * H], out=z[:, 2 * H:3 * H])  # c~
                _sigmoid_(z[:, 3 * H:])                      # o
                c *= z[:, H:2 * H]
                np.multiply(z[:, :H], z[:, 2 * H:3 * H], out=tmp)
                c += tmp
                np.tanh(c, out=out)
                out *= z[:, 3 * H:]
            else:
                if p.reset_after:  # n = tanh(xh + r * (h R_h + rb_h))
                    np.matmul(h, R, out=z)
                    if rb is not None:
                        z += rb
                    z[:, :2 * H] += xt[:, :2 * H]
                    _sigmoid_(z[:, :2 * H])
                    n = z[:, 2 * H:]
                    n *= z[:, H:2 * H]
                else:  # n = tanh(xh + (r * h) R_h)
                    zr = z[:, :2 * H]
                    np.matmul(h, R_zr, out=zr)
                    zr += xt[:, :2 * H]
                    _sigmoid_(zr)
                    np.multiply(z[:, H:2 * H], h, out=tmp)
                    n = z[:, 2 * H:]
                    np.matmul(tmp, R_h, out=n)
                n += xt[:, 2 * H:]
                np.tanh(n, out=n)
                np.subtract(h, n, out=out)                   # h_t = n + z * (h - n)
                out *= z[:, :H]
                out += n
            h = out
        return y
    return run


def make_torch(p: Problem, threads: int):
    import torch
    dt = torch.float32 if p.x.dtype == np.float32 else torch.float64
    B, T, D, H = p.shape
    if p.cell == "gru" and not p.reset_after:
        raise Unsupported("PyTorch has no reset-before GRU")
    cols = gate_columns(H, [1, 0, 2] if p.cell == "gru" else list(range(GATES[p.cell])))  # r,z,n
    module = {"simple": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[p.cell]
    kw = {"nonlinearity": "tanh"} if p.cell == "simple" else {}
    rnn = module(D, H, num_layers=1, bias=True, batch_first=True, **kw).to(dt).eval()
    rb = np.zeros_like(p.b) if p.rb is None else p.rb
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(p.K[:, cols].T)))
        rnn.weight_hh_l0.copy_(torch.from_numpy(np.ascontiguousarray(p.R[:, cols].T)))
        rnn.bias_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(p.b[cols])))
        rnn.bias_hh_l0.copy_(torch.from_numpy(np.ascontiguousarray(rb[cols])))
    xt = torch.from_numpy(p.x)
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


def make_onnxruntime(p: Problem, threads: int):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    B, T, D, H = p.shape
    G = GATES[p.cell]
    elem = TensorProto.FLOAT if p.x.dtype == np.float32 else TensorProto.DOUBLE
    cols = gate_columns(H, [0, 3, 1, 2] if p.cell == "lstm" else list(range(G)))  # LSTM i,o,f,c
    rb = np.zeros_like(p.b) if p.rb is None else p.rb
    inits = [
        numpy_helper.from_array(np.ascontiguousarray(p.K[:, cols].T)[None], "W"),  # (1, G*H, D)
        numpy_helper.from_array(np.ascontiguousarray(p.R[:, cols].T)[None], "R"),  # (1, G*H, H)
        numpy_helper.from_array(np.concatenate([p.b[cols], rb[cols]])[None], "B"),  # (1, 2*G*H)
    ]
    op = {"simple": "RNN", "lstm": "LSTM", "gru": "GRU"}[p.cell]
    attrs = {"linear_before_reset": int(p.reset_after)} if p.cell == "gru" else {}
    node = helper.make_node(op, ["X", "W", "R", "B"], ["Y"], hidden_size=H, **attrs)  # layout 0
    graph = helper.make_graph(
        [node], f"{p.cell}_rnn", [helper.make_tensor_value_info("X", elem, [T, B, D])],
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
    feeds = {"X": np.ascontiguousarray(p.x.transpose(1, 0, 2))}  # (T, B, D), outside the timing
    names = ["Y"]
    try:  # some kernels refuse a dtype only when run (ORT's LSTM / GRU: float32 only)
        sess.run(names, feeds)
    except Exception as err:
        raise Unsupported(f"{type(err).__name__}: {str(err).splitlines()[0][:200]}") from None

    def run():
        return sess.run(names, feeds)[0]

    return run, (lambda out: np.asarray(out)[:, 0].transpose(1, 0, 2))


def make_onednn(p: Problem, threads: int, dnn):
    if p.x.dtype != np.float32:
        raise Unsupported("oneDNN's RNN primitives have no float64")
    B, T, _, _ = p.shape
    # A oneDNN primitive keeps the thread count it was created under (it asks OpenMP for that
    # many threads at every call, whatever omp_set_num_threads says later): create it under its
    # own.
    dnn.set_threads(threads)
    prim = dnn.rnn(p.cell, p.K, p.R, p.b, p.rb, B, T, reset_after=p.reset_after)
    x = p.x

    def run():
        return prim.forward(x)

    return run, np.asarray, (lambda: dnn.set_threads(threads)), None, prim.impl_info


def crnn_impls(worker: Worker, family: str, p: Problem, default: int) -> List[Impl]:
    """The rows of one crnn worker: 1, 2 and default threads (the default row an alias)."""
    status, note = "ok", ""
    try:
        skip = worker.build(p.cell, [[p.entry]], p.crnn_kwargs(), p.x)
        if skip:
            status, note = "skipped", skip
    except RuntimeError as err:
        status, note = "error", str(err)
    impls, by_threads = [], {}
    for n in sorted({1, 2, default}):
        imp = Impl(f"{family} ({n} thr)", family, n, (lambda n=n: worker.run(n)),
                   chunk=(lambda k, warm, n=n: worker.time(n, k, warm)))
        imp.status, imp.note = status, note
        by_threads[n] = imp
        impls.append(imp)
    alias = Impl(f"{family} default ({default} thr)", f"{family}-default", default, None)
    alias.alias_of = by_threads[default].name
    impls.append(alias)
    return impls


def build_impls(p: Problem, args, blas: NumpyBlasThreads, workers: Dict[str, Tuple[Worker, int]],
                dnn, notes: List[str]) -> List[Impl]:
    impls: List[Impl] = []
    thread_counts = (1, 2)
    want = set(args.peers)

    def np_enter(n):
        return (lambda: blas.set(n)) if blas.available else None

    for fam, hoisted in (("numpy-loop", False), ("numpy-hoisted", True)):
        if fam not in want:
            continue
        for n in (thread_counts if blas.available else (None,)):
            impls.append(Impl(f"{fam} ({n} thr)" if n else fam, fam, n, make_numpy(p, hoisted),
                              enter=np_enter(n)))
    makers = (("torch", make_torch), ("onnxruntime", make_onnxruntime),
              ("onednn", lambda p, n: make_onednn(p, n, dnn)))
    for fam, maker in makers:
        if fam not in want:
            continue
        for n in thread_counts:
            name = f"{fam} ({n} thr)"
            try:
                made = maker(p, n)
            except ImportError as err:
                notes.append(f"{fam}: skipped, not importable ({err})")
                break
            except Exception as err:  # e.g. ORT has no float64 RNN kernel
                imp = Impl(name, fam, n, None)
                imp.status = "skipped"
                imp.note = (str(err) if isinstance(err, Unsupported) else
                            f"{type(err).__name__}: {str(err).splitlines()[0][:200]}")
                impls.append(imp)
                continue
            run, to_bth, *rest = made
            enter, leave, note = (rest + [None, None, ""])[:3]
            impls.append(Impl(name, fam, n, run, to_bth, enter, leave, note=note or ""))
    for fam, (worker, default) in workers.items():
        impls += crnn_impls(worker, fam, p, default)
    return impls


# --------------------------------------------------------------------------------------------
# Check and time

def reference_output(p: Problem) -> np.ndarray:
    f64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
    return crnn.reference.rnn_stack(f64(p.x), [[[f64(a) for a in p.entry]]], cell=p.cell,
                                    activation="tanh", reset_after=p.reset_after,
                                    return_sequences=True)


def check(imp: Impl, ref: np.ndarray, tol: float) -> None:
    """Run once, compare with the reference, then estimate the call time from timed calls."""
    settle()
    imp.enter()
    try:
        t0 = time.perf_counter_ns()
        out = imp.run()
        first = time.perf_counter_ns() - t0
        got = np.asarray(imp.to_bth(out), dtype=np.float64)
    except Exception as err:
        imp.status, imp.note = "error", f"{type(err).__name__}: {err}"
        return
    finally:
        imp.leave()
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
    try:  # the faster of two calls: one slow wake-up must not pass for the call's cost
        imp.est_ns = max(min(imp.chunk(2, False)) if first < 1e9 else first, 1)
    except Exception as err:
        imp.status, imp.note = "error", f"{type(err).__name__}: {err}"


def time_interleaved(impls: List[Impl], repeats: int, budget_s: float, rounds: int,
                     probe: Optional[Callable[[], Optional[float]]] = None
                     ) -> List[Optional[float]]:
    """Collect samples, round-robin over the implementations, each call timed on its own.

    Each implementation aims at min(repeats, budget / estimated call time) samples (at least 3)
    spread evenly over the rounds; the budget is rechecked before every chunk against the time
    actually spent (warm-up calls included), so a call slower than its estimate (a disturbed
    machine) shortens its run instead of stretching it. Every sample is tagged with its round
    (``Impl.sample_rounds``). ``probe``, if given, runs once at the end of every round (the
    GEMM peak of that moment, :class:`RoundPeak`); its values are returned, one a round."""
    if not impls:
        return []
    budget_ns = budget_s * 1e9
    plan = []
    for imp in impls:
        warm = imp.est_ns < WARM_CHUNK_BELOW_NS
        n = max(3, min(repeats, int(budget_ns / imp.est_ns)))
        plan.append({"imp": imp, "target": n, "warm": warm, "spent": 0})
    nrounds = max(1, min(rounds, max(p["target"] for p in plan)))
    probes: List[Optional[float]] = []
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
            if len(samples) < 3:  # a median of at least 3, whatever the budget says
                k = max(k, -(-(3 - len(samples)) // left_rounds))
            if k <= 0:
                continue
            chunk0 = time.perf_counter_ns()
            got = imp.chunk(k, p["warm"])
            samples.extend(got)
            imp.sample_rounds.extend([rnd] * len(got))
            p["spent"] += time.perf_counter_ns() - chunk0
            settle()
        if probe is not None:
            probes.append(probe())
    return probes


def paired(impls: Dict[str, Impl], crnn_name: str, peer_names: List[str],
           probes: List[Optional[float]], flops_: float) -> Optional[dict]:
    """crnn's figures round by round, against what ran in the same round: the median over the
    rounds of (the fastest peer's median in the round / crnn's), and of crnn's GFLOP/s in the
    round over that round's GEMM peak (``probes``). A slow spell of a shared machine lasts
    seconds, about as long as a round or longer, so these tell the code from the spells where
    the run's medians (every round's samples pooled) and its peak (the best of the start and
    end) mix them. None where crnn has no samples."""
    def by_round(imp: Impl) -> Dict[int, float]:
        groups: Dict[int, List[int]] = {}
        for rnd, ns in zip(imp.sample_rounds, imp.samples):
            groups.setdefault(rnd, []).append(ns)
        return {rnd: statistics.median(v) for rnd, v in groups.items()}

    mine = by_round(impls[crnn_name])
    if not mine:
        return None
    peers = [by_round(impls[n]) for n in peer_names]
    ratios, pcts = [], []
    for rnd, ns in sorted(mine.items()):
        theirs = [p[rnd] for p in peers if rnd in p]
        if theirs:
            ratios.append(min(theirs) / ns)
        peak = probes[rnd] if rnd < len(probes) else None
        if peak:
            pcts.append(100.0 * flops_ / ns / peak)
    out: dict = {"rounds": len(mine)}
    if ratios:
        out["speedup"] = statistics.median(ratios)
        out["speedup_rounds"] = len(ratios)
        out["speedup_above_1"] = sum(r >= 1.0 for r in ratios) / len(ratios)
    if pcts:
        out["pct_peak"] = statistics.median(pcts)
        out["pct_peak_rounds"] = len(pcts)
        out["round_peaks"] = [p for p in probes if p]
    return out


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


def _children_cpu_seconds(pids: List[int]) -> float:
    """CPU seconds (user + system) of the given processes so far (Linux /proc), 0 if unknown."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            pass
    return total


class LoadMeter:
    """How many cores other processes kept busy meanwhile (a quiet machine shows ~0); the
    benchmark's own worker processes (``pids``) count as its own."""

    def __init__(self, pids: Optional[List[int]] = None):
        self.pids = list(pids or [])
        self.busy0, self.t0 = cpu_busy_seconds(), time.perf_counter()
        self.own0 = time.process_time() + _children_cpu_seconds(self.pids)

    def other_cores(self) -> Optional[float]:
        busy = cpu_busy_seconds()
        if busy is None or self.busy0 is None:
            return None
        own = time.process_time() + _children_cpu_seconds(self.pids) - self.own0
        other = (busy - self.busy0) - own
        return max(0.0, other) / max(time.perf_counter() - self.t0, 1e-9)


def bench_shape(cell: str, shape, args, blas, workers, dnn, notes,
                probe: Optional[Callable[[], Optional[float]]] = None) -> dict:
    B, T, D, H = shape
    dtype = np.dtype(args.dtype)
    p = make_problem(cell, shape, dtype, args.seed, args.reset_after)
    meter = LoadMeter([w.proc.pid for w, _ in workers.values()])
    t0 = time.perf_counter()
    ref = reference_output(p)
    ref_s = time.perf_counter() - t0
    impls = build_impls(p, args, blas, workers, dnn, notes)
    tol = TOLERANCE[dtype.name]
    measured = [i for i in impls if i.status == "ok" and i.alias_of is None]
    for imp in measured:
        check(imp, ref, tol)
    timed = [i for i in measured if i.status == "ok"]
    probes = time_interleaved(timed, args.repeats, args.budget, args.rounds, probe)

    fl = flops(B, T, D, H, cell)
    rows = {}
    for imp in impls:
        src = next((i for i in impls if i.name == imp.alias_of), imp) if imp.alias_of else imp
        row = {"family": imp.family, "threads": imp.threads, "status": src.status,
               "note": src.note or imp.note, "max_abs_err": src.max_err}
        if imp.alias_of:
            row["same_as"] = imp.alias_of
        if src.status == "ok" and src.samples:
            row.update(summarize(src.samples))
            row["gflops"] = fl / (row["median_us"] * 1e3)
        rows[imp.name] = row

    def med(name):
        return rows[name].get("median_us")

    def default_row(family):
        return next((n for n, r in rows.items() if r["family"] == f"{family}-default"), None)

    peers = [n for n, r in rows.items() if r["family"] in PEER_FAMILIES and r.get("median_us")]
    best_peer = min(peers, key=med) if peers else None
    crnn_rows = [n for n, r in rows.items() if r["family"] == "crnn" and r.get("median_us")]
    crnn_default = default_row("crnn")
    crnn_best = min(crnn_rows, key=med) if crnn_rows else None
    res = {"cell": cell, "shape": list(shape), "dtype": dtype.name, "flops": fl,
           "reference_seconds": ref_s, "impls": rows, "best_peer": best_peer,
           "best_crnn": crnn_best, "crnn_default": crnn_default,
           "baseline_default": default_row("crnn-baseline"),
           "other_load_cores": meter.other_cores()}
    if best_peer and crnn_default and med(crnn_default):
        res["speedup"] = med(best_peer) / med(crnn_default)
        res["speedup_best_crnn"] = med(best_peer) / med(crnn_best)
        res["speedup_per_family"] = {}
        for fam in PEER_FAMILIES:
            fam_rows = [n for n in peers if rows[n]["family"] == fam]
            if fam_rows:
                res["speedup_per_family"][fam] = min(med(n) for n in fam_rows) / med(crnn_default)
    base = res["baseline_default"]
    if base and med(base) and crnn_default and med(crnn_default):
        res["speedup_vs_baseline"] = med(base) / med(crnn_default)
    if crnn_default and med(crnn_default):
        by_name = {i.name: i for i in impls}
        source = rows[crnn_default].get("same_as") or crnn_default
        res["paired"] = paired(by_name, source, [rows[n].get("same_as") or n for n in peers],
                               probes, fl)
    return res


def apply_peaks(results: List[dict], peaks: Dict[int, float]) -> None:
    for r in results:
        for row in r["impls"].values():
            if row.get("gflops") is not None and peaks.get(row["threads"]):
                row["pct_peak"] = 100.0 * row["gflops"] / peaks[row["threads"]]


# --------------------------------------------------------------------------------------------
# Reports

def _fmt_us(v: Optional[float]) -> str:
    if v is None:
        return "—"
    return f"{v:.2f}" if v < 10 else (f"{v:.1f}" if v < 1000 else f"{v:.0f}")


def _shape(r: dict) -> str:
    return f"({','.join(map(str, r['shape']))})"


def _cell_title(report: dict, cell: str) -> str:
    if cell == "gru":
        return f"GRU (reset_after={report['settings']['reset_after']})"
    return CELL_TITLES[cell]


def write_markdown(path: str, report: dict) -> str:
    m, res = report["machine"], report["results"]
    mode = report["isa_mode"]
    lines = []
    lines.append(f"# crnn vs peers: {', '.join(_cell_title(report, c) for c in report['cells'])} "
                 f"forward, {report['dtype']}, all hidden states returned"
                 + (" (every library held to AVX2)" if mode == "avx2" else ""))
    lines.append("")
    lines.append(f"Command: `{report['command']}`  ")
    lines.append(f"Machine: {m['cpu_model']}, nproc {m['nproc']}; "
                 f"OPENBLAS_CORETYPE={m['env']['OPENBLAS_CORETYPE'] or '(unset)'}, "
                 f"OPENBLAS_L2_SIZE={m['env']['OPENBLAS_L2_SIZE'] or '(unset)'}; "
                 f"OpenBLAS core chosen: crnn "
                 f"{(m['openblas_core']['crnn'] or {}).get('architecture', '?')}, numpy "
                 f"{(m['openblas_core']['numpy'] or {}).get('architecture', '?')}  ")
    pk = report["gemm_peak"]
    by_lib = "; ".join(
        f"{PEAK_LABELS.get(lib, lib)}: "
        + (", ".join(f"{g:.0f} at {t} thr" for t, g in sorted(vals.items()))
           or "not measured (its threads cannot be set)")
        for lib, vals in pk["by_library"].items())
    lines.append(f"{pk['kind']} peak ({pk['n']}³ matmul, best of {pk['reps']} at the start and "
                 f"at the end; GFLOP/s): {by_lib}; used (the better): "
                 + ", ".join(f"{g:.0f} at {t} thr" for t, g in sorted(pk["gflops"].items()))
                 + "  ")
    v = m["versions"]
    dnn = m.get("onednn")
    lines.append(f"Versions: crnn {v['crnn']}, numpy {v['numpy']}, torch {v['torch']}, "
                 f"onnxruntime {v['onnxruntime']}, "
                 + (f"oneDNN {dnn['version']} (onednn-cpu-gomp {v.get('onednn-cpu-gomp')}), "
                    if dnn else "oneDNN not loaded, ")
                 + f"crnn default threads {m['crnn_default_threads']}")
    for label, w in (m.get("crnn_workers") or {}).items():
        lines.append(f"{label}: {w['file']} (version {w['version']}, default threads "
                     f"{w['default_threads']}" + (f", {w['git']}" if w.get("git") else "") + ")  ")
    lines.append("")
    lines.append(f"ISA per library ({'held to AVX2 by --avx2' if mode == 'avx2' else 'native'}):")
    lines.append("")
    for lib, what in report["isa"].items():
        lines.append(f"- {lib}: {what}")
    lines.append("")
    lines.append("Median µs per forward call (lower is better); speed-up = best peer / crnn at its "
                 "default threads (> 1: crnn faster). Best peer in bold."
                 + (" vs baseline = crnn-baseline / crnn, both at their default threads "
                    "(> 1: the current crnn is faster)." if report["baseline"] else ""))
    has_base = bool(report["baseline"])
    for cell in report["cells"]:
        cres = [r for r in res if r["cell"] == cell]
        if not cres:
            continue
        lines.append("")
        lines.append(f"## {_cell_title(report, cell)}")
        lines.append("")
        fams = [f for f in PEER_FAMILIES if any(r["impls"][n]["family"] == f
                                                 for r in cres for n in r["impls"])]
        head = ["(B,T,D,H)"] + [f"{f} 1 / 2 thr" for f in fams] + [
            "crnn 1 / 2 thr", "crnn default", "speed-up"]
        if has_base:
            head += ["baseline default", "vs baseline"]
        head += ["crnn GFLOP/s", "% 2-thr peak", "paired speed-up", "paired % peak",
                 "other load"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for r in cres:
            rows = r["impls"]
            cells = [_shape(r)]
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
            if has_base:
                bd = rows.get(r["baseline_default"]) if r["baseline_default"] else None
                cells.append(_fmt_us(bd.get("median_us")) if bd and bd.get("median_us")
                             else (bd["status"] if bd else "—"))
                cells.append(f"{r['speedup_vs_baseline']:.2f}×"
                             if r.get("speedup_vs_baseline") else "—")
            if d and d.get("gflops") is not None:
                cells.append(f"{d['gflops']:.1f}")
                p2 = pk["gflops"].get(2) or pk["gflops"].get(max(pk["gflops"]))
                cells.append(f"{100 * d['gflops'] / p2:.0f} %")
            else:
                cells += ["—", "—"]
            pr = r.get("paired") or {}
            cells.append(f"{pr['speedup']:.2f}×" if pr.get("speedup") else "—")
            cells.append(f"{pr['pct_peak']:.0f} %" if pr.get("pct_peak") else "—")
            ol = r.get("other_load_cores")
            cells.append("?" if ol is None else f"{ol:.2f}")
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("\"other load\": cores kept busy by other processes while the shape ran "
                 "(/proc/stat minus this process and its crnn workers); above ~0.1 the figures "
                 "are disturbed. \"paired\": round by round (each round times every "
                 "implementation in turn, a fraction of a second), the median over the rounds of "
                 "the fastest peer's median in the round over crnn's, and of crnn's GFLOP/s in "
                 "the round over the two-thread GEMM peak probed at the round's end: a slow "
                 "spell of a shared machine (seconds) weighs on both sides of each ratio, where "
                 "the columns before pool every round's samples and take the best peak of the "
                 "start and the end.")
    lines.append("")
    lines.append("## Details")
    lines.append("")
    lines.append("| cell | (B,T,D,H) | implementation | median µs | q1–q3 µs | n | GFLOP/s "
                 "| % peak (own threads) | max abs err | note |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in res:
        for n, row in r["impls"].items():
            if row.get("same_as"):
                lines.append(f"| {r['cell']} | {_shape(r)} | {n} | = {row['same_as']} "
                             f"| | | | | | |")
                continue
            err = row.get("max_abs_err")
            cells = [r["cell"], _shape(r), n,
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
                 "round-robin, medians; crnn timed inside its worker process. ONNX Runtime: input "
                 "transposed to (T,B,D) outside the timing, output left in (T,1,B,H). PyTorch: "
                 "output left as the batch_first view. oneDNN: the note is the implementation "
                 "it chose.")
    text = "\n".join(lines) + "\n"
    with open(path, "w") as f:
        f.write(text)
    return text


def summary_table(reports: List[dict]) -> str:
    """One Markdown table of the runs ``reports`` (same cells and shapes; the first is quoted in
    full, the others by their speed-ups): per cell and shape the first run's best peer and its
    time, crnn's times at 1 and 2 threads, crnn's speed-up at its default in every run (bold
    below 1), its share of the two-thread GEMM peak in every run, and, where a run has them,
    every run's paired figures (``paired``). The README's table is this output
    (``--summarize``)."""
    first = reports[0]
    later = [{(r["cell"], tuple(r["shape"])): r for r in rep["results"]} for rep in reports[1:]]

    def speedup(r: Optional[dict]) -> str:
        if not r or r.get("speedup") is None:
            return "—"
        v = r["speedup"]
        if v >= 1.0:
            return f"{v:.2f}×"
        # a third digit where two would round a loss up to 1.00
        return f"**{v:.3f}×**" if f"{v:.2f}" == "1.00" else f"**{v:.2f}×**"

    def pct(r: Optional[dict]) -> str:
        row = r and r["impls"].get(r.get("crnn_default") or "")
        return f"{row['pct_peak']:.0f} %" if row and row.get("pct_peak") is not None else "—"

    def paired_figures(r: Optional[dict]) -> str:
        pr = (r or {}).get("paired") or {}
        if pr.get("speedup") is None:
            return "—"
        return f"{pr['speedup']:.2f}×" + (f" / {pr['pct_peak']:.0f} %" if pr.get("pct_peak")
                                          else "")

    def crnn_us(r: dict, threads: int) -> str:
        row = r["impls"].get(f"crnn ({threads} thr)")
        return _fmt_us(row.get("median_us")) if row and row.get("status") == "ok" else "—"

    runs = len(reports)
    head = ["cell", "(B,T,D,H)", "best peer", "its µs", "crnn µs (1 / 2 thr)"]
    head += ["speed-up" if runs == 1 else f"speed-up, run {i + 1}" for i in range(runs)]
    head += ["% of peak" if runs == 1 else f"% of peak, run {i + 1}" for i in range(runs)]
    with_paired = any(r.get("paired") for rep in reports for r in rep["results"])
    if with_paired:  # runs before the paired figures have none
        head += ["paired speed-up / % of peak" + ("" if runs == 1 else f", run {i + 1}")
                 for i in range(runs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in first["results"]:
        key = (r["cell"], tuple(r["shape"]))
        others = [runs_by_key.get(key) for runs_by_key in later]
        best = r["impls"].get(r.get("best_peer") or "")
        cells = [CELL_TITLES[r["cell"]], _shape(r), r.get("best_peer") or "—",
                 _fmt_us(best.get("median_us")) if best else "—",
                 f"{crnn_us(r, 1)} / {crnn_us(r, 2)}"]
        cells += [speedup(x) for x in [r] + others] + [pct(x) for x in [r] + others]
        if with_paired:
            cells += [paired_figures(x) for x in [r] + others]
        lines.append("| " + " | ".join(cells) + " |")
    peaks = ", ".join(f"{rep['gemm_peak']['gflops'].get('2', float('nan')):.0f}" for rep in reports)
    lines.append("")
    lines.append(f"Two-thread sgemm peak of each run: {peaks} GFLOP/s."
                 + (" Paired: round by round, the fastest peer over crnn and crnn's share of "
                    "the peak probed at the round's end, medians over the rounds "
                    "(bench/peers.py's docstring)." if with_paired else ""))
    return "\n".join(lines)


def write_png(path: str, report: dict) -> Optional[str]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: the chart was not written"
    panels = [(c, [r for r in report["results"] if r["cell"] == c and
                   (r.get("speedup_per_family") or r.get("speedup_vs_baseline"))])
              for c in report["cells"]]
    panels = [(c, res) for c, res in panels if res]
    if not panels:
        return "no speed-ups to plot"
    n = max(len(res) for _, res in panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(8, 1.3 * n), 4.2 * len(panels)),
                             squeeze=False)
    for ax, (cell, res) in zip(axes[:, 0], panels):
        fams = [f for f in PEER_FAMILIES if any(f in r.get("speedup_per_family", {})
                                                 for r in res)]
        width = 0.8 / max(1, len(fams))
        xs = np.arange(len(res))
        for k, fam in enumerate(fams):
            vals = [r.get("speedup_per_family", {}).get(fam, np.nan) for r in res]
            ax.bar(xs + (k - (len(fams) - 1) / 2) * width, vals, width, label=f"vs {fam}")
        ax.scatter(xs, [r.get("speedup", np.nan) for r in res], color="black", marker="D",
                   zorder=3, label="vs best peer")
        if any(r.get("speedup_vs_baseline") for r in res):
            ax.scatter(xs, [r.get("speedup_vs_baseline", np.nan) for r in res], color="green",
                       marker="^", s=60, zorder=3, label="vs crnn-baseline")
        ax.axhline(1.0, color="red", linewidth=1)
        ax.set_yscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels([_shape(r) for r in res], rotation=30, ha="right")
        ax.set_ylabel("speed-up of crnn, × (> 1: faster)")
        ax.set_title(f"{_cell_title(report, cell)}, {report['dtype']}"
                     + (", AVX2" if report["isa_mode"] == "avx2" else "")
                     + ": crnn (default threads) over each peer's best thread count", fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(True, axis="y", which="both", alpha=0.3)
    axes[-1, 0].set_xlabel("(B, T, D, H)")
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


def _bool(text: str) -> bool:
    v = text.strip().lower()
    if v in ("1", "true", "yes"):
        return True
    if v in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def git_describe(path: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", "-C", path, "log", "-1", "--format=%h %s"],
                             capture_output=True, text=True, timeout=30)
        dirty = subprocess.run(["git", "-C", path, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return "commit " + out.stdout.strip() + (" (modified)" if dirty.stdout.strip() else "")


def ensure_built(path: str) -> None:
    """Build the crnn checkout at ``path`` in place unless it has a built extension."""
    pkg = os.path.join(path, "crnn")
    if not os.path.isfile(os.path.join(pkg, "__init__.py")):
        raise SystemExit(f"--baseline: {path} has no crnn/ package (expected a crnn checkout)")
    if any(f.startswith("_core") and f.endswith((".so", ".pyd")) for f in os.listdir(pkg)):
        return
    cmd = [sys.executable, "setup.py", "build_ext", "--inplace"]
    print(f"building the baseline: (cd {path} && {shlex.join(cmd)}) ...", flush=True)
    proc = subprocess.run(cmd, cwd=path, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"--baseline: the build in {path} failed:\n{proc.stderr[-3000:]}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cell", choices=CELLS + ("all",), default="all",
                   help="the cell(s) to benchmark (default all)")
    p.add_argument("--reset-after", type=_bool, default=True,
                   help="GRU variant: true (default; PyTorch's GRU, Keras 3's default) or false")
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
    p.add_argument("--baseline", metavar="PATH", default=None,
                   help="a crnn checkout to time as crnn-baseline (built in place if needed)")
    p.add_argument("--avx2", action="store_true",
                   help="re-run in a process with every library held to AVX2; writes peers-avx2.*")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--summarize", nargs="+", metavar="JSON", default=None,
                   help="print one table of earlier runs' peers.json (the README's) and exit")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "results"),
                   help="output directory (default bench/results/)")
    raw_argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(raw_argv)
    if args.summarize:
        reports = []
        for path in args.summarize:
            try:
                with open(path) as fh:
                    report = json.load(fh)
            except (OSError, ValueError) as err:
                p.error(f"--summarize: cannot read {path}: {err}")
            if not isinstance(report, dict) or not {"results", "gemm_peak"} <= report.keys():
                p.error(f"--summarize: {path} is not a peers.json (no results / gemm_peak)")
            reports.append(report)
        print(summary_table(reports))
        return 0
    if args.avx2 and os.environ.get(ISA_MODE_VAR) != "avx2":
        env = dict(os.environ, **avx2_env(), **{ISA_MODE_VAR: "avx2"})
        print("--avx2: re-running with " + " ".join(f"{k}={shlex.quote(v)}" for k, v in
                                                    sorted(avx2_env().items())), flush=True)
        cmd = [sys.executable, os.path.abspath(__file__)] + raw_argv
        return subprocess.run(cmd, env=env).returncode
    isa_mode = "avx2" if args.avx2 else "native"
    args.peers = [s.strip() for s in args.peers.split(",") if s.strip()]
    unknown = set(args.peers) - set(PEER_FAMILIES + ("crnn",))
    if unknown:
        p.error(f"--peers: unknown {sorted(unknown)}")
    cells = list(CELLS) if args.cell == "all" else [args.cell]
    shapes = args.shapes or (QUICK_SHAPES if args.quick else DEFAULT_SHAPES)
    if args.repeats is None:
        args.repeats = 60 if args.quick else 400
    if args.budget is None:
        args.budget = 0.3 if args.quick else 2.0
    os.makedirs(args.out, exist_ok=True)

    started = time.perf_counter()
    blas = NumpyBlasThreads()
    notes: List[str] = []
    if blas.note:
        notes.append(blas.note)
    # Import the optional peers before reading the thread pools, so theirs are listed too; torch
    # before oneDNN, which then binds to the libgomp.so.1 torch loaded.
    for mod in ("torch", "onnxruntime"):
        if mod in args.peers:
            try:
                __import__(mod)
            except ImportError as err:
                notes.append(f"{mod}: not importable ({err}); skipped")
                args.peers.remove(mod)
    dnn = None
    if "onednn" in args.peers:
        try:
            import onednn
            dnn = onednn.OneDNN()
        except Exception as err:  # not installed, or the shim does not build
            notes.append(f"onednn: skipped ({err})")
            args.peers.remove("onednn")
    workers: Dict[str, Tuple[Worker, int]] = {}
    try:
        if "crnn" in args.peers:
            cur = Worker(os.path.dirname(os.path.dirname(os.path.abspath(crnn.__file__))), "crnn")
            workers["crnn"] = (cur, cur.info["default_threads"])
        if args.baseline:
            base_root = os.path.abspath(args.baseline)
            ensure_built(base_root)
            base = Worker(base_root, "crnn-baseline")
            base.info["git"] = git_describe(base_root)
            workers["crnn-baseline"] = (base, base.info["default_threads"])
        return run(args, raw_argv, cells, shapes, blas, workers, dnn, notes, isa_mode, started)
    finally:
        for w, _ in workers.values():
            w.close()


def run(args, raw_argv, cells, shapes, blas, workers, dnn, notes, isa_mode, started) -> int:
    info = machine_info()
    crnn_default = workers["crnn"][1] if "crnn" in workers else crnn.get_num_threads()
    info["crnn_default_threads"] = crnn_default
    info["crnn_workers"] = {label: w.info for label, (w, _) in workers.items()}
    if "crnn" in workers:
        info["crnn_workers"]["crnn"]["git"] = git_describe(
            os.path.dirname(os.path.dirname(workers["crnn"][0].info["file"])))
    if dnn is not None:
        import onednn
        info["onednn"] = {"version": dnn.version, "isa": dnn.isa, "shim": dnn.path,
                          "openmp_runtimes": onednn.openmp_runtimes()}
        if len(info["onednn"]["openmp_runtimes"]) > 1:
            notes.append("more than one OpenMP runtime is loaded: "
                         + ", ".join(info["onednn"]["openmp_runtimes"]))
    if "torch" in args.peers:
        print("probing what PyTorch runs (MKL_VERBOSE / ONEDNN_VERBOSE in a child) ...",
              flush=True)
        info["torch_probe"] = torch_probe()
    isa = isa_summary(info)
    dtype = np.dtype(args.dtype)
    gemm_n, gemm_reps = (1024, 3) if args.quick else (2048, 5)
    peak_threads = sorted({1, 2, crnn_default})
    with_torch = "torch" in args.peers
    kind = "sgemm" if dtype == np.float32 else "dgemm"
    print(f"measuring the {kind} peak ({gemm_n}^3, threads {peak_threads}, OpenBLAS"
          + (" and MKL" if with_torch else "") + ") ...", flush=True)
    pids = [w.proc.pid for w, _ in workers.values()]
    meter = LoadMeter(pids)
    peaks_start = measure_peaks(dtype, peak_threads, blas, gemm_n, gemm_reps, with_torch)
    load_start = meter.other_cores()
    for lib, vals in peaks_start.items():
        print(f"  {lib}: " + ", ".join(f"{t} thr: {g:.1f} GFLOP/s" for t, g in vals.items()),
              flush=True)

    # The two-thread peak again at the end of every round of every shape, for the paired figures
    # (paired()), on the library that had the better one at the start.
    start2 = {lib: vals[2] for lib, vals in peaks_start.items() if vals.get(2)}
    probe = (RoundPeak(dtype, 2, blas, gemm_n, max(start2, key=start2.get)) if start2 else None)

    results = []
    for cell in cells:
        for shape in shapes:
            t0 = time.perf_counter()
            r = bench_shape(cell, shape, args, blas, workers, dnn, notes, probe)
            results.append(r)
            best = r.get("best_peer")
            msg = f"{cell:>6} {str(tuple(shape)):>22}: " + ", ".join(
                f"{n} {_fmt_us(row.get('median_us'))}" if row.get("median_us") is not None
                else f"{n} {row['status']}" for n, row in r["impls"].items()
                if not row.get("same_as"))
            if r.get("speedup"):
                msg += f"  | best peer {best}, speed-up {r['speedup']:.2f}x"
            if r.get("speedup_vs_baseline"):
                msg += f", vs baseline {r['speedup_vs_baseline']:.2f}x"
            pr = r.get("paired") or {}
            if pr.get("speedup"):
                msg += f"; paired {pr['speedup']:.2f}x"
            if pr.get("pct_peak"):
                msg += f", {pr['pct_peak']:.0f} % of the round's peak"
            ol = r.get("other_load_cores")
            print(msg + f"  [{time.perf_counter() - t0:.1f} s"
                  + ("" if ol is None else f", other processes {ol:.2f} cores") + "]", flush=True)

    # The peak once more at the end; the better of the two counts (a busy moment only lowers it).
    meter = LoadMeter(pids)
    peaks_end = measure_peaks(dtype, peak_threads, blas, gemm_n, gemm_reps, with_torch)
    load_end = meter.other_cores()
    print("GEMM peak at the end: " + "; ".join(
        f"{lib}: " + ", ".join(f"{t} thr: {g:.1f} GFLOP/s" for t, g in vals.items())
        for lib, vals in peaks_end.items()), flush=True)
    by_lib = {lib: {t: max(peaks_start[lib].get(t, 0), peaks_end[lib].get(t, 0))
                    for t in peaks_start[lib]} for lib in peaks_start}
    peaks = {t: max(vals.get(t, 0) for vals in by_lib.values()) for t in peak_threads
             if any(vals.get(t) for vals in by_lib.values())}
    apply_peaks(results, peaks)

    report = {
        "command": "python " + shlex.join([os.path.relpath(__file__)] + raw_argv),
        "dtype": args.dtype, "cells": cells, "isa_mode": isa_mode, "isa": isa,
        "baseline": os.path.abspath(args.baseline) if args.baseline else None,
        "machine": info,
        "gemm_peak": {"kind": kind, "n": gemm_n, "reps": gemm_reps,
                      "gflops": {int(k): v for k, v in peaks.items()},
                      "by_library": {lib: {int(k): v for k, v in vals.items()}
                                     for lib, vals in by_lib.items()},
                      "libraries": PEAK_LABELS,
                      "gflops_start": peaks_start, "gflops_end": peaks_end,
                      "other_load_cores": [load_start, load_end]},
        "settings": {"repeats": args.repeats, "budget_s": args.budget, "rounds": args.rounds,
                     "seed": args.seed, "tolerance": TOLERANCE[args.dtype],
                     "peers": args.peers + list(workers.keys() - {"crnn"}),
                     "reset_after": args.reset_after},
        "notes": list(dict.fromkeys(notes)), "results": results,
        "total_seconds": None,
    }
    report["total_seconds"] = time.perf_counter() - started
    stem = os.path.join(args.out, "peers" + ("-avx2" if isa_mode == "avx2" else ""))
    with open(stem + ".json", "w") as f:
        json.dump(report, f, indent=1, default=float)
    md = write_markdown(stem + ".md", report)
    png_note = write_png(stem + ".png", report)
    print()
    print(md)
    if png_note:
        print("note:", png_note)
    print(f"wrote {stem}.md, .json" + ("" if png_note else ", .png")
          + f" in {report['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
