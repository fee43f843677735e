/* Checkpoints in the safetensors format (written atomically by src/io).
 * Tensors: the model's parameters and buffers under their registry names
 * (so a PyTorch state_dict loads them), "optim.<param>.<state>" for the
 * optimizer, "norm.mean"/"norm.std" for the input normalisation.
 * Metadata strings: format "pt", nabla "1", epoch, step, best_metric,
 * best_epoch, bad_epochs, rng (the context generator's state), sched (the
 * schedule's state), optimizer, config, manifest (the reproducibility
 * manifest of src/train/manifest.c, with the context's seed; the
 * generator's current state is in "rng"). */
#include "core/internal.h"
#include "train/manifest.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void nb_free_string(nb_ctx *ctx, char *s)
{
    if (ctx && s)
        nb__heap_free(ctx, s);
}

typedef struct {
    nb_st_item *items;
    char **owned; /* names made here */
    int n, cap, n_owned;
} item_list;

static bool push(nb_ctx *ctx, item_list *l, const char *name, const nb_tensor *t, bool own)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 32;
        nb_st_item *it = nb__heap_alloc(ctx, sizeof *it * (size_t)cap);
        char **ow = nb__heap_alloc(ctx, sizeof *ow * (size_t)cap);
        if (!it || !ow) {
            nb__heap_free(ctx, it);
            nb__heap_free(ctx, ow);
            return false;
        }
        if (l->n) {
            memcpy(it, l->items, sizeof *it * (size_t)l->n);
            memcpy(ow, l->owned, sizeof *ow * (size_t)l->n_owned);
        }
        nb__heap_free(ctx, l->items);
        nb__heap_free(ctx, l->owned);
        l->items = it;
        l->owned = ow;
        l->cap = cap;
    }
    const char *nm = name;
    if (own) {
        char *c = nb__heap_alloc(ctx, strlen(name) + 1);
        if (!c)
            return false;
        strcpy(c, name);
        l->owned[l->n_owned++] = c;
        nm = c;
    }
    l->items[l->n].name = nm;
    l->items[l->n].tensor = t;
    l->items[l->n].store = NB_DTYPE_COUNT;
    l->n++;
    return true;
}

static void list_free(nb_ctx *ctx, item_list *l)
{
    for (int i = 0; i < l->n_owned; i++)
        nb__heap_free(ctx, l->owned[i]);
    nb__heap_free(ctx, l->owned);
    nb__heap_free(ctx, l->items);
}

nb_status nb_checkpoint_save(nb_ctx *ctx, const char *path, nb_module *model, nb_optim *opt,
                             nb_sched *sched, const nb_norm *norm, const nb_ckpt_info *info,
                             const char *config_text)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!path || !model)
        return nb__err(ctx, NB_ERR_NULL, "checkpoint_save: path or model is NULL");
    nb_param_list mp = {0, NULL}, op = {0, NULL};
    item_list L = {0};
    nb_status st = nb_module_params(ctx, model, &mp);
    if (st == NB_OK && opt)
        st = nb_optim_state(ctx, opt, &op);
    for (int i = 0; st == NB_OK && i < mp.n; i++)
        if (!push(ctx, &L, mp.items[i].name, mp.items[i].tensor, false))
            st = nb__err(ctx, NB_ERR_NOMEM, "checkpoint_save: allocator failed");
    for (int i = 0; st == NB_OK && i < op.n; i++) {
        char name[320];
        snprintf(name, sizeof name, "optim.%s", op.items[i].name);
        if (!push(ctx, &L, name, op.items[i].tensor, true))
            st = nb__err(ctx, NB_ERR_NOMEM, "checkpoint_save: allocator failed");
    }
    if (st == NB_OK && norm && norm->kind != NB_NORM_NONE && norm->mean && norm->std &&
        (!push(ctx, &L, "norm.mean", norm->mean, false) || !push(ctx, &L, "norm.std", norm->std, false)))
        st = nb__err(ctx, NB_ERR_NOMEM, "checkpoint_save: allocator failed");
    char *manifest = NULL;
    if (st == NB_OK && !(manifest = nb__manifest_json(ctx, true, ctx->seed, config_text)))
        st = NB_ERR_NOMEM; /* recorded by nb__manifest_json */
    if (st == NB_OK) {
        nb_ckpt_info in = info ? *info : (nb_ckpt_info){0, 0, NAN, 0, 0};
        char epoch[32], step[32], best[40], best_epoch[16], bad[16], rng[48], sch[160], ost[32],
            normk[8];
        snprintf(epoch, sizeof epoch, "%" PRId64, in.epoch);
        snprintf(step, sizeof step, "%" PRId64, in.step);
        snprintf(best, sizeof best, "%.17g", in.best_metric);
        snprintf(best_epoch, sizeof best_epoch, "%d", in.best_epoch);
        snprintf(bad, sizeof bad, "%d", in.bad_epochs);
        snprintf(rng, sizeof rng, "%016" PRIx64 ":%016" PRIx64, ctx->rng.state, ctx->rng.inc);
        nb_sched_state ss = nb_sched_get_state(sched);
        snprintf(sch, sizeof sch, "%" PRId64 " %.17g %" PRId64 " %" PRId64 " %.17g", ss.t, ss.best,
                 ss.bad_epochs, ss.cooldown_left, ss.scale);
        snprintf(ost, sizeof ost, "%" PRId64, nb_optim_steps(opt));
        snprintf(normk, sizeof normk, "%d", norm ? (int)norm->kind : 0);
        nb_st_meta meta[] = {
            {"format", "pt"},       {"nabla", "1"},        {"epoch", epoch},
            {"step", step},         {"best_metric", best}, {"best_epoch", best_epoch},
            {"bad_epochs", bad},    {"rng", rng},          {"sched", sch},
            {"optim_steps", ost},   {"norm", normk},
            {"optimizer", opt ? "1" : "0"},
            {"config", config_text ? config_text : ""},
            {"manifest", manifest},
        };
        st = nb_safetensors_save(ctx, path, L.items, L.n, meta, (int)(sizeof meta / sizeof *meta));
    }
    nb__heap_free(ctx, manifest);
    list_free(ctx, &L);
    nb_param_list_free(ctx, &mp);
    nb_param_list_free(ctx, &op);
    return st;
}

/* Appends "name" to a comma-separated heap string. */
static bool note(nb_ctx *ctx, char **s, const char *name, const char *why)
{
    size_t old = *s ? strlen(*s) : 0, add = strlen(name) + strlen(why) + 8;
    char *n = nb__heap_alloc(ctx, old + add);
    if (!n)
        return false;
    snprintf(n, old + add, "%s%s%s (%s)", *s ? *s : "", *s ? ", " : "", name, why);
    nb__heap_free(ctx, *s);
    *s = n;
    return true;
}

static bool same_shape(int nd, const int64_t *sh, const nb_tensor *t)
{
    if (nd != t->ndim)
        return false;
    for (int d = 0; d < nd; d++)
        if (sh[d] != t->shape[d])
            return false;
    return true;
}

/* Presence without recording an error (nb_safetensors_info records one). */
static bool has_tensor(const nb_safetensors *f, const char *name)
{
    for (int i = 0; i < nb_safetensors_count(f); i++)
        if (strcmp(nb_safetensors_name(f, i), name) == 0)
            return true;
    return false;
}

static nb_status load_tensor(nb_ctx *ctx, const nb_safetensors *f, const char *path,
                             const char *name, nb_tensor *t, bool partial, char **skipped)
{
    nb_dtype dt;
    int nd;
    int64_t sh[NB_MAX_DIMS];
    if (!has_tensor(f, name) || nb_safetensors_info(f, name, &dt, &nd, sh) != NB_OK) {
        if (partial)
            return note(ctx, skipped, name, "absent") ? NB_OK
                                                      : nb__err(ctx, NB_ERR_NOMEM, "checkpoint_load: allocator failed");
        return nb__err(ctx, NB_ERR_FORMAT, "checkpoint: %s: has no tensor \"%s\"", path, name);
    }
    if (!same_shape(nd, sh, t)) {
        char a[NB__SHAPE_BUF], b[NB__SHAPE_BUF];
        nb__shape_fmt(nd, sh, a, sizeof a);
        if (partial) {
            char why[2 * NB__SHAPE_BUF + 16];
            snprintf(why, sizeof why, "%s in file, %s here", a, nb_shape_str(t, b, sizeof b));
            return note(ctx, skipped, name, why) ? NB_OK
                                                  : nb__err(ctx, NB_ERR_NOMEM, "checkpoint_load: allocator failed");
        }
        return nb__err(ctx, NB_ERR_SHAPE, "checkpoint: %s: tensor \"%s\" is %s in the file but %s in the model",
                       path, name, a, nb_shape_str(t, b, sizeof b));
    }
    return nb_safetensors_read(ctx, f, name, t);
}

static int64_t meta_i64(const nb_safetensors *f, const char *key, int64_t dflt)
{
    const char *v = nb_safetensors_meta(f, key);
    return v ? strtoll(v, NULL, 10) : dflt;
}

nb_status nb_checkpoint_load(nb_ctx *ctx, const char *path, nb_module *model, nb_optim *opt,
                             nb_sched *sched, nb_norm *norm, nb_ckpt_info *info, bool partial,
                             char **skipped)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (skipped)
        *skipped = NULL;
    if (!path || !model)
        return nb__err(ctx, NB_ERR_NULL, "checkpoint_load: path or model is NULL");
    nb_safetensors *f = nb_safetensors_open(ctx, path);
    if (!f)
        return ctx->err;
    char *skip = NULL;
    nb_param_list mp = {0, NULL}, op = {0, NULL};
    nb_status st = nb_module_params(ctx, model, &mp);
    /* check every shape first, so a mismatch leaves the model untouched */
    for (int pass = 0; pass < 2 && st == NB_OK; pass++)
        for (int i = 0; st == NB_OK && i < mp.n; i++) {
            nb_dtype dt;
            int nd;
            int64_t sh[NB_MAX_DIMS];
            if (pass == 1) {
                st = load_tensor(ctx, f, path, mp.items[i].name, mp.items[i].tensor, partial, &skip);
            } else if (!partial) {
                if (!has_tensor(f, mp.items[i].name) ||
                    nb_safetensors_info(f, mp.items[i].name, &dt, &nd, sh) != NB_OK)
                    st = nb__err(ctx, NB_ERR_FORMAT, "checkpoint: %s: has no tensor \"%s\"", path,
                                 mp.items[i].name);
                else if (!same_shape(nd, sh, mp.items[i].tensor)) {
                    char a[NB__SHAPE_BUF], b[NB__SHAPE_BUF];
                    st = nb__err(ctx, NB_ERR_SHAPE,
                                 "checkpoint: %s: tensor \"%s\" is %s in the file but %s in the model",
                                 path, mp.items[i].name, nb__shape_fmt(nd, sh, a, sizeof a),
                                 nb_shape_str(mp.items[i].tensor, b, sizeof b));
                }
            }
        }
    if (st == NB_OK && opt) {
        if (meta_i64(f, "optimizer", 0) != 1) {
            st = nb__err(ctx, NB_ERR_FORMAT, "checkpoint: %s: holds no optimizer state", path);
        } else {
            st = nb_optim_state(ctx, opt, &op);
            for (int i = 0; st == NB_OK && i < op.n; i++) {
                char name[320];
                snprintf(name, sizeof name, "optim.%s", op.items[i].name);
                st = load_tensor(ctx, f, path, name, op.items[i].tensor, false, NULL);
            }
            if (st == NB_OK)
                nb_optim_set_steps(opt, meta_i64(f, "optim_steps", 0));
        }
    }
    if (st == NB_OK && norm && norm->kind != NB_NORM_NONE && norm->mean && norm->std) {
        st = load_tensor(ctx, f, path, "norm.mean", norm->mean, false, NULL);
        if (st == NB_OK)
            st = load_tensor(ctx, f, path, "norm.std", norm->std, false, NULL);
    }
    if (st == NB_OK && sched) {
        const char *v = nb_safetensors_meta(f, "sched");
        nb_sched_state ss;
        long long t, bad, cool;
        if (!v || sscanf(v, "%lld %lf %lld %lld %lf", &t, &ss.best, &bad, &cool, &ss.scale) != 5)
            st = nb__err(ctx, NB_ERR_FORMAT, "checkpoint: %s: no readable schedule state", path);
        else {
            ss.t = t;
            ss.bad_epochs = bad;
            ss.cooldown_left = cool;
            st = nb_sched_set_state(ctx, sched, &ss);
        }
    }
    if (st == NB_OK && info) {
        const char *b = nb_safetensors_meta(f, "best_metric");
        info->epoch = meta_i64(f, "epoch", 0);
        info->step = meta_i64(f, "step", 0);
        info->best_metric = b ? strtod(b, NULL) : NAN;
        info->best_epoch = (int)meta_i64(f, "best_epoch", 0);
        info->bad_epochs = (int)meta_i64(f, "bad_epochs", 0);
        const char *r = nb_safetensors_meta(f, "rng");
        unsigned long long s1, s2;
        if (r && sscanf(r, "%16llx:%16llx", &s1, &s2) == 2) {
            ctx->rng.state = s1;
            ctx->rng.inc = s2;
        }
    }
    nb_param_list_free(ctx, &mp);
    nb_param_list_free(ctx, &op);
    nb_safetensors_close(ctx, f);
    if (st == NB_OK && skipped)
        *skipped = skip;
    else
        nb__heap_free(ctx, skip);
    return st;
}
