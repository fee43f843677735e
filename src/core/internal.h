/* Private declarations shared by the library's layers. Not installed. */
#ifndef NB_INTERNAL_H
#define NB_INTERNAL_H

#include "nabla.h"

#include <stdarg.h>
#include <string.h>

#if defined(__GNUC__)
#define NB__PRINTF(a, b) __attribute__((format(printf, a, b)))
#define NB__UNUSED __attribute__((unused))
#else
#define NB__PRINTF(a, b)
#define NB__UNUSED
#endif

#define NB__ALIGN 64

/* ---- ops: the one list ------------------------------------------------- */
typedef enum nb__op_id {
#define NB_OP(ID, name) NB__OP_##ID,
#include "ops/ops.def"
#undef NB_OP
    NB__OP_COUNT
} nb__op_id;

/* Attributes an op keeps for its backward. */
typedef struct nb__attrs {
    double f[4];
    int64_t i[4];
    int axes[NB_MAX_DIMS]; /* normalised, sorted */
    int naxes;
    int flag;
    int write; /* backward kernels: store (=) instead of accumulate (+=) */
} nb__attrs;

#define NB__NODE_INLINE_IN 3

typedef struct nb__node {
    struct nb__node *prev; /* tape order: newest first when walked by prev */
    nb__op_id op;
    int n_in;
    nb_tensor **in;        /* n_in inputs (points at in_inline or arena) */
    nb_tensor *in_inline[NB__NODE_INLINE_IN];
    nb_tensor *out;
    nb_tensor *saved[2];   /* values kept for backward (arena) */
    nb__attrs a;
    const struct nb_module *mod; /* the layer running when it was made (ctx->cur_module) */
} nb__node;

/* Backward: read out->grad, accumulate into the grads of inputs that require
 * grad. May take scratch from the arena; returns a status. */
typedef nb_status (*nb__backward_fn)(nb_ctx *ctx, nb__node *node);

typedef struct nb__op_info {
    const char *name;
    nb__backward_fn backward; /* NULL: not differentiable */
} nb__op_info;

extern const nb__op_info nb__ops[NB__OP_COUNT];
const char *nb__op_name(int op); /* for tests: NULL when out of range */
int nb__op_count(void);

/* ---- context ----------------------------------------------------------- */
typedef struct nb__chunk {
    struct nb__chunk *next;
    size_t size; /* usable bytes in data */
    size_t used;
    unsigned char *data;
} nb__chunk;

struct nb_ctx {
    nb_allocator al;
    /* arena: a list of chunks; `cur` is the chunk being filled */
    nb__chunk *chunks;
    nb__chunk *cur;
    size_t arena_cap;   /* sum of chunk sizes */
    size_t arena_max;
    size_t arena_initial;
    nb_status arena_fail; /* why the last arena allocation failed */
    /* tape */
    nb__node *tape;     /* newest node */
    size_t tape_len;
    /* persistent tensors */
    nb_tensor *persist;
    nb_rng rng;
    uint64_t seed;         /* the seed the context was made with (manifests) */
    nb_tensor *added_loss; /* nb_add_loss's pending sum (a step tensor) */
    /* the innermost child a sequential is running, for diagnostics: nodes
     * record it, and observe (when set) sees each child's output */
    const struct nb_module *cur_module;
    void (*observe)(nb_ctx *ctx, const struct nb_module *m, const nb_tensor *y, void *user);
    void *observe_user;
    int nthreads;
    bool grad_enabled;
    nb_status err;
    char msg[512];
};

/* ---- errors ------------------------------------------------------------ */
/* Records the first error: "<what>: <message>". Returns the status. */
nb_status nb__err(nb_ctx *ctx, nb_status s, const char *fmt, ...) NB__PRINTF(3, 4);
/* NULL check for op inputs: records NB_ERR_NULL only when no error is
 * pending (so chained expressions keep the first cause). The inline test
 * keeps the common path (nothing NULL) to a compare per input. */
bool nb__null_in_slow(nb_ctx *ctx, const char *op, int n, const void *const *p);
static inline bool nb__null_arr(nb_ctx *ctx, const char *op, int n, const void *const *p)
{
    for (int i = 0; i < n; i++)
        if (!p[i])
            return nb__null_in_slow(ctx, op, n, p);
    return false;
}
#define nb__null_in(ctx, op, n, ...)                                                   \
    nb__null_arr(ctx, op, (int)(sizeof((const void *[]){__VA_ARGS__}) / sizeof(void *)), \
                 (const void *const[]){__VA_ARGS__})
#define NB__SHAPE_BUF 96
char *nb__shape_fmt(int ndim, const int64_t *shape, char *buf, size_t cap);

/* ---- memory ------------------------------------------------------------ */
void *nb__heap_alloc(nb_ctx *ctx, size_t size);
void nb__heap_free(nb_ctx *ctx, void *p);
void *nb__arena_alloc(nb_ctx *ctx, size_t size); /* no error recorded; see arena_fail */
/* conv2d keeps a batch's columns (or Winograd's V) for backward up to this
 * many bytes, else rebuilds them (src/ops/conv.c; tests lower it) */
extern size_t nb__conv_keep_bytes;
/* Records the error of a failed arena allocation for `what`; returns it. */
nb_status nb__arena_err(nb_ctx *ctx, const char *what, size_t bytes);
/* Step tensor with row-major strides, data uninitialised; records error. */
nb_tensor *nb__new_step(nb_ctx *ctx, nb_dtype dt, int ndim, const int64_t *shape);
/* A view header copying `src`'s dtype/data (arena), shape and strides set by caller. */
nb_tensor *nb__new_view(nb_ctx *ctx, const nb_tensor *src);
static inline void nb__contig_strides(int ndim, const int64_t *shape, int64_t *strides)
{
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        s *= shape[i] > 0 ? shape[i] : 1;
    }
}
bool nb__shape_ok(nb_ctx *ctx, const char *op, int ndim, const int64_t *shape);

/* ---- autodiff ---------------------------------------------------------- */
/* True when an op with these inputs must be recorded. */
bool nb__needs_grad(const nb_ctx *ctx, int n, nb_tensor *const *in);
/* Records `out` as produced by op from inputs. Returns the node (arena) or
 * NULL with an error. Sets NB_REQUIRES_GRAD on out. */
nb__node *nb__record(nb_ctx *ctx, nb__op_id op, nb_tensor *out, int n, nb_tensor *const *in);
/* The gradient buffer of t (created zeroed on first use), in *g; *g = NULL
 * when t needs no gradient. */
nb_status nb__grad_of(nb_ctx *ctx, nb_tensor *t, nb_tensor **g);
/* The same, except that a step tensor's buffer made here is not zeroed and
 * *fresh says so: the caller must then store every element of it once (=)
 * rather than accumulate. Saves a memset and a read per element on the common
 * path where an intermediate result has a single consumer. */
nb_status nb__grad_of_w(nb_ctx *ctx, nb_tensor *t, nb_tensor **g, bool *fresh);
/* g += alpha * src over the broadcast of their shapes: summed over the dims
 * where g is broadcast, repeated over those where src is. One float dtype. */
nb_status nb__acc_grad(nb_ctx *ctx, nb_tensor *g, const nb_tensor *src, double alpha);
/* With write (g fresh from nb__grad_of_w and of src's shape): g = alpha src. */
nb_status nb__acc_grad_w(nb_ctx *ctx, nb_tensor *g, const nb_tensor *src, double alpha, bool write);

/* ---- helpers ----------------------------------------------------------- */
/* Index of name in names[0..n-1], or n when absent (or name is NULL). */
static inline int nb__name_index(const char *const *names, int n, const char *name)
{
    for (int i = 0; name && i < n; i++)
        if (names[i] && strcmp(names[i], name) == 0)
            return i;
    return n;
}
static inline size_t nb__esize(nb_dtype dt)
{
    return (dt == NB_F64 || dt == NB_I64) ? 8 : (dt == NB_U8) ? 1 : (dt == NB_F16 || dt == NB_BF16) ? 2 : 4;
}
bool nb__is_float(nb_dtype dt);
bool nb__is_int(nb_dtype dt);
/* Normalise an axis (negative from the end) for ndim dims; -1 if invalid. */
int nb__axis(int axis, int ndim);
/* NumPy broadcast of two shapes into out (ndim returned, -1 if they clash). */
int nb__broadcast_shape(int na, const int64_t *sa, int nb, const int64_t *sb, int64_t *out);
/* Strides (in elements) of t viewed as broadcast to shape[ndim]. */
void nb__bcast_strides(const nb_tensor *t, int ndim, const int64_t *shape, int64_t *strides);
static inline int64_t nb__prod(int n, const int64_t *v)
{
    int64_t p = 1;
    for (int i = 0; i < n; i++)
        p *= v[i];
    return p;
}
static inline int64_t nb__numel(const nb_tensor *t) { return nb__prod(t->ndim, t->shape); }
/* Copy src (any strides) into dst (any strides) of the same shape and dtype. */
void nb__copy_strided(nb_ctx *ctx, nb_tensor *dst, const nb_tensor *src);
/* Flat element pointer of the i-th element in row-major logical order. */
void *nb__elem_ptr(const nb_tensor *t, int64_t flat);
/* Read element as double / write (any dtype). */
double nb__load(nb_dtype dt, const void *p);
void nb__store(nb_dtype dt, void *p, double v);

#endif
