/* handlers_push.c — moerec.v1.Admin/PushEmbeddings: online updates of
 * embedding rows of a served model version, the way online-training
 * systems push sparse updates.
 *
 * Guard clauses first (model NOT_FOUND, version FAILED_PRECONDITION, table
 * NOT_FOUND, in-memory table FAILED_PRECONDITION, sizes and values
 * INVALID_ARGUMENT), so a refused push writes nothing; then one WriteBatch
 * into the version's store table with the WAL fsync'd (emb_store_put_sync)
 * before the answer, which also refreshes the memory cache: the next Score
 * reads the pushed rows. In-memory tables are refused: scorers read them
 * without locks, and a row written there would not survive a restart.
 *
 * With an update log (log_servers) the accepting replica makes every
 * check in validate-only mode, publishes the push with the version it
 * resolved (replica.c) and answers with the record's sequence; every
 * replica then applies the record here in replay mode, through the same
 * emb_store_put_sync, whose one WriteBatch also carries the applied
 * sequence (store_log_seq_begin), so a replay never applies it twice. A
 * replica that does not serve that model, version or store table skips
 * the record (log line, moerec_embedding_push_skipped_total): during a
 * rollout the rows belong to a version it does not hold, and the log
 * must not stall. The value checks are not repeated on apply (made once
 * by the accepting replica; the store still checks length and values).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "proto/moerec.pb-c.h"
#include "server/backend.h"
#include "server/handlers.h"
#include "server/registry.h"
#include "server/replica.h"

#define PUSH_MAX_ROWS 65536 /* rows per call */

/* The version and store table the push names, as this server serves them. */
static int push_resolve(const Moerec__V1__PushEmbeddingsRequest *r, const mr_model_ref *ref,
                        int *ti, mr_err *err) {
    const moe_model *m = ref->model;
    if (r->version[0] && strcmp(r->version, ref->version))
        return mr_err_set(err, MR_ESTATE,
                          "model '%s' serves version %s, not %.32s: push to the serving version "
                          "(or leave version empty)",
                          ref->name, ref->version, r->version);
    if (!r->table[0]) return mr_err_set(err, MR_EINVAL, "table is required");
    *ti = -1;
    for (int i = 0; i < m->n_tables; i++)
        if (!strcmp(m->tables[i].name, r->table)) *ti = i;
    if (*ti < 0)
        return mr_err_set(err, MR_ENOTFOUND, "model '%s' has no table '%.64s'", ref->name,
                          r->table);
    const moe_table *t = &m->tables[*ti];
    if (t->storage != MOE_STORAGE_STORE || !ref->stabs[*ti].t)
        return mr_err_set(
            err, MR_ESTATE,
            "table '%s' is held in memory: PushEmbeddings needs \"storage\": \"store\" "
            "in model.json",
            t->name);
    return MR_OK;
}

static int push_check(const Moerec__V1__PushEmbeddingsRequest *r, const mr_model_ref *ref, int *ti,
                      mr_err *err) {
    int rc = push_resolve(r, ref, ti, err);
    if (rc) return rc;
    const moe_table *t = &ref->model->tables[*ti];
    size_t n = r->n_ids, dim = (size_t)t->dim;
    if (n == 0) return mr_err_set(err, MR_EINVAL, "ids: at least one is required");
    if (n > PUSH_MAX_ROWS)
        return mr_err_set(err, MR_EINVAL, "ids: %zu rows, at most %d per call", n, PUSH_MAX_ROWS);
    if (r->n_rows != n * dim)
        return mr_err_set(err, MR_EINVAL,
                          "rows: %zu values for %zu ids; table '%s' has dim %zu, so %zu are needed",
                          r->n_rows, n, t->name, dim, n * dim);
    for (size_t i = 0; i < n; i++)
        if (r->ids[i] >= (uint64_t)t->rows)
            return mr_err_set(err, MR_EINVAL,
                              "ids[%zu] = %llu is not a row of table '%s' (rows 0..%ld)", i,
                              (unsigned long long)r->ids[i], t->name, t->rows - 1);
    for (size_t i = 0; i < r->n_rows; i++)
        if (!isfinite(r->rows[i]))
            return mr_err_set(err, MR_EINVAL, "rows[%zu] (ids[%zu]) is not finite", i, i / dim);
    /* the store checks this too, but a push published to a log must be
     * one every replica's store accepts */
    emb_table_info info;
    emb_table_get_info(ref->stabs[*ti].t, &info);
    for (size_t i = 0; info.encoding == EMB_FP16 && i < r->n_rows; i++)
        if (fabsf(r->rows[i]) > 65504.0f)
            return mr_err_set(err, MR_ERANGE,
                              "table '%s' row %llu (batch index %zu): element %zu = %g is outside "
                              "the fp16 range (+-65504)",
                              t->name, (unsigned long long)r->ids[i / dim], i / dim, i % dim,
                              (double)r->rows[i]);
    return MR_OK;
}

/* Duplicates would make the row written depend on batch order: refused. */
static int push_no_dups(mr_arena *a, const uint64_t *ids, size_t n, mr_err *err) {
    size_t cap = 1;
    while (cap < 2 * n) cap <<= 1;
    uint64_t *slot = mr_arena_calloc(a, cap, sizeof *slot); /* id + 1; 0 = empty */
    if (!slot) return mr_err_set(err, MR_ENOMEM, "out of request memory");
    for (size_t i = 0; i < n; i++) {
        size_t h = (size_t)((ids[i] * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
        for (; slot[h]; h = (h + 1) & (cap - 1))
            if (slot[h] == ids[i] + 1)
                return mr_err_set(err, MR_EINVAL, "ids[%zu] = %llu appears twice", i,
                                  (unsigned long long)ids[i]);
        slot[h] = ids[i] + 1;
    }
    return MR_OK;
}

/* Applying a log record this replica does not serve: skipped and counted. */
static int push_skip(mr_backend *be, const Moerec__V1__PushEmbeddingsRequest *r, mr_err *err) {
    atomic_fetch_add(&be->push_skipped, 1);
    mr_info("update log: PushEmbeddings of model '%.64s' version %.32s table '%.64s' skipped: %s",
            r->model, r->version, r->table, err->msg);
    *err = (mr_err){0};
    return MR_OK;
}

int mr_handle_admin_push_embeddings(mr_call_ctx *ctx, const ProtobufCMessage *req,
                                    ProtobufCMessage **resp, mr_err *err) {
    const Moerec__V1__PushEmbeddingsRequest *r = (const void *)req;
    mr_registry *reg = mr_server_registry(ctx->server);
    mr_backend *be = mr_server_backend(ctx->server);
    int applying = ctx->replay && !ctx->validate_only; /* a log record */
    if (!reg && applying) {
        mr_err_set(err, MR_ENOTFOUND, "no model directory");
        return push_skip(be, r, err);
    }
    if (!reg)
        return mr_err_set(err, MR_ESTATE,
                          "no model directory: PushEmbeddings writes rows of a served model");
    if (!be)
        return mr_err_set(err, MR_ESTATE,
                          "no store: start the server with data_dir (config) or --data-dir");
    if (be->log && !ctx->replay)
        return mr_replica_publish(ctx, MR_REPLICA_PUSH_EMBEDDINGS, req, resp, err);
    mr_model_ref *ref;
    int rc = mr_registry_acquire(reg, r->model, &ref, err);
    if (rc == MR_ENOTFOUND && applying) return push_skip(be, r, err);
    if (rc) return rc;
    int ti = -1;
    if (applying) { /* served here? the values were checked by the accepting replica */
        if ((rc = push_resolve(r, ref, &ti, err))) {
            if (rc == MR_ESTATE || rc == MR_ENOTFOUND) rc = push_skip(be, r, err);
            goto done;
        }
    } else if ((rc = push_check(r, ref, &ti, err)) ||
               (rc = push_no_dups(ctx->arena, r->ids, r->n_ids, err)))
        goto done;
    Moerec__V1__PushEmbeddingsResponse *out = mr_arena_alloc(ctx->arena, sizeof *out);
    if (!out) {
        rc = mr_err_set(err, MR_ENOMEM, "out of request memory");
        goto done;
    }
    if (ctx->validate_only) goto answer;
    if ((rc = mr_backend_check_space(be, err))) goto done;
    /* the version's table stays alive while ref is held (registry.h) */
    rc = emb_store_put_sync(be->st, ref->stabs[ti].t, r->ids, r->n_ids, r->rows, r->n_rows, err);
    if (rc) {
        mr_err_wrap(err, "table '%s'", r->table);
        goto done;
    }
    atomic_fetch_add(&be->pushes, 1);
    atomic_fetch_add(&be->pushed_rows, r->n_ids);
answer:
    moerec__v1__push_embeddings_response__init(out);
    out->request_id = r->request_id;
    out->model = mr_arena_strdup(ctx->arena, ref->name);
    out->version = mr_arena_strdup(ctx->arena, ref->version);
    if (!out->model || !out->version) {
        rc = mr_err_set(err, MR_ENOMEM, "out of request memory");
        goto done;
    }
    out->written = (uint32_t)r->n_ids; /* validate-only: what the record will write */
    *resp = &out->base;
done:
    mr_model_release(ref);
    return rc;
}
