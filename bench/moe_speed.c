/* moe_speed — MoE ranker throughput (1 thread) vs PyTorch on the same weights, and vs the sgemm peak
 *
 * The C half of bench/moe_speed.sh. A production-size MMoE: 20 categorical
 * fields x 16-d embeddings + 32 numeric (in_dim 352) -> 8 experts
 * [256, 128] -> 3 task towers [64] -> 1. Writes the model to DIR (for the
 * PyTorch peer), then measures on one thread:
 *   - single-thread sgemm peak (best of the shapes bench/sgemm uses)
 *   - every precision at batch 500, and in the same interleaved rounds one
 *     oneDNN Linear of the first expert layer's shape in fp32 and bf16
 *     (the kernels' rate: what the ranker could reach at that precision)
 * Every timing is the best of 5 windows, in both programs: the machine is
 * shared, and the best window is the least disturbed one.
 *   - inference candidates/s at batch 1, 100, 500, 1000 (scorer API, input
 *     matrix given) and the achieved GFLOP/s as a fraction of the peak
 *   - dense-network training samples/s at batch 256 (forward, loss,
 *     backward, Adam; embeddings excluded here and in the peer)
 *   - full-model training samples/s (20 embedding bags with sparse Adam on
 *     the rows touched + the network), moe_train on one thread
 * Writes DIR/x.f32 and DIR/out.f32 so the peer can check it computes the
 * same function. Prints one JSON line.
 * Usage: bench_moe_speed DIR [--seconds S] [--gate dense|topk] [--only PREC]
 *   --only PREC  time just precision PREC (openblas_fp32, fp32, bf16, int8)
 *                at batch 500 for S seconds and print its candidates/s (and
 *                per second of the thread's CPU time, which a loaded machine
 *                disturbs less): a steady loop to run under `perf record`
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dnnl.h>

#include "common/clock.h"
#include "common/rng.h"
#include "common/tensor.h"
#include "common/threadpool.h"
#include "moe/loss.h"
#include "moe/metrics.h"
#include "moe/optim.h"
#include "moe/scorer.h"
#include "moe/train.h"
#include "speed_model.h"

#define REPS 5 /* timings are the best of REPS windows: the machine is shared */

/* Best-of-REPS GFLOP/s of C (m, n) = A (m, k) B^T on OpenBLAS. */
static double sgemm_gflops(int m, int n, int k, const float *A, const float *B, float *C,
                           double seconds) {
    double best = 0;
    for (int rep = 0; rep < REPS; rep++) {
        uint64_t t0 = mr_now_ns(), t;
        long it = 0;
        do {
            mr_sgemm(0, 1, m, n, k, 1.0f, A, B, 0.0f, C);
            it++;
            t = mr_now_ns();
        } while ((double)(t - t0) / 1e9 < seconds / REPS);
        double g = 2.0 * m * n * k * (double)it / ((double)(t - t0) / 1e9) / 1e9;
        best = g > best ? g : best;
    }
    return best;
}

static double peak_gflops(double seconds) {
    static const int shapes[][3] = {
        {512, 512, 512}, {500, 256, 352}, {500, 128, 256}, {1000, 256, 352}};
    float *A = mr_floats_alloc(1024 * 1024), *B = mr_floats_alloc(1024 * 1024),
          *C = mr_floats_alloc(1024 * 1024);
    mr_rng r;
    mr_rng_seed(&r, 1);
    mr_rng_fill_normal(&r, A, 1024 * 1024, 1.0f);
    mr_rng_fill_normal(&r, B, 1024 * 1024, 1.0f);
    double best = 0;
    for (int s = 0; s < 4; s++) {
        double g = sgemm_gflops(shapes[s][0], shapes[s][1], shapes[s][2], A, B, C, seconds);
        best = g > best ? g : best;
    }
    mr_floats_free(A);
    mr_floats_free(B);
    mr_floats_free(C);
    return best;
}

/* One oneDNN Linear of the first expert layer's shape (500 x 352 -> 256,
 * bias + ReLU, fixed rows: the brgemm kernels the ranker's plan runs) in
 * fp32 or bf16, best-of-REPS GFLOP/s: the rate the whole network would run
 * at if every FLOP ran at this layer's, measured in the same rounds. 0 when
 * oneDNN refuses it. */
static double onednn_linear_gflops(int bf16, double seconds) {
    enum { M = 500, K = 352, N = 256 };
    dnnl_engine_t eng = NULL;
    dnnl_stream_t st = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_memory_t mem[4] = {0};
    double best = 0;
    dnnl_data_type_t dt = bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_dims_t sd = {M, K}, wd = {K, N}, bd = {1, N}, dd = {M, N};
    dnnl_memory_desc_t smd, wmd, bmd, dmd;
    dnnl_matmul_desc_t md;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) ||
        dnnl_stream_create(&st, eng, dnnl_stream_default_flags) ||
        dnnl_memory_desc_init_by_tag(&smd, 2, sd, dt, dnnl_ab) ||
        dnnl_memory_desc_init_by_tag(&wmd, 2, wd, dt, dnnl_format_tag_any) ||
        dnnl_memory_desc_init_by_tag(&bmd, 2, bd, dnnl_f32, dnnl_ab) ||
        dnnl_memory_desc_init_by_tag(&dmd, 2, dd, dt, dnnl_ab) ||
        dnnl_primitive_attr_create(&attr) || dnnl_post_ops_create(&po) ||
        dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f) ||
        dnnl_primitive_attr_set_post_ops(attr, po) ||
        dnnl_matmul_desc_init(&md, &smd, &wmd, &bmd, &dmd) ||
        dnnl_primitive_desc_create(&pd, &md, attr, eng, NULL) || dnnl_primitive_create(&prim, pd))
        goto out;
    const dnnl_memory_desc_t *mds[4] = {
        &smd, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), &bmd, &dmd};
    for (int i = 0; i < 4; i++) {
        void *h = NULL;
        if (dnnl_memory_create(&mem[i], mds[i], eng, DNNL_MEMORY_ALLOCATE) ||
            dnnl_memory_get_data_handle(mem[i], &h))
            goto out;
        memset(h, 0x3c, dnnl_memory_desc_get_size(mds[i])); /* ~0.0115 in fp32 and in bf16 */
    }
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, mem[0]},
                               {DNNL_ARG_WEIGHTS, mem[1]},
                               {DNNL_ARG_BIAS, mem[2]},
                               {DNNL_ARG_DST, mem[3]}};
    if (dnnl_primitive_execute(prim, st, 4, args) || dnnl_stream_wait(st)) goto out;
    for (int rep = 0; rep < REPS; rep++) {
        uint64_t t0 = mr_now_ns(), t;
        long it = 0;
        do {
            dnnl_primitive_execute(prim, st, 4, args);
            dnnl_stream_wait(st);
            it++;
            t = mr_now_ns();
        } while ((double)(t - t0) / 1e9 < seconds / REPS);
        double g = 2.0 * M * K * N * (double)it / ((double)(t - t0) / 1e9) / 1e9;
        best = g > best ? g : best;
    }
out:
    for (int i = 0; i < 4; i++)
        if (mem[i]) dnnl_memory_destroy(mem[i]);
    if (prim) dnnl_primitive_destroy(prim);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (st) dnnl_stream_destroy(st);
    if (eng) dnnl_engine_destroy(eng);
    return best;
}

/* The same Linear's matmul (500 x 352 -> 256) on OpenBLAS, the baseline
 * path's kernel (mr_sgemm, whichever OPENBLAS_CORETYPE selects): the ratio
 * of the two Linears is what the code around the kernels cannot exceed. */
static double openblas_linear_gflops(double seconds) {
    enum { M = 500, K = 352, N = 256 };
    float *A = mr_floats_alloc(M * K), *W = mr_floats_alloc(N * K), *C = mr_floats_alloc(M * N);
    double best = 0;
    for (int i = 0; A && W && i < M * K; i++) A[i] = 0.0115f;
    for (int i = 0; A && W && i < N * K; i++) W[i] = 0.0115f;
    if (A && W && C) best = sgemm_gflops(M, N, K, A, W, C, seconds);
    mr_floats_free(A);
    mr_floats_free(W);
    mr_floats_free(C);
    return best;
}

/* FLOPs of one candidate through the dense network (multiply-add = 2). */
static double flops_per_row(const moe_net *n) {
    double f = 0;
    const moe_level *lv = &n->levels[0];
    for (int i = 0; i < lv->n_experts; i++)
        for (int l = 0; l < lv->experts[i].n_layers; l++)
            f += 2.0 * lv->experts[i].dims[l] * lv->experts[i].dims[l + 1];
    for (int s = 0; s < lv->n_slots; s++) f += 2.0 * lv->gates[s].n_logits * lv->in_dim;
    f += 2.0 * lv->n_slots * lv->n_experts * lv->out_dim; /* mixing */
    for (int k = 0; k < n->arch.n_tasks; k++)
        for (int l = 0; l < n->towers[k].n_layers; l++)
            f += 2.0 * n->towers[k].dims[l] * n->towers[k].dims[l + 1];
    return f;
}

static double thread_cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Best-of-REPS candidates/s of scoring the batch already in s (best of
 * REPS windows: the machine is shared). With cpu_rate, also the best
 * window's candidates per second of this thread's CPU time (the load of
 * other processes takes cores away; it disturbs this figure less). */
static double time_runs_cpu(moe_scorer *s, int B, float *tasks, double seconds, mr_pool *split,
                            double *cpu_rate) {
    mr_err e;
    double best = 0;
    moe_scorer_run_split(s, tasks, NULL, split, 2, &e); /* warm-up */
    for (int rep = 0; rep < REPS; rep++) {
        uint64_t t0 = mr_now_ns(), t;
        double c0 = thread_cpu_s();
        long it = 0;
        do {
            moe_scorer_run_split(s, tasks, NULL, split, 2, &e); /* split NULL: moe_scorer_run */
            it++;
            t = mr_now_ns();
        } while ((double)(t - t0) / 1e9 < seconds / REPS);
        double c = (double)B * (double)it / ((double)(t - t0) / 1e9), cpu = thread_cpu_s() - c0;
        best = c > best ? c : best;
        if (cpu_rate && cpu > 0 && (double)B * (double)it / cpu > *cpu_rate)
            *cpu_rate = (double)B * (double)it / cpu;
    }
    return best;
}

static double time_runs(moe_scorer *s, int B, float *tasks, double seconds, mr_pool *split) {
    return time_runs_cpu(s, B, tasks, seconds, split, NULL);
}

/* Every precision on the same model and inputs: candidates/s at batch 500,
 * max |task output diff| vs openblas_fp32 over NP rows, and the change of
 * each task's AUC on labels drawn from the fp32 model's own probabilities
 * (y ~ Bernoulli(p_fp32)): the largest |AUC(prec) - AUC(fp32)| over tasks. */
enum { NP = 20000 };
static const int k_split_rows[3] = {128, 256, 500};
typedef struct prec_fig {
    double cps[MOE_PREC_COUNT], maxdiff[MOE_PREC_COUNT], dauc[MOE_PREC_COUNT];
    double cpu_cps[MOE_PREC_COUNT]; /* per second of the thread's CPU time */
    double split[2][3];             /* fp32, bf16: split-in-2 / whole at k_split_rows */
    double lin[3];                  /* onednn_linear_gflops fp32, bf16; openblas_linear_gflops */
    moe_precision used[MOE_PREC_COUNT];
} prec_fig;

static int precision_block(const char *dir, prec_fig *pf, double seconds, mr_rng *r) {
    mr_err e;
    moe_model *mp[MOE_PREC_COUNT] = {0};
    moe_scorer *sp[MOE_PREC_COUNT] = {0};
    for (int p = 0; p < MOE_PREC_COUNT; p++) { /* one copy of the model per precision */
        if (moe_model_load(&mp[p], dir, &e) ||
            moe_model_set_precision(mp[p], (moe_precision)p, &e) ||
            moe_scorer_create(&sp[p], mp[p], &e)) {
            fprintf(stderr, "bench_moe_speed: %s\n", e.msg);
            return 1;
        }
        pf->used[p] = mp[p]->precision_used;
        if (mp[p]->precision_note[0])
            fprintf(stderr, "precision %s: %s\n", moe_precision_name(p), mp[p]->precision_note);
    }
    const moe_model *m = mp[0];
    int T = m->n_tasks;
    float *x = mr_floats_alloc((size_t)NP * m->in_dim), *ref = malloc(sizeof(float) * NP * T),
          *out = malloc(sizeof(float) * NP * T), *y = malloc(sizeof(float) * NP),
          *col = malloc(sizeof(float) * NP), *tasks = malloc(sizeof(float) * 500 * T),
          *lab = malloc(sizeof(float) * NP * T);
    mr_rng_fill_normal(r, x, (long)NP * m->in_dim, 1.0f);
    double auc_ref[MOE_MAX_TASKS] = {0};
    for (int p = 0; p < MOE_PREC_COUNT; p++) {
        moe_scorer *s = sp[p];
        for (int r0 = 0; r0 < NP; r0 += 500) { /* outputs over NP rows in batches of 500 */
            moe_scorer_begin(s, 500, &e);
            memcpy(moe_scorer_input(s), x + (long)r0 * m->in_dim,
                   sizeof(float) * 500 * (size_t)m->in_dim);
            moe_scorer_run(s, out + (long)r0 * T, NULL, &e);
        }
        if (p == MOE_PREC_OPENBLAS_FP32) {
            memcpy(ref, out, sizeof(float) * NP * T);
            for (long i = 0; i < (long)NP * T; i++)
                lab[i] = mr_rng_uniform(r) < ref[i] ? 1.0f : 0.0f;
        }
        double md = 0, da = 0;
        for (long i = 0; i < (long)NP * T; i++) {
            double d = fabs((double)out[i] - ref[i]);
            md = d > md ? d : md;
        }
        for (int k = 0; k < T; k++) {
            for (long i = 0; i < NP; i++) col[i] = out[i * T + k], y[i] = lab[i * T + k];
            double a = moe_auc(col, y, NULL, NP);
            if (p == MOE_PREC_OPENBLAS_FP32) auc_ref[k] = a;
            da = fabs(a - auc_ref[k]) > da ? fabs(a - auc_ref[k]) : da;
        }
        pf->maxdiff[p] = md;
        pf->dauc[p] = da;
        moe_scorer_begin(s, 500, &e);
        memcpy(moe_scorer_input(s), x, sizeof(float) * 500 * (size_t)m->in_dim);
        pf->cps[p] = 0;
        pf->cpu_cps[p] = 0;
    }
    /* timing interleaved: every round times each precision for one short
     * window, and each keeps its best window; the load of the shared
     * machine drifts over seconds, so back-to-back blocks per precision
     * would compare different loads */
    for (int round = 0; round < 3; round++) {
        for (int p = 0; p < MOE_PREC_COUNT; p++) {
            double c = time_runs_cpu(sp[p], 500, tasks, seconds / 3, NULL, &pf->cpu_cps[p]);
            pf->cps[p] = c > pf->cps[p] ? c : pf->cps[p];
        }
        for (int q = 0; q < 2; q++) { /* the kernels' rate, in the same rounds */
            double g = onednn_linear_gflops(q, seconds / 6);
            pf->lin[q] = g > pf->lin[q] ? g : pf->lin[q];
        }
        double g = openblas_linear_gflops(seconds / 6);
        pf->lin[2] = g > pf->lin[2] ? g : pf->lin[2];
    }
    fprintf(stderr,
            "oneDNN Linear 500 x 352 -> 256: fp32 %.1f GFLOP/s, bf16 %.1f GFLOP/s; OpenBLAS (%s) "
            "%.1f GFLOP/s\n",
            pf->lin[0], pf->lin[1], mr_blas_corename(), pf->lin[2]);
    /* one request on two cores (server's score_split_candidates): whole vs
     * cut in 2 on a pool of 2, interleaved, at a few batch sizes */
    mr_pool *pool = mr_pool_create(2);
    for (int q = 0; pool && q < 2; q++) {
        moe_scorer *s = sp[q ? MOE_PREC_BF16 : MOE_PREC_FP32];
        for (int b = 0; b < 3; b++) {
            int rows = k_split_rows[b];
            moe_scorer_begin(s, rows, &e);
            memcpy(moe_scorer_input(s), x, sizeof(float) * (size_t)rows * (size_t)m->in_dim);
            double whole = 0, split = 0;
            for (int round = 0; round < 2; round++) {
                double w = time_runs(s, rows, tasks, seconds / 4, NULL),
                       c = time_runs(s, rows, tasks, seconds / 4, pool);
                whole = w > whole ? w : whole;
                split = c > split ? c : split;
            }
            pf->split[q][b] = split / whole;
            fprintf(stderr, "split in 2, %s batch %d: %.2fx the whole batch\n", q ? "bf16" : "fp32",
                    rows, split / whole);
        }
    }
    mr_pool_free(pool);
    for (int p = 0; p < MOE_PREC_COUNT; p++) {
        fprintf(
            stderr,
            "precision %-13s (runs %s): batch 500 %10.0f candidates/s, max |diff| %.2e, |dAUC| %.5f\n",
            moe_precision_name(p), moe_precision_name(pf->used[p]), pf->cps[p], pf->maxdiff[p],
            pf->dauc[p]);
        moe_scorer_free(sp[p]);
        moe_model_free(mp[p]);
    }
    mr_floats_free(x);
    free(ref);
    free(out);
    free(y);
    free(col);
    free(tasks);
    free(lab);
    return 0;
}

/* --only: one precision at batch 500 in a steady loop (for perf). */
static int only_one(const char *dir, const char *prec, double seconds) {
    moe_precision p;
    moe_model *m = NULL;
    moe_scorer *s = NULL;
    mr_err e;
    if (moe_precision_parse(prec, &p)) {
        fprintf(stderr, "bench_moe_speed: unknown precision '%s'\n", prec);
        return 2;
    }
    if (moe_model_load(&m, dir, &e) || moe_model_set_precision(m, p, &e) ||
        moe_scorer_create(&s, m, &e) || moe_scorer_begin(s, 500, &e)) {
        fprintf(stderr, "bench_moe_speed: %s\n", e.msg);
        moe_model_free(m);
        return 1;
    }
    mr_rng r;
    mr_rng_seed(&r, 3);
    mr_rng_fill_normal(&r, moe_scorer_input(s), 500L * m->in_dim, 1.0f);
    float *tasks = malloc(sizeof(float) * 500 * (size_t)m->n_tasks);
    /* candidates per second of this thread's CPU time too: on a loaded
     * machine it does not count the time the thread waited for a core */
    double c0 = thread_cpu_s();
    long runs = 0;
    uint64_t t0 = mr_now_ns();
    do {
        moe_scorer_run(s, tasks, NULL, &e);
        runs++;
    } while ((double)(mr_now_ns() - t0) / 1e9 < seconds / 2);
    double cpu = thread_cpu_s() - c0;
    double c = time_runs(s, 500, tasks, seconds / 2, NULL);
    printf(
        "{\"precision\":\"%s\",\"runs\":\"%s\",\"cands_per_s_500\":%.0f,\"cands_per_cpu_s_500\":%.0f}\n",
        prec, moe_precision_name(m->precision_used), c, 500.0 * (double)runs / cpu);
    free(tasks);
    moe_scorer_free(s);
    moe_model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr,
                "usage: bench_moe_speed DIR [--seconds S] [--gate dense|topk] [--only PREC]\n");
        return 2;
    }
    const char *dir = argv[1], *gate = "dense", *only = NULL;
    double seconds = 1.0;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--gate")) gate = argv[i + 1];
        else if (!strcmp(argv[i], "--only")) only = argv[i + 1];
    }
    mr_blas_set_threads(1);
    char js[16384];
    speed_model_json(js, sizeof js, gate);
    moe_model *m;
    mr_err e;
    if (moe_model_from_json(&m, js, SPEED_MODEL_SEED, &e) || moe_model_save(m, dir, &e)) {
        fprintf(stderr, "bench_moe_speed: %s\n", e.msg);
        return 1;
    }
    if (only) {
        moe_model_free(m);
        return only_one(dir, only, seconds);
    }
    double peak = peak_gflops(seconds / 2);
    fprintf(stderr, "sgemm single-thread peak %.1f GFLOP/s (%s)\n", peak, mr_blas_corename());
    double fpr = flops_per_row(m->net);
    moe_scorer *s;
    moe_scorer_create(&s, m, &e);
    mr_rng r;
    mr_rng_seed(&r, 3);
    static const int batches[] = {1, 100, 500, 1000};
    double cps[4], gf[4];
    float *tasks = malloc(sizeof(float) * 3000);
    for (int bi = 0; bi < 4; bi++) {
        int B = batches[bi];
        moe_scorer_begin(s, B, &e);
        mr_rng_fill_normal(&r, moe_scorer_input(s), (long)B * m->in_dim, 1.0f);
        cps[bi] = time_runs(s, B, tasks, seconds, NULL);
        gf[bi] = cps[bi] * fpr / 1e9;
        fprintf(stderr,
                "inference batch %4d: %10.0f candidates/s  %6.1f GFLOP/s (%.0f%% of peak)\n", B,
                cps[bi], gf[bi], 100 * gf[bi] / peak);
    }
    prec_fig pf = {0};
    if (precision_block(dir, &pf, seconds, &r)) return 1;
    /* the same weights routed top-2 of 8 (a different function, so not
     * compared with the peer): sparse gates must save expert compute */
    double sparse_cps, sparse_frac;
    {
        moe_level *lv = &m->net->levels[0];
        for (int k = 0; k < lv->n_slots; k++) {
            lv->gates[k].spec.kind = MOE_GATE_TOPK;
            lv->gates[k].spec.k = 2;
        }
        moe_scorer_begin(s, 500, &e);
        mr_rng_fill_normal(&r, moe_scorer_input(s), 500L * m->in_dim, 1.0f);
        sparse_cps = time_runs(s, 500, tasks, seconds, NULL);
        sparse_frac = moe_scorer_active_fraction(s);
        fprintf(stderr, "top-2 of 8, batch 500: %10.0f candidates/s, active expert fraction %.3f\n",
                sparse_cps, sparse_frac);
        for (int k = 0; k < lv->n_slots; k++) lv->gates[k].spec.kind = MOE_GATE_DENSE;
    }
    /* parity dump: batch 100 input and outputs */
    moe_scorer_begin(s, 100, &e);
    mr_rng_fill_normal(&r, moe_scorer_input(s), 100L * m->in_dim, 1.0f);
    moe_scorer_run(s, tasks, NULL, &e);
    char p[4096];
    snprintf(p, sizeof p, "%s/x.f32", dir);
    FILE *f = fopen(p, "wb");
    fwrite(moe_scorer_input(s), sizeof(float), 100L * (size_t)m->in_dim, f);
    fclose(f);
    snprintf(p, sizeof p, "%s/out.f32", dir);
    f = fopen(p, "wb");
    fwrite(tasks, sizeof(float), 300, f);
    fclose(f);
    /* dense training: forward + loss + backward + Adam, batch 256 */
    enum { TB = 256 };
    float *x = mr_floats_alloc((size_t)TB * m->in_dim), y[3 * TB], dl[3][TB],
          *dlogit[3] = {dl[0], dl[1], dl[2]};
    float *g = mr_floats_alloc((size_t)m->net->n_params),
          *am = mr_floats_alloc((size_t)m->net->n_params),
          *av = mr_floats_alloc((size_t)m->net->n_params);
    mr_rng_fill_normal(&r, x, (long)TB * m->in_dim, 1.0f);
    for (int i = 0; i < 3 * TB; i++) y[i] = (float)mr_rng_below(&r, 2);
    moe_pass pass;
    moe_pass_init(&pass);
    moe_adam adam = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    double tsps = 0;
    for (int rep = 0; rep < REPS; rep++) {
        uint64_t t0 = mr_now_ns(), t;
        long steps = 0;
        do {
            moe_net_forward(&pass, m->net, x, TB, 1, NULL, &e);
            moe_loss l;
            moe_net_loss(&l, dlogit, &pass, m->net, y, NULL, NULL);
            memset(g, 0, sizeof(float) * (size_t)m->net->n_params);
            moe_net_backward(&pass, m->net, g, NULL, dlogit, NULL, &e);
            adam.step++;
            moe_adam_update(m->net->params, g, am, av, m->net->n_params, &adam);
            steps++;
            t = mr_now_ns();
        } while ((double)(t - t0) / 1e9 < seconds * 2 / REPS);
        double c = (double)TB * (double)steps / ((double)(t - t0) / 1e9);
        tsps = c > tsps ? c : tsps;
    }
    fprintf(stderr, "training batch %d: %.0f samples/s\n", TB, tsps);
    /* full model: 20 embedding bags (lazy sparse Adam on touched rows) +
     * numeric -> the same network, through moe_train on one thread */
    double full_sps = 0;
    {
        enum { NS = 12800 };
        moe_dataset *d;
        if (moe_dataset_alloc(&d, m, NS, &e)) return 1;
        for (int f = 0; f < 20; f++) {
            free(d->cat_rows[f]);
            d->cat_rows[f] = malloc(sizeof(uint32_t) * NS);
            for (long i = 0; i < NS; i++) {
                d->cat_rows[f][i] = (uint32_t)mr_rng_below(&r, 10000);
                d->cat_off[f][i + 1] = (uint32_t)i + 1;
            }
        }
        for (long i = 0; i < NS * 32L; i++) d->num[i] = (float)mr_rng_normal(&r);
        for (long i = 0; i < NS * 3L; i++) d->y[i] = (float)mr_rng_below(&r, 2), d->mask[i] = 1;
        long *idx = malloc(sizeof(long) * NS);
        for (long i = 0; i < NS; i++) idx[i] = i;
        moe_train_opts o;
        moe_train_defaults(&o);
        o.epochs = 1;
        o.batch = TB;
        o.threads = 1;
        o.clip = 0;
        o.lr = o.emb_lr = 1e-4f;
        for (int rep = 0; rep < 3; rep++) {
            moe_train_result res;
            if (moe_train(m, d, idx, NS, NULL, 0, &o, &res, &e)) return 1;
            full_sps = res.samples_per_s > full_sps ? res.samples_per_s : full_sps;
        }
        fprintf(stderr, "training with embeddings, batch %d: %.0f samples/s\n", TB, full_sps);
        free(idx);
        moe_dataset_free(d);
    }
    printf(
        "{\"impl\":\"moerec\",\"gate\":\"%s\",\"in_dim\":%d,\"params\":%ld,\"flops_per_candidate\":%.0f,"
        "\"sgemm_peak_gflops\":%.2f,\"cands_per_s\":{\"1\":%.0f,\"100\":%.0f,\"500\":%.0f,\"1000\":%.0f},"
        "\"gflops\":{\"1\":%.2f,\"100\":%.2f,\"500\":%.2f,\"1000\":%.2f},"
        "\"peak_fraction_500\":%.3f,\"peak_fraction_1000\":%.3f,\"train_samples_per_s\":%.0f,"
        "\"top2_cands_per_s_500\":%.0f,\"top2_active_fraction\":%.3f,\"train_full_samples_per_s\":%.0f,"
        "\"onednn_linear_gflops\":{\"fp32\":%.2f,\"bf16\":%.2f},\"openblas_linear_gflops\":%.2f,"
        "\"prec_cands_per_s_500\":{\"openblas_fp32\":%.0f,\"onednn_fp32\":%.0f,\"bf16\":%.0f,\"int8\":%.0f},"
        "\"prec_cands_per_cpu_s_500\":{\"openblas_fp32\":%.0f,\"onednn_fp32\":%.0f,\"bf16\":%.0f,"
        "\"int8\":%.0f},\"openblas_core\":\"%s\","
        "\"prec_used\":{\"bf16\":\"%s\",\"int8\":\"%s\"},"
        "\"max_abs_diff\":{\"onednn_fp32\":%.3g,\"bf16\":%.3g,\"int8\":%.3g},"
        "\"auc_change\":{\"onednn_fp32\":%.6f,\"bf16\":%.6f,\"int8\":%.6f},"
        "\"split_speedup\":{\"fp32\":{\"128\":%.2f,\"256\":%.2f,\"500\":%.2f},"
        "\"bf16\":{\"128\":%.2f,\"256\":%.2f,\"500\":%.2f}}}\n",
        gate, m->in_dim, m->net->n_params, fpr, peak, cps[0], cps[1], cps[2], cps[3], gf[0], gf[1],
        gf[2], gf[3], gf[2] / peak, gf[3] / peak, tsps, sparse_cps, sparse_frac, full_sps,
        pf.lin[0], pf.lin[1], pf.lin[2], pf.cps[0], pf.cps[1], pf.cps[2], pf.cps[3], pf.cpu_cps[0],
        pf.cpu_cps[1], pf.cpu_cps[2], pf.cpu_cps[3], mr_blas_corename(),
        moe_precision_name(pf.used[2]), moe_precision_name(pf.used[3]), pf.maxdiff[1],
        pf.maxdiff[2], pf.maxdiff[3], pf.dauc[1], pf.dauc[2], pf.dauc[3], pf.split[0][0],
        pf.split[0][1], pf.split[0][2], pf.split[1][0], pf.split[1][1], pf.split[1][2]);
    moe_pass_free(&pass);
    mr_floats_free(x);
    mr_floats_free(g);
    mr_floats_free(am);
    mr_floats_free(av);
    free(tasks);
    moe_scorer_free(s);
    moe_model_free(m);
    return 0;
}
