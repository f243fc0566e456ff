/* retr_set_live.h — live catalogue updates on a loaded retriever set: new
 * and changed items go into (or move between) the FAISS experts they
 * belong to, deleted items leave every expert, and new events feed the
 * popularity and MinHash experts, all visible to the next router_retrieve.
 *
 * Placement of an item with a vector, in order:
 *   1. the set has an expert column (retr_set_expert_column, e.g. "genre")
 *      and the item a value for it: the FAISS expert named
 *      retr_set_expert_name(column, value), when the set has it;
 *   2. else the FAISS expert whose pilot is nearest to the vector
 *      (router_nearest_expert), for experts that split an embedding space;
 *   3. else the set's first FAISS expert (a set with one "all" expert).
 *   An item whose column value names a remote expert (kind "remote",
 *   retr_set_remote) is not placed in this set: its own server holds it
 *   (send it the write too); deletes and events leave remote experts
 *   alone for the same reason.
 * The item is removed from every other FAISS expert, so an upsert that
 * changes the column value moves it. Items without a vector stay out of
 * the FAISS experts (and leave them, if they were there).
 *
 * Thread safety: writes hold the set's live mutex (so two writers never
 * place one item in two experts); searches run beside them (the experts
 * lock themselves: retr_faiss.h, retr_pop.h, retr_minhash.h).
 */
#ifndef MOEREC_INDEX_RETR_SET_LIVE_H
#define MOEREC_INDEX_RETR_SET_LIVE_H

#include <stdint.h>

#include "common/error.h"
#include "index/retrieval/retr_set.h"

/* One item of a live upsert. */
typedef struct retr_live_item {
    int64_t id;         /* >= 0 */
    const float *vec;   /* (set dim) or NULL: no vector */
    const char *column; /* the item's value of the expert column, or NULL */
} retr_live_item;

/* The expert index an item with this vector and column value goes to, or
 * -1 when the set has no FAISS expert or the value names a remote one. */
int retr_set_place(const retr_set *s, const float *vec, const char *column);
/* Upsert n items (see the placement rule). *n_placed (may be NULL): items
 * now in a FAISS expert. */
int retr_set_upsert(retr_set *s, const retr_live_item *items, int64_t n, int64_t *n_placed,
                    mr_err *e);
/* Remove n items from every expert (FAISS, popularity, MinHash). */
int retr_set_delete(retr_set *s, const int64_t *ids, int64_t n, mr_err *e);
/* Feed n events (users, items, ts_ms unix ms) to the popularity experts
 * (decayed counts, their half-life) and the MinHash experts. */
int retr_set_add_events(retr_set *s, const int64_t *users, const int64_t *items,
                        const int64_t *ts_ms, int64_t n, mr_err *e);

#endif
