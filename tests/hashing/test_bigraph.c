/* test_bigraph.c — CSR construction and bad input (hashing/bigraph.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/rng.h"
#include "hashing/bigraph.h"

/* Random edges: both CSR sides hold exactly the input pairs, sorted, with
 * the right degrees. */
static void test_csr_matches_edges(void **state) {
    (void)state;
    enum { NU = 50, NI = 70 };
    static unsigned char adj[NU][NI];
    memset(adj, 0, sizeof adj);
    int32_t us[1000], is[1000];
    float ws[1000];
    size_t n = 0;
    mr_rng r;
    mr_rng_seed(&r, 1);
    while (n < 1000) {
        int u = (int)mr_rng_below(&r, NU), i = (int)mr_rng_below(&r, NI);
        if (adj[u][i]) continue;
        adj[u][i] = 1;
        us[n] = u, is[n] = i, ws[n] = 1.0f + (float)(u + i) / 100.0f;
        n++;
    }
    bigraph *g;
    mr_err e = {0};
    assert_int_equal(bigraph_build(&g, NU, NI, us, is, ws, n, 0, &e), 0);
    assert_int_equal(g->nedges, 1000);
    double total = 0;
    for (size_t j = 0; j < n; j++) total += ws[j];
    assert_true(fabs(g->total_w - total) < 1e-3);
    for (int u = 0; u < NU; u++) {
        double deg = 0;
        for (int64_t k = g->uoff[u]; k < g->uoff[u + 1]; k++) {
            assert_true(adj[u][g->uadj[k]]);
            if (k > g->uoff[u]) assert_true(g->uadj[k] > g->uadj[k - 1]);
            assert_true(fabs(g->uw[k] - (1.0f + (float)(u + g->uadj[k]) / 100.0f)) < 1e-6);
            deg += g->uw[k];
        }
        assert_true(fabs(deg - g->du[u]) < 1e-4);
    }
    for (int i = 0; i < NI; i++)
        for (int64_t k = g->ioff[i]; k < g->ioff[i + 1]; k++) {
            assert_true(adj[g->iadj[k]][i]);
            if (k > g->ioff[i]) assert_true(g->iadj[k] > g->iadj[k - 1]);
        }
    assert_true(bigraph_bytes(g) > 1000 * 2 * (4 + 4));
    bigraph_free(g);
}

static void test_raw_ids_numbered_in_order(void **state) {
    (void)state;
    uint64_t us[] = {900, 5, 900, 77}, is[] = {1ull << 40, 3, 3, 1ull << 40};
    bigraph *g;
    mr_err e = {0};
    assert_int_equal(bigraph_build_ids(&g, us, is, NULL, 4, 0, &e), 0);
    assert_int_equal(g->nu, 3);
    assert_int_equal(g->ni, 2);
    assert_null(g->uw);
    assert_int_equal(g->user_ids[0], 5);
    assert_int_equal(g->user_ids[1], 77);
    assert_int_equal(g->user_ids[2], 900);
    assert_int_equal(g->item_ids[0], 3);
    assert_int_equal(g->item_ids[1], 1ull << 40);
    /* user 900 (index 2) links items 3 and 2^40 (indices 0, 1). */
    assert_int_equal(g->uoff[3] - g->uoff[2], 2);
    assert_int_equal(g->uadj[g->uoff[2]], 0);
    assert_int_equal(g->uadj[g->uoff[2] + 1], 1);
    assert_true(g->total_w == 4.0);
    bigraph_free(g);
}

static void test_duplicates_rejected_or_merged(void **state) {
    (void)state;
    int32_t us[] = {0, 1, 0, 0}, is[] = {1, 1, 1, 0};
    float ws[] = {1.0f, 2.0f, 3.0f, 4.0f};
    bigraph *g;
    mr_err e = {0};
    assert_int_equal(bigraph_build(&g, 2, 2, us, is, ws, 4, 0, &e), MR_EINVAL);
    assert_null(g);
    assert_non_null(strstr(e.msg, "duplicate edge (user 0, item 1)"));
    assert_int_equal(bigraph_build(&g, 2, 2, us, is, ws, 4, BIGRAPH_MERGE_DUPLICATES, &e), 0);
    assert_int_equal(g->nedges, 3);
    assert_true(g->uw[g->uoff[0] + 1] == 4.0f); /* (0, 1): 1 + 3 */
    assert_true(g->total_w == 10.0);
    bigraph_free(g);
    /* Unweighted duplicates merge into weight 2. */
    assert_int_equal(bigraph_build(&g, 2, 2, us, is, NULL, 4, BIGRAPH_MERGE_DUPLICATES, &e), 0);
    assert_non_null(g->uw);
    assert_true(g->uw[g->uoff[0] + 1] == 2.0f);
    bigraph_free(g);
}

static void test_bad_input(void **state) {
    (void)state;
    bigraph *g;
    mr_err e = {0};
    int32_t us[] = {0, 2}, is[] = {0, 0};
    assert_int_equal(bigraph_build(&g, 2, 2, us, is, NULL, 0, 0, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "no edges"));
    assert_int_equal(bigraph_build(&g, 2, 2, us, is, NULL, 2, 0, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "out of range"));
    int32_t neg[] = {-1};
    assert_int_equal(bigraph_build(&g, 2, 2, neg, is, NULL, 1, 0, &e), MR_EINVAL);
    assert_int_equal(bigraph_build(&g, 0, 2, us, is, NULL, 1, 0, &e), MR_EINVAL);
    float bad[] = {NAN}, zero[] = {0.0f}, minus[] = {-1.0f};
    assert_int_equal(bigraph_build(&g, 2, 2, us, is, bad, 1, 0, &e), MR_EINVAL);
    assert_int_equal(bigraph_build(&g, 2, 2, us, is, zero, 1, 0, &e), MR_EINVAL);
    assert_int_equal(bigraph_build(&g, 2, 2, us, is, minus, 1, 0, &e), MR_EINVAL);
    uint64_t ru[] = {1, 7}, ri[] = {2, 7};
    assert_int_equal(bigraph_build_ids(&g, ru, ri, NULL, 2, BIGRAPH_SHARED_IDS, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "self-loop"));
    /* Without the flag the two 7s are different nodes. */
    assert_int_equal(bigraph_build_ids(&g, ru, ri, NULL, 2, 0, &e), 0);
    bigraph_free(g);
    assert_int_equal(bigraph_build_ids(&g, ru, ri, NULL, 0, 0, &e), MR_EINVAL);
    bigraph_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csr_matches_edges),
        cmocka_unit_test(test_raw_ids_numbered_in_order),
        cmocka_unit_test(test_duplicates_rejected_or_merged),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
