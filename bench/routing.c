/* routing — MovieLens genre experts: routed top-p vs all experts vs one global index, recall@100 of held-out next items and cost
 *
 * Data: ../shared/data/movielens.csv (bench/routing.sh finds or makes it),
 * or --data synthetic (16 domains x 1000 items, see prep_synthetic).
 * Each user's last --holdout ratings (by time) are held out; implicit ALS
 * (Hu, Koren, Volinsky 2008) on the rest gives user and item embeddings.
 * Items are split into genre experts by their most specific genre (the
 * rarest of its genres; genres under --min-genre items go to "Other"), one
 * FAISS "IDMap,Flat" inner-product retriever each, plus the popularity
 * expert (train counts) as the always-on fallback. One more Flat index
 * holds every item: the global baseline. Pilots come from
 * router_build_pilots, either from items (each expert's item embeddings)
 * or from users (each training user labelled with the expert holding most
 * of their recent training items).
 *
 * Per user: query = the user's embedding, exclusions = training items,
 * k = 100. Reported per mode: recall@100 of the held-out items, cost =
 * vectors in the searched experts (router_result.cost) and mean latency.
 * Experts are merged with ROUTER_MERGE_RAW by default (they share one
 * embedding space), so "all experts" equals the global index; the
 * popularity fallback joins only with --fallback (which needs --merge norm
 * or rrf: popularity counts are not on the inner-product scale; note that
 * NORM makes the all-experts baseline itself weaker than the global index,
 * so compare against "global" too). For each top-p the line
 * also gives recall_no_budgets: the same experts merged by score without
 * the per-expert budgets (a diagnostic of the budget rule's cost).
 * --embeddings bpr replaces ALS by BPR matrix factorisation (moe/bpr.h,
 * what `moerec index embeddings` trains; 20 epochs, defaults otherwise);
 * --experts kmeans replaces the genre experts by as many k-means clusters
 * of the item embeddings (Lloyd, L2, 25 iterations, seeded farthest-point
 * start), named km_<n>.
 * Usage: bench_routing --csv F [--holdout N] [--factors F] [--iters N]
 *        [--temperature T] [--max-experts M] [--pilots items|users]
 *        [--merge raw|norm|rrf] [--fallback] [--data movielens|synthetic]
 *        [--embeddings als|bpr] [--experts genre|kmeans]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/movielens.h"
#include "common/clock.h"
#include "common/rng.h"
#include "common/tensor.h"
#include "common/threadpool.h"
#include "index/retrieval/retr_faiss.h"
#include "index/retrieval/retr_pop.h"
#include "index/retrieval/router.h"
#include "moe/bpr.h"

#define KRET 100
#define MAXG 24

typedef struct rating {
    int user, item;
    int64_t ts;
} rating;

/* ---- loading: ratings + per-item genre bit masks ---------------------- */

static int col_of(char **f, int nf, const char *name) {
    for (int j = 0; j < nf; j++)
        if (!strcmp(f[j], name)) return j;
    return -1;
}

static int cmp_rating(const void *a, const void *b) {
    const rating *x = a, *y = b;
    if (x->user != y->user) return x->user - y->user;
    return (x->ts > y->ts) - (x->ts < y->ts);
}

static char gnames[MAXG][32];
static int ngenres;

static int genre_id(const char *g) {
    for (int i = 0; i < ngenres; i++)
        if (!strcmp(gnames[i], g)) return i;
    if (ngenres == MAXG) return MAXG - 1;
    snprintf(gnames[ngenres], sizeof gnames[0], "%s", g);
    return ngenres++;
}

/* Returns ratings; fills item genre masks (indexed by dense item). */
static rating *load(const char *path, int *nr, int *nu, int *ni, unsigned **gm) {
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "routing: cannot open %s\n", path);
        exit(1);
    }
    char line[4096], *f[16];
    if (!fgets(line, sizeof line, fp)) exit(1);
    int nf = ml_split(line, f, 16);
    int cu = col_of(f, nf, "userId"), ci = col_of(f, nf, "movieId"), cg = col_of(f, nf, "genres"),
        ct = col_of(f, nf, "timestamp");
    if (cu < 0 || ci < 0 || cg < 0 || ct < 0) {
        fprintf(stderr, "routing: %s lacks userId/movieId/genres/timestamp\n", path);
        exit(1);
    }
    int cap = 1 << 17, n = 0, maxu = 0;
    rating *r = malloc((size_t)cap * sizeof *r);
    int *dense = calloc(1 << 20, sizeof *dense); /* movieId -> dense + 1 */
    unsigned *mask = calloc(1 << 16, sizeof *mask);
    int nitems = 0;
    while (fgets(line, sizeof line, fp)) {
        nf = ml_split(line, f, 16);
        if (nf <= cu || nf <= ci || nf <= cg || nf <= ct) continue;
        long mid = strtol(f[ci], NULL, 10);
        if (mid < 0 || mid >= (1 << 20)) continue;
        if (!dense[mid]) {
            dense[mid] = ++nitems;
            unsigned m = 0;
            for (char *g = strtok(f[cg], "|"); g; g = strtok(NULL, "|")) m |= 1u << genre_id(g);
            mask[nitems - 1] = m;
        }
        if (n == cap) r = realloc(r, (size_t)(cap *= 2) * sizeof *r);
        r[n].user = (int)strtol(f[cu], NULL, 10);
        r[n].item = dense[mid] - 1;
        r[n].ts = strtoll(f[ct], NULL, 10);
        if (r[n].user > maxu) maxu = r[n].user;
        n++;
    }
    fclose(fp);
    free(dense);
    qsort(r, (size_t)n, sizeof *r, cmp_rating);
    *nr = n;
    *nu = maxu + 1;
    *ni = nitems;
    *gm = mask;
    return r;
}

/* ---- implicit ALS ------------------------------------------------------- */

/* Solve A x = b for symmetric positive definite A (f, f), in place. */
static void chol_solve(double *A, double *b, int f) {
    for (int j = 0; j < f; j++) {
        double s = A[j * f + j];
        for (int k = 0; k < j; k++) s -= A[j * f + k] * A[j * f + k];
        A[j * f + j] = sqrt(s > 1e-12 ? s : 1e-12);
        for (int i = j + 1; i < f; i++) {
            double t = A[i * f + j];
            for (int k = 0; k < j; k++) t -= A[i * f + k] * A[j * f + k];
            A[i * f + j] = t / A[j * f + j];
        }
    }
    for (int i = 0; i < f; i++) {
        double t = b[i];
        for (int k = 0; k < i; k++) t -= A[i * f + k] * b[k];
        b[i] = t / A[i * f + i];
    }
    for (int i = f - 1; i >= 0; i--) {
        double t = b[i];
        for (int k = i + 1; k < f; k++) t -= A[k * f + i] * b[k];
        b[i] = t / A[i * f + i];
    }
}

/* One half-step: X (nx, f) from Y (ny, f) given, for each x, its list of
 * y's (CSR: start (nx + 1), idx). Confidence 1 + alpha on positives. */
static void als_half(float *X, const float *Y, int nx, int ny, int f, const int *start,
                     const int *idx, float alpha, float lambda) {
    double *G = calloc((size_t)f * f, sizeof *G), *A = malloc((size_t)f * f * sizeof *A);
    double *b = malloc((size_t)f * sizeof *b);
    for (int y = 0; y < ny; y++) /* G = Y^T Y */
        for (int i = 0; i < f; i++)
            for (int j = 0; j < f; j++) G[i * f + j] += (double)Y[y * f + i] * Y[y * f + j];
    for (int x = 0; x < nx; x++) {
        if (start[x] == start[x + 1]) {
            memset(X + (size_t)x * f, 0, sizeof(float) * f);
            continue;
        }
        memcpy(A, G, sizeof(double) * f * f);
        memset(b, 0, sizeof(double) * f);
        for (int i = 0; i < f; i++) A[i * f + i] += lambda;
        for (int p = start[x]; p < start[x + 1]; p++) {
            const float *v = Y + (size_t)idx[p] * f;
            for (int i = 0; i < f; i++) {
                b[i] += (1.0 + alpha) * v[i];
                for (int j = 0; j < f; j++) A[i * f + j] += alpha * (double)v[i] * v[j];
            }
        }
        chol_solve(A, b, f);
        for (int i = 0; i < f; i++) X[(size_t)x * f + i] = (float)b[i];
    }
    free(G);
    free(A);
    free(b);
}

/* CSR of pairs (a[i] -> b[i]) with na rows. */
static void csr(const int *a, const int *b, int n, int na, int **start, int **idx) {
    *start = calloc((size_t)na + 1, sizeof **start);
    *idx = malloc((size_t)(n ? n : 1) * sizeof **idx);
    for (int i = 0; i < n; i++) (*start)[a[i] + 1]++;
    for (int i = 0; i < na; i++) (*start)[i + 1] += (*start)[i];
    int *fill = malloc((size_t)na * sizeof *fill);
    memcpy(fill, *start, (size_t)na * sizeof *fill);
    for (int i = 0; i < n; i++) (*idx)[fill[a[i]]++] = b[i];
    free(fill);
}

/* ---- the two catalogues ----------------------------------------------- */

typedef struct world {
    int nr, nu, ni, nexp, f;
    rating *r;                           /* (nr) by user, then time */
    int *ustart, *ntrain;                /* (nu + 1), (nu): first rating, training count */
    float *U, *V;                        /* (nu, f) user queries, (ni, f) item embeddings */
    int *expert_of;                      /* (ni) */
    char ename[MAXG + 1][RETR_NAME_MAX]; /* expert names */
} world;

static int g_bpr, g_kmeans; /* --embeddings bpr, --experts kmeans */

/* expert_of[i] = nearest of k centroids of V (n, f): Lloyd's k-means, the
 * first centre item 0, each next the item farthest from the chosen ones. */
static void kmeans_experts(const float *V, int n, int f, int k, int *expert_of) {
    float *c = mr_floats_alloc((size_t)k * f), *dmin = mr_floats_alloc((size_t)n);
    double *sum = calloc((size_t)k * f, sizeof *sum);
    int *cnt = calloc((size_t)k, sizeof *cnt);
    memcpy(c, V, sizeof(float) * f);
    for (int i = 0; i < n; i++) dmin[i] = INFINITY;
    for (int j = 1; j < k; j++) {
        int far = 0;
        for (int i = 0; i < n; i++) {
            float d = 0;
            for (int q = 0; q < f; q++)
                d += (V[(size_t)i * f + q] - c[(size_t)(j - 1) * f + q]) *
                     (V[(size_t)i * f + q] - c[(size_t)(j - 1) * f + q]);
            if (d < dmin[i]) dmin[i] = d;
            if (dmin[i] > dmin[far]) far = i;
        }
        memcpy(c + (size_t)j * f, V + (size_t)far * f, sizeof(float) * f);
    }
    for (int it = 0; it < 25; it++) {
        memset(sum, 0, sizeof *sum * (size_t)k * f);
        memset(cnt, 0, sizeof *cnt * (size_t)k);
        for (int i = 0; i < n; i++) {
            int best = 0;
            float bd = INFINITY;
            for (int j = 0; j < k; j++) {
                float d = 0;
                for (int q = 0; q < f; q++)
                    d += (V[(size_t)i * f + q] - c[(size_t)j * f + q]) *
                         (V[(size_t)i * f + q] - c[(size_t)j * f + q]);
                if (d < bd) bd = d, best = j;
            }
            expert_of[i] = best;
            cnt[best]++;
            for (int q = 0; q < f; q++) sum[(size_t)best * f + q] += V[(size_t)i * f + q];
        }
        for (int j = 0; j < k; j++)
            for (int q = 0; cnt[j] && q < f; q++)
                c[(size_t)j * f + q] = (float)(sum[(size_t)j * f + q] / cnt[j]);
    }
    mr_floats_free(c);
    mr_floats_free(dmin);
    free(sum);
    free(cnt);
}

/* MovieLens: time split, implicit ALS (or BPR), genre (or k-means) experts. */
static void prep_movielens(world *w, const char *path, int holdout, int f, int iters) {
    int nr, nu, ni;
    unsigned *gm;
    rating *r = load(path, &nr, &nu, &ni, &gm);
    int *ustart = calloc((size_t)nu + 1, sizeof *ustart),
        *ntrain = calloc((size_t)nu, sizeof *ntrain);
    for (int i = 0; i < nr; i++) ustart[r[i].user + 1]++;
    for (int u = 0; u < nu; u++) ustart[u + 1] += ustart[u];
    /* split: users with >= 2 * holdout ratings hold out their last `holdout` */
    int *tu = malloc((size_t)nr * sizeof *tu), *ti = malloc((size_t)nr * sizeof *ti), nt = 0;
    for (int u = 0; u < nu; u++) {
        int n = ustart[u + 1] - ustart[u];
        ntrain[u] = n >= 2 * holdout ? n - holdout : n;
        for (int i = 0; i < ntrain[u]; i++) {
            tu[nt] = u;
            ti[nt++] = r[ustart[u] + i].item;
        }
    }
    fprintf(stderr, "routing: %d ratings, %d users, %d items, %d genres, %d train\n", nr, nu, ni,
            ngenres, nt);

    /* implicit ALS */
    uint64_t t0 = mr_now_ns();
    int *us, *uidx, *is, *iidx;
    csr(tu, ti, nt, nu, &us, &uidx);
    csr(ti, tu, nt, ni, &is, &iidx);
    float *U = mr_floats_alloc((size_t)nu * f), *V = mr_floats_alloc((size_t)ni * f);
    mr_rng g;
    mr_rng_seed(&g, 17);
    mr_rng_fill_normal(&g, V, (long)ni * f, 0.1f);
    for (int it = 0; it < iters; it++) {
        als_half(U, V, nu, ni, f, us, uidx, 10.0f, 0.1f);
        als_half(V, U, ni, nu, f, is, iidx, 10.0f, 0.1f);
    }
    fprintf(stderr, "routing: ALS f=%d, %d iterations in %.1f s\n", f, iters,
            (mr_now_ns() - t0) / 1e9);
    if (g_bpr) { /* the vectors `moerec index embeddings` trains, on the same training pairs */
        bpr_opts bo;
        bpr_defaults(&bo);
        bo.dim = f;
        mr_pool *bp = mr_pool_create(0);
        mr_err be;
        t0 = mr_now_ns();
        if (bpr_train(tu, ti, nt, nu, ni, &bo, bp, U, V, &be)) {
            fprintf(stderr, "routing: %s\n", be.msg);
            exit(1);
        }
        mr_pool_free(bp);
        fprintf(stderr, "routing: BPR f=%d, %d epochs in %.1f s\n", f, bo.epochs,
                (mr_now_ns() - t0) / 1e9);
    }

    /* experts: most specific genre (rarest among the item's genres) */
    int gcount[MAXG] = {0};
    for (int i = 0; i < ni; i++)
        for (int k = 0; k < ngenres; k++) gcount[k] += (gm[i] >> k) & 1;
    int *expert_of = malloc((size_t)ni * sizeof *expert_of);
    int gexp[MAXG], nexp = 0, other = -1;
    for (int k = 0; k < ngenres; k++) gexp[k] = -1;
    int min_genre = 150;
    for (int i = 0; i < ni; i++) {
        int best = -1;
        for (int k = 0; k < ngenres; k++)
            if (((gm[i] >> k) & 1) && gcount[k] >= min_genre &&
                (best < 0 || gcount[k] < gcount[best]))
                best = k;
        if (best < 0) {
            if (other < 0) other = nexp++;
            expert_of[i] = other;
            continue;
        }
        if (gexp[best] < 0) gexp[best] = nexp++;
        expert_of[i] = gexp[best];
    }
    for (int k = 0; k < ngenres; k++)
        if (gexp[k] >= 0) {
            snprintf(w->ename[gexp[k]], RETR_NAME_MAX, "g_%s", gnames[k]);
            for (char *c = w->ename[gexp[k]]; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                      (*c >= '0' && *c <= '9') || *c == '-'))
                    *c = '_';
        }
    if (other >= 0) snprintf(w->ename[other], RETR_NAME_MAX, "g_Other");
    if (g_kmeans) { /* as many experts, from the embedding space instead of genres */
        kmeans_experts(V, ni, f, nexp, expert_of);
        for (int x = 0; x < nexp; x++) snprintf(w->ename[x], RETR_NAME_MAX, "km_%d", x);
    }
    w->nr = nr;
    w->nu = nu;
    w->ni = ni;
    w->nexp = nexp;
    w->f = f;
    w->r = r;
    w->ustart = ustart;
    w->ntrain = ntrain;
    w->U = U;
    w->V = V;
    w->expert_of = expert_of;
    free(tu);
    free(ti);
}

/* Synthetic multi-domain: D domains with random unit centres c_d; items
 * v = 3 c_d + N(0, I). Half the users live in one domain, half mix two
 * (0.6 / 0.4): query p_u = 3 (mix of centres) + N(0, 0.5^2 I). Each user
 * draws 10 training and `holdout` next items from softmax(p_u . v) over the
 * whole catalogue, so most (not all) land in the user's domains. */
static void prep_synthetic(world *w, int holdout, int f, int domains, int per_domain, int users) {
    mr_rng g;
    mr_rng_seed(&g, 23);
    int ni = domains * per_domain, ntr = 10, per = ntr + holdout;
    float *cent = mr_floats_alloc((size_t)domains * f);
    mr_rng_fill_normal(&g, cent, (long)domains * f, 1.0f);
    for (int d = 0; d < domains; d++) {
        float nrm = mr_l2norm(cent + (size_t)d * f, f);
        for (int t = 0; t < f; t++) cent[(size_t)d * f + t] /= nrm;
    }
    w->V = mr_floats_alloc((size_t)ni * f);
    w->expert_of = malloc((size_t)ni * sizeof *w->expert_of);
    for (int i = 0; i < ni; i++) {
        int d = i / per_domain;
        w->expert_of[i] = d;
        for (int t = 0; t < f; t++)
            w->V[(size_t)i * f + t] = 3 * cent[(size_t)d * f + t] + (float)mr_rng_normal(&g);
    }
    w->U = mr_floats_alloc((size_t)users * f);
    w->r = malloc((size_t)users * per * sizeof *w->r);
    w->ustart = calloc((size_t)users + 1, sizeof *w->ustart);
    w->ntrain = malloc((size_t)users * sizeof *w->ntrain);
    double *p = malloc((size_t)ni * sizeof *p);
    int nr = 0;
    for (int u = 0; u < users; u++) {
        int d1 = (int)mr_rng_below(&g, (uint64_t)domains),
            d2 = (int)mr_rng_below(&g, (uint64_t)domains);
        float a = u % 2 ? 0.6f : 1.0f;
        float *q = w->U + (size_t)u * f;
        for (int t = 0; t < f; t++)
            q[t] = 3 * (a * cent[(size_t)d1 * f + t] + (1 - a) * cent[(size_t)d2 * f + t]) +
                   0.5f * (float)mr_rng_normal(&g);
        double mx = -1e30, sum = 0;
        for (int i = 0; i < ni; i++) {
            p[i] = mr_dot(q, w->V + (size_t)i * f, f);
            if (p[i] > mx) mx = p[i];
        }
        for (int i = 0; i < ni; i++) sum += (p[i] = exp(p[i] - mx));
        w->ustart[u] = nr;
        for (int j = 0; j < per; j++) { /* inverse-CDF draws (repeats allowed) */
            double x = mr_rng_uniform(&g) * sum, c = 0;
            int i = 0;
            while (i < ni - 1 && (c += p[i]) < x) i++;
            w->r[nr++] = (rating){u, i, j};
        }
        w->ntrain[u] = ntr;
    }
    w->ustart[users] = nr;
    w->nr = nr;
    w->nu = users;
    w->ni = ni;
    w->nexp = domains;
    w->f = f;
    for (int d = 0; d < domains; d++) snprintf(w->ename[d], RETR_NAME_MAX, "dom%02d", d);
    free(p);
    mr_floats_free(cent);
}

/* ---- modes --------------------------------------------------------------- */

typedef struct stats {
    double recall, cost, lat_us, experts;
    int users;
} stats;

/* nomerge_quota: diagnostic — search the experts router_route keeps, but
 * merge them by score without the per-expert budgets. */
static void run_mode(mr_router *rt, const float *U, int f, int nu, const int *ustart,
                     const int *ntrain, const rating *r, const router_options *opt, int no_quota,
                     stats *st) {
    mr_arena a;
    mr_arena_init(&a, 1 << 20, 0);
    mr_err e = {0};
    memset(st, 0, sizeof *st);
    int64_t *ex = malloc(4096 * sizeof *ex);
    for (int u = 0; u < nu; u++) {
        int s = ustart[u], nt = ntrain[u], n = ustart[u + 1] - s;
        if (n - nt <= 0) continue;
        int nex = nt < 4096 ? nt : 4096;
        for (int i = 0; i < nex; i++) ex[i] = r[s + nt - 1 - i].item;
        router_query q = {.n_spaces = 1};
        q.vecs[0] = U + (size_t)u * f;
        q.dims[0] = f;
        router_result res;
        router_options o = *opt;
        const char *names[ROUTER_MAX_EXPERTS];
        uint64_t t0 = mr_now_ns();
        if (no_quota) {
            float probs[ROUTER_MAX_EXPERTS];
            int kept[ROUTER_MAX_EXPERTS], nk = 0;
            router_route(rt, q.vecs[0], f, opt->top_p, probs, kept, &e);
            for (int x = 0; x < router_n_experts(rt); x++)
                if (kept[x]) names[nk++] = router_expert_name(rt, x);
            o.mode = ROUTER_MODE_ALL;
            o.experts = names;
            o.n_experts = nk;
        }
        if (router_retrieve(rt, &q, NULL, KRET, ex, nex, &o, &a, &res, &e)) {
            fprintf(stderr, "routing: %s\n", e.msg);
            exit(1);
        }
        st->lat_us += (mr_now_ns() - t0) / 1e3;
        int hit = 0, nh = n - nt;
        for (int h = nt; h < n; h++)
            for (int c = 0; c < res.n; c++)
                if (res.cands[c].id == r[s + h].item) {
                    hit++;
                    break;
                }
        st->recall += (double)hit / (nh < KRET ? nh : KRET);
        st->cost += (double)res.cost;
        st->experts += res.n_searched;
        st->users++;
        mr_arena_reset(&a);
    }
    st->recall /= st->users;
    st->cost /= st->users;
    st->lat_us /= st->users;
    st->experts /= st->users;
    free(ex);
    mr_arena_free(&a);
}

int main(int argc, char **argv) {
    const char *path = NULL, *pilots = "items", *merge = "raw";
    int fallback = 0, synthetic = 0;
    int holdout = 5, f = 32, iters = 10, max_experts = 4;
    float temperature = 0.05f;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--csv") && i + 1 < argc) path = argv[++i];
        else if (!strcmp(argv[i], "--holdout") && i + 1 < argc) holdout = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--factors") && i + 1 < argc) f = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--temperature") && i + 1 < argc)
            temperature = (float)atof(argv[++i]);
        else if (!strcmp(argv[i], "--max-experts") && i + 1 < argc) max_experts = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--pilots") && i + 1 < argc) pilots = argv[++i];
        else if (!strcmp(argv[i], "--merge") && i + 1 < argc) merge = argv[++i];
        else if (!strcmp(argv[i], "--fallback")) fallback = 1;
        else if (!strcmp(argv[i], "--data") && i + 1 < argc)
            synthetic = !strcmp(argv[++i], "synthetic");
        else if (!strcmp(argv[i], "--embeddings") && i + 1 < argc)
            g_bpr = !strcmp(argv[++i], "bpr");
        else if (!strcmp(argv[i], "--experts") && i + 1 < argc)
            g_kmeans = !strcmp(argv[++i], "kmeans");
        else {
            fprintf(stderr, "usage: bench_routing --csv F [--holdout N] [--factors F] [--iters N] "
                            "[--temperature T] [--max-experts M] [--pilots items|users] "
                            "[--merge raw|norm|rrf] [--fallback] [--data movielens|synthetic]\n");
            return 2;
        }
    }
    if (fallback && !strcmp(merge, "raw")) { /* counts vs inner products: not comparable */
        fprintf(stderr, "bench_routing: --fallback needs --merge norm or rrf (popularity scores "
                        "are not on the experts' inner-product scale)\n");
        return 2;
    }
    if (!path && !synthetic) {
        fprintf(stderr, "bench_routing: --csv is required for MovieLens\n");
        return 2;
    }
    mr_blas_set_threads(1);
    world w = {0};
    if (synthetic) prep_synthetic(&w, holdout, f, 16, 1000, 1000);
    else prep_movielens(&w, path, holdout, f, iters);
    int nr = w.nr, nu = w.nu, ni = w.ni, nexp = w.nexp, *ustart = w.ustart, *ntrain = w.ntrain;
    int *expert_of = w.expert_of;
    rating *r = w.r;
    float *U = w.U, *V = w.V;
    int nt = 0;
    for (int u = 0; u < nu; u++) nt += ntrain[u];
    (void)nr;
    mr_err e = {0};
    mr_retr *ex[MAXG + 2];
    int64_t *ids = malloc((size_t)ni * sizeof *ids);
    float *buf = mr_floats_alloc((size_t)ni * f);
    for (int x = 0; x < nexp; x++) {
        retr_faiss_config c = {.name = w.ename[x],
                               .dim = f,
                               .factory = "IDMap,Flat",
                               .metric = RETR_METRIC_IP,
                               .omp_threads = 1};
        if (retr_faiss_create(&ex[x], &c, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        int n = 0;
        for (int i = 0; i < ni; i++)
            if (expert_of[i] == x) {
                memcpy(buf + (size_t)n * f, V + (size_t)i * f, sizeof(float) * f);
                ids[n++] = i;
            }
        if (n && retr_faiss_add(ex[x], buf, ids, n, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
    }
    retr_pop_config pc = {.name = "popular", .half_life_s = 3.0e8};
    retr_pop_create(&ex[nexp], &pc, &e);
    int64_t *pit = malloc((size_t)nt * sizeof *pit), *pts = malloc((size_t)nt * sizeof *pts);
    for (int i = 0, u = 0; u < nu; u++)
        for (int j = 0; j < ntrain[u]; j++, i++) {
            pit[i] = r[ustart[u] + j].item;
            pts[i] = r[ustart[u] + j].ts * 1000;
        }
    retr_pop_add_events(ex[nexp], pit, pts, NULL, nt, &e);
    retr_faiss_config gc = {.name = "global",
                            .dim = f,
                            .factory = "IDMap,Flat",
                            .metric = RETR_METRIC_IP,
                            .omp_threads = 1};
    mr_retr *glob = NULL;
    retr_faiss_create(&glob, &gc, &e);
    for (int i = 0; i < ni; i++) ids[i] = i;
    retr_faiss_add(glob, V, ids, ni, &e);

    mr_pool *pool = mr_pool_create(2);
    router_merge mg = !strcmp(merge, "rrf")    ? ROUTER_MERGE_RRF
                      : !strcmp(merge, "norm") ? ROUTER_MERGE_NORM
                                               : ROUTER_MERGE_RAW;
    router_config rc = {.dim = f,
                        .temperature = temperature,
                        .top_p = 0.5f,
                        .max_experts = max_experts,
                        .fallback = fallback ? "popular" : NULL,
                        .fallback_weight = 0.1f,
                        .merge = mg,
                        .k_max = KRET};
    mr_router *rt = NULL, *rg = NULL;
    if (router_create(&rt, &rc, pool, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    for (int x = 0; x < nexp + fallback; x++) router_add_expert(rt, ex[x], 0, &e);
    router_config gcfg = {.dim = f, .merge = ROUTER_MERGE_RAW, .k_max = KRET};
    router_create(&rg, &gcfg, NULL, &e);
    router_add_expert(rg, glob, 0, &e);

    /* pilots */
    int use_users = !strcmp(pilots, "users");
    if (use_users) { /* each user -> the expert holding most of their last 10 train items */
        int *best = malloc((size_t)nu * sizeof *best);
        for (int u = 0; u < nu; u++) {
            int cnt[MAXG + 1] = {0}, b = -1;
            for (int j = ntrain[u] - 1; j >= 0 && j >= ntrain[u] - 10; j--)
                cnt[expert_of[r[ustart[u] + j].item]]++;
            for (int x = 0; x < nexp; x++)
                if (cnt[x] && (b < 0 || cnt[x] > cnt[b])) b = x;
            best[u] = b;
        }
        if (router_build_pilots(rt, U, best, nu, 2, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        free(best);
    } else {
        if (router_build_pilots(rt, V, expert_of, ni, 4, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
    }

    stats sg, sa, sp[8], sq[8];
    const char *gname[1] = {"global"};
    router_options og = {.experts = gname, .n_experts = 1};
    run_mode(rg, U, f, nu, ustart, ntrain, r, &og, 0, &sg);
    router_options oa = {.mode = ROUTER_MODE_ALL};
    run_mode(rt, U, f, nu, ustart, ntrain, r, &oa, 0, &sa);
    fprintf(stderr, "routing: global  recall@100 %.4f cost %.0f lat %.0f us\n", sg.recall, sg.cost,
            sg.lat_us);
    fprintf(stderr, "routing: all     recall@100 %.4f cost %.0f lat %.0f us (%d experts)\n",
            sa.recall, sa.cost, sa.lat_us, nexp + fallback);
    float ps[8] = {0.2f, 0.4f, 0.6f, 0.8f, 0.95f};
    int np = 5, best = -1;
    for (int p = 0; p < np; p++) {
        router_options op = {.top_p = ps[p]};
        run_mode(rt, U, f, nu, ustart, ntrain, r, &op, 0, &sp[p]);
        run_mode(rt, U, f, nu, ustart, ntrain, r, &op, 1, &sq[p]);
        double rr = sp[p].recall / sa.recall, cr = sp[p].cost / sa.cost;
        fprintf(stderr,
                "routing: top-p %.2f recall@100 %.4f (%.1f%% of all) cost %.0f (%.1f%%) "
                "experts %.2f lat %.0f us; same experts merged without budgets %.4f\n",
                ps[p], sp[p].recall, 100 * rr, sp[p].cost, 100 * cr, sp[p].experts, sp[p].lat_us,
                sq[p].recall);
        if (rr >= 0.95 && cr <= 0.5 && best < 0) best = p;
    }
    printf("{\"bench\":\"routing\",\"embeddings\":\"%s\",\"expert_kind\":\"%s\",",
           g_bpr ? "bpr" : "als", g_kmeans ? "kmeans" : "genre");
    printf("\"data\":\"%s\",\"users\":%d,\"items\":%d,\"experts\":%d,"
           "\"pilots\":\"%s\",\"merge\":\"%s\",\"fallback\":%s,\"temperature\":%.3f,"
           "\"max_experts\":%d,\"k\":%d,"
           "\"global\":{\"recall\":%.4f,\"cost\":%.0f,\"lat_us\":%.1f},"
           "\"all\":{\"recall\":%.4f,\"cost\":%.0f,\"lat_us\":%.1f},\"routed\":[",
           synthetic ? "synthetic" : "movielens", sg.users, ni, nexp + fallback, pilots, merge,
           fallback ? "true" : "false", temperature, max_experts, KRET, sg.recall, sg.cost,
           sg.lat_us, sa.recall, sa.cost, sa.lat_us);
    for (int p = 0; p < np; p++)
        printf("%s{\"top_p\":%.2f,\"recall\":%.4f,\"recall_vs_all\":%.4f,\"cost\":%.0f,"
               "\"cost_vs_all\":%.4f,\"experts\":%.2f,\"lat_us\":%.1f,\"recall_no_budgets\":%.4f}",
               p ? "," : "", ps[p], sp[p].recall, sp[p].recall / sa.recall, sp[p].cost,
               sp[p].cost / sa.cost, sp[p].experts, sp[p].lat_us, sq[p].recall);
    printf("],\"target_met\":%s,\"target_top_p\":", best >= 0 ? "true" : "false");
    if (best >= 0) printf("%.2f}\n", ps[best]);
    else printf("null}\n");
    router_free(rt);
    router_free(rg);
    for (int x = 0; x <= nexp; x++) retr_free(ex[x]);
    retr_free(glob);
    mr_pool_free(pool);
    return 0;
}
