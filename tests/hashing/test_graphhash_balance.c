/* test_graphhash_balance.c — balanced rows from GraphHash clusters
 * (hashing/graphhash_balance.c): a giant cluster is split over rows by
 * mass, heavy ids get rows of their own, small clusters keep to their own
 * rows, every row is used, deterministic, bad input; hub rows
 * (graphhash_hub_rows): the heaviest ids own the first rows, the rest
 * share the others by cluster. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hashing/graphhash.h"

/* Rows used and the largest row mass. */
static uint32_t used_rows(const uint32_t *row, const double *mass, size_t n, uint32_t rows,
                          double *max_mass) {
    double *m = calloc(rows, sizeof *m);
    uint32_t used = 0;
    *max_mass = 0;
    for (size_t j = 0; j < n; j++) {
        assert_true(row[j] < rows);
        if (m[row[j]] == 0) used++;
        m[row[j]] += mass[j];
        if (m[row[j]] > *max_mass) *max_mass = m[row[j]];
    }
    free(m);
    return used;
}

/* One giant cluster of 90 ids (one of mass 400, 89 of mass 10) and 10
 * singleton clusters of mass 1 on 20 rows: the heavy id gets a row of its
 * own, the rest of the giant cluster is split over consecutive rows of
 * about equal mass (a row per cluster would put 1,290 of 1,300 on one). */
static void test_giant_cluster_split(void **state) {
    (void)state;
    enum { N = 100, ROWS = 20 };
    uint32_t cl[N], row[N];
    double mass[N];
    for (int j = 0; j < N; j++) {
        cl[j] = j < 90 ? 0 : (uint32_t)(j - 89);
        mass[j] = j == 0 ? 400 : j < 90 ? 10 : 1;
    }
    assert_int_equal(graphhash_balance_rows(cl, mass, N, ROWS, row, NULL), 0);
    double mx;
    assert_int_equal(used_rows(row, mass, N, ROWS, &mx), ROWS);
    assert_true(mx == 400);
    double rm[ROWS] = {0};
    for (int j = 0; j < N; j++) {
        if (j) assert_int_not_equal(row[j], row[0]);
        rm[row[j]] += mass[j];
    }
    for (int r = 0; r < ROWS; r++)
        if (r != (int)row[0]) assert_true(rm[r] <= 2 * 900.0 / (ROWS - 1));
    for (int j = 1; j < 90; j++) assert_true(row[j] >= row[j - 1]);
    /* the singletons come after the giant cluster: at most one row mixes */
    int mixed_rows = 0;
    for (int r = 0; r < ROWS; r++) {
        int giant = 0, single = 0;
        for (int j = 0; j < N; j++)
            if ((int)row[j] == r) giant |= j < 90, single |= j >= 90;
        mixed_rows += giant && single;
    }
    for (int j = 90; j < N; j++) assert_true(row[j] >= row[89]);
    assert_true(mixed_rows <= 1);
    uint32_t again[N];
    assert_int_equal(graphhash_balance_rows(cl, mass, N, ROWS, again, NULL), 0);
    assert_memory_equal(row, again, sizeof row);
}

/* Equal masses, 4 clusters of 5, 8 rows: no row holds ids of two
 * clusters unless that row is under half its share, and rows of one
 * cluster are consecutive. */
static void test_clusters_keep_their_rows(void **state) {
    (void)state;
    enum { N = 20, ROWS = 8 };
    uint32_t cl[N], row[N];
    double mass[N];
    for (int j = 0; j < N; j++) cl[j] = (uint32_t)(3 - j / 5), mass[j] = 1;
    assert_int_equal(graphhash_balance_rows(cl, mass, N, ROWS, row, NULL), 0);
    double mx;
    assert_int_equal(used_rows(row, mass, N, ROWS, &mx), ROWS);
    for (int a = 0; a < N; a++)
        for (int b = 0; b < N; b++)
            if (cl[a] != cl[b]) assert_int_not_equal(row[a], row[b]);
    /* cluster 3 (ids 0..4) comes last in cluster order */
    for (int j = 0; j < 5; j++) assert_true(row[j] >= row[5]);
}

/* Fewer ids than rows: one id per row; one row: everything in row 0. */
static void test_small_cases(void **state) {
    (void)state;
    uint32_t cl[3] = {0, 0, 0}, row[3];
    double mass[3] = {5, 1, 1};
    assert_int_equal(graphhash_balance_rows(cl, mass, 3, 10, row, NULL), 0);
    assert_true(row[0] != row[1] && row[1] != row[2] && row[0] != row[2]);
    assert_int_equal(graphhash_balance_rows(cl, mass, 3, 1, row, NULL), 0);
    for (int j = 0; j < 3; j++) assert_int_equal(row[j], 0);
    assert_int_equal(graphhash_balance_rows(cl, mass, 0, 4, row, NULL), 0);
}

static void test_bad_input(void **state) {
    (void)state;
    uint32_t cl[2] = {0, 1}, row[2] = {7, 7};
    double mass[2] = {1, 0};
    mr_err e;
    assert_int_equal(graphhash_balance_rows(cl, mass, 2, 4, row, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "mass"));
    mass[1] = 1;
    assert_int_equal(graphhash_balance_rows(cl, mass, 2, 0, row, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "rows"));
}

/* 4 hubs of 30 ids (masses 30 - j, so ids 0..3 are heaviest) on 10 rows:
 * the hubs own rows 0..3 in mass order and nobody shares them; the other
 * 26 ids fill rows 4..9 balanced (with balance, every one of them used,
 * each cluster in consecutive rows) or at 4 + cluster mod 6 (without);
 * ties go to the lower index; hubs 0 equals graphhash_balance_rows. */
static void test_hub_rows(void **state) {
    (void)state;
    enum { N = 30, ROWS = 10, HUBS = 4 };
    uint32_t cl[N], row[N], plain[N];
    double mass[N];
    for (int j = 0; j < N; j++) cl[j] = (uint32_t)(j % 3), mass[j] = 30 - j;
    assert_int_equal(graphhash_hub_rows(cl, mass, N, ROWS, HUBS, 1, row, NULL), 0);
    for (int j = 0; j < HUBS; j++) assert_int_equal(row[j], j);
    uint32_t seen[ROWS] = {0};
    for (int j = HUBS; j < N; j++) {
        assert_true(row[j] >= HUBS && row[j] < ROWS);
        seen[row[j]]++;
    }
    for (int r = HUBS; r < ROWS; r++) assert_true(seen[r] > 0);
    for (int a = HUBS; a < N; a++)
        for (int b = HUBS; b < N; b++)
            if (cl[a] < cl[b]) assert_true(row[a] <= row[b]); /* clusters in row order */
    assert_int_equal(graphhash_hub_rows(cl, mass, N, ROWS, HUBS, 0, row, NULL), 0);
    for (int j = HUBS; j < N; j++) assert_int_equal(row[j], HUBS + cl[j] % (ROWS - HUBS));
    /* ties: equal masses, the lower index is the hub */
    for (int j = 0; j < N; j++) mass[j] = 1;
    assert_int_equal(graphhash_hub_rows(cl, mass, N, ROWS, 2, 1, row, NULL), 0);
    assert_int_equal(row[0], 0);
    assert_int_equal(row[1], 1);
    for (int j = 0; j < N; j++) mass[j] = 1 + j % 7;
    assert_int_equal(graphhash_hub_rows(cl, mass, N, ROWS, 0, 1, row, NULL), 0);
    assert_int_equal(graphhash_balance_rows(cl, mass, N, ROWS, plain, NULL), 0);
    assert_memory_equal(row, plain, sizeof row);
    /* more hubs than ids: every id a row of its own */
    assert_int_equal(graphhash_hub_rows(cl, mass, 3, ROWS, 5, 1, row, NULL), 0);
    assert_true(row[0] != row[1] && row[1] != row[2] && row[0] != row[2]);
    mr_err e;
    assert_int_equal(graphhash_hub_rows(cl, mass, N, ROWS, ROWS, 1, row, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "hubs"));
    mass[5] = 0;
    assert_int_equal(graphhash_hub_rows(cl, mass, N, ROWS, 2, 0, row, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "mass"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_giant_cluster_split),
        cmocka_unit_test(test_clusters_keep_their_rows),
        cmocka_unit_test(test_small_cases),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_hub_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
