/* Recurrent layers: torch.nn.RNN / LSTM / GRU, composed from ops.
 *   RNN   h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)          act tanh or relu
 *   LSTM  i,f,g,o = chunks of (x W_ih^T + b_ih + h W_hh^T + b_hh)
 *         c' = sigmoid(f) c + sigmoid(i) tanh(g),  h' = sigmoid(o) tanh(c')
 *   GRU   r,z = sigmoid(chunks of x W_ih^T + b_ih + h W_hh^T + b_hh)
 *         n = tanh(x W_in^T + b_in + r (h W_hn^T + b_hn)),  h' = n + z (h - n)
 * The input projection of all T steps is one linear over [T*N, in] before the
 * loop (one large GEMM instead of T small ones); only h W_hh^T remains per
 * step. An LSTM direction with no masked step is one op (nb_lstm_seq, which
 * does backpropagation through time itself); otherwise, and for RNN and GRU,
 * every step is recorded on the tape, so backward is BPTT with no code here.
 *
 * Variable lengths: a step t >= lengths[n] keeps row n's state (where(m, new,
 * old), exact, with the gradient going to the kept state) and outputs 0. The
 * reverse direction then starts each row from h0 at its own last valid step,
 * which is what pack_padded_sequence gives in torch.
 *
 * All parameters live on the one module, under torch's state_dict names
 * (weight_ih_l0, ..., bias_hh_l1_reverse), so a model's registry names and
 * checkpoints are torch's. That bounds layers x directions by NB__MOD_MAX_T. */
#include "nn/nn.h"

#include <math.h>
#include <stdio.h>

enum { MAX_LAYERS = 8, F_BIDIR = 1 << 4, F_BATCH_FIRST = 1 << 5 };

/* t_name needs static strings: one table for every layer and direction. */
#define P4(l, s) {"weight_ih_l" #l s, "weight_hh_l" #l s, "bias_ih_l" #l s, "bias_hh_l" #l s}
#define PL(l) {P4(l, ""), P4(l, "_reverse")}
static const char *const pnames[MAX_LAYERS][2][4] = {PL(0), PL(1), PL(2), PL(3),
                                                     PL(4), PL(5), PL(6), PL(7)};

/* m->i[0] input, i[1] hidden, i[2] layers, i[3] kind | flags; f[0] dropout */
static nb_rnn_kind kind_of(const nb_module *m) { return (nb_rnn_kind)(m->i[3] & 15); }
static int dirs_of(const nb_module *m) { return (m->i[3] & F_BIDIR) ? 2 : 1; }
static int gates_of(nb_rnn_kind k) { return k == NB_LSTM ? 4 : k == NB_GRU ? 3 : 1; }
nb_rnn_opts nb_rnn_opts_default(nb_rnn_kind kind, int64_t input, int64_t hidden)
{
    nb_rnn_opts o = {kind, input, hidden, 1, false, false, true, 0.0};
    return o;
}

static nb_status rnn_reset(nb_ctx *ctx, nb_module *m, const nb_init *w, const nb_init *b)
{
    /* torch's init: every tensor U(-k, k), k = 1/sqrt(hidden) */
    double k = 1.0 / sqrt((double)m->i[1]);
    bool bias = m->n_t == 4 * (int)m->i[2] * dirs_of(m);
    for (int i = 0; i < m->n_t; i++) {
        bool is_b = bias && (i & 2);
        const nb_init *u = is_b ? b : w;
        nb_status st = u ? nb_init_tensor(ctx, m->t[i], u) : nb_fill_uniform(ctx, m->t[i], -k, k);
        if (st != NB_OK)
            return st;
    }
    return NB_OK;
}

static nb_tensor *rnn_fwd(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    return nb_rnn_forward(ctx, m, x, NULL, NULL, NULL, NULL, NULL);
}

nb_module *nb_rnn_layer(nb_ctx *ctx, const char *name, const nb_rnn_opts *o)
{
    if (!ctx)
        return NULL;
    if (!o) {
        nb__err(ctx, NB_ERR_NULL, "rnn_layer: options are NULL");
        return NULL;
    }
    if ((int)o->kind < 0 || o->kind >= NB_RNN_KIND_COUNT) {
        nb__err(ctx, NB_ERR_ARG, "rnn_layer: unknown kind %d", (int)o->kind);
        return NULL;
    }
    const char *kind = o->kind == NB_LSTM ? "lstm" : o->kind == NB_GRU ? "gru" : "rnn";
    int dirs = o->bidirectional ? 2 : 1, per = o->bias ? 4 : 2;
    if (o->input < 1 || o->hidden < 1 || o->layers < 1) {
        nb__err(ctx, NB_ERR_ARG,
                "%s: input, hidden and layers must be positive, got %lld, %lld, %d",
                kind, (long long)o->input, (long long)o->hidden, o->layers);
        return NULL;
    }
    if (!(o->dropout >= 0 && o->dropout <= 1)) {
        nb__err(ctx, NB_ERR_ARG, "%s: dropout %g is not in [0, 1]", kind, o->dropout);
        return NULL;
    }
    int max_layers = NB__MOD_MAX_T / (dirs * per) < MAX_LAYERS ? NB__MOD_MAX_T / (dirs * per)
                                                                : MAX_LAYERS;
    if (o->layers > max_layers) {
        nb__err(ctx, NB_ERR_ARG, "%s: %d layers x %d directions need %d tensors, at most %d fit "
                "one module (at most %d layers)", kind, o->layers, dirs, o->layers * dirs * per,
                NB__MOD_MAX_T, max_layers);
        return NULL;
    }
    nb_module *m = nb__module_new(ctx, kind, name, rnn_fwd);
    if (!m)
        return NULL;
    m->reset = rnn_reset;
    m->i[0] = o->input;
    m->i[1] = o->hidden;
    m->i[2] = o->layers;
    m->i[3] = (int64_t)o->kind | (o->bidirectional ? F_BIDIR : 0) |
              (o->batch_first ? F_BATCH_FIRST : 0);
    m->f[0] = o->dropout;
    int64_t G = gates_of(o->kind) * o->hidden, H = o->hidden;
    for (int l = 0; l < o->layers; l++)
        for (int d = 0; d < dirs; d++) {
            int64_t in = l == 0 ? o->input : dirs * H;
            const char *const *nm = pnames[l][d];
            if (!nb__module_add(ctx, m, nm[0], false, NB_F32, NB_SHAPE(G, in)) ||
                !nb__module_add(ctx, m, nm[1], false, NB_F32, NB_SHAPE(G, H)) ||
                (o->bias && (!nb__module_add(ctx, m, nm[2], false, NB_F32, NB_SHAPE(G)) ||
                             !nb__module_add(ctx, m, nm[3], false, NB_F32, NB_SHAPE(G))))) {
                nb_module_free(ctx, m);
                return NULL;
            }
        }
    if (rnn_reset(ctx, m, NULL, NULL) != NB_OK) {
        nb_module_free(ctx, m);
        return NULL;
    }
    return m;
}

/* One step of one cell. xw: this step's x W_ih^T + b_ih [N, G]; h, c the
 * state (c only for LSTM); returns h' and sets *c to c'. */
static nb_tensor *cell(nb_ctx *ctx, nb_rnn_kind k, int64_t H, nb_tensor *xw, nb_tensor *h,
                       nb_tensor **c, nb_tensor *w_hh, nb_tensor *b_hh)
{
    nb_tensor *hh = nb_linear_op(ctx, h, w_hh, b_hh);
    if (!hh)
        return NULL;
    switch (k) {
    case NB_RNN_TANH: return nb_tanh(ctx, nb_add(ctx, xw, hh));
    case NB_RNN_RELU: return nb_relu(ctx, nb_add(ctx, xw, hh));
    case NB_LSTM: { /* one op for the whole cell (ops/lstm_cell.c): [h', c'] */
        nb_tensor *hc = nb_lstm_cell(ctx, xw, hh, *c);
        *c = nb_slice(ctx, hc, 1, H, 2 * H, 1);
        return nb_slice(ctx, hc, 1, 0, H, 1);
    }
    case NB_GRU: {
        /* r and z see b_hh added before the sigmoid; n's hidden part keeps
         * b_hn inside r's product (torch's GRU, unlike the original paper) */
        nb_tensor *rz = nb_sigmoid(ctx, nb_add(ctx, nb_slice(ctx, xw, 1, 0, 2 * H, 1),
                                               nb_slice(ctx, hh, 1, 0, 2 * H, 1)));
        nb_tensor *r = nb_slice(ctx, rz, 1, 0, H, 1), *z = nb_slice(ctx, rz, 1, H, 2 * H, 1);
        nb_tensor *n = nb_tanh(ctx, nb_add(ctx, nb_slice(ctx, xw, 1, 2 * H, 3 * H, 1),
                                           nb_mul(ctx, r, nb_slice(ctx, hh, 1, 2 * H, 3 * H, 1))));
        return nb_add(ctx, n, nb_mul(ctx, z, nb_sub(ctx, h, n)));
    }
    default: return NULL;
    }
}

/* Checks a state argument (h0 or c0): NULL or [layers x dirs, N, H] of x's dtype. */
static bool state_ok(nb_ctx *ctx, const nb_module *m, const char *what, const nb_tensor *s,
                     int64_t LD, int64_t N, int64_t H, nb_dtype dt)
{
    if (!s)
        return true;
    char b[NB__SHAPE_BUF];
    if (s->ndim != 3 || s->shape[0] != LD || s->shape[1] != N || s->shape[2] != H) {
        nb__err(ctx, NB_ERR_SHAPE, "%s: %s %s should be [%lld,%lld,%lld] (layers x directions, "
                "batch, hidden)", nb__label(m), what, nb_shape_str(s, b, sizeof b), (long long)LD,
                (long long)N, (long long)H);
        return false;
    }
    if (s->dtype != dt) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: %s is %s, the layer is %s", nb__label(m), what,
                nb_dtype_name(s->dtype), nb_dtype_name(dt));
        return false;
    }
    return true;
}

/* Masks for lengths: mask[t] [N, 1] of dtype dt, 1 where t < lengths[n];
 * NULL for steps every row still runs (no masking there). */
static nb_status make_masks(nb_ctx *ctx, const nb_module *m, const nb_tensor *len, int64_t T,
                            int64_t N, nb_dtype dt, nb_tensor **mask)
{
    char b[NB__SHAPE_BUF];
    if (len->ndim != 1 || len->shape[0] != N || (len->dtype != NB_I32 && len->dtype != NB_I64))
        return nb__err(ctx, NB_ERR_SHAPE, "%s: lengths %s %s should be [%lld] of i32 or i64",
                       nb__label(m), nb_dtype_name(len->dtype), nb_shape_str(len, b, sizeof b),
                       (long long)N);
    len = nb_contiguous(ctx, (nb_tensor *)len);
    if (!len)
        return ctx->err;
    int64_t min = T;
    for (int64_t n = 0; n < N; n++) {
        double v = nb_get(len, n);
        if (!(v >= 1 && v <= (double)T))
            return nb__err(ctx, NB_ERR_ARG, "%s: lengths[%lld] = %.0f is outside [1, %lld]",
                           nb__label(m), (long long)n, v, (long long)T);
        if ((int64_t)v < min)
            min = (int64_t)v;
    }
    for (int64_t t = 0; t < T; t++) {
        mask[t] = NULL;
        if (t < min)
            continue;
        if (!(mask[t] = nb_empty(ctx, dt, NB_SHAPE(N, 1))))
            return ctx->err;
        for (int64_t n = 0; n < N; n++)
            nb_set(mask[t], n, t < (int64_t)nb_get(len, n) ? 1.0 : 0.0);
    }
    return NB_OK;
}

/* The forward of nb_rnn_forward; with emb, x holds token ids ([T, N] or [N, T])
 * of the embedding emb and layer 0's input projection is a table lookup. */
static nb_tensor *rnn_run(nb_ctx *ctx, nb_module *m, nb_tensor *x, const nb_module *emb,
                          nb_tensor *h0, nb_tensor *c0, nb_tensor *lengths, nb_tensor **hn,
                          nb_tensor **cn)
{
    if (nb__null_in(ctx, nb__label(m), 1, x))
        return NULL;
    nb_rnn_kind k = kind_of(m);
    const int64_t I = m->i[0], H = m->i[1], L = m->i[2], D = dirs_of(m);
    const bool bf = m->i[3] & F_BATCH_FIRST, bias = m->n_t == 4 * L * D;
    const int per = bias ? 4 : 2;
    char b[NB__SHAPE_BUF];
    /* ids (emb): nb__rnn_fuses checked them */
    if (!emb && (x->ndim != 3 || x->shape[2] != I)) {
        nb__err(ctx, NB_ERR_SHAPE, "%s: input %s should be %s with %lld features", nb__label(m),
                nb_shape_str(x, b, sizeof b),
                bf ? "[batch, time, features]" : "[time, batch, features]",
                (long long)I);
        return NULL;
    }
    nb_dtype dt = m->t[0]->dtype;
    if (!emb && x->dtype != dt) {
        nb__err(ctx, NB_ERR_DTYPE, "%s: input is %s, the layer is %s", nb__label(m),
                nb_dtype_name(x->dtype), nb_dtype_name(dt));
        return NULL;
    }
    const int64_t T = bf ? x->shape[1] : x->shape[0], N = bf ? x->shape[0] : x->shape[1];
    if (T < 1 || N < 1) {
        nb__err(ctx, NB_ERR_SHAPE, "%s: input %s has no steps or no rows", nb__label(m),
                nb_shape_str(x, b, sizeof b));
        return NULL;
    }
    if (c0 && k != NB_LSTM) {
        nb__err(ctx, NB_ERR_ARG, "%s: c0 is only for an LSTM", nb__label(m));
        return NULL;
    }
    if (cn)
        *cn = NULL;
    if (hn)
        *hn = NULL;
    if (!state_ok(ctx, m, "h0", h0, L * D, N, H, dt) ||
        !state_ok(ctx, m, "c0", c0, L * D, N, H, dt))
        return NULL;

    /* step tensor pointers: masks, outputs of one direction, final states */
    nb_tensor **mask = nb__arena_alloc(ctx, sizeof *mask * (size_t)(3 * T + 2 * L * D));
    if (!mask) {
        nb__arena_err(ctx, nb__label(m), sizeof *mask * (size_t)(3 * T + 2 * L * D));
        return NULL;
    }
    nb_tensor **outs = mask + T, **outs_b = outs + T, **hs = outs_b + T, **cs = hs + L * D;
    if (lengths) {
        if (make_masks(ctx, m, lengths, T, N, dt, mask) != NB_OK)
            return NULL;
    } else {
        for (int64_t t = 0; t < T; t++)
            mask[t] = NULL;
    }
    nb_tensor *zero = nb_zeros(ctx, dt, NB_SHAPE(N, H));
    nb_tensor *seq = bf ? nb_transpose(ctx, x, 0, 1) : x; /* [T, N, in] */
    if (!zero || !seq)
        return NULL;

    for (int64_t l = 0; l < L; l++) {
        if (l > 0 && m->f[0] > 0 && m->training)
            seq = nb_dropout(ctx, seq, m->f[0], true);
        nb_tensor *dir_out[2] = {NULL, NULL};
        for (int64_t d = 0; d < D; d++) {
            int64_t s = l * D + d; /* torch's order: layer0 fwd, layer0 bwd, layer1 fwd, ... */
            nb_tensor *const *p = m->t + s * per;
            nb_tensor *xw;
            if (l == 0 && emb) /* the rows of E W_ih^T + b_ih [num, G] that the ids pick */
                xw = nb_embedding_op(ctx, nb_linear_op(ctx, emb->t[0], p[0], bias ? p[2] : NULL),
                                     seq, emb->i[2]);
            else
                xw = nb_linear_op(ctx, seq, p[0], bias ? p[2] : NULL); /* [T, N, G] */
            nb_tensor *h = h0 ? nb_squeeze(ctx, nb_slice(ctx, h0, 0, s, s + 1, 1), 0) : zero;
            nb_tensor *c = k != NB_LSTM ? NULL
                           : c0 ? nb_squeeze(ctx, nb_slice(ctx, c0, 0, s, s + 1, 1), 0) : zero;
            if (!xw || !h || (k == NB_LSTM && !c))
                return NULL;
            nb_tensor **o = d ? outs_b : outs;
            if (k == NB_LSTM && !mask[T - 1]) { /* no step masked: the sequence op */
                nb_tensor *y = nb_lstm_seq(ctx, xw, p[1], bias ? p[3] : NULL, h, c, d == 1);
                int64_t last = d ? 0 : T - 1;
                nb_tensor *fin = y ? nb_squeeze(ctx, nb_slice(ctx, y, 0, last, last + 1, 1), 0)
                                   : NULL;
                hs[s] = fin ? nb_slice(ctx, fin, 1, 0, H, 1) : NULL;
                cs[s] = fin ? nb_slice(ctx, fin, 1, H, 2 * H, 1) : NULL;
                dir_out[d] = y ? nb_slice(ctx, y, 2, 0, H, 1) : NULL; /* [T, N, H] */
                if (!hs[s] || !cs[s] || !dir_out[d])
                    return NULL;
                continue;
            }
            for (int64_t j = 0; j < T; j++) {
                int64_t t = d ? T - 1 - j : j;
                nb_tensor *xt = nb_squeeze(ctx, nb_slice(ctx, xw, 0, t, t + 1, 1), 0);
                nb_tensor *c_new = c;
                nb_tensor *h_new =
                    xt ? cell(ctx, k, H, xt, h, &c_new, p[1], bias ? p[3] : NULL) : NULL;
                if (!h_new)
                    return NULL;
                if (mask[t]) {
                    /* where() rather than m h' + (1-m) h: exact, and a padded
                     * step's gradient goes to the kept state only */
                    h = nb_where(ctx, mask[t], h_new, h);
                    if (c)
                        c = nb_where(ctx, mask[t], c_new, c);
                    o[t] = nb_mul(ctx, h_new, mask[t]);
                } else {
                    h = h_new;
                    c = c_new;
                    o[t] = h_new;
                }
                if (!h || !o[t] || (k == NB_LSTM && !c))
                    return NULL;
            }
            hs[s] = h;
            cs[s] = c;
            dir_out[d] = nb_stack(ctx, (int)T, o, 0); /* [T, N, H] */
            if (!dir_out[d])
                return NULL;
        }
        seq = D == 2 ? nb_concat(ctx, 2, dir_out, 2) : dir_out[0];
        if (!seq)
            return NULL;
    }
    if (hn && !(*hn = nb_stack(ctx, (int)(L * D), hs, 0)))
        return NULL;
    if (cn && k == NB_LSTM && !(*cn = nb_stack(ctx, (int)(L * D), cs, 0)))
        return NULL;
    return bf ? nb_transpose(ctx, seq, 0, 1) : seq;
}

nb_tensor *nb_rnn_forward(nb_ctx *ctx, nb_module *m, nb_tensor *x, nb_tensor *h0, nb_tensor *c0,
                          nb_tensor *lengths, nb_tensor **hn, nb_tensor **cn)
{
    if (!ctx)
        return NULL;
    if (!m || m->forward != rnn_fwd) {
        nb__err(ctx, NB_ERR_ARG, "rnn_forward: %s is not a recurrent layer",
                m ? m->kind : "NULL module");
        return NULL;
    }
    return rnn_run(ctx, m, x, NULL, h0, c0, lengths, hn, cn);
}

/* Why: x W_ih^T over embedded tokens only ever takes num distinct rows, so
 * when a batch holds more tokens than the vocabulary has rows, the product
 * over the table (then a gather, whose backward sums each token's gradient
 * into its row) does less work than the one over the tokens, in both
 * directions of the pass: for the benchmark's byte LSTM, 256 rows instead of
 * 2,048 tokens. The function and its gradients are the same. */
bool nb__rnn_fuses(const nb_module *emb, const nb_module *rnn, const nb_tensor *ids)
{
    if (!emb || !rnn || !ids || rnn->forward != rnn_fwd || !nb__is_embedding(emb) ||
        !nb__is_int(ids->dtype) || ids->ndim != 2)
        return false;
    /* a padding row takes no gradient, but its tokens' projections still
     * feed b_ih's: the table's row cannot stand for both */
    const nb_tensor *E = emb->t[0];
    return emb->i[2] < 0 && E->dtype == rnn->t[0]->dtype && E->shape[1] == rnn->i[0] &&
           E->shape[0] < nb__numel(ids);
}

nb_tensor *nb__rnn_forward_ids(nb_ctx *ctx, nb_module *rnn, const nb_module *emb, nb_tensor *ids)
{
    return rnn_run(ctx, rnn, ids, emb, NULL, NULL, NULL, NULL, NULL);
}
