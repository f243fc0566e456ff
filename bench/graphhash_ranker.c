/* graphhash_ranker — MovieLens multi-task AUC with user and item tables at 25% of full rows: full, random hash, double, frequency, GraphHash (as the paper, balanced, with hubs), DoubleGraphHash, LSH
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
 *   graphhash_balanced         GraphHash with the --user-graph / --item-graph
 *                              model.json keys (default: "balance":
 *                              "degree", resolution 1 for users, 20 for
 *                              movies, chosen on the validation split)
 *   double_graphhash_balanced  DoubleGraphHash with the same keys
 *   graphhash_item_balanced    users double hashing, movies balanced GraphHash
 *   graphhash_hubs             graphhash_balanced plus "hubs": --user-hubs
 *                              (default 120 of the 167 user rows, chosen on
 *                              the validation split): the heaviest users
 *                              own a row each
 * Mappings are built from the training rows only (moe_model_maps_build);
 * the training file read again with the mappings attached must give every
 * value the row training used (else the run fails).
 * One JSON line: "auc": {kind: {"like": .., "love": ..}}, the same on the
 * cold rows, and GraphHash's loss vs random's loss against full.
 * Usage: bench_graphhash_ranker DIR NUSERS NITEMS [--epochs N] [--seed N] [--resolution R]
 *        [--variants a,b,..] [--user-graph JSON] [--item-graph JSON] [--user-hubs N]
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
    int tuned; /* graph tables take the --user-graph / --item-graph keys;
                * 2: the user table also "hubs": --user-hubs */
} variant;

#define GU "\"hash\":\"graph\",\"pair\":\"item\""
#define GI "\"hash\":\"graph\",\"pair\":\"user\""
#define DGU "\"hash\":\"double_graph\",\"pair\":\"item\""
#define DGI "\"hash\":\"double_graph\",\"pair\":\"user\""
static const variant k_variants[] = {
    {"full", "\"hash\":\"hash\"", "\"hash\":\"hash\"", 1, 0},
    {"random", "\"hash\":\"hash\"", "\"hash\":\"hash\"", 0, 0},
    {"double", "\"hash\":\"double\"", "\"hash\":\"double\"", 0, 0},
    {"frequency", "\"hash\":\"frequency\"", "\"hash\":\"frequency\"", 0, 0},
    {"graphhash", GU, GI, 0, 0},
    {"double_graphhash", DGU, DGI, 0, 0},
    {"lsh", "\"hash\":\"lsh\",\"pair\":\"item\"", "\"hash\":\"lsh\",\"vectors\":\"vectors.csv\"", 0,
     0},
    {"graphhash_balanced", GU, GI, 0, 1},
    {"double_graphhash_balanced", DGU, DGI, 0, 1},
    {"graphhash_item_balanced", "\"hash\":\"double\"", GI, 0, 1},
    {"graphhash_hubs", GU, GI, 0, 2},
};
#define NV (int)(sizeof k_variants / sizeof k_variants[0])

typedef struct bench_opts {
    int epochs;
    uint64_t seed;
    double resolution;
    const char *user_graph, *item_graph; /* extra model.json keys of graph tables */
    int user_hubs;                       /* graphhash_hubs: the user table's "hubs" */
} bench_opts;

static int is_graph(const char *kind) {
    return strstr(kind, "_graph\"") || strstr(kind, ":\"graph\"");
}

/* The table kind JSON plus, for graph kinds, the extra keys. */
static void kind_json(char *out, size_t n, const char *kind, const char *extra) {
    snprintf(out, n, "%s%s%s", kind, is_graph(kind) && extra[0] ? "," : "",
             is_graph(kind) ? extra : "");
}

static int same_rows(const moe_model *m, const moe_dataset *tr, const char *path, mr_err *e) {
    moe_dataset *d = NULL;
    int rc = moe_dataset_read(&d, m, path, NULL, 0, e);
    for (int f = 0; !rc && f < tr->n_cat; f++) {
        uint32_t n = tr->cat_off[f][tr->n];
        if (d->n != tr->n || d->cat_off[f][d->n] != n ||
            memcmp(d->cat_off[f], tr->cat_off[f], ((size_t)tr->n + 1) * sizeof(uint32_t)) ||
            memcmp(d->cat_rows[f], tr->cat_rows[f], (size_t)n * sizeof(uint32_t)))
            rc = mr_err_set(e, MR_EINTERNAL, "field '%s': rows at train and test differ",
                            m->cat[f].name);
    }
    moe_dataset_free(d);
    return rc;
}

static int run(const variant *v, const char *dir, long nu, long ni, const bench_opts *bo,
               moe_eval *all, moe_eval *cold, double *secs, mr_err *e) {
    char js[4096], p[4096], uk[1024], ik[1024];
    int epochs = bo->epochs;
    uint64_t seed = bo->seed;
    double resolution = bo->resolution;
    long ur = v->full ? 16 * nu : nu / 4, ir = v->full ? 16 * ni : ni / 4;
    char ug[900];
    snprintf(ug, sizeof ug, "%s%s\"hubs\":%d", bo->user_graph, bo->user_graph[0] ? "," : "",
             bo->user_hubs);
    kind_json(uk, sizeof uk, v->user, v->tuned == 2 ? ug : v->tuned ? bo->user_graph : "");
    kind_json(ik, sizeof ik, v->item, v->tuned ? bo->item_graph : "");
    snprintf(js, sizeof js, k_fmt, ur, uk, ir, ik);
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
    /* the rows train learns from are the rows score looks up: the training
     * file read again with the mapping attached (as test.csv is) must give
     * every categorical value the row moe_dataset_map_rows gave it */
    if (!rc) rc = same_rows(m, tr, p, e);
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

/* Position of variant name among the selected ones, or -1. */
static int find_sel(const int *sel, int ns, const char *name) {
    for (int s = 0; s < ns; s++)
        if (!strcmp(k_variants[sel[s]].name, name)) return s;
    return -1;
}

/* "key":{...} for a non-empty extra fragment (it is model.json keys). */
static void print_extra(const char *key, const char *frag) {
    if (frag[0]) printf("\"%s\":{%s},", key, frag);
}

static int find_variant(const char *name) {
    for (int v = 0; v < NV; v++)
        if (!strcmp(k_variants[v].name, name)) return v;
    return -1;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr,
                "usage: bench_graphhash_ranker DIR NUSERS NITEMS [--epochs N] [--seed N] "
                "[--resolution R] [--variants a,b,..] [--user-graph JSON] [--item-graph JSON] "
                "[--user-hubs N]\n");
        return 2;
    }
    long nu = atol(argv[2]), ni = atol(argv[3]);
    /* resolution 0 = auto: clusters close to the table's rows, as the paper sizes tables */
    /* the *_balanced variants' settings, chosen on the validation split
     * (graphhash_ranker.sh --validate; docs/benchmarks.md) */
    bench_opts bo = {.epochs = 20,
                     .seed = 1,
                     .resolution = 0,
                     .user_graph = "\"balance\":\"degree\",\"resolution\":1",
                     .item_graph = "\"balance\":\"degree\",\"resolution\":20",
                     .user_hubs = 120};
    int sel[NV], ns = 0;
    char list[1024];
    size_t ll = 0;
    for (int v = 0; v < NV; v++)
        ll += (size_t)snprintf(list + ll, sizeof list - ll, "%s%s", v ? "," : "",
                               k_variants[v].name);
    for (int i = 4; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--epochs")) bo.epochs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed")) bo.seed = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--resolution")) bo.resolution = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--variants")) snprintf(list, sizeof list, "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "--user-graph")) bo.user_graph = argv[i + 1];
        else if (!strcmp(argv[i], "--item-graph")) bo.item_graph = argv[i + 1];
        else if (!strcmp(argv[i], "--user-hubs")) bo.user_hubs = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_graphhash_ranker: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int v = find_variant(tok);
        if (v < 0 || ns == NV) {
            fprintf(stderr, "bench_graphhash_ranker: unknown or repeated variant %s\n", tok);
            return 2;
        }
        sel[ns++] = v;
    }
    if (nu < 8 || ni < 8) {
        fprintf(stderr, "bench_graphhash_ranker: NUSERS and NITEMS must be >= 8\n");
        return 2;
    }
    mr_blas_set_threads(1);
    moe_eval all[NV], cold[NV];
    double secs[NV];
    for (int s = 0; s < ns; s++) {
        mr_err e;
        const variant *v = &k_variants[sel[s]];
        if (run(v, argv[1], nu, ni, &bo, &all[s], &cold[s], &secs[s], &e)) {
            fprintf(stderr, "graphhash_ranker: %s: %s\n", v->name, e.msg);
            return 1;
        }
    }
    printf("{\"bench\":\"graphhash_ranker\",\"users\":%ld,\"items\":%ld,\"rows_fraction\":0.25,"
           "\"resolution\":%g,",
           nu, ni, bo.resolution);
    print_extra("user_graph", bo.user_graph);
    print_extra("item_graph", bo.item_graph);
    if (find_sel(sel, ns, "graphhash_hubs") >= 0) printf("\"user_hubs\":%d,", bo.user_hubs);
    for (int c = 0; c < 2; c++) {
        const moe_eval *ev = c ? cold : all;
        printf("\"%s\":{", c ? "auc_cold" : "auc");
        for (int s = 0; s < ns; s++)
            printf("%s\"%s\":{\"like\":%.4f,\"love\":%.4f}", s ? "," : "", k_variants[sel[s]].name,
                   ev[s].auc[0], ev[s].auc[1]);
        printf("},");
    }
    /* target: GraphHash loses at most half the AUC random hashing loses vs
     * full; for the paper's GraphHash, the balanced one and the one with hubs */
    int sf = find_sel(sel, ns, "full"), sr = find_sel(sel, ns, "random");
    static const char *const gh[] = {"graphhash", "graphhash_balanced", "graphhash_hubs"};
    if (sf >= 0 && sr >= 0) {
        printf("\"loss_vs_full\":{");
        for (int t = 0; t < 2; t++) {
            double lr = all[sf].auc[t] - all[sr].auc[t];
            printf("%s\"%s\":{\"random\":%.4f", t ? "," : "", t ? "love" : "like", lr);
            for (int k = 0; k < 3; k++) {
                int sg = find_sel(sel, ns, gh[k]);
                if (sg < 0) continue;
                double lg = all[sf].auc[t] - all[sg].auc[t];
                printf(",\"%s\":%.4f,\"%s_over_random\":%.3f", gh[k], lg, gh[k],
                       lr > 0 ? lg / lr : -1.0);
            }
            printf("}");
        }
        printf("},");
    }
    printf("\"seconds\":{");
    for (int s = 0; s < ns; s++)
        printf("%s\"%s\":%.1f", s ? "," : "", k_variants[sel[s]].name, secs[s]);
    printf("}}\n");
    return 0;
}
