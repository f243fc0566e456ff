/* test_bpr.c — moe/bpr.c: on planted two-group data the learned scores
 * rank a user's own group first and held-out recall beats chance by far;
 * results are identical for 1 and 3 threads (and without a pool), differ
 * across seeds; the mean loss falls; bad arguments are refused. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/rng.h"
#include "moe/bpr.h"

enum { NU = 60, NI = 80, PER = 12, DIM = 8 };

typedef struct planted {
    int32_t u[NU * PER], i[NU * PER];
    long n;
    int64_t troff[NU + 1], teoff[NU + 1];
    int32_t tr[NU * PER], te[NU * PER];
} planted;

/* Users of group g = u % 2 interact with items of the same parity; the last
 * 2 of each user's 12 items are held out. */
static void make(planted *p) {
    mr_rng r;
    mr_rng_seed(&r, 3);
    p->n = 0;
    long nt = 0, ne = 0;
    for (int u = 0; u < NU; u++) {
        p->troff[u] = nt;
        p->teoff[u] = ne;
        int seen[NI] = {0};
        for (int k = 0; k < PER; k++) {
            int it;
            do it = 2 * (int)mr_rng_below(&r, NI / 2) + u % 2;
            while (seen[it]);
            seen[it] = 1;
            if (k < PER - 2) {
                p->u[p->n] = u;
                p->i[p->n++] = it;
                p->tr[nt++] = it;
            } else p->te[ne++] = it;
        }
    }
    p->troff[NU] = nt;
    p->teoff[NU] = ne;
}

static double g_first_loss, g_last_loss;
static void on_epoch(int ep, double loss, void *ctx) {
    (void)ctx;
    if (ep == 1) g_first_loss = loss;
    g_last_loss = loss;
}

static void test_learns_planted_groups(void **st) {
    (void)st;
    static planted p;
    make(&p);
    bpr_opts o;
    bpr_defaults(&o);
    o.dim = DIM;
    o.epochs = 40;
    o.progress = on_epoch;
    float *U = malloc(sizeof(float) * NU * DIM), *V = malloc(sizeof(float) * NI * DIM);
    mr_err e;
    assert_int_equal(bpr_train(p.u, p.i, p.n, NU, NI, &o, NULL, U, V, &e), 0);
    assert_true(g_last_loss < 0.5 * g_first_loss);
    long right = 0, total = 0;
    for (int u = 0; u < NU; u++)
        for (int a = 0; a < NI; a++) {
            if (a % 2 != u % 2) continue;
            for (int b = 0; b < NI; b++) {
                if (b % 2 == u % 2) continue;
                float sa = 0, sb = 0;
                for (int c = 0; c < DIM; c++)
                    sa += U[u * DIM + c] * V[a * DIM + c], sb += U[u * DIM + c] * V[b * DIM + c];
                right += sa > sb;
                total++;
            }
        }
    print_message("own group ranked first in %.3f of pairs\n", (double)right / total);
    assert_true(right > total * 0.9);
    double rec = bpr_recall_at(U, V, NU, NI, DIM, 20, p.troff, p.tr, p.teoff, p.te);
    /* chance: 20 of the 70 unseen items -> 0.29; the own group has 30 unseen */
    print_message("recall@20 %.3f\n", rec);
    assert_true(rec > 0.5);
    free(U);
    free(V);
}

static void test_deterministic_across_threads(void **st) {
    (void)st;
    static planted p;
    make(&p);
    bpr_opts o;
    bpr_defaults(&o);
    o.dim = DIM;
    o.epochs = 5;
    size_t su = sizeof(float) * NU * DIM, sv = sizeof(float) * NI * DIM;
    float *U[4], *V[4];
    mr_err e;
    mr_pool *p1 = mr_pool_create(1), *p3 = mr_pool_create(3);
    mr_pool *pools[3] = {NULL, p1, p3};
    for (int k = 0; k < 4; k++) {
        U[k] = malloc(su);
        V[k] = malloc(sv);
        if (k == 3) o.seed = 2;
        assert_int_equal(
            bpr_train(p.u, p.i, p.n, NU, NI, &o, k < 3 ? pools[k] : p3, U[k], V[k], &e), 0);
    }
    for (int k = 1; k < 3; k++) {
        assert_memory_equal(U[0], U[k], su);
        assert_memory_equal(V[0], V[k], sv);
    }
    assert_memory_not_equal(V[0], V[3], sv);
    for (int k = 0; k < 4; k++) {
        free(U[k]);
        free(V[k]);
    }
    mr_pool_free(p1);
    mr_pool_free(p3);
}

static void test_bad_args(void **st) {
    (void)st;
    int32_t u[2] = {0, 1}, i[2] = {0, 5};
    float U[64], V[64];
    bpr_opts o;
    bpr_defaults(&o);
    o.dim = 4;
    mr_err e;
    assert_int_equal(bpr_train(u, i, 2, 2, 3, &o, NULL, U, V, &e), MR_EINVAL); /* item 5 >= 3 */
    assert_non_null(strstr(e.msg, "out of range"));
    assert_int_equal(bpr_train(u, i, 2, 2, 1, &o, NULL, U, V, &e), MR_EINVAL);
    o.dim = 0;
    assert_int_equal(bpr_train(u, i, 1, 2, 8, &o, NULL, U, V, &e), MR_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learns_planted_groups),
        cmocka_unit_test(test_deterministic_across_threads),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
