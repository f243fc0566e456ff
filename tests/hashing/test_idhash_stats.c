/* test_idhash_stats.c — collision statistics (hashing/idhash_stats.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <cmocka.h>

#include "hashing/idhash.h"

static void test_hash_occupancy_matches_balls_in_bins(void **state) {
    (void)state;
    enum { N = 20000, K = 10000 };
    uint64_t *ids = malloc(N * sizeof *ids);
    for (uint64_t i = 0; i < N; i++) ids[i] = i * 31 + 5;
    idhash_mapper *m;
    mr_err e = {0};
    assert_int_equal(idhash_mapper_create_hash(&m, K, 3, &e), 0);
    idhash_stats st;
    assert_int_equal(idhash_collision_stats(m, ids, N, &st, &e), 0);
    assert_int_equal(st.nids, N);
    assert_int_equal(st.nrows, K);
    /* E[occupied] = K (1 - (1 - 1/K)^N); E[ids alone] = N (1 - 1/K)^(N-1). */
    double occ = 1.0 - pow(1.0 - 1.0 / K, N);
    double alone = pow(1.0 - 1.0 / K, N - 1);
    assert_true(fabs(st.occupancy - occ) < 0.02);
    assert_true(fabs(st.shared_fraction - (1.0 - alone)) < 0.02);
    assert_true(fabs(st.mean_load - (double)N / (double)st.occupied) < 1e-9);
    assert_true(st.max_load >= 3);
    idhash_mapper_free(m);
    free(ids);
}

static void test_double_hashing_rarely_shares_both(void **state) {
    (void)state;
    enum { N = 20000, K = 10000 };
    uint64_t *ids = malloc(N * sizeof *ids);
    for (uint64_t i = 0; i < N; i++) ids[i] = i;
    idhash_mapper *m;
    mr_err e = {0};
    assert_int_equal(idhash_mapper_create_double(&m, K, 3, 4, &e), 0);
    idhash_stats st;
    assert_int_equal(idhash_collision_stats(m, ids, N, &st, &e), 0);
    /* A full collision needs both rows equal: ~N/(K(K-1)) per id. */
    assert_true(st.shared_fraction < 0.01);
    /* Twice the rows used: occupancy well above single hashing's 0.86. */
    assert_true(st.occupancy > 0.95);
    idhash_mapper_free(m);
    free(ids);
}

static void test_frequency_head_never_shares(void **state) {
    (void)state;
    enum { N = 50, K = 100 };
    uint64_t ids[N], counts[N];
    for (int i = 0; i < N; i++) ids[i] = (uint64_t)i * 11, counts[i] = (uint64_t)(N - i);
    idhash_mapper *m;
    mr_err e = {0};
    assert_int_equal(idhash_mapper_create_frequency(&m, K, N, ids, counts, N, 1, &e), 0);
    idhash_stats st;
    assert_int_equal(idhash_collision_stats(m, ids, N, &st, &e), 0);
    assert_true(st.shared_fraction == 0.0);
    assert_int_equal(st.occupied, N);
    assert_int_equal(st.max_load, 1);
    /* Duplicated ids are an error, not a silent collision. */
    ids[3] = ids[4];
    assert_int_equal(idhash_collision_stats(m, ids, N, &st, &e), MR_EINVAL);
    assert_int_equal(idhash_collision_stats(m, ids, 0, &st, &e), 0);
    assert_int_equal(st.nids, 0);
    idhash_mapper_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_occupancy_matches_balls_in_bins),
        cmocka_unit_test(test_double_hashing_rarely_shares_both),
        cmocka_unit_test(test_frequency_head_never_shares),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
