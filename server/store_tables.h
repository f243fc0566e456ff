/* store_tables.h — embedding tables served from the store: a model
 * version's tables with "storage": "store" live in column families of the
 * server's RocksDB store, one per (model, version, table), named
 * "mv.<model>.<version>.<table>" (at most 47 characters).
 *
 * On a version's load, each such table is created when absent and, unless
 * its load marker says it is complete, bulk-loaded from the version's
 * weights.safetensors by SST ingestion (chunks of MR_STORE_INGEST_CHUNK
 * rows and at most MR_STORE_INGEST_BYTES, streamed from the file with
 * pread: the load holds one chunk, whatever the table's size); the scorer then reads its rows through a row source: one batched
 * cached emb_store_get per table per scored batch. The process never keeps
 * the table in memory (its tensor is read once, a chunk at a time, during
 * the first load; moe_model_load_flags with MOE_LOAD_STORE_LAZY never reads
 * it).
 *
 * The registry counts, per store table, the loaded versions using it; the
 * last one to go (after its last in-flight request) drops the table, and
 * at open the tables of versions no longer served are dropped. */
#ifndef MOEREC_SERVER_STORE_TABLES_H
#define MOEREC_SERVER_STORE_TABLES_H

#include "common/error.h"
#include "index/store/store.h"
#include "moe/model.h"

#define MR_STORE_TABLE_PREFIX "mv."
#define MR_STORE_INGEST_CHUNK (1u << 20)  /* rows per SST file, at most */
#define MR_STORE_INGEST_BYTES (64u << 20) /* fp32 bytes read per SST file, at most */

/* One store-backed table of a loaded version (the row source's context). */
typedef struct mr_store_table {
    mr_store *st;
    mr_emb_table *t;
    char name[STORE_TABLE_NAME_MAX]; /* the store's table name */
} mr_store_table;

/* The store table name of model/version/table into out; MR_EINVAL (naming
 * the table) when it does not fit or holds characters the store refuses. */
int mr_store_table_name(char out[STORE_TABLE_NAME_MAX], const char *model, const char *version,
                        const char *table, mr_err *e);
/* For every store table of m (loaded with MOE_LOAD_STORE_LAZY from dir):
 * create, bulk-load when not complete, and attach the row source. tabs
 * has MOE_MAX_TABLES entries; tabs[i].t is NULL for in-memory tables.
 * Ingestion writes its SST files in tmp_dir (the data_dir: the same file
 * system). Without a store (st NULL) a store table is an error naming it. */
int mr_store_tables_attach(moe_model *m, const char *dir, const char *model, const char *version,
                           mr_store *st, const char *tmp_dir, mr_store_table *tabs, mr_err *e);

#endif
