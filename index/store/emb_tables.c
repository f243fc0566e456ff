/* emb_tables.c — the life cycle of embedding tables beyond create: drop,
 * the "bulk load complete" marker, listing by prefix.
 *
 * A model version served from the store owns tables of its own (one
 * column family each); the server drops them once no loaded version uses
 * them, and on restart drops those of versions it no longer serves. A
 * drop removes the column family (RocksDB deletes its files), the schema
 * row and the marker in one synced meta batch, and frees the slot for a
 * later create. Its cached rows stay in the memory cache until evicted:
 * table ids are never reused within a process, so they can never answer
 * for another table.
 *
 * The marker ("loaded/<name>" -> row count) is written, synced, after a
 * bulk load finished: a load that crashed half way has none and is
 * redone; one that finished is not repeated on the next start.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/store/store_int.h"

int emb_table_drop(mr_store *st, const char *name, mr_err *e) {
    int rc;
    if ((rc = store_check_writable(st, e))) return rc;
    pthread_mutex_lock(&st->table_mu);
    pthread_rwlock_wrlock(&st->tables_rw); /* no sweep, scan or lookup meanwhile */
    mr_emb_table *t = store_table_find(st, name);
    if (!t) {
        rc = mr_err_set(e, MR_ENOTFOUND, "unknown embedding table '%s'", name ? name : "(null)");
        goto out;
    }
    char key[STORE_TABLE_NAME_MAX + 16], *err = NULL;
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    int klen = snprintf(key, sizeof key, STORE_META_TABLE_PREFIX "%s", name);
    rocksdb_writebatch_delete_cf(wb, st->cf[STORE_CF_META], key, (size_t)klen);
    klen = snprintf(key, sizeof key, STORE_META_LOADED_PREFIX "%s", name);
    rocksdb_writebatch_delete_cf(wb, st->cf[STORE_CF_META], key, (size_t)klen);
    /* schema first: a crash after it leaves an orphan family, which the
     * next open drops (store.c) */
    rc = store_write_synced(st, wb, e);
    rocksdb_writebatch_destroy(wb);
    if (rc) goto out;
    rocksdb_drop_column_family(st->db, t->cf, &err);
    if (err) rc = store_rocks_err(e, MR_EINTERNAL, err, "drop table");
    rocksdb_column_family_handle_destroy(t->cf);
    t->cf = NULL;
    t->info.name[0] = 0;
out:
    pthread_rwlock_unlock(&st->tables_rw);
    pthread_mutex_unlock(&st->table_mu);
    return rc;
}

int emb_table_set_loaded(mr_store *st, mr_emb_table *t, uint64_t rows, mr_err *e) {
    int rc;
    if ((rc = store_check_writable(st, e))) return rc;
    char key[STORE_TABLE_NAME_MAX + 16];
    int klen = snprintf(key, sizeof key, STORE_META_LOADED_PREFIX "%s", t->info.name);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    rocksdb_writebatch_put_cf(wb, st->cf[STORE_CF_META], key, (size_t)klen, (const char *)&rows, 8);
    rc = store_write_synced(st, wb, e);
    rocksdb_writebatch_destroy(wb);
    return rc;
}

int emb_table_loaded(mr_store *st, mr_emb_table *t, uint64_t *rows, mr_err *e) {
    *rows = 0;
    char key[STORE_TABLE_NAME_MAX + 16], *err = NULL;
    int klen = snprintf(key, sizeof key, STORE_META_LOADED_PREFIX "%s", t->info.name);
    size_t vlen = 0;
    char *v = rocksdb_get_cf(st->db, st->ropts, st->cf[STORE_CF_META], key, (size_t)klen, &vlen,
                             &err);
    if (err) return store_rocks_err(e, MR_EINTERNAL, err, "read the load marker");
    int rc = 0;
    if (v && vlen == 8) memcpy(rows, v, 8);
    else if (v)
        rc = mr_err_set(e, MR_ECORRUPT, "load marker of table '%s': %zu bytes, want 8",
                        t->info.name, vlen);
    free(v);
    return rc;
}

int emb_table_list(mr_store *st, const char *prefix, char (*names)[STORE_TABLE_NAME_MAX], int cap) {
    size_t pl = prefix ? strlen(prefix) : 0;
    int n = 0;
    pthread_rwlock_rdlock(&st->tables_rw);
    int nt = atomic_load(&st->ntables);
    for (int i = 0; i < nt; i++) {
        const mr_emb_table *t = &st->tables[i];
        if (!t->cf || strncmp(t->info.name, prefix ? prefix : "", pl) != 0) continue;
        if (n < cap) memcpy(names[n], t->info.name, STORE_TABLE_NAME_MAX);
        n++;
    }
    pthread_rwlock_unlock(&st->tables_rw);
    return n;
}
