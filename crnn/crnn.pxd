# crnn.pxd - Cython declarations of the public C API (csrc/include/crnn.h), for `cimport crnn.crnn`.
# Only declarations live here; the wrappers are in _core.pyx.
from libc.stdint cimport int64_t

cdef extern from "crnn.h" nogil:
    int CRNN_VERSION_MAJOR
    int CRNN_VERSION_MINOR
    int CRNN_VERSION_PATCH
    unsigned crnn_version()

    ctypedef enum crnn_status:
        CRNN_OK
        CRNN_ERR_NULL_POINTER
        CRNN_ERR_INVALID_ARGUMENT
        CRNN_ERR_OUT_OF_MEMORY
        CRNN_ERR_TOO_LARGE
        CRNN_ERR_WORKSPACE_TOO_SMALL
        CRNN_ERR_NOT_IMPLEMENTED

    const char *crnn_status_string(int status)

    ctypedef enum crnn_dtype:
        CRNN_DTYPE_FLOAT32
        CRNN_DTYPE_FLOAT64

    ctypedef enum crnn_activation:
        CRNN_ACTIVATION_TANH
        CRNN_ACTIVATION_RELU
        CRNN_ACTIVATION_SIGMOID
        CRNN_ACTIVATION_LINEAR
    crnn_activation CRNN_ACTIVATION_HARD_SIGMOID  # a constant of the enum's type (see crnn.h)

    ctypedef enum crnn_cell:
        CRNN_CELL_SIMPLE
        CRNN_CELL_LSTM
        CRNN_CELL_GRU

    ctypedef enum crnn_direction:
        CRNN_DIRECTION_FORWARD
        CRNN_DIRECTION_REVERSE
        CRNN_DIRECTION_BIDIRECTIONAL

    ctypedef struct crnn_layer_desc:
        int64_t units
        crnn_activation activation
        crnn_direction direction

    ctypedef struct crnn_weights:
        const void *kernel
        const void *recurrent_kernel
        const void *bias

    ctypedef struct crnn_layer_desc2:
        crnn_cell cell
        int64_t units
        crnn_activation activation
        crnn_activation recurrent_activation
        crnn_direction direction
        int reset_after

    ctypedef struct crnn_weights2:
        const void *kernel
        const void *recurrent_kernel
        const void *bias
        const void *recurrent_bias

    ctypedef struct crnn_rnn_t:
        pass

    int crnn_rnn_create(crnn_rnn_t **out, crnn_dtype dtype, int64_t input_size,
                        int64_t num_layers, const crnn_layer_desc *layers,
                        const crnn_weights *weights)
    int crnn_rnn_create2(crnn_rnn_t **out, crnn_dtype dtype, int64_t input_size,
                         int64_t num_layers, const crnn_layer_desc2 *layers,
                         const crnn_weights2 *weights)
    void crnn_rnn_free(crnn_rnn_t *rnn)
    int crnn_rnn_workspace_size(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps,
                                size_t *size)
    int crnn_rnn_forward(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps,
                         const void *x, const int64_t *lengths, const void *const *h0,
                         void *y, void *const *h_n, void *workspace, size_t workspace_size)
    int crnn_rnn_forward2(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps,
                          const void *x, const int64_t *lengths, const void *const *h0,
                          const void *const *c0, void *y, void *const *h_n, void *const *c_n,
                          void *workspace, size_t workspace_size)
    int crnn_rnn_info(const crnn_rnn_t *rnn, crnn_dtype *dtype, int64_t *input_size,
                      int64_t *num_layers, crnn_layer_desc *layers_out, int64_t layers_capacity)
    int crnn_rnn_info2(const crnn_rnn_t *rnn, crnn_dtype *dtype, int64_t *input_size,
                       int64_t *num_layers, crnn_layer_desc2 *layers_out,
                       int64_t layers_capacity)
    int crnn_dense_forward(crnn_dtype dtype, int64_t rows, int64_t input_size, int64_t units,
                           const void *x, const void *kernel, const void *bias,
                           crnn_activation activation, void *y)
    int crnn_set_num_threads(int n)
    int crnn_get_num_threads()
    int crnn_set_blas_threads(int n)
    int crnn_get_blas_threads()
