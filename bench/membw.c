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
 * membw_synced_ns(bytes, passes): a units split's step with nothing but its reads: two threads
 *   (pinned as above) each sum a buffer of their own of `bytes`, as membw_read_gbps does, and
 *   meet after every pass the way crnn's threads meet after every step (each stores its count
 *   of passes to a line of its own, then waits until the other's count is as high). The mean
 *   time (ns) of a pass with its meeting over `passes`, after 20 unmeasured; negative as
 *   membw_handoff_ns.
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

/* A buffer of n vectors (n a multiple of 8) to sum, filled; NULL if it cannot be had. */
static membw_vec *membw_buffer(size_t n)
{
    membw_vec *buf;
    size_t i;
    if (n == 0 || posix_memalign((void **)&buf, 64, n * sizeof(membw_vec)) != 0) return NULL;
    for (i = 0; i < n * (sizeof(membw_vec) / sizeof(float)); ++i)
        ((float *)buf)[i] = (float)(i % 7) * 1e-3f;
    return buf;
}

/* `passes` passes over buf, added into *acc; the 8 sums live in registers through them. */
static inline void membw_sum(const membw_vec *buf, size_t n, int passes, membw_vec *acc)
{
    membw_vec a0 = *acc, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
    size_t i;
    int pass;
    for (pass = 0; pass < passes; ++pass)
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
    *acc = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

double membw_read_gbps(size_t bytes, int reps)
{
    const size_t n = bytes / sizeof(membw_vec) / 8 * 8;
    membw_vec *buf = membw_buffer(n), acc = {0};
    volatile float sink;
    double best = 1e30;
    int r;
    if (!buf) return -1.0;
    for (r = 0; r < reps; ++r) {
        double t = membw_now();
        membw_sum(buf, n, 20, &acc);
        t = (membw_now() - t) / 20;
        if (t < best) best = t;
    }
    sink = acc[0];
    (void)sink;
    free(buf);
    return (double)(n * sizeof(membw_vec)) / best / 1e9;
}

typedef struct {
    _Alignas(64) volatile int64_t turn; /* even: the first thread's turn; odd: the second's */
    int64_t iters;
    double ns; /* the first thread's one-way time */
} membw_pingpong;

static void membw_pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set); /* best effort */
}

/* first(arg) on this thread, pinned to CPU 0, while second(arg) runs on a new thread (which pins
 * itself to CPU 1); this thread's CPUs restored after. 0, or -1 where the process has one CPU
 * (no second core to meet) or the second thread cannot start. */
static int membw_on_two_cpus(void (*first)(void *), void *(*second)(void *), void *arg)
{
    pthread_t th;
    cpu_set_t old;
    int pinned = pthread_getaffinity_np(pthread_self(), sizeof(old), &old) == 0;
    if (pinned && CPU_COUNT(&old) < 2) return -1;
    if (pthread_create(&th, NULL, second, arg) != 0) return -1;
    membw_pin(0);
    first(arg);
    pthread_join(th, NULL);
    if (pinned) (void)pthread_setaffinity_np(pthread_self(), sizeof(old), &old);
    return 0;
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

static void membw_first(void *arg)
{
    membw_pingpong *p = (membw_pingpong *)arg;
    int64_t i;
    double t = membw_now();
    for (i = 0; i < p->iters; ++i) {
        __atomic_store_n(&p->turn, 2 * i + 1, __ATOMIC_RELEASE);
        while (__atomic_load_n(&p->turn, __ATOMIC_ACQUIRE) != 2 * i + 2) {
        }
    }
    p->ns = (membw_now() - t) / (double)p->iters / 2 * 1e9;
}

double membw_handoff_ns(int iters)
{
    membw_pingpong p;
    memset(&p, 0, sizeof(p));
    p.iters = iters;
    return membw_on_two_cpus(membw_first, membw_second, &p) == 0 ? p.ns : -1.0;
}

/* membw_synced_ns's two threads: thread `tid`'s count of passes, a line pair of its own. */
typedef struct {
    _Alignas(128) volatile int64_t passes;
} membw_count;

typedef struct {
    membw_count count[2];
    size_t n;
    int passes;
    double ns; /* the first thread's mean */
    int failed;
} membw_synced;

static void membw_synced_run(membw_synced *s, int tid)
{
    const int warm = 20;
    membw_vec *buf = membw_buffer(s->n), acc = {0};
    volatile float sink;
    double t = 0;
    int64_t p;
    if (!buf) __atomic_store_n(&s->failed, 1, __ATOMIC_RELAXED);
    for (p = 1; p <= warm + s->passes; ++p) {
        if (p == warm + 1) t = membw_now();
        if (buf) membw_sum(buf, s->n, 1, &acc);
        __atomic_store_n(&s->count[tid].passes, p, __ATOMIC_RELEASE);
        while (__atomic_load_n(&s->count[!tid].passes, __ATOMIC_ACQUIRE) < p) {
        }
    }
    if (tid == 0) s->ns = (membw_now() - t) / s->passes * 1e9;
    sink = acc[0];
    (void)sink;
    free(buf);
}

static void membw_synced_first(void *arg) { membw_synced_run((membw_synced *)arg, 0); }

static void *membw_synced_second(void *arg)
{
    membw_pin(1);
    membw_synced_run((membw_synced *)arg, 1);
    return NULL;
}

double membw_synced_ns(size_t bytes, int passes)
{
    membw_synced s;
    if (passes < 1) return -1.0;
    memset(&s, 0, sizeof(s));
    s.n = bytes / sizeof(membw_vec) / 8 * 8;
    s.passes = passes;
    if (membw_on_two_cpus(membw_synced_first, membw_synced_second, &s) != 0) return -1.0;
    return s.failed ? -1.0 : s.ns;
}
