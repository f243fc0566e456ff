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
        keys[i] = i % 3 ? mr_rng_u64(&r) : i;  /* random and sequential keys */
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
    }
    for (int j = 0; j < NK; j++) assert_int_equal(u64map_get(&m, keys[j]), want[j]);
    u64map_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_intern_grow),
        cmocka_unit_test(test_delete_against_oracle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
