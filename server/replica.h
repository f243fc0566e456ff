/* replica.h — the server's side of the update log (replog.h): publishing
 * write RPCs, applying records through the same handlers, read-your-writes
 * waits and the lag that health reports. See replica.c. */
#ifndef MOEREC_SERVER_REPLICA_H
#define MOEREC_SERVER_REPLICA_H

#include <stdint.h>

#include "server/config.h"
#include "server/server.h"

typedef enum {
    MR_REPLICA_UPSERT_ITEMS,
    MR_REPLICA_APPEND_EVENTS,
    MR_REPLICA_DELETE_ITEMS,
    MR_REPLICA_PUSH_EMBEDDINGS
} mr_replica_write;

/* With log_servers set (needs data_dir): connect, create the stream when
 * absent, and start applying the log after the store's applied sequence. */
int mr_replica_open(mr_server *s, const mr_server_config *cfg, mr_err *e);
/* A write handler's path when the server has a log: validate (the handler
 * in validate-only mode), publish, answer with the record's sequence. */
int mr_replica_publish(mr_call_ctx *ctx, mr_replica_write kind, const ProtobufCMessage *req,
                       ProtobufCMessage **resp, mr_err *err);
/* Read-your-writes: wait until min_sequence is applied here (0 = no wait),
 * up to the call's deadline or log_read_wait_ms; UNAVAILABLE past it. */
int mr_replica_wait(mr_call_ctx *ctx, uint64_t min_sequence, mr_err *err);
/* 0 when this replica is more than log_max_lag records behind the log. */
int mr_replica_healthy(mr_server *s);

#endif
