/* test_attention.c — moe/attention.c: target attention and mean pooling
 * forward against direct double-precision formulas, every gradient against
 * central finite differences (separate K and V, and K aliasing V as the
 * ranker uses it), empty sequences, and the sharpening property that makes
 * attention the accuracy reference (a key aligned with the query dominates). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/rng.h"
#include "common/tensor.h"
#include "gradcheck.h"
#include "moe/attention.h"

enum { B = 4, L = 9, D = 6 };

static double wsum(const float *y, const float *r, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)y[i] * r[i];
    return s;
}

/* Direct formula in double: out[b] = sum_j softmax_j(q_b . k_j * scale) v_j. */
static void attn_ref(double *out, const float *q, const float *k, const float *v, int nb, int nl,
                     int d, double scale) {
    for (int b = 0; b < nb; b++) {
        double s[64], mx = -1e300, z = 0;
        for (int j = 0; j < nl; j++) {
            s[j] = 0;
            for (int c = 0; c < d; c++) s[j] += (double)q[b * d + c] * k[j * d + c];
            s[j] *= scale;
            if (s[j] > mx) mx = s[j];
        }
        for (int j = 0; j < nl; j++) z += (s[j] = exp(s[j] - mx));
        for (int c = 0; c < d; c++) {
            double a = 0;
            for (int j = 0; j < nl; j++) a += s[j] / z * v[j * d + c];
            out[b * d + c] = a;
        }
    }
}

static void test_attn_forward_matches_formula(void **st) {
    (void)st;
    mr_rng g;
    mr_rng_seed(&g, 11);
    float q[B * D], k[L * D], v[L * D], out[B * D], p[B * L];
    mr_rng_fill_normal(&g, q, B * D, 1);
    mr_rng_fill_normal(&g, k, L * D, 1);
    mr_rng_fill_normal(&g, v, L * D, 1);
    for (int pass = 0; pass < 2; pass++) {
        float scale = pass == 0 ? 0.0f : 0.7f; /* default 1/sqrt(D), then explicit */
        double want[B * D];
        moe_attn_forward(out, p, q, k, v, B, L, D, scale);
        attn_ref(want, q, k, v, B, L, D, pass == 0 ? 1.0 / sqrt(D) : 0.7);
        for (int i = 0; i < B * D; i++) assert_true(fabs(want[i] - out[i]) < 1e-5);
        for (int b = 0; b < B; b++) { /* cached probabilities are a distribution */
            double s = 0;
            for (int j = 0; j < L; j++) {
                assert_true(p[b * L + j] > 0.0f);
                s += p[b * L + j];
            }
            assert_true(fabs(s - 1) < 1e-5);
        }
    }
}

static void check_attn_grads(int alias) {
    mr_rng g;
    mr_rng_seed(&g, alias ? 13 : 12);
    float q[B * D], k[L * D], v0[L * D], out[B * D], p[B * L], r[B * D], scr[B * L];
    mr_rng_fill_normal(&g, q, B * D, 1);
    mr_rng_fill_normal(&g, k, L * D, 1);
    mr_rng_fill_normal(&g, v0, L * D, 1);
    mr_rng_fill_normal(&g, r, B * D, 1);
    float *v = alias ? k : v0;
    float dq[B * D] = {0}, dk[L * D] = {0}, dv0[L * D] = {0};
    float *dv = alias ? dk : dv0;
    moe_attn_forward(out, p, q, k, v, B, L, D, 0.0f);
    moe_attn_backward(dq, dk, dv, scr, r, p, q, k, v, B, L, D, 0.0f);
    gc_stats s = {0};
    float *ps[3] = {q, k, v0}, *gs[3] = {dq, dk, dv0};
    int ns[3] = {B * D, L * D, L * D};
    for (int t = 0; t < (alias ? 2 : 3); t++)
        for (int i = 0; i < ns[t]; i++) {
            float keep = ps[t][i], h = 1e-2f;
            ps[t][i] = keep + h;
            moe_attn_forward(out, p, q, k, v, B, L, D, 0.0f);
            double lp = wsum(out, r, B * D);
            ps[t][i] = keep - h;
            moe_attn_forward(out, p, q, k, v, B, L, D, 0.0f);
            double lm = wsum(out, r, B * D);
            ps[t][i] = keep;
            gc_compare(&s, (lp - lm) / (2 * h), gs[t][i], 2e-3, 2e-3);
        }
    print_message("attention (alias %d): %ld coords, %ld failed, max rel err %.2e\n", alias,
                  s.checked, s.failed, s.max_rel);
    assert_int_equal(s.failed, 0);
    assert_true(s.checked >= (alias ? B * D + L * D : B * D + 2 * L * D));
}

static void test_attn_grads(void **st) {
    (void)st;
    check_attn_grads(0);
}

static void test_attn_grads_aliased_kv(void **st) {
    (void)st;
    check_attn_grads(1);
}

static void test_attn_backward_accumulates(void **st) {
    (void)st;
    mr_rng g;
    mr_rng_seed(&g, 14);
    float q[B * D], k[L * D], out[B * D], p[B * L], r[B * D], scr[B * L];
    mr_rng_fill_normal(&g, q, B * D, 1);
    mr_rng_fill_normal(&g, k, L * D, 1);
    mr_rng_fill_normal(&g, r, B * D, 1);
    float dq1[B * D] = {0}, dq2[B * D];
    moe_attn_forward(out, p, q, k, k, B, L, D, 0.0f);
    moe_attn_backward(dq1, NULL, NULL, scr, r, p, q, k, k, B, L, D, 0.0f);
    for (int i = 0; i < B * D; i++) dq2[i] = 1.0f;
    moe_attn_backward(dq2, NULL, NULL, scr, r, p, q, k, k, B, L, D, 0.0f);
    for (int i = 0; i < B * D; i++) assert_true(fabsf(dq2[i] - 1.0f - dq1[i]) < 1e-5f);
}

static void test_attn_empty_history_is_zero(void **st) {
    (void)st;
    float q[B * D], out[B * D];
    for (int i = 0; i < B * D; i++) q[i] = 1.0f, out[i] = 42.0f;
    moe_attn_forward(out, NULL, q, NULL, NULL, B, 0, D, 0.0f);
    for (int i = 0; i < B * D; i++) assert_true(out[i] == 0.0f);
}

/* A key parallel to the query with a large norm takes almost all the mass:
 * attention retrieves the matching behaviour wherever it sits in the
 * sequence (what mean pooling cannot do). */
static void test_attn_selects_matching_key(void **st) {
    (void)st;
    enum { LL = 500, DD = 16 };
    mr_rng g;
    mr_rng_seed(&g, 15);
    float *k = mr_floats_alloc(LL * DD), *p = mr_floats_alloc(LL), q[DD], out[DD];
    mr_rng_fill_normal(&g, k, LL * DD, 1);
    mr_rng_fill_normal(&g, q, DD, 1);
    float nq = mr_l2norm(q, DD);
    for (int c = 0; c < DD; c++) q[c] *= 8.0f / nq; /* |q| = 8 */
    int pos = 17;
    for (int c = 0; c < DD; c++) k[pos * DD + c] = q[c]; /* the matching key, |k| = 8 */
    moe_attn_forward(out, p, q, k, k, 1, LL, DD, 0.0f);
    int best = 0;
    for (int j = 1; j < LL; j++)
        if (p[j] > p[best]) best = j;
    assert_int_equal(best, pos);
    assert_true(p[pos] > 0.9f);
    double cs = mr_dot(out, q, DD) / (mr_l2norm(out, DD) * mr_l2norm(q, DD));
    assert_true(cs > 0.99);
    mr_floats_free(k);
    mr_floats_free(p);
}

static void test_meanpool_forward_backward(void **st) {
    (void)st;
    enum { NB = 4, N = 10 };
    const uint32_t off[NB + 1] = {0, 3, 3, 7, 10}; /* sequence 1 is empty */
    mr_rng g;
    mr_rng_seed(&g, 16);
    float x[N * D], out[NB * D], r[NB * D], dx[N * D] = {0};
    mr_rng_fill_normal(&g, x, N * D, 1);
    mr_rng_fill_normal(&g, r, NB * D, 1);
    moe_meanpool_forward(out, x, off, NB, D);
    for (int b = 0; b < NB; b++)
        for (int c = 0; c < D; c++) {
            double s = 0;
            for (uint32_t j = off[b]; j < off[b + 1]; j++) s += x[j * D + c];
            if (off[b + 1] > off[b]) s /= (off[b + 1] - off[b]);
            assert_true(fabs(s - out[b * D + c]) < 1e-6);
        }
    moe_meanpool_backward(dx, r, off, NB, D);
    gc_stats s = {0};
    for (int i = 0; i < N * D; i++) {
        float keep = x[i], h = 1e-2f;
        x[i] = keep + h;
        moe_meanpool_forward(out, x, off, NB, D);
        double lp = wsum(out, r, NB * D);
        x[i] = keep - h;
        moe_meanpool_forward(out, x, off, NB, D);
        double lm = wsum(out, r, NB * D);
        x[i] = keep;
        gc_compare(&s, (lp - lm) / (2 * h), dx[i], 1e-3, 1e-3);
    }
    assert_int_equal(s.failed, 0);
    assert_int_equal(s.checked, N * D);
}

/* With a zero query every score ties, so attention IS mean pooling. */
static void test_attn_zero_query_is_mean_pooling(void **st) {
    (void)st;
    mr_rng g;
    mr_rng_seed(&g, 17);
    float q[D] = {0}, k[L * D], p[L], a[D], m[D];
    mr_rng_fill_normal(&g, k, L * D, 1);
    const uint32_t off[2] = {0, L};
    moe_attn_forward(a, p, q, k, k, 1, L, D, 0.0f);
    moe_meanpool_forward(m, k, off, 1, D);
    for (int c = 0; c < D; c++) assert_true(fabsf(a[c] - m[c]) < 1e-5f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attn_forward_matches_formula),
        cmocka_unit_test(test_attn_grads),
        cmocka_unit_test(test_attn_grads_aliased_kv),
        cmocka_unit_test(test_attn_backward_accumulates),
        cmocka_unit_test(test_attn_empty_history_is_zero),
        cmocka_unit_test(test_attn_selects_matching_key),
        cmocka_unit_test(test_meanpool_forward_backward),
        cmocka_unit_test(test_attn_zero_query_is_mean_pooling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
