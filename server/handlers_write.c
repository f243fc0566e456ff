/* handlers_write.c — Recommender/UpsertItems and AppendEvents: writes to
 * the store. Each validates the whole batch before writing anything, then
 * writes it in as few WriteBatches as the store allows (one per kind of
 * row), so a rejected request changes nothing. Acknowledged writes are in
 * RocksDB's WAL (fsync'd per batch with store_sync: true).
 */
#include <math.h>
#include <string.h>

#include "common/clock.h"
#include "hashing/idhash.h"
#include "proto/moerec.pb-c.h"
#include "server/backend.h"
#include "server/handlers.h"
#include "server/replica.h"

/* The store's default max_value_bytes (store_config_init). */
#define ITEM_BLOB_MAX (1 << 20)
#define NO_STORE "no store: start the server with data_dir (config) or --data-dir"

int mr_handle_upsert_items(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                           mr_err *err) {
    const Moerec__V1__UpsertItemsRequest *r = (const void *)req;
    mr_backend *be = mr_server_backend(ctx->server);
    if (!be) return mr_err_set(err, MR_ESTATE, NO_STORE);
    if (be->log && !ctx->replay) return mr_replica_publish(ctx, MR_REPLICA_UPSERT_ITEMS, req, resp, err);
    size_t n = r->n_items;
    if (n == 0) return mr_err_set(err, MR_EINVAL, "items: at least one is required");
    mr_arena *a = ctx->arena;
    size_t with_vec = 0; /* vector memory only for the items that carry one */
    for (size_t i = 0; i < n; i++) with_vec += r->items[i]->n_embedding > 0;
    uint64_t *vid = mr_arena_alloc(a, n * sizeof *vid), *fid = mr_arena_alloc(a, n * sizeof *fid);
    float *vecs = mr_arena_alloc(a, (with_vec ? with_vec : 1) * (size_t)be->item_dim * sizeof *vecs);
    store_blob *blobs = mr_arena_alloc(a, n * sizeof *blobs);
    if (!vid || !fid || !vecs || !blobs) return mr_err_set(err, MR_ENOMEM, "out of request memory");
    size_t nv = 0, nf = 0;
    for (size_t i = 0; i < n; i++) {
        const Moerec__V1__Item *it = r->items[i];
        if (!it->item_id[0]) return mr_err_set(err, MR_EINVAL, "items[%zu].item_id is required", i);
        if (it->deleted)
            return mr_err_set(err, MR_EUNIMPL,
                              "items[%zu]: deleting items is not built yet in this version; nothing "
                              "was written", i);
        if (!it->n_embedding && !it->features)
            return mr_err_set(err, MR_EINVAL, "items[%zu] ('%s') has neither embedding nor features",
                              i, it->item_id);
        uint64_t id = mr_api_id(it->item_id);
        if (it->n_embedding) {
            if ((int)it->n_embedding != be->item_dim)
                return mr_err_set(err, MR_EINVAL,
                                  "items[%zu].embedding has %zu values, the item table has dim %d",
                                  i, it->n_embedding, be->item_dim);
            for (size_t j = 0; j < it->n_embedding; j++) /* the store checks too; a log needs it here */
                if (!isfinite(it->embedding[j]))
                    return mr_err_set(err, MR_EINVAL, "items[%zu].embedding[%zu] is not finite", i, j);
            vid[nv] = id;
            memcpy(vecs + nv * (size_t)be->item_dim, it->embedding,
                   (size_t)be->item_dim * sizeof *vecs);
            nv++;
        }
        if (it->features) { /* stored as the packed Features message */
            size_t sz = moerec__v1__features__get_packed_size(it->features);
            if (sz > ITEM_BLOB_MAX) /* checked here so nothing is written */
                return mr_err_set(err, MR_EINVAL, "items[%zu].features: %zu bytes packed, at most %d",
                                  i, sz, ITEM_BLOB_MAX);
            uint8_t *buf = mr_arena_alloc(a, sz ? sz : 1);
            if (!buf) return mr_err_set(err, MR_ENOMEM, "out of request memory");
            moerec__v1__features__pack(it->features, buf);
            fid[nf] = id;
            blobs[nf++] = (store_blob){buf, sz};
        }
    }
    /* Vectors are validated (finite, dim) by the store before it writes. */
    int rc;
    if (ctx->validate_only) nv = nf = 0; /* checked, nothing written (update log: replica.c) */
    else if ((rc = mr_backend_check_space(be, err))) return rc;
    if (nv && (rc = emb_store_put(be->st, be->items, vid, nv, vecs, nv * (size_t)be->item_dim, err)))
        return mr_err_wrap(err, "item vectors");
    if (nf && (rc = item_store_put(be->st, fid, nf, blobs, err)))
        return mr_err_wrap(err, "item features (vectors of this request were written)");
    Moerec__V1__UpsertItemsResponse *out = mr_arena_alloc(a, sizeof *out);
    if (!out) return mr_err_set(err, MR_ENOMEM, "out of request memory");
    moerec__v1__upsert_items_response__init(out);
    out->request_id = r->request_id;
    out->upserted = (uint32_t)n;
    *resp = &out->base;
    return MR_OK;
}

int mr_handle_append_events(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                            mr_err *err) {
    const Moerec__V1__AppendEventsRequest *r = (const void *)req;
    mr_backend *be = mr_server_backend(ctx->server);
    if (!be) return mr_err_set(err, MR_ESTATE, NO_STORE);
    if (be->log && !ctx->replay) return mr_replica_publish(ctx, MR_REPLICA_APPEND_EVENTS, req, resp, err);
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
        ev[i].action = x->action[0] ? (uint32_t)idhash_bytes(x->action, strlen(x->action), 0) : 0;
    }
    int rc = 0;
    if (!ctx->validate_only && !(rc = mr_backend_check_space(be, err)))
        rc = behaviour_append(be->beh, ev, n, err); /* one WriteBatch */
    if (rc) return rc;
    Moerec__V1__AppendEventsResponse *out = mr_arena_alloc(ctx->arena, sizeof *out);
    if (!out) return mr_err_set(err, MR_ENOMEM, "out of request memory");
    moerec__v1__append_events_response__init(out);
    out->request_id = r->request_id;
    out->appended = (uint32_t)n;
    *resp = &out->base;
    return MR_OK;
}
