/* remote_expert.c — experts on another moerec, searched through its
 * Retrieve over gRPC C core (see remote_expert.h).
 *
 * One search is one unary call on its own pluck completion queue:
 * create_call + one batch of the six client ops in start, pluck of that
 * batch's tag in finish. A queue per call costs an allocation but lets any
 * number of router threads keep calls in flight without sharing a poller.
 * The call's deadline is the earlier of now + remote_deadline_ms and half
 * of the incoming call's remaining time, so gRPC itself ends a slow call
 * on time, finish never waits past it, and the router still answers the
 * incoming call with the other experts' items. When the expert's size is stale, a
 * GetModelInfo call goes out on the same queue beside the Retrieve.
 */
#include "server/remote_expert.h"

#include <ctype.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "index/retrieval/retr_callback.h"
#include "proto/moerec.pb-c.h"
#include "server/tls.h"

#define RETRIEVE_PATH "/moerec.v1.Recommender/Retrieve"
#define INFO_PATH "/moerec.v1.Recommender/GetModelInfo"
#define REMOTE_K_MAX 10000        /* Retrieve's k limit (docs/api.md) */
#define REMOTE_INFO_RETRY_MS 1000 /* size unknown: ask again this often */

typedef struct remote_channel {
    char address[RETR_SET_ADDRESS_MAX];
    grpc_channel *ch;
} remote_channel;

typedef struct remote_stat {
    char name[RETR_NAME_MAX];
    char address[RETR_SET_ADDRESS_MAX];
    mr_method_stats st; /* calls, errors, latency */
    atomic_uint_fast64_t timeouts;
    atomic_uint_fast64_t unavailable;
} remote_stat;

struct mr_remotes {
    int deadline_ms;                 /* cap per call */
    grpc_channel_credentials *creds; /* TLS or insecure */
    char auth[300];                  /* "Bearer <token>", "" = none */
    pthread_mutex_t mu;              /* guards ch[], the appends to stats[] */
    remote_channel ch[MR_REMOTE_MAX];
    int n_ch;
    remote_stat *stats[MR_REMOTE_MAX];
    atomic_int n_stats; /* stats[0..n) are complete */
};

typedef struct remote_expert {
    mr_remotes *rs;
    grpc_channel *ch;  /* borrowed from rs */
    remote_stat *stat; /* borrowed from rs */
    char address[RETR_SET_ADDRESS_MAX];
    char remote_name[RETR_NAME_MAX];
    char remote_model[RETR_SET_MODEL_MAX];
    atomic_int_fast64_t size;       /* from GetModelInfo; -1 unknown */
    atomic_int_fast64_t info_at_ms; /* last GetModelInfo sent (unix ms) */
    atomic_int info_busy;           /* one GetModelInfo in flight at most */
} remote_expert;

/* One unary call. */
typedef struct rpc {
    grpc_call *call;
    grpc_metadata md; /* authorization */
    grpc_metadata_array init_md, trail_md;
    grpc_byte_buffer *send, *recv;
    grpc_status_code status;
    grpc_slice details;
    int started; /* batch accepted: its event will come */
} rpc;

typedef struct remote_call {
    grpc_completion_queue *cq;
    rpc retrieve, info;
    uint64_t t0; /* mr_now_ns at start */
} remote_call;

/* ------------------------------------------------------------- calls */

static int rpc_start(remote_expert *x, grpc_completion_queue *cq, rpc *r, const char *path,
                     const ProtobufCMessage *msg, gpr_timespec deadline, void *tag) {
    grpc_metadata_array_init(&r->init_md);
    grpc_metadata_array_init(&r->trail_md);
    r->details = grpc_empty_slice();
    r->call = grpc_channel_create_call(x->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                       grpc_slice_from_static_string(path), NULL, deadline, NULL);
    if (!r->call) return -1;
    grpc_slice body = grpc_slice_malloc(protobuf_c_message_get_packed_size(msg));
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(body));
    r->send = grpc_raw_byte_buffer_create(&body, 1);
    grpc_slice_unref(body);
    size_t nmd = 0;
    if (x->rs->auth[0]) {
        r->md.key = grpc_slice_from_static_string("authorization");
        r->md.value = grpc_slice_from_static_string(x->rs->auth); /* lives as long as rs */
        nmd = 1;
    }
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = nmd;
    ops[0].data.send_initial_metadata.metadata = nmd ? &r->md : NULL;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = r->send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &r->init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &r->recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &r->trail_md;
    ops[5].data.recv_status_on_client.status = &r->status;
    ops[5].data.recv_status_on_client.status_details = &r->details;
    if (grpc_call_start_batch(r->call, ops, 6, tag, NULL) != GRPC_CALL_OK) return -1;
    r->started = 1;
    return 0;
}

/* Wait for r's batch (bounded by the call's deadline). */
static void rpc_wait(grpc_completion_queue *cq, rpc *r, void *tag) {
    if (!r->started) return;
    grpc_event ev = grpc_completion_queue_pluck(cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE || !ev.success) r->status = GRPC_STATUS_UNAVAILABLE;
    r->started = 0;
}

/* The answer's bytes (malloc'd) or NULL; *n its length. */
static uint8_t *rpc_body(rpc *r, size_t *n) {
    *n = 0;
    if (!r->recv) return NULL;
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, r->recv)) return NULL;
    grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
    grpc_byte_buffer_reader_destroy(&rd);
    *n = GRPC_SLICE_LENGTH(all);
    uint8_t *b = malloc(*n ? *n : 1);
    if (b) memcpy(b, GRPC_SLICE_START_PTR(all), *n);
    grpc_slice_unref(all);
    return b;
}

static void rpc_release(rpc *r) {
    if (r->send) grpc_byte_buffer_destroy(r->send);
    if (r->recv) grpc_byte_buffer_destroy(r->recv);
    grpc_metadata_array_destroy(&r->init_md);
    grpc_metadata_array_destroy(&r->trail_md);
    grpc_slice_unref(r->details);
    if (r->call) grpc_call_unref(r->call);
}

static void remote_call_free(remote_call *c) {
    if (!c) return;
    rpc_release(&c->retrieve);
    if (c->info.call || c->info.send) rpc_release(&c->info);
    if (c->cq) {
        grpc_completion_queue_shutdown(c->cq);
        while (grpc_completion_queue_pluck(c->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
                   .type != GRPC_QUEUE_SHUTDOWN) {
        }
        grpc_completion_queue_destroy(c->cq);
    }
    free(c);
}

/* ------------------------------------------------------- the callbacks */

static void remote_info_send(remote_expert *x, remote_call *c, gpr_timespec deadline) {
    int64_t now = mr_unix_ms(), at = atomic_load(&x->info_at_ms);
    int64_t every = atomic_load(&x->size) < 0 ? REMOTE_INFO_RETRY_MS : MR_REMOTE_INFO_MS;
    int idle = 0;
    if (now - at < every || !atomic_compare_exchange_strong(&x->info_busy, &idle, 1)) return;
    atomic_store(&x->info_at_ms, now);
    Moerec__V1__GetModelInfoRequest q;
    moerec__v1__get_model_info_request__init(&q);
    q.model = x->remote_model;
    if (rpc_start(x, c->cq, &c->info, INFO_PATH, &q.base, deadline, &c->info) && !c->info.started)
        atomic_store(&x->info_busy, 0);
}

static int remote_start(void *ctx, const float *q, int dim, int k, const retr_user *user,
                        int64_t deadline_ms, void **out, mr_err *e) {
    (void)user; /* remote experts are vector experts: the query carries the user */
    remote_expert *x = ctx;
    /* at most remote_deadline_ms, and half of what is left of the incoming
     * call, so the router still answers in time with the others' items */
    int64_t now = mr_unix_ms(), until = now + x->rs->deadline_ms;
    if (deadline_ms > 0 && now + (deadline_ms - now) / 2 < until)
        until = now + (deadline_ms - now) / 2;
    if (until <= now) {
        atomic_fetch_add(&x->stat->timeouts, 1);
        mr_stats_record(&x->stat->st, 0, GRPC_STATUS_DEADLINE_EXCEEDED);
        return mr_err_set(e, MR_ETIMEOUT,
                          "remote expert %s at %s: no time left before the "
                          "call's deadline",
                          x->remote_name, x->address);
    }
    remote_call *c = calloc(1, sizeof *c);
    if (!c) return mr_err_set(e, MR_ENOMEM, "remote expert %s: out of memory", x->remote_name);
    c->t0 = mr_now_ns();
    c->cq = grpc_completion_queue_create_for_pluck(NULL);
    gpr_timespec deadline = gpr_time_from_millis(until, GPR_CLOCK_REALTIME);
    Moerec__V1__RetrieveRequest rq;
    moerec__v1__retrieve_request__init(&rq);
    char *names[1] = {x->remote_name};
    rq.model = x->remote_model;
    rq.k = (uint32_t)(k < REMOTE_K_MAX ? k : REMOTE_K_MAX);
    rq.retrievers = names;
    rq.n_retrievers = 1;
    rq.query_vector = (float *)q;
    rq.n_query_vector = (size_t)dim;
    if (!c->cq ||
        rpc_start(x, c->cq, &c->retrieve, RETRIEVE_PATH, &rq.base, deadline, &c->retrieve)) {
        remote_call_free(c);
        mr_stats_record(&x->stat->st, 0, GRPC_STATUS_INTERNAL);
        return mr_err_set(e, MR_EINTERNAL, "remote expert %s at %s: the call could not start",
                          x->remote_name, x->address);
    }
    remote_info_send(x, c, deadline);
    *out = c;
    return 0;
}

/* The remote's GetModelInfo answer: the size of our expert. */
static void remote_info_read(remote_expert *x, remote_call *c) {
    rpc_wait(c->cq, &c->info, &c->info);
    atomic_store(&x->info_busy, 0);
    if (c->info.status != GRPC_STATUS_OK) return;
    size_t n;
    uint8_t *b = rpc_body(&c->info, &n);
    Moerec__V1__GetModelInfoResponse *m =
        b ? moerec__v1__get_model_info_response__unpack(NULL, n, b) : NULL;
    free(b);
    if (!m) return;
    for (size_t i = 0; i < m->n_retrievers; i++)
        if (!strcmp(m->retrievers[i]->name, x->remote_name))
            atomic_store(&x->size, (int64_t)m->retrievers[i]->size);
    moerec__v1__get_model_info_response__free_unpacked(m, NULL);
}

static int remote_finish(void *ctx, void *call, int64_t *ids, float *scores, int k, mr_err *e) {
    remote_expert *x = ctx;
    remote_call *c = call;
    retr_fill_missing(ids, scores, 0, k);
    rpc_wait(c->cq, &c->retrieve, &c->retrieve);
    if (c->info.call) remote_info_read(x, c);
    uint64_t us = (mr_now_ns() - c->t0) / 1000;
    rpc *r = &c->retrieve;
    int rc = 0;
    if (r->status != GRPC_STATUS_OK) {
        if (r->status == GRPC_STATUS_DEADLINE_EXCEEDED) atomic_fetch_add(&x->stat->timeouts, 1);
        if (r->status == GRPC_STATUS_UNAVAILABLE) atomic_fetch_add(&x->stat->unavailable, 1);
        rc = mr_err_set(e, -(int)r->status, "remote expert %s at %s: %s: %.*s", x->remote_name,
                        x->address, mr_err_name(-(int)r->status),
                        (int)GRPC_SLICE_LENGTH(r->details),
                        (const char *)GRPC_SLICE_START_PTR(r->details));
    } else {
        size_t n;
        uint8_t *b = rpc_body(r, &n);
        Moerec__V1__RetrieveResponse *m = b ? moerec__v1__retrieve_response__unpack(NULL, n, b)
                                            : NULL;
        free(b);
        if (!m) {
            rc = mr_err_set(e, MR_EINTERNAL, "remote expert %s at %s: the answer does not parse",
                            x->remote_name, x->address);
        }
        for (size_t i = 0; m && !rc && i < m->n_items && (int)i < k; i++) {
            const char *s = m->items[i]->item_id;
            char *end = NULL;
            long long id = isdigit((unsigned char)s[0]) ? strtoll(s, &end, 10) : -1;
            if (id < 0 || !end || *end || !isfinite(m->items[i]->expert_score)) {
                rc = mr_err_set(e, MR_EINTERNAL,
                                "remote expert %s at %s: answered item '%.40s' "
                                "(ids must be decimal numbers, scores finite)",
                                x->remote_name, x->address, s);
                break;
            }
            ids[i] = (int64_t)id;
            scores[i] = m->items[i]->expert_score;
        }
        if (m) moerec__v1__retrieve_response__free_unpacked(m, NULL);
        if (rc) retr_fill_missing(ids, scores, 0, k);
    }
    mr_stats_record(&x->stat->st, us, rc ? mr_err_grpc_code(rc) : GRPC_STATUS_OK);
    remote_call_free(c);
    return rc;
}

static int64_t remote_size(void *ctx) { return atomic_load(&((remote_expert *)ctx)->size); }

static void remote_free(void *ctx) { free(ctx); }

static const retr_callbacks remote_cb = {remote_start, remote_finish, remote_size, remote_free};

/* ------------------------------------------------------------ make */

int mr_remote_expert_make(void *ctx, const retr_set_remote *spec, mr_retr **out, mr_err *e) {
    mr_remotes *rs = ctx;
    if (!rs || !spec || !out)
        return mr_err_set(e, MR_EINVAL, "mr_remote_expert_make: NULL argument");
    remote_expert *x = calloc(1, sizeof *x);
    if (!x) return mr_err_set(e, MR_ENOMEM, "remote expert %s: out of memory", spec->name);
    x->rs = rs;
    snprintf(x->address, sizeof x->address, "%s", spec->address);
    snprintf(x->remote_name, sizeof x->remote_name, "%s", spec->remote_name);
    snprintf(x->remote_model, sizeof x->remote_model, "%s", spec->remote_model);
    atomic_init(&x->size, -1);
    pthread_mutex_lock(&rs->mu);
    for (int i = 0; i < rs->n_ch && !x->ch; i++)
        if (!strcmp(rs->ch[i].address, spec->address)) x->ch = rs->ch[i].ch;
    int n = atomic_load(&rs->n_stats);
    for (int i = 0; i < n && !x->stat; i++)
        if (!strcmp(rs->stats[i]->name, spec->name) &&
            !strcmp(rs->stats[i]->address, spec->address))
            x->stat = rs->stats[i];
    int rc = 0;
    if ((!x->ch && rs->n_ch == MR_REMOTE_MAX) || (!x->stat && n == MR_REMOTE_MAX))
        rc = mr_err_set(e, MR_ENOMEM, "more than %d remote experts or addresses", MR_REMOTE_MAX);
    if (!rc && !x->ch) {
        /* reconnect fast after a remote restarts (the default backoff grows to 2 minutes) */
        grpc_arg a[1] = {{.type = GRPC_ARG_INTEGER,
                          .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
                          .value.integer = 5000}};
        grpc_channel_args args = {1, a};
        grpc_channel *ch = grpc_channel_create(spec->address, rs->creds, &args);
        if (!ch) rc = mr_err_set(e, MR_EINVAL, "remote address '%s': no channel", spec->address);
        else {
            snprintf(rs->ch[rs->n_ch].address, RETR_SET_ADDRESS_MAX, "%s", spec->address);
            rs->ch[rs->n_ch++].ch = x->ch = ch;
        }
    }
    if (!rc && !x->stat) {
        remote_stat *st = calloc(1, sizeof *st);
        if (!st) rc = mr_err_set(e, MR_ENOMEM, "remote expert %s: out of memory", spec->name);
        else {
            snprintf(st->name, sizeof st->name, "%s", spec->name);
            snprintf(st->address, sizeof st->address, "%s", spec->address);
            rs->stats[n] = x->stat = st;
            atomic_store(&rs->n_stats, n + 1);
        }
    }
    pthread_mutex_unlock(&rs->mu);
    if (rc) {
        free(x);
        return rc;
    }
    return retr_callback_create(out, spec->name, spec->dim, &remote_cb, x, e);
}

/* --------------------------------------------------------- lifecycle */

/* The bearer token: the file's first word, 16..256 printable bytes. */
static int read_token(mr_remotes *rs, const char *path, mr_err *e) {
    char *t = mr_tls_read_file(path, "remote_token_file", e);
    if (!t) return MR_EINVAL;
    char *p = t;
    while (*p && isspace((unsigned char)*p)) p++;
    size_t n = 0;
    while (p[n] && !isspace((unsigned char)p[n])) n++;
    int rc = 0;
    if (n < 16 || n > 256)
        rc = mr_err_set(e, MR_EINVAL, "remote_token_file '%s': the token must be 16..256 bytes",
                        path);
    else snprintf(rs->auth, sizeof rs->auth, "Bearer %.*s", (int)n, p);
    free(t);
    return rc;
}

int mr_remotes_create(mr_remotes **out, const mr_server_config *cfg, mr_err *e) {
    char *ca = NULL, *cert = NULL, *key = NULL;
    int rc = 0;
    *out = NULL;
    mr_remotes *rs = calloc(1, sizeof *rs);
    if (!rs) return mr_err_set(e, MR_ENOMEM, "out of memory");
    grpc_init();
    pthread_mutex_init(&rs->mu, NULL);
    rs->deadline_ms = cfg->remote_deadline_ms;
    if (cfg->remote_token_file[0] && (rc = read_token(rs, cfg->remote_token_file, e))) goto err;
    if (cfg->remote_tls) {
        if (cfg->remote_tls_ca_file[0] &&
            !(ca = mr_tls_read_file(cfg->remote_tls_ca_file, "remote_tls_ca_file", e))) {
            rc = MR_EINVAL;
            goto err;
        }
        if (cfg->remote_tls_cert_file[0] &&
            (!(cert = mr_tls_read_file(cfg->remote_tls_cert_file, "remote_tls_cert_file", e)) ||
             !(key = mr_tls_read_file(cfg->remote_tls_key_file, "remote_tls_key_file", e)))) {
            rc = MR_EINVAL;
            goto err;
        }
        grpc_ssl_pem_key_cert_pair kp = {key, cert};
        rs->creds = grpc_ssl_credentials_create(ca, cert ? &kp : NULL, NULL, NULL);
    } else {
        rs->creds = grpc_insecure_credentials_create();
    }
    if (!rs->creds) {
        rc = mr_err_set(e, MR_EINVAL, "remote experts: gRPC refused the channel credentials");
        goto err;
    }
    free(ca);
    free(cert);
    free(key);
    *out = rs;
    return 0;
err:
    free(ca);
    free(cert);
    free(key);
    mr_remotes_free(rs);
    return rc;
}

void mr_remotes_free(mr_remotes *rs) {
    if (!rs) return;
    for (int i = 0; i < rs->n_ch; i++) grpc_channel_destroy(rs->ch[i].ch);
    for (int i = 0; i < atomic_load(&rs->n_stats); i++) free(rs->stats[i]);
    if (rs->creds) grpc_channel_credentials_release(rs->creds);
    pthread_mutex_destroy(&rs->mu);
    free(rs);
    grpc_shutdown();
}

int mr_remotes_count(const mr_remotes *rs) { return rs ? atomic_load(&rs->n_stats) : 0; }

int mr_remotes_stats(const mr_remotes *rs, int i, mr_remote_stats *out) {
    if (!rs || i < 0 || i >= atomic_load(&rs->n_stats)) return MR_EINVAL;
    const remote_stat *st = rs->stats[i];
    out->name = st->name;
    out->address = st->address;
    out->calls = &st->st;
    out->timeouts = atomic_load(&st->timeouts);
    out->unavailable = atomic_load(&st->unavailable);
    return 0;
}
