/* test_pool.c - crnn's thread pool (csrc/parallel.c): how each kind of team treats a worker that
 * has not joined a call, and that a forward call computes the same bits whether its workers join
 * or not; and the shares a units split gives its threads (crnn__slice_edges, internal.h). Built
 * from the core's sources with its internal headers (make -C csrc test-pool), since it drives
 * crnn__parallel_run() and holds the workers back with crnn__hold_workers. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu.h"
#include "crnn.h"
#include "internal.h"
#include "parallel.h"

static int passed, failed;

static void check(int ok, const char *what)
{
    if (ok) ++passed;
    else { ++failed; printf("FAIL: %s\n", what); }
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

#define MAXN 4
/* What the tasks of one call did: how often each ran, on which thread; `meet` makes them meet at
 * a barrier (together teams only: the others may not run at the same time). */
typedef struct {
    int runs[MAXN];
    pthread_t who[MAXN];
    int meet;
    crnn__barrier barrier;
} record;

static void task(void *ctx, int tid, int n)
{
    record *r = (record *)ctx;
    int i;
    __atomic_add_fetch(&r->runs[tid], 1, __ATOMIC_RELAXED);
    r->who[tid] = pthread_self();
    if (r->meet)
        for (i = 0; i < 3; ++i) crnn__barrier_wait(&r->barrier, tid);
    (void)n;
}

/* the caller's stalls in the last run() (crnn__parallel_run's *stalled_ns) */
static long long last_stalled;

static crnn__run_result run(record *r, int n, crnn__team team)
{
    memset(r, 0, sizeof(*r));
    r->meet = team == CRNN__TEAM_TOGETHER;
    crnn__barrier_init(&r->barrier, n);
    return crnn__parallel_run(task, r, n, team, &last_stalled, NULL);
}

/* The tasks ran (some on their workers or not). */
static int ran(crnn__run_result res)
{
    return res == CRNN__RAN || res == CRNN__RAN_LATE || res == CRNN__RAN_SHORT;
}

static int runs_are(const record *r, int n, const int *want)
{
    int i;
    for (i = 0; i < n; ++i)
        if (__atomic_load_n(&r->runs[i], __ATOMIC_RELAXED) != want[i]) return 0;
    return 1;
}

static const int ONCE[MAXN] = {1, 1, 1, 1}, NONE[MAXN] = {0, 0, 0, 0};
static const int CALLER_ONLY[MAXN] = {1, 0, 0, 0};

/* Free workers: every kind of team runs each task once (a helper at most once; a together team
 * all at once, or, if its workers could not join in time, not at all). */
static void test_free_workers(void)
{
    static record r;
    int n, k, together_ran = 0;
    for (n = 2; n <= MAXN; ++n) {
        crnn__run_result res = run(&r, n, CRNN__TEAM_INDEPENDENT);
        check(ran(res), "independent: ran");
        check(runs_are(&r, n, ONCE), "independent: every task once");
        res = run(&r, n, CRNN__TEAM_HELPERS);
        check(ran(res), "helpers: ran");
        check(r.runs[0] == 1, "helpers: task 0 once");
        for (k = 1; k < n; ++k) check(r.runs[k] <= 1, "helpers: a helper at most once");
        for (k = 0; k < 50; ++k) {
            res = run(&r, n, CRNN__TEAM_TOGETHER);
            if (res == CRNN__RAN || res == CRNN__RAN_LATE) { /* never short: all joined */
                check(runs_are(&r, n, ONCE), "together: every task once, meeting at barriers");
                ++together_ran;
                break;
            }
            check(res == CRNN__RAN_UNJOINED && runs_are(&r, n, NONE),
                  "together: all tasks or none");
        }
    }
    check(together_ran == MAXN - 1, "together: the workers joined within 50 tries");
}

/* Held workers (none joins): an independent team's tasks all run on the caller, a helpers team
 * runs task 0 only, a together team runs nothing after waiting CRNN__JOIN_NS for them. Once let
 * go, the workers find those calls over and run none of their tasks late. */
static void test_held_workers(void)
{
    static record ind, help, tog;
    crnn__run_result res;
    long long t0, dt;
    int k, ok = 0;
    __atomic_store_n(&crnn__hold_workers, 1, __ATOMIC_RELEASE);
    res = run(&ind, 3, CRNN__TEAM_INDEPENDENT);
    check(res == CRNN__RAN_SHORT, "held, independent: ran, the workers left out");
    check(last_stalled == 0, "held, independent: no stall (the caller never waited)");
    check(runs_are(&ind, 3, ONCE), "held, independent: every task once");
    check(pthread_equal(ind.who[1], pthread_self()) && pthread_equal(ind.who[2], pthread_self()),
          "held, independent: the late workers' tasks ran on the caller");
    res = run(&help, 3, CRNN__TEAM_HELPERS);
    check(res == CRNN__RAN_SHORT, "held, helpers: ran, the workers left out");
    check(runs_are(&help, 3, CALLER_ONLY), "held, helpers: task 0 only");
    t0 = now_ns();
    res = run(&tog, 2, CRNN__TEAM_TOGETHER);
    dt = now_ns() - t0;
    check(res == CRNN__RAN_UNJOINED, "held, together: called off");
    check(runs_are(&tog, 2, NONE), "held, together: nothing ran");
    check(dt >= CRNN__JOIN_NS && dt < 2000 * CRNN__JOIN_NS,
          "held, together: waited CRNN__JOIN_NS for the workers, then returned");
    check(last_stalled >= CRNN__JOIN_NS && last_stalled <= dt,
          "held, together: the wait for the workers reported as a stall");
    __atomic_store_n(&crnn__hold_workers, 0, __ATOMIC_RELEASE);
    sleep_ms(50);
    check(runs_are(&ind, 3, ONCE) && runs_are(&help, 3, CALLER_ONLY) && runs_are(&tog, 2, NONE),
          "let go: no worker ran a task of a call that went on without it");
    for (k = 0; k < 50 && !ok; ++k) {
        res = run(&tog, 2, CRNN__TEAM_TOGETHER);
        ok = (res == CRNN__RAN || res == CRNN__RAN_LATE) && runs_are(&tog, 2, ONCE);
    }
    check(ok, "let go: the workers join again");
}

/* A row split's blocks (crnn__blocks): every block runs its chunks one after another, never on
 * two threads at once, whoever takes it; a thread that has run its own blocks takes others' that
 * are free; with the workers held, the caller runs every block. */
#define BLOCK_CHUNKS 40
typedef struct {
    crnn__blocks bs;
    int chunks[CRNN__MAX_BLOCKS];   /* chunks run, written only by the block's owner */
    int busy[CRNN__MAX_BLOCKS];     /* set while a thread runs a chunk of the block */
    int overlaps;                   /* chunks that found their block busy */
    int by[CRNN__MAX_BLOCKS][MAXN]; /* chunks of each block run by each task */
    int slow_tid;                   /* this task's chunks take longer (-1: none) */
} block_record;

static void block_task(void *ctx, int tid, int n)
{
    block_record *r = (block_record *)ctx;
    int i, next = r->bs.n * tid / r->bs.nt;
    (void)n;
    while ((i = crnn__blocks_take(&r->bs, tid, &next)) >= 0) {
        volatile int spin;
        int left;
        if (__atomic_exchange_n(&r->busy[i], 1, __ATOMIC_ACQ_REL))
            __atomic_add_fetch(&r->overlaps, 1, __ATOMIC_RELAXED);
        for (spin = 0; spin < (tid == r->slow_tid ? 200000 : 20000); ++spin) {}
        left = BLOCK_CHUNKS - ++r->chunks[i];
        ++r->by[i][tid];
        __atomic_store_n(&r->busy[i], 0, __ATOMIC_RELEASE);
        crnn__blocks_put(&r->bs, i, left);
    }
}

static void test_blocks(void)
{
    static block_record r;
    int round, i, t, held, stolen = 0;
    char what[160];
    for (round = 0; round < 6; ++round) {
        const int nt = 2 + round % 3, n = 2 * nt;
        held = round >= 3;
        memset(&r, 0, sizeof r);
        r.slow_tid = held ? -1 : 1; /* task 1 runs 10x slower: the others take some of its blocks */
        crnn__blocks_init(&r.bs, n, nt, BLOCK_CHUNKS);
        __atomic_store_n(&crnn__hold_workers, held, __ATOMIC_RELEASE);
        (void)crnn__parallel_run(block_task, &r, nt, CRNN__TEAM_HELPERS, NULL, NULL);
        __atomic_store_n(&crnn__hold_workers, 0, __ATOMIC_RELEASE);
        for (i = 0; i < n; ++i) {
            snprintf(what, sizeof what, "blocks (%d threads%s): block %d ran %d chunks of %d", nt,
                     held ? ", held" : "", i, r.chunks[i], BLOCK_CHUNKS);
            check(r.chunks[i] == BLOCK_CHUNKS && r.bs.block[i].done, what);
            if (held)
                for (t = 1; t < nt; ++t) check(r.by[i][t] == 0, "blocks, held: the caller ran all");
            else if (i >= n / nt && i < 2 * n / nt) /* task 1's own */
                for (t = 0; t < nt; ++t) stolen += t != 1 && r.by[i][t] > 0;
        }
        check(r.overlaps == 0, "blocks: no block ran on two threads at once");
        check(crnn__blocks_take(&r.bs, 0, &i) == -1, "blocks: none left to take");
    }
    if (crnn__cpu_count() >= 2) check(stolen > 0, "blocks: the slow task's blocks were shared");
}

/* Task 1 arrives at a barrier `late_ms` late: the thread waiting for it records a stall of about
 * that time in its slot (crnn__barrier_stalled_ns) when it passes CRNN__STALL_NS, else none. */
static int late_ms;
static void late_task(void *ctx, int tid, int n)
{
    crnn__barrier *b = (crnn__barrier *)ctx;
    if (tid == 1) sleep_ms(late_ms);
    crnn__barrier_wait(b, tid);
    (void)n;
}

static void test_barrier_stall(void)
{
    static crnn__barrier b;
    crnn__run_result res = CRNN__RAN_NOTHING;
    int k, ms, attempt;
    for (ms = 0; ms <= 8; ms += 8) {
        char what[100];
        long long stalled = 0;
        int ok = 0;
        late_ms = ms;
        /* On a loaded machine (the sanitizer builds run side by side under pytest) the waiting
         * thread may itself lose its core until the late one has arrived, and then waits for
         * nothing: a few attempts, one of which must record the stall. */
        for (attempt = 0; attempt < 5 && !ok; ++attempt) {
            for (k = 0; k < 50; ++k) { /* until the worker joins */
                crnn__barrier_init(&b, 2);
                res = crnn__parallel_run(late_task, &b, 2, CRNN__TEAM_TOGETHER, NULL, NULL);
                if (res > 0) break;
            }
            stalled = crnn__barrier_stalled_ns(&b);
            if (ms) /* the spin before the first yield is not counted; a sleep may overshoot */
                ok = res > 0 && stalled >= CRNN__STALL_NS && stalled <= 1000000LL * 10 * ms;
            else /* nothing to wait for: stalls are rare; allow one on a loaded machine */
                ok = res > 0 && stalled < 1000000LL * 50;
        }
        snprintf(what, sizeof(what), "barrier, other thread %d ms late: ran", ms);
        check(res > 0, what);
        snprintf(what, sizeof(what), "barrier, other thread %d ms late: stall time recorded (%lld ns)", ms, stalled);
        check(ok, what);
    }
}

/* The hand-off in tagged lines (crnn__mailbox): n threads of a together team each post a slice
 * of `per` values a step for `steps` steps into their lines of that step's parity and take every
 * other thread's; a value is a function of (step, thread, index), so a line read before it was
 * written, or a tag matched by a stale step, shows. Thread 1 starts `late_ms` late: the others'
 * waits are stalls, recorded in their slots of the barrier. */
typedef struct {
    crnn__barrier barrier;
    crnn__mailbox mail;
    int n, steps, lines, late_ms;
    int64_t per;
    int bad[MAXN];
} mail_run;

static float mail_value(int s, int k, int64_t i) { return (float)(s * 1000 + k * 100) + (float)i; }

static void mail_task(void *ctx, int tid, int n)
{
    mail_run *m = (mail_run *)ctx;
    float mine[CRNN__MAIL_LINES * 14], got[14];
    const int64_t per = CRNN__MAIL_VALUES(sizeof(float));
    int s, k, l;
    int64_t i;
    (void)n;
    if (tid == 1 && m->late_ms) sleep_ms(m->late_ms);
    for (s = 0; s < m->steps; ++s) {
        const long long tag = crnn__mail_tag(3, 1, s);
        crnn__waiter w = {0, 0, 0};
        for (i = 0; i < m->lines * per; ++i) mine[i] = mail_value(s, tid, i);
        for (l = 0; l < m->lines; ++l)
            crnn__mail_post(crnn__mail_line(&m->mail, tid, s, l), mine + l * per,
                            (size_t)per * sizeof(float), tag);
        for (k = 0; k < m->n; ++k)
            for (l = 0; l < m->lines && k != tid; ++l) {
                crnn__mail_take(&w, crnn__mail_line(&m->mail, k, s, l), tag, got,
                                (size_t)per * sizeof(float));
                for (i = 0; i < per; ++i)
                    if (got[i] != mail_value(s, k, l * per + i)) m->bad[tid]++;
            }
        crnn__mail_stall(&m->barrier, tid, &w);
    }
}

static void test_mail(void)
{
    static mail_run m;
    int n, late, k, bad, attempt;
    char what[120];
    check(CRNN__MAIL_VALUES(sizeof(float)) == 14 && CRNN__MAIL_VALUES(sizeof(double)) == 7,
          "mail: 14 float32 or 7 float64 values a line, before the tag");
    check(crnn__mail_tag(0, 0, 0) != crnn__mail_tag(0, 1, 0) &&
              crnn__mail_tag(0, 1, 0) != crnn__mail_tag(1, 0, 0) &&
              crnn__mail_tag(0, 0, 1) != crnn__mail_tag(0, 0, 0) && crnn__mail_tag(0, 0, 0) != 0,
          "mail: tags differ by layer, direction and step, and from a cleared line");
    for (n = 2; n <= 3; ++n)
        for (late = 0; late <= 8; late += 8) {
            crnn__run_result res = CRNN__RAN_NOTHING;
            long long stalled = 0;
            int ok = 0;
            for (attempt = 0; attempt < 5 && !ok; ++attempt) {
                for (k = 0; k < 50; ++k) { /* until the workers join */
                    memset(&m, 0, sizeof m);
                    m.n = n;
                    m.steps = 2000;
                    m.lines = 3;
                    m.late_ms = late;
                    crnn__barrier_init(&m.barrier, n);
                    crnn__mail_clear(&m.mail, n);
                    res = crnn__parallel_run(mail_task, &m, n, CRNN__TEAM_TOGETHER, NULL, NULL);
                    if (res > 0) break;
                }
                stalled = crnn__barrier_stalled_ns(&m.barrier);
                /* a loaded machine may deschedule the waiting thread until the late one comes */
                ok = res > 0 && (!late || stalled >= CRNN__STALL_NS);
            }
            for (bad = 0, k = 0; k < n; ++k) bad += m.bad[k];
            snprintf(what, sizeof what, "mail, %d threads, one %d ms late: every value as posted",
                     n, late);
            check(res > 0 && bad == 0, what);
            snprintf(what, sizeof what, "mail, %d threads, one %d ms late: stall recorded (%lld ns)",
                     n, late, stalled);
            check(ok, what);
        }
}

/* A deterministic value in [-0.5, 0.5). */
static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xffff) / 65536.0f - 0.5f;
}

static float *random_array(size_t n, unsigned *seed, float scale)
{
    float *a = (float *)malloc(n * sizeof(float));
    size_t i;
    for (i = 0; a && i < n; ++i) a[i] = scale * frand(seed);
    return a;
}

/* The back-off (crnn__backoff): when the stalls pass a third of the recent calls' time, and for
 * how long; the CPU clock's sampled weight. */
static void test_backoff(void)
{
    const long long t = 5000000000LL; /* a time on crnn__now_ns's clock */
    crnn__backoff b;
    int i, weights;

    /* a rare stall against the work leaves the threads on */
    memset(&b, 0, sizeof b);
    for (i = 0; i < 64; ++i) crnn__backoff_note(&b, 21000000, i % 3 ? 0 : 5000000, -1, 0, t);
    check(!crnn__backoff_alone(&b, t), "a 5 ms stall in one of three 21 ms calls does not back off");

    /* a stall of over a third of a call: alone for 16 times the call */
    memset(&b, 0, sizeof b);
    crnn__backoff_note(&b, 3000000, 1100000, -1, 0, t);
    check(b.recent_ns == 0 && b.recent_stall_ns == 0, "a back-off starts the sums afresh");
    check(crnn__backoff_alone(&b, t) && crnn__backoff_alone(&b, t + 16 * 3000000LL - 1),
          "a back-off lasts 16 times the stalled call");
    check(!crnn__backoff_alone(&b, t + 16 * 3000000LL), "... and no longer");
    /* however short the calls that follow (the length is a time, not a count of calls) */
    crnn__backoff_note(&b, 8000000, 8000000, -1, 0, t);
    check(crnn__backoff_alone(&b, t + 127000000) && !crnn__backoff_alone(&b, t + 128000000),
          "an 8 ms stalled call: 128 ms alone");
    /* ... at most a second */
    crnn__backoff_note(&b, 3600000000000LL, 3600000000000LL, -1, 0, t);
    check(crnn__backoff_alone(&b, t + 999999999) && !crnn__backoff_alone(&b, t + 1000000000),
          "a back-off lasts at most a second");

    /* the time off the CPU: weighted on a short sampled call, not on a long one */
    memset(&b, 0, sizeof b);
    b.recent_ns = 31 * 50000LL;
    crnn__backoff_note(&b, 50000, 0, 40000, CRNN__CPU_CLOCK_EVERY, t);
    check(!crnn__backoff_alone(&b, t) && b.recent_stall_ns == 8 * 10000,
          "a short call's time off the CPU counts for the calls not sampled");
    memset(&b, 0, sizeof b);
    b.recent_ns = 31 * 1000000LL;
    crnn__backoff_note(&b, 10000000, 0, 6000000, CRNN__CPU_CLOCK_EVERY, t);
    check(!crnn__backoff_alone(&b, t) && b.recent_stall_ns == 4000000,
          "a long call's time off the CPU counts once");
    crnn__backoff_note(&b, 10000000, 0, -1, CRNN__CPU_CLOCK_EVERY, t);
    check(b.recent_stall_ns < 4000000, "no CPU clock read: only the stalls count");

    /* the clock is read on every call of a stream of long calls, one in 8 of short ones */
    memset(&b, 0, sizeof b);
    for (weights = 0, i = 0; i < 64; ++i) weights += crnn__backoff_clock_weight(&b);
    check(weights == 64, "short calls: one in 8 read, with a weight of 8");
    b.recent_ns = CRNN__CPU_CLOCK_MIN_NS * CRNN__BACKOFF_WINDOW;
    for (weights = 0, i = 0; i < 64; ++i) weights += crnn__backoff_clock_weight(&b) == 1;
    check(weights == 64, "long calls: every one read, with a weight of 1");
}

/* The pace (crnn__pace): which way a handle's calls run, threads or alone, from their timings;
 * when the other way is timed (a probe: a warming call, then a timed one the same way), in the
 * calls' time; calls far apart weighing the wait for a sleeping worker; a new shape starts
 * afresh. Calls of T steps on a clock of their own, each starting 1 us after the last ended
 * unless said, their times given in ns per step. */
static const long long pace_T = 100;
static long long pace_now = 5000000000LL, pace_start;

static int pace_alone_at(crnn__pace *p, unsigned long long key, long long gap, long long wake,
                         int *probe)
{
    pace_start = pace_now += gap;
    return crnn__pace_alone(p, key, pace_T, wake, probe);
}

static int pace_alone(crnn__pace *p, unsigned long long key, int *probe)
{
    return pace_alone_at(p, key, 1000, 0, probe);
}

/* the call asked for last took `ns_per_step` (noted, if clean) and lasted `stretch` times
 * that (the time the probe budget counts), the pool's last call having ended at `since` */
static void pace_call_as(crnn__pace *p, unsigned long long key, int alone, long long ns_per_step,
                         long long stretch, long long since, int noted)
{
    if (noted) crnn__pace_note(p, key, alone, ns_per_step * pace_T, pace_T);
    pace_now = pace_start + ns_per_step * stretch * pace_T;
    crnn__pace_ended(p, key, pace_start, pace_now, since, ns_per_step * stretch * pace_T, noted);
}

static void pace_call(crnn__pace *p, unsigned long long key, int alone, long long ns_per_step,
                      int noted)
{
    pace_call_as(p, key, alone, ns_per_step, 1, 0, noted);
}

static void pace_note(crnn__pace *p, unsigned long long key, int alone, long long ns_per_step)
{
    pace_call(p, key, alone, ns_per_step, 1);
}

/* A probe of way `alone` taking `ns` a step: its two calls, both asked for and noted. */
static int pace_probe(crnn__pace *p, unsigned long long key, int alone, long long ns)
{
    int probe, ok = 1, i;
    for (i = 0; i < 2; ++i) {
        ok &= pace_alone(p, key, &probe) == alone && probe;
        pace_note(p, key, alone, ns);
    }
    return ok;
}

/* Calls of the way taken at `ns` a step, each lasting `stretch` times that (a call's time is
 * what the budget counts), until a probe of a way at `other` is due (wait: 1, or 4 where `other`
 * is over 1.5x slower); @return whether none was a probe before and one comes then, in fewer
 * than CRNN__PACE_MAX_CALLS calls. */
static int pace_calls_until_probe(crnn__pace *p, unsigned long long key, long long ns,
                                  long long stretch, long long other, int wait)
{
    const int way = p->alone;
    int probe, ok = 1;
    while (p->spent_ns < wait * CRNN__PACE_SHARE * other * pace_T) {
        ok &= p->calls < CRNN__PACE_MAX_CALLS && pace_alone(p, key, &probe) == way && !probe;
        pace_call_as(p, key, way, ns, stretch, 0, 1);
    }
    return ok && pace_alone(p, key, &probe) == !way && probe;
}

/* `n` calls `gap` apart, a wake costing `wake`, threads at `t` a step and alone at `a`, each
 * taken as it runs (probes included) */
static void pace_calls_apart(crnn__pace *p, unsigned long long key, int n, long long gap,
                             long long wake, long long t, long long a)
{
    int probe, i;
    for (i = 0; i < n; ++i) {
        const int alone = pace_alone_at(p, key, gap, wake, &probe);
        pace_note(p, key, alone, alone ? a : t);
    }
}

static void test_pace(void)
{
    const unsigned long long key = crnn__pace_key(1, CRNN__SPLIT_UNITS, 2, 0);
    crnn__pace p, copy;
    int i, ok, probe;

    check(crnn__pace_enabled(), "the calls adapt by default (CRNN_ADAPT_THREADS unset)");
    check(key != 0 && key != crnn__pace_key(2, CRNN__SPLIT_UNITS, 2, 0) &&
              key != crnn__pace_key(1, CRNN__PIPELINE, 2, 0) &&
              key != crnn__pace_key(1, CRNN__SPLIT_UNITS, 3, 0) &&
              key != crnn__pace_key(1, CRNN__SPLIT_UNITS, 2, 1),
          "the key tells batch, plan, threads and the other way apart, and is never 0 (none)");
    {
        long long kb = 0;
        int km = 0, kt = 0, kr = 0;
        crnn__pace_key_parts(crnn__pace_key(37, CRNN__PIPELINE, 5, 0), &kb, &km, &kt, &kr);
        check(kb == 37 && km == CRNN__PIPELINE && kt == 5 && kr == 0,
              "a key gives back its parts");
        crnn__pace_key_parts(crnn__pace_key(1000003, CRNN__SPLIT_UNITS, 255, 1), &kb, &km, &kt,
                             &kr);
        check(kb == 1000003 && km == CRNN__SPLIT_UNITS && kt == 255 && kr == 1,
              "a key with the row-split rival gives back its parts");
    }
    memset(&p, 0, sizeof p);
    check(!pace_alone(&p, key, &probe) && !probe && p.key == key,
          "a new shape runs with threads");
    /* the first call's time is taken as it is, later ones averaged in */
    pace_note(&p, key, 0, 600);
    check(p.ns[0] == 600 && p.calls == 1 && p.spent_ns == 600 * pace_T && p.ended_ns == pace_now,
          "the first time taken as it is, the call's time and end kept");
    pace_alone(&p, key, &probe);
    pace_note(&p, key, 0, 800);
    check(p.ns[0] == 650, "later times averaged in with weight 1/4");
    pace_alone(&p, key, &probe);
    pace_note(&p, key, 0, 6500);
    check(p.ns[0] == 650 + 325 / 4, "a call counts as at most 1.5x the average");
    pace_alone(&p, key, &probe);
    crnn__pace_note(&p, key, 0, 601 * pace_T + pace_T - 1, pace_T);
    check(p.ns[0] == 731 + (601 - 731) / 4, "a call's time divided into its steps");
    pace_call(&p, key, 0, 601, 0);
    p.ns[0] = 600;
    for (ok = 1, i = 4; i < CRNN__PACE_MIN_CALLS; ++i) {
        ok &= !pace_alone(&p, key, &probe) && !probe;
        pace_note(&p, key, 0, 600);
    }
    check(ok && p.apart == 0, "with threads for the first calls, none of them far apart");
    /* never timed alone: a probe next, however soon; its first call's time is not kept */
    check(pace_alone(&p, key, &probe) && probe, "then a call alone (a probe)");
    pace_note(&p, key, 1, 100);
    check(p.probing && p.probed == 1 && p.ns[1] == 0 && !p.alone,
          "the probe's first call only warms");
    check(pace_alone(&p, key, &probe) && probe, "its second call is alone too");
    pace_note(&p, key, 1, 500);
    check(!p.probing && p.ns[1] == 500, "the probe ends");
    check(pace_alone(&p, key, &probe) && !probe && p.alone, "alone faster: the calls run alone");
    pace_note(&p, key, 1, 500);
    for (ok = 1, i = 0; p.calls < CRNN__PACE_MIN_CALLS; ++i) {
        ok &= pace_alone(&p, key, &probe) && !probe;
        /* long calls, clean or not: time enough */
        if (i & 1) crnn__pace_note(&p, key, 1, 500 * 1000000LL, 1000000);
        crnn__pace_ended(&p, key, pace_now, pace_now + 1, 0, 500 * 1000000LL, i & 1);
    }
    check(ok && !pace_alone(&p, key, &probe) && probe,
          "no probe before the minimum of calls, however long they took");
    pace_note(&p, key, 0, 600); /* (that probe's warming call) */
    pace_alone(&p, key, &probe);
    pace_note(&p, key, 0, 600);
    /* a probe of the threads (600 ns a step, two calls) costs at most 2/64 of the calls' time
     * since the last, however long the machine waits between calls */
    p.spent_ns = 0;
    p.ns[1] = 500;
    check(pace_calls_until_probe(&p, key, 500, 4, 600, 1),
          "the threads probed once it costs 2/64 of the calls' time");
    check(pace_probe(&p, key, 0, 400), "... a warming call and a timed one");
    check(p.ns[0] == 400 && !pace_alone(&p, key, &probe) && !p.alone,
          "threads faster again: with threads");
    pace_note(&p, key, 0, 400);
    /* calls that are not clean count towards a probe too; a probe comes at least every
     * CRNN__PACE_MAX_CALLS calls, however short */
    p.spent_ns = 0;
    p.calls = 0;
    for (ok = 1, i = 0; i < CRNN__PACE_MAX_CALLS; ++i) {
        ok &= !pace_alone(&p, key, &probe) && !probe;
        pace_call(&p, key, 0, 400, 0);
    }
    check(ok && p.spent_ns < CRNN__PACE_SHARE * 500 * pace_T && pace_alone(&p, key, &probe) &&
              probe,
          "alone probed after CRNN__PACE_MAX_CALLS calls, not clean ones too");
    check(pace_probe(&p, key, 1, 500) && p.ns[1] == 500 && !pace_alone(&p, key, &probe),
          "a slower probe changes nothing");
    pace_note(&p, key, 0, 400);
    p.ns[1] = 700; /* more than 1.5x the threads' 400 */
    check(pace_calls_until_probe(&p, key, 400, 16, 700, 4),
          "a way over 1.5x slower is timed 4 times less often");
    /* a probe whose timed call never came (not clean: the caller drops it) is asked again,
     * CRNN__PACE_REFUSED times, then given up */
    pace_note(&p, key, 1, 700); /* its warming call */
    for (ok = 1, i = 0; i < CRNN__PACE_REFUSED; ++i) {
        ok &= pace_alone(&p, key, &probe) && probe && p.probing;
        pace_call(&p, key, 1, 700, 0);
    }
    check(ok && !p.probing && p.spent_ns == 0 && !pace_alone(&p, key, &probe) && !probe,
          "a probe's timed call is asked for until it is noted, or given up");
    pace_note(&p, key, 0, 400);
    /* the timed call runs the way the warm one did, whatever the choice meanwhile */
    check(p.calls == 1, "(the calls count afresh after a probe given up)");
    p.spent_ns = 4 * CRNN__PACE_SHARE * 700 * pace_T;
    p.calls = CRNN__PACE_MIN_CALLS;
    check(pace_alone(&p, key, &probe) && probe, "a probe of the caller alone");
    pace_note(&p, key, 1, 700);
    p.ns[0] = 800; /* the threads slow down meanwhile: alone would be the way taken */
    check(pace_alone(&p, key, &probe) && probe, "its timed call alone");
    pace_note(&p, key, 1, 700);
    check(!p.probing && p.ns[1] == 700 && pace_alone(&p, key, &probe) && p.alone,
          "then alone, the faster way");
    pace_note(&p, key, 1, 700);
    /* the taken way slows down (the hand-off's slow spells): the other way as soon as its
     * average passes the other way's last time */
    p.ns[0] = 400;
    p.ns[1] = 500;
    check(!pace_alone(&p, key, &probe), "with threads");
    pace_note(&p, key, 0, 800);
    check(p.ns[0] == 450 && !pace_alone(&p, key, &probe), "the threads' average follows them");
    pace_note(&p, key, 0, 800);
    check(p.ns[0] == 506 && pace_alone(&p, key, &probe) && p.alone,
          "and the calls go alone once it passes the other way's");
    pace_note(&p, key, 1, 500);
    /* calls far apart: threads at 400 a step against 500 alone (10 us a call saved), a worker
     * woken at 5 us a call (they stay with threads) or at 15 us (alone) */
    p.ns[0] = 400;
    p.ns[1] = 500;
    pace_calls_apart(&p, key, 40, CRNN__SPIN_NS + 1000, 5000, 400, 500);
    check(p.apart == CRNN__PACE_ONE && !pace_alone_at(&p, key, CRNN__SPIN_NS + 1000, 5000, &probe),
          "calls far apart with a wake cheaper than the threads save: threads");
    pace_note(&p, key, 0, 400);
    check(pace_alone_at(&p, key, CRNN__SPIN_NS + 1000, 15000, &probe) && p.alone,
          "calls far apart with a dearer wake: alone");
    pace_note(&p, key, 1, 500);
    pace_calls_apart(&p, key, 40, 1000, 15000, 400, 500);
    check(p.apart == 0 && !pace_alone_at(&p, key, 1000, 15000, &probe) && !p.alone,
          "and with threads again once the calls come close together");
    pace_note(&p, key, 0, 400);
    /* a call far from the handle's last but close to the pool's (another handle's threads kept
     * the worker awake) finds it awake */
    for (i = 0; i < 40; ++i) {
        const int alone = pace_alone_at(&p, key, 20000000, 15000, &probe);
        pace_call_as(&p, key, 0, 400, 1, pace_start - 1000, alone == 0);
    }
    check(p.apart == 0 && !p.alone, "the pool's last call counts as the handle's");
    /* a time from a call of another shape is dropped; a call of another shape starts afresh */
    pace_note(&p, crnn__pace_key(2, CRNN__SPLIT_UNITS, 2, 0), 0, 1);
    check(p.ns[0] == 400 && p.ended_ns != pace_now, "another shape's call is not counted");
    crnn__pace_read(&p, &copy);
    check(copy.key == p.key && copy.ns[0] == p.ns[0] && copy.ns[1] == p.ns[1] &&
              copy.alone == p.alone && copy.spent_ns == p.spent_ns && copy.calls == p.calls &&
              copy.ended_ns == p.ended_ns && copy.apart == p.apart &&
              copy.probing == p.probing && copy.probed == p.probed && copy.refused == p.refused,
          "a copy reads every field");
    p.probing = 1;
    p.apart = 9;
    check(!crnn__pace_alone(&p, crnn__pace_key(2, CRNN__SPLIT_UNITS, 2, 0), pace_T, 0, &probe) &&
              !probe && !p.alone && !p.probing && p.ns[0] == 0 && p.ns[1] == 0 &&
              p.calls == 0 && p.spent_ns == 0 && p.ended_ns == 0 && p.apart == 0,
          "another shape starts afresh, with threads");
    /* a time of 0 (a clock that does not move) still counts as timed */
    crnn__pace_note(&p, p.key, 0, 0, pace_T);
    check(p.ns[0] == 1, "a time of 0 counts as 1 ns");
}

/* One LSTM layer of H units on D inputs, random weights, and a random input of (B, T, D). */
typedef struct {
    crnn_rnn_t *rnn;
    float *k, *r, *b, *x;
} lstm_case;

static lstm_case lstm_case_new(int64_t B, int64_t T, int64_t D, int64_t H, unsigned seed)
{
    crnn_layer_desc2 desc = {CRNN_CELL_LSTM, H, CRNN_ACTIVATION_TANH, CRNN_ACTIVATION_SIGMOID,
                             CRNN_DIRECTION_FORWARD, 0};
    crnn_weights2 w;
    lstm_case c;
    c.rnn = NULL;
    c.k = random_array((size_t)(D * 4 * H), &seed, 0.3f);
    c.r = random_array((size_t)(H * 4 * H), &seed, 0.3f);
    c.b = random_array((size_t)(4 * H), &seed, 0.2f);
    c.x = random_array((size_t)(B * T * D), &seed, 2.0f);
    if (!c.k || !c.r || !c.b || !c.x) return c;
    w.kernel = c.k;
    w.recurrent_kernel = c.r;
    w.bias = c.b;
    w.recurrent_bias = NULL;
    check(crnn_rnn_create2(&c.rnn, CRNN_DTYPE_FLOAT32, D, 1, &desc, &w) == CRNN_OK, "create");
    return c;
}

static void lstm_case_free(lstm_case *c)
{
    crnn_rnn_free(c->rnn);
    free(c->k); free(c->r); free(c->b); free(c->x);
}

/* One LSTM layer at 2 threads, planned `want` (when the machine has 2 CPUs): the same bits with
 * the workers held (every call computed by the caller, after a together call waits for them) as
 * with the workers free, with and without lengths. */
static void test_forward_with_held_workers(const char *name, int64_t B, int64_t T, int64_t D,
                                           int64_t H, crnn__mode want)
{
    lstm_case c = lstm_case_new(B, T, D, H, 11);
    crnn_rnn_t *rnn = c.rnn;
    const float *x = c.x;
    float *y[2] = {(float *)malloc((size_t)(B * T * H) * sizeof(float)),
                   (float *)malloc((size_t)(B * T * H) * sizeof(float))};
    int64_t *lengths = (int64_t *)malloc((size_t)B * sizeof(int64_t));
    int64_t i;
    int nt, len, held;
    char what[200];
    if (!c.x || !y[0] || !y[1] || !lengths) {
        check(0, "allocation");
        return;
    }
    for (i = 0; i < B; ++i) lengths[i] = (T * (i + 1)) / B - (i % 3);
    crnn_set_num_threads(2);
    if (rnn && crnn__cpu_count() >= 2) {
        snprintf(what, sizeof(what), "%s: planned as the test means", name);
        check(crnn__plan(rnn, B, T, &nt) == want && nt == 2, what);
    }
    for (len = 0; len < 2 && rnn; ++len) {
        long long end;
        int calls = 0, same = 1, ok = 1;
        for (held = 1; held >= 0; --held) {
            __atomic_store_n(&crnn__hold_workers, held, __ATOMIC_RELEASE);
            /* free: calls for 200 ms, past the back-off of the first (a new worker starts
             * late) and the handle's timing of the caller alone (crnn__pace), so that most run
             * on both threads; every one gives the bits of the held call */
            end = now_ns() + (held ? 0 : 200000000LL);
            do {
                ok = ok && crnn_rnn_forward2(rnn, B, T, x, len ? lengths : NULL, NULL, NULL,
                                             y[held], NULL, NULL, NULL, 0) == CRNN_OK;
                if (!held)
                    same = same && memcmp(y[0], y[1], (size_t)(B * T * H) * sizeof(float)) == 0;
                ++calls;
            } while (now_ns() < end);
        }
        snprintf(what, sizeof(what), "%s: forward, lengths %d", name, len);
        check(ok, what);
        snprintf(what, sizeof(what), "%s: the same bits with the workers held (lengths %d, %d calls)",
                 name, len, calls);
        check(same, what);
    }
    crnn_set_num_threads(1);
    lstm_case_free(&c);
    free(y[0]); free(y[1]); free(lengths);
}

/* Lets the workers go (crnn__hold_workers) `arg` microseconds after it starts. */
static void *release_workers_later(void *arg)
{
    struct timespec ts = {0, (long)(size_t)arg * 1000L};
    nanosleep(&ts, NULL);
    __atomic_store_n(&crnn__hold_workers, 0, __ATOMIC_RELEASE);
    return NULL;
}

/* A units split called every 2 ms, whose worker (asleep by then: CRNN__SPIN_NS) joins late, held
 * back 4 times a call's time more at each call: the pool measures the wait (crnn__wake_ns), and
 * the handle's pace weighs it against the threads' saving and runs the calls alone. Where a call
 * takes more than 200 us (a sanitizer's build), the wait would pass CRNN__JOIN_NS: the calls
 * still run, unchecked. */
static void test_pace_weighs_waking_the_worker(void)
{
    const int64_t B = 2, T = 12, D = 20, H = 256;
    long long late_us = 0;
    lstm_case c;
    crnn_rnn_t *rnn;
    const float *x;
    float *y;
    crnn__pace pace;
    int nt, i, ok = 1;
    if (crnn__cpu_count() < 2) return; /* no worker to wait for */
    c = lstm_case_new(B, T, D, H, 5);
    rnn = c.rnn;
    x = c.x;
    y = (float *)malloc((size_t)(B * T * H) * sizeof(float));
    if (!x || !y) {
        check(0, "allocation");
        lstm_case_free(&c);
        free(y);
        return;
    }
    crnn_set_num_threads(2);
    if (rnn && crnn__plan(rnn, B, T, &nt) == CRNN__SPLIT_UNITS && nt == 2) {
        long long fastest = -1;
        for (i = 0; i < 20; ++i) { /* the calls' own time, back to back */
            const long long t0 = now_ns();
            ok &= crnn_rnn_forward2(rnn, B, T, x, NULL, NULL, NULL, y, NULL, NULL, NULL, 0) ==
                  CRNN_OK;
            if (fastest < 0 || now_ns() - t0 < fastest) fastest = now_ns() - t0;
        }
        late_us = 4 * fastest / 1000 > 300 ? 4 * fastest / 1000 : 300;
        if (late_us > 800) printf("(the pace's wake test unchecked: a call takes %lld us)\n",
                                  fastest / 1000);
        memset((crnn__pace *)&rnn->pace, 0, sizeof(crnn__pace)); /* timed afresh: threads first */
        for (i = 0; i < 40; ++i) {
            pthread_t tid;
            sleep_ms(2);
            __atomic_store_n(&crnn__hold_workers, 1, __ATOMIC_RELEASE);
            if (pthread_create(&tid, NULL, release_workers_later, (void *)(size_t)late_us) != 0) {
                __atomic_store_n(&crnn__hold_workers, 0, __ATOMIC_RELEASE);
                check(0, "a thread to let the workers go");
                break;
            }
            ok &= crnn_rnn_forward2(rnn, B, T, x, NULL, NULL, NULL, y, NULL, NULL, NULL, 0) ==
                  CRNN_OK;
            pthread_join(tid, NULL);
        }
        crnn__pace_read((const crnn__pace *)&rnn->pace, &pace);
        check(ok, "forward");
        if (late_us <= 800) {
            check(crnn__wake_ns() > late_us * 1000 / 2, "the wait for a sleeping worker measured");
            check(pace.ns[0] && pace.ns[0] * T < crnn__wake_ns(),
                  "... and left out of the threads' own time");
            check(pace.apart > CRNN__PACE_ONE * 9 / 10 && pace.alone,
                  "calls that far apart, with that wait, run alone");
        }
    }
    __atomic_store_n(&crnn__hold_workers, 0, __ATOMIC_RELEASE);
    crnn_set_num_threads(1);
    lstm_case_free(&c);
    free(y);
}

/* The widest LSTM (multiples of 8 units, 48-256) that a batch of one with `din` inputs splits
 * over 2 threads into slices whose recurrent weights fit L1 (so its steps hand h over in
 * lines), or 64 where none does on this machine (the case then fails its plan check). */
static int64_t lines_lstm_units(int64_t din)
{
    int64_t H, best = 64, edges[3];
    int nt;
    float *zeros = (float *)calloc((size_t)(4 * 256 * (256 + din)), sizeof(float));
    crnn_set_num_threads(2);
    for (H = 48; H <= 256 && zeros; H += 8) {
        crnn_layer_desc2 desc = {CRNN_CELL_LSTM, H, CRNN_ACTIVATION_TANH,
                                 CRNN_ACTIVATION_SIGMOID, CRNN_DIRECTION_FORWARD, 0};
        crnn_weights2 w = {zeros, zeros, zeros, NULL};
        crnn_rnn_t *rnn = NULL;
        if (crnn_rnn_create2(&rnn, CRNN_DTYPE_FLOAT32, din, 1, &desc, &w) != CRNN_OK) continue;
        crnn__slice_edges(H, 4, 2, sizeof(float), crnn__row_tiles_alike(), edges);
        if (crnn__plan(rnn, 1, 120, &nt) == CRNN__SPLIT_UNITS && nt == 2 &&
            16 * H * (edges[1] > H - edges[1] ? edges[1] : H - edges[1]) <=
                (int64_t)crnn__l1_bytes())
            best = H;
        crnn_rnn_free(rnn);
    }
    crnn_set_num_threads(1);
    free(zeros);
    return best;
}

/* The most pairs of lines any slice of `edges` reads a row (crnn__pairs_read). */
static int64_t most_pairs(int64_t G, size_t es, int n, const int64_t *edges)
{
    int64_t most = 0;
    int k;
    for (k = 0; k < n; ++k) {
        const int64_t p = crnn__pairs_read(G, edges[k], edges[k + 1], es);
        if (p > most) most = p;
    }
    return most;
}

/* A units split's slices: whole blocks, in order, covering the layer; larger batches cut on the
 * panel edges (crnn__slice_edge); a batch of one moves an edge only to read fewer pairs of lines
 * at most (crnn__row_edge), never more, and balances the shapes the panel edges do not. */
static void test_slice_edges(void)
{
    static const struct {
        int64_t G, H;
        size_t es;
        int64_t rows_edge, one_row_edge;
    } cases[] = {
        {1, 192, 4, 128, 96},  /* SimpleRNN: 4 / 2 pairs of a row on panel edges, 3 / 3 */
        {3, 224, 4, 128, 112}, /* GRU: 12 / 9 pairs, 11 / 11 */
        {3, 160, 4, 64, 80},   /* GRU: 6 / 9, 8 / 8 */
        {1, 160, 4, 64, 64},   /* 2 / 3 pairs, 3 / 3 at 80: no fewer at most, the edge stays */
        {1, 256, 4, 128, 128}, {3, 256, 4, 128, 128}, {4, 128, 4, 64, 64},
        {4, 200, 4, 96, 96},   /* an LSTM's panel edges are every block's: nothing to move */
        {1, 96, 8, 64, 48},    /* float64 SimpleRNN: 4 / 2 pairs, 3 / 3 */
        {3, 112, 8, 64, 56},   /* float64 GRU: 12 / 11, 9 / 11 */
    };
    const int64_t gates[3] = {1, 3, 4};
    char what[200];
    size_t c;
    int g, n, e, k;
    int64_t H;
    for (c = 0; c < sizeof(cases) / sizeof(cases[0]); ++c) {
        int64_t rows[3], one[3];
        crnn__slice_edges(cases[c].H, cases[c].G, 2, cases[c].es, 0, rows);
        crnn__slice_edges(cases[c].H, cases[c].G, 2, cases[c].es, 1, one);
        snprintf(what, sizeof(what), "slices: G %d, %d units, %d-byte values: edges %d and %d, "
                 "expected %d and %d", (int)cases[c].G, (int)cases[c].H, (int)cases[c].es,
                 (int)rows[1], (int)one[1], (int)cases[c].rows_edge, (int)cases[c].one_row_edge);
        check(rows[1] == cases[c].rows_edge && one[1] == cases[c].one_row_edge, what);
    }
    for (g = 0; g < 3; ++g)
        for (e = 4; e <= 8; e += 4)
            for (n = 2; n <= 5; ++n)
                for (H = 1; H <= 700; ++H) {
                    const int64_t G = gates[g], vb = CRNN__BLOCK_UNITS((size_t)e);
                    int64_t rows[6], one[6];
                    int ok = 1;
                    crnn__slice_edges(H, G, n, (size_t)e, 0, rows);
                    crnn__slice_edges(H, G, n, (size_t)e, 1, one);
                    ok &= rows[0] == 0 && one[0] == 0 && rows[n] == H && one[n] == H;
                    for (k = 1; k <= n; ++k) {
                        ok &= rows[k] >= rows[k - 1] && one[k] >= one[k - 1];
                        if (k < n) ok &= (rows[k] % vb == 0 || rows[k] == H) &&
                                         (one[k] % vb == 0 || one[k] == H);
                        ok &= rows[k] == crnn__slice_edge(H, k, n,
                                                          crnn__slice_align(H, G, n, (size_t)e));
                    }
                    ok &= most_pairs(G, (size_t)e, n, one) <= most_pairs(G, (size_t)e, n, rows);
                    if (!ok) {
                        snprintf(what, sizeof(what), "slices: G %d, %d units, %d-byte values, "
                                 "%d slices: in order, whole blocks, no more pairs a row",
                                 (int)G, (int)H, e, n);
                        check(0, what);
                        return;
                    }
                }
    check(1, "slices: every layer of 1-700 units, 2-5 slices");
}

int main(void)
{
    test_free_workers();
    test_held_workers();
    test_barrier_stall();
    test_mail();
    test_backoff();
    test_pace();
    test_pace_weighs_waking_the_worker();
    test_slice_edges();
    test_blocks();
    /* 16 rows: 4 a thread; 2 rows of 256 units: slices of 128 units; 1 row of 48 units (24 KiB
     * of recurrent weights, less than any L1 twice), 64 steps: chunks projected ahead */
    test_forward_with_held_workers("batch split", 16, 12, 20, 32, CRNN__SPLIT_BATCH);
    test_forward_with_held_workers("units split", 2, 12, 20, 256, CRNN__SPLIT_UNITS);
    /* 1 row, 16 inputs, of an LSTM whose halves fit L1: its steps hand h over in tagged lines
     * (rnn_template.h); 64 units with a 32 KiB L1 */
    test_forward_with_held_workers("units split, batch 1", 1, 120, 16, lines_lstm_units(16),
                                   CRNN__SPLIT_UNITS);
    test_forward_with_held_workers("pipeline", 1, 64, 40, 48, CRNN__PIPELINE);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
