/* store_blob.c — item and user feature blobs: opaque bytes per id.
 *
 * Items are read on every request for every candidate, so they go through
 * the memory cache like embedding rows (namespace STORE_NS_ITEMS); user
 * profiles are read once per request beside the SDIM table
 * (behaviour.c: user_state_get) and are not cached. A batched item get
 * returns pointers into one malloc'd buffer so a caller frees once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "index/store/emb_codec.h"
#include "index/store/store_int.h"

static int blob_check_batch(const mr_store *st, const uint64_t *ids, size_t n,
                            const store_blob *blobs, const char *what, mr_err *e) {
    if (n > STORE_MAX_BATCH)
        return mr_err_set(e, MR_EINVAL, "%s: batch of %zu rows exceeds %u", what, n,
                          STORE_MAX_BATCH);
    if (n && (!ids || !blobs))
        return mr_err_set(e, MR_EINVAL, "%s: ids and blobs must be set", what);
    for (size_t i = 0; i < n; i++) {
        if (blobs[i].len && !blobs[i].data)
            return mr_err_set(e, MR_EINVAL, "%s %llu: data is NULL with length %zu", what,
                              (unsigned long long)ids[i], blobs[i].len);
        if (blobs[i].len > st->cfg.max_value_bytes)
            return mr_err_set(e, MR_ENOMEM,
                              "%s %llu: value of %zu bytes exceeds the limit of "
                              "%zu (max_value_bytes)",
                              what, (unsigned long long)ids[i], blobs[i].len,
                              st->cfg.max_value_bytes);
    }
    return 0;
}

/* Add n blobs of family cfi to wb (v: scratch of the largest blob's size). */
static void blob_batch_add(mr_store *st, rocksdb_writebatch_t *wb, int cfi, const uint64_t *ids,
                           size_t n, const store_blob *blobs, int64_t now, uint8_t *v) {
    for (size_t i = 0; i < n; i++) {
        uint8_t k[8];
        emb_key_encode(ids[i], k);
        emb_codec_blob_encode(blobs[i].data, blobs[i].len, now, v);
        rocksdb_writebatch_put_cf(wb, st->cf[cfi], (const char *)k, 8, (const char *)v,
                                  emb_codec_blob_bytes(blobs[i].len));
    }
}

/* Validate everything, then one WriteBatch. */
static int blob_put(mr_store *st, int cfi, uint32_t ns, const uint64_t *ids, size_t n,
                    const store_blob *blobs, const char *what, mr_err *e) {
    int rc;
    if ((rc = store_check_writable(st, e))) return rc;
    if ((rc = blob_check_batch(st, ids, n, blobs, what, e))) return rc;
    if (n == 0) return 0;
    size_t maxlen = 0;
    for (size_t i = 0; i < n; i++) maxlen = blobs[i].len > maxlen ? blobs[i].len : maxlen;
    uint8_t *v = malloc(emb_codec_blob_bytes(maxlen));
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    if (!v || !wb) {
        free(v);
        if (wb) rocksdb_writebatch_destroy(wb);
        return mr_err_set(e, MR_ENOMEM, "%s put: out of memory", what);
    }
    int64_t now = store_write_clock_ms();
    blob_batch_add(st, wb, cfi, ids, n, blobs, now, v); /* put_cf copies key and value */
    const int cached = st->cache && ns != UINT32_MAX;
    if (cached) cache_write_begin(st->cache, ns, ids, n); /* see cache.h */
    const int64_t ttl = cfi == STORE_CF_USERS ? st->cfg.user_ttl_s : 0;
    store_ttl_lock(st, ttl, 1);
    rc = store_write(st, wb, e);
    store_ttl_lock(st, ttl, 0);
    rocksdb_writebatch_destroy(wb);
    free(v);
    if (!rc) {
        atomic_fetch_add(&st->ctr.rows_written, n);
        for (size_t i = 0; cached && i < n; i++)
            cache_update(st->cache, ns, ids[i], blobs[i].data ? blobs[i].data : "", blobs[i].len,
                         now);
    }
    if (cached) cache_write_end(st->cache, ns, ids, n);
    return rc;
}

int item_store_put(mr_store *st, const uint64_t *ids, size_t n, const store_blob *blobs,
                   mr_err *e) {
    return blob_put(st, STORE_CF_ITEMS, STORE_NS_ITEMS, ids, n, blobs, "item", e);
}

int user_store_put(mr_store *st, const uint64_t *ids, size_t n, const store_blob *blobs,
                   mr_err *e) {
    return blob_put(st, STORE_CF_USERS, UINT32_MAX, ids, n, blobs, "user", e);
}

/* Application meta keys live under "app/" in the meta family, apart from
 * the store's own rows ("behaviour", "table/...", the log sequence). */
#define META_APP_PREFIX "app/"

static int meta_key(const char *k, char out[40], mr_err *e) {
    size_t n = k ? strlen(k) : 0;
    int ok = n >= 1 && n <= 32;
    for (size_t i = 0; ok && i < n; i++) ok = (k[i] >= 'a' && k[i] <= 'z') || k[i] == '_';
    if (!ok) return mr_err_set(e, MR_EINVAL, "meta key '%.40s': [a-z_], 1..32 bytes", k ? k : "");
    snprintf(out, 40, META_APP_PREFIX "%s", k);
    return 0;
}

/* A meta row is the bytes as given (no time header: meta never expires). */
int store_meta_get(mr_store *st, const char *key, void **val, size_t *len, mr_err *e) {
    *val = NULL;
    *len = 0;
    char k[40];
    int rc = meta_key(key, k, e);
    if (rc) return rc;
    char *err = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get_cf(st->db, st->ropts, st->cf[STORE_CF_META], k, strlen(k), &vlen, &err);
    if (err) return store_rocks_err(e, MR_EINTERNAL, err, "meta get");
    if (!v) return 0;
    *val = malloc(vlen ? vlen : 1);
    if (!*val) {
        free(v);
        return mr_err_set(e, MR_ENOMEM, "meta get: out of memory");
    }
    memcpy(*val, v, vlen);
    free(v);
    *len = vlen;
    return 0;
}

int store_meta_put(mr_store *st, const char *key, const void *val, size_t len, mr_err *e) {
    int rc;
    char k[40];
    if ((rc = store_check_writable(st, e)) || (rc = meta_key(key, k, e))) return rc;
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    if (!wb) return mr_err_set(e, MR_ENOMEM, "meta put: out of memory");
    rocksdb_writebatch_put_cf(wb, st->cf[STORE_CF_META], k, strlen(k), val, len);
    rc = store_write_synced(st, wb, e);
    rocksdb_writebatch_destroy(wb);
    return rc;
}

int store_rows_write(mr_store *st, rocksdb_writebatch_t *wb, const store_append_rows *x,
                     mr_err *e) {
    if (!x) return store_write(st, wb, e);
    int rc;
    char mk[40];
    if ((rc = blob_check_batch(st, x->item_ids, x->n_items, x->items, "item", e)) ||
        (rc = blob_check_batch(st, x->user_ids, x->n_users, x->users, "user", e)) ||
        (x->meta_key && (rc = meta_key(x->meta_key, mk, e))))
        return rc;
    size_t maxlen = 0;
    for (size_t i = 0; i < x->n_items; i++)
        maxlen = x->items[i].len > maxlen ? x->items[i].len : maxlen;
    for (size_t i = 0; i < x->n_users; i++)
        maxlen = x->users[i].len > maxlen ? x->users[i].len : maxlen;
    uint8_t *v = malloc(emb_codec_blob_bytes(maxlen));
    if (!v) return mr_err_set(e, MR_ENOMEM, "append rows: out of memory");
    int64_t now = store_write_clock_ms();
    blob_batch_add(st, wb, STORE_CF_ITEMS, x->item_ids, x->n_items, x->items, now, v);
    blob_batch_add(st, wb, STORE_CF_USERS, x->user_ids, x->n_users, x->users, now, v);
    free(v);
    if (x->meta_key)
        rocksdb_writebatch_put_cf(wb, st->cf[STORE_CF_META], mk, strlen(mk), x->meta.data,
                                  x->meta.len);
    const int cached = st->cache && x->n_items;
    if (cached) cache_write_begin(st->cache, STORE_NS_ITEMS, x->item_ids, x->n_items);
    const int64_t ttl = x->n_users ? st->cfg.user_ttl_s : 0;
    store_ttl_lock(st, ttl, 1);
    rc = store_write(st, wb, e);
    store_ttl_lock(st, ttl, 0);
    if (!rc) atomic_fetch_add(&st->ctr.rows_written, x->n_items + x->n_users);
    for (size_t i = 0; !rc && cached && i < x->n_items; i++)
        cache_update(st->cache, STORE_NS_ITEMS, x->item_ids[i],
                     x->items[i].data ? x->items[i].data : "", x->items[i].len, now);
    if (cached) cache_write_end(st->cache, STORE_NS_ITEMS, x->item_ids, x->n_items);
    return rc;
}

/* Growing output buffer: offsets are kept, pointers made at the end. */
typedef struct blob_out {
    char *buf;
    size_t len, cap;
    size_t *off;  /* per batch index: offset in buf, SIZE_MAX when absent */
    size_t *blen; /* per batch index: length */
    int oom;
} blob_out;

static void blob_out_add(blob_out *o, size_t i, const void *data, size_t len) {
    if (o->len + len > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->len + len) cap *= 2;
        char *b = realloc(o->buf, cap);
        if (!b) {
            o->oom = 1;
            return;
        }
        o->buf = b;
        o->cap = cap;
    }
    if (len) memcpy(o->buf + o->len, data, len);
    o->off[i] = o->len;
    o->blen[i] = len;
    o->len += len;
}

typedef struct blob_visit {
    blob_out *o;
    size_t i;
} blob_visit;

static void blob_from_cache(const void *val, size_t len, int64_t ts, void *arg) {
    (void)ts;
    blob_visit *v = arg;
    blob_out_add(v->o, v->i, val, len);
}

typedef struct blob_fill {
    mr_store *st;
    blob_out *o;
    const size_t *midx;   /* miss -> batch index */
    const uint64_t *mids; /* miss ids */
    const uint64_t *mep;  /* cache epochs */
} blob_fill;

static int blob_fill_row(size_t m, const char *v, size_t vlen, void *arg, mr_err *e) {
    blob_fill *f = arg;
    if (!v) return 0;
    const uint8_t *data;
    size_t len;
    int64_t ts;
    if (emb_codec_blob_decode((const uint8_t *)v, vlen, &data, &len, &ts, e)) {
        atomic_fetch_add(&f->st->ctr.corrupt_rows, 1);
        return mr_err_wrap(e, "item %llu", (unsigned long long)f->mids[m]);
    }
    blob_out_add(f->o, f->midx[m], data, len);
    if (f->st->cache)
        cache_insert(f->st->cache, STORE_NS_ITEMS, f->mids[m], data, len, ts, f->mep[m]);
    return 0;
}

int item_store_get(mr_store *st, const uint64_t *ids, size_t n, store_blob *out, void **buf,
                   mr_err *e) {
    *buf = NULL;
    if (n > STORE_MAX_BATCH)
        return mr_err_set(e, MR_EINVAL, "item get: batch of %zu exceeds %u", n, STORE_MAX_BATCH);
    if (n == 0) return 0;
    if (!ids || !out) return mr_err_set(e, MR_EINVAL, "item get: ids and out must be set");
    /* per index: off, blen, midx (size_t) and mids, mep (u64) */
    char *mem = malloc(n * (3 * sizeof(size_t) + 2 * sizeof(uint64_t)));
    if (!mem) return mr_err_set(e, MR_ENOMEM, "item get: out of memory");
    blob_out o = {0};
    o.cap = 4096; /* allocated up front: a present empty blob still gets a non-NULL pointer */
    o.buf = malloc(o.cap);
    if (!o.buf) {
        free(mem);
        return mr_err_set(e, MR_ENOMEM, "item get: out of memory");
    }
    o.off = (size_t *)mem;
    o.blen = o.off + n;
    size_t *midx = o.blen + n, nmiss = 0;
    uint64_t *mids = (uint64_t *)(midx + n), *mep = mids + n;
    for (size_t i = 0; i < n; i++) {
        o.off[i] = SIZE_MAX;
        blob_visit v = {&o, i};
        if (st->cache && cache_visit(st->cache, STORE_NS_ITEMS, ids[i], blob_from_cache, &v))
            continue;
        midx[nmiss] = i;
        mids[nmiss] = ids[i];
        mep[nmiss] = st->cache ? cache_epoch(st->cache, STORE_NS_ITEMS, ids[i]) : 0;
        nmiss++;
    }
    blob_fill f = {st, &o, midx, mids, mep};
    int rc = store_multi_get(st, st->cf[STORE_CF_ITEMS], mids, nmiss, blob_fill_row, &f, e);
    if (!rc && o.oom) rc = mr_err_set(e, MR_ENOMEM, "item get: out of memory");
    if (rc) {
        free(o.buf);
        free(mem);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        out[i].data = o.off[i] == SIZE_MAX ? NULL : o.buf + o.off[i];
        out[i].len = o.off[i] == SIZE_MAX ? 0 : o.blen[i];
    }
    *buf = o.buf;
    free(mem);
    return rc;
}
