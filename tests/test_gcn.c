/* Graph convolution (src/ops/sparse.c, src/nn/gcn.c): nb_csr_from_coo's
 * sorting and duplicate sums, spmm and its gradient against a dense
 * computation, Kipf & Welling's normalised adjacency by its formula, every
 * error with its status and exact text (nothing recorded), 1 vs 4 threads bit
 * for bit, float64 gradient checks of spmm (x and learned values) and of the
 * layer's composition, the layer's names, init and errors. The run writes the
 * layer cases (edges, x, weights, output, gradients) that parity_gcn.py
 * replays in PyTorch. The op's own samples (gradient check, PyTorch parity)
 * are in test_ops. Usage: test_gcn [PARITY_FILE] */
#include "core/internal.h"
#include "dump.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char *parity_path;

static nb_ctx *new_ctx(int threads)
{
    nb_ctx_opts o = nb_ctx_opts_default();
    o.num_threads = threads;
    nb_ctx *ctx = nb_ctx_new(&o);
    assert_non_null(ctx);
    return ctx;
}

static void expect_err(nb_ctx *ctx, const void *result, nb_status st, const char *msg)
{
    assert_null(result);
    if (nb_last_status(ctx) != st)
        fail_msg("status %d, want %d: %s", nb_last_status(ctx), st, nb_last_error(ctx));
    assert_string_equal(nb_last_error(ctx), msg);
    assert_null(ctx->tape);
    nb_clear_error(ctx);
}
#define EXPECT(call, st, msg) expect_err(ctx, (call), st, msg)

static nb_tensor *i64_of(nb_ctx *ctx, int64_t n, const int64_t *v)
{
    nb_tensor *t = nb_empty(ctx, NB_I64, 1, &n);
    assert_non_null(t);
    if (n > 0)
        memcpy(t->data, v, sizeof(int64_t) * (size_t)n);
    return t;
}

/* dense copy [rows, cols] of a CSR */
static double *dense_of(const nb_csr *a)
{
    double *d = calloc((size_t)(a->rows * a->cols) + 1, sizeof(double));
    const int64_t *rp = a->row_ptr->data, *c = a->col->data;
    for (int64_t i = 0; i < a->rows; i++)
        for (int64_t p = rp[i]; p < rp[i + 1]; p++)
            d[i * a->cols + c[p]] += nb_get(a->val, p);
    return d;
}

static void test_from_coo(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(1);
    /* unsorted, a duplicate (2, 1) twice, an empty row 1 */
    static const int64_t r[6] = {2, 0, 2, 0, 2, 3}, c[6] = {1, 3, 0, 0, 1, 2};
    static const double v[6] = {1, 2, 3, 4, 5, 6};
    nb_csr *a = nb_csr_from_coo(ctx, NB_F64, 4, 4, 6, r, c, v);
    assert_non_null(a);
    assert_int_equal(a->rows, 4);
    assert_int_equal(a->cols, 4);
    assert_int_equal(a->nnz, 5);
    static const int64_t want_rp[5] = {0, 2, 2, 4, 5}, want_c[5] = {0, 3, 0, 1, 2};
    static const double want_v[5] = {4, 2, 3, 6, 6};
    assert_memory_equal(a->row_ptr->data, want_rp, sizeof want_rp);
    assert_memory_equal(a->col->data, want_c, sizeof want_c);
    for (int p = 0; p < 5; p++)
        assert_true(nb_get(a->val, p) == want_v[p]);
    assert_false(nb_requires_grad(a->val));
    nb_csr_free(ctx, a);
    /* val NULL: ones, float32, rectangular, nnz 0 */
    a = nb_csr_from_coo(ctx, NB_F32, 2, 5, 3, (const int64_t[]){1, 1, 0}, (const int64_t[]){4, 4, 2},
                        NULL);
    assert_non_null(a);
    assert_int_equal(a->val->dtype, NB_F32);
    assert_int_equal(a->nnz, 2);
    assert_true(nb_get(a->val, 0) == 1.0 && nb_get(a->val, 1) == 2.0);
    nb_csr_free(ctx, a);
    a = nb_csr_from_coo(ctx, NB_F32, 3, 3, 0, NULL, NULL, NULL);
    assert_non_null(a);
    assert_int_equal(a->nnz, 0);
    nb_tensor *y = nb_spmm(ctx, a, nb_full(ctx, NB_F32, NB_SHAPE(3, 2), 1.0));
    assert_non_null(y);
    for (int i = 0; i < 6; i++)
        assert_true(nb_get(y, i) == 0.0);
    nb_csr_free(ctx, a);
    nb_csr_free(ctx, NULL);
    nb_ctx_free(ctx);
}

/* y = A x and dx = A^T g against dense loops, f32 and f64, x contiguous or
 * a transposed view */
static void test_spmm_dense(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(1);
    static const int64_t r[7] = {0, 0, 1, 2, 2, 2, 4}, c[7] = {1, 4, 0, 0, 2, 3, 4};
    static const double v[7] = {0.5, -1, 2, 1.5, -0.25, 3, 1};
    for (int dt = 0; dt < 2; dt++)
        for (int tr = 0; tr < 2; tr++) {
            nb_dtype d = dt ? NB_F64 : NB_F32;
            nb_csr *a = nb_csr_from_coo(ctx, d, 5, 5, 7, r, c, v); /* row 3 empty */
            assert_non_null(a);
            double *A = dense_of(a);
            const int64_t K = 5, F = 3;
            nb_tensor *x = tr ? nb_param(ctx, d, NB_SHAPE(F, K)) : nb_param(ctx, d, NB_SHAPE(K, F));
            for (int i = 0; i < 15; i++)
                nb_set(x, i, (i * 7 % 11) - 5);
            nb_tensor *xv = tr ? nb_transpose(ctx, x, 0, 1) : x;
            nb_tensor *y = nb_spmm(ctx, a, xv);
            assert_non_null(y);
            assert_int_equal(y->shape[0], 5);
            assert_int_equal(y->shape[1], 3);
            nb_tensor *g = nb_empty(ctx, d, NB_SHAPE(5, 3));
            for (int i = 0; i < 15; i++)
                nb_set(g, i, 0.5 * i - 3);
            assert_int_equal(nb_backward_with(ctx, y, g), NB_OK);
            for (int64_t i = 0; i < 5; i++)
                for (int64_t f = 0; f < F; f++) {
                    double s = 0, t = 0;
                    for (int64_t k = 0; k < K; k++) {
                        s += A[i * K + k] * nb_get(xv, k * F + f);
                        t += A[k * K + i] * (0.5 * (double)(k * F + f) - 3); /* (A^T g)[i, f] */
                    }
                    assert_true(fabs(nb_get(y, i * F + f) - s) <= 1e-6 * (1 + fabs(s)));
                    /* x's grad is of x's own layout: [F, K] when transposed */
                    double got = nb_get(x->grad, tr ? f * K + i : i * F + f);
                    assert_true(fabs(got - t) <= 1e-6 * (1 + fabs(t)));
                }
            free(A);
            nb_csr_free(ctx, a);
            nb_tensor_free(ctx, x);
            nb_arena_reset(ctx);
        }
    nb_ctx_free(ctx);
}

static void test_norm_adjacency(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(1);
    /* path 0-1-2 plus isolated node 3, undirected, edge 1-2 given twice */
    static const int64_t src[3] = {0, 1, 2}, dst[3] = {1, 2, 1};
    nb_csr *a = nb_gcn_norm_adjacency(ctx, NB_F64, 4, 3, src, dst, true);
    assert_non_null(a);
    double *A = dense_of(a);
    /* A + I = [[1,1,0,0],[1,1,2,0],[0,2,1,0],[0,0,0,1]], degrees 2, 4, 3, 1 */
    static const double AI[16] = {1, 1, 0, 0, 1, 1, 2, 0, 0, 2, 1, 0, 0, 0, 0, 1};
    static const double deg[4] = {2, 4, 3, 1};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            double want = AI[i * 4 + j] / sqrt(deg[i] * deg[j]);
            if (fabs(A[i * 4 + j] - want) > 1e-15)
                fail_msg("A_hat[%d][%d] = %.17g, want %.17g", i, j, A[i * 4 + j], want);
        }
    assert_int_equal(a->nnz, 8);
    free(A);
    nb_csr_free(ctx, a);
    /* directed: 0 -> 1 only: row 1 (dst) gets column 0; a self loop adds to I */
    a = nb_gcn_norm_adjacency(ctx, NB_F32, 2, 2, (const int64_t[]){0, 1}, (const int64_t[]){1, 1},
                              false);
    assert_non_null(a);
    A = dense_of(a);
    /* A + I = [[1, 0], [1, 2]], row sums 1, 3 */
    static const double want2[4] = {1, 0, 1 / 1.7320508075688772, 2.0 / 3.0};
    for (int i = 0; i < 4; i++)
        assert_true(fabs(A[i] - want2[i]) < 1e-7);
    free(A);
    nb_csr_free(ctx, a);
    nb_ctx_free(ctx);
}

static void test_errors(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(1);
    const int64_t r[2] = {0, 3}, c[2] = {1, 0};
    double nan_v[2] = {1, NAN};
    EXPECT(nb_csr_from_coo(ctx, NB_F64, 3, 2, 2, r, c, NULL), NB_ERR_INDEX,
           "csr_from_coo: row index 3 at position 1 is outside [0, 3)");
    EXPECT(nb_csr_from_coo(ctx, NB_F64, 4, 1, 2, r, c, NULL), NB_ERR_INDEX,
           "csr_from_coo: column index 1 at position 0 is outside [0, 1)");
    EXPECT(nb_csr_from_coo(ctx, NB_F64, 4, 2, 2, r, c, nan_v), NB_ERR_NUMERIC,
           "csr_from_coo: value nan at position 1 is not finite");
    EXPECT(nb_csr_from_coo(ctx, NB_I64, 4, 2, 2, r, c, NULL), NB_ERR_DTYPE,
           "csr_from_coo: dtype must be f32 or f64, got i64");
    EXPECT(nb_csr_from_coo(ctx, NB_F32, -1, 2, 0, NULL, NULL, NULL), NB_ERR_ARG,
           "csr_from_coo: sizes must be in [0, 2^57): rows -1, cols 2, nnz 0");
    EXPECT(nb_csr_from_coo(ctx, NB_F32, 4, 2, 2, NULL, c, NULL), NB_ERR_NULL,
           "csr_from_coo: row and col must not be NULL when nnz > 0");
    EXPECT(nb_gcn_norm_adjacency(ctx, NB_F32, 3, 2, (const int64_t[]){0, 1},
                                 (const int64_t[]){2, 5}, true),
           NB_ERR_INDEX, "gcn_norm_adjacency: dst 5 of edge 1 is outside [0, 3)");
    EXPECT(nb_gcn_norm_adjacency(ctx, NB_F32, 3, 1, (const int64_t[]){-1}, (const int64_t[]){0},
                                 true),
           NB_ERR_INDEX, "gcn_norm_adjacency: src -1 of edge 0 is outside [0, 3)");
    EXPECT(nb_gcn_norm_adjacency(ctx, NB_F32, 0, 0, NULL, NULL, true), NB_ERR_ARG,
           "gcn_norm_adjacency: need n >= 1 and n_edges >= 0 (below 2^57), got n 0, n_edges 0");

    /* the op on hand-made CSR tensors: A [2, 3] = [[1 at col 0, 2 at col 2], [3 at col 1]] */
    nb_tensor *x = nb_param(ctx, NB_F32, NB_SHAPE(3, 2));
    nb_tensor *rp = i64_of(ctx, 3, (const int64_t[]){0, 2, 3});
    nb_tensor *col = i64_of(ctx, 3, (const int64_t[]){0, 2, 1});
    nb_tensor *val = nb_from_data(ctx, NB_F32, NB_SHAPE(3), (const float[]){1, 2, 3});
    assert_non_null(val);
    assert_non_null(nb_spmm_csr(ctx, rp, col, val, x));
    nb_arena_reset(ctx);
    rp = i64_of(ctx, 3, (const int64_t[]){0, 2, 3});
    col = i64_of(ctx, 3, (const int64_t[]){0, 2, 1});
    val = nb_from_data(ctx, NB_F32, NB_SHAPE(3), (const float[]){1, 2, 3});
    EXPECT(nb_spmm_csr(ctx, rp, i64_of(ctx, 3, (const int64_t[]){0, 3, 1}), val, x), NB_ERR_INDEX,
           "spmm: column 3 at position 1 (row 0) is outside [0, 3) (x [3,2])");
    EXPECT(nb_spmm_csr(ctx, rp, i64_of(ctx, 3, (const int64_t[]){0, 2, -1}), val, x), NB_ERR_INDEX,
           "spmm: column -1 at position 2 (row 1) is outside [0, 3) (x [3,2])");
    EXPECT(nb_spmm_csr(ctx, i64_of(ctx, 3, (const int64_t[]){1, 2, 3}), col, val, x), NB_ERR_INDEX,
           "spmm: row_ptr[0] is 1, must be 0");
    EXPECT(nb_spmm_csr(ctx, i64_of(ctx, 4, (const int64_t[]){0, 2, 1, 3}), col, val, x),
           NB_ERR_INDEX,
           "spmm: row_ptr[2] = 1 is less than row_ptr[1] = 2 (row_ptr must not decrease)");
    EXPECT(nb_spmm_csr(ctx, i64_of(ctx, 3, (const int64_t[]){0, 2, 2}), col, val, x), NB_ERR_SHAPE,
           "spmm: row_ptr[2] = 2 but col and values have 3 entries");
    EXPECT(nb_spmm_csr(ctx, rp, col, nb_from_data(ctx, NB_F32, NB_SHAPE(3), (const float[]){1, NAN, 3}),
                       x),
           NB_ERR_NUMERIC, "spmm: value nan at position 1 (row 0, column 2) is not finite");
    EXPECT(nb_spmm_csr(ctx, rp, col, nb_from_data(ctx, NB_F64, NB_SHAPE(3), (const double[]){1, 2, 3}),
                       x),
           NB_ERR_DTYPE, "spmm: values are f64 but x is f32");
    EXPECT(nb_spmm_csr(ctx, nb_cast(ctx, rp, NB_I32), col, val, x), NB_ERR_DTYPE,
           "spmm: row_ptr and col must be i64, got i32 and i64");
    EXPECT(nb_spmm_csr(ctx, rp, col, val, nb_empty(ctx, NB_I32, NB_SHAPE(3, 2))), NB_ERR_DTYPE,
           "spmm: x must be f32 or f64, got i32");
    EXPECT(nb_spmm_csr(ctx, rp, col, val, nb_empty(ctx, NB_F32, NB_SHAPE(6))), NB_ERR_SHAPE,
           "spmm: x [6] must be 2-D [K, F]");
    EXPECT(nb_spmm_csr(ctx, rp, i64_of(ctx, 2, (const int64_t[]){0, 1}), val, x), NB_ERR_SHAPE,
           "spmm: row_ptr [3], col [2], values [3] should be [M+1], [nnz], [nnz]");
    EXPECT(nb_spmm_csr(ctx, rp, NULL, val, x), NB_ERR_NULL, "spmm: input 1 is NULL");
    nb_ctx_free(ctx);
}

static void test_errors_csr_layer(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(1);
    nb_csr *a = nb_gcn_norm_adjacency(ctx, NB_F32, 4, 2, (const int64_t[]){0, 1},
                                      (const int64_t[]){1, 2}, true);
    assert_non_null(a);
    nb_tensor *x5 = nb_param(ctx, NB_F32, NB_SHAPE(5, 3));
    EXPECT(nb_spmm(ctx, a, x5), NB_ERR_SHAPE, "spmm: A [4,4] @ x [5,3]: x should be [4, F]");
    nb_module *m = nb_gcn_layer(ctx, "conv1", 3, 2, true);
    assert_non_null(m);
    EXPECT(nb_module_forward(ctx, m, x5), NB_ERR_ARG,
           "conv1: a graph convolution needs the adjacency: call nb_gcn_forward");
    EXPECT(nb_gcn_forward(ctx, m, a, x5), NB_ERR_SHAPE,
           "conv1: adjacency [4,4] does not fit 5 nodes (input [5,3])");
    EXPECT(nb_gcn_forward(ctx, m, a, nb_param(ctx, NB_F32, NB_SHAPE(4, 2))), NB_ERR_SHAPE,
           "conv1: input [4,2] should be [nodes, 3]");
    EXPECT(nb_gcn_forward(ctx, m, a, nb_param(ctx, NB_F64, NB_SHAPE(4, 3))), NB_ERR_DTYPE,
           "conv1: input is f64 and adjacency f32, the layer is f32");
    nb_module *lin = nb_linear(ctx, NULL, 3, 2, true);
    EXPECT(nb_gcn_forward(ctx, lin, a, x5), NB_ERR_ARG,
           "gcn_forward: linear is not a graph convolution layer");
    EXPECT(nb_gcn_layer(ctx, NULL, 0, 2, true), NB_ERR_ARG,
           "gcn_layer: sizes must be positive, got in 0, out 2");
    nb_module_free(ctx, lin);
    nb_module_free(ctx, m);
    nb_csr_free(ctx, a);
    nb_ctx_free(ctx);
}

/* A random graph of n nodes, e undirected edges (seeded). */
static nb_csr *random_graph(nb_ctx *ctx, nb_dtype dt, int64_t n, int64_t e, uint64_t seed)
{
    nb_rng r;
    nb_rng_seed(&r, seed, 1);
    int64_t *s = malloc(sizeof(int64_t) * (size_t)(2 * e));
    for (int64_t i = 0; i < 2 * e; i++)
        s[i] = nb_rng_below(&r, (uint32_t)n);
    nb_csr *a = nb_gcn_norm_adjacency(ctx, dt, n, e, s, s + e, true);
    free(s);
    assert_non_null(a);
    return a;
}

static void test_threads(void **state)
{
    (void)state;
    nb_ctx *c1 = new_ctx(1), *c4 = new_ctx(4);
    nb_ctx *cs[2] = {c1, c4};
    nb_tensor *y[2], *gx[2];
    for (int k = 0; k < 2; k++) {
        nb_ctx *ctx = cs[k];
        nb_csr *a = random_graph(ctx, NB_F32, 3000, 20000, 5);
        nb_tensor *x = nb_param(ctx, NB_F32, NB_SHAPE(3000, 32));
        nb_rng r;
        nb_rng_seed(&r, 9, 2);
        for (int64_t i = 0; i < nb_numel(x); i++)
            nb_set(x, i, nb_rng_normal(&r));
        y[k] = nb_spmm(ctx, a, x);
        nb_tensor *g = nb_empty(ctx, NB_F32, NB_SHAPE(3000, 32));
        for (int64_t i = 0; i < nb_numel(g); i++)
            nb_set(g, i, nb_rng_normal(&r));
        assert_int_equal(nb_backward_with(ctx, y[k], g), NB_OK);
        gx[k] = x->grad;
        nb_csr_free(ctx, a); /* after the backward: the graph no longer needs it */
    }
    assert_memory_equal(y[0]->data, y[1]->data, sizeof(float) * 3000 * 32);
    assert_memory_equal(gx[0]->data, gx[1]->data, sizeof(float) * 3000 * 32);
    nb_ctx_free(c1);
    nb_ctx_free(c4);
}

/* ---- float64 gradient checks -------------------------------------------------- */
static nb_tensor *fn_spmm_csr(nb_ctx *ctx, nb_tensor *const *x, int n, void *user)
{
    (void)n;
    const nb_csr *a = user;
    return nb_spmm_csr(ctx, a->row_ptr, a->col, x[1], x[0]);
}

static nb_tensor *fn_layer(nb_ctx *ctx, nb_tensor *const *x, int n, void *user)
{
    (void)n;
    /* nb_gcn_forward's composition: spmm(A, x W^T) + b, then a ReLU and a second spmm */
    nb_tensor *h = nb_add(ctx, nb_spmm(ctx, user, nb_linear_op(ctx, x[0], x[1], NULL)), x[2]);
    return nb_spmm(ctx, user, nb_relu(ctx, h));
}

static void test_gradcheck(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(2);
    nb_csr *a = random_graph(ctx, NB_F64, 12, 20, 3);
    nb_rng r;
    nb_rng_seed(&r, 4, 4);
    nb_tensor *x = nb_param(ctx, NB_F64, NB_SHAPE(12, 5));
    nb_tensor *v = nb_param(ctx, NB_F64, NB_SHAPE(a->nnz)); /* learned edge weights */
    nb_tensor *W = nb_param(ctx, NB_F64, NB_SHAPE(4, 5));
    nb_tensor *b = nb_param(ctx, NB_F64, NB_SHAPE(4));
    nb_tensor *all[4] = {x, v, W, b};
    for (int k = 0; k < 4; k++)
        for (int64_t i = 0; i < nb_numel(all[k]); i++)
            nb_set(all[k], i, nb_rng_normal(&r));
    nb_gradcheck_opts o = nb_gradcheck_opts_default();
    nb_gradcheck_result res;
    nb_status st = nb_gradcheck(ctx, fn_spmm_csr, a, (nb_tensor *const[]){x, v}, 2, &o, &res);
    printf("gradcheck spmm (x, values): worst relative error %.3g\n", res.worst);
    assert_int_equal(st, NB_OK);
    st = nb_gradcheck(ctx, fn_layer, a, (nb_tensor *const[]){x, W, b}, 3, &o, &res);
    printf("gradcheck two GCN layers (x, W, b): worst relative error %.3g\n", res.worst);
    assert_int_equal(st, NB_OK);
    nb_csr_free(ctx, a);
    nb_ctx_free(ctx);
}

static void test_layer(void **state)
{
    (void)state;
    nb_ctx *ctx = new_ctx(1);
    nb_module *m = nb_gcn_layer(ctx, "conv1", 34, 16, true);
    assert_non_null(m);
    nb_param_list pl;
    assert_int_equal(nb_module_params(ctx, m, &pl), NB_OK);
    assert_int_equal(pl.n, 2);
    assert_string_equal(pl.items[0].name, "bias");
    assert_string_equal(pl.items[1].name, "lin.weight");
    nb_tensor *W = pl.items[1].tensor, *b = pl.items[0].tensor;
    assert_int_equal(W->shape[0], 16);
    assert_int_equal(W->shape[1], 34);
    double bound = sqrt(6.0 / (34 + 16)), mx = 0;
    for (int64_t i = 0; i < nb_numel(W); i++)
        mx = fmax(mx, fabs(nb_get(W, i)));
    assert_true(mx <= bound && mx > 0.8 * bound); /* Glorot uniform */
    for (int i = 0; i < 16; i++)
        assert_true(nb_get(b, i) == 0.0);
    nb_param_list_free(ctx, &pl);
    nb_module *nob = nb_gcn_layer(ctx, NULL, 3, 2, false);
    assert_int_equal(nb_module_params(ctx, nob, &pl), NB_OK);
    assert_int_equal(pl.n, 1);
    assert_string_equal(pl.items[0].name, "lin.weight");
    nb_param_list_free(ctx, &pl);
    /* nb_module_init reaches both tensors */
    nb_init one = nb_init_default(NB_INIT_CONSTANT);
    one.a = 1;
    assert_int_equal(nb_module_init(ctx, m, &one, &one), NB_OK);
    assert_true(nb_get(W, 5) == 1.0 && nb_get(b, 3) == 1.0);
    nb_module_free(ctx, nob);
    nb_module_free(ctx, m);
    nb_ctx_free(ctx);
}

/* PyTorch cases: two layers (bias and not) over a small graph given as
 * edges; parity_gcn.py rebuilds A_hat from the edges by the formula. */
static void write_case(nb_ctx *ctx, FILE *f, int64_t n, int64_t e, bool undirected, uint64_t seed)
{
    nb_rng r;
    nb_rng_seed(&r, seed, 7);
    nb_tensor *src = nb_empty(ctx, NB_I64, 1, &e), *dst = nb_empty(ctx, NB_I64, 1, &e);
    for (int64_t i = 0; i < e; i++) {
        ((int64_t *)src->data)[i] = nb_rng_below(&r, (uint32_t)n);
        ((int64_t *)dst->data)[i] = nb_rng_below(&r, (uint32_t)n);
    }
    nb_csr *a = nb_gcn_norm_adjacency(ctx, NB_F32, n, e, src->data, dst->data, undirected);
    assert_non_null(a);
    nb_module *l1 = nb_gcn_layer(ctx, "conv1", 6, 5, true), *l2 = nb_gcn_layer(ctx, "conv2", 5, 3, false);
    assert_non_null(l1);
    assert_non_null(l2);
    nb_tensor *x = nb_param(ctx, NB_F32, NB_SHAPE(n, 6));
    for (int64_t i = 0; i < nb_numel(x); i++)
        nb_set(x, i, nb_rng_normal(&r));
    nb_tensor *y = nb_gcn_forward(ctx, l2, a, nb_relu(ctx, nb_gcn_forward(ctx, l1, a, x)));
    assert_non_null(y);
    nb_tensor *gy = nb_empty(ctx, NB_F32, NB_SHAPE(n, 3));
    for (int64_t i = 0; i < nb_numel(gy); i++)
        nb_set(gy, i, nb_rng_normal(&r));
    assert_int_equal(nb_backward_with(ctx, y, gy), NB_OK);
    dump_u32(f, (uint32_t)n);
    dump_u32(f, undirected);
    dump_tensor(f, src);
    dump_tensor(f, dst);
    dump_tensor(f, x);
    dump_tensor(f, gy);
    dump_tensor(f, y);
    dump_tensor(f, x->grad);
    nb_module *ls[2] = {l1, l2};
    for (int k = 0; k < 2; k++) {
        nb_param_list pl;
        assert_int_equal(nb_module_params(ctx, ls[k], &pl), NB_OK);
        dump_u32(f, (uint32_t)pl.n);
        for (int i = 0; i < pl.n; i++) {
            dump_str(f, pl.items[i].name);
            dump_tensor(f, pl.items[i].tensor);
            dump_tensor(f, pl.items[i].tensor->grad);
        }
        nb_param_list_free(ctx, &pl);
    }
    nb_module_free(ctx, l1);
    nb_module_free(ctx, l2);
    nb_tensor_free(ctx, x);
    nb_csr_free(ctx, a);
    nb_arena_reset(ctx);
}

static void test_parity_cases(void **state)
{
    (void)state;
    if (!parity_path)
        skip();
    FILE *f = fopen(parity_path, "wb");
    assert_non_null(f);
    nb_ctx *ctx = new_ctx(2);
    fwrite("NBGCN1", 1, 6, f);
    write_case(ctx, f, 7, 12, true, 1);   /* random: self loops and repeats likely */
    write_case(ctx, f, 9, 15, false, 2);  /* directed */
    write_case(ctx, f, 40, 120, true, 3);
    fclose(f);
    nb_ctx_free(ctx);
}

int main(int argc, char **argv)
{
    parity_path = argc > 1 ? argv[1] : NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_from_coo),
        cmocka_unit_test(test_spmm_dense),
        cmocka_unit_test(test_norm_adjacency),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_errors_csr_layer),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_layer),
        cmocka_unit_test(test_parity_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
