/* test_store_rpc.c — UpsertItems, AppendEvents and Score with the store:
 * the real server with a model whose input carries the SDIM block and a
 * RocksDB store in a temp dir. The server's scores equal, bit for bit, an
 * in-process computation that replays the same events into a table the
 * way training does (moe/sdim_feature.h sdim_seq) — so serving and
 * training compute the same feature — and an appended event changes the
 * next Score at once. Rejected writes change nothing. */
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
#include "moe/sdim_feature.h"
#include "proto/moerec.pb-c.h"
#include "server/backend.h"

#define SCORE "/moerec.v1.Recommender/Score"
#define UPSERT "/moerec.v1.Recommender/UpsertItems"
#define APPEND "/moerec.v1.Recommender/AppendEvents"

enum { D = 8, M = 16, TAU = 2, LMAX = 10, SHORT = 3, SEED = 77, NITEMS = 12 };

static const char *k_model_json =
    "{\"format\":\"moerec.model\",\"format_version\":1,\"name\":\"sd\","
    "\"tables\":[{\"name\":\"user\",\"rows\":64,\"dim\":4},{\"name\":\"item\",\"rows\":64,\"dim\":4},"
    "{\"name\":\"genre\",\"rows\":16,\"dim\":4}],"
    "\"features\":{\"categorical\":[{\"name\":\"user_id\",\"table\":\"user\"},"
    "{\"name\":\"item_id\",\"table\":\"item\"},{\"name\":\"genre\",\"table\":\"genre\"}],"
    "\"extra_dim\":16},"
    "\"tasks\":[{\"name\":\"click\",\"weight\":1.0}],"
    "\"arch\":{\"type\":\"mmoe\",\"experts\":3,\"expert_hidden\":[8],\"tower_hidden\":[4]}}";

typedef struct fixture {
    char root[64];
    test_server srv;
    grpc_channel *ch;
    moe_model *model;
    sdim_hasher *h;
    sdim_seq *seq; /* the training-side replay of alice's events */
} fixture;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void item_vec(int i, float *v) {
    for (int j = 0; j < D; j++) v[j] = sinf(0.7f * (float)i + (float)j) + 0.1f * (float)j;
}
static const char *genre_of(int i) { return i % 3 ? "drama" : "comedy"; }

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    *state = f;
    snprintf(f->root, sizeof f->root, "/tmp/moerec-store-rpc-XXXXXX");
    if (!mkdtemp(f->root)) return -1;
    char dir[256], cfg[256];
    mr_err e;
    moe_model *m;
    if (moe_model_from_json(&m, k_model_json, 5, &e)) return fprintf(stderr, "%s\n", e.msg), -1;
    snprintf(dir, sizeof dir, "%s/models", f->root);
    mkdir(dir, 0755);
    snprintf(dir, sizeof dir, "%s/models/sd", f->root);
    mkdir(dir, 0755);
    snprintf(dir, sizeof dir, "%s/models/sd/1", f->root);
    if (moe_model_save(m, dir, &e)) return fprintf(stderr, "%s\n", e.msg), -1;
    moe_model_free(m);
    if (moe_model_load(&f->model, dir, &e)) return -1;
    snprintf(cfg, sizeof cfg, "%s/moerec.json", f->root);
    FILE *fp = fopen(cfg, "w");
    fprintf(fp,
            "{\"model_dir\": \"%s/models\", \"data_dir\": \"%s/db\", \"item_dim\": %d,"
            " \"sdim_m\": %d, \"sdim_tau\": %d, \"sdim_l_max\": %d, \"sdim_short\": %d,"
            " \"sdim_seed\": %d, \"store_sync\": true}",
            f->root, f->root, D, M, TAU, LMAX, SHORT, SEED);
    fclose(fp);
    const char *args[] = {"--config", cfg, NULL};
    if (test_server_start(&f->srv, args)) return -1;
    f->ch = test_channel(&f->srv);
    if (sdim_hasher_create(&f->h, D, M, TAU, SEED, &e) || sdim_seq_create(&f->seq, f->h, LMAX, &e))
        return -1;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    int rc = -1;
    if (f->ch) grpc_channel_destroy(f->ch);
    if (f->srv.pid) rc = test_server_stop(&f->srv, SIGTERM);
    moe_model_free(f->model);
    sdim_seq_free(f->seq);
    sdim_hasher_free(f->h);
    if (f->root[0]) nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return rc == 0 ? 0 : -1;
}

static int call(fixture *f, const char *method, const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *rd, ProtobufCMessage **resp, call_result *res) {
    assert_int_equal(test_unary(f->ch, method, req, rd, 10, resp, res), 0);
    return res->status;
}

/* UpsertItems of items [from, to) with vectors and genres; bad_dim_at >= 0
 * gives that item a vector of the wrong length. Returns the gRPC status. */
static int upsert(fixture *f, int from, int to, int bad_dim_at, float shift, char *details) {
    int n = to - from;
    Moerec__V1__Item it[NITEMS], *itp[NITEMS];
    Moerec__V1__Features fe[NITEMS];
    Moerec__V1__CategoricalFeature g[NITEMS], *gp[NITEMS][1];
    char *gv[NITEMS][1];
    char ids[NITEMS][16];
    float v[NITEMS][D];
    for (int k = 0; k < n; k++) {
        int i = from + k;
        moerec__v1__item__init(&it[k]);
        snprintf(ids[k], sizeof ids[k], "i%d", i);
        it[k].item_id = ids[k];
        item_vec(i, v[k]);
        for (int j = 0; j < D; j++) v[k][j] += shift;
        it[k].embedding = v[k];
        it[k].n_embedding = i == bad_dim_at ? D - 1 : D;
        moerec__v1__features__init(&fe[k]);
        moerec__v1__categorical_feature__init(&g[k]);
        g[k].name = "genre";
        gv[k][0] = (char *)genre_of(i);
        g[k].values = gv[k];
        g[k].n_values = 1;
        gp[k][0] = &g[k];
        fe[k].categorical = gp[k];
        fe[k].n_categorical = 1;
        it[k].features = &fe[k];
        itp[k] = &it[k];
    }
    Moerec__V1__UpsertItemsRequest r = MOEREC__V1__UPSERT_ITEMS_REQUEST__INIT;
    r.items = itp;
    r.n_items = (size_t)n;
    ProtobufCMessage *resp;
    call_result res;
    int st = call(f, UPSERT, &r.base, &moerec__v1__upsert_items_response__descriptor, &resp, &res);
    if (st == 0) {
        assert_int_equal(((Moerec__V1__UpsertItemsResponse *)resp)->upserted, (uint32_t)n);
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    if (details) snprintf(details, 512, "%s", res.details);
    call_result_free(&res);
    return st;
}

/* AppendEvents: alice sees items [from, to) at times 1000 + i; with
 * bad_at >= 0 that event has no item_id. Mirrors it into the replay when
 * the server accepted it. */
static int append(fixture *f, int from, int to, int bad_at) {
    int n = to - from;
    Moerec__V1__Event ev[NITEMS], *evp[NITEMS];
    char ids[NITEMS][16];
    for (int k = 0; k < n; k++) {
        moerec__v1__event__init(&ev[k]);
        ev[k].user_id = "alice";
        snprintf(ids[k], sizeof ids[k], "i%d", from + k);
        ev[k].item_id = from + k == bad_at ? "" : ids[k];
        ev[k].timestamp_ms = 1000 + from + k;
        ev[k].action = "click";
        evp[k] = &ev[k];
    }
    Moerec__V1__AppendEventsRequest r = MOEREC__V1__APPEND_EVENTS_REQUEST__INIT;
    r.events = evp;
    r.n_events = (size_t)n;
    ProtobufCMessage *resp;
    call_result res;
    int st = call(f, APPEND, &r.base, &moerec__v1__append_events_response__descriptor, &resp, &res);
    if (st == 0) {
        assert_int_equal(((Moerec__V1__AppendEventsResponse *)resp)->appended, (uint32_t)n);
        protobuf_c_message_free_unpacked(resp, NULL);
        float x[NITEMS * D];
        for (int k = 0; k < n; k++) item_vec(from + k, x + k * D);
        mr_err e;
        assert_int_equal(sdim_seq_push(f->seq, x, n, &e), 0);
    }
    call_result_free(&res);
    return st;
}

/* Score candidates [from, to) for alice over RPC (no request features: the
 * genres come from the store) and in process; compare bit for bit. */
static void score_and_check(fixture *f, int from, int to, float *out_scores, uint32_t want_len) {
    int n = to - from;
    Moerec__V1__Candidate c[NITEMS], *cp[NITEMS];
    char ids[NITEMS][16];
    for (int k = 0; k < n; k++) {
        moerec__v1__candidate__init(&c[k]);
        snprintf(ids[k], sizeof ids[k], "i%d", from + k);
        c[k].item_id = ids[k];
        cp[k] = &c[k];
    }
    Moerec__V1__ScoreRequest r = MOEREC__V1__SCORE_REQUEST__INIT;
    r.user_id = "alice";
    r.candidates = cp;
    r.n_candidates = (size_t)n;
    r.debug = 1;
    ProtobufCMessage *resp;
    call_result res;
    assert_int_equal(call(f, SCORE, &r.base, &moerec__v1__score_response__descriptor, &resp, &res),
                     0);
    Moerec__V1__ScoreResponse *o = (void *)resp;
    assert_int_equal(o->n_items, (size_t)n);
    assert_int_equal(o->debug->behaviour_length, want_len);

    const moe_model *m = f->model;
    moe_scorer *s;
    mr_err e;
    assert_int_equal(moe_scorer_create(&s, m, &e), 0);
    assert_int_equal(moe_scorer_begin(s, n, &e), 0);
    int num, fu = moe_model_field(m, "user_id", &num), fi = moe_model_field(m, "item_id", &num),
             fg = moe_model_field(m, "genre", &num);
    const char *u[] = {"alice"};
    assert_int_equal(moe_scorer_set_cat(s, MOE_ALL_ROWS, fu, u, NULL, 1, &e), 0);
    float cand[NITEMS * D], recent[SHORT * D], sc[NITEMS];
    for (int k = 0; k < n; k++) {
        const char *g[] = {genre_of(from + k)}, *id[] = {ids[k]};
        assert_int_equal(moe_scorer_set_cat(s, k, fg, g, NULL, 1, &e), 0);
        assert_int_equal(moe_scorer_set_cat(s, k, fi, id, NULL, 1, &e), 0);
        item_vec(from + k, cand + k * D);
    }
    int kr = sdim_seq_recent(f->seq, SHORT, recent);
    assert_int_equal(sdim_feature_to_scorer(s, m, f->h, f->seq->n ? f->seq->table : NULL, recent,
                                            kr, cand, n, &e),
                     0);
    assert_int_equal(moe_scorer_run(s, NULL, sc, &e), 0);
    moe_scorer_free(s);
    for (int k = 0; k < n; k++) {
        if (o->items[k]->score != sc[k])
            fail_msg("candidate %d: server %.9g, replay %.9g", k, o->items[k]->score, sc[k]);
        out_scores[k] = sc[k];
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    call_result_free(&res);
}

static void test_events_change_scores_like_training(void **state) {
    fixture *f = *state;
    char details[512];
    assert_int_equal(upsert(f, 0, NITEMS, -1, 0.0f, details), 0);
    /* a rejected upsert (item 3's vector too short) writes nothing, not even
     * the valid items before it */
    assert_int_equal(upsert(f, 0, 6, 3, 5.0f, details), GRPC_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(details, "items[3].embedding has 7 values"));

    float s0[NITEMS], s1[NITEMS], s2[NITEMS], s3[NITEMS];
    score_and_check(f, 6, 12, s0, 0); /* no history yet */
    assert_int_equal(append(f, 0, 6, -1), 0);
    score_and_check(f, 6, 12, s1, 6);
    int changed = 0;
    for (int k = 0; k < 6; k++) changed += s0[k] != s1[k];
    assert_true(changed > 0);
    /* 6 more events: 12 > l_max = 10, the two oldest are trimmed */
    assert_int_equal(append(f, 6, 12, -1), 0);
    score_and_check(f, 6, 12, s2, LMAX);
    /* a rejected append (an event without item_id) changes nothing */
    assert_int_equal(append(f, 2, 5, 3), GRPC_STATUS_INVALID_ARGUMENT);
    score_and_check(f, 6, 12, s3, LMAX);
    assert_memory_equal(s2, s3, sizeof(float) * 6);
}

/* Without a store, the model that needs the SDIM block says so. */
static void test_sdim_model_without_store(void **state) {
    fixture *f = *state;
    test_server srv;
    char models[128];
    snprintf(models, sizeof models, "%s/models", f->root);
    const char *args[] = {"--model-dir", models, NULL};
    assert_int_equal(test_server_start(&srv, args), 0);
    grpc_channel *ch = test_channel(&srv);
    Moerec__V1__Candidate c = MOEREC__V1__CANDIDATE__INIT, *cp[1] = {&c};
    c.item_id = "i1";
    Moerec__V1__ScoreRequest r = MOEREC__V1__SCORE_REQUEST__INIT;
    r.user_id = "alice";
    r.candidates = cp;
    r.n_candidates = 1;
    ProtobufCMessage *resp;
    call_result res;
    assert_int_equal(
        test_unary(ch, SCORE, &r.base, &moerec__v1__score_response__descriptor, 10, &resp, &res),
        0);
    assert_int_equal(res.status, GRPC_STATUS_FAILED_PRECONDITION);
    assert_non_null(strstr(res.details, "data_dir"));
    call_result_free(&res);
    Moerec__V1__AppendEventsRequest a = MOEREC__V1__APPEND_EVENTS_REQUEST__INIT;
    assert_int_equal(test_unary(ch, APPEND, &a.base,
                                &moerec__v1__append_events_response__descriptor, 10, &resp, &res),
                     0);
    assert_int_equal(res.status, GRPC_STATUS_FAILED_PRECONDITION);
    call_result_free(&res);
    grpc_channel_destroy(ch);
    assert_int_equal(test_server_stop(&srv, SIGTERM), 0);
}

/* Items with features only need no vector memory: 8 of them on a server
 * with wide item vectors (d = 4096) and the smallest request arena
 * (64 KiB) are stored (8 x 4096 floats would not fit the arena). */
static void test_feature_only_items(void **state) {
    fixture *f = *state;
    char cfg[256];
    snprintf(cfg, sizeof cfg, "%s/wide.json", f->root);
    FILE *fp = fopen(cfg, "w");
    fprintf(fp,
            "{\"data_dir\": \"%s/wide-db\", \"item_dim\": 4096, \"request_arena_bytes\": 65536}",
            f->root);
    fclose(fp);
    test_server srv;
    const char *args[] = {"--config", cfg, NULL};
    assert_int_equal(test_server_start(&srv, args), 0);
    grpc_channel *ch = test_channel(&srv);
    Moerec__V1__Item it[8], *itp[8];
    Moerec__V1__Features fe = MOEREC__V1__FEATURES__INIT;
    Moerec__V1__CategoricalFeature g = MOEREC__V1__CATEGORICAL_FEATURE__INIT, *gp[1] = {&g};
    char *gv[1] = {"drama"}, ids[8][8];
    g.name = "genre";
    g.values = gv;
    g.n_values = 1;
    fe.categorical = gp;
    fe.n_categorical = 1;
    for (int k = 0; k < 8; k++) {
        moerec__v1__item__init(&it[k]);
        snprintf(ids[k], sizeof ids[k], "w%d", k);
        it[k].item_id = ids[k];
        it[k].features = &fe;
        itp[k] = &it[k];
    }
    Moerec__V1__UpsertItemsRequest r = MOEREC__V1__UPSERT_ITEMS_REQUEST__INIT;
    r.items = itp;
    r.n_items = 8;
    ProtobufCMessage *resp;
    call_result res;
    int called = test_unary(ch, UPSERT, &r.base, &moerec__v1__upsert_items_response__descriptor, 10,
                            &resp, &res);
    uint32_t upserted = resp ? ((Moerec__V1__UpsertItemsResponse *)resp)->upserted : 0;
    if (resp) protobuf_c_message_free_unpacked(resp, NULL);
    call_result_free(&res);
    grpc_channel_destroy(ch);
    assert_int_equal(test_server_stop(&srv, SIGTERM), 0); /* stopped before any assertion */
    assert_int_equal(called, 0);
    if (res.status != GRPC_STATUS_OK) fail_msg("status %d: %s", (int)res.status, res.details);
    assert_int_equal(upserted, 8);
}

static void test_api_ids(void **state) {
    (void)state;
    assert_int_equal(mr_api_id("12345"), 12345);
    assert_int_equal(mr_api_id("0"), 0);
    assert_true(mr_api_id("9223372036854775808") >> 63); /* 2^63: hashed */
    assert_true(mr_api_id("007") >> 63);                 /* leading zero: a string */
    assert_true(mr_api_id("alice") >> 63);
    assert_true(mr_api_id("alice") != mr_api_id("bob"));
    assert_true(mr_api_id("alice") == mr_api_id("alice"));
}

int main(void) {
    grpc_init();
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_events_change_scores_like_training),
        cmocka_unit_test(test_sdim_model_without_store),
        cmocka_unit_test(test_feature_only_items),
        cmocka_unit_test(test_api_ids),
    };
    int failed = cmocka_run_group_tests_name("store_rpc", t, setup, teardown);
    grpc_shutdown();
    return failed;
}
