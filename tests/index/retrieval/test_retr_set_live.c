/* test_retr_set_live.c — live updates on a retriever set: an upserted
 * item is found by a search with its own vector, in the expert of its
 * column value (or its nearest pilot); an upsert with another value moves
 * it; a delete removes it from FAISS, popularity and MinHash experts;
 * events feed popularity; bad input changes nothing; items of a remote
 * expert's column value are not placed locally, and deletes skip remote
 * experts (their own server holds their items). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "index/retrieval/retr_callback.h"
#include "index/retrieval/retr_minhash.h"
#include "index/retrieval/retr_set_live.h"
#include "test_router_util.h"

typedef struct live_world {
    retr_set *set;
    float center[2][RD];
} live_world;

/* Experts genre_a, genre_b (Flat, 50 items each near their centre, with
 * pilots), popularity "popular" and MinHash "cooc". */
static void live_make(live_world *w, const char *column) {
    mr_err e = {0};
    retr_set_config sc = {.dim = RD,
                          .metric = RETR_METRIC_IP,
                          .expert_column = column,
                          .router = {.fallback = "popular"}};
    memset(w, 0, sizeof *w);
    if (retr_set_create(&w->set, &sc, NULL, &e)) fail_msg("%s", e.msg);
    for (int g = 0; g < 2; g++) {
        char name[RETR_NAME_MAX];
        retr_set_expert_name("genre", g ? "b" : "a", name);
        retr_faiss_config c = {
            .name = name, .dim = RD, .factory = "IDMap,Flat", .metric = RETR_METRIC_IP};
        mr_retr *r;
        if (retr_faiss_create(&r, &c, &e)) fail_msg("%s", e.msg);
        float *x = tr_randn(30 + (uint64_t)g, 50, RD);
        int64_t ids[50];
        for (int i = 0; i < 50; i++) {
            x[i * RD + g] += 4.0f;
            ids[i] = g * 100 + i;
        }
        w->center[g][g] = 4.0f;
        if (retr_faiss_add(r, x, ids, 50, &e)) fail_msg("%s", e.msg);
        mr_floats_free(x);
        if (retr_set_add(w->set, r, "IDMap,Flat", 0, 0, &e) != g) fail_msg("%s", e.msg);
        if (router_set_pilots(retr_set_router(w->set), g, w->center[g], 1, &e))
            fail_msg("%s", e.msg);
    }
    mr_retr *pop, *mh;
    retr_pop_config pc = {.name = "popular", .half_life_s = 3600};
    retr_minhash_config mc = {.name = "cooc", .seed = 1};
    if (retr_pop_create(&pop, &pc, &e) || retr_minhash_create(&mh, &mc, &e)) fail_msg("%s", e.msg);
    if (retr_set_add(w->set, pop, NULL, 0, 0, &e) != 2) fail_msg("%s", e.msg);
    if (retr_set_add(w->set, mh, NULL, 0, 0, &e) != 3) fail_msg("%s", e.msg);
}

static int holds(retr_set *s, const char *expert, int64_t id, const float *q) {
    mr_err e = {0};
    int64_t ids[200];
    float sc[200];
    mr_retr *r = retr_set_expert(s, expert);
    assert_non_null(r);
    if (retr_search(r, q, RD, 1, 200, NULL, ids, sc, &e)) fail_msg("%s", e.msg);
    for (int i = 0; i < 200 && ids[i] >= 0; i++)
        if (ids[i] == id) return 1;
    return 0;
}

static void test_upsert_places_and_moves(void **s) {
    (void)s;
    live_world w;
    live_make(&w, "genre");
    mr_err e = {0};
    float v[RD] = {0};
    v[1] = 10.0f; /* near genre_b's pilot */
    retr_live_item it = {.id = 777, .vec = v, .column = "a"};
    int64_t placed = -1;
    assert_int_equal(retr_set_upsert(w.set, &it, 1, &placed, &e), 0);
    assert_int_equal(placed, 1);
    assert_true(holds(w.set, "genre_a", 777, v)); /* the column wins over the pilot */
    assert_false(holds(w.set, "genre_b", 777, v));
    it.column = "b"; /* moves */
    assert_int_equal(retr_set_upsert(w.set, &it, 1, NULL, &e), 0);
    assert_false(holds(w.set, "genre_a", 777, v));
    assert_true(holds(w.set, "genre_b", 777, v));
    it.column = "unknown-genre"; /* no such expert: nearest pilot (b) */
    it.id = 778;
    assert_int_equal(retr_set_upsert(w.set, &it, 1, NULL, &e), 0);
    assert_true(holds(w.set, "genre_b", 778, v));
    assert_int_equal(retr_set_place(w.set, w.center[0], NULL), 0);
    /* The router finds the new item with its own vector as the query. */
    mr_arena a;
    mr_arena_init(&a, 1 << 16, 0);
    router_query q = tr_query(v);
    router_result r;
    assert_int_equal(
        router_retrieve(retr_set_router(w.set), &q, NULL, 5, NULL, 0, NULL, &a, &r, &e), 0);
    int found = 0;
    for (int i = 0; i < r.n; i++) found |= r.cands[i].id == 777;
    assert_true(found);
    /* A set without an expert column places by the nearest pilot. */
    live_world w2;
    live_make(&w2, NULL);
    it.column = "a";
    it.id = 779;
    assert_int_equal(retr_set_upsert(w2.set, &it, 1, NULL, &e), 0);
    assert_true(holds(w2.set, "genre_b", 779, v));
    /* An item without a vector leaves the FAISS experts. */
    it.vec = NULL;
    assert_int_equal(retr_set_upsert(w2.set, &it, 1, &placed, &e), 0);
    assert_int_equal(placed, 0);
    assert_false(holds(w2.set, "genre_b", 779, v));
    mr_arena_free(&a);
    retr_set_free(w.set);
    retr_set_free(w2.set);
}

static void test_delete_everywhere_and_events(void **s) {
    (void)s;
    live_world w;
    live_make(&w, "genre");
    mr_err e = {0};
    int64_t users[6] = {1, 2, 3, 1, 2, 3}, items[6] = {5, 5, 5, 6, 6, 6}, ts[6];
    for (int i = 0; i < 6; i++) ts[i] = 1000 + i;
    assert_int_equal(retr_set_add_events(w.set, users, items, ts, 6, &e), 0);
    mr_retr *pop = retr_set_expert(w.set, "popular"), *mh = retr_set_expert(w.set, "cooc");
    assert_true(retr_pop_count(pop, 5, 1005) > 2.9);
    assert_int_equal(retr_size(pop), 2);
    int64_t del[2] = {5, 12345}; /* one unknown: skipped */
    assert_int_equal(retr_set_delete(w.set, del, 2, &e), 0);
    assert_int_equal(retr_size(pop), 1);
    assert_int_equal(retr_size(mh), 1);
    assert_false(holds(w.set, "genre_a", 5, w.center[0]));
    int64_t ids[10];
    float sc[10];
    assert_int_equal(retr_search(pop, NULL, 0, 1, 10, NULL, ids, sc, &e), 0);
    assert_int_equal(ids[0], 6);
    assert_int_equal(ids[1], -1);
    retr_user u = {(int64_t[]){6}, 1}; /* 6 co-occurs with 5 only: nothing left */
    assert_int_equal(retr_search(mh, NULL, 0, 1, 10, &u, ids, sc, &e), 0);
    assert_int_equal(ids[0], -1);
    /* Events bring a deleted item back. */
    assert_int_equal(retr_set_add_events(w.set, users, items, ts, 3, &e), 0);
    assert_int_equal(retr_size(pop), 2);
    assert_int_equal(retr_size(mh), 2);
    assert_int_equal(retr_search(mh, NULL, 0, 1, 10, &u, ids, sc, &e), 0);
    assert_int_equal(ids[0], 5);
    retr_set_free(w.set);
}

static void test_bad_input_changes_nothing(void **s) {
    (void)s;
    live_world w;
    live_make(&w, "genre");
    mr_err e = {0};
    float v[RD] = {1};
    retr_live_item it[2] = {{.id = 900, .vec = v, .column = "a"}, {.id = -1, .vec = v}};
    assert_int_equal(retr_set_upsert(w.set, it, 2, NULL, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "negative"));
    assert_false(holds(w.set, "genre_a", 900, v));
    assert_int_equal(retr_set_delete(w.set, NULL, 3, &e), MR_EINVAL);
    assert_int_equal(retr_set_add_events(w.set, NULL, NULL, NULL, 1, &e), MR_EINVAL);
    retr_set_free(w.set);
}

/* expert_column round-trips through the manifest. */
static void test_expert_column_saved(void **s) {
    (void)s;
    live_world w;
    live_make(&w, "genre");
    mr_err e = {0};
    char *dir = tr_tmpdir(), path[512];
    snprintf(path, sizeof path, "%s/set", dir);
    assert_int_equal(retr_set_save(w.set, path, &e), 0);
    retr_set *back;
    assert_int_equal(retr_set_load(&back, path, NULL, 0, &e), 0);
    assert_string_equal(retr_set_expert_column(back), "genre");
    retr_set_free(back);
    retr_set_free(w.set);
    tr_rmdir(strdup(path));
    tr_rmdir(dir);
    char name[RETR_NAME_MAX];
    retr_set_expert_name("genre", "Sci Fi/x", name);
    assert_string_equal(name, "genre_Sci_Fi_x");
}

static int never_start(void *ctx, const float *q, int dim, int k, const retr_user *u,
                       int64_t deadline_ms, void **call, mr_err *e) {
    (void)ctx, (void)q, (void)dim, (void)k, (void)u, (void)deadline_ms, (void)call;
    return mr_err_set(e, MR_EUNAVAIL, "remote: down");
}

static int never_finish(void *ctx, void *call, int64_t *ids, float *scores, int k, mr_err *e) {
    (void)ctx, (void)call, (void)ids, (void)scores, (void)k;
    return mr_err_set(e, MR_EINTERNAL, "never started");
}

static void test_remote_expert_left_alone(void **s) {
    (void)s;
    live_world w;
    live_make(&w, "genre");
    mr_err e = {0};
    retr_callbacks cb = {never_start, never_finish, NULL, NULL};
    mr_retr *r;
    char name[RETR_NAME_MAX];
    retr_set_expert_name("genre", "c", name);
    assert_int_equal(retr_callback_create(&r, name, RD, &cb, NULL, &e), 0);
    retr_set_remote spec = {name, RD, "10.0.0.1:50051", name, ""};
    assert_int_equal(retr_set_add_remote(w.set, r, &spec, &e), 4);
    float v[RD] = {0};
    v[0] = 4;
    /* genre "c" is the remote expert's: not placed here */
    assert_int_equal(retr_set_place(w.set, v, "c"), -1);
    retr_live_item it = {7000, v, "c"};
    int64_t placed = -1;
    assert_int_equal(retr_set_upsert(w.set, &it, 1, &placed, &e), 0);
    assert_int_equal(placed, 0);
    assert_false(holds(w.set, "genre_a", 7000, v));
    /* genre "a" still goes to genre_a; a delete skips the remote expert */
    it.column = "a";
    assert_int_equal(retr_set_upsert(w.set, &it, 1, &placed, &e), 0);
    assert_int_equal(placed, 1);
    assert_true(holds(w.set, "genre_a", 7000, v));
    int64_t id = 7000;
    assert_int_equal(retr_set_delete(w.set, &id, 1, &e), 0);
    assert_false(holds(w.set, "genre_a", 7000, v));
    int64_t users[1] = {1}, items[1] = {7}, ts[1] = {1000};
    assert_int_equal(retr_set_add_events(w.set, users, items, ts, 1, &e), 0);
    retr_set_free(w.set);
}

/* Searches through the router on 2 threads while a writer upserts, moves
 * and deletes (run under ThreadSanitizer with -DMOEREC_TSAN=ON). */
typedef struct live_reader {
    retr_set *set;
    const float *q;
    atomic_int *stop;
    atomic_long n;
} live_reader;

static void *live_read(void *arg) {
    live_reader *r = arg;
    mr_arena a;
    mr_arena_init(&a, 1 << 16, 0);
    mr_err e = {0};
    while (!atomic_load(r->stop)) {
        router_query q = tr_query(r->q);
        router_result res;
        mr_arena_reset(&a);
        if (router_retrieve(retr_set_router(r->set), &q, NULL, 20, NULL, 0, NULL, &a, &res, &e))
            fail_msg("%s", e.msg);
        for (int i = 1; i < res.n; i++) assert_true(res.cands[i].id != res.cands[i - 1].id);
        atomic_fetch_add(&r->n, 1);
    }
    mr_arena_free(&a);
    return NULL;
}

static void test_concurrent_search_and_writes(void **s) {
    (void)s;
    live_world w;
    live_make(&w, "genre");
    mr_err e = {0};
    atomic_int stop = 0;
    live_reader rd[2] = {{w.set, w.center[0], &stop, 0}, {w.set, w.center[1], &stop, 0}};
    atomic_init(&rd[0].n, 0);
    atomic_init(&rd[1].n, 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, live_read, &rd[i]);
    float v[RD];
    for (int round = 0; round < 200; round++) {
        for (int j = 0; j < RD; j++) v[j] = (float)((round * 7 + j) % 5);
        retr_live_item it = {.id = 1000 + round % 20, .vec = v, .column = round % 2 ? "a" : "b"};
        assert_int_equal(retr_set_upsert(w.set, &it, 1, NULL, &e), 0);
        int64_t users[1] = {round}, items[1] = {1000 + round % 20}, ts[1] = {round};
        assert_int_equal(retr_set_add_events(w.set, users, items, ts, 1, &e), 0);
        if (round % 5 == 0) {
            int64_t del = 1000 + (round / 5) % 20;
            assert_int_equal(retr_set_delete(w.set, &del, 1, &e), 0);
        }
    }
    while (atomic_load(&rd[0].n) == 0 || atomic_load(&rd[1].n) == 0) sched_yield();
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    retr_set_free(w.set);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upsert_places_and_moves),
        cmocka_unit_test(test_delete_everywhere_and_events),
        cmocka_unit_test(test_bad_input_changes_nothing),
        cmocka_unit_test(test_expert_column_saved),
        cmocka_unit_test(test_remote_expert_left_alone),
        cmocka_unit_test(test_concurrent_search_and_writes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
