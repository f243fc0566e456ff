/* test_inproc.c — mr_server_invoke, the fuzz targets' way into the request
 * path: a created (never started) server answers each kind of call with
 * the status a client on the wire gets — OK with an encoded response,
 * INVALID_ARGUMENT for bytes that do not decode or fail validation,
 * RESOURCE_EXHAUSTED past the decode arena, FAILED_PRECONDITION from a
 * handler, UNIMPLEMENTED for the streaming Watch — and an unknown path is
 * the caller's error. Over a store: Checkpoint's dir checks, and an
 * update-log record applied as a replica does (mr_replica_apply). */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "proto/moerec.pb-c.h"
#include "server/backend.h"
#include "server/inproc.h"
#include "server/replica.h"

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

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* A created server over a store in a fresh temp dir (root: 64 bytes). */
static mr_server *make_store_server(char *root) {
    snprintf(root, 64, "/tmp/moerec-inproc-XXXXXX");
    assert_non_null(mkdtemp(root));
    mr_server_config cfg;
    mr_config_defaults(&cfg);
    cfg.port = 0;
    cfg.completion_queues = 1;
    cfg.item_dim = 4;
    snprintf(cfg.log_level, sizeof cfg.log_level, "off");
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s/db", root);
    mr_server *s = NULL;
    mr_err e = {0};
    if (mr_server_create(&cfg, &s, &e)) fail_msg("%s", e.msg);
    return s;
}

static int checkpoint(mr_server *s, const char *dir, mr_inproc_result *r) {
    Moerec__V1__CheckpointRequest req = MOEREC__V1__CHECKPOINT_REQUEST__INIT;
    req.dir = (char *)dir;
    uint8_t buf[600];
    size_t n = moerec__v1__checkpoint_request__pack(&req, buf);
    mr_err e = {0};
    assert_int_equal(mr_server_invoke(s, "/moerec.v1.Admin/Checkpoint", buf, n, r, &e), MR_OK);
    return r->status;
}

/* A dir whose parent is missing (or a file) is INVALID_ARGUMENT and creates
 * nothing (it was INTERNAL, RocksDB's mkdir error: found by the fuzz target
 * rpc_checkpoint); a new dir is OK; an existing one ALREADY_EXISTS. */
static void test_checkpoint_dir(void **st) {
    (void)st;
    mr_log_set_level(MR_LOG_OFF);
    char root[64], p[256], q[256];
    mr_server *s = make_store_server(root);
    mr_inproc_result r;
    snprintf(p, sizeof p, "%s/no/parent", root);
    assert_int_equal(checkpoint(s, p, &r), 3);
    assert_non_null(strstr(r.msg, "parent"));
    snprintf(q, sizeof q, "%s/no", root);
    assert_int_equal(access(q, F_OK), -1);
    snprintf(p, sizeof p, "%s/db/CURRENT/x", root); /* parent is a file */
    assert_int_equal(checkpoint(s, p, &r), 3);
    assert_int_equal(checkpoint(s, "relative/cp", &r), 3);
    snprintf(p, sizeof p, "%s/cp", root);
    assert_int_equal(checkpoint(s, p, &r), 0);
    snprintf(q, sizeof q, "%s/cp/CURRENT", root);
    assert_int_equal(access(q, F_OK), 0);
    assert_int_equal(checkpoint(s, p, &r), 6); /* ALREADY_EXISTS */
    snprintf(p, sizeof p, "%s/cp2//", root);   /* trailing slashes: parent is root */
    assert_int_equal(checkpoint(s, p, &r), 0);
    mr_server_free(s);
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* mr_replica_apply: bytes that are no LogRecord, or one without a write,
 * are MR_EINVAL (skipped by the consumer) and change nothing; a DeleteItems
 * record is applied and the store records its sequence. */
static void test_replica_apply(void **st) {
    (void)st;
    mr_log_set_level(MR_LOG_OFF);
    char root[64];
    mr_server *s = make_store_server(root);
    mr_store *store = mr_server_backend(s)->st;
    mr_err e = {0};
    static const uint8_t junk[] = {0x0a, 0x64, 'a'};
    assert_int_equal(mr_replica_apply(s, 1, junk, sizeof junk, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "LogRecord"));
    e = (mr_err){0};
    assert_int_equal(mr_replica_apply(s, 2, NULL, 0, &e), MR_EINVAL); /* no write */
    assert_true(e.msg[0] != 0);
    uint64_t seq = 99;
    assert_int_equal(store_log_seq_get(store, &seq, &e), MR_OK);
    assert_int_equal(seq, 0);
    Moerec__V1__LogRecord rec = MOEREC__V1__LOG_RECORD__INIT;
    Moerec__V1__DeleteItemsRequest del = MOEREC__V1__DELETE_ITEMS_REQUEST__INIT;
    char *ids[] = {"7"};
    del.n_item_ids = 1;
    del.item_ids = ids;
    rec.write_case = MOEREC__V1__LOG_RECORD__WRITE_DELETE_ITEMS;
    rec.delete_items = &del;
    rec.time_ms = 1700000000000;
    uint8_t buf[64];
    /* a time no clock reaches (the fuzzer's INT64_MAX - 126) or a negative
     * one: refused before any write, the applied sequence unchanged */
    const int64_t bad_times[] = {INT64_MAX - 126, -1};
    for (size_t i = 0; i < 2; i++) {
        rec.time_ms = bad_times[i];
        size_t nb = moerec__v1__log_record__pack(&rec, buf);
        e = (mr_err){0};
        assert_int_equal(mr_replica_apply(s, 3, buf, nb, &e), MR_EINVAL);
        assert_non_null(strstr(e.msg, "time_ms"));
        assert_int_equal(store_log_seq_get(store, &seq, &e), MR_OK);
        assert_int_equal(seq, 0);
    }
    rec.time_ms = 1700000000000;
    size_t n = moerec__v1__log_record__pack(&rec, buf);
    assert_int_equal(mr_replica_apply(s, 3, buf, n, &e), MR_OK);
    assert_int_equal(store_log_seq_get(store, &seq, &e), MR_OK);
    assert_int_equal(seq, 3);
    mr_server_free(s);
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_statuses), cmocka_unit_test(test_arena_bound),
        cmocka_unit_test(test_checkpoint_dir), cmocka_unit_test(test_replica_apply)};
    return cmocka_run_group_tests(t, NULL, NULL);
}
