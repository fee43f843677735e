/* nabla report RUN_FOLDER [--out FILE]: one self-contained HTML page
 * (RUN_FOLDER/report.html by default: inline CSS and SVG, no script) from a
 * training run folder, and each plot also as RUN_FOLDER/plots/<id>.svg (the
 * same text as inlined).
 *
 * Reads the files nb_train writes (their formats: include/nabla.h, above
 * nb_diag_opts): log.csv (required), steps.csv, params.csv, acts.csv,
 * hist.csv, alarms.csv, manifest.json (jansson) and lr_find.csv (nabla
 * lr-find). A missing optional file makes its section say "not recorded in
 * this run"; a malformed one is an error "FILE:LINE: what" (exit 1).
 *
 * Design:
 *   - Every file is read whole into memory and cut in place (quoted CSV
 *     fields unquoted where they lie); every allocation goes to one pool
 *     freed at the end, so an error anywhere just returns false up the calls
 *     with the message in rep.err (report_data.c).
 *   - Per-parameter and per-layer rows are grouped by name in order of first
 *     appearance; each becomes one series.
 *   - Histograms are small multiples: per parameter, the weight and the
 *     gradient histogram at the first, middle and last recorded step,
 *     overlaid as outlines on one value axis (light to dark blue = early to
 *     late). Overlays show drift and widening directly; a heat map over time
 *     would need one binning for all steps, and the file's bins change with
 *     each step's [lo, hi].
 *   - The plots themselves (ticks, log axes, downsampling) are report_svg.c. */
#include "cli.h"
#include "report.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void none(rep *r, const char *what)
{
    sb_put(&r->html, "<p class=\"none\">");
    sb_esc(&r->html, what);
    sb_put(&r->html, "</p>\n");
}

static bool write_file(rep *r, const char *path, const char *s, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return rep_fail(r, path, 0, "cannot write: %s", strerror(errno));
    bool ok = fwrite(s, 1, n, f) == n;
    ok = (fclose(f) == 0) && ok;
    return ok ? true : rep_fail(r, path, 0, "cannot write: %s", strerror(errno));
}

/* Renders p into the page (a figure with its caption: `caption`, trusted
 * HTML, and notes on downsampling and dropped values) and plots/<id>.svg. */
static bool emit(rep *r, rp_plot *p, const char *caption)
{
    sbuf svg = {0};
    int n = rp_render(p, &svg);
    if (svg.oom) {
        sb_free(&svg);
        return rep_oom(r);
    }
    if (n == 0) {
        char t[300];
        snprintf(t, sizeof t, "%s: no finite values to plot.", p->title);
        none(r, t);
        sb_free(&svg);
        return true;
    }
    char path[1400];
    snprintf(path, sizeof path, "%s/%s.svg", r->plotdir, p->id);
    bool ok = write_file(r, path, svg.s, svg.n);
    sb_put(&r->html, "<figure>\n");
    sb_putn(&r->html, svg.s, svg.n);
    sb_free(&svg);
    sb_put(&r->html, "\n<figcaption>");
    sb_put(&r->html, caption ? caption : "");
    int maxp = p->max_points > 1 ? p->max_points : 1000;
    if (p->downsampled)
        sb_printf(&r->html, " Series over %d points are drawn by min/max decimation: their "
                            "first and last points, and the lowest and highest value of each of "
                            "%d equal runs of points between.", maxp, (maxp - 2) / 2);
    if (p->dropped)
        sb_printf(&r->html, " %d value%s &le; 0 not shown on the log scale.", p->dropped,
                  p->dropped == 1 ? "" : "s");
    if (r->links)
        sb_printf(&r->html, " <a href=\"plots/%s.svg\">SVG</a>", p->id);
    sb_put(&r->html, "</figcaption>\n</figure>\n");
    r->plots++;
    return ok;
}

/* Closes the open section, if any; opens one when id is not NULL. */
static void section(rep *r, const char *id, const char *title)
{
    if (r->in_section)
        sb_put(&r->html, "</section>\n");
    r->in_section = id != NULL;
    if (id)
        sb_printf(&r->html, "\n<section id=\"%s\">\n<h2>%s</h2>\n", id, title);
}

static void num_cell(sbuf *b, double v)
{
    if (isnan(v))
        sb_put(b, "<td class=\"num\">&ndash;</td>");
    else
        sb_printf(b, "<td class=\"num\">%.5g</td>", v);
}

/* ---- the sections ---------------------------------------------------------------- */
typedef struct logdata {
    int n;
    double *epoch, *tl, *ta, *vl, *va, *vk, *lr, *sec, *sps;
} logdata;

static bool read_log(rep *r, logdata *d)
{
    table t;
    if (!tab_read(r, "log.csv", true, &t) || !tab_need(r, &t, "epoch,train_loss"))
        return false;
    d->n = t.nrow;
    return (d->epoch = tab_named(r, &t, "epoch")) &&
           (d->tl = tab_named(r, &t, "train_loss")) &&
           (d->ta = tab_named(r, &t, "train_acc")) &&
           (d->vl = tab_named(r, &t, "val_loss")) &&
           (d->va = tab_named(r, &t, "val_acc")) &&
           (d->vk = tab_named(r, &t, "val_topk")) &&
           (d->lr = tab_named(r, &t, "lr")) &&
           (d->sec = tab_named(r, &t, "seconds")) &&
           (d->sps = tab_named(r, &t, "samples_per_s"));
}

static bool any_finite(const double *v, int n)
{
    for (int i = 0; i < n; i++)
        if (isfinite(v[i]))
            return true;
    return false;
}

/* index of the best finite value (lowest, or highest when `high`); -1: none */
static int best(const double *v, int n, bool high)
{
    int b = -1;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i]) && (b < 0 || (high ? v[i] > v[b] : v[i] < v[b])))
            b = i;
    return b;
}

static void summary_row(rep *r, const char *k, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void summary_row(rep *r, const char *k, const char *fmt, ...)
{
    char v[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    sb_printf(&r->html, "<tr><th>%s</th><td>", k);
    sb_esc(&r->html, v);
    sb_put(&r->html, "</td></tr>\n");
}

static void summary(rep *r, const logdata *d, const table *steps, const table *alarms,
                    json_t *manifest)
{
    section(r, "summary", "Summary");
    sb_put(&r->html, "<table class=\"kv\">\n");
    summary_row(r, "run folder", "%s", r->dir);
    if (manifest) {
        static const char *const keys[][2] = {{"nabla", "nabla version"}, {"host", "host"},
                                               {"time", "started (UTC)"}, {"seed", "seed"}};
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
            json_t *v = json_object_get(manifest, keys[i][0]);
            if (json_is_string(v))
                summary_row(r, keys[i][1], "%s", json_string_value(v));
            else if (json_is_integer(v))
                summary_row(r, keys[i][1], "%lld", (long long)json_integer_value(v));
        }
    }
    if (d->n == 0) {
        summary_row(r, "epochs", "none recorded (log.csv has no rows)");
    } else {
        int l = d->n - 1;
        summary_row(r, "epochs", "%d rows, last epoch %g", d->n, d->epoch[l]);
        if (isnan(d->vl[l]))
            summary_row(r, "final loss", "train %.5g (no validation rows)", d->tl[l]);
        else
            summary_row(r, "final losses", "train %.5g, validation %.5g", d->tl[l], d->vl[l]);
        int b = best(d->vl, d->n, false);
        if (b >= 0)
            summary_row(r, "best validation loss", "%.5g at epoch %g", d->vl[b], d->epoch[b]);
        b = best(d->va, d->n, true);
        if (b >= 0)
            summary_row(r, "best validation accuracy", "%.4f at epoch %g", d->va[b], d->epoch[b]);
        double sec = 0, sps = 0;
        int nsps = 0;
        for (int i = 0; i < d->n; i++) {
            sec += isfinite(d->sec[i]) ? d->sec[i] : 0;
            if (isfinite(d->sps[i])) {
                sps += d->sps[i];
                nsps++;
            }
        }
        summary_row(r, "training time", "%.1f s", sec);
        if (nsps)
            summary_row(r, "throughput", "%.0f samples/s (mean over epochs)", sps / nsps);
    }
    if (steps->present)
        summary_row(r, "optimizer steps", "%d recorded", steps->nrow);
    if (alarms->present)
        summary_row(r, "alarms", "%d", alarms->nrow);
    sb_put(&r->html, "</table>\n");
}

static bool loss_sections(rep *r, const logdata *d, const table *steps)
{
    section(r, "loss", "Loss");
    rp_plot p = rep_plot("loss", "Loss per epoch", "epoch", "loss");
    p.xint = true;
    if (!rep_series(r, &p, 2) || !rep_add(r, &p, "train_loss", d->epoch, d->tl, d->n) ||
        !rep_add(r, &p, "val_loss", d->epoch, d->vl, d->n))
        return false;
    if (!emit(r, &p, "Mean training loss over each epoch and the validation loss after it "
                     "(log.csv)."))
        return false;
    if (!steps->present) {
        none(r, "Per-step loss: not recorded in this run (no steps.csv).");
    } else {
        double *x = tab_named(r, steps, "step"), *y = tab_named(r, steps, "loss");
        p = rep_plot("step-loss", "Training loss per optimizer step", "step", "loss");
        if (!x || !y || !rep_series(r, &p, 1) || !rep_add(r, &p, "loss", x, y, steps->nrow) ||
            !emit(r, &p, "The loss of each optimizer step's batch (steps.csv)."))
            return false;
    }

    section(r, "accuracy", "Accuracy");
    if (!any_finite(d->ta, d->n) && !any_finite(d->va, d->n) && !any_finite(d->vk, d->n)) {
        none(r, "Not recorded in this run (accuracy is NaN: the loss is not cross-entropy).");
    } else {
        p = rep_plot("accuracy", "Accuracy per epoch", "epoch", "accuracy");
        p.xint = true;
        p.yscale = RP_LINEAR;
        if (!rep_series(r, &p, 3) || !rep_add(r, &p, "train_acc", d->epoch, d->ta, d->n) ||
            !rep_add(r, &p, "val_acc", d->epoch, d->va, d->n) ||
            !rep_add(r, &p, "val_topk", d->epoch, d->vk, d->n))
            return false;
        snprintf(p.s[2].label, sizeof p.s[2].label, "val_topk (top-k)");
        if (!emit(r, &p, "Top-1 accuracy on the training batches (while training) and on the "
                         "validation rows; top-k when configured (log.csv)."))
            return false;
    }

    section(r, "lr", "Learning rate");
    int lc = steps->present ? tab_col(steps, "lr") : -1;
    if (lc >= 0) {
        double *x = tab_named(r, steps, "step"), *y = tab_numcol(r, steps, lc);
        p = rep_plot("lr", "Learning rate per optimizer step", "step", "learning rate");
        if (!x || !y || !rep_series(r, &p, 1) || !rep_add(r, &p, "lr", x, y, steps->nrow))
            return false;
        return emit(r, &p, "The learning rate each step used (steps.csv).");
    }
    p = rep_plot("lr", "Learning rate per epoch", "epoch", "learning rate");
    p.xint = true;
    if (!rep_series(r, &p, 1) || !rep_add(r, &p, "lr", d->epoch, d->lr, d->n))
        return false;
    return emit(r, &p, "The learning rate at the end of each epoch (log.csv; steps.csv was not "
                       "recorded).");
}

static bool is_bias(const char *name)
{
    const char *dot = strrchr(name, '.');
    return !strcmp(dot ? dot + 1 : name, "bias");
}

static bool gradient_section(rep *r, const table *steps)
{
    section(r, "gradients", "Gradients and updates");
    int gc = steps->present ? tab_col(steps, "grad_norm") : -1;
    if (gc >= 0) {
        double *x = tab_named(r, steps, "step"), *y = tab_numcol(r, steps, gc);
        rp_plot p = rep_plot("grad-total", "Total gradient norm per step", "step", "gradient norm");
        p.yscale = RP_LOG;
        if (!x || !y || !rep_series(r, &p, 1) ||
            !rep_add(r, &p, "grad_norm", x, y, steps->nrow) ||
            !emit(r, &p, "The global L2 norm of all gradients at each step, before clipping "
                         "(steps.csv)."))
            return false;
    }
    table t;
    if (!tab_read(r, "params.csv", false, &t))
        return false;
    if (!t.present) {
        none(r, "Per-parameter statistics: not recorded in this run (no params.csv; set "
                "[diag] every).");
        return true;
    }
    groups g;
    double *x, *gn, *wn, *ur;
    if (!tab_need(r, &t, "step,name,grad_norm,weight_norm,update_ratio") ||
        !(x = tab_named(r, &t, "step")) || !(gn = tab_named(r, &t, "grad_norm")) ||
        !(wn = tab_named(r, &t, "weight_norm")) ||
        !(ur = tab_named(r, &t, "update_ratio")) || !tab_group(r, &t, tab_col(&t, "name"), &g))
        return false;
    int weights = 0;
    for (int i = 0; i < g.n; i++)
        weights += !is_bias(g.key[i]);
    rp_plot pg = rep_plot("grad-norm", "Gradient norm per parameter", "step", "gradient norm");
    rp_plot pu = rep_plot("update-ratio", "Update-to-weight ratio per parameter", "step",
                          "|update| / |weight|");
    pg.yscale = pu.yscale = RP_LOG;
    if (!rep_series(r, &pg, g.n) || !rep_series(r, &pu, g.n))
        return false;
    for (int i = 0; i < g.n; i++)
        if (!weights || !is_bias(g.key[i]))
            if (!rep_add_group(r, &pg, &g, i, x, gn) || !rep_add_group(r, &pu, &g, i, x, ur))
                return false;
    const char *which = weights ? " (weights; biases are in the table below)" : "";
    char cap[400];
    snprintf(cap, sizeof cap, "L2 norm of each parameter's gradient%s (params.csv).", which);
    if (!emit(r, &pg, cap))
        return false;
    snprintf(cap, sizeof cap, "|w<sub>new</sub> &minus; w<sub>old</sub>| / |w<sub>old</sub>| for "
                              "each parameter%s: around 1e-3 is the usual rule of thumb; far "
                              "below, the layer barely learns; far above, it is unstable.", which);
    if (!emit(r, &pu, cap))
        return false;
    sb_put(&r->html, "<h3>Last recorded values</h3>\n<table><tr><th>parameter</th>"
                     "<th>records</th><th>step</th><th>gradient norm</th><th>weight norm</th>"
                     "<th>update ratio</th></tr>\n");
    for (int i = 0; i < g.n; i++) {
        int row = g.order[g.start[i] + g.count[i] - 1];
        sb_put(&r->html, "<tr><td>");
        sb_esc(&r->html, g.key[i]);
        sb_printf(&r->html, "</td><td class=\"num\">%d</td>", g.count[i]);
        num_cell(&r->html, x[row]);
        num_cell(&r->html, gn[row]);
        num_cell(&r->html, wn[row]);
        num_cell(&r->html, ur[row]);
        sb_put(&r->html, "</tr>\n");
    }
    sb_put(&r->html, "</table>\n");
    return true;
}

/* layers whose `kind` contains one of the words in kinds, or whose column
 * has a finite value > 0 */
static bool act_plot(rep *r, const table *t, const groups *g, const double *x, const double *v,
                     const char *kinds, rp_plot *p, const char *caption, const char *absent)
{
    int kc = tab_col(t, "kind");
    if (!rep_series(r, p, g->n))
        return false;
    for (int i = 0; i < g->n; i++) {
        const char *kind = tab_cell(t, g->first[i], kc);
        bool match = false;
        char buf[64];
        snprintf(buf, sizeof buf, "%s", kinds);
        for (char *save = NULL, *k = strtok_r(buf, ",", &save); k; k = strtok_r(NULL, ",", &save))
            match |= strstr(kind, k) != NULL;
        for (int j = 0; !match && j < g->count[i]; j++) {
            double y = v[g->order[g->start[i] + j]];
            match = isfinite(y) && y > 0;
        }
        if (!match)
            continue;
        rp_series *s = rep_add_group(r, p, g, i, x, v);
        if (!s)
            return false;
        snprintf(s->label, sizeof s->label, "%s (%s)", g->key[i], kind);
        s->color = rp_color(i);
        s->dashed = (i / 10) % 2 == 1;
    }
    if (p->ns == 0) {
        none(r, absent);
        return true;
    }
    return emit(r, p, caption);
}

static bool activation_section(rep *r)
{
    section(r, "activations", "Activations");
    table t;
    if (!tab_read(r, "acts.csv", false, &t))
        return false;
    if (!t.present) {
        none(r, "Not recorded in this run (no acts.csv; set [diag] every).");
        return true;
    }
    groups g;
    double *x, *sd, *dead, *sat;
    if (!tab_need(r, &t, "step,layer,kind,std,dead_frac,sat_frac") ||
        !(x = tab_named(r, &t, "step")) || !(sd = tab_named(r, &t, "std")) ||
        !(dead = tab_named(r, &t, "dead_frac")) ||
        !(sat = tab_named(r, &t, "sat_frac")) || !tab_group(r, &t, tab_col(&t, "layer"), &g))
        return false;
    rp_plot p = rep_plot("act-dead", "Dead ReLU units per layer", "step", "fraction dead");
    p.yscale = RP_LINEAR;
    p.ymin = 0;
    p.ymax = 1;
    if (!act_plot(r, &t, &g, x, dead, "relu", &p,
                  "Fraction of a ReLU layer's units that were zero for the whole batch "
                  "(acts.csv).", "No ReLU layers in this model."))
        return false;
    p = rep_plot("act-sat", "Saturated units per layer", "step", "fraction saturated");
    p.yscale = RP_LINEAR;
    p.ymin = 0;
    p.ymax = 1;
    if (!act_plot(r, &t, &g, x, sat, "sigmoid,tanh", &p,
                  "Fraction of sigmoid outputs below 0.01 or above 0.99, and of tanh outputs "
                  "beyond &plusmn;0.99 (acts.csv).", "No sigmoid or tanh layers in this model."))
        return false;
    p = rep_plot("act-std", "Activation standard deviation per layer", "step", "std");
    return act_plot(r, &t, &g, x, sd, "", &p,
                    "Standard deviation of each layer's output over the batch (acts.csv): "
                    "shrinking towards 0 or growing by decades through the layers is the "
                    "signature of a bad initialisation.", "No activation statistics.");
}

/* counts of one hist.csv row as a series over bin centres */
static rp_series *hist_series(rep *r, const table *t, int row, rp_plot *p, double step)
{
    double lo, hi;
    if (!tab_num(r, t, row, tab_col(t, "lo"), &lo) || !tab_num(r, t, row, tab_col(t, "hi"), &hi))
        return NULL;
    const char *s = tab_cell(t, row, tab_col(t, "counts"));
    int bins = 0;
    for (const char *c = s; *c;) {
        while (*c == ' ')
            c++;
        if (*c)
            bins++;
        while (*c && *c != ' ')
            c++;
    }
    if (bins == 0) {
        rep_fail(r, t->path, t->line[row], "counts: empty");
        return NULL;
    }
    if (!(hi >= lo) && isfinite(lo) && isfinite(hi)) {
        rep_fail(r, t->path, t->line[row], "lo %g is above hi %g", lo, hi);
        return NULL;
    }
    char name[64];
    snprintf(name, sizeof name, "step %.15g", step);
    rp_series *se = rep_add(r, p, name, NULL, NULL, bins);
    if (!se)
        return NULL;
    char *end;
    for (int i = 0; i < bins; i++) {
        while (*s == ' ')
            s++;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || (*end && *end != ' ') || v < 0 || errno) {
            rep_fail(r, t->path, t->line[row], "counts: '%.20s' is not a count", s);
            return NULL;
        }
        se->x[i] = lo + (hi - lo) * (i + 0.5) / bins;
        se->y[i] = (double)v;
        s = end;
    }
    return se;
}

static bool histogram_section(rep *r)
{
    section(r, "histograms", "Weight and gradient histograms");
    table t;
    if (!tab_read(r, "hist.csv", false, &t))
        return false;
    if (!t.present) {
        none(r, "Not recorded in this run (no hist.csv; set [diag] hist_every).");
        return true;
    }
    groups g;
    double *x;
    if (!tab_need(r, &t, "step,name,what,lo,hi,counts") || !(x = tab_named(r, &t, "step")) ||
        !tab_group(r, &t, tab_col(&t, "name"), &g))
        return false;
    sb_put(&r->html, "<p>Per parameter, the weights (left) and gradients (right) at the first, "
                     "middle and last recorded step, overlaid on one value axis: light to dark "
                     "blue is early to late (hist.csv).</p>\n");
    static const char *const shade[3] = {"#9ecae1", "#4292c6", "#08306b"};
    int *rows = rep_alloc(r, (size_t)(t.nrow ? t.nrow : 1), sizeof *rows);
    if (!rows)
        return false;
    for (int i = 0; i < g.n; i++) {
        sb_put(&r->html, "<h3>");
        sb_esc(&r->html, g.key[i]);
        sb_put(&r->html, "</h3>\n<div class=\"pair\">\n");
        for (int w = 0; w < 2; w++) {
            const char *what = w ? "grad" : "weight";
            int n = 0;
            for (int j = 0; j < g.count[i]; j++) {
                int row = g.order[g.start[i] + j];
                if (!strcmp(tab_cell(&t, row, tab_col(&t, "what")), what))
                    rows[n++] = row;
            }
            char id[200], title[200];
            snprintf(id, sizeof id, "hist-%s-%s", g.key[i], what);
            snprintf(title, sizeof title, "%s: %s", g.key[i], w ? "gradients" : "weights");
            if (n == 0) {
                snprintf(title, sizeof title, "%s: no %s histograms recorded.", g.key[i], what);
                none(r, title);
                continue;
            }
            rp_plot p = rep_plot(id, title, w ? "gradient value" : "weight value", "count");
            p.small = p.steps = true;
            p.yscale = RP_LINEAR;
            int pick[3] = {rows[0], rows[n / 2], rows[n - 1]}, np = n >= 3 ? 3 : n;
            if (n == 2)
                pick[1] = rows[1];
            if (!rep_series(r, &p, 3))
                return false;
            for (int k = 0; k < np; k++) {
                rp_series *s = hist_series(r, &t, pick[k], &p, x[pick[k]]);
                if (!s)
                    return false;
                s->color = shade[np == 3 ? k : k + 1];
            }
            if (!emit(r, &p, NULL))
                return false;
        }
        sb_put(&r->html, "</div>\n");
    }
    return true;
}

static bool alarm_section(rep *r, const table *t)
{
    section(r, "alarms", "Alarms");
    if (!t->present) {
        none(r, "Not recorded in this run (no alarms.csv).");
        return true;
    }
    static const char *const cols = "epoch,step,kind,where,value,threshold,action,message";
    if (!tab_need(r, t, cols))
        return false;
    if (t->nrow == 0) {
        sb_put(&r->html, "<p>No alarms were raised.</p>\n");
        return true;
    }
    const int shown = t->nrow < 1000 ? t->nrow : 1000;
    sb_printf(&r->html, "<p>%d alarm%s (alarms.csv)%s.</p>\n<table class=\"alarms\"><tr>",
              t->nrow, t->nrow == 1 ? "" : "s", shown < t->nrow ? "; the first 1000 shown" : "");
    int c[8];
    char names[80];
    snprintf(names, sizeof names, "%s", cols);
    int k = 0;
    for (char *save = NULL, *n = strtok_r(names, ",", &save); n; n = strtok_r(NULL, ",", &save)) {
        c[k++] = tab_col(t, n);
        sb_printf(&r->html, "<th>%s</th>", n);
    }
    sb_put(&r->html, "</tr>\n");
    for (int i = 0; i < shown; i++) {
        sb_put(&r->html, "<tr class=\"");
        sb_esc(&r->html, tab_cell(t, i, c[6]));
        sb_put(&r->html, "\">");
        for (k = 0; k < 8; k++) {
            sb_put(&r->html, k == 0 || k == 1 || k == 4 || k == 5 ? "<td class=\"num\">" : "<td>");
            sb_esc(&r->html, tab_cell(t, i, c[k]));
            sb_put(&r->html, "</td>");
        }
        sb_put(&r->html, "</tr>\n");
    }
    sb_put(&r->html, "</table>\n");
    return true;
}

static bool lrfind_section(rep *r)
{
    section(r, "lr-find", "Learning-rate finder");
    table t;
    if (!tab_read(r, "lr_find.csv", false, &t))
        return false;
    if (!t.present) {
        none(r, "Not recorded in this run (no lr_find.csv; see nabla lr-find).");
        return true;
    }
    double *x, *l, *s;
    if (!tab_need(r, &t, "lr,loss") || !(x = tab_named(r, &t, "lr")) ||
        !(l = tab_named(r, &t, "loss")) || !(s = tab_named(r, &t, "smoothed")))
        return false;
    rp_plot p = rep_plot("lr-find", "Loss against learning rate", "learning rate", "loss");
    p.xscale = RP_LOG;
    double sug = NAN;
    if (t.comment && sscanf(t.comment, " suggestion %lf", &sug) == 1 && isfinite(sug))
        p.vline = sug;
    char cap[200], lab[64];
    snprintf(lab, sizeof lab, "suggestion %.3g", sug);
    p.vline_label = lab;
    snprintf(cap, sizeof cap, "The loss of one batch per learning rate, raised exponentially "
                              "(lr_find.csv)%s%.3g.", isfinite(sug) ? "; suggested rate " : "",
             isfinite(sug) ? sug : 0.0);
    if (!isfinite(sug))
        snprintf(cap, sizeof cap, "The loss of one batch per learning rate, raised "
                                  "exponentially (lr_find.csv); no suggestion recorded.");
    if (!rep_series(r, &p, 2) || !rep_add(r, &p, "loss", x, l, t.nrow) ||
        !rep_add(r, &p, "smoothed", x, s, t.nrow))
        return false;
    return emit(r, &p, cap);
}

static void manifest_section(rep *r, json_t *m)
{
    section(r, "manifest", "Manifest");
    if (!m) {
        none(r, "Not recorded in this run (no manifest.json).");
    } else {
        sb_put(&r->html, "<table class=\"kv\">\n");
        const char *key;
        json_t *v;
        json_object_foreach(m, key, v) {
            if (!strcmp(key, "config"))
                continue;
            sb_put(&r->html, "<tr><th>");
            sb_esc(&r->html, key);
            sb_put(&r->html, "</th><td>");
            char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            sb_esc(&r->html, text ? text : json_is_string(v) ? json_string_value(v) : "?");
            free(text);
            sb_put(&r->html, "</td></tr>\n");
        }
        sb_put(&r->html, "</table>\n");
    }
    section(r, "config", "Configuration");
    json_t *c = m ? json_object_get(m, "config") : NULL;
    if (!json_is_string(c)) {
        none(r, m ? "Not recorded in this run (manifest.json has no config text)."
                  : "Not recorded in this run (no manifest.json).");
        return;
    }
    sb_put(&r->html, "<pre class=\"config\">");
    sb_esc(&r->html, json_string_value(c));
    sb_put(&r->html, "</pre>\n");
}

static bool read_manifest(rep *r, json_t **m)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/manifest.json", r->dir);
    *m = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? true : rep_fail(r, path, 0, "cannot open: %s", strerror(errno));
    json_error_t e;
    *m = json_loadf(f, 0, &e);
    fclose(f);
    if (!*m)
        return rep_fail(r, path, e.line > 0 ? e.line : 1, "%s", e.text);
    if (!json_is_object(*m)) {
        json_decref(*m);
        *m = NULL;
        return rep_fail(r, path, 1, "not a JSON object");
    }
    return true;
}

static const char css[] =
    "body{max-width:1000px;margin:0 auto;padding:20px 16px 60px;color:#222;background:#fafafa;"
    "font:15px/1.5 system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif}\n"
    "h1{font-size:26px;margin:0 0 2px}h2{font-size:20px;margin:34px 0 8px;padding-bottom:4px;"
    "border-bottom:1px solid #ddd}h3{font-size:15px;margin:18px 0 4px;font-family:monospace}\n"
    "nav{font-size:14px;margin:8px 0 16px}nav a{margin-right:12px;color:#1f5fa8}\n"
    "figure{margin:12px 0;background:#fff;border:1px solid #e3e3e3;border-radius:6px;"
    "padding:8px}figure svg{display:block;max-width:100%;height:auto}\n"
    "figcaption{font-size:13px;color:#555;margin-top:4px}figcaption a{color:#1f5fa8}\n"
    ".pair{display:flex;gap:10px;flex-wrap:wrap}.pair figure{flex:1 1 440px;margin:4px 0}\n"
    "table{border-collapse:collapse;font-size:13px;background:#fff;width:100%}\n"
    "th,td{border:1px solid #e0e0e0;padding:3px 8px;text-align:left;vertical-align:top}\n"
    "th{background:#f2f2f2;font-weight:600}.kv th{width:210px}\n"
    "td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n"
    "tr.stop td{background:#fdecea}tr.skip td{background:#fff6e0}\n"
    "pre{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:10px;"
    "overflow-x:auto;font-size:13px;line-height:1.4}\n"
    ".none{color:#777;font-style:italic}.sub{color:#666;margin:0}\n";

static bool build(rep *r)
{
    logdata d;
    table steps, alarms;
    json_t *m = NULL;
    memset(&d, 0, sizeof d);
    if (!read_log(r, &d) || !tab_read(r, "steps.csv", false, &steps) ||
        (steps.present && !tab_need(r, &steps, "step,loss")) ||
        !tab_read(r, "alarms.csv", false, &alarms) || !read_manifest(r, &m))
        return false;
    sb_put(&r->html, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                     "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                     "<title>nabla report: ");
    sb_esc(&r->html, r->dir);
    sb_printf(&r->html, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>Training report</h1>\n"
                        "<p class=\"sub\">", css);
    sb_esc(&r->html, r->dir);
    sb_put(&r->html, "</p>\n<nav><a href=\"#summary\">summary</a><a href=\"#loss\">loss</a>"
                     "<a href=\"#accuracy\">accuracy</a><a href=\"#lr\">learning rate</a>"
                     "<a href=\"#gradients\">gradients</a><a href=\"#activations\">activations</a>"
                     "<a href=\"#histograms\">histograms</a><a href=\"#alarms\">alarms</a>"
                     "<a href=\"#lr-find\">lr finder</a><a href=\"#manifest\">manifest</a>"
                     "<a href=\"#config\">config</a></nav>\n");
    summary(r, &d, &steps, &alarms, m);
    bool ok = loss_sections(r, &d, &steps) && gradient_section(r, &steps) &&
              activation_section(r) && histogram_section(r) && alarm_section(r, &alarms) &&
              lrfind_section(r);
    if (ok)
        manifest_section(r, m);
    section(r, NULL, NULL);
    json_decref(m);
    sb_put(&r->html, "\n</body>\n</html>\n");
    return ok && (!r->html.oom || rep_oom(r));
}

/* Is the file `path` in the folder `dir`? */
static bool same_folder(const char *path, const char *dir)
{
    char parent[1200];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (!slash)
        snprintf(parent, sizeof parent, ".");
    else if (slash == parent)
        parent[1] = '\0';
    else
        *slash = '\0';
    struct stat a, b;
    return stat(parent, &a) == 0 && stat(dir, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

int cmd_report(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (argv[i][0] != '-' && !dir)
            dir = argv[i];
        else {
            fprintf(stderr, "usage: nabla report RUN_FOLDER [--out FILE]\n");
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "usage: nabla report RUN_FOLDER [--out FILE]\n");
        return 2;
    }
    rep r;
    memset(&r, 0, sizeof r);
    r.dir = dir;
    char outbuf[1200], tmp[1300];
    if (!out) {
        snprintf(outbuf, sizeof outbuf, "%s/report.html", dir);
        out = outbuf;
    }
    snprintf(r.plotdir, sizeof r.plotdir, "%s/plots", dir);
    r.links = same_folder(out, dir);
    struct stat st;
    bool ok;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        ok = rep_fail(&r, dir, 0, "not a folder");
    else if (mkdir(r.plotdir, 0777) != 0 && errno != EEXIST)
        ok = rep_fail(&r, r.plotdir, 0, "cannot create: %s", strerror(errno));
    else
        ok = build(&r);
    if (ok) { /* the page atomically: a reader never sees half of it */
        snprintf(tmp, sizeof tmp, "%s.tmp", out);
        ok = write_file(&r, tmp, r.html.s, r.html.n);
        if (ok && rename(tmp, out) != 0) {
            ok = rep_fail(&r, out, 0, "cannot write: %s", strerror(errno));
            remove(tmp);
        }
    }
    rep_free(&r);
    if (!ok) {
        fprintf(stderr, "nabla: report: %s\n", r.err);
        return 1;
    }
    printf("report: %s (%d plots in %s)\n", out, r.plots, r.plotdir);
    return 0;
}
