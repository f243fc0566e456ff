/* live.h — the served retriever sets follow the store's catalogue: items
 * written with UpsertItems go into (or move between) their experts, items
 * removed with DeleteItems leave every expert, events feed the popularity
 * and MinHash experts, all visible to the next Retrieve / Recommend.
 *
 * The store is the truth (docs/retrieval.md, "Live catalogue"): a live
 * apply reads each item's vector and stored features back from the store
 * and places it by the set's expert column or nearest pilot
 * (index/retrieval/retr_set_live.h). On start and on every Reload the
 * store's catalogue log (index/store/item_log.h) is replayed over the
 * freshly loaded set, so acknowledged writes survive kill -9 and reloads.
 */
#ifndef MOEREC_SERVER_LIVE_H
#define MOEREC_SERVER_LIVE_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "server/backend.h"
#include "server/registry.h"

/* Replay the catalogue log onto m's retriever set (a registry hook; arg is
 * the mr_backend). */
int mr_live_replay(mr_model_ref *m, void *backend, mr_err *e);
/* Apply n items just written (upserts) or deleted to every current
 * version's retriever set. Caller holds the registry's live lock. */
int mr_live_upserted(mr_registry *reg, mr_backend *be, const uint64_t *ids, size_t n, mr_err *e);
int mr_live_deleted(mr_registry *reg, const uint64_t *ids, size_t n, mr_err *e);
/* Events (users, items, ts_ms) to every current version's popularity and
 * MinHash experts (no lock needed: events are not replayed on reload). */
int mr_live_events(mr_registry *reg, const int64_t *users, const int64_t *items,
                   const int64_t *ts_ms, size_t n, mr_err *e);

#endif
