/* membw.c - the machine figures bench/bounds.py needs, measured by the benchmark, not assumed:
 *
 * membw_read_gbps(bytes, reps): one core's read bandwidth (GB/s) from a buffer of `bytes`
 *   (sized to sit in L1 or L2), summed with 8 independent accumulators of the machine's own
 *   vector width (wider vectors than its registers would live on the stack, and every add would
 *   wait on the one before through memory: 16 GB/s from L1 on an AVX2 core) so the adds never
 *   wait on each other; the best of `reps` timings of 20 passes.
 * membw_handoff_ns(iters): the one-way time (ns) to hand a cache line from one core to another
 *   and back, halved: what a step of a units split pays at least, since every thread reads the
 *   h_{t-1} the others wrote. Two threads ping-pong a counter, pinned to CPUs 0 and 1 where the
 *   OS allows; returns a negative value when the process has one CPU or the second thread
 *   cannot start.
 *
 * Built by bench/bounds.py with the C compiler Python was built with (-O2 -march=native). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__AVX512F__)
#define MEMBW_VBYTES 64
#elif defined(__AVX__)
#define MEMBW_VBYTES 32
#else
#define MEMBW_VBYTES 16
#endif
typedef float membw_vec __attribute__((vector_size(MEMBW_VBYTES)));

static double membw_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double membw_read_gbps(size_t bytes, int reps)
{
    const size_t n = bytes / sizeof(membw_vec) / 8 * 8;
    membw_vec *buf, a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0},
                    a7 = {0};
    volatile float sink;
    double best = 1e30;
    size_t i;
    int r, pass;
    if (n == 0 || posix_memalign((void **)&buf, 64, n * sizeof(membw_vec)) != 0) return -1.0;
    for (i = 0; i < n * (sizeof(membw_vec) / sizeof(float)); ++i)
        ((float *)buf)[i] = (float)(i % 7) * 1e-3f;
    for (r = 0; r < reps; ++r) {
        double t = membw_now();
        for (pass = 0; pass < 20; ++pass)
            for (i = 0; i < n; i += 8) {
                a0 += buf[i];
                a1 += buf[i + 1];
                a2 += buf[i + 2];
                a3 += buf[i + 3];
                a4 += buf[i + 4];
                a5 += buf[i + 5];
                a6 += buf[i + 6];
                a7 += buf[i + 7];
            }
        t = (membw_now() - t) / 20;
        if (t < best) best = t;
    }
    a0 += a1 + a2 + a3 + a4 + a5 + a6 + a7;
    sink = a0[0];
    (void)sink;
    free(buf);
    return (double)(n * sizeof(membw_vec)) / best / 1e9;
}

typedef struct {
    _Alignas(64) volatile int64_t turn; /* even: the first thread's turn; odd: the second's */
    int64_t iters;
} membw_pingpong;

static void membw_pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set); /* best effort */
}

static void *membw_second(void *arg)
{
    membw_pingpong *p = (membw_pingpong *)arg;
    int64_t i;
    membw_pin(1);
    for (i = 0; i < p->iters; ++i) {
        while (__atomic_load_n(&p->turn, __ATOMIC_ACQUIRE) != 2 * i + 1) {
        }
        __atomic_store_n(&p->turn, 2 * i + 2, __ATOMIC_RELEASE);
    }
    return NULL;
}

double membw_handoff_ns(int iters)
{
    membw_pingpong p;
    pthread_t th;
    cpu_set_t old;
    int64_t i;
    double t;
    int pinned = pthread_getaffinity_np(pthread_self(), sizeof(old), &old) == 0;
    if (pinned && CPU_COUNT(&old) < 2) return -1.0; /* one CPU: no second core to hand to */
    memset(&p, 0, sizeof(p));
    p.iters = iters;
    if (pthread_create(&th, NULL, membw_second, &p) != 0) return -1.0;
    membw_pin(0);
    t = membw_now();
    for (i = 0; i < iters; ++i) {
        __atomic_store_n(&p.turn, 2 * i + 1, __ATOMIC_RELEASE);
        while (__atomic_load_n(&p.turn, __ATOMIC_ACQUIRE) != 2 * i + 2) {
        }
    }
    t = membw_now() - t;
    pthread_join(th, NULL);
    if (pinned) (void)pthread_setaffinity_np(pthread_self(), sizeof(old), &old);
    return t / iters / 2 * 1e9;
}
