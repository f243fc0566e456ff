/* test_u64map.c — the open-addressing map against a brute-force array,
 * deletion included (hashing/u64map.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "common/rng.h"
#include "hashing/u64map.h"

static void test_put_get_intern_grow(void **state) {
    (void)state;
    enum { N = 50000 };
    u64map m;
    assert_int_equal(u64map_init(&m, 4), 0);
    uint64_t *keys = malloc(N * sizeof *keys);
    mr_rng r;
    mr_rng_seed(&r, 1);
    for (uint32_t i = 0; i < N; i++) {
        keys[i] = i % 3 ? mr_rng_u64(&r) : i; /* random and sequential keys */
        int ins = -1;
        assert_int_equal(u64map_intern(&m, keys[i], i, &ins), i);
        assert_int_equal(ins, 1);
    }
    assert_int_equal(m.n, N);
    assert_true(m.cap >= 2 * N);
    for (uint32_t i = 0; i < N; i++) {
        int ins = -1;
        assert_int_equal(u64map_get(&m, keys[i]), i);
        assert_int_equal(u64map_intern(&m, keys[i], 7, &ins), i);
        assert_int_equal(ins, 0);
    }
    assert_int_equal(u64map_put(&m, keys[5], 123), 0);
    assert_int_equal(u64map_get(&m, keys[5]), 123);
    assert_int_equal(m.n, N);
    assert_int_equal(u64map_get(&m, 0xdeadbeefcafeULL), U64MAP_NONE);
    u64map_free(&m);
    free(keys);
}

/* Random puts and deletes over a small key space (long probe chains that
 * wrap around a small table) against an array oracle. */
static void test_delete_against_oracle(void **state) {
    (void)state;
    enum { NK = 300, OPS = 200000 };
    u64map m;
    assert_int_equal(u64map_init(&m, 4), 0);
    uint32_t want[NK];
    uint64_t keys[NK];
    mr_rng r;
    mr_rng_seed(&r, 2);
    for (int k = 0; k < NK; k++) {
        want[k] = U64MAP_NONE;
        keys[k] = k % 2 ? mr_rng_u64(&r) : (uint64_t)k;
    }
    size_t live = 0;
    for (int op = 0; op < OPS; op++) {
        int k = (int)mr_rng_below(&r, NK);
        if (mr_rng_below(&r, 2)) {
            uint32_t v = (uint32_t)op;
            live += want[k] == U64MAP_NONE;
            assert_int_equal(u64map_put(&m, keys[k], v), 0);
            want[k] = v;
        } else {
            assert_int_equal(u64map_del(&m, keys[k]), want[k] != U64MAP_NONE);
            live -= want[k] != U64MAP_NONE;
            want[k] = U64MAP_NONE;
        }
        if (op % 997 == 0)
            for (int j = 0; j < NK; j++) assert_int_equal(u64map_get(&m, keys[j]), want[j]);
        assert_int_equal(m.n, live);
        if (op % 4999 == 0) assert_true(u64map_check(&m));
    }
    for (int j = 0; j < NK; j++) assert_int_equal(u64map_get(&m, keys[j]), want[j]);
    assert_true(u64map_check(&m));
    u64map_free(&m);
}

/* The checker on good state and on each kind of corruption. */
static void test_check_detects_corruption(void **state) {
    (void)state;
    u64map m;
    assert_int_equal(u64map_init(&m, 8), 0);
    assert_true(u64map_check(&m));
    for (uint64_t k = 0; k < 8; k++) assert_int_equal(u64map_put(&m, k * 1000003u, (uint32_t)k), 0);
    assert_true(u64map_check(&m));

    m.n++; /* count off by one */
    assert_false(u64map_check(&m));
    m.n--;
    assert_true(u64map_check(&m));

    u64map_free(&m);

    /* A key one slot past its home with the home empty: get cannot reach it
     * (its home: the one occupied slot of a table holding only that key). */
    assert_int_equal(u64map_init(&m, 8), 0);
    const uint64_t key = 42;
    assert_int_equal(u64map_put(&m, key, 7), 0);
    size_t home = 0;
    while (m.vals[home] == U64MAP_NONE) home++;
    assert_true(u64map_check(&m));
    size_t next = (home + 1) & (m.cap - 1);
    m.vals[home] = U64MAP_NONE;
    m.keys[next] = key;
    m.vals[next] = 7;
    assert_int_equal(u64map_get(&m, key), U64MAP_NONE);
    assert_false(u64map_check(&m));
    u64map_free(&m);

    /* More than half full. */
    assert_int_equal(u64map_init(&m, 8), 0);
    for (size_t i = 0; i <= m.cap / 2; i++) {
        m.keys[i] = i;
        m.vals[i] = 1;
    }
    m.n = m.cap / 2 + 1;
    assert_false(u64map_check(&m));
    u64map_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_intern_grow),
        cmocka_unit_test(test_delete_against_oracle),
        cmocka_unit_test(test_check_detects_corruption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
