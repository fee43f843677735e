/* Graph convolution (Kipf & Welling 2017, torch_geometric's GCNConv),
 * composed from ops (no backward code of its own).
 *   A_hat = D^-1/2 (A + I) D^-1/2,  D_ii = sum_j (A + I)_ij
 *           A[dst, src] = number of edges src -> dst (undirected: both ways)
 *   gcn     y = A_hat (x W^T) + b,  x [N, in], W [out, in] -> y [N, out]
 *           = spmm(A_hat, linear(x, W)) + b: the linear first, as GCNConv,
 *           so the sparse product runs over the narrower of in and out
 *           when out <= in.
 * Parameters as GCNConv's state_dict: "bias" [out] (zeros) on the layer and
 * "lin.weight" [out, in] (Glorot uniform) on its child "lin", a linear
 * without bias. m->i[0] = in, m->i[1] = out. */
#include "nn/nn.h"

#include <math.h>

nb_csr *nb_gcn_norm_adjacency(nb_ctx *ctx, nb_dtype dt, int64_t n, int64_t n_edges,
                              const int64_t *src, const int64_t *dst, bool undirected)
{
    if (!ctx)
        return NULL;
    const int64_t big = INT64_MAX / 64;
    if (n < 1 || n >= big || n_edges < 0 || n_edges >= big) {
        nb__err(ctx, NB_ERR_ARG, "gcn_norm_adjacency: need n >= 1 and n_edges >= 0 (below 2^57), "
                "got n %lld, n_edges %lld", (long long)n, (long long)n_edges);
        return NULL;
    }
    if (n_edges > 0 && (!src || !dst)) {
        nb__err(ctx, NB_ERR_NULL, "gcn_norm_adjacency: src and dst must not be NULL when n_edges > 0");
        return NULL;
    }
    for (int64_t e = 0; e < n_edges; e++)
        if (src[e] < 0 || src[e] >= n || dst[e] < 0 || dst[e] >= n) {
            bool s = src[e] < 0 || src[e] >= n;
            nb__err(ctx, NB_ERR_INDEX, "gcn_norm_adjacency: %s %lld of edge %lld is outside [0, %lld)",
                    s ? "src" : "dst", (long long)(s ? src[e] : dst[e]), (long long)e, (long long)n);
            return NULL;
        }
    /* COO of A + I: rows r, columns c, weights w; deg [n] */
    const int64_t cap = n + (undirected ? 2 : 1) * n_edges;
    size_t bytes = (2 * sizeof(int64_t) + 2 * sizeof(double)) * (size_t)cap;
    int64_t *r = nb__heap_alloc(ctx, bytes);
    if (!r) {
        nb__err(ctx, NB_ERR_NOMEM, "gcn_norm_adjacency: cannot allocate %zu bytes", bytes);
        return NULL;
    }
    int64_t *c = r + cap;
    double *w = (double *)(c + cap), *deg = w + cap;
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        r[k] = c[k] = i;
        k++;
    }
    for (int64_t e = 0; e < n_edges; e++) {
        r[k] = dst[e];
        c[k++] = src[e];
        if (undirected && src[e] != dst[e]) {
            r[k] = src[e];
            c[k++] = dst[e];
        }
    }
    for (int64_t i = 0; i < n; i++)
        deg[i] = 0;
    for (int64_t q = 0; q < k; q++)
        deg[r[q]] += 1;
    for (int64_t q = 0; q < k; q++) /* deg >= 1 everywhere: every node has its self loop */
        w[q] = 1.0 / sqrt(deg[r[q]] * deg[c[q]]);
    nb_csr *a = nb_csr_from_coo(ctx, dt, n, n, k, r, c, w);
    nb__heap_free(ctx, r);
    return a;
}

static nb_tensor *gcn_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    (void)x;
    nb__err(ctx, NB_ERR_ARG, "%s: a graph convolution needs the adjacency: call nb_gcn_forward",
            nb__label(m));
    return NULL;
}

/* the layer's own tensor: the bias (b NULL: zeros, as GCNConv) */
static nb_status gcn_reset(nb_ctx *ctx, nb_module *m, const nb_init *w, const nb_init *b)
{
    (void)w;
    if (m->n_t < 1)
        return NB_OK;
    nb_init z = nb_init_default(NB_INIT_CONSTANT);
    z.a = 0;
    return nb_init_tensor(ctx, m->t[0], b ? b : &z);
}

/* the child "lin": Glorot uniform (torch_geometric's glorot) */
static nb_status lin_reset(nb_ctx *ctx, nb_module *m, const nb_init *w, const nb_init *b)
{
    (void)b;
    nb_init g = nb_init_default(NB_INIT_XAVIER_UNIFORM);
    return nb_init_tensor(ctx, m->t[0], w ? w : &g);
}

nb_module *nb_gcn_layer(nb_ctx *ctx, const char *name, int64_t in, int64_t out, bool bias)
{
    if (!ctx)
        return NULL;
    if (in < 1 || out < 1) {
        nb__err(ctx, NB_ERR_ARG, "gcn_layer: sizes must be positive, got in %lld, out %lld",
                (long long)in, (long long)out);
        return NULL;
    }
    nb_module *m = nb__module_new(ctx, "gcn", name, gcn_fwd);
    if (!m)
        return NULL;
    m->reset = gcn_reset;
    m->i[0] = in;
    m->i[1] = out;
    if ((bias && !nb__module_add(ctx, m, "bias", false, NB_F32, NB_SHAPE(out))) ||
        gcn_reset(ctx, m, NULL, NULL) != NB_OK) {
        nb_module_free(ctx, m);
        return NULL;
    }
    nb_module *lin = nb_linear(ctx, "lin", in, out, false);
    if (lin) {
        lin->reset = lin_reset;
        if (lin_reset(ctx, lin, NULL, NULL) != NB_OK) {
            nb_module_free(ctx, lin);
            lin = NULL;
        }
    }
    if (!lin || nb_sequential_add(ctx, m, lin) != NB_OK) {
        nb_module_free(ctx, m);
        return NULL;
    }
    return m;
}

nb_tensor *nb_gcn_forward(nb_ctx *ctx, nb_module *m, const nb_csr *adj, nb_tensor *x)
{
    if (!ctx)
        return NULL;
    if (!m || m->forward != gcn_fwd) {
        nb__err(ctx, NB_ERR_ARG, "gcn_forward: %s is not a graph convolution layer",
                m ? m->kind : "NULL module");
        return NULL;
    }
    if (nb__null_in(ctx, nb__label(m), 2, adj, x))
        return NULL;
    nb_tensor *W = m->children[0]->t[0];
    char b[NB__SHAPE_BUF];
    if (x->ndim != 2 || x->shape[1] != m->i[0]) {
        nb__err(ctx, NB_ERR_SHAPE, "%s: input %s should be [nodes, %lld]", nb__label(m),
                nb_shape_str(x, b, sizeof b), (long long)m->i[0]);
        return NULL;
    }
    if (adj->rows != x->shape[0] || adj->cols != x->shape[0]) {
        nb__err(ctx, NB_ERR_SHAPE, "%s: adjacency [%lld,%lld] does not fit %lld nodes (input %s)",
                nb__label(m), (long long)adj->rows, (long long)adj->cols, (long long)x->shape[0],
                nb_shape_str(x, b, sizeof b));
        return NULL;
    }
    if (x->dtype != W->dtype || adj->val->dtype != W->dtype) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: input is %s and adjacency %s, the layer is %s", nb__label(m),
                nb_dtype_name(x->dtype), nb_dtype_name(adj->val->dtype), nb_dtype_name(W->dtype));
        return NULL;
    }
    nb_tensor *y = nb_spmm(ctx, adj, nb_linear_op(ctx, x, W, NULL));
    return m->n_t > 0 ? nb_add(ctx, y, m->t[0]) : y;
}
