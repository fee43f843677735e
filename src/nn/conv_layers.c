/* Convolution layers and residual blocks.
 *   conv2d       y = conv2d(x, W, b): W [out, in/groups, kh, kw], initialised
 *                like torch.nn.Conv2d (U(-r, r), r = 1/sqrt(in/groups kh kw));
 *                with opts.relu the ReLU that follows is fused into it, and
 *                with opts.max_pool the 2x2 max pooling after that
 *   reshape      [N, ...] -> [N, shape...]
 *   residual     y = post(body(x) + shortcut(x))
 *   basic_block  torchvision's BasicBlock; resnet: a small CIFAR-style ResNet */
#include "nn/nn.h"

#include <math.h>
#include <stdio.h>

/* ---- conv2d ---------------------------------------------------------------- */
static nb_tensor *conv_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    nb_conv_opts o = nb_conv_opts_default();
    for (int i = 0; i < 2; i++) {
        o.stride[i] = (int)m->i[0 + i];
        o.padding[i] = (int)m->i[2 + i];
    }
    o.dilation[0] = o.dilation[1] = (int)m->f[0];
    o.groups = (int)m->f[1];
    o.relu = ((int)m->f[2] & 1) != 0;
    o.max_pool = ((int)m->f[2] & 2) != 0;
    o.algo = (int)m->f[3];
    return nb_conv2d(ctx, x, m->t[0], m->n_t > 1 ? m->t[1] : NULL, &o);
}

static nb_status conv_reset(nb_ctx *ctx, nb_module *m, const nb_init *w, const nb_init *b)
{
    nb_init def = nb_init_default(NB_INIT_TORCH_LINEAR);
    nb_status st = nb_init_tensor(ctx, m->t[0], w ? w : &def);
    if (st != NB_OK || m->n_t < 2)
        return st;
    if (b)
        return nb_init_tensor(ctx, m->t[1], b);
    int64_t fan_in = m->t[0]->shape[1] * m->t[0]->shape[2] * m->t[0]->shape[3];
    double r = fan_in > 0 ? 1.0 / sqrt((double)fan_in) : 0;
    return nb_fill_uniform(ctx, m->t[1], -r, r);
}

nb_module *nb_conv2d_layer(nb_ctx *ctx, const char *name, int64_t in, int64_t out, int kh, int kw,
                           const nb_conv_opts *opts, bool bias)
{
    nb_conv_opts o = opts ? *opts : nb_conv_opts_default();
    if (ctx && (in < 1 || out < 1 || kh < 1 || kw < 1 || o.groups < 1 || in % o.groups ||
                out % o.groups || o.dilation[0] != o.dilation[1] || o.output_padding[0] ||
                o.output_padding[1])) {
        nb__err(ctx, NB_ERR_ARG,
                "conv2d layer: in %lld and out %lld channels must be positive and divisible by "
                "groups %d, kernel %dx%d positive (one dilation for both dims)",
                (long long)in, (long long)out, o.groups, kh, kw);
        return NULL;
    }
    nb_module *m = nb__module_new(ctx, "conv2d", name, conv_fwd);
    if (!m)
        return NULL;
    m->reset = conv_reset;
    for (int i = 0; i < 2; i++) {
        m->i[0 + i] = o.stride[i];
        m->i[2 + i] = o.padding[i];
    }
    m->f[0] = o.dilation[0];
    m->f[1] = o.groups;
    m->f[2] = (o.relu ? 1 : 0) | (o.max_pool ? 2 : 0);
    m->f[3] = o.algo;
    if (!nb__module_add(ctx, m, "weight", false, NB_F32, NB_SHAPE(out, in / o.groups, kh, kw)) ||
        (bias && !nb__module_add(ctx, m, "bias", false, NB_F32, NB_SHAPE(out))) ||
        conv_reset(ctx, m, NULL, NULL) != NB_OK) {
        nb_module_free(ctx, m);
        return NULL;
    }
    return m;
}

/* ---- reshape ------------------------------------------------------------------ */
static nb_tensor *reshape_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    int64_t s[NB_MAX_DIMS];
    s[0] = x->ndim ? x->shape[0] : 1;
    for (int i = 0; i < (int)m->i[0]; i++)
        s[i + 1] = (int64_t)m->f[i];
    return nb_reshape(ctx, x, (int)m->i[0] + 1, s);
}

nb_module *nb_reshape_layer(nb_ctx *ctx, const char *name, int ndim, const int64_t *shape)
{
    if (ctx && (ndim < 1 || ndim > 4 || !shape)) {
        nb__err(ctx, NB_ERR_ARG, "reshape layer: 1 to 4 dims after the batch, got %d", ndim);
        return NULL;
    }
    nb_module *m = nb__module_new(ctx, "reshape", name, reshape_fwd);
    if (!m)
        return NULL;
    m->i[0] = ndim;
    for (int i = 0; i < ndim; i++)
        m->f[i] = (double)shape[i];
    return m;
}

/* ---- residual ------------------------------------------------------------------ */
static nb_tensor *residual_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    nb_module *body = m->children[0], *sc = m->n_children > 1 ? m->children[1] : NULL;
    nb_tensor *y = body->forward(ctx, body, x);
    nb_tensor *s = sc ? sc->forward(ctx, sc, x) : x;
    y = nb_add(ctx, y, s);
    switch ((nb_act)m->i[0]) {
    case NB_ACT_RELU: return nb_relu(ctx, y);
    case NB_ACT_IDENTITY: return y;
    default: return nb_module_forward(ctx, m->children[m->n_children - 1], y);
    }
}

nb_module *nb_residual(nb_ctx *ctx, const char *name, nb_module *body, nb_module *shortcut,
                       nb_act post)
{
    nb_module *m = (ctx && body) ? nb__module_new(ctx, "residual", name, residual_fwd) : NULL;
    if (!m) {
        if (ctx && !body && ctx->err == NB_OK)
            nb__err(ctx, NB_ERR_NULL, "residual: body is NULL");
        nb_module_free(ctx, body);
        nb_module_free(ctx, shortcut);
        return NULL;
    }
    m->i[0] = post;
    nb_status st = NB_OK;
    if (body->name == NULL) {
        /* children here need names for stable parameter paths */
        body->name = nb__heap_alloc(ctx, 5);
        if (body->name)
            strcpy(body->name, "body");
    }
    st = nb_sequential_add(ctx, m, body);
    if (st == NB_OK && shortcut) {
        if (!shortcut->name && (shortcut->name = nb__heap_alloc(ctx, 9)))
            strcpy(shortcut->name, "shortcut");
        st = nb_sequential_add(ctx, m, shortcut);
    } else if (shortcut) {
        nb_module_free(ctx, shortcut);
    }
    if (st == NB_OK && post != NB_ACT_RELU && post != NB_ACT_IDENTITY)
        st = nb_sequential_add(ctx, m, nb_activation(ctx, "post", post, 0));
    if (st != NB_OK) {
        nb_module_free(ctx, m);
        return NULL;
    }
    return m;
}

/* ---- torchvision's BasicBlock and a small ResNet --------------------------------- */
static nb_tensor *block_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    nb_module **c = m->children; /* conv1 bn1 conv2 bn2 [downsample] */
    nb_tensor *y = nb_relu(ctx, c[1]->forward(ctx, c[1], c[0]->forward(ctx, c[0], x)));
    y = c[3]->forward(ctx, c[3], c[2]->forward(ctx, c[2], y));
    nb_tensor *s = m->n_children > 4 ? c[4]->forward(ctx, c[4], x) : x;
    return nb_relu(ctx, nb_add(ctx, y, s));
}

static nb_module *conv3(nb_ctx *ctx, const char *name, int64_t in, int64_t out, int stride, int k)
{
    nb_conv_opts o = nb_conv_opts_default();
    o.stride[0] = o.stride[1] = stride;
    o.padding[0] = o.padding[1] = k / 2;
    return nb_conv2d_layer(ctx, name, in, out, k, k, &o, false);
}

nb_module *nb_basic_block(nb_ctx *ctx, const char *name, int64_t in, int64_t out, int stride)
{
    nb_module *m = nb__module_new(ctx, "basic_block", name, block_fwd);
    if (!m)
        return NULL;
    nb_status st = nb_sequential_add(ctx, m, conv3(ctx, "conv1", in, out, stride, 3));
    if (st == NB_OK)
        st = nb_sequential_add(ctx, m, nb_batch_norm_layer(ctx, "bn1", out, 0.1, 1e-5, true));
    if (st == NB_OK)
        st = nb_sequential_add(ctx, m, conv3(ctx, "conv2", out, out, 1, 3));
    if (st == NB_OK)
        st = nb_sequential_add(ctx, m, nb_batch_norm_layer(ctx, "bn2", out, 0.1, 1e-5, true));
    if (st == NB_OK && (stride != 1 || in != out)) {
        nb_module *ds = nb_sequential(ctx, "downsample");
        st = nb_sequential_add(ctx, ds, conv3(ctx, NULL, in, out, stride, 1));
        if (st == NB_OK)
            st = nb_sequential_add(ctx, ds, nb_batch_norm_layer(ctx, NULL, out, 0.1, 1e-5, true));
        st = st == NB_OK ? nb_sequential_add(ctx, m, ds) : (nb_module_free(ctx, ds), st);
    }
    if (st != NB_OK) {
        nb_module_free(ctx, m);
        return NULL;
    }
    return m;
}

nb_module *nb_resnet(nb_ctx *ctx, const char *name, int64_t in_ch, int64_t classes, int64_t width,
                     int blocks)
{
    if (ctx && (in_ch < 1 || classes < 1 || width < 1 || blocks < 1)) {
        nb__err(ctx, NB_ERR_ARG, "resnet: channels, classes, width and blocks must be positive");
        return NULL;
    }
    nb_module *m = nb_sequential(ctx, name);
    if (!m)
        return NULL;
    nb_status st = nb_sequential_add(ctx, m, conv3(ctx, "conv1", in_ch, width, 1, 3));
    if (st == NB_OK)
        st = nb_sequential_add(ctx, m, nb_batch_norm_layer(ctx, "bn1", width, 0.1, 1e-5, true));
    if (st == NB_OK)
        st = nb_sequential_add(ctx, m, nb_activation(ctx, "relu", NB_ACT_RELU, 0));
    int64_t in = width;
    for (int s = 0; s < 3 && st == NB_OK; s++) {
        char lname[16];
        snprintf(lname, sizeof lname, "layer%d", s + 1);
        nb_module *layer = nb_sequential(ctx, lname);
        int64_t out = width << s;
        for (int b = 0; b < blocks && st == NB_OK; b++) {
            st = nb_sequential_add(ctx, layer, nb_basic_block(ctx, NULL, in, out, b == 0 && s > 0 ? 2 : 1));
            in = out;
        }
        st = st == NB_OK ? nb_sequential_add(ctx, m, layer) : (nb_module_free(ctx, layer), st);
    }
    if (st == NB_OK)
        st = nb_sequential_add(ctx, m, nb_global_avg_pool_layer(ctx, "avgpool"));
    if (st == NB_OK)
        st = nb_sequential_add(ctx, m, nb_linear(ctx, "fc", in, classes, true));
    if (st != NB_OK) {
        nb_module_free(ctx, m);
        return NULL;
    }
    return m;
}
