/* Modules: a tree of layers owning persistent tensors, with dotted names. */
#include "nn/nn.h"

#include <stdio.h>

nb_module *nb__module_new(nb_ctx *ctx, const char *kind, const char *name, nb__mod_fwd fwd)
{
    if (!ctx)
        return NULL;
    if (name && (!*name || strchr(name, '.') || strlen(name) > 63)) {
        nb__err(ctx, NB_ERR_ARG, "%s: module name \"%s\" must be 1-63 characters without '.'",
                kind, name);
        return NULL;
    }
    nb_module *m = nb__heap_alloc(ctx, sizeof *m);
    char *nm = name ? nb__heap_alloc(ctx, strlen(name) + 1) : NULL;
    if (!m || (name && !nm)) {
        nb__heap_free(ctx, m);
        nb__heap_free(ctx, nm);
        nb__err(ctx, NB_ERR_NOMEM, "%s: allocator failed", kind);
        return NULL;
    }
    memset(m, 0, sizeof *m);
    if (nm)
        strcpy(nm, name);
    m->kind = kind;
    m->name = nm;
    m->forward = fwd;
    m->training = true;
    return m;
}

nb_tensor *nb__module_add(nb_ctx *ctx, nb_module *m, const char *tname, bool buffer, nb_dtype dt,
                          int ndim, const int64_t *shape)
{
    if (m->n_t >= NB__MOD_MAX_T) {
        nb__err(ctx, NB_ERR_ARG, "%s: too many tensors in one module", m->kind);
        return NULL;
    }
    nb_tensor *t = buffer ? nb_buffer(ctx, dt, ndim, shape) : nb_param(ctx, dt, ndim, shape);
    if (!t)
        return NULL;
    m->t[m->n_t] = t;
    m->t_name[m->n_t] = tname;
    m->t_buffer[m->n_t] = buffer;
    m->n_t++;
    return t;
}

void nb_module_free(nb_ctx *ctx, nb_module *m)
{
    if (!ctx || !m)
        return;
    for (int i = 0; i < m->n_children; i++)
        nb_module_free(ctx, m->children[i]);
    for (int i = 0; i < m->n_t; i++)
        nb_tensor_free(ctx, m->t[i]);
    nb__heap_free(ctx, m->children);
    nb__heap_free(ctx, m->name);
    nb__heap_free(ctx, m);
}

nb_tensor *nb_module_forward(nb_ctx *ctx, nb_module *m, nb_tensor *x)
{
    if (!ctx)
        return NULL;
    if (!m) {
        nb__err(ctx, NB_ERR_NULL, "module_forward: module is NULL");
        return NULL;
    }
    if (nb__null_in(ctx, m->kind, 1, x))
        return NULL;
    return m->forward(ctx, m, x);
}

void nb_module_train(nb_module *m, bool training)
{
    if (!m)
        return;
    m->training = training;
    for (int i = 0; i < m->n_children; i++)
        nb_module_train(m->children[i], training);
}

bool nb_module_training(const nb_module *m) { return m && m->training; }
const char *nb_module_kind(const nb_module *m) { return m ? m->kind : NULL; }
const char *nb_module_name(const nb_module *m) { return m ? m->name : NULL; }
int nb_module_child_count(const nb_module *m) { return m ? m->n_children : 0; }
nb_module *nb_module_child(const nb_module *m, int i)
{
    return (m && i >= 0 && i < m->n_children) ? m->children[i] : NULL;
}

/* ---- the registry --------------------------------------------------------- */
/* Visits every tensor with its dotted name (built in buf). */
typedef void (*visit_fn)(const char *name, nb_tensor *t, bool buffer, void *user);

static void visit(nb_module *m, char *buf, size_t len, size_t cap, visit_fn fn, void *user)
{
    for (int i = 0; i < m->n_t; i++) {
        snprintf(buf + len, cap - len, "%s%s", len ? "." : "", m->t_name[i]);
        fn(buf, m->t[i], m->t_buffer[i], user);
    }
    for (int c = 0; c < m->n_children; c++) {
        nb_module *ch = m->children[c];
        int k = ch->name ? snprintf(buf + len, cap - len, "%s%s", len ? "." : "", ch->name)
                         : snprintf(buf + len, cap - len, "%s%d", len ? "." : "", c);
        size_t nl = len + (size_t)(k > 0 ? k : 0);
        visit(ch, buf, nl < cap ? nl : cap - 1, cap, fn, user);
        buf[len] = '\0';
    }
}

typedef struct {
    int n;
    size_t chars;
    nb_param_list *out;
    char *pool;
} reg_state;

static void count_fn(const char *name, nb_tensor *t, bool buffer, void *user)
{
    (void)t;
    (void)buffer;
    reg_state *s = user;
    s->n++;
    s->chars += strlen(name) + 1;
}

static void fill_fn(const char *name, nb_tensor *t, bool buffer, void *user)
{
    reg_state *s = user;
    nb_named_tensor *it = &s->out->items[s->out->n++];
    strcpy(s->pool, name);
    it->name = s->pool;
    it->tensor = t;
    it->is_buffer = buffer;
    s->pool += strlen(name) + 1;
}

nb_status nb_module_params(nb_ctx *ctx, nb_module *m, nb_param_list *out)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!m || !out)
        return nb__err(ctx, NB_ERR_NULL, "module_params: module or output is NULL");
    out->n = 0;
    out->items = NULL;
    char buf[512] = ""; /* the root's own name is not part of the paths */
    reg_state s = {0, 0, out, NULL};
    visit(m, buf, 0, sizeof buf, count_fn, &s);
    size_t bytes = sizeof(nb_named_tensor) * (size_t)s.n + s.chars + 1;
    void *mem = nb__heap_alloc(ctx, bytes);
    if (!mem)
        return nb__err(ctx, NB_ERR_NOMEM, "module_params: allocator failed");
    out->items = mem;
    s.pool = (char *)mem + sizeof(nb_named_tensor) * (size_t)s.n;
    visit(m, buf, 0, sizeof buf, fill_fn, &s);
    return NB_OK;
}

void nb_param_list_free(nb_ctx *ctx, nb_param_list *l)
{
    if (!ctx || !l)
        return;
    nb__heap_free(ctx, l->items);
    l->items = NULL;
    l->n = 0;
}

typedef struct {
    const char *want;
    nb_tensor *found;
    int64_t count;
} find_state;

static void find_fn(const char *name, nb_tensor *t, bool buffer, void *user)
{
    find_state *s = user;
    if (!s->found && s->want && strcmp(name, s->want) == 0)
        s->found = t;
    if (!buffer)
        s->count += nb__numel(t);
}

nb_tensor *nb_module_find(nb_ctx *ctx, nb_module *m, const char *name)
{
    if (!ctx || !m || !name)
        return NULL;
    char buf[512] = "";
    find_state s = {name, NULL, 0};
    visit(m, buf, 0, sizeof buf, find_fn, &s);
    return s.found;
}

int64_t nb_module_param_count(nb_module *m)
{
    if (!m)
        return 0;
    char buf[512] = "";
    find_state s = {NULL, NULL, 0};
    visit(m, buf, 0, sizeof buf, find_fn, &s);
    return s.count;
}

nb_status nb_module_init(nb_ctx *ctx, nb_module *m, const nb_init *w, const nb_init *b)
{
    if (!ctx)
        return NB_ERR_NULL;
    if (!m)
        return nb__err(ctx, NB_ERR_NULL, "module_init: module is NULL");
    if (m->reset) {
        nb_status st = m->reset(ctx, m, w, b);
        if (st != NB_OK)
            return st;
    }
    for (int i = 0; i < m->n_children; i++) {
        nb_status st = nb_module_init(ctx, m->children[i], w, b);
        if (st != NB_OK)
            return st;
    }
    return NB_OK;
}
