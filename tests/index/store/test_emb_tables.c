/* test_emb_tables.c — the life cycle of embedding tables beyond create
 * (index/store/emb_tables.c): drop removes the family, schema and marker
 * (a reopen does not see it, the name is free for another schema), slots
 * are reused past STORE_MAX_TABLES creates, ids are not (a dropped table's
 * cached rows never answer for a new one), the load marker persists, the
 * prefix listing, synced puts; and what is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "index/store/store.h"
#include "store_testutil.h"

#define DIM 4

static mr_store *open_at(const char *dir, store_mode mode) {
    store_config c;
    store_config_init(&c);
    c.cache_bytes = 1 << 20;
    c.mode = mode;
    mr_store *st = NULL;
    mr_err e;
    assert_int_equal(store_open(&st, dir, &c, &e), 0);
    return st;
}

static void test_drop_and_reopen(void **state) {
    (void)state;
    char dir[256];
    assert_non_null(store_test_tmpdir(dir, sizeof dir, "embtab"));
    mr_store *st = open_at(dir, STORE_PRIMARY);
    mr_err e;
    assert_int_equal(emb_table_create(st, "mv.m.1.item", DIM, EMB_INT8, 0, &e), 0);
    assert_int_equal(emb_table_create(st, "mv.m.2.item", DIM, EMB_FP16, 0, &e), 0);
    assert_int_equal(emb_table_create(st, "other", DIM, EMB_FP32, 0, &e), 0);
    char names[4][STORE_TABLE_NAME_MAX];
    assert_int_equal(emb_table_list(st, "mv.", names, 4), 2);
    assert_string_equal(names[0], "mv.m.1.item");
    assert_string_equal(names[1], "mv.m.2.item");
    assert_int_equal(emb_table_list(st, NULL, names, 1), 3); /* the count, whatever cap is */
    mr_emb_table *t = emb_store_table(st, "mv.m.1.item", &e);
    uint64_t rows = 7;
    assert_int_equal(emb_table_loaded(st, t, &rows, &e), 0);
    assert_int_equal(rows, 0); /* never marked */
    assert_int_equal(emb_table_set_loaded(st, t, 1234, &e), 0);
    float v[DIM] = {1, 2, 3, 4};
    uint64_t id = 5;
    assert_int_equal(emb_store_put_sync(st, t, &id, 1, v, DIM, &e), 0);
    assert_int_equal(emb_table_drop(st, "mv.m.2.item", &e), 0);
    assert_null(emb_store_table(st, "mv.m.2.item", &e));
    assert_int_equal(e.code, MR_ENOTFOUND);
    assert_int_equal(emb_table_drop(st, "mv.m.2.item", &e), MR_ENOTFOUND);
    assert_int_equal(emb_store_ntables(st), 2);
    /* per-family sizes (/metrics) skip the dropped table's empty slot */
    store_cf_size sz[STORE_MAX_FAMILIES];
    int nsz = store_get_sizes(st, sz, STORE_MAX_FAMILIES), live = 0;
    for (int i = 0; i < nsz; i++) {
        assert_string_not_equal(sz[i].name, "emb.mv.m.2.item");
        live += !strcmp(sz[i].name, "emb.mv.m.1.item");
    }
    assert_int_equal(live, 1);
    store_close(st);

    st = open_at(dir, STORE_PRIMARY);
    assert_int_equal(emb_table_list(st, "mv.", names, 4), 1);
    assert_string_equal(names[0], "mv.m.1.item");
    t = emb_store_table(st, "mv.m.1.item", &e);
    assert_int_equal(emb_table_loaded(st, t, &rows, &e), 0);
    assert_int_equal(rows, 1234);
    float got[DIM];
    uint8_t found = 0;
    assert_int_equal(emb_store_get(st, t, &id, 1, got, &found, &e), 0);
    assert_int_equal(found, 1);
    assert_true(got[3] > 3.9f && got[3] < 4.1f); /* int8 */
    /* the dropped name is free for another schema; its marker is gone */
    assert_int_equal(emb_table_create(st, "mv.m.2.item", DIM + 1, EMB_FP32, 0, &e), 0);
    assert_int_equal(emb_table_loaded(st, emb_store_table(st, "mv.m.2.item", &e), &rows, &e), 0);
    assert_int_equal(rows, 0);
    store_close(st);

    st = open_at(dir, STORE_READ_ONLY);
    assert_int_equal(emb_table_drop(st, "mv.m.1.item", &e), MR_EPERM);
    assert_int_equal(emb_table_set_loaded(st, emb_store_table(st, "mv.m.1.item", &e), 1, &e),
                     MR_EPERM);
    store_close(st);
}

static void test_slots_reused_ids_not(void **state) {
    (void)state;
    char dir[256];
    assert_non_null(store_test_tmpdir(dir, sizeof dir, "embtab2"));
    mr_store *st = open_at(dir, STORE_PRIMARY);
    mr_err e;
    float v[DIM] = {9, 9, 9, 9}, got[DIM];
    uint64_t id = 3;
    uint8_t found;
    uint32_t last_id = 0;
    for (int round = 0; round < STORE_MAX_TABLES + 8; round++) {
        assert_int_equal(emb_table_create(st, "t", DIM, EMB_FP32, 0, &e), 0);
        mr_emb_table *t = emb_store_table(st, "t", &e);
        emb_table_info info;
        emb_table_get_info(t, &info);
        if (round) assert_true(info.id > last_id);
        last_id = info.id;
        /* the previous incarnation's cached row does not answer */
        assert_int_equal(emb_store_get(st, t, &id, 1, got, &found, &e), 0);
        assert_int_equal(found, 0);
        assert_int_equal(emb_store_put(st, t, &id, 1, v, DIM, &e), 0);
        assert_int_equal(emb_store_get(st, t, &id, 1, got, &found, &e), 0); /* cached now */
        assert_int_equal(found, 1);
        assert_int_equal(emb_table_drop(st, "t", &e), 0);
    }
    assert_int_equal(emb_store_ntables(st), 0);
    store_close(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drop_and_reopen),
        cmocka_unit_test(test_slots_reused_ids_not),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
