/* parallel.c - persistent worker threads for crnn_rnn_forward() (see parallel.h). */
#if defined(__linux__)
#  define _GNU_SOURCE /* sched_getcpu, sched_setaffinity */
#elif !defined(_WIN32)
#  define _POSIX_C_SOURCE 200809L
#endif
#ifndef _WIN32
#  include <pthread.h>
#  include <sched.h>
#  include <time.h>
#  include <unistd.h>
#endif
#include <stddef.h>

#include "parallel.h"

#define CRNN__POOL_MAX 64
/* Pause-loop iterations (a pause is ~10-140 cycles, by CPU) before an idle worker sleeps: a
 * stream of calls keeps the workers awake, an idle process stops burning CPU within ~100 us. */
#define CRNN__SPIN 2000
/* ... and before a thread waiting at a barrier or for the workers yields its CPU, which matters
 * when the machine has more runnable threads than cores. */
#define CRNN__SPIN_WAIT 4000
/* A wait at a barrier or for a chunk longer than this counts as a stall (the other thread had no
 * core): longer than any step's natural imbalance (a batch-1 step of a 4096-unit layer streams
 * 32 MB), far shorter than the time slices a thread without a core waits for. */
#define CRNN__STALL_NS 1000000LL

#if defined(__GNUC__)
#  define LOAD(p) __atomic_load_n(p, __ATOMIC_ACQUIRE)
#  define STORE(p, v) __atomic_store_n(p, v, __ATOMIC_RELEASE)
#  define FETCH_ADD(p, v) __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL)
#  if defined(__x86_64__) || defined(__i386__)
#    define CPU_RELAX() __builtin_ia32_pause()
#  else
#    define CPU_RELAX() ((void)0)
#  endif
#endif

#if defined(_WIN32) || !defined(__GNUC__)

int crnn__parallel_run(crnn__task_fn fn, void *ctx, int n)
{
    (void)fn; (void)ctx; (void)n;
    return 0; /* no pool on this platform: callers run serially */
}
int crnn__cpu_count(void) { return 1; }
void crnn__barrier_wait(crnn__barrier *b, int tid) { (void)b; (void)tid; }
int crnn__flag_claim(int *f)
{
    if (*f != 0) return 0;
    *f = 1;
    return 1;
}
void crnn__flag_done(int *f) { *f = 2; }
void crnn__flag_wait(crnn__barrier *b, int tid, int *f)
{
    (void)b; (void)tid; (void)f;
}

#else

static struct {
    pthread_mutex_t run_lock;   /* one parallel call at a time; others run serially */
    pthread_mutex_t lock;       /* guards sleeping / waking */
    pthread_cond_t wake;
    int nworkers;               /* started workers; worker w runs task w + 1 */
    int generation;             /* bumped for each call */
    int ntasks;
    int pending;                /* workers that have not yet finished the current call */
    crnn__task_fn fn;
    void *ctx;
    int caller_cpu;             /* the CPU the caller ran on when it woke the workers, or -1 */
    int start_generation[CRNN__POOL_MAX];
} crnn__pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                0, 0, 0, 0, NULL, NULL, -1, {0}};

static int crnn__current_cpu(void)
{
#if defined(__linux__)
    return sched_getcpu();
#else
    return -1;
#endif
}

/* A worker woken onto the caller's CPU cannot run until the caller stops spinning for it, and the
 * kernel may take milliseconds to move either of them to an idle CPU (seen on 2-vCPU VMs: every
 * woken worker landed on the caller's CPU, each step then waited for a time slice, and a 200 us
 * call took 10 ms). Such a worker moves itself: it leaves that CPU by narrowing its affinity,
 * then restores the affinity it had (the move stays). Workers on other CPUs do nothing. */
static void crnn__leave_cpu(int cpu)
{
#if defined(__linux__)
    cpu_set_t allowed, others;
    if (cpu < 0 || sched_getcpu() != cpu) return;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return;
    others = allowed;
    CPU_CLR(cpu, &others);
    if (CPU_COUNT(&others) == 0) return;
    if (sched_setaffinity(0, sizeof(others), &others) == 0)
        sched_setaffinity(0, sizeof(allowed), &allowed);
#else
    (void)cpu;
#endif
}

static void *crnn__worker(void *arg)
{
    const int w = (int)(size_t)arg;
    /* Created under run_lock before the call's generation bump: the current generation is
     * exactly the one before this worker's first task, whenever the thread gets to run. */
    int seen = crnn__pool.start_generation[w];
    for (;;) {
        int gen, spins = 0;
        while ((gen = LOAD(&crnn__pool.generation)) == seen && spins < CRNN__SPIN) {
            CPU_RELAX();
            ++spins;
        }
        if (gen == seen) {
            pthread_mutex_lock(&crnn__pool.lock);
            while ((gen = LOAD(&crnn__pool.generation)) == seen)
                pthread_cond_wait(&crnn__pool.wake, &crnn__pool.lock);
            pthread_mutex_unlock(&crnn__pool.lock);
        }
        seen = gen;
        /* Every worker acknowledges every call, taking part or not, so none can lag into the
         * next call while reading this one's fn / ctx / ntasks. */
        if (w + 1 < crnn__pool.ntasks) {
            crnn__leave_cpu(crnn__pool.caller_cpu);
            crnn__pool.fn(crnn__pool.ctx, w + 1, crnn__pool.ntasks);
        }
        FETCH_ADD(&crnn__pool.pending, -1);
    }
    return NULL;
}

/* A forked child has none of the parent's workers: start from an empty pool there. */
static void crnn__pool_atfork_child(void)
{
    pthread_mutex_init(&crnn__pool.run_lock, NULL);
    pthread_mutex_init(&crnn__pool.lock, NULL);
    pthread_cond_init(&crnn__pool.wake, NULL);
    crnn__pool.nworkers = 0;
    crnn__pool.pending = 0;
}

static pthread_once_t crnn__pool_once = PTHREAD_ONCE_INIT;
static void crnn__pool_init(void) { pthread_atfork(NULL, NULL, crnn__pool_atfork_child); }

/* sysconf(_SC_NPROCESSORS_ONLN) reads a /sys file on every call (microseconds): ask once. */
static int crnn__cpus = 0;

int crnn__cpu_count(void)
{
    int c = LOAD(&crnn__cpus);
    if (c == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c = n < 1 ? 1 : (n > CRNN__POOL_MAX + 1 ? CRNN__POOL_MAX + 1 : (int)n);
        STORE(&crnn__cpus, c);
    }
    return c;
}

int crnn__parallel_run(crnn__task_fn fn, void *ctx, int n)
{
    int spins = 0;
    if (n < 2 || n - 1 > CRNN__POOL_MAX) return 0;
    pthread_once(&crnn__pool_once, crnn__pool_init);
    if (pthread_mutex_trylock(&crnn__pool.run_lock) != 0) return 0;
    while (crnn__pool.nworkers < n - 1) {
        pthread_t tid;
        pthread_attr_t attr;
        int ok;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        crnn__pool.start_generation[crnn__pool.nworkers] = crnn__pool.generation;
        ok = pthread_create(&tid, &attr, crnn__worker, (void *)(size_t)crnn__pool.nworkers) == 0;
        pthread_attr_destroy(&attr);
        if (!ok) {
            pthread_mutex_unlock(&crnn__pool.run_lock);
            return 0;
        }
        ++crnn__pool.nworkers;
    }
    crnn__pool.fn = fn;
    crnn__pool.ctx = ctx;
    crnn__pool.ntasks = n;
    crnn__pool.caller_cpu = crnn__current_cpu();
    /* Workers 0..n-2 take part; any others acknowledge and go back to wait. */
    STORE(&crnn__pool.pending, crnn__pool.nworkers);
    pthread_mutex_lock(&crnn__pool.lock);
    STORE(&crnn__pool.generation, crnn__pool.generation + 1);
    pthread_cond_broadcast(&crnn__pool.wake);
    pthread_mutex_unlock(&crnn__pool.lock);

    fn(ctx, 0, n);
    while (LOAD(&crnn__pool.pending) > 0) {
        if (++spins < CRNN__SPIN_WAIT) CPU_RELAX();
        else sched_yield();
    }
    pthread_mutex_unlock(&crnn__pool.run_lock);
    return 1;
}

static long long crnn__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* One wait of thread `me`: spin, then yield the CPU; a stall counted past CRNN__STALL_NS. */
typedef struct {
    int spins, counted;
    long long start;
} crnn__waiter;

static void crnn__wait_round(crnn__barrier_slot *me, crnn__waiter *w)
{
    if (w->spins < CRNN__SPIN_WAIT) {
        ++w->spins;
        CPU_RELAX();
        return;
    }
    if (!w->start) {
        w->start = crnn__now_ns();
    } else if (!w->counted && crnn__now_ns() - w->start > CRNN__STALL_NS) {
        ++me->stalls;
        w->counted = 1;
    }
    sched_yield();
}

/* Arrive (release: what this thread wrote before is visible to every thread past the
 * barrier), then wait until every other thread has arrived as often. */
void crnn__barrier_wait(crnn__barrier *b, int tid)
{
    crnn__barrier_slot *me = &b->slot[tid];
    const long long gen = me->arrived + 1;
    crnn__waiter w = {0, 0, 0};
    int j;
    ++me->waits; /* before the arrival: the line may be another thread's right after it */
    STORE(&me->arrived, gen);
    for (j = 0; j < b->n; ++j)
        if (j != tid)
            while (LOAD(&b->slot[j].arrived) < gen) crnn__wait_round(me, &w);
}

int crnn__flag_claim(int *f)
{
    int expected = 0;
    if (LOAD(f) != 0) return 0;
    return __atomic_compare_exchange_n(f, &expected, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

void crnn__flag_done(int *f) { STORE(f, 2); }

void crnn__flag_wait(crnn__barrier *b, int tid, int *f)
{
    crnn__barrier_slot *me = &b->slot[tid];
    crnn__waiter w = {0, 0, 0};
    ++me->waits;
    while (LOAD(f) == 1) crnn__wait_round(me, &w); /* claimed: 1 until done (2) */
}

#endif

void crnn__barrier_init(crnn__barrier *b, int n)
{
    int i;
    b->n = n;
    for (i = 0; i < n; ++i) {
        b->slot[i].arrived = 0;
        b->slot[i].waits = 0;
        b->slot[i].stalls = 0;
    }
}

void crnn__barrier_counts(const crnn__barrier *b, int *waits, int *stalls)
{
    int i;
    *waits = *stalls = 0;
    for (i = 0; i < b->n; ++i) {
        *waits += b->slot[i].waits;
        *stalls += b->slot[i].stalls;
    }
}
