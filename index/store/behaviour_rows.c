/* behaviour_rows.c — row formats of the behaviour store and its reads:
 * event keys and values, the per-user state row (header + SDIM table +
 * checksum), scans of a user's events, and user_state_get.
 *
 * Event keys are (user, time, seq) big-endian with the time's sign bit
 * flipped, so RocksDB's bytewise order is (user, time, arrival) and a
 * user's oldest events are the first keys under the user's 8-byte prefix
 * (the events family's prefix extractor). The state row remembers the key
 * of the oldest kept event, so a trim seeks straight to it instead of
 * stepping over the tombstones of earlier trims.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "index/store/behaviour_int.h"
#include "index/store/emb_codec.h"

static void beh_put_be64(uint64_t x, uint8_t *out) { emb_key_encode(x, out); }

void beh_event_key(uint64_t user, int64_t ts, uint64_t seq, uint8_t out[BEH_EVENT_KEY]) {
    beh_put_be64(user, out);
    beh_put_be64((uint64_t)ts ^ 0x8000000000000000ULL, out + 8);
    beh_put_be64(seq, out + 16);
}

size_t beh_event_value_bytes(const mr_behaviour *b) { return 16 + 2 * (size_t)b->layout.nsig + 4; }

void beh_event_value(const mr_behaviour *b, const beh_event *ev, const uint32_t *sig,
                     uint8_t *out) {
    uint16_t flags = (uint16_t)(ev->flags | BEH_EVENT_V2), nsig = (uint16_t)b->layout.nsig;
    memcpy(out, &ev->item, 8);
    memcpy(out + 8, &ev->action, 4);
    memcpy(out + 12, &flags, 2);
    memcpy(out + 14, &nsig, 2);
    for (int i = 0; i < b->layout.nsig; i++) {
        uint16_t s = sig ? (uint16_t)sig[i] : 0;
        memcpy(out + 16 + 2 * i, &s, 2);
    }
    size_t n = beh_event_value_bytes(b) - 4;
    uint32_t sum = emb_codec_sum(out, n);
    memcpy(out + n, &sum, 4);
}

int beh_event_parse(const mr_behaviour *b, const char *k, size_t klen, const char *v, size_t vlen,
                    beh_event *ev, uint32_t *sig, mr_err *e) {
    if (klen != BEH_EVENT_KEY || vlen != beh_event_value_bytes(b))
        return mr_err_set(e, MR_ECORRUPT, "event row has key %zu / value %zu bytes", klen, vlen);
    uint32_t sum;
    memcpy(&sum, v + vlen - 4, 4);
    uint16_t flags, nsig;
    memcpy(&flags, v + 12, 2);
    memcpy(&nsig, v + 14, 2);
    int v2 = (flags & BEH_EVENT_V2) != 0; /* version 1 rows: XXH32, still read */
    if ((v2 ? emb_codec_sum(v, vlen - 4) : emb_codec_sum_v1(v, vlen - 4)) != sum ||
        nsig != b->layout.nsig)
        return mr_err_set(e, MR_ECORRUPT, "event row checksum or signature count mismatch");
    flags &= (uint16_t)~BEH_EVENT_V2;
    ev->ts = (int64_t)(emb_key_decode((const uint8_t *)k + 8) ^ 0x8000000000000000ULL);
    ev->seq = emb_key_decode((const uint8_t *)k + 16);
    memcpy(&ev->item, v, 8);
    memcpy(&ev->action, v + 8, 4);
    ev->flags = flags;
    for (int i = 0; sig && i < nsig; i++) {
        uint16_t s;
        memcpy(&s, v + 16 + 2 * i, 2);
        if (s >= (uint32_t)b->layout.nbuckets)
            return mr_err_set(e, MR_ECORRUPT, "event signature %u out of range", s);
        sig[i] = s;
    }
    return 0;
}

size_t beh_state_bytes(const mr_behaviour *b) { return BEH_STATE_HDR + b->table_bytes + 4; }

int beh_state_check(const mr_behaviour *b, const beh_state *s, const void *table) {
    if (s->n_events > (uint32_t)b->cfg.l_max || s->n_events > s->next_seq) return 0;
    if (s->n_events && s->oldest_seq >= s->next_seq) return 0;
    if (!table) return 1;
    const sdim_layout *l = &b->layout;
    uint64_t added = 0;
    for (int i = 0; i < l->nsig; i++) {
        uint64_t total = 0;
        for (uint32_t k = 0; k < (uint32_t)l->nbuckets; k++) {
            uint32_t c = sdim_table_count(l, table, i, k);
            total += c;
            if (c) continue;
            const float *sum = sdim_table_sum_c(l, table, i, k);
            for (int j = 0; j < l->d; j++)
                if (sum[j] != 0.0f) return 0; /* an empty bucket keeps no residue */
        }
        if (i == 0) added = total;
        else if (total != added) return 0; /* every event counts once per signature */
    }
    return added <= s->n_events;
}

void beh_state_encode(const mr_behaviour *b, const beh_state *s, const void *table, uint8_t *out) {
    assert(beh_state_check(b, s, table));
    uint32_t magic = BEH_STATE_MAGIC, cells = (uint32_t)(b->table_bytes / 4);
    memcpy(out, &magic, 4);
    memcpy(out + 4, &s->n_events, 4);
    memcpy(out + 8, &s->next_seq, 8);
    memcpy(out + 16, &s->oldest_ts, 8);
    memcpy(out + 24, &s->oldest_seq, 8);
    memcpy(out + 32, &s->newest_ts, 8);
    memcpy(out + 40, &cells, 4);
    memcpy(out + 44, &s->write_s, 4);
    memcpy(out + BEH_STATE_HDR, table, b->table_bytes);
    size_t n = BEH_STATE_HDR + b->table_bytes;
    uint32_t sum = emb_codec_sum(out, n); /* xxh3: 2x XXH32's speed on 33 KB rows */
    memcpy(out + n, &sum, 4);
}

int beh_state_decode(const mr_behaviour *b, const char *v, size_t vlen, beh_state *s, void *table,
                     mr_err *e) {
    uint32_t magic, cells, sum;
    if (vlen != beh_state_bytes(b))
        return mr_err_set(e, MR_ECORRUPT, "SDIM row is %zu bytes, expected %zu", vlen,
                          beh_state_bytes(b));
    memcpy(&magic, v, 4);
    memcpy(&cells, v + 40, 4);
    memcpy(&sum, v + vlen - 4, 4);
    if (magic != BEH_STATE_MAGIC || cells != b->table_bytes / 4)
        return mr_err_set(e, MR_ECORRUPT, "SDIM row header mismatch (magic %#x)", magic);
    if (emb_codec_sum(v, vlen - 4) != sum)
        return mr_err_set(e, MR_ECORRUPT, "SDIM row checksum mismatch");
    memcpy(&s->n_events, v + 4, 4);
    memcpy(&s->next_seq, v + 8, 8);
    memcpy(&s->oldest_ts, v + 16, 8);
    memcpy(&s->oldest_seq, v + 24, 8);
    memcpy(&s->newest_ts, v + 32, 8);
    memcpy(&s->write_s, v + 44, 4);
    if (table) memcpy(table, v + BEH_STATE_HDR, b->table_bytes);
    return 0;
}

/* Point read of a user's state row into *p (NULL when absent). */
static int beh_state_get(mr_behaviour *b, uint64_t user, rocksdb_pinnableslice_t **p, mr_err *e) {
    mr_store *st = b->st;
    uint8_t k[8];
    char *err = NULL;
    emb_key_encode(user, k);
    *p = rocksdb_get_pinned_cf(st->db, st->ropts, st->cf[STORE_CF_SDIM], (const char *)k, 8, &err);
    if (err) {
        int rc = mr_err_set(e, MR_EINTERNAL, "read SDIM row of user %llu: %s",
                            (unsigned long long)user, err);
        free(err);
        return rc;
    }
    return 0;
}

int beh_state_load(mr_behaviour *b, uint64_t user, beh_state *s, void *table, mr_err *e) {
    rocksdb_pinnableslice_t *p;
    int rc;
    if ((rc = beh_state_get(b, user, &p, e))) return rc;
    memset(s, 0, sizeof *s);
    if (!p) {
        if (table) sdim_table_clear(&b->layout, table);
        return 0;
    }
    size_t vlen;
    const char *v = rocksdb_pinnableslice_value(p, &vlen);
    rc = beh_state_decode(b, v, vlen, s, table, e);
    rocksdb_pinnableslice_destroy(p);
    if (rc) {
        atomic_fetch_add(&b->st->ctr.corrupt_rows, 1);
        return mr_err_wrap(e, "user %llu (behaviour_rebuild repairs it)", (unsigned long long)user);
    }
    return 0;
}

int beh_user_expired(mr_behaviour *b, uint64_t user, int *expired, mr_err *e) {
    const int64_t ttl_s = b->st->cfg.user_ttl_s;
    rocksdb_pinnableslice_t *p;
    int rc;
    *expired = 0;
    if (ttl_s <= 0) return 0;
    if ((rc = beh_state_get(b, user, &p, e)) || !p) return rc; /* no row: no events either */
    size_t vlen;
    const char *v = rocksdb_pinnableslice_value(p, &vlen);
    uint32_t magic, write_s;
    if (vlen == beh_state_bytes(b)) { /* header only; a corrupt row is read as live */
        memcpy(&magic, v, 4);
        memcpy(&write_s, v + 44, 4);
        *expired = magic == BEH_STATE_MAGIC &&
                   store_expired((int64_t)write_s * 1000, ttl_s, mr_unix_ms());
    }
    rocksdb_pinnableslice_destroy(p);
    return 0;
}

int beh_events_scan(mr_behaviour *b, uint64_t user, int64_t from_ts, uint64_t from_seq,
                    beh_event *out, uint32_t *sigs, size_t cap, size_t *n, mr_err *e) {
    mr_store *st = b->st;
    uint8_t k[BEH_EVENT_KEY];
    beh_event_key(user, from_ts, from_seq, k);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_prefix_same_as_start(ro, 1);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, ro, st->cf[STORE_CF_EVENTS]);
    int rc = 0;
    *n = 0;
    for (rocksdb_iter_seek(it, (const char *)k, sizeof k); *n < cap && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *key = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        if (klen < 8 || memcmp(key, k, 8) != 0) break; /* next user */
        if ((rc = beh_event_parse(b, key, klen, v, vlen, &out[*n],
                                  sigs ? sigs + *n * (size_t)b->layout.nsig : NULL, e))) {
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
            rc = mr_err_set(e, MR_EINTERNAL, "scan events of user %llu: %s",
                            (unsigned long long)user, err);
            free(err);
        }
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return rc;
}

int beh_item_vectors(mr_behaviour *b, const uint64_t *items, size_t n, float *vecs, uint8_t *found,
                     mr_err *e) {
    if (n == 0) return 0;
    uint64_t *rows = malloc(n * sizeof *rows);
    if (!rows) return mr_err_set(e, MR_ENOMEM, "behaviour: out of memory");
    for (size_t i = 0; i < n; i++)
        rows[i] = b->cfg.item_row ? b->cfg.item_row(items[i], b->cfg.item_row_ctx) : items[i];
    int rc = emb_store_get(b->st, b->table, rows, n, vecs, found, e);
    free(rows);
    if (rc == MR_ECORRUPT) { /* a corrupt item row: treat as absent, keep going */
        mr_err_clear(e);
        rc = 0;
    }
    return rc;
}

int behaviour_events(mr_behaviour *b, uint64_t user, behaviour_event *out, size_t cap, size_t *n,
                     mr_err *e) {
    *n = 0;
    if (cap == 0) return 0;
    if (!out) return mr_err_set(e, MR_EINVAL, "behaviour_events: out is NULL");
    int expired, rc;
    if ((rc = beh_user_expired(b, user, &expired, e)) || expired) return rc;
    beh_event *ev = malloc(cap * sizeof *ev);
    if (!ev) return mr_err_set(e, MR_ENOMEM, "behaviour_events: out of memory");
    rc = beh_events_scan(b, user, INT64_MIN, 0, ev, NULL, cap, n, e);
    for (size_t i = 0; !rc && i < *n; i++)
        out[i] = (behaviour_event){user, ev[i].item, ev[i].ts, ev[i].action};
    free(ev);
    return rc;
}

int user_state_get(mr_behaviour *b, uint64_t user, mr_user_state *out, mr_err *e) {
    mr_store *st = b->st;
    memset(out, 0, sizeof *out);
    uint8_t k[8];
    emb_key_encode(user, k);
    const char *keys[2] = {(const char *)k, (const char *)k};
    size_t ksz[2] = {8, 8}, vsz[2] = {0, 0};
    const rocksdb_column_family_handle_t *cfs[2] = {st->cf[STORE_CF_USERS], st->cf[STORE_CF_SDIM]};
    char *vals[2] = {NULL, NULL}, *errs[2] = {NULL, NULL};
    rocksdb_multi_get_cf(st->db, st->ropts, cfs, 2, keys, ksz, vals, vsz, errs);
    atomic_fetch_add(&st->ctr.db_multigets, 1);
    atomic_fetch_add(&st->ctr.db_rows_read, 2);
    int rc = 0;
    for (int i = 0; i < 2; i++)
        if (errs[i] && !rc)
            rc = mr_err_set(e, MR_EINTERNAL, "user %llu: %s", (unsigned long long)user, errs[i]);
    const uint8_t *pdata = NULL;
    size_t plen = 0;
    beh_state s;
    if (!rc && vals[0]) {
        int64_t ts;
        if ((rc = emb_codec_blob_decode((const uint8_t *)vals[0], vsz[0], &pdata, &plen, &ts, e))) {
            atomic_fetch_add(&st->ctr.corrupt_rows, 1);
            mr_err_wrap(e, "profile of user %llu", (unsigned long long)user);
        } else if (store_expired(ts, st->cfg.user_ttl_s, mr_unix_ms())) {
            atomic_fetch_add(&st->ctr.expired_rows, 1);
            pdata = NULL;
        }
    }
    if (!rc && vals[1] && (rc = beh_state_decode(b, vals[1], vsz[1], &s, NULL, e))) {
        atomic_fetch_add(&st->ctr.corrupt_rows, 1);
        mr_err_wrap(e, "SDIM row of user %llu", (unsigned long long)user);
    }
    if (!rc && vals[1] &&
        store_expired((int64_t)s.write_s * 1000, st->cfg.user_ttl_s, mr_unix_ms())) {
        atomic_fetch_add(&st->ctr.expired_rows, 1); /* no append for user_ttl_s: gone */
        free(vals[1]);
        vals[1] = NULL;
    }
    if (!rc) {
        size_t tb = vals[1] ? b->table_bytes : 0, pb = pdata ? plen : 0;
        /* the table first: 64-byte aligned floats for the ranker */
        char *buf = NULL;
        if (posix_memalign((void **)&buf, 64, tb + pb + 1)) {
            rc = mr_err_set(e, MR_ENOMEM, "user state: out of memory");
        } else {
            out->buf = buf;
            atomic_fetch_add(&st->ctr.db_rows_found, (vals[0] != NULL) + (vals[1] != NULL));
            if (tb) {
                memcpy(buf, vals[1] + BEH_STATE_HDR, tb);
                out->table = buf;
                out->n_events = s.n_events;
                out->newest_ts_ms = s.newest_ts;
            }
            if (pdata) {
                if (pb) memcpy(buf + tb, pdata, pb);
                out->profile = buf + tb;
                out->profile_len = pb;
            }
        }
    }
    for (int i = 0; i < 2; i++) {
        free(vals[i]);
        free(errs[i]);
    }
    return rc;
}

void user_state_release(mr_user_state *s) {
    if (!s) return;
    free(s->buf);
    memset(s, 0, sizeof *s);
}
