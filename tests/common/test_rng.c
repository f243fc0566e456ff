/* test_rng.c — determinism, uniformity and normality of the seeded RNG. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/rng.h"

static void test_same_seed_same_stream(void **s) {
    (void)s;
    mr_rng a, b, c;
    mr_rng_seed(&a, 42);
    mr_rng_seed(&b, 42);
    mr_rng_seed(&c, 43);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = mr_rng_u64(&a);
        assert_true(x == mr_rng_u64(&b));
        differ += x != mr_rng_u64(&c);
    }
    assert_true(differ > 990);
}

static void test_below_is_uniform(void **s) {
    (void)s;
    mr_rng r;
    mr_rng_seed(&r, 7);
    long counts[10] = {0};
    const long n = 200000;
    for (long i = 0; i < n; i++) counts[mr_rng_below(&r, 10)]++;
    /* chi-square with 9 dof; 99.9% quantile is 27.9 */
    double chi = 0;
    for (int i = 0; i < 10; i++) chi += pow((double)counts[i] - n / 10.0, 2) / (n / 10.0);
    assert_true(chi < 27.9);
}

static void test_normal_moments(void **s) {
    (void)s;
    mr_rng r;
    mr_rng_seed(&r, 9);
    const long n = 200001; /* odd: exercises the tail of fill_normal */
    static float x[200001];
    mr_rng_fill_normal(&r, x, n, 2.0f);
    double m = 0, v = 0;
    for (long i = 0; i < n; i++) m += x[i];
    m /= n;
    for (long i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
    v /= n;
    /* standard errors: mean 2/sqrt(n) = 0.0045; variance ~ 4*sqrt(2/n) = 0.013 */
    assert_true(fabs(m) < 0.02);
    assert_true(fabs(v - 4.0) < 0.06);
}

static void test_shuffle_is_permutation(void **s) {
    (void)s;
    mr_rng r;
    mr_rng_seed(&r, 3);
    uint32_t idx[1000];
    for (uint32_t i = 0; i < 1000; i++) idx[i] = i;
    mr_rng_shuffle(&r, idx, 1000);
    int seen[1000] = {0}, moved = 0;
    for (uint32_t i = 0; i < 1000; i++) {
        seen[idx[i]]++;
        moved += idx[i] != i;
    }
    for (int i = 0; i < 1000; i++) assert_int_equal(seen[i], 1);
    assert_true(moved > 950);
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_same_seed_same_stream), cmocka_unit_test(test_below_is_uniform),
        cmocka_unit_test(test_normal_moments), cmocka_unit_test(test_shuffle_is_permutation)};
    return cmocka_run_group_tests(t, NULL, NULL);
}
