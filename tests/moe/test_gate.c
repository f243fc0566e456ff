/* test_gate.c — routing rules of moe/gate.c: the top-p cut-off at the first
 * cumulative sum > p (not renormalised), top-1 alone above p, null experts
 * contributing exactly 0, top-k with k = n equal to dense, always-on
 * experts, the constant gate, global f_i of the load-balance loss, and a
 * finite-difference check of the gate's own backward. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/rng.h"
#include "common/tensor.h"
#include "gradcheck.h"
#include "moe/gate.h"

static void test_topp_cutoff(void **st) {
    (void)st;
    moe_gate_spec s = {.kind = MOE_GATE_TOPP, .p = 0.4f};
    uint8_t kept[5];
    /* sorted: 0.3 (idx 2), 0.25 (idx 0), 0.2 (4), 0.15 (1), 0.1 (3):
     * cumsum 0.3 <= 0.4, 0.55 > 0.4 -> keep idx 2 and 0 */
    float p[5] = {0.25f, 0.15f, 0.3f, 0.1f, 0.2f};
    assert_int_equal(moe_gate_route_row(kept, p, 5, &s), 2);
    uint8_t want[5] = {1, 0, 1, 0, 0};
    assert_memory_equal(kept, want, 5);
    /* cumsum exactly p is not "exceeds": one more is kept */
    float q[4] = {0.25f, 0.25f, 0.25f, 0.25f};
    s.p = 0.5f;
    assert_int_equal(moe_gate_route_row(kept, q, 4, &s), 3);
    /* top-1 alone exceeds p: only it is kept */
    float r[4] = {0.1f, 0.7f, 0.1f, 0.1f};
    s.p = 0.4f;
    assert_int_equal(moe_gate_route_row(kept, r, 4, &s), 1);
    assert_int_equal(kept[1], 1);
    /* p = 1 keeps everything even if rounding leaves the sum below 1 */
    s.p = 1.0f;
    assert_int_equal(moe_gate_route_row(kept, q, 4, &s), 4);
    /* ties go to the lower index, for top-k and for top-p alike */
    float t[5] = {0.1f, 0.3f, 0.1f, 0.3f, 0.2f};
    moe_gate_spec k2 = {.kind = MOE_GATE_TOPK, .k = 3};
    assert_int_equal(moe_gate_route_row(kept, t, 5, &k2), 3);
    uint8_t want_k[5] = {0, 1, 0, 1, 1};
    assert_memory_equal(kept, want_k, 5);
    k2.k = 4; /* 0.1 at index 0 and 2: index 0 wins */
    assert_int_equal(moe_gate_route_row(kept, t, 5, &k2), 4);
    uint8_t want_k4[5] = {1, 1, 0, 1, 1};
    assert_memory_equal(kept, want_k4, 5);
    moe_gate_spec p2 = {.kind = MOE_GATE_TOPP, .p = 0.25f}; /* first 0.3 exceeds: only index 1 */
    assert_int_equal(moe_gate_route_row(kept, t, 5, &p2), 1);
    assert_int_equal(kept[1], 1);
}

static moe_gate make_gate(moe_gate_spec spec, int n_choice, int in_dim, float *w) {
    moe_gate g;
    memset(&g, 0, sizeof g);
    g.spec = spec;
    g.n_choice = n_choice;
    for (int i = 0; i < n_choice; i++) g.choice[i] = i;
    g.n_routed = n_choice - spec.n_always;
    g.n_logits = g.n_routed + spec.n_null;
    g.in_dim = in_dim;
    g.w = w;
    return g;
}

typedef struct run {
    float buf[4096];
    uint8_t kept[1024];
    moe_gate_cache c;
} run;

static void route(run *r, const moe_gate *g, const float *x, int B) {
    moe_gate_cache_bind(&r->c, g, B, r->buf, r->kept);
    moe_gate_forward(&r->c, x, g, B);
}

static void test_weights_not_renormalised_and_null(void **st) {
    (void)st;
    enum { B = 32, D = 4, N = 4, NN = 2 };
    mr_rng rg;
    mr_rng_seed(&rg, 1);
    float w[(N + NN) * D], x[B * D];
    mr_rng_fill_normal(&rg, w, (N + NN) * D, 1.0f);
    mr_rng_fill_normal(&rg, x, B * D, 1.0f);
    moe_gate g = make_gate((moe_gate_spec){.kind = MOE_GATE_TOPP, .p = 0.5f, .n_null = NN}, N, D,
                           w);
    static run r;
    route(&r, &g, x, B);
    int null_kept = 0;
    for (int b = 0; b < B; b++) {
        double sum = 0;
        for (int i = 0; i < N; i++) {
            float wt = r.c.weight[b * N + i];
            /* a kept real expert's weight is its raw softmax probability */
            assert_true(wt == (r.c.kept[b * (N + NN) + i] ? r.c.probs[b * (N + NN) + i] : 0.0f));
            sum += wt;
        }
        for (int i = N; i < N + NN; i++) null_kept += r.c.kept[b * (N + NN) + i];
        assert_true(sum <= 1.0 + 1e-6); /* not renormalised: null mass is lost */
    }
    /* null experts have no weight slot at all: their contribution is exactly
     * 0; with 2 of 6 logits null, some rows must have kept one */
    assert_true(null_kept > 0);
}

static void test_topk_n_equals_dense(void **st) {
    (void)st;
    enum { B = 16, D = 3, N = 5 };
    mr_rng rg;
    mr_rng_seed(&rg, 2);
    float w[N * D], x[B * D];
    mr_rng_fill_normal(&rg, w, N * D, 1.0f);
    mr_rng_fill_normal(&rg, x, B * D, 1.0f);
    moe_gate gd = make_gate((moe_gate_spec){.kind = MOE_GATE_DENSE}, N, D, w);
    moe_gate gk = make_gate((moe_gate_spec){.kind = MOE_GATE_TOPK, .k = N}, N, D, w);
    static run rd, rk;
    route(&rd, &gd, x, B);
    route(&rk, &gk, x, B);
    assert_memory_equal(rd.c.weight, rk.c.weight, sizeof(float) * B * N);
    /* top-2 keeps exactly the two largest */
    moe_gate g2 = make_gate((moe_gate_spec){.kind = MOE_GATE_TOPK, .k = 2}, N, D, w);
    route(&rk, &g2, x, B);
    for (int b = 0; b < B; b++) {
        int nk = 0;
        float minkept = 2, maxdrop = -1;
        for (int i = 0; i < N; i++) {
            float p = rk.c.probs[b * N + i];
            if (rk.c.weight[b * N + i] != 0.0f) {
                nk++;
                minkept = p < minkept ? p : minkept;
            } else {
                maxdrop = p > maxdrop ? p : maxdrop;
            }
        }
        assert_int_equal(nk, 2);
        assert_true(minkept >= maxdrop);
    }
}

static void test_always_on_and_constant(void **st) {
    (void)st;
    enum { B = 4, D = 3 };
    float w[2 * D] = {1, 0, 0, 0, 1, 0}, x[B * D] = {0};
    moe_gate g = make_gate((moe_gate_spec){.kind = MOE_GATE_TOPK, .k = 1, .n_always = 1}, 3, D, w);
    static run r;
    route(&r, &g, x, B);
    for (int b = 0; b < B; b++) {
        assert_true(r.c.weight[b * 3] == 1.0f); /* always on, weight 1 */
        int routed = (r.c.weight[b * 3 + 1] != 0) + (r.c.weight[b * 3 + 2] != 0);
        assert_int_equal(routed, 1);
    }
    moe_gate c = make_gate((moe_gate_spec){.kind = MOE_GATE_DENSE, .n_always = 1}, 1, D, NULL);
    c.n_logits = 0;
    route(&r, &c, x, B);
    for (int b = 0; b < B; b++) assert_true(r.c.weight[b] == 1.0f);
}

static void test_lbl_global_fraction(void **st) {
    (void)st;
    enum { B = 4, D = 2, N = 2 };
    /* rows 0-2 prefer expert 0, row 3 expert 1: f = (3/4, 1/4) over the
     * whole batch */
    float w[N * D] = {1, 0, 0, 1}, x[B * D] = {3, 0, 3, 0, 3, 0, 0, 3};
    moe_gate g = make_gate((moe_gate_spec){.kind = MOE_GATE_TOPK, .k = 1}, N, D, w);
    static run r;
    route(&r, &g, x, B);
    assert_true(fabsf(r.c.frac[0] - 0.75f) < 1e-6f);
    assert_true(fabsf(r.c.frac[1] - 0.25f) < 1e-6f);
    double pbar0 = 0, pbar1 = 0;
    for (int b = 0; b < B; b++) {
        pbar0 += r.c.probs[b * N] / B;
        pbar1 += r.c.probs[b * N + 1] / B;
    }
    assert_true(fabs(r.c.lbl - N * (0.75 * pbar0 + 0.25 * pbar1)) < 1e-6);
}

/* Inference skips the entropy (c->no_entropy): it stays 0, and the weights,
 * kept set, fractions and LBL are the same as with it computed. */
static void test_no_entropy_same_routing(void **st) {
    (void)st;
    enum { B = 4, D = 2, N = 2 };
    float w[N * D] = {1, 0.5f, -0.5f, 1}, x[B * D] = {3, 0, 1, 2, -1, 3, 0.5f, 0.5f};
    moe_gate g = make_gate((moe_gate_spec){.kind = MOE_GATE_TOPK, .k = 1}, N, D, w);
    static run a, b;
    route(&a, &g, x, B);
    assert_true(a.c.entropy > 0);
    moe_gate_cache_bind(&b.c, &g, B, b.buf, b.kept);
    b.c.no_entropy = 1;
    moe_gate_forward(&b.c, x, &g, B);
    assert_true(b.c.entropy == 0);
    assert_memory_equal(a.c.weight, b.c.weight, sizeof(float) * B * N);
    assert_memory_equal(a.kept, b.kept, B * N);
    assert_memory_equal(a.c.frac, b.c.frac, sizeof(float) * N);
    assert_true(a.c.lbl == b.c.lbl);
}

static void test_gate_backward_fd(void **st) {
    (void)st;
    enum { B = 8, D = 4, N = 4, NN = 1 };
    mr_rng rg;
    mr_rng_seed(&rg, 3);
    float w[(N + NN) * D], x[B * D], up[B * N];
    mr_rng_fill_normal(&rg, w, (N + NN) * D, 1.0f);
    mr_rng_fill_normal(&rg, x, B * D, 1.0f);
    mr_rng_fill_normal(&rg, up, B * N, 1.0f);
    const float lbl = 0.3f, ent = 0.2f;
    moe_gate_kind kinds[3] = {MOE_GATE_DENSE, MOE_GATE_TOPK, MOE_GATE_TOPP};
    for (int kk = 0; kk < 3; kk++) {
        moe_gate g = make_gate((moe_gate_spec){.kind = kinds[kk], .k = 2, .p = 0.5f, .n_null = NN},
                               N, D, w);
        static run r;
        route(&r, &g, x, B);
        float dw[(N + NN) * D] = {0}, dx[B * D] = {0}, scratch[2 * B * (N + NN)];
        moe_gate_backward(dx, dw, up, &r.c, x, &g, lbl, ent, scratch);
        gc_stats s = {0};
        long skipped = 0;
        for (int i = 0; i < (N + NN) * D + B * D; i++) {
            float *v = i < (N + NN) * D ? &w[i] : &x[i - (N + NN) * D];
            double ana = i < (N + NN) * D ? dw[i] : dx[i - (N + NN) * D];
            float keep = *v, h = 1e-2f;
            double l[2];
            uint8_t k0[B * (N + NN)];
            memcpy(k0, r.kept, sizeof k0);
            int same = 1;
            for (int sgn = 0; sgn < 2; sgn++) {
                *v = keep + (sgn ? -h : h);
                route(&r, &g, x, B);
                same &= !memcmp(k0, r.kept, sizeof k0);
                double o = 0;
                for (int j = 0; j < B * N; j++) o += (double)up[j] * r.c.weight[j];
                l[sgn] = o + lbl * r.c.lbl + ent * r.c.entropy;
            }
            *v = keep;
            if (!same) {
                skipped++;
                continue;
            }
            gc_compare(&s, (l[0] - l[1]) / (2 * h), ana, 1e-2, 1e-3);
        }
        route(&r, &g, x, B);
        print_message("gate kind %d: %ld coords, %ld failed, %ld skipped, max rel err %.2e\n", kk,
                      s.checked, s.failed, skipped, s.max_rel);
        assert_int_equal(s.failed, 0);
        assert_true(s.checked > 20);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topp_cutoff),
        cmocka_unit_test(test_weights_not_renormalised_and_null),
        cmocka_unit_test(test_topk_n_equals_dense),
        cmocka_unit_test(test_always_on_and_constant),
        cmocka_unit_test(test_lbl_global_fraction),
        cmocka_unit_test(test_no_entropy_same_routing),
        cmocka_unit_test(test_gate_backward_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
