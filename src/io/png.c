/* PNG grids of images (nb_save_image_grid): samples of a generative model,
 * filters of a first layer, a batch of inputs, as one picture.
 *
 * Grid: `cols` columns (<= 0: ceil(sqrt(N)); more than N: N), ceil(N / cols)
 * rows, 1 pixel of black between and around the images, empty cells black.
 * Pixels: t = (v - lo) / (hi - lo) * 255, then floor(t + 0.5) clamped to
 * 0..255, NaN to 0 (torchvision's save_image rounds the same way).
 *
 * File: signature, IHDR (8-bit, color type 0 gray or 2 RGB, no interlace),
 * IDAT chunks, IEND. Rows are unfiltered (filter type 0): on a grid of
 * digit-like images (black background) and on synthetic smooth RGB samples,
 * filter 1 ("sub") made the files 4-15% larger; they are small either way.
 * The zlib stream is made a row at a time into a 64 KiB buffer, which becomes
 * an IDAT chunk each time it fills (readers concatenate consecutive IDATs), so
 * memory is a row plus 64 KiB plus zlib's state (through the context's
 * allocator) whatever the size of the grid; a small grid is one IDAT.
 * Written atomically (io/atomic.h).
 *
 * Why not libpng: zlib is already a dependency (gzip IDX files), this writer
 * is about a hundred lines, and libpng would be a new dependency, with its
 * setjmp-based error handling, for one function. Speed is no concern: a grid
 * of 64 images of 28x28 (233x233 gray, 2 KB) takes 0.4 ms a call to tmpfs and
 * 1.05 ms to ext4, fsyncs included (-O2, the 2-core development machine). */
#include "core/internal.h"
#include "io/atomic.h"

#include <math.h>
#include <stdint.h>
#include <zlib.h>

#define PNG_OUT_CAP (64u << 10)
#define PNG_MAX_BYTES ((int64_t)1 << 31) /* grid bytes; also below PNG's 2^31 - 1 side */

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    return nb__heap_alloc(opaque, (size_t)items * size); /* uInt * uInt fits size_t */
}

static void z_free(voidpf opaque, voidpf p) { nb__heap_free(opaque, p); }

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* length, type, data, CRC-32 of type and data */
static nb_status put_chunk(nb_ctx *ctx, nb__afile *f, const char *type, const void *data,
                           uint32_t len)
{
    unsigned char head[8], tail[4];
    put_be32(head, len);
    memcpy(head + 4, type, 4);
    uLong crc = crc32(crc32(0L, Z_NULL, 0), head + 4, 4);
    if (len)
        crc = crc32(crc, data, len);
    put_be32(tail, (uint32_t)crc);
    nb_status st = nb__afile_write(ctx, f, head, 8);
    if (st == NB_OK)
        st = nb__afile_write(ctx, f, data, len);
    return st == NB_OK ? nb__afile_write(ctx, f, tail, 4) : st;
}

typedef struct grid {
    const nb_tensor *x;
    int64_t n, c, h, w, cols, rows, gw, gh;
    int64_t s[4]; /* strides of (image, channel, row, column); channel 0 for 3-D */
    double lo, hi;
} grid;

static unsigned char to_byte(const grid *g, double v)
{
    double t = (v - g->lo) / (g->hi - g->lo) * 255.0;
    if (!(t > 0.0)) /* NaN too */
        return 0;
    return t >= 254.5 ? 255 : (unsigned char)(t + 0.5);
}

/* Grid row y into row[1..], after its filter byte (0) in row[0]. */
static void build_row(const grid *g, int64_t y, unsigned char *row, size_t len)
{
    memset(row, 0, len);
    int64_t gr = y / (g->h + 1), iy = y % (g->h + 1) - 1, es = (int64_t)nb__esize(g->x->dtype);
    if (iy >= 0)
        for (int64_t gc = 0; gc < g->cols && gr * g->cols + gc < g->n; gc++) {
            const char *img = (const char *)g->x->data +
                              ((gr * g->cols + gc) * g->s[0] + iy * g->s[2]) * es;
            unsigned char *out = row + 1 + (gc * (g->w + 1) + 1) * g->c;
            for (int64_t ix = 0; ix < g->w; ix++)
                for (int64_t ch = 0; ch < g->c; ch++)
                    *out++ = to_byte(g, nb__load(g->x->dtype,
                                                 img + (ix * g->s[3] + ch * g->s[1]) * es));
        }
}

/* Checks arguments and fills g; NB_OK or the recorded error. */
static nb_status plan(nb_ctx *ctx, const char *path, const nb_tensor *x, int cols, double lo,
                      double hi, grid *g)
{
    if (!path || !x)
        return nb__err(ctx, NB_ERR_NULL, "save_image_grid: %s is NULL", path ? "x" : "path");
    if (!nb__is_float(x->dtype))
        return nb__err(ctx, NB_ERR_DTYPE, "save_image_grid: %s: needs f32 or f64, got %s", path,
                       nb_dtype_name(x->dtype));
    char sb[NB__SHAPE_BUF];
    if (!(x->ndim == 3 || (x->ndim == 4 && (x->shape[1] == 1 || x->shape[1] == 3))))
        return nb__err(ctx, NB_ERR_SHAPE,
                       "save_image_grid: %s: expects [N, H, W] or [N, C, H, W] with C = 1 or 3, "
                       "got %s",
                       path, nb__shape_fmt(x->ndim, x->shape, sb, sizeof sb));
    bool four = x->ndim == 4;
    *g = (grid){.x = x, .n = x->shape[0], .c = four ? x->shape[1] : 1,
                .h = x->shape[four ? 2 : 1], .w = x->shape[four ? 3 : 2], .lo = lo, .hi = hi,
                .s = {x->strides[0], four ? x->strides[1] : 0, x->strides[four ? 2 : 1],
                      x->strides[four ? 3 : 2]}};
    if (g->n <= 0 || g->h <= 0 || g->w <= 0)
        return nb__err(ctx, NB_ERR_ARG, "save_image_grid: %s: no pixels in %s", path,
                       nb__shape_fmt(x->ndim, x->shape, sb, sizeof sb));
    if (!x->data)
        return nb__err(ctx, NB_ERR_NULL, "save_image_grid: %s: tensor has no data", path);
    if (!isfinite(lo) || !isfinite(hi) || !(hi > lo))
        return nb__err(ctx, NB_ERR_ARG, "save_image_grid: %s: range [%g, %g] is not finite and "
                       "increasing", path, lo, hi);
    /* Every factor below 2^31 before each product, so none can overflow; a
     * grid of 2^31 images has more than 2^31 pixels anyway. */
    bool big = g->n >= PNG_MAX_BYTES || g->h >= PNG_MAX_BYTES || g->w >= PNG_MAX_BYTES;
    if (!big) {
        if (cols <= 0) { /* ceil(sqrt(N)), exact for any N */
            g->cols = (int64_t)ceil(sqrt((double)g->n));
            while (g->cols > 1 && (g->cols - 1) * (g->cols - 1) >= g->n)
                g->cols--;
            while (g->cols * g->cols < g->n)
                g->cols++;
        } else {
            g->cols = cols < g->n ? cols : g->n;
        }
        g->rows = (g->n + g->cols - 1) / g->cols;
        big = g->cols > (PNG_MAX_BYTES - 1) / (g->w + 1) ||
              g->rows > (PNG_MAX_BYTES - 1) / (g->h + 1);
    }
    if (!big) {
        g->gw = g->cols * (g->w + 1) + 1;
        g->gh = g->rows * (g->h + 1) + 1;
        big = g->gw * g->gh > PNG_MAX_BYTES / g->c;
    }
    if (big)
        return nb__err(ctx, NB_ERR_ARG, "save_image_grid: %s: %lld images of %lld x %lld "
                       "(%lld channels) make a grid of over 2^31 bytes", path, (long long)g->n,
                       (long long)g->h, (long long)g->w, (long long)g->c);
    return NB_OK;
}

/* The chunks after the signature and IHDR. */
static nb_status put_pixels(nb_ctx *ctx, nb__afile *f, const grid *g, const char *path)
{
    size_t len = 1 + (size_t)(g->gw * g->c);
    unsigned char *row = nb__heap_alloc(ctx, len + PNG_OUT_CAP), *out = row + len;
    if (!row)
        return nb__err(ctx, NB_ERR_NOMEM, "save_image_grid: %s: allocator failed for %zu bytes",
                       path, len + PNG_OUT_CAP);
    z_stream z = {.zalloc = z_alloc, .zfree = z_free, .opaque = ctx, .next_out = out,
                  .avail_out = PNG_OUT_CAP};
    int zr = deflateInit(&z, Z_DEFAULT_COMPRESSION);
    nb_status st = zr == Z_OK ? NB_OK
                              : nb__err(ctx, zr == Z_MEM_ERROR ? NB_ERR_NOMEM : NB_ERR_IO,
                                        "save_image_grid: %s: deflateInit failed: %s%s", path,
                                        zr == Z_MEM_ERROR ? "allocator failed: " : "",
                                        z.msg ? z.msg : zError(zr));
    for (int64_t y = 0; y < g->gh && st == NB_OK; y++) {
        build_row(g, y, row, len);
        int flush = y == g->gh - 1 ? Z_FINISH : Z_NO_FLUSH;
        z.next_in = row;
        z.avail_in = (uInt)len;
        for (;;) {
            zr = deflate(&z, flush);
            if (zr != Z_OK && zr != Z_STREAM_END) {
                st = nb__err(ctx, NB_ERR_IO, "save_image_grid: %s: deflate failed: %s", path,
                             zError(zr));
                break;
            }
            /* a full buffer, or the end of the stream, makes an IDAT */
            if (z.avail_out == 0 || zr == Z_STREAM_END) {
                st = put_chunk(ctx, f, "IDAT", out, PNG_OUT_CAP - z.avail_out);
                z.next_out = out;
                z.avail_out = PNG_OUT_CAP;
            }
            if (st != NB_OK || zr == Z_STREAM_END || (flush == Z_NO_FLUSH && z.avail_in == 0))
                break;
        }
    }
    if (st == NB_OK)
        st = put_chunk(ctx, f, "IEND", NULL, 0);
    deflateEnd(&z); /* also after a failed deflateInit: safe, returns an error */
    nb__heap_free(ctx, row);
    return st;
}

nb_status nb_save_image_grid(nb_ctx *ctx, const char *path, const nb_tensor *x, int cols,
                             double lo, double hi)
{
    if (!ctx)
        return NB_ERR_NULL;
    grid g = {0}; /* zeroed: -O2 cannot see that plan fills it whenever it returns NB_OK */
    nb_status st = plan(ctx, path, x, cols, lo, hi, &g);
    if (st != NB_OK)
        return st;
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char ihdr[13] = {0};
    put_be32(ihdr, (uint32_t)g.gw);
    put_be32(ihdr + 4, (uint32_t)g.gh);
    ihdr[8] = 8;                   /* bits per sample */
    ihdr[9] = g.c == 3 ? 2 : 0;    /* colour type: RGB or gray */
    nb__afile f;                   /* compression, filter method, interlace: 0 */
    if ((st = nb__afile_open(ctx, &f, path, "save_image_grid")) != NB_OK)
        return st;
    st = nb__afile_write(ctx, &f, sig, 8);
    if (st == NB_OK)
        st = put_chunk(ctx, &f, "IHDR", ihdr, 13);
    if (st == NB_OK)
        st = put_pixels(ctx, &f, &g, path);
    if (st == NB_OK)
        return nb__afile_commit(ctx, &f);
    nb__afile_abort(ctx, &f);
    return st;
}
