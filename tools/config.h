/* The `nabla` configuration: an INI file (parsed by Debian's libinih), one
 * schema table that says each key's section, type and valid range, and
 * `--set section.key=value` overrides checked by the same table. */
#ifndef NABLA_TOOLS_CONFIG_H
#define NABLA_TOOLS_CONFIG_H

#include <nabla.h>

#define CFG_PATH 512

typedef struct cfg {
    /* [data] */
    char format[16];
    char train_images[CFG_PATH], train_labels[CFG_PATH], test_images[CFG_PATH], test_labels[CFG_PATH];
    char train_csv[CFG_PATH], test_csv[CFG_PATH], label[64];
    char text_path[CFG_PATH]; /* format = text: a file or a directory of text files */
    int64_t context, stride;  /* text windows: bytes per row; start every stride (0: context) */
    bool header;
    double val_fraction;
    char normalize[16];
    char target[16]; /* labels | input (autoencoder) */
    int64_t batch_size;
    bool shuffle, drop_last, prefetch;
    int64_t crop_pad;
    bool hflip;
    double erase_p;
    /* [model] */
    char layers[1024];
    char init[32];
    char init_from[CFG_PATH]; /* checkpoint to start from: tensors matching by name and shape */
    char freeze[256];         /* comma-separated name patterns (fnmatch) of parameters not trained */
    /* [optim] */
    char optim[16];
    double lr, weight_decay, momentum, dampening, beta1, beta2, eps, alpha, lr_decay,
        initial_accumulator;
    bool nesterov, amsgrad, centered, no_decay_1d;
    bool lr_set, wd_set, eps_set; /* given explicitly (else the optimizer's default) */
    /* [schedule] */
    char schedule[24];
    bool per_batch;
    int64_t step_size, t_max, warmup, total, patience, cooldown;
    double gamma, eta_min, max_lr, pct_start, div_factor, final_div_factor, factor, threshold,
        min_lr;
    char milestones[256], mode[8];
    /* [train] */
    int64_t epochs, accum_steps, early_stopping, top_k, threads;
    uint64_t seed;
    char loss[24], monitor[16], out[CFG_PATH], resume[CFG_PATH], progress[16];
    double clip_norm, clip_value, min_delta;
    bool restore_best;
    double memory_limit_mb;   /* nabla check: the largest batch that fits */
    /* [diag] */
    int64_t diag_every, hist_every, hist_bins, vanish_patience, spike_window;
    double vanish_ratio, explode_norm, explode_growth, spike_z;
    char on_nonfinite[8], on_vanishing[8], on_exploding[8], on_loss_spike[8];
    bool trace_nonfinite, curve;
    /* [tune] */
    char tune_method[16], tune_metric[16], tune_space[1024], tune_out[CFG_PATH];
    int64_t tune_trials, tune_min_epochs, tune_eta;
    /* bookkeeping */
    char path[CFG_PATH];
    char *text; /* the file's text and the overrides, for checkpoints */
} cfg;

void cfg_defaults(cfg *c);
/* Reads and checks a file; on error writes "config: FILE:LINE: ..." to err
 * and returns false. */
bool cfg_load(cfg *c, const char *path, char *err, size_t cap);
/* Applies one "section.key=value" override. */
bool cfg_set(cfg *c, const char *assignment, char *err, size_t cap);
/* Checks relations between keys (after overrides). */
bool cfg_check(const cfg *c, char *err, size_t cap);
void cfg_free(cfg *c);

#endif
