/* test_model_maps.c — saving, loading and attaching table mappings
 * (moe/model_maps.c): a saved version loads with the same rows for every
 * id; a missing, corrupt or mismatched mapping file fails the load with a
 * message naming the file; a frequency head survives the round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "maps_fixture.h"
#include "moe/model_maps.h"

static char g_dir[256], g_ver[300];

/* Build the fixture model's mappings from train.csv and save version 1. */
static int setup(void **state) {
    (void)state;
    if (maps_fixture_write(g_dir, sizeof g_dir)) return -1;
    mr_err e;
    moe_model *m;
    moe_dataset *d;
    char p[512];
    snprintf(p, sizeof p, "%s/train.csv", g_dir);
    snprintf(g_ver, sizeof g_ver, "%s/1", g_dir);
    if (moe_model_from_json(&m, k_maps_model, 1, &e) || moe_dataset_read(&d, m, p, NULL, 0, &e))
        return -1;
    long idx[25];
    for (long i = 0; i < 25; i++) idx[i] = i;
    moe_maps_opts o = {.resolution = 1, .seed = 3, .base_dir = g_dir};
    int rc = moe_model_maps_build(m, d, idx, 25, &o, &e) || moe_model_save(m, g_ver, &e);
    moe_dataset_free(d);
    moe_model_free(m);
    return rc ? -1 : 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void copy_version(const char *to) {
    char cmd[1200]; /* 2 x 400 (to) + 300 (g_ver) + the words */
    snprintf(cmd, sizeof cmd, "rm -rf %s && cp -r %s %s", to, g_ver, to);
    assert_int_equal(system(cmd), 0);
}

static void test_round_trip(void **state) {
    (void)state;
    mr_err e;
    moe_model *m, *again;
    assert_int_equal(moe_model_load(&m, g_ver, &e), 0);
    assert_int_equal(moe_model_maps_missing(m), 0);
    /* save again elsewhere and reload: every value maps to the same rows */
    char v2[400];
    snprintf(v2, sizeof v2, "%s/2", g_dir);
    assert_int_equal(moe_model_save(m, v2, &e), 0);
    assert_int_equal(moe_model_load(&again, v2, &e), 0);
    static const char *vals[] = {"u1", "u2", "u3", "a", "b", "c", "e", "g", "h", "z", "unseen"};
    for (int f = 0; f < m->n_cat; f++)
        for (size_t v = 0; v < sizeof vals / sizeof vals[0]; v++) {
            uint64_t r1[IDHASH_MAX_ROWS], r2[IDHASH_MAX_ROWS];
            int n1 = moe_model_value_rows(m, f, vals[v], strlen(vals[v]), r1);
            assert_int_equal(moe_model_value_rows(again, f, vals[v], strlen(vals[v]), r2), n1);
            for (int j = 0; j < n1; j++) assert_int_equal(r1[j], r2[j]);
        }
    /* the frequency head came back: the two most frequent genres, rows 0 and 1 */
    int num, g = moe_model_field(again, "genres", &num);
    uint64_t r[IDHASH_MAX_ROWS];
    moe_model_value_rows(again, g, "g", 1, r);
    assert_int_equal(r[0], 0);
    moe_model_value_rows(again, g, "h", 1, r);
    assert_int_equal(r[0], 1);
    assert_int_equal(again->tables[2].stats.nids, 2);
    assert_int_equal(again->tables[2].stats.max_load, 1);
    assert_int_equal(again->tables[0].stats.nids, 4);
    moe_model_free(m);
    moe_model_free(again);
}

static void test_missing_and_corrupt_files_name_the_file(void **state) {
    (void)state;
    mr_err e;
    moe_model *m = NULL;
    char v[400], p[500];
    snprintf(v, sizeof v, "%s/bad", g_dir);
    copy_version(v);
    snprintf(p, sizeof p, "%s/item.map", v);
    assert_int_equal(unlink(p), 0);
    assert_int_not_equal(moe_model_load(&m, v, &e), 0);
    assert_null(m);
    assert_non_null(strstr(e.msg, p));
    assert_non_null(strstr(e.msg, "table 'item' (double_graph)"));
    copy_version(v);
    FILE *f = fopen(p, "r+b"); /* flip a byte of the id table: the checksum catches it */
    assert_non_null(f);
    fseek(f, 70, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 70, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
    assert_int_equal(moe_model_load(&m, v, &e), MR_ECORRUPT);
    assert_non_null(strstr(e.msg, p));
    /* truncated */
    copy_version(v);
    assert_int_equal(truncate(p, 40), 0);
    assert_int_equal(moe_model_load(&m, v, &e), MR_ECORRUPT);
    assert_non_null(strstr(e.msg, p));
}

static void test_mismatched_mapping_is_refused(void **state) {
    (void)state;
    mr_err e;
    moe_model *m;
    assert_int_equal(moe_model_from_json(&m, k_maps_model, 1, &e), 0);
    uint64_t ids[2] = {5, 6};
    uint32_t rows[2] = {0, 1};
    graphhash_map *gm;
    /* other table size */
    assert_int_equal(graphhash_from_tables(&gm, ids, rows, 2, 9, NULL, NULL, 0, 1, 1, 11, &e), 0);
    assert_int_equal(moe_model_maps_attach(m, 0, gm, "x.map", &e), MR_ECORRUPT);
    assert_non_null(strstr(e.msg, "x.map: mapping has 9 rows, table 'user' has 8"));
    /* other seed */
    assert_int_equal(graphhash_from_tables(&gm, ids, rows, 2, 8, NULL, NULL, 0, 1, 1, 99, &e), 0);
    assert_int_equal(moe_model_maps_attach(m, 0, gm, "x.map", &e), MR_ECORRUPT);
    assert_non_null(strstr(e.msg, "seed 99"));
    /* two sides */
    assert_int_equal(graphhash_from_tables(&gm, ids, rows, 2, 8, ids, rows, 2, 8, 1, 11, &e), 0);
    assert_int_equal(moe_model_maps_attach(m, 0, gm, "x.map", &e), MR_ECORRUPT);
    /* a frequency head must be ranks 0..n-1 */
    uint32_t bad[2] = {0, 3};
    assert_int_equal(graphhash_from_tables(&gm, ids, bad, 2, 4, NULL, NULL, 0, 1, 1, 13, &e), 0);
    assert_int_equal(moe_model_maps_attach(m, 2, gm, "g.map", &e), MR_ECORRUPT);
    assert_non_null(strstr(e.msg, "g.map"));
    /* a hash table takes no mapping */
    assert_int_equal(graphhash_from_tables(&gm, ids, rows, 2, 8, NULL, NULL, 0, 1, 1, 16, &e), 0);
    assert_int_equal(moe_model_maps_attach(m, 5, gm, "p.map", &e), MR_EINVAL);
    /* nothing was attached by the failures */
    assert_int_equal(moe_model_maps_missing(m), 5);
    assert_int_equal(moe_table_mapped(&m->tables[5]), 0);
    moe_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_missing_and_corrupt_files_name_the_file),
        cmocka_unit_test(test_mismatched_mapping_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
