/* server_int.h — the server's call and server structs, shared by server.c
 * (call life cycle, workers, drain) and server_watch.c (health Watch
 * streams). Not for use outside those two files: the API is server.h.
 */
#ifndef MOEREC_SERVER_SERVER_INT_H
#define MOEREC_SERVER_SERVER_INT_H

#include <grpc/grpc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/threadpool.h"
#include "server/auth.h"
#include "server/backend.h"
#include "server/metrics.h"
#include "server/registry.h"
#include "server/server.h"
#include "server/stats.h"
#include "server/tls.h"

enum { T_REQUEST, T_RECV, T_FINISH, T_WATCH_SENT, T_WATCH_CLOSED, T_WATCH_FINAL, T_COUNT };

typedef struct call call;
typedef struct tag {
    call *c;
    int op;
} tag;

struct call {
    mr_server *srv;
    int cq; /* index of the queue this call lives on */
    tag tags[T_COUNT];
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    grpc_byte_buffer *recv; /* request message, NULL if none */
    grpc_byte_buffer *send; /* response message */
    grpc_slice status_msg;
    int has_status_msg;
    int status;       /* gRPC status sent */
    int cancelled;    /* from RECV_CLOSE_ON_SERVER */
    int method_index; /* -1 when unknown */
    int counted;      /* holds one of srv->inflight (accepted, not health) */
    const mr_method *method;
    const ProtobufCMessage *req; /* decoded request (offload threads) */
    atomic_int handed_off;       /* release in finish(), acquire in on_finish() */
    mr_arena arena;
    int arena_exhausted;
    uint64_t start_ns;
    /* Watch only; guarded by srv->watch_mu. */
    int refs;    /* outstanding batches */
    int sending; /* a send batch is in flight */
    int final_started;
    int finish_requested;
    call *wnext, *wprev;
};

struct mr_server {
    mr_server_config cfg;
    grpc_server *server;
    int stopped;                      /* shutdown done (main thread only) */
    grpc_completion_queue **cqs;      /* the workers' queues: calls are bound to these */
    grpc_completion_queue *accept_cq; /* new calls are announced here (the acceptor) */
    grpc_completion_queue *shutdown_cq;
    pthread_t *threads;
    int nthreads;
    pthread_t acceptor;
    int has_acceptor;
    atomic_uint next_cq; /* round robin of the queue the next armed call binds to */
    int port;
    atomic_int serving;              /* health SERVING; 0 from the first drain step */
    atomic_int accepting;            /* new calls run; 0 once the grace is over (UNAVAILABLE) */
    atomic_int listening;            /* request_calls are re-armed; 0 once the listener closes */
    atomic_int inflight;             /* accepted calls not yet finished (not health) */
    atomic_ullong overload_rejected; /* calls refused by max_inflight_calls */
    atomic_ullong refused_ns;        /* mr_now_ns of the last call refused by the drain */
    uint64_t started_ns;
    mr_method_stats *stats; /* one per method + 1 for unknown */
    pthread_mutex_t watch_mu;
    call *watchers; /* open Watch streams */
    atomic_int live_calls;
    atomic_int running;         /* handlers executing now (split decisions) */
    atomic_int offload_threads; /* detached offload threads not yet returned */
    mr_registry *registry;      /* NULL without model_dir */
    mr_backend *backend;        /* NULL without data_dir */
    mr_pool *pool;              /* parallel expert searches (retriever sets) */
    mr_auth *auth;              /* bearer tokens; NULL = no authentication */
    mr_metrics *metrics;        /* Prometheus endpoint; NULL when off */
    mr_tls *tls;                /* certificates of the gRPC port; NULL = plaintext */
    int metrics_port;           /* bound port, -1 when off */
};

/* server.c */
void srv_call_free(call *c);
void srv_set_status(call *c, int grpc_status, const char *msg);
/* server_watch.c: a Watch call whose request was read and validated;
 * the completion of one of its batches (T_WATCH_*); the drain's end of
 * every open stream (NOT_SERVING, then OK). */
void srv_watch_start(call *c, const ProtobufCMessage *req);
void srv_watch_event(call *c, int op);
void srv_watch_end_all(mr_server *s);

#endif
