/* item_log.c — the catalogue log and item deletion (see item_log.h).
 *
 * A delete is one WriteBatch over three families (items, the vector
 * table, itemlog), so a crash leaves either the whole delete or none of
 * it. An upsert's record is written after the item's own rows; a crash in
 * between leaves rows without a record, which only means the item is not
 * replayed into the retrievers (it was never acknowledged either).
 */
#include "index/store/item_log.h"

#include <stdlib.h>
#include <string.h>

#include "index/store/emb_codec.h"
#include "index/store/store_int.h"

#define ITEM_LOG_VALUE 9 /* op + ts */

static int item_log_check(const mr_store *st, const uint64_t *ids, size_t n, const char *what,
                          mr_err *e) {
    int rc = store_check_writable(st, e);
    if (rc) return rc;
    if (n > STORE_MAX_BATCH)
        return mr_err_set(e, MR_EINVAL, "%s: batch of %zu rows exceeds %u", what, n,
                          STORE_MAX_BATCH);
    if (n && !ids) return mr_err_set(e, MR_EINVAL, "%s: ids are NULL", what);
    return 0;
}

/* ts 0: the store's write clock (the update-log record's time while a
 * replica applies one, so every replica writes the same bytes). */
static void item_log_value(uint8_t op, int64_t ts, uint8_t v[ITEM_LOG_VALUE]) {
    if (ts == 0) ts = store_write_clock_ms();
    v[0] = op;
    uint64_t u = (uint64_t)ts;
    for (int b = 0; b < 8; b++) v[1 + b] = (uint8_t)(u >> (8 * b));
}

int item_log_upsert(mr_store *st, const uint64_t *ids, size_t n, int64_t ts_ms, mr_err *e) {
    int rc = item_log_check(st, ids, n, "item log", e);
    if (rc || n == 0) return rc;
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    if (!wb) return mr_err_set(e, MR_ENOMEM, "item log: out of memory");
    uint8_t k[8], v[ITEM_LOG_VALUE];
    item_log_value(ITEM_LOG_UPSERT, ts_ms, v);
    for (size_t i = 0; i < n; i++) {
        emb_key_encode(ids[i], k);
        rocksdb_writebatch_put_cf(wb, st->cf[STORE_CF_ITEMLOG], (const char *)k, 8, (const char *)v,
                                  sizeof v);
    }
    rc = store_write(st, wb, e);
    rocksdb_writebatch_destroy(wb);
    return rc;
}

int item_store_delete(mr_store *st, mr_emb_table *vectors, const uint64_t *ids, size_t n,
                      int64_t ts_ms, mr_err *e) {
    int rc = item_log_check(st, ids, n, "item delete", e);
    if (rc || n == 0) return rc;
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    if (!wb) return mr_err_set(e, MR_ENOMEM, "item delete: out of memory");
    uint8_t k[8], v[ITEM_LOG_VALUE];
    item_log_value(ITEM_LOG_DELETE, ts_ms, v);
    for (size_t i = 0; i < n; i++) {
        emb_key_encode(ids[i], k);
        rocksdb_writebatch_delete_cf(wb, st->cf[STORE_CF_ITEMS], (const char *)k, 8);
        if (vectors) rocksdb_writebatch_delete_cf(wb, vectors->cf, (const char *)k, 8);
        rocksdb_writebatch_put_cf(wb, st->cf[STORE_CF_ITEMLOG], (const char *)k, 8, (const char *)v,
                                  sizeof v);
    }
    if (st->cache) {
        cache_write_begin(st->cache, STORE_NS_ITEMS, ids, n); /* see cache.h */
        if (vectors) cache_write_begin(st->cache, vectors->info.id, ids, n);
    }
    if (vectors) store_ttl_lock(st, vectors->info.ttl_s, 1);
    rc = store_write(st, wb, e);
    if (vectors) store_ttl_lock(st, vectors->info.ttl_s, 0);
    rocksdb_writebatch_destroy(wb);
    if (st->cache) {
        for (size_t i = 0; i < n; i++) {
            cache_erase(st->cache, STORE_NS_ITEMS, ids[i]);
            if (vectors) cache_erase(st->cache, vectors->info.id, ids[i]);
        }
        if (vectors) cache_write_end(st->cache, vectors->info.id, ids, n);
        cache_write_end(st->cache, STORE_NS_ITEMS, ids, n);
    }
    /* the shared tier would serve the deleted vectors until they age out */
    const store_tier *tier = vectors ? store_table_tier(st, vectors) : NULL;
    if (!rc && tier && tier->del) tier->del(tier->ctx, vectors->tier_key, ids, n, NULL);
    return rc;
}

int item_log_scan(mr_store *st, size_t batch, item_log_fn fn, void *arg, mr_err *e) {
    if (!st || !fn || batch == 0) return mr_err_set(e, MR_EINVAL, "item_log_scan: bad argument");
    uint64_t *ids = malloc(batch * sizeof *ids);
    uint8_t *ops = malloc(batch);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, st->ropts,
                                                        st->cf[STORE_CF_ITEMLOG]);
    int rc = 0;
    if (!ids || !ops || !it) {
        rc = mr_err_set(e, MR_ENOMEM, "item log scan: out of memory");
        goto out;
    }
    size_t n = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *key = rocksdb_iter_key(it, &kl), *val = rocksdb_iter_value(it, &vl);
        if (kl != 8 || vl != ITEM_LOG_VALUE ||
            (val[0] != ITEM_LOG_UPSERT && val[0] != ITEM_LOG_DELETE)) {
            rc = mr_err_set(e, MR_ECORRUPT, "item log: a record of %zu/%zu bytes does not decode",
                            kl, vl);
            goto out;
        }
        ids[n] = emb_key_decode((const uint8_t *)key);
        ops[n++] = (uint8_t)val[0];
        if (n == batch) {
            if ((rc = fn(ids, ops, n, arg, e)) < 0) goto out;
            n = 0;
        }
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    if (err) {
        rc = mr_err_set(e, MR_EINTERNAL, "item log scan: %s", err);
        free(err);
        goto out;
    }
    rc = n ? fn(ids, ops, n, arg, e) : 0;
out:
    if (it) rocksdb_iter_destroy(it);
    free(ids);
    free(ops);
    return rc < 0 ? rc : 0;
}
