/* minhash.h — MinHash signatures of id sets and an LSH banding index.
 *
 * MinHash: k independent "permutations" h_1..h_k of the id space (seeded
 * hashing); sig_i(S) = min_{x in S} h_i(x). For two sets,
 * P[sig_i(A) == sig_i(B)] = Jaccard(A, B), so the fraction of agreeing
 * positions estimates Jaccard similarity.
 *
 * LSH banding: a signature of b*r values is cut into b bands of r rows;
 * items whose band values all agree in at least one band become candidates.
 * An item of similarity s is found with probability 1 - (1 - s^r)^b (the
 * S-curve). The index works for any signature of uint64 values: MinHash
 * values, or SimHash bits (simhash_to_rows). The retrieval engineer's
 * co-occurrence retriever keys items by the MinHash of their user sets.
 *
 * Threads: a minhash is immutable (share freely). lsh_index queries may run
 * concurrently with each other; inserts and removes need the caller's
 * exclusive lock.
 */
#ifndef MOEREC_HASHING_MINHASH_H
#define MOEREC_HASHING_MINHASH_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define MINHASH_MAX_K 4096
#define MINHASH_EMPTY UINT64_MAX /* every value of an empty set's signature */

typedef struct minhash {
    int k;          /* signature length */
    uint64_t seed;  /* base seed of the id hash */
    uint64_t *salt; /* (k) per-permutation salts from the seed */
} minhash;

/* 1 <= k <= MINHASH_MAX_K. */
int minhash_create(minhash **out, int k, uint64_t seed, mr_err *e);
void minhash_free(minhash *mh);
/* sig (k) of the set ids[0..n) (duplicates are harmless; n = 0 gives all
 * MINHASH_EMPTY). */
void minhash_signature(const minhash *mh, const uint64_t *ids, size_t n, uint64_t *sig);
/* Fold more ids into an existing signature (streaming / online update). */
void minhash_update(const minhash *mh, uint64_t *sig, const uint64_t *ids, size_t n);
/* Fraction of the k positions where a and b agree: estimates Jaccard. Two
 * empty signatures give 0. */
double minhash_similarity(const uint64_t *a, const uint64_t *b, int k);

/* ---- LSH banding -------------------------------------------------------- */

typedef struct lsh_index lsh_index;

typedef struct lsh_hit {
    uint64_t key; /* the inserted item key */
    int bands;    /* how many bands matched the query (1..b) */
} lsh_hit;

/* b bands of r rows: signatures have b*r values. */
int lsh_index_create(lsh_index **out, int bands, int rows, uint64_t seed, mr_err *e);
void lsh_index_free(lsh_index *ix);
int lsh_index_bands(const lsh_index *ix);
int lsh_index_rows(const lsh_index *ix);
/* Items currently indexed. */
size_t lsh_index_size(const lsh_index *ix);
/* Index key under sig (b*r values). Inserting a key twice indexes it twice
 * (remove it first to replace). MR_ENOMEM on allocation failure. */
int lsh_index_insert(lsh_index *ix, uint64_t key, const uint64_t *sig, mr_err *e);
/* Remove key inserted with sig; MR_ENOTFOUND if it is not there. */
int lsh_index_remove(lsh_index *ix, uint64_t key, const uint64_t *sig, mr_err *e);
/* Candidates for sig: distinct keys sharing at least one band, most bands
 * first (ties: smaller key first). Writes up to cap hits and sets *ntotal
 * to the number of candidates (may exceed cap). */
int lsh_index_query(const lsh_index *ix, const uint64_t *sig, lsh_hit *hits, size_t cap,
                    size_t *ntotal, mr_err *e);
/* The S-curve 1 - (1 - s^r)^b. */
double lsh_recall_curve(double s, int bands, int rows);

#endif
