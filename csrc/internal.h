/* internal.h - private declarations shared by the core's translation units.
 *
 * The core is organised as oneDNN's src/cpu/rnn is: a *stack* (layers x directions, one call)
 * runs *layers* (one time loop each: one projection GEMM for all timesteps and gates, then per
 * step the recurrent product and the cell's element-wise kernel), and a *cell* (cell_*.h) is the
 * per-step part of one cell kind. A cell kind is a row of crnn__cells (rnn.c) and a file with its
 * step function; the time loop (rnn_template.h) never names a cell kind.
 */
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

#if defined(__GNUC__)
#  define CRNN__ALWAYS_INLINE inline __attribute__((always_inline))
#else
#  define CRNN__ALWAYS_INLINE
#endif

/* Internal cell kinds: the rows of crnn__cells. A GRU is two kinds, by where its reset applies,
 * because the two differ in their recurrent products, not only in their element-wise part. */
typedef enum {
    CRNN__CELL_SIMPLE = 0,
    CRNN__CELL_LSTM = 1,
    CRNN__CELL_GRU = 2,        /* reset after the recurrent product */
    CRNN__CELL_GRU_BEFORE = 3, /* reset before it: (r * h) R_h */
    CRNN__NUM_CELLS = 4
} crnn__cell_kind;

/* What the time loop and the workspace need to know of a cell kind. */
typedef struct {
    int gates;       /* G: gate blocks of the input projection */
    int rec_gates;   /* gate blocks of the first recurrent product (the only one but for
                        GRU_BEFORE, whose second product is (r * h) @ R_h, one gate) */
    int phases;      /* steps meet (units split) between phases: GRU_BEFORE's second product
                        reads r * h of every unit */
    int has_c;       /* carries a cell state c (LSTM) */
    int in_place;    /* the first recurrent product accumulates into the projection rows; else
                        it goes to the scratch rows (GRU: the candidate's part is kept apart) */
    int reads_prev;  /* the element-wise part reads h_{t-1} (GRU: z * h_{t-1}) */
    int gate_order[4]; /* internal block position of each Keras gate (LSTM: i, f, o, c, so the
                          three recurrent-activation gates are contiguous) */
} crnn__cell_info;

extern const crnn__cell_info crnn__cells[CRNN__NUM_CELLS];

/* Weights are stored with each unit's gates together: the columns of a (rows, G*H) matrix are
 * cut into blocks of CRNN__BLOCK_UNITS units (64 bytes of them: 16 float32 / 8 float64; the last
 * block may be shorter), block j holding gate 0 of its units, then gate 1, ... So a slice of
 * units [c0, c1) with c0 on a block boundary is the contiguous columns [G*c0, G*c1) for every
 * gate (the units split computes one product per step for all its gates), and a cell's
 * element-wise part finds a unit's G gates within one block (crnn__block_col). G = 1 is the
 * plain layout. */
#define CRNN__BLOCK_BYTES 64
/* Units per block for elements of `es` bytes: a constant where es is (sizeof(REAL)). */
#define CRNN__BLOCK_UNITS(es) ((int64_t)(CRNN__BLOCK_BYTES / (es)))

/* A gated cell's last block of units, where it is narrower than a block, is gathered from the
 * rows of a step of at least CRNN__TAIL_ROWS rows (cell_lstm.h lstm_post_tail, cell_gru.h
 * gru_post_tail and gru_before_post_tail), at most CRNN__TAIL_VALUES values of a gate at a
 * time (at most 7 KB of stack). */
#define CRNN__TAIL_ROWS 4
#define CRNN__TAIL_VALUES 128
/* Up to this many gathered values a gate, with Keras's activations, the LSTM's tail runs one
 * pass over the values with each unit's gates in registers instead of a pass per operation
 * (lstm_post_tail; the GRU's measured no faster that way). */
#define CRNN__TAIL_FUSED_VALUES 32

/* Before a loop whose arrays never overlap, where the compiler cannot prove it: vectorise it
 * without run-time alias checks (GCC gives up on a loop needing more than 10 of them). */
#if defined(__clang__)
#define CRNN__NO_ALIAS_LOOP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define CRNN__NO_ALIAS_LOOP _Pragma("GCC ivdep")
#else
#define CRNN__NO_ALIAS_LOOP
#endif

/* Column of gate position g, unit u, in a (., G*H) matrix of blocks of `vb` units. */
static inline int64_t crnn__block_col(int64_t G, int64_t H, int64_t vb, int64_t g, int64_t u)
{
    const int64_t j0 = u / vb * vb;
    const int64_t len = H - j0 < vb ? H - j0 : vb;
    return G * j0 + g * len + (u - j0);
}

/* One layer of a handle; offsets are in elements from the start of the weight blob. */
typedef struct {
    crnn__cell_kind kind;
    crnn_cell cell;
    int64_t units;
    int64_t in_size;
    int gates;
    crnn_activation activation;
    crnn_activation recurrent_activation;
    crnn_direction direction;
    int reset_after;
    int ndir;
    int has_bias[2];
    int has_rbias[2];        /* GRU (reset after): a candidate recurrent bias at off_rbias */
    size_t off_kernel[2];    /* (in_size, G*H), blocked */
    size_t off_bias[2];      /* (G*H) blocked: the bias plus the recurrent bias where they add */
    size_t off_rbias[2];     /* (H) */
    size_t off_rec[2][2];    /* recurrent products: [0] (H, rec_gates*H) blocked, [1] GRU_BEFORE's
                                R_h (H, H) */
    size_t off_panels[2][2]; /* the same again as panels (CRNN__PANEL_BYTES); 0: none */
} crnn__layer;

/* The recurrent product runs on a copy of the recurrent kernel packed at create time into
 * panels of 256 bytes of columns (64 float32 or 32 float64): panel p holds columns
 * [p * P, (p + 1) * P) of all K rows, row after row, contiguous and zero-padded past the last
 * column, and one row of zeros follows the last panel (a tile that starts inside a panel loads
 * past the end of its rows). crnn's own kernel (kernels.h: panels_gemm, compiled per
 * instruction set) then streams them with a tile of sums in registers, and never repacks the
 * kernel per step as the BLAS does. Layers of <= 8 units use the plain loop and get no panels. */
#define CRNN__PANEL_BYTES 256
/* ... up to this size of recurrent kernel (4096 float32 units): past it the second copy would
 * cost more memory than the 10-25 % it saves there is worth, and the BLAS takes over. */
#define CRNN__PANELS_MAX_BYTES ((size_t)64 << 20)

/* The units split's slices. Slice k of `nslices` of a layer of H units and G gates (elements of
 * `es` bytes) is the units [edges[k], edges[k + 1]) (crnn__slice_edges). Where H allows, every
 * slice starts on a panel, so that the recurrent product reads whole panels: its first column is
 * G * c0, so that is a multiple of lcm(units per block, panel width / gcd(G, panel width)) units:
 * in float32 16 for an LSTM, 64 for a SimpleRNN or a GRU (half that in float64). Otherwise in
 * whole blocks of units (CRNN__BLOCK_BYTES), so a slice's gates are still contiguous columns
 * (its product starts inside a panel). A batch of one moves an edge onto another block where
 * that balances the slices' reads (crnn__row_edge; not with AVX2's kernels,
 * crnn__row_tiles_alike in cpu.h). Slices may be empty. */
static inline int64_t crnn__slice_align(int64_t H, int64_t G, int nslices, size_t es)
{
    const int64_t pw = CRNN__PANEL_BYTES / (int64_t)es, vb = CRNN__BLOCK_UNITS(es);
    int64_t a = pw, b = G, step, align;
    while (b) { const int64_t r = a % b; a = b; b = r; } /* a = gcd(pw, G) */
    step = pw / a;                                        /* units per panel start */
    align = step > vb ? step : vb;                        /* powers of two: the lcm */
    return H < align * nslices ? vb : align;
}

/* H * k / nslices rounded to the nearest multiple of align (64 / 136 units of 200 would keep one
 * thread waiting for the other on every step; 128 / 72 less so). */
static inline int64_t crnn__slice_edge(int64_t H, int k, int nslices, int64_t align)
{
    const int64_t e = (H * k + nslices * align / 2) / (nslices * align) * align;
    return k == 0 ? 0 : k == nslices ? H : e < H ? e : H;
}

/* The pairs of cache lines (128 bytes, which some CPUs fetch together) of a row of panels that
 * a batch of one's product reads for the units [c0, c1): its columns [G * c0, G * c1), in
 * whole pairs (a batch-1 tile loads only the vectors it keeps, kernels.h). */
static inline int64_t crnn__pairs_read(int64_t G, int64_t c0, int64_t c1, size_t es)
{
    const int64_t pair = 128 / (int64_t)es;
    return c1 <= c0 ? 0 : (G * c1 + pair - 1) / pair - G * c0 / pair;
}

/* A batch of one's edge between the slices [prev, e) and [e, next), from the panel edge `at`: where
 * a multiple of a block within two aligns of it has slices that read fewer pairs of lines at most
 * (a batch-1 step streams its weights: the slice that reads more sets the pace), the one with the
 * fewest at most, then the fewest in all, then the nearest to `at`. Panel edges cut a SimpleRNN of
 * 192 units into 128 and 64 and a GRU of 224 into 128 and 96; 96 / 96 and 112 / 112 read 3 / 3 and
 * 11 / 11 pairs of a row against 4 / 2 and 12 / 9 (Zen 4, 2 threads, against the panel edges in one
 * process: SimpleRNN (1,300,16,192) 1.15x, (1,1000,16,111) 1.18x, GRU (1,100,32,192) 1.27x,
 * (1,100,32,224) 1.09x, (1,50,64,320) 1.12x). Larger batches keep the panel edges: their tiles
 * compute whole panels however few columns they keep (160 / 160 units of a GRU (4,100,64,320) ran
 * 0.93x, 224 / 224 of a SimpleRNN (2,100,64,448) 0.89x). */
static inline int64_t crnn__row_edge(int64_t G, size_t es, int64_t prev, int64_t next,
                                     int64_t at, int64_t align)
{
    const int64_t vb = CRNN__BLOCK_UNITS(es);
    int64_t e = at - 2 * align, best = at, bmax, bsum, a0, b0;
    if (at <= prev || at >= next) return at;
    a0 = crnn__pairs_read(G, prev, at, es);
    b0 = crnn__pairs_read(G, at, next, es);
    bmax = a0 > b0 ? a0 : b0; /* an edge moves only to read fewer pairs at most than here */
    bsum = a0 + b0;
    if (e <= prev) e = (prev + vb) / vb * vb;
    for (; e <= at + 2 * align && e < next; e += vb) {
        const int64_t a = crnn__pairs_read(G, prev, e, es), b = crnn__pairs_read(G, e, next, es);
        const int64_t m = a > b ? a : b, d = e > at ? e - at : at - e;
        const int64_t bd = best > at ? best - at : at - best;
        if (m < bmax || (m == bmax && best != at && (a + b < bsum || (a + b == bsum && d < bd)))) {
            best = e;
            bmax = m;
            bsum = a + b;
        }
    }
    return best;
}

/* edges[0..nslices] of the slices of a layer (one_row: a batch of one whose kernels allow it,
 * crnn__row_edge). */
static inline void crnn__slice_edges(int64_t H, int64_t G, int nslices, size_t es, int one_row,
                                     int64_t *edges)
{
    int64_t align;
    int k;
    edges[0] = 0;
    if (nslices == 1) { /* the whole layer */
        edges[1] = H;
        return;
    }
    align = crnn__slice_align(H, G, nslices, es);
    for (k = 1; k <= nslices; ++k) edges[k] = crnn__slice_edge(H, k, nslices, align);
    if (one_row)
        for (k = 1; k < nslices; ++k)
            edges[k] = crnn__row_edge(G, es, edges[k - 1], edges[k + 1], edges[k], align);
}

/* Under a units split each slice keeps its rows of the per-direction gates and c buffers in a
 * region of its own (rnn_template.h FN(dir_run)): the slices' regions one after the other,
 * slice k's starting at the first cache line past `per_unit` bytes a unit of the units before it
 * plus k gaps of CRNN__SLICE_GAP bytes. Interleaved in shared rows (a slice's columns of each
 * row), the cache line at each slice's edge was written by two threads, and the hardware
 * prefetchers of one core kept pulling the lines beside its own columns, the other thread's,
 * which that thread then wrote again: a batch-1 LSTM step of 128 units split in two took 2.5 us
 * where each half alone took 1.55 (a 2-core AMD EPYC Zen 3), 1.8 with a region each. The gap
 * keeps two slices out of one pair of lines (which an adjacent-line prefetcher fetches
 * together). */
#define CRNN__SLICE_GAP 128
static inline size_t crnn__slice_region(size_t per_unit, int64_t c0, int k)
{
    return (per_unit * (size_t)c0 + 63) / 64 * 64 + (size_t)k * CRNN__SLICE_GAP;
}
/* Bytes the regions of up to `nslices` slices take beyond the buffer's own size. */
#define CRNN__SLICES_SLACK(nslices) (64 + (size_t)(nslices) * CRNN__SLICE_GAP)

struct crnn_rnn_s {
    crnn_dtype dtype;
    size_t elem_size;
    int64_t input_size;
    int64_t num_layers;
    int64_t num_entries;  /* (layer, direction) pairs */
    int64_t max_width;    /* max over layers of units * ndir */
    int64_t max_units;
    int max_ndir;         /* 2 if some layer is bidirectional */
    int64_t max_gates;    /* max over layers with a separate gates buffer (G > 1) of G * units */
    int gated;            /* some layer has G > 1 */
    crnn__layer *layers;
    void *blob;           /* all weights, each matrix 64-byte aligned */
    void *blob_raw;
    char apart[128];      /* keeps the fields above, which every call reads, off pace's lines */
    crnn__pace pace;      /* whether its threads make the calls faster (parallel.h): timing
                             only, the one part a forward call writes, through a cast (the
                             handle is const there); the weights and the results never change */
};

/* Workspace layout: byte offsets of each sub-buffer (oneDNN-style set_offsets). A row range of
 * the batch owns the same rows of every buffer (frames: its rows' share sized for the widest
 * layer), so row ranges run on different threads never touch each other's memory.
 * The per-direction buffers exist twice, so both directions of a layer can run at once. */
typedef struct {
    size_t frames[2]; /* ping-pong (B, T, max_width) layer outputs */
    size_t gates[2];  /* per direction (B, T, max_gates): projections of gated layers */
    size_t hbuf[2][2];/* per direction, two (B, max_units): h_{t-1} / h_t with lengths (GRU:
                         also h_0 = 0) */
    size_t cbuf[2];   /* per direction (B, max_units): the LSTM cell state */
    size_t scratch[2];/* per direction (B, max_gates): recurrent products kept apart (GRU) */
    size_t rh[2];     /* per direction (B, max_units): GRU_BEFORE's r * h_{t-1} */
    size_t flags;     /* (num_entries, chunks) ints: the pipelined projection's chunk states */
    size_t nflags;    /* how many: num_entries * ceil(T / CRNN__PIPE_CHUNK) */
    size_t total;
} crnn__ws_layout;

/* Timesteps per input-projection chunk when the projection is pipelined (see crnn__plan). */
#define CRNN__PIPE_CHUNK 8
/* Timesteps a row block runs at a time, on whichever thread takes it (crnn__blocks). */
#define CRNN__BLOCK_STEPS 8

/* How a forward call spreads over threads: decided once per call (crnn__plan in rnn.c) from the
 * shape and the thread setting only, outside the time loop and the cells. */
typedef enum {
    CRNN__SERIAL,      /* the caller alone */
    CRNN__SPLIT_BATCH, /* contiguous row ranges, one per thread, no synchronisation; or two row
                          blocks a thread that any thread may run a chunk of steps of at a
                          time (crnn__blocks) */
    CRNN__SPLIT_UNITS, /* every thread owns a slice of each layer's units (or, for an
                          all-bidirectional stack, a direction) and they meet every step */
    CRNN__PIPELINE     /* a second thread projects the input ahead of the recurrence */
} crnn__mode;

/* How one thread takes part in a forward call.
 *   mode SPLIT_UNITS: nslices > 1 (or by_direction); with a barrier this thread computes slice
 *                     (direction) `tid`, without one all of them in turn (same bits).
 *   mode PIPELINE:    each layer's input projection is cut into chunks of CRNN__PIPE_CHUNK
 *                     timesteps, each one GEMM whoever runs it. Thread 0 runs the recurrence and
 *                     projects any chunk it reaches before thread 1 has; thread 1 (only with a
 *                     barrier) projects the chunks ahead of it. flags: one per (entry, chunk),
 *                     0 free, 1 being projected, 2 done; zeroed before the call.
 *   mail: set for a batch of one's units split (cleared before the call): the lines its steps
 *         hand h_t over in where they do (FN(hands_over_in_lines) in rnn_template.h: only with
 *         a barrier; a call computed alone never touches them).
 *   blocks: a row split's rows in blocks (crnn__blocks in parallel.h; crnn__row_blocks in
 *         rnn.c), taken a chunk of CRNN__BLOCK_STEPS steps at a time by any thread; NULL: row
 *         ranges, one a thread.
 *   proj_rows, proj_slices: a units split with a row split for a rival (crnn__plan_rival in
 *         rnn.c), which computes the same bits: both cut each layer's input projection into
 *         the same GEMMs, the row split's proj_rows row ranges by the units split's
 *         proj_slices slices (a BLAS's sums can depend on a GEMM's shape). Else 1 and 1. */
typedef struct {
    crnn__mode mode;
    int nslices;
    int by_direction;
    int tid;
    int proj_rows, proj_slices;
    crnn__barrier *barrier;
    int *flags;
    crnn__mailbox *mail;
    crnn__blocks *blocks;
} crnn__par;

/* Arguments of one forward call. */
typedef struct {
    int64_t batch, timesteps;
    const void *x;
    const int64_t *lengths;
    const void *const *h0;
    const void *const *c0;
    void *y;
    void *const *h_n;
    void *const *c_n;
    char *ws;
    const crnn__ws_layout *lay;
} crnn__args;

int crnn__ws_offsets(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps,
                     crnn__ws_layout *lay);

/* Rows [b0, b0 + nb) of a call, as thread `par` takes part in it. */
int crnn__forward_f32(const crnn_rnn_t *rnn, const crnn__args *a, int64_t b0, int64_t nb,
                      const crnn__par *par);
int crnn__forward_f64(const crnn_rnn_t *rnn, const crnn__args *a, int64_t b0, int64_t nb,
                      const crnn__par *par);
/* Thread tid's part in a row split in blocks (par->blocks, crnn__blocks in parallel.h). */
void crnn__forward_blocks_f32(const crnn_rnn_t *rnn, const crnn__args *a, const crnn__par *par,
                              int tid);
void crnn__forward_blocks_f64(const crnn_rnn_t *rnn, const crnn__args *a, const crnn__par *par,
                              int tid);

/* Repack a (rows, G*H) matrix of Keras gate-major columns, rows `ld` elements apart, into
 * blocks (see CRNN__BLOCK_BYTES), Keras gate g to block position order[g]; elements of `es`
 * bytes. */
void crnn__pack_blocked(const void *src, int64_t ld, int64_t rows, int64_t G, int64_t H,
                        const int *order, size_t es, void *dst);

void crnn__dense_f32(int64_t rows, int64_t din, int64_t units, const float *x, const float *kernel,
                     const float *bias, crnn_activation act, float *y);
void crnn__dense_f64(int64_t rows, int64_t din, int64_t units, const double *x,
                     const double *kernel, const double *bias, crnn_activation act, double *y);

/* The plan of a call of this shape at the current thread setting; *nt receives its threads.
 * A function of the shape and the setting only (tests read it to cover every mode). */
crnn__mode crnn__plan(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps, int *nt);
/* The same; *rival receives the threads of a row split that computes the same bits as the
 * planned units split and is timed against it at run time (crnn_rnn_forward2), else 0. */
crnn__mode crnn__plan_rival(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps, int *nt,
                            int *rival);
/* The blocks a call of this shape cuts its rows into where it splits them (crnn__blocks in
 * parallel.h), else 0: none (a serial call, another split, or a row split as one range a
 * thread). */
int crnn__plan_blocks(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps);
/* The handle's timing of its threads (crnn__pace; diagnostics). */
const crnn__pace *crnn__pace_of(const crnn_rnn_t *rnn);

/* 1 if every layer of the stack is bidirectional. */
int crnn__all_bidirectional(const crnn_rnn_t *rnn);

/* Threads for one forward call (set by crnn_set_num_threads). */
int crnn__num_threads(void);

#endif
