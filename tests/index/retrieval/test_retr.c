/* test_retr.c — the shared retriever interface: name rules, the query
 * checks every expert kind shares (dimension, k range, NaN), and dispatch
 * through the vtable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "index/retrieval/retr.h"
#include "test_retr_util.h"

/* A tiny fake expert: returns ids 0..k-1 scored by q[0] - j. */
static int fake_search(mr_retr *r, const float *q, int nq, int k, const retr_user *u, int64_t *ids,
                       float *sc, mr_err *e) {
    (void)r;
    (void)e;
    for (int i = 0; i < nq; i++)
        for (int j = 0; j < k; j++) {
            ids[i * k + j] = j + (u ? u->n_recent : 0);
            sc[i * k + j] = q[i * r->dim] - (float)j;
        }
    return 0;
}
static int64_t fake_size(mr_retr *r) { return r->dim * 100; }
static int freed;
static void fake_free(mr_retr *r) {
    (void)r;
    freed++;
}
static const retr_ops fake_ops = {fake_search, fake_size, fake_free};

static void test_names(void **s) {
    (void)s;
    mr_err e = {0};
    assert_int_equal(retr_check_name("genre_action-1.v2", &e), 0);
    assert_int_equal(retr_check_name("", &e), MR_EINVAL);
    assert_int_equal(retr_check_name(NULL, &e), MR_EINVAL);
    assert_int_equal(retr_check_name("a b", &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "bad character at 1"));
    char longname[RETR_NAME_MAX + 1];
    memset(longname, 'a', RETR_NAME_MAX);
    longname[RETR_NAME_MAX] = 0;
    assert_int_equal(retr_check_name(longname, &e), MR_EINVAL);
    longname[RETR_NAME_MAX - 1] = 0;
    assert_int_equal(retr_check_name(longname, &e), 0);
    assert_string_equal(retr_kind_name(RETR_FAISS), "faiss");
    assert_string_equal(retr_kind_name(RETR_POPULARITY), "popularity");
    assert_string_equal(retr_kind_name((retr_kind)99), "unknown");
}

static void test_checks_and_dispatch(void **s) {
    (void)s;
    mr_retr r = {.name = "fake", .kind = RETR_FAISS, .dim = 4, .ops = &fake_ops};
    float q[8] = {5, 0, 0, 0, 7, 0, 0, 0};
    int64_t ids[6];
    float sc[6];
    mr_err e = {0};
    assert_int_equal(retr_search(&r, q, 4, 2, 3, NULL, ids, sc, &e), 0);
    assert_int_equal(ids[0], 0);
    assert_true(sc[3] == 7.0f && sc[5] == 5.0f);
    int64_t recent[2] = {1, 2};
    retr_user u = {recent, 2};
    assert_int_equal(retr_search(&r, q, 4, 1, 3, &u, ids, sc, &e), 0);
    assert_int_equal(ids[0], 2);
    assert_int_equal(retr_search(&r, q, 3, 1, 3, NULL, ids, sc, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "dimension 3, index has 4"));
    assert_int_equal(retr_search(&r, q, 4, 1, 0, NULL, ids, sc, &e), MR_EINVAL);
    assert_int_equal(retr_search(&r, q, 4, 1, RETR_FETCH_MAX + 1, NULL, ids, sc, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "out of range"));
    q[6] = INFINITY;
    assert_int_equal(retr_search(&r, q, 4, 2, 3, NULL, ids, sc, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "query 1"));
    assert_int_equal(retr_search(&r, q, 4, 1, 3, NULL, ids, sc, &e), 0); /* row 0 is fine */
    retr_user bad = {NULL, 3};
    assert_int_equal(retr_search(&r, q, 4, 1, 3, &bad, ids, sc, &e), MR_EINVAL);
    assert_int_equal(retr_search(&r, q, 4, 1, 3, NULL, NULL, sc, &e), MR_EINVAL);
    assert_int_equal(retr_search(NULL, q, 4, 1, 3, NULL, ids, sc, &e), MR_EINVAL);
    assert_int_equal(retr_size(&r), 400);
    assert_int_equal(retr_size(NULL), 0);
    freed = 0;
    retr_free(&r);
    retr_free(NULL);
    assert_int_equal(freed, 1);
    int64_t m[4] = {1, 2, 3, 4};
    float ms[4] = {1, 1, 1, 1};
    retr_fill_missing(m, ms, 2, 4);
    assert_int_equal(m[1], 2);
    assert_int_equal(m[2], -1);
    assert_true(isinf(ms[3]));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_checks_and_dispatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
