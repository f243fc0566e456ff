/* test_stats_window.c — the per-minute ring: calls land in their minute,
 * quantiles per minute, minutes older than an hour drop out, a slot is
 * cleared when the hour comes round, the cumulative counters of stats.h
 * and the window agree, and recording from threads loses nothing. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "server/stats.h"

static void test_minutes(void **state) {
    (void)state;
    mr_method_stats *st = calloc(1, sizeof *st);
    int64_t t0 = 3600 * 5; /* minute 300 */
    for (int i = 1; i <= 100; i++) mr_stats_record_at(st, t0 + 5, (uint64_t)i * 100, i <= 10);
    for (int i = 0; i < 4; i++) mr_stats_record_at(st, t0 + 60 * 3 + 59, 5000, 0);
    mr_window_minute w[MR_WIN_MINUTES];
    mr_window_read(&st->minutes, t0 + 60 * 3 + 10, w);
    /* newest last: minute t0/60 + 3 at index 59, t0/60 at index 56 */
    assert_int_equal(w[59].minute, t0 / 60 + 3);
    assert_int_equal(w[59].calls, 4);
    assert_int_equal(w[56].calls, 100);
    assert_int_equal(w[56].errors, 10);
    assert_true(w[56].p50_us >= 5000 && w[56].p50_us <= 5000 * 1.19 + 1);
    assert_true(w[56].p99_us >= 9900 && w[56].p99_us <= 9900 * 1.19 + 1);
    assert_true(w[56].mean_us > 5049 && w[56].mean_us < 5051);
    assert_int_equal(w[57].calls, 0);
    assert_int_equal(w[57].p50_us, 0);
    uint64_t sum = 0;
    for (int i = 0; i < MR_WIN_MINUTES; i++) sum += w[i].calls;
    assert_int_equal(sum, atomic_load(&st->calls)); /* all within the hour */
    /* 59 minutes later minute t0/60 is the oldest; one more and it is gone */
    mr_window_read(&st->minutes, t0 + 59 * 60, w);
    assert_int_equal(w[0].calls, 100);
    mr_window_read(&st->minutes, t0 + 60 * 60, w);
    for (int i = 0; i < MR_WIN_MINUTES; i++) assert_true(w[i].minute != t0 / 60 || !w[i].calls);
    /* an hour on, the same slot is reused and starts from zero */
    mr_stats_record_at(st, t0 + 3600 + 1, 10, 0);
    mr_window_read(&st->minutes, t0 + 3600 + 1, w);
    assert_int_equal(w[59].calls, 1);
    assert_int_equal(w[59].errors, 0);
    free(st);
}

static void test_early_clock(void **state) {
    (void)state;
    mr_method_stats *st = calloc(1, sizeof *st);
    mr_stats_record_at(st, 0, 1, 0); /* minute 0 of the monotonic clock */
    mr_window_minute w[MR_WIN_MINUTES];
    mr_window_read(&st->minutes, 30, w);
    assert_int_equal(w[59].calls, 1);
    for (int i = 0; i < 59; i++) assert_int_equal(w[i].calls, 0); /* negative minutes */
    free(st);
}

enum { THREADS = 4, PER = 20000 };

static void *hammer(void *arg) {
    mr_method_stats *st = arg;
    for (int i = 0; i < PER; i++)
        mr_stats_record_at(st, 600 + (i % 2) * 60, (uint64_t)i, i % 7 == 0);
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    mr_method_stats *st = calloc(1, sizeof *st);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, hammer, st);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    mr_window_minute w[MR_WIN_MINUTES];
    mr_window_read(&st->minutes, 660, w);
    assert_int_equal(w[58].calls + w[59].calls, THREADS * PER);
    assert_int_equal(w[58].calls, THREADS * PER / 2);
    assert_int_equal(w[58].errors + w[59].errors, atomic_load(&st->errors));
    free(st);
}

int main(void) {
    const struct CMUnitTest t[] = {cmocka_unit_test(test_minutes),
                                   cmocka_unit_test(test_early_clock),
                                   cmocka_unit_test(test_threads)};
    return cmocka_run_group_tests(t, NULL, NULL);
}
