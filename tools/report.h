/* Shared by the files of `nabla report`:
 *   report.c       the command and the page's sections
 *   report_data.c  the pool, CSV tables, grouping rows, series for plots
 *   report_svg.c   growable text, and the plots as SVG */
#ifndef NABLA_TOOLS_REPORT_H
#define NABLA_TOOLS_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Growable text. Out of memory sets `oom` and makes every later append a
 * no-op, so callers check once at the end. */
typedef struct sbuf {
    char *s;
    size_t n, cap;
    bool oom;
} sbuf;

void sb_put(sbuf *b, const char *s);
void sb_putn(sbuf *b, const char *s, size_t n);
void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_esc(sbuf *b, const char *s);  /* HTML/XML text or attribute value: & < > " ' escaped */
void sb_num(sbuf *b, double v);       /* a value as data: %.15g (round-trips what the CSVs print) */
void sb_free(sbuf *b);

/* One line of a plot. x and y are owned by the plot's caller (heap); the
 * renderer may filter and downsample them in place (n shrinks). */
typedef struct rp_series {
    char name[128];  /* data-series: a column, parameter or layer name */
    char label[128]; /* legend text; empty: the name */
    double *x, *y;
    int n;
    const char *color; /* NULL: from the palette by position (dashed from the 11th on) */
    bool dashed;
} rp_series;

enum { RP_AUTO = 0, RP_LINEAR, RP_LOG };

typedef struct rp_plot {
    char id[160];               /* svg id is "plot-" id, file plots/<id>.svg */
    char title[200];
    const char *xlabel, *ylabel;
    int xscale, yscale;         /* RP_AUTO: log when all values > 0 and they span >= 2 decades */
    bool xint;                  /* x ticks at whole numbers (epochs) */
    bool small;                 /* a small multiple (histograms) */
    bool steps;                 /* draw as a histogram outline (x are bin centres) */
    double ymin, ymax;          /* fixed y range when both finite (fractions: 0, 1) */
    double vline;               /* a marked x value (lr-find suggestion); NAN: none */
    const char *vline_label;
    int max_points;             /* per series before min/max downsampling; 0: 1000 */
    rp_series *s;
    int ns;
    /* set by rp_render */
    int points;                 /* plotted points, all series */
    int dropped;                /* values <= 0 left out of a log axis */
    bool downsampled;
    bool logy, logx;
} rp_plot;

/* Renders the plot as one <svg> element (no XML declaration: the same text
 * is inlined in the page and written as plots/<id>.svg). Non-finite values
 * are never plotted. Returns the number of points plotted (0: nothing to
 * plot, and nothing appended). */
int rp_render(rp_plot *p, sbuf *out);
/* The i-th colour of the palette (10, cycling): a series' colour by its
 * parameter's or layer's position, the same in every plot. */
const char *rp_color(int i);

/* ---- report_data.c ---------------------------------------------------------- */
/* One report's state. Every allocation is in the pool (freed by rep_free),
 * so a failing function just sets err and returns false or NULL. */
typedef struct rep {
    const char *dir;
    char plotdir[1100];
    char err[1400];
    void **blk;      /* the pool */
    int nblk, capblk;
    sbuf html;
    int plots;
    bool in_section; /* a <section> is open */
    bool links;      /* the page is in the run folder: link plots/<id>.svg */
} rep;

/* A CSV file read whole and cut in place; lines starting with # are
 * comments, blank lines are skipped, "quoted" fields may hold commas and
 * doubled quotes. */
typedef struct table {
    char path[1200];
    bool present;
    int ncol, nrow, hline; /* hline: the header's line number */
    char **head, **cell;   /* cell: nrow x ncol */
    int *line;             /* each row's line number */
    const char *comment;   /* text after '#' of the last comment line */
} table;

/* Rows grouped by the text of one column, groups in order of first
 * appearance; rows of group g: order[start[g] .. start[g] + count[g]). */
typedef struct groups {
    int n;
    const char **key;
    int *count, *start, *order, *first; /* first: the group's first row */
} groups;

/* Sets r->err to "path:line: ..." ("path: ..." for line 0); returns false. */
bool rep_fail(rep *r, const char *path, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
bool rep_oom(rep *r);
void *rep_adopt(rep *r, void *p);                 /* a malloc'd block into the pool */
void *rep_alloc(rep *r, size_t n, size_t size);   /* zeroed */
void rep_free(rep *r);

/* Reads r->dir/name; a missing optional file leaves t->present false. */
bool tab_read(rep *r, const char *name, bool required, table *t);
const char *tab_cell(const table *t, int row, int c);
int tab_col(const table *t, const char *name);    /* -1: no such column */
bool tab_need(rep *r, const table *t, const char *names); /* comma-separated, all present */
bool tab_num(rep *r, const table *t, int row, int c, double *v);
double *tab_numcol(rep *r, const table *t, int c); /* all NAN when c < 0; NULL: error */
double *tab_named(rep *r, const table *t, const char *name); /* the column called name */
bool tab_group(rep *r, const table *t, int c, groups *g);

rp_plot rep_plot(const char *id, const char *title, const char *xlabel, const char *ylabel);
rp_series *rep_series(rep *r, rp_plot *p, int ns);  /* room for ns series */
rp_series *rep_add(rep *r, rp_plot *p, const char *name, const double *x, const double *y, int n);
rp_series *rep_add_group(rep *r, rp_plot *p, const groups *g, int gi, const double *x,
                         const double *y);

#endif
