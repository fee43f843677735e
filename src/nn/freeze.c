/* Freezing parameters by registry name (transfer learning: train a new head
 * on a pretrained body).
 *
 * A frozen parameter does not require grad: ops that read it record nothing
 * for it, backward gives it no gradient, and the optimizers skip a parameter
 * whose grad is NULL (torch's rule), weight decay and momentum included.
 * A parameter that already took part in a backward has a persistent grad
 * buffer, which the optimizers would still apply (zero or stale, plus decay
 * and momentum), so freezing also frees that buffer; unfreezing lets the next
 * backward make a new one. Call it between steps, not between a forward and
 * its backward.
 *
 * Every pattern is checked before anything changes, so an error leaves the
 * model as it was. */
#include "nn.h"

#include <fnmatch.h>

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int nb_module_freeze(nb_ctx *ctx, nb_module *m, const char *patterns, bool frozen)
{
    if (!ctx)
        return -(int)NB_ERR_NULL;
    const char *what = frozen ? "freeze" : "unfreeze";
    if (!m || !patterns)
        return -(int)nb__err(ctx, NB_ERR_NULL, "%s: module or patterns NULL", what);
    size_t len = strlen(patterns);
    char *buf = nb__heap_alloc(ctx, len + 1);
    nb_param_list l = {0, NULL};
    bool *hit = NULL;
    nb_status st = buf ? nb_module_params(ctx, m, &l)
                       : nb__err(ctx, NB_ERR_NOMEM, "%s: allocator failed", what);
    if (st == NB_OK && l.n > 0) {
        hit = nb__heap_alloc(ctx, sizeof *hit * (size_t)l.n);
        if (!hit)
            st = nb__err(ctx, NB_ERR_NOMEM, "%s: allocator failed", what);
        else
            memset(hit, 0, sizeof *hit * (size_t)l.n);
    }
    if (st == NB_OK)
        memcpy(buf, patterns, len + 1);
    /* first match every pattern (one that matches no trainable parameter is
     * an error and changes nothing), then change the matched parameters */
    int count = 0;
    for (char *p = buf; st == NB_OK && p;) {
        char *comma = strchr(p, ',');
        char *next = comma ? comma + 1 : NULL;
        if (comma)
            *comma = '\0';
        while (is_space(*p))
            p++;
        char *end = p + strlen(p);
        while (end > p && is_space(end[-1]))
            *--end = '\0';
        if (!*p) {
            st = nb__err(ctx, NB_ERR_ARG, "%s: empty pattern in '%s'", what, patterns);
            break;
        }
        bool any = false;
        for (int i = 0; i < l.n; i++) {
            if (l.items[i].is_buffer || fnmatch(p, l.items[i].name, 0) != 0)
                continue;
            any = true;
            if (!hit[i]) {
                hit[i] = true;
                count++;
            }
        }
        if (!any)
            st = nb__err(ctx, NB_ERR_ARG, "%s: pattern '%s' matches no parameter", what, p);
        p = next;
    }
    for (int i = 0; st == NB_OK && i < l.n; i++) {
        if (!hit[i])
            continue;
        nb_tensor *t = l.items[i].tensor;
        st = nb_set_requires_grad(ctx, t, !frozen);
        if (st == NB_OK && frozen && t->grad) {
            /* a parameter's gradient is one heap block with its header,
             * outside the persistent list (see nb__grad_of, nb_tensor_free) */
            if (t->grad->flags & NB_PERSISTENT)
                nb__heap_free(ctx, t->grad);
            t->grad = NULL;
        }
    }
    nb__heap_free(ctx, hit);
    nb__heap_free(ctx, buf);
    nb_param_list_free(ctx, &l);
    return st == NB_OK ? count : -(int)st;
}
