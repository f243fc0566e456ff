/* test_metrics.c — moe/metrics.c: AUC against a brute-force pair count
 * (ties half), its edge cases, log loss and MSE against direct formulas. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/rng.h"
#include "moe/metrics.h"

static void test_auc_pairs(void **st) {
    (void)st;
    enum { N = 300 };
    float s[N], y[N], mask[N];
    mr_rng r;
    mr_rng_seed(&r, 1);
    for (int i = 0; i < N; i++) {
        y[i] = (float)mr_rng_below(&r, 2);
        s[i] = (float)mr_rng_below(&r, 20) + y[i] * 3; /* many ties */
        mask[i] = i % 7 ? 1.0f : 0.0f;
    }
    double num = 0, den = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            if (!mask[i] || !mask[j] || y[i] != 1 || y[j] != 0) continue;
            den++;
            num += s[i] > s[j] ? 1 : s[i] == s[j] ? 0.5 : 0;
        }
    double auc = moe_auc(s, y, mask, N);
    print_message("auc %.6f brute %.6f\n", auc, num / den);
    assert_true(fabs(auc - num / den) < 1e-9);
    assert_true(auc > 0.6);
}

static void test_auc_edges(void **st) {
    (void)st;
    float s[4] = {0.1f, 0.2f, 0.3f, 0.4f}, y1[4] = {0, 0, 1, 1}, y0[4] = {1, 1, 1, 1};
    assert_true(moe_auc(s, y1, NULL, 4) == 1.0);
    float rev[4] = {0.4f, 0.3f, 0.2f, 0.1f};
    assert_true(moe_auc(rev, y1, NULL, 4) == 0.0);
    assert_true(moe_auc(s, y0, NULL, 4) == 0.5); /* one class only */
    float same[4] = {1, 1, 1, 1};
    assert_true(moe_auc(same, y1, NULL, 4) == 0.5);
    /* NaN scores rank below every number and tie with each other: a total
     * order, so the result does not depend on qsort's visiting order */
    float sn[6] = {NAN, 0.2f, NAN, 0.9f, 0.1f, NAN}, yn[6] = {1, 0, 0, 1, 1, 0};
    /* ranks: NaN x3 tie at 2 (rows 0, 2, 5), 0.1 -> 4, 0.2 -> 5, 0.9 -> 6;
     * positives rows 0, 3, 4: ranks 2 + 6 + 4 = 12; U = 12 - 6 = 6; AUC 6/9 */
    assert_true(fabs(moe_auc(sn, yn, NULL, 6) - 6.0 / 9.0) < 1e-12);
}

static void test_logloss_mse(void **st) {
    (void)st;
    float p[3] = {0.9f, 0.2f, 0.0f}, y[3] = {1, 0, 1}, m[3] = {1, 1, 0};
    double want = -(log(0.9) + log(0.8)) / 2;
    assert_true(fabs(moe_logloss(p, y, m, 3) - want) < 1e-6);
    assert_true(isfinite(moe_logloss(p, y, NULL, 3))); /* p = 0 with y = 1 is clamped */
    float pr[3] = {1, 2, 3}, t[3] = {1, 0, 6};
    assert_true(fabs(moe_mse(pr, t, NULL, 3) - (0 + 4 + 9) / 3.0) < 1e-9);
    assert_true(fabs(moe_mse(pr, t, m, 3) - 2.0) < 1e-9);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auc_pairs),
        cmocka_unit_test(test_auc_edges),
        cmocka_unit_test(test_logloss_mse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
