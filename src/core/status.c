/* Status texts (from the one list in nabla.h) and the context's first error. */
#include "internal.h"

#include <stdio.h>

static const char *const status_text[NB_STATUS_COUNT] = {
#define NB__STATUS_TEXT(code, text) [code] = text,
    NB_STATUS_LIST(NB__STATUS_TEXT)
#undef NB__STATUS_TEXT
};

const char *nb_status_str(nb_status s)
{
    if ((int)s < 0 || s >= NB_STATUS_COUNT)
        return "unknown status";
    return status_text[s];
}

nb_status nb__err(nb_ctx *ctx, nb_status s, const char *fmt, ...)
{
    if (!ctx || ctx->err != NB_OK)
        return s; /* keep the first cause */
    ctx->err = s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->msg, sizeof ctx->msg, fmt, ap);
    va_end(ap);
    return s;
}

bool nb__null_in_slow(nb_ctx *ctx, const char *op, int n, const void *const *p)
{
    int bad = -1;
    for (int i = 0; i < n && bad < 0; i++)
        if (!p[i])
            bad = i;
    if (bad < 0)
        return false;
    if (ctx && ctx->err == NB_OK)
        nb__err(ctx, NB_ERR_NULL, "%s: input %d is NULL", op, bad);
    return true;
}

nb_status nb_last_status(const nb_ctx *ctx) { return ctx ? ctx->err : NB_ERR_NULL; }

const char *nb_last_error(const nb_ctx *ctx)
{
    if (!ctx)
        return "context is NULL";
    return ctx->err == NB_OK ? "" : ctx->msg;
}

void nb_clear_error(nb_ctx *ctx)
{
    if (!ctx)
        return;
    ctx->err = NB_OK;
    ctx->msg[0] = '\0';
}

char *nb__shape_fmt(int ndim, const int64_t *shape, char *buf, size_t cap)
{
    size_t k = 0;
    if (cap == 0)
        return buf;
    buf[0] = '\0';
    k += (size_t)snprintf(buf + k, cap - k, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (k < cap)
        snprintf(buf + k, cap - k, "]");
    return buf;
}

char *nb_shape_str(const nb_tensor *t, char *buf, size_t cap)
{
    if (!buf || cap == 0)
        return buf;
    if (!t) {
        snprintf(buf, cap, "(null)");
        return buf;
    }
    return nb__shape_fmt(t->ndim, t->shape, buf, cap);
}
