/* nabla lr-find: the learning-rate range test.
 *   The model trains on successive batches while the lr grows exponentially
 *   from --start to --end over --steps steps; the loss is smoothed with an
 *   exponential moving average (beta 0.98, bias-corrected) and the test stops
 *   early once the smoothed loss passes 4x its minimum (diverged). The
 *   suggestion is the lr of the minimum smoothed loss divided by 10: the
 *   largest rate that still sits on the steep, stable part of the curve (the
 *   steepest-slope point is printed too; it is noisier). Writes
 *   OUT/lr_find.csv (lr,loss,smoothed, then "# suggestion LR") and
 *   OUT/lr_find.svg, OUT = [train] out/lr_find (or --out DIR).
 * nabla check: sanity checks before training.
 *   - the loss at initialisation against its expected value (ln C for C
 *     classes with cross-entropy);
 *   - overfitting one batch: 200 steps on one batch must drive the loss
 *     near zero, or something between data, model and loss is broken;
 *   - memory: the step arena (activations and gradients of one step) is
 *     measured at two batch sizes and fitted as base + per-sample; with
 *     parameters, gradients and optimizer state it gives "batch B needs N
 *     MiB", and with [train] memory_limit_mb the largest batch that fits and
 *     the accumulation steps that keep the configured batch.
 * memory_limit_mb also works in `nabla train`: run_train asks plan_memory. */
#include "cli.h"
#include "report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- arguments: command flags, then the --set overrides ------------------------- */
typedef struct {
    double start, end;
    int steps;
    const char *out;
} lr_args;

static bool split_args(int argc, char **argv, lr_args *a, int *nargc, char **nargv)
{
    *nargc = 0;
    for (int i = 0; i < argc; i++) {
        const char *k = argv[i];
        bool known = a && i >= 3 && i + 1 < argc &&
                     (!strcmp(k, "--start") || !strcmp(k, "--end") || !strcmp(k, "--steps") ||
                      !strcmp(k, "--out"));
        if (!known) {
            nargv[(*nargc)++] = argv[i];
            continue;
        }
        const char *v = argv[++i];
        if (!strcmp(k, "--start"))
            a->start = strtod(v, NULL);
        else if (!strcmp(k, "--end"))
            a->end = strtod(v, NULL);
        else if (!strcmp(k, "--steps"))
            a->steps = atoi(v);
        else
            a->out = v;
    }
    nargv[*nargc] = NULL;
    return true;
}

static nb_tensor *batch_loss(nb_ctx *ctx, const cfg *c, nb_module *m, nb_tensor *x, nb_tensor *y)
{
    return nb_batch_loss(ctx, loss_kind(c), nb_module_forward(ctx, m, x), x, y);
}

/* The next training batch, starting a new epoch when one ends. */
static nb_status next_batch(session *S, int64_t *epoch, nb_tensor **x, nb_tensor **y)
{
    nb_status st = nb_loader_next(S->ctx, S->ltr, x, y);
    if (st == NB_OK && !*x) {
        st = nb_loader_start(S->ctx, S->ltr, ++*epoch);
        if (st == NB_OK)
            st = nb_loader_next(S->ctx, S->ltr, x, y);
    }
    return st;
}

int cmd_lr_find(int argc, char **argv)
{
    lr_args A = {1e-7, 10, 200, NULL};
    char **nargv = calloc((size_t)argc + 1, sizeof *nargv);
    int nargc;
    if (!nargv || argc < 3) {
        free(nargv);
        fprintf(stderr, "usage: nabla lr-find CONFIG [--start 1e-7] [--end 10] [--steps 100] [--out DIR] "
                        "[--set section.key=value ...]\n");
        return 2;
    }
    split_args(argc, argv, &A, &nargc, nargv);
    cfg c;
    cfg_defaults(&c);
    char err[1024];
    int rc = 2;
    if (!(A.start > 0 && A.end > A.start && A.steps >= 10)) {
        fprintf(stderr, "nabla: lr-find: needs 0 < --start < --end and --steps >= 10\n");
        goto done;
    }
    if (!load_config(&c, nargc, nargv, 3, err, sizeof err)) {
        fprintf(stderr, "nabla: %s\n", err);
        goto done;
    }
    char dir[CFG_PATH + 16];
    if (A.out)
        snprintf(dir, sizeof dir, "%s", A.out);
    else
        snprintf(dir, sizeof dir, "%s/lr_find", c.out[0] ? c.out : "runs");
    if (c.out[0])
        mkdir(c.out, 0777);
    mkdir(dir, 0777);
    session S;
    rc = 1;
    if (session_open(&c, &S) == 0) {
        nb_ctx *ctx = S.ctx;
        double *lr = calloc((size_t)A.steps * 3, sizeof(double)), *loss = lr + A.steps,
               *sm = loss + A.steps;
        int n = 0;
        int64_t epoch = 0;
        double avg = 0, best = INFINITY;
        nb_status st = lr ? nb_loader_start(ctx, S.ltr, 0) : NB_ERR_NOMEM;
        nb_module_train(S.model, true);
        for (int i = 0; st == NB_OK && i < A.steps; i++) {
            nb_arena_reset(ctx);
            nb_tensor *x, *y;
            if ((st = next_batch(&S, &epoch, &x, &y)) != NB_OK || !x)
                break;
            lr[i] = A.start * pow(A.end / A.start, (double)i / (A.steps - 1));
            nb_optim_set_lr(S.opt, -1, lr[i]);
            nb_tensor *l = batch_loss(ctx, &c, S.model, x, y);
            if (!l) {
                st = nb_last_status(ctx);
                break;
            }
            loss[i] = nb_get(l, 0);
            n = i + 1;
            if (!isfinite(loss[i])) {
                sm[i] = NAN;
                break;
            }
            avg = 0.95 * avg + 0.05 * loss[i];
            sm[i] = avg / (1 - pow(0.95, i + 1));
            best = sm[i] < best ? sm[i] : best;
            if (i > 10 && sm[i] > 4 * best)
                break; /* diverged */
            if ((st = nb_backward(ctx, l)) == NB_OK)
                st = nb_optim_step(ctx, S.opt);
            nb_optim_zero_grad(S.opt);
        }
        if (st != NB_OK) {
            fail(ctx, "lr-find");
        } else {
            int imin = 0, isteep = 1;
            for (int i = 0; i < n; i++)
                if (isfinite(sm[i]) && sm[i] < sm[imin])
                    imin = i;
            double slope = INFINITY; /* d smoothed / d ln lr, over 5-step spans before the minimum */
            for (int i = 5; i <= imin; i++) {
                double s = (sm[i] - sm[i - 5]) / log(lr[i] / lr[i - 5]);
                if (s < slope)
                    slope = s, isteep = i;
            }
            double sugg = lr[imin] / 10;
            char path[CFG_PATH + 64];
            snprintf(path, sizeof path, "%s/lr_find.csv", dir);
            FILE *f = fopen(path, "w");
            if (f) {
                fprintf(f, "lr,loss,smoothed\n");
                for (int i = 0; i < n; i++)
                    fprintf(f, "%.6g,%.6g,%.6g\n", lr[i], loss[i], sm[i]);
                fprintf(f, "# suggestion %.6g\n", sugg);
                fclose(f);
            }
            rp_series s[2] = {{"loss", "loss", lr, loss, n, NULL, false},
                              {"smoothed", "smoothed loss", NULL, NULL, n, NULL, false}};
            double *x2 = malloc(sizeof(double) * (size_t)(2 * n + 2)), *y2 = x2 ? x2 + n + 1 : NULL;
            double *x1 = malloc(sizeof(double) * (size_t)(2 * n + 2)), *y1 = x1 ? x1 + n + 1 : NULL;
            if (x2 && x1) {
                memcpy(x1, lr, sizeof(double) * (size_t)n);
                memcpy(y1, loss, sizeof(double) * (size_t)n);
                memcpy(x2, lr, sizeof(double) * (size_t)n);
                memcpy(y2, sm, sizeof(double) * (size_t)n);
                s[0].x = x1, s[0].y = y1, s[1].x = x2, s[1].y = y2;
                rp_plot p;
                memset(&p, 0, sizeof p);
                snprintf(p.id, sizeof p.id, "lr_find");
                snprintf(p.title, sizeof p.title, "Learning-rate range test");
                p.xlabel = "learning rate";
                p.ylabel = "training loss";
                p.xscale = RP_LOG;
                p.ymin = p.ymax = NAN;
                p.vline = sugg;
                p.vline_label = "suggestion";
                p.s = s;
                p.ns = 2;
                sbuf b = {0};
                sb_put(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
                if (rp_render(&p, &b) > 0 && !b.oom) {
                    snprintf(path, sizeof path, "%s/lr_find.svg", dir);
                    FILE *g = fopen(path, "w");
                    if (g) {
                        fputs(b.s, g);
                        fclose(g);
                    }
                }
                sb_free(&b);
            }
            free(x1);
            free(x2);
            printf("lr-find: %d steps from %.3g to %.3g; minimum smoothed loss %.4g at lr %.3g; "
                   "steepest descent at lr %.3g\n", n, lr[0], lr[n ? n - 1 : 0], sm[imin], lr[imin],
                   lr[isteep]);
            printf("wrote %s/lr_find.csv and %s/lr_find.svg\n", dir, dir);
            printf("lr-find suggestion=%.6g\n", sugg);
            rc = 0;
        }
        free(lr);
    }
    session_close(&S);
done:
    cfg_free(&c);
    free(nargv);
    return rc;
}

/* ---- memory ------------------------------------------------------------------------ */
typedef struct {
    double fixed_mb;     /* parameters, buffers, their gradients, optimizer state */
    double base_mb, per_sample_mb; /* the step arena: base + per_sample x batch */
    double data_mb;      /* the data set in memory */
} mem_est;

static double mb(double bytes) { return bytes / (1024.0 * 1024.0); }

static size_t list_bytes(const nb_param_list *l)
{
    size_t b = 0;
    for (int i = 0; i < l->n; i++)
        b += (size_t)nb_numel(l->items[i].tensor) * nb_dtype_size(l->items[i].tensor->dtype);
    return b;
}

/* One training step on the first b rows of x; the arena in use after it. */
static size_t step_bytes(session *S, nb_tensor *x, nb_tensor *y, int64_t b)
{
    nb_ctx *ctx = S->ctx;
    nb_arena_reset(ctx);
    nb_tensor *xs = nb_slice(ctx, x, 0, 0, b, 1), *ys = y ? nb_slice(ctx, y, 0, 0, b, 1) : NULL;
    nb_tensor *l = batch_loss(ctx, S->c, S->model, nb_contiguous(ctx, xs), ys ? nb_contiguous(ctx, ys) : NULL);
    if (!l || nb_backward(ctx, l) != NB_OK)
        return 0;
    size_t used = nb_arena_used(ctx);
    nb_optim_zero_grad(S->opt);
    return used;
}

static int measure(session *S, mem_est *e)
{
    nb_ctx *ctx = S->ctx;
    nb_tensor *x, *y;
    if (nb_loader_start(ctx, S->ltr, 0) != NB_OK || nb_loader_next(ctx, S->ltr, &x, &y) != NB_OK || !x)
        return fail(ctx, "check");
    int64_t B = x->shape[0], b1 = B >= 4 ? B / 4 : 1, b2 = B >= 2 ? B / 2 : 1;
    /* the batch is a step tensor: keep it past the resets by copying it out */
    nb_tensor *xp = nb_buffer(ctx, x->dtype, x->ndim, x->shape);
    nb_tensor *yp = y ? nb_buffer(ctx, y->dtype, y->ndim, y->shape) : NULL;
    if (!xp || nb_assign(ctx, xp, x) != NB_OK || (y && (!yp || nb_assign(ctx, yp, y) != NB_OK)))
        return fail(ctx, "check");
    nb_module_train(S->model, true);
    step_bytes(S, xp, yp, b2); /* warm-up: gradients and optimizer state exist afterwards */
    size_t u1 = step_bytes(S, xp, yp, b1), u2 = step_bytes(S, xp, yp, b2);
    if (!u1 || !u2)
        return fail(ctx, "check");
    nb_param_list pl, ol;
    if (nb_module_params(ctx, S->model, &pl) != NB_OK || nb_optim_state(ctx, S->opt, &ol) != NB_OK)
        return fail(ctx, "check");
    e->fixed_mb = mb(2.0 * (double)list_bytes(&pl) + (double)list_bytes(&ol));
    nb_param_list_free(ctx, &pl);
    nb_param_list_free(ctx, &ol);
    e->per_sample_mb = b2 > b1 ? mb((double)u2 - (double)u1) / (double)(b2 - b1) : mb((double)u2) / (double)b2;
    e->base_mb = mb((double)u2) - e->per_sample_mb * (double)b2;
    if (e->base_mb < 0)
        e->base_mb = 0;
    e->data_mb = mb((double)nb_numel(S->tr.x) * nb_dtype_size(S->tr.x->dtype) +
                    (S->te.x ? (double)nb_numel(S->te.x) * nb_dtype_size(S->te.x->dtype) : 0));
    nb_tensor_free(ctx, xp);
    nb_tensor_free(ctx, yp);
    return 0;
}

static double need_mb(const mem_est *e, int64_t batch)
{
    return e->fixed_mb + e->base_mb + e->per_sample_mb * (double)batch;
}

/* The largest batch within limit_mb (< 1: none), or `want` when a sample costs nothing. */
static int64_t fit_batch(const mem_est *e, double limit_mb, int64_t want)
{
    double room = limit_mb - e->fixed_mb - e->base_mb;
    return e->per_sample_mb > 0 ? (int64_t)floor(room / e->per_sample_mb) : want;
}

int plan_memory(const cfg *c, int64_t *batch, int64_t *accum)
{
    cfg probe = *c;
    probe.prefetch = false;
    probe.out[0] = '\0';
    session S;
    mem_est e;
    int rc = session_open(&probe, &S);
    if (rc == 0)
        rc = measure(&S, &e);
    session_close(&S);
    if (rc)
        return rc;
    int64_t B = c->batch_size * c->accum_steps, fit = fit_batch(&e, c->memory_limit_mb, B);
    if (fit < 1) {
        fprintf(stderr, "nabla: memory: not even batch 1 fits in %.3g MiB (parameters and optimizer "
                "state %.1f MiB, a step %.1f MiB + %.3f MiB per sample)\n", c->memory_limit_mb,
                e.fixed_mb, e.base_mb, e.per_sample_mb);
        return 1;
    }
    *accum = fit >= c->batch_size ? c->accum_steps : (B + fit - 1) / fit;
    *batch = fit >= c->batch_size ? c->batch_size : (B + *accum - 1) / *accum;
    printf("memory: batch %lld needs %.1f MiB (limit %.3g MiB): %s\n", (long long)c->batch_size,
           need_mb(&e, c->batch_size), c->memory_limit_mb,
           fit >= c->batch_size ? "fits" : "too much; training with smaller batches and accumulation");
    return 0;
}

/* ---- check ------------------------------------------------------------------------- */
int cmd_check(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: nabla check CONFIG [--set section.key=value ...]\n");
        return 2;
    }
    cfg c;
    cfg_defaults(&c);
    char err[1024];
    if (!load_config(&c, argc, argv, 3, err, sizeof err)) {
        fprintf(stderr, "nabla: %s\n", err);
        cfg_free(&c);
        return 2;
    }
    c.prefetch = false;
    c.out[0] = '\0';
    session S;
    int rc = session_open(&c, &S), problems = 0;
    nb_ctx *ctx = S.ctx;
    if (rc)
        goto out;
    rc = 1;
    /* 1. the loss at initialisation */
    nb_eval_result ev;
    nb_loss_kind lk = loss_kind(&c);
    nb_loader *l0 = S.lval ? S.lval : S.ltr;
    if (nb_evaluate(ctx, S.model, l0, lk, 0, &ev) != NB_OK) {
        fail(ctx, "check");
        goto out;
    }
    if (lk == NB_LOSS_CROSS_ENTROPY) {
        double want = log((double)S.classes);
        bool ok = ev.loss > 0.7 * want && ev.loss < 1.5 * want;
        problems += !ok;
        printf("initial loss: %.4f, expected about ln %lld = %.4f for %lld balanced classes: %s\n", ev.loss,
               (long long)S.classes, want, (long long)S.classes,
               ok ? "ok" : "FAR OFF (initialisation, output scale or labels?)");
    } else {
        printf("initial loss: %.4f (%s)\n", ev.loss, c.loss);
    }
    /* 2. overfit one batch */
    nb_tensor *x, *y;
    if (nb_loader_start(ctx, S.ltr, 0) != NB_OK || nb_loader_next(ctx, S.ltr, &x, &y) != NB_OK || !x) {
        fail(ctx, "check");
        goto out;
    }
    int64_t b = x->shape[0] < 32 ? x->shape[0] : 32;
    nb_tensor *xp = nb_buffer(ctx, x->dtype, x->ndim, x->shape);
    nb_tensor *yp = y ? nb_buffer(ctx, y->dtype, y->ndim, y->shape) : NULL;
    if (!xp || nb_assign(ctx, xp, x) != NB_OK || (y && (!yp || nb_assign(ctx, yp, y) != NB_OK))) {
        fail(ctx, "check");
        goto out;
    }
    nb_module_train(S.model, true);
    double first = NAN, last = NAN;
    for (int i = 0; i < 200; i++) {
        nb_arena_reset(ctx);
        nb_tensor *xs = nb_contiguous(ctx, nb_slice(ctx, xp, 0, 0, b, 1));
        nb_tensor *ys = yp ? nb_contiguous(ctx, nb_slice(ctx, yp, 0, 0, b, 1)) : NULL;
        nb_tensor *l = batch_loss(ctx, &c, S.model, xs, ys);
        if (!l || nb_backward(ctx, l) != NB_OK || nb_optim_step(ctx, S.opt) != NB_OK) {
            fail(ctx, "check");
            goto out;
        }
        nb_optim_zero_grad(S.opt);
        last = nb_get(l, 0);
        first = i == 0 ? last : first;
    }
    bool fit1 = isfinite(last) && (lk == NB_LOSS_CROSS_ENTROPY ? last < 0.05 : last < 0.1 * first);
    problems += !fit1;
    printf("overfit one batch of %lld rows: loss %.4f -> %.4f in 200 steps: %s\n", (long long)b, first, last,
           fit1 ? "ok" : "DOES NOT FIT (a bug between data, model and loss, or an lr far off)");
    nb_tensor_free(ctx, xp);
    nb_tensor_free(ctx, yp);
    /* 3. memory */
    mem_est e;
    if (measure(&S, &e))
        goto out;
    printf("memory: parameters, gradients and optimizer state %.1f MiB; data %.1f MiB; a step "
           "%.2f MiB + %.4f MiB per sample\n", e.fixed_mb, e.data_mb, e.base_mb, e.per_sample_mb);
    printf("memory: batch %lld needs %.1f MiB of activations and gradients (%.1f MiB in all with the "
           "model)\n", (long long)c.batch_size, e.base_mb + e.per_sample_mb * (double)c.batch_size,
           need_mb(&e, c.batch_size));
    if (c.memory_limit_mb > 0) {
        int64_t fit = fit_batch(&e, c.memory_limit_mb, c.batch_size);
        if (fit < 1) {
            printf("memory: nothing fits in %.3g MiB\n", c.memory_limit_mb);
            problems++;
        } else {
            int64_t acc = fit >= c.batch_size ? 1 : (c.batch_size + fit - 1) / fit;
            printf("memory: largest batch within %.3g MiB: %lld; batch %lld %s\n", c.memory_limit_mb,
                   (long long)fit, (long long)c.batch_size,
                   acc == 1 ? "fits" : "needs accumulation");
            if (acc > 1)
                printf("memory: use batch_size = %lld with accum_steps = %lld\n",
                       (long long)((c.batch_size + acc - 1) / acc), (long long)acc);
        }
    }
    printf("check: %s\n", problems ? "PROBLEMS FOUND" : "all ok");
    rc = problems ? 1 : 0;
out:
    session_close(&S);
    cfg_free(&c);
    return rc;
}
