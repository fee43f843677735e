/* The model from [model] layers: a comma-separated list, read left to right
 * while tracking the shape of one input row ([features] or [C, H, W]):
 *   linear:N                fully connected (flattens an image first)
 *   conv:OUT:K[:s=S][:p=P][:g=G][:d=D]   2-D convolution, K x K
 *   maxpool:K[:s=S][:p=P]   avgpool:K[:s=S][:p=P]   gap (global average)
 *   bn  gn:G  ln            batch, group (images) and layer normalisation
 *   resblock:OUT[:s=S]      torchvision's BasicBlock
 *   upsample:S  flatten  dropout:P  relu  tanh  ...  (activations)
 * and for text (format = text: rows of T byte ids, targets the next bytes):
 *   embedding:E             byte ids -> [T, E] (vocabulary 256)
 *   positional[:sinusoidal] learned (default) or sinusoidal positions
 *   lstm:H[:L]  gru:H[:L]  rnn:H[:L]   L stacked recurrent layers
 *   transformer:HEADS[:HIDDEN[:DROPOUT]]  a causal pre-LN block (HIDDEN 4 E)
 *   gpt:LAYERS:HEADS:WIDTH[:DROPOUT]      embedding to logits, tied (nb_gpt)
 *   linear and ln act on the last dim of a sequence.
 * Images [N, H, W] get a channel dim first when the list starts with an image
 * layer. Layers are named by kind and count: conv1, bn1, fc1, block1, ...
 * A conv directly followed by relu becomes one conv with the ReLU fused, and
 * a maxpool:2 right after that (or right after the conv) is fused too. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    bool image;      /* the row is [c, h, w] (else [f]) */
    int64_t c, h, w, f;
    int seq;         /* text: 1 the row is [T] byte ids, 2 it is [T, f]; T in h */
} shape_t;

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        *--e = '\0';
    return s;
}

/* key=value options after the positional numbers: s, p, g, d */
typedef struct {
    long pos[3];
    int npos;
    long s, p, g, d;
    bool bad;
} args_t;

static args_t parse_args(char *arg)
{
    args_t a = {{0, 0, 0}, 0, -1, -1, 1, 1, false};
    for (char *save = NULL, *t = arg ? strtok_r(arg, ":", &save) : NULL; t; t = strtok_r(NULL, ":", &save)) {
        char *end;
        if (t[0] && t[1] == '=') {
            long v = strtol(t + 2, &end, 10);
            if (*end || t[2] == '\0')
                a.bad = true;
            else if (t[0] == 's')
                a.s = v;
            else if (t[0] == 'p')
                a.p = v;
            else if (t[0] == 'g')
                a.g = v;
            else if (t[0] == 'd')
                a.d = v;
            else
                a.bad = true;
        } else {
            long v = strtol(t, &end, 10);
            if (*end || a.npos == 3)
                a.bad = true;
            else
                a.pos[a.npos++] = v;
        }
    }
    return a;
}

static bool to_flat(nb_ctx *ctx, nb_module *m, shape_t *s)
{
    if (!s->image)
        return true;
    s->image = false;
    s->f = s->c * s->h * s->w;
    return nb_sequential_add(ctx, m, nb_flatten_layer(ctx, NULL)) == NB_OK;
}

static bool err(const cfg *c, const char *tok, const char *why)
{
    fprintf(stderr, "nabla: config: %s: [model] layers: '%s': %s\n", c->path, tok, why);
    return false;
}

static bool add_layer(nb_ctx *ctx, const cfg *c, nb_module *m, char *tok, shape_t *s, int *count,
                      bool fuse_relu, bool fuse_pool)
{
    char *arg = strchr(tok, ':');
    char kind[32];
    snprintf(kind, sizeof kind, "%s", tok);
    if (arg) {
        kind[arg - tok < 31 ? arg - tok : 31] = '\0';
        arg++;
    }
    /* integer arguments for the shaped layers; dropout and activations take a float */
    bool real_arg = !strcmp(kind, "dropout") || nb_act_from_name(kind) != NB_ACT_COUNT ||
                    !strcmp(kind, "positional"); /* a word */
    char argcopy[64];
    snprintf(argcopy, sizeof argcopy, "%s", arg ? arg : "");
    args_t a = parse_args(real_arg || !arg ? NULL : argcopy);
    char name[24];
    nb_module *layer = NULL;
    if (!strcmp(kind, "transformer") || !strcmp(kind, "gpt")) {
        /* integers then an optional float: parsed here */
        long v[3] = {0, 0, 0};
        double p = 0;
        int n = 0, want = kind[0] == 'g' ? 3 : 1, most = kind[0] == 'g' ? 3 : 2;
        char *save = NULL, targ[64]; /* argcopy was cut up by parse_args */
        snprintf(targ, sizeof targ, "%s", arg ? arg : "");
        for (char *t = arg ? strtok_r(targ, ":", &save) : NULL; t; t = strtok_r(NULL, ":", &save)) {
            char *end;
            if (n < most && (v[n] = strtol(t, &end, 10), *end == '\0') && t[0])
                n++;
            else if (n >= want && (p = strtod(t, &end), *end == '\0') && t[0] && p >= 0 && p < 1)
                most = n; /* the dropout ends the list */
            else
                return err(c, tok, kind[0] == 'g' ? "gpt:LAYERS:HEADS:WIDTH[:DROPOUT]"
                                                  : "transformer:HEADS[:HIDDEN[:DROPOUT]]");
        }
        if (n < want)
            return err(c, tok, kind[0] == 'g' ? "needs layers, heads and width (gpt:4:4:128)"
                                              : "needs a head count (transformer:4)");
        if (kind[0] == 'g') {
            if (s->seq != 1)
                return err(c, tok, "needs byte ids: put it first, with format = text");
            layer = nb_gpt(ctx, "gpt", 256, s->h, (int)v[0], (int)v[1], v[2], p);
            s->seq = 2;
            s->f = 256;
        } else {
            if (s->seq != 2)
                return err(c, tok, "needs a sequence of vectors (embedding:E before it)");
            snprintf(name, sizeof name, "block%d", ++count[2]);
            layer = nb_transformer_block(ctx, name, s->f, (int)v[0], n > 1 ? v[1] : 4 * s->f, p, true);
        }
        return layer ? nb_sequential_add(ctx, m, layer) == NB_OK
                     : err(c, tok, nb_last_error(ctx));
    }
    if (a.bad)
        return err(c, tok, "bad arguments (numbers, then s=, p=, g=, d=)");
    if (!strcmp(kind, "embedding")) {
        if (s->seq != 1)
            return err(c, tok, "needs byte ids (format = text), once, first");
        if (a.npos != 1 || a.pos[0] < 1)
            return err(c, tok, "needs a positive width (embedding:64)");
        layer = nb_embedding(ctx, "emb", 256, a.pos[0], -1);
        s->seq = 2;
        s->f = a.pos[0];
        return nb_sequential_add(ctx, m, layer) == NB_OK;
    }
    if (s->seq == 1)
        return err(c, tok, "byte ids need an embedding (embedding:E or gpt:...) first");
    if (!strcmp(kind, "positional")) {
        if (s->seq != 2 || (arg && strcmp(arg, "learned") && strcmp(arg, "sinusoidal")))
            return err(c, tok, "needs a sequence (after embedding:E); positional[:learned|:sinusoidal]");
        layer = nb_positional_layer(ctx, "pos", s->h, s->f, !arg || !strcmp(arg, "learned"));
        return nb_sequential_add(ctx, m, layer) == NB_OK;
    }
    if (!strcmp(kind, "lstm") || !strcmp(kind, "gru") || !strcmp(kind, "rnn")) {
        if (s->seq != 2)
            return err(c, tok, "needs a sequence (after embedding:E)");
        if (a.npos < 1 || a.npos > 2 || a.pos[0] < 1 || (a.npos == 2 && a.pos[1] < 1))
            return err(c, tok, "needs a hidden size and optionally layers (lstm:256:2)");
        nb_rnn_opts o = nb_rnn_opts_default(kind[0] == 'l' ? NB_LSTM : kind[0] == 'g' ? NB_GRU
                                                                                      : NB_RNN_TANH,
                                            s->f, a.pos[0]);
        o.batch_first = true;
        o.layers = a.npos == 2 ? (int)a.pos[1] : 1;
        snprintf(name, sizeof name, "%.8s%d", kind, ++count[2]);
        layer = nb_rnn_layer(ctx, name, &o);
        s->f = a.pos[0];
        return layer ? nb_sequential_add(ctx, m, layer) == NB_OK : err(c, tok, nb_last_error(ctx));
    }
    if (!strcmp(kind, "linear") || !strcmp(kind, "blinear")) {
        if (a.npos != 1 || a.pos[0] < 1)
            return err(c, tok, "needs a positive width (linear:512)");
        if (!to_flat(ctx, m, s))
            return false;
        snprintf(name, sizeof name, "fc%d", ++count[0]);
        layer = kind[0] == 'b' ? nb_binary_linear(ctx, name, s->f, a.pos[0], true)
                               : nb_linear(ctx, name, s->f, a.pos[0], true);
        s->f = a.pos[0];
    } else if (!strcmp(kind, "gaussian")) {
        if (a.npos != 1 || a.pos[0] < 1)
            return err(c, tok, "needs a positive latent size (gaussian:20)");
        if (!to_flat(ctx, m, s))
            return false;
        layer = nb_gaussian_layer(ctx, "latent", s->f, a.pos[0], 1.0);
        s->f = a.pos[0];
    } else if (!strcmp(kind, "conv") || !strcmp(kind, "resblock")) {
        bool conv = kind[0] == 'c';
        if (!s->image)
            return err(c, tok, "needs image input [C, H, W]");
        if (a.npos != (conv ? 2 : 1) || a.pos[0] < 1 || (conv && a.pos[1] < 1))
            return err(c, tok, conv ? "needs out channels and kernel size (conv:32:3)" : "needs out channels (resblock:64)");
        int64_t k = conv ? a.pos[1] : 3, st = a.s > 0 ? a.s : 1, pad = a.p >= 0 ? a.p : (conv ? 0 : 1);
        if (conv) {
            nb_conv_opts o = nb_conv_opts_default();
            o.stride[0] = o.stride[1] = (int)st;
            o.padding[0] = o.padding[1] = (int)pad;
            o.groups = (int)a.g;
            o.dilation[0] = o.dilation[1] = (int)a.d;
            o.relu = fuse_relu; /* "conv, relu": one op, no separate ReLU pass */
            o.max_pool = fuse_pool; /* "conv, relu, maxpool:2": nor a pooling pass */
            snprintf(name, sizeof name, "conv%d", ++count[1]);
            layer = nb_conv2d_layer(ctx, name, s->c, a.pos[0], (int)k, (int)k, &o, true);
            int64_t ek = a.d * (k - 1) + 1;
            s->h = (s->h + 2 * pad - ek) / st + 1;
            s->w = (s->w + 2 * pad - ek) / st + 1;
            if (fuse_pool) {
                if (s->h < 2 || s->w < 2)
                    return nb_module_free(ctx, layer), err(c, tok, "the image is too small for it");
                s->h /= 2;
                s->w /= 2;
            }
        } else {
            snprintf(name, sizeof name, "block%d", ++count[2]);
            layer = nb_basic_block(ctx, name, s->c, a.pos[0], (int)st);
            s->h = (s->h - 1) / st + 1;
            s->w = (s->w - 1) / st + 1;
        }
        s->c = a.pos[0];
        if (s->h < 1 || s->w < 1)
            return nb_module_free(ctx, layer), err(c, tok, "the image is too small for it");
    } else if (!strcmp(kind, "maxpool") || !strcmp(kind, "avgpool")) {
        if (!s->image)
            return err(c, tok, "needs image input");
        if (a.npos != 1 || a.pos[0] < 1)
            return err(c, tok, "needs a kernel size (maxpool:2)");
        nb_pool_opts o = nb_pool_opts_default((int)a.pos[0], (int)a.pos[0]);
        o.stride[0] = o.stride[1] = (int)(a.s > 0 ? a.s : a.pos[0]);
        o.padding[0] = o.padding[1] = (int)(a.p > 0 ? a.p : 0);
        layer = kind[0] == 'm' ? nb_max_pool_layer(ctx, NULL, &o) : nb_avg_pool_layer(ctx, NULL, &o);
        s->h = (s->h + 2 * o.padding[0] - a.pos[0]) / o.stride[0] + 1;
        s->w = (s->w + 2 * o.padding[1] - a.pos[0]) / o.stride[1] + 1;
    } else if (!strcmp(kind, "gap")) {
        if (!s->image)
            return err(c, tok, "needs image input");
        layer = nb_global_avg_pool_layer(ctx, NULL);
        s->image = false;
        s->f = s->c;
    } else if (!strcmp(kind, "bn")) {
        snprintf(name, sizeof name, "bn%d", ++count[3]);
        layer = nb_batch_norm_layer(ctx, name, s->image ? s->c : s->f, 0.1, 1e-5, true);
    } else if (!strcmp(kind, "gn")) {
        if (!s->image || a.npos != 1)
            return err(c, tok, "needs image input and a group count (gn:8)");
        snprintf(name, sizeof name, "gn%d", ++count[3]);
        layer = nb_group_norm_layer(ctx, name, (int)a.pos[0], s->c, 1e-5, true);
    } else if (!strcmp(kind, "ln")) {
        int64_t sh[3] = {s->c, s->h, s->w};
        snprintf(name, sizeof name, "ln%d", ++count[3]);
        layer = s->image ? nb_layer_norm_layer(ctx, name, 3, sh, 1e-5, true)
                         : nb_layer_norm_layer(ctx, name, 1, &s->f, 1e-5, true);
    } else if (!strcmp(kind, "upsample")) {
        if (!s->image || a.npos != 1 || a.pos[0] < 1)
            return err(c, tok, "needs image input and a factor (upsample:2)");
        layer = nb_upsample_layer(ctx, NULL, (int)a.pos[0], (int)a.pos[0]);
        s->h *= a.pos[0];
        s->w *= a.pos[0];
    } else if (!strcmp(kind, "flatten")) {
        return to_flat(ctx, m, s);
    } else if (!strcmp(kind, "dropout")) {
        layer = nb_dropout_layer(ctx, NULL, arg ? strtod(arg, NULL) : 0.5);
    } else if (nb_act_from_name(kind) != NB_ACT_COUNT) {
        layer = nb_activation(ctx, NULL, nb_act_from_name(kind), arg ? strtod(arg, NULL) : 0);
    } else {
        return err(c, tok, "unknown layer (linear:N, blinear:N, gaussian:Z, conv:OUT:K, maxpool:K, avgpool:K, gap, bn, gn:G, "
                           "ln, resblock:OUT, upsample:S, flatten, dropout:P, relu, leaky_relu:S, elu, "
                           "sigmoid, tanh, gelu, gelu_tanh, silu, softplus, sign:CLIP, identity)");
    }
    return nb_sequential_add(ctx, m, layer) == NB_OK;
}

nb_module *build_model(nb_ctx *ctx, const cfg *c, const nb_tensor *x, int64_t *out_dim)
{
    nb_module *m = nb_sequential(ctx, NULL);
    if (!m)
        return NULL;
    shape_t s = {false, 1, 1, 1, 1, 0};
    if (!strcmp(c->format, "text")) {
        s.seq = 1;
        s.h = x->shape[1];
    } else if (x->ndim == 2) {
        s.f = x->shape[1];
    } else if (x->ndim == 3 || x->ndim == 4) {
        s.image = true;
        s.c = x->ndim == 4 ? x->shape[1] : 1;
        s.h = x->shape[x->ndim - 2];
        s.w = x->shape[x->ndim - 1];
        if (x->ndim == 3) { /* [N, H, W] -> [N, 1, H, W] */
            int64_t sh[3] = {1, s.h, s.w};
            if (nb_sequential_add(ctx, m, nb_reshape_layer(ctx, NULL, 3, sh)) != NB_OK) {
                nb_module_free(ctx, m);
                return NULL;
            }
        }
    } else {
        s.f = x->shape[0] ? nb_numel(x) / x->shape[0] : 0;
    }
    char spec[1024];
    snprintf(spec, sizeof spec, "%s", c->layers);
    int count[4] = {0, 0, 0, 0}, nt = 0;
    char *toks[256];
    for (char *save = NULL, *tok = strtok_r(spec, ",", &save); tok && nt < 256;
         tok = strtok_r(NULL, ",", &save))
        toks[nt++] = trim(tok);
    for (int i = 0; i < nt; i++) {
        bool conv = !strncmp(toks[i], "conv:", 5);
        bool fuse = conv && i + 1 < nt && !strcmp(toks[i + 1], "relu");
        bool pool = conv && i + 1 + fuse < nt && !strcmp(toks[i + 1 + fuse], "maxpool:2");
        if (!add_layer(ctx, c, m, toks[i], &s, count, fuse, pool)) {
            nb_module_free(ctx, m);
            return NULL;
        }
        i += fuse + pool; /* the ReLU and the pooling went into the conv */
    }
    if (strcmp(c->init, "default")) {
        nb_init_kind k = !strcmp(c->init, "xavier_uniform") ? NB_INIT_XAVIER_UNIFORM
                         : !strcmp(c->init, "xavier_normal") ? NB_INIT_XAVIER_NORMAL
                         : !strcmp(c->init, "kaiming_uniform") ? NB_INIT_KAIMING_UNIFORM
                         : !strcmp(c->init, "kaiming_normal") ? NB_INIT_KAIMING_NORMAL
                                                              : NB_INIT_ORTHOGONAL;
        nb_init w = nb_init_default(k), b = nb_init_default(NB_INIT_CONSTANT);
        if (k == NB_INIT_KAIMING_UNIFORM || k == NB_INIT_KAIMING_NORMAL)
            w.nonlinearity = NB_GAIN_RELU;
        if (nb_module_init(ctx, m, &w, &b) != NB_OK) {
            nb_module_free(ctx, m);
            return NULL;
        }
    }
    *out_dim = s.image ? s.c * s.h * s.w : s.f;
    return m;
}
