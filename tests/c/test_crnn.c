/* test_crnn.c - plain-C test of the public API (csrc/include/crnn.h), nothing else included.
 *
 * Built and run by `make -C csrc test` with -std=c99 -Wall -Wextra -Werror, once against
 * libcrnn.a and once against libcrnn.so. It checks:
 *   - crnn_rnn_create / forward / free in float32 and float64 against a naive reference loop
 *     written below (evaluated in double on the same, dtype-rounded values): every activation,
 *     bias on/off, initial states NULL / given / partly given, forward / reverse / bidirectional,
 *     1 and 2 layers (mixed directions and activations), with and without lengths, y and h_n
 *     entries NULL, shapes that take the core's plain-loop, GEMV and GEMM paths;
 *   - the workspace supplied by the caller (exact size, misaligned) against the library's own;
 *   - every status code path and crnn_status_string() of every code and of unknown ones;
 *   - crnn_rnn_free(NULL), crnn_version(), crnn_rnn_info(), the BLAS thread setters;
 *   - crnn_set_num_threads(): calls spread over crnn's own threads (1, 2, 3, 64; batch split,
 *     hidden-unit split, one direction per thread, pipelined projection) against the reference,
 *     bitwise reproducible for each setting;
 *   - concurrent crnn_rnn_forward() calls on one handle from several pthreads, bitwise equal to a
 *     sequential call (also while each call splits its batch or its units or pipelines, and with
 *     a threaded BLAS).
 * The last line is "N passed, M failed"; the exit status is non-zero on any failure.
 *
 * Tolerance (as tests/_helpers.py derives it, benchdnn style): one step is a dot product of
 * length K = input width + units followed by an activation of slope <= 1, so it adds about
 * eps * log2(K) * |z|; the recurrent kernels drawn here have column sums of |R| below 1, so an
 * error is contracted by later steps, and over the T * L dependent steps of a case the error
 * stays within  tol = eps(dtype) * ceil(log2(K * T * L)) * FACTOR * max(1, max |expected|)
 * with FACTOR = 4 covering the activation's own ulps (libm tanhf/expf) and the contraction sum.
 */
#define _POSIX_C_SOURCE 200809L

#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crnn.h"

/* CRNN_TEST_QUICK=1 in the environment (set by `make -C csrc valgrind`): a reduced run for slow
 * checkers; every test function still runs. Unset or 0: the full run. Set in main. */
static int g_quick = 0;

/* ------------------------------------------------------------------------------------------ */
/* Bookkeeping */

static int g_passed = 0;
static int g_failed = 0;

static void check_impl(int ok, const char *file, int line, const char *what)
{
    if (ok) {
        ++g_passed;
    } else {
        ++g_failed;
        fprintf(stderr, "FAIL %s:%d: %s\n", file, line, what);
    }
}

#define CHECK(cond) check_impl((cond) != 0, __FILE__, __LINE__, #cond)

/* A status check that prints both codes and their messages when it fails. */
static void check_status_impl(int got, int expected, const char *file, int line, const char *expr)
{
    if (got == expected) {
        ++g_passed;
    } else {
        ++g_failed;
        fprintf(stderr, "FAIL %s:%d: %s\n    got %d (%s), expected %d (%s)\n", file, line, expr,
                got, crnn_status_string(got), expected, crnn_status_string(expected));
    }
}

#define CHECK_STATUS(expr, expected) \
    check_status_impl((expr), (expected), __FILE__, __LINE__, #expr)

/* Deterministic pseudo-random numbers (xorshift64*), uniform in [-1, 1). */
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static double urand(void)
{
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (double)((g_rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "test_crnn: out of memory allocating %lu bytes\n", (unsigned long)n);
        exit(2);
    }
    return p;
}

static size_t elem_size(crnn_dtype dt) { return dt == CRNN_DTYPE_FLOAT32 ? sizeof(float) : sizeof(double); }

static double dtype_eps(crnn_dtype dt) { return dt == CRNN_DTYPE_FLOAT32 ? FLT_EPSILON : DBL_EPSILON; }

/* Round a double array to the dtype in place, so the reference sees exactly what crnn sees. */
static void round_to(double *v, size_t n, crnn_dtype dt)
{
    size_t i;
    if (dt == CRNN_DTYPE_FLOAT32)
        for (i = 0; i < n; ++i) v[i] = (double)(float)v[i];
}

/* A newly allocated copy of v in the dtype's representation. */
static void *to_dtype(const double *v, size_t n, crnn_dtype dt)
{
    void *out = xmalloc(n * elem_size(dt));
    size_t i;
    for (i = 0; i < n; ++i) {
        if (dt == CRNN_DTYPE_FLOAT32) ((float *)out)[i] = (float)v[i];
        else ((double *)out)[i] = v[i];
    }
    return out;
}

static double get_value(const void *p, size_t i, crnn_dtype dt)
{
    return dt == CRNN_DTYPE_FLOAT32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

static int ndir_of(crnn_direction d) { return d == CRNN_DIRECTION_BIDIRECTIONAL ? 2 : 1; }

/* ------------------------------------------------------------------------------------------ */
/* The naive reference: h_t = act(x_t @ K + h_{t-1} @ R + b), one element at a time, in double */

static double ref_act(crnn_activation a, double z)
{
    switch (a) {
    case CRNN_ACTIVATION_TANH: return tanh(z);
    case CRNN_ACTIVATION_RELU: return z < 0.0 ? 0.0 : z;
    case CRNN_ACTIVATION_SIGMOID: return 1.0 / (1.0 + exp(-z));
    case CRNN_ACTIVATION_LINEAR: return z;
    }
    return z;
}

/* A stack with its weights, in double (dtype-rounded) for the reference and in the dtype for
 * crnn. Entries are (layer, direction), layer-major, forward first, like crnn_weights. */
#define MAX_LAYERS 2
#define MAX_ENTRIES (2 * MAX_LAYERS)

typedef struct {
    crnn_dtype dtype;
    int64_t input_size;
    int64_t num_layers;
    crnn_layer_desc layers[MAX_LAYERS];
    int num_entries;
    int64_t entry_units[MAX_ENTRIES];
    int64_t entry_in[MAX_ENTRIES];
    double *k[MAX_ENTRIES], *r[MAX_ENTRIES], *b[MAX_ENTRIES]; /* b NULL: no bias */
    crnn_weights w[MAX_ENTRIES];                               /* dtype copies for crnn */
} model_t;

static void model_init(model_t *m, crnn_dtype dt, int64_t input_size, int64_t num_layers,
                       const crnn_layer_desc *layers, int use_bias)
{
    int64_t l, in = input_size;
    int e = 0, d;
    memset(m, 0, sizeof(*m));
    m->dtype = dt;
    m->input_size = input_size;
    m->num_layers = num_layers;
    for (l = 0; l < num_layers; ++l) {
        const int64_t H = layers[l].units;
        /* Keras-like scales keeping every value O(1): kernel/bias U(-s, s), s = 0.5/sqrt(D+H),
         * x4 for tanh/sigmoid so they saturate; recurrent U(-1/H, 1/H): column sums of |R| < 1. */
        const int sat = layers[l].activation == CRNN_ACTIVATION_TANH ||
                        layers[l].activation == CRNN_ACTIVATION_SIGMOID;
        const double s = (sat ? 4.0 : 1.0) * 0.5 / sqrt((double)(in + H));
        m->layers[l] = layers[l];
        for (d = 0; d < ndir_of(layers[l].direction); ++d, ++e) {
            size_t i;
            m->entry_units[e] = H;
            m->entry_in[e] = in;
            m->k[e] = (double *)xmalloc((size_t)(in * H) * sizeof(double));
            m->r[e] = (double *)xmalloc((size_t)(H * H) * sizeof(double));
            for (i = 0; i < (size_t)(in * H); ++i) m->k[e][i] = s * urand();
            for (i = 0; i < (size_t)(H * H); ++i) m->r[e][i] = urand() / (double)H;
            round_to(m->k[e], (size_t)(in * H), dt);
            round_to(m->r[e], (size_t)(H * H), dt);
            m->w[e].kernel = to_dtype(m->k[e], (size_t)(in * H), dt);
            m->w[e].recurrent_kernel = to_dtype(m->r[e], (size_t)(H * H), dt);
            if (use_bias) {
                m->b[e] = (double *)xmalloc((size_t)H * sizeof(double));
                for (i = 0; i < (size_t)H; ++i) m->b[e][i] = s * urand();
                round_to(m->b[e], (size_t)H, dt);
                m->w[e].bias = to_dtype(m->b[e], (size_t)H, dt);
            }
        }
        in = H * ndir_of(layers[l].direction);
    }
    m->num_entries = e;
}

static void model_free(model_t *m)
{
    int e;
    for (e = 0; e < m->num_entries; ++e) {
        free(m->k[e]);
        free(m->r[e]);
        free(m->b[e]);
        free((void *)m->w[e].kernel);
        free((void *)m->w[e].recurrent_kernel);
        free((void *)m->w[e].bias);
    }
}

static int64_t model_out_width(const model_t *m)
{
    const crnn_layer_desc *last = &m->layers[m->num_layers - 1];
    return last->units * ndir_of(last->direction);
}

static int64_t model_max_k(const model_t *m)
{
    int64_t k = 0;
    int e;
    for (e = 0; e < m->num_entries; ++e)
        if (m->entry_in[e] + m->entry_units[e] > k) k = m->entry_in[e] + m->entry_units[e];
    return k;
}

/* y: (B, T, out_width); hn[e]: (B, units_e). h0 NULL or h0[e] NULL mean zeros. */
static void ref_forward(const model_t *m, int64_t B, int64_t T, const double *x,
                        const int64_t *lengths, double *const *h0, double *y, double **hn)
{
    const double *in = x;
    int64_t din = m->input_size, l, b, s, i, j;
    double *bufs[2] = {NULL, NULL};
    double *h = NULL, *hnew = NULL;
    int e = 0, d;
    for (l = 0; l < m->num_layers; ++l) {
        const int64_t H = m->layers[l].units;
        const int nd = ndir_of(m->layers[l].direction);
        const int64_t W = H * nd;
        double *out;
        if (l == m->num_layers - 1) {
            out = y;
        } else {
            bufs[l % 2] = (double *)xmalloc((size_t)(B * T * W) * sizeof(double));
            out = bufs[l % 2];
        }
        memset(out, 0, (size_t)(B * T * W) * sizeof(double));
        h = (double *)xmalloc((size_t)H * sizeof(double));
        hnew = (double *)xmalloc((size_t)H * sizeof(double));
        for (d = 0; d < nd; ++d, ++e) {
            const int reverse = m->layers[l].direction == CRNN_DIRECTION_REVERSE || d == 1;
            for (b = 0; b < B; ++b) {
                const int64_t n = lengths ? lengths[b] : T;
                for (j = 0; j < H; ++j) h[j] = (h0 && h0[e]) ? h0[e][b * H + j] : 0.0;
                for (s = 0; s < n; ++s) {
                    const int64_t t = reverse ? n - 1 - s : s;
                    const double *xt = in + (b * T + t) * din;
                    for (j = 0; j < H; ++j) {
                        double z = m->b[e] ? m->b[e][j] : 0.0;
                        for (i = 0; i < din; ++i) z += xt[i] * m->k[e][i * H + j];
                        for (i = 0; i < H; ++i) z += h[i] * m->r[e][i * H + j];
                        hnew[j] = ref_act(m->layers[l].activation, z);
                    }
                    memcpy(h, hnew, (size_t)H * sizeof(double));
                    for (j = 0; j < H; ++j) out[(b * T + t) * W + d * H + j] = h[j];
                }
                for (j = 0; j < H; ++j) hn[e][b * H + j] = h[j];
            }
        }
        free(h);
        free(hnew);
        if (l > 0) free(bufs[(l - 1) % 2]);
        in = out;
        din = W;
    }
}

/* max |got - expected| over n values (NaN counts as infinite). */
static double max_abs_diff(const void *got, const double *expected, size_t n, crnn_dtype dt)
{
    double m = 0.0;
    size_t i;
    for (i = 0; i < n; ++i) {
        double diff = fabs(get_value(got, i, dt) - expected[i]);
        if (!(diff <= m)) m = isnan(diff) ? INFINITY : diff;
    }
    return m;
}

static double max_abs(const double *v, size_t n)
{
    double m = 0.0;
    size_t i;
    for (i = 0; i < n; ++i)
        if (fabs(v[i]) > m) m = fabs(v[i]);
    return m;
}

static double derived_tol(crnn_dtype dt, int64_t k, int64_t steps, double scale)
{
    const double factor = 4.0;
    double prod = (double)k * (double)steps;
    return dtype_eps(dt) * ceil(log2(prod < 2.0 ? 2.0 : prod)) * factor * (scale > 1.0 ? scale : 1.0);
}

/* ------------------------------------------------------------------------------------------ */
/* create / forward / free against the reference over a grid */

typedef struct {
    int64_t B, T, D, H;
} shape_t;

static double g_worst_ratio[2] = {0.0, 0.0}; /* max error / tolerance seen, per dtype */

static void run_case(crnn_dtype dt, const shape_t *sh, crnn_activation act, int use_bias,
                     int h0_mode, crnn_direction dir, int num_layers, int use_lengths, int variant)
{
    crnn_layer_desc layers[MAX_LAYERS];
    model_t m;
    crnn_rnn_t *rnn = NULL;
    const int64_t B = sh->B, T = sh->T;
    int64_t lengths[64], W, b;
    double *x, *y_ref, *hn_ref[MAX_ENTRIES], *h0_ref[MAX_ENTRIES];
    void *x_c, *y_c, *y_c2, *y_c3, *hn_c[MAX_ENTRIES], *hn_c2[MAX_ENTRIES], *h0_c[MAX_ENTRIES];
    void *ws_raw = NULL, *ws = NULL;
    size_t ws_size = 0, es = elem_size(dt), i;
    int e, status, ok;
    /* Some cases ask only for the final states (y NULL) or drop one h_n entry. */
    const int want_y = variant % 5 != 0;
    const int drop_hn0 = variant % 7 == 3;
    char what[256];

    layers[0].units = sh->H;
    layers[0].activation = act;
    layers[0].direction = dir;
    /* A second layer of another size, activation and direction, reading the first's output. */
    layers[1].units = sh->H + 2;
    layers[1].activation = (crnn_activation)((act + 1) % 4);
    layers[1].direction = (crnn_direction)((dir + 1) % 3);
    model_init(&m, dt, sh->D, num_layers, layers, use_bias);
    W = model_out_width(&m);

    x = (double *)xmalloc((size_t)(B * T * sh->D) * sizeof(double));
    for (i = 0; i < (size_t)(B * T * sh->D); ++i) x[i] = urand();
    round_to(x, (size_t)(B * T * sh->D), dt);
    x_c = to_dtype(x, (size_t)(B * T * sh->D), dt);
    for (b = 0; b < B; ++b) lengths[b] = b == 0 ? T : b == 1 ? 0 : (b * 7 + 3) % (T + 1);

    for (e = 0; e < m.num_entries; ++e) {
        const size_t n = (size_t)(B * m.entry_units[e]);
        h0_ref[e] = NULL;
        h0_c[e] = NULL;
        if (h0_mode == 1 || (h0_mode == 2 && e % 2 == 1)) {
            h0_ref[e] = (double *)xmalloc(n * sizeof(double));
            for (i = 0; i < n; ++i) h0_ref[e][i] = urand();
            round_to(h0_ref[e], n, dt);
            h0_c[e] = to_dtype(h0_ref[e], n, dt);
        }
        hn_ref[e] = (double *)xmalloc(n * sizeof(double));
        hn_c[e] = xmalloc(n * es);
        hn_c2[e] = xmalloc(n * es);
        memset(hn_c[e], 0xAB, n * es); /* garbage: every value must be written */
    }
    y_ref = (double *)xmalloc((size_t)(B * T * W) * sizeof(double));
    y_c = xmalloc((size_t)(B * T * W) * es);
    y_c2 = xmalloc((size_t)(B * T * W) * es);
    y_c3 = xmalloc((size_t)(B * T * W) * es);
    memset(y_c, 0xAB, (size_t)(B * T * W) * es);

    snprintf(what, sizeof(what),
             "case dtype=%s B=%ld T=%ld D=%ld H=%ld act=%d bias=%d h0=%d dir=%d layers=%d "
             "lengths=%d y=%d",
             dt == CRNN_DTYPE_FLOAT32 ? "f32" : "f64", (long)B, (long)T, (long)sh->D,
             (long)sh->H, (int)act, use_bias, h0_mode, (int)dir, num_layers, use_lengths, want_y);

    CHECK_STATUS(crnn_rnn_create(&rnn, dt, sh->D, num_layers, layers, m.w), CRNN_OK);
    if (!rnn) goto done;
    ref_forward(&m, B, T, x, use_lengths ? lengths : NULL, h0_mode ? h0_ref : NULL, y_ref, hn_ref);
    if (drop_hn0) {
        free(hn_c[0]);
        hn_c[0] = NULL;
    }

    /* 1. the library allocates the workspace */
    status = crnn_rnn_forward(rnn, B, T, x_c, use_lengths ? lengths : NULL,
                              h0_mode ? (const void *const *)h0_c : NULL, want_y ? y_c : NULL,
                              hn_c, NULL, 0);
    CHECK_STATUS(status, CRNN_OK);
    if (status == CRNN_OK) {
        const double scale = max_abs(y_ref, (size_t)(B * T * W));
        const double tol = derived_tol(dt, model_max_k(&m), T * num_layers, scale);
        double err = 0.0, ratio;
        if (want_y) err = max_abs_diff(y_c, y_ref, (size_t)(B * T * W), dt);
        for (e = 0; e < m.num_entries; ++e) {
            double eh;
            if (!hn_c[e]) continue;
            eh = max_abs_diff(hn_c[e], hn_ref[e], (size_t)(B * m.entry_units[e]), dt);
            if (eh > err) err = eh;
        }
        ok = err <= tol;
        ratio = err / tol;
        if (ratio > g_worst_ratio[dt == CRNN_DTYPE_FLOAT64]) g_worst_ratio[dt == CRNN_DTYPE_FLOAT64] = ratio;
        check_impl(ok, __FILE__, __LINE__, what);
        if (!ok) fprintf(stderr, "    max |crnn - reference| = %.3g > tol %.3g\n", err, tol);
        /* the derived tolerance stays under the suite's ceilings (1e-5 / 1e-12) */
        CHECK(tol <= (dt == CRNN_DTYPE_FLOAT32 ? 1e-5 : 1e-12));
    }

    /* 2. the caller supplies exactly crnn_rnn_workspace_size() bytes, 64-byte aligned: the same
     *    bits as with the library's own workspace */
    CHECK_STATUS(crnn_rnn_workspace_size(rnn, B, T, &ws_size), CRNN_OK);
    CHECK(ws_size > 0);
    if (posix_memalign(&ws_raw, 64, ws_size + 64) != 0) ws_raw = NULL;
    CHECK(ws_raw != NULL);
    if (ws_raw) {
        ws = ws_raw;
        memset(ws, 0x5A, ws_size + 64); /* contents on entry are unspecified: garbage */
        status = crnn_rnn_forward(rnn, B, T, x_c, use_lengths ? lengths : NULL,
                                  h0_mode ? (const void *const *)h0_c : NULL, want_y ? y_c2 : NULL,
                                  hn_c2, ws, ws_size);
        CHECK_STATUS(status, CRNN_OK);
        if (status == CRNN_OK) {
            int same = !want_y || memcmp(y_c, y_c2, (size_t)(B * T * W) * es) == 0;
            for (e = 0; e < m.num_entries; ++e)
                if (hn_c[e] && memcmp(hn_c[e], hn_c2[e], (size_t)(B * m.entry_units[e]) * es) != 0)
                    same = 0;
            check_impl(same, __FILE__, __LINE__, "caller workspace gives the same bits");
        }
        /* 3. a workspace only 8-byte aligned still works (alignment is a speed hint) */
        ws = (char *)ws_raw + 8;
        status = crnn_rnn_forward(rnn, B, T, x_c, use_lengths ? lengths : NULL,
                                  h0_mode ? (const void *const *)h0_c : NULL, y_c3, NULL, ws,
                                  ws_size);
        CHECK_STATUS(status, CRNN_OK);
        if (status == CRNN_OK) {
            const double scale = max_abs(y_ref, (size_t)(B * T * W));
            const double tol = derived_tol(dt, model_max_k(&m), T * num_layers, scale);
            CHECK(max_abs_diff(y_c3, y_ref, (size_t)(B * T * W), dt) <= tol);
        }
        /* 4. one byte short */
        CHECK_STATUS(crnn_rnn_forward(rnn, B, T, x_c, NULL, NULL, y_c3, NULL, ws_raw, ws_size - 1),
                     CRNN_ERR_WORKSPACE_TOO_SMALL);
        free(ws_raw);
    }

done:
    crnn_rnn_free(rnn);
    for (e = 0; e < m.num_entries; ++e) {
        free(h0_ref[e]);
        free(h0_c[e]);
        free(hn_ref[e]);
        free(hn_c[e]);
        free(hn_c2[e]);
    }
    free(x);
    free(x_c);
    free(y_ref);
    free(y_c);
    free(y_c2);
    free(y_c3);
    model_free(&m);
}

static void test_against_reference(void)
{
    /* (1,1,1,1): everything scalar; (3,5,4,3): the core's plain-C loops (H <= 8, D <= 16);
     * (1,7,10,33): B = 1, the GEMV step; (4,6,20,17): GEMM step and GEMM input projection. */
    static const shape_t shapes[] = {{1, 1, 1, 1}, {3, 5, 4, 3}, {1, 7, 10, 33}, {4, 6, 20, 17}};
    const int n_before = g_passed + g_failed;
    /* CRNN_TEST_QUICK=1 (used by `make valgrind`; main also cuts the threaded forwards to one
     * per thread): every 11th case of the grid (11 is prime to every
     * loop's extent and to run_case's variant % 5 / % 7 switches, so each value of each parameter and
     * switch still occurs); unset or 0: the whole grid. */
    const int stride = g_quick ? 11 : 1;
    int dti, si, act, bias, h0m, dir, nl, len, variant = 0, ran = 0;
    for (dti = 0; dti < 2; ++dti)
        for (si = 0; si < (int)(sizeof(shapes) / sizeof(shapes[0])); ++si)
            for (act = 0; act < 4; ++act)
                for (bias = 0; bias < 2; ++bias)
                    for (h0m = 0; h0m < 3; ++h0m)
                        for (dir = 0; dir < 3; ++dir)
                            for (nl = 1; nl <= 2; ++nl)
                                for (len = 0; len < 2; ++len, ++variant) {
                                    if (variant % stride != 0)
                                        continue;
                                    run_case(dti ? CRNN_DTYPE_FLOAT64 : CRNN_DTYPE_FLOAT32,
                                             &shapes[si], (crnn_activation)act, bias, h0m,
                                             (crnn_direction)dir, nl, len, variant);
                                    ++ran;
                                }
    printf("reference grid: %d cases%s, %d checks; worst error / tolerance: f32 %.3f, f64 %.3f\n",
           ran, stride > 1 ? " (CRNN_TEST_QUICK: every 11th)" : "", g_passed + g_failed - n_before,
           g_worst_ratio[0], g_worst_ratio[1]);
}

/* ------------------------------------------------------------------------------------------ */
/* Status codes */

static void test_status_strings(void)
{
    static const int known[] = {CRNN_OK,
                                CRNN_ERR_NULL_POINTER,
                                CRNN_ERR_INVALID_ARGUMENT,
                                CRNN_ERR_OUT_OF_MEMORY,
                                CRNN_ERR_TOO_LARGE,
                                CRNN_ERR_WORKSPACE_TOO_SMALL,
                                CRNN_ERR_NOT_IMPLEMENTED};
    static const int unknown[] = {1, -7, -1000, INT_MIN, INT_MAX};
    const int nk = (int)(sizeof(known) / sizeof(known[0]));
    int i, j;
    CHECK(CRNN_OK == 0);
    for (i = 0; i < nk; ++i) {
        const char *s = crnn_status_string(known[i]);
        CHECK(s != NULL);
        if (!s) continue;
        CHECK(s[0] != '\0');
        CHECK(strcmp(s, "unknown status") != 0);
        if (i > 0) CHECK(known[i] < 0);
        for (j = 0; j < i; ++j) CHECK(strcmp(s, crnn_status_string(known[j])) != 0);
    }
    for (i = 0; i < (int)(sizeof(unknown) / sizeof(unknown[0])); ++i) {
        const char *s = crnn_status_string(unknown[i]);
        CHECK(s != NULL && strcmp(s, "unknown status") == 0);
    }
}

/* A small valid stack: D = 3, one forward tanh layer of 2 units (bias), in dtype `dt`. */
typedef struct {
    float kf[6], rf[4], bf[2];
    double kd[6], rd[4], bd[2];
    crnn_layer_desc layer;
    crnn_weights w;
} tiny_t;

static void tiny_init(tiny_t *t, crnn_dtype dt)
{
    int i;
    for (i = 0; i < 6; ++i) t->kd[i] = t->kf[i] = (float)(0.1 * (i + 1));
    for (i = 0; i < 4; ++i) t->rd[i] = t->rf[i] = (float)(0.05 * (i - 2));
    for (i = 0; i < 2; ++i) t->bd[i] = t->bf[i] = (float)(0.01 * i);
    t->layer.units = 2;
    t->layer.activation = CRNN_ACTIVATION_TANH;
    t->layer.direction = CRNN_DIRECTION_FORWARD;
    t->w.kernel = dt == CRNN_DTYPE_FLOAT32 ? (const void *)t->kf : (const void *)t->kd;
    t->w.recurrent_kernel = dt == CRNN_DTYPE_FLOAT32 ? (const void *)t->rf : (const void *)t->rd;
    t->w.bias = dt == CRNN_DTYPE_FLOAT32 ? (const void *)t->bf : (const void *)t->bd;
}

static void test_create_errors(void)
{
    tiny_t t;
    crnn_layer_desc bad;
    crnn_weights w;
    crnn_rnn_t *rnn;
    int sentinel = 0;
    crnn_rnn_t *const garbage = (crnn_rnn_t *)(void *)&sentinel;
    tiny_init(&t, CRNN_DTYPE_FLOAT32);

    CHECK_STATUS(crnn_rnn_create(NULL, CRNN_DTYPE_FLOAT32, 3, 1, &t.layer, &t.w),
                 CRNN_ERR_NULL_POINTER);
    /* On failure *out is set to NULL. */
    rnn = garbage;
    CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, 3, 1, NULL, &t.w), CRNN_ERR_NULL_POINTER);
    CHECK(rnn == NULL);
    rnn = garbage;
    CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, 3, 1, &t.layer, NULL),
                 CRNN_ERR_NULL_POINTER);
    CHECK(rnn == NULL);
    w = t.w;
    w.kernel = NULL;
    rnn = garbage;
    CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, 3, 1, &t.layer, &w), CRNN_ERR_NULL_POINTER);
    CHECK(rnn == NULL);
    w = t.w;
    w.recurrent_kernel = NULL;
    CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, 3, 1, &t.layer, &w), CRNN_ERR_NULL_POINTER);
    CHECK(rnn == NULL);

    /* invalid enums and counts */
    rnn = garbage;
    CHECK_STATUS(crnn_rnn_create(&rnn, (crnn_dtype)2, 3, 1, &t.layer, &t.w), CRNN_ERR_INVALID_ARGUMENT);
    CHECK(rnn == NULL);
    CHECK_STATUS(crnn_rnn_create(&rnn, (crnn_dtype)-1, 3, 1, &t.layer, &t.w), CRNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, 0, 1, &t.layer, &t.w), CRNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, -3, 1, &t.layer, &t.w), CRNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, 3, 0, &t.layer, &t.w), CRNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, 3, -1, &t.layer, &t.w), CRNN_ERR_INVALID_ARGUMENT);
    bad = t.layer;
    bad.units = 0;
    CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, 3, 1, &bad, &t.w), CRNN_ERR_INVALID_ARGUMENT);
    bad.units = -5;
    CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, 3, 1, &bad, &t.w), CRNN_ERR_INVALID_ARGUMENT);
    bad = t.layer;
    bad.activation = (crnn_activation)99; /* 4 is CRNN_ACTIVATION_HARD_SIGMOID since 0.2 */
    CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, 3, 1, &bad, &t.w), CRNN_ERR_INVALID_ARGUMENT);
    bad.activation = (crnn_activation)-1;
    CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, 3, 1, &bad, &t.w), CRNN_ERR_INVALID_ARGUMENT);
    bad = t.layer;
    bad.direction = (crnn_direction)3;
    CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, 3, 1, &bad, &t.w), CRNN_ERR_INVALID_ARGUMENT);
    bad.direction = (crnn_direction)-1;
    CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, 3, 1, &bad, &t.w), CRNN_ERR_INVALID_ARGUMENT);
    CHECK(rnn == NULL);

    /* Sizes: beyond the BLAS's 32-bit integers, and products that overflow size_t. No weight is
     * read before these checks, so the tiny arrays stand in for huge ones. */
    CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, (int64_t)INT_MAX + 1, 1, &t.layer, &t.w),
                 CRNN_ERR_TOO_LARGE);
    CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, INT64_MAX, 1, &t.layer, &t.w),
                 CRNN_ERR_TOO_LARGE);
    CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, 3, INT64_MAX, &t.layer, &t.w),
                 CRNN_ERR_TOO_LARGE);
    bad = t.layer;
    bad.units = INT64_MAX;
    CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, 3, 1, &bad, &t.w), CRNN_ERR_TOO_LARGE);
    bad.units = INT_MAX;
    CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, 3, 1, &bad, &t.w), CRNN_ERR_TOO_LARGE);
    if (sizeof(size_t) == 8) {
        /* float64, D = 2^31 - 1, H = 2^30 - 1: kernel ~2^64 - 2^34 bytes, plus the recurrent
         * kernel ~2^63 bytes: the layout's byte count overflows size_t. */
        bad.units = INT_MAX / 2;
        CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT64, INT_MAX, 1, &bad, &t.w),
                     CRNN_ERR_TOO_LARGE);
        CHECK(rnn == NULL);
        /* float32, D = 2^31 - 1, H = 2^29: ~2^62 + 2^60 bytes fit in size_t but no malloc can
         * give them (above the 2^57-byte address space of any x86-64 / arm64 process). */
        bad.units = (int64_t)1 << 29;
        CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, INT_MAX, 1, &bad, &t.w),
                     CRNN_ERR_OUT_OF_MEMORY);
        CHECK(rnn == NULL);
    }
    /* the second layer of a stack is checked too */
    {
        crnn_layer_desc two[2];
        crnn_weights ww[2];
        two[0] = t.layer;
        two[1] = t.layer;
        two[1].activation = (crnn_activation)99;
        ww[0] = t.w;
        ww[1] = t.w;
        rnn = garbage;
        CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, 3, 2, two, ww), CRNN_ERR_INVALID_ARGUMENT);
        CHECK(rnn == NULL);
        two[1] = t.layer;
        ww[1].kernel = NULL;
        CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, 3, 2, two, ww), CRNN_ERR_NULL_POINTER);
        CHECK(rnn == NULL);
    }
}

static void test_forward_errors(crnn_dtype dt)
{
    tiny_t t;
    crnn_rnn_t *rnn = NULL;
    double xbuf[4 * 5 * 3], ybuf[4 * 5 * 2], wsbuf[4096];
    int64_t lengths[4] = {5, 0, 3, 5};
    size_t ws = 0;
    memset(xbuf, 0, sizeof(xbuf));
    tiny_init(&t, dt);
    CHECK_STATUS(crnn_rnn_create(&rnn, dt, 3, 1, &t.layer, &t.w), CRNN_OK);
    if (!rnn) return;

    /* workspace_size */
    CHECK_STATUS(crnn_rnn_workspace_size(NULL, 4, 5, &ws), CRNN_ERR_NULL_POINTER);
    CHECK_STATUS(crnn_rnn_workspace_size(rnn, 4, 5, NULL), CRNN_ERR_NULL_POINTER);
    CHECK_STATUS(crnn_rnn_workspace_size(rnn, -1, 5, &ws), CRNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(crnn_rnn_workspace_size(rnn, 4, 0, &ws), CRNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(crnn_rnn_workspace_size(rnn, 4, -2, &ws), CRNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(crnn_rnn_workspace_size(rnn, (int64_t)INT_MAX + 1, 5, &ws), CRNN_ERR_TOO_LARGE);
    CHECK_STATUS(crnn_rnn_workspace_size(rnn, 4, INT64_MAX, &ws), CRNN_ERR_TOO_LARGE);
    CHECK_STATUS(crnn_rnn_workspace_size(rnn, 4, INT_MAX, &ws), CRNN_ERR_TOO_LARGE); /* T*H > INT_MAX */
    CHECK_STATUS(crnn_rnn_workspace_size(rnn, 0, 5, &ws), CRNN_OK);
    CHECK_STATUS(crnn_rnn_workspace_size(rnn, 4, 5, &ws), CRNN_OK);
    CHECK(ws > 0 && ws <= sizeof(wsbuf));

    /* forward: pointers */
    CHECK_STATUS(crnn_rnn_forward(NULL, 4, 5, xbuf, NULL, NULL, ybuf, NULL, NULL, 0),
                 CRNN_ERR_NULL_POINTER);
    CHECK_STATUS(crnn_rnn_forward(rnn, 4, 5, NULL, NULL, NULL, ybuf, NULL, NULL, 0),
                 CRNN_ERR_NULL_POINTER);
    /* y and h_n both NULL is allowed (nothing asked for) */
    CHECK_STATUS(crnn_rnn_forward(rnn, 4, 5, xbuf, NULL, NULL, NULL, NULL, NULL, 0), CRNN_OK);
    /* batch 0: a no-op, even without x */
    CHECK_STATUS(crnn_rnn_forward(rnn, 0, 5, NULL, NULL, NULL, NULL, NULL, NULL, 0), CRNN_OK);
    CHECK_STATUS(crnn_rnn_forward(rnn, 0, 5, xbuf, NULL, NULL, ybuf, NULL, NULL, 0), CRNN_OK);
    /* sizes */
    CHECK_STATUS(crnn_rnn_forward(rnn, -1, 5, xbuf, NULL, NULL, ybuf, NULL, NULL, 0),
                 CRNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(crnn_rnn_forward(rnn, 4, 0, xbuf, NULL, NULL, ybuf, NULL, NULL, 0),
                 CRNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(crnn_rnn_forward(rnn, 0, 0, xbuf, NULL, NULL, ybuf, NULL, NULL, 0),
                 CRNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(crnn_rnn_forward(rnn, 4, -1, xbuf, NULL, NULL, ybuf, NULL, NULL, 0),
                 CRNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(crnn_rnn_forward(rnn, 4, INT64_MAX, xbuf, NULL, NULL, ybuf, NULL, NULL, 0),
                 CRNN_ERR_TOO_LARGE);
    /* lengths: each in [0, T] */
    CHECK_STATUS(crnn_rnn_forward(rnn, 4, 5, xbuf, lengths, NULL, ybuf, NULL, NULL, 0), CRNN_OK);
    lengths[2] = -1;
    CHECK_STATUS(crnn_rnn_forward(rnn, 4, 5, xbuf, lengths, NULL, ybuf, NULL, NULL, 0),
                 CRNN_ERR_INVALID_ARGUMENT);
    lengths[2] = 6;
    CHECK_STATUS(crnn_rnn_forward(rnn, 4, 5, xbuf, lengths, NULL, ybuf, NULL, NULL, 0),
                 CRNN_ERR_INVALID_ARGUMENT);
    lengths[2] = INT64_MIN;
    CHECK_STATUS(crnn_rnn_forward(rnn, 4, 5, xbuf, lengths, NULL, ybuf, NULL, NULL, 0),
                 CRNN_ERR_INVALID_ARGUMENT);
    lengths[2] = 5;
    /* workspace */
    CHECK_STATUS(crnn_rnn_forward(rnn, 4, 5, xbuf, NULL, NULL, ybuf, NULL, wsbuf, ws), CRNN_OK);
    CHECK_STATUS(crnn_rnn_forward(rnn, 4, 5, xbuf, NULL, NULL, ybuf, NULL, wsbuf, sizeof(wsbuf)),
                 CRNN_OK);
    CHECK_STATUS(crnn_rnn_forward(rnn, 4, 5, xbuf, NULL, NULL, ybuf, NULL, wsbuf, ws - 1),
                 CRNN_ERR_WORKSPACE_TOO_SMALL);
    CHECK_STATUS(crnn_rnn_forward(rnn, 4, 5, xbuf, NULL, NULL, ybuf, NULL, wsbuf, 0),
                 CRNN_ERR_WORKSPACE_TOO_SMALL);
    /* Huge shapes never touch x: the checks (or the failed allocation) come first. */
    if (sizeof(size_t) == 8) {
        /* B = 2^31 - 1 and T = 2^30 - 1 keep every BLAS integer in an int (T * H < 2^31), but
         * the float64 workspace, B * T * H * 8 bytes, overflows size_t. */
        if (dt == CRNN_DTYPE_FLOAT64) {
            CHECK_STATUS(crnn_rnn_workspace_size(rnn, INT_MAX, INT_MAX / 2, &ws), CRNN_ERR_TOO_LARGE);
            CHECK_STATUS(crnn_rnn_forward(rnn, INT_MAX, INT_MAX / 2, xbuf, NULL, NULL, NULL, NULL,
                                          NULL, 0),
                         CRNN_ERR_TOO_LARGE);
        } else {
            /* float32: ~2^62 bytes of workspace fit in size_t; malloc cannot give them. */
            CHECK_STATUS(crnn_rnn_workspace_size(rnn, INT_MAX, (int64_t)1 << 29, &ws), CRNN_OK);
            CHECK_STATUS(crnn_rnn_forward(rnn, INT_MAX, (int64_t)1 << 29, xbuf, NULL, NULL, NULL,
                                          NULL, NULL, 0),
                         CRNN_ERR_OUT_OF_MEMORY);
            /* a caller workspace that is too small for it is refused before anything is read */
            CHECK_STATUS(crnn_rnn_forward(rnn, INT_MAX, (int64_t)1 << 29, xbuf, NULL, NULL, NULL,
                                          NULL, wsbuf, sizeof(wsbuf)),
                         CRNN_ERR_WORKSPACE_TOO_SMALL);
        }
    }
    crnn_rnn_free(rnn);
}

static void test_misc(void)
{
    tiny_t t;
    crnn_rnn_t *rnn = NULL;
    crnn_layer_desc descs[3], layers[3];
    crnn_weights w[5];
    crnn_dtype dt = CRNN_DTYPE_FLOAT32;
    int64_t input_size = 0, num_layers = 0;
    float k2[2 * 3 * 4], r2[4 * 4], k3[8 * 5], r3[5 * 5];
    int i;

    CHECK(crnn_version() == CRNN_VERSION_NUMBER);
    CHECK(CRNN_VERSION_NUMBER == CRNN_VERSION_MAJOR * 10000 + CRNN_VERSION_MINOR * 100 + CRNN_VERSION_PATCH);
    crnn_rnn_free(NULL); /* a no-op */
    ++g_passed;

    /* info of a 3-layer stack: tanh fwd 2 units, relu bidirectional 4, linear reverse 5 */
    for (i = 0; i < (int)(sizeof(k2) / sizeof(k2[0])); ++i) k2[i] = 0.01f * (float)i;
    for (i = 0; i < (int)(sizeof(r2) / sizeof(r2[0])); ++i) r2[i] = 0.02f;
    for (i = 0; i < (int)(sizeof(k3) / sizeof(k3[0])); ++i) k3[i] = -0.01f * (float)i;
    for (i = 0; i < (int)(sizeof(r3) / sizeof(r3[0])); ++i) r3[i] = 0.03f;
    tiny_init(&t, CRNN_DTYPE_FLOAT32);
    descs[0] = t.layer;
    descs[1].units = 4;
    descs[1].activation = CRNN_ACTIVATION_RELU;
    descs[1].direction = CRNN_DIRECTION_BIDIRECTIONAL;
    descs[2].units = 5;
    descs[2].activation = CRNN_ACTIVATION_LINEAR;
    descs[2].direction = CRNN_DIRECTION_REVERSE;
    w[0] = t.w;
    w[1].kernel = k2; /* (2, 4) */
    w[1].recurrent_kernel = r2;
    w[1].bias = NULL;
    w[2] = w[1];
    w[3].kernel = k3; /* (8, 5) */
    w[3].recurrent_kernel = r3;
    w[3].bias = NULL;
    CHECK_STATUS(crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, 3, 3, descs, w), CRNN_OK);
    if (!rnn) return;
    CHECK_STATUS(crnn_rnn_info(NULL, &dt, &input_size, &num_layers, layers, 3), CRNN_ERR_NULL_POINTER);
    CHECK_STATUS(crnn_rnn_info(rnn, NULL, NULL, NULL, NULL, 0), CRNN_OK);
    memset(layers, 0, sizeof(layers));
    dt = CRNN_DTYPE_FLOAT64;
    CHECK_STATUS(crnn_rnn_info(rnn, &dt, &input_size, &num_layers, layers, 3), CRNN_OK);
    CHECK(dt == CRNN_DTYPE_FLOAT32);
    CHECK(input_size == 3);
    CHECK(num_layers == 3);
    for (i = 0; i < 3; ++i) {
        CHECK(layers[i].units == descs[i].units);
        CHECK(layers[i].activation == descs[i].activation);
        CHECK(layers[i].direction == descs[i].direction);
    }
    /* capacity smaller than the stack: only that many written */
    memset(layers, 0, sizeof(layers));
    layers[1].units = -7;
    CHECK_STATUS(crnn_rnn_info(rnn, NULL, NULL, &num_layers, layers, 1), CRNN_OK);
    CHECK(num_layers == 3 && layers[0].units == 2 && layers[1].units == -7);
    CHECK_STATUS(crnn_rnn_info(rnn, NULL, NULL, NULL, layers, 0), CRNN_OK);
    CHECK_STATUS(crnn_rnn_info(rnn, NULL, NULL, NULL, layers, -1), CRNN_OK);
    CHECK(layers[1].units == -7);
    crnn_rnn_free(rnn);

    /* The handle owns copies of the weights: overwrite the caller's arrays after create. */
    {
        float x[2 * 3] = {0.5f, -1.0f, 0.25f, 1.0f, 0.0f, -0.5f}, y1[2 * 2], y2[2 * 2];
        crnn_rnn_t *a = NULL;
        tiny_init(&t, CRNN_DTYPE_FLOAT32);
        CHECK_STATUS(crnn_rnn_create(&a, CRNN_DTYPE_FLOAT32, 3, 1, &t.layer, &t.w), CRNN_OK);
        if (a) {
            CHECK_STATUS(crnn_rnn_forward(a, 1, 2, x, NULL, NULL, y1, NULL, NULL, 0), CRNN_OK);
            for (i = 0; i < 6; ++i) t.kf[i] = 100.0f;
            CHECK_STATUS(crnn_rnn_forward(a, 1, 2, x, NULL, NULL, y2, NULL, NULL, 0), CRNN_OK);
            CHECK(memcmp(y1, y2, sizeof(y1)) == 0);
            /* x is not modified */
            CHECK(x[0] == 0.5f && x[1] == -1.0f && x[5] == -0.5f);
            crnn_rnn_free(a);
        }
    }

    /* BLAS threads */
    CHECK_STATUS(crnn_set_blas_threads(0), CRNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(crnn_set_blas_threads(-2), CRNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(crnn_set_blas_threads(1), CRNN_OK);
    CHECK(crnn_get_blas_threads() == 1);
}

/* ------------------------------------------------------------------------------------------ */
/* crnn_set_num_threads(): one call split over crnn's own threads */

/* One configuration: checked against the reference for every thread setting, and repeated
 * calls must give the same bits. */
static void run_split(int64_t B, int64_t T, int64_t D, int64_t H0, crnn_direction dir0, int64_t H1,
                      crnn_direction dir1)
{
    static const int settings[] = {1, 2, 3, 64};
    crnn_layer_desc layers[2];
    int dti, si, len, e;
    layers[0].units = H0;
    layers[0].activation = CRNN_ACTIVATION_TANH;
    layers[0].direction = dir0;
    layers[1].units = H1;
    layers[1].activation = CRNN_ACTIVATION_SIGMOID;
    layers[1].direction = dir1;
    for (dti = 0; dti < (g_quick ? 1 : 2); ++dti) { /* CRNN_TEST_QUICK: float32 only */
        const crnn_dtype dt = dti ? CRNN_DTYPE_FLOAT64 : CRNN_DTYPE_FLOAT32;
        const size_t es = elem_size(dt);
        model_t m;
        crnn_rnn_t *rnn = NULL;
        double *x, *y_ref, *hn_ref[MAX_ENTRIES], *h0r[MAX_ENTRIES];
        void *x_c, *y1, *y2, *hn1[MAX_ENTRIES], *hn2[MAX_ENTRIES], *h0_c[MAX_ENTRIES];
        int64_t lengths[64], b, W;
        size_t i, ny;
        model_init(&m, dt, D, 2, layers, 1);
        W = model_out_width(&m);
        ny = (size_t)(B * T * W);
        x = (double *)xmalloc((size_t)(B * T * D) * sizeof(double));
        for (i = 0; i < (size_t)(B * T * D); ++i) x[i] = urand();
        round_to(x, (size_t)(B * T * D), dt);
        x_c = to_dtype(x, (size_t)(B * T * D), dt);
        for (b = 0; b < B; ++b) lengths[b] = (b * 11) % (T + 1);
        y_ref = (double *)xmalloc(ny * sizeof(double));
        y1 = xmalloc(ny * es);
        y2 = xmalloc(ny * es);
        for (e = 0; e < m.num_entries; ++e) {
            const size_t n = (size_t)(B * m.entry_units[e]);
            h0r[e] = (double *)xmalloc(n * sizeof(double));
            for (i = 0; i < n; ++i) h0r[e][i] = 0.5 * urand();
            round_to(h0r[e], n, dt);
            h0_c[e] = to_dtype(h0r[e], n, dt);
            hn_ref[e] = (double *)xmalloc(n * sizeof(double));
            hn1[e] = xmalloc(n * es);
            hn2[e] = xmalloc(n * es);
        }
        CHECK_STATUS(crnn_rnn_create(&rnn, dt, D, 2, layers, m.w), CRNN_OK);
        for (len = 0; len < 2 && rnn; ++len) {
            const int64_t *lp = len ? lengths : NULL;
            double tol;
            ref_forward(&m, B, T, x, lp, h0r, y_ref, hn_ref);
            tol = derived_tol(dt, model_max_k(&m), 2 * T, max_abs(y_ref, ny));
            for (si = 0; si < (int)(sizeof(settings) / sizeof(settings[0])); ++si) {
                if (g_quick && (settings[si] == 2 || settings[si] > 3))
                    continue; /* CRNN_TEST_QUICK: 1 and 3 threads only (slow under valgrind) */
                int same = 1;
                double err;
                CHECK_STATUS(crnn_set_num_threads(settings[si]), CRNN_OK);
                CHECK_STATUS(crnn_rnn_forward(rnn, B, T, x_c, lp, (const void *const *)h0_c, y1,
                                              hn1, NULL, 0),
                             CRNN_OK);
                err = max_abs_diff(y1, y_ref, ny, dt);
                for (e = 0; e < m.num_entries; ++e) {
                    double eh = max_abs_diff(hn1[e], hn_ref[e], (size_t)(B * m.entry_units[e]), dt);
                    if (eh > err) err = eh;
                }
                CHECK(err <= tol);
                if (err > tol)
                    fprintf(stderr, "    B=%ld H=%ld/%ld, %d threads, lengths=%d: error %.3g > "
                            "tol %.3g\n", (long)B, (long)H0, (long)H1, settings[si], len, err, tol);
                CHECK_STATUS(crnn_rnn_forward(rnn, B, T, x_c, lp, (const void *const *)h0_c, y2,
                                              hn2, NULL, 0),
                             CRNN_OK);
                if (memcmp(y1, y2, ny * es) != 0) same = 0;
                for (e = 0; e < m.num_entries; ++e)
                    if (memcmp(hn1[e], hn2[e], (size_t)(B * m.entry_units[e]) * es) != 0) same = 0;
                CHECK(same);
            }
        }
        crnn_set_num_threads(1);
        crnn_rnn_free(rnn);
        for (e = 0; e < m.num_entries; ++e) {
            free(h0r[e]);
            free(h0_c[e]);
            free(hn_ref[e]);
            free(hn1[e]);
            free(hn2[e]);
        }
        free(x);
        free(x_c);
        free(y_ref);
        free(y1);
        free(y2);
        model_free(&m);
    }
}

static void test_split_threads(void)
{
    CHECK_STATUS(crnn_set_num_threads(0), CRNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(crnn_set_num_threads(-1), CRNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(crnn_set_num_threads(3), CRNN_OK);
    CHECK(crnn_get_num_threads() == 3);
    /* Several Mflop each, so that crnn spreads them over its threads: B = 13 splits the batch
     * (unevenly); B = 2 with wide layers splits the hidden units; B = 1 with every layer
     * bidirectional runs one direction per thread; B = 1 with narrow layers and T = 61
     * pipelines the input projection (7 chunks of 8 steps and one of 5), as does B = 3. */
    run_split(13, 30, 24, 48, CRNN_DIRECTION_BIDIRECTIONAL, 40, CRNN_DIRECTION_REVERSE);
    run_split(2, 12, 24, 512, CRNN_DIRECTION_BIDIRECTIONAL, 512, CRNN_DIRECTION_REVERSE);
    run_split(1, 40, 16, 96, CRNN_DIRECTION_BIDIRECTIONAL, 80, CRNN_DIRECTION_BIDIRECTIONAL);
    run_split(1, 61, 300, 100, CRNN_DIRECTION_FORWARD, 60, CRNN_DIRECTION_BIDIRECTIONAL);
    run_split(3, 20, 160, 90, CRNN_DIRECTION_REVERSE, 70, CRNN_DIRECTION_FORWARD);
    crnn_set_num_threads(1);
}

/* ------------------------------------------------------------------------------------------ */
/* Concurrent forward calls on one handle */

#define N_THREADS 4
#define N_ITERS 8
static int g_iters = N_ITERS; /* CRNN_TEST_QUICK: 1 (see main) */

typedef struct {
    const crnn_rnn_t *rnn;
    int64_t B, T;
    const void *x;
    const int64_t *lengths;
    const void *const *h0;
    size_t y_bytes, hn_bytes[MAX_ENTRIES];
    int num_entries;
    const void *y_expected;
    void *const *hn_expected;
    int own_workspace;
    int mismatches, errors;
} thread_job;

static void *thread_main(void *arg)
{
    thread_job *job = (thread_job *)arg;
    void *y = xmalloc(job->y_bytes), *hn[MAX_ENTRIES], *ws = NULL;
    size_t ws_size = 0;
    int it, e;
    for (e = 0; e < job->num_entries; ++e) hn[e] = xmalloc(job->hn_bytes[e]);
    if (job->own_workspace) {
        if (crnn_rnn_workspace_size(job->rnn, job->B, job->T, &ws_size) != CRNN_OK) ++job->errors;
        ws = xmalloc(ws_size);
    }
    for (it = 0; it < g_iters; ++it) {
        int status;
        memset(y, 0, job->y_bytes);
        status = crnn_rnn_forward(job->rnn, job->B, job->T, job->x, job->lengths, job->h0, y,
                                  hn, ws, ws_size);
        if (status != CRNN_OK) {
            ++job->errors;
            continue;
        }
        if (memcmp(y, job->y_expected, job->y_bytes) != 0) ++job->mismatches;
        for (e = 0; e < job->num_entries; ++e)
            if (memcmp(hn[e], job->hn_expected[e], job->hn_bytes[e]) != 0) ++job->mismatches;
    }
    for (e = 0; e < job->num_entries; ++e) free(hn[e]);
    free(y);
    free(ws);
    return NULL;
}

static void run_threads(crnn_dtype dt, int64_t B, int64_t T, int64_t D, int64_t H, int use_lengths,
                        int blas_threads, int crnn_threads)
{
    crnn_layer_desc layers[2];
    model_t m;
    crnn_rnn_t *rnn = NULL;
    thread_job jobs[N_THREADS];
    pthread_t tids[N_THREADS];
    int started[N_THREADS];
    double *x, *h0r[MAX_ENTRIES], *hn_ref[MAX_ENTRIES], *y_ref;
    void *x_c, *h0_c[MAX_ENTRIES], *y_seq, *hn_seq[MAX_ENTRIES];
    int64_t lengths[64], W, b;
    size_t es = elem_size(dt), i, hn_bytes[MAX_ENTRIES];
    int e, k, mismatches = 0, errors = 0;
    char what[160];

    layers[0].units = H;
    layers[0].activation = CRNN_ACTIVATION_TANH;
    layers[0].direction = CRNN_DIRECTION_BIDIRECTIONAL;
    layers[1].units = H + 3;
    layers[1].activation = CRNN_ACTIVATION_RELU;
    layers[1].direction = CRNN_DIRECTION_FORWARD;
    model_init(&m, dt, D, 2, layers, 1);
    W = model_out_width(&m);
    x = (double *)xmalloc((size_t)(B * T * D) * sizeof(double));
    for (i = 0; i < (size_t)(B * T * D); ++i) x[i] = urand();
    round_to(x, (size_t)(B * T * D), dt);
    x_c = to_dtype(x, (size_t)(B * T * D), dt);
    for (b = 0; b < B; ++b) lengths[b] = T - (b % 3) * (T / 3);
    for (e = 0; e < m.num_entries; ++e) {
        const size_t n = (size_t)(B * m.entry_units[e]);
        h0r[e] = (double *)xmalloc(n * sizeof(double));
        for (i = 0; i < n; ++i) h0r[e][i] = 0.5 * urand();
        round_to(h0r[e], n, dt);
        h0_c[e] = to_dtype(h0r[e], n, dt);
        hn_ref[e] = (double *)xmalloc(n * sizeof(double));
        hn_bytes[e] = n * es;
        hn_seq[e] = xmalloc(hn_bytes[e]);
    }
    y_ref = (double *)xmalloc((size_t)(B * T * W) * sizeof(double));
    y_seq = xmalloc((size_t)(B * T * W) * es);

    CHECK_STATUS(crnn_set_blas_threads(blas_threads), CRNN_OK);
    CHECK_STATUS(crnn_set_num_threads(crnn_threads), CRNN_OK);
    CHECK_STATUS(crnn_rnn_create(&rnn, dt, D, 2, layers, m.w), CRNN_OK);
    if (!rnn) goto done;
    /* the sequential call, itself checked against the reference */
    CHECK_STATUS(crnn_rnn_forward(rnn, B, T, x_c, use_lengths ? lengths : NULL,
                                  (const void *const *)h0_c, y_seq, hn_seq, NULL, 0),
                 CRNN_OK);
    ref_forward(&m, B, T, x, use_lengths ? lengths : NULL, h0r, y_ref, hn_ref);
    {
        const double tol = derived_tol(dt, model_max_k(&m), 2 * T, max_abs(y_ref, (size_t)(B * T * W)));
        CHECK(max_abs_diff(y_seq, y_ref, (size_t)(B * T * W), dt) <= tol);
    }

    for (k = 0; k < N_THREADS; ++k) {
        thread_job *j = &jobs[k];
        memset(j, 0, sizeof(*j));
        j->rnn = rnn;
        j->B = B;
        j->T = T;
        j->x = x_c;
        j->lengths = use_lengths ? lengths : NULL;
        j->h0 = (const void *const *)h0_c;
        j->y_bytes = (size_t)(B * T * W) * es;
        j->num_entries = m.num_entries;
        for (e = 0; e < m.num_entries; ++e) j->hn_bytes[e] = hn_bytes[e];
        j->y_expected = y_seq;
        j->hn_expected = hn_seq;
        j->own_workspace = k % 2; /* half the threads pass their own workspace, half NULL */
        started[k] = pthread_create(&tids[k], NULL, thread_main, j) == 0;
        CHECK(started[k]);
    }
    for (k = 0; k < N_THREADS; ++k) {
        if (!started[k]) continue;
        pthread_join(tids[k], NULL);
        mismatches += jobs[k].mismatches;
        errors += jobs[k].errors;
    }
    snprintf(what, sizeof(what),
             "%d threads x %d forwards (%s, B=%ld T=%ld D=%ld H=%ld lengths=%d, BLAS threads %d, "
             "crnn threads %d) bitwise equal to the sequential call",
             N_THREADS, g_iters, dt == CRNN_DTYPE_FLOAT32 ? "f32" : "f64", (long)B, (long)T,
             (long)D, (long)H, use_lengths, blas_threads, crnn_threads);
    check_impl(errors == 0 && mismatches == 0, __FILE__, __LINE__, what);
    if (errors || mismatches) fprintf(stderr, "    %d errors, %d mismatches\n", errors, mismatches);

done:
    crnn_rnn_free(rnn);
    for (e = 0; e < m.num_entries; ++e) {
        free(h0r[e]);
        free(h0_c[e]);
        free(hn_ref[e]);
        free(hn_seq[e]);
    }
    free(x);
    free(x_c);
    free(y_ref);
    free(y_seq);
    model_free(&m);
    crnn_set_blas_threads(1);
    crnn_set_num_threads(1);
}

static void test_threads(void)
{
    int dti;
    for (dti = 0; dti < (g_quick ? 1 : 2); ++dti) { /* CRNN_TEST_QUICK: float32 only */
        const crnn_dtype dt = dti ? CRNN_DTYPE_FLOAT64 : CRNN_DTYPE_FLOAT32;
        run_threads(dt, 8, 24, 16, 64, 0, 1, 1);   /* GEMM steps */
        run_threads(dt, 8, 24, 16, 64, 1, 1, 1);   /* lengths path */
        run_threads(dt, 1, 32, 24, 96, 0, 1, 1);   /* B = 1: GEMV steps */
        run_threads(dt, 6, 5, 3, 5, 1, 1, 1);      /* plain-C loops */
        run_threads(dt, 16, 12, 32, 128, 0, 2, 1); /* BLAS itself threaded while callers are too */
        run_threads(dt, 17, 16, 32, 96, 1, 1, 3);  /* each caller splits its batch over 3 threads */
        run_threads(dt, 2, 8, 32, 512, 0, 1, 2);   /* ... or its hidden units over 2 */
        run_threads(dt, 1, 64, 256, 64, 1, 1, 2);  /* ... or pipelines its input projection */
    }
}

int main(void)
{
    printf("crnn %u.%u.%u (library %u)\n", (unsigned)CRNN_VERSION_MAJOR, (unsigned)CRNN_VERSION_MINOR,
           (unsigned)CRNN_VERSION_PATCH, crnn_version());
    /* As the Python package does: one BLAS thread per call unless a test asks otherwise. */
    crnn_set_blas_threads(1);
    {
        const char *quick = getenv("CRNN_TEST_QUICK");
        g_quick = quick != NULL && quick[0] != '\0' && strcmp(quick, "0") != 0;
        if (g_quick)
            g_iters = 1;
    }
    test_status_strings();
    test_create_errors();
    test_forward_errors(CRNN_DTYPE_FLOAT32);
    test_forward_errors(CRNN_DTYPE_FLOAT64);
    test_misc();
    test_against_reference();
    test_split_threads();
    test_threads();
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
