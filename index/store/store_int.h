/* store_int.h — the store's internals shared by store.c, emb_store.c,
 * store_blob.c and behaviour*.c. Not for use outside index/store/store*,
 * emb_*, behaviour*: the public API is index/store/store.h and index/store/behaviour.h.
 */
#ifndef MOEREC_INDEX_STORE_INT_H
#define MOEREC_INDEX_STORE_INT_H

#include <pthread.h>
#include <rocksdb/c.h>
#include <stdatomic.h>

#include "index/store/cache.h"
#include "index/store/store.h"

#define STORE_NS_ITEMS 0xFFFFFFF0u         /* cache namespace of the items family */
#define STORE_META_TABLE_PREFIX "table/"   /* meta: "table/<name>" -> schema */
#define STORE_META_LOADED_PREFIX "loaded/" /* meta: "loaded/<name>" -> rows bulk-loaded */

/* Fixed column families; embedding tables add "emb.<name>". */
enum {
    STORE_CF_DEFAULT = 0,
    STORE_CF_META,
    STORE_CF_ITEMS,
    STORE_CF_USERS,
    STORE_CF_EVENTS,
    STORE_CF_SDIM,
    STORE_CF_ITEMLOG,
    STORE_CF_FIXED
};
extern const char *const store_cf_names[STORE_CF_FIXED];

struct mr_emb_table {
    emb_table_info info;                /* name, id, dim, encoding, ttl */
    rocksdb_column_family_handle_t *cf; /* "emb.<name>" */
    size_t row_bytes;                   /* encoded value size */
    size_t vec_bytes;                   /* dim * 4, the decoded size */
    size_t cache_bytes;                 /* payload bytes, the cached (stored) encoding */
    uint64_t tier_key;                  /* store_tier_key(info.name) */
    /* per-table counters (store_get_sizes), zeroed when the slot is filled */
    atomic_uint_fast64_t cache_hits, cache_misses; /* emb_store_get lookups */
    atomic_uint_fast64_t expired_reads;            /* rows read past their TTL (served as absent) */
    atomic_uint_fast64_t ttl_evictions;            /* rows the TTL sweep deleted */
};

typedef struct store_counters {
    atomic_uint_fast64_t tier_hits, db_multigets, db_rows_read, db_rows_found;
    atomic_uint_fast64_t rows_written, batches_written, corrupt_rows, expired_rows;
} store_counters;

struct mr_store {
    rocksdb_t *db;
    store_config cfg;               /* copy, defaults filled in */
    rocksdb_options_t *db_opts;     /* database-wide options */
    rocksdb_options_t *point_opts;  /* families read by key */
    rocksdb_options_t *emb_opts;    /* embedding families: point reads, no compression */
    rocksdb_options_t *events_opts; /* events: 8-byte user prefix */
    rocksdb_options_t *sdim_opts;   /* SDIM tables: large values, no compression */
    rocksdb_block_based_table_options_t *bbo;
    rocksdb_cache_t *block_cache;
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts;
    rocksdb_column_family_handle_t *cf[STORE_CF_FIXED];
    mr_emb_table tables[STORE_MAX_TABLES]; /* [0, ntables) published; a
                                  * dropped table's slot has cf == NULL and
                                  * an empty name until a create reuses it */
    atomic_int ntables;
    uint32_t next_id;                   /* ids are never reused within a process:
                                  * cached rows of a dropped table can never
                                  * answer for a new one (guarded by table_mu) */
    pthread_mutex_t table_mu;           /* serialises emb_table_create / _drop */
    pthread_rwlock_t tables_rw;         /* slot contents: lookups and scans over
                                  * every table read; create and drop write */
    rocksdb_writeoptions_t *wopts_sync; /* fsync'd writes (emb_store_put_sync) */
    pthread_rwlock_t ttl_mu;            /* puts to families with a TTL: read; a
                                  * store_expire batch: write (store_ttl_lock) */
    mr_cache *cache;                    /* NULL when cache_bytes == 0 */
    /* cache_seen_twice: the doorkeeper, a 2-hash bit set of embedding rows
     * that missed once since its last reset (emb_store.c, store_admit) */
    _Atomic uint64_t *door;
    size_t door_bits;        /* power of two */
    atomic_size_t door_adds; /* keys added since the reset */
    store_counters ctr;
};

/* Write a batch with the store's write options; counts the batch. */
int store_write(mr_store *st, rocksdb_writebatch_t *wb, mr_err *e);
/* The same with the WAL fsync'd whatever store_config.sync says. */
int store_write_synced(mr_store *st, rocksdb_writebatch_t *wb, mr_err *e);
/* Take ownership of a RocksDB error string: set e, free err. */
int store_rocks_err(mr_err *e, int code, char *err, const char *what);
/* The table named name among the live slots, or NULL (tables_rw held). */
mr_emb_table *store_table_find(mr_store *st, const char *name);
/* The shared tier a table's rows go through: none for a table with a TTL
 * (store_tier.h). */
static inline const store_tier *store_table_tier(const mr_store *st, const mr_emb_table *t) {
    return t->info.ttl_s == 0 ? st->cfg.tier : NULL;
}
/* 1 when a row written at ts_ms has outlived ttl_s (0 = never) at now_ms. */
static inline int store_expired(int64_t ts_ms, int64_t ttl_s, int64_t now_ms) {
    return ttl_s > 0 && now_ms - ts_ms > ttl_s * 1000;
}
/* Called once per key of a multi-get: i indexes the caller's ids; val is
 * NULL when the key is absent. val is only valid during the call. */
typedef int (*store_row_fn)(size_t i, const char *val, size_t len, void *arg, mr_err *e);
/* ONE rocksdb_batched_multi_get_cf for n u64 keys (big-endian encoded and
 * sorted here), then fn per key in sorted order. A RocksDB error or a
 * failing fn stops with that error after every key has been visited. */
int store_multi_get(mr_store *st, rocksdb_column_family_handle_t *cf, const uint64_t *ids, size_t n,
                    store_row_fn fn, void *arg, mr_err *e);
#define STORE_MAX_BATCH (1u << 20) /* rows per get/put call */
/* Puts to a family that store_expire sweeps hold ttl_mu for reading
 * across their commit, so a sweep never deletes a row refreshed after its
 * scan. `ttl` is the family's TTL (0: no lock). */
static inline void store_ttl_lock(mr_store *st, int64_t ttl, int lock) {
    if (ttl <= 0) return;
    if (lock) pthread_rwlock_rdlock(&st->ttl_mu);
    else pthread_rwlock_unlock(&st->ttl_mu);
}
/* Write time of rows written now: the update-log record's time while a
 * replica applies one (store_log_seq_begin), else the wall clock. */
int64_t store_write_clock_ms(void);
/* Check rows (store.h), add them to wb, commit wb (with the item cache
 * and TTL steps of a blob put), update the cached items. rows may be
 * NULL: a plain store_write. */
int store_rows_write(mr_store *st, rocksdb_writebatch_t *wb, const store_append_rows *rows,
                     mr_err *e);
/* Primary-only guard for writes. */
int store_check_writable(const mr_store *st, mr_err *e);

#endif
