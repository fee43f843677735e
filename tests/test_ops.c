/* Walks the op table. For every op and every sample of it:
 *   - the sample really runs the op (a node of that op is on the tape);
 *   - float64 gradient check of sum(W * f(x)) with random W (not for
 *     straight-through samples, whose backward is a surrogate);
 *   - backward twice gives twice the gradient;
 *   - the float32 run (inputs, W, output, input gradients) is written to the
 *     parity file that tests/parity_ops.py replays in PyTorch.
 * Usage: test_ops [PARITY_FILE] */
#include "dump.h"
#include "op_samples.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

static FILE *parity_out;

static nb_tensor *weights_like(nb_ctx *ctx, const nb_tensor *y, uint64_t seed)
{
    nb_tensor *w = nb_empty(ctx, y->dtype, y->ndim, y->shape);
    nb_rng r;
    nb_rng_seed(&r, seed, 3);
    for (int64_t i = 0; w && i < nb_numel(w); i++)
        nb_set(w, i, nb_rng_normal(&r));
    return w;
}

static bool tape_has(const nb_ctx *ctx, int op)
{
    for (const nb__node *n = ctx->tape; n; n = n->prev)
        if ((int)n->op == op)
            return true;
    return false;
}

/* Backward twice from the same graph: the second pass adds the same again. */
static void check_twice(nb_ctx *ctx, op_sample *s, const char *name, int v)
{
    nb_tensor *y = s->fn(ctx, s->in, s->n_in, s);
    assert_non_null(y);
    nb_tensor *w = weights_like(ctx, y, 99);
    double *once[SAMPLE_MAX_IN] = {0};
    for (int i = 0; i < s->n_in; i++)
        if (nb_requires_grad(s->in[i]))
            s->in[i]->grad = NULL;
    assert_int_equal(nb_backward_with(ctx, y, w), NB_OK);
    for (int i = 0; i < s->n_in; i++) {
        if (!nb_requires_grad(s->in[i]))
            continue;
        int64_t n = nb_numel(s->in[i]);
        once[i] = nb_arena_alloc(ctx, sizeof(double) * (size_t)(n + 1));
        for (int64_t j = 0; j < n; j++)
            once[i][j] = s->in[i]->grad ? nb_get(s->in[i]->grad, j) : 0.0;
    }
    assert_int_equal(nb_backward_with(ctx, y, w), NB_OK);
    for (int i = 0; i < s->n_in; i++) {
        if (!once[i])
            continue;
        for (int64_t j = 0; j < nb_numel(s->in[i]); j++) {
            double a = once[i][j], b = s->in[i]->grad ? nb_get(s->in[i]->grad, j) : 0.0;
            if (fabs(b - 2 * a) > 1e-12 * (1 + fabs(a))) {
                fail_msg("%s variant %d: input %d element %lld: twice %g, once %g", name, v, i,
                         (long long)j, b, a);
            }
        }
        s->in[i]->grad = NULL;
    }
}

/* The same sample in float32, written for the PyTorch replay. */
static void dump_f32(nb_ctx *ctx, op_sample *s, const char *name, int v)
{
    if (!parity_out)
        return;
    nb_tensor *in32[SAMPLE_MAX_IN];
    for (int i = 0; i < s->n_in; i++) {
        nb_tensor *x = s->in[i];
        if (x->dtype == NB_F64) {
            bool was = nb_set_grad_enabled(ctx, false);
            in32[i] = nb_cast(ctx, x, NB_F32);
            nb_set_grad_enabled(ctx, was);
            assert_non_null(in32[i]);
            if (nb_requires_grad(x))
                assert_int_equal(nb_set_requires_grad(ctx, in32[i], true), NB_OK);
        } else {
            in32[i] = x;
        }
    }
    nb_tensor *y = s->fn(ctx, in32, s->n_in, s);
    if (!y)
        fail_msg("%s variant %d in f32: %s", name, v, nb_last_error(ctx));
    nb_tensor *w = NULL;
    if (nb_requires_grad(y)) {
        w = weights_like(ctx, y, 7);
        assert_int_equal(nb_backward_with(ctx, y, w), NB_OK);
    }
    dump_str(parity_out, name);
    dump_str(parity_out, s->expr);
    dump_u32(parity_out, (uint32_t)s->n_in);
    for (int i = 0; i < s->n_in; i++)
        dump_tensor(parity_out, in32[i]);
    dump_tensor(parity_out, w);
    dump_tensor(parity_out, y);
    for (int i = 0; i < s->n_in; i++)
        dump_tensor(parity_out, nb_requires_grad(in32[i]) ? in32[i]->grad : NULL);
}

static void test_op(void **state)
{
    int op = (int)(intptr_t)*state;
    const char *name = nb__op_name(op);
    if (!op_samples[op])
        fail_msg("op '%s' has no samples in tests/op_samples.c: add some", name);
    nb_ctx *ctx = nb_ctx_new(NULL);
    assert_non_null(ctx);
    nb_set_num_threads(ctx, 1);
    bool seen = false;
    int v;
    for (v = 0;; v++) {
        nb_arena_reset(ctx);
        op_sample s;
        memset(&s, 0, sizeof s);
        nb_rng r;
        nb_rng_seed(&r, 1000 + (uint64_t)op, (uint64_t)v);
        if (!op_samples[op](ctx, &r, v, &s))
            break;
        for (int i = 0; i < s.n_in; i++)
            assert_non_null(s.in[i]);

        /* the sample must run this op */
        nb_tensor *y = s.fn(ctx, s.in, s.n_in, &s);
        if (!y)
            fail_msg("%s variant %d failed: %s", name, v, nb_last_error(ctx));
        seen |= tape_has(ctx, op);
        if (s.no_grad) {
            assert_false(nb_requires_grad(y));
        } else if (s.surrogate) {
            check_twice(ctx, &s, name, v); /* the surrogate itself: tests/test_stoch.c */
        } else {
            nb_gradcheck_opts go = nb_gradcheck_opts_default();
            if (s.gc_eps > 0)
                go.eps = s.gc_eps;
            if (s.gc_tol > 0)
                go.tol = s.gc_tol;
            nb_gradcheck_result res;
            nb_status st = nb_gradcheck(ctx, s.fn, &s, s.in, s.n_in, &go, &res);
            if (st != NB_OK)
                fail_msg("%s variant %d (%s): %s", name, v, s.expr, nb_last_error(ctx));
            check_twice(ctx, &s, name, v);
        }
        dump_f32(ctx, &s, name, v);
        assert_int_equal(nb_last_status(ctx), NB_OK);
    }
    if (v == 0)
        fail_msg("op '%s': its sample generator made no samples", name);
    if (!seen && !nb__ops[op].backward)
        seen = true;
    if (!seen && op != NB__OP_COMPARE)
        fail_msg("op '%s': no sample put this op on the tape", name);
    nb_ctx_free(ctx);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        parity_out = fopen(argv[1], "wb");
        if (!parity_out) {
            perror(argv[1]);
            return 1;
        }
        fwrite("NBPARITY1", 1, 9, parity_out);
    }
    int n = nb__op_count();
    struct CMUnitTest *tests = calloc((size_t)n, sizeof *tests);
    if (!tests)
        return 1;
    for (int i = 0; i < n; i++) {
        tests[i].name = nb__op_name(i);
        tests[i].test_func = test_op;
        tests[i].initial_state = (void *)(intptr_t)i;
    }
    int failed = _cmocka_run_group_tests("ops", tests, (size_t)n, NULL, NULL);
    free(tests);
    if (parity_out)
        fclose(parity_out);
    return failed ? 1 : 0;
}
