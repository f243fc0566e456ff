/* behaviour_expire.c — user TTL for behaviour data: users with no append
 * for store_config.user_ttl_s lose their events and SDIM row.
 *
 * The sweep reads the sdim family (one row per user, small next to the
 * events), and for each candidate takes the user's stripe lock, re-reads
 * the state row (an append may have refreshed it since the scan) and then
 * deletes the user's whole event range with one range tombstone plus the
 * state row, in one WriteBatch. Cost: O(users) reads, O(expired users)
 * writes; the events themselves are never scanned.
 */
#include <stdlib.h>
#include <string.h>

#include "index/store/behaviour_int.h"
#include "index/store/emb_codec.h"

void beh_delete_user_events(mr_behaviour *b, rocksdb_writebatch_t *wb, uint64_t user) {
    mr_store *st = b->st;
    uint8_t lo[8], hi[8];
    emb_key_encode(user, lo);
    if (user == UINT64_MAX) { /* no key above the last user: delete its range up to the max key */
        uint8_t top[BEH_EVENT_KEY];
        memset(top, 0xff, sizeof top);
        rocksdb_writebatch_delete_range_cf(wb, st->cf[STORE_CF_EVENTS], (const char *)lo, 8,
                                           (const char *)top, sizeof top);
        rocksdb_writebatch_delete_cf(wb, st->cf[STORE_CF_EVENTS], (const char *)top, sizeof top);
    } else {
        emb_key_encode(user + 1, hi);
        rocksdb_writebatch_delete_range_cf(wb, st->cf[STORE_CF_EVENTS], (const char *)lo, 8,
                                           (const char *)hi, 8);
    }
}

/* Under the user's lock: delete if still expired. *done = 1 when deleted. */
static int beh_expire_user(mr_behaviour *b, uint64_t user, int64_t now_ms, int *done, mr_err *e) {
    mr_store *st = b->st;
    beh_state s;
    *done = 0;
    int rc = beh_state_load(b, user, &s, NULL, e);
    if (rc == MR_ECORRUPT) {
        mr_err_clear(e); /* corrupt: leave it for behaviour_rebuild */
        return 0;
    }
    if (rc) return rc;
    if (s.n_events == 0 && s.next_seq == 0) return 0; /* gone already */
    if (!store_expired((int64_t)s.write_s * 1000, st->cfg.user_ttl_s, now_ms)) return 0;
    uint8_t key[8];
    emb_key_encode(user, key);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    beh_delete_user_events(b, wb, user);
    rocksdb_writebatch_delete_cf(wb, st->cf[STORE_CF_SDIM], (const char *)key, 8);
    rc = store_write(st, wb, e);
    rocksdb_writebatch_destroy(wb);
    *done = rc == 0;
    return rc;
}

int behaviour_expire(mr_behaviour *b, int64_t now_ms, uint64_t *n_users, mr_err *e) {
    mr_store *st = b->st;
    int rc;
    if (n_users) *n_users = 0;
    if ((rc = store_check_writable(st, e))) return rc;
    if (st->cfg.user_ttl_s <= 0) return 0;
    /* Collect candidates first: deleting while iterating the same family
     * would make the iterator step over our own tombstones. */
    size_t n = 0, cap = 1024;
    uint64_t *cand = malloc(cap * sizeof *cand);
    if (!cand) return mr_err_set(e, MR_ENOMEM, "behaviour_expire: out of memory");
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, st->ropts, st->cf[STORE_CF_SDIM]);
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        uint32_t magic, write_s;
        if (klen != 8 || vlen < BEH_STATE_HDR) continue;
        memcpy(&magic, v, 4);
        memcpy(&write_s, v + 44, 4);
        if (magic != BEH_STATE_MAGIC ||
            !store_expired((int64_t)write_s * 1000, st->cfg.user_ttl_s, now_ms))
            continue;
        if (n == cap) {
            uint64_t *c2 = realloc(cand, 2 * cap * sizeof *cand);
            if (!c2) {
                rc = mr_err_set(e, MR_ENOMEM, "behaviour_expire: out of memory");
                break;
            }
            cand = c2;
            cap *= 2;
        }
        cand[n++] = emb_key_decode((const uint8_t *)k);
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    if (err && !rc) rc = mr_err_set(e, MR_EINTERNAL, "behaviour_expire: scan users: %s", err);
    free(err);
    rocksdb_iter_destroy(it);
    uint64_t removed = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        pthread_mutex_t *mu = beh_lock_of(b, cand[i]);
        int done;
        pthread_mutex_lock(mu);
        rc = beh_expire_user(b, cand[i], now_ms, &done, e);
        pthread_mutex_unlock(mu);
        removed += (uint64_t)done;
    }
    free(cand);
    if (n_users) *n_users = removed;
    return rc;
}
