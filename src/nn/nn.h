/* Private layout of modules, shared by the layer files. */
#ifndef NB_NN_H
#define NB_NN_H

#include "core/internal.h"

#define NB__MOD_MAX_T 32 /* parameters and buffers per module */

typedef nb_tensor *(*nb__mod_fwd)(nb_ctx *ctx, nb_module *m, nb_tensor *x);
/* Re-initialise parameters; w/b NULL: the layer's own default. */
typedef nb_status (*nb__mod_reset)(nb_ctx *ctx, nb_module *m, const nb_init *w, const nb_init *b);

struct nb_module {
    const char *kind;
    char *name; /* heap copy, or NULL */
    nb__mod_fwd forward;
    nb__mod_reset reset;
    bool training;
    int n_children, cap_children;
    nb_module **children;
    int n_t;
    nb_tensor *t[NB__MOD_MAX_T];
    const char *t_name[NB__MOD_MAX_T]; /* static strings: "weight", "bias", ... */
    bool t_buffer[NB__MOD_MAX_T];
    double f[4]; /* layer settings */
    int64_t i[4];
};

/* A new module of `kind` (heap, zeroed, training mode) or NULL + error. */
nb_module *nb__module_new(nb_ctx *ctx, const char *kind, const char *name, nb__mod_fwd fwd);
/* Adds a persistent tensor to m (param, or buffer when buffer is true). */
nb_tensor *nb__module_add(nb_ctx *ctx, nb_module *m, const char *tname, bool buffer, nb_dtype dt,
                          int ndim, const int64_t *shape);

/* What error messages call a layer: its name, else its kind. */
static inline const char *nb__label(const nb_module *m) { return m->name ? m->name : m->kind; }

/* Runs m's children in order on x (a sequential's forward), naming each
 * child as the running layer for diagnostics and calling the observer. */
nb_tensor *nb__seq_run(nb_ctx *ctx, nb_module *m, nb_tensor *x);

/* True when m is an embedding layer (its table is t[0], padding index i[2]). */
bool nb__is_embedding(const nb_module *m);
/* An embedding followed by a recurrent layer that nb__seq_run may run as one:
 * ids [N, T] (batch_first) or [T, N] of integers, more ids than table rows. */
bool nb__rnn_fuses(const nb_module *emb, const nb_module *rnn, const nb_tensor *ids);
/* rnn(emb(ids)) with zero initial states, layer 0's input projection taken
 * over the embedding table (src/nn/rnn.c). */
nb_tensor *nb__rnn_forward_ids(nb_ctx *ctx, nb_module *rnn, const nb_module *emb, nb_tensor *ids);

#endif
