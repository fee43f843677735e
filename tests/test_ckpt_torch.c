/* Checkpoints and PyTorch, both ways (with tests/parity_ckpt.py):
 *   write DIR: a nabla model (fc1 20->16, tanh, fc2 16->3) after one Adam
 *     step is saved with nb_checkpoint_save; a batch and nabla's outputs go
 *     to DIR/batch.npy and DIR/out_nabla.npy. Python loads the checkpoint into
 *     torch.nn and must reproduce the outputs.
 *   read DIR: Python has written DIR/torch.safetensors (a torch model's
 *     state_dict) and DIR/out_torch.npy; nabla loads the weights into the same
 *     model and must give torch's outputs within 1e-5. */
#include <nabla.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

static nb_module *model(nb_ctx *ctx)
{
    nb_module *m = nb_sequential(ctx, NULL);
    nb_sequential_add(ctx, m, nb_linear(ctx, "fc1", 20, 16, true));
    nb_sequential_add(ctx, m, nb_activation(ctx, NULL, NB_ACT_TANH, 0));
    nb_sequential_add(ctx, m, nb_linear(ctx, "fc2", 16, 3, true));
    return m;
}

static int die(nb_ctx *ctx, const char *what)
{
    fprintf(stderr, "test_ckpt_torch: %s: %s\n", what, nb_last_error(ctx));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "write") && strcmp(argv[1], "read"))) {
        fprintf(stderr, "usage: test_ckpt_torch write|read DIR\n");
        return 2;
    }
    char path[1024];
    nb_ctx_opts o = nb_ctx_opts_default();
    o.seed = 12;
    nb_ctx *ctx = nb_ctx_new(&o);
    nb_module *m = model(ctx);
    if (!m)
        return die(ctx, "model");
    if (!strcmp(argv[1], "write")) {
        nb_tensor *x = nb_buffer(ctx, NB_F32, NB_SHAPE(8, 20));
        nb_fill_normal(ctx, x, 0, 1);
        /* one Adam step, so the file carries optimizer state too */
        nb_optim *opt = nb_optim_new(ctx, &(nb_optim_opts){.kind = NB_OPT_ADAM, .lr = 1e-2,
                                                            .beta1 = 0.9, .beta2 = 0.999,
                                                            .eps = 1e-8});
        if (!opt || nb_optim_add_module(ctx, opt, m, false) != NB_OK)
            return die(ctx, "optim");
        nb_tensor *l = nb_sum(ctx, nb_square(ctx, nb_module_forward(ctx, m, x)), 0, NULL, false);
        if (!l || nb_backward(ctx, l) != NB_OK || nb_optim_step(ctx, opt) != NB_OK)
            return die(ctx, "step");
        nb_arena_reset(ctx);
        nb_set_grad_enabled(ctx, false);
        nb_tensor *y = nb_module_forward(ctx, m, x);
        snprintf(path, sizeof path, "%s/nabla.safetensors", argv[2]);
        nb_ckpt_info info = {1, 1, 0.5, 1, 0};
        if (nb_checkpoint_save(ctx, path, m, opt, NULL, NULL, &info, "[train]\nepochs = 1\n") != NB_OK)
            return die(ctx, "save");
        snprintf(path, sizeof path, "%s/batch.npy", argv[2]);
        if (nb_npy_write(ctx, path, x) != NB_OK)
            return die(ctx, "npy");
        snprintf(path, sizeof path, "%s/out_nabla.npy", argv[2]);
        if (!y || nb_npy_write(ctx, path, y) != NB_OK)
            return die(ctx, "npy");
        nb_optim_free(ctx, opt);
        printf("test_ckpt_torch: wrote %s/nabla.safetensors and the batch\n", argv[2]);
    } else {
        snprintf(path, sizeof path, "%s/torch.safetensors", argv[2]);
        if (nb_checkpoint_load(ctx, path, m, NULL, NULL, NULL, NULL, false, NULL) != NB_OK)
            return die(ctx, "load");
        snprintf(path, sizeof path, "%s/batch.npy", argv[2]);
        nb_tensor *x = nb_npy_read(ctx, path);
        snprintf(path, sizeof path, "%s/out_torch.npy", argv[2]);
        nb_tensor *want = nb_npy_read(ctx, path);
        nb_set_grad_enabled(ctx, false);
        nb_tensor *y = x && want ? nb_module_forward(ctx, m, x) : NULL;
        if (!y)
            return die(ctx, "forward");
        double err = 0, scale = 1e-30;
        for (int64_t i = 0; i < nb_numel(y); i++) {
            err = fmax(err, fabs(nb_get(y, i) - nb_get(want, i)));
            scale = fmax(scale, fabs(nb_get(want, i)));
        }
        printf("test_ckpt_torch: torch weights in nabla: outputs within %.2e relative\n", err / scale);
        if (!(err / scale <= 1e-5))
            return 1;
    }
    nb_module_free(ctx, m);
    nb_ctx_free(ctx);
    return 0;
}
