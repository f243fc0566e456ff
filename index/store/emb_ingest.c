/* emb_ingest.c — bulk loading of embedding rows with RocksDB's external
 * file ingestion: rows are encoded into one SST file (rocksdb_sstfilewriter)
 * in key order and the file is moved into the table's column family
 * (rocksdb_ingest_external_file_cf), instead of one WriteBatch per chunk.
 *
 * Why: a put goes through the WAL, the memtable, flushes and compactions,
 * so a 10^8-row table costs each byte several writes; an ingested file is
 * written once and linked into the LSM tree (at the bottom level when no
 * key overlaps). The trade-off: ingestion is for filling a table (a new
 * model version), not for updates under load; online updates use
 * emb_store_put. Durability comes from the file itself, synced before it
 * is ingested, and the MANIFEST entry RocksDB writes for it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "index/store/emb_codec.h"
#include "index/store/store_int.h"

int emb_store_ingest(mr_store *st, mr_emb_table *t, const uint64_t *ids, size_t n,
                     const float *vecs, size_t nfloats, const char *tmp_path, mr_err *e) {
    int rc;
    if ((rc = store_check_writable(st, e))) return rc;
    if (!t) return mr_err_set(e, MR_ENOTFOUND, "unknown embedding table");
    const uint32_t dim = t->info.dim;
    if (n == 0) return 0;
    if (!ids || !vecs || !tmp_path)
        return mr_err_set(e, MR_EINVAL, "ids, vecs and tmp_path must not be NULL");
    if (nfloats != n * dim)
        return mr_err_set(e, MR_EINVAL, "table '%s' has dim %u: %zu rows need %zu floats, got %zu",
                          t->info.name, dim, n, n * dim, nfloats);
    for (size_t i = 0; i < n; i++) {
        if (i && ids[i] <= ids[i - 1])
            return mr_err_set(e, MR_EINVAL,
                              "ingest into '%s': ids must be strictly ascending (index %zu)",
                              t->info.name, i);
        if ((rc = emb_codec_check(t->info.encoding, vecs + i * dim, dim, e)))
            return mr_err_wrap(e, "table '%s' row %llu (index %zu)", t->info.name,
                               (unsigned long long)ids[i], i);
    }
    rocksdb_envoptions_t *env = rocksdb_envoptions_create();
    rocksdb_sstfilewriter_t *w = rocksdb_sstfilewriter_create(env, st->emb_opts);
    rocksdb_ingestexternalfileoptions_t *io = rocksdb_ingestexternalfileoptions_create();
    uint8_t *val = malloc(t->row_bytes);
    char *err = NULL;
    int opened = 0;
    if (!env || !w || !io || !val) {
        rc = mr_err_set(e, MR_ENOMEM, "ingest: out of memory");
        goto out;
    }
    rocksdb_sstfilewriter_open(w, tmp_path, &err);
    if (err) goto rerr;
    opened = 1;
    int64_t now = mr_unix_ms();
    for (size_t i = 0; i < n; i++) {
        uint8_t key[8];
        emb_key_encode(ids[i], key);
        emb_codec_encode(t->info.encoding, vecs + i * dim, dim, now, val);
        rocksdb_sstfilewriter_put(w, (const char *)key, 8, (const char *)val, t->row_bytes, &err);
        if (err) goto rerr;
    }
    rocksdb_sstfilewriter_finish(w, &err);
    if (err) goto rerr;
    rocksdb_ingestexternalfileoptions_set_move_files(io, 1);
    const char *files[1] = {tmp_path};
    if (st->cache) cache_write_begin(st->cache, t->info.id, ids, n);
    store_ttl_lock(st, t->info.ttl_s, 1);
    rocksdb_ingest_external_file_cf(st->db, t->cf, files, 1, io, &err);
    store_ttl_lock(st, t->info.ttl_s, 0);
    if (st->cache) { /* cached copies of these ids are stale now */
        for (size_t i = 0; i < n; i++) cache_erase(st->cache, t->info.id, ids[i]);
        cache_write_end(st->cache, t->info.id, ids, n);
    }
    if (err) goto rerr;
    atomic_fetch_add(&st->ctr.rows_written, n);
    goto out;
rerr:
    rc = mr_err_set(e, MR_EINTERNAL, "ingest into '%s' via %s: %s", t->info.name, tmp_path, err);
    free(err);
out:
    if (rc && opened) unlink(tmp_path); /* a moved file is gone; a failed one is removed */
    free(val);
    if (io) rocksdb_ingestexternalfileoptions_destroy(io);
    if (w) rocksdb_sstfilewriter_destroy(w);
    if (env) rocksdb_envoptions_destroy(env);
    return rc;
}
