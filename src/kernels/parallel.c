/* nabla's threads: one process-wide pool of workers that spin briefly for
 * work and then sleep on a condition variable.
 *
 * Why not OpenMP (used here until measured otherwise): libgomp's workers
 * spin-wait at every barrier (OMP_WAIT_POLICY=active unless the environment
 * says otherwise before libgomp loads, which a library cannot do). When
 * another process holds one of the cores, each of the thousands of barriers
 * of a training step waits for a descheduled thread while the spinning one
 * burns the core it needs: on this 2-core machine with a second job running,
 * a small GPT epoch took 68 s at 2 threads against 0.7 s at 1, and the MLP
 * accuracy test 703 s instead of 19. Here a waiting thread spins for about
 * 20 microseconds (as long as a region takes when the machine is ours), then
 * sleeps, and the caller does the same while waiting for the others.
 *
 * Ranges are the same as OpenMP's static schedule gave: range t of nt is
 * [n t / nt, n (t + 1) / nt), so reductions split the same way whatever runs
 * them. A call made while the pool is busy (another thread of the program,
 * or a parallel loop inside a range) runs its ranges one after another on the
 * calling thread: the same partition, so the same results, only serial. */
#include "kernels/parallel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* about 30 us of simple work: below it, waking threads costs more than it saves */
#define NB__PAR_WORK 32768
#define NB__POOL_MAX 64
#define NB__SPIN 100000 /* polls of an atomic before sleeping: ~100 us */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    atomic_flag busy;             /* held by the caller running a loop */
    /* what the workers poll and what they write, each on its own cache line */
    _Alignas(64) atomic_uint_fast64_t gen; /* bumped for each loop */
    _Alignas(64) atomic_int pending;       /* workers not done with this loop */
    _Alignas(64) atomic_int sleepers;      /* workers waiting on work_cv */
    _Alignas(64) int nworkers;    /* started */
    /* the loop */
    nb__range_fn fn;
    void *arg;
    int64_t n;
    int nt;
} pool_t;

static pool_t P = {.mu = PTHREAD_MUTEX_INITIALIZER,
                   .work_cv = PTHREAD_COND_INITIALIZER,
                   .done_cv = PTHREAD_COND_INITIALIZER,
                   .busy = ATOMIC_FLAG_INIT};

static void run_range(int t)
{
    int64_t b = P.n * t / P.nt, e = P.n * (t + 1) / P.nt;
    if (b < e)
        P.fn(b, e, P.arg);
}

static uint_fast64_t start_gen[NB__POOL_MAX]; /* the generation a worker starts after */

static void *worker(void *idp)
{
    int id = (int)(intptr_t)idp; /* runs range id + 1 of a loop, if it has one */
    uint_fast64_t seen = start_gen[id];
    for (;;) {
        uint_fast64_t g = atomic_load(&P.gen);
        for (int i = 0; g == seen && i < NB__SPIN; i++)
            g = atomic_load_explicit(&P.gen, memory_order_acquire);
        if (g == seen) {
            pthread_mutex_lock(&P.mu);
            atomic_fetch_add(&P.sleepers, 1);
            while ((g = atomic_load(&P.gen)) == seen) /* seq_cst: pairs with the caller's */
                pthread_cond_wait(&P.work_cv, &P.mu);
            atomic_fetch_sub(&P.sleepers, 1);
            pthread_mutex_unlock(&P.mu);
        }
        seen = g;
        if (id + 1 < P.nt)
            run_range(id + 1);
        /* every worker reports every loop, so none still reads this loop's
         * fields when the caller sets up the next */
        if (atomic_fetch_sub_explicit(&P.pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&P.mu); /* the last one: wake a sleeping caller */
            pthread_cond_signal(&P.done_cv);
            pthread_mutex_unlock(&P.mu);
        }
    }
    return NULL;
}

/* Starts workers up to `want`; returns how many run (fewer when the system
 * refuses a thread). Called with the pool held, so the generation is stable. */
static int ensure_workers(int want)
{
    while (P.nworkers < want && P.nworkers < NB__POOL_MAX - 1) {
        pthread_t th;
        pthread_attr_t at;
        if (pthread_attr_init(&at) != 0)
            break;
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        start_gen[P.nworkers] = atomic_load(&P.gen);
        int rc = pthread_create(&th, &at, worker, (void *)(intptr_t)P.nworkers);
        pthread_attr_destroy(&at);
        if (rc != 0)
            break;
        P.nworkers++;
    }
    return P.nworkers;
}

static void serial(int nt, int64_t n, nb__range_fn fn, void *arg)
{
    for (int t = 0; t < nt; t++) {
        int64_t b = n * t / nt, e = n * (t + 1) / nt;
        if (b < e)
            fn(b, e, arg);
    }
}

void nb__parallel_for(int nthreads, int64_t n, int64_t cost, nb__range_fn fn, void *arg)
{
    if (n <= 0)
        return;
    if (nthreads > n)
        nthreads = (int)n;
    if (nthreads > NB__POOL_MAX)
        nthreads = NB__POOL_MAX;
    if (nthreads <= 1 || n * (cost > 0 ? cost : 1) < NB__PAR_WORK) {
        fn(0, n, arg);
        return;
    }
    if (atomic_flag_test_and_set_explicit(&P.busy, memory_order_acquire)) {
        serial(nthreads, n, fn, arg); /* the pool is running another loop */
        return;
    }
    int nt = ensure_workers(nthreads - 1) + 1; /* all started workers take part */
    if (nt < nthreads) { /* fewer threads than asked: keep the partition anyway */
        atomic_flag_clear_explicit(&P.busy, memory_order_release);
        serial(nthreads, n, fn, arg);
        return;
    }
    P.fn = fn;
    P.arg = arg;
    P.n = n;
    P.nt = nthreads;
    atomic_store_explicit(&P.pending, nt - 1, memory_order_relaxed); /* every worker */
    atomic_fetch_add(&P.gen, 1); /* seq_cst: then the sleepers count is current */
    if (atomic_load(&P.sleepers) > 0) {
        pthread_mutex_lock(&P.mu);
        pthread_cond_broadcast(&P.work_cv);
        pthread_mutex_unlock(&P.mu);
    }
    run_range(0);
    for (int i = 0; atomic_load_explicit(&P.pending, memory_order_acquire) > 0 && i < NB__SPIN; i++)
        ;
    if (atomic_load_explicit(&P.pending, memory_order_acquire) > 0) {
        pthread_mutex_lock(&P.mu);
        while (atomic_load_explicit(&P.pending, memory_order_acquire) > 0)
            pthread_cond_wait(&P.done_cv, &P.mu);
        pthread_mutex_unlock(&P.mu);
    }
    atomic_flag_clear_explicit(&P.busy, memory_order_release);
}
