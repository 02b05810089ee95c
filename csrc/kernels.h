/* kernels.h - the kernels compiled once per instruction set, templated on REAL / FN() and on the
 * instruction set by rnn_template.h: KFN(name) names this variant's functions, KVBYTES is its
 * vector width in bytes (64 AVX-512, 32 AVX2, 16 SSE2) and KMR the rows of a register tile. The
 * including file wraps this in `#pragma GCC target(...)`, and picks a variant at run time
 * (crnn__isa(): the CPU's best, or CRNN_ISA to ask for less).
 *
 * activate: element-wise activations over a contiguous run (ORT deepcpu style row kernel: the
 *   switch is outside the loops, never a function pointer per element); activate_rows: over
 *   several rows in one call.
 * tail_units / tail_rows: the cells' narrow last block, where it is gathered from the rows, and
 *   the rows of one chunk of it (cell_lstm.h, cell_gru.h).
 * tiny_gemm / tiny_step: products (and a tiny SimpleRNN's whole step) too small for a BLAS call,
 *   with the sums of a row in registers.
 * panels_gemm: the recurrent product C(B, n) (+)= A(B, K) @ R[:, c0:c1] on a recurrent kernel
 *   packed once at create time into panels (see CRNN__PANEL_BYTES): every weight is read from
 *   its packed copy (OpenBLAS would copy the whole kernel into its own packed form on every
 *   call, and a recurrent step is a small M times a large kernel), the sums of a tile of KMR rows
 *   by 4 vectors of columns (the layer's last tile: only the vectors its columns reach) stay in
 *   registers over a block of k (panel_kc: a quarter of L2 where
 *   the tile is a panel wide, all of k for the usual sizes; 3/4 of L1 where it is narrower), so
 *   each block of weights comes from memory or L3 once per step and from cache for every
 *   further row tile. One row (B = 1): tiles a whole panel row wide where that is at most 8
 *   vectors (KRV: AVX2 8, AVX-512 4; SSE2 a quarter of a row, 4), the sums of 8 vectors in
 *   one set (row_wide), of 4 in two, even and odd k (row1: the loads of one overlap the adds
 *   of the other); the tiles walked backward on alternate steps where that leaves the next
 *   step's first weights in cache (row_backward). In the batched product the sums over k are
 *   added in increasing k within a block and blocks in order: a row's result does not depend
 *   on B, on the other rows or on the order of the tiles. */

typedef REAL KFN(vec) __attribute__((vector_size(KVBYTES)));

/* a * b + c * d, rounded the same way in every build: with FMA (AVX2, AVX-512) fma(a, b, c * d).
 * Written as a * b + c * d, which product is fused into the sum is the compiler's choice, and
 * it may change with edits elsewhere or with another compiler. Without FMA two products and a
 * sum (the base variant is built without contraction). (The float64 LSTM's passes outside the
 * fused block, without a bias or in a narrow last block, still move in their last bits, up to
 * 4.5e-16, with edits elsewhere in the cells: the float64 sigmoid inlined in them rounds
 * differently, an LSTM with a linear activation and the sigmoid moves and one with tanh and the
 * hard sigmoid does not; the choice inside it is not pinned yet.) */
#if KVBYTES > 16
#define KMULADD2(a, b, c, d) VFMA((a), (b), (c) * (d))
#else
#define KMULADD2(a, b, c, d) ((a) * (b) + (c) * (d))
#endif

/* The gated cells' element-wise parts take whole blocks two at a time (lstm_post, gru_post) with
 * AVX-512's 32 vector registers. With 16 (AVX2, SSE2) the two blocks' values spill: float64
 * LSTM (16,50,128,128) measured 0.97-0.98x with AVX2, SSE2 GRU (1,1000,32,64) 0.98x. */
#define KPAIR_BLOCKS (KVBYTES >= 64)

static inline __attribute__((always_inline)) void KFN(activate_inline)(
    crnn_activation act, REAL *restrict v, const REAL *restrict bias, int64_t n)
{
    int64_t j;
    switch ((int)act) { /* int: CRNN_ACTIVATION_HARD_SIGMOID is not an enumerator */
    case CRNN_ACTIVATION_TANH:
        if (bias) for (j = 0; j < n; ++j) v[j] = VTANH(v[j] + bias[j]);
        else for (j = 0; j < n; ++j) v[j] = VTANH(v[j]);
        break;
    case CRNN_ACTIVATION_RELU: /* z < 0 ? 0 : z keeps NaN, like np.maximum */
        if (bias) for (j = 0; j < n; ++j) { REAL z = v[j] + bias[j]; v[j] = z < (REAL)0 ? (REAL)0 : z; }
        else for (j = 0; j < n; ++j) v[j] = v[j] < (REAL)0 ? (REAL)0 : v[j];
        break;
    case CRNN_ACTIVATION_SIGMOID:
        if (bias) for (j = 0; j < n; ++j) v[j] = VSIGMOID(v[j] + bias[j]);
        else for (j = 0; j < n; ++j) v[j] = VSIGMOID(v[j]);
        break;
    case CRNN_ACTIVATION_HARD_SIGMOID:
        for (j = 0; j < n; ++j) {
            REAL z = (bias ? v[j] + bias[j] : v[j]) + (REAL)3;
            z = z < (REAL)0 ? (REAL)0 : z;
            z = z > (REAL)6 ? (REAL)6 : z;
            v[j] = z / (REAL)6;
        }
        break;
    case CRNN_ACTIVATION_LINEAR:
    default:
        if (bias) for (j = 0; j < n; ++j) v[j] += bias[j];
        break;
    }
}

static void KFN(activate)(crnn_activation act, REAL *restrict v, const REAL *restrict bias,
                          int64_t n)
{
    KFN(activate_inline)(act, v, bias, n);
}

/* activate over `rows` runs of n values, `ld` apart (one call for a step's rows). */
static void KFN(activate_rows)(crnn_activation act, REAL *v, int64_t rows, int64_t ld,
                               const REAL *bias, int64_t n)
{
    int64_t r;
    for (r = 0; r < rows; ++r) KFN(activate)(act, v + r * ld, bias, n);
}

/* The width of the cells' narrow last block (H % vb units) where the slice ending at c1 holds
 * it and the step has rows enough to gather it from (CRNN__TAIL_ROWS), else 0: the post
 * functions run their blocks up to c1 minus this row by row, and this one through their _tail. */
static inline __attribute__((always_inline)) int64_t KFN(tail_units)(const FN(step_args) *a,
                                                                   int64_t c1)
{
    return c1 == a->H && a->B >= CRNN__TAIL_ROWS ? a->H % a->vb : 0;
}

/* For the cells' narrow last block (lstm_post_tail, gru_post_tail, gru_before_post_tail): the
 * next chunk of active rows from *b on, at most CRNN__TAIL_VALUES values of a gate in all at
 * len values a row; their indices in sel, their count returned, *b moved past them. */
static inline __attribute__((always_inline)) int64_t KFN(tail_rows)(const FN(step_args) *a,
                                                                  int64_t *b, int64_t len,
                                                                  int64_t *sel)
{
    const int64_t rmax = CRNN__TAIL_VALUES / len;
    int64_t nr = 0;
    for (; *b < a->B && nr < rmax; ++*b)
        if (CRNN__ACTIVE(a, *b)) sel[nr++] = *b;
    return nr;
}

/* out[r, :N] = (accumulate ? out[r, :N] : 0) + in[r, :K] @ W[:K, :N] for r < rows, N <= 8, with
 * the N sums in registers, added up in the order of a plain loop over K. Called with a constant
 * N (tiny_gemm's switch), so the loop over N unrolls: with a variable trip count of 3 the
 * compiler's vector loop spends ~15 instructions of overhead on every multiply-add, which made
 * this the largest part of a seed-sized call. The loop over K is unrolled 4 times (the same
 * operations in the same order): its counter and branch were half of each iteration's
 * instructions (LSTM (8,2,10,3) 1.04x, GRU 1.04x on the whole call; unrolling tiny_step_n's
 * loop the same way changed nothing measurable for the SimpleRNN). */
static inline __attribute__((always_inline)) void KFN(tiny_gemm_n)(
    int64_t rows, int64_t K, int64_t N, const REAL *in, int64_t ldi, const REAL *W, int64_t ldw,
    REAL *out, int64_t ldo, int accumulate)
{
    int64_t r, i, j;
    for (r = 0; r < rows; ++r) {
        const REAL *a = in + r * ldi;
        REAL *c = out + r * ldo;
        REAL acc[8];
        for (j = 0; j < N; ++j) acc[j] = accumulate ? c[j] : (REAL)0;
#pragma GCC unroll 4
        for (i = 0; i < K; ++i) {
            const REAL ai = a[i];
            const REAL *w = W + i * ldw;
            for (j = 0; j < N; ++j) acc[j] += ai * w[j];
        }
        for (j = 0; j < N; ++j) c[j] = acc[j];
    }
}

/* A SimpleRNN step of a tiny layer: out[r, :N] = act(out[r, :N] + in[r, :K] @ W + b) for N <= 8:
 * in one pass for N <= 3 (the same arithmetic as tiny_gemm_n then activate, so the same bits,
 * without a second pass over the rows: at the tutorial's sizes that pass cost as much as the
 * product), as the product then a vectorised activation pass for wider rows. */
static inline __attribute__((always_inline)) void KFN(tiny_step_n)(
    int64_t rows, int64_t K, int64_t N, const REAL *in, int64_t ldi, const REAL *W, int64_t ldw,
    REAL *out, int64_t ldo, crnn_activation act, const REAL *bias)
{
    int64_t r, i, j;
    for (r = 0; r < rows; ++r) {
        const REAL *a = in + r * ldi;
        REAL *c = out + r * ldo;
        REAL acc[8];
        for (j = 0; j < N; ++j) acc[j] = c[j];
        for (i = 0; i < K; ++i) {
            const REAL ai = a[i];
            const REAL *w = W + i * ldw;
            for (j = 0; j < N; ++j) acc[j] += ai * w[j];
        }
        if (bias)
            for (j = 0; j < N; ++j) acc[j] += bias[j];
        switch ((int)act) {
        case CRNN_ACTIVATION_TANH: for (j = 0; j < N; ++j) c[j] = VTANH(acc[j]); break;
        case CRNN_ACTIVATION_SIGMOID: for (j = 0; j < N; ++j) c[j] = VSIGMOID(acc[j]); break;
        case CRNN_ACTIVATION_RELU:
            for (j = 0; j < N; ++j) c[j] = acc[j] < (REAL)0 ? (REAL)0 : acc[j];
            break;
        case CRNN_ACTIVATION_HARD_SIGMOID:
            for (j = 0; j < N; ++j) {
                REAL z = acc[j] + (REAL)3;
                z = z < (REAL)0 ? (REAL)0 : z;
                c[j] = (z > (REAL)6 ? (REAL)6 : z) / (REAL)6;
            }
            break;
        default: for (j = 0; j < N; ++j) c[j] = acc[j]; break;
        }
    }
}

static void KFN(tiny_gemm)(int64_t rows, int64_t K, int64_t N, const REAL *in, int64_t ldi,
                           const REAL *W, int64_t ldw, REAL *out, int64_t ldo, int accumulate);

static void KFN(tiny_step)(int64_t rows, int64_t K, int64_t N, const REAL *in, int64_t ldi,
                           const REAL *W, int64_t ldw, REAL *out, int64_t ldo,
                           crnn_activation act, const REAL *bias)
{
    switch (N) {
#define CRNN__TINY(n) \
    case n: KFN(tiny_step_n)(rows, K, n, in, ldi, W, ldw, out, ldo, act, bias); break;
    CRNN__TINY(1) CRNN__TINY(2) CRNN__TINY(3)
#undef CRNN__TINY
    default: /* 4 to 8 units: the activation vectorises better as its own pass over each row */
        KFN(tiny_gemm)(rows, K, N, in, ldi, W, ldw, out, ldo, 1);
        KFN(activate_rows)(act, out, rows, ldo, bias, N);
        break;
    }
}

/* Any N, in groups of up to 8 columns (each group one tiny_gemm_n with a constant N). */
static void KFN(tiny_gemm)(int64_t rows, int64_t K, int64_t N, const REAL *in, int64_t ldi,
                          const REAL *W, int64_t ldw, REAL *out, int64_t ldo, int accumulate)
{
    int64_t j0;
    for (j0 = 0; j0 < N; j0 += 8) {
        const REAL *w = W + j0;
        REAL *o = out + j0;
        switch (N - j0 < 8 ? N - j0 : 8) {
#define CRNN__TINY(n) \
        case n: KFN(tiny_gemm_n)(rows, K, n, in, ldi, w, ldw, o, ldo, accumulate); break;
        CRNN__TINY(1) CRNN__TINY(2) CRNN__TINY(3) CRNN__TINY(4)
        CRNN__TINY(5) CRNN__TINY(6) CRNN__TINY(7) CRNN__TINY(8)
#undef CRNN__TINY
        default: break;
        }
    }
}

#define KVW ((int64_t)(KVBYTES / sizeof(REAL)))              /* elements per vector */
#define KCW (4 * KVW)                                        /* columns of a tile */
#define KPW ((int64_t)(CRNN__PANEL_BYTES / sizeof(REAL)))    /* columns of a panel */
#define KLD(v, p) memcpy(&(v), (p), sizeof(v))
#define KST(p, v) memcpy((p), &(v), sizeof(v))
/* Keep a loaded weight vector in a register where a tile's sums, its nv weights and a broadcast
 * fit the vector registers ((mr + 1) * nv + 1: every height with AVX-512's 32; with 16, up to
 * 2 rows of 4 vectors, 3 rows of 3): else GCC folds the load into every FMA that uses it, and
 * the tile waits on mr times as many loads as it needs (AVX2, Zen 3, the product alone,
 * batch-first strides: 4 rows (2 + 2) 64 -> 81 GFLOP/s, 8 (3 + 3 + 2) 83 -> 88, 16 (3 x 4 +
 * 2 x 2) 84 -> 91). Not where they do not fit (3 rows of 4 vectors with 16 registers: 12 + 4 +
 * 1): the loop spills (measured 1.3-1.6x slower); the folded loads are cheaper there. */
#if defined(__GNUC__) && defined(__x86_64__)
#define KPIN(v)                                                                                \
    if ((mr + 1) * nv + 1 <= (KVBYTES == 64 ? 32 : 16)) __asm__("" : "+v"(v))
#else
#define KPIN(v) ((void)0)
#endif

/* One tile: rows [0, mr) (mr <= KMR <= KMR_MAX, a constant where inlined) of C (rows `ldc`
 * apart, n <= nv * KVW columns) (+)= A (rows `lda` apart) times `kc` rows of a tile of nv
 * (1-4, a constant where inlined) vectors of columns at w (rows KPW apart): a tile narrower
 * than 4 vectors (the last of a layer whose columns end inside a panel) does only the products
 * of the vectors it keeps. The sums live in named variables from C back to C (an array of
 * vectors indexed in loops ends up on the stack, and its loads and stores around every block of
 * k cost as much as 40-60 k of products); `load` says whether they start from C or from zero. A
 * partial tile (n < KCW) goes through a zero-padded copy. Over the first `npf` k it also
 * prefetches one cache line per k, from `pf` on (see panels_gemm). */
#define KMR_MAX 6
/* The first n (< KCW) columns of a tile's row. Out of line: a local array next to the sums in
 * the tile made GCC keep the SSE2 sums on the stack through the whole k loop. The copy is of a
 * type aligned like REAL: a 64-byte aligned one broke under ASan's fake stack, which does not
 * keep that alignment. */
typedef REAL KFN(uvec) __attribute__((vector_size(KVBYTES), aligned(sizeof(REAL))));
static __attribute__((noinline)) void KFN(store_part)(REAL *dst, int64_t n, KFN(vec) v0,
                                                      KFN(vec) v1, KFN(vec) v2, KFN(vec) v3)
{
    const KFN(uvec) u[4] = {v0, v1, v2, v3};
    memcpy(dst, u, (size_t)n * sizeof(REAL));
}
static inline __attribute__((always_inline)) void KFN(tile)(int mr, int nv, int64_t kc,
                                                            const REAL *A,
                                                            int64_t lda, const REAL *w, REAL *C,
                                                            int64_t ldc, int64_t n, int load,
                                                            const char *pf, int64_t npf)
{
    const KFN(vec) zero = {0}; /* not x - x: an infinite C must not turn into NaN */
    REAL tmp[KCW];             /* a partial tile's row, zero-padded */
#define KSUMS(r)                                                                               \
    KFN(vec) c##r##0 = zero, c##r##1 = zero, c##r##2 = zero, c##r##3 = zero;                   \
    const REAL *a##r = A + (KMR > r ? r : 0) * lda;                                            \
    if (KMR > r && mr > r && load) {                                                           \
        const REAL *src = C + r * ldc;                                                         \
        if (n < KCW) {                                                                         \
            memcpy(tmp, src, (size_t)n * sizeof(REAL));                                        \
            memset(tmp + n, 0, (size_t)(KCW - n) * sizeof(REAL));                              \
            src = tmp;                                                                         \
        }                                                                                      \
        KLD(c##r##0, src);                                                                     \
        if (nv > 1) KLD(c##r##1, src + KVW);                                                   \
        if (nv > 2) KLD(c##r##2, src + 2 * KVW);                                               \
        if (nv > 3) KLD(c##r##3, src + 3 * KVW);                                               \
    }
    KSUMS(0) KSUMS(1) KSUMS(2) KSUMS(3) KSUMS(4) KSUMS(5)
#undef KSUMS
    int64_t k;
#define KROW(r)                                                                                \
    if (KMR > r && mr > r) {                                                                   \
        const REAL x = a##r[k];                                                                \
        c##r##0 += x * w0;                                                                     \
        if (nv > 1) c##r##1 += x * w1;                                                         \
        if (nv > 2) c##r##2 += x * w2;                                                         \
        if (nv > 3) c##r##3 += x * w3;                                                         \
    }
#define KSTEP                                                                                  \
    {                                                                                          \
        KFN(vec) w0, w1 = zero, w2 = zero, w3 = zero;                                          \
        KLD(w0, w);                                                                            \
        if (nv > 1) KLD(w1, w + KVW);                                                          \
        if (nv > 2) KLD(w2, w + 2 * KVW);                                                      \
        if (nv > 3) KLD(w3, w + 3 * KVW);                                                      \
        KPIN(w0);                                                                              \
        if (nv > 1) KPIN(w1);                                                                  \
        if (nv > 2) KPIN(w2);                                                                  \
        if (nv > 3) KPIN(w3);                                                                  \
        KROW(0) KROW(1) KROW(2) KROW(3) KROW(4) KROW(5)                                        \
    }
    /* the same step twice: with a prefetch for the first npf k, then without (no test per k) */
    for (k = 0; k < kc && k < npf; ++k, w += KPW) {
        __builtin_prefetch(pf + 64 * k, 0, 2);
        KSTEP
    }
    for (; k < kc; ++k, w += KPW) KSTEP
#undef KSTEP
#undef KROW
#define KSTORE(r)                                                                              \
    if (KMR > r && mr > r) {                                                                   \
        REAL *dst = C + r * ldc;                                                               \
        if (n < KCW) {                                                                         \
            KFN(store_part)(dst, n, c##r##0, c##r##1, c##r##2, c##r##3);                       \
        } else {                                                                               \
            KST(dst, c##r##0);                                                                 \
            KST(dst + KVW, c##r##1);                                                           \
            KST(dst + 2 * KVW, c##r##2);                                                       \
            KST(dst + 3 * KVW, c##r##3);                                                       \
        }                                                                                      \
    }
    KSTORE(0) KSTORE(1) KSTORE(2) KSTORE(3) KSTORE(4) KSTORE(5)
#undef KSTORE
}

/* One row's sums over all of K for the first nv (1-4, a constant where inlined) vectors of a
 * tile: even and odd k in two sets of accumulators (the loads of one overlap the adds of the
 * other), added in increasing k. The loop is two broadcasts and 8 multiply-adds with their
 * weights as memory operands per 512 bytes (AVX-512); prefetching 4-64 rows ahead in it, every
 * line or one a row pair, measured 0.87-0.98x (LSTM (1,100,16,256), 2 threads, 2-vCPU Xeon):
 * the hardware already streams the panels from L2. */
static inline __attribute__((always_inline)) void KFN(row1)(int nv, int64_t K, const REAL *A,
                                                            const REAL *w, KFN(vec) a[4],
                                                            KFN(vec) b[4])
{
    KFN(vec) wv;
    int64_t k0;
    int v;
    for (k0 = 0; k0 + 1 < K; k0 += 2, w += 2 * KPW) {
        const REAL x0 = A[k0], x1 = A[k0 + 1];
        for (v = 0; v < nv; ++v) {
            KLD(wv, w + v * KVW);
            a[v] += x0 * wv;
            KLD(wv, w + KPW + v * KVW);
            b[v] += x1 * wv;
        }
    }
    if (k0 < K)
        for (v = 0; v < nv; ++v) {
            KLD(wv, w + v * KVW);
            a[v] += A[k0] * wv;
        }
}

/* Rows of k per block of the batched product (the sums go back to C between blocks, which
 * changes no result). A tile a whole panel wide (AVX-512) does 6 rows x 4 vectors of products
 * per 256 bytes of weights: the block may fill a quarter of L2, whose bandwidth keeps up, and
 * long blocks spend the least on moving sums (a block of 96 or 128 k measured 0.93-0.98x). A
 * narrower tile (AVX2, SSE2) reads a row of the panel per 3 rows of products, more than L2
 * delivers (Zen 4, AVX2: 60-75 % of the FMA peak with the block in L2, 85-90 % in L1), so its
 * block is kept to 3/4 of L1 (AVX2, 96 k against 1024: 1.02-1.05x at (32-256, 20-100,
 * 128-512, 256-1024); 64 k was slower, 128 k no better). */
static int64_t KFN(panel_kc)(void)
{
#if 4 * KVBYTES < CRNN__PANEL_BYTES
    const int64_t kc = (int64_t)(crnn__l1_bytes() * 3 / 4 / CRNN__PANEL_BYTES);
    return kc < 16 ? 16 : kc;
#else
    const int64_t kc = (int64_t)(crnn__l2_bytes() / 4 / CRNN__PANEL_BYTES);
    return kc < 64 ? 64 : kc;
#endif
}

/* A batch of one's row tile: a whole panel row where that is at most 8 vectors (AVX2: 8,
 * AVX-512: 4), else 4 vectors (SSE2: a quarter of one). A whole row makes each tile one
 * unbroken stream of weights and sets up its sums once a panel, not once a half (AVX2, Zen 3,
 * float32, against half-panel tiles: the product alone 1.18-1.40x with 16-64 KiB of weights,
 * where the set-up counted for as much as the k, 1.08-1.11x with 117 KiB-1 MiB; whole batch-1
 * calls, every cell, 1 and 2 threads, 1.03-1.27x but SimpleRNN (1,1000,32,64) at 2 threads
 * 0.98x, within its quartiles). */
#define KRV (CRNN__PANEL_BYTES / KVBYTES <= 8 ? CRNN__PANEL_BYTES / KVBYTES : 4)
#define KRW ((int64_t)(KRV * KVBYTES / sizeof(REAL))) /* columns of a row tile */

/* One row's sums for the columns [j, j + n) of a row tile at w, 4 < nv <= 8 vectors of them
 * (nv a constant where inlined), in one set of named sums (an array indexed in the loops ended
 * up on the stack), added in increasing k from C (or zero): 5-8 chains of multiply-adds keep
 * the FMA units busy without row1's second set. */
static inline __attribute__((always_inline)) void KFN(row_wide)(int nv, int64_t K,
                                                                const REAL *w, int64_t n,
                                                                const REAL *A, REAL *cj,
                                                                int accumulate)
{
    const KFN(vec) zero = {0};
    KFN(vec) s0 = zero, s1 = zero, s2 = zero, s3 = zero, s4 = zero, s5 = zero, s6 = zero,
             s7 = zero, t;
    REAL tmp[8 * KVW];
    const REAL *src = cj;
    int64_t k;
    if (accumulate && n < nv * KVW) {
        memcpy(tmp, cj, (size_t)n * sizeof(REAL));
        memset(tmp + n, 0, (size_t)(8 * KVW - n) * sizeof(REAL));
        src = tmp;
    }
#define KW(i, x)                                                                               \
    if (nv > i) { x; }
    if (accumulate) {
        KW(0, KLD(s0, src)) KW(1, KLD(s1, src + KVW)) KW(2, KLD(s2, src + 2 * KVW))
        KW(3, KLD(s3, src + 3 * KVW)) KW(4, KLD(s4, src + 4 * KVW))
        KW(5, KLD(s5, src + 5 * KVW)) KW(6, KLD(s6, src + 6 * KVW))
        KW(7, KLD(s7, src + 7 * KVW))
    }
    for (k = 0; k < K; ++k, w += KPW) {
        const REAL x = A[k];
        KW(0, KLD(t, w); s0 += x * t) KW(1, KLD(t, w + KVW); s1 += x * t)
        KW(2, KLD(t, w + 2 * KVW); s2 += x * t) KW(3, KLD(t, w + 3 * KVW); s3 += x * t)
        KW(4, KLD(t, w + 4 * KVW); s4 += x * t) KW(5, KLD(t, w + 5 * KVW); s5 += x * t)
        KW(6, KLD(t, w + 6 * KVW); s6 += x * t) KW(7, KLD(t, w + 7 * KVW); s7 += x * t)
    }
    {
        REAL *dst = n < nv * KVW ? tmp : cj;
        KW(0, KST(dst, s0)) KW(1, KST(dst + KVW, s1)) KW(2, KST(dst + 2 * KVW, s2))
        KW(3, KST(dst + 3 * KVW, s3)) KW(4, KST(dst + 4 * KVW, s4))
        KW(5, KST(dst + 5 * KVW, s5)) KW(6, KST(dst + 6 * KVW, s6))
        KW(7, KST(dst + 7 * KVW, s7))
        if (dst == tmp) memcpy(cj, tmp, (size_t)n * sizeof(REAL));
    }
#undef KW
}

/* One row of the recurrent product (B = 1), the columns [j, j + n) (n <= KRW) of a row tile at
 * w, over all of K: more than 4 vectors in row_wide, else in two sets of accumulators, even and
 * odd k (row1). */
static inline __attribute__((always_inline)) void KFN(row_tile)(int64_t K, const REAL *w,
                                                                int64_t n, const REAL *A,
                                                                REAL *cj, int accumulate)
{
    const KFN(vec) zero = {0}; /* not x - x: an infinite C must not turn into NaN */
    KFN(vec) a[4], b[4];
    REAL tmp[KCW];
    int v;
    if (KRV > 4 && n > KCW) {
        switch ((n + KVW - 1) / KVW) { /* the vectors this tile keeps, a loop for each */
        case 5: KFN(row_wide)(5, K, w, n, A, cj, accumulate); break;
        case 6: KFN(row_wide)(6, K, w, n, A, cj, accumulate); break;
        case 7: KFN(row_wide)(7, K, w, n, A, cj, accumulate); break;
        default: KFN(row_wide)(8, K, w, n, A, cj, accumulate); break;
        }
        return;
    }
    for (v = 0; v < 4; ++v) a[v] = b[v] = zero;
    if (accumulate && n == KCW) { /* a whole tile: its row straight from C, back to C below */
        for (v = 0; v < 4; ++v) KLD(a[v], cj + v * KVW);
    } else if (accumulate) {
        memcpy(tmp, cj, (size_t)n * sizeof(REAL));
        memset(tmp + n, 0, (size_t)(KCW - n) * sizeof(REAL));
        for (v = 0; v < 4; ++v) KLD(a[v], tmp + v * KVW);
    }
    switch ((n + KVW - 1) / KVW) { /* the vectors this tile keeps, a loop for each */
    case 1: KFN(row1)(1, K, A, w, a, b); break;
    case 2: KFN(row1)(2, K, A, w, a, b); break;
    case 3: KFN(row1)(3, K, A, w, a, b); break;
    default: KFN(row1)(4, K, A, w, a, b); break;
    }
    for (v = 0; v < 4; ++v) a[v] += b[v];
    if (n == KCW) {
        for (v = 0; v < 4; ++v) KST(cj + v * KVW, a[v]);
    } else {
        for (v = 0; v < 4; ++v) KST(tmp + v * KVW, a[v]);
        memcpy(cj, tmp, (size_t)n * sizeof(REAL));
    }
}

/* The same row walked backward, from the last tile to the first: the columns are independent, so
 * the order changes no sum. On alternate steps (panels_gemm) a step then starts on the weights
 * the step before read last, still in cache where the slice outgrows it: the cache keeps the
 * weights used most recently, and a walk in the same order every step would need first the
 * ones it evicted longest ago. */
static void KFN(row_backward)(int64_t K, int64_t c0, int64_t c1, const REAL *panels,
                              const REAL *A, REAL *C, int accumulate)
{
    const int64_t p0 = c0 / KPW;
    int64_t p, t;
    for (p = (c1 - 1) / KPW; p >= p0; --p) {
        /* this panel's columns (from c0 where the slice starts inside it), in row tiles */
        const int64_t jp = p * KPW > c0 ? p * KPW : c0;
        const int64_t jend = (p + 1) * KPW < c1 ? (p + 1) * KPW : c1;
        for (t = (jend - jp - 1) / KRW; t >= 0; --t) {
            const int64_t j = jp + t * KRW;
            const int64_t n = jend - j < KRW ? jend - j : KRW;
            KFN(row_tile)(K, panels + p * KPW * K + j % KPW, n, A, C + (j - c0), accumulate);
        }
    }
}

/* The end of the columns from j on that lie in j's panel (at most c1). */
static inline int64_t KFN(panel_end)(int64_t j, int64_t c1)
{
    return j - j % KPW + KPW < c1 ? j - j % KPW + KPW : c1;
}

/* The first row of row tile t when B rows are cut into tiles of `base` rows, the first `extra`
 * of them one row taller. */
static inline int64_t KFN(tile_row0)(int64_t t, int64_t base, int64_t extra)
{
    return t * base + (t < extra ? t : extra);
}

/* Whether a batch of one walks a slice of `bytes` of weights backward (row_backward) on this
 * step (`backward`: the step's parity): wherever the slice is more than half of L1 (see
 * panels_gemm). */
static inline int KFN(row_back)(double bytes, int backward)
{
    return backward && bytes > (double)crnn__l1_bytes() / 2;
}

static void KFN(panels_gemm)(int64_t B, int64_t K, int64_t c0, int64_t c1, const REAL *panels,
                             const REAL *A, int64_t lda, REAL *C, int64_t ldc, int accumulate,
                             int backward)
{
    const int64_t kc_max = KFN(panel_kc)();
    const double bytes = (double)K * (double)(c1 - c0) * (double)sizeof(REAL);
    /* the weights read here outgrow half of L2, so they come from L3 or memory on every step */
    const int stream = bytes > (double)crnn__l2_bytes() / 2;
    int64_t j, jp, jend, k0, i0;
    if (B == 1 && KFN(row_back)(bytes, backward)) {
        /* one row, walked backward on alternate steps (row_backward) wherever the slice is
         * more than half of L1 (which it shares with the rest of the step): the next step
         * starts on the weights this one read last, up to an L1 of them still in cache, where
         * a step in the same order would start on the ones evicted longest ago. Each tile still
         * streams forward through k, so the prefetchers lose nothing. Zen 4 once
         * kept the forward walk from 2 L1 to L2 / 2; walking backward there too measured
         * (AVX-512, in one process, calls interleaved, the same bits) LSTM (1,50,64,128) 1.04x,
         * (1,100,16,96) 1.09x, (1,100,16,128) 1.05x at 2 threads, 1.03x at 1; SimpleRNN and
         * GRU 0.99-1.03x, within their quartiles (AVX2: LSTM 1.03-1.14x, the others
         * 1.00-1.01x). A loop reading 128 KiB from L2 alternately: 134 GB/s against 118
         * forward. (The batched product gains nothing from it: measured 0.99-1.00x at 1
         * thread, LSTM (32,50,128,256), GRU (16,20,256,512), SimpleRNN (32,20,256,1024); its
         * blocks of k are prefetched.) */
        KFN(row_backward)(K, c0, c1, panels, A, C, accumulate);
        return;
    }
    for (jp = c0; jp < c1; jp = jend) {
        /* the columns [jp, jend) of one panel. A tile's columns [j, j + KCW) lie in panel
         * j / KPW when c0 is a multiple of KCW (KCW divides KPW); a slice that starts inside a
         * panel (a units split of a layer too narrow for slices of whole panels) starts with a
         * narrower tile up to the panel's end: its loads run on into the panel's next row (the
         * panels are followed by one row of padding) and only its n columns are kept. */
        jend = KFN(panel_end)(jp, c1);
        if (B == 1) {
            for (j = jp; j < jend; j += KRW)
                KFN(row_tile)(K, panels + j / KPW * KPW * K + j % KPW,
                              jend - j < KRW ? jend - j : KRW, A, C + (j - c0), accumulate);
            continue;
        }
        /* Every tile of the panel for one block of k and one tile of rows before the next rows:
         * where a tile is narrower than a panel (AVX2, SSE2) the rows of weights are then read
         * whole, in order, rather than in strided halves or quarters. */
        for (k0 = 0; k0 < K; k0 += kc_max) {
            const int64_t kc = K - k0 < kc_max ? K - k0 : kc_max;
            const int load = accumulate || k0 > 0;
            /* ceil(B / KMR) row tiles of even heights (8 rows: 4 + 4, not 6 + 2): each tile
             * reads the block of weights once, and a short tile costs nearly a full one */
            const int64_t ntiles = (B + KMR - 1) / KMR, base = B / ntiles, extra = B % ntiles;
            /* Streamed weights: while this block is in use, the next one (this panel's next
             * rows, or the next panel's first; one contiguous run) is prefetched, a share per
             * row tile, or the block's first row tile waits on L3 or memory for all of it.
             * Measured at 1 thread, GRU and LSTM (32,20,512,1024): 1.12x with AVX2 (its tiles
             * are half a panel wide, so a tile reads each row of the panel as a strided half),
             * 1.00-1.05x with AVX-512. Weights that stay in L2 gain nothing (SSE2 LSTM
             * (12,25,300,176) measured 0.95x with the prefetch). */
            const REAL *next = !stream       ? NULL
                               : k0 + kc < K ? panels + jp / KPW * KPW * K + (k0 + kc) * KPW
                               : jend < c1   ? panels + jend / KPW * KPW * K
                                             : NULL;
            const int64_t next_kc = k0 + kc < K ? K - k0 - kc : K;
            const int64_t lines =
                next ? (next_kc < kc_max ? next_kc : kc_max) * KPW * (int64_t)sizeof(REAL) / 64
                     : 0;
            const int64_t share = (lines + ntiles - 1) / ntiles;
            int64_t ti;
            for (ti = 0; ti < ntiles; ++ti) {
                const int mr = (int)(base + (ti < extra));
                if (k0 == 0 && load) {
                    /* The rows of C the next row tile starts from (or the next panel's first
                     * tile): a step's projection rows, one per batch row and T * G * H values
                     * apart, written long before and out of cache once the projection
                     * outgrows L2. No hardware prefetcher follows a few lines per row
                     * across the rows, and each tile stalled on its first loads.
                     * Measured with AVX2 (Zen 3), LSTM (32,50,128,256): 1.05x at 1 thread,
                     * 1.02-1.03x at 2; LSTM (64,20,512,1024), GRU and SimpleRNN
                     * (256,100,256,512) 1.02-1.03x at 2; shapes whose projection stays in L2
                     * 1.00x within the noise. */
                    const int64_t tn = ti + 1 < ntiles ? ti + 1 : 0;
                    const int64_t jn = ti + 1 < ntiles ? jp : jend;
                    const int64_t in = KFN(tile_row0)(tn, base, extra);
                    const int64_t je = KFN(panel_end)(jn, c1);
                    if (jn < c1)
                        FN(prefetch_rows)(C + (jn - c0) + in * ldc, base + (tn < extra), ldc,
                                          je - jn);
                }
                const int64_t pf0 = ti * share < lines ? ti * share : lines;
                const int64_t npf = lines - pf0 < share ? lines - pf0 : share;
                const char *pf = next ? (const char *)next + 64 * pf0 : NULL;
                i0 = KFN(tile_row0)(ti, base, extra);
                for (j = jp; j < jend; j += KCW) {
                    const REAL *pw = panels + j / KPW * KPW * K + j % KPW + k0 * KPW;
                    const int64_t n = jend - j < KCW ? jend - j : KCW;
                    REAL *cj = C + (j - c0) + i0 * ldc;
                    const REAL *ai = A + i0 * lda + k0;
                    const int64_t np = j == jp ? npf : 0;
                    /* a loop compiled for each height and width, no test per row and k. A
                     * layer whose columns end inside a panel ends on a tile of 1-3 vectors:
                     * all 4 there did up to 4x its products (LSTM 50 units: 200 columns, the
                     * last tile 8 of them). Zen 4, 2 threads, two processes alternating, 4
                     * vectors against these (float32: the same bits): SimpleRNN
                     * (24,64,100,200) 1.15x, LSTM (24,64,100,50) 1.07x, (16,50,128,100)
                     * 1.07x, GRU (32,50,128,200) 1.03x, (24,64,100,50) 1.02x, shapes without
                     * a narrow tile 1.00x; AVX2 1.01-1.05x. */
#define KTILE_NV(m, v)                                                                         \
                    case v: KFN(tile)(m, v, kc, ai, lda, pw, cj, ldc, n, load, pf, np); break;
#define KTILE(m)                                                                               \
                    case m:                                                                    \
                        if (KMR >= m) switch ((int)((n + KVW - 1) / KVW)) {                    \
                            KTILE_NV(m, 1) KTILE_NV(m, 2) KTILE_NV(m, 3)                       \
                            default: KFN(tile)(m, 4, kc, ai, lda, pw, cj, ldc, n, load, pf, np); \
                            }                                                                  \
                        break;
                    switch (mr) {
                    KTILE(1) KTILE(2) KTILE(3) KTILE(4) KTILE(5) KTILE(6)
                    default: break;
                    }
#undef KTILE
#undef KTILE_NV
                }
            }
        }
    }
}

#undef KVW
#undef KCW
#undef KPW
#undef KMR_MAX
#undef KLD
#undef KST
#undef KPIN
