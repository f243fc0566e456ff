/* test_score_rpc.c — Score, GetModelInfo and Reload against the real
 * server with a model directory: the server's scores equal the in-process
 * scorer's on the same model (bit for bit: same code, same order); bad input
 * gets INVALID_ARGUMENT naming the problem and the server keeps serving;
 * Reload swaps versions without a restart. */
#include <ftw.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "grpc_client.h"
#include "moe/model.h"
#include "moe/scorer.h"
#include "proto/moerec.pb-c.h"

#define SCORE "/moerec.v1.Recommender/Score"
#define INFO "/moerec.v1.Recommender/GetModelInfo"
#define RELOAD "/moerec.v1.Admin/Reload"

static const char *k_model_json =
    "{\"format\":\"moerec.model\",\"format_version\":1,\"name\":\"demo\","
    "\"tables\":[{\"name\":\"user\",\"rows\":64,\"dim\":4,\"seed\":7},"
    "{\"name\":\"item\",\"rows\":64,\"dim\":4,\"hash\":\"double\",\"seed\":8,\"seed2\":9}],"
    "\"features\":{\"categorical\":[{\"name\":\"user_id\",\"table\":\"user\"},"
    "{\"name\":\"item_id\",\"table\":\"item\"},"
    "{\"name\":\"genre\",\"table\":\"item\",\"combiner\":\"mean\"}],"
    "\"numeric\":[{\"name\":\"age\",\"mean\":30,\"std\":10,\"fill\":30}]},"
    "\"tasks\":[{\"name\":\"click\",\"weight\":0.7},{\"name\":\"like\",\"weight\":0.3}],"
    "\"arch\":{\"type\":\"mmoe\",\"experts\":4,\"expert_hidden\":[8],\"tower_hidden\":[4],"
    "\"gate\":{\"type\":\"topp\",\"p\":0.4}}}";

typedef struct fixture {
    char root[64];      /* temp dir */
    char models[128];   /* root/models */
    test_server srv;
    grpc_channel *ch;
    moe_model *v1, *v2; /* the same files, loaded in-process */
} fixture;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static int write_version(fixture *f, const char *version, uint64_t seed, moe_model **loaded) {
    moe_model *m;
    mr_err e;
    if (moe_model_from_json(&m, k_model_json, seed, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    char dir[256];
    snprintf(dir, sizeof dir, "%s/demo", f->models);
    mkdir(dir, 0755);
    snprintf(dir, sizeof dir, "%s/demo/%s", f->models, version);
    int rc = moe_model_save(m, dir, &e);
    moe_model_free(m);
    if (rc || moe_model_load(loaded, dir, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    return 0;
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    *state = f;
    snprintf(f->root, sizeof f->root, "/tmp/moerec-score-XXXXXX");
    if (!mkdtemp(f->root)) return -1;
    snprintf(f->models, sizeof f->models, "%s/models", f->root);
    mkdir(f->models, 0755);
    if (write_version(f, "1", 11, &f->v1)) return -1;
    const char *args[] = {"--model-dir", f->models, NULL};
    if (test_server_start(&f->srv, args)) return -1;
    f->ch = test_channel(&f->srv);
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    if (!f) return -1;
    int rc = -1;
    if (f->ch) grpc_channel_destroy(f->ch);
    if (f->srv.pid) rc = test_server_stop(&f->srv, SIGTERM);
    moe_model_free(f->v1);
    moe_model_free(f->v2);
    if (f->root[0]) nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* A request for user u7 (age 41) and candidates i0..i{n-1}; odd ones carry
 * a genre. */
typedef struct req_buf {
    Moerec__V1__ScoreRequest r;
    Moerec__V1__Features uf, cf[8];
    Moerec__V1__NumericFeature age;
    Moerec__V1__NumericFeature *agep[1];
    Moerec__V1__CategoricalFeature genre[8];
    Moerec__V1__CategoricalFeature *genrep[8][1];
    char *genre_val[8][1];
    Moerec__V1__Candidate c[8];
    Moerec__V1__Candidate *cp[8];
    char ids[8][16];
} req_buf;

static void build(req_buf *b, int n) {
    memset(b, 0, sizeof *b);
    moerec__v1__score_request__init(&b->r);
    b->r.request_id = "req-1";
    b->r.user_id = "u7";
    moerec__v1__features__init(&b->uf);
    moerec__v1__numeric_feature__init(&b->age);
    b->age.name = "age";
    b->age.value = 41;
    b->agep[0] = &b->age;
    b->uf.numeric = b->agep;
    b->uf.n_numeric = 1;
    b->r.user_features = &b->uf;
    for (int i = 0; i < n; i++) {
        moerec__v1__candidate__init(&b->c[i]);
        snprintf(b->ids[i], sizeof b->ids[i], "i%d", i);
        b->c[i].item_id = b->ids[i];
        if (i % 2) {
            moerec__v1__features__init(&b->cf[i]);
            moerec__v1__categorical_feature__init(&b->genre[i]);
            b->genre[i].name = "genre";
            b->genre_val[i][0] = i % 4 == 1 ? "drama" : "comedy";
            b->genre[i].values = b->genre_val[i];
            b->genre[i].n_values = 1;
            b->genrep[i][0] = &b->genre[i];
            b->cf[i].categorical = b->genrep[i];
            b->cf[i].n_categorical = 1;
            b->c[i].features = &b->cf[i];
        }
        b->cp[i] = &b->c[i];
    }
    b->r.candidates = b->cp;
    b->r.n_candidates = (size_t)n;
}

/* The same scoring in-process. */
static void expected(const moe_model *m, int n, float *tasks, float *score) {
    moe_scorer *s;
    mr_err e;
    assert_int_equal(moe_scorer_create(&s, m, &e), 0);
    assert_int_equal(moe_scorer_begin(s, n, &e), 0);
    int num, fu = moe_model_field(m, "user_id", &num), fi = moe_model_field(m, "item_id", &num);
    int fg = moe_model_field(m, "genre", &num), fa = moe_model_field(m, "age", &num);
    const char *u[] = {"u7"};
    assert_int_equal(moe_scorer_set_cat(s, MOE_ALL_ROWS, fu, u, NULL, 1, &e), 0);
    assert_int_equal(moe_scorer_set_num(s, MOE_ALL_ROWS, fa, 41, &e), 0);
    for (int i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "i%d", i);
        const char *v[] = {id};
        assert_int_equal(moe_scorer_set_cat(s, i, fi, v, NULL, 1, &e), 0);
        if (i % 2) {
            const char *g[] = {i % 4 == 1 ? "drama" : "comedy"};
            assert_int_equal(moe_scorer_set_cat(s, i, fg, g, NULL, 1, &e), 0);
        }
    }
    assert_int_equal(moe_scorer_run(s, tasks, score, &e), 0);
    moe_scorer_free(s);
}

static Moerec__V1__ScoreResponse *score(fixture *f, const Moerec__V1__ScoreRequest *r,
                                        call_result *res) {
    ProtobufCMessage *resp;
    assert_int_equal(test_unary(f->ch, SCORE, &r->base, &moerec__v1__score_response__descriptor, 10,
                                &resp, res), 0);
    return (Moerec__V1__ScoreResponse *)resp;
}

static void check_parity(fixture *f, const moe_model *m, const char *version) {
    req_buf b;
    build(&b, 8);
    b.r.debug = 1;
    call_result res;
    Moerec__V1__ScoreResponse *out = score(f, &b.r, &res);
    assert_int_equal(res.status, GRPC_STATUS_OK);
    assert_non_null(out);
    float tasks[16], sc[8];
    expected(m, 8, tasks, sc);
    assert_string_equal(out->request_id, "req-1");
    char mv[32];
    snprintf(mv, sizeof mv, "demo/%s", version);
    assert_string_equal(out->model_version, mv);
    assert_int_equal(out->n_items, 8);
    for (int i = 0; i < 8; i++) {
        assert_string_equal(out->items[i]->item_id, b.ids[i]);
        assert_true(out->items[i]->score == sc[i]);
        assert_int_equal(out->items[i]->n_tasks, 2);
        assert_string_equal(out->items[i]->tasks[0]->task, "click");
        assert_string_equal(out->items[i]->tasks[1]->task, "like");
        for (int k = 0; k < 2; k++) assert_true(out->items[i]->tasks[k]->value == tasks[i * 2 + k]);
        assert_true(fabsf(out->items[i]->score - (0.7f * tasks[i * 2] + 0.3f * tasks[i * 2 + 1])) < 1e-6f);
    }
    /* the candidates differ, so the scores must too */
    assert_true(out->items[0]->score != out->items[1]->score);
    assert_non_null(out->debug);
    assert_true(out->debug->n_timings >= 2);
    assert_true(out->debug->n_gates >= 2); /* one gate per task in MMoE */
    for (size_t g = 0; g < out->debug->n_gates; g++) {
        assert_int_equal(out->debug->gates[g]->n_weights, 4);
        assert_true(out->debug->gates[g]->active_fraction > 0 &&
                    out->debug->gates[g]->active_fraction <= 1);
    }
    protobuf_c_message_free_unpacked(&out->base, NULL);
    call_result_free(&res);
}

static void test_score_matches_library(void **state) {
    fixture *f = *state;
    check_parity(f, f->v1, "1");
}

static void expect_invalid(fixture *f, const Moerec__V1__ScoreRequest *r, const char *needle) {
    call_result res;
    Moerec__V1__ScoreResponse *out = score(f, r, &res);
    assert_null(out);
    assert_int_equal(res.status, GRPC_STATUS_INVALID_ARGUMENT);
    if (!strstr(res.details, needle)) fail_msg("'%s' does not mention '%s'", res.details, needle);
    call_result_free(&res);
}

static void test_bad_requests(void **state) {
    fixture *f = *state;
    req_buf b;
    build(&b, 3);
    b.r.user_id = "";
    expect_invalid(f, &b.r, "user_id is required");
    build(&b, 0);
    expect_invalid(f, &b.r, "at least one");
    build(&b, 3);
    b.age.name = "salary";
    expect_invalid(f, &b.r, "unknown feature 'salary'");
    build(&b, 3);
    b.genre[1].name = "age"; /* numeric field sent as categorical */
    expect_invalid(f, &b.r, "'age' is numeric");
    build(&b, 3);
    b.age.value = NAN;
    expect_invalid(f, &b.r, "not a finite number");
    build(&b, 3);
    b.c[2].item_id = "";
    expect_invalid(f, &b.r, "candidates[2].item_id is required");
    /* unknown model: NOT_FOUND */
    build(&b, 3);
    b.r.model = "nope";
    call_result res;
    assert_null(score(f, &b.r, &res));
    assert_int_equal(res.status, GRPC_STATUS_NOT_FOUND);
    call_result_free(&res);
    /* and the server still answers correctly */
    check_parity(f, f->v1, "1");
}

static void test_model_info(void **state) {
    fixture *f = *state;
    Moerec__V1__GetModelInfoRequest r = MOEREC__V1__GET_MODEL_INFO_REQUEST__INIT;
    ProtobufCMessage *resp;
    call_result res;
    assert_int_equal(test_unary(f->ch, INFO, &r.base, &moerec__v1__get_model_info_response__descriptor,
                                10, &resp, &res), 0);
    assert_int_equal(res.status, GRPC_STATUS_OK);
    Moerec__V1__GetModelInfoResponse *o = (void *)resp;
    assert_string_equal(o->model, "demo");
    assert_string_equal(o->architecture, "mmoe");
    assert_string_equal(o->gate, "top_p");
    assert_int_equal(o->experts, 4);
    assert_int_equal(o->n_tasks, 2);
    assert_string_equal(o->tasks[1]->name, "like");
    assert_true(fabsf(o->tasks[1]->weight - 0.3f) < 1e-6f);
    assert_int_equal(o->n_features, 4);
    assert_string_equal(o->features[1]->hashing, "double");
    assert_int_equal(o->features[1]->rows, 64);
    assert_string_equal(o->features[3]->kind, "numeric");
    protobuf_c_message_free_unpacked(resp, NULL);
    call_result_free(&res);
}

static void test_reload_swaps_version(void **state) {
    fixture *f = *state;
    assert_int_equal(write_version(f, "2", 22, &f->v2), 0);
    Moerec__V1__ReloadRequest r = MOEREC__V1__RELOAD_REQUEST__INIT;
    ProtobufCMessage *resp;
    call_result res;
    assert_int_equal(test_unary(f->ch, RELOAD, &r.base, &moerec__v1__reload_response__descriptor, 30,
                                &resp, &res), 0);
    assert_int_equal(res.status, GRPC_STATUS_OK);
    Moerec__V1__ReloadResponse *o = (void *)resp;
    assert_string_equal(o->previous_version, "1");
    assert_string_equal(o->version, "2");
    protobuf_c_message_free_unpacked(resp, NULL);
    call_result_free(&res);
    check_parity(f, f->v2, "2");
    /* a version that does not exist: NOT_FOUND, and version 2 keeps serving */
    r.version = "9";
    assert_int_equal(test_unary(f->ch, RELOAD, &r.base, &moerec__v1__reload_response__descriptor, 30,
                                &resp, &res), 0);
    assert_int_equal(res.status, GRPC_STATUS_NOT_FOUND);
    call_result_free(&res);
    /* a corrupt version: DATA_LOSS or INVALID_ARGUMENT naming the file, no swap */
    char path[256];
    snprintf(path, sizeof path, "%s/demo/3", f->models);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/demo/3/model.json", f->models);
    FILE *fp = fopen(path, "w");
    fputs("{\"format\": \"moerec.model\", \"tables\": 5}", fp);
    fclose(fp);
    r.version = "";
    assert_int_equal(test_unary(f->ch, RELOAD, &r.base, &moerec__v1__reload_response__descriptor, 30,
                                &resp, &res), 0);
    assert_true(res.status != GRPC_STATUS_OK);
    assert_non_null(strstr(res.details, "version 3"));
    call_result_free(&res);
    check_parity(f, f->v2, "2");
}

/* Without --model-dir the ranker RPCs say what is missing. */
static void test_no_model_dir(void **state) {
    (void)state;
    test_server srv;
    assert_int_equal(test_server_start(&srv, NULL), 0);
    grpc_channel *ch = test_channel(&srv);
    req_buf b;
    build(&b, 1);
    ProtobufCMessage *resp;
    call_result res;
    assert_int_equal(test_unary(ch, SCORE, &b.r.base, &moerec__v1__score_response__descriptor, 10,
                                &resp, &res), 0);
    assert_int_equal(res.status, GRPC_STATUS_FAILED_PRECONDITION);
    assert_non_null(strstr(res.details, "--model-dir"));
    call_result_free(&res);
    grpc_channel_destroy(ch);
    assert_int_equal(test_server_stop(&srv, SIGTERM), 0);
}

int main(void) {
    grpc_init();
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_score_matches_library),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_model_info),
        cmocka_unit_test(test_reload_swaps_version),
    };
    const struct CMUnitTest lone[] = {cmocka_unit_test(test_no_model_dir)};
    int failed = cmocka_run_group_tests_name("score_rpc", t, setup, teardown);
    failed += cmocka_run_group_tests_name("score_without_model", lone, NULL, NULL);
    grpc_shutdown();
    return failed;
}
