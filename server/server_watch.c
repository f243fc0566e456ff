/* server_watch.c — health Watch, the one streaming call (server.c runs
 * the unary ones). It sends the current status, then stays open
 * (RECV_CLOSE_ON_SERVER pending) until the client leaves or the server
 * drains, when it sends NOT_SERVING and closes with OK. Its batches are
 * reference-counted under watch_mu because shutdown finishes them from
 * another thread, and two send batches on one call must never overlap.
 */
#include "server_int.h"

#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "proto/health.pb-c.h"
#include "server/handlers.h"

/* ---- health Watch (the one streaming call) ------------------------------- */

static grpc_byte_buffer *health_message(int status) {
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    r.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
    uint8_t buf[16];
    size_t n = grpc__health__v1__health_check_response__pack(&r, buf);
    grpc_slice sl = grpc_slice_from_copied_buffer((const char *)buf, n);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    return bb;
}

/* Called with watch_mu held and no send in flight. */
static void watch_send_final(call *c) {
    c->final_started = 1;
    if (c->send) grpc_byte_buffer_destroy(c->send);
    c->send = health_message(GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
    srv_set_status(c, GRPC_STATUS_OK, NULL);
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_MESSAGE;
    ops[0].data.send_message.send_message = c->send;
    ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[1].data.send_status_from_server.status = GRPC_STATUS_OK;
    ops[1].data.send_status_from_server.status_details = &c->status_msg;
    if (grpc_call_start_batch(c->call, ops, 2, &c->tags[T_WATCH_FINAL], NULL) == GRPC_CALL_OK) {
        c->refs++;
        c->sending = 1;
    }
}

static void watch_release(call *c) { /* watch_mu held; frees when the last batch is done */
    if (--c->refs == 0) {
        mr_stats_record(mr_server_stats(c->srv, c->method_index),
                        (mr_now_ns() - c->start_ns) / 1000, c->status);
        srv_call_free(c);
    }
}

void srv_watch_start(call *c, const ProtobufCMessage *req) {
    mr_server *s = c->srv;
    const Grpc__Health__V1__HealthCheckRequest *hr = (const void *)req;
    int st = mr_health_status(s, hr->service);
    if (st < 0) st = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    c->send = health_message(st);
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = c->send;
    grpc_op close_op;
    memset(&close_op, 0, sizeof close_op);
    close_op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    close_op.data.recv_close_on_server.cancelled = &c->cancelled;
    pthread_mutex_lock(&s->watch_mu);
    int sent = grpc_call_start_batch(c->call, ops, 2, &c->tags[T_WATCH_SENT], NULL) == GRPC_CALL_OK;
    int closing = grpc_call_start_batch(c->call, &close_op, 1, &c->tags[T_WATCH_CLOSED], NULL) ==
                  GRPC_CALL_OK;
    if (!sent || !closing) {
        /* Only a batch that was queued brings an event: free the call now
         * if none was, else when that one completes (cancelled first, so it
         * cannot stay open unlisted, out of reach of the drain). */
        mr_warn("server: could not start health Watch stream");
        c->refs = sent + closing;
        c->cancelled = 1;
        int none = c->refs == 0;
        if (!none) grpc_call_cancel(c->call, NULL); /* under the lock: c lives until its event */
        pthread_mutex_unlock(&s->watch_mu);
        if (none) srv_call_free(c);
        return;
    }
    c->refs = 2;
    c->sending = 1;
    c->wnext = s->watchers;
    if (s->watchers) s->watchers->wprev = c;
    s->watchers = c;
    if (!atomic_load(&s->serving)) c->finish_requested = 1;
    pthread_mutex_unlock(&s->watch_mu);
}

void srv_watch_event(call *c, int op) {
    mr_server *s = c->srv;
    pthread_mutex_lock(&s->watch_mu);
    switch (op) {
    case T_WATCH_SENT:
    case T_WATCH_FINAL:
        c->sending = 0;
        if (c->finish_requested && !c->final_started && !c->cancelled) watch_send_final(c);
        break;
    case T_WATCH_CLOSED: /* client left, or our final status went out */
        if (c->wprev) c->wprev->wnext = c->wnext;
        else if (s->watchers == c) s->watchers = c->wnext;
        if (c->wnext) c->wnext->wprev = c->wprev;
        c->wnext = c->wprev = NULL;
        c->cancelled = 1;
        break;
    }
    watch_release(c);
    pthread_mutex_unlock(&s->watch_mu);
}

void srv_watch_end_all(mr_server *s) {
    pthread_mutex_lock(&s->watch_mu);
    for (call *c = s->watchers; c; c = c->wnext) {
        c->finish_requested = 1;
        if (!c->sending && !c->final_started) watch_send_final(c);
    }
    pthread_mutex_unlock(&s->watch_mu);
}
