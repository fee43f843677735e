/* Sample diversity and the mode-collapse detector.
 *
 * nb_diversity_measure looks at a batch x [N, ...] two ways:
 *   - pairwise: the mean Euclidean distance over the N(N-1)/2 pairs of
 *     distinct rows (each row flattened to D values), by the Gram matrix:
 *         d_ij^2 = |a_i|^2 + |a_j|^2 - 2 a_i.a_j   (negatives clamped to 0)
 *     so the O(N^2 D) work is one GEMM. Why it is accurate: the rows are
 *     copied to float64 and centred first (distances do not change), which
 *     removes the cancellation a common offset (images in [0, 1]) would cause;
 *     identical rows come out 0 or within 1e-20 of it. The Gram matrix is
 *     made in blocks of rows against the rows from the block on (the upper
 *     triangle and a little more), so the scratch stays near 32 MB whatever
 *     N is and the GEMM does about half the N^2 D work.
 *   - entropy: the histogram of a fixed classifier's argmax over its logits
 *     [N, C]; H = -sum p ln p over the classes seen (nats), next to ln C.
 *     The classifier runs in evaluation mode without recording; each
 *     module's own mode is put back afterwards (a tree may mix modes).
 * Everything it takes from the arena is given back (mark and rewind).
 *
 * The detector compares each measurement with real data's (the reference):
 * collapsed when entropy < min_entropy_ratio x the reference's (both finite),
 * or pairwise < min_distance_ratio x the reference's, or pairwise is not
 * finite. After `patience` collapsed checks in a row it raises
 * NB_ALARM_MODE_COLLAPSE once, and re-arms after a healthy check. *alarmed
 * says the detector fired, whether or not a log was given to record it. */
#include "core/internal.h"
#include "kernels/gemm.h"

#include <math.h>
#include <stdio.h>

#define GRAM_SCRATCH ((int64_t)1 << 22) /* doubles of Gram block: 32 MB */

/* x as a contiguous float64 copy (step tensor); NULL + error. */
static double *as_f64(nb_ctx *ctx, nb_tensor *x)
{
    nb_tensor *c = nb_empty(ctx, NB_F64, x->ndim, x->shape);
    if (!c || nb_assign(ctx, c, x) != NB_OK)
        return NULL;
    return c->data;
}

/* Mean pairwise distance of the rows of a [n, d] (centred in place). */
static nb_status pairwise(nb_ctx *ctx, double *a, int64_t n, int64_t d, double *out)
{
    double *mean = nb_arena_alloc(ctx, sizeof(double) * (size_t)(d + n));
    if (!mean)
        return ctx->err;
    double *sq = mean + d; /* [n] squared norms */
    for (int64_t k = 0; k < d; k++)
        mean[k] = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < d; k++)
            mean[k] += a[i * d + k];
    for (int64_t k = 0; k < d; k++)
        mean[k] /= (double)n;
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t k = 0; k < d; k++) {
            double v = a[i * d + k] -= mean[k];
            s += v * v;
        }
        sq[i] = s;
    }
    int64_t rows = GRAM_SCRATCH / n;
    rows = rows < 1 ? 1 : rows > 256 ? 256 : rows;
    double *g = nb_arena_alloc(ctx, sizeof(double) * (size_t)(rows * n)); /* [rows, n - i0] */
    if (!g)
        return ctx->err;
    double total = 0;
    for (int64_t i0 = 0; i0 < n; i0 += rows) {
        int64_t b = n - i0 < rows ? n - i0 : rows, m = n - i0;
        /* g = A[i0:i0+b] A[i0:n]^T */
        nb__mat A = {a + i0 * d, d, 1}, Bt = {a + i0 * d, 1, d};
        nb__gemm(NB_F64, b, m, d, 1.0, A, Bt, 0.0, g, m, nb_get_num_threads(ctx));
        for (int64_t r = 0; r < b; r++) {
            int64_t i = i0 + r;
            double s = 0;
            for (int64_t j = i + 1; j < n; j++) {
                double d2 = sq[i] + sq[j] - 2 * g[r * m + (j - i0)];
                s += d2 < 0 ? 0 : sqrt(d2); /* NaN stays NaN */
            }
            total += s;
        }
    }
    *out = total / ((double)n * (double)(n - 1) / 2);
    return NB_OK;
}

/* Training modes of the tree in pre-order; restoring in pre-order with
 * nb_module_train (which sets a whole subtree) leaves each node as it was. */
static int tree_size(const nb_module *m)
{
    int s = 1;
    for (int i = 0; i < nb_module_child_count(m); i++)
        s += tree_size(nb_module_child(m, i));
    return s;
}
static void modes_get(const nb_module *m, bool *modes, int *k)
{
    modes[(*k)++] = nb_module_training(m);
    for (int i = 0; i < nb_module_child_count(m); i++)
        modes_get(nb_module_child(m, i), modes, k);
}
static void modes_set(nb_module *m, const bool *modes, int *k)
{
    nb_module_train(m, modes[(*k)++]);
    for (int i = 0; i < nb_module_child_count(m); i++)
        modes_set(nb_module_child(m, i), modes, k);
}

/* Class entropy of the classifier's argmax over x. */
static nb_status class_entropy(nb_ctx *ctx, nb_module *cls, nb_tensor *x, nb_diversity *out)
{
    int n_nodes = tree_size(cls), k = 0;
    bool *modes = nb_arena_alloc(ctx, sizeof(bool) * (size_t)n_nodes);
    if (!modes)
        return ctx->err;
    modes_get(cls, modes, &k);
    nb_module_train(cls, false);
    bool grad = nb_set_grad_enabled(ctx, false);
    nb_tensor *y = nb_module_forward(ctx, cls, x);
    nb_set_grad_enabled(ctx, grad);
    k = 0;
    modes_set(cls, modes, &k);
    if (!y)
        return ctx->err != NB_OK ? ctx->err
                                 : nb__err(ctx, NB_ERR_ARG, "diversity: classifier failed");
    int64_t n = x->shape[0];
    if (y->ndim != 2 || y->shape[0] != n || y->shape[1] < 1) {
        char buf[NB__SHAPE_BUF];
        return nb__err(ctx, NB_ERR_SHAPE,
                       "diversity: classifier gave %s, expected logits [%lld, C]",
                       nb__shape_fmt(y->ndim, y->shape, buf, sizeof buf), (long long)n);
    }
    if (!nb__is_float(y->dtype))
        return nb__err(ctx, NB_ERR_DTYPE, "diversity: classifier gave %s logits, expected float",
                       nb_dtype_name(y->dtype));
    int64_t c = y->shape[1];
    double *logits = as_f64(ctx, y);
    int64_t *count = nb_arena_alloc(ctx, sizeof(int64_t) * (size_t)c);
    if (!logits || !count)
        return ctx->err;
    memset(count, 0, sizeof(int64_t) * (size_t)c);
    for (int64_t i = 0; i < n; i++) {
        const double *row = logits + i * c;
        int64_t best = 0;
        for (int64_t j = 1; j < c; j++)
            if (row[j] > row[best])
                best = j;
        count[best]++;
    }
    double h = 0;
    int seen = 0;
    for (int64_t j = 0; j < c; j++)
        if (count[j]) {
            double p = (double)count[j] / (double)n;
            h -= p * log(p);
            seen++;
        }
    out->entropy = h > 0 ? h : 0; /* one class: exactly 0, not -0 */
    out->entropy_max = log((double)c);
    out->classes_seen = seen;
    return NB_OK;
}

nb_status nb_diversity_measure(nb_ctx *ctx, nb_module *classifier, nb_tensor *x,
                               nb_diversity *out)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!x || !out)
        return nb__err(ctx, NB_ERR_NULL, "diversity: %s is NULL", x ? "out" : "x");
    if (!nb__is_float(x->dtype))
        return nb__err(ctx, NB_ERR_DTYPE, "diversity: samples must be float, got %s",
                       nb_dtype_name(x->dtype));
    if (x->ndim < 1)
        return nb__err(ctx, NB_ERR_SHAPE, "diversity: samples must be [N, ...], got a scalar");
    int64_t n = x->shape[0], d = n > 0 ? nb__numel(x) / n : 0;
    if (n < 2)
        return nb__err(ctx, NB_ERR_ARG, "diversity: needs at least 2 samples, got %lld",
                       (long long)n);
    nb_diversity r = {NAN, NAN, 0, 0, n};
    nb_arena_mark mark = nb_arena_mark_get(ctx);
    nb_status s = NB_OK;
    if (d > 0) {
        double *a = as_f64(ctx, x);
        s = a ? pairwise(ctx, a, n, d, &r.pairwise) : ctx->err;
    }
    if (s == NB_OK && classifier)
        s = class_entropy(ctx, classifier, x, &r);
    nb_arena_rewind(ctx, mark);
    if (s == NB_OK)
        *out = r;
    return s;
}

/* ---- the mode-collapse detector -------------------------------------------- */
struct nb_collapse {
    nb_diversity ref;
    nb_collapse_opts o;
    int64_t streak; /* collapsed checks in a row, up to patience + 1 */
};

nb_collapse_opts nb_collapse_opts_default(void) { return (nb_collapse_opts){0.5, 0.5, 1}; }

static bool ratio_ok(double r) { return r >= 0 && r <= 1; } /* NaN fails */

nb_collapse *nb_collapse_new(nb_ctx *ctx, const nb_diversity *reference, const nb_collapse_opts *o)
{
    if (!ctx)
        return NULL;
    if (!reference) {
        nb__err(ctx, NB_ERR_NULL, "collapse: reference is NULL");
        return NULL;
    }
    nb_collapse_opts opts = o ? *o : nb_collapse_opts_default();
    const char *why = NULL;
    if (!ratio_ok(opts.min_entropy_ratio) || !ratio_ok(opts.min_distance_ratio))
        why = "ratios must be in [0, 1]";
    else if (opts.patience < 1)
        why = "patience must be >= 1";
    else if (!(reference->pairwise > 0 && isfinite(reference->pairwise)))
        why = "the reference's pairwise distance must be finite and > 0";
    if (why) {
        nb__err(ctx, NB_ERR_ARG,
                "collapse: %s (min_entropy_ratio %g, min_distance_ratio %g, patience %d, "
                "reference pairwise %g)",
                why, opts.min_entropy_ratio, opts.min_distance_ratio, opts.patience,
                reference->pairwise);
        return NULL;
    }
    nb_collapse *d = nb__heap_alloc(ctx, sizeof *d);
    if (!d) {
        nb__err(ctx, NB_ERR_NOMEM, "collapse: allocator failed");
        return NULL;
    }
    d->ref = *reference;
    d->o = opts;
    d->streak = 0;
    return d;
}

void nb_collapse_free(nb_ctx *ctx, nb_collapse *d)
{
    if (ctx && d)
        nb__heap_free(ctx, d);
}

/* Appends to the string in buf (truncating). */
static void append(char *buf, size_t cap, const char *fmt, ...) NB__PRINTF(3, 4);
static void append(char *buf, size_t cap, const char *fmt, ...)
{
    size_t n = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
}

nb_status nb_collapse_check(nb_ctx *ctx, nb_collapse *d, const nb_diversity *now, int epoch,
                            int64_t step, nb_alarms *alarms, bool *collapsed, bool *alarmed)
{
    if (collapsed)
        *collapsed = false;
    if (alarmed)
        *alarmed = false;
    if (!ctx)
        return NB_ERR_NULL;
    if (!d || !now)
        return nb__err(ctx, NB_ERR_NULL, "collapse_check: %s is NULL",
                       d ? "measurement" : "detector");
    const nb_diversity *ref = &d->ref;
    double er = now->entropy / ref->entropy, dr = now->pairwise / ref->pairwise;
    bool by_entropy = isfinite(now->entropy) && isfinite(ref->entropy) &&
                      now->entropy < d->o.min_entropy_ratio * ref->entropy;
    bool by_distance = !isfinite(now->pairwise) ||
                       now->pairwise < d->o.min_distance_ratio * ref->pairwise;
    bool col = by_entropy || by_distance;
    if (!col)
        d->streak = 0;
    else if (d->streak <= d->o.patience)
        d->streak++; /* stops at patience + 1: the streak's alarm is spent */
    if (collapsed)
        *collapsed = col;
    if (!col || d->streak != d->o.patience)
        return NB_OK;
    char msg[256] = "sample diversity collapsed";
    if (by_entropy)
        append(msg, sizeof msg,
               ": class entropy %.3g nats vs %.3g for real data (ratio %.2f < %.2f)", now->entropy, ref->entropy, er, d->o.min_entropy_ratio);
    if (by_distance)
        append(msg, sizeof msg, "%s mean pairwise distance %.3g vs %.3g (ratio %.2f < %.2f)",
               by_entropy ? ";" : ":", now->pairwise, ref->pairwise, dr, d->o.min_distance_ratio);
    if (d->o.patience > 1)
        append(msg, sizeof msg, ", %d checks in a row", d->o.patience);
    nb_alarm_raise(ctx, alarms, NB_ALARM_MODE_COLLAPSE, epoch, step, "generator",
                   by_distance ? dr : er,
                   by_distance ? d->o.min_distance_ratio : d->o.min_entropy_ratio, "%s", msg);
    if (alarmed)
        *alarmed = true;
    return NB_OK;
}
