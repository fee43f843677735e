/* The step arena: a bump allocator over a list of chunks.
 *
 * Why chunks and a merge: the first step does not know how much memory it
 * needs, so the arena grows by chunks (each at least as large as all before
 * it, up to arena_max). At reset, if the step spilled past the first chunk,
 * the chunks are replaced by one chunk of their total size, so from the second
 * step on a step that needs no more than the one before allocates nothing. */
#include "internal.h"

static size_t round_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }

static nb__chunk *chunk_new(nb_ctx *ctx, size_t size)
{
    size_t head = round_up(sizeof(nb__chunk), NB__ALIGN);
    if (size > SIZE_MAX - head)
        return NULL;
    unsigned char *mem = nb__heap_alloc(ctx, head + size);
    if (!mem)
        return NULL;
    nb__chunk *c = (nb__chunk *)mem;
    c->next = NULL;
    c->size = size;
    c->used = 0;
    c->data = mem + head;
    return c;
}

void nb__arena_free_all(nb_ctx *ctx)
{
    nb__chunk *c = ctx->chunks;
    while (c) {
        nb__chunk *n = c->next;
        nb__heap_free(ctx, c);
        c = n;
    }
    ctx->chunks = ctx->cur = NULL;
    ctx->arena_cap = 0;
    ctx->tape = NULL;
    ctx->tape_len = 0;
    ctx->added_loss = NULL;
}

void *nb__arena_alloc(nb_ctx *ctx, size_t size)
{
    ctx->arena_fail = NB_ERR_ARENA_FULL;
    if (size > ctx->arena_max)
        return NULL;
    size = round_up(size ? size : 1, NB__ALIGN);
    nb__chunk *c = ctx->cur;
    if (c && c->size - c->used >= size) {
        void *p = c->data + c->used;
        c->used += size;
        return p;
    }
    /* move on to a spare chunk after cur that fits */
    nb__chunk *prev = c;
    nb__chunk *n = c ? c->next : ctx->chunks;
    while (n && n->size < size) {
        prev = n;
        n = n->next;
    }
    if (!n) {
        size_t want = ctx->arena_cap > ctx->arena_initial ? ctx->arena_cap : ctx->arena_initial;
        if (want < size)
            want = size;
        if (ctx->arena_cap + want > ctx->arena_max)
            want = ctx->arena_max > ctx->arena_cap ? ctx->arena_max - ctx->arena_cap : 0;
        want = want & ~(size_t)(NB__ALIGN - 1);
        if (want < size)
            return NULL;
        n = chunk_new(ctx, want);
        if (!n) {
            ctx->arena_fail = NB_ERR_NOMEM;
            return NULL;
        }
        ctx->arena_cap += want;
        /* append at the end of the list */
        if (!ctx->chunks) {
            ctx->chunks = n;
        } else {
            nb__chunk *t = prev ? prev : ctx->chunks;
            while (t->next)
                t = t->next;
            t->next = n;
        }
    }
    /* chunks skipped between cur and n stay unused until the next reset */
    n->used = size;
    ctx->cur = n;
    return n->data;
}

void *nb_arena_alloc(nb_ctx *ctx, size_t bytes)
{
    if (!ctx)
        return NULL;
    void *p = nb__arena_alloc(ctx, bytes);
    if (!p)
        nb__arena_err(ctx, "arena_alloc", bytes);
    return p;
}

nb_status nb__arena_err(nb_ctx *ctx, const char *what, size_t bytes)
{
    if (ctx->arena_fail == NB_ERR_NOMEM)
        return nb__err(ctx, NB_ERR_NOMEM, "%s: allocator failed to grow the arena for %zu bytes",
                       what, bytes);
    return nb__err(ctx, NB_ERR_ARENA_FULL,
                   "%s: arena full: %zu more bytes needed, %zu of at most %zu held", what, bytes,
                   ctx->arena_cap, ctx->arena_max);
}

static size_t arena_used_total(const nb_ctx *ctx)
{
    size_t u = 0;
    for (const nb__chunk *c = ctx->chunks; c; c = c->next)
        u += c->used;
    return u;
}

void nb_arena_reset(nb_ctx *ctx)
{
    if (!ctx)
        return;
    ctx->tape = NULL;
    ctx->tape_len = 0;
    ctx->added_loss = NULL;
    if (ctx->chunks && ctx->chunks->next) {
        /* the step spilled: merge into one chunk of the total size */
        size_t total = ctx->arena_cap;
        nb__arena_free_all(ctx);
        nb__chunk *c = chunk_new(ctx, total);
        if (c) {
            ctx->chunks = c;
            ctx->arena_cap = total;
        }
        /* on failure the arena starts empty and grows again when used */
    }
    for (nb__chunk *c = ctx->chunks; c; c = c->next)
        c->used = 0;
    ctx->cur = ctx->chunks;
}

nb_arena_mark nb_arena_mark_get(const nb_ctx *ctx)
{
    nb_arena_mark m = {0};
    if (!ctx)
        return m;
    m.chunk_ = ctx->cur;
    m.used_ = ctx->cur ? ctx->cur->used : 0;
    m.tape_len_ = ctx->tape_len;
    return m;
}

void nb_arena_rewind(nb_ctx *ctx, nb_arena_mark m)
{
    if (!ctx)
        return;
    ctx->added_loss = NULL; /* may live above the mark */
    while (ctx->tape && ctx->tape_len > m.tape_len_) {
        ctx->tape = ctx->tape->prev;
        ctx->tape_len--;
    }
    nb__chunk *c = m.chunk_;
    if (!c) {
        for (nb__chunk *k = ctx->chunks; k; k = k->next)
            k->used = 0;
        ctx->cur = ctx->chunks;
        return;
    }
    c->used = m.used_;
    for (nb__chunk *k = c->next; k; k = k->next)
        k->used = 0;
    ctx->cur = c;
}

size_t nb_arena_used(const nb_ctx *ctx) { return ctx ? arena_used_total(ctx) : 0; }
size_t nb_arena_capacity(const nb_ctx *ctx) { return ctx ? ctx->arena_cap : 0; }
