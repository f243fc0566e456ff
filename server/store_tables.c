/* store_tables.c — see store_tables.h. */
#include "server/store_tables.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/name.h"
#include "common/tensor.h"
#include "moe/safetensors.h"

int mr_store_table_name(char out[STORE_TABLE_NAME_MAX], const char *model, const char *version,
                        const char *table, mr_err *e) {
    int n = snprintf(out, STORE_TABLE_NAME_MAX, MR_STORE_TABLE_PREFIX "%s.%s.%s", model, version,
                     table);
    if (n < 0 || n >= STORE_TABLE_NAME_MAX)
        return mr_err_set(e, MR_EINVAL,
                          "table '%s': the store table '" MR_STORE_TABLE_PREFIX
                          "%s.%s.%s' is %d characters, at "
                          "most %d (shorten the model, version or table name)",
                          table, model, version, table, n, STORE_TABLE_NAME_MAX - 1);
    if (!mr_name_ok(out, STORE_TABLE_NAME_MAX))
        return mr_err_set(e, MR_EINVAL,
                          "table '%s': storage \"store\" needs model, version and table names of "
                          "[a-zA-Z0-9_.-] (store table '%s')",
                          table, out);
    return MR_OK;
}

/* The row source: one batched cached multi-get for the batch's rows. */
static int store_rows(void *ctx, int t, const uint64_t *rows, size_t n, float *out, mr_err *e) {
    (void)t;
    mr_store_table *s = ctx;
    return emb_store_get(s->st, s->t, rows, n, out, NULL, e);
}

/* Bulk-load table i's tensor from the safetensors file, streamed: one
 * chunk of rows (at most MR_STORE_INGEST_CHUNK rows and
 * MR_STORE_INGEST_BYTES of fp32) is read with pread, written as one SST file
 * and ingested before the next, so the load holds one chunk, never the
 * tensor. */
static int ingest(mr_store *st, mr_store_table *s, const moe_table *mt, const moe_st_file *f,
                  const char *path, const char *tmp_dir, mr_err *e) {
    char tname[MOE_NAME_MAX + 8];
    snprintf(tname, sizeof tname, "emb.%s", mt->name);
    const moe_st_entry *en = moe_st_find(f, tname);
    if (!en) return mr_err_set(e, MR_ECORRUPT, "%s: tensor '%s' is missing", path, tname);
    if (en->ndim != 2 || en->shape[0] != mt->rows || en->shape[1] != mt->dim)
        return mr_err_set(e, MR_ECORRUPT, "%s: tensor '%s' does not have shape [%ld,%d]", path,
                          tname, mt->rows, mt->dim);
    size_t chunk = MR_STORE_INGEST_CHUNK < (size_t)mt->rows ? MR_STORE_INGEST_CHUNK
                                                            : (size_t)mt->rows;
    size_t by_bytes = MR_STORE_INGEST_BYTES / ((size_t)mt->dim * sizeof(float));
    if (chunk > by_bytes) chunk = by_bytes ? by_bytes : 1;
    uint64_t *ids = malloc(chunk * sizeof *ids);
    float *vecs = mr_floats_alloc(chunk * (size_t)mt->dim);
    if (!ids || !vecs) {
        free(ids);
        mr_floats_free(vecs);
        return mr_err_set(e, MR_ENOMEM, "table '%s': out of memory for ingestion", mt->name);
    }
    char sst[4096 + 64];
    int rc = 0;
    for (size_t lo = 0; !rc && lo < (size_t)mt->rows; lo += chunk) {
        size_t n = (size_t)mt->rows - lo < chunk ? (size_t)mt->rows - lo : chunk;
        for (size_t k = 0; k < n; k++) ids[k] = lo + k;
        snprintf(sst, sizeof sst, "%s/ingest.%s.%zu.sst", tmp_dir, s->name, lo / chunk);
        rc = moe_st_pread(f, en, lo * (size_t)mt->dim, n * (size_t)mt->dim, vecs, e);
        if (rc) mr_err_wrap(e, "%s", path);
        /* emb_store_ingest checks every value (naming the row and element) */
        if (!rc) rc = emb_store_ingest(st, s->t, ids, n, vecs, n * (size_t)mt->dim, sst, e);
    }
    free(ids);
    mr_floats_free(vecs);
    return rc;
}

int mr_store_tables_attach(moe_model *m, const char *dir, const char *model, const char *version,
                           mr_store *st, const char *tmp_dir, mr_store_table *tabs, mr_err *e) {
    char path[4096 + 32];
    moe_st_file f;
    int have_file = 0, rc = MR_OK;
    for (int i = 0; i < m->n_tables && !rc; i++) {
        moe_table *mt = &m->tables[i];
        mr_store_table *s = &tabs[i];
        if (mt->storage != MOE_STORAGE_STORE) continue;
        if (!st) {
            rc = mr_err_set(e, MR_ESTATE,
                            "table '%s' has \"storage\": \"store\": the server needs a data_dir",
                            mt->name);
            break;
        }
        if ((rc = mr_store_table_name(s->name, model, version, mt->name, e))) break;
        s->st = st;
        rc = emb_table_create(st, s->name, (uint32_t)mt->dim, (emb_encoding)mt->encoding, mt->ttl_s,
                              e);
        if (rc) {
            mr_err_wrap(e, "table '%s'", mt->name);
            break;
        }
        if (!(s->t = emb_store_table(st, s->name, e))) {
            rc = e ? e->code : MR_EINTERNAL;
            break;
        }
        uint64_t done = 0;
        if ((rc = emb_table_loaded(st, s->t, &done, e))) break;
        if (done != (uint64_t)mt->rows) {
            snprintf(path, sizeof path, "%s/weights.safetensors", dir);
            if (!have_file && (rc = moe_st_open(&f, path, e))) break;
            have_file = 1;
            rc = ingest(st, s, mt, &f, path, tmp_dir, e);
            if (!rc) rc = emb_table_set_loaded(st, s->t, (uint64_t)mt->rows, e);
            if (rc) {
                mr_err_wrap(e, "table '%s': bulk load into the store", mt->name);
                break;
            }
            mr_info("table %s: %ld rows (%s) bulk-loaded into store table %s", mt->name, mt->rows,
                    moe_encoding_name(mt->encoding), s->name);
        }
        moe_model_set_row_source(m, i, store_rows, s);
    }
    if (have_file) moe_st_free(&f);
    return rc;
}
