/* Winograd F(2x2, 3x3) convolution: the plan, the per-chunk drivers and the
 * threads. The transforms are in winograd_t.h (one copy per element type);
 * the 16 products per chunk are GEMMs through nb__gemm (OpenBLAS). */
#include "kernels/winograd.h"

#include "kernels/gemm.h"
#include "kernels/parallel.h"

/* Tiles per chunk to aim for (at least): the benchmark CNN's 32->64 conv on
 * 14x14 then takes 2 images, 98 tiles, whose V and M are 0.6 MB (in L2);
 * measured ~2% faster than 3 images, and 4 were slower again. */
#define NB__WINO_TILES 64

#define ATTR
#define T float
#define UT uint32_t
#define SFX(name) name##_f32
#include "kernels/winograd_t.h"
#undef T
#undef UT
#undef SFX
#define T double
#define UT uint64_t
#define SFX(name) name##_f64
#include "kernels/winograd_t.h"
#undef T
#undef UT
#undef SFX
#undef ATTR
/* float32 once more for AVX2 (same bits: only adds, and products by 1/2),
 * picked at run time as in vmath.c */
#if defined(__x86_64__) && defined(__GNUC__)
#define NB__WINO_AVX2 1
#include <immintrin.h>

/* Rows of at most 7 tiles (images up to 14 wide: the 14x14 and 7x7 stages
 * of the Fashion-MNIST models) are too short for the compiler's vector
 * loops, which need 8 iterations: there the column step of the input
 * transform and of its adjoint is one 8-lane vector (the same sums in the
 * same order as the scalar loops; at most the sign of a zero differs).
 * Plain loads and stores, no masked ones (vmaskmovps stores are microcoded
 * on AMD and measured slower than the scalar loops): a load may read up to
 * 8 elements past a row and a store spills one element past a row of V,
 * which the next row's store overwrites, so the caller runs the last row of
 * a plane with the scalar loop, and every buffer read this way has 16
 * elements of slack (part_elems, stage). */
__attribute__((target("avx2"))) static inline __m256 lanes_below(int64_t n)
{
    return _mm256_castsi256_ps(
        _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
}

/* (B^T d) B's columns: row rk [2 tw + 2] -> v0..v3 [tw] (+ one spilled), tw <= 7 */
__attribute__((target("avx2"))) static void hrow_in_avx2(const float *rk, int64_t tw, float *v0,
                                                         float *v1, float *v2, float *v3)
{
    __m256 lo = _mm256_loadu_ps(rk), hi = _mm256_loadu_ps(rk + 8);
    __m256 e = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0)); /* even columns, pairs out of order */
    __m256 o = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
    e = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
    o = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
    __m256i next = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 7);
    __m256 e1 = _mm256_permutevar8x32_ps(e, next), o1 = _mm256_permutevar8x32_ps(o, next);
    (void)tw;
    _mm256_storeu_ps(v0, _mm256_sub_ps(e, e1)); /* a0 - a2 */
    _mm256_storeu_ps(v1, _mm256_add_ps(o, e1)); /* a1 + a2 */
    _mm256_storeu_ps(v2, _mm256_sub_ps(e1, o)); /* a2 - a1 */
    _mm256_storeu_ps(v3, _mm256_sub_ps(o, o1)); /* a1 - a3 */
}

/* the rows of dV B^T: v0..v3 [tw] -> s [2 tw + 2] (16 written), tw <= 7 */
__attribute__((target("avx2"))) static void hrow_adj_avx2(const float *v0, const float *v1,
                                                          const float *v2, const float *v3,
                                                          int64_t tw, float *s)
{
    __m256 m = lanes_below(tw), z = _mm256_setzero_ps();
    __m256i prev = _mm256_setr_epi32(0, 0, 1, 2, 3, 4, 5, 6);
    __m256 a0 = _mm256_and_ps(_mm256_loadu_ps(v0), m), a1 = _mm256_and_ps(_mm256_loadu_ps(v1), m);
    __m256 a2 = _mm256_and_ps(_mm256_loadu_ps(v2), m), a3 = _mm256_and_ps(_mm256_loadu_ps(v3), m);
    /* lane tx: the previous tile's value (0 for tx = 0) */
    __m256 b0 = _mm256_blend_ps(_mm256_permutevar8x32_ps(a0, prev), z, 1);
    __m256 b1 = _mm256_blend_ps(_mm256_permutevar8x32_ps(a1, prev), z, 1);
    __m256 b2 = _mm256_blend_ps(_mm256_permutevar8x32_ps(a2, prev), z, 1);
    __m256 b3 = _mm256_blend_ps(_mm256_permutevar8x32_ps(a3, prev), z, 1);
    __m256 even = _mm256_add_ps(_mm256_add_ps(_mm256_sub_ps(a0, b0), b1), b2);
    __m256 odd = _mm256_sub_ps(_mm256_add_ps(_mm256_sub_ps(a1, a2), a3), b3);
    __m256 lo = _mm256_unpacklo_ps(even, odd), hi = _mm256_unpackhi_ps(even, odd);
    _mm256_storeu_ps(s, _mm256_permute2f128_ps(lo, hi, 0x20));
    _mm256_storeu_ps(s + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
}

#define NB__WINO_HROWS
#define ATTR __attribute__((target("avx2")))
#define T float
#define UT uint32_t
#define SFX(name) name##_avx2
#define NB__WINO_HOT_ONLY
#include "kernels/winograd_t.h"
#undef NB__WINO_HOT_ONLY
#undef NB__WINO_HROWS
#undef T
#undef UT
#undef SFX
#undef ATTR
#endif

/* Which copy of the transforms: 0 float64, 1 float32, 2 float32 AVX2. */
static int flavour(nb_dtype dt)
{
    if (dt != NB_F32)
        return 0;
#ifdef NB__WINO_AVX2
    if (__builtin_cpu_supports("avx2"))
        return 2;
#endif
    return 1;
}

#ifdef NB__WINO_AVX2
#define PICK(k, name, f32args, f64args)                                                            \
    do {                                                                                           \
        if ((k) == 2)                                                                              \
            name##_avx2 f32args;                                                                   \
        else if ((k) == 1)                                                                         \
            name##_f32 f32args;                                                                    \
        else                                                                                       \
            name##_f64 f64args;                                                                    \
    } while (0)
#else
#define PICK(k, name, f32args, f64args)                                                            \
    do {                                                                                           \
        if ((k) == 1)                                                                              \
            name##_f32 f32args;                                                                    \
        else                                                                                       \
            name##_f64 f64args;                                                                    \
    } while (0)
#endif

static void input_any(int k, const nb__wino *p, const void *x, int64_t n0, int64_t n1, int64_t Tc,
                      void *V, void *st)
{
    PICK(k, wino_input, (p, x, n0, n1, Tc, V, st), (p, x, n0, n1, Tc, V, st));
}
static void input_adj_any(int k, const nb__wino *p, const void *dV, int64_t n0, int64_t n1,
                          int64_t Tc, void *dx, void *st)
{
    PICK(k, wino_input_adj, (p, dV, n0, n1, Tc, dx, st), (p, dV, n0, n1, Tc, dx, st));
}
static void output_any(int k, const nb__wino *p, const void *M, int64_t n0, int64_t n1, int64_t Tc,
                       const void *b, bool relu, void *y, int32_t *codes, void *st)
{
    PICK(k, wino_output, (p, M, n0, n1, Tc, b, relu, y, codes, st),
         (p, M, n0, n1, Tc, b, relu, y, codes, st));
}
static void grad_output_any(int k, const nb__wino *p, const void *gy, const void *y,
                            const int32_t *codes, int64_t n0, int64_t n1, int64_t Tc, void *dM,
                            void *db, void *st)
{
    PICK(k, wino_grad_output, (p, gy, y, codes, n0, n1, Tc, dM, db, st),
         (p, gy, y, codes, n0, n1, Tc, dM, db, st));
}

void nb__wino_plan(nb__wino *p, nb_dtype dt, int64_t N, int64_t C, int64_t H, int64_t W,
                   int64_t O, int64_t ph, int64_t pw, bool pool, int nthreads)
{
    memset(p, 0, sizeof *p);
    p->dt = dt;
    p->N = N;
    p->C = C;
    p->H = H;
    p->W = W;
    p->O = O;
    p->ph = ph;
    p->pw = pw;
    p->OH = H + 2 * ph - 2;
    p->OW = W + 2 * pw - 2;
    p->th = (p->OH + 1) / 2;
    p->tw = (p->OW + 1) / 2;
    p->pool = pool;
    p->PH = p->OH / 2;
    p->PW = p->OW / 2;
    int64_t tiles = p->th * p->tw;
    p->chunk = tiles >= NB__WINO_TILES ? 1 : (NB__WINO_TILES + tiles - 1) / tiles;
    if (p->chunk > N)
        p->chunk = N > 0 ? N : 1;
    p->nchunks = (N + p->chunk - 1) / p->chunk;
    p->parts = nthreads < p->nchunks ? nthreads : (int)(p->nchunks > 0 ? p->nchunks : 1);
    if (p->parts < 1)
        p->parts = 1;
}

int64_t nb__wino_saved_elems(const nb__wino *p) { return 16 * p->C * p->N * p->th * p->tw; }

static int64_t round16(int64_t n) { return (n + 15) & ~(int64_t)15; }
static int64_t tmax(const nb__wino *p) { return p->chunk * p->th * p->tw; }
static int64_t stage(const nb__wino *p) /* the transforms' staging: a padded plane + 4 rows, or 4 planes of tiles */
{
    int64_t padded = (2 * p->th + 6) * (2 * p->tw + 2), tiles = 4 * p->th * p->tw;
    return round16(padded > tiles ? padded : tiles) + 16; /* + the AVX2 rows' slack */
}

/* per-part elements: [V][M or dM][dV][dU][db][staging] */
static int64_t part_elems(const nb__wino *p, bool need_v, bool bwd)
{
    int64_t e = need_v ? round16(16 * p->C * tmax(p)) : 0;
    e += round16(16 * p->O * tmax(p));
    if (bwd)
        e += round16(16 * p->C * tmax(p)) + 16 + round16(16 * p->O * p->C) + round16(p->O);
    return e + stage(p);
}

size_t nb__wino_fwd_bytes(const nb__wino *p, bool keep_v)
{
    int64_t e = round16(16 * p->O * p->C) + p->parts * part_elems(p, !keep_v, false);
    return (size_t)e * nb__esize(p->dt);
}

size_t nb__wino_bwd_bytes(const nb__wino *p, bool have_v)
{
    int64_t e = round16(16 * p->O * p->C) + p->parts * part_elems(p, !have_v, true);
    return (size_t)e * nb__esize(p->dt);
}

typedef struct {
    const nb__wino *p;
    const char *x, *w, *b, *y, *gy, *saved;
    char *out, *keep, *dx, *ws;
    const char *U;      /* [16][O][C], or [16][C][O] in backward */
    int32_t *codes; /* fused pooling's argmax per window */
    bool relu, want_dw, want_db;
} wino_job;

static void chunk_range(const nb__wino *p, int64_t ch, int64_t *n0, int64_t *n1, int64_t *Tc)
{
    *n0 = ch * p->chunk;
    *n1 = *n0 + p->chunk < p->N ? *n0 + p->chunk : p->N;
    *Tc = (*n1 - *n0) * p->th * p->tw;
}

static void fwd_part(int64_t q0, int64_t q1, void *arg)
{
    const wino_job *J = arg;
    const nb__wino *p = J->p;
    size_t es = nb__esize(p->dt);
    int k = flavour(p->dt);
    for (int64_t q = q0; q < q1; q++) {
        char *mem = J->ws + (round16(16 * p->O * p->C) + q * part_elems(p, !J->keep, false)) * (int64_t)es;
        char *Vbuf = mem, *M, *st;
        M = mem + (J->keep ? 0 : round16(16 * p->C * tmax(p))) * (int64_t)es;
        st = M + round16(16 * p->O * tmax(p)) * (int64_t)es;
        for (int64_t ch = p->nchunks * q / p->parts; ch < p->nchunks * (q + 1) / p->parts; ch++) {
            int64_t n0, n1, Tc;
            chunk_range(p, ch, &n0, &n1, &Tc);
            char *V = J->keep ? J->keep + 16 * p->C * n0 * p->th * p->tw * (int64_t)es : Vbuf;
            input_any(k, p, J->x, n0, n1, Tc, V, st);
            for (int xi = 0; xi < 16; xi++) /* M[xi] [O, Tc] = U[xi] [O, C] V[xi] [C, Tc] */
                nb__gemm(p->dt, p->O, Tc, p->C, 1.0,
                         (nb__mat){J->U + xi * p->O * p->C * (int64_t)es, p->C, 1},
                         (nb__mat){V + xi * p->C * Tc * (int64_t)es, Tc, 1}, 0.0,
                         M + xi * p->O * Tc * (int64_t)es, Tc, 1);
            output_any(k, p, M, n0, n1, Tc, J->b, J->relu, J->out, J->codes, st);
        }
    }
}

void nb__wino_forward(const nb__wino *p, const void *x, const void *w, const void *b, bool relu,
                      void *y, int32_t *codes, void *saved_v, void *ws)
{
    wino_job J = {.p = p, .x = x, .b = b, .out = y, .keep = saved_v, .ws = ws, .relu = relu,
                  .codes = codes};
    if (p->dt == NB_F32)
        wino_weights_f32(p, w, ws, false);
    else
        wino_weights_f64(p, w, ws, false);
    J.U = ws;
    int64_t flops = 2 * 16 * p->O * p->C * p->chunk * p->th * p->tw * p->nchunks / p->parts;
    nb__parallel_for(p->parts, p->parts, flops, fwd_part, &J);
}

static void bwd_part(int64_t q0, int64_t q1, void *arg)
{
    const wino_job *J = arg;
    const nb__wino *p = J->p;
    size_t es = nb__esize(p->dt);
    int k = flavour(p->dt);
    bool need_v = !J->saved && J->want_dw;
    int64_t OC = round16(16 * p->O * p->C);
    for (int64_t q = q0; q < q1; q++) {
        char *mem = J->ws + (OC + q * part_elems(p, !J->saved, true)) * (int64_t)es;
        char *Vbuf = mem;
        char *dM = mem + (J->saved ? 0 : round16(16 * p->C * tmax(p))) * (int64_t)es;
        char *dV = dM + round16(16 * p->O * tmax(p)) * (int64_t)es;
        char *dU = dV + (round16(16 * p->C * tmax(p)) + 16) * (int64_t)es; /* dV's slack: winograd.c top */
        char *db = dU + OC * (int64_t)es;
        char *st = db + round16(p->O) * (int64_t)es;
        for (int64_t ch = p->nchunks * q / p->parts; ch < p->nchunks * (q + 1) / p->parts; ch++) {
            int64_t n0, n1, Tc;
            chunk_range(p, ch, &n0, &n1, &Tc);
            const char *V = J->saved ? J->saved + 16 * p->C * n0 * p->th * p->tw * (int64_t)es : Vbuf;
            if (need_v)
                input_any(k, p, J->x, n0, n1, Tc, Vbuf, st);
            grad_output_any(k, p, J->gy, J->y, J->codes, n0, n1, Tc, dM, J->want_db ? db : NULL, st);
            for (int xi = 0; xi < 16 && J->want_dw; xi++) /* dU[xi] += dM[xi] V[xi]^T */
                nb__gemm(p->dt, p->O, p->C, Tc, 1.0,
                         (nb__mat){dM + xi * p->O * Tc * (int64_t)es, Tc, 1},
                         (nb__mat){V + xi * p->C * Tc * (int64_t)es, 1, Tc}, 1.0,
                         dU + xi * p->O * p->C * (int64_t)es, p->C, 1);
            if (!J->dx)
                continue;
            for (int xi = 0; xi < 16; xi++) /* dV[xi] [C, Tc] = U[xi]^T [C, O] dM[xi] */
                nb__gemm(p->dt, p->C, Tc, p->O, 1.0,
                         (nb__mat){J->U + xi * p->O * p->C * (int64_t)es, p->O, 1},
                         (nb__mat){dM + xi * p->O * Tc * (int64_t)es, Tc, 1}, 0.0,
                         dV + xi * p->C * Tc * (int64_t)es, Tc, 1);
            input_adj_any(k, p, dV, n0, n1, Tc, J->dx, st);
        }
    }
}

void nb__wino_backward(const nb__wino *p, const void *x, const void *w, const void *y,
                       const void *gy, const int32_t *codes, const void *saved_v, void *dx,
                       void *dw, void *db, void *ws)
{
    size_t es = nb__esize(p->dt);
    int64_t OC = round16(16 * p->O * p->C), per = part_elems(p, !saved_v, true);
    wino_job J = {.p = p, .x = x, .y = y, .gy = gy, .saved = saved_v, .dx = dx, .ws = ws,
                  .codes = (int32_t *)codes, .want_dw = dw != NULL, .want_db = db != NULL};
    if (dx) { /* U transposed, so the dV products read a row-major A */
        if (p->dt == NB_F32)
            wino_weights_f32(p, w, ws, true);
        else
            wino_weights_f64(p, w, ws, true);
    }
    J.U = ws;
    for (int q = 0; q < p->parts; q++) { /* zero each part's dU and db */
        char *dU = (char *)ws + (OC + q * per + per - stage(p) - round16(p->O) - OC) * (int64_t)es;
        memset(dU, 0, (size_t)(OC + round16(p->O)) * es);
    }
    int64_t flops = 2 * 16 * p->O * p->C * p->chunk * p->th * p->tw * p->nchunks / p->parts *
                    ((dw ? 1 : 0) + (dx ? 1 : 0));
    nb__parallel_for(p->parts, p->parts, flops, bwd_part, &J);
    /* the parts' sums, in a fixed order, then through the weight transform */
    char *dU0 = (char *)ws + (OC + per - stage(p) - round16(p->O) - OC) * (int64_t)es;
    char *db0 = dU0 + OC * (int64_t)es;
    for (int q = 1; q < p->parts; q++) {
        const char *dUq = dU0 + q * per * (int64_t)es, *dbq = db0 + q * per * (int64_t)es;
        if (p->dt == NB_F32) {
            for (int64_t i = 0; i < 16 * p->O * p->C; i++)
                ((float *)dU0)[i] += ((const float *)dUq)[i];
            for (int64_t i = 0; i < p->O; i++)
                ((float *)db0)[i] += ((const float *)dbq)[i];
        } else {
            for (int64_t i = 0; i < 16 * p->O * p->C; i++)
                ((double *)dU0)[i] += ((const double *)dUq)[i];
            for (int64_t i = 0; i < p->O; i++)
                ((double *)db0)[i] += ((const double *)dbq)[i];
        }
    }
    if (dw) {
        if (p->dt == NB_F32)
            wino_dweights_f32(p, (const float *)dU0, dw);
        else
            wino_dweights_f64(p, (const double *)dU0, dw);
    }
    if (db) {
        if (p->dt == NB_F32)
            for (int64_t i = 0; i < p->O; i++)
                ((float *)db)[i] += ((const float *)db0)[i];
        else
            for (int64_t i = 0; i < p->O; i++)
                ((double *)db)[i] += ((const double *)db0)[i];
    }
}
