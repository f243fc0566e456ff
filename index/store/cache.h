/* cache.h — a sharded, byte-bounded CLOCK cache of store rows.
 *
 * Entries sit in per-shard slabs of fixed-size slots (one class per slot
 * size, no malloc per entry) under an open-addressing index; the charge
 * per entry is the slot (a 24-byte header plus the value, rounded up) plus
 * one 8-byte index slot (cache_entry_charge). Values are at most 65,535
 * bytes (a larger one is refused).
 *
 * Keys are (namespace, id): the namespace is an embedding table's id or the
 * items family. Values are byte strings (decoded fp32 rows, item blobs) with
 * the write time of the row they came from. Each shard has its own
 * reader-writer lock: hits take only the read lock and set the entry's
 * reference bit atomically, so concurrent readers never serialise; inserts
 * and evictions take the shard's write lock. Counters are exact.
 *
 * Staleness: a reader that missed reads RocksDB and then inserts; a writer
 * may have changed the row in between. Each stripe of a shard's keys (64
 * per shard) keeps an epoch bumped by every
 * cache_update/cache_erase/cache_write_end; the reader takes the epoch
 * before its database read and cache_insert refuses when it moved. The
 * epoch alone is not enough: a reader that read the old row before a
 * write's commit could insert it after the commit but before the writer's
 * cache_update, while another reader already returned the new row from the
 * database (a version going backwards). So writers bracket the database
 * write with cache_write_begin/cache_write_end, and cache_insert also
 * refuses while a write to the key's stripe is in flight. With that the cache
 * never holds a value older than one the database has served.
 */
#ifndef MOEREC_INDEX_CACHE_H
#define MOEREC_INDEX_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct mr_cache mr_cache;

#define CACHE_ANY_EPOCH UINT64_MAX

typedef struct cache_stats {
    uint64_t hits, misses, inserts, evictions;
    uint64_t bytes, capacity, entries;
    uint64_t rejected; /* inserts refused: epoch moved, write in flight, present, too large */
} cache_stats;

/* capacity_bytes counts values plus per-entry overhead (cache_entry_charge);
 * nshards is rounded up to a power of two (<= 0: 64), and raised further
 * so that no shard's share passes 512 MiB. NULL on failure. */
mr_cache *cache_create(size_t capacity_bytes, int nshards);
void cache_free(mr_cache *c);

/* Bytes an entry with a value of `len` bytes takes from the capacity: its
 * slab slot (24-byte header + len, rounded to 4 bytes up to 128, to 16 up
 * to 256, then by 1/8 steps) plus an 8-byte index slot. SIZE_MAX when len
 * exceeds 65,535 (never fits). The index itself is kept under 3/4 full, so
 * its real size is 1.33-2.67 slots an entry; the charge counts one. */
size_t cache_entry_charge(size_t len);

/* Copy the value of (ns, id) into out when present and exactly `len` bytes;
 * returns 1 (hit) or 0 (miss). *ts (may be NULL) gets the row's write time. */
int cache_get(mr_cache *c, uint32_t ns, uint64_t id, void *out, size_t len, int64_t *ts);

/* Batched fixed-size lookup of ids[0..n) in namespace ns: hit[i] = 1 and
 * out row i (len bytes) filled on a hit; ts (n, may be NULL) gets write
 * times. Keys are grouped by shard so each shard's read lock is taken once
 * per batch, and bucket and entry loads are prefetched a group at a time
 * (a batch of random keys is bound by memory latency, not by hashing).
 * Returns the number of hits. */
size_t cache_get_batch(mr_cache *c, uint32_t ns, const uint64_t *ids, size_t n, void *out,
                       size_t len, uint8_t *hit, int64_t *ts);

/* Variable-length lookup: on a hit call fn(value, len, ts, arg) under the
 * shard's read lock (fn must copy, not keep the pointer, and must not call
 * into the cache: shard locks prefer writers, so a nested lock of the same
 * shard can deadlock) and return 1. */
typedef void (*cache_visit_fn)(const void *val, size_t len, int64_t ts, void *arg);
int cache_visit(mr_cache *c, uint32_t ns, uint64_t id, cache_visit_fn fn, void *arg);

/* Epoch of the stripe holding (ns, id); pass it back to cache_insert. */
uint64_t cache_epoch(mr_cache *c, uint32_t ns, uint64_t id);
/* Insert if absent, no write to the key's stripe is in flight
 * (cache_write_begin) and the stripe's epoch still equals `epoch` (or epoch is
 * CACHE_ANY_EPOCH), evicting by CLOCK (within the value's slab class while it has entries) to
 * stay within the bound. Returns 1
 * inserted, 0 refused. Lookups are not counted. */
int cache_insert(mr_cache *c, uint32_t ns, uint64_t id, const void *val, size_t len, int64_t ts,
                 uint64_t epoch);
/* Writers: cache_write_begin(ids) before committing rows to the database,
 * cache_update/cache_erase for each row after it (success or not), then
 * cache_write_end(ids) with the same ids. Between the two, cache_insert
 * into those rows' stripes is refused. */
void cache_write_begin(mr_cache *c, uint32_t ns, const uint64_t *ids, size_t n);
void cache_write_end(mr_cache *c, uint32_t ns, const uint64_t *ids, size_t n);
/* After a write: replace the value when cached (never adds) and bump the
 * stripe's epoch so in-flight readers do not insert an older value. */
void cache_update(mr_cache *c, uint32_t ns, uint64_t id, const void *val, size_t len, int64_t ts);
void cache_erase(mr_cache *c, uint32_t ns, uint64_t id);
/* Drop everything (a secondary after catching up). */
void cache_clear(mr_cache *c);

void cache_get_stats(const mr_cache *c, cache_stats *s);
/* Evictions so far (lock-free sum of the shards' counters): > 0 once the
 * cache has been full. */
uint64_t cache_evictions(const mr_cache *c);
/* Invariant checker over every shard (O(slots), takes each shard's read
 * lock): 1 when every used slab slot is in the index exactly once under
 * its key's hash, every free slot is on its class's free list once, and
 * the charged bytes add up within capacity. Mutations
 * assert the part they touched (debug builds). */
int cache_check(mr_cache *c);

#endif
