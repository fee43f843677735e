/*
 * nabla: training neural networks by backpropagation, in C.
 *
 * One public header. Everything is prefixed nb_ (NB_ for macros and enum
 * values); names with a double underscore (nb__) are private.
 *
 * ---------------------------------------------------------------------------
 * Contracts (read these once)
 * ---------------------------------------------------------------------------
 * Context.  All state lives in an nb_ctx: the allocator, the step arena, the
 *   tape, the random generator, the thread count, grad mode and the error.
 *   There are no mutable globals except BLAS's own thread count, which is
 *   process-wide in OpenBLAS (nb_set_num_threads sets it).
 *
 * Threads.  One context is used by one thread at a time. Different threads may
 *   use different contexts concurrently. Kernels use OpenMP internally.
 *
 * Memory.  Two lifetimes:
 *   - persistent tensors (nb_param, nb_buffer): heap storage through the
 *     context's allocator hook, owned by the context, freed by nb_tensor_free
 *     or nb_ctx_free. Their gradients are persistent too.
 *   - step tensors: everything else (op results, views, nb_zeros, nb_from_*,
 *     gradients of step tensors, the tape). They come from the arena and die at
 *     the next nb_arena_reset. The arena grows in chunks up to
 *     nb_ctx_opts.arena_max_bytes and merges them at reset, so after the first
 *     step a training step allocates nothing.
 *
 * Errors.  Functions that make tensors return NULL on failure and record the
 *   first error (a status code and a message naming the op and the shapes) in
 *   the context. An op given a NULL input returns NULL without recording a new
 *   error, so a whole expression is checked once:
 *       nb_tensor *y = nb_add(ctx, nb_matmul(ctx, x, w), b);
 *       if (!y) fprintf(stderr, "%s\n", nb_last_error(ctx));
 *   Functions that run things (backward, gradcheck, in-place updates) return an
 *   nb_status. The recorded error stays until nb_clear_error. Nothing a caller
 *   passes can abort the process.
 *
 * Autodiff.  Define-by-run: every op computes at once and, when grad mode is on
 *   and an input requires grad, records itself on the tape. nb_backward walks
 *   the tape backwards and accumulates (+=) into the grad of every tensor that
 *   requires grad. Gradients of leaves accumulate across backward calls until
 *   nb_zero_grad. Do not change a tensor's data between forward and backward.
 */
#ifndef NABLA_H
#define NABLA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NB_VERSION_MAJOR 0
#define NB_VERSION_MINOR 1
#define NB_VERSION_PATCH 0
#define NB_VERSION_STRING "0.1.0"

#define NB_MAX_DIMS 8

/* ------------------------------------------------------------------------ */
/* Status codes: one list, one text each.                                    */
/* ------------------------------------------------------------------------ */
#define NB_STATUS_LIST(X)                                                      \
    X(NB_OK, "ok")                                                             \
    X(NB_ERR_NOMEM, "out of memory")                                           \
    X(NB_ERR_ARENA_FULL, "step arena is full")                                 \
    X(NB_ERR_NULL, "NULL argument")                                            \
    X(NB_ERR_SHAPE, "shape mismatch")                                          \
    X(NB_ERR_AXIS, "axis out of range")                                        \
    X(NB_ERR_DTYPE, "unsupported or mismatched dtype")                         \
    X(NB_ERR_ARG, "invalid argument")                                          \
    X(NB_ERR_INDEX, "index out of range")                                      \
    X(NB_ERR_GRAD, "gradient unavailable")                                     \
    X(NB_ERR_GRADCHECK, "gradient check failed")                               \
    X(NB_ERR_IO, "input/output error")                                         \
    X(NB_ERR_FORMAT, "malformed data")                                         \
    X(NB_ERR_NUMERIC, "non-finite value")

typedef enum nb_status {
#define NB__STATUS_ENUM(code, text) code,
    NB_STATUS_LIST(NB__STATUS_ENUM)
#undef NB__STATUS_ENUM
    NB_STATUS_COUNT
} nb_status;

/* Fixed text of a status code ("shape mismatch"); never NULL. */
const char *nb_status_str(nb_status s);

/* ------------------------------------------------------------------------ */
/* Data types.                                                               */
/* ------------------------------------------------------------------------ */
typedef enum nb_dtype {
    NB_F32 = 0,
    NB_F64 = 1,
    NB_I32 = 2, /* indices and labels: no arithmetic, no gradient */
    NB_I64 = 3,
    NB_U8 = 4,  /* masks (0 = false) and bytes */
    /* reserved for storage formats of later versions: */
    NB_F16 = 5,
    NB_BF16 = 6,
    NB_DTYPE_COUNT
} nb_dtype;

size_t nb_dtype_size(nb_dtype dt);     /* bytes per element, 0 if unknown */
const char *nb_dtype_name(nb_dtype dt); /* "f32", ... */

/* ------------------------------------------------------------------------ */
/* Tensors.                                                                  */
/* ------------------------------------------------------------------------ */
enum {
    NB_REQUIRES_GRAD = 1u << 0, /* backward fills ->grad */
    NB_PERSISTENT = 1u << 1,    /* heap storage owned by the context */
};

struct nb__node;

/* Fields are read-only for users; change them only through nb_ functions. */
typedef struct nb_tensor {
    nb_dtype dtype;
    int ndim;                        /* 0 (a scalar) .. NB_MAX_DIMS */
    int64_t shape[NB_MAX_DIMS];
    int64_t strides[NB_MAX_DIMS];    /* in elements, may be 0 (expanded) */
    void *data;                      /* the element at index (0, ..., 0) */
    struct nb_tensor *grad;          /* same shape, contiguous; NULL until backward */
    uint32_t flags;                  /* NB_REQUIRES_GRAD | NB_PERSISTENT */
    const char *name;                /* optional label, not owned */
    /* private */
    struct nb__node *node_;          /* op that produced it; NULL for leaves */
    struct nb_tensor *next_;         /* context's list of persistent tensors */
    struct nb_tensor *prev_;
} nb_tensor;

/* Pass a shape or an axis list literally: nb_zeros(ctx, NB_F32, NB_SHAPE(2, 3)). */
#define NB_SHAPE(...)                                                          \
    (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),                  \
        (const int64_t[]) { __VA_ARGS__ }
#define NB_AXES(...)                                                           \
    (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int)), (const int[]) { __VA_ARGS__ }

int64_t nb_numel(const nb_tensor *t);
bool nb_is_contiguous(const nb_tensor *t);
bool nb_requires_grad(const nb_tensor *t);
/* Format "[2,3]" into buf (always terminated); returns buf. */
char *nb_shape_str(const nb_tensor *t, char *buf, size_t cap);

/* Element access by flat index in row-major order over the logical shape
 * (views and expanded tensors included). For tests, examples and small loops;
 * kernels never go through these. Out-of-range or NULL gives 0 / no effect. */
double nb_get(const nb_tensor *t, int64_t flat_index);
void nb_set(nb_tensor *t, int64_t flat_index, double value);

/* ------------------------------------------------------------------------ */
/* Context.                                                                  */
/* ------------------------------------------------------------------------ */
typedef struct nb_allocator {
    /* Return memory aligned to at least `align` (a power of two) or NULL. */
    void *(*alloc)(size_t size, size_t align, void *user);
    void (*free)(void *ptr, void *user);
    void *user;
} nb_allocator;

typedef struct nb_ctx_opts {
    nb_allocator allocator;   /* all zero: aligned malloc/free */
    size_t arena_initial_bytes; /* first arena chunk; default 1 MiB */
    size_t arena_max_bytes;   /* bytes the arena may hold; default 4 GiB */
    uint64_t seed;            /* random generator seed; default 0 */
    int num_threads;          /* <= 0: NABLA_NUM_THREADS, else OpenMP's default */
} nb_ctx_opts;

typedef struct nb_ctx nb_ctx;

nb_ctx_opts nb_ctx_opts_default(void);
/* NULL opts means defaults. Returns NULL only if the allocator fails. */
nb_ctx *nb_ctx_new(const nb_ctx_opts *opts);
/* Frees the arena, the tape and every persistent tensor of the context. */
void nb_ctx_free(nb_ctx *ctx);

/* First error recorded since the last nb_clear_error (NB_OK if none). */
nb_status nb_last_status(const nb_ctx *ctx);
const char *nb_last_error(const nb_ctx *ctx); /* "" if none */
void nb_clear_error(nb_ctx *ctx);

/* Threads for nabla's kernels, matrix products included (OpenBLAS runs
 * single-threaded inside them). n <= 0 restores the default: the
 * NABLA_NUM_THREADS environment variable, else the number of cores. */
void nb_set_num_threads(nb_ctx *ctx, int n);
int nb_get_num_threads(const nb_ctx *ctx);

/* Grad mode (on by default). Returns the previous setting. */
bool nb_set_grad_enabled(nb_ctx *ctx, bool enabled);
bool nb_grad_enabled(const nb_ctx *ctx);

/* ------------------------------------------------------------------------ */
/* Arena (the step's memory).                                                */
/* ------------------------------------------------------------------------ */
typedef struct nb_arena_mark {
    void *chunk_;
    size_t used_;
    size_t tape_len_;
} nb_arena_mark;

/* Frees every step tensor and the tape. Persistent tensors and their grads
 * stay. Call once per training step. */
void nb_arena_reset(nb_ctx *ctx);
/* A mark and a rewind free everything made since the mark (evaluation loops,
 * gradient checks). Rewinding below a recorded op drops it from the tape. */
nb_arena_mark nb_arena_mark_get(const nb_ctx *ctx);
void nb_arena_rewind(nb_ctx *ctx, nb_arena_mark mark);
size_t nb_arena_used(const nb_ctx *ctx);     /* bytes in use now */
size_t nb_arena_capacity(const nb_ctx *ctx); /* bytes held from the allocator */
/* Raw step memory (64-byte aligned) for caller scratch; NULL + error if full. */
void *nb_arena_alloc(nb_ctx *ctx, size_t bytes);

/* ------------------------------------------------------------------------ */
/* Random numbers: PCG32 (O'Neill's pcg32, XSH-RR 64/32), seeded by          */
/* (seed, stream). Uniform floats take the top 24 (f32) or 53 (f64) bits;    */
/* normals use the Marsaglia polar method with nabla's own logarithm, so the */
/* same seed gives the same numbers on every platform.                       */
/* ------------------------------------------------------------------------ */
typedef struct nb_rng {
    uint64_t state;
    uint64_t inc;
} nb_rng;

void nb_rng_seed(nb_rng *r, uint64_t seed, uint64_t stream);
uint32_t nb_rng_u32(nb_rng *r);
double nb_rng_uniform(nb_rng *r);             /* [0, 1), 53 bits */
double nb_rng_normal(nb_rng *r);              /* mean 0, sd 1 */
uint32_t nb_rng_below(nb_rng *r, uint32_t n); /* unbiased, [0, n); 0 if n == 0 */
nb_rng *nb_ctx_rng(nb_ctx *ctx);              /* the context's generator */

/* Fill in place from the context's generator (float tensors only). */
nb_status nb_fill_uniform(nb_ctx *ctx, nb_tensor *t, double lo, double hi);
nb_status nb_fill_normal(nb_ctx *ctx, nb_tensor *t, double mean, double sd);
nb_status nb_fill_bernoulli(nb_ctx *ctx, nb_tensor *t, double p); /* 0/1 */
nb_status nb_fill(nb_ctx *ctx, nb_tensor *t, double value);

/* ------------------------------------------------------------------------ */
/* Making tensors.                                                           */
/* ------------------------------------------------------------------------ */
/* Persistent, zero-filled. nb_param requires grad; nb_buffer does not. */
nb_tensor *nb_param(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape);
nb_tensor *nb_buffer(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape);
/* Frees a persistent tensor and its grad (no-op for NULL or step tensors). */
void nb_tensor_free(nb_ctx *ctx, nb_tensor *t);

/* Step tensors (arena). nb_empty leaves the data uninitialised. */
nb_tensor *nb_empty(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape);
nb_tensor *nb_zeros(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape);
nb_tensor *nb_full(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape, double v);
nb_tensor *nb_scalar(nb_ctx *ctx, nb_dtype dt, double v); /* 0-d */
/* Copies `data` (row-major, of nb_dtype_size(dt) * numel bytes) in. */
nb_tensor *nb_from_data(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape,
                        const void *data);
nb_tensor *nb_zeros_like(nb_ctx *ctx, const nb_tensor *t);

/* Mark a leaf as requiring grad (or not). Fails on a non-leaf. */
nb_status nb_set_requires_grad(nb_ctx *ctx, nb_tensor *t, bool on);
/* A view of the same data that is cut from the graph (no grad flows back). */
nb_tensor *nb_detach(nb_ctx *ctx, nb_tensor *t);
/* Copy src's values into dst (same shape; dtype converted). Not recorded. */
nb_status nb_assign(nb_ctx *ctx, nb_tensor *dst, const nb_tensor *src);
/* dst += alpha * src, in place, not recorded (optimizer-style updates). */
nb_status nb_axpy(nb_ctx *ctx, nb_tensor *dst, double alpha, const nb_tensor *src);

/* ------------------------------------------------------------------------ */
/* Autodiff.                                                                 */
/* ------------------------------------------------------------------------ */
/* Backward from a tensor with one element (upstream gradient 1). */
nb_status nb_backward(nb_ctx *ctx, nb_tensor *loss);
/* Backward from any tensor with a given upstream gradient of its shape. */
nb_status nb_backward_with(nb_ctx *ctx, nb_tensor *out, const nb_tensor *grad);
/* Zero the grad of one tensor (kept allocated), or of every persistent one. */
void nb_zero_grad(nb_tensor *t);
void nb_zero_grads(nb_ctx *ctx);
size_t nb_tape_length(const nb_ctx *ctx);

/* ------------------------------------------------------------------------ */
/* Ops. Every op returns a new step tensor (or a view) or NULL on error.     */
/* Elementwise ops broadcast like NumPy; inputs must share a float dtype.    */
/* Axes may be negative (from the end).                                      */
/* ------------------------------------------------------------------------ */
typedef enum nb_reduction { NB_REDUCE_MEAN = 0, NB_REDUCE_SUM, NB_REDUCE_NONE } nb_reduction;

/* binary, broadcasting */
nb_tensor *nb_add(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_sub(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_mul(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_div(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_pow(nb_ctx *ctx, nb_tensor *a, nb_tensor *b); /* a^b, a > 0 for grad wrt b */
nb_tensor *nb_maximum(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_minimum(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
/* mask ? a : b; mask of any dtype, nonzero = true; all three broadcast. */
nb_tensor *nb_where(nb_ctx *ctx, nb_tensor *mask, nb_tensor *a, nb_tensor *b);
/* comparisons give a U8 mask (no gradient) */
nb_tensor *nb_gt(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_lt(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_ge(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_le(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_eq(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);

/* scalar forms */
nb_tensor *nb_add_scalar(nb_ctx *ctx, nb_tensor *a, double s);  /* a + s */
nb_tensor *nb_sub_scalar(nb_ctx *ctx, nb_tensor *a, double s);  /* a - s */
nb_tensor *nb_rsub_scalar(nb_ctx *ctx, nb_tensor *a, double s); /* s - a */
nb_tensor *nb_mul_scalar(nb_ctx *ctx, nb_tensor *a, double s);  /* a * s */
nb_tensor *nb_div_scalar(nb_ctx *ctx, nb_tensor *a, double s);  /* a / s */
nb_tensor *nb_rdiv_scalar(nb_ctx *ctx, nb_tensor *a, double s); /* s / a */
nb_tensor *nb_pow_scalar(nb_ctx *ctx, nb_tensor *a, double p);  /* a^p */
nb_tensor *nb_clamp(nb_ctx *ctx, nb_tensor *a, double lo, double hi); /* +-INFINITY for open */

/* unary */
nb_tensor *nb_neg(nb_ctx *ctx, nb_tensor *a);
nb_tensor *nb_exp(nb_ctx *ctx, nb_tensor *a);
nb_tensor *nb_log(nb_ctx *ctx, nb_tensor *a);
nb_tensor *nb_sqrt(nb_ctx *ctx, nb_tensor *a);
nb_tensor *nb_abs(nb_ctx *ctx, nb_tensor *a);
nb_tensor *nb_square(nb_ctx *ctx, nb_tensor *a);
nb_tensor *nb_relu(nb_ctx *ctx, nb_tensor *a);
nb_tensor *nb_leaky_relu(nb_ctx *ctx, nb_tensor *a, double slope);
nb_tensor *nb_elu(nb_ctx *ctx, nb_tensor *a, double alpha);
nb_tensor *nb_sigmoid(nb_ctx *ctx, nb_tensor *a);
nb_tensor *nb_tanh(nb_ctx *ctx, nb_tensor *a);
nb_tensor *nb_gelu(nb_ctx *ctx, nb_tensor *a);      /* exact, with erf */
nb_tensor *nb_gelu_tanh(nb_ctx *ctx, nb_tensor *a); /* tanh approximation */
nb_tensor *nb_silu(nb_ctx *ctx, nb_tensor *a);
/* log(1 + exp(beta x)) / beta, linear above x * beta > threshold (torch's). */
nb_tensor *nb_softplus(nb_ctx *ctx, nb_tensor *a, double beta, double threshold);
/* Converts dtype (float to float, recorded; to/from ints, not differentiable). */
nb_tensor *nb_cast(nb_ctx *ctx, nb_tensor *a, nb_dtype dt);

/* softmax family, numerically stable, over one axis */
nb_tensor *nb_softmax(nb_ctx *ctx, nb_tensor *a, int axis);
nb_tensor *nb_log_softmax(nb_ctx *ctx, nb_tensor *a, int axis);

/* matmul: a [..., m, k] @ b [..., k, n] -> [..., m, n]; batch dims broadcast;
 * a 1-D operand is a vector (as in torch.matmul). Transposed views
 * (nb_transpose) go to BLAS without a copy. */
nb_tensor *nb_matmul(nb_ctx *ctx, nb_tensor *a, nb_tensor *b);

/* torch.nn.functional.linear, fused: y = x W^T + b for x [..., in], W [out, in],
 * b [out] (may be NULL). One GEMM each way; dW and db accumulate straight
 * into W's and b's gradients. */
nb_tensor *nb_linear_op(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b);

/* Convolution, NCHW (src/ops/conv.c). Two values per option: [height, width]. */
typedef struct nb_conv_opts {
    int stride[2];         /* default 1 */
    int padding[2];        /* zeros on each side; default 0 */
    int dilation[2];       /* default 1 */
    int groups;            /* default 1; in and out channels divisible by it */
    int output_padding[2]; /* conv_transpose2d only: added to one side of the output */
    bool relu;             /* conv2d only: apply ReLU to the output, fused (y = max(0, conv)) */
    int algo;              /* conv2d only: an nb_conv_algo; default NB_CONV_AUTO */
    bool max_pool;         /* conv2d only: then max_pool2d with a 2x2 window and stride 2
                              (after the ReLU), fused: y is [N, O, H'/2, W'/2], and the
                              full-size output is never written */
} nb_conv_opts;
/* How conv2d computes. AUTO takes Winograd F(2x2, 3x3) for 3x3 kernels with
 * stride 1, dilation 1, one group and at least NB_CONV_WINOGRAD_MIN_CHANNELS
 * input and output channels (2.25x fewer multiplies), else im2col + GEMM.
 * The two differ in float rounding only (a few ulps of the sums). Asking for
 * WINOGRAD where it does not apply is an error, not a silent fallback. */
typedef enum nb_conv_algo { NB_CONV_AUTO = 0, NB_CONV_IM2COL = 1, NB_CONV_WINOGRAD = 2 } nb_conv_algo;
#define NB_CONV_WINOGRAD_MIN_CHANNELS 8
nb_conv_opts nb_conv_opts_default(void);
/* x [N, C, H, W], w [O, C/groups, kH, kW], b [O] or NULL -> [N, O, H', W'],
 * H' = (H + 2 pad - dil (kH - 1) - 1) / stride + 1 (as torch.nn.functional.conv2d) */
nb_tensor *nb_conv2d(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb_conv_opts *o);
/* x [N, C, L], w [O, C/groups, k]: conv2d over [N, C, 1, L] (index 1 of the options) */
nb_tensor *nb_conv1d(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb_conv_opts *o);
/* The gradient of conv2d with respect to its input, as a layer:
 * x [N, C, H, W], w [C, O/groups, kH, kW], b [O] -> [N, O, H', W'],
 * H' = (H - 1) stride - 2 pad + dil (kH - 1) + output_padding + 1 */
nb_tensor *nb_conv_transpose2d(nb_ctx *ctx, nb_tensor *x, nb_tensor *w, nb_tensor *b,
                               const nb_conv_opts *o);

/* Pooling and resampling, NCHW (src/ops/pool.c). */
typedef struct nb_pool_opts {
    int kernel[2];
    int stride[2];   /* 0: the kernel size (torch's default) */
    int padding[2];  /* at most half the kernel */
    bool ceil_mode;  /* output size rounded up (windows may start in the padding) */
    bool count_include_pad; /* avg_pool2d: padding zeros count in the mean; default true */
} nb_pool_opts;
nb_pool_opts nb_pool_opts_default(int kh, int kw);
/* max over each window; the position of the max is kept for backward (ties:
 * the first in row-major order, as torch). Padding is -inf. */
nb_tensor *nb_max_pool2d(nb_ctx *ctx, nb_tensor *x, const nb_pool_opts *o);
nb_tensor *nb_avg_pool2d(nb_ctx *ctx, nb_tensor *x, const nb_pool_opts *o);
/* torch.nn.functional.adaptive_avg_pool2d: output [N, C, oh, ow], window i
 * covering [floor(i H / oh), ceil((i + 1) H / oh)) */
nb_tensor *nb_adaptive_avg_pool2d(nb_ctx *ctx, nb_tensor *x, int oh, int ow);
/* mean over H and W: [N, C, H, W] -> [N, C] */
nb_tensor *nb_global_avg_pool2d(nb_ctx *ctx, nb_tensor *x);
/* nearest-neighbour upsampling by integer factors: [N, C, H sh, W sw] */
nb_tensor *nb_upsample_nearest2d(nb_ctx *ctx, nb_tensor *x, int sh, int sw);

/* Normalisation (src/ops/norm.c). gamma/beta may be NULL (no affine). */
/* batch norm over every dim but 1 of x [N, C, ...]. Training: batch
 * statistics (biased variance to normalise), and when running_mean/var are
 * given they move by momentum with the unbiased variance, as torch. Eval:
 * the running statistics. */
nb_tensor *nb_batch_norm(nb_ctx *ctx, nb_tensor *x, nb_tensor *gamma, nb_tensor *beta,
                         nb_tensor *running_mean, nb_tensor *running_var, bool training,
                         double momentum, double eps);
/* layer norm over the last `ndims` dims of x; gamma/beta of those dims' shape */
nb_tensor *nb_layer_norm(nb_ctx *ctx, nb_tensor *x, int ndims, nb_tensor *gamma,
                         nb_tensor *beta, double eps);
/* group norm of x [N, C, ...] with C divisible by groups; gamma/beta [C] */
nb_tensor *nb_group_norm(nb_ctx *ctx, nb_tensor *x, int groups, nb_tensor *gamma,
                         nb_tensor *beta, double eps);

/* reductions over the given axes (naxes == 0: all axes) */
nb_tensor *nb_sum(nb_ctx *ctx, nb_tensor *a, int naxes, const int *axes, bool keepdim);
nb_tensor *nb_mean(nb_ctx *ctx, nb_tensor *a, int naxes, const int *axes, bool keepdim);
/* max/min: the gradient is shared equally among tied elements (torch.amax). */
nb_tensor *nb_max(nb_ctx *ctx, nb_tensor *a, int naxes, const int *axes, bool keepdim);
nb_tensor *nb_min(nb_ctx *ctx, nb_tensor *a, int naxes, const int *axes, bool keepdim);
/* sum((a - mean)^2) / (N - correction); correction 1 is torch.var's default. */
nb_tensor *nb_var(nb_ctx *ctx, nb_tensor *a, int naxes, const int *axes, bool keepdim,
                  int correction);

/* shape ops; those marked (view) share the input's data */
nb_tensor *nb_reshape(nb_ctx *ctx, nb_tensor *a, int ndim, const int64_t *shape); /* view if contiguous; one -1 */
nb_tensor *nb_transpose(nb_ctx *ctx, nb_tensor *a, int d0, int d1);   /* (view) */
nb_tensor *nb_permute(nb_ctx *ctx, nb_tensor *a, int ndim, const int *perm); /* (view) */
/* elements start, start+step, ... < stop along axis; negative start/stop count
 * from the end and are clamped like Python slices; step >= 1 (view) */
nb_tensor *nb_slice(nb_ctx *ctx, nb_tensor *a, int axis, int64_t start, int64_t stop,
                    int64_t step);
/* broadcast to shape; -1 keeps a dimension; new dims on the left (view) */
nb_tensor *nb_expand(nb_ctx *ctx, nb_tensor *a, int ndim, const int64_t *shape);
nb_tensor *nb_squeeze(nb_ctx *ctx, nb_tensor *a, int axis);   /* (view) */
nb_tensor *nb_unsqueeze(nb_ctx *ctx, nb_tensor *a, int axis); /* (view) */
nb_tensor *nb_flatten(nb_ctx *ctx, nb_tensor *a, int start_axis, int end_axis);
nb_tensor *nb_contiguous(nb_ctx *ctx, nb_tensor *a); /* a itself if already so */
nb_tensor *nb_concat(nb_ctx *ctx, int n, nb_tensor *const *ts, int axis);
nb_tensor *nb_stack(nb_ctx *ctx, int n, nb_tensor *const *ts, int axis);
/* out = a taken at `index` (1-D, I32/I64) along axis */
nb_tensor *nb_index_select(nb_ctx *ctx, nb_tensor *a, int axis, nb_tensor *index);
/* torch.gather: index has a's ndim; out[..i..] = a[..index[..i..]..] on axis */
nb_tensor *nb_gather(nb_ctx *ctx, nb_tensor *a, int axis, nb_tensor *index);

/* losses; pred and target of the same shape (no silent broadcasting) */
nb_tensor *nb_mse_loss(nb_ctx *ctx, nb_tensor *pred, nb_tensor *target, nb_reduction r);
nb_tensor *nb_l1_loss(nb_ctx *ctx, nb_tensor *pred, nb_tensor *target, nb_reduction r);
nb_tensor *nb_smooth_l1_loss(nb_ctx *ctx, nb_tensor *pred, nb_tensor *target,
                             nb_reduction r, double beta);
nb_tensor *nb_huber_loss(nb_ctx *ctx, nb_tensor *pred, nb_tensor *target,
                         nb_reduction r, double delta);
nb_tensor *nb_bce_with_logits(nb_ctx *ctx, nb_tensor *logits, nb_tensor *target,
                              nb_reduction r);

typedef struct nb_ce_opts {
    nb_reduction reduction; /* default NB_REDUCE_MEAN */
    double label_smoothing; /* in [0, 1]; default 0 */
    int64_t ignore_index;   /* targets equal to it add nothing; default -100 */
} nb_ce_opts;
nb_ce_opts nb_ce_opts_default(void);
/* logits [N, C], target [N] of I32/I64 class ids. NULL opts: defaults. */
nb_tensor *nb_cross_entropy(nb_ctx *ctx, nb_tensor *logits, nb_tensor *target,
                            const nb_ce_opts *opts);
/* logp [N, C] log-probabilities; label_smoothing is ignored. */
nb_tensor *nb_nll_loss(nb_ctx *ctx, nb_tensor *logp, nb_tensor *target,
                       const nb_ce_opts *opts);

/* Inverted dropout: zeroes with probability p and scales the rest by
 * 1/(1-p) when training; the identity (the same tensor) otherwise. Draws from
 * the context's generator. */
nb_tensor *nb_dropout(nb_ctx *ctx, nb_tensor *a, double p, bool training);

/* ---- sampling and surrogate gradients (src/ops/stochastic.c) ---- */
/* The reparameterization trick: z = mu + exp(logvar / 2) eps, with eps given
 * (same shape as mu and logvar; it gets no gradient). Gradients flow into mu
 * and logvar: dmu = g, dlogvar = g eps exp(logvar / 2) / 2. */
nb_tensor *nb_reparameterize(nb_ctx *ctx, nb_tensor *mu, nb_tensor *logvar, nb_tensor *eps);
/* The same with eps ~ N(0, 1) drawn from the context's generator. */
nb_tensor *nb_gaussian_sample(nb_ctx *ctx, nb_tensor *mu, nb_tensor *logvar);
/* KL(N(mu, exp(logvar)) || N(0, 1)) of diagonal Gaussians [N, ...]:
 * per row -1/2 sum(1 + logvar - mu^2 - exp(logvar)) over all but the first
 * dim; then NONE: [N], SUM: the sum, MEAN: the mean over the N rows (the
 * per-sample KL term of a VAE's loss). */
nb_tensor *nb_kl_normal(nb_ctx *ctx, nb_tensor *mu, nb_tensor *logvar, nb_reduction r);

/* Straight-through estimators: the forward is a step function; the backward
 * passes the gradient through unchanged (clip <= 0), or only where
 * |x| <= clip (clip > 0: the gradient of hardtanh, as for binarized nets).
 *   sign:      y = +1 for x >= 0, -1 for x < 0 (0 maps to +1: a binary code)
 *   round:     y = round half to even (torch.round)
 *   quantize:  y = lo + round((clamp(x, lo, hi) - lo) / d) d, d = (hi - lo) / (levels - 1);
 *              with clip the gradient passes only where lo <= x <= hi */
nb_tensor *nb_sign_ste(nb_ctx *ctx, nb_tensor *x, double clip);
nb_tensor *nb_round_ste(nb_ctx *ctx, nb_tensor *x, double clip);
nb_tensor *nb_quantize_ste(nb_ctx *ctx, nb_tensor *x, double lo, double hi, int levels, bool clip);

/* Gumbel-softmax over the last dim of logits [..., C]:
 *   y = softmax((logits + g) / tau),  g = -log(-log(u)), u ~ U(0, 1)
 * with g given (same shape) or drawn from the context's generator (NULL).
 * tau > 0. hard: the forward is the one-hot of argmax(y) and the gradient is
 * that of the soft y (straight through), as torch.nn.functional.gumbel_softmax. */
nb_tensor *nb_gumbel_softmax(nb_ctx *ctx, nb_tensor *logits, nb_tensor *gumbel, double tau,
                             bool hard);

/* Extra loss terms that layers add during their forward (a VAE's KL term):
 * nb_train and nb_evaluate add them to the batch loss. The pending sum is
 * dropped at nb_arena_reset and nb_arena_rewind. t must be a scalar. */
nb_status nb_add_loss(nb_ctx *ctx, nb_tensor *t);
/* The pending sum (NULL when none) and clears it. */
nb_tensor *nb_take_added_loss(nb_ctx *ctx);

/* ------------------------------------------------------------------------ */
/* Gradient checking.                                                        */
/* ------------------------------------------------------------------------ */
/* The function under test: builds its output from inputs[0..n-1] with nb_ ops.
 * It is called many times; the context's generator is restored before each
 * call, so random ops (dropout) see the same draws every time. */
typedef nb_tensor *(*nb_gradcheck_fn)(nb_ctx *ctx, nb_tensor *const *inputs, int n,
                                      void *user);

typedef struct nb_gradcheck_opts {
    double eps;      /* central-difference step; default 1e-5 */
    double tol;      /* worst relative error allowed; default 1e-6 */
    double abs_floor; /* errors are relative to max(|analytic|, |numeric|, floor); default 1e-3 */
    uint64_t seed;   /* weights of the random projection; default 1 */
} nb_gradcheck_opts;

typedef struct nb_gradcheck_result {
    int n;                        /* inputs checked */
    double max_rel_err[16];       /* worst relative error per input (0 if no grad) */
    int64_t worst_index[16];      /* flat index of that element */
    double worst;                 /* max over inputs */
} nb_gradcheck_result;

nb_gradcheck_opts nb_gradcheck_opts_default(void);
/* Inputs: up to 16 F64 tensors; those requiring grad are checked. The output
 * is projected to a scalar with random weights W (sum(W * f(x))) so that a
 * backward ignoring its upstream gradient fails. Returns NB_OK when every
 * error is within tol, NB_ERR_GRADCHECK otherwise, or another status if f
 * fails. Persistent inputs keep their grads zeroed on return. */
nb_status nb_gradcheck(nb_ctx *ctx, nb_gradcheck_fn f, void *user, nb_tensor *const *inputs,
                       int n, const nb_gradcheck_opts *opts, nb_gradcheck_result *res);

/* ------------------------------------------------------------------------ */
/* Data files (src/data). Each reader returns a new persistent tensor owned  */
/* by the context (free it with nb_tensor_free), or NULL with the error      */
/* recorded: NB_ERR_IO for a file that cannot be read, NB_ERR_FORMAT for one */
/* that is malformed (the message names the file and what is wrong).         */
/* ------------------------------------------------------------------------ */
/* IDX (MNIST's format), plain or gzip-compressed (detected from the bytes).
 * Element types: u8 -> NB_U8, i8/i16/i32 -> NB_I32, f32 -> NB_F32, f64 -> NB_F64. */
nb_tensor *nb_idx_read(nb_ctx *ctx, const char *path);
/* NPY, versions 1 to 3, C order (Fortran order is refused), dtypes <f4 <f8
 * <i4 <i8 |u1 |b1 and the big-endian forms (converted); i1/i2/u2 widen to
 * NB_I32 and u4 to NB_I64. */
nb_tensor *nb_npy_read(nb_ctx *ctx, const char *path);
/* Writes t (f32, f64, i32, i64, u8; any strides) as NPY version 1.0. */
nb_status nb_npy_write(nb_ctx *ctx, const char *path, const nb_tensor *t);

typedef struct nb_csv_opts {
    bool header;             /* first row names the columns; default true */
    char delimiter;          /* default ',' */
    const char *label_name;  /* label column by header name, or NULL */
    int label_index;         /* label column by index (negative from the end); default -1 */
    bool no_label;           /* every column is a feature; default false */
    bool label_float;        /* labels as F32 regression targets [N, 1] instead of I64 ids */
} nb_csv_opts;
nb_csv_opts nb_csv_opts_default(void);
/* Numeric CSV (plain or gzip): features -> F32 [N, D] in *x, labels -> I64 [N]
 * (or F32 [N, 1]) in *y (y may be NULL when no_label). Empty lines are
 * skipped; features take strtod's spellings (nan, inf too). A ragged row, a
 * field that is not a number, or a class id that is not a whole number >= 0
 * is NB_ERR_FORMAT naming the line and the column; a label column that does
 * not exist is NB_ERR_ARG. */
nb_status nb_csv_read(nb_ctx *ctx, const char *path, const nb_csv_opts *opts, nb_tensor **x,
                      nb_tensor **y);

/* ------------------------------------------------------------------------ */
/* safetensors (src/io). Files are written atomically: a temporary file in   */
/* the same folder, fsync, rename over the target, fsync of the folder, so a */
/* crash mid-save leaves the previous file whole.                            */
/* ------------------------------------------------------------------------ */
typedef struct nb_st_item {
    const char *name;         /* unique */
    const nb_tensor *tensor;  /* any strides */
    nb_dtype store;           /* dtype in the file: NB_F32, NB_F64, NB_F16, NB_BF16,
                                 NB_I32, NB_I64, NB_U8; NB_DTYPE_COUNT = the tensor's own */
} nb_st_item;

typedef struct nb_st_meta {
    const char *key, *value;  /* strings, stored in "__metadata__" */
} nb_st_meta;

nb_status nb_safetensors_save(nb_ctx *ctx, const char *path, const nb_st_item *items, int n,
                              const nb_st_meta *meta, int nmeta);

/* A parsed file: the header is validated strictly on open (offsets
 * contiguous from 0, sizes matching dtype x shape, no overlap, no duplicate
 * names, header under 100 MB, file size exact). */
typedef struct nb_safetensors nb_safetensors;
nb_safetensors *nb_safetensors_open(nb_ctx *ctx, const char *path);
void nb_safetensors_close(nb_ctx *ctx, nb_safetensors *st);
int nb_safetensors_count(const nb_safetensors *st);
const char *nb_safetensors_name(const nb_safetensors *st, int i); /* file order */
/* Shape and dtype of a named tensor; NB_ERR_ARG, recorded in the context the
 * file was opened with, if absent (dtype is NB_DTYPE_COUNT for a dtype nabla
 * cannot hold, such as F8). A handle must be closed before its context is
 * freed. */
nb_status nb_safetensors_info(const nb_safetensors *st, const char *name, nb_dtype *dtype,
                              int *ndim, int64_t shape[NB_MAX_DIMS]);
/* Copies a named tensor into dst, which must have its shape; converts the
 * file's dtype to dst's (f16/bf16/f32/f64 to float; integers to integers or
 * float). On an error dst may be partly written. */
nb_status nb_safetensors_read(nb_ctx *ctx, const nb_safetensors *st, const char *name,
                              nb_tensor *dst);
/* A metadata value, or NULL. */
const char *nb_safetensors_meta(const nb_safetensors *st, const char *key);

/* ------------------------------------------------------------------------ */
/* Initializers (src/nn/init.c). Seeded from the context's generator.       */
/* Fans follow torch.nn.init: for a weight [out, in, k...], fan_in = in * k */
/* and fan_out = out * k; a 1-D tensor has fan_in = fan_out = its length.   */
/* ------------------------------------------------------------------------ */
typedef enum nb_init_kind {
    NB_INIT_CONSTANT = 0,   /* a */
    NB_INIT_UNIFORM,        /* U(a, b) */
    NB_INIT_NORMAL,         /* N(a, b^2): mean a, sd b */
    NB_INIT_XAVIER_UNIFORM, /* U(-r, r), r = gain sqrt(6 / (fan_in + fan_out)) */
    NB_INIT_XAVIER_NORMAL,  /* sd = gain sqrt(2 / (fan_in + fan_out)) */
    NB_INIT_KAIMING_UNIFORM,/* U(-r, r), r = gain sqrt(3 / fan) */
    NB_INIT_KAIMING_NORMAL, /* sd = gain / sqrt(fan) */
    NB_INIT_ORTHOGONAL,     /* rows (or columns) orthonormal, times gain */
    NB_INIT_TORCH_LINEAR,   /* torch.nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
    NB_INIT_COUNT
} nb_init_kind;

typedef enum nb_nonlinearity {
    NB_GAIN_LINEAR = 0, /* gain 1 (also sigmoid, identity) */
    NB_GAIN_RELU,       /* sqrt(2) */
    NB_GAIN_LEAKY_RELU, /* sqrt(2 / (1 + slope^2)) */
    NB_GAIN_TANH,       /* 5/3 */
    NB_GAIN_SELU        /* 3/4 */
} nb_nonlinearity;

typedef struct nb_init {
    nb_init_kind kind;
    double a, b;              /* constant / bounds / mean and sd, by kind */
    nb_nonlinearity nonlinearity; /* kaiming, xavier, orthogonal gain */
    double slope;             /* for NB_GAIN_LEAKY_RELU; default 0.01 */
    bool fan_out;             /* kaiming: use fan_out instead of fan_in */
    double gain;              /* > 0 overrides the nonlinearity's gain */
} nb_init;

nb_init nb_init_default(nb_init_kind kind);
double nb_gain(nb_nonlinearity nl, double slope);
nb_status nb_init_tensor(nb_ctx *ctx, nb_tensor *t, const nb_init *init);

/* ------------------------------------------------------------------------ */
/* Layers (src/nn). A module owns its parameters (persistent tensors) and   */
/* its children. Parameters are named by their path: "fc1.weight", and a    */
/* child of a sequential without a name of its own is called by its index.  */
/* Modules are freed with nb_module_free (the root frees the tree).         */
/* ------------------------------------------------------------------------ */
typedef struct nb_module nb_module;

typedef enum nb_act {
    NB_ACT_RELU = 0, NB_ACT_LEAKY_RELU, NB_ACT_ELU, NB_ACT_SIGMOID, NB_ACT_TANH,
    NB_ACT_GELU, NB_ACT_GELU_TANH, NB_ACT_SILU, NB_ACT_SOFTPLUS, NB_ACT_IDENTITY,
    NB_ACT_SIGN, /* "sign": nb_sign_ste with clip param (0: 1), a binarized net's activation */
    NB_ACT_COUNT
} nb_act;

/* name may be NULL (then the index in its parent names it). */
nb_module *nb_linear(nb_ctx *ctx, const char *name, int64_t in, int64_t out, bool bias);
nb_module *nb_activation(nb_ctx *ctx, const char *name, nb_act act, double param);
nb_module *nb_dropout_layer(nb_ctx *ctx, const char *name, double p);
nb_module *nb_flatten_layer(nb_ctx *ctx, const char *name); /* [N, ...] -> [N, prod] */
nb_module *nb_sequential(nb_ctx *ctx, const char *name);
/* Appends child; the sequential owns it from then on (also on failure). */
nb_status nb_sequential_add(nb_ctx *ctx, nb_module *seq, nb_module *child);
/* Convolution, pooling and normalisation layers (torch.nn's parameter names
 * and initialisation: conv weight [out, in/groups, kH, kW] and bias like
 * Linear's with fan_in = in/groups kH kW; norm weight 1, bias 0). */
nb_module *nb_conv2d_layer(nb_ctx *ctx, const char *name, int64_t in, int64_t out, int kh, int kw,
                           const nb_conv_opts *o, bool bias);
nb_module *nb_max_pool_layer(nb_ctx *ctx, const char *name, const nb_pool_opts *o);
nb_module *nb_avg_pool_layer(nb_ctx *ctx, const char *name, const nb_pool_opts *o);
nb_module *nb_global_avg_pool_layer(nb_ctx *ctx, const char *name); /* [N,C,H,W] -> [N,C] */
nb_module *nb_upsample_layer(nb_ctx *ctx, const char *name, int sh, int sw);
/* weight, bias (affine); buffers running_mean, running_var, num_batches_tracked */
nb_module *nb_batch_norm_layer(nb_ctx *ctx, const char *name, int64_t channels, double momentum,
                               double eps, bool affine);
/* normalises the last ndims dims, of the given shape */
nb_module *nb_layer_norm_layer(nb_ctx *ctx, const char *name, int ndims, const int64_t *shape,
                               double eps, bool affine);
nb_module *nb_group_norm_layer(nb_ctx *ctx, const char *name, int groups, int64_t channels,
                               double eps, bool affine);
/* [N, ...] -> [N, shape...] (a view when contiguous); one -1 allowed */
nb_module *nb_reshape_layer(nb_ctx *ctx, const char *name, int ndim, const int64_t *shape);
/* y = post(body(x) + shortcut(x)); shortcut NULL is the identity. Takes
 * ownership of body and shortcut (children "body" and "shortcut"). */
nb_module *nb_residual(nb_ctx *ctx, const char *name, nb_module *body, nb_module *shortcut,
                       nb_act post);
/* torchvision's BasicBlock: conv1 3x3 (stride), bn1, relu, conv2 3x3, bn2, plus the
 * input or downsample (1x1 conv with the stride, bn) when shape changes, relu.
 * Children named as torchvision's (conv1, bn1, conv2, bn2, downsample.0/1). */
nb_module *nb_basic_block(nb_ctx *ctx, const char *name, int64_t in, int64_t out, int stride);
/* A small ResNet for images [N, in_ch, H, W]: conv1 3x3 (width) + bn1 + relu,
 * layer1..layer3 of `blocks` basic blocks with widths width, 2 width, 4 width
 * (stride 1, 2, 2), global average pooling, fc to classes. */
nb_module *nb_resnet(nb_ctx *ctx, const char *name, int64_t in_ch, int64_t classes, int64_t width,
                     int blocks);
/* A VAE's latent layer: mu = linear(x), logvar = linear(x) (children "mu"
 * and "logvar", [in] -> [latent]), output z = nb_gaussian_sample(mu, logvar)
 * in training and evaluation alike (an ELBO is an expectation over z), and
 * beta x nb_kl_normal(mu, logvar, MEAN) added with nb_add_loss. The layers
 * after it in a sequential are the decoder. */
nb_module *nb_gaussian_layer(nb_ctx *ctx, const char *name, int64_t in, int64_t latent, double beta);
/* Linear with binarized weights: y = x sign(W)^T + b, sign by the
 * straight-through estimator (the gradient reaches the real-valued W as is);
 * W initialised as nb_linear's. Parameters "weight", "bias". */
nb_module *nb_binary_linear(nb_ctx *ctx, const char *name, int64_t in, int64_t out, bool bias);
/* Embedding (torch.nn.Embedding): weight [num, dim] ~ N(0, 1); ids of any
 * integer dtype and shape [...] give [..., dim]. The gradient reaches only
 * the rows used (the rest of the weight's gradient stays 0); padding_idx >= 0:
 * that row starts at 0, looks up as is and gets no gradient (-1: none). An id
 * outside [0, num) is NB_ERR_INDEX naming it. Parameter "weight". */
nb_module *nb_embedding(nb_ctx *ctx, const char *name, int64_t num, int64_t dim, int64_t padding_idx);
nb_tensor *nb_embedding_op(nb_ctx *ctx, nb_tensor *weight, nb_tensor *ids, int64_t padding_idx);

/* Graph convolution (src/ops/sparse.c, src/nn/gcn.c). A graph's adjacency is
 * sparse, so it is held in CSR form: row i's nonzeros are
 * col[row_ptr[i] .. row_ptr[i+1]-1] with values val[...], columns sorted
 * within a row, no duplicates. The tensors are persistent buffers (a
 * constant: no gradient) owned by the nb_csr; free it with nb_csr_free
 * before the context, and not while a recorded graph that uses it may still
 * be backpropagated. */
typedef struct nb_csr {
    int64_t rows, cols, nnz;
    nb_tensor *row_ptr; /* I64 [rows + 1] */
    nb_tensor *col;     /* I64 [nnz] */
    nb_tensor *val;     /* F32 or F64 [nnz] */
} nb_csr;
/* A [rows, cols] from nnz (row, col, value) triplets (val NULL: all 1),
 * stored as dtype dt (F32/F64). Duplicates are summed. An index outside its
 * range is NB_ERR_INDEX naming it and its position; a non-finite value is
 * NB_ERR_NUMERIC. */
nb_csr *nb_csr_from_coo(nb_ctx *ctx, nb_dtype dt, int64_t rows, int64_t cols, int64_t nnz,
                        const int64_t *row, const int64_t *col, const double *val);
void nb_csr_free(nb_ctx *ctx, nb_csr *a);
/* Kipf & Welling's propagation matrix D^-1/2 (A + I) D^-1/2 for n nodes and
 * the edges src[e] -> dst[e] (A[dst, src] = number of such edges; undirected:
 * each edge also counts as dst -> src, a self loop once), D = the row sums of
 * A + I. As torch_geometric's gcn_norm with add_self_loops, except that a
 * self loop in the input adds to I's 1 rather than replacing it. */
nb_csr *nb_gcn_norm_adjacency(nb_ctx *ctx, nb_dtype dt, int64_t n, int64_t n_edges,
                              const int64_t *src, const int64_t *dst, bool undirected);
/* y = A x: A [M, K] sparse, x [K, F] dense (any strides; A's dtype) -> y [M, F].
 * x gets the gradient A^T g (deterministic for any thread count). */
nb_tensor *nb_spmm(nb_ctx *ctx, const nb_csr *a, nb_tensor *x);
/* The op itself over the CSR's three tensors (row_ptr, col I64; val of x's
 * dtype; all 1-D): fully validated on every call (NB_ERR_INDEX for a column
 * outside [0, K) or a malformed row_ptr, NB_ERR_NUMERIC for a non-finite
 * value). val may require grad (learned edge weights): dval[p] =
 * <g[row p], x[col p]>. */
nb_tensor *nb_spmm_csr(nb_ctx *ctx, nb_tensor *row_ptr, nb_tensor *col, nb_tensor *val,
                       nb_tensor *x);
/* torch_geometric's GCNConv: y = A_hat (x W^T) + b, x [N, in] -> [N, out],
 * with A_hat from nb_gcn_norm_adjacency. Parameters "bias" [out] (zeros; only
 * with bias) and "lin.weight" [out, in] (Glorot uniform), as GCNConv's
 * state_dict (torch_geometric >= 2.0). nb_module_forward cannot pass the
 * adjacency: call nb_gcn_forward (a wrong layer or a node-count mismatch is an
 * error). */
nb_module *nb_gcn_layer(nb_ctx *ctx, const char *name, int64_t in, int64_t out, bool bias);
nb_tensor *nb_gcn_forward(nb_ctx *ctx, nb_module *gcn, const nb_csr *adj, nb_tensor *x);

/* Recurrent layers with torch.nn.RNN/LSTM/GRU's equations, parameter names
 * (weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ..._reverse; gates in
 * torch's order: LSTM i f g o, GRU r z n) and initialisation
 * (U(-1/sqrt(hidden), 1/sqrt(hidden))), trained by backpropagation through
 * time over the recorded steps. */
typedef enum nb_rnn_kind { NB_RNN_TANH = 0, NB_RNN_RELU, NB_LSTM, NB_GRU, NB_RNN_KIND_COUNT } nb_rnn_kind;
typedef struct nb_rnn_opts {
    nb_rnn_kind kind;
    int64_t input, hidden;
    int layers;          /* default 1 */
    bool bidirectional;
    bool batch_first;    /* x [N, T, I] instead of [T, N, I] */
    bool bias;           /* default true */
    double dropout;      /* between layers, in training mode; default 0 */
} nb_rnn_opts;
nb_rnn_opts nb_rnn_opts_default(nb_rnn_kind kind, int64_t input, int64_t hidden);
nb_module *nb_rnn_layer(nb_ctx *ctx, const char *name, const nb_rnn_opts *o);
/* Runs a sequence: x [T, N, I] (batch_first: [N, T, I]); h0 (and for LSTM
 * c0) [layers x dirs, N, H] or NULL for zeros (pass the previous chunk's
 * detached hn/cn for truncated BPTT); lengths (may be NULL) [N] of I32/I64
 * for variable-length sequences: steps t >= lengths[n] leave row n's state
 * unchanged and output 0 there (pack_padded_sequence's semantics). Returns
 * the output [T, N, dirs x H] (batch_first: [N, T, dirs x H]) and, when hn /
 * cn are not NULL, the final states. nb_module_forward(rnn, x) is this with
 * zeros and no lengths, returning the output. */
nb_tensor *nb_rnn_forward(nb_ctx *ctx, nb_module *rnn, nb_tensor *x, nb_tensor *h0, nb_tensor *c0,
                          nb_tensor *lengths, nb_tensor **hn, nb_tensor **cn);
/* One LSTM step as one op (torch.nn.LSTM's cell): a, b [N, 4H] (x W_ih^T + b_ih
 * and h W_hh^T + b_hh; chunks i, f, g, o of their sum), c [N, H] ->
 * [N, 2H] = [h', c'] with c' = sigmoid(f) c + sigmoid(i) tanh(g),
 * h' = sigmoid(o) tanh(c'). nb_rnn_forward uses it; slice the halves. */
nb_tensor *nb_lstm_cell(nb_ctx *ctx, nb_tensor *a, nb_tensor *b, nb_tensor *c);
/* A whole LSTM direction as one op: xw [T, N, 4H] (x W_ih^T + b_ih for every
 * step), w_hh [4H, H], b_hh [4H] or NULL, h0 and c0 [N, H] -> [T, N, 2H] with
 * [h_t, c_t] at step t; reverse runs t = T-1 .. 0. Backpropagation through time
 * is inside the op (one GEMM per step each way, W_hh's gradient as one GEMM
 * over all steps). nb_rnn_forward uses it for LSTMs without lengths. */
nb_tensor *nb_lstm_seq(nb_ctx *ctx, nb_tensor *xw, nb_tensor *w_hh, nb_tensor *b_hh, nb_tensor *h0,
                       nb_tensor *c0, bool reverse);
/* Scaled dot-product attention over q [..., Tq, D], k [..., Tk, D], v [..., Tk, Dv]:
 * softmax(q k^T / sqrt(D) + mask) v -> [..., Tq, Dv]. causal: query i sees keys
 * j <= i (+ Tk - Tq). key_pad (may be NULL): [N, Tk] U8/I32/I64, nonzero where
 * the key is padding (not attended); the leading dim of q is N. A row with no
 * key left gives zeros. One fused op (src/ops/attention.c): it keeps only the
 * probabilities for backward. */
nb_tensor *nb_attention(nb_ctx *ctx, nb_tensor *q, nb_tensor *k, nb_tensor *v, bool causal,
                        nb_tensor *key_pad);
/* The same over packed heads: qkv [N, T, 3E] holds q, k, v as thirds of the
 * last dim, each split into `heads` heads of D = E / heads columns; returns
 * [N, T, E] with head h's output in columns [h D, (h + 1) D) (the layout of
 * torch.nn.MultiheadAttention's in_proj and out_proj). key_pad: [N, T] or
 * NULL. Self-attention layers use it: no copies to split or merge heads. */
nb_tensor *nb_attention_qkv(nb_ctx *ctx, nb_tensor *qkv, int heads, bool causal,
                            nb_tensor *key_pad);
/* torch.nn.MultiheadAttention (batch_first, one in_proj [3E, E] + bias and an
 * out_proj, parameters "in_proj_weight", "in_proj_bias", "out_proj.weight",
 * "out_proj.bias", torch's init): self-attention of x [N, T, E] with `heads`
 * heads (E % heads == 0, else NB_ERR_ARG). */
nb_module *nb_mha_layer(nb_ctx *ctx, const char *name, int64_t embed, int heads);
nb_tensor *nb_mha_forward(nb_ctx *ctx, nb_module *mha, nb_tensor *x, bool causal, nb_tensor *key_pad);
/* Positional encodings added to x [N, T, E]: sinusoidal (Vaswani et al.; no
 * parameters) or learned ("weight" [max_len, E] ~ N(0, 0.02^2)); T > max_len is
 * NB_ERR_SHAPE. */
nb_module *nb_positional_layer(nb_ctx *ctx, const char *name, int64_t max_len, int64_t embed,
                               bool learned);
/* Pre-LayerNorm transformer block over x [N, T, embed]:
 *   x = x + drop(self_attn(norm1(x))); x = x + drop(linear2(drop(gelu(linear1(norm2(x))))))
 * torch.nn.TransformerEncoderLayer(norm_first=True, activation="gelu",
 * batch_first=True)'s parameters and names ("self_attn.in_proj_weight",
 * "linear1.weight", "norm1.weight", ...) and init; unlike it, no dropout on the
 * attention weights. causal: each position sees only itself and earlier ones
 * (used by nb_module_forward too). key_pad as in nb_attention (may be NULL). */
nb_module *nb_transformer_block(nb_ctx *ctx, const char *name, int64_t embed, int heads,
                                int64_t hidden, double dropout, bool causal);
nb_tensor *nb_transformer_forward(nb_ctx *ctx, nb_module *block, nb_tensor *x, nb_tensor *key_pad);
/* A GPT (decoder-only language model): children "emb" (vocab x width,
 * N(0, 0.02^2)), "pos" (learned, context positions), "block0".."block{layers-1}"
 * (causal, hidden 4 x width), "ln_f"; the output layer is emb.weight (tied, no
 * bias), as GPT-2's. ids [N, T <= context] -> logits [N, T, vocab]. */
nb_module *nb_gpt(nb_ctx *ctx, const char *name, int64_t vocab, int64_t context, int layers,
                  int heads, int64_t width, double dropout);
/* Parses an activation name ("relu", "gelu_tanh", ...); NB_ACT_COUNT if unknown. */
nb_act nb_act_from_name(const char *name);
const char *nb_act_name(nb_act act);

nb_tensor *nb_module_forward(nb_ctx *ctx, nb_module *m, nb_tensor *x);
/* Training mode (dropout on) or evaluation mode, for the whole tree. */
void nb_module_train(nb_module *m, bool training);
bool nb_module_training(const nb_module *m);
void nb_module_free(nb_ctx *ctx, nb_module *m);
const char *nb_module_kind(const nb_module *m); /* "linear", "sequential", ... */
const char *nb_module_name(const nb_module *m);
int nb_module_child_count(const nb_module *m);
nb_module *nb_module_child(const nb_module *m, int i);

/* The parameter registry: every parameter and buffer of the tree with its
 * dotted name, in a stable order (depth first, declaration order). */
typedef struct nb_named_tensor {
    const char *name;
    nb_tensor *tensor;
    bool is_buffer; /* persistent state that is not trained (running statistics) */
} nb_named_tensor;
typedef struct nb_param_list {
    int n;
    nb_named_tensor *items;
} nb_param_list;
nb_status nb_module_params(nb_ctx *ctx, nb_module *m, nb_param_list *out);
void nb_param_list_free(nb_ctx *ctx, nb_param_list *l);
nb_tensor *nb_module_find(nb_ctx *ctx, nb_module *m, const char *name); /* NULL: absent */
int64_t nb_module_param_count(nb_module *m); /* elements of trainable parameters */
/* Freezes (or unfreezes) the trainable parameters whose registry name
 * matches one of the comma-separated fnmatch patterns ("fc1.*,conv*"): a
 * frozen parameter does not require grad, so it gets no gradient and the
 * optimizer leaves it. Returns the number of parameters matched (>= 0) or a
 * negative status; a pattern that matches nothing is an NB_ERR_ARG error
 * naming it. */
int nb_module_freeze(nb_ctx *ctx, nb_module *m, const char *patterns, bool frozen);
/* Re-initialises every parameter: weights with w, biases with b (NULL:
 * each layer's default, which is PyTorch's). */
nb_status nb_module_init(nb_ctx *ctx, nb_module *m, const nb_init *w, const nb_init *b);

/* ------------------------------------------------------------------------ */
/* Optimizers (src/optim): torch.optim's update rules, one fused pass over   */
/* each tensor per step. State tensors are persistent and made when a group */
/* is added, so a step allocates nothing.                                   */
/* ------------------------------------------------------------------------ */
typedef enum nb_optim_kind {
    NB_OPT_SGD = 0, NB_OPT_ADAM, NB_OPT_ADAMW, NB_OPT_RMSPROP, NB_OPT_ADAGRAD, NB_OPT_COUNT
} nb_optim_kind;

typedef struct nb_optim_opts {
    nb_optim_kind kind;
    double lr;           /* default: sgd 0.01 (torch requires one), adam(w) 1e-3, rmsprop 1e-2, adagrad 1e-2 */
    double weight_decay; /* L2 added to the gradient; AdamW: decoupled (default 1e-2 there) */
    double momentum;     /* sgd, rmsprop */
    double dampening;    /* sgd */
    bool nesterov;       /* sgd */
    double beta1, beta2; /* adam(w): 0.9, 0.999 */
    double eps;          /* adam(w) 1e-8, rmsprop 1e-8, adagrad 1e-10 */
    bool amsgrad;        /* adam(w) */
    double alpha;        /* rmsprop: 0.99 */
    bool centered;       /* rmsprop */
    double lr_decay;     /* adagrad */
    double initial_accumulator; /* adagrad */
} nb_optim_opts;

typedef struct nb_optim nb_optim;

nb_optim_opts nb_optim_opts_default(nb_optim_kind kind);
const char *nb_optim_name(nb_optim_kind kind);        /* "sgd", "adam", ... */
nb_optim_kind nb_optim_from_name(const char *name);   /* NB_OPT_COUNT if unknown */
nb_optim *nb_optim_new(nb_ctx *ctx, const nb_optim_opts *opts);
void nb_optim_free(nb_ctx *ctx, nb_optim *opt);
/* A parameter group with its own learning rate and weight decay (negative:
 * the optimizer's). names (may be NULL) name the state tensors in
 * checkpoints: "<name>.exp_avg" and so on. Returns the group index, or -1. */
int nb_optim_add_group(nb_ctx *ctx, nb_optim *opt, int n, nb_tensor *const *params,
                       const char *const *names, double lr, double weight_decay);
/* The model's trainable parameters in one group (buffers skipped). With
 * no_decay_1d, a second group holds the 1-D ones (biases, norms) without
 * weight decay. */
nb_status nb_optim_add_module(nb_ctx *ctx, nb_optim *opt, nb_module *m, bool no_decay_1d);
/* One update of every parameter that has a gradient. */
nb_status nb_optim_step(nb_ctx *ctx, nb_optim *opt);
void nb_optim_zero_grad(nb_optim *opt);
int nb_optim_group_count(const nb_optim *opt);
double nb_optim_lr(const nb_optim *opt, int group);
void nb_optim_set_lr(nb_optim *opt, int group, double lr); /* group -1: all */
double nb_optim_base_lr(const nb_optim *opt, int group);  /* as added */
int64_t nb_optim_steps(const nb_optim *opt);              /* steps taken */
/* State for checkpoints: named persistent tensors (exp_avg, ...), and the
 * step counter. */
nb_status nb_optim_state(nb_ctx *ctx, nb_optim *opt, nb_param_list *out);
void nb_optim_set_steps(nb_optim *opt, int64_t steps);

/* Gradient clipping over a set of tensors (those without grad are skipped):
 * by global L2 norm (torch.nn.utils.clip_grad_norm_: scale by
 * max_norm / (norm + 1e-6) when below 1; returns the norm before clipping in
 * *norm) and by value (clamp to [-v, v]). */
nb_status nb_clip_grad_norm(nb_ctx *ctx, int n, nb_tensor *const *ts, double max_norm, double *norm);
nb_status nb_clip_grad_value(nb_ctx *ctx, int n, nb_tensor *const *ts, double value);

/* ------------------------------------------------------------------------ */
/* Learning-rate schedules (src/optim/sched.c). A schedule sets the lr of   */
/* every group of its optimizer to base_lr x factor(t) at each nb_sched_step */
/* (t counts calls: per epoch or per batch, as the caller decides).          */
/* ------------------------------------------------------------------------ */
typedef enum nb_sched_kind {
    NB_SCHED_CONSTANT = 0,
    NB_SCHED_STEP,          /* gamma^floor(t / step_size) */
    NB_SCHED_MULTISTEP,     /* gamma^(milestones passed) */
    NB_SCHED_EXPONENTIAL,   /* gamma^t */
    NB_SCHED_COSINE,        /* eta_min + (base - eta_min)(1 + cos(pi t / t_max)) / 2 */
    NB_SCHED_WARMUP_COSINE, /* linear from 0 over warmup, then cosine to eta_min at total */
    NB_SCHED_ONECYCLE,      /* torch.optim.lr_scheduler.OneCycleLR (cos), momentum not cycled */
    NB_SCHED_PLATEAU,       /* torch's ReduceLROnPlateau */
    NB_SCHED_COUNT
} nb_sched_kind;

typedef struct nb_sched_opts {
    nb_sched_kind kind;
    int64_t step_size;      /* step */
    double gamma;           /* step, multistep, exponential; default 0.1 (exponential 0.95) */
    int64_t milestones[16]; /* multistep, increasing */
    int n_milestones;
    int64_t t_max;          /* cosine */
    double eta_min;         /* cosine, warmup_cosine (absolute lr) */
    int64_t warmup;         /* warmup_cosine */
    int64_t total;          /* warmup_cosine, onecycle: steps in all */
    double max_lr;          /* onecycle (default: the group's base lr) */
    double pct_start;       /* onecycle: 0.3 */
    double div_factor;      /* onecycle: 25 */
    double final_div_factor;/* onecycle: 1e4 */
    bool mode_max;          /* plateau: the metric should grow (accuracy) */
    double factor;          /* plateau: 0.1 */
    int patience;           /* plateau: 10 */
    double threshold;       /* plateau: 1e-4, relative */
    bool threshold_abs;     /* plateau: absolute threshold instead */
    int cooldown;           /* plateau */
    double min_lr;          /* plateau */
} nb_sched_opts;

typedef struct nb_sched nb_sched;
nb_sched_opts nb_sched_opts_default(nb_sched_kind kind);
const char *nb_sched_name(nb_sched_kind kind);
nb_sched_kind nb_sched_from_name(const char *name);
/* Binds to opt and sets the lr for t = 0. */
nb_sched *nb_sched_new(nb_ctx *ctx, nb_optim *opt, const nb_sched_opts *opts);
void nb_sched_free(nb_ctx *ctx, nb_sched *s);
/* Advances t and sets the new lr; metric is read by plateau only. */
nb_status nb_sched_step(nb_ctx *ctx, nb_sched *s, double metric);
int64_t nb_sched_t(const nb_sched *s);
/* Schedule state for exact resume: t and the plateau bookkeeping. */
typedef struct nb_sched_state {
    int64_t t;
    double best;
    int64_t bad_epochs, cooldown_left;
    double scale; /* plateau's current factor */
} nb_sched_state;
nb_sched_state nb_sched_get_state(const nb_sched *s);
nb_status nb_sched_set_state(nb_ctx *ctx, nb_sched *s, const nb_sched_state *st);

/* ------------------------------------------------------------------------ */
/* Datasets and loading (src/data/loader.c).                                */
/* ------------------------------------------------------------------------ */
/* Normalisation of features, fitted on the training rows only. */
typedef enum nb_norm_kind {
    NB_NORM_NONE = 0, /* x as float */
    NB_NORM_GLOBAL,   /* (x - mean) / std, one mean and std over all features */
    NB_NORM_FEATURE,  /* per feature (column) */
    NB_NORM_RANGE,    /* (x - min) / (max - min) over all features: [0, 1] (mean = min, std = range) */
    NB_NORM_COUNT
} nb_norm_kind;

typedef struct nb_norm {
    nb_norm_kind kind;
    nb_tensor *mean, *std; /* persistent F32 [D] (global: [1]); NULL for NONE */
} nb_norm;

/* Fits on rows idx[0..n-1] of x ([N, ...], any numeric dtype; idx NULL: all
 * rows). std below 1e-8 is taken as 1 (a constant feature is only centred). */
nb_status nb_norm_fit(nb_ctx *ctx, const nb_tensor *x, const int64_t *idx, int64_t n,
                      nb_norm_kind kind, nb_norm *out);
void nb_norm_free(nb_ctx *ctx, nb_norm *n);

/* A seeded train/validation split of N rows: a permutation of 0..N-1 whose
 * first n_train rows train and the rest validate (n_val = round(N x
 * val_fraction)). Arrays from the allocator hook; free with
 * nb_split_free. */
typedef struct nb_split {
    int64_t *train, *val;
    int64_t n_train, n_val;
} nb_split;
nb_status nb_split_make(nb_ctx *ctx, int64_t n, double val_fraction, uint64_t seed, nb_split *out);
void nb_split_free(nb_ctx *ctx, nb_split *s);

typedef struct nb_loader_opts {
    int64_t batch_size;   /* default 64 */
    bool shuffle;         /* reshuffle every epoch (seeded by seed and epoch) */
    bool drop_last;       /* drop a last partial batch */
    bool prefetch;        /* prepare the next batch on a background thread */
    uint64_t seed;
    /* Augmentation of image rows ([N, H, W] or [N, C, H, W]), applied after
     * normalisation, each draw from a generator seeded by (seed, epoch,
     * row position): torchvision's RandomCrop(padding), RandomHorizontalFlip
     * and RandomErasing (scale 0.02-0.33, ratio 0.3-3.3, value 0). */
    int crop_pad;         /* > 0: pad by this with zeros, crop back at random */
    bool hflip;           /* mirror left-right with probability 1/2 */
    double erase_p;       /* erase a random rectangle with this probability */
    /* Token sequences: integer x rows (ids, any row shape) come out as I64
     * as they are (no normalisation or augmentation), and integer y rows of
     * any shape as I64 ([B, T] next-token targets for [B, T] contexts). */
    bool tokens;
} nb_loader_opts;

typedef struct nb_loader nb_loader;
nb_loader_opts nb_loader_opts_default(void);
/* Batches of rows idx[0..n-1] (idx NULL: all rows) of x ([N, ...]) and y
 * ([N] class ids of any integer dtype, or float [N, ...] targets; may be
 * NULL). Features come out as F32, normalised by norm (NULL: none); class ids
 * as I64. x, y and norm must outlive the loader; idx is copied. */
nb_loader *nb_loader_new(nb_ctx *ctx, const nb_tensor *x, const nb_tensor *y, const int64_t *idx,
                         int64_t n, const nb_norm *norm, const nb_loader_opts *opts);
void nb_loader_free(nb_ctx *ctx, nb_loader *l);
/* Starts epoch e (0-based): the order is a function of (seed, e) alone. */
nb_status nb_loader_start(nb_ctx *ctx, nb_loader *l, int64_t epoch);
/* The next batch as step tensors (valid until the next call or arena
 * reset); *x = NULL at the end of the epoch. */
nb_status nb_loader_next(nb_ctx *ctx, nb_loader *l, nb_tensor **x, nb_tensor **y);
int64_t nb_loader_batches(const nb_loader *l); /* per epoch */
int64_t nb_loader_rows(const nb_loader *l);
/* Skips to batch b of the current epoch (for resuming mid-epoch). */
nb_status nb_loader_seek(nb_ctx *ctx, nb_loader *l, int64_t b);

/* ------------------------------------------------------------------------ */
/* Diagnostics (src/diag): alarms, and sample diversity for generative     */
/* models.                                                                  */
/* ------------------------------------------------------------------------ */
typedef enum nb_alarm_kind {
    NB_ALARM_NONFINITE = 0, /* "nonfinite": NaN or Inf in a loss, activation or gradient */
    NB_ALARM_VANISHING,     /* "vanishing": a layer's gradient norm far below the output layer's */
    NB_ALARM_EXPLODING,     /* "exploding": gradient norm over a bound or growing fast */
    NB_ALARM_LOSS_SPIKE,    /* "loss_spike": rolling z-score of the loss */
    NB_ALARM_MODE_COLLAPSE, /* "mode_collapse": a generator's samples lost their diversity */
    NB_ALARM_COUNT
} nb_alarm_kind;

typedef enum nb_alarm_action {
    NB_ACTION_WARN = 0, /* "warn": record and go on */
    NB_ACTION_SKIP,     /* "skip": record and skip this step's update */
    NB_ACTION_STOP,     /* "stop": record, save and stop */
    NB_ACTION_COUNT
} nb_alarm_action;

typedef struct nb_alarm {
    nb_alarm_kind kind;
    nb_alarm_action action;
    int epoch;          /* 1-based; 0 when not known */
    int64_t step;
    char where[96];     /* the parameter, layer or op it concerns; "" for the whole model */
    double value, threshold;
    char message[256];
} nb_alarm;

typedef struct nb_alarms nb_alarms;
/* An alarm log. csv_path (may be NULL): each alarm is appended as a row
 * epoch,step,kind,where,value,threshold,action,message (header written when
 * the file is created, flushed per row). echo: also one line on stderr. Every
 * kind's action starts as NB_ACTION_WARN. */
nb_alarms *nb_alarms_new(nb_ctx *ctx, const char *csv_path, bool echo);
void nb_alarms_free(nb_ctx *ctx, nb_alarms *a);
void nb_alarms_set_action(nb_alarms *a, nb_alarm_kind kind, nb_alarm_action action);
nb_alarm_action nb_alarms_action(const nb_alarms *a, nb_alarm_kind kind);
/* Called on every alarm raised (after it is recorded). */
void nb_alarms_on_raise(nb_alarms *a, void (*fn)(const nb_alarm *alarm, void *user), void *user);
/* Records an alarm with its kind's action; returns that action (so the caller
 * can skip or stop). The message is printf-formatted. A NULL log records
 * nothing and returns NB_ACTION_WARN. */
nb_alarm_action nb_alarm_raise(nb_ctx *ctx, nb_alarms *a, nb_alarm_kind kind, int epoch,
                               int64_t step, const char *where, double value, double threshold,
                               const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 9, 10)))
#endif
    ;
int nb_alarms_count(const nb_alarms *a, int kind); /* kind -1: all kinds */
const nb_alarm *nb_alarms_get(const nb_alarms *a, int i); /* in order raised; NULL out of range */
const char *nb_alarm_kind_name(nb_alarm_kind kind);
nb_alarm_kind nb_alarm_kind_from_name(const char *name);       /* NB_ALARM_COUNT if unknown */
const char *nb_alarm_action_name(nb_alarm_action action);
nb_alarm_action nb_alarm_action_from_name(const char *name);   /* NB_ACTION_COUNT if unknown */

/* Diversity of a batch of samples x [N, ...] (N >= 2, float): the entropy of
 * the histogram of a fixed classifier's predicted classes (argmax of its
 * logits [N, C]; classifier NULL: entropy fields NAN), and the mean Euclidean
 * distance between all pairs of distinct rows (rows flattened). The
 * classifier runs in evaluation mode without recording; its mode is
 * restored. Real data's diversity is the reference for a generator's. */
typedef struct nb_diversity {
    double entropy;      /* nats */
    double entropy_max;  /* ln C */
    int classes_seen;    /* distinct predicted classes */
    double pairwise;     /* mean pairwise L2 distance */
    int64_t n;           /* samples measured */
} nb_diversity;
nb_status nb_diversity_measure(nb_ctx *ctx, nb_module *classifier, nb_tensor *x,
                               nb_diversity *out);

/* Mode-collapse detector: a measurement is collapsed when its entropy is
 * below min_entropy_ratio x the reference's or its pairwise distance below
 * min_distance_ratio x the reference's; after `patience` collapsed checks in a
 * row it raises NB_ALARM_MODE_COLLAPSE (where = "generator") once per streak. */
typedef struct nb_collapse_opts {
    double min_entropy_ratio;  /* default 0.5 */
    double min_distance_ratio; /* default 0.5 */
    int patience;              /* default 1 */
} nb_collapse_opts;
nb_collapse_opts nb_collapse_opts_default(void);
typedef struct nb_collapse nb_collapse;
nb_collapse *nb_collapse_new(nb_ctx *ctx, const nb_diversity *reference, const nb_collapse_opts *o);
void nb_collapse_free(nb_ctx *ctx, nb_collapse *d);
/* Checks one measurement; *collapsed (may be NULL) says whether it looked
 * collapsed, *alarmed (may be NULL) whether this check raised the alarm on
 * `alarms` (may be NULL). */
nb_status nb_collapse_check(nb_ctx *ctx, nb_collapse *d, const nb_diversity *now, int epoch,
                            int64_t step, nb_alarms *alarms, bool *collapsed, bool *alarmed);

/* ------------------------------------------------------------------------ */
/* Byte-level text (src/data/text.c): tokens are bytes, ids 0..255.         */
/* ------------------------------------------------------------------------ */
/* A file's bytes as a persistent U8 tensor [len] (2 <= len <= 2^31). A
 * directory: its regular files (links and dot files skipped), in name order,
 * concatenated (/usr/share/common-licenses: 236 KB of English prose). */
nb_tensor *nb_text_read(nb_ctx *ctx, const char *path);
/* Entropy of the byte frequencies of tokens[begin, end), nats per byte: the
 * loss of the best model that ignores context (NAN on bad arguments). */
double nb_unigram_entropy(const nb_tensor *tokens, int64_t begin, int64_t end);
/* Batches of (context, next-token) windows over tokens[begin, end): x [B, T]
 * I64 ids and y [B, T] the ids one position later. random: each window starts
 * uniformly at random (seeded by (seed, batch index)); else row b is stream b
 * of B evenly spaced streams, advancing T each batch (and wrapping after
 * nb_text_loader_batches), so a recurrent state can be carried across
 * batches. tokens must outlive the loader. */
typedef struct nb_text_loader nb_text_loader;
nb_text_loader *nb_text_loader_new(nb_ctx *ctx, const nb_tensor *tokens, int64_t begin, int64_t end,
                                   int64_t context, int64_t batch, bool random, uint64_t seed);
void nb_text_loader_free(nb_ctx *ctx, nb_text_loader *l);
/* An epoch: the windows that cover the span about once. */
int64_t nb_text_loader_batches(const nb_text_loader *l);
void nb_text_loader_seek(nb_text_loader *l, int64_t batch);
nb_status nb_text_loader_next(nb_ctx *ctx, nb_text_loader *l, nb_tensor **x, nb_tensor **y);
/* One id drawn from the last row of logits [..., V] / temperature (> 0),
 * among the top_k largest (0: all), by the context's generator; -1 on error. */
int64_t nb_sample_token(nb_ctx *ctx, const nb_tensor *logits, double temperature, int top_k);

/* ------------------------------------------------------------------------ */
/* Training (src/train).                                                    */
/* ------------------------------------------------------------------------ */
typedef enum nb_loss_kind {
    NB_LOSS_CROSS_ENTROPY = 0, /* logits [B, C], class ids [B] */
    NB_LOSS_MSE,               /* predictions and targets of one shape */
    NB_LOSS_BCE,               /* logits and 0/1 targets of one shape */
    NB_LOSS_BCE_SUM,           /* BCE summed over each row, mean over rows: nats per sample (VAE) */
    NB_LOSS_COUNT
} nb_loss_kind;

typedef struct nb_epoch_info {
    int epoch;          /* 1-based */
    int epochs;
    double train_loss, train_acc;
    double val_loss, val_acc, val_topk; /* NAN without validation rows */
    double lr, seconds, samples_per_s;
    bool improved;      /* best monitored value so far */
} nb_epoch_info;

typedef struct nb_step_info {
    int epoch, epochs;   /* 1-based */
    int64_t batch, batches; /* batch is 1-based within the epoch */
    int64_t step;        /* optimizer steps so far */
    double loss, lr, seconds, samples_per_s;
} nb_step_info;

/* Diagnostics during training (src/diag/watch.c), written to the run folder
 * when out_dir is set:
 *   steps.csv   step,epoch,loss,lr,grad_norm            every optimizer step
 *   params.csv  step,epoch,name,grad_norm,weight_norm,update_ratio     every `every` steps,
 *               one row per trainable parameter (update_ratio = |w_new - w_old| / |w_old|)
 *   acts.csv    step,epoch,layer,kind,mean,std,dead_frac,sat_frac       every `every` steps,
 *               one row per layer output inside a sequential (dead_frac: ReLU units zero
 *               for the whole batch; sat_frac: sigmoid outputs < 0.01 or > 0.99, tanh |y| > 0.99)
 *   hist.csv    step,epoch,name,what,lo,hi,counts       every `hist_every` steps; what is
 *               weight or grad; counts: hist_bins integers separated by spaces, equal bins over [lo, hi]
 *   alarms.csv  the alarm log (nb_alarms_new)
 * Alarms (each with its action; NB_ACTION_SKIP skips the optimizer step,
 * NB_ACTION_STOP saves last.safetensors and ends training, nb_train returning
 * NB_ERR_NUMERIC for a non-finite value and NB_OK otherwise):
 *   nonfinite   NaN/Inf in the loss or the gradients (checked every step); with
 *               trace_nonfinite the alarm names the first op (forward or backward)
 *               that produced one, and its layer
 *   vanishing   a weight's gradient norm below vanish_ratio x the last weight's
 *               (the output layer) for vanish_patience statistics checks in a row
 *   exploding   the total gradient norm above explode_norm, or above explode_growth
 *               x its median over the last spike_window steps
 *   loss_spike  the loss more than spike_z standard deviations above the mean of
 *               the last spike_window steps */
typedef struct nb_diag_opts {
    bool off;               /* no checks, files or alarms (a non-finite loss still stops
                               training with NB_ERR_NUMERIC); default false */
    int64_t every;          /* per-layer statistics (and vanishing checks) every N steps; 0 off */
    int64_t hist_every;     /* histograms every N steps; 0 off */
    int hist_bins;          /* default 30 */
    double vanish_ratio;    /* default 1e-4 */
    int vanish_patience;    /* default 3 */
    double explode_norm;    /* default 1e4 */
    double explode_growth;  /* default 100 */
    double spike_z;         /* default 8; 0 off */
    int spike_window;       /* default 100 */
    nb_alarm_action action[NB_ALARM_COUNT]; /* default warn, nonfinite stop */
    bool trace_nonfinite;   /* default true */
    bool echo;              /* alarms also on stderr; default true */
} nb_diag_opts;
nb_diag_opts nb_diag_opts_default(void);

typedef struct nb_train_opts {
    int epochs;                 /* default 10 */
    nb_loss_kind loss;
    int accum_steps;            /* micro-batches per optimizer step; default 1 */
    double clip_norm;           /* > 0: clip gradients to this global norm */
    double clip_value;          /* > 0: clamp gradients */
    bool sched_per_batch;       /* step the schedule after every optimizer step
                                   instead of every epoch (onecycle, warmup) */
    int patience;               /* early stopping: epochs without improvement; 0 off */
    double min_delta;           /* improvement needed */
    bool monitor_acc;           /* monitor validation accuracy (else loss) */
    bool restore_best;          /* end with the best epoch's weights */
    int top_k;                  /* also report top-k accuracy when > 1 */
    int64_t eval_batch;         /* batch size for evaluation; default 256 */
    const char *out_dir;        /* run folder: log.csv, best/last.safetensors; NULL: none */
    const char *config_text;    /* stored in checkpoints' metadata */
    const char *resume;         /* checkpoint to continue from; NULL: start fresh */
    nb_diag_opts diag;          /* statistics, histograms and alarms */
    nb_alarms *alarms;          /* where alarms go, with its own actions (diag.action is then
                                   unused); NULL: nb_train makes one (out_dir/alarms.csv) */
    void (*on_step)(const nb_step_info *info, void *user);
    void (*on_epoch)(const nb_epoch_info *info, void *user);
    void *user;
} nb_train_opts;

typedef struct nb_train_result {
    int epochs_run;             /* the last epoch trained (1-based) */
    int best_epoch;
    bool stopped_early;
    double train_loss, val_loss, val_acc, best_metric;
    double samples_per_s;       /* training samples per second, all epochs */
    bool stopped_by_alarm;      /* an alarm with NB_ACTION_STOP ended training */
    int64_t skipped_steps;      /* optimizer steps skipped by alarms */
    int alarms;                 /* alarms raised */
} nb_train_result;

nb_train_opts nb_train_opts_default(void);
/* The loss nb_train minimises for one batch: kind's loss of the output
 * against y (x when y is NULL: an autoencoder; float targets reshaped to the
 * output when only the spelling of the shape differs) plus the terms layers
 * added with nb_add_loss during the forward. Cross-entropy of a sequence's
 * logits [B, T, C] against ids [B, T] is the mean over all B x T positions
 * (and accuracies count every position). */
nb_tensor *nb_batch_loss(nb_ctx *ctx, nb_loss_kind kind, nb_tensor *out, nb_tensor *x, nb_tensor *y);
/* Trains model with opt (and sched, may be NULL) on the train loader,
 * evaluating on val (may be NULL) after each epoch; norm is saved in the
 * checkpoints so evaluation can apply it. A loader without targets (y NULL)
 * makes an autoencoder: each batch's target is its input, reshaped to the
 * output (loss mse, bce or bce_sum). Loss terms that layers add with
 * nb_add_loss (a VAE's KL) are part of the loss minimised and reported. */
nb_status nb_train(nb_ctx *ctx, nb_module *model, nb_optim *opt, nb_sched *sched,
                   nb_loader *train, nb_loader *val, const nb_norm *norm,
                   const nb_train_opts *opts, nb_train_result *res);

typedef struct nb_eval_result {
    double loss, acc, topk; /* acc and topk NAN unless the loss is cross-entropy */
    int64_t rows;
} nb_eval_result;
/* Mean loss and accuracy over one pass of the loader, in evaluation mode
 * without recording. */
nb_status nb_evaluate(nb_ctx *ctx, nb_module *model, nb_loader *data, nb_loss_kind loss,
                      int top_k, nb_eval_result *res);

/* Checkpoints: the model's parameters and buffers under their names, the
 * optimizer's state under "optim.<name>.<state>", the normalisation under
 * "norm.mean"/"norm.std", and metadata (format, epoch, step, generator and
 * schedule state, best metric, config). Written atomically. */
typedef struct nb_ckpt_info {
    int64_t epoch, step;   /* completed */
    double best_metric;
    int best_epoch, bad_epochs;
} nb_ckpt_info;
nb_status nb_checkpoint_save(nb_ctx *ctx, const char *path, nb_module *model, nb_optim *opt,
                             nb_sched *sched, const nb_norm *norm, const nb_ckpt_info *info,
                             const char *config_text);
/* Loads what the file has for each given object (opt, sched, norm, info may
 * be NULL). Every model tensor must be present with its shape, unless
 * `partial`: then tensors absent or of another shape are skipped and listed
 * in *skipped (a heap string, free with nb_free_string; may be NULL). */
nb_status nb_checkpoint_load(nb_ctx *ctx, const char *path, nb_module *model, nb_optim *opt,
                             nb_sched *sched, nb_norm *norm, nb_ckpt_info *info, bool partial,
                             char **skipped);
void nb_free_string(nb_ctx *ctx, char *s);

/* The reproducibility manifest (src/train/manifest.c): a JSON object with
 * nabla's version, the compiler and build flags, the BLAS library (its
 * config string) and thread count, nabla's thread count, the seed, the host
 * name and OS, the time, and the config text. nb_train writes it to
 * out_dir/manifest.json and puts it in every checkpoint's metadata
 * ("manifest"). A heap string; free with nb_free_string. */
char *nb_manifest_json(nb_ctx *ctx, uint64_t seed, const char *config_text);

/* ------------------------------------------------------------------------ */
/* Images (src/io/png.c): PNG grids of samples, written with zlib.          */
/* ------------------------------------------------------------------------ */
/* Writes x ([N, H, W] or [N, 1, H, W]: gray; [N, 3, H, W]: RGB; F32 or F64,
 * any strides) as one 8-bit PNG: a grid of `cols` columns (<= 0:
 * ceil(sqrt(N)); at most N) with 1 pixel of black between and around the
 * images; values lo..hi map to 0..255 (rounded, clamped, NaN to 0). Written
 * atomically. Errors: NB_ERR_SHAPE (layout), NB_ERR_DTYPE, NB_ERR_ARG (empty,
 * bounds, too large), NB_ERR_IO. */
nb_status nb_save_image_grid(nb_ctx *ctx, const char *path, const nb_tensor *x, int cols,
                             double lo, double hi);


#ifdef __cplusplus
}
#endif
#endif /* NABLA_H */
