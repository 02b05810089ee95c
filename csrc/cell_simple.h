/* cell_simple.h - the SimpleRNN cell, templated on REAL / FN() by rnn_template.h.
 *
 * One gate: the step's projection already sits in the output rows (the time loop projects
 * straight into the output frame), so the recurrent product accumulates there and the cell
 * applies bias + activation in place: h_t = act(x_t W + h_{t-1} R + b). No copy. */

static void FN(step_simple)(const FN(step_args) *a, int phase, int64_t c0, int64_t c1)
{
    const int64_t n = c1 - c0;
    int64_t b;
    (void)phase;
    if (a->prev)
        FN(product)(a->B, a->H, n, a->prev, a->ldp, a->R[0] + c0, a->H, a->out + c0, a->ldo,
                    a->P[0], c0, 1);
    for (b = 0; b < a->B; ++b)
        if (CRNN__ACTIVE(a, b))
            FN(activate)(a->act, a->out + b * a->ldo + c0, a->bias ? a->bias + c0 : NULL, n);
}
