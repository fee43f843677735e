/* Optimizers with torch.optim's update rules (PyTorch 1.13, single-tensor
 * forms), each one fused pass over a parameter per step. With g the gradient
 * (plus weight_decay * p, except AdamW) and t the parameter's step count:
 *
 *   sgd      b = t == 1 ? g : momentum b + (1 - dampening) g
 *            d = nesterov ? g + momentum b : b   (d = g without momentum)
 *            p -= lr d
 *   adam     m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *            vmax = max(vmax, v) (amsgrad);  den = sqrt(v or vmax) / sqrt(1 - b2^t) + eps
 *            p -= lr / (1 - b1^t) m / den
 *   adamw    p *= 1 - lr wd, then adam without weight decay in g
 *   rmsprop  s = alpha s + (1 - alpha) g^2;  a = alpha a + (1 - alpha) g (centered)
 *            den = sqrt(s - a^2 (centered)) + eps
 *            momentum: b = momentum b + g / den, p -= lr b;  else p -= lr g / den
 *   adagrad  clr = lr / (1 + (t - 1) lr_decay);  s += g^2;  p -= clr g / (sqrt(s) + eps)
 *
 * Scalars are rounded to the parameter's type before use, as torch's CPU
 * kernels do, so float32 runs follow PyTorch to rounding. */
#include "core/internal.h"
#include "kernels/parallel.h"

#include <math.h>
#include <stdio.h>

#define MAX_STATE 3

typedef struct {
    nb_tensor *p;
    nb_tensor *s[MAX_STATE];
    char *name;
    int64_t step;
    int group;
} slot;

typedef struct {
    double lr, base_lr, wd;
} group;

struct nb_optim {
    nb_optim_opts o;
    slot *slots;
    int n_slots, cap_slots;
    group *groups;
    int n_groups, cap_groups;
    int64_t steps;
};

static const char *const kind_names[NB_OPT_COUNT] = {"sgd", "adam", "adamw", "rmsprop", "adagrad"};

const char *nb_optim_name(nb_optim_kind k) { return ((int)k >= 0 && k < NB_OPT_COUNT) ? kind_names[k] : "?"; }

nb_optim_kind nb_optim_from_name(const char *name)
{
    return (nb_optim_kind)nb__name_index(kind_names, NB_OPT_COUNT, name);
}

nb_optim_opts nb_optim_opts_default(nb_optim_kind kind)
{
    nb_optim_opts o;
    memset(&o, 0, sizeof o);
    o.kind = kind;
    o.beta1 = 0.9;
    o.beta2 = 0.999;
    o.alpha = 0.99;
    switch (kind) {
    case NB_OPT_SGD: o.lr = 0.01; break;
    case NB_OPT_ADAM: o.lr = 1e-3; o.eps = 1e-8; break;
    case NB_OPT_ADAMW: o.lr = 1e-3; o.eps = 1e-8; o.weight_decay = 1e-2; break;
    case NB_OPT_RMSPROP: o.lr = 1e-2; o.eps = 1e-8; break;
    case NB_OPT_ADAGRAD: o.lr = 1e-2; o.eps = 1e-10; break;
    default: break;
    }
    return o;
}

static bool bad(double v) { return !isfinite(v) || v < 0; }

nb_optim *nb_optim_new(nb_ctx *ctx, const nb_optim_opts *opts)
{
    if (!ctx)
        return NULL;
    if (!opts) {
        nb__err(ctx, NB_ERR_NULL, "optim: options are NULL");
        return NULL;
    }
    const nb_optim_opts *o = opts;
    const char *why = NULL;
    if ((int)o->kind < 0 || o->kind >= NB_OPT_COUNT)
        why = "unknown optimizer";
    else if (bad(o->lr))
        why = "learning rate must be finite and >= 0";
    else if (bad(o->weight_decay))
        why = "weight_decay must be finite and >= 0";
    else if (bad(o->momentum) || bad(o->dampening))
        why = "momentum and dampening must be finite and >= 0";
    else if (o->nesterov && (o->momentum <= 0 || o->dampening != 0))
        why = "nesterov needs momentum > 0 and dampening 0";
    else if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
        why = "betas must be in [0, 1)";
    else if (bad(o->eps) || bad(o->alpha) || bad(o->lr_decay) || bad(o->initial_accumulator))
        why = "eps, alpha, lr_decay and initial_accumulator must be finite and >= 0";
    if (why) {
        nb__err(ctx, NB_ERR_ARG, "optim %s: %s (lr %g, weight_decay %g)", nb_optim_name(o->kind),
                why, o->lr, o->weight_decay);
        return NULL;
    }
    nb_optim *opt = nb__heap_alloc(ctx, sizeof *opt);
    if (!opt) {
        nb__err(ctx, NB_ERR_NOMEM, "optim: allocator failed");
        return NULL;
    }
    memset(opt, 0, sizeof *opt);
    opt->o = *o;
    return opt;
}

void nb_optim_free(nb_ctx *ctx, nb_optim *opt)
{
    if (!ctx || !opt)
        return;
    for (int i = 0; i < opt->n_slots; i++) {
        for (int k = 0; k < MAX_STATE; k++)
            nb_tensor_free(ctx, opt->slots[i].s[k]);
        nb__heap_free(ctx, opt->slots[i].name);
    }
    nb__heap_free(ctx, opt->slots);
    nb__heap_free(ctx, opt->groups);
    nb__heap_free(ctx, opt);
}

/* State tensor names by kind and index (NULL: not used). */
static const char *state_name(const nb_optim_opts *o, int k)
{
    switch (o->kind) {
    case NB_OPT_SGD: return k == 0 && o->momentum != 0 ? "momentum_buffer" : NULL;
    case NB_OPT_ADAM:
    case NB_OPT_ADAMW: return k == 0 ? "exp_avg" : k == 1 ? "exp_avg_sq" : o->amsgrad ? "max_exp_avg_sq" : NULL;
    case NB_OPT_RMSPROP:
        return k == 0 ? "square_avg" : k == 1 ? (o->momentum > 0 ? "momentum_buffer" : NULL)
                                              : (o->centered ? "grad_avg" : NULL);
    case NB_OPT_ADAGRAD: return k == 0 ? "sum" : NULL;
    default: return NULL;
    }
}

static bool grow(nb_ctx *ctx, void **arr, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return true;
    int c = *cap ? *cap : 8;
    while (c < need)
        c *= 2;
    void *n = nb__heap_alloc(ctx, elem * (size_t)c);
    if (!n)
        return false;
    if (*arr)
        memcpy(n, *arr, elem * (size_t)*cap);
    nb__heap_free(ctx, *arr);
    *arr = n;
    *cap = c;
    return true;
}

int nb_optim_add_group(nb_ctx *ctx, nb_optim *opt, int n, nb_tensor *const *params,
                       const char *const *names, double lr, double weight_decay)
{
    if (!ctx)
        return -1;
    if (!opt || (n > 0 && !params)) {
        nb__err(ctx, NB_ERR_NULL, "optim_add_group: optimizer or parameters NULL");
        return -1;
    }
    if (n < 0 || (lr >= 0 && !isfinite(lr)) || (weight_decay >= 0 && !isfinite(weight_decay))) {
        nb__err(ctx, NB_ERR_ARG, "optim_add_group: bad group (n %d, lr %g, weight_decay %g)", n, lr,
                weight_decay);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        nb_tensor *p = params[i];
        const char *nm = names ? names[i] : NULL;
        if (!p || !(p->flags & NB_PERSISTENT) || !nb__is_float(p->dtype)) {
            nb__err(ctx, NB_ERR_ARG,
                    "optim_add_group: parameter %d (%s) must be a persistent float tensor", i,
                    nm ? nm : "unnamed");
            return -1;
        }
        for (int j = 0; j < opt->n_slots; j++)
            if (opt->slots[j].p == p) {
                nb__err(ctx, NB_ERR_ARG, "optim_add_group: parameter %d (%s) is already in a group",
                        i, nm ? nm : "unnamed");
                return -1;
            }
    }
    if (!grow(ctx, (void **)&opt->groups, &opt->cap_groups, opt->n_groups + 1, sizeof(group)) ||
        !grow(ctx, (void **)&opt->slots, &opt->cap_slots, opt->n_slots + n, sizeof(slot))) {
        nb__err(ctx, NB_ERR_NOMEM, "optim_add_group: allocator failed");
        return -1;
    }
    int g = opt->n_groups;
    group *G = &opt->groups[g];
    G->lr = G->base_lr = lr >= 0 ? lr : opt->o.lr;
    G->wd = weight_decay >= 0 ? weight_decay : opt->o.weight_decay;
    int first = opt->n_slots;
    for (int i = 0; i < n; i++) {
        slot *S = &opt->slots[opt->n_slots];
        memset(S, 0, sizeof *S);
        S->p = params[i];
        S->group = g;
        char buf[160];
        if (names && names[i])
            snprintf(buf, sizeof buf, "%s", names[i]);
        else
            snprintf(buf, sizeof buf, "group%d.%d", g, i);
        S->name = nb__heap_alloc(ctx, strlen(buf) + 1);
        bool ok = S->name != NULL;
        if (ok)
            strcpy(S->name, buf);
        for (int k = 0; ok && k < MAX_STATE; k++) {
            if (!state_name(&opt->o, k))
                continue;
            S->s[k] = nb_buffer(ctx, S->p->dtype, S->p->ndim, S->p->shape);
            ok = S->s[k] != NULL;
            if (ok && opt->o.kind == NB_OPT_ADAGRAD)
                nb_fill(ctx, S->s[k], opt->o.initial_accumulator);
        }
        opt->n_slots++;
        if (!ok) { /* undo this group */
            while (opt->n_slots > first) {
                slot *U = &opt->slots[--opt->n_slots];
                for (int k = 0; k < MAX_STATE; k++)
                    nb_tensor_free(ctx, U->s[k]);
                nb__heap_free(ctx, U->name);
            }
            if (ctx->err == NB_OK)
                nb__err(ctx, NB_ERR_NOMEM, "optim_add_group: allocator failed");
            return -1;
        }
    }
    opt->n_groups++;
    return g;
}

nb_status nb_optim_add_module(nb_ctx *ctx, nb_optim *opt, nb_module *m, bool no_decay_1d)
{
    if (!ctx)
        return NB_ERR_NULL;
    nb_param_list l;
    nb_status st = nb_module_params(ctx, m, &l);
    if (st != NB_OK)
        return st;
    nb_tensor **ps = nb__heap_alloc(ctx, sizeof *ps * (size_t)(l.n + 1));
    const char **ns = nb__heap_alloc(ctx, sizeof *ns * (size_t)(l.n + 1));
    if (!ps || !ns) {
        st = nb__err(ctx, NB_ERR_NOMEM, "optim_add_module: allocator failed");
    } else {
        for (int pass = 0; pass < (no_decay_1d ? 2 : 1) && st == NB_OK; pass++) {
            int k = 0;
            for (int i = 0; i < l.n; i++) {
                nb_tensor *t = l.items[i].tensor;
                if (l.items[i].is_buffer)
                    continue;
                if (no_decay_1d && (pass == 0) != (t->ndim >= 2))
                    continue;
                ps[k] = t;
                ns[k++] = l.items[i].name;
            }
            if (k > 0 && nb_optim_add_group(ctx, opt, k, ps, ns, -1, pass == 1 ? 0.0 : -1) < 0)
                st = ctx->err;
        }
    }
    nb__heap_free(ctx, ps);
    nb__heap_free(ctx, ns);
    nb_param_list_free(ctx, &l);
    return st;
}

/* ---- the fused updates ----------------------------------------------------- */
typedef struct {
    const nb_optim_opts *o;
    void *p, *g, *s0, *s1, *s2;
    double lr, wd, bc1, bc2_sqrt, clr;
    bool first;
} upd;

#define UPDATE_KERNELS(T, SUF, SQRT)                                                           \
    static void sgd_##SUF(int64_t b, int64_t e, void *arg)                               \
    {                                                                                    \
        const upd *U = arg;                                                              \
        T *p = U->p, *buf = U->s0;                                                       \
        const T *g = U->g;                                                               \
        const T lr = (T)U->lr, wd = (T)U->wd, mom = (T)U->o->momentum,                   \
                damp1 = (T)(1 - U->o->dampening);                                        \
        for (int64_t i = b; i < e; i++) {                                                \
            T d = wd != 0 ? g[i] + wd * p[i] : g[i];                                     \
            if (buf) {                                                                   \
                buf[i] = U->first ? d : mom * buf[i] + damp1 * d;                        \
                d = U->o->nesterov ? d + mom * buf[i] : buf[i];                          \
            }                                                                            \
            p[i] -= lr * d;                                                              \
        }                                                                                \
    }                                                                                    \
    static void adam_##SUF(int64_t b, int64_t e, void *arg)                              \
    {                                                                                    \
        const upd *U = arg;                                                              \
        T *restrict p = U->p, *restrict m = U->s0, *restrict v = U->s1;                  \
        T *restrict vmax = U->s2;                                                        \
        const T *restrict g = U->g;                                                      \
        const bool decoupled = U->o->kind == NB_OPT_ADAMW;                               \
        const T b1 = (T)U->o->beta1, b2 = (T)U->o->beta2, ob1 = (T)(1 - U->o->beta1),    \
                ob2 = (T)(1 - U->o->beta2), eps = (T)U->o->eps,                          \
                step = (T)(U->lr / U->bc1), bc2s = (T)U->bc2_sqrt,                        \
                shrink = (T)(1 - U->lr * U->wd);                                         \
        const T wd = decoupled ? (T)0 : (T)U->wd;                                        \
        if (decoupled)                                                                   \
            for (int64_t i = b; i < e; i++)                                              \
                p[i] *= shrink;                                                          \
        if (!vmax) { /* the common case, kept branch-free so it vectorises */           \
            for (int64_t i = b; i < e; i++) {                                            \
                T gi = g[i] + wd * p[i];                                                 \
                m[i] = m[i] * b1 + gi * ob1;                                             \
                v[i] = v[i] * b2 + gi * gi * ob2;                                        \
                p[i] += -step * (m[i] / (SQRT(v[i]) / bc2s + eps));                      \
            }                                                                            \
            return;                                                                      \
        }                                                                                \
        for (int64_t i = b; i < e; i++) {                                                \
            T gi = g[i] + wd * p[i];                                                     \
            m[i] = m[i] * b1 + gi * ob1;                                                 \
            v[i] = v[i] * b2 + gi * gi * ob2;                                            \
            vmax[i] = vmax[i] > v[i] ? vmax[i] : v[i];                                   \
            p[i] += -step * (m[i] / (SQRT(vmax[i]) / bc2s + eps));                       \
        }                                                                                \
    }                                                                                    \
    static void rmsprop_##SUF(int64_t b, int64_t e, void *arg)                           \
    {                                                                                    \
        const upd *U = arg;                                                              \
        T *p = U->p, *sq = U->s0, *buf = U->s1, *ga = U->s2;                             \
        const T *g = U->g;                                                               \
        const T al = (T)U->o->alpha, oal = (T)(1 - U->o->alpha), wd = (T)U->wd,          \
                eps = (T)U->o->eps, lr = (T)U->lr, mom = (T)U->o->momentum;              \
        for (int64_t i = b; i < e; i++) {                                                \
            T gi = wd != 0 ? g[i] + wd * p[i] : g[i];                                    \
            sq[i] = sq[i] * al + gi * gi * oal;                                          \
            T avg;                                                                       \
            if (ga) {                                                                    \
                ga[i] = ga[i] * al + gi * oal;                                           \
                avg = SQRT(sq[i] - ga[i] * ga[i]) + eps;                                 \
            } else {                                                                     \
                avg = SQRT(sq[i]) + eps;                                                 \
            }                                                                            \
            if (buf) {                                                                   \
                buf[i] = buf[i] * mom + gi / avg;                                        \
                p[i] += -lr * buf[i];                                                    \
            } else {                                                                     \
                p[i] += -lr * (gi / avg);                                                \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    static void adagrad_##SUF(int64_t b, int64_t e, void *arg)                           \
    {                                                                                    \
        const upd *U = arg;                                                              \
        T *p = U->p, *sum = U->s0;                                                       \
        const T *g = U->g;                                                               \
        const T wd = (T)U->wd, eps = (T)U->o->eps, clr = (T)U->clr;                      \
        for (int64_t i = b; i < e; i++) {                                                \
            T gi = wd != 0 ? g[i] + wd * p[i] : g[i];                                    \
            sum[i] += gi * gi;                                                           \
            p[i] += -clr * (gi / (SQRT(sum[i]) + eps));                                  \
        }                                                                                \
    }
UPDATE_KERNELS(float, f32, sqrtf)
UPDATE_KERNELS(double, f64, sqrt)

static nb__range_fn kernel_of(nb_optim_kind k, nb_dtype dt)
{
    bool f = dt == NB_F32;
    switch (k) {
    case NB_OPT_SGD: return f ? sgd_f32 : sgd_f64;
    case NB_OPT_ADAM:
    case NB_OPT_ADAMW: return f ? adam_f32 : adam_f64;
    case NB_OPT_RMSPROP: return f ? rmsprop_f32 : rmsprop_f64;
    default: return f ? adagrad_f32 : adagrad_f64;
    }
}

nb_status nb_optim_step(nb_ctx *ctx, nb_optim *opt)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!opt)
        return nb__err(ctx, NB_ERR_NULL, "optim_step: optimizer is NULL");
    const nb_optim_opts *o = &opt->o;
    for (int i = 0; i < opt->n_slots; i++) {
        slot *S = &opt->slots[i];
        if (!S->p->grad || !(S->p->flags & NB_REQUIRES_GRAD)) /* frozen */
            continue; /* as torch: a parameter without a gradient is left alone */
        group *G = &opt->groups[S->group];
        S->step++;
        double t = (double)S->step;
        upd U = {o, S->p->data, S->p->grad->data, NULL, NULL, NULL, G->lr, G->wd, 1, 1, 0,
                 S->step == 1};
        U.s0 = S->s[0] ? S->s[0]->data : NULL;
        U.s1 = S->s[1] ? S->s[1]->data : NULL;
        U.s2 = S->s[2] ? S->s[2]->data : NULL;
        if (o->kind == NB_OPT_ADAM || o->kind == NB_OPT_ADAMW) {
            U.bc1 = 1 - pow(o->beta1, t);
            U.bc2_sqrt = sqrt(1 - pow(o->beta2, t));
        }
        if (o->kind == NB_OPT_ADAGRAD)
            U.clr = G->lr / (1 + (t - 1) * o->lr_decay);
        int64_t n = nb__numel(S->p);
        nb__parallel_for(ctx->nthreads, n, 8, kernel_of(o->kind, S->p->dtype), &U);
    }
    opt->steps++;
    return NB_OK;
}

void nb_optim_zero_grad(nb_optim *opt)
{
    for (int i = 0; opt && i < opt->n_slots; i++)
        nb_zero_grad(opt->slots[i].p);
}

int nb_optim_group_count(const nb_optim *opt) { return opt ? opt->n_groups : 0; }

double nb_optim_lr(const nb_optim *opt, int g)
{
    return (opt && g >= 0 && g < opt->n_groups) ? opt->groups[g].lr : 0.0;
}

double nb_optim_base_lr(const nb_optim *opt, int g)
{
    return (opt && g >= 0 && g < opt->n_groups) ? opt->groups[g].base_lr : 0.0;
}

void nb_optim_set_lr(nb_optim *opt, int g, double lr)
{
    for (int i = 0; opt && i < opt->n_groups; i++)
        if (g < 0 || g == i)
            opt->groups[i].lr = lr;
}

int64_t nb_optim_steps(const nb_optim *opt) { return opt ? opt->steps : 0; }

void nb_optim_set_steps(nb_optim *opt, int64_t steps)
{
    if (!opt)
        return;
    opt->steps = steps;
    for (int i = 0; i < opt->n_slots; i++)
        opt->slots[i].step = steps;
}

nb_status nb_optim_state(nb_ctx *ctx, nb_optim *opt, nb_param_list *out)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!opt || !out)
        return nb__err(ctx, NB_ERR_NULL, "optim_state: optimizer or output NULL");
    int n = 0;
    size_t chars = 0;
    for (int i = 0; i < opt->n_slots; i++)
        for (int k = 0; k < MAX_STATE; k++)
            if (opt->slots[i].s[k]) {
                n++;
                chars += strlen(opt->slots[i].name) + strlen(state_name(&opt->o, k)) + 2;
            }
    void *mem = nb__heap_alloc(ctx, sizeof(nb_named_tensor) * (size_t)n + chars + 1);
    if (!mem)
        return nb__err(ctx, NB_ERR_NOMEM, "optim_state: allocator failed");
    out->items = mem;
    out->n = 0;
    char *pool = (char *)mem + sizeof(nb_named_tensor) * (size_t)n;
    for (int i = 0; i < opt->n_slots; i++)
        for (int k = 0; k < MAX_STATE; k++)
            if (opt->slots[i].s[k]) {
                nb_named_tensor *it = &out->items[out->n++];
                int len = sprintf(pool, "%s.%s", opt->slots[i].name, state_name(&opt->o, k));
                it->name = pool;
                it->tensor = opt->slots[i].s[k];
                it->is_buffer = true;
                pool += len + 1;
            }
    return NB_OK;
}

/* ---- gradient clipping ------------------------------------------------------- */
nb_status nb_clip_grad_norm(nb_ctx *ctx, int n, nb_tensor *const *ts, double max_norm, double *norm)
{
    if (!ctx)
        return NB_ERR_NULL;
    if ((n > 0 && !ts) || !(max_norm > 0))
        return nb__err(ctx, NB_ERR_ARG, "clip_grad_norm: max_norm must be positive, got %g", max_norm);
    double total = 0;
    for (int i = 0; i < n; i++) {
        nb_tensor *g = ts[i] ? ts[i]->grad : NULL;
        if (!g)
            continue;
        int64_t m = nb__numel(g);
        double s = 0;
        if (g->dtype == NB_F32)
            for (int64_t j = 0; j < m; j++)
                s += (double)((float *)g->data)[j] * ((float *)g->data)[j];
        else
            for (int64_t j = 0; j < m; j++)
                s += ((double *)g->data)[j] * ((double *)g->data)[j];
        total += s;
    }
    total = sqrt(total);
    if (norm)
        *norm = total;
    double coef = max_norm / (total + 1e-6);
    if (coef < 1)
        for (int i = 0; i < n; i++) {
            nb_tensor *g = ts[i] ? ts[i]->grad : NULL;
            if (!g)
                continue;
            int64_t m = nb__numel(g);
            if (g->dtype == NB_F32) {
                float c = (float)coef;
                for (int64_t j = 0; j < m; j++)
                    ((float *)g->data)[j] *= c;
            } else {
                for (int64_t j = 0; j < m; j++)
                    ((double *)g->data)[j] *= coef;
            }
        }
    return NB_OK;
}

nb_status nb_clip_grad_value(nb_ctx *ctx, int n, nb_tensor *const *ts, double value)
{
    if (!ctx)
        return NB_ERR_NULL;
    if ((n > 0 && !ts) || !(value > 0))
        return nb__err(ctx, NB_ERR_ARG, "clip_grad_value: value must be positive, got %g", value);
    for (int i = 0; i < n; i++) {
        nb_tensor *g = ts[i] ? ts[i]->grad : NULL;
        if (!g)
            continue;
        int64_t m = nb__numel(g);
        for (int64_t j = 0; j < m; j++) {
            if (g->dtype == NB_F32) {
                float *x = (float *)g->data + j, v = (float)value;
                *x = *x > v ? v : (*x < -v ? -v : *x);
            } else {
                double *x = (double *)g->data + j;
                *x = *x > value ? value : (*x < -value ? -value : *x);
            }
        }
    }
    return NB_OK;
}
