/* A binarized MLP on Fashion-MNIST: every weight of the three linear layers
 * and every hidden activation is +1 or -1 in the forward pass, and it still
 * learns, because the straight-through estimator lets gradients through the
 * sign function (BinaryConnect / BinaryNet):
 *
 *   x -> blinear 784x512 -> batch norm -> sign -> blinear 512x512 -> batch norm
 *     -> sign -> blinear 512x10 -> batch norm -> logits
 *
 *   blinear   y = x sign(W)^T + b; the real-valued W is what Adam updates, the
 *             gradient reaching it is the one sign(W) received (STE, no clip)
 *   sign      y = sign(x); backward passes g where |x| <= 1 (hardtanh's
 *             gradient: a unit saturated far from 0 gets no gradient)
 *
 *   ./build/examples/binarized_mlp [epochs] [rows]
 *
 * configs/fashion_bnn.ini trains the same model with `nabla train`. Exit 77
 * if the dataset package is not installed. */
#include <nabla.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define DIR "/usr/share/datasets/fashion-mnist/"

static nb_module *bnn(nb_ctx *ctx)
{
    nb_module *m = nb_sequential(ctx, NULL);
    nb_module *layers[] = {
        nb_flatten_layer(ctx, NULL),
        nb_binary_linear(ctx, "fc1", 784, 512, true),
        nb_batch_norm_layer(ctx, "bn1", 512, 0.1, 1e-5, true),
        nb_activation(ctx, NULL, NB_ACT_SIGN, 1.0),
        nb_binary_linear(ctx, "fc2", 512, 512, true),
        nb_batch_norm_layer(ctx, "bn2", 512, 0.1, 1e-5, true),
        nb_activation(ctx, NULL, NB_ACT_SIGN, 1.0),
        nb_binary_linear(ctx, "fc3", 512, 10, true),
        nb_batch_norm_layer(ctx, "bn3", 10, 0.1, 1e-5, true),
    };
    nb_status st = NB_OK;
    for (size_t i = 0; i < sizeof layers / sizeof *layers; i++)
        st = st == NB_OK ? nb_sequential_add(ctx, m, layers[i]) : (nb_module_free(ctx, layers[i]), st);
    if (st != NB_OK) {
        nb_module_free(ctx, m);
        return NULL;
    }
    return m;
}

int main(int argc, char **argv)
{
    int epochs = argc > 1 ? atoi(argv[1]) : 10;
    int64_t rows = argc > 2 ? atoll(argv[2]) : 0;
    if (access(DIR "train-images-idx3-ubyte.gz", R_OK) != 0) {
        fprintf(stderr, "binarized_mlp: %s not found (apt-get install dataset-fashion-mnist)\n", DIR);
        return 77;
    }
    nb_ctx_opts co = nb_ctx_opts_default();
    co.seed = 1;
    nb_ctx *ctx = nb_ctx_new(&co);
    nb_tensor *x = nb_idx_read(ctx, DIR "train-images-idx3-ubyte.gz");
    nb_tensor *y = nb_idx_read(ctx, DIR "train-labels-idx1-ubyte.gz");
    nb_tensor *tx = nb_idx_read(ctx, DIR "t10k-images-idx3-ubyte.gz");
    nb_tensor *ty = nb_idx_read(ctx, DIR "t10k-labels-idx1-ubyte.gz");
    nb_module *model = bnn(ctx);
    if (!x || !y || !tx || !ty || !model) {
        fprintf(stderr, "binarized_mlp: %s\n", nb_last_error(ctx));
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
    nb_loader *train = nb_loader_new(ctx, x, y, sp.train, sp.n_train, &norm, &lo);
    lo.shuffle = false;
    lo.batch_size = 256;
    nb_loader *val = nb_loader_new(ctx, x, y, sp.val, sp.n_val, &norm, &lo);
    nb_loader *test = nb_loader_new(ctx, tx, ty, NULL, 0, &norm, &lo);
    nb_optim_opts oo = nb_optim_opts_default(NB_OPT_ADAM);
    oo.lr = 3e-3;
    nb_optim *opt = nb_optim_new(ctx, &oo);
    if (!train || !val || !test || !opt || nb_optim_add_module(ctx, opt, model, false) != NB_OK) {
        fprintf(stderr, "binarized_mlp: %s\n", nb_last_error(ctx));
        return 1;
    }
    nb_sched_opts so = nb_sched_opts_default(NB_SCHED_COSINE);
    so.t_max = epochs * nb_loader_batches(train);
    nb_sched *sched = nb_sched_new(ctx, opt, &so);
    nb_train_opts to = nb_train_opts_default();
    to.epochs = epochs;
    to.sched_per_batch = true;
    to.monitor_acc = true;
    nb_train_result res;
    nb_eval_result ev;
    printf("binarized mlp: %lld binary weights, %lld training rows\n",
           (long long)(784 * 512 + 512 * 512 + 512 * 10), (long long)sp.n_train);
    if (!sched || nb_train(ctx, model, opt, sched, train, val, &norm, &to, &res) != NB_OK ||
        nb_evaluate(ctx, model, test, NB_LOSS_CROSS_ENTROPY, 1, &ev) != NB_OK) {
        fprintf(stderr, "binarized_mlp: %s\n", nb_last_error(ctx));
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
    nb_ctx_free(ctx);
    return 0;
}
