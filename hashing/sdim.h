/* sdim.h — SDIM signatures and the per-user bucket table (Meituan, CIKM 2022).
 *
 * A fixed seeded Gaussian matrix R (m, d) gives m sign bits per vector
 * (simhash.h); consecutive groups of tau bits form nsig = m/tau signatures,
 * each a bucket id in [0, 2^tau). A user's behaviour items are summed into
 * the bucket their signature selects, per signature, so a candidate's
 * long-term interest costs nsig bucket reads whatever the sequence length:
 *
 *   interest(q) = (1/nsig) * sum_i pool( sum_j [sig_i(s_j) == sig_i(q)] s_j )
 *
 * with pool = identity (sum), l2 normalisation (the paper / FuxiCTR), or the
 * bucket mean. tau = 0 means one signature with one bucket: every item
 * collides, so SDIM_POOL_MEAN is exactly mean pooling.
 *
 * Table layout (one contiguous little-endian block of 4-byte cells, what the
 * store keeps per user and the ranker reads):
 *
 *   float    sums  [nsig][nbuckets][d]   at cell 0
 *   uint32_t counts[nsig][nbuckets]      at cell nsig*nbuckets*d
 *
 * nbuckets = 2^tau. Both the store (issue 5) and the ranker (issue 7) must
 * go through these helpers so the layout has one definition.
 */
#ifndef MOEREC_HASHING_SDIM_H
#define MOEREC_HASHING_SDIM_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "hashing/simhash.h"

#define SDIM_MAX_TAU 16

/* The SDIM settings training and serving must agree on, defined once: the
 * store's behaviour tables (behaviour_config_init), `moerec train
 * --sdim-params` and the server config's sdim_* defaults all use these
 * (tests/server/test_config.c fails if one of them drifts). */
#define SDIM_DEFAULT_M 48       /* projections (signatures per item)       */
#define SDIM_DEFAULT_TAU 3      /* bits per signature: 2^tau buckets       */
#define SDIM_DEFAULT_SEED 23834 /* 0x5D1A, the projection seed             */
#define SDIM_DEFAULT_L_MAX 1024 /* events kept per user                    */
#define SDIM_DEFAULT_SHORT 50   /* recent events for short attention       */

/* Shape of one bucket table. */
typedef struct sdim_layout {
    int nsig;     /* signatures: m / tau, or 1 when tau = 0 */
    int nbuckets; /* 2^tau */
    int d;        /* embedding dimension */
} sdim_layout;

typedef enum {
    SDIM_POOL_SUM = 0, /* raw bucket sums */
    SDIM_POOL_L2,      /* l2-normalised bucket sums (the paper, FuxiCTR) */
    SDIM_POOL_MEAN,    /* bucket sum / bucket count */
} sdim_pool;

typedef struct sdim_hasher {
    int d, m, tau;      /* dimension, projections, bits per signature */
    sdim_layout layout; /* table shape for this hasher */
    simhash *sh;        /* (m, d) projections; NULL when tau = 0 */
} sdim_hasher;

/* tau in [0, SDIM_MAX_TAU]; tau > 0 needs m >= tau and m % tau == 0;
 * tau = 0 ignores m. Same (d, m, tau, seed) -> same signatures anywhere. */
int sdim_hasher_create(sdim_hasher **out, int d, int m, int tau, uint64_t seed, mr_err *e);
void sdim_hasher_free(sdim_hasher *h);

/* sig (nsig) for x (d). */
void sdim_signatures(const sdim_hasher *h, const float *x, uint32_t *sig);
/* sig (n, nsig) for X (n, d): one sgemm. scratch (n, m) floats or NULL. */
int sdim_signatures_batch(const sdim_hasher *h, const float *X, int n, uint32_t *sig,
                          float *scratch, mr_err *e);

/* ---- bucket table layout ---------------------------------------------------- */

int sdim_layout_init(sdim_layout *l, int d, int m, int tau, mr_err *e);
/* 4-byte cells in a table: nsig * nbuckets * (d + 1). */
size_t sdim_table_cells(const sdim_layout *l);
size_t sdim_table_bytes(const sdim_layout *l);
/* Cell offset of the d sums of (sig, bucket), and of its count. */
size_t sdim_table_sum_offset(const sdim_layout *l, int sig, uint32_t bucket);
size_t sdim_table_count_offset(const sdim_layout *l, int sig, uint32_t bucket);
float *sdim_table_sum(const sdim_layout *l, void *table, int sig, uint32_t bucket);
const float *sdim_table_sum_c(const sdim_layout *l, const void *table, int sig, uint32_t bucket);
uint32_t sdim_table_count(const sdim_layout *l, const void *table, int sig, uint32_t bucket);
/* Zero every sum and count. */
void sdim_table_clear(const sdim_layout *l, void *table);
/* Add x (d) to the bucket sig[i] of every signature i (sig: nsig values,
 * each < nbuckets, else MR_EINVAL and the table is untouched). */
int sdim_table_add(const sdim_layout *l, void *table, const uint32_t *sig, const float *x,
                   mr_err *e);
/* Remove x, added earlier with the same sig. A bucket whose count reaches 0
 * is zeroed exactly (no float drift). MR_ESTATE, table untouched, if a
 * bucket is already empty. */
int sdim_table_sub(const sdim_layout *l, void *table, const uint32_t *sig, const float *x,
                   mr_err *e);
/* out (d) = (1/nsig) * sum_i pool(bucket sig[i] of signature i); an empty
 * bucket contributes 0. qsig values must be < nbuckets (masked if not). */
void sdim_table_interest(const sdim_layout *l, const void *table, const uint32_t *qsig,
                         sdim_pool pool, float *out);
/* out (n, d) for qsig (n, nsig). */
void sdim_table_interest_batch(const sdim_layout *l, const void *table, const uint32_t *qsig, int n,
                               sdim_pool pool, float *out);

#endif
