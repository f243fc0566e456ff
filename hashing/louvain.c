/* louvain.c — Louvain on Barber's bipartite modularity (see louvain.h).
 *
 * The working graph (lgraph) is symmetric CSR over all nodes, users first,
 * each node carrying its user-side degree k, item-side degree d and the
 * weight of user-item edges inside it (self). Level 0 is the bigraph with
 * k = 0 for items and d = 0 for users; later levels are aggregates. Weights
 * are read from the level-0 floats (or 1) or the aggregates' doubles.
 *
 * Memory at level 0: 2E int32 neighbours (+ 2E floats when weighted) +
 * O(n) doubles; 10M edges ~ 80-160 MB. A pass is O(E) at most, with a
 * scatter array indexed by community and a list of the communities
 * touched; after the first pass only nodes with a neighbour that moved
 * since they were last placed are revisited (the others cannot gain),
 * which cuts the later passes to a fraction of E.
 */
#include "hashing/louvain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/rng.h"

#define LOUVAIN_EPS 1e-10 /* gains below this (in weight units) are noise */

typedef struct lgraph {
    int32_t n;       /* nodes */
    int64_t *off;    /* (n + 1) */
    int32_t *adj;    /* (off[n]) neighbours, no self entries */
    const float *wf; /* (off[n]) level-0 weights, or NULL */
    double *wd;      /* (off[n]) aggregate weights, or NULL (then wf or 1) */
    float *wf_own;   /* level-0 copy owned here (when weighted) */
    double *k, *d;   /* (n) user-side and item-side degrees */
    double *self;    /* (n) internal weight */
} lgraph;

static inline double lg_w(const lgraph *g, int64_t j) {
    return g->wd ? g->wd[j] : g->wf ? (double)g->wf[j] : 1.0;
}

static void lgraph_free(lgraph *g) {
    free(g->off);
    free(g->adj);
    free(g->wd);
    free(g->wf_own);
    free(g->k);
    free(g->d);
    free(g->self);
    memset(g, 0, sizeof *g);
}

static int lgraph_from_bigraph(lgraph *g, const bigraph *b) {
    int32_t nu = b->nu, ni = b->ni;
    int64_t E = b->nedges;
    memset(g, 0, sizeof *g);
    g->n = nu + ni;
    g->off = malloc(((size_t)g->n + 1) * sizeof *g->off);
    g->adj = malloc((size_t)(2 * E) * sizeof *g->adj);
    g->k = calloc((size_t)g->n, sizeof *g->k);
    g->d = calloc((size_t)g->n, sizeof *g->d);
    g->self = calloc((size_t)g->n, sizeof *g->self);
    if (b->uw) g->wf = g->wf_own = malloc((size_t)(2 * E) * sizeof *g->wf_own);
    if (!g->off || !g->adj || !g->k || !g->d || !g->self || (b->uw && !g->wf_own)) {
        lgraph_free(g);
        return MR_ENOMEM;
    }
    for (int32_t u = 0; u <= nu; u++) g->off[u] = b->uoff[u];
    for (int32_t i = 1; i <= ni; i++) g->off[nu + i] = E + b->ioff[i];
    for (int64_t j = 0; j < E; j++) {
        g->adj[j] = nu + b->uadj[j];
        g->adj[E + j] = b->iadj[j];
        if (b->uw) {
            g->wf_own[j] = b->uw[j];
            g->wf_own[E + j] = b->iw[j];
        }
    }
    for (int32_t u = 0; u < nu; u++) g->k[u] = b->du[u];
    for (int32_t i = 0; i < ni; i++) g->d[nu + i] = b->di[i];
    return 0;
}

/* Community state of one level. */
typedef struct lstate {
    int32_t *comm;     /* (n) community of each node */
    double *K, *D, *E; /* (n) per community: user degree, item degree, internal weight */
    int32_t *size;     /* (n) members per community */
    int32_t *freeids;  /* (n) stack of empty community ids */
    int32_t nfree;
    double *nw;       /* (n) scatter: weight from the node to each community */
    int32_t *touched; /* (n) communities with nw != 0 */
} lstate;

static double lstate_term(const lstate *s, int32_t c, double gm) {
    return s->E[c] - gm * s->K[c] * s->D[c];
}

/* One level of local moving. Returns moves, or -1 on allocation failure. */
static int64_t louvain_local(const lgraph *g, lstate *s, double m, double gamma, mr_rng *rng,
                             int max_passes, double tol, double *qacc, int *passes_out) {
    int32_t n = g->n;
    double gm = gamma / m;
    uint32_t *order = malloc((size_t)n * sizeof *order);
    unsigned char *active = malloc((size_t)n);
    if (!order || !active) {
        free(order);
        free(active);
        return -1;
    }
    for (int32_t x = 0; x < n; x++) {
        order[x] = (uint32_t)x;
        active[x] = 1;
    }
    mr_rng_shuffle(rng, order, n);
    int64_t moves = 0;
    int pass = 0;
    while (pass < max_passes) {
        pass++;
        double before = *qacc;
        int64_t pass_moves = 0;
        for (int32_t oi = 0; oi < n; oi++) {
            int32_t x = (int32_t)order[oi], a = s->comm[x], nt = 0;
            if (!active[x]) continue; /* no neighbour moved since x was last placed */
            active[x] = 0;
            for (int64_t j = g->off[x]; j < g->off[x + 1]; j++) {
                int32_t c = s->comm[g->adj[j]];
                if (s->nw[c] == 0.0) s->touched[nt++] = c;
                s->nw[c] += lg_w(g, j);
            }
            double kx = g->k[x], dx = g->d[x], sx = g->self[x], wa = s->nw[a];
            /* Take x out of a; x alone then contributes sx - gm kx dx. */
            double old_a = lstate_term(s, a, gm);
            s->E[a] -= sx + wa;
            s->K[a] -= kx;
            s->D[a] -= dx;
            s->size[a]--;
            *qacc += lstate_term(s, a, gm) - old_a + (sx - gm * kx * dx);
            int32_t best = a;
            double best_gain = wa - gm * (s->K[a] * dx + kx * s->D[a]);
            for (int32_t t = 0; t < nt; t++) {
                int32_t c = s->touched[t];
                if (c == a) continue;
                double gain = s->nw[c] - gm * (s->K[c] * dx + kx * s->D[c]);
                if (gain > best_gain + LOUVAIN_EPS) {
                    best_gain = gain;
                    best = c;
                }
            }
            if (best_gain < -LOUVAIN_EPS) { /* better alone, in an empty community */
                best_gain = 0.0;
                best = s->size[a] == 0 ? a : s->freeids[--s->nfree];
            }
            if (s->size[a] == 0 && best != a) s->freeids[s->nfree++] = a;
            double old_b = lstate_term(s, best, gm);
            double wb = best == a ? wa : (s->size[best] ? s->nw[best] : 0.0);
            s->E[best] += sx + wb;
            s->K[best] += kx;
            s->D[best] += dx;
            s->size[best]++;
            *qacc += lstate_term(s, best, gm) - old_b - (sx - gm * kx * dx);
            s->comm[x] = best;
            if (best != a) {
                pass_moves++;
                for (int64_t j = g->off[x]; j < g->off[x + 1]; j++) active[g->adj[j]] = 1;
            }
            for (int32_t t = 0; t < nt; t++) s->nw[s->touched[t]] = 0.0;
        }
        moves += pass_moves;
        if (pass_moves == 0 || (*qacc - before) / m < tol) break;
    }
    free(order);
    free(active);
    *passes_out = pass;
    return moves;
}

/* Renumber s->comm to 0..nc-1 by first appearance; returns nc. map (n). */
static int32_t louvain_renumber(int32_t *comm, int32_t n, int32_t *map) {
    for (int32_t c = 0; c < n; c++) map[c] = -1;
    int32_t nc = 0;
    for (int32_t x = 0; x < n; x++) {
        if (map[comm[x]] < 0) map[comm[x]] = nc++;
        comm[x] = map[comm[x]];
    }
    return nc;
}

/* Aggregate g by comm (0..nc-1) into h. Scratch: acc (nc) zeroed, touched (nc). */
static int louvain_aggregate(const lgraph *g, const int32_t *comm, int32_t nc, lgraph *h,
                             double *acc, int32_t *touched) {
    memset(h, 0, sizeof *h);
    h->n = nc;
    int64_t *moff = calloc((size_t)nc + 1, sizeof *moff);
    int32_t *mem = malloc((size_t)g->n * sizeof *mem);
    h->off = malloc(((size_t)nc + 1) * sizeof *h->off);
    h->adj = malloc((size_t)(g->off[g->n] ? g->off[g->n] : 1) * sizeof *h->adj);
    h->wd = malloc((size_t)(g->off[g->n] ? g->off[g->n] : 1) * sizeof *h->wd);
    h->k = calloc((size_t)nc, sizeof *h->k);
    h->d = calloc((size_t)nc, sizeof *h->d);
    h->self = calloc((size_t)nc, sizeof *h->self);
    if (!moff || !mem || !h->off || !h->adj || !h->wd || !h->k || !h->d || !h->self) {
        free(moff);
        free(mem);
        lgraph_free(h);
        return MR_ENOMEM;
    }
    for (int32_t x = 0; x < g->n; x++) moff[comm[x] + 1]++;
    for (int32_t c = 0; c < nc; c++) moff[c + 1] += moff[c];
    for (int32_t x = 0; x < g->n; x++) mem[moff[comm[x]]++] = x;
    for (int32_t c = nc; c > 0; c--) moff[c] = moff[c - 1];
    moff[0] = 0;
    int64_t pos = 0;
    for (int32_t c = 0; c < nc; c++) {
        h->off[c] = pos;
        int32_t nt = 0;
        double inner = 0.0;
        for (int64_t t = moff[c]; t < moff[c + 1]; t++) {
            int32_t x = mem[t];
            h->k[c] += g->k[x];
            h->d[c] += g->d[x];
            h->self[c] += g->self[x];
            for (int64_t j = g->off[x]; j < g->off[x + 1]; j++) {
                int32_t cy = comm[g->adj[j]];
                if (cy == c) {
                    inner += lg_w(g, j);
                    continue;
                }
                if (acc[cy] == 0.0) touched[nt++] = cy;
                acc[cy] += lg_w(g, j);
            }
        }
        h->self[c] += inner / 2; /* symmetric adjacency saw each inner edge twice */
        for (int32_t t = 0; t < nt; t++) {
            h->adj[pos] = touched[t];
            h->wd[pos++] = acc[touched[t]];
            acc[touched[t]] = 0.0;
        }
    }
    h->off[nc] = pos;
    free(moff);
    free(mem);
    int32_t *adj2 = realloc(h->adj, (size_t)(pos ? pos : 1) * sizeof *adj2);
    double *wd2 = realloc(h->wd, (size_t)(pos ? pos : 1) * sizeof *wd2);
    if (adj2) h->adj = adj2;
    if (wd2) h->wd = wd2;
    return 0;
}

louvain_params louvain_params_default(void) {
    return (louvain_params){.resolution = 1.0,
                            .seed = 0,
                            .max_levels = LOUVAIN_MAX_LEVELS,
                            .max_passes = 64,
                            .tol = 1e-7};
}

static int louvain_cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int louvain_size_stats(louvain_result *r, int64_t n) {
    int64_t *sz = calloc((size_t)r->ncomm, sizeof *sz);
    if (!sz) return MR_ENOMEM;
    for (int64_t x = 0; x < n; x++) sz[r->comm[x]]++;
    int64_t singles = 0;
    for (int32_t c = 0; c < r->ncomm; c++) singles += sz[c] == 1;
    qsort(sz, (size_t)r->ncomm, sizeof *sz, louvain_cmp_i64);
    r->size_min = sz[0];
    r->size_max = sz[r->ncomm - 1];
    r->size_median = sz[r->ncomm / 2];
    r->size_p90 = sz[(int64_t)(0.9 * (double)(r->ncomm - 1))];
    r->singletons = singles;
    r->size_mean = (double)n / r->ncomm;
    free(sz);
    return 0;
}

void louvain_result_free(louvain_result *r) {
    if (!r) return;
    free(r->comm);
    r->comm = NULL;
}

static void lstate_free(lstate *s) {
    free(s->comm);
    free(s->K);
    free(s->D);
    free(s->E);
    free(s->size);
    free(s->freeids);
    free(s->nw);
    free(s->touched);
}

/* Singleton communities over g. */
static int lstate_init(lstate *s, const lgraph *g) {
    size_t n = (size_t)g->n;
    memset(s, 0, sizeof *s);
    s->comm = malloc(n * sizeof *s->comm);
    s->K = malloc(n * sizeof *s->K);
    s->D = malloc(n * sizeof *s->D);
    s->E = malloc(n * sizeof *s->E);
    s->size = malloc(n * sizeof *s->size);
    s->freeids = malloc(n * sizeof *s->freeids);
    s->nw = calloc(n, sizeof *s->nw);
    s->touched = malloc(n * sizeof *s->touched);
    if (!s->comm || !s->K || !s->D || !s->E || !s->size || !s->freeids || !s->nw || !s->touched) {
        lstate_free(s);
        return MR_ENOMEM;
    }
    for (int32_t x = 0; x < g->n; x++) {
        s->comm[x] = x;
        s->K[x] = g->k[x];
        s->D[x] = g->d[x];
        s->E[x] = g->self[x];
        s->size[x] = 1;
    }
    return 0;
}

int louvain_run(const bigraph *b, const louvain_params *p, louvain_result *out, mr_err *e) {
    memset(out, 0, sizeof *out);
    louvain_params P = p ? *p : louvain_params_default();
    if (!(P.resolution > 0.0) || !isfinite(P.resolution))
        return mr_err_set(e, MR_EINVAL, "louvain: resolution must be > 0 (got %g)", P.resolution);
    if (P.max_levels <= 0 || P.max_levels > LOUVAIN_MAX_LEVELS) P.max_levels = LOUVAIN_MAX_LEVELS;
    if (P.max_passes <= 0) P.max_passes = 64;
    if (!(P.tol > 0.0)) P.tol = 1e-7;
    if (!b || b->nedges <= 0 || !(b->total_w > 0.0))
        return mr_err_set(e, MR_EINVAL, "louvain: empty graph");
    int64_t n0 = (int64_t)b->nu + b->ni;
    if (n0 >= INT32_MAX) return mr_err_set(e, MR_EINVAL, "louvain: too many nodes");
    double m = b->total_w;
    lgraph g;
    lstate s = {0};
    int32_t *map = NULL;
    int rc = 0;
    if (lgraph_from_bigraph(&g, b)) return mr_err_set(e, MR_ENOMEM, "louvain: out of memory");
    out->comm = malloc((size_t)n0 * sizeof *out->comm);
    map = malloc((size_t)n0 * sizeof *map);
    if (!out->comm || !map) goto nomem;
    for (int64_t x = 0; x < n0; x++) out->comm[x] = (int32_t)x;
    mr_rng rng;
    mr_rng_seed(&rng, P.seed);
    double gm = P.resolution / m;
    for (int lv = 0; lv < P.max_levels; lv++) {
        uint64_t t0 = mr_now_ns();
        if (lstate_init(&s, &g)) goto nomem;
        double qacc = 0.0;
        for (int32_t c = 0; c < g.n; c++) qacc += lstate_term(&s, c, gm);
        int passes = 0;
        int64_t moves = louvain_local(&g, &s, m, P.resolution, &rng, P.max_passes, P.tol, &qacc,
                                      &passes);
        if (moves < 0) goto nomem;
        int32_t nc = louvain_renumber(s.comm, g.n, map);
        for (int64_t x = 0; x < n0; x++) out->comm[x] = s.comm[out->comm[x]];
        louvain_level *L = &out->level[out->nlevels++];
        *L = (louvain_level){.modularity = qacc / m, .ncomm = nc, .passes = passes, .moves = moves};
        out->modularity = L->modularity;
        out->ncomm = nc;
        int done = moves == 0 || nc == g.n || lv + 1 == P.max_levels;
        if (!done) {
            lgraph h;
            /* s.nw is all zero again and has room for nc <= n entries. */
            if (louvain_aggregate(&g, s.comm, nc, &h, s.nw, s.touched)) goto nomem;
            lgraph_free(&g);
            g = h;
        }
        lstate_free(&s);
        memset(&s, 0, sizeof s);
        L->seconds = (double)(mr_now_ns() - t0) / 1e9;
        if (P.on_level) P.on_level(out->nlevels - 1, L, P.ctx);
        if (done) break;
    }
    /* Final numbering: first appearance over users then items. */
    out->ncomm = louvain_renumber(out->comm, (int32_t)n0, map);
    if (louvain_size_stats(out, n0)) goto nomem;
    goto done;
nomem:
    rc = mr_err_set(e, MR_ENOMEM, "louvain: out of memory (%d users, %d items, %lld edges)", b->nu,
                    b->ni, (long long)b->nedges);
    louvain_result_free(out);
done:
    lstate_free(&s);
    lgraph_free(&g);
    free(map);
    return rc;
}

int louvain_modularity(const bigraph *g, const int32_t *comm, int32_t ncomm, double resolution,
                       double *q, mr_err *e) {
    int32_t nu = g->nu, ni = g->ni;
    for (int64_t x = 0; x < (int64_t)nu + ni; x++)
        if (comm[x] < 0 || comm[x] >= ncomm)
            return mr_err_set(e, MR_EINVAL,
                              "modularity: node %lld has community %d outside "
                              "[0, %d)",
                              (long long)x, comm[x], ncomm);
    double *K = calloc((size_t)ncomm, sizeof *K), *D = calloc((size_t)ncomm, sizeof *D);
    if (!K || !D) {
        free(K);
        free(D);
        return mr_err_set(e, MR_ENOMEM, "modularity: out of memory");
    }
    double inner = 0.0, m = g->total_w;
    for (int32_t u = 0; u < nu; u++) {
        K[comm[u]] += g->du[u];
        for (int64_t k = g->uoff[u]; k < g->uoff[u + 1]; k++)
            if (comm[nu + g->uadj[k]] == comm[u]) inner += bigraph_uweight(g, k);
    }
    for (int32_t i = 0; i < ni; i++) D[comm[nu + i]] += g->di[i];
    double null = 0.0;
    for (int32_t c = 0; c < ncomm; c++) null += K[c] * D[c];
    *q = (inner - resolution * null / m) / m;
    free(K);
    free(D);
    return 0;
}
