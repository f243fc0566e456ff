/* test_model_maps_build.c — building mapped tables from training rows
 * (moe/model_maps_build.c): GraphHash clusters follow the communities,
 * frequency heads follow the counts, LSH rows follow content and
 * neighbour sets (including an item never seen in training), balanced
 * GraphHash rows spread over the table, hubs own their rows, unseen ids hash exactly as the
 * hash kind, and the dataset is re-mapped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sys/stat.h>
#include <unistd.h>

#include "maps_fixture.h"
#include "moe/model_maps.h"

static char g_dir[256];

/* The mappings of m from every row of d (resolution 1, seed 3). */
static void build_from_all_rows(moe_model *m, const moe_dataset *d) {
    mr_err e;
    long *idx = malloc(sizeof(long) * (size_t)d->n);
    for (long i = 0; i < d->n; i++) idx[i] = i;
    moe_maps_opts o = {.resolution = 1, .seed = 3, .base_dir = g_dir};
    int rc = moe_model_maps_build(m, d, idx, d->n, &o, &e);
    free(idx);
    if (rc) fail_msg("%s", e.msg);
}

static void build(moe_model **m, moe_dataset **d) {
    mr_err e;
    char p[512];
    snprintf(p, sizeof p, "%s/train.csv", g_dir);
    assert_int_equal(moe_model_from_json(m, k_maps_model, 1, &e), 0);
    assert_int_equal(moe_model_maps_missing(*m), 5);
    assert_int_equal(moe_dataset_read(d, *m, p, NULL, 0, &e), 0);
    assert_non_null((*d)->cat_ids[0]);
    build_from_all_rows(*m, *d);
    assert_int_equal(moe_model_maps_missing(*m), 0);
    assert_int_equal(moe_dataset_map_rows(*d, *m, &e), 0);
}

static uint64_t row_of(const moe_model *m, const char *field, const char *v) {
    int num, f = moe_model_field(m, field, &num);
    assert_true(f >= 0 && !num);
    uint64_t r[IDHASH_MAX_ROWS];
    moe_model_value_rows(m, f, v, strlen(v), r);
    return r[0];
}

static void test_graph_rows_follow_communities(void **state) {
    (void)state;
    moe_model *m;
    moe_dataset *d;
    build(&m, &d);
    assert_int_equal(row_of(m, "user", "u1"), row_of(m, "user", "u2"));
    assert_int_equal(row_of(m, "user", "u3"), row_of(m, "user", "u4"));
    assert_int_not_equal(row_of(m, "user", "u1"), row_of(m, "user", "u3"));
    assert_int_equal(row_of(m, "item", "a"), row_of(m, "item", "b"));
    assert_int_not_equal(row_of(m, "item", "a"), row_of(m, "item", "c"));
    assert_int_equal(m->tables[0].stats.nids, 4);
    /* double_graph: two distinct rows per item */
    uint64_t r[IDHASH_MAX_ROWS];
    int num, f = moe_model_field(m, "item", &num);
    assert_int_equal(moe_model_value_rows(m, f, "a", 1, r), 2);
    assert_int_not_equal(r[0], r[1]);
    /* an unseen user hashes as the hash kind would */
    uint64_t id = moe_model_value_id(m, moe_model_field(m, "user", &num), "stranger", 8);
    assert_int_equal(row_of(m, "user", "stranger"), idhash_row(idhash_u64(id, 11), 8));
    /* the dataset was re-mapped with the new rows */
    assert_int_equal(d->cat_rows[0][0], row_of(m, "user", "u1"));
    assert_int_equal(d->cat_rows[0][4 * 1], row_of(m, "user", "u3"));
    moe_dataset_free(d);
    moe_model_free(m);
}

static void test_frequency_head(void **state) {
    (void)state;
    moe_model *m;
    moe_dataset *d;
    build(&m, &d);
    /* rows = 4: the floor(4/2) = 2 most frequent genres own rows 0 and 1 */
    assert_int_equal(row_of(m, "genres", "g"), 0);
    assert_int_equal(row_of(m, "genres", "h"), 1);
    assert_true(row_of(m, "genres", "z") >= 2);
    assert_true(row_of(m, "genres", "never") >= 2);
    assert_int_equal(m->tables[2].stats.nids, 2);
    moe_dataset_free(d);
    moe_model_free(m);
}

static void test_lsh_rows(void **state) {
    (void)state;
    moe_model *m;
    moe_dataset *d;
    build(&m, &d);
    /* content: same direction, same row, whether seen in training (a) or not (e) */
    assert_int_equal(row_of(m, "item_c", "a"), row_of(m, "item_c", "e"));
    assert_int_equal(row_of(m, "item_c", "a"), row_of(m, "item_c", "b"));
    assert_int_not_equal(row_of(m, "item_c", "a"), row_of(m, "item_c", "c"));
    assert_int_equal(m->tables[3].stats.nids, 5);
    /* neighbours: a and b have the same user set, so the same MinHash row */
    assert_int_equal(row_of(m, "item_o", "a"), row_of(m, "item_o", "b"));
    assert_int_equal(row_of(m, "item_o", "c"), row_of(m, "item_o", "d"));
    assert_int_equal(m->tables[4].stats.nids, 4);
    /* the plain table is untouched */
    assert_null(m->tables[5].gmap);
    moe_dataset_free(d);
    moe_model_free(m);
}

/* A user and an item graph table (the user table with user_opts, e.g.
 * "balance": "degree"), built from the fixture's training rows. */
static void build_user_item(const char *user_opts, moe_model **m, moe_dataset **d) {
    char js[1024], p[512];
    snprintf(
        js, sizeof js,
        "{\"tables\":[{\"name\":\"user\",%s,\"dim\":2,\"seed\":11,\"hash\":\"graph\","
        "\"pair\":\"item\"},"
        "{\"name\":\"item\",\"rows\":4,\"dim\":2,\"seed\":12,\"hash\":\"graph\","
        "\"pair\":\"user\"}],"
        "\"features\":{\"categorical\":[{\"name\":\"user\",\"table\":\"user\"},"
        "{\"name\":\"item\",\"table\":\"item\"}]},\"tasks\":[{\"name\":\"click\"}],"
        "\"arch\":{\"type\":\"mmoe\",\"experts\":2,\"expert_hidden\":[4],\"tower_hidden\":[2]}}",
        user_opts);
    mr_err e;
    snprintf(p, sizeof p, "%s/train.csv", g_dir);
    assert_int_equal(moe_model_from_json(m, js, 1, &e), 0);
    assert_int_equal(moe_dataset_read(d, *m, p, NULL, 0, &e), 0);
    build_from_all_rows(*m, *d);
}

/* "balance": "degree" shares a table's rows out by training degree: the
 * fixture's two communities on a 4-row table give every user a row of its
 * own (a row per cluster leaves two rows unused); a table's "resolution"
 * overrides the build's. */
static void test_graph_balance(void **state) {
    (void)state;
    moe_model *m;
    moe_dataset *d;
    build_user_item("\"rows\":4,\"balance\":\"degree\",\"resolution\":0.5", &m, &d);
    const char *users[4] = {"u1", "u2", "u3", "u4"};
    for (int a = 0; a < 4; a++)
        for (int b = a + 1; b < 4; b++)
            assert_int_not_equal(row_of(m, "user", users[a]), row_of(m, "user", users[b]));
    assert_int_equal(m->tables[0].stats.occupied, 4);
    /* the item table keeps a row per cluster: a, b share one, c, d another */
    assert_int_equal(row_of(m, "item", "a"), row_of(m, "item", "b"));
    assert_int_equal(row_of(m, "item", "c"), row_of(m, "item", "d"));
    assert_int_equal(m->tables[1].stats.occupied, 2);
    assert_true(graphhash_map_resolution(m->tables[0].gmap) == 0.5);
    assert_true(graphhash_map_resolution(m->tables[1].gmap) == 1);
    /* an unseen user still hashes as the hash kind would */
    int num;
    uint64_t id = moe_model_value_id(m, moe_model_field(m, "user", &num), "stranger", 8);
    assert_int_equal(row_of(m, "user", "stranger"), idhash_row(idhash_u64(id, 11), 4));
    moe_dataset_free(d);
    moe_model_free(m);
}

/* "hubs": 1 on a 3-row user table (no balance): u1, the heaviest user
 * (7 training rows, the others 6), owns row 0 alone; the others share rows
 * 1..2 by cluster (u3 and u4 together, u2 apart); written back. */
static void test_graph_hubs(void **state) {
    (void)state;
    moe_model *m;
    moe_dataset *d;
    build_user_item("\"rows\":3,\"hubs\":1", &m, &d);
    assert_int_equal(row_of(m, "user", "u1"), 0);
    assert_true(row_of(m, "user", "u2") >= 1);
    assert_true(row_of(m, "user", "u3") >= 1);
    assert_int_equal(row_of(m, "user", "u3"), row_of(m, "user", "u4"));
    assert_int_not_equal(row_of(m, "user", "u2"), row_of(m, "user", "u3"));
    assert_int_equal(m->tables[0].stats.occupied, 3);
    char *out = moe_model_to_json(m);
    assert_non_null(strstr(out, "\"hubs\": 1"));
    free(out);
    moe_dataset_free(d);
    moe_model_free(m);
}

static void test_errors(void **state) {
    (void)state;
    mr_err e;
    moe_model *m;
    char p[512];
    snprintf(p, sizeof p, "%s/train.csv", g_dir);
    assert_int_equal(moe_model_from_json(&m, k_maps_model, 1, &e), 0);
    moe_dataset *d;
    assert_int_equal(moe_dataset_read(&d, m, p, NULL, 0, &e), 0);
    long idx[1] = {0};
    moe_maps_opts o = {.resolution = 1, .seed = 3, .base_dir = "/nonexistent-dir"};
    assert_int_equal(moe_model_maps_build(m, d, idx, 1, &o, &e), MR_ENOTFOUND);
    assert_non_null(strstr(e.msg, "vectors.csv"));
    assert_non_null(strstr(e.msg, "table 'content' (lsh)"));
    /* the vectors file goes through the one CSV reader: a cell that is not
     * a number, or is missing, names file, line and column */
    char bad[400];
    snprintf(bad, sizeof bad, "%s/bad", g_dir);
    assert_int_equal(mkdir(bad, 0755), 0);
    snprintf(p, sizeof p, "%s/vectors.csv", bad);
    const char *bodies[2] = {"item,e0,e1,e2\na,1,0.5,0.25\nb,0.9,1;5,0.3\n",
                             "item,e0,e1,e2\r\na,1,0.5,0.25\r\nb,0.9,NA,0.3\r\n"};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fputs(bodies[i], f);
        fclose(f);
        o.base_dir = bad;
        assert_int_equal(moe_model_maps_build(m, d, idx, 1, &o, &e), MR_EINVAL);
        assert_non_null(strstr(e.msg, "vectors.csv:3"));
        assert_non_null(strstr(e.msg, i ? "missing" : "1;5"));
        assert_non_null(strstr(e.msg, "e1"));
    }
    remove(p);
    rmdir(bad);
    snprintf(p, sizeof p, "%s/train.csv", g_dir);
    /* saving a model with a mapping still missing is refused */
    assert_int_equal(moe_model_maps_save(m, g_dir, &e), MR_ESTATE);
    assert_non_null(strstr(e.msg, "has no mapping"));
    moe_dataset_free(d);
    moe_model_free(m);
}

int main(void) {
    if (maps_fixture_write(g_dir, sizeof g_dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_graph_rows_follow_communities),
        cmocka_unit_test(test_frequency_head),
        cmocka_unit_test(test_lsh_rows),
        cmocka_unit_test(test_graph_balance),
        cmocka_unit_test(test_graph_hubs),
        cmocka_unit_test(test_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) return 1;
    return rc;
}
