/* A small CNN (or the small ResNet) on Fashion-MNIST from C, the whole
 * pipeline: IDX files, a seeded split, normalisation, the prefetching loader
 * with random crops and flips, AdamW with one-cycle, early stopping, test.
 *
 *   ./build/examples/fashion_cnn [cnn|resnet] [epochs] [rows]
 *
 * rows limits the training rows (for a quick run). The shipped configs
 * configs/fashion_cnn.ini and fashion_resnet.ini train the same models from
 * the command line. Exit 77 if the dataset package is not installed. */
#include <nabla.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIR "/usr/share/datasets/fashion-mnist/"

static nb_module *small_cnn(nb_ctx *ctx)
{
    nb_conv_opts c = nb_conv_opts_default();
    c.padding[0] = c.padding[1] = 1;
    nb_pool_opts p = nb_pool_opts_default(2, 2);
    nb_module *m = nb_sequential(ctx, NULL);
    int64_t chw[3] = {1, 28, 28};
    nb_module *layers[] = {
        nb_reshape_layer(ctx, NULL, 3, chw), /* [N, 28, 28] -> [N, 1, 28, 28] */
        nb_conv2d_layer(ctx, "conv1", 1, 32, 3, 3, &c, true),
        nb_batch_norm_layer(ctx, "bn1", 32, 0.1, 1e-5, true),
        nb_activation(ctx, NULL, NB_ACT_RELU, 0),
        nb_max_pool_layer(ctx, NULL, &p),
        nb_conv2d_layer(ctx, "conv2", 32, 64, 3, 3, &c, true),
        nb_batch_norm_layer(ctx, "bn2", 64, 0.1, 1e-5, true),
        nb_activation(ctx, NULL, NB_ACT_RELU, 0),
        nb_max_pool_layer(ctx, NULL, &p),
        nb_dropout_layer(ctx, NULL, 0.25),
        nb_flatten_layer(ctx, NULL),
        nb_linear(ctx, "fc1", 64 * 7 * 7, 256, true),
        nb_activation(ctx, NULL, NB_ACT_RELU, 0),
        nb_dropout_layer(ctx, NULL, 0.4),
        nb_linear(ctx, "fc2", 256, 10, true),
    };
    for (size_t i = 0; i < sizeof layers / sizeof *layers; i++)
        if (nb_sequential_add(ctx, m, layers[i]) != NB_OK) {
            for (size_t j = i + 1; j < sizeof layers / sizeof *layers; j++)
                nb_module_free(ctx, layers[j]);
            nb_module_free(ctx, m);
            return NULL;
        }
    return m;
}

static nb_module *small_resnet(nb_ctx *ctx)
{
    nb_module *m = nb_sequential(ctx, NULL);
    int64_t chw[3] = {1, 28, 28};
    if (nb_sequential_add(ctx, m, nb_reshape_layer(ctx, NULL, 3, chw)) != NB_OK ||
        nb_sequential_add(ctx, m, nb_resnet(ctx, "resnet", 1, 10, 16, 1)) != NB_OK) {
        nb_module_free(ctx, m);
        return NULL;
    }
    return m;
}

int main(int argc, char **argv)
{
    bool resnet = argc > 1 && !strcmp(argv[1], "resnet");
    int epochs = argc > 2 ? atoi(argv[2]) : 3;
    int64_t rows = argc > 3 ? atoll(argv[3]) : 0;
    if (access(DIR "train-images-idx3-ubyte.gz", R_OK) != 0) {
        fprintf(stderr, "fashion_cnn: %s not found (apt-get install dataset-fashion-mnist)\n", DIR);
        return 77;
    }
    nb_ctx_opts co = nb_ctx_opts_default();
    co.seed = 1;
    nb_ctx *ctx = nb_ctx_new(&co);
    nb_tensor *x = nb_idx_read(ctx, DIR "train-images-idx3-ubyte.gz");
    nb_tensor *y = nb_idx_read(ctx, DIR "train-labels-idx1-ubyte.gz");
    nb_tensor *tx = nb_idx_read(ctx, DIR "t10k-images-idx3-ubyte.gz");
    nb_tensor *ty = nb_idx_read(ctx, DIR "t10k-labels-idx1-ubyte.gz");
    nb_module *model = resnet ? small_resnet(ctx) : small_cnn(ctx);
    if (!x || !y || !tx || !ty || !model) {
        fprintf(stderr, "fashion_cnn: %s\n", nb_last_error(ctx));
        return 1;
    }
    int64_t n = rows > 0 && rows < x->shape[0] ? rows : x->shape[0];
    nb_split sp;
    nb_norm norm;
    nb_split_make(ctx, n, 0.1, 1, &sp);
    nb_norm_fit(ctx, x, sp.train, sp.n_train, NB_NORM_GLOBAL, &norm);
    nb_loader_opts lo = nb_loader_opts_default();
    lo.batch_size = 128;
    lo.prefetch = true;
    lo.seed = 1;
    lo.crop_pad = 2;
    lo.hflip = true;
    nb_loader *train = nb_loader_new(ctx, x, y, sp.train, sp.n_train, &norm, &lo);
    lo.shuffle = lo.hflip = false;
    lo.crop_pad = 0;
    lo.batch_size = 256;
    nb_loader *val = nb_loader_new(ctx, x, y, sp.val, sp.n_val, &norm, &lo);
    nb_loader *test = nb_loader_new(ctx, tx, ty, NULL, 0, &norm, &lo);

    nb_optim_opts oo = nb_optim_opts_default(NB_OPT_ADAMW);
    oo.lr = resnet ? 3e-3 : 2e-3;
    oo.weight_decay = 0.05;
    nb_optim *opt = nb_optim_new(ctx, &oo);
    if (!train || !val || !test || !opt || nb_optim_add_module(ctx, opt, model, true) != NB_OK) {
        fprintf(stderr, "fashion_cnn: %s\n", nb_last_error(ctx));
        return 1;
    }
    nb_sched_opts so = nb_sched_opts_default(NB_SCHED_ONECYCLE);
    so.total = epochs * nb_loader_batches(train);
    nb_sched *sched = nb_sched_new(ctx, opt, &so);

    nb_train_opts to = nb_train_opts_default();
    to.epochs = epochs;
    to.sched_per_batch = true;
    to.monitor_acc = true;
    nb_train_result res;
    nb_eval_result ev;
    printf("%s: %lld parameters, %lld training rows\n", resnet ? "resnet" : "cnn",
           (long long)nb_module_param_count(model), (long long)sp.n_train);
    if (nb_train(ctx, model, opt, sched, train, val, &norm, &to, &res) != NB_OK ||
        nb_evaluate(ctx, model, test, NB_LOSS_CROSS_ENTROPY, 1, &ev) != NB_OK) {
        fprintf(stderr, "fashion_cnn: %s\n", nb_last_error(ctx));
        return 1;
    }
    printf("epochs %d, best val acc %.4f (epoch %d), test acc %.4f, %.0f samples/s\n", res.epochs_run,
           res.best_metric, res.best_epoch, ev.acc, res.samples_per_s);
    nb_loader_free(ctx, train);
    nb_loader_free(ctx, val);
    nb_loader_free(ctx, test);
    nb_sched_free(ctx, sched);
    nb_optim_free(ctx, opt);
    nb_module_free(ctx, model);
    nb_split_free(ctx, &sp);
    nb_ctx_free(ctx); /* frees the data, the normalisation and every other persistent tensor */
    return 0;
}
