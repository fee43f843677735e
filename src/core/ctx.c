/* The context: allocator hook, threads, grad mode, lifetime of everything. */
#include "internal.h"

#include <stdlib.h>
#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static void *default_alloc(size_t size, size_t align, void *user)
{
    (void)user;
    void *p = NULL;
    if (align < sizeof(void *))
        align = sizeof(void *);
    if (posix_memalign(&p, align, size ? size : 1) != 0)
        return NULL;
    return p;
}

static void default_free(void *p, void *user)
{
    (void)user;
    free(p);
}

nb_ctx_opts nb_ctx_opts_default(void)
{
    nb_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.arena_initial_bytes = (size_t)1 << 20;
    o.arena_max_bytes = (size_t)4 << 30;
    return o;
}

static int default_threads(void)
{
    const char *s = getenv("NABLA_NUM_THREADS");
    if (s && *s) {
        char *end = NULL;
        long v = strtol(s, &end, 10);
        if (end && *end == '\0' && v > 0 && v <= 1024)
            return (int)v;
    }
#ifdef _OPENMP
    return omp_get_num_procs();
#else
    return 1;
#endif
}

nb_ctx *nb_ctx_new(const nb_ctx_opts *opts)
{
    nb_ctx_opts o = opts ? *opts : nb_ctx_opts_default();
    nb_allocator al = o.allocator;
    if (!al.alloc || !al.free) {
        al.alloc = default_alloc;
        al.free = default_free;
        al.user = NULL;
    }
    nb_ctx *ctx = al.alloc(sizeof *ctx, NB__ALIGN, al.user);
    if (!ctx)
        return NULL;
    memset(ctx, 0, sizeof *ctx);
    ctx->al = al;
    ctx->arena_initial = o.arena_initial_bytes ? o.arena_initial_bytes : ((size_t)1 << 20);
    ctx->arena_max = o.arena_max_bytes ? o.arena_max_bytes : ((size_t)4 << 30);
    if (ctx->arena_initial > ctx->arena_max)
        ctx->arena_initial = ctx->arena_max;
    ctx->grad_enabled = true;
    nb_rng_seed(&ctx->rng, o.seed, 0);
    ctx->seed = o.seed;
    nb_set_num_threads(ctx, o.num_threads);
    return ctx;
}

void nb__arena_free_all(nb_ctx *ctx);

void nb_ctx_free(nb_ctx *ctx)
{
    if (!ctx)
        return;
    while (ctx->persist)
        nb_tensor_free(ctx, ctx->persist);
    nb__arena_free_all(ctx);
    nb_allocator al = ctx->al;
    al.free(ctx, al.user);
}

void *nb__heap_alloc(nb_ctx *ctx, size_t size)
{
    return ctx->al.alloc(size, NB__ALIGN, ctx->al.user);
}

void nb__heap_free(nb_ctx *ctx, void *p)
{
    if (p)
        ctx->al.free(p, ctx->al.user);
}

void nb_set_num_threads(nb_ctx *ctx, int n)
{
    if (!ctx)
        return;
    ctx->nthreads = n > 0 ? n : default_threads();
    /* nabla splits GEMMs over its own threads and runs OpenBLAS inside them
     * single-threaded (why: src/kernels/gemm.h). */
    openblas_set_num_threads(1);
}

int nb_get_num_threads(const nb_ctx *ctx) { return ctx ? ctx->nthreads : 0; }

bool nb_set_grad_enabled(nb_ctx *ctx, bool enabled)
{
    if (!ctx)
        return false;
    bool old = ctx->grad_enabled;
    ctx->grad_enabled = enabled;
    return old;
}

bool nb_grad_enabled(const nb_ctx *ctx) { return ctx && ctx->grad_enabled; }

nb_rng *nb_ctx_rng(nb_ctx *ctx) { return ctx ? &ctx->rng : NULL; }
