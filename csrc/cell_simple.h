/* cell_simple.h - the SimpleRNN cell, templated on REAL / FN() by rnn_template.h.
 *
 * The cell is the per-step elementwise part: add the bias and apply the activation, in place, over
 * `rows` rows of `n` contiguous values `row_stride` apart, in one pass. One loop per activation
 * (the switch is outside the loops, never a function pointer per element), written so the
 * compiler vectorises it; on x86-64 with GCC it is compiled for AVX-512, AVX2+FMA and baseline
 * and the best is picked at load time (CRNN__CLONES). */

static CRNN__CLONES void FN(cell_rows)(crnn_activation act, REAL *y, int64_t rows,
                                       int64_t row_stride, int64_t n, const REAL *bias)
{
    int64_t r, j;
    for (r = 0; r < rows; ++r) {
        REAL *restrict row = y + r * row_stride;
        switch (act) {
        case CRNN_ACTIVATION_TANH:
            if (bias) for (j = 0; j < n; ++j) row[j] = VTANH(row[j] + bias[j]);
            else for (j = 0; j < n; ++j) row[j] = VTANH(row[j]);
            break;
        case CRNN_ACTIVATION_RELU: /* z < 0 ? 0 : z keeps NaN, like np.maximum */
            if (bias) for (j = 0; j < n; ++j) { REAL z = row[j] + bias[j]; row[j] = z < (REAL)0 ? (REAL)0 : z; }
            else for (j = 0; j < n; ++j) row[j] = row[j] < (REAL)0 ? (REAL)0 : row[j];
            break;
        case CRNN_ACTIVATION_SIGMOID:
            if (bias) for (j = 0; j < n; ++j) row[j] = VSIGMOID(row[j] + bias[j]);
            else for (j = 0; j < n; ++j) row[j] = VSIGMOID(row[j]);
            break;
        case CRNN_ACTIVATION_LINEAR:
        default:
            if (bias) for (j = 0; j < n; ++j) row[j] += bias[j];
            break;
        }
    }
}
