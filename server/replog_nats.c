/* replog_nats.c — the update log on NATS JetStream (libnats 3.4).
 *
 * One stream (file storage, `replicas` copies) captures one subject; a
 * publish returns once the stream leader has the record on a quorum of its
 * replicas (js_Publish waits for that PubAck). Each replica reads through
 * its own durable pull consumer (explicit acks): it fetches a batch,
 * applies each record after the store's applied sequence, and acks it after
 * the write. A record redelivered after a crash or an ack timeout has a
 * sequence the store already holds and is acked without applying.
 */
#include "server/replog.h"

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

#define REPLOG_MAX_SERVERS 16
#define REPLOG_FETCH 256      /* records per fetch */
#define REPLOG_FETCH_WAIT 250 /* ms a fetch waits for records */
#define REPLOG_RETRY_MS 200   /* pause before retrying a failed apply */
#define REPLOG_GAP_TRIES 3    /* consumer restarts before a gap is accepted */

struct mr_replog {
    char *servers, *stream, *subject, *consumer;
    int replicas, timeout_ms;
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub;
    mr_replog_apply_fn fn;
    void *arg;
    pthread_t th;
    int started;
    int gap_tries; /* consumer thread only */
    atomic_int stop;
    pthread_mutex_t mu; /* guards applied_seq for waiters */
    pthread_cond_t cv;  /* broadcast when applied_seq moves */
    _Atomic uint64_t applied_seq, pending, published, rejected, retries, applied;
};

static int nats_err(mr_err *e, int code, natsStatus s, jsErrCode jerr, const char *what) {
    const char *last = nats_GetLastError(NULL);
    return mr_err_set(e, code, "%s: %s%s%s (jetstream error %d)", what, natsStatus_GetText(s),
                      last && *last ? ": " : "", last ? last : "", (int)jerr);
}

static void replog_free(mr_replog *l) {
    if (l->sub) natsSubscription_Destroy(l->sub);
    if (l->js) jsCtx_Destroy(l->js);
    if (l->nc) natsConnection_Destroy(l->nc);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l->servers), free(l->stream), free(l->subject), free(l->consumer);
    free(l);
}

/* Connect to every listed server (the client picks one and fails over). */
static int replog_connect(mr_replog *l, mr_err *e) {
    char *list = strdup(l->servers), *save = NULL;
    const char *urls[REPLOG_MAX_SERVERS];
    int n = 0;
    if (!list) return mr_err_set(e, MR_ENOMEM, "update log: out of memory");
    for (char *t = strtok_r(list, ",", &save); t && n < REPLOG_MAX_SERVERS;
         t = strtok_r(NULL, ",", &save))
        urls[n++] = t;
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK) s = natsOptions_SetServers(o, urls, n);
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(o, -1); /* ride out a node's restart */
    if (s == NATS_OK) s = natsOptions_SetReconnectWait(o, 100);
    if (s == NATS_OK) s = natsOptions_SetTimeout(o, l->timeout_ms);
    if (s == NATS_OK) s = natsConnection_Connect(&l->nc, o);
    natsOptions_Destroy(o);
    free(list);
    if (s != NATS_OK) return nats_err(e, MR_EUNAVAIL, s, 0, "update log: connect");
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = l->timeout_ms;
    s = natsConnection_JetStream(&l->js, l->nc, &jo);
    return s == NATS_OK ? 0 : nats_err(e, MR_EUNAVAIL, s, 0, "update log: JetStream context");
}

/* Setup requests wait a second each and are retried until timeout_ms: a
 * JetStream cluster that is still electing its leader leaves them
 * unanswered. */
static jsOptions replog_setup_opts(void) {
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 1000;
    return jo;
}

/* The stream, created when absent. */
static int replog_stream(mr_replog *l, mr_err *e) {
    int64_t until = mr_unix_ms() + l->timeout_ms;
    jsOptions jo = replog_setup_opts();
    for (;;) {
        jsStreamInfo *si = NULL;
        jsErrCode jerr = 0;
        natsStatus s = js_GetStreamInfo(&si, l->js, l->stream, &jo, &jerr);
        if (s == NATS_OK) {
            jsStreamInfo_Destroy(si);
            return 0;
        }
        if (s == NATS_NOT_FOUND) {
            jsStreamConfig sc;
            jsStreamConfig_Init(&sc);
            const char *subjects[1] = {l->subject};
            sc.Name = l->stream;
            sc.Subjects = subjects;
            sc.SubjectsLen = 1;
            sc.Storage = js_FileStorage;
            sc.Replicas = l->replicas;
            s = js_AddStream(&si, l->js, &sc, &jo, &jerr);
            if (s == NATS_OK) {
                jsStreamInfo_Destroy(si);
                mr_info("update log: created stream '%s' (subject '%s', %d replicas)", l->stream,
                        l->subject, l->replicas);
                return 0;
            }
        }
        if (mr_unix_ms() >= until) return nats_err(e, MR_EUNAVAIL, s, jerr, "update log: stream");
        usleep(100 * 1000);
    }
}

/* (Re)create this replica's durable consumer at `start` and bind it. The
 * store, not the consumer, knows what was applied: a consumer left from
 * before (a restart, a dropped connection) may hold records delivered but
 * never acked, which JetStream redelivers only after AckWait, behind newer
 * ones. A fresh consumer at the store's position keeps delivery in order. */
static int replog_consumer(mr_replog *l, uint64_t start, mr_err *e) {
    int64_t until = mr_unix_ms() + l->timeout_ms;
    jsOptions jo = replog_setup_opts();
    if (l->sub) {
        natsSubscription_Destroy(l->sub);
        l->sub = NULL;
    }
    for (;;) {
        jsErrCode jerr = 0;
        natsStatus s = js_DeleteConsumer(l->js, l->stream, l->consumer, &jo, &jerr);
        if (s == NATS_OK || s == NATS_NOT_FOUND) {
            jsConsumerConfig cc;
            jsConsumerConfig_Init(&cc);
            cc.Durable = l->consumer;
            cc.DeliverPolicy = start > 1 ? js_DeliverByStartSequence : js_DeliverAll;
            cc.OptStartSeq = start > 1 ? start : 0;
            cc.AckPolicy = js_AckExplicit;
            cc.AckWait = 30LL * 1000 * 1000 * 1000; /* ns: longer than any apply */
            cc.MaxAckPending = 4 * REPLOG_FETCH;
            jsConsumerInfo *ci = NULL;
            s = js_AddConsumer(&ci, l->js, l->stream, &cc, &jo, &jerr);
            if (s == NATS_OK) jsConsumerInfo_Destroy(ci);
        }
        if (s == NATS_OK) {
            jsSubOptions so;
            jsSubOptions_Init(&so);
            so.Stream = l->stream;
            so.Consumer = l->consumer;
            s = js_PullSubscribe(&l->sub, l->js, l->subject, l->consumer, &jo, &so, &jerr);
            if (s == NATS_OK) return 0;
        }
        if (mr_unix_ms() >= until) return nats_err(e, MR_EUNAVAIL, s, jerr, "update log: consumer");
        usleep(100 * 1000);
    }
}

int mr_replog_open(const mr_replog_config *cfg, mr_replog **out, mr_err *e) {
    *out = NULL;
    if (!cfg->servers || !*cfg->servers) return mr_err_set(e, MR_EINVAL, "update log: no server");
    if (!cfg->consumer || !*cfg->consumer)
        return mr_err_set(e, MR_EINVAL, "update log: this replica needs a consumer name");
    mr_replog *l = calloc(1, sizeof *l);
    if (!l) return mr_err_set(e, MR_ENOMEM, "update log: out of memory");
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->servers = strdup(cfg->servers);
    l->stream = strdup(cfg->stream && *cfg->stream ? cfg->stream : "moerec");
    l->subject = strdup(cfg->subject && *cfg->subject ? cfg->subject : "moerec.writes");
    l->consumer = strdup(cfg->consumer);
    l->replicas = cfg->replicas > 0 ? cfg->replicas : 3;
    l->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 5000;
    int rc = 0;
    if (!l->servers || !l->stream || !l->subject || !l->consumer)
        rc = mr_err_set(e, MR_ENOMEM, "update log: out of memory");
    if (!rc) rc = replog_connect(l, e);
    if (!rc) rc = replog_stream(l, e);
    if (rc) {
        replog_free(l);
        return rc;
    }
    *out = l;
    return 0;
}

int mr_replog_publish(mr_replog *l, const uint8_t *data, size_t len, const char *msg_id,
                      uint64_t *seq, int *duplicate, mr_err *e) {
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = l->timeout_ms;
    po.ExpectStream = l->stream;
    po.MsgId = msg_id; /* the Nats-Msg-Id header: JetStream de-duplicates on it */
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_Publish(&pa, l->js, l->subject, data, (int)len, &po, &jerr);
    if (s == NATS_TIMEOUT) /* the stream may have stored it all the same */
        return nats_err(e, MR_EUNAVAIL, s, jerr,
                        "update log: publish not acknowledged in time "
                        "(the record may still be stored and applied)");
    if (s != NATS_OK)
        return nats_err(e, MR_EUNAVAIL, s, jerr, "update log: publish (nothing was written)");
    *seq = pa->Sequence;
    if (duplicate) *duplicate = pa->Duplicate;
    if (!pa->Duplicate) atomic_fetch_add(&l->published, 1);
    jsPubAck_Destroy(pa);
    return 0;
}

static void replog_set_applied(mr_replog *l, uint64_t seq) {
    pthread_mutex_lock(&l->mu);
    atomic_store(&l->applied_seq, seq);
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

/* Apply one fetched record (in order); 1 when it was settled (applied,
 * already held, or rejected) and may be acked, 0 when stopping first, -1
 * when records before it have not arrived (the consumer is restarted). */
static int replog_apply_one(mr_replog *l, natsMsg *m) {
    jsMsgMetaData *meta = NULL;
    if (natsMsg_GetMetaData(&meta, m) != NATS_OK) return 1; /* not a stream record: drop */
    uint64_t seq = meta->Sequence.Stream;
    atomic_store(&l->pending, meta->NumPending);
    jsMsgMetaData_Destroy(meta);
    uint64_t applied = atomic_load(&l->applied_seq);
    if (seq <= applied) return 1; /* redelivered: the store has it */
    if (seq != applied + 1 && l->gap_tries < REPLOG_GAP_TRIES) {
        l->gap_tries++; /* records in between are pending elsewhere: restart the consumer */
        return -1;
    }
    if (seq != applied + 1) /* still missing from a fresh consumer: gone from the stream */
        mr_error("update log: records %llu..%llu are no longer in the stream; this replica "
                 "misses them (restore it from a checkpoint)",
                 (unsigned long long)(applied + 1), (unsigned long long)(seq - 1));
    l->gap_tries = 0;
    for (int64_t last_warn = 0;;) {
        mr_err e = {0};
        int rc = l->fn(l->arg, seq, (const uint8_t *)natsMsg_GetData(m),
                       (size_t)natsMsg_GetDataLength(m), &e);
        if (rc == 0) {
            atomic_fetch_add(&l->applied, 1);
            break;
        }
        if (rc == MR_EINVAL) {
            atomic_fetch_add(&l->rejected, 1);
            mr_warn("update log: record %llu rejected on apply (skipped): %s",
                    (unsigned long long)seq, e.msg);
            break;
        }
        atomic_fetch_add(&l->retries, 1);
        if (mr_unix_ms() - last_warn > 10000) {
            mr_warn("update log: record %llu not applied, retrying: %s", (unsigned long long)seq,
                    e.msg);
            last_warn = mr_unix_ms();
        }
        if (atomic_load(&l->stop)) return 0;
        usleep(REPLOG_RETRY_MS * 1000);
    }
    replog_set_applied(l, seq);
    return 1;
}

static void *replog_main(void *arg) {
    mr_replog *l = arg;
    while (!atomic_load(&l->stop)) {
        if (!l->sub) { /* a restart of the consumer failed: try again */
            mr_err e = {0};
            if (replog_consumer(l, atomic_load(&l->applied_seq) + 1, &e)) {
                usleep(500 * 1000);
                continue;
            }
        }
        natsMsgList list = {0};
        jsErrCode jerr = 0;
        natsStatus s = natsSubscription_Fetch(&list, l->sub, REPLOG_FETCH, REPLOG_FETCH_WAIT,
                                              &jerr);
        if (s == NATS_TIMEOUT) {
            atomic_store(&l->pending, 0);
            continue;
        }
        if (s != NATS_OK) { /* a node restarting: the client reconnects */
            usleep(100 * 1000);
            continue;
        }
        int r = 1;
        for (int i = 0; i < list.Count && (r = replog_apply_one(l, list.Msgs[i])) == 1; i++)
            natsMsg_Ack(list.Msgs[i], NULL); /* after the write: at-least-once + seq check */
        natsMsgList_Destroy(&list);          /* records not settled are redelivered */
        if (r < 0) {
            mr_err e = {0};
            if (replog_consumer(l, atomic_load(&l->applied_seq) + 1, &e))
                mr_warn("update log: cannot restart the consumer: %s", e.msg);
        }
    }
    return NULL;
}

int mr_replog_start(mr_replog *l, uint64_t applied, mr_replog_apply_fn fn, void *arg, mr_err *e) {
    int rc = replog_consumer(l, applied + 1, e);
    if (rc) return rc;
    l->fn = fn;
    l->arg = arg;
    atomic_store(&l->applied_seq, applied);
    if (pthread_create(&l->th, NULL, replog_main, l) != 0)
        return mr_err_set(e, MR_EINTERNAL, "update log: cannot start the consumer thread");
    l->started = 1;
    return 0;
}

int mr_replog_wait(mr_replog *l, uint64_t seq, int64_t deadline_ms, int max_wait_ms, mr_err *e) {
    if (atomic_load(&l->applied_seq) >= seq) return 0;
    int64_t until = mr_unix_ms() + max_wait_ms;
    if (deadline_ms > 0 && deadline_ms < until) until = deadline_ms;
    struct timespec ts = {until / 1000, (until % 1000) * 1000000L};
    pthread_mutex_lock(&l->mu);
    while (atomic_load(&l->applied_seq) < seq && !atomic_load(&l->stop))
        if (pthread_cond_timedwait(&l->cv, &l->mu, &ts) != 0) break;
    pthread_mutex_unlock(&l->mu);
    uint64_t at = atomic_load(&l->applied_seq);
    if (at >= seq) return 0;
    return mr_err_set(
        e, MR_EUNAVAIL,
        "this replica has applied the update log up to %llu; min_sequence %llu is %llu "
        "records ahead (retry, or send the read to the replica that took the write)",
        (unsigned long long)at, (unsigned long long)seq, (unsigned long long)(seq - at));
}

void mr_replog_get_stats(mr_replog *l, mr_replog_stats *s) {
    s->published = atomic_load(&l->published);
    s->applied_seq = atomic_load(&l->applied_seq);
    s->pending = atomic_load(&l->pending);
    s->rejected = atomic_load(&l->rejected);
    s->retries = atomic_load(&l->retries);
    s->applied = atomic_load(&l->applied);
}

void mr_replog_close(mr_replog *l) {
    if (!l) return;
    atomic_store(&l->stop, 1);
    pthread_mutex_lock(&l->mu);
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    if (l->started) pthread_join(l->th, NULL);
    replog_free(l);
}
