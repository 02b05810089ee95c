/* cell_simple.h - the SimpleRNN cell, templated on REAL / FN() by rnn_template.h.
 *
 * One gate: the step's projection already sits in the output rows (the time loop projects
 * straight into the output frame), so the recurrent product accumulates there and the cell
 * applies bias + activation in place: h_t = act(x_t W + h_{t-1} R + b). No copy. A tiny layer
 * (units <= 8) does the three in one pass. */

static void FN(step_simple)(const FN(step_args) *a, int phase, int64_t c0, int64_t c1)
{
    const int64_t n = c1 - c0;
    const REAL *bias = a->bias ? a->bias + c0 : NULL;
    int64_t b;
    (void)phase;
    if (a->H <= 8 && !a->lengths) { /* tiny: product, bias and activation in one pass */
        a->kern->tiny_step(a->B, a->prev ? a->H : 0, n, a->prev, a->ldp, a->R[0] + c0, a->H,
                      a->out + c0, a->ldo, a->act, bias);
        return;
    }
    if (a->prev)
        FN(product)(a->kern, a->B, a->H, n, a->prev, a->ldp, a->R[0] + c0, a->H, a->out + c0,
                    a->ldo, a->P[0], c0, 1, (int)(a->t & 1));
    if (!a->lengths) {
        a->kern->activate_rows(a->act, a->out + c0, a->B, a->ldo, bias, n);
        return;
    }
    for (b = 0; b < a->B; ++b)
        if (CRNN__ACTIVE(a, b)) a->kern->activate(a->act, a->out + b * a->ldo + c0, bias, n);
}
