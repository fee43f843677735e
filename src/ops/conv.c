/* 2-D convolution and its transpose, NCHW, by im2col + GEMM per image.
 *
 *   conv2d            y[n, g] = W_g col(x[n, g]) + b        W_g [Og, Cg kh kw]
 *     backward        dW_g += dy[n, g] col(x[n, g])^T;  db += sum over positions of dy
 *                     dx[n, g] += col2im(W_g^T dy[n, g])
 *   conv_transpose2d  y[n, g] = col2im(W_g^T x[n, g]) + b   W_g [Cg, Og kh kw]
 *     backward        dx[n, g] += W_g col(dy[n, g]);  dW_g += x[n, g] col(dy[n, g])^T
 * (col and col2im in the geometry of the convolution whose adjoint this is).
 * Nothing is saved: the columns are rebuilt in backward, which costs less
 * than keeping [C kh kw, OH OW] per image.
 *
 * Why per image: the column buffer of one image (conv 32->64 3x3 on 14x14:
 * 288 x 196 floats, 225 KB) stays in cache between im2col and the GEMM, and
 * the result lands in NCHW order with no transpose. Threads take disjoint
 * ranges of images, each with its own column buffers from the arena and a
 * single-threaded GEMM; weight and bias gradients go to per-thread partial
 * sums that are added at the end, so no two threads write one element.
 * A 1x1 convolution with stride 1 and no padding skips im2col (col = x).
 *
 * Fused epilogues (conv2d): the ReLU, and 2x2 / 2 max pooling after it
 * (nb_conv_opts.max_pool). With pooling each image's full output lives only
 * in a per-thread scratch plane (Winograd: in its tiles, which are the
 * pooling windows), and backward routes the pooled gradient to each
 * window's argmax (0..3, an int32: a byte measured 1.8x slower to store from
 * the vectorised loop) and through the ReLU (pooled y > 0)
 * before the usual products. */
#include "core/internal.h"
#include "kernels/gemm.h"
#include "kernels/im2col.h"
#include "kernels/parallel.h"
#include "kernels/winograd.h"

#include <stdio.h>

/* Columns (or Winograd's V) of a whole batch kept from forward for the
 * weight gradient when they take at most this many bytes (e.g. 14.5 MB of
 * columns, 6.4 MB of V, for the 14x14 conv of the benchmark CNN at batch
 * 64); larger ones are rebuilt in backward. Tests lower it to reach the
 * rebuilding paths. */
size_t nb__conv_keep_bytes = (size_t)64 << 20;

nb_conv_opts nb_conv_opts_default(void)
{
    nb_conv_opts o;
    memset(&o, 0, sizeof o);
    o.stride[0] = o.stride[1] = 1;
    o.dilation[0] = o.dilation[1] = 1;
    o.groups = 1;
    return o;
}

typedef struct {
    nb_dtype dt;
    bool transpose;
    nb__geom g;             /* per group: image [Cg, H, W] -> grid OH x OW (conv2d), or
                               image [Og, OH, OW] -> grid H x W (transpose) */
    int64_t N, groups, Cin_g, Out_g, K; /* K = rows of col per group */
    int64_t in_plane, out_plane;        /* elements per channel of x and of y */
    bool direct;            /* 1x1, stride 1, no padding: col is the image itself */
    bool relu;              /* fused ReLU on the output (conv2d) */
    bool wino;              /* Winograd F(2x2, 3x3) instead of im2col (kernels/winograd.h) */
    bool pool;              /* fused 2x2 / 2 max pooling: y is [N, O, PH, PW] */
    int64_t PH, PW;
    char *yscr;             /* pool, im2col: per part, one group's full output */
    bool half;              /* pool, im2col, even width: the output rows of parity a = 0, 1
                               come from a conv of stride 2 s and padding p - a s (hg[a]), so
                               each plane is [2][PH][OW] and window k = (i, j) reads elements
                               2k, 2k + 1 of both halves: one pooling loop per plane */
    nb__geom hg[2];
    int32_t *codes;         /* pool: argmax 0..3 per window, [N, O, PH, PW], or NULL */
    const char *yout;       /* backward with relu: the output (pooled with pool), for the mask */
    char *gmask;            /* backward with relu or pool: per part, one group's full dy */
    char *wt;               /* conv2d backward: W_g^T [K, Og] per group, made once, so the
                               per-image input-gradient GEMMs read a row-major A (OpenBLAS
                               packed the transposed W slowly on every call: 8% of a step) */
    const char *x, *w, *b, *gy;
    char *y, *dx, *dw, *db;
    char *ws;               /* per part: col and dcol buffers */
    char *cols;             /* all images' columns, kept from forward for backward, or NULL */
    int64_t ws_elems;       /* per buffer */
    char *dw_part, *db_part;/* per part partial sums (NULL: write dw/db directly) */
    int parts;
} conv_job;

static void im2col_g(nb_dtype dt, const nb__geom *g, const void *img, void *col)
{
    if (dt == NB_F32)
        nb__im2col_f32(g, img, col);
    else
        nb__im2col_f64(g, img, col);
}

static void col2im_g(nb_dtype dt, const nb__geom *g, const void *col, void *img)
{
    if (dt == NB_F32)
        nb__col2im_f32(g, col, img);
    else
        nb__col2im_f64(g, col, img);
}

static void im2col(const conv_job *J, const void *img, void *col) { im2col_g(J->dt, &J->g, img, col); }
static void col2im(const conv_job *J, const void *col, void *img) { col2im_g(J->dt, &J->g, col, img); }

static nb__mat mat(const void *p, int64_t rs, int64_t cs)
{
    nb__mat m = {p, rs, cs};
    return m;
}

/* Adds the row sums of a [rows, cols] block into acc[rows]. float32 rows
 * are summed in 16 float lanes (vectorised), the lanes then in double. */
static void row_sums(nb_dtype dt, const void *a, int64_t rows, int64_t cols, void *acc)
{
    for (int64_t r = 0; r < rows; r++) {
        if (dt == NB_F32) {
            const float *x = (const float *)a + r * cols;
            float lane[16] = {0};
            int64_t c = 0;
            for (; c + 16 <= cols; c += 16)
                for (int l = 0; l < 16; l++)
                    lane[l] += x[c + l];
            double s = 0;
            for (int l = 0; l < 16; l++)
                s += lane[l];
            for (; c < cols; c++)
                s += x[c];
            ((float *)acc)[r] += (float)s;
        } else {
            const double *x = (const double *)a + r * cols;
            double s = 0;
            for (int64_t c = 0; c < cols; c++)
                s += x[c];
            ((double *)acc)[r] += s;
        }
    }
}

/* Fills each row of y [rows, cols] with b[r] (or 0 when b is NULL). */
static void fill_rows(nb_dtype dt, void *y, const void *b, int64_t rows, int64_t cols)
{
    size_t es = nb__esize(dt);
    for (int64_t r = 0; r < rows; r++) {
        char *row = (char *)y + r * cols * (int64_t)es;
        if (!b) {
            memset(row, 0, (size_t)cols * es);
        } else if (dt == NB_F32) {
            float v = ((const float *)b)[r];
            for (int64_t c = 0; c < cols; c++)
                ((float *)row)[c] = v;
        } else {
            double v = ((const double *)b)[r];
            for (int64_t c = 0; c < cols; c++)
                ((double *)row)[c] = v;
        }
    }
}

static void relu_inplace(nb_dtype dt, void *y, int64_t n)
{
    if (dt == NB_F32) {
        float *p = y;
        for (int64_t i = 0; i < n; i++)
            p[i] = p[i] > 0 ? p[i] : 0.0f;
    } else {
        double *p = y;
        for (int64_t i = 0; i < n; i++)
            p[i] = p[i] > 0 ? p[i] : 0.0;
    }
}

/* out = g where y > 0, else 0 (the fused ReLU's backward); both values are
 * loaded unconditionally so the select vectorises (measured: the branchy
 * form took 20% of the CNN step on random masks) */
static void relu_mask(nb_dtype dt, const void *g, const void *y, void *out, int64_t n)
{
    if (dt == NB_F32) {
        const float *restrict a = g, *restrict b = y;
        float *restrict o = out;
        for (int64_t i = 0; i < n; i++) {
            float av = a[i], bv = b[i];
            o[i] = bv > 0.0f ? av : 0.0f;
        }
    } else {
        const double *restrict a = g, *restrict b = y;
        double *restrict o = out;
        for (int64_t i = 0; i < n; i++) {
            double av = a[i], bv = b[i];
            o[i] = bv > 0.0 ? av : 0.0;
        }
    }
}

/* The fused pooling of one output plane [OH, OW] -> [PH, PW] (argmax 0..3
 * in codes when given; ties keep the first, NaN wins, as max_pool2d), and
 * its adjoint: out [OH, OW] = the pooled gradient g at each window's argmax
 * where the pooled y > 0 (y given: the ReLU's mask), else 0. */
#define POOL2(T, SUF, UT)                                                                  \
    /* one output row; branch-free with restrict pointers so it vectorises (the            \
     * NULL tests sit outside the loops: inside, gcc 12 gives up) */                       \
    static inline void pool2_row_##SUF(int64_t n, const T *restrict r0, const T *restrict r1, \
                                       T *restrict out, int32_t *restrict code)            \
    {                                                                                      \
        if (!code) {                                                                       \
            for (int64_t j = 0; j < n; j++) {                                              \
                T a = r0[2 * j], v1 = r0[2 * j + 1], v2 = r1[2 * j], v3 = r1[2 * j + 1];   \
                a = ((v1 > a) | (v1 != v1)) ? v1 : a;                                      \
                a = ((v2 > a) | (v2 != v2)) ? v2 : a;                                      \
                out[j] = ((v3 > a) | (v3 != v3)) ? v3 : a;                                 \
            }                                                                              \
            return;                                                                        \
        }                                                                                  \
        for (int64_t j = 0; j < n; j++) {                                                  \
            T a = r0[2 * j], v1 = r0[2 * j + 1], v2 = r1[2 * j], v3 = r1[2 * j + 1];       \
            int32_t c = 0;                                                                 \
            bool t1 = (v1 > a) | (v1 != v1);                                               \
            a = t1 ? v1 : a;                                                               \
            c = t1 ? 1 : c;                                                                \
            bool t2 = (v2 > a) | (v2 != v2);                                               \
            a = t2 ? v2 : a;                                                               \
            c = t2 ? 2 : c;                                                                \
            bool t3 = (v3 > a) | (v3 != v3);                                               \
            a = t3 ? v3 : a;                                                               \
            c = t3 ? 3 : c;                                                                \
            out[j] = a;                                                                    \
            code[j] = c;                                                                   \
        }                                                                                  \
    }                                                                                      \
    static void pool2_##SUF(const conv_job *J, const T *src, T *dst, int32_t *codes)       \
    {                                                                                      \
        int64_t OW = J->g.OW;                                                              \
        for (int64_t i = 0; i < J->PH; i++)                                                \
            pool2_row_##SUF(J->PW, src + 2 * i * OW, src + (2 * i + 1) * OW, dst + i * J->PW, \
                            codes ? codes + i * J->PW : NULL);                             \
    }                                                                                      \
    /* bit masks, not selects: the select form did not vectorise (4x slower) */            \
    static inline UT bits_##SUF(T x)                                                       \
    {                                                                                      \
        UT u;                                                                              \
        memcpy(&u, &x, sizeof u);                                                          \
        return u;                                                                          \
    }                                                                                      \
    static inline T value_##SUF(UT u)                                                      \
    {                                                                                      \
        T x;                                                                               \
        memcpy(&x, &u, sizeof x);                                                          \
        return x;                                                                          \
    }                                                                                      \
    static inline void unpool2_row_##SUF(int64_t n, const T *restrict g, const T *restrict y, \
                                         const int32_t *restrict code, T *restrict r0,     \
                                         T *restrict r1)                                   \
    {                                                                                      \
        for (int64_t j = 0; j < n; j++) {                                                  \
            UT v = bits_##SUF(g[j]) & ((UT)0 - (UT)(!y || y[j] > 0));                      \
            int32_t c = code[j];                                                           \
            r0[2 * j] = value_##SUF(v & ((UT)0 - (UT)(c == 0)));                           \
            r0[2 * j + 1] = value_##SUF(v & ((UT)0 - (UT)(c == 1)));                       \
            r1[2 * j] = value_##SUF(v & ((UT)0 - (UT)(c == 2)));                           \
            r1[2 * j + 1] = value_##SUF(v & ((UT)0 - (UT)(c == 3)));                       \
        }                                                                                  \
    }                                                                                      \
    static void unpool2_##SUF(const conv_job *J, const T *g, const T *y,                   \
                              const int32_t *codes, T *out)                                \
    {                                                                                      \
        int64_t OH = J->g.OH, OW = J->g.OW;                                                \
        for (int64_t i = 0; i < J->PH; i++) {                                              \
            T *r0 = out + 2 * i * OW;                                                      \
            unpool2_row_##SUF(J->PW, g + i * J->PW, y ? y + i * J->PW : NULL,              \
                              codes + i * J->PW, r0, r0 + OW);                             \
            if (OW & 1) /* the column no window covers */                                  \
                r0[OW - 1] = r0[2 * OW - 1] = 0;                                           \
        }                                                                                  \
        if (OH & 1)                                                                        \
            memset(out + (OH - 1) * OW, 0, (size_t)OW * sizeof(T));                        \
    }
POOL2(float, f32, uint32_t)
POOL2(double, f64, uint64_t)

/* one pooling row over n windows (r0, r1: the windows' two input rows) */
static void pool_rows(nb_dtype dt, int64_t n, const void *r0, const void *r1, void *dst,
                      int32_t *codes)
{
    if (dt == NB_F32)
        pool2_row_f32(n, r0, r1, dst, codes);
    else
        pool2_row_f64(n, r0, r1, dst, codes);
}

static void unpool_rows(nb_dtype dt, int64_t n, const void *g, const void *y, const int32_t *codes,
                        void *r0, void *r1)
{
    if (dt == NB_F32)
        unpool2_row_f32(n, g, y, codes, r0, r1);
    else
        unpool2_row_f64(n, g, y, codes, r0, r1);
}

static void pool2(const conv_job *J, const void *src, void *dst, int32_t *codes)
{
    if (J->dt == NB_F32)
        pool2_f32(J, src, dst, codes);
    else
        pool2_f64(J, src, dst, codes);
}

static void unpool2(const conv_job *J, const void *g, const void *y, const int32_t *codes,
                    void *out)
{
    if (J->dt == NB_F32)
        unpool2_f32(J, g, y, codes, out);
    else
        unpool2_f64(J, g, y, codes, out);
}

/* ---- forward ------------------------------------------------------------------- */
static void fwd_part(int64_t p0, int64_t p1, void *arg)
{
    const conv_job *J = arg;
    size_t es = nb__esize(J->dt);
    int64_t grid = J->g.OH * J->g.OW; /* columns of col */
    for (int64_t p = p0; p < p1; p++) {
        char *col = J->ws + p * 2 * J->ws_elems * (int64_t)es;
        for (int64_t n = J->N * p / J->parts; n < J->N * (p + 1) / J->parts; n++)
            for (int64_t gi = 0; gi < J->groups; gi++) {
                const char *xg = J->x + (n * J->groups + gi) * J->Cin_g * J->in_plane * (int64_t)es;
                char *yg = J->pool ? NULL /* the scratch, then pooled */
                                   : J->y + (n * J->groups + gi) * J->Out_g * J->out_plane * (int64_t)es;
                const char *bg = J->b ? J->b + gi * J->Out_g * (int64_t)es : NULL;
                if (!J->transpose) {
                    const char *wg = J->w + gi * J->Out_g * J->K * (int64_t)es;
                    if (J->half) { /* y [Og][2][PH OW] by row parity, then pooled per plane */
                        int64_t pp = J->PH * J->PW, hw = J->PH * J->g.OW;
                        int64_t at = (n * J->groups + gi) * J->Out_g * pp;
                        char *cols = J->cols ? J->cols + (n * J->groups + gi) * J->ws_elems * (int64_t)es
                                             : col;
                        char *yc = J->yscr + p * J->Out_g * grid * (int64_t)es;
                        if (bg)
                            fill_rows(J->dt, yc, bg, J->Out_g, 2 * hw);
                        for (int a = 0; a < 2; a++) {
                            char *ca = cols + a * J->K * hw * (int64_t)es;
                            im2col_g(J->dt, &J->hg[a], xg, ca);
                            nb__gemm(J->dt, J->Out_g, hw, J->K, 1.0, mat(wg, J->K, 1), mat(ca, hw, 1),
                                     bg ? 1.0 : 0.0, yc + a * hw * (int64_t)es, 2 * hw, 1);
                        }
                        if (J->relu)
                            relu_inplace(J->dt, yc, J->Out_g * 2 * hw);
                        for (int64_t oc = 0; oc < J->Out_g; oc++) {
                            const char *y0 = yc + oc * 2 * hw * (int64_t)es;
                            pool_rows(J->dt, pp, y0, y0 + hw * (int64_t)es, J->y + (at + oc * pp) * (int64_t)es,
                                      J->codes ? J->codes + at + oc * pp : NULL);
                        }
                        continue;
                    }
                    const void *c = xg;
                    if (!J->direct) {
                        char *dst = J->cols ? J->cols + (n * J->groups + gi) * J->ws_elems * (int64_t)es
                                            : col;
                        im2col(J, xg, dst);
                        c = dst;
                    }
                    char *yc = J->pool ? J->yscr + p * J->Out_g * grid * (int64_t)es : yg;
                    if (bg)
                        fill_rows(J->dt, yc, bg, J->Out_g, grid);
                    nb__gemm(J->dt, J->Out_g, grid, J->K, 1.0, mat(wg, J->K, 1), mat(c, grid, 1),
                             bg ? 1.0 : 0.0, yc, grid, 1);
                    if (J->relu) /* while the block is in cache */
                        relu_inplace(J->dt, yc, J->Out_g * grid);
                    if (J->pool) {
                        int64_t pp = J->PH * J->PW, at = (n * J->groups + gi) * J->Out_g * pp;
                        for (int64_t oc = 0; oc < J->Out_g; oc++)
                            pool2(J, yc + oc * grid * (int64_t)es, J->y + (at + oc * pp) * (int64_t)es,
                                  J->codes ? J->codes + at + oc * pp : NULL);
                    }
                } else {
                    /* col [K, in grid] = W_g^T x_g; y_g = col2im(col) + b */
                    const char *wg = J->w + gi * J->Cin_g * J->K * (int64_t)es;
                    int64_t hw = J->in_plane;
                    fill_rows(J->dt, yg, bg, J->Out_g, J->out_plane);
                    if (J->direct) {
                        nb__gemm(J->dt, J->K, hw, J->Cin_g, 1.0, mat(wg, 1, J->K), mat(xg, hw, 1),
                                 1.0, yg, hw, 1);
                    } else {
                        nb__gemm(J->dt, J->K, hw, J->Cin_g, 1.0, mat(wg, 1, J->K), mat(xg, hw, 1),
                                 0.0, col, hw, 1);
                        col2im(J, col, yg);
                    }
                }
            }
    }
}

/* ---- backward ------------------------------------------------------------------- */
static void bwd_part(int64_t p0, int64_t p1, void *arg)
{
    const conv_job *J = arg;
    size_t es = nb__esize(J->dt);
    int64_t grid = J->g.OH * J->g.OW, wsz = J->Out_g * J->K * J->groups;
    if (J->transpose)
        wsz = J->Cin_g * J->K * J->groups;
    for (int64_t p = p0; p < p1; p++) {
        char *col = J->ws + p * 2 * J->ws_elems * (int64_t)es, *dcol = col + J->ws_elems * (int64_t)es;
        char *dw = J->dw_part ? J->dw_part + p * wsz * (int64_t)es : J->dw;
        char *db = J->db_part ? J->db_part + p * J->Out_g * J->groups * (int64_t)es : J->db;
        for (int64_t n = J->N * p / J->parts; n < J->N * (p + 1) / J->parts; n++)
            for (int64_t gi = 0; gi < J->groups; gi++) {
                const char *xg = J->x + (n * J->groups + gi) * J->Cin_g * J->in_plane * (int64_t)es;
                const char *gyg = J->pool ? NULL /* set below */
                                          : J->gy + (n * J->groups + gi) * J->Out_g * J->out_plane * (int64_t)es;
                char *dxg = J->dx ? J->dx + (n * J->groups + gi) * J->Cin_g * J->in_plane * (int64_t)es
                                  : NULL;
                if (J->half) { /* dy [Og][2][PH OW] by row parity, then two products each */
                    int64_t pp = J->PH * J->PW, hw = J->PH * J->g.OW;
                    int64_t at = (n * J->groups + gi) * J->Out_g * pp;
                    char *m = J->gmask + p * J->Out_g * J->out_plane * (int64_t)es;
                    for (int64_t oc = 0; oc < J->Out_g; oc++) {
                        char *d0 = m + oc * 2 * hw * (int64_t)es;
                        unpool_rows(J->dt, pp, J->gy + (at + oc * pp) * (int64_t)es,
                                    J->relu ? J->yout + (at + oc * pp) * (int64_t)es : NULL,
                                    J->codes + at + oc * pp, d0, d0 + hw * (int64_t)es);
                    }
                    if (db)
                        row_sums(J->dt, m, J->Out_g, 2 * hw, db + gi * J->Out_g * (int64_t)es);
                    const char *wg = J->w + gi * J->Out_g * J->K * (int64_t)es;
                    char *cols = J->cols ? J->cols + (n * J->groups + gi) * J->ws_elems * (int64_t)es : col;
                    for (int a = 0; a < 2; a++) {
                        const char *da = m + a * hw * (int64_t)es;
                        char *ca = cols + a * J->K * hw * (int64_t)es;
                        if (dw) {
                            if (!J->cols)
                                im2col_g(J->dt, &J->hg[a], xg, ca);
                            nb__gemm(J->dt, J->Out_g, J->K, hw, 1.0, mat(da, 2 * hw, 1),
                                     mat(ca, 1, hw), 1.0, dw + gi * J->Out_g * J->K * (int64_t)es,
                                     J->K, 1);
                        }
                        if (dxg) {
                            nb__mat wt = J->wt ? mat(J->wt + gi * J->K * J->Out_g * (int64_t)es, J->Out_g, 1)
                                               : mat(wg, 1, J->K);
                            nb__gemm(J->dt, J->K, hw, J->Out_g, 1.0, wt, mat(da, 2 * hw, 1), 0.0,
                                     dcol, hw, 1);
                            col2im_g(J->dt, &J->hg[a], dcol, dxg);
                        }
                    }
                    continue;
                }
                if (J->pool) { /* dy: the pooled gradient at each window's argmax (and ReLU) */
                    char *m = J->gmask + p * J->Out_g * J->out_plane * (int64_t)es;
                    int64_t pp = J->PH * J->PW, at = (n * J->groups + gi) * J->Out_g * pp;
                    for (int64_t oc = 0; oc < J->Out_g; oc++)
                        unpool2(J, J->gy + (at + oc * pp) * (int64_t)es,
                                J->relu ? J->yout + (at + oc * pp) * (int64_t)es : NULL,
                                J->codes + at + oc * pp, m + oc * J->out_plane * (int64_t)es);
                    gyg = m;
                } else if (J->relu) { /* dy through the fused ReLU, one group of one image */
                    char *m = J->gmask + p * J->Out_g * J->out_plane * (int64_t)es;
                    relu_mask(J->dt, gyg,
                              J->yout + (n * J->groups + gi) * J->Out_g * J->out_plane * (int64_t)es, m,
                              J->Out_g * J->out_plane);
                    gyg = m;
                }
                if (db)
                    row_sums(J->dt, gyg, J->Out_g, J->out_plane, db + gi * J->Out_g * (int64_t)es);
                if (!J->transpose) {
                    const char *wg = J->w + gi * J->Out_g * J->K * (int64_t)es;
                    if (dw) { /* dW_g [Og, K] += dy_g [Og, grid] col^T [grid, K] */
                        const void *c = xg;
                        if (J->cols) {
                            c = J->cols + (n * J->groups + gi) * J->ws_elems * (int64_t)es;
                        } else if (!J->direct) {
                            im2col(J, xg, col);
                            c = col;
                        }
                        nb__gemm(J->dt, J->Out_g, J->K, grid, 1.0, mat(gyg, grid, 1),
                                 mat(c, 1, grid), 1.0, dw + gi * J->Out_g * J->K * (int64_t)es,
                                 J->K, 1);
                    }
                    if (dxg) { /* dcol [K, grid] = W_g^T dy_g; dx += col2im(dcol) */
                        nb__mat wt = J->wt ? mat(J->wt + gi * J->K * J->Out_g * (int64_t)es, J->Out_g, 1)
                                           : mat(wg, 1, J->K);
                        if (J->direct) {
                            nb__gemm(J->dt, J->K, grid, J->Out_g, 1.0, wt, mat(gyg, grid, 1), 1.0,
                                     dxg, grid, 1);
                        } else {
                            nb__gemm(J->dt, J->K, grid, J->Out_g, 1.0, wt, mat(gyg, grid, 1), 0.0,
                                     dcol, grid, 1);
                            col2im(J, dcol, dxg);
                        }
                    }
                } else {
                    const char *wg = J->w + gi * J->Cin_g * J->K * (int64_t)es;
                    int64_t hw = J->in_plane;
                    const void *c = gyg; /* col(dy_g) [K, hw] */
                    if (!J->direct) {
                        im2col(J, gyg, col);
                        c = col;
                    }
                    if (dxg) /* dx_g [Cg, hw] += W_g [Cg, K] col */
                        nb__gemm(J->dt, J->Cin_g, hw, J->K, 1.0, mat(wg, J->K, 1), mat(c, hw, 1),
                                 1.0, dxg, hw, 1);
                    if (dw) /* dW_g [Cg, K] += x_g [Cg, hw] col^T */
                        nb__gemm(J->dt, J->Cin_g, J->K, hw, 1.0, mat(xg, hw, 1), mat(c, 1, hw),
                                 1.0, dw + gi * J->Cin_g * J->K * (int64_t)es, J->K, 1);
                }
            }
    }
}

/* ---- checks and plans ------------------------------------------------------------ */
static void opts_to_attrs(const nb_conv_opts *o, nb__attrs *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 0; i < 2; i++) {
        a->axes[0 + i] = o->stride[i];
        a->axes[2 + i] = o->padding[i];
        a->axes[4 + i] = o->dilation[i];
        a->axes[6 + i] = o->output_padding[i];
    }
    a->i[0] = o->groups;
    a->i[1] = o->algo;
    a->i[2] = o->max_pool;
    a->flag = o->relu;
}

static nb_conv_opts attrs_to_opts(const nb__attrs *a)
{
    nb_conv_opts o;
    for (int i = 0; i < 2; i++) {
        o.stride[i] = a->axes[0 + i];
        o.padding[i] = a->axes[2 + i];
        o.dilation[i] = a->axes[4 + i];
        o.output_padding[i] = a->axes[6 + i];
    }
    o.groups = (int)a->i[0];
    o.algo = (int)a->i[1];
    o.max_pool = a->i[2] != 0;
    o.relu = a->flag != 0;
    return o;
}

/* Validates and builds the plan (everything but the data pointers). */
static bool plan(nb_ctx *ctx, const char *op, bool transpose, const nb_tensor *x,
                 const nb_tensor *w, const nb_tensor *b, const nb_conv_opts *o, conv_job *J,
                 int64_t *yshape)
{
    char sx[NB__SHAPE_BUF], sw[NB__SHAPE_BUF];
    memset(J, 0, sizeof *J);
    if (!nb__is_float(x->dtype) || x->dtype != w->dtype || (b && b->dtype != x->dtype)) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: needs float tensors of one dtype, got %s and %s", op,
                nb_dtype_name(x->dtype), nb_dtype_name(w->dtype));
        return false;
    }
    if (x->ndim != 4 || w->ndim != 4) {
        nb__err(ctx, NB_ERR_SHAPE, "%s: expects input [N, C, H, W] and weight of rank 4, got %s and %s",
                op, nb_shape_str(x, sx, sizeof sx), nb_shape_str(w, sw, sizeof sw));
        return false;
    }
    for (int i = 0; i < 2; i++)
        if (o->stride[i] < 1 || o->dilation[i] < 1 || o->padding[i] < 0 || o->output_padding[i] < 0 ||
            (transpose && o->output_padding[i] >= (o->stride[i] > o->dilation[i] ? o->stride[i] : o->dilation[i])) ||
            (!transpose && o->output_padding[i] != 0)) {
            nb__err(ctx, NB_ERR_ARG,
                    "%s: stride %dx%d and dilation %dx%d must be >= 1, padding %dx%d >= 0, "
                    "output_padding %dx%d below stride or dilation (transpose only)",
                    op, o->stride[0], o->stride[1], o->dilation[0], o->dilation[1], o->padding[0],
                    o->padding[1], o->output_padding[0], o->output_padding[1]);
            return false;
        }
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t G = o->groups, kh = w->shape[2], kw = w->shape[3];
    int64_t O = transpose ? w->shape[1] * G : w->shape[0];
    if (G < 1 || C % G || O % G || (transpose ? w->shape[0] != C : w->shape[1] * G != C)) {
        nb__err(ctx, NB_ERR_SHAPE, "%s: %lld groups do not fit input %s and weight %s", op,
                (long long)G, nb_shape_str(x, sx, sizeof sx), nb_shape_str(w, sw, sizeof sw));
        return false;
    }
    if (b && (b->ndim != 1 || b->shape[0] != O)) {
        nb__err(ctx, NB_ERR_SHAPE, "%s: bias %s does not match %lld output channels", op,
                nb_shape_str(b, sx, sizeof sx), (long long)O);
        return false;
    }
    int64_t ekh = o->dilation[0] * (kh - 1) + 1, ekw = o->dilation[1] * (kw - 1) + 1;
    int64_t OH, OW;
    if (!transpose) {
        if (kh < 1 || kw < 1 || ekh > H + 2 * o->padding[0] || ekw > W + 2 * o->padding[1]) {
            nb__err(ctx, NB_ERR_SHAPE,
                    "%s: kernel %lldx%lld (%lldx%lld dilated) larger than the padded input %lldx%lld",
                    op, (long long)kh, (long long)kw, (long long)ekh, (long long)ekw,
                    (long long)(H + 2 * o->padding[0]), (long long)(W + 2 * o->padding[1]));
            return false;
        }
        OH = (H + 2 * o->padding[0] - ekh) / o->stride[0] + 1;
        OW = (W + 2 * o->padding[1] - ekw) / o->stride[1] + 1;
    } else {
        OH = (H - 1) * o->stride[0] - 2 * o->padding[0] + ekh + o->output_padding[0];
        OW = (W - 1) * o->stride[1] - 2 * o->padding[1] + ekw + o->output_padding[1];
        if (kh < 1 || kw < 1 || OH < 1 || OW < 1) {
            nb__err(ctx, NB_ERR_SHAPE, "%s: input %s and weight %s give an empty output %lldx%lld",
                    op, nb_shape_str(x, sx, sizeof sx), nb_shape_str(w, sw, sizeof sw),
                    (long long)OH, (long long)OW);
            return false;
        }
    }
    J->dt = x->dtype;
    J->transpose = transpose;
    J->N = N;
    J->groups = G;
    J->Cin_g = C / G;
    J->Out_g = O / G;
    J->in_plane = H * W;
    J->out_plane = OH * OW;
    nb__geom *g = &J->g;
    g->kh = kh;
    g->kw = kw;
    g->sh = o->stride[0];
    g->sw = o->stride[1];
    g->ph = o->padding[0];
    g->pw = o->padding[1];
    g->dh = o->dilation[0];
    g->dw = o->dilation[1];
    if (!transpose) { /* image = x's group, grid = y */
        g->C = J->Cin_g, g->H = H, g->W = W, g->OH = OH, g->OW = OW;
        J->K = J->Cin_g * kh * kw;
    } else { /* image = y's group, grid = x */
        g->C = J->Out_g, g->H = OH, g->W = OW, g->OH = H, g->OW = W;
        J->K = J->Out_g * kh * kw;
    }
    if (o->relu && transpose) {
        nb__err(ctx, NB_ERR_ARG, "%s: the fused ReLU is for conv2d only", op);
        return false;
    }
    J->relu = o->relu;
    if (o->max_pool && (transpose || OH < 2 || OW < 2)) {
        if (transpose)
            nb__err(ctx, NB_ERR_ARG, "%s: the fused max pooling is for conv2d only", op);
        else
            nb__err(ctx, NB_ERR_SHAPE, "%s: the fused 2x2 max pooling needs an output of at least "
                    "2x2, got %lldx%lld", op, (long long)OH, (long long)OW);
        return false;
    }
    J->pool = o->max_pool;
    J->PH = OH / 2;
    J->PW = OW / 2;
    if (o->algo < NB_CONV_AUTO || o->algo > NB_CONV_WINOGRAD) {
        nb__err(ctx, NB_ERR_ARG, "%s: algo %d is not an nb_conv_algo", op, o->algo);
        return false;
    }
    if (transpose && o->algo != NB_CONV_AUTO) {
        nb__err(ctx, NB_ERR_ARG, "%s: algo %d given; conv_transpose2d takes NB_CONV_AUTO only", op,
                o->algo);
        return false;
    }
    bool wino_ok = !transpose && kh == 3 && kw == 3 && g->sh == 1 && g->sw == 1 && g->dh == 1 &&
                   g->dw == 1 && G == 1;
    if (o->algo == NB_CONV_WINOGRAD && !wino_ok) {
        nb__err(ctx, NB_ERR_ARG, "%s: algo winograd needs a 3x3 kernel, stride 1, dilation 1 and "
                "one group, got %lldx%lld, stride %dx%d, dilation %dx%d, %lld groups", op,
                (long long)kh, (long long)kw, o->stride[0], o->stride[1], o->dilation[0],
                o->dilation[1], (long long)G);
        return false;
    }
    J->wino = o->algo == NB_CONV_WINOGRAD ||
              (o->algo == NB_CONV_AUTO && wino_ok && C >= NB_CONV_WINOGRAD_MIN_CHANNELS &&
               O >= NB_CONV_WINOGRAD_MIN_CHANNELS);
    J->direct = kh == 1 && kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0 &&
                g->H == g->OH && g->W == g->OW;
    J->ws_elems = J->direct ? 0 : J->K * g->OH * g->OW; /* >= the halves' 2 K PH OW */
    J->half = J->pool && !J->wino && !J->direct && !(OW & 1) && g->ph >= g->sh;
    for (int a = 0; a < 2 && J->half; a++) {
        J->hg[a] = *g;
        J->hg[a].sh = 2 * g->sh;
        J->hg[a].ph = g->ph - a * g->sh;
        J->hg[a].OH = OH / 2;
    }
    yshape[0] = N;
    yshape[1] = O;
    yshape[2] = J->pool ? J->PH : OH;
    yshape[3] = J->pool ? J->PW : OW;
    return true;
}

static int parts_for(nb_ctx *ctx, int64_t N)
{
    return ctx->nthreads < N ? ctx->nthreads : (int)(N > 0 ? N : 1);
}

static nb_tensor *conv_any(nb_ctx *ctx, const char *op, bool transpose, nb_tensor *x,
                           nb_tensor *w, nb_tensor *b, const nb_conv_opts *opts)
{
    if (!ctx || nb__null_in(ctx, op, 2, x, w))
        return NULL;
    nb_conv_opts o = opts ? *opts : nb_conv_opts_default();
    conv_job J;
    int64_t ys[4];
    if (!plan(ctx, op, transpose, x, w, b, &o, &J, ys))
        return NULL;
    x = nb_contiguous(ctx, x);
    w = nb_contiguous(ctx, w);
    b = b ? nb_contiguous(ctx, b) : NULL;
    if (!x || !w)
        return NULL;
    nb_tensor *y = nb__new_step(ctx, x->dtype, 4, ys);
    if (!y)
        return NULL;
    J.parts = parts_for(ctx, J.N);
    size_t es = nb__esize(J.dt);
    nb_tensor *in[3] = {x, w, b};
    bool grad = nb__needs_grad(ctx, b ? 3 : 2, in);
    bool keep = grad && (w->flags & NB_REQUIRES_GRAD); /* the weight gradient will need x's columns */
    nb_tensor *cols = NULL; /* kept for backward: im2col's columns or Winograd's V */
    nb_tensor *codes = NULL; /* the fused pooling's argmax, for backward */
    if (J.pool && grad) {
        if (!(codes = nb__new_step(ctx, NB_I32, 4, ys)))
            return NULL;
        J.codes = codes->data;
    }
    if (J.wino) {
        nb__wino P;
        nb__wino_plan(&P, J.dt, J.N, J.Cin_g, x->shape[2], x->shape[3], J.Out_g, J.g.ph, J.g.pw,
                      J.pool, ctx->nthreads);
        int64_t vs[1] = {nb__wino_saved_elems(&P)};
        if (keep && (size_t)vs[0] * es <= nb__conv_keep_bytes && !(cols = nb__new_step(ctx, J.dt, 1, vs)))
            return NULL;
        size_t bytes = nb__wino_fwd_bytes(&P, cols != NULL);
        void *ws = nb__arena_alloc(ctx, bytes);
        if (!ws) {
            nb__arena_err(ctx, op, bytes);
            return NULL;
        }
        nb__wino_forward(&P, x->data, w->data, b ? b->data : NULL, J.relu, y->data, J.codes,
                         cols ? cols->data : NULL, ws);
    } else {
        if (J.ws_elems) {
            size_t bytes = (size_t)(2 * J.ws_elems * J.parts) * es;
            J.ws = nb__arena_alloc(ctx, bytes);
            if (!J.ws) {
                nb__arena_err(ctx, op, bytes);
                return NULL;
            }
        }
        if (J.pool) {
            size_t bytes = (size_t)(J.Out_g * J.out_plane * J.parts) * es;
            if (!(J.yscr = nb__arena_alloc(ctx, bytes))) {
                nb__arena_err(ctx, op, bytes);
                return NULL;
            }
        }
        J.x = x->data;
        J.w = w->data;
        J.b = b ? b->data : NULL;
        J.y = y->data;
        if (keep && !transpose && J.ws_elems &&
            (size_t)(J.N * J.groups * J.ws_elems) * es <= nb__conv_keep_bytes) {
            /* keep every image's columns rather than rebuild them in
             * backward (measured: half of im2col's time) */
            int64_t cs[3] = {J.N * J.groups, J.K, J.g.OH * J.g.OW};
            cols = nb__new_step(ctx, x->dtype, 3, cs);
            if (!cols)
                return NULL;
            J.cols = cols->data;
        }
        int64_t flops = 2 * J.K * J.Out_g * J.groups * (transpose ? J.in_plane : J.out_plane);
        nb__parallel_for(ctx->nthreads, J.parts, flops * J.N / J.parts, fwd_part, &J);
    }
    if (grad) {
        nb__node *n = nb__record(ctx, transpose ? NB__OP_CONV_TRANSPOSE2D : NB__OP_CONV2D, y,
                                 b ? 3 : 2, in);
        if (!n)
            return NULL;
        opts_to_attrs(&o, &n->a);
        n->saved[0] = cols;
        n->saved[1] = codes;
    }
    return y;
}

nb_tensor *nb_conv2d(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb_conv_opts *o)
{
    return conv_any(ctx, "conv2d", false, x, w, b, o);
}

nb_tensor *nb_conv_transpose2d(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b,
                               const nb_conv_opts *o)
{
    return conv_any(ctx, "conv_transpose2d", true, x, w, b, o);
}

nb_tensor *nb_conv1d(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb_conv_opts *opts)
{
    if (!ctx || nb__null_in(ctx, "conv1d", 2, x, w))
        return NULL;
    if (x->ndim != 3 || w->ndim != 3) {
        char sx[NB__SHAPE_BUF], sw[NB__SHAPE_BUF];
        nb__err(ctx, NB_ERR_SHAPE, "conv1d: expects input [N, C, L] and weight [O, C/groups, k], got %s and %s",
                nb_shape_str(x, sx, sizeof sx), nb_shape_str(w, sw, sizeof sw));
        return NULL;
    }
    /* [N, C, 1, L] through conv2d with the length options in index 1 */
    nb_conv_opts o = opts ? *opts : nb_conv_opts_default();
    o.stride[0] = o.dilation[0] = 1;
    o.padding[0] = o.output_padding[0] = 0;
    nb_tensor *y = nb_conv2d(ctx, nb_unsqueeze(ctx, x, 2), nb_unsqueeze(ctx, w, 2), b, &o);
    return y ? nb_squeeze(ctx, y, 2) : NULL;
}

nb_status nb__conv2d_backward(nb_ctx *ctx, nb__node *node);

static nb_status conv_backward(nb_ctx *ctx, nb__node *node, bool transpose)
{
    nb_tensor *x = node->in[0], *w = node->in[1], *b = node->n_in > 2 ? node->in[2] : NULL;
    nb_tensor *dx, *dw, *db = NULL;
    nb_status st = nb__grad_of(ctx, x, &dx);
    if (st == NB_OK)
        st = nb__grad_of(ctx, w, &dw);
    if (st == NB_OK && b)
        st = nb__grad_of(ctx, b, &db);
    if (st != NB_OK)
        return st;
    nb_conv_opts o = attrs_to_opts(&node->a);
    conv_job J;
    int64_t ys[4];
    plan(ctx, transpose ? "conv_transpose2d" : "conv2d", transpose, x, w, b, &o, &J, ys);
    if (J.wino) {
        nb__wino P;
        nb__wino_plan(&P, J.dt, J.N, J.Cin_g, x->shape[2], x->shape[3], J.Out_g, J.g.ph, J.g.pw,
                      J.pool, ctx->nthreads);
        const nb_tensor *v = node->saved[0];
        size_t bytes = nb__wino_bwd_bytes(&P, v != NULL);
        void *ws = nb__arena_alloc(ctx, bytes);
        if (!ws)
            return nb__arena_err(ctx, "conv2d", bytes);
        nb__wino_backward(&P, x->data, w->data, J.relu ? node->out->data : NULL,
                          node->out->grad->data, J.pool ? node->saved[1]->data : NULL,
                          v ? v->data : NULL, dx ? dx->data : NULL,
                          dw ? dw->data : NULL, db ? db->data : NULL, ws);
        return NB_OK;
    }
    J.parts = parts_for(ctx, J.N);
    size_t es = nb__esize(J.dt);
    int64_t wsz = nb__numel(w), bsz = b ? b->shape[0] : 0;
    size_t bytes = (size_t)(2 * J.ws_elems * J.parts) * es;
    bool partials = J.parts > 1;
    if (partials)
        bytes += (size_t)((wsz + bsz) * J.parts) * es;
    size_t mask_bytes = J.relu || J.pool ? (size_t)(J.Out_g * J.out_plane * J.parts) * es : 0;
    bytes += mask_bytes;
    size_t wt_bytes = !transpose && dx ? (size_t)wsz * es : 0;
    bytes += wt_bytes;
    char *mem = bytes ? nb__arena_alloc(ctx, bytes) : NULL;
    if (bytes && !mem)
        return nb__arena_err(ctx, transpose ? "conv_transpose2d" : "conv2d", bytes);
    J.ws = mem;
    J.codes = J.pool ? node->saved[1]->data : NULL;
    if (J.relu || J.pool) {
        J.gmask = mem + bytes - wt_bytes - mask_bytes;
        J.yout = node->out->data;
    }
    if (wt_bytes) { /* W_g [Og, K] -> W_g^T [K, Og], per group */
        J.wt = mem + bytes - wt_bytes;
        for (int64_t gi = 0; gi < J.groups; gi++)
            for (int64_t o2 = 0; o2 < J.Out_g; o2++)
                for (int64_t k = 0; k < J.K; k++)
                    memcpy(J.wt + ((gi * J.K + k) * J.Out_g + o2) * (int64_t)es,
                           (const char *)w->data + ((gi * J.Out_g + o2) * J.K + k) * (int64_t)es, es);
    }
    if (partials) {
        J.dw_part = mem + 2 * J.ws_elems * J.parts * (int64_t)es;
        J.db_part = J.dw_part + wsz * J.parts * (int64_t)es;
        memset(J.dw_part, 0, (size_t)((wsz + bsz) * J.parts) * es);
        if (!dw)
            J.dw_part = NULL;
        if (!db)
            J.db_part = NULL;
    }
    J.x = x->data;
    J.w = w->data;
    J.cols = node->saved[0] ? node->saved[0]->data : NULL;
    J.gy = node->out->grad->data;
    J.dx = dx ? dx->data : NULL;
    J.dw = dw ? dw->data : NULL;
    J.db = db ? db->data : NULL;
    int64_t flops = 4 * J.K * J.Out_g * J.groups * (transpose ? J.in_plane : J.out_plane);
    nb__parallel_for(ctx->nthreads, J.parts, flops * J.N / J.parts, bwd_part, &J);
    if (partials) { /* add the parts in a fixed order */
        for (int p = 0; p < J.parts; p++) {
            if (dw) {
                nb_tensor part = *dw;
                part.data = J.dw_part + p * wsz * (int64_t)es;
                part.grad = NULL;
                nb__acc_grad(ctx, dw, &part, 1.0);
            }
            if (db) {
                nb_tensor part = *db;
                part.data = J.db_part + p * bsz * (int64_t)es;
                part.grad = NULL;
                nb__acc_grad(ctx, db, &part, 1.0);
            }
        }
    }
    return NB_OK;
}

nb_status nb__conv2d_backward(nb_ctx *ctx, nb__node *node) { return conv_backward(ctx, node, false); }
nb_status nb__conv_transpose2d_backward(nb_ctx *ctx, nb__node *node)
{
    return conv_backward(ctx, node, true);
}
