/* test_server_grpc.c — the real `moerec serve` binary on a random port,
 * called through the gRPC C core: health, malformed and oversized input,
 * unknown and unbuilt methods, Stats counters, concurrency, Watch across a
 * drain, and a clean SIGTERM exit (leak-checked in the sanitizer build). */
#include <grpc/byte_buffer_reader.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "grpc_client.h"
#include "proto/health.pb-c.h"
#include "proto/moerec.pb-c.h"

#define CHECK "/grpc.health.v1.Health/Check"
#define STATS "/moerec.v1.Admin/Stats"

typedef struct fixture {
    test_server srv;
    grpc_channel *ch;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (test_server_start(&f->srv, NULL) != 0) return -1;
    f->ch = test_channel(&f->srv);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    grpc_channel_destroy(f->ch);
    int rc = test_server_stop(&f->srv, SIGTERM);
    free(f);
    return rc == 0 ? 0 : -1; /* SIGTERM must drain and exit 0 */
}

static int health(grpc_channel *ch, const char *service, call_result *r) {
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)service;
    ProtobufCMessage *resp;
    int rc = test_unary(ch, CHECK, &req.base, &grpc__health__v1__health_check_response__descriptor,
                        5, &resp, r);
    assert_int_equal(rc, 0);
    int st = resp ? (int)((Grpc__Health__V1__HealthCheckResponse *)resp)->status : -1;
    if (resp) protobuf_c_message_free_unpacked(resp, NULL);
    return st;
}

static void test_health_serving(void **state) {
    fixture *f = *state;
    call_result r;
    assert_int_equal(health(f->ch, "", &r),
                     GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    assert_int_equal(r.status, GRPC_STATUS_OK);
    call_result_free(&r);
    assert_int_equal(health(f->ch, "moerec.v1.Recommender", &r),
                     GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    call_result_free(&r);
}

static void test_health_unknown_service(void **state) {
    fixture *f = *state;
    call_result r;
    assert_int_equal(health(f->ch, "no.such.Service", &r), -1);
    assert_int_equal(r.status, GRPC_STATUS_NOT_FOUND);
    assert_non_null(strstr(r.details, "no.such.Service"));
    call_result_free(&r);
}

static void test_malformed_is_invalid_argument(void **state) {
    fixture *f = *state;
    /* field 1 (string) claiming 100 bytes with 2 present; then a bad varint */
    static const unsigned char bad1[] = {0x0a, 0x64, 'a', 'b'};
    static const unsigned char bad2[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
                                         0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    call_result r;
    assert_int_equal(test_unary_raw(f->ch, CHECK, bad1, sizeof bad1, 5, &r), 0);
    assert_int_equal(r.status, GRPC_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(r.details, "malformed"));
    call_result_free(&r);
    assert_int_equal(test_unary_raw(f->ch, STATS, bad2, sizeof bad2, 5, &r), 0);
    assert_int_equal(r.status, GRPC_STATUS_INVALID_ARGUMENT);
    call_result_free(&r);
    /* the server is still healthy afterwards */
    assert_int_equal(health(f->ch, "", &r),
                     GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    call_result_free(&r);
}

static void test_oversized_is_resource_exhausted(void **state) {
    fixture *f = *state;
    size_t n = 5u << 20; /* default limit is 4 MiB */
    unsigned char *big = calloc(1, n);
    call_result r;
    assert_int_equal(test_unary_raw(f->ch, CHECK, big, n, 10, &r), 0);
    assert_int_equal(r.status, GRPC_STATUS_RESOURCE_EXHAUSTED);
    call_result_free(&r);
    free(big);
}

static void test_unknown_method_is_unimplemented(void **state) {
    fixture *f = *state;
    call_result r;
    assert_int_equal(test_unary_raw(f->ch, "/moerec.v1.Recommender/NoSuch", "", 0, 5, &r), 0);
    assert_int_equal(r.status, GRPC_STATUS_UNIMPLEMENTED);
    assert_non_null(strstr(r.details, "NoSuch"));
    call_result_free(&r);
    assert_int_equal(test_unary_raw(f->ch, "/other.Service/Call", "", 0, 5, &r), 0);
    assert_int_equal(r.status, GRPC_STATUS_UNIMPLEMENTED);
    call_result_free(&r);
}

static void test_stats_counts_calls(void **state) {
    fixture *f = *state;
    call_result r;
    for (int i = 0; i < 5; i++) {
        health(f->ch, "", &r);
        call_result_free(&r);
    }
    Moerec__V1__StatsRequest req = MOEREC__V1__STATS_REQUEST__INIT;
    ProtobufCMessage *resp;
    assert_int_equal(
        test_unary(f->ch, STATS, &req.base, &moerec__v1__stats_response__descriptor, 5, &resp, &r),
        0);
    assert_int_equal(r.status, GRPC_STATUS_OK);
    assert_non_null(resp);
    Moerec__V1__StatsResponse *s = (void *)resp;
    int found = 0;
    for (size_t i = 0; i < s->n_methods; i++)
        if (!strcmp(s->methods[i]->method, CHECK)) {
            found = 1;
            assert_true(s->methods[i]->calls >= 5);
            assert_true(s->methods[i]->p50_micros > 0);
            assert_true(s->methods[i]->p99_micros >= s->methods[i]->p50_micros);
        }
    assert_true(found);
    assert_string_equal(s->version, "0.1.0");
    protobuf_c_message_free_unpacked(resp, NULL);
    call_result_free(&r);
}

typedef struct worker_arg {
    grpc_channel *ch;
    int ok;
} worker_arg;

static void *hammer(void *p) {
    worker_arg *w = p;
    for (int i = 0; i < 40; i++) {
        call_result r;
        if (health(w->ch, "", &r) ==
            GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING)
            w->ok++;
        call_result_free(&r);
    }
    return NULL;
}

static void test_concurrent_calls(void **state) {
    fixture *f = *state;
    pthread_t t[8];
    worker_arg w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (worker_arg){f->ch, 0};
        pthread_create(&t[i], NULL, hammer, &w[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].ok, 40);
    }
}

/* Open a health Watch stream on ch (request sent, half-closed, initial
 * metadata received). */
static grpc_call *watch_open(grpc_channel *ch, grpc_completion_queue *cq) {
    grpc_slice m = grpc_slice_from_static_string("/grpc.health.v1.Health/Watch");
    grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL,
                                               gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    uint8_t buf[64];
    size_t n = grpc__health__v1__health_check_request__pack(&req, buf);
    grpc_slice body = grpc_slice_from_copied_buffer((char *)buf, n);
    grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&body, 1);
    grpc_slice_unref(body);
    grpc_metadata_array md;
    grpc_metadata_array_init(&md);
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &md;
    static int t1;
    assert_int_equal(grpc_call_start_batch(call, ops, 4, &t1, NULL), GRPC_CALL_OK);
    assert_int_equal(
        grpc_completion_queue_pluck(cq, &t1, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type,
        GRPC_OP_COMPLETE);
    grpc_metadata_array_destroy(&md);
    grpc_byte_buffer_destroy(send);
    return call;
}

/* The next status the Watch stream sends (20 s at most). */
static int watch_next(grpc_call *call, grpc_completion_queue *cq) {
    grpc_byte_buffer *recv = NULL;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &recv;
    static int t2;
    assert_int_equal(grpc_call_start_batch(call, &op, 1, &t2, NULL), GRPC_CALL_OK);
    grpc_event ev = grpc_completion_queue_pluck(
        cq, &t2, gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_seconds(20, GPR_TIMESPAN)),
        NULL);
    assert_int_equal(ev.type, GRPC_OP_COMPLETE);
    assert_non_null(recv);
    grpc_byte_buffer_reader r;
    grpc_byte_buffer_reader_init(&r, recv);
    grpc_slice all = grpc_byte_buffer_reader_readall(&r);
    Grpc__Health__V1__HealthCheckResponse *hr = grpc__health__v1__health_check_response__unpack(
        NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
    assert_non_null(hr);
    int st = hr->status;
    grpc__health__v1__health_check_response__free_unpacked(hr, NULL);
    grpc_slice_unref(all);
    grpc_byte_buffer_reader_destroy(&r);
    grpc_byte_buffer_destroy(recv);
    return st;
}

static void cq_drain_destroy(grpc_completion_queue *cq) {
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
}

/* Watch streams whose clients leave (cancel, or drop the call) while the
 * server keeps serving: the server frees them (teardown's SIGTERM must exit
 * 0 without leaks under ASan) and keeps answering. */
static void test_watch_client_leaves(void **state) {
    fixture *f = *state;
    for (int k = 0; k < 6; k++) {
        grpc_channel *ch = k % 2 ? test_channel(&f->srv) : f->ch;
        grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
        grpc_call *call = watch_open(ch, cq);
        /* SERVING arrived: the stream is open on the server */
        assert_int_equal(watch_next(call, cq),
                         GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
        if (k % 3 == 0) grpc_call_cancel(call, NULL);
        grpc_call_unref(call); /* an open call the client drops is cancelled */
        cq_drain_destroy(cq);
        if (ch != f->ch) grpc_channel_destroy(ch);
    }
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    ProtobufCMessage *resp;
    call_result r;
    assert_int_equal(test_unary(f->ch, CHECK, &req.base,
                                &grpc__health__v1__health_check_response__descriptor, 10, &resp,
                                &r),
                     0);
    assert_int_equal(r.status, GRPC_STATUS_OK);
    protobuf_c_message_free_unpacked(resp, NULL);
    call_result_free(&r);
}

/* Watch: SERVING first; on SIGTERM the server sends NOT_SERVING, closes
 * the stream with OK, and exits 0. */
static void test_watch_across_drain(void **state) {
    (void)state;
    test_server srv;
    assert_int_equal(test_server_start(&srv, NULL), 0);
    grpc_channel *ch = test_channel(&srv);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_call *call = watch_open(ch, cq);
    int seen[2];
    seen[0] = watch_next(call, cq);
    kill(srv.pid, SIGTERM); /* begin the drain */
    seen[1] = watch_next(call, cq);
    assert_int_equal(seen[0], GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    assert_int_equal(seen[1], GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
    grpc_status_code st;
    grpc_slice details;
    grpc_metadata_array trail;
    grpc_metadata_array_init(&trail);
    grpc_op sop;
    memset(&sop, 0, sizeof sop);
    sop.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    sop.data.recv_status_on_client.status = &st;
    sop.data.recv_status_on_client.status_details = &details;
    sop.data.recv_status_on_client.trailing_metadata = &trail;
    static int t3;
    assert_int_equal(grpc_call_start_batch(call, &sop, 1, &t3, NULL), GRPC_CALL_OK);
    grpc_completion_queue_pluck(cq, &t3, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    assert_int_equal(st, GRPC_STATUS_OK);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&trail);
    grpc_call_unref(call);
    cq_drain_destroy(cq);
    grpc_channel_destroy(ch);
    int status;
    assert_int_equal(waitpid(srv.pid, &status, 0), srv.pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* A config file with an unknown field: exit 2 naming the field. */
static void test_bad_config_is_rejected(void **state) {
    (void)state;
    char path[] = "/tmp/moerec-cfg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *json = "{\"port\": 0, \"max_k\": 10, \"no_such_field\": 1}";
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        execl(getenv("MOEREC_BIN"), "moerec", "serve", "--config", path, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char out[512] = "";
    ssize_t got = read(fds[0], out, sizeof out - 1);
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    unlink(path);
    assert_true(got > 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
    assert_non_null(strstr(out, "no_such_field"));
}

int main(void) {
    grpc_init();
    const struct CMUnitTest served[] = {
        cmocka_unit_test(test_health_serving),
        cmocka_unit_test(test_health_unknown_service),
        cmocka_unit_test(test_malformed_is_invalid_argument),
        cmocka_unit_test(test_oversized_is_resource_exhausted),
        cmocka_unit_test(test_unknown_method_is_unimplemented),
        cmocka_unit_test(test_stats_counts_calls),
        cmocka_unit_test(test_concurrent_calls),
        cmocka_unit_test(test_watch_client_leaves),
    };
    const struct CMUnitTest standalone[] = {
        cmocka_unit_test(test_watch_across_drain),
        cmocka_unit_test(test_bad_config_is_rejected),
    };
    int failed = cmocka_run_group_tests_name("server_grpc", served, setup, teardown);
    failed += cmocka_run_group_tests_name("server_lifecycle", standalone, NULL, NULL);
    grpc_shutdown();
    return failed;
}
