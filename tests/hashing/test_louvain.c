/* test_louvain.c — bipartite Louvain (hashing/louvain.c): incremental
 * modularity == brute force, planted partitions recovered (NMI), modularity
 * never decreases across levels, determinism, bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/rng.h"
#include "hashing/louvain.h"
#include "sbm.h"

/* Barber's Q by its definition: the double sum over every (user, item)
 * pair of a dense adjacency matrix, O(nu * ni). */
static double brute_q(const bigraph *g, const int32_t *comm, double gamma) {
    int nu = g->nu, ni = g->ni;
    double *B = calloc((size_t)nu * ni, sizeof *B), *k = calloc(nu, sizeof *k),
           *d = calloc(ni, sizeof *d), m = 0;
    for (int u = 0; u < nu; u++)
        for (int64_t j = g->uoff[u]; j < g->uoff[u + 1]; j++)
            B[(size_t)u * ni + g->uadj[j]] = bigraph_uweight(g, j);
    for (int u = 0; u < nu; u++)
        for (int i = 0; i < ni; i++) {
            k[u] += B[(size_t)u * ni + i];
            d[i] += B[(size_t)u * ni + i];
            m += B[(size_t)u * ni + i];
        }
    double q = 0;
    for (int u = 0; u < nu; u++)
        for (int i = 0; i < ni; i++)
            if (comm[u] == comm[nu + i]) q += B[(size_t)u * ni + i] - gamma * k[u] * d[i] / m;
    free(B);
    free(k);
    free(d);
    return q / m;
}

static bigraph *random_graph(uint64_t seed, int nu, int ni, int ne, int weighted) {
    mr_rng r;
    mr_rng_seed(&r, seed);
    int32_t *us = malloc(ne * sizeof *us), *is = malloc(ne * sizeof *is);
    float *ws = malloc(ne * sizeof *ws);
    for (int j = 0; j < ne; j++) {
        us[j] = (int32_t)mr_rng_below(&r, nu);
        is[j] = (int32_t)mr_rng_below(&r, ni);
        ws[j] = 0.5f + (float)mr_rng_uniform(&r);
    }
    bigraph *g;
    assert_int_equal(
        bigraph_build(&g, nu, ni, us, is, weighted ? ws : NULL, ne, BIGRAPH_MERGE_DUPLICATES, NULL),
        0);
    free(us);
    free(is);
    free(ws);
    return g;
}

static void test_incremental_equals_brute_force(void **state) {
    (void)state;
    const double gammas[] = {0.5, 1.0, 3.0};
    for (int t = 0; t < 6; t++) {
        bigraph *g = random_graph(100 + t, 30 + t, 40, 150, t % 2);
        louvain_params p = louvain_params_default();
        p.resolution = gammas[t % 3];
        p.seed = (uint64_t)t;
        louvain_result r;
        assert_int_equal(louvain_run(g, &p, &r, NULL), 0);
        double bq = brute_q(g, r.comm, p.resolution), dq;
        assert_int_equal(louvain_modularity(g, r.comm, r.ncomm, p.resolution, &dq, NULL), 0);
        assert_true(fabs(r.modularity - bq) < 1e-9);
        assert_true(fabs(dq - bq) < 1e-9);
        /* Louvain beats the trivial partitions. */
        int32_t *one = calloc((size_t)(g->nu + g->ni), sizeof *one);
        assert_true(r.modularity >= brute_q(g, one, p.resolution) - 1e-12);
        free(one);
        /* And a random partition, through both evaluators. */
        int32_t *rnd = malloc((size_t)(g->nu + g->ni) * sizeof *rnd);
        mr_rng rr;
        mr_rng_seed(&rr, (uint64_t)t);
        for (int x = 0; x < g->nu + g->ni; x++) rnd[x] = (int32_t)mr_rng_below(&rr, 5);
        assert_int_equal(louvain_modularity(g, rnd, 5, p.resolution, &dq, NULL), 0);
        assert_true(fabs(dq - brute_q(g, rnd, p.resolution)) < 1e-9);
        assert_true(r.modularity > dq);
        free(rnd);
        louvain_result_free(&r);
        bigraph_free(g);
    }
}

static void test_planted_partition_recovered(void **state) {
    (void)state;
    enum { NB = 6, PER = 40 };
    int32_t *us, *is;
    size_t ne = sbm_edges(7, NB, PER, 0.25, 0.01, &us, &is);
    bigraph *g;
    assert_int_equal(bigraph_build(&g, NB * PER, NB * PER, us, is, NULL, ne, 0, NULL), 0);
    louvain_params p = louvain_params_default();
    p.seed = 3;
    louvain_result r;
    assert_int_equal(louvain_run(g, &p, &r, NULL), 0);
    int32_t truth[2 * NB * PER];
    for (int x = 0; x < NB * PER; x++) truth[x] = truth[NB * PER + x] = x / PER;
    double nmi = sbm_nmi(r.comm, truth, 2 * NB * PER, r.ncomm, NB);
    print_message("SBM %d blocks: %d communities, NMI %.4f, Q %.4f\n", NB, r.ncomm, nmi,
                  r.modularity);
    assert_true(nmi > 0.95);
    assert_int_equal(r.ncomm, NB);
    assert_int_equal(r.size_min, 2 * PER);
    assert_int_equal(r.size_max, 2 * PER);
    free(us);
    free(is);
    louvain_result_free(&r);
    bigraph_free(g);
}

static int levels_seen;
static void count_level(int level, const louvain_level *lv, void *ctx) {
    (void)lv;
    assert_ptr_equal(ctx, &levels_seen);
    assert_int_equal(level, levels_seen);
    levels_seen++;
}

static void test_levels_monotone_and_deterministic(void **state) {
    (void)state;
    bigraph *g = random_graph(9, 3000, 4000, 30000, 0);
    louvain_params p = louvain_params_default();
    p.seed = 11;
    p.on_level = count_level;
    p.ctx = &levels_seen;
    levels_seen = 0;
    louvain_result a, b, c;
    assert_int_equal(louvain_run(g, &p, &a, NULL), 0);
    assert_int_equal(levels_seen, a.nlevels);
    assert_true(a.nlevels >= 2);
    for (int l = 1; l < a.nlevels; l++) {
        assert_true(a.level[l].modularity >= a.level[l - 1].modularity - 1e-12);
        assert_true(a.level[l].ncomm <= a.level[l - 1].ncomm);
    }
    assert_true(a.level[0].moves > 0);
    double dq;
    assert_int_equal(louvain_modularity(g, a.comm, a.ncomm, 1.0, &dq, NULL), 0);
    assert_true(fabs(dq - a.modularity) < 1e-9);
    /* Size statistics agree with the partition. */
    assert_true(a.size_min >= 1 && a.size_min <= a.size_median && a.size_median <= a.size_max);
    assert_true(fabs(a.size_mean * a.ncomm - (g->nu + g->ni)) < 1e-6);
    p.on_level = NULL;
    assert_int_equal(louvain_run(g, &p, &b, NULL), 0);
    assert_int_equal(a.ncomm, b.ncomm);
    assert_memory_equal(a.comm, b.comm, (size_t)(g->nu + g->ni) * sizeof *a.comm);
    assert_true(a.modularity == b.modularity);
    /* Higher resolution: more, smaller communities. */
    p.resolution = 5.0;
    assert_int_equal(louvain_run(g, &p, &c, NULL), 0);
    assert_true(c.ncomm > a.ncomm);
    louvain_result_free(&a);
    louvain_result_free(&b);
    louvain_result_free(&c);
    bigraph_free(g);
}

static void test_bad_input(void **state) {
    (void)state;
    bigraph *g = random_graph(1, 5, 5, 10, 0);
    louvain_params p = louvain_params_default();
    louvain_result r;
    mr_err e = {0};
    p.resolution = 0;
    assert_int_equal(louvain_run(g, &p, &r, &e), MR_EINVAL);
    p.resolution = NAN;
    assert_int_equal(louvain_run(g, &p, &r, &e), MR_EINVAL);
    assert_int_equal(louvain_run(NULL, NULL, &r, &e), MR_EINVAL);
    int32_t comm[10] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 3};
    double q;
    assert_int_equal(louvain_modularity(g, comm, 3, 1.0, &q, &e), MR_EINVAL);
    /* Defaults when params is NULL. */
    assert_int_equal(louvain_run(g, NULL, &r, &e), 0);
    louvain_result_free(&r);
    louvain_result_free(&r); /* idempotent */
    bigraph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_incremental_equals_brute_force),
        cmocka_unit_test(test_planted_partition_recovered),
        cmocka_unit_test(test_levels_monotone_and_deterministic),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
