/* rng.h — seeded, deterministic random numbers (xoshiro256**).
 *
 * Everything random in moerec (weight init, projections, sampling, Louvain
 * order) draws from an mr_rng seeded explicitly, so the same seed gives the
 * same model, index and clustering on every machine. Not thread-safe: one
 * generator per thread (derive with mr_rng_split).
 */
#ifndef MOEREC_COMMON_RNG_H
#define MOEREC_COMMON_RNG_H

#include <stdint.h>

typedef struct mr_rng {
    uint64_t s[4];
} mr_rng;

void mr_rng_seed(mr_rng *r, uint64_t seed);
/* A generator independent of r's future output, for another thread. */
mr_rng mr_rng_split(mr_rng *r);
uint64_t mr_rng_u64(mr_rng *r);
/* Uniform in [0, n) without modulo bias; n > 0. */
uint64_t mr_rng_below(mr_rng *r, uint64_t n);
/* Uniform in [0, 1). */
double mr_rng_uniform(mr_rng *r);
/* Standard normal (Box-Muller, both values used). */
double mr_rng_normal(mr_rng *r);
/* Fill x[0..n) with N(0, stddev^2). */
void mr_rng_fill_normal(mr_rng *r, float *x, long n, float stddev);
/* Fisher-Yates shuffle of idx[0..n). */
void mr_rng_shuffle(mr_rng *r, uint32_t *idx, long n);

/* splitmix64 step: a good 64-bit mixer for seeds and keys. */
static inline uint64_t mr_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

#endif
