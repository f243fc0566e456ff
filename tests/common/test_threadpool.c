/* test_threadpool.c — every task runs once; parallel_for covers [0, n)
 * exactly with fixed chunks; nested fan-out does not deadlock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "common/threadpool.h"

static void incr(void *arg) { atomic_fetch_add((atomic_int *)arg, 1); }

static void test_run_all_tasks(void **s) {
    (void)s;
    mr_pool *p = mr_pool_create(3);
    assert_non_null(p);
    assert_int_equal(mr_pool_size(p), 3);
    atomic_int counters[100];
    void *args[100];
    for (int i = 0; i < 100; i++) {
        atomic_init(&counters[i], 0);
        args[i] = &counters[i];
    }
    for (int rep = 0; rep < 20; rep++) assert_int_equal(mr_pool_run(p, incr, args, 100), 0);
    for (int i = 0; i < 100; i++) assert_int_equal(atomic_load(&counters[i]), 20);
    mr_pool_free(p);
}

typedef struct cover {
    int *hits;
    long chunk_begin[64];
} cover;

static void mark(long b, long e, int chunk, void *arg) {
    cover *c = arg;
    c->chunk_begin[chunk] = b;
    for (long i = b; i < e; i++) c->hits[i]++;
}

static void test_parallel_for_covers_range(void **s) {
    (void)s;
    mr_pool *p = mr_pool_create(2);
    for (long n = 1; n < 300; n += 37) {
        cover c = {calloc((size_t)n, sizeof(int)), {0}};
        assert_int_equal(mr_pool_parallel_for(p, n, 7, mark, &c), 0);
        for (long i = 0; i < n; i++) assert_int_equal(c.hits[i], 1);
        long chunks = n < 7 ? n : 7;
        for (long k = 0; k < chunks; k++) assert_int_equal(c.chunk_begin[k], n * k / chunks);
        free(c.hits);
    }
    /* NULL pool runs inline */
    cover c = {calloc(10, sizeof(int)), {0}};
    assert_int_equal(mr_pool_parallel_for(NULL, 10, 3, mark, &c), 0);
    for (int i = 0; i < 10; i++) assert_int_equal(c.hits[i], 1);
    free(c.hits);
    mr_pool_free(p);
}

static mr_pool *g_pool;
static atomic_int g_inner;

static void inner(void *arg) {
    (void)arg;
    atomic_fetch_add(&g_inner, 1);
}
static void outer(void *arg) {
    (void)arg;
    void *args[4] = {0};
    mr_pool_run(g_pool, inner, args, 4);
}

static void test_nested_no_deadlock(void **s) {
    (void)s;
    g_pool = mr_pool_create(1);
    atomic_store(&g_inner, 0);
    void *args[8] = {0};
    assert_int_equal(mr_pool_run(g_pool, outer, args, 8), 0);
    assert_int_equal(atomic_load(&g_inner), 32);
    mr_pool_free(g_pool);
}

int main(void) {
    const struct CMUnitTest t[] = {cmocka_unit_test(test_run_all_tasks),
                                   cmocka_unit_test(test_parallel_for_covers_range),
                                   cmocka_unit_test(test_nested_no_deadlock)};
    return cmocka_run_group_tests(t, NULL, NULL);
}
