/* server.c — the gRPC C-core server.
 *
 * Threads: one acceptor and one worker per completion queue, each blocking
 * in grpc_completion_queue_next. New calls are announced on the acceptor's
 * queue (completion_queues x calls_per_queue request_calls kept armed
 * there, each bound to the next worker's queue in turn); the acceptor
 * re-arms a fresh slot, then runs the guards of on_request and either
 * refuses the call at once or starts reading it, after which everything
 * about the call (read, handler, answer) happens on its worker's queue.
 * So a refusal (auth, unknown method, drain, max_inflight_calls) never
 * waits behind the handlers running on the workers.
 *
 * A unary call is a small state machine driven by tags:
 *   T_REQUEST  (acceptor) request_call completed -> re-arm; guards; look up
 *              the method; unknown or unbuilt -> finish UNIMPLEMENTED; else
 *              RECV_MESSAGE
 *   T_RECV     decode into the call's arena (bounded) -> handler -> encode
 *              -> one batch: SEND_INITIAL_METADATA + SEND_MESSAGE +
 *              SEND_STATUS_FROM_SERVER + RECV_CLOSE_ON_SERVER. A method
 *              marked offload (Reload: seconds of file reading) runs that
 *              step on a detached thread so the queue keeps serving; the
 *              server's shutdown waits for every call, offloaded ones too.
 *   T_FINISH   record stats, free the call
 * Health Watch, the one streaming call, is in server_watch.c; the structs
 * both files share are in server_int.h.
 */
#include "server.h"
#include "replica.h"
#include "server_int.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/threadpool.h"
#include "common/log.h"
#include "proto/health.pb-c.h"
#include "server/handlers.h"
#include "server/auth.h"
#include "server/backend.h"
#include "server/metrics.h"
#include "server/live.h"
#include "server/registry.h"
#include "server/remote_expert.h"
#include "server/score_decode.h"
#include "server/tls.h"
#include "server/validate.h"

/* ---- method table (handlers live in handlers_*.c) ------------------------ */

extern const mr_method mr_methods[]; /* methods.c */
extern const int mr_nmethods;

const mr_method *mr_server_find_method(const char *path, int *index) {
    for (int i = 0; i < mr_nmethods; i++)
        if (!strcmp(mr_methods[i].path, path)) {
            if (index) *index = i;
            return &mr_methods[i];
        }
    if (index) *index = -1;
    return NULL;
}
int mr_server_method_count(void) { return mr_nmethods; }
const mr_method *mr_server_method_at(int i) { return &mr_methods[i]; }
mr_method_stats *mr_server_stats(mr_server *s, int i) { return &s->stats[i < 0 ? mr_nmethods : i]; }
const mr_server_config *mr_server_config_of(const mr_server *s) { return &s->cfg; }
int mr_server_port(const mr_server *s) { return s->port; }
int mr_server_serving(const mr_server *s) { return atomic_load(&s->serving); }
int mr_server_inflight(const mr_server *s) { return atomic_load(&s->inflight); }
uint64_t mr_server_overload_rejected(const mr_server *s) {
    return atomic_load(&s->overload_rejected);
}
mr_registry *mr_server_registry(mr_server *s) { return s->registry; }
mr_backend *mr_server_backend(mr_server *s) { return s->backend; }
mr_pool *mr_server_pool(mr_server *s) { return s->pool; }
int mr_server_running_handlers(const mr_server *s) { return atomic_load(&s->running); }
int mr_server_metrics_port(const mr_server *s) { return s->metrics_port; }
int mr_server_tls_on(const mr_server *s) { return s->tls != NULL; }
int mr_server_reload_tls(mr_server *s, mr_err *err) {
    if (!s->tls) return MR_OK;
    int rc = mr_tls_reload(s->tls, err);
    if (rc == MR_OK) mr_info("tls: certificate files re-read; new connections will use them");
    if (rc == MR_OK && s->cfg.metrics_tls && s->metrics) { /* the same pair on /metrics */
        char *cert = NULL, *key = NULL;
        rc = mr_tls_pem(s->tls, &cert, &key, err);
        if (!rc) rc = mr_metrics_set_cert(s->metrics, cert, key, err);
        free(cert);
        free(key);
        if (rc == MR_OK) mr_info("metrics_tls: new /metrics connections get the new certificate");
    }
    return rc;
}

/* Loopback: 127.0.0.0/8, ::1, localhost. */
static int is_loopback(const char *host) {
    return !strncmp(host, "127.", 4) || !strcmp(host, "::1") || !strcmp(host, "localhost");
}
uint64_t mr_server_uptime_seconds(const mr_server *s) {
    return (mr_now_ns() - s->started_ns) / 1000000000ull;
}

/* ---- arena allocator for protobuf-c ------------------------------------- */

static void *pb_alloc(void *data, size_t size) {
    call *c = data;
    void *p = mr_arena_alloc(&c->arena, size);
    if (!p) c->arena_exhausted = 1;
    return p;
}
static void pb_free(void *data, void *ptr) { (void)data, (void)ptr; } /* freed with the arena */

/* ---- call life cycle ---------------------------------------------------- */

static call *call_new(mr_server *s, int cq) {
    call *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->srv = s;
    c->cq = cq;
    c->method_index = -1;
    for (int i = 0; i < T_COUNT; i++) c->tags[i] = (tag){c, i};
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->md);
    mr_arena_init(&c->arena, 16 * 1024, s->cfg.request_arena_bytes);
    atomic_fetch_add(&s->live_calls, 1);
    return c;
}

/* gRPC fills a call's request metadata array (growing it with
 * gpr_realloc) on whichever thread polls the connection, often another
 * queue's worker, and hands it over through the completion queue, whose
 * ordering ThreadSanitizer cannot see in Debian's uninstrumented gRPC.
 * grpc_metadata_array_destroy tail-calls free, so that report carries no
 * gRPC frame for scripts/tsan.supp's libgrpc rule: this frame, kept out
 * of line, is what the suppression names. It frees only gRPC's array. */
__attribute__((noinline)) static void destroy_grpc_request_md(grpc_metadata_array *md) {
    grpc_metadata_array_destroy(md);
}

void srv_call_free(call *c) {
    if (c->call) grpc_call_unref(c->call);
    grpc_call_details_destroy(&c->details);
    destroy_grpc_request_md(&c->md);
    if (c->recv) grpc_byte_buffer_destroy(c->recv);
    if (c->send) grpc_byte_buffer_destroy(c->send);
    if (c->has_status_msg) grpc_slice_unref(c->status_msg);
    mr_arena_free(&c->arena);
    if (c->counted) atomic_fetch_sub(&c->srv->inflight, 1);
    atomic_fetch_sub(&c->srv->live_calls, 1);
    free(c);
}

/* One request_call slot on the acceptor's queue; the call it matches is
 * bound to the next worker queue in turn. */
static void arm(mr_server *s) {
    if (!atomic_load(&s->listening)) return;
    int cq = (int)(atomic_fetch_add(&s->next_cq, 1) % (unsigned)s->cfg.completion_queues);
    call *c = call_new(s, cq);
    if (!c) {
        mr_error("server: out of memory arming a call on queue %d", cq);
        return;
    }
    grpc_call_error e = grpc_server_request_call(s->server, &c->call, &c->details, &c->md,
                                                 s->cqs[cq], s->accept_cq, &c->tags[T_REQUEST]);
    if (e != GRPC_CALL_OK) {
        mr_warn("server: request_call failed (%d)", (int)e);
        srv_call_free(c);
    }
}

void srv_set_status(call *c, int grpc_status, const char *msg) {
    c->status = grpc_status;
    if (c->has_status_msg) grpc_slice_unref(c->status_msg);
    c->status_msg = grpc_slice_from_copied_string(msg ? msg : "");
    c->has_status_msg = 1;
}

/* One batch ends a unary call: metadata, optional message, status, close. */
static void finish(call *c) {
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    int n = 0;
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (c->send && c->status == GRPC_STATUS_OK) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = c->send;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = (grpc_status_code)c->status;
    ops[n++].data.send_status_from_server.status_details = c->has_status_msg ? &c->status_msg
                                                                             : NULL;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
    grpc_call *gc = c->call;
    /* Answered: the call stops counting against max_inflight_calls now,
     * not when its T_FINISH is handled (that may wait behind a busy
     * worker while the client, answered, already sent its next call). The
     * drain's wait for offload threads covers the rest of their work. */
    if (c->counted) {
        c->counted = 0;
        atomic_fetch_sub(&c->srv->inflight, 1);
    }
    /* The completion may be handled by another thread (a queue worker after
     * an offload thread or the acceptor): publish the call's state explicitly rather than
     * only through gRPC's internal locking, which ThreadSanitizer cannot
     * see. After this store c belongs to the completion. */
    atomic_store_explicit(&c->handed_off, 1, memory_order_release);
    grpc_call_error e = grpc_call_start_batch(gc, ops, (size_t)n, &c->tags[T_FINISH], NULL);
    if (e != GRPC_CALL_OK) { /* no event will come: clean up here */
        mr_warn("server: start_batch(finish) failed (%d) for %s", (int)e,
                c->method ? c->method->path : "?");
        srv_call_free(c);
    }
}

static void finish_error(call *c, int grpc_status, const char *msg) {
    srv_set_status(c, grpc_status, msg);
    finish(c);
}

static int64_t deadline_ms(const gpr_timespec *t) {
    gpr_timespec rt = gpr_convert_clock_type(*t, GPR_CLOCK_REALTIME);
    if (gpr_time_cmp(rt, gpr_inf_future(GPR_CLOCK_REALTIME)) == 0) return 0;
    return (int64_t)rt.tv_sec * 1000 + rt.tv_nsec / 1000000;
}

/* On the acceptor thread. The guards a new call passes before its request
 * is read, in this order:
 * authentication (so an unknown method reveals nothing without a token),
 * the method table, the drain (UNAVAILABLE once the grace is over) and the
 * overload bound (RESOURCE_EXHAUSTED past max_inflight_calls). Health is
 * exempt from the last two: probes must see NOT_SERVING, not an error. */
static void on_request(call *c, int ok) {
    mr_server *s = c->srv;
    if (!ok) { /* server shutting down: the armed slot is cancelled */
        srv_call_free(c);
        return;
    }
    arm(s);
    c->start_ns = mr_now_ns();
    char path[256];
    size_t len = GRPC_SLICE_LENGTH(c->details.method);
    if (len >= sizeof path) len = sizeof path - 1;
    memcpy(path, GRPC_SLICE_START_PTR(c->details.method), len);
    path[len] = '\0';
    if (s->auth) { /* before reading anything: unauthenticated bytes are never decoded */
        const char *hdr = NULL;
        size_t hlen = 0;
        for (size_t i = 0; i < c->md.count; i++)
            if (grpc_slice_str_cmp(c->md.metadata[i].key, "authorization") == 0) {
                hdr = (const char *)GRPC_SLICE_START_PTR(c->md.metadata[i].value);
                hlen = GRPC_SLICE_LENGTH(c->md.metadata[i].value);
            }
        mr_err aerr;
        int arc = mr_auth_check(s->auth, path, hdr, hlen, &aerr);
        if (arc != MR_OK) {
            finish_error(c, mr_err_grpc_code(arc), aerr.msg);
            return;
        }
    }
    c->method = mr_server_find_method(path, &c->method_index);
    if (!c->method) {
        char msg[320];
        snprintf(msg, sizeof msg, "unknown method %s", path);
        finish_error(c, GRPC_STATUS_UNIMPLEMENTED, msg);
        return;
    }
    if (!c->method->handler && !c->method->server_streaming) {
        char msg[320];
        snprintf(msg, sizeof msg, "%s is not built yet in this version of moerec", path);
        finish_error(c, GRPC_STATUS_UNIMPLEMENTED, msg);
        return;
    }
    int health = !strncmp(path, "/grpc.health.v1.Health/", 23);
    if (!health && !atomic_load(&s->accepting)) {
        atomic_store(&s->refused_ns, mr_now_ns());
        finish_error(c, GRPC_STATUS_UNAVAILABLE, "server is shutting down");
        return;
    }
    if (!health) {
        int n = atomic_fetch_add(&s->inflight, 1);
        if (s->cfg.max_inflight_calls > 0 && n >= s->cfg.max_inflight_calls) {
            atomic_fetch_sub(&s->inflight, 1); /* a refused call never counts */
            atomic_fetch_add(&s->overload_rejected, 1);
            char msg[160];
            snprintf(msg, sizeof msg,
                     "server overloaded: max_inflight_calls (%d) calls in flight; retry later",
                     s->cfg.max_inflight_calls);
            finish_error(c, GRPC_STATUS_RESOURCE_EXHAUSTED, msg);
            return;
        }
        c->counted = 1; /* given back once answered (finish) or freed */
    }
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv;
    /* T_RECV completes on the call's worker queue: publish what the guards
     * wrote (pairs with the acquire in on_recv; see finish()). After the
     * store, c is read no more here unless no event will come. */
    grpc_call *gc = c->call;
    atomic_store_explicit(&c->handed_off, 1, memory_order_release);
    if (grpc_call_start_batch(gc, &op, 1, &c->tags[T_RECV], NULL) != GRPC_CALL_OK)
        finish_error(c, GRPC_STATUS_INTERNAL, "could not read the request");
}

/* Decode the request; on failure the call is finished with an error. */
static ProtobufCMessage *decode(call *c) {
    if (!c->recv) {
        finish_error(c, GRPC_STATUS_INVALID_ARGUMENT, "no request message");
        return NULL;
    }
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, c->recv)) {
        finish_error(c, GRPC_STATUS_INVALID_ARGUMENT, "unreadable request message");
        return NULL;
    }
    grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    ProtobufCAllocator alloc = {pb_alloc, pb_free, c};
    ProtobufCMessage *req = NULL;
    if (c->method->request == &moerec__v1__score_request__descriptor) { /* score_decode.h */
        Moerec__V1__ScoreRequest *sr = mr_score_request_decode(&c->arena, GRPC_SLICE_START_PTR(all),
                                                               GRPC_SLICE_LENGTH(all));
        if (sr) req = &sr->base;
    }
    if (!req)
        req = protobuf_c_message_unpack(c->method->request, &alloc, GRPC_SLICE_LENGTH(all),
                                        GRPC_SLICE_START_PTR(all));
    grpc_slice_unref(all);
    if (!req) {
        char msg[256];
        if (c->arena_exhausted) {
            snprintf(msg, sizeof msg, "request needs more than %zu bytes of memory to decode",
                     c->srv->cfg.request_arena_bytes);
            finish_error(c, GRPC_STATUS_RESOURCE_EXHAUSTED, msg);
        } else {
            snprintf(msg, sizeof msg, "malformed %s message", c->method->request->name);
            finish_error(c, GRPC_STATUS_INVALID_ARGUMENT, msg);
        }
    }
    return req;
}

/* Handler -> encode -> finish, on a queue worker or an offload thread:
 * nothing else touches the call until finish() queues T_FINISH. */
static void run_handler(call *c, const ProtobufCMessage *req) {
    mr_err err;
    mr_err_clear(&err);
    mr_call_ctx ctx = {
        c->srv, &c->arena, c->method->path, c->start_ns, deadline_ms(&c->details.deadline), 0, 0};
    /* A call that waited in the queue past its deadline: the client has
     * gone, so do not spend the work (it matters most under overload). */
    if (ctx.deadline_ms && mr_unix_ms() >= ctx.deadline_ms) {
        finish_error(c, GRPC_STATUS_DEADLINE_EXCEEDED, "deadline exceeded before the call ran");
        return;
    }
    ProtobufCMessage *resp = NULL;
    atomic_fetch_add(&c->srv->running, 1);
    int rc = c->method->handler(&ctx, req, &resp, &err);
    atomic_fetch_sub(&c->srv->running, 1);
    if (rc != MR_OK) {
        finish_error(c, mr_err_grpc_code(rc), err.msg[0] ? err.msg : mr_err_name(rc));
        return;
    }
    size_t sz = protobuf_c_message_get_packed_size(resp);
    if (sz > c->srv->cfg.max_send_bytes) {
        char msg[160];
        snprintf(msg, sizeof msg, "response of %zu bytes exceeds max_send_bytes %zu", sz,
                 c->srv->cfg.max_send_bytes);
        finish_error(c, GRPC_STATUS_RESOURCE_EXHAUSTED, msg);
        return;
    }
    grpc_slice out = grpc_slice_malloc(sz);
    protobuf_c_message_pack(resp, GRPC_SLICE_START_PTR(out));
    c->send = grpc_raw_byte_buffer_create(&out, 1);
    grpc_slice_unref(out);
    srv_set_status(c, GRPC_STATUS_OK, NULL);
    finish(c);
}

static void *offload_main(void *arg) {
    call *c = arg;
    mr_server *s = c->srv; /* c belongs to its completion once answered */
    run_handler(c, c->req);
    atomic_fetch_sub(&s->offload_threads, 1); /* the last touch of the server */
    return NULL;
}

static void on_recv(call *c, int ok) {
    (void)atomic_load_explicit(&c->handed_off, memory_order_acquire); /* from on_request */
    if (!ok) { /* client went away before sending */
        finish_error(c, GRPC_STATUS_CANCELLED, "cancelled");
        return;
    }
    ProtobufCMessage *req = decode(c);
    if (!req) return;
    mr_err err;
    mr_err_clear(&err);
    if (mr_validate_message(req, &c->srv->cfg, &err) != MR_OK) {
        finish_error(c, GRPC_STATUS_INVALID_ARGUMENT, err.msg);
        return;
    }
    if (c->method->server_streaming) {
        srv_watch_start(c, req);
        return;
    }
    if (c->method->offload) { /* a detached thread; shutdown waits for the call */
        c->req = req;
        atomic_fetch_add(&c->srv->offload_threads, 1);
        pthread_attr_t at;
        pthread_t th;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        int e = pthread_create(&th, &at, offload_main, c);
        pthread_attr_destroy(&at);
        if (e == 0) return;
        atomic_fetch_sub(&c->srv->offload_threads, 1);
        mr_warn("server: no thread for %s (%d): running it on the queue", c->method->path, e);
    }
    run_handler(c, req);
}

static void on_finish(call *c) {
    /* pairs with finish(): what an offload thread wrote is visible here */
    (void)atomic_load_explicit(&c->handed_off, memory_order_acquire);
    uint64_t us = (mr_now_ns() - c->start_ns) / 1000;
    mr_stats_record(mr_server_stats(c->srv, c->method_index), us, c->status);
    srv_call_free(c);
}

/* ---- workers ------------------------------------------------------------- */

/* The acceptor: new calls only (T_REQUEST). */
static void *acceptor_main(void *arg) {
    grpc_completion_queue *cq = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        if (ev.type == GRPC_OP_COMPLETE) on_request(((tag *)ev.tag)->c, ev.success);
    }
    return NULL;
}

static void *worker_main(void *arg) {
    grpc_completion_queue *cq = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        if (ev.type != GRPC_OP_COMPLETE) continue;
        tag *t = ev.tag;
        switch (t->op) {
        case T_RECV: on_recv(t->c, ev.success); break;
        case T_FINISH: on_finish(t->c); break;
        default: srv_watch_event(t->c, t->op); break;
        }
    }
    return NULL;
}

int mr_server_create(const mr_server_config *cfg, mr_server **out, mr_err *err) {
    *out = NULL;
    int rc = mr_config_validate(cfg, err);
    if (rc) return rc;
    grpc_init();
    mr_server *s = calloc(1, sizeof *s);
    if (!s) {
        grpc_shutdown();
        return mr_err_set(err, MR_ENOMEM, "out of memory");
    }
    s->cfg = *cfg;
    pthread_mutex_init(&s->watch_mu, NULL);
    s->stats = calloc((size_t)mr_nmethods + 1, sizeof *s->stats);
    s->cqs = calloc((size_t)cfg->completion_queues, sizeof *s->cqs);
    s->threads = calloc((size_t)cfg->completion_queues, sizeof *s->threads);
    if (!s->stats || !s->cqs || !s->threads) {
        rc = mr_err_set(err, MR_ENOMEM, "out of memory");
        goto err;
    }
    if (cfg->data_dir[0]) { /* before the models: tables with "storage": "store" live in it */
        rc = mr_backend_open(&s->backend, cfg, err);
        if (rc) goto err;
    }
    if (cfg->model_dir[0]) {
        s->pool = mr_pool_create(cfg->retrieval_threads);
        if (!s->pool) {
            rc = mr_err_set(err, MR_ENOMEM, "cannot start the retrieval thread pool");
            goto err;
        }
        mr_remotes *rem = NULL; /* owned by the registry, which frees it after the experts */
        if ((rc = mr_remotes_create(&rem, cfg, err))) goto err;
        rc = mr_registry_open(&s->registry, cfg->model_dir, cfg->default_model, cfg->precision,
                              s->pool, rem, s->backend ? s->backend->st : NULL, cfg->data_dir, err);
        if (rc) goto err;
    }
    if (cfg->auth_tokens_file[0]) {
        rc = mr_auth_load(&s->auth, cfg->auth_tokens_file, err);
        if (rc) goto err;
    }
    if (cfg->log_servers[0] && (rc = mr_replica_open(s, cfg, err))) goto err;
    rc = mr_tls_create(&s->tls, cfg, err);
    if (rc) goto err;
    if (s->auth && !s->tls && !is_loopback(cfg->host))
        mr_warn("auth: bearer tokens will cross the network in clear text: %s is not a loopback "
                "address and TLS is off (set tls_cert_file and tls_key_file)",
                cfg->host);
    /* The served retriever sets follow the store's catalogue: replay its
     * log now and on every reload (server/live.h). */
    if (s->registry && s->backend &&
        (rc = mr_registry_set_live(s->registry, mr_live_replay, s->backend, err))) {
        mr_err_wrap(err, "replaying the catalogue log");
        goto err;
    }
    if (s->registry && (rc = mr_registry_poll_start(s->registry, cfg->model_poll_s, err))) goto err;
    grpc_arg args[3];
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = (int)cfg->max_receive_bytes;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = (int)cfg->max_send_bytes;
    args[2].type = GRPC_ARG_INTEGER;
    args[2].key = GRPC_ARG_MAX_CONCURRENT_STREAMS;
    args[2].value.integer = cfg->max_concurrent_streams;
    grpc_channel_args cargs = {3, args};
    s->server = grpc_server_create(&cargs, NULL);
    for (int i = 0; i < cfg->completion_queues; i++) {
        s->cqs[i] = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(s->server, s->cqs[i], NULL);
    }
    s->accept_cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->accept_cq, NULL);
    s->shutdown_cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->shutdown_cq, NULL);
    char addr[300];
    snprintf(addr, sizeof addr, strchr(cfg->host, ':') ? "[%s]:%d" : "%s:%d", cfg->host, cfg->port);
    grpc_server_credentials *creds = s->tls ? mr_tls_credentials(s->tls)
                                            : grpc_insecure_server_credentials_create();
    s->port = grpc_server_add_http2_port(s->server, addr, creds);
    grpc_server_credentials_release(creds);
    if (s->port == 0) {
        rc = mr_err_set(err, MR_EUNAVAIL, "cannot listen on %s (in use, not a local address%s)",
                        addr, s->tls ? ", or gRPC refused the certificate" : "");
        goto err;
    }
    *out = s;
    return MR_OK;
err:
    mr_server_free(s);
    return rc;
}

int mr_server_start(mr_server *s, mr_err *err) {
    s->metrics_port = -1;
    if (s->cfg.metrics_port >= 0) {
        char *cert = NULL, *key = NULL;
        int rc = s->cfg.metrics_tls ? mr_tls_pem(s->tls, &cert, &key, err) : MR_OK;
        if (!rc)
            rc = mr_metrics_start(&s->metrics, s, s->cfg.metrics_host, s->cfg.metrics_port, cert,
                                  key, &s->metrics_port, err);
        free(cert);
        free(key);
        if (rc) return rc;
    }
    grpc_server_start(s->server);
    s->started_ns = mr_now_ns();
    atomic_store(&s->listening, 1);
    atomic_store(&s->accepting, 1);
    atomic_store(&s->serving, 1);
    for (int i = 0; i < s->cfg.completion_queues * s->cfg.calls_per_queue; i++) arm(s);
    if (pthread_create(&s->acceptor, NULL, acceptor_main, s->accept_cq) != 0) {
        mr_server_shutdown(s);
        return mr_err_set(err, MR_EINTERNAL, "cannot start the acceptor thread");
    }
    s->has_acceptor = 1;
    for (int i = 0; i < s->cfg.completion_queues; i++) {
        if (pthread_create(&s->threads[i], NULL, worker_main, s->cqs[i]) != 0) {
            mr_server_shutdown(s);
            return mr_err_set(err, MR_EINTERNAL, "cannot start worker thread %d", i);
        }
        s->nthreads++;
    }
    return MR_OK;
}

void mr_server_drain_begin(mr_server *s) {
    if (!atomic_exchange(&s->serving, 0)) return;
    srv_watch_end_all(s);
}

void mr_server_drain(mr_server *s) {
    if (!s->server || s->stopped) return;
    mr_server_drain_begin(s);
    if (s->cfg.drain_grace_seconds > 0) {
        mr_info("drain: health NOT_SERVING; still serving calls for a grace of %.3f s",
                s->cfg.drain_grace_seconds);
        mr_sleep_ns((uint64_t)(s->cfg.drain_grace_seconds * 1e9));
    }
    mr_server_shutdown(s);
}

/* Steps 2 and 3 of the drain. Refusing new calls ourselves (request_calls
 * stay armed) before gRPC's shutdown matters: shutdown_and_notify cancels
 * every call the transport holds but no request_call has matched yet, so
 * calling it while calls still arrive ends some of them CANCELLED. Hence
 * step 2 lasts until the accepted calls are answered and no call has been
 * refused for DRAIN_QUIET_NS (clients have seen UNAVAILABLE and stopped),
 * at most DRAIN_QUIET_MAX_NS past the last answer, and at most
 * drain_seconds in all. */
#define DRAIN_QUIET_NS 100000000ull      /* 100 ms */
#define DRAIN_QUIET_MAX_NS 1000000000ull /* 1 s */
void mr_server_shutdown(mr_server *s) {
    if (!s->server || s->stopped) return;
    mr_server_drain_begin(s);
    uint64_t until_ns = mr_now_ns() + (uint64_t)(s->cfg.drain_seconds * 1e9);
    mr_info("drain: refusing new calls (UNAVAILABLE); %d in flight", atomic_load(&s->inflight));
    atomic_store(&s->refused_ns, mr_now_ns());
    atomic_store(&s->accepting, 0);
    while (atomic_load(&s->inflight) > 0 && mr_now_ns() < until_ns) mr_sleep_ns(1000000);
    uint64_t answered_ns = mr_now_ns();
    for (uint64_t now = answered_ns; now < until_ns && now - answered_ns < DRAIN_QUIET_MAX_NS &&
                                     now - atomic_load(&s->refused_ns) < DRAIN_QUIET_NS;
         now = mr_now_ns())
        mr_sleep_ns(1000000);
    mr_info("drain: closing the listener");
    atomic_store(&s->listening, 0);
    mr_metrics_stop(s->metrics); /* a scrape reads server state: stop it first */
    s->metrics = NULL;
    static int shutdown_tag;
    grpc_server_shutdown_and_notify(s->server, s->shutdown_cq, &shutdown_tag);
    uint64_t now = mr_now_ns();
    gpr_timespec until = gpr_time_add(
        gpr_now(GPR_CLOCK_REALTIME),
        gpr_time_from_millis(now < until_ns ? (int64_t)((until_ns - now) / 1000000) : 0,
                             GPR_TIMESPAN));
    grpc_event ev = grpc_completion_queue_next(s->shutdown_cq, until, NULL);
    if (ev.type != GRPC_OP_COMPLETE) {
        mr_warn("server: %d calls still running after %.1f s; cancelling them",
                atomic_load(&s->live_calls), s->cfg.drain_seconds);
        grpc_server_cancel_all_calls(s->server);
        grpc_completion_queue_next(s->shutdown_cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    }
    /* an offload thread may still be returning from the call it answered
     * (or, after a cancel, be running its handler): it uses the server */
    while (atomic_load(&s->offload_threads) > 0) mr_sleep_ns(1000000);
    grpc_server_destroy(s->server);
    s->stopped = 1; /* s->server is not cleared: workers may have read it */
    /* the acceptor first: a call it refuses finishes on a worker queue */
    grpc_completion_queue_shutdown(s->accept_cq);
    if (s->has_acceptor) pthread_join(s->acceptor, NULL);
    s->has_acceptor = 0;
    for (int i = 0; i < s->cfg.completion_queues; i++) grpc_completion_queue_shutdown(s->cqs[i]);
    for (int i = 0; i < s->nthreads; i++) pthread_join(s->threads[i], NULL);
    s->nthreads = 0;
    grpc_completion_queue_shutdown(s->shutdown_cq);
    while (
        grpc_completion_queue_next(s->shutdown_cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
        GRPC_QUEUE_SHUTDOWN) {
    }
}

void mr_server_free(mr_server *s) {
    if (!s) return;
    if (s->server && !s->stopped) {
        if (s->nthreads || s->has_acceptor || atomic_load(&s->serving)) {
            mr_server_shutdown(s);
        } else { /* created, never started */
            grpc_server_start(s->server);
            mr_server_shutdown(s);
        }
    }
    for (int i = 0; s->cqs && i < s->cfg.completion_queues; i++) {
        if (!s->cqs[i]) continue;
        /* drain anything left from calls that never reached a worker */
        while (1) {
            grpc_event ev = grpc_completion_queue_next(s->cqs[i], gpr_inf_past(GPR_CLOCK_REALTIME),
                                                       NULL);
            if (ev.type == GRPC_QUEUE_SHUTDOWN || ev.type == GRPC_QUEUE_TIMEOUT) break;
            if (ev.type == GRPC_OP_COMPLETE) srv_call_free(((tag *)ev.tag)->c);
        }
        grpc_completion_queue_destroy(s->cqs[i]);
    }
    if (s->accept_cq) { /* slots the acceptor never saw (it was not started) */
        for (;;) {
            grpc_event ev = grpc_completion_queue_next(s->accept_cq,
                                                       gpr_inf_past(GPR_CLOCK_REALTIME), NULL);
            if (ev.type == GRPC_QUEUE_SHUTDOWN || ev.type == GRPC_QUEUE_TIMEOUT) break;
            if (ev.type == GRPC_OP_COMPLETE) srv_call_free(((tag *)ev.tag)->c);
        }
        grpc_completion_queue_destroy(s->accept_cq);
    }
    if (s->shutdown_cq) grpc_completion_queue_destroy(s->shutdown_cq);
    pthread_mutex_destroy(&s->watch_mu);
    mr_registry_free(s->registry);
    mr_pool_free(s->pool);
    mr_auth_free(s->auth);
    mr_tls_free(s->tls); /* after grpc_server_destroy: its credentials call into it */
    mr_backend_close(s->backend);
    free(s->cqs);
    free(s->threads);
    free(s->stats);
    free(s);
    grpc_shutdown();
}
