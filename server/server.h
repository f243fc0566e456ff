/* server.h — the gRPC C-core server: completion queues, the per-call state
 * machine, method dispatch, health, and graceful drain.
 *
 * Life cycle: mr_server_create (binds the port) -> mr_server_start (worker
 * threads) -> ... -> mr_server_shutdown (stop accepting, drain in-flight
 * calls up to drain_seconds, then cancel the rest) -> mr_server_free.
 * Handlers run on the completion-queue threads (offload ones on a thread
 * of their own) and must be thread-safe.
 */
#ifndef MOEREC_SERVER_SERVER_H
#define MOEREC_SERVER_SERVER_H

#include <protobuf-c/protobuf-c.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/error.h"
#include "server/config.h"
#include "server/stats.h"

/* protobuf-c allocator over a request arena (free is a no-op). */
static inline void *mr_pb_arena_alloc(void *a, size_t n) { return mr_arena_alloc(a, n); }
static inline void mr_pb_arena_free(void *a, void *p) { (void)a, (void)p; }
static inline ProtobufCAllocator mr_pb_arena(mr_arena *a) {
    ProtobufCAllocator al = {mr_pb_arena_alloc, mr_pb_arena_free, a};
    return al;
}

typedef struct mr_server mr_server;

/* What a handler sees of its call. Everything it allocates for the response
 * comes from arena, freed once when the call ends. */
typedef struct mr_call_ctx {
    mr_server *server;
    mr_arena *arena;
    const char *method;  /* full path */
    uint64_t start_ns;   /* when the call arrived */
    int64_t deadline_ms; /* client's deadline, unix ms; 0 = none */
    int replay;          /* a record applied from the update log (replica.c) */
    int validate_only;   /* write handlers: every check, no write (replica.c) */
} mr_call_ctx;

/* Fill *resp (allocated in ctx->arena, initialised with its descriptor's
 * init) and return MR_OK, or return an MR_E* code with err's message: the
 * client then receives that gRPC status and message. */
typedef int (*mr_handler_fn)(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                             mr_err *err);

typedef struct mr_method {
    const char *path;                           /* "/moerec.v1.Recommender/Score" */
    const ProtobufCMessageDescriptor *request;  /* request message type */
    const ProtobufCMessageDescriptor *response; /* response message type */
    mr_handler_fn handler;                      /* NULL: UNIMPLEMENTED */
    int server_streaming;                       /* health Watch */
    int offload;                                /* may take seconds (Reload): runs on
                                                    its own thread, never a queue's */
} mr_method;

int mr_server_create(const mr_server_config *cfg, mr_server **out, mr_err *err);
/* The port actually bound (useful with port 0). */
int mr_server_port(const mr_server *s);
int mr_server_start(mr_server *s, mr_err *err);
/* The drain, in three steps (docs/operations.md, Stopping):
 *   1. mr_server_drain_begin: health turns NOT_SERVING, Watch streams get
 *      it and close; calls keep being served.
 *   2. refuse new calls with UNAVAILABLE; wait up to cfg->drain_seconds
 *      for the calls already accepted to be answered;
 *   3. close the listener (cancelling what is left), join threads.
 * mr_server_drain runs step 1, waits cfg->drain_grace_seconds (so load
 * balancers stop sending), then mr_server_shutdown (steps 2 and 3; it
 * runs step 1 itself when not done). */
void mr_server_drain_begin(mr_server *s);
void mr_server_drain(mr_server *s);
void mr_server_shutdown(mr_server *s);
void mr_server_free(mr_server *s);

const mr_server_config *mr_server_config_of(const mr_server *s);
/* Method table lookup (NULL if unknown) and iteration for Stats. */
const mr_method *mr_server_find_method(const char *path, int *index);
int mr_server_method_count(void);
const mr_method *mr_server_method_at(int i);
mr_method_stats *mr_server_stats(mr_server *s, int method_index);
uint64_t mr_server_uptime_seconds(const mr_server *s);
/* The store (events, items, SDIM tables); NULL without data_dir. */
struct mr_backend *mr_server_backend(mr_server *s);
/* The /metrics port actually bound, -1 when metrics are off. */
int mr_server_metrics_port(const mr_server *s);
/* A pool for one request's parallel work (expert searches, a split Score
 * batch); NULL without --model-dir. */
struct mr_pool *mr_server_pool(mr_server *s);
/* Handlers running right now (queue workers and offload threads). */
int mr_server_running_handlers(const mr_server *s);
/* The loaded models; NULL when the server runs without --model-dir. */
struct mr_registry *mr_server_registry(mr_server *s);
/* TLS on the gRPC port, and re-reading its certificate files (SIGHUP,
 * Admin/Reload): new connections get the new certificate, open ones stay.
 * A no-op returning MR_OK when TLS is off; on error nothing changes. */
int mr_server_tls_on(const mr_server *s);
int mr_server_reload_tls(mr_server *s, mr_err *err);
/* 1 while serving, 0 once the drain began (health NOT_SERVING). */
int mr_server_serving(const mr_server *s);
/* Accepted calls not yet answered (health excluded), and the calls
 * refused so far because max_inflight_calls were in flight. */
int mr_server_inflight(const mr_server *s);
uint64_t mr_server_overload_rejected(const mr_server *s);

#endif
