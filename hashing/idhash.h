/* idhash.h — seeded id hashing and the row mappers that turn ids into
 * embedding-table rows.
 *
 * Every categorical value in moerec becomes one or more rows of a fixed-size
 * embedding table. The hash is xxh3-64 (libxxhash) with an explicit seed, so
 * the same id maps to the same row on every machine and every run. A row
 * mapper hides how: plain hashing trick (row = h mod k), double hashing (two
 * seeds, two distinct rows summed by the embedding bag), frequency hashing
 * (the most frequent ids own a row each, the rest are hashed into the
 * remaining rows), and the GraphHash kinds (created by graphhash.h's
 * graphhash_mapper_create*: row = the id's cluster; double_graph adds a
 * hash row; lsh: row = the SimHash/MinHash bucket an id's content fell in,
 * stored in the same kind of id -> row table). A mapper is immutable once
 * created, so any number of threads may call idhash_mapper_rows at once.
 */
#ifndef MOEREC_HASHING_IDHASH_H
#define MOEREC_HASHING_IDHASH_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* ---- hashing ------------------------------------------------------------ */

/* xxh3-64 of the 8 little-endian bytes of id. */
uint64_t idhash_u64(uint64_t id, uint64_t seed);
/* The second seed of a double-hashed table when model.json gives none
 * (one derivation for training, serving and every tool). */
static inline uint64_t idhash_seed2(uint64_t seed) { return seed * 0x9e3779b97f4a7c15ull + 1; }
/* xxh3-64 of n bytes. */
uint64_t idhash_bytes(const void *data, size_t n, uint64_t seed);
/* The checksum of every moerec file format (xxh3-64, seed 0): GraphHash
 * mappings, retriever files (router pilots, popularity, MinHash, FAISS
 * meta), SDIM state rows (low 32 bits). */
static inline uint64_t idhash_checksum(const void *data, size_t n) {
    return idhash_bytes(data, n, 0);
}
/* Hash of a (field, value) pair, e.g. ("genre", "Drama"): the field name and
 * the value are hashed as one unambiguous byte string (field, 0x1f, value),
 * so ("ab","c") and ("a","bc") differ. Either may be empty. */
uint64_t idhash_field(const char *field, size_t nfield, const char *value, size_t nvalue,
                      uint64_t seed);
/* Same with NUL-terminated strings. */
uint64_t idhash_field_str(const char *field, const char *value, uint64_t seed);
/* murmur3's 64-bit finaliser: a fast bijective mixer for values that are
 * already hashes (MinHash permutations, map slots). */
static inline uint64_t idhash_mix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    return k ^ (k >> 33);
}
/* Row in [0, k) for hash h (k > 0): h mod k. */
static inline uint64_t idhash_row(uint64_t h, uint64_t k) { return h % k; }

/* ---- row mappers ---------------------------------------------------------- */

typedef enum {
    IDHASH_HASH = 0,     /* row = h(id) mod k                                 */
    IDHASH_DOUBLE,       /* two distinct rows from two seeds, summed          */
    IDHASH_FREQUENCY,    /* top ids own rows [0, nhead), rest hashed above    */
    IDHASH_GRAPH,        /* row = cluster(id); unseen ids hashed              */
    IDHASH_DOUBLE_GRAPH, /* rows = cluster(id) and a distinct hash row, summed */
    IDHASH_LSH,          /* row = LSH bucket of the id's content; unseen hashed */
} idhash_kind;

#define IDHASH_MAX_ROWS 2 /* most rows one id maps to (double kinds) */

typedef struct idhash_mapper idhash_mapper;

/* "hash", "double", "frequency", "graph", "double_graph", "lsh". */
const char *idhash_kind_name(idhash_kind kind);
/* Parse a kind name; MR_EINVAL naming the value if unknown. */
int idhash_kind_parse(const char *name, idhash_kind *out, mr_err *e);

/* Hashing trick: k rows, one per id. */
int idhash_mapper_create_hash(idhash_mapper **out, uint64_t k, uint64_t seed, mr_err *e);
/* Double hashing: k >= 2 rows; the two rows of an id always differ (the
 * second is drawn from the k-1 rows other than the first with seed2). */
int idhash_mapper_create_double(idhash_mapper **out, uint64_t k, uint64_t seed1, uint64_t seed2,
                                mr_err *e);
/* Frequency hashing from a count pass: ids[i] was seen counts[i] times
 * (ids distinct). The nhead most frequent ids (ties: smaller id first) own
 * rows 0..nhead-1 in descending frequency; every other id hashes into
 * [nhead, k). nhead < k; nhead = (uint64_t)-1 means floor(k/2) (the paper's
 * setting). Copies what it needs from ids/counts. */
int idhash_mapper_create_frequency(idhash_mapper **out, uint64_t k, uint64_t nhead,
                                   const uint64_t *ids, const uint64_t *counts, size_t n,
                                   uint64_t seed, mr_err *e);
void idhash_mapper_free(idhash_mapper *m);
/* The count pass: distinct ids of stream[0..n) and how often each occurs,
 * in ascending id order (malloc'd; free both). 0, MR_EINVAL (n = 0) or
 * MR_ENOMEM. */
int idhash_count_ids(const uint64_t *stream, size_t n, uint64_t **ids, uint64_t **counts,
                     size_t *ndistinct, mr_err *e);
/* Frequency mapper's head: ids[j] owns row rows[j] (ids ascending); n = 0
 * for other kinds. To persist a frequency mapper, store k, seed and the
 * head; rebuild it with counts[j] = n - rows[j] and the same nhead = n. */
void idhash_mapper_head(const idhash_mapper *m, const uint64_t **ids, const uint64_t **rows,
                        uint64_t *n);

idhash_kind idhash_mapper_kind(const idhash_mapper *m);
/* Table size k: rows returned are in [0, k). */
uint64_t idhash_mapper_nrows(const idhash_mapper *m);
/* Rows per id: 1, or 2 for the double kinds. */
int idhash_mapper_rows_per_id(const idhash_mapper *m);
/* Write the rows of id into rows[0..n) (room for IDHASH_MAX_ROWS) and
 * return n. Never fails: unknown ids fall back to hashing. */
int idhash_mapper_rows(const idhash_mapper *m, uint64_t id, uint64_t *rows);

/* ---- collision statistics --------------------------------------------------- */

typedef struct idhash_stats {
    uint64_t nids;          /* distinct ids examined                         */
    uint64_t nrows;         /* table size k                                  */
    uint64_t occupied;      /* rows hit by at least one id                   */
    double occupancy;       /* occupied / k                                  */
    double shared_fraction; /* ids whose row set equals another id's         */
    double mean_load;       /* ids per occupied row (first row)              */
    uint64_t max_load;      /* most ids on one row (first row)               */
} idhash_stats;

/* Statistics of mapping the distinct ids[0..n) (duplicates are an error:
 * MR_EINVAL). For the double kinds an id "shares" only when both of its rows
 * equal another id's; occupancy counts every row used. */
int idhash_collision_stats(const idhash_mapper *m, const uint64_t *ids, size_t n, idhash_stats *out,
                           mr_err *e);

#endif
