/* behaviour_recent.c — see behaviour_recent.h.
 *
 * Event keys are (user, time, seq) big-endian, so a user's newest event is
 * the last key of its 8-byte prefix: seek_for_prev to (user, max, max) and
 * step back. Trimmed events are deleted, so stepping back never crosses
 * more than the tombstones RocksDB has not compacted yet.
 */
#include "index/store/behaviour_recent.h"

#include <stdlib.h>
#include <string.h>

#include "index/store/behaviour_int.h"

/* Up to cap events of user older than (before_ts, before_seq) exclusive,
 * newest first. */
static int scan_back(mr_behaviour *b, uint64_t user, int64_t before_ts, uint64_t before_seq,
                     int bounded, beh_event *out, size_t cap, size_t *n, mr_err *e) {
    mr_store *st = b->st;
    uint8_t k[BEH_EVENT_KEY];
    beh_event_key(user, before_ts, before_seq, k);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_prefix_same_as_start(ro, 1);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, ro, st->cf[STORE_CF_EVENTS]);
    int rc = 0;
    *n = 0;
    rocksdb_iter_seek_for_prev(it, (const char *)k, sizeof k);
    /* seek_for_prev lands ON the key when it exists: that event is not older */
    if (bounded && rocksdb_iter_valid(it)) {
        size_t klen;
        const char *key = rocksdb_iter_key(it, &klen);
        if (klen == sizeof k && memcmp(key, k, sizeof k) == 0) rocksdb_iter_prev(it);
    }
    for (; *n < cap && rocksdb_iter_valid(it); rocksdb_iter_prev(it)) {
        size_t klen, vlen;
        const char *key = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        if (klen < 8 || memcmp(key, k, 8) != 0) break; /* previous user */
        if ((rc = beh_event_parse(b, key, klen, v, vlen, &out[*n], NULL, e))) {
            atomic_fetch_add(&st->ctr.corrupt_rows, 1);
            mr_err_wrap(e, "user %llu", (unsigned long long)user);
            break;
        }
        (*n)++;
    }
    if (!rc) {
        char *err = NULL;
        rocksdb_iter_get_error(it, &err);
        if (err) {
            rc = mr_err_set(e, MR_EINTERNAL, "recent events of user %llu: %s",
                            (unsigned long long)user, err);
            free(err);
        }
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return rc;
}

int behaviour_recent(mr_behaviour *b, uint64_t user, behaviour_event *out, size_t cap, size_t *n,
                     mr_err *e) {
    *n = 0;
    if (cap == 0) return 0;
    if (!out) return mr_err_set(e, MR_EINVAL, "behaviour_recent: out is NULL");
    int expired, rc;
    if ((rc = beh_user_expired(b, user, &expired, e)) || expired) return rc; /* user TTL */
    beh_event *ev = malloc(cap * sizeof *ev);
    if (!ev) return mr_err_set(e, MR_ENOMEM, "behaviour_recent: out of memory");
    rc = scan_back(b, user, INT64_MAX, UINT64_MAX, 0, ev, cap, n, e);
    for (size_t i = 0; !rc && i < *n; i++) /* newest first -> oldest first */
        out[*n - 1 - i] = (behaviour_event){user, ev[i].item, ev[i].ts, ev[i].action};
    free(ev);
    return rc;
}

int behaviour_recent_vectors(mr_behaviour *b, uint64_t user, int k, float *vecs, int *n,
                             mr_err *e) {
    return behaviour_recent_vectors_act(b, user, k, vecs, NULL, n, e);
}

int behaviour_recent_vectors_act(mr_behaviour *b, uint64_t user, int k, float *vecs, uint32_t *acts,
                                 int *n, mr_err *e) {
    *n = 0;
    if (k <= 0) return 0;
    int expired, rc0;
    if ((rc0 = beh_user_expired(b, user, &expired, e)) || expired) return rc0; /* user TTL */
    int d = b->layout.d;
    size_t chunk = (size_t)k;
    beh_event *ev = malloc(chunk * sizeof *ev);
    uint64_t *items = malloc(chunk * sizeof *items);
    float *v = malloc(chunk * (size_t)d * sizeof *v);
    uint8_t *found = malloc(chunk);
    float *rev = malloc((size_t)k * (size_t)d * sizeof *rev); /* newest first */
    uint32_t *ract = malloc((size_t)k * sizeof *ract);
    int rc = 0, got = 0, bounded = 0;
    int64_t ts = INT64_MAX;
    uint64_t seq = UINT64_MAX;
    if (!ev || !items || !v || !found || !rev || !ract) {
        rc = mr_err_set(e, MR_ENOMEM, "behaviour_recent_vectors: out of memory");
        goto done;
    }
    /* Usually one chunk; more only when recent events lack item rows. */
    while (got < k) {
        size_t m;
        if ((rc = scan_back(b, user, ts, seq, bounded, ev, chunk, &m, e))) goto done;
        if (m == 0) break;
        for (size_t i = 0; i < m; i++) items[i] = ev[i].item;
        if ((rc = beh_item_vectors(b, items, m, v, found, e))) goto done;
        for (size_t i = 0; i < m && got < k; i++)
            if (found[i]) {
                ract[got] = ev[i].action;
                memcpy(rev + (size_t)got++ * d, v + i * d, (size_t)d * sizeof *v);
            }
        ts = ev[m - 1].ts;
        seq = ev[m - 1].seq;
        bounded = 1;
        if (m < chunk) break;
    }
    for (int i = 0; i < got; i++) { /* oldest first */
        memcpy(vecs + (size_t)i * d, rev + (size_t)(got - 1 - i) * d, (size_t)d * sizeof *v);
        if (acts) acts[i] = ract[got - 1 - i];
    }
    *n = got;
done:
    free(ract);
    free(ev);
    free(items);
    free(v);
    free(found);
    free(rev);
    return rc;
}
