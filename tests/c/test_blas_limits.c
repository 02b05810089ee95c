/* test_blas_limits.c - the core's handling of the BLAS's 32-bit integer limits, reached with
 * small arrays: built against a library compiled with -DCRNN__BLAS_INT_MAX=64 (make -C csrc
 * test-limits). Every dimension or leading dimension past the limit must either be split into
 * chunks that fit (the input projection's rows: B * T) with exact results, or be refused with
 * CRNN_ERR_TOO_LARGE; never a wrong result. Includes only crnn.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "crnn.h"

#define LIMIT 64
static int passed, failed;

static void check(int ok, const char *what)
{
    if (ok) ++passed;
    else { ++failed; printf("FAIL: %s\n", what); }
}

/* Plain loop: forward, tanh, bias, zero h0. y is (B, T, H). */
static void naive(int B, int T, int D, int H, const float *x, const float *k, const float *r,
                  const float *b, double *y)
{
    int i, t, j, q;
    for (i = 0; i < B; ++i)
        for (t = 0; t < T; ++t)
            for (j = 0; j < H; ++j) {
                double z = b[j];
                for (q = 0; q < D; ++q) z += (double)x[(i * T + t) * D + q] * k[q * H + j];
                if (t > 0)
                    for (q = 0; q < H; ++q) z += y[(i * T + t - 1) * H + q] * r[q * H + j];
                y[(i * T + t) * H + j] = tanh(z);
            }
}

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return ((float)((*s >> 8) & 0xffff) / 65535.0f - 0.5f) * 0.5f;
}

int main(void)
{
    /* B * T = 30 * 5 = 150 rows > LIMIT: the projection runs in chunks; T * H = 5 * 12 = 60 and
     * H * 2 = 24 stay under it. */
    enum { B = 30, T = 5, D = 7, H = 12 };
    static float x[B * T * D], k[D * H], r[H * H], b[H], y[B * T * H], hn[B * H];
    static double ref[B * T * H];
    crnn_layer_desc layer = {H, CRNN_ACTIVATION_TANH, CRNN_DIRECTION_FORWARD};
    crnn_weights w;
    crnn_rnn_t *rnn = NULL;
    void *hnp[1];
    unsigned seed = 7;
    double err = 0;
    size_t ws = 0;
    int i;

    for (i = 0; i < B * T * D; ++i) x[i] = frand(&seed);
    for (i = 0; i < D * H; ++i) k[i] = frand(&seed);
    for (i = 0; i < H * H; ++i) r[i] = frand(&seed);
    for (i = 0; i < H; ++i) b[i] = frand(&seed);
    w.kernel = k;
    w.recurrent_kernel = r;
    w.bias = b;
    hnp[0] = hn;

    check(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, D, 1, &layer, &w) == CRNN_OK, "create");
    check(crnn_rnn_forward(rnn, B, T, x, NULL, NULL, y, hnp, NULL, 0) == CRNN_OK,
          "forward with B*T rows past the limit runs (chunked projection)");
    naive(B, T, D, H, x, k, r, b, ref);
    for (i = 0; i < B * T * H; ++i)
        if (fabs(y[i] - ref[i]) > err) err = fabs(y[i] - ref[i]);
    check(err <= 1e-5, "chunked projection equals the plain loop");
    for (i = 0; i < B; ++i)
        if (hn[i * H] != y[(i * T + T - 1) * H]) break;
    check(i == B, "final state is the last frame");

    /* T * H = 6 * 12 = 72 > LIMIT: the per-step leading dimension cannot fit. */
    check(crnn_rnn_forward(rnn, 2, 6, x, NULL, NULL, y, NULL, NULL, 0) == CRNN_ERR_TOO_LARGE,
          "a leading dimension past the limit is refused");
    check(crnn_rnn_workspace_size(rnn, 2, 6, &ws) == CRNN_ERR_TOO_LARGE,
          "workspace_size refuses it too");
    check(crnn_rnn_forward(rnn, LIMIT + 1, 1, x, NULL, NULL, y, NULL, NULL, 0) == CRNN_ERR_TOO_LARGE,
          "a batch past the limit is refused");
    crnn_rnn_free(rnn);

    /* Sizes that cannot fit at create time. */
    layer.units = LIMIT / 2 + 1;
    check(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, D, 1, &layer, &w) == CRNN_ERR_TOO_LARGE && !rnn,
          "units past limit / 2 are refused");
    layer.units = H;
    check(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, LIMIT + 1, 1, &layer, &w) == CRNN_ERR_TOO_LARGE && !rnn,
          "an input size past the limit is refused");

    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
