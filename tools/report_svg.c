/* nabla report's plots: plain SVG with a frame, nice ticks, grid lines, a
 * legend and a title, one polyline per series.
 *
 * Machine-checkable by design: every <svg> has id="plot-ID" and
 * data-points (the points plotted, all series), data-xscale and
 * data-yscale ("linear" or "log"); every series is one <polyline> with
 * data-series (its name) and data-values ("x,y x,y ...": the values plotted,
 * printed with %.15g, not pixel coordinates).
 *
 * What gets plotted: finite values only; on a log axis, values <= 0 are left
 * out too (counted in p->dropped, and the page says so). A series longer than
 * max_points (1000) is downsampled by min/max decimation: its first and last
 * points are kept, the others are cut into (max_points - 2) / 2 equal runs and
 * each run keeps its smallest and its largest y, in x order. Every plotted
 * point is then a recorded point, spikes survive (an average would hide the
 * loss spike an alarm names), and the series' overall minimum and maximum are
 * always drawn. */
#include "report.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- growable text ----------------------------------------------------------- */
static bool sb_grow(sbuf *b, size_t more)
{
    if (b->oom)
        return false;
    if (b->n + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + more + 1)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->oom = true;
        return false;
    }
    b->s = s;
    b->cap = cap;
    return true;
}

void sb_putn(sbuf *b, const char *s, size_t n)
{
    if (!sb_grow(b, n))
        return;
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

void sb_put(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)k < sizeof tmp) {
        sb_putn(b, tmp, (size_t)k);
        return;
    }
    if (!sb_grow(b, (size_t)k))
        return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

/* Length of the valid UTF-8 sequence at s (0: not one). */
static int utf8_len(const unsigned char *s)
{
    int n = s[0] < 0x80 ? 1 : (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3
          : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 2 && s[0] < 0xC2)
        return 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

void sb_esc(sbuf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        const char *ent = NULL;
        switch (*p) {
        case '&': ent = "&amp;"; break;
        case '<': ent = "&lt;"; break;
        case '>': ent = "&gt;"; break;
        case '"': ent = "&quot;"; break;
        case '\'': ent = "&#39;"; break;
        default: break;
        }
        if (ent) {
            sb_put(b, ent);
            p++;
            continue;
        }
        if (*p < 0x20 && *p != '\n' && *p != '\t') { /* not allowed in XML */
            sb_put(b, " ");
            p++;
            continue;
        }
        int n = utf8_len(p);
        if (n == 0) { /* invalid UTF-8: a replacement character */
            sb_put(b, "\xEF\xBF\xBD");
            p++;
            continue;
        }
        sb_putn(b, (const char *)p, (size_t)n);
        p += n;
    }
}

void sb_num(sbuf *b, double v) { sb_printf(b, "%.15g", v); }

void sb_free(sbuf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

/* ---- axes -------------------------------------------------------------------- */
#define MAX_TICKS 32

typedef struct axis {
    bool log;
    double lo, hi;   /* in axis space: log10 of the value on a log axis */
    double p0, p1;   /* pixels of lo and hi */
    int nt;
    double tick[MAX_TICKS]; /* values (not log10) */
    char label[MAX_TICKS][64];
} axis;

static double ax_pos(const axis *a, double v)
{
    double t = a->log ? log10(v) : v;
    double px = a->p0 + (t - a->lo) / (a->hi - a->lo) * (a->p1 - a->p0);
    double lo = a->p0 < a->p1 ? a->p0 : a->p1, hi = a->p0 < a->p1 ? a->p1 : a->p0;
    return px < lo - 2 ? lo - 2 : px > hi + 2 ? hi + 2 : px;
}

static double nice_step(double raw)
{
    double e = pow(10, floor(log10(raw)));
    double f = raw / e;
    return (f <= 1.0001 ? 1 : f <= 2.0001 ? 2 : f <= 5.0001 ? 5 : 10) * e;
}

/* Compact exponent form: 1e-05 -> 1e-5, 2.5e+07 -> 2.5e7. */
static void fmt_exp(char *out, size_t cap, double v)
{
    char t[24];
    snprintf(t, sizeof t, "%.3g", v);
    char *e = strchr(t, 'e');
    if (!e) {
        snprintf(out, cap, "%s", t);
        return;
    }
    *e = '\0';
    const char *x = e + 1;
    bool neg = *x == '-';
    if (*x == '-' || *x == '+')
        x++;
    while (*x == '0' && x[1])
        x++;
    snprintf(out, cap, "%se%s%s", t, neg ? "-" : "", x);
}

/* A tick label: fixed decimals enough for `step` where readable, else
 * exponent form. */
static void fmt_tick(char *out, size_t cap, double v, double step)
{
    double a = fabs(v);
    if (a < step * 1e-6)
        snprintf(out, cap, "0");
    else if (a >= 1e-3 && a < 1e6 && step >= 1e-4) {
        int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
        snprintf(out, cap, "%.*f", dec > 6 ? 6 : dec, v);
    } else
        fmt_exp(out, cap, v);
}

/* Linear axis over [lo, hi]; expand: widen to whole ticks. */
static void lin_axis(axis *a, double lo, double hi, bool expand, bool integer)
{
    if (!(hi > lo)) {
        double d = integer ? 1 : lo != 0 ? fabs(lo) * 0.1 : 1;
        lo -= d;
        hi += d;
    }
    double step = nice_step((hi - lo) / (integer ? 8 : 5));
    if (integer && step < 1)
        step = 1;
    if (expand) {
        lo = floor(lo / step + 1e-9) * step;
        hi = ceil(hi / step - 1e-9) * step;
    }
    a->log = false;
    a->lo = lo;
    a->hi = hi;
    a->nt = 0;
    double k0 = ceil(lo / step - 1e-9);
    for (double k = k0; k * step <= hi + step * 1e-9 && a->nt < MAX_TICKS; k++) {
        double v = k * step;
        a->tick[a->nt] = v;
        fmt_tick(a->label[a->nt], sizeof a->label[0], v, step);
        a->nt++;
    }
}

/* Log axis over [lo, hi] (both > 0), widened to whole decades: ticks at
 * powers of ten (every d-th decade when there are many), and at 2 and 5
 * times them when the axis spans at most two decades. */
static void log_axis(axis *a, double lo, double hi)
{
    double l = floor(log10(lo) + 1e-9), h = ceil(log10(hi) - 1e-9);
    if (!(h > l))
        h = l + 1;
    a->log = true;
    a->lo = l;
    a->hi = h;
    a->nt = 0;
    int span = (int)(h - l), d = span > 8 ? (span + 7) / 8 : 1;
    for (int k = (int)l; k <= (int)h && a->nt < MAX_TICKS; k++) {
        static const double mult[3] = {1, 2, 5};
        for (int m = 0; m < (span <= 2 ? 3 : 1); m++) {
            if ((m == 0 && (k - (int)l) % d) || (m > 0 && k == (int)h))
                continue;
            double v = mult[m] * pow(10, k);
            a->tick[a->nt] = v;
            fmt_tick(a->label[a->nt], sizeof a->label[0], v, v);
            if (++a->nt == MAX_TICKS)
                break;
        }
    }
}

/* ---- the plot -------------------------------------------------------------------- */
static const char *const palette[10] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

const char *rp_color(int i) { return palette[(i < 0 ? -i : i) % 10]; }

/* Keeps the points that can be plotted; returns how many values <= 0 a log
 * axis dropped. */
static int keep_plottable(rp_series *s, bool logx, bool logy)
{
    int m = 0, dropped = 0;
    for (int i = 0; i < s->n; i++) {
        double x = s->x[i], y = s->y[i];
        if (!isfinite(x) || !isfinite(y))
            continue;
        if ((logx && x <= 0) || (logy && y <= 0)) {
            dropped++;
            continue;
        }
        s->x[m] = x;
        s->y[m] = y;
        m++;
    }
    s->n = m;
    return dropped;
}

/* Min/max decimation in place (see the top comment), keeping the first and
 * the last point so the x range is the data's. Bucket b starts at
 * 1 + (n-2)*b/B >= 1 + 2b, so writes never overtake reads. */
static int downsample(double *x, double *y, int n, int maxp)
{
    if (n <= maxp)
        return n;
    int buckets = (maxp - 2) / 2, m = 1;
    for (int b = 0; b < buckets; b++) {
        int i0 = 1 + (int)((int64_t)(n - 2) * b / buckets);
        int i1 = 1 + (int)((int64_t)(n - 2) * (b + 1) / buckets);
        int imin = i0, imax = i0;
        for (int i = i0 + 1; i < i1; i++) {
            if (y[i] < y[imin])
                imin = i;
            if (y[i] > y[imax])
                imax = i;
        }
        int first = imin < imax ? imin : imax, second = imin < imax ? imax : imin;
        x[m] = x[first];
        y[m] = y[first];
        m++;
        if (second != first) {
            x[m] = x[second];
            y[m] = y[second];
            m++;
        }
    }
    x[m] = x[n - 1];
    y[m] = y[n - 1];
    return m + 1;
}

/* Half a bin of a histogram series (its centres are equally spaced). */
static double half_bin(const rp_series *s)
{
    return s->n > 1 ? (s->x[s->n - 1] - s->x[0]) / (s->n - 1) / 2 : 0;
}

static bool auto_log(const rp_plot *p, bool y)
{
    double lo = INFINITY, hi = -INFINITY;
    int n = 0;
    for (int k = 0; k < p->ns; k++)
        for (int i = 0; i < p->s[k].n; i++) {
            double v = y ? p->s[k].y[i] : p->s[k].x[i];
            if (!isfinite(v) || !isfinite(y ? p->s[k].x[i] : p->s[k].y[i]))
                continue;
            if (v <= 0)
                return false;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
            n++;
        }
    return n > 0 && hi >= lo * 100;
}

int rp_render(rp_plot *p, sbuf *out)
{
    p->logx = p->xscale == RP_LOG;
    p->logy = p->yscale == RP_LOG || (p->yscale == RP_AUTO && auto_log(p, true));
    p->points = p->dropped = 0;
    p->downsampled = false;
    int maxp = p->max_points > 1 ? p->max_points : 1000;
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int k = 0; k < p->ns; k++) {
        rp_series *s = &p->s[k];
        p->dropped += keep_plottable(s, p->logx, p->logy);
        if (!p->steps) {
            int n = downsample(s->x, s->y, s->n, maxp);
            p->downsampled |= n < s->n;
            s->n = n;
        }
        double hb = p->steps ? half_bin(s) : 0;
        for (int i = 0; i < s->n; i++) {
            xlo = fmin(xlo, s->x[i] - hb);
            xhi = fmax(xhi, s->x[i] + hb);
            ylo = fmin(ylo, s->y[i]);
            yhi = fmax(yhi, s->y[i]);
        }
        p->points += s->n;
    }
    if (p->points == 0)
        return 0;

    const bool sm = p->small;
    const int W = sm ? 480 : 960, PH = sm ? 170 : 300, ml = sm ? 58 : 74, mr = 18,
              mt = sm ? 28 : 36, mb = sm ? 40 : 48, ew = sm ? 128 : 186;
    const int pw = W - ml - mr, per_row = pw / ew;
    int shown = 0;
    for (int k = 0; k < p->ns; k++)
        shown += p->s[k].n > 0;
    const int rows = (shown + per_row - 1) / per_row, lh = rows * 18 + (rows ? 6 : 0);
    const int H = mt + PH + mb + lh;
    const int fs = sm ? 10 : 11;

    axis ax, ay;
    if (p->logx)
        log_axis(&ax, xlo, xhi);
    else
        lin_axis(&ax, xlo, xhi, false, p->xint);
    bool fixed = isfinite(p->ymin) && isfinite(p->ymax) && p->ymax > p->ymin;
    if (p->steps)
        ylo = 0; /* bars stand on zero */
    if (p->logy)
        log_axis(&ay, ylo, yhi);
    else
        lin_axis(&ay, fixed ? p->ymin : ylo, fixed ? p->ymax : yhi, true, false);
    ax.p0 = ml;
    ax.p1 = ml + pw;
    ay.p0 = mt + PH;
    ay.p1 = mt;

    sb_printf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"plot-");
    sb_esc(out, p->id);
    sb_printf(out, "\" data-points=\"%d\" data-xscale=\"%s\" data-yscale=\"%s\"", p->points,
              p->logx ? "log" : "linear", p->logy ? "log" : "linear");
    if (isfinite(p->vline))
        sb_printf(out, " data-vline=\"%.15g\"", p->vline);
    sb_printf(out, " width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\"", W, H, W, H);
    sb_put(out, " font-family=\"system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, "
                "sans-serif\"");
    sb_put(out, " aria-label=\"");
    sb_esc(out, p->title);
    sb_put(out, "\">\n<title>");
    sb_esc(out, p->title);
    sb_printf(out, "</title>\n<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", W, H);
    sb_printf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"%d\" "
                   "font-weight=\"600\" fill=\"#222222\">",
              ml + pw / 2, sm ? 18 : 23, sm ? 12 : 15);
    sb_esc(out, p->title);
    sb_put(out, "</text>\n<g font-size=\"");
    sb_printf(out, "%d\" fill=\"#444444\">\n", fs);
    for (int i = 0; i < ay.nt; i++) {
        double y = ax_pos(&ay, ay.tick[i]);
        sb_printf(out, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e6e6e6\"/>"
                       "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                  ml, ml + pw, y, y, ml - 5, y + fs * 0.35, ay.label[i]);
    }
    for (int i = 0; i < ax.nt; i++) {
        double x = ax_pos(&ax, ax.tick[i]);
        sb_printf(out, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#e6e6e6\"/>"
                       "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
                  x, x, mt, mt + PH, x, mt + PH + fs + 5, ax.label[i]);
    }
    sb_put(out, "</g>\n");
    sb_printf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
                   "stroke=\"#999999\"/>\n", ml, mt, pw, PH);
    if (p->xlabel) {
        sb_printf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"%d\" "
                       "fill=\"#333333\">", ml + pw / 2, mt + PH + fs + 22, fs + 1);
        sb_esc(out, p->xlabel);
        sb_put(out, "</text>\n");
    }
    if (p->ylabel) {
        int yx = sm ? 13 : 16, yy = mt + PH / 2;
        sb_printf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"%d\" "
                       "fill=\"#333333\" transform=\"rotate(-90 %d %d)\">", yx, yy, fs + 1, yx, yy);
        sb_esc(out, p->ylabel);
        sb_put(out, "</text>\n");
    }

    /* the series, then the legend */
    int shown_i = 0;
    for (int k = 0; k < p->ns; k++) {
        rp_series *s = &p->s[k];
        if (s->n == 0)
            continue;
        const char *color = s->color ? s->color : palette[k % 10];
        bool dashed = s->dashed || (!s->color && (k / 10) % 2 == 1);
        const char *label = s->label[0] ? s->label : s->name;
        sb_put(out, "<polyline data-series=\"");
        sb_esc(out, s->name);
        sb_put(out, "\" data-values=\"");
        for (int i = 0; i < s->n; i++) {
            if (i)
                sb_put(out, " ");
            sb_num(out, s->x[i]);
            sb_put(out, ",");
            sb_num(out, s->y[i]);
        }
        sb_put(out, "\" points=\"");
        if (p->steps) { /* outline of the bars: up, across, down */
            double hb = half_bin(s), y0 = ax_pos(&ay, ay.log ? pow(10, ay.lo) : fmax(ay.lo, 0));
            sb_printf(out, "%.1f,%.1f", ax_pos(&ax, s->x[0] - hb), y0);
            for (int i = 0; i < s->n; i++) {
                double yy = ax_pos(&ay, s->y[i]);
                sb_printf(out, " %.1f,%.1f %.1f,%.1f", ax_pos(&ax, s->x[i] - hb), yy,
                          ax_pos(&ax, s->x[i] + hb), yy);
            }
            sb_printf(out, " %.1f,%.1f", ax_pos(&ax, s->x[s->n - 1] + hb), y0);
        } else {
            for (int i = 0; i < s->n; i++)
                sb_printf(out, "%s%.1f,%.1f", i ? " " : "", ax_pos(&ax, s->x[i]),
                          ax_pos(&ay, s->y[i]));
        }
        sb_printf(out, "\" fill=\"none\" stroke=\"%s\" stroke-width=\"%s\" "
                       "stroke-linejoin=\"round\"%s><title>",
                  color, sm ? "1.4" : "1.8", dashed ? " stroke-dasharray=\"6 3\"" : "");
        sb_esc(out, label);
        sb_put(out, "</title></polyline>\n");
        if (!p->steps && s->n <= 40) {
            sb_printf(out, "<g fill=\"%s\">", color);
            for (int i = 0; i < s->n; i++)
                sb_printf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.6\"/>", ax_pos(&ax, s->x[i]),
                          ax_pos(&ay, s->y[i]));
            sb_put(out, "</g>\n");
        }
        /* legend entry */
        int lx = ml + (shown_i % per_row) * ew, ly = mt + PH + mb + (shown_i / per_row) * 18 + 10;
        sb_printf(out, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" "
                       "stroke-width=\"2.5\"%s/>", lx, lx + 22, ly, ly, color,
                  dashed ? " stroke-dasharray=\"6 3\"" : "");
        char shortl[160];
        size_t maxc = (size_t)(ew - 34) / (sm ? 6 : 7);
        if (strlen(label) > maxc && maxc + 1 < sizeof shortl) {
            size_t keep = maxc - 1;
            while (keep > 0 && ((unsigned char)label[keep] & 0xC0) == 0x80)
                keep--; /* do not cut a UTF-8 sequence */
            snprintf(shortl, sizeof shortl, "%.*s\xE2\x80\xA6", (int)keep, label);
        } else
            snprintf(shortl, sizeof shortl, "%s", label);
        sb_printf(out, "<text x=\"%d\" y=\"%d\" font-size=\"%d\" fill=\"#333333\">", lx + 28,
                  ly + 4, sm ? 10 : 12);
        sb_esc(out, shortl);
        sb_put(out, "<title>");
        sb_esc(out, label);
        sb_put(out, "</title></text>\n");
        shown_i++;
    }
    double vt = p->logx && p->vline > 0 ? log10(p->vline) : p->vline;
    if (isfinite(vt) && (!p->logx || p->vline > 0) && vt >= ax.lo && vt <= ax.hi) {
        double x = ax_pos(&ax, p->vline);
        sb_printf(out, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#d62728\" "
                       "stroke-dasharray=\"4 3\"/>", x, x, mt, mt + PH);
        if (p->vline_label) {
            sb_printf(out, "<text x=\"%.1f\" y=\"%d\" font-size=\"%d\" fill=\"#d62728\">", x + 4,
                      mt + fs + 3, fs);
            sb_esc(out, p->vline_label);
            sb_put(out, "</text>");
        }
        sb_put(out, "\n");
    }
    sb_put(out, "</svg>");
    return p->points;
}
