/* PCG32 (M. O'Neill, "PCG: A Family of Simple Fast Space-Efficient
 * Statistically Good Algorithms for Random Number Generation", 2014): the
 * XSH-RR output over a 64-bit LCG, seeded like the reference pcg32_srandom_r.
 *
 * Why our own logarithm: normals must be the same numbers on every platform,
 * and libm's log may differ in the last bit between C libraries. nb__log uses
 * only IEEE-exact operations (+, -, *, /, frexp), so it is reproducible. */
#include "internal.h"

#include <math.h>

static const uint64_t PCG_MULT = 6364136223846793005ULL;

uint32_t nb_rng_u32(nb_rng *r)
{
    uint64_t old = r->state;
    r->state = old * PCG_MULT + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31u));
}

void nb_rng_seed(nb_rng *r, uint64_t seed, uint64_t stream)
{
    if (!r)
        return;
    r->state = 0;
    r->inc = (stream << 1u) | 1u;
    nb_rng_u32(r);
    r->state += seed;
    nb_rng_u32(r);
}

double nb_rng_uniform(nb_rng *r)
{
    uint64_t hi = nb_rng_u32(r) >> 5; /* 27 bits */
    uint64_t lo = nb_rng_u32(r) >> 6; /* 26 bits */
    return (double)((hi << 26) | lo) * (1.0 / 9007199254740992.0);
}

uint32_t nb_rng_below(nb_rng *r, uint32_t n)
{
    if (n == 0)
        return 0;
    /* reject the low values that would bias the modulo (as in pcg32_boundedrand) */
    uint32_t threshold = (uint32_t)(-n) % n;
    for (;;) {
        uint32_t x = nb_rng_u32(r);
        if (x >= threshold)
            return x % n;
    }
}

/* Natural log for x > 0 with a relative error near 1 ulp: x = m 2^e with m in
 * [sqrt(1/2), sqrt(2)), log m = 2 atanh(t), t = (m-1)/(m+1), |t| < 0.172. */
static double nb__log(double x)
{
    int e;
    double m = frexp(x, &e); /* [0.5, 1) */
    if (m < 0.70710678118654752440) {
        m *= 2.0;
        e -= 1;
    }
    double t = (m - 1.0) / (m + 1.0), t2 = t * t;
    /* atanh series to t^31: the next term is below 2^-80 of the sum */
    double s = 1.0 / 31.0;
    for (int k = 29; k >= 1; k -= 2)
        s = s * t2 + 1.0 / k;
    return 2.0 * t * s + e * 0.69314718055994530942;
}

double nb_rng_normal(nb_rng *r)
{
    /* Marsaglia polar method; the second value of each pair is dropped so the
     * generator's state is all there is to save. */
    for (;;) {
        double u = 2.0 * nb_rng_uniform(r) - 1.0;
        double v = 2.0 * nb_rng_uniform(r) - 1.0;
        double s = u * u + v * v;
        if (s > 0.0 && s < 1.0)
            return u * sqrt(-2.0 * nb__log(s) / s);
    }
}
