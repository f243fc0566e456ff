/* test_history_identity.c — the history input end to end (issue 13): for
 * the same row, the SDIM [long | short] block that `moerec train
 * --sdim-events` joins from the log (moe/sdim_join_csv.c: the user's
 * events strictly before the row's time) equals what the real server
 * takes from its store after AppendEvents of those events. Shown through
 * the trained model: the in-process scorer fed with the trainer's joined
 * block and Score over gRPC with ids only answer the same float, bit for
 * bit, for a row whose time ties an event (the tie is not history), rows
 * after every event, and a user without events (zero block). The item
 * vectors reach the store through `moerec index embeddings --import`, the
 * same file the trainer reads. The model has history actions
 * (features.history_actions ["like", "love"]): the block's last two floats
 * are the short attention's shares of those actions, from the events
 * file's action column on one side and Event.action on the other. */
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
#include "moe/dataset.h"
#include "moe/model.h"
#include "moe/scorer.h"
#include "moe/sdim_feature.h"
#include "moe/sdim_join.h"
#include "proto/moerec.pb-c.h"

#define SCORE "/moerec.v1.Recommender/Score"
#define APPEND "/moerec.v1.Recommender/AppendEvents"
#define INFO "/moerec.v1.Recommender/GetModelInfo"

enum { D = 8, M = 16, TAU = 2, LMAX = 64, SHORT = 4, SEED = 91, NITEMS = 40, NEV = 60, NROWS = 4 };

static const char *k_model_json =
    "{\"format\":\"moerec.model\",\"format_version\":1,\"name\":\"hist\","
    "\"tables\":[{\"name\":\"user\",\"rows\":64,\"dim\":4},{\"name\":\"item\",\"rows\":64,\"dim\":4}],"
    "\"features\":{\"categorical\":[{\"name\":\"user_id\",\"table\":\"user\"},"
    "{\"name\":\"item_id\",\"table\":\"item\"}],\"extra_dim\":18,"
    "\"history_actions\":[\"like\",\"love\"]},"
    "\"tasks\":[{\"name\":\"click\",\"label\":\"click\"}],"
    "\"arch\":{\"type\":\"mmoe\",\"experts\":2,\"expert_hidden\":[32],\"tower_hidden\":[8]}}";

typedef struct ev {
    const char *user;
    int item;
    long long ts;
    const char *action; /* "" = none */
} ev;

static const char *const k_actions[4] = {"like", "love", "click", ""};

typedef struct fixture {
    char root[64];
    test_server srv;
    grpc_channel *ch;
    ev events[NEV];  /* in time order */
    long long t_tie; /* row 0's time: equal to an event of user 101 */
} fixture;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* system() of a printf-formatted command; 0 when it exited 0. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc) fprintf(stderr, "failed (%d): %s\n", rc, cmd);
    return rc;
}

static FILE *open_in(const fixture *f, const char *name) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", f->root, name);
    return fopen(p, "w");
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    *state = f;
    snprintf(f->root, sizeof f->root, "/tmp/moerec-hist-XXXXXX");
    if (!mkdtemp(f->root)) return -1;
    const char *bin = getenv("MOEREC_BIN"), *R = f->root;
    /* events: users 101 and 102 interleaved, 101 twice as often; ms times */
    for (int k = 0; k < NEV; k++)
        f->events[k] = (ev){k % 3 == 2 ? "102" : "101", (k * 7 + 3) % NITEMS, 1000000 + 1000LL * k,
                            k_actions[(k / 2) % 4]};
    f->t_tie = f->events[30].ts; /* 101's event 30: a row at this time must not see it */
    FILE *fp = open_in(f, "events.csv");
    fprintf(fp, "user_id,item_id,ts_ms,action\n");
    for (int k = 0; k < NEV; k++)
        fprintf(fp, "%s,%d,%lld,%s\n", f->events[k].user, f->events[k].item, f->events[k].ts,
                f->events[k].action);
    fclose(fp);
    fp = open_in(f, "items.csv");
    fprintf(fp, "item_id");
    for (int j = 0; j < D; j++) fprintf(fp, ",e%d", j);
    fprintf(fp, "\n");
    for (int i = 0; i < NITEMS; i++) {
        fprintf(fp, "%d", i);
        for (int j = 0; j < D; j++) fprintf(fp, ",%.6f", sin(0.37 * i + 1.3 * j) * (1 + 0.1 * j));
        fprintf(fp, "\n");
    }
    fclose(fp);
    /* training rows: after each event, a click on an item near its item */
    fp = open_in(f, "train.csv");
    fprintf(fp, "user_id,item_id,ts_ms,click\n");
    for (int k = 0; k < 400; k++) {
        int e = k % NEV;
        fprintf(fp, "%s,%d,%lld,%d\n", f->events[e].user, (f->events[e].item + k % 3) % NITEMS,
                f->events[e].ts + 1 + k, k % 3 == 0);
    }
    fclose(fp);
    /* the rows compared: a tie with an event of 101; after every event (101, 102); 103 has no events */
    long long end = f->events[NEV - 1].ts + 5000;
    fp = open_in(f, "rows.csv");
    fprintf(
        fp,
        "user_id,item_id,ts_ms,click\n101,5,%lld,1\n101,11,%lld,0\n102,7,%lld,1\n103,2,%lld,0\n",
        f->t_tie, end, end, end);
    fclose(fp);
    fp = open_in(f, "model.json");
    fputs(k_model_json, fp);
    fclose(fp);
    fp = open_in(f, "moerec.json");
    fprintf(
        fp,
        "{\"model_dir\": \"%s/models\", \"data_dir\": \"%s/db\", \"item_dim\": %d, \"sdim_m\": %d,"
        " \"sdim_tau\": %d, \"sdim_l_max\": %d, \"sdim_short\": %d, \"sdim_seed\": %d, \"store_sync\": true}",
        R, R, D, M, TAU, LMAX, SHORT, SEED);
    fclose(fp);
    if (sh("%s train --model-json %s/model.json --data %s/train.csv --out %s/models/hist --version 1 "
           "--sdim-events %s/events.csv --sdim-items %s/items.csv --sdim-params %d,%d,%d,%d,%d --epochs 2 "
           "--val-frac 0 --quiet --threads 1 > /dev/null",
           bin, R, R, R, R, R, M, TAU, SEED, LMAX, SHORT) ||
        sh("%s index embeddings --import %s/items.csv --item-column item_id --store %s/db > /dev/null",
           bin, R, R))
        return -1;
    char cfg[256];
    snprintf(cfg, sizeof cfg, "%s/moerec.json", R);
    const char *args[] = {"--config", cfg, NULL};
    if (test_server_start(&f->srv, args)) return -1;
    f->ch = test_channel(&f->srv);
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    int rc = -1;
    if (f->ch) grpc_channel_destroy(f->ch);
    if (f->srv.pid) rc = test_server_stop(&f->srv, SIGTERM);
    if (f->root[0]) nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* AppendEvents of events [from, to). */
static void append(fixture *f, int from, int to) {
    Moerec__V1__Event e[NEV], *ep[NEV];
    char ids[NEV][16];
    for (int k = from; k < to; k++) {
        moerec__v1__event__init(&e[k - from]);
        e[k - from].user_id = (char *)f->events[k].user;
        snprintf(ids[k - from], sizeof ids[0], "%d", f->events[k].item);
        e[k - from].item_id = ids[k - from];
        e[k - from].timestamp_ms = f->events[k].ts;
        e[k - from].action = (char *)f->events[k].action;
        ep[k - from] = &e[k - from];
    }
    Moerec__V1__AppendEventsRequest r = MOEREC__V1__APPEND_EVENTS_REQUEST__INIT;
    r.events = ep;
    r.n_events = (size_t)(to - from);
    ProtobufCMessage *resp = NULL;
    call_result res;
    assert_int_equal(test_unary(f->ch, APPEND, &r.base,
                                &moerec__v1__append_events_response__descriptor, 10, &resp, &res),
                     0);
    assert_int_equal(res.status, GRPC_STATUS_OK);
    assert_int_equal(((Moerec__V1__AppendEventsResponse *)resp)->appended, (uint32_t)(to - from));
    protobuf_c_message_free_unpacked(resp, NULL);
    call_result_free(&res);
}

/* GetModelInfo tells a client what the block is and which actions count. */
static void test_model_info_names_the_actions(void **state) {
    fixture *f = *state;
    Moerec__V1__GetModelInfoRequest r = MOEREC__V1__GET_MODEL_INFO_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    call_result res;
    assert_int_equal(test_unary(f->ch, INFO, &r.base,
                                &moerec__v1__get_model_info_response__descriptor, 10, &resp, &res),
                     0);
    assert_int_equal(res.status, GRPC_STATUS_OK);
    Moerec__V1__GetModelInfoResponse *o = (void *)resp;
    assert_int_equal(o->extra_dim, 2 * D + 2);
    assert_int_equal(o->n_history_actions, 2);
    assert_string_equal(o->history_actions[0], "like");
    assert_string_equal(o->history_actions[1], "love");
    protobuf_c_message_free_unpacked(resp, NULL);
    call_result_free(&res);
}

/* Score of (user, item) with ids only; the click probability. */
static float score_rpc(fixture *f, const char *user, const char *item) {
    Moerec__V1__Candidate c = MOEREC__V1__CANDIDATE__INIT, *cp = &c;
    c.item_id = (char *)item;
    Moerec__V1__ScoreRequest r = MOEREC__V1__SCORE_REQUEST__INIT;
    r.user_id = (char *)user;
    r.candidates = &cp;
    r.n_candidates = 1;
    ProtobufCMessage *resp = NULL;
    call_result res;
    assert_int_equal(
        test_unary(f->ch, SCORE, &r.base, &moerec__v1__score_response__descriptor, 10, &resp, &res),
        0);
    if (res.status != GRPC_STATUS_OK) fprintf(stderr, "Score: %s\n", res.details);
    assert_int_equal(res.status, GRPC_STATUS_OK);
    Moerec__V1__ScoreResponse *sr = (void *)resp;
    assert_int_equal(sr->n_items, 1);
    float v = sr->items[0]->tasks[0]->value;
    protobuf_c_message_free_unpacked(resp, NULL);
    call_result_free(&res);
    return v;
}

/* The in-process prediction of row r of rows.csv from the trainer's join. */
static float score_joined(const moe_model *m, const moe_dataset *d, int r, const char *user,
                          const char *item) {
    moe_scorer *s;
    mr_err e;
    float task, score;
    assert_int_equal(moe_scorer_create(&s, m, &e), 0);
    assert_int_equal(moe_scorer_begin(s, 1, &e), 0);
    int numeric, fu = moe_model_field(m, "user_id", &numeric),
                 fi = moe_model_field(m, "item_id", &numeric);
    assert_int_equal(moe_scorer_set_cat(s, 0, fu, &user, NULL, 1, &e), 0);
    assert_int_equal(moe_scorer_set_cat(s, 0, fi, &item, NULL, 1, &e), 0);
    assert_int_equal(
        moe_scorer_set_extra(s, 0, d->extra + (size_t)r * d->extra_dim, d->extra_dim, &e), 0);
    assert_int_equal(moe_scorer_run(s, &task, &score, &e), 0);
    moe_scorer_free(s);
    return task;
}

static void test_join_equals_store(void **state) {
    fixture *f = *state;
    char p[256];
    mr_err e;
    moe_model *m = NULL;
    moe_dataset *d = NULL;
    snprintf(p, sizeof p, "%s/models/hist/1", f->root);
    assert_int_equal(moe_model_load(&m, p, &e), 0);
    /* the trainer's join of rows.csv (the code `moerec train --sdim-events` runs) */
    snprintf(p, sizeof p, "%s/rows.csv", f->root);
    if (moe_dataset_read(&d, m, p, NULL, 0, &e)) fail_msg("%s", e.msg);
    sdim_csv_opts o;
    sdim_csv_opts_init(&o);
    o.n_actions = sdim_model_actions(m, o.actions);
    assert_int_equal(o.n_actions, 2);
    char evp[256], itp[256];
    snprintf(evp, sizeof evp, "%s/events.csv", f->root);
    snprintf(itp, sizeof itp, "%s/items.csv", f->root);
    o.events_path = evp;
    o.items_path = itp;
    o.m = M, o.tau = TAU, o.seed = SEED, o.l_max = LMAX, o.short_n = SHORT;
    if (sdim_join_csv(d, p, 0, &o, &e)) fail_msg("%s", e.msg);
    assert_int_equal(d->n, NROWS);
    int ex = d->extra_dim;
    float zero[18] = {0};
    assert_int_equal(ex, 18);
    /* the blocks hold history: rows 0 and 1 (101 before the tie, after all) differ; 103's is zero */
    assert_memory_not_equal(d->extra, d->extra + ex, sizeof(float) * (size_t)ex);
    assert_memory_not_equal(d->extra, zero, sizeof zero);
    assert_memory_equal(d->extra + 3 * ex, zero, sizeof zero);
    const char *user[NROWS] = {"101", "101", "102", "103"}, *item[NROWS] = {"5", "11", "7", "2"};
    float want[NROWS], got;
    for (int r = 0; r < NROWS; r++) want[r] = score_joined(m, d, r, user[r], item[r]);
    /* the actions' shares are there (liked and loved events among 101's last ones) and
     * move the score: without them row 1 scores otherwise */
    float *blk = d->extra + ex, share = blk[2 * D] + blk[2 * D + 1];
    assert_true(blk[2 * D] > 0.0f && blk[2 * D + 1] > 0.0f && share <= 1.0f + 1e-6f);
    blk[2 * D] = blk[2 * D + 1] = 0.0f;
    got = score_joined(m, d, 1, user[1], item[1]);
    assert_memory_not_equal(&got, &want[1], sizeof got);
    /* 1. the store holds every event strictly before row 0's time (the tie excluded) */
    int cut = 0;
    while (f->events[cut].ts < f->t_tie) cut++;
    append(f, 0, cut);
    got = score_rpc(f, user[0], item[0]);
    assert_memory_equal(&got, &want[0], sizeof got);
    /* the tied event is not history: with it, the answer moves */
    append(f, cut, cut + 1);
    got = score_rpc(f, user[0], item[0]);
    assert_memory_not_equal(&got, &want[0], sizeof got);
    /* 2. every event: the rows after them, and a user without events */
    append(f, cut + 1, NEV);
    for (int r = 1; r < NROWS; r++) {
        got = score_rpc(f, user[r], item[r]);
        if (memcmp(&got, &want[r], sizeof got))
            fail_msg("row %d: server %.9g, trainer's join %.9g", r, got, want[r]);
    }
    moe_dataset_free(d);
    moe_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_join_equals_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_model_info_names_the_actions, setup, teardown),
    };
    grpc_init();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    grpc_shutdown();
    return rc;
}
