/* Tensors: creation in the two lifetimes, element access, shape helpers. */
#include "internal.h"

#include <math.h>
#include <stdio.h>

static const size_t dtype_size[NB_DTYPE_COUNT] = {
    [NB_F32] = 4, [NB_F64] = 8, [NB_I32] = 4, [NB_I64] = 8,
    [NB_U8] = 1,  [NB_F16] = 2, [NB_BF16] = 2,
};
static const char *const dtype_name[NB_DTYPE_COUNT] = {
    [NB_F32] = "f32", [NB_F64] = "f64", [NB_I32] = "i32", [NB_I64] = "i64",
    [NB_U8] = "u8",   [NB_F16] = "f16", [NB_BF16] = "bf16",
};

size_t nb_dtype_size(nb_dtype dt)
{
    return ((int)dt >= 0 && dt < NB_DTYPE_COUNT) ? dtype_size[dt] : 0;
}

const char *nb_dtype_name(nb_dtype dt)
{
    return ((int)dt >= 0 && dt < NB_DTYPE_COUNT) ? dtype_name[dt] : "?";
}

bool nb__is_float(nb_dtype dt) { return dt == NB_F32 || dt == NB_F64; }
bool nb__is_int(nb_dtype dt) { return dt == NB_I32 || dt == NB_I64 || dt == NB_U8; }

int64_t nb_numel(const nb_tensor *t) { return t ? nb__prod(t->ndim, t->shape) : 0; }

bool nb_requires_grad(const nb_tensor *t) { return t && (t->flags & NB_REQUIRES_GRAD); }

bool nb_is_contiguous(const nb_tensor *t)
{
    if (!t)
        return false;
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != s)
            return false;
        s *= t->shape[i];
    }
    return true;
}

int nb__axis(int axis, int ndim)
{
    if (axis < 0)
        axis += ndim;
    return (axis >= 0 && axis < ndim) ? axis : -1;
}

/* Validate a user shape: dims in range, sizes >= 0, element count and byte
 * size free of overflow. */
bool nb__shape_ok(nb_ctx *ctx, const char *op, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > NB_MAX_DIMS) {
        nb__err(ctx, NB_ERR_SHAPE, "%s: %d dimensions (0..%d allowed)", op, ndim, NB_MAX_DIMS);
        return false;
    }
    if (ndim > 0 && !shape) {
        nb__err(ctx, NB_ERR_NULL, "%s: shape is NULL", op);
        return false;
    }
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            char b[NB__SHAPE_BUF];
            nb__err(ctx, NB_ERR_SHAPE, "%s: negative size in shape %s", op,
                    nb__shape_fmt(ndim, shape, b, sizeof b));
            return false;
        }
        if (shape[i] > 0 && n > (INT64_MAX / 8) / shape[i]) {
            nb__err(ctx, NB_ERR_SHAPE, "%s: shape too large (element count overflows)", op);
            return false;
        }
        n *= shape[i];
    }
    return true;
}

static nb_tensor *tensor_init(nb_tensor *t, nb_dtype dt, int ndim, const int64_t *shape)
{
    /* field by field: this runs for every tensor of every step */
    t->dtype = dt;
    t->ndim = ndim;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t->shape[i] = shape[i];
        t->strides[i] = s;
        s *= shape[i] > 0 ? shape[i] : 1;
    }
    t->data = NULL;
    t->grad = NULL;
    t->flags = 0;
    t->name = NULL;
    t->node_ = NULL;
    t->next_ = t->prev_ = NULL;
    return t;
}

static bool dtype_ok(nb_ctx *ctx, const char *op, nb_dtype dt)
{
    if ((int)dt < 0 || dt >= NB_DTYPE_COUNT || dt == NB_F16 || dt == NB_BF16) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: dtype %d is not supported for tensors yet", op, (int)dt);
        return false;
    }
    return true;
}

nb_tensor *nb__new_step(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape)
{
    size_t bytes = (size_t)nb__prod(ndim, shape) * nb__esize(dt);
    const size_t head = (sizeof(nb_tensor) + NB__ALIGN - 1) & ~(size_t)(NB__ALIGN - 1);
    unsigned char *mem = nb__arena_alloc(ctx, head + bytes);
    if (!mem) {
        nb__arena_err(ctx, "tensor", head + bytes);
        return NULL;
    }
    nb_tensor *t = tensor_init((nb_tensor *)mem, dt, ndim, shape);
    t->data = mem + head;
    return t;
}

nb_tensor *nb__new_view(nb_ctx *ctx, const nb_tensor *src)
{
    nb_tensor *t = nb__arena_alloc(ctx, sizeof(nb_tensor));
    if (!t) {
        nb__arena_err(ctx, "view", sizeof(nb_tensor));
        return NULL;
    }
    memset(t, 0, sizeof *t);
    t->dtype = src->dtype;
    t->ndim = src->ndim;
    memcpy(t->shape, src->shape, sizeof t->shape);
    memcpy(t->strides, src->strides, sizeof t->strides);
    t->data = src->data;
    return t;
}

static nb_tensor *new_persistent(nb_ctx *ctx, const char *op, nb_dtype dt, int ndim,
                                 const int64_t *shape)
{
    if (!ctx)
        return NULL;
    if (!dtype_ok(ctx, op, dt) || !nb__shape_ok(ctx, op, ndim, shape))
        return NULL;
    size_t bytes = (size_t)nb__prod(ndim, shape) * nb__esize(dt);
    size_t head = (sizeof(nb_tensor) + NB__ALIGN - 1) & ~(size_t)(NB__ALIGN - 1);
    unsigned char *mem = nb__heap_alloc(ctx, head + bytes);
    if (!mem) {
        nb__err(ctx, NB_ERR_NOMEM, "%s: allocator failed for %zu bytes", op, head + bytes);
        return NULL;
    }
    nb_tensor *t = tensor_init((nb_tensor *)mem, dt, ndim, shape);
    t->data = mem + head;
    memset(t->data, 0, bytes);
    t->flags = NB_PERSISTENT;
    t->next_ = ctx->persist;
    if (ctx->persist)
        ctx->persist->prev_ = t;
    ctx->persist = t;
    return t;
}

nb_tensor *nb_param(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape)
{
    if (ctx && !nb__is_float(dt)) {
        nb__err(ctx, NB_ERR_DTYPE, "param: dtype %s cannot require grad", nb_dtype_name(dt));
        return NULL;
    }
    nb_tensor *t = new_persistent(ctx, "param", dt, ndim, shape);
    if (t)
        t->flags |= NB_REQUIRES_GRAD;
    return t;
}

nb_tensor *nb_buffer(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape)
{
    return new_persistent(ctx, "buffer", dt, ndim, shape);
}

static void unlink_persistent(nb_ctx *ctx, nb_tensor *t)
{
    if (t->prev_)
        t->prev_->next_ = t->next_;
    else if (ctx->persist == t)
        ctx->persist = t->next_;
    if (t->next_)
        t->next_->prev_ = t->prev_;
    t->next_ = t->prev_ = NULL;
}

void nb_tensor_free(nb_ctx *ctx, nb_tensor *t)
{
    if (!ctx || !t || !(t->flags & NB_PERSISTENT))
        return;
    if (t->grad && (t->grad->flags & NB_PERSISTENT)) {
        /* the grad lives outside the persistent list (see nb__grad_of) */
        nb__heap_free(ctx, t->grad);
    }
    unlink_persistent(ctx, t);
    nb__heap_free(ctx, t);
}

nb_tensor *nb_empty(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape)
{
    if (!ctx)
        return NULL;
    if (!dtype_ok(ctx, "empty", dt) || !nb__shape_ok(ctx, "empty", ndim, shape))
        return NULL;
    return nb__new_step(ctx, dt, ndim, shape);
}

nb_tensor *nb_zeros(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape)
{
    nb_tensor *t = nb_empty(ctx, dt, ndim, shape);
    if (t)
        memset(t->data, 0, (size_t)nb__numel(t) * nb__esize(dt));
    return t;
}

nb_tensor *nb_full(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape, double v)
{
    nb_tensor *t = nb_empty(ctx, dt, ndim, shape);
    if (t)
        nb_fill(ctx, t, v);
    return t;
}

nb_tensor *nb_scalar(nb_ctx *ctx, nb_dtype dt, double v) { return nb_full(ctx, dt, 0, NULL, v); }

nb_tensor *nb_from_data(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape,
                        const void *data)
{
    if (!ctx)
        return NULL;
    if (!data) {
        nb__err(ctx, NB_ERR_NULL, "from_data: data is NULL");
        return NULL;
    }
    nb_tensor *t = nb_empty(ctx, dt, ndim, shape);
    if (t)
        memcpy(t->data, data, (size_t)nb__numel(t) * nb__esize(dt));
    return t;
}

nb_tensor *nb_zeros_like(nb_ctx *ctx, const nb_tensor *t)
{
    if (nb__null_in(ctx, "zeros_like", 1, t))
        return NULL;
    return nb_zeros(ctx, t->dtype, t->ndim, t->shape);
}

/* ---- element access ---------------------------------------------------- */
void *nb__elem_ptr(const nb_tensor *t, int64_t flat)
{
    int64_t off = 0;
    for (int i = t->ndim - 1; i >= 0; i--) {
        int64_t n = t->shape[i];
        off += (flat % n) * t->strides[i];
        flat /= n;
    }
    return (char *)t->data + off * (int64_t)nb__esize(t->dtype);
}

double nb__load(nb_dtype dt, const void *p)
{
    switch (dt) {
    case NB_F32: return *(const float *)p;
    case NB_F64: return *(const double *)p;
    case NB_I32: return *(const int32_t *)p;
    case NB_I64: return (double)*(const int64_t *)p;
    case NB_U8: return *(const uint8_t *)p;
    default: return 0.0;
    }
}

void nb__store(nb_dtype dt, void *p, double v)
{
    switch (dt) {
    case NB_F32: *(float *)p = (float)v; break;
    case NB_F64: *(double *)p = v; break;
    case NB_I32: *(int32_t *)p = (int32_t)v; break;
    case NB_I64: *(int64_t *)p = (int64_t)v; break;
    case NB_U8: *(uint8_t *)p = (uint8_t)v; break;
    default: break;
    }
}

double nb_get(const nb_tensor *t, int64_t i)
{
    if (!t || i < 0 || i >= nb__numel(t))
        return 0.0;
    return nb__load(t->dtype, nb__elem_ptr(t, i));
}

void nb_set(nb_tensor *t, int64_t i, double v)
{
    if (!t || i < 0 || i >= nb__numel(t))
        return;
    nb__store(t->dtype, nb__elem_ptr(t, i), v);
}

/* ---- broadcasting ------------------------------------------------------ */
int nb__broadcast_shape(int na, const int64_t *sa, int nbd, const int64_t *sb, int64_t *out)
{
    int n = na > nbd ? na : nbd;
    for (int i = 0; i < n; i++) {
        int ia = na - n + i, ib = nbd - n + i;
        int64_t da = ia >= 0 ? sa[ia] : 1, db = ib >= 0 ? sb[ib] : 1;
        if (da == db || db == 1)
            out[i] = da;
        else if (da == 1)
            out[i] = db;
        else
            return -1;
    }
    return n;
}

void nb__bcast_strides(const nb_tensor *t, int ndim, const int64_t *shape, int64_t *strides)
{
    int off = ndim - t->ndim;
    for (int i = 0; i < ndim; i++) {
        int j = i - off;
        strides[i] = (j >= 0 && t->shape[j] == shape[i]) ? t->strides[j] : 0;
    }
}
