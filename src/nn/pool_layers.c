/* Pooling and resampling layers (no parameters), over [N, C, H, W]:
 *   max_pool2d         nb_max_pool2d with the layer's options
 *   avg_pool2d         nb_avg_pool2d with the layer's options
 *   global_avg_pool2d  mean over H and W: [N, C, H, W] -> [N, C]
 *   upsample           nearest-neighbour by integer factors
 * Settings: pooling keeps kernel h, w and stride h, w in i[0..3], padding
 * h, w in f[0..1], ceil_mode in f[2], count_include_pad in f[3]; upsample
 * keeps its factors in i[0..1]. The constructors refuse options no input
 * could accept; what depends on the input's size is checked by the op. */
#include "nn/nn.h"

static nb_pool_opts opts_of(const nb_module *m)
{
    nb_pool_opts o = nb_pool_opts_default((int)m->i[0], (int)m->i[1]);
    o.stride[0] = (int)m->i[2];
    o.stride[1] = (int)m->i[3];
    o.padding[0] = (int)m->f[0];
    o.padding[1] = (int)m->f[1];
    o.ceil_mode = m->f[2] != 0;
    o.count_include_pad = m->f[3] != 0;
    return o;
}

static nb_tensor *max_pool_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    nb_pool_opts o = opts_of(m);
    return nb_max_pool2d(ctx, x, &o);
}

static nb_tensor *avg_pool_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    nb_pool_opts o = opts_of(m);
    return nb_avg_pool2d(ctx, x, &o);
}

static nb_module *pool_layer(nb_ctx *ctx, const char *kind, const char *name,
                             const nb_pool_opts *o, nb__mod_fwd fwd)
{
    if (!ctx)
        return NULL;
    if (!o) {
        nb__err(ctx, NB_ERR_NULL, "%s: options are NULL", kind);
        return NULL;
    }
    for (int d = 0; d < 2; d++)
        if (o->kernel[d] < 1 || o->stride[d] < 0 || o->padding[d] < 0 ||
            o->padding[d] > o->kernel[d] / 2) {
            nb__err(ctx, NB_ERR_ARG,
                    "%s: kernel %dx%d, stride %dx%d, padding %dx%d: needs kernel >= 1, "
                    "stride >= 0 (0: the kernel) and 0 <= padding <= kernel / 2",
                    kind, o->kernel[0], o->kernel[1], o->stride[0], o->stride[1], o->padding[0],
                    o->padding[1]);
            return NULL;
        }
    nb_module *m = nb__module_new(ctx, kind, name, fwd);
    if (!m)
        return NULL;
    m->i[0] = o->kernel[0];
    m->i[1] = o->kernel[1];
    m->i[2] = o->stride[0];
    m->i[3] = o->stride[1];
    m->f[0] = o->padding[0];
    m->f[1] = o->padding[1];
    m->f[2] = o->ceil_mode;
    m->f[3] = o->count_include_pad;
    return m;
}

nb_module *nb_max_pool_layer(nb_ctx *ctx, const char *name, const nb_pool_opts *o)
{
    return pool_layer(ctx, "max_pool2d", name, o, max_pool_fwd);
}

nb_module *nb_avg_pool_layer(nb_ctx *ctx, const char *name, const nb_pool_opts *o)
{
    return pool_layer(ctx, "avg_pool2d", name, o, avg_pool_fwd);
}

static nb_tensor *global_avg_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    (void)m;
    return nb_global_avg_pool2d(ctx, x);
}

nb_module *nb_global_avg_pool_layer(nb_ctx *ctx, const char *name)
{
    return nb__module_new(ctx, "global_avg_pool2d", name, global_avg_fwd);
}

static nb_tensor *upsample_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    return nb_upsample_nearest2d(ctx, x, (int)m->i[0], (int)m->i[1]);
}

nb_module *nb_upsample_layer(nb_ctx *ctx, const char *name, int sh, int sw)
{
    if (ctx && (sh < 1 || sw < 1)) {
        nb__err(ctx, NB_ERR_ARG, "upsample: factors %dx%d must be positive", sh, sw);
        return NULL;
    }
    nb_module *m = nb__module_new(ctx, "upsample", name, upsample_fwd);
    if (m) {
        m->i[0] = sh;
        m->i[1] = sw;
    }
    return m;
}
