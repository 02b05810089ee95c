/* parallel.h - internal: a small persistent thread pool and a spinning barrier.
 *
 * crnn__parallel_run() runs fn(ctx, i, n) for i = 0..n-1, i = 0 on the caller's thread, and
 * returns once all are done. Task i > 0 is offered to worker i - 1, which joins the call when it
 * gets a core; how a worker that has not joined in time is treated depends on how the tasks
 * depend on each other (crnn__team). The caller never waits for a worker that has not joined:
 * a woken worker that finds no free core (a loaded machine, or the kernel queueing it behind a
 * busy thread) could otherwise hold every call up for a scheduler time slice (~4 ms) while the
 * work itself takes a fraction of that. A worker joins only once it runs on a CPU other than
 * the caller's, so a joined worker is one that is computing.
 * Workers spin briefly after a task (the next step of a stream often follows at once), then
 * sleep on a condition variable. */
#ifndef CRNN_PARALLEL_H
#define CRNN_PARALLEL_H

typedef void (*crnn__task_fn)(void *ctx, int tid, int nthreads);

typedef enum {
    /* The tasks wait for each other (barriers): all n run at once or none does. The caller waits
     * for the workers to join, up to CRNN__JOIN_NS, before any task starts. */
    CRNN__TEAM_TOGETHER,
    /* Tasks 1..n-1 only help task 0, which does any of their work they have not taken and never
     * waits for a task that has not started: a worker that has not joined by the end of task 0
     * is left out. */
    CRNN__TEAM_HELPERS,
    /* The tasks share nothing: the caller runs, after task 0, every task whose worker has not
     * joined by then. */
    CRNN__TEAM_INDEPENDENT
} crnn__team;

/* How long a together call waits for its workers to join before it runs nothing: far longer
 * than waking a sleeping worker takes (tens of us), far shorter than the time slices a thread
 * without a core waits for. */
#define CRNN__JOIN_NS 1000000LL

/* A wait at a barrier, for a chunk or for a worker to finish that yields for longer than this is
 * a stall (the other thread had no core, or was held up in the kernel: a page fault of a fresh
 * output can take milliseconds): longer than any step's natural imbalance (a batch-1 step of a
 * 4096-unit layer streams 32 MB), shorter than the time slices a thread without a core waits
 * for. Stalls are counted in time, which the caller weighs against the calls' time (rnn.c). */
#define CRNN__STALL_NS 1000000LL

typedef enum {
    CRNN__RAN_NOTHING = 0,  /* another call holds the pool, or a worker could not be started */
    CRNN__RAN = 1,          /* every task ran exactly once: on its worker or (independent
                               tasks) on the caller; a helper left out did not run */
    CRNN__RAN_LATE = 2,     /* as CRNN__RAN, but a joined worker kept the caller waiting for
                               more than CRNN__STALL_NS after task 0 */
    CRNN__RAN_SHORT = 3,    /* as CRNN__RAN, but a worker never joined (its helper task did
                               not run, or its independent task ran on the caller) */
    CRNN__RAN_UNJOINED = -1 /* nothing ran: a together call's workers did not join within
                               CRNN__JOIN_NS */
} crnn__run_result;

/* n >= 2. *stalled_ns (if not NULL) gets the time the caller spent in stalls waiting for its
 * workers: to join (a together call called off), or to finish; *woke_ns (if not NULL) the time a
 * together call waited for workers that were asleep to join (0: none was). */
crnn__run_result crnn__parallel_run(crnn__task_fn fn, void *ctx, int n, crnn__team team,
                                    long long *stalled_ns, long long *woke_ns);

/* How long a worker stays awake after a call (spinning) before it sleeps: a stream of calls
 * keeps the workers awake, an idle process stops burning CPU soon after. */
#define CRNN__SPIN_NS 50000LL
/* How long recent together calls waited for a sleeping worker to join (averaged with weight
 * 1/4, each counting as at most CRNN__JOIN_NS; 0: none has). Tens of us on a VM (a sleeping vCPU
 * is woken through the host: 30-65 us on a 2-vCPU Zen 4), a few on bare metal. */
long long crnn__wake_ns(void);
/* When the pool's last call returned (crnn__now_ns; 0: none yet): its workers stay awake for
 * CRNN__SPIN_NS after it. */
long long crnn__pool_ended_ns(void);

/* A monotonic clock, and the CPU time of the calling thread (-1: none), in ns. */
long long crnn__now_ns(void);
long long crnn__thread_cpu_ns(void);

/* Tests only (tests/c/test_pool.c): while nonzero, woken workers do not try to join a call, as
 * if they had no core. */
extern int crnn__hold_workers;

/* The CPUs the plans count on (>= 1): CRNN_CPUS where it holds a count from 1 to
 * crnn__cpu_count_max(), else the CPUs online; read once. The units split and the pipeline never
 * use more threads than this (their threads wait for each other at every step). CRNN_CPUS is for
 * a machine whose OS counts CPUs the process cannot use (a container's CPU quota), or to plan
 * as on a larger machine (the tests run the units split over more slices than this machine's
 * cores that way). */
int crnn__cpu_count(void);
typedef enum {
    CRNN__CPUS_FROM_OS = 0,
    CRNN__CPUS_FROM_ENV = 1,
    CRNN__CPUS_FROM_OS_ENV_IGNORED = 2 /* CRNN_CPUS is set but not a usable count */
} crnn__cpus_from;
crnn__cpus_from crnn__cpu_count_source(void);
int crnn__cpu_count_max(void);

/* Most threads one call may use (a barrier has a slot for each). */
#define CRNN__MAX_THREADS 64

/* A thread's side of a barrier: how many times it has arrived, and the time its waits spent in
 * stalls (CRNN__STALL_NS; written only by a stall, as the other threads read this line at every
 * barrier). Each slot has two cache lines to itself (some CPUs fetch lines in pairs), so an
 * arrival is one store to a line only its thread writes, and a wait reads the other threads'
 * lines: no read-modify-write on a line every thread contends for. Measured on a 2-core Xeon:
 * 155 ns a barrier against 245 for a shared counter. */
#if defined(__GNUC__)
#  define CRNN__SLOT_ALIGN __attribute__((aligned(128)))
#else
#  define CRNN__SLOT_ALIGN
#endif
typedef struct {
    volatile long long arrived;
    long long stalled_ns;
} CRNN__SLOT_ALIGN crnn__barrier_slot;

typedef struct {
    int n;
    crnn__barrier_slot slot[CRNN__MAX_THREADS];
} crnn__barrier;

/* n <= CRNN__MAX_THREADS threads, tid 0..n-1 */
void crnn__barrier_init(crnn__barrier *b, int n);
void crnn__barrier_wait(crnn__barrier *b, int tid);
/* Arrive without waiting for anyone (a thread nobody waits for, or one that only leads). */
void crnn__barrier_arrive(crnn__barrier *b, int tid);
/* Arrive, then wait for thread `lead` only to have arrived as often: a wait for work, however
 * long, not counted as a stall. */
void crnn__barrier_follow(crnn__barrier *b, int tid, int lead);
/* all the threads' time in stalls so far */
long long crnn__barrier_stalled_ns(const crnn__barrier *b);

/* One wait: its rounds so far, when it started yielding (0: not yet) and the last time it
 * looked at the clock. */
typedef struct {
    int spins;
    long long start, last;
} crnn__waiter;

/* A row split's rows in blocks that any of its threads may run a few steps of at a time
 * (rnn_template.h: FN(crnn__forward_blocks)), so that a thread whose core runs slower (a busy SMT
 * sibling or neighbour on the host, a hybrid CPU's efficiency core) hands part of its rows over to
 * a faster one instead of keeping it waiting. Each thread has its own blocks, which it runs in
 * turn, a chunk of steps each; a thread whose own blocks are all done or taken runs a chunk of the
 * free block with the most steps left. A block is run by one thread at a time (its owner flag,
 * taken with a compare-and-swap and released after the chunk), and its cursor (where its rows
 * stand: layer, direction, step, the step's arguments) is set up by the first thread to take it.
 * Which thread runs which chunk changes nothing in the result: a block's rows are computed by the
 * same calls whoever makes them. */
#define CRNN__MAX_BLOCKS 16
#define CRNN__CURSOR_BYTES 512 /* FN(rows_run): 440 on x86-64 */
typedef struct {
    int owner;        /* 1 while a thread runs a chunk of this block */
    int done;         /* 1 once its rows went through every layer */
    long long left;   /* steps left (a thief's choice) */
    int fresh;        /* 1 until its cursor is set up */
    long long cursor[CRNN__CURSOR_BYTES / sizeof(long long)]; /* rnn_template.h: FN(rows_run) */
} CRNN__SLOT_ALIGN crnn__block;

typedef struct {
    int n;            /* blocks, <= CRNN__MAX_BLOCKS */
    int nt;           /* threads; thread t's own blocks are [n * t / nt, n * (t + 1) / nt) */
    long long steps;  /* the steps each block runs in all */
    crnn__block block[CRNN__MAX_BLOCKS];
} crnn__blocks;

/* n blocks over nt threads, each with `steps` steps to run. */
void crnn__blocks_init(crnn__blocks *bs, int n, int nt, long long steps);
/* Take a block for thread tid: its own blocks in turn from *next on (*next: the one after the
 * block it ran last), else the free block with the most steps left; waits while every unfinished
 * block is taken. Returns the block, or -1 once every block is done. */
int crnn__blocks_take(crnn__blocks *bs, int tid, int *next);
/* Give block i back after a chunk, `left` steps left (0: done). */
void crnn__blocks_put(crnn__blocks *bs, int i, long long left);

/* A units split's hand-off of h_t in tagged lines (rnn_template.h, FN(hand_over)), in place of
 * the barrier that ends a step: each thread writes its slice of h_t into cache lines of its own,
 * CRNN__MAIL_VALUES values and a tag a line, and the others wait on those lines. h_t crosses
 * with the signal: the readers' misses fetch a line the writer has just written, where at a
 * barrier its flag crosses first and h_t's lines after it. Each thread has two sets of lines,
 * for even and odd steps: it writes step t + 2's over step t's only after it has read the
 * others' h_{t+1}, which each wrote after reading its h_t; so every thread must post at every
 * step (no empty slice). The tags (crnn__mail_tag) never repeat within a call, and the lines
 * are zeroed before it (crnn__mail_clear). */
#define CRNN__MAIL_THREADS 4 /* most threads of a split that hand over in lines */
#define CRNN__MAIL_LINES 16  /* most lines of a thread's slice */
#define CRNN__MAIL_TAG 56    /* the tag's offset in its line: the values before it */
#define CRNN__MAIL_VALUES(es) ((int64_t)(CRNN__MAIL_TAG / (es)))
typedef struct {
    char line[CRNN__MAIL_THREADS][2][CRNN__MAIL_LINES][64];
} CRNN__SLOT_ALIGN crnn__mailbox;

/* Line l of thread `tid`'s slice of h at step s (its parity's set). */
static inline char *crnn__mail_line(crnn__mailbox *m, int tid, int64_t s, int64_t l)
{
    return m->line[tid][s & 1][l];
}

/* The tag of step s of layer `layer`, direction d: distinct for every step of a call. */
static inline long long crnn__mail_tag(int64_t layer, int d, int64_t s)
{
    return ((long long)(2 * layer + d + 1) << 40) | (long long)(s + 1);
}

/* Zero the lines of the first n threads (before a call's threads start). */
void crnn__mail_clear(crnn__mailbox *m, int n);
/* Write `bytes` (at most CRNN__MAIL_TAG) of values into `line`, then its tag (release). */
void crnn__mail_post(char *line, const void *values, size_t bytes, long long tag);
/* Wait until `line` carries `tag` (acquire), then copy its first `bytes` to `values`. One
 * waiter `w` (zeroed) serves every line of a step's hand-off, whose stall crnn__mail_stall
 * then counts once, in thread `tid`'s slot of `b`, like a barrier wait's. */
void crnn__mail_take(crnn__waiter *w, const char *line, long long tag, void *values,
                     size_t bytes);
void crnn__mail_stall(crnn__barrier *b, int tid, const crnn__waiter *w);

/* Work flags shared by the threads of one call: 0 free, 1 claimed, 2 done.
 * claim: 0 -> 1, returns 1 if this thread got it. done: -> 2 (release: the work is visible to
 * whoever sees 2). wait: until 2, a stall counted in thread `tid`'s slot of `b` like a barrier
 * wait's. */
int crnn__flag_claim(int *f);
void crnn__flag_done(int *f);
void crnn__flag_wait(crnn__barrier *b, int tid, int *f);

/* The back-off of calls whose threads wait for each other (units splits, pipelines): they run on
 * the caller alone (same slices or chunks, same bits) for a while after threads that did not each
 * have a core, since waiting for a descheduled thread (a time slice, ~4 ms) costs far more than
 * the second thread saves.
 * - The sign of it is time: the threaded calls' stalls (CRNN__STALL_NS: at a barrier, for a
 *   chunk, for a worker to join or to finish) against the calls' own time, both summed over about
 *   the last CRNN__BACKOFF_WINDOW threaded calls (each sum decays by 1/CRNN__BACKOFF_WINDOW a
 *   call). Past a third, the calls back off. Weighed in time, a stall that is rare against the
 *   work (a page fault of a fresh output now and then: 2-5 ms in one of three 21 ms calls of a
 *   GRU (32,100,256,512)) leaves the threads on; a count of stalls turned them off there and the
 *   stream ran at 0.52x. Short calls on a loaded machine, where each stall is a time slice longer
 *   than the call, back off after one.
 * - A call's stalls include the time the caller did not run (given up in waits, or taken by
 *   another thread or process): where the other thread waits for nobody (the pipeline's helper),
 *   that is the only sign besides a worker that never joined, whose call ran alone and counts as
 *   stalled throughout (pipeline under two busy loops: 85 % of calls, against 0.15 % quiet; woken
 *   for nothing, the helper only took time from the caller: 1,031-1,084 calls/s counting it, not
 *   as stalled, against 1,392-1,497 at one thread).
 * - How long: until CRNN__BACKOFF_PAYBACK times the stalled call's time has passed, at most
 *   CRNN__BACKOFF_MAX_NS (a call held up by a suspended process). A back-off of 64 calls, the
 *   rule before, was 1.3 ms of 20 us calls, shorter than the 7-8 ms each stalled retry cost
 *   under two busy loops: SimpleRNN (1,20,16,256), a 30 us units split, ran at 0.14x of one
 *   thread there, 0.88x backing off for a time.
 * - Reading the caller's CPU time is a system call (~0.35 us each end of a call, measured 0.965x
 *   on a 20 us SimpleRNN (2,10,16,256)): every call reads it where the recent calls averaged at
 *   least CRNN__CPU_CLOCK_MIN_NS, others one in CRNN__CPU_CLOCK_EVERY, whose time off the CPU then
 *   counts that many times (once where the call itself took that long: a long call among short
 *   ones stands for itself only).
 * One for the process, zero-initialised; concurrent callers may lose each other's updates: these
 * are estimates. */
typedef struct {
    long long recent_ns, recent_stall_ns; /* the threaded calls' time and stalls, decayed sums */
    long long until_ns;                   /* calls run alone until then (crnn__now_ns) */
    unsigned clocked;                     /* calls asked whether to read the CPU clock */
} crnn__backoff;

#define CRNN__BACKOFF_WINDOW 32
#define CRNN__BACKOFF_PAYBACK 16
#define CRNN__BACKOFF_MAX_NS 1000000000LL
#define CRNN__CPU_CLOCK_MIN_NS 100000LL
#define CRNN__CPU_CLOCK_EVERY 8

/* Whether a call that starts at `now` (crnn__now_ns) runs alone. */
int crnn__backoff_alone(const crnn__backoff *b, long long now);
/* Whether to read the caller's CPU clock around this threaded call: 0 not, else the weight its
 * time off the CPU counts with. */
int crnn__backoff_clock_weight(crnn__backoff *b);
/* A threaded call that ended at `now` took ns, stalled_ns of it in its threads' stalls, and
 * cpu_ns of the caller's CPU time (-1: not read; else read with crnn__backoff_clock_weight's
 * weight): counts it, and backs off when the stalls pass a third of the recent calls' time. */
void crnn__backoff_note(crnn__backoff *b, long long ns, long long stalled_ns, long long cpu_ns,
                        int weight, long long now);

/* Whether the threads of a units split or a pipeline make its calls faster, now, on this
 * machine: per handle (crnn_rnn_t), the calls of one shape time their threads against the caller
 * computing the same slices or chunks alone (the same bits: see crnn_rnn_forward2) and take the
 * faster, timing the other now and then. A units split that has a row split for a rival
 * (crnn__plan_rival: weights past L2, where the row split is faster on some machines and slower
 * on others, and the same bits) is timed against that instead of the caller alone: the "alone"
 * way below is then the row split on its threads. The plan (crnn__plan) assumes that two cores
 * pass a cache line in about 50 ns. Not every machine keeps to that: two vCPUs of a 2-vCPU VM
 * on Zen 4 passed one in 45-50 ns in some spells, 170-180 ns in others (each lasting seconds, up
 * to half the time) and 30 ns in a third (two vCPUs on one core); a GRU (1,1000,32,64), whose
 * units split meets every 0.5 us step, then ran at 0.60x and 0.88x of one thread, where it ran
 * 1.3x faster in the 50 ns spells. No threshold set once (at import, or from a calibration)
 * fits all three.
 * - The way the calls take is timed at every call, in ns per timestep, averaged with weight
 *   1/CRNN__PACE_WEIGHT, a call counting as at most 1.5x the average: a single slow call (5198
 *   ns a step against 1,725, in a run of bench/peers.py) had moved the threads' average past the
 *   time alone and sent the next 24 calls of a GRU (1,50,64,128) alone. With threads, the whole
 *   call but any wait for a sleeping worker to join.
 * - That wait is weighed apart: a units split's calls pay it as often as they come more than
 *   CRNN__SPIN_NS after both the handle's last call and the pool's (whichever kept the worker
 *   awake); the share of recent calls that did (weight 1/CRNN__PACE_WEIGHT) times the pool's
 *   recent waits (crnn__wake_ns) is added to the threads' time per call. Left out, calls far
 *   apart ran on threads at 2.3-2.4x the time alone (a SimpleRNN (1,50,64,128) 10 ms apart on a
 *   2-vCPU Zen 4 VM: 158 us a call against 65; 30-65 us of each waiting for the worker, against
 *   27 us for a call on both threads in a stream). Counted in each call's own time instead, the
 *   first call after each pause of a stream of bursts would weigh on the threads' average.
 * - The other way is timed (a probe) after at least CRNN__PACE_MIN_CALLS calls, and then no
 *   sooner than when a probe costs at most about 2/CRNN__PACE_SHARE of the calls' time since the
 *   last (4 times later where the other way was more than 1.5x slower): of a stream of 50 us
 *   calls every 3 ms or later, of 1 ms calls every 64 ms. The calls' time, not the clock's (calls
 *   far apart had a probe every other call), and every call's, clean or not (a way that never
 *   runs clean is still weighed against the other); and at least every CRNN__PACE_MAX_CALLS
 *   calls: a few slow calls (a stream's first after a pause) had kept a SimpleRNN (1,50,64,128)
 *   stream of 30-call bursts alone for 370 calls (37 us a call against 26 with threads). A
 *   probe is two calls the same way, the first warming the caches that way reads (the other
 *   core's slice, or the caller's) and, for the threads, waking the worker; the second timed. A
 *   probe whose timed call is dropped CRNN__PACE_REFUSED times running is given up.
 * - The caller (crnn_rnn_forward2) notes only calls that ran clean: not backing off
 *   (crnn__backoff), the pool not busy, every worker joined and no thread stalled; a probe also
 *   with the caller on its CPU for all but 1/8 of the call, the wait for a sleeping worker left
 *   out (the caller yields its CPU to it once: the threads' own calls are averaged). A call of
 *   another shape (batch, plan, threads: the key) starts the timing afresh, with threads.
 * - Environment variable CRNN_ADAPT_THREADS=0: the calls always run on the plan's threads (read
 *   once). Concurrent callers may lose each other's updates: these are estimates. */
typedef struct {
    unsigned long long key; /* the shape timed (crnn__pace_key); 0: none yet */
    long long ns[2];        /* ns per timestep, with threads [0] and alone [1]; 0: not timed */
    long long spent_ns;     /* the calls' time (ns) since the way not taken was last timed */
    long long ended_ns;     /* when the last call ended (crnn__now_ns; 0: none yet) */
    int apart;              /* of CRNN__PACE_ONE recent calls, those that came more than
                               CRNN__SPIN_NS after both this handle's last call and the pool's */
    int calls;              /* calls since the way not taken was last timed */
    int probing;            /* a probe's first (warming) call has run ... */
    int probed;             /* ... the way it ran (1 alone), its timed call's way */
    int refused;            /* the probe's timed calls dropped so far (not clean) */
    int alone;              /* the way taken */
} crnn__pace;

#define CRNN__PACE_WEIGHT 4
#define CRNN__PACE_MIN_CALLS 8
#define CRNN__PACE_MAX_CALLS 64
#define CRNN__PACE_SHARE 64
#define CRNN__PACE_ONE 1024
#define CRNN__PACE_REFUSED 4 /* a probe's timed call dropped this often: the probe given up */

/* The key of the calls of this batch size, plan mode and thread count (never 0), their other
 * way the row-split rival (rival 1) or the caller alone (0); and back. */
unsigned long long crnn__pace_key(long long batch, int mode, int nthreads, int rival);
void crnn__pace_key_parts(unsigned long long key, long long *batch, int *mode, int *nthreads,
                          int *rival);
/* Diagnostics (tests, benchmarks): every call that the pace would time takes way `way` (0 the
 * plan's threads, 1 the other way), untimed, until pinned to -1 (no way: the pace chooses). */
void crnn__pace_pin(int way);
int crnn__pace_pinned(void);
/* Whether a call of this key and length runs alone: the faster way so far (the threads paying
 * wake_ns, a wait for a sleeping worker, as often as recent calls came late enough to find it
 * asleep), or the other as a probe (*probe set). Starts afresh (with threads) where the key is
 * not the one timed. */
int crnn__pace_alone(crnn__pace *p, unsigned long long key, long long timesteps,
                     long long wake_ns, int *probe);
/* A clean call of this key and length that ran alone (or with threads) took call_ns (with
 * threads, without any wait for a sleeping worker). */
void crnn__pace_note(crnn__pace *p, unsigned long long key, int alone, long long call_ns,
                     long long timesteps);
/* Any call of this key, noted or not, ran from `start` to `end`, taking call_ns as the pace
 * counts it; `since`: when the pool's last call before it ended (crnn__pool_ended_ns). */
void crnn__pace_ended(crnn__pace *p, unsigned long long key, long long start, long long end,
                      long long since, long long call_ns, int noted);
/* A copy of *p read field by field (for diagnostics while calls may be updating it). */
void crnn__pace_read(const crnn__pace *p, crnn__pace *out);
/* Whether the calls adapt (CRNN_ADAPT_THREADS unset, empty or "1"), and whether the variable is
 * set to something else than "0" or "1" (ignored: they adapt). */
int crnn__pace_enabled(void);
int crnn__pace_env_ignored(void);

#endif
