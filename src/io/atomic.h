/* Atomic replacement of a file: write to a temporary file in the target's
 * folder, then fflush, fsync, close, rename over the target and fsync the
 * folder. Until commit succeeds the target is untouched; nb__afile_abort, or a failed
 * commit, removes the temporary file.
 *
 *     nb__afile f;
 *     if (nb__afile_open(ctx, &f, path, "safetensors") != NB_OK) return ...;
 *     st = nb__afile_write(ctx, &f, buf, n);        (any number of times)
 *     st = st == NB_OK ? nb__afile_commit(ctx, &f) : (nb__afile_abort(ctx, &f), st);
 *
 * Errors are NB_ERR_IO with "<what>: <path>: <action>: <strerror>" (NB_ERR_NOMEM
 * if the allocator fails). Every function leaves `f` closed on error, except
 * write, after which the caller must abort. */
#ifndef NB_IO_ATOMIC_H
#define NB_IO_ATOMIC_H

#include "core/internal.h"

#include <stdio.h>

typedef struct nb__afile {
    FILE *fp;
    char *tmp;        /* temporary path (heap block, also holding dir) */
    char *dir;        /* the target's folder, for its fsync */
    const char *path; /* the target, not owned */
    const char *what; /* message prefix, e.g. "safetensors" */
} nb__afile;

nb_status nb__afile_open(nb_ctx *ctx, nb__afile *f, const char *path, const char *what);
nb_status nb__afile_write(nb_ctx *ctx, nb__afile *f, const void *buf, size_t n);
nb_status nb__afile_commit(nb_ctx *ctx, nb__afile *f);
void nb__afile_abort(nb_ctx *ctx, nb__afile *f);

#endif
