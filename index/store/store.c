/* store.c — opening moerec's RocksDB database: column families, options
 * tuned for point reads, the table schema kept in meta, checkpoints,
 * secondaries, TTL sweeps and stats.
 *
 * Options: one LRU block cache shared by every family; full bloom filters
 * (10 bits/key); index and filter blocks held by the table readers (not
 * evictable by data blocks); format_version 5;
 * a hash index inside data blocks for point lookups. Embedding families are
 * not compressed (random floats do not compress; decompression would only
 * cost CPU on the read path); the others use lz4. The events family has an
 * 8-byte prefix extractor (the user id) so per-user scans use prefix blooms.
 * Schema in meta: "table/<name>" -> (version, id, dim, encoding, ttl).
 */
#include "index/store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/name.h"
#include <xxhash.h>
#include "index/store/emb_codec.h"

const char *const store_cf_names[STORE_CF_FIXED] = {"default", "meta", "items",  "users",
                                                    "events",  "sdim", "itemlog"};

#define STORE_META_VERSION 1u

void store_config_init(store_config *c) {
    memset(c, 0, sizeof *c);
    c->mode = STORE_PRIMARY;
    c->cache_bytes = 256u << 20;
    c->cache_shards = 64;
    c->block_cache_bytes = 64u << 20;
    c->memtable_bytes = 64u << 20;
    c->max_value_bytes = 1u << 20;
    c->mmap_reads = 1;
}

/* Take ownership of a RocksDB error string. */
int store_rocks_err(mr_err *e, int code, char *err, const char *what) {
    int rc = mr_err_set(e, code, "%s: %s", what, err ? err : "unknown RocksDB error");
    free(err);
    return rc;
}

int store_check_writable(const mr_store *st, mr_err *e) {
    if (st->cfg.mode != STORE_PRIMARY)
        return mr_err_set(e, MR_EPERM, "store is open %s: writes need the primary",
                          st->cfg.mode == STORE_READ_ONLY ? "read-only" : "as a secondary");
    return 0;
}

/* The update-log sequence the calling thread is applying (0 = none): every
 * batch it writes records it in the same batch (store_log_seq_begin).
 * The meta row is 8 bytes (seq: records up to seq are whole) or, while a
 * record that spans batches is being applied, 16 bytes (seq, 1): part of
 * record seq is stored, so the applied sequence is seq - 1 and a replay
 * applies record seq again, whole (its writes are puts and deletes with
 * the record's time, so a second pass writes the same rows). */
static _Thread_local uint64_t tl_log_seq;
static _Thread_local int64_t tl_log_time_ms; /* the record's time: rows' write clock */
static _Thread_local int tl_log_open;        /* the record may span batches, not committed */
#define STORE_LOG_SEQ_KEY "log_applied_seq"

void store_log_seq_begin(uint64_t seq, int64_t time_ms) {
    tl_log_seq = seq;
    tl_log_time_ms = time_ms;
    tl_log_open = 0;
}
void store_log_seq_begin_multi(uint64_t seq, int64_t time_ms) {
    store_log_seq_begin(seq, time_ms);
    tl_log_open = 1;
}
int store_log_seq_commit(mr_store *st, mr_err *e) {
    if (!tl_log_seq || !tl_log_open) return 0;
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    if (!wb) return mr_err_set(e, MR_ENOMEM, "log sequence: out of memory");
    tl_log_open = 0; /* this batch records the record as whole */
    int rc = store_write(st, wb, e);
    if (rc) tl_log_open = 1;
    rocksdb_writebatch_destroy(wb);
    return rc;
}
void store_log_seq_end(void) { tl_log_seq = 0, tl_log_time_ms = 0, tl_log_open = 0; }
int64_t store_write_clock_ms(void) { return tl_log_time_ms ? tl_log_time_ms : mr_unix_ms(); }

/* xxh3 over every key and value of one family, in key order. */
static int store_digest_cf(mr_store *st, rocksdb_column_family_handle_t *cf, XXH3_state_t *h,
                           uint64_t *nrows, mr_err *e) {
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, st->ropts, cf);
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl), *v = rocksdb_iter_value(it, &vl);
        uint64_t lens[2] = {kl, vl};
        XXH3_64bits_update(h, lens, sizeof lens);
        XXH3_64bits_update(h, k, kl);
        XXH3_64bits_update(h, v, vl);
        (*nrows)++;
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    return err ? store_rocks_err(e, MR_EINTERNAL, err, "digest: scan") : 0;
}

int store_digest(mr_store *st, uint64_t *digest, uint64_t *nrows, mr_err *e) {
    XXH3_state_t *h = XXH3_createState();
    if (!h) return mr_err_set(e, MR_ENOMEM, "digest: out of memory");
    XXH3_64bits_reset(h);
    *nrows = 0;
    int rc = 0;
    for (int c = STORE_CF_ITEMS; c < STORE_CF_FIXED && !rc; c++)
        rc = store_digest_cf(st, st->cf[c], h, nrows, e);
    pthread_rwlock_rdlock(&st->tables_rw);
    int nt = atomic_load(&st->ntables);
    for (int i = 0; i < nt && !rc; i++) {
        if (!st->tables[i].cf) continue; /* dropped */
        XXH3_64bits_update(h, st->tables[i].info.name, strlen(st->tables[i].info.name));
        rc = store_digest_cf(st, st->tables[i].cf, h, nrows, e);
    }
    pthread_rwlock_unlock(&st->tables_rw);
    *digest = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    return rc;
}

int store_log_seq_get(mr_store *st, uint64_t *seq, mr_err *e) {
    *seq = 0;
    char *err = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get_cf(st->db, st->ropts, st->cf[STORE_CF_META], STORE_LOG_SEQ_KEY,
                             strlen(STORE_LOG_SEQ_KEY), &vlen, &err);
    if (err) return store_rocks_err(e, MR_EINTERNAL, err, "read the applied log sequence");
    int rc = 0;
    uint64_t x[2] = {0, 0};
    if (v && (vlen == 8 || vlen == 16)) memcpy(x, v, vlen);
    if (v && vlen == 8) *seq = x[0];
    else if (v && vlen == 16 && x[1] == 1 && x[0] > 0)
        *seq = x[0] - 1; /* record x[0] is partly stored: it is applied again */
    else if (v)
        rc = mr_err_set(e, MR_ECORRUPT, "applied log sequence: %zu bytes, want 8 or 16", vlen);
    free(v);
    return rc;
}

/* The status of a failed write: a full disk is RESOURCE_EXHAUSTED, any
 * other I/O error (and the background error RocksDB then keeps answering
 * until it has recovered) UNAVAILABLE — both mean "try again later", and
 * the batch was not applied; anything else is INTERNAL. */
static int store_write_err_code(const char *err) {
    if (!err) return MR_EINTERNAL;
    if (strstr(err, "No space left") || strstr(err, "NoSpace")) return MR_ENOMEM;
    if (!strncmp(err, "IO error", 8) || strstr(err, "background error")) return MR_EUNAVAIL;
    return MR_EINTERNAL;
}

static int store_write_with(mr_store *st, const rocksdb_writeoptions_t *wo,
                            rocksdb_writebatch_t *wb, mr_err *e) {
    char *err = NULL;
    if (tl_log_seq) { /* the record's writes and "applied up to here" commit together */
        uint64_t v[2] = {tl_log_seq, 1};
        rocksdb_writebatch_put_cf(wb, st->cf[STORE_CF_META], STORE_LOG_SEQ_KEY,
                                  strlen(STORE_LOG_SEQ_KEY), (const char *)v, tl_log_open ? 16 : 8);
    }
    rocksdb_write(st->db, wo, wb, &err);
    if (err) return store_rocks_err(e, store_write_err_code(err), err, "write batch");
    atomic_fetch_add(&st->ctr.batches_written, 1);
    return 0;
}

int store_write(mr_store *st, rocksdb_writebatch_t *wb, mr_err *e) {
    return store_write_with(st, st->wopts, wb, e);
}

int store_write_synced(mr_store *st, rocksdb_writebatch_t *wb, mr_err *e) {
    return store_write_with(st, st->wopts_sync, wb, e);
}

static void store_meta_encode(const emb_table_info *t, uint8_t out[24]) {
    uint32_t v[4] = {STORE_META_VERSION, t->id, t->dim, (uint32_t)t->encoding};
    memcpy(out, v, 16);
    memcpy(out + 16, &t->ttl_s, 8);
}

static int store_meta_decode(const char *name, const char *v, size_t len, emb_table_info *t,
                             mr_err *e) {
    uint32_t u[4];
    if (len != 24) return mr_err_set(e, MR_ECORRUPT, "meta for table '%s' is %zu bytes", name, len);
    memcpy(u, v, 16);
    if (u[0] != STORE_META_VERSION || u[2] == 0 || u[2] > 65535 || u[3] > EMB_INT8)
        return mr_err_set(e, MR_ECORRUPT, "meta for table '%s' is invalid (version %u)", name,
                          u[0]);
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->id = u[1];
    t->dim = u[2];
    t->encoding = (emb_encoding)u[3];
    memcpy(&t->ttl_s, v + 16, 8);
    return 0;
}

uint64_t store_tier_key(const char *table_name) {
    return XXH3_64bits(table_name, strlen(table_name));
}

static void store_table_fill(mr_emb_table *t, const emb_table_info *info,
                             rocksdb_column_family_handle_t *cf) {
    t->info = *info;
    t->cf = cf;
    t->row_bytes = emb_codec_row_bytes(info->encoding, info->dim);
    t->vec_bytes = (size_t)info->dim * sizeof(float);
    t->cache_bytes = emb_codec_payload_bytes(info->encoding, info->dim);
    t->tier_key = store_tier_key(info->name);
    atomic_store(&t->cache_hits, 0);
    atomic_store(&t->cache_misses, 0);
    atomic_store(&t->expired_reads, 0);
    atomic_store(&t->ttl_evictions, 0);
}

static int store_make_options(mr_store *st) {
    st->db_opts = rocksdb_options_create();
    st->bbo = rocksdb_block_based_options_create();
    st->block_cache = rocksdb_cache_create_lru(st->cfg.block_cache_bytes);
    st->ropts = rocksdb_readoptions_create();
    st->wopts = rocksdb_writeoptions_create();
    st->wopts_sync = rocksdb_writeoptions_create();
    if (!st->db_opts || !st->bbo || !st->block_cache || !st->ropts || !st->wopts || !st->wopts_sync)
        return -1;
    rocksdb_writeoptions_set_sync(st->wopts_sync, 1);
    rocksdb_block_based_options_set_block_cache(st->bbo, st->block_cache);
    rocksdb_block_based_options_set_filter_policy(st->bbo,
                                                  rocksdb_filterpolicy_create_bloom_full(10));
    /* Index and filter blocks live in the table readers, outside the block
     * cache: with them in the cache, a stream of cold data blocks evicted
     * the (hundreds of KiB) index blocks and every cold lookup re-read one
     * (measured: ~25 us per miss on a 10M-row table vs a few us without). */
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(st->bbo, 0);
    rocksdb_block_based_options_set_format_version(st->bbo, 5);
    rocksdb_block_based_options_set_data_block_index_type(
        st->bbo, rocksdb_block_based_table_data_block_index_type_binary_search_and_hash);
    rocksdb_block_based_options_set_data_block_hash_ratio(st->bbo, 0.75);

    rocksdb_options_set_create_if_missing(st->db_opts, st->cfg.mode == STORE_PRIMARY);
    rocksdb_options_set_create_missing_column_families(st->db_opts, st->cfg.mode == STORE_PRIMARY);
    rocksdb_options_increase_parallelism(st->db_opts, 2);
    /* Writers wait on a condition variable instead of spinning with
     * sched_yield: on a few shared cores spinning only steals the CPU
     * the WAL writer needs (measured: sched_yield was a quarter of the
     * append profile). */
    rocksdb_options_set_enable_write_thread_adaptive_yield(st->db_opts, 0);
    /* One budget for the memtables of every family (RocksDB's write buffer
     * manager): past it the largest memtable is flushed. Without it each
     * family may hold two full write buffers, so RSS under an event stream
     * climbed for many minutes (SDIM rows rewritten on every append) before
     * the first flush. */
    rocksdb_options_set_db_write_buffer_size(st->db_opts, st->cfg.memtable_bytes);
    size_t wbuf = st->cfg.memtable_bytes / 2 < (64u << 20) ? st->cfg.memtable_bytes / 2 : 64u << 20;
    if (wbuf < (1u << 20)) wbuf = 1u << 20;
    rocksdb_options_set_write_buffer_size(st->db_opts, wbuf);
    rocksdb_options_set_block_based_table_factory(st->db_opts, st->bbo);
    rocksdb_options_set_compression(st->db_opts, rocksdb_lz4_compression);
    /* mmap reads: a data block already in the page cache is read without a
     * pread syscall and a copy. Cache misses of the memory cache are the
     * coldest rows, so this is their common case (measured on a 10M-row
     * table: cached-path p50 489 -> 387 us per 1,000-row batch). */
    rocksdb_options_set_allow_mmap_reads(st->db_opts, (unsigned char)(st->cfg.mmap_reads != 0));
    if (st->cfg.mode == STORE_SECONDARY) rocksdb_options_set_max_open_files(st->db_opts, -1);

    st->point_opts = rocksdb_options_create_copy(st->db_opts);
    st->emb_opts = rocksdb_options_create_copy(st->db_opts);
    st->events_opts = rocksdb_options_create_copy(st->db_opts);
    st->sdim_opts = rocksdb_options_create_copy(st->db_opts);
    if (!st->point_opts || !st->emb_opts || !st->events_opts || !st->sdim_opts) return -1;
    rocksdb_options_set_compression(st->emb_opts, rocksdb_no_compression);
    /* SDIM rows are tens of KiB of floats rewritten on every append: no
     * compression; their memtable may take the whole budget, so fewer
     * flushes rewrite them. */
    rocksdb_options_set_compression(st->sdim_opts, rocksdb_no_compression);
    rocksdb_options_set_write_buffer_size(st->sdim_opts, st->cfg.memtable_bytes);

    rocksdb_options_set_prefix_extractor(st->events_opts,
                                         rocksdb_slicetransform_create_fixed_prefix(8));
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(st->events_opts, 0.05);

    rocksdb_writeoptions_set_sync(st->wopts, (unsigned char)(st->cfg.sync != 0));
    if (st->cfg.no_wal) rocksdb_writeoptions_disable_WAL(st->wopts, 1);
    return 0;
}

static const rocksdb_options_t *store_cf_options(const mr_store *st, const char *name) {
    if (strncmp(name, "emb.", 4) == 0) return st->emb_opts;
    if (strcmp(name, "events") == 0) return st->events_opts;
    if (strcmp(name, "sdim") == 0) return st->sdim_opts;
    return st->point_opts;
}

/* Read every "table/<name>" row of meta and bind it to its family. */
static int store_load_tables(mr_store *st, char **names, rocksdb_column_family_handle_t **h,
                             size_t n, mr_err *e) {
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, st->ropts, st->cf[STORE_CF_META]);
    int rc = 0, nt = 0;
    size_t plen = strlen(STORE_META_TABLE_PREFIX);
    for (rocksdb_iter_seek(it, STORE_META_TABLE_PREFIX, plen); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        if (klen < plen || memcmp(k, STORE_META_TABLE_PREFIX, plen) != 0) break;
        char name[STORE_TABLE_NAME_MAX], cfname[STORE_TABLE_NAME_MAX + 16];
        if (klen - plen >= STORE_TABLE_NAME_MAX) {
            rc = mr_err_set(e, MR_ECORRUPT, "meta holds an over-long table name");
            break;
        }
        memcpy(name, k + plen, klen - plen);
        name[klen - plen] = '\0';
        emb_table_info info;
        if ((rc = store_meta_decode(name, v, vlen, &info, e))) break;
        snprintf(cfname, sizeof cfname, "emb.%s", name);
        rocksdb_column_family_handle_t *cf = NULL;
        for (size_t i = 0; i < n; i++)
            if (strcmp(names[i], cfname) == 0) cf = h[i];
        if (!cf) {
            rc = mr_err_set(e, MR_ECORRUPT, "table '%s' has no column family '%s'", name, cfname);
            break;
        }
        if (nt == STORE_MAX_TABLES) {
            rc = mr_err_set(e, MR_ENOMEM, "more than %d tables", STORE_MAX_TABLES);
            break;
        }
        store_table_fill(&st->tables[nt++], &info, cf);
        if (info.id >= st->next_id) st->next_id = info.id + 1;
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    if (err && !rc) rc = store_rocks_err(e, MR_EINTERNAL, err, "open store: read table schema");
    else free(err);
    rocksdb_iter_destroy(it);
    atomic_store(&st->ntables, nt);
    return rc;
}

/* Open with the union of the existing families and the fixed ones. */
static int store_open_db(mr_store *st, const char *path, mr_err *e) {
    char *err = NULL;
    size_t nexist = 0;
    char **exist = rocksdb_list_column_families(st->db_opts, path, &nexist, &err);
    if (err) {
        free(exist); /* RocksDB returns malloc(0) even on failure */
        if (st->cfg.mode != STORE_PRIMARY)
            return store_rocks_err(e, MR_ENOTFOUND, err, "open store");
        free(err); /* a new database */
        err = NULL;
        exist = NULL;
        nexist = 0;
    }
    size_t cap = nexist + STORE_CF_FIXED, n = 0;
    char **names = calloc(cap, sizeof *names);
    const rocksdb_options_t **opts = calloc(cap, sizeof *opts);
    rocksdb_column_family_handle_t **h = calloc(cap, sizeof *h);
    int rc = 0;
    if (!names || !opts || !h) {
        rc = mr_err_set(e, MR_ENOMEM, "open store: out of memory");
        goto out;
    }
    for (int f = 0; f < STORE_CF_FIXED; f++) names[n++] = strdup(store_cf_names[f]);
    for (size_t i = 0; i < nexist; i++) {
        int fixed = 0;
        for (int f = 0; f < STORE_CF_FIXED; f++) fixed |= strcmp(exist[i], store_cf_names[f]) == 0;
        if (!fixed) names[n++] = strdup(exist[i]);
    }
    for (size_t i = 0; i < n; i++) {
        if (!names[i]) {
            rc = mr_err_set(e, MR_ENOMEM, "open store: out of memory");
            goto out;
        }
        opts[i] = store_cf_options(st, names[i]);
    }
    if (st->cfg.mode == STORE_PRIMARY)
        st->db = rocksdb_open_column_families(st->db_opts, path, (int)n, (const char *const *)names,
                                              opts, h, &err);
    else if (st->cfg.mode == STORE_READ_ONLY)
        st->db = rocksdb_open_for_read_only_column_families(
            st->db_opts, path, (int)n, (const char *const *)names, opts, h, 0, &err);
    else
        st->db = rocksdb_open_as_secondary_column_families(
            st->db_opts, path, st->cfg.secondary_path, (int)n, (const char *const *)names, opts, h,
            &err);
    if (err) {
        rc = store_rocks_err(e, MR_EUNAVAIL, err, "open store");
        goto out;
    }
    for (int f = 0; f < STORE_CF_FIXED; f++) st->cf[f] = h[f];
    rc = store_load_tables(st, names, h, n, e);
    /* Families of no known table: on a replica, a table being created when
     * we opened (release the handle); on the primary, a create that crashed
     * between the family and its schema row. Such a family never held a
     * row (the table is published after the schema row), and left in place
     * it would make every later emb_table_create of that name fail with
     * "column family already exists": drop it. */
    for (size_t i = STORE_CF_FIXED; i < n; i++) {
        int used = 0;
        for (int t = 0; t < atomic_load(&st->ntables); t++) used |= st->tables[t].cf == h[i];
        if (used || !h[i]) continue;
        if (!rc && st->cfg.mode == STORE_PRIMARY && strncmp(names[i], "emb.", 4) == 0) {
            rocksdb_drop_column_family(st->db, h[i], &err);
            if (err) rc = store_rocks_err(e, MR_EINTERNAL, err, "open store: drop orphan family");
            err = NULL;
        }
        rocksdb_column_family_handle_destroy(h[i]);
    }
out:
    if (names)
        for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    free(opts);
    free(h);
    if (exist) rocksdb_list_column_families_destroy(exist, nexist);
    return rc;
}

int store_open(mr_store **out, const char *path, const store_config *cfg, mr_err *e) {
    *out = NULL;
    store_config def;
    if (!cfg) {
        store_config_init(&def);
        cfg = &def;
    }
    if (cfg->mode == STORE_SECONDARY && !cfg->secondary_path)
        return mr_err_set(e, MR_EINVAL, "a secondary needs secondary_path");
    mr_store *st = calloc(1, sizeof *st);
    if (!st) return mr_err_set(e, MR_ENOMEM, "open store: out of memory");
    st->cfg = *cfg;
    if (!st->cfg.block_cache_bytes) st->cfg.block_cache_bytes = 64u << 20;
    if (!st->cfg.memtable_bytes) st->cfg.memtable_bytes = 64u << 20;
    if (!st->cfg.max_value_bytes) st->cfg.max_value_bytes = 1u << 20;
    if (st->cfg.cache_shards <= 0) st->cfg.cache_shards = 64;
    pthread_mutex_init(&st->table_mu, NULL);
    pthread_rwlock_init(&st->tables_rw, NULL);
    pthread_rwlockattr_t attr; /* a sweep must not starve behind a stream of puts */
    pthread_rwlockattr_init(&attr);
#ifdef __GLIBC__
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    pthread_rwlock_init(&st->ttl_mu, &attr);
    pthread_rwlockattr_destroy(&attr);
    int rc;
    if (store_make_options(st)) {
        rc = mr_err_set(e, MR_ENOMEM, "open store: out of memory");
        goto err;
    }
    if ((rc = store_open_db(st, path, e))) goto err;
    if (st->cfg.cache_bytes) {
        st->cache = cache_create(st->cfg.cache_bytes, st->cfg.cache_shards);
        if (!st->cache) {
            rc = mr_err_set(e, MR_ENOMEM, "open store: cache of %zu bytes", st->cfg.cache_bytes);
            goto err;
        }
        if (st->cfg.cache_seen_twice) { /* 8 bits per entry of ~128 bytes the cache can hold */
            size_t want = st->cfg.cache_bytes / 16, bits = 1u << 16;
            while (bits < want && bits < ((size_t)1 << 34)) bits <<= 1;
            st->door = calloc(bits / 64, sizeof *st->door);
            if (!st->door) {
                rc = mr_err_set(e, MR_ENOMEM, "open store: doorkeeper of %zu bits", bits);
                goto err;
            }
            st->door_bits = bits;
        }
    }
    *out = st;
    return 0;
err:
    store_close(st);
    return rc;
}

void store_close(mr_store *st) {
    if (!st) return;
    for (int t = 0; t < atomic_load(&st->ntables); t++)
        if (st->tables[t].cf) rocksdb_column_family_handle_destroy(st->tables[t].cf);
    for (int f = 0; f < STORE_CF_FIXED; f++)
        if (st->cf[f]) rocksdb_column_family_handle_destroy(st->cf[f]);
    if (st->db) {
        if (st->cfg.no_wal && st->cfg.mode == STORE_PRIMARY) { /* bulk load: persist memtables */
            char *err = NULL;
            rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
            rocksdb_flushoptions_set_wait(fo, 1);
            rocksdb_flush(st->db, fo, &err);
            if (err) mr_error("store: flush on close failed: %s", err);
            free(err);
            rocksdb_flushoptions_destroy(fo);
        }
        rocksdb_close(st->db);
    }
    if (st->ropts) rocksdb_readoptions_destroy(st->ropts);
    if (st->wopts) rocksdb_writeoptions_destroy(st->wopts);
    if (st->wopts_sync) rocksdb_writeoptions_destroy(st->wopts_sync);
    if (st->point_opts) rocksdb_options_destroy(st->point_opts);
    if (st->emb_opts) rocksdb_options_destroy(st->emb_opts);
    if (st->events_opts) rocksdb_options_destroy(st->events_opts);
    if (st->sdim_opts) rocksdb_options_destroy(st->sdim_opts);
    if (st->db_opts) rocksdb_options_destroy(st->db_opts);
    if (st->bbo) rocksdb_block_based_options_destroy(st->bbo);
    if (st->block_cache) rocksdb_cache_destroy(st->block_cache);
    cache_free(st->cache);
    free((void *)st->door);
    pthread_mutex_destroy(&st->table_mu);
    pthread_rwlock_destroy(&st->tables_rw);
    pthread_rwlock_destroy(&st->ttl_mu);
    free(st);
}

int emb_table_create(mr_store *st, const char *name, uint32_t dim, emb_encoding enc, int64_t ttl_s,
                     mr_err *e) {
    int rc;
    if ((rc = store_check_writable(st, e))) return rc;
    if ((rc = mr_name_check("table name", name, STORE_TABLE_NAME_MAX, e))) return rc;
    if (dim == 0 || dim > 65535) return mr_err_set(e, MR_EINVAL, "dim %u not in 1..65535", dim);
    if (enc != EMB_FP32 && enc != EMB_FP16 && enc != EMB_INT8)
        return mr_err_set(e, MR_EINVAL, "unknown encoding %d", (int)enc);
    if (ttl_s < 0) return mr_err_set(e, MR_EINVAL, "ttl %lld < 0", (long long)ttl_s);
    pthread_mutex_lock(&st->table_mu);
    int nt = atomic_load(&st->ntables), slot = nt;
    for (int i = 0; i < nt; i++) {
        const emb_table_info *o = &st->tables[i].info;
        if (!st->tables[i].cf && slot == nt) slot = i; /* a dropped table's slot */
        if (strcmp(o->name, name) != 0) continue;
        rc = (o->dim == dim && o->encoding == enc && o->ttl_s == ttl_s)
                 ? 0
                 : mr_err_set(e, MR_EEXIST, "table '%s' exists with dim %u encoding %d ttl %lld",
                              name, o->dim, (int)o->encoding, (long long)o->ttl_s);
        goto out;
    }
    if (slot == STORE_MAX_TABLES) {
        rc = mr_err_set(e, MR_ENOMEM, "at most %d embedding tables", STORE_MAX_TABLES);
        goto out;
    }
    emb_table_info info = {.id = st->next_id, .dim = dim, .encoding = enc, .ttl_s = ttl_s};
    snprintf(info.name, sizeof info.name, "%s", name);
    char cfname[STORE_TABLE_NAME_MAX + 8], key[STORE_TABLE_NAME_MAX + 8], *err = NULL;
    snprintf(cfname, sizeof cfname, "emb.%s", name);
    rocksdb_column_family_handle_t *cf = rocksdb_create_column_family(st->db, st->emb_opts, cfname,
                                                                      &err);
    if (err) {
        rc = store_rocks_err(e, MR_EINTERNAL, err, "create table");
        goto out;
    }
    uint8_t v[24];
    store_meta_encode(&info, v);
    int klen = snprintf(key, sizeof key, STORE_META_TABLE_PREFIX "%s", name);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create(); /* schema: always synced */
    rocksdb_writeoptions_set_sync(wo, 1);
    rocksdb_put_cf(st->db, wo, st->cf[STORE_CF_META], key, (size_t)klen, (const char *)v, sizeof v,
                   &err);
    rocksdb_writeoptions_destroy(wo);
    if (err) {
        rc = store_rocks_err(e, MR_EINTERNAL, err, "create table: write meta");
        err = NULL; /* drop the family, or this name stays uncreatable until a reopen */
        rocksdb_drop_column_family(st->db, cf, &err);
        free(err);
        rocksdb_column_family_handle_destroy(cf);
        goto out;
    }
    st->next_id++;
    pthread_rwlock_wrlock(&st->tables_rw);
    store_table_fill(&st->tables[slot], &info, cf);
    if (slot == nt) atomic_store(&st->ntables, nt + 1); /* publish after the slot is filled */
    pthread_rwlock_unlock(&st->tables_rw);
    rc = 0;
out:
    pthread_mutex_unlock(&st->table_mu);
    return rc;
}

mr_emb_table *store_table_find(mr_store *st, const char *name) {
    int nt = atomic_load(&st->ntables);
    for (int i = 0; name && name[0] && i < nt; i++)
        if (st->tables[i].cf && strcmp(st->tables[i].info.name, name) == 0) return &st->tables[i];
    return NULL;
}

mr_emb_table *emb_store_table(mr_store *st, const char *name, mr_err *e) {
    pthread_rwlock_rdlock(&st->tables_rw);
    mr_emb_table *t = store_table_find(st, name);
    pthread_rwlock_unlock(&st->tables_rw);
    if (!t) mr_err_set(e, MR_ENOTFOUND, "unknown embedding table '%s'", name ? name : "(null)");
    return t;
}

void emb_table_get_info(const mr_emb_table *t, emb_table_info *info) { *info = t->info; }

int emb_store_ntables(const mr_store *st) { return emb_table_list((mr_store *)st, NULL, NULL, 0); }

int store_checkpoint(mr_store *st, const char *dir, mr_err *e) {
    char *err = NULL;
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(st->db, &err);
    if (err) return store_rocks_err(e, MR_EINTERNAL, err, "checkpoint");
    rocksdb_checkpoint_create(cp, dir, 0, &err);
    rocksdb_checkpoint_object_destroy(cp);
    if (err) return store_rocks_err(e, MR_EINTERNAL, err, "checkpoint");
    return 0;
}

int store_catch_up(mr_store *st, mr_err *e) {
    if (st->cfg.mode != STORE_SECONDARY)
        return mr_err_set(e, MR_ESTATE, "catch up: store is not a secondary");
    char *err = NULL;
    rocksdb_try_catch_up_with_primary(st->db, &err);
    if (err) return store_rocks_err(e, MR_EINTERNAL, err, "catch up with primary");
    if (st->cache) cache_clear(st->cache);
    return 0;
}

int store_compact(mr_store *st, mr_err *e) {
    int rc;
    if ((rc = store_check_writable(st, e))) return rc;
    for (int f = 0; f < STORE_CF_FIXED; f++)
        rocksdb_compact_range_cf(st->db, st->cf[f], NULL, 0, NULL, 0);
    pthread_rwlock_rdlock(&st->tables_rw);
    for (int t = 0; t < atomic_load(&st->ntables); t++)
        if (st->tables[t].cf) rocksdb_compact_range_cf(st->db, st->tables[t].cf, NULL, 0, NULL, 0);
    pthread_rwlock_unlock(&st->tables_rw);
    return 0;
}

/* One batch of a sweep: candidates the scan saw expired. */
typedef struct store_expire_batch {
    rocksdb_writebatch_t *wb;
    rocksdb_column_family_handle_t *cf;
    const uint64_t *ids;
    uint64_t *del; /* ids deleted, for the cache */
    int ndel;
    int64_t ttl_s, now_ms;
} store_expire_batch;

/* Re-check one candidate against its current row: a put since the scan
 * has refreshed it, and deleting it then would lose an acknowledged write. */
static int store_expire_recheck(size_t i, const char *v, size_t vlen, void *arg, mr_err *e) {
    (void)e;
    store_expire_batch *b = arg;
    int64_t ts;
    if (!v || vlen < EMB_HDR_BYTES) return 0; /* gone, or not ours */
    memcpy(&ts, v + 4, 8);
    if (!store_expired(ts, b->ttl_s, b->now_ms)) return 0;
    uint8_t k[8];
    emb_key_encode(b->ids[i], k);
    rocksdb_writebatch_delete_cf(b->wb, b->cf, (const char *)k, 8);
    b->del[b->ndel++] = b->ids[i];
    return 0;
}

/* Under ttl_mu held for writing (no put to a TTL family in flight): re-read
 * the candidates, delete those still expired in one batch, drop them from
 * the cache. */
static int store_expire_flush(mr_store *st, store_expire_batch *b, const uint64_t *cand, int n,
                              uint32_t ns, uint64_t *n_del, mr_err *e) {
    pthread_rwlock_wrlock(&st->ttl_mu);
    rocksdb_writebatch_clear(b->wb);
    b->ids = cand;
    b->ndel = 0;
    int rc = store_multi_get(st, b->cf, cand, (size_t)n, store_expire_recheck, b, e);
    const int cached = st->cache && ns != UINT32_MAX && b->ndel;
    if (cached) cache_write_begin(st->cache, ns, b->del, (size_t)b->ndel);
    if (!rc && b->ndel) rc = store_write(st, b->wb, e);
    if (cached) {
        for (int i = 0; i < b->ndel; i++) cache_erase(st->cache, ns, b->del[i]);
        cache_write_end(st->cache, ns, b->del, (size_t)b->ndel);
    }
    pthread_rwlock_unlock(&st->ttl_mu);
    if (!rc) *n_del += (uint64_t)b->ndel;
    return rc;
}

/* Scan one family for rows written more than ttl_s before now_ms, and
 * delete them in batches of 4096 (a sweep never builds a huge batch). The
 * scan holds no lock; each batch is re-checked under ttl_mu. */
static int store_expire_cf(mr_store *st, rocksdb_column_family_handle_t *cf, int64_t ttl_s,
                           int64_t now_ms, uint32_t ns, uint64_t *n_del, mr_err *e) {
    enum { STORE_EXPIRE_BATCH = 4096 };
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, st->ropts, cf);
    store_expire_batch b = {rocksdb_writebatch_create(), cf, NULL, NULL, 0, ttl_s, now_ms};
    uint64_t *cand = malloc(2 * STORE_EXPIRE_BATCH * sizeof *cand);
    int rc = 0, npend = 0;
    if (!cand) {
        rc = mr_err_set(e, MR_ENOMEM, "expire: out of memory");
        goto out;
    }
    b.del = cand + STORE_EXPIRE_BATCH;
    for (rocksdb_iter_seek_to_first(it);; rocksdb_iter_next(it)) {
        int valid = rocksdb_iter_valid(it);
        if (valid) {
            size_t klen, vlen;
            const char *k = rocksdb_iter_key(it, &klen);
            const char *v = rocksdb_iter_value(it, &vlen);
            int64_t ts;
            if (klen != 8 || vlen < EMB_HDR_BYTES) continue; /* not ours: leave it */
            memcpy(&ts, v + 4, 8);
            if (!store_expired(ts, ttl_s, now_ms)) continue;
            cand[npend++] = emb_key_decode((const uint8_t *)k);
        }
        if (npend == STORE_EXPIRE_BATCH || (!valid && npend)) {
            if ((rc = store_expire_flush(st, &b, cand, npend, ns, n_del, e))) goto out;
            npend = 0;
        }
        if (!valid) break;
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    if (err) rc = store_rocks_err(e, MR_EINTERNAL, err, "expire: scan");
out:
    free(cand);
    rocksdb_writebatch_destroy(b.wb);
    rocksdb_iter_destroy(it);
    return rc;
}

int store_expire(mr_store *st, int64_t now_ms, uint64_t *n_deleted, mr_err *e) {
    uint64_t n = 0;
    int rc;
    if ((rc = store_check_writable(st, e))) return rc;
    pthread_rwlock_rdlock(&st->tables_rw); /* a drop waits for the sweep */
    int nt = atomic_load(&st->ntables);
    for (int i = 0; i < nt && !rc; i++)
        if (st->tables[i].cf && st->tables[i].info.ttl_s > 0) {
            uint64_t before = n;
            rc = store_expire_cf(st, st->tables[i].cf, st->tables[i].info.ttl_s, now_ms,
                                 st->tables[i].info.id, &n, e);
            atomic_fetch_add(&st->tables[i].ttl_evictions, n - before);
        }
    pthread_rwlock_unlock(&st->tables_rw);
    if (!rc && st->cfg.user_ttl_s > 0)
        rc = store_expire_cf(st, st->cf[STORE_CF_USERS], st->cfg.user_ttl_s, now_ms, UINT32_MAX, &n,
                             e);
    if (n_deleted) *n_deleted = n;
    return rc;
}

void store_get_stats(const mr_store *cst, store_stats *s) {
    mr_store *st = (mr_store *)cst;
    memset(s, 0, sizeof *s);
    if (st->cache) {
        cache_stats cs;
        cache_get_stats(st->cache, &cs);
        s->cache_hits = cs.hits;
        s->cache_misses = cs.misses;
        s->cache_inserts = cs.inserts;
        s->cache_evictions = cs.evictions;
        s->cache_bytes = cs.bytes;
        s->cache_capacity = cs.capacity;
        s->cache_entries = cs.entries;
    }
    s->tier_hits = atomic_load(&st->ctr.tier_hits);
    s->db_multigets = atomic_load(&st->ctr.db_multigets);
    s->db_rows_read = atomic_load(&st->ctr.db_rows_read);
    s->db_rows_found = atomic_load(&st->ctr.db_rows_found);
    s->rows_written = atomic_load(&st->ctr.rows_written);
    s->batches_written = atomic_load(&st->ctr.batches_written);
    s->corrupt_rows = atomic_load(&st->ctr.corrupt_rows);
    s->expired_rows = atomic_load(&st->ctr.expired_rows);
    s->memtable_budget = st->cfg.memtable_bytes;
    s->block_cache_capacity = rocksdb_cache_get_capacity(st->block_cache);
    s->block_cache_bytes = rocksdb_cache_get_usage(st->block_cache);
    char *err = NULL;
    rocksdb_memory_consumers_t *mc = rocksdb_memory_consumers_create();
    if (!mc) return;
    rocksdb_memory_consumers_add_db(mc, st->db);
    rocksdb_memory_usage_t *mu = rocksdb_approximate_memory_usage_create(mc, &err);
    if (mu) {
        s->memtable_bytes = rocksdb_approximate_memory_usage_get_mem_table_total(mu);
        s->table_reader_bytes = rocksdb_approximate_memory_usage_get_mem_table_readers_total(mu);
        rocksdb_approximate_memory_usage_destroy(mu);
    }
    free(err);
    rocksdb_memory_consumers_destroy(mc);
}
