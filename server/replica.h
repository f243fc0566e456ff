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
/* Apply one update-log record (a packed LogRecord, sequence seq) to this
 * server's store through its handler in replay mode: what the consumer
 * thread does with each record (mr_replog_apply_fn). 0 when applied (or
 * skipped as a push for a version not served here), MR_EINVAL when it can
 * never be applied (not a LogRecord, no write, refused by the handler),
 * MR_EINTERNAL / MR_EUNAVAIL / MR_ENOMEM to retry. Needs data_dir; used
 * directly by the fuzz target log_record. */
int mr_replica_apply(mr_server *s, uint64_t seq, const uint8_t *data, size_t len, mr_err *e);
/* 0 when this replica is more than log_max_lag records behind the log. */
int mr_replica_healthy(mr_server *s);

#endif
