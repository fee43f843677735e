#include "config.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { T_STR, T_INT, T_U64, T_DBL, T_BOOL } ktype;

typedef struct {
    const char *section, *key;
    ktype type;
    size_t off, size; /* size: for strings */
    double min, max;  /* numbers */
    const char *choices; /* strings: "a|b|c", or NULL for free text */
    size_t set_flag;  /* offset of a bool set when the key is given, or 0 */
} entry;

#define S(sec, k, field, ch) {sec, k, T_STR, offsetof(cfg, field), sizeof(((cfg *)0)->field), 0, 0, ch, 0}
#define I(sec, k, field, lo, hi) {sec, k, T_INT, offsetof(cfg, field), 0, lo, hi, NULL, 0}
#define D(sec, k, field, lo, hi) {sec, k, T_DBL, offsetof(cfg, field), 0, lo, hi, NULL, 0}
#define DF(sec, k, field, lo, hi, flag) {sec, k, T_DBL, offsetof(cfg, field), 0, lo, hi, NULL, offsetof(cfg, flag)}
#define B(sec, k, field) {sec, k, T_BOOL, offsetof(cfg, field), 0, 0, 0, NULL, 0}

static const entry schema[] = {
    S("data", "format", format, "idx|csv|npy|text"),
    S("data", "text", text_path, NULL),
    I("data", "context", context, 1, 1 << 20),
    I("data", "stride", stride, 0, 1 << 20),
    S("data", "train_images", train_images, NULL),
    S("data", "train_labels", train_labels, NULL),
    S("data", "test_images", test_images, NULL),
    S("data", "test_labels", test_labels, NULL),
    S("data", "train", train_csv, NULL),
    S("data", "test", test_csv, NULL),
    S("data", "label", label, NULL),
    B("data", "header", header),
    D("data", "val_fraction", val_fraction, 0, 0.99),
    S("data", "normalize", normalize, "none|global|feature|range"),
    S("data", "target", target, "labels|input"),
    I("data", "batch_size", batch_size, 1, 1 << 24),
    B("data", "shuffle", shuffle),
    B("data", "drop_last", drop_last),
    B("data", "prefetch", prefetch),
    I("data", "crop_pad", crop_pad, 0, 1024),
    B("data", "hflip", hflip),
    D("data", "erase_p", erase_p, 0, 1),
    S("model", "layers", layers, NULL),
    S("model", "init", init, "default|xavier_uniform|xavier_normal|kaiming_uniform|kaiming_normal|orthogonal"),
    S("model", "init_from", init_from, NULL),
    S("model", "freeze", freeze, NULL),
    S("optim", "name", optim, "sgd|adam|adamw|rmsprop|adagrad"),
    DF("optim", "lr", lr, 0, 1e6, lr_set),
    DF("optim", "weight_decay", weight_decay, 0, 1e6, wd_set),
    D("optim", "momentum", momentum, 0, 1e6),
    D("optim", "dampening", dampening, 0, 1),
    B("optim", "nesterov", nesterov),
    D("optim", "beta1", beta1, 0, 0.999999),
    D("optim", "beta2", beta2, 0, 0.999999999),
    DF("optim", "eps", eps, 0, 1, eps_set),
    B("optim", "amsgrad", amsgrad),
    D("optim", "alpha", alpha, 0, 1),
    B("optim", "centered", centered),
    D("optim", "lr_decay", lr_decay, 0, 1e6),
    D("optim", "initial_accumulator", initial_accumulator, 0, 1e6),
    B("optim", "no_decay_bias", no_decay_1d),
    S("schedule", "name", schedule,
      "constant|step|multistep|exponential|cosine|warmup_cosine|onecycle|plateau"),
    B("schedule", "per_batch", per_batch),
    I("schedule", "step_size", step_size, 1, 1e12),
    D("schedule", "gamma", gamma, 1e-12, 1e6),
    S("schedule", "milestones", milestones, NULL),
    I("schedule", "t_max", t_max, 1, 1e12),
    D("schedule", "eta_min", eta_min, 0, 1e6),
    I("schedule", "warmup", warmup, 0, 1e12),
    I("schedule", "total", total, 0, 1e12),
    D("schedule", "max_lr", max_lr, 0, 1e6),
    D("schedule", "pct_start", pct_start, 1e-6, 0.999999),
    D("schedule", "div_factor", div_factor, 1e-6, 1e12),
    D("schedule", "final_div_factor", final_div_factor, 1e-6, 1e12),
    S("schedule", "mode", mode, "min|max"),
    D("schedule", "factor", factor, 1e-6, 0.999999),
    I("schedule", "patience", patience, 0, 1e9),
    D("schedule", "threshold", threshold, 0, 1e6),
    I("schedule", "cooldown", cooldown, 0, 1e9),
    D("schedule", "min_lr", min_lr, 0, 1e6),
    I("train", "epochs", epochs, 1, 1e9),
    {"train", "seed", T_U64, offsetof(cfg, seed), 0, 0, 0, NULL, 0},
    S("train", "loss", loss, "cross_entropy|mse|bce|bce_sum"),
    I("train", "accum_steps", accum_steps, 1, 1e6),
    D("train", "clip_norm", clip_norm, 0, 1e12),
    D("train", "clip_value", clip_value, 0, 1e12),
    I("train", "early_stopping", early_stopping, 0, 1e9),
    D("train", "min_delta", min_delta, 0, 1e12),
    S("train", "monitor", monitor, "val_loss|val_acc"),
    B("train", "restore_best", restore_best),
    I("train", "top_k", top_k, 0, 1000),
    I("train", "threads", threads, 0, 1024),
    S("train", "out", out, NULL),
    S("train", "resume", resume, NULL),
    S("train", "progress", progress, "auto|bar|lines|none"),
    D("train", "memory_limit_mb", memory_limit_mb, 0, 1e9),
    I("diag", "every", diag_every, 0, 1e12),
    I("diag", "hist_every", hist_every, 0, 1e12),
    I("diag", "hist_bins", hist_bins, 2, 1000),
    D("diag", "vanish_ratio", vanish_ratio, 0, 1),
    I("diag", "vanish_patience", vanish_patience, 1, 1e9),
    D("diag", "explode_norm", explode_norm, 0, 1e30),
    D("diag", "explode_growth", explode_growth, 1, 1e30),
    D("diag", "spike_z", spike_z, 0, 1e6),
    I("diag", "spike_window", spike_window, 2, 1e6),
    S("diag", "on_nonfinite", on_nonfinite, "warn|skip|stop"),
    S("diag", "on_vanishing", on_vanishing, "warn|skip|stop"),
    S("diag", "on_exploding", on_exploding, "warn|skip|stop"),
    S("diag", "on_loss_spike", on_loss_spike, "warn|skip|stop"),
    B("diag", "trace_nonfinite", trace_nonfinite),
    B("diag", "curve", curve),
    S("tune", "method", tune_method, "grid|random|bayes"),
    S("tune", "metric", tune_metric, "val_loss|val_acc"),
    S("tune", "space", tune_space, NULL),
    S("tune", "out", tune_out, NULL),
    I("tune", "trials", tune_trials, 1, 1e6),
    I("tune", "min_epochs", tune_min_epochs, 1, 1e9),
    I("tune", "eta", tune_eta, 2, 100),
};

void cfg_defaults(cfg *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->format, "idx");
    c->context = 128;
    c->header = true;
    c->val_fraction = 0.1;
    strcpy(c->normalize, "global");
    strcpy(c->target, "labels");
    c->batch_size = 128;
    c->shuffle = true;
    c->prefetch = true;
    strcpy(c->init, "default");
    strcpy(c->optim, "adam");
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->alpha = 0.99;
    strcpy(c->schedule, "constant");
    c->step_size = 10;
    c->gamma = 0.1;
    c->t_max = 0; /* 0: the number of schedule steps */
    c->pct_start = 0.3;
    c->div_factor = 25;
    c->final_div_factor = 1e4;
    strcpy(c->mode, "min");
    c->factor = 0.1;
    c->patience = 10;
    c->threshold = 1e-4;
    c->epochs = 10;
    c->seed = 1;
    strcpy(c->loss, "cross_entropy");
    c->accum_steps = 1;
    strcpy(c->monitor, "val_loss");
    c->restore_best = true;
    strcpy(c->progress, "auto");
    /* [diag]: see nb_diag_opts_default */
    c->hist_bins = 30;
    c->vanish_ratio = 1e-4;
    c->vanish_patience = 3;
    c->explode_norm = 1e4;
    c->explode_growth = 100;
    c->spike_z = 8;
    c->spike_window = 100;
    strcpy(c->on_nonfinite, "stop");
    strcpy(c->on_vanishing, "warn");
    strcpy(c->on_exploding, "warn");
    strcpy(c->on_loss_spike, "warn");
    c->trace_nonfinite = true;
    strcpy(c->tune_method, "random");
    strcpy(c->tune_metric, "val_loss");
    c->tune_trials = 12;
    c->tune_min_epochs = 1;
    c->tune_eta = 3;
}

void cfg_free(cfg *c)
{
    free(c->text);
    c->text = NULL;
}

static bool in_choices(const char *v, const char *choices)
{
    size_t n = strlen(v);
    for (const char *p = choices; p && *p;) {
        const char *e = strchr(p, '|');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0)
            return true;
        p = e ? e + 1 : NULL;
    }
    return false;
}

/* Sets one key; on error writes the message (without location) to err. */
static bool set_key(cfg *c, const char *section, const char *key, const char *val, char *err,
                    size_t cap)
{
    const entry *e = NULL;
    bool section_known = false;
    for (size_t i = 0; i < sizeof schema / sizeof *schema; i++) {
        section_known |= strcmp(schema[i].section, section) == 0;
        if (strcmp(schema[i].section, section) == 0 && strcmp(schema[i].key, key) == 0)
            e = &schema[i];
    }
    if (!section_known) {
        snprintf(err, cap, "unknown section [%s] (key '%s')", section, key);
        return false;
    }
    if (!e) {
        snprintf(err, cap, "unknown key '%s' in [%s]", key, section);
        return false;
    }
    char *dst = (char *)c + e->off;
    char *end = NULL;
    errno = 0;
    switch (e->type) {
    case T_STR:
        if (e->choices && !in_choices(val, e->choices)) {
            snprintf(err, cap, "[%s] %s: '%s' is not one of %s", section, key, val, e->choices);
            return false;
        }
        if (strlen(val) >= e->size) {
            snprintf(err, cap, "[%s] %s: value longer than %zu characters", section, key, e->size - 1);
            return false;
        }
        strcpy(dst, val);
        return true;
    case T_BOOL:
        if (!strcmp(val, "true") || !strcmp(val, "yes") || !strcmp(val, "1") || !strcmp(val, "on"))
            *(bool *)dst = true;
        else if (!strcmp(val, "false") || !strcmp(val, "no") || !strcmp(val, "0") || !strcmp(val, "off"))
            *(bool *)dst = false;
        else {
            snprintf(err, cap, "[%s] %s: '%s' is not a boolean (true/false)", section, key, val);
            return false;
        }
        return true;
    case T_INT: {
        long long v = strtoll(val, &end, 10);
        if (!*val || *end || errno) {
            snprintf(err, cap, "[%s] %s: '%s' is not an integer", section, key, val);
            return false;
        }
        if ((double)v < e->min || (double)v > e->max) {
            snprintf(err, cap, "[%s] %s must be in [%.0f, %.0f], got %lld", section, key, e->min,
                     e->max, v);
            return false;
        }
        *(int64_t *)dst = v;
        return true;
    }
    case T_U64: {
        unsigned long long v = strtoull(val, &end, 10);
        if (!*val || *end || errno || val[0] == '-') {
            snprintf(err, cap, "[%s] %s: '%s' is not a non-negative integer", section, key, val);
            return false;
        }
        *(uint64_t *)dst = v;
        return true;
    }
    case T_DBL: {
        double v = strtod(val, &end);
        if (!*val || *end || errno || !isfinite(v)) {
            snprintf(err, cap, "[%s] %s: '%s' is not a number", section, key, val);
            return false;
        }
        if (v < e->min || v > e->max) {
            snprintf(err, cap, "[%s] %s must be in [%g, %g], got %g", section, key, e->min, e->max, v);
            return false;
        }
        *(double *)dst = v;
        if (e->set_flag)
            *(bool *)((char *)c + e->set_flag) = true;
        return true;
    }
    }
    return false;
}

typedef struct {
    cfg *c;
    char msg[400];
} parse_state;

static int handler(void *user, const char *section, const char *key, const char *val)
{
    parse_state *p = user;
    return set_key(p->c, section, key, val, p->msg, sizeof p->msg) ? 1 : 0;
}

static bool append_text(cfg *c, const char *s)
{
    size_t old = c->text ? strlen(c->text) : 0, add = strlen(s);
    char *t = realloc(c->text, old + add + 1);
    if (!t)
        return false;
    memcpy(t + old, s, add + 1);
    c->text = t;
    return true;
}

bool cfg_load(cfg *c, const char *path, char *err, size_t cap)
{
    snprintf(c->path, sizeof c->path, "%s", path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, cap, "config: %s: %s", path, strerror(errno));
        return false;
    }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf - 1, f)) > 0) {
        buf[n] = '\0';
        if (strlen(buf) != n) {
            fclose(f);
            snprintf(err, cap, "config: %s: contains a NUL byte (not a text file)", path);
            return false;
        }
        if (!append_text(c, buf)) {
            fclose(f);
            snprintf(err, cap, "config: %s: out of memory", path);
            return false;
        }
    }
    fclose(f);
    parse_state p = {c, ""};
    int line = ini_parse(path, handler, &p);
    if (line != 0) {
        if (line < 0)
            snprintf(err, cap, "config: %s: cannot read the file", path);
        else if (p.msg[0])
            snprintf(err, cap, "config: %s:%d: %s", path, line, p.msg);
        else
            snprintf(err, cap, "config: %s:%d: syntax error (expected [section], key = value, "
                     "or a line of at most 200 characters)", path, line);
        return false;
    }
    return true;
}

bool cfg_set(cfg *c, const char *assignment, char *err, size_t cap)
{
    char sec[64], key[64];
    const char *dot = strchr(assignment, '.'), *eq = strchr(assignment, '=');
    if (!dot || !eq || dot > eq || (size_t)(dot - assignment) >= sizeof sec ||
        (size_t)(eq - dot - 1) >= sizeof key) {
        snprintf(err, cap, "--set %s: expected section.key=value", assignment);
        return false;
    }
    memcpy(sec, assignment, (size_t)(dot - assignment));
    sec[dot - assignment] = '\0';
    memcpy(key, dot + 1, (size_t)(eq - dot - 1));
    key[eq - dot - 1] = '\0';
    char msg[400];
    if (!set_key(c, sec, key, eq + 1, msg, sizeof msg)) {
        snprintf(err, cap, "--set %s: %s", assignment, msg);
        return false;
    }
    char line[600];
    snprintf(line, sizeof line, "\n; --set %s\n", assignment);
    append_text(c, line);
    return true;
}

bool cfg_check(const cfg *c, char *err, size_t cap)
{
    const char *why = NULL;
    bool files = strcmp(c->format, "csv") && strcmp(c->format, "text"); /* idx or npy */
    if (!c->layers[0])
        why = "[model] layers is required (e.g. layers = linear:512, relu, linear:10)";
    else if (!strcmp(c->format, "text") && !c->text_path[0])
        why = "[data] text (a file or a directory of text files) is required for format = text";
    else if (!strcmp(c->format, "text") && (strcmp(c->loss, "cross_entropy") || !strcmp(c->target, "input")))
        why = "format = text trains next-byte prediction: it needs loss = cross_entropy and target = labels";
    else if (!strcmp(c->format, "csv") && !c->train_csv[0])
        why = "[data] train is required for format = csv";
    else if (files && !c->train_images[0])
        why = "[data] train_images is required for format = idx or npy";
    else if (files && !c->train_labels[0] && strcmp(c->target, "input"))
        why = "[data] train_labels is required unless target = input";
    else if (!strcmp(c->target, "input") && !strcmp(c->loss, "cross_entropy"))
        why = "[data] target = input (an autoencoder) needs [train] loss = mse, bce or bce_sum";
    else if (!strcmp(c->target, "input") && !strcmp(c->format, "csv"))
        why = "[data] target = input is for format = idx or npy";
    else if (c->nesterov && (c->momentum <= 0 || c->dampening != 0))
        why = "[optim] nesterov needs momentum > 0 and dampening = 0";
    else if (!strcmp(c->monitor, "val_acc") && strcmp(c->loss, "cross_entropy"))
        why = "[train] monitor = val_acc needs loss = cross_entropy";
    else if (!strcmp(c->monitor, "val_acc") && c->val_fraction <= 0)
        why = "[train] monitor = val_acc needs [data] val_fraction > 0";
    if (why) {
        snprintf(err, cap, "config: %s: %s", c->path, why);
        return false;
    }
    return true;
}
