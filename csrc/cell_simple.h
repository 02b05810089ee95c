/* cell_simple.h - the SimpleRNN cell, templated on REAL / FN() by rnn_template.h.
 *
 * The cell is the per-step elementwise part: add the bias and apply the activation, in place, over
 * `rows` rows of `n` contiguous values `row_stride` apart. One loop per activation: the switch is
 * outside the loops, never a function pointer per element. */

static void FN(cell_rows)(crnn_activation act, REAL *y, int64_t rows, int64_t row_stride,
                          int64_t n, const REAL *bias)
{
    int64_t r, j;
    if (bias) {
        for (r = 0; r < rows; ++r) {
            REAL *row = y + r * row_stride;
            for (j = 0; j < n; ++j) row[j] += bias[j];
        }
    }
    switch (act) {
    case CRNN_ACTIVATION_TANH:
        for (r = 0; r < rows; ++r) {
            REAL *row = y + r * row_stride;
            for (j = 0; j < n; ++j) row[j] = TANH(row[j]);
        }
        break;
    case CRNN_ACTIVATION_RELU:
        for (r = 0; r < rows; ++r) {
            REAL *row = y + r * row_stride;
            for (j = 0; j < n; ++j) row[j] = row[j] < (REAL)0 ? (REAL)0 : row[j]; /* NaN stays */
        }
        break;
    case CRNN_ACTIVATION_SIGMOID:
        for (r = 0; r < rows; ++r) {
            REAL *row = y + r * row_stride;
            for (j = 0; j < n; ++j) row[j] = (REAL)1 / ((REAL)1 + EXP(-row[j]));
        }
        break;
    case CRNN_ACTIVATION_LINEAR:
    default:
        break;
    }
}
