/* A generative adversarial network on Fashion-MNIST, with nabla's
 * mode-collapse detector watching it.
 *
 *   generator      z [64] ~ N(0, I) -> 256 -> 512 -> 784, LeakyReLU(0.2), sigmoid out
 *   discriminator  784 -> 512 -> 256 -> 1 logit, LeakyReLU(0.2)
 *   each batch     D step: BCE(D(x), 1) + BCE(D(detach(G(z))), 0), update D only
 *                  G step: BCE(D(G(z)), 1) (the non-saturating loss), update G only
 *   optimizers     two Adams (beta1 0.5), one per network
 *
 * The detector: a small classifier trained first on the real images (it is
 * only a fixed yardstick) labels 1,000 generated images each epoch; the
 * entropy of its predicted classes and the mean pairwise distance between
 * the images are compared with the same numbers for 1,000 real images
 * (nb_diversity_measure, nb_collapse_check). When either falls below half of
 * the real data's in two epochs running (patience 2: a generator fresh from
 * its random start has not spread out yet), the NB_ALARM_MODE_COLLAPSE alarm
 * fires, is printed and is appended to OUT/alarms.csv. A 64-sample grid is saved every epoch to
 * OUT/gan_epoch_NN.png (the same z each time).
 *
 *   ./build/examples/gan [--epochs N] [--rows N] [--out DIR] [--g-lr X] [--d-lr X] [--seed S]
 *
 * Defaults: 10 epochs, all 60,000 images, generator lr 2e-3, discriminator lr
 * 2e-4 (measured: with 2e-4 for both, the first epochs' samples are nearly
 * one image, mean pairwise distance 2.4 against 11.4 for real images). A
 * generator far stronger than its critic (--d-lr 2e-6) collapses to a single
 * image, and the alarm fires. The last line is machine-readable:
 *   gan epochs=E collapse_alarms=A entropy=H pairwise=P real_entropy=H0 real_pairwise=P0
 * Exit 77 if the dataset package is not installed. */
#include <nabla.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIR "/usr/share/datasets/fashion-mnist/"
#define ZDIM 64
#define PROBE 1000 /* images per diversity measurement */

typedef struct {
    int epochs;
    int64_t rows;
    const char *out;
    double g_lr, d_lr;
    uint64_t seed;
} args;

static nb_module *mlp(nb_ctx *ctx, const char *name, const int64_t *w, int n, nb_act last)
{
    nb_module *m = nb_sequential(ctx, name);
    nb_status st = m ? NB_OK : NB_ERR_NOMEM;
    for (int i = 0; i + 1 < n && st == NB_OK; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "fc%d", i + 1);
        st = nb_sequential_add(ctx, m, nb_linear(ctx, nm, w[i], w[i + 1], true));
        if (st == NB_OK && (i + 2 < n || last != NB_ACT_IDENTITY))
            st = nb_sequential_add(ctx, m, nb_activation(ctx, NULL, i + 2 < n ? NB_ACT_LEAKY_RELU : last,
                                                         0.2));
    }
    if (st != NB_OK) {
        nb_module_free(ctx, m);
        return NULL;
    }
    return m;
}

static nb_optim *adam(nb_ctx *ctx, nb_module *m, double lr)
{
    nb_optim_opts o = nb_optim_opts_default(NB_OPT_ADAM);
    o.lr = lr;
    o.beta1 = 0.5;
    nb_optim *opt = nb_optim_new(ctx, &o);
    if (opt && nb_optim_add_module(ctx, opt, m, false) != NB_OK) {
        nb_optim_free(ctx, opt);
        return NULL;
    }
    return opt;
}

/* The yardstick: a 784-256-10 classifier, two epochs on the training rows. */
static nb_module *train_classifier(nb_ctx *ctx, nb_loader *labelled)
{
    const int64_t w[] = {784, 256, 10};
    nb_module *m = nb_sequential(ctx, NULL);
    nb_module *body = mlp(ctx, "body", w, 3, NB_ACT_IDENTITY);
    if (nb_sequential_add(ctx, m, nb_flatten_layer(ctx, NULL)) != NB_OK ||
        nb_sequential_add(ctx, m, body) != NB_OK) {
        nb_module_free(ctx, m);
        return NULL;
    }
    nb_optim *opt = adam(ctx, m, 1e-3);
    nb_train_opts to = nb_train_opts_default();
    to.epochs = 2;
    nb_train_result res;
    nb_status st = opt ? nb_train(ctx, m, opt, NULL, labelled, NULL, NULL, &to, &res) : NB_ERR_NOMEM;
    nb_optim_free(ctx, opt);
    if (st != NB_OK) {
        nb_module_free(ctx, m);
        return NULL;
    }
    printf("classifier for the detector: train loss %.3f after 2 epochs\n", res.train_loss);
    return m;
}

/* n generated images [n, 28, 28] from z (or fresh draws when z is NULL) */
static nb_tensor *generate(nb_ctx *ctx, nb_module *g, int64_t n, nb_tensor *z)
{
    if (!z) {
        z = nb_empty(ctx, NB_F32, 2, (int64_t[]){n, ZDIM});
        if (!z || nb_fill_normal(ctx, z, 0, 1) != NB_OK)
            return NULL;
    }
    return nb_reshape(ctx, nb_module_forward(ctx, g, z), 3, (int64_t[]){n, 28, 28});
}

static bool parse(int argc, char **argv, args *a)
{
    *a = (args){10, 0, ".", 2e-3, 2e-4, 1};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--epochs"))
            a->epochs = atoi(v);
        else if (!strcmp(k, "--rows"))
            a->rows = atoll(v);
        else if (!strcmp(k, "--out"))
            a->out = v;
        else if (!strcmp(k, "--g-lr"))
            a->g_lr = atof(v);
        else if (!strcmp(k, "--d-lr"))
            a->d_lr = atof(v);
        else if (!strcmp(k, "--seed"))
            a->seed = strtoull(v, NULL, 10);
        else
            return false;
    }
    return argc % 2 == 1 && a->epochs > 0 && a->g_lr > 0 && a->d_lr > 0;
}

int main(int argc, char **argv)
{
    args A;
    if (!parse(argc, argv, &A)) {
        fprintf(stderr, "usage: gan [--epochs N] [--rows N] [--out DIR] [--g-lr X] [--d-lr X] [--seed S]\n");
        return 2;
    }
    if (access(DIR "train-images-idx3-ubyte.gz", R_OK) != 0) {
        fprintf(stderr, "gan: %s not found (apt-get install dataset-fashion-mnist)\n", DIR);
        return 77;
    }
    nb_ctx_opts co = nb_ctx_opts_default();
    co.seed = A.seed;
    nb_ctx *ctx = nb_ctx_new(&co);
    nb_tensor *x = nb_idx_read(ctx, DIR "train-images-idx3-ubyte.gz");
    nb_tensor *y = nb_idx_read(ctx, DIR "train-labels-idx1-ubyte.gz");
    if (!x || !y) {
        fprintf(stderr, "gan: %s\n", nb_last_error(ctx));
        return 1;
    }
    int64_t n = A.rows > 0 && A.rows < x->shape[0] ? A.rows : x->shape[0];
    nb_split sp;
    nb_norm norm; /* pixels to [0, 1], the generator's sigmoid range */
    nb_split_make(ctx, n, 0.0, A.seed, &sp);
    nb_norm_fit(ctx, x, sp.train, sp.n_train, NB_NORM_RANGE, &norm);
    nb_loader_opts lo = nb_loader_opts_default();
    lo.batch_size = 128;
    lo.shuffle = true;
    lo.drop_last = true;
    lo.seed = A.seed;
    nb_loader *real = nb_loader_new(ctx, x, NULL, sp.train, sp.n_train, &norm, &lo);
    nb_loader *labelled = nb_loader_new(ctx, x, y, sp.train, sp.n_train, &norm, &lo);
    const int64_t gw[] = {ZDIM, 256, 512, 784}, dw[] = {784, 512, 256, 1};
    nb_module *G = mlp(ctx, "generator", gw, 4, NB_ACT_SIGMOID);
    nb_module *D = mlp(ctx, "discriminator", dw, 4, NB_ACT_IDENTITY);
    nb_optim *og = G ? adam(ctx, G, A.g_lr) : NULL, *od = D ? adam(ctx, D, A.d_lr) : NULL;
    nb_module *cls = real && labelled ? train_classifier(ctx, labelled) : NULL;
    char path[1024];
    snprintf(path, sizeof path, "%s/alarms.csv", A.out);
    nb_alarms *alarms = nb_alarms_new(ctx, path, true);
    if (!real || !og || !od || !cls || !alarms) {
        fprintf(stderr, "gan: %s\n", nb_last_error(ctx));
        return 1;
    }

    /* the reference: the diversity of PROBE real images */
    nb_diversity ref, now = {0};
    nb_arena_reset(ctx);
    nb_tensor *probe = nb_empty(ctx, NB_F32, 3, (int64_t[]){PROBE, 28, 28});
    for (int64_t i = 0; probe && i < PROBE * 784; i++) {
        int64_t row = sp.train[i / 784 % sp.n_train];
        nb_set(probe, i, (nb_get(x, row * 784 + i % 784) - nb_get(norm.mean, 0)) / nb_get(norm.std, 0));
    }
    nb_collapse *det = NULL;
    if (nb_diversity_measure(ctx, cls, probe, &ref) != NB_OK ||
        !(det = nb_collapse_new(ctx, &ref, &(nb_collapse_opts){0.5, 0.5, 2}))) {
        fprintf(stderr, "gan: %s\n", nb_last_error(ctx));
        return 1;
    }
    printf("real images: class entropy %.3f of %.3f nats, mean pairwise distance %.3f\n", ref.entropy,
           ref.entropy_max, ref.pairwise);
    nb_tensor *zfix = nb_buffer(ctx, NB_F32, 2, (int64_t[]){64, ZDIM});
    nb_fill_normal(ctx, zfix, 0, 1);

    nb_status st = NB_OK;
    int64_t step = 0;
    int epoch;
    for (epoch = 1; epoch <= A.epochs && st == NB_OK; epoch++) {
        double dsum = 0, gsum = 0;
        int64_t nb = 0;
        st = nb_loader_start(ctx, real, epoch - 1);
        for (;;) {
            nb_arena_reset(ctx);
            nb_tensor *xr;
            if (st != NB_OK || (st = nb_loader_next(ctx, real, &xr, NULL)) != NB_OK || !xr)
                break;
            int64_t B = xr->shape[0];
            nb_tensor *ones = nb_full(ctx, NB_F32, 2, (int64_t[]){B, 1}, 1.0);
            nb_tensor *zeros = nb_zeros(ctx, NB_F32, 2, (int64_t[]){B, 1});
            nb_tensor *fake = generate(ctx, G, B, NULL);
            /* discriminator: real -> 1, detached fake -> 0 */
            nb_optim_zero_grad(od);
            nb_tensor *ld = nb_add(ctx,
                nb_bce_with_logits(ctx, nb_module_forward(ctx, D, nb_flatten(ctx, xr, 1, -1)), ones, NB_REDUCE_MEAN),
                nb_bce_with_logits(ctx, nb_module_forward(ctx, D, nb_flatten(ctx, nb_detach(ctx, fake), 1, -1)),
                                   zeros, NB_REDUCE_MEAN));
            if (!ld || (st = nb_backward(ctx, ld)) != NB_OK || (st = nb_optim_step(ctx, od)) != NB_OK)
                break;
            /* generator: fool the updated discriminator; only G is stepped */
            nb_optim_zero_grad(og);
            nb_tensor *lg = nb_bce_with_logits(ctx, nb_module_forward(ctx, D, nb_flatten(ctx, fake, 1, -1)),
                                               ones, NB_REDUCE_MEAN);
            if (!lg || (st = nb_backward(ctx, lg)) != NB_OK || (st = nb_optim_step(ctx, og)) != NB_OK)
                break;
            dsum += nb_get(ld, 0), gsum += nb_get(lg, 0), nb++, step++;
            if (!isfinite(nb_get(ld, 0)) || !isfinite(nb_get(lg, 0))) {
                fprintf(stderr, "gan: non-finite loss at epoch %d, step %lld\n", epoch, (long long)step);
                st = NB_ERR_NUMERIC;
            }
        }
        if (st != NB_OK)
            break;
        /* diversity of fresh samples, and this epoch's grid */
        bool grad = nb_set_grad_enabled(ctx, false), collapsed = false, fired = false;
        nb_arena_reset(ctx);
        nb_tensor *s = generate(ctx, G, PROBE, NULL);
        st = s ? nb_diversity_measure(ctx, cls, s, &now) : nb_last_status(ctx);
        if (st == NB_OK)
            st = nb_collapse_check(ctx, det, &now, epoch, step, alarms, &collapsed, &fired);
        nb_tensor *grid = st == NB_OK ? generate(ctx, G, 64, zfix) : NULL;
        snprintf(path, sizeof path, "%s/gan_epoch_%02d.png", A.out, epoch);
        if (st == NB_OK)
            st = grid ? nb_save_image_grid(ctx, path, grid, 8, 0, 1) : nb_last_status(ctx);
        nb_set_grad_enabled(ctx, grad);
        printf("epoch %d: D loss %.3f, G loss %.3f; samples: class entropy %.3f (%d classes), "
               "pairwise %.3f%s\n", epoch, dsum / (double)(nb ? nb : 1), gsum / (double)(nb ? nb : 1),
               now.entropy, now.classes_seen, now.pairwise, collapsed ? "  COLLAPSED" : "");
        fflush(stdout);
    }
    if (st != NB_OK) {
        fprintf(stderr, "gan: %s\n", nb_last_status(ctx) ? nb_last_error(ctx) : "training diverged");
        return 1;
    }
    printf("gan epochs=%d collapse_alarms=%d entropy=%.4f pairwise=%.4f real_entropy=%.4f "
           "real_pairwise=%.4f\n", epoch - 1, nb_alarms_count(alarms, NB_ALARM_MODE_COLLAPSE),
           now.entropy, now.pairwise, ref.entropy, ref.pairwise);
    nb_collapse_free(ctx, det);
    nb_alarms_free(ctx, alarms);
    nb_module_free(ctx, cls);
    nb_optim_free(ctx, og);
    nb_optim_free(ctx, od);
    nb_module_free(ctx, G);
    nb_module_free(ctx, D);
    nb_loader_free(ctx, real);
    nb_loader_free(ctx, labelled);
    nb_split_free(ctx, &sp);
    nb_ctx_free(ctx);
    return 0;
}
