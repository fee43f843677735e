/* im2col / col2im for 2-D convolution, one image at a time.
 *
 * Geometry: an image [C, H, W] seen through a kernel kh x kw with stride,
 * zero padding and dilation gives an output grid OH x OW. The column matrix
 * is [C kh kw, OH OW]: row (c, i, j) holds, for every output position
 * (oh, ow), the image value at (c, oh sh - ph + i dh, ow sw - pw + j dw), or 0
 * outside the image. A convolution is then W [O, C kh kw] @ col. */
#ifndef NB_IM2COL_H
#define NB_IM2COL_H

#include <stdint.h>

typedef struct nb__geom {
    int64_t C, H, W;    /* image */
    int64_t kh, kw, sh, sw, ph, pw, dh, dw;
    int64_t OH, OW;     /* output grid */
} nb__geom;

void nb__im2col_f32(const nb__geom *g, const float *img, float *col);
void nb__im2col_f64(const nb__geom *g, const double *img, double *col);
/* img += the columns scattered back (the adjoint of im2col) */
void nb__col2im_f32(const nb__geom *g, const float *col, float *img);
void nb__col2im_f64(const nb__geom *g, const double *col, double *img);

#endif
