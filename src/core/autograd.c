/* The tape and the backward driver.
 *
 * Ops append a node per recorded result; the tape is a list from newest to
 * oldest, which is a reverse topological order because an op can only take
 * tensors that already exist. Backward seeds the output's gradient and visits
 * nodes newest first; a node whose output received no gradient does not lead
 * to the output and is skipped. Each backward function accumulates (+=) into
 * its inputs' gradients, which is what sums the contributions of a tensor used
 * several times (fan-out, weight sharing). */
#include "internal.h"
#include "kernels/iter.h"

bool nb__needs_grad(const nb_ctx *ctx, int n, nb_tensor *const *in)
{
    if (!ctx->grad_enabled)
        return false;
    for (int i = 0; i < n; i++)
        if (in[i] && (in[i]->flags & NB_REQUIRES_GRAD))
            return true;
    return false;
}

nb__node *nb__record(nb_ctx *ctx, nb__op_id op, nb_tensor *out, int n, nb_tensor *const *in)
{
    nb__node *node = nb__arena_alloc(ctx, sizeof *node);
    if (!node) {
        nb__arena_err(ctx, nb__ops[op].name, sizeof *node);
        return NULL;
    }
    node->saved[0] = node->saved[1] = NULL;
    memset(&node->a, 0, sizeof node->a);
    node->op = op;
    node->n_in = n;
    if (n <= NB__NODE_INLINE_IN) {
        node->in = node->in_inline;
    } else {
        node->in = nb__arena_alloc(ctx, sizeof(nb_tensor *) * (size_t)n);
        if (!node->in) {
            nb__arena_err(ctx, nb__ops[op].name, sizeof(nb_tensor *) * (size_t)n);
            return NULL;
        }
    }
    for (int i = 0; i < n; i++)
        node->in[i] = in[i];
    node->out = out;
    node->mod = ctx->cur_module;
    out->node_ = node;
    out->flags |= NB_REQUIRES_GRAD;
    node->prev = ctx->tape;
    ctx->tape = node;
    ctx->tape_len++;
    return node;
}

size_t nb_tape_length(const nb_ctx *ctx) { return ctx ? ctx->tape_len : 0; }

static nb_status grad_alloc(nb_ctx *ctx, nb_tensor *t, nb_tensor **g, bool zero);

nb_status nb__grad_of(nb_ctx *ctx, nb_tensor *t, nb_tensor **g)
{
    return grad_alloc(ctx, t, g, true);
}

nb_status nb__grad_of_w(nb_ctx *ctx, nb_tensor *t, nb_tensor **g, bool *fresh)
{
    *fresh = t && (t->flags & NB_REQUIRES_GRAD) && !t->grad && !(t->flags & NB_PERSISTENT);
    return grad_alloc(ctx, t, g, !*fresh);
}

static nb_status grad_alloc(nb_ctx *ctx, nb_tensor *t, nb_tensor **g, bool zero)
{
    *g = NULL;
    if (!t || !(t->flags & NB_REQUIRES_GRAD))
        return NB_OK;
    if (t->grad) {
        *g = t->grad;
        return NB_OK;
    }
    size_t bytes = (size_t)nb__numel(t) * nb__esize(t->dtype);
    nb_tensor *gt;
    if (t->flags & NB_PERSISTENT) {
        size_t head = (sizeof(nb_tensor) + NB__ALIGN - 1) & ~(size_t)(NB__ALIGN - 1);
        unsigned char *mem = nb__heap_alloc(ctx, head + bytes);
        if (!mem)
            return nb__err(ctx, NB_ERR_NOMEM, "backward: allocator failed for a %zu-byte gradient",
                           bytes);
        gt = (nb_tensor *)mem;
        memset(gt, 0, sizeof *gt);
        gt->data = mem + head;
        gt->flags = NB_PERSISTENT; /* freed with its tensor, not in the list */
    } else {
        gt = nb__new_step(ctx, t->dtype, t->ndim, t->shape);
        if (!gt)
            return ctx->err;
    }
    gt->dtype = t->dtype;
    gt->ndim = t->ndim;
    memcpy(gt->shape, t->shape, sizeof gt->shape);
    nb__contig_strides(t->ndim, t->shape, gt->strides);
    if (zero || (t->flags & NB_PERSISTENT))
        memset(gt->data, 0, bytes);
    t->grad = gt;
    *g = gt;
    return NB_OK;
}

nb_status nb_backward_with(nb_ctx *ctx, nb_tensor *out, const nb_tensor *grad)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (nb__null_in(ctx, "backward", 2, out, grad))
        return ctx->err;
    if (!(out->flags & NB_REQUIRES_GRAD))
        return nb__err(ctx, NB_ERR_GRAD,
                       "backward: the tensor does not require grad (no input of the ops that made "
                       "it requires grad, or grad mode was off)");
    if (grad->ndim != out->ndim || memcmp(grad->shape, out->shape, sizeof(int64_t) * (size_t)out->ndim)) {
        char a[NB__SHAPE_BUF], b[NB__SHAPE_BUF];
        return nb__err(ctx, NB_ERR_SHAPE, "backward: gradient shape %s does not match output %s",
                       nb_shape_str(grad, a, sizeof a), nb_shape_str(out, b, sizeof b));
    }
    if (grad->dtype != out->dtype)
        return nb__err(ctx, NB_ERR_DTYPE, "backward: gradient dtype %s does not match output %s",
                       nb_dtype_name(grad->dtype), nb_dtype_name(out->dtype));
    /* gradients of intermediate results from an earlier backward start over */
    for (nb__node *n = ctx->tape; n; n = n->prev)
        n->out->grad = NULL;
    nb_tensor *g;
    nb_status st = nb__grad_of(ctx, out, &g);
    if (st != NB_OK)
        return st;
    st = nb__acc_grad(ctx, g, grad, 1.0);
    if (st != NB_OK)
        return st;
    for (nb__node *n = ctx->tape; n; n = n->prev) {
        if (!n->out->grad)
            continue;
        st = nb__ops[n->op].backward(ctx, n);
        if (st != NB_OK)
            return st;
    }
    return NB_OK;
}

nb_status nb_backward(nb_ctx *ctx, nb_tensor *loss)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (nb__null_in(ctx, "backward", 1, loss))
        return ctx->err;
    if (nb__numel(loss) != 1) {
        char b[NB__SHAPE_BUF];
        return nb__err(ctx, NB_ERR_SHAPE,
                       "backward: output %s has %lld elements; give an upstream gradient with "
                       "nb_backward_with",
                       nb_shape_str(loss, b, sizeof b), (long long)nb__numel(loss));
    }
    if (!nb__is_float(loss->dtype))
        return nb__err(ctx, NB_ERR_DTYPE, "backward: output dtype %s is not float",
                       nb_dtype_name(loss->dtype));
    nb_tensor *one = nb_full(ctx, loss->dtype, loss->ndim, loss->shape, 1.0);
    if (!one)
        return ctx->err;
    return nb_backward_with(ctx, loss, one);
}

void nb_zero_grad(nb_tensor *t)
{
    if (t && t->grad)
        memset(t->grad->data, 0, (size_t)nb__numel(t->grad) * nb__esize(t->grad->dtype));
}

void nb_zero_grads(nb_ctx *ctx)
{
    if (!ctx)
        return;
    for (nb_tensor *t = ctx->persist; t; t = t->next_)
        nb_zero_grad(t);
}

nb_tensor *nb_detach(nb_ctx *ctx, nb_tensor *t)
{
    if (!ctx || nb__null_in(ctx, "detach", 1, t))
        return NULL;
    nb_tensor *v = nb__new_view(ctx, t);
    return v; /* no node, no NB_REQUIRES_GRAD */
}

nb_status nb_set_requires_grad(nb_ctx *ctx, nb_tensor *t, bool on)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (nb__null_in(ctx, "set_requires_grad", 1, t))
        return ctx->err;
    if (t->node_)
        return nb__err(ctx, NB_ERR_GRAD,
                       "set_requires_grad: only leaves can change; this tensor was made by op '%s'",
                       nb__ops[t->node_->op].name);
    if (on && !nb__is_float(t->dtype))
        return nb__err(ctx, NB_ERR_DTYPE, "set_requires_grad: dtype %s cannot require grad",
                       nb_dtype_name(t->dtype));
    if (on)
        t->flags |= NB_REQUIRES_GRAD;
    else
        t->flags &= ~(uint32_t)NB_REQUIRES_GRAD;
    return NB_OK;
}

/* ---- accumulation with un-broadcasting -------------------------------- */
typedef struct {
    double alpha;
    bool write; /* store alpha src instead of adding it */
} acc_arg;

#define NB__ACC_KERN(NAME, T)                                                            \
    static void NAME(int64_t n, char *const *p, const int64_t *s, const void *arg)       \
    {                                                                                    \
        const T alpha = (T)((const acc_arg *)arg)->alpha;                                \
        if (NB__CONTIG2(s, T)) {                                                         \
            T *d = (T *)p[0];                                                            \
            const T *x = (const T *)p[1];                                                \
            if (((const acc_arg *)arg)->write)                                           \
                for (int64_t i = 0; i < n; i++)                                          \
                    d[i] = alpha * x[i];                                                 \
            else                                                                         \
                for (int64_t i = 0; i < n; i++)                                          \
                    d[i] += alpha * x[i];                                                \
        } else if (s[0] == 0) {                                                          \
            double acc = 0; /* sums of many terms keep double precision */               \
            for (int64_t i = 0; i < n; i++)                                              \
                acc += *(const T *)(p[1] + i * s[1]);                                    \
            *(T *)p[0] += (T)(alpha * acc);                                              \
        } else {                                                                         \
            for (int64_t i = 0; i < n; i++)                                              \
                *(T *)(p[0] + i * s[0]) += alpha * *(const T *)(p[1] + i * s[1]);        \
        }                                                                                \
    }
NB__ACC_KERN(acc_f, float)
NB__ACC_KERN(acc_d, double)

nb_status nb__acc_grad(nb_ctx *ctx, nb_tensor *g, const nb_tensor *src, double alpha)
{
    return nb__acc_grad_w(ctx, g, src, alpha, false);
}

nb_status nb__acc_grad_w(nb_ctx *ctx, nb_tensor *g, const nb_tensor *src, double alpha, bool write)
{
    /* iterate over the broadcast of both shapes: where g is smaller its
     * stride is 0 and terms are summed; where src is smaller it is repeated */
    acc_arg a = {alpha, false};
    nb__kern k = g->dtype == NB_F32 ? acc_f : acc_d;
    if (nb__flat(g, src->ndim, src->shape) && nb__flat(src, src->ndim, src->shape)) {
        a.write = write;
        int64_t es = (int64_t)nb__esize(g->dtype), esz[2] = {es, es};
        void *p[2] = {g->data, src->data};
        nb__run_flat(k, &a, nb__numel(src), 2, p, esz, ctx->nthreads);
        return NB_OK;
    }
    int64_t shape[NB_MAX_DIMS];
    int nd = nb__broadcast_shape(g->ndim, g->shape, src->ndim, src->shape, shape);
    if (nd < 0) {
        char sg[NB__SHAPE_BUF], ss[NB__SHAPE_BUF];
        return nb__err(ctx, NB_ERR_SHAPE, "gradient accumulation: %s and %s do not broadcast",
                       nb_shape_str(g, sg, sizeof sg), nb_shape_str(src, ss, sizeof ss));
    }
    if (write) /* not the flat case: start from zero and accumulate */
        memset(g->data, 0, (size_t)nb__numel(g) * nb__esize(g->dtype));
    nb__iter it;
    nb__iter_init(&it, nd, shape);
    nb__iter_add_t(&it, g);
    nb__iter_add_t(&it, src);
    nb__iter_run(&it, k, &a, ctx);
    return NB_OK;
}
