/* test_retr_idmap.c — the id -> slot hash map against a plain array
 * oracle under random inserts, overwrites and deletes (growth included). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "index/retrieval/retr_idmap.h"
#include "test_retr_util.h"

static void test_against_oracle(void **s) {
    (void)s;
    enum { U = 5000, OPS = 60000 };
    int64_t *oracle = malloc(U * sizeof *oracle);
    for (int i = 0; i < U; i++) oracle[i] = -1;
    retr_idmap m;
    assert_int_equal(retr_idmap_init(&m, 0), 0);
    mr_rng g;
    mr_rng_seed(&g, 42);
    int64_t live = 0;
    for (int op = 0; op < OPS; op++) {
        int64_t key = (int64_t)mr_rng_below(&g, U) * 7919; /* spread, not sequential */
        int64_t at = key / 7919;
        if (mr_rng_below(&g, 3)) {
            int64_t v = (int64_t)mr_rng_below(&g, 1000000);
            assert_int_equal(retr_idmap_put(&m, key, v), 0);
            live += oracle[at] < 0;
            oracle[at] = v;
        } else {
            assert_int_equal(retr_idmap_del(&m, key), oracle[at] >= 0);
            live -= oracle[at] >= 0;
            oracle[at] = -1;
        }
        assert_int_equal(m.n, live);
    }
    for (int i = 0; i < U; i++) assert_int_equal(retr_idmap_get(&m, (int64_t)i * 7919), oracle[i]);
    assert_int_equal(retr_idmap_get(&m, 1), -1);
    assert_int_equal(retr_idmap_get(&m, -3), -1);
    assert_int_equal(retr_idmap_put(&m, -3, 1), MR_EINVAL);
    assert_true(m.used * 10 <= m.cap * 7);
    assert_true(retr_idmap_check(&m));
    retr_idmap_free(&m);
    free(oracle);
}

/* The checker on good state and on each kind of corruption. */
static void test_check_detects_corruption(void **s) {
    (void)s;
    retr_idmap m;
    assert_int_equal(retr_idmap_init(&m, 4), 0);
    assert_true(retr_idmap_check(&m));
    const int64_t key = 12345;
    assert_int_equal(retr_idmap_put(&m, key, 9), 0);
    assert_true(retr_idmap_check(&m));
    int64_t home = 0;
    while (m.keys[home] != key) home++; /* the only key: it sits at its home */

    m.n = 2; /* live count off */
    assert_false(retr_idmap_check(&m));
    m.n = 1;
    m.used = 2; /* a marker that is not there */
    assert_false(retr_idmap_check(&m));
    m.used = 1;
    assert_true(retr_idmap_check(&m));

    /* Moved one past its home with the home empty: unreachable. */
    int64_t next = (home + 1) & (m.cap - 1);
    m.keys[home] = -1;
    m.keys[next] = key;
    m.vals[next] = 9;
    assert_int_equal(retr_idmap_get(&m, key), -1);
    assert_false(retr_idmap_check(&m));
    /* The same with a deletion marker at home: reachable again. */
    m.keys[home] = -2;
    m.used = 2;
    assert_int_equal(retr_idmap_get(&m, key), 9);
    assert_true(retr_idmap_check(&m));
    retr_idmap_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_oracle),
        cmocka_unit_test(test_check_detects_corruption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
