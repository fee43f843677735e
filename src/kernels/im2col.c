#include "kernels/im2col.h"

#include <string.h>

/* Output columns ow whose input column ow sw - pw + j dw lies in [0, W):
 * [lo, hi). */
static void valid_range(const nb__geom *g, int64_t j, int64_t *lo, int64_t *hi)
{
    int64_t off = j * g->dw - g->pw; /* iw = ow sw + off */
    int64_t a = off >= 0 ? 0 : (-off + g->sw - 1) / g->sw;
    int64_t b = g->W - off <= 0 ? 0 : (g->W - off + g->sw - 1) / g->sw;
    if (b > g->OW)
        b = g->OW;
    if (a > b)
        a = b;
    *lo = a;
    *hi = b;
}

#define IM2COL(SUF, T)                                                                   \
    void nb__im2col_##SUF(const nb__geom *g, const T *img, T *col)                       \
    {                                                                                    \
        const int64_t OHW = g->OH * g->OW;                                               \
        for (int64_t c = 0; c < g->C; c++)                                               \
            for (int64_t i = 0; i < g->kh; i++)                                          \
                for (int64_t j = 0; j < g->kw; j++) {                                    \
                    T *row = col + ((c * g->kh + i) * g->kw + j) * OHW;                  \
                    int64_t lo, hi, off = j * g->dw - g->pw;                             \
                    valid_range(g, j, &lo, &hi);                                         \
                    for (int64_t oh = 0; oh < g->OH; oh++) {                             \
                        T *dst = row + oh * g->OW;                                       \
                        int64_t ih = oh * g->sh - g->ph + i * g->dh;                     \
                        if (ih < 0 || ih >= g->H) {                                      \
                            for (int64_t ow = 0; ow < g->OW; ow++)                       \
                                dst[ow] = 0;                                             \
                            continue;                                                    \
                        }                                                                \
                        const T *src = img + (c * g->H + ih) * g->W;                     \
                        for (int64_t ow = 0; ow < lo; ow++)                              \
                            dst[ow] = 0;                                                 \
                        /* plain loops: rows are short (28 values), a memcpy call costs  \
                         * more than the copy */                                         \
                        if (g->sw == 1) {                                                \
                            const T *restrict s1 = src + off;                            \
                            T *restrict d1 = dst;                                        \
                            for (int64_t ow = lo; ow < hi; ow++)                         \
                                d1[ow] = s1[ow];                                         \
                        } else {                                                         \
                            for (int64_t ow = lo; ow < hi; ow++)                         \
                                dst[ow] = src[ow * g->sw + off];                         \
                        }                                                                \
                        for (int64_t ow = hi; ow < g->OW; ow++)                          \
                            dst[ow] = 0;                                                 \
                    }                                                                    \
                }                                                                        \
    }                                                                                    \
    void nb__col2im_##SUF(const nb__geom *g, const T *col, T *img)                       \
    {                                                                                    \
        const int64_t OHW = g->OH * g->OW;                                               \
        for (int64_t c = 0; c < g->C; c++)                                               \
            for (int64_t i = 0; i < g->kh; i++)                                          \
                for (int64_t j = 0; j < g->kw; j++) {                                    \
                    const T *row = col + ((c * g->kh + i) * g->kw + j) * OHW;            \
                    int64_t lo, hi, off = j * g->dw - g->pw;                             \
                    valid_range(g, j, &lo, &hi);                                         \
                    for (int64_t oh = 0; oh < g->OH; oh++) {                             \
                        int64_t ih = oh * g->sh - g->ph + i * g->dh;                     \
                        if (ih < 0 || ih >= g->H)                                        \
                            continue;                                                    \
                        const T *src = row + oh * g->OW;                                 \
                        T *dst = img + (c * g->H + ih) * g->W;                           \
                        if (g->sw == 1) {                                                \
                            const T *restrict s1 = src;                                  \
                            T *restrict d1 = dst + off;                                  \
                            for (int64_t ow = lo; ow < hi; ow++)                         \
                                d1[ow] += s1[ow];                                        \
                        } else                                                           \
                            for (int64_t ow = lo; ow < hi; ow++)                         \
                                dst[ow * g->sw + off] += src[ow];                        \
                    }                                                                    \
                }                                                                        \
    }
IM2COL(f32, float)
IM2COL(f64, double)
