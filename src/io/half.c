/* float16 / bfloat16 conversions (see half.h for the rounding contract) and
 * the safetensors element codecs.
 *
 * Narrowing works on the double's integer significand: with e the unbiased
 * exponent of x and E = max(e, emin) the exponent of the target's quantum
 * band, the target significand is M = round_even(x / 2^(E - mbits)). For a
 * normal result the bits are ((e + bias) << mbits) + M - 2^mbits, which lets a
 * significand that rounded up to 2^(mbits+1) carry into the exponent (and
 * into the infinity pattern past the largest finite value); for a subnormal
 * result (e < emin) the bits are M itself, and M = 2^mbits is the smallest
 * normal, again by carry. */
#include "half.h"

#include <math.h>
#include <stdio.h>

static uint16_t narrow(double x, int ebits, int mbits)
{
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    const uint16_t sign = (uint16_t)((b >> 63) << (ebits + mbits));
    const uint16_t inf = (uint16_t)(((1u << ebits) - 1u) << mbits);
    const int bias = (1 << (ebits - 1)) - 1, emin = 1 - bias, emax = bias;
    const int dexp = (int)((b >> 52) & 0x7ff);
    const uint64_t dman = b & ((UINT64_C(1) << 52) - 1);
    if (dexp == 0x7ff) /* inf or NaN (quiet, sign kept) */
        return (uint16_t)(sign | inf | (dman ? 1u << (mbits - 1) : 0u));
    if (dexp == 0) /* zero or a double subnormal: far below any target subnormal */
        return sign;
    const int e = dexp - 1023;
    if (e > emax)
        return (uint16_t)(sign | inf);
    const uint64_t sig = dman | (UINT64_C(1) << 52); /* x = sig * 2^(e-52) */
    const int E = e > emin ? e : emin;
    const int shift = E - e + 52 - mbits; /* >= 52 - mbits >= 42 */
    uint64_t m;
    if (shift > 60) {
        m = 0; /* sig < 2^53 <= a quarter of 2^shift: rounds to zero */
    } else {
        m = sig >> shift;
        const uint64_t rem = sig & ((UINT64_C(1) << shift) - 1), half = UINT64_C(1) << (shift - 1);
        if (rem > half || (rem == half && (m & 1)))
            m++;
    }
    if (e < emin)
        return (uint16_t)(sign | m);
    uint32_t bits = ((uint32_t)(e + bias) << mbits) + (uint32_t)m - (1u << mbits);
    if (bits > inf)
        bits = inf; /* cannot happen (m <= 2^(mbits+1)), kept for safety */
    return (uint16_t)(sign | bits);
}

uint16_t nb__f16_from_double(double x) { return narrow(x, 5, 10); }
uint16_t nb__bf16_from_double(double x) { return narrow(x, 8, 7); }

double nb__f16_to_double(uint16_t h)
{
    const int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    double v;
    if (exp == 0x1f)
        v = man ? NAN : INFINITY;
    else if (exp == 0)
        v = ldexp((double)man, -24);
    else
        v = ldexp((double)(man | 0x400), exp - 25);
    return (h & 0x8000) ? -v : v;
}

double nb__bf16_to_double(uint16_t h)
{
    /* bfloat16 is the top half of a float32: widening is a shift */
    const uint32_t f = (uint32_t)h << 16;
    float v;
    memcpy(&v, &f, sizeof v);
    return v;
}

/* ---- safetensors dtypes ------------------------------------------------- */
const nb__st_type nb__st_types[NB__ST_COUNT] = {
    [NB__ST_BOOL] = {"BOOL", 8, 'b', NB_DTYPE_COUNT},
    [NB__ST_F4] = {"F4", 4, 'x', NB_DTYPE_COUNT},
    [NB__ST_F6_E2M3] = {"F6_E2M3", 6, 'x', NB_DTYPE_COUNT},
    [NB__ST_F6_E3M2] = {"F6_E3M2", 6, 'x', NB_DTYPE_COUNT},
    [NB__ST_U8] = {"U8", 8, 'i', NB_U8},
    [NB__ST_I8] = {"I8", 8, 'i', NB_DTYPE_COUNT},
    [NB__ST_F8_E5M2] = {"F8_E5M2", 8, 'x', NB_DTYPE_COUNT},
    [NB__ST_F8_E4M3] = {"F8_E4M3", 8, 'x', NB_DTYPE_COUNT},
    [NB__ST_F8_E8M0] = {"F8_E8M0", 8, 'x', NB_DTYPE_COUNT},
    [NB__ST_I16] = {"I16", 16, 'i', NB_DTYPE_COUNT},
    [NB__ST_U16] = {"U16", 16, 'i', NB_DTYPE_COUNT},
    [NB__ST_F16] = {"F16", 16, 'f', NB_F16},
    [NB__ST_BF16] = {"BF16", 16, 'f', NB_BF16},
    [NB__ST_I32] = {"I32", 32, 'i', NB_I32},
    [NB__ST_U32] = {"U32", 32, 'i', NB_DTYPE_COUNT},
    [NB__ST_F32] = {"F32", 32, 'f', NB_F32},
    [NB__ST_C64] = {"C64", 64, 'x', NB_DTYPE_COUNT},
    [NB__ST_F64] = {"F64", 64, 'f', NB_F64},
    [NB__ST_I64] = {"I64", 64, 'i', NB_I64},
    [NB__ST_U64] = {"U64", 64, 'i', NB_DTYPE_COUNT},
};

int nb__st_lookup(const char *name)
{
    for (int i = 0; i < NB__ST_COUNT; i++)
        if (strcmp(nb__st_types[i].name, name) == 0)
            return i;
    return -1;
}

nb__st_dtype nb__st_from_nb(nb_dtype dt)
{
    switch (dt) {
    case NB_F64: return NB__ST_F64;
    case NB_F16: return NB__ST_F16;
    case NB_BF16: return NB__ST_BF16;
    case NB_I32: return NB__ST_I32;
    case NB_I64: return NB__ST_I64;
    case NB_U8: return NB__ST_U8;
    default: return NB__ST_F32;
    }
}

void nb__st_wr_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

uint64_t nb__st_rd_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void nb__st_put_float(nb__st_dtype ft, unsigned char *p, double v)
{
    switch (ft) {
    case NB__ST_F32: {
        float f = (float)v;
        uint32_t b;
        memcpy(&b, &f, 4);
        nb__st_wr_le(p, b, 4);
        break;
    }
    case NB__ST_F64: {
        uint64_t b;
        memcpy(&b, &v, 8);
        nb__st_wr_le(p, b, 8);
        break;
    }
    case NB__ST_F16: nb__st_wr_le(p, nb__f16_from_double(v), 2); break;
    case NB__ST_BF16: nb__st_wr_le(p, nb__bf16_from_double(v), 2); break;
    default: break;
    }
}

void nb__st_put_int(nb__st_dtype ft, unsigned char *p, int64_t v)
{
    nb__st_wr_le(p, (uint64_t)v, nb__st_types[ft].bits / 8); /* two's complement, truncated */
}

double nb__st_get_float(nb__st_dtype ft, const unsigned char *p)
{
    switch (ft) {
    case NB__ST_F32: {
        uint32_t b = (uint32_t)nb__st_rd_le(p, 4);
        float f;
        memcpy(&f, &b, 4);
        return f;
    }
    case NB__ST_F64: {
        uint64_t b = nb__st_rd_le(p, 8);
        double d;
        memcpy(&d, &b, 8);
        return d;
    }
    case NB__ST_F16: return nb__f16_to_double((uint16_t)nb__st_rd_le(p, 2));
    case NB__ST_BF16: return nb__bf16_to_double((uint16_t)nb__st_rd_le(p, 2));
    default: return 0.0;
    }
}

bool nb__st_get_int(nb__st_dtype ft, const unsigned char *p, int64_t *v, uint64_t *u)
{
    int bytes = nb__st_types[ft].bits / 8;
    uint64_t r = nb__st_rd_le(p, bytes);
    *u = r;
    switch (ft) {
    case NB__ST_I8: *v = (int8_t)(uint8_t)r; return true;
    case NB__ST_I16: *v = (int16_t)(uint16_t)r; return true;
    case NB__ST_I32: *v = (int32_t)(uint32_t)r; return true;
    case NB__ST_I64: *v = (int64_t)r; return true;
    case NB__ST_U64: *v = r > (uint64_t)INT64_MAX ? 0 : (int64_t)r; return r <= (uint64_t)INT64_MAX;
    default: *v = (int64_t)r; return true; /* BOOL U8 U16 U32 */
    }
}

static int64_t load_i64(nb_dtype dt, const void *p)
{
    switch (dt) {
    case NB_I32: return *(const int32_t *)p;
    case NB_I64: return *(const int64_t *)p;
    default: return *(const uint8_t *)p;
    }
}

static bool int_fits(nb_dtype dt, int64_t v)
{
    switch (dt) {
    case NB_I32: return v >= INT32_MIN && v <= INT32_MAX;
    case NB_I64: return true;
    default: return v >= 0 && v <= 255;
    }
}

static void store_i64(nb_dtype dt, void *p, int64_t v)
{
    switch (dt) {
    case NB_I32: *(int32_t *)p = (int32_t)v; break;
    case NB_I64: *(int64_t *)p = v; break;
    default: *(uint8_t *)p = (uint8_t)v; break;
    }
}

bool nb__host_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* ---- strided walks ------------------------------------------------------ */
void nb__cursor_init(nb__cursor *c, const nb_tensor *t)
{
    c->t = t;
    c->p = t->data;
    for (int d = 0; d < t->ndim; d++) {
        c->idx[d] = 0;
        c->step[d] = t->strides[d] * (int64_t)nb__esize(t->dtype);
    }
}

static inline void cursor_next(nb__cursor *c)
{
    for (int d = c->t->ndim - 1; d >= 0; d--) {
        c->p += c->step[d];
        if (++c->idx[d] < c->t->shape[d])
            return;
        c->p -= c->step[d] * c->t->shape[d];
        c->idx[d] = 0;
    }
}

int64_t nb__st_encode(nb__cursor *c, nb__st_dtype ft, unsigned char *out, int64_t count,
                      int64_t *bad)
{
    const nb_dtype dt = c->t->dtype;
    const size_t es = (size_t)nb__st_types[ft].bits / 8;
    const bool flt = nb__is_float(dt);
    for (int64_t i = 0; i < count; i++, cursor_next(c), out += es) {
        if (flt) {
            nb__st_put_float(ft, out, nb__load(dt, c->p));
        } else {
            int64_t v = load_i64(dt, c->p);
            if (!int_fits(nb__st_types[ft].nb, v)) {
                *bad = v;
                return i;
            }
            nb__st_put_int(ft, out, v);
        }
    }
    return -1;
}

int64_t nb__st_decode(nb__cursor *c, nb__st_dtype ft, const unsigned char *in, int64_t count,
                      int *why, char *what, size_t cap)
{
    const nb_dtype dt = c->t->dtype;
    const size_t es = (size_t)nb__st_types[ft].bits / 8;
    const char kind = nb__st_types[ft].kind;
    const bool flt = nb__is_float(dt);
    for (int64_t i = 0; i < count; i++, cursor_next(c), in += es) {
        if (kind == 'f') {
            nb__store(dt, c->p, nb__st_get_float(ft, in));
            continue;
        }
        int64_t v;
        uint64_t u;
        bool small = nb__st_get_int(ft, in, &v, &u);
        *why = kind == 'b' && u > 1 ? 2 : !flt && (!small || !int_fits(dt, v)) ? 1 : 0;
        if (*why) {
            if (small)
                snprintf(what, cap, "%lld", (long long)v);
            else
                snprintf(what, cap, "%llu", (unsigned long long)u);
            return i;
        }
        if (flt)
            nb__store(dt, c->p, small ? (double)v : (double)u);
        else
            store_i64(dt, c->p, v);
    }
    return -1;
}
