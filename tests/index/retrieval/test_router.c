/* test_router.c — the routing rule: softmax, the top-p set (the same cases
 * as the ranker's top-p gate: smallest prefix whose cumulative sum exceeds
 * p, at least one, at most max), budget split (sums to k, >= 1 each when
 * k >= n, proportional), a query equal to a pilot routes to its expert,
 * the fallback is always kept, and setup/bad-input errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "index/retrieval/router_int.h"
#include "test_router_util.h"

static void test_softmax(void **s) {
    (void)s;
    float sc[4] = {0.9f, 0.1f, 0.5f, 0.5f}, p[4];
    router_softmax(sc, 4, 0.1f, p);
    float sum = p[0] + p[1] + p[2] + p[3];
    assert_true(fabsf(sum - 1) < 1e-5f);
    assert_true(p[0] > p[2] && p[2] > p[1]);
    assert_true(p[2] == p[3]);
    assert_true(fabsf(p[0] / p[2] - expf(4.0f)) < 1e-2f); /* exp((0.9-0.5)/0.1) */
    router_softmax(sc, 4, 1000.0f, p);                    /* hot: nearly uniform */
    for (int i = 0; i < 4; i++) assert_true(fabsf(p[i] - 0.25f) < 1e-3f);
}

static void expect_top_p(const float *probs, int n, float p, int max_keep, const int *want,
                         int nwant) {
    int out[ROUTER_MAX_EXPERTS];
    int got = router_top_p(probs, n, p, max_keep, out);
    assert_int_equal(got, nwant);
    for (int i = 0; i < nwant; i++) assert_int_equal(out[i], want[i]);
}

static void test_top_p_cases(void **s) {
    (void)s;
    float a[3] = {0.5f, 0.3f, 0.2f};
    expect_top_p(a, 3, 0.4f, 3, (int[]){0}, 1);    /* 0.5 > 0.4 already */
    expect_top_p(a, 3, 0.6f, 3, (int[]){0, 1}, 2); /* 0.5, 0.8 > 0.6 */
    expect_top_p(a, 3, 0.75f, 3, (int[]){0, 1}, 2);
    expect_top_p(a, 3, 0.85f, 3, (int[]){0, 1, 2}, 3);
    expect_top_p(a, 3, 1.0f, 3, (int[]){0, 1, 2}, 3); /* never exceeds 1: all */
    expect_top_p(a, 3, 0.99f, 2, (int[]){0, 1}, 2);   /* capped at max */
    expect_top_p(a, 3, 0.99f, 1, (int[]){0}, 1);
    float b[3] = {0.1f, 0.6f, 0.3f}; /* unsorted input */
    expect_top_p(b, 3, 0.5f, 3, (int[]){1}, 1);
    expect_top_p(b, 3, 0.7f, 3, (int[]){1, 2}, 2);
    float t[4] = {0.25f, 0.25f, 0.25f, 0.25f}; /* ties: lower index first */
    expect_top_p(t, 4, 0.4f, 4, (int[]){0, 1}, 2);
    float neg[3] = {-1.0f, 0.7f, 0.3f}; /* < 0: not routable */
    expect_top_p(neg, 3, 0.99f, 3, (int[]){1, 2}, 2);
    float none[2] = {-1.0f, -1.0f};
    int out[2];
    assert_int_equal(router_top_p(none, 2, 0.5f, 2, out), 0);
}

static void test_split_budget(void **s) {
    (void)s;
    mr_rng g;
    mr_rng_seed(&g, 3);
    for (int trial = 0; trial < 2000; trial++) {
        int n = 1 + (int)mr_rng_below(&g, 10), k = 1 + (int)mr_rng_below(&g, 300);
        float w[10];
        double sum = 0;
        for (int i = 0; i < n; i++) {
            w[i] = mr_rng_below(&g, 5) ? (float)mr_rng_uniform(&g) : 0.0f;
            sum += w[i];
        }
        int b[10], tot = 0;
        router_split_budget(w, n, k, b);
        for (int i = 0; i < n; i++) {
            assert_true(b[i] >= 0);
            tot += b[i];
            if (k >= n) assert_true(b[i] >= 1);
            double share = sum > 0 ? w[i] / sum * k : (double)k / n;
            if (share >= n) assert_true(fabs(b[i] - share) <= n); /* proportional */
        }
        assert_int_equal(tot, k);
    }
    float w[3] = {0.6f, 0.3f, 0.1f};
    int b[3];
    router_split_budget(w, 3, 10, b);
    assert_int_equal(b[0], 6);
    assert_int_equal(b[1], 3);
    assert_int_equal(b[2], 1);
    router_split_budget(w, 3, 2, b); /* k < n: the heaviest get one each */
    assert_int_equal(b[0] + b[1] + b[2], 2);
    assert_int_equal(b[2], 0);
}

/* The checkers of the router's invariants on good and corrupted values. */
static void test_budget_and_result_checkers(void **s) {
    (void)s;
    const int good[3] = {6, 3, 1}, zero_ok[3] = {1, 1, 0}, bad_sum[3] = {6, 3, 2},
              neg[3] = {7, 4, -1}, starved[3] = {10, 0, 0};
    assert_true(router_budget_check(good, 3, 10));
    assert_true(router_budget_check(zero_ok, 3, 2)); /* k < n: some get nothing */
    assert_false(router_budget_check(bad_sum, 3, 10));
    assert_false(router_budget_check(neg, 3, 10));
    assert_false(router_budget_check(starved, 3, 10)); /* k >= n: each gets one */

    int budgets[2] = {2, 0};
    router_cand c[2] = {{.id = 5, .score = 2.0f, .expert = 0, .experts = 1},
                        {.id = 9, .score = 1.0f, .expert = 0, .experts = 3}};
    router_result res = {.cands = c, .n = 2, .budgets = budgets};
    assert_true(router_result_check(&res, 2, 2));
    assert_false(router_result_check(&res, 2, 1)); /* more than k */
    c[1].expert = 1;                               /* expert 1 was not searched */
    assert_false(router_result_check(&res, 2, 2));
    budgets[1] = 1;
    assert_true(router_result_check(&res, 2, 2));
    c[1].experts = 1; /* attributed to an expert that did not return it */
    assert_false(router_result_check(&res, 2, 2));
    c[1].experts = 3;
    c[1].score = 3.0f; /* out of order */
    assert_false(router_result_check(&res, 2, 2));
    c[1].score = 2.0f;
    c[1].id = 5; /* the same id twice */
    assert_false(router_result_check(&res, 2, 2));
}

static void test_pilot_routes_to_its_expert(void **s) {
    (void)s;
    router_config cfg = {
        .dim = RD, .temperature = 0.05f, .top_p = 0.6f, .max_experts = 2, .fallback = "popular"};
    tr_world w;
    tr_world_make(&w, &cfg, NULL);
    assert_int_equal(router_n_experts(w.rt), RDOM + 1);
    float probs[RDOM + 1];
    int kept[RDOM + 1];
    mr_err e = {0};
    for (int d = 0; d < RDOM; d++) {
        int n = router_route(w.rt, w.center[d], RD, 0, probs, kept, &e);
        assert_int_equal(n, 2); /* its expert + the fallback */
        assert_int_equal(kept[d], 1);
        assert_int_equal(kept[RDOM], 2);
        for (int o = 0; o < RDOM; o++)
            if (o != d) {
                assert_int_equal(kept[o], 0);
                assert_true(probs[d] > probs[o]);
            }
        assert_true(probs[RDOM] == 0); /* no pilots: never routed, only fallback */
        assert_true(fabsf(probs[0] + probs[1] + probs[2] - 1) < 1e-5f);
    }
    /* halfway between domains 0 and 1: both are needed to pass p */
    float mid[RD] = {2, 2, 0, 0, 0, 0, 0, 0};
    assert_int_equal(router_route(w.rt, mid, RD, 0, probs, kept, &e), 3);
    assert_true(kept[0] == 1 && kept[1] == 1 && kept[2] == 0);
    /* p = 1 would keep all three, but max_experts = 2 */
    assert_int_equal(router_route(w.rt, mid, RD, 1.0f, probs, kept, &e), 3);
    assert_int_equal(kept[2], 0);
    /* deterministic */
    float p2[RDOM + 1];
    int k2[RDOM + 1];
    router_route(w.rt, mid, RD, 0, p2, k2, &e);
    router_route(w.rt, mid, RD, 0, probs, kept, &e);
    assert_memory_equal(p2, probs, sizeof p2);
    assert_memory_equal(k2, kept, sizeof k2);
    /* bad input */
    assert_int_equal(router_route(w.rt, mid, RD - 1, 0, probs, kept, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "dimension"));
    mid[3] = NAN;
    assert_int_equal(router_route(w.rt, mid, RD, 0, probs, kept, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "NaN"));
    tr_world_free(&w);
}

static void test_setup_errors(void **s) {
    (void)s;
    mr_router *rt = NULL;
    mr_err e = {0};
    router_config bad = {.dim = 0};
    assert_int_equal(router_create(&rt, &bad, NULL, &e), MR_EINVAL);
    router_config c = {.dim = RD, .top_p = 1.5f};
    assert_int_equal(router_create(&rt, &c, NULL, &e), MR_EINVAL);
    c.top_p = 0.5f;
    c.temperature = -1;
    assert_int_equal(router_create(&rt, &c, NULL, &e), MR_EINVAL);
    c.temperature = 0;
    c.max_experts = ROUTER_MAX_EXPERTS + 1;
    assert_int_equal(router_create(&rt, &c, NULL, &e), MR_EINVAL);
    c.max_experts = 0;
    c.fallback = "bad name";
    assert_int_equal(router_create(&rt, &c, NULL, &e), MR_EINVAL);
    c.fallback = NULL;
    assert_int_equal(router_create(&rt, &c, NULL, &e), 0);
    float probs[1];
    int kept[1];
    assert_int_equal(router_route(rt, NULL, RD, 0, probs, kept, &e), MR_ESTATE);
    assert_non_null(strstr(e.msg, "pilots"));
    mr_retr *p = NULL;
    retr_pop_config pc = {.name = "popular"};
    assert_int_equal(retr_pop_create(&p, &pc, &e), 0);
    assert_int_equal(router_add_expert(rt, p, 0, &e), 0);
    assert_int_equal(router_add_expert(rt, p, 0, &e), MR_EEXIST);
    assert_int_equal(router_add_expert(rt, NULL, 0, &e), MR_EINVAL);
    assert_int_equal(router_find(rt, "popular", &e), 0);
    assert_int_equal(router_find(rt, "nope", &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "unknown retriever 'nope' (known: popular)"));
    assert_string_equal(router_expert_name(rt, 0), "popular");
    assert_string_equal(router_expert_name(rt, 5), "?");
    float pil[RD] = {1};
    assert_int_equal(router_set_pilots(rt, 3, pil, 1, &e), MR_EINVAL);
    pil[0] = NAN;
    assert_int_equal(router_set_pilots(rt, 0, pil, 1, &e), MR_EINVAL);
    assert_int_equal(router_n_pilots(rt, 0), 0);
    router_free(rt);
    retr_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_top_p_cases),
        cmocka_unit_test(test_split_budget),
        cmocka_unit_test(test_budget_and_result_checkers),
        cmocka_unit_test(test_pilot_routes_to_its_expert),
        cmocka_unit_test(test_setup_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
