/* tier_redis.h — the shared tier on Redis Cluster: a store_tier whose rows
 * live in a Redis Cluster (rcluster.h) between every replica's memory cache
 * and its RocksDB, the layering HugeCTR's parameter server used.
 *
 * Redis Cluster can lose acknowledged writes on failover, so this tier is a
 * cache and never the source of truth: a row is written through on every
 * store put and on every RocksDB read that missed the tier (with a TTL), and
 * a lookup that fails for any reason (node down, slot moving, timeout,
 * corrupt value) reports the rows as not found, so the store reads them
 * from RocksDB. A request never fails because of this tier; the counters
 * say how often it degraded.
 *
 * Keys: "<prefix>:<table key>:<row id>", the table key (store_tier_key:
 * xxh3-64 of the table's name) in 16 hex digits, the row id decimal,
 * spread over all slots; values: dim little-endian fp32, or empty for a
 * deleted item's marker (read as a miss; rows read from RocksDB are
 * written with NX, so they never replace it). Rows and markers age out
 * after ttl_s.
 */
#ifndef MOEREC_INDEX_STORE_TIER_REDIS_H
#define MOEREC_INDEX_STORE_TIER_REDIS_H

#include <stdint.h>

#include "common/error.h"
#include "index/store/rcluster.h"
#include "index/store/store_tier.h"

#define TIER_REDIS_PREFIX_MAX 32

typedef struct tier_redis tier_redis;

typedef struct tier_redis_config {
    rcluster_config cluster; /* seeds, timeouts */
    const char *prefix;      /* key prefix; NULL = "mr" */
    int ttl_s;               /* expiry of every row written; 0 = none */
} tier_redis_config;

typedef struct tier_redis_stats {
    uint64_t gets, hits, misses; /* rows asked, found, not held */
    uint64_t degraded;           /* rows asked that got no answer (read from RocksDB) */
    uint64_t corrupt;            /* values of the wrong size (ignored) */
    uint64_t puts, put_failed;   /* rows written through, and those that failed */
    uint64_t dels, del_failed;   /* rows forgotten (deleted items), and those that failed */
    rcluster_stats cluster;
} tier_redis_stats;

/* Connect (fails when no seed answers) and fill *tier with callbacks over
 * the new tier; *tier must outlive neither *out nor the store using it. */
int tier_redis_create(const tier_redis_config *cfg, tier_redis **out, store_tier *tier, mr_err *e);
void tier_redis_free(tier_redis *t);
void tier_redis_get_stats(tier_redis *t, tier_redis_stats *s);

#endif
