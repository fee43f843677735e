/* Transfer learning on Fashion-MNIST: pretrain on classes 0-4, replace the
 * head, fine-tune on a few labelled images of classes 5-9, and compare with
 * the same model trained from scratch on the same rows for the same steps.
 *
 *   ./build/examples/transfer [cnn|mlp] [frozen|lowlr] [rows] [epochs] [pretrain_epochs]
 *
 * 1. pretrain: a body and a head "head_a" (5 outputs) on the 30,000
 *    training images of classes 0-4 (T-shirt, trouser, pullover, dress,
 *    coat), 1 epoch; saved to a checkpoint. The body: cnn (default) conv1
 *    1->16 3x3, relu, max-pool, conv2 16->32 3x3, relu, max-pool, flatten,
 *    with the head fc 1568->128, relu, out 128->5; or mlp: flatten, fc1
 *    784->256, relu, fc2 256->128, relu, with the head out 128->5.
 * 2. a new model with the same body and a new head "head_b" for classes 5-9
 *    (sandal, shirt, sneaker, bag, ankle boot; labels 5..9 -> 0..4) loads
 *    the checkpoint partially: the body loads, head_b is reported as skipped.
 * 3. fine-tune on `rows` (default 500) training images of classes 5-9 for
 *    `epochs` (default 20: 200 steps of 50) two ways: frozen (the body
 *    frozen with nb_module_freeze: only the head trains) and lowlr (the body
 *    at a tenth of the head's learning rate, two parameter groups); against
 *    the same model from a fresh initialisation.
 *
 * Prints the test accuracy on the 5,000 test images of classes 5-9, and
 * last `transfer finetune_acc=... scratch_acc=... steps=...` for the variant
 * named (default frozen). Exits 1 if that fine-tuning does not beat
 * training from scratch, 77 if the dataset package is not installed.
 *
 * Measured (2 threads, seed 1, 200 steps of 50 rows; 6.8 s in all):
 *
 *   body  rows   frozen   lowlr    scratch
 *   cnn    100   0.9090   0.9096   0.8960
 *   cnn    500   0.9442   0.9462   0.9240   (the default, run by ctest)
 *   cnn   2000   0.9520   0.9574   0.9452
 *   mlp    500   0.7722   0.8948   0.9172
 *
 * The MLP body does not transfer from clothes to shoes and bags (likely
 * because its units respond to whole clothing silhouettes, where the
 * convolutions' small filters, edges and textures, serve any of these
 * images). */
#include <nabla.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DIR "/usr/share/datasets/fashion-mnist/"
#define CLASSES 5

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A sequential of layers (NULL children are reported by nb_sequential_add). */
static nb_module *seq(nb_ctx *ctx, const char *name, nb_module *const *layers, size_t n)
{
    nb_module *m = nb_sequential(ctx, name);
    bool ok = m != NULL;
    for (size_t i = 0; i < n; i++) /* the sequential owns each child, also on failure */
        ok = (m ? nb_sequential_add(ctx, m, layers[i]) == NB_OK : (nb_module_free(ctx, layers[i]), false)) && ok;
    if (!ok) {
        nb_module_free(ctx, m);
        return NULL;
    }
    return m;
}

/* "body" then the head named `head` (see the top comment) */
static nb_module *model(nb_ctx *ctx, bool cnn, const char *head)
{
    nb_module *body, *top;
    if (cnn) {
        nb_conv_opts c = nb_conv_opts_default();
        c.padding[0] = c.padding[1] = 1;
        nb_pool_opts p = nb_pool_opts_default(2, 2);
        int64_t chw[3] = {1, 28, 28};
        nb_module *b[] = {
            nb_reshape_layer(ctx, NULL, 3, chw), /* [N, 28, 28] -> [N, 1, 28, 28] */
            nb_conv2d_layer(ctx, "conv1", 1, 16, 3, 3, &c, true),
            nb_activation(ctx, NULL, NB_ACT_RELU, 0),
            nb_max_pool_layer(ctx, NULL, &p),
            nb_conv2d_layer(ctx, "conv2", 16, 32, 3, 3, &c, true),
            nb_activation(ctx, NULL, NB_ACT_RELU, 0),
            nb_max_pool_layer(ctx, NULL, &p),
            nb_flatten_layer(ctx, NULL),
        };
        nb_module *h[] = {
            nb_linear(ctx, "fc", 32 * 7 * 7, 128, true),
            nb_activation(ctx, NULL, NB_ACT_RELU, 0),
            nb_linear(ctx, "out", 128, CLASSES, true),
        };
        body = seq(ctx, "body", b, sizeof b / sizeof *b);
        top = seq(ctx, head, h, sizeof h / sizeof *h);
    } else {
        nb_module *b[] = {
            nb_flatten_layer(ctx, NULL),
            nb_linear(ctx, "fc1", 784, 256, true),
            nb_activation(ctx, NULL, NB_ACT_RELU, 0),
            nb_linear(ctx, "fc2", 256, 128, true),
            nb_activation(ctx, NULL, NB_ACT_RELU, 0),
        };
        body = seq(ctx, "body", b, sizeof b / sizeof *b);
        top = nb_linear(ctx, head, 128, CLASSES, true);
    }
    nb_module *parts[] = {body, top};
    return seq(ctx, NULL, parts, 2);
}

/* Rows whose label is in [lo, lo + CLASSES), at most `limit` (0: all). */
static int64_t *rows_of(const nb_tensor *y, int lo, int64_t limit, int64_t *n)
{
    int64_t N = nb_numel(y), k = 0;
    int64_t *idx = malloc(sizeof *idx * (size_t)N);
    for (int64_t i = 0; idx && i < N && (limit <= 0 || k < limit); i++) {
        double v = nb_get(y, i);
        if (v >= lo && v < lo + CLASSES)
            idx[k++] = i;
    }
    *n = k;
    return idx;
}

/* Trains for `epochs` on rows idx (batch 50, seeded shuffle: every call
 * with the same rows sees the same batches); returns the optimizer steps. */
static int64_t fit(nb_ctx *ctx, nb_module *m, nb_optim *opt, const nb_tensor *x, const nb_tensor *y,
                   const int64_t *idx, int64_t n, const nb_norm *norm, int epochs)
{
    nb_loader_opts lo = nb_loader_opts_default();
    lo.batch_size = 50;
    lo.seed = 7;
    nb_loader *l = nb_loader_new(ctx, x, y, idx, n, norm, &lo);
    nb_train_opts to = nb_train_opts_default();
    to.epochs = epochs;
    nb_train_result res;
    int64_t before = nb_optim_steps(opt);
    nb_status st = l ? nb_train(ctx, m, opt, NULL, l, NULL, norm, &to, &res) : nb_last_status(ctx);
    nb_loader_free(ctx, l);
    return st == NB_OK ? nb_optim_steps(opt) - before : -1;
}

static double accuracy(nb_ctx *ctx, nb_module *m, const nb_tensor *x, const nb_tensor *y,
                       const int64_t *idx, int64_t n, const nb_norm *norm)
{
    nb_loader_opts lo = nb_loader_opts_default();
    lo.batch_size = 500;
    lo.shuffle = false;
    nb_loader *l = nb_loader_new(ctx, x, y, idx, n, norm, &lo);
    nb_eval_result ev;
    nb_status st = l ? nb_evaluate(ctx, m, l, NB_LOSS_CROSS_ENTROPY, 1, &ev) : nb_last_status(ctx);
    nb_loader_free(ctx, l);
    return st == NB_OK ? ev.acc : -1;
}

/* Adam; with body_lr >= 0 the body (body.*) gets its own group at that lr. */
static nb_optim *adam(nb_ctx *ctx, nb_module *m, double lr, double body_lr)
{
    nb_optim_opts oo = nb_optim_opts_default(NB_OPT_ADAM);
    oo.lr = lr;
    nb_optim *opt = nb_optim_new(ctx, &oo);
    if (!opt)
        return NULL;
    if (body_lr < 0) {
        if (nb_optim_add_module(ctx, opt, m, false) == NB_OK)
            return opt;
        nb_optim_free(ctx, opt);
        return NULL;
    }
    nb_param_list l;
    if (nb_module_params(ctx, m, &l) != NB_OK) {
        nb_optim_free(ctx, opt);
        return NULL;
    }
    nb_tensor *ps[2][16];
    const char *ns[2][16];
    int k[2] = {0, 0};
    for (int i = 0; i < l.n; i++) {
        int g = strncmp(l.items[i].name, "body.", 5) == 0 ? 0 : 1;
        if (l.items[i].is_buffer || k[g] == 16)
            continue;
        ps[g][k[g]] = l.items[i].tensor;
        ns[g][k[g]++] = l.items[i].name;
    }
    bool ok = nb_optim_add_group(ctx, opt, k[0], ps[0], ns[0], body_lr, -1) >= 0 &&
              nb_optim_add_group(ctx, opt, k[1], ps[1], ns[1], lr, -1) >= 0;
    nb_param_list_free(ctx, &l);
    if (!ok) {
        nb_optim_free(ctx, opt);
        return NULL;
    }
    return opt;
}

int main(int argc, char **argv)
{
    const char *body = argc > 1 ? argv[1] : "cnn", *variant = argc > 2 ? argv[2] : "frozen";
    int64_t rows = argc > 3 ? atoll(argv[3]) : 500;
    int epochs = argc > 4 ? atoi(argv[4]) : 20, pre_epochs = argc > 5 ? atoi(argv[5]) : 1;
    bool cnn = !strcmp(body, "cnn");
    if ((!cnn && strcmp(body, "mlp")) || (strcmp(variant, "frozen") && strcmp(variant, "lowlr")) ||
        rows <= 0 || epochs <= 0 || pre_epochs <= 0) {
        fprintf(stderr, "usage: transfer [cnn|mlp] [frozen|lowlr] [rows] [epochs] [pretrain_epochs]\n");
        return 2;
    }
    if (access(DIR "train-images-idx3-ubyte.gz", R_OK) != 0) {
        fprintf(stderr, "transfer: %s not found (apt-get install dataset-fashion-mnist)\n", DIR);
        return 77;
    }
    double t0 = now();
    nb_ctx_opts co = nb_ctx_opts_default();
    co.seed = 1;
    nb_ctx *ctx = nb_ctx_new(&co);
    nb_tensor *x = nb_idx_read(ctx, DIR "train-images-idx3-ubyte.gz");
    nb_tensor *y = nb_idx_read(ctx, DIR "train-labels-idx1-ubyte.gz");
    nb_tensor *tx = nb_idx_read(ctx, DIR "t10k-images-idx3-ubyte.gz");
    nb_tensor *ty = nb_idx_read(ctx, DIR "t10k-labels-idx1-ubyte.gz");
    if (!x || !y || !tx || !ty) {
        fprintf(stderr, "transfer: %s\n", nb_last_error(ctx));
        return 1;
    }
    /* classes 5-9 relabelled 0-4 (rows of classes 0-4 are never used with these) */
    nb_tensor *yb = nb_buffer(ctx, NB_U8, 1, y->shape), *tyb = nb_buffer(ctx, NB_U8, 1, ty->shape);
    if (!yb || !tyb)
        return 1;
    for (int64_t i = 0; i < nb_numel(y); i++)
        nb_set(yb, i, nb_get(y, i) >= CLASSES ? nb_get(y, i) - CLASSES : 0);
    for (int64_t i = 0; i < nb_numel(ty); i++)
        nb_set(tyb, i, nb_get(ty, i) >= CLASSES ? nb_get(ty, i) - CLASSES : 0);
    int64_t n_a, n_b, n_test;
    int64_t *rows_a = rows_of(y, 0, 0, &n_a), *rows_b = rows_of(y, CLASSES, rows, &n_b),
            *rows_test = rows_of(ty, CLASSES, 0, &n_test);
    if (!rows_a || !rows_b || !rows_test)
        return 1;

    /* 1. pretrain on classes 0-4 */
    char dir[] = "/tmp/nabla_transfer_XXXXXX", ckpt[64];
    if (!mkdtemp(dir)) {
        perror("transfer: mkdtemp");
        return 1;
    }
    snprintf(ckpt, sizeof ckpt, "%s/pretrained.safetensors", dir);
    int rc = 1;
    const char *names[3] = {"frozen", "lowlr", "scratch"};
    double acc[3] = {-1, -1, -1};
    int64_t steps[3] = {-1, -1, -1};
    nb_norm norm_a, norm_b;
    nb_module *pre = model(ctx, cnn, "head_a");
    nb_optim *opt = pre ? adam(ctx, pre, 1e-3, -1) : NULL;
    if (!opt || nb_norm_fit(ctx, x, rows_a, n_a, NB_NORM_GLOBAL, &norm_a) != NB_OK ||
        fit(ctx, pre, opt, x, y, rows_a, n_a, &norm_a, pre_epochs) < 0 ||
        nb_checkpoint_save(ctx, ckpt, pre, NULL, NULL, &norm_a, NULL, NULL) != NB_OK) {
        fprintf(stderr, "transfer: pretraining: %s\n", nb_last_error(ctx));
        goto out;
    }
    int64_t n_test_a;
    int64_t *rows_test_a = rows_of(ty, 0, 0, &n_test_a);
    double acc_a = rows_test_a ? accuracy(ctx, pre, tx, ty, rows_test_a, n_test_a, &norm_a) : -1;
    free(rows_test_a);
    printf("%s: pretrained on %lld images of classes 0-4 for %d epoch%s: test accuracy on classes "
           "0-4 %.4f (%.1f s)\n", body, (long long)n_a, pre_epochs, pre_epochs > 1 ? "s" : "", acc_a,
           now() - t0);
    nb_optim_free(ctx, opt);
    nb_module_free(ctx, pre);

    /* 2-3. fine-tune on a few images of classes 5-9; the normalisation comes
     * from those rows, as `nabla train` with init_from does */
    if (nb_norm_fit(ctx, x, rows_b, n_b, NB_NORM_GLOBAL, &norm_b) != NB_OK) {
        fprintf(stderr, "transfer: %s\n", nb_last_error(ctx));
        goto out;
    }
    for (int v = 0; v < 3; v++) {
        nb_module *m = model(ctx, cnn, "head_b");
        nb_optim *o = NULL;
        char *skipped = NULL;
        int frozen = 0;
        if (m && v < 2 &&
            nb_checkpoint_load(ctx, ckpt, m, NULL, NULL, NULL, NULL, true, &skipped) == NB_OK && v == 0)
            printf("partial load: skipped %s\n", skipped ? skipped : "nothing");
        nb_free_string(ctx, skipped);
        if (m && v == 0 && (frozen = nb_module_freeze(ctx, m, "body.*", true)) > 0)
            printf("frozen: %d parameters (body.*)\n", frozen);
        if (m && nb_last_status(ctx) == NB_OK)
            o = adam(ctx, m, 1e-3, v == 1 ? 1e-4 : -1);
        steps[v] = o ? fit(ctx, m, o, x, yb, rows_b, n_b, &norm_b, epochs) : -1;
        acc[v] = steps[v] >= 0 ? accuracy(ctx, m, tx, tyb, rows_test, n_test, &norm_b) : -1;
        nb_optim_free(ctx, o);
        nb_module_free(ctx, m);
        if (acc[v] < 0) {
            fprintf(stderr, "transfer: %s: %s\n", names[v], nb_last_error(ctx));
            goto out;
        }
        printf("%-8s %s: test accuracy on classes 5-9 %.4f (%lld steps on %lld images, %.1f s)\n",
               names[v],
               v == 0 ? "(body frozen, head lr 1e-3)   "
                      : v == 1 ? "(body lr 1e-4, head lr 1e-3)" : "(fresh weights, lr 1e-3)     ",
               acc[v], (long long)steps[v], (long long)n_b, now() - t0);
    }
    int pick = !strcmp(variant, "frozen") ? 0 : 1;
    printf("transfer finetune_acc=%.4f scratch_acc=%.4f steps=%lld\n", acc[pick], acc[2],
           (long long)steps[pick]);
    rc = acc[pick] > acc[2] ? 0 : 1;
    if (rc)
        fprintf(stderr, "transfer: fine-tuning (%s) did not beat training from scratch\n", variant);
out:
    remove(ckpt);
    rmdir(dir);
    free(rows_a);
    free(rows_b);
    free(rows_test);
    nb_ctx_free(ctx); /* the data, the normalisations, every persistent tensor */
    return rc;
}
