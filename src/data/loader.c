/* In-memory datasets: normalisation fitted on training rows, seeded splits,
 * and a batch loader with per-epoch seeded shuffling and an optional
 * background thread that assembles the next batch while the current one
 * trains.
 *
 * Determinism: the order of epoch e is a Fisher-Yates shuffle driven by
 * PCG32(seed, stream e), so it depends on nothing else (not on threads, not
 * on earlier epochs): resuming at epoch e gives the same batches.
 * Two batch buffers per loader are made once; the prefetch thread fills one
 * while the caller uses the other, so loading allocates nothing per step. */
#include "core/internal.h"

#include <math.h>
#include <pthread.h>

/* ---- normalisation --------------------------------------------------------- */
static int64_t row_elems(const nb_tensor *x)
{
    return x->ndim ? (x->shape[0] ? nb__numel(x) / x->shape[0] : 0) : 1;
}

static bool rows_ok(nb_ctx *ctx, const char *op, const nb_tensor *x, const int64_t *idx, int64_t n)
{
    if (!x || x->ndim < 1 || !nb_is_contiguous(x)) {
        nb__err(ctx, NB_ERR_ARG, "%s: features must be a contiguous tensor [N, ...]", op);
        return false;
    }
    if (x->dtype == NB_F16 || x->dtype == NB_BF16) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: dtype %s is not supported", op, nb_dtype_name(x->dtype));
        return false;
    }
    for (int64_t i = 0; idx && i < n; i++)
        if (idx[i] < 0 || idx[i] >= x->shape[0]) {
            nb__err(ctx, NB_ERR_INDEX, "%s: row index %lld outside [0, %lld)", op,
                    (long long)idx[i], (long long)x->shape[0]);
            return false;
        }
    return true;
}

nb_status nb_norm_fit(nb_ctx *ctx, const nb_tensor *x, const int64_t *idx, int64_t n,
                      nb_norm_kind kind, nb_norm *out)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!out)
        return nb__err(ctx, NB_ERR_NULL, "norm_fit: output is NULL");
    memset(out, 0, sizeof *out);
    out->kind = kind;
    if ((int)kind < 0 || kind >= NB_NORM_COUNT)
        return nb__err(ctx, NB_ERR_ARG, "norm_fit: unknown normalisation %d", (int)kind);
    if (kind == NB_NORM_NONE)
        return NB_OK;
    if (!idx)
        n = x ? x->shape[0] : 0;
    if (!rows_ok(ctx, "norm_fit", x, idx, n))
        return ctx->err;
    if (n < 1)
        return nb__err(ctx, NB_ERR_ARG, "norm_fit: no rows to fit on");
    int64_t D = row_elems(x), k = kind == NB_NORM_FEATURE ? D : 1;
    out->mean = nb_buffer(ctx, NB_F32, 1, &k);
    out->std = nb_buffer(ctx, NB_F32, 1, &k);
    double *sum = nb__heap_alloc(ctx, sizeof(double) * (size_t)(2 * k));
    if (!out->mean || !out->std || !sum) {
        nb__heap_free(ctx, sum);
        nb_norm_free(ctx, out);
        return ctx->err != NB_OK ? ctx->err : nb__err(ctx, NB_ERR_NOMEM, "norm_fit: allocator failed");
    }
    double *sq = sum + k;
    memset(sum, 0, sizeof(double) * (size_t)(2 * k));
    size_t es = nb__esize(x->dtype);
    if (kind == NB_NORM_RANGE) { /* mean = min, std = max - min: (x - min) / range in [0, 1] */
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t i = 0; i < n; i++) {
            const char *row = (const char *)x->data + (idx ? idx[i] : i) * D * (int64_t)es;
            for (int64_t j = 0; j < D; j++) {
                double v = nb__load(x->dtype, row + j * (int64_t)es);
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
        }
        ((float *)out->mean->data)[0] = (float)lo;
        ((float *)out->std->data)[0] = hi - lo < 1e-8 ? 1.0f : (float)(hi - lo);
        nb__heap_free(ctx, sum);
        return NB_OK;
    }
    /* two passes (mean, then squared deviations) for accuracy */
    for (int pass = 0; pass < 2; pass++)
        for (int64_t i = 0; i < n; i++) {
            const char *row = (const char *)x->data + (idx ? idx[i] : i) * D * (int64_t)es;
            for (int64_t j = 0; j < D; j++) {
                double v = nb__load(x->dtype, row + j * (int64_t)es);
                int64_t c = k == 1 ? 0 : j;
                if (pass == 0)
                    sum[c] += v;
                else
                    sq[c] += (v - sum[c]) * (v - sum[c]);
            }
            if (pass == 0 && i == n - 1)
                for (int64_t c = 0; c < k; c++)
                    sum[c] /= (double)n * (k == 1 ? (double)D : 1.0);
        }
    for (int64_t c = 0; c < k; c++) {
        double sd = sqrt(sq[c] / ((double)n * (k == 1 ? (double)D : 1.0)));
        ((float *)out->mean->data)[c] = (float)sum[c];
        ((float *)out->std->data)[c] = sd < 1e-8 ? 1.0f : (float)sd;
    }
    nb__heap_free(ctx, sum);
    return NB_OK;
}

void nb_norm_free(nb_ctx *ctx, nb_norm *n)
{
    if (!ctx || !n)
        return;
    nb_tensor_free(ctx, n->mean);
    nb_tensor_free(ctx, n->std);
    n->mean = n->std = NULL;
}

/* ---- splits ---------------------------------------------------------------- */
static void shuffle(int64_t *a, int64_t n, uint64_t seed, uint64_t stream)
{
    nb_rng r;
    nb_rng_seed(&r, seed, stream);
    for (int64_t i = n - 1; i > 0; i--) {
        /* two draws make an unbiased index below 2^53, for any n */
        int64_t j = (int64_t)(nb_rng_uniform(&r) * (double)(i + 1));
        if (j > i)
            j = i;
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

nb_status nb_split_make(nb_ctx *ctx, int64_t n, double val_fraction, uint64_t seed, nb_split *out)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!out)
        return nb__err(ctx, NB_ERR_NULL, "split: output is NULL");
    memset(out, 0, sizeof *out);
    if (n < 1 || !(val_fraction >= 0 && val_fraction < 1))
        return nb__err(ctx, NB_ERR_ARG,
                       "split: needs rows (got %lld) and a validation fraction in [0, 1) (got %g)",
                       (long long)n, val_fraction);
    int64_t *p = nb__heap_alloc(ctx, sizeof(int64_t) * (size_t)n);
    if (!p)
        return nb__err(ctx, NB_ERR_NOMEM, "split: allocator failed");
    for (int64_t i = 0; i < n; i++)
        p[i] = i;
    shuffle(p, n, seed, 0x5917);
    out->n_val = (int64_t)llround((double)n * val_fraction);
    out->n_train = n - out->n_val;
    out->train = p;
    out->val = p + out->n_train;
    return NB_OK;
}

void nb_split_free(nb_ctx *ctx, nb_split *s)
{
    if (!ctx || !s)
        return;
    nb__heap_free(ctx, s->train);
    s->train = s->val = NULL;
    s->n_train = s->n_val = 0;
}

/* ---- the loader -------------------------------------------------------------- */
struct nb_loader {
    const nb_tensor *x, *y;
    const nb_norm *norm;
    nb_loader_opts o;
    int64_t n, D, ycols, nbatches;
    int64_t *idx, *order;
    int64_t epoch, pos;
    nb_tensor *xb[2], *yb[2];
    int cur; /* slot handed out last */
    bool augment;
    float *aug_tmp[2]; /* a row of scratch per slot */
    /* prefetch: one job at a time */
    bool thread_on, quit;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t job_batch; /* batch being (or to be) filled, -1 none */
    int job_slot;
    bool job_done;
};

nb_loader_opts nb_loader_opts_default(void)
{
    nb_loader_opts o;
    memset(&o, 0, sizeof o);
    o.batch_size = 64;
    o.shuffle = true;
    return o;
}

/* ---- augmentation (torchvision's definitions) --------------------------------- */
typedef struct {
    int64_t C, H, W;
} img_dims;

static img_dims dims_of(const nb_tensor *x)
{
    img_dims d = {1, 1, 1};
    if (x->ndim == 3) {
        d.H = x->shape[1];
        d.W = x->shape[2];
    } else if (x->ndim == 4) {
        d.C = x->shape[1];
        d.H = x->shape[2];
        d.W = x->shape[3];
    }
    return d;
}

/* In place on one normalised row [C, H, W]; tmp holds C H W floats. */
static void augment(const nb_loader *l, float *img, float *tmp, nb_rng *r)
{
    img_dims d = dims_of(l->x);
    int64_t plane = d.H * d.W;
    if (l->o.crop_pad > 0) { /* pad with zeros, take a random H x W window */
        int64_t p = l->o.crop_pad;
        int64_t top = nb_rng_below(r, (uint32_t)(2 * p + 1)), left = nb_rng_below(r, (uint32_t)(2 * p + 1));
        memcpy(tmp, img, sizeof(float) * (size_t)(d.C * plane));
        for (int64_t c = 0; c < d.C; c++)
            for (int64_t i = 0; i < d.H; i++) {
                int64_t si = i + top - p;
                for (int64_t j = 0; j < d.W; j++) {
                    int64_t sj = j + left - p;
                    img[c * plane + i * d.W + j] =
                        (si < 0 || si >= d.H || sj < 0 || sj >= d.W) ? 0.0f : tmp[c * plane + si * d.W + sj];
                }
            }
    }
    if (l->o.hflip && nb_rng_below(r, 2))
        for (int64_t c = 0; c < d.C; c++)
            for (int64_t i = 0; i < d.H; i++) {
                float *row = img + c * plane + i * d.W;
                for (int64_t j = 0; j < d.W / 2; j++) {
                    float t = row[j];
                    row[j] = row[d.W - 1 - j];
                    row[d.W - 1 - j] = t;
                }
            }
    if (l->o.erase_p > 0 && nb_rng_uniform(r) < l->o.erase_p) {
        double area = (double)plane;
        for (int attempt = 0; attempt < 10; attempt++) {
            double target = area * (0.02 + nb_rng_uniform(r) * (0.33 - 0.02));
            double lr = log(0.3) + nb_rng_uniform(r) * (log(3.3) - log(0.3)), ratio = exp(lr);
            int64_t h = (int64_t)llround(sqrt(target * ratio)), w = (int64_t)llround(sqrt(target / ratio));
            if (h < 1 || w < 1 || h >= d.H || w >= d.W)
                continue;
            int64_t i0 = nb_rng_below(r, (uint32_t)(d.H - h + 1)), j0 = nb_rng_below(r, (uint32_t)(d.W - w + 1));
            for (int64_t c = 0; c < d.C; c++)
                for (int64_t i = i0; i < i0 + h; i++)
                    memset(img + c * plane + i * d.W + j0, 0, sizeof(float) * (size_t)w);
            break;
        }
    }
}

/* Assembles batch b into slot s (no allocation, no failure). */
static void fill(nb_loader *l, int64_t b, int s)
{
    int64_t B = l->o.batch_size, start = b * B, rows = l->n - start < B ? l->n - start : B;
    const nb_tensor *x = l->x;
    size_t es = nb__esize(x->dtype);
    float *dst = l->xb[s]->data;
    const nb_norm *nm = l->norm && l->norm->kind != NB_NORM_NONE ? l->norm : NULL;
    const float *mean = nm ? nm->mean->data : NULL, *sd = nm ? nm->std->data : NULL;
    bool global = nm && nm->kind != NB_NORM_FEATURE;
    if (l->o.tokens) { /* ids as they are, I64 */
        for (int64_t r = 0; r < rows; r++) {
            int64_t src = l->order[start + r];
            int64_t *xd = (int64_t *)l->xb[s]->data + r * l->D, *yd;
            for (int64_t j = 0; j < l->D; j++)
                xd[j] = (int64_t)nb__load(x->dtype, (const char *)x->data + (src * l->D + j) * (int64_t)es);
            if (!l->y)
                continue;
            size_t ys = nb__esize(l->y->dtype);
            yd = (int64_t *)l->yb[s]->data + r * l->ycols;
            for (int64_t j = 0; j < l->ycols; j++)
                yd[j] = (int64_t)nb__load(l->y->dtype,
                                          (const char *)l->y->data + (src * l->ycols + j) * (int64_t)ys);
        }
        return;
    }
    for (int64_t r = 0; r < rows; r++) {
        int64_t src = l->order[start + r];
        const char *row = (const char *)x->data + src * l->D * (int64_t)es;
        float *d = dst + r * l->D;
        if (x->dtype == NB_U8) {
            const uint8_t *u = (const uint8_t *)row;
            if (global) {
                float m = mean[0], inv = 1.0f / sd[0];
                for (int64_t j = 0; j < l->D; j++)
                    d[j] = ((float)u[j] - m) * inv;
            } else {
                for (int64_t j = 0; j < l->D; j++)
                    d[j] = nm ? ((float)u[j] - mean[j]) / sd[j] : (float)u[j];
            }
        } else {
            for (int64_t j = 0; j < l->D; j++) {
                float v = (float)nb__load(x->dtype, row + j * (int64_t)es);
                d[j] = !nm ? v : global ? (v - mean[0]) / sd[0] : (v - mean[j]) / sd[j];
            }
        }
        if (l->augment) {
            /* a generator per row, so the draws do not depend on which thread fills */
            nb_rng ar;
            nb_rng_seed(&ar, l->o.seed ^ ((uint64_t)l->epoch * 0x9E3779B97F4A7C15ull),
                        (uint64_t)(start + r));
            augment(l, d, l->aug_tmp[s], &ar);
        }
        if (l->y) {
            const nb_tensor *y = l->y;
            size_t ys = nb__esize(y->dtype);
            const char *yr = (const char *)y->data + src * l->ycols * (int64_t)ys;
            if (l->yb[s]->dtype == NB_I64)
                ((int64_t *)l->yb[s]->data)[r] = (int64_t)nb__load(y->dtype, yr);
            else
                for (int64_t j = 0; j < l->ycols; j++)
                    ((float *)l->yb[s]->data)[r * l->ycols + j] =
                        (float)nb__load(y->dtype, yr + j * (int64_t)ys);
        }
    }
}

static void *worker(void *arg)
{
    nb_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->quit && (l->job_batch < 0 || l->job_done))
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->quit)
            break;
        int64_t b = l->job_batch;
        int s = l->job_slot;
        pthread_mutex_unlock(&l->mu);
        fill(l, b, s);
        pthread_mutex_lock(&l->mu);
        l->job_done = true;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* Waits until no job runs (so both slots may be touched). */
static void settle(nb_loader *l)
{
    if (!l->thread_on)
        return;
    pthread_mutex_lock(&l->mu);
    while (l->job_batch >= 0 && !l->job_done)
        pthread_cond_wait(&l->cv, &l->mu);
    l->job_batch = -1;
    pthread_mutex_unlock(&l->mu);
}

static void request(nb_loader *l, int64_t b, int s)
{
    pthread_mutex_lock(&l->mu);
    l->job_batch = b;
    l->job_slot = s;
    l->job_done = false;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

nb_loader *nb_loader_new(nb_ctx *ctx, const nb_tensor *x, const nb_tensor *y, const int64_t *idx,
                         int64_t n, const nb_norm *norm, const nb_loader_opts *opts)
{
    if (!ctx)
        return NULL;
    nb_loader_opts o = opts ? *opts : nb_loader_opts_default();
    if (!idx)
        n = x ? x->shape[0] : 0;
    if (!rows_ok(ctx, "loader", x, idx, n))
        return NULL;
    if (o.batch_size < 1 || n < 1) {
        nb__err(ctx, NB_ERR_ARG, "loader: batch size (%lld) and rows (%lld) must be positive",
                (long long)o.batch_size, (long long)n);
        return NULL;
    }
    int64_t D = row_elems(x), ycols = 1;
    if (y) {
        if (!nb_is_contiguous(y) || y->ndim < 1 || y->shape[0] != x->shape[0] ||
            y->dtype == NB_F16 || y->dtype == NB_BF16) {
            char a[NB__SHAPE_BUF], b[NB__SHAPE_BUF];
            nb__err(ctx, NB_ERR_SHAPE, "loader: targets %s do not match features %s",
                    nb_shape_str(y, a, sizeof a), nb_shape_str(x, b, sizeof b));
            return NULL;
        }
        ycols = row_elems(y);
        if (o.tokens && !nb__is_int(y->dtype)) {
            nb__err(ctx, NB_ERR_DTYPE, "loader: tokens: targets are %s, they should be integer ids",
                    nb_dtype_name(y->dtype));
            return NULL;
        }
        if (nb__is_int(y->dtype) && ycols != 1 && !o.tokens) {
            nb__err(ctx, NB_ERR_SHAPE, "loader: class ids must be one per row");
            return NULL;
        }
    }
    if (o.tokens && (!nb__is_int(x->dtype) || (norm && norm->kind != NB_NORM_NONE) ||
                     o.crop_pad > 0 || o.hflip || o.erase_p > 0)) {
        nb__err(ctx, NB_ERR_ARG, "loader: tokens: features must be integer ids (they are %s), "
                "without normalisation or augmentation", nb_dtype_name(x->dtype));
        return NULL;
    }
    if (norm && norm->kind != NB_NORM_NONE &&
        (!norm->mean || !norm->std || nb__numel(norm->mean) != (norm->kind == NB_NORM_FEATURE ? D : 1))) {
        nb__err(ctx, NB_ERR_SHAPE, "loader: normalisation does not match %lld features", (long long)D);
        return NULL;
    }
    nb_loader *l = nb__heap_alloc(ctx, sizeof *l);
    if (!l) {
        nb__err(ctx, NB_ERR_NOMEM, "loader: allocator failed");
        return NULL;
    }
    memset(l, 0, sizeof *l);
    l->x = x;
    l->y = y;
    l->norm = norm;
    l->o = o;
    l->n = n;
    l->D = D;
    l->ycols = ycols;
    l->job_batch = -1;
    l->nbatches = o.drop_last ? n / o.batch_size : (n + o.batch_size - 1) / o.batch_size;
    l->idx = nb__heap_alloc(ctx, sizeof(int64_t) * (size_t)n * 2);
    bool ok = l->idx != NULL;
    if (ok) {
        l->order = l->idx + n;
        for (int64_t i = 0; i < n; i++)
            l->idx[i] = idx ? idx[i] : i;
    }
    l->augment = o.crop_pad > 0 || o.hflip || o.erase_p > 0;
    if (ok && l->augment) {
        if (x->ndim != 3 && x->ndim != 4) {
            nb__err(ctx, NB_ERR_ARG, "loader: augmentation needs images [N, H, W] or [N, C, H, W]");
            ok = false;
        } else if (o.crop_pad < 0 || !(o.erase_p >= 0 && o.erase_p <= 1)) {
            nb__err(ctx, NB_ERR_ARG, "loader: crop_pad must be >= 0 and erase_p in [0, 1]");
            ok = false;
        } else {
            l->aug_tmp[0] = nb__heap_alloc(ctx, sizeof(float) * (size_t)D * 2);
            ok = l->aug_tmp[0] != NULL;
            if (ok)
                l->aug_tmp[1] = l->aug_tmp[0] + D;
        }
    }
    int64_t xs[NB_MAX_DIMS], ysh[2] = {o.batch_size, ycols};
    xs[0] = o.batch_size;
    for (int d = 1; d < x->ndim; d++)
        xs[d] = x->shape[d];
    for (int s = 0; ok && s < 2; s++) {
        l->xb[s] = nb_buffer(ctx, o.tokens ? NB_I64 : NB_F32, x->ndim, xs);
        ok = l->xb[s] != NULL;
        if (ok && y && o.tokens) { /* ids of y's row shape */
            int64_t ts[NB_MAX_DIMS] = {o.batch_size};
            for (int d = 1; d < y->ndim; d++)
                ts[d] = y->shape[d];
            l->yb[s] = nb_buffer(ctx, NB_I64, y->ndim, ts);
            ok = l->yb[s] != NULL;
        } else if (ok && y) {
            bool ids = nb__is_int(y->dtype);
            l->yb[s] = nb_buffer(ctx, ids ? NB_I64 : NB_F32, ids ? 1 : (y->ndim == 1 ? 1 : 2), ysh);
            ok = l->yb[s] != NULL;
        }
    }
    if (ok && o.prefetch) {
        ok = pthread_mutex_init(&l->mu, NULL) == 0;
        if (ok && pthread_cond_init(&l->cv, NULL) != 0) {
            pthread_mutex_destroy(&l->mu);
            ok = false;
        }
        if (ok && pthread_create(&l->th, NULL, worker, l) != 0) {
            pthread_cond_destroy(&l->cv);
            pthread_mutex_destroy(&l->mu);
            ok = false;
        }
        l->thread_on = ok;
        if (!ok)
            nb__err(ctx, NB_ERR_NOMEM, "loader: cannot start the prefetch thread");
    }
    if (!ok || nb_loader_start(ctx, l, 0) != NB_OK) {
        if (ctx->err == NB_OK)
            nb__err(ctx, NB_ERR_NOMEM, "loader: allocator failed");
        nb_loader_free(ctx, l);
        return NULL;
    }
    return l;
}

void nb_loader_free(nb_ctx *ctx, nb_loader *l)
{
    if (!ctx || !l)
        return;
    if (l->thread_on) {
        pthread_mutex_lock(&l->mu);
        l->quit = true;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->th, NULL);
        pthread_cond_destroy(&l->cv);
        pthread_mutex_destroy(&l->mu);
    }
    for (int s = 0; s < 2; s++) {
        nb_tensor_free(ctx, l->xb[s]);
        nb_tensor_free(ctx, l->yb[s]);
    }
    nb__heap_free(ctx, l->aug_tmp[0]);
    nb__heap_free(ctx, l->idx);
    nb__heap_free(ctx, l);
}

nb_status nb_loader_start(nb_ctx *ctx, nb_loader *l, int64_t epoch)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!l || epoch < 0)
        return nb__err(ctx, NB_ERR_ARG, "loader_start: bad loader or epoch");
    settle(l);
    memcpy(l->order, l->idx, sizeof(int64_t) * (size_t)l->n);
    if (l->o.shuffle)
        shuffle(l->order, l->n, l->o.seed, (uint64_t)epoch + 1);
    l->epoch = epoch;
    l->pos = 0;
    if (l->thread_on && l->nbatches > 0)
        request(l, 0, 0);
    return NB_OK;
}

nb_status nb_loader_seek(nb_ctx *ctx, nb_loader *l, int64_t b)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!l || b < 0 || b > l->nbatches)
        return nb__err(ctx, NB_ERR_ARG, "loader_seek: batch %lld outside [0, %lld]", (long long)b,
                       l ? (long long)l->nbatches : 0LL);
    settle(l);
    l->pos = b;
    if (l->thread_on && b < l->nbatches)
        request(l, b, (int)(b & 1));
    return NB_OK;
}

nb_status nb_loader_next(nb_ctx *ctx, nb_loader *l, nb_tensor **x, nb_tensor **y)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!l || !x)
        return nb__err(ctx, NB_ERR_NULL, "loader_next: loader or output is NULL");
    *x = NULL;
    if (y)
        *y = NULL;
    if (l->pos >= l->nbatches)
        return NB_OK;
    int64_t b = l->pos;
    int s = (int)(b & 1);
    if (l->thread_on) {
        pthread_mutex_lock(&l->mu);
        bool mine = l->job_batch == b;
        while (mine && !l->job_done)
            pthread_cond_wait(&l->cv, &l->mu);
        pthread_mutex_unlock(&l->mu);
        if (!mine) {
            settle(l);
            fill(l, b, s);
        }
        /* the caller is done with the other slot: fill it with the next batch */
        if (b + 1 < l->nbatches)
            request(l, b + 1, 1 - s);
    } else {
        fill(l, b, s);
    }
    int64_t rows = l->n - b * l->o.batch_size < l->o.batch_size ? l->n - b * l->o.batch_size
                                                                  : l->o.batch_size;
    nb_tensor *xv = nb__new_view(ctx, l->xb[s]);
    nb_tensor *yv = l->y && y ? nb__new_view(ctx, l->yb[s]) : NULL;
    if (!xv || (l->y && y && !yv))
        return ctx->err;
    xv->shape[0] = rows;
    if (yv)
        yv->shape[0] = rows;
    *x = xv;
    if (y)
        *y = yv;
    l->cur = s;
    l->pos++;
    return NB_OK;
}

int64_t nb_loader_batches(const nb_loader *l) { return l ? l->nbatches : 0; }
int64_t nb_loader_rows(const nb_loader *l) { return l ? l->n : 0; }
