/* A variational autoencoder on Fashion-MNIST from C.
 *
 *   encoder  784 -> 512 (ReLU) -> gaussian latent: mu, logvar [20]
 *   z        mu + exp(logvar / 2) eps              (reparameterization trick)
 *   decoder  20 -> 512 (ReLU) -> 784 logits (Bernoulli pixels in [0, 1])
 *   loss     BCE summed over the 784 pixels + KL(q(z|x) || N(0, I)) per image:
 *            the negative evidence lower bound, in nats per image
 *
 *   ./build/examples/vae [epochs] [rows] [out_dir]
 *
 * After each epoch it prints the test set's negative ELBO (lower is better),
 * then writes out_dir/vae_reconstructions.png (rows of 8 test images above
 * their reconstructions) and out_dir/vae_samples.png (64 decodings of z drawn
 * from the prior). configs/fashion_vae.ini trains the same model with
 * `nabla train`. Exit 77 if the dataset package is not installed. */
#include <nabla.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIR "/usr/share/datasets/fashion-mnist/"
#define LATENT 20

static nb_module *vae(nb_ctx *ctx, nb_module **decoder)
{
    nb_module *m = nb_sequential(ctx, NULL), *dec = nb_sequential(ctx, "decoder");
    nb_module *layers[] = {
        nb_flatten_layer(ctx, NULL),
        nb_linear(ctx, "enc", 784, 512, true),
        nb_activation(ctx, NULL, NB_ACT_RELU, 0),
        nb_gaussian_layer(ctx, "latent", 512, LATENT, 1.0),
    };
    nb_module *dlayers[] = {
        nb_linear(ctx, "fc1", LATENT, 512, true),
        nb_activation(ctx, NULL, NB_ACT_RELU, 0),
        nb_linear(ctx, "fc2", 512, 784, true),
    };
    nb_status st = NB_OK;
    for (size_t i = 0; i < sizeof layers / sizeof *layers; i++)
        st = st == NB_OK ? nb_sequential_add(ctx, m, layers[i]) : (nb_module_free(ctx, layers[i]), st);
    for (size_t i = 0; i < sizeof dlayers / sizeof *dlayers; i++)
        st = st == NB_OK ? nb_sequential_add(ctx, dec, dlayers[i]) : (nb_module_free(ctx, dlayers[i]), st);
    st = st == NB_OK ? nb_sequential_add(ctx, m, dec) : (nb_module_free(ctx, dec), st);
    if (st != NB_OK) {
        nb_module_free(ctx, m);
        return NULL;
    }
    *decoder = dec;
    return m;
}

typedef struct {
    double last;
    bool monotonic;
} progress;

static void on_epoch(const nb_epoch_info *e, void *user)
{
    progress *p = user;
    if (e->epoch > 1 && !(e->val_loss < p->last))
        p->monotonic = false;
    p->last = e->val_loss;
    printf("epoch %d: train -ELBO %.2f, test -ELBO %.2f nats/image, %.1f s\n", e->epoch,
           e->train_loss, e->val_loss, e->seconds);
    fflush(stdout);
}

/* Reconstructions of the first 32 test images and 64 samples from the prior. */
static nb_status pictures(nb_ctx *ctx, nb_module *model, nb_module *dec, nb_loader *test,
                          const char *dir)
{
    char path[1024];
    nb_tensor *x = NULL;
    bool grad = nb_set_grad_enabled(ctx, false);
    nb_module_train(model, false);
    nb_arena_reset(ctx);
    nb_status st = nb_loader_start(ctx, test, 0);
    if (st == NB_OK)
        st = nb_loader_next(ctx, test, &x, NULL);
    if (st == NB_OK) {
        nb_tensor *in = nb_slice(ctx, x, 0, 0, 32, 1);
        nb_tensor *rec = nb_reshape(ctx, nb_sigmoid(ctx, nb_module_forward(ctx, model, in)), 3,
                                    (int64_t[]){32, 28, 28});
        nb_take_added_loss(ctx); /* the KL term the latent layer added */
        nb_tensor *rows[8];
        for (int r = 0; r < 4 && rec; r++) {
            rows[2 * r] = nb_slice(ctx, in, 0, 8 * r, 8 * r + 8, 1);
            rows[2 * r + 1] = nb_slice(ctx, rec, 0, 8 * r, 8 * r + 8, 1);
        }
        snprintf(path, sizeof path, "%s/vae_reconstructions.png", dir);
        nb_tensor *grid = rec ? nb_concat(ctx, 8, rows, 0) : NULL;
        st = grid ? nb_save_image_grid(ctx, path, grid, 8, 0, 1) : nb_last_status(ctx);
    }
    if (st == NB_OK) {
        nb_tensor *z = nb_empty(ctx, NB_F32, 2, (int64_t[]){64, LATENT});
        st = z ? nb_fill_normal(ctx, z, 0, 1) : nb_last_status(ctx);
        nb_tensor *s = st == NB_OK ? nb_sigmoid(ctx, nb_module_forward(ctx, dec, z)) : NULL;
        s = s ? nb_reshape(ctx, s, 3, (int64_t[]){64, 28, 28}) : NULL;
        snprintf(path, sizeof path, "%s/vae_samples.png", dir);
        if (st == NB_OK)
            st = s ? nb_save_image_grid(ctx, path, s, 8, 0, 1) : nb_last_status(ctx);
    }
    nb_set_grad_enabled(ctx, grad);
    return st;
}

int main(int argc, char **argv)
{
    int epochs = argc > 1 ? atoi(argv[1]) : 10;
    int64_t rows = argc > 2 ? atoll(argv[2]) : 0;
    const char *dir = argc > 3 ? argv[3] : ".";
    if (access(DIR "train-images-idx3-ubyte.gz", R_OK) != 0) {
        fprintf(stderr, "vae: %s not found (apt-get install dataset-fashion-mnist)\n", DIR);
        return 77;
    }
    nb_ctx_opts co = nb_ctx_opts_default();
    co.seed = 1;
    nb_ctx *ctx = nb_ctx_new(&co);
    nb_tensor *x = nb_idx_read(ctx, DIR "train-images-idx3-ubyte.gz");
    nb_tensor *tx = nb_idx_read(ctx, DIR "t10k-images-idx3-ubyte.gz");
    nb_module *dec = NULL, *model = vae(ctx, &dec);
    if (!x || !tx || !model) {
        fprintf(stderr, "vae: %s\n", nb_last_error(ctx));
        return 1;
    }
    int64_t n = rows > 0 && rows < x->shape[0] ? rows : x->shape[0];
    nb_split sp; /* the first n rows, all for training */
    nb_norm norm; /* (x - min) / (max - min): Bernoulli targets in [0, 1] */
    if (nb_split_make(ctx, n, 0.0, 1, &sp) != NB_OK ||
        nb_norm_fit(ctx, x, sp.train, sp.n_train, NB_NORM_RANGE, &norm) != NB_OK) {
        fprintf(stderr, "vae: %s\n", nb_last_error(ctx));
        return 1;
    }
    nb_loader_opts lo = nb_loader_opts_default();
    lo.batch_size = 128;
    lo.prefetch = true;
    lo.seed = 1;
    lo.shuffle = true;
    /* no targets: an autoencoder, the input is the target */
    nb_loader *train = nb_loader_new(ctx, x, NULL, sp.train, sp.n_train, &norm, &lo);
    lo.shuffle = false;
    lo.batch_size = 256;
    nb_loader *test = nb_loader_new(ctx, tx, NULL, NULL, 0, &norm, &lo);
    nb_optim_opts oo = nb_optim_opts_default(NB_OPT_ADAM);
    oo.lr = 1e-3;
    nb_optim *opt = nb_optim_new(ctx, &oo);
    if (!train || !test || !opt || nb_optim_add_module(ctx, opt, model, false) != NB_OK) {
        fprintf(stderr, "vae: %s\n", nb_last_error(ctx));
        return 1;
    }
    nb_train_opts to = nb_train_opts_default();
    to.epochs = epochs;
    to.loss = NB_LOSS_BCE_SUM;
    to.restore_best = false; /* the test set is watched, not selected on */
    progress pr = {INFINITY, true};
    to.on_epoch = on_epoch;
    to.user = &pr;
    nb_train_result res;
    printf("vae: %lld parameters, %lld training images\n", (long long)nb_module_param_count(model),
           (long long)n);
    if (nb_train(ctx, model, opt, NULL, train, test, &norm, &to, &res) != NB_OK ||
        pictures(ctx, model, dec, test, dir) != NB_OK) {
        fprintf(stderr, "vae: %s\n", nb_last_error(ctx));
        return 1;
    }
    printf("final test -ELBO %.2f nats/image (ELBO %.2f); improved every epoch: %s; %.0f images/s\n",
           pr.last, -pr.last, pr.monotonic ? "yes" : "no", res.samples_per_s);
    printf("wrote %s/vae_reconstructions.png and %s/vae_samples.png\n", dir, dir);
    nb_loader_free(ctx, train);
    nb_loader_free(ctx, test);
    nb_optim_free(ctx, opt);
    nb_module_free(ctx, model);
    nb_split_free(ctx, &sp);
    nb_ctx_free(ctx);
    return 0;
}
