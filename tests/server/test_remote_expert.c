/* test_remote_expert.c — the remote expert client (server/remote_expert.c)
 * against a fake moerec: a gRPC C-core server on 127.0.0.1 (free port)
 * answering Retrieve and GetModelInfo with canned messages. A search sends
 * the query vector, k (capped at Retrieve's 10,000), the remote name and
 * model and the bearer token, and reads back ids and expert scores; the
 * expert learns its size from GetModelInfo; non-numeric ids, error
 * statuses, a slow answer (the cap), a deadline already past and a closed
 * port each give a clear error with the right code, counted by reason;
 * bad remote_* files are errors naming them (the settings' ranges:
 * test_config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
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
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "common/clock.h"
#include "index/retrieval/retr_callback.h"
#include "proto/moerec.pb-c.h"
#include "server/remote_expert.h"

#define TOKEN "remote-token-0123456789"

enum { ANSWER_OK, ANSWER_BAD_ID, ANSWER_NOT_FOUND, ANSWER_SLOW };

typedef struct fake {
    grpc_server *srv;
    grpc_completion_queue *cq;
    pthread_t thread;
    int port;
    atomic_int mode;
    atomic_int saw_shutdown;
    /* what the last Retrieve asked */
    pthread_mutex_t mu;
    unsigned k;
    char retriever[64], model[64], auth[128];
    float q0;
    size_t nq;
    int info_calls;
} fake;

static fake F;

/* What the fake saw, read under its mutex (gRPC's own ordering between the
 * fake's thread and the client is invisible to ThreadSanitizer). */
typedef struct fake_seen {
    unsigned k;
    char retriever[64], model[64], auth[128];
    float q0;
    size_t nq;
    int info_calls;
} fake_seen;

static fake_seen seen(void) {
    fake_seen v;
    pthread_mutex_lock(&F.mu);
    v.k = F.k;
    memcpy(v.retriever, F.retriever, sizeof v.retriever);
    memcpy(v.model, F.model, sizeof v.model);
    memcpy(v.auth, F.auth, sizeof v.auth);
    v.q0 = F.q0;
    v.nq = F.nq;
    v.info_calls = F.info_calls;
    pthread_mutex_unlock(&F.mu);
    return v;
}

static grpc_byte_buffer *pack(const ProtobufCMessage *m) {
    grpc_slice s = grpc_slice_malloc(protobuf_c_message_get_packed_size(m));
    protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
    grpc_byte_buffer *b = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return b;
}

static int next_is(void *tag) {
    grpc_event ev = grpc_completion_queue_next(F.cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_OP_COMPLETE && ev.tag == (void *)&F.saw_shutdown)
        atomic_store(&F.saw_shutdown, 1);
    return ev.type == GRPC_OP_COMPLETE && ev.tag == tag && ev.success;
}

/* One call: the canned answer of the current mode. */
static void fake_answer(grpc_call *call, const char *method, const grpc_metadata_array *md) {
    static int t_recv, t_send;
    grpc_byte_buffer *in = NULL;
    grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
    op.data.recv_message.recv_message = &in;
    if (grpc_call_start_batch(call, &op, 1, &t_recv, NULL) != GRPC_CALL_OK || !next_is(&t_recv))
        return;
    uint8_t buf[1 << 16];
    size_t n = 0;
    if (in) {
        grpc_byte_buffer_reader r;
        grpc_byte_buffer_reader_init(&r, in);
        grpc_slice all = grpc_byte_buffer_reader_readall(&r);
        n = GRPC_SLICE_LENGTH(all) < sizeof buf ? GRPC_SLICE_LENGTH(all) : sizeof buf;
        memcpy(buf, GRPC_SLICE_START_PTR(all), n);
        grpc_slice_unref(all);
        grpc_byte_buffer_reader_destroy(&r);
        grpc_byte_buffer_destroy(in);
    }
    int mode = atomic_load(&F.mode);
    grpc_status_code status = GRPC_STATUS_OK;
    const char *details = "";
    grpc_byte_buffer *out = NULL;
    if (strstr(method, "GetModelInfo")) {
        Moerec__V1__RetrieverInfo ri = MOEREC__V1__RETRIEVER_INFO__INIT, other = ri;
        ri.name = "far";
        ri.size = 50;
        other.name = "elsewhere";
        other.size = 7;
        Moerec__V1__RetrieverInfo *rp[2] = {&other, &ri};
        Moerec__V1__GetModelInfoResponse m = MOEREC__V1__GET_MODEL_INFO_RESPONSE__INIT;
        m.retrievers = rp;
        m.n_retrievers = 2;
        out = pack(&m.base);
        pthread_mutex_lock(&F.mu);
        F.info_calls++;
        pthread_mutex_unlock(&F.mu);
    } else {
        Moerec__V1__RetrieveRequest *rq = moerec__v1__retrieve_request__unpack(NULL, n, buf);
        assert_non_null(rq);
        pthread_mutex_lock(&F.mu);
        F.k = rq->k;
        snprintf(F.retriever, sizeof F.retriever, "%s", rq->n_retrievers ? rq->retrievers[0] : "");
        snprintf(F.model, sizeof F.model, "%s", rq->model);
        F.nq = rq->n_query_vector;
        F.q0 = rq->n_query_vector ? rq->query_vector[0] : NAN;
        F.auth[0] = '\0';
        for (size_t i = 0; i < md->count; i++)
            if (grpc_slice_str_cmp(md->metadata[i].key, "authorization") == 0)
                snprintf(F.auth, sizeof F.auth, "%.*s",
                         (int)GRPC_SLICE_LENGTH(md->metadata[i].value),
                         (const char *)GRPC_SLICE_START_PTR(md->metadata[i].value));
        pthread_mutex_unlock(&F.mu);
        int items = rq->k < 50 ? (int)rq->k : 50;
        moerec__v1__retrieve_request__free_unpacked(rq, NULL);
        if (mode == ANSWER_SLOW) mr_sleep_ns(400 * 1000000ull);
        if (mode == ANSWER_NOT_FOUND) {
            status = GRPC_STATUS_NOT_FOUND;
            details = "retriever 'far' is not one of a, b";
        } else {
            Moerec__V1__ScoredItem it[50], *ip[50];
            char ids[50][24];
            for (int i = 0; i < items; i++) {
                moerec__v1__scored_item__init(&it[i]);
                snprintf(ids[i], sizeof ids[i], mode == ANSWER_BAD_ID && i == 3 ? "x%d" : "%d",
                         100 + i);
                it[i].item_id = ids[i];
                it[i].expert_score = 1.0f - 0.01f * (float)i;
                it[i].retrieval_score = 0.5f; /* the merged score: not what the client reads */
                ip[i] = &it[i];
            }
            Moerec__V1__RetrieveResponse m = MOEREC__V1__RETRIEVE_RESPONSE__INIT;
            m.items = ip;
            m.n_items = (size_t)items;
            out = pack(&m.base);
        }
    }
    int cancelled = 0;
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    int no = 1;
    if (out) {
        ops[no].op = GRPC_OP_SEND_MESSAGE;
        ops[no++].data.send_message.send_message = out;
    }
    grpc_slice ds = grpc_slice_from_static_string(details);
    ops[no].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[no].data.send_status_from_server.status = status;
    ops[no++].data.send_status_from_server.status_details = &ds;
    ops[no].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[no++].data.recv_close_on_server.cancelled = &cancelled;
    if (grpc_call_start_batch(call, ops, (size_t)no, &t_send, NULL) == GRPC_CALL_OK)
        next_is(&t_send);
    if (out) grpc_byte_buffer_destroy(out);
}

static void *fake_loop(void *arg) {
    (void)arg;
    static int t_new;
    for (;;) {
        grpc_call *call = NULL;
        grpc_call_details det;
        grpc_metadata_array md;
        grpc_call_details_init(&det);
        grpc_metadata_array_init(&md);
        int ok = grpc_server_request_call(F.srv, &call, &det, &md, F.cq, F.cq, &t_new) ==
                     GRPC_CALL_OK &&
                 next_is(&t_new);
        if (ok) {
            char method[128];
            snprintf(method, sizeof method, "%.*s", (int)GRPC_SLICE_LENGTH(det.method),
                     (const char *)GRPC_SLICE_START_PTR(det.method));
            fake_answer(call, method, &md);
        }
        if (call) grpc_call_unref(call);
        grpc_call_details_destroy(&det);
        grpc_metadata_array_destroy(&md);
        if (!ok) break;
    }
    return NULL;
}

static int fake_setup(void **s) {
    (void)s;
    grpc_init();
    memset(&F, 0, sizeof F);
    pthread_mutex_init(&F.mu, NULL);
    F.cq = grpc_completion_queue_create_for_next(NULL);
    F.srv = grpc_server_create(NULL, NULL);
    grpc_server_register_completion_queue(F.srv, F.cq, NULL);
    grpc_server_credentials *c = grpc_insecure_server_credentials_create();
    F.port = grpc_server_add_http2_port(F.srv, "127.0.0.1:0", c);
    grpc_server_credentials_release(c);
    assert_true(F.port > 0);
    grpc_server_start(F.srv);
    pthread_create(&F.thread, NULL, fake_loop, NULL);
    return 0;
}

static int fake_teardown(void **s) {
    (void)s;
    grpc_server_shutdown_and_notify(F.srv, F.cq, (void *)&F.saw_shutdown);
    grpc_server_cancel_all_calls(F.srv);
    pthread_join(F.thread, NULL);
    while (!atomic_load(&F.saw_shutdown)) next_is(NULL);
    grpc_server_destroy(F.srv);
    grpc_completion_queue_shutdown(F.cq);
    while (grpc_completion_queue_next(F.cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(F.cq);
    pthread_mutex_destroy(&F.mu);
    grpc_shutdown();
    return 0;
}

static char *write_tmp(const char *text) {
    char *p = strdup("/tmp/moerec-remote-XXXXXX");
    int fd = mkstemp(p);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return p;
}

static mr_remotes *remotes(int deadline_ms, const char *token_file) {
    mr_server_config c;
    mr_config_defaults(&c);
    c.remote_deadline_ms = deadline_ms;
    if (token_file) snprintf(c.remote_token_file, sizeof c.remote_token_file, "%s", token_file);
    mr_remotes *rs = NULL;
    mr_err e = {0};
    if (mr_remotes_create(&rs, &c, &e)) fail_msg("%s", e.msg);
    return rs;
}

static mr_retr *expert(mr_remotes *rs, const char *address) {
    retr_set_remote spec = {"near", 4, address, "far", "m1"};
    mr_retr *r = NULL;
    mr_err e = {0};
    if (mr_remote_expert_make(rs, &spec, &r, &e)) fail_msg("%s", e.msg);
    return r;
}

static mr_remote_stats stats_of(mr_remotes *rs) {
    mr_remote_stats st;
    assert_int_equal(mr_remotes_count(rs), 1);
    assert_int_equal(mr_remotes_stats(rs, 0, &st), 0);
    return st;
}

static void test_search_and_size(void **s) {
    (void)s;
    char *tok = write_tmp("  " TOKEN "\n");
    mr_remotes *rs = remotes(5000, tok);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", F.port);
    mr_retr *r = expert(rs, addr);
    assert_int_equal(r->kind, RETR_CALLBACK);
    assert_int_equal(r->dim, 4);
    assert_string_equal(r->name, "near");
    assert_int_equal(retr_size(r), -1); /* not known before the first answer */
    float q[4] = {0.5f, 1, 2, 3};
    int64_t ids[60];
    float sc[60];
    mr_err e = {0};
    if (retr_search(r, q, 4, 1, 10, NULL, ids, sc, &e)) fail_msg("%s", e.msg);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(ids[i], 100 + i);
        assert_true(sc[i] == 1.0f - 0.01f * (float)i);
    }
    fake_seen v = seen();
    assert_int_equal(v.k, 10);
    assert_string_equal(v.retriever, "far");
    assert_string_equal(v.model, "m1");
    assert_string_equal(v.auth, "Bearer " TOKEN);
    assert_int_equal(v.nq, 4);
    assert_true(v.q0 == 0.5f);
    assert_int_equal(retr_size(r), 50); /* GetModelInfo went beside the Retrieve */
    assert_int_equal(seen().info_calls, 1);
    /* fewer than asked: the rest is missing; k above Retrieve's limit is capped */
    void *call = NULL;
    assert_int_equal(retr_callback_start(r, q, 4, 60, NULL, 0, &call, &e), 0);
    assert_int_equal(retr_callback_finish(r, call, ids, sc, 60, &e), 0);
    assert_int_equal(ids[49], 149);
    assert_int_equal(ids[50], -1);
    assert_true(isinf(sc[59]) && sc[59] < 0);
    int64_t *big_ids = malloc(20000 * sizeof *big_ids);
    float *big_sc = malloc(20000 * sizeof *big_sc);
    assert_int_equal(retr_callback_start(r, q, 4, 20000, NULL, 0, &call, &e), 0);
    assert_int_equal(retr_callback_finish(r, call, big_ids, big_sc, 20000, &e), 0);
    assert_int_equal(seen().k, 10000);
    assert_int_equal(big_ids[19999], -1);
    free(big_ids);
    free(big_sc);
    assert_int_equal(seen().info_calls, 1); /* the size is fresh: no second GetModelInfo */
    mr_remote_stats st = stats_of(rs);
    assert_string_equal(st.name, "near");
    assert_string_equal(st.address, addr);
    assert_int_equal(atomic_load(&st.calls->calls), 3);
    assert_int_equal(atomic_load(&st.calls->errors), 0);
    /* a second expert of the same name and address shares the counters */
    mr_retr *r2 = expert(rs, addr);
    assert_int_equal(mr_remotes_count(rs), 1);
    retr_free(r2);
    retr_free(r);
    mr_remotes_free(rs);
    unlink(tok);
    free(tok);
}

static void test_remote_errors(void **s) {
    (void)s;
    mr_remotes *rs = remotes(10000, NULL); /* room for a slow (sanitized) build */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", F.port);
    mr_retr *r = expert(rs, addr);
    float q[4] = {1, 0, 0, 0};
    int64_t ids[10];
    float sc[10];
    mr_err e = {0};
    atomic_store(&F.mode, ANSWER_BAD_ID);
    assert_int_equal(retr_search(r, q, 4, 1, 10, NULL, ids, sc, &e), MR_EINTERNAL);
    assert_non_null(strstr(e.msg, "'x103'"));
    assert_int_equal(ids[0], -1); /* nothing half-filled */
    atomic_store(&F.mode, ANSWER_NOT_FOUND);
    assert_int_equal(retr_search(r, q, 4, 1, 10, NULL, ids, sc, &e), MR_ENOTFOUND);
    assert_non_null(strstr(e.msg, "not one of a, b"));
    assert_non_null(strstr(e.msg, "remote expert far at 127.0.0.1:"));
    mr_remote_stats st = stats_of(rs);
    assert_int_equal(atomic_load(&st.calls->calls), 2);
    assert_int_equal(atomic_load(&st.calls->errors), 2);
    assert_int_equal(st.timeouts, 0);
    assert_int_equal(st.unavailable, 0);
    retr_free(r);
    mr_remotes_free(rs);
    /* the cap: the fake answers after 400 ms, the cap is 150 */
    rs = remotes(150, NULL);
    r = expert(rs, addr);
    atomic_store(&F.mode, ANSWER_SLOW);
    uint64_t t0 = mr_now_ns();
    assert_int_equal(retr_search(r, q, 4, 1, 10, NULL, ids, sc, &e), MR_ETIMEOUT);
    assert_true(mr_now_ns() - t0 < 5000000000ull);
    assert_non_null(strstr(e.msg, "DEADLINE_EXCEEDED"));
    /* the caller's deadline already past: refused at start, nothing sent */
    void *call = NULL;
    assert_int_equal(retr_callback_start(r, q, 4, 10, NULL, mr_unix_ms() - 1, &call, &e),
                     MR_ETIMEOUT);
    assert_null(call);
    st = stats_of(rs);
    assert_int_equal(atomic_load(&st.calls->calls), 2);
    assert_int_equal(atomic_load(&st.calls->errors), 2);
    assert_int_equal(st.timeouts, 2);
    retr_free(r);
    mr_remotes_free(rs);
    atomic_store(&F.mode, ANSWER_OK);
}

static void test_closed_port(void **s) {
    (void)s;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd); /* nothing listens there now */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
    mr_remotes *rs = remotes(5000, NULL);
    mr_retr *r = expert(rs, addr);
    float q[4] = {1, 0, 0, 0};
    int64_t ids[10];
    float sc[10];
    mr_err e = {0};
    assert_int_equal(retr_search(r, q, 4, 1, 10, NULL, ids, sc, &e), MR_EUNAVAIL);
    assert_non_null(strstr(e.msg, "UNAVAILABLE"));
    assert_non_null(strstr(e.msg, addr));
    assert_int_equal(stats_of(rs).unavailable, 1);
    assert_int_equal(retr_size(r), -1);
    retr_free(r);
    mr_remotes_free(rs);
}

static void test_bad_config_files(void **s) {
    (void)s;
    mr_server_config c;
    mr_remotes *rs = NULL;
    mr_err e = {0};
    mr_config_defaults(&c);
    snprintf(c.remote_token_file, sizeof c.remote_token_file, "/nonexistent/token");
    assert_int_equal(mr_remotes_create(&rs, &c, &e), MR_EINVAL);
    assert_null(rs);
    assert_non_null(strstr(e.msg, "remote_token_file"));
    char *tok = write_tmp("short\n");
    snprintf(c.remote_token_file, sizeof c.remote_token_file, "%s", tok);
    assert_int_equal(mr_remotes_create(&rs, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "16..256"));
    unlink(tok);
    free(tok);
    mr_config_defaults(&c);
    c.remote_tls = 1;
    snprintf(c.remote_tls_ca_file, sizeof c.remote_tls_ca_file, "/nonexistent/ca.pem");
    assert_int_equal(mr_remotes_create(&rs, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "remote_tls_ca_file"));
    /* TLS with the default roots builds; config checks the pairs */
    c.remote_tls_ca_file[0] = '\0';
    assert_int_equal(mr_remotes_create(&rs, &c, &e), 0);
    mr_remotes_free(rs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_search_and_size),
        cmocka_unit_test(test_remote_errors),
        cmocka_unit_test(test_closed_port),
        cmocka_unit_test(test_bad_config_files),
    };
    return cmocka_run_group_tests(tests, fake_setup, fake_teardown);
}
