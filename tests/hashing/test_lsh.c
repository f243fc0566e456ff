/* test_lsh.c — LSH banding: recall follows 1 - (1 - s^r)^b, remove, hit
 * order, bad input (hashing/lsh.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <cmocka.h>

#include "common/rng.h"
#include "hashing/minhash.h"

enum { B = 10, R = 4, K = B * R };

/* Query sets at Jaccard s from indexed sets: the fraction of queries whose
 * partner is among the candidates follows the S-curve. */
static void test_recall_follows_s_curve(void **state) {
    (void)state;
    enum { T = 300, SZ = 60 };
    minhash *mh;
    assert_int_equal(minhash_create(&mh, K, 3, NULL), 0);
    mr_rng r;
    mr_rng_seed(&r, 4);
    const double sims[] = {0.2, 0.4, 0.6, 0.8};
    uint64_t *qsig = malloc((size_t)T * K * sizeof *qsig);
    lsh_hit *hits = malloc(T * sizeof *hits);
    for (size_t si = 0; si < sizeof sims / sizeof sims[0]; si++) {
        /* |A| = |B| = SZ with c common: J = c / (2 SZ - c). */
        int c = (int)lround(2.0 * SZ * sims[si] / (1.0 + sims[si]));
        double jac = (double)c / (2 * SZ - c);
        lsh_index *ix;
        assert_int_equal(lsh_index_create(&ix, B, R, 9, NULL), 0);
        for (int t = 0; t < T; t++) {
            uint64_t A[SZ], Bs[SZ], sig[K];
            for (int i = 0; i < SZ; i++) A[i] = Bs[i] = mr_rng_u64(&r);
            for (int i = c; i < SZ; i++) Bs[i] = mr_rng_u64(&r);
            minhash_signature(mh, Bs, SZ, sig);
            assert_int_equal(lsh_index_insert(ix, (uint64_t)t, sig, NULL), 0);
            minhash_signature(mh, A, SZ, qsig + (size_t)t * K);
        }
        assert_int_equal(lsh_index_size(ix), T);
        int found = 0;
        for (int t = 0; t < T; t++) {
            size_t n;
            assert_int_equal(lsh_index_query(ix, qsig + (size_t)t * K, hits, T, &n, NULL), 0);
            for (size_t i = 0; i < n && i < T; i++) found += hits[i].key == (uint64_t)t;
        }
        double recall = (double)found / T, expect = lsh_recall_curve(jac, B, R);
        print_message("s %.3f: recall %.3f, S-curve %.3f\n", jac, recall, expect);
        /* Binomial sd over 300 queries <= 0.029. */
        assert_true(fabs(recall - expect) < 0.1);
        lsh_index_free(ix);
    }
    free(qsig);
    free(hits);
    minhash_free(mh);
}

static void test_remove_and_order(void **state) {
    (void)state;
    lsh_index *ix;
    mr_err e = {0};
    assert_int_equal(lsh_index_create(&ix, B, R, 1, &e), 0);
    uint64_t q[K], near[K], far[K];
    for (int i = 0; i < K; i++) {
        q[i] = near[i] = far[i] = (uint64_t)i;
        if (i >= R) far[i] = 1000 + (uint64_t)i; /* shares band 0 only */
        if (i >= (B - 1) * R) near[i] = 5000;    /* shares bands 0..B-2 */
    }
    assert_int_equal(lsh_index_insert(ix, 7, far, &e), 0);
    assert_int_equal(lsh_index_insert(ix, 3, near, &e), 0);
    assert_int_equal(lsh_index_insert(ix, 5, q, &e), 0);
    lsh_hit hits[4];
    size_t n;
    assert_int_equal(lsh_index_query(ix, q, hits, 4, &n, &e), 0);
    assert_int_equal(n, 3);
    assert_int_equal(hits[0].key, 5);
    assert_int_equal(hits[0].bands, B);
    assert_int_equal(hits[1].key, 3);
    assert_int_equal(hits[1].bands, B - 1);
    assert_int_equal(hits[2].key, 7);
    assert_int_equal(hits[2].bands, 1);
    /* cap smaller than the candidates: truncated, total still reported. */
    assert_int_equal(lsh_index_query(ix, q, hits, 1, &n, &e), 0);
    assert_int_equal(n, 3);
    assert_int_equal(hits[0].key, 5);
    assert_int_equal(lsh_index_remove(ix, 3, near, &e), 0);
    assert_int_equal(lsh_index_remove(ix, 3, near, &e), MR_ENOTFOUND);
    assert_int_equal(lsh_index_remove(ix, 7, q, &e), MR_ENOTFOUND); /* wrong signature */
    assert_int_equal(lsh_index_size(ix), 2);
    assert_int_equal(lsh_index_query(ix, q, hits, 4, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_int_equal(hits[0].key, 5);
    assert_int_equal(hits[1].key, 7);
    /* The freed entries are recycled. */
    assert_int_equal(lsh_index_insert(ix, 3, near, &e), 0);
    assert_int_equal(lsh_index_query(ix, q, hits, 4, &n, &e), 0);
    assert_int_equal(n, 3);
    lsh_index_free(ix);
}

/* Churn: many items in their own buckets, half of them removed (emptying
 * buckets), then every remaining item is still found under its own
 * signature and can be removed, and removed ones are gone. An emptied bucket
 * must leave the other buckets' probe chains intact. */
static void test_remove_keeps_other_buckets(void **state) {
    (void)state;
    enum { N = 4000, BB = 4, RR = 2, KK = BB * RR };
    lsh_index *ix;
    assert_int_equal(lsh_index_create(&ix, BB, RR, 9, NULL), 0);
    mr_rng r;
    mr_rng_seed(&r, 10);
    uint64_t *sig = malloc((size_t)N * KK * sizeof *sig);
    for (int i = 0; i < N * KK; i++) sig[i] = mr_rng_u64(&r); /* distinct buckets */
    for (int i = 0; i < N; i++)
        assert_int_equal(lsh_index_insert(ix, (uint64_t)i, sig + (size_t)i * KK, NULL), 0);
    for (int i = 0; i < N; i += 2)
        assert_int_equal(lsh_index_remove(ix, (uint64_t)i, sig + (size_t)i * KK, NULL), 0);
    assert_int_equal(lsh_index_size(ix), N / 2);
    lsh_hit hits[4];
    size_t tot;
    for (int i = 0; i < N; i++) {
        assert_int_equal(lsh_index_query(ix, sig + (size_t)i * KK, hits, 4, &tot, NULL), 0);
        if (i % 2) {
            assert_int_equal(tot, 1);
            assert_int_equal(hits[0].key, (uint64_t)i);
            assert_int_equal(hits[0].bands, BB);
        } else {
            assert_int_equal(tot, 0);
        }
    }
    for (int i = 1; i < N; i += 2) /* and re-inserting into emptied buckets works */
        assert_int_equal(lsh_index_remove(ix, (uint64_t)i, sig + (size_t)i * KK, NULL), 0);
    for (int i = 0; i < N; i += 2)
        assert_int_equal(lsh_index_insert(ix, (uint64_t)i, sig + (size_t)i * KK, NULL), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(lsh_index_query(ix, sig + (size_t)i * KK, hits, 4, &tot, NULL), 0);
        assert_int_equal(tot, i % 2 ? 0u : 1u);
    }
    free(sig);
    lsh_index_free(ix);
}

static void test_bad_input_and_curve(void **state) {
    (void)state;
    lsh_index *ix;
    mr_err e = {0};
    assert_int_equal(lsh_index_create(&ix, 0, 4, 1, &e), MR_EINVAL);
    assert_null(ix);
    assert_int_equal(lsh_index_create(&ix, 4, 0, 1, &e), MR_EINVAL);
    assert_int_equal(lsh_index_create(&ix, 4096, 2, 1, &e), MR_EINVAL);
    assert_true(fabs(lsh_recall_curve(1.0, 5, 5) - 1.0) < 1e-12);
    assert_true(lsh_recall_curve(0.0, 5, 5) == 0.0);
    assert_true(lsh_recall_curve(0.5, 20, 5) > lsh_recall_curve(0.4, 20, 5));
    lsh_index_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recall_follows_s_curve),
        cmocka_unit_test(test_remove_and_order),
        cmocka_unit_test(test_remove_keeps_other_buckets),
        cmocka_unit_test(test_bad_input_and_curve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
