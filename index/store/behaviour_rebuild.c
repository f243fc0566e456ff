/* behaviour_rebuild.c — recompute users' SDIM tables from their events.
 *
 * The incremental path trusts that an item's embedding did not change
 * between append and trim; after an embedding table is retrained (or rows
 * were missing at append time) the sums drift. A rebuild reads all of a
 * user's events (O(L)), looks their embeddings up in one batched get,
 * signs them in one sgemm, and writes the table, the events' stored
 * signatures and flags, and the trim to l_max in one WriteBatch, under the
 * user's lock. Appends to other users proceed meanwhile.
 */
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "index/store/behaviour_int.h"
#include "index/store/emb_codec.h"

/* Count a user's events so the scan buffers can be sized. */
static int beh_count_events(mr_behaviour *b, uint64_t user, size_t *n, mr_err *e) {
    mr_store *st = b->st;
    uint8_t k[8];
    emb_key_encode(user, k);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_prefix_same_as_start(ro, 1);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, ro, st->cf[STORE_CF_EVENTS]);
    *n = 0;
    for (rocksdb_iter_seek(it, (const char *)k, 8); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen;
        const char *key = rocksdb_iter_key(it, &klen);
        if (klen < 8 || memcmp(key, k, 8) != 0) break;
        (*n)++;
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (err) {
        int rc = mr_err_set(e, MR_EINTERNAL, "rebuild: scan user %llu: %s",
                            (unsigned long long)user, err);
        free(err);
        return rc;
    }
    return 0;
}

static int beh_rebuild_user(mr_behaviour *b, uint64_t user, mr_err *e) {
    mr_store *st = b->st;
    const sdim_layout *L = &b->layout;
    const size_t nsig = (size_t)L->nsig, d = (size_t)L->d;
    beh_state s;
    size_t n = 0, got = 0;
    int rc;
    if ((rc = beh_state_load(b, user, &s, NULL, NULL)) == MR_ECORRUPT)
        memset(&s, 0, sizeof s); /* a corrupt row is what a rebuild repairs */
    else if (rc)
        return mr_err_set(e, rc, "rebuild: read state of user %llu", (unsigned long long)user);
    if ((rc = beh_count_events(b, user, &n, e))) return rc;
    size_t cap = n ? n : 1;
    beh_event *ev = malloc(cap * sizeof *ev);
    uint32_t *old_sig = malloc(cap * nsig * sizeof *old_sig),
             *sig = malloc(cap * nsig * sizeof *sig);
    uint64_t *items = malloc(cap * sizeof *items);
    float *vecs = malloc(cap * d * sizeof *vecs);
    uint8_t *found = malloc(cap), *state = malloc(beh_state_bytes(b)),
            *val = malloc(beh_event_value_bytes(b));
    void *table = malloc(b->table_bytes);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    if (!ev || !old_sig || !sig || !items || !vecs || !found || !state || !val || !table || !wb) {
        rc = mr_err_set(e, MR_ENOMEM, "rebuild of user %llu (%zu events): out of memory",
                        (unsigned long long)user, n);
        goto out;
    }
    if ((rc = beh_events_scan(b, user, INT64_MIN, 0, ev, old_sig, n, &got, e))) goto out;
    for (size_t i = 0; i < got; i++) items[i] = ev[i].item;
    if ((rc = beh_item_vectors(b, items, got, vecs, found, e))) goto out;
    if ((rc = sdim_signatures_batch(b->hasher, vecs, (int)got, sig, NULL, e))) goto out;
    size_t drop = got > (size_t)b->cfg.l_max ? got - (size_t)b->cfg.l_max : 0;
    sdim_table_clear(L, table);
    uint8_t key[BEH_EVENT_KEY];
    uint64_t max_seq = 0;
    s.n_events = 0;
    for (size_t i = 0; i < got; i++) {
        beh_event_key(user, ev[i].ts, ev[i].seq, key);
        if (ev[i].seq + 1 > max_seq) max_seq = ev[i].seq + 1;
        if (i < drop) {
            rocksdb_writebatch_delete_cf(wb, st->cf[STORE_CF_EVENTS], (const char *)key,
                                         sizeof key);
            continue;
        }
        uint32_t flags = found[i] ? BEH_FLAG_ADDED : 0;
        if (found[i]) sdim_table_add(L, table, sig + i * nsig, vecs + i * d, NULL);
        if (flags != ev[i].flags || memcmp(sig + i * nsig, old_sig + i * nsig, nsig * 4) != 0) {
            ev[i].flags = flags;
            beh_event_value(b, &ev[i], sig + i * nsig, val);
            rocksdb_writebatch_put_cf(wb, st->cf[STORE_CF_EVENTS], (const char *)key, sizeof key,
                                      (const char *)val, beh_event_value_bytes(b));
        }
        if (s.n_events == 0) {
            s.oldest_ts = ev[i].ts;
            s.oldest_seq = ev[i].seq;
            s.newest_ts = ev[i].ts;
        }
        if (ev[i].ts > s.newest_ts) s.newest_ts = ev[i].ts;
        s.n_events++;
    }
    if (max_seq > s.next_seq) s.next_seq = max_seq;
    if (s.write_s == 0)
        s.write_s = (uint32_t)((mr_unix_ms() + 999) / 1000); /* a rebuild is not an append */
    emb_key_encode(user, key);
    if (s.n_events == 0) {
        rocksdb_writebatch_delete_cf(wb, st->cf[STORE_CF_SDIM], (const char *)key, 8);
    } else {
        beh_state_encode(b, &s, table, state);
        rocksdb_writebatch_put_cf(wb, st->cf[STORE_CF_SDIM], (const char *)key, 8,
                                  (const char *)state, beh_state_bytes(b));
    }
    rc = store_write(st, wb, e);
out:
    if (wb) rocksdb_writebatch_destroy(wb);
    free(ev);
    free(old_sig);
    free(sig);
    free(items);
    free(vecs);
    free(found);
    free(state);
    free(val);
    free(table);
    return rc;
}

int behaviour_rebuild(mr_behaviour *b, const uint64_t *users, size_t n, mr_err *e) {
    int rc;
    if ((rc = store_check_writable(b->st, e))) return rc;
    if (n && !users) return mr_err_set(e, MR_EINVAL, "rebuild: users is NULL");
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_t *mu = beh_lock_of(b, users[i]);
        pthread_mutex_lock(mu);
        rc = beh_rebuild_user(b, users[i], e);
        pthread_mutex_unlock(mu);
        if (rc) return rc;
    }
    return 0;
}

int behaviour_rebuild_all(mr_behaviour *b, uint64_t *n_users, mr_err *e) {
    mr_store *st = b->st;
    int rc;
    if (n_users) *n_users = 0;
    if ((rc = store_check_writable(st, e))) return rc;
    /* Users are found from the events family (a user whose state row is
     * missing or corrupt still gets one); the scan skips to the next user
     * prefix after each. That seek crosses prefixes, so it must be a total
     * order seek: with the family's prefix bloom, a seek to a user with no
     * events (user + 1, usually) could leave the iterator invalid and end
     * the scan early. */
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_total_order_seek(ro, 1);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, ro, st->cf[STORE_CF_EVENTS]);
    uint64_t done = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);) {
        size_t klen;
        const char *key = rocksdb_iter_key(it, &klen);
        if (klen < 8) {
            rocksdb_iter_next(it);
            continue;
        }
        uint64_t user = emb_key_decode((const uint8_t *)key);
        if ((rc = behaviour_rebuild(b, &user, 1, e))) break;
        done++;
        if (user == UINT64_MAX) break;
        uint8_t next[8];
        emb_key_encode(user + 1, next);
        rocksdb_iter_seek(it, (const char *)next, 8);
    }
    if (!rc) {
        char *err = NULL;
        rocksdb_iter_get_error(it, &err);
        if (err) {
            rc = mr_err_set(e, MR_EINTERNAL, "rebuild: scan users: %s", err);
            free(err);
        }
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (n_users) *n_users = done;
    return rc;
}
