/* internal.h - private declarations shared by the core's translation units. */
#ifndef CRNN_INTERNAL_H
#define CRNN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "crnn.h"
#include "parallel.h"

/* Propagate an error status: the one way errors travel inside the core. */
#define CRNN_CHECK(expr)                                                                      \
    do {                                                                                      \
        int crnn__status_ = (expr);                                                           \
        if (crnn__status_ != CRNN_OK) return crnn__status_;                                   \
    } while (0)

#define CRNN__ALIGN 64

/* Elementwise kernels are compiled for several x86-64 levels and picked at load time (GCC
 * function multiversioning); elsewhere they are compiled once for the build's target. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(CRNN_NO_CLONES)
#  define CRNN__CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#  define CRNN__CLONES
#endif

#if defined(__GNUC__)
#  define CRNN__ALWAYS_INLINE inline __attribute__((always_inline))
#else
#  define CRNN__ALWAYS_INLINE
#endif

/* One layer of a handle; offsets are in elements from the start of the weight blob. */
typedef struct {
    int64_t units;
    int64_t in_size;
    crnn_activation activation;
    crnn_direction direction;
    int ndir;
    int has_bias[2];
    size_t off_kernel[2];
    size_t off_recurrent[2];
    size_t off_bias[2];
    size_t off_panels[2]; /* the recurrent kernel again, in panels (CRNN__PANEL_BYTES); 0: none */
} crnn__layer;

/* Batch-1 steps run the recurrent product on a copy of the recurrent kernel packed at create
 * time into panels of 256 bytes of columns (64 float32 or 32 float64): panel p holds columns
 * [p * P, (p + 1) * P) of all K rows, row after row, contiguous and zero-padded past the last
 * column. A product over a range of whole panels then streams one contiguous block with the
 * sums of a panel's columns in registers (rnn_template.h: gemv_panels); 10-20 % faster than
 * the BLAS's GEMV on a whole matrix and about 2x on half of one, as in the units split. Layers
 * of <= 8 units use the plain loop and get no panels. */
#define CRNN__PANEL_BYTES 256
/* ... up to this size of recurrent kernel (4096 float32 units): past it the second copy would
 * cost more memory than the 10-15 % it saves there is worth, and the BLAS's GEMV takes over. */
#define CRNN__PANELS_MAX_BYTES ((size_t)64 << 20)

struct crnn_rnn_s {
    crnn_dtype dtype;
    size_t elem_size;
    int64_t input_size;
    int64_t num_layers;
    int64_t num_entries;  /* (layer, direction) pairs */
    int64_t max_width;    /* max over layers of units * ndir */
    int64_t max_units;
    crnn__layer *layers;
    void *blob;           /* all weights, each matrix 64-byte aligned */
    void *blob_raw;
};

/* Workspace layout: byte offsets of each sub-buffer (oneDNN-style set_offsets). */
typedef struct {
    size_t frames[2]; /* ping-pong (B, T, max_width) layer outputs */
    size_t state;     /* (2, B, max_units) carried state of each direction, lengths path */
    size_t flags;     /* (num_entries, chunks) ints: the pipelined projection's chunk states */
    size_t nflags;    /* how many: num_entries * ceil(T / CRNN__PIPE_CHUNK) */
    size_t total;
} crnn__ws_layout;

/* Timesteps per input-projection chunk when the projection is pipelined (see crnn__plan). */
#define CRNN__PIPE_CHUNK 8

/* How one thread takes part in a forward call (planned by crnn__plan in rnn.c).
 *   units split: nslices > 1; with a barrier this thread computes slice `tid` of every layer,
 *                without one it computes all the slices in turn (same bits).
 *   pipeline:    chunk > 0; each layer's input projection is cut into chunks of `chunk`
 *                timesteps, each one GEMM whoever runs it. Thread 0 runs the recurrence and
 *                projects any chunk it reaches before thread 1 has; thread 1 (only with a
 *                barrier) projects the chunks ahead of it. flags: one per (entry, chunk),
 *                0 free, 1 being projected, 2 done; zeroed before the call. */
typedef struct {
    int nslices;
    int tid;
    crnn__barrier *barrier;
    int64_t chunk;
    int *flags;
} crnn__par;

int crnn__ws_offsets(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps,
                     crnn__ws_layout *lay);

int crnn__forward_f32(const crnn_rnn_t *rnn, int64_t b0, int64_t nb, int64_t batch,
                      int64_t timesteps, const void *x, const int64_t *lengths,
                      const void *const *h0, void *y, void *const *h_n, char *ws,
                      const crnn__ws_layout *lay, const crnn__par *par);
int crnn__forward_f64(const crnn_rnn_t *rnn, int64_t b0, int64_t nb, int64_t batch,
                      int64_t timesteps, const void *x, const int64_t *lengths,
                      const void *const *h0, void *y, void *const *h_n, char *ws,
                      const crnn__ws_layout *lay, const crnn__par *par);

/* How a forward call spreads over threads (rnn.c: crnn__plan). */
typedef enum { CRNN__SERIAL, CRNN__SPLIT_BATCH, CRNN__SPLIT_UNITS, CRNN__PIPELINE } crnn__mode;

/* The plan of a call of this shape at the current thread setting; *nt receives its threads.
 * A function of the shape and the setting only (tests read it to cover every mode). */
crnn__mode crnn__plan(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps, int *nt);

/* 1 if every layer of the stack is bidirectional. */
int crnn__all_bidirectional(const crnn_rnn_t *rnn);

/* Threads for one forward call (set by crnn_set_num_threads). */
int crnn__num_threads(void);

#endif
