/* test_cells.c - plain-C test of the cell API of crnn.h (0.2), nothing else included.
 *
 * Built and run by `make -C csrc test` (against libcrnn.a and libcrnn.so), `sanitize`, `tsan`
 * and `valgrind`, with -std=c99 -Wall -Wextra -Werror. It stands alone: its bookkeeping and its
 * reference are its own (tests/c/test_crnn.c covers 0.1's SimpleRNN API). It checks:
 *   - crnn_rnn_create2 / crnn_rnn_forward2 in float32 and float64 against a naive reference
 *     written below from crnn.h's equations (evaluated in double on the same, dtype-rounded
 *     values): LSTM, GRU with reset_after 1 and 0, SimpleRNN; every activation and recurrent
 *     activation (tanh, relu, sigmoid, hard_sigmoid, linear); bias and recurrent_bias each NULL
 *     or given; forward / reverse / bidirectional; stacks of three layers of different cell
 *     kinds in one handle (LSTM -> GRU -> SimpleRNN and its rotations); lengths (0, T and in
 *     between); h0 and c0 NULL, given or partly given; y, h_n and c_n NULL or with NULL entries;
 *     the c0 / c_n entries of layers without a cell state ignored (never read, never written);
 *     H = 1, primes, T = 1, B = 1, and shapes that take the core's plain loop (units <= 8),
 *     batch-1 panels (B = 1, units > 8) and GEMM steps;
 *   - the caller's workspace (exact size, garbage on entry: the same bits; 8-byte aligned; one
 *     byte short refused before any output is written);
 *   - 0.1's crnn_rnn_create + crnn_rnn_forward bitwise equal to create2 / forward2 with
 *     CRNN_CELL_SIMPLE on the same weights, and crnn_rnn_forward on a gated handle bitwise equal
 *     to forward2 with c0 = c_n = NULL;
 *   - crnn_rnn_info2 round trips, crnn_rnn_info on gated stacks;
 *   - crnn_set_num_threads 1, 2, 3 on shapes that take each way of splitting a call (batch,
 *     units, including a reset-before GRU whose step has two phases, one direction per thread,
 *     pipelined projection): within tolerance of the reference and bitwise reproducible per
 *     setting; many short units-split calls whose threads hand each layer's final states over
 *     to the next layer (h_n, c_n right in every call); concurrent forward2 calls on one gated
 *     handle bitwise equal to a sequential one;
 *   - crnn_dense_forward against a naive loop (every activation, bias NULL or given, rows 0);
 *   - every error status of create2, forward2, workspace_size (gated sizes), info2 and
 *     dense_forward.
 * The last line is "N passed, M failed"; the exit status is non-zero on any failure.
 *
 * Tolerance, derived as in test_crnn.c and tests/_helpers.py (benchdnn style), plus a term for
 * the activations' own rounding: a step's pre-activations are dot products of length at most
 * K = input width + units, each off by about eps * log2(K) * |z|, and the activations have slope
 * <= 1; the recurrent kernels drawn here have, per gate, column sums of |R| below 1, and the
 * weights are drawn so that forget / update gates keep the states O(1), so an error is
 * contracted by later steps. An activation adds an absolute error of its own, independent of K:
 * up to 4.0e-7 = 3.4 eps for crnn's float32 tanh (csrc/vmath.h), which the state update can
 * double (a GRU's 1 - z with a tanh recurrent activation, an LSTM's o * act(c_t)); with K * T
 * as small as 2 the log2 term alone would not cover it. Over the T * L dependent steps of a case:
 *     tol = eps(dtype) * (ceil(log2(K * T * L)) + 2) * FACTOR * max(1, max |expected|),
 * FACTOR = 4 as in test_crnn.c. The worst error / tolerance ratio seen is printed.
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
static uint64_t g_rng = 0x2545F4914F6CDD1Dull;

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
        fprintf(stderr, "test_cells: out of memory allocating %lu bytes\n", (unsigned long)n);
        exit(2);
    }
    return p;
}

static size_t elem_size(crnn_dtype dt) { return dt == CRNN_DTYPE_FLOAT32 ? sizeof(float) : sizeof(double); }

static double dtype_eps(crnn_dtype dt) { return dt == CRNN_DTYPE_FLOAT32 ? FLT_EPSILON : DBL_EPSILON; }

static const char *dtype_name(crnn_dtype dt) { return dt == CRNN_DTYPE_FLOAT32 ? "f32" : "f64"; }

/* n values s * U(-1, 1), rounded to the dtype, so the reference sees exactly what crnn sees. */
static double *draw(size_t n, double s, crnn_dtype dt)
{
    double *v = (double *)xmalloc(n * sizeof(double));
    size_t i;
    for (i = 0; i < n; ++i) {
        v[i] = s * urand();
        if (dt == CRNN_DTYPE_FLOAT32) v[i] = (double)(float)v[i];
    }
    return v;
}

/* A newly allocated copy of v in the dtype's representation (NULL for NULL). */
static void *to_dtype(const double *v, size_t n, crnn_dtype dt)
{
    void *out;
    size_t i;
    if (!v) return NULL;
    out = xmalloc(n * elem_size(dt));
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

/* A buffer of n elements filled with the byte 0xAB: garbage every value must overwrite, or a
 * sentinel that must survive a call untouched. */
static void *garbage(size_t bytes)
{
    void *p = xmalloc(bytes);
    memset(p, 0xAB, bytes);
    return p;
}

static int untouched(const void *p, size_t bytes)
{
    const unsigned char *c = (const unsigned char *)p;
    size_t i;
    for (i = 0; i < bytes; ++i)
        if (c[i] != 0xAB) return 0;
    return 1;
}

/* n NaNs of the dtype: an input crnn must not read (a read shows up as NaN in the results). */
static void *nans(size_t n, crnn_dtype dt)
{
    void *p = xmalloc(n * elem_size(dt));
    size_t i;
    for (i = 0; i < n; ++i) {
        if (dt == CRNN_DTYPE_FLOAT32) ((float *)p)[i] = (float)NAN;
        else ((double *)p)[i] = NAN;
    }
    return p;
}

static int ndir_of(crnn_direction d) { return d == CRNN_DIRECTION_BIDIRECTIONAL ? 2 : 1; }

static int gates_of(crnn_cell c) { return c == CRNN_CELL_LSTM ? 4 : c == CRNN_CELL_GRU ? 3 : 1; }

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

/* See the header comment. */
static double derived_tol(crnn_dtype dt, int64_t k, int64_t steps, double scale)
{
    const double factor = 4.0, activations = 2.0;
    double prod = (double)k * (double)steps;
    return dtype_eps(dt) * (ceil(log2(prod < 2.0 ? 2.0 : prod)) + activations) * factor *
           (scale > 1.0 ? scale : 1.0);
}

static double g_worst_ratio[2] = {0.0, 0.0}; /* max error / tolerance seen, per dtype */

/* ------------------------------------------------------------------------------------------ */
/* The naive reference, from crnn.h's equations, one element at a time, in double */

static double ref_act(crnn_activation a, double z)
{
    switch ((int)a) { /* int: CRNN_ACTIVATION_HARD_SIGMOID is not an enumerator */
    case CRNN_ACTIVATION_TANH: return tanh(z);
    case CRNN_ACTIVATION_RELU: return z < 0.0 ? 0.0 : z;
    case CRNN_ACTIVATION_SIGMOID: return 1.0 / (1.0 + exp(-z));
    case (int)CRNN_ACTIVATION_HARD_SIGMOID: {
        double v = z + 3.0;
        v = v < 0.0 ? 0.0 : v;
        return (v > 6.0 ? 6.0 : v) / 6.0;
    }
    default: return z; /* CRNN_ACTIVATION_LINEAR */
    }
}

#define NUM_ACTS 5
static const crnn_activation g_acts[NUM_ACTS] = {
    CRNN_ACTIVATION_TANH, CRNN_ACTIVATION_RELU, CRNN_ACTIVATION_SIGMOID,
    CRNN_ACTIVATION_HARD_SIGMOID, CRNN_ACTIVATION_LINEAR};

static int bounded(crnn_activation a)
{
    return a == CRNN_ACTIVATION_TANH || a == CRNN_ACTIVATION_SIGMOID ||
           a == CRNN_ACTIVATION_HARD_SIGMOID;
}

/* A stack with its weights: in double (dtype-rounded) for the reference, in the dtype for crnn.
 * Entries are (layer, direction), layer-major, forward first, like crnn_weights2; Keras layouts
 * and gate orders. */
#define MAX_LAYERS 3
#define MAX_ENTRIES (2 * MAX_LAYERS)

typedef struct {
    crnn_dtype dtype;
    int64_t input_size;
    int64_t num_layers;
    crnn_layer_desc2 layers[MAX_LAYERS];
    int num_entries;
    int entry_layer[MAX_ENTRIES];
    int64_t entry_units[MAX_ENTRIES], entry_in[MAX_ENTRIES];
    double *k[MAX_ENTRIES], *r[MAX_ENTRIES], *b[MAX_ENTRIES], *rb[MAX_ENTRIES]; /* b, rb: NULL */
    crnn_weights2 w[MAX_ENTRIES];                                              /* dtype copies */
} model_t;

/* bias_mode: bit 0 a bias, bit 1 a recurrent bias. */
static void model_init(model_t *m, crnn_dtype dt, int64_t input_size, int64_t num_layers,
                       const crnn_layer_desc2 *layers, int bias_mode)
{
    int64_t l, in = input_size;
    int e = 0, d;
    memset(m, 0, sizeof(*m));
    m->dtype = dt;
    m->input_size = input_size;
    m->num_layers = num_layers;
    for (l = 0; l < num_layers; ++l) {
        const int64_t H = layers[l].units, GH = gates_of(layers[l].cell) * H;
        /* Every value O(1): kernel and biases U(-s, s), s = 0.5 / sqrt(D + H), recurrent kernel
         * U(-rs, rs), rs = 1 / H (per gate, column sums of |R| below 1). Kernel and biases x4,
         * into saturation, when the activation is bounded and the gates, if any, stay in [0, 1]
         * (sigmoid, hard_sigmoid). A tanh / relu / linear gate can go negative or past 1, and
         * then z * h_{t-1} (GRU) or f * c_{t-1} (LSTM) grows with the state itself: such layers
         * get every weight x1/4, which keeps |gate| below about 0.3. */
        const int unit_gates = layers[l].cell == CRNN_CELL_SIMPLE ||
                               layers[l].recurrent_activation == CRNN_ACTIVATION_SIGMOID ||
                               layers[l].recurrent_activation == CRNN_ACTIVATION_HARD_SIGMOID;
        const double gain = !unit_gates ? 0.25 : bounded(layers[l].activation) ? 4.0 : 1.0;
        const double s = gain * 0.5 / sqrt((double)(in + H));
        const double rs = (unit_gates ? 1.0 : 0.25) / (double)H;
        m->layers[l] = layers[l];
        for (d = 0; d < ndir_of(layers[l].direction); ++d, ++e) {
            m->entry_layer[e] = (int)l;
            m->entry_units[e] = H;
            m->entry_in[e] = in;
            m->k[e] = draw((size_t)(in * GH), s, dt);
            m->r[e] = draw((size_t)(H * GH), rs, dt);
            m->b[e] = bias_mode & 1 ? draw((size_t)GH, s, dt) : NULL;
            m->rb[e] = bias_mode & 2 ? draw((size_t)GH, s, dt) : NULL;
            m->w[e].kernel = to_dtype(m->k[e], (size_t)(in * GH), dt);
            m->w[e].recurrent_kernel = to_dtype(m->r[e], (size_t)(H * GH), dt);
            m->w[e].bias = to_dtype(m->b[e], (size_t)GH, dt);
            m->w[e].recurrent_bias = to_dtype(m->rb[e], (size_t)GH, dt);
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
        free(m->rb[e]);
        free((void *)m->w[e].kernel);
        free((void *)m->w[e].recurrent_kernel);
        free((void *)m->w[e].bias);
        free((void *)m->w[e].recurrent_bias);
    }
}

static int64_t model_out_width(const model_t *m)
{
    const crnn_layer_desc2 *last = &m->layers[m->num_layers - 1];
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

static int entry_has_c(const model_t *m, int e)
{
    return m->layers[m->entry_layer[e]].cell == CRNN_CELL_LSTM;
}

/* One step of entry e for one row: h (and c) updated in place from x (din values). */
static void ref_step(const model_t *m, int e, const double *x, double *h, double *c, double *z,
                     double *hnew)
{
    const crnn_layer_desc2 *L = &m->layers[m->entry_layer[e]];
    const int64_t H = m->entry_units[e], G = gates_of(L->cell), GH = G * H, din = m->entry_in[e];
    const double *K = m->k[e], *R = m->r[e], *b = m->b[e], *rb = m->rb[e];
    int64_t i, j;
    /* z = x W + b (all gates), then + h R (+ rb) where the cell adds them */
    for (j = 0; j < GH; ++j) {
        double v = b ? b[j] : 0.0;
        for (i = 0; i < din; ++i) v += x[i] * K[i * GH + j];
        z[j] = v;
    }
    if (L->cell == CRNN_CELL_SIMPLE || L->cell == CRNN_CELL_LSTM) {
        for (j = 0; j < GH; ++j) {
            double v = rb ? rb[j] : 0.0;
            for (i = 0; i < H; ++i) v += h[i] * R[i * GH + j];
            z[j] += v;
        }
        for (j = 0; j < H; ++j) {
            if (L->cell == CRNN_CELL_SIMPLE) {
                hnew[j] = ref_act(L->activation, z[j]);
            } else { /* gates i, f, c, o */
                const double ig = ref_act(L->recurrent_activation, z[j]);
                const double fg = ref_act(L->recurrent_activation, z[H + j]);
                const double gg = ref_act(L->activation, z[2 * H + j]);
                const double og = ref_act(L->recurrent_activation, z[3 * H + j]);
                c[j] = fg * c[j] + ig * gg;
                hnew[j] = og * ref_act(L->activation, c[j]);
            }
        }
    } else { /* GRU, gates z, r, h */
        double *zz = z, *rr = z + H, *nn = z + 2 * H;
        for (j = 0; j < 2 * H; ++j) {
            double v = rb ? rb[j] : 0.0;
            for (i = 0; i < H; ++i) v += h[i] * R[i * GH + j];
            z[j] = ref_act(L->recurrent_activation, z[j] + v);
        }
        for (j = 0; j < H; ++j) {
            double v = rb ? rb[2 * H + j] : 0.0;
            if (L->reset_after) {
                for (i = 0; i < H; ++i) v += h[i] * R[i * GH + 2 * H + j];
                nn[j] = ref_act(L->activation, nn[j] + rr[j] * v);
            } else {
                for (i = 0; i < H; ++i) v += rr[i] * h[i] * R[i * GH + 2 * H + j];
                nn[j] = ref_act(L->activation, nn[j] + v);
            }
        }
        for (j = 0; j < H; ++j) hnew[j] = zz[j] * h[j] + (1.0 - zz[j]) * nn[j];
    }
    memcpy(h, hnew, (size_t)H * sizeof(double));
}

/* The whole stack. y: (B, T, out_width), zero past each length; hn[e], cn[e]: (B, units_e)
 * (cn only for LSTM entries). h0 / c0 NULL or with NULL entries mean zeros. A row takes part in
 * step t iff t < its length, in both directions. */
static void ref_forward(const model_t *m, int64_t B, int64_t T, const double *x,
                        const int64_t *lengths, double *const *h0, double *const *c0, double *y,
                        double **hn, double **cn)
{
    const double *in = x;
    int64_t din = m->input_size, l, b, s, j;
    double *bufs[2] = {NULL, NULL};
    int e = 0, d;
    for (l = 0; l < m->num_layers; ++l) {
        const int64_t H = m->layers[l].units, GH = gates_of(m->layers[l].cell) * H;
        const int nd = ndir_of(m->layers[l].direction);
        const int64_t W = H * nd;
        double *out, *h, *c, *z, *hnew;
        if (l == m->num_layers - 1) {
            out = y;
        } else {
            bufs[l % 2] = (double *)xmalloc((size_t)(B * T * W) * sizeof(double));
            out = bufs[l % 2];
        }
        memset(out, 0, (size_t)(B * T * W) * sizeof(double));
        h = (double *)xmalloc((size_t)H * sizeof(double));
        c = (double *)xmalloc((size_t)H * sizeof(double));
        hnew = (double *)xmalloc((size_t)H * sizeof(double));
        z = (double *)xmalloc((size_t)GH * sizeof(double));
        for (d = 0; d < nd; ++d, ++e) {
            const int reverse = m->layers[l].direction == CRNN_DIRECTION_REVERSE || d == 1;
            for (b = 0; b < B; ++b) {
                const int64_t n = lengths ? lengths[b] : T;
                for (j = 0; j < H; ++j) {
                    h[j] = (h0 && h0[e]) ? h0[e][b * H + j] : 0.0;
                    c[j] = (c0 && c0[e]) ? c0[e][b * H + j] : 0.0;
                }
                for (s = 0; s < n; ++s) {
                    const int64_t t = reverse ? n - 1 - s : s;
                    ref_step(m, e, in + (b * T + t) * din, h, c, z, hnew);
                    for (j = 0; j < H; ++j) out[(b * T + t) * W + d * H + j] = h[j];
                }
                for (j = 0; j < H; ++j) {
                    hn[e][b * H + j] = h[j];
                    if (cn && cn[e]) cn[e][b * H + j] = c[j];
                }
            }
        }
        free(h);
        free(c);
        free(hnew);
        free(z);
        if (l > 0) free(bufs[(l - 1) % 2]);
        in = out;
        din = W;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* One forward call's inputs, expected outputs and crnn's outputs */

typedef struct {
    int64_t B, T;
    size_t ny;
    int64_t lengths[64];
    int use_lengths;
    double *x;
    void *x_c;
    /* initial states: the arrays passed (NULL: the whole argument NULL), entries NULL or given;
     * for layers without a cell state, c0 entries point at NaNs (crnn must ignore them) */
    int h0_mode, c0_mode; /* 0 NULL, 1 all entries, 2 some entries */
    double *h0[MAX_ENTRIES], *c0[MAX_ENTRIES];
    void *h0_c[MAX_ENTRIES], *c0_c[MAX_ENTRIES];
    double *y_ref, *hn_ref[MAX_ENTRIES], *cn_ref[MAX_ENTRIES];
    double scale;
} io_t;

static void io_init(io_t *io, const model_t *m, int64_t B, int64_t T, int use_lengths,
                    int h0_mode, int c0_mode)
{
    const crnn_dtype dt = m->dtype;
    const size_t nx = (size_t)(B * T * m->input_size);
    int64_t b;
    int e;
    memset(io, 0, sizeof(*io));
    io->B = B;
    io->T = T;
    io->ny = (size_t)(B * T * model_out_width(m));
    io->use_lengths = use_lengths;
    io->h0_mode = h0_mode;
    io->c0_mode = c0_mode;
    io->x = draw(nx, 1.0, dt);
    io->x_c = to_dtype(io->x, nx, dt);
    /* lengths: T, 0, then a spread over [0, T] */
    for (b = 0; b < B && b < 64; ++b) io->lengths[b] = b == 0 ? T : b == 1 ? 0 : (b * 7 + 3) % (T + 1);
    for (e = 0; e < m->num_entries; ++e) {
        const size_t n = (size_t)(B * m->entry_units[e]);
        if (h0_mode == 1 || (h0_mode == 2 && e % 2 == 1)) {
            io->h0[e] = draw(n, 1.0, dt);
            io->h0_c[e] = to_dtype(io->h0[e], n, dt);
        }
        if (!entry_has_c(m, e)) {
            if (c0_mode) io->c0_c[e] = nans(n, dt);
        } else if (c0_mode == 1 || (c0_mode == 2 && e % 2 == 0)) {
            io->c0[e] = draw(n, 1.0, dt);
            io->c0_c[e] = to_dtype(io->c0[e], n, dt);
        }
        io->hn_ref[e] = (double *)xmalloc(n * sizeof(double));
        io->cn_ref[e] = entry_has_c(m, e) ? (double *)xmalloc(n * sizeof(double)) : NULL;
    }
    io->y_ref = (double *)xmalloc(io->ny * sizeof(double));
    ref_forward(m, B, T, io->x, use_lengths ? io->lengths : NULL, io->h0, io->c0, io->y_ref,
                io->hn_ref, io->cn_ref);
    io->scale = max_abs(io->y_ref, io->ny);
    for (e = 0; e < m->num_entries; ++e) {
        const size_t n = (size_t)(B * m->entry_units[e]);
        double s = max_abs(io->hn_ref[e], n);
        if (s > io->scale) io->scale = s;
        if (io->cn_ref[e] && (s = max_abs(io->cn_ref[e], n)) > io->scale) io->scale = s;
    }
}

static void io_free(io_t *io, const model_t *m)
{
    int e;
    for (e = 0; e < m->num_entries; ++e) {
        free(io->h0[e]);
        free(io->c0[e]);
        free(io->h0_c[e]);
        free(io->c0_c[e]);
        free(io->hn_ref[e]);
        free(io->cn_ref[e]);
    }
    free(io->x);
    free(io->x_c);
    free(io->y_ref);
}

/* crnn's outputs of one call: y and one h_n / c_n buffer per entry, all garbage on entry. Which
 * of them are passed: want_y; hn_mode / cn_mode 0 the array NULL, 1 every entry, 2 entry 0
 * NULL. c_n entries of layers without a cell state are passed too and must stay untouched. */
typedef struct {
    void *y, *hn[MAX_ENTRIES], *cn[MAX_ENTRIES];
    int want_y, hn_mode, cn_mode;
} out_t;

static void out_init(out_t *o, const model_t *m, const io_t *io, int want_y, int hn_mode,
                     int cn_mode)
{
    const size_t es = elem_size(m->dtype);
    int e;
    memset(o, 0, sizeof(*o));
    o->want_y = want_y;
    o->hn_mode = hn_mode;
    o->cn_mode = cn_mode;
    o->y = garbage(io->ny * es);
    for (e = 0; e < m->num_entries; ++e) {
        o->hn[e] = garbage((size_t)(io->B * m->entry_units[e]) * es);
        o->cn[e] = garbage((size_t)(io->B * m->entry_units[e]) * es);
    }
}

static void out_free(out_t *o, const model_t *m)
{
    int e;
    free(o->y);
    for (e = 0; e < m->num_entries; ++e) {
        free(o->hn[e]);
        free(o->cn[e]);
    }
}

/* The h_n / c_n argument of forward2 for this out_t (into `arr`), or NULL. */
static void *const *out_states(const out_t *o, int mode_is_cn, int num_entries, void **arr)
{
    const int mode = mode_is_cn ? o->cn_mode : o->hn_mode;
    int e;
    if (mode == 0) return NULL;
    for (e = 0; e < num_entries; ++e) arr[e] = mode_is_cn ? o->cn[e] : o->hn[e];
    if (mode == 2) arr[0] = NULL;
    return (void *const *)arr;
}

static int forward2(const crnn_rnn_t *rnn, const model_t *m, const io_t *io, const out_t *o,
                    void *ws, size_t ws_size)
{
    void *hn[MAX_ENTRIES], *cn[MAX_ENTRIES];
    return crnn_rnn_forward2(rnn, io->B, io->T, io->x_c, io->use_lengths ? io->lengths : NULL,
                             io->h0_mode ? (const void *const *)io->h0_c : NULL,
                             io->c0_mode ? (const void *const *)io->c0_c : NULL,
                             o->want_y ? o->y : NULL, out_states(o, 0, m->num_entries, hn),
                             out_states(o, 1, m->num_entries, cn), ws, ws_size);
}

static int requested(const out_t *o, int mode_is_cn, int e)
{
    const int mode = mode_is_cn ? o->cn_mode : o->hn_mode;
    return mode == 1 || (mode == 2 && e != 0);
}

/* max error of every requested output against the reference; *ignored_ok: the outputs crnn was
 * not asked for, or must ignore (c_n of layers without a cell state), are untouched. */
static double out_error(const out_t *o, const model_t *m, const io_t *io, int *ignored_ok)
{
    const crnn_dtype dt = m->dtype;
    const size_t es = elem_size(dt);
    double err = 0.0, eh;
    int e;
    *ignored_ok = o->want_y || untouched(o->y, io->ny * es);
    if (o->want_y) err = max_abs_diff(o->y, io->y_ref, io->ny, dt);
    for (e = 0; e < m->num_entries; ++e) {
        const size_t n = (size_t)(io->B * m->entry_units[e]);
        if (requested(o, 0, e)) {
            if ((eh = max_abs_diff(o->hn[e], io->hn_ref[e], n, dt)) > err) err = eh;
        } else if (!untouched(o->hn[e], n * es)) {
            *ignored_ok = 0;
        }
        if (requested(o, 1, e) && entry_has_c(m, e)) {
            if ((eh = max_abs_diff(o->cn[e], io->cn_ref[e], n, dt)) > err) err = eh;
        } else if (!untouched(o->cn[e], n * es)) {
            *ignored_ok = 0;
        }
    }
    return err;
}

/* Bitwise equality of the outputs `a` asked for, in two calls' results. */
static int out_same(const out_t *a, const out_t *b, const model_t *m, const io_t *io)
{
    const size_t es = elem_size(m->dtype);
    int e;
    if (a->want_y && memcmp(a->y, b->y, io->ny * es) != 0) return 0;
    for (e = 0; e < m->num_entries; ++e) {
        const size_t n = (size_t)(io->B * m->entry_units[e]) * es;
        if (requested(a, 0, e) && memcmp(a->hn[e], b->hn[e], n) != 0) return 0;
        if (requested(a, 1, e) && entry_has_c(m, e) && memcmp(a->cn[e], b->cn[e], n) != 0)
            return 0;
    }
    return 1;
}

/* Check one call's outputs against the reference; returns 1 when within tolerance. */
static int check_against_ref(const out_t *o, const model_t *m, const io_t *io, const char *what)
{
    const crnn_dtype dt = m->dtype;
    const double tol = derived_tol(dt, model_max_k(m), io->T * m->num_layers, io->scale);
    int ignored_ok, ok;
    const double err = out_error(o, m, io, &ignored_ok), ratio = err / tol;
    if (ratio > g_worst_ratio[dt == CRNN_DTYPE_FLOAT64]) g_worst_ratio[dt == CRNN_DTYPE_FLOAT64] = ratio;
    ok = err <= tol;
    check_impl(ok, __FILE__, __LINE__, what);
    if (!ok) fprintf(stderr, "    max |crnn - reference| = %.3g > tol %.3g\n", err, tol);
    check_impl(ignored_ok, __FILE__, __LINE__, "outputs not asked for (or ignored) untouched");
    /* the derived tolerance stays under the suite's ceilings (1e-5 / 1e-12) */
    CHECK(tol <= (dt == CRNN_DTYPE_FLOAT32 ? 1e-5 : 1e-12));
    return ok;
}

/* ------------------------------------------------------------------------------------------ */
/* create2 / forward2 against the reference over a grid */

typedef struct {
    int64_t B, T, D, H;
} shape_t;

/* The layer kinds, in the order a three-layer stack rotates through them. */
#define NUM_KINDS 4
static const crnn_cell g_kind_cell[NUM_KINDS] = {CRNN_CELL_LSTM, CRNN_CELL_GRU, CRNN_CELL_SIMPLE,
                                                 CRNN_CELL_GRU};
static const int g_kind_reset_after[NUM_KINDS] = {0, 1, 0, 0};
static const char *const g_kind_name[NUM_KINDS] = {"LSTM", "GRU(reset_after=1)", "SimpleRNN",
                                                   "GRU(reset_after=0)"};

static void set_layer(crnn_layer_desc2 *L, int kind, int64_t units, crnn_activation act,
                      crnn_activation ract, crnn_direction dir)
{
    L->cell = g_kind_cell[kind];
    L->units = units;
    L->activation = act;
    L->recurrent_activation = ract;
    L->direction = dir;
    L->reset_after = g_kind_reset_after[kind];
}

/* 0.1 on the same weights (every layer CRNN_CELL_SIMPLE): crnn_rnn_create + crnn_rnn_forward
 * give the same bits as create2 / forward2 (`o`: forward2's outputs). The two biases add in the
 * dtype, as create2 adds them. */
static void check_v01_equal(const model_t *m, const io_t *io, const out_t *o)
{
    const crnn_dtype dt = m->dtype;
    const size_t es = elem_size(dt);
    crnn_layer_desc d1[MAX_LAYERS];
    crnn_weights w1[MAX_ENTRIES];
    void *sum[MAX_ENTRIES], *hn[MAX_ENTRIES], *y = garbage(io->ny * es);
    crnn_rnn_t *rnn = NULL;
    int64_t l;
    int e, same = 1;
    for (l = 0; l < m->num_layers; ++l) {
        d1[l].units = m->layers[l].units;
        d1[l].activation = m->layers[l].activation;
        d1[l].direction = m->layers[l].direction;
    }
    for (e = 0; e < m->num_entries; ++e) {
        const size_t H = (size_t)m->entry_units[e];
        size_t j;
        sum[e] = NULL;
        if (m->b[e] || m->rb[e]) {
            sum[e] = xmalloc(H * es);
            for (j = 0; j < H; ++j) {
                if (dt == CRNN_DTYPE_FLOAT32)
                    ((float *)sum[e])[j] = (m->b[e] ? (float)m->b[e][j] : 0.0f) +
                                           (m->rb[e] ? (float)m->rb[e][j] : 0.0f);
                else
                    ((double *)sum[e])[j] = (m->b[e] ? m->b[e][j] : 0.0) + (m->rb[e] ? m->rb[e][j] : 0.0);
            }
        }
        w1[e].kernel = m->w[e].kernel;
        w1[e].recurrent_kernel = m->w[e].recurrent_kernel;
        w1[e].bias = sum[e];
        hn[e] = garbage(H * (size_t)io->B * es);
    }
    CHECK_STATUS(crnn_rnn_create(&rnn, dt, m->input_size, m->num_layers, d1, w1), CRNN_OK);
    if (rnn) {
        CHECK_STATUS(crnn_rnn_forward(rnn, io->B, io->T, io->x_c,
                                      io->use_lengths ? io->lengths : NULL,
                                      io->h0_mode ? (const void *const *)io->h0_c : NULL, y, hn,
                                      NULL, 0),
                     CRNN_OK);
        if (o->want_y && memcmp(y, o->y, io->ny * es) != 0) same = 0;
        for (e = 0; e < m->num_entries; ++e)
            if (requested(o, 0, e) &&
                memcmp(hn[e], o->hn[e], (size_t)(io->B * m->entry_units[e]) * es) != 0)
                same = 0;
        check_impl(same, __FILE__, __LINE__,
                   "crnn_rnn_create + crnn_rnn_forward (0.1) bitwise equal to create2 / forward2");
    }
    crnn_rnn_free(rnn);
    for (e = 0; e < m->num_entries; ++e) {
        free(sum[e]);
        free(hn[e]);
    }
    free(y);
}

/* info2 gives back the descriptors as created (a SimpleRNN layer's ignored recurrent
 * activation and a non-GRU's reset_after aside); info the units, activation and direction. */
static void check_info(const crnn_rnn_t *rnn, const model_t *m)
{
    crnn_layer_desc2 d2[MAX_LAYERS];
    crnn_layer_desc d1[MAX_LAYERS];
    crnn_dtype dt = (crnn_dtype)7;
    int64_t input_size = -1, num_layers = -1, l;
    int ok = 1;
    memset(d2, 0x5A, sizeof(d2));
    memset(d1, 0x5A, sizeof(d1));
    CHECK_STATUS(crnn_rnn_info2(rnn, &dt, &input_size, &num_layers, d2, MAX_LAYERS), CRNN_OK);
    ok = dt == m->dtype && input_size == m->input_size && num_layers == m->num_layers;
    for (l = 0; l < m->num_layers; ++l) {
        const crnn_layer_desc2 *L = &m->layers[l];
        ok = ok && d2[l].cell == L->cell && d2[l].units == L->units &&
             d2[l].activation == L->activation && d2[l].direction == L->direction;
        if (L->cell != CRNN_CELL_SIMPLE)
            ok = ok && d2[l].recurrent_activation == L->recurrent_activation;
        if (L->cell == CRNN_CELL_GRU) ok = ok && d2[l].reset_after == L->reset_after;
    }
    check_impl(ok, __FILE__, __LINE__, "crnn_rnn_info2 round trip");
    CHECK_STATUS(crnn_rnn_info(rnn, &dt, &input_size, &num_layers, d1, MAX_LAYERS), CRNN_OK);
    ok = dt == m->dtype && input_size == m->input_size && num_layers == m->num_layers;
    for (l = 0; l < m->num_layers; ++l)
        ok = ok && d1[l].units == m->layers[l].units &&
             d1[l].activation == m->layers[l].activation &&
             d1[l].direction == m->layers[l].direction;
    check_impl(ok, __FILE__, __LINE__, "crnn_rnn_info on a stack of any cells");
}

/* One case: the first layer of kind `kind` (g_kind_*), activations g_acts[act] and
 * g_acts[ract], direction `dir`; with num_layers 3, the next two kinds follow. bias_mode as
 * model_init's, h0_mode / c0_mode as io_t's; `variant` picks the outputs asked for. */
static void run_case(crnn_dtype dt, const shape_t *sh, int kind, int act, int ract,
                     int bias_mode, int h0_mode, int c0_mode, crnn_direction dir, int num_layers,
                     int use_lengths, int variant)
{
    crnn_layer_desc2 layers[MAX_LAYERS];
    model_t m;
    io_t io;
    out_t o1, o2, o3;
    crnn_rnn_t *rnn = NULL;
    void *ws_raw = NULL;
    size_t ws_size = 0;
    int l, status, all_simple = 1, has_lstm = 0;
    char what[320];

    /* layer l: the next kind, activations and direction, another size (H, H + 2, H + 1) */
    for (l = 0; l < num_layers; ++l) {
        set_layer(&layers[l], (kind + l) % NUM_KINDS, sh->H + (l == 1 ? 2 : l),
                  g_acts[(act + l) % NUM_ACTS], g_acts[(ract + 2 * l) % NUM_ACTS],
                  (crnn_direction)((dir + l) % 3));
        if (layers[l].cell != CRNN_CELL_SIMPLE) all_simple = 0;
        if (layers[l].cell == CRNN_CELL_LSTM) has_lstm = 1;
    }
    model_init(&m, dt, sh->D, num_layers, layers, bias_mode);
    io_init(&io, &m, sh->B, sh->T, use_lengths, h0_mode, c0_mode);
    /* the outputs asked for: y NULL in 1 case of 5, h_n / c_n NULL or without entry 0 */
    {
        const int yv = (variant / 2 + variant / 13) % 5, cv = (variant / 2 + variant / 17) % 6;
        out_init(&o1, &m, &io, yv != 0, variant % 7 == 3 ? 0 : variant % 7 == 5 ? 2 : 1,
                 cv == 1 ? 0 : cv == 4 ? 2 : 1);
    }
    if (!o1.want_y && o1.hn_mode == 0) o1.hn_mode = 1; /* ask for something */
    out_init(&o2, &m, &io, o1.want_y, o1.hn_mode, o1.cn_mode);
    out_init(&o3, &m, &io, o1.want_y, o1.hn_mode, o1.cn_mode);

    snprintf(what, sizeof(what),
             "case %s B=%ld T=%ld D=%ld H=%ld %s%s act=%d ract=%d bias=%d h0=%d c0=%d dir=%d "
             "lengths=%d y=%d h_n=%d c_n=%d",
             dtype_name(dt), (long)sh->B, (long)sh->T, (long)sh->D, (long)sh->H,
             g_kind_name[kind], num_layers > 1 ? "+stack" : "", (int)g_acts[act],
             (int)g_acts[ract], bias_mode, h0_mode, c0_mode, (int)dir, use_lengths, o1.want_y,
             o1.hn_mode, o1.cn_mode);

    CHECK_STATUS(crnn_rnn_create2(&rnn, dt, sh->D, num_layers, layers, m.w), CRNN_OK);
    if (!rnn) goto done;

    /* 1. the library allocates the workspace */
    status = forward2(rnn, &m, &io, &o1, NULL, 0);
    CHECK_STATUS(status, CRNN_OK);
    if (status == CRNN_OK) check_against_ref(&o1, &m, &io, what);

    /* 2. the caller supplies exactly crnn_rnn_workspace_size() bytes, 64-byte aligned, garbage
     *    on entry: the same bits */
    CHECK_STATUS(crnn_rnn_workspace_size(rnn, sh->B, sh->T, &ws_size), CRNN_OK);
    CHECK(ws_size > 0);
    if (posix_memalign(&ws_raw, 64, ws_size + 64) != 0) ws_raw = NULL;
    CHECK(ws_raw != NULL);
    if (ws_raw) {
        memset(ws_raw, 0x5A, ws_size + 64);
        CHECK_STATUS(forward2(rnn, &m, &io, &o2, ws_raw, ws_size), CRNN_OK);
        check_impl(out_same(&o1, &o2, &m, &io), __FILE__, __LINE__,
                   "caller workspace gives the same bits");
        /* 3. one byte short: refused before any output is written */
        CHECK_STATUS(forward2(rnn, &m, &io, &o3, ws_raw, ws_size - 1), CRNN_ERR_WORKSPACE_TOO_SMALL);
        {
            int ignored_ok;
            out_t none = o3;
            none.want_y = 0;
            none.hn_mode = none.cn_mode = 0;
            (void)out_error(&none, &m, &io, &ignored_ok);
            check_impl(ignored_ok, __FILE__, __LINE__, "a refused call writes no output");
        }
        /* 4. a workspace only 8-byte aligned still works (alignment is a speed hint) */
        CHECK_STATUS(forward2(rnn, &m, &io, &o3, (char *)ws_raw + 8, ws_size), CRNN_OK);
        check_against_ref(&o3, &m, &io, "8-byte aligned caller workspace");
        free(ws_raw);
    }

    /* 5. 0.1's entry points on the same weights and on this handle */
    if (all_simple) check_v01_equal(&m, &io, &o1);
    if (has_lstm && io.c0_mode == 0 && o1.hn_mode) {
        /* crnn_rnn_forward is forward2 with c0 = c_n = NULL */
        void *hn[MAX_ENTRIES];
        out_t o4;
        out_init(&o4, &m, &io, o1.want_y, o1.hn_mode, 0);
        CHECK_STATUS(crnn_rnn_forward(rnn, io.B, io.T, io.x_c, use_lengths ? io.lengths : NULL,
                                      h0_mode ? (const void *const *)io.h0_c : NULL,
                                      o4.want_y ? o4.y : NULL, out_states(&o4, 0, m.num_entries, hn),
                                      NULL, 0),
                     CRNN_OK);
        check_impl(out_same(&o4, &o1, &m, &io), __FILE__, __LINE__,
                   "crnn_rnn_forward on a gated handle bitwise equal to forward2");
        out_free(&o4, &m);
    }
    check_info(rnn, &m);

done:
    crnn_rnn_free(rnn);
    out_free(&o1, &m);
    out_free(&o2, &m);
    out_free(&o3, &m);
    io_free(&io, &m);
    model_free(&m);
}

static void test_against_reference(void)
{
    /* (1,1,1,1): everything scalar; (3,5,4,3) and (5,4,7,1): the plain loops (units <= 8), H = 1;
     * (1,7,10,33): B = 1, the batch-1 panels; (4,6,20,17): GEMM steps and projection;
     * (2,1,3,11): T = 1, primes. */
    static const shape_t shapes[] = {{1, 1, 1, 1},  {3, 5, 4, 3},   {5, 4, 7, 1},
                                     {1, 7, 10, 33}, {4, 6, 20, 17}, {2, 1, 3, 11}};
    const int n_before = g_passed + g_failed;
    /* CRNN_TEST_QUICK=1: every 11th case (11 is prime to every extent and modulus below, so each
     * value of each parameter still occurs); unset or 0: the whole grid. */
    const int stride = g_quick ? 11 : 1;
    int dti, kind, si, dir, h0m, len, variant = 0, ran = 0;
    for (dti = 0; dti < 2; ++dti)
        for (kind = 0; kind < NUM_KINDS; ++kind)
            for (si = 0; si < (int)(sizeof(shapes) / sizeof(shapes[0])); ++si)
                for (dir = 0; dir < 3; ++dir)
                    for (h0m = 0; h0m < 3; ++h0m)
                        for (len = 0; len < 2; ++len, ++variant) {
                            /* derived from the running count so that, over the full
                             * grid, every pair of parameters occurs in every combination of
                             * their values, and each cell kind meets all 25 (act, ract) pairs */
                            if (variant % stride != 0) continue;
                            run_case(dti ? CRNN_DTYPE_FLOAT64 : CRNN_DTYPE_FLOAT32, &shapes[si],
                                     kind, variant % NUM_ACTS, variant / NUM_ACTS % NUM_ACTS,
                                     (variant / 2 + variant / 9) % 4, h0m,
                                     (variant / 3 + variant / 7) % 3, (crnn_direction)dir,
                                     (variant / 4 + variant / 11) % 2 ? 3 : 1, len, variant);
                            ++ran;
                        }
    printf("cells reference grid: %d cases%s, %d checks; worst error / tolerance: f32 %.3f, "
           "f64 %.3f\n",
           ran, stride > 1 ? " (CRNN_TEST_QUICK: every 11th)" : "", g_passed + g_failed - n_before,
           g_worst_ratio[0], g_worst_ratio[1]);
}

/* ------------------------------------------------------------------------------------------ */
/* Error statuses of create2 / forward2 / workspace_size / info2 */

/* A small valid one-layer stack of any cell: D = 3, 2 units, forward, tanh / sigmoid, float32
 * weights (kernel (3, 8), recurrent (2, 8), biases (8): room for the LSTM's 4 gates). */
typedef struct {
    float k[3 * 8], r[2 * 8], b[8], rb[8];
    crnn_layer_desc2 layer;
    crnn_weights2 w;
} tiny_t;

static void tiny_init(tiny_t *t, crnn_cell cell)
{
    int i;
    for (i = 0; i < 24; ++i) t->k[i] = 0.05f * (float)(i % 7 - 3);
    for (i = 0; i < 16; ++i) t->r[i] = 0.04f * (float)(i % 5 - 2);
    for (i = 0; i < 8; ++i) t->b[i] = t->rb[i] = 0.01f * (float)i;
    t->layer.cell = cell;
    t->layer.units = 2;
    t->layer.activation = CRNN_ACTIVATION_TANH;
    t->layer.recurrent_activation = CRNN_ACTIVATION_SIGMOID;
    t->layer.direction = CRNN_DIRECTION_FORWARD;
    t->layer.reset_after = cell == CRNN_CELL_GRU;
    t->w.kernel = t->k;
    t->w.recurrent_kernel = t->r;
    t->w.bias = t->b;
    t->w.recurrent_bias = t->rb;
}

/* create2 with one bad field: the status, and *out NULL afterwards. */
static void check_create2(const crnn_layer_desc2 *layers, const crnn_weights2 *w, int64_t nl,
                          crnn_dtype dt, int64_t input_size, int expected, int line)
{
    int sentinel = 0;
    crnn_rnn_t *rnn = (crnn_rnn_t *)(void *)&sentinel;
    const int status = crnn_rnn_create2(&rnn, dt, input_size, nl, layers, w);
    char what[96];
    snprintf(what, sizeof(what), "crnn_rnn_create2 (line %d)", line);
    check_status_impl(status, expected, __FILE__, line, what);
    if (expected != CRNN_OK) check_impl(rnn == NULL, __FILE__, line, "*out NULL on failure");
    if (status == CRNN_OK && rnn != (crnn_rnn_t *)(void *)&sentinel) crnn_rnn_free(rnn);
}

#define CHECK_CREATE2(layers, w, nl, dt, in, expected) \
    check_create2((layers), (w), (nl), (dt), (in), (expected), __LINE__)

static void test_create2_errors(void)
{
    static const crnn_cell cells[3] = {CRNN_CELL_SIMPLE, CRNN_CELL_LSTM, CRNN_CELL_GRU};
    const crnn_dtype f32 = CRNN_DTYPE_FLOAT32;
    tiny_t t;
    crnn_layer_desc2 bad, two[2];
    crnn_weights2 w, ww[3];
    int ci, i;

    for (ci = 0; ci < 3; ++ci) {
        const int gated = cells[ci] != CRNN_CELL_SIMPLE;
        tiny_init(&t, cells[ci]);
        /* valid, with and without each bias */
        CHECK_CREATE2(&t.layer, &t.w, 1, f32, 3, CRNN_OK);
        w = t.w;
        w.bias = NULL;
        CHECK_CREATE2(&t.layer, &w, 1, f32, 3, CRNN_OK);
        w.recurrent_bias = NULL;
        CHECK_CREATE2(&t.layer, &w, 1, f32, 3, CRNN_OK);
        /* pointers */
        CHECK_STATUS(crnn_rnn_create2(NULL, f32, 3, 1, &t.layer, &t.w), CRNN_ERR_NULL_POINTER);
        CHECK_CREATE2(NULL, &t.w, 1, f32, 3, CRNN_ERR_NULL_POINTER);
        CHECK_CREATE2(&t.layer, NULL, 1, f32, 3, CRNN_ERR_NULL_POINTER);
        w = t.w;
        w.kernel = NULL;
        CHECK_CREATE2(&t.layer, &w, 1, f32, 3, CRNN_ERR_NULL_POINTER);
        w = t.w;
        w.recurrent_kernel = NULL;
        CHECK_CREATE2(&t.layer, &w, 1, f32, 3, CRNN_ERR_NULL_POINTER);
        /* the reverse direction's entry of a bidirectional layer is checked too */
        bad = t.layer;
        bad.direction = CRNN_DIRECTION_BIDIRECTIONAL;
        ww[0] = ww[1] = t.w;
        CHECK_CREATE2(&bad, ww, 1, f32, 3, CRNN_OK);
        ww[1].recurrent_kernel = NULL;
        CHECK_CREATE2(&bad, ww, 1, f32, 3, CRNN_ERR_NULL_POINTER);
        /* enums and counts */
        CHECK_CREATE2(&t.layer, &t.w, 1, (crnn_dtype)2, 3, CRNN_ERR_INVALID_ARGUMENT);
        CHECK_CREATE2(&t.layer, &t.w, 1, (crnn_dtype)-1, 3, CRNN_ERR_INVALID_ARGUMENT);
        CHECK_CREATE2(&t.layer, &t.w, 1, f32, 0, CRNN_ERR_INVALID_ARGUMENT);
        CHECK_CREATE2(&t.layer, &t.w, 1, f32, -3, CRNN_ERR_INVALID_ARGUMENT);
        CHECK_CREATE2(&t.layer, &t.w, 0, f32, 3, CRNN_ERR_INVALID_ARGUMENT);
        CHECK_CREATE2(&t.layer, &t.w, -1, f32, 3, CRNN_ERR_INVALID_ARGUMENT);
        bad = t.layer;
        bad.units = 0;
        CHECK_CREATE2(&bad, &t.w, 1, f32, 3, CRNN_ERR_INVALID_ARGUMENT);
        bad.units = -5;
        CHECK_CREATE2(&bad, &t.w, 1, f32, 3, CRNN_ERR_INVALID_ARGUMENT);
        for (i = 0; i < 3; ++i) {
            static const int bad_values[3] = {5, 99, -1}; /* 4 is HARD_SIGMOID since 0.2 */
            bad = t.layer;
            bad.activation = (crnn_activation)bad_values[i];
            CHECK_CREATE2(&bad, &t.w, 1, f32, 3, CRNN_ERR_INVALID_ARGUMENT);
            /* the recurrent activation: checked for LSTM and GRU, ignored for SimpleRNN */
            bad = t.layer;
            bad.recurrent_activation = (crnn_activation)bad_values[i];
            CHECK_CREATE2(&bad, &t.w, 1, f32, 3, gated ? CRNN_ERR_INVALID_ARGUMENT : CRNN_OK);
            bad = t.layer;
            bad.direction = (crnn_direction)(i == 0 ? 3 : bad_values[i]);
            CHECK_CREATE2(&bad, &t.w, 1, f32, 3, CRNN_ERR_INVALID_ARGUMENT);
        }
        bad = t.layer;
        bad.activation = CRNN_ACTIVATION_HARD_SIGMOID;
        bad.recurrent_activation = CRNN_ACTIVATION_HARD_SIGMOID;
        CHECK_CREATE2(&bad, &t.w, 1, f32, 3, CRNN_OK);
        /* sizes beyond the BLAS's 32-bit integers; no weight is read before these checks */
        CHECK_CREATE2(&t.layer, &t.w, 1, f32, (int64_t)INT_MAX + 1, CRNN_ERR_TOO_LARGE);
        CHECK_CREATE2(&t.layer, &t.w, INT64_MAX, f32, 3, CRNN_ERR_TOO_LARGE);
        bad = t.layer;
        bad.units = INT64_MAX;
        CHECK_CREATE2(&bad, &t.w, 1, f32, 3, CRNN_ERR_TOO_LARGE);
    }
    /* cell kinds */
    tiny_init(&t, CRNN_CELL_GRU);
    for (i = 0; i < 3; ++i) {
        static const int bad_cells[3] = {3, -1, 99};
        bad = t.layer;
        bad.cell = (crnn_cell)bad_cells[i];
        CHECK_CREATE2(&bad, &t.w, 1, f32, 3, CRNN_ERR_INVALID_ARGUMENT);
    }
    /* reset_after of a GRU: 0 or 1 */
    bad = t.layer;
    bad.reset_after = 0;
    CHECK_CREATE2(&bad, &t.w, 1, f32, 3, CRNN_OK);
    bad.reset_after = 2;
    CHECK_CREATE2(&bad, &t.w, 1, f32, 3, CRNN_ERR_INVALID_ARGUMENT);
    bad.reset_after = -1;
    CHECK_CREATE2(&bad, &t.w, 1, f32, 3, CRNN_ERR_INVALID_ARGUMENT);
    bad.reset_after = INT_MAX;
    CHECK_CREATE2(&bad, &t.w, 1, f32, 3, CRNN_ERR_INVALID_ARGUMENT);
    /* units * gates * 2 (a leading dimension) must fit in an int: an LSTM of 2^28 units and a
     * GRU of INT_MAX / 6 + 1 units are refused, before any weight is read */
    bad = t.layer;
    bad.cell = CRNN_CELL_LSTM;
    bad.units = (int64_t)1 << 28;
    CHECK_CREATE2(&bad, &t.w, 1, f32, 3, CRNN_ERR_TOO_LARGE);
    bad.cell = CRNN_CELL_GRU;
    bad.units = INT_MAX / 6 + 1;
    CHECK_CREATE2(&bad, &t.w, 1, f32, 3, CRNN_ERR_TOO_LARGE);
    if (sizeof(size_t) == 8) {
        /* float64 LSTM, D = 2^31 - 1, 2^28 - 1 units: the kernel alone is ~2^64 bytes, which
         * overflows size_t */
        bad.cell = CRNN_CELL_LSTM;
        bad.units = ((int64_t)1 << 28) - 1;
        CHECK_CREATE2(&bad, &t.w, 1, CRNN_DTYPE_FLOAT64, INT_MAX, CRNN_ERR_TOO_LARGE);
        /* float32 LSTM, D = 2^31 - 1, 2^26 units: ~2^61 bytes fit in size_t, no malloc gives
         * them (beyond any x86-64 / arm64 address space) */
        bad.units = (int64_t)1 << 26;
        CHECK_CREATE2(&bad, &t.w, 1, f32, INT_MAX, CRNN_ERR_OUT_OF_MEMORY);
    }
    /* the later layers of a stack are checked too: LSTM -> GRU with a bad field */
    tiny_init(&t, CRNN_CELL_LSTM);
    two[0] = t.layer;
    two[1] = t.layer;
    two[1].cell = CRNN_CELL_GRU;
    ww[0] = ww[1] = t.w; /* the second layer's kernel (2, 6) fits in the (3, 8) array */
    CHECK_CREATE2(two, ww, 2, f32, 3, CRNN_OK);
    two[1].recurrent_activation = (crnn_activation)42;
    CHECK_CREATE2(two, ww, 2, f32, 3, CRNN_ERR_INVALID_ARGUMENT);
    two[1] = t.layer;
    two[1].cell = CRNN_CELL_GRU;
    two[1].reset_after = 7;
    CHECK_CREATE2(two, ww, 2, f32, 3, CRNN_ERR_INVALID_ARGUMENT);
    two[1].reset_after = 1;
    two[1].cell = (crnn_cell)5;
    CHECK_CREATE2(two, ww, 2, f32, 3, CRNN_ERR_INVALID_ARGUMENT);
    two[1].cell = CRNN_CELL_GRU;
    ww[1].kernel = NULL;
    CHECK_CREATE2(two, ww, 2, f32, 3, CRNN_ERR_NULL_POINTER);
}

static void test_forward2_errors(crnn_dtype dt)
{
    const size_t es = elem_size(dt);
    tiny_t t;
    crnn_rnn_t *rnn = NULL, *simple = NULL;
    crnn_weights2 w;
    double k[24], r[16], b[8], xbuf[4 * 5 * 3], wsbuf[4096];
    void *y = garbage(4 * 5 * 2 * 8), *hn = garbage(4 * 2 * 8), *cn = garbage(4 * 2 * 8);
    void *hns[1], *cns[1];
    int64_t lengths[4] = {5, 0, 3, 5};
    size_t ws = 0;
    int i;
    hns[0] = hn;
    cns[0] = cn;
    memset(xbuf, 0, sizeof(xbuf));
    tiny_init(&t, CRNN_CELL_LSTM);
    w = t.w;
    if (dt == CRNN_DTYPE_FLOAT64) { /* the same weights in float64 */
        for (i = 0; i < 24; ++i) k[i] = t.k[i];
        for (i = 0; i < 16; ++i) r[i] = t.r[i];
        for (i = 0; i < 8; ++i) b[i] = t.b[i];
        w.kernel = k;
        w.recurrent_kernel = r;
        w.bias = b;
        w.recurrent_bias = NULL;
    }
    CHECK_STATUS(crnn_rnn_create2(&rnn, dt, 3, 1, &t.layer, &w), CRNN_OK);
    t.layer.cell = CRNN_CELL_SIMPLE;
    CHECK_STATUS(crnn_rnn_create2(&simple, dt, 3, 1, &t.layer, &w), CRNN_OK);
    if (!rnn || !simple) goto done;

    /* workspace_size: the gates count (T * 4 * units must fit in an int, T * units did) */
    CHECK_STATUS(crnn_rnn_workspace_size(NULL, 4, 5, &ws), CRNN_ERR_NULL_POINTER);
    CHECK_STATUS(crnn_rnn_workspace_size(rnn, 4, 5, NULL), CRNN_ERR_NULL_POINTER);
    CHECK_STATUS(crnn_rnn_workspace_size(rnn, -1, 5, &ws), CRNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(crnn_rnn_workspace_size(rnn, 4, 0, &ws), CRNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(crnn_rnn_workspace_size(rnn, (int64_t)INT_MAX + 1, 5, &ws), CRNN_ERR_TOO_LARGE);
    CHECK_STATUS(crnn_rnn_workspace_size(rnn, 4, INT_MAX / 8 + 1, &ws), CRNN_ERR_TOO_LARGE);
    CHECK_STATUS(crnn_rnn_workspace_size(simple, 4, INT_MAX / 8 + 1, &ws), CRNN_OK);
    CHECK_STATUS(crnn_rnn_workspace_size(rnn, 0, 5, &ws), CRNN_OK);
    CHECK_STATUS(crnn_rnn_workspace_size(rnn, 4, 5, &ws), CRNN_OK);
    CHECK(ws > 0 && ws <= sizeof(wsbuf));

    /* forward2: pointers */
    CHECK_STATUS(crnn_rnn_forward2(NULL, 4, 5, xbuf, NULL, NULL, NULL, y, hns, cns, NULL, 0),
                 CRNN_ERR_NULL_POINTER);
    CHECK_STATUS(crnn_rnn_forward2(rnn, 4, 5, NULL, NULL, NULL, NULL, y, hns, cns, NULL, 0),
                 CRNN_ERR_NULL_POINTER);
    /* nothing asked for, or only c_n */
    CHECK_STATUS(crnn_rnn_forward2(rnn, 4, 5, xbuf, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0),
                 CRNN_OK);
    CHECK_STATUS(crnn_rnn_forward2(rnn, 4, 5, xbuf, NULL, NULL, NULL, NULL, NULL, cns, NULL, 0),
                 CRNN_OK);
    /* batch 0: a no-op, even without x */
    CHECK_STATUS(crnn_rnn_forward2(rnn, 0, 5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0),
                 CRNN_OK);
    /* sizes */
    CHECK_STATUS(crnn_rnn_forward2(rnn, -1, 5, xbuf, NULL, NULL, NULL, y, NULL, NULL, NULL, 0),
                 CRNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(crnn_rnn_forward2(rnn, 4, 0, xbuf, NULL, NULL, NULL, y, NULL, NULL, NULL, 0),
                 CRNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(crnn_rnn_forward2(rnn, 4, INT64_MAX, xbuf, NULL, NULL, NULL, y, NULL, NULL,
                                   NULL, 0),
                 CRNN_ERR_TOO_LARGE);
    CHECK_STATUS(crnn_rnn_forward2(rnn, 4, INT_MAX / 8 + 1, xbuf, NULL, NULL, NULL, y, NULL,
                                   NULL, NULL, 0),
                 CRNN_ERR_TOO_LARGE);
    /* lengths: each in [0, T]; refused before any output is written */
    memset(y, 0xAB, 4 * 5 * 2 * es);
    memset(hn, 0xAB, 4 * 2 * es);
    memset(cn, 0xAB, 4 * 2 * es);
    lengths[2] = 6;
    CHECK_STATUS(crnn_rnn_forward2(rnn, 4, 5, xbuf, lengths, NULL, NULL, y, hns, cns, NULL, 0),
                 CRNN_ERR_INVALID_ARGUMENT);
    lengths[2] = -1;
    CHECK_STATUS(crnn_rnn_forward2(rnn, 4, 5, xbuf, lengths, NULL, NULL, y, hns, cns, NULL, 0),
                 CRNN_ERR_INVALID_ARGUMENT);
    CHECK(untouched(y, 4 * 5 * 2 * es) && untouched(hn, 4 * 2 * es) && untouched(cn, 4 * 2 * es));
    lengths[2] = 3;
    CHECK_STATUS(crnn_rnn_forward2(rnn, 4, 5, xbuf, lengths, NULL, NULL, y, hns, cns, NULL, 0),
                 CRNN_OK);
    /* workspace */
    CHECK_STATUS(crnn_rnn_forward2(rnn, 4, 5, xbuf, NULL, NULL, NULL, y, hns, cns, wsbuf, ws),
                 CRNN_OK);
    CHECK_STATUS(crnn_rnn_forward2(rnn, 4, 5, xbuf, NULL, NULL, NULL, y, hns, cns, wsbuf, ws - 1),
                 CRNN_ERR_WORKSPACE_TOO_SMALL);
    CHECK_STATUS(crnn_rnn_forward2(rnn, 4, 5, xbuf, NULL, NULL, NULL, y, hns, cns, wsbuf, 0),
                 CRNN_ERR_WORKSPACE_TOO_SMALL);
    /* Huge shapes never touch x: the checks (or the failed allocation) come first. B = 2^31 - 1:
     * every BLAS integer fits (T * 4 * 2 < 2^31 for T <= 2^27); the gates buffer is (B * T * 8)
     * elements (one direction here). */
    if (sizeof(size_t) == 8) {
        if (dt == CRNN_DTYPE_FLOAT64) { /* T = 2^27: 2^64 bytes of gates, past size_t */
            CHECK_STATUS(crnn_rnn_workspace_size(rnn, INT_MAX, (int64_t)1 << 27, &ws),
                         CRNN_ERR_TOO_LARGE);
            CHECK_STATUS(crnn_rnn_forward2(rnn, INT_MAX, (int64_t)1 << 27, xbuf, NULL, NULL, NULL,
                                           NULL, NULL, NULL, NULL, 0),
                         CRNN_ERR_TOO_LARGE);
        } else { /* T = 2^26: ~2^62 bytes fit in size_t; malloc cannot give them */
            CHECK_STATUS(crnn_rnn_workspace_size(rnn, INT_MAX, (int64_t)1 << 26, &ws), CRNN_OK);
            CHECK_STATUS(crnn_rnn_forward2(rnn, INT_MAX, (int64_t)1 << 26, xbuf, NULL, NULL, NULL,
                                           NULL, NULL, NULL, NULL, 0),
                         CRNN_ERR_OUT_OF_MEMORY);
            CHECK_STATUS(crnn_rnn_forward2(rnn, INT_MAX, (int64_t)1 << 26, xbuf, NULL, NULL, NULL,
                                           NULL, NULL, NULL, wsbuf, sizeof(wsbuf)),
                         CRNN_ERR_WORKSPACE_TOO_SMALL);
        }
    }

done:
    crnn_rnn_free(rnn);
    crnn_rnn_free(simple);
    free(y);
    free(hn);
    free(cn);
}

static void test_info2(void)
{
    crnn_layer_desc2 descs[3], out[3];
    crnn_weights2 w[5];
    crnn_rnn_t *rnn = NULL;
    crnn_dtype dt = CRNN_DTYPE_FLOAT64;
    int64_t input_size = 0, num_layers = 0;
    float k0[3 * 8], r0[2 * 8], k1[2 * 12], r1[4 * 12], k2[8 * 5], r2[5 * 5];
    int i;
    for (i = 0; i < (int)(sizeof(k0) / sizeof(k0[0])); ++i) k0[i] = 0.01f * (float)i;
    for (i = 0; i < (int)(sizeof(r0) / sizeof(r0[0])); ++i) r0[i] = 0.02f;
    for (i = 0; i < (int)(sizeof(k1) / sizeof(k1[0])); ++i) k1[i] = -0.01f * (float)i;
    for (i = 0; i < (int)(sizeof(r1) / sizeof(r1[0])); ++i) r1[i] = 0.03f;
    for (i = 0; i < (int)(sizeof(k2) / sizeof(k2[0])); ++i) k2[i] = 0.005f * (float)i;
    for (i = 0; i < (int)(sizeof(r2) / sizeof(r2[0])); ++i) r2[i] = -0.02f;
    /* LSTM fwd 2 units (hard_sigmoid gates), GRU reset-before bidirectional 4, SimpleRNN
     * reverse 5 (hard_sigmoid) */
    set_layer(&descs[0], 0, 2, CRNN_ACTIVATION_RELU, CRNN_ACTIVATION_HARD_SIGMOID,
              CRNN_DIRECTION_FORWARD);
    set_layer(&descs[1], 3, 4, CRNN_ACTIVATION_LINEAR, CRNN_ACTIVATION_TANH,
              CRNN_DIRECTION_BIDIRECTIONAL);
    set_layer(&descs[2], 2, 5, CRNN_ACTIVATION_HARD_SIGMOID, CRNN_ACTIVATION_HARD_SIGMOID,
              CRNN_DIRECTION_REVERSE);
    memset(w, 0, sizeof(w));
    w[0].kernel = k0;
    w[0].recurrent_kernel = r0;
    w[1].kernel = w[2].kernel = k1;
    w[1].recurrent_kernel = w[2].recurrent_kernel = r1;
    w[2].bias = k1; /* any (12) values */
    w[3].kernel = k2;
    w[3].recurrent_kernel = r2;
    w[3].recurrent_bias = r2;
    CHECK_STATUS(crnn_rnn_create2(&rnn, CRNN_DTYPE_FLOAT32, 3, 3, descs, w), CRNN_OK);
    if (!rnn) return;
    CHECK_STATUS(crnn_rnn_info2(NULL, &dt, &input_size, &num_layers, out, 3), CRNN_ERR_NULL_POINTER);
    CHECK_STATUS(crnn_rnn_info2(rnn, NULL, NULL, NULL, NULL, 0), CRNN_OK);
    CHECK_STATUS(crnn_rnn_info2(rnn, NULL, NULL, NULL, NULL, 3), CRNN_OK);
    memset(out, 0, sizeof(out));
    CHECK_STATUS(crnn_rnn_info2(rnn, &dt, &input_size, &num_layers, out, 3), CRNN_OK);
    CHECK(dt == CRNN_DTYPE_FLOAT32 && input_size == 3 && num_layers == 3);
    for (i = 0; i < 3; ++i) {
        CHECK(out[i].cell == descs[i].cell);
        CHECK(out[i].units == descs[i].units);
        CHECK(out[i].activation == descs[i].activation);
        CHECK(out[i].direction == descs[i].direction);
        CHECK(out[i].reset_after == descs[i].reset_after);
        if (descs[i].cell != CRNN_CELL_SIMPLE)
            CHECK(out[i].recurrent_activation == descs[i].recurrent_activation);
    }
    /* capacity smaller than the stack: only that many written */
    memset(out, 0, sizeof(out));
    out[1].units = -7;
    CHECK_STATUS(crnn_rnn_info2(rnn, NULL, NULL, &num_layers, out, 1), CRNN_OK);
    CHECK(num_layers == 3 && out[0].units == 2 && out[0].cell == CRNN_CELL_LSTM && out[1].units == -7);
    CHECK_STATUS(crnn_rnn_info2(rnn, NULL, NULL, NULL, out + 1, 0), CRNN_OK);
    CHECK_STATUS(crnn_rnn_info2(rnn, NULL, NULL, NULL, out + 1, -1), CRNN_OK);
    CHECK(out[1].units == -7);
    crnn_rnn_free(rnn);
}

/* 0.1's crnn_rnn_create on a stack deeper than it converts on the stack (18 layers of every
 * activation and direction): bitwise the handle create2 builds from CRNN_CELL_SIMPLE layers, and
 * its errors in a late layer. */
static void test_v01_deep_stack(void)
{
    enum { NL = 18, B = 3, T = 4, D = 5 };
    crnn_layer_desc d1[NL];
    crnn_layer_desc2 d2[NL];
    crnn_weights w1[2 * NL];
    crnn_weights2 w2[2 * NL];
    void *arrays[3 * 2 * NL];
    int64_t in = D, l, W = 0;
    int e = 0, na = 0, dti, i, sentinel = 0;
    for (dti = 0; dti < 2; ++dti) {
        const crnn_dtype dt = dti ? CRNN_DTYPE_FLOAT64 : CRNN_DTYPE_FLOAT32;
        const size_t es = elem_size(dt);
        crnn_rnn_t *a = NULL, *b = NULL;
        double *xd = draw((size_t)(B * T * D), 1.0, dt);
        void *x = to_dtype(xd, (size_t)(B * T * D), dt), *ya, *yb;
        e = na = 0;
        in = D;
        for (l = 0; l < NL; ++l) {
            const int64_t H = 2 + l % 4;
            int d;
            d1[l].units = d2[l].units = H;
            d1[l].activation = d2[l].activation = g_acts[l % NUM_ACTS];
            d1[l].direction = d2[l].direction = (crnn_direction)(l % 3);
            d2[l].cell = CRNN_CELL_SIMPLE;
            d2[l].recurrent_activation = (crnn_activation)77; /* ignored for SimpleRNN */
            d2[l].reset_after = 0;
            for (d = 0; d < ndir_of(d1[l].direction); ++d, ++e) {
                double *k = draw((size_t)(in * H), 0.5 / sqrt((double)(in + H)), dt);
                double *r = draw((size_t)(H * H), 1.0 / (double)H, dt);
                double *bias = l % 2 ? NULL : draw((size_t)H, 0.1, dt);
                w1[e].kernel = w2[e].kernel = arrays[na++] = to_dtype(k, (size_t)(in * H), dt);
                w1[e].recurrent_kernel = w2[e].recurrent_kernel = arrays[na++] =
                    to_dtype(r, (size_t)(H * H), dt);
                w1[e].bias = w2[e].bias = arrays[na++] = to_dtype(bias, (size_t)H, dt);
                w2[e].recurrent_bias = NULL;
                free(k);
                free(r);
                free(bias);
            }
            in = H * ndir_of(d1[l].direction);
        }
        W = in;
        ya = garbage((size_t)(B * T * W) * es);
        yb = garbage((size_t)(B * T * W) * es);
        CHECK_STATUS(crnn_rnn_create(&a, dt, D, NL, d1, w1), CRNN_OK);
        CHECK_STATUS(crnn_rnn_create2(&b, dt, D, NL, d2, w2), CRNN_OK);
        if (a && b) {
            int finite = 1;
            CHECK_STATUS(crnn_rnn_forward(a, B, T, x, NULL, NULL, ya, NULL, NULL, 0), CRNN_OK);
            CHECK_STATUS(crnn_rnn_forward2(b, B, T, x, NULL, NULL, NULL, yb, NULL, NULL, NULL, 0),
                         CRNN_OK);
            CHECK(memcmp(ya, yb, (size_t)(B * T * W) * es) == 0);
            for (i = 0; i < B * T * W; ++i) finite = finite && isfinite(get_value(ya, (size_t)i, dt));
            CHECK(finite);
        }
        crnn_rnn_free(a);
        crnn_rnn_free(b);
        /* errors found in layer 17 of 18 */
        d1[16].direction = (crnn_direction)3;
        a = (crnn_rnn_t *)(void *)&sentinel;
        CHECK_STATUS(crnn_rnn_create(&a, dt, D, NL, d1, w1), CRNN_ERR_INVALID_ARGUMENT);
        CHECK(a == NULL);
        d1[16].direction = (crnn_direction)(16 % 3);
        d1[16].activation = (crnn_activation)99;
        CHECK_STATUS(crnn_rnn_create(&a, dt, D, NL, d1, w1), CRNN_ERR_INVALID_ARGUMENT);
        d1[16].activation = g_acts[16 % NUM_ACTS];
        w1[e - 1].recurrent_kernel = NULL;
        CHECK_STATUS(crnn_rnn_create(&a, dt, D, NL, d1, w1), CRNN_ERR_NULL_POINTER);
        CHECK(a == NULL);
        for (i = 0; i < na; ++i) free(arrays[i]);
        free(xd);
        free(x);
        free(ya);
        free(yb);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* crnn_dense_forward */

static void test_dense(void)
{
    /* (rows, D, N): scalar; the plain loop (N <= 8, D <= 16); GEMM; one row; prime sizes */
    static const int64_t shapes[][3] = {{1, 1, 1}, {5, 3, 4}, {7, 20, 9}, {1, 33, 17}, {13, 17, 5}};
    int dti, si, a, bias;
    double worst = 0.0;
    for (dti = 0; dti < 2; ++dti) {
        const crnn_dtype dt = dti ? CRNN_DTYPE_FLOAT64 : CRNN_DTYPE_FLOAT32;
        const size_t es = elem_size(dt);
        for (si = 0; si < (int)(sizeof(shapes) / sizeof(shapes[0])); ++si) {
            const int64_t R = shapes[si][0], D = shapes[si][1], N = shapes[si][2];
            for (a = 0; a < NUM_ACTS; ++a)
                for (bias = 0; bias < 2; ++bias) {
                    /* x4 for the bounded activations: they saturate (hard_sigmoid past +-3) */
                    const double s = (bounded(g_acts[a]) ? 4.0 : 1.0) * 2.0 / sqrt((double)D);
                    double *x = draw((size_t)(R * D), 1.0, dt), *k = draw((size_t)(D * N), s, dt);
                    double *b = bias ? draw((size_t)N, s, dt) : NULL;
                    double *ref = (double *)xmalloc((size_t)(R * N) * sizeof(double));
                    void *xc = to_dtype(x, (size_t)(R * D), dt), *kc = to_dtype(k, (size_t)(D * N), dt);
                    void *bc = to_dtype(b, (size_t)N, dt), *y = garbage((size_t)(R * N) * es);
                    int64_t r, i, j;
                    double tol, err;
                    for (r = 0; r < R; ++r)
                        for (j = 0; j < N; ++j) {
                            double z = b ? b[j] : 0.0;
                            for (i = 0; i < D; ++i) z += x[r * D + i] * k[i * N + j];
                            ref[r * N + j] = ref_act(g_acts[a], z);
                        }
                    CHECK_STATUS(crnn_dense_forward(dt, R, D, N, xc, kc, bc, g_acts[a], y), CRNN_OK);
                    /* one dot product of length D, one activation */
                    tol = derived_tol(dt, D, 1, max_abs(ref, (size_t)(R * N)));
                    err = max_abs_diff(y, ref, (size_t)(R * N), dt);
                    if (err / tol > worst) worst = err / tol;
                    CHECK(err <= tol);
                    if (err > tol)
                        fprintf(stderr, "    dense %s R=%ld D=%ld N=%ld act=%d bias=%d: %.3g > %.3g\n",
                                dtype_name(dt), (long)R, (long)D, (long)N, (int)g_acts[a], bias,
                                err, tol);
                    /* rows = 0: a no-op, x and y may be NULL */
                    memset(y, 0xAB, (size_t)(R * N) * es);
                    CHECK_STATUS(crnn_dense_forward(dt, 0, D, N, xc, kc, bc, g_acts[a], y), CRNN_OK);
                    CHECK_STATUS(crnn_dense_forward(dt, 0, D, N, NULL, kc, NULL, g_acts[a], NULL),
                                 CRNN_OK);
                    CHECK(untouched(y, (size_t)(R * N) * es));
                    free(x);
                    free(k);
                    free(b);
                    free(ref);
                    free(xc);
                    free(kc);
                    free(bc);
                    free(y);
                }
        }
    }
    printf("dense: worst error / tolerance %.3f\n", worst);
    {
        float x[6] = {1, 2, 3, 4, 5, 6}, k[6] = {1, 0, 0, 1, 1, 1}, y[4];
        const crnn_dtype f32 = CRNN_DTYPE_FLOAT32;
        CHECK_STATUS(crnn_dense_forward((crnn_dtype)2, 2, 3, 2, x, k, NULL, CRNN_ACTIVATION_TANH, y),
                     CRNN_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(crnn_dense_forward((crnn_dtype)-1, 2, 3, 2, x, k, NULL, CRNN_ACTIVATION_TANH, y),
                     CRNN_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(crnn_dense_forward(f32, -1, 3, 2, x, k, NULL, CRNN_ACTIVATION_TANH, y),
                     CRNN_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(crnn_dense_forward(f32, 2, 0, 2, x, k, NULL, CRNN_ACTIVATION_TANH, y),
                     CRNN_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(crnn_dense_forward(f32, 2, 3, 0, x, k, NULL, CRNN_ACTIVATION_TANH, y),
                     CRNN_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(crnn_dense_forward(f32, 2, -3, 2, x, k, NULL, CRNN_ACTIVATION_TANH, y),
                     CRNN_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(crnn_dense_forward(f32, 2, 3, 2, x, k, NULL, (crnn_activation)5, y),
                     CRNN_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(crnn_dense_forward(f32, 2, 3, 2, x, k, NULL, (crnn_activation)-1, y),
                     CRNN_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(crnn_dense_forward(f32, 2, 3, 2, NULL, k, NULL, CRNN_ACTIVATION_TANH, y),
                     CRNN_ERR_NULL_POINTER);
        CHECK_STATUS(crnn_dense_forward(f32, 2, 3, 2, x, NULL, NULL, CRNN_ACTIVATION_TANH, y),
                     CRNN_ERR_NULL_POINTER);
        CHECK_STATUS(crnn_dense_forward(f32, 2, 3, 2, x, k, NULL, CRNN_ACTIVATION_TANH, NULL),
                     CRNN_ERR_NULL_POINTER);
        CHECK_STATUS(crnn_dense_forward(f32, 2, (int64_t)INT_MAX + 1, 2, x, k, NULL,
                                        CRNN_ACTIVATION_TANH, y),
                     CRNN_ERR_TOO_LARGE);
        CHECK_STATUS(crnn_dense_forward(f32, 2, 3, (int64_t)INT_MAX + 1, x, k, NULL,
                                        CRNN_ACTIVATION_TANH, y),
                     CRNN_ERR_TOO_LARGE);
        /* exact small case: linear, x (2, 3) @ k (3, 2) */
        CHECK_STATUS(crnn_dense_forward(f32, 2, 3, 2, x, k, NULL, CRNN_ACTIVATION_LINEAR, y), CRNN_OK);
        CHECK(y[0] == 4.0f && y[1] == 5.0f && y[2] == 10.0f && y[3] == 11.0f);
        CHECK(x[0] == 1.0f && x[5] == 6.0f && k[0] == 1.0f && k[5] == 1.0f); /* inputs intact */
    }
}

/* ------------------------------------------------------------------------------------------ */
/* crnn_set_num_threads(): one call split over crnn's own threads */

/* One configuration: checked against the reference at every thread setting, with and without
 * lengths, with h0 and c0; repeated calls give the same bits. CRNN_TEST_QUICK (valgrind, which
 * runs one thread at a time and makes every barrier wait a time slice): float32, 3 threads, with
 * lengths in every other configuration; each way of splitting a call still runs. */
static void run_split(const char *name, int64_t B, int64_t T, int64_t D, int num_layers,
                      const crnn_layer_desc2 *layers)
{
    static const int settings[] = {1, 2, 3};
    static int configs = 0;
    const int quick_len = configs++ % 2;
    int dti, si, len;
    for (dti = 0; dti < (g_quick ? 1 : 2); ++dti) {
        const crnn_dtype dt = dti ? CRNN_DTYPE_FLOAT64 : CRNN_DTYPE_FLOAT32;
        model_t m;
        crnn_rnn_t *rnn = NULL;
        model_init(&m, dt, D, num_layers, layers, 3);
        CHECK_STATUS(crnn_rnn_create2(&rnn, dt, D, num_layers, layers, m.w), CRNN_OK);
        for (len = 0; len < 2 && rnn; ++len) {
            io_t io;
            out_t o1, o2;
            if (g_quick && len != quick_len) continue;
            io_init(&io, &m, B, T, len, 1, 1);
            out_init(&o1, &m, &io, 1, 1, 1);
            out_init(&o2, &m, &io, 1, 1, 1);
            for (si = 0; si < (int)(sizeof(settings) / sizeof(settings[0])); ++si) {
                char what[160];
                if (g_quick && settings[si] != 3) continue;
                snprintf(what, sizeof(what), "%s (%s, B=%ld T=%ld), %d threads, lengths=%d",
                         name, dtype_name(dt), (long)B, (long)T, settings[si], len);
                CHECK_STATUS(crnn_set_num_threads(settings[si]), CRNN_OK);
                CHECK_STATUS(forward2(rnn, &m, &io, &o1, NULL, 0), CRNN_OK);
                check_against_ref(&o1, &m, &io, what);
                CHECK_STATUS(forward2(rnn, &m, &io, &o2, NULL, 0), CRNN_OK);
                check_impl(out_same(&o1, &o2, &m, &io), __FILE__, __LINE__, what);
            }
            out_free(&o1, &m);
            out_free(&o2, &m);
            io_free(&io, &m);
        }
        crnn_set_num_threads(1);
        crnn_rnn_free(rnn);
        model_free(&m);
    }
}

/* Shapes for each way of splitting a call, each of several Mflop (crnn splits calls of >= 2
 * Mflop). Layer kinds: 0 LSTM, 1 GRU reset after, 2 SimpleRNN, 3 GRU reset before. */
typedef struct {
    const char *name;
    int64_t B, T, D;
    int num_layers;
    struct {
        int kind;
        int64_t units;
        crnn_activation act, ract;
        crnn_direction dir;
    } layers[MAX_LAYERS];
} split_config;

#define TANH CRNN_ACTIVATION_TANH
#define SIGM CRNN_ACTIVATION_SIGMOID
#define HSIG CRNN_ACTIVATION_HARD_SIGMOID
#define FWD CRNN_DIRECTION_FORWARD
#define REV CRNN_DIRECTION_REVERSE
#define BI CRNN_DIRECTION_BIDIRECTIONAL
static const split_config g_split_configs[] = {
    /* B = 13 >= 8: the batch splits into uneven row ranges */
    {"batch split LSTM > GRU > SimpleRNN", 13, 20, 24, 3,
     {{0, 48, TANH, SIGM, BI}, {1, 40, TANH, HSIG, REV}, {2, 24, SIGM, SIGM, FWD}}},
    /* B < 8, every layer >= 128 units: each layer's units split (uneven slices of 200 and 136),
     * the reset-before GRU's two phases meeting in between */
    {"units split LSTM > GRU(reset_after=0)", 2, 10, 16, 2,
     {{0, 200, TANH, SIGM, FWD}, {3, 136, TANH, SIGM, REV}}},
    {"units split GRU(reset_after=0), B=1 panels", 1, 12, 24, 1, {{3, 160, TANH, HSIG, REV}}},
    {"units split GRU(reset_after=1) > SimpleRNN", 3, 10, 20, 2,
     {{1, 144, TANH, SIGM, FWD}, {2, 128, TANH, TANH, REV}}},
    /* every layer bidirectional: one direction per thread */
    {"one direction per thread LSTM > GRU > GRU", 1, 24, 16, 3,
     {{0, 96, TANH, SIGM, BI}, {3, 80, TANH, SIGM, BI}, {1, 40, TANH, HSIG, BI}}},
    /* B < 8, T >= 16, a layer < 128 units: the projection pipelined (T = 41: five chunks of 8
     * and one of 1) */
    {"pipeline LSTM > GRU", 1, 41, 200, 2, {{0, 64, TANH, SIGM, FWD}, {1, 48, TANH, SIGM, BI}}},
    {"pipeline GRU(reset_after=0) > SimpleRNN", 3, 20, 120, 2,
     {{3, 70, TANH, SIGM, REV}, {2, 30, TANH, TANH, FWD}}},
};
#undef TANH
#undef SIGM
#undef HSIG
#undef FWD
#undef REV
#undef BI

static void test_split_threads(void)
{
    size_t i;
    int l;
    for (i = 0; i < sizeof(g_split_configs) / sizeof(g_split_configs[0]); ++i) {
        const split_config *c = &g_split_configs[i];
        crnn_layer_desc2 layers[MAX_LAYERS];
        for (l = 0; l < c->num_layers; ++l)
            set_layer(&layers[l], c->layers[l].kind, c->layers[l].units, c->layers[l].act,
                      c->layers[l].ract, c->layers[l].dir);
        run_split(c->name, c->B, c->T, c->D, c->num_layers, layers);
    }
    crnn_set_num_threads(1);
}

/* The units split at a layer boundary: each thread copies its slice of the layer's final h (and
 * c) out of the workspace, then starts the next layer, whose initial states go to the same
 * workspace buffers, sliced and strided for the next layer's width. The threads must not overlap
 * there. A missing synchronisation shows in the results only when the threads drift apart:
 * measured on 2 busy CPUs, 1 call in 150 to 300 of this shape went wrong, so 2500 calls (under
 * a second) see it several times. ThreadSanitizer reports it on any call, and the other checkers
 * look for memory errors, so under them (and CRNN_TEST_QUICK) a few calls do. T = 2 (even: the
 * lengths path ends in the state buffer the next layer starts from) keeps each call short; 320
 * units split 64 / 256, so one thread still copies while the other starts the next layer. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define HANDOVER_CALLS 10
#else
#define HANDOVER_CALLS 2500
#endif
static void test_split_units_layer_handover(void)
{
    const int calls = g_quick ? 2 : HANDOVER_CALLS;
    crnn_layer_desc2 l[2];
    model_t m;
    io_t io;
    out_t o;
    crnn_rnn_t *rnn = NULL;
    int i, wrong = 0;
    char what[200];
    set_layer(&l[0], 0, 320, CRNN_ACTIVATION_TANH, CRNN_ACTIVATION_SIGMOID, CRNN_DIRECTION_FORWARD);
    set_layer(&l[1], 0, 130, CRNN_ACTIVATION_TANH, CRNN_ACTIVATION_SIGMOID, CRNN_DIRECTION_FORWARD);
    model_init(&m, CRNN_DTYPE_FLOAT32, 8, 2, l, 1);
    io_init(&io, &m, 2, 2, 1, 1, 1);
    out_init(&o, &m, &io, 0, 1, 1);
    CHECK_STATUS(crnn_rnn_create2(&rnn, CRNN_DTYPE_FLOAT32, 8, 2, l, m.w), CRNN_OK);
    CHECK_STATUS(crnn_set_num_threads(2), CRNN_OK);
    for (i = 0; i < calls && rnn; ++i) {
        int ignored_ok;
        const double tol = derived_tol(CRNN_DTYPE_FLOAT32, model_max_k(&m), io.T * m.num_layers,
                                       io.scale);
        if (forward2(rnn, &m, &io, &o, NULL, 0) != CRNN_OK || out_error(&o, &m, &io, &ignored_ok) > tol) {
            if (wrong < 3) {
                int e;
                fprintf(stderr, "    call %d:", i);
                for (e = 0; e < m.num_entries; ++e) {
                    const size_t n = (size_t)(io.B * m.entry_units[e]);
                    fprintf(stderr, " h_n[%d] err %.3g, c_n[%d] err %.3g;", e,
                            max_abs_diff(o.hn[e], io.hn_ref[e], n, m.dtype), e,
                            max_abs_diff(o.cn[e], io.cn_ref[e], n, m.dtype));
                }
                fprintf(stderr, "\n");
            }
            ++wrong;
        }
    }
    snprintf(what, sizeof(what), "units split over 2 threads, LSTM 320 > LSTM 130 (B=2, T=2, "
             "lengths, h0, c0): h_n and c_n right in each of %d calls", calls);
    check_impl(wrong == 0, __FILE__, __LINE__, what);
    if (wrong) fprintf(stderr, "    %d of %d calls wrong\n", wrong, calls);
    crnn_set_num_threads(1);
    crnn_rnn_free(rnn);
    out_free(&o, &m);
    io_free(&io, &m);
    model_free(&m);
}

/* ------------------------------------------------------------------------------------------ */
/* Concurrent forward2 calls on one gated handle */

#define N_THREADS 4
#define N_ITERS 6
static int g_iters = N_ITERS; /* CRNN_TEST_QUICK: 1 (see main) */

typedef struct {
    const crnn_rnn_t *rnn;
    const model_t *m;
    const io_t *io;
    const out_t *expected;
    int own_workspace;
    int mismatches, errors;
} thread_job;

static void *thread_main(void *arg)
{
    thread_job *job = (thread_job *)arg;
    out_t o;
    void *ws = NULL;
    size_t ws_size = 0;
    int it;
    out_init(&o, job->m, job->io, 1, 1, 1);
    if (job->own_workspace) {
        if (crnn_rnn_workspace_size(job->rnn, job->io->B, job->io->T, &ws_size) != CRNN_OK)
            ++job->errors;
        ws = xmalloc(ws_size);
    }
    for (it = 0; it < g_iters; ++it) {
        if (forward2(job->rnn, job->m, job->io, &o, ws, ws_size) != CRNN_OK) {
            ++job->errors;
            continue;
        }
        if (!out_same(job->expected, &o, job->m, job->io)) ++job->mismatches;
    }
    out_free(&o, job->m);
    free(ws);
    return NULL;
}

static void run_concurrent(crnn_dtype dt, int64_t B, int64_t T, int64_t D, int num_layers,
                           const crnn_layer_desc2 *layers, int crnn_threads)
{
    model_t m;
    io_t io;
    out_t seq;
    crnn_rnn_t *rnn = NULL;
    thread_job jobs[N_THREADS];
    pthread_t tids[N_THREADS];
    int started[N_THREADS], k, mismatches = 0, errors = 0;
    char what[200];

    model_init(&m, dt, D, num_layers, layers, 1);
    io_init(&io, &m, B, T, 1, 1, 2);
    out_init(&seq, &m, &io, 1, 1, 1);
    CHECK_STATUS(crnn_set_num_threads(crnn_threads), CRNN_OK);
    CHECK_STATUS(crnn_rnn_create2(&rnn, dt, D, num_layers, layers, m.w), CRNN_OK);
    if (!rnn) goto done;
    /* the sequential call, itself checked against the reference */
    CHECK_STATUS(forward2(rnn, &m, &io, &seq, NULL, 0), CRNN_OK);
    check_against_ref(&seq, &m, &io, "sequential call before the concurrent ones");
    for (k = 0; k < N_THREADS; ++k) {
        thread_job *j = &jobs[k];
        memset(j, 0, sizeof(*j));
        j->rnn = rnn;
        j->m = &m;
        j->io = &io;
        j->expected = &seq;
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
             "%d threads x %d forward2 calls (%s, B=%ld T=%ld, crnn threads %d) bitwise equal "
             "to the sequential call",
             N_THREADS, g_iters, dtype_name(dt), (long)B, (long)T, crnn_threads);
    check_impl(errors == 0 && mismatches == 0, __FILE__, __LINE__, what);
    if (errors || mismatches) fprintf(stderr, "    %d errors, %d mismatches\n", errors, mismatches);
done:
    crnn_set_num_threads(1);
    crnn_rnn_free(rnn);
    out_free(&seq, &m);
    io_free(&io, &m);
    model_free(&m);
}

static void test_concurrent(void)
{
    crnn_layer_desc2 l[3];
    int dti;
    for (dti = 0; dti < (g_quick ? 1 : 2); ++dti) { /* CRNN_TEST_QUICK: float32 only */
        const crnn_dtype dt = dti ? CRNN_DTYPE_FLOAT64 : CRNN_DTYPE_FLOAT32;
        /* small: plain loops; one caller thread each */
        set_layer(&l[0], 0, 5, CRNN_ACTIVATION_TANH, CRNN_ACTIVATION_SIGMOID,
                  CRNN_DIRECTION_BIDIRECTIONAL);
        set_layer(&l[1], 3, 7, CRNN_ACTIVATION_TANH, CRNN_ACTIVATION_HARD_SIGMOID,
                  CRNN_DIRECTION_FORWARD);
        set_layer(&l[2], 1, 3, CRNN_ACTIVATION_RELU, CRNN_ACTIVATION_SIGMOID,
                  CRNN_DIRECTION_REVERSE);
        run_concurrent(dt, 6, 5, 3, 3, l, 1);
        /* each caller splits its batch over 2 threads (or runs alone when the pool is busy) */
        set_layer(&l[0], 0, 40, CRNN_ACTIVATION_TANH, CRNN_ACTIVATION_SIGMOID,
                  CRNN_DIRECTION_FORWARD);
        set_layer(&l[1], 1, 24, CRNN_ACTIVATION_TANH, CRNN_ACTIVATION_SIGMOID,
                  CRNN_DIRECTION_BIDIRECTIONAL);
        run_concurrent(dt, 12, 16, 16, 2, l, 2);
        /* ... or its units (B = 1, 128 units: the batch-1 panels) */
        set_layer(&l[0], 3, 128, CRNN_ACTIVATION_TANH, CRNN_ACTIVATION_SIGMOID,
                  CRNN_DIRECTION_FORWARD);
        run_concurrent(dt, 1, 24, 16, 1, l, 2);
    }
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* FAIL lines (stderr) in order with the rest */
    printf("crnn %u.%u.%u (library %u): cells\n", (unsigned)CRNN_VERSION_MAJOR,
           (unsigned)CRNN_VERSION_MINOR, (unsigned)CRNN_VERSION_PATCH, crnn_version());
    /* As the Python package does: one BLAS thread per call. */
    crnn_set_blas_threads(1);
    {
        const char *quick = getenv("CRNN_TEST_QUICK");
        g_quick = quick != NULL && quick[0] != '\0' && strcmp(quick, "0") != 0;
        if (g_quick) g_iters = 1;
    }
    /* the cell API exists since 0.2 */
    CHECK(crnn_version() == CRNN_VERSION_NUMBER);
    CHECK(CRNN_VERSION_MAJOR > 0 || CRNN_VERSION_MINOR >= 2);
    test_create2_errors();
    test_forward2_errors(CRNN_DTYPE_FLOAT32);
    test_forward2_errors(CRNN_DTYPE_FLOAT64);
    test_info2();
    test_v01_deep_stack();
    test_dense();
    test_against_reference();
    test_split_threads();
    test_split_units_layer_handover();
    test_concurrent();
    printf("worst error / tolerance of every reference check: f32 %.3f, f64 %.3f\n",
           g_worst_ratio[0], g_worst_ratio[1]);
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
