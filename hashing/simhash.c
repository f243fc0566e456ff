/* simhash.c — SimHash projections and bit signatures (see simhash.h).
 *
 * The batch path is one sgemm (n, d) x (d, m); the single-vector path calls
 * the same wrapper with n = 1 rather than a hand loop, so both agree except
 * where BLAS blocks the sum differently (a projection within rounding of 0).
 */
#include "hashing/simhash.h"

#include <stdlib.h>

#include "common/rng.h"
#include "common/tensor.h"

int simhash_create(simhash **out, int d, int m, uint64_t seed, mr_err *e) {
    *out = NULL;
    if (d < 1 || d > SIMHASH_MAX_DIM)
        return mr_err_set(e, MR_EINVAL, "simhash: dimension %d out of range [1, %d]", d,
                          SIMHASH_MAX_DIM);
    if (m < 1 || m > SIMHASH_MAX_BITS)
        return mr_err_set(e, MR_EINVAL, "simhash: bits %d out of range [1, %d]", m,
                          SIMHASH_MAX_BITS);
    simhash *h = calloc(1, sizeof *h);
    if (!h) return mr_err_set(e, MR_ENOMEM, "simhash: out of memory");
    h->d = d;
    h->m = m;
    h->words = (m + 63) / 64;
    h->proj = mr_floats_alloc((size_t)m * (size_t)d);
    if (!h->proj) {
        free(h);
        return mr_err_set(e, MR_ENOMEM, "simhash: out of memory for a %d x %d projection", m, d);
    }
    mr_rng rng;
    mr_rng_seed(&rng, seed);
    mr_rng_fill_normal(&rng, h->proj, (long)m * d, 1.0f);
    *out = h;
    return 0;
}

void simhash_free(simhash *h) {
    if (!h) return;
    mr_floats_free(h->proj);
    free(h);
}

void simhash_project(const simhash *h, const float *X, int n, float *p) {
    mr_sgemm(0, 1, n, h->m, h->d, 1.0f, X, h->proj, 0.0f, p);
}

void simhash_bits_from_proj(const float *p, int m, uint64_t *bits) {
    int words = (m + 63) / 64;
    for (int w = 0; w < words; w++) bits[w] = 0;
    for (int j = 0; j < m; j++)
        if (p[j] > 0.0f) bits[j >> 6] |= 1ull << (j & 63);
}

void simhash_sign(const simhash *h, const float *x, uint64_t *bits) {
    float stack[512];
    float *p = h->m <= 512 ? stack : mr_floats_alloc((size_t)h->m);
    if (!p) { /* m > 512 and no memory: fall back to per-row dots */
        for (int w = 0; w < h->words; w++) bits[w] = 0;
        for (int j = 0; j < h->m; j++)
            if (mr_dot(h->proj + (size_t)j * h->d, x, h->d) > 0.0f)
                bits[j >> 6] |= 1ull << (j & 63);
        return;
    }
    simhash_project(h, x, 1, p);
    simhash_bits_from_proj(p, h->m, bits);
    if (p != stack) mr_floats_free(p);
}

int simhash_sign_batch(const simhash *h, const float *X, int n, uint64_t *bits, float *scratch,
                       mr_err *e) {
    if (n <= 0) return n == 0 ? 0 : mr_err_set(e, MR_EINVAL, "simhash: negative batch %d", n);
    float *p = scratch ? scratch : mr_floats_alloc((size_t)n * (size_t)h->m);
    if (!p) return mr_err_set(e, MR_ENOMEM, "simhash: out of memory for a batch of %d", n);
    simhash_project(h, X, n, p);
    for (int i = 0; i < n; i++)
        simhash_bits_from_proj(p + (size_t)i * h->m, h->m, bits + (size_t)i * h->words);
    if (!scratch) mr_floats_free(p);
    return 0;
}

int simhash_hamming(const uint64_t *a, const uint64_t *b, int words) {
    int d = 0;
    for (int w = 0; w < words; w++) d += __builtin_popcountll(a[w] ^ b[w]);
    return d;
}

void simhash_to_rows(const uint64_t *bits, int m, uint64_t *rows) {
    for (int j = 0; j < m; j++) rows[j] = (bits[j >> 6] >> (j & 63)) & 1u;
}
