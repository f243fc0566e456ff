/* test_scorer_store.c — the scorer's fetched-table path (moe/scorer.c,
 * moe_model_set_row_source) over real RocksDB embedding tables
 * (index/store): the model's item table is bulk-loaded with
 * emb_store_ingest and served through emb_store_get, the batched cached
 * multi-get. fp32 rows give bit-identical scores to the in-memory table;
 * fp16 and int8 rows stay within stated tolerances; a batch costs ONE
 * multi-get per fetched table whatever its number of candidates, and none
 * once its rows are cached; a fetch error fails the run naming the table. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../index/store/store_testutil.h"
#include "index/store/store.h"
#include "common/threadpool.h"
#include "moe/scorer.h"
#include "testmodel.h"

enum { N = 300 };

typedef struct src {
    mr_store *st;
    mr_emb_table *t;
    int calls;
    int fail;
} src;

static int fetch(void *ctx, int t, const uint64_t *rows, size_t n, float *out, mr_err *e) {
    (void)t;
    src *s = ctx;
    s->calls++;
    for (size_t i = 1; i < n; i++) assert_true(rows[i] > rows[i - 1]); /* distinct, ascending */
    if (s->fail) return mr_err_set(e, MR_EINTERNAL, "injected");
    return emb_store_get(s->st, s->t, rows, n, out, NULL, e);
}

static void fill(moe_scorer *s) {
    mr_err e;
    const char *u = "user-1";
    const float ex[2] = {0.5f, -1.0f};
    assert_int_equal(moe_scorer_begin(s, N, &e), 0);
    assert_int_equal(moe_scorer_set_cat(s, MOE_ALL_ROWS, 0, &u, NULL, 1, &e), 0);
    assert_int_equal(moe_scorer_set_extra(s, MOE_ALL_ROWS, ex, 2, &e), 0);
    const char *all = "all";
    assert_int_equal(moe_scorer_set_cat(s, MOE_ALL_ROWS, 2, &all, NULL, 1, &e),
                     0); /* then per row */
    for (int r = 0; r < N; r++) {
        char item[16], g1[16];
        snprintf(item, sizeof item, "item%d", r % 97);
        snprintf(g1, sizeof g1, "g%d", r % 4);
        const char *iv = item, *gv[2] = {g1, "all"};
        assert_int_equal(moe_scorer_set_cat(s, r, 1, &iv, NULL, 1, &e), 0);
        if (r % 3) assert_int_equal(moe_scorer_set_cat(s, r, 2, gv, NULL, r % 5 ? 2 : 0, &e), 0);
        assert_int_equal(moe_scorer_set_num(s, r, 1, (float)r / 10, &e), 0);
    }
    /* a later set_cat of the same field and row replaces the earlier one */
    const char *again = "item5";
    assert_int_equal(moe_scorer_set_cat(s, 7, 1, &again, NULL, 1, &e), 0);
}

static mr_pool *g_pool; /* non-NULL: score with moe_scorer_run_split over it */

static void score(const moe_model *m, float *out) {
    moe_scorer *s;
    mr_err e;
    assert_int_equal(moe_scorer_create(&s, m, &e), 0);
    fill(s);
    int rc = g_pool ? moe_scorer_run_split(s, NULL, out, g_pool, 3, &e)
                    : moe_scorer_run(s, NULL, out, &e);
    if (rc) fail_msg("%s", e.msg);
    moe_scorer_free(s);
}

static void test_store_rows_score_like_memory(void **state) {
    (void)state;
    char js[4096], dir[256], sst[300];
    snprintf(js, sizeof js, k_test_model_fmt, "{\"type\":\"mmoe\",\"experts\":3}");
    moe_model *m;
    mr_err e;
    assert_int_equal(moe_model_from_json(&m, js, 5, &e), 0);
    static float mem[N], got[N];
    score(m, mem);
    assert_non_null(store_test_tmpdir(dir, sizeof dir, "scorer-store"));
    snprintf(sst, sizeof sst, "%s/ingest.sst", dir);
    store_config c;
    store_config_init(&c);
    c.cache_bytes = 1 << 20;
    mr_store *st;
    assert_int_equal(store_open(&st, dir, &c, &e), 0);
    moe_table *t = &m->tables[1]; /* item: used by "item" (double) and "genre" (mean bag) */
    uint64_t *ids = malloc(sizeof *ids * (size_t)t->rows);
    for (long i = 0; i < t->rows; i++) ids[i] = (uint64_t)i;
    static const char *names[3] = {"item_fp32", "item_fp16", "item_int8"};
    static const double tol[3] = {0, 1e-4, 1e-3}; /* |score - in-memory score| */
    for (int enc = 0; enc < 3; enc++) {
        assert_int_equal(
            emb_table_create(st, names[enc], (uint32_t)t->dim, (emb_encoding)enc, 0, &e), 0);
        src sc = {.st = st, .t = emb_store_table(st, names[enc], &e)};
        assert_int_equal(emb_store_ingest(st, sc.t, ids, (size_t)t->rows, t->data,
                                          (size_t)(t->rows * t->dim), sst, &e),
                         0);
        moe_model_set_row_source(m, 1, fetch, &sc);
        store_stats a, b, z;
        store_get_stats(st, &a);
        score(m, got);
        store_get_stats(st, &b);
        assert_int_equal(sc.calls, 1);                        /* one fetch for 300 candidates */
        assert_int_equal(b.db_multigets - a.db_multigets, 1); /* one batched multi-get */
        score(m, got);
        store_get_stats(st, &z);
        assert_int_equal(z.db_multigets - b.db_multigets, 0); /* all rows cached now */
        assert_true(z.cache_hits > b.cache_hits);
        double worst = 0;
        for (int r = 0; r < N; r++) worst = fmax(worst, fabs((double)got[r] - mem[r]));
        if (enc == EMB_FP32) assert_memory_equal(got, mem, sizeof mem);
        else assert_true(worst <= tol[enc]);
        /* a split run fetches once for the whole batch, before splitting */
        if (enc == EMB_FP32) {
            static float split[N];
            g_pool = mr_pool_create(2);
            int calls = sc.calls;
            score(m, split);
            assert_int_equal(sc.calls, calls + 1);
            mr_pool_free(g_pool);
            g_pool = NULL;
            for (int r = 0; r < N; r++)
                assert_true(fabsf(split[r] - mem[r]) <= 1e-6f); /* BLAS blocking differs */
        }
        fprintf(stderr, "%s: max |score diff| %.3g\n", names[enc], worst);
        /* a failing fetch fails the run and names the table */
        sc.fail = 1;
        moe_scorer *s;
        assert_int_equal(moe_scorer_create(&s, m, &e), 0);
        fill(s);
        assert_int_equal(moe_scorer_run(s, NULL, got, &e), MR_EINTERNAL);
        assert_non_null(strstr(e.msg, "table 'item'"));
        moe_scorer_free(s);
        moe_model_set_row_source(m, 1, NULL, NULL);
    }
    score(m, got); /* back on the in-memory rows */
    assert_memory_equal(got, mem, sizeof mem);
    free(ids);
    store_close(st);
    store_test_rmrf(dir);
    moe_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_rows_score_like_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
