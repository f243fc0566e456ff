/* sgemm — OpenBLAS single-thread sgemm GFLOP/s at a few shapes: the peak
 * other benchmarks quote against (moe_speed reports its fraction of it).
 *
 * Peer/bound in the same run: the naive triple loop at the smallest shape,
 * so the JSON line carries ratio_vs_naive as a sanity check of the BLAS.
 * Usage: bench/run sgemm [--threads N] [--seconds S]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/rng.h"
#include "common/tensor.h"

static double time_gemm(int m, int n, int k, double seconds, float *A, float *B, float *C) {
    uint64_t t0 = mr_now_ns(), t;
    long iters = 0;
    do {
        mr_sgemm(0, 0, m, n, k, 1.0f, A, B, 0.0f, C);
        iters++;
        t = mr_now_ns();
    } while ((double)(t - t0) / 1e9 < seconds);
    return 2.0 * m * n * k * (double)iters / ((double)(t - t0) / 1e9) / 1e9;
}

static double time_naive(int m, int n, int k, const float *A, const float *B, float *C) {
    uint64_t t0 = mr_now_ns();
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float s = 0;
            for (int p = 0; p < k; p++) s += A[(long)i * k + p] * B[(long)p * n + j];
            C[(long)i * n + j] = s;
        }
    return 2.0 * m * n * k / ((double)(mr_now_ns() - t0) / 1e9) / 1e9;
}

int main(int argc, char **argv) {
    int threads = 1;
    double seconds = 0.5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_sgemm [--threads N] [--seconds S]\n");
            return 2;
        }
    }
    mr_blas_set_threads(threads);
    /* Shapes: square, and the ranker's (batch x in) @ (in x out) layers. */
    static const int shapes[][3] = {{256, 256, 256}, {512, 512, 512}, {1024, 1024, 1024},
                                    {500, 256, 352}, {500, 128, 256}, {1000, 64, 128}};
    int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    mr_rng rng;
    mr_rng_seed(&rng, 1);
    float *A = mr_floats_alloc(1024 * 1024), *B = mr_floats_alloc(1024 * 1024),
          *C = mr_floats_alloc(1024 * 1024);
    if (!A || !B || !C) return 1;
    mr_rng_fill_normal(&rng, A, 1024 * 1024, 1.0f);
    mr_rng_fill_normal(&rng, B, 1024 * 1024, 1.0f);
    double peak = 0, gf[16];
    for (int s = 0; s < nshapes; s++) {
        gf[s] = time_gemm(shapes[s][0], shapes[s][1], shapes[s][2], seconds, A, B, C);
        if (gf[s] > peak) peak = gf[s];
        fprintf(stderr, "sgemm %4dx%4dx%4d  %7.2f GFLOP/s\n", shapes[s][0], shapes[s][1],
                shapes[s][2], gf[s]);
    }
    double naive = time_naive(256, 256, 256, A, B, C);
    fprintf(stderr, "naive 256^3        %7.2f GFLOP/s\n", naive);
    printf("{\"bench\":\"sgemm\",\"threads\":%d,\"core\":\"%s\",\"peak_gflops\":%.2f,"
           "\"gflops_512\":%.2f,\"gflops_500x256x352\":%.2f,\"naive_gflops\":%.3f,"
           "\"ratio_vs_naive\":%.1f}\n",
           threads, mr_blas_corename(), peak, gf[1], gf[3], naive, gf[0] / naive);
    mr_floats_free(A);
    mr_floats_free(B);
    mr_floats_free(C);
    return 0;
}
