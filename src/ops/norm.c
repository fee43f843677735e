/* Normalisation: batch norm, layer norm and group norm, one kernel for all three
 * (torch.nn.functional 1.13's semantics). x, made contiguous, is viewed as
 * [A, B, K, S]; a statistics unit is the set of elements normalised together,
 * and the affine parameters are indexed by c = b K + k:
 *   batch_norm  x [N, C, *]       A = N, B = C, K = 1, S = prod(*)   unit b (all a, s)
 *   layer_norm  x [*, D1..Dd]     A = rows, B = 1, K = D1..Dd, S = 1  unit a (all k)
 *   group_norm  x [N, C, *]       A = N, B = G, K = C / G, S = prod(*) unit (a, b) (all k, s)
 * Forward, over the m elements of a unit (statistics accumulated in double):
 *   mu = sum x / m,  var = sum (x - mu)^2 / m (biased),  r = 1 / sqrt(var + eps)
 *   xhat = (x - mu) r,  y = gamma[c] xhat + beta[c]   (gamma 1, beta 0 without affine)
 * batch_norm in evaluation mode takes mu and var from running_mean/var instead
 * (constants: no gradient flows to them). batch_norm in training mode with
 * running statistics also updates them in place (a side effect, not recorded):
 *   running_mean = (1 - momentum) running_mean + momentum mu
 *   running_var  = (1 - momentum) running_var  + momentum var m / (m - 1)
 * Backward, with dxhat = g gamma[c] and the sums over the unit:
 *   dx += r (dxhat - sum(dxhat) / m - xhat sum(dxhat xhat) / m)   (batch statistics)
 *   dx += r dxhat                                                (given statistics)
 *   dgamma[c] += sum g xhat,  dbeta[c] += sum g   (over the elements with that c)
 * Saved: mu and r per unit (F64 step tensors in saved[0], saved[1]); the node's
 * inputs are the contiguous x, then gamma and beta when given (flag bits).
 * Precision and speed: sums run in double; the elementwise passes (y, dx) run
 * in the input's type with coefficients formed in double, and mu split into
 * T hi + lo so that x - mu stays exact-ish for float inputs whose mean is
 * large against their spread (test_norm's large-offset case). An absent
 * gamma/beta is replaced by a vector of ones/zeros from the arena, so the
 * kernels have no branch for it. Units run in parallel (nb__parallel_for),
 * and dgamma/dbeta in parallel over c; each result is computed by one thread
 * in a fixed order, so results do not depend on the thread count. */
#include "core/internal.h"
#include "kernels/parallel.h"

#include <math.h>
#include <stdio.h>

enum { F_GAMMA = 1, F_BETA = 2, F_SHARED = 4, F_GIVEN = 8 };

typedef struct {
    int64_t A, B, K, S;
    bool shared; /* batch norm: a unit is one b over every a */
    bool given;  /* statistics given (batch norm evaluation): mean, rstd filled in */
    double eps, momentum;
    const void *x, *gamma, *beta; /* x [A, B, K, S]; gamma, beta [B K] */
    void *y;
    double *mean, *rstd; /* [units] */
    /* running statistics to update (batch norm training), or NULL */
    char *rm, *rv;
    nb_dtype rm_dt, rv_dt;
    int64_t rm_step, rv_step; /* bytes between channels */
    /* backward */
    const void *g;
    void *dx, *dgamma, *dbeta;
    double *acc; /* [2 B K]: sums of g xhat, then of g, per c */
} norm_job;

static int64_t units_of(const norm_job *J) { return J->shared ? J->B : J->A * J->B; }

/* Sums in double over 8 independent lanes, so that the loops can vectorise
 * (one running sum is a chain of dependent additions); the order is fixed by
 * the run's length alone. */
#define LANES 8
#define LANE_SUM(a)                                                                      \
    ((((a)[0] + (a)[1]) + ((a)[2] + (a)[3])) + (((a)[4] + (a)[5]) + ((a)[6] + (a)[7])))

/* A run is L = K S contiguous elements of one (a, b); its parameters are
 * c0 + k for k < K, each over S elements. S == 1 (layer norm, [N, C]
 * inputs) loops over the parameters as a vector; otherwise over k, then s. */
#define NORM_KERNS(T, SUF)                                                               \
    static double sum_##SUF(const T *p, int64_t n)                                       \
    {                                                                                    \
        double a[LANES] = {0};                                                           \
        int64_t i = 0;                                                                   \
        for (; i + LANES <= n; i += LANES)                                               \
            for (int l = 0; l < LANES; l++)                                              \
                a[l] += (double)p[i + l];                                                \
        for (int l = 0; i < n; i++, l++)                                                 \
            a[l] += (double)p[i];                                                        \
        return LANE_SUM(a);                                                              \
    }                                                                                    \
    static double sqdev_##SUF(const T *p, int64_t n, double mu)                          \
    {                                                                                    \
        double a[LANES] = {0};                                                           \
        int64_t i = 0;                                                                   \
        for (; i + LANES <= n; i += LANES)                                               \
            for (int l = 0; l < LANES; l++) {                                            \
                double d = (double)p[i + l] - mu;                                        \
                a[l] += d * d;                                                           \
            }                                                                            \
        for (int l = 0; i < n; i++, l++) {                                               \
            double d = (double)p[i] - mu;                                                \
            a[l] += d * d;                                                               \
        }                                                                                \
        return LANE_SUM(a);                                                              \
    }                                                                                    \
    /* t[0] += sum g, t[1] += sum g (x - mu) */                                        \
    static void gsum_##SUF(const T *g, const T *x, int64_t n, double mu, double *t)      \
    {                                                                                    \
        double a[LANES] = {0}, q[LANES] = {0};                                           \
        int64_t i = 0;                                                                   \
        for (; i + LANES <= n; i += LANES)                                               \
            for (int l = 0; l < LANES; l++) {                                            \
                a[l] += (double)g[i + l];                                                \
                q[l] += (double)g[i + l] * ((double)x[i + l] - mu);                      \
            }                                                                            \
        for (int l = 0; i < n; i++, l++) {                                               \
            a[l] += (double)g[i];                                                        \
            q[l] += (double)g[i] * ((double)x[i] - mu);                                  \
        }                                                                                \
        t[0] += LANE_SUM(a);                                                             \
        t[1] += LANE_SUM(q);                                                             \
    }                                                                                    \
    /* the same with g w for a vector w */                                               \
    static void gwsum_##SUF(const T *g, const T *w, const T *x, int64_t n, double mu,    \
                            double *t)                                                   \
    {                                                                                    \
        double a[LANES] = {0}, q[LANES] = {0};                                           \
        int64_t i = 0;                                                                   \
        for (; i + LANES <= n; i += LANES)                                               \
            for (int l = 0; l < LANES; l++) {                                            \
                double gw = (double)g[i + l] * (double)w[i + l];                         \
                a[l] += gw;                                                              \
                q[l] += gw * ((double)x[i + l] - mu);                                    \
            }                                                                            \
        for (int l = 0; i < n; i++, l++) {                                               \
            double gw = (double)g[i] * (double)w[i];                                     \
            a[l] += gw;                                                                  \
            q[l] += gw * ((double)x[i] - mu);                                            \
        }                                                                                \
        t[0] += LANE_SUM(a);                                                             \
        t[1] += LANE_SUM(q);                                                             \
    }                                                                                    \
    /* unit u's statistics, and the running update when asked */                        \
    static void stats_##SUF(const norm_job *J, int64_t u, int64_t b, int64_t a0,        \
                            int64_t nr, int64_t L)                                       \
    {                                                                                    \
        const T *x = J->x;                                                               \
        int64_t m = nr * L;                                                              \
        double sum = 0, sq = 0;                                                          \
        for (int64_t r = 0; r < nr; r++)                                                 \
            sum += sum_##SUF(x + ((a0 + r) * J->B + b) * L, L);                          \
        double mu = m > 0 ? sum / (double)m : 0.0;                                       \
        for (int64_t r = 0; r < nr; r++)                                                 \
            sq += sqdev_##SUF(x + ((a0 + r) * J->B + b) * L, L, mu);                     \
        J->mean[u] = mu;                                                                 \
        J->rstd[u] = 1.0 / sqrt((m > 0 ? sq / (double)m : 0.0) + J->eps);                \
        if (J->rm && m > 1) { /* torch's order of terms */                               \
            char *pm = J->rm + b * J->rm_step, *pv = J->rv + b * J->rv_step;             \
            double mo = J->momentum;                                                     \
            nb__store(J->rm_dt, pm, mo * mu + (1 - mo) * nb__load(J->rm_dt, pm));        \
            nb__store(J->rv_dt, pv,                                                      \
                      mo * (sq / (double)(m - 1)) + (1 - mo) * nb__load(J->rv_dt, pv));   \
        }                                                                                \
    }                                                                                    \
    /* y over units [u0, u1); gamma and beta are never NULL here */                      \
    static void fwd_##SUF(int64_t u0, int64_t u1, void *arg)                             \
    {                                                                                    \
        const norm_job *J = arg;                                                         \
        const T *ga = J->gamma, *be = J->beta;                                           \
        int64_t K = J->K, S = J->S, L = K * S, nr = J->shared ? J->A : 1;                \
        for (int64_t u = u0; u < u1; u++) {                                              \
            int64_t b = u % J->B, a0 = J->shared ? 0 : u / J->B, c0 = b * K;             \
            if (!J->given)                                                               \
                stats_##SUF(J, u, b, a0, nr, L);                                         \
            double mu = J->mean[u], rs = J->rstd[u];                                     \
            /* mu as T hi + lo, so x - mu stays accurate when |mu| >> the spread */     \
            const T mh = (T)mu, ml = (T)(mu - (double)mh), rt = (T)rs;                   \
            for (int64_t r = 0; r < nr; r++) {                                           \
                int64_t base = ((a0 + r) * J->B + b) * L;                                \
                const T *x = (const T *)J->x + base;                                     \
                T *y = (T *)J->y + base;                                                 \
                if (S == 1) {                                                            \
                    for (int64_t k = 0; k < K; k++)                                      \
                        y[k] = ((x[k] - mh) - ml) * (rt * ga[c0 + k]) + be[c0 + k];      \
                    continue;                                                            \
                }                                                                        \
                for (int64_t k = 0; k < K; k++) {                                        \
                    const T sc = (T)(rs * (double)ga[c0 + k]), sh = be[c0 + k];          \
                    for (int64_t s = 0; s < S; s++)                                      \
                        y[k * S + s] = ((x[k * S + s] - mh) - ml) * sc + sh;             \
                }                                                                        \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    /* dx over units [u0, u1); gamma never NULL */                                       \
    static void bdx_##SUF(int64_t u0, int64_t u1, void *arg)                             \
    {                                                                                    \
        const norm_job *J = arg;                                                         \
        const T *ga = J->gamma;                                                          \
        int64_t K = J->K, S = J->S, L = K * S, nr = J->shared ? J->A : 1, m = nr * L;    \
        for (int64_t u = u0; u < u1; u++) {                                              \
            int64_t b = u % J->B, a0 = J->shared ? 0 : u / J->B, c0 = b * K;             \
            double mu = J->mean[u], rs = J->rstd[u], s1 = 0, s2 = 0;                     \
            if (!J->given && m > 0) { /* means of dxhat and of dxhat xhat */             \
                for (int64_t r = 0; r < nr; r++) {                                       \
                    int64_t base = ((a0 + r) * J->B + b) * L;                            \
                    const T *x = (const T *)J->x + base, *g = (const T *)J->g + base;    \
                    if (S == 1) {                                                        \
                        double t[2] = {0, 0};                                            \
                        gwsum_##SUF(g, ga + c0, x, K, mu, t);                             \
                        s1 += t[0];                                                      \
                        s2 += t[1];                                                      \
                        continue;                                                        \
                    }                                                                    \
                    for (int64_t k = 0; k < K; k++) {                                    \
                        double t[2] = {0, 0};                                            \
                        gsum_##SUF(g + k * S, x + k * S, S, mu, t);                \
                        s1 += (double)ga[c0 + k] * t[0];                                 \
                        s2 += (double)ga[c0 + k] * t[1];                                 \
                    }                                                                    \
                }                                                                        \
                s1 /= (double)m;                                                         \
                s2 *= rs * rs / (double)m; /* times xhat = (x - mu) rs below */          \
            }                                                                            \
            /* dx += r (g w - s1) - r s2 (x - mu), in T: the coefficients in double */ \
            const T mh = (T)mu, ml = (T)(mu - (double)mh), rt = (T)rs;                   \
            const T d = (T)(rs * s2), e = (T)(rs * s1);                                  \
            for (int64_t r = 0; r < nr; r++) {                                           \
                int64_t base = ((a0 + r) * J->B + b) * L;                                \
                const T *x = (const T *)J->x + base, *g = (const T *)J->g + base;        \
                T *dx = (T *)J->dx + base;                                               \
                if (S == 1) {                                                            \
                    for (int64_t k = 0; k < K; k++)                                      \
                        dx[k] += rt * (g[k] * ga[c0 + k]) - d * ((x[k] - mh) - ml) - e;  \
                    continue;                                                            \
                }                                                                        \
                for (int64_t k = 0; k < K; k++) {                                        \
                    const T w = (T)(rs * (double)ga[c0 + k]);                            \
                    for (int64_t s = 0; s < S; s++)                                      \
                        dx[k * S + s] +=                                                 \
                            w * g[k * S + s] - d * ((x[k * S + s] - mh) - ml) - e;       \
                }                                                                        \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    /* dgamma, dbeta over parameters [c0, c1): each thread owns its c, and        */    \
    /* accumulates over a in order (acc: sums of g (x - mu) r, then of g)         */    \
    static void bpar_##SUF(int64_t c0, int64_t c1, void *arg)                            \
    {                                                                                    \
        const norm_job *J = arg;                                                         \
        int64_t K = J->K, S = J->S, BK = J->B * K;                                       \
        double *sgx = J->acc, *sg = J->acc + BK;                                         \
        for (int64_t c = c0; c < c1; c++)                                                \
            sgx[c] = sg[c] = 0;                                                          \
        for (int64_t a = 0; a < J->A; a++)                                               \
            for (int64_t b = c0 / K; b * K < c1; b++) {                                  \
                int64_t lo = b * K > c0 ? b * K : c0, hi = (b + 1) * K < c1 ? (b + 1) * K : c1; \
                int64_t u = J->shared ? b : a * J->B + b;                                \
                double mu = J->mean[u], rs = J->rstd[u];                                 \
                const T *x = (const T *)J->x + a * BK * S, *g = (const T *)J->g + a * BK * S; \
                if (S == 1) {                                                            \
                    for (int64_t c = lo; c < hi; c++) {                                  \
                        sg[c] += (double)g[c];                                           \
                        sgx[c] += (double)g[c] * ((double)x[c] - mu) * rs;               \
                    }                                                                    \
                    continue;                                                            \
                }                                                                        \
                for (int64_t c = lo; c < hi; c++) {                                      \
                    double t[2] = {0, 0};                                                \
                    gsum_##SUF(g + c * S, x + c * S, S, mu, t);                    \
                    sg[c] += t[0];                                                       \
                    sgx[c] += t[1] * rs;                                                 \
                }                                                                        \
            }                                                                            \
        for (int64_t c = c0; c < c1; c++) {                                              \
            if (J->dgamma)                                                               \
                ((T *)J->dgamma)[c] += (T)sgx[c];                                        \
            if (J->dbeta)                                                                \
                ((T *)J->dbeta)[c] += (T)sg[c];                                          \
        }                                                                                \
    }
NORM_KERNS(float, f32)
NORM_KERNS(double, f64)

#define PICK(name, dt) ((dt) == NB_F32 ? name##_f32 : name##_f64)

/* ---- checks shared by the three ops ----------------------------------------- */
static bool check_dtypes(nb_ctx *ctx, const char *op, const nb_tensor *x, const nb_tensor *gamma,
                         const nb_tensor *beta)
{
    if (x->dtype != NB_F32 && x->dtype != NB_F64) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: x is %s; needs f32 or f64", op, nb_dtype_name(x->dtype));
        return false;
    }
    const nb_tensor *p[2] = {gamma, beta};
    for (int i = 0; i < 2; i++)
        if (p[i] && p[i]->dtype != x->dtype) {
            nb__err(ctx, NB_ERR_DTYPE, "%s: %s is %s but x is %s", op, i ? "bias" : "weight",
                    nb_dtype_name(p[i]->dtype), nb_dtype_name(x->dtype));
            return false;
        }
    return true;
}

static bool check_eps(nb_ctx *ctx, const char *op, double eps)
{
    if (eps > 0 && isfinite(eps))
        return true;
    nb__err(ctx, NB_ERR_ARG, "%s: eps must be positive and finite, got %g", op, eps);
    return false;
}

/* gamma/beta must be 1-D of `channels` elements */
static bool check_channels(nb_ctx *ctx, const char *op, const nb_tensor *x, const nb_tensor *gamma,
                           const nb_tensor *beta, int64_t channels)
{
    const nb_tensor *p[2] = {gamma, beta};
    for (int i = 0; i < 2; i++)
        if (p[i] && (p[i]->ndim != 1 || p[i]->shape[0] != channels)) {
            char sp[NB__SHAPE_BUF], sx[NB__SHAPE_BUF];
            nb__err(ctx, NB_ERR_SHAPE, "%s: %s %s does not match %lld channels of %s", op,
                    i ? "bias" : "weight", nb_shape_str(p[i], sp, sizeof sp), (long long)channels,
                    nb_shape_str(x, sx, sizeof sx));
            return false;
        }
    return true;
}

static bool check_rank2(nb_ctx *ctx, const char *op, const nb_tensor *x)
{
    if (x->ndim >= 2)
        return true;
    char sx[NB__SHAPE_BUF];
    nb__err(ctx, NB_ERR_SHAPE, "%s: x %s needs at least 2 dims ([N, C, ...])", op,
            nb_shape_str(x, sx, sizeof sx));
    return false;
}

/* n elements equal to v (arena), standing in for an absent gamma (1) or beta
 * (0) so the kernels need no branch for them; NULL with the error recorded */
static const void *const_vec(nb_ctx *ctx, nb_dtype dt, int64_t n, double v)
{
    nb_tensor *t = nb__new_step(ctx, dt, 1, &n);
    if (!t)
        return NULL;
    for (int64_t i = 0; i < n; i++) {
        if (dt == NB_F32)
            ((float *)t->data)[i] = (float)v;
        else
            ((double *)t->data)[i] = v;
    }
    return t->data ? t->data : (const void *)t; /* never NULL when made, even empty */
}

/* ---- the common forward --------------------------------------------------------- */
/* J holds A, B, K, S, shared, given, eps and the running statistics to
 * update; with given statistics, rm/rv are read into the saved mean and rstd. */
static nb_tensor *norm_run(nb_ctx *ctx, nb__op_id op, nb_tensor *x, nb_tensor *gamma,
                           nb_tensor *beta, norm_job *J, const nb_tensor *rm, const nb_tensor *rv)
{
    nb_tensor *gc = gamma ? nb_contiguous(ctx, gamma) : NULL;
    nb_tensor *bc = beta ? nb_contiguous(ctx, beta) : NULL;
    x = nb_contiguous(ctx, x);
    if (!x || (gamma && !gc) || (beta && !bc))
        return NULL;
    gamma = gc;
    beta = bc;
    int64_t units = units_of(J);
    nb_tensor *y = nb__new_step(ctx, x->dtype, x->ndim, x->shape);
    nb_tensor *mean = y ? nb__new_step(ctx, NB_F64, 1, (int64_t[]){units}) : NULL;
    nb_tensor *rstd = mean ? nb__new_step(ctx, NB_F64, 1, (int64_t[]){units}) : NULL;
    if (!rstd)
        return NULL;
    J->x = x->data;
    int64_t BK = J->B * J->K;
    J->gamma = gamma ? gamma->data : const_vec(ctx, x->dtype, BK, 1.0);
    J->beta = beta ? beta->data : const_vec(ctx, x->dtype, BK, 0.0);
    if (!J->gamma || !J->beta)
        return NULL;
    J->y = y->data;
    J->mean = mean->data;
    J->rstd = rstd->data;
    if (J->given) /* evaluation: the running statistics, as they are now */
        for (int64_t c = 0; c < units; c++) {
            J->mean[c] = nb__load(rm->dtype, (char *)rm->data + c * rm->strides[0] *
                                                 (int64_t)nb__esize(rm->dtype));
            double v = nb__load(rv->dtype, (char *)rv->data + c * rv->strides[0] *
                                               (int64_t)nb__esize(rv->dtype));
            J->rstd[c] = 1.0 / sqrt(v + J->eps);
        }
    int64_t per_unit = units ? nb__numel(x) / units : 0;
    nb__parallel_for(ctx->nthreads, units, 6 * per_unit + 1, PICK(fwd, x->dtype), J);
    nb_tensor *ins[3] = {x, NULL, NULL};
    int n_in = 1, flag = (J->shared ? F_SHARED : 0) | (J->given ? F_GIVEN : 0);
    if (gamma) {
        ins[n_in++] = gamma;
        flag |= F_GAMMA;
    }
    if (beta) {
        ins[n_in++] = beta;
        flag |= F_BETA;
    }
    if (nb__needs_grad(ctx, n_in, ins)) {
        nb__node *n = nb__record(ctx, op, y, n_in, ins);
        if (!n)
            return NULL;
        n->a.i[0] = J->A;
        n->a.i[1] = J->B;
        n->a.i[2] = J->K;
        n->a.i[3] = J->S;
        n->a.flag = flag;
        n->saved[0] = mean;
        n->saved[1] = rstd;
    }
    return y;
}

static bool check_running(nb_ctx *ctx, const nb_tensor *x, const nb_tensor *t, const char *what,
                          bool training)
{
    char st[NB__SHAPE_BUF], sx[NB__SHAPE_BUF];
    if (t->dtype != NB_F32 && t->dtype != NB_F64) {
        nb__err(ctx, NB_ERR_DTYPE, "batch_norm: %s is %s; needs f32 or f64", what,
                nb_dtype_name(t->dtype));
        return false;
    }
    if (t->ndim != 1 || t->shape[0] != x->shape[1]) {
        nb__err(ctx, NB_ERR_SHAPE, "batch_norm: %s %s does not match %lld channels of %s", what,
                nb_shape_str(t, st, sizeof st), (long long)x->shape[1],
                nb_shape_str(x, sx, sizeof sx));
        return false;
    }
    /* training writes them in place, one channel per thread */
    if (training && t->shape[0] > 1 && t->strides[0] == 0) {
        nb__err(ctx, NB_ERR_ARG, "batch_norm: %s is an expanded (stride 0) view; it is updated "
                "in place", what);
        return false;
    }
    if (training && t->node_ && (t->flags & NB_REQUIRES_GRAD)) {
        nb__err(ctx, NB_ERR_ARG, "batch_norm: %s is recorded on the tape; updating it in place "
                "would corrupt its gradient", what);
        return false;
    }
    return true;
}

nb_tensor *nb_batch_norm(nb_ctx *ctx, nb_tensor *x, nb_tensor *gamma, nb_tensor *beta,
                         nb_tensor *running_mean, nb_tensor *running_var, bool training,
                         double momentum, double eps)
{
    const char *op = "batch_norm";
    if (!ctx || nb__null_in(ctx, op, 1, x))
        return NULL;
    if (!check_dtypes(ctx, op, x, gamma, beta) || !check_eps(ctx, op, eps) ||
        !check_rank2(ctx, op, x) || !check_channels(ctx, op, x, gamma, beta, x->shape[1]))
        return NULL;
    if (!(momentum >= 0 && momentum <= 1)) {
        nb__err(ctx, NB_ERR_ARG, "batch_norm: momentum %g is not in [0, 1]", momentum);
        return NULL;
    }
    if (!running_mean != !running_var) {
        nb__err(ctx, NB_ERR_ARG, "batch_norm: give both running_mean and running_var, or neither");
        return NULL;
    }
    if (!training && !running_mean) {
        nb__err(ctx, NB_ERR_ARG, "batch_norm: evaluation mode needs running_mean and running_var");
        return NULL;
    }
    if (running_mean && (!check_running(ctx, x, running_mean, "running_mean", training) ||
                         !check_running(ctx, x, running_var, "running_var", training)))
        return NULL;
    norm_job J;
    memset(&J, 0, sizeof J);
    J.A = x->shape[0];
    J.B = x->shape[1];
    J.K = 1;
    J.S = nb__prod(x->ndim - 2, x->shape + 2);
    if (training && J.A * J.S == 1) { /* torch raises the same */
        char sx[NB__SHAPE_BUF];
        nb__err(ctx, NB_ERR_SHAPE, "batch_norm: expected more than 1 value per channel when "
                "training, got %s", nb_shape_str(x, sx, sizeof sx));
        return NULL;
    }
    J.shared = true;
    J.given = !training;
    J.eps = eps;
    J.momentum = momentum;
    if (training && running_mean) {
        J.rm = running_mean->data;
        J.rv = running_var->data;
        J.rm_dt = running_mean->dtype;
        J.rv_dt = running_var->dtype;
        J.rm_step = running_mean->strides[0] * (int64_t)nb__esize(running_mean->dtype);
        J.rv_step = running_var->strides[0] * (int64_t)nb__esize(running_var->dtype);
    }
    return norm_run(ctx, NB__OP_BATCH_NORM, x, gamma, beta, &J, running_mean, running_var);
}

nb_tensor *nb_layer_norm(nb_ctx *ctx, nb_tensor *x, int ndims, nb_tensor *gamma, nb_tensor *beta,
                         double eps)
{
    const char *op = "layer_norm";
    if (!ctx || nb__null_in(ctx, op, 1, x))
        return NULL;
    if (!check_dtypes(ctx, op, x, gamma, beta) || !check_eps(ctx, op, eps))
        return NULL;
    char sx[NB__SHAPE_BUF], sp[NB__SHAPE_BUF], sn[NB__SHAPE_BUF];
    if (ndims < 1 || ndims > x->ndim) {
        nb__err(ctx, NB_ERR_ARG, "layer_norm: ndims %d is not in [1, %d] for x %s", ndims, x->ndim,
                nb_shape_str(x, sx, sizeof sx));
        return NULL;
    }
    const int64_t *nshape = x->shape + x->ndim - ndims;
    const nb_tensor *p[2] = {gamma, beta};
    for (int i = 0; i < 2; i++)
        if (p[i] && (p[i]->ndim != ndims ||
                     memcmp(p[i]->shape, nshape, sizeof(int64_t) * (size_t)ndims) != 0)) {
            nb__err(ctx, NB_ERR_SHAPE, "layer_norm: %s %s does not match the normalised shape %s "
                    "of x %s", i ? "bias" : "weight", nb_shape_str(p[i], sp, sizeof sp),
                    nb__shape_fmt(ndims, nshape, sn, sizeof sn), nb_shape_str(x, sx, sizeof sx));
            return NULL;
        }
    norm_job J;
    memset(&J, 0, sizeof J);
    J.K = nb__prod(ndims, nshape);
    J.A = nb__prod(x->ndim - ndims, x->shape);
    J.B = 1;
    J.S = 1;
    J.eps = eps;
    return norm_run(ctx, NB__OP_LAYER_NORM, x, gamma, beta, &J, NULL, NULL);
}

nb_tensor *nb_group_norm(nb_ctx *ctx, nb_tensor *x, int groups, nb_tensor *gamma, nb_tensor *beta,
                         double eps)
{
    const char *op = "group_norm";
    if (!ctx || nb__null_in(ctx, op, 1, x))
        return NULL;
    if (!check_dtypes(ctx, op, x, gamma, beta) || !check_eps(ctx, op, eps) ||
        !check_rank2(ctx, op, x))
        return NULL;
    char sx[NB__SHAPE_BUF];
    int64_t C = x->shape[1];
    if (groups < 1) {
        nb__err(ctx, NB_ERR_ARG, "group_norm: groups must be positive, got %d", groups);
        return NULL;
    }
    if (C % groups != 0) {
        nb__err(ctx, NB_ERR_SHAPE, "group_norm: %d groups do not divide %lld channels of %s",
                groups, (long long)C, nb_shape_str(x, sx, sizeof sx));
        return NULL;
    }
    if (!check_channels(ctx, op, x, gamma, beta, C))
        return NULL;
    norm_job J;
    memset(&J, 0, sizeof J);
    J.A = x->shape[0];
    J.B = groups;
    J.K = C / groups;
    J.S = nb__prod(x->ndim - 2, x->shape + 2);
    J.eps = eps;
    return norm_run(ctx, NB__OP_GROUP_NORM, x, gamma, beta, &J, NULL, NULL);
}

/* ---- backward (the same for the three ops) ---------------------------------------- */
static nb_status norm_backward(nb_ctx *ctx, nb__node *n)
{
    int fl = n->a.flag, i = 1;
    nb_tensor *x = n->in[0];
    nb_tensor *gamma = (fl & F_GAMMA) ? n->in[i++] : NULL;
    nb_tensor *beta = (fl & F_BETA) ? n->in[i++] : NULL;
    nb_tensor *dx, *dg = NULL, *db = NULL;
    nb_status st = nb__grad_of(ctx, x, &dx);
    if (st == NB_OK)
        st = nb__grad_of(ctx, gamma, &dg);
    if (st == NB_OK)
        st = nb__grad_of(ctx, beta, &db);
    if (st != NB_OK)
        return st;
    norm_job J;
    memset(&J, 0, sizeof J);
    J.A = n->a.i[0];
    J.B = n->a.i[1];
    J.K = n->a.i[2];
    J.S = n->a.i[3];
    J.shared = (fl & F_SHARED) != 0;
    J.given = (fl & F_GIVEN) != 0;
    J.x = x->data;
    J.mean = n->saved[0]->data;
    J.rstd = n->saved[1]->data;
    J.g = n->out->grad->data;
    int64_t units = units_of(&J), BK = J.B * J.K, numel = nb__numel(x);
    if (dx) {
        J.gamma = gamma ? gamma->data : const_vec(ctx, x->dtype, BK, 1.0);
        if (!J.gamma)
            return ctx->err;
        J.dx = dx->data;
        nb__parallel_for(ctx->nthreads, units, 8 * (units ? numel / units : 0) + 1,
                         PICK(bdx, x->dtype), &J);
    }
    if (dg || db) {
        J.dgamma = dg ? dg->data : NULL;
        J.dbeta = db ? db->data : NULL;
        J.acc = nb__arena_alloc(ctx, sizeof(double) * (size_t)(2 * BK + 1));
        if (!J.acc)
            return nb__arena_err(ctx, nb__ops[n->op].name, sizeof(double) * (size_t)(2 * BK + 1));
        nb__parallel_for(ctx->nthreads, BK, 4 * (BK ? numel / BK : 0) + 1, PICK(bpar, x->dtype),
                         &J);
    }
    return NB_OK;
}

nb_status nb__batch_norm_backward(nb_ctx *ctx, nb__node *n) { return norm_backward(ctx, n); }
nb_status nb__layer_norm_backward(nb_ctx *ctx, nb__node *n) { return norm_backward(ctx, n); }
nb_status nb__group_norm_backward(nb_ctx *ctx, nb__node *n) { return norm_backward(ctx, n); }
