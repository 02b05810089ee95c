# cython: language_level=3
"""Thin Cython wrapper over the C core (csrc/include/crnn.h).

With the GIL held: validate shapes, dtypes and strides, make inputs contiguous (a copy only when
needed; inputs are never written), allocate outputs. Then exactly one ``nogil`` call into C. Then
map the status through one table to a Python exception.
"""
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.stdint cimport int64_t

cimport numpy as cnp
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

_PLAN_NAMES = {CRNN__SERIAL: "serial", CRNN__SPLIT_BATCH: "batch", CRNN__SPLIT_UNITS: "units",
               CRNN__PIPELINE: "pipeline"}

ACTIVATIONS = {"tanh": CRNN_ACTIVATION_TANH, "relu": CRNN_ACTIVATION_RELU,
               "sigmoid": CRNN_ACTIVATION_SIGMOID, "linear": CRNN_ACTIVATION_LINEAR}
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


cdef class RNN:
    """Compiled, immutable SimpleRNN stack (a ``crnn_rnn_t`` handle).

    Parameters
    ----------
    weights : list over layers of lists over directions (1, or 2 when bidirectional) of
        ``[kernel (D_l, H_l), recurrent_kernel (H_l, H_l), bias (H_l,) or None]``, Keras layout.
        They are copied: later changes to the arrays do not affect the handle.
    activation : str or None, or one per layer: "tanh", "relu", "sigmoid", "linear" (None).
    direction : "forward", "reverse" or "bidirectional", or one per layer.
    dtype : "float32" or "float64".

    Calls to :meth:`forward` release the GIL; any number of threads may share one handle.
    """
    cdef crnn_rnn_t *_rnn
    cdef readonly object dtype
    cdef readonly list units
    cdef readonly list activations
    cdef readonly list directions
    cdef readonly int64_t input_size
    cdef readonly int64_t num_layers
    cdef readonly int64_t num_entries
    cdef list _entry_units
    cdef int _typenum
    cdef int64_t _output_size
    cdef int64_t _last_ndir

    def __cinit__(self):
        self._rnn = NULL

    def __dealloc__(self):
        crnn_rnn_free(self._rnn)
        self._rnn = NULL

    def __init__(self, weights, *, activation="tanh", direction="forward", dtype="float32"):
        cdef crnn_layer_desc *descs = NULL
        cdef crnn_weights *cw = NULL
        cdef crnn_rnn_t *handle = NULL
        cdef int status
        cdef int64_t nl, i, e, d, ndir, in_size, units
        cdef crnn_dtype cdt
        self.dtype = as_dtype(dtype)
        cdt = CRNN_DTYPE_FLOAT32 if self.dtype == np.float32 else CRNN_DTYPE_FLOAT64
        if isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__"):
            raise TypeError(f"weights: got {type(weights).__name__}, expected a list over layers")
        nl = len(weights)
        if nl < 1:
            raise ValueError("weights: got 0 layers, expected at least 1")
        acts = list(activation) if isinstance(activation, (list, tuple)) else [activation] * nl
        dirs = list(direction) if isinstance(direction, (list, tuple)) else [direction] * nl
        if len(acts) != nl:
            raise ValueError(f"activation: got {len(acts)} entries, expected {nl} (one per layer)")
        if len(dirs) != nl:
            raise ValueError(f"direction: got {len(dirs)} entries, expected {nl} (one per layer)")
        acts = ["linear" if a is None else a for a in acts]
        for a in acts:
            if not isinstance(a, str) or a not in ACTIVATIONS:
                raise ValueError(f"activation: got {a!r}, expected one of {sorted(ACTIVATIONS)} or None")
        for dn in dirs:
            if not isinstance(dn, str) or dn not in DIRECTIONS:
                raise ValueError(f"direction: got {dn!r}, expected one of {sorted(DIRECTIONS)}")

        # Validate and make every weight contiguous in our dtype; `keep` holds them alive.
        keep = []
        self.units = []
        self._entry_units = []
        in_size = -1
        for i in range(nl):
            layer = weights[i]
            ndir = 2 if dirs[i] == "bidirectional" else 1
            if isinstance(layer, np.ndarray) or not hasattr(layer, "__len__") or len(layer) != ndir:
                raise ValueError(f"weights[{i}]: expected a list of {ndir} direction(s) of "
                                 f"[kernel, recurrent_kernel, bias] for direction {dirs[i]!r}")
            layer_units = None
            for d in range(ndir):
                w = layer[d]
                if isinstance(w, np.ndarray) or not hasattr(w, "__len__") or len(w) not in (2, 3):
                    raise ValueError(f"weights[{i}][{d}]: expected [kernel, recurrent_kernel, bias]")
                where = f"weights[{i}][{d}]"
                k = as_real_array(w[0], where + " kernel", self.dtype)
                r = as_real_array(w[1], where + " recurrent_kernel", self.dtype)
                b = None if len(w) < 3 or w[2] is None else as_real_array(w[2], where + " bias", self.dtype)
                if r.ndim != 2 or r.shape[0] != r.shape[1] or r.shape[0] < 1:
                    raise ValueError(f"{where} recurrent_kernel: got shape {r.shape}, expected (units, units)")
                units = r.shape[0]
                if layer_units is not None and units != layer_units:
                    raise ValueError(f"{where} recurrent_kernel: got {units} units, expected {layer_units} "
                                     f"(both directions of a layer have the same size)")
                layer_units = units
                if i == 0 and d == 0:
                    if k.ndim != 2 or k.shape[0] < 1:
                        raise ValueError(f"{where} kernel: got shape {k.shape}, expected (input_dim, {units})")
                    in_size = k.shape[0]
                if k.shape != (in_size, units):
                    raise ValueError(f"{where} kernel: got shape {k.shape}, expected ({in_size}, {units})")
                if b is not None and b.shape != (units,):
                    raise ValueError(f"{where} bias: got shape {b.shape}, expected ({units},)")
                keep.append((np.ascontiguousarray(k), np.ascontiguousarray(r),
                             None if b is None else np.ascontiguousarray(b)))
                self._entry_units.append(units)
            self.units.append(layer_units)
            if i == 0:
                self.input_size = in_size
            in_size = layer_units * ndir

        self.num_layers = nl
        self.num_entries = len(keep)
        self._typenum = cnp.NPY_FLOAT32 if self.dtype == np.float32 else cnp.NPY_FLOAT64
        self._last_ndir = 2 if dirs[-1] == "bidirectional" else 1
        self._output_size = self.units[-1] * self._last_ndir
        self.activations = acts
        self.directions = dirs
        descs = <crnn_layer_desc *>PyMem_Malloc(nl * sizeof(crnn_layer_desc))
        cw = <crnn_weights *>PyMem_Malloc(self.num_entries * sizeof(crnn_weights))
        try:
            if descs == NULL or cw == NULL:
                raise MemoryError("RNN: could not allocate layer descriptors")
            for i in range(nl):
                descs[i].units = self.units[i]
                descs[i].activation = ACTIVATIONS[acts[i]]
                descs[i].direction = DIRECTIONS[dirs[i]]
            for e in range(self.num_entries):
                cw[e].kernel = cnp.PyArray_DATA(keep[e][0])
                cw[e].recurrent_kernel = cnp.PyArray_DATA(keep[e][1])
                cw[e].bias = NULL if keep[e][2] is None else cnp.PyArray_DATA(keep[e][2])
            with nogil:
                status = crnn_rnn_create(&handle, cdt, self.input_size, nl, descs, cw)
            _check(status, "RNN")
            self._rnn = handle
        finally:
            PyMem_Free(descs)
            PyMem_Free(cw)

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
        return (f"RNN(input_size={self.input_size}, units={self.units}, activations={self.activations}, "
                f"directions={self.directions}, dtype={self.dtype.name})")

    def plan(self, int64_t batch, int64_t timesteps):
        """How a call of this shape uses threads at the current setting: ``(mode, threads)``.

        ``mode`` is "serial", "batch" (row ranges), "units" (unit slices, or one direction per
        thread) or "pipeline" (a second thread projects the input ahead). Diagnostic only.
        """
        cdef int nt = 1
        cdef crnn__mode mode
        if batch < 0 or timesteps < 1:
            raise ValueError(f"batch, timesteps: got ({batch}, {timesteps}), expected >= 0 and >= 1")
        mode = crnn__plan(self._rnn, batch, timesteps, &nt)
        return _PLAN_NAMES[mode], nt

    def workspace_size(self, int64_t batch, int64_t timesteps):
        """Bytes of scratch memory one forward call of this shape uses."""
        cdef size_t size = 0
        _check(crnn_rnn_workspace_size(self._rnn, batch, timesteps, &size),
               f"workspace_size(batch={batch}, timesteps={timesteps})")
        return size

    def forward(self, x, initial_state=None, lengths=None, bint return_sequences=True,
                bint return_state=False):
        """Run the stack on ``x`` of shape (batch, timesteps, input_size).

        Returns what :func:`crnn.reference.simple_rnn_stack` returns for the same arguments:
        the output, or ``(output, states)`` when ``return_state``.
        """
        cdef int64_t B, T, e
        cdef size_t ws_size = 0
        cdef int status
        cdef const void *stack_h0[_STACK_ENTRIES]
        cdef void *stack_hn[_STACK_ENTRIES]
        cdef const void **h0p = stack_h0
        cdef void **hnp = stack_hn
        cdef const void *xp
        cdef void *yp = NULL
        cdef const int64_t *lp = NULL
        cdef bint any_h0 = False, any_hn = False, fast = False
        cdef crnn_rnn_t *handle = self._rnn
        cdef cnp.npy_intp dims[3]

        # Fast path: an ndarray of our dtype, C-contiguous, needs no conversion at all.
        if (type(x) is np.ndarray and cnp.PyArray_TYPE(<cnp.ndarray>x) == self._typenum
                and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>x)
                and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>x) and cnp.PyArray_NDIM(<cnp.ndarray>x) == 3):
            xa = x
            fast = True
        else:
            xa = as_real_array(x, "x")
        if xa.ndim != 3:
            raise ValueError(f"x: got shape {xa.shape}, expected (batch, timesteps, {self.input_size})")
        B, T = xa.shape[0], xa.shape[1]
        if xa.shape[2] != self.input_size:
            raise ValueError(f"x: got input_dim {xa.shape[2]} (shape {xa.shape}), "
                             f"expected {self.input_size}")
        if T == 0:
            raise ValueError(f"x: got 0 timesteps (shape {xa.shape}), expected at least 1")
        # Size checks (overflow, 32-bit BLAS limits) before anything big is allocated.
        status = crnn_rnn_workspace_size(handle, B, T, &ws_size)
        if status != CRNN_OK:
            _check(status, f"x: shape {xa.shape} with units {self.units}")
        if not fast:
            # Any other layout, dtype or byte order: one native, C-contiguous copy (or none).
            xa = np.ascontiguousarray(xa, dtype=self.dtype)

        h0_keep = None
        if initial_state is not None:
            if isinstance(initial_state, np.ndarray) and initial_state.ndim == 2 and self.num_entries == 1:
                initial_state = [initial_state]
            if isinstance(initial_state, (str, bytes)) or not hasattr(initial_state, "__len__") \
                    or len(initial_state) != self.num_entries:
                raise ValueError(f"initial_state: expected a list of {self.num_entries} arrays "
                                 f"(one per layer and direction) of shape (batch, units)")
            h0_keep = []
            for e in range(self.num_entries):
                s = initial_state[e]
                if s is None:
                    h0_keep.append(None)
                    continue
                if (type(s) is np.ndarray and cnp.PyArray_TYPE(<cnp.ndarray>s) == self._typenum
                        and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>s)
                        and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>s)
                        and cnp.PyArray_NDIM(<cnp.ndarray>s) == 2
                        and cnp.PyArray_DIMS(<cnp.ndarray>s)[0] == B
                        and cnp.PyArray_DIMS(<cnp.ndarray>s)[1] == <int64_t>self._entry_units[e]):
                    h0_keep.append(s)  # fast path: usable as it is
                    continue
                sa = as_real_array(s, f"initial_state[{e}]", self.dtype)
                if sa.shape != (B, self._entry_units[e]):
                    raise ValueError(f"initial_state[{e}]: got shape {sa.shape}, "
                                     f"expected ({B}, {self._entry_units[e]})")
                h0_keep.append(np.ascontiguousarray(sa))

        len_keep = None
        if lengths is not None:
            la = np.asarray(lengths)
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
            y = cnp.PyArray_EMPTY(3, dims, self._typenum, 0)
            yp = cnp.PyArray_DATA(y)
        # Final states: all of them for return_state, the last layer's for a last-step output.
        first_state = 0 if return_state else (self.num_entries if return_sequences
                                              else self.num_entries - self._last_ndir)
        states = [None] * self.num_entries
        dims[0] = B
        for e in range(first_state, self.num_entries):
            dims[1] = self._entry_units[e]
            states[e] = cnp.PyArray_EMPTY(2, dims, self._typenum, 0)

        if self.num_entries > _STACK_ENTRIES:
            h0p = <const void **>PyMem_Malloc(self.num_entries * sizeof(void *))
            hnp = <void **>PyMem_Malloc(self.num_entries * sizeof(void *))
        try:
            if h0p == NULL or hnp == NULL:
                raise MemoryError("forward: could not allocate state pointers")
            for e in range(self.num_entries):
                if h0_keep is not None and h0_keep[e] is not None:
                    h0p[e] = cnp.PyArray_DATA(h0_keep[e])
                    any_h0 = True
                else:
                    h0p[e] = NULL
                if states[e] is not None:
                    hnp[e] = cnp.PyArray_DATA(states[e])
                    any_hn = True
                else:
                    hnp[e] = NULL
            xp = cnp.PyArray_DATA(<cnp.ndarray>xa)
            with nogil:
                status = crnn_rnn_forward(handle, B, T, xp, lp, h0p if any_h0 else NULL,
                                          yp, hnp if any_hn else NULL, NULL, 0)
            if status != CRNN_OK:
                _check(status, f"forward(x of shape {(B, T, self.input_size)})")
        finally:
            if h0p != stack_h0:
                PyMem_Free(h0p)
            if hnp != stack_hn:
                PyMem_Free(hnp)

        if return_sequences:
            out = y
        elif self._last_ndir == 1:
            out = states[self.num_entries - 1]
            if return_state:
                out = out.copy()  # never hand out one array as both output and state
        else:
            out = np.concatenate(states[-2:], axis=1)
        return (out, states) if return_state else out


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
