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

/* Per-step recurrent product cur(B, H) += prev(B, H) @ R(H, H); rows `ldp` / `ldc` apart.
 * Tiny shapes use a plain loop: a BLAS call costs more than the arithmetic there. */
static void FN(step)(int64_t B, int64_t H, const REAL *prev, int64_t ldp, const REAL *R,
                     REAL *cur, int64_t ldc)
{
    if (H <= 8) {
        int64_t b, i, j;
        for (b = 0; b < B; ++b) {
            const REAL *p = prev + b * ldp;
            REAL *c = cur + b * ldc;
            for (i = 0; i < H; ++i) {
                const REAL pi = p[i];
                const REAL *r = R + i * H;
                for (j = 0; j < H; ++j) c[j] += pi * r[j];
            }
        }
    } else if (B == 1) {
        GEMV_T((int)H, (int)H, (REAL)1, R, (int)H, prev, (REAL)1, cur);
    } else {
        GEMM((int)B, (int)H, (int)H, (REAL)1, prev, (int)ldp, R, (int)H, (REAL)1, cur, (int)ldc);
    }
}

/* Input projection out[r, :H] = in[r, :] @ K for r < rows; out rows `ldo` apart. Split into
 * chunks so that every BLAS integer fits in an int. */
static void FN(project)(int64_t rows, int64_t din, int64_t H, const REAL *in, const REAL *K,
                        REAL *out, int64_t ldo)
{
    const int64_t chunk = CRNN__BLAS_INT_MAX;
    int64_t r0;
    if (H <= 8 && din <= 16) {
        int64_t r, i, j;
        for (r = 0; r < rows; ++r) {
            const REAL *a = in + r * din;
            REAL *c = out + r * ldo;
            for (j = 0; j < H; ++j) c[j] = 0;
            for (i = 0; i < din; ++i) {
                const REAL ai = a[i];
                const REAL *k = K + i * H;
                for (j = 0; j < H; ++j) c[j] += ai * k[j];
            }
        }
        return;
    }
    for (r0 = 0; r0 < rows; r0 += chunk) {
        int64_t m = rows - r0 < chunk ? rows - r0 : chunk;
        GEMM((int)m, (int)H, (int)din, (REAL)1, in + r0 * din, (int)din, K, (int)H, (REAL)0,
             out + r0 * ldo, (int)ldo);
    }
}

static void FN(copy_rows)(int64_t rows, int64_t n, const REAL *src, int64_t lds, REAL *dst,
                          int64_t ldd)
{
    int64_t r;
    for (r = 0; r < rows; ++r) memcpy(dst + r * ldd, src + r * lds, (size_t)n * sizeof(REAL));
}

/* One layer, one direction. `out` points at this direction's first column of a (B, T, W)
 * buffer; `h0` / `hn` are (B, H) or NULL; `state` is (B, H) scratch for the lengths path. */
static void FN(layer_direction)(const crnn__layer *L, int d, const REAL *blob, int64_t B,
                                int64_t T, const REAL *in, REAL *out, int64_t W,
                                const int64_t *lengths, const REAL *h0, REAL *hn, REAL *state)
{
    const int64_t H = L->units;
    const REAL *K = blob + L->off_kernel[d];
    const REAL *R = blob + L->off_recurrent[d];
    const REAL *bias = L->has_bias[d] ? blob + L->off_bias[d] : NULL;
    const int reverse = L->direction == CRNN_DIRECTION_REVERSE || d == 1;
    const int64_t ldo = T * W; /* stride between batch rows of one step's frame */
    int64_t s, b;

    FN(project)(B * T, L->in_size, H, in, K, out, W);

    if (!lengths) {
        const REAL *prev = h0;
        int64_t ldp = H;
        for (s = 0; s < T; ++s) {
            REAL *cur = out + (reverse ? T - 1 - s : s) * W;
            if (prev) FN(step)(B, H, prev, ldp, R, cur, ldo);
            FN(cell_rows)(L->activation, cur, B, ldo, H, bias);
            prev = cur;
            ldp = ldo;
        }
        if (hn) FN(copy_rows)(B, H, prev, ldp, hn, H);
        return;
    }

    if (h0) FN(copy_rows)(B, H, h0, H, state, H);
    else memset(state, 0, (size_t)(B * H) * sizeof(REAL));
    for (s = 0; s < T; ++s) {
        const int64_t t = reverse ? T - 1 - s : s;
        REAL *cur = out + t * W;
        FN(step)(B, H, state, H, R, cur, ldo);
        FN(cell_rows)(L->activation, cur, B, ldo, H, bias);
        for (b = 0; b < B; ++b) {
            REAL *row = cur + b * ldo;
            /* Step t is inside sequence b iff t < length: forward runs 0..len-1 and reverse
             * len-1..0, so the test is the same for both directions. */
            if (t < lengths[b]) memcpy(state + b * H, row, (size_t)H * sizeof(REAL));
            else memset(row, 0, (size_t)H * sizeof(REAL));
        }
    }
    if (hn) memcpy(hn, state, (size_t)(B * H) * sizeof(REAL));
}

int FN(crnn__forward)(const crnn_rnn_t *rnn, int64_t b0, int64_t nb, int64_t batch,
                      int64_t timesteps, const void *x, const int64_t *lengths,
                      const void *const *h0, void *y, void *const *h_n, char *ws,
                      const crnn__ws_layout *lay)
{
    /* Rows [b0, b0 + nb) of the batch; every buffer keeps its full-batch strides, so a row range
     * is only a pointer offset and ranges run independently (the batch split across threads). */
    const REAL *blob = (const REAL *)rnn->blob;
    const REAL *in = (const REAL *)x + b0 * timesteps * rnn->input_size;
    REAL *state = (REAL *)(ws + lay->state) + b0 * rnn->max_units;
    int64_t l, e = 0;
    (void)batch;
    if (lengths) lengths += b0;
    for (l = 0; l < rnn->num_layers; ++l) {
        const crnn__layer *L = &rnn->layers[l];
        const int64_t W = L->units * L->ndir;
        REAL *out = (l == rnn->num_layers - 1 && y) ? (REAL *)y : (REAL *)(ws + lay->frames[l % 2]);
        int d;
        out += b0 * timesteps * W;
        for (d = 0; d < L->ndir; ++d, ++e) {
            const REAL *h0e = h0 && h0[e] ? (const REAL *)h0[e] + b0 * L->units : NULL;
            REAL *hne = h_n && h_n[e] ? (REAL *)h_n[e] + b0 * L->units : NULL;
            FN(layer_direction)(L, d, blob, nb, timesteps, in, out + d * L->units, W, lengths,
                                h0e, hne, state);
        }
        in = out;
    }
    return CRNN_OK;
}
