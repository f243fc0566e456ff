/* test_score_rpc.c — Score, GetModelInfo and Reload against the real
 * server with a model directory: the server's scores equal the in-process
 * scorer's on the same model (bit for bit: same code, same order); bad input
 * gets INVALID_ARGUMENT naming the problem and the server keeps serving;
 * Reload swaps versions without a restart, also while several threads
 * score (every answer is exactly one version's); expired client deadlines
 * neither crash nor leak (the teardown's SIGTERM must exit 0, under ASan
 * too). */
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
    char root[64];    /* temp dir */
    char models[128]; /* root/models */
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

static int setup_args(void **state, const char *queues, const char *precision, const char *config) {
    fixture *f = calloc(1, sizeof *f);
    *state = f;
    snprintf(f->root, sizeof f->root, "/tmp/moerec-score-XXXXXX");
    if (!mkdtemp(f->root)) return -1;
    snprintf(f->models, sizeof f->models, "%s/models", f->root);
    mkdir(f->models, 0755);
    if (write_version(f, "1", 11, &f->v1)) return -1;
    char cfg[160];
    snprintf(cfg, sizeof cfg, "%s/serve.json", f->root);
    if (config) {
        FILE *cf = fopen(cfg, "w");
        if (!cf || fputs(config, cf) < 0 || fclose(cf)) return -1;
    }
    const char *args[] = {"--model-dir",
                          f->models,
                          "--queues",
                          queues,
                          "--precision",
                          precision ? precision : "",
                          config ? "--config" : NULL,
                          cfg,
                          NULL};
    if (test_server_start(&f->srv, args)) return -1;
    f->ch = test_channel(&f->srv);
    return 0;
}

static int setup(void **state) { return setup_args(state, "2", NULL, NULL); }
static int setup_one_queue(void **state) { return setup_args(state, "1", NULL, NULL); }
static int setup_split(void **state) {
    return setup_args(state, "2", NULL, "{\"score_split_candidates\": 2}");
}
static int setup_bf16(void **state) {
    int rc = setup_args(state, "2", "bf16", NULL);
    mr_err e;
    fixture *f = *state;
    return rc ? rc : moe_model_set_precision(f->v1, MOE_PREC_BF16, &e);
}

static int teardown(void **state) {
    fixture *f = *state;
    if (!f) return -1;
    int rc = 0; /* a test that stopped the server itself cleared srv.pid */
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
#define RB_MAX 300 /* candidates a req_buf holds */
typedef struct req_buf {
    Moerec__V1__ScoreRequest r;
    Moerec__V1__Features uf, cf[RB_MAX];
    Moerec__V1__NumericFeature age;
    Moerec__V1__NumericFeature *agep[1];
    Moerec__V1__CategoricalFeature genre[RB_MAX];
    Moerec__V1__CategoricalFeature *genrep[RB_MAX][1];
    char *genre_val[RB_MAX][1];
    Moerec__V1__Candidate c[RB_MAX];
    Moerec__V1__Candidate *cp[RB_MAX];
    char ids[RB_MAX][16];
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
    assert_int_equal(
        test_unary(f->ch, SCORE, &r->base, &moerec__v1__score_response__descriptor, 10, &resp, res),
        0);
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
        assert_true(fabsf(out->items[i]->score - (0.7f * tasks[i * 2] + 0.3f * tasks[i * 2 + 1])) <
                    1e-6f);
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

/* GetModelInfo of the default model (OK asserted). */
static Moerec__V1__GetModelInfoResponse *model_info(fixture *f, call_result *res) {
    Moerec__V1__GetModelInfoRequest r = MOEREC__V1__GET_MODEL_INFO_REQUEST__INIT;
    ProtobufCMessage *resp;
    assert_int_equal(test_unary(f->ch, INFO, &r.base,
                                &moerec__v1__get_model_info_response__descriptor, 10, &resp, res),
                     0);
    assert_int_equal(res->status, GRPC_STATUS_OK);
    return (Moerec__V1__GetModelInfoResponse *)resp;
}

static void test_model_info(void **state) {
    fixture *f = *state;
    call_result res;
    Moerec__V1__GetModelInfoResponse *o = model_info(f, &res);
    ProtobufCMessage *resp = &o->base;
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
    assert_int_equal(o->extra_dim, 0); /* no long-behaviour block, no history actions */
    assert_int_equal(o->n_history_actions, 0);
    assert_string_equal(o->precision, "fp32"); /* model.json's default */
    assert_string_equal(o->precision_note, "");
    protobuf_c_message_free_unpacked(resp, NULL);
    call_result_free(&res);
}

/* score_split_candidates 2: an idle server cuts a 300-candidate Score
 * over its pool (moe_scorer_run_split); every score is what the whole
 * batch gives, within 1e-6 (bit for bit on AVX-512 kernels, checked in
 * tests/moe/test_scorer.c), and a debug request (gate report) still
 * answers whole. */
static void test_split_score(void **state) {
    fixture *f = *state;
    static float tasks[2 * RB_MAX], sc[RB_MAX];
    static req_buf b;
    expected(f->v1, RB_MAX, tasks, sc);
    for (int round = 0; round < 3; round++) {
        build(&b, RB_MAX);
        call_result res;
        Moerec__V1__ScoreResponse *out = score(f, &b.r, &res);
        assert_int_equal(res.status, GRPC_STATUS_OK);
        assert_int_equal(out->n_items, RB_MAX);
        for (int i = 0; i < RB_MAX; i++) {
            assert_true(fabsf(out->items[i]->score - sc[i]) <= 1e-6f);
            for (int k = 0; k < 2; k++)
                assert_true(fabsf(out->items[i]->tasks[k]->value - tasks[i * 2 + k]) <= 1e-6f);
        }
        protobuf_c_message_free_unpacked(&out->base, NULL);
        call_result_free(&res);
    }
    check_parity(f, f->v1, "1");
}

/* --precision bf16: GetModelInfo says what runs (bf16, or fp32 with the
 * reason on a CPU without AVX512_BF16) and Score answers exactly what the
 * in-process model in that precision computes. */
static void test_precision_override(void **state) {
    fixture *f = *state;
    call_result res;
    Moerec__V1__GetModelInfoResponse *o = model_info(f, &res);
    ProtobufCMessage *resp = &o->base;
    assert_string_equal(o->precision, moe_precision_name(f->v1->precision_used));
    assert_string_equal(o->precision_note, f->v1->precision_note);
    assert_true(!strcmp(o->precision, "bf16") || o->precision_note[0]);
    protobuf_c_message_free_unpacked(resp, NULL);
    call_result_free(&res);
    check_parity(f, f->v1, "1");
}

static void test_reload_swaps_version(void **state) {
    fixture *f = *state;
    assert_int_equal(write_version(f, "2", 22, &f->v2), 0);
    Moerec__V1__ReloadRequest r = MOEREC__V1__RELOAD_REQUEST__INIT;
    ProtobufCMessage *resp;
    call_result res;
    assert_int_equal(test_unary(f->ch, RELOAD, &r.base, &moerec__v1__reload_response__descriptor,
                                30, &resp, &res),
                     0);
    assert_int_equal(res.status, GRPC_STATUS_OK);
    Moerec__V1__ReloadResponse *o = (void *)resp;
    assert_string_equal(o->previous_version, "1");
    assert_string_equal(o->version, "2");
    protobuf_c_message_free_unpacked(resp, NULL);
    call_result_free(&res);
    check_parity(f, f->v2, "2");
    /* a version that does not exist: NOT_FOUND, and version 2 keeps serving */
    r.version = "9";
    assert_int_equal(test_unary(f->ch, RELOAD, &r.base, &moerec__v1__reload_response__descriptor,
                                30, &resp, &res),
                     0);
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
    assert_int_equal(test_unary(f->ch, RELOAD, &r.base, &moerec__v1__reload_response__descriptor,
                                30, &resp, &res),
                     0);
    assert_true(res.status != GRPC_STATUS_OK);
    assert_non_null(strstr(res.details, "version 3"));
    call_result_free(&res);
    check_parity(f, f->v2, "2");
}

/* Precedence (docs/api.md): the schema's `item_id` field takes the
 * candidate's id first, then user/context features override it; so a
 * context feature `item_id` wins over the candidate's id for every row. */
/* A Features message with more fields than apply_features keeps resolved
 * from the check (130 > 128) is looked up field by field: the same scores,
 * a repeated field's last value winning, as with one entry. */
static void test_many_fields_score_the_same(void **state) {
    fixture *f = *state;
    req_buf b;
    build(&b, 8);
    enum { NF = 130 };
    Moerec__V1__NumericFeature ages[NF], *agesp[NF];
    for (int i = 0; i < NF; i++) {
        moerec__v1__numeric_feature__init(&ages[i]);
        ages[i].name = "age";
        ages[i].value = i == NF - 1 ? 41 : (float)i;
        agesp[i] = &ages[i];
    }
    b.uf.numeric = agesp;
    b.uf.n_numeric = NF;
    call_result res;
    Moerec__V1__ScoreResponse *out = score(f, &b.r, &res);
    assert_int_equal(res.status, GRPC_STATUS_OK);
    float tasks[16], sc[8];
    expected(f->v1, 8, tasks, sc);
    assert_int_equal(out->n_items, 8);
    for (int i = 0; i < 8; i++) assert_true(out->items[i]->score == sc[i]);
    protobuf_c_message_free_unpacked(&out->base, NULL);
    call_result_free(&res);
}

static void test_context_overrides_ids(void **state) {
    fixture *f = *state;
    req_buf b;
    build(&b, 4);
    Moerec__V1__Features ctx = MOEREC__V1__FEATURES__INIT;
    Moerec__V1__CategoricalFeature item = MOEREC__V1__CATEGORICAL_FEATURE__INIT;
    Moerec__V1__CategoricalFeature *itemp[1] = {&item};
    char *val[1] = {"i9"};
    item.name = "item_id";
    item.values = val;
    item.n_values = 1;
    ctx.categorical = itemp;
    ctx.n_categorical = 1;
    b.r.context_features = &ctx;
    call_result res;
    Moerec__V1__ScoreResponse *out = score(f, &b.r, &res);
    assert_int_equal(res.status, GRPC_STATUS_OK);
    /* in process: every row is item i9 (genres still per candidate) */
    moe_scorer *s;
    mr_err e;
    const moe_model *m = f->v1;
    assert_int_equal(moe_scorer_create(&s, m, &e), 0);
    assert_int_equal(moe_scorer_begin(s, 4, &e), 0);
    int num, fu = moe_model_field(m, "user_id", &num), fi = moe_model_field(m, "item_id", &num);
    int fg = moe_model_field(m, "genre", &num), fa = moe_model_field(m, "age", &num);
    const char *u[] = {"u7"}, *it[] = {"i9"};
    assert_int_equal(moe_scorer_set_cat(s, MOE_ALL_ROWS, fu, u, NULL, 1, &e), 0);
    assert_int_equal(moe_scorer_set_num(s, MOE_ALL_ROWS, fa, 41, &e), 0);
    assert_int_equal(moe_scorer_set_cat(s, MOE_ALL_ROWS, fi, it, NULL, 1, &e), 0);
    for (int i = 1; i < 4; i += 2) {
        const char *g[] = {i % 4 == 1 ? "drama" : "comedy"};
        assert_int_equal(moe_scorer_set_cat(s, i, fg, g, NULL, 1, &e), 0);
    }
    float tasks[8], sc[4];
    assert_int_equal(moe_scorer_run(s, tasks, sc, &e), 0);
    moe_scorer_free(s);
    for (int i = 0; i < 4; i++) assert_true(out->items[i]->score == sc[i]);
    assert_true(out->items[0]->score == out->items[2]->score); /* same inputs now */
    protobuf_c_message_free_unpacked(&out->base, NULL);
    call_result_free(&res);
}

/* Scores of version 1 and 2 for the build(&b, 8) request. */
typedef struct race {
    fixture *f;
    float sc[2][8];
    int calls; /* per thread */
    atomic_int ok, seen[2], bad;
} race;

static void *race_scorer(void *arg) {
    race *r = arg;
    req_buf b;
    build(&b, 8);
    for (int c = 0; c < r->calls; c++) {
        ProtobufCMessage *resp;
        call_result res;
        if (test_unary(r->f->ch, SCORE, &b.r.base, &moerec__v1__score_response__descriptor, 30,
                       &resp, &res) ||
            res.status != GRPC_STATUS_OK || !resp) {
            fprintf(stderr, "score during reload: status %d '%s'\n", (int)res.status, res.details);
            atomic_fetch_add(&r->bad, 1);
            call_result_free(&res);
            continue;
        }
        Moerec__V1__ScoreResponse *o = (void *)resp;
        int v = !strcmp(o->model_version, "demo/1")   ? 0
                : !strcmp(o->model_version, "demo/2") ? 1
                                                      : -1;
        int same = v >= 0 && o->n_items == 8;
        for (int i = 0; same && i < 8; i++) same = o->items[i]->score == r->sc[v][i];
        if (same) {
            atomic_fetch_add(&r->ok, 1);
            atomic_fetch_add(&r->seen[v], 1);
        } else {
            fprintf(stderr, "score during reload: %s answered other scores\n", o->model_version);
            atomic_fetch_add(&r->bad, 1);
        }
        protobuf_c_message_free_unpacked(resp, NULL);
        call_result_free(&res);
    }
    return NULL;
}

/* Reload swaps versions back and forth while 4 threads score: every answer
 * is exactly one version's scores (a freed version would crash the ASan
 * server or give garbage), and both versions answer. */
static void test_score_during_reloads(void **state) {
    fixture *f = *state;
    if (!f->v2) assert_int_equal(write_version(f, "2", 22, &f->v2), 0);
    race r;
    memset(&r, 0, sizeof r);
    r.f = f;
    r.calls = 100;
    float tasks[16];
    expected(f->v1, 8, tasks, r.sc[0]);
    expected(f->v2, 8, tasks, r.sc[1]);
    pthread_t th[4];
    for (int t = 0; t < 4; t++) assert_int_equal(pthread_create(&th[t], NULL, race_scorer, &r), 0);
    Moerec__V1__ReloadRequest rq = MOEREC__V1__RELOAD_REQUEST__INIT;
    int reloads = 0, reload_failed = 0; /* no assertion before the join: r is on this stack */
    for (int i = 0; i < 200 && atomic_load(&r.ok) + atomic_load(&r.bad) < 4 * r.calls; i++) {
        rq.version = i % 2 ? "1" : "2";
        ProtobufCMessage *resp;
        call_result res;
        int called = test_unary(f->ch, RELOAD, &rq.base, &moerec__v1__reload_response__descriptor,
                                30, &resp, &res);
        int good = called == 0 && res.status == GRPC_STATUS_OK && resp &&
                   !strcmp(((Moerec__V1__ReloadResponse *)resp)->version, rq.version);
        if (resp) protobuf_c_message_free_unpacked(resp, NULL);
        call_result_free(&res);
        if (!good) {
            reload_failed = 1;
            break;
        }
        reloads++;
    }
    for (int t = 0; t < 4; t++) pthread_join(th[t], NULL);
    assert_false(reload_failed);
    fprintf(stderr, "score during reloads: %d reloads, %d calls on v1, %d on v2\n", reloads,
            atomic_load(&r.seen[0]), atomic_load(&r.seen[1]));
    assert_int_equal(atomic_load(&r.bad), 0);
    assert_int_equal(atomic_load(&r.ok), 4 * r.calls);
    assert_true(reloads >= 2);
    if (reloads >= 20) { /* swaps interleaved with the calls: both versions answered */
        assert_true(atomic_load(&r.seen[0]) > 0);
        assert_true(atomic_load(&r.seen[1]) > 0);
    }
    /* leave version 2 serving */
    rq.version = "2";
    ProtobufCMessage *resp;
    call_result res;
    assert_int_equal(test_unary(f->ch, RELOAD, &rq.base, &moerec__v1__reload_response__descriptor,
                                30, &resp, &res),
                     0);
    assert_int_equal(res.status, GRPC_STATUS_OK);
    protobuf_c_message_free_unpacked(resp, NULL);
    call_result_free(&res);
    check_parity(f, f->v2, "2");
}

/* Clients whose deadline passes (before, during or after the server's
 * work) get DEADLINE_EXCEEDED or an answer; the server keeps serving and
 * later drains cleanly (teardown). */
static void test_deadline_exceeded(void **state) {
    fixture *f = *state;
    req_buf b;
    build(&b, 8);
    int expired = 0;
    for (int i = 0; i < 30; i++) {
        ProtobufCMessage *resp;
        call_result res;
        double timeout = (i % 3) * 0.0005; /* 0, 0.5 ms, 1 ms */
        assert_int_equal(test_unary(f->ch, SCORE, &b.r.base,
                                    &moerec__v1__score_response__descriptor, timeout, &resp, &res),
                         0);
        assert_true(res.status == GRPC_STATUS_OK || res.status == GRPC_STATUS_DEADLINE_EXCEEDED);
        expired += res.status == GRPC_STATUS_DEADLINE_EXCEEDED;
        if (resp) protobuf_c_message_free_unpacked(resp, NULL);
        call_result_free(&res);
    }
    assert_true(expired > 0); /* a zero deadline cannot be met */
    check_parity(f, f->v2 ? f->v2 : f->v1, f->v2 ? "2" : "1");
}

typedef struct reload_call {
    fixture *f;
    const char *version;
    call_result res;
    int rc;
    char fifo[300];
    int wfd; /* the FIFO's write end once the server opened it, else -1 */
} reload_call;

static void *reload_thread(void *arg) {
    reload_call *rc = arg;
    Moerec__V1__ReloadRequest rq = MOEREC__V1__RELOAD_REQUEST__INIT;
    rq.version = (char *)rc->version;
    ProtobufCMessage *resp;
    rc->rc = test_unary(rc->f->ch, RELOAD, &rq.base, &moerec__v1__reload_response__descriptor, 30,
                        &resp, &rc->res);
    if (resp) protobuf_c_message_free_unpacked(resp, NULL);
    return NULL;
}

/* Start a Reload of `version` whose model.json is a FIFO nobody writes yet,
 * so the call stays in flight; rc->fifo names it for blocked_reload_end. */
static pthread_t blocked_reload_start(fixture *f, const char *version, reload_call *rc) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s/demo/%s", f->models, version);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(rc->fifo, sizeof rc->fifo, "%s/model.json", dir);
    assert_int_equal(mkfifo(rc->fifo, 0600), 0);
    rc->f = f;
    rc->version = version;
    rc->rc = -1;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reload_thread, rc), 0);
    /* wait until the server has the FIFO open for reading (a writer's
     * non-blocking open fails until then): the reload is then in flight,
     * however slow the server (ThreadSanitizer builds) */
    rc->wfd = -1;
    for (int i = 0; i < 3000 && rc->wfd < 0; i++) {
        rc->wfd = open(rc->fifo, O_WRONLY | O_NONBLOCK);
        if (rc->wfd < 0) usleep(10 * 1000);
    }
    assert_true(rc->wfd >= 0);
    return th;
}

/* Let the reload read "{}" (no model) and wait for its answer. Never
 * blocks: the write end is non-blocking, and a server that died makes the
 * write fail with EPIPE (SIGPIPE ignored) instead of killing the test. */
static void blocked_reload_end(reload_call *rc, pthread_t th) {
    int fd = rc->wfd;
    signal(SIGPIPE, SIG_IGN);
    if (fd >= 0) {
        if (write(fd, "{}", 2) != 2) fprintf(stderr, "short write to the FIFO\n");
        close(fd);
    }
    pthread_join(th, NULL);
}

/* A Reload that takes long (here: its model.json is a FIFO nobody writes
 * yet) must not stall other calls, even on a server with ONE completion
 * queue: Score and health Check answer while it waits. */
static void test_slow_reload_does_not_block(void **state) {
    fixture *f = *state;
    reload_call rc;
    memset(&rc, 0, sizeof rc);
    pthread_t th = blocked_reload_start(f, "5", &rc);
    req_buf b;
    build(&b, 8);
    ProtobufCMessage *resp;
    call_result res;
    int called = test_unary(f->ch, SCORE, &b.r.base, &moerec__v1__score_response__descriptor, 3,
                            &resp, &res);
    grpc_status_code during = res.status;
    if (resp) protobuf_c_message_free_unpacked(resp, NULL);
    call_result_free(&res);
    blocked_reload_end(&rc, th); /* whatever happened, so the test never hangs */
    assert_int_equal(called, 0);
    if (during != GRPC_STATUS_OK) fail_msg("Score during a slow Reload: status %d", (int)during);
    assert_int_equal(rc.rc, 0);
    assert_true(rc.res.status != GRPC_STATUS_OK); /* "{}" is no model */
    assert_non_null(strstr(rc.res.details, "version 5"));
    call_result_free(&rc.res);
    check_parity(f, f->v1, "1");
}

/* SIGTERM while a call is in flight (a Reload blocked on a FIFO), then a
 * second SIGTERM during the drain: the server still finishes the call and
 * exits 0. (With the signals only blocked for sigwait, the second one hit
 * a thread started before main — OpenBLAS's — and killed the process.) */
static void test_second_sigterm_during_drain(void **state) {
    fixture *f = *state;
    reload_call rc;
    memset(&rc, 0, sizeof rc);
    pthread_t th = blocked_reload_start(f, "7", &rc);
    kill(f->srv.pid, SIGTERM);
    usleep(200 * 1000); /* draining, waiting for the reload */
    kill(f->srv.pid, SIGTERM);
    usleep(100 * 1000);
    blocked_reload_end(&rc, th);
    int status;
    assert_int_equal(waitpid(f->srv.pid, &status, 0), f->srv.pid);
    f->srv.pid = 0;
    if (WIFSIGNALED(status)) fail_msg("server killed by signal %d", WTERMSIG(status));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(rc.rc, 0); /* the in-flight reload got its answer */
    assert_true(rc.res.status != GRPC_STATUS_OK);
    assert_non_null(strstr(rc.res.details, "version 7"));
    call_result_free(&rc.res);
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
    assert_int_equal(
        test_unary(ch, SCORE, &b.r.base, &moerec__v1__score_response__descriptor, 10, &resp, &res),
        0);
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
        cmocka_unit_test(test_context_overrides_ids),
        cmocka_unit_test(test_model_info),
        cmocka_unit_test(test_many_fields_score_the_same),
        cmocka_unit_test(test_reload_swaps_version),
        cmocka_unit_test(test_score_during_reloads),
        cmocka_unit_test(test_deadline_exceeded),
    };
    const struct CMUnitTest one_queue[] = {cmocka_unit_test(test_slow_reload_does_not_block)};
    const struct CMUnitTest bf16[] = {cmocka_unit_test(test_precision_override)};
    const struct CMUnitTest split[] = {cmocka_unit_test(test_split_score)};
    const struct CMUnitTest drain[] = {cmocka_unit_test(test_second_sigterm_during_drain)};
    const struct CMUnitTest lone[] = {cmocka_unit_test(test_no_model_dir)};
    int failed = cmocka_run_group_tests_name("score_rpc", t, setup, teardown);
    failed += cmocka_run_group_tests_name("score_one_queue", one_queue, setup_one_queue, teardown);
    failed += cmocka_run_group_tests_name("score_bf16", bf16, setup_bf16, teardown);
    failed += cmocka_run_group_tests_name("score_split", split, setup_split, teardown);
    failed += cmocka_run_group_tests_name("score_drain", drain, setup, teardown);
    failed += cmocka_run_group_tests_name("score_without_model", lone, NULL, NULL);
    grpc_shutdown();
    return failed;
}
