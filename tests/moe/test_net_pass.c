/* test_net_pass.c — finite-difference gradient checks of the whole network
 * (moe/net_pass.c, with moe/loss.c and moe/net_build.c) for every
 * architecture and every gate kind, plus properties of the forward pass:
 * sparse routing computes fewer expert rows, thread-pool and inline passes
 * agree bit for bit, and a batch's rows are scored independently. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/rng.h"
#include "common/tensor.h"
#include "gradcheck.h"
#include "moe/loss.h"
#include "moe/net.h"

enum { B = 6, IN = 5, T = 3 };

typedef struct fixture {
    moe_net *n;
    float x[B * IN], y[T * B], mask[T * B];
    moe_pass p;
} fixture;

static void fixture_make(fixture *f, const moe_arch *a, uint64_t seed) {
    mr_err e;
    assert_int_equal(moe_net_create(&f->n, a, seed, &e), 0);
    mr_rng g;
    mr_rng_seed(&g, seed + 100);
    /* random weights everywhere (norm gains and feature gates included) so
     * no gradient is trivially zero */
    mr_rng_fill_normal(&g, f->n->params, f->n->n_params, 0.5f);
    mr_rng_fill_normal(&g, f->x, B * IN, 1.0f);
    for (int i = 0; i < T * B; i++) {
        int k = i / B;
        f->y[i] = a->task_kind[k] == MOE_TASK_BINARY ? (float)(mr_rng_below(&g, 2))
                                                     : (float)mr_rng_normal(&g);
        f->mask[i] = (i % 5 == 4) ? 0.0f : 1.0f; /* some labels missing */
    }
    moe_pass_init(&f->p);
}

static void fixture_free(fixture *f) {
    moe_pass_free(&f->p);
    moe_net_free(f->n);
}

static const float k_task_w[T] = {1.0f, 0.5f, 2.0f};

static double loss_at(fixture *f, uint64_t *route) {
    mr_err e;
    assert_int_equal(moe_net_forward(&f->p, f->n, f->x, B, 0, NULL, &e), 0);
    moe_loss l;
    moe_net_loss(&l, NULL, &f->p, f->n, f->y, f->mask, k_task_w);
    uint64_t h = 1469598103934665603ull; /* FNV over every kept flag */
    for (int j = 0; j < f->n->n_levels; j++) {
        const moe_level *lv = &f->n->levels[j];
        for (int s = 0; s <= lv->n_slots; s++) {
            const moe_gate *g = s < lv->n_slots ? &lv->gates[s] : &lv->sgate;
            const moe_gate_cache *gc = s < lv->n_slots ? &f->p.lv[j].gc[s] : &f->p.lv[j].sgc;
            if (s == lv->n_slots && !lv->has_sgate) break;
            if (!g->n_logits) continue;
            for (long i = 0; i < (long)B * g->n_logits; i++)
                h = (h ^ gc->kept[i]) * 1099511628211ull;
        }
    }
    /* ReLU sign patterns too: a kink crossed is as non-differentiable as a
     * routing flip */
    for (int k = 0; k < f->n->arch.n_tasks; k++)
        for (int li = 0; li < f->n->towers[k].n_layers; li++)
            for (long i = 0; i < (long)B * f->n->towers[k].dims[li + 1]; i++)
                h = (h ^ (f->p.tw[k].z[li][i] > 0)) * 1099511628211ull;
    for (int j = 0; j < f->n->n_levels; j++)
        for (int x = 0; x < f->n->levels[j].n_experts; x++) {
            const moe_mlp *m = &f->n->levels[j].experts[x];
            if (m->act != MOE_ACT_RELU) continue;
            for (int li = 0; li < m->n_layers; li++)
                for (long i = 0; i < (long)f->p.lv[j].nrows[x] * m->dims[li + 1]; i++)
                    h = (h ^ (f->p.lv[j].ex[x].a[li][i] > 0)) * 1099511628211ull;
        }
    *route = h;
    return l.total;
}

/* Checks every parameter and every input coordinate; returns outliers. */
static void gradcheck(const moe_arch *a, const char *what, uint64_t seed) {
    fixture f;
    fixture_make(&f, a, seed);
    mr_err e;
    float *grads = mr_floats_alloc((size_t)f.n->n_params), dx[B * IN] = {0};
    float dl[T][B], *dlogit[T] = {dl[0], dl[1], dl[2]};
    assert_int_equal(moe_net_forward(&f.p, f.n, f.x, B, 1, NULL, &e), 0);
    moe_loss l;
    moe_net_loss(&l, dlogit, &f.p, f.n, f.y, f.mask, k_task_w);
    assert_int_equal(moe_net_backward(&f.p, f.n, grads, dx, dlogit, NULL, &e), 0);
    gc_stats s = {0};
    long skipped = 0;
    for (long i = 0; i < f.n->n_params + B * IN; i++) {
        float *v = i < f.n->n_params ? &f.n->params[i] : &f.x[i - f.n->n_params];
        double ana = i < f.n->n_params ? grads[i] : dx[i - f.n->n_params];
        float keep = *v, h = 5e-3f;
        uint64_t r0, r1, r2;
        loss_at(&f, &r0);
        *v = keep + h;
        double lp = loss_at(&f, &r1);
        *v = keep - h;
        double lm = loss_at(&f, &r2);
        *v = keep;
        if (r1 != r0 || r2 != r0) { /* routing flip or ReLU kink: not differentiable */
            skipped++;
            continue;
        }
        if (!gc_compare(&s, (lp - lm) / (2 * h), ana, 5e-3, 1e-3) && getenv("MOE_GC_VERBOSE")) {
            const char *tn = "x";
            for (int t = 0; t < f.n->n_tensors; t++)
                if (v >= f.n->tensors[t].data && v < f.n->tensors[t].data + f.n->tensors[t].n)
                    tn = f.n->tensors[t].name;
            print_message("  %s[%ld]: numeric %.6g analytic %.6g\n", tn, i, (lp - lm) / (2 * h),
                          ana);
        }
    }
    print_message("%-28s %5ld coords, %ld failed, %ld skipped (flip/kink), max rel err %.2e\n",
                  what, s.checked, s.failed, skipped, s.max_rel);
    assert_int_equal(s.failed, 0);
    assert_true(s.checked > 0 && skipped < s.checked / 4);
    mr_floats_free(grads);
    fixture_free(&f);
}

static void arch_small(moe_arch *a, moe_arch_kind kind) {
    moe_arch_defaults(a, kind, IN, T);
    a->task_kind[1] = MOE_TASK_REGRESSION;
    a->n_shared = kind == MOE_ARCH_SHARED_BOTTOM                   ? 1
                  : kind == MOE_ARCH_MMOE || kind == MOE_ARCH_OMOE ? 3
                                                                   : 2;
    a->n_task_experts = 1;
    a->n_expert_layers = 2;
    a->expert_hidden[0] = 6;
    a->expert_hidden[1] = 4;
    a->tower_hidden[0] = 3;
    a->act = MOE_ACT_SWISH; /* smooth, so only the towers have kinks */
}

static void test_grad_shared_bottom(void **st) {
    (void)st;
    moe_arch a;
    arch_small(&a, MOE_ARCH_SHARED_BOTTOM);
    a.act = MOE_ACT_RELU;
    gradcheck(&a, "shared_bottom (relu)", 1);
}

static void test_grad_omoe(void **st) {
    (void)st;
    moe_arch a;
    arch_small(&a, MOE_ARCH_OMOE);
    gradcheck(&a, "omoe", 2);
}

static void test_grad_mmoe(void **st) {
    (void)st;
    moe_arch a;
    arch_small(&a, MOE_ARCH_MMOE);
    a.lbl_coef = 0.1f;
    a.ent_coef = 0.05f;
    gradcheck(&a, "mmoe dense +lbl +entropy", 3);
}

static void test_grad_cgc(void **st) {
    (void)st;
    moe_arch a;
    arch_small(&a, MOE_ARCH_CGC);
    gradcheck(&a, "cgc", 4);
}

static void test_grad_ple(void **st) {
    (void)st;
    moe_arch a;
    arch_small(&a, MOE_ARCH_PLE);
    a.n_levels = 3;
    gradcheck(&a, "ple 3 levels", 5);
}

static void test_grad_home(void **st) {
    (void)st;
    moe_arch a;
    arch_small(&a, MOE_ARCH_HOME);
    a.n_expert_layers = 1;
    a.expert_hidden[0] = 5; /* = in_dim, so the self-gate residual applies */
    a.expert_norm = 1;
    a.feature_gate_rank = 2;
    a.self_gate = 1;
    a.n_groups = 2;
    a.task_group[0] = 0;
    a.task_group[1] = 0;
    a.task_group[2] = 1;
    gradcheck(&a, "home (norm, fg, self-gate)", 6);
}

static void test_grad_topk(void **st) {
    (void)st;
    moe_arch a;
    arch_small(&a, MOE_ARCH_MMOE);
    a.n_shared = 4;
    a.gate.kind = MOE_GATE_TOPK;
    a.gate.k = 2;
    a.lbl_coef = 0.1f;
    gradcheck(&a, "mmoe top-2 +lbl", 7);
}

static void test_grad_topp_null_always(void **st) {
    (void)st;
    moe_arch a;
    arch_small(&a, MOE_ARCH_PLE);
    a.n_shared = 3;
    a.gate.kind = MOE_GATE_TOPP;
    a.gate.p = 0.4f;
    a.gate.n_null = 2;
    a.gate.n_always = 1;
    a.ent_coef = 0.1f;
    a.lbl_coef = 0.05f;
    gradcheck(&a, "ple top-p null+always-on", 8);
}

/* Sparse routing must run experts on fewer rows than dense routing, and
 * give the same result as the dense computation masked by the weights. */
static void test_sparse_saves_rows(void **st) {
    (void)st;
    enum { NB = 200 };
    moe_arch a;
    arch_small(&a, MOE_ARCH_MMOE);
    a.n_shared = 8;
    a.gate.kind = MOE_GATE_TOPK;
    a.gate.k = 1;
    a.n_tasks = 1;
    moe_net *n;
    mr_err e;
    assert_int_equal(moe_net_create(&n, &a, 9, &e), 0);
    float *x = mr_floats_alloc(NB * IN);
    mr_rng g;
    mr_rng_seed(&g, 9);
    mr_rng_fill_normal(&g, x, NB * IN, 1.0f);
    moe_pass p;
    moe_pass_init(&p);
    assert_int_equal(moe_net_forward(&p, n, x, NB, 0, NULL, &e), 0);
    double frac = moe_pass_active_fraction(&p);
    print_message("top-1 of 8: active expert fraction %.3f\n", frac);
    assert_true(fabs(frac - 1.0 / 8) < 1e-9); /* one expert per row, exactly */
    /* the same logits as dense routing with non-kept weights zeroed: compare
     * to a top-8 (= all, not renormalised) pass only where the kept expert
     * dominates is not exact, so check the definition directly instead:
     * every row's slot output equals weight * its one expert's output. */
    const moe_level_cache *c = &p.lv[0];
    for (int b = 0; b < NB; b++) {
        int kept = -1;
        for (int i = 0; i < 8; i++)
            if (c->gc[0].weight[b * 8 + i] != 0.0f) {
                assert_int_equal(kept, -1);
                kept = i;
            }
        assert_true(kept >= 0);
        int ex = n->levels[0].gates[0].choice[kept];
        for (int d = 0; d < 4; d++)
            assert_true(fabsf(c->out[0][b * 4 + d] -
                              c->gc[0].weight[b * 8 + kept] * c->eout[ex][b * 4 + d]) < 1e-6f);
    }
    moe_pass_free(&p);
    moe_net_free(n);
    mr_floats_free(x);
}

/* Pool and inline passes agree exactly; each row is scored independently
 * of the rest of its batch. */
static void test_pool_and_row_independence(void **st) {
    (void)st;
    enum { NB = 64 };
    moe_arch a;
    arch_small(&a, MOE_ARCH_PLE);
    a.gate.kind = MOE_GATE_TOPP;
    moe_net *n;
    mr_err e;
    assert_int_equal(moe_net_create(&n, &a, 10, &e), 0);
    float *x = mr_floats_alloc(NB * IN);
    mr_rng g;
    mr_rng_seed(&g, 10);
    mr_rng_fill_normal(&g, x, NB * IN, 1.0f);
    mr_pool *pool = mr_pool_create(2);
    moe_pass p1, p2;
    moe_pass_init(&p1);
    moe_pass_init(&p2);
    assert_int_equal(moe_net_forward(&p1, n, x, NB, 1, NULL, &e), 0);
    assert_int_equal(moe_net_forward(&p2, n, x, NB, 1, pool, &e), 0);
    for (int k = 0; k < T; k++) assert_memory_equal(p1.logit[k], p2.logit[k], NB * sizeof(float));
    float *g1 = mr_floats_alloc((size_t)n->n_params), *g2 = mr_floats_alloc((size_t)n->n_params);
    float dl[T][NB];
    float *dlogit[T] = {dl[0], dl[1], dl[2]};
    for (int k = 0; k < T; k++)
        for (int b = 0; b < NB; b++) dl[k][b] = (float)mr_rng_normal(&g);
    assert_int_equal(moe_net_backward(&p1, n, g1, NULL, dlogit, NULL, &e), 0);
    assert_int_equal(moe_net_backward(&p2, n, g2, NULL, dlogit, pool, &e), 0);
    assert_memory_equal(g1, g2, (size_t)n->n_params * sizeof(float));
    /* backward accumulates (+=) into grads and dx: a second call on the same
     * pass adds the same gradient again */
    float *dx1 = mr_floats_alloc(NB * IN), *dx2 = mr_floats_alloc(NB * IN);
    float *g3 = mr_floats_alloc((size_t)n->n_params);
    assert_int_equal(moe_net_backward(&p1, n, g3, dx1, dlogit, NULL, &e), 0);
    assert_int_equal(moe_net_backward(&p1, n, g1, dx2, dlogit, NULL, &e), 0);
    assert_int_equal(moe_net_backward(&p1, n, g1, dx2, dlogit, NULL, &e), 0);
    long nz = 0;
    for (long i = 0; i < n->n_params; i++) {
        nz += g2[i] != 0.0f;
        assert_true(fabsf(g1[i] - 3.0f * g2[i]) <= 1e-5f * (1.0f + fabsf(g2[i])));
    }
    assert_true(nz > n->n_params / 2);
    for (int i = 0; i < NB * IN; i++)
        assert_true(fabsf(dx2[i] - 2.0f * dx1[i]) <= 1e-5f * (1.0f + fabsf(dx1[i])));
    mr_floats_free(dx1);
    mr_floats_free(dx2);
    mr_floats_free(g3);
    /* row 17 alone scores as in the batch (to rounding of the sgemm blocking) */
    assert_int_equal(moe_net_forward(&p2, n, x + 17 * IN, 1, 0, NULL, &e), 0);
    for (int k = 0; k < T; k++) assert_true(fabsf(p2.logit[k][0] - p1.logit[k][17]) < 1e-4f);
    mr_floats_free(g1);
    mr_floats_free(g2);
    moe_pass_free(&p1);
    moe_pass_free(&p2);
    mr_pool_free(pool);
    moe_net_free(n);
    mr_floats_free(x);
}

static void test_bad_arch(void **st) {
    (void)st;
    moe_arch a;
    moe_net *n = NULL;
    mr_err e;
    arch_small(&a, MOE_ARCH_HOME);
    a.n_groups = 2;
    a.task_group[2] = 5;
    assert_int_equal(moe_net_create(&n, &a, 1, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "task_groups"));
    arch_small(&a, MOE_ARCH_MMOE);
    a.gate.kind = MOE_GATE_TOPP;
    a.gate.p = 1.5f;
    assert_int_equal(moe_net_create(&n, &a, 1, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "gate.p"));
    assert_null(n);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_shared_bottom), cmocka_unit_test(test_grad_omoe),
        cmocka_unit_test(test_grad_mmoe),          cmocka_unit_test(test_grad_cgc),
        cmocka_unit_test(test_grad_ple),           cmocka_unit_test(test_grad_home),
        cmocka_unit_test(test_grad_topk),          cmocka_unit_test(test_grad_topp_null_always),
        cmocka_unit_test(test_sparse_saves_rows),  cmocka_unit_test(test_pool_and_row_independence),
        cmocka_unit_test(test_bad_arch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
