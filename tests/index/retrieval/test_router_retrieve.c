/* test_router_retrieve.c — the full retrieve over a three-domain catalogue
 * with a popularity fallback: budgets sum to k, the fallback is always
 * searched, candidates are unique and never excluded, attribution and
 * weights are kept, results are deterministic and the same with or without
 * a thread pool, RRF and all-experts modes, named experts, counters, and
 * clear errors for bad requests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>

#include "index/retrieval/retr_set.h"
#include "test_router_util.h"

static void check_result(const router_result *r, int k, const int64_t *ex, int n_ex) {
    int sum = 0;
    for (int i = 0; i <= RDOM; i++) sum += r->budgets[i];
    assert_int_equal(sum, k);
    assert_true(r->n <= k);
    for (int a = 0; a < r->n; a++) {
        const router_cand *c = &r->cands[a];
        assert_true(c->id >= 0);
        assert_true(c->experts & (1ull << c->expert));
        assert_true(r->budgets[c->expert] > 0);
        if (a) assert_true(r->cands[a - 1].score >= c->score);
        for (int b = 0; b < a; b++) assert_true(r->cands[b].id != c->id);
        for (int x = 0; x < n_ex; x++) assert_true(c->id != ex[x]);
        assert_true(c->weight == r->weights[c->expert]);
    }
}

static void test_routed_budgets_and_fallback(void **s) {
    (void)s;
    router_config c = tr_cfg_default();
    tr_world w;
    tr_world_make(&w, &c, NULL);
    mr_arena a;
    mr_arena_init(&a, 1 << 16, 0);
    mr_err e = {0};
    router_result r;
    for (int d = 0; d < RDOM; d++) {
        router_query q = tr_query(w.center[d]);
        assert_int_equal(router_retrieve(w.rt, &q, NULL, 50, NULL, 0, NULL, &a, &r, &e), 0);
        check_result(&r, 50, NULL, 0);
        assert_int_equal(r.n, 50);
        assert_int_equal(r.n_searched, 2); /* its domain + the fallback */
        assert_true(r.budgets[d] >= 40);
        assert_true(r.budgets[RDOM] >= 1);
        int from_dom = 0, from_pop = 0;
        for (int i = 0; i < r.n; i++) {
            from_dom += r.cands[i].id / 1000 == d && r.cands[i].id < 9000;
            from_pop += r.cands[i].id >= 9000;
            if (r.cands[i].id >= 9000) assert_int_equal(r.cands[i].expert, RDOM);
        }
        assert_int_equal(from_dom, r.budgets[d]);
        assert_int_equal(from_pop, r.budgets[RDOM]);
        assert_int_equal(r.cost, RPER); /* popularity scans no vectors */
    }
    router_expert_stats st;
    assert_int_equal(router_stats_get(w.rt, 1, &st), 0);
    assert_int_equal(st.routed, 1);
    assert_true(st.candidates >= 40);
    assert_int_equal(router_stats_get(w.rt, RDOM, &st), 0);
    assert_int_equal(st.fallback, 3);
    assert_int_equal(st.routed, 0);
    assert_int_equal(router_queries(w.rt), 3);
    mr_arena_free(&a);
    tr_world_free(&w);
}

static void test_exclusions_and_determinism(void **s) {
    (void)s;
    router_config c = tr_cfg_default();
    mr_pool *pool = mr_pool_create(3);
    tr_world w, wp;
    tr_world_make(&w, &c, NULL);
    tr_world_make(&wp, &c, pool);
    mr_arena a;
    mr_arena_init(&a, 1 << 16, 0);
    mr_err e = {0};
    float mid[RD] = {2, 2.02f, 0.3f, 0, 0, 0, 0, 0};
    router_query q = tr_query(mid);
    router_result r1, r2, r3;
    assert_int_equal(router_retrieve(w.rt, &q, NULL, 40, NULL, 0, NULL, &a, &r1, &e), 0);
    assert_int_equal(router_retrieve(w.rt, &q, NULL, 40, NULL, 0, NULL, &a, &r2, &e), 0);
    assert_int_equal(router_retrieve(wp.rt, &q, NULL, 40, NULL, 0, NULL, &a, &r3, &e), 0);
    assert_int_equal(r1.n, 40);
    assert_int_equal(r1.n_searched, 3); /* two domains + fallback */
    tr_same_cands(&r1, &r2);
    tr_same_cands(&r1, &r3); /* pool == inline */
    assert_memory_equal(r1.budgets, r3.budgets, sizeof(int) * (RDOM + 1));
    check_result(&r1, 40, NULL, 0);
    /* exclude the first 15 answers and a popular item: still 40, none of them */
    int64_t ex[16];
    for (int i = 0; i < 15; i++) ex[i] = r1.cands[i].id;
    ex[15] = 9000;
    router_result rx;
    assert_int_equal(router_retrieve(w.rt, &q, NULL, 40, ex, 16, NULL, &a, &rx, &e), 0);
    assert_int_equal(rx.n, 40);
    check_result(&rx, 40, ex, 16);
    mr_arena_free(&a);
    tr_world_free(&w);
    tr_world_free(&wp);
    mr_pool_free(pool);
}

static void test_modes_and_named_experts(void **s) {
    (void)s;
    router_config c = tr_cfg_default();
    tr_world w;
    tr_world_make(&w, &c, NULL);
    mr_arena a;
    mr_arena_init(&a, 1 << 16, 0);
    mr_err e = {0};
    router_query q = tr_query(w.center[2]);
    router_result r;
    router_options all = {.mode = ROUTER_MODE_ALL};
    assert_int_equal(router_retrieve(w.rt, &q, NULL, 30, NULL, 0, &all, &a, &r, &e), 0);
    assert_int_equal(r.n_searched, RDOM + 1);
    assert_int_equal(r.cost, RDOM * RPER);
    assert_int_equal(r.n, 30);
    for (int i = 0; i < 10; i++) assert_int_equal(r.cands[i].id / 1000, 2); /* weight wins */
    router_options all_nofb = {.mode = ROUTER_MODE_ALL, .no_fallback = 1};
    assert_int_equal(router_retrieve(w.rt, &q, NULL, 30, NULL, 0, &all_nofb, &a, &r, &e), 0);
    assert_int_equal(r.n_searched, RDOM);
    assert_int_equal(r.budgets[RDOM], 0);
    router_options rrf = {.merge = ROUTER_MERGE_RRF, .merge_set = 1};
    assert_int_equal(router_retrieve(w.rt, &q, NULL, 30, NULL, 0, &rrf, &a, &r, &e), 0);
    check_result(&r, 30, NULL, 0);
    for (int i = 0; i < r.n; i++) {
        float want = 1.0f / (60 + r.cands[i].rank + 1);
        assert_true(r.cands[i].score >= want * 0.999f); /* found once or more */
    }
    /* named: only these experts, even against the routing */
    const char *names[2] = {"dom0", "popular"};
    router_options named = {.experts = names, .n_experts = 2};
    assert_int_equal(router_retrieve(w.rt, &q, NULL, 20, NULL, 0, &named, &a, &r, &e), 0);
    assert_int_equal(r.n_searched, 2);
    for (int i = 0; i < r.n; i++) assert_true(r.cands[i].id < 1000 || r.cands[i].id >= 9000);
    /* a vector-free request can still be served by the popularity expert */
    const char *pop[1] = {"popular"};
    router_options only_pop = {.experts = pop, .n_experts = 1};
    router_query none = {.n_spaces = 0};
    assert_int_equal(router_retrieve(w.rt, &none, NULL, 5, NULL, 0, &only_pop, &a, &r, &e), 0);
    assert_int_equal(r.n, 5);
    assert_int_equal(r.cands[0].id, 9000);
    /* unknown name */
    const char *bad[1] = {"nope"};
    router_options unk = {.experts = bad, .n_experts = 1};
    assert_int_equal(router_retrieve(w.rt, &q, NULL, 5, NULL, 0, &unk, &a, &r, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "unknown retriever 'nope'"));
    /* no fallback on request */
    router_options nofb = {.no_fallback = 1};
    assert_int_equal(router_retrieve(w.rt, &q, NULL, 20, NULL, 0, &nofb, &a, &r, &e), 0);
    assert_int_equal(r.budgets[RDOM], 0);
    assert_int_equal(r.budgets[2], 20);
    mr_arena_free(&a);
    tr_world_free(&w);
}

static void test_dedupe_across_experts(void **s) {
    (void)s;
    router_config c = {.dim = RD};
    tr_world w;
    tr_world_make(&w, &c, NULL);
    /* a second expert over the same items as dom1 */
    retr_faiss_config fc = {.name = "dom1copy", .dim = RD, .factory = "IDMap,Flat"};
    mr_retr *copy = NULL;
    mr_err e = {0};
    assert_int_equal(retr_faiss_create(&copy, &fc, &e), 0);
    float *x = tr_randn(101, RPER, RD);
    int64_t ids[RPER];
    for (int i = 0; i < RPER; i++) {
        x[i * RD + 1] += 4.0f;
        ids[i] = 1000 + i;
    }
    assert_int_equal(retr_faiss_add(copy, x, ids, RPER, &e), 0);
    assert_int_equal(router_add_expert(w.rt, copy, 0, &e), RDOM + 1);
    for (int d = 0; d < RDOM; d++) assert_int_equal(router_set_pilots(w.rt, d, NULL, 0, &e), 0);
    mr_arena a;
    mr_arena_init(&a, 1 << 16, 0);
    const char *names[2] = {"dom1", "dom1copy"};
    router_options o = {.experts = names, .n_experts = 2};
    router_query q = tr_query(w.center[1]);
    router_result r;
    assert_int_equal(router_retrieve(w.rt, &q, NULL, 20, NULL, 0, &o, &a, &r, &e), 0);
    assert_int_equal(r.n, 20);
    for (int i = 0; i < r.n; i++)
        for (int j = 0; j < i; j++) assert_true(r.cands[i].id != r.cands[j].id);
    int both = 0;
    for (int i = 0; i < r.n; i++)
        both += r.cands[i].experts == ((1ull << 1) | (1ull << (RDOM + 1)));
    assert_true(both >= 15);            /* identical experts: nearly every item found twice */
    assert_int_equal(r.budgets[1], 10); /* no pilots: named experts share k evenly */
    assert_int_equal(r.budgets[RDOM + 1], 10);
    mr_arena_free(&a);
    router_free(w.rt);
    w.rt = NULL;
    retr_free(copy);
    mr_floats_free(x);
    tr_world_free(&w);
}

/* Experts that split one embedding space: ALL + RAW merge is exactly one
 * global search over the union. */
static void test_raw_merge_equals_global(void **s) {
    (void)s;
    router_config c = {.dim = RD, .merge = ROUTER_MERGE_RAW};
    tr_world w;
    tr_world_make(&w, &c, NULL);
    float *all = mr_floats_alloc((size_t)RDOM * RPER * RD);
    int64_t ids[RDOM * RPER];
    for (int d = 0; d < RDOM; d++) { /* the same vectors tr_world_make drew */
        float *x = tr_randn(100 + (uint64_t)d, RPER, RD);
        for (int i = 0; i < RPER; i++) {
            x[i * RD + d] += 4.0f;
            ids[d * RPER + i] = d * 1000 + i;
        }
        memcpy(all + (size_t)d * RPER * RD, x, sizeof(float) * RPER * RD);
        mr_floats_free(x);
    }
    mr_arena a;
    mr_arena_init(&a, 1 << 16, 0);
    mr_err e = {0};
    const char *doms[RDOM] = {"dom0", "dom1", "dom2"};
    router_options o = {.mode = ROUTER_MODE_ALL, .experts = doms, .n_experts = RDOM};
    float q[RD] = {1.5f, 1.0f, 0.5f, 0.2f, -0.3f, 0, 0.1f, 0};
    router_query rq = tr_query(q);
    router_result r;
    int64_t want[25];
    float wsc[25];
    tr_brute(all, ids, NULL, RDOM * RPER, RD, q, RETR_METRIC_IP, 25, want, wsc);
    assert_int_equal(router_retrieve(w.rt, &rq, NULL, 25, NULL, 0, &o, &a, &r, &e), 0);
    assert_int_equal(r.n, 25);
    for (int i = 0; i < 25; i++) {
        assert_int_equal(r.cands[i].id, want[i]);
        assert_true(fabsf(r.cands[i].score - wsc[i]) < 1e-4f);
        assert_true(r.cands[i].score == r.cands[i].raw);
    }
    mr_floats_free(all);
    mr_arena_free(&a);
    tr_world_free(&w);
}

/* Several request threads share one router (and its pool) while a writer
 * adds popularity events: every answer matches the sequential one for its
 * query (the routed FAISS experts are not written) and the counters add up. */
typedef struct conc_req {
    tr_world *w;
    int id, bad, calls;
    int64_t want[3][20];
} conc_req;

static void *conc_req_run(void *arg) {
    conc_req *c = arg;
    mr_arena a;
    mr_arena_init(&a, 1 << 16, 0);
    router_options o = {.no_fallback = 1};
    for (int it = 0; it < 60; it++) {
        int d = (it + c->id) % RDOM;
        router_query q = tr_query(c->w->center[d]);
        router_result r;
        mr_err e = {0};
        if (router_retrieve(c->w->rt, &q, NULL, 20, NULL, 0, &o, &a, &r, &e) || r.n != 20) {
            c->bad = 1;
            continue;
        }
        for (int j = 0; j < 20; j++) c->bad |= r.cands[j].id != c->want[d][j];
        c->calls++;
        mr_arena_reset(&a);
    }
    mr_arena_free(&a);
    return NULL;
}

static void test_concurrent_requests(void **s) {
    (void)s;
    router_config c = tr_cfg_default();
    mr_pool *pool = mr_pool_create(2);
    tr_world w;
    tr_world_make(&w, &c, pool);
    mr_arena a;
    mr_arena_init(&a, 1 << 16, 0);
    mr_err e = {0};
    conc_req req[3];
    router_options o = {.no_fallback = 1};
    for (int d = 0; d < RDOM; d++) {
        router_query q = tr_query(w.center[d]);
        router_result r;
        assert_int_equal(router_retrieve(w.rt, &q, NULL, 20, NULL, 0, &o, &a, &r, &e), 0);
        for (int t = 0; t < 3; t++)
            for (int j = 0; j < 20; j++) req[t].want[d][j] = r.cands[j].id;
    }
    pthread_t th[3];
    for (int t = 0; t < 3; t++) {
        req[t].w = &w;
        req[t].id = t;
        req[t].bad = req[t].calls = 0;
        pthread_create(&th[t], NULL, conc_req_run, &req[t]);
    }
    for (int i = 0; i < 200; i++) { /* a writer on the (unrouted) popularity expert */
        int64_t item = 9100 + i % 7, ts = 2000 + i;
        assert_int_equal(retr_pop_add_events(w.ex[RDOM], &item, &ts, NULL, 1, &e), 0);
        int64_t ids[5];
        float sc[5];
        assert_int_equal(retr_search(w.ex[RDOM], NULL, 0, 1, 5, NULL, ids, sc, &e), 0);
    }
    int calls = 0;
    for (int t = 0; t < 3; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(req[t].bad, 0);
        calls += req[t].calls;
    }
    assert_int_equal(calls, 180);
    assert_int_equal(router_queries(w.rt), (uint64_t)(RDOM + calls));
    uint64_t routed = 0;
    for (int d = 0; d < RDOM; d++) {
        router_expert_stats st;
        router_stats_get(w.rt, d, &st);
        routed += st.routed;
    }
    assert_int_equal(routed, (uint64_t)(RDOM + calls)); /* one domain per query */
    mr_arena_free(&a);
    tr_world_free(&w);
    mr_pool_free(pool);
}

static void test_bad_requests(void **s) {
    (void)s;
    router_config c = tr_cfg_default();
    c.k_max = 100;
    tr_world w;
    tr_world_make(&w, &c, NULL);
    mr_arena a;
    mr_arena_init(&a, 1 << 16, 0);
    mr_err e = {0};
    router_result r;
    router_query q = tr_query(w.center[0]);
    assert_int_equal(router_retrieve(w.rt, &q, NULL, 0, NULL, 0, NULL, &a, &r, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "k = 0"));
    assert_int_equal(router_retrieve(w.rt, &q, NULL, 101, NULL, 0, NULL, &a, &r, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "[1, 100]"));
    q.dims[0] = RD + 1;
    assert_int_equal(router_retrieve(w.rt, &q, NULL, 10, NULL, 0, NULL, &a, &r, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "dimension"));
    float nan[RD] = {1, NAN};
    q = tr_query(nan);
    assert_int_equal(router_retrieve(w.rt, &q, NULL, 10, NULL, 0, NULL, &a, &r, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "NaN"));
    q = tr_query(w.center[0]);
    assert_int_equal(router_retrieve(w.rt, &q, NULL, 10, NULL, -1, NULL, &a, &r, &e), MR_EINVAL);
    router_options m = {.merge = 9, .merge_set = 1};
    assert_int_equal(router_retrieve(w.rt, &q, NULL, 10, NULL, 0, &m, &a, &r, &e), MR_EINVAL);
    router_options md = {.mode = (router_mode)7};
    assert_int_equal(router_retrieve(w.rt, &q, NULL, 10, NULL, 0, &md, &a, &r, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "mode"));
    router_query none = {.n_spaces = 0};
    assert_int_equal(router_retrieve(w.rt, &none, NULL, 10, NULL, 0, NULL, &a, &r, &e), MR_EINVAL);
    /* an arena that is too small fails cleanly */
    mr_arena tiny;
    mr_arena_init(&tiny, 64, 256);
    assert_int_equal(router_retrieve(w.rt, &q, NULL, 100, NULL, 0, NULL, &tiny, &r, &e), MR_ENOMEM);
    mr_arena_free(&tiny);
    assert_int_equal(router_queries(w.rt), 0); /* failures are not counted as served */
    mr_arena_free(&a);
    tr_world_free(&w);
}

static int cmp_id(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Budget an expert cannot fill passes on (issue 15, item 6): a retriever
 * set saved and loaded from disk with experts of 10, 200 and 2000 items
 * (the query routes to the smallest) and a popularity fallback of 40
 * items, 20 of them also in the big expert. For every k up to the limit,
 * Retrieve(k) returns min(k, distinct items indexed) unique items, with
 * and without exclusions. */
static void test_budget_passes_on_for_every_k(void **s) {
    (void)s;
    mr_err e = {0};
    retr_set_config sc = {
        .dim = RD, .metric = RETR_METRIC_IP, .router = {.max_experts = 1, .fallback = "popular"}};
    retr_set *set;
    if (retr_set_create(&set, &sc, NULL, &e)) fail_msg("%s", e.msg);
    const int sizes[3] = {10, 200, 2000};
    float center[3][RD] = {{0}};
    for (int d = 0; d < 3; d++) {
        char name[16];
        snprintf(name, sizeof name, "part%d", d);
        retr_faiss_config c = {
            .name = name, .dim = RD, .factory = "IDMap,Flat", .metric = RETR_METRIC_IP};
        mr_retr *r;
        if (retr_faiss_create(&r, &c, &e)) fail_msg("%s", e.msg);
        float *x = tr_randn(7 + (uint64_t)d, sizes[d], RD);
        int64_t *ids = malloc((size_t)sizes[d] * sizeof *ids);
        for (int i = 0; i < sizes[d]; i++) {
            x[i * RD + d] += 4.0f;
            ids[i] = d * 10000 + i;
        }
        center[d][d] = 4.0f;
        if (retr_faiss_add(r, x, ids, sizes[d], &e)) fail_msg("%s", e.msg);
        mr_floats_free(x);
        free(ids);
        if (retr_set_add(set, r, "IDMap,Flat", 0, 0, &e) != d) fail_msg("%s", e.msg);
        if (router_set_pilots(retr_set_router(set), d, center[d], 1, &e)) fail_msg("%s", e.msg);
    }
    retr_pop_config pc = {.name = "popular", .half_life_s = 3600};
    mr_retr *pop;
    if (retr_pop_create(&pop, &pc, &e)) fail_msg("%s", e.msg);
    int64_t it[40], ts[40];
    for (int i = 0; i < 40; i++) {
        it[i] = i < 20 ? 20000 + i : 90000 + i; /* 20 shared with part2 */
        ts[i] = 1000;
    }
    if (retr_pop_add_events(pop, it, ts, NULL, 40, &e)) fail_msg("%s", e.msg);
    if (retr_set_add(set, pop, NULL, 0, 0, &e) != 3) fail_msg("%s", e.msg);
    char *dir = tr_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/set", dir);
    if (retr_set_save(set, path, &e)) fail_msg("%s", e.msg);
    retr_set_free(set);
    if (retr_set_load(&set, path, NULL, 0, &e)) fail_msg("%s", e.msg);
    mr_router *rt = retr_set_router(set);
    const int total = 10 + 200 + 2000 + 20;
    const int ks[] = {1,   2,    9,    10,   11,   50,   199,  210,  211,
                      386, 1000, 1001, 2000, 2209, 2230, 2231, 5000, RETR_K_MAX};
    int64_t excl[5] = {0, 1, 10000, 20005, 90030}; /* all indexed */
    mr_arena a;
    mr_arena_init(&a, 1 << 20, 0);
    for (int x = 0; x < 2; x++)
        for (size_t t = 0; t < sizeof ks / sizeof *ks; t++) {
            int k = ks[t], n_ex = x ? 5 : 0, want = k < total - n_ex ? k : total - n_ex;
            router_query q = tr_query(center[0]); /* routes to part0, 10 items */
            router_result r;
            mr_arena_reset(&a);
            if (router_retrieve(rt, &q, NULL, k, excl, n_ex, NULL, &a, &r, &e))
                fail_msg("k=%d: %s", k, e.msg);
            if (r.n != want) fail_msg("k=%d excl=%d: %d items, want %d", k, n_ex, r.n, want);
            int64_t *seen = malloc((size_t)r.n * sizeof *seen);
            for (int i = 0; i < r.n; i++) seen[i] = r.cands[i].id;
            qsort(seen, (size_t)r.n, sizeof *seen, cmp_id);
            for (int i = 1; i < r.n; i++) assert_true(seen[i] != seen[i - 1]);
            for (int i = 0; i < r.n; i++)
                for (int j = 0; j < n_ex; j++) assert_true(seen[i] != excl[j]);
            free(seen);
            if (k >= 11 && !x) { /* budget 10 of 11 and more: the routed expert is all in */
                int from0 = 0;
                for (int i = 0; i < r.n; i++) from0 += r.cands[i].id < 10000;
                assert_int_equal(from0, 10);
            }
        }
    router_query q = tr_query(center[0]);
    router_result r;
    assert_int_equal(router_retrieve(rt, &q, NULL, RETR_K_MAX + 1, NULL, 0, NULL, &a, &r, &e),
                     MR_EINVAL);
    mr_arena_free(&a);
    retr_set_free(set);
    tr_rmdir(strdup(path));
    tr_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routed_budgets_and_fallback),
        cmocka_unit_test(test_exclusions_and_determinism),
        cmocka_unit_test(test_modes_and_named_experts),
        cmocka_unit_test(test_dedupe_across_experts),
        cmocka_unit_test(test_raw_merge_equals_global),
        cmocka_unit_test(test_concurrent_requests),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_budget_passes_on_for_every_k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
