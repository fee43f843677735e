/* nabla tune CONFIG [--set section.key=value ...]: hyperparameter search over
 * the space in the config's [tune] section (docs/TUNE.md).
 *
 * Trials: trial 0 is the config as it is (the default); the others override
 * the space's keys with values from a grid, at random, or proposed by a
 * Gaussian process (tools/gp.c) with expected improvement. Every value goes
 * through cfg_set, so any key of the schema can be tuned and is checked.
 *
 * Budgets: synchronous successive halving. Rung 0 trains every trial for
 * [tune] min_epochs; each later rung keeps the best 1/eta and resumes them
 * from their last.safetensors to eta times the epochs, up to [train] epochs.
 * Schedules whose length follows the epochs (cosine, warmup_cosine,
 * onecycle) get their length pinned to the full budget, so a trial resumed
 * rung after rung is the same run as one trained for all its epochs at once
 * (resume is exact), and best.ini reproduces it.
 *
 * Output: a row per trial and rung as they finish, the ranking, OUT/tune.csv,
 * OUT/best.ini, OUT/trial_NNN/ (each trial's run folder), and last
 *   tune best_trial=N metric=V default_metric=V params="k=v; k=v" */
#include "cli.h"
#include "gp.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_DIMS 16
#define MAX_CHOICES 32
#define MAX_RUNGS 64

/* ---- the space ------------------------------------------------------------------ */
typedef enum { K_LOG, K_UNIFORM, K_INT, K_CHOICE } dim_kind;
static const char *const kind_names[] = {"log", "uniform", "int", "choice"};

typedef struct {
    char key[128]; /* section.key */
    dim_kind kind;
    double lo, hi;
    int n;                      /* choices */
    char *choice[MAX_CHOICES];  /* heap strings */
    bool ordered;               /* choices are all numbers: one coordinate, rank / (n - 1) */
    char *def;                  /* trial 0's value: from the file or --set, NULL if not given */
} dim;

typedef struct {
    dim d[MAX_DIMS];
    int n;
} space;

static void space_free(space *s)
{
    for (int i = 0; i < s->n; i++) {
        for (int j = 0; j < s->d[i].n; j++)
            free(s->d[i].choice[j]);
        free(s->d[i].def);
    }
    s->n = 0;
}

/* snprintf for messages (truncation is fine there) */
static void say(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static bool is_number(const char *s, double *v)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(x))
        return false;
    if (v)
        *v = x;
    return true;
}

/* 4 significant digits: what is applied, shown, written and modelled */
static double round4(double v)
{
    char b[32];
    snprintf(b, sizeof b, "%.4g", v);
    return strtod(b, NULL);
}

static void fmt_value(const dim *d, double v, char *buf, size_t cap)
{
    if (d->kind == K_CHOICE)
        snprintf(buf, cap, "%s", d->choice[(int)v]);
    else if (d->kind == K_INT)
        snprintf(buf, cap, "%lld", (long long)llround(v));
    else
        snprintf(buf, cap, "%.4g", v);
}

static cfg cfg_clone(const cfg *c)
{
    cfg k = *c;
    k.text = c->text ? strdup(c->text) : NULL;
    return k;
}

/* Applies KEY=VALUE; on error the message names the key and the value. */
static bool apply(cfg *c, const char *key, const char *value, char *err, size_t cap)
{
    size_t n = strlen(key) + strlen(value) + 2;
    char *a = malloc(n);
    if (!a) {
        snprintf(err, cap, "out of memory");
        return false;
    }
    snprintf(a, n, "%s=%s", key, value);
    char msg[1024];
    bool ok = cfg_set(c, a, msg, sizeof msg);
    if (!ok) /* "--set k=v: why" -> "k=v: why" */
        snprintf(err, cap, "%s", strncmp(msg, "--set ", 6) ? msg : msg + 6);
    free(a);
    return ok;
}

static const char *const untunable[] = {"train.epochs", "train.out", "train.resume", "tune."};

/* One entry "KEY KIND ARGS"; checks every value it can produce on a copy of
 * the config. */
static bool parse_dim(dim *d, char *entry, const cfg *base, char *err, size_t cap)
{
    memset(d, 0, sizeof *d);
    char *s = entry, *key = s;
    while (*s && !isspace((unsigned char)*s))
        s++;
    if (*s)
        *s++ = '\0';
    char *kind = trim(s);
    s = kind;
    while (*s && !isspace((unsigned char)*s))
        s++;
    if (*s)
        *s++ = '\0';
    char *args = trim(s);
    if (!strchr(key, '.') || strlen(key) >= sizeof d->key) {
        snprintf(err, cap, "'%s' is not section.key", key);
        return false;
    }
    snprintf(d->key, sizeof d->key, "%s", key);
    for (size_t i = 0; i < sizeof untunable / sizeof *untunable; i++)
        if (!strcmp(key, untunable[i]) || (untunable[i][strlen(untunable[i]) - 1] == '.' &&
                                           !strncmp(key, untunable[i], strlen(untunable[i])))) {
            snprintf(err, cap, "%s cannot be tuned (the budget is [train] epochs; tune sets "
                               "train.out and train.resume itself)", key);
            return false;
        }
    int k = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(kind, kind_names[i]))
            k = i;
    if (k < 0) {
        snprintf(err, cap, "%s: unknown kind '%s' (log LO HI, uniform LO HI, int LO HI or "
                           "choice V1 V2 ...)", key, kind);
        return false;
    }
    d->kind = (dim_kind)k;
    char vals[3][64];
    int nv = 0;
    if (d->kind != K_CHOICE) {
        char *sv = NULL, *a = strtok_r(args, " \t", &sv), *b = a ? strtok_r(NULL, " \t", &sv) : NULL,
             *extra = b ? strtok_r(NULL, " \t", &sv) : NULL;
        if (!a || !b || extra || !is_number(a, &d->lo) || !is_number(b, &d->hi)) {
            snprintf(err, cap, "%s %s needs two numbers LO HI", key, kind);
            return false;
        }
        if (!(d->lo < d->hi)) {
            snprintf(err, cap, "%s %s: LO (%g) must be less than HI (%g)", key, kind, d->lo, d->hi);
            return false;
        }
        if (d->kind == K_LOG && d->lo <= 0) {
            snprintf(err, cap, "%s log: LO must be > 0, got %g", key, d->lo);
            return false;
        }
        if (d->kind == K_INT && (d->lo != floor(d->lo) || d->hi != floor(d->hi) || fabs(d->lo) > 1e15 ||
                                 fabs(d->hi) > 1e15)) {
            snprintf(err, cap, "%s int: LO and HI must be integers", key);
            return false;
        }
        /* the ends and an inside value (not round: catches integer keys) */
        double mid = d->kind == K_LOG ? exp(log(d->lo) + 0.37 * (log(d->hi) - log(d->lo)))
                                      : d->lo + 0.37 * (d->hi - d->lo);
        fmt_value(d, d->lo, vals[nv++], sizeof vals[0]);
        fmt_value(d, d->hi, vals[nv++], sizeof vals[0]);
        fmt_value(d, d->kind == K_INT ? floor(mid) : round4(mid), vals[nv++], sizeof vals[0]);
    } else {
        /* values separated by '|' when there is one (values with spaces, such
         * as layer lists), else by whitespace */
        bool bars = strchr(args, '|') != NULL;
        char *save = NULL;
        d->ordered = true;
        for (char *t = strtok_r(args, bars ? "|" : " \t", &save); t; t = strtok_r(NULL, bars ? "|" : " \t", &save)) {
            t = trim(t);
            if (!*t) {
                snprintf(err, cap, "%s choice: an empty value", key);
                return false;
            }
            if (d->n == MAX_CHOICES) {
                snprintf(err, cap, "%s choice: more than %d values", key, MAX_CHOICES);
                return false;
            }
            for (int j = 0; j < d->n; j++)
                if (!strcmp(d->choice[j], t)) {
                    snprintf(err, cap, "%s choice: '%s' twice", key, t);
                    return false;
                }
            if (!(d->choice[d->n++] = strdup(t))) {
                snprintf(err, cap, "out of memory");
                return false;
            }
            d->ordered &= is_number(t, NULL);
        }
        if (d->n == 0) {
            snprintf(err, cap, "%s choice needs at least one value", key);
            return false;
        }
    }
    int checks = d->kind == K_CHOICE ? d->n : nv;
    for (int i = 0; i < checks; i++) {
        cfg t = cfg_clone(base);
        bool ok = apply(&t, key, d->kind == K_CHOICE ? d->choice[i] : vals[i], err, cap);
        cfg_free(&t);
        if (!ok)
            return false;
    }
    return true;
}

static bool looks_like_dim(const char *s)
{
    char a[128], b[32];
    if (sscanf(s, " %127s %31s", a, b) != 2 || !strchr(a, '.'))
        return false;
    for (int i = 0; i < 4; i++)
        if (!strcmp(b, kind_names[i]))
            return true;
    return false;
}

/* In an INI file ';' after whitespace starts a comment: "a log 1 2 ; b int 1 4"
 * would tune only a. Says so when what follows looks like a dimension. */
static bool check_comments(const char *text, const char *path, char *err, size_t cap)
{
    char section[64] = "";
    bool in_space = false;
    int lineno = 0;
    for (const char *p = text; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), p);
        lineno++;
        p = e ? e + 1 : NULL;
        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        bool indented = s > line;
        if (*s == '[') {
            char *q = strchr(s, ']');
            if (q)
                *q = '\0';
            snprintf(section, sizeof section, "%s", trim(s + 1));
            in_space = false;
            continue;
        }
        if (!*s || *s == ';' || *s == '#') /* blank and comment lines keep a value open */
            continue;
        if (!indented || !in_space) {
            in_space = false;
            if (!strcmp(section, "tune") && !strncmp(s, "space", 5)) {
                char *q = s + 5;
                while (*q == ' ' || *q == '\t')
                    q++;
                if (*q == '=' || *q == ':') {
                    in_space = true;
                    s = q + 1;
                }
            }
        }
        if (!in_space)
            continue;
        for (char *q = s; *q; q++)
            if ((*q == ' ' || *q == '\t') && q[1] == ';') {
                if (looks_like_dim(q + 2)) {
                    snprintf(err, cap, "config: %s:%d: [tune] space: ' ;' starts a comment in an INI "
                             "file, so '%s' would be ignored: put each dimension on its own indented "
                             "line, or write ';' right after the value", path, lineno, trim(q + 2));
                    return false;
                }
                break;
            }
    }
    return true;
}

/* ---- values from the config's text (the file) and the --set arguments ------------ */
typedef struct {
    const char *section, *key;
    char *value;    /* last value seen (heap) */
    char *joined;   /* all values joined by ';' (heap), for the space */
    bool oom;
} lookup;

static int lookup_handler(void *user, const char *section, const char *name, const char *value)
{
    lookup *l = user;
    if (strcmp(section, l->section) || strcmp(name, l->key))
        return 1;
    free(l->value);
    l->value = strdup(value);
    size_t old = l->joined ? strlen(l->joined) : 0;
    char *j = realloc(l->joined, old + strlen(value) + 2);
    if (!j || !l->value) {
        l->oom = true;
        return 1;
    }
    if (old)
        j[old++] = ';';
    strcpy(j + old, value);
    l->joined = j;
    return 1;
}

/* The value of section.key in the file (the text before any "; --set" lines
 * is the file) or the last --set of it; NULL when neither gives it.
 * joined: all the file's lines for the key joined by ';' (multi-line values). */
static char *config_value(const cfg *c, int argc, char **argv, const char *dotted, bool joined)
{
    char sec[64];
    const char *dot = strchr(dotted, '.');
    snprintf(sec, sizeof sec, "%.*s", (int)(dot - dotted), dotted);
    lookup l = {sec, dot + 1, NULL, NULL, false};
    if (c->text)
        ini_parse_string(c->text, lookup_handler, &l);
    char *v = joined ? l.joined : l.value;
    free(joined ? l.value : l.joined);
    size_t kl = strlen(dotted);
    for (int i = 3; i < argc; i++) {
        const char *a = !strcmp(argv[i], "--set") && i + 1 < argc ? argv[++i]
                        : !strncmp(argv[i], "--set=", 6) ? argv[i] + 6 : NULL;
        if (a && !strncmp(a, dotted, kl) && a[kl] == '=') {
            free(v);
            v = strdup(a + kl + 1);
        }
    }
    return v;
}

/* Entries separated by ';' or new lines. */
static bool parse_space(space *sp, const char *text, const cfg *base, int argc, char **argv,
                        char *err, size_t cap)
{
    memset(sp, 0, sizeof *sp);
    char *buf = strdup(text), *save = NULL;
    if (!buf) {
        snprintf(err, cap, "out of memory");
        return false;
    }
    char msg[1024];
    bool ok = true;
    for (char *t = strtok_r(buf, ";\n", &save); ok && t; t = strtok_r(NULL, ";\n", &save)) {
        t = trim(t);
        if (!*t)
            continue;
        if (sp->n == MAX_DIMS) {
            snprintf(msg, sizeof msg, "more than %d dimensions", MAX_DIMS);
            ok = false;
            break;
        }
        char entry[1024];
        snprintf(entry, sizeof entry, "%s", t);
        dim *d = &sp->d[sp->n];
        ok = parse_dim(d, t, base, msg, sizeof msg);
        if (ok) {
            for (int i = 0; i < sp->n && ok; i++)
                if (!strcmp(sp->d[i].key, d->key)) {
                    snprintf(msg, sizeof msg, "%s appears twice", d->key);
                    ok = false;
                }
        }
        sp->n++; /* freed with the rest even on error */
        if (!ok)
            say(err, cap, "config: %s: [tune] space: '%s': %s", base->path, entry, msg);
        else
            d->def = config_value(base, argc, argv, d->key, false);
    }
    free(buf);
    if (ok && sp->n == 0) {
        snprintf(err, cap, "config: %s: [tune] space is empty: nothing to tune (e.g. space = "
                 "optim.lr log 1e-4 1e-2; data.batch_size choice 64 128 256)", base->path);
        ok = false;
    }
    if (!ok)
        space_free(sp);
    return ok;
}

/* ---- points: values (choice: the index) and their unit-cube coordinates ---------- */
typedef struct {
    double v[MAX_DIMS];
    bool known;          /* false: trial 0 with a value the config does not give */
    int rung;            /* the last rung finished; -1 none */
    int epochs;          /* epochs trained */
    double metric, val_loss, val_acc, test_acc, seconds, metric0;
    bool failed, stopped, reference;
} trial;

static double dim_unit(const dim *d, double v)
{
    double u = d->kind == K_LOG ? (log(v) - log(d->lo)) / (log(d->hi) - log(d->lo))
                                : (v - d->lo) / (d->hi - d->lo);
    return u < 0 ? 0 : (u > 1 ? 1 : u);
}

static double dim_from_unit(const dim *d, double u)
{
    u = u < 0 ? 0 : (u > 1 ? 1 : u);
    if (d->kind == K_LOG)
        return round4(exp(log(d->lo) + u * (log(d->hi) - log(d->lo))));
    if (d->kind == K_INT)
        return fmin(d->hi, floor(d->lo + u * (d->hi - d->lo + 1)));
    return round4(d->lo + u * (d->hi - d->lo));
}

static int dim_width(const dim *d) { return d->kind == K_CHOICE && !d->ordered && d->n > 2 ? d->n : 1; }

static int space_width(const space *sp)
{
    int w = 0;
    for (int i = 0; i < sp->n; i++)
        w += dim_width(&sp->d[i]);
    return w;
}

static void encode(const space *sp, const double *v, double *x)
{
    for (int i = 0; i < sp->n; i++) {
        const dim *d = &sp->d[i];
        if (d->kind != K_CHOICE) {
            *x++ = dim_unit(d, v[i]);
        } else if (dim_width(d) == 1) { /* numbers by rank (in any order), else two values 0 and 1 */
            int rank = (int)v[i];
            if (d->ordered) {
                double a = strtod(d->choice[(int)v[i]], NULL);
                rank = 0;
                for (int j = 0; j < d->n; j++)
                    rank += strtod(d->choice[j], NULL) < a;
            }
            *x++ = d->n > 1 ? (double)rank / (d->n - 1) : 0;
        } else { /* one-hot, scaled so two choices are 1 apart */
            for (int j = 0; j < d->n; j++)
                *x++ = (int)v[i] == j ? sqrt(0.5) : 0;
        }
    }
}

static void sample(const space *sp, nb_rng *r, double *v)
{
    for (int i = 0; i < sp->n; i++) {
        const dim *d = &sp->d[i];
        if (d->kind == K_CHOICE)
            v[i] = nb_rng_below(r, (uint32_t)d->n);
        else if (d->kind == K_INT)
            v[i] = d->lo + (double)nb_rng_below(r, (uint32_t)fmin(d->hi - d->lo + 1, 4294967295.0));
        else
            v[i] = dim_from_unit(d, nb_rng_uniform(r));
    }
}

/* a step away from v: continuous coordinates moved by N(0, 0.1), choices
 * redrawn with probability 1/4 */
static void perturb(const space *sp, nb_rng *r, const double *v, double *out)
{
    for (int i = 0; i < sp->n; i++) {
        const dim *d = &sp->d[i];
        if (d->kind == K_CHOICE)
            out[i] = nb_rng_uniform(r) < 0.25 ? nb_rng_below(r, (uint32_t)d->n) : v[i];
        else if (d->kind == K_INT)
            out[i] = fmin(d->hi, fmax(d->lo, llround(v[i] + 0.1 * (d->hi - d->lo + 1) * nb_rng_normal(r))));
        else
            out[i] = dim_from_unit(d, dim_unit(d, v[i]) + 0.1 * nb_rng_normal(r));
    }
}

static bool same_point(const space *sp, const double *a, const double *b)
{
    for (int i = 0; i < sp->n; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

/* Trial 0's values from the config, when it gives them all (numbers outside
 * [LO, HI] are clamped in the cube; choices must be one of the values). */
static bool default_point(const space *sp, double *v)
{
    for (int i = 0; i < sp->n; i++) {
        const dim *d = &sp->d[i];
        if (!d->def)
            return false;
        if (d->kind == K_CHOICE) {
            int found = -1;
            for (int j = 0; j < d->n; j++) {
                double a, b;
                if (!strcmp(d->choice[j], d->def) ||
                    (is_number(d->choice[j], &a) && is_number(d->def, &b) && a == b))
                    found = j;
            }
            if (found < 0)
                return false;
            v[i] = found;
        } else if (!is_number(d->def, &v[i])) {
            return false;
        } else if (d->kind == K_LOG && v[i] <= 0) { /* weight_decay = 0: the low end */
            v[i] = d->lo;
        }
    }
    return true;
}

/* ---- grid -------------------------------------------------------------------------- */
static int grid_levels(const dim *d, int k)
{
    if (d->kind == K_CHOICE)
        return d->n;
    if (d->kind == K_INT)
        return (int)fmin(k, d->hi - d->lo + 1);
    return k;
}

static double grid_value(const dim *d, int j, int m)
{
    if (d->kind == K_CHOICE)
        return j;
    double u = m > 1 ? (double)j / (m - 1) : 0.5;
    if (d->kind == K_INT)
        return d->lo + llround(u * (d->hi - d->lo));
    return dim_from_unit(d, u);
}

/* The grid's size with k levels per numeric dimension (capped at 1e15). */
static double grid_size(const space *sp, int k)
{
    double g = 1;
    for (int i = 0; i < sp->n; i++)
        g = fmin(1e15, g * grid_levels(&sp->d[i], k));
    return g;
}

static void grid_point(const space *sp, int k, uint64_t idx, double *v)
{
    for (int i = sp->n - 1; i >= 0; i--) { /* the last dimension fastest */
        int m = grid_levels(&sp->d[i], k);
        v[i] = grid_value(&sp->d[i], (int)(idx % (uint64_t)m), m);
        idx /= (uint64_t)m;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- the search ---------------------------------------------------------------------- */
typedef struct {
    const cfg *base;
    int argc;
    char **argv;
    space sp;
    trial *t;
    int n;               /* trials */
    int budget[MAX_RUNGS], rungs;
    bool maximize;       /* val_acc */
    char out[CFG_PATH + 16];
    FILE *csv;
    /* training rows for pinning schedule lengths, cached by data source */
    char rows_key[3 * CFG_PATH + 128];
    int64_t rows;
} tuner;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* lower is better */
static double loss_form(const tuner *T, double metric) { return T->maximize ? -metric : metric; }

static bool better(const tuner *T, double a, double b)
{
    if (isnan(b))
        return !isnan(a);
    return !isnan(a) && loss_form(T, a) < loss_form(T, b);
}

static void params_text(const tuner *T, int i, const char *sep, char *buf, size_t cap)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int j = 0; j < T->sp.n && k < cap; j++) {
        const dim *d = &T->sp.d[j];
        char v[600];
        if (i == 0)
            snprintf(v, sizeof v, "%s", d->def ? d->def : "(default)");
        else
            fmt_value(d, T->t[i].v[j], v, sizeof v);
        k += (size_t)snprintf(buf + k, cap - k, "%s%s=%s", j ? sep : "", d->key, v);
    }
}

static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n")) {
        fprintf(f, ",%s", s);
        return;
    }
    fputs(",\"", f);
    for (; *s; s++)
        fputs(*s == '"' ? "\"\"" : (char[]){*s, 0}, f);
    fputc('"', f);
}

static void report(tuner *T, int i, int rung)
{
    trial *t = &T->t[i];
    char p[4096];
    params_text(T, i, " ", p, sizeof p);
    const char *note = t->failed ? "  (failed)" : (t->reference ? "  (reference: the default at the full budget)"
                                                  : (t->stopped ? "  (stopped early)" : ""));
    printf(fabs(t->val_loss) < 1e4 ? "%5d %4d %6d %9.4f" : "%5d %4d %6d %9.3g", i, rung, t->epochs, t->val_loss);
    printf(" %8.4f %8.4f %8.1f  %s%s%s\n", t->val_acc, t->test_acc, t->seconds, i == 0 ? "default: " : "", p,
           note);
    fflush(stdout);
    if (T->csv) {
        fprintf(T->csv, "%d,%d,%d,%.6g,%.6g,%.6g,%.6g,%.3f", i, rung, t->epochs, t->metric, t->val_loss,
                t->val_acc, t->test_acc, t->seconds);
        for (int j = 0; j < T->sp.n; j++) {
            char v[600];
            if (i == 0)
                snprintf(v, sizeof v, "%s", T->sp.d[j].def ? T->sp.d[j].def : "");
            else
                fmt_value(&T->sp.d[j], t->v[j], v, sizeof v);
            csv_field(T->csv, v);
        }
        fputc('\n', T->csv);
        fflush(T->csv);
    }
}

/* Training rows of a config (to know the batches per epoch). */
static bool train_rows(tuner *T, const cfg *c, int64_t *rows)
{
    char key[sizeof T->rows_key];
    snprintf(key, sizeof key, "%s|%s|%s|%s|%d", c->format, c->train_csv, c->train_images, c->label,
             (int)c->header);
    if (T->rows && !strcmp(key, T->rows_key)) {
        *rows = T->rows;
        return true;
    }
    nb_ctx *ctx = make_ctx(c);
    data d = {0};
    bool ok = ctx && load_split(ctx, c, false, &d);
    if (!ok && ctx && nb_last_status(ctx) != NB_OK)
        fail(ctx, "data");
    if (ok) {
        T->rows = *rows = d.x->shape[0];
        snprintf(T->rows_key, sizeof T->rows_key, "%s", key);
    }
    nb_ctx_free(ctx);
    return ok;
}

/* Schedules whose length is derived from [train] epochs get the length of
 * the full budget, so the lr at each step does not depend on the rung. */
static bool pin_schedule(tuner *T, cfg *c, char *err, size_t cap)
{
    const char *key = !strcmp(c->schedule, "cosine") && !c->t_max ? "schedule.t_max"
                      : ((!strcmp(c->schedule, "warmup_cosine") || !strcmp(c->schedule, "onecycle")) && !c->total)
                          ? "schedule.total" : NULL;
    if (!key || T->rungs < 2)
        return true;
    int64_t E = T->budget[T->rungs - 1], steps = E;
    if (c->per_batch) {
        int64_t n;
        if (!train_rows(T, c, &n)) {
            snprintf(err, cap, "cannot read the training data");
            return false;
        }
        int64_t n_train = n - (int64_t)llround((double)n * c->val_fraction);
        int64_t batches = c->drop_last ? n_train / c->batch_size : (n_train + c->batch_size - 1) / c->batch_size;
        steps = E * ((batches + c->accum_steps - 1) / c->accum_steps);
    }
    char v[32];
    snprintf(v, sizeof v, "%lld", (long long)steps);
    return apply(c, key, v, err, cap);
}

/* The model a run ends with: its best epoch with restore_best, else its last.
 * Reads that epoch's validation loss and accuracy from the run's log.csv. */
static void read_metrics(const char *dir, int epoch, double *val_loss, double *val_acc)
{
    char path[CFG_PATH + 128], line[1024];
    snprintf(path, sizeof path, "%s/log.csv", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    int ce = -1, cl = -1, ca = -1;
    if (fgets(line, sizeof line, f)) {
        int col = 0;
        for (char *save = NULL, *t = strtok_r(line, ",\r\n", &save); t; t = strtok_r(NULL, ",\r\n", &save), col++) {
            ce = !strcmp(t, "epoch") ? col : ce;
            cl = !strcmp(t, "val_loss") ? col : cl;
            ca = !strcmp(t, "val_acc") ? col : ca;
        }
    }
    while (ce >= 0 && fgets(line, sizeof line, f)) {
        double v[32];
        int col = 0;
        for (char *p = line; col < 32; col++) {
            v[col] = strtod(p, &p);
            if (*p != ',')
                break;
            p++;
        }
        if (ce <= col && (int)v[ce] == epoch) {
            if (cl >= 0 && cl <= col)
                *val_loss = v[cl];
            if (ca >= 0 && ca <= col)
                *val_acc = v[ca];
        }
    }
    fclose(f);
}

/* Trains trial i to `epochs` (resuming from its last checkpoint when it has
 * trained before). Returns false when the trial failed (already said). */
static bool train_trial(tuner *T, int i, int epochs)
{
    trial *t = &T->t[i];
    char dir[CFG_PATH + 64], val[CFG_PATH + 96], err[1024];
    snprintf(dir, sizeof dir, "%s/trial_%03d", T->out, i);
    cfg c = cfg_clone(T->base);
    bool ok = true;
    for (int j = 0; ok && i > 0 && j < T->sp.n; j++) {
        fmt_value(&T->sp.d[j], t->v[j], val, sizeof val);
        ok = apply(&c, T->sp.d[j].key, val, err, sizeof err);
    }
    ok = ok && apply(&c, "train.out", dir, err, sizeof err);
    snprintf(val, sizeof val, "%d", epochs);
    ok = ok && apply(&c, "train.epochs", val, err, sizeof err) && pin_schedule(T, &c, err, sizeof err);
    if (ok && t->epochs > 0) {
        snprintf(val, sizeof val, "%s/last.safetensors", dir);
        ok = apply(&c, "train.resume", val, err, sizeof err);
    }
    ok = ok && cfg_check(&c, err, sizeof err);
    if (!ok)
        fprintf(stderr, "nabla: tune: trial %d: %s\n", i, err);
    double t0 = now_s();
    run_result r;
    if (ok && run_train(&c, true, &r) != 0)
        ok = false;
    t->seconds += now_s() - t0;
    if (ok) {
        t->epochs = r.train.epochs_run;
        t->stopped = r.train.stopped_early || r.train.stopped_by_alarm;
        int e = c.restore_best && r.train.best_epoch > 0 && !r.train.stopped_by_alarm ? r.train.best_epoch
                                                                                     : r.train.epochs_run;
        t->val_loss = r.train.val_loss;
        t->val_acc = r.train.val_acc;
        read_metrics(dir, e, &t->val_loss, &t->val_acc);
        t->test_acc = r.test.acc;
        t->metric = T->maximize ? t->val_acc : t->val_loss;
        if (r.train.epochs_run == 0 || isnan(t->metric)) {
            fprintf(stderr, "nabla: tune: trial %d: no %s (no validation rows or no epoch trained)\n", i,
                    T->maximize ? "val_acc" : "val_loss");
            ok = false;
        }
    }
    if (!ok) {
        t->failed = true;
        t->metric = NAN;
    }
    cfg_free(&c);
    return ok;
}

/* ---- proposals ------------------------------------------------------------------- */
static void propose_bayes(tuner *T, int i, nb_rng *r)
{
    trial *t = &T->t[i];
    int w = space_width(&T->sp), n = 0;
    double *X = malloc(sizeof(double) * (size_t)i * (size_t)w), *y = malloc(sizeof(double) * (size_t)i);
    double worst = -INFINITY;
    for (int j = 0; j < i; j++)
        if (!T->t[j].failed)
            worst = fmax(worst, loss_form(T, T->t[j].metric0));
    int best_j = -1;
    for (int j = 0; X && y && j < i; j++) {
        if (!T->t[j].known || (T->t[j].failed && worst == -INFINITY))
            continue;
        encode(&T->sp, T->t[j].v, X + (size_t)n * (size_t)w);
        y[n] = T->t[j].failed ? worst : loss_form(T, T->t[j].metric0); /* failed: the worst seen */
        if (!T->t[j].failed && (best_j < 0 || y[n] < loss_form(T, T->t[best_j].metric0)))
            best_j = j;
        n++;
    }
    static const double ells[] = {0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2, 4};
    static const double noises[] = {1e-6, 1e-4, 1e-3, 1e-2, 0.1};
    gp g;
    if (n < 2 || best_j < 0 || !gp_fit(&g, X, y, n, w, ells, 9, noises, 5)) {
        sample(&T->sp, r, t->v);
        free(X);
        free(y);
        return;
    }
    double best_y = y[0];
    for (int j = 1; j < n; j++)
        best_y = fmin(best_y, y[j]);
    double *x = malloc(sizeof(double) * (size_t)w), cand[MAX_DIMS], top_ei = -1, top_var = -1;
    double by_var[MAX_DIMS];
    bool have = false;
    for (int k = 0; x && k < 2500; k++) {
        if (k < 2000)
            sample(&T->sp, r, cand);
        else /* around the best so far */
            perturb(&T->sp, r, T->t[best_j].v, cand);
        bool seen = false;
        for (int j = 0; j < i && !seen; j++)
            seen = T->t[j].known && same_point(&T->sp, cand, T->t[j].v);
        if (seen)
            continue;
        encode(&T->sp, cand, x);
        double m, v;
        gp_predict(&g, x, &m, &v);
        double ei = gp_ei(m, v, best_y, 0.01 * g.ystd);
        if (ei > top_ei) {
            top_ei = ei;
            memcpy(t->v, cand, sizeof cand);
            have = true;
        }
        if (v > top_var) {
            top_var = v;
            memcpy(by_var, cand, sizeof cand);
        }
    }
    if (have && !(top_ei > 0)) /* nothing expected to improve: the least known point */
        memcpy(t->v, by_var, sizeof by_var);
    if (!have) /* every candidate tried already (a small discrete space) */
        sample(&T->sp, r, t->v);
    gp_free(&g);
    free(x);
    free(X);
    free(y);
}

/* ---- best.ini -------------------------------------------------------------------- */
static void ini_assign(FILE *f, const char *assignment)
{
    const char *dot = strchr(assignment, '.'), *eq = strchr(assignment, '=');
    if (!dot || !eq || dot > eq)
        return;
    fprintf(f, "[%.*s]\n%.*s = %s\n", (int)(dot - assignment), assignment, (int)(eq - dot - 1), dot + 1, eq + 1);
}

static bool write_best(tuner *T, int b, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    const char *text = T->base->text ? T->base->text : "";
    fputs(text, f);
    if (*text && text[strlen(text) - 1] != '\n')
        fputc('\n', f);
    fprintf(f, "\n; ---- nabla tune: the command line's --set and the best trial (%d, %s %.6g) ----\n"
               "; (a key given twice: the last one counts)\n",
            b, T->maximize ? "val_acc" : "val_loss", T->t[b].metric);
    for (int i = 3; i < T->argc; i++) {
        const char *a = !strcmp(T->argv[i], "--set") && i + 1 < T->argc ? T->argv[++i]
                        : !strncmp(T->argv[i], "--set=", 6) ? T->argv[i] + 6 : NULL;
        if (a)
            ini_assign(f, a);
    }
    for (int j = 0; b > 0 && j < T->sp.n; j++) {
        char v[600], a[800];
        fmt_value(&T->sp.d[j], T->t[b].v[j], v, sizeof v);
        snprintf(a, sizeof a, "%s=%s", T->sp.d[j].key, v);
        ini_assign(f, a);
    }
    return fclose(f) == 0;
}

static bool mkdir_p(const char *path)
{
    char p[CFG_PATH + 16];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST)
                return false;
            *s = '/';
        }
    return mkdir(p, 0777) == 0 || errno == EEXIST;
}

static tuner *sort_tuner; /* qsort has no user pointer */

/* the full budget first, then by metric; failed last */
static int cmp_rank(const void *a, const void *b)
{
    const trial *x = &sort_tuner->t[*(const int *)a], *y = &sort_tuner->t[*(const int *)b];
    if (x->failed != y->failed)
        return x->failed ? 1 : -1;
    if (x->rung != y->rung)
        return x->rung > y->rung ? -1 : 1;
    if (better(sort_tuner, x->metric, y->metric))
        return -1;
    if (better(sort_tuner, y->metric, x->metric))
        return 1;
    return *(const int *)a - *(const int *)b;
}

static int usage_tune(void)
{
    fprintf(stderr, "usage: nabla tune CONFIG [--set section.key=value ...]   (docs/TUNE.md)\n");
    return 2;
}

int cmd_tune(int argc, char **argv)
{
    if (argc < 3)
        return usage_tune();
    cfg base;
    cfg_defaults(&base);
    char err[2048];
    tuner T;
    memset(&T, 0, sizeof T);
    int rc = 2;
    if (!load_config(&base, argc, argv, 3, err, sizeof err)) {
        fprintf(stderr, "nabla: %s\n", err);
        cfg_free(&base);
        return 2;
    }
    T.base = &base;
    T.argc = argc;
    T.argv = argv;
    T.maximize = !strcmp(base.tune_metric, "val_acc");
    /* the space: the file's [tune] space lines (a multi-line value) or --set */
    char *text = config_value(&base, argc, argv, "tune.space", true);
    bool space_ok = check_comments(base.text, base.path, err, sizeof err) &&
                    parse_space(&T.sp, text ? text : "", &base, argc, argv, err, sizeof err);
    free(text);
    if (!space_ok) {
        fprintf(stderr, "nabla: %s\n", err);
        goto out;
    }
    if (base.val_fraction <= 0) {
        fprintf(stderr, "nabla: config: %s: tune compares trials on validation rows: [data] "
                        "val_fraction must be > 0\n", base.path);
        goto out;
    }
    if (T.maximize && strcmp(base.loss, "cross_entropy")) {
        fprintf(stderr, "nabla: config: %s: [tune] metric = val_acc needs [train] loss = cross_entropy\n",
                base.path);
        goto out;
    }
    if (base.tune_out[0])
        snprintf(T.out, sizeof T.out, "%s", base.tune_out);
    else
        snprintf(T.out, sizeof T.out, "%s/tune", base.out[0] ? base.out : "runs");
    if (!mkdir_p(T.out)) {
        fprintf(stderr, "nabla: tune: cannot create %s: %s\n", T.out, strerror(errno));
        goto out;
    }
    /* rungs: min_epochs, x eta, ..., up to the full budget */
    int64_t E = base.epochs, r = base.tune_min_epochs;
    while (r < E && T.rungs < MAX_RUNGS - 1) {
        T.budget[T.rungs++] = (int)r;
        r *= base.tune_eta;
    }
    T.budget[T.rungs++] = (int)E;
    /* trials and their points */
    const char *method = base.tune_method;
    T.n = (int)base.tune_trials;
    nb_rng rng;
    nb_rng_seed(&rng, base.seed, 0x74756e65); /* "tune" */
    uint64_t *grid = NULL;
    int k = 2;
    if (!strcmp(method, "grid")) {
        while (k < 10 && grid_size(&T.sp, k + 1) <= T.n - 1)
            k++;
        double G = grid_size(&T.sp, k);
        int m = G < T.n - 1 ? (int)G : T.n - 1;
        grid = malloc(sizeof(uint64_t) * (size_t)(m + 1));
        if (!grid) {
            fprintf(stderr, "nabla: tune: out of memory\n");
            goto out;
        }
        if (G <= T.n - 1) {
            for (int i = 0; i < m; i++)
                grid[i] = (uint64_t)i;
            if (G < T.n - 1)
                printf("tune: the grid has %d points: %d trials with the default\n", m, m + 1);
        } else { /* a seeded sample of the grid without repeats, in grid order */
            for (int i = 0; i < m; i++) {
                bool dup;
                do {
                    uint64_t x = ((uint64_t)nb_rng_u32(&rng) << 32) | nb_rng_u32(&rng);
                    grid[i] = x % (uint64_t)G;
                    dup = false;
                    for (int j = 0; j < i; j++)
                        dup |= grid[j] == grid[i];
                } while (dup);
            }
            qsort(grid, (size_t)m, sizeof *grid, cmp_u64);
        }
        T.n = m + 1;
    }
    T.t = calloc((size_t)T.n, sizeof *T.t);
    if (!T.t) {
        free(grid);
        fprintf(stderr, "nabla: tune: out of memory\n");
        goto out;
    }
    int n_random = T.n / 4 > 3 ? T.n / 4 : 3; /* bayes: random trials before the model */
    char path[CFG_PATH + 64];
    snprintf(path, sizeof path, "%s/tune.csv", T.out);
    T.csv = fopen(path, "w");
    if (!T.csv) {
        free(grid);
        fprintf(stderr, "nabla: tune: cannot write %s: %s\n", path, strerror(errno));
        goto out;
    }
    fprintf(T.csv, "trial,rung,epochs,metric,val_loss,val_acc,test_acc,seconds");
    for (int j = 0; j < T.sp.n; j++)
        csv_field(T.csv, T.sp.d[j].key);
    fputc('\n', T.csv);

    printf("tune: method=%s trials=%d metric=%s (%s is better) space=%d dimensions, rungs of", method, T.n,
           base.tune_metric, T.maximize ? "higher" : "lower", T.sp.n);
    for (int i = 0; i < T.rungs; i++)
        printf(" %d", T.budget[i]);
    printf(" epochs (eta=%lld), out=%s\n", (long long)base.tune_eta, T.out);
    printf("%5s %4s %6s %9s %8s %8s %8s  %s\n", "trial", "rung", "epochs", "val_loss", "val_acc", "test_acc",
           "seconds", "params");
    fflush(stdout);

    /* rung 0: every trial; bayes proposes each from those before it */
    for (int i = 0; i < T.n; i++) {
        trial *t = &T.t[i];
        t->rung = -1;
        t->metric = t->metric0 = t->val_loss = t->val_acc = t->test_acc = NAN;
        t->known = true;
        if (i == 0)
            t->known = default_point(&T.sp, t->v);
        else if (grid)
            grid_point(&T.sp, k, grid[i - 1], t->v);
        else if (!strcmp(method, "bayes") && i > n_random)
            propose_bayes(&T, i, &rng);
        else
            sample(&T.sp, &rng, t->v);
        train_trial(&T, i, T.budget[0]);
        t->rung = 0;
        t->metric0 = t->metric;
        report(&T, i, 0);
        if (i == 0 && t->failed) {
            fprintf(stderr, "nabla: tune: the config itself (trial 0) does not train: fix it first\n");
            free(grid);
            rc = 1;
            goto out;
        }
    }
    free(grid);
    /* successive halving */
    int *order = malloc(sizeof(int) * (size_t)T.n), alive = T.n;
    if (!order) {
        fprintf(stderr, "nabla: tune: out of memory\n");
        goto out;
    }
    sort_tuner = &T;
    for (int rung = 1; rung < T.rungs; rung++) {
        int m = 0;
        for (int i = 0; i < T.n; i++)
            if (T.t[i].rung == rung - 1 && !T.t[i].failed)
                order[m++] = i;
        qsort(order, (size_t)m, sizeof *order, cmp_rank);
        int keep = alive / (int)base.tune_eta;
        keep = keep < 1 ? 1 : keep;
        keep = keep < m ? keep : m;
        alive = keep;
        printf("rung %d: the best %d of %d continue to %d epochs\n", rung, keep, m, T.budget[rung]);
        fflush(stdout);
        for (int q = 0; q < keep; q++) {
            int i = order[q];
            if (!T.t[i].stopped)
                train_trial(&T, i, T.budget[rung]);
            T.t[i].rung = rung;
            report(&T, i, rung);
        }
    }
    /* the default at the full budget, as the reference, if it was dropped */
    trial *t0 = &T.t[0];
    if (t0->rung < T.rungs - 1 && !t0->failed) {
        printf("reference: the default (trial 0) continues to %d epochs\n", T.budget[T.rungs - 1]);
        if (!t0->stopped)
            train_trial(&T, 0, T.budget[T.rungs - 1]);
        t0->rung = T.rungs - 1;
        t0->reference = true;
        report(&T, 0, T.rungs - 1);
    }
    for (int i = 0; i < T.n; i++)
        order[i] = i;
    qsort(order, (size_t)T.n, sizeof *order, cmp_rank);
    int b = order[0];
    if (T.t[b].failed || T.t[b].rung != T.rungs - 1) {
        fprintf(stderr, "nabla: tune: no trial finished the full budget\n");
        free(order);
        rc = 1;
        goto out;
    }
    printf("ranking (%s, %s is better; the full budget first):\n", base.tune_metric,
           T.maximize ? "higher" : "lower");
    for (int q = 0; q < T.n; q++) {
        int i = order[q];
        char p[4096];
        params_text(&T, i, " ", p, sizeof p);
        printf("%4d. trial %-4d epochs %-4d %s %.4g  %s%s\n", q + 1, i, T.t[i].epochs, base.tune_metric,
               T.t[i].metric, i == 0 ? "default: " : "", p);
    }
    snprintf(path, sizeof path, "%s/best.ini", T.out);
    if (!write_best(&T, b, path)) {
        fprintf(stderr, "nabla: tune: cannot write %s: %s\n", path, strerror(errno));
        free(order);
        rc = 1;
        goto out;
    }
    printf("wrote %s/tune.csv and %s (nabla train %s)\n", T.out, path, path);
    char p[4096] = "";
    if (b > 0)
        params_text(&T, b, "; ", p, sizeof p);
    printf("tune best_trial=%d metric=%.6f default_metric=%.6f params=\"%s\"\n", b, T.t[b].metric,
           T.t[0].metric, p);
    free(order);
    rc = 0;
out:
    if (T.csv && fclose(T.csv) != 0 && rc == 0) {
        fprintf(stderr, "nabla: tune: writing tune.csv failed\n");
        rc = 1;
    }
    free(T.t);
    space_free(&T.sp);
    cfg_free(&base);
    return rc;
}
