/* test_arena.c — alignment, limits, reset and reuse of the request arena. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/arena.h"

static void test_alignment_and_growth(void **s) {
    (void)s;
    mr_arena a;
    mr_arena_init(&a, 256, 0);
    for (int i = 1; i < 200; i++) {
        unsigned char *p = mr_arena_alloc(&a, (size_t)i);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        memset(p, 0xab, (size_t)i); /* ASan catches overlap/overflow */
    }
    void *big = mr_arena_alloc(&a, 10000); /* larger than a chunk */
    assert_non_null(big);
    memset(big, 1, 10000);
    assert_true(a.reserved >= a.used);
    mr_arena_free(&a);
}

static void test_limit_is_hard(void **s) {
    (void)s;
    mr_arena a;
    mr_arena_init(&a, 1024, 4096);
    assert_non_null(mr_arena_alloc(&a, 4000));
    assert_null(mr_arena_alloc(&a, 200)); /* 4000 + 208 > 4096 */
    assert_non_null(mr_arena_alloc(&a, 64));
    assert_null(mr_arena_alloc(&a, SIZE_MAX)); /* overflow guarded */
    assert_null(mr_arena_calloc(&a, SIZE_MAX / 2, 4));
    mr_arena_free(&a);
}

static void test_reset_reuses(void **s) {
    (void)s;
    mr_arena a;
    mr_arena_init(&a, 512, 0);
    for (int i = 0; i < 100; i++) mr_arena_alloc(&a, 100);
    mr_arena_reset(&a);
    assert_int_equal(a.used, 0);
    assert_true(a.reserved <= 512 + 112);
    char *p = mr_arena_strdup(&a, "hello");
    assert_string_equal(p, "hello");
    int *z = mr_arena_calloc(&a, 10, sizeof(int));
    for (int i = 0; i < 10; i++) assert_int_equal(z[i], 0);
    mr_arena_free(&a);
}

/* The checker on good state (across chunks, limit, reset) and on
 * corrupted counters. */
/* A rewind gives back what was allocated after the mark, chunks included,
 * from an empty arena and from one part-used; the limit counts again. */
static void test_mark_and_rewind(void **s) {
    (void)s;
    mr_arena a;
    mr_arena_init(&a, 64, 1000);
    mr_arena_mark m0 = mr_arena_mark_of(&a); /* no chunk yet */
    assert_non_null(mr_arena_alloc(&a, 48));
    assert_non_null(mr_arena_alloc(&a, 200)); /* a second chunk */
    mr_arena_rewind(&a, m0);
    assert_null(a.head);
    assert_int_equal(a.used, 0);
    assert_int_equal(a.reserved, 0);
    unsigned char *p = mr_arena_alloc(&a, 16);
    assert_non_null(p);
    mr_arena_mark m1 = mr_arena_mark_of(&a);
    unsigned char *q = mr_arena_alloc(&a, 16);
    assert_non_null(mr_arena_alloc(&a, 900)); /* near the limit, in a new chunk */
    assert_null(mr_arena_alloc(&a, 100));
    mr_arena_rewind(&a, m1);
    assert_int_equal(a.used, 16);
    assert_int_equal(a.reserved, 64);
    assert_true(mr_arena_check(&a));
    assert_ptr_equal(mr_arena_alloc(&a, 16), q); /* the same bytes again */
    assert_non_null(mr_arena_alloc(&a, 900));    /* the limit has the room back */
    mr_arena_free(&a);
}

static void test_check_detects_corruption(void **s) {
    (void)s;
    mr_arena a;
    mr_arena_init(&a, 256, 16384);
    assert_true(mr_arena_check(&a));
    for (int i = 0; i < 20; i++) assert_non_null(mr_arena_alloc(&a, 1 + 37 * (size_t)i));
    assert_true(mr_arena_check(&a));
    a.used += 16; /* more handed out than the chunks hold */
    assert_false(mr_arena_check(&a));
    a.used -= 16;
    a.reserved -= 1; /* a chunk's bytes not accounted */
    assert_false(mr_arena_check(&a));
    a.reserved += 1;
    size_t limit = a.limit;
    a.limit = a.used - 16; /* over the limit */
    assert_false(mr_arena_check(&a));
    a.limit = limit;
    assert_true(mr_arena_check(&a));
    mr_arena_reset(&a);
    assert_true(mr_arena_check(&a));
    mr_arena_free(&a);
    assert_true(mr_arena_check(&a));
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_alignment_and_growth), cmocka_unit_test(test_limit_is_hard),
        cmocka_unit_test(test_reset_reuses), cmocka_unit_test(test_mark_and_rewind),
        cmocka_unit_test(test_check_detects_corruption)};
    return cmocka_run_group_tests(t, NULL, NULL);
}
