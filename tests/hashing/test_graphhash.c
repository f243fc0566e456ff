/* test_graphhash.c — GraphHash maps from Louvain and from tables
 * (hashing/graphhash.c): clusters become per-side rows 0..k-1, planted
 * blocks share rows, unseen ids fall back to hashing, bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hashing/graphhash.h"
#include "sbm.h"

enum { NB = 5, PER = 30 };

/* SBM graph with raw ids: users 1000 + 3u, items 7 * 2^32 + i. */
static bigraph *sbm_graph(void) {
    int32_t *us, *is;
    size_t ne = sbm_edges(5, NB, PER, 0.3, 0.005, &us, &is);
    uint64_t *ru = malloc(ne * sizeof *ru), *ri = malloc(ne * sizeof *ri);
    for (size_t j = 0; j < ne; j++) {
        ru[j] = 1000 + 3 * (uint64_t)us[j];
        ri[j] = (7ull << 32) + (uint64_t)is[j];
    }
    bigraph *g;
    assert_int_equal(bigraph_build_ids(&g, ru, ri, NULL, ne, 0, NULL), 0);
    free(us);
    free(is);
    free(ru);
    free(ri);
    return g;
}

static void test_build_rows_follow_blocks(void **state) {
    (void)state;
    bigraph *g = sbm_graph();
    louvain_params p = louvain_params_default();
    louvain_result rep;
    graphhash_map *m;
    mr_err e = {0};
    assert_int_equal(graphhash_build(&m, g, &p, 99, &rep, &e), 0);
    assert_int_equal(graphhash_map_rows(m, GRAPHHASH_USERS), NB);
    assert_int_equal(graphhash_map_rows(m, GRAPHHASH_ITEMS), NB);
    assert_int_equal(graphhash_map_size(m, GRAPHHASH_USERS), NB * PER);
    assert_int_equal(graphhash_map_seed(m), 99);
    assert_true(graphhash_map_resolution(m) == 1.0);
    assert_int_equal(rep.ncomm, NB);
    /* Users of one block share one row; different blocks, different rows. */
    for (int u = 0; u < NB * PER; u++) {
        uint32_t r, r0;
        assert_int_equal(graphhash_map_row(m, GRAPHHASH_USERS, 1000 + 3 * (uint64_t)u, &r), 1);
        graphhash_map_row(m, GRAPHHASH_USERS, 1000 + 3 * (uint64_t)(u / PER * PER), &r0);
        assert_int_equal(r, r0);
        if (u >= PER) {
            uint32_t rp;
            graphhash_map_row(m, GRAPHHASH_USERS, 1000 + 3 * (uint64_t)(u - PER), &rp);
            assert_int_not_equal(r, rp);
        }
        /* The row is the Louvain community, renumbered per side. */
        assert_true(r < NB);
    }
    /* Unseen ids: hash fallback, reported as not found. */
    int spread[NB] = {0};
    for (uint64_t id = 1; id < 500; id += 3) {
        uint32_t r;
        assert_int_equal(graphhash_map_row(m, GRAPHHASH_USERS, id, &r), 0);
        assert_int_equal(r, idhash_u64(id, 99) % NB);
        spread[r]++;
    }
    for (int c = 0; c < NB; c++) assert_true(spread[c] > 0);
    louvain_result_free(&rep);
    graphhash_map_free(m);
    /* Without raw ids there is nothing to map. */
    int32_t du[] = {0}, di[] = {0};
    bigraph *dense;
    assert_int_equal(bigraph_build(&dense, 1, 1, du, di, NULL, 1, 0, NULL), 0);
    assert_int_equal(graphhash_build(&m, dense, &p, 1, NULL, &e), MR_EINVAL);
    assert_null(m);
    bigraph_free(dense);
    bigraph_free(g);
}

/* Users-only communities take no item rows and vice versa: k per side is
 * the number of communities that side touches. */
static void test_side_rows_dense(void **state) {
    (void)state;
    bigraph *g = sbm_graph();
    louvain_params p = louvain_params_default();
    p.resolution = 30.0; /* many small communities, some one-sided */
    louvain_result rep;
    graphhash_map *m;
    assert_int_equal(graphhash_build(&m, g, &p, 1, &rep, NULL), 0);
    for (int s = 0; s < 2; s++) {
        uint32_t k = graphhash_map_rows(m, (graphhash_side)s);
        assert_true(k >= 1 && (int32_t)k <= rep.ncomm);
        char *used = calloc(k, 1);
        const uint64_t *ids = s ? g->item_ids : g->user_ids;
        int n = s ? g->ni : g->nu;
        for (int j = 0; j < n; j++) {
            uint32_t r;
            assert_int_equal(graphhash_map_row(m, (graphhash_side)s, ids[j], &r), 1);
            assert_true(r < k);
            used[r] = 1;
        }
        for (uint32_t r = 0; r < k; r++) assert_true(used[r]); /* 0..k-1 all used */
        free(used);
    }
    louvain_result_free(&rep);
    graphhash_map_free(m);
    bigraph_free(g);
}

static void test_from_tables(void **state) {
    (void)state;
    uint64_t uids[] = {50, 10, 30};
    uint32_t urows[] = {2, 0, 1};
    uint64_t iids[] = {8};
    uint32_t irows[] = {0};
    graphhash_map *m;
    mr_err e = {0};
    assert_int_equal(graphhash_from_tables(&m, uids, urows, 3, 3, iids, irows, 1, 1, 5.0, 4, &e),
                     0);
    uint32_t r;
    assert_int_equal(graphhash_map_row(m, GRAPHHASH_USERS, 50, &r), 1);
    assert_int_equal(r, 2);
    assert_int_equal(graphhash_map_row(m, GRAPHHASH_USERS, 10, &r), 1);
    assert_int_equal(r, 0);
    assert_int_equal(graphhash_map_row(m, GRAPHHASH_ITEMS, 50, &r), 0); /* other side */
    assert_int_equal(r, 0);                                             /* k = 1 */
    graphhash_map_free(m);
    /* Bad tables: row >= k, k = 0, duplicate ids. */
    urows[0] = 3;
    assert_int_equal(graphhash_from_tables(&m, uids, urows, 3, 3, iids, irows, 1, 1, 1, 4, &e),
                     MR_EINVAL);
    urows[0] = 2;
    assert_int_equal(graphhash_from_tables(&m, uids, urows, 3, 0, iids, irows, 1, 1, 1, 4, &e),
                     MR_EINVAL);
    uids[1] = 50;
    assert_int_equal(graphhash_from_tables(&m, uids, urows, 3, 3, iids, irows, 1, 1, 1, 4, &e),
                     MR_EINVAL);
    assert_non_null(strstr(e.msg, "twice"));
    assert_null(m);
    /* Empty sides are allowed: everything falls back to hashing. */
    assert_int_equal(graphhash_from_tables(&m, NULL, NULL, 0, 7, NULL, NULL, 0, 7, 1, 4, &e), 0);
    assert_int_equal(graphhash_map_row(m, GRAPHHASH_ITEMS, 123, &r), 0);
    assert_int_equal(r, idhash_u64(123, 4) % 7);
    graphhash_map_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_rows_follow_blocks),
        cmocka_unit_test(test_side_rows_dense),
        cmocka_unit_test(test_from_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
