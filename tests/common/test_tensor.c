/* test_tensor.c — mr_sgemm against a naive reference for every transpose
 * combination; vector helpers; finiteness check. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/rng.h"
#include "common/tensor.h"

static void ref_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *A,
                     const float *B, float beta, float *C) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) {
                float a = ta ? A[p * m + i] : A[i * k + p];
                float b = tb ? B[j * k + p] : B[p * n + j];
                s += (double)a * b;
            }
            C[i * n + j] = (float)(alpha * s + beta * C[i * n + j]);
        }
}

static void test_sgemm_all_transposes(void **s) {
    (void)s;
    mr_rng r;
    mr_rng_seed(&r, 1);
    const int m = 7, n = 5, k = 9;
    float *A = mr_floats_alloc(m * k), *B = mr_floats_alloc(k * n);
    float *C = mr_floats_alloc(m * n), *R = mr_floats_alloc(m * n);
    assert_non_null(A);
    assert_int_equal((uintptr_t)A % 64, 0);
    mr_rng_fill_normal(&r, A, m * k, 1);
    mr_rng_fill_normal(&r, B, k * n, 1);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            mr_rng_fill_normal(&r, C, m * n, 1);
            for (int i = 0; i < m * n; i++) R[i] = C[i];
            mr_sgemm(ta, tb, m, n, k, 0.5f, A, B, 2.0f, C);
            ref_gemm(ta, tb, m, n, k, 0.5f, A, B, 2.0f, R);
            for (int i = 0; i < m * n; i++) assert_true(fabsf(C[i] - R[i]) < 1e-4f);
        }
    mr_sgemm(0, 0, m, n, 0, 1.0f, A, B, 0.0f, C); /* k = 0 clears C when beta = 0 */
    for (int i = 0; i < m * n; i++) assert_true(C[i] == 0.0f);
    mr_floats_free(A);
    mr_floats_free(B);
    mr_floats_free(C);
    mr_floats_free(R);
}

static void test_vector_helpers(void **s) {
    (void)s;
    float x[4] = {1, 2, 3, 4}, y[4] = {1, 1, 1, 1};
    assert_true(fabsf(mr_dot(x, y, 4) - 10.0f) < 1e-6f);
    mr_axpy(4, 2.0f, x, y);
    assert_true(fabsf(y[3] - 9.0f) < 1e-6f);
    assert_true(fabsf(mr_l2norm(x, 4) - sqrtf(30.0f)) < 1e-5f);
    assert_true(mr_all_finite(x, 4));
    x[2] = NAN;
    assert_false(mr_all_finite(x, 4));
    x[2] = INFINITY;
    assert_false(mr_all_finite(x, 4));
}

static void test_blas_threads(void **s) {
    (void)s;
    mr_blas_set_threads(1);
    assert_int_equal(mr_blas_get_threads(), 1);
    assert_non_null(mr_blas_corename());
}

int main(void) {
    const struct CMUnitTest t[] = {cmocka_unit_test(test_sgemm_all_transposes),
                                   cmocka_unit_test(test_vector_helpers),
                                   cmocka_unit_test(test_blas_threads)};
    return cmocka_run_group_tests(t, NULL, NULL);
}
