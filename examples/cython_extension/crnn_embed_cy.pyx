# cython: language_level=3, boundscheck=False, wraparound=False
"""crnn's C core from Cython, through the installed crnn package.

The declarations come from the package (crnn/crnn.pxd, ``from crnn.crnn cimport ...``); the calls
go through the C-API capsule: including crnn_capi.h maps every crnn_* function to the table that
``import_crnn()`` fetches from crnn._core, so this module links to nothing of crnn's.
"""
from crnn.crnn cimport (CRNN_OK, CRNN_DTYPE_FLOAT32, CRNN_DTYPE_FLOAT64, CRNN_CELL_SIMPLE,
                        CRNN_CELL_LSTM, CRNN_CELL_GRU, crnn_dtype, crnn_layer_desc,
                        crnn_weights, crnn_layer_desc2, crnn_weights2, crnn_rnn_t,
                        crnn_activation, crnn_cell, crnn_direction, crnn_version,
                        crnn_status_string, crnn_rnn_create, crnn_rnn_create2,
                        crnn_rnn_forward, crnn_rnn_forward2, crnn_rnn_free)

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
        _raise(status)
    return y, h_n


cdef _raise(int status):
    raise ValueError(f"crnn: {crnn_status_string(status).decode()} (status {status})")


_GATES = {CRNN_CELL_SIMPLE: 1, CRNN_CELL_LSTM: 4, CRNN_CELL_GRU: 3}


def cell_forward(real[:, :, ::1] x, real[:, ::1] kernel, real[:, ::1] recurrent_kernel,
                 real[::1] bias=None, real[::1] recurrent_bias=None, int cell=CRNN_CELL_LSTM,
                 int activation=0, int recurrent_activation=2, int direction=0,
                 int reset_after=1, real[:, ::1] h0=None, real[:, ::1] c0=None):
    """One layer of any cell over x (B, T, D), B >= 1: returns (y, h_n, c_n), c_n None but for
    an LSTM.

    cell as crnn_cell (0 SimpleRNN, 1 LSTM, 2 GRU); Keras layouts and gate orders: kernel
    (D, G*H), recurrent_kernel (H, G*H), bias and recurrent_bias (G*H,) or None, G = 1, 4, 3.
    activation / recurrent_activation as crnn_activation (0 tanh, 1 relu, 2 sigmoid, 3 linear,
    4 hard_sigmoid); direction 0 (forward) or 1 (reverse); reset_after (GRU) 1 or 0; h0 and
    c0 (LSTM) (B, H) or None. One crnn_rnn_create2 and one crnn_rnn_forward2 call, without the
    GIL.
    """
    cdef Py_ssize_t B = x.shape[0], T = x.shape[1], D = x.shape[2], H = recurrent_kernel.shape[0]
    cdef Py_ssize_t G
    cdef crnn_layer_desc2 desc
    cdef crnn_weights2 w
    cdef crnn_rnn_t *rnn = NULL
    cdef crnn_dtype dtype = CRNN_DTYPE_FLOAT32 if real is float else CRNN_DTYPE_FLOAT64
    cdef const void *h0_ptrs[1]
    cdef const void *c0_ptrs[1]
    cdef void *hn_ptrs[1]
    cdef void *cn_ptrs[1]
    cdef int status
    if cell not in _GATES:
        raise ValueError(f"cell: got {cell}, expected 0 (SimpleRNN), 1 (LSTM) or 2 (GRU)")
    G = _GATES[cell]
    if B < 1 or T < 1:
        raise ValueError(f"x: got shape {(B, T, D)}, expected batch and timesteps >= 1")
    if (kernel.shape[0] != D or kernel.shape[1] != G * H or recurrent_kernel.shape[1] != G * H):
        raise ValueError(f"kernel: got ({kernel.shape[0]}, {kernel.shape[1]}) and "
                         f"recurrent_kernel ({H}, {recurrent_kernel.shape[1]}), expected "
                         f"({D}, {G * H}) and ({H}, {G * H})")
    for name, b in (("bias", bias), ("recurrent_bias", recurrent_bias)):
        if b is not None and b.shape[0] != G * H:
            raise ValueError(f"{name}: got {b.shape[0]} values, expected {G * H}")
    for name, st in (("h0", h0), ("c0", c0)):
        if st is not None and (st.shape[0] != B or st.shape[1] != H):
            raise ValueError(f"{name}: got ({st.shape[0]}, {st.shape[1]}), expected ({B}, {H})")
    if direction not in (0, 1):
        raise ValueError(f"direction: got {direction}, expected 0 or 1")
    y = np.empty((B, T, H), dtype=np.float32 if real is float else np.float64)
    h_n = np.empty((B, H), dtype=y.dtype)
    c_n = np.empty((B, H), dtype=y.dtype) if cell == CRNN_CELL_LSTM else None
    cdef real[:, :, ::1] yv = y
    cdef real[:, ::1] hv = h_n
    cdef real[:, ::1] cv = c_n
    desc.cell = <crnn_cell>cell
    desc.units = H
    desc.activation = <crnn_activation>activation
    desc.recurrent_activation = <crnn_activation>recurrent_activation
    desc.direction = <crnn_direction>direction
    desc.reset_after = reset_after
    w.kernel = &kernel[0, 0]
    w.recurrent_kernel = &recurrent_kernel[0, 0]
    w.bias = NULL if bias is None else &bias[0]
    w.recurrent_bias = NULL if recurrent_bias is None else &recurrent_bias[0]
    h0_ptrs[0] = NULL if h0 is None else &h0[0, 0]
    c0_ptrs[0] = NULL if c0 is None else &c0[0, 0]
    hn_ptrs[0] = &hv[0, 0]
    cn_ptrs[0] = NULL if c_n is None else &cv[0, 0]
    with nogil:
        status = crnn_rnn_create2(&rnn, dtype, D, 1, &desc, &w)
        if status == CRNN_OK:
            status = crnn_rnn_forward2(rnn, B, T, &x[0, 0, 0], NULL, h0_ptrs, c0_ptrs,
                                       &yv[0, 0, 0], hn_ptrs, cn_ptrs, NULL, 0)
        crnn_rnn_free(rnn)
    if status != CRNN_OK:
        _raise(status)
    return y, h_n, c_n
