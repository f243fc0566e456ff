/* test_idhash.c — seeded id hashing and the hash / double / frequency row
 * mappers (hashing/idhash.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "hashing/idhash.h"

static void test_hash_seeded_and_deterministic(void **state) {
    (void)state;
    int differ = 0;
    for (uint64_t id = 0; id < 1000; id++) {
        assert_int_equal(idhash_u64(id, 7), idhash_u64(id, 7));
        differ += idhash_u64(id, 7) != idhash_u64(id, 8);
    }
    assert_int_equal(differ, 1000);
    /* Little-endian bytes of the id: equals hashing the byte string. */
    unsigned char b[8] = {0x01, 0x02, 0, 0, 0, 0, 0, 0};
    assert_int_equal(idhash_u64(0x0201, 3), idhash_bytes(b, 8, 3));
}

static void test_field_hash_unambiguous(void **state) {
    (void)state;
    assert_int_not_equal(idhash_field_str("ab", "c", 1), idhash_field_str("a", "bc", 1));
    assert_int_not_equal(idhash_field_str("genre", "Drama", 1),
                         idhash_field_str("genre", "Comedy", 1));
    assert_int_equal(idhash_field_str("genre", "Drama", 1),
                     idhash_field("genre", 5, "Drama!!", 5, 1));
    assert_int_not_equal(idhash_field_str("", "x", 1), idhash_field_str("x", "", 1));
}

/* The one-call hash of short keys equals xxh3 streamed over field, 0x1f,
 * value (the definition, and the path of long keys), on both sides of the
 * copy buffer's size and for the empty parts. */
static void test_field_hash_one_call_equals_stream(void **state) {
    (void)state;
    static char field[300], value[300];
    for (int i = 0; i < 300; i++) field[i] = (char)('a' + i % 26), value[i] = (char)(i * 7 + 1);
    static const size_t nf[] = {0, 1, 5, 200, 254, 255, 299};
    for (size_t a = 0; a < sizeof nf / sizeof nf[0]; a++)
        for (size_t nv = 0; nv < 300; nv += 7)
            for (uint64_t seed = 0; seed < 3; seed++) {
                XXH3_state_t st;
                const char sep = 0x1f;
                XXH3_64bits_reset_withSeed(&st, seed * 0x9e3779b97f4a7c15ULL);
                XXH3_64bits_update(&st, field, nf[a]);
                XXH3_64bits_update(&st, &sep, 1);
                XXH3_64bits_update(&st, value, nv);
                assert_true(idhash_field(field, nf[a], value, nv, seed * 0x9e3779b97f4a7c15ULL) ==
                            XXH3_64bits_digest(&st));
            }
}

static void test_kind_names(void **state) {
    (void)state;
    mr_err e = {0};
    for (int k = IDHASH_HASH; k <= IDHASH_DOUBLE_GRAPH; k++) {
        idhash_kind out;
        assert_int_equal(idhash_kind_parse(idhash_kind_name((idhash_kind)k), &out, &e), 0);
        assert_int_equal(out, k);
    }
    idhash_kind out;
    assert_int_equal(idhash_kind_parse("cuckoo", &out, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "cuckoo"));
}

static void test_hash_mapper_uniform(void **state) {
    (void)state;
    enum { K = 64, N = 64000 };
    idhash_mapper *m;
    mr_err e = {0};
    assert_int_equal(idhash_mapper_create_hash(&m, K, 42, &e), 0);
    assert_int_equal(idhash_mapper_rows_per_id(m), 1);
    assert_int_equal(idhash_mapper_nrows(m), K);
    unsigned cnt[K] = {0};
    for (uint64_t id = 0; id < N; id++) {
        uint64_t r[IDHASH_MAX_ROWS];
        assert_int_equal(idhash_mapper_rows(m, id, r), 1);
        assert_true(r[0] < K);
        assert_int_equal(r[0], idhash_u64(id, 42) % K);
        cnt[r[0]]++;
    }
    /* Chi-square with 63 dof: mean 63, sd ~11; 140 is > 6 sd out. */
    double chi = 0, ex = (double)N / K;
    for (int i = 0; i < K; i++) chi += (cnt[i] - ex) * (cnt[i] - ex) / ex;
    assert_true(chi < 140.0);
    idhash_mapper_free(m);
    assert_int_equal(idhash_mapper_create_hash(&m, 0, 42, &e), MR_EINVAL);
    assert_null(m);
}

static void test_double_rows_differ(void **state) {
    (void)state;
    idhash_mapper *m;
    mr_err e = {0};
    assert_int_equal(idhash_mapper_create_double(&m, 1000, 1, 2, &e), 0);
    assert_int_equal(idhash_mapper_rows_per_id(m), 2);
    int same_as_single = 0;
    for (uint64_t id = 0; id < 20000; id++) {
        uint64_t r[IDHASH_MAX_ROWS];
        assert_int_equal(idhash_mapper_rows(m, id, r), 2);
        assert_true(r[0] < 1000 && r[1] < 1000);
        assert_int_not_equal(r[0], r[1]);
        assert_int_equal(r[0], idhash_u64(id, 1) % 1000);
        same_as_single += r[1] == idhash_u64(id, 1) % 1000;
    }
    assert_int_equal(same_as_single, 0);
    idhash_mapper_free(m);
    /* k = 2 is the smallest table: rows are always {0, 1}. */
    assert_int_equal(idhash_mapper_create_double(&m, 2, 1, 2, &e), 0);
    for (uint64_t id = 0; id < 100; id++) {
        uint64_t r[2];
        idhash_mapper_rows(m, id, r);
        assert_int_equal(r[0] + r[1], 1);
    }
    idhash_mapper_free(m);
    assert_int_equal(idhash_mapper_create_double(&m, 1, 1, 2, &e), MR_EINVAL);
    assert_int_equal(idhash_mapper_create_double(&m, 10, 5, 5, &e), MR_EINVAL);
}

static void test_frequency_head_owns_rows(void **state) {
    (void)state;
    enum { N = 5000, K = 100 };
    uint64_t *ids = malloc(N * sizeof *ids), *counts = malloc(N * sizeof *counts);
    /* ids are 1000 + 7i; counts a permutation-ish so the order is not the id order. */
    for (uint64_t i = 0; i < N; i++) {
        ids[i] = 1000 + 7 * i;
        counts[i] = (i * 2654435761u) % 100003;
    }
    idhash_mapper *m;
    mr_err e = {0};
    assert_int_equal(idhash_mapper_create_frequency(&m, K, (uint64_t)-1, ids, counts, N, 9, &e), 0);
    /* Rank of each id by count (desc); the top K/2 must own rows = rank. */
    int distinct_head = 1;
    uint64_t seen[K / 2] = {0};
    for (uint64_t i = 0; i < N; i++) {
        uint64_t rank = 0;
        for (uint64_t j = 0; j < N; j++)
            rank += counts[j] > counts[i] || (counts[j] == counts[i] && ids[j] < ids[i]);
        uint64_t r[2];
        assert_int_equal(idhash_mapper_rows(m, ids[i], r), 1);
        if (rank < K / 2) {
            assert_int_equal(r[0], rank);
            if (seen[r[0]]++) distinct_head = 0;
        } else {
            assert_true(r[0] >= K / 2 && r[0] < K);
        }
    }
    assert_true(distinct_head);
    /* Unseen ids hash into the tail. */
    for (uint64_t id = 1; id < 500; id += 7) {
        uint64_t r[2];
        idhash_mapper_rows(m, id, r);
        assert_true(r[0] >= K / 2 && r[0] < K);
    }
    idhash_mapper_free(m);
    /* Bad input. */
    assert_int_equal(idhash_mapper_create_frequency(&m, K, K, ids, counts, N, 9, &e), MR_EINVAL);
    assert_int_equal(idhash_mapper_create_frequency(&m, 0, 0, ids, counts, N, 9, &e), MR_EINVAL);
    ids[1] = ids[0];
    assert_int_equal(idhash_mapper_create_frequency(&m, K, 10, ids, counts, N, 9, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "twice"));
    assert_null(m);
    /* Fewer ids than head rows: all of them are head. */
    assert_int_equal(idhash_mapper_create_frequency(&m, K, 60, ids + 2, counts + 2, 3, 9, &e), 0);
    uint64_t r[2];
    idhash_mapper_rows(m, ids[2], r);
    assert_true(r[0] < 3);
    idhash_mapper_free(m);
    free(ids);
    free(counts);
}

/* Count pass -> frequency mapper; the head round-trips through
 * idhash_mapper_head (how a caller persists it). */
static void test_count_pass_and_head_round_trip(void **state) {
    (void)state;
    enum { N = 10000 };
    uint64_t *stream = malloc(N * sizeof *stream);
    for (int j = 0; j < N; j++) stream[j] = (uint64_t)(j % 97) * (uint64_t)(j % 13) + 5;
    uint64_t *ids, *counts;
    size_t nd;
    mr_err e = {0};
    assert_int_equal(idhash_count_ids(stream, N, &ids, &counts, &nd, &e), 0);
    uint64_t total = 0;
    for (size_t j = 0; j < nd; j++) {
        if (j) assert_true(ids[j] > ids[j - 1]);
        uint64_t c = 0;
        for (int t = 0; t < N; t++) c += stream[t] == ids[j];
        assert_int_equal(counts[j], c);
        total += counts[j];
    }
    assert_int_equal(total, N);
    idhash_mapper *m, *m2;
    assert_int_equal(idhash_mapper_create_frequency(&m, 500, 40, ids, counts, nd, 3, &e), 0);
    const uint64_t *hid, *hrow;
    uint64_t nh;
    idhash_mapper_head(m, &hid, &hrow, &nh);
    assert_int_equal(nh, 40);
    uint64_t *c2 = malloc(nh * sizeof *c2);
    for (uint64_t j = 0; j < nh; j++) c2[j] = nh - hrow[j];
    assert_int_equal(idhash_mapper_create_frequency(&m2, 500, nh, hid, c2, nh, 3, &e), 0);
    for (int j = 0; j < N; j++) {
        uint64_t a[2], b[2];
        idhash_mapper_rows(m, stream[j], a);
        idhash_mapper_rows(m2, stream[j], b);
        assert_int_equal(a[0], b[0]);
    }
    idhash_mapper *h;
    assert_int_equal(idhash_mapper_create_hash(&h, 10, 1, &e), 0);
    idhash_mapper_head(h, &hid, &hrow, &nh);
    assert_int_equal(nh, 0);
    idhash_mapper_free(h);
    free(ids);
    free(counts);
    assert_int_equal(idhash_count_ids(stream, 0, &ids, &counts, &nd, &e), MR_EINVAL);
    assert_null(ids);
    free(c2);
    idhash_mapper_free(m);
    idhash_mapper_free(m2);
    free(stream);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_seeded_and_deterministic),
        cmocka_unit_test(test_field_hash_unambiguous),
        cmocka_unit_test(test_field_hash_one_call_equals_stream),
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_hash_mapper_uniform),
        cmocka_unit_test(test_double_rows_differ),
        cmocka_unit_test(test_frequency_head_owns_rows),
        cmocka_unit_test(test_count_pass_and_head_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
