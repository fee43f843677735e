/* The alarm log: what the diagnostics (mode collapse now; non-finite values,
 * vanishing and exploding gradients and loss spikes later) report, and what
 * the training loop should do about each kind (warn, skip the update, stop).
 *
 * Design:
 *   - One log per run, owned by the caller; alarms live in a growable array
 *     from the context's allocator hook, so a run's alarms stay readable
 *     after training (nb_alarms_get) and tests can count them.
 *   - The action belongs to the kind, not to the raise: the detector says what
 *     happened, the user decides what it means (nb_alarms_set_action), and
 *     nb_alarm_raise hands the action back so the caller acts at once.
 *   - The CSV is opened in append mode for the log's lifetime, so a resumed
 *     run adds to the same file; the header is written only when the file is
 *     empty, and every row is flushed, so a crash loses nothing. `where` and
 *     `message` are always quoted (inner quotes doubled); control characters
 *     in a message become spaces, so a row is one line in the file too.
 *   - Nothing here can crash on NULL: a NULL log records nothing and answers
 *     NB_ACTION_WARN, counts 0 and NULL. */
#include "core/internal.h"

#include <errno.h>
#include <stdio.h>

struct nb_alarms {
    nb_alarm *items;
    int n, cap;
    int count[NB_ALARM_COUNT];
    nb_alarm_action action[NB_ALARM_COUNT];
    FILE *csv; /* NULL: no file */
    bool echo;
    void (*fn)(const nb_alarm *alarm, void *user);
    void *user;
};

static const char *const kind_names[NB_ALARM_COUNT] = {
    [NB_ALARM_NONFINITE] = "nonfinite",   [NB_ALARM_VANISHING] = "vanishing",
    [NB_ALARM_EXPLODING] = "exploding",   [NB_ALARM_LOSS_SPIKE] = "loss_spike",
    [NB_ALARM_MODE_COLLAPSE] = "mode_collapse",
};
static const char *const action_names[NB_ACTION_COUNT] = {
    [NB_ACTION_WARN] = "warn", [NB_ACTION_SKIP] = "skip", [NB_ACTION_STOP] = "stop"};

static bool kind_ok(int k) { return k >= 0 && k < NB_ALARM_COUNT; }
static bool action_ok(int a) { return a >= 0 && a < NB_ACTION_COUNT; }

const char *nb_alarm_kind_name(nb_alarm_kind k) { return kind_ok((int)k) ? kind_names[k] : "?"; }
const char *nb_alarm_action_name(nb_alarm_action a)
{
    return action_ok((int)a) ? action_names[a] : "?";
}
nb_alarm_kind nb_alarm_kind_from_name(const char *name)
{
    return (nb_alarm_kind)nb__name_index(kind_names, NB_ALARM_COUNT, name);
}
nb_alarm_action nb_alarm_action_from_name(const char *name)
{
    return (nb_alarm_action)nb__name_index(action_names, NB_ACTION_COUNT, name);
}

nb_alarms *nb_alarms_new(nb_ctx *ctx, const char *csv_path, bool echo)
{
    if (!ctx)
        return NULL;
    nb_alarms *a = nb__heap_alloc(ctx, sizeof *a);
    if (!a) {
        nb__err(ctx, NB_ERR_NOMEM, "alarms: allocator failed");
        return NULL;
    }
    memset(a, 0, sizeof *a); /* every action NB_ACTION_WARN (0) */
    a->echo = echo;
    if (csv_path) {
        a->csv = fopen(csv_path, "a");
        if (!a->csv) {
            nb__err(ctx, NB_ERR_IO, "alarms: cannot open %s: %s", csv_path, strerror(errno));
            nb__heap_free(ctx, a);
            return NULL;
        }
        /* append mode: the position after seeking to the end is the size */
        if (fseek(a->csv, 0, SEEK_END) == 0 && ftell(a->csv) == 0)
            fputs("epoch,step,kind,where,value,threshold,action,message\n", a->csv);
        if (fflush(a->csv) != 0) {
            nb__err(ctx, NB_ERR_IO, "alarms: cannot write %s: %s", csv_path, strerror(errno));
            fclose(a->csv);
            nb__heap_free(ctx, a);
            return NULL;
        }
    }
    return a;
}

void nb_alarms_free(nb_ctx *ctx, nb_alarms *a)
{
    if (!ctx || !a)
        return;
    if (a->csv)
        fclose(a->csv);
    nb__heap_free(ctx, a->items);
    nb__heap_free(ctx, a);
}

void nb_alarms_set_action(nb_alarms *a, nb_alarm_kind kind, nb_alarm_action action)
{
    if (a && kind_ok((int)kind) && action_ok((int)action))
        a->action[kind] = action;
}

nb_alarm_action nb_alarms_action(const nb_alarms *a, nb_alarm_kind kind)
{
    return (a && kind_ok((int)kind)) ? a->action[kind] : NB_ACTION_WARN;
}

void nb_alarms_on_raise(nb_alarms *a, void (*fn)(const nb_alarm *alarm, void *user), void *user)
{
    if (!a)
        return;
    a->fn = fn;
    a->user = user;
}

int nb_alarms_count(const nb_alarms *a, int kind)
{
    if (!a)
        return 0;
    if (kind == -1)
        return a->n;
    return kind_ok(kind) ? a->count[kind] : 0;
}

const nb_alarm *nb_alarms_get(const nb_alarms *a, int i)
{
    return (a && i >= 0 && i < a->n) ? &a->items[i] : NULL;
}

/* A CSV field in double quotes, inner quotes doubled. */
static void csv_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void write_row(FILE *f, const nb_alarm *al)
{
    fprintf(f, "%d,%lld,%s,", al->epoch, (long long)al->step, kind_names[al->kind]);
    csv_quoted(f, al->where);
    fprintf(f, ",%.10g,%.10g,%s,", al->value, al->threshold, action_names[al->action]);
    csv_quoted(f, al->message);
    fputc('\n', f);
    fflush(f);
}

static bool store(nb_ctx *ctx, nb_alarms *a, const nb_alarm *al)
{
    if (a->n == a->cap) {
        int cap = a->cap ? a->cap * 2 : 16;
        nb_alarm *items = nb__heap_alloc(ctx, sizeof *items * (size_t)cap);
        if (!items) {
            nb__err(ctx, NB_ERR_NOMEM, "alarms: allocator failed keeping alarm %d", a->n + 1);
            return false;
        }
        if (a->n)
            memcpy(items, a->items, sizeof *items * (size_t)a->n);
        nb__heap_free(ctx, a->items);
        a->items = items;
        a->cap = cap;
    }
    a->items[a->n++] = *al;
    a->count[al->kind]++;
    return true;
}

nb_alarm_action nb_alarm_raise(nb_ctx *ctx, nb_alarms *a, nb_alarm_kind kind, int epoch,
                               int64_t step, const char *where, double value, double threshold,
                               const char *fmt, ...)
{
    if (!ctx || !a)
        return NB_ACTION_WARN;
    if (!kind_ok((int)kind)) {
        nb__err(ctx, NB_ERR_ARG, "alarms: unknown alarm kind %d", (int)kind);
        return NB_ACTION_WARN;
    }
    nb_alarm al;
    memset(&al, 0, sizeof al);
    al.kind = kind;
    al.action = a->action[kind];
    al.epoch = epoch;
    al.step = step;
    al.value = value;
    al.threshold = threshold;
    snprintf(al.where, sizeof al.where, "%s", where ? where : "");
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(al.message, sizeof al.message, fmt, ap);
        va_end(ap);
    }
    for (char *c = al.message; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t')
            *c = ' ';
    /* Out of memory loses the entry in the log (error recorded), never the
     * alarm: the file, stderr, the callback and the action still see it. */
    const nb_alarm *rec = store(ctx, a, &al) ? &a->items[a->n - 1] : &al;
    if (a->csv)
        write_row(a->csv, rec);
    if (a->echo) {
        fprintf(stderr, "nabla: alarm %s at ", kind_names[kind]);
        if (epoch > 0)
            fprintf(stderr, "epoch %d, ", epoch);
        fprintf(stderr, "step %lld", (long long)step);
        if (rec->where[0])
            fprintf(stderr, " (%s)", rec->where);
        fprintf(stderr, ": %s\n", rec->message);
    }
    if (a->fn)
        a->fn(rec, a->user);
    return rec->action;
}
