/* test_router_build.c — pilot builder and pilot file: k-means pilots from
 * labelled rows route each domain's rows to its expert; experts with few
 * or no rows; a saved and reloaded router routes identically; damaged,
 * mismatched and unknown-expert files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_router_util.h"

/* rows: 400 per domain, two sub-clusters each (centre +- 1.5 on axis 4+d) */
static float *make_rows(int64_t n_per, int *best) {
    float *x = tr_randn(7, RDOM * n_per, RD);
    for (int d = 0; d < RDOM; d++)
        for (int64_t i = 0; i < n_per; i++) {
            float *row = x + (size_t)(d * n_per + i) * RD;
            for (int t = 0; t < RD; t++) row[t] *= 0.3f;
            row[d] += 4.0f;
            row[4 + d] += (i % 2) ? 1.5f : -1.5f;
            best[d * n_per + i] = d;
        }
    return x;
}

static void test_build_routes_rows(void **s) {
    (void)s;
    router_config c = {.dim = RD, .temperature = 0.05f, .top_p = 0.5f, .fallback = "popular"};
    tr_world w;
    tr_world_make(&w, &c, NULL);
    enum { NPER = 400 };
    int best[RDOM * NPER];
    float *x = make_rows(NPER, best);
    mr_err e = {0};
    assert_int_equal(router_build_pilots(w.rt, x, best, RDOM * NPER, 2, &e), 0);
    for (int d = 0; d < RDOM; d++) assert_int_equal(router_n_pilots(w.rt, d), 2);
    assert_int_equal(router_n_pilots(w.rt, RDOM), 0); /* popularity had no rows */
    float probs[RDOM + 1];
    int kept[RDOM + 1], right = 0;
    for (int i = 0; i < RDOM * NPER; i++) {
        assert_true(router_route(w.rt, x + (size_t)i * RD, RD, 0, probs, kept, &e) >= 1);
        right += kept[best[i]] == 1;
    }
    assert_true(right >= RDOM * NPER * 99 / 100);
    /* same input, same pilots: rebuild and compare routing exactly */
    float p2[RDOM + 1];
    int k2[RDOM + 1];
    router_route(w.rt, x, RD, 0, probs, kept, &e);
    assert_int_equal(router_build_pilots(w.rt, x, best, RDOM * NPER, 2, &e), 0);
    router_route(w.rt, x, RD, 0, p2, k2, &e);
    assert_memory_equal(probs, p2, sizeof p2);
    /* few rows: an expert keeps its rows; -1 rows are skipped */
    int few[4] = {0, 1, -1, -1};
    assert_int_equal(router_build_pilots(w.rt, x, few, 4, 3, &e), 0);
    assert_int_equal(router_n_pilots(w.rt, 0), 1);
    assert_int_equal(router_n_pilots(w.rt, 1), 1);
    assert_int_equal(router_n_pilots(w.rt, 2), 0);
    /* bad input */
    int wrong[1] = {RDOM + 7};
    assert_int_equal(router_build_pilots(w.rt, x, wrong, 1, 2, &e), MR_EINVAL);
    assert_int_equal(router_build_pilots(w.rt, x, best, 10, 0, &e), MR_EINVAL);
    x[5] = NAN;
    assert_int_equal(router_build_pilots(w.rt, x, best, 10, 2, &e), MR_EINVAL);
    mr_floats_free(x);
    tr_world_free(&w);
}

static void test_save_load(void **s) {
    (void)s;
    router_config c = {.dim = RD, .temperature = 0.1f};
    tr_world w, w2;
    tr_world_make(&w, &c, NULL);
    tr_world_make(&w2, &c, NULL);
    enum { NPER = 200 };
    int best[RDOM * NPER];
    float *x = make_rows(NPER, best);
    mr_err e = {0};
    assert_int_equal(router_build_pilots(w.rt, x, best, RDOM * NPER, 3, &e), 0);
    for (int d = 0; d < RDOM; d++) router_set_pilots(w2.rt, d, NULL, 0, &e);
    char *dir = tr_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/router.bin", dir);
    assert_int_equal(router_save(w.rt, path, &e), 0);
    assert_int_equal(router_load_pilots(w2.rt, path, &e), 0);
    for (int d = 0; d < RDOM; d++) assert_int_equal(router_n_pilots(w2.rt, d), 3);
    float p1[RDOM + 1], p2[RDOM + 1];
    int k1[RDOM + 1], k2[RDOM + 1];
    for (int i = 0; i < RDOM * NPER; i += 17) {
        router_route(w.rt, x + (size_t)i * RD, RD, 0, p1, k1, &e);
        router_route(w2.rt, x + (size_t)i * RD, RD, 0, p2, k2, &e);
        assert_memory_equal(p1, p2, sizeof p1);
        assert_memory_equal(k1, k2, sizeof k1);
    }
    /* a router missing an expert of the file loads the others */
    mr_router *small = NULL;
    assert_int_equal(router_create(&small, &c, NULL, &e), 0);
    assert_int_equal(router_add_expert(small, w.ex[2], 0, &e), 0);
    assert_int_equal(router_load_pilots(small, path, &e), 0);
    assert_int_equal(router_n_pilots(small, 0), 3);
    router_free(small);
    /* dimension mismatch */
    router_config c16 = {.dim = 16};
    mr_router *other = NULL;
    assert_int_equal(router_create(&other, &c16, NULL, &e), 0);
    assert_int_equal(router_load_pilots(other, path, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "dim"));
    router_free(other);
    /* damage: flip a byte */
    tr_flip_byte(path, 40, 0x1);
    assert_int_equal(router_load_pilots(w2.rt, path, &e), MR_ECORRUPT);
    char missing[4300];
    snprintf(missing, sizeof missing, "%s/none.bin", dir);
    assert_int_equal(router_load_pilots(w2.rt, missing, &e), MR_ENOTFOUND);
    tr_rmdir(dir);
    mr_floats_free(x);
    tr_world_free(&w);
    tr_world_free(&w2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_routes_rows),
        cmocka_unit_test(test_save_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
