/* Winograd F(2x2, 3x3) convolution: 3x3 kernel, stride 1, dilation 1, one
 * group, any zero padding, NCHW, float32 or float64.
 *
 * Each 2x2 block of output ("tile") is computed from the 4x4 input patch
 * under it as Y = A^T [ sum_c (G g_oc G^T) . (B^T d_c B) ] A: the sum over
 * input channels is, for each of the 16 points xi of the transformed tile, a
 * matrix product M[xi] [O, T] = U[xi] [O, C] V[xi] [C, T] over all tiles T.
 * That is 16 multiplies per tile and channel pair instead of 36: 2.25x fewer
 * than im2col + GEMM (measured on the benchmark CNN's 32->64 conv on 14x14:
 * see README, Benchmarks).
 *
 * Backward is the exact adjoint of that computation, so no second tiling is
 * needed and any padding works:
 *   dM = A dY A^T per tile (dY masked by the fused ReLU; db = sums of it)
 *   dU[xi] += dM[xi] V[xi]^T,   dW = G^T dU G
 *   dV[xi]  = U[xi]^T dM[xi],   dx += B dV B^T scattered back over the
 *                               overlapping 4x4 patches
 * The transforms use only 0, +-1 and +-1/2, so float32 results stay within
 * a few ulps of the direct sum's rounding (tests/test_winograd.c).
 *
 * Work is done in chunks of whole images chosen from the geometry alone
 * (at least 64 tiles, so V and M of a chunk stay in L2); threads take ranges of
 * chunks. Forward may keep V of every chunk for the weight gradient. */
#ifndef NB_WINOGRAD_H
#define NB_WINOGRAD_H

#include "core/internal.h"

typedef struct nb__wino {
    nb_dtype dt;
    int64_t N, C, H, W, O, OH, OW, ph, pw;
    int64_t th, tw;   /* tiles per image: ceil(OH / 2) x ceil(OW / 2) */
    bool pool;        /* 2x2 max pooling fused: the output is PH x PW = OH / 2 x OW / 2 */
    int64_t PH, PW;
    int64_t chunk;    /* images per chunk */
    int64_t nchunks;
    int parts;        /* threads used: ranges of chunks */
} nb__wino;

/* Fills the plan; OH = H + 2 ph - 2, OW = W + 2 pw - 2 must be >= 1 (>= 2
 * with pool). */
void nb__wino_plan(nb__wino *p, nb_dtype dt, int64_t N, int64_t C, int64_t H, int64_t W,
                   int64_t O, int64_t ph, int64_t pw, bool pool, int nthreads);
/* Elements of V for all chunks (what forward can keep for backward). */
int64_t nb__wino_saved_elems(const nb__wino *p);
/* Scratch bytes for forward / backward (every part's buffers). */
size_t nb__wino_fwd_bytes(const nb__wino *p, bool keep_v);
size_t nb__wino_bwd_bytes(const nb__wino *p, bool have_v);

/* y = conv(x, w) + b, ReLU'd when relu, then max-pooled when p->pool
 * (codes: each window's argmax 0..3 for the backward, or NULL). saved_v:
 * NULL, or nb__wino_saved_elems() elements that receive V for the backward. */
void nb__wino_forward(const nb__wino *p, const void *x, const void *w, const void *b, bool relu,
                      void *y, int32_t *codes, void *saved_v, void *ws);
/* dx, dw, db += the gradients (each may be NULL). gy: the gradient of the
 * forward's output y. y: that output when it had the fused ReLU (dy is
 * masked by y > 0), else NULL. codes: the forward's, with pool. saved_v: V
 * from the forward, or NULL to rebuild it from x. */
void nb__wino_backward(const nb__wino *p, const void *x, const void *w, const void *y,
                       const void *gy, const int32_t *codes, const void *saved_v, void *dx,
                       void *dw, void *db, void *ws);

#endif
