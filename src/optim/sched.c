/* Learning-rate schedules. Each sets every group's lr from its base lr and
 * the step count t (t = 0 at creation), with torch.optim.lr_scheduler's
 * closed forms:
 *   step         base gamma^floor(t / step_size)
 *   multistep    base gamma^(number of milestones <= t)
 *   exponential  base gamma^t
 *   cosine       eta_min + (base - eta_min)(1 + cos(pi t / t_max)) / 2
 *   warmup_cos   base (t + 1) / warmup for t < warmup, then cosine from base
 *                to eta_min over the remaining total - warmup steps
 *   onecycle     OneCycleLR with cosine annealing: from max_lr / div_factor up
 *                to max_lr over pct_start of total, then down to
 *                initial / final_div_factor
 *   plateau      ReduceLROnPlateau: lr = max(lr factor, min_lr) after
 *                `patience` steps without improvement beyond the threshold */
#include "core/internal.h"

#include <math.h>

#define NB_PI 3.14159265358979323846

struct nb_sched {
    nb_sched_opts o;
    nb_optim *opt;
    int64_t t;
    double best, scale;
    int64_t bad, cooldown_left;
};

static const char *const sched_names[NB_SCHED_COUNT] = {
    "constant", "step", "multistep", "exponential", "cosine", "warmup_cosine", "onecycle", "plateau"};

const char *nb_sched_name(nb_sched_kind k) { return ((int)k >= 0 && k < NB_SCHED_COUNT) ? sched_names[k] : "?"; }

nb_sched_kind nb_sched_from_name(const char *name)
{
    return (nb_sched_kind)nb__name_index(sched_names, NB_SCHED_COUNT, name);
}

nb_sched_opts nb_sched_opts_default(nb_sched_kind kind)
{
    nb_sched_opts o;
    memset(&o, 0, sizeof o);
    o.kind = kind;
    o.gamma = kind == NB_SCHED_EXPONENTIAL ? 0.95 : 0.1;
    o.step_size = 10;
    o.t_max = 100;
    o.total = 100;
    o.pct_start = 0.3;
    o.div_factor = 25;
    o.final_div_factor = 1e4;
    o.factor = 0.1;
    o.patience = 10;
    o.threshold = 1e-4;
    return o;
}

static double cos_anneal(double start, double end, double pct)
{
    return end + (start - end) / 2.0 * (cos(NB_PI * pct) + 1);
}

/* lr of a group with base lr `base` at step t */
static double lr_at(const nb_sched *s, double base)
{
    const nb_sched_opts *o = &s->o;
    double t = (double)s->t;
    switch (o->kind) {
    case NB_SCHED_STEP: return base * pow(o->gamma, floor(t / (double)o->step_size));
    case NB_SCHED_MULTISTEP: {
        int passed = 0;
        for (int i = 0; i < o->n_milestones; i++)
            passed += o->milestones[i] <= s->t;
        return base * pow(o->gamma, passed);
    }
    case NB_SCHED_EXPONENTIAL: return base * pow(o->gamma, t);
    case NB_SCHED_COSINE: return o->eta_min + (base - o->eta_min) * (1 + cos(NB_PI * t / (double)o->t_max)) / 2;
    case NB_SCHED_WARMUP_COSINE: {
        if (s->t < o->warmup)
            return base * (t + 1) / (double)o->warmup;
        double span = (double)(o->total - o->warmup);
        double pct = span > 0 ? fmin((t - (double)o->warmup) / span, 1.0) : 1.0;
        return cos_anneal(base, o->eta_min, pct);
    }
    case NB_SCHED_ONECYCLE: {
        double max_lr = o->max_lr > 0 ? o->max_lr : base;
        double initial = max_lr / o->div_factor, min_lr = initial / o->final_div_factor;
        double up_end = o->pct_start * (double)o->total - 1, down_end = (double)o->total - 1;
        if (t <= up_end)
            return cos_anneal(initial, max_lr, up_end > 0 ? t / up_end : 1.0);
        return cos_anneal(max_lr, min_lr, (t - up_end) / (down_end - up_end));
    }
    case NB_SCHED_PLATEAU: return fmax(base * s->scale, o->min_lr);
    default: return base;
    }
}

static void apply(nb_sched *s)
{
    for (int g = 0; g < nb_optim_group_count(s->opt); g++)
        nb_optim_set_lr(s->opt, g, lr_at(s, nb_optim_base_lr(s->opt, g)));
}

nb_sched *nb_sched_new(nb_ctx *ctx, nb_optim *opt, const nb_sched_opts *opts)
{
    if (!ctx)
        return NULL;
    if (!opt || !opts) {
        nb__err(ctx, NB_ERR_NULL, "sched: optimizer or options NULL");
        return NULL;
    }
    const nb_sched_opts *o = opts;
    const char *why = NULL;
    if ((int)o->kind < 0 || o->kind >= NB_SCHED_COUNT)
        why = "unknown schedule";
    else if (o->kind == NB_SCHED_STEP && o->step_size < 1)
        why = "step_size must be >= 1";
    else if ((o->kind == NB_SCHED_STEP || o->kind == NB_SCHED_MULTISTEP ||
              o->kind == NB_SCHED_EXPONENTIAL) && !(o->gamma > 0 && isfinite(o->gamma)))
        why = "gamma must be positive";
    else if (o->kind == NB_SCHED_MULTISTEP && (o->n_milestones < 0 || o->n_milestones > 16))
        why = "at most 16 milestones";
    else if (o->kind == NB_SCHED_COSINE && o->t_max < 1)
        why = "t_max must be >= 1";
    else if ((o->kind == NB_SCHED_WARMUP_COSINE || o->kind == NB_SCHED_ONECYCLE) &&
             (o->total < 2 || o->warmup < 0 || o->warmup > o->total))
        why = "total must be >= 2 and warmup in [0, total]";
    else if (o->kind == NB_SCHED_ONECYCLE &&
             (!(o->pct_start > 0 && o->pct_start < 1) || !(o->div_factor > 0) ||
              !(o->final_div_factor > 0) || o->pct_start * (double)o->total < 2))
        why = "pct_start in (0, 1) with at least 2 steps up, positive div factors";
    else if (o->kind == NB_SCHED_PLATEAU &&
             (!(o->factor > 0 && o->factor < 1) || o->patience < 0 || o->cooldown < 0 ||
              !(o->threshold >= 0) || !(o->min_lr >= 0)))
        why = "factor in (0, 1), patience, cooldown, threshold and min_lr >= 0";
    if (!why && o->kind == NB_SCHED_MULTISTEP)
        for (int i = 1; i < o->n_milestones; i++)
            if (o->milestones[i] <= o->milestones[i - 1])
                why = "milestones must increase";
    if (why) {
        nb__err(ctx, NB_ERR_ARG, "sched %s: %s", nb_sched_name(o->kind), why);
        return NULL;
    }
    nb_sched *s = nb__heap_alloc(ctx, sizeof *s);
    if (!s) {
        nb__err(ctx, NB_ERR_NOMEM, "sched: allocator failed");
        return NULL;
    }
    memset(s, 0, sizeof *s);
    s->o = *o;
    s->opt = opt;
    s->scale = 1.0;
    s->best = o->mode_max ? -INFINITY : INFINITY;
    apply(s);
    return s;
}

void nb_sched_free(nb_ctx *ctx, nb_sched *s)
{
    if (ctx && s)
        nb__heap_free(ctx, s);
}

static bool improved(const nb_sched *s, double m)
{
    const nb_sched_opts *o = &s->o;
    if (o->threshold_abs)
        return o->mode_max ? m > s->best + o->threshold : m < s->best - o->threshold;
    return o->mode_max ? m > s->best * (1 + o->threshold) : m < s->best * (1 - o->threshold);
}

nb_status nb_sched_step(nb_ctx *ctx, nb_sched *s, double metric)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!s)
        return nb__err(ctx, NB_ERR_NULL, "sched_step: schedule is NULL");
    s->t++;
    if (s->o.kind == NB_SCHED_PLATEAU) {
        if (isnan(metric))
            return nb__err(ctx, NB_ERR_ARG, "sched_step: plateau metric is NaN");
        if (improved(s, metric)) {
            s->best = metric;
            s->bad = 0;
        } else {
            s->bad++;
        }
        if (s->cooldown_left > 0) {
            s->cooldown_left--;
            s->bad = 0;
        }
        if (s->bad > s->o.patience) {
            s->scale *= s->o.factor;
            s->cooldown_left = s->o.cooldown;
            s->bad = 0;
        }
    }
    apply(s);
    return NB_OK;
}

int64_t nb_sched_t(const nb_sched *s) { return s ? s->t : 0; }

nb_sched_state nb_sched_get_state(const nb_sched *s)
{
    nb_sched_state st = {0, 0, 0, 0, 1.0};
    if (s) {
        st.t = s->t;
        st.best = s->best;
        st.bad_epochs = s->bad;
        st.cooldown_left = s->cooldown_left;
        st.scale = s->scale;
    }
    return st;
}

nb_status nb_sched_set_state(nb_ctx *ctx, nb_sched *s, const nb_sched_state *st)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!s || !st)
        return nb__err(ctx, NB_ERR_NULL, "sched_set_state: NULL argument");
    if (st->t < 0 || !(st->scale > 0))
        return nb__err(ctx, NB_ERR_ARG, "sched_set_state: bad state (t %lld, scale %g)",
                       (long long)st->t, st->scale);
    s->t = st->t;
    s->best = st->best;
    s->bad = st->bad_epochs;
    s->cooldown_left = st->cooldown_left;
    s->scale = st->scale;
    apply(s);
    return NB_OK;
}
