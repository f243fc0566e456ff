/* test_dataset_split.c — moe/dataset_split.c: the per-user time split
 * against a direct per-user computation (latest fraction, at least one row
 * for users of two rows or more, boundary ties to validation, one-row users
 * in training), its errors; appending a dataset keeps every row's values
 * and bags. */
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

#include "common/rng.h"
#include "moe/dataset.h"
#include "testmodel.h"

/* The shared test schema (testmodel.h) with an MMoE. */
static moe_model *make(void) {
    static char js[4096];
    moe_model *m = NULL;
    assert_true(snprintf(js, sizeof js, k_test_model_fmt, "{\"type\":\"mmoe\"}") < (int)sizeof js);
    assert_int_equal(moe_model_from_json(&m, js, 5, NULL), 0);
    return m;
}

static void test_user_time_split(void **st) {
    (void)st;
    moe_model *m = make();
    mr_err e;
    enum { N = 500, U = 23 };
    moe_dataset *d;
    assert_int_equal(moe_dataset_alloc(&d, m, N, &e), 0);
    d->time = malloc(sizeof(double) * N);
    uint64_t g[N];
    mr_rng r;
    mr_rng_seed(&r, 9);
    for (long i = 0; i < N; i++) {
        g[i] = i == N - 1 ? 999 : mr_rng_below(&r, U); /* user 999 has one row */
        d->time[i] = (double)mr_rng_below(&r, 40);     /* ties */
    }
    long *tr, *va, ntr, nva;
    assert_int_equal(moe_dataset_split_groups(d, g, 0.2, &tr, &ntr, &va, &nva, &e), 0);
    assert_int_equal(ntr + nva, N);
    char *in_va = calloc(N, 1);
    for (long i = 0; i < nva; i++) in_va[va[i]] = 1;
    for (long i = 1; i < ntr; i++) assert_true(tr[i] > tr[i - 1]); /* row order */
    for (uint64_t u = 0; u <= 999; u++) {
        long cnt = 0, nv = 0;
        double maxtr = -1, minva = 1e9;
        for (long i = 0; i < N; i++) {
            if (g[i] != u) continue;
            cnt++;
            if (in_va[i]) nv++, minva = fmin(minva, d->time[i]);
            else maxtr = fmax(maxtr, d->time[i]);
        }
        if (!cnt) continue;
        if (cnt == 1) {
            assert_int_equal(nv, 0);
            continue;
        }
        long k = (long)(0.2 * cnt) ? (long)(0.2 * cnt) : 1;
        assert_true(nv >= k);       /* at least the fraction; more only through ties */
        assert_true(maxtr < minva); /* strictly earlier */
        /* the extra validation rows are exactly the ties at the boundary */
        long at_boundary = 0;
        for (long i = 0; i < N; i++) at_boundary += g[i] == u && in_va[i] && d->time[i] == minva;
        assert_true(nv - k < at_boundary || nv == k);
    }
    free(in_va);
    free(tr);
    free(va);
    assert_int_equal(moe_dataset_split_groups(d, g, 0, &tr, &ntr, &va, &nva, &e), MR_EINVAL);
    free(d->time);
    d->time = NULL;
    assert_int_equal(moe_dataset_split_groups(d, g, 0.2, &tr, &ntr, &va, &nva, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "time column"));
    moe_dataset_free(d);
    moe_model_free(m);
}

static char g_path[64];

static void read_text(moe_dataset **d, const moe_model *m, const char *text) {
    snprintf(g_path, sizeof g_path, "/tmp/moe_dss_XXXXXX");
    int fd = mkstemp(g_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    mr_err e;
    assert_int_equal(moe_dataset_read(d, m, g_path, "ts", 0, &e), 0);
    unlink(g_path);
}

static void test_append(void **st) {
    (void)st;
    moe_model *m = make();
    const char *hdr = "uid,item,genre,age,price,click,rating,dwell,ts\n";
    char a_txt[512], b_txt[512], ab_txt[1024];
    const char *ra = "u1,i1,A|B,20,1,1,4,1,10\nu2,i2,,30,,0,3,2,20\n",
               *rb = "u3,i3,C|A|B,,3,1,5,3,5\n";
    snprintf(a_txt, sizeof a_txt, "%s%s", hdr, ra);
    snprintf(b_txt, sizeof b_txt, "%s%s", hdr, rb);
    snprintf(ab_txt, sizeof ab_txt, "%s%s%s", hdr, ra, rb);
    moe_dataset *a, *b, *ab;
    read_text(&a, m, a_txt);
    read_text(&b, m, b_txt);
    read_text(&ab, m, ab_txt);
    mr_err e;
    assert_int_equal(moe_dataset_append(a, b, &e), 0);
    assert_int_equal(a->n, 3);
    for (int f = 0; f < a->n_cat; f++) {
        assert_memory_equal(a->cat_off[f], ab->cat_off[f], sizeof(uint32_t) * 4);
        assert_memory_equal(a->cat_rows[f], ab->cat_rows[f], sizeof(uint32_t) * ab->cat_off[f][3]);
    }
    assert_memory_equal(a->y, ab->y, sizeof(float) * 3 * (size_t)a->n_tasks);
    assert_memory_equal(a->mask, ab->mask, sizeof(float) * 3 * (size_t)a->n_tasks);
    assert_memory_equal(a->time, ab->time, sizeof(double) * 3);
    for (int i = 0; i < 3 * a->n_num; i++)
        assert_true(isnan(a->num[i]) ? isnan(ab->num[i]) : a->num[i] == ab->num[i]);
    assert_memory_equal(a->extra, ab->extra, sizeof(float) * 3 * (size_t)a->extra_dim);
    free(b->time); /* different layout: refused */
    b->time = NULL;
    assert_int_equal(moe_dataset_append(a, b, &e), MR_EINVAL);
    moe_dataset_free(a);
    moe_dataset_free(b);
    moe_dataset_free(ab);
    moe_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_time_split),
        cmocka_unit_test(test_append),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
