/* test_store_tables.c — server/store_tables.c: a version's "storage":
 * "store" table is created in the store, bulk-loaded from its
 * weights.safetensors once (the marker stops a second load: a row written
 * since survives), served through the row source with scores equal to the
 * in-memory table (fp32: bit-identical), and the errors name the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "moe/scorer.h"
#include "server/store_tables.h"

static const char *k_model =
    "{\"name\":\"t\",\"tables\":[{\"name\":\"user\",\"rows\":30,\"dim\":4},"
    "{\"name\":\"item\",\"rows\":60,\"dim\":4,\"hash\":\"double\",\"storage\":\"store\"}],"
    "\"features\":{\"categorical\":[{\"name\":\"user\",\"table\":\"user\"},{\"name\":\"item\",\"table\":\"item\"}]},"
    "\"tasks\":[{\"name\":\"click\"}],\"arch\":{\"type\":\"mmoe\",\"experts\":2}}";

static void score(const moe_model *m, float *out) {
    moe_scorer *s;
    mr_err e;
    assert_int_equal(moe_scorer_create(&s, m, &e), 0);
    assert_int_equal(moe_scorer_begin(s, 8, &e), 0);
    const char *u = "u1";
    assert_int_equal(moe_scorer_set_cat(s, MOE_ALL_ROWS, 0, &u, NULL, 1, &e), 0);
    for (int i = 0; i < 8; i++) {
        char v[16];
        snprintf(v, sizeof v, "item%d", i);
        const char *vp = v;
        assert_int_equal(moe_scorer_set_cat(s, i, 1, &vp, NULL, 1, &e), 0);
    }
    assert_int_equal(moe_scorer_run(s, out, NULL, &e), 0);
    moe_scorer_free(s);
}

static void test_names(void **state) {
    (void)state;
    char n[STORE_TABLE_NAME_MAX];
    mr_err e;
    assert_int_equal(mr_store_table_name(n, "demo", "12", "item", &e), 0);
    assert_string_equal(n, "mv.demo.12.item");
    assert_int_equal(
        mr_store_table_name(n, "a-very-long-model-name-indeed", "10", "item_table_x", &e),
        MR_EINVAL);
    assert_non_null(strstr(e.msg, "table 'item_table_x'"));
    assert_non_null(strstr(e.msg, "at most 47"));
    assert_int_equal(mr_store_table_name(n, "de mo", "1", "item", &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "[a-zA-Z0-9_.-]"));
}

static void test_attach(void **state) {
    (void)state;
    char root[256], dir[300], db[300];
    snprintf(root, sizeof root, "%s/moerec-stabs-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(root));
    snprintf(dir, sizeof dir, "%s/1", root);
    snprintf(db, sizeof db, "%s/db", root);
    mr_err e;
    moe_model *m = NULL, *l = NULL;
    assert_int_equal(moe_model_from_json(&m, k_model, 3, &e), 0);
    assert_int_equal(moe_model_save(m, dir, &e), 0);
    float want[8], got[8];
    score(m, want);
    mr_store_table tabs[MOE_MAX_TABLES];
    /* no store: the table is named */
    memset(tabs, 0, sizeof tabs);
    assert_int_equal(moe_model_load_flags(&l, dir, MOE_LOAD_STORE_LAZY, &e), 0);
    assert_int_equal(mr_store_tables_attach(l, dir, "t", "1", NULL, db, tabs, &e), MR_ESTATE);
    assert_non_null(strstr(e.msg, "table 'item'"));
    moe_model_free(l);

    mr_store *st;
    assert_int_equal(store_open(&st, db, NULL, &e), 0);
    memset(tabs, 0, sizeof tabs);
    assert_int_equal(moe_model_load_flags(&l, dir, MOE_LOAD_STORE_LAZY, &e), 0);
    assert_int_equal(mr_store_tables_attach(l, dir, "t", "1", st, db, tabs, &e), 0);
    assert_null(tabs[0].t); /* in memory */
    assert_non_null(tabs[1].t);
    assert_string_equal(tabs[1].name, "mv.t.1.item");
    assert_null(l->tables[1].data);
    score(l, got);
    assert_memory_equal(got, want, sizeof got); /* fp32: bit-identical */
    uint64_t rows = 0;
    assert_int_equal(emb_table_loaded(st, tabs[1].t, &rows, &e), 0);
    assert_int_equal(rows, 60);
    /* a row written since the load survives a second attach (no second bulk load) */
    uint64_t id = 7;
    float v[4] = {0.5f, -0.5f, 0.25f, 1};
    assert_int_equal(emb_store_put(st, tabs[1].t, &id, 1, v, 4, &e), 0);
    moe_model_free(l);
    memset(tabs, 0, sizeof tabs);
    assert_int_equal(moe_model_load_flags(&l, dir, MOE_LOAD_STORE_LAZY, &e), 0);
    assert_int_equal(mr_store_tables_attach(l, dir, "t", "1", st, db, tabs, &e), 0);
    float r[4];
    assert_int_equal(emb_store_get_uncached(st, tabs[1].t, &id, 1, r, NULL, &e), 0);
    assert_memory_equal(r, v, sizeof v);
    moe_model_free(l);
    /* a version whose tensor is missing: the load fails naming it, nothing marked loaded */
    char cmd[700], dir2[300];
    snprintf(dir2, sizeof dir2, "%s/2", root);
    assert_int_equal(moe_model_save(m, dir2, &e), 0);
    snprintf(cmd, sizeof cmd, "sed -i 's/\"emb.item\"/\"emb.itex\"/' '%s/weights.safetensors'",
             dir2);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(moe_model_load_flags(&l, dir2, MOE_LOAD_STORE_LAZY, &e), MR_ECORRUPT);
    assert_non_null(strstr(e.msg, "emb.item"));
    store_close(st);
    moe_model_free(m);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_attach),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
