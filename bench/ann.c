/* ann — fashion-mnist recall@10 and QPS: moerec's FAISS retriever vs raw FAISS on the same index vs hnswlib
 *
 * bench_ann is the in-process half of bench/ann.sh (which adds the
 * python3-hnswlib peer and prints the final JSON line). It loads the IDX
 * files (60k base, 10k queries, 784-d uint8 -> float), computes the exact
 * top-10 by brute force (FAISS IndexFlatL2) as ground truth, builds one
 * "IDMap,HNSW32" retriever, then for each efSearch measures recall@10 and
 * single-thread QPS of (a) moerec's path, retr_search (validation, read
 * lock, over-fetch, slot -> id translation), and (b) faiss_Index_search on
 * the very same FAISS index. Both are timed one query per call (the serving
 * path) and in batches of CHUNK queries, interleaved chunk by chunk so
 * that load from other processes falls on both alike. Ground truth goes to
 * --gt-out for the peer.
 * Usage: bench_ann --base train.idx --queries t10k.idx [--gt-out F]
 *        [--nq N] [--efs 16,32,...] [--rounds R]
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/Index_c.h>

#include "common/clock.h"
#include "common/tensor.h"
#include "index/retrieval/retr_faiss.h"

#define K 10
#define CHUNK 200

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* IDX3 (uncompressed) -> float (n, rows*cols). */
static float *load_idx(const char *path, int64_t *n, int *d) {
    FILE *f = fopen(path, "rb");
    unsigned char h[16];
    if (!f || fread(h, 1, 16, f) != 16 || be32(h) != 0x803) {
        fprintf(stderr, "bench_ann: %s is not an IDX3 image file\n", path);
        if (f) fclose(f);
        return NULL;
    }
    *n = be32(h + 4);
    *d = (int)(be32(h + 8) * be32(h + 12));
    size_t tot = (size_t)*n * (size_t)*d;
    unsigned char *raw = malloc(tot);
    float *x = mr_floats_alloc(tot);
    if (!raw || !x || fread(raw, 1, tot, f) != tot) {
        fprintf(stderr, "bench_ann: short read on %s\n", path);
        exit(1);
    }
    for (size_t i = 0; i < tot; i++) x[i] = raw[i];
    free(raw);
    fclose(f);
    return x;
}

static double recall(const int64_t *got, const int64_t *gt, int64_t nq) {
    int64_t hit = 0;
    for (int64_t i = 0; i < nq; i++)
        for (int a = 0; a < K; a++)
            for (int b = 0; b < K; b++)
                if (got[i * K + a] == gt[i * K + b]) {
                    hit++;
                    break;
                }
    return (double)hit / (double)(nq * K);
}

typedef struct point {
    int ef;
    double rec_m, qps_m, qps_m_batch; /* moerec */
    double rec_f, qps_f, qps_f_batch; /* raw FAISS */
} point;

int main(int argc, char **argv) {
    const char *base = NULL, *queries = NULL, *gt_out = NULL;
    int64_t nq_max = 10000;
    int efs[16] = {10, 16, 24, 32, 64}, nef = 5, rounds = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--base") && i + 1 < argc) base = argv[++i];
        else if (!strcmp(argv[i], "--queries") && i + 1 < argc) queries = argv[++i];
        else if (!strcmp(argv[i], "--gt-out") && i + 1 < argc) gt_out = argv[++i];
        else if (!strcmp(argv[i], "--nq") && i + 1 < argc) nq_max = atol(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--efs") && i + 1 < argc) {
            nef = 0;
            for (char *t = strtok(argv[++i], ","); t && nef < 16; t = strtok(NULL, ","))
                efs[nef++] = atoi(t);
        } else {
            fprintf(stderr, "usage: bench_ann --base IDX --queries IDX [--gt-out F] [--nq N] "
                            "[--efs 16,32,...] [--rounds R]\n");
            return 2;
        }
    }
    if (!base || !queries) {
        fprintf(stderr, "bench_ann: --base and --queries are required\n");
        return 2;
    }
    int64_t nb, nq;
    int d, dq;
    float *xb = load_idx(base, &nb, &d), *xq = load_idx(queries, &nq, &dq);
    if (!xb || !xq || d != dq) return 1;
    if (nq > nq_max) nq = nq_max;
    int threads = omp_get_max_threads();

    /* ground truth: exact L2 (IndexFlatL2, BLAS) */
    uint64_t t0 = mr_now_ns();
    FaissIndexFlatL2 *flat = NULL;
    int64_t *gt = malloc((size_t)nq * K * sizeof *gt);
    float *dist = malloc((size_t)nq * K * sizeof *dist);
    faiss_IndexFlatL2_new_with(&flat, d);
    faiss_Index_add((FaissIndex *)flat, nb, xb);
    faiss_Index_search((FaissIndex *)flat, nq, xq, K, dist, gt);
    faiss_Index_free((FaissIndex *)flat);
    double gt_s = (mr_now_ns() - t0) / 1e9;
    fprintf(stderr, "ann: ground truth for %lld queries in %.1f s\n", (long long)nq, gt_s);
    if (gt_out) {
        FILE *f = fopen(gt_out, "wb");
        if (!f || fwrite(gt, sizeof *gt, (size_t)nq * K, f) != (size_t)nq * K) return 1;
        fclose(f);
    }

    /* the retriever: build with every core, search with one */
    retr_faiss_config cfg = {.name = "fmnist",
                             .dim = d,
                             .factory = "IDMap,HNSW32",
                             .metric = RETR_METRIC_L2,
                             .add_batch = 4096};
    mr_retr *r = NULL;
    mr_err e = {0};
    if (retr_faiss_create(&r, &cfg, &e)) {
        fprintf(stderr, "bench_ann: %s\n", e.msg);
        return 1;
    }
    int64_t *ids = malloc((size_t)nb * sizeof *ids);
    for (int64_t i = 0; i < nb; i++) ids[i] = i;
    t0 = mr_now_ns();
    if (retr_faiss_add(r, xb, ids, nb, &e)) {
        fprintf(stderr, "bench_ann: %s\n", e.msg);
        return 1;
    }
    double build_s = (mr_now_ns() - t0) / 1e9;
    fprintf(stderr, "ann: HNSW32 build of %lld x %d in %.1f s (%d threads)\n", (long long)nb, d,
            build_s, threads);
    omp_set_num_threads(1);
    FaissIndex *raw = retr_faiss_raw_index(r);
    int64_t *got = malloc((size_t)nq * K * sizeof *got);
    int64_t *got_m = malloc((size_t)nq * K * sizeof *got_m);
    int64_t *got_f = malloc((size_t)nq * K * sizeof *got_f);
    float *sc = malloc((size_t)nq * K * sizeof *sc);
    point pts[16];
    for (int p = 0; p < nef; p++) {
        point *pt = &pts[p];
        pt->ef = efs[p];
        if (retr_faiss_set_params(r, efs[p], 0, &e)) {
            fprintf(stderr, "bench_ann: %s\n", e.msg);
            return 1;
        }
        /* Interleaved timing: the queries go in chunks of CHUNK; each chunk
         * runs through both paths back to back, the order alternating
         * chunk by chunk, so load from other processes on this shared
         * machine falls on both paths alike. Single = one query per call
         * (the serving path), batch = one call per chunk. */
        double tm = 0, tf = 0, tmb = 0, tfb = 0;
        for (int round = 0; round < rounds; round++) {
            for (int64_t c0 = 0, ci = 0; c0 < nq; c0 += CHUNK, ci++) {
                int64_t c1 = c0 + CHUNK < nq ? c0 + CHUNK : nq;
                for (int side = 0; side < 2; side++) {
                    int moerec = (side + ci + round) % 2 == 0;
                    uint64_t t = mr_now_ns();
                    for (int64_t i = c0; i < c1; i++) {
                        if (moerec)
                            retr_search(r, xq + i * d, d, 1, K, NULL, got + i * K, sc + i * K, &e);
                        else faiss_Index_search(raw, 1, xq + i * d, K, dist + i * K, got + i * K);
                    }
                    *(moerec ? &tm : &tf) += (mr_now_ns() - t) / 1e9;
                    if (round == 0) /* keep each path's single-query answers */
                        memcpy((moerec ? got_m : got_f) + c0 * K, got + c0 * K,
                               (size_t)(c1 - c0) * K * sizeof *got);
                    t = mr_now_ns();
                    if (moerec)
                        retr_search(r, xq + c0 * d, d, (int)(c1 - c0), K, NULL, got + c0 * K,
                                    sc + c0 * K, &e);
                    else
                        faiss_Index_search(raw, c1 - c0, xq + c0 * d, K, dist + c0 * K,
                                           got + c0 * K);
                    *(moerec ? &tmb : &tfb) += (mr_now_ns() - t) / 1e9;
                }
            }
        }
        pt->rec_m = recall(got_m, gt, nq);
        pt->rec_f = recall(got_f, gt, nq);
        pt->qps_m = rounds * nq / tm;
        pt->qps_f = rounds * nq / tf;
        pt->qps_m_batch = rounds * nq / tmb;
        pt->qps_f_batch = rounds * nq / tfb;
        fprintf(stderr,
                "ann: ef %3d  recall moerec %.4f faiss %.4f  qps single moerec %.0f faiss "
                "%.0f (overhead %+.1f%%)  batch moerec %.0f faiss %.0f\n",
                pt->ef, pt->rec_m, pt->rec_f, pt->qps_m, pt->qps_f,
                100 * (pt->qps_f / pt->qps_m - 1), pt->qps_m_batch, pt->qps_f_batch);
    }
    /* matched recall: the smallest ef with recall >= 0.95 */
    int at = -1;
    for (int p = 0; p < nef && at < 0; p++)
        if (pts[p].rec_m >= 0.95) at = p;
    printf("{\"bench\":\"ann_faiss\",\"n_base\":%lld,\"n_query\":%lld,\"dim\":%d,\"k\":%d,"
           "\"build_s\":%.2f,\"points\":[",
           (long long)nb, (long long)nq, d, K, build_s);
    for (int p = 0; p < nef; p++)
        printf("%s{\"ef\":%d,\"recall\":%.4f,\"qps_moerec\":%.1f,\"qps_faiss\":%.1f,"
               "\"qps_moerec_batch\":%.1f,\"qps_faiss_batch\":%.1f}",
               p ? "," : "", pts[p].ef, pts[p].rec_m, pts[p].qps_m, pts[p].qps_f,
               pts[p].qps_m_batch, pts[p].qps_f_batch);
    printf("],\"matched\":");
    if (at < 0) {
        printf("null}\n");
    } else {
        const point *m = &pts[at];
        printf("{\"ef\":%d,\"recall\":%.4f,\"qps_moerec\":%.1f,\"qps_faiss\":%.1f,"
               "\"overhead_single\":%.4f,\"overhead_batch\":%.4f}}\n",
               m->ef, m->rec_m, m->qps_m, m->qps_f, m->qps_f / m->qps_m - 1,
               m->qps_f_batch / m->qps_m_batch - 1);
    }
    retr_free(r);
    mr_floats_free(xb);
    mr_floats_free(xq);
    free(ids);
    free(gt);
    free(dist);
    free(got);
    free(got_m);
    free(got_f);
    free(sc);
    return 0;
}
