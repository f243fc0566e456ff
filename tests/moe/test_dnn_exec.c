/* test_dnn_exec.c — moe/dnn_exec.c: the oneDNN forward against the OpenBLAS
 * one on the same weights and inputs, for every architecture feature the
 * plan touches (ReLU and Swish, row norm, feature gate, self gate, PLE
 * levels, top-k and top-p gates) and every precision, at stated tolerances
 * on the task outputs (probabilities, and the regression output):
 *   fp32 1e-4 (different summation order only), bf16 3e-2, int8 6e-2.
 * Sparse gates skip the same experts in every precision (the gates run in
 * fp32 on the same input at level 0, as one stacked matmul on the plan). A
 * scorer reused across changing batch sizes matches fresh scorers bit for
 * bit, and row counts around every fixed-row block size match OpenBLAS. Four threads sharing one model and
 * its primitives, each with its own scorer, get the single-thread results
 * bit for bit (run under TSan by scripts/test.sh --tsan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/rng.h"
#include "moe/model.h"
#include "moe/scorer.h"

/* in_dim 4*3 + 3*2 + 2 + extra 4 = 24; widths big enough for real kernels */
static const char *k_fmt =
    "{\"name\":\"dnn\",\"tables\":[{\"name\":\"a\",\"rows\":64,\"dim\":4},{\"name\":\"b\",\"rows\":64,\"dim\":3}],"
    "\"features\":{\"categorical\":[{\"name\":\"u\",\"table\":\"a\"},{\"name\":\"v\",\"table\":\"a\"},"
    "{\"name\":\"w\",\"table\":\"a\"},{\"name\":\"i\",\"table\":\"b\"},{\"name\":\"j\",\"table\":\"b\"}],"
    "\"numeric\":[{\"name\":\"n0\"},{\"name\":\"n1\"}],\"extra_dim\":4},"
    "\"tasks\":[{\"name\":\"click\"},{\"name\":\"like\"},{\"name\":\"dwell\",\"kind\":\"regression\"}],"
    "\"arch\":%s}";

static const char *k_archs[] = {
    "{\"type\":\"mmoe\",\"experts\":4,\"expert_hidden\":[48,32],\"tower_hidden\":[16]}",
    "{\"type\":\"mmoe\",\"experts\":6,\"expert_hidden\":[48,32],\"tower_hidden\":[16],\"gate\":{\"type\":\"topk\",\"k\":2}}",
    "{\"type\":\"mmoe\",\"experts\":6,\"expert_hidden\":[40],\"activation\":\"swish\",\"gate\":{\"type\":\"topp\",\"p\":0.6}}",
    "{\"type\":\"ple\",\"experts\":2,\"task_experts\":2,\"levels\":2,\"expert_hidden\":[32,24]}",
    "{\"type\":\"home\",\"task_groups\":[0,0,1],\"feature_gate_rank\":3,\"self_gate\":true,\"expert_hidden\":[32,24]}",
};
#define N_ARCHS (int)(sizeof k_archs / sizeof *k_archs)
#define ROWS 300

static const float k_tol[MOE_PREC_COUNT] = {0, 1e-4f, 3e-2f, 6e-2f};

static moe_model *make(int a) {
    char js[4096];
    snprintf(js, sizeof js, k_fmt, k_archs[a]);
    moe_model *m = NULL;
    mr_err e;
    int rc = moe_model_from_json(&m, js, 100 + (uint64_t)a, &e);
    if (rc) print_message("%s\n", e.msg);
    assert_int_equal(rc, 0);
    /* the default init gives near-zero biases: make them matter */
    mr_rng r;
    mr_rng_seed(&r, 5 + (uint64_t)a);
    for (int t = 0; t < m->net->n_tensors; t++) {
        moe_tensor *x = &m->net->tensors[t];
        if (x->ndim == 1 && strstr(x->name, ".b"))
            for (long i = 0; i < x->n; i++) x->data[i] += (float)(0.1 * mr_rng_normal(&r));
    }
    return m;
}

/* tasks (ROWS, 3) of a fixed random input (seeded) */
static double run(const moe_model *m, float *tasks, int rows, uint64_t seed) {
    moe_scorer *s;
    mr_err e;
    assert_int_equal(moe_scorer_create(&s, m, &e), 0);
    assert_int_equal(moe_scorer_begin(s, rows, &e), 0);
    mr_rng r;
    mr_rng_seed(&r, seed);
    mr_rng_fill_normal(&r, moe_scorer_input(s), (long)rows * m->in_dim, 1.0f);
    int rc = moe_scorer_run(s, tasks, NULL, &e);
    if (rc) print_message("%s\n", e.msg);
    assert_int_equal(rc, 0);
    double af = moe_scorer_active_fraction(s);
    moe_scorer_free(s);
    return af;
}

static void test_parity(void **st) {
    (void)st;
    static float ref[ROWS * 3], got[ROWS * 3];
    for (int a = 0; a < N_ARCHS; a++) {
        moe_model *m = make(a);
        double af_ref = run(m, ref, ROWS, 9);
        for (int p = MOE_PREC_FP32; p < MOE_PREC_COUNT; p++) {
            mr_err e;
            assert_int_equal(moe_model_set_precision(m, (moe_precision)p, &e), 0);
            moe_precision used = m->precision_used;
            /* a CPU without the instructions runs fp32 and says why */
            if (used != (moe_precision)p) {
                assert_int_equal(used, MOE_PREC_FP32);
                assert_true(m->precision_note[0] != 0);
            }
            double af = run(m, got, ROWS, 9);
            float md = 0; /* probabilities absolute, the regression output relative to 1 + |ref| */
            for (int i = 0; i < ROWS * 3; i++)
                md = fmaxf(md, fabsf(got[i] - ref[i]) / (i % 3 == 2 ? 1 + fabsf(ref[i]) : 1));
            print_message("arch %d %-5s max |diff| %.2e (tolerance %.0e), active fraction %.3f\n",
                          a, moe_precision_name(used), (double)md, (double)k_tol[used], af);
            assert_true(md <= k_tol[used]);
            assert_true(md > 0 || used == MOE_PREC_FP32); /* the reduced path really ran */
            if (a == 1 || a == 2) {
                assert_true(af_ref < 0.9);
                assert_true(fabs(af - af_ref) < 1e-9); /* the same experts skipped */
            }
        }
        moe_model_free(m);
    }
}

/* Batches of 1 and of odd sizes, and a plan rebuilt twice (no leak, same
 * numbers), then dropped (back to the exact OpenBLAS result). */
static void test_shapes_and_rebuild(void **st) {
    (void)st;
    moe_model *m = make(1);
    static float ref[ROWS * 3], a[ROWS * 3], b[ROWS * 3];
    mr_err e;
    for (int rows = 1; rows <= 257; rows += 64) {
        run(m, ref, rows, 3);
        assert_int_equal(moe_model_set_precision(m, MOE_PREC_BF16, &e), 0);
        run(m, a, rows, 3);
        assert_int_equal(moe_model_set_precision(m, MOE_PREC_BF16, &e), 0);
        run(m, b, rows, 3);
        assert_memory_equal(a, b, sizeof(float) * 3 * (size_t)rows);
        for (int i = 0; i < rows * 3; i++)
            assert_true(fabsf(a[i] - ref[i]) <= k_tol[m->precision_used]);
        assert_int_equal(moe_model_set_precision(m, MOE_PREC_OPENBLAS_FP32, &e), 0);
        assert_null(m->dnn);
        run(m, b, rows, 3);
        assert_memory_equal(ref, b, sizeof(float) * 3 * (size_t)rows);
    }
    moe_model_free(m);
}

/* One scorer reused over batch sizes that change between calls (its
 * memory objects are kept per layer while the row count stays, re-made when
 * it changes) gives what a fresh scorer gives for each batch, bit for bit,
 * with dense and with top-k routing (experts see fewer rows than the batch). */
static void test_reused_scorer(void **st) {
    (void)st;
    static const int sizes[] = {100, 100, 37, 100, 1, 256, 37};
    static float want[ROWS * 3], got[ROWS * 3];
    for (int a = 0; a < 2; a++)
        for (int p = MOE_PREC_FP32; p < MOE_PREC_COUNT; p++) {
            moe_model *m = make(a);
            mr_err e;
            assert_int_equal(moe_model_set_precision(m, (moe_precision)p, &e), 0);
            moe_scorer *s;
            assert_int_equal(moe_scorer_create(&s, m, &e), 0);
            for (int i = 0; i < (int)(sizeof sizes / sizeof *sizes); i++) {
                int rows = sizes[i];
                run(m, want, rows, 60 + (uint64_t)i);
                assert_int_equal(moe_scorer_begin(s, rows, &e), 0);
                mr_rng r;
                mr_rng_seed(&r, 60 + (uint64_t)i);
                mr_rng_fill_normal(&r, moe_scorer_input(s), (long)rows * m->in_dim, 1.0f);
                assert_int_equal(moe_scorer_run(s, got, NULL, &e), 0);
                assert_memory_equal(got, want, sizeof(float) * 3 * (size_t)rows);
            }
            moe_scorer_free(s);
            moe_model_free(m);
        }
}

/* Every row count splits into fixed-row blocks (largest first) plus a
 * zero-padded last block: counts at, just below and just above block sizes
 * (and above the largest) give every row the OpenBLAS result within the
 * precision's tolerance, so no row is skipped or taken from padding. */
static void test_row_blocks(void **st) {
    (void)st;
    static const int sizes[] = {1, 3, 4, 5, 15, 16, 17, 95, 96, 97, 383, 385, 511, 512, 513, 700};
    enum { MAXR = 700 };
    static float ref[MAXR * 3], got[MAXR * 3];
    moe_model *m = make(0);
    for (int i = 0; i < (int)(sizeof sizes / sizeof *sizes); i++) {
        int rows = sizes[i];
        mr_err e;
        assert_int_equal(moe_model_set_precision(m, MOE_PREC_OPENBLAS_FP32, &e), 0);
        run(m, ref, rows, 80 + (uint64_t)i);
        for (int p = MOE_PREC_FP32; p < MOE_PREC_COUNT; p++) {
            assert_int_equal(moe_model_set_precision(m, (moe_precision)p, &e), 0);
            run(m, got, rows, 80 + (uint64_t)i);
            for (int k = 0; k < rows * 3; k++)
                assert_true(fabsf(got[k] - ref[k]) / (k % 3 == 2 ? 1 + fabsf(ref[k]) : 1) <=
                            k_tol[m->precision_used]);
        }
    }
    moe_model_free(m);
}

typedef struct thr {
    const moe_model *m;
    int id;
    float out[4][ROWS * 3];
} thr;

static void *thr_main(void *arg) {
    thr *t = arg;
    for (int it = 0; it < 4; it++)
        run(t->m, t->out[it], 100 + 50 * ((t->id + it) % 4), 40 + (uint64_t)it);
    return NULL;
}

static void test_threads(void **st) {
    (void)st;
    for (int p = MOE_PREC_FP32; p < MOE_PREC_COUNT; p++) {
        moe_model *m = make(1);
        mr_err e;
        assert_int_equal(moe_model_set_precision(m, (moe_precision)p, &e), 0);
        static float want[4][4][ROWS * 3];
        for (int id = 0; id < 4; id++)
            for (int it = 0; it < 4; it++)
                run(m, want[id][it], 100 + 50 * ((id + it) % 4), 40 + (uint64_t)it);
        static thr ts[4];
        pthread_t th[4];
        for (int i = 0; i < 4; i++) {
            ts[i].m = m;
            ts[i].id = i;
            assert_int_equal(pthread_create(&th[i], NULL, thr_main, &ts[i]), 0);
        }
        for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
        for (int i = 0; i < 4; i++)
            for (int it = 0; it < 4; it++) {
                int rows = 100 + 50 * ((i + it) % 4);
                assert_memory_equal(ts[i].out[it], want[i][it], sizeof(float) * 3 * (size_t)rows);
            }
        moe_model_free(m);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity),        cmocka_unit_test(test_shapes_and_rebuild),
        cmocka_unit_test(test_reused_scorer), cmocka_unit_test(test_row_blocks),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
