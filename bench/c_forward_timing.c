/* c_forward_timing.c - time crnn_rnn_forward() from C, without Python, for bench/overhead.py.
 *
 * Usage: c_forward_timing B T D H [threads [batches]]
 * One SimpleRNN layer (tanh, bias), all hidden states returned, zero initial state: the call
 * crnn/_core.pyx makes for handle.forward(x). Prints one line per mode,
 *     <mode> <median ns per call> <min ns per call>
 * over `batches` batches of calls (each batch ~2 ms or at least one call):
 *     lib_workspace   workspace = NULL (crnn allocates it inside the call), h_n = NULL: what the
 *                     Python wrapper does for return_sequences=True, return_state=False
 *     own_workspace   the caller passes a preallocated workspace
 *     with_state      workspace = NULL and the final state requested as well
 *     linear_act      as lib_workspace, on a handle with the linear activation (no tanh): the
 *                     difference to lib_workspace is what the activation costs
 * Build: see bench/overhead.py (links csrc's libcrnn.a and its BLAS). */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crnn.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float uniform(float lo, float hi)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return lo + (hi - lo) * (float)((rng_state >> 40) / (double)(1 << 24));
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int64_t B, T, D, H, n, i, k, reps, batches = 101, ts;
    int threads = 0, mode, st;
    size_t ws_size = 0;
    float *K, *R, *bias, *x, *y, *hn;
    void *ws = NULL, *hn_ptrs[1];
    crnn_rnn_t *rnn = NULL, *lin = NULL, *use;
    crnn_layer_desc desc;
    crnn_weights w;
    int64_t *samples;
    const char *names[4] = {"lib_workspace", "own_workspace", "with_state", "linear_act"};

    if (argc < 5) {
        fprintf(stderr, "usage: %s B T D H [threads [batches]]\n", argv[0]);
        return 2;
    }
    B = atoll(argv[1]); T = atoll(argv[2]); D = atoll(argv[3]); H = atoll(argv[4]);
    if (argc > 5) threads = atoi(argv[5]);
    if (argc > 6) batches = atoll(argv[6]);
    if (B < 1 || T < 1 || D < 1 || H < 1 || batches < 1) return 2;

    K = malloc(sizeof(float) * (size_t)(D * H));
    R = malloc(sizeof(float) * (size_t)(H * H));
    bias = malloc(sizeof(float) * (size_t)H);
    x = malloc(sizeof(float) * (size_t)(B * T * D));
    y = malloc(sizeof(float) * (size_t)(B * T * H));
    hn = malloc(sizeof(float) * (size_t)(B * H));
    samples = malloc(sizeof(int64_t) * (size_t)batches);
    if (!K || !R || !bias || !x || !y || !hn || !samples) return 3;
    for (i = 0; i < D * H; ++i) K[i] = uniform(-0.3f, 0.3f);
    for (i = 0; i < H * H; ++i) R[i] = uniform(-0.3f, 0.3f);
    for (i = 0; i < H; ++i) bias[i] = uniform(-0.3f, 0.3f);
    for (i = 0; i < B * T * D; ++i) x[i] = uniform(-1.0f, 1.0f);

    if (threads > 0 && (st = crnn_set_num_threads(threads)) != CRNN_OK) {
        fprintf(stderr, "crnn_set_num_threads: %s\n", crnn_status_string(st));
        return 4;
    }
    crnn_set_blas_threads(1); /* as the Python package does at import */
    desc.units = H;
    desc.activation = CRNN_ACTIVATION_TANH;
    desc.direction = CRNN_DIRECTION_FORWARD;
    w.kernel = K;
    w.recurrent_kernel = R;
    w.bias = bias;
    if ((st = crnn_rnn_create(&rnn, CRNN_DTYPE_FLOAT32, D, 1, &desc, &w)) != CRNN_OK ||
        (st = crnn_rnn_workspace_size(rnn, B, T, &ws_size)) != CRNN_OK) {
        fprintf(stderr, "create: %s\n", crnn_status_string(st));
        return 4;
    }
    desc.activation = CRNN_ACTIVATION_LINEAR;
    if ((st = crnn_rnn_create(&lin, CRNN_DTYPE_FLOAT32, D, 1, &desc, &w)) != CRNN_OK) {
        fprintf(stderr, "create: %s\n", crnn_status_string(st));
        return 4;
    }
    if (ws_size && posix_memalign(&ws, 64, ws_size)) return 3;
    hn_ptrs[0] = hn;

    for (mode = 0; mode < 4; ++mode) {
        void *wsp = mode == 1 ? ws : NULL;
        size_t wss = mode == 1 ? ws_size : 0;
        void *const *hnp = mode == 2 ? hn_ptrs : NULL;
        int64_t t0, one;
        use = mode == 3 ? lin : rnn;
        /* warm up and size a batch to ~2 ms */
        for (k = 0; k < 3; ++k) crnn_rnn_forward(use, B, T, x, NULL, NULL, y, hnp, wsp, wss);
        t0 = now_ns();
        st = crnn_rnn_forward(use, B, T, x, NULL, NULL, y, hnp, wsp, wss);
        one = now_ns() - t0;
        if (st != CRNN_OK) {
            fprintf(stderr, "forward: %s\n", crnn_status_string(st));
            return 4;
        }
        reps = one > 0 ? 2000000 / one : 1000;
        if (reps < 1) reps = 1;
        if (reps > 100000) reps = 100000;
        for (n = 0; n < batches; ++n) {
            t0 = now_ns();
            for (k = 0; k < reps; ++k)
                crnn_rnn_forward(use, B, T, x, NULL, NULL, y, hnp, wsp, wss);
            samples[n] = (now_ns() - t0) * 1000 / reps; /* picoseconds per call */
        }
        qsort(samples, (size_t)batches, sizeof(int64_t), cmp_i64);
        ts = samples[batches / 2];
        printf("%s %.1f %.1f\n", names[mode], ts / 1000.0, samples[0] / 1000.0);
    }
    printf("workspace_bytes %zu\n", ws_size);
    crnn_rnn_free(rnn);
    crnn_rnn_free(lin);
    free(ws); free(K); free(R); free(bias); free(x); free(y); free(hn); free(samples);
    return 0;
}
