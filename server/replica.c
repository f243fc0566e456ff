/* replica.c — a server as one replica of a fleet fed by the update log
 * (replog.h): write RPCs validated here and published, records applied
 * from the log by the same handlers, reads that wait for a sequence.
 *
 * A write handler with a log calls mr_replica_publish first: it runs the
 * handler itself in validate-only mode (every check, no write), so a write
 * the client sees acknowledged is one every replica will accept, fills in
 * what the server decides (event timestamps left at 0), publishes the
 * request as a LogRecord and answers with its sequence. The consumer
 * thread hands each record back to the same handler in replay mode, with
 * the record's sequence attached to the store writes of this thread
 * (store_log_seq_begin): one code path for validation and writing, with
 * or without a log. An UpsertItems record may write several batches; it
 * is marked whole only after the last (store_log_seq_begin_multi), so a
 * crash between them re-applies it. A request with a request_id is
 * published with a de-duplication id (the hash of the request), so a
 * client's retry of a write whose answer it lost is one record.
 * PushEmbeddings is published with the version the accepting replica
 * resolved, so a replica serving another version skips the record
 * (handlers_push.c) instead of writing the rows into its own version.
 */
#include "server/replica.h"

#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "common/arena.h"
#include "common/clock.h"
#include "common/log.h"
#include "proto/moerec.pb-c.h"
#include "server/backend.h"
#include "server/handlers.h"
#include "server/replog.h"

#define REPLICA_ARENA_CHUNK (1u << 20)
#define REPLICA_ARENA_LIMIT (256u << 20)
/* The latest record time accepted: 9999-12-31T23:59:59.999Z in Unix ms.
 * A record's time becomes the write time of its rows (store.h), so a time
 * past it (or negative) is refused like any other invalid record. */
#define REPLICA_MAX_TIME_MS INT64_C(253402300799999)

int mr_replica_apply(mr_server *s, uint64_t seq, const uint8_t *data, size_t len, mr_err *e) {
    if (!mr_server_backend(s))
        return mr_err_set(e, MR_EINVAL, "update log: no store to apply records to (data_dir)");
    mr_arena a;
    mr_arena_init(&a, REPLICA_ARENA_CHUNK, REPLICA_ARENA_LIMIT);
    ProtobufCAllocator al = mr_pb_arena(&a);
    Moerec__V1__LogRecord *rec = moerec__v1__log_record__unpack(&al, len, data);
    int rc;
    if (!rec) {
        rc = mr_err_set(e, MR_EINVAL, "not a LogRecord (%zu bytes)", len);
        goto out;
    }
    if (rec->time_ms < 0 || rec->time_ms > REPLICA_MAX_TIME_MS) {
        rc = mr_err_set(e, MR_EINVAL, "LogRecord %llu: time_ms %lld is outside 0..%lld",
                        (unsigned long long)seq, (long long)rec->time_ms,
                        (long long)REPLICA_MAX_TIME_MS);
        goto out;
    }
    mr_call_ctx ctx = {.server = s, .arena = &a, .start_ns = mr_now_ns(), .replay = 1};
    ProtobufCMessage *resp = NULL;
    /* UpsertItems writes up to three batches (vectors, features, deletes):
     * the record is marked whole only after the last (store.h); the others
     * write one batch, which carries the sequence itself. */
    int multi = rec->write_case == MOEREC__V1__LOG_RECORD__WRITE_UPSERT_ITEMS;
    if (multi) store_log_seq_begin_multi(seq, rec->time_ms);
    else store_log_seq_begin(seq, rec->time_ms);
    switch (rec->write_case) {
    case MOEREC__V1__LOG_RECORD__WRITE_UPSERT_ITEMS:
        ctx.method = "/moerec.v1.Recommender/UpsertItems";
        rc = mr_handle_upsert_items(&ctx, &rec->upsert_items->base, &resp, e);
        if (!rc) rc = store_log_seq_commit(mr_server_backend(s)->st, e);
        break;
    case MOEREC__V1__LOG_RECORD__WRITE_APPEND_EVENTS:
        ctx.method = "/moerec.v1.Recommender/AppendEvents";
        rc = mr_handle_append_events(&ctx, &rec->append_events->base, &resp, e);
        break;
    case MOEREC__V1__LOG_RECORD__WRITE_DELETE_ITEMS:
        ctx.method = "/moerec.v1.Recommender/DeleteItems";
        rc = mr_handle_delete_items(&ctx, &rec->delete_items->base, &resp, e);
        break;
    case MOEREC__V1__LOG_RECORD__WRITE_PUSH_EMBEDDINGS:
        ctx.method = "/moerec.v1.Admin/PushEmbeddings";
        rc = mr_handle_admin_push_embeddings(&ctx, &rec->push_embeddings->base, &resp, e);
        break;
    default:
        rc = mr_err_set(e, MR_EINVAL, "LogRecord %llu carries no write this version knows",
                        (unsigned long long)seq);
    }
    store_log_seq_end();
    /* What the handler refuses it refuses on every replica: skip it. What
     * failed underneath (I/O, disk full, memory) is retried. */
    if (rc && rc != MR_EINTERNAL && rc != MR_EUNAVAIL && rc != MR_ENOMEM) rc = MR_EINVAL;
out:
    mr_arena_free(&a);
    return rc;
}

/* The consumer's apply callback. */
static int replica_apply(void *arg, uint64_t seq, const uint8_t *data, size_t len, mr_err *e) {
    return mr_replica_apply(arg, seq, data, len, e);
}

int mr_replica_open(mr_server *s, const mr_server_config *cfg, mr_err *e) {
    mr_backend *be = mr_server_backend(s);
    if (!be)
        return mr_err_set(e, MR_EINVAL,
                          "log_servers needs data_dir: each replica applies the log "
                          "to its own store");
    mr_replog_config lc = {cfg->log_servers,  cfg->log_stream,   cfg->log_subject,
                           cfg->log_consumer, cfg->log_replicas, cfg->log_timeout_ms};
    int rc = mr_replog_open(&lc, &be->log, e);
    if (rc) return mr_err_wrap(e, "log_servers '%s'", cfg->log_servers);
    uint64_t applied = 0;
    if ((rc = store_log_seq_get(be->st, &applied, e))) return rc;
    be->log_max_lag = cfg->log_max_lag;
    be->log_read_wait_ms = cfg->log_read_wait_ms;
    if ((rc = mr_replog_start(be->log, applied, replica_apply, s, e))) return rc;
    mr_info("update log %s: stream '%s', consumer '%s', resuming after sequence %llu",
            cfg->log_servers, cfg->log_stream, cfg->log_consumer, (unsigned long long)applied);
    return 0;
}

/* The request as it goes into the log: UpsertItems and DeleteItems as
 * they came, AppendEvents with every timestamp the server decides filled
 * in, PushEmbeddings with the version resp (the validate-only answer)
 * names (shallow copies in the arena). */
static int replica_record(mr_call_ctx *ctx, mr_replica_write kind, const ProtobufCMessage *req,
                          const ProtobufCMessage *resp, Moerec__V1__LogRecord *rec, mr_err *err) {
    moerec__v1__log_record__init(rec);
    rec->time_ms = mr_unix_ms();
    rec->origin = (char *)mr_server_config_of(ctx->server)->log_consumer;
    if (kind == MR_REPLICA_UPSERT_ITEMS) {
        rec->write_case = MOEREC__V1__LOG_RECORD__WRITE_UPSERT_ITEMS;
        rec->upsert_items = (Moerec__V1__UpsertItemsRequest *)req;
        return 0;
    }
    if (kind == MR_REPLICA_DELETE_ITEMS) {
        rec->write_case = MOEREC__V1__LOG_RECORD__WRITE_DELETE_ITEMS;
        rec->delete_items = (Moerec__V1__DeleteItemsRequest *)req;
        return 0;
    }
    if (kind == MR_REPLICA_PUSH_EMBEDDINGS) {
        Moerec__V1__PushEmbeddingsRequest *c = mr_arena_alloc(ctx->arena, sizeof *c);
        if (!c) return mr_err_set(err, MR_ENOMEM, "out of request memory");
        *c = *(const Moerec__V1__PushEmbeddingsRequest *)req;
        c->version = ((const Moerec__V1__PushEmbeddingsResponse *)resp)->version;
        rec->write_case = MOEREC__V1__LOG_RECORD__WRITE_PUSH_EMBEDDINGS;
        rec->push_embeddings = c;
        return 0;
    }
    const Moerec__V1__AppendEventsRequest *r = (const void *)req;
    Moerec__V1__AppendEventsRequest *c = mr_arena_alloc(ctx->arena, sizeof *c);
    Moerec__V1__Event **ev = mr_arena_alloc(ctx->arena, r->n_events * sizeof *ev);
    Moerec__V1__Event *copy = mr_arena_alloc(ctx->arena, r->n_events * sizeof *copy);
    if (!c || !ev || !copy) return mr_err_set(err, MR_ENOMEM, "out of request memory");
    *c = *r;
    int64_t now = mr_unix_ms();
    for (size_t i = 0; i < r->n_events; i++) {
        copy[i] = *r->events[i];
        if (!copy[i].timestamp_ms) copy[i].timestamp_ms = now;
        ev[i] = &copy[i];
    }
    c->events = ev;
    rec->write_case = MOEREC__V1__LOG_RECORD__WRITE_APPEND_EVENTS;
    rec->append_events = c;
    return 0;
}

/* The record's de-duplication id when the request has a request_id: a
 * 128-bit hash of the request as the client sent it (request_id included,
 * before the server fills in timestamps), so a client retrying a write
 * whose answer it lost, with the same request_id, gets the first record's
 * sequence instead of a second record (within JetStream's duplicate
 * window). No request_id, no id: every call is a new record. */
static int replica_msg_id(mr_call_ctx *ctx, mr_replica_write kind, const ProtobufCMessage *req,
                          char out[48], char **id, mr_err *err) {
    const char *rid = kind == MR_REPLICA_UPSERT_ITEMS
                          ? ((const Moerec__V1__UpsertItemsRequest *)req)->request_id
                      : kind == MR_REPLICA_DELETE_ITEMS
                          ? ((const Moerec__V1__DeleteItemsRequest *)req)->request_id
                      : kind == MR_REPLICA_PUSH_EMBEDDINGS
                          ? ((const Moerec__V1__PushEmbeddingsRequest *)req)->request_id
                          : ((const Moerec__V1__AppendEventsRequest *)req)->request_id;
    *id = NULL;
    if (!rid || !rid[0]) return 0;
    size_t sz = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = mr_arena_alloc(ctx->arena, sz ? sz : 1);
    if (!buf) return mr_err_set(err, MR_ENOMEM, "out of request memory");
    protobuf_c_message_pack(req, buf);
    XXH128_hash_t h = XXH3_128bits(buf, sz);
    snprintf(out, 48, "%c%016llx%016llx", "uadp"[kind], (unsigned long long)h.high64,
             (unsigned long long)h.low64);
    *id = out;
    return 0;
}

int mr_replica_publish(mr_call_ctx *ctx, mr_replica_write kind, const ProtobufCMessage *req,
                       ProtobufCMessage **resp, mr_err *err) {
    mr_backend *be = mr_server_backend(ctx->server);
    mr_call_ctx check = *ctx;
    check.replay = 1;        /* no second publish */
    check.validate_only = 1; /* every check, no write */
    int rc = kind == MR_REPLICA_UPSERT_ITEMS   ? mr_handle_upsert_items(&check, req, resp, err)
             : kind == MR_REPLICA_DELETE_ITEMS ? mr_handle_delete_items(&check, req, resp, err)
             : kind == MR_REPLICA_PUSH_EMBEDDINGS
                 ? mr_handle_admin_push_embeddings(&check, req, resp, err)
                 : mr_handle_append_events(&check, req, resp, err);
    if (rc) return rc;
    char msg_id[48], *id = NULL;
    if ((rc = replica_msg_id(ctx, kind, req, msg_id, &id, err))) return rc;
    Moerec__V1__LogRecord rec;
    if ((rc = replica_record(ctx, kind, req, *resp, &rec, err))) return rc;
    size_t sz = moerec__v1__log_record__get_packed_size(&rec);
    uint8_t *buf = mr_arena_alloc(ctx->arena, sz ? sz : 1);
    if (!buf) return mr_err_set(err, MR_ENOMEM, "out of request memory");
    moerec__v1__log_record__pack(&rec, buf);
    uint64_t seq = 0;
    if ((rc = mr_replog_publish(be->log, buf, sz, id, &seq, NULL, err))) return rc;
    if (kind == MR_REPLICA_UPSERT_ITEMS)
        ((Moerec__V1__UpsertItemsResponse *)*resp)->log_sequence = seq;
    else if (kind == MR_REPLICA_DELETE_ITEMS)
        ((Moerec__V1__DeleteItemsResponse *)*resp)->log_sequence = seq;
    else if (kind == MR_REPLICA_PUSH_EMBEDDINGS)
        ((Moerec__V1__PushEmbeddingsResponse *)*resp)->log_sequence = seq;
    else ((Moerec__V1__AppendEventsResponse *)*resp)->log_sequence = seq;
    return 0;
}

int mr_replica_wait(mr_call_ctx *ctx, uint64_t min_sequence, mr_err *err) {
    if (!min_sequence) return 0;
    mr_backend *be = mr_server_backend(ctx->server);
    if (!be || !be->log)
        return mr_err_set(err, MR_ESTATE,
                          "min_sequence %llu: this server runs without an update log "
                          "(log_servers), so write answers carry no sequence",
                          (unsigned long long)min_sequence);
    return mr_replog_wait(be->log, min_sequence, ctx->deadline_ms, be->log_read_wait_ms, err);
}

int mr_replica_healthy(mr_server *s) {
    mr_backend *be = mr_server_backend(s);
    if (!be || !be->log || be->log_max_lag <= 0) return 1;
    mr_replog_stats st;
    mr_replog_get_stats(be->log, &st);
    return st.pending <= (uint64_t)be->log_max_lag;
}
