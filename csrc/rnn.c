/* rnn.c - the handle (create / free / info), workspace layout, argument checks and dtype dispatch
 * of the public API. The numeric work is in rnn_template.h. */
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

static int crnn__all_zero_bytes(const void *p, size_t n)
{
    const unsigned char *c = (const unsigned char *)p;
    size_t i;
    for (i = 0; i < n; ++i)
        if (c[i]) return 0;
    return 1;
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
            L->off_panels[d] = 0;
            /* No panels for an all-zero recurrent kernel either (a Dense layer run through the
             * core as one step): its product is never worth a second copy. */
            if (L->units > 8 && hh <= CRNN__PANELS_MAX_BYTES / rnn->elem_size &&
                !crnn__all_zero_bytes(w->recurrent_kernel, hh * rnn->elem_size)) {
                const size_t P = CRNN__PANEL_BYTES / rnn->elem_size;
                size_t padded;
                if ((status = crnn__mul(((size_t)L->units + P - 1) / P * P, (size_t)L->units,
                                        &padded)) != CRNN_OK ||
                    (status = crnn__reserve(&cursor, padded, rnn->elem_size, &off)) != CRNN_OK)
                    break;
                L->off_panels[d] = off / rnn->elem_size;
            }
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
            if (L->off_panels[d]) {
                /* panel p, row i, column j of the panel = R[i, p * P + j], zero past column h */
                const size_t P = CRNN__PANEL_BYTES / es;
                const char *R = (const char *)weights[e].recurrent_kernel;
                char *dst = blob + L->off_panels[d] * es;
                size_t p, i;
                for (p = 0; p * P < h; ++p) {
                    const size_t n = h - p * P < P ? h - p * P : P;
                    for (i = 0; i < h; ++i, dst += P * es) {
                        memcpy(dst, R + (i * h + p * P) * es, n * es);
                        memset(dst + n * es, 0, (P - n) * es);
                    }
                }
            }
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
    size_t cursor = 0, rows, frame, state, flags;
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
    CRNN_CHECK(crnn__mul(state, 2, &state));
    memset(lay, 0, sizeof(*lay));
    for (i = 0; i < nframes; ++i) CRNN_CHECK(crnn__reserve(&cursor, frame, rnn->elem_size, &lay->frames[i]));
    CRNN_CHECK(crnn__reserve(&cursor, state, rnn->elem_size, &lay->state));
    flags = (size_t)((timesteps + CRNN__PIPE_CHUNK - 1) / CRNN__PIPE_CHUNK);
    CRNN_CHECK(crnn__mul(flags, (size_t)rnn->num_entries, &lay->nflags));
    CRNN_CHECK(crnn__reserve(&cursor, lay->nflags, sizeof(int), &lay->flags));
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

#define CRNN__MAX_THREADS 64

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

/* Arguments of one forward call, shared by the threads that run it. */
typedef struct {
    const crnn_rnn_t *rnn;
    int64_t batch, timesteps;
    const void *x;
    const int64_t *lengths;
    const void *const *h0;
    void *y;
    void *const *h_n;
    char *ws;
    const crnn__ws_layout *lay;
    crnn__par par;          /* par.barrier NULL: split the batch; else every thread runs the
                               whole batch (units split or pipeline), tid set per thread */
} crnn__call;

int crnn__all_bidirectional(const crnn_rnn_t *rnn)
{
    int64_t l;
    for (l = 0; l < rnn->num_layers; ++l)
        if (rnn->layers[l].ndir != 2) return 0;
    return 1;
}

static int crnn__run(const crnn__call *c, int64_t b0, int64_t nb, const crnn__par *par)
{
    if (c->rnn->dtype == CRNN_DTYPE_FLOAT32)
        return crnn__forward_f32(c->rnn, b0, nb, c->batch, c->timesteps, c->x, c->lengths, c->h0,
                                 c->y, c->h_n, c->ws, c->lay, par);
    return crnn__forward_f64(c->rnn, b0, nb, c->batch, c->timesteps, c->x, c->lengths, c->h0,
                             c->y, c->h_n, c->ws, c->lay, par);
}

static void crnn__task(void *ctx, int tid, int n)
{
    const crnn__call *c = (const crnn__call *)ctx;
    crnn__par par = c->par;
    if (par.barrier) {
        par.tid = tid;
        crnn__run(c, 0, c->batch, &par);
    } else {
        const int64_t b0 = c->batch * tid / n, b1 = c->batch * (tid + 1) / n;
        crnn__run(c, b0, b1 - b0, &par);
    }
}

/* Units-split and pipelined calls left to compute on the caller's thread alone (same slices or
 * chunks, same bits) after one whose threads kept stalling at the per-step barrier or waiting
 * for a chunk: they did not each have a core, and waiting for a descheduled thread at every step
 * costs far more than it saves. */
static int crnn__serial_credits = 0;
#define CRNN__STALL_BACKOFF_CALLS 64

static int crnn__take_credit(void)
{
#if defined(__GNUC__)
    int c = __atomic_load_n(&crnn__serial_credits, __ATOMIC_RELAXED);
    while (c > 0)
        if (__atomic_compare_exchange_n(&crnn__serial_credits, &c, c - 1, 0, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
            return 1;
    return 0;
#else
    return 0;
#endif
}

static void crnn__set_credits(int n)
{
#if defined(__GNUC__)
    __atomic_store_n(&crnn__serial_credits, n, __ATOMIC_RELAXED);
#else
    (void)n;
#endif
}

/* Below this many flops a call runs on the caller's thread alone. */
#define CRNN__PARALLEL_MIN_FLOPS 2.0e6
/* Fewest batch rows per thread when the batch is split. */
#define CRNN__MIN_ROWS_PER_THREAD 4
/* Fewest hidden units per thread when the units are split (each step ends at a barrier). */
#ifndef CRNN__MIN_UNITS_PER_THREAD
#define CRNN__MIN_UNITS_PER_THREAD 64
#endif

/* How to spread this call over threads: a function of the shape and the thread setting only,
 * so results are bitwise reproducible for a fixed setting. Large batches split into row
 * ranges (no synchronisation at all); small batches with wide layers split each layer's units,
 * every thread keeping its slice of the recurrent weights hot in its own cache; other small
 * batches pipeline: a second thread makes the input projection a few steps ahead of the
 * recurrence, which then runs alone on its core (the per-step product is bound by that core's
 * cache bandwidth, and the projection is 10-20 % of the call at B = 1). */
crnn__mode crnn__plan(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps, int *nt)
{
    double flops = 0;
    int64_t l, n = crnn__num_threads(), min_units = rnn->layers[0].units, by;
    const int all_bidirectional = crnn__all_bidirectional(rnn);
    for (l = 0; l < rnn->num_layers; ++l) {
        const crnn__layer *L = &rnn->layers[l];
        flops += 2.0 * (double)batch * (double)timesteps * (double)L->ndir * (double)L->units *
                 (double)(L->in_size + L->units);
        if (L->units < min_units) min_units = L->units;
    }
    *nt = 1;
    if (n > CRNN__MAX_THREADS) n = CRNN__MAX_THREADS;
    if (n <= 1 || flops < CRNN__PARALLEL_MIN_FLOPS) return CRNN__SERIAL;
    by = batch / CRNN__MIN_ROWS_PER_THREAD;
    if (by >= 2) {
        *nt = (int)(n < by ? n : by);
        return CRNN__SPLIT_BATCH;
    }
    /* The units split and the pipeline wait for each other every step or chunk: never more
     * threads than CPUs there, or a descheduled thread stalls all the others. */
    if (n > crnn__cpu_count()) n = crnn__cpu_count();
    if (n < 2) return CRNN__SERIAL;
    if (all_bidirectional) {
        *nt = 2; /* one direction per thread, a barrier per layer only */
        return CRNN__SPLIT_UNITS;
    }
    by = min_units / CRNN__MIN_UNITS_PER_THREAD;
    if (by >= 2) {
        *nt = (int)(n < by ? n : by);
        return CRNN__SPLIT_UNITS;
    }
    if (timesteps >= 2 * CRNN__PIPE_CHUNK) {
        *nt = 2;
        return CRNN__PIPELINE;
    }
    return CRNN__SERIAL;
}

int crnn_rnn_forward(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps, const void *x,
                     const int64_t *lengths, const void *const *h0, void *y, void *const *h_n,
                     void *workspace, size_t workspace_size)
{
    crnn__ws_layout lay;
    crnn__call call;
    crnn__barrier barrier;
    crnn__mode mode;
    char *ws, *raw = NULL;
    int64_t b;
    int status, nthreads;

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

    call.rnn = rnn;
    call.batch = batch;
    call.timesteps = timesteps;
    call.x = x;
    call.lengths = lengths;
    call.h0 = h0;
    call.y = y;
    call.h_n = h_n;
    call.ws = ws;
    call.lay = &lay;
    call.par.nslices = 1;
    call.par.tid = 0;
    call.par.barrier = NULL;
    call.par.chunk = 0;
    call.par.flags = NULL;
    mode = crnn__plan(rnn, batch, timesteps, &nthreads);
    if (mode == CRNN__SPLIT_UNITS || mode == CRNN__PIPELINE) {
        crnn__barrier_init(&barrier, nthreads);
        call.par.barrier = &barrier;
    }
    if (mode == CRNN__SPLIT_UNITS) call.par.nslices = nthreads;
    if (mode == CRNN__PIPELINE) {
        call.par.chunk = CRNN__PIPE_CHUNK;
        call.par.flags = (int *)(ws + lay.flags);
        memset(call.par.flags, 0, lay.nflags * sizeof(int));
    }
    /* The result depends only on the plan, never on which threads ran it: when the pool is
     * busy with another call (or backing off, or a worker cannot start), this thread computes
     * the same row ranges, unit slices or projection chunks one after another. */
    status = CRNN_OK;
    if (mode == CRNN__SERIAL) {
        status = crnn__run(&call, 0, batch, &call.par);
    } else if (mode != CRNN__SPLIT_BATCH && crnn__take_credit()) {
        call.par.barrier = NULL;
        status = crnn__run(&call, 0, batch, &call.par);
    } else if (crnn__parallel_run(crnn__task, &call, nthreads)) {
        if (mode != CRNN__SPLIT_BATCH && barrier.stalls >= 2 && barrier.stalls * 4 > barrier.waits)
            crnn__set_credits(CRNN__STALL_BACKOFF_CALLS);
    } else if (mode == CRNN__SPLIT_BATCH) {
        int i;
        for (i = 0; i < nthreads; ++i) crnn__task(&call, i, nthreads);
    } else {
        call.par.barrier = NULL;
        status = crnn__run(&call, 0, batch, &call.par);
    }
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
