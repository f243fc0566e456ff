/* tensor.h — small helpers over OpenBLAS shared by the ranker, the store
 * and the benchmarks: aligned float buffers, the row-major sgemm call every
 * dense layer uses, vector kernels, and control of OpenBLAS's threads.
 *
 * Threads: inside request handlers OpenBLAS runs single-threaded
 * (parallelism comes from concurrent requests); batch tools may raise it.
 */
#ifndef MOEREC_COMMON_TENSOR_H
#define MOEREC_COMMON_TENSOR_H

#include <stddef.h>

/* 64-byte aligned, zeroed; NULL on overflow or allocation failure. */
float *mr_floats_alloc(size_t n);
void mr_floats_free(float *p);

/* C (m, n) = alpha * op(A) @ op(B) + beta * C, all row-major.
 * op(A) is (m, k): A is (m, k), or (k, m) when transA. Same for B (k, n). */
void mr_sgemm(int transA, int transB, int m, int n, int k, float alpha, const float *A,
              const float *B, float beta, float *C);

float mr_dot(const float *x, const float *y, int n);
void mr_axpy(int n, float a, const float *x, float *y); /* y += a x */
float mr_l2norm(const float *x, int n);
/* 1 if all n values are finite. */
int mr_all_finite(const float *x, size_t n);

/* OpenBLAS thread count (process-wide). */
void mr_blas_set_threads(int n);
int mr_blas_get_threads(void);
/* Name of the OpenBLAS kernel in use, e.g. "Haswell". */
const char *mr_blas_corename(void);

#endif
