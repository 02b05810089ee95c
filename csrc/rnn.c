/* rnn.c - the handle (create / free / info), workspace layout, argument checks and dtype dispatch
 * of the public API. The numeric work is in rnn_template.h. */
#ifndef _WIN32
#  define _POSIX_C_SOURCE 200809L
#  include <pthread.h>
#  include <unistd.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "internal.h"

unsigned crnn_version(void) { return CRNN_VERSION_NUMBER; }

const char *crnn_status_string(int status)
{
    switch (status) {
    case CRNN_OK: return "ok";
    case CRNN_ERR_NULL_POINTER: return "a required pointer argument is NULL";
    case CRNN_ERR_INVALID_ARGUMENT: return "invalid argument (enum value, size or count out of range)";
    case CRNN_ERR_OUT_OF_MEMORY: return "out of memory";
    case CRNN_ERR_TOO_LARGE: return "sizes too large (overflow size_t or the BLAS's 32-bit integers)";
    case CRNN_ERR_WORKSPACE_TOO_SMALL: return "workspace smaller than crnn_rnn_workspace_size()";
    case CRNN_ERR_NOT_IMPLEMENTED: return "not implemented";
    default: return "unknown status";
    }
}

/* a * b into *out, or CRNN_ERR_TOO_LARGE if it overflows size_t (a, b >= 0). */
static int crnn__mul(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return CRNN_ERR_TOO_LARGE;
    *out = a * b;
    return CRNN_OK;
}

static int crnn__add(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a) return CRNN_ERR_TOO_LARGE;
    *out = a + b;
    return CRNN_OK;
}

/* Reserve `count` elements of `elem` bytes at a 64-byte aligned offset of a growing layout. */
static int crnn__reserve(size_t *cursor, size_t count, size_t elem, size_t *offset)
{
    size_t bytes, end;
    size_t aligned = (*cursor + (CRNN__ALIGN - 1)) / CRNN__ALIGN * CRNN__ALIGN;
    if (aligned < *cursor) return CRNN_ERR_TOO_LARGE;
    CRNN_CHECK(crnn__mul(count, elem, &bytes));
    CRNN_CHECK(crnn__add(aligned, bytes, &end));
    *offset = aligned;
    *cursor = end;
    return CRNN_OK;
}

static int crnn__ndir(crnn_direction d) { return d == CRNN_DIRECTION_BIDIRECTIONAL ? 2 : 1; }

static int crnn__valid_activation(crnn_activation a)
{
    return a == CRNN_ACTIVATION_TANH || a == CRNN_ACTIVATION_RELU ||
           a == CRNN_ACTIVATION_SIGMOID || a == CRNN_ACTIVATION_LINEAR;
}

static int crnn__valid_direction(crnn_direction d)
{
    return d == CRNN_DIRECTION_FORWARD || d == CRNN_DIRECTION_REVERSE ||
           d == CRNN_DIRECTION_BIDIRECTIONAL;
}

void crnn_rnn_free(crnn_rnn_t *rnn)
{
    if (!rnn) return;
    free(rnn->blob_raw);
    free(rnn->layers);
    free(rnn);
}

int crnn_rnn_create(crnn_rnn_t **out, crnn_dtype dtype, int64_t input_size, int64_t num_layers,
                    const crnn_layer_desc *layers, const crnn_weights *weights)
{
    crnn_rnn_t *rnn;
    size_t cursor = 0;
    int64_t l, e;
    int status = CRNN_OK;

    if (!out) return CRNN_ERR_NULL_POINTER;
    *out = NULL;
    if (!layers || !weights) return CRNN_ERR_NULL_POINTER;
    if (dtype != CRNN_DTYPE_FLOAT32 && dtype != CRNN_DTYPE_FLOAT64) return CRNN_ERR_INVALID_ARGUMENT;
    if (input_size < 1 || num_layers < 1) return CRNN_ERR_INVALID_ARGUMENT;
    if (input_size > CRNN__BLAS_INT_MAX || (uint64_t)num_layers > SIZE_MAX / sizeof(crnn__layer))
        return CRNN_ERR_TOO_LARGE;

    rnn = (crnn_rnn_t *)calloc(1, sizeof(*rnn));
    if (!rnn) return CRNN_ERR_OUT_OF_MEMORY;
    rnn->layers = (crnn__layer *)calloc((size_t)num_layers, sizeof(crnn__layer));
    if (!rnn->layers) {
        free(rnn);
        return CRNN_ERR_OUT_OF_MEMORY;
    }
    rnn->dtype = dtype;
    rnn->elem_size = dtype == CRNN_DTYPE_FLOAT32 ? sizeof(float) : sizeof(double);
    rnn->input_size = input_size;
    rnn->num_layers = num_layers;

    /* Pass 1: check the descriptors and lay the weights out in one blob. */
    for (l = 0, e = 0; l < num_layers && status == CRNN_OK; ++l) {
        crnn__layer *L = &rnn->layers[l];
        const crnn_layer_desc *desc = &layers[l];
        size_t hh, dh;
        int d;
        if (desc->units < 1 || !crnn__valid_activation(desc->activation) ||
            !crnn__valid_direction(desc->direction)) {
            status = CRNN_ERR_INVALID_ARGUMENT;
            break;
        }
        L->units = desc->units;
        L->in_size = l == 0 ? input_size : rnn->layers[l - 1].units * rnn->layers[l - 1].ndir;
        L->activation = desc->activation;
        L->direction = desc->direction;
        L->ndir = crnn__ndir(desc->direction);
        /* units * 2 is a BLAS leading dimension / size at most: keep it inside an int. */
        if (L->units > CRNN__BLAS_INT_MAX / 2) {
            status = CRNN_ERR_TOO_LARGE;
            break;
        }
        if ((status = crnn__mul((size_t)L->units, (size_t)L->units, &hh)) != CRNN_OK) break;
        if ((status = crnn__mul((size_t)L->in_size, (size_t)L->units, &dh)) != CRNN_OK) break;
        if (L->units * L->ndir > rnn->max_width) rnn->max_width = L->units * L->ndir;
        if (L->units > rnn->max_units) rnn->max_units = L->units;
        for (d = 0; d < L->ndir && status == CRNN_OK; ++d, ++e) {
            const crnn_weights *w = &weights[e];
            size_t off;
            if (!w->kernel || !w->recurrent_kernel) {
                status = CRNN_ERR_NULL_POINTER;
                break;
            }
            L->has_bias[d] = w->bias != NULL;
            if ((status = crnn__reserve(&cursor, dh, rnn->elem_size, &off)) != CRNN_OK) break;
            L->off_kernel[d] = off / rnn->elem_size;
            if ((status = crnn__reserve(&cursor, hh, rnn->elem_size, &off)) != CRNN_OK) break;
            L->off_recurrent[d] = off / rnn->elem_size;
            if ((status = crnn__reserve(&cursor, (size_t)L->units, rnn->elem_size, &off)) != CRNN_OK)
                break;
            L->off_bias[d] = off / rnn->elem_size;
        }
    }
    rnn->num_entries = e;
    if (status == CRNN_OK) {
        if (cursor > SIZE_MAX - CRNN__ALIGN) status = CRNN_ERR_TOO_LARGE;
        else if (!(rnn->blob_raw = malloc(cursor + CRNN__ALIGN))) status = CRNN_ERR_OUT_OF_MEMORY;
    }
    if (status != CRNN_OK) {
        crnn_rnn_free(rnn);
        return status;
    }
    rnn->blob = (void *)(((uintptr_t)rnn->blob_raw + (CRNN__ALIGN - 1)) &
                         ~(uintptr_t)(CRNN__ALIGN - 1));

    /* Pass 2: copy. */
    for (l = 0, e = 0; l < num_layers; ++l) {
        const crnn__layer *L = &rnn->layers[l];
        const size_t es = rnn->elem_size;
        int d;
        for (d = 0; d < L->ndir; ++d, ++e) {
            char *blob = (char *)rnn->blob;
            const size_t h = (size_t)L->units;
            memcpy(blob + L->off_kernel[d] * es, weights[e].kernel, (size_t)L->in_size * h * es);
            memcpy(blob + L->off_recurrent[d] * es, weights[e].recurrent_kernel, h * h * es);
            if (L->has_bias[d]) memcpy(blob + L->off_bias[d] * es, weights[e].bias, h * es);
        }
    }
    *out = rnn;
    return CRNN_OK;
}

int crnn_rnn_info(const crnn_rnn_t *rnn, crnn_dtype *dtype, int64_t *input_size,
                  int64_t *num_layers, crnn_layer_desc *layers_out, int64_t layers_capacity)
{
    int64_t l;
    if (!rnn) return CRNN_ERR_NULL_POINTER;
    if (dtype) *dtype = rnn->dtype;
    if (input_size) *input_size = rnn->input_size;
    if (num_layers) *num_layers = rnn->num_layers;
    if (layers_out) {
        for (l = 0; l < rnn->num_layers && l < layers_capacity; ++l) {
            layers_out[l].units = rnn->layers[l].units;
            layers_out[l].activation = rnn->layers[l].activation;
            layers_out[l].direction = rnn->layers[l].direction;
        }
    }
    return CRNN_OK;
}

int crnn__ws_offsets(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps,
                     crnn__ws_layout *lay)
{
    size_t cursor = 0, rows, frame, state;
    int64_t l;
    int nframes = rnn->num_layers > 1 ? 2 : 1, i;
    if (batch < 0 || timesteps < 1) return CRNN_ERR_INVALID_ARGUMENT;
    /* Every per-step BLAS call uses a leading dimension of T * W and M = B: keep them in an int. */
    if (batch > CRNN__BLAS_INT_MAX) return CRNN_ERR_TOO_LARGE;
    for (l = 0; l < rnn->num_layers; ++l)
        if (timesteps > CRNN__BLAS_INT_MAX / (rnn->layers[l].units * rnn->layers[l].ndir))
            return CRNN_ERR_TOO_LARGE;
    CRNN_CHECK(crnn__mul((size_t)batch, (size_t)timesteps, &rows));
    CRNN_CHECK(crnn__mul(rows, (size_t)rnn->max_width, &frame));
    CRNN_CHECK(crnn__mul((size_t)batch, (size_t)rnn->max_units, &state));
    memset(lay, 0, sizeof(*lay));
    for (i = 0; i < nframes; ++i) CRNN_CHECK(crnn__reserve(&cursor, frame, rnn->elem_size, &lay->frames[i]));
    CRNN_CHECK(crnn__reserve(&cursor, state, rnn->elem_size, &lay->state));
    lay->total = cursor;
    return CRNN_OK;
}

int crnn_rnn_workspace_size(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps, size_t *size)
{
    crnn__ws_layout lay;
    if (!rnn || !size) return CRNN_ERR_NULL_POINTER;
    CRNN_CHECK(crnn__ws_offsets(rnn, batch, timesteps, &lay));
    *size = lay.total;
    return CRNN_OK;
}

/* Threads a forward call may use; read once per call. */
static int crnn__threads = 1;

int crnn__num_threads(void)
{
#if defined(__GNUC__)
    return __atomic_load_n(&crnn__threads, __ATOMIC_RELAXED);
#else
    return crnn__threads;
#endif
}

int crnn_set_num_threads(int n)
{
    if (n < 1) return CRNN_ERR_INVALID_ARGUMENT;
#if defined(__GNUC__)
    __atomic_store_n(&crnn__threads, n, __ATOMIC_RELAXED);
#else
    crnn__threads = n;
#endif
    return CRNN_OK;
}

int crnn_get_num_threads(void) { return crnn__num_threads(); }

/* One batch range of a forward call. */
typedef struct {
    const crnn_rnn_t *rnn;
    int64_t b0, nb, batch, timesteps;
    const void *x;
    const int64_t *lengths;
    const void *const *h0;
    void *y;
    void *const *h_n;
    char *ws;
    const crnn__ws_layout *lay;
    int status;
} crnn__job;

static void *crnn__run_job(void *arg)
{
    crnn__job *j = (crnn__job *)arg;
    if (j->rnn->dtype == CRNN_DTYPE_FLOAT32)
        j->status = crnn__forward_f32(j->rnn, j->b0, j->nb, j->batch, j->timesteps, j->x,
                                      j->lengths, j->h0, j->y, j->h_n, j->ws, j->lay);
    else
        j->status = crnn__forward_f64(j->rnn, j->b0, j->nb, j->batch, j->timesteps, j->x,
                                      j->lengths, j->h0, j->y, j->h_n, j->ws, j->lay);
    return NULL;
}

#define CRNN__MAX_THREADS 64
/* Below this many flops a call runs on the caller's thread alone: starting a thread costs
 * tens of microseconds. */
#define CRNN__PARALLEL_MIN_FLOPS 4.0e6
/* Fewest batch rows per thread: smaller GEMMs lose more efficiency than the split gains. */
#define CRNN__MIN_ROWS_PER_THREAD 4

/* How many threads to split this call's batch over (deterministic for a given shape and
 * setting, so results are bitwise reproducible for a fixed thread count). */
static int crnn__plan_threads(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps)
{
    double flops = 0;
    int64_t l, n = crnn__num_threads(), by_rows;
    for (l = 0; l < rnn->num_layers; ++l) {
        const crnn__layer *L = &rnn->layers[l];
        flops += 2.0 * (double)batch * (double)timesteps * (double)L->ndir * (double)L->units *
                 (double)(L->in_size + L->units);
    }
    if (n <= 1 || flops < CRNN__PARALLEL_MIN_FLOPS) return 1;
    by_rows = batch / CRNN__MIN_ROWS_PER_THREAD;
    if (n > by_rows) n = by_rows;
    if (n > CRNN__MAX_THREADS) n = CRNN__MAX_THREADS;
    return n < 1 ? 1 : (int)n;
}

int crnn_rnn_forward(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps, const void *x,
                     const int64_t *lengths, const void *const *h0, void *y, void *const *h_n,
                     void *workspace, size_t workspace_size)
{
    crnn__ws_layout lay;
    crnn__job jobs[CRNN__MAX_THREADS];
    char *ws, *raw = NULL;
    int64_t b;
    int status = CRNN_OK, nthreads, i;

    if (!rnn) return CRNN_ERR_NULL_POINTER;
    CRNN_CHECK(crnn__ws_offsets(rnn, batch, timesteps, &lay));
    if (batch == 0) return CRNN_OK;
    if (!x) return CRNN_ERR_NULL_POINTER;
    if (lengths) {
        for (b = 0; b < batch; ++b)
            if (lengths[b] < 0 || lengths[b] > timesteps) return CRNN_ERR_INVALID_ARGUMENT;
    }
    if (workspace) {
        if (workspace_size < lay.total) return CRNN_ERR_WORKSPACE_TOO_SMALL;
        ws = (char *)workspace;
    } else {
        if (lay.total > SIZE_MAX - CRNN__ALIGN) return CRNN_ERR_TOO_LARGE;
        raw = (char *)malloc(lay.total + CRNN__ALIGN);
        if (!raw) return CRNN_ERR_OUT_OF_MEMORY;
        ws = (char *)(((uintptr_t)raw + (CRNN__ALIGN - 1)) & ~(uintptr_t)(CRNN__ALIGN - 1));
    }

    nthreads = crnn__plan_threads(rnn, batch, timesteps);
    for (i = 0; i < nthreads; ++i) {
        crnn__job *j = &jobs[i];
        j->rnn = rnn;
        j->b0 = batch * i / nthreads;
        j->nb = batch * (i + 1) / nthreads - j->b0;
        j->batch = batch;
        j->timesteps = timesteps;
        j->x = x;
        j->lengths = lengths;
        j->h0 = h0;
        j->y = y;
        j->h_n = h_n;
        j->ws = ws;
        j->lay = &lay;
        j->status = CRNN_OK;
    }
#ifndef _WIN32
    {
        pthread_t tids[CRNN__MAX_THREADS];
        int started[CRNN__MAX_THREADS] = {0};
        for (i = 1; i < nthreads; ++i)
            started[i] = pthread_create(&tids[i], NULL, crnn__run_job, &jobs[i]) == 0;
        crnn__run_job(&jobs[0]);
        for (i = 1; i < nthreads; ++i) {
            if (started[i]) pthread_join(tids[i], NULL);
            else crnn__run_job(&jobs[i]); /* could not start a thread: run it here */
        }
    }
#else
    for (i = 0; i < nthreads; ++i) crnn__run_job(&jobs[i]);
#endif
    for (i = 0; i < nthreads; ++i)
        if (jobs[i].status != CRNN_OK) status = jobs[i].status;
    free(raw);
    return status;
}

int crnn_set_blas_threads(int n)
{
    if (n < 1) return CRNN_ERR_INVALID_ARGUMENT;
    crnn__blas_set_threads(n);
    return CRNN_OK;
}

int crnn_get_blas_threads(void) { return crnn__blas_get_threads(); }
