/* Declarations shared by the nabla command's files:
 *   nabla.c    main, train, eval, predict, info
 *   session.c  data, model, optimizer and schedule from a config (a session)
 *   model.c    the [model] layers parser
 *   lrfind.c   lr-find and check (sanity checks, memory estimate)
 *   report.c   report (HTML and SVG from a run folder)
 *   tune.c     tune (hyperparameter search) */
#ifndef NABLA_TOOLS_CLI_H
#define NABLA_TOOLS_CLI_H

#include "config.h"

#include <stdio.h>

typedef struct {
    nb_tensor *x, *y;
} data;

/* One run's objects, made from a config by session_open (which prints what
 * failed and returns nonzero) and freed by session_close. */
typedef struct session {
    const cfg *c;
    nb_ctx *ctx;
    data tr, te;
    data va;             /* format = text: the validation windows (else rows of tr by sp) */
    int64_t text_bytes;  /* format = text: the file's size */
    double unigram;      /* format = text: entropy of the validation bytes (nats) */
    nb_split sp;
    nb_norm norm;
    nb_module *model;
    int64_t classes;     /* model outputs per row */
    nb_optim *opt;
    nb_sched *sched;     /* NULL for a constant lr */
    nb_loader *ltr, *lval, *lte; /* lval, lte NULL without such rows */
} session;

int session_open(const cfg *c, session *s);
void session_close(session *s);

/* The result of `nabla train` as a function (tune runs many). quiet: no
 * progress output. Returns 0, or 1 after printing the error. */
typedef struct run_result {
    nb_train_result train;
    nb_eval_result test; /* NAN fields without test rows */
} run_result;
int run_train(const cfg *c, bool quiet, run_result *r);

/* Prints "nabla: what: <the context's error>"; returns 1. */
int fail(nb_ctx *ctx, const char *what);
/* Loads the config file and applies the --set arguments from argv[from] on. */
bool load_config(cfg *c, int argc, char **argv, int from, char *err, size_t cap);

bool ends_with(const char *s, const char *suf);
nb_tensor *read_any(nb_ctx *ctx, const cfg *c, const char *path);
bool csv_opts_from(const cfg *c, nb_csv_opts *o);
bool autoencoder(const cfg *c);
bool load_split(nb_ctx *ctx, const cfg *c, bool test, data *d);
bool has_test(const cfg *c);
int64_t features(const nb_tensor *x);
nb_loss_kind loss_kind(const cfg *c);
nb_norm_kind norm_kind(const cfg *c);
bool labels_ok(const cfg *c, const nb_tensor *y, int64_t classes, const char *what);
nb_ctx *make_ctx(const cfg *c);
nb_optim *make_optim(nb_ctx *ctx, const cfg *c, nb_module *m);
nb_sched *make_sched(nb_ctx *ctx, const cfg *c, nb_optim *opt, int64_t steps_per_epoch);
nb_module *build_model(nb_ctx *ctx, const cfg *c, const nb_tensor *x, int64_t *out_dim);

/* With [train] memory_limit_mb: measures a step's memory and picks the
 * batch size and accumulation steps that fit, keeping batch x accum. */
int plan_memory(const cfg *c, int64_t *batch, int64_t *accum);

/* commands (argv[1] is the command's name) */
int cmd_lr_find(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_tune(int argc, char **argv);

#endif
