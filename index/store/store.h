/* store.h — moerec's persistent state: one RocksDB database with column
 * families for embeddings (one per table), items, users, events, SDIM bucket
 * tables and meta, opened as the primary (read-write), read-only, or as a
 * secondary that catches up with a primary.
 *
 * This header is the whole public C API of the store half of index/. The
 * server and tools call:
 *   store_open / store_close              one database, one handle
 *   emb_table_create / emb_store_table    embedding tables (dim, encoding, TTL)
 *   emb_store_get / emb_store_put         batched rows: cache -> tier -> RocksDB
 *   emb_store_ingest                      bulk load as an SST file (external ingestion)
 *   item_store_get / item_store_put       item feature blobs (cached)
 *   user_store_put / user_state_get       user profile + SDIM bucket table
 *   behaviour_append / behaviour_rebuild / behaviour_expire  (behaviour.h)
 *   store_checkpoint / store_catch_up / store_expire / store_stats / store_get_sizes
 * Layouts of every key and value: docs/storage.md.
 *
 * Threads: every call is safe from any number of threads on one handle,
 * except store_close. Readers never take a store-wide lock (the cache is
 * sharded, RocksDB reads are lock-free); appends for the same user are
 * serialised on a striped user lock.
 */
#ifndef MOEREC_INDEX_STORE_H
#define MOEREC_INDEX_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "index/store/store_tier.h"

typedef struct mr_store mr_store;
typedef struct mr_emb_table mr_emb_table;

typedef enum { STORE_PRIMARY = 0, STORE_READ_ONLY, STORE_SECONDARY } store_mode;

typedef enum { EMB_FP32 = 0, EMB_FP16 = 1, EMB_INT8 = 2 } emb_encoding;

#define STORE_MAX_TABLES 64
#define STORE_TABLE_NAME_MAX 48

typedef struct store_config {
    store_mode mode;            /* primary, read-only or secondary */
    const char *secondary_path; /* STORE_SECONDARY: the secondary's own folder */
    int sync;                   /* 1: fsync the WAL on every write batch */
    int no_wal;                 /* bulk loads only: skip the WAL (unsafe on crash) */
    size_t cache_bytes;         /* memory cache in front of rows; 0 = none */
    int cache_shards;           /* power of two; 0 = 64 */
    size_t block_cache_bytes;   /* RocksDB block cache, shared by every family; 0 = 64 MiB */
    size_t memtable_bytes;      /* RocksDB memtables of all families together; 0 = 64 MiB */
    size_t max_value_bytes;     /* largest item/profile blob; 0 = 1 MiB */
    int mmap_reads;             /* read SST files through mmap (default 1) */
    int cache_seen_twice;       /* embedding rows: once the cache is full, admit a missed
                                 * row only on its second miss (doorkeeper; default 0:
                                 * every miss is admitted). See docs/storage.md */
    int64_t user_ttl_s;         /* users not written for this long expire; 0 = never */
    const store_tier *tier;     /* optional shared tier (kept: must outlive the store) */
} store_config;

/* Defaults: primary, sync off, 256 MiB cache, 64 shards, mmap reads. */
void store_config_init(store_config *c);

/* Open (creating when primary and absent) the database in `path`. */
int store_open(mr_store **out, const char *path, const store_config *cfg, mr_err *e);
void store_close(mr_store *st);

/* Hard-link checkpoint of the whole database into `dir` (must not exist;
 * same filesystem). A checkpoint opens like any database. */
int store_checkpoint(mr_store *st, const char *dir, mr_err *e);
/* Secondary only: replay the primary's new WAL/manifest entries. Cached rows
 * are dropped so readers see the caught-up state. */
int store_catch_up(mr_store *st, mr_err *e);
/* Compact every column family (after a bulk load: fewer files to probe on
 * point reads). Primary only; blocks until done. */
int store_compact(mr_store *st, mr_err *e);
/* Delete rows whose last write is older than their TTL at now_ms (unix ms):
 * embedding tables with a TTL, and users when user_ttl_s > 0. Reads already
 * treat such rows as absent; this reclaims the space. *n_deleted may be NULL. */
int store_expire(mr_store *st, int64_t now_ms, uint64_t *n_deleted, mr_err *e);

/* Update-log replay (server/replog.h): between begin and end, every write
 * batch the calling thread commits also records seq as the store's applied
 * log sequence, in the same batch, so after a crash the store knows exactly
 * which records it holds and a replay never applies one twice; time_ms
 * (the record's time) is the write time of every row written meanwhile, so
 * every replica writes byte-identical rows (TTL clocks included). Per
 * thread: other threads' writes are unaffected. */
void store_log_seq_begin(uint64_t seq, int64_t time_ms);
/* The same for a record that may write several batches (UpsertItems:
 * vectors, features, deletes): each batch marks record seq as partly
 * stored, and only store_log_seq_commit (one more small batch, after the
 * last write) marks it whole. A crash in between leaves the applied
 * sequence at seq - 1, so the record is applied again, whole; this needs
 * its writes to be idempotent (puts and deletes at the record's time), so
 * a record that is not (AppendEvents: incremental SDIM counts) must write
 * ONE batch under store_log_seq_begin. */
void store_log_seq_begin_multi(uint64_t seq, int64_t time_ms);
int store_log_seq_commit(mr_store *st, mr_err *e);
void store_log_seq_end(void);
/* The last sequence whose record is wholly stored (0 when none was ever
 * applied). */
int store_log_seq_get(mr_store *st, uint64_t *seq, mr_err *e);
/* xxh3-64 over every row of every family but meta (items, users, events,
 * SDIM tables, embedding tables), in key order: two replicas that applied
 * the same log records have the same digest. O(rows): an admin tool. */
int store_digest(mr_store *st, uint64_t *digest, uint64_t *nrows, mr_err *e);

/* ---- embedding tables ------------------------------------------------- */

typedef struct emb_table_info {
    char name[STORE_TABLE_NAME_MAX]; /* [a-zA-Z0-9_.-], 1..47 chars */
    uint32_t id;                     /* stable id, used in cache keys */
    uint32_t dim;                    /* floats per row, 1..65535 */
    emb_encoding encoding;           /* on-disk encoding */
    int64_t ttl_s;                   /* rows expire after this; 0 = never */
} emb_table_info;

/* Create a table (primary only): a new column family "emb.<name>" and its
 * schema in meta. MR_EEXIST if present with another schema; 0 if identical. */
int emb_table_create(mr_store *st, const char *name, uint32_t dim, emb_encoding enc, int64_t ttl_s,
                     mr_err *e);
/* Drop a table (primary only): its column family and files, schema and
 * load marker. The caller guarantees no thread reads or writes it any more
 * (pointers to it dangle afterwards). MR_ENOTFOUND when unknown. */
int emb_table_drop(mr_store *st, const char *name, mr_err *e);
/* The bulk-load marker: set (synced) after a table was filled with rows
 * rows; *rows = 0 when it was never set (a load that did not finish). */
int emb_table_set_loaded(mr_store *st, mr_emb_table *t, uint64_t rows, mr_err *e);
int emb_table_loaded(mr_store *st, mr_emb_table *t, uint64_t *rows, mr_err *e);
/* Names of the tables whose name starts with prefix ("" or NULL: all):
 * copies up to cap into names, returns how many there are. */
int emb_table_list(mr_store *st, const char *prefix, char (*names)[STORE_TABLE_NAME_MAX], int cap);
/* Look a table up by name; NULL (and MR_ENOTFOUND in e) when unknown. */
mr_emb_table *emb_store_table(mr_store *st, const char *name, mr_err *e);
void emb_table_get_info(const mr_emb_table *t, emb_table_info *info);
int emb_store_ntables(const mr_store *st);

/* Read n rows. out (n, dim) fp32; found[i] = 1 if row ids[i] exists (and has
 * not expired), else 0 and out row i is zeroed. found may be NULL. Misses of
 * the cache go to the shared tier, then to ONE RocksDB batched multi-get. */
int emb_store_get(mr_store *st, mr_emb_table *t, const uint64_t *ids, size_t n, float *out,
                  uint8_t *found, mr_err *e);
/* Write n rows in one WriteBatch. vecs (n, dim) fp32 with nfloats == n*dim;
 * the whole batch is validated first (length, NaN/Inf, fp16 range): on any
 * error nothing is written. Cached copies are updated after the write. */
int emb_store_put(mr_store *st, mr_emb_table *t, const uint64_t *ids, size_t n, const float *vecs,
                  size_t nfloats, mr_err *e);
/* emb_store_put with the WAL fsync'd before it returns, whatever
 * store_config.sync says (acknowledged online updates). */
int emb_store_put_sync(mr_store *st, mr_emb_table *t, const uint64_t *ids, size_t n,
                       const float *vecs, size_t nfloats, mr_err *e);
/* Bulk-load n rows (ids strictly ascending) as one SST file written at
 * tmp_path (same filesystem as the database; moved into it, or removed on
 * failure) and ingested into the table's column family with RocksDB's
 * external file ingestion: no WAL, no memtable, written once. Validated
 * first like a put; cached copies of the ids are dropped. For filling a
 * table (a model version's rows); online updates are emb_store_put. */
int emb_store_ingest(mr_store *st, mr_emb_table *t, const uint64_t *ids, size_t n,
                     const float *vecs, size_t nfloats, const char *tmp_path, mr_err *e);
/* The same lookup with the memory cache and tier bypassed: the plain
 * multi-get path (benchmarks compare against it). */
int emb_store_get_uncached(mr_store *st, mr_emb_table *t, const uint64_t *ids, size_t n, float *out,
                           uint8_t *found, mr_err *e);

/* ---- items and users: opaque feature blobs ----------------------------- */

typedef struct store_blob {
    const void *data; /* bytes, owned by the caller (put) or the store (get) */
    size_t len;
} store_blob;

/* One WriteBatch; each blob <= max_value_bytes, else nothing is written. */
int item_store_put(mr_store *st, const uint64_t *ids, size_t n, const store_blob *blobs, mr_err *e);
/* Batched, cached like embeddings. out[i] points into one malloc'd buffer
 * returned in *buf (free() it); out[i].data == NULL when absent. */
int item_store_get(mr_store *st, const uint64_t *ids, size_t n, store_blob *out, void **buf,
                   mr_err *e);
int user_store_put(mr_store *st, const uint64_t *ids, size_t n, const store_blob *blobs, mr_err *e);

/* Rows committed in the same WriteBatch as an append of events
 * (behaviour_append_rows): item and user feature blobs (replacing the rows
 * of those ids, cached copies updated after the commit) and one meta row
 * (meta_key NULL: none). Blobs are checked as by item_store_put first. */
typedef struct store_append_rows {
    const uint64_t *item_ids;
    const store_blob *items;
    size_t n_items;
    const uint64_t *user_ids;
    const store_blob *users;
    size_t n_users;
    const char *meta_key; /* [a-z_], 1..32 bytes (kept apart from the store's own meta rows) */
    store_blob meta;
} store_append_rows;

/* Application meta rows (the counting features' state, server/counts.h):
 * a get returns a malloc'd copy in *val (NULL, *len 0 when absent); a put
 * is one synced write. Keys as in store_append_rows.meta_key. */
int store_meta_get(mr_store *st, const char *key, void **val, size_t *len, mr_err *e);
int store_meta_put(mr_store *st, const char *key, const void *val, size_t len, mr_err *e);

/* ---- stats -------------------------------------------------------------- */

typedef struct store_stats {
    uint64_t cache_hits, cache_misses; /* lookups answered / not by the cache */
    uint64_t cache_inserts, cache_evictions;
    uint64_t cache_bytes, cache_capacity; /* bytes held now / the bound */
    uint64_t cache_entries;
    uint64_t tier_hits;    /* misses answered by the shared tier */
    uint64_t db_multigets; /* batched multi-get calls */
    uint64_t db_rows_read; /* keys asked of RocksDB */
    uint64_t db_rows_found;
    uint64_t rows_written;    /* embedding/item/user/event rows put */
    uint64_t batches_written; /* WriteBatch commits */
    uint64_t corrupt_rows;    /* rows that failed validation on read */
    uint64_t expired_rows;    /* rows read but past their TTL */
    /* RocksDB memory (rocksdb_approximate_memory_usage): */
    uint64_t memtable_bytes;     /* memtables of every family, flushing ones included */
    uint64_t memtable_budget;    /* their bound (store_config.memtable_bytes) */
    uint64_t table_reader_bytes; /* index and filter blocks of open SST files (grows with data) */
    uint64_t block_cache_bytes, block_cache_capacity; /* block cache usage / its bound */
} store_stats;

void store_get_stats(const mr_store *st, store_stats *s);

/* The store's size per column family, from RocksDB's properties (cheap:
 * no I/O, read from in-memory metadata). Every figure but sst_bytes is
 * RocksDB's estimate: keys counts overwritten and deleted keys not yet
 * compacted away, live_bytes may lag a flush. */
typedef struct store_cf_size {
    char name[STORE_TABLE_NAME_MAX + 8]; /* family: "items", "emb.<table>", ... */
    uint64_t sst_bytes;                  /* rocksdb.total-sst-files-size (on disk) */
    uint64_t live_bytes;                 /* rocksdb.estimate-live-data-size */
    uint64_t memtable_bytes;             /* rocksdb.cur-size-all-mem-tables (not yet flushed) */
    uint64_t keys;                       /* rocksdb.estimate-num-keys (approximate) */
    /* embedding tables only (0 for the fixed families): exact counters since
     * the table was opened or created */
    int is_table;
    uint64_t cache_hits, cache_misses; /* emb_store_get lookups answered / not by the cache */
    uint64_t expired_reads;            /* rows read past their TTL, served as absent */
    uint64_t ttl_evictions;            /* rows deleted by TTL sweeps (store_expire) */
} store_cf_size;

#define STORE_MAX_FAMILIES (STORE_MAX_TABLES + 8)

/* Fill out[0..n) with the fixed families (meta, items, users, events,
 * sdim, itemlog; not the unused "default") then one per embedding table,
 * in that order; returns n (at most cap). A property RocksDB cannot
 * answer reads 0. */
int store_get_sizes(const mr_store *st, store_cf_size *out, int cap);

/* Bytes in the memtables of every family not yet flushed (the sum of
 * rocksdb.cur-size-all-mem-tables): what the flushes still to come will
 * write as SST files (at most about this much; less once compressed)
 * before their WAL files are freed. Cheap, like store_get_sizes. */
uint64_t store_unflushed_bytes(const mr_store *st);

#endif
