/* Initializers, following torch.nn.init's definitions:
 *   xavier  bound (uniform) or sd (normal) from gain and fan_in + fan_out
 *   kaiming bound gain sqrt(3 / fan), sd gain / sqrt(fan), fan_in by default
 *   orthogonal: a normal matrix made orthonormal (Gram-Schmidt in float64,
 *   with R's diagonal positive, as torch's sign fix makes it), times gain
 * Draws come from the context's generator in row-major order. */
#include "core/internal.h"

#include <math.h>

nb_init nb_init_default(nb_init_kind kind)
{
    nb_init i;
    memset(&i, 0, sizeof i);
    i.kind = kind;
    i.slope = 0.01;
    if (kind == NB_INIT_UNIFORM)
        i.b = 1.0; /* U(0, 1), as torch.nn.init.uniform_ */
    if (kind == NB_INIT_NORMAL)
        i.b = 1.0; /* N(0, 1) */
    if (kind == NB_INIT_KAIMING_UNIFORM || kind == NB_INIT_KAIMING_NORMAL)
        i.nonlinearity = NB_GAIN_LEAKY_RELU, i.slope = 0.0; /* torch's defaults: a = 0 */
    return i;
}

double nb_gain(nb_nonlinearity nl, double slope)
{
    switch (nl) {
    case NB_GAIN_RELU: return sqrt(2.0);
    case NB_GAIN_LEAKY_RELU: return sqrt(2.0 / (1.0 + slope * slope));
    case NB_GAIN_TANH: return 5.0 / 3.0;
    case NB_GAIN_SELU: return 0.75;
    default: return 1.0;
    }
}

static void fans(const nb_tensor *t, double *fan_in, double *fan_out)
{
    if (t->ndim < 2) {
        *fan_in = *fan_out = (double)nb__numel(t);
        return;
    }
    double rf = 1;
    for (int d = 2; d < t->ndim; d++)
        rf *= (double)t->shape[d];
    *fan_in = (double)t->shape[1] * rf;
    *fan_out = (double)t->shape[0] * rf;
}

static nb_status orthogonal(nb_ctx *ctx, nb_tensor *t, double gain)
{
    int64_t rows = t->ndim ? t->shape[0] : 1, n = nb__numel(t), cols = rows ? n / rows : 0;
    if (n == 0)
        return NB_OK;
    int64_t big = rows > cols ? rows : cols, small = rows > cols ? cols : rows;
    double *a = nb__heap_alloc(ctx, sizeof(double) * (size_t)(big * small));
    if (!a)
        return nb__err(ctx, NB_ERR_NOMEM, "init: allocator failed (orthogonal %lldx%lld)",
                       (long long)rows, (long long)cols);
    for (int64_t i = 0; i < big * small; i++) /* a[i][j]: big x small, row-major */
        a[i] = nb_rng_normal(&ctx->rng);
    /* modified Gram-Schmidt on the columns; twice, for orthogonality to
     * rounding level even when columns are nearly dependent */
    for (int64_t j = 0; j < small; j++) {
        for (int pass = 0; pass < 2; pass++)
            for (int64_t k = 0; k < j; k++) {
                double dot = 0;
                for (int64_t i = 0; i < big; i++)
                    dot += a[i * small + k] * a[i * small + j];
                for (int64_t i = 0; i < big; i++)
                    a[i * small + j] -= dot * a[i * small + k];
            }
        double norm = 0;
        for (int64_t i = 0; i < big; i++)
            norm += a[i * small + j] * a[i * small + j];
        norm = sqrt(norm);
        for (int64_t i = 0; i < big; i++)
            a[i * small + j] = norm > 0 ? a[i * small + j] / norm : 0;
    }
    /* W [rows, cols] is Q (big = rows) or Q^T (big = cols) */
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            double v = rows >= cols ? a[r * small + c] : a[c * small + r];
            nb__store(t->dtype, nb__elem_ptr(t, r * cols + c), gain * v);
        }
    nb__heap_free(ctx, a);
    return NB_OK;
}

nb_status nb_init_tensor(nb_ctx *ctx, nb_tensor *t, const nb_init *init)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!t || !init)
        return nb__err(ctx, NB_ERR_NULL, "init: tensor or options is NULL");
    if (!nb__is_float(t->dtype))
        return nb__err(ctx, NB_ERR_DTYPE, "init: needs a float tensor, got %s", nb_dtype_name(t->dtype));
    double fi, fo;
    fans(t, &fi, &fo);
    double gain = init->gain > 0 ? init->gain : nb_gain(init->nonlinearity, init->slope);
    double fan = init->fan_out ? fo : fi;
    switch (init->kind) {
    case NB_INIT_CONSTANT: return nb_fill(ctx, t, init->a);
    case NB_INIT_UNIFORM:
        if (!(init->a <= init->b))
            return nb__err(ctx, NB_ERR_ARG, "init: uniform bounds [%g, %g] are not an interval",
                           init->a, init->b);
        return nb_fill_uniform(ctx, t, init->a, init->b);
    case NB_INIT_NORMAL: return nb_fill_normal(ctx, t, init->a, init->b);
    case NB_INIT_XAVIER_UNIFORM: {
        double r = gain * sqrt(6.0 / (fi + fo));
        return nb_fill_uniform(ctx, t, -r, r);
    }
    case NB_INIT_XAVIER_NORMAL: return nb_fill_normal(ctx, t, 0, gain * sqrt(2.0 / (fi + fo)));
    case NB_INIT_KAIMING_UNIFORM: {
        double r = fan > 0 ? gain * sqrt(3.0 / fan) : 0;
        return nb_fill_uniform(ctx, t, -r, r);
    }
    case NB_INIT_KAIMING_NORMAL: return nb_fill_normal(ctx, t, 0, fan > 0 ? gain / sqrt(fan) : 0);
    case NB_INIT_ORTHOGONAL: return orthogonal(ctx, t, init->gain > 0 ? init->gain : gain);
    case NB_INIT_TORCH_LINEAR: {
        double r = fi > 0 ? 1.0 / sqrt(fi) : 0;
        return nb_fill_uniform(ctx, t, -r, r);
    }
    default: return nb__err(ctx, NB_ERR_ARG, "init: unknown initializer %d", (int)init->kind);
    }
}
