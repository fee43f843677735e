/* Samples of the fused attention op (see op_samples.h). PyTorch replays the
 * composition it replaces: softmax(x0 x1^T / sqrt(D), hidden keys -inf) x2,
 * where a query with no visible key outputs zeros (torch would give nan, so
 * the replay unmasks such rows and multiplies their probabilities by 0).
 * Variants: plain 3-D; causal with Tq < Tk (offset Tk - Tq); 4-D [N, H, T, D]
 * with key padding x3 (u8) and causal; batch dims that broadcast (the op's
 * inputs are expanded; expand's backward sums); rows with no visible key;
 * causal over several blocks of query rows (Tq = Tk, Tq < Tk with padding, and
 * Tq > Tk with a block that sees nothing). */
#include "op_samples.h"

#include <math.h>
#include <stdio.h>

#define MK(kind, ...) sample_input(ctx, r, kind, NB_SHAPE(__VA_ARGS__))
#define S ((const op_sample *)user)

static nb_tensor *fn_attention(nb_ctx *ctx, nb_tensor *const *x, int n, void *user)
{
    return nb_attention(ctx, x[0], x[1], x[2], S->keep != 0, n > 3 ? x[3] : NULL);
}

/* key padding [N, Tk] u8 with row n padding its last pad[n] keys */
static nb_tensor *pad_of(nb_ctx *ctx, int64_t N, int64_t Tk, const int *pad)
{
    nb_tensor *t = nb_zeros(ctx, NB_U8, NB_SHAPE(N, Tk));
    for (int64_t n = 0; t && n < N; n++)
        for (int64_t j = Tk - pad[n]; j < Tk; j++)
            nb_set(t, n * Tk + j, 1);
    return t;
}

bool gen_attention(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    static const int pad2[2] = {1, 3}, pad_all[2] = {0, 4};
    int64_t Tq = 0, Tk = 0, D = 0;
    int kp_dims = 0; /* dims of q that the key padding broadcasts over */
    s->n_in = 3;
    s->fn = fn_attention;
    switch (v) {
    case 0: /* plain, 3-D */
        Tq = 3, Tk = 5, D = 4;
        s->in[0] = MK(V_NORMAL, 2, 3, 4);
        s->in[1] = MK(V_NORMAL, 2, 5, 4);
        s->in[2] = MK(V_NORMAL, 2, 5, 3);
        break;
    case 1: /* causal, Tq < Tk: query i sees keys j <= i + 2 */
        Tq = 3, Tk = 5, D = 2;
        s->keep = 1;
        s->in[0] = MK(V_NORMAL, 2, 3, 2);
        s->in[1] = MK(V_NORMAL, 2, 5, 2);
        s->in[2] = MK(V_NORMAL, 2, 5, 3);
        break;
    case 2: /* [N, H, T, D], causal, key padding */
        Tq = 4, Tk = 4, D = 3, kp_dims = 4;
        s->keep = 1;
        s->in[0] = MK(V_NORMAL, 2, 2, 4, 3);
        s->in[1] = MK(V_NORMAL, 2, 2, 4, 3);
        s->in[2] = MK(V_NORMAL, 2, 2, 4, 2);
        s->in[3] = pad_of(ctx, 2, 4, pad2);
        s->n_in = 4;
        break;
    case 3: /* broadcast batch dims: k shared by all, v by the heads */
        Tq = 3, Tk = 4, D = 2;
        s->in[0] = MK(V_NORMAL, 2, 3, 3, 2);
        s->in[1] = MK(V_NORMAL, 4, 2);
        s->in[2] = MK(V_NORMAL, 2, 1, 4, 3);
        break;
    case 4: /* rows with no visible key: causal with Tq > Tk, and a fully padded batch row */
        Tq = 4, Tk = 4, D = 2, kp_dims = 3;
        s->keep = 1;
        s->in[0] = MK(V_NORMAL, 2, 4, 2);
        s->in[1] = MK(V_NORMAL, 2, 4, 2);
        s->in[2] = MK(V_NORMAL, 2, 4, 2);
        s->in[3] = pad_of(ctx, 2, 4, pad_all);
        s->n_in = 4;
        break;
    case 5: /* Tq > Tk, causal: the first queries see nothing */
        Tq = 5, Tk = 3, D = 2;
        s->keep = 1;
        s->in[0] = MK(V_NORMAL, 1, 5, 2);
        s->in[1] = MK(V_NORMAL, 1, 3, 2);
        s->in[2] = MK(V_NORMAL, 1, 3, 2);
        break;
    case 6: /* causal over several blocks of query rows (src/ops/attention.c) */
        Tq = 70, Tk = 70, D = 2;
        s->keep = 1;
        s->in[0] = MK(V_NORMAL, 1, 70, 2);
        s->in[1] = MK(V_NORMAL, 1, 70, 2);
        s->in[2] = MK(V_NORMAL, 1, 70, 3);
        break;
    case 7: /* the same with Tq < Tk, and key padding */
        Tq = 40, Tk = 75, D = 2, kp_dims = 3;
        s->keep = 1;
        s->in[0] = MK(V_NORMAL, 2, 40, 2);
        s->in[1] = MK(V_NORMAL, 2, 75, 2);
        s->in[2] = MK(V_NORMAL, 2, 75, 2);
        s->in[3] = pad_of(ctx, 2, 75, pad2);
        s->n_in = 4;
        break;
    case 8: /* Tq > Tk: a whole block of rows sees no key */
        Tq = 70, Tk = 20, D = 2;
        s->keep = 1;
        s->in[0] = MK(V_NORMAL, 1, 70, 2);
        s->in[1] = MK(V_NORMAL, 1, 20, 2);
        s->in[2] = MK(V_NORMAL, 1, 20, 2);
        break;
    default: return false;
    }
    char hide[140];
    int o = snprintf(hide, sizeof hide, "torch.ones(%lld, %lld, dtype=torch.bool).triu(%lld) & %s",
                     (long long)Tq, (long long)Tk, (long long)(Tk - Tq + 1),
                     s->keep ? "True" : "False");
    if (kp_dims)
        snprintf(hide + o, sizeof hide - (size_t)o, " | x3.bool()[:%s, None, :]",
                 kp_dims == 4 ? ", None" : "");
    snprintf(s->expr, sizeof s->expr,
             "(lambda h: (torch.softmax((x0 @ x1.transpose(-2, -1) * %.17g).masked_fill(h & "
             "~h.all(-1, keepdim=True), float('-inf')), -1) * ~h.all(-1, keepdim=True)) @ x2)(%s)",
             1.0 / sqrt((double)D), hide);
    return true;
}

/* Attention over packed heads (nb_attention_qkv): PyTorch splits x0 into q,
 * k, v and heads, runs the same softmax attention and merges the heads.
 * Variants: plain; causal over several row blocks; causal with key padding. */
static nb_tensor *fn_attention_qkv(nb_ctx *ctx, nb_tensor *const *x, int n, void *user)
{
    return nb_attention_qkv(ctx, x[0], S->axis, S->keep != 0, n > 1 ? x[1] : NULL);
}

bool gen_attention_qkv(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    static const int pad2[2] = {1, 3};
    int64_t N = 2, T = 5, H = 2, D = 3;
    s->n_in = 1;
    s->fn = fn_attention_qkv;
    switch (v) {
    case 0: break;
    case 1: N = 1, T = 70, D = 2, s->keep = 1; break;
    case 2: T = 6, H = 3, D = 2, s->keep = 1, s->n_in = 2; break;
    default: return false;
    }
    s->axis = (int)H;
    s->in[0] = MK(V_NORMAL, N, T, 3 * H * D);
    if (s->n_in > 1)
        s->in[1] = pad_of(ctx, N, T, pad2);
    snprintf(s->expr, sizeof s->expr,
             "(lambda N,T,H:(lambda q,k,v:(torch.softmax((q@k.transpose(-2,-1)*%.17g).masked_fill("
             "%s,float('-inf')),-1)@v).transpose(1,2).reshape(N,T,-1))(*[t.reshape(N,T,H,-1)."
             "transpose(1,2) for t in x0.chunk(3,-1)]))(*x0.shape[:2],%d)",
             1.0 / sqrt((double)D),
             s->n_in > 1 ? "torch.ones(T,T,dtype=torch.bool).triu(1)|x1.bool()[:,None,None,:]"
             : s->keep   ? "torch.ones(T,T,dtype=torch.bool).triu(1)"
                         : "torch.zeros(1,dtype=torch.bool)",
             (int)H);
    return true;
}

/* The LSTM cell (ops/lstm_cell.c): PyTorch replays the composition it
 * replaces, torch.nn.LSTM's step. Variants: plain; the gates given as
 * row-strided views (a slice of a wider tensor, as the layer passes them)
 * and a large-magnitude input (saturated sigmoids). */
static nb_tensor *fn_lstm_cell(nb_ctx *ctx, nb_tensor *const *x, int n, void *user)
{
    (void)n;
    if (S->keep) /* a [N, 4H] view with row stride 8H: the second half of x0 */
        return nb_lstm_cell(ctx, nb_slice(ctx, x[0], 1, 4 * S->axis, 8 * S->axis, 1), x[1], x[2]);
    return nb_lstm_cell(ctx, x[0], x[1], x[2]);
}

bool gen_lstm_cell(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    int64_t N = 3, H = 4;
    s->n_in = 3;
    s->fn = fn_lstm_cell;
    s->axis = (int)H;
    const char *a = "x0";
    switch (v) {
    case 0:
        s->in[0] = MK(V_NORMAL, N, 4 * H);
        s->in[1] = MK(V_NORMAL, N, 4 * H);
        s->in[2] = MK(V_NORMAL, N, H);
        break;
    case 1:
        s->keep = 1;
        s->in[0] = MK(V_WIDE, N, 8 * H);
        s->in[1] = MK(V_NORMAL, N, 4 * H);
        s->in[2] = MK(V_WIDE, N, H);
        a = "x0[:, 16:]";
        break;
    default: return false;
    }
    snprintf(s->expr, sizeof s->expr,
             "(lambda p, c: (lambda i, f, g, o: (lambda cn: torch.cat([torch.sigmoid(o) * torch.tanh(cn), cn], 1))"
             "(torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)))(*p.chunk(4, 1)))(%s + x1, x2)", a);
    return true;
}

/* The LSTM sequence op: PyTorch replays the cell step by step (h and c
 * carried by assignment expressions). Variants: forward with bias and
 * learned initial states; reverse without bias; one step of one row. */
static nb_tensor *fn_lstm_seq(nb_ctx *ctx, nb_tensor *const *x, int n, void *user)
{
    return nb_lstm_seq(ctx, x[0], x[1], n > 4 ? x[4] : NULL, x[2], x[3], S->keep != 0);
}

bool gen_lstm_seq(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    int64_t T = 4, N = 3, H = 2;
    s->n_in = 5;
    s->fn = fn_lstm_seq;
    switch (v) {
    case 0: break;
    case 1: s->keep = 1, s->n_in = 4, T = 5, N = 2, H = 3; break;
    case 2: T = 1, N = 1; break;
    default: return false;
    }
    s->in[0] = MK(V_NORMAL, T, N, 4 * H);
    s->in[1] = MK(V_NORMAL, 4 * H, H);
    s->in[2] = MK(V_NORMAL, N, H);
    s->in[3] = MK(V_WIDE, N, H);
    if (s->n_in > 4)
        s->in[4] = MK(V_NORMAL, 4 * H);
    snprintf(s->expr, sizeof s->expr,
             "((h:=x2),(c:=x3),torch.stack([torch.cat([(h:=torch.sigmoid(o)*torch.tanh((c:=torch."
             "sigmoid(f)*c+torch.sigmoid(i)*torch.tanh(g)))),c],1) for t in range(%s) for i,f,g,o "
             "in [(x0[t]+h@x1.T%s).chunk(4,1)]])%s)[2]",
             s->keep ? "x0.shape[0]-1,-1,-1" : "x0.shape[0]", s->n_in > 4 ? "+x4" : "",
             s->keep ? ".flip(0)" : "");
    return true;
}
