# cython: language_level=3, boundscheck=False, wraparound=False
"""crnn's C core from Cython, through the installed crnn package.

The declarations come from the package (crnn/crnn.pxd, ``from crnn.crnn cimport ...``); the calls
go through the C-API capsule: including crnn_capi.h maps every crnn_* function to the table that
``import_crnn()`` fetches from crnn._core, so this module links to nothing of crnn's.
"""
from crnn.crnn cimport (CRNN_OK, CRNN_DTYPE_FLOAT32, CRNN_DTYPE_FLOAT64, crnn_dtype,
                        crnn_layer_desc, crnn_weights, crnn_rnn_t, crnn_activation,
                        crnn_direction, crnn_version, crnn_status_string, crnn_rnn_create,
                        crnn_rnn_forward, crnn_rnn_free)

import numpy as np

cdef extern from "crnn_capi.h":
    int import_crnn() except -1

import_crnn()

ctypedef fused real:
    float
    double


def core_version():
    """crnn_version() of the installed core, via the capsule."""
    return crnn_version()


def forward(real[:, :, ::1] x, real[:, ::1] kernel, real[:, ::1] recurrent_kernel,
            real[::1] bias=None, int activation=0, int direction=0):
    """One SimpleRNN layer over x (B, T, D), B >= 1: returns (y, h_n) as NumPy arrays.

    direction 0 (forward) or 1 (reverse); activation as crnn_activation (0 tanh .. 3 linear).
    The whole sequence is one crnn_rnn_forward call without the GIL.
    """
    cdef Py_ssize_t B = x.shape[0], T = x.shape[1], D = x.shape[2], H = recurrent_kernel.shape[0]
    cdef crnn_layer_desc desc
    cdef crnn_weights w
    cdef crnn_rnn_t *rnn = NULL
    cdef crnn_dtype dtype = CRNN_DTYPE_FLOAT32 if real is float else CRNN_DTYPE_FLOAT64
    cdef void *hn_ptrs[1]
    cdef int status
    if B < 1 or T < 1:
        raise ValueError(f"x: got shape {(B, T, D)}, expected batch and timesteps >= 1")
    if kernel.shape[0] != D or kernel.shape[1] != H or recurrent_kernel.shape[1] != H:
        raise ValueError("kernel must be (D, H) and recurrent_kernel (H, H)")
    if bias is not None and bias.shape[0] != H:
        raise ValueError(f"bias: got {bias.shape[0]} values, expected {H}")
    if direction not in (0, 1):
        raise ValueError(f"direction: got {direction}, expected 0 or 1")
    y = np.empty((B, T, H), dtype=np.float32 if real is float else np.float64)
    h_n = np.empty((B, H), dtype=y.dtype)
    cdef real[:, :, ::1] yv = y
    cdef real[:, ::1] hv = h_n
    desc.units = H
    desc.activation = <crnn_activation>activation
    desc.direction = <crnn_direction>direction
    w.kernel = &kernel[0, 0]
    w.recurrent_kernel = &recurrent_kernel[0, 0]
    w.bias = NULL if bias is None else &bias[0]
    hn_ptrs[0] = &hv[0, 0]
    with nogil:
        status = crnn_rnn_create(&rnn, dtype, D, 1, &desc, &w)
        if status == CRNN_OK:
            status = crnn_rnn_forward(rnn, B, T, &x[0, 0, 0], NULL, NULL, &yv[0, 0, 0], hn_ptrs,
                                      NULL, 0)
        crnn_rnn_free(rnn)
    if status != CRNN_OK:
        raise ValueError(f"crnn: {crnn_status_string(status).decode()} (status {status})")
    return y, h_n
