/* test_sdim_join_csv.c — moe/sdim_join_csv.c: the SDIM block that
 * sdim_join_csv writes into a dataset read by moe_dataset_read equals
 * sdim_join on the same ids, times and vectors, row for row (quoted
 * fields, empty lines and max_rows included); bad files are errors that
 * name the file, line and column. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/rng.h"
#include "moe/dataset.h"
#include "moe/sdim_feature.h"
#include "moe/sdim_join.h"
#include "testmodel.h"

enum { D = 4, NI = 30, NE = 300, NR = 40, NU = 5 };

typedef struct fx {
    char dir[128], items[160], events[160], data[160];
    float vec[NI * D];
    uint64_t eu[NE], ei[NE], ru[NR], ri[NR];
    int64_t et[NE], rt[NR];
    moe_model *m;
} fx;

static const float *vec_of(uint64_t item, void *ctx) {
    fx *f = ctx;
    return item >= 1000 && item < 1000 + NI ? f->vec + (item - 1000) * D : NULL;
}

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s/moerec-sdimcsv-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->items, sizeof f->items, "%s/items.csv", f->dir);
    snprintf(f->events, sizeof f->events, "%s/events.csv", f->dir);
    snprintf(f->data, sizeof f->data, "%s/data.csv", f->dir);
    mr_rng g;
    mr_rng_seed(&g, 41);
    FILE *fp = fopen(f->items, "w");
    fprintf(fp, "item_id,cluster,e0,e1,e2,e3\n");
    for (int i = 0; i < NI; i++) {
        float *x = f->vec + i * D;
        for (int c = 0; c < D; c++)
            x[c] = (float)((int)mr_rng_below(&g, 2000) - 1000) / 256.0f; /* exact in text */
        fprintf(fp, "%d,%d,%.9g,%.9g,%.9g,%.9g\n", 1000 + i, i % 3, x[0], x[1], x[2], x[3]);
    }
    fclose(fp);
    fp = fopen(f->events, "w");
    fprintf(fp, "user_id,item_id,ts_ms\n");
    for (int i = 0; i < NE; i++) {
        f->eu[i] = 7 + mr_rng_below(&g, NU);
        f->ei[i] = 1000 + mr_rng_below(&g, NI + 3); /* a few without vectors */
        f->et[i] = 1700000000000LL + (int64_t)mr_rng_below(&g, 5000);
        fprintf(fp, "%llu,%llu,%lld\n", (unsigned long long)f->eu[i], (unsigned long long)f->ei[i],
                (long long)f->et[i]);
    }
    fclose(fp);
    fp = fopen(f->data, "w"); /* testmodel.h's columns + ts_ms + a quoted title with commas */
    fprintf(fp, "uid,item,genre,age,price,click,rating,dwell,ts_ms,title\n");
    for (int r = 0; r < NR; r++) {
        f->ru[r] = 7 + mr_rng_below(&g, NU);
        f->ri[r] = 1000 + mr_rng_below(&g, NI);
        f->rt[r] = 1700000000000LL + (int64_t)mr_rng_below(&g, 6000);
        fprintf(fp, "%llu,%llu,g%d|all,%d,%d.5,%d,%d,%d.0,%lld,\"Movie, the \"\"%d\"\"\"\n",
                (unsigned long long)f->ru[r], (unsigned long long)f->ri[r], r % 3, 20 + r, r, r % 2,
                1 + r % 5, r, (long long)f->rt[r], r);
        if (r == 10) fprintf(fp, "\n"); /* empty lines are skipped by both readers */
    }
    fclose(fp);
    const char *p = strstr(k_test_model_fmt, "\"extra_dim\":2");
    char fmt[4096], js[4096];
    snprintf(fmt, sizeof fmt, "%.*s\"extra_dim\":8%s", (int)(p - k_test_model_fmt),
             k_test_model_fmt, p + strlen("\"extra_dim\":2"));
    snprintf(js, sizeof js, fmt, "{\"type\":\"mmoe\",\"experts\":2}");
    mr_err e;
    if (moe_model_from_json(&f->m, js, 3, &e)) fail_msg("model: %s", e.msg);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    moe_model_free(f->m);
    unlink(f->items);
    unlink(f->events);
    unlink(f->data);
    rmdir(f->dir);
    free(f);
    return 0;
}

static sdim_csv_opts opts(const fx *f) {
    sdim_csv_opts o;
    sdim_csv_opts_init(&o);
    o.events_path = f->events;
    o.items_path = f->items;
    snprintf(o.user_col, sizeof o.user_col, "uid");
    snprintf(o.item_col, sizeof o.item_col, "item");
    o.l_max = 25, o.short_n = 5;
    assert_int_equal(o.seed, 0x5D1A); /* SDIM_DEFAULT_SEED */
    return o;
}

static void check_rows(fx *f, long max_rows) {
    moe_dataset *d;
    mr_err e;
    if (moe_dataset_read(&d, f->m, f->data, NULL, max_rows, &e)) fail_msg("read: %s", e.msg);
    long n = max_rows > 0 ? max_rows : NR;
    assert_int_equal(d->n, n);
    sdim_csv_opts o = opts(f);
    if (sdim_join_csv(d, f->data, max_rows, &o, &e)) fail_msg("join: %s", e.msg);
    sdim_hasher *h;
    assert_int_equal(sdim_hasher_create(&h, D, o.m, o.tau, o.seed, NULL), 0);
    const sdim_events ev = {NE, f->eu, f->ei, f->et, NULL};
    float *want = calloc((size_t)n * 2 * D, sizeof(float));
    assert_int_equal(
        sdim_join(h, o.l_max, o.short_n, &ev, f->ru, f->ri, f->rt, n, vec_of, f, want, 2 * D, NULL),
        0);
    assert_memory_equal(d->extra, want, sizeof(float) * (size_t)n * 2 * D);
    int nonzero = 0;
    for (long i = 0; i < n * 2 * D; i++) nonzero += want[i] != 0.0f;
    assert_true(nonzero > n); /* real features, not an all-zero block */
    free(want);
    sdim_hasher_free(h);
    moe_dataset_free(d);
}

static void test_equals_join_on_same_ids(void **state) { check_rows(*state, 0); }

static void test_max_rows(void **state) { check_rows(*state, 15); }

static void test_errors_name_the_problem(void **state) {
    fx *f = *state;
    moe_dataset *d;
    mr_err e;
    assert_int_equal(moe_dataset_read(&d, f->m, f->data, NULL, 0, &e), 0);
    sdim_csv_opts o = opts(f);
    snprintf(o.user_col, sizeof o.user_col, "nope");
    assert_int_equal(sdim_join_csv(d, f->data, 0, &o, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "'nope'"));
    o = opts(f);
    snprintf(o.item_col, sizeof o.item_col, "genre"); /* not integers */
    assert_int_equal(sdim_join_csv(d, f->data, 0, &o, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, ":2: column 'genre'"));
    o = opts(f);
    o.items_path = f->data; /* no e0.. columns */
    assert_int_equal(sdim_join_csv(d, f->data, 0, &o, &e), MR_EINVAL);
    moe_dataset d2 = *d;
    d2.extra_dim = 2 * (D - 1); /* the item file has one more column than this d */
    o = opts(f);
    assert_int_equal(sdim_join_csv(&d2, f->data, 0, &o, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "more than d = 3"));
    assert_int_equal(sdim_join_csv(d, f->data, 7, &o, &e), MR_EINVAL); /* row count mismatch */
    assert_non_null(strstr(e.msg, "rows"));
    o.items_path = NULL;
    assert_int_equal(sdim_join_csv(d, f->data, 0, &o, &e), MR_EINVAL);
    char bad[200]; /* a NaN in the item vectors would poison every feature it touches */
    snprintf(bad, sizeof bad, "%s/nan.csv", f->dir);
    FILE *fp = fopen(bad, "w");
    fprintf(fp, "item_id,e0,e1,e2,e3\n1000,1,2,3,4\n1001,1,nan,3,4\n");
    fclose(fp);
    o = opts(f);
    o.items_path = bad;
    assert_int_equal(sdim_join_csv(d, f->data, 0, &o, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, ":3: column 'e1' (3): 'nan' is not a finite number"));
    unlink(bad);
    moe_dataset_free(d);
}

/* The events file's action column (a model with history actions): the
 * block ends with the actions' shares, equal to sdim_join_act on the same
 * ids; the cell is the literal action ("NA" is one, only "" is none); a file
 * without the column, or a cell over 64 bytes, is refused naming it. */
static void test_actions_column(void **state) {
    fx *f = *state;
    enum { NA = 2, W = 2 * D + NA };
    char evp[200], js[4096], fmt[4096];
    snprintf(evp, sizeof evp, "%s/events_act.csv", f->dir);
    static const char *const cell[3] = {"like", "NA", ""};
    uint32_t ea[NE];
    FILE *fp = fopen(evp, "w");
    fprintf(fp, "user_id,item_id,ts_ms,action\n");
    for (int i = 0; i < NE; i++) {
        fprintf(fp, "%llu,%llu,%lld,%s\n", (unsigned long long)f->eu[i],
                (unsigned long long)f->ei[i], (long long)f->et[i], cell[i % 3]);
        ea[i] = sdim_action_id(cell[i % 3], strlen(cell[i % 3]));
    }
    fclose(fp);
    const char *p = strstr(k_test_model_fmt, "\"extra_dim\":2");
    snprintf(fmt, sizeof fmt, "%.*s\"extra_dim\":10,\"history_actions\":[\"like\",\"NA\"]%s",
             (int)(p - k_test_model_fmt), k_test_model_fmt, p + strlen("\"extra_dim\":2"));
    snprintf(js, sizeof js, fmt, "{\"type\":\"mmoe\",\"experts\":2}");
    moe_model *m;
    moe_dataset *d;
    mr_err e;
    if (moe_model_from_json(&m, js, 3, &e)) fail_msg("model: %s", e.msg);
    assert_int_equal(moe_dataset_read(&d, m, f->data, NULL, 0, &e), 0);
    sdim_csv_opts o = opts(f);
    o.events_path = evp;
    o.n_actions = sdim_model_actions(m, o.actions);
    if (sdim_join_csv(d, f->data, 0, &o, &e)) fail_msg("join: %s", e.msg);
    sdim_hasher *h;
    assert_int_equal(sdim_hasher_create(&h, D, o.m, o.tau, o.seed, NULL), 0);
    const sdim_events ev = {NE, f->eu, f->ei, f->et, ea};
    float *want = calloc((size_t)NR * W, sizeof(float));
    assert_int_equal(sdim_join_act(h, o.l_max, o.short_n, o.actions, NA, &ev, f->ru, f->ri, f->rt,
                                   NR, vec_of, f, want, W, NULL),
                     0);
    assert_memory_equal(d->extra, want, sizeof(float) * NR * W);
    int both = 0;
    for (int r = 0; r < NR; r++) both += want[r * W + 2 * D] > 0 && want[r * W + 2 * D + 1] > 0;
    print_message("rows with both shares > 0: %d of %d\n", both, NR);
    assert_true(both > NR / 4);
    /* the plain events file has no action column */
    o.events_path = f->events;
    assert_int_equal(sdim_join_csv(d, f->data, 0, &o, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "history actions"));
    assert_non_null(strstr(e.msg, "action"));
    /* an action of 65 bytes */
    fp = fopen(evp, "w");
    fprintf(fp, "user_id,item_id,ts_ms,action\n7,1000,1700000000000,like\n7,1001,1700000000001,");
    for (int i = 0; i < 65; i++) fputc('x', fp);
    fprintf(fp, "\n");
    fclose(fp);
    o.events_path = evp;
    assert_int_equal(sdim_join_csv(d, f->data, 0, &o, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, ":3: column 'action': an action is at most 64 bytes"));
    /* the model's extra_dim must leave 2 d for the item vectors */
    o.n_actions = 1;
    assert_int_equal(sdim_join_csv(d, f->data, 0, &o, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "2 d + 1"));
    unlink(evp);
    free(want);
    sdim_hasher_free(h);
    moe_dataset_free(d);
    moe_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equals_join_on_same_ids),
        cmocka_unit_test(test_max_rows),
        cmocka_unit_test(test_errors_name_the_problem),
        cmocka_unit_test(test_actions_column),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
