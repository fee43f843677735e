#include "kernels/parallel.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* about 30 us of simple work: below it, waking threads costs more than it saves */
#define NB__PAR_WORK 32768

void nb__parallel_for(int nthreads, int64_t n, int64_t cost, nb__range_fn fn, void *arg)
{
    if (n <= 0)
        return;
    if (nthreads > n)
        nthreads = (int)n;
    if (nthreads <= 1 || n * (cost > 0 ? cost : 1) < NB__PAR_WORK) {
        fn(0, n, arg);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int64_t b = n * t / nt, e = n * (t + 1) / nt;
        if (b < e)
            fn(b, e, arg);
    }
#else
    fn(0, n, arg);
#endif
}
