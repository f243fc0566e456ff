/* test_store_size.c — store_get_sizes (index/store/store_size.c): the
 * families in their documented order, keys counted while rows sit in the
 * memtable, bytes moving to SST files after a compaction, an embedding
 * table's family listed by its name, and cap respected; store_unflushed_bytes
 * is the memtables' sum, and drops once they are flushed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "index/store/store.h"
#include "store_testutil.h"

typedef store_test_fx fx;

static int setup(void **state) {
    store_config c;
    store_config_init(&c);
    c.cache_bytes = 0;
    *state = store_test_fx_open("size", &c);
    return *state ? 0 : -1;
}

static int teardown(void **state) {
    store_test_fx_close(*state);
    return 0;
}

static const store_cf_size *find(const store_cf_size *s, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(s[i].name, name) == 0) return &s[i];
    return NULL;
}

static void test_fixed_families_empty_store(void **state) {
    fx *f = *state;
    store_cf_size s[STORE_MAX_FAMILIES];
    int n = store_get_sizes(f->st, s, STORE_MAX_FAMILIES);
    const char *want[] = {"meta", "items", "users", "events", "sdim", "itemlog"};
    assert_int_equal(n, 6);
    for (int i = 0; i < 6; i++) {
        assert_string_equal(s[i].name, want[i]);
        assert_int_equal(s[i].sst_bytes, 0);
    }
    assert_int_equal(find(s, n, "items")->keys, 0);
    assert_int_equal(store_get_sizes(f->st, s, 2), 2); /* cap respected */
    assert_string_equal(s[1].name, "items");
}

static void test_items_counted_then_flushed(void **state) {
    fx *f = *state;
    enum { N = 300 };
    uint64_t ids[N];
    store_blob b[N];
    char text[256];
    memset(text, 'x', sizeof text);
    for (int i = 0; i < N; i++) {
        ids[i] = 7 + (uint64_t)i;
        b[i] = (store_blob){text, sizeof text};
    }
    assert_int_equal(item_store_put(f->st, ids, N, b, NULL), 0);
    store_cf_size s[STORE_MAX_FAMILIES];
    int n = store_get_sizes(f->st, s, STORE_MAX_FAMILIES);
    const store_cf_size *it = find(s, n, "items");
    assert_non_null(it);
    assert_int_equal(it->keys, N); /* memtable keys are counted */
    assert_int_equal(it->sst_bytes, 0);
    assert_true(it->memtable_bytes >= N * sizeof text / 2);
    uint64_t unflushed = store_unflushed_bytes(f->st), sum = 0;
    for (int i = 0; i < n; i++) sum += s[i].memtable_bytes;
    assert_true(unflushed >= sum); /* "default" too, which get_sizes leaves out */
    assert_true(unflushed >= N * sizeof text / 2);
    assert_int_equal(find(s, n, "users")->keys, 0);
    assert_int_equal(store_compact(f->st, NULL), 0); /* flushes, then compacts */
    assert_true(store_unflushed_bytes(f->st) < unflushed);
    n = store_get_sizes(f->st, s, STORE_MAX_FAMILIES);
    it = find(s, n, "items");
    assert_int_equal(it->keys, N);
    assert_true(it->sst_bytes > 0);
    assert_true(it->live_bytes > 0 && it->live_bytes <= it->sst_bytes);
    assert_int_equal(find(s, n, "users")->sst_bytes, 0);
}

static void test_embedding_table_listed(void **state) {
    fx *f = *state;
    assert_int_equal(emb_table_create(f->st, "user_emb", 4, EMB_FP32, 0, NULL), 0);
    mr_emb_table *t = emb_store_table(f->st, "user_emb", NULL);
    assert_non_null(t);
    uint64_t ids[3] = {1, 2, 3};
    float v[12] = {0};
    assert_int_equal(emb_store_put(f->st, t, ids, 3, v, 12, NULL), 0);
    store_cf_size s[STORE_MAX_FAMILIES];
    int n = store_get_sizes(f->st, s, STORE_MAX_FAMILIES);
    assert_int_equal(n, 7);
    assert_string_equal(s[6].name, "emb.user_emb");
    assert_int_equal(s[6].keys, 3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fixed_families_empty_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_items_counted_then_flushed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_embedding_table_listed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
