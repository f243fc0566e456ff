/* item_log.h — the catalogue log: the last write of every item id (upsert
 * or delete) in the store's "itemlog" column family, and item deletion.
 *
 * The retrievers of a model version are built offline; the items written
 * since (UpsertItems, DeleteItems) live in the store. The log is what a
 * server replays over a freshly loaded retriever set so that those writes
 * survive a restart or a Reload: one record per item (the newest write
 * wins), so the log is bounded by the catalogue, not by the write rate.
 * Layout: key = 8-byte big-endian item id, value = 1-byte op + 8-byte
 * little-endian unix ms (docs/storage.md).
 */
#ifndef MOEREC_INDEX_ITEM_LOG_H
#define MOEREC_INDEX_ITEM_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "index/store/store.h"

typedef enum { ITEM_LOG_UPSERT = 1, ITEM_LOG_DELETE = 2 } item_log_op;

/* ts_ms 0 below: the store's write clock (now, or the update-log record's
 * time while a replica applies it: replicas then write identical rows). */
/* Record n upserts at ts_ms (one WriteBatch). Call after the item's rows
 * are written: a replay reads the item's rows as the store holds them. */
int item_log_upsert(mr_store *st, const uint64_t *ids, size_t n, int64_t ts_ms, mr_err *e);
/* Delete n items: their feature blobs, their rows in `vectors` (NULL:
 * none) and a delete record, in ONE WriteBatch; cached copies are
 * dropped. Unknown ids are deleted all the same (a no-op on their rows). */
int item_store_delete(mr_store *st, mr_emb_table *vectors, const uint64_t *ids, size_t n,
                      int64_t ts_ms, mr_err *e);
/* Visit the whole log in key order, in batches of at most `batch` records
 * (ids, ops of n records). fn returning < 0 stops the scan with it. */
typedef int (*item_log_fn)(const uint64_t *ids, const uint8_t *ops, size_t n, void *arg, mr_err *e);
int item_log_scan(mr_store *st, size_t batch, item_log_fn fn, void *arg, mr_err *e);

#endif
