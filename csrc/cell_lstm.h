/* cell_lstm.h - the LSTM cell, templated on REAL / FN() by rnn_template.h (oneDNN
 * ref_postgemm_lstm / jit_uni_lstm_postgemm, Keras LSTMCell).
 *
 * Four gates, stored per block of units as i, f, o, c (crnn__cells: the three gates of the
 * recurrent activation contiguous). The recurrent product accumulates into the step's
 * projection rows; then the element-wise part, per block:
 *   i, f, o = ract(. + b),  g = act(. + b),  c_t = f * c_{t-1} + i * g,  h_t = o * act(c_t)
 * A batch of one with AVX2 or AVX-512 does both a block at a time (lstm_step_row).
 * c lives in its own (B, H) buffer, updated in place (each unit's c is read and written by the
 * thread that owns the unit). Rows past their length are skipped: their c stays.
 *
 * Included twice over: with CRNN__CELL_POST, once per instruction set, for the element-wise part
 * (KFN(lstm_post), with the activations inlined per block) and the batch of one's step
 * (KFN(lstm_step_row)); without, once, for the step. */

#ifdef CRNN__CELL_POST

/* The last block of units where it is narrower than a block (H % vb units; the whole layer
 * under vb units). Row by row, each pass over it is a vector loop set up for a few values and
 * mostly its scalar remainder: at the tutorial's H = 3, 9, 3 and 3 values a row. So the active
 * rows' gates are gathered, a chunk of rows at a time, into runs of rows * len values, the
 * activations run over those, c is updated in place and h scattered back. Every value goes
 * through the operations of lstm_post's passes, in their order (the float32 outputs are
 * bitwise the same). Measured against the passes row by row (float32, AVX-512, whole calls):
 * (8,2,10,3) 1.19x, (4,200,16,3) 1.16x, (4,100,32,20) 1.13x, (64,20,16,5) 1.81x. With fewer
 * rows than CRNN__TAIL_ROWS it cost more than it saved (2 rows 0.93-0.96x, 1 row 0.86x), and
 * those steps keep the row-by-row passes. */
static void KFN(lstm_post_tail)(const FN(step_args) *a, int64_t j0, int64_t len)
{
    REAL buf[5 * CRNN__TAIL_VALUES];
    int64_t sel[CRNN__TAIL_VALUES];
    const REAL *rows[CRNN__TAIL_VALUES];
    const REAL *bi = a->bias ? a->bias + 4 * j0 : NULL;
    const int fused =
        (int)a->ract == CRNN_ACTIVATION_SIGMOID && (int)a->act == CRNN_ACTIVATION_TANH;
    int64_t b = 0, nr, r, k;
    while ((nr = KFN(tail_rows)(a, &b, len, sel)) > 0) {
        const int64_t n = nr * len;
        /* i, f, o contiguous: one pass of the recurrent activation over the three */
        REAL *gi = buf, *gf = gi + n, *go = gf + n, *gc = go + n, *hs = gc + n;
        for (r = 0; r < nr; ++r) rows[r] = a->gx + sel[r] * a->ldg + 4 * j0;
        for (k = 0; k < len; ++k) {
            /* a unit at a time over the rows, its four gates and biases at a time: a loop over
             * each row's few values spent more on its vector set-up and scalar remainder than
             * on the values (1.05-1.09x on whole calls at 3-7 units, 0.99x at 9 and 13; the
             * GRUs' gathers, which compute more per value, measured 0.86-0.90x this way) */
            REAL *di = gi + k, *df = gf + k, *dq = go + k, *dc = gc + k;
            if (bi) {
                const REAL b0 = bi[k], b1 = bi[len + k];
                const REAL b2 = bi[2 * len + k], b3 = bi[3 * len + k];
                for (r = 0; r < nr; ++r) {
                    const REAL *g = rows[r] + k;
                    di[r * len] = g[0] + b0;
                    df[r * len] = g[len] + b1;
                    dq[r * len] = g[2 * len] + b2;
                    dc[r * len] = g[3 * len] + b3;
                }
            } else {
                for (r = 0; r < nr; ++r) {
                    const REAL *g = rows[r] + k;
                    di[r * len] = g[0];
                    df[r * len] = g[len];
                    dq[r * len] = g[2 * len];
                    dc[r * len] = g[3 * len];
                }
            }
        }
        if (fused && n <= CRNN__TAIL_FUSED_VALUES) {
            /* A short run (the tutorial's 8 rows of 3 units: 24 values) in one pass, c gathered
             * beside the gates (hs) and scattered back with h, unit by unit over the rows as
             * above (a row's few values copied with memcpy cost more). The passes' set-up and
             * remainders were most of their time there: LSTM (8,2,10,3) 1.05x on the whole
             * call (AVX2, Zen 3); over 125 values (64,20,16,5) the passes were faster (0.93x
             * this way). */
            for (k = 0; k < len; ++k)
                for (r = 0; r < nr; ++r) hs[r * len + k] = a->c[sel[r] * a->ldc + j0 + k];
            CRNN__NO_ALIAS_LOOP
            for (k = 0; k < n; ++k) {
                const REAL ig = VSIGMOID(gi[k]), fg = VSIGMOID(gf[k]), og = VSIGMOID(go[k]);
                const REAL cn = KMULADD2(fg, hs[k], ig, VTANH(gc[k]));
                gc[k] = cn;
                hs[k] = VTANH(cn) * og;
            }
            for (k = 0; k < len; ++k)
                for (r = 0; r < nr; ++r) {
                    a->c[sel[r] * a->ldc + j0 + k] = gc[r * len + k];
                    a->out[sel[r] * a->ldo + j0 + k] = hs[r * len + k];
                }
            continue;
        }
        KFN(activate_inline)(a->ract, gi, NULL, 3 * n);
        KFN(activate_inline)(a->act, gc, NULL, n);
        for (r = 0; r < nr; ++r) { /* c in place, row by row */
            REAL *c = a->c + sel[r] * a->ldc + j0;
            const int64_t o = r * len;
            for (k = 0; k < len; ++k) {
                const REAL cn = KMULADD2(gf[o + k], c[k], gi[o + k], gc[o + k]);
                c[k] = cn;
                hs[o + k] = cn;
            }
        }
        KFN(activate_inline)(a->act, hs, NULL, n);
        for (r = 0; r < nr; ++r) {
            REAL *h = a->out + sel[r] * a->ldo + j0;
            for (k = 0; k < len; ++k) h[k] = hs[r * len + k] * go[r * len + k];
        }
    }
}

/* Unit k of a whole block (CRNN__BLOCK_UNITS wide) with Keras's activations: the operations of
 * lstm_post's passes, in their order. g: the block's gates (i, f, o, c, a block apart), bi their
 * biases; c updated in place, h written. */
static inline __attribute__((always_inline)) void KFN(lstm_unit)(const REAL *g, const REAL *bi,
                                                                 REAL *c, REAL *h, int64_t k)
{
    const int64_t vb = CRNN__BLOCK_UNITS(sizeof(REAL));
    const REAL ig = VSIGMOID(g[k] + bi[k]), fg = VSIGMOID(g[vb + k] + bi[vb + k]);
    const REAL og = VSIGMOID(g[2 * vb + k] + bi[2 * vb + k]);
    const REAL cg = VTANH(g[3 * vb + k] + bi[3 * vb + k]);
    const REAL cn = KMULADD2(fg, c[k], ig, cg);
    c[k] = cn;
    h[k] = VTANH(cn) * og;
}

/* noinline: lstm_step_row inlines everything else it calls */
static __attribute__((noinline)) void KFN(lstm_post)(const FN(step_args) *a, int64_t c0,
                                                     int64_t c1)
{
    const int64_t H = a->H, vb = a->vb;
    const int fused =
        (int)a->ract == CRNN_ACTIVATION_SIGMOID && (int)a->act == CRNN_ACTIVATION_TANH;
    /* a narrow last block goes through lstm_post_tail where there are rows enough to gather */
    const int64_t tail = KFN(tail_units)(a, c1), cb = c1 - tail;
    int64_t b, j0, k;
    for (b = 0; b < a->B && c0 < cb; ++b) {
        REAL *g = a->gx + b * a->ldg, *h = a->out + b * a->ldo, *c = a->c + b * a->ldc;
        if (!CRNN__ACTIVE(a, b)) continue;
        for (j0 = c0; j0 < cb; j0 += vb) {
            const int64_t len = H - j0 < vb ? H - j0 : vb;
            REAL *gi = g + 4 * j0, *gf = gi + len, *go = gf + len, *gc = go + len;
            const REAL *bi = a->bias ? a->bias + 4 * j0 : NULL;
            if (fused && bi && len == vb) {
                /* Keras's default activations in one pass over the block, the gates kept in
                 * registers (lstm_unit). A whole block, its width a constant: this compiles to
                 * whole vectors with no remainder loop (run-time width: 7.0 against 6.5 cycles
                 * a unit, AVX-512, hot data). Two blocks at a time where there are two: each
                 * unit is a long chain of dependent operations, and the two blocks' chains
                 * interleave in one pass where the core would overlap only the end of one
                 * block's with the start of the next (AVX-512 only, KPAIR_BLOCKS; 2 threads:
                 * float32 LSTM (1,1000,32,64) 1.02-1.03x, (32,50,128,256) 1.01-1.03x,
                 * (16,50,128,128) 1.01x, float64 (1,1000,32,64) 1.05x; same results). */
                REAL *cj = c + j0, *hj = h + j0;
                if (KPAIR_BLOCKS && j0 + 2 * vb <= cb) {
                    CRNN__NO_ALIAS_LOOP /* gates, biases, c and h never overlap */
                    for (k = 0; k < CRNN__BLOCK_UNITS(sizeof(REAL)); ++k) {
                        KFN(lstm_unit)(gi, bi, cj, hj, k);
                        KFN(lstm_unit)(gi + 4 * vb, bi + 4 * vb, cj + vb, hj + vb, k);
                    }
                    j0 += vb;
                } else {
                    CRNN__NO_ALIAS_LOOP
                    for (k = 0; k < CRNN__BLOCK_UNITS(sizeof(REAL)); ++k)
                        KFN(lstm_unit)(gi, bi, cj, hj, k);
                }
                continue;
            }
            KFN(activate_inline)(a->ract, gi, bi, 3 * len);
            KFN(activate_inline)(a->act, gc, bi ? bi + 3 * len : NULL, len);
            for (k = 0; k < len; ++k) {
                const REAL cn = KMULADD2(gf[k], c[j0 + k], gi[k], gc[k]);
                c[j0 + k] = cn;
                h[j0 + k] = cn;
            }
            KFN(activate_inline)(a->act, h + j0, NULL, len);
            for (k = 0; k < len; ++k) h[j0 + k] *= go[k];
        }
    }
    if (tail) KFN(lstm_post_tail)(a, cb, tail);
}

#if KVBYTES >= 32
/* A batch of one's whole step on the panels (step_lstm), block after block of units: the
 * product of the block's four gates (one panel: 4 vb columns, one row tile), then the
 * block's element-wise part, before the next block's product. The element-wise part of a block
 * is a few long chains of dependent operations, the product a stream of loads from L2 and
 * multiply-adds: issued one after the other, the core runs the one block's chains while the
 * next block's loads arrive, where the product of all blocks then the element-wise part of all
 * overlapped only where the two meet. Blocks in the order of panels_gemm's walk (row_back), each
 * tile's sums those of panels_gemm, each block's element-wise part that of lstm_post: the same
 * bits (but for the float64 drift KMULADD2's comment describes). Measured against the product
 * then lstm_post (float32, in-process, median ratios): AVX-512 (1,1000,32,64) 1.10x (a
 * pipeline), (1,50,64,128) 1.05x and (1,100,128,256) 1.02x (units splits), (1,100,16,128) at 1
 * thread 1.03x, float64 (1,1000,32,64) 1.01x at 2 threads and 1.05x at 1; AVX2 1.00-1.06x. Not
 * with SSE2 (0.97-1.03x). Everything in this function is inlined into it (flatten: with the
 * product beside it GCC stopped inlining the float64 tanh, and the element-wise loop stayed
 * scalar, 14x slower), but lstm_post (noinline).
 * Two or more rows gain nothing from it: panels_gemm calling back after each row tile's sums of
 * a block, for that tile's element-wise part before the next tile's products (the same bits),
 * measured in one process against the product then lstm_post (float32, AVX-512, 2-vCPU Xeon):
 * LSTM (8,50,128,128) 0.99x at 1 thread, (16,50,128,128) 1.02x and (32,50,128,256) 1.01x at 2,
 * (4,100,64,64) 0.98x at 1. A batched product keeps the multiply-add ports busy, and the
 * element-wise part needs those same ports; a batch of one's product waits on L2. */
static __attribute__((flatten)) void KFN(lstm_step_row)(const FN(step_args) *a, int64_t c0,
                                                         int64_t c1)
{
    const int64_t H = a->H, vb = a->vb, nb = (c1 - c0 + vb - 1) / vb;
    const int64_t kpw = (int64_t)(CRNN__PANEL_BYTES / sizeof(REAL));
    const int64_t kcw = KRW; /* columns of a row tile */
    const int back = KFN(row_back)((double)H * (double)(4 * (c1 - c0)) * (double)sizeof(REAL),
                                   (int)(a->t & 1));
    const int fused = (int)a->ract == CRNN_ACTIVATION_SIGMOID &&
                      (int)a->act == CRNN_ACTIVATION_TANH && a->bias && CRNN__ACTIVE(a, 0);
    const REAL *panels = a->P[0];
    int64_t i, j, k;
    for (i = 0; i < nb; ++i) {
        const int64_t j0 = c0 + (back ? nb - 1 - i : i) * vb, j1 = j0 + vb < c1 ? j0 + vb : c1;
        for (j = 4 * j0; j < 4 * j1; j += kcw)
            KFN(row_tile)(H, panels + j / kpw * kpw * H + j % kpw,
                          4 * j1 - j < kcw ? 4 * j1 - j : kcw, a->prev, a->gx + j, 1);
        if (fused && j1 - j0 == vb) {
            const REAL *gi = a->gx + 4 * j0, *bi = a->bias + 4 * j0;
            REAL *cj = a->c + j0, *hj = a->out + j0;
            CRNN__NO_ALIAS_LOOP
            for (k = 0; k < CRNN__BLOCK_UNITS(sizeof(REAL)); ++k)
                KFN(lstm_unit)(gi, bi, cj, hj, k);
        } else {
            KFN(lstm_post)(a, j0, j1);
        }
    }
}
#endif

#else

static void FN(step_lstm)(const FN(step_args) *a, int phase, int64_t c0, int64_t c1)
{
    const int64_t H = a->H;
    (void)phase;
    if (a->prev && a->B == 1 && a->kern->lstm_step_row && FN(on_panels)(H, a->P[0])) {
        a->kern->lstm_step_row(a, c0, c1); /* product and element-wise part block by block */
        return;
    }
    if (a->prev)
        FN(product)(a->kern, a->B, H, 4 * (c1 - c0), a->prev, a->ldp, a->R[0] + 4 * c0, 4 * H,
                    a->gx + 4 * c0, a->ldg, a->P[0], 4 * c0, 1, (int)(a->t & 1));
    a->kern->lstm_post(a, c0, c1);
}

#endif
