/* test_u64map.c — the open-addressing map against a brute-force array
 * (hashing/u64map.c). */
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_intern_grow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
