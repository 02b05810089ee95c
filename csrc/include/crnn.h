/*
 * crnn.h - public C API of crnn, a CPU inference engine for recurrent neural networks.
 *
 * What it computes
 * ----------------
 * A stack of recurrent layers over a (batch, timesteps, input_size) row-major tensor. Each layer
 * is a cell kind run over time, with Keras weight layouts and gate orders (G gates, H units,
 * D = the layer's input width):
 *
 *   SimpleRNN (G = 1)  h_t = act(x_t W + h_{t-1} R + b)
 *   LSTM      (G = 4)  gates i, f, c, o:  z = x_t W + h_{t-1} R + b
 *                      i = ract(z_i), f = ract(z_f), o = ract(z_o)
 *                      c_t = f * c_{t-1} + i * act(z_c),  h_t = o * act(c_t)
 *   GRU       (G = 3)  gates z, r, h (Keras 3 / PyTorch / ONNX linear_before_reset=1 with
 *                      reset_after = 1; Keras's reset_after=False with reset_after = 0):
 *                      z = ract(x_t W_z + h_{t-1} R_z + b_z + rb_z), r likewise,
 *                      reset after:  n = act(x_t W_h + b_h + r * (h_{t-1} R_h + rb_h))
 *                      reset before: n = act(x_t W_h + b_h + (r * h_{t-1}) R_h + rb_h)
 *                      h_t = z * h_{t-1} + (1 - z) * n
 *
 * kernel W is (D, G*H), recurrent_kernel R is (H, G*H), bias b and recurrent bias rb are (G*H),
 * gate g in columns [g*H, (g+1)*H) (act = activation, ract = recurrent_activation). Each layer
 * runs forward, reverse, or both directions (outputs concatenated, forward first); layer l > 0
 * reads the previous layer's output, (units_{l-1} * directions_{l-1}) wide, and any cell kinds
 * may follow each other in one stack. Outputs are aligned with the input time index: y[b, t] is
 * the state right after the step that read x[b, t], whatever the direction (as in PyTorch and
 * ONNX).
 *
 * Conventions
 * -----------
 * - Every function returns a status: CRNN_OK (0) or a negative crnn_status; crnn_status_string()
 *   describes it. Nothing here aborts, exits or prints.
 * - Dimensions are int64_t, byte counts size_t. All arrays are dense, row-major (C order), of the
 *   handle's dtype (float or double), and must not overlap the outputs.
 * - A handle's weights are immutable after it is created: any number of threads may call
 *   crnn_rnn_forward() / crnn_rnn_forward2() on one handle at the same time, each with its own
 *   workspace. (A handle keeps the timings of its threaded calls, see crnn_set_num_threads(),
 *   which choose only who computes them, never the result.)
 * - Ownership: the caller owns every array it passes; no function keeps a pointer to one after
 *   it returns (weights are copied into the handle). The library owns only its handles.
 * - Pure C: no function calls back into Python or takes a lock a caller could hold, so Python
 *   extensions may call any of them with the GIL released.
 *
 * Using it: link libcrnn (csrc/Makefile builds libcrnn.a and libcrnn.so) and its BLAS, or, from a
 * Python extension, include crnn_capi.h instead and call import_crnn(): it reaches this API
 * through the installed crnn package without linking (see that header).
 *
 * ABI promise: within one CRNN_VERSION_MAJOR, functions are only added, never changed or removed,
 * and existing enum values and struct layouts keep their meaning. So 0.2 added the cell kinds as
 * new structs and functions (crnn_layer_desc2, crnn_weights2, crnn_rnn_create2,
 * crnn_rnn_forward2, crnn_rnn_info2) and a new activation constant (CRNN_ACTIVATION_HARD_SIGMOID), leaving
 * 0.1's crnn_layer_desc, crnn_weights, crnn_rnn_create, crnn_rnn_forward and crnn_rnn_info as
 * they were: a program written against 0.1 for SimpleRNN stacks compiles and runs unchanged and
 * computes the same results (its layers are CRNN_CELL_SIMPLE layers of the same core). Handles of
 * both kinds work with every function taking a crnn_rnn_t.
 */
#ifndef CRNN_H
#define CRNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(CRNN_BUILD_SHARED)
#  define CRNN_API __declspec(dllexport)
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define CRNN_API __attribute__((visibility("default")))
#else
#  define CRNN_API
#endif

#define CRNN_VERSION_MAJOR 0
#define CRNN_VERSION_MINOR 2
#define CRNN_VERSION_PATCH 0
#define CRNN_VERSION_NUMBER (CRNN_VERSION_MAJOR * 10000 + CRNN_VERSION_MINOR * 100 + CRNN_VERSION_PATCH)

/*! crnn_version() :
 *  @return the library's CRNN_VERSION_NUMBER (major * 10000 + minor * 100 + patch), for
 *  checking the header a program was compiled with against the library it runs with:
 *  `crnn_version() / 10000 == CRNN_VERSION_MAJOR` means the ABI promise above holds.
 *  Thread-safe. */
CRNN_API unsigned crnn_version(void);

/* Status codes: CRNN_OK is zero, every error negative. */
typedef enum {
    CRNN_OK = 0,
    CRNN_ERR_NULL_POINTER = -1,     /* a required pointer argument is NULL */
    CRNN_ERR_INVALID_ARGUMENT = -2, /* an enum value, a size or a count out of range */
    CRNN_ERR_OUT_OF_MEMORY = -3,    /* malloc failed */
    CRNN_ERR_TOO_LARGE = -4,        /* sizes overflow size_t or the BLAS's 32-bit integers */
    CRNN_ERR_WORKSPACE_TOO_SMALL = -5, /* caller-supplied workspace smaller than required */
    CRNN_ERR_NOT_IMPLEMENTED = -6   /* valid request this build cannot serve */
} crnn_status;

/*! crnn_status_string() :
 *  @param status any int, normally a return value of this API.
 *  @return a static, NUL-terminated English description of `status`; never NULL (unknown codes
 *  give "unknown status"). The string is owned by the library: do not free or modify it.
 *  Thread-safe. */
CRNN_API const char *crnn_status_string(int status);

typedef enum { CRNN_DTYPE_FLOAT32 = 0, CRNN_DTYPE_FLOAT64 = 1 } crnn_dtype;

typedef enum {
    CRNN_ACTIVATION_TANH = 0,
    CRNN_ACTIVATION_RELU = 1,    /* max(z, 0); NaN stays NaN */
    CRNN_ACTIVATION_SIGMOID = 2, /* 1 / (1 + exp(-z)) */
    CRNN_ACTIVATION_LINEAR = 3   /* identity */
} crnn_activation;
/* Keras 3's hard_sigmoid, min(max(z + 3, 0), 6) / 6 (since 0.2). A constant of the enum's type
 * rather than a new enumerator, so that a 0.1 program whose switch over crnn_activation lists
 * every enumerator still compiles under -Wswitch -Werror. */
#define CRNN_ACTIVATION_HARD_SIGMOID ((crnn_activation)4)

/* Cell kinds (since 0.2). */
typedef enum {
    CRNN_CELL_SIMPLE = 0, /* SimpleRNN, 1 gate */
    CRNN_CELL_LSTM = 1,   /* LSTM, 4 gates i, f, c, o; carries a cell state c */
    CRNN_CELL_GRU = 2     /* GRU, 3 gates z, r, h */
} crnn_cell;

typedef enum {
    CRNN_DIRECTION_FORWARD = 0,
    CRNN_DIRECTION_REVERSE = 1,      /* reads x[T-1] first; outputs stay time-aligned */
    CRNN_DIRECTION_BIDIRECTIONAL = 2 /* forward and reverse, outputs concatenated [fwd, rev] */
} crnn_direction;

/* One SimpleRNN layer of a stack (0.1; crnn_layer_desc2 describes any cell kind). */
typedef struct {
    int64_t units;              /* hidden size H of this layer, >= 1 */
    crnn_activation activation;
    crnn_direction direction;
} crnn_layer_desc;

/* Weights of one SimpleRNN (layer, direction), in the caller's memory, dtype of the handle.
 * kernel: (input_size_l, units) row-major; recurrent_kernel: (units, units); bias: (units) or NULL
 * for no bias. input_size_0 is the stack's input size, input_size_l = units_{l-1} * directions_{l-1}. */
typedef struct {
    const void *kernel;
    const void *recurrent_kernel;
    const void *bias;
} crnn_weights;

/* One layer of any cell kind (since 0.2). */
typedef struct {
    crnn_cell cell;
    int64_t units;                        /* hidden size H, >= 1 */
    crnn_activation activation;           /* SimpleRNN's activation; LSTM / GRU: the candidate's
                                             and (LSTM) the cell output's (Keras `activation`) */
    crnn_activation recurrent_activation; /* LSTM / GRU gates (Keras `recurrent_activation`);
                                             ignored for SimpleRNN */
    crnn_direction direction;
    int reset_after;                      /* GRU: 1 reset after the recurrent product (Keras 3's
                                             default, PyTorch, ONNX linear_before_reset=1), 0
                                             before it (Keras reset_after=False); ignored for
                                             the others (crnn_rnn_info2 reports 0) */
} crnn_layer_desc2;

/* Weights of one (layer, direction) of any cell kind (since 0.2), G = gates of the cell:
 * kernel (input_size_l, G*units), recurrent_kernel (units, G*units), bias (G*units) or NULL,
 * recurrent_bias (G*units) or NULL, gates in the Keras order of crnn_cell. The two biases add,
 * except for a GRU with reset_after, where the candidate's recurrent bias is applied inside the
 * reset (Keras's bias of shape (2, 3*units) is [bias, recurrent_bias]; PyTorch's b_ih, b_hh). */
typedef struct {
    const void *kernel;
    const void *recurrent_kernel;
    const void *bias;
    const void *recurrent_bias;
} crnn_weights2;

/* Opaque handle: immutable weights (see the notes above). */
typedef struct crnn_rnn_s crnn_rnn_t;

/*! crnn_rnn_create() :
 *  Build a handle for a stack of `num_layers` SimpleRNN layers.
 *  @param out        receives the new handle; set to NULL on failure (when `out` is not NULL).
 *  @param dtype      CRNN_DTYPE_FLOAT32 or CRNN_DTYPE_FLOAT64: element type of the weights and
 *                    of every array of every later forward call.
 *  @param input_size features per timestep of the stack's input, >= 1.
 *  @param num_layers number of layers, >= 1.
 *  @param layers     `num_layers` descriptors: units >= 1, a crnn_activation, a crnn_direction.
 *  @param weights    one entry per (layer, direction), layer-major, forward before reverse:
 *                    sum over layers of (direction == BIDIRECTIONAL ? 2 : 1) entries; kernel and
 *                    recurrent_kernel required, bias optional (see crnn_weights).
 *  Ownership: `layers`, `weights` and the arrays they point to are only read during this call:
 *  the weights are copied (and may be repacked) into the handle, so the caller may modify or
 *  free them once this returns. A handle holds about the weights' size plus one more copy of
 *  each recurrent kernel of more than 8 units and at most 64 MiB that is not all zeros
 *  (repacked for batch-1 steps). The handle belongs to the caller; release it with
 *  crnn_rnn_free().
 *  @return CRNN_OK, or
 *          CRNN_ERR_NULL_POINTER (out, layers, weights, or a kernel / recurrent_kernel is NULL),
 *          CRNN_ERR_INVALID_ARGUMENT (dtype, input_size, num_layers, units, activation or
 *            direction out of range),
 *          CRNN_ERR_TOO_LARGE (a size beyond the BLAS's 32-bit integers, or bytes beyond size_t),
 *          CRNN_ERR_OUT_OF_MEMORY.
 *  Thread-safe (no shared state). */
CRNN_API int crnn_rnn_create(crnn_rnn_t **out, crnn_dtype dtype, int64_t input_size,
                             int64_t num_layers, const crnn_layer_desc *layers,
                             const crnn_weights *weights);

/*! crnn_rnn_create2() :
 *  Build a handle for a stack of `num_layers` layers of any cell kinds (since 0.2).
 *  Same as crnn_rnn_create() but with crnn_layer_desc2 and crnn_weights2 (see them): each layer
 *  has a cell kind, an activation, a recurrent activation (LSTM, GRU), a direction and, for a
 *  GRU, where its reset applies. The handle holds the weights, repacked once so that each unit's
 *  gates sit together, plus one more copy of each recurrent kernel whose (units x G*units) is
 *  larger than 8 units and at most 64 MiB and not all zeros, packed into the column panels the
 *  recurrent step's own kernel reads (at every batch size).
 *  @return CRNN_OK, or
 *          CRNN_ERR_NULL_POINTER (out, layers, weights, or a kernel / recurrent_kernel is NULL),
 *          CRNN_ERR_INVALID_ARGUMENT (dtype, input_size, num_layers, cell, units, activation,
 *            an LSTM's or GRU's recurrent_activation, direction or a GRU's reset_after out of
 *            range),
 *          CRNN_ERR_TOO_LARGE, CRNN_ERR_OUT_OF_MEMORY.
 *  Thread-safe (no shared state). */
CRNN_API int crnn_rnn_create2(crnn_rnn_t **out, crnn_dtype dtype, int64_t input_size,
                              int64_t num_layers, const crnn_layer_desc2 *layers,
                              const crnn_weights2 *weights);

/*! crnn_rnn_free() :
 *  Release a handle and the weights it owns; `rnn` is invalid afterwards. The caller's arrays are
 *  not touched. `crnn_rnn_free(NULL)` is a no-op.
 *  @param rnn a handle from crnn_rnn_create(), or NULL.
 *  Thread-safety: not while any other call (e.g. a forward on another thread) uses the same
 *  handle; freeing different handles concurrently is safe. */
CRNN_API void crnn_rnn_free(crnn_rnn_t *rnn);

/*! crnn_rnn_workspace_size() :
 *  Bytes of scratch memory crnn_rnn_forward() needs on `rnn` for this batch and timesteps
 *  (may be 0). Cheap: query it once per shape and reuse one buffer for every call of that shape
 *  (a streaming loop of T = 1 steps then allocates nothing per step).
 *  @param rnn       the handle.
 *  @param batch     B >= 0.
 *  @param timesteps T >= 1.
 *  @param size      receives the byte count (unchanged on error).
 *  @return CRNN_OK, or CRNN_ERR_NULL_POINTER (rnn or size), CRNN_ERR_INVALID_ARGUMENT (B < 0 or
 *          T < 1), CRNN_ERR_TOO_LARGE (the shape exceeds the BLAS's 32-bit integers or the
 *          byte count overflows size_t): exactly the size checks crnn_rnn_forward() makes.
 *  Thread-safe. */
CRNN_API int crnn_rnn_workspace_size(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps,
                                     size_t *size);

/*! crnn_rnn_forward() :
 *  Run the whole stack, every layer and direction, in one call.
 *  @param rnn       the handle; every array below has its dtype.
 *  @param batch, timesteps  B >= 0, T >= 1 (B == 0 is a no-op returning CRNN_OK; x may then
 *                   be NULL).
 *  @param x         (B, T, input_size) input, not modified.
 *  @param lengths   NULL (every sequence has T steps) or B values in [0, T]: steps past a
 *                   sequence's length are not computed, their outputs are set to zero and its
 *                   final state is the state after its last valid step (a reverse direction then
 *                   starts at step length-1). Length 0 leaves the initial state.
 *  @param h0        NULL (all initial states zero) or an array of one pointer per
 *                   (layer, direction), ordered like `weights`; each pointer is NULL (zeros) or
 *                   a (B, units_l) array.
 *  @param y         NULL, or (B, T, units_last * directions_last): every output of the last layer.
 *  @param h_n       NULL, or an array of one pointer per (layer, direction), each NULL or a
 *                   (B, units_l) array receiving that final state.
 *  @param workspace NULL (the library allocates and frees it inside this call) or at least
 *                   crnn_rnn_workspace_size() bytes, aligned to 64 bytes for best speed; its
 *                   contents on entry and exit are unspecified. It must be aligned at least
 *                   for the dtype (4 or 8 bytes).
 *  @param workspace_size bytes available at `workspace` (ignored when it is NULL).
 *  Ownership: every pointer is borrowed for the duration of the call only. Inputs (x, lengths,
 *  h0 arrays) must not overlap outputs (y, h_n arrays, workspace): to carry state across calls
 *  (streaming, one step at a time) alternate between two state buffers.
 *  Nothing is allocated inside the time loop; with a caller workspace nothing is allocated at all.
 *  The call may split its batch over crnn_get_num_threads() threads (see below).
 *  @return CRNN_OK, or
 *          CRNN_ERR_NULL_POINTER (rnn, or x when B > 0),
 *          CRNN_ERR_INVALID_ARGUMENT (B < 0, T < 1, a length outside [0, T]),
 *          CRNN_ERR_TOO_LARGE (as crnn_rnn_workspace_size()),
 *          CRNN_ERR_WORKSPACE_TOO_SMALL (workspace_size < crnn_rnn_workspace_size()),
 *          CRNN_ERR_OUT_OF_MEMORY (workspace NULL and its allocation failed).
 *          Arguments are checked before any output is written.
 *  Thread-safe: concurrent calls on one handle are allowed, each with its own workspace and
 *  outputs. */
CRNN_API int crnn_rnn_forward(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps,
                              const void *x, const int64_t *lengths, const void *const *h0,
                              void *y, void *const *h_n, void *workspace, size_t workspace_size);

/*! crnn_rnn_forward2() :
 *  crnn_rnn_forward() with the LSTM cell states (since 0.2): `c0` is NULL (all initial cell
 *  states zero) or an array of one pointer per (layer, direction), ordered like `h0`, each NULL
 *  (zeros) or a (B, units_l) array; `c_n` is NULL or an array of one pointer per (layer,
 *  direction), each NULL or a (B, units_l) array receiving that final cell state. Entries of
 *  layers without a cell state (SimpleRNN, GRU) are ignored. With lengths, a sequence's final
 *  cell state is the one after its last valid step (its initial state for length 0).
 *  Every other parameter, the return values and the thread-safety are crnn_rnn_forward()'s.
 *  crnn_rnn_forward(rnn, B, T, x, lengths, h0, y, h_n, ws, n) is
 *  crnn_rnn_forward2(rnn, B, T, x, lengths, h0, NULL, y, h_n, NULL, ws, n). */
CRNN_API int crnn_rnn_forward2(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps,
                               const void *x, const int64_t *lengths, const void *const *h0,
                               const void *const *c0, void *y, void *const *h_n,
                               void *const *c_n, void *workspace, size_t workspace_size);

/*! crnn_rnn_info() :
 *  Describe a handle: any output pointer may be NULL.
 *  @param rnn             the handle.
 *  @param dtype           receives its dtype.
 *  @param input_size      receives the stack's input size.
 *  @param num_layers      receives the number of layers.
 *  @param layers_out      if not NULL, receives min(num_layers, layers_capacity) descriptors, as
 *                         given to crnn_rnn_create(); entries past that are not written.
 *  @param layers_capacity entries available at `layers_out` (<= 0: none written).
 *  @return CRNN_OK, or CRNN_ERR_NULL_POINTER (rnn is NULL). Thread-safe. */
CRNN_API int crnn_rnn_info(const crnn_rnn_t *rnn, crnn_dtype *dtype, int64_t *input_size,
                           int64_t *num_layers, crnn_layer_desc *layers_out,
                           int64_t layers_capacity);

/*! crnn_rnn_info2() :
 *  crnn_rnn_info() with crnn_layer_desc2 descriptors (cell kinds included; since 0.2).
 *  crnn_rnn_info() on a stack with LSTM or GRU layers fills only their units, activation and
 *  direction. @return CRNN_OK, or CRNN_ERR_NULL_POINTER (rnn is NULL). Thread-safe. */
CRNN_API int crnn_rnn_info2(const crnn_rnn_t *rnn, crnn_dtype *dtype, int64_t *input_size,
                            int64_t *num_layers, crnn_layer_desc2 *layers_out,
                            int64_t layers_capacity);

/*! crnn_dense_forward() :
 *  A dense layer (Keras Dense) on `rows` rows: y = act(x @ kernel + bias) (since 0.2).
 *  @param dtype      element type of every array.
 *  @param rows       R >= 0 (0 is a no-op; x and y may then be NULL).
 *  @param input_size D >= 1; @param units N >= 1.
 *  @param x          (R, D) input, not modified; @param kernel (D, N); @param bias (N) or NULL.
 *  @param activation any crnn_activation.
 *  @param y          (R, N) output, not overlapping the inputs.
 *  One GEMM (or a plain loop for tiny shapes) and one fused bias + activation pass; nothing is
 *  allocated. @return CRNN_OK, CRNN_ERR_NULL_POINTER, CRNN_ERR_INVALID_ARGUMENT (dtype, sizes,
 *  activation), CRNN_ERR_TOO_LARGE (sizes beyond the BLAS's 32-bit integers). Thread-safe. */
CRNN_API int crnn_dense_forward(crnn_dtype dtype, int64_t rows, int64_t input_size,
                                int64_t units, const void *x, const void *kernel,
                                const void *bias, crnn_activation activation, void *y);

/*! crnn_set_num_threads() / crnn_get_num_threads() :
 *  Process-wide number of threads one crnn_rnn_forward() call may use (default 1; the crnn
 *  Python package sets the CPUs available to the process at import). A call with enough work
 *  (~2 Mflop) runs on the caller's thread plus workers of a persistent pool (started on first
 *  use, asleep when idle, restarted after fork()), in one of three ways chosen from the shape,
 *  this setting and the L1 and L2 sizes the OS reports: a batch of >= 8 splits into contiguous
 *  row ranges, one per thread, unless every layer's recurrent weights outgrow L2 and it has few
 *  rows a thread (up to 16 with AVX-512 kernels, 8 with AVX2, 4 with SSE2); those, and a smaller
 *  batch whose layers all have >= 128 units, split each layer's units, the threads meeting after
 *  every step (an all-bidirectional stack runs one direction per thread), and so does batch 1
 *  when every layer's recurrent weights fill 3/2 of L1 (twice L1 for a reset-before GRU), its
 *  input is at most half as wide as it and its units halve evenly; any other small batch with
 *  >= 16 timesteps has a second thread make the input projection just ahead of the recurrence.
 *  The unit-split and pipelined ways use at most as many threads as there are CPUs.
 *  When the pool is busy with another call the caller computes the same pieces alone, so results
 *  are bitwise identical from run to run for a fixed setting. So does it, for a handle's
 *  unit-split and pipelined calls of one batch size, where timing them shows the threads to be
 *  slower than computing alone (cores that pass data slowly, or share one physical core): the
 *  calls time both ways, take the faster and time the other now and then (environment variable
 *  CRNN_ADAPT_THREADS=0: always the threads). A unit split of a batch of >= 8 over weights past
 *  L2 is timed against the row split instead, where that gives the same bits (every layer's
 *  units a multiple of 16 float or 8 double values): which is faster there depends on the
 *  machine. Read once at the start of each call.
 *  @param n threads, >= 1.
 *  @return set: CRNN_OK or CRNN_ERR_INVALID_ARGUMENT (n < 1); get: the current setting.
 *  Thread-safe (calls already running keep the value they read). */
CRNN_API int crnn_set_num_threads(int n);
CRNN_API int crnn_get_num_threads(void);

/*! crnn_set_blas_threads() / crnn_get_blas_threads() :
 *  Threads the BLAS may use inside one BLAS call. The BLAS's own default applies until this is
 *  called; the crnn Python package sets 1 at import, since crnn splits work across its own
 *  threads and callers often run several forwards at once. Affects only the BLAS crnn was built
 *  against (process-wide for that BLAS library).
 *  @param n threads, >= 1.
 *  @return set: CRNN_OK or CRNN_ERR_INVALID_ARGUMENT (n < 1); get: the BLAS's current setting.
 *  Not thread-safe with running forwards: call it before starting them. */
CRNN_API int crnn_set_blas_threads(int n);
CRNN_API int crnn_get_blas_threads(void);

#ifdef __cplusplus
}
#endif
#endif /* CRNN_H */
