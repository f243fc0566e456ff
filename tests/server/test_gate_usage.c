/* test_gate_usage.c — per-gate expert utilisation accumulated over ranking
 * passes equals the mean of the scorer's own per-pass gate reports, keeps
 * the gate and expert names, starts empty, and skips a split run (which
 * leaves no gate report). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/threadpool.h"
#include "server/gate_usage.h"
#include "../moe/testmodel.h"

static void test_mean_of_reports(void **state) {
    (void)state;
    char js[4096];
    snprintf(js, sizeof js, k_test_model_fmt,
             "{\"type\":\"mmoe\",\"experts\":4,\"gate\":{\"type\":\"topk\",\"k\":2}}");
    moe_model *m = NULL;
    mr_err e;
    assert_int_equal(moe_model_from_json(&m, js, 5, &e), 0);
    moe_scorer *s = NULL;
    assert_int_equal(moe_scorer_create(&s, m, &e), 0);
    mr_gate_usage *u = calloc(1, sizeof *u), *snap = calloc(1, sizeof *snap);
    mr_gate_usage_read(u, snap);
    assert_int_equal(snap->passes, 0);
    double want[3][64] = {{0}};
    static moe_gate_report rep[MR_GU_GATES];
    int ngates = 0;
    for (int pass = 0; pass < 5; pass++) {
        assert_int_equal(moe_scorer_begin(s, 3 + pass, &e), 0);
        char user[16];
        snprintf(user, sizeof user, "u%d", pass);
        const char *v[1] = {user};
        assert_int_equal(moe_scorer_set_cat(s, MOE_ALL_ROWS, 0, v, NULL, 1, &e), 0);
        for (int r = 0; r < 3 + pass; r++) {
            char item[16];
            snprintf(item, sizeof item, "i%d", r * 7 + pass);
            const char *iv[1] = {item};
            assert_int_equal(moe_scorer_set_cat(s, r, 1, iv, NULL, 1, &e), 0);
        }
        assert_int_equal(moe_scorer_run(s, NULL, NULL, &e), 0);
        mr_gate_usage_add(u, s);
        ngates = moe_scorer_gate_report(s, rep, MR_GU_GATES);
        for (int g = 0; g < ngates; g++)
            for (int x = 0; x < rep[g].n; x++) want[g][x] += rep[g].weight[x] / 5.0;
    }
    mr_gate_usage_read(u, snap);
    assert_int_equal(snap->passes, 5);
    assert_int_equal(snap->n_gates, ngates);
    assert_int_equal(ngates, 3); /* one gate per task */
    assert_string_equal(snap->gate[0], "level0/task:click");
    assert_string_equal(snap->expert[0][3], "l0.e3");
    for (int g = 0; g < ngates; g++) {
        double tot = 0;
        for (int x = 0; x < snap->n[g]; x++) {
            assert_true(fabs(snap->sum[g][x] / 5.0 - want[g][x]) < 1e-6);
            tot += snap->sum[g][x] / 5.0;
        }
        assert_true(tot > 0.2 && tot <= 1.0 + 1e-6); /* top-2 of softmax weights */
        assert_true(snap->active[g] / 5.0 > 0.49 && snap->active[g] / 5.0 < 0.51); /* 2 of 4 */
    }
    /* a batch split over a pool leaves no gate report: not counted */
    mr_pool *pool = mr_pool_create(2);
    assert_non_null(pool);
    assert_int_equal(moe_scorer_begin(s, 16, &e), 0);
    assert_int_equal(moe_scorer_run_split(s, NULL, NULL, pool, 2, &e), 0);
    mr_gate_usage_add(u, s);
    mr_gate_usage_read(u, snap);
    assert_int_equal(snap->passes, 5);
    mr_pool_free(pool);
    free(u);
    free(snap);
    moe_scorer_free(s);
    moe_model_free(m);
}

int main(void) {
    const struct CMUnitTest t[] = {cmocka_unit_test(test_mean_of_reports)};
    return cmocka_run_group_tests(t, NULL, NULL);
}
