/* test_store_blob.c — item and user blobs (index/store/store_blob.c): batched
 * round trips through the cache with exact counters, absent vs empty,
 * oversized or inconsistent batches rejected with nothing written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "index/store/store.h"
#include "store_testutil.h"

typedef struct fx {
    char dir[256];
    mr_store *st;
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    assert_non_null(store_test_tmpdir(f->dir, sizeof f->dir, "blob"));
    store_config c;
    store_config_init(&c);
    c.cache_bytes = 1 << 20;
    c.max_value_bytes = 4096;
    assert_int_equal(store_open(&f->st, f->dir, &c, NULL), 0);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    store_close(f->st);
    store_test_rmrf(f->dir);
    free(f);
    return 0;
}

static void test_items_round_trip_and_cache(void **state) {
    fx *f = *state;
    enum { N = 50 };
    uint64_t ids[N];
    char text[N][32];
    store_blob in[N];
    for (int i = 0; i < N; i++) {
        ids[i] = 1000 + (uint64_t)i * 3;
        snprintf(text[i], sizeof text[i], "item-%d;genre=%d", i, i % 7);
        in[i] = (store_blob){text[i], strlen(text[i])};
    }
    in[7].len = 0; /* a present, empty blob */
    assert_int_equal(item_store_put(f->st, ids, N, in, NULL), 0);
    uint64_t q[N + 1];
    memcpy(q, ids, sizeof ids);
    q[N] = 5; /* absent */
    store_blob out[N + 1];
    for (int pass = 0; pass < 2; pass++) {
        void *buf = NULL;
        store_stats s0, s1;
        store_get_stats(f->st, &s0);
        assert_int_equal(item_store_get(f->st, q, N + 1, out, &buf, NULL), 0);
        store_get_stats(f->st, &s1);
        for (int i = 0; i < N; i++) {
            assert_non_null(out[i].data);
            assert_int_equal(out[i].len, in[i].len);
            assert_memory_equal(out[i].data, in[i].data, in[i].len);
        }
        assert_null(out[N].data);
        if (pass == 0) {
            assert_int_equal(s1.cache_misses - s0.cache_misses, N + 1);
            assert_int_equal(s1.db_multigets - s0.db_multigets, 1);
            assert_int_equal(s1.db_rows_found - s0.db_rows_found, N);
        } else { /* everything present came from the cache; the absent id asked again */
            assert_int_equal(s1.cache_hits - s0.cache_hits, N);
            assert_int_equal(s1.db_rows_read - s0.db_rows_read, 1);
        }
        free(buf);
    }
    /* an update is visible through the cache */
    store_blob nb = {"changed", 7};
    assert_int_equal(item_store_put(f->st, ids + 3, 1, &nb, NULL), 0);
    void *buf;
    assert_int_equal(item_store_get(f->st, ids + 3, 1, out, &buf, NULL), 0);
    assert_int_equal(out[0].len, 7);
    assert_memory_equal(out[0].data, "changed", 7);
    free(buf);
}

static void test_bad_batches_write_nothing(void **state) {
    fx *f = *state;
    uint64_t ids[3] = {1, 2, 3};
    char *big = calloc(1, 5000);
    store_blob in[3] = {{"a", 1}, {"b", 1}, {big, 5000}};
    mr_err e;
    assert_int_equal(item_store_put(f->st, ids, 3, in, &e), MR_ENOMEM);
    assert_non_null(strstr(e.msg, "item 3"));
    assert_non_null(strstr(e.msg, "max_value_bytes"));
    assert_int_equal(user_store_put(f->st, ids, 3, in, &e), MR_ENOMEM);
    in[2] = (store_blob){NULL, 4};
    assert_int_equal(item_store_put(f->st, ids, 3, in, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "NULL"));
    assert_int_equal(item_store_put(f->st, NULL, 3, in, &e), MR_EINVAL);
    store_blob out[3];
    void *buf;
    assert_int_equal(item_store_get(f->st, ids, 3, out, &buf, NULL), 0);
    for (int i = 0; i < 3; i++) assert_null(out[i].data);
    free(buf);
    store_stats s;
    store_get_stats(f->st, &s);
    assert_int_equal(s.batches_written, 0);
    assert_int_equal(s.rows_written, 0);
    free(big);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_items_round_trip_and_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_batches_write_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
