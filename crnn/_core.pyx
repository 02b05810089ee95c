# cython: language_level=3
"""Thin Cython wrapper over the C core (csrc/include/crnn.h).

With the GIL held: validate shapes, dtypes and strides, make inputs contiguous (a copy only when
needed; inputs are never written), allocate outputs. Then exactly one ``nogil`` call into C. Then
map the status through one table to a Python exception.
"""
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from cpython.pycapsule cimport PyCapsule_New
from libc.stdint cimport int64_t

cimport numpy as cnp
import os

import numpy as np

from crnn.crnn cimport *

cnp.import_array()

cdef extern from "internal.h" nogil:
    ctypedef enum crnn__mode:
        CRNN__SERIAL
        CRNN__SPLIT_BATCH
        CRNN__SPLIT_UNITS
        CRNN__PIPELINE
    crnn__mode crnn__plan(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps, int *nt)
    crnn__mode crnn__plan_rival(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps, int *nt,
                                int *rival)
    int crnn__plan_blocks(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps)
    ctypedef struct crnn__pace:
        unsigned long long key
        long long ns[2]
        int apart
        int calls
        int alone
    const crnn__pace *crnn__pace_of(const crnn_rnn_t *rnn)

cdef extern from "cpu.h" nogil:
    const char *crnn__isa_name()
    int crnn__isa_env_ignored()
    size_t crnn__l1_bytes()
    size_t crnn__l2_bytes()
    ctypedef enum crnn__cache_from:
        CRNN__CACHE_FROM_OS
        CRNN__CACHE_FROM_DEFAULT
        CRNN__CACHE_FROM_ENV
    crnn__cache_from crnn__cache_source(int level)
    int crnn__cache_env_ignored(int level)
    const char *crnn__cache_env_name(int level)
    void crnn__cache_limits(int level, size_t *lo, size_t *hi)

cdef extern from "parallel.h" nogil:
    int crnn__cpu_count()
    ctypedef enum crnn__cpus_from:
        CRNN__CPUS_FROM_OS
        CRNN__CPUS_FROM_ENV
        CRNN__CPUS_FROM_OS_ENV_IGNORED
    crnn__cpus_from crnn__cpu_count_source()
    int crnn__cpu_count_max()
    int crnn__pace_enabled()
    void crnn__pace_read(const crnn__pace *p, crnn__pace *out)
    void crnn__pace_key_parts(unsigned long long key, long long *batch, int *mode, int *nthreads,
                              int *rival)
    void crnn__pace_pin(int way)
    int crnn__pace_pinned()
    int crnn__pace_env_ignored()
    long long crnn__wake_ns()
    enum: CRNN__PACE_ONE

_PLAN_NAMES = {CRNN__SERIAL: "serial", CRNN__SPLIT_BATCH: "batch", CRNN__SPLIT_UNITS: "units",
               CRNN__PIPELINE: "pipeline"}


_CACHE_FROM = {CRNN__CACHE_FROM_OS: "os", CRNN__CACHE_FROM_DEFAULT: "default",
               CRNN__CACHE_FROM_ENV: "env"}


def machine():
    """What the core found on this machine: ``{"isa": "avx512" | "avx2" | "base",
    "l1_bytes": ..., "l2_bytes": ..., "l1_from": ..., "l2_from": ..., "cpus": ...,
    "cpus_from": ...}``.

    ``isa``: the kernels' instruction set, the CPU's best or less when the environment variable
    ``CRNN_ISA`` asks for it. ``l1_bytes`` / ``l2_bytes``: the per-core data cache sizes that
    size the kernel's blocks and choose the threading plans; ``l1_from`` / ``l2_from`` say where
    each came from: ``"env"`` (``CRNN_L1_BYTES`` / ``CRNN_L2_BYTES``), ``"os"`` or
    ``"default"`` (the OS did not say: 32 KiB, 512 KiB). ``cpus``: the CPUs the plans count on
    (the units split and the pipeline use at most that many threads), from ``"env"``
    (``CRNN_CPUS``) or the ``"os"`` (the CPUs online). ``adapt_threads``: whether calls that
    split their units or pipeline time their threads against one thread computing the same
    slices or chunks and take the faster (``RNN.pace``); ``CRNN_ADAPT_THREADS=0`` turns that
    off."""
    return {"isa": crnn__isa_name().decode(), "l1_bytes": crnn__l1_bytes(),
            "l2_bytes": crnn__l2_bytes(), "l1_from": _CACHE_FROM[crnn__cache_source(1)],
            "l2_from": _CACHE_FROM[crnn__cache_source(2)], "cpus": crnn__cpu_count(),
            "cpus_from": "env" if crnn__cpu_count_source() == CRNN__CPUS_FROM_ENV else "os",
            "adapt_threads": bool(crnn__pace_enabled())}


def _warn_ignored_settings():
    """A RuntimeWarning for each cache-size variable (and CRNN_CPUS, CRNN_ISA) that is set but
    unusable (at import: the core reads them once, and a typo would otherwise leave the OS's
    values, or the CPU's best kernels, in force unseen)."""
    import os
    import warnings
    cdef size_t lo = 0, hi = 0
    for level in (1, 2):
        if crnn__cache_env_ignored(level):
            name = crnn__cache_env_name(level).decode()
            used = crnn__l1_bytes() if level == 1 else crnn__l2_bytes()
            crnn__cache_limits(level, &lo, &hi)
            warnings.warn(f"{name}={os.environ.get(name)!r} ignored: expected a size in bytes "
                          f"from {lo // 1024}K to {hi >> 20}M (digits, optionally followed by "
                          f"K or M, as 49152 or 48K); using {used} bytes, "
                          + ("the OS's size" if crnn__cache_source(level) == CRNN__CACHE_FROM_OS
                             else "the default"), RuntimeWarning, stacklevel=2)
    if crnn__cpu_count_source() == CRNN__CPUS_FROM_OS_ENV_IGNORED:
        warnings.warn(f"CRNN_CPUS={os.environ.get('CRNN_CPUS')!r} ignored: expected a count of "
                      f"CPUs from 1 to {crnn__cpu_count_max()} (digits only); using the OS's "
                      f"{crnn__cpu_count()}", RuntimeWarning, stacklevel=2)
    if crnn__pace_env_ignored():
        warnings.warn(f"CRNN_ADAPT_THREADS={os.environ.get('CRNN_ADAPT_THREADS')!r} ignored: "
                      f"expected 0 or 1; calls adapt their threads (1)", RuntimeWarning,
                      stacklevel=2)
    if crnn__isa_env_ignored():
        warnings.warn(f"CRNN_ISA={os.environ.get('CRNN_ISA')!r} ignored: expected avx512, avx2 "
                      f"or base (lower case); using the CPU's best, {crnn__isa_name().decode()}",
                      RuntimeWarning, stacklevel=2)


_warn_ignored_settings()

ACTIVATIONS = {"tanh": CRNN_ACTIVATION_TANH, "relu": CRNN_ACTIVATION_RELU,
               "sigmoid": CRNN_ACTIVATION_SIGMOID, "linear": CRNN_ACTIVATION_LINEAR,
               "hard_sigmoid": CRNN_ACTIVATION_HARD_SIGMOID}
CELLS = {"simple": CRNN_CELL_SIMPLE, "lstm": CRNN_CELL_LSTM, "gru": CRNN_CELL_GRU}
#: Gates of each cell kind: the kernels are (D, G*H) and (H, G*H).
GATES = {"simple": 1, "lstm": 4, "gru": 3}
DIRECTIONS = {"forward": CRNN_DIRECTION_FORWARD, "reverse": CRNN_DIRECTION_REVERSE,
              "bidirectional": CRNN_DIRECTION_BIDIRECTIONAL}
DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}

_STATUS_EXCEPTIONS = {
    CRNN_ERR_NULL_POINTER: ValueError,
    CRNN_ERR_INVALID_ARGUMENT: ValueError,
    CRNN_ERR_OUT_OF_MEMORY: MemoryError,
    CRNN_ERR_TOO_LARGE: ValueError,
    CRNN_ERR_WORKSPACE_TOO_SMALL: ValueError,
    CRNN_ERR_NOT_IMPLEMENTED: NotImplementedError,
}

cdef enum:
    _STACK_ENTRIES = 16

# Workspaces up to this size are kept (per handle) for the next call; larger ones are left to
# the C core, which allocates and frees them inside the call. A large batch of gated cells
# needs its gates for every step ((B, T, G*H): 210 MB at LSTM (256,100,256,512)); allocating
# them per call cost 6 % of the call in page faults, so a handle keeps up to this much. (A C
# constant: a module global is a dictionary lookup on every call.)
cdef size_t _POOLED_WORKSPACE_MAX = 512 << 20

# Outputs of at least this many bytes (up to _KEPT_OUTPUT_MAX) are allocated through a NumPy
# memory handler of crnn's own (crnn_kept_*, below): freeing such an output keeps its memory for
# the next one instead of unmapping it. NumPy asks for memory this large with mmap (glibc), so
# every call's output would fault its pages in afresh, and with NumPy's huge pages the kernel at
# times compacts memory inside the fault: GRU (256,100,256,512), 2 threads, 52 MB of output, 5
# calls in 16 took 329-353 ms against 283-298 (50-70 ms of system time on both cores).
cdef size_t _KEPT_OUTPUT_MIN = 1 << 20
cdef size_t _KEPT_OUTPUT_MAX = 512 << 20
KEPT_OUTPUT_MIN = _KEPT_OUTPUT_MIN

cdef extern from *:
    """
    /* crnn's NumPy memory handler for large outputs. Blocks carry a 64-byte header holding their
     * capacity, so the data start 64-byte aligned. A freed block whose capacity is in [min, max]
     * goes to a cache of the CRNN_KEPT_BLOCKS latest ones (max bytes in all; the oldest leave
     * first); an allocation takes a cached block at least as large as asked and at most twice,
     * else makes a new one. A spin lock guards the cache (held for a few loads and stores; NumPy
     * may free from any thread). */
    #include <stdlib.h>
    #include <string.h>
    #include <sys/mman.h>
    #define CRNN_KEPT_BLOCKS 2
    #define CRNN_KEPT_HEAD 64
    static size_t crnn_kept_min_, crnn_kept_max_, crnn_kept_total_;
    static void *crnn_kept_block_[CRNN_KEPT_BLOCKS]; /* oldest first */
    static int crnn_kept_n_, crnn_kept_lock_;
    static size_t crnn_kept_cap(void *p) { return *(size_t *)((char *)p - CRNN_KEPT_HEAD); }
    static void crnn_kept_acquire(void) {
        while (__atomic_exchange_n(&crnn_kept_lock_, 1, __ATOMIC_ACQUIRE))
            while (__atomic_load_n(&crnn_kept_lock_, __ATOMIC_RELAXED)) {}
    }
    static void crnn_kept_release(void) { __atomic_store_n(&crnn_kept_lock_, 0, __ATOMIC_RELEASE); }
    static void crnn_kept_drop(void *p) { if (p) free((char *)p - CRNN_KEPT_HEAD); }
    static void *crnn_kept_new(size_t size) {
        void *raw = NULL;
        if (size > (size_t)-1 - 2 * CRNN_KEPT_HEAD ||
            posix_memalign(&raw, CRNN_KEPT_HEAD, size + CRNN_KEPT_HEAD))
            return NULL;
    #ifdef MADV_HUGEPAGE
        if (size >= ((size_t)1 << 22)) { /* as NumPy's own allocator does */
            const size_t page = 4096, a = ((size_t)raw + page - 1) & ~(page - 1);
            const size_t end = ((size_t)raw + size + CRNN_KEPT_HEAD) & ~(page - 1);
            if (end > a) madvise((void *)a, end - a, MADV_HUGEPAGE);
        }
    #endif
        *(size_t *)raw = size;
        return (char *)raw + CRNN_KEPT_HEAD;
    }
    static void *crnn_kept_malloc(void *ctx, size_t size) {
        void *p = NULL;
        int i;
        (void)ctx;
        crnn_kept_acquire();
        for (i = crnn_kept_n_ - 1; i >= 0; --i) { /* the latest first */
            const size_t cap = crnn_kept_cap(crnn_kept_block_[i]);
            if (size <= cap && cap / 2 <= size) {
                p = crnn_kept_block_[i];
                crnn_kept_total_ -= cap;
                memmove(crnn_kept_block_ + i, crnn_kept_block_ + i + 1,
                        (size_t)(crnn_kept_n_ - 1 - i) * sizeof(void *));
                --crnn_kept_n_;
                break;
            }
        }
        crnn_kept_release();
        return p ? p : crnn_kept_new(size ? size : 1);
    }
    static void *crnn_kept_calloc(void *ctx, size_t n, size_t size) {
        void *p;
        if (size && n > (size_t)-1 / size) return NULL;
        p = crnn_kept_malloc(ctx, n * size);
        if (p) memset(p, 0, n * size);
        return p;
    }
    static void crnn_kept_free(void *ctx, void *p, size_t size) {
        void *out[CRNN_KEPT_BLOCKS + 1] = {NULL};
        size_t cap;
        int nout = 0;
        (void)ctx;
        (void)size; /* the header's capacity: a block taken for less, or resized, knows its own */
        if (!p) return;
        cap = crnn_kept_cap(p);
        if (cap < crnn_kept_min_ || cap > crnn_kept_max_) {
            crnn_kept_drop(p);
            return;
        }
        crnn_kept_acquire();
        while (crnn_kept_n_ && (crnn_kept_n_ == CRNN_KEPT_BLOCKS ||
                                crnn_kept_total_ + cap > crnn_kept_max_)) {
            out[nout++] = crnn_kept_block_[0]; /* the oldest leaves */
            crnn_kept_total_ -= crnn_kept_cap(crnn_kept_block_[0]);
            memmove(crnn_kept_block_, crnn_kept_block_ + 1, (size_t)(--crnn_kept_n_) * sizeof(void *));
        }
        crnn_kept_block_[crnn_kept_n_++] = p;
        crnn_kept_total_ += cap;
        crnn_kept_release();
        while (nout) crnn_kept_drop(out[--nout]);
    }
    static void *crnn_kept_realloc(void *ctx, void *p, size_t size) {
        void *q;
        if (!p) return crnn_kept_malloc(ctx, size);
        if (size <= crnn_kept_cap(p)) return p;
        if (!(q = crnn_kept_malloc(ctx, size))) return NULL;
        memcpy(q, p, crnn_kept_cap(p));
        crnn_kept_free(ctx, p, 0);
        return q;
    }
    /* Forget the cache without freeing it (a forked child: another thread may hold the lock). */
    static void crnn_kept_forget(void) { crnn_kept_n_ = 0; crnn_kept_total_ = 0; crnn_kept_lock_ = 0; }
    static int crnn_kept_cached(void) {
        int n;
        crnn_kept_acquire();
        n = crnn_kept_n_;
        crnn_kept_release();
        return n;
    }
    static void crnn_kept_setup(size_t min, size_t max) { crnn_kept_min_ = min; crnn_kept_max_ = max; }
    static PyDataMem_Handler crnn_kept_handler = {
        "crnn_kept_outputs", 1,
        {NULL, crnn_kept_malloc, crnn_kept_calloc, crnn_kept_realloc, crnn_kept_free}};
    """
    ctypedef struct PyDataMem_Handler:
        pass
    PyDataMem_Handler crnn_kept_handler
    void crnn_kept_setup(size_t min, size_t max)
    void crnn_kept_forget()
    int crnn_kept_cached()
    object PyDataMem_SetHandler(object handler)

crnn_kept_setup(_KEPT_OUTPUT_MIN, _KEPT_OUTPUT_MAX)
# The handler as NumPy takes it: a capsule named "mem_handler" (NumPy >= 1.22).
cdef object _kept_handler = PyCapsule_New(&crnn_kept_handler, b"mem_handler", NULL)
os.register_at_fork(after_in_child=crnn_kept_forget)


def kept_outputs() -> int:
    """How many freed large outputs' blocks crnn holds for the next ones (a diagnostic)."""
    return crnn_kept_cached()


cdef int _check(int status, str context) except -1:
    """Raise the exception mapped to a C status, with the C message and our context."""
    if status == CRNN_OK:
        return 0
    exc = _STATUS_EXCEPTIONS.get(status, RuntimeError)
    raise exc(f"{context}: {crnn_status_string(status).decode()}")


def version():
    """Version of the compiled C core as ``(major, minor, patch)``."""
    cdef unsigned v = crnn_version()
    return (v // 10000, (v // 100) % 100, v % 100)


def _pin_way(way=None):
    """Diagnostics (tests, benchmarks): every call that ``RNN.pace`` would time takes way 0
    (the plan's threads) or 1 (the other way: alone, or the row-split rival), untimed, process
    wide; ``None`` lets the pace choose again. Returns the previous pin (``None``: none)."""
    cdef int old = crnn__pace_pinned()
    if way is not None and way not in (0, 1):
        raise ValueError(f"way: got {way!r}, expected 0, 1 or None")
    crnn__pace_pin(-1 if way is None else int(way))
    return None if old < 0 else old


def set_num_threads(int n):
    """Threads one forward call may split its batch over (n >= 1), process-wide."""
    if n < 1:
        raise ValueError(f"n: got {n}, expected an integer >= 1")
    _check(crnn_set_num_threads(n), "set_num_threads")


def get_num_threads():
    """Threads one forward call may split its batch over."""
    return crnn_get_num_threads()


def set_blas_threads(int n):
    """Threads crnn's private BLAS may use inside one call (n >= 1)."""
    if n < 1:
        raise ValueError(f"n: got {n}, expected an integer >= 1")
    _check(crnn_set_blas_threads(n), "set_blas_threads")


def get_blas_threads():
    """Threads crnn's private BLAS uses inside one call."""
    return crnn_get_blas_threads()


def as_dtype(dtype) -> np.dtype:
    """``"float32"``/``"float64"`` (or the NumPy dtypes) as ``np.dtype``; anything else: TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: got {dtype!r}, expected 'float32' or 'float64'") from None
    if dt.name not in DTYPES:
        raise TypeError(f"dtype: got {dt.name}, expected 'float32' or 'float64'")
    return dt


def as_real_array(value, str name, dtype=None):
    """``value`` as an ndarray of real numbers (no copy when possible, never a view that writes).

    bool, complex, object, string and datetime data raise TypeError naming ``name``; integers and
    other floats are cast to ``dtype`` when it is given.
    """
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{name}: got an object NumPy cannot turn into an array ({err})") from None
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: got dtype {arr.dtype}, expected a real numeric array "
                        f"(float32/float64, or integers to cast)")
    if dtype is not None and arr.dtype != dtype:
        arr = arr.astype(dtype)
    return arr


def _per_layer(value, int64_t nl, str name, table) -> list:
    """``value`` (one for all layers, or a list of one per layer) checked against ``table``."""
    vals = list(value) if isinstance(value, (list, tuple)) else [value] * nl
    if len(vals) != nl:
        raise ValueError(f"{name}: got {len(vals)} entries, expected {nl} (one per layer)")
    for v in vals:
        if not isinstance(v, str) or v not in table:
            raise ValueError(f"{name}: got {v!r}, expected one of {sorted(table)}")
    return vals


cdef class RNN:
    """Compiled, immutable recurrent stack (a ``crnn_rnn_t`` handle) of any cell kinds.

    Parameters
    ----------
    weights : list over layers of lists over directions (1, or 2 when bidirectional) of
        ``[kernel (D_l, G*H_l), recurrent_kernel (H_l, G*H_l), bias (G*H_l,) or None,
        recurrent_bias (G*H_l,) or None]`` (the last one or two may be left out), Keras layout and
        gate order, G the cell's gates (SimpleRNN 1, LSTM 4, GRU 3). The biases add, except a
        reset-after GRU's candidate recurrent bias, applied inside the reset (Keras's GRU bias
        (2, 3H) is ``[bias, recurrent_bias]``). They are copied: later changes to the arrays do
        not affect the handle.
    cell : "simple", "lstm" or "gru", or one per layer.
    activation : str or None, or one per layer: "tanh", "relu", "sigmoid", "hard_sigmoid",
        "linear" (None). LSTM / GRU: the candidate's (and LSTM's output) activation.
    recurrent_activation : as ``activation``, for the gates of LSTM / GRU layers (default
        "sigmoid"); ignored for SimpleRNN layers.
    direction : "forward", "reverse" or "bidirectional", or one per layer.
    reset_after : bool, or one per layer: where a GRU applies its reset (ignored for others).
    dtype : "float32" or "float64".

    Calls to :meth:`forward` release the GIL; any number of threads may share one handle.
    ``__init__`` runs once: a built handle is immutable (a second call raises RuntimeError).
    """
    cdef crnn_rnn_t *_rnn
    cdef readonly object dtype
    cdef readonly list units
    cdef readonly list cells
    cdef readonly list activations
    cdef readonly list recurrent_activations
    cdef readonly list directions
    cdef readonly list reset_after
    cdef readonly int64_t input_size
    cdef readonly int64_t num_layers
    cdef readonly int64_t num_entries
    cdef list _entry_units
    cdef list _entry_has_c
    cdef bint _any_c
    cdef int _typenum
    cdef int64_t _output_size
    cdef int64_t _last_ndir
    cdef object _ws_buf       # this handle's scratch memory, lent to one call at a time
    cdef size_t _ws_cap
    cdef bint _ws_busy
    cdef int64_t _sized_b     # the last (batch, timesteps) sized, and its workspace size
    cdef int64_t _sized_t
    cdef size_t _sized_ws

    def __cinit__(self):
        self._rnn = NULL

    def __dealloc__(self):
        crnn_rnn_free(self._rnn)
        self._rnn = NULL

    def __init__(self, weights, *, cell="simple", activation="tanh",
                 recurrent_activation="sigmoid", direction="forward", reset_after=True,
                 dtype="float32"):
        cdef crnn_layer_desc2 *descs = NULL
        cdef crnn_weights2 *cw = NULL
        cdef crnn_rnn_t *handle = NULL
        cdef int status
        cdef int64_t nl, i, e, d, ndir, in_size, units, gates, input_size = 0
        cdef crnn_dtype cdt
        if self._rnn != NULL:
            raise RuntimeError("RNN.__init__: this handle is already built and immutable; "
                               "create a new RNN instead")
        dt = as_dtype(dtype)
        cdt = CRNN_DTYPE_FLOAT32 if dt == np.float32 else CRNN_DTYPE_FLOAT64
        if isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__"):
            raise TypeError(f"weights: got {type(weights).__name__}, expected a list over layers")
        nl = len(weights)
        if nl < 1:
            raise ValueError("weights: got 0 layers, expected at least 1")
        cells = _per_layer(cell, nl, "cell", CELLS)
        acts = ["linear" if a is None else a for a in
                (list(activation) if isinstance(activation, (list, tuple)) else [activation] * nl)]
        acts = _per_layer(acts, nl, "activation", ACTIVATIONS)
        racts = ["linear" if a is None else a for a in
                 (list(recurrent_activation) if isinstance(recurrent_activation, (list, tuple))
                  else [recurrent_activation] * nl)]
        racts = _per_layer(racts, nl, "recurrent_activation", ACTIVATIONS)
        dirs = _per_layer(direction, nl, "direction", DIRECTIONS)
        resets = list(reset_after) if isinstance(reset_after, (list, tuple)) else [reset_after] * nl
        if len(resets) != nl:
            raise ValueError(f"reset_after: got {len(resets)} entries, expected {nl} (one per layer)")
        for r in resets:
            if not isinstance(r, (bool, np.bool_)):
                raise TypeError(f"reset_after: got {r!r}, expected True or False")

        # Validate and make every weight contiguous in our dtype; `keep` holds them alive.
        keep = []
        layer_units = []
        entry_units = []
        entry_has_c = []
        in_size = -1
        for i in range(nl):
            layer = weights[i]
            ndir = 2 if dirs[i] == "bidirectional" else 1
            gates = GATES[cells[i]]
            if isinstance(layer, np.ndarray) or not hasattr(layer, "__len__") or len(layer) != ndir:
                raise ValueError(f"weights[{i}]: expected a list of {ndir} direction(s) of "
                                 f"[kernel, recurrent_kernel, bias, recurrent_bias] for direction "
                                 f"{dirs[i]!r}")
            lu = None
            for d in range(ndir):
                w = layer[d]
                if isinstance(w, np.ndarray) or not hasattr(w, "__len__") or len(w) not in (2, 3, 4):
                    raise ValueError(f"weights[{i}][{d}]: expected [kernel, recurrent_kernel, bias, "
                                     "recurrent_bias] (the biases optional)")
                where = f"weights[{i}][{d}]"
                k = as_real_array(w[0], where + " kernel", dt)
                r = as_real_array(w[1], where + " recurrent_kernel", dt)
                b = None if len(w) < 3 or w[2] is None else as_real_array(w[2], where + " bias", dt)
                rb = (None if len(w) < 4 or w[3] is None
                      else as_real_array(w[3], where + " recurrent_bias", dt))
                if r.ndim != 2 or r.shape[0] < 1 or r.shape[1] != gates * r.shape[0]:
                    raise ValueError(f"{where} recurrent_kernel: got shape {r.shape}, expected "
                                     + ("(units, units)" if gates == 1 else
                                        f"(units, {gates} * units) for a {cells[i]} layer"))
                units = r.shape[0]
                if lu is not None and units != lu:
                    raise ValueError(f"{where} recurrent_kernel: got {units} units, expected {lu} "
                                     f"(both directions of a layer have the same size)")
                lu = units
                if i == 0 and d == 0:
                    if k.ndim != 2 or k.shape[0] < 1:
                        raise ValueError(f"{where} kernel: got shape {k.shape}, expected "
                                         f"(input_dim, {gates * units})")
                    in_size = k.shape[0]
                    input_size = in_size
                if k.shape != (in_size, gates * units):
                    raise ValueError(f"{where} kernel: got shape {k.shape}, expected "
                                     f"({in_size}, {gates * units})")
                for arr, nm in ((b, "bias"), (rb, "recurrent_bias")):
                    if arr is not None and arr.shape != (gates * units,):
                        raise ValueError(f"{where} {nm}: got shape {arr.shape}, expected "
                                         f"({gates * units},)")
                keep.append(tuple(None if a is None else np.ascontiguousarray(a)
                                  for a in (k, r, b, rb)))
                entry_units.append(units)
                entry_has_c.append(cells[i] == "lstm")
            layer_units.append(lu)
            in_size = lu * ndir

        descs = <crnn_layer_desc2 *>PyMem_Malloc(nl * sizeof(crnn_layer_desc2))
        cw = <crnn_weights2 *>PyMem_Malloc(len(keep) * sizeof(crnn_weights2))
        try:
            if descs == NULL or cw == NULL:
                raise MemoryError("RNN: could not allocate layer descriptors")
            for i in range(nl):
                descs[i].cell = CELLS[cells[i]]
                descs[i].units = layer_units[i]
                descs[i].activation = ACTIVATIONS[acts[i]]
                descs[i].recurrent_activation = ACTIVATIONS[racts[i]]
                descs[i].direction = DIRECTIONS[dirs[i]]
                descs[i].reset_after = 1 if (cells[i] == "gru" and resets[i]) else 0
            for e in range(len(keep)):
                cw[e].kernel = cnp.PyArray_DATA(keep[e][0])
                cw[e].recurrent_kernel = cnp.PyArray_DATA(keep[e][1])
                cw[e].bias = NULL if keep[e][2] is None else cnp.PyArray_DATA(keep[e][2])
                cw[e].recurrent_bias = NULL if keep[e][3] is None else cnp.PyArray_DATA(keep[e][3])
            with nogil:
                status = crnn_rnn_create2(&handle, cdt, input_size, nl, descs, cw)
            _check(status, "RNN")
        finally:
            PyMem_Free(descs)
            PyMem_Free(cw)
        # Only now, with the handle built, does this object describe it.
        self._rnn = handle
        self.dtype = dt
        self.units = layer_units
        self.cells = cells
        self.activations = acts
        self.recurrent_activations = [r if c != "simple" else a
                                      for r, c, a in zip(racts, cells, acts)]
        self.directions = dirs
        self.reset_after = [bool(r) if c == "gru" else False for r, c in zip(resets, cells)]
        self.input_size = input_size
        self.num_layers = nl
        self.num_entries = len(keep)
        self._entry_units = entry_units
        self._entry_has_c = entry_has_c
        self._any_c = any(entry_has_c)
        self._typenum = cnp.NPY_FLOAT32 if dt == np.float32 else cnp.NPY_FLOAT64
        self._last_ndir = 2 if dirs[-1] == "bidirectional" else 1
        self._output_size = layer_units[-1] * self._last_ndir
        self._ws_buf = None
        self._ws_cap = 0
        self._ws_busy = False
        self._sized_b = self._sized_t = -1
        self._sized_ws = 0

    @property
    def num_directions(self):
        """Directions of the last layer (its output is ``units[-1] * num_directions`` wide)."""
        return 2 if self.directions[-1] == "bidirectional" else 1

    @property
    def direction(self):
        """The direction mode when all layers share one, else the per-layer list."""
        return self.directions[0] if len(set(self.directions)) == 1 else list(self.directions)

    @property
    def output_size(self):
        return self.units[-1] * self.num_directions

    def __repr__(self):
        if self._rnn == NULL:
            return "RNN(<not built>)"
        return (f"RNN(input_size={self.input_size}, cells={self.cells}, units={self.units}, "
                f"activations={self.activations}, directions={self.directions}, "
                f"dtype={self.dtype.name})")

    cdef int _require_built(self) except -1:
        # A subclass whose __init__ skips RNN.__init__, RNN.__new__(RNN), or an __init__ that
        # raised leave no C handle: every entry point that reaches the core checks for it.
        if self._rnn == NULL:
            raise RuntimeError("RNN: this handle was never built (RNN.__init__ did not run or "
                               "failed); create it as RNN(weights, ...)")
        return 0

    cdef int _require_plan_shape(self, int64_t batch, int64_t timesteps) except -1:
        # the plan diagnostics' arguments: a built handle, a batch >= 0 and timesteps >= 1
        self._require_built()
        if batch < 0 or timesteps < 1:
            raise ValueError(f"batch, timesteps: got ({batch}, {timesteps}), expected >= 0 "
                             f"and >= 1")
        return 0

    def plan(self, int64_t batch, int64_t timesteps):
        """How a call of this shape uses threads at the current setting: ``(mode, threads)``.

        ``mode`` is "serial", "batch" (row ranges), "units" (unit slices, or one direction per
        thread) or "pipeline" (a second thread projects the input ahead). Diagnostic only.
        """
        cdef int nt = 1
        cdef crnn__mode mode
        self._require_plan_shape(batch, timesteps)
        mode = crnn__plan(self._rnn, batch, timesteps, &nt)
        return _PLAN_NAMES[mode], nt

    def plan_blocks(self, int64_t batch, int64_t timesteps):
        """The blocks a row split ("batch") of this shape cuts its rows into at the current
        setting, or 0 (another plan, or one range of rows a thread). Each thread has two blocks,
        which it runs a few steps at a time in turn; a thread done with its own takes free
        blocks of the others', so a thread on a slower core hands some of its rows over. Where
        every layer's recurrent weights fit in half of L2 and each block keeps at least 4 rows.
        Which thread runs a block changes none of the result's bits. Diagnostic only.
        """
        self._require_plan_shape(batch, timesteps)
        return crnn__plan_blocks(self._rnn, batch, timesteps)

    def plan_rival(self, int64_t batch, int64_t timesteps):
        """The threads of a row split ("batch") that a call of this shape, planned as a units
        split, is timed against at run time (``RNN.pace``), or 0 where it has none. Such a rival
        exists where the batch splits its rows but every layer's recurrent weights outgrow L2
        (few rows a thread then do better splitting the units on some machines, worse on
        others) and the two ways give bitwise the same result: every layer's units a multiple of
        16 (float32) or 8 (float64), the recurrent product on crnn's own kernels. Diagnostic
        only.
        """
        cdef int nt = 1, rival = 0
        self._require_plan_shape(batch, timesteps)
        crnn__plan_rival(self._rnn, batch, timesteps, &nt, &rival)
        return rival

    def pace(self):
        """How this handle's latest calls that split their units or pipeline ran (diagnostic).

        ``None`` before any such call (or with ``CRNN_ADAPT_THREADS=0``); else ``{"batch": ...,
        "mode": "units" | "pipeline", "threads": ..., "other": "alone" | "batch", "ns_per_step":
        {"threads": ..., "alone": ...}, "alone": ..., "calls": ..., "apart": ..., "wake_ns":
        ...}``: the calls of that batch size and plan time the plan's threads against another
        way that gives bitwise the same result, ``other``: the caller computing the same slices
        or chunks alone, or, for a units split that has one (``RNN.plan_rival``), the row split
        ("batch") on its threads; and run the faster way, timing the other now and then.
        ``ns_per_step`` holds the recent times per timestep of each way ("alone": the other
        way's; 0: not timed yet; with threads, without any wait for a sleeping worker),
        ``alone`` whether the calls take the other way now, ``calls`` the calls since the way
        not taken was timed. ``apart`` is the share of recent
        calls that started more than 50 us after both this handle's last call and the thread
        pool's, when its worker is asleep; ``wake_ns`` the process's recent wait for a sleeping
        worker to join a units split: a units split's threads are charged ``apart * wake_ns`` a
        call. Calls of another batch size or plan start the timing afresh.
        """
        cdef crnn__pace p
        cdef long long batch = 0
        cdef int mode = 0, nthreads = 0, rival = 0
        self._require_built()
        crnn__pace_read(crnn__pace_of(self._rnn), &p)
        if p.key == 0:
            return None
        crnn__pace_key_parts(p.key, &batch, &mode, &nthreads, &rival)
        return {"batch": batch, "mode": _PLAN_NAMES.get(mode, "?"), "threads": nthreads,
                "other": "batch" if rival else "alone",
                "ns_per_step": {"threads": int(p.ns[0]), "alone": int(p.ns[1])},
                "alone": bool(p.alone), "calls": int(p.calls),
                "apart": p.apart / <double>CRNN__PACE_ONE, "wake_ns": int(crnn__wake_ns())}

    def workspace_size(self, int64_t batch, int64_t timesteps):
        """Bytes of scratch memory one forward call of this shape uses."""
        cdef size_t size = 0
        self._require_built()
        _check(crnn_rnn_workspace_size(self._rnn, batch, timesteps, &size),
               f"workspace_size(batch={batch}, timesteps={timesteps})")
        return size

    cdef object _state_array(self, s, int64_t B, int64_t e, str what):
        """One (B, units_e) initial state in our dtype, C-contiguous (no copy when it already is)."""
        if (type(s) is np.ndarray and cnp.PyArray_TYPE(<cnp.ndarray>s) == self._typenum
                and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>s)
                and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>s)
                and cnp.PyArray_NDIM(<cnp.ndarray>s) == 2
                and cnp.PyArray_DIMS(<cnp.ndarray>s)[0] == B
                and cnp.PyArray_DIMS(<cnp.ndarray>s)[1] == <int64_t>self._entry_units[e]):
            return s  # fast path: usable as it is
        sa = as_real_array(s, what, self.dtype)
        if sa.shape != (B, self._entry_units[e]):
            raise ValueError(f"{what}: got shape {sa.shape}, expected ({B}, {self._entry_units[e]})")
        return np.ascontiguousarray(sa)

    cdef object _output(self, cnp.npy_intp *dims):
        """A new (dims[0], dims[1], dims[2]) array of our dtype for a call to fill, owning its
        data; from ``KEPT_OUTPUT_MIN`` bytes on, its memory comes from (and, freed, goes back
        to) crnn's memory handler, which keeps the latest freed outputs' for the next ones."""
        cdef size_t nbytes = (<size_t>dims[0] * <size_t>dims[1] * <size_t>dims[2] *
                              (4 if self._typenum == cnp.NPY_FLOAT32 else 8))
        if nbytes < _KEPT_OUTPUT_MIN or nbytes > _KEPT_OUTPUT_MAX:
            return cnp.PyArray_EMPTY(3, dims, self._typenum, 0)
        old = PyDataMem_SetHandler(_kept_handler)
        try:
            return cnp.PyArray_EMPTY(3, dims, self._typenum, 0)
        finally:
            PyDataMem_SetHandler(old)

    def forward(self, x, initial_state=None, lengths=None, bint return_sequences=True,
                bint return_state=False):
        """Run the stack on ``x`` of shape (batch, timesteps, input_size).

        ``initial_state``: None, or one entry per (layer, direction): None (zeros), a
        ``(batch, units)`` array, or for an LSTM entry ``[h, c]`` (either may be None). Returns
        what :func:`crnn.reference.rnn_stack` returns for the same arguments: the output, or
        ``(output, states)`` when ``return_state``, ``states`` holding one entry per (layer,
        direction): the final h, or ``[h, c]`` for an LSTM entry. An output (sequences) of
        ``KEPT_OUTPUT_MIN`` bytes or more leaves its memory to a later call's once freed
        (``RNN._output``).
        """
        cdef int64_t B, T, D, e, first_state
        cdef cnp.npy_intp *xdims
        cdef size_t ws_size = 0
        cdef int status
        cdef const void *stack_h0[_STACK_ENTRIES]
        cdef void *stack_hn[_STACK_ENTRIES]
        cdef const void *stack_c0[_STACK_ENTRIES]
        cdef void *stack_cn[_STACK_ENTRIES]
        cdef const void **h0p = stack_h0
        cdef void **hnp = stack_hn
        cdef const void **c0p = stack_c0
        cdef void **cnp_ = stack_cn
        cdef const void *xp
        cdef void *yp = NULL
        cdef void *wsp = NULL
        cdef const int64_t *lp = NULL
        cdef bint any_h0 = False, any_hn = False, any_c0 = False, any_cn = False, fast = False
        cdef bint lent = False
        cdef crnn_rnn_t *handle = self._rnn
        cdef cnp.npy_intp dims[3]
        cdef size_t addr

        if handle == NULL:
            self._require_built()
        # Fast path: an ndarray of our dtype, C-contiguous, needs no conversion at all.
        # Its sizes are read from the array struct: `xa.shape` builds a tuple on every access.
        if (type(x) is cnp.ndarray and cnp.PyArray_TYPE(<cnp.ndarray>x) == self._typenum
                and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>x)
                and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>x) and cnp.PyArray_NDIM(<cnp.ndarray>x) == 3):
            xa = x
            fast = True
            xdims = cnp.PyArray_DIMS(<cnp.ndarray>x)
            B, T, D = xdims[0], xdims[1], xdims[2]
        else:
            xa = as_real_array(x, "x")
            if xa.ndim != 3:
                raise ValueError(f"x: got shape {xa.shape}, expected (batch, timesteps, "
                                 f"{self.input_size})")
            B, T, D = xa.shape[0], xa.shape[1], xa.shape[2]
        if D != self.input_size:
            raise ValueError(f"x: got input_dim {xa.shape[2]} (shape {xa.shape}), "
                             f"expected {self.input_size}")
        if T == 0:
            raise ValueError(f"x: got 0 timesteps (shape {xa.shape}), expected at least 1")
        # Size checks (overflow, 32-bit BLAS limits) before anything big is allocated; a stream
        # of calls of one shape asks once (the size depends on the shape and the layers only).
        if B == self._sized_b and T == self._sized_t:
            ws_size = self._sized_ws
        else:
            status = crnn_rnn_workspace_size(handle, B, T, &ws_size)
            if status != CRNN_OK:
                _check(status, f"x: shape {xa.shape} with units {self.units}")
            self._sized_b, self._sized_t, self._sized_ws = B, T, ws_size
        if not fast:
            # Any other layout, dtype or byte order: one native, C-contiguous copy (or none).
            try:
                xa = np.ascontiguousarray(xa, dtype=self.dtype)
            except MemoryError:
                raise MemoryError(f"x: got shape {xa.shape} {xa.dtype} in a layout that needs a "
                                  f"C-contiguous {self.dtype} copy, which does not fit in memory "
                                  f"({xa.size * self.dtype.itemsize / 2**30:.1f} GiB)") from None

        h0_keep = None
        c0_keep = None
        if initial_state is not None:
            if isinstance(initial_state, np.ndarray) and initial_state.ndim == 2 and self.num_entries == 1:
                initial_state = [initial_state]
            if isinstance(initial_state, (str, bytes)) or not hasattr(initial_state, "__len__") \
                    or len(initial_state) != self.num_entries:
                raise ValueError(f"initial_state: expected a list of {self.num_entries} entries "
                                 f"(one per layer and direction) of arrays (batch, units), [h, c] "
                                 f"pairs for LSTM layers")
            h0_keep = [None] * self.num_entries
            c0_keep = [None] * self.num_entries
            for e in range(self.num_entries):
                s = initial_state[e]
                if s is None:
                    continue
                if self._entry_has_c[e]:
                    if isinstance(s, np.ndarray) or not isinstance(s, (list, tuple)) or len(s) != 2:
                        raise ValueError(f"initial_state[{e}]: got {type(s).__name__}, expected "
                                         f"[h, c] (two arrays ({B}, {self._entry_units[e]}) or "
                                         f"None) for an LSTM layer")
                    if s[0] is not None:
                        h0_keep[e] = self._state_array(s[0], B, e, f"initial_state[{e}][0]")
                    if s[1] is not None:
                        c0_keep[e] = self._state_array(s[1], B, e, f"initial_state[{e}][1]")
                else:
                    h0_keep[e] = self._state_array(s, B, e, f"initial_state[{e}]")

        len_keep = None
        if lengths is not None:
            la = np.asarray(lengths)
            if la.size == 0 and la.dtype.kind == "f":
                la = la.astype(np.int64)  # [] (batch 0) becomes float64 in NumPy
            if la.dtype.kind not in "iu" or la.shape != (B,):
                raise ValueError(f"lengths: got {la.dtype} array of shape {la.shape}, "
                                 f"expected integers of shape ({B},)")
            if B and (la.min() < 0 or la.max() > T):
                raise ValueError(f"lengths: got values in [{la.min()}, {la.max()}], expected [0, {T}]")
            len_keep = np.ascontiguousarray(la, dtype=np.int64)
            lp = <const int64_t *>cnp.PyArray_DATA(len_keep)

        y = None
        if return_sequences:
            dims[0] = B
            dims[1] = T
            dims[2] = self._output_size
            try:
                y = self._output(dims)
            except MemoryError:
                raise MemoryError(f"x: got shape {xa.shape}, whose outputs need a ({B}, {T}, "
                                  f"{self._output_size}) {self.dtype} buffer (every direction "
                                  "of the last layer), which does not fit in memory "
                                  f"({B * T * self._output_size * self.dtype.itemsize / 2**30:.1f}"
                                  " GiB)") from None
            yp = cnp.PyArray_DATA(y)
        # Final states: all of them for return_state, the last layer's h for a last-step output.
        first_state = 0 if return_state else (self.num_entries if return_sequences
                                              else self.num_entries - self._last_ndir)
        # (no lists when no state is returned: the commonest call, return_sequences only)
        states = [None] * self.num_entries if first_state < self.num_entries else None
        cstates = [None] * self.num_entries if return_state and self._any_c else None
        dims[0] = B
        for e in range(first_state, self.num_entries):
            dims[1] = self._entry_units[e]
            states[e] = cnp.PyArray_EMPTY(2, dims, self._typenum, 0)
            if return_state and self._any_c and self._entry_has_c[e]:
                cstates[e] = cnp.PyArray_EMPTY(2, dims, self._typenum, 0)

        # Scratch memory: the handle's own buffer when no other call holds it (lent and returned
        # with the GIL held), so a stream of calls allocates none; a concurrent call gets a
        # buffer of its own, and a large one is left to the C core.
        ws = None
        if ws_size <= _POOLED_WORKSPACE_MAX:
            if not self._ws_busy and self._ws_cap >= ws_size + 64:
                ws = self._ws_buf
            else:
                ws = np.empty(max(ws_size, 4096) + 64, np.uint8)
                if not self._ws_busy:
                    self._ws_buf = ws
                    self._ws_cap = ws.nbytes
            if ws is self._ws_buf:
                self._ws_busy = lent = True
            addr = <size_t>cnp.PyArray_DATA(ws)
            wsp = <void *>((addr + 63) & ~(<size_t>63))

        if self.num_entries > _STACK_ENTRIES:
            h0p = <const void **>PyMem_Malloc(self.num_entries * sizeof(void *))
            hnp = <void **>PyMem_Malloc(self.num_entries * sizeof(void *))
            c0p = <const void **>PyMem_Malloc(self.num_entries * sizeof(void *))
            cnp_ = <void **>PyMem_Malloc(self.num_entries * sizeof(void *))
        try:
            if h0p == NULL or hnp == NULL or c0p == NULL or cnp_ == NULL:
                raise MemoryError("forward: could not allocate state pointers")
            for e in range(self.num_entries):
                h0p[e] = NULL
                c0p[e] = NULL
                hnp[e] = NULL
                cnp_[e] = NULL
                if h0_keep is not None and h0_keep[e] is not None:
                    h0p[e] = cnp.PyArray_DATA(h0_keep[e])
                    any_h0 = True
                if c0_keep is not None and c0_keep[e] is not None:
                    c0p[e] = cnp.PyArray_DATA(c0_keep[e])
                    any_c0 = True
                if states is not None and states[e] is not None:
                    hnp[e] = cnp.PyArray_DATA(states[e])
                    any_hn = True
                if cstates is not None and cstates[e] is not None:
                    cnp_[e] = cnp.PyArray_DATA(cstates[e])
                    any_cn = True
            xp = cnp.PyArray_DATA(<cnp.ndarray>xa)
            with nogil:
                status = crnn_rnn_forward2(handle, B, T, xp, lp, h0p if any_h0 else NULL,
                                           c0p if any_c0 else NULL, yp, hnp if any_hn else NULL,
                                           cnp_ if any_cn else NULL, wsp, ws_size)
            if status != CRNN_OK:
                _check(status, f"forward(x of shape {(B, T, self.input_size)})")
        finally:
            if h0p != stack_h0:
                PyMem_Free(h0p)
                PyMem_Free(hnp)
                PyMem_Free(c0p)
                PyMem_Free(cnp_)
            if lent:
                self._ws_busy = False

        if return_sequences:
            out = y
        elif self._last_ndir == 1:
            out = states[self.num_entries - 1]
            if return_state:
                out = out.copy()  # never hand out one array as both output and state
        else:
            out = np.concatenate(states[-2:], axis=1)
        if not return_state:
            return out
        if self._any_c:
            states = [[h, c] if has_c else h
                      for h, c, has_c in zip(states, cstates, self._entry_has_c)]
        return out, states


def dense_forward(x, kernel, bias, str activation="linear"):
    """``activation(x @ kernel + bias)`` on the rows of ``x`` ``(rows, D)`` (a Keras Dense).

    ``kernel`` is ``(D, N)``, ``bias`` ``(N,)`` or None, all of one dtype (float32 / float64,
    C-contiguous: the caller's layer keeps them so); ``x`` is cast to it. Returns ``(rows, N)``.
    """
    cdef int64_t rows, din, units
    cdef int status
    cdef crnn_dtype cdt
    cdef crnn_activation act
    cdef const void *xp
    cdef const void *kp
    cdef const void *bp = NULL
    cdef void *yp
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: got {activation!r}, expected one of {sorted(ACTIVATIONS)}")
    act = ACTIVATIONS[activation]
    # The kernel sets the dtype; everything the C core reads is checked here, whoever calls
    # (the Dense layer passes validated, frozen arrays, and those go through without a copy).
    ka = as_real_array(kernel, "kernel")
    if ka.dtype.kind != "f" or ka.dtype.itemsize not in (4, 8):  # either byte order
        raise TypeError(f"kernel: got dtype {ka.dtype}, expected float32 or float64")
    if ka.ndim != 2:
        raise ValueError(f"kernel: got shape {ka.shape}, expected (input_dim, units)")
    dt = np.dtype(np.float32 if ka.dtype.itemsize == 4 else np.float64)
    cdt = CRNN_DTYPE_FLOAT32 if dt == np.float32 else CRNN_DTYPE_FLOAT64
    ka = np.ascontiguousarray(ka, dtype=dt)  # native byte order, C order
    din, units = ka.shape[0], ka.shape[1]
    ba = None
    if bias is not None:
        ba = np.ascontiguousarray(as_real_array(bias, "bias", dt))
        if ba.shape != (units,):
            raise ValueError(f"bias: got shape {ba.shape}, expected ({units},)")
    xa = np.ascontiguousarray(as_real_array(x, "x"), dtype=dt)
    if xa.ndim != 2 or xa.shape[1] != din:
        raise ValueError(f"x: got shape {xa.shape}, expected (rows, {din})")
    rows = xa.shape[0]
    y = np.empty((rows, units), dt)
    xp = cnp.PyArray_DATA(xa)
    kp = cnp.PyArray_DATA(ka)
    if ba is not None:
        bp = cnp.PyArray_DATA(ba)
    yp = cnp.PyArray_DATA(y)
    with nogil:
        status = crnn_dense_forward(cdt, rows, din, units, xp, kp, bp, act, yp)
    _check(status, f"dense(x of shape {(rows, din)}, units={units})")
    return y


# ------------------------------------------------------------------------------------------------
# C-API capsule (csrc/include/crnn_capi.h): other C and Cython extensions call the core through
# this table of function pointers, fetched by import_crnn(), without linking to crnn. The table is
# static and this module is never unloaded, so the pointers stay valid for the process's life.
# CRNN_CAPI_PROVIDER: take only the struct from crnn_capi.h, not its crnn_* -> table macros.
from cpython.pycapsule cimport PyCapsule_New

cdef extern from *:
    """
    #define CRNN_CAPI_PROVIDER 1
    #include "crnn_capi.h"
    static const crnn_capi_table crnn__capi_table = {
        .api_version = CRNN_CAPI_VERSION,
        .struct_size = sizeof(crnn_capi_table),
        .version = crnn_version,
        .status_string = crnn_status_string,
        .rnn_create = crnn_rnn_create,
        .rnn_free = crnn_rnn_free,
        .rnn_workspace_size = crnn_rnn_workspace_size,
        .rnn_forward = crnn_rnn_forward,
        .rnn_info = crnn_rnn_info,
        .rnn_create2 = crnn_rnn_create2,
        .rnn_forward2 = crnn_rnn_forward2,
        .rnn_info2 = crnn_rnn_info2,
        .dense_forward = crnn_dense_forward,
        .set_num_threads = crnn_set_num_threads,
        .get_num_threads = crnn_get_num_threads,
        .set_blas_threads = crnn_set_blas_threads,
        .get_blas_threads = crnn_get_blas_threads,
    };
    """
    void *_crnn_capi_table_ptr "((void *)&crnn__capi_table)"
    const char *_CRNN_CAPI_CAPSULE_NAME "CRNN_CAPI_CAPSULE_NAME"
    unsigned _CRNN_CAPI_VERSION "CRNN_CAPI_VERSION"

_C_API = PyCapsule_New(_crnn_capi_table_ptr, _CRNN_CAPI_CAPSULE_NAME, NULL)
C_API_VERSION = _CRNN_CAPI_VERSION  # the table version this build exports (crnn_capi.h)
