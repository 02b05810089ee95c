/* rnn.c - the handle (create / free / info), the cell table, weight packing, the workspace
 * layout, argument checks, the threading plan and the dtype dispatch of the public API. The
 * numeric work is in rnn_template.h and the cell_*.h files. */
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "cpu.h"
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

/* The cell kinds (see crnn__cell_info). A new kind is a row here, a step function in its own
 * cell_*.h and an entry of the step table in rnn_template.h. */
const crnn__cell_info crnn__cells[CRNN__NUM_CELLS] = {
    /* gates rec_gates phases has_c in_place reads_prev gate_order */
    [CRNN__CELL_SIMPLE] = {1, 1, 1, 0, 1, 0, {0}},
    [CRNN__CELL_LSTM] = {4, 4, 1, 1, 1, 0, {0, 1, 3, 2}}, /* i f c o -> i f o c */
    [CRNN__CELL_GRU] = {3, 3, 1, 0, 0, 1, {0, 1, 2}},
    [CRNN__CELL_GRU_BEFORE] = {3, 2, 2, 0, 0, 1, {0, 1, 2}},
};

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

/* ... in elements of `es` bytes (offsets into the weight blob). */
static int crnn__reserve_elems(size_t *cursor, size_t count, size_t es, size_t *offset)
{
    size_t off;
    CRNN_CHECK(crnn__reserve(cursor, count, es, &off));
    *offset = off / es;
    return CRNN_OK;
}

static int crnn__ndir(crnn_direction d) { return d == CRNN_DIRECTION_BIDIRECTIONAL ? 2 : 1; }

static int crnn__valid_activation(crnn_activation a)
{
    return a == CRNN_ACTIVATION_TANH || a == CRNN_ACTIVATION_RELU ||
           a == CRNN_ACTIVATION_SIGMOID || a == CRNN_ACTIVATION_LINEAR ||
           a == CRNN_ACTIVATION_HARD_SIGMOID;
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

void crnn__pack_blocked(const void *src, int64_t ld, int64_t rows, int64_t G, int64_t H,
                        const int *order, size_t es, void *dst)
{
    const int64_t vb = CRNN__BLOCK_UNITS(es);
    const char *s = (const char *)src;
    char *d = (char *)dst;
    int64_t i, j0, g;
    for (i = 0; i < rows; ++i, s += (size_t)ld * es, d += (size_t)(G * H) * es)
        for (j0 = 0; j0 < H; j0 += vb) {
            const int64_t len = H - j0 < vb ? H - j0 : vb;
            for (g = 0; g < G; ++g)
                memcpy(d + (size_t)(G * j0 + order[g] * len) * es, s + (size_t)(g * H + j0) * es,
                       (size_t)len * es);
        }
}

/* dst[i] += src[i], in the dtype of `es` bytes. */
static void crnn__add_into(void *dst, const void *src, int64_t n, size_t es)
{
    int64_t i;
    if (es == sizeof(float))
        for (i = 0; i < n; ++i) ((float *)dst)[i] += ((const float *)src)[i];
    else
        for (i = 0; i < n; ++i) ((double *)dst)[i] += ((const double *)src)[i];
}

/* Panel p, row i, column j of the panel = R[i, p * P + j], zero past column n (R: (k, n)). */
static void crnn__pack_panels(const char *R, int64_t k, int64_t n, size_t es, char *dst)
{
    const int64_t P = CRNN__PANEL_BYTES / (int64_t)es;
    int64_t p, i;
    for (p = 0; p * P < n; ++p) {
        const int64_t w = n - p * P < P ? n - p * P : P;
        for (i = 0; i < k; ++i, dst += (size_t)P * es) {
            memcpy(dst, R + (size_t)(i * n + p * P) * es, (size_t)w * es);
            memset(dst + (size_t)w * es, 0, (size_t)(P - w) * es);
        }
    }
    memset(dst, 0, (size_t)P * es); /* the row of padding (crnn__reserve_rec) */
}

void crnn_rnn_free(crnn_rnn_t *rnn)
{
    if (!rnn) return;
    free(rnn->blob_raw);
    free(rnn->layers);
    free(rnn);
}

static crnn__cell_kind crnn__kind_of(const crnn_layer_desc2 *d)
{
    if (d->cell == CRNN_CELL_LSTM) return CRNN__CELL_LSTM;
    if (d->cell == CRNN_CELL_GRU) return d->reset_after ? CRNN__CELL_GRU : CRNN__CELL_GRU_BEFORE;
    return CRNN__CELL_SIMPLE;
}

static int crnn__valid_desc(const crnn_layer_desc2 *d)
{
    if (d->units < 1 || !crnn__valid_activation(d->activation) ||
        !crnn__valid_direction(d->direction))
        return 0;
    switch (d->cell) {
    case CRNN_CELL_SIMPLE: return 1;
    case CRNN_CELL_LSTM: return crnn__valid_activation(d->recurrent_activation);
    case CRNN_CELL_GRU:
        return crnn__valid_activation(d->recurrent_activation) &&
               (d->reset_after == 0 || d->reset_after == 1);
    default: return 0;
    }
}

/* Reserve a recurrent matrix (k, n) and, when it is worth it, its panels. */
static int crnn__reserve_rec(size_t *cursor, const crnn__layer *L, int64_t n, const void *R,
                             int64_t ldr, size_t es, size_t *off, size_t *off_panels)
{
    size_t kn;
    const int64_t k = L->units;
    CRNN_CHECK(crnn__mul((size_t)k, (size_t)n, &kn));
    CRNN_CHECK(crnn__reserve_elems(cursor, kn, es, off));
    *off_panels = 0;
    /* No panels for a tiny product (the plain loop runs it) or an all-zero recurrent kernel. */
    if (k > 8 && kn <= CRNN__PANELS_MAX_BYTES / es &&
        !(ldr == n && crnn__all_zero_bytes(R, kn * es))) {
        const size_t P = CRNN__PANEL_BYTES / es;
        size_t padded;
        CRNN_CHECK(crnn__mul(((size_t)n + P - 1) / P * P, (size_t)k, &padded));
        /* + one row: a tile that starts inside a panel loads past the end of its rows */
        if (padded > SIZE_MAX - P) return CRNN_ERR_TOO_LARGE;
        CRNN_CHECK(crnn__reserve_elems(cursor, padded + P, es, off_panels));
    }
    return CRNN_OK;
}

/* Pass 1 of create: check a layer's descriptor and lay its weights out in the blob. */
static int crnn__plan_layer(crnn_rnn_t *rnn, int64_t l, const crnn_layer_desc2 *desc,
                            const crnn_weights2 *w, size_t *cursor)
{
    crnn__layer *L = &rnn->layers[l];
    const crnn__cell_info *ci;
    const size_t es = rnn->elem_size;
    size_t dn;
    int d;
    if (!crnn__valid_desc(desc)) return CRNN_ERR_INVALID_ARGUMENT;
    L->kind = crnn__kind_of(desc);
    ci = &crnn__cells[L->kind];
    L->cell = desc->cell;
    L->units = desc->units;
    L->gates = ci->gates;
    L->in_size = l == 0 ? rnn->input_size : rnn->layers[l - 1].units * rnn->layers[l - 1].ndir;
    L->activation = desc->activation;
    L->recurrent_activation =
        desc->cell == CRNN_CELL_SIMPLE ? desc->activation : desc->recurrent_activation;
    L->direction = desc->direction;
    L->reset_after = desc->cell == CRNN_CELL_GRU ? desc->reset_after : 0;
    L->ndir = crnn__ndir(desc->direction);
    /* units * G * 2 is a BLAS leading dimension / size at most: keep it inside an int. */
    if (L->units > CRNN__BLAS_INT_MAX / 2 / L->gates) return CRNN_ERR_TOO_LARGE;
    CRNN_CHECK(crnn__mul((size_t)L->in_size, (size_t)(L->units * L->gates), &dn));
    if (L->units * L->ndir > rnn->max_width) rnn->max_width = L->units * L->ndir;
    if (L->ndir > rnn->max_ndir) rnn->max_ndir = L->ndir;
    if (L->units > rnn->max_units) rnn->max_units = L->units;
    if (L->gates > 1) {
        rnn->gated = 1;
        if (L->units * L->gates > rnn->max_gates) rnn->max_gates = L->units * L->gates;
    }
    for (d = 0; d < L->ndir; ++d) {
        const crnn_weights2 *wd = &w[d];
        const int64_t H = L->units, GH = L->units * L->gates;
        if (!wd->kernel || !wd->recurrent_kernel) return CRNN_ERR_NULL_POINTER;
        L->has_bias[d] = wd->bias != NULL || wd->recurrent_bias != NULL;
        L->has_rbias[d] = L->kind == CRNN__CELL_GRU && wd->recurrent_bias != NULL;
        CRNN_CHECK(crnn__reserve_elems(cursor, dn, es, &L->off_kernel[d]));
        CRNN_CHECK(crnn__reserve_elems(cursor, (size_t)GH, es, &L->off_bias[d]));
        CRNN_CHECK(crnn__reserve_elems(cursor, (size_t)H, es, &L->off_rbias[d]));
        CRNN_CHECK(crnn__reserve_rec(cursor, L, ci->rec_gates * H, wd->recurrent_kernel,
                                     L->kind == CRNN__CELL_GRU_BEFORE ? GH : ci->rec_gates * H,
                                     es, &L->off_rec[d][0], &L->off_panels[d][0]));
        L->off_rec[d][1] = L->off_panels[d][1] = 0;
        if (L->kind == CRNN__CELL_GRU_BEFORE)
            CRNN_CHECK(crnn__reserve_rec(cursor, L, H, (const char *)wd->recurrent_kernel, GH, es,
                                         &L->off_rec[d][1], &L->off_panels[d][1]));
    }
    return CRNN_OK;
}

/* Pass 2 of create: copy and repack one (layer, direction). */
static void crnn__fill_entry(crnn_rnn_t *rnn, const crnn__layer *L, int d, const crnn_weights2 *w)
{
    const size_t es = rnn->elem_size;
    const crnn__cell_info *ci = &crnn__cells[L->kind];
    const int64_t H = L->units, G = L->gates, GH = G * H;
    char *blob = (char *)rnn->blob;
    static const int plain[1] = {0};
    int k;
    /* bias: the input bias plus the recurrent bias where the two add (all but a reset-after
     * GRU's candidate, whose recurrent bias stays apart), summed in the kernel's place before
     * the kernel is packed there (it holds in_size * G*H >= G*H elements) */
    {
        char *sum = blob + L->off_kernel[d] * es;
        memset(sum, 0, (size_t)GH * es);
        if (w->bias) memcpy(sum, w->bias, (size_t)GH * es);
        if (w->recurrent_bias) {
            crnn__add_into(sum, w->recurrent_bias, L->kind == CRNN__CELL_GRU ? 2 * H : GH, es);
            if (L->kind == CRNN__CELL_GRU)
                memcpy(blob + L->off_rbias[d] * es, (const char *)w->recurrent_bias + 2 * H * es,
                       (size_t)H * es);
        }
        crnn__pack_blocked(sum, GH, 1, G, H, ci->gate_order, es, blob + L->off_bias[d] * es);
    }
    crnn__pack_blocked(w->kernel, GH, L->in_size, G, H, ci->gate_order, es,
                       blob + L->off_kernel[d] * es);
    for (k = 0; k < 2; ++k) {
        const char *R = (const char *)w->recurrent_kernel;
        const int64_t n = k == 0 ? ci->rec_gates * H : H;
        char *dst = blob + L->off_rec[d][k] * es;
        if (k == 1 && L->kind != CRNN__CELL_GRU_BEFORE) break;
        if (k == 0)
            crnn__pack_blocked(R, GH, H, ci->rec_gates, H, ci->gate_order, es, dst);
        else
            crnn__pack_blocked(R + (size_t)(2 * H) * es, GH, H, 1, H, plain, es, dst);
        if (L->off_panels[d][k]) crnn__pack_panels(dst, H, n, es, blob + L->off_panels[d][k] * es);
    }
}

int crnn_rnn_create2(crnn_rnn_t **out, crnn_dtype dtype, int64_t input_size, int64_t num_layers,
                     const crnn_layer_desc2 *layers, const crnn_weights2 *weights)
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

    for (l = 0, e = 0; l < num_layers && status == CRNN_OK; ++l) {
        status = crnn__plan_layer(rnn, l, &layers[l], &weights[e], &cursor);
        e += rnn->layers[l].ndir;
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
    for (l = 0, e = 0; l < num_layers; ++l) {
        int d;
        for (d = 0; d < rnn->layers[l].ndir; ++d, ++e)
            crnn__fill_entry(rnn, &rnn->layers[l], d, &weights[e]);
    }
    *out = rnn;
    return CRNN_OK;
}

/* 0.1's SimpleRNN stacks are CRNN_CELL_SIMPLE stacks of the same core. */
#define CRNN__STACK_LAYERS 16

int crnn_rnn_create(crnn_rnn_t **out, crnn_dtype dtype, int64_t input_size, int64_t num_layers,
                    const crnn_layer_desc *layers, const crnn_weights *weights)
{
    crnn_layer_desc2 stack_d[CRNN__STACK_LAYERS], *d2 = stack_d;
    crnn_weights2 stack_w[2 * CRNN__STACK_LAYERS], *w2 = stack_w;
    int64_t l, e = 0;
    int status;
    if (!out) return CRNN_ERR_NULL_POINTER;
    *out = NULL;
    if (!layers || !weights) return CRNN_ERR_NULL_POINTER;
    if (num_layers < 1) return CRNN_ERR_INVALID_ARGUMENT;
    if ((uint64_t)num_layers > SIZE_MAX / (2 * sizeof(crnn_weights2))) return CRNN_ERR_TOO_LARGE;
    if (num_layers > CRNN__STACK_LAYERS) {
        d2 = (crnn_layer_desc2 *)malloc((size_t)num_layers * sizeof(*d2));
        w2 = (crnn_weights2 *)malloc((size_t)num_layers * 2 * sizeof(*w2));
        if (!d2 || !w2) {
            free(d2 == stack_d ? NULL : d2);
            free(w2 == stack_w ? NULL : w2);
            return CRNN_ERR_OUT_OF_MEMORY;
        }
    }
    for (l = 0; l < num_layers; ++l) {
        int d, nd = crnn__valid_direction(layers[l].direction) ? crnn__ndir(layers[l].direction) : 1;
        d2[l].cell = CRNN_CELL_SIMPLE;
        d2[l].units = layers[l].units;
        d2[l].activation = layers[l].activation;
        d2[l].recurrent_activation = layers[l].activation;
        d2[l].direction = layers[l].direction;
        d2[l].reset_after = 0;
        for (d = 0; d < nd; ++d, ++e) {
            w2[e].kernel = weights[e].kernel;
            w2[e].recurrent_kernel = weights[e].recurrent_kernel;
            w2[e].bias = weights[e].bias;
            w2[e].recurrent_bias = NULL;
        }
    }
    status = crnn_rnn_create2(out, dtype, input_size, num_layers, d2, w2);
    if (d2 != stack_d) free(d2);
    if (w2 != stack_w) free(w2);
    return status;
}

int crnn_rnn_info2(const crnn_rnn_t *rnn, crnn_dtype *dtype, int64_t *input_size,
                   int64_t *num_layers, crnn_layer_desc2 *layers_out, int64_t layers_capacity)
{
    int64_t l;
    if (!rnn) return CRNN_ERR_NULL_POINTER;
    if (dtype) *dtype = rnn->dtype;
    if (input_size) *input_size = rnn->input_size;
    if (num_layers) *num_layers = rnn->num_layers;
    for (l = 0; layers_out && l < rnn->num_layers && l < layers_capacity; ++l) {
        const crnn__layer *L = &rnn->layers[l];
        layers_out[l].cell = L->cell;
        layers_out[l].units = L->units;
        layers_out[l].activation = L->activation;
        layers_out[l].recurrent_activation = L->recurrent_activation;
        layers_out[l].direction = L->direction;
        layers_out[l].reset_after = L->reset_after;
    }
    return CRNN_OK;
}

int crnn_rnn_info(const crnn_rnn_t *rnn, crnn_dtype *dtype, int64_t *input_size,
                  int64_t *num_layers, crnn_layer_desc *layers_out, int64_t layers_capacity)
{
    int64_t l;
    CRNN_CHECK(crnn_rnn_info2(rnn, dtype, input_size, num_layers, NULL, 0));
    for (l = 0; layers_out && l < rnn->num_layers && l < layers_capacity; ++l) {
        layers_out[l].units = rnn->layers[l].units;
        layers_out[l].activation = rnn->layers[l].activation;
        layers_out[l].direction = rnn->layers[l].direction;
    }
    return CRNN_OK;
}

int crnn__ws_offsets(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps,
                     crnn__ws_layout *lay)
{
    size_t cursor = 0, rows, frame, gates, state, scratch, flags, slack;
    const size_t es = rnn->elem_size;
    int64_t l;
    int nframes = rnn->num_layers > 1 ? 2 : 1, i, d;
    if (batch < 0 || timesteps < 1) return CRNN_ERR_INVALID_ARGUMENT;
    /* Every per-step BLAS call uses a leading dimension of T * W (or T * G * H) and M = B: keep
     * them in an int. */
    if (batch > CRNN__BLAS_INT_MAX) return CRNN_ERR_TOO_LARGE;
    for (l = 0; l < rnn->num_layers; ++l) {
        const crnn__layer *L = &rnn->layers[l];
        const int64_t wide = L->units * (L->ndir > L->gates ? L->ndir : L->gates);
        if (timesteps > CRNN__BLAS_INT_MAX / wide) return CRNN_ERR_TOO_LARGE;
    }
    CRNN_CHECK(crnn__mul((size_t)batch, (size_t)timesteps, &rows));
    CRNN_CHECK(crnn__mul(rows, (size_t)rnn->max_width, &frame));
    CRNN_CHECK(crnn__mul(rows, (size_t)rnn->max_gates, &gates));
    CRNN_CHECK(crnn__mul((size_t)batch, (size_t)rnn->max_units, &state));
    CRNN_CHECK(crnn__mul((size_t)batch, (size_t)rnn->max_gates, &scratch));
    slack = (CRNN__SLICES_SLACK(CRNN__MAX_THREADS) + es - 1) / es;
    if (gates > SIZE_MAX - slack || state > SIZE_MAX - slack || scratch > SIZE_MAX - slack)
        return CRNN_ERR_TOO_LARGE;
    memset(lay, 0, sizeof(*lay));
    for (i = 0; i < nframes; ++i) CRNN_CHECK(crnn__reserve(&cursor, frame, es, &lay->frames[i]));
    /* per direction: the second set only if a layer is bidirectional; the gated cells' buffers
     * only if the stack has one (unused offsets stay 0) */
    for (d = 0; d < rnn->max_ndir; ++d) {
        CRNN_CHECK(crnn__reserve(&cursor, state, es, &lay->hbuf[d][0]));
        CRNN_CHECK(crnn__reserve(&cursor, state, es, &lay->hbuf[d][1]));
        if (!rnn->gated) continue;
        /* a units split's slices each take a region of these three (crnn__slice_region) */
        CRNN_CHECK(crnn__reserve(&cursor, gates + slack, es, &lay->gates[d]));
        CRNN_CHECK(crnn__reserve(&cursor, state + slack, es, &lay->cbuf[d]));
        CRNN_CHECK(crnn__reserve(&cursor, scratch + slack, es, &lay->scratch[d]));
        CRNN_CHECK(crnn__reserve(&cursor, state, es, &lay->rh[d]));
    }
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

int crnn__all_bidirectional(const crnn_rnn_t *rnn)
{
    int64_t l;
    for (l = 0; l < rnn->num_layers; ++l)
        if (rnn->layers[l].ndir != 2) return 0;
    return 1;
}

/* One call, shared by the threads that run it. */
typedef struct {
    const crnn_rnn_t *rnn;
    crnn__args args;
    crnn__par par; /* SPLIT_BATCH: row ranges; else every thread runs the whole batch, tid set per
                      thread */
} crnn__call;

static int crnn__run(const crnn__call *c, int64_t b0, int64_t nb, const crnn__par *par)
{
    if (c->rnn->dtype == CRNN_DTYPE_FLOAT32) return crnn__forward_f32(c->rnn, &c->args, b0, nb, par);
    return crnn__forward_f64(c->rnn, &c->args, b0, nb, par);
}

static void crnn__task(void *ctx, int tid, int n)
{
    const crnn__call *c = (const crnn__call *)ctx;
    crnn__par par = c->par;
    if (par.mode == CRNN__SPLIT_BATCH && par.blocks) {
        if (c->rnn->dtype == CRNN_DTYPE_FLOAT32)
            crnn__forward_blocks_f32(c->rnn, &c->args, &par, tid);
        else
            crnn__forward_blocks_f64(c->rnn, &c->args, &par, tid);
    } else if (par.mode == CRNN__SPLIT_BATCH) {
        const int64_t b0 = c->args.batch * tid / n, b1 = c->args.batch * (tid + 1) / n;
        par.barrier = NULL;
        crnn__run(c, b0, b1 - b0, &par);
    } else {
        par.tid = tid;
        crnn__run(c, 0, c->args.batch, &par);
    }
}

/* Units-split and pipelined calls of this process, run on the caller alone for a while after
 * their threads did not each have a core (parallel.h). */
static crnn__backoff crnn__pool_backoff;

/* How a plan's tasks depend on each other: row ranges share nothing, and row blocks
 * (crnn__blocks) are run by any thread, task 0 running every block the others have not; the
 * pipeline's second thread only projects chunks ahead of the first, which projects any it
 * reaches first; unit slices (and directions) meet at barriers. */
static crnn__team crnn__team_of(crnn__mode mode, int blocks)
{
    if (mode == CRNN__SPLIT_BATCH) return blocks ? CRNN__TEAM_HELPERS : CRNN__TEAM_INDEPENDENT;
    if (mode == CRNN__PIPELINE) return CRNN__TEAM_HELPERS;
    return CRNN__TEAM_TOGETHER;
}

/* Below this many flops a call runs on the caller's thread alone. */
#define CRNN__PARALLEL_MIN_FLOPS 2.0e6
/* Fewest batch rows per thread when the batch is split. */
#define CRNN__MIN_ROWS_PER_THREAD 4
/* Fewest hidden units per thread when the units are split (each step ends at a barrier). */
#ifndef CRNN__MIN_UNITS_PER_THREAD
#define CRNN__MIN_UNITS_PER_THREAD 64
#endif

/* Bytes of one direction's recurrent weights. */
static double crnn__rec_bytes(const crnn__layer *L, size_t es)
{
    return (double)L->gates * (double)L->units * (double)L->units * (double)es;
}

/* Whether pred holds for every layer of the stack. */
static int crnn__every_layer(const crnn_rnn_t *rnn, int (*pred)(const crnn__layer *, size_t))
{
    int64_t l;
    for (l = 0; l < rnn->num_layers; ++l)
        if (!pred(&rnn->layers[l], rnn->elem_size)) return 0;
    return 1;
}

/* Whether halving a batch-1 step's recurrent weights saves more than the two cores' hand-off
 * costs each step: only where the weights fill at least 3/2 of L1, so that each half still fills
 * most of one core's L1. Smaller halves save less than the hand-off (a store, the other core's
 * read of it, and h_{t-1}'s lines moved across): SimpleRNN 96 units, 36 KiB, ran 0.56x as fast
 * split (Zen 4, 32 KiB L1), GRU 64 units, 48 KiB, 1.06x, and 1.10-1.14x against the pipeline
 * another day; SimpleRNN 128 units, 64 KiB, 1.2-1.36x there but 0.77x on a Xeon with a 48 KiB
 * L1, where 192 units (144 KiB) gained 1.07x. A cell whose steps meet twice (phases: the
 * reset-before GRU) pays the hand-off twice a step and needs twice L1: its GRU (1,1000,32,64)
 * and (1,1000,32,72) ran 0.97x and 0.92x split from 3/2 of L1 on Zen 4. */
static int crnn__halving_pays(const crnn__layer *L, size_t es)
{
    const double need = crnn__cells[L->kind].phases > 1 ? 2.0 : 1.5;
    return crnn__rec_bytes(L, es) >= need * (double)crnn__l1_bytes();
}

/* Whether a layer's recurrent weights fill at least twice one core's L1: a step of a few rows
 * then streams them from L2 whichever rows it has (crnn__pipeline_beats_rows). */
static int crnn__fills_two_l1(const crnn__layer *L, size_t es)
{
    return crnn__rec_bytes(L, es) >= 2.0 * (double)crnn__l1_bytes();
}

/* Whether a batch-1 layer's units split in two pays where its width alone
 * (CRNN__MIN_UNITS_PER_THREAD) does not call for it. The other choice is the pipeline, which
 * already keeps both cores busy when the input projection costs about as much as the steps. A
 * batch-1 step is bound by streaming the recurrent weights from cache, so halving them pays when
 * the projection is the smaller part (an input at most half as wide as the layer), when halving
 * pays at all (crnn__halving_pays), and when neither half (crnn__slice_edges) has more than 3/5 of
 * the units (64 / 48 of 112: yes; 32 / 16 of 48: no). Float64 SimpleRNNs of 81-96 units and GRUs of
 * 81-106 halve evenly where a batch of one balances its halves' reads (48 / 48 units of 96, not 64
 * / 32; crnn__row_tiles_alike: not with AVX2), and split: SimpleRNN (1,300,16,84) and (1,300,16,96)
 * 1.40x and 1.72x faster than pipelined, GRU (1,300,16,84) and (1,100,16,96) 1.49x and 1.65x (Zen
 * 4). Balanced in pairs of lines instead (crnn__pairs_read), float32 GRUs of 75-79 units (32 /
 * 43-47) would not split, and pipelined ran 0.69x and 0.81x as fast at (1,1000,16,76) and
 * (1,300,32,78). */
static int crnn__units_split_pays(const crnn__layer *L, size_t es)
{
    const int64_t align = crnn__slice_align(L->units, L->gates, 2, es);
    int64_t edges[3], half;
    if (L->units < 2 * align || 2 * L->in_size > L->units) return 0;
    crnn__slice_edges(L->units, L->gates, 2, es, crnn__row_tiles_alike(), edges);
    half = edges[1] > L->units - edges[1] ? edges[1] : L->units - edges[1];
    if (5 * half > 3 * L->units) return 0;
    return crnn__halving_pays(L, es);
}

/* Whether a layer's recurrent weights fit in half of one core's L2, where a batched step
 * reads them from L2 (panels_gemm streams them past that). */
static int crnn__within_half_l2(const crnn__layer *L, size_t es)
{
    return 2.0 * crnn__rec_bytes(L, es) <= (double)crnn__l2_bytes();
}

/* The blocks a row split over nt threads cuts its rows into (crnn__blocks in parallel.h): two a
 * thread, so that a thread whose core runs slower hands some of its rows' steps to a faster one,
 * where each block keeps CRNN__MIN_ROWS_PER_THREAD rows and every layer's recurrent weights stay
 * in L2 (crnn__within_half_l2): a step then reads them from L2 whichever rows it has, and half
 * a thread's rows cost half its time (LSTM 128 units, 256 KiB, one thread: 85.7 us a row at
 * batch 4, 86.5 at batch 8). Weights streamed from L3 or memory are read once a step for all
 * of a thread's rows, and twice for two blocks: there, and with fewer rows, one block a thread
 * (nt: the rows split as ranges, none handed over). On the 2-vCPU Xeon, float32, 2 threads:
 * with both vCPUs equally fast as fast as the ranges (LSTM (16,50,128,128) 713-740 us against
 * 709-728, SimpleRNN (32,50,128,256) 970-978 against 997-1,011); timed in chunks of 5 calls
 * after idle pauses, after which one vCPU often ran 1.5x slower, LSTM (16,50,128,128) 1.10x
 * faster (median of 80 paired rounds), GRU (32,50,128,256) 1.015x, others 0.99-1.04x. Three
 * blocks of 12-15 rows over two threads (one and two) ran 0.87-0.90x as fast as two ranges with
 * both vCPUs equally fast (LSTM, GRU, SimpleRNN (12,25,300,176), LSTM (14,50,128,128)): the
 * thread with one block takes half of another's at the end, its gates made on the other core. */
static int crnn__row_blocks(const crnn_rnn_t *rnn, int64_t batch, int nt)
{
    if (nt < 2 || 2 * nt > CRNN__MAX_BLOCKS) return nt;
    if (batch < 2 * (int64_t)nt * CRNN__MIN_ROWS_PER_THREAD) return nt;
    if (!crnn__every_layer(rnn, crnn__within_half_l2)) return nt;
    return 2 * nt;
}

/* Whether a layer's recurrent weights fill at least one core's L2. */
static int crnn__outgrows_l2(const crnn__layer *L, size_t es)
{
    return crnn__rec_bytes(L, es) >= (double)crnn__l2_bytes();
}

/* Rows per thread up to which a batch whose layers' recurrent weights each outgrow L2 splits
 * their units rather than its rows (see crnn__units_split_streams_less), by the kernels in use:
 * a row split streams all the weights from L3 at every step, which costs more than its products
 * up to a number of rows that grows with the multiply-adds a core does per weight it loads, so
 * with the vector width (if the L3 delivers about as much per core either way). Float32, units
 * over rows at 2 threads. A 2-core Xeon, AVX-512 (2 MiB L2): LSTM 384 units (2.4 MB) 1.43x at
 * batch 8, 1.10x at 24, 1.01x at 32, 0.96x at 64; LSTM and SimpleRNN of 4 MB 1.38x at 16,
 * 1.06-1.07x at 32, 0.96-0.99x at 64; LSTM 1024 units 1.43x at 16, 1.13x at 32: up to 16 rows
 * a thread. A 2-core AMD EPYC Zen 3, AVX2 (512 KiB L2): LSTM 256 units (1 MiB) 1.18x at batch
 * 8, 0.98-1.08x at 16, 0.91x at 32 (where ONNX Runtime, which splits the rows, then took 0.91x
 * crnn's time instead of 0.77x); GRU 256 and LSTM and SimpleRNN 512 units at 32 0.98-1.00x:
 * up to 8 rows a thread. SSE2 (a quarter of AVX2's multiply-adds a cycle): 4, not measured.
 * The 2-vCPU Zen 4 VM (AVX-512, 1 MiB L2) does not fit these: units over rows there, in two
 * processes alternating, LSTM 256 units (1 MiB) 0.83x at 16 rows a thread in a slow hand-off
 * spell (a line between the cores in 260 ns), 0.99x in a fast one (50-60 ns), 0.89-0.92x at 8
 * rows in both; SimpleRNN 1024 units (4 MiB) 0.87x and GRU 512 (3 MiB) 0.98x at 16; LSTM 512
 * units (4 MiB) 0.99x at 16, 1.00x at 4; LSTM 384 units (2.25 MiB) 1.11x at 2. No threshold
 * fits both machines, and one from the machine would weigh the L3's bandwidth per core against
 * the kernel's rate and the hand-off, which drifts on a VM. So where the two give the same bits
 * (crnn__rows_match_units), the row split is the units split's rival: the calls time both and
 * take the faster (crnn_rnn_forward2, crnn__pace): on the Zen 4 VM whole calls then ran
 * 1.00-1.49x as fast as on the units split alone (SimpleRNN (16,50,128,512) 1.49x, LSTM
 * (32,50,128,512) 1.05x). This limit bounds the batches that contest, and alone chooses the
 * units split for the rest (a layer whose units end in a partial block). */
static int64_t crnn__stream_max_rows(void)
{
    switch (crnn__isa()) {
    case CRNN__ISA_AVX512: return 16;
    case CRNN__ISA_AVX2: return 8;
    default: return 4;
    }
}

/* Whether this batch, which could split its rows, does better splitting its layers' units: where
 * every layer's recurrent weights fill at least one core's L2, each thread of a row split streams
 * all of them from L3 or memory at every step, which with few rows a thread
 * (crnn__stream_max_rows) costs more than its products. Split by units, each thread streams its
 * slice only, or keeps it in its own L2. Under L2 the rows split (the Xeon: GRU 384 units,
 * 1.8 MB, 1.04x as units at 16 rows and 0.95x at 24; LSTM 320 units, 1.6 MB, 0.99-1.03x). */
static int crnn__units_split_streams_less(const crnn_rnn_t *rnn, int64_t batch, int64_t n,
                                          int64_t min_units)
{
    int64_t nt = crnn__cpu_count();
    /* not measured for a bidirectional stack, whose units split is one direction per thread
     * (2 threads, where the rows could have as many threads as CPUs) */
    if (crnn__all_bidirectional(rnn)) return 0;
    if (nt > n) nt = n;
    if (min_units / CRNN__MIN_UNITS_PER_THREAD < nt) nt = min_units / CRNN__MIN_UNITS_PER_THREAD;
    if (nt < 2 || batch > crnn__stream_max_rows() * nt) return 0;
    return crnn__every_layer(rnn, crnn__outgrows_l2);
}

/* Whether a small batch (fewer than CRNN__MIN_ROWS_PER_THREAD rows a thread) does better
 * splitting its layers' units over nt threads than its rows: where every layer's recurrent
 * weights fill at least a quarter of L2 per row a thread would get. A step of one row a thread
 * streams its weights from L2 (bandwidth-bound: a second row costs little more), so halving the
 * weights pays past the hand-off between the cores each step (about 0.5-1 us here), where
 * halving the rows does not; with more rows a thread the step becomes compute-bound and the row
 * split gains too. Rows a thread are rounded down: of 3 rows, the thread with 2 costs little
 * more than a row in such a step (GRU 256 units, 768 KiB, at batch 3: 1.55 / 1.20).
 * A 2-core Xeon (2 MiB L2), float32, units split / rows split over 1t:
 * batch 2 (a row a thread): SimpleRNN 128 units (64 KiB) 0.58 / 1.41, 256 units (256 KiB)
 * 0.93 / 1.22, 448 units (784 KiB) 1.25 / 1.19, 512 (1 MiB) 1.46 / 1.16; LSTM 128 (256 KiB)
 * 1.25 / 1.36, 192 (576 KiB) 1.34 / 1.22; GRU 224 (588 KiB) 1.42 / 1.25; batch 4 (2 rows a
 * thread): SimpleRNN 448 1.23 / 1.47, GRU 224 1.42 / 1.60, LSTM 256 (1 MiB) 1.59 / 1.60,
 * 320 (1.6 MB) 1.88 / 1.37. */
static int crnn__units_beat_rows(const crnn_rnn_t *rnn, int64_t batch, int64_t nt)
{
    const int64_t rows = batch / nt;
    int64_t l;
    for (l = 0; l < rnn->num_layers; ++l)
        if (4.0 * crnn__rec_bytes(&rnn->layers[l], rnn->elem_size) <
            (double)rows * (double)crnn__l2_bytes())
            return 0;
    return 1;
}

/* Whether a small batch whose rows would otherwise split over nt threads pipelines instead
 * (float32 only). Where the rows split unevenly (3 rows on 2 threads: the thread with 2 takes
 * about as long as with 3 in a step that streams its weights), where the input projections
 * cost at least half the recurrent products in flops; where they split evenly, where the
 * projections cost at least as much and each step streams its weights from L2 (twice L1 or
 * more, crnn__fills_two_l1: a row split then saves little on the steps; from 3/2 of L1, where
 * batch 1 splits its units, GRU (4,100,72,72) pipelined ran 0.58x as fast as its rows split on
 * Zen 4, LSTM (2,100,64,60) 0.95x, SimpleRNN (2,100,128,120) 1.18x). A 2-core Xeon, 2 threads
 * over 1, pipeline / rows split, inputs as wide as the units, float32: SimpleRNN 128 units at
 * batch 2, 3, 5 1.56 / 1.77, 1.60 / 1.23, 1.88 / 1.54; 256 units at batch 2, 3, 4 1.58 / 1.32,
 * 1.85 / 1.32, 1.77 / 1.66; LSTM 128 at batch 3 1.54 / 1.27, at batch 4 1.63 / 1.67; GRU 192
 * at batch 2 1.56 / 1.38. Narrower inputs split the rows (SimpleRNN (3,100,16,128) 0.98 /
 * 1.24). Float64 splits its rows, or its units, at every one of these shapes (SimpleRNN 128 at
 * batch 2 1.25 / 1.76, LSTM 128 at batch 3 1.51 / 1.32 but units 1.65): a row's per-step
 * element-wise work (a float64 tanh) is a larger part, which the rows split halves and the
 * pipeline does not. */
static int crnn__pipeline_beats_rows(const crnn_rnn_t *rnn, int64_t batch, int64_t nt,
                                     int64_t timesteps)
{
    double proj = 0, rec = 0;
    int64_t l;
    const int even = batch % nt == 0;
    if (rnn->elem_size != sizeof(float) || timesteps < 2 * CRNN__PIPE_CHUNK) return 0;
    if (even && !crnn__every_layer(rnn, crnn__fills_two_l1)) return 0;
    for (l = 0; l < rnn->num_layers; ++l) {
        const crnn__layer *L = &rnn->layers[l];
        proj += (double)L->ndir * (double)L->gates * (double)L->units * (double)L->in_size;
        rec += (double)L->ndir * (double)L->gates * (double)L->units * (double)L->units;
    }
    return (even ? 1.0 : 2.0) * proj >= rec;
}

/* Whether a units split of this stack over a batch of at least 2 * CRNN__MIN_ROWS_PER_THREAD
 * rows computes the same bits as a split of its rows, given the same GEMMs for the input
 * projections (crnn__par: proj_rows, proj_slices): every product but those (a BLAS's sums can
 * depend on a GEMM's shape) runs on crnn's own kernels, whose sums for a row do not depend on the
 * rows beside it or the columns it computes (kernels.h: panels_gemm), and no layer has a narrow
 * last block (H % CRNN__BLOCK_UNITS), whose rows are gathered in chunks of however many rows the
 * thread has (lstm_post_tail), nor a batch of one's kernels (a range of at least 4 rows). Checked
 * by tests/test_parallel.py over every cell, both dtypes and each instruction set. */
static int crnn__rows_match_units(const crnn_rnn_t *rnn)
{
    int64_t l;
    if (!crnn__use_panels()) return 0;
    for (l = 0; l < rnn->num_layers; ++l)
        if (rnn->layers[l].units % CRNN__BLOCK_UNITS(rnn->elem_size) != 0) return 0;
    return 1;
}

/* How to spread this call over threads: a function of the shape, the thread setting, the L1 and
 * L2 sizes (cpu.h: the OS's, or CRNN_L1_BYTES / CRNN_L2_BYTES) and the kernels' instruction set
 * (crnn__isa: the CPU's best, or CRNN_ISA) only, so results are bitwise reproducible for a fixed
 * setting on a machine. Large batches split their rows: into ranges, one a thread (no
 * synchronisation at all), or into two blocks a thread that the threads run a chunk of steps at a
 * time, a thread done with its own taking others' (crnn__row_blocks), except
 * batches of up to 16 rows a thread (AVX-512; 8 AVX2, 4 SSE2) whose layers' weights outgrow L2
 * (crnn__units_split_streams_less); where the row split gives the same bits (*rival: its
 * threads), the calls time it against the units split (crnn_rnn_forward2) and take the faster.
 * Those, small batches over large weights (crnn__units_beat_rows) and batch 1 over wide layers
 * (that crnn__halving_pays for, or narrower ones that crnn__units_split_pays for) split each
 * layer's units, every thread keeping its slice of the recurrent weights hot in its own cache.
 * Other batches of 2 or more split their rows, down to a row a thread, unless their input
 * projections are the larger part (crnn__pipeline_beats_rows): they, and batch 1 otherwise,
 * pipeline: a second thread makes the input projection a few steps ahead of the recurrence,
 * which then runs alone on its core (the per-step product is bound by that core's cache
 * bandwidth, and the projection is 10-20 % of the call at B = 1). */
crnn__mode crnn__plan_rival(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps, int *nt,
                            int *rival)
{
    double flops = 0;
    int64_t l, n = crnn__num_threads(), min_units = rnn->layers[0].units, by, rows_nt;
    int streams;
    for (l = 0; l < rnn->num_layers; ++l) {
        const crnn__layer *L = &rnn->layers[l];
        flops += 2.0 * (double)batch * (double)timesteps * (double)L->ndir * (double)L->gates *
                 (double)L->units * (double)(L->in_size + L->units);
        if (L->units < min_units) min_units = L->units;
    }
    *nt = 1;
    *rival = 0;
    if (n > CRNN__MAX_THREADS) n = CRNN__MAX_THREADS;
    if (n <= 1 || flops < CRNN__PARALLEL_MIN_FLOPS) return CRNN__SERIAL;
    streams = crnn__units_split_streams_less(rnn, batch, n, min_units);
    by = batch / CRNN__MIN_ROWS_PER_THREAD;
    rows_nt = n < by ? n : by; /* the rows split's threads */
    if (by >= 2 && !streams) {
        *nt = (int)rows_nt;
        return CRNN__SPLIT_BATCH;
    }
    /* The units split and the pipeline wait for each other every step or chunk: never more
     * threads than CPUs there, or a descheduled thread stalls all the others. */
    if (n > crnn__cpu_count()) n = crnn__cpu_count();
    if (n < 2) return CRNN__SERIAL;
    if (crnn__all_bidirectional(rnn)) {
        *nt = 2; /* one direction per thread, a barrier per layer only */
        return CRNN__SPLIT_UNITS;
    }
    by = min_units / CRNN__MIN_UNITS_PER_THREAD;
    if (batch > 1) {
        /* weights past L2 (crnn__units_split_streams_less), or a few rows a thread over large
         * weights, split the units; other small batches pipeline or split their rows, down to
         * a row a thread */
        const int64_t small_nt = n < batch ? n : batch;
        if (by >= 2 && (streams || crnn__units_beat_rows(rnn, batch, small_nt))) {
            *nt = (int)(n < by ? n : by);
            /* past L2 with a batch the rows split would take: the two are timed against each
             * other (crnn_rnn_forward2) where they give the same bits */
            if (streams && rows_nt >= 2 && crnn__rows_match_units(rnn)) *rival = (int)rows_nt;
            return CRNN__SPLIT_UNITS;
        }
        if (crnn__pipeline_beats_rows(rnn, batch, small_nt, timesteps)) {
            *nt = 2;
            return CRNN__PIPELINE;
        }
        *nt = (int)small_nt;
        return CRNN__SPLIT_BATCH;
    }
    /* wide layers split their units at batch 1 where halving each one pays */
    if (by >= 2 && crnn__every_layer(rnn, crnn__halving_pays)) {
        *nt = (int)(n < by ? n : by);
        return CRNN__SPLIT_UNITS;
    }
    if (batch == 1 && crnn__every_layer(rnn, crnn__units_split_pays)) {
        *nt = 2;
        return CRNN__SPLIT_UNITS;
    }
    if (timesteps >= 2 * CRNN__PIPE_CHUNK) {
        *nt = 2;
        return CRNN__PIPELINE;
    }
    return CRNN__SERIAL;
}

crnn__mode crnn__plan(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps, int *nt)
{
    int rival;
    return crnn__plan_rival(rnn, batch, timesteps, nt, &rival);
}

int crnn__plan_blocks(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps)
{
    int nt, n;
    if (crnn__plan(rnn, batch, timesteps, &nt) != CRNN__SPLIT_BATCH) return 0;
    n = crnn__row_blocks(rnn, batch, nt);
    return n > nt ? n : 0;
}

const crnn__pace *crnn__pace_of(const crnn_rnn_t *rnn) { return &rnn->pace; }

int crnn_rnn_forward2(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps, const void *x,
                      const int64_t *lengths, const void *const *h0, const void *const *c0,
                      void *y, void *const *h_n, void *const *c_n, void *workspace,
                      size_t workspace_size)
{
    crnn__ws_layout lay;
    crnn__call call;
    crnn__barrier barrier;
    crnn__mailbox mail;
    crnn__blocks blocks;
    char *ws, *raw = NULL;
    int64_t b;
    int status, nthreads, rival;
    crnn__run_result ran;

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
    call.args.batch = batch;
    call.args.timesteps = timesteps;
    call.args.x = x;
    call.args.lengths = lengths;
    call.args.h0 = h0;
    call.args.c0 = c0;
    call.args.y = y;
    call.args.h_n = h_n;
    call.args.c_n = c_n;
    call.args.ws = ws;
    call.args.lay = &lay;
    call.par.mode = crnn__plan_rival(rnn, batch, timesteps, &nthreads, &rival);
    call.par.nslices = 1;
    /* a units split and its row-split rival cut the projections alike (crnn__par) */
    call.par.proj_rows = rival ? rival : 1;
    call.par.proj_slices = rival ? nthreads : 1;
    call.par.by_direction = 0;
    call.par.tid = 0;
    call.par.barrier = NULL;
    call.par.flags = NULL;
    call.par.mail = NULL;
    call.par.blocks = NULL;
    if (call.par.mode == CRNN__SPLIT_BATCH) {
        const int nblocks = crnn__row_blocks(rnn, batch, nthreads); /* (crnn__plan_blocks) */
        if (nblocks > nthreads) {
            long long steps = 0;
            int64_t l;
            for (l = 0; l < rnn->num_layers; ++l)
                steps += (long long)timesteps * rnn->layers[l].ndir;
            crnn__blocks_init(&blocks, nblocks, nthreads, steps);
            call.par.blocks = &blocks;
        }
    }
    if (call.par.mode == CRNN__SPLIT_UNITS || call.par.mode == CRNN__PIPELINE) {
        crnn__barrier_init(&barrier, nthreads);
        call.par.barrier = &barrier;
    }
    if (call.par.mode == CRNN__SPLIT_UNITS) {
        call.par.by_direction = crnn__all_bidirectional(rnn);
        call.par.nslices = call.par.by_direction ? 1 : nthreads;
        if (batch == 1 && !call.par.by_direction && nthreads <= CRNN__MAIL_THREADS) {
            crnn__mail_clear(&mail, nthreads);
            call.par.mail = &mail;
        }
    }
    if (call.par.mode == CRNN__PIPELINE) {
        call.par.flags = (int *)(ws + lay.flags);
        memset(call.par.flags, 0, lay.nflags * sizeof(int));
    }
    /* The result depends only on the plan, never on which threads ran it: when the pool is
     * busy with another call (or backing off, or a worker cannot start or is late), this thread
     * computes the same row ranges or blocks, unit slices, directions or projection chunks one
     * after another. */
    status = CRNN_OK;
    if (call.par.mode == CRNN__SERIAL) {
        status = crnn__run(&call, 0, batch, &call.par);
    } else {
        /* the calls whose threads wait for each other every step or chunk back off
         * (crnn__backoff). Row splits do not: their threads wait only for each other's share at
         * the end, and the caller computing them alone, range by range for the same bits, is
         * no faster than two threads under load (SimpleRNN (2,100,16,128), a row a thread,
         * under two busy loops: 9,326 calls/s as threads, 7,437 backing off, 10,126 on one
         * thread's plan) */
        const int noted = call.par.mode != CRNN__SPLIT_BATCH;
        const long long t0 = noted ? crnn__now_ns() : 0;
        const long long pool_end = noted ? crnn__pool_ended_ns() : 0; /* (before this call's) */
        const int alone = noted && crnn__backoff_alone(&crnn__pool_backoff, t0);
        /* whether the plan's threads pay now (crnn__pace): the handle's one mutable part. The
         * other way: the row-split rival where there is one (crnn__plan_rival), else the
         * caller computing the same slices or chunks alone */
        crnn__pace *const pace = (crnn__pace *)&rnn->pace;
        const unsigned long long key =
            crnn__pace_key(batch, (int)call.par.mode, nthreads, rival > 0);
        const int pin = crnn__pace_pinned();
        int probe = 0;
        /* a units split's caller waits for a sleeping worker; the pipeline's goes on */
        const long long wake = call.par.mode == CRNN__SPLIT_UNITS ? crnn__wake_ns() : 0;
        const int paced = noted && !alone &&
                          (pin >= 0 ? pin : crnn__pace_alone(pace, key, timesteps, wake, &probe));
        const int rows = paced && rival;
        const int weight =
            noted && !alone && !paced ? crnn__backoff_clock_weight(&crnn__pool_backoff) : 0;
        const long long cpu0 = weight || probe ? crnn__thread_cpu_ns() : -1;
        long long stalled = 0, woke = 0, t1 = 0, cpu1 = -1, own;
        int clean = 0;
        if (rows) {
            /* the rival: row ranges, as a SPLIT_BATCH plan, the projections cut alike */
            call.par.mode = CRNN__SPLIT_BATCH;
            call.par.nslices = 1;
            call.par.barrier = NULL;
            call.par.mail = NULL;
            nthreads = rival;
        }
        ran = alone || (paced && !rows)
                  ? CRNN__RAN_NOTHING
                  : crnn__parallel_run(crnn__task, &call, nthreads,
                                       crnn__team_of(call.par.mode, call.par.blocks != NULL),
                                       &stalled, &woke);
        if (ran == CRNN__RAN_NOTHING && call.par.mode == CRNN__SPLIT_BATCH) {
            int i;
            for (i = 0; i < nthreads; ++i) crnn__task(&call, i, nthreads);
        } else if (ran <= 0) {
            /* timed alone (crnn__pace), backing off, the pool is busy, or the workers had no
             * core */
            call.par.barrier = NULL;
            status = crnn__run(&call, 0, batch, &call.par);
        }
        if (noted) {
            t1 = crnn__now_ns();
            cpu1 = cpu0 >= 0 ? crnn__thread_cpu_ns() : -1;
        }
        if (ran != CRNN__RAN_NOTHING && noted && !rows) {
            /* the threads' stalls; the whole call where a worker never joined (it ran alone).
             * (Row ranges back off from nothing, as a SPLIT_BATCH plan's.) */
            if (ran > 0) stalled += crnn__barrier_stalled_ns(&barrier); /* only there a barrier */
            if (ran == CRNN__RAN_SHORT || ran == CRNN__RAN_UNJOINED) stalled = t1 - t0;
            /* (a wait for a sleeping worker, the caller yielding its CPU to it, is no stall) */
            crnn__backoff_note(&crnn__pool_backoff, t1 - t0, stalled,
                               cpu1 >= 0 && weight ? cpu1 - cpu0 + woke : -1, weight, t1);
        }
        /* the pace counts clean calls only: alone by its choice, or every thread ran without a
         * stall; a probe with the caller on its CPU for all but 1/8 of the call. The whole call
         * but a wait for a sleeping worker, which crnn__pace weighs apart (and in which the
         * caller yields its CPU to the worker once) */
        own = t1 - t0 - woke;
        clean = ((paced && !rows) || (ran == CRNN__RAN && stalled == 0)) &&
                (!probe || cpu1 < 0 || 8 * (own - (cpu1 - cpu0)) <= own);
        if (clean && pin < 0) crnn__pace_note(pace, key, paced, own, timesteps);
        if (noted && pin < 0) crnn__pace_ended(pace, key, t0, t1, pool_end, own, clean);
    }
    free(raw);
    return status;
}

int crnn_rnn_forward(const crnn_rnn_t *rnn, int64_t batch, int64_t timesteps, const void *x,
                     const int64_t *lengths, const void *const *h0, void *y, void *const *h_n,
                     void *workspace, size_t workspace_size)
{
    return crnn_rnn_forward2(rnn, batch, timesteps, x, lengths, h0, NULL, y, h_n, NULL, workspace,
                             workspace_size);
}

int crnn_dense_forward(crnn_dtype dtype, int64_t rows, int64_t input_size, int64_t units,
                       const void *x, const void *kernel, const void *bias,
                       crnn_activation activation, void *y)
{
    if (dtype != CRNN_DTYPE_FLOAT32 && dtype != CRNN_DTYPE_FLOAT64) return CRNN_ERR_INVALID_ARGUMENT;
    if (rows < 0 || input_size < 1 || units < 1 || !crnn__valid_activation(activation))
        return CRNN_ERR_INVALID_ARGUMENT;
    if (input_size > CRNN__BLAS_INT_MAX || units > CRNN__BLAS_INT_MAX) return CRNN_ERR_TOO_LARGE;
    if (rows == 0) return CRNN_OK;
    if (!x || !kernel || !y) return CRNN_ERR_NULL_POINTER;
    if (dtype == CRNN_DTYPE_FLOAT32)
        crnn__dense_f32(rows, input_size, units, (const float *)x, (const float *)kernel,
                        (const float *)bias, activation, (float *)y);
    else
        crnn__dense_f64(rows, input_size, units, (const double *)x, (const double *)kernel,
                        (const double *)bias, activation, (double *)y);
    return CRNN_OK;
}

int crnn_set_blas_threads(int n)
{
    if (n < 1) return CRNN_ERR_INVALID_ARGUMENT;
    crnn__blas_set_threads(n);
    return CRNN_OK;
}

int crnn_get_blas_threads(void) { return crnn__blas_get_threads(); }
