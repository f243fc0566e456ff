/* tensor.c — see tensor.h. */
#include "tensor.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* OpenBLAS extensions, declared here to avoid depending on its headers'
 * exact set of extras. */
extern void openblas_set_num_threads(int);
extern int openblas_get_num_threads(void);
extern char *openblas_get_corename(void);

float *mr_floats_alloc(size_t n) {
    if (n == 0) n = 1;
    if (n > SIZE_MAX / sizeof(float) - 64) return NULL;
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void mr_floats_free(float *p) { free(p); }

void mr_sgemm(int transA, int transB, int m, int n, int k, float alpha, const float *A,
              const float *B, float beta, float *C) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) { /* C = beta C; BLAS would do this too, but be explicit */
        for (long i = 0; i < (long)m * n; i++) C[i] = beta == 0.0f ? 0.0f : beta * C[i];
        return;
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans, m, n, k, alpha, A, transA ? m : k, B,
                transB ? k : n, beta, C, n);
}

float mr_dot(const float *x, const float *y, int n) { return cblas_sdot(n, x, 1, y, 1); }
void mr_axpy(int n, float a, const float *x, float *y) { cblas_saxpy(n, a, x, 1, y, 1); }
float mr_l2norm(const float *x, int n) { return cblas_snrm2(n, x, 1); }

int mr_all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

void mr_blas_set_threads(int n) { openblas_set_num_threads(n > 0 ? n : 1); }
int mr_blas_get_threads(void) { return openblas_get_num_threads(); }
const char *mr_blas_corename(void) { return openblas_get_corename(); }
