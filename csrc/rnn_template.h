/* rnn_template.h - the layer (time loop) and the stack (layers x directions), written once and
 * included twice by rnn_f32.c / rnn_f64.c with REAL, FN(), GEMM, GEMV_T, TANH and EXP defined.
 *
 * Layer, one direction: the input projection of all timesteps is one GEMM
 * (B*T, D) x (D, H) straight into the output frames; then for each step one recurrent GEMM
 * h_{t-1} x Wh with beta = 1 into that step's frame, then the cell (bias + activation) in place.
 * The previous frame is the state: no copies. With per-sequence lengths the state lives in a
 * (B, H) buffer instead, so rows that are past their length (or, in reverse, not yet started)
 * keep their state while the others advance. Nothing is allocated here. */

#include "cell_simple.h"
#include "parallel.h"

/* out[r, :N] = (accumulate ? out[r, :N] : 0) + in[r, :K] @ W[:K, :N] for r < rows, N <= 8, with
 * the N sums in registers, added up in the order of a plain loop over K. Called with a constant
 * N (tiny_gemm's switch), so the loop over N unrolls: with a variable trip count of 3 the
 * compiler's vector loop spends ~15 instructions of overhead on every multiply-add, which made
 * this the largest part of a seed-sized call. */
static CRNN__ALWAYS_INLINE void FN(tiny_gemm_n)(int64_t rows, int64_t K, int64_t N,
                                                 const REAL *in, int64_t ldi, const REAL *W,
                                                 int64_t ldw, REAL *out, int64_t ldo,
                                                 int accumulate)
{
    int64_t r, i, j;
    for (r = 0; r < rows; ++r) {
        const REAL *a = in + r * ldi;
        REAL *c = out + r * ldo;
        REAL acc[8];
        for (j = 0; j < N; ++j) acc[j] = accumulate ? c[j] : (REAL)0;
        for (i = 0; i < K; ++i) {
            const REAL ai = a[i];
            const REAL *w = W + i * ldw;
            for (j = 0; j < N; ++j) acc[j] += ai * w[j];
        }
        for (j = 0; j < N; ++j) c[j] = acc[j];
    }
}

static void FN(tiny_gemm)(int64_t rows, int64_t K, int64_t N, const REAL *in, int64_t ldi,
                          const REAL *W, int64_t ldw, REAL *out, int64_t ldo, int accumulate)
{
    switch (N) {
#define CRNN__TINY(n) case n: FN(tiny_gemm_n)(rows, K, n, in, ldi, W, ldw, out, ldo, accumulate); break;
    CRNN__TINY(1) CRNN__TINY(2) CRNN__TINY(3) CRNN__TINY(4)
    CRNN__TINY(5) CRNN__TINY(6) CRNN__TINY(7) CRNN__TINY(8)
#undef CRNN__TINY
    default: break; /* callers pass 1 <= N <= 8 */
    }
}

#if defined(__GNUC__)
#define CRNN__HAVE_PANELS 1
/* y[0 : c1 - c0] += x[0 : K] @ R[:, c0 : c1], R as panels (see CRNN__PANEL_BYTES in internal.h),
 * c0 a multiple of the panel width. Each panel's columns are summed in registers, even and odd
 * rows in two sets of accumulators (the loads of one row overlap the adds of the other); GCC's
 * vector extension compiles to AVX-512, AVX2 or SSE by the clone picked at load time. */
typedef REAL FN(vec) __attribute__((vector_size(64)));
static CRNN__CLONES void FN(gemv_panels)(int64_t K, int64_t c0, int64_t c1, const REAL *panels,
                                         const REAL *x, REAL *y)
{
#define PW ((int64_t)(CRNN__PANEL_BYTES / sizeof(REAL)))
#define VW ((int64_t)(64 / sizeof(REAL)))
#define LD(v, p) memcpy(&(v), (p), sizeof(v))
    int64_t p0, i, j;
    for (p0 = c0; p0 < c1; p0 += PW) {
        const REAL *w = panels + p0 * K;
        const int64_t n = c1 - p0 < PW ? c1 - p0 : PW;
        REAL acc[PW];
        const FN(vec) zero = {0}; /* not a - a: an infinite y must not turn into NaN */
        FN(vec) a[4], b[4], r;
        for (j = 0; j < PW; ++j) acc[j] = j < n ? y[p0 - c0 + j] : (REAL)0;
        for (j = 0; j < 4; ++j) {
            LD(a[j], acc + j * VW);
            b[j] = zero;
        }
        for (i = 0; i + 1 < K; i += 2, w += 2 * PW) {
            const REAL xi = x[i], xj = x[i + 1];
            for (j = 0; j < 4; ++j) {
                LD(r, w + j * VW);
                a[j] += xi * r;
                LD(r, w + PW + j * VW);
                b[j] += xj * r;
            }
        }
        if (i < K) {
            const REAL xi = x[i];
            for (j = 0; j < 4; ++j) {
                LD(r, w + j * VW);
                a[j] += xi * r;
            }
        }
        for (j = 0; j < 4; ++j) {
            a[j] += b[j];
            memcpy(acc + j * VW, &a[j], sizeof(a[j]));
        }
        for (j = 0; j < n; ++j) y[p0 - c0 + j] = acc[j];
    }
#undef PW
#undef VW
#undef LD
}
#endif

/* Per-step recurrent product cur(B, N) += prev(B, K) @ R(K, N) for the columns [c0, c0 + N) of
 * the recurrent kernel (N < K when a thread owns a slice of the hidden units): R points at
 * column c0, its rows `ldr` apart; `panels` is the same kernel as panels or NULL; prev / cur
 * rows `ldp` / `ldc` apart. Tiny shapes use a plain loop (a BLAS call costs more than the
 * arithmetic there), batch 1 the panels, anything else one GEMM. */
static void FN(step)(int64_t B, int64_t K, int64_t N, const REAL *prev, int64_t ldp,
                     const REAL *R, int64_t ldr, REAL *cur, int64_t ldc, const REAL *panels,
                     int64_t c0)
{
    if (K <= 8) {
        FN(tiny_gemm)(B, K, N, prev, ldp, R, ldr, cur, ldc, 1);
    } else if (B == 1) {
#ifdef CRNN__HAVE_PANELS
        if (panels && c0 % (int64_t)(CRNN__PANEL_BYTES / sizeof(REAL)) == 0) {
            FN(gemv_panels)(K, c0, c0 + N, panels, prev, cur);
            return;
        }
#endif
        (void)panels;
        (void)c0;
        GEMV_T((int)K, (int)N, (REAL)1, R, (int)ldr, prev, (REAL)1, cur);
    } else {
        GEMM((int)B, (int)N, (int)K, (REAL)1, prev, (int)ldp, R, (int)ldr, (REAL)1, cur, (int)ldc);
    }
}

/* Input projection out[r, :N] = in[r, :] @ K[:, :N] for r < rows; K rows `ldk` apart, out rows
 * `ldo` apart. Split into chunks so that every BLAS integer fits in an int. */
static void FN(project)(int64_t rows, int64_t din, int64_t N, const REAL *in, const REAL *K,
                        int64_t ldk, REAL *out, int64_t ldo)
{
    const int64_t chunk = CRNN__BLAS_INT_MAX;
    int64_t r0;
    if (ldk <= 8 && din <= 16) {
        FN(tiny_gemm)(rows, din, N, in, din, K, ldk, out, ldo, 0);
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

/* Unit slice [c0, c1) of slice `k` of `nslices`, in whole panels (CRNN__PANEL_BYTES) where
 * possible, so that batch-1 steps run on the panels. */
static void FN(slice)(int64_t H, int k, int nslices, int64_t *c0, int64_t *c1)
{
    const int64_t pw = CRNN__PANEL_BYTES / (int64_t)sizeof(REAL); /* panel width */
    int64_t a = H * k / nslices, z = H * (k + 1) / nslices;
    if (H >= pw * nslices) {
        a = k == 0 ? 0 : a / pw * pw;
        z = k == nslices - 1 ? H : z / pw * pw;
    }
    *c0 = a;
    *c1 = z;
}

/* Start moving `rows` rows of n values (`ld` apart) into this core's cache: values another
 * thread has just written (the pipeline's next frame, the units split's previous state), which
 * cost a cross-core miss per cache line when the product meets them one by one. */
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

/* Pipelined projection, chunk `j` of one direction: timesteps [j * S, (j + 1) * S) in processing
 * order (from the end when reversed), one GEMM per batch row, however many threads there are. */
static void FN(project_chunk)(const crnn__layer *L, int64_t B, int64_t T, int reverse,
                              const REAL *in, const REAL *K, REAL *out, int64_t W, int64_t S,
                              int64_t j)
{
    const int64_t s1 = (j + 1) * S < T ? (j + 1) * S : T;
    const int64_t t0 = reverse ? T - s1 : j * S;
    int64_t b;
    for (b = 0; b < B; ++b)
        FN(project)(s1 - j * S, L->in_size, L->units, in + (b * T + t0) * L->in_size, K,
                    L->units, out + (b * T + t0) * W, W);
}

/* One layer, one direction. `out` points at this direction's first column of a (B, T, W)
 * buffer; `h0` / `hn` are (B, H) or NULL; `state` is (B, H) scratch for the lengths path;
 * `flags` are this direction's chunk flags (pipeline only).
 * Units split (par->nslices > 1): the hidden units are cut into slices, each computed by its own
 * BLAS calls; with a barrier this thread computes slice `tid` and meets the threads owning the
 * others after each step (the next step reads every unit of this one); without one it computes
 * every slice in turn, which gives bitwise the same result (nslices == 1: the plain layer).
 * Pipeline (par->chunk > 0): the input projection is made chunk by chunk just ahead of the steps
 * that read it, by thread 1 if it gets there first, else by thread 0 when it reaches the chunk. */
static void FN(layer_direction)(const crnn__layer *L, int d, const REAL *blob, int64_t B,
                                int64_t T, const REAL *in, REAL *out, int64_t W,
                                const int64_t *lengths, const REAL *h0, REAL *hn, REAL *state,
                                const crnn__par *par, int *flags)
{
    const int64_t H = L->units;
    const REAL *K = blob + L->off_kernel[d];
    const REAL *R = blob + L->off_recurrent[d];
    const REAL *P = L->off_panels[d] ? blob + L->off_panels[d] : NULL;
    const REAL *bias = L->has_bias[d] ? blob + L->off_bias[d] : NULL;
    const int reverse = L->direction == CRNN_DIRECTION_REVERSE || d == 1;
    const int64_t ldo = T * W; /* stride between batch rows of one step's frame */
    const int64_t S = par->chunk;
    const int nslices = S ? 1 : par->nslices;
    /* the units split's per-step barrier; the pipeline meets only per chunk */
    crnn__barrier *const barrier = S ? NULL : par->barrier;
    const int lo = barrier ? par->tid : 0, hi = barrier ? par->tid + 1 : nslices;
    int64_t s, b, c0, c1;
    int k;

    if (S) {
        if (par->barrier && par->tid == 1) { /* the projecting thread */
            int64_t j;
            for (j = 0; j * S < T; ++j)
                if (crnn__flag_claim(&flags[j])) {
                    FN(project_chunk)(L, B, T, reverse, in, K, out, W, S, j);
                    crnn__flag_done(&flags[j]);
                }
            return;
        }
    } else {
        for (k = lo; k < hi; ++k) {
            FN(slice)(H, k, nslices, &c0, &c1);
            FN(project)(B * T, L->in_size, c1 - c0, in, K + c0, H, out + c0, W);
        }
    }

#define CRNN__NEED_CHUNK(s)                                                                    \
    if (S && (s) % S == 0) {                                                                   \
        int *f_ = &flags[(s) / S];                                                             \
        if (crnn__flag_claim(f_)) {                                                            \
            FN(project_chunk)(L, B, T, reverse, in, K, out, W, S, (s) / S);                    \
            crnn__flag_done(f_);                                                               \
        } else {                                                                               \
            crnn__flag_wait(par->barrier, f_);                                                 \
        }                                                                                      \
    }

    if (!lengths) {
        const REAL *prev = h0;
        int64_t ldp = H;
        for (s = 0; s < T; ++s) {
            REAL *cur = out + (reverse ? T - 1 - s : s) * W;
            CRNN__NEED_CHUNK(s)
            if (S && s + 1 < T) FN(prefetch_rows)(cur + (reverse ? -W : W), B, ldo, H);
            /* units split: half of prev was written by the other thread; fetch it all at once
             * rather than miss on it line by line inside the product (4 % at B=1, H=256) */
            if (barrier && prev) FN(prefetch_rows)(prev, B, ldp, H);
            for (k = lo; k < hi; ++k) {
                FN(slice)(H, k, nslices, &c0, &c1);
                if (prev) FN(step)(B, H, c1 - c0, prev, ldp, R + c0, H, cur + c0, ldo, P, c0);
                FN(cell_rows)(L->activation, cur + c0, B, ldo, c1 - c0, bias ? bias + c0 : NULL);
            }
            if (barrier) crnn__barrier_wait(barrier);
            prev = cur;
            ldp = ldo;
        }
        for (k = lo; hn && k < hi; ++k) {
            FN(slice)(H, k, nslices, &c0, &c1);
            FN(copy_rows)(B, c1 - c0, prev + c0, ldp, hn + c0, H);
        }
        return;
    }

    for (k = lo; k < hi; ++k) {
        FN(slice)(H, k, nslices, &c0, &c1);
        if (h0) FN(copy_rows)(B, c1 - c0, h0 + c0, H, state + c0, H);
        else for (b = 0; b < B; ++b) memset(state + b * H + c0, 0, (size_t)(c1 - c0) * sizeof(REAL));
    }
    if (barrier) crnn__barrier_wait(barrier);
    for (s = 0; s < T; ++s) {
        const int64_t t = reverse ? T - 1 - s : s;
        REAL *cur = out + t * W;
        CRNN__NEED_CHUNK(s)
        if (S && s + 1 < T) FN(prefetch_rows)(cur + (reverse ? -W : W), B, ldo, H);
        for (k = lo; k < hi; ++k) {
            FN(slice)(H, k, nslices, &c0, &c1);
            FN(step)(B, H, c1 - c0, state, H, R + c0, H, cur + c0, ldo, P, c0);
            FN(cell_rows)(L->activation, cur + c0, B, ldo, c1 - c0, bias ? bias + c0 : NULL);
        }
        /* Everyone must have read the whole state before anyone overwrites its slice. */
        if (barrier) crnn__barrier_wait(barrier);
        for (k = lo; k < hi; ++k) {
            FN(slice)(H, k, nslices, &c0, &c1);
            for (b = 0; b < B; ++b) {
                REAL *row = cur + b * ldo + c0;
                /* Step t is inside sequence b iff t < length: forward runs 0..len-1 and reverse
                 * len-1..0, so the test is the same for both directions. */
                if (t < lengths[b]) memcpy(state + b * H + c0, row, (size_t)(c1 - c0) * sizeof(REAL));
                else memset(row, 0, (size_t)(c1 - c0) * sizeof(REAL));
            }
        }
        if (barrier) crnn__barrier_wait(barrier);
    }
#undef CRNN__NEED_CHUNK
    for (k = lo; hn && k < hi; ++k) {
        FN(slice)(H, k, nslices, &c0, &c1);
        FN(copy_rows)(B, c1 - c0, state + c0, H, hn + c0, H);
    }
}

int FN(crnn__forward)(const crnn_rnn_t *rnn, int64_t b0, int64_t nb, int64_t batch,
                      int64_t timesteps, const void *x, const int64_t *lengths,
                      const void *const *h0, void *y, void *const *h_n, char *ws,
                      const crnn__ws_layout *lay, const crnn__par *par)
{
    /* Rows [b0, b0 + nb) of the batch; every buffer keeps its full-batch strides, so a row range
     * is only a pointer offset and ranges run independently (the batch split across threads).
     * par says how this thread shares the layers with the others (see crnn__par). A stack of
     * bidirectional layers with nslices == 2 is cut by direction instead of by units: with a
     * barrier, thread `tid` runs direction `tid` of each layer, meeting the other after it.
     * The pipeline's threads meet after each layer too: the next one projects this one's output. */
    const REAL *blob = (const REAL *)rnn->blob;
    const REAL *in = (const REAL *)x + b0 * timesteps * rnn->input_size;
    const int64_t nchunks = par->chunk ? (timesteps + par->chunk - 1) / par->chunk : 0;
    int64_t l, e = 0;
    const int by_direction = par->nslices == 2 && !par->chunk && crnn__all_bidirectional(rnn);
    crnn__par whole = *par;
    if (by_direction) {
        whole.nslices = 1;
        whole.barrier = NULL;
    }
    if (lengths) lengths += b0;
    for (l = 0; l < rnn->num_layers; ++l) {
        const crnn__layer *L = &rnn->layers[l];
        const int64_t W = L->units * L->ndir;
        /* Rows [b0, b0 + nb) own a block of every buffer: in y, its rows; in each workspace
         * frame, the rows' share of the frame sized for the widest layer, in which each layer's
         * (nb, T, W) output is dense. The blocks of two row ranges are disjoint whatever the
         * layers' widths, so a thread that runs ahead into layer l + 2 (reusing layer l's frame)
         * never writes where another thread still reads layer l. */
        REAL *out = (l == rnn->num_layers - 1 && y)
                        ? (REAL *)y + b0 * timesteps * W
                        : (REAL *)(ws + lay->frames[l % 2]) + b0 * timesteps * rnn->max_width;
        int d;
        for (d = 0; d < L->ndir; ++d, ++e) {
            const REAL *h0e = h0 && h0[e] ? (const REAL *)h0[e] + b0 * L->units : NULL;
            REAL *hne = h_n && h_n[e] ? (REAL *)h_n[e] + b0 * L->units : NULL;
            /* each direction has its own state scratch so two can run at once */
            REAL *state = (REAL *)(ws + lay->state) + (b0 + (int64_t)d * batch) * rnn->max_units;
            if (by_direction && par->barrier && d != par->tid) continue;
            FN(layer_direction)(L, d, blob, nb, timesteps, in, out + d * L->units, W, lengths,
                                h0e, hne, state, &whole, par->flags ? par->flags + e * nchunks : NULL);
        }
        /* the next layer reads every unit of this one */
        if ((by_direction || par->chunk) && par->barrier) crnn__barrier_wait(par->barrier);
        in = out;
    }
    return CRNN_OK;
}
