/* test_item_log.c — the catalogue log and item deletion
 * (index/store/item_log.c): one record per item, the newest write wins;
 * a delete drops the item's blob and vector (cached copies too) and
 * survives reopening; bad batches change nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "index/store/item_log.h"
#include "index/store/store.h"
#include "store_testutil.h"

typedef struct fx {
    char dir[256];
    mr_store *st;
    mr_emb_table *t;
} fx;

static void fx_open(fx *f) {
    store_config c;
    store_config_init(&c);
    c.cache_bytes = 1 << 20;
    assert_int_equal(store_open(&f->st, f->dir, &c, NULL), 0);
    assert_int_equal(emb_table_create(f->st, "items", 4, EMB_FP32, 0, NULL), 0);
    f->t = emb_store_table(f->st, "items", NULL);
    assert_non_null(f->t);
}

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    assert_non_null(store_test_tmpdir(f->dir, sizeof f->dir, "itemlog"));
    fx_open(f);
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

typedef struct seen {
    uint64_t ids[64];
    uint8_t ops[64];
    size_t n, calls;
} seen;

static int collect(const uint64_t *ids, const uint8_t *ops, size_t n, void *arg, mr_err *e) {
    (void)e;
    seen *s = arg;
    for (size_t i = 0; i < n && s->n < 64; i++, s->n++) {
        s->ids[s->n] = ids[i];
        s->ops[s->n] = ops[i];
    }
    s->calls++;
    return 0;
}

static void test_log_newest_wins_and_delete(void **state) {
    fx *f = *state;
    uint64_t ids[3] = {30, 10, 20};
    float v[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    store_blob b[3] = {{"a", 1}, {"b", 1}, {"c", 1}};
    assert_int_equal(emb_store_put(f->st, f->t, ids, 3, v, 12, NULL), 0);
    assert_int_equal(item_store_put(f->st, ids, 3, b, NULL), 0);
    assert_int_equal(item_log_upsert(f->st, ids, 3, 1000, NULL), 0);
    float out[12];
    uint8_t found[3];
    assert_int_equal(emb_store_get(f->st, f->t, ids, 3, out, found, NULL), 0); /* cached now */
    uint64_t del[2] = {10, 99}; /* 99 was never written */
    assert_int_equal(item_store_delete(f->st, f->t, del, 2, 2000, NULL), 0);
    assert_int_equal(emb_store_get(f->st, f->t, ids, 3, out, found, NULL), 0);
    assert_int_equal(found[0], 1);
    assert_int_equal(found[1], 0);
    assert_int_equal(found[2], 1);
    store_blob got[3];
    void *buf = NULL;
    assert_int_equal(item_store_get(f->st, ids, 3, got, &buf, NULL), 0);
    assert_non_null(got[0].data);
    assert_null(got[1].data);
    free(buf);
    seen s = {0};
    assert_int_equal(item_log_scan(f->st, 2, collect, &s, NULL), 0);
    assert_int_equal(s.n, 4); /* 10, 20, 30, 99 in key order */
    assert_int_equal(s.calls, 2);
    uint64_t want[4] = {10, 20, 30, 99};
    uint8_t wop[4] = {ITEM_LOG_DELETE, ITEM_LOG_UPSERT, ITEM_LOG_UPSERT, ITEM_LOG_DELETE};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(s.ids[i], want[i]);
        assert_int_equal(s.ops[i], wop[i]);
    }
    /* Re-upsert 10: one record, an upsert again; survives reopening. */
    assert_int_equal(item_log_upsert(f->st, &del[0], 1, 3000, NULL), 0);
    store_close(f->st);
    fx_open(f);
    memset(&s, 0, sizeof s);
    assert_int_equal(item_log_scan(f->st, 100, collect, &s, NULL), 0);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.ops[0], ITEM_LOG_UPSERT);
    assert_int_equal(s.ops[3], ITEM_LOG_DELETE);
}

static int stop_early(const uint64_t *ids, const uint8_t *ops, size_t n, void *arg, mr_err *e) {
    (void)ids, (void)ops, (void)n, (void)arg;
    return mr_err_set(e, MR_EINTERNAL, "stop");
}

static void test_bad_input(void **state) {
    fx *f = *state;
    mr_err e = {0};
    assert_int_equal(item_log_upsert(f->st, NULL, 2, 0, &e), MR_EINVAL);
    assert_int_equal(item_store_delete(f->st, f->t, NULL, 2, 0, &e), MR_EINVAL);
    assert_int_equal(item_log_scan(f->st, 0, collect, NULL, &e), MR_EINVAL);
    uint64_t id = 5;
    assert_int_equal(item_log_upsert(f->st, &id, 1, 0, &e), 0);
    assert_int_equal(item_log_scan(f->st, 8, stop_early, NULL, &e), MR_EINTERNAL);
    seen s = {0};
    assert_int_equal(item_log_scan(f->st, 8, collect, &s, NULL), 0);
    assert_int_equal(s.n, 1); /* the rejected calls wrote nothing */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_log_newest_wins_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
