#include "kernels/iter.h"
#include "kernels/parallel.h"

#include <math.h>

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
    int64_t unit; /* ranges are in whole units of this many elements */
} iter_job;

static void iter_range(int64_t b, int64_t e, void *arg)
{
    const iter_job *J = arg;
    run_range(J->it, J->kern, J->arg, b * J->unit, e * J->unit);
}

/* ---- reductions on several threads ---------------------------------------- */
typedef struct {
    const nb__iter *it; /* operand 0 is replaced per part by its partial buffer */
    nb__kern kern;
    const void *arg;
    int parts;
    int64_t total, out_n, esize;
    char *partials;           /* parts * out_n elements */
    int64_t pst[NB_MAX_DIMS]; /* byte strides of a partial over the iteration dims */
} red_job;

static void red_part(int64_t b, int64_t e, void *arg)
{
    const red_job *J = arg;
    for (int64_t k = b; k < e; k++) {
        nb__iter it = *J->it;
        it.ptr[0] = J->partials + k * J->out_n * J->esize;
        for (int i = 0; i < it.ndim; i++)
            it.st[0][i] = J->pst[i];
        run_range(&it, J->kern, J->arg, J->total * k / J->parts, J->total * (k + 1) / J->parts);
    }
}

static void fill_init(char *p, int64_t n, int64_t esize, int combine)
{
    double v = combine > 0 ? -INFINITY : combine < 0 ? INFINITY : 0.0;
    if (esize == 4)
        for (int64_t i = 0; i < n; i++)
            ((float *)p)[i] = (float)v;
    else
        for (int64_t i = 0; i < n; i++)
            ((double *)p)[i] = v;
}

#define NB__COMBINE(a, b, c) ((c) == 0 ? (a) + (b) : (((c) > 0 ? (b) > (a) : (b) < (a)) || (b) != (b)) ? (b) : (a))

/* target (operand 0's strides, over the kept dims) op= partial (contiguous) */
static void combine_into(const nb__iter *it, const int64_t *pst, const char *part, int combine)
{
    int64_t idx[NB_MAX_DIMS] = {0}, n = 1;
    for (int i = 0; i < it->ndim; i++)
        if (pst[i] != 0)
            n *= it->shape[i];
    for (int64_t c = 0; c < n; c++) {
        int64_t off = 0, poff = 0;
        for (int i = 0; i < it->ndim; i++) {
            off += idx[i] * it->st[0][i];
            poff += idx[i] * pst[i];
        }
        char *t = it->ptr[0] + off;
        const char *p = part + poff;
        if (it->esize[0] == 4) {
            float a = *(float *)t, b = *(const float *)p;
            *(float *)t = NB__COMBINE(a, b, combine);
        } else {
            double a = *(double *)t, b = *(const double *)p;
            *(double *)t = NB__COMBINE(a, b, combine);
        }
        for (int i = it->ndim - 1; i >= 0; i--) {
            if (pst[i] == 0)
                continue;
            if (++idx[i] < it->shape[i])
                break;
            idx[i] = 0;
        }
    }
}

typedef struct {
    const nb__iter *it;
    nb__kern kern;
    const void *arg;
    int dim; /* a kept dim of operand 0: threads take disjoint slices of it */
} split_job;

static void split_range(int64_t b, int64_t e, void *arg)
{
    const split_job *J = arg;
    nb__iter it = *J->it;
    for (int k = 0; k < it.nop; k++)
        it.ptr[k] += b * it.st[k][J->dim];
    it.shape[J->dim] = e - b;
    run_range(&it, J->kern, J->arg, 0, nb__prod(it.ndim, it.shape));
}

static void run_reduce(nb__iter *it, nb__kern kern, const void *arg, nb_ctx *ctx, int combine,
                       int64_t total)
{
    int nt = ctx->nthreads, best = -1;
    int64_t out_n = 1;
    for (int i = 0; i < it->ndim; i++)
        if (it->st[0][i] != 0) {
            out_n *= it->shape[i];
            if (best < 0 || it->shape[i] > it->shape[best])
                best = i;
        }
    if (best >= 0 && it->shape[best] >= 2 * nt) {
        /* each thread owns a slice of the outputs */
        split_job J = {it, kern, arg, best};
        nb__parallel_for(nt, it->shape[best], total / it->shape[best], split_range, &J);
        return;
    }
    /* few outputs (a full sum, say): private partial results, then combined */
    red_job R = {it, kern, arg, nt, total, out_n, it->esize[0], NULL, {0}};
    if (!(it->esize[0] == 4 || it->esize[0] == 8) ||
        !(R.partials = nb__arena_alloc(ctx, (size_t)(out_n * nt * it->esize[0])))) {
        run_range(it, kern, arg, 0, total); /* no room for partials: serial */
        return;
    }
    int64_t s = it->esize[0];
    for (int i = it->ndim - 1; i >= 0; i--) {
        R.pst[i] = it->st[0][i] != 0 ? s : 0;
        if (it->st[0][i] != 0)
            s *= it->shape[i];
    }
    fill_init(R.partials, out_n * nt, it->esize[0], combine);
    nb__parallel_for(nt, nt, NB__PAR_MIN, red_part, &R);
    for (int k = 0; k < nt; k++)
        combine_into(it, R.pst, R.partials + k * out_n * it->esize[0], combine);
}

static void iter_run_any(nb__iter *it, nb__kern kern, const void *arg, nb_ctx *ctx, int combine)
{
    int nthreads = ctx ? ctx->nthreads : 1;
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
    if (nthreads <= 1 || total < NB__PAR_MIN) {
        run_range(it, kern, arg, 0, total);
        return;
    }
    for (int i = 0; i < it->ndim; i++)
        if (it->st[0][i] == 0) {
            run_reduce(it, kern, arg, ctx, combine, total);
            return;
        }
    iter_job J = {it, kern, arg, 1};
    nb__parallel_for(nthreads, total, 1, iter_range, &J);
}

void nb__iter_run(nb__iter *it, nb__kern kern, const void *arg, nb_ctx *ctx)
{
    iter_run_any(it, kern, arg, ctx, 0);
}

void nb__iter_run_red(nb__iter *it, nb__kern kern, const void *arg, nb_ctx *ctx, int combine)
{
    iter_run_any(it, kern, arg, ctx, combine);
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
