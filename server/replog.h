/* replog.h — the durable update log that feeds every replica.
 *
 * With a log configured, a write RPC is not applied where it arrives: the
 * server publishes it (a LogRecord, proto/moerec.proto) and answers only
 * once the log has stored it, with the record's sequence. Every replica,
 * the one that accepted the write included, consumes the log in sequence
 * order with its own durable consumer and applies each record to its own
 * primary RocksDB; the applied sequence is written in the same WriteBatch
 * as the record's rows (store_log_seq_begin), so after a crash a replica
 * resumes exactly after the last record it holds and never applies one
 * twice. A read may carry a sequence to wait for (read-your-writes).
 *
 * The interface is small on purpose: open / publish / start consuming /
 * wait / close. The backend here is NATS JetStream (libnats): a stream
 * with `replicas` copies acknowledges a publish once a quorum stored it.
 * A Kafka backend (librdkafka: produce with acks=all, one partition, the
 * offset as the sequence) fits the same five calls.
 */
#ifndef MOEREC_SERVER_REPLOG_H
#define MOEREC_SERVER_REPLOG_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct mr_replog mr_replog;

typedef struct mr_replog_config {
    const char *servers;  /* "nats://host:port,..." */
    const char *stream;   /* stream name */
    const char *subject;  /* subject the stream captures */
    const char *consumer; /* this replica's durable consumer name */
    int replicas;         /* copies of the stream when this server creates it */
    int timeout_ms;       /* wait for a publish acknowledgement / stream setup */
} mr_replog_config;

/* Apply one record (called on the consumer thread, in sequence order).
 * Return 0 when applied, MR_EINVAL when the record can never be applied
 * (it is skipped and counted: every replica rejects it alike), any other
 * error to retry it after a pause (disk full, I/O). */
typedef int (*mr_replog_apply_fn)(void *arg, uint64_t seq, const uint8_t *data, size_t len,
                                  mr_err *e);

typedef struct mr_replog_stats {
    uint64_t published;   /* records this server published (duplicates not counted) */
    uint64_t applied_seq; /* last sequence applied here */
    uint64_t pending;     /* records in the log not yet applied here */
    uint64_t rejected;    /* records skipped as invalid */
    uint64_t retries;     /* apply attempts that failed and were retried */
    uint64_t applied;     /* records applied by this process (a restart resets it) */
} mr_replog_stats;

/* Connect, create the stream when absent (retrying while the JetStream
 * cluster elects a leader, up to timeout_ms), bind the durable consumer. */
int mr_replog_open(const mr_replog_config *cfg, mr_replog **out, mr_err *e);
/* Start the consumer thread: records after `applied` (the store's applied
 * sequence) are passed to fn, in order. */
int mr_replog_start(mr_replog *l, uint64_t applied, mr_replog_apply_fn fn, void *arg, mr_err *e);
/* Publish one record; *seq gets its sequence once the log stored it.
 * msg_id (NULL = none) names the record for the log's de-duplication: a
 * second publish with the same id within the stream's duplicate window
 * (JetStream's default, 2 minutes) stores nothing and gets the first
 * one's sequence, with *duplicate set (duplicate may be NULL). */
int mr_replog_publish(mr_replog *l, const uint8_t *data, size_t len, const char *msg_id,
                      uint64_t *seq, int *duplicate, mr_err *e);
/* Wait until the record `seq` is applied here, or until deadline_ms (unix
 * ms; 0 = `max_wait_ms` from now). MR_EUNAVAIL with a message saying how far
 * behind this replica is when the time runs out. */
int mr_replog_wait(mr_replog *l, uint64_t seq, int64_t deadline_ms, int max_wait_ms, mr_err *e);
void mr_replog_get_stats(mr_replog *l, mr_replog_stats *s);
/* Stop the consumer (finishing the record in progress) and disconnect. */
void mr_replog_close(mr_replog *l);

#endif
