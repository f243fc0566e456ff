/* rng.c — xoshiro256** (Blackman & Vigna), seeded through splitmix64. */
#include "rng.h"

#include <math.h>

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void mr_rng_seed(mr_rng *r, uint64_t seed) {
    uint64_t sm = seed;
    for (int i = 0; i < 4; i++) r->s[i] = mr_splitmix64(&sm);
}

uint64_t mr_rng_u64(mr_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

mr_rng mr_rng_split(mr_rng *r) {
    mr_rng out;
    mr_rng_seed(&out, mr_rng_u64(r) ^ 0x5851f42d4c957f2dULL);
    return out;
}

uint64_t mr_rng_below(mr_rng *r, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = mr_rng_u64(r);
    while (x >= limit);
    return x % n;
}

double mr_rng_uniform(mr_rng *r) { return (double)(mr_rng_u64(r) >> 11) * 0x1.0p-53; }

double mr_rng_normal(mr_rng *r) {
    /* Box-Muller; 1 - u keeps the log argument in (0, 1]. */
    double u1 = 1.0 - mr_rng_uniform(r), u2 = mr_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void mr_rng_fill_normal(mr_rng *r, float *x, long n, float stddev) {
    long i = 0;
    for (; i + 1 < n; i += 2) {
        double u1 = 1.0 - mr_rng_uniform(r), u2 = mr_rng_uniform(r);
        double rad = sqrt(-2.0 * log(u1));
        x[i] = (float)(rad * cos(2.0 * M_PI * u2)) * stddev;
        x[i + 1] = (float)(rad * sin(2.0 * M_PI * u2)) * stddev;
    }
    if (i < n) x[i] = (float)mr_rng_normal(r) * stddev;
}

void mr_rng_shuffle(mr_rng *r, uint32_t *idx, long n) {
    for (long i = n - 1; i > 0; i--) {
        long j = (long)mr_rng_below(r, (uint64_t)i + 1);
        uint32_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}
