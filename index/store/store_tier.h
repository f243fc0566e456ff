/* store_tier.h — the optional shared tier between a replica's memory cache
 * and its RocksDB (the HugeCTR parameter-server layering).
 *
 * The lookup path of the store is: memory cache -> shared tier -> RocksDB.
 * A tier is a table of callbacks so the store does not link a Redis client;
 * tier_redis.h is the Redis Cluster one; tests also use an in-memory tier.
 * Rows cross the tier as decoded fp32 vectors.
 * Callbacks are called from many threads at once and must be thread-safe.
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
    int (*get)(void *ctx, uint32_t table_id, uint32_t dim, const uint64_t *ids, size_t n,
               float *out, uint8_t *found, mr_err *e);
    /* Offer rows read from RocksDB (or just written); may ignore them. */
    int (*put)(void *ctx, uint32_t table_id, uint32_t dim, const uint64_t *ids, size_t n,
               const float *vecs, mr_err *e);
} store_tier;

#endif
