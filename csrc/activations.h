/* activations.h - element-wise activations over a contiguous run, templated on REAL / FN() by
 * rnn_template.h (ORT deepcpu style row kernels: the switch is outside the loops, never a
 * function pointer per element).
 *
 * v[j] = act(v[j] + bias[j]) for j < n (bias may be NULL), in place, one pass, written so the
 * compiler vectorises every loop; on x86-64 with GCC compiled for AVX-512, AVX2+FMA and baseline
 * and the best picked at load time (CRNN__CLONES). tanh and sigmoid come from vmath.h (accuracy
 * stated there); hard_sigmoid is Keras 3's min(max(z + 3, 0), 6) / 6. NaN propagates through
 * every activation (comparisons, not fmin/fmax). */

static CRNN__CLONES void FN(activate)(crnn_activation act, REAL *restrict v,
                                      const REAL *restrict bias, int64_t n)
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
