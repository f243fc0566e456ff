/* idhash_int.h — the row mapper's fields, shared by idhash.c (hash, double,
 * frequency kinds), idhash_stats.c and graphhash_mapper.c (graph kinds).
 * Internal to hashing/: other folders use hashing/idhash.h only.
 */
#ifndef MOEREC_HASHING_IDHASH_INT_H
#define MOEREC_HASHING_IDHASH_INT_H

#include "hashing/idhash.h"

struct graphhash_map;

/* Invariants: k > 0; for DOUBLE k >= 2 and seed1 != seed2; for FREQUENCY
 * nhead < k, head_ids sorted ascending and distinct, head_rows a
 * permutation of 0..nhead-1; for the graph kinds graph != NULL and every
 * cluster row < k. */
struct idhash_mapper {
    idhash_kind kind;
    uint64_t k;                        /* table size */
    uint64_t seed1, seed2;             /* hash seeds (seed2: double kinds) */
    uint64_t nhead;                    /* frequency: ids owning a row */
    uint64_t *head_ids;                /* (nhead) sorted ids */
    uint64_t *head_rows;               /* (nhead) row of head_ids[i] */
    const struct graphhash_map *graph; /* graph kinds: borrowed mappings */
    int side;                          /* graph kinds: GRAPHHASH_USERS/ITEMS */
};

/* Second row of a double kind: uniform over the k - 1 rows other than
 * first (k >= 2), so the two rows always differ. */
uint64_t idhash_second_row(uint64_t first, uint64_t id, uint64_t seed, uint64_t k);
/* Rows for the graph kinds (graphhash_mapper.c). */
int idhash_graph_rows(const idhash_mapper *m, uint64_t id, uint64_t *rows);

#endif
