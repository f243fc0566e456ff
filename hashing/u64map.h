/* u64map.h — open-addressing hash map from uint64 keys to uint32 values
 * (the LSH band buckets, GraphHash's raw-id -> dense-index pass, the SDIM
 * join's id lookups in moe/).
 *
 * Linear probing over a power-of-two table kept at most half full; keys are
 * mixed with splitmix64 first, so sequential ids spread. Deletion shifts
 * the following entries of the probe chain back (no tombstones), so an
 * emptied LSH bucket leaves no trace. Not thread-safe for writes;
 * concurrent reads are fine.
 */
#ifndef MOEREC_HASHING_U64MAP_H
#define MOEREC_HASHING_U64MAP_H

#include <stddef.h>
#include <stdint.h>

#define U64MAP_NONE UINT32_MAX /* "absent"; cannot be stored as a value */

typedef struct u64map {
    uint64_t *keys; /* (cap) */
    uint32_t *vals; /* (cap) U64MAP_NONE = empty slot */
    size_t cap;     /* power of two */
    size_t n;       /* occupied slots */
} u64map;

/* Room for about expect keys before the first growth. 0 or MR_ENOMEM. */
int u64map_init(u64map *m, size_t expect);
void u64map_free(u64map *m);
/* Value of key, or U64MAP_NONE. */
uint32_t u64map_get(const u64map *m, uint64_t key);
/* Set key -> val (val != U64MAP_NONE). 0 or MR_ENOMEM. */
int u64map_put(u64map *m, uint64_t key, uint32_t val);
/* Value of key; if absent, insert key -> val_if_absent and return that.
 * *inserted (may be NULL) says which. U64MAP_NONE when growing fails. */
uint32_t u64map_intern(u64map *m, uint64_t key, uint32_t val_if_absent, int *inserted);
/* Remove key; 1 if it was there, 0 if not. Never allocates. */
int u64map_del(u64map *m, uint64_t key);
/* Invariant checker (O(cap)): 1 when every key is reachable from its home
 * slot, n matches the occupied slots and the table is at most half full.
 * Mutations assert the part they touched (debug builds). */
int u64map_check(const u64map *m);

#endif
