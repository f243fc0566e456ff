/* test_optim.c — moe/optim.c: Adam's first step is lr * sign(g) (bias
 * correction), a few steps match a direct double-precision Adam, sparse
 * updates touch only the listed rows, Adagrad's accumulator, clipping. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "moe/optim.h"

static void test_adam(void **st) {
    (void)st;
    float p[3] = {1, -2, 0.5f}, g[3] = {0.3f, -0.01f, 2.0f}, m[3] = {0}, v[3] = {0};
    moe_adam a = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .step = 1};
    moe_adam_update(p, g, m, v, 3, &a);
    assert_true(fabsf(p[0] - 0.9f) < 1e-5f); /* first step moves by lr against g */
    assert_true(fabsf(p[1] + 1.9f) < 1e-5f);
    assert_true(fabsf(p[2] - 0.4f) < 1e-5f);
    /* three more steps vs a double-precision reference */
    double rp = p[0], rm = m[0], rv = v[0];
    for (int s = 2; s <= 4; s++) {
        a.step = s;
        float gg[3] = {0.3f * s, 0, 0};
        moe_adam_update(p, gg, m, v, 1, &a);
        rm = 0.9 * rm + 0.1 * gg[0];
        rv = 0.999 * rv + 0.001 * gg[0] * gg[0];
        rp -= 0.1 * (rm / (1 - pow(0.9, s))) / (sqrt(rv / (1 - pow(0.999, s))) + 1e-8);
    }
    assert_true(fabs(p[0] - rp) < 1e-5);
}

static void test_sparse(void **st) {
    (void)st;
    enum { R = 5, D = 2 };
    float p[R * D], g[R * D], m[R * D] = {0}, v[R * D] = {0}, before[R * D];
    for (int i = 0; i < R * D; i++) p[i] = before[i] = (float)i, g[i] = 1.0f;
    uint32_t rows[2] = {1, 3};
    moe_adam a = {.lr = 0.5f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .step = 1};
    moe_sparse_update(p, g, m, v, rows, 2, D, MOE_OPT_ADAM, &a);
    for (int r = 0; r < R; r++)
        for (int d = 0; d < D; d++) {
            int touched = r == 1 || r == 3;
            assert_true(fabsf(p[r * D + d] - (before[r * D + d] - (touched ? 0.5f : 0.0f))) <
                        1e-5f);
            assert_true((m[r * D + d] != 0) == touched);
        }
    memset(v, 0, sizeof v);
    memcpy(p, before, sizeof p);
    moe_sparse_update(p, g, m, v, rows, 1, D, MOE_OPT_ADAGRAD, &a);
    assert_true(fabsf(v[2] - 1.0f) < 1e-6f);
    assert_true(fabsf(p[2] - (before[2] - 0.5f)) < 1e-5f); /* lr * g / sqrt(g^2) */
    assert_true(p[0] == before[0]);
}

static void test_clip(void **st) {
    (void)st;
    assert_true(moe_clip_scale(100.0, 5.0f) == 0.5f); /* norm 10 -> 5 */
    assert_true(moe_clip_scale(16.0, 5.0f) == 1.0f);
    assert_true(moe_clip_scale(1e6, 0.0f) == 1.0f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adam),
        cmocka_unit_test(test_sparse),
        cmocka_unit_test(test_clip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
