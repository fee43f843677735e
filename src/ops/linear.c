/* linear (torch.nn.functional.linear), fused:
 *   y = x W^T + b          x [R, in] (leading dims folded into R), W [out, in], b [out]
 *   dx += g W              dW += g^T x              db += sum over rows of g
 * Nothing saved beyond the inputs. Why fused rather than matmul(x,
 * transpose(W)) + b: the composition routes dW through the transposed view's
 * own gradient buffer (a zeroed [in, out] buffer, then a strided copy-add
 * into W's gradient) and copies g once more for the bias add; measured on the
 * Fashion-MNIST MLP those passes cost more than the GEMMs' packing. */
#include "core/internal.h"
#include "kernels/gemm.h"
#include "kernels/parallel.h"

#include <stdio.h>

nb_tensor *nb_linear_op(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b)
{
    if (!ctx || nb__null_in(ctx, "linear", 2, x, w))
        return NULL;
    char sx[NB__SHAPE_BUF], sw[NB__SHAPE_BUF], sb[NB__SHAPE_BUF];
    if (!nb__is_float(x->dtype) || x->dtype != w->dtype || (b && b->dtype != x->dtype)) {
        nb__err(ctx, NB_ERR_DTYPE, "linear: needs float tensors of one dtype, got %s, %s%s%s",
                nb_dtype_name(x->dtype), nb_dtype_name(w->dtype), b ? " and " : "",
                b ? nb_dtype_name(b->dtype) : "");
        return NULL;
    }
    if (x->ndim < 1 || w->ndim != 2 || x->shape[x->ndim - 1] != w->shape[1] ||
        (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))) {
        nb__err(ctx, NB_ERR_SHAPE, "linear: x %s, weight %s and bias %s do not fit (x [..., in], "
                "weight [out, in], bias [out])",
                nb_shape_str(x, sx, sizeof sx), nb_shape_str(w, sw, sizeof sw),
                b ? nb_shape_str(b, sb, sizeof sb) : "none");
        return NULL;
    }
    x = nb_contiguous(ctx, x);
    w = nb_contiguous(ctx, w);
    b = b ? nb_contiguous(ctx, b) : NULL;
    if (!x || !w)
        return NULL;
    int64_t in = w->shape[1], out = w->shape[0], R = in ? nb__numel(x) / in : 0;
    int64_t ys[NB_MAX_DIMS];
    for (int d = 0; d < x->ndim - 1; d++)
        ys[d] = x->shape[d];
    ys[x->ndim - 1] = out;
    nb_tensor *y = nb__new_step(ctx, x->dtype, x->ndim, ys);
    if (!y)
        return NULL;
    size_t es = nb__esize(x->dtype);
    double beta = 0;
    if (b && R > 0) { /* rows start as the bias; the GEMM adds x W^T */
        for (int64_t r = 0; r < R; r++)
            memcpy((char *)y->data + r * out * (int64_t)es, b->data, (size_t)out * es);
        beta = 1;
    }
    nb__mat X = {x->data, in, 1}, Wt = {w->data, 1, in};
    nb__gemm(x->dtype, R, out, in, 1.0, X, Wt, beta, y->data, out, ctx->nthreads);
    nb_tensor *ins[3] = {x, w, b};
    if (nb__needs_grad(ctx, b ? 3 : 2, ins) && !nb__record(ctx, NB__OP_LINEAR, y, b ? 3 : 2, ins))
        return NULL;
    return y;
}

typedef struct {
    const void *g;
    void *db;
    int64_t R, out;
} colsum_job;

#define COLSUM(T, SUF)                                                                   \
    static void colsum_##SUF(int64_t c0, int64_t c1, void *arg)                          \
    {                                                                                    \
        const colsum_job *J = arg;                                                       \
        const T *g = J->g;                                                               \
        T *db = J->db;                                                                   \
        for (int64_t r = 0; r < J->R; r++)                                               \
            for (int64_t c = c0; c < c1; c++)                                            \
                db[c] += g[r * J->out + c];                                              \
    }
COLSUM(float, f32)
COLSUM(double, f64)

nb_status nb__linear_backward(nb_ctx *ctx, nb__node *n)
{
    nb_tensor *x = n->in[0], *w = n->in[1], *b = n->n_in > 2 ? n->in[2] : NULL, *g = n->out->grad;
    nb_tensor *dx, *dw, *db = NULL;
    bool fresh; /* x's gradient new here: the product stores it, no zeroing pass */
    nb_status st = nb__grad_of_w(ctx, x, &dx, &fresh);
    if (st == NB_OK)
        st = nb__grad_of(ctx, w, &dw);
    if (st == NB_OK && b)
        st = nb__grad_of(ctx, b, &db);
    if (st != NB_OK)
        return st;
    int64_t in = w->shape[1], out = w->shape[0], R = in ? nb__numel(x) / in : 0;
    nb__mat G = {g->data, out, 1};
    if (dx) { /* [R, in] += [R, out] @ [out, in] */
        nb__mat W = {w->data, in, 1};
        nb__gemm(x->dtype, R, in, out, 1.0, G, W, fresh ? 0.0 : 1.0, dx->data, in, ctx->nthreads);
    }
    if (dw) { /* [out, in] += [out, R] @ [R, in] */
        nb__mat Gt = {g->data, 1, out}, X = {x->data, in, 1};
        nb__gemm(x->dtype, out, in, R, 1.0, Gt, X, 1.0, dw->data, in, ctx->nthreads);
    }
    if (db) {
        colsum_job J = {g->data, db->data, R, out};
        nb__parallel_for(ctx->nthreads, out, R, x->dtype == NB_F32 ? colsum_f32 : colsum_f64, &J);
    }
    return NB_OK;
}
