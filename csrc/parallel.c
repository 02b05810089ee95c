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
#include <stdlib.h>
#include <string.h>

#include "parallel.h"

#define CRNN__POOL_MAX 64
/* Pause-loop iterations (a pause is ~10-140 cycles, by CPU) before a thread waiting at a barrier
 * or for the workers yields its CPU, which matters when the machine has more runnable threads
 * than cores. (An idle worker spins for a time instead: CRNN__SPIN_NS.) */
#define CRNN__SPIN_WAIT 4000

#if defined(__GNUC__)
#  define LOAD(p) __atomic_load_n(p, __ATOMIC_ACQUIRE)
#  define STORE(p, v) __atomic_store_n(p, v, __ATOMIC_RELEASE)
#  if defined(__x86_64__) || defined(__i386__)
#    define CPU_RELAX() __builtin_ia32_pause()
#  else
#    define CPU_RELAX() ((void)0)
#  endif
#endif

#if defined(_WIN32) || !defined(__GNUC__)

crnn__run_result crnn__parallel_run(crnn__task_fn fn, void *ctx, int n, crnn__team team,
                                    long long *stalled_ns, long long *woke_ns)
{
    (void)fn; (void)ctx; (void)n; (void)team;
    if (stalled_ns) *stalled_ns = 0;
    if (woke_ns) *woke_ns = 0;
    return CRNN__RAN_NOTHING; /* no pool on this platform: callers run serially */
}
long long crnn__wake_ns(void) { return 0; }
long long crnn__pool_ended_ns(void) { return 0; }
long long crnn__now_ns(void) { return 0; }
long long crnn__thread_cpu_ns(void) { return -1; }
int crnn__cpu_count(void) { return 1; }
crnn__cpus_from crnn__cpu_count_source(void) { return CRNN__CPUS_FROM_OS; }
int crnn__cpu_count_max(void) { return 1; }
int crnn__hold_workers = 0;
void crnn__barrier_wait(crnn__barrier *b, int tid) { (void)b; (void)tid; }
void crnn__barrier_arrive(crnn__barrier *b, int tid) { (void)b; (void)tid; }
void crnn__barrier_follow(crnn__barrier *b, int tid, int lead) { (void)b; (void)tid; (void)lead; }
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
void crnn__mail_take(crnn__waiter *w, const char *line, long long tag, void *values,
                     size_t bytes)
{
    (void)w; (void)tag;
    memcpy(values, line, bytes);
}
void crnn__mail_stall(crnn__barrier *b, int tid, const crnn__waiter *w)
{
    (void)b; (void)tid; (void)w;
}
int crnn__blocks_take(crnn__blocks *bs, int tid, int *next)
{
    int i;
    (void)tid; (void)next;
    for (i = 0; i < bs->n; ++i) /* one thread: every block in turn, to its end */
        if (!bs->block[i].done) return i;
    return -1;
}
void crnn__blocks_put(crnn__blocks *bs, int i, long long left)
{
    bs->block[i].left = left;
    bs->block[i].done = left == 0;
}

#else

/* A worker's part in call number g is the token g * 4 + one of these: the caller opens it before
 * waking the workers; the worker joins it (open -> joined) once it runs on its own CPU and marks
 * it done after its task; the caller closes it (open -> closed) when it stops waiting for that
 * worker. Both moves from open are compare-and-swaps, so exactly one of them happens. */
enum { CRNN__CLOSED = 0, CRNN__OPEN = 1, CRNN__JOINED = 2, CRNN__DONE = 3 };
/* A together call's verdict, g * 4 + one of these: the joined workers wait for it. */
enum { CRNN__UNDECIDED = 0, CRNN__GO = 1, CRNN__CALLED_OFF = 2 };

static struct {
    pthread_mutex_t run_lock;   /* one parallel call at a time; others run serially */
    pthread_mutex_t lock;       /* guards asleep / waking */
    pthread_cond_t wake;
    int nworkers;               /* started workers; worker w runs task w + 1 */
    long long generation;       /* bumped for each call */
    long long ended;            /* the generation of the last call that has returned */
    /* the current call's, set before its generation is published */
    int ntasks;
    crnn__team team;
    crnn__task_fn fn;
    void *ctx;
    int caller_cpu;             /* the CPU the caller ran on when it woke the workers, or -1 */
    long long verdict;
    long long wake_ns;          /* recent waits for sleeping workers to join (crnn__wake_ns) */
    long long end_ns;           /* when the last call returned (crnn__pool_ended_ns) */
    long long token[CRNN__POOL_MAX];
    long long start_generation[CRNN__POOL_MAX];
    int asleep[CRNN__POOL_MAX]; /* worker w waits on `wake` (guarded by `lock`) */
} crnn__pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                0, 0, 0, 0, CRNN__TEAM_TOGETHER, NULL, NULL, -1, 0, 0, 0, {0}, {0}, {0}};

int crnn__hold_workers = 0;

long long crnn__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

long long crnn__thread_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return -1;
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

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

static int crnn__cas(long long *p, long long expected, long long desired)
{
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_ACQ_REL,
                                       __ATOMIC_ACQUIRE);
}

/* Spin, then yield the CPU (which matters when the machine has more runnable threads than
 * cores); `spins` counts this wait's rounds. Spinning without the pause for the first 100 or
 * 2,000 rounds measured 0.995-1.006x on batch-1 units splits of two threads (2-vCPU Xeon, in
 * one process, calls interleaved: LSTM 128 and 256 units, GRU 128, SimpleRNN 256). */
static void crnn__pause(int *spins)
{
    if (++*spins < CRNN__SPIN_WAIT) CPU_RELAX();
    else sched_yield();
}

/* One round of a wait (crnn__pause), timed from its first yield. @return whether the wait has
 * been yielding for longer than `ns`. */
static int crnn__wait_past(crnn__waiter *w, long long ns)
{
    int past = 0;
    if (w->spins >= CRNN__SPIN_WAIT) {
        w->last = crnn__now_ns();
        if (!w->start) w->start = w->last;
        past = w->last - w->start > ns;
    }
    crnn__pause(&w->spins);
    return past;
}

/* The time a finished wait spent yielding if that makes it a stall (CRNN__STALL_NS), else 0. */
static long long crnn__stall_of(const crnn__waiter *w)
{
    return w->last - w->start > CRNN__STALL_NS ? w->last - w->start : 0;
}

static void *crnn__worker(void *arg)
{
    const int w = (int)(size_t)arg;
    /* Created under run_lock before the call's generation bump: the current generation is
     * exactly the one before this worker's first task, whenever the thread gets to run. */
    long long seen = crnn__pool.start_generation[w], idle;
    unsigned pauses;
    int took_part = 0;
    for (;;) {
        long long gen;
        int spins = 0;
        /* Having taken part in a call, stay awake until it ends (this worker's task may end long
         * before the caller's): the next call of a stream often follows at once. */
        while (took_part && LOAD(&crnn__pool.generation) == seen && LOAD(&crnn__pool.ended) != seen)
            crnn__pause(&spins);
        /* then CRNN__SPIN_NS more by the clock, read every 64 pauses (a pause takes 10-140
         * cycles, by CPU; 2^20 pauses at most, should the clock not move) */
        idle = crnn__now_ns();
        for (pauses = 1; (gen = LOAD(&crnn__pool.generation)) == seen; ++pauses) {
            if (!(pauses & 63u) && (crnn__now_ns() - idle > CRNN__SPIN_NS || pauses >= 1u << 20))
                break;
            CPU_RELAX();
        }
        if (gen == seen) {
            pthread_mutex_lock(&crnn__pool.lock);
            crnn__pool.asleep[w] = 1;
            while ((gen = LOAD(&crnn__pool.generation)) == seen)
                pthread_cond_wait(&crnn__pool.wake, &crnn__pool.lock);
            crnn__pool.asleep[w] = 0;
            pthread_mutex_unlock(&crnn__pool.lock);
        }
        seen = gen;
        took_part = 0;
        spins = 0;
        while (LOAD(&crnn__hold_workers)) crnn__pause(&spins);
        /* Not invited (a call of fewer tasks), or the call already went on without this worker
         * (or is over, and the generation read is stale): the token says so. Only a worker that
         * joins reads the call's fields; the caller does not return before it is done. */
        if (LOAD(&crnn__pool.token[w]) != gen * 4 + CRNN__OPEN) continue;
        /* before joining: a late worker may read the next call's CPU (a hint only) */
        crnn__leave_cpu(__atomic_load_n(&crnn__pool.caller_cpu, __ATOMIC_RELAXED));
        if (!crnn__cas(&crnn__pool.token[w], gen * 4 + CRNN__OPEN, gen * 4 + CRNN__JOINED))
            continue;
        /* More tasks than CPUs (a row split may have them): a worker that stayed awake after
         * its task would take turns on a core with the threads still computing. */
        took_part = crnn__pool.ntasks <= crnn__cpu_count();
        if (crnn__pool.team == CRNN__TEAM_TOGETHER) {
            long long v;
            spins = 0;
            while ((v = LOAD(&crnn__pool.verdict)) == gen * 4 + CRNN__UNDECIDED)
                crnn__pause(&spins);
            if (v == gen * 4 + CRNN__CALLED_OFF) {
                STORE(&crnn__pool.token[w], gen * 4 + CRNN__DONE);
                continue;
            }
        }
        crnn__pool.fn(crnn__pool.ctx, w + 1, crnn__pool.ntasks);
        STORE(&crnn__pool.token[w], gen * 4 + CRNN__DONE);
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
    memset(crnn__pool.asleep, 0, sizeof(crnn__pool.asleep));
}

static pthread_once_t crnn__pool_once = PTHREAD_ONCE_INIT;
static void crnn__pool_init(void) { pthread_atfork(NULL, NULL, crnn__pool_atfork_child); }

/* CRNN_CPUS as a count of CPUs: decimal digits only, 1 to CRNN__POOL_MAX + 1; else 0. */
static int crnn__parse_cpus(const char *s)
{
    long v = 0;
    if (!s || !*s) return 0;
    for (; *s; ++s) {
        if (*s < '0' || *s > '9') return 0;
        v = v * 10 + (*s - '0');
        if (v > CRNN__POOL_MAX + 1) return 0;
    }
    return (int)v;
}

/* Read once: CRNN_CPUS where usable, else the OS's online count (sysconf reads a /sys file on
 * every call, microseconds). */
static int crnn__cpus = 0, crnn__cpus_source = CRNN__CPUS_FROM_OS;

int crnn__cpu_count(void)
{
    int c = LOAD(&crnn__cpus);
    if (c == 0) {
        const char *want = getenv("CRNN_CPUS");
        const int asked = crnn__parse_cpus(want);
        if (asked > 0) {
            c = asked;
            STORE(&crnn__cpus_source, CRNN__CPUS_FROM_ENV);
        } else {
            long n = sysconf(_SC_NPROCESSORS_ONLN);
            c = n < 1 ? 1 : (n > CRNN__POOL_MAX + 1 ? CRNN__POOL_MAX + 1 : (int)n);
            STORE(&crnn__cpus_source, want && *want ? CRNN__CPUS_FROM_OS_ENV_IGNORED
                                                  : CRNN__CPUS_FROM_OS);
        }
        STORE(&crnn__cpus, c);
    }
    return c;
}

crnn__cpus_from crnn__cpu_count_source(void)
{
    (void)crnn__cpu_count();
    return (crnn__cpus_from)LOAD(&crnn__cpus_source);
}

int crnn__cpu_count_max(void) { return CRNN__POOL_MAX + 1; }

/* Whether workers 0..n-2 have all joined call `gen`. */
static int crnn__all_joined(long long gen, int n)
{
    int w;
    for (w = 0; w < n - 1; ++w)
        if (LOAD(&crnn__pool.token[w]) == gen * 4 + CRNN__OPEN) return 0;
    return 1;
}

/* A together call: wait up to CRNN__JOIN_NS for workers 0..n-2 to join, then close the tokens of
 * any that have not. @return whether all joined; *stalled_ns gets the wait's time if not. */
static int crnn__gather(long long gen, int n, long long *stalled_ns)
{
    crnn__waiter wait = {0, 0, 0};
    int w, all = 1;
    while (!crnn__all_joined(gen, n))
        if (crnn__wait_past(&wait, CRNN__JOIN_NS)) break;
    for (w = 0; w < n - 1; ++w)
        if (crnn__cas(&crnn__pool.token[w], gen * 4 + CRNN__OPEN, gen * 4 + CRNN__CLOSED)) all = 0;
    if (!all) *stalled_ns += wait.last - wait.start;
    return all;
}

/* After task 0: close the token of every worker that has not joined (running its task here for
 * an independent team), and wait for those that have to finish. @return CRNN__RAN_LATE if a
 * wait was a stall (its time added to *stalled_ns), else CRNN__RAN_SHORT if a worker never
 * joined, else CRNN__RAN. */
static crnn__run_result crnn__finish(crnn__task_fn fn, void *ctx, long long gen, int n,
                                     crnn__team team, long long *stalled_ns)
{
    int w, late = 0, alone = 0;
    for (w = 0; w < n - 1; ++w) {
        crnn__waiter wait = {0, 0, 0};
        long long stall;
        if (crnn__cas(&crnn__pool.token[w], gen * 4 + CRNN__OPEN, gen * 4 + CRNN__CLOSED)) {
            if (team == CRNN__TEAM_INDEPENDENT) fn(ctx, w + 1, n);
            alone = 1;
            continue;
        }
        /* joined (then done), or closed before (crnn__gather) */
        while (LOAD(&crnn__pool.token[w]) == gen * 4 + CRNN__JOINED)
            crnn__wait_past(&wait, CRNN__STALL_NS);
        stall = crnn__stall_of(&wait);
        *stalled_ns += stall;
        late |= stall > 0;
    }
    return late ? CRNN__RAN_LATE : alone ? CRNN__RAN_SHORT : CRNN__RAN;
}

long long crnn__wake_ns(void) { return __atomic_load_n(&crnn__pool.wake_ns, __ATOMIC_RELAXED); }
long long crnn__pool_ended_ns(void)
{
    return __atomic_load_n(&crnn__pool.end_ns, __ATOMIC_RELAXED);
}

crnn__run_result crnn__parallel_run(crnn__task_fn fn, void *ctx, int n, crnn__team team,
                                    long long *stalled_ns, long long *woke_ns)
{
    long long gen, stall = 0, t0 = 0;
    crnn__run_result res;
    int w, joined = 1, woke;
    if (stalled_ns) *stalled_ns = 0;
    if (woke_ns) *woke_ns = 0;
    if (n < 2 || n - 1 > CRNN__POOL_MAX) return CRNN__RAN_NOTHING;
    pthread_once(&crnn__pool_once, crnn__pool_init);
    if (pthread_mutex_trylock(&crnn__pool.run_lock) != 0) return CRNN__RAN_NOTHING;
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
            return CRNN__RAN_NOTHING;
        }
        ++crnn__pool.nworkers;
    }
    gen = crnn__pool.generation + 1;
    crnn__pool.fn = fn;
    crnn__pool.ctx = ctx;
    crnn__pool.ntasks = n;
    crnn__pool.team = team;
    __atomic_store_n(&crnn__pool.caller_cpu, crnn__current_cpu(), __ATOMIC_RELAXED);
    STORE(&crnn__pool.verdict, gen * 4 + CRNN__UNDECIDED);
    for (w = 0; w < n - 1; ++w) STORE(&crnn__pool.token[w], gen * 4 + CRNN__OPEN);
    pthread_mutex_lock(&crnn__pool.lock);
    for (w = 0, woke = 0; w < n - 1; ++w) woke |= crnn__pool.asleep[w]; /* of those invited */
    if (woke && team == CRNN__TEAM_TOGETHER) t0 = crnn__now_ns();
    STORE(&crnn__pool.generation, gen);
    pthread_cond_broadcast(&crnn__pool.wake);
    pthread_mutex_unlock(&crnn__pool.lock);
    /* A woken worker often lands on this CPU (2-vCPU VMs: nearly always), where it cannot run,
     * and so cannot move itself elsewhere (crnn__leave_cpu), until this thread lets it: once. */
    if (woke) sched_yield();

    if (team == CRNN__TEAM_TOGETHER) {
        joined = crnn__gather(gen, n, &stall);
        STORE(&crnn__pool.verdict, gen * 4 + (joined ? CRNN__GO : CRNN__CALLED_OFF));
        if (woke && joined) {
            /* the wait for a sleeping worker, averaged with weight 1/4 (under run_lock), each
             * counting as at most CRNN__JOIN_NS (a preemption inside it is not a wake) */
            const long long wait = crnn__now_ns() - t0, old = crnn__pool.wake_ns;
            const long long w1 = wait < CRNN__JOIN_NS ? wait : CRNN__JOIN_NS;
            __atomic_store_n(&crnn__pool.wake_ns, old ? old + (w1 - old) / 4 : w1,
                             __ATOMIC_RELAXED);
            if (woke_ns) *woke_ns = wait;
        }
    }
    if (joined) fn(ctx, 0, n);
    res = crnn__finish(fn, ctx, gen, n, team, &stall);
    __atomic_store_n(&crnn__pool.end_ns, crnn__now_ns(), __ATOMIC_RELAXED);
    STORE(&crnn__pool.ended, gen);
    pthread_mutex_unlock(&crnn__pool.run_lock);
    if (stalled_ns) *stalled_ns = stall;
    return joined ? res : CRNN__RAN_UNJOINED;
}

/* Arrive (release: what this thread wrote before is visible to every thread past the
 * barrier), then wait until every other thread has arrived as often. */
void crnn__barrier_wait(crnn__barrier *b, int tid)
{
    crnn__barrier_slot *me = &b->slot[tid];
    const long long gen = me->arrived + 1;
    crnn__waiter w = {0, 0, 0};
    long long stall;
    int j;
    STORE(&me->arrived, gen);
    for (j = 0; j < b->n; ++j)
        if (j != tid)
            while (LOAD(&b->slot[j].arrived) < gen) crnn__wait_past(&w, CRNN__STALL_NS);
    stall = crnn__stall_of(&w);
    if (stall) me->stalled_ns += stall; /* only then: others read this line at every barrier */
}

void crnn__barrier_arrive(crnn__barrier *b, int tid)
{
    crnn__barrier_slot *me = &b->slot[tid];
    STORE(&me->arrived, me->arrived + 1);
}

void crnn__barrier_follow(crnn__barrier *b, int tid, int lead)
{
    crnn__barrier_slot *me = &b->slot[tid];
    const long long gen = me->arrived + 1;
    int spins = 0;
    STORE(&me->arrived, gen);
    while (LOAD(&b->slot[lead].arrived) < gen) crnn__pause(&spins);
}

int crnn__flag_claim(int *f)
{
    int expected = 0;
    if (LOAD(f) != 0) return 0;
    return __atomic_compare_exchange_n(f, &expected, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

void crnn__flag_done(int *f) { STORE(f, 2); }

void crnn__mail_take(crnn__waiter *w, const char *line, long long tag, void *values,
                     size_t bytes)
{
    const long long *t = (const long long *)(line + CRNN__MAIL_TAG);
    while (LOAD(t) != tag) crnn__wait_past(w, CRNN__STALL_NS);
    memcpy(values, line, bytes);
}

void crnn__mail_stall(crnn__barrier *b, int tid, const crnn__waiter *w)
{
    const long long stall = crnn__stall_of(w);
    if (stall) b->slot[tid].stalled_ns += stall;
}

/* Claim block i if it is free and unfinished. */
static int crnn__block_claim(crnn__block *b)
{
    int expected = 0;
    if (LOAD(&b->done) || LOAD(&b->owner)) return 0;
    if (!__atomic_compare_exchange_n(&b->owner, &expected, 1, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_RELAXED))
        return 0;
    if (LOAD(&b->done)) { /* finished between the two loads and the claim */
        STORE(&b->owner, 0);
        return 0;
    }
    return 1;
}

int crnn__blocks_take(crnn__blocks *bs, int tid, int *next)
{
    const int own0 = bs->n * tid / bs->nt, own1 = bs->n * (tid + 1) / bs->nt, nown = own1 - own0;
    int spins = 0;
    for (;;) {
        int k, i, best = -1, open = 0;
        long long most = 0;
        for (k = 0; k < nown; ++k) {
            i = own0 + (*next - own0 + k) % nown;
            if (crnn__block_claim(&bs->block[i])) {
                *next = i + 1 < own1 ? i + 1 : own0;
                return i;
            }
        }
        for (i = 0; i < bs->n; ++i) {
            crnn__block *b = &bs->block[i];
            long long left;
            if (LOAD(&b->done)) continue;
            open = 1;
            if (LOAD(&b->owner)) continue;
            left = __atomic_load_n(&b->left, __ATOMIC_RELAXED);
            if (left > most) most = left, best = i;
        }
        if (!open) return -1;
        if (best >= 0 && crnn__block_claim(&bs->block[best])) return best;
        crnn__pause(&spins); /* every unfinished block is being run: wait for a chunk's end */
    }
}

void crnn__blocks_put(crnn__blocks *bs, int i, long long left)
{
    crnn__block *b = &bs->block[i];
    __atomic_store_n(&b->left, left, __ATOMIC_RELAXED);
    if (left == 0) STORE(&b->done, 1);
    STORE(&b->owner, 0);
}

void crnn__flag_wait(crnn__barrier *b, int tid, int *f)
{
    crnn__barrier_slot *me = &b->slot[tid];
    crnn__waiter w = {0, 0, 0};
    long long stall;
    while (LOAD(f) == 1) crnn__wait_past(&w, CRNN__STALL_NS); /* claimed: 1 until done */
    stall = crnn__stall_of(&w);
    if (stall) me->stalled_ns += stall;
}

#endif

void crnn__mail_clear(crnn__mailbox *m, int n)
{
    memset(m->line, 0, (size_t)n * sizeof m->line[0]);
}

void crnn__mail_post(char *line, const void *values, size_t bytes, long long tag)
{
    memcpy(line, values, bytes);
#if defined(__GNUC__)
    __atomic_store_n((long long *)(line + CRNN__MAIL_TAG), tag, __ATOMIC_RELEASE);
#else
    *(volatile long long *)(line + CRNN__MAIL_TAG) = tag;
#endif
}

void crnn__barrier_init(crnn__barrier *b, int n)
{
    int i;
    b->n = n;
    for (i = 0; i < n; ++i) {
        b->slot[i].arrived = 0;
        b->slot[i].stalled_ns = 0;
    }
}

void crnn__blocks_init(crnn__blocks *bs, int n, int nt, long long steps)
{
    int i;
    bs->n = n;
    bs->nt = nt;
    bs->steps = steps;
    for (i = 0; i < n; ++i) {
        bs->block[i].owner = 0;
        bs->block[i].done = 0;
        bs->block[i].left = steps;
        bs->block[i].fresh = 1;
    }
}

long long crnn__barrier_stalled_ns(const crnn__barrier *b)
{
    long long ns = 0;
    int i;
    for (i = 0; i < b->n; ++i) ns += b->slot[i].stalled_ns;
    return ns;
}

#if defined(__GNUC__)
#  define RELAXED_LOAD(p) __atomic_load_n(p, __ATOMIC_RELAXED)
#  define RELAXED_STORE(p, v) __atomic_store_n(p, v, __ATOMIC_RELAXED)
#else /* no pool there (crnn__parallel_run runs nothing): no concurrent callers of these */
#  define RELAXED_LOAD(p) (*(p))
#  define RELAXED_STORE(p, v) (*(p) = (v))
#endif

int crnn__backoff_alone(const crnn__backoff *b, long long now)
{
    return now < RELAXED_LOAD(&b->until_ns);
}

int crnn__backoff_clock_weight(crnn__backoff *b)
{
    unsigned k;
    if (RELAXED_LOAD(&b->recent_ns) >= CRNN__CPU_CLOCK_MIN_NS * CRNN__BACKOFF_WINDOW) return 1;
#if defined(__GNUC__)
    k = __atomic_fetch_add(&b->clocked, 1u, __ATOMIC_RELAXED);
#else
    k = b->clocked++;
#endif
    return k % CRNN__CPU_CLOCK_EVERY ? 0 : CRNN__CPU_CLOCK_EVERY;
}

void crnn__backoff_note(crnn__backoff *b, long long ns, long long stalled_ns, long long cpu_ns,
                        int weight, long long now)
{
    long long t = RELAXED_LOAD(&b->recent_ns), st = RELAXED_LOAD(&b->recent_stall_ns);
    if (cpu_ns >= 0 && weight > 0) {
        /* the time the caller did not run: this call's own where it was long */
        const long long off = (ns < CRNN__CPU_CLOCK_MIN_NS ? weight : 1) * (ns - cpu_ns);
        if (off > stalled_ns) stalled_ns = off;
    }
    t += ns - t / CRNN__BACKOFF_WINDOW;
    st += stalled_ns - st / CRNN__BACKOFF_WINDOW;
    if (3 * st > t) {
        t = st = 0;
        RELAXED_STORE(&b->until_ns, now + (ns < CRNN__BACKOFF_MAX_NS / CRNN__BACKOFF_PAYBACK
                                               ? CRNN__BACKOFF_PAYBACK * ns
                                               : CRNN__BACKOFF_MAX_NS));
    }
    RELAXED_STORE(&b->recent_ns, t);
    RELAXED_STORE(&b->recent_stall_ns, st);
}

unsigned long long crnn__pace_key(long long batch, int mode, int nthreads, int rival)
{
    /* unsigned: a huge batch wraps (keys may then collide: estimates only), never overflows */
    return (((unsigned long long)batch * 16u + (rival ? 8u : 0u) + (unsigned)mode) << 8) +
           (unsigned)nthreads + 1u;
}

void crnn__pace_key_parts(unsigned long long key, long long *batch, int *mode, int *nthreads,
                          int *rival)
{
    key -= 1u;
    *batch = (long long)(key >> 12);
    *rival = (int)((key >> 11) & 1u);
    *mode = (int)((key >> 8) & 7u);
    *nthreads = (int)(key & 255u);
}

static int crnn__pace_pin_way = -1;

void crnn__pace_pin(int way)
{
    RELAXED_STORE(&crnn__pace_pin_way, way == 0 || way == 1 ? way : -1);
}

int crnn__pace_pinned(void) { return RELAXED_LOAD(&crnn__pace_pin_way); }

static int crnn__pace_setting = -1; /* 1 adapt, 0 not; 2 adapt, the variable ignored */

static int crnn__pace_setting_read(void)
{
    int v = RELAXED_LOAD(&crnn__pace_setting);
    if (v < 0) {
        const char *want = getenv("CRNN_ADAPT_THREADS");
        if (!want || !*want || !strcmp(want, "1")) v = 1;
        else if (!strcmp(want, "0")) v = 0;
        else v = 2;
        RELAXED_STORE(&crnn__pace_setting, v);
    }
    return v;
}

int crnn__pace_enabled(void) { return crnn__pace_setting_read() != 0; }

int crnn__pace_env_ignored(void) { return crnn__pace_setting_read() == 2; }

int crnn__pace_alone(crnn__pace *p, unsigned long long key, long long timesteps,
                     long long wake_ns, int *probe)
{
    int way, calls;
    long long taken, other, t, a;
    double wait;
    *probe = 0;
    if (!crnn__pace_enabled()) return 0;
    if (RELAXED_LOAD(&p->key) != key) {
        RELAXED_STORE(&p->ns[0], 0LL);
        RELAXED_STORE(&p->ns[1], 0LL);
        RELAXED_STORE(&p->spent_ns, 0LL);
        RELAXED_STORE(&p->ended_ns, 0LL);
        RELAXED_STORE(&p->apart, 0);
        RELAXED_STORE(&p->calls, 0);
        RELAXED_STORE(&p->probing, 0);
        RELAXED_STORE(&p->refused, 0);
        RELAXED_STORE(&p->alone, 0);
        RELAXED_STORE(&p->key, key);
        return 0;
    }
    if (RELAXED_LOAD(&p->probing)) { /* the probe's timed call, the way its warm one ran */
        *probe = 1;
        return RELAXED_LOAD(&p->probed);
    }
    /* the way taken: the faster per call, the threads paying the wait for a sleeping worker as
     * often as recent calls came late enough to find it asleep */
    t = RELAXED_LOAD(&p->ns[0]);
    a = RELAXED_LOAD(&p->ns[1]);
    way = t && a &&
          (double)a * (double)timesteps <
              (double)t * (double)timesteps +
                  (double)RELAXED_LOAD(&p->apart) / CRNN__PACE_ONE * (double)wake_ns;
    RELAXED_STORE(&p->alone, way);
    calls = RELAXED_LOAD(&p->calls);
    taken = way ? a : t;
    other = way ? t : a;
    if (calls < CRNN__PACE_MIN_CALLS) *probe = 0;
    else if (!other) *probe = 1;
    else {
        /* a probe costs about 2 * other * timesteps: at most 2/SHARE of the calls' time since
         * the last (not of the clock's: calls far apart would probe at every other call), and
         * comes at least every CRNN__PACE_MAX_CALLS calls (the other way's time may be one of a
         * few slow calls, a stream's first ones after a pause) */
        wait = (double)CRNN__PACE_SHARE * (double)other * (double)timesteps;
        if (2 * other > 3 * taken) wait *= 4;
        *probe = (double)RELAXED_LOAD(&p->spent_ns) >= wait || calls >= CRNN__PACE_MAX_CALLS;
    }
    return *probe ? !way : way;
}

void crnn__pace_note(crnn__pace *p, unsigned long long key, int alone, long long call_ns,
                     long long timesteps)
{
    long long old, ns_per_step = call_ns / (timesteps > 0 ? timesteps : 1);
    alone = alone ? 1 : 0;
    if (RELAXED_LOAD(&p->key) != key) return; /* another shape took over meanwhile */
    if (ns_per_step < 1) ns_per_step = 1;     /* 0 is "not timed" */
    if (RELAXED_LOAD(&p->probing) && alone == RELAXED_LOAD(&p->probed)) {
        /* the probe's timed call */
        RELAXED_STORE(&p->probing, 0);
        RELAXED_STORE(&p->ns[alone], ns_per_step);
        RELAXED_STORE(&p->spent_ns, 0LL);
        RELAXED_STORE(&p->calls, 0);
        return;
    }
    if (alone != RELAXED_LOAD(&p->alone)) { /* a probe's first call: it only warms the caches */
        RELAXED_STORE(&p->probed, alone);
        RELAXED_STORE(&p->refused, 0);
        RELAXED_STORE(&p->probing, 1);
        return;
    }
    old = RELAXED_LOAD(&p->ns[alone]);
    /* one slow call (an interrupt, a page fault) moves the average by 1/8 at most */
    if (old && ns_per_step > old + old / 2) ns_per_step = old + old / 2;
    RELAXED_STORE(&p->ns[alone], old ? old + (ns_per_step - old) / CRNN__PACE_WEIGHT : ns_per_step);
}

void crnn__pace_ended(crnn__pace *p, unsigned long long key, long long start, long long end,
                      long long since, long long call_ns, int noted)
{
    long long last, far, step;
    int calls;
    if (RELAXED_LOAD(&p->key) != key) return;
    /* came late enough to find a worker asleep: CRNN__SPIN_NS after both this handle's last
     * call and the pool's (whoever kept the worker awake) */
    last = RELAXED_LOAD(&p->ended_ns);
    if (since > last) last = since;
    if (last) {
        const long long to = start - last > CRNN__SPIN_NS ? CRNN__PACE_ONE : 0;
        far = RELAXED_LOAD(&p->apart);
        step = (to - far) / CRNN__PACE_WEIGHT;
        if (!step && far != to) step = to > far ? 1 : -1; /* on to 0 or CRNN__PACE_ONE */
        RELAXED_STORE(&p->apart, (int)(far + step));
    }
    RELAXED_STORE(&p->ended_ns, end);
    /* every call counts towards the next probe, clean or not (a way that never runs clean is
     * still weighed against the other now and then) */
    if (call_ns > 0) RELAXED_STORE(&p->spent_ns, RELAXED_LOAD(&p->spent_ns) + call_ns);
    calls = RELAXED_LOAD(&p->calls);
    if (!RELAXED_LOAD(&p->probing) && calls < CRNN__PACE_MIN_CALLS * 1024)
        RELAXED_STORE(&p->calls, calls + 1);
    /* a probe whose timed call keeps being dropped (not clean) is given up */
    if (RELAXED_LOAD(&p->probing) && !noted) {
        const int r = RELAXED_LOAD(&p->refused) + 1;
        RELAXED_STORE(&p->refused, r);
        if (r >= CRNN__PACE_REFUSED) {
            RELAXED_STORE(&p->probing, 0);
            RELAXED_STORE(&p->spent_ns, 0LL);
            RELAXED_STORE(&p->calls, 0);
        }
    }
}

void crnn__pace_read(const crnn__pace *p, crnn__pace *out)
{
    do {
        out->key = RELAXED_LOAD(&p->key);
        out->ns[0] = RELAXED_LOAD(&p->ns[0]);
        out->ns[1] = RELAXED_LOAD(&p->ns[1]);
        out->spent_ns = RELAXED_LOAD(&p->spent_ns);
        out->ended_ns = RELAXED_LOAD(&p->ended_ns);
        out->apart = RELAXED_LOAD(&p->apart);
        out->probed = RELAXED_LOAD(&p->probed);
        out->refused = RELAXED_LOAD(&p->refused);
        out->calls = RELAXED_LOAD(&p->calls);
        out->probing = RELAXED_LOAD(&p->probing);
        out->alone = RELAXED_LOAD(&p->alone);
    } while (RELAXED_LOAD(&p->key) != out->key);
}
