/* test_simhash.c — SimHash bit agreement vs 1 - theta/pi, batch == single,
 * bad input (hashing/simhash.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <cmocka.h>

#include "hashing/simhash.h"
#include "vecgen.h"

enum { D = 32, M = 256, PAIRS = 200 };

static void test_collision_rate_matches_angle(void **state) {
    (void)state;
    simhash *h;
    mr_err e = {0};
    assert_int_equal(simhash_create(&h, D, M, 11, &e), 0);
    assert_int_equal(h->words, 4);
    mr_rng r;
    mr_rng_seed(&r, 5);
    float q[D], y[D], tmp[D];
    const double angles[] = {0.1, 0.5, 1.0, M_PI / 2, 2.5};
    for (size_t a = 0; a < sizeof angles / sizeof angles[0]; a++) {
        long agree = 0, total = 0;
        for (int p = 0; p < PAIRS; p++) {
            vecgen_unit(&r, q, D);
            vecgen_at_angle(&r, q, angles[a], y, tmp, D);
            uint64_t bq[4], by[4];
            simhash_sign(h, q, bq);
            simhash_sign(h, y, by);
            agree += M - simhash_hamming(bq, by, h->words);
            total += M;
        }
        double rate = (double)agree / total, expect = 1.0 - angles[a] / M_PI;
        print_message("theta %.3f: agreement %.4f, 1 - theta/pi %.4f\n", angles[a], rate, expect);
        /* Bits of one pair share the pair, so allow well above the iid
         * binomial error (~0.002): 0.03 is still tight against the curve. */
        assert_true(fabs(rate - expect) < 0.03);
    }
    simhash_free(h);
}

static void test_batch_equals_single(void **state) {
    (void)state;
    enum { N = 64, M2 = 70 };
    simhash *h;
    assert_int_equal(simhash_create(&h, D, M2, 3, NULL), 0);
    float *X = mr_floats_alloc(N * D);
    mr_rng r;
    mr_rng_seed(&r, 9);
    mr_rng_fill_normal(&r, X, N * D, 1.0f);
    uint64_t bits[N * 2], one[2];
    assert_int_equal(simhash_sign_batch(h, X, N, bits, NULL, NULL), 0);
    for (int i = 0; i < N; i++) {
        simhash_sign(h, X + i * D, one);
        assert_int_equal(simhash_hamming(one, bits + 2 * i, 2), 0);
        /* Bits past m stay zero. */
        assert_int_equal(one[1] >> (M2 - 64), 0);
        uint64_t rows[M2];
        simhash_to_rows(one, M2, rows);
        for (int j = 0; j < M2; j++) assert_int_equal(rows[j], (one[j / 64] >> (j % 64)) & 1);
    }
    /* Same seed, same projections; another seed, others. */
    simhash *h2, *h3;
    assert_int_equal(simhash_create(&h2, D, M2, 3, NULL), 0);
    assert_int_equal(simhash_create(&h3, D, M2, 4, NULL), 0);
    simhash_sign(h2, X, one);
    assert_int_equal(simhash_hamming(one, bits, 2), 0);
    simhash_sign(h3, X, one);
    assert_true(simhash_hamming(one, bits, 2) > 0);
    simhash_free(h2);
    simhash_free(h3);
    mr_floats_free(X);
    simhash_free(h);
}

static void test_bad_input(void **state) {
    (void)state;
    simhash *h;
    mr_err e = {0};
    assert_int_equal(simhash_create(&h, 0, 8, 1, &e), MR_EINVAL);
    assert_null(h);
    assert_int_equal(simhash_create(&h, 8, 0, 1, &e), MR_EINVAL);
    assert_int_equal(simhash_create(&h, 8, SIMHASH_MAX_BITS + 1, 1, &e), MR_EINVAL);
    assert_int_equal(simhash_create(&h, 8, 8, 1, &e), 0);
    assert_int_equal(simhash_sign_batch(h, NULL, -1, NULL, NULL, &e), MR_EINVAL);
    assert_int_equal(simhash_sign_batch(h, NULL, 0, NULL, NULL, &e), 0);
    simhash_free(h);
    simhash_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collision_rate_matches_angle),
        cmocka_unit_test(test_batch_equals_single),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
