/* store_size.c — the store's size per column family (store_get_sizes):
 * RocksDB's integer properties of each family, read from the database's
 * in-memory metadata, so the status page and /metrics can ask on every
 * request. Kept apart from store.c, which owns opening and writing.
 */
#include <stdio.h>
#include <string.h>

#include "index/store/store_int.h"

static uint64_t cf_prop(const mr_store *st, rocksdb_column_family_handle_t *cf, const char *prop) {
    uint64_t v = 0;
    if (rocksdb_property_int_cf(st->db, cf, prop, &v) != 0) v = 0;
    return v;
}

static void cf_size(const mr_store *st, rocksdb_column_family_handle_t *cf, const char *name,
                    store_cf_size *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", name);
    out->sst_bytes = cf_prop(st, cf, "rocksdb.total-sst-files-size");
    out->live_bytes = cf_prop(st, cf, "rocksdb.estimate-live-data-size");
    out->memtable_bytes = cf_prop(st, cf, "rocksdb.cur-size-all-mem-tables");
    out->keys = cf_prop(st, cf, "rocksdb.estimate-num-keys");
}

uint64_t store_unflushed_bytes(const mr_store *st) {
    const char *prop = "rocksdb.cur-size-all-mem-tables";
    uint64_t n = 0;
    for (int f = STORE_CF_DEFAULT; f < STORE_CF_FIXED; f++) n += cf_prop(st, st->cf[f], prop);
    pthread_rwlock_rdlock(&((mr_store *)st)->tables_rw);
    int nt = atomic_load(&st->ntables);
    for (int t = 0; t < nt; t++)
        if (st->tables[t].cf) n += cf_prop(st, st->tables[t].cf, prop);
    pthread_rwlock_unlock(&((mr_store *)st)->tables_rw);
    return n;
}

int store_get_sizes(const mr_store *st, store_cf_size *out, int cap) {
    int n = 0;
    for (int f = STORE_CF_DEFAULT + 1; f < STORE_CF_FIXED && n < cap; f++)
        cf_size(st, st->cf[f], store_cf_names[f], &out[n++]);
    /* under the tables lock: a dropped table's slot has no family (emb_tables.c) */
    pthread_rwlock_rdlock(&((mr_store *)st)->tables_rw);
    int nt = atomic_load(&st->ntables);
    for (int t = 0; t < nt && n < cap; t++) {
        if (!st->tables[t].cf) continue;
        char name[sizeof out->name];
        snprintf(name, sizeof name, "emb.%s", st->tables[t].info.name);
        const mr_emb_table *tb = &st->tables[t];
        store_cf_size *o = &out[n++];
        cf_size(st, tb->cf, name, o);
        o->is_table = 1;
        o->cache_hits = atomic_load(&tb->cache_hits);
        o->cache_misses = atomic_load(&tb->cache_misses);
        o->expired_reads = atomic_load(&tb->expired_reads);
        o->ttl_evictions = atomic_load(&tb->ttl_evictions);
    }
    pthread_rwlock_unlock(&((mr_store *)st)->tables_rw);
    return n;
}
