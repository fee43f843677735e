/* Optimizers and schedules against PyTorch (tests/parity_optim.py): for each
 * configuration, a small MLP (6-5-3, tanh) from the same initial weights is
 * trained 50 steps on the same batches (cross-entropy); the file holds the
 * torch constructor expressions, the initial weights, the batches, the lr
 * used at every step and the final weights. Usage: test_optim OUT_FILE */
#include "dump.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define STEPS 50
#define NP 4

typedef struct {
    const char *torch_opt;   /* over `params` (or `groups`) */
    const char *torch_sched; /* over `opt`, or "" */
    nb_optim_opts o;
    nb_sched_opts s;
    bool sched, groups, sched_per_metric;
    double clip;             /* clip_grad_norm before the step (0: none) */
} config;

static config C(nb_optim_kind k)
{
    config c;
    memset(&c, 0, sizeof c);
    c.o = nb_optim_opts_default(k);
    c.torch_sched = "";
    return c;
}

static int make_configs(config *cs)
{
    int n = 0;
    config c;
    c = C(NB_OPT_SGD); c.o.lr = 0.1; c.torch_opt = "torch.optim.SGD(params, lr=0.1)"; cs[n++] = c;
    c = C(NB_OPT_SGD); c.o.lr = 0.1; c.o.momentum = 0.9;
    c.torch_opt = "torch.optim.SGD(params, lr=0.1, momentum=0.9)"; cs[n++] = c;
    c = C(NB_OPT_SGD); c.o.lr = 0.05; c.o.momentum = 0.8; c.o.dampening = 0.1; c.o.weight_decay = 1e-3;
    c.torch_opt = "torch.optim.SGD(params, lr=0.05, momentum=0.8, dampening=0.1, weight_decay=1e-3)"; cs[n++] = c;
    c = C(NB_OPT_SGD); c.o.lr = 0.05; c.o.momentum = 0.9; c.o.nesterov = true; c.o.weight_decay = 1e-2;
    c.torch_opt = "torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2)"; cs[n++] = c;
    c = C(NB_OPT_ADAM); c.o.lr = 1e-2; c.torch_opt = "torch.optim.Adam(params, lr=1e-2)"; cs[n++] = c;
    c = C(NB_OPT_ADAM); c.o.lr = 1e-2; c.o.amsgrad = true; c.o.weight_decay = 1e-2; c.o.beta1 = 0.8;
    c.o.beta2 = 0.99; c.o.eps = 1e-6;
    c.torch_opt = "torch.optim.Adam(params, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2, amsgrad=True)";
    cs[n++] = c;
    c = C(NB_OPT_ADAMW); c.o.lr = 1e-2; c.o.weight_decay = 0.1;
    c.torch_opt = "torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1)"; cs[n++] = c;
    c = C(NB_OPT_ADAMW); c.o.lr = 1e-2; c.o.amsgrad = true;
    c.torch_opt = "torch.optim.AdamW(params, lr=1e-2, amsgrad=True)"; cs[n++] = c;
    c = C(NB_OPT_RMSPROP); c.o.lr = 1e-2; c.torch_opt = "torch.optim.RMSprop(params, lr=1e-2)"; cs[n++] = c;
    c = C(NB_OPT_RMSPROP); c.o.lr = 1e-2; c.o.centered = true; c.o.momentum = 0.5; c.o.weight_decay = 1e-3;
    c.o.alpha = 0.9;
    c.torch_opt = "torch.optim.RMSprop(params, lr=1e-2, alpha=0.9, centered=True, momentum=0.5, weight_decay=1e-3)";
    cs[n++] = c;
    c = C(NB_OPT_ADAGRAD); c.o.lr = 0.1; c.o.lr_decay = 0.01; c.o.weight_decay = 1e-3;
    c.o.initial_accumulator = 0.1;
    c.torch_opt = "torch.optim.Adagrad(params, lr=0.1, lr_decay=0.01, weight_decay=1e-3, initial_accumulator_value=0.1)";
    cs[n++] = c;
    /* parameter groups: weights and biases with their own lr and weight decay */
    c = C(NB_OPT_SGD); c.o.lr = 0.1; c.o.momentum = 0.9; c.groups = true;
    c.torch_opt = "torch.optim.SGD([{'params': weights, 'lr': 0.1, 'weight_decay': 1e-3}, "
                  "{'params': biases, 'lr': 0.05}], lr=0.1, momentum=0.9)";
    cs[n++] = c;
    /* clipping by global norm */
    c = C(NB_OPT_SGD); c.o.lr = 0.5; c.clip = 0.25;
    c.torch_opt = "torch.optim.SGD(params, lr=0.5)  # clip 0.25"; cs[n++] = c;

    /* schedules, each over SGD with momentum, stepped once per batch */
    const char *base = "torch.optim.SGD(params, lr=0.1, momentum=0.9)";
    c = C(NB_OPT_SGD); c.o.lr = 0.1; c.o.momentum = 0.9; c.torch_opt = base; c.sched = true;
    config s = c;
    s.s = nb_sched_opts_default(NB_SCHED_STEP); s.s.step_size = 10; s.s.gamma = 0.5;
    s.torch_sched = "torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)"; cs[n++] = s;
    s = c; s.s = nb_sched_opts_default(NB_SCHED_MULTISTEP); s.s.gamma = 0.3; s.s.n_milestones = 3;
    s.s.milestones[0] = 10; s.s.milestones[1] = 25; s.s.milestones[2] = 40;
    s.torch_sched = "torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[10, 25, 40], gamma=0.3)"; cs[n++] = s;
    s = c; s.s = nb_sched_opts_default(NB_SCHED_EXPONENTIAL); s.s.gamma = 0.95;
    s.torch_sched = "torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.95)"; cs[n++] = s;
    s = c; s.s = nb_sched_opts_default(NB_SCHED_COSINE); s.s.t_max = 50; s.s.eta_min = 1e-3;
    s.torch_sched = "torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=50, eta_min=1e-3)"; cs[n++] = s;
    s = c; s.s = nb_sched_opts_default(NB_SCHED_WARMUP_COSINE); s.s.warmup = 10; s.s.total = 50;
    s.s.eta_min = 1e-3;
    s.torch_sched = "torch.optim.lr_scheduler.LambdaLR(opt, lambda t: (t + 1) / 10 if t < 10 else "
                    "0.01 + (1 - 0.01) * (1 + math.cos(math.pi * min((t - 10) / 40, 1.0))) / 2)";
    cs[n++] = s;
    s = c; s.s = nb_sched_opts_default(NB_SCHED_ONECYCLE); s.s.max_lr = 0.2; s.s.total = 50;
    s.torch_sched = "torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=50, "
                    "anneal_strategy='cos', cycle_momentum=False)";
    cs[n++] = s;
    s = c; s.s = nb_sched_opts_default(NB_SCHED_PLATEAU); s.s.factor = 0.5; s.s.patience = 2;
    s.s.threshold = 1e-2; s.sched_per_metric = true;
    s.torch_sched = "torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2, threshold=1e-2)";
    cs[n++] = s;
    return n;
}

static nb_module *model(nb_ctx *ctx)
{
    nb_module *m = nb_sequential(ctx, NULL);
    nb_sequential_add(ctx, m, nb_linear(ctx, "fc1", 6, 5, true));
    nb_sequential_add(ctx, m, nb_activation(ctx, NULL, NB_ACT_TANH, 0));
    nb_sequential_add(ctx, m, nb_linear(ctx, "fc2", 5, 3, true));
    return m;
}

static int run(nb_ctx *ctx, FILE *f, const config *c)
{
    nb_rng_seed(nb_ctx_rng(ctx), 77, 0);
    nb_module *m = model(ctx);
    nb_param_list pl;
    if (!m || nb_module_params(ctx, m, &pl) != NB_OK)
        return 1;
    nb_optim *opt = nb_optim_new(ctx, &c->o);
    if (c->groups) {
        nb_tensor *w[2] = {pl.items[0].tensor, pl.items[2].tensor};
        nb_tensor *b[2] = {pl.items[1].tensor, pl.items[3].tensor};
        if (nb_optim_add_group(ctx, opt, 2, w, NULL, 0.1, 1e-3) < 0 ||
            nb_optim_add_group(ctx, opt, 2, b, NULL, 0.05, 0.0) < 0)
            return 1;
    } else if (nb_optim_add_module(ctx, opt, m, false) != NB_OK) {
        return 1;
    }
    nb_sched *sc = c->sched ? nb_sched_new(ctx, opt, &c->s) : NULL;
    if (!opt || (c->sched && !sc))
        return 1;
    dump_str(f, c->torch_opt);
    dump_str(f, c->torch_sched);
    dump_u32(f, STEPS);
    dump_u32(f, (uint32_t)(c->clip > 0 ? 1 : 0));
    for (int i = 0; i < NP; i++)
        dump_tensor(f, pl.items[i].tensor);
    nb_tensor *lrs = nb_buffer(ctx, NB_F64, NB_SHAPE(STEPS));
    nb_rng data;
    nb_rng_seed(&data, 5, 1);
    for (int s = 0; s < STEPS; s++) {
        nb_arena_reset(ctx);
        nb_tensor *x = nb_empty(ctx, NB_F32, NB_SHAPE(8, 6));
        nb_tensor *y = nb_empty(ctx, NB_I64, NB_SHAPE(8));
        for (int i = 0; i < 48; i++)
            nb_set(x, i, 2 * nb_rng_normal(&data));
        for (int i = 0; i < 8; i++)
            nb_set(y, i, nb_rng_below(&data, 3));
        dump_tensor(f, x);
        dump_tensor(f, y);
        nb_set(lrs, s, nb_optim_lr(opt, 0));
        nb_tensor *loss = nb_cross_entropy(ctx, nb_module_forward(ctx, m, x), y, NULL);
        if (!loss || nb_backward(ctx, loss) != NB_OK)
            return 1;
        if (c->clip > 0) {
            nb_tensor *ts[NP];
            for (int i = 0; i < NP; i++)
                ts[i] = pl.items[i].tensor;
            double norm;
            if (nb_clip_grad_norm(ctx, NP, ts, c->clip, &norm) != NB_OK)
                return 1;
        }
        if (nb_optim_step(ctx, opt) != NB_OK)
            return 1;
        nb_optim_zero_grad(opt);
        if (sc && nb_sched_step(ctx, sc, c->sched_per_metric ? nb_get(loss, 0) : 0) != NB_OK)
            return 1;
    }
    dump_tensor(f, lrs);
    for (int i = 0; i < NP; i++)
        dump_tensor(f, pl.items[i].tensor);
    nb_tensor_free(ctx, lrs);
    nb_sched_free(ctx, sc);
    nb_optim_free(ctx, opt);
    nb_param_list_free(ctx, &pl);
    nb_module_free(ctx, m);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_optim OUT_FILE\n");
        return 2;
    }
    nb_ctx_opts o = nb_ctx_opts_default();
    o.num_threads = 1;
    nb_ctx *ctx = nb_ctx_new(&o);
    FILE *f = fopen(argv[1], "wb");
    if (!ctx || !f)
        return 1;
    config cs[40];
    int n = make_configs(cs);
    dump_u32(f, (uint32_t)n);
    for (int i = 0; i < n; i++)
        if (run(ctx, f, &cs[i]) != 0) {
            fprintf(stderr, "test_optim: config %d (%s %s): %s\n", i, cs[i].torch_opt,
                    cs[i].torch_sched, nb_last_error(ctx));
            return 1;
        }
    fclose(f);
    printf("test_optim: %d configurations written to %s\n", n, argv[1]);
    nb_ctx_free(ctx);
    return 0;
}
