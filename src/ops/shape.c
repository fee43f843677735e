/* Views and copies. A view shares its input's data; its backward routes the
 * gradient back through the same index map, applied to the input's gradient
 * buffer (which is contiguous, so the map is rebuilt on its strides).
 *   reshape     view (or copy when not contiguous)   dx += g in row-major order
 *   permute     view: dims reordered                  dx (permuted view) += g
 *   slice       view: start/stop/step on one axis     dx (sliced view) += g
 *   expand      view: stride 0 on broadcast dims      dx += sum of g over them
 *   contiguous  copy                                  dx += g
 *   cast        copy to another float dtype           dx += cast back of g
 * squeeze, unsqueeze and flatten are reshapes. */
#include "core/internal.h"

#include <stdio.h>

static nb_tensor *record1(nb_ctx *ctx, nb__op_id op, nb_tensor *y, nb_tensor *x,
                          const nb__attrs *at)
{
    if (!y)
        return NULL;
    if (nb__needs_grad(ctx, 1, &x)) {
        nb__node *n = nb__record(ctx, op, y, 1, &x);
        if (!n)
            return NULL;
        if (at)
            n->a = *at;
    }
    return y;
}

/* ---- reshape ----------------------------------------------------------- */
static nb_tensor *reshape_view(nb_ctx *ctx, nb_tensor *a, int ndim, const int64_t *shape,
                               const int64_t *strides)
{
    nb_tensor *y = nb__new_view(ctx, a);
    if (!y)
        return NULL;
    y->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        y->shape[i] = shape[i];
        y->strides[i] = strides[i];
    }
    return record1(ctx, NB__OP_RESHAPE, y, a, NULL);
}

nb_tensor *nb_reshape(nb_ctx *ctx, nb_tensor *a, int ndim, const int64_t *shape)
{
    if (!ctx || nb__null_in(ctx, "reshape", 1, a))
        return NULL;
    if (ndim < 0 || ndim > NB_MAX_DIMS || (ndim > 0 && !shape)) {
        nb__err(ctx, NB_ERR_SHAPE, "reshape: %d dimensions (0..%d allowed)", ndim, NB_MAX_DIMS);
        return NULL;
    }
    int64_t s[NB_MAX_DIMS], known = 1;
    int infer = -1;
    char b1[NB__SHAPE_BUF], b2[NB__SHAPE_BUF];
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (s[i] == -1 && infer < 0) {
            infer = i;
        } else if (s[i] < 0) {
            nb__err(ctx, NB_ERR_SHAPE, "reshape: bad size %lld in %s (one -1 allowed)",
                    (long long)s[i], nb__shape_fmt(ndim, shape, b1, sizeof b1));
            return NULL;
        } else {
            if (s[i] > 0 && known > INT64_MAX / s[i]) {
                nb__err(ctx, NB_ERR_SHAPE, "reshape: shape too large");
                return NULL;
            }
            known *= s[i];
        }
    }
    int64_t n = nb__numel(a);
    if (infer >= 0) {
        if (known == 0 || n % known != 0) {
            nb__err(ctx, NB_ERR_SHAPE, "reshape: cannot view %s as %s",
                    nb_shape_str(a, b1, sizeof b1), nb__shape_fmt(ndim, shape, b2, sizeof b2));
            return NULL;
        }
        s[infer] = n / known;
        known *= s[infer];
    }
    if (known != n) {
        nb__err(ctx, NB_ERR_SHAPE, "reshape: %s has %lld elements, %s needs %lld",
                nb_shape_str(a, b1, sizeof b1), (long long)n,
                nb__shape_fmt(ndim, s, b2, sizeof b2), (long long)known);
        return NULL;
    }
    a = nb_contiguous(ctx, a);
    if (!a)
        return NULL;
    int64_t st[NB_MAX_DIMS];
    nb__contig_strides(ndim, s, st);
    return reshape_view(ctx, a, ndim, s, st);
}

nb_status nb__reshape_backward(nb_ctx *ctx, nb__node *n)
{
    nb_tensor *x = n->in[0], *dx;
    nb_status st = nb__grad_of(ctx, x, &dx);
    if (st != NB_OK || !dx)
        return st;
    /* both buffers are contiguous and in the same row-major order */
    nb_tensor f = *dx, g = *n->out->grad;
    f.ndim = g.ndim = 1;
    f.shape[0] = g.shape[0] = nb__numel(dx);
    f.strides[0] = g.strides[0] = 1;
    return nb__acc_grad(ctx, &f, &g, 1.0);
}

nb_tensor *nb_squeeze(nb_ctx *ctx, nb_tensor *a, int axis)
{
    if (!ctx || nb__null_in(ctx, "squeeze", 1, a))
        return NULL;
    int ax = nb__axis(axis, a->ndim);
    if (ax < 0) {
        char b[NB__SHAPE_BUF];
        nb__err(ctx, NB_ERR_AXIS, "squeeze: axis %d out of range for %s", axis,
                nb_shape_str(a, b, sizeof b));
        return NULL;
    }
    if (a->shape[ax] != 1)
        return a; /* as torch.squeeze(dim): nothing to remove */
    int64_t s[NB_MAX_DIMS], st[NB_MAX_DIMS];
    int k = 0;
    for (int d = 0; d < a->ndim; d++)
        if (d != ax) {
            s[k] = a->shape[d];
            st[k++] = a->strides[d];
        }
    return reshape_view(ctx, a, k, s, st);
}

nb_tensor *nb_unsqueeze(nb_ctx *ctx, nb_tensor *a, int axis)
{
    if (!ctx || nb__null_in(ctx, "unsqueeze", 1, a))
        return NULL;
    int ax = nb__axis(axis, a->ndim + 1);
    if (ax < 0 || a->ndim >= NB_MAX_DIMS) {
        char b[NB__SHAPE_BUF];
        nb__err(ctx, NB_ERR_AXIS, "unsqueeze: axis %d out of range for %s", axis,
                nb_shape_str(a, b, sizeof b));
        return NULL;
    }
    int64_t s[NB_MAX_DIMS], st[NB_MAX_DIMS];
    for (int d = 0, k = 0; d <= a->ndim; d++) {
        if (d == ax) {
            s[d] = 1;
            st[d] = d < a->ndim ? a->strides[k] * a->shape[k] : 1;
        } else {
            s[d] = a->shape[k];
            st[d] = a->strides[k++];
        }
    }
    return reshape_view(ctx, a, a->ndim + 1, s, st);
}

nb_tensor *nb_flatten(nb_ctx *ctx, nb_tensor *a, int start_axis, int end_axis)
{
    if (!ctx || nb__null_in(ctx, "flatten", 1, a))
        return NULL;
    if (a->ndim == 0)
        return nb_reshape(ctx, a, NB_SHAPE(1));
    int s0 = nb__axis(start_axis, a->ndim), s1 = nb__axis(end_axis, a->ndim);
    if (s0 < 0 || s1 < 0 || s0 > s1) {
        char b[NB__SHAPE_BUF];
        nb__err(ctx, NB_ERR_AXIS, "flatten: axes %d..%d invalid for %s", start_axis, end_axis,
                nb_shape_str(a, b, sizeof b));
        return NULL;
    }
    int64_t s[NB_MAX_DIMS];
    int k = 0;
    for (int d = 0; d < s0; d++)
        s[k++] = a->shape[d];
    s[k++] = nb__prod(s1 - s0 + 1, a->shape + s0);
    for (int d = s1 + 1; d < a->ndim; d++)
        s[k++] = a->shape[d];
    return nb_reshape(ctx, a, k, s);
}

/* ---- permute / transpose ----------------------------------------------- */
nb_tensor *nb_permute(nb_ctx *ctx, nb_tensor *a, int ndim, const int *perm)
{
    if (!ctx || nb__null_in(ctx, "permute", 1, a))
        return NULL;
    char b[NB__SHAPE_BUF];
    if (ndim != a->ndim || (ndim > 0 && !perm)) {
        nb__err(ctx, NB_ERR_AXIS, "permute: %d axes given for %s", ndim, nb_shape_str(a, b, sizeof b));
        return NULL;
    }
    nb__attrs at;
    memset(&at, 0, sizeof at);
    bool seen[NB_MAX_DIMS] = {false};
    for (int i = 0; i < ndim; i++) {
        int ax = nb__axis(perm[i], ndim);
        if (ax < 0 || seen[ax]) {
            nb__err(ctx, NB_ERR_AXIS, "permute: axis %d is out of range or repeated for %s",
                    perm[i], nb_shape_str(a, b, sizeof b));
            return NULL;
        }
        seen[ax] = true;
        at.axes[i] = ax;
    }
    at.naxes = ndim;
    nb_tensor *y = nb__new_view(ctx, a);
    if (!y)
        return NULL;
    for (int i = 0; i < ndim; i++) {
        y->shape[i] = a->shape[at.axes[i]];
        y->strides[i] = a->strides[at.axes[i]];
    }
    return record1(ctx, NB__OP_PERMUTE, y, a, &at);
}

nb_tensor *nb_transpose(nb_ctx *ctx, nb_tensor *a, int d0, int d1)
{
    if (!ctx || nb__null_in(ctx, "transpose", 1, a))
        return NULL;
    int x0 = nb__axis(d0, a->ndim), x1 = nb__axis(d1, a->ndim);
    if (x0 < 0 || x1 < 0) {
        char b[NB__SHAPE_BUF];
        nb__err(ctx, NB_ERR_AXIS, "transpose: axes %d, %d out of range for %s", d0, d1,
                nb_shape_str(a, b, sizeof b));
        return NULL;
    }
    int perm[NB_MAX_DIMS];
    for (int i = 0; i < a->ndim; i++)
        perm[i] = i;
    perm[x0] = x1;
    perm[x1] = x0;
    return nb_permute(ctx, a, a->ndim, perm);
}

nb_status nb__permute_backward(nb_ctx *ctx, nb__node *n)
{
    nb_tensor *x = n->in[0], *dx;
    nb_status st = nb__grad_of(ctx, x, &dx);
    if (st != NB_OK || !dx)
        return st;
    nb_tensor v = *dx;
    for (int i = 0; i < n->a.naxes; i++) {
        v.shape[i] = dx->shape[n->a.axes[i]];
        v.strides[i] = dx->strides[n->a.axes[i]];
    }
    return nb__acc_grad(ctx, &v, n->out->grad, 1.0);
}

/* ---- slice ------------------------------------------------------------- */
static void slice_header(nb_tensor *v, int ax, int64_t start, int64_t count, int64_t step)
{
    v->data = (char *)v->data + start * v->strides[ax] * (int64_t)nb__esize(v->dtype);
    v->shape[ax] = count;
    v->strides[ax] *= step;
}

nb_tensor *nb_slice(nb_ctx *ctx, nb_tensor *a, int axis, int64_t start, int64_t stop,
                    int64_t step)
{
    if (!ctx || nb__null_in(ctx, "slice", 1, a))
        return NULL;
    char b[NB__SHAPE_BUF];
    int ax = nb__axis(axis, a->ndim);
    if (ax < 0) {
        nb__err(ctx, NB_ERR_AXIS, "slice: axis %d out of range for %s", axis,
                nb_shape_str(a, b, sizeof b));
        return NULL;
    }
    if (step < 1) {
        nb__err(ctx, NB_ERR_ARG, "slice: step %lld must be at least 1", (long long)step);
        return NULL;
    }
    int64_t len = a->shape[ax];
    if (start < 0)
        start += len;
    if (stop < 0)
        stop += len;
    start = start < 0 ? 0 : (start > len ? len : start);
    stop = stop < start ? start : (stop > len ? len : stop);
    int64_t count = (stop - start + step - 1) / step;
    nb_tensor *y = nb__new_view(ctx, a);
    if (!y)
        return NULL;
    if (count > 0)
        slice_header(y, ax, start, count, step);
    else
        y->shape[ax] = 0;
    nb__attrs at;
    memset(&at, 0, sizeof at);
    at.axes[0] = ax;
    at.i[0] = start;
    at.i[1] = count;
    at.i[2] = step;
    return record1(ctx, NB__OP_SLICE, y, a, &at);
}

nb_status nb__slice_backward(nb_ctx *ctx, nb__node *n)
{
    nb_tensor *x = n->in[0], *dx;
    nb_status st = nb__grad_of(ctx, x, &dx);
    if (st != NB_OK || !dx || n->a.i[1] == 0)
        return st;
    nb_tensor v = *dx;
    slice_header(&v, n->a.axes[0], n->a.i[0], n->a.i[1], n->a.i[2]);
    return nb__acc_grad(ctx, &v, n->out->grad, 1.0);
}

/* ---- expand ------------------------------------------------------------ */
nb_tensor *nb_expand(nb_ctx *ctx, nb_tensor *a, int ndim, const int64_t *shape)
{
    if (!ctx || nb__null_in(ctx, "expand", 1, a))
        return NULL;
    char b1[NB__SHAPE_BUF], b2[NB__SHAPE_BUF];
    if (ndim < a->ndim || ndim > NB_MAX_DIMS || (ndim > 0 && !shape)) {
        nb__err(ctx, NB_ERR_SHAPE, "expand: cannot expand %s to %d dimensions",
                nb_shape_str(a, b1, sizeof b1), ndim);
        return NULL;
    }
    int64_t s[NB_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        int j = i - (ndim - a->ndim);
        s[i] = shape[i] == -1 && j >= 0 ? a->shape[j] : shape[i];
        bool ok = s[i] >= 0 && (j < 0 ? shape[i] != -1 : (a->shape[j] == s[i] || a->shape[j] == 1));
        if (!ok) {
            nb__err(ctx, NB_ERR_SHAPE, "expand: %s cannot be broadcast to %s",
                    nb_shape_str(a, b1, sizeof b1), nb__shape_fmt(ndim, shape, b2, sizeof b2));
            return NULL;
        }
    }
    nb_tensor *y = nb__new_view(ctx, a);
    if (!y)
        return NULL;
    y->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        y->shape[i] = s[i];
    nb__bcast_strides(a, ndim, s, y->strides);
    return record1(ctx, NB__OP_EXPAND, y, a, NULL);
}

nb_status nb__expand_backward(nb_ctx *ctx, nb__node *n)
{
    nb_tensor *x = n->in[0], *dx;
    nb_status st = nb__grad_of(ctx, x, &dx);
    if (st != NB_OK || !dx)
        return st;
    return nb__acc_grad(ctx, dx, n->out->grad, 1.0);
}

/* ---- contiguous -------------------------------------------------------- */
nb_tensor *nb_contiguous(nb_ctx *ctx, nb_tensor *a)
{
    if (!ctx || nb__null_in(ctx, "contiguous", 1, a))
        return NULL;
    if (nb_is_contiguous(a))
        return a;
    nb_tensor *y = nb__new_step(ctx, a->dtype, a->ndim, a->shape);
    if (!y)
        return NULL;
    nb__copy_strided(ctx, y, a);
    return record1(ctx, NB__OP_CONTIGUOUS, y, a, NULL);
}

nb_status nb__contiguous_backward(nb_ctx *ctx, nb__node *n)
{
    nb_tensor *x = n->in[0], *dx;
    nb_status st = nb__grad_of(ctx, x, &dx);
    if (st != NB_OK || !dx)
        return st;
    return nb__acc_grad(ctx, dx, n->out->grad, 1.0);
}

/* ---- cast -------------------------------------------------------------- */
nb_tensor *nb_cast(nb_ctx *ctx, nb_tensor *a, nb_dtype dt)
{
    if (!ctx || nb__null_in(ctx, "cast", 1, a))
        return NULL;
    if ((int)dt < 0 || dt >= NB_DTYPE_COUNT || dt == NB_F16 || dt == NB_BF16 ||
        a->dtype == NB_F16 || a->dtype == NB_BF16) {
        nb__err(ctx, NB_ERR_DTYPE, "cast: %s to %s is not supported", nb_dtype_name(a->dtype),
                nb_dtype_name(dt));
        return NULL;
    }
    if (dt == a->dtype)
        return a;
    nb_tensor *y = nb__new_step(ctx, dt, a->ndim, a->shape);
    if (!y)
        return NULL;
    nb__copy_strided(ctx, y, a);
    if (!nb__is_float(dt) || !nb__is_float(a->dtype))
        return y; /* integer results carry no gradient */
    return record1(ctx, NB__OP_CAST, y, a, NULL);
}

nb_status nb__cast_backward(nb_ctx *ctx, nb__node *n)
{
    nb_tensor *x = n->in[0], *dx;
    nb_status st = nb__grad_of(ctx, x, &dx);
    if (st != NB_OK || !dx)
        return st;
    nb_tensor *g = nb__new_step(ctx, dx->dtype, dx->ndim, dx->shape);
    if (!g)
        return ctx->err;
    nb__copy_strided(ctx, g, n->out->grad);
    return nb__acc_grad(ctx, dx, g, 1.0);
}
