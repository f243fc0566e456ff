/* test_retr_pop.c — the popularity expert: decayed counts follow the
 * half-life formula, recent events outrank old ones of equal weight, the
 * top list refreshes only after new events (and not more often than
 * refresh_ms), answers need no query vector, bad events are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "index/retrieval/retr_file.h"
#include "index/retrieval/retr_pop.h"
#include "test_retr_util.h"

static mr_retr *make(int refresh_ms) {
    retr_pop_config c = {.name = "pop", .half_life_s = 1.0, .refresh_ms = refresh_ms};
    mr_retr *r = NULL;
    mr_err e = {0};
    assert_int_equal(retr_pop_create(&r, &c, &e), 0);
    assert_int_equal(r->dim, 0);
    return r;
}

static void test_decay_formula(void **s) {
    (void)s;
    mr_retr *r = make(0);
    /* item 1: weight 1 at t=0 and weight 2 at t=500ms; item 2: 3 events at 1000ms */
    int64_t it[5] = {1, 1, 2, 2, 2}, ts[5] = {0, 500, 1000, 1000, 1000};
    float w[5] = {1, 2, 1, 1, 1};
    mr_err e = {0};
    assert_int_equal(retr_pop_add_events(r, it, ts, w, 5, &e), 0);
    double c1 = retr_pop_count(r, 1, 2000);
    double want1 = 1.0 * pow(2, -2.0) + 2.0 * pow(2, -1.5);
    assert_true(fabs(c1 - want1) < 1e-9);
    assert_true(fabs(retr_pop_count(r, 2, 2000) - 1.5) < 1e-9);
    assert_true(retr_pop_count(r, 99, 2000) == 0);
    /* out-of-order event: same result as in order */
    int64_t late_it = 1, late_ts = 250;
    assert_int_equal(retr_pop_add_events(r, &late_it, &late_ts, NULL, 1, &e), 0);
    assert_true(fabs(retr_pop_count(r, 1, 2000) - (want1 + pow(2, -1.75))) < 1e-9);
    retr_free(r);
}

static void test_ranking_and_scores(void **s) {
    (void)s;
    mr_retr *r = make(0);
    mr_err e = {0};
    /* item 10: 4 events long ago (t=0); item 20: 2 events at t=3s; item 30: 1 at t=3s.
     * At t=3s: 10 -> 4/8 = 0.5, 20 -> 2, 30 -> 1. */
    int64_t it[7] = {10, 10, 10, 10, 20, 20, 30}, ts[7] = {0, 0, 0, 0, 3000, 3000, 3000};
    assert_int_equal(retr_pop_add_events(r, it, ts, NULL, 7, &e), 0);
    int64_t ids[2 * 5];
    float sc[2 * 5];
    assert_int_equal(retr_search(r, NULL, 0, 2, 5, NULL, ids, sc, &e), 0);
    int64_t want[3] = {20, 30, 10};
    float wsc[3] = {2.0f, 1.0f, 0.5f};
    for (int q = 0; q < 2; q++) { /* every query row gets the same answer */
        for (int j = 0; j < 3; j++) {
            assert_int_equal(ids[q * 5 + j], want[j]);
            assert_true(fabsf(sc[q * 5 + j] - wsc[j]) < 1e-5f);
        }
        assert_int_equal(ids[q * 5 + 3], -1);
    }
    assert_int_equal(retr_size(r), 3);
    retr_free(r);
}

static void test_refresh_interval(void **s) {
    (void)s;
    mr_retr *r = make(3600 * 1000); /* re-sort at most hourly */
    mr_err e = {0};
    int64_t a = 1, b = 2, t0 = 0;
    assert_int_equal(retr_pop_add_events(r, &a, &t0, NULL, 1, &e), 0);
    int64_t ids[2];
    float sc[2];
    assert_int_equal(retr_search(r, NULL, 0, 1, 2, NULL, ids, sc, &e), 0); /* first sort */
    assert_int_equal(ids[0], 1);
    float w = 10;
    assert_int_equal(retr_pop_add_events(r, &b, &t0, &w, 1, &e), 0);
    assert_int_equal(retr_search(r, NULL, 0, 1, 2, NULL, ids, sc, &e), 0);
    assert_int_equal(ids[0], 1); /* stale list until the interval passes */
    assert_int_equal(ids[1], -1);
    retr_free(r);
    r = make(0); /* refresh_ms = 0: every search after events sees them */
    assert_int_equal(retr_pop_add_events(r, &a, &t0, NULL, 1, &e), 0);
    assert_int_equal(retr_search(r, NULL, 0, 1, 2, NULL, ids, sc, &e), 0);
    assert_int_equal(retr_pop_add_events(r, &b, &t0, &w, 1, &e), 0);
    assert_int_equal(retr_search(r, NULL, 0, 1, 2, NULL, ids, sc, &e), 0);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 1);
    retr_free(r);
}

static void test_top_cap_many_items(void **s) {
    (void)s;
    retr_pop_config c = {.name = "p", .half_life_s = 100, .top_cap = 50};
    mr_retr *r = NULL;
    mr_err e = {0};
    assert_int_equal(retr_pop_create(&r, &c, &e), 0);
    enum { N = 3000 };
    int64_t *it = malloc(N * sizeof *it), *ts = malloc(N * sizeof *ts);
    float *w = malloc(N * sizeof *w);
    mr_rng g;
    mr_rng_seed(&g, 5);
    for (int i = 0; i < N; i++) {
        it[i] = i;
        ts[i] = (int64_t)mr_rng_below(&g, 100000);
        w[i] = 1.0f + (float)mr_rng_below(&g, 5);
    }
    assert_int_equal(retr_pop_add_events(r, it, ts, w, N, &e), 0);
    int64_t ids[60];
    float sc[60];
    assert_int_equal(retr_search(r, NULL, 0, 1, 60, NULL, ids, sc, &e), 0);
    /* the 50 kept are exactly the 50 best by the count formula, in order */
    int64_t now = 0;
    for (int i = 0; i < N; i++) now = ts[i] > now ? ts[i] : now;
    for (int j = 0; j < 50; j++) {
        assert_true(ids[j] >= 0);
        if (j) assert_true(sc[j - 1] >= sc[j]);
        double cj = retr_pop_count(r, ids[j], now);
        assert_true(fabs(cj - sc[j]) < 1e-4 * cj);
    }
    assert_int_equal(ids[50], -1);
    int better = 0;
    for (int i = 0; i < N; i++) better += retr_pop_count(r, i, now) > sc[49] * (1 + 1e-6);
    assert_true(better <= 49);
    free(it);
    free(ts);
    free(w);
    retr_free(r);
}

static void test_bad_events(void **s) {
    (void)s;
    mr_retr *r = make(0);
    mr_err e = {0};
    int64_t it = -1, ts = 0, ok = 3;
    assert_int_equal(retr_pop_add_events(r, &it, &ts, NULL, 1, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "negative"));
    float w = NAN;
    assert_int_equal(retr_pop_add_events(r, &ok, &ts, &w, 1, &e), MR_EINVAL);
    w = -1;
    assert_int_equal(retr_pop_add_events(r, &ok, &ts, &w, 1, &e), MR_EINVAL);
    assert_int_equal(retr_pop_add_events(r, NULL, &ts, NULL, 1, &e), MR_EINVAL);
    assert_int_equal(retr_size(r), 0);
    int64_t ids[1];
    float sc[1];
    assert_int_equal(retr_search(r, NULL, 0, 1, 0, NULL, ids, sc, &e), MR_EINVAL);
    retr_pop_config c = {.name = "", .half_life_s = 1};
    mr_retr *bad = NULL;
    assert_int_equal(retr_pop_create(&bad, &c, &e), MR_EINVAL);
    c.name = "x";
    c.half_life_s = -1;
    assert_int_equal(retr_pop_create(&bad, &c, &e), MR_EINVAL);
    assert_null(bad);
    retr_free(r);
}

static void test_save_load(void **s) {
    (void)s;
    mr_retr *r = make(0);
    mr_err e = {0};
    enum { N = 500 };
    int64_t it[N], ts[N];
    float w[N];
    for (int i = 0; i < N; i++) {
        it[i] = (i * 37) % 120;
        ts[i] = 1000 + 13 * i;
        w[i] = 1.0f + (float)(i % 3);
    }
    assert_int_equal(retr_pop_add_events(r, it, ts, w, N, &e), 0);
    char *dir = tr_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/popular.pop", dir);
    assert_int_equal(retr_pop_save(r, path, &e), 0);
    mr_retr *l = NULL;
    assert_int_equal(retr_pop_load(&l, path, NULL, &e), 0);
    assert_string_equal(l->name, "popular");
    assert_int_equal(retr_size(l), retr_size(r));
    int64_t a[50], b[50];
    float sa[50], sb[50];
    assert_int_equal(retr_search(r, NULL, 0, 1, 50, NULL, a, sa, &e), 0);
    assert_int_equal(retr_search(l, NULL, 0, 1, 50, NULL, b, sb, &e), 0);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_equal(sa, sb, sizeof sa);
    /* the loaded expert keeps counting on the same clock */
    int64_t one = 7, t1 = ts[N - 1] + 5;
    assert_int_equal(retr_pop_add_events(r, &one, &t1, NULL, 1, &e), 0);
    assert_int_equal(retr_pop_add_events(l, &one, &t1, NULL, 1, &e), 0);
    assert_true(retr_pop_count(r, 7, t1) == retr_pop_count(l, 7, t1));
    retr_free(l);
    tr_flip_byte(path, 20, 0x10);
    assert_int_equal(retr_pop_load(&l, path, "x", &e), MR_ECORRUPT);
    assert_null(l);
    /* A well-formed, checksummed header whose item count wraps n * 16 to
     * the bytes that follow (0) is refused, not read past the buffer. */
    retr_wbuf wb = {0};
    uint32_t ver = 2;
    double hl = 1000.0;
    int32_t cfg[2] = {16, 0}, started = 1;
    int64_t t[2] = {0, 0}, n = INT64_C(1) << 60;
    int bad = retr_wbuf_put(&wb, "MRRPOPUL", 8) || retr_wbuf_put(&wb, &ver, 4) ||
              retr_wbuf_put(&wb, &hl, 8) || retr_wbuf_put(&wb, cfg, sizeof cfg) ||
              retr_wbuf_put(&wb, t, sizeof t) || retr_wbuf_put(&wb, &started, 4) ||
              retr_wbuf_put(&wb, &n, 8) || retr_wbuf_seal(&wb);
    assert_int_equal(retr_file_commit(&wb, bad, path, &e), 0);
    assert_int_equal(retr_pop_load(&l, path, "x", &e), MR_ECORRUPT);
    assert_null(l);
    retr_free(r);
    tr_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decay_formula),    cmocka_unit_test(test_ranking_and_scores),
        cmocka_unit_test(test_refresh_interval), cmocka_unit_test(test_top_cap_many_items),
        cmocka_unit_test(test_bad_events),       cmocka_unit_test(test_save_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
