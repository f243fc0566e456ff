/* test_minhash.c — MinHash agreement vs Jaccard, streaming updates, empty
 * sets, bad input (hashing/minhash.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <cmocka.h>

#include "common/rng.h"
#include "hashing/minhash.h"

/* A = common + onlyA, B = common + onlyB over fresh random ids:
 * Jaccard = c / (c + a + b). */
static void make_pair(mr_rng *r, int c, int a, int b, uint64_t *A, uint64_t *B) {
    for (int i = 0; i < c; i++) A[i] = B[i] = mr_rng_u64(r);
    for (int i = 0; i < a; i++) A[c + i] = mr_rng_u64(r);
    for (int i = 0; i < b; i++) B[c + i] = mr_rng_u64(r);
}

static void test_agreement_matches_jaccard(void **state) {
    (void)state;
    enum { K = 128, TRIALS = 40 };
    minhash *mh;
    assert_int_equal(minhash_create(&mh, K, 17, NULL), 0);
    mr_rng r;
    mr_rng_seed(&r, 2);
    const int shapes[][3] = {{10, 90, 0}, {50, 25, 25}, {80, 10, 10}, {0, 50, 50}, {90, 5, 5}};
    uint64_t A[100], B[100], sa[K], sb[K];
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int c = shapes[s][0], a = shapes[s][1], b = shapes[s][2];
        double jac = (double)c / (c + a + b), est = 0;
        for (int t = 0; t < TRIALS; t++) {
            make_pair(&r, c, a, b, A, B);
            minhash_signature(mh, A, (size_t)(c + a), sa);
            minhash_signature(mh, B, (size_t)(c + b), sb);
            est += minhash_similarity(sa, sb, K) / TRIALS;
        }
        print_message("jaccard %.3f: minhash estimate %.4f\n", jac, est);
        /* 5120 agreements per shape: binomial sd <= 0.007. */
        assert_true(fabs(est - jac) < 0.03);
    }
    minhash_free(mh);
}

static void test_update_is_union_and_duplicates_harmless(void **state) {
    (void)state;
    enum { K = 64 };
    minhash *mh;
    assert_int_equal(minhash_create(&mh, K, 5, NULL), 0);
    uint64_t ids[30], twice[60], s1[K], s2[K], s3[K];
    for (int i = 0; i < 30; i++) ids[i] = (uint64_t)i * 1000003u, twice[i] = twice[30 + i] = ids[i];
    minhash_signature(mh, ids, 30, s1);
    minhash_signature(mh, ids, 10, s2);
    minhash_update(mh, s2, ids + 10, 20);
    assert_memory_equal(s1, s2, sizeof s1);
    minhash_signature(mh, twice, 60, s3);
    assert_memory_equal(s1, s3, sizeof s1);
    assert_true(minhash_similarity(s1, s3, K) == 1.0);
    /* Empty set: all EMPTY, similar to nothing (not even another empty set). */
    minhash_signature(mh, NULL, 0, s2);
    for (int i = 0; i < K; i++) assert_true(s2[i] == MINHASH_EMPTY);
    assert_true(minhash_similarity(s2, s2, K) == 0.0);
    assert_true(minhash_similarity(s1, s2, K) == 0.0);
    /* Another seed gives other permutations. */
    minhash *mh2;
    assert_int_equal(minhash_create(&mh2, K, 6, NULL), 0);
    minhash_signature(mh2, ids, 30, s3);
    assert_true(minhash_similarity(s1, s3, K) < 0.2);
    minhash_free(mh2);
    minhash_free(mh);
}

static void test_bad_input(void **state) {
    (void)state;
    minhash *mh;
    mr_err e = {0};
    assert_int_equal(minhash_create(&mh, 0, 1, &e), MR_EINVAL);
    assert_null(mh);
    assert_int_equal(minhash_create(&mh, MINHASH_MAX_K + 1, 1, &e), MR_EINVAL);
    minhash_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agreement_matches_jaccard),
        cmocka_unit_test(test_update_is_union_and_duplicates_harmless),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
