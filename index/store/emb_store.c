/* emb_store.c — batched reads and writes of embedding rows, through the
 * tiers: memory cache -> optional shared tier -> RocksDB.
 *
 * A batched get looks every id up in the cache (a read lock per shard),
 * sends the misses to the tier, and fetches what is still missing with ONE
 * rocksdb_batched_multi_get_cf over keys sorted in RocksDB's order (sorted
 * input lets RocksDB skip its own sort and walk each SST block once). Rows
 * read from the database are checked and decoded to fp32 for the caller;
 * the cache is offered the row's stored payload (fp32, fp16, or int8 +
 * scale: emb_codec_payload_bytes, so an int8 table's budget holds ~4x the
 * rows of decoded fp32) guarded by the shard epoch (see cache.h), and hits
 * are decoded as they are copied out. The tier gets fp32 rows.
 * A put validates the whole batch before writing anything, commits one
 * WriteBatch, then refreshes cached copies.
 */
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/tensor.h"
#include "index/store/emb_codec.h"
#include "index/store/store_int.h"

typedef struct store_keyref {
    uint64_t id; /* row id */
    size_t i;    /* index in the caller's batch */
} store_keyref;

static int store_keyref_cmp(const void *a, const void *b) {
    uint64_t x = ((const store_keyref *)a)->id, y = ((const store_keyref *)b)->id;
    return (x > y) - (x < y);
}

int store_multi_get(mr_store *st, rocksdb_column_family_handle_t *cf, const uint64_t *ids, size_t n,
                    store_row_fn fn, void *arg, mr_err *e) {
    if (n == 0) return 0;
    /* One allocation: refs, key bytes, key pointers, sizes, values, errors. */
    size_t sz = n * (sizeof(store_keyref) + 8 + sizeof(char *) + sizeof(size_t) +
                     sizeof(rocksdb_pinnableslice_t *) + sizeof(char *));
    char *mem = malloc(sz);
    if (!mem) return mr_err_set(e, MR_ENOMEM, "multi-get of %zu keys: out of memory", n);
    store_keyref *refs = (store_keyref *)mem;
    char **kptr = (char **)(refs + n);
    size_t *ksz = (size_t *)(kptr + n);
    rocksdb_pinnableslice_t **vals = (rocksdb_pinnableslice_t **)(ksz + n);
    char **errs = (char **)(vals + n);
    uint8_t *kbytes = (uint8_t *)(errs + n);
    for (size_t k = 0; k < n; k++) refs[k] = (store_keyref){ids[k], k};
    qsort(refs, n, sizeof *refs, store_keyref_cmp);
    for (size_t k = 0; k < n; k++) {
        emb_key_encode(refs[k].id, kbytes + 8 * k);
        kptr[k] = (char *)kbytes + 8 * k;
        ksz[k] = 8;
    }
    rocksdb_batched_multi_get_cf(st->db, st->ropts, cf, n, (const char *const *)kptr, ksz, vals,
                                 errs, 1);
    atomic_fetch_add(&st->ctr.db_multigets, 1);
    atomic_fetch_add(&st->ctr.db_rows_read, n);
    int rc = 0;
    uint64_t nfound = 0;
    for (size_t k = 0; k < n; k++) {
        if (errs[k]) {
            if (!rc)
                rc = mr_err_set(e, MR_EINTERNAL, "multi-get row %llu: %s",
                                (unsigned long long)refs[k].id, errs[k]);
            free(errs[k]);
            if (vals[k]) rocksdb_pinnableslice_destroy(vals[k]);
            continue;
        }
        size_t vlen = 0;
        const char *v = vals[k] ? rocksdb_pinnableslice_value(vals[k], &vlen) : NULL;
        nfound += v != NULL;
        int frc = fn(refs[k].i, v, vlen, arg, rc ? NULL : e);
        if (frc && !rc) rc = frc;
        if (vals[k]) rocksdb_pinnableslice_destroy(vals[k]);
    }
    atomic_fetch_add(&st->ctr.db_rows_found, nfound);
    free(mem);
    return rc;
}

/* ---- embeddings --------------------------------------------------------- */

typedef struct emb_fill {
    mr_store *st;
    const mr_emb_table *t;
    const uint64_t *ids;   /* the ids asked of the database */
    float *out;            /* (N, dim) the caller's rows */
    const size_t *pos;     /* asked id i -> its row in out; NULL: row i */
    uint8_t *found;        /* n flags */
    const uint64_t *epoch; /* cache epochs taken before the read; NULL: no cache */
    int64_t now_ms;
} emb_fill;

/* Admission (store_config.cache_seen_twice): while the cache has never
 * evicted, every miss is admitted; after that a row is admitted on its
 * second miss since the doorkeeper's last reset, so rows read once (the
 * long tail of a Zipf stream) do not push out rows read again. The
 * doorkeeper is reset after door_bits / 8 keys (about the entries the cache
 * holds), so "twice" means within about one cache's worth of misses. Racy
 * by design (relaxed bits): a lost bit only delays one admission. */
static int store_admit(mr_store *st, uint32_t ns, uint64_t id) {
    if (!st->door || cache_evictions(st->cache) == 0) return 1;
    uint64_t z = id ^ ((uint64_t)ns << 40) ^ 0x6a09e667f3bcc909ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    size_t m = st->door_bits - 1, b1 = (size_t)z & m, b2 = (size_t)(z >> 32) & m;
    uint64_t w1 = 1ull << (b1 & 63), w2 = 1ull << (b2 & 63);
    int seen = (atomic_load_explicit(&st->door[b1 >> 6], memory_order_relaxed) & w1) &&
               (atomic_load_explicit(&st->door[b2 >> 6], memory_order_relaxed) & w2);
    if (seen) return 1;
    atomic_fetch_or_explicit(&st->door[b1 >> 6], w1, memory_order_relaxed);
    atomic_fetch_or_explicit(&st->door[b2 >> 6], w2, memory_order_relaxed);
    if (atomic_fetch_add(&st->door_adds, 1) + 1 >= st->door_bits / 8) {
        atomic_store(&st->door_adds, 0);
        for (size_t k = 0; k < st->door_bits / 64; k++)
            atomic_store_explicit(&st->door[k], 0, memory_order_relaxed);
    }
    return 0;
}

static int emb_fill_row(size_t i, const char *v, size_t len, void *arg, mr_err *e) {
    emb_fill *f = arg;
    const mr_emb_table *t = f->t;
    float *row = f->out + (f->pos ? f->pos[i] : i) * t->info.dim;
    f->found[i] = 0;
    if (!v) {
        memset(row, 0, t->vec_bytes);
        return 0;
    }
    int64_t ts;
    int rc = emb_codec_decode(t->info.encoding, t->info.dim, (const uint8_t *)v, len, row, &ts, e);
    if (rc) {
        atomic_fetch_add(&f->st->ctr.corrupt_rows, 1);
        memset(row, 0, t->vec_bytes);
        return mr_err_wrap(e, "table '%s' row %llu", t->info.name, (unsigned long long)f->ids[i]);
    }
    if (store_expired(ts, t->info.ttl_s, f->now_ms)) {
        atomic_fetch_add(&f->st->ctr.expired_rows, 1);
        atomic_fetch_add(&((mr_emb_table *)t)->expired_reads, 1);
        memset(row, 0, t->vec_bytes);
        return 0;
    }
    f->found[i] = 1;
    if (f->epoch && store_admit(f->st, t->info.id, f->ids[i])) /* the payload, as stored */
        cache_insert(f->st->cache, t->info.id, f->ids[i], v + EMB_HDR_BYTES, t->cache_bytes, ts,
                     f->epoch[i]);
    return 0;
}

static int emb_check_get(const mr_emb_table *t, const uint64_t *ids, size_t n, const float *out,
                         mr_err *e) {
    if (!t) return mr_err_set(e, MR_ENOTFOUND, "unknown embedding table");
    if (n > STORE_MAX_BATCH)
        return mr_err_set(e, MR_EINVAL, "batch of %zu rows exceeds %u", n, STORE_MAX_BATCH);
    if (n && (!ids || !out)) return mr_err_set(e, MR_EINVAL, "ids and out must not be NULL");
    return 0;
}

int emb_store_get_uncached(mr_store *st, mr_emb_table *t, const uint64_t *ids, size_t n, float *out,
                           uint8_t *found, mr_err *e) {
    int rc;
    if ((rc = emb_check_get(t, ids, n, out, e))) return rc;
    uint8_t *fl = found ? found : malloc(n ? n : 1);
    if (!fl) return mr_err_set(e, MR_ENOMEM, "get: out of memory");
    emb_fill f = {st, t, ids, out, NULL, fl, NULL, t->info.ttl_s ? mr_unix_ms() : 0};
    rc = store_multi_get(st, t->cf, ids, n, emb_fill_row, &f, e);
    if (!found) free(fl);
    return rc;
}

int emb_store_get(mr_store *st, mr_emb_table *t, const uint64_t *ids, size_t n, float *out,
                  uint8_t *found, mr_err *e) {
    int rc;
    if ((rc = emb_check_get(t, ids, n, out, e))) return rc;
    const store_tier *tier = store_table_tier(st, t);
    if (!st->cache && !tier) return emb_store_get_uncached(st, t, ids, n, out, found, e);
    const uint32_t dim = t->info.dim;
    const int64_t now = t->info.ttl_s ? mr_unix_ms() : 0;
    /* Scratch for n keys: miss ids, epochs, write times, miss positions
     * (8-byte fields first), hit and found flags, and for fp16/int8 tables
     * the cached payloads of the hits (an fp32 payload is the row itself, so
     * it is copied straight into out). Misses decode straight into out;
     * only a tier needs rows of its own (tier_rows). */
    const int packed = t->info.encoding != EMB_FP32;
    size_t per = 3 * sizeof(uint64_t) + sizeof(size_t) + 2 + (packed ? t->cache_bytes : 0);
    char *mem = malloc(per * n + 64);
    if (!mem) return mr_err_set(e, MR_ENOMEM, "get of %zu rows: out of memory", n);
    uint64_t *mids = (uint64_t *)mem, *mep = mids + n;
    int64_t *tsv = (int64_t *)(mep + n);
    size_t *midx = (size_t *)(tsv + n), nmiss = 0;
    uint8_t *hit = (uint8_t *)(midx + n), *mfound = hit + n, *payload = mfound + n;
    float *tier_rows = NULL;
    if (st->cache) {
        size_t nh = cache_get_batch(st->cache, t->info.id, ids, n,
                                    packed ? (void *)payload : (void *)out, t->cache_bytes, hit,
                                    tsv);
        atomic_fetch_add(&t->cache_hits, nh);
        atomic_fetch_add(&t->cache_misses, n - nh);
    } else memset(hit, 0, n);
    for (size_t i = 0; i < n; i++) {
        if (hit[i] && store_expired(tsv[i], t->info.ttl_s, now)) {
            cache_erase(st->cache, t->info.id, ids[i]);
            hit[i] = 0;
        }
        if (hit[i] && packed) /* decode on copy-out */
            emb_codec_payload_decode(t->info.encoding, dim, payload + i * t->cache_bytes,
                                     out + i * dim);
        if (found) found[i] = hit[i];
        if (hit[i]) continue;
        midx[nmiss] = i;
        mids[nmiss] = ids[i];
        mep[nmiss] = st->cache ? cache_epoch(st->cache, t->info.id, ids[i]) : 0;
        mfound[nmiss] = 0;
        nmiss++;
    }
    if (nmiss && tier) {
        tier_rows = mr_floats_alloc(nmiss * dim + (t->row_bytes + 3) / 4);
        if (!tier_rows) {
            free(mem);
            return mr_err_set(e, MR_ENOMEM, "get: out of memory for the tier");
        }
    }
    /* Tier: answered rows drop out of the miss list. */
    if (tier_rows && tier->get &&
        tier->get(tier->ctx, t->tier_key, dim, mids, nmiss, tier_rows, mfound, NULL) == 0) {
        size_t k = 0;
        for (size_t m = 0; m < nmiss; m++) {
            const float *r = tier_rows + m * dim;
            if (mfound[m] && mr_all_finite(r, dim)) {
                memcpy(out + midx[m] * dim, r, t->vec_bytes);
                if (found) found[midx[m]] = 1;
                if (st->cache) { /* cached in the table's encoding, as a read would */
                    uint8_t *enc = (uint8_t *)(tier_rows + nmiss * dim);
                    emb_codec_encode(t->info.encoding, r, dim, now, enc);
                    cache_insert(st->cache, t->info.id, mids[m], enc + EMB_HDR_BYTES,
                                 t->cache_bytes, now, mep[m]);
                }
                atomic_fetch_add(&st->ctr.tier_hits, 1);
                continue;
            }
            midx[k] = midx[m];
            mids[k] = mids[m];
            mep[k] = mep[m];
            mfound[k] = 0;
            k++;
        }
        nmiss = k;
    }
    emb_fill f = {st, t, mids, out, midx, mfound, st->cache ? mep : NULL, now};
    rc = nmiss ? store_multi_get(st, t->cf, mids, nmiss, emb_fill_row, &f, e) : 0;
    size_t nfound = 0;
    for (size_t m = 0; m < nmiss; m++) {
        if (found) found[midx[m]] = mfound[m];
        /* gather found rows for the tier, unless a write or delete of the
         * row's stripe ended since the read began (its epoch moved); the
         * tier itself keeps a delete's marker against a later fill */
        if (tier_rows && mfound[m] &&
            (!st->cache || cache_epoch(st->cache, t->info.id, mids[m]) == mep[m])) {
            mids[nfound] = mids[m];
            memcpy(tier_rows + nfound * dim, out + midx[m] * dim, t->vec_bytes);
            nfound++;
        }
    }
    if (tier_rows && tier->put && nfound)
        tier->put(tier->ctx, t->tier_key, dim, mids, nfound, tier_rows, 1, NULL);
    mr_floats_free(tier_rows);
    free(mem);
    return rc;
}

static int emb_put(mr_store *st, mr_emb_table *t, const uint64_t *ids, size_t n, const float *vecs,
                   size_t nfloats, int sync, mr_err *e) {
    int rc;
    if ((rc = store_check_writable(st, e))) return rc;
    if (!t) return mr_err_set(e, MR_ENOTFOUND, "unknown embedding table");
    const uint32_t dim = t->info.dim;
    if (n > STORE_MAX_BATCH)
        return mr_err_set(e, MR_EINVAL, "batch of %zu rows exceeds %u", n, STORE_MAX_BATCH);
    if (n && (!ids || !vecs)) return mr_err_set(e, MR_EINVAL, "ids and vecs must not be NULL");
    if (nfloats != n * dim)
        return mr_err_set(e, MR_EINVAL, "table '%s' has dim %u: %zu rows need %zu floats, got %zu",
                          t->info.name, dim, n, n * dim, nfloats);
    for (size_t i = 0; i < n; i++)
        if ((rc = emb_codec_check(t->info.encoding, vecs + i * dim, dim, e)))
            return mr_err_wrap(e, "table '%s' row %llu (batch index %zu)", t->info.name,
                               (unsigned long long)ids[i], i);
    if (n == 0) return 0;
    uint8_t *buf = malloc(n * (t->row_bytes + 8));
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    if (!buf || !wb) {
        free(buf);
        if (wb) rocksdb_writebatch_destroy(wb);
        return mr_err_set(e, MR_ENOMEM, "put of %zu rows: out of memory", n);
    }
    int64_t now = store_write_clock_ms();
    for (size_t i = 0; i < n; i++) {
        uint8_t *k = buf + i * (t->row_bytes + 8), *v = k + 8;
        emb_key_encode(ids[i], k);
        emb_codec_encode(t->info.encoding, vecs + i * dim, dim, now, v);
        rocksdb_writebatch_put_cf(wb, t->cf, (const char *)k, 8, (const char *)v, t->row_bytes);
    }
    if (st->cache) cache_write_begin(st->cache, t->info.id, ids, n); /* see cache.h */
    store_ttl_lock(st, t->info.ttl_s, 1);
    rc = sync ? store_write_synced(st, wb, e) : store_write(st, wb, e);
    store_ttl_lock(st, t->info.ttl_s, 0);
    rocksdb_writebatch_destroy(wb);
    if (!rc) {
        atomic_fetch_add(&st->ctr.rows_written, n);
        /* Refresh cached copies with the written payloads and the tier
         * with what a reader would decode (lossy encodings included), so
         * every tier agrees with RocksDB. */
        for (size_t i = 0; st->cache && i < n; i++)
            cache_update(st->cache, t->info.id, ids[i],
                         buf + i * (t->row_bytes + 8) + 8 + EMB_HDR_BYTES, t->cache_bytes, now);
        const store_tier *tier = store_table_tier(st, t);
        float *rows = tier ? mr_floats_alloc(n * dim) : NULL;
        for (size_t i = 0; rows && i < n; i++) {
            const uint8_t *v = buf + i * (t->row_bytes + 8) + 8;
            emb_codec_decode(t->info.encoding, dim, v, t->row_bytes, rows + i * dim, NULL, NULL);
        }
        if (rows && tier->put) tier->put(tier->ctx, t->tier_key, dim, ids, n, rows, 0, NULL);
        mr_floats_free(rows);
    }
    if (st->cache) cache_write_end(st->cache, t->info.id, ids, n);
    free(buf);
    return rc;
}

int emb_store_put(mr_store *st, mr_emb_table *t, const uint64_t *ids, size_t n, const float *vecs,
                  size_t nfloats, mr_err *e) {
    return emb_put(st, t, ids, n, vecs, nfloats, 0, e);
}

int emb_store_put_sync(mr_store *st, mr_emb_table *t, const uint64_t *ids, size_t n,
                       const float *vecs, size_t nfloats, mr_err *e) {
    return emb_put(st, t, ids, n, vecs, nfloats, 1, e);
}
