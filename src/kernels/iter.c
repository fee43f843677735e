#include "kernels/iter.h"
#include "kernels/parallel.h"

void nb__iter_init(nb__iter *it, int ndim, const int64_t *shape)
{
    memset(it, 0, sizeof *it);
    it->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        it->shape[i] = shape[i];
}

void nb__iter_add(nb__iter *it, void *data, const int64_t *strides, size_t esize)
{
    int k = it->nop++;
    it->ptr[k] = data;
    for (int i = 0; i < it->ndim; i++)
        it->st[k][i] = strides[i] * (int64_t)esize;
}

void nb__iter_add_t(nb__iter *it, const nb_tensor *t)
{
    int64_t s[NB_MAX_DIMS];
    nb__bcast_strides(t, it->ndim, it->shape, s);
    nb__iter_add(it, t->data, s, nb_dtype_size(t->dtype));
}

static void coalesce(nb__iter *it)
{
    int n = 0;
    /* drop size-1 dims */
    for (int i = 0; i < it->ndim; i++) {
        if (it->shape[i] == 1)
            continue;
        it->shape[n] = it->shape[i];
        for (int k = 0; k < it->nop; k++)
            it->st[k][n] = it->st[k][i];
        n++;
    }
    it->ndim = n;
    if (n < 2)
        return;
    /* merge an outer dim into the inner one when contiguous in all operands */
    int w = 0;
    for (int i = 1; i < n; i++) {
        bool ok = true;
        for (int k = 0; k < it->nop && ok; k++)
            ok = it->st[k][w] == it->st[k][i] * it->shape[i];
        if (ok) {
            it->shape[w] *= it->shape[i];
            for (int k = 0; k < it->nop; k++)
                it->st[k][w] = it->st[k][i];
        } else {
            w++;
            it->shape[w] = it->shape[i];
            for (int k = 0; k < it->nop; k++)
                it->st[k][w] = it->st[k][i];
        }
    }
    it->ndim = w + 1;
}

/* Elements [start, end) in row-major order over the coalesced shape. */
static void run_range(const nb__iter *it, nb__kern kern, const void *arg, int64_t start,
                      int64_t end)
{
    int nd = it->ndim, nop = it->nop;
    if (nd == 0) {
        int64_t s0[NB__MAX_OPS] = {0};
        if (start < end)
            kern(1, it->ptr, s0, arg);
        return;
    }
    int64_t inner = it->shape[nd - 1];
    int64_t idx[NB_MAX_DIMS];
    int64_t rem = start;
    for (int i = nd - 1; i >= 0; i--) {
        idx[i] = rem % it->shape[i];
        rem /= it->shape[i];
    }
    char *p[NB__MAX_OPS];
    for (int k = 0; k < nop; k++) {
        int64_t off = 0;
        for (int i = 0; i < nd; i++)
            off += idx[i] * it->st[k][i];
        p[k] = it->ptr[k] + off;
    }
    int64_t s[NB__MAX_OPS];
    for (int k = 0; k < nop; k++)
        s[k] = it->st[k][nd - 1];
    int64_t pos = start;
    while (pos < end) {
        int64_t n = inner - idx[nd - 1];
        if (n > end - pos)
            n = end - pos;
        kern(n, p, s, arg);
        pos += n;
        if (pos >= end)
            break;
        /* advance to the start of the next row */
        for (int k = 0; k < nop; k++)
            p[k] += (inner - idx[nd - 1]) * s[k];
        idx[nd - 1] = 0;
        for (int k = 0; k < nop; k++)
            p[k] -= inner * s[k];
        for (int i = nd - 2; i >= 0; i--) {
            idx[i]++;
            for (int k = 0; k < nop; k++)
                p[k] += it->st[k][i];
            if (idx[i] < it->shape[i])
                break;
            for (int k = 0; k < nop; k++)
                p[k] -= it->shape[i] * it->st[k][i];
            idx[i] = 0;
        }
    }
}

typedef struct {
    const nb__iter *it;
    nb__kern kern;
    const void *arg;
} iter_job;

static void iter_range(int64_t b, int64_t e, void *arg)
{
    const iter_job *J = arg;
    run_range(J->it, J->kern, J->arg, b, e);
}

void nb__iter_run(nb__iter *it, nb__kern kern, const void *arg, int nthreads)
{
    int64_t total = nb__prod(it->ndim, it->shape);
    if (total == 0)
        return;
    coalesce(it);
    bool serial = nthreads <= 1 || total < NB__PAR_MIN;
    for (int i = 0; i < it->ndim && !serial; i++)
        if (it->st[0][i] == 0)
            serial = true;
    if (serial) {
        run_range(it, kern, arg, 0, total);
        return;
    }
    iter_job J = {it, kern, arg};
    nb__parallel_for(nthreads, total, 1, iter_range, &J);
}
