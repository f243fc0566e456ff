/* test_retr_minhash.c — the co-occurrence expert: items bought by the
 * same users are found from a recent item, unrelated items are not, seeds
 * are never returned, scores follow the estimated Jaccard similarity and
 * the recency weights, online interactions move items, bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "index/retrieval/retr_minhash.h"
#include "test_retr_util.h"

/* Groups of 10 items (ids g*100 + j) each bought by the same 40 users of
 * that group (users g*1000 + u), plus noise: each user also buys one item
 * of another group. */
static mr_retr *make_world(int groups, float decay) {
    retr_minhash_config c = {
        .name = "cooc", .bands = 16, .rows = 4, .seed = 9, .recency_decay = decay};
    mr_retr *r = NULL;
    mr_err e = {0};
    assert_int_equal(retr_minhash_create(&r, &c, &e), 0);
    assert_int_equal(r->dim, 0);
    int64_t n = 0, cap = (int64_t)groups * 40 * 11;
    int64_t *u = malloc((size_t)cap * sizeof *u), *it = malloc((size_t)cap * sizeof *it);
    for (int g = 0; g < groups; g++)
        for (int us = 0; us < 40; us++) {
            for (int j = 0; j < 10; j++) {
                u[n] = g * 1000 + us;
                it[n++] = g * 100 + j;
            }
            u[n] = g * 1000 + us;
            it[n++] = ((g + 1) % groups) * 100 + us % 10;
        }
    assert_int_equal(retr_minhash_add(r, u, it, n, &e), 0);
    assert_int_equal(retr_size(r), groups * 10);
    free(u);
    free(it);
    return r;
}

static void test_finds_cooccurring_items(void **s) {
    (void)s;
    mr_retr *r = make_world(5, 0);
    mr_err e = {0};
    int64_t recent[1] = {203};
    retr_user u = {recent, 1};
    int64_t ids[12];
    float sc[12];
    assert_int_equal(retr_search(r, NULL, 0, 1, 12, &u, ids, sc, &e), 0);
    int same = 0;
    for (int j = 0; j < 9; j++) {
        assert_true(ids[j] >= 200 && ids[j] < 210); /* its group first */
        assert_true(ids[j] != 203);                 /* never the seed */
        same++;
        double want = retr_minhash_similarity(r, 203, ids[j]);
        assert_true(fabs(sc[j] - want) < 1e-6);
        assert_true(want > 0.5);
    }
    assert_int_equal(same, 9);
    for (int j = 9; j < 12; j++) assert_true(ids[j] == -1 || sc[j] < sc[8]);
    /* unknown or absent history: nothing to say */
    int64_t unknown[1] = {777777};
    retr_user nu = {unknown, 1};
    assert_int_equal(retr_search(r, NULL, 0, 1, 3, &nu, ids, sc, &e), 0);
    assert_int_equal(ids[0], -1);
    assert_int_equal(retr_search(r, NULL, 0, 1, 3, NULL, ids, sc, &e), 0);
    assert_int_equal(ids[0], -1);
    retr_free(r);
}

static void test_recency_weights(void **s) {
    (void)s;
    mr_retr *r = make_world(4, 0.5f);
    mr_err e = {0};
    /* oldest seed in group 0 (weight 0.5), newest in group 3 (weight 1):
     * group 3 items rank first */
    int64_t recent[2] = {5, 301};
    retr_user u = {recent, 2};
    int64_t ids[18];
    float sc[18];
    assert_int_equal(retr_search(r, NULL, 0, 1, 18, &u, ids, sc, &e), 0);
    for (int j = 0; j < 9; j++) assert_true(ids[j] >= 300 && ids[j] < 310);
    int g0 = 0;
    for (int j = 9; j < 18; j++) g0 += ids[j] >= 0 && ids[j] < 10;
    assert_true(g0 >= 8);
    for (int j = 1; j < 18; j++) assert_true(sc[j - 1] >= sc[j]);
    retr_free(r);
}

static void test_online_update(void **s) {
    (void)s;
    mr_retr *r = make_world(3, 0);
    mr_err e = {0};
    double before = retr_minhash_similarity(r, 0, 150);
    assert_true(before == 0); /* item 150 does not exist yet */
    /* all 40 users of group 0 now buy new item 150 */
    int64_t u[40], it[40];
    for (int i = 0; i < 40; i++) {
        u[i] = i;
        it[i] = 150;
    }
    assert_int_equal(retr_minhash_add(r, u, it, 40, &e), 0);
    assert_int_equal(retr_size(r), 31);
    assert_true(retr_minhash_similarity(r, 0, 150) > 0.6);
    int64_t recent[1] = {0};
    retr_user us = {recent, 1};
    int64_t ids[10];
    float sc[10];
    assert_int_equal(retr_search(r, NULL, 0, 1, 10, &us, ids, sc, &e), 0);
    int found = 0;
    for (int j = 0; j < 10; j++) found |= ids[j] == 150;
    assert_true(found);
    retr_free(r);
}

/* A long stream of small batches: signatures keep moving items between LSH
 * buckets (many of them singletons that empty). Every add must succeed and
 * every item must stay findable from an item it shares all users with. */
static void test_streaming_adds_stay_consistent(void **s) {
    (void)s;
    enum { NI = 400, BATCH = 16, ROUNDS = 300 };
    retr_minhash_config c = {.name = "stream", .bands = 8, .rows = 2, .seed = 5};
    mr_retr *r = NULL;
    mr_err e = {0};
    assert_int_equal(retr_minhash_create(&r, &c, &e), 0);
    mr_rng g;
    mr_rng_seed(&g, 6);
    int64_t u[2 * BATCH], it[2 * BATCH];
    for (int round = 0; round < ROUNDS; round++) {
        for (int j = 0; j < BATCH; j++) { /* items 2i and 2i+1 always share the user */
            int64_t user = (int64_t)mr_rng_below(&g, 100000),
                    item = 2 * (int64_t)mr_rng_below(&g, NI / 2);
            u[2 * j] = u[2 * j + 1] = user;
            it[2 * j] = item;
            it[2 * j + 1] = item + 1;
        }
        int rc = retr_minhash_add(r, u, it, 2 * BATCH, &e);
        if (rc) fail_msg("round %d: %s", round, e.msg);
    }
    int64_t ids[4];
    float sc[4];
    int found = 0, seeded = 0;
    for (int64_t i = 0; i < NI; i += 2) {
        if (retr_minhash_similarity(r, i, i + 1) == 0) continue; /* never drawn */
        seeded++;
        assert_true(retr_minhash_similarity(r, i, i + 1) == 1.0);
        retr_user usr = {.recent = &i, .n_recent = 1};
        assert_int_equal(retr_search(r, NULL, 0, 1, 4, &usr, ids, sc, &e), 0);
        found += ids[0] == i + 1;
    }
    assert_true(seeded > NI / 4);
    assert_int_equal(found, seeded);
    retr_free(r);
}

static void test_bad_input(void **s) {
    (void)s;
    mr_retr *r = NULL;
    mr_err e = {0};
    retr_minhash_config c = {.name = "m", .bands = 5000, .rows = 2};
    assert_int_equal(retr_minhash_create(&r, &c, &e), MR_EINVAL);
    c.bands = 4;
    c.recency_decay = 1.5f;
    assert_int_equal(retr_minhash_create(&r, &c, &e), MR_EINVAL);
    c.recency_decay = 0;
    c.name = "";
    assert_int_equal(retr_minhash_create(&r, &c, &e), MR_EINVAL);
    c.name = "m";
    assert_int_equal(retr_minhash_create(&r, &c, &e), 0);
    int64_t neg = -1, ok = 1;
    assert_int_equal(retr_minhash_add(r, &neg, &ok, 1, &e), MR_EINVAL);
    assert_int_equal(retr_minhash_add(r, NULL, &ok, 1, &e), MR_EINVAL);
    assert_int_equal(retr_size(r), 0);
    int64_t ids[1];
    float sc[1];
    assert_int_equal(retr_search(r, NULL, 0, 1, 0, NULL, ids, sc, &e), MR_EINVAL);
    retr_free(r);
}

static void test_save_load(void **s) {
    (void)s;
    mr_retr *r = make_world(4, 0.7f);
    mr_err e = {0};
    char *dir = tr_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/cooc.mh", dir);
    assert_int_equal(retr_minhash_save(r, path, &e), 0);
    mr_retr *l = NULL;
    assert_int_equal(retr_minhash_load(&l, path, NULL, &e), 0);
    assert_string_equal(l->name, "cooc");
    assert_int_equal(retr_size(l), retr_size(r));
    int64_t recent[3] = {5, 110, 301};
    retr_user u = {recent, 3};
    int64_t a[20], b[20];
    float sa[20], sb[20];
    assert_int_equal(retr_search(r, NULL, 0, 1, 20, &u, a, sa, &e), 0);
    assert_int_equal(retr_search(l, NULL, 0, 1, 20, &u, b, sb, &e), 0);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_equal(sa, sb, sizeof sa);
    /* online updates continue on the loaded expert exactly as on the original */
    int64_t us[3] = {0, 1, 2}, it[3] = {777, 777, 777};
    assert_int_equal(retr_minhash_add(r, us, it, 3, &e), 0);
    assert_int_equal(retr_minhash_add(l, us, it, 3, &e), 0);
    assert_true(retr_minhash_similarity(r, 0, 777) == retr_minhash_similarity(l, 0, 777));
    retr_free(l);
    tr_flip_byte(path, 40, 0x2);
    assert_int_equal(retr_minhash_load(&l, path, NULL, &e), MR_ECORRUPT);
    assert_null(l);
    retr_free(r);
    tr_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finds_cooccurring_items),
        cmocka_unit_test(test_recency_weights),
        cmocka_unit_test(test_online_update),
        cmocka_unit_test(test_streaming_adds_stay_consistent),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_save_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
