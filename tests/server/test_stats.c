/* test_stats.c — counters and quantiles of the latency histogram: a
 * quantile lands in the bucket holding the true value (within +19%). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "server/stats.h"

static void test_counts_and_quantiles(void **s) {
    (void)s;
    mr_method_stats *st = calloc(1, sizeof *st);
    assert_int_equal(mr_stats_quantile(st, 0.5), 0); /* empty */
    for (int i = 1; i <= 1000; i++) mr_stats_record(st, (uint64_t)i * 10, i % 100 == 0 ? 13 : 0);
    assert_int_equal(atomic_load(&st->calls), 1000);
    assert_int_equal(atomic_load(&st->errors), 10);
    uint64_t p50 = mr_stats_quantile(st, 0.5), p99 = mr_stats_quantile(st, 0.99);
    /* true p50 = 5000 us, p99 = 9900 us; buckets are 2^(1/4) wide */
    assert_true(p50 >= 5000 && p50 <= 5000 * 1.19 + 1);
    assert_true(p99 >= 9900 && p99 <= 9900 * 1.19 + 1);
    assert_true(mr_stats_quantile(st, 1.0) >= 10000);
    mr_stats_record(st, 0, 0);          /* zero latency lands in the first bucket */
    mr_stats_record(st, UINT64_MAX, 0); /* and huge ones in the last */
    assert_int_equal(atomic_load(&st->calls), 1002);
    free(st);
}

int main(void) {
    const struct CMUnitTest t[] = {cmocka_unit_test(test_counts_and_quantiles)};
    return cmocka_run_group_tests(t, NULL, NULL);
}
