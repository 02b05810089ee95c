/* cell_gru.h - the GRU cells, templated on REAL / FN() by rnn_template.h (oneDNN
 * ref_postgemm_gru / Keras GRUCell). Gates z, r, h per block of units.
 *
 * Reset after (Keras 3's default, PyTorch, ONNX linear_before_reset=1): one recurrent product
 * for all gates into the scratch rows (the candidate's part must stay apart), then per block
 *   z, r = ract(x W + h R + b),  n = act(x W_h + b_h + r * (h R_h + rb_h)),
 *   h_t = z * h_{t-1} + (1 - z) * n
 * Reset before (Keras reset_after=False, ONNX linear_before_reset=0): two phases, because the
 * candidate's product reads r * h_{t-1} of every unit (the units split meets in between):
 *   phase 0: z, r = ract(x W + h R_zr + b); rh = r * h_{t-1}
 *   phase 1: n = act(x W_h + rh R_h + b_h); h_t = z * h_{t-1} + (1 - z) * n
 * b holds the input and recurrent biases added where they add (rnn.c); rb_h is the
 * reset-after candidate's recurrent bias. With no previous state (step 0 without h0) the
 * products are skipped and h_{t-1} reads as zeros.
 *
 * Included twice over: with CRNN__CELL_POST, once per instruction set, for the element-wise parts
 * (activations inlined per block); without, once, for the steps. */

#ifdef CRNN__CELL_POST

/* The last block of units where it is narrower than a block, gathered from the rows as in
 * lstm_post_tail: the operations of gru_post's passes, in their order, over runs of
 * rows * len values; h scattered back. Against the passes row by row (float32, AVX-512, whole
 * calls): (8,2,10,3) 1.31x, (256,20,16,5) 1.54x, (4,100,32,20) 1.03x. */
static void KFN(gru_post_tail)(const FN(step_args) *a, int64_t j0, int64_t len)
{
    REAL buf[5 * CRNN__TAIL_VALUES];
    int64_t sel[CRNN__TAIL_VALUES];
    const REAL *bz = a->bias ? a->bias + 3 * j0 : NULL, *rb = a->rbias ? a->rbias + j0 : NULL;
    int64_t b = 0, nr, r, k;
    while ((nr = KFN(tail_rows)(a, &b, len, sel)) > 0) {
        const int64_t n = nr * len;
        /* z, r contiguous: one pass of the recurrent activation over both */
        REAL *gz = buf, *gr = gz + n, *gh = gr + n, *rec = gh + n, *hq = rec + n;
        for (r = 0; r < nr; ++r) {
            const int64_t o = r * len;
            const REAL *g = a->gx + sel[r] * a->ldg + 3 * j0;
            const REAL *s = a->scratch + sel[r] * a->lds + 3 * j0;
            const REAL *hp = a->prev ? a->prev + sel[r] * a->ldp + j0 : NULL;
            for (k = 0; k < len; ++k) {
                REAL z = g[k], rr = g[len + k], e = hp ? s[2 * len + k] : (REAL)0;
                if (hp) {
                    z += s[k];
                    rr += s[len + k];
                }
                if (bz) {
                    z += bz[k];
                    rr += bz[len + k];
                }
                if (rb) e += rb[k];
                gz[o + k] = z;
                gr[o + k] = rr;
                gh[o + k] = bz ? g[2 * len + k] + bz[2 * len + k] : g[2 * len + k];
                rec[o + k] = e;
                hq[o + k] = hp ? hp[k] : (REAL)0;
            }
        }
        KFN(activate_inline)(a->ract, gz, NULL, 2 * n);
        for (k = 0; k < n; ++k) gh[k] = gh[k] + gr[k] * rec[k];
        KFN(activate_inline)(a->act, gh, NULL, n);
        for (k = 0; k < n; ++k) hq[k] = KMULADD2(gz[k], hq[k], (REAL)1 - gz[k], gh[k]);
        for (r = 0; r < nr; ++r) {
            REAL *h = a->out + sel[r] * a->ldo + j0;
            for (k = 0; k < len; ++k) h[k] = hq[r * len + k];
        }
    }
}

/* Unit k of a whole block (CRNN__BLOCK_UNITS wide) of a reset-after GRU with Keras's
 * activations and both biases: the operations of gru_post's passes, in their order. g: the
 * block's projections (z, r, h, a block apart), s its recurrent products, bz the biases, rb the
 * candidate's recurrent bias, hq h_{t-1}; h_t written. */
static inline __attribute__((always_inline)) void KFN(gru_unit)(const REAL *g, const REAL *s,
                                                                const REAL *bz, const REAL *rb,
                                                                const REAL *hq, REAL *h,
                                                                int64_t k)
{
    const int64_t vb = CRNN__BLOCK_UNITS(sizeof(REAL));
    const REAL z = VSIGMOID((g[k] + s[k]) + bz[k]);
    const REAL r = VSIGMOID((g[vb + k] + s[vb + k]) + bz[vb + k]);
    const REAL n = VTANH((g[2 * vb + k] + bz[2 * vb + k]) + r * (s[2 * vb + k] + rb[k]));
    h[k] = KMULADD2(z, hq[k], (REAL)1 - z, n);
}

static void KFN(gru_post)(const FN(step_args) *a, int64_t c0, int64_t c1)
{
    const int64_t H = a->H, vb = a->vb;
    const int fused = (int)a->ract == CRNN_ACTIVATION_SIGMOID &&
                      (int)a->act == CRNN_ACTIVATION_TANH && a->rbias;
    /* a narrow last block goes through gru_post_tail where there are rows enough to gather */
    const int64_t tail = KFN(tail_units)(a, c1), cb = c1 - tail;
    int64_t b, j0, k;
    for (b = 0; b < a->B && c0 < cb; ++b) {
        REAL *g = a->gx + b * a->ldg, *h = a->out + b * a->ldo;
        const REAL *s = a->scratch + b * a->lds;
        const REAL *hp = a->prev ? a->prev + b * a->ldp : NULL;
        if (!CRNN__ACTIVE(a, b)) continue;
        for (j0 = c0; j0 < cb; j0 += vb) {
            const int64_t len = H - j0 < vb ? H - j0 : vb;
            REAL *gz = g + 3 * j0, *gr = gz + len, *gh = gr + len;
            const REAL *sz = s + 3 * j0, *sh = sz + 2 * len;
            const REAL *bz = a->bias ? a->bias + 3 * j0 : NULL;
            if (fused && hp && bz && len == vb) {
                /* Keras's default activations with both biases in one pass over the block
                 * (gru_unit; a whole block, its width a constant, as lstm_post: 5.7 against 4.9
                 * cycles), two blocks at a time where there are two (as lstm_post; float32,
                 * 2 threads: GRU (1,1000,32,64) 1.09x, (1,50,64,128) 1.06x, (16,50,128,128)
                 * 1.01x) */
                const REAL *rb = a->rbias + j0, *hq = hp + j0;
                REAL *hj = h + j0;
                if (KPAIR_BLOCKS && j0 + 2 * vb <= cb) {
                    CRNN__NO_ALIAS_LOOP /* gates, products, biases and states never overlap */
                    for (k = 0; k < CRNN__BLOCK_UNITS(sizeof(REAL)); ++k) {
                        KFN(gru_unit)(gz, sz, bz, rb, hq, hj, k);
                        KFN(gru_unit)(gz + 3 * vb, sz + 3 * vb, bz + 3 * vb, rb + vb, hq + vb,
                                      hj + vb, k);
                    }
                    j0 += vb;
                } else {
                    CRNN__NO_ALIAS_LOOP
                    for (k = 0; k < CRNN__BLOCK_UNITS(sizeof(REAL)); ++k)
                        KFN(gru_unit)(gz, sz, bz, rb, hq, hj, k);
                }
                continue;
            }
            if (hp)
                for (k = 0; k < 2 * len; ++k) gz[k] += sz[k];
            KFN(activate_inline)(a->ract, gz, bz, 2 * len);
            for (k = 0; k < len; ++k) {
                REAL rec = hp ? sh[k] : (REAL)0;
                if (a->rbias) rec += a->rbias[j0 + k];
                gh[k] = (bz ? gh[k] + bz[2 * len + k] : gh[k]) + gr[k] * rec;
            }
            KFN(activate_inline)(a->act, gh, NULL, len);
            for (k = 0; k < len; ++k)
                h[j0 + k] = KMULADD2(gz[k], hp ? hp[j0 + k] : (REAL)0, (REAL)1 - gz[k], gh[k]);
        }
    }
    if (tail) KFN(gru_post_tail)(a, cb, tail);
}

/* The narrow last block of reset before, gathered from the rows as in gru_post_tail. Phase 0:
 * z and r activated over runs of rows * len values, z scattered back into the gates for phase 1,
 * rh = r * h_{t-1}; phase 1: the candidate over such runs, then h_t. */
static void KFN(gru_before_post_tail)(const FN(step_args) *a, int phase, int64_t j0, int64_t len)
{
    REAL buf[2 * CRNN__TAIL_VALUES];
    int64_t sel[CRNN__TAIL_VALUES];
    const int64_t H = a->H;
    const REAL *bz = a->bias ? a->bias + 3 * j0 : NULL;
    int64_t b = 0, nr, r, k;
    while ((nr = KFN(tail_rows)(a, &b, len, sel)) > 0) {
        const int64_t n = nr * len;
        REAL *gz = buf, *gr = gz + n; /* phase 0: z, r contiguous; phase 1: the candidate */
        for (r = 0; r < nr; ++r) {
            const int64_t o = r * len;
            const REAL *g = a->gx + sel[r] * a->ldg + 3 * j0;
            const REAL *hp = a->prev ? a->prev + sel[r] * a->ldp : NULL;
            if (phase == 0) {
                const REAL *sz = a->scratch + sel[r] * a->lds + 2 * j0;
                for (k = 0; k < len; ++k) {
                    REAL z = g[k], rr = g[len + k];
                    if (hp) {
                        z += sz[k];
                        rr += sz[len + k];
                    }
                    if (bz) {
                        z += bz[k];
                        rr += bz[len + k];
                    }
                    gz[o + k] = z;
                    gr[o + k] = rr;
                }
            } else {
                const REAL *cb = a->cand + sel[r] * a->lds + j0;
                for (k = 0; k < len; ++k) {
                    REAL v = g[2 * len + k];
                    if (hp) v += cb[k];
                    if (bz) v += bz[2 * len + k];
                    gz[o + k] = v;
                }
            }
        }
        if (phase == 0) KFN(activate_inline)(a->ract, gz, NULL, 2 * n);
        else KFN(activate_inline)(a->act, gz, NULL, n);
        for (r = 0; r < nr; ++r) {
            const int64_t o = r * len;
            REAL *g = a->gx + sel[r] * a->ldg + 3 * j0;
            const REAL *hp = a->prev ? a->prev + sel[r] * a->ldp + j0 : NULL;
            if (phase == 0) {
                REAL *rh = a->rh + sel[r] * H + j0;
                for (k = 0; k < len; ++k) {
                    g[k] = gz[o + k];
                    rh[k] = hp ? gr[o + k] * hp[k] : (REAL)0;
                }
            } else {
                REAL *h = a->out + sel[r] * a->ldo + j0;
                for (k = 0; k < len; ++k)
                    h[k] = KMULADD2(g[k], hp ? hp[k] : (REAL)0, (REAL)1 - g[k], gz[o + k]);
            }
        }
    }
}

/* Reset before: phase 0 makes z, r and rh = r * h_{t-1}; phase 1 the candidate and h_t. */
static void KFN(gru_before_post)(const FN(step_args) *a, int phase, int64_t c0, int64_t c1)
{
    const int64_t H = a->H, vb = a->vb;
    const REAL *const cand = a->cand; /* (r * h) R_h */
    /* a narrow last block goes through gru_before_post_tail where there are rows enough */
    const int64_t tail = KFN(tail_units)(a, c1), ce = c1 - tail;
    int64_t b, j0, k;
    for (b = 0; b < a->B; ++b) {
        REAL *g = a->gx + b * a->ldg;
        const REAL *hp = a->prev ? a->prev + b * a->ldp : NULL;
        if (phase == 0) {
            REAL *rh = a->rh + b * H;
            const REAL *s = a->scratch + b * a->lds;
            if (!CRNN__ACTIVE(a, b)) { /* defined values for the next product's row */
                memset(rh + c0, 0, (size_t)(c1 - c0) * sizeof(REAL));
                continue;
            }
            for (j0 = c0; j0 < ce; j0 += vb) {
                const int64_t len = H - j0 < vb ? H - j0 : vb;
                REAL *gz = g + 3 * j0, *gr = gz + len;
                const REAL *sz = s + 2 * j0;
                if (hp)
                    for (k = 0; k < 2 * len; ++k) gz[k] += sz[k];
                KFN(activate_inline)(a->ract, gz, a->bias ? a->bias + 3 * j0 : NULL, 2 * len);
                for (k = 0; k < len; ++k) rh[j0 + k] = hp ? gr[k] * hp[j0 + k] : (REAL)0;
            }
        } else {
            REAL *h = a->out + b * a->ldo;
            const REAL *cb = cand + b * a->lds;
            if (!CRNN__ACTIVE(a, b)) continue;
            for (j0 = c0; j0 < ce; j0 += vb) {
                const int64_t len = H - j0 < vb ? H - j0 : vb;
                REAL *gz = g + 3 * j0, *gh = gz + 2 * len;
                if (hp)
                    for (k = 0; k < len; ++k) gh[k] += cb[j0 + k];
                KFN(activate_inline)(a->act, gh, a->bias ? a->bias + 3 * j0 + 2 * len : NULL,
                                     len);
                for (k = 0; k < len; ++k)
                    h[j0 + k] = KMULADD2(gz[k], hp ? hp[j0 + k] : (REAL)0, (REAL)1 - gz[k], gh[k]);
            }
        }
    }
    if (tail) KFN(gru_before_post_tail)(a, phase, ce, tail);
}

#else

static void FN(step_gru)(const FN(step_args) *a, int phase, int64_t c0, int64_t c1)
{
    const int64_t H = a->H;
    (void)phase;
    if (a->prev)
        FN(product)(a->kern, a->B, H, 3 * (c1 - c0), a->prev, a->ldp, a->R[0] + 3 * c0, 3 * H,
                    a->scratch + 3 * c0, a->lds, a->P[0], 3 * c0, 0, (int)(a->t & 1));
    a->kern->gru_post(a, c0, c1);
}

static void FN(step_gru_before)(const FN(step_args) *a, int phase, int64_t c0, int64_t c1)
{
    const int64_t H = a->H;
    if (phase == 0) {
        if (a->prev)
            FN(product)(a->kern, a->B, H, 2 * (c1 - c0), a->prev, a->ldp, a->R[0] + 2 * c0, 2 * H,
                        a->scratch + 2 * c0, a->lds, a->P[0], 2 * c0, 0, (int)(a->t & 1));
    } else if (a->prev) {
        FN(product)(a->kern, a->B, H, c1 - c0, a->rh, H, a->R[1] + c0, H,
                    a->cand + c0, a->lds, a->P[1], c0, 0, (int)(a->t & 1));
    }
    a->kern->gru_before_post(a, phase, c0, c1);
}

#endif
