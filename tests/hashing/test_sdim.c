/* test_sdim.c — SDIM signatures and bucket tables (hashing/sdim.c): the
 * collision weight (1 - theta/pi)^tau, tau = 0 mean pooling, the interest
 * against a brute-force evaluation of the formula, add/sub, bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hashing/sdim.h"
#include "vecgen.h"

enum { D = 32 };

/* Behaviour items j = 0..L-1 have keys at angle theta_j from the query and
 * one-hot values e_j, so coordinate j of the SUM interest is the fraction of
 * signatures where item j collides: its empirical weight. Averaged over many
 * hashers (seeds), it must approach (1 - theta_j/pi)^tau. */
static void test_weight_matches_collision_probability(void **state) {
    (void)state;
    enum { L = 6, SEEDS = 150, TAU = 3, M = 48 }; /* m/tau = 16 signatures */
    const double theta[L] = {0.0, 0.3, 0.6, 1.0, 1.5, 2.2};
    mr_rng r;
    mr_rng_seed(&r, 77);
    float q[D], keys[L][D], tmp[D], out[D];
    double w[L] = {0};
    sdim_layout l;
    assert_int_equal(sdim_layout_init(&l, D, M, TAU, NULL), 0);
    assert_int_equal(l.nsig, 16);
    assert_int_equal(l.nbuckets, 8);
    void *table = malloc(sdim_table_bytes(&l));
    for (int s = 0; s < SEEDS; s++) {
        sdim_hasher *h;
        assert_int_equal(sdim_hasher_create(&h, D, M, TAU, 1000 + (uint64_t)s, NULL), 0);
        vecgen_unit(&r, q, D);
        sdim_table_clear(&l, table);
        for (int j = 0; j < L; j++) {
            vecgen_at_angle(&r, q, theta[j], keys[j], tmp, D);
            uint32_t sig[16];
            sdim_signatures(h, keys[j], sig);
            float val[D] = {0};
            val[j] = 1.0f;
            assert_int_equal(sdim_table_add(&l, table, sig, val, NULL), 0);
        }
        uint32_t qs[16];
        sdim_signatures(h, q, qs);
        sdim_table_interest(&l, table, qs, SDIM_POOL_SUM, out);
        for (int j = 0; j < L; j++) w[j] += out[j] / SEEDS;
        sdim_hasher_free(h);
    }
    double sw = 0, se = 0, expect[L];
    for (int j = 0; j < L; j++) {
        expect[j] = pow(1.0 - theta[j] / M_PI, TAU);
        sw += w[j];
        se += expect[j];
        /* 2400 signature draws per item; signatures of one hasher share q,
         * so allow ~3x the iid standard error (<= 0.01). */
        print_message("theta %.2f: weight %.4f, (1 - theta/pi)^tau %.4f\n", theta[j], w[j],
                      expect[j]);
        assert_true(fabs(w[j] - expect[j]) < 0.035);
    }
    assert_true(fabs(w[0] - 1.0) < 1e-6); /* identical key: always collides */
    for (int j = 0; j < L; j++) assert_true(fabs(w[j] / sw - expect[j] / se) < 0.02);
    free(table);
}

static void test_tau0_is_mean_pooling(void **state) {
    (void)state;
    enum { L = 10 };
    sdim_hasher *h;
    assert_int_equal(sdim_hasher_create(&h, D, 48, 0, 1, NULL), 0);
    assert_int_equal(h->layout.nsig, 1);
    assert_int_equal(h->layout.nbuckets, 1);
    void *table = calloc(1, sdim_table_bytes(&h->layout));
    mr_rng r;
    mr_rng_seed(&r, 3);
    float x[L][D], mean[D] = {0}, out[D], q[D];
    for (int j = 0; j < L; j++) {
        mr_rng_fill_normal(&r, x[j], D, 1.0f);
        uint32_t sig[1] = {99};
        sdim_signatures(h, x[j], sig);
        assert_int_equal(sig[0], 0);
        assert_int_equal(sdim_table_add(&h->layout, table, sig, x[j], NULL), 0);
        for (int k = 0; k < D; k++) mean[k] += x[j][k] / L;
    }
    mr_rng_fill_normal(&r, q, D, 1.0f);
    uint32_t qs[1];
    sdim_signatures(h, q, qs);
    sdim_table_interest(&h->layout, table, qs, SDIM_POOL_MEAN, out);
    for (int k = 0; k < D; k++) assert_true(fabs(out[k] - mean[k]) < 1e-5);
    sdim_table_interest(&h->layout, table, qs, SDIM_POOL_L2, out);
    float n = mr_l2norm(mean, D);
    for (int k = 0; k < D; k++) assert_true(fabs(out[k] - mean[k] / n) < 1e-5);
    free(table);
    sdim_hasher_free(h);
}

/* The table's interest equals the formula evaluated item by item. */
static void test_interest_equals_brute_force(void **state) {
    (void)state;
    enum { L = 200, M = 24, TAU = 2, NQ = 20 };
    sdim_hasher *h;
    assert_int_equal(sdim_hasher_create(&h, D, M, TAU, 5, NULL), 0);
    const sdim_layout *l = &h->layout;
    int ns = l->nsig;
    assert_int_equal(ns, 12);
    float *S = mr_floats_alloc(L * D), *Q = mr_floats_alloc(NQ * D);
    uint32_t *sig = malloc(L * ns * sizeof *sig), *qsig = malloc(NQ * ns * sizeof *qsig);
    mr_rng r;
    mr_rng_seed(&r, 8);
    mr_rng_fill_normal(&r, S, L * D, 1.0f);
    mr_rng_fill_normal(&r, Q, NQ * D, 1.0f);
    assert_int_equal(sdim_signatures_batch(h, S, L, sig, NULL, NULL), 0);
    assert_int_equal(sdim_signatures_batch(h, Q, NQ, qsig, NULL, NULL), 0);
    void *table = calloc(1, sdim_table_bytes(l));
    for (int j = 0; j < L; j++) {
        uint32_t one[12];
        sdim_signatures(h, S + j * D, one);
        assert_memory_equal(one, sig + j * ns, sizeof one);
        assert_int_equal(sdim_table_add(l, table, sig + j * ns, S + j * D, NULL), 0);
    }
    float *out = mr_floats_alloc(NQ * D);
    for (int pool = SDIM_POOL_SUM; pool <= SDIM_POOL_MEAN; pool++) {
        sdim_table_interest_batch(l, table, qsig, NQ, (sdim_pool)pool, out);
        for (int qi = 0; qi < NQ; qi++) {
            double ref[D] = {0};
            for (int i = 0; i < ns; i++) {
                double acc[D] = {0}, nrm = 0;
                int cnt = 0;
                for (int j = 0; j < L; j++)
                    if (sig[j * ns + i] == qsig[qi * ns + i]) {
                        cnt++;
                        for (int k = 0; k < D; k++) acc[k] += S[j * D + k];
                    }
                for (int k = 0; k < D; k++) nrm += acc[k] * acc[k];
                double sc = pool == SDIM_POOL_SUM    ? 1.0
                            : pool == SDIM_POOL_MEAN ? (cnt ? 1.0 / cnt : 0.0)
                                                     : (nrm > 0 ? 1.0 / sqrt(nrm) : 0.0);
                for (int k = 0; k < D; k++) ref[k] += sc * acc[k] / ns;
            }
            for (int k = 0; k < D; k++)
                assert_true(fabs(out[qi * D + k] - ref[k]) < 1e-3 * (1 + fabs(ref[k])));
        }
    }
    /* Counts sum to L per signature. */
    for (int i = 0; i < ns; i++) {
        uint32_t c = 0;
        for (int b = 0; b < l->nbuckets; b++) c += sdim_table_count(l, table, i, (uint32_t)b);
        assert_int_equal(c, L);
    }
    /* Removing every item empties the table exactly. */
    for (int j = L - 1; j >= 0; j--)
        assert_int_equal(sdim_table_sub(l, table, sig + j * ns, S + j * D, NULL), 0);
    void *zero = calloc(1, sdim_table_bytes(l));
    assert_memory_equal(table, zero, sdim_table_bytes(l));
    free(zero);
    free(table);
    mr_floats_free(out);
    free(sig);
    free(qsig);
    mr_floats_free(S);
    mr_floats_free(Q);
    sdim_hasher_free(h);
}

static void test_layout_and_bad_input(void **state) {
    (void)state;
    sdim_layout l;
    mr_err e = {0};
    assert_int_equal(sdim_layout_init(&l, 128, 48, 3, &e), 0);
    /* The production setting: 16 signatures x 8 buckets x (128 + 1) cells. */
    assert_int_equal(sdim_table_cells(&l), 16 * 8 * 129);
    assert_int_equal(sdim_table_bytes(&l), 16 * 8 * 129 * 4);
    assert_int_equal(sdim_table_sum_offset(&l, 15, 7), (15 * 8 + 7) * 128);
    assert_int_equal(sdim_table_count_offset(&l, 0, 0), 16 * 8 * 128);
    assert_int_equal(sdim_table_count_offset(&l, 15, 7), sdim_table_cells(&l) - 1);
    assert_int_equal(sdim_layout_init(&l, 8, 10, 3, &e), MR_EINVAL);
    assert_int_equal(sdim_layout_init(&l, 8, 2, 3, &e), MR_EINVAL);
    assert_int_equal(sdim_layout_init(&l, 8, 48, -1, &e), MR_EINVAL);
    assert_int_equal(sdim_layout_init(&l, 0, 48, 3, &e), MR_EINVAL);
    assert_int_equal(sdim_layout_init(&l, 8, 34, 17, &e), MR_EINVAL);
    sdim_hasher *h;
    assert_int_equal(sdim_hasher_create(&h, 8, 10, 3, 1, &e), MR_EINVAL);
    assert_null(h);
    assert_int_equal(sdim_layout_init(&l, 4, 4, 2, &e), 0);
    void *t = calloc(1, sdim_table_bytes(&l));
    float x[4] = {1, 2, 3, 4};
    uint32_t bad[2] = {0, 4}, ok[2] = {1, 3};
    assert_int_equal(sdim_table_add(&l, t, bad, x, &e), MR_EINVAL);
    assert_int_equal(sdim_table_sub(&l, t, ok, x, &e), MR_ESTATE);
    assert_int_equal(sdim_table_add(&l, t, ok, x, &e), 0);
    assert_int_equal(sdim_table_count(&l, t, 1, 3), 1);
    assert_true(sdim_table_sum(&l, t, 0, 1)[3] == 4.0f);
    free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weight_matches_collision_probability),
        cmocka_unit_test(test_tau0_is_mean_pooling),
        cmocka_unit_test(test_interest_equals_brute_force),
        cmocka_unit_test(test_layout_and_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
