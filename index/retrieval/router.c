/* router.c — router setup, pilots, and the routing rule (see router.h).
 *
 * Per-expert score = cosine similarity of the routing vector to the
 * expert's closest pilot; probabilities = softmax(score / temperature). A
 * query equal to a pilot has cosine 1 with it, so with any temperature
 * below the gap to the other experts it routes to that pilot's expert.
 * Experts without pilots (popularity, MinHash) never win the softmax; they
 * serve as the fallback or when the caller names them.
 */
#include "index/retrieval/router_int.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tensor.h"

void router_config_defaults(router_config *c) {
    if (c->temperature == 0) c->temperature = 0.05f;
    if (c->top_p == 0) c->top_p = 0.6f;
    if (c->max_experts == 0) c->max_experts = 3;
    if (c->fallback_weight == 0) c->fallback_weight = 0.1f;
    if (c->rrf_k == 0) c->rrf_k = 60;
    if (c->k_max == 0) c->k_max = RETR_K_MAX;
}

int router_create(mr_router **out, const router_config *cfg, mr_pool *pool, mr_err *e) {
    if (!out || !cfg) return mr_err_set(e, MR_EINVAL, "router_create: NULL argument");
    *out = NULL;
    router_config c = *cfg;
    if (c.dim <= 0 || c.dim > 65536)
        return mr_err_set(e, MR_EINVAL, "router: dim = %d out of range [1, 65536]", c.dim);
    router_config_defaults(&c);
    if (!(c.temperature > 0) || !isfinite(c.temperature))
        return mr_err_set(e, MR_EINVAL, "router: temperature %g must be > 0", c.temperature);
    if (!(c.top_p > 0 && c.top_p <= 1))
        return mr_err_set(e, MR_EINVAL, "router: top_p %g not in (0, 1]", c.top_p);
    if (c.max_experts < 1 || c.max_experts > ROUTER_MAX_EXPERTS)
        return mr_err_set(e, MR_EINVAL, "router: max_experts %d not in [1, %d]", c.max_experts,
                          ROUTER_MAX_EXPERTS);
    if (!(c.fallback_weight >= 0 && c.fallback_weight <= 1))
        return mr_err_set(e, MR_EINVAL, "router: fallback_weight %g not in [0, 1]",
                          c.fallback_weight);
    if (c.merge != ROUTER_MERGE_NORM && c.merge != ROUTER_MERGE_RRF && c.merge != ROUTER_MERGE_RAW)
        return mr_err_set(e, MR_EINVAL, "router: unknown merge %d", (int)c.merge);
    if (c.rrf_k < 1) return mr_err_set(e, MR_EINVAL, "router: rrf_k %d < 1", c.rrf_k);
    if (c.k_max < 1 || c.k_max > RETR_K_MAX)
        return mr_err_set(e, MR_EINVAL, "router: k_max %d not in [1, %d]", c.k_max, RETR_K_MAX);
    if (c.fallback) {
        int rc = retr_check_name(c.fallback, e);
        if (rc) return mr_err_wrap(e, "router fallback");
    }
    mr_router *rt = calloc(1, sizeof *rt);
    if (!rt) return mr_err_set(e, MR_ENOMEM, "router: out of memory");
    rt->cfg = c;
    rt->cfg.fallback = NULL; /* the caller's string may not outlive us */
    if (c.fallback) snprintf(rt->fallback_name, sizeof rt->fallback_name, "%s", c.fallback);
    rt->fallback = -1;
    rt->pool = pool;
    *out = rt;
    return 0;
}

void router_free(mr_router *rt) {
    if (!rt) return;
    for (int i = 0; i < rt->n; i++) mr_floats_free(rt->ex[i].pilots);
    free(rt);
}

int router_n_experts(const mr_router *rt) { return rt ? rt->n : 0; }

const char *router_expert_name(const mr_router *rt, int expert) {
    if (!rt || expert < 0 || expert >= rt->n) return "?";
    return rt->ex[expert].r->name;
}

int router_find(const mr_router *rt, const char *name, mr_err *e) {
    if (!rt || !name) return mr_err_set(e, MR_EINVAL, "router_find: NULL argument");
    for (int i = 0; i < rt->n; i++)
        if (strcmp(rt->ex[i].r->name, name) == 0) return i;
    char have[256] = "";
    size_t at = 0;
    for (int i = 0; i < rt->n && at < sizeof have - 1; i++) {
        int w = snprintf(have + at, sizeof have - at, "%s%s", i ? ", " : "", rt->ex[i].r->name);
        if (w < 0) break;
        at += (size_t)w;
    }
    return mr_err_set(e, MR_EINVAL, "unknown retriever '%s' (known: %s)", name,
                      rt->n ? have : "none");
}

int router_add_expert(mr_router *rt, mr_retr *r, int space, mr_err *e) {
    if (!rt || !r) return mr_err_set(e, MR_EINVAL, "router_add_expert: NULL argument");
    if (rt->n == ROUTER_MAX_EXPERTS)
        return mr_err_set(e, MR_ENOMEM, "router: at most %d experts", ROUTER_MAX_EXPERTS);
    if (space < 0 || space >= ROUTER_MAX_SPACES)
        return mr_err_set(e, MR_EINVAL, "router: expert '%s' space %d not in [0, %d)", r->name,
                          space, ROUTER_MAX_SPACES);
    for (int i = 0; i < rt->n; i++)
        if (strcmp(rt->ex[i].r->name, r->name) == 0)
            return mr_err_set(e, MR_EEXIST, "router: expert '%s' added twice", r->name);
    int at = rt->n++;
    router_expert *x = &rt->ex[at];
    memset(x, 0, sizeof *x);
    x->r = r;
    x->space = space;
    if (rt->fallback_name[0] && strcmp(rt->fallback_name, r->name) == 0) rt->fallback = at;
    return at;
}

int router_set_pilots(mr_router *rt, int expert, const float *p, int n, mr_err *e) {
    return router_pilots_install(rt, expert, p, n, 1, e);
}

int router_pilots_install(mr_router *rt, int expert, const float *p, int n, int normalize,
                          mr_err *e) {
    if (!rt || expert < 0 || expert >= rt->n)
        return mr_err_set(e, MR_EINVAL, "router_set_pilots: no expert %d", expert);
    if (n < 0 || (n > 0 && !p))
        return mr_err_set(e, MR_EINVAL, "router_set_pilots: bad pilot array");
    int d = rt->cfg.dim;
    if (n > 0 && !mr_all_finite(p, (size_t)n * (size_t)d))
        return mr_err_set(e, MR_EINVAL, "router: pilots of '%s' contain NaN or infinity",
                          rt->ex[expert].r->name);
    float *copy = NULL;
    if (n > 0) {
        copy = mr_floats_alloc((size_t)n * (size_t)d);
        if (!copy) return mr_err_set(e, MR_ENOMEM, "router: out of memory");
        for (int i = 0; i < n; i++) {
            const float *src = p + (size_t)i * d;
            float norm = mr_l2norm(src, d);
            float inv = norm > 0 ? 1.0f / norm : 0.0f;
            if (!normalize) inv = 1.0f; /* already unit norm (loaded from a file) */
            for (int j = 0; j < d; j++) copy[(size_t)i * d + j] = src[j] * inv;
        }
    }
    mr_floats_free(rt->ex[expert].pilots);
    rt->ex[expert].pilots = copy;
    rt->ex[expert].n_pilots = n;
    return 0;
}

int router_n_pilots(const mr_router *rt, int expert) {
    if (!rt || expert < 0 || expert >= rt->n) return 0;
    return rt->ex[expert].n_pilots;
}

void router_softmax(const float *scores, int n, float temperature, float *probs) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (scores[i] > mx) mx = scores[i];
    double sum = 0;
    for (int i = 0; i < n; i++) {
        double v = exp((double)(scores[i] - mx) / temperature);
        probs[i] = (float)v;
        sum += v;
    }
    for (int i = 0; i < n; i++) probs[i] = (float)(probs[i] / sum);
}

int router_top_p(const float *probs, int n, float p, int max_keep, int *out) {
    int m = 0;
    for (int i = 0; i < n; i++) /* insertion sort: n <= 64 */
        if (probs[i] >= 0) {
            int j = m++;
            while (j > 0 && probs[out[j - 1]] < probs[i]) {
                out[j] = out[j - 1];
                j--;
            }
            out[j] = i;
        }
    if (m == 0) return 0;
    double cum = 0;
    int keep = 0;
    while (keep < m && keep < max_keep) {
        cum += probs[out[keep++]];
        if (cum > p) break; /* up to and including the first index with cumsum > p */
    }
    return keep > 0 ? keep : 1;
}

int router_budget_check(const int *budgets, int n, int k) {
    long sum = 0;
    int zero = 0;
    for (int i = 0; i < n; i++) {
        if (budgets[i] < 0) return 0;
        sum += budgets[i];
        zero += budgets[i] == 0;
    }
    return sum == k && (k < n || zero == 0);
}

void router_split_budget(const float *w, int n, int k, int *budgets) {
    if (n <= 0) return;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += w[i] > 0 ? w[i] : 0;
    double rem[ROUTER_MAX_EXPERTS];
    int given = 0;
    for (int i = 0; i < n; i++) {
        double share = sum > 0 ? (w[i] > 0 ? w[i] : 0) / sum * k : (double)k / n;
        budgets[i] = (int)floor(share);
        rem[i] = share - budgets[i];
        given += budgets[i];
    }
    /* Largest remainder: the (k - given) < n biggest remainders get one
     * more each, ties to the lower index. */
    int order[ROUTER_MAX_EXPERTS];
    for (int i = 0; i < n; i++) {
        int j = i;
        while (j > 0 && rem[order[j - 1]] < rem[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    for (int t = 0; given < k; t++, given++) budgets[order[t % n]]++;
    if (k < n) {
        assert(router_budget_check(budgets, n, k));
        return;
    }
    for (int i = 0; i < n; i++) { /* every expert searched gets at least one */
        if (budgets[i] > 0) continue;
        int big = 0;
        for (int j = 1; j < n; j++)
            if (budgets[j] > budgets[big]) big = j;
        budgets[big]--;
        budgets[i]++;
    }
    assert(router_budget_check(budgets, n, k));
}

int router_route(mr_router *rt, const float *q, int dim, float top_p, float *probs, int *kept,
                 mr_err *e) {
    if (!rt || !probs || !kept) return mr_err_set(e, MR_EINVAL, "router_route: NULL argument");
    int d = rt->cfg.dim, n = rt->n;
    if (top_p <= 0) top_p = rt->cfg.top_p;
    if (top_p > 1) return mr_err_set(e, MR_EINVAL, "router: top_p %g > 1", top_p);
    for (int i = 0; i < n; i++) {
        probs[i] = 0;
        kept[i] = 0;
    }
    int any = 0;
    for (int i = 0; i < n; i++) any |= rt->ex[i].n_pilots > 0;
    int nk = 0;
    if (any) {
        if (!q) return mr_err_set(e, MR_EINVAL, "router: routing needs query vector 0");
        if (dim != d)
            return mr_err_set(e, MR_EINVAL, "router: query dimension %d, routing space has %d", dim,
                              d);
        if (!mr_all_finite(q, (size_t)d))
            return mr_err_set(e, MR_EINVAL, "router: query has a NaN or infinite value");
        float norm = mr_l2norm(q, d);
        float inv = norm > 0 ? 1.0f / norm : 0.0f;
        float score[ROUTER_MAX_EXPERTS] = {0}, p[ROUTER_MAX_EXPERTS] = {0};
        int idx[ROUTER_MAX_EXPERTS], m = 0;
        for (int i = 0; i < n; i++) {
            const router_expert *x = &rt->ex[i];
            if (x->n_pilots == 0) continue;
            float best = -INFINITY;
            for (int j = 0; j < x->n_pilots; j++) {
                float c = mr_dot(q, x->pilots + (size_t)j * d, d) * inv;
                if (c > best) best = c;
            }
            score[m] = best;
            idx[m++] = i;
        }
        router_softmax(score, m, rt->cfg.temperature, p);
        int order[ROUTER_MAX_EXPERTS];
        nk = router_top_p(p, m, top_p, rt->cfg.max_experts, order);
        for (int j = 0; j < m; j++) probs[idx[j]] = p[j];
        for (int j = 0; j < nk; j++) kept[idx[order[j]]] = 1;
    }
    if (rt->fallback >= 0 && !kept[rt->fallback]) {
        kept[rt->fallback] = 2;
        nk++;
    }
    if (nk == 0)
        return mr_err_set(e, MR_ESTATE,
                          "router: no expert has pilots and no fallback is set; "
                          "build pilots with router_build_pilots");
    return nk;
}

int router_nearest_expert(const mr_router *rt, const float *v, int dim, retr_kind kind) {
    if (!rt || !v || dim != rt->cfg.dim) return -1;
    int d = rt->cfg.dim, best_i = -1;
    float best = -INFINITY;
    for (int i = 0; i < rt->n; i++) {
        const router_expert *x = &rt->ex[i];
        if (x->r->kind != kind) continue;
        for (int j = 0; j < x->n_pilots; j++) {
            float c = mr_dot(v, x->pilots + (size_t)j * d, d); /* pilots are unit norm */
            if (c > best) {
                best = c;
                best_i = i;
            }
        }
    }
    return best_i;
}

int router_stats_get(const mr_router *rt, int expert, router_expert_stats *st) {
    if (!rt || !st || expert < 0 || expert >= rt->n) return MR_EINVAL;
    st->routed = atomic_load(&rt->ex[expert].routed);
    st->fallback = atomic_load(&rt->ex[expert].fallback);
    st->candidates = atomic_load(&rt->ex[expert].candidates);
    return 0;
}

uint64_t router_queries(const mr_router *rt) { return rt ? atomic_load(&rt->queries) : 0; }
