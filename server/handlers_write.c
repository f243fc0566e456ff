/* handlers_write.c — Recommender/UpsertItems, DeleteItems and
 * AppendEvents: writes to the store, then to the served retriever sets
 * (server/live.h). Each validates the whole batch before writing
 * anything, then writes it in as few WriteBatches as the store allows (one
 * per kind of row), so a rejected request changes nothing. Acknowledged
 * writes are in RocksDB's WAL (fsync'd per batch with store_sync: true)
 * and in the catalogue log a restart replays.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "moe/sdim_feature.h"
#include "index/retrieval/retr_set.h"
#include "index/store/item_log.h"
#include "proto/moerec.pb-c.h"
#include "server/backend.h"
#include "server/counts.h"
#include "server/handlers.h"
#include "server/live.h"
#include "server/replica.h"

/* The store's default max_value_bytes (store_config_init). */
#define ITEM_BLOB_MAX (1 << 20)
#define NO_STORE "no store: start the server with data_dir (config) or --data-dir"

/* 1 while applying a record of the update log (not while validating one
 * for publishing). Every replica must apply a record alike, whatever
 * model version it serves: the checks that depend on the local model (it
 * is served, its feature names and kinds) were made by the replica that
 * accepted the write, so here they are skipped, or a replica on another
 * version (a rollout in progress) would reject the record and its store
 * would differ from then on. Stored features a model does not know are
 * skipped by Score (handlers_rank.c). The model-independent checks stay. */
static int write_applying(const mr_call_ctx *ctx) { return ctx->replay && !ctx->validate_only; }

/* The model a write names ("" = default): NOT_FOUND when unknown, as
 * Score answers; *ref NULL when the server serves no model (then only an
 * empty name is accepted). */
static int write_model(mr_call_ctx *ctx, const char *model, mr_model_ref **ref, mr_err *err) {
    *ref = NULL;
    mr_registry *reg = mr_server_registry(ctx->server);
    if (reg) {
        int rc = mr_registry_acquire(reg, model, ref, err);
        /* Applying a log record: the replica that took the write checked
         * the model; one this replica does not serve is no reason to
         * diverge from the others (see write_applying). */
        if (rc == MR_ENOTFOUND && write_applying(ctx)) return MR_OK;
        return rc;
    }
    if (write_applying(ctx)) return MR_OK;
    if (model[0])
        return mr_err_set(err, MR_ENOTFOUND,
                          "unknown model '%.64s': the server has no model "
                          "directory",
                          model);
    return MR_OK;
}

/* Store writes and live retrieval under the registry's live lock (see
 * registry.h): vectors, features, the catalogue log, deletes, then the
 * served retriever sets. */
typedef struct item_writes {
    const uint64_t *vid, *fid, *uid, *did; /* vector, feature, upserted, deleted ids */
    size_t nv, nf, nu, nd;
    const float *vecs;
    const store_blob *blobs;
} item_writes;

static int write_items(mr_call_ctx *ctx, mr_backend *be, const item_writes *w, mr_err *err) {
    if (ctx->validate_only) return MR_OK;     /* checked, nothing written (update log: replica.c) */
    int rc = mr_backend_check_space(be, err); /* disk below store_min_free_bytes: nothing written */
    if (rc) return rc;
    mr_registry *reg = mr_server_registry(ctx->server);
    int64_t now = 0; /* the store's write clock: replicas write the same log rows */
    if (reg) mr_registry_live_lock(reg, 1);
    if (w->nv && (rc = emb_store_put(be->st, be->items, w->vid, w->nv, w->vecs,
                                     w->nv * (size_t)be->item_dim, err))) {
        mr_err_wrap(err, "item vectors");
        goto out;
    }
    if (w->nf && (rc = item_store_put(be->st, w->fid, w->nf, w->blobs, err))) {
        mr_err_wrap(err, "item features (vectors of this request were written)");
        goto out;
    }
    /* Also while applying the update log: an UpsertItems record is marked
     * whole only after its last batch (replica.c, store_log_seq_commit),
     * so a replica killed between these batches applies it again. */
    if (w->nu && (rc = item_log_upsert(be->st, w->uid, w->nu, now, err))) {
        mr_err_wrap(err, "catalogue log (the items' rows were written)");
        goto out;
    }
    if (w->nd && (rc = item_store_delete(be->st, be->items, w->did, w->nd, now, err))) {
        mr_err_wrap(err, "item deletes (the upserts of this request were written)");
        goto out;
    }
    if ((rc = mr_live_upserted(reg, be, w->uid, w->nu, err)) ||
        (rc = mr_live_deleted(reg, w->did, w->nd, err)))
        mr_err_wrap(err, "live retrievers (the store has the writes; a restart replays them)");
out:
    if (reg) mr_registry_live_lock(reg, 0);
    return rc;
}

int mr_handle_upsert_items(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                           mr_err *err) {
    const Moerec__V1__UpsertItemsRequest *r = (const void *)req;
    mr_backend *be = mr_server_backend(ctx->server);
    if (!be) return mr_err_set(err, MR_ESTATE, NO_STORE);
    if (be->log && !ctx->replay)
        return mr_replica_publish(ctx, MR_REPLICA_UPSERT_ITEMS, req, resp, err);
    size_t n = r->n_items;
    if (n == 0) return mr_err_set(err, MR_EINVAL, "items: at least one is required");
    mr_model_ref *ref;
    int rc = write_model(ctx, r->model, &ref, err);
    if (rc) return rc;
    mr_arena *a = ctx->arena;
    size_t with_vec = 0; /* vector memory only for the items that carry one */
    for (size_t i = 0; i < n; i++) with_vec += r->items[i]->n_embedding > 0;
    uint64_t *vid = mr_arena_alloc(a, n * sizeof *vid), *fid = mr_arena_alloc(a, n * sizeof *fid);
    uint64_t *uid = mr_arena_alloc(a, n * sizeof *uid), *did = mr_arena_alloc(a, n * sizeof *did);
    float *vecs = mr_arena_alloc(a,
                                 (with_vec ? with_vec : 1) * (size_t)be->item_dim * sizeof *vecs);
    store_blob *blobs = mr_arena_alloc(a, n * sizeof *blobs);
    item_writes w = {vid, fid, uid, did, 0, 0, 0, 0, vecs, blobs};
    if (!vid || !fid || !uid || !did || !vecs || !blobs) {
        rc = mr_err_set(err, MR_ENOMEM, "out of request memory");
        goto done;
    }
    for (size_t i = 0; i < n && !rc; i++) {
        const Moerec__V1__Item *it = r->items[i];
        if (!it->item_id[0]) {
            rc = mr_err_set(err, MR_EINVAL, "items[%zu].item_id is required", i);
            break;
        }
        uint64_t id = mr_api_id(it->item_id);
        if (it->deleted) { /* the rest of the item is ignored */
            did[w.nd++] = id;
            continue;
        }
        if (!it->n_embedding && !it->features) {
            rc = mr_err_set(err, MR_EINVAL, "items[%zu] ('%s') has neither embedding nor features",
                            i, it->item_id);
            break;
        }
        const char *col = ref && ref->retrievers ? retr_set_expert_column(ref->retrievers) : NULL;
        const moe_model *schema = ref && !write_applying(ctx) ? ref->model : NULL;
        if ((rc = mr_features_check(schema, it->features, col, "items", (int)i, err))) break;
        uid[w.nu++] = id;
        if (it->n_embedding) {
            if ((int)it->n_embedding != be->item_dim) {
                rc = mr_err_set(err, MR_EINVAL,
                                "items[%zu].embedding has %zu values, the item table has dim %d", i,
                                it->n_embedding, be->item_dim);
                break;
            }
            for (size_t j = 0; j < it->n_embedding && !rc;
                 j++) /* the store checks too; a log needs it here */
                if (!isfinite(it->embedding[j]))
                    rc = mr_err_set(err, MR_EINVAL, "items[%zu].embedding[%zu] is not finite", i,
                                    j);
            if (rc) break;
            vid[w.nv] = id;
            memcpy(vecs + w.nv * (size_t)be->item_dim, it->embedding,
                   (size_t)be->item_dim * sizeof *vecs);
            w.nv++;
        }
        if (it->features) { /* stored as the packed Features message */
            size_t sz = moerec__v1__features__get_packed_size(it->features);
            if (sz > ITEM_BLOB_MAX) { /* checked here so nothing is written */
                rc = mr_err_set(err, MR_EINVAL, "items[%zu].features: %zu bytes packed, at most %d",
                                i, sz, ITEM_BLOB_MAX);
                break;
            }
            uint8_t *buf = mr_arena_alloc(a, sz ? sz : 1);
            if (!buf) {
                rc = mr_err_set(err, MR_ENOMEM, "out of request memory");
                break;
            }
            moerec__v1__features__pack(it->features, buf);
            fid[w.nf] = id;
            blobs[w.nf++] = (store_blob){buf, sz};
        }
    }
    /* Vectors are validated (finite, dim) by the store before it writes. */
    if (rc || (rc = write_items(ctx, be, &w, err))) goto done;
    Moerec__V1__UpsertItemsResponse *out = mr_arena_alloc(a, sizeof *out);
    if (!out) {
        rc = mr_err_set(err, MR_ENOMEM, "out of request memory");
        goto done;
    }
    moerec__v1__upsert_items_response__init(out);
    out->request_id = r->request_id;
    out->upserted = (uint32_t)w.nu;
    out->deleted = (uint32_t)w.nd;
    *resp = &out->base;
done:
    mr_model_release(ref);
    return rc;
}

int mr_handle_delete_items(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                           mr_err *err) {
    const Moerec__V1__DeleteItemsRequest *r = (const void *)req;
    mr_backend *be = mr_server_backend(ctx->server);
    if (!be) return mr_err_set(err, MR_ESTATE, NO_STORE);
    if (be->log && !ctx->replay)
        return mr_replica_publish(ctx, MR_REPLICA_DELETE_ITEMS, req, resp, err);
    size_t n = r->n_item_ids;
    if (n == 0) return mr_err_set(err, MR_EINVAL, "item_ids: at least one is required");
    mr_model_ref *ref;
    int rc = write_model(ctx, r->model, &ref, err);
    if (rc) return rc;
    uint64_t *ids = mr_arena_alloc(ctx->arena, n * sizeof *ids);
    Moerec__V1__DeleteItemsResponse *out = mr_arena_alloc(ctx->arena, sizeof *out);
    if (!ids || !out) {
        rc = mr_err_set(err, MR_ENOMEM, "out of request memory");
        goto done;
    }
    for (size_t i = 0; i < n && !rc; i++) {
        if (!r->item_ids[i][0]) rc = mr_err_set(err, MR_EINVAL, "item_ids[%zu] is empty", i);
        ids[i] = mr_api_id(r->item_ids[i]);
    }
    item_writes w = {.did = ids, .nd = n};
    if (rc || (rc = write_items(ctx, be, &w, err))) goto done;
    moerec__v1__delete_items_response__init(out);
    out->request_id = r->request_id;
    out->deleted = (uint32_t)n;
    *resp = &out->base;
done:
    mr_model_release(ref);
    return rc;
}

int mr_handle_append_events(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                            mr_err *err) {
    const Moerec__V1__AppendEventsRequest *r = (const void *)req;
    mr_backend *be = mr_server_backend(ctx->server);
    if (!be) return mr_err_set(err, MR_ESTATE, NO_STORE);
    if (be->log && !ctx->replay)
        return mr_replica_publish(ctx, MR_REPLICA_APPEND_EVENTS, req, resp, err);
    size_t n = r->n_events;
    if (n == 0) return mr_err_set(err, MR_EINVAL, "events: at least one is required");
    behaviour_event *ev = mr_arena_alloc(ctx->arena, n * sizeof *ev);
    if (!ev) return mr_err_set(err, MR_ENOMEM, "out of request memory");
    int64_t now = mr_unix_ms();
    for (size_t i = 0; i < n; i++) {
        const Moerec__V1__Event *x = r->events[i];
        if (!x->user_id[0]) return mr_err_set(err, MR_EINVAL, "events[%zu].user_id is required", i);
        if (!x->item_id[0]) return mr_err_set(err, MR_EINVAL, "events[%zu].item_id is required", i);
        if (x->timestamp_ms < 0)
            return mr_err_set(err, MR_EINVAL, "events[%zu].timestamp_ms is negative", i);
        ev[i].user = mr_api_id(x->user_id);
        ev[i].item = mr_api_id(x->item_id);
        ev[i].ts_ms = x->timestamp_ms ? x->timestamp_ms : now;
        ev[i].action = sdim_action_id(x->action, strlen(x->action)); /* history actions' ids */
    }
    /* Labels: with online_counts they update the stored counting features
     * (server/counts.h) in the events' batch; without, they are checked
     * and not used. */
    mr_count_labels *lab = mr_arena_alloc(ctx->arena, n * sizeof *lab);
    if (!lab) return mr_err_set(err, MR_ENOMEM, "out of request memory");
    int labelled = 0, counting = 0, rc = 0;
    for (size_t i = 0; i < n; i++) labelled |= r->events[i]->n_labels > 0;
    /* the request's own checks (count, empty task, value, repeats) come
     * before the store's state: a malformed label is INVALID_ARGUMENT on
     * every store */
    if (labelled && (rc = mr_counts_labels(NULL, r, lab, err))) return rc;
    mr_counts cs;
    if (be->online_counts && (rc = mr_counts_load(be->st, &cs, &counting, err))) return rc;
    if (labelled && be->online_counts && !counting)
        return mr_err_set(err, MR_ESTATE,
                          "events carry labels and online_counts is on, but the store has no "
                          "counting features: run `moerec index features --store` first");
    if ((rc = mr_counts_labels(counting ? &cs : NULL, r, lab, err))) return rc;
    /* the store first (one WriteBatch, validated first), then the served
     * popularity and MinHash experts (they lock themselves). Not under the
     * live lock: events are not replayed on a reload, and appends of
     * different users stay concurrent (striped user locks in the store). */
    mr_registry *reg = mr_server_registry(ctx->server);
    int64_t *users = mr_arena_alloc(ctx->arena, n * sizeof *users);
    int64_t *items = mr_arena_alloc(ctx->arena, n * sizeof *items);
    int64_t *ts = mr_arena_alloc(ctx->arena, n * sizeof *ts);
    if (!users || !items || !ts) return mr_err_set(err, MR_ENOMEM, "out of request memory");
    size_t nl = 0;
    for (size_t i = 0; i < n; i++) {
        if (ev[i].item >> 63) continue;                /* retrievers hold numeric item ids only */
        users[nl] = (int64_t)(ev[i].user & INT64_MAX); /* MinHash: a set element, any bits */
        items[nl] = (int64_t)ev[i].item;
        ts[nl++] = ev[i].ts_ms;
    }
    /* validate_only: checked, nothing written (update log: replica.c) */
    if (!ctx->validate_only && !(rc = mr_backend_check_space(be, err)))
        rc = counting ? mr_counts_append(be, ev, lab, n, ctx->arena, err) /* one WriteBatch */
                      : behaviour_append(be->beh, ev, n, err);            /* one WriteBatch */
    if (!rc && !ctx->validate_only && (rc = mr_live_events(reg, users, items, ts, nl, err)))
        mr_err_wrap(err, "live retrievers (the events were written)");
    if (rc) return rc;
    Moerec__V1__AppendEventsResponse *out = mr_arena_alloc(ctx->arena, sizeof *out);
    if (!out) return mr_err_set(err, MR_ENOMEM, "out of request memory");
    moerec__v1__append_events_response__init(out);
    out->request_id = r->request_id;
    out->appended = (uint32_t)n;
    *resp = &out->base;
    return MR_OK;
}
