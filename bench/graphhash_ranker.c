/* graphhash_ranker — MovieLens multi-task AUC with user and item tables at 25% of full rows: full, random hash, double, frequency, GraphHash, DoubleGraphHash, LSH
 *
 * The C half of bench/graphhash_ranker.sh: reads DIR/train.csv,
 * DIR/test.csv, DIR/test_cold.csv (test rows whose movie is not in
 * train.csv) and DIR/vectors.csv (item content vectors), then trains the
 * same MMoE once per table kind of the user and item tables:
 *   full              hash tables with 16x as many rows as ids (about 3% of
 *                     ids collide: the no-sharing reference)
 *   random            hash at 25% of the ids (users, movies)
 *   double            double hashing at 25%
 *   frequency         frequency hashing at 25%
 *   graphhash         GraphHash at 25% (Louvain on the user x movie graph)
 *   double_graphhash  DoubleGraphHash at 25%
 *   lsh               users: MinHash of their movie set; movies: SimHash of
 *                     the content vector (every catalogue movie, cold ones too)
 * Mappings are built from the training rows only (moe_model_maps_build).
 * One JSON line: "auc": {kind: {"like": .., "love": ..}}, the same on the
 * cold rows, and GraphHash's loss vs random's loss against full.
 * Usage: bench_graphhash_ranker DIR NUSERS NITEMS [--epochs N] [--seed N] [--resolution R]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/tensor.h"
#include "moe/model_maps.h"
#include "moe/train.h"

static const char *k_fmt =
    "{\"name\":\"movielens\",\"tables\":[{\"name\":\"user\",\"rows\":%ld,\"dim\":16,\"seed\":1,%s},"
    "{\"name\":\"item\",\"rows\":%ld,\"dim\":16,\"seed\":2,%s},{\"name\":\"genre\",\"rows\":256,\"dim\":8}],"
    "\"features\":{\"categorical\":[{\"name\":\"user\",\"column\":\"userId\",\"table\":\"user\"},"
    "{\"name\":\"item\",\"column\":\"movieId\",\"table\":\"item\"},"
    "{\"name\":\"genres\",\"table\":\"genre\",\"combiner\":\"mean\",\"separator\":\"|\"}],"
    "\"numeric\":[{\"name\":\"year\"}]},"
    "\"tasks\":[{\"name\":\"like\",\"label\":\"rating\",\"threshold\":4.0},"
    "{\"name\":\"love\",\"label\":\"rating\",\"threshold\":4.5}],"
    "\"arch\":{\"type\":\"mmoe\",\"experts\":6,\"expert_hidden\":[64,32],\"tower_hidden\":[32]}}";

typedef struct variant {
    const char *name, *user, *item; /* table kind JSON of the user and item tables */
    int full;
} variant;

static const variant k_variants[] = {
    {"full", "\"hash\":\"hash\"", "\"hash\":\"hash\"", 1},
    {"random", "\"hash\":\"hash\"", "\"hash\":\"hash\"", 0},
    {"double", "\"hash\":\"double\"", "\"hash\":\"double\"", 0},
    {"frequency", "\"hash\":\"frequency\"", "\"hash\":\"frequency\"", 0},
    {"graphhash", "\"hash\":\"graph\",\"pair\":\"item\"", "\"hash\":\"graph\",\"pair\":\"user\"",
     0},
    {"double_graphhash", "\"hash\":\"double_graph\",\"pair\":\"item\"",
     "\"hash\":\"double_graph\",\"pair\":\"user\"", 0},
    {"lsh", "\"hash\":\"lsh\",\"pair\":\"item\"", "\"hash\":\"lsh\",\"vectors\":\"vectors.csv\"",
     0},
};
#define NV (int)(sizeof k_variants / sizeof k_variants[0])

static int run(const variant *v, const char *dir, long nu, long ni, int epochs, uint64_t seed,
               double resolution, moe_eval *all, moe_eval *cold, double *secs, mr_err *e) {
    char js[4096], p[4096];
    long ur = v->full ? 16 * nu : nu / 4, ir = v->full ? 16 * ni : ni / 4;
    snprintf(js, sizeof js, k_fmt, ur, v->user, ir, v->item);
    moe_model *m = NULL;
    moe_dataset *tr = NULL, *te = NULL, *tc = NULL;
    long *ti = NULL, *vi = NULL, nt, nv, *idx = NULL;
    uint64_t t0 = mr_now_ns();
    snprintf(p, sizeof p, "%s/train.csv", dir);
    int rc = moe_model_from_json(&m, js, seed, e);
    if (!rc) rc = moe_dataset_read(&tr, m, p, NULL, 0, e);
    if (!rc) rc = moe_dataset_split(tr, 0.1, 0, seed, &ti, &nt, &vi, &nv, e);
    moe_maps_opts mo = {.resolution = resolution, .seed = seed, .base_dir = dir};
    if (!rc && moe_model_maps_missing(m) && !(rc = moe_model_maps_build(m, tr, ti, nt, &mo, e)))
        rc = moe_dataset_map_rows(tr, m, e);
    snprintf(p, sizeof p, "%s/test.csv", dir);
    if (!rc) rc = moe_dataset_read(&te, m, p, NULL, 0, e);
    snprintf(p, sizeof p, "%s/test_cold.csv", dir);
    if (!rc) rc = moe_dataset_read(&tc, m, p, NULL, 0, e);
    if (rc) goto out;
    for (int t = 0; t < 2; t++)
        if (m->tables[t].gmap)
            fprintf(stderr,
                    "  %s table '%s': %ld rows, %llu mapped ids on %llu rows, max load %llu\n",
                    v->name, m->tables[t].name, m->tables[t].rows,
                    (unsigned long long)m->tables[t].stats.nids,
                    (unsigned long long)m->tables[t].stats.occupied,
                    (unsigned long long)m->tables[t].stats.max_load);
    moe_dataset_fit_numeric(tr, m, ti, nt);
    moe_train_opts o;
    moe_train_defaults(&o);
    o.epochs = epochs;
    o.batch = 256;
    o.lr = 1e-3f;
    o.emb_lr = 1e-3f;
    o.weight_decay = 1e-5f;
    o.patience = 2;
    o.seed = seed;
    o.progress = 0;
    moe_train_result res;
    long nmax = te->n > tc->n ? te->n : tc->n;
    idx = malloc(sizeof(long) * (size_t)nmax);
    for (long i = 0; i < nmax; i++) idx[i] = i;
    if ((rc = moe_train(m, tr, ti, nt, vi, nv, &o, &res, e)) ||
        (rc = moe_evaluate(m, te, idx, te->n, 1024, NULL, all, e)) ||
        (rc = moe_evaluate(m, tc, idx, tc->n, 1024, NULL, cold, e)))
        goto out;
    *secs = (double)(mr_now_ns() - t0) / 1e9;
    fprintf(
        stderr,
        "%-17s user %6ld item %6ld rows | like %.4f love %.4f | cold like %.4f love %.4f | epoch %d, %.1f s\n",
        v->name, ur, ir, all->auc[0], all->auc[1], cold->auc[0], cold->auc[1], res.best_epoch,
        *secs);
out:
    free(idx);
    free(ti);
    free(vi);
    moe_dataset_free(tr);
    moe_dataset_free(te);
    moe_dataset_free(tc);
    moe_model_free(m);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(
            stderr,
            "usage: bench_graphhash_ranker DIR NUSERS NITEMS [--epochs N] [--seed N] [--resolution R]\n");
        return 2;
    }
    long nu = atol(argv[2]), ni = atol(argv[3]);
    int epochs = 20;
    uint64_t seed = 1;
    double resolution = 0; /* auto: clusters close to the table's rows, as the paper sizes tables */
    for (int i = 4; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--epochs")) epochs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--resolution")) resolution = atof(argv[i + 1]);
        else {
            fprintf(stderr, "bench_graphhash_ranker: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (nu < 8 || ni < 8) {
        fprintf(stderr, "bench_graphhash_ranker: NUSERS and NITEMS must be >= 8\n");
        return 2;
    }
    mr_blas_set_threads(1);
    moe_eval all[NV], cold[NV];
    double secs[NV];
    for (int v = 0; v < NV; v++) {
        mr_err e;
        if (run(&k_variants[v], argv[1], nu, ni, epochs, seed, resolution, &all[v], &cold[v],
                &secs[v], &e)) {
            fprintf(stderr, "graphhash_ranker: %s: %s\n", k_variants[v].name, e.msg);
            return 1;
        }
    }
    printf(
        "{\"bench\":\"graphhash_ranker\",\"users\":%ld,\"items\":%ld,\"rows_fraction\":0.25,\"resolution\":%g,",
        nu, ni, resolution);
    for (int c = 0; c < 2; c++) {
        const moe_eval *ev = c ? cold : all;
        printf("\"%s\":{", c ? "auc_cold" : "auc");
        for (int v = 0; v < NV; v++)
            printf("%s\"%s\":{\"like\":%.4f,\"love\":%.4f}", v ? "," : "", k_variants[v].name,
                   ev[v].auc[0], ev[v].auc[1]);
        printf("},");
    }
    /* target: GraphHash loses at most half the AUC random hashing loses vs full */
    printf("\"loss_vs_full\":{");
    for (int t = 0; t < 2; t++) {
        double lr = all[0].auc[t] - all[1].auc[t], lg = all[0].auc[t] - all[4].auc[t];
        printf("%s\"%s\":{\"random\":%.4f,\"graphhash\":%.4f,\"graphhash_over_random\":%.3f}",
               t ? "," : "", t ? "love" : "like", lr, lg, lr > 0 ? lg / lr : -1.0);
    }
    printf("},\"seconds\":{");
    for (int v = 0; v < NV; v++) printf("%s\"%s\":%.1f", v ? "," : "", k_variants[v].name, secs[v]);
    printf("}}\n");
    return 0;
}
