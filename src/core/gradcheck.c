/* Gradient checking: analytic gradients (backward) against central finite
 * differences in float64.
 *
 * The output y = f(x) is projected to the scalar L = sum(W * y) with random
 * normal weights W, so the upstream gradient of f's last op is W and not all
 * ones: a backward that ignores its upstream gradient fails the check.
 * Numeric: dL/dx_j ~ (L(x_j + eps) - L(x_j - eps)) / (2 eps), evaluated with
 * grad mode off and the arena rewound after each evaluation. The generator is
 * restored before every call of f, so random ops draw the same numbers. */
#include "internal.h"

#include <math.h>

nb_gradcheck_opts nb_gradcheck_opts_default(void)
{
    nb_gradcheck_opts o;
    o.eps = 1e-5; /* near cbrt(f64 epsilon): balances truncation and rounding */
    o.tol = 1e-5;
    o.abs_floor = 1e-3;
    o.seed = 1;
    return o;
}

static double project(const nb_tensor *y, const double *w)
{
    double s = 0;
    int64_t n = nb__numel(y);
    for (int64_t i = 0; i < n; i++)
        s += w[i] * nb__load(y->dtype, nb__elem_ptr(y, i));
    return s;
}

nb_status nb_gradcheck(nb_ctx *ctx, nb_gradcheck_fn f, void *user, nb_tensor *const *inputs,
                       int n, const nb_gradcheck_opts *opts, nb_gradcheck_result *res)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!f || !inputs)
        return nb__err(ctx, NB_ERR_NULL, "gradcheck: function or inputs is NULL");
    if (n < 1 || n > 16)
        return nb__err(ctx, NB_ERR_ARG, "gradcheck: %d inputs (1..16 allowed)", n);
    for (int i = 0; i < n; i++) {
        if (!inputs[i])
            return nb__err(ctx, NB_ERR_NULL, "gradcheck: input %d is NULL", i);
        if (inputs[i]->dtype != NB_F64 && (inputs[i]->flags & NB_REQUIRES_GRAD))
            return nb__err(ctx, NB_ERR_DTYPE, "gradcheck: input %d is %s; checks run in f64", i,
                           nb_dtype_name(inputs[i]->dtype));
    }
    nb_gradcheck_opts o = opts ? *opts : nb_gradcheck_opts_default();
    nb_gradcheck_result r;
    memset(&r, 0, sizeof r);
    r.n = n;

    nb_rng rng0 = ctx->rng;
    nb_arena_mark m0 = nb_arena_mark_get(ctx);
    nb_tensor *saved_grad[16];
    for (int i = 0; i < n; i++) {
        saved_grad[i] = inputs[i]->grad;
        if (inputs[i]->flags & NB_PERSISTENT)
            nb_zero_grad(inputs[i]);
        else
            inputs[i]->grad = NULL;
    }
    bool grad_was = nb_set_grad_enabled(ctx, true);
    nb_status st = NB_OK;

    /* analytic */
    ctx->rng = rng0;
    nb_tensor *y = f(ctx, inputs, n, user);
    double *w = NULL;
    double *ana[16] = {0};
    if (!y) {
        st = ctx->err != NB_OK ? ctx->err : nb__err(ctx, NB_ERR_NULL, "gradcheck: f returned NULL");
        goto done;
    }
    int64_t ny = nb__numel(y);
    w = nb__arena_alloc(ctx, sizeof(double) * (size_t)(ny ? ny : 1));
    nb_tensor *W = nb__new_step(ctx, y->dtype, y->ndim, y->shape);
    if (!w || !W) {
        st = nb__arena_err(ctx, "gradcheck", sizeof(double) * (size_t)ny);
        goto done;
    }
    nb_rng wr;
    nb_rng_seed(&wr, o.seed, 7);
    for (int64_t i = 0; i < ny; i++) {
        w[i] = nb_rng_normal(&wr);
        nb__store(W->dtype, (char *)W->data + i * (int64_t)nb__esize(W->dtype), w[i]);
    }
    if (y->flags & NB_REQUIRES_GRAD) {
        st = nb_backward_with(ctx, y, W);
        if (st != NB_OK)
            goto done;
    }
    for (int i = 0; i < n; i++) {
        nb_tensor *x = inputs[i];
        if (!(x->flags & NB_REQUIRES_GRAD))
            continue;
        int64_t nx = nb__numel(x);
        ana[i] = nb__arena_alloc(ctx, sizeof(double) * (size_t)(nx ? nx : 1));
        if (!ana[i]) {
            st = nb__arena_err(ctx, "gradcheck", sizeof(double) * (size_t)nx);
            goto done;
        }
        for (int64_t j = 0; j < nx; j++)
            ana[i][j] = x->grad ? nb__load(x->grad->dtype, nb__elem_ptr(x->grad, j)) : 0.0;
    }

    /* numeric */
    nb_set_grad_enabled(ctx, false);
    nb_arena_mark m1 = nb_arena_mark_get(ctx);
    for (int i = 0; i < n && st == NB_OK; i++) {
        nb_tensor *x = inputs[i];
        if (!ana[i])
            continue;
        int64_t nx = nb__numel(x);
        for (int64_t j = 0; j < nx; j++) {
            void *p = nb__elem_ptr(x, j);
            double orig = nb__load(x->dtype, p), L[2];
            for (int s = 0; s < 2; s++) {
                nb__store(x->dtype, p, orig + (s ? -o.eps : o.eps));
                ctx->rng = rng0;
                nb_tensor *yy = f(ctx, inputs, n, user);
                if (!yy) {
                    st = ctx->err != NB_OK ? ctx->err
                                           : nb__err(ctx, NB_ERR_NULL, "gradcheck: f returned NULL");
                    break;
                }
                L[s] = project(yy, w);
                nb_arena_rewind(ctx, m1);
            }
            nb__store(x->dtype, p, orig);
            if (st != NB_OK)
                break;
            double num = (L[0] - L[1]) / (2.0 * o.eps), a = ana[i][j];
            double den = fmax(fmax(fabs(a), fabs(num)), o.abs_floor);
            double err = fabs(a - num) / den;
            if (!(err <= r.max_rel_err[i])) { /* also catches nan */
                r.max_rel_err[i] = isnan(err) ? INFINITY : err;
                r.worst_index[i] = j;
            }
        }
        if (r.max_rel_err[i] > r.worst)
            r.worst = r.max_rel_err[i];
    }
    if (st == NB_OK && !(r.worst <= o.tol)) {
        int wi = 0;
        for (int i = 1; i < n; i++)
            if (r.max_rel_err[i] > r.max_rel_err[wi])
                wi = i;
        st = nb__err(ctx, NB_ERR_GRADCHECK,
                     "gradcheck: input %d element %lld: relative error %.3g exceeds %.3g", wi,
                     (long long)r.worst_index[wi], r.max_rel_err[wi], o.tol);
    }

done:
    nb_set_grad_enabled(ctx, grad_was);
    nb_arena_rewind(ctx, m0);
    for (int i = 0; i < n; i++) {
        if (inputs[i]->flags & NB_PERSISTENT) {
            nb_zero_grad(inputs[i]);
            if (!saved_grad[i] && inputs[i]->grad)
                continue; /* keep the heap buffer it got; it is zeroed */
        } else {
            inputs[i]->grad = saved_grad[i];
        }
    }
    ctx->rng = rng0;
    if (res)
        *res = r;
    return st;
}
