"""oneDNN's RNN primitives for bench/peers.py: build bench/onednn_rnn.c once, drive it by ctypes.

oneDNN comes from the PyPI wheels ``onednn-cpu-gomp`` (``libdnnl.so.3``, oneDNN 3.x built with
GNU OpenMP) and ``onednn-devel-cpu-gomp`` (its headers)::

    pip install onednn-cpu-gomp==2023.2.0 onednn-devel-cpu-gomp==2023.2.0

On first use the C file is compiled with the C compiler Python was built with (``CC`` from
sysconfig, or ``$CC``, else ``cc``) and linked to that ``libdnnl.so.3`` (rpath to its directory);
the shared object is cached under ``$CRNN_BENCH_CACHE`` (default ``~/.cache/crnn-bench``) under
a name hashing the source, the compiler and the library, so a change of any of them rebuilds it.

PyTorch ships its own ``libgomp.so.1``, under the same soname as the system's: import torch
first, and oneDNN binds to the OpenMP runtime torch already loaded (one runtime, one pool of
threads; :func:`openmp_runtimes` lists what the process has mapped).

Gate orders: oneDNN's LSTM is i, f, c~, o and its GRU u, r, o: Keras's i, f, c, o and z, r, h, so
the Keras kernels are oneDNN's ``ldigo`` weights as they are. Biases: oneDNN has one bias per gate,
so a recurrent bias is added to it, except for the linear-before-reset GRU (Keras
``reset_after=True``, PyTorch's GRU), whose bias has a 4th block, the candidate's recurrent bias,
applied inside the reset.
"""
from __future__ import annotations

import ctypes
import os
from typing import List, Optional

import numpy as np

from cbuild import BuildError, build_shared

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "onednn_rnn.c")
RUNTIME_WHEEL, DEVEL_WHEEL = "onednn-cpu-gomp", "onednn-devel-cpu-gomp"

#: dnnl_cpu_isa_t values (oneapi/dnnl/dnnl_types.h, oneDNN 3.2) and their names.
ISA_NAMES = {
    0x0: "default", 0x1: "sse41", 0x3: "avx", 0x7: "avx2", 0xF: "avx2_vnni",
    0x1F: "avx2_vnni_2", 0x27: "avx512_core", 0x67: "avx512_core_vnni",
    0xE7: "avx512_core_bf16", 0x1EF: "avx512_core_fp16", 0xFEF: "avx512_core_amx",
    0x1FEF: "avx512_core_amx_fp16",
}
#: The C file's cell numbers.
CELL_IDS = {"simple": 0, "lstm": 1, "gru_reset_before": 2, "gru_reset_after": 3}


class OneDNNUnavailable(RuntimeError):
    """The oneDNN wheels are not installed, or the C file could not be built."""


def _wheel_file(dist: str, suffix: str) -> str:
    from importlib import metadata
    try:
        files = metadata.distribution(dist).files or []
    except metadata.PackageNotFoundError:
        raise OneDNNUnavailable(f"{dist} not installed (pip install {dist}==2023.2.0)") from None
    for f in files:
        if str(f).replace("\\", "/").endswith(suffix):
            return os.path.realpath(str(f.locate()))
    raise OneDNNUnavailable(f"{dist}: no file ending in {suffix}")


def build() -> str:
    """Path of the compiled shim, built now unless the cache holds it."""
    lib = _wheel_file(RUNTIME_WHEEL, "libdnnl.so.3")
    header = _wheel_file(DEVEL_WHEEL, "oneapi/dnnl/dnnl.h")
    include = os.path.dirname(os.path.dirname(os.path.dirname(header)))
    try:
        return build_shared(SOURCE, "onednn_rnn",
                            ["-O2", "-std=c99", "-Wall", "-Werror=implicit-function-declaration",
                             "-I", include],
                            [lib, f"-Wl,-rpath,{os.path.dirname(lib)}", "-ldl"],
                            depends=f"{lib}\0{os.path.getmtime(lib)}".encode())
    except BuildError as err:
        raise OneDNNUnavailable(str(err)) from None


def openmp_runtimes() -> List[str]:
    """The OpenMP runtimes (libgomp / libiomp / libomp) mapped into this process."""
    found = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                name = os.path.basename(path)
                if name.startswith(("libgomp", "libiomp", "libomp")) and path not in found:
                    found.append(path)
    except OSError:
        pass
    return found


class OneDNN:
    """The loaded shim: versions, ISA, threads, and :meth:`rnn` to create a primitive."""

    def __init__(self) -> None:
        self.path = build()
        lib = self.lib = ctypes.CDLL(self.path)
        i64, fp, vp = ctypes.c_int64, ctypes.POINTER(ctypes.c_float), ctypes.c_void_p
        lib.bench_onednn_create.argtypes = [ctypes.c_int, i64, i64, i64, i64, fp, fp, fp,
                                            ctypes.POINTER(vp), ctypes.c_char_p, ctypes.c_size_t,
                                            ctypes.c_char_p, ctypes.c_size_t]
        lib.bench_onednn_forward.argtypes = [vp, vp, vp, ctypes.c_char_p, ctypes.c_size_t]
        lib.bench_onednn_free.argtypes = [vp]
        lib.bench_onednn_free.restype = None
        lib.bench_onednn_set_threads.argtypes = [ctypes.c_int]
        v = lib.bench_onednn_version()
        self.version = f"{v // 10000}.{v // 100 % 100}.{v % 100}"

    @property
    def isa(self) -> str:
        code = self.lib.bench_onednn_effective_isa()
        return ISA_NAMES.get(code, hex(code))

    def set_threads(self, n: int) -> None:
        got = self.lib.bench_onednn_set_threads(n)
        if got != n:
            raise RuntimeError(f"omp_set_num_threads({n}): the OpenMP runtime reports {got}"
                               + (" (no libgomp.so.1 loaded)" if got < 0 else ""))

    def rnn(self, cell: str, kernel: np.ndarray, recurrent_kernel: np.ndarray,
            bias: Optional[np.ndarray], recurrent_bias: Optional[np.ndarray], batch: int,
            steps: int, reset_after: bool = True) -> "OneDNNRNN":
        """A primitive for one layer in Keras layout and gate order (float32 only)."""
        return OneDNNRNN(self, cell, kernel, recurrent_kernel, bias, recurrent_bias, batch, steps,
                         reset_after)


def onednn_bias(cell: str, units: int, bias: Optional[np.ndarray],
                recurrent_bias: Optional[np.ndarray], reset_after: bool) -> np.ndarray:
    """oneDNN's bias (G or 4 blocks of ``units``) from Keras's bias and recurrent bias."""
    gates = {"simple": 1, "lstm": 4, "gru": 3}[cell]
    H = units
    b = np.zeros(gates * H) if bias is None else np.asarray(bias, dtype=np.float64)
    rb = np.zeros(gates * H) if recurrent_bias is None else np.asarray(recurrent_bias,
                                                                       dtype=np.float64)
    if cell == "gru" and reset_after:  # u, r, o: both biases summed; then o's recurrent bias
        return np.concatenate([b[:2 * H] + rb[:2 * H], b[2 * H:], rb[2 * H:]])
    return b + rb


class OneDNNRNN:
    """One oneDNN RNN primitive over (batch, steps, D) float32 inputs; :meth:`forward`."""

    def __init__(self, dnn: OneDNN, cell: str, kernel, recurrent_kernel, bias, recurrent_bias,
                 batch: int, steps: int, reset_after: bool) -> None:
        self.lib = dnn.lib
        self.handle = ctypes.c_void_p()
        key = ("gru_reset_after" if reset_after else "gru_reset_before") if cell == "gru" else cell
        f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
        K, R = f32(kernel), f32(recurrent_kernel)
        H = R.shape[0]
        b = f32(onednn_bias(cell, H, bias, recurrent_bias, reset_after))
        self.shape = (batch, steps, K.shape[0], H)
        info = ctypes.create_string_buffer(256)
        err = ctypes.create_string_buffer(512)
        fp = ctypes.POINTER(ctypes.c_float)
        rc = self.lib.bench_onednn_create(
            CELL_IDS[key], batch, steps, K.shape[0], H, K.ctypes.data_as(fp),
            R.ctypes.data_as(fp), b.ctypes.data_as(fp), ctypes.byref(self.handle), info,
            len(info), err, len(err))
        if rc != 0:
            raise RuntimeError(f"oneDNN {key}: {err.value.decode()}")
        self.impl_info = info.value.decode()
        self._err = err

    def forward(self, x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """The hidden states (B, T, H) for x (B, T, D); x float32 C-contiguous, as the shape
        given at creation."""
        B, T, D, H = self.shape
        if x.dtype != np.float32 or x.shape != (B, T, D) or not x.flags.c_contiguous:
            raise ValueError(f"x: got {x.dtype} {x.shape}, expected C-contiguous float32 "
                             f"({B}, {T}, {D})")
        y = np.empty((B, T, H), np.float32) if out is None else out
        rc = self.lib.bench_onednn_forward(self.handle, x.ctypes.data, y.ctypes.data, self._err,
                                           len(self._err))
        if rc != 0:
            raise RuntimeError(f"oneDNN forward: {self._err.value.decode()}")
        return y

    def __del__(self) -> None:
        if getattr(self, "handle", None):
            self.lib.bench_onednn_free(self.handle)
            self.handle = None
