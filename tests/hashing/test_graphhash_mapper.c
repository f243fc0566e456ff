/* test_graphhash_mapper.c — graph, double_graph and lsh row mappers behind the
 * idhash interface (hashing/graphhash_mapper.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "hashing/graphhash.h"

enum { NU = 200, K = 10 };

static graphhash_map *make_map(uint32_t k) {
    uint64_t uids[NU];
    uint32_t urows[NU];
    for (int j = 0; j < NU; j++) uids[j] = (uint64_t)j * 2, urows[j] = (uint32_t)(j % k);
    uint64_t iid = 1;
    uint32_t irow = 0;
    graphhash_map *m;
    assert_int_equal(graphhash_from_tables(&m, uids, urows, NU, k, &iid, &irow, 1, 1, 1, 5, NULL),
                     0);
    return m;
}

static void test_graph_mapper(void **state) {
    (void)state;
    graphhash_map *m = make_map(K);
    idhash_mapper *mp;
    mr_err e = {0};
    assert_int_equal(graphhash_mapper_create(&mp, m, GRAPHHASH_USERS, &e), 0);
    assert_int_equal(idhash_mapper_kind(mp), IDHASH_GRAPH);
    assert_int_equal(idhash_mapper_nrows(mp), K);
    assert_int_equal(idhash_mapper_rows_per_id(mp), 1);
    for (uint64_t id = 0; id < 2 * NU + 50; id++) {
        uint64_t r[IDHASH_MAX_ROWS];
        uint32_t want;
        graphhash_map_row(m, GRAPHHASH_USERS, id, &want);
        assert_int_equal(idhash_mapper_rows(mp, id, r), 1);
        assert_int_equal(r[0], want);
        if (id % 2 == 0 && id < 2 * NU) assert_int_equal(r[0], (id / 2) % K);
    }
    /* Every cluster row is shared by NU / K ids: stats see the clustering. */
    uint64_t ids[NU];
    for (int j = 0; j < NU; j++) ids[j] = (uint64_t)j * 2;
    idhash_stats st;
    assert_int_equal(idhash_collision_stats(mp, ids, NU, &st, &e), 0);
    assert_int_equal(st.occupied, K);
    assert_int_equal(st.max_load, NU / K);
    assert_true(st.shared_fraction == 1.0);
    idhash_mapper_free(mp);
    graphhash_map_free(m);
}

/* lsh: the graph lookup over a table of LSH buckets, reported as its own
 * kind; the map's id table is readable for statistics. */
static void test_lsh_mapper(void **state) {
    (void)state;
    graphhash_map *m = make_map(K);
    idhash_mapper *mp, *gp;
    mr_err e = {0};
    assert_int_equal(graphhash_mapper_create_lsh(&mp, m, GRAPHHASH_USERS, &e), 0);
    assert_int_equal(graphhash_mapper_create(&gp, m, GRAPHHASH_USERS, &e), 0);
    assert_int_equal(idhash_mapper_kind(mp), IDHASH_LSH);
    assert_string_equal(idhash_kind_name(IDHASH_LSH), "lsh");
    idhash_kind k;
    assert_int_equal(idhash_kind_parse("lsh", &k, &e), 0);
    assert_int_equal(k, IDHASH_LSH);
    assert_int_equal(idhash_mapper_rows_per_id(mp), 1);
    for (uint64_t id = 0; id < 2 * NU + 50; id++) {
        uint64_t a[IDHASH_MAX_ROWS], b[IDHASH_MAX_ROWS];
        assert_int_equal(idhash_mapper_rows(mp, id, a), 1);
        idhash_mapper_rows(gp, id, b);
        assert_int_equal(a[0], b[0]);
    }
    const uint64_t *ids;
    const uint32_t *rows;
    size_t n;
    graphhash_map_table(m, GRAPHHASH_USERS, &ids, &rows, &n);
    assert_int_equal(n, NU);
    for (size_t j = 1; j < n; j++) assert_true(ids[j] > ids[j - 1]);
    assert_int_equal(rows[3], (ids[3] / 2) % K);
    idhash_mapper_free(mp);
    idhash_mapper_free(gp);
    graphhash_map_free(m);
}

static void test_double_graph_mapper(void **state) {
    (void)state;
    graphhash_map *m = make_map(K);
    idhash_mapper *mp;
    mr_err e = {0};
    assert_int_equal(graphhash_mapper_create_double(&mp, m, GRAPHHASH_USERS, 1234, &e), 0);
    assert_int_equal(idhash_mapper_kind(mp), IDHASH_DOUBLE_GRAPH);
    assert_int_equal(idhash_mapper_rows_per_id(mp), 2);
    int hash_rows_vary = 0;
    for (uint64_t id = 0; id < 2 * NU + 50; id++) {
        uint64_t r[IDHASH_MAX_ROWS];
        uint32_t cluster;
        graphhash_map_row(m, GRAPHHASH_USERS, id, &cluster);
        assert_int_equal(idhash_mapper_rows(mp, id, r), 2);
        assert_int_equal(r[0], cluster);
        assert_true(r[1] < K);
        assert_int_not_equal(r[0], r[1]);
        hash_rows_vary += id >= 2 && r[1] != ((r[0] + 1) % K);
    }
    assert_true(hash_rows_vary > 100);
    /* The hash row splits each cluster: its NU / K ids spread over the
     * K - 1 other rows (20 ids into 9 rows: E[distinct] = 9 (1 - (8/9)^20)
     * = 8.15 per cluster; one cluster alone may be unlucky, the mean not). */
    int total_distinct = 0;
    for (uint32_t c = 0; c < K; c++) {
        int seen[K] = {0}, distinct = 0;
        for (int j = (int)c; j < NU; j += K) {
            uint64_t r[2];
            idhash_mapper_rows(mp, (uint64_t)j * 2, r);
            assert_int_equal(r[0], c);
            distinct += !seen[r[1]]++;
        }
        assert_true(distinct >= 3);
        total_distinct += distinct;
    }
    assert_true(total_distinct >= 7 * K);
    uint64_t ids[NU];
    for (int j = 0; j < NU; j++) ids[j] = (uint64_t)j * 2;
    idhash_stats st;
    assert_int_equal(idhash_collision_stats(mp, ids, NU, &st, &e), 0);
    assert_true(st.shared_fraction < 1.0);
    assert_int_equal(st.occupied, K);
    idhash_mapper_free(mp);
    graphhash_map_free(m);
}

static void test_bad_input(void **state) {
    (void)state;
    graphhash_map *m = make_map(K);
    idhash_mapper *mp;
    mr_err e = {0};
    assert_int_equal(graphhash_mapper_create(&mp, NULL, GRAPHHASH_USERS, &e), MR_EINVAL);
    assert_null(mp);
    assert_int_equal(graphhash_mapper_create(&mp, m, (graphhash_side)7, &e), MR_EINVAL);
    /* The item side has k = 1: no room for a second distinct row. */
    assert_int_equal(graphhash_mapper_create_double(&mp, m, GRAPHHASH_ITEMS, 1, &e), MR_EINVAL);
    assert_int_equal(graphhash_mapper_create(&mp, m, GRAPHHASH_ITEMS, &e), 0);
    uint64_t r[2];
    assert_int_equal(idhash_mapper_rows(mp, 999, r), 1);
    assert_int_equal(r[0], 0);
    idhash_mapper_free(mp);
    graphhash_map_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_graph_mapper),
        cmocka_unit_test(test_double_graph_mapper),
        cmocka_unit_test(test_lsh_mapper),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
