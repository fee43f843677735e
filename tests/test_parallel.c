/* nabla's worker pool (src/kernels/parallel.c): every index is run exactly
 * once in OpenMP's static ranges (range t of nt is [n t / nt, n (t+1) / nt))
 * for 2-8 threads; loops called from two program threads at once and loops
 * nested inside a range (both find the pool busy and run the same ranges
 * serially) still cover every index once; tiny loops stay on the caller. */
#include "kernels/parallel.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define N 10007

typedef struct {
    int hits[N];
    int64_t starts[16], n_starts;
    pthread_mutex_t mu;
    int nested; /* run a nested loop over 0..99 in each range */
    int inner[100];
} job_t;

static void inner_fn(int64_t b, int64_t e, void *arg)
{
    int *in = arg;
    for (int64_t i = b; i < e; i++)
        __atomic_add_fetch(&in[i], 1, __ATOMIC_RELAXED);
}

static void fn(int64_t b, int64_t e, void *arg)
{
    job_t *j = arg;
    pthread_mutex_lock(&j->mu);
    if (j->n_starts < 16)
        j->starts[j->n_starts++] = b;
    pthread_mutex_unlock(&j->mu);
    for (int64_t i = b; i < e; i++)
        j->hits[i]++;
    if (j->nested)
        nb__parallel_for(2, 100, 1 << 20, inner_fn, j->inner);
}

static void run_check(job_t *j, int nt, int nested)
{
    memset(j->hits, 0, sizeof j->hits);
    memset(j->inner, 0, sizeof j->inner);
    j->n_starts = 0;
    j->nested = nested;
    nb__parallel_for(nt, N, 1 << 20, fn, j);
    for (int i = 0; i < N; i++)
        assert_int_equal(j->hits[i], 1);
    assert_int_equal(j->n_starts, nt);
    for (int t = 0; t < nt; t++) { /* each range starts where the static schedule says */
        int64_t want = (int64_t)N * t / nt, found = 0;
        for (int k = 0; k < j->n_starts; k++)
            found += j->starts[k] == want;
        assert_int_equal(found, 1);
    }
    for (int i = 0; i < 100; i++)
        assert_int_equal(j->inner[i], nested ? nt : 0);
}

static void test_ranges(void **state)
{
    (void)state;
    static job_t j;
    pthread_mutex_init(&j.mu, NULL);
    for (int rep = 0; rep < 50; rep++)
        for (int nt = 2; nt <= 8; nt++)
            run_check(&j, nt, rep % 2);
    /* tiny loops: one call on the caller */
    j.n_starts = 0;
    memset(j.hits, 0, sizeof j.hits);
    nb__parallel_for(4, 10, 1, fn, &j);
    assert_int_equal(j.n_starts, 1);
    pthread_mutex_destroy(&j.mu);
}

static void *user_thread(void *arg)
{
    job_t *j = arg;
    for (int rep = 0; rep < 300; rep++)
        run_check(j, 2 + rep % 3, 0);
    return NULL;
}

static void test_two_callers(void **state)
{
    (void)state;
    static job_t a, b;
    pthread_mutex_init(&a.mu, NULL);
    pthread_mutex_init(&b.mu, NULL);
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, user_thread, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, user_thread, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_mutex_destroy(&a.mu);
    pthread_mutex_destroy(&b.mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_two_callers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
