/* minhash.c — MinHash signatures (see minhash.h).
 *
 * One xxh3 per id (seeded), then k cheap remixes with per-permutation salts
 * (murmur3's 64-bit finaliser) instead of k xxh3 calls: a set of n ids costs
 * n hashes + n*k multiplies. Distinct ids collide only if their xxh3 values
 * collide (2^-64), and the finaliser is a bijection, so each h_i is a
 * pseudo-random permutation of the hashed ids.
 */
#include "hashing/minhash.h"

#include <stdlib.h>

#include "common/rng.h"
#include "hashing/idhash.h"

int minhash_create(minhash **out, int k, uint64_t seed, mr_err *e) {
    *out = NULL;
    if (k < 1 || k > MINHASH_MAX_K)
        return mr_err_set(e, MR_EINVAL, "minhash: k = %d out of range [1, %d]", k, MINHASH_MAX_K);
    minhash *mh = calloc(1, sizeof *mh);
    if (!mh || !(mh->salt = malloc((size_t)k * sizeof *mh->salt))) {
        free(mh);
        return mr_err_set(e, MR_ENOMEM, "minhash: out of memory");
    }
    mh->k = k;
    mh->seed = seed;
    uint64_t st = seed ^ 0x6d696e68617368ULL; /* "minhash" */
    for (int i = 0; i < k; i++) mh->salt[i] = mr_splitmix64(&st);
    *out = mh;
    return 0;
}

void minhash_free(minhash *mh) {
    if (!mh) return;
    free(mh->salt);
    free(mh);
}

void minhash_update(const minhash *mh, uint64_t *sig, const uint64_t *ids, size_t n) {
    for (size_t j = 0; j < n; j++) {
        uint64_t h = idhash_u64(ids[j], mh->seed);
        for (int i = 0; i < mh->k; i++) {
            uint64_t v = idhash_mix64(h ^ mh->salt[i]);
            if (v == MINHASH_EMPTY) v--; /* keep EMPTY meaning "no element" */
            if (v < sig[i]) sig[i] = v;
        }
    }
}

void minhash_signature(const minhash *mh, const uint64_t *ids, size_t n, uint64_t *sig) {
    for (int i = 0; i < mh->k; i++) sig[i] = MINHASH_EMPTY;
    minhash_update(mh, sig, ids, n);
}

double minhash_similarity(const uint64_t *a, const uint64_t *b, int k) {
    int agree = 0;
    for (int i = 0; i < k; i++) agree += a[i] == b[i] && a[i] != MINHASH_EMPTY;
    return k > 0 ? (double)agree / k : 0.0;
}
