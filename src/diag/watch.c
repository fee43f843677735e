/* The training loop's diagnostics (contract in watch.h and nb_diag_opts).
 *
 * Cost: every step pays one pass over the gradients (the global norm, which
 * also detects NaN/Inf: a sum of squares is finite only if every term is),
 * a finite check of the loss, a short window update and a CSV row. Layer
 * statistics, weight snapshots for update ratios and histograms are paid
 * only every `every` / `hist_every` steps. Tracing a non-finite value back
 * to the op that made it walks the tape only when one has appeared: the tape
 * and every step tensor are still in the arena at that point, so nothing has
 * to be recorded in advance beyond each node's layer (ctx->cur_module).
 *
 * Alarms fire once per streak: a condition that persists (a vanishing layer,
 * NaN every step) is reported when it starts and again only after it has
 * cleared. */
#include "diag/watch.h"
#include "kernels/parallel.h"
#include "nn/nn.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { S_LOSS, S_NORM, S_N }; /* the two spike watches */

typedef struct {
    const nb_module *m;
    char name[96];
} mod_name;

struct nb__watch {
    nb_diag_opts o;
    const nb_param_list *params;
    int n;           /* trainable parameters */
    int *idx;        /* their indices in params */
    int last_weight; /* index (into idx) of the output layer's weight; -1: none */
    double *gsq;     /* per trainable: squared gradient norm this step */
    nb_tensor **snap;/* weights before the update, on statistics steps */
    int *vstreak;    /* vanishing: checks in a row per parameter */
    mod_name *mods;
    int n_mods;
    FILE *f_steps, *f_params, *f_acts, *f_hist;
    nb_alarms *alarms;
    bool own_alarms;
    int epoch;
    int64_t step;
    bool stat, hist;
    double norm;      /* global gradient norm this step */
    double loss;
    double *win[S_N + 1]; /* the last spike_window values; [S_N]: scratch */
    int win_n, win_pos;
    bool on[NB_ALARM_COUNT + S_N]; /* streaks of the whole-model alarms */
    char last[320];
    int raised;
};

/* ---- small helpers ------------------------------------------------------------ */
static double at(const nb_tensor *t, int64_t i)
{
    if (nb_is_contiguous(t))
        return t->dtype == NB_F32 ? (double)((const float *)t->data)[i] : ((const double *)t->data)[i];
    return nb_get(t, i);
}

/* The data of a contiguous float32 tensor (the common case), else NULL. */
static const float *f32(const nb_tensor *t)
{
    return t->dtype == NB_F32 && nb_is_contiguous(t) ? t->data : NULL;
}

static bool all_finite(const nb_tensor *t)
{
    if (!t || !nb__is_float(t->dtype))
        return true;
    int64_t n = nb__numel(t);
    if (nb_is_contiguous(t) && t->dtype == NB_F32) {
        const float *p = t->data;
        float acc = 0; /* x * 0 is 0 for finite x, NaN otherwise */
        for (int64_t i = 0; i < n; i++)
            acc += p[i] * 0.0f;
        return acc == 0;
    }
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(at(t, i)))
            return false;
    return true;
}

/* Sum of squares of n floats: 16 independent float lanes (they vectorise;
 * one double accumulator is a serial chain of adds: 17% of an MLP step,
 * measured), flushed into a double every 4096 elements so float's error
 * stays small. */
static double sumsq_f32(const float *p, int64_t n)
{
    double s = 0;
    int64_t i = 0;
    while (i + 16 <= n) {
        float acc[16] = {0};
        int64_t start = i, end = i + 4096 <= n ? i + 4096 : n - (n - i) % 16;
        for (; i < end; i += 16)
            for (int k = 0; k < 16; k++)
                acc[k] += p[i + k] * p[i + k];
        double b = 0;
        for (int k = 0; k < 16; k++)
            b += acc[k];
        if (!isfinite(b)) /* float overflowed (|g| > 1e19) or a NaN/Inf: redo in double */
            for (b = 0, i = start; i < end; i++)
                b += (double)p[i] * p[i];
        s += b;
    }
    for (; i < n; i++)
        s += (double)p[i] * p[i];
    return s;
}

#define SQ_CHUNK 65536
typedef struct {
    const float *p;
    int64_t n;
    double *part;
} sq_job;

static void sq_range(int64_t b, int64_t e, void *arg)
{
    const sq_job *j = arg;
    for (int64_t c = b; c < e; c++) {
        int64_t lo = c * SQ_CHUNK, hi = lo + SQ_CHUNK < j->n ? lo + SQ_CHUNK : j->n;
        j->part[c] = sumsq_f32(j->p + lo, hi - lo);
    }
}

/* Threads take chunks of 64k elements; the partial sums are added in chunk
 * order, so the result does not depend on the thread count. */
static double sumsq(nb_ctx *ctx, const nb_tensor *t)
{
    int64_t n = nb__numel(t);
    const float *p = t->dtype == NB_F32 && nb_is_contiguous(t) ? t->data : NULL;
    if (p) {
        int64_t chunks = (n + SQ_CHUNK - 1) / SQ_CHUNK;
        double *part = chunks > 1 ? nb__arena_alloc(ctx, sizeof(double) * (size_t)chunks) : NULL;
        if (!part)
            return sumsq_f32(p, n);
        sq_job j = {p, n, part};
        nb__parallel_for(ctx->nthreads, chunks, SQ_CHUNK * 2, sq_range, &j);
        double s = 0;
        for (int64_t c = 0; c < chunks; c++)
            s += part[c];
        return s;
    }
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = at(t, i);
        s += v * v;
    }
    return s;
}

static FILE *open_csv(nb_ctx *ctx, const char *dir, const char *file, bool append, const char *header)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, append ? "a" : "w");
    if (!f) {
        nb__err(ctx, NB_ERR_IO, "train: cannot write %s: %s", path, strerror(errno));
        return NULL;
    }
    if (!append || ftell(f) == 0)
        fprintf(f, "%s\n", header);
    return f;
}

/* Layer names as the registry's paths: a child's name, else its index. */
static void name_mods(nb__watch *w, const nb_module *m, const char *prefix, int cap)
{
    for (int i = 0; i < m->n_children && w->n_mods < cap; i++) {
        const nb_module *c = m->children[i];
        mod_name *e = &w->mods[w->n_mods++];
        e->m = c;
        if (c->name)
            snprintf(e->name, sizeof e->name, "%s%s%s", prefix, *prefix ? "." : "", c->name);
        else
            snprintf(e->name, sizeof e->name, "%s%s%d", prefix, *prefix ? "." : "", i);
        char sub[96];
        snprintf(sub, sizeof sub, "%s", e->name);
        name_mods(w, c, sub, cap);
    }
}

static int count_mods(const nb_module *m)
{
    int n = m->n_children;
    for (int i = 0; i < m->n_children; i++)
        n += count_mods(m->children[i]);
    return n;
}

static const char *mod_of(const nb__watch *w, const nb_module *m)
{
    for (int i = 0; m && i < w->n_mods; i++)
        if (w->mods[i].m == m)
            return w->mods[i].name;
    return NULL;
}

static nb_alarm_action raise(nb_ctx *ctx, nb__watch *w, nb_alarm_kind k, const char *where,
                             double value, double threshold, const char *msg)
{
    w->raised++;
    snprintf(w->last, sizeof w->last, "%s", msg);
    return nb_alarm_raise(ctx, w->alarms, k, w->epoch, w->step, where, value, threshold, "%s", msg);
}

/* ---- lifetime ------------------------------------------------------------------- */
nb_diag_opts nb_diag_opts_default(void)
{
    nb_diag_opts o;
    memset(&o, 0, sizeof o);
    o.hist_bins = 30;
    o.vanish_ratio = 1e-4;
    o.vanish_patience = 3;
    o.explode_norm = 1e4;
    o.explode_growth = 100;
    o.spike_z = 8;
    o.spike_window = 100;
    o.action[NB_ALARM_NONFINITE] = NB_ACTION_STOP;
    o.trace_nonfinite = true;
    o.echo = true;
    return o;
}

void nb__watch_free(nb_ctx *ctx, nb__watch *w)
{
    if (!w)
        return;
    FILE *fs[4] = {w->f_steps, w->f_params, w->f_acts, w->f_hist};
    for (int i = 0; i < 4; i++)
        if (fs[i])
            fclose(fs[i]);
    for (int i = 0; w->snap && i < w->n; i++)
        nb_tensor_free(ctx, w->snap[i]);
    if (w->own_alarms)
        nb_alarms_free(ctx, w->alarms);
    if (ctx->observe_user == w) {
        ctx->observe = NULL;
        ctx->observe_user = NULL;
    }
    nb__heap_free(ctx, w->snap);
    nb__heap_free(ctx, w->idx);
    nb__heap_free(ctx, w->mods);
    nb__heap_free(ctx, w->win[0]);
    nb__heap_free(ctx, w);
}

nb__watch *nb__watch_new(nb_ctx *ctx, const nb_diag_opts *o, nb_module *model,
                         const nb_param_list *params, const char *out_dir, bool append,
                         nb_alarms *alarms)
{
    if (o->every < 0 || o->hist_every < 0 || o->hist_bins < 2 || o->hist_bins > 1000 || !(o->vanish_ratio >= 0) ||
        o->vanish_patience < 1 || !(o->explode_norm >= 0) || !(o->explode_growth >= 1) ||
        !(o->spike_z >= 0) || o->spike_window < 2) {
        nb__err(ctx, NB_ERR_ARG, "train: bad diagnostics options (every %lld, hist_every %lld, "
                "hist_bins %d, vanish_ratio %g, vanish_patience %d, explode_norm %g, "
                "explode_growth %g, spike_z %g, spike_window %d)", (long long)o->every,
                (long long)o->hist_every, o->hist_bins, o->vanish_ratio, o->vanish_patience,
                o->explode_norm, o->explode_growth, o->spike_z, o->spike_window);
        return NULL;
    }
    for (int k = 0; k < NB_ALARM_COUNT; k++)
        if ((int)o->action[k] < 0 || o->action[k] >= NB_ACTION_COUNT) {
            nb__err(ctx, NB_ERR_ARG, "train: unknown action %d for alarm %s", (int)o->action[k],
                    nb_alarm_kind_name((nb_alarm_kind)k));
            return NULL;
        }
    nb__watch *w = nb__heap_alloc(ctx, sizeof *w);
    if (!w) {
        nb__err(ctx, NB_ERR_NOMEM, "train: allocator failed");
        return NULL;
    }
    memset(w, 0, sizeof *w);
    w->o = *o;
    w->params = params;
    int cap = count_mods(model);
    size_t np = (size_t)params->n + 1;
    w->idx = nb__heap_alloc(ctx, np * (sizeof(int) * 2 + sizeof(double)));
    w->mods = nb__heap_alloc(ctx, sizeof(mod_name) * (size_t)(cap + 1));
    w->win[0] = nb__heap_alloc(ctx, sizeof(double) * (size_t)((S_N + 1) * o->spike_window));
    if (!w->idx || !w->mods || !w->win[0]) {
        nb__err(ctx, NB_ERR_NOMEM, "train: allocator failed");
        nb__watch_free(ctx, w);
        return NULL;
    }
    w->win[1] = w->win[0] + o->spike_window;
    w->win[2] = w->win[1] + o->spike_window;
    w->vstreak = w->idx + np;
    w->gsq = (double *)(void *)(w->vstreak + np);
    w->last_weight = -1;
    for (int i = 0; i < params->n; i++)
        if (!params->items[i].is_buffer && nb_requires_grad(params->items[i].tensor)) {
            if (params->items[i].tensor->ndim >= 2)
                w->last_weight = w->n;
            w->vstreak[w->n] = 0;
            w->idx[w->n++] = i;
        }
    name_mods(w, model, "", cap);
    w->alarms = alarms;
    if (out_dir) {
        w->f_steps = open_csv(ctx, out_dir, "steps.csv", append, "step,epoch,loss,lr,grad_norm");
        if (w->f_steps && o->every > 0) {
            w->f_params = open_csv(ctx, out_dir, "params.csv", append,
                                   "step,epoch,name,grad_norm,weight_norm,update_ratio");
            w->f_acts = w->f_params ? open_csv(ctx, out_dir, "acts.csv", append,
                                               "step,epoch,layer,kind,mean,std,dead_frac,sat_frac")
                                    : NULL;
        }
        if (w->f_steps && o->hist_every > 0)
            w->f_hist = open_csv(ctx, out_dir, "hist.csv", append, "step,epoch,name,what,lo,hi,counts");
        if (!w->f_steps || (o->every > 0 && !w->f_acts) || (o->hist_every > 0 && !w->f_hist)) {
            nb__watch_free(ctx, w);
            return NULL;
        }
    }
    if (!w->alarms) {
        char path[1024];
        snprintf(path, sizeof path, "%s/alarms.csv", out_dir ? out_dir : "");
        w->alarms = nb_alarms_new(ctx, out_dir ? path : NULL, o->echo);
        w->own_alarms = true;
        if (!w->alarms) {
            nb__watch_free(ctx, w);
            return NULL;
        }
        for (int k = 0; k < NB_ALARM_COUNT; k++)
            nb_alarms_set_action(w->alarms, (nb_alarm_kind)k, o->action[k]);
    }
    return w;
}

nb_alarms *nb__watch_alarms(nb__watch *w) { return w ? w->alarms : NULL; }
int nb__watch_raised(const nb__watch *w) { return w ? w->raised : 0; }
const char *nb__watch_last(const nb__watch *w) { return w ? w->last : ""; }
bool nb__watch_nonfinite(const nb__watch *w) { return w && !isfinite(w->norm); }

/* ---- activations ---------------------------------------------------------------- */
static void observe(nb_ctx *ctx, const nb_module *m, const nb_tensor *y, void *user)
{
    nb__watch *w = user;
    const char *name = mod_of(w, m);
    if (!name || !w->f_acts || !nb__is_float(y->dtype) || y->ndim < 1)
        return;
    int64_t n = nb__numel(y), rows = y->shape[0], per = rows ? n / rows : 0;
    bool relu = !strcmp(m->kind, "relu"), sig = !strcmp(m->kind, "sigmoid"),
         tnh = !strcmp(m->kind, "tanh");
    double s = 0, sq = 0;
    int64_t sat = 0, dead = 0;
    unsigned char *alive = relu && per ? nb__arena_alloc(ctx, (size_t)per) : NULL;
    if (alive)
        memset(alive, 0, (size_t)per);
    const float *p = f32(y);
    for (int64_t i = 0; i < n; i++) {
        double v = p ? p[i] : at(y, i);
        s += v;
        sq += v * v;
        if (alive && v != 0)
            alive[i % per] = 1;
        sat += (sig && (v < 0.01 || v > 0.99)) || (tnh && fabs(v) > 0.99);
    }
    for (int64_t j = 0; alive && j < per; j++)
        dead += !alive[j];
    double mean = n ? s / (double)n : NAN, var = n ? sq / (double)n - mean * mean : NAN;
    fprintf(w->f_acts, "%lld,%d,%s,%s,%.6g,%.6g,", (long long)w->step, w->epoch, name, m->kind, mean,
            sqrt(var > 0 ? var : 0));
    if (alive)
        fprintf(w->f_acts, "%.6g,", (double)dead / (double)per);
    else
        fprintf(w->f_acts, ",");
    if (sig || tnh)
        fprintf(w->f_acts, "%.6g\n", (double)sat / (double)n);
    else
        fprintf(w->f_acts, "\n");
}

void nb__watch_begin(nb_ctx *ctx, nb__watch *w, int epoch, int64_t step)
{
    if (!w)
        return;
    w->epoch = epoch;
    w->step = step;
    w->stat = w->o.every > 0 && (step % w->o.every == 0 || step == 1);
    w->hist = w->f_hist && (step % w->o.hist_every == 0 || step == 1);
    ctx->observe = w->stat && w->f_acts ? observe : NULL;
    ctx->observe_user = w->stat && w->f_acts ? w : NULL;
}

/* ---- tracing a NaN/Inf back to its op ------------------------------------------------ */
/* " in fc3 (linear)", or "" for an op called outside any sequential */
static void op_place(const nb__watch *w, const nb__node *nd, char *where, size_t cap)
{
    const char *layer = mod_of(w, nd->mod);
    if (layer)
        snprintf(where, cap, " in %s (%s)", layer, nd->mod->kind);
    else
        where[0] = '\0';
}

static const char *param_name(const nb__watch *w, const nb_tensor *t)
{
    for (int i = 0; i < w->params->n; i++)
        if (w->params->items[i].tensor == t)
            return w->params->items[i].name;
    return NULL;
}

/* Fills where (the layer or parameter) and msg; forward: the loss is not
 * finite; else the gradients are not. */
static void trace(nb_ctx *ctx, nb__watch *w, bool forward, char *where, size_t wcap, char *msg,
                  size_t mcap)
{
    snprintf(where, wcap, "%s", forward ? "loss" : "gradients");
    snprintf(msg, mcap, "%s", forward ? "the loss is not finite" : "the gradients are not finite");
    for (int k = 0; k < w->n; k++) { /* a parameter already broken by an earlier update */
        const nb_named_tensor *p = &w->params->items[w->idx[k]];
        if (!all_finite(p->tensor)) {
            snprintf(where, wcap, "%s", p->name);
            snprintf(msg, mcap, "parameter %s holds NaN/Inf (from an earlier update)", p->name);
            return;
        }
    }
    if (!w->o.trace_nonfinite)
        return;
    size_t n = ctx->tape_len, k = 0;
    nb__node **order = n ? nb__arena_alloc(ctx, sizeof *order * n) : NULL;
    if (!order)
        return;
    for (nb__node *nd = ctx->tape; nd && k < n; nd = nd->prev)
        order[n - 1 - k++] = nd; /* oldest first */
    char place[128];
    if (forward) {
        for (size_t i = 0; i < n; i++) {
            nb__node *nd = order[i];
            if (all_finite(nd->out))
                continue;
            for (int j = 0; j < nd->n_in; j++)
                if (!nd->in[j]->node_ && !all_finite(nd->in[j])) {
                    const char *pn = param_name(w, nd->in[j]);
                    snprintf(where, wcap, "%s", pn ? pn : "input");
                    snprintf(msg, mcap, "%s holds NaN/Inf before the forward pass (op %s reads it)",
                             pn ? pn : "the input batch", nb__op_name((int)nd->op));
                    return;
                }
            op_place(w, nd, place, sizeof place);
            snprintf(where, wcap, "%s", *place ? place + 4 : nb__op_name((int)nd->op));
            snprintf(msg, mcap, "the forward of op '%s'%s made the first NaN/Inf (node %zu of %zu)",
                     nb__op_name((int)nd->op), place, i + 1, n);
            return;
        }
        return;
    }
    /* backward ran newest to oldest; a node's output gradient is complete
     * when it runs. The first (newest) node with a non-finite output gradient
     * got it from a consumer whose own output gradient is finite. */
    for (size_t i = n; i-- > 0;) {
        nb__node *nd = order[i];
        if (!nd->out->grad || all_finite(nd->out->grad))
            continue;
        for (size_t c = n; c-- > i + 1;) {
            nb__node *u = order[c];
            for (int j = 0; j < u->n_in; j++)
                if (u->in[j] == nd->out && (!u->out->grad || all_finite(u->out->grad))) {
                    op_place(w, u, place, sizeof place);
                    snprintf(where, wcap, "%s", *place ? place + 4 : nb__op_name((int)u->op));
                    snprintf(msg, mcap, "the backward of op '%s'%s made the first NaN/Inf gradient",
                             nb__op_name((int)u->op), place);
                    return;
                }
        }
    }
    for (size_t i = n; i-- > 0;) { /* only parameters' gradients are bad */
        nb__node *nd = order[i];
        for (int j = 0; j < nd->n_in; j++) {
            const char *pn = nd->in[j]->grad && !all_finite(nd->in[j]->grad) ? param_name(w, nd->in[j]) : NULL;
            if (pn) {
                op_place(w, nd, place, sizeof place);
                snprintf(where, wcap, "%s", pn);
                snprintf(msg, mcap, "the backward of op '%s'%s made a NaN/Inf gradient for %s",
                         nb__op_name((int)nd->op), place, pn);
                return;
            }
        }
    }
}

nb_alarm_action nb__watch_loss(nb_ctx *ctx, nb__watch *w, double lv)
{
    if (!w) /* diagnostics off: a non-finite loss stops training, as it always has */
        return NB_ACTION_STOP;
    w->loss = lv;
    if (w->on[NB_ALARM_NONFINITE])
        return nb_alarms_action(w->alarms, NB_ALARM_NONFINITE);
    w->on[NB_ALARM_NONFINITE] = true;
    char where[128], msg[300], full[320];
    trace(ctx, w, true, where, sizeof where, msg, sizeof msg);
    snprintf(full, sizeof full, "loss %g: %s", lv, msg);
    return raise(ctx, w, NB_ALARM_NONFINITE, where, lv, 0, full);
}

/* ---- gradients ------------------------------------------------------------------------ */
static double median(double *v, int n, double *tmp)
{
    memcpy(tmp, v, sizeof(double) * (size_t)n);
    for (int i = 1; i < n; i++) /* n <= spike_window: insertion sort is fine */
        for (int j = i; j > 0 && tmp[j - 1] > tmp[j]; j--) {
            double t = tmp[j];
            tmp[j] = tmp[j - 1];
            tmp[j - 1] = t;
        }
    return n % 2 ? tmp[n / 2] : 0.5 * (tmp[n / 2 - 1] + tmp[n / 2]);
}

static nb_alarm_action worst(nb_alarm_action a, nb_alarm_action b) { return a > b ? a : b; }

nb_alarm_action nb__watch_grads(nb_ctx *ctx, nb__watch *w, double lv)
{
    if (!w)
        return NB_ACTION_WARN;
    w->loss = lv;
    double tot = 0;
    for (int k = 0; k < w->n; k++) {
        const nb_tensor *g = w->params->items[w->idx[k]].tensor->grad;
        w->gsq[k] = g ? sumsq(ctx, g) : 0;
        tot += w->gsq[k];
    }
    w->norm = sqrt(tot);
    nb_alarm_action act = NB_ACTION_WARN;
    char where[128], msg[300], full[320];
    if (!isfinite(w->norm)) {
        if (!w->on[NB_ALARM_NONFINITE]) {
            w->on[NB_ALARM_NONFINITE] = true;
            trace(ctx, w, false, where, sizeof where, msg, sizeof msg);
            act = raise(ctx, w, NB_ALARM_NONFINITE, where, w->norm, 0, msg);
        } else {
            act = nb_alarms_action(w->alarms, NB_ALARM_NONFINITE);
        }
        return act; /* norms and windows would only carry the NaN on */
    }
    if (isfinite(lv))
        w->on[NB_ALARM_NONFINITE] = false;
    /* exploding: a bound, or growth over the window's median */
    int wn = w->win_n;
    double med = wn >= 10 ? median(w->win[S_NORM], wn, w->win[S_N]) : NAN;
    bool big = w->o.explode_norm > 0 && w->norm > w->o.explode_norm;
    bool grew = wn >= 10 && w->norm > w->o.explode_growth * med && med > 0;
    if ((big || grew) && !w->on[NB_ALARM_EXPLODING]) {
        if (big)
            snprintf(full, sizeof full, "gradient norm %.4g is above the bound %.4g", w->norm,
                     w->o.explode_norm);
        else
            snprintf(full, sizeof full, "gradient norm %.4g is %.0fx its median %.4g over the last %d steps",
                     w->norm, w->norm / med, med, wn);
        act = worst(act, raise(ctx, w, NB_ALARM_EXPLODING, "", w->norm,
                               big ? w->o.explode_norm : w->o.explode_growth * med, full));
    }
    w->on[NB_ALARM_EXPLODING] = big || grew;
    /* spikes: z-scores of the loss and of the gradient norm over the window */
    double now[S_N] = {lv, w->norm};
    static const char *const what[S_N] = {"loss", "grad_norm"};
    for (int s = 0; s < S_N && w->o.spike_z > 0 && wn >= 20 && isfinite(now[s]); s++) {
        double m = 0, v = 0;
        for (int i = 0; i < wn; i++)
            m += w->win[s][i];
        m /= wn;
        for (int i = 0; i < wn; i++)
            v += (w->win[s][i] - m) * (w->win[s][i] - m);
        double sd = sqrt(v / (wn - 1)), z = sd > 0 ? (now[s] - m) / sd : 0;
        bool spike = z > w->o.spike_z;
        if (spike && !w->on[NB_ALARM_COUNT + s]) {
            snprintf(full, sizeof full, "%s %.4g is %.1f standard deviations above its mean %.4g "
                     "over the last %d steps", what[s], now[s], z, m, wn);
            act = worst(act, raise(ctx, w, NB_ALARM_LOSS_SPIKE, what[s], z, w->o.spike_z, full));
        }
        w->on[NB_ALARM_COUNT + s] = spike;
    }
    for (int s = 0; s < S_N; s++)
        if (isfinite(now[s]))
            w->win[s][w->win_pos] = now[s];
    w->win_pos = (w->win_pos + 1) % w->o.spike_window;
    w->win_n += w->win_n < w->o.spike_window;
    /* vanishing, on statistics steps: each weight against the output layer's */
    if (w->stat && w->last_weight >= 0) {
        double ref = sqrt(w->gsq[w->last_weight]);
        for (int k = 0; k < w->n; k++) {
            const nb_named_tensor *p = &w->params->items[w->idx[k]];
            if (p->tensor->ndim < 2 || k == w->last_weight || !(ref > 0))
                continue;
            double r = sqrt(w->gsq[k]) / ref;
            w->vstreak[k] = r < w->o.vanish_ratio ? w->vstreak[k] + 1 : 0;
            if (w->vstreak[k] == w->o.vanish_patience) {
                snprintf(full, sizeof full, "gradient norm of %s is %.3g x the output layer's (%s: %.3g) "
                         "for %d checks in a row", p->name, r, w->params->items[w->idx[w->last_weight]].name,
                         ref, w->o.vanish_patience);
                act = worst(act, raise(ctx, w, NB_ALARM_VANISHING, p->name, r, w->o.vanish_ratio, full));
            }
        }
    }
    /* weights before the update, for the update ratios */
    if (w->stat && w->f_params) {
        if (!w->snap) {
            w->snap = nb__heap_alloc(ctx, sizeof(nb_tensor *) * (size_t)(w->n + 1));
            if (!w->snap) {
                nb__err(ctx, NB_ERR_NOMEM, "train: allocator failed");
                return NB_ACTION_STOP;
            }
            memset(w->snap, 0, sizeof(nb_tensor *) * (size_t)(w->n + 1));
        }
        for (int k = 0; k < w->n; k++) {
            nb_tensor *t = w->params->items[w->idx[k]].tensor;
            if (!w->snap[k] && !(w->snap[k] = nb_buffer(ctx, t->dtype, t->ndim, t->shape)))
                return NB_ACTION_STOP;
            if (nb_assign(ctx, w->snap[k], t) != NB_OK)
                return NB_ACTION_STOP;
        }
    }
    return act;
}

/* ---- after the update: the rows ------------------------------------------------------- */
static void histogram(nb__watch *w, const char *name, const char *what, const nb_tensor *t)
{
    int64_t n = nb__numel(t);
    const float *p = f32(t);
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        double v = p ? p[i] : at(t, i);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    if (!(lo <= hi))
        return;
    int B = w->o.hist_bins;
    int64_t counts[1000] = {0};
    double width = hi > lo ? (hi - lo) / B : 1;
    for (int64_t i = 0; i < n; i++) {
        int b = (int)(((p ? p[i] : at(t, i)) - lo) / width);
        counts[b < 0 ? 0 : b >= B ? B - 1 : b]++;
    }
    fprintf(w->f_hist, "%lld,%d,%s,%s,%.6g,%.6g,", (long long)w->step, w->epoch, name, what, lo, hi);
    for (int b = 0; b < B; b++)
        fprintf(w->f_hist, b ? " %lld" : "%lld", (long long)counts[b]);
    fprintf(w->f_hist, "\n");
}

nb_status nb__watch_end(nb_ctx *ctx, nb__watch *w, double lr, bool skipped)
{
    if (!w)
        return NB_OK;
    ctx->observe = NULL;
    ctx->observe_user = NULL;
    if (w->f_steps)
        fprintf(w->f_steps, "%lld,%d,%.6g,%.6g,%.6g\n", (long long)w->step, w->epoch, w->loss, lr, w->norm);
    for (int k = 0; w->stat && w->f_params && k < w->n; k++) {
        const nb_named_tensor *p = &w->params->items[w->idx[k]];
        double wn = sqrt(sumsq(ctx, p->tensor)), d = 0;
        if (!skipped && w->snap && w->snap[k]) {
            int64_t n = nb__numel(p->tensor);
            const float *a = f32(p->tensor), *b = f32(w->snap[k]);
            for (int64_t i = 0; i < n; i++) {
                double e = a && b ? (double)a[i] - b[i] : at(p->tensor, i) - at(w->snap[k], i);
                d += e * e;
            }
        }
        double before = w->snap && w->snap[k] ? sqrt(sumsq(ctx, w->snap[k])) : wn;
        fprintf(w->f_params, "%lld,%d,%s,%.6g,%.6g,%.6g\n", (long long)w->step, w->epoch, p->name,
                sqrt(w->gsq[k]), wn, before > 0 ? sqrt(d) / before : 0.0);
    }
    for (int k = 0; w->hist && k < w->n; k++) {
        const nb_named_tensor *p = &w->params->items[w->idx[k]];
        histogram(w, p->name, "weight", p->tensor);
        if (p->tensor->grad)
            histogram(w, p->name, "grad", p->tensor->grad);
    }
    FILE *fs[4] = {w->f_steps, w->f_params, w->f_acts, w->f_hist};
    if (w->stat || w->hist || w->step % 50 == 0)
        for (int i = 0; i < 4; i++)
            if (fs[i] && fflush(fs[i]) != 0)
                return nb__err(ctx, NB_ERR_IO, "train: writing the diagnostics files failed");
    return NB_OK;
}
