/* onednn_rnn.c - oneDNN's RNN primitives (forward inference, float32) for bench/peers.py.
 *
 * Built and loaded by bench/onednn.py (ctypes), against the libdnnl.so of the onednn-cpu-gomp
 * wheel (oneDNN 3.x, GNU OpenMP). One layer, one direction (left to right), zero initial state,
 * every hidden state returned, batch-first input and output (format ntc):
 *
 *     cell 0  vanilla_rnn_forward, tanh       weights G = 1
 *     cell 1  lstm_forward                    G = 4, gates i, f, c~, o (Keras's i, f, c, o)
 *     cell 2  gru_forward                     G = 3, gates u, r, o (Keras's z, r, h), the reset
 *                                             applied before the recurrent product (Keras
 *                                             reset_after=False)
 *     cell 3  lbr_gru_forward                 G = 3 as above, the reset applied after the
 *                                             product; the bias has a 4th block, the candidate's
 *                                             recurrent bias (Keras reset_after=True, PyTorch)
 *
 * The caller gives the weights in Keras layout, kernel (D, G*H) and recurrent kernel (H, G*H):
 * that is oneDNN's ldigo with L = D(irections) = 1. The primitive is created with format_tag::any
 * for the weights and bias, and the caller's arrays are reordered once, at create time, into the
 * layout it chose (oneDNN packs the weights for its GEMMs there). The scratchpad is allocated
 * once too (scratchpad_mode_user), so bench_onednn_forward() runs the primitive and nothing else.
 *
 * Threads: oneDNN's OpenMP runtime is the libgomp.so.1 already loaded in the process (PyTorch's,
 * when torch was imported first); bench_onednn_set_threads() calls that runtime's
 * omp_set_num_threads, found with dlopen(RTLD_NOLOAD) so it can only be the loaded copy.
 *
 * Every function returns 0 on success, or a negative number with a message in err.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oneapi/dnnl/dnnl.h"

typedef struct {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnnl_primitive_t prim;
    dnnl_memory_t src, dst, weights_layer, weights_iter, bias, scratch;
} bench_onednn_rnn;

#define CHECK(call)                                                                  \
    do {                                                                             \
        dnnl_status_t s_ = (call);                                                   \
        if (s_ != dnnl_success) {                                                    \
            snprintf(err, errlen, "%s failed: dnnl status %d", #call, (int)s_);      \
            rc = -(int)s_ - 1;                                                       \
            goto done;                                                               \
        }                                                                            \
    } while (0)

void bench_onednn_free(bench_onednn_rnn *r)
{
    if (!r)
        return;
    dnnl_memory_t mems[] = {r->src, r->dst, r->weights_layer, r->weights_iter, r->bias,
                            r->scratch};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
        if (mems[i])
            dnnl_memory_destroy(mems[i]);
    if (r->prim)
        dnnl_primitive_destroy(r->prim);
    if (r->stream)
        dnnl_stream_destroy(r->stream);
    if (r->engine)
        dnnl_engine_destroy(r->engine);
    free(r);
}

/* The primitive's memory for argument `arg`, filled from the caller's data `user` laid out as
 * `user_md`: the caller's buffer copied when the layouts agree, else reordered into the layout
 * the primitive chose. */
static int weights_memory(const_dnnl_primitive_desc_t pd, int arg, const_dnnl_memory_desc_t user_md,
                          const float *user, bench_onednn_rnn *r, dnnl_memory_t *out, char *err,
                          size_t errlen)
{
    int rc = 0;
    dnnl_memory_t user_mem = NULL;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t reorder = NULL;
    const_dnnl_memory_desc_t md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
    if (!md) {
        snprintf(err, errlen, "no memory descriptor for argument %d", arg);
        return -100;
    }
    CHECK(dnnl_memory_create(out, md, r->engine, DNNL_MEMORY_ALLOCATE));
    CHECK(dnnl_memory_create(&user_mem, user_md, r->engine, (void *)user));
    CHECK(dnnl_reorder_primitive_desc_create(&rpd, user_md, r->engine, md, r->engine, NULL));
    CHECK(dnnl_primitive_create(&reorder, rpd));
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, user_mem}, {DNNL_ARG_TO, *out}};
    CHECK(dnnl_primitive_execute(reorder, r->stream, 2, args));
    CHECK(dnnl_stream_wait(r->stream));
done:
    if (reorder)
        dnnl_primitive_destroy(reorder);
    if (rpd)
        dnnl_primitive_desc_destroy(rpd);
    if (user_mem)
        dnnl_memory_destroy(user_mem);
    return rc;
}

/* cell: 0 vanilla (tanh), 1 LSTM, 2 GRU, 3 LBR GRU. kernel (D, G*H), recurrent (H, G*H), bias
 * (Gb*H) with Gb = G, or 4 for LBR GRU (u, r, o, then the candidate's recurrent bias); all
 * float32, C-contiguous, read only during this call. On success *out owns a handle and
 * impl_info (if not NULL) receives the implementation's name. */
int bench_onednn_create(int cell, int64_t B, int64_t T, int64_t D, int64_t H, const float *kernel,
                        const float *recurrent, const float *bias, bench_onednn_rnn **out,
                        char *impl_info, size_t impl_info_len, char *err, size_t errlen)
{
    static const int gates[] = {1, 4, 3, 3};
    int rc = 0;
    bench_onednn_rnn *r = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_memory_desc_t src_md = NULL, dst_md = NULL, wl_any = NULL, wi_any = NULL,
                       b_any = NULL, wl_user = NULL, wi_user = NULL, b_user = NULL;
    *out = NULL;
    if (cell < 0 || cell > 3) {
        snprintf(err, errlen, "cell: got %d, expected 0..3", cell);
        return -100;
    }
    const int64_t G = gates[cell], Gb = cell == 3 ? 4 : G;
    r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -101;
    }
    CHECK(dnnl_engine_create(&r->engine, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&r->stream, r->engine, dnnl_stream_default_flags));

    dnnl_dims_t src_dims = {T, B, D}, dst_dims = {T, B, H};
    dnnl_dims_t wl_dims = {1, 1, D, G, H}, wi_dims = {1, 1, H, G, H}, b_dims = {1, 1, Gb, H};
    CHECK(dnnl_memory_desc_create_with_tag(&src_md, 3, src_dims, dnnl_f32, dnnl_ntc));
    CHECK(dnnl_memory_desc_create_with_tag(&dst_md, 3, dst_dims, dnnl_f32, dnnl_ntc));
    CHECK(dnnl_memory_desc_create_with_tag(&wl_any, 5, wl_dims, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_create_with_tag(&wi_any, 5, wi_dims, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_create_with_tag(&b_any, 4, b_dims, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_create_with_tag(&wl_user, 5, wl_dims, dnnl_f32, dnnl_ldigo));
    CHECK(dnnl_memory_desc_create_with_tag(&wi_user, 5, wi_dims, dnnl_f32, dnnl_ldigo));
    CHECK(dnnl_memory_desc_create_with_tag(&b_user, 4, b_dims, dnnl_f32, dnnl_ldgo));
    CHECK(dnnl_primitive_attr_create(&attr));
    CHECK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));

    const dnnl_prop_kind_t prop = dnnl_forward_inference;
    const dnnl_rnn_direction_t dir = dnnl_unidirectional_left2right;
    switch (cell) {
    case 0:
        CHECK(dnnl_vanilla_rnn_forward_primitive_desc_create(
            &pd, r->engine, prop, dnnl_eltwise_tanh, dir, src_md, NULL, wl_any, wi_any, b_any,
            dst_md, NULL, dnnl_rnn_flags_undef, 0.0f, 0.0f, attr));
        break;
    case 1:
        CHECK(dnnl_lstm_forward_primitive_desc_create(
            &pd, r->engine, prop, dir, src_md, NULL, NULL, wl_any, wi_any, NULL, NULL, b_any,
            dst_md, NULL, NULL, dnnl_rnn_flags_undef, attr));
        break;
    case 2:
        CHECK(dnnl_gru_forward_primitive_desc_create(
            &pd, r->engine, prop, dir, src_md, NULL, wl_any, wi_any, b_any, dst_md, NULL,
            dnnl_rnn_flags_undef, attr));
        break;
    default:
        CHECK(dnnl_lbr_gru_forward_primitive_desc_create(
            &pd, r->engine, prop, dir, src_md, NULL, wl_any, wi_any, b_any, dst_md, NULL,
            dnnl_rnn_flags_undef, attr));
        break;
    }
    if (impl_info && impl_info_len) {
        const char *name = NULL;
        impl_info[0] = '\0';
        if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name) == dnnl_success
            && name)
            snprintf(impl_info, impl_info_len, "%s", name);
    }
    CHECK(dnnl_primitive_create(&r->prim, pd));

    rc = weights_memory(pd, DNNL_ARG_WEIGHTS_LAYER, wl_user, kernel, r, &r->weights_layer, err,
                        errlen);
    if (!rc)
        rc = weights_memory(pd, DNNL_ARG_WEIGHTS_ITER, wi_user, recurrent, r, &r->weights_iter,
                            err, errlen);
    if (!rc)
        rc = weights_memory(pd, DNNL_ARG_BIAS, b_user, bias, r, &r->bias, err, errlen);
    if (rc)
        goto done;
    CHECK(dnnl_memory_create(&r->scratch,
                             dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0),
                             r->engine, DNNL_MEMORY_ALLOCATE));
    /* src and dst take the caller's buffers at every call */
    CHECK(dnnl_memory_create(&r->src, src_md, r->engine, DNNL_MEMORY_NONE));
    CHECK(dnnl_memory_create(&r->dst, dst_md, r->engine, DNNL_MEMORY_NONE));
done:
    {
        dnnl_memory_desc_t mds[] = {src_md, dst_md, wl_any, wi_any, b_any, wl_user, wi_user,
                                    b_user};
        for (size_t i = 0; i < sizeof mds / sizeof mds[0]; i++)
            if (mds[i])
                dnnl_memory_desc_destroy(mds[i]);
    }
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (rc)
        bench_onednn_free(r);
    else
        *out = r;
    return rc;
}

/* y (B, T, H) = the layer's hidden states for x (B, T, D); both float32, C-contiguous. */
int bench_onednn_forward(bench_onednn_rnn *r, const float *x, float *y, char *err, size_t errlen)
{
    int rc = 0;
    CHECK(dnnl_memory_set_data_handle(r->src, (void *)x));
    CHECK(dnnl_memory_set_data_handle(r->dst, y));
    dnnl_exec_arg_t args[] = {
        {DNNL_ARG_SRC_LAYER, r->src},         {DNNL_ARG_WEIGHTS_LAYER, r->weights_layer},
        {DNNL_ARG_WEIGHTS_ITER, r->weights_iter}, {DNNL_ARG_BIAS, r->bias},
        {DNNL_ARG_DST_LAYER, r->dst},         {DNNL_ARG_SCRATCHPAD, r->scratch},
    };
    CHECK(dnnl_primitive_execute(r->prim, r->stream, (int)(sizeof args / sizeof args[0]), args));
    CHECK(dnnl_stream_wait(r->stream));
done:
    return rc;
}

typedef void (*omp_set_fn)(int);
typedef int (*omp_get_fn)(void);

/* The loaded OpenMP runtime's function `name` (the libgomp.so.1 libdnnl was bound to). */
static void *omp_symbol(const char *name)
{
    void *lib = dlopen("libgomp.so.1", RTLD_LAZY | RTLD_NOLOAD);
    void *fn = lib ? dlsym(lib, name) : NULL;
    if (lib)
        dlclose(lib); /* drops only the reference RTLD_NOLOAD took */
    return fn;
}

/* omp_set_num_threads(n) of the loaded libgomp; returns omp_get_max_threads() afterwards, or -1
 * when no libgomp.so.1 is loaded. */
int bench_onednn_set_threads(int n)
{
    static omp_set_fn set = NULL;
    static omp_get_fn get = NULL;
    if (!set || !get) {
        set = (omp_set_fn)omp_symbol("omp_set_num_threads");
        get = (omp_get_fn)omp_symbol("omp_get_max_threads");
        if (!set || !get)
            return -1;
    }
    set(n);
    return get();
}

/* The ISA oneDNN dispatches to (a dnnl_cpu_isa_t value). */
int bench_onednn_effective_isa(void)
{
    return (int)dnnl_get_effective_cpu_isa();
}

/* oneDNN's version as major * 10000 + minor * 100 + patch. */
int bench_onednn_version(void)
{
    const dnnl_version_t *v = dnnl_version();
    return v->major * 10000 + v->minor * 100 + v->patch;
}
