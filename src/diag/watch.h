/* The training loop's diagnostics (nb_diag_opts in nabla.h): statistics,
 * histograms and alarms, called by nb_train at fixed points of a step:
 *
 *     nb__watch_begin(w, step)          before the forward (turns on the
 *                                       activation observer on statistics steps)
 *     ... forward, loss ...
 *     nb__watch_loss(w, loss, lv)       a non-finite loss: traced and alarmed
 *     ... backward (micro-batches) ...
 *     nb__watch_grads(w, ...)           before clipping and the update: norms,
 *                                       non-finite gradients, exploding,
 *                                       spikes, vanishing; returns the action
 *     ... optimizer step ...
 *     nb__watch_end(w, lr)              update ratios, CSV rows
 *
 * Every function returns the action the alarms ask for (NB_ACTION_WARN: go
 * on) or records an error (then the caller stops with ctx->err). */
#ifndef NB_DIAG_WATCH_H
#define NB_DIAG_WATCH_H

#include "core/internal.h"

typedef struct nb__watch nb__watch;

/* params: the model's registry (outlives the watch). out_dir may be NULL (no
 * files); append: continue the files of a resumed run. alarms: the log to
 * raise on (NULL: one is made, writing out_dir/alarms.csv). */
nb__watch *nb__watch_new(nb_ctx *ctx, const nb_diag_opts *o, nb_module *model,
                         const nb_param_list *params, const char *out_dir, bool append,
                         nb_alarms *alarms);
void nb__watch_free(nb_ctx *ctx, nb__watch *w);
nb_alarms *nb__watch_alarms(nb__watch *w);
int nb__watch_raised(const nb__watch *w);

void nb__watch_begin(nb_ctx *ctx, nb__watch *w, int epoch, int64_t step);
/* lv is not finite: traces the first non-finite op of the forward. */
nb_alarm_action nb__watch_loss(nb_ctx *ctx, nb__watch *w, double lv);
nb_alarm_action nb__watch_grads(nb_ctx *ctx, nb__watch *w, double lv);
nb_status nb__watch_end(nb_ctx *ctx, nb__watch *w, double lr, bool skipped);
/* The last alarm's message (for the error nb_train returns on a stop). */
const char *nb__watch_last(const nb__watch *w);
/* The last nb__watch_grads found NaN/Inf in the gradients. */
bool nb__watch_nonfinite(const nb__watch *w);

#endif
