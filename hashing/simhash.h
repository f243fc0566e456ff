/* simhash.h — SimHash: signs of seeded Gaussian random projections.
 *
 * For unit vectors x, y at angle theta, each bit of SimHash(x) equals the
 * same bit of SimHash(y) with probability 1 - theta/pi (Charikar 2002), so
 * the Hamming distance estimates the angle and banding the bits (minhash.h's
 * lsh_index) finds cosine neighbours. The projection matrix R (m, d) is
 * drawn once from mr_rng with the caller's seed, so signatures are stable
 * across processes. SDIM (sdim.h) groups the same bits into signatures.
 * Immutable after create: safe to share between threads.
 */
#ifndef MOEREC_HASHING_SIMHASH_H
#define MOEREC_HASHING_SIMHASH_H

#include <stdint.h>

#include "common/error.h"

#define SIMHASH_MAX_BITS 4096
#define SIMHASH_MAX_DIM (1 << 20)

typedef struct simhash {
    int d;       /* input dimension */
    int m;       /* number of bits (projections) */
    int words;   /* uint64 words per signature: ceil(m / 64) */
    float *proj; /* (m, d) rows r_j ~ N(0, I) */
} simhash;

/* 1 <= m <= SIMHASH_MAX_BITS, 1 <= d <= SIMHASH_MAX_DIM. */
int simhash_create(simhash **out, int d, int m, uint64_t seed, mr_err *e);
void simhash_free(simhash *h);

/* p (n, m) = X (n, d) @ R^T, one sgemm. */
void simhash_project(const simhash *h, const float *X, int n, float *p);
/* bits (words): bit j (word j/64, bit j%64) = [r_j . x > 0]; unused high
 * bits are 0. Uses the same sgemm as the batch call with n = 1, but BLAS
 * may round a near-zero projection differently at another batch size. */
void simhash_sign(const simhash *h, const float *x, uint64_t *bits);
/* bits (n, words) for X (n, d); scratch (n, m) floats or NULL to allocate
 * (MR_ENOMEM when that fails). */
int simhash_sign_batch(const simhash *h, const float *X, int n, uint64_t *bits, float *scratch,
                       mr_err *e);
/* Signs of projections already computed: p (m) -> bits (words). */
void simhash_bits_from_proj(const float *p, int m, uint64_t *bits);
/* Number of differing bits. */
int simhash_hamming(const uint64_t *a, const uint64_t *b, int words);
/* Bits as LSH rows for lsh_index (minhash.h): rows[j] = bit j, j < m. */
void simhash_to_rows(const uint64_t *bits, int m, uint64_t *rows);

#endif
