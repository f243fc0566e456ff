/* retr_idmap.h — an open-addressing hash map from item id (int64, >= 0) to
 * a dense slot (int64), used by the retrievers to translate between the
 * caller's item ids and their own array positions.
 *
 * Not thread-safe: the owning retriever guards it with its lock.
 */
#ifndef MOEREC_INDEX_RETR_IDMAP_H
#define MOEREC_INDEX_RETR_IDMAP_H

#include <stdint.h>

typedef struct retr_idmap {
    int64_t *keys; /* (cap) item id, -1 empty, -2 deleted */
    int64_t *vals; /* (cap) slot for keys[i] */
    int64_t cap;   /* power of two */
    int64_t n;     /* live keys */
    int64_t used;  /* live + deleted markers (drives the resize) */
} retr_idmap;

int retr_idmap_init(retr_idmap *m, int64_t expected);
void retr_idmap_free(retr_idmap *m);
/* Slot of key, or -1 when absent. */
int64_t retr_idmap_get(const retr_idmap *m, int64_t key);
/* Insert or overwrite; 0 or MR_ENOMEM. key must be >= 0. */
int retr_idmap_put(retr_idmap *m, int64_t key, int64_t val);
/* 1 if removed, 0 if absent. */
int retr_idmap_del(retr_idmap *m, int64_t key);
/* Invariant checker (O(cap)): 1 when every live key is reachable from its
 * home slot, n and used match the table and the load is under 70%.
 * Mutations assert the part they touched (debug builds). */
int retr_idmap_check(const retr_idmap *m);

#endif
