/* A VAE's latent layer.
 *   mu = x Wmu^T + bmu,  logvar = x Wlv^T + blv     (children "mu", "logvar")
 *   z  = mu + exp(logvar / 2) eps,  eps ~ N(0, 1)   (nb_gaussian_sample)
 *   adds beta KL(q(z|x) || N(0, 1)), averaged over the batch, with nb_add_loss
 * z is sampled in evaluation mode too: the loss it then reports is a
 * one-sample estimate of the negative ELBO, which is what a VAE is judged by.
 * The layers after it in a sequential are the decoder (nb_module_forward on
 * them alone decodes z drawn from the prior). */
#include "nn/nn.h"

#include <math.h>

static nb_tensor *gaussian_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    nb_tensor *mu = nb_module_forward(ctx, m->children[0], x);
    nb_tensor *lv = nb_module_forward(ctx, m->children[1], x);
    nb_tensor *kl = nb_kl_normal(ctx, mu, lv, NB_REDUCE_MEAN);
    if (!kl || nb_add_loss(ctx, m->f[0] == 1 ? kl : nb_mul_scalar(ctx, kl, m->f[0])) != NB_OK)
        return NULL;
    return nb_gaussian_sample(ctx, mu, lv);
}

nb_module *nb_gaussian_layer(nb_ctx *ctx, const char *name, int64_t in, int64_t latent, double beta)
{
    if (ctx && (in < 1 || latent < 1 || !(beta >= 0) || !isfinite(beta))) {
        nb__err(ctx, NB_ERR_ARG,
                "gaussian: needs positive sizes and a finite beta >= 0, got in %lld, latent %lld, beta %g",
                (long long)in, (long long)latent, beta);
        return NULL;
    }
    nb_module *m = nb__module_new(ctx, "gaussian", name, gaussian_fwd);
    if (!m)
        return NULL;
    m->i[0] = in;
    m->i[1] = latent;
    m->f[0] = beta;
    if (nb_sequential_add(ctx, m, nb_linear(ctx, "mu", in, latent, true)) != NB_OK ||
        nb_sequential_add(ctx, m, nb_linear(ctx, "logvar", in, latent, true)) != NB_OK) {
        nb_module_free(ctx, m);
        return NULL;
    }
    return m;
}
