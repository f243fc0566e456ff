/* test_dataset.c — moe/dataset.c: CSV with quoted fields (delimiters and
 * "" inside quotes), TSV detection, multi-valued fields hashed to the same
 * rows as the scorer, label thresholds and masks for missing labels,
 * missing-column errors, time and random splits, numeric fitting and batch
 * assembly equal to the scorer's input. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/tensor.h"
#include "moe/dataset.h"
#include "moe/scorer.h"
#include "testmodel.h"

static char g_path[64];

static moe_model *make(void) {
    char js[4096];
    snprintf(js, sizeof js, k_test_model_fmt, "{\"type\":\"mmoe\"}");
    moe_model *m = NULL;
    mr_err e;
    assert_int_equal(moe_model_from_json(&m, js, 5, &e), 0);
    return m;
}

static void write_file(const char *text) {
    snprintf(g_path, sizeof g_path, "/tmp/moe_ds_XXXXXX");
    int fd = mkstemp(g_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static const char *k_csv =
    "uid,item,genre,age,price,click,rating,dwell,ts,note\n"
    "u1,i1,\"Drama|Comedy\",20,1.5,1,4.5,3.0,100,\"a, \"\"quoted\"\" note\"\n"
    "u2,i2,Drama,,2.5,0,3,,50,x\n"
    "u1,i3,,40,3.5,,5,1.0,200,y\n"
    "u3,i1,Comedy,60,,1,,2.0,10,z\n";

static void test_read_csv(void **st) {
    (void)st;
    moe_model *m = make();
    write_file(k_csv);
    moe_dataset *d;
    mr_err e;
    int rc = moe_dataset_read(&d, m, g_path, "ts", 0, &e);
    if (rc) print_message("%s\n", e.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(d->n, 4);
    /* genre: row 0 has two values (two rows each: double hashing), row 2 none */
    assert_int_equal(d->cat_off[2][1] - d->cat_off[2][0], 4);
    assert_int_equal(d->cat_off[2][3] - d->cat_off[2][2], 0);
    uint64_t r[2];
    moe_model_value_rows(m, 2, "Comedy", 6, r);
    assert_int_equal(d->cat_rows[2][2], (uint32_t)r[0]);
    assert_int_equal(d->cat_rows[2][3], (uint32_t)r[1]);
    /* labels: click as is, like = rating >= 4, dwell regression; blanks masked */
    float wy[4][3] = {{1, 1, 3}, {0, 0, 0}, {0, 1, 1}, {1, 0, 2}};
    float wm[4][3] = {{1, 1, 1}, {1, 1, 0}, {0, 1, 1}, {1, 0, 1}};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 3; k++) {
            assert_true(d->mask[i * 3 + k] == wm[i][k]);
            if (wm[i][k]) assert_true(d->y[i * 3 + k] == wy[i][k]);
        }
    assert_true(isnan(d->num[1 * 2 + 0])); /* empty age */
    assert_true(d->time[2] == 200);
    /* time split: the latest 25% (row 2, ts 200) is validation */
    long *tr, *va, ntr, nva;
    assert_int_equal(moe_dataset_split(d, 0.25, 1, 1, &tr, &ntr, &va, &nva, &e), 0);
    assert_int_equal(ntr, 3);
    assert_int_equal(nva, 1);
    assert_int_equal(va[0], 2);
    assert_int_equal(tr[0], 3); /* ts 10 first */
    free(tr);
    free(va);
    /* fit numeric on all rows: age mean of 20, 40, 60 */
    long all[4] = {0, 1, 2, 3};
    moe_dataset_fit_numeric(d, m, all, 4);
    assert_true(fabsf(m->num[0].mean - 40.0f) < 1e-4f);
    assert_true(fabsf(m->num[0].std - sqrtf(800.0f / 3)) < 1e-3f);
    /* batch row 0 equals what the scorer builds from the same values */
    float *x = mr_floats_alloc((size_t)2 * m->in_dim), y[6], mk[6];
    long idx[2] = {0, 1};
    moe_dataset_batch(d, m, idx, 2, x, y, mk, NULL, NULL);
    moe_scorer *s;
    assert_int_equal(moe_scorer_create(&s, m, &e), 0);
    assert_int_equal(moe_scorer_begin(s, 1, &e), 0);
    const char *u = "u1", *it = "i1", *g[2] = {"Drama", "Comedy"};
    moe_scorer_set_cat(s, 0, 0, &u, NULL, 1, &e);
    moe_scorer_set_cat(s, 0, 1, &it, NULL, 1, &e);
    moe_scorer_set_cat(s, 0, 2, g, NULL, 2, &e);
    moe_scorer_set_num(s, 0, 0, 20, &e);
    moe_scorer_set_num(s, 0, 1, 1.5f, &e);
    for (int i = 0; i < m->in_dim; i++) assert_true(fabsf(x[i] - moe_scorer_input(s)[i]) < 1e-5f);
    assert_true(y[0] == 1 && y[2 + 0] == 1 && mk[2 * 2 + 1] == 0); /* task-major (T, B) */
    /* a missing numeric takes the fill (= fitted mean): 0 after normalising */
    assert_true(fabsf(x[m->in_dim + m->num[0].offset]) < 1e-6f);
    moe_scorer_free(s);
    mr_floats_free(x);
    moe_dataset_free(d);
    unlink(g_path);
    moe_model_free(m);
}

static void test_tsv_and_errors(void **st) {
    (void)st;
    moe_model *m = make();
    mr_err e;
    moe_dataset *d = NULL;
    write_file("uid\titem\tgenre\tage\tprice\tclick\trating\tdwell\nu1\ti,1\tA\t1\t2\t0\t1\t1\n");
    assert_int_equal(moe_dataset_read(&d, m, g_path, NULL, 0, &e), 0);
    assert_int_equal(d->n, 1);
    assert_int_equal(d->cat_off[1][1], 2); /* "i,1" is one value in a TSV */
    moe_dataset_free(d);
    unlink(g_path);
    write_file("uid,item,genre,age,click,rating,dwell\nu,i,g,1,1,1,1\n");
    assert_int_equal(moe_dataset_read(&d, m, g_path, NULL, 0, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "'price'"));
    unlink(g_path);
    write_file("uid,item,genre,age,price,click,rating,dwell\nu,i,g,1,1,0.5,1,1\n");
    assert_int_equal(moe_dataset_read(&d, m, g_path, NULL, 0, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "'click' is binary"));
    unlink(g_path);
    write_file("uid,item,genre,age,price,click,rating,dwell\nu,i,g,1,1,1,1\n");
    assert_int_equal(moe_dataset_read(&d, m, g_path, NULL, 0, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, ":2: 7 cells, the header has 8"));
    unlink(g_path);
    assert_int_equal(moe_dataset_read(&d, m, "/nonexistent.csv", NULL, 0, &e), MR_ENOTFOUND);
    moe_model_free(m);
}

/* Issue 13: a text label column trained on nothing ("count": 0, exit 0);
 * now it is an error naming the line, a task's "positive" value makes text
 * labels usable, and a task without any label is an error. */
static void test_text_labels(void **st) {
    (void)st;
    moe_model *m = make();
    mr_err e;
    moe_dataset *d = NULL;
    write_file("uid,item,genre,age,price,click,rating,dwell\nu,i,g,1,1,insurance,4,1\n");
    assert_int_equal(moe_dataset_read(&d, m, g_path, NULL, 0, &e), MR_EINVAL);
    assert_non_null(strstr(
        e.msg,
        ":2: column 'click' (6): 'insurance' is not a finite number (task 'click': label column "
        "'click' is not a number; for text labels pass --label-positive click=VALUE"));
    unlink(g_path);
    write_file("uid,item,genre,age,price,click,rating,dwell\nu,i,g,1,1,,4,1\nv,i,g,1,1,,3,1\n");
    assert_int_equal(moe_dataset_read(&d, m, g_path, NULL, 0, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "task 'click': no row has a label in column 'click'"));
    unlink(g_path);
    moe_model_free(m);
    char js[4096];
    snprintf(js, sizeof js,
             "{\"tables\":[{\"name\":\"u\",\"rows\":8,\"dim\":2}],"
             "\"features\":{\"categorical\":[{\"name\":\"uid\",\"table\":\"u\"}]},"
             "\"tasks\":[{\"name\":\"buy\",\"label\":\"CARAVAN\",\"positive\":\"insurance\"}],"
             "\"arch\":{\"type\":\"mmoe\",\"experts\":2}}");
    assert_int_equal(moe_model_from_json(&m, js, 1, &e), 0);
    write_file("uid,CARAVAN\na,insurance\nb,noinsurance\nc,\nd,insurance\n");
    assert_int_equal(moe_dataset_read(&d, m, g_path, NULL, 0, &e), 0);
    assert_int_equal(d->n, 4);
    float want_y[4] = {1, 0, 0, 1}, want_m[4] = {1, 1, 0, 1};
    for (int i = 0; i < 4; i++) {
        assert_true(d->y[i] == want_y[i]);
        assert_true(d->mask[i] == want_m[i]);
    }
    moe_dataset_free(d);
    unlink(g_path);
    moe_model_free(m);
}

static void test_random_split(void **st) {
    (void)st;
    moe_model *m = make();
    moe_dataset *d;
    mr_err e;
    assert_int_equal(moe_dataset_alloc(&d, m, 100, &e), 0);
    long *t1, *v1, *t2, *v2, n1, n2, m1, m2;
    assert_int_equal(moe_dataset_split(d, 0.2, 0, 7, &t1, &n1, &v1, &m1, &e), 0);
    assert_int_equal(moe_dataset_split(d, 0.2, 0, 7, &t2, &n2, &v2, &m2, &e), 0);
    assert_int_equal(n1, 80);
    assert_int_equal(m1, 20);
    assert_memory_equal(v1, v2, sizeof(long) * 20); /* seeded */
    int seen[100] = {0};
    for (long i = 0; i < 80; i++) seen[t1[i]]++;
    for (long i = 0; i < 20; i++) seen[v1[i]]++;
    for (int i = 0; i < 100; i++) assert_int_equal(seen[i], 1); /* a partition */
    assert_int_equal(moe_dataset_split(d, 1.0, 0, 7, &t2, &n2, &v2, &m2, &e), MR_EINVAL);
    free(t1);
    free(v1);
    free(t2);
    free(v2);
    moe_dataset_free(d);
    moe_model_free(m);
}

static void test_time_split_boundary_ties(void **st) {
    (void)st;
    moe_model *m = make();
    mr_err e;
    moe_dataset *d = NULL;
    /* times 30 (rows 1, 4) straddle the 60% cut: both must be validation */
    write_file("uid,item,genre,age,price,click,rating,dwell,ts\n"
               "a,i,g,1,1,1,1,1,20\nb,i,g,1,1,0,1,1,30\nc,i,g,1,1,1,1,1,10\n"
               "d,i,g,1,1,0,1,1,40\ne,i,g,1,1,1,1,1,30\n");
    assert_int_equal(moe_dataset_read(&d, m, g_path, "ts", 0, &e), 0);
    unlink(g_path);
    long *tr, *va, ntr, nva;
    assert_int_equal(moe_dataset_split(d, 0.4, 1, 1, &tr, &ntr, &va, &nva, &e), 0);
    assert_int_equal(ntr, 2);
    assert_int_equal(nva, 3);
    double tmax = -1, vmin = 1e9;
    for (long i = 0; i < ntr; i++) tmax = d->time[tr[i]] > tmax ? d->time[tr[i]] : tmax;
    for (long i = 0; i < nva; i++) vmin = d->time[va[i]] < vmin ? d->time[va[i]] : vmin;
    assert_true(tmax < vmin); /* no training row at or after a validation row's time */
    free(tr);
    free(va);
    /* every row at one time: no training rows left, an error */
    for (long i = 0; i < d->n; i++) d->time[i] = 5;
    assert_int_equal(moe_dataset_split(d, 0.4, 1, 1, &tr, &ntr, &va, &nva, &e), MR_EINVAL);
    moe_dataset_free(d);
    /* empty pieces of a multi-valued cell are no values: "|Drama||" = "Drama" */
    write_file(
        "uid,item,genre,age,price,click,rating,dwell,ts\na,i,|Drama||,1,1,1,1,1,20\nb,i,Drama,1,1,0,1,1,30\n");
    assert_int_equal(moe_dataset_read(&d, m, g_path, "ts", 0, &e), 0);
    unlink(g_path);
    assert_int_equal(d->cat_off[2][1], 2); /* one value, two rows (double hashing) */
    assert_int_equal(d->cat_off[2][2] - d->cat_off[2][1], 2);
    assert_memory_equal(d->cat_rows[2], d->cat_rows[2] + 2, 2 * sizeof(uint32_t));
    moe_dataset_free(d);
    /* a time that is not a number is an error naming the line, not time 0 */
    write_file(
        "uid,item,genre,age,price,click,rating,dwell,ts\na,i,g,1,1,1,1,1,20\nb,i,g,1,1,0,1,1,\n");
    assert_int_equal(moe_dataset_read(&d, m, g_path, "ts", 0, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, ":3: time column 'ts'"));
    unlink(g_path);
    moe_model_free(m);
}

/* The reader's rules, which used to be this file's own: a numeric cell
 * that is not a number is an error (it was read as 1 for `1;5` and as
 * missing for `abc`), a BOM no longer hides the first column, NA is a
 * missing value. */
static void test_common_reader_rules(void **st) {
    (void)st;
    moe_model *m = make();
    mr_err e;
    moe_dataset *d = NULL;
    write_file("uid,item,genre,age,price,click,rating,dwell\nu,i,g,1,1;5,1,1,1\n");
    assert_int_equal(moe_dataset_read(&d, m, g_path, NULL, 0, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, ":2: column 'price' (5): '1;5' is not a finite number"));
    unlink(g_path);
    write_file("uid,item,genre,age,price,click,rating,dwell\nu,i,g,1,1,abc,1,1\n");
    assert_int_equal(moe_dataset_read(&d, m, g_path, NULL, 0, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, ":2: column 'click' (6): 'abc' is not a finite number"));
    unlink(g_path);
    write_file("\xef\xbb\xbfuid,item,genre,age,price,click,rating,dwell\r\n"
               "u,i,g,NA,1,NA,4,1\r\nv,i,g,3,2,1,\"\",1\r\n");
    int rc = moe_dataset_read(&d, m, g_path, NULL, 0, &e);
    if (rc) print_message("%s\n", e.msg);
    assert_int_equal(rc, 0);
    unlink(g_path);
    assert_int_equal(d->n, 2);
    assert_true(isnan(d->num[0]));   /* age NA: the fill later */
    assert_true(d->mask[0] == 0.0f); /* click NA: no label */
    assert_true(d->mask[1] == 1.0f);
    assert_true(d->mask[1 * d->n_tasks + 1] == 0.0f); /* rating "": no label */
    moe_dataset_free(d);
    moe_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_csv),
        cmocka_unit_test(test_tsv_and_errors),
        cmocka_unit_test(test_text_labels),
        cmocka_unit_test(test_random_split),
        cmocka_unit_test(test_time_split_boundary_ties),
        cmocka_unit_test(test_common_reader_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
