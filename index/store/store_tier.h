/* store_tier.h — the optional shared tier between a replica's memory cache
 * and its RocksDB (the HugeCTR parameter-server layering).
 *
 * The lookup path of the store is: memory cache -> shared tier -> RocksDB.
 * A tier is a table of callbacks so the store does not link a Redis client;
 * tier_redis.h is the Redis Cluster one; tests also use an in-memory tier.
 * Rows cross the tier as decoded fp32 vectors.
 * Callbacks are called from many threads at once and must be thread-safe.
 *
 * Rows are keyed by (table_key, row id). table_key is xxh3-64 of the
 * table's name (store_tier_key), the same on every replica and after a
 * restart; the store's numeric table ids are neither (they restart after
 * the highest one on open and follow each replica's own creation order), so
 * keying a shared tier by them let one table's rows answer for another's.
 * Tables with a TTL do not use the tier (it holds no write time, so it
 * could serve an expired row). A delete leaves a marker (del) that rows
 * read from RocksDB before the delete cannot replace (put with fill = 1
 * writes only where the tier has no entry), so a read racing a delete
 * cannot put the deleted row back; rows just written (fill = 0) replace
 * whatever the tier holds.
 */
#ifndef MOEREC_INDEX_STORE_TIER_H
#define MOEREC_INDEX_STORE_TIER_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct store_tier {
    void *ctx; /* passed back to every callback */
    /* Look up n rows of table `table_id` (dim floats each). For each i set
     * found[i] = 1 and fill out (n, dim) row i when the tier holds it. A
     * failing tier returns < 0; the store then falls through to RocksDB. */
    int (*get)(void *ctx, uint64_t table_key, uint32_t dim, const uint64_t *ids, size_t n,
               float *out, uint8_t *found, mr_err *e);
    /* Offer rows: fill = 1 for rows read from RocksDB (kept only where the
     * tier holds nothing for the row, not even a delete marker), 0 for rows
     * just written (they replace any entry). May ignore them. */
    int (*put)(void *ctx, uint64_t table_key, uint32_t dim, const uint64_t *ids, size_t n,
               const float *vecs, int fill, mr_err *e);
    /* Rows deleted from RocksDB (called after the delete is durable): get
     * must not find them, and a later fill must not bring them back (a
     * marker, aged out like a row); NULL when the tier only ages rows out. */
    int (*del)(void *ctx, uint64_t table_key, const uint64_t *ids, size_t n, mr_err *e);
} store_tier;

/* A table's key in every tier: xxh3-64 of its name. */
uint64_t store_tier_key(const char *table_name);

#endif
