/* rnn_template.h - the layer (time loop) and the stack (layers x directions), written once and
 * included twice by rnn_f32.c / rnn_f64.c with REAL, FN(), GEMM, GEMV_T, VTANH, VSIGMOID and
 * VFMA (fma) defined; the kernels (kernels.h, once per instruction set) and the cells
 * (cell_*.h) are included from here.
 *
 * Layer, one direction (oneDNN cell_common.cpp): the input projection of all timesteps and all
 * gates is one GEMM (B*T, D) x (D, G*H) into the gates buffer (SimpleRNN: straight into the
 * output frame); then for each step the cell's step function runs the recurrent product(s) for
 * all its gates and its element-wise part, writing h_t into the output frame. The previous
 * output frame is h_{t-1}: no copies. With per-sequence lengths h_{t-1} lives in two (B, H)
 * buffers instead, so rows that are past their length (or, in reverse, not yet started) keep
 * their state while the others advance. Nothing is allocated here. */

#include "cpu.h"
#include "parallel.h"

/* One step of a cell, for one thread's share: what a cell's step function reads and writes.
 * Rows are the batch rows [0, B) of this call (or of this thread's row range). */
typedef struct {
    const struct FN(kernel_table_s) *kern; /* this process's kernels (kernels.h) */
    int64_t B, H, vb;         /* rows, units, units per block (CRNN__BLOCK_UNITS) */
    const REAL *prev;         /* h_{t-1} rows, natural order; NULL: all zero (step 0, no h0) */
    int64_t ldp;
    REAL *gx;                 /* the step's projection rows (G*H, blocked); SimpleRNN: == out */
    int64_t ldg;
    REAL *out;                /* h_t rows */
    int64_t ldo;
    REAL *c;                  /* (B, H) cell state (LSTM), updated in place, rows ldc apart */
    int64_t ldc;
    REAL *scratch;            /* (B, G*H) products kept apart (GRU), rows lds apart */
    int64_t lds;
    REAL *cand;               /* reset before: the candidate's product, cand + b * lds + j */
    REAL *rh;                 /* (B, H): r * h_{t-1} (GRU, reset before) */
    const REAL *R[2], *P[2];  /* the recurrent matrices of the cell, and their panels or NULL */
    const REAL *bias;         /* (G*H) blocked, or NULL */
    const REAL *rbias;        /* (H): a reset-after GRU's candidate recurrent bias, or NULL */
    crnn_activation act, ract;
    const int64_t *lengths;   /* NULL, or rows with t >= lengths[b] are skipped */
    int64_t t;
} FN(step_args);

/* A row takes part in step t iff t < its length: forward runs 0..len-1 and reverse
 * len-1..0, so the test is the same for both directions. */
#define CRNN__ACTIVE(a, b) (!(a)->lengths || (a)->t < (a)->lengths[b])

/* Start moving `rows` rows of n values (`ld` apart) into this core's cache: values another
 * thread has just written (the pipeline's next frame, the units split's previous state), which
 * cost a cross-core miss per cache line when the product meets them one by one, or rows out of
 * cache that no hardware prefetcher sees coming (panels_gemm's next tile of C). */
static void FN(prefetch_rows)(const REAL *p, int64_t rows, int64_t ld, int64_t n)
{
#if defined(__GNUC__)
    const int64_t line = 64 / (int64_t)sizeof(REAL);
    int64_t r, j;
    for (r = 0; r < rows; ++r)
        for (j = 0; j < n; j += line) __builtin_prefetch(p + r * ld + j, 1, 3);
#else
    (void)p; (void)rows; (void)ld; (void)n;
#endif
}

/* The kernels of each instruction set (kernels.h), and the one this process uses. With FMA
 * (AVX2, AVX-512) a multiply-add is fused (one rounding), as in the BLAS. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(CRNN_NO_CLONES)
#define CRNN__ISA_KERNELS 1
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
#pragma GCC optimize("fp-contract=fast")
#define KFN(name) FN(name##_avx512)
#define KVBYTES 64
#define KMR 6 /* 24 sums + 4 weights + 1 broadcast of AVX-512's 32 vector registers */
#include "kernels_isa.h"
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#pragma GCC optimize("fp-contract=fast")
#define KFN(name) FN(name##_avx2)
#define KVBYTES 32
/* 3 rows of 4 vectors, the weights' loads folded into the multiply-adds (KPIN). Tiles of 6 rows
 * of 2 vectors, every weight in a register, measured 0.89-1.02x at 1 thread on the 2-vCPU
 * Xeon (CRNN_ISA=avx2, whole calls that are mostly the product: SimpleRNN, LSTM and GRU
 * (8-64, 20-50, 16, 128-1024); the same bits). */
#define KMR 3
#include "kernels_isa.h"
#pragma GCC pop_options
#endif
#define KFN(name) FN(name##_base)
#define KVBYTES 16
#define KMR 3
#include "kernels_isa.h"

typedef struct FN(kernel_table_s) {
    void (*activate)(crnn_activation act, REAL *restrict v, const REAL *restrict bias, int64_t n);
    void (*activate_rows)(crnn_activation act, REAL *v, int64_t rows, int64_t ld,
                          const REAL *bias, int64_t n);
    void (*panels_gemm)(int64_t B, int64_t K, int64_t c0, int64_t c1, const REAL *panels,
                        const REAL *A, int64_t lda, REAL *C, int64_t ldc, int accumulate,
                        int backward);
    void (*tiny_gemm)(int64_t rows, int64_t K, int64_t N, const REAL *in, int64_t ldi,
                      const REAL *W, int64_t ldw, REAL *out, int64_t ldo, int accumulate);
    void (*tiny_step)(int64_t rows, int64_t K, int64_t N, const REAL *in, int64_t ldi,
                      const REAL *W, int64_t ldw, REAL *out, int64_t ldo, crnn_activation act,
                      const REAL *bias);
    /* the gated cells' element-wise parts (cell_lstm.h, cell_gru.h) on units [c0, c1) */
    void (*lstm_post)(const FN(step_args) *a, int64_t c0, int64_t c1);
    /* a batch of one's LSTM step on the panels (cell_lstm.h), or NULL (SSE2) */
    void (*lstm_step_row)(const FN(step_args) *a, int64_t c0, int64_t c1);
    void (*gru_post)(const FN(step_args) *a, int64_t c0, int64_t c1);
    void (*gru_before_post)(const FN(step_args) *a, int phase, int64_t c0, int64_t c1);
} FN(kernel_table);

#define CRNN__KERNEL_TABLE(isa, lstm_step_row)                                                 \
    {FN(activate_##isa), FN(activate_rows_##isa), FN(panels_gemm_##isa), FN(tiny_gemm_##isa),   \
     FN(tiny_step_##isa), FN(lstm_post_##isa), lstm_step_row, FN(gru_post_##isa),               \
     FN(gru_before_post_##isa)}
static const FN(kernel_table) FN(kernels_base) = CRNN__KERNEL_TABLE(base, NULL);
#ifdef CRNN__ISA_KERNELS
static const FN(kernel_table) FN(kernels_avx2) =
    CRNN__KERNEL_TABLE(avx2, FN(lstm_step_row_avx2));
static const FN(kernel_table) FN(kernels_avx512) =
    CRNN__KERNEL_TABLE(avx512, FN(lstm_step_row_avx512));
#endif
#undef CRNN__KERNEL_TABLE

static const FN(kernel_table) *FN(kernels)(void)
{
#ifdef CRNN__ISA_KERNELS
    switch (crnn__isa()) {
    case CRNN__ISA_AVX512: return &FN(kernels_avx512);
    case CRNN__ISA_AVX2: return &FN(kernels_avx2);
    default: break;
    }
#endif
    return &FN(kernels_base);
}

/* Whether a product over K inputs runs on crnn's own kernel over these panels (see below). */
static int FN(on_panels)(int64_t K, const REAL *panels)
{
    return K > 8 && panels && crnn__use_panels();
}

/* Per-step recurrent product C(B, N) (+)= A(B, K) @ R(K, N), R's columns starting at column
 * `col0` of its matrix (N of them; a thread may own a slice), rows `ldr` apart; `panels` is the
 * whole matrix as panels, or NULL. Tiny shapes use a plain loop (a BLAS call costs more than
 * the arithmetic there); with panels, crnn's own kernel over them (kernels.h: no per-step
 * repacking of the recurrent kernel); else the BLAS. `backward` (the step's parity) lets the
 * kernel walk its columns in the other order on alternate steps (same sums). */
static void FN(product)(const FN(kernel_table) *kern, int64_t B, int64_t K, int64_t N,
                        const REAL *A, int64_t lda, const REAL *R, int64_t ldr, REAL *C,
                        int64_t ldc, const REAL *panels, int64_t col0, int accumulate,
                        int backward)
{
    if (N <= 0) return;
    if (K <= 8) {
        kern->tiny_gemm(B, K, N, A, lda, R, ldr, C, ldc, accumulate);
    } else if (FN(on_panels)(K, panels)) {
        kern->panels_gemm(B, K, col0, col0 + N, panels, A, lda, C, ldc, accumulate, backward);
    } else if (B == 1) {
        GEMV_T((int)K, (int)N, (REAL)1, R, (int)ldr, A, accumulate ? (REAL)1 : (REAL)0, C);
    } else {
        GEMM((int)B, (int)N, (int)K, (REAL)1, A, (int)lda, R, (int)ldr,
             accumulate ? (REAL)1 : (REAL)0, C, (int)ldc);
    }
}

/* Input projection out[r, :N] = in[r, :] @ K[:, :N] for r < rows; K rows `ldk` apart, out rows
 * `ldo` apart. Split into chunks so that every BLAS integer fits in an int. Up to 16 inputs and
 * 16 columns (a tiny SimpleRNN, LSTM or GRU: G * H <= 16) the plain loop beats a BLAS call
 * (measured: LSTM (8,2,10,3) 2.0 -> 1.4 us a call). */
static void FN(project)(const FN(kernel_table) *kern, int64_t rows, int64_t din, int64_t N,
                        const REAL *in, const REAL *K, int64_t ldk, REAL *out, int64_t ldo)
{
    const int64_t chunk = CRNN__BLAS_INT_MAX;
    int64_t r0;
    if (N <= 0) return;
    if (ldk <= 16 && din <= 16) {
        kern->tiny_gemm(rows, din, N, in, din, K, ldk, out, ldo, 0);
        return;
    }
    for (r0 = 0; r0 < rows; r0 += chunk) {
        int64_t m = rows - r0 < chunk ? rows - r0 : chunk;
        GEMM((int)m, (int)N, (int)din, (REAL)1, in + r0 * din, (int)din, K, (int)ldk, (REAL)0,
             out + r0 * ldo, (int)ldo);
    }
}

static void FN(copy_rows)(int64_t rows, int64_t n, const REAL *src, int64_t lds, REAL *dst,
                          int64_t ldd)
{
    int64_t r;
    for (r = 0; r < rows; ++r) memcpy(dst + r * ldd, src + r * lds, (size_t)n * sizeof(REAL));
}

static void FN(zero_rows)(int64_t rows, int64_t n, REAL *dst, int64_t ldd)
{
    int64_t r;
    for (r = 0; r < rows; ++r) memset(dst + r * ldd, 0, (size_t)n * sizeof(REAL));
}


#include "cell_simple.h"
#include "cell_lstm.h"
#include "cell_gru.h"

/* The cells' step functions, by internal cell kind (crnn__cells in rnn.c): one signature, the
 * unit slice [c0, c1) of phase `phase` of a step. */
typedef void (*FN(step_fn))(const FN(step_args) *a, int phase, int64_t c0, int64_t c1);
static const FN(step_fn) FN(cell_steps)[CRNN__NUM_CELLS] = {
    [CRNN__CELL_SIMPLE] = FN(step_simple),
    [CRNN__CELL_LSTM] = FN(step_lstm),
    [CRNN__CELL_GRU] = FN(step_gru),
    [CRNN__CELL_GRU_BEFORE] = FN(step_gru_before),
};

/* The input projection of units [c0, c1) (G * (c1 - c0) columns of K, whose rows are G * H
 * apart) for B rows of T steps, din inputs each, into g0 (g0 + r * ldgt + G * j: step row r,
 * unit j), cut into `ranges` row ranges (as crnn__task cuts a batch) by the slices that meet
 * [c0, c1) of those edges[0..nslices] (NULL: the units split's of nslices, crnn__slice_edges):
 * one GEMM each. A units split and its row-split rival (crnn__par: proj_rows, proj_slices) make
 * the same GEMMs. Not inlined: once a layer, kept out of the time loop's function.
 * A row split projects each thread's rows. Cut by columns instead (every thread all rows, its
 * share of the columns, then the row ranges): OpenBLAS packs only that share of the weights, and
 * the GEMM alone ran 1.17-1.23x as fast (NumPy's OpenBLAS, one thread, the projections of
 * (12,25,300,176) and (6,30,300,300)); but a single-layer LSTM or GRU cut so measured 0.83-0.99x
 * on whole calls in one process (2 threads, 2-vCPU Xeon): GRU (12,25,300,176) 0.83-0.90x, LSTM
 * 0.98-0.99x, LSTM (16,50,128,128) 0.93x, GRU (48,35,64,320) 0.96x, LSTM (8,20,300,128) 0.99x.
 * Each thread then reads half of its rows' gates from the other core's cache, and the call
 * forks twice. */
static __attribute__((noinline)) void FN(project_units)(
    const FN(kernel_table) *kern, int64_t B, int64_t T, int64_t din, int64_t H, int64_t G,
    const REAL *in, const REAL *K, REAL *g0, int64_t ldgt, int64_t c0, int64_t c1, int ranges,
    int nslices, const int64_t *edges)
{
    int64_t cut[CRNN__MAX_THREADS + 1];
    int i, j;
    if (!edges) {
        crnn__slice_edges(H, G, nslices, sizeof(REAL), 0, cut);
        edges = cut;
    }
    for (i = 0; i < ranges; ++i) {
        const int64_t b0 = B * i / ranges, b1 = B * (i + 1) / ranges;
        for (j = 0; j < nslices; ++j) {
            const int64_t e0 = edges[j] > c0 ? edges[j] : c0;
            const int64_t e1 = edges[j + 1] < c1 ? edges[j + 1] : c1;
            if (e1 > e0)
                FN(project)(kern, (b1 - b0) * T, din, G * (e1 - e0), in + b0 * T * din,
                            K + G * e0, G * H, g0 + b0 * T * ldgt + G * e0, ldgt);
        }
    }
}

/* Pipelined projection, chunk `j` of one direction: timesteps [j * S, (j + 1) * S) in processing
 * order (from the end when reversed), one GEMM per batch row, however many threads there are. */
static void FN(project_chunk)(const FN(kernel_table) *kern, const crnn__layer *L, int64_t B,
                              int64_t T, int reverse, const REAL *in, const REAL *K, REAL *dst,
                              int64_t ldt, int64_t S, int64_t j)
{
    const int64_t s1 = (j + 1) * S < T ? (j + 1) * S : T;
    const int64_t t0 = reverse ? T - s1 : j * S;
    const int64_t GH = L->gates * L->units;
    int64_t b;
    for (b = 0; b < B; ++b)
        FN(project)(kern, s1 - j * S, L->in_size, GH, in + (b * T + t0) * L->in_size, K, GH,
                    dst + (b * T + t0) * ldt, ldt);
}

/* This thread's rows of the per-direction buffers (see crnn__ws_layout). */
typedef struct {
    REAL *gates, *h[2], *c, *scratch, *rh;
} FN(dir_buffers);

/* Slice k's view of a direction's gates, c and scratch buffers (rows of its units [c0, c1)). */
typedef struct {
    REAL *g0;      /* g0 + t * ldgt + b * T * ldgt + G * j: unit j's first gate, row b, step t */
    int64_t ldgt;
    REAL *c;       /* c + b * ldc + j: unit j's c, row b */
    int64_t ldc;
    REAL *scratch; /* scratch + b * lds + rec_gates * j: unit j's first product, row b (GRU) */
    int64_t lds;
    REAL *cand;    /* cand + b * lds + j: unit j's candidate product (GRU, reset before) */
} FN(slice_view);

/* Where `regions` (a units split of a gated cell) the slice's own region of each buffer
 * (crnn__slice_region): its rows G * (c1 - c0) (gates, scratch) or c1 - c0 (c) apart, the
 * reset-before candidate's products after the slice's z and r; else the rows all slices share,
 * GH and H apart. */
static FN(slice_view) FN(slice_buffers)(const FN(dir_buffers) *buf, int regions, int64_t B,
                                        int64_t T, const crnn__cell_info *ci, int64_t H, int k,
                                        int64_t c0, int64_t c1)
{
    FN(slice_view) v;
    const int64_t w = c1 - c0, G = ci->gates;
    REAL *s;
    if (!regions) {
        v.g0 = buf->gates;
        v.ldgt = G * H;
        v.c = buf->c;
        v.ldc = H;
        v.scratch = buf->scratch;
        v.lds = G * H;
        v.cand = buf->scratch + ci->rec_gates * H;
        return v;
    }
    /* each pointer at or after its buffer's start: a region starts at least c0 units in */
    v.g0 = (REAL *)((char *)buf->gates +
                    crnn__slice_region((size_t)(B * T * G) * sizeof(REAL), c0, k)) - G * c0;
    v.ldgt = G * w;
    v.c = (REAL *)((char *)buf->c + crnn__slice_region((size_t)B * sizeof(REAL), c0, k)) - c0;
    v.ldc = w;
    s = (REAL *)((char *)buf->scratch + crnn__slice_region((size_t)(B * G) * sizeof(REAL), c0, k));
    /* the first product's rec_gates values a unit (a reset-before GRU's z and r: 2), from the
     * region's start; the candidate's after them */
    v.scratch = s - ci->rec_gates * c0;
    v.lds = G * w;
    v.cand = s + ci->rec_gates * w - c0;
    return v;
}

/* Point a step's c and scratch at a slice view's. */
static void FN(use_slice)(FN(step_args) *a, const FN(slice_view) *v)
{
    a->c = v->c;
    a->ldc = v->ldc;
    a->scratch = v->scratch;
    a->lds = v->lds;
    a->cand = v->cand;
}

/* Whether a batch of one's units split ends its steps by handing h_t over in tagged lines
 * (crnn__mailbox) instead of at a barrier: where each thread's slice of the recurrent weights fits
 * its L1, a step short enough that the hand-off is much of it, or, between two threads, where each
 * slice takes at most CRNN__MAIL_LINES_PAST_L1 lines; and a cell that meets once a step. Zen 4, 2
 * threads, in one process, calls interleaved (the same bits), where a cache line crossed in about
 * 50 ns: LSTM (1,1000,32,64) 1.06-1.07x, (1,100,16,64) 1.06x, GRU (1,1000,32,64) 1.01-1.04x,
 * (1,100,16,64) 1.06x; SimpleRNN's slices of 64 units (five lines where the LSTM's and GRU's of 32
 * take three) 0.96-1.05x: (1,50,64,128) 0.98-1.05x, (1,100,16,112) 1.02x, (1,300,16,128) and
 * (1,1000,16,128) 0.96-1.05x. Where it took 170 ns, 1.10-1.26x. With slices past L1 it measured
 * 0.97-1.00x (LSTM (1,50,64,128) and (1,100,128,256), GRU (1,50,64,128)): a long step, and more
 * lines to its slice. On the 2-vCPU Xeon (a line crosses in 71-141 ns), slices past L1, in one
 * process, calls interleaved (the same bits): slices of at most 5 lines 1.00-1.16x, LSTM
 * (1,100,16,96) 1.16x and 1.05x (two runs), (1,100,16,128) 1.15x and 1.04x, (1,50,64,128) 1.04x
 * and 1.05x, (1,100,128,128) 1.05x, (1,100,16,80) 1.05x, (1,300,32,128) 1.01x, (1,1000,32,128)
 * 1.01x, GRU (1,100,16,128) 1.07x, (1,50,64,128) 1.07x, (1,100,16,112) 1.07x, float64 LSTM
 * (1,100,16,64) 1.01x; slices of more 0.95-1.03x: SimpleRNN (1,100,16,160) 0.97x, float64
 * (1,100,16,128) 0.95x, LSTM (1,100,32,140) 0.99x, (1,100,16,160) 1.01x, (1,100,16,192) 1.03x,
 * (1,100,128,256) 0.99x, float64 (1,100,16,128) 0.99x. Past L1 with at most 5 lines a slice, by
 * the edges crnn__slice_edges sets with AVX-512: float32 LSTMs of 74-134 units and GRUs of
 * 86-134, float64 LSTMs of 53-67 and GRUs of 65-67. (Not measured with more than two threads,
 * whose hand-off waits on the lines of each of the others.) Waiting on a slice's first line and
 * then prefetching the others measured the same as line by line. */
#define CRNN__MAIL_LINES_PAST_L1 5
static int FN(hands_over_in_lines)(const crnn__par *par, const crnn__cell_info *ci, int64_t B,
                                   int64_t H, int nslices, const int64_t *edges,
                                   const int64_t *lengths)
{
    const double l1 = (double)crnn__l1_bytes();
    const int64_t per = CRNN__MAIL_VALUES(sizeof(REAL));
    int k;
    if (!par->mail || B != 1 || lengths || ci->phases != 1 || nslices < 2 ||
        nslices > CRNN__MAIL_THREADS)
        return 0;
    for (k = 0; k < nslices; ++k) { /* every slice posts at every step: none empty */
        const int64_t w = edges[k + 1] - edges[k];
        if (w <= 0 || w > CRNN__MAIL_LINES * per) return 0;
        if ((double)ci->gates * (double)H * (double)w * (double)sizeof(REAL) > l1 &&
            (nslices > 2 || (w + per - 1) / per > CRNN__MAIL_LINES_PAST_L1))
            return 0;
    }
    return 1;
}

/* The values of line l of a slice of `width` units in the hand-off's lines. */
static inline int64_t FN(line_values)(int64_t width, int64_t l)
{
    const int64_t per = CRNN__MAIL_VALUES(sizeof(REAL)), left = width - l * per;
    return left < per ? left : per;
}

/* Step s's hand-off in lines: this thread posts its slice [edges[me], edges[me + 1]) of h_t
 * (out), then gathers every slice into `hp` (h_t whole, for the next step's product). */
static void FN(hand_over)(crnn__mailbox *m, crnn__barrier *b, int me, int nslices,
                          const int64_t *edges, const REAL *out, REAL *hp, long long tag,
                          int64_t s)
{
    const int64_t per = CRNN__MAIL_VALUES(sizeof(REAL)), mine = edges[me + 1] - edges[me];
    crnn__waiter w = {0, 0, 0};
    int64_t l;
    int k;
    for (l = 0; l * per < mine; ++l)
        crnn__mail_post(crnn__mail_line(m, me, s, l), out + edges[me] + l * per,
                        (size_t)FN(line_values)(mine, l) * sizeof(REAL), tag);
    memcpy(hp + edges[me], out + edges[me], (size_t)mine * sizeof(REAL));
    for (k = 0; k < nslices; ++k) {
        const int64_t width = edges[k + 1] - edges[k];
        for (l = 0; k != me && l * per < width; ++l)
            crnn__mail_take(&w, crnn__mail_line(m, k, s, l), tag, hp + edges[k] + l * per,
                            (size_t)FN(line_values)(width, l) * sizeof(REAL));
    }
    crnn__mail_stall(b, me, &w);
}

/* One layer, one direction of B rows (a thread's, or a row block's: crnn__blocks): what its time
 * loop reads and where it stands, so that it can run in parts (FN(dir_begin): the projection and
 * the initial states; FN(dir_steps): steps up to some step; FN(dir_end): the final states), as a
 * row split's blocks do, a few steps at a time on whichever thread takes them
 * (FN(crnn__forward_blocks)). `out` points at this direction's first column of a (B, T, W) buffer;
 * `h0` / `c0in` / `hn` / `cn` are (B, H) or NULL; `flags` are this direction's chunk flags
 * (pipeline only); `hp` room for h_t whole where a units split hands it over in lines. Units split
 * (SPLIT_UNITS, nslices > 1): the hidden units are cut into slices, each computed by its own
 * products; with a barrier this thread computes slice `tid` and meets the threads owning the others
 * after each step (the next step reads every unit of this one: at the barrier, or handing h_t over
 * in tagged lines, FN(hands_over_in_lines)) and between a cell's phases; without one it computes
 * every slice in turn, which gives bitwise the same result. Pipeline: the input projection is made
 * chunk by chunk just ahead of the steps that read it, by thread 1 if it gets there first, else by
 * thread 0 when it reaches the chunk. */
typedef struct {
    const crnn_rnn_t *rnn;
    const crnn__layer *L;
    int d;
    int64_t B, T, W;
    const REAL *in;
    REAL *out;
    const int64_t *lengths;
    const REAL *h0, *c0in;
    REAL *hn, *cn;
    FN(dir_buffers) buf;
    const crnn__par *par;
    int *flags;
    REAL *hp;
    int mail;        /* whether the steps hand h_t over in lines (FN(hands_over_in_lines)) */
    int64_t s;       /* the next step, in processing order */
    FN(step_args) a; /* the steps' arguments, h_{t-1} carried from one step to the next */
} FN(dir_run);

/* What a direction's parts derive alike from its run. */
typedef struct {
    const crnn__cell_info *ci;
    int64_t H, G, GH;
    const REAL *K;
    int reverse;
    int64_t S; /* the pipeline's chunk; 0: no pipeline */
    int split, nslices, lo, hi, regions;
    /* the units split's per-step barrier; the pipeline meets only per chunk */
    crnn__barrier *barrier;
    /* the projection's rows: the output frame (G = 1) or the gates buffer, a region a slice
     * where the units split (FN(slice_buffers)) */
    REAL *gx;
    int64_t ldgt; /* between timesteps */
    int64_t ldgb; /* between batch rows */
    int64_t ldo;
    int64_t edges[CRNN__MAX_THREADS + 1]; /* slice k: the units [edges[k], edges[k + 1]) */
} FN(dir_plan);

static void FN(plan_dir)(const FN(dir_run) *r, FN(dir_plan) *p)
{
    const crnn__layer *L = r->L;
    const crnn__par *par = r->par;
    p->ci = &crnn__cells[L->kind];
    p->H = L->units;
    p->G = L->gates;
    p->GH = p->G * p->H;
    p->K = (const REAL *)r->rnn->blob + L->off_kernel[r->d];
    p->reverse = L->direction == CRNN_DIRECTION_REVERSE || r->d == 1;
    p->S = par->mode == CRNN__PIPELINE ? CRNN__PIPE_CHUNK : 0;
    p->split = par->mode == CRNN__SPLIT_UNITS && !par->by_direction;
    p->nslices = p->split ? par->nslices : 1;
    p->barrier = p->split ? par->barrier : NULL;
    p->lo = p->barrier ? par->tid : 0;
    p->hi = p->barrier ? par->tid + 1 : p->nslices;
    p->regions = p->nslices > 1 && p->G > 1;
    p->gx = p->G == 1 ? r->out : r->buf.gates;
    p->ldgt = p->G == 1 ? r->W : p->GH;
    p->ldgb = r->T * p->ldgt;
    p->ldo = r->T * r->W;
    crnn__slice_edges(p->H, p->G, p->nslices, sizeof(REAL), r->B == 1 && crnn__row_tiles_alike(),
                      p->edges);
}

/* The projection (all of it, or the pipeline's projecting thread's chunks) and the initial
 * states. @return 0 where this thread has nothing more to do in this direction (the pipeline's
 * projecting thread), else 1. */
static int FN(dir_begin)(FN(dir_run) *r)
{
    const crnn__par *par = r->par;
    const crnn__layer *L = r->L;
    const FN(kernel_table) *const kern = FN(kernels)();
    const REAL *blob = (const REAL *)r->rnn->blob;
    const int64_t B = r->B, T = r->T;
    FN(step_args) *const a = &r->a;
    FN(dir_plan) p;
    FN(slice_view) v;
    int64_t c0, c1;
    int k;

    FN(plan_dir)(r, &p);
    r->mail = p.barrier && FN(hands_over_in_lines)(par, p.ci, B, p.H, p.nslices, p.edges,
                                                   r->lengths);
    r->s = 0;
    if (p.S) {
        if (par->barrier && par->tid == 1) { /* the projecting thread */
            int64_t j;
            for (j = 0; j * p.S < T; ++j)
                if (crnn__flag_claim(&r->flags[j])) {
                    FN(project_chunk)(kern, L, B, T, p.reverse, r->in, p.K, p.gx, p.ldgt, p.S, j);
                    crnn__flag_done(&r->flags[j]);
                }
            return 0;
        }
    } else {
        for (k = p.lo; k < p.hi; ++k) {
            c0 = p.edges[k], c1 = p.edges[k + 1];
            v = FN(slice_buffers)(&r->buf, p.regions, B, T, p.ci, p.H, k, c0, c1);
            if (p.G == 1) v.g0 = p.gx, v.ldgt = p.ldgt;
            /* where a units split has a row-split rival, each slice in the rival's row ranges,
             * and the rival's rows in the split's slices (crnn__par) */
            if (p.split)
                FN(project_units)(kern, B, T, L->in_size, p.H, p.G, r->in, p.K, v.g0, v.ldgt, c0,
                                  c1, par->proj_rows, p.nslices, p.edges);
            else
                FN(project_units)(kern, B, T, L->in_size, p.H, p.G, r->in, p.K, v.g0, v.ldgt, c0,
                                  c1, 1, par->proj_slices, NULL);
        }
    }

    a->kern = kern;
    a->B = B;
    a->H = p.H;
    a->vb = CRNN__BLOCK_UNITS(sizeof(REAL));
    a->ldg = p.ldgb;
    a->ldo = p.ldo;
    v = FN(slice_buffers)(&r->buf, 0, B, T, p.ci, p.H, 0, 0, p.H);
    FN(use_slice)(a, &v);
    a->rh = r->buf.rh;
    for (k = 0; k < 2; ++k) {
        a->R[k] = L->off_rec[r->d][k] || k == 0 ? blob + L->off_rec[r->d][k] : NULL;
        a->P[k] = L->off_panels[r->d][k] ? blob + L->off_panels[r->d][k] : NULL;
    }
    a->bias = L->has_bias[r->d] ? blob + L->off_bias[r->d] : NULL;
    a->rbias = L->has_rbias[r->d] ? blob + L->off_rbias[r->d] : NULL;
    a->act = L->activation;
    a->ract = L->recurrent_activation;
    a->lengths = r->lengths;

    /* Initial states, each thread its slice: with lengths h_{t-1} lives in buf.h[]. */
    a->prev = r->h0;
    a->ldp = p.H;
    for (k = p.lo; k < p.hi; ++k) {
        c0 = p.edges[k], c1 = p.edges[k + 1];
        if (r->lengths) {
            if (r->h0) FN(copy_rows)(B, c1 - c0, r->h0 + c0, p.H, r->buf.h[0] + c0, p.H);
            else FN(zero_rows)(B, c1 - c0, r->buf.h[0] + c0, p.H);
        }
        if (p.ci->has_c) {
            v = FN(slice_buffers)(&r->buf, p.regions, B, T, p.ci, p.H, k, c0, c1);
            if (r->c0in) FN(copy_rows)(B, c1 - c0, r->c0in + c0, p.H, v.c + c0, v.ldc);
            else FN(zero_rows)(B, c1 - c0, v.c + c0, v.ldc);
        }
    }
    if (r->lengths) {
        a->prev = r->h0 ? r->buf.h[0] : NULL;
        if (p.barrier) crnn__barrier_wait(p.barrier, par->tid);
    }
    return 1;
}

/* Steps r->s .. end - 1 (in processing order: from the last timestep when reversed). */
static void FN(dir_steps)(FN(dir_run) *r, int64_t end)
{
    const crnn__par *par = r->par;
    const crnn__layer *L = r->L;
    const FN(step_fn) step = FN(cell_steps)[L->kind];
    const int64_t B = r->B, T = r->T, H = L->units;
    const int64_t *const lengths = r->lengths;
    REAL *const out = r->out, *const hp = r->hp;
    const int64_t W = r->W;
    const int mail = r->mail;
    FN(step_args) *const a = &r->a;
    FN(dir_plan) p;
    FN(slice_view) v;
    int64_t s, c0, c1;
    int k, phase;

    FN(plan_dir)(r, &p);
    for (s = r->s; s < end; ++s) {
        const int64_t t = p.reverse ? T - 1 - s : s;
        if (p.S && s % p.S == 0) {
            int *f = &r->flags[s / p.S];
            if (crnn__flag_claim(f)) {
                FN(project_chunk)(a->kern, L, B, T, p.reverse, r->in, p.K, p.gx, p.ldgt, p.S,
                                  s / p.S);
                crnn__flag_done(f);
            } else {
                crnn__flag_wait(par->barrier, par->tid, f);
            }
        }
        a->t = t;
        a->gx = p.gx + t * p.ldgt;
        a->out = out + t * W;
        if (p.S && s + 1 < T)
            FN(prefetch_rows)(a->gx + (p.reverse ? -p.ldgt : p.ldgt), B, p.ldgb, p.GH);
        /* units split: part of prev was written by the other threads; fetch it all at once
         * rather than miss on it line by line inside the product (4 % at B=1, H=256) */
        if (p.barrier && a->prev) FN(prefetch_rows)(a->prev, B, a->ldp, H);
        for (phase = 0; phase < p.ci->phases; ++phase) {
            int i;
            if (phase && p.barrier) crnn__barrier_wait(p.barrier, par->tid);
            for (i = p.lo; i < p.hi; ++i) {
                /* one thread computing every slice (no barrier) takes them last to first on
                 * odd steps, the steps on which its kernels walk their columns backward where
                 * they do (panels_gemm, row_back), so that the step starts on the weights the
                 * step before read last, as one slice's does: SimpleRNN (1,1000,16,128) 1.15x,
                 * GRU (1,1000,8,64) 1.12x (Zen 4) */
                k = (t & 1) ? p.hi - 1 - (i - p.lo) : i;
                c0 = p.edges[k], c1 = p.edges[k + 1];
                if (c1 <= c0) continue;
                if (p.regions) {
                    v = FN(slice_buffers)(&r->buf, 1, B, T, p.ci, H, k, c0, c1);
                    a->gx = v.g0 + t * v.ldgt;
                    a->ldg = T * v.ldgt;
                    FN(use_slice)(a, &v);
                }
                step(a, phase, c0, c1);
            }
        }
        if (lengths) {
            /* h_t of the rows inside their sequence; the others keep h_{t-1} and output 0 */
            const REAL *pv = r->buf.h[s & 1];
            REAL *next = r->buf.h[(s + 1) & 1];
            int64_t b;
            for (k = p.lo; k < p.hi; ++k) {
                c0 = p.edges[k], c1 = p.edges[k + 1];
                for (b = 0; b < B; ++b) {
                    REAL *row = a->out + b * p.ldo + c0;
                    if (t < lengths[b]) {
                        memcpy(next + b * H + c0, row, (size_t)(c1 - c0) * sizeof(REAL));
                    } else {
                        memcpy(next + b * H + c0, pv + b * H + c0, (size_t)(c1 - c0) * sizeof(REAL));
                        memset(row, 0, (size_t)(c1 - c0) * sizeof(REAL));
                    }
                }
            }
            a->prev = next;
            a->ldp = H;
        } else if (mail && s + 1 < T) {
            /* the last step's h_T is not handed over: hn takes this thread's slice only */
            FN(hand_over)(par->mail, p.barrier, par->tid, p.nslices, p.edges, a->out, hp,
                          crnn__mail_tag(L - r->rnn->layers, r->d, s), s);
            a->prev = hp;
            a->ldp = H;
        } else {
            a->prev = a->out;
            a->ldp = p.ldo;
        }
        /* Everyone has read all of h_{t-1} before anyone writes h_{t+1} over it (handing over
         * in lines, each thread copies the others' lines into its own hp, and two sets of lines
         * a thread keep step t + 2's from overwriting step t's too early: crnn__mailbox).
         * A batch of one whose thread 0 began each step on its own slice of h_{t-1} without
         * waiting here (the product in two parts of k, the same sums; the others waiting for
         * thread 0's slice only) measured 0.92-1.01x against this barrier on the 2-vCPU Xeon,
         * in one process, calls interleaved: SimpleRNN 256 and 512 units, LSTM 128 and 256, GRU
         * 128 and 256. The parts lose the backward walk's L1 reuse (row_back), and the others
         * still wait for thread 0's slice at the start of every step. With no barrier at all
         * (wrong results: a bound on what any meeting could save, the same Xeon, D = 16, T =
         * 100, calls interleaved) LSTM 256 units ran 1.05x, GRU 256 1.06x, SimpleRNN 256 1.32x
         * as fast as with it. */
        if (p.barrier && !mail) crnn__barrier_wait(p.barrier, par->tid);
    }
    r->s = end;
}

/* The final states, once every step has run. */
static void FN(dir_end)(FN(dir_run) *r)
{
    const FN(step_args) *const a = &r->a;
    FN(dir_plan) p;
    FN(slice_view) v;
    int64_t c0, c1;
    int k;
    FN(plan_dir)(r, &p);
    for (k = p.lo; k < p.hi; ++k) {
        c0 = p.edges[k], c1 = p.edges[k + 1];
        if (r->hn) FN(copy_rows)(r->B, c1 - c0, a->prev + c0, a->ldp, r->hn + c0, p.H);
        if (r->cn && p.ci->has_c) {
            v = FN(slice_buffers)(&r->buf, p.regions, r->B, r->T, p.ci, p.H, k, c0, c1);
            FN(copy_rows)(r->B, c1 - c0, v.c + c0, v.ldc, r->cn + c0, p.H);
        }
    }
    /* The next layer reuses the state buffers with its own layout: nobody starts it (and
     * writes its initial states there) while another thread still copies this one's out. */
    if (p.barrier) crnn__barrier_wait(p.barrier, r->par->tid);
}

/* This thread's block of a buffer of `per_row` elements per batch row, at byte offset `off`. */
static REAL *FN(rows_of)(char *ws, size_t off, int64_t b0, int64_t per_row)
{
    return (REAL *)(ws + off) + b0 * per_row;
}

/* Rows [b0, b0 + nb) of the batch on their way through the stack: the layer, direction and
 * entry (of h0, c0, h_n, c_n) they are at, and that direction's run where it has begun.
 * Every buffer is cut into row blocks: in y, this range's rows; in each workspace buffer, the
 * range's share sized for the widest layer, in which each layer's rows are dense. Blocks of two
 * row ranges are disjoint whatever the layers' widths, so rows that run ahead into layer l + 2
 * (reusing layer l's frame) never write where other rows still read layer l. */
typedef struct {
    int64_t b0, nb;
    int64_t l, d, e;
    int begun;
    FN(dir_run) run;
} FN(rows_run);

/* The output frame of layer l for rows from b0 on. */
static REAL *FN(layer_out)(const crnn_rnn_t *rnn, const crnn__args *a, int64_t l, int64_t b0)
{
    const int64_t T = a->timesteps, W = rnn->layers[l].units * rnn->layers[l].ndir;
    if (l == rnn->num_layers - 1 && a->y) return (REAL *)a->y + b0 * T * W;
    return FN(rows_of)(a->ws, a->lay->frames[l % 2], b0, T * rnn->max_width);
}

static void FN(rows_start)(FN(rows_run) *c, int64_t b0, int64_t nb)
{
    c->b0 = b0;
    c->nb = nb;
    c->l = c->d = c->e = 0;
    c->begun = 0;
}

/* Direction c->d of layer c->l, for c's rows: set up its run. */
static void FN(rows_direction)(FN(rows_run) *c, const crnn_rnn_t *rnn, const crnn__args *a,
                               const crnn__par *par)
{
    const crnn__ws_layout *lay = a->lay;
    const crnn__layer *L = &rnn->layers[c->l];
    const int64_t T = a->timesteps, H = L->units, b0 = c->b0, e = c->e;
    const int64_t nchunks = par->flags ? (T + CRNN__PIPE_CHUNK - 1) / CRNN__PIPE_CHUNK : 0;
    const int d = (int)c->d;
    FN(dir_run) *r = &c->run;
    r->rnn = rnn;
    r->L = L;
    r->d = d;
    r->B = c->nb;
    r->T = T;
    r->W = H * L->ndir;
    r->in = c->l == 0 ? (const REAL *)a->x + b0 * T * rnn->input_size
                      : FN(layer_out)(rnn, a, c->l - 1, b0);
    r->out = FN(layer_out)(rnn, a, c->l, b0) + d * H;
    r->lengths = a->lengths ? a->lengths + b0 : NULL;
    r->h0 = a->h0 && a->h0[e] ? (const REAL *)a->h0[e] + b0 * H : NULL;
    r->c0in = a->c0 && a->c0[e] ? (const REAL *)a->c0[e] + b0 * H : NULL;
    r->hn = a->h_n && a->h_n[e] ? (REAL *)a->h_n[e] + b0 * H : NULL;
    r->cn = a->c_n && a->c_n[e] ? (REAL *)a->c_n[e] + b0 * H : NULL;
    r->buf.gates = FN(rows_of)(a->ws, lay->gates[d], b0, T * rnn->max_gates);
    r->buf.h[0] = FN(rows_of)(a->ws, lay->hbuf[d][0], b0, rnn->max_units);
    r->buf.h[1] = FN(rows_of)(a->ws, lay->hbuf[d][1], b0, rnn->max_units);
    r->buf.c = FN(rows_of)(a->ws, lay->cbuf[d], b0, rnn->max_units);
    r->buf.scratch = FN(rows_of)(a->ws, lay->scratch[d], b0, rnn->max_gates);
    r->buf.rh = FN(rows_of)(a->ws, lay->rh[d], b0, rnn->max_units);
    r->par = par;
    r->flags = par->flags ? par->flags + e * nchunks : NULL;
}

/* Take c's rows further through the stack: up to `chunk` steps of one direction (a direction's
 * projection and initial states come with its first chunk, its final states with its last), or
 * to the end where chunk <= 0. `hp`: room for h_t whole (the units split's hand-off in lines;
 * NULL where there is none). @return 1 once the rows went through every layer. */
static int FN(rows_advance)(FN(rows_run) *c, const crnn_rnn_t *rnn, const crnn__args *a,
                            const crnn__par *par, int64_t chunk, REAL *hp)
{
    int ran = 0; /* whether this call has run steps (a chunk ends before the next direction) */
    /* this thread's part and room (a block's direction begun on another thread, whose par and
     * stack are its own, goes on here) */
    c->run.par = par;
    c->run.hp = hp;
    while (c->l < rnn->num_layers) {
        const crnn__layer *L = &rnn->layers[c->l];
        FN(dir_run) *r = &c->run;
        if (c->d == L->ndir) {
            /* The next layer reads every unit of this one. The pipeline's projecting thread
             * waits for the recurrence to finish it (and is done after the last layer: the
             * caller waits for it to finish, and a thread that waits may lose its core); the
             * recurrence never waits for that thread, which has nothing left to do in this
             * layer. */
            if (par->by_direction && par->barrier) {
                crnn__barrier_wait(par->barrier, par->tid);
            } else if (par->mode == CRNN__PIPELINE && par->barrier &&
                       c->l + 1 < rnn->num_layers) {
                if (par->tid == 0) crnn__barrier_arrive(par->barrier, 0);
                else crnn__barrier_follow(par->barrier, par->tid, 0);
            }
            c->l++;
            c->d = 0;
            continue;
        }
        if (par->by_direction && par->barrier && c->d != par->tid) {
            c->d++, c->e++; /* the other thread's direction */
            continue;
        }
        if (!c->begun) {
            if (ran && chunk > 0) return 0;
            FN(rows_direction)(c, rnn, a, par);
            if (!FN(dir_begin)(r)) {
                c->d++, c->e++;
                continue;
            }
            c->begun = 1;
        }
        if (r->s < r->T) {
            const int64_t end = chunk > 0 && r->T - r->s > chunk ? r->s + chunk : r->T;
            FN(dir_steps)(r, end);
            ran = 1;
            if (end < r->T) return 0;
        }
        FN(dir_end)(r);
        c->begun = 0;
        c->d++, c->e++;
    }
    return 1;
}

int FN(crnn__forward)(const crnn_rnn_t *rnn, const crnn__args *a, int64_t b0, int64_t nb,
                      const crnn__par *par)
{
    /* Rows [b0, b0 + nb) of the batch, all the way (FN(rows_run)). par says how this thread
     * shares the layers with the others (see crnn__par): by direction, with a barrier, thread
     * `tid` runs direction `tid` of each layer, meeting the other after it. The pipeline's
     * threads meet after each layer too: the next one projects this one's output. */
    REAL hp[CRNN__MAIL_THREADS * CRNN__MAIL_LINES * CRNN__MAIL_VALUES(sizeof(REAL))];
    FN(rows_run) c;
    FN(rows_start)(&c, b0, nb);
    FN(rows_advance)(&c, rnn, a, par, 0, hp);
    return CRNN_OK;
}

/* A row block's cursor fits the room crnn__block has for it. */
typedef char FN(cursor_fits)[sizeof(FN(rows_run)) <= CRNN__CURSOR_BYTES ? 1 : -1];

void FN(crnn__forward_blocks)(const crnn_rnn_t *rnn, const crnn__args *a, const crnn__par *par,
                              int tid)
{
    /* Thread tid's part in a row split whose rows are in blocks (crnn__blocks): block i is
     * rows [B * i / n, B * (i + 1) / n), run CRNN__BLOCK_STEPS steps at a time by whichever
     * thread takes it. A block's rows go through the same calls whoever runs them (each
     * chunk takes the cursor where the last left it), so the result does not depend on who
     * ran what. */
    crnn__blocks *const bs = par->blocks;
    const int64_t B = a->batch;
    int i, next = bs->n * tid / bs->nt;
    while ((i = crnn__blocks_take(bs, tid, &next)) >= 0) {
        crnn__block *blk = &bs->block[i];
        FN(rows_run) c; /* the cursor, copied in and out as bytes (it has no pointer into
                           itself): blk->cursor is declared long long, which C does not let a
                           FN(rows_run) lvalue access */
        int done;
        if (blk->fresh) {
            FN(rows_start)(&c, B * i / bs->n, B * (i + 1) / bs->n - B * i / bs->n);
            blk->fresh = 0;
        } else {
            memcpy(&c, blk->cursor, sizeof c);
        }
        done = FN(rows_advance)(&c, rnn, a, par, CRNN__BLOCK_STEPS, NULL);
        memcpy(blk->cursor, &c, sizeof c);
        /* steps left: at least the rest of a direction while rows remain */
        crnn__blocks_put(bs, i, done ? 0 : bs->steps - c.e * a->timesteps -
                                                   (c.begun ? c.run.s : 0));
    }
}

void FN(crnn__dense)(int64_t rows, int64_t din, int64_t units, const REAL *x, const REAL *kernel,
                     const REAL *bias, crnn_activation act, REAL *y)
{
    const FN(kernel_table) *const kern = FN(kernels)();
    FN(project)(kern, rows, din, units, x, kernel, units, y, units);
    kern->activate_rows(act, y, rows, units, bias, units);
}
