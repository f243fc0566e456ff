/* louvain_scale — GraphHash Louvain time, peak memory and modularity at 1M/10M edges; MovieLens vs networkx
 *
 * The C half of bench/louvain_scale.sh (which runs it and the networkx
 * peer). Modes:
 *   --synthetic E [--seed S]   planted-community bipartite graph with E
 *                              edges (E/10 users, E/50 items, 1000 blocks,
 *                              70% of a user's edges inside its block):
 *                              build + Louvain time, process peak RSS.
 *   --movielens CSV [--write-partition F] [--eval-partition F]
 *                              Barber modularity of our Louvain on the
 *                              user x movie graph; optionally write our
 *                              partition, or score another one (the peer's)
 *                              with the same Barber Q.
 * Each mode prints one JSON line on stdout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/movielens.h"
#include "common/clock.h"
#include "common/rng.h"
#include "hashing/graphhash.h"

static long peak_rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kb;
}

static void on_level(int level, const louvain_level *lv, void *ctx) {
    (void)ctx;
    fprintf(stderr, "louvain level %d: Q %.4f, %d communities, %d passes, %lld moves, %.2f s\n",
            level, lv->modularity, lv->ncomm, lv->passes, (long long)lv->moves, lv->seconds);
}

static double g_tol = 0; /* --tol: Louvain pass tolerance (0 = library default) */

static int run_synthetic(long ne, uint64_t seed) {
    const int nb = 1000;
    uint64_t nu = (uint64_t)ne / 10, ni = (uint64_t)ne / 50;
    uint64_t *us = malloc((size_t)ne * sizeof *us), *is = malloc((size_t)ne * sizeof *is);
    if (!us || !is) return 1;
    mr_rng r;
    mr_rng_seed(&r, seed);
    for (long j = 0; j < ne; j++) {
        uint64_t u = mr_rng_below(&r, nu), i;
        if (mr_rng_uniform(&r) < 0.7) i = (u % nb) + nb * mr_rng_below(&r, ni / nb);
        else i = mr_rng_below(&r, ni);
        us[j] = u * 7919 + 3; /* raw ids: not dense */
        is[j] = (i << 20) ^ 0x5a5a;
    }
    mr_err e = {0};
    uint64_t t0 = mr_now_ns();
    bigraph *g;
    if (bigraph_build_ids(&g, us, is, NULL, (size_t)ne, BIGRAPH_MERGE_DUPLICATES, &e)) {
        fprintf(stderr, "louvain_scale: %s\n", e.msg);
        return 1;
    }
    free(us);
    free(is);
    double build_s = (double)(mr_now_ns() - t0) / 1e9;
    louvain_params p = louvain_params_default();
    p.seed = seed;
    p.tol = g_tol;
    p.on_level = on_level;
    louvain_result rep;
    graphhash_map *m;
    t0 = mr_now_ns();
    if (graphhash_build(&m, g, &p, seed, &rep, &e)) {
        fprintf(stderr, "louvain_scale: %s\n", e.msg);
        return 1;
    }
    double louvain_s = (double)(mr_now_ns() - t0) / 1e9;
    printf("{\"mode\":\"synthetic\",\"edges_in\":%ld,\"edges\":%lld,\"users\":%d,\"items\":%d,"
           "\"build_s\":%.3f,\"louvain_s\":%.3f,\"modularity\":%.4f,\"clusters\":%d,"
           "\"user_rows\":%u,\"item_rows\":%u,\"levels\":%d,\"size_median\":%lld,"
           "\"size_max\":%lld,\"graph_mb\":%.1f,\"peak_rss_mb\":%.1f}\n",
           ne, (long long)g->nedges, g->nu, g->ni, build_s, louvain_s, rep.modularity, rep.ncomm,
           graphhash_map_rows(m, GRAPHHASH_USERS), graphhash_map_rows(m, GRAPHHASH_ITEMS),
           rep.nlevels, (long long)rep.size_median, (long long)rep.size_max,
           (double)bigraph_bytes(g) / 1048576.0, (double)peak_rss_kb() / 1024.0);
    louvain_result_free(&rep);
    graphhash_map_free(m);
    bigraph_free(g);
    return 0;
}

/* Partition file: "u<id> <community>" or "i<id> <community>" per line. */
static int read_partition(const char *path, const bigraph *g, int32_t *comm, int32_t *ncomm) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    for (int64_t x = 0; x < (int64_t)g->nu + g->ni; x++) comm[x] = -1;
    char side;
    unsigned long long id;
    long c, maxc = -1;
    while (fscanf(f, " %c%llu %ld", &side, &id, &c) == 3) {
        const uint64_t *ids = side == 'u' ? g->user_ids : g->item_ids;
        int32_t n = side == 'u' ? g->nu : g->ni;
        long lo = 0, hi = n; /* binary search in the sorted ids */
        while (lo < hi) {
            long mid = (lo + hi) / 2;
            if (ids[mid] < id) lo = mid + 1;
            else hi = mid;
        }
        if (lo == n || ids[lo] != id) continue;
        comm[(side == 'u' ? 0 : g->nu) + lo] = (int32_t)c;
        if (c > maxc) maxc = c;
    }
    fclose(f);
    for (int64_t x = 0; x < (int64_t)g->nu + g->ni; x++)
        if (comm[x] < 0) comm[x] = (int32_t)++maxc; /* unlisted node: alone */
    *ncomm = (int32_t)maxc + 1;
    return 0;
}

static int run_movielens(const char *csv, const char *write_to, const char *eval_from) {
    size_t n;
    ml_rating *rt = ml_load(csv, &n);
    if (!rt) return 1;
    uint64_t *us = malloc(n * sizeof *us), *is = malloc(n * sizeof *is);
    for (size_t j = 0; j < n; j++) us[j] = rt[j].user, is[j] = rt[j].item;
    free(rt);
    bigraph *g;
    mr_err e = {0};
    if (bigraph_build_ids(&g, us, is, NULL, n, BIGRAPH_MERGE_DUPLICATES, &e)) {
        fprintf(stderr, "louvain_scale: %s\n", e.msg);
        return 1;
    }
    free(us);
    free(is);
    louvain_params p = louvain_params_default();
    louvain_result rep;
    uint64_t t0 = mr_now_ns();
    if (louvain_run(g, &p, &rep, &e)) {
        fprintf(stderr, "louvain_scale: %s\n", e.msg);
        return 1;
    }
    double secs = (double)(mr_now_ns() - t0) / 1e9;
    double peer_q = -2.0;
    int32_t peer_n = 0;
    if (eval_from) {
        int32_t *pc = malloc(((size_t)g->nu + g->ni) * sizeof *pc);
        if (read_partition(eval_from, g, pc, &peer_n) ||
            louvain_modularity(g, pc, peer_n, 1.0, &peer_q, &e)) {
            fprintf(stderr, "louvain_scale: cannot score %s %s\n", eval_from, e.msg);
            return 1;
        }
        free(pc);
    }
    if (write_to) {
        FILE *f = fopen(write_to, "w");
        if (!f) return 1;
        for (int32_t u = 0; u < g->nu; u++)
            fprintf(f, "u%llu %d\n", (unsigned long long)g->user_ids[u], rep.comm[u]);
        for (int32_t i = 0; i < g->ni; i++)
            fprintf(f, "i%llu %d\n", (unsigned long long)g->item_ids[i], rep.comm[g->nu + i]);
        fclose(f);
    }
    printf("{\"mode\":\"movielens\",\"users\":%d,\"items\":%d,\"edges\":%lld,"
           "\"barber_q\":%.4f,\"clusters\":%d,\"levels\":%d,\"seconds\":%.3f",
           g->nu, g->ni, (long long)g->nedges, rep.modularity, rep.ncomm, rep.nlevels, secs);
    if (eval_from) printf(",\"peer_barber_q\":%.4f,\"peer_clusters\":%d", peer_q, peer_n);
    printf("}\n");
    louvain_result_free(&rep);
    bigraph_free(g);
    return 0;
}

int main(int argc, char **argv) {
    long synthetic = 0;
    uint64_t seed = 1;
    const char *csv = NULL, *write_to = NULL, *eval_from = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--synthetic") && i + 1 < argc) synthetic = atol(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--tol") && i + 1 < argc) g_tol = atof(argv[++i]);
        else if (!strcmp(argv[i], "--movielens") && i + 1 < argc) csv = argv[++i];
        else if (!strcmp(argv[i], "--write-partition") && i + 1 < argc) write_to = argv[++i];
        else if (!strcmp(argv[i], "--eval-partition") && i + 1 < argc) eval_from = argv[++i];
        else {
            fprintf(stderr, "usage: bench_louvain_scale --synthetic EDGES [--seed S] [--tol T] | "
                            "--movielens CSV [--write-partition F] [--eval-partition F]\n");
            return 2;
        }
    }
    if (synthetic > 0) return run_synthetic(synthetic, seed);
    if (csv) return run_movielens(csv, write_to, eval_from);
    fprintf(stderr, "bench_louvain_scale: give --synthetic or --movielens (see --help)\n");
    return 2;
}
