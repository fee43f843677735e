#include "kernels/iter.h"
#include "kernels/parallel.h"

void nb__iter_init(nb__iter *it, int ndim, const int64_t *shape)
{
    it->ndim = ndim;
    it->nop = 0;
    it->all_contig = true;
    for (int i = 0; i < ndim; i++)
        it->shape[i] = shape[i];
}

void nb__iter_add(nb__iter *it, void *data, const int64_t *strides, size_t esize)
{
    int k = it->nop++;
    it->ptr[k] = data;
    it->esize[k] = (int64_t)esize;
    it->all_contig = false;
    for (int i = 0; i < it->ndim; i++)
        it->st[k][i] = strides[i] * (int64_t)esize;
}

void nb__iter_add_t(nb__iter *it, const nb_tensor *t)
{
    int k = it->nop++, nd = it->ndim, off = nd - t->ndim;
    int64_t es = (int64_t)nb__esize(t->dtype), expect = 1;
    it->ptr[k] = t->data;
    it->esize[k] = es;
    /* byte strides over the iteration shape; 0 where t is broadcast */
    for (int i = nd - 1; i >= 0; i--) {
        int j = i - off;
        int64_t st = (j >= 0 && t->shape[j] == it->shape[i]) ? t->strides[j] : 0;
        if (it->shape[i] != 1 && st != expect)
            it->all_contig = false;
        expect *= it->shape[i];
        it->st[k][i] = st * es;
    }
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
    if (it->all_contig) { /* the common case: one flat row */
        it->ndim = 1;
        it->shape[0] = total;
        for (int k = 0; k < it->nop; k++)
            it->st[k][0] = it->esize[k];
        if (total < NB__PAR_MIN || nthreads <= 1) {
            kern(total, it->ptr, it->esize, arg);
            return;
        }
    } else {
        coalesce(it);
    }
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

typedef struct {
    nb__kern kern;
    const void *arg;
    int nop;
    void *const *ptr;
    const int64_t *esize;
} flat_job;

static void flat_range(int64_t b, int64_t e, void *arg)
{
    const flat_job *J = arg;
    char *p[NB__MAX_OPS];
    for (int k = 0; k < J->nop; k++)
        p[k] = (char *)J->ptr[k] + b * J->esize[k];
    J->kern(e - b, p, J->esize, J->arg);
}

void nb__run_flat(nb__kern k, const void *arg, int64_t n, int nop, void *const *ptr,
                  const int64_t *esize, int nthreads)
{
    if (n <= 0)
        return;
    if (n < NB__PAR_MIN || nthreads <= 1) {
        k(n, (char *const *)ptr, esize, arg);
        return;
    }
    flat_job J = {k, arg, nop, ptr, esize};
    nb__parallel_for(nthreads, n, 1, flat_range, &J);
}
