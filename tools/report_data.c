/* nabla report's data: the pool every allocation goes to, CSV tables read
 * whole and cut in place, rows grouped by a key column (parameter, layer:
 * groups in order of first appearance, by a counting sort that keeps file
 * order), and series for the plots. See report.h. */
#include "report.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

bool rep_fail(rep *r, const char *path, int line, const char *fmt, ...)
{
    int k = line > 0 ? snprintf(r->err, sizeof r->err, "%s:%d: ", path, line)
                     : snprintf(r->err, sizeof r->err, "%s: ", path);
    if (k < 0 || (size_t)k >= sizeof r->err)
        return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err + k, sizeof r->err - (size_t)k, fmt, ap);
    va_end(ap);
    return false;
}

bool rep_oom(rep *r)
{
    snprintf(r->err, sizeof r->err, "out of memory");
    return false;
}

/* Puts a heap block in the pool (freeing it when that fails); p or NULL. */
void *rep_adopt(rep *r, void *p)
{
    if (!p) {
        rep_oom(r);
        return NULL;
    }
    if (r->nblk == r->capblk) {
        int cap = r->capblk ? r->capblk * 2 : 64;
        void **b = realloc(r->blk, sizeof *b * (size_t)cap);
        if (!b) {
            free(p);
            rep_oom(r);
            return NULL;
        }
        r->blk = b;
        r->capblk = cap;
    }
    r->blk[r->nblk++] = p;
    return p;
}

void rep_free(rep *r)
{
    for (int i = 0; i < r->nblk; i++)
        free(r->blk[i]);
    free(r->blk);
    r->blk = NULL;
    r->nblk = r->capblk = 0;
    sb_free(&r->html);
}

/* n zeroed elements of `size` bytes from the pool; NULL (and r->err) when out of memory */
void *rep_alloc(rep *r, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size / 2) {
        rep_oom(r);
        return NULL;
    }
    return rep_adopt(r, calloc(n ? n : 1, size ? size : 1));
}

/* ---- CSV tables ---------------------------------------------------------------- */

const char *tab_cell(const table *t, int row, int c) { return t->cell[(size_t)row * t->ncol + c]; }

int tab_col(const table *t, const char *name)
{
    for (int c = 0; c < t->ncol; c++)
        if (!strcmp(t->head[c], name))
            return c;
    return -1;
}

/* Splits a line in place at commas; "quoted" fields lose their quotes and
 * inner "" become ". Returns the field count (fields beyond max are counted,
 * not stored), or -1 for bad quoting. */
static int split(char *s, char **f, int max)
{
    int n = 0;
    for (;;) {
        char *start = s, *w = s;
        if (*s == '"') {
            for (s++;; s++) {
                if (!*s)
                    return -1;
                if (*s == '"') {
                    if (s[1] != '"')
                        break;
                    s++;
                }
                *w++ = *s;
            }
            s++;
            if (*s && *s != ',')
                return -1;
        } else {
            while (*s && *s != ',')
                *w++ = *s++;
        }
        char sep = *s;
        *w = '\0';
        if (n < max)
            f[n] = start;
        n++;
        if (!sep)
            return n;
        s++;
    }
}

static char *slurp(rep *r, const char *path, FILE *f)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1)
            break;
        char *b = realloc(buf, cap * 2);
        if (!b) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = b;
        cap *= 2;
    }
    if (!buf) {
        rep_oom(r);
        return NULL;
    }
    if (ferror(f)) {
        free(buf);
        rep_fail(r, path, 0, "cannot read: %s", strerror(errno));
        return NULL;
    }
    buf[n] = '\0';
    return rep_adopt(r, buf);
}

/* Reads RUN/name; an absent optional file leaves t->present false. */
bool tab_read(rep *r, const char *name, bool required, table *t)
{
    memset(t, 0, sizeof *t);
    snprintf(t->path, sizeof t->path, "%s/%s", r->dir, name);
    FILE *f = fopen(t->path, "rb");
    if (!f) {
        if (errno == ENOENT && !required)
            return true;
        return rep_fail(r, t->path, 0, "cannot open: %s", strerror(errno));
    }
    char *text = slurp(r, t->path, f);
    fclose(f);
    if (!text)
        return false;
    int lines = 1;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    char *hf[64];
    char *p = text;
    for (int lno = 1; *p; lno++) {
        char *nl = strchr(p, '\n'), *next = nl ? nl + 1 : p + strlen(p);
        if (nl)
            *nl = '\0';
        size_t len = strlen(p);
        if (len && p[len - 1] == '\r')
            p[--len] = '\0';
        if (len == 0 || p[0] == '#') {
            if (len)
                t->comment = p + 1;
            p = next;
            continue;
        }
        if (!t->head) {
            int n = split(p, hf, 64);
            if (n < 0 || n > 64)
                return rep_fail(r, t->path, lno, n < 0 ? "bad quoting in the header"
                                                      : "more than 64 columns");
            t->ncol = n;
            t->hline = lno;
            t->head = rep_alloc(r, (size_t)n, sizeof *t->head);
            t->cell = rep_alloc(r, (size_t)lines * (size_t)n, sizeof *t->cell);
            t->line = rep_alloc(r, (size_t)lines, sizeof *t->line);
            if (!t->head || !t->cell || !t->line)
                return false;
            memcpy(t->head, hf, sizeof *hf * (size_t)n);
        } else {
            int n = split(p, t->cell + (size_t)t->nrow * t->ncol, t->ncol);
            if (n < 0)
                return rep_fail(r, t->path, lno, "bad quoting (a quoted field must end with "
                                                 "a quote before the comma)");
            if (n != t->ncol)
                return rep_fail(r, t->path, lno, "%d fields, the header has %d", n, t->ncol);
            t->line[t->nrow++] = lno;
        }
        p = next;
    }
    if (!t->head)
        return rep_fail(r, t->path, 1, "empty file (no header line)");
    t->present = true;
    return true;
}

/* Every name in the comma-separated list must be a column. */
bool tab_need(rep *r, const table *t, const char *names)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", names);
    for (char *save = NULL, *n = strtok_r(buf, ",", &save); n; n = strtok_r(NULL, ",", &save))
        if (tab_col(t, n) < 0)
            return rep_fail(r, t->path, t->hline, "no column '%s' in the header", n);
    return true;
}

bool tab_num(rep *r, const table *t, int row, int c, double *v)
{
    const char *s = tab_cell(t, row, c);
    char *end;
    if (!*s) { /* an empty cell: not applicable (dead_frac of a non-ReLU layer) */
        *v = NAN;
        return true;
    }
    *v = strtod(s, &end);
    while (*end == ' ')
        end++;
    if (end == s || *end)
        return rep_fail(r, t->path, t->line[row], "%s: '%.40s' is not a number", t->head[c], s);
    return true;
}

/* Column c as numbers (all NAN when c < 0); NULL on error. */
double *tab_numcol(rep *r, const table *t, int c)
{
    double *v = rep_alloc(r, (size_t)t->nrow, sizeof *v);
    for (int i = 0; v && i < t->nrow; i++)
        if (c < 0)
            v[i] = NAN;
        else if (!tab_num(r, t, i, c, &v[i]))
            return NULL;
    return v;
}

double *tab_named(rep *r, const table *t, const char *name)
{
    return tab_numcol(r, t, tab_col(t, name));
}

bool tab_group(rep *r, const table *t, int c, groups *g)
{
    memset(g, 0, sizeof *g);
    size_t n = (size_t)t->nrow;
    int *gid = rep_alloc(r, n, sizeof *gid);
    g->key = rep_alloc(r, n, sizeof *g->key);
    g->count = rep_alloc(r, n, sizeof *g->count);
    g->start = rep_alloc(r, n, sizeof *g->start);
    g->order = rep_alloc(r, n, sizeof *g->order);
    g->first = rep_alloc(r, n, sizeof *g->first);
    if (!gid || !g->key || !g->count || !g->start || !g->order || !g->first)
        return false;
    int guess = 0; /* rows usually cycle through the keys in order */
    for (int i = 0; i < t->nrow; i++) {
        const char *k = tab_cell(t, i, c);
        int j = -1;
        if (g->n && !strcmp(g->key[guess], k))
            j = guess;
        for (int m = 0; j < 0 && m < g->n; m++)
            if (!strcmp(g->key[m], k))
                j = m;
        if (j < 0) {
            j = g->n++;
            g->key[j] = k;
            g->first[j] = i;
        }
        gid[i] = j;
        g->count[j]++;
        guess = (j + 1) % g->n;
    }
    for (int j = 1; j < g->n; j++)
        g->start[j] = g->start[j - 1] + g->count[j - 1];
    int *fill = rep_alloc(r, (size_t)(g->n ? g->n : 1), sizeof *fill);
    if (!fill)
        return false;
    for (int i = 0; i < t->nrow; i++)
        g->order[g->start[gid[i]] + fill[gid[i]]++] = i;
    return true;
}

/* ---- plots into the page ------------------------------------------------------- */
rp_plot rep_plot(const char *id, const char *title, const char *xl, const char *yl)
{
    rp_plot p;
    memset(&p, 0, sizeof p);
    snprintf(p.id, sizeof p.id, "%s", id);
    for (char *c = p.id; *c; c++) /* a file name and an HTML id */
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '-' || *c == '_'))
            *c = '_';
    snprintf(p.title, sizeof p.title, "%s", title);
    p.xlabel = xl;
    p.ylabel = yl;
    p.ymin = p.ymax = p.vline = NAN;
    return p;
}

rp_series *rep_series(rep *r, rp_plot *p, int ns)
{
    p->s = rep_alloc(r, (size_t)(ns ? ns : 1), sizeof *p->s);
    p->ns = 0;
    return p->s;
}

/* Appends a series of n points (x, y copied when not NULL, else zeros). */
rp_series *rep_add(rep *r, rp_plot *p, const char *name, const double *x, const double *y,
                             int n)
{
    rp_series *s = &p->s[p->ns];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->x = rep_alloc(r, (size_t)n, sizeof *s->x);
    s->y = rep_alloc(r, (size_t)n, sizeof *s->y);
    if (!s->x || !s->y)
        return NULL;
    for (int i = 0; i < n; i++) {
        s->x[i] = x ? x[i] : 0;
        s->y[i] = y ? y[i] : 0;
    }
    s->n = n;
    p->ns++;
    return s;
}

/* Group g's rows of columns x and y as a series. */
rp_series *rep_add_group(rep *r, rp_plot *p, const groups *g, int gi, const double *x,
                            const double *y)
{
    rp_series *s = rep_add(r, p, g->key[gi], NULL, NULL, g->count[gi]);
    for (int j = 0; s && j < s->n; j++) {
        int row = g->order[g->start[gi] + j];
        s->x[j] = x[row];
        s->y[j] = y[row];
    }
    return s;
}
