/* test_scorer.c — moe/scorer.c, the inference API: broadcast features equal
 * per-row features, the input layout (bags, normalised numerics, extra),
 * outputs (sigmoid for binary tasks, weighted final score), concurrent
 * scorers on one model give identical results, gate reports, and argument
 * errors. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "moe/dnn.h"
#include "moe/layers.h"
#include "moe/scorer.h"
#include "testmodel.h"

static moe_model *make(const char *arch) {
    char js[4096];
    snprintf(js, sizeof js, k_test_model_fmt, arch);
    moe_model *m = NULL;
    mr_err e;
    assert_int_equal(moe_model_from_json(&m, js, 5, &e), 0);
    return m;
}

enum { N = 50 };

/* n rows; user, age and extra set per row or (broadcast) once for all. */
static void fill_rows(moe_scorer *s, int n, int broadcast) {
    mr_err e;
    const char *u = "user-1";
    const float ex[2] = {0.5f, -1.0f};
    assert_int_equal(moe_scorer_begin(s, n, &e), 0);
    for (int r = 0; r < n; r++) {
        char item[16], g1[16];
        snprintf(item, sizeof item, "item%d", r);
        snprintf(g1, sizeof g1, "g%d", r % 4);
        const char *iv = item, *gv[2] = {g1, "all"};
        assert_int_equal(moe_scorer_set_cat(s, r, 1, &iv, NULL, 1, &e), 0);
        assert_int_equal(moe_scorer_set_cat(s, r, 2, gv, NULL, 2, &e), 0);
        assert_int_equal(moe_scorer_set_num(s, r, 1, (float)r / 10, &e), 0);
        if (!broadcast) {
            assert_int_equal(moe_scorer_set_cat(s, r, 0, &u, NULL, 1, &e), 0);
            assert_int_equal(moe_scorer_set_num(s, r, 0, 40.0f, &e), 0);
            assert_int_equal(moe_scorer_set_extra(s, r, ex, 2, &e), 0);
        }
    }
    if (broadcast) {
        assert_int_equal(moe_scorer_set_cat(s, MOE_ALL_ROWS, 0, &u, NULL, 1, &e), 0);
        assert_int_equal(moe_scorer_set_num(s, MOE_ALL_ROWS, 0, 40.0f, &e), 0);
        assert_int_equal(moe_scorer_set_extra(s, MOE_ALL_ROWS, ex, 2, &e), 0);
    }
}

static void fill(moe_scorer *s, int broadcast) { fill_rows(s, N, broadcast); }

static void test_broadcast_equals_per_row(void **st) {
    (void)st;
    moe_model *m = make("{\"type\":\"ple\",\"gate\":{\"type\":\"topp\"}}");
    moe_scorer *a, *b;
    mr_err e;
    assert_int_equal(moe_scorer_create(&a, m, &e), 0);
    assert_int_equal(moe_scorer_create(&b, m, &e), 0);
    fill(a, 1);
    fill(b, 0);
    assert_memory_equal(moe_scorer_input(a), moe_scorer_input(b),
                        sizeof(float) * N * (size_t)m->in_dim);
    const float *x = moe_scorer_input(a);
    assert_true(fabsf(x[m->num[0].offset] - 1.0f) < 1e-6f); /* (40 - 30) / 10 */
    assert_true(x[m->in_dim - 2] == 0.5f && x[m->in_dim - 1] == -1.0f);
    /* genre bag is the mean of its two values' four (double-hashed) rows */
    uint64_t r1[2], r2[2];
    moe_model_value_rows(m, 2, "g0", 2, r1);
    moe_model_value_rows(m, 2, "all", 3, r2);
    const moe_table *t = &m->tables[1];
    for (int d = 0; d < 3; d++) {
        float want = (t->data[r1[0] * 3 + d] + t->data[r1[1] * 3 + d] + t->data[r2[0] * 3 + d] +
                      t->data[r2[1] * 3 + d]) /
                     4;
        assert_true(fabsf(x[m->cat[2].offset + d] - want) < 1e-6f);
    }
    float tasks[N * 3], score[N];
    assert_int_equal(moe_scorer_run(a, tasks, score, &e), 0);
    assert_int_equal(moe_scorer_run(a, tasks, score, &e), 0); /* rerun is idempotent */
    for (int r = 0; r < N; r++) {
        assert_true(tasks[r * 3] > 0 && tasks[r * 3] < 1);
        assert_true(fabsf(score[r] - (0.7f * tasks[r * 3] + 0.3f * tasks[r * 3 + 1])) < 1e-6f);
    }
    moe_scorer_free(a);
    moe_scorer_free(b);
    moe_model_free(m);
}

/* The bag of values vs of field f as the scorer builds it: the rows summed
 * in order, then the mean when the field pools by mean. */
static void want_bag(float *out, const moe_model *m, int f, const char *const *vs, int nv) {
    const moe_table *t = &m->tables[m->cat[f].table];
    int cnt = 0;
    memset(out, 0, sizeof(float) * (size_t)t->dim);
    for (int i = 0; i < nv; i++) {
        uint64_t rows[4];
        int nr = moe_model_value_rows(m, f, vs[i], strlen(vs[i]), rows);
        for (int j = 0; j < nr; j++)
            for (int d = 0; d < t->dim; d++) out[d] += t->data[rows[j] * (uint64_t)t->dim + d];
        cnt += nr;
    }
    if (m->cat[f].mean && cnt > 1)
        for (int d = 0; d < t->dim; d++) out[d] *= 1.0f / (float)cnt;
}

/* Per-row bags of in-memory tables are summed later (deferred, prefetched):
 * a broadcast after per-row calls and per-row calls after the broadcast
 * still apply in call order, moe_scorer_input shows them before a run, and
 * a run that never read the input scores bit-identically. */
static void test_deferred_rows_in_call_order(void **st) {
    (void)st;
    moe_model *m = make("{\"type\":\"mmoe\"}");
    moe_scorer *a, *b;
    mr_err e;
    assert_int_equal(moe_scorer_create(&a, m, &e), 0);
    assert_int_equal(moe_scorer_create(&b, m, &e), 0);
    const char *va = "itemA", *vb = "itemB", *vc = "itemC", *g2[2] = {"g1", "all"};
    for (int k = 0; k < 2; k++) {
        moe_scorer *s = k ? b : a;
        assert_int_equal(moe_scorer_begin(s, N, &e), 0);
        for (int r = 0; r < N; r++) {
            assert_int_equal(moe_scorer_set_cat(s, r, 1, &va, NULL, 1, &e), 0);
            assert_int_equal(moe_scorer_set_cat(s, r, 2, g2, NULL, 2, &e), 0);
        }
        assert_int_equal(moe_scorer_set_cat(s, MOE_ALL_ROWS, 1, &vb, NULL, 1, &e), 0);
        for (int r = 0; r < N; r += 2)
            assert_int_equal(moe_scorer_set_cat(s, r, 1, &vc, NULL, 1, &e), 0);
    }
    float wb[16], wc[16], wg[16];
    want_bag(wb, m, 1, &vb, 1);
    want_bag(wc, m, 1, &vc, 1);
    want_bag(wg, m, 2, g2, 2);
    const float *x = moe_scorer_input(a);
    size_t d1 = sizeof(float) * (size_t)m->tables[m->cat[1].table].dim,
           d2 = sizeof(float) * (size_t)m->tables[m->cat[2].table].dim;
    for (int r = 0; r < N; r++) {
        assert_memory_equal(x + (long)r * m->in_dim + m->cat[1].offset, r % 2 ? wb : wc, d1);
        assert_memory_equal(x + (long)r * m->in_dim + m->cat[2].offset, wg, d2);
    }
    float ta[N * 3], tb[N * 3];
    assert_int_equal(moe_scorer_run(a, ta, NULL, &e), 0);
    assert_int_equal(moe_scorer_run(b, tb, NULL, &e), 0);
    assert_memory_equal(ta, tb, sizeof ta);
    /* a new batch drops what the last one deferred and did not flush */
    assert_int_equal(moe_scorer_begin(b, N, &e), 0);
    assert_int_equal(moe_scorer_set_cat(b, 0, 1, &va, NULL, 1, &e), 0);
    assert_int_equal(moe_scorer_begin(b, N, &e), 0);
    const float *xb = moe_scorer_input(b);
    for (size_t i = 0; i < d1 / sizeof(float); i++) assert_true(xb[m->cat[1].offset + i] == 0.0f);
    moe_scorer_free(a);
    moe_scorer_free(b);
    moe_model_free(m);
}

typedef struct worker {
    const moe_model *m;
    float score[N];
    int ok;
} worker;

static void *work(void *arg) {
    worker *w = arg;
    moe_scorer *s;
    mr_err e;
    if (moe_scorer_create(&s, w->m, &e)) return NULL;
    w->ok = 1;
    for (int it = 0; it < 20; it++) {
        fill(s, it % 2);
        if (moe_scorer_run(s, NULL, w->score, &e)) w->ok = 0;
    }
    moe_scorer_free(s);
    return NULL;
}

static void test_concurrent_scorers(void **st) {
    (void)st;
    moe_model *m = make("{\"type\":\"mmoe\",\"gate\":{\"type\":\"topk\",\"k\":2}}");
    worker w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){.m = m};
        pthread_create(&th[i], NULL, work, &w[i]);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(w[i].ok, 1);
        assert_memory_equal(w[i].score, w[0].score, sizeof w[0].score);
    }
    moe_model_free(m);
}

static void test_gate_report(void **st) {
    (void)st;
    moe_model *m = make("{\"type\":\"mmoe\",\"experts\":4,\"gate\":{\"type\":\"topk\",\"k\":1}}");
    moe_scorer *s;
    mr_err e;
    assert_int_equal(moe_scorer_create(&s, m, &e), 0);
    fill(s, 1);
    assert_int_equal(moe_scorer_run(s, NULL, NULL, &e), 0);
    moe_gate_report rep[8];
    int n = moe_scorer_gate_report(s, rep, 8);
    assert_int_equal(n, 3); /* one gate per task */
    assert_string_equal(rep[0].gate, "level0/task:click");
    assert_int_equal(rep[0].n, 4);
    assert_true(fabsf(rep[0].active_fraction - 0.25f) < 1e-6f); /* top-1 of 4 */
    double sum = 0;
    for (int i = 0; i < 4; i++) sum += rep[0].weight[i];
    assert_true(sum > 0.25 && sum <= 1.0 + 1e-6); /* kept prob, not renormalised */
    assert_true(moe_scorer_active_fraction(s) <= 0.75 + 1e-9);
    moe_scorer_free(s);
    moe_model_free(m);
}

/* Rows of a split test. */
enum { NS = 600 };

/* A split run against the whole batch, every precision, dense and routed
 * (top-k) gates, on a pool of 2 with 2..5 parts: within summation-order
 * noise everywhere, and bit for bit on oneDNN's AVX-512 kernels
 * (scorer.h; ctest runs this on AVX2 kernels too, test_moe_scorer_no_avx512).
 * The active fraction covers all parts; no gate report is left. */
static void test_run_split(void **st) {
    (void)st;
    static const char *arch[2] = {
        "{\"type\":\"mmoe\",\"experts\":4,\"expert_hidden\":[32]}",
        "{\"type\":\"mmoe\",\"experts\":4,\"expert_hidden\":[32],\"gate\":{\"type\":\"topk\",\"k\":2}}"};
    mr_pool *pool = mr_pool_create(2);
    assert_non_null(pool);
    mr_err e;
    static float t1[NS * 3], s1[NS], t2[NS * 3], s2[NS];
    for (int a = 0; a < 2; a++) {
        moe_model *m = make(arch[a]);
        for (int p = 0; p < MOE_PREC_COUNT; p++) {
            assert_int_equal(moe_model_set_precision(m, (moe_precision)p, &e), 0);
            int exact = p != MOE_PREC_OPENBLAS_FP32 && !strncmp(moe_dnn_isa_name(), "avx512", 6);
            moe_scorer *s;
            assert_int_equal(moe_scorer_create(&s, m, &e), 0);
            fill_rows(s, NS, 1);
            assert_int_equal(moe_scorer_run(s, t1, s1, &e), 0);
            double af = moe_scorer_active_fraction(s);
            for (int parts = 2; parts <= MOE_SPLIT_MAX + 1; parts++) {
                memset(t2, 0, sizeof t2);
                assert_int_equal(moe_scorer_run_split(s, t2, s2, pool, parts, &e), 0);
                if (exact) {
                    assert_memory_equal(t1, t2, sizeof t1);
                    assert_memory_equal(s1, s2, sizeof s1);
                }
                for (int i = 0; i < NS * 3; i++)
                    assert_true(fabsf(t1[i] - t2[i]) <= 1e-5f * (1 + fabsf(t1[i])));
                for (int i = 0; i < NS; i++)
                    assert_true(fabsf(s1[i] - s2[i]) <= 1e-5f * (1 + fabsf(s1[i])));
                assert_true(fabs(moe_scorer_active_fraction(s) - af) < 1e-9);
                moe_gate_report rep[4];
                assert_int_equal(moe_scorer_gate_report(s, rep, 4), 3);
            }
            /* no pool, one part, too few rows: the plain run */
            assert_int_equal(moe_scorer_run_split(s, t2, s2, NULL, 2, &e), 0);
            assert_memory_equal(t1, t2, sizeof t1);
            assert_int_equal(moe_scorer_begin(s, 3, &e), 0);
            assert_int_equal(moe_scorer_run_split(s, t2, s2, pool, 2, &e), 0);
            moe_scorer_free(s);
        }
        moe_model_free(m);
    }
    mr_pool_free(pool);
}

static void test_errors(void **st) {
    (void)st;
    moe_model *m = make("{\"type\":\"cgc\"}");
    moe_scorer *s;
    mr_err e;
    assert_int_equal(moe_scorer_create(&s, m, &e), 0);
    assert_int_equal(moe_scorer_run(s, NULL, NULL, &e), MR_ESTATE);
    assert_int_equal(moe_scorer_begin(s, 0, &e), MR_EINVAL);
    assert_int_equal(moe_scorer_begin(s, MOE_MAX_BATCH + 1, &e), MR_EINVAL);
    assert_int_equal(moe_scorer_begin(s, 2, &e), 0);
    const char *v = "x";
    assert_int_equal(moe_scorer_set_cat(s, 2, 0, &v, NULL, 1, &e), MR_EINVAL);
    assert_int_equal(moe_scorer_set_cat(s, 0, 9, &v, NULL, 1, &e), MR_EINVAL);
    float ex[3] = {0};
    assert_int_equal(moe_scorer_set_extra(s, 0, ex, 3, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "takes 2"));
    assert_int_equal(moe_scorer_set_num(s, 0, 0, 0.0f / 0.0f, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "age"));
    moe_scorer_free(s);
    moe_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broadcast_equals_per_row),
        cmocka_unit_test(test_deferred_rows_in_call_order),
        cmocka_unit_test(test_concurrent_scorers),
        cmocka_unit_test(test_gate_report),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_run_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
