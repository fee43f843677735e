/* Winograd F(2x2, 3x3) transforms for one element type; included by
 * winograd.c once per type with T (the type) and SFX(name) defined.
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
 *   A^T = [1 1 1 0; 0 1 -1 -1]
 * Layouts: U [16][O][C] (or [16][C][O] transposed), V [16][C][Tc],
 * M and dM [16][O][Tc]; tile t = (image - n0) th tw + ty tw + tx.
 * Every loop over tiles of one row runs over tx with unit-stride stores, so
 * the compiler vectorises it; rows are staged through `st` (16 Wp elements,
 * Wp = 2 tw + 2) so padding never needs a branch in those loops. */

/* U = G g G^T for every (o, c); trans: U laid out [16][C][O]. */
static void SFX(wino_weights)(const nb__wino *p, const T *w, T *U, bool trans)
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
static void SFX(wino_dweights)(const nb__wino *p, const T *dU, T *dw)
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

/* V = B^T d B for every tile of images [n0, n1) */
static void SFX(wino_input)(const nb__wino *p, const T *x, int64_t n0, int64_t n1, int64_t Tc,
                            T *V, T *st)
{
    int64_t C = p->C, H = p->H, W = p->W, tw = p->tw, Wp = 2 * tw + 2;
    int64_t lo = p->pw, hi = p->pw + W < Wp ? p->pw + W : Wp; /* staged columns inside the image */
    int64_t CT = C * Tc;
    for (int64_t n = n0; n < n1; n++)
        for (int64_t c = 0; c < C; c++) {
            const T *img = x + (n * C + c) * H * W;
            for (int64_t ty = 0; ty < p->th; ty++) {
                for (int i = 0; i < 4; i++) {
                    T *r = st + i * Wp;
                    int64_t ih = 2 * ty - p->ph + i;
                    memset(r, 0, (size_t)Wp * sizeof(T));
                    if (ih >= 0 && ih < H && hi > lo)
                        memcpy(r + lo, img + ih * W, (size_t)(hi - lo) * sizeof(T));
                }
                T *r0 = st, *r1 = st + Wp, *r2 = st + 2 * Wp, *r3 = st + 3 * Wp;
                for (int64_t j = 0; j < Wp; j++) { /* B^T d: rows */
                    T a = r0[j], b = r1[j], c2 = r2[j], d = r3[j];
                    r0[j] = a - c2;
                    r1[j] = b + c2;
                    r2[j] = c2 - b;
                    r3[j] = b - d;
                }
                int64_t t0 = (n - n0) * p->th * tw + ty * tw + c * Tc;
                for (int k = 0; k < 4; k++) { /* (B^T d) B: columns */
                    const T *rk = st + k * Wp;
                    T *v0 = V + (4 * k + 0) * CT + t0, *v1 = V + (4 * k + 1) * CT + t0;
                    T *v2 = V + (4 * k + 2) * CT + t0, *v3 = V + (4 * k + 3) * CT + t0;
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
 * wino_input). A column 2 tx gets da0 of tile tx and da2 of tile tx - 1, so
 * each staged row is written once per tile without a carried dependence. */
static void SFX(wino_input_adj)(const nb__wino *p, const T *dV, int64_t n0, int64_t n1,
                                int64_t Tc, T *dx, T *st)
{
    int64_t C = p->C, H = p->H, W = p->W, tw = p->tw, Wp = 2 * tw + 2;
    int64_t lo = p->pw, hi = p->pw + W < Wp ? p->pw + W : Wp;
    int64_t CT = C * Tc;
    for (int64_t n = n0; n < n1; n++)
        for (int64_t c = 0; c < C; c++) {
            T *img = dx + (n * C + c) * H * W;
            for (int64_t ty = 0; ty < p->th; ty++) {
                int64_t t0 = (n - n0) * p->th * tw + ty * tw + c * Tc;
                for (int k = 0; k < 4; k++) { /* rows of dV B^T, staged */
                    T *s = st + k * Wp;
                    const T *v0 = dV + (4 * k + 0) * CT + t0, *v1 = dV + (4 * k + 1) * CT + t0;
                    const T *v2 = dV + (4 * k + 2) * CT + t0, *v3 = dV + (4 * k + 3) * CT + t0;
                    s[0] = v0[0];
                    s[1] = v1[0] - v2[0] + v3[0];
                    for (int64_t tx = 1; tx < tw; tx++) {
                        s[2 * tx] = v0[tx] - v0[tx - 1] + v1[tx - 1] + v2[tx - 1];
                        s[2 * tx + 1] = v1[tx] - v2[tx] + v3[tx] - v3[tx - 1];
                    }
                    s[2 * tw] = -v0[tw - 1] + v1[tw - 1] + v2[tw - 1];
                    s[2 * tw + 1] = -v3[tw - 1];
                }
                T *s0 = st, *s1 = st + Wp, *s2 = st + 2 * Wp, *s3 = st + 3 * Wp;
                for (int64_t j = 0; j < Wp; j++) { /* B (dV B^T): rows */
                    T a = s0[j], b = s1[j], c2 = s2[j], d = s3[j];
                    s0[j] = a;
                    s1[j] = b - c2 + d;
                    s2[j] = b + c2 - a;
                    s3[j] = -d;
                }
                for (int i = 0; i < 4; i++) {
                    int64_t ih = 2 * ty - p->ph + i;
                    if (ih < 0 || ih >= H)
                        continue;
                    const T *s = st + i * Wp;
                    T *row = img + ih * W;
                    for (int64_t j = lo; j < hi; j++)
                        row[j - lo] += s[j];
                }
            }
        }
}

/* y = A^T M A (+ b, ReLU) for every tile of images [n0, n1) */
static void SFX(wino_output)(const nb__wino *p, const T *M, int64_t n0, int64_t n1, int64_t Tc,
                             const T *b, bool relu, T *y, T *st)
{
    int64_t O = p->O, OH = p->OH, OW = p->OW, tw = p->tw, OT = O * Tc;
    T *u0 = st, *u1 = st + 4 * tw, *row = st + 8 * tw; /* u: [4][tw] each; row: [2][2 tw] */
    for (int64_t n = n0; n < n1; n++)
        for (int64_t o = 0; o < O; o++) {
            T *img = y + (n * O + o) * OH * OW;
            T bias = b ? b[o] : (T)0;
            for (int64_t ty = 0; ty < p->th; ty++) {
                int64_t t0 = (n - n0) * p->th * tw + ty * tw + o * Tc;
                for (int j = 0; j < 4; j++) { /* A^T M: rows */
                    const T *m0 = M + (0 + j) * OT + t0, *m1 = M + (4 + j) * OT + t0;
                    const T *m2 = M + (8 + j) * OT + t0, *m3 = M + (12 + j) * OT + t0;
                    for (int64_t tx = 0; tx < tw; tx++) {
                        u0[j * tw + tx] = m0[tx] + m1[tx] + m2[tx];
                        u1[j * tw + tx] = m1[tx] - m2[tx] - m3[tx];
                    }
                }
                for (int i = 0; i < 2; i++) { /* (A^T M) A: columns */
                    const T *u = i ? u1 : u0;
                    T *r = row + i * 2 * tw;
                    for (int64_t tx = 0; tx < tw; tx++) {
                        T a = u[tx] + u[tw + tx] + u[2 * tw + tx] + bias;
                        T c2 = u[tw + tx] - u[2 * tw + tx] - u[3 * tw + tx] + bias;
                        r[2 * tx] = relu && !(a > 0) ? (T)0 : a;
                        r[2 * tx + 1] = relu && !(c2 > 0) ? (T)0 : c2;
                    }
                    int64_t oh = 2 * ty + i;
                    if (oh < OH)
                        memcpy(img + oh * OW, r, (size_t)OW * sizeof(T));
                }
            }
        }
}

/* dM = A dY A^T for every tile of images [n0, n1), dY masked by y > 0 when
 * y is given; db[o] += the sum of the (masked) dY. */
static void SFX(wino_grad_output)(const nb__wino *p, const T *gy, const T *y, int64_t n0,
                                  int64_t n1, int64_t Tc, T *dM, T *db, T *st)
{
    int64_t O = p->O, OH = p->OH, OW = p->OW, tw = p->tw, OT = O * Tc;
    T *d0 = st, *d1 = st + 2 * tw;
    for (int64_t n = n0; n < n1; n++)
        for (int64_t o = 0; o < O; o++) {
            const T *g = gy + (n * O + o) * OH * OW, *yy = y ? y + (n * O + o) * OH * OW : NULL;
            T sum = 0;
            for (int64_t ty = 0; ty < p->th; ty++) {
                for (int i = 0; i < 2; i++) {
                    T *d = i ? d1 : d0;
                    int64_t oh = 2 * ty + i;
                    memset(d, 0, (size_t)(2 * tw) * sizeof(T));
                    if (oh >= OH)
                        continue;
                    const T *gr = g + oh * OW;
                    if (yy) {
                        const T *yr = yy + oh * OW;
                        for (int64_t j = 0; j < OW; j++)
                            d[j] = yr[j] > 0 ? gr[j] : (T)0;
                    } else {
                        memcpy(d, gr, (size_t)OW * sizeof(T));
                    }
                    for (int64_t j = 0; j < OW; j++)
                        sum += d[j];
                }
                int64_t t0 = (n - n0) * p->th * tw + ty * tw + o * Tc;
                /* rows of A dY: w0 = d0, w1 = d0 + d1, w2 = d0 - d1, w3 = -d1;
                 * then each row pair [e0, e1] -> [e0, e0 + e1, e0 - e1, -e1] */
                T *w0 = st + 4 * tw, *w1 = w0 + 2 * tw, *w2 = w1 + 2 * tw, *w3 = w2 + 2 * tw;
                for (int64_t j = 0; j < 2 * tw; j++) {
                    w0[j] = d0[j];
                    w1[j] = d0[j] + d1[j];
                    w2[j] = d0[j] - d1[j];
                    w3[j] = -d1[j];
                }
                for (int k = 0; k < 4; k++) {
                    const T *wk = w0 + k * 2 * tw;
                    T *m0 = dM + (4 * k + 0) * OT + t0, *m1 = dM + (4 * k + 1) * OT + t0;
                    T *m2 = dM + (4 * k + 2) * OT + t0, *m3 = dM + (4 * k + 3) * OT + t0;
                    for (int64_t tx = 0; tx < tw; tx++) {
                        T e0 = wk[2 * tx], e1 = wk[2 * tx + 1];
                        m0[tx] = e0;
                        m1[tx] = e0 + e1;
                        m2[tx] = e0 - e1;
                        m3[tx] = -e1;
                    }
                }
            }
            if (db)
                db[o] += sum;
        }
}
