/* test_layers.c — finite-difference checks of every layer in moe/layers.c
 * (linear, ReLU, Swish, row norm, softmax, embedding bag, BCE, MSE) and
 * their forward definitions against direct formulas. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/rng.h"
#include "common/tensor.h"
#include "gradcheck.h"
#include "moe/layers.h"

/* Weighted-sum loss L = sum r_i y_i of a layer's output, r fixed random. */
static double wsum(const float *y, const float *r, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)y[i] * r[i];
    return s;
}

static void fill(mr_rng *g, float *x, long n, float sd) { mr_rng_fill_normal(g, x, n, sd); }

static void test_linear(void **st) {
    (void)st;
    enum { B = 5, C = 7, O = 4 };
    mr_rng g;
    mr_rng_seed(&g, 1);
    float x[B * C], w[O * C], b[O], y[B * O], r[B * O];
    fill(&g, x, B * C, 1);
    fill(&g, w, O * C, 1);
    fill(&g, b, O, 1);
    fill(&g, r, B * O, 1);
    moe_linear_forward(y, x, w, b, B, C, O);
    for (int i = 0; i < B; i++) /* forward is x w^T + b */
        for (int o = 0; o < O; o++) {
            double s = b[o];
            for (int c = 0; c < C; c++) s += (double)x[i * C + c] * w[o * C + c];
            assert_true(fabs(s - y[i * O + o]) < 1e-4);
        }
    /* a single row takes the sgemv path: same result as its batch row,
     * with and without bias */
    float y1[O];
    for (int i = 0; i < B; i++) {
        moe_linear_forward(y1, x + i * C, w, b, 1, C, O);
        for (int o = 0; o < O; o++) assert_true(fabsf(y1[o] - y[i * O + o]) < 1e-5f);
        moe_linear_forward(y1, x + i * C, w, NULL, 1, C, O);
        for (int o = 0; o < O; o++) assert_true(fabsf(y1[o] + b[o] - y[i * O + o]) < 1e-5f);
    }
    float dx[B * C] = {0}, dw[O * C] = {0}, db[O] = {0};
    moe_linear_backward(dx, dw, db, r, x, w, B, C, O);
    gc_stats s = {0};
    float *ps[3] = {x, w, b}, *gs[3] = {dx, dw, db};
    int ns[3] = {B * C, O * C, O};
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < ns[t]; i++) {
            float keep = ps[t][i], h = 1e-2f;
            ps[t][i] = keep + h;
            moe_linear_forward(y, x, w, b, B, C, O);
            double lp = wsum(y, r, B * O);
            ps[t][i] = keep - h;
            moe_linear_forward(y, x, w, b, B, C, O);
            double lm = wsum(y, r, B * O);
            ps[t][i] = keep;
            gc_compare(&s, (lp - lm) / (2 * h), gs[t][i], 1e-3, 1e-3);
        }
    print_message("linear: %ld coords, %ld failed, max rel err %.2e\n", s.checked, s.failed,
                  s.max_rel);
    assert_int_equal(s.failed, 0);
}

typedef void (*act_fwd)(float *, const float *, long);

static void check_act(int swish) {
    enum { N = 64 };
    mr_rng g;
    mr_rng_seed(&g, 2);
    float x[N], y[N], r[N], dx[N] = {0};
    fill(&g, x, N, 2);
    fill(&g, r, N, 1);
    for (int i = 0; i < N; i++)
        if (fabsf(x[i]) < 0.05f) x[i] = 0.5f; /* keep away from ReLU's kink */
    if (swish) moe_swish_forward(y, x, N);
    else moe_relu_forward(y, x, N);
    for (int i = 0; i < N; i++) {
        double want = swish ? x[i] / (1 + exp(-x[i])) : (x[i] > 0 ? x[i] : 0);
        assert_true(fabs(want - y[i]) < 1e-5);
    }
    if (swish) moe_swish_backward(dx, r, x, N);
    else moe_relu_backward(dx, r, y, N);
    gc_stats s = {0};
    for (int i = 0; i < N; i++) {
        float keep = x[i], h = 1e-2f, a, b2;
        x[i] = keep + h;
        if (swish) moe_swish_forward(&a, &x[i], 1);
        else moe_relu_forward(&a, &x[i], 1);
        x[i] = keep - h;
        if (swish) moe_swish_forward(&b2, &x[i], 1);
        else moe_relu_forward(&b2, &x[i], 1);
        x[i] = keep;
        gc_compare(&s, (double)r[i] * (a - b2) / (2 * h), dx[i], 1e-3, 1e-4);
    }
    print_message("%s: %ld coords, max rel err %.2e\n", swish ? "swish" : "relu", s.checked,
                  s.max_rel);
    assert_int_equal(s.failed, 0);
}

static void test_relu(void **st) {
    (void)st;
    check_act(0);
}
static void test_swish(void **st) {
    (void)st;
    check_act(1);
}

static void test_rownorm(void **st) {
    (void)st;
    enum { B = 4, C = 6 };
    mr_rng g;
    mr_rng_seed(&g, 3);
    float x[B * C], gg[C], bb[C], y[B * C], r[B * C], mean[B], rstd[B];
    fill(&g, x, B * C, 2);
    fill(&g, gg, C, 1);
    fill(&g, bb, C, 1);
    fill(&g, r, B * C, 1);
    moe_rownorm_forward(y, mean, rstd, x, gg, bb, B, C);
    for (int i = 0; i < B; i++) { /* with g = 1, b = 0 a row would have mean 0, var 1 */
        double m = 0, v = 0;
        for (int c = 0; c < C; c++) m += (y[i * C + c] - bb[c]) / gg[c];
        for (int c = 0; c < C; c++) v += pow((y[i * C + c] - bb[c]) / gg[c], 2);
        assert_true(fabs(m / C) < 1e-4);
        assert_true(fabs(v / C - 1) < 1e-3);
    }
    float dx[B * C] = {0}, dg[C] = {0}, db[C] = {0};
    moe_rownorm_backward(dx, dg, db, r, x, mean, rstd, gg, B, C);
    gc_stats s = {0};
    float *ps[3] = {x, gg, bb}, *gs[3] = {dx, dg, db};
    int ns[3] = {B * C, C, C};
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < ns[t]; i++) {
            float keep = ps[t][i], h = 1e-2f;
            ps[t][i] = keep + h;
            moe_rownorm_forward(y, mean, rstd, x, gg, bb, B, C);
            double lp = wsum(y, r, B * C);
            ps[t][i] = keep - h;
            moe_rownorm_forward(y, mean, rstd, x, gg, bb, B, C);
            double lm = wsum(y, r, B * C);
            ps[t][i] = keep;
            gc_compare(&s, (lp - lm) / (2 * h), gs[t][i], 1e-2, 1e-3);
        }
    print_message("rownorm: %ld coords, max rel err %.2e\n", s.checked, s.max_rel);
    assert_int_equal(s.failed, 0);
}

static void test_softmax(void **st) {
    (void)st;
    enum { B = 3, C = 5 };
    mr_rng g;
    mr_rng_seed(&g, 4);
    float x[B * C], p[B * C], r[B * C], dx[B * C] = {0};
    fill(&g, x, B * C, 2);
    fill(&g, r, B * C, 1);
    moe_softmax_forward(p, x, B, C);
    for (int i = 0; i < B; i++) {
        double s = 0;
        for (int c = 0; c < C; c++) s += p[i * C + c];
        assert_true(fabs(s - 1) < 1e-5);
    }
    moe_softmax_backward(dx, r, p, B, C);
    gc_stats s = {0};
    for (int i = 0; i < B * C; i++) {
        float keep = x[i], h = 1e-2f;
        x[i] = keep + h;
        moe_softmax_forward(p, x, B, C);
        double lp = wsum(p, r, B * C);
        x[i] = keep - h;
        moe_softmax_forward(p, x, B, C);
        double lm = wsum(p, r, B * C);
        x[i] = keep;
        gc_compare(&s, (lp - lm) / (2 * h), dx[i], 1e-2, 1e-4);
    }
    print_message("softmax: %ld coords, max rel err %.2e\n", s.checked, s.max_rel);
    assert_int_equal(s.failed, 0);
}

static void test_embbag(void **st) {
    (void)st;
    enum { R = 10, D = 3, B = 4 };
    mr_rng g;
    mr_rng_seed(&g, 5);
    float table[R * D], out[B * D], r[B * D];
    fill(&g, table, R * D, 1);
    fill(&g, r, B * D, 1);
    uint32_t rows[] = {1, 2, 2, 7, 9, 0}, off[] = {0, 3, 3, 4, 6}; /* bag 1 empty, row 2 twice */
    for (int mean = 0; mean <= 1; mean++) {
        moe_embbag_forward(out, D, table, rows, off, B, D, mean);
        for (int d = 0; d < D; d++) {
            double s0 = table[1 * D + d] + 2.0 * table[2 * D + d];
            assert_true(fabs(out[d] - (mean ? s0 / 3 : s0)) < 1e-5);
            assert_true(out[1 * D + d] == 0.0f);
        }
        float drows[6 * D];
        moe_embbag_backward(drows, r, D, off, B, D, mean);
        /* dense gradient of the table from the per-lookup rows */
        float dt[R * D];
        memset(dt, 0, sizeof dt);
        for (int j = 0; j < 6; j++)
            for (int d = 0; d < D; d++) dt[rows[j] * D + d] += drows[j * D + d];
        gc_stats s = {0};
        for (int i = 0; i < R * D; i++) {
            float keep = table[i], h = 1e-2f;
            table[i] = keep + h;
            moe_embbag_forward(out, D, table, rows, off, B, D, mean);
            double lp = wsum(out, r, B * D);
            table[i] = keep - h;
            moe_embbag_forward(out, D, table, rows, off, B, D, mean);
            double lm = wsum(out, r, B * D);
            table[i] = keep;
            gc_compare(&s, (lp - lm) / (2 * h), dt[i], 1e-3, 1e-4);
        }
        assert_int_equal(s.failed, 0);
    }
}

static void test_losses(void **st) {
    (void)st;
    enum { B = 8 };
    mr_rng g;
    mr_rng_seed(&g, 6);
    float z[B], y[B], mask[B], d[B];
    fill(&g, z, B, 3);
    for (int i = 0; i < B; i++) {
        y[i] = (float)(i % 2);
        mask[i] = i == 3 ? 0.0f : 1.0f;
    }
    z[0] = 60.0f; /* large logits stay finite */
    double l = moe_bce_forward(z, y, mask, B);
    assert_true(isfinite(l));
    double direct = 0;
    for (int i = 1; i < B; i++) {
        if (!mask[i]) continue;
        double p = 1 / (1 + exp(-z[i]));
        direct += -(y[i] * log(p) + (1 - y[i]) * log(1 - p));
    }
    assert_true(fabs((l - 60.0) - direct) < 1e-3); /* row 0: y = 0, loss = 60 */
    for (int mse = 0; mse <= 1; mse++) {
        memset(d, 0, sizeof d);
        if (mse) moe_mse_backward(d, z, y, mask, 0.5f, B);
        else moe_bce_backward(d, z, y, mask, 0.5f, B);
        gc_stats s = {0};
        for (int i = 0; i < B; i++) {
            float keep = z[i], h = 1e-2f;
            z[i] = keep + h;
            double lp = mse ? moe_mse_forward(z, y, mask, B) : moe_bce_forward(z, y, mask, B);
            z[i] = keep - h;
            double lm = mse ? moe_mse_forward(z, y, mask, B) : moe_bce_forward(z, y, mask, B);
            z[i] = keep;
            gc_compare(&s, 0.5 * (lp - lm) / (2 * h), d[i], 1e-3, 1e-4);
        }
        assert_int_equal(s.failed, 0);
        assert_true(d[3] == 0.0f); /* masked row gets no gradient */
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),  cmocka_unit_test(test_relu),
        cmocka_unit_test(test_swish),   cmocka_unit_test(test_rownorm),
        cmocka_unit_test(test_softmax), cmocka_unit_test(test_embbag),
        cmocka_unit_test(test_losses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
