/* The training loop: epochs of batches, gradient accumulation and clipping,
 * an evaluation pass per epoch, early stopping, best/last checkpoints, a CSV
 * log, callbacks. Resuming from a checkpoint restores the weights, the
 * optimizer, the schedule, the generator and the early-stopping state, and
 * starts at the next epoch, whose batches depend only on (seed, epoch): so
 * two epochs straight and one + save + load + one end bit for bit equal. */
#include "core/internal.h"
#include "diag/watch.h"
#include "train/manifest.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

nb_train_opts nb_train_opts_default(void)
{
    nb_train_opts o;
    memset(&o, 0, sizeof o);
    o.epochs = 10;
    o.accum_steps = 1;
    o.eval_batch = 256;
    o.restore_best = true;
    o.diag = nb_diag_opts_default();
    return o;
}

/* The batch loss plus the terms layers added (nb_add_loss). Float targets
 * are reshaped to the output when only the shape's spelling differs ([B]
 * against [B, 1]); without targets (y NULL) the input x is the target. */
nb_tensor *nb_batch_loss(nb_ctx *ctx, nb_loss_kind k, nb_tensor *out, nb_tensor *x, nb_tensor *y)
{
    if (!ctx)
        return NULL;
    nb_tensor *extra = nb_take_added_loss(ctx), *l;
    if (!out)
        return NULL;
    if (!y && k == NB_LOSS_CROSS_ENTROPY) {
        nb__err(ctx, NB_ERR_ARG, "train: cross-entropy needs class ids, and the loader has no targets");
        return NULL;
    }
    y = y ? y : x;
    if (k == NB_LOSS_CROSS_ENTROPY && out->ndim >= 3 && y->ndim == out->ndim - 1 &&
        nb__numel(y) * out->shape[out->ndim - 1] == nb__numel(out)) {
        /* a sequence: logits [B, T, C], ids [B, T]; the mean over all positions */
        int64_t rows = nb__numel(y), C = out->shape[out->ndim - 1];
        l = nb_cross_entropy(ctx, nb_reshape(ctx, out, NB_SHAPE(rows, C)),
                             nb_reshape(ctx, y, 1, &rows), NULL);
    } else if (k == NB_LOSS_CROSS_ENTROPY) {
        l = nb_cross_entropy(ctx, out, y, NULL);
    } else {
        if (nb__numel(out) == nb__numel(y) &&
            (out->ndim != y->ndim || memcmp(out->shape, y->shape, sizeof(int64_t) * (size_t)y->ndim)))
            y = nb_reshape(ctx, y, out->ndim, out->shape);
        if (k == NB_LOSS_MSE)
            l = nb_mse_loss(ctx, out, y, NB_REDUCE_MEAN);
        else if (k == NB_LOSS_BCE)
            l = nb_bce_with_logits(ctx, out, y, NB_REDUCE_MEAN);
        else /* summed over each row, mean over rows */
            l = nb_mul_scalar(ctx, nb_bce_with_logits(ctx, out, y, NB_REDUCE_SUM),
                              1.0 / (double)out->shape[0]);
    }
    return extra && l ? nb_add(ctx, nb_reshape(ctx, l, 0, NULL), extra) : l;
}

/* Correct top-1 and top-k predictions of logits [B, C] against ids [B], or of
 * a sequence's logits [B, T, C] against ids [B, T] (every position is a
 * prediction); *preds counts the predictions. */
static void count_correct(const nb_tensor *out, const nb_tensor *y, int k, int64_t *top1,
                          int64_t *topk, int64_t *preds)
{
    if (out->ndim < 2 || !nb_is_contiguous(out) || nb__numel(y) * out->shape[out->ndim - 1] != nb__numel(out))
        return;
    int64_t C = out->shape[out->ndim - 1], B = nb__numel(y);
    *preds += B;
    for (int64_t i = 0; i < B; i++) {
        int64_t t = (int64_t)nb_get(y, i), above = 0;
        double vt = nb_get(out, i * C + t);
        for (int64_t c = 0; c < C; c++) {
            double v = nb_get(out, i * C + c);
            above += v > vt || (v == vt && c < t);
        }
        *top1 += above == 0;
        *topk += above < k;
    }
}

nb_status nb_evaluate(nb_ctx *ctx, nb_module *model, nb_loader *data, nb_loss_kind loss,
                      int top_k, nb_eval_result *res)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!model || !data || !res)
        return nb__err(ctx, NB_ERR_NULL, "evaluate: model, loader or result is NULL");
    bool was_training = nb_module_training(model), grad = nb_set_grad_enabled(ctx, false);
    nb_module_train(model, false);
    nb_status st = nb_loader_start(ctx, data, 0);
    double sum = 0;
    int64_t rows = 0, top1 = 0, topk = 0, preds = 0;
    nb_arena_mark m = nb_arena_mark_get(ctx);
    while (st == NB_OK) {
        nb_arena_rewind(ctx, m);
        nb_tensor *x, *y;
        st = nb_loader_next(ctx, data, &x, &y);
        if (st != NB_OK || !x)
            break;
        nb_tensor *out = nb_module_forward(ctx, model, x);
        nb_tensor *l = nb_batch_loss(ctx, loss, out, x, y);
        if (!l) {
            st = ctx->err;
            break;
        }
        sum += nb_get(l, 0) * (double)x->shape[0];
        rows += x->shape[0];
        if (loss == NB_LOSS_CROSS_ENTROPY)
            count_correct(out, y, top_k > 1 ? top_k : 1, &top1, &topk, &preds);
    }
    nb_arena_rewind(ctx, m);
    nb_module_train(model, was_training);
    nb_set_grad_enabled(ctx, grad);
    res->rows = rows;
    res->loss = rows ? sum / (double)rows : NAN;
    res->acc = loss == NB_LOSS_CROSS_ENTROPY && preds ? (double)top1 / (double)preds : NAN;
    res->topk = loss == NB_LOSS_CROSS_ENTROPY && preds && top_k > 1 ? (double)topk / (double)preds : NAN;
    return st;
}

static nb_status check_opts(nb_ctx *ctx, const nb_train_opts *o)
{
    if (o->epochs < 1 || o->accum_steps < 1 || o->patience < 0 || o->top_k < 0 ||
        o->eval_batch < 1 || !(o->min_delta >= 0) || !(o->clip_norm >= 0) || !(o->clip_value >= 0) ||
        (int)o->loss < 0 || o->loss >= NB_LOSS_COUNT)
        return nb__err(ctx, NB_ERR_ARG,
                       "train: bad options (epochs %d, accum_steps %d, patience %d, min_delta %g, "
                       "clip_norm %g, clip_value %g)",
                       o->epochs, o->accum_steps, o->patience, o->min_delta, o->clip_norm,
                       o->clip_value);
    return NB_OK;
}

/* Run-folder helpers. */
static nb_status ensure_dir(nb_ctx *ctx, const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) == 0)
        return S_ISDIR(sb.st_mode) ? NB_OK
                                   : nb__err(ctx, NB_ERR_IO, "train: %s exists and is not a folder", dir);
    /* make the parents too (mkdir -p): `out = runs/name` in a fresh checkout */
    char path[1024];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(path, 0777) != 0 && errno != EEXIST)
                return nb__err(ctx, NB_ERR_IO, "train: cannot create %s: %s", path, strerror(errno));
            *p = '/';
        }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return nb__err(ctx, NB_ERR_IO, "train: cannot create %s: %s", dir, strerror(errno));
    return NB_OK;
}

typedef struct {
    nb_param_list params;
    nb_tensor **best; /* copies of the best weights, made at the first improvement */
    nb_tensor **trainable;
    int n_trainable;
} run_state;

static void run_free(nb_ctx *ctx, run_state *r)
{
    for (int i = 0; r->best && i < r->params.n; i++)
        nb_tensor_free(ctx, r->best[i]);
    nb__heap_free(ctx, r->best);
    nb__heap_free(ctx, r->trainable);
    nb_param_list_free(ctx, &r->params);
}

static nb_status keep_best(nb_ctx *ctx, run_state *r)
{
    if (!r->best) {
        r->best = nb__heap_alloc(ctx, sizeof(nb_tensor *) * (size_t)(r->params.n + 1));
        if (!r->best)
            return nb__err(ctx, NB_ERR_NOMEM, "train: allocator failed");
        memset(r->best, 0, sizeof(nb_tensor *) * (size_t)(r->params.n + 1));
        for (int i = 0; i < r->params.n; i++) {
            nb_tensor *t = r->params.items[i].tensor;
            if (!(r->best[i] = nb_buffer(ctx, t->dtype, t->ndim, t->shape)))
                return ctx->err;
        }
    }
    for (int i = 0; i < r->params.n; i++) {
        nb_status st = nb_assign(ctx, r->best[i], r->params.items[i].tensor);
        if (st != NB_OK)
            return st;
    }
    return NB_OK;
}

nb_status nb_train(nb_ctx *ctx, nb_module *model, nb_optim *opt, nb_sched *sched,
                   nb_loader *train, nb_loader *val, const nb_norm *norm,
                   const nb_train_opts *opts, nb_train_result *res)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!model || !opt || !train)
        return nb__err(ctx, NB_ERR_NULL, "train: model, optimizer or loader is NULL");
    nb_train_opts o = opts ? *opts : nb_train_opts_default();
    nb_status st = check_opts(ctx, &o);
    if (st != NB_OK)
        return st;
    nb_train_result R;
    memset(&R, 0, sizeof R);
    R.val_loss = R.val_acc = NAN;
    run_state run;
    memset(&run, 0, sizeof run);
    st = nb_module_params(ctx, model, &run.params);
    if (st != NB_OK)
        return st;
    run.trainable = nb__heap_alloc(ctx, sizeof(nb_tensor *) * (size_t)(run.params.n + 1));
    if (!run.trainable) {
        run_free(ctx, &run);
        return nb__err(ctx, NB_ERR_NOMEM, "train: allocator failed");
    }
    for (int i = 0; i < run.params.n; i++)
        if (!run.params.items[i].is_buffer)
            run.trainable[run.n_trainable++] = run.params.items[i].tensor;

    nb_ckpt_info info = {0, 0, o.monitor_acc ? -INFINITY : INFINITY, 0, 0};
    if (o.resume) {
        st = nb_checkpoint_load(ctx, o.resume, model, opt, sched, NULL, &info, false, NULL);
        if (st != NB_OK) {
            run_free(ctx, &run);
            return st;
        }
    }
    char path_best[1024] = "", path_last[1024] = "", path_log[1024] = "";
    nb__watch *watch = NULL;
    FILE *log = NULL;
    if (o.out_dir) {
        st = ensure_dir(ctx, o.out_dir);
        snprintf(path_best, sizeof path_best, "%s/best.safetensors", o.out_dir);
        snprintf(path_last, sizeof path_last, "%s/last.safetensors", o.out_dir);
        snprintf(path_log, sizeof path_log, "%s/log.csv", o.out_dir);
        if (st == NB_OK) {
            log = fopen(path_log, info.epoch > 0 ? "a" : "w");
            if (!log)
                st = nb__err(ctx, NB_ERR_IO, "train: cannot write %s: %s", path_log, strerror(errno));
            else if (info.epoch == 0)
                fprintf(log, "epoch,train_loss,train_acc,val_loss,val_acc,val_topk,lr,seconds,"
                             "samples_per_s\n");
        }
    }

    if (st == NB_OK && o.out_dir) { /* the reproducibility manifest of this process's run */
        char path[1024], *m = nb__manifest_json(ctx, true, ctx->seed, o.config_text);
        snprintf(path, sizeof path, "%s/manifest.json", o.out_dir);
        FILE *f = m ? fopen(path, "w") : NULL;
        bool ok = f && fputs(m, f) >= 0;
        if (f && fclose(f) != 0)
            ok = false;
        if (!m)
            st = ctx->err;
        else if (!ok)
            st = nb__err(ctx, NB_ERR_IO, "train: cannot write %s: %s", path, strerror(errno));
        nb__heap_free(ctx, m);
    }
    if (st == NB_OK && !o.diag.off && !(watch = nb__watch_new(ctx, &o.diag, model, &run.params, o.out_dir,
                                               info.epoch > 0, o.alarms)))
        st = ctx->err;
    bool alarm_stop = false;
    double t_all = 0;
    int64_t samples_all = 0, step = info.step;
    int64_t batches = nb_loader_batches(train);
    for (int epoch = (int)info.epoch + 1; st == NB_OK && epoch <= o.epochs; epoch++) {
        double t0 = now();
        nb_module_train(model, true);
        st = nb_loader_start(ctx, train, epoch - 1);
        double loss_sum = 0;
        int64_t rows = 0, top1 = 0, topk = 0, preds = 0;
        for (int64_t b = 0; st == NB_OK; b++) {
            nb_arena_reset(ctx);
            nb_tensor *x, *y;
            st = nb_loader_next(ctx, train, &x, &y);
            if (st != NB_OK || !x)
                break;
            if (b % o.accum_steps == 0)
                nb__watch_begin(ctx, watch, epoch, step + 1);
            nb_tensor *out = nb_module_forward(ctx, model, x);
            nb_tensor *l = nb_batch_loss(ctx, o.loss, out, x, y);
            if (!l) {
                st = ctx->err;
                break;
            }
            double lv = nb_get(l, 0);
            if (!isfinite(lv)) {
                nb_alarm_action a = nb__watch_loss(ctx, watch, lv);
                if (a == NB_ACTION_STOP) {
                    st = nb__err(ctx, NB_ERR_NUMERIC, "train: the loss is %g at epoch %d, batch %lld: %s",
                                 lv, epoch, (long long)b + 1, nb__watch_last(watch));
                    alarm_stop = true;
                    break;
                }
                if (a == NB_ACTION_SKIP) { /* this batch adds nothing */
                    R.skipped_steps++;
                    continue;
                }
            }
            if (o.accum_steps > 1)
                l = nb_mul_scalar(ctx, l, 1.0 / o.accum_steps);
            st = l ? nb_backward(ctx, l) : ctx->err;
            if (st != NB_OK)
                break;
            loss_sum += lv * (double)x->shape[0];
            rows += x->shape[0];
            if (o.loss == NB_LOSS_CROSS_ENTROPY)
                count_correct(out, y, 1, &top1, &topk, &preds);
            if ((b + 1) % o.accum_steps == 0 || b + 1 == batches) {
                nb_alarm_action a = nb__watch_grads(ctx, watch, lv);
                if (ctx->err != NB_OK) {
                    st = ctx->err;
                    break;
                }
                if (a == NB_ACTION_STOP) {
                    alarm_stop = true;
                    if (!isfinite(lv) || nb__watch_nonfinite(watch))
                        st = nb__err(ctx, NB_ERR_NUMERIC, "train: stopped at epoch %d, batch %lld: %s",
                                     epoch, (long long)b + 1, nb__watch_last(watch));
                    break;
                }
                bool skip = a == NB_ACTION_SKIP;
                if (!skip && o.clip_norm > 0)
                    st = nb_clip_grad_norm(ctx, run.n_trainable, run.trainable, o.clip_norm, NULL);
                if (!skip && st == NB_OK && o.clip_value > 0)
                    st = nb_clip_grad_value(ctx, run.n_trainable, run.trainable, o.clip_value);
                if (!skip && st == NB_OK)
                    st = nb_optim_step(ctx, opt);
                if (st == NB_OK)
                    st = nb__watch_end(ctx, watch, nb_optim_lr(opt, 0), skip);
                nb_optim_zero_grad(opt);
                if (skip) {
                    R.skipped_steps++;
                } else {
                    step++;
                    if (st == NB_OK && sched && o.sched_per_batch)
                        st = nb_sched_step(ctx, sched, lv);
                }
            }
            if (o.on_step) {
                double sec = now() - t0;
                nb_step_info si = {epoch, o.epochs, b + 1, batches, step, lv, nb_optim_lr(opt, 0), sec,
                                   sec > 0 ? (double)rows / sec : 0};
                o.on_step(&si, o.user);
            }
        }
        nb_arena_reset(ctx);
        if (alarm_stop) { /* save where it stopped, then end */
            info.epoch = epoch - 1;
            info.step = step;
            nb_status s2 = o.out_dir ? nb_checkpoint_save(ctx, path_last, model, opt, sched, norm, &info,
                                                          o.config_text)
                                     : NB_OK;
            st = st != NB_OK ? st : s2;
            R.stopped_by_alarm = true;
            R.epochs_run = epoch - 1;
            break;
        }
        if (st != NB_OK)
            break;
        double train_sec = now() - t0;
        t_all += train_sec;
        samples_all += rows;
        nb_epoch_info ei;
        memset(&ei, 0, sizeof ei);
        ei.epoch = epoch;
        ei.epochs = o.epochs;
        ei.train_loss = rows ? loss_sum / (double)rows : NAN;
        ei.train_acc = o.loss == NB_LOSS_CROSS_ENTROPY && preds ? (double)top1 / (double)preds : NAN;
        ei.val_loss = ei.val_acc = ei.val_topk = NAN;
        ei.lr = nb_optim_lr(opt, 0);
        if (val) {
            nb_eval_result ev;
            st = nb_evaluate(ctx, model, val, o.loss, o.top_k, &ev);
            if (st != NB_OK)
                break;
            ei.val_loss = ev.loss;
            ei.val_acc = ev.acc;
            ei.val_topk = ev.topk;
        }
        ei.seconds = now() - t0;
        ei.samples_per_s = train_sec > 0 ? (double)rows / train_sec : 0;
        double metric = o.monitor_acc ? ei.val_acc : (val ? ei.val_loss : ei.train_loss);
        if (sched && !o.sched_per_batch && (st = nb_sched_step(ctx, sched, metric)) != NB_OK)
            break;
        ei.improved = o.monitor_acc ? metric > info.best_metric + o.min_delta
                                    : metric < info.best_metric - o.min_delta;
        if (ei.improved) {
            info.best_metric = metric;
            info.best_epoch = epoch;
            info.bad_epochs = 0;
            if (o.restore_best && (st = keep_best(ctx, &run)) != NB_OK)
                break;
        } else {
            info.bad_epochs++;
        }
        info.epoch = epoch;
        info.step = step;
        if (o.out_dir) {
            if (ei.improved)
                st = nb_checkpoint_save(ctx, path_best, model, opt, sched, norm, &info, o.config_text);
            if (st == NB_OK)
                st = nb_checkpoint_save(ctx, path_last, model, opt, sched, norm, &info, o.config_text);
            if (st != NB_OK)
                break;
        }
        if (log) {
            fprintf(log, "%d,%.6f,%.6f,%.6f,%.6f,%.6f,%.6g,%.3f,%.1f\n", epoch, ei.train_loss,
                    ei.train_acc, ei.val_loss, ei.val_acc, ei.val_topk, ei.lr, ei.seconds,
                    ei.samples_per_s);
            fflush(log);
        }
        if (o.on_epoch)
            o.on_epoch(&ei, o.user);
        R.epochs_run = epoch;
        R.train_loss = ei.train_loss;
        R.val_loss = ei.val_loss;
        R.val_acc = ei.val_acc;
        if (o.patience > 0 && info.bad_epochs >= o.patience) {
            R.stopped_early = true;
            break;
        }
    }
    if (st == NB_OK && o.restore_best && info.best_epoch > 0 && info.best_epoch != R.epochs_run &&
        !R.stopped_by_alarm) {
        if (run.best) /* improved in this run: the copy in memory */
            for (int i = 0; st == NB_OK && i < run.params.n; i++)
                st = nb_assign(ctx, run.params.items[i].tensor, run.best[i]);
        else if (o.out_dir) /* best epoch before a resume: its checkpoint */
            st = nb_checkpoint_load(ctx, path_best, model, NULL, NULL, NULL, NULL, false, NULL);
    }
    if (log && fclose(log) != 0 && st == NB_OK)
        st = nb__err(ctx, NB_ERR_IO, "train: writing %s failed", path_log);
    R.alarms = nb__watch_raised(watch);
    nb__watch_free(ctx, watch);
    R.best_epoch = info.best_epoch;
    R.best_metric = info.best_metric;
    R.samples_per_s = t_all > 0 ? (double)samples_all / t_all : 0;
    if (res)
        *res = R;
    run_free(ctx, &run);
    return st;
}
