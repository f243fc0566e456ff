/* test_router_util.h — a small multi-domain catalogue for the router
 * tests: three FAISS Flat experts, one per domain (items near that
 * domain's centre), plus a popularity fallback over its own items. */
#ifndef MOEREC_TESTS_INDEX_TEST_ROUTER_UTIL_H
#define MOEREC_TESTS_INDEX_TEST_ROUTER_UTIL_H

#include "index/retrieval/retr_faiss.h"
#include "index/retrieval/retr_pop.h"
#include "index/retrieval/router.h"
#include "test_retr_util.h"

#define RD 8     /* dimension */
#define RDOM 3   /* domains */
#define RPER 300 /* items per domain */

typedef struct tr_world {
    mr_retr *ex[RDOM + 1]; /* domain experts, then popularity */
    float center[RDOM][RD];
    mr_router *rt;
} tr_world;

/* Domain d's centre: 4 * e_d; its items: centre + N(0, 1), ids d*1000 + i.
 * Popularity: items 9000..9019, item 9000 most popular. */
static inline void tr_world_make(tr_world *w, const router_config *cfg, mr_pool *pool) {
    mr_err e = {0};
    memset(w, 0, sizeof *w);
    for (int d = 0; d < RDOM; d++) {
        char name[16];
        snprintf(name, sizeof name, "dom%d", d);
        retr_faiss_config c = {
            .name = name, .dim = RD, .factory = "IDMap,Flat", .metric = RETR_METRIC_IP};
        if (retr_faiss_create(&w->ex[d], &c, &e)) fail_msg("%s", e.msg);
        float *x = tr_randn(100 + (uint64_t)d, RPER, RD);
        int64_t ids[RPER];
        for (int i = 0; i < RPER; i++) {
            x[i * RD + d] += 4.0f;
            ids[i] = d * 1000 + i;
        }
        if (retr_faiss_add(w->ex[d], x, ids, RPER, &e)) fail_msg("%s", e.msg);
        mr_floats_free(x);
        for (int t = 0; t < RD; t++) w->center[d][t] = t == d ? 4.0f : 0.0f;
    }
    retr_pop_config pc = {.name = "popular", .half_life_s = 3600};
    if (retr_pop_create(&w->ex[RDOM], &pc, &e)) fail_msg("%s", e.msg);
    int64_t it[20], ts[20];
    float wt[20];
    for (int i = 0; i < 20; i++) {
        it[i] = 9000 + i;
        ts[i] = 1000;
        wt[i] = (float)(20 - i);
    }
    if (retr_pop_add_events(w->ex[RDOM], it, ts, wt, 20, &e)) fail_msg("%s", e.msg);
    if (router_create(&w->rt, cfg, pool, &e)) fail_msg("%s", e.msg);
    for (int d = 0; d <= RDOM; d++)
        if (router_add_expert(w->rt, w->ex[d], 0, &e) != d) fail_msg("%s", e.msg);
    for (int d = 0; d < RDOM; d++)
        if (router_set_pilots(w->rt, d, w->center[d], 1, &e)) fail_msg("%s", e.msg);
}

static inline void tr_world_free(tr_world *w) {
    router_free(w->rt);
    for (int d = 0; d <= RDOM; d++) retr_free(w->ex[d]);
}

/* The default routing settings of the router tests. */
static inline router_config tr_cfg_default(void) {
    router_config c = {.dim = RD,
                       .temperature = 0.05f,
                       .top_p = 0.6f,
                       .max_experts = 2,
                       .fallback = "popular",
                       .fallback_weight = 0.1f};
    return c;
}

/* Two results hold the same candidates, field by field (struct padding is
 * not part of the answer). Needs cmocka.h included first. */
static inline void tr_same_cands(const router_result *a, const router_result *b) {
    assert_int_equal(a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        const router_cand *x = &a->cands[i], *y = &b->cands[i];
        assert_int_equal(x->id, y->id);
        assert_true(x->score == y->score && x->raw == y->raw && x->weight == y->weight);
        assert_int_equal(x->expert, y->expert);
        assert_int_equal(x->rank, y->rank);
        assert_int_equal(x->experts, y->experts);
    }
}

static inline router_query tr_query(const float *v) {
    router_query q = {.n_spaces = 1};
    q.vecs[0] = v;
    q.dims[0] = RD;
    return q;
}

#endif
