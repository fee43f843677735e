/* Winograd F(2x2, 3x3) transforms for one element type:
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
 *   A^T = [1 1 1 0; 0 1 -1 -1]
 * Included by winograd.c once per copy (float64, float32, float32 for AVX2)
 * with T (the type), UT (an unsigned integer of its size), SFX(name) and
 * ATTR (a target attribute or nothing) defined.
 * Layouts: U [16][O][C] (or [16][C][O] transposed), V [16][C][Tc],
 * M and dM [16][O][Tc]; tile t = (image - n0) th tw + ty tw + tx, so the
 * tiles of one plane are contiguous in each of the 16 rows.
 * Inner loops live in small functions with restrict parameters: gcc 12
 * vectorised none of them when they sat in the callers (too many alias
 * checks between the 16 rows and the staging buffer). Padding is staged
 * (a zero-bordered plane in `st`), so no inner loop branches on it. */

#ifndef NB__WINO_HOT_ONLY /* the weight transforms are cheap: one copy per type */
/* U = G g G^T for every (o, c); trans: U laid out [16][C][O]. */
static ATTR void SFX(wino_weights)(const nb__wino *p, const T *w, T *U, bool trans)
{
    int64_t O = p->O, C = p->C;
    for (int64_t o = 0; o < O; o++)
        for (int64_t c = 0; c < C; c++) {
            const T *g = w + (o * C + c) * 9;
            T r[4][3], u[4][4];
            for (int j = 0; j < 3; j++) {
                r[0][j] = g[j];
                r[1][j] = (T)0.5 * (g[j] + g[3 + j] + g[6 + j]);
                r[2][j] = (T)0.5 * (g[j] - g[3 + j] + g[6 + j]);
                r[3][j] = g[6 + j];
            }
            for (int i = 0; i < 4; i++) {
                u[i][0] = r[i][0];
                u[i][1] = (T)0.5 * (r[i][0] + r[i][1] + r[i][2]);
                u[i][2] = (T)0.5 * (r[i][0] - r[i][1] + r[i][2]);
                u[i][3] = r[i][2];
            }
            for (int xi = 0; xi < 16; xi++)
                U[xi * O * C + (trans ? c * O + o : o * C + c)] = u[xi / 4][xi % 4];
        }
}

/* dw[o][c] += G^T dU G (the adjoint of wino_weights), dU [16][O][C] */
static ATTR void SFX(wino_dweights)(const nb__wino *p, const T *dU, T *dw)
{
    int64_t O = p->O, C = p->C;
    for (int64_t o = 0; o < O; o++)
        for (int64_t c = 0; c < C; c++) {
            T d[4][4], r[3][4];
            for (int xi = 0; xi < 16; xi++)
                d[xi / 4][xi % 4] = dU[xi * O * C + o * C + c];
            for (int j = 0; j < 4; j++) {
                r[0][j] = d[0][j] + (T)0.5 * (d[1][j] + d[2][j]);
                r[1][j] = (T)0.5 * (d[1][j] - d[2][j]);
                r[2][j] = (T)0.5 * (d[1][j] + d[2][j]) + d[3][j];
            }
            T *g = dw + (o * C + c) * 9;
            for (int i = 0; i < 3; i++) {
                g[3 * i + 0] += r[i][0] + (T)0.5 * (r[i][1] + r[i][2]);
                g[3 * i + 1] += (T)0.5 * (r[i][1] - r[i][2]);
                g[3 * i + 2] += (T)0.5 * (r[i][1] + r[i][2]) + r[i][3];
            }
        }
}

#endif

/* The padded plane of one input channel, [2 th + 2, Wp] (Wp = 2 tw + 2):
 * the rows and columns every tile reads, zeros outside the image. */
static inline ATTR void SFX(stage_plane)(const nb__wino *p, const T *img, T *P)
{
    int64_t H = p->H, W = p->W, Wp = 2 * p->tw + 2, R = 2 * p->th + 2;
    int64_t lo = p->pw, hi = p->pw + W < Wp ? p->pw + W : Wp; /* staged columns inside the image */
    memset(P, 0, (size_t)(R * Wp) * sizeof(T));
    for (int64_t r = 0; r < R && hi > lo; r++) {
        int64_t ih = r - p->ph;
        if (ih >= 0 && ih < H)
            memcpy(P + r * Wp + lo, img + ih * W, (size_t)(hi - lo) * sizeof(T));
    }
}

/* B^T d over four rows d [4][n] (rows of the staged plane) -> r0..r3; in a
 * function with restrict parameters so it vectorises (the plane and the rows
 * share the staging buffer, and gcc gave up on the alias checks) */
static inline ATTR void SFX(rows_bt)(int64_t n, const T *restrict d, T *restrict r0,
                                     T *restrict r1, T *restrict r2, T *restrict r3)
{
    const T *d0 = d, *d1 = d + n, *d2 = d + 2 * n, *d3 = d + 3 * n;
    for (int64_t j = 0; j < n; j++) {
        r0[j] = d0[j] - d2[j];
        r1[j] = d1[j] + d2[j];
        r2[j] = d2[j] - d1[j];
        r3[j] = d1[j] - d3[j];
    }
}

/* q [4][n] += B s over four rows s [4][n] (the adjoint of rows_bt) */
static inline ATTR void SFX(rows_b_add)(int64_t n, const T *restrict s, T *restrict q)
{
    const T *s0 = s, *s1 = s + n, *s2 = s + 2 * n, *s3 = s + 3 * n;
    for (int64_t j = 0; j < n; j++) {
        q[j] += s0[j];
        q[n + j] += s1[j] - s2[j] + s3[j];
        q[2 * n + j] += s1[j] + s2[j] - s0[j];
        q[3 * n + j] -= s3[j];
    }
}

/* V = B^T d B for every tile of images [n0, n1). Each channel's plane is
 * staged once; then per row of tiles: B^T over four rows, B over columns.
 * st: the plane and four rows. */
static ATTR void SFX(wino_input)(const nb__wino *p, const T *x, int64_t n0, int64_t n1, int64_t Tc,
                                 T *V, T *st)
{
    int64_t C = p->C, tw = p->tw, Wp = 2 * tw + 2, R = 2 * p->th + 2;
    int64_t CT = C * Tc;
    T *P = st, *r0 = st + R * Wp, *r1 = r0 + Wp, *r2 = r1 + Wp, *r3 = r2 + Wp;
    for (int64_t n = n0; n < n1; n++)
        for (int64_t c = 0; c < C; c++) {
            SFX(stage_plane)(p, x + (n * C + c) * p->H * p->W, P);
            for (int64_t ty = 0; ty < p->th; ty++) {
                SFX(rows_bt)(Wp, P + 2 * ty * Wp, r0, r1, r2, r3);
                int64_t t0 = (n - n0) * p->th * tw + ty * tw + c * Tc;
                for (int k = 0; k < 4; k++) { /* (B^T d) B: columns */
                    const T *rk = r0 + k * Wp;
                    T *v0 = V + (4 * k + 0) * CT + t0, *v1 = V + (4 * k + 1) * CT + t0;
                    T *v2 = V + (4 * k + 2) * CT + t0, *v3 = V + (4 * k + 3) * CT + t0;
#ifdef NB__WINO_HROWS /* rows of at most 7 tiles but the last: one vector (winograd.c) */
                    if (tw <= 7 && ty * tw + 8 <= p->th * tw) { /* the spill stays in the plane */
                        hrow_in_avx2(rk, tw, v0, v1, v2, v3);
                        continue;
                    }
#endif
                    for (int64_t tx = 0; tx < tw; tx++) {
                        const T *a = rk + 2 * tx;
                        v0[tx] = a[0] - a[2];
                        v1[tx] = a[1] + a[2];
                        v2[tx] = a[2] - a[1];
                        v3[tx] = a[1] - a[3];
                    }
                }
            }
        }
}

/* dx += B dV B^T scattered over the overlapping 4x4 patches (the adjoint of
 * wino_input), through a staged plane that is added to dx once. A column
 * 2 tx gets da0 of tile tx and da2 of tile tx - 1, so each staged row is
 * written once per tile without a carried dependence. st: the plane and
 * four rows. */
static ATTR void SFX(wino_input_adj)(const nb__wino *p, const T *dV, int64_t n0, int64_t n1,
                                     int64_t Tc, T *dx, T *st)
{
    int64_t C = p->C, H = p->H, W = p->W, tw = p->tw, Wp = 2 * tw + 2, R = 2 * p->th + 2;
    int64_t lo = p->pw, hi = p->pw + W < Wp ? p->pw + W : Wp;
    int64_t CT = C * Tc;
    T *P = st, *s0 = st + R * Wp; /* the plane, then four rows */
    for (int64_t n = n0; n < n1; n++)
        for (int64_t c = 0; c < C; c++) {
            memset(P, 0, (size_t)(R * Wp) * sizeof(T));
            for (int64_t ty = 0; ty < p->th; ty++) {
                int64_t t0 = (n - n0) * p->th * tw + ty * tw + c * Tc;
                for (int k = 0; k < 4; k++) { /* rows of dV B^T */
                    T *s = s0 + k * Wp;
                    const T *v0 = dV + (4 * k + 0) * CT + t0, *v1 = dV + (4 * k + 1) * CT + t0;
                    const T *v2 = dV + (4 * k + 2) * CT + t0, *v3 = dV + (4 * k + 3) * CT + t0;
#ifdef NB__WINO_HROWS
                    if (tw <= 7) {
                        hrow_adj_avx2(v0, v1, v2, v3, tw, s);
                        continue;
                    }
#endif
                    s[0] = v0[0];
                    s[1] = v1[0] - v2[0] + v3[0];
                    for (int64_t tx = 1; tx < tw; tx++) {
                        s[2 * tx] = v0[tx] - v0[tx - 1] + v1[tx - 1] + v2[tx - 1];
                        s[2 * tx + 1] = v1[tx] - v2[tx] + v3[tx] - v3[tx - 1];
                    }
                    s[2 * tw] = -v0[tw - 1] + v1[tw - 1] + v2[tw - 1];
                    s[2 * tw + 1] = -v3[tw - 1];
                }
                SFX(rows_b_add)(Wp, s0, P + 2 * ty * Wp);
            }
            T *img = dx + (n * C + c) * H * W;
            for (int64_t r = 0; r < R; r++) {
                int64_t ih = r - p->ph;
                if (ih < 0 || ih >= H)
                    continue;
                const T *q = P + r * Wp + lo;
                T *row = img + ih * W;
                for (int64_t j = 0; j < hi - lo; j++)
                    row[j] += q[j];
            }
        }
}

/* The 16 rows m + xi OT of L tiles -> Y_ij. In a function of its own so
 * that the restrict parameters let the loop vectorise without alias checks. */
static inline ATTR void SFX(output_tiles)(int64_t L, int64_t OT, const T *restrict m, T bias, bool relu,
                                          T *restrict Y00, T *restrict Y01, T *restrict Y10,
                                          T *restrict Y11)
{
    for (int64_t t = 0; t < L; t++) {
        const T *q = m + t;
        T a0 = q[0] + q[4 * OT] + q[8 * OT], a1 = q[OT] + q[5 * OT] + q[9 * OT]; /* rows of A^T M */
        T a2 = q[2 * OT] + q[6 * OT] + q[10 * OT], a3 = q[3 * OT] + q[7 * OT] + q[11 * OT];
        T c0 = q[4 * OT] - q[8 * OT] - q[12 * OT], c1 = q[5 * OT] - q[9 * OT] - q[13 * OT];
        T c2 = q[6 * OT] - q[10 * OT] - q[14 * OT], c3 = q[7 * OT] - q[11 * OT] - q[15 * OT];
        T y00 = a0 + a1 + a2 + bias, y01 = a1 - a2 - a3 + bias;
        T y10 = c0 + c1 + c2 + bias, y11 = c1 - c2 - c3 + bias;
        Y00[t] = y00;
        Y01[t] = y01;
        Y10[t] = y10;
        Y11[t] = y11;
    }
    if (relu) /* a pass of its own: inside the loop above it kept gcc 12 from vectorising */
        for (int64_t t = 0; t < L; t++) {
            Y00[t] = (Y00[t] > 0) ? Y00[t] : (T)0;
            Y01[t] = (Y01[t] > 0) ? Y01[t] : (T)0;
            Y10[t] = (Y10[t] > 0) ? Y10[t] : (T)0;
            Y11[t] = (Y11[t] > 0) ? Y11[t] : (T)0;
        }
}

/* D_ij (4 planes of L tiles) -> the 16 rows of dM = A dY A^T: rows of A dY
 * are (d0j), (d0j + d1j), (d0j - d1j), (-d1j), then each row [e0, e1] ->
 * [e0, e0 + e1, e0 - e1, -e1]. Restrict parameters, as above. */
static inline ATTR void SFX(grad_output_tiles)(int64_t L, const T *restrict D, T *restrict q0,
    T *restrict q1, T *restrict q2, T *restrict q3, T *restrict q4, T *restrict q5, T *restrict q6,
    T *restrict q7, T *restrict q8, T *restrict q9, T *restrict q10, T *restrict q11,
    T *restrict q12, T *restrict q13, T *restrict q14, T *restrict q15)
{
    for (int64_t t = 0; t < L; t++) {
        T a0 = D[t], a1 = D[L + t], b0 = D[2 * L + t], b1 = D[3 * L + t];
        T s0 = a0 + b0, s1 = a1 + b1, d0 = a0 - b0, d1 = a1 - b1;
        q0[t] = a0;
        q1[t] = a0 + a1;
        q2[t] = a0 - a1;
        q3[t] = -a1;
        q4[t] = s0;
        q5[t] = s0 + s1;
        q6[t] = s0 - s1;
        q7[t] = -s1;
        q8[t] = d0;
        q9[t] = d0 + d1;
        q10[t] = d0 - d1;
        q11[t] = -d1;
        q12[t] = -b0;
        q13[t] = -b0 - b1;
        q14[t] = b1 - b0;
        q15[t] = b1;
    }
}

static inline ATTR UT SFX(bits)(T x)
{
    UT u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static inline ATTR T SFX(value)(UT u)
{
    T x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* a[k] = g[2 k], b[k] = g[2 k + 1] (0 past n), each kept where y > 0 when
 * y is given: one row of dY split by column parity. */
static inline ATTR void SFX(split_row)(int64_t n, const T *restrict g, const T *restrict y,
                                       T *restrict a, T *restrict b)
{
    int64_t h = n / 2;
    if (y) {
        for (int64_t k = 0; k < h; k++) {
            a[k] = SFX(value)(SFX(bits)(g[2 * k]) & ((UT)0 - (UT)(y[2 * k] > 0)));
            b[k] = SFX(value)(SFX(bits)(g[2 * k + 1]) & ((UT)0 - (UT)(y[2 * k + 1] > 0)));
        }
        if (n & 1) {
            a[h] = (y[n - 1] > 0) ? g[n - 1] : (T)0;
            b[h] = 0;
        }
    } else {
        for (int64_t k = 0; k < h; k++) {
            a[k] = g[2 * k];
            b[k] = g[2 * k + 1];
        }
        if (n & 1) {
            a[h] = g[n - 1];
            b[h] = 0;
        }
    }
}

/* row[2 k] = a[k], row[2 k + 1] = b[k] for the n elements of the row */
static inline ATTR void SFX(merge_row)(int64_t n, const T *restrict a, const T *restrict b,
                                       T *restrict row)
{
    for (int64_t k = 0; k < n / 2; k++) {
        row[2 * k] = a[k];
        row[2 * k + 1] = b[k];
    }
    if (n & 1)
        row[n - 1] = a[n / 2];
}

/* One row of 2x2 max pooling over the tiles' outputs: out[k] = the max of
 * the four (first one on ties, NaN wins: torch's rule in row-major window
 * order), code[k] = its place 0..3 (or none when code is NULL). */
static inline ATTR void SFX(pool_row)(int64_t n, const T *restrict y00, const T *restrict y01,
                                      const T *restrict y10, const T *restrict y11, T *restrict out,
                                      int32_t *restrict code)
{
    if (!code) {
        for (int64_t k = 0; k < n; k++) {
            T a = y00[k], v1 = y01[k], v2 = y10[k], v3 = y11[k];
            a = ((v1 > a) | (v1 != v1)) ? v1 : a;
            a = ((v2 > a) | (v2 != v2)) ? v2 : a;
            out[k] = ((v3 > a) | (v3 != v3)) ? v3 : a;
        }
        return;
    }
    for (int64_t k = 0; k < n; k++) {
        T a = y00[k], v1 = y01[k], v2 = y10[k], v3 = y11[k];
        int32_t c = 0;
        bool t1 = (v1 > a) | (v1 != v1);
        a = t1 ? v1 : a;
        c = t1 ? 1 : c;
        bool t2 = (v2 > a) | (v2 != v2);
        a = t2 ? v2 : a;
        c = t2 ? 2 : c;
        bool t3 = (v3 > a) | (v3 != v3);
        a = t3 ? v3 : a;
        c = t3 ? 3 : c;
        out[k] = a;
        code[k] = c;
    }
}

/* The adjoint of pool_row (and of the ReLU before it, when y is given):
 * d_ij[k] = g[k] where code[k] = ij and y[k] > 0, else 0. */
static inline ATTR void SFX(unpool_row)(int64_t n, const T *restrict g, const T *restrict y,
                                        const int32_t *restrict code, T *restrict d00,
                                        T *restrict d01, T *restrict d10, T *restrict d11)
{
    for (int64_t k = 0; k < n; k++) { /* bit masks: the select form did not vectorise */
        UT v = SFX(bits)(g[k]) & ((UT)0 - (UT)(!y || y[k] > 0));
        int32_t c = code[k];
        d00[k] = SFX(value)(v & ((UT)0 - (UT)(c == 0)));
        d01[k] = SFX(value)(v & ((UT)0 - (UT)(c == 1)));
        d10[k] = SFX(value)(v & ((UT)0 - (UT)(c == 2)));
        d11[k] = SFX(value)(v & ((UT)0 - (UT)(c == 3)));
    }
}

/* y = A^T M A (+ b, ReLU) for every tile of images [n0, n1). The tiles of
 * one image plane are contiguous in each of M's 16 rows, so the transform
 * runs over all of them at once (Y_ij: the output at (2 ty + i, 2 tx + j)),
 * then Y is interleaved into the plane's rows, or, with the fused pooling,
 * each tile is one pooling window: y gets its max and codes its place.
 * st: 4 th tw elements. */
static ATTR void SFX(wino_output)(const nb__wino *p, const T *M, int64_t n0, int64_t n1,
                                  int64_t Tc, const T *b, bool relu, T *y, int32_t *codes,
                                  T *st)
{
    int64_t O = p->O, OH = p->OH, OW = p->OW, tw = p->tw, L = p->th * tw, OT = O * Tc;
    T *Y00 = st, *Y01 = st + L, *Y10 = st + 2 * L, *Y11 = st + 3 * L;
    for (int64_t n = n0; n < n1; n++)
        for (int64_t o = 0; o < O; o++) {
            SFX(output_tiles)(L, OT, M + o * Tc + (n - n0) * L, b ? b[o] : (T)0, relu, Y00, Y01, Y10, Y11);
            if (p->pool) {
                int64_t PW = p->PW, plane = (n * O + o) * p->PH * PW;
                bool whole = PW == tw && p->PH == p->th; /* even sizes: one loop over the plane */
                for (int64_t ty = 0; ty < (whole ? 1 : p->PH); ty++)
                    SFX(pool_row)(whole ? L : PW, Y00 + ty * tw, Y01 + ty * tw, Y10 + ty * tw,
                                  Y11 + ty * tw, y + plane + ty * PW,
                                  codes ? codes + plane + ty * PW : NULL);
                continue;
            }
            T *img = y + (n * O + o) * OH * OW;
            for (int64_t ty = 0; ty < p->th; ty++)
                for (int i = 0; i < 2 && 2 * ty + i < OH; i++) {
                    SFX(merge_row)(OW, (i ? Y10 : Y00) + ty * tw, (i ? Y11 : Y01) + ty * tw,
                                   img + (2 * ty + i) * OW);
                }
        }
}

/* dM = A dY A^T for every tile of images [n0, n1), dY masked by y > 0 when
 * y is given; db[o] += the sum of the (masked) dY. The plane is first split
 * into D_ij (dY at (2 ty + i, 2 tx + j), 0 past the edge), so the transform
 * runs over all tiles of the plane at once. st: 4 th tw elements. */
static ATTR void SFX(wino_grad_output)(const nb__wino *p, const T *gy, const T *y,
                                       const int32_t *codes, int64_t n0, int64_t n1,
                                       int64_t Tc, T *dM, T *db, T *st)
{
    int64_t O = p->O, OH = p->OH, OW = p->OW, tw = p->tw, L = p->th * tw, OT = O * Tc;
    T *D00 = st, *D01 = st + L, *D10 = st + 2 * L, *D11 = st + 3 * L;
    for (int64_t n = n0; n < n1; n++)
        for (int64_t o = 0; o < O; o++) {
            if (p->pool) { /* dY is the pooled gradient, routed to each window's max */
                int64_t PW = p->PW, plane = (n * O + o) * p->PH * PW;
                if (p->PH < p->th || PW < tw) /* odd sizes: the last tiles get nothing */
                    memset(st, 0, (size_t)(4 * L) * sizeof(T));
                bool whole = PW == tw && p->PH == p->th;
                for (int64_t ty = 0; ty < (whole ? 1 : p->PH); ty++)
                    SFX(unpool_row)(whole ? L : PW, gy + plane + ty * PW,
                                    y ? y + plane + ty * PW : NULL, codes + plane + ty * PW,
                                    D00 + ty * tw, D01 + ty * tw, D10 + ty * tw, D11 + ty * tw);
            } else {
                const T *g = gy + (n * O + o) * OH * OW, *yy = y ? y + (n * O + o) * OH * OW : NULL;
                for (int64_t ty = 0; ty < p->th; ty++)
                    for (int i = 0; i < 2; i++) {
                        T *da = (i ? D10 : D00) + ty * tw, *dbb = (i ? D11 : D01) + ty * tw;
                        int64_t oh = 2 * ty + i;
                        if (oh >= OH) {
                            memset(da, 0, (size_t)tw * sizeof(T));
                            memset(dbb, 0, (size_t)tw * sizeof(T));
                            continue;
                        }
                        SFX(split_row)(OW, g + oh * OW, yy ? yy + oh * OW : NULL, da, dbb);
                    }
            }
            if (db) { /* in 16 lanes, so the sum vectorises; the lanes in a fixed order */
                T lane[16] = {0};
                int64_t i = 0;
                for (; i + 16 <= 4 * L; i += 16)
                    for (int l = 0; l < 16; l++)
                        lane[l] += st[i + l];
                T sum = 0;
                for (; i < 4 * L; i++)
                    sum += st[i];
                for (int l = 0; l < 16; l++)
                    sum += lane[l];
                db[o] += sum;
            }
            T *m = dM + o * Tc + (n - n0) * L;
            SFX(grad_output_tiles)(L, st, m, m + OT, m + 2 * OT, m + 3 * OT, m + 4 * OT, m + 5 * OT,
                                   m + 6 * OT, m + 7 * OT, m + 8 * OT, m + 9 * OT, m + 10 * OT,
                                   m + 11 * OT, m + 12 * OT, m + 13 * OT, m + 14 * OT, m + 15 * OT);
        }
}
