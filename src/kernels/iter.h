/* Strided N-d iteration shared by every elementwise and reduction kernel.
 *
 * Operands are viewed over one common shape (broadcast operands have stride
 * 0). Dimensions of size 1 are dropped and adjacent dimensions that are
 * contiguous in every operand are merged, so the common cases (contiguous,
 * row broadcast, column broadcast) become one or two dimensions. A kernel is
 * called once per innermost row with byte strides for that row. */
#ifndef NB_ITER_H
#define NB_ITER_H

#include "core/internal.h"

#define NB__MAX_OPS 6
/* Below this many elements the work is not worth waking threads for. */
#define NB__PAR_MIN 32768

typedef void (*nb__kern)(int64_t n, char *const *p, const int64_t *s, const void *arg);

typedef struct nb__iter {
    int ndim, nop;
    bool all_contig; /* every operand is contiguous over the whole shape */
    int64_t shape[NB_MAX_DIMS];
    int64_t esize[NB__MAX_OPS];
    int64_t st[NB__MAX_OPS][NB_MAX_DIMS]; /* byte strides */
    char *ptr[NB__MAX_OPS];
} nb__iter;

void nb__iter_init(nb__iter *it, int ndim, const int64_t *shape);
/* Adds an operand: data of the element at index 0, strides in elements over
 * the iteration shape (0 where broadcast), element size in bytes. */
void nb__iter_add(nb__iter *it, void *data, const int64_t *strides, size_t esize);
/* Adds a tensor broadcast to the iteration shape. */
void nb__iter_add_t(nb__iter *it, const nb_tensor *t);
/* Runs k over every element, on ctx's threads when the work is large (ctx
 * may be NULL: serial). Operand 0 is the one written. When some of its
 * strides are 0 (a reduction: the kernel accumulates += into a broadcast
 * target) the threads either take whole outputs each (when the reduced dims
 * are innermost) or fill private partial results from the arena that are then
 * added into the target, so no two threads write one element. */
void nb__iter_run(nb__iter *it, nb__kern k, const void *arg, nb_ctx *ctx);
/* The same for kernels that combine by max (combine = 1) or min (-1)
 * instead of +=; partials start at -inf / +inf. */
void nb__iter_run_red(nb__iter *it, nb__kern k, const void *arg, nb_ctx *ctx, int combine);

/* True when t is contiguous and has exactly this shape: such operands need
 * no iterator at all (the common case in a training step). */
static inline bool nb__flat(const nb_tensor *t, int ndim, const int64_t *shape)
{
    if (t->ndim != ndim)
        return false;
    int64_t expect = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        if (t->shape[i] != shape[i] || (shape[i] != 1 && t->strides[i] != expect))
            return false;
        expect *= shape[i];
    }
    return true;
}

/* Runs k over n elements of operands that are all flat (contiguous, same
 * shape), split over threads when n is large. */
void nb__run_flat(nb__kern k, const void *arg, int64_t n, int nop, void *const *ptr,
                  const int64_t *esize, int nthreads);

/* Typed contiguous fast path test used inside kernels. */
#define NB__CONTIG2(s, T) ((s)[0] == (int64_t)sizeof(T) && (s)[1] == (int64_t)sizeof(T))
#define NB__CONTIG3(s, T) (NB__CONTIG2(s, T) && (s)[2] == (int64_t)sizeof(T))
#define NB__CONTIG4(s, T) (NB__CONTIG3(s, T) && (s)[3] == (int64_t)sizeof(T))

#endif
