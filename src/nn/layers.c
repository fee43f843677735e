/* The basic layers.
 *   linear      y = x W^T + b, W [out, in] (torch.nn.Linear's layout), on the
 *               last dim of x, by the fused linear op (src/ops/linear.c)
 *   binary_linear  y = x sign(W)^T + b, sign by the straight-through estimator
 *               (BinaryConnect: W stays real-valued and takes the gradient)
 *   activation  y = f(x) for the activations of src/ops/unary.c
 *   dropout     inverted dropout in training mode, identity in evaluation
 *   flatten     [N, d1, d2, ...] -> [N, d1 d2 ...]
 *   sequential  children applied in order */
#include "nn/nn.h"

#include <math.h>

/* ---- linear ------------------------------------------------------------- */
static nb_tensor *linear_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    return nb_linear_op(ctx, x, m->t[0], m->n_t > 1 ? m->t[1] : NULL);
}

static nb_status linear_reset(nb_ctx *ctx, nb_module *m, const nb_init *w, const nb_init *b)
{
    nb_init def = nb_init_default(NB_INIT_TORCH_LINEAR);
    nb_status st = nb_init_tensor(ctx, m->t[0], w ? w : &def);
    if (st != NB_OK || m->n_t < 2)
        return st;
    if (b)
        return nb_init_tensor(ctx, m->t[1], b);
    double r = m->i[0] > 0 ? 1.0 / sqrt((double)m->i[0]) : 0; /* torch: from W's fan_in */
    return nb_fill_uniform(ctx, m->t[1], -r, r);
}

nb_module *nb_linear(nb_ctx *ctx, const char *name, int64_t in, int64_t out, bool bias)
{
    if (ctx && (in < 1 || out < 1)) {
        nb__err(ctx, NB_ERR_ARG, "linear: sizes must be positive, got in %lld, out %lld",
                (long long)in, (long long)out);
        return NULL;
    }
    nb_module *m = nb__module_new(ctx, "linear", name, linear_fwd);
    if (!m)
        return NULL;
    m->reset = linear_reset;
    m->i[0] = in;
    m->i[1] = out;
    if (!nb__module_add(ctx, m, "weight", false, NB_F32, NB_SHAPE(out, in)) ||
        (bias && !nb__module_add(ctx, m, "bias", false, NB_F32, NB_SHAPE(out))) ||
        linear_reset(ctx, m, NULL, NULL) != NB_OK) {
        nb_module_free(ctx, m);
        return NULL;
    }
    return m;
}

static nb_tensor *binary_linear_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    return nb_linear_op(ctx, x, nb_sign_ste(ctx, m->t[0], 0), m->n_t > 1 ? m->t[1] : NULL);
}

nb_module *nb_binary_linear(nb_ctx *ctx, const char *name, int64_t in, int64_t out, bool bias)
{
    nb_module *m = nb_linear(ctx, name, in, out, bias);
    if (m) {
        m->kind = "binary_linear";
        m->forward = binary_linear_fwd;
    }
    return m;
}

/* ---- activations ------------------------------------------------------- */
static const char *const act_names[NB_ACT_COUNT] = {
    [NB_ACT_RELU] = "relu",       [NB_ACT_LEAKY_RELU] = "leaky_relu", [NB_ACT_ELU] = "elu",
    [NB_ACT_SIGMOID] = "sigmoid", [NB_ACT_TANH] = "tanh",             [NB_ACT_GELU] = "gelu",
    [NB_ACT_GELU_TANH] = "gelu_tanh", [NB_ACT_SILU] = "silu",         [NB_ACT_SOFTPLUS] = "softplus",
    [NB_ACT_IDENTITY] = "identity", [NB_ACT_SIGN] = "sign",
};

nb_act nb_act_from_name(const char *name)
{
    return (nb_act)nb__name_index(act_names, NB_ACT_COUNT, name);
}

const char *nb_act_name(nb_act a) { return ((int)a >= 0 && a < NB_ACT_COUNT) ? act_names[a] : "?"; }

static nb_tensor *act_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    double p = m->f[0];
    switch ((nb_act)m->i[0]) {
    case NB_ACT_RELU: return nb_relu(ctx, x);
    case NB_ACT_LEAKY_RELU: return nb_leaky_relu(ctx, x, p);
    case NB_ACT_ELU: return nb_elu(ctx, x, p);
    case NB_ACT_SIGMOID: return nb_sigmoid(ctx, x);
    case NB_ACT_TANH: return nb_tanh(ctx, x);
    case NB_ACT_GELU: return nb_gelu(ctx, x);
    case NB_ACT_GELU_TANH: return nb_gelu_tanh(ctx, x);
    case NB_ACT_SILU: return nb_silu(ctx, x);
    case NB_ACT_SOFTPLUS: return nb_softplus(ctx, x, 1.0, 20.0);
    case NB_ACT_SIGN: return nb_sign_ste(ctx, x, p);
    default: return x;
    }
}

nb_module *nb_activation(nb_ctx *ctx, const char *name, nb_act act, double param)
{
    if (ctx && ((int)act < 0 || act >= NB_ACT_COUNT)) {
        nb__err(ctx, NB_ERR_ARG, "activation: unknown activation %d", (int)act);
        return NULL;
    }
    nb_module *m = nb__module_new(ctx, act_names[act], name, act_fwd);
    if (!m)
        return NULL;
    m->i[0] = act;
    /* the parameter of leaky_relu (slope), elu (alpha) and sign (the STE's
     * clip); torch's defaults (and clip 1, hardtanh's gradient) for 0 */
    m->f[0] = param != 0 ? param : (act == NB_ACT_LEAKY_RELU ? 0.01 : 1.0);
    return m;
}

/* ---- dropout, flatten ---------------------------------------------------- */
static nb_tensor *dropout_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    return nb_dropout(ctx, x, m->f[0], m->training);
}

nb_module *nb_dropout_layer(nb_ctx *ctx, const char *name, double p)
{
    if (ctx && !(p >= 0 && p <= 1)) {
        nb__err(ctx, NB_ERR_ARG, "dropout: probability %g is not in [0, 1]", p);
        return NULL;
    }
    nb_module *m = nb__module_new(ctx, "dropout", name, dropout_fwd);
    if (m)
        m->f[0] = p;
    return m;
}

static nb_tensor *flatten_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    (void)m;
    return x->ndim <= 2 ? x : nb_flatten(ctx, x, 1, -1);
}

nb_module *nb_flatten_layer(nb_ctx *ctx, const char *name)
{
    return nb__module_new(ctx, "flatten", name, flatten_fwd);
}

/* ---- sequential ---------------------------------------------------------- */
nb_tensor *nb__seq_run(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    const nb_module *outer = ctx->cur_module;
    for (int i = 0; i < m->n_children && x; i++) {
        nb_module *c = m->children[i];
        if (!ctx->observe && i + 1 < m->n_children && nb__rnn_fuses(c, m->children[i + 1], x)) {
            /* embedding then a recurrent layer: one pass (see rnn.c); not
             * while observed, since the embedding's output is never made */
            c = m->children[++i];
            ctx->cur_module = c;
            x = nb__rnn_forward_ids(ctx, c, m->children[i - 1], x);
            continue;
        }
        ctx->cur_module = c; /* diagnostics name layers by it */
        x = c->forward(ctx, c, x);
        if (ctx->observe && x)
            ctx->observe(ctx, c, x, ctx->observe_user);
    }
    ctx->cur_module = outer;
    return x;
}

static nb_tensor *seq_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x) { return nb__seq_run(ctx, m, x); }

nb_module *nb_sequential(nb_ctx *ctx, const char *name)
{
    return nb__module_new(ctx, "sequential", name, seq_fwd);
}

nb_status nb_sequential_add(nb_ctx *ctx, nb_module *seq, nb_module *child)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!seq || !child) {
        nb_module_free(ctx, child);
        return ctx->err != NB_OK ? ctx->err
                                 : nb__err(ctx, NB_ERR_NULL, "sequential_add: module is NULL");
    }
    for (int i = 0; child->name && i < seq->n_children; i++)
        if (seq->children[i]->name && strcmp(seq->children[i]->name, child->name) == 0) {
            nb_status st = nb__err(ctx, NB_ERR_ARG, "sequential_add: two children named \"%s\"",
                                   child->name);
            nb_module_free(ctx, child);
            return st;
        }
    if (seq->n_children == seq->cap_children) {
        int cap = seq->cap_children ? 2 * seq->cap_children : 8;
        nb_module **c = nb__heap_alloc(ctx, sizeof *c * (size_t)cap);
        if (!c) {
            nb_module_free(ctx, child);
            return nb__err(ctx, NB_ERR_NOMEM, "sequential_add: allocator failed");
        }
        if (seq->children)
            memcpy(c, seq->children, sizeof *c * (size_t)seq->n_children);
        nb__heap_free(ctx, seq->children);
        seq->children = c;
        seq->cap_children = cap;
    }
    child->training = seq->training;
    seq->children[seq->n_children++] = child;
    return NB_OK;
}
