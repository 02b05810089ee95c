/* cell_lstm.h - the LSTM cell, templated on REAL / FN() by rnn_template.h (oneDNN
 * ref_postgemm_lstm / Keras LSTMCell).
 *
 * Four gates, stored per block of units as i, f, o, c (crnn__cells: the three gates of the
 * recurrent activation contiguous). The recurrent product accumulates into the step's
 * projection rows; then, per block:
 *   i, f, o = ract(. + b),  g = act(. + b),  c_t = f * c_{t-1} + i * g,  h_t = o * act(c_t)
 * c lives in its own (B, H) buffer, updated in place (each unit's c is read and written by the
 * thread that owns the unit). Rows past their length are skipped: their c stays. A layer of one
 * block (<= 16 float32 units) without lengths has every row's gates at the same offsets: each
 * activation then runs over all rows in one call (the same arithmetic, fewer calls). */

static void FN(step_lstm)(const FN(step_args) *a, int phase, int64_t c0, int64_t c1)
{
    const int64_t H = a->H, vb = a->vb;
    int64_t b, j0, k;
    (void)phase;
    if (a->prev)
        FN(product)(a->kern, a->B, H, 4 * (c1 - c0), a->prev, a->ldp, a->R[0] + 4 * c0, 4 * H,
                    a->gx + 4 * c0, a->ldg, a->P[0], 4 * c0, 1);
    if (!a->lengths && c0 == 0 && c1 == H && H <= vb) {
        const REAL *bi = a->bias;
        a->kern->activate_rows(a->ract, a->gx, a->B, a->ldg, bi, 3 * H);
        a->kern->activate_rows(a->act, a->gx + 3 * H, a->B, a->ldg, bi ? bi + 3 * H : NULL, H);
        for (b = 0; b < a->B; ++b) {
            const REAL *gi = a->gx + b * a->ldg, *gf = gi + H, *gc = gf + 2 * H;
            REAL *h = a->out + b * a->ldo, *c = a->c + b * H;
            for (k = 0; k < H; ++k) {
                const REAL cn = gf[k] * c[k] + gi[k] * gc[k];
                c[k] = cn;
                h[k] = cn;
            }
        }
        a->kern->activate_rows(a->act, a->out, a->B, a->ldo, NULL, H);
        for (b = 0; b < a->B; ++b) {
            const REAL *go = a->gx + b * a->ldg + 2 * H;
            REAL *h = a->out + b * a->ldo;
            for (k = 0; k < H; ++k) h[k] *= go[k];
        }
        return;
    }
    for (b = 0; b < a->B; ++b) {
        REAL *g = a->gx + b * a->ldg, *h = a->out + b * a->ldo, *c = a->c + b * H;
        if (!CRNN__ACTIVE(a, b)) continue;
        for (j0 = c0; j0 < c1; j0 += vb) {
            const int64_t len = H - j0 < vb ? H - j0 : vb;
            REAL *gi = g + 4 * j0, *gf = gi + len, *go = gf + len, *gc = go + len;
            const REAL *bi = a->bias ? a->bias + 4 * j0 : NULL;
            a->kern->activate(a->ract, gi, bi, 3 * len);
            a->kern->activate(a->act, gc, bi ? bi + 3 * len : NULL, len);
            for (k = 0; k < len; ++k) {
                const REAL cn = gf[k] * c[j0 + k] + gi[k] * gc[k];
                c[j0 + k] = cn;
                h[j0 + k] = cn;
            }
            a->kern->activate(a->act, h + j0, NULL, len);
            for (k = 0; k < len; ++k) h[j0 + k] *= go[k];
        }
    }
}
