/* Normalisation layers over the ops of src/ops/norm.c, with torch.nn's names:
 *   batch_norm  torch.nn.BatchNorm1d/2d/3d: weight [C] = 1, bias [C] = 0 (affine);
 *               buffers running_mean [C] = 0, running_var [C] = 1 and
 *               num_batches_tracked (I64, 0-d), which counts training forwards.
 *               Training: batch statistics, running ones moved by momentum;
 *               evaluation: the running statistics.
 *   layer_norm  torch.nn.LayerNorm: weight, bias of the normalised shape
 *   group_norm  torch.nn.GroupNorm: weight [C], bias [C]
 * nb_module_init resets weight to 1 and bias to 0 whatever initializers it is
 * given: those are meant for weight matrices (a Kaiming or orthogonal init of
 * a norm's scale is never what is wanted), and torch.nn.init loops skip norms
 * the same way. Running statistics are left alone. */
#include "nn/nn.h"

#include <math.h>

/* weight 1, bias 0 (affine layers only) */
static nb_status norm_reset(nb_ctx *ctx, nb_module *m, const nb_init *w, const nb_init *b)
{
    (void)w;
    (void)b;
    for (int i = 0; i < m->n_t; i++) {
        if (m->t_buffer[i])
            continue;
        nb_status st = nb_fill(ctx, m->t[i], strcmp(m->t_name[i], "weight") == 0 ? 1.0 : 0.0);
        if (st != NB_OK)
            return st;
    }
    return NB_OK;
}

static bool eps_ok(nb_ctx *ctx, const char *kind, double eps)
{
    if (eps > 0 && isfinite(eps))
        return true;
    nb__err(ctx, NB_ERR_ARG, "%s: eps must be positive and finite, got %g", kind, eps);
    return false;
}

/* weight and bias of the given shape when affine, then reset */
static bool add_affine(nb_ctx *ctx, nb_module *m, bool affine, int ndim, const int64_t *shape)
{
    if (!affine)
        return true;
    return nb__module_add(ctx, m, "weight", false, NB_F32, ndim, shape) &&
           nb__module_add(ctx, m, "bias", false, NB_F32, ndim, shape) &&
           norm_reset(ctx, m, NULL, NULL) == NB_OK;
}

/* ---- batch norm ----------------------------------------------------------------- */
/* m->i[0] channels, i[1] affine; f[0] momentum, f[1] eps */
static nb_tensor *bn_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    int o = m->i[1] ? 2 : 0; /* the buffers follow weight and bias */
    nb_tensor *y = nb_batch_norm(ctx, x, o ? m->t[0] : NULL, o ? m->t[1] : NULL, m->t[o],
                                 m->t[o + 1], m->training, m->f[0], m->f[1]);
    if (y && m->training)
        (*(int64_t *)m->t[o + 2]->data)++;
    return y;
}

nb_module *nb_batch_norm_layer(nb_ctx *ctx, const char *name, int64_t channels, double momentum,
                               double eps, bool affine)
{
    if (!ctx)
        return NULL;
    if (channels < 1) {
        nb__err(ctx, NB_ERR_ARG, "batch_norm: channels must be positive, got %lld",
                (long long)channels);
        return NULL;
    }
    if (!(momentum >= 0 && momentum <= 1)) {
        nb__err(ctx, NB_ERR_ARG, "batch_norm: momentum %g is not in [0, 1]", momentum);
        return NULL;
    }
    if (!eps_ok(ctx, "batch_norm", eps))
        return NULL;
    nb_module *m = nb__module_new(ctx, "batch_norm", name, bn_fwd);
    if (!m)
        return NULL;
    m->reset = norm_reset;
    m->i[0] = channels;
    m->i[1] = affine;
    m->f[0] = momentum;
    m->f[1] = eps;
    nb_tensor *rv;
    if (!add_affine(ctx, m, affine, NB_SHAPE(channels)) ||
        !nb__module_add(ctx, m, "running_mean", true, NB_F32, NB_SHAPE(channels)) ||
        !(rv = nb__module_add(ctx, m, "running_var", true, NB_F32, NB_SHAPE(channels))) ||
        nb_fill(ctx, rv, 1.0) != NB_OK ||
        !nb__module_add(ctx, m, "num_batches_tracked", true, NB_I64, 0, NULL)) {
        nb_module_free(ctx, m);
        return NULL;
    }
    return m;
}

/* ---- layer norm ----------------------------------------------------------------- */
/* m->i[0] ndims, i[1] affine; f[0] eps */
static nb_tensor *ln_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    bool affine = m->i[1] != 0;
    return nb_layer_norm(ctx, x, (int)m->i[0], affine ? m->t[0] : NULL, affine ? m->t[1] : NULL,
                         m->f[0]);
}

nb_module *nb_layer_norm_layer(nb_ctx *ctx, const char *name, int ndims, const int64_t *shape,
                               double eps, bool affine)
{
    if (!ctx)
        return NULL;
    if (ndims < 1 || ndims > NB_MAX_DIMS || !shape) {
        nb__err(ctx, NB_ERR_ARG, "layer_norm: ndims %d is not in [1, %d] or the shape is NULL",
                ndims, NB_MAX_DIMS);
        return NULL;
    }
    for (int d = 0; d < ndims; d++)
        if (shape[d] < 1) {
            char b[NB__SHAPE_BUF];
            nb__err(ctx, NB_ERR_ARG, "layer_norm: normalised shape %s has a dim below 1",
                    nb__shape_fmt(ndims, shape, b, sizeof b));
            return NULL;
        }
    if (!eps_ok(ctx, "layer_norm", eps))
        return NULL;
    nb_module *m = nb__module_new(ctx, "layer_norm", name, ln_fwd);
    if (!m)
        return NULL;
    m->reset = norm_reset;
    m->i[0] = ndims;
    m->i[1] = affine;
    m->f[0] = eps;
    if (!add_affine(ctx, m, affine, ndims, shape)) {
        nb_module_free(ctx, m);
        return NULL;
    }
    return m;
}

/* ---- group norm ----------------------------------------------------------------- */
/* m->i[0] groups, i[1] affine, i[2] channels; f[0] eps */
static nb_tensor *gn_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    bool affine = m->i[1] != 0;
    return nb_group_norm(ctx, x, (int)m->i[0], affine ? m->t[0] : NULL, affine ? m->t[1] : NULL,
                         m->f[0]);
}

nb_module *nb_group_norm_layer(nb_ctx *ctx, const char *name, int groups, int64_t channels,
                               double eps, bool affine)
{
    if (!ctx)
        return NULL;
    if (groups < 1 || channels < 1 || channels % groups != 0) {
        nb__err(ctx, NB_ERR_ARG, "group_norm: %d groups must be positive and divide %lld channels",
                groups, (long long)channels);
        return NULL;
    }
    if (!eps_ok(ctx, "group_norm", eps))
        return NULL;
    nb_module *m = nb__module_new(ctx, "group_norm", name, gn_fwd);
    if (!m)
        return NULL;
    m->reset = norm_reset;
    m->i[0] = groups;
    m->i[1] = affine;
    m->i[2] = channels;
    m->f[0] = eps;
    if (!add_affine(ctx, m, affine, NB_SHAPE(channels))) {
        nb_module_free(ctx, m);
        return NULL;
    }
    return m;
}
