/* test_inproc.c — mr_server_invoke, the fuzz targets' way into the request
 * path: a created (never started) server answers each kind of call with
 * the status a client on the wire gets — OK with an encoded response,
 * INVALID_ARGUMENT for bytes that do not decode or fail validation,
 * RESOURCE_EXHAUSTED past the decode arena, FAILED_PRECONDITION from a
 * handler, UNIMPLEMENTED for the streaming Watch — and an unknown path is
 * the caller's error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"
#include "proto/moerec.pb-c.h"
#include "server/inproc.h"

static mr_server *make_server(size_t arena_bytes) {
    mr_server_config cfg;
    mr_config_defaults(&cfg);
    cfg.port = 0;
    cfg.completion_queues = 1;
    cfg.request_arena_bytes = arena_bytes;
    snprintf(cfg.log_level, sizeof cfg.log_level, "off");
    mr_server *s = NULL;
    mr_err e = {0};
    if (mr_server_create(&cfg, &s, &e)) fail_msg("%s", e.msg);
    return s;
}

static void test_statuses(void **st) {
    (void)st;
    mr_log_set_level(MR_LOG_OFF);
    mr_server *s = make_server(64u << 20);
    mr_inproc_result r;
    mr_err e = {0};
    /* empty HealthCheckRequest: OK, a response of a few bytes */
    assert_int_equal(mr_server_invoke(s, "/grpc.health.v1.Health/Check", NULL, 0, &r, &e), MR_OK);
    assert_int_equal(r.status, 0);
    assert_true(r.resp_bytes > 0);
    assert_int_equal(mr_server_invoke(s, "/moerec.v1.Admin/Stats", NULL, 0, &r, &e), MR_OK);
    assert_int_equal(r.status, 0);
    /* a length past the end of the input */
    static const uint8_t bad[] = {0x0a, 0x64, 'a', 'b'};
    assert_int_equal(mr_server_invoke(s, "/grpc.health.v1.Health/Check", bad, sizeof bad, &r, &e),
                     MR_OK);
    assert_int_equal(r.status, 3); /* INVALID_ARGUMENT */
    assert_non_null(strstr(r.msg, "malformed"));
    /* validation: Score without user_id */
    Moerec__V1__ScoreRequest sr = MOEREC__V1__SCORE_REQUEST__INIT;
    Moerec__V1__Candidate c = MOEREC__V1__CANDIDATE__INIT, *cp = &c;
    c.item_id = "1";
    sr.n_candidates = 1;
    sr.candidates = &cp;
    uint8_t buf[256];
    size_t n = moerec__v1__score_request__pack(&sr, buf);
    assert_int_equal(mr_server_invoke(s, "/moerec.v1.Recommender/Score", buf, n, &r, &e), MR_OK);
    assert_int_equal(r.status, 3);
    assert_non_null(strstr(r.msg, "user_id"));
    /* the handler: no model dir */
    sr.user_id = "u";
    n = moerec__v1__score_request__pack(&sr, buf);
    assert_int_equal(mr_server_invoke(s, "/moerec.v1.Recommender/Score", buf, n, &r, &e), MR_OK);
    assert_int_equal(r.status, 9); /* FAILED_PRECONDITION */
    assert_true(r.msg[0] != 0);
    /* streaming, and an unknown path */
    assert_int_equal(mr_server_invoke(s, "/grpc.health.v1.Health/Watch", NULL, 0, &r, &e), MR_OK);
    assert_int_equal(r.status, 12); /* UNIMPLEMENTED */
    assert_int_equal(mr_server_invoke(s, "/no.Such/Method", NULL, 0, &r, &e), MR_EINVAL);
    mr_server_free(s);
}

/* 20,000 candidates do not decode in a 64 KiB arena. */
static void test_arena_bound(void **st) {
    (void)st;
    mr_server *s = make_server(64 * 1024);
    enum { N = 20000 };
    Moerec__V1__ScoreRequest sr = MOEREC__V1__SCORE_REQUEST__INIT;
    Moerec__V1__Candidate *cs = calloc(N, sizeof *cs), **cp = calloc(N, sizeof *cp);
    for (int i = 0; i < N; i++) {
        moerec__v1__candidate__init(&cs[i]);
        cs[i].item_id = "x";
        cp[i] = &cs[i];
    }
    sr.user_id = "u";
    sr.n_candidates = N;
    sr.candidates = cp;
    size_t n = moerec__v1__score_request__get_packed_size(&sr);
    uint8_t *buf = malloc(n);
    moerec__v1__score_request__pack(&sr, buf);
    mr_inproc_result r;
    mr_err e = {0};
    assert_int_equal(mr_server_invoke(s, "/moerec.v1.Recommender/Score", buf, n, &r, &e), MR_OK);
    assert_int_equal(r.status, 8); /* RESOURCE_EXHAUSTED */
    assert_non_null(strstr(r.msg, "memory to decode"));
    free(buf);
    free(cs);
    free(cp);
    mr_server_free(s);
}

int main(void) {
    const struct CMUnitTest t[] = {cmocka_unit_test(test_statuses),
                                   cmocka_unit_test(test_arena_bound)};
    return cmocka_run_group_tests(t, NULL, NULL);
}
