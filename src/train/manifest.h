/* Private: the manifest builder shared by nb_manifest_json and the
 * checkpoints (which do not know the run's seed). Not installed. */
#ifndef NB_TRAIN_MANIFEST_H
#define NB_TRAIN_MANIFEST_H

#include "core/internal.h"

/* As nb_manifest_json; has_seed false writes "seed": null. */
char *nb__manifest_json(nb_ctx *ctx, bool has_seed, uint64_t seed, const char *config_text);

#endif
