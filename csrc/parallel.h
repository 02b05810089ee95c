/* parallel.h - internal: a small persistent thread pool and a spinning barrier.
 *
 * crnn__parallel_run() runs fn(ctx, i, n) for i = 0..n-1 concurrently, i = 0 on the caller's
 * thread, and returns once all are done. All n tasks are guaranteed to run at the same time (so
 * they may meet at barriers) or none does: when another call holds the pool or a worker cannot
 * be started, it returns 0 at once without running anything.
 * Workers spin briefly after a task (the next step of a stream often follows at once), then
 * sleep on a condition variable. */
#ifndef CRNN_PARALLEL_H
#define CRNN_PARALLEL_H

typedef void (*crnn__task_fn)(void *ctx, int tid, int nthreads);

/* @return 1 if the n tasks ran, 0 if nothing ran. n >= 2. */
int crnn__parallel_run(crnn__task_fn fn, void *ctx, int n);

/* CPUs online (>= 1). */
int crnn__cpu_count(void);

/* Most threads one call may use (a barrier has a slot for each). */
#define CRNN__MAX_THREADS 64

/* A thread's side of a barrier: how many times it has arrived, and its own counts of waits and
 * of waits that outlasted the spin and had to yield (many stalls mean the threads don't each
 * have a core). Each slot has two cache lines to itself (some CPUs fetch lines in pairs), so an
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
    int waits;
    int stalls;
} CRNN__SLOT_ALIGN crnn__barrier_slot;

typedef struct {
    int n;
    crnn__barrier_slot slot[CRNN__MAX_THREADS];
} crnn__barrier;

/* n <= CRNN__MAX_THREADS threads, tid 0..n-1 */
void crnn__barrier_init(crnn__barrier *b, int n);
void crnn__barrier_wait(crnn__barrier *b, int tid);
/* all the threads' waits and stalls so far */
void crnn__barrier_counts(const crnn__barrier *b, int *waits, int *stalls);

/* Work flags shared by the threads of one call: 0 free, 1 claimed, 2 done.
 * claim: 0 -> 1, returns 1 if this thread got it. done: -> 2 (release: the work is visible to
 * whoever sees 2). wait: until 2, counted in `b`'s waits / stalls of thread `tid` like a
 * barrier wait. */
int crnn__flag_claim(int *f);
void crnn__flag_done(int *f);
void crnn__flag_wait(crnn__barrier *b, int tid, int *f);

#endif
