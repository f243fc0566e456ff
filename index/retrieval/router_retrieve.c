/* router_retrieve.c — one retrieve: route, search the kept experts in
 * parallel, top up, merge (see router.h for the rule).
 *
 * Each kept expert is asked for more than its budget (2 x budget + up to
 * budget more for exclusions) so that duplicates across experts and
 * excluded items do not leave its share empty. When the experts searched
 * hold fewer distinct items than k (an expert smaller than its budget),
 * the missing budget passes on: experts whose list came back full are
 * searched again deeper, then the experts not searched, by routing
 * weight, and the fallback last, until k distinct items are in hand or
 * every allowed expert has given all it holds. Merge cost is
 * O(sum of fetched) with one hash map for deduplication; all request
 * memory except that map comes from the caller's arena.
 */
#include "index/retrieval/router_int.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/tensor.h"
#include "index/retrieval/retr_callback.h"
#include "index/retrieval/retr_idmap.h"

typedef struct expert_job {
    mr_retr *r;
    const float *q; /* (dim) or NULL */
    int dim;
    int fetch; /* k asked of the expert */
    const retr_user *user;
    int64_t deadline_ms; /* callback experts: answer by then (0 = their limit) */
    int64_t *ids;        /* (fetch) */
    float *scores;       /* (fetch) */
    void *call;          /* callback expert: the search in flight */
    int rc;
    int soft; /* 1: rc is a callback expert's own failure (not the request's) */
    mr_err err;
} expert_job;

/* A callback expert's search: the request's checks first (a bad query is
 * the caller's error), then start; finish comes later. */
static void expert_job_start(expert_job *j) {
    mr_err_clear(&j->err);
    j->call = NULL;
    j->soft = 0;
    j->rc = retr_check_query(j->r, j->q, j->dim, 1, j->fetch, &j->err);
    if (j->rc) return;
    j->soft = 1;
    j->rc = retr_callback_start(j->r, j->q, j->dim, j->fetch, j->user, j->deadline_ms, &j->call,
                                &j->err);
}

static void expert_job_finish(expert_job *j) {
    if (!j->rc) j->rc = retr_callback_finish(j->r, j->call, j->ids, j->scores, j->fetch, &j->err);
    j->call = NULL;
    if (j->rc && j->soft) retr_fill_missing(j->ids, j->scores, 0, j->fetch);
}

static void expert_job_run(void *arg) {
    expert_job *j = arg;
    mr_err_clear(&j->err);
    if (j->r->kind == RETR_CALLBACK) {
        expert_job_start(j);
        expert_job_finish(j);
        return;
    }
    j->soft = 0;
    j->rc = retr_search(j->r, j->q, j->dim, 1, j->fetch, j->user, j->ids, j->scores, &j->err);
}

/* A failed job: fatal (the error of the request) unless it is a callback
 * expert's own failure, which is recorded in res and returns 0. */
static int job_failure(const mr_router *rt, const expert_job *j, int expert, const char *when,
                       mr_arena *arena, router_result *res, mr_err *e) {
    if (!j->soft) {
        mr_err_set(e, j->rc, "%s", j->err.msg);
        return mr_err_wrap(e, "router: expert '%s'%s", rt->ex[expert].r->name, when);
    }
    if (!res->failed[expert]) res->n_failed++;
    res->failed[expert] = j->rc;
    res->errors[expert] = mr_arena_strdup(arena, j->err.msg[0] ? j->err.msg : mr_err_name(j->rc));
    return 0;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int is_excluded(const int64_t *ex, int n, int64_t id) {
    return n > 0 && bsearch(&id, ex, (size_t)n, sizeof *ex, cmp_i64) != NULL;
}

static int cmp_cand(const void *a, const void *b) {
    const router_cand *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

int router_result_check(const router_result *res, int n_experts, int k) {
    if (res->n < 0 || res->n > k) return 0;
    for (int c = 0; c < res->n; c++) {
        const router_cand *x = &res->cands[c];
        if (x->expert < 0 || x->expert >= n_experts || res->budgets[x->expert] <= 0) return 0;
        if (!((x->experts >> x->expert) & 1)) return 0;
        if (c > 0 && cmp_cand(&res->cands[c - 1], x) >= 0) return 0; /* order, no repeat */
    }
    return 1;
}

/* Choose the experts and their budget weights. sel (n) gets 1 routed,
 * 2 fallback, 3 named by the caller; w (n) the budget weights. */
static int choose_experts(mr_router *rt, const router_query *q, int mode, const router_options *opt,
                          float *probs, int *sel, float *w, mr_err *e) {
    int n = rt->n, rc;
    int routable = 0;
    for (int i = 0; i < n; i++) routable |= rt->ex[i].n_pilots > 0;
    float top_p = opt && opt->top_p > 0 ? opt->top_p : rt->cfg.top_p;
    int named = opt && opt->n_experts > 0;
    if (routable || (rt->fallback >= 0 && !(opt && opt->no_fallback)) ||
        (!named && mode == ROUTER_MODE_TOPP)) {
        rc = router_route(rt, q->vecs[0], q->dims[0], top_p, probs, sel, e);
        if (rc < 0 && !named) return rc;
        if (rc < 0) { /* named experts need no routing: keep going without pilots */
            mr_err_clear(e);
            memset(sel, 0, sizeof(int) * (size_t)n);
        }
    }
    if (opt && opt->no_fallback && rt->fallback >= 0 && sel[rt->fallback] == 2)
        sel[rt->fallback] = 0;
    if (named) {
        if (!opt->experts) return mr_err_set(e, MR_EINVAL, "router: expert names are NULL");
        int want[ROUTER_MAX_EXPERTS] = {0};
        for (int j = 0; j < opt->n_experts; j++) {
            int at = router_find(rt, opt->experts[j], e);
            if (at < 0) return at;
            want[at] = 1;
        }
        for (int i = 0; i < n; i++) sel[i] = want[i] ? 3 : 0;
    } else if (mode == ROUTER_MODE_ALL) {
        for (int i = 0; i < n; i++) sel[i] = sel[i] ? sel[i] : 1;
        if (opt && opt->no_fallback && rt->fallback >= 0) sel[rt->fallback] = 0;
    }
    float sum = 0;
    int nsel = 0;
    for (int i = 0; i < n; i++) {
        w[i] = 0;
        if (!sel[i]) continue;
        nsel++;
        w[i] = probs[i];
        if (sel[i] == 2 && w[i] < rt->cfg.fallback_weight) w[i] = rt->cfg.fallback_weight;
        sum += w[i];
    }
    if (nsel == 0) return mr_err_set(e, MR_ESTATE, "router: no expert selected");
    if (sum <= 0)
        for (int i = 0; i < n; i++) w[i] = sel[i] ? 1.0f : 0.0f;
    return nsel;
}

static int check_request(mr_router *rt, const router_query *q, int k, const int64_t *excl,
                         int n_excl, mr_arena *arena, router_result *res, mr_err *e) {
    if (!rt || !q || !arena || !res)
        return mr_err_set(e, MR_EINVAL, "router_retrieve: NULL argument");
    if (k <= 0 || k > rt->cfg.k_max)
        return mr_err_set(e, MR_EINVAL, "router: k = %d out of range [1, %d]", k, rt->cfg.k_max);
    if (q->n_spaces < 0 || q->n_spaces > ROUTER_MAX_SPACES)
        return mr_err_set(e, MR_EINVAL, "router: %d query spaces (max %d)", q->n_spaces,
                          ROUTER_MAX_SPACES);
    if (n_excl < 0 || (n_excl > 0 && !excl))
        return mr_err_set(e, MR_EINVAL, "router: bad exclusion list");
    if (rt->n == 0) return mr_err_set(e, MR_ESTATE, "router has no experts");
    return 0;
}

/* Distinct, not excluded item ids over the first nj jobs. */
static int64_t count_distinct(const expert_job *jobs, int nj, const int64_t *ex, int n_excl,
                              mr_err *e) {
    int64_t total = 0, n = 0;
    for (int t = 0; t < nj; t++) total += jobs[t].fetch;
    retr_idmap seen;
    if (retr_idmap_init(&seen, total)) return mr_err_set(e, MR_ENOMEM, "router: out of memory");
    for (int t = 0; t < nj; t++)
        for (int r = 0; r < jobs[t].fetch && jobs[t].ids[r] >= 0; r++) {
            int64_t id = jobs[t].ids[r];
            if (is_excluded(ex, n_excl, id) || retr_idmap_get(&seen, id) >= 0) continue;
            retr_idmap_put(&seen, id, n++);
        }
    retr_idmap_free(&seen);
    return n;
}

/* The experts that may take up budget the searched ones could not fill,
 * in order: searched experts whose list came back full (they may hold
 * more), then experts not searched by routing weight (the fallback
 * last). Named requests top up only within the names; no_fallback keeps
 * the fallback out; a vector expert needs its query vector. */
static int topup_order(const mr_router *rt, const router_query *q, const router_options *opt,
                       const int *sel, const float *probs, const expert_job *jobs, const int *jexp,
                       int nj, int *order) {
    int m = 0, searched[ROUTER_MAX_EXPERTS] = {0};
    for (int t = 0; t < nj; t++) {
        searched[jexp[t]] = 1;
        if (jobs[t].fetch < RETR_FETCH_MAX && jobs[t].ids[jobs[t].fetch - 1] >= 0 &&
            retr_size(jobs[t].r) > jobs[t].fetch)
            order[m++] = jexp[t];
    }
    int named = opt && opt->n_experts > 0;
    int first = m;
    for (int i = 0; i < rt->n; i++) {
        const router_expert *x = &rt->ex[i];
        if (searched[i] || (named && sel[i] != 3)) continue;
        if (i == rt->fallback && opt && opt->no_fallback) continue;
        if (x->r->dim > 0 && (x->space >= q->n_spaces || !q->vecs[x->space])) continue;
        if (retr_size(x->r) == 0) continue;
        int j = m++; /* insertion by weight, fallback last */
        while (j > first) {
            int o = order[j - 1];
            int after = i == rt->fallback ? 0 : o == rt->fallback ? 1 : probs[o] < probs[i];
            if (!after) break;
            order[j] = o;
            j--;
        }
        order[j] = i;
    }
    return m;
}

int router_retrieve(mr_router *rt, const router_query *q, const retr_user *user, int k,
                    const int64_t *exclusions, int n_excl, const router_options *opt,
                    mr_arena *arena, router_result *res, mr_err *e) {
    int rc = check_request(rt, q, k, exclusions, n_excl, arena, res, e);
    if (rc) return rc;
    memset(res, 0, sizeof *res);
    int n = rt->n;
    int mode = opt ? (int)opt->mode : ROUTER_MODE_TOPP;
    if (mode != ROUTER_MODE_TOPP && mode != ROUTER_MODE_ALL)
        return mr_err_set(e, MR_EINVAL, "router: unknown mode %d", mode);
    int merge = opt && opt->merge_set ? opt->merge : (int)rt->cfg.merge;
    if (merge != ROUTER_MERGE_NORM && merge != ROUTER_MERGE_RRF && merge != ROUTER_MERGE_RAW)
        return mr_err_set(e, MR_EINVAL, "router: unknown merge %d", merge);
    router_query qq = *q;
    if (qq.n_spaces == 0) { /* vector-free request: only experts with dim 0 can serve it */
        qq.vecs[0] = NULL;
        qq.dims[0] = 0;
    }
    res->weights = mr_arena_calloc(arena, (size_t)n, sizeof(float));
    res->budgets = mr_arena_calloc(arena, (size_t)n, sizeof(int));
    res->failed = mr_arena_calloc(arena, (size_t)n, sizeof(int));
    res->errors = mr_arena_calloc(arena, (size_t)n, sizeof(char *));
    int *sel = mr_arena_calloc(arena, (size_t)n, sizeof(int));
    float *w = mr_arena_calloc(arena, (size_t)n, sizeof(float));
    int64_t *ex = n_excl ? mr_arena_alloc(arena, (size_t)n_excl * sizeof *ex) : NULL;
    int64_t deadline = opt ? opt->deadline_ms : 0;
    if (!res->weights || !res->budgets || !res->failed || !res->errors || !sel || !w ||
        (n_excl && !ex))
        return mr_err_set(e, MR_ENOMEM, "router: request arena exhausted");
    int nsel = choose_experts(rt, &qq, mode, opt, res->weights, sel, w, e);
    if (nsel < 0) return nsel;
    if (n_excl) {
        memcpy(ex, exclusions, (size_t)n_excl * sizeof *ex);
        qsort(ex, (size_t)n_excl, sizeof *ex, cmp_i64);
    }

    /* Budgets: proportional to weight over the selected experts. */
    int idx[ROUTER_MAX_EXPERTS], m = 0, bud[ROUTER_MAX_EXPERTS];
    float ws[ROUTER_MAX_EXPERTS];
    for (int i = 0; i < n; i++)
        if (sel[i]) {
            idx[m] = i;
            ws[m++] = w[i];
        }
    if (mode == ROUTER_MODE_ALL) {
        for (int j = 0; j < m; j++) bud[j] = k;
    } else {
        router_split_budget(ws, m, k, bud);
    }
    expert_job *jobs = mr_arena_calloc(arena, (size_t)m, sizeof *jobs);
    void **args = mr_arena_calloc(arena, (size_t)m, sizeof *args);
    if (!jobs || !args) return mr_err_set(e, MR_ENOMEM, "router: request arena exhausted");
    int nj = 0;
    for (int j = 0; j < m; j++) {
        int i = idx[j];
        res->budgets[i] = bud[j];
        if (bud[j] == 0) continue; /* k < number of experts: the weakest get nothing */
        router_expert *x = &rt->ex[i];
        expert_job *jb = &jobs[nj];
        int extra = n_excl < bud[j] ? n_excl : bud[j];
        int64_t fetch = mode == ROUTER_MODE_ALL ? (int64_t)k + extra : 2 * (int64_t)bud[j] + extra;
        jb->fetch = (int)(fetch < RETR_K_MAX ? fetch : RETR_K_MAX);
        jb->r = x->r;
        jb->user = user;
        jb->deadline_ms = deadline;
        if (x->r->dim > 0) {
            if (x->space >= qq.n_spaces || !qq.vecs[x->space])
                return mr_err_set(e, MR_EINVAL,
                                  "router: expert '%s' needs query vector %d, the "
                                  "request has %d",
                                  x->r->name, x->space, qq.n_spaces);
            jb->q = qq.vecs[x->space];
            jb->dim = qq.dims[x->space];
        }
        jb->ids = mr_arena_alloc(arena, (size_t)jb->fetch * sizeof(int64_t));
        jb->scores = mr_arena_alloc(arena, (size_t)jb->fetch * sizeof(float));
        if (!jb->ids || !jb->scores)
            return mr_err_set(e, MR_ENOMEM, "router: request arena exhausted");
        jb->rc = i; /* remember the expert index until the job runs */
        args[nj++] = jb;
    }
    int jexp[ROUTER_MAX_EXPERTS];
    for (int t = 0; t < nj; t++) jexp[t] = jobs[t].rc;
    /* Callback (remote) experts first: their calls are in flight while
     * the local experts search, and all of them at once. */
    int nl = 0;
    for (int t = 0; t < nj; t++) {
        if (jobs[t].r->kind == RETR_CALLBACK) expert_job_start(&jobs[t]);
        else args[nl++] = &jobs[t];
    }
    int pool_rc = 0;
    if (rt->pool && nl > 1) pool_rc = mr_pool_run(rt->pool, expert_job_run, args, nl);
    else
        for (int t = 0; t < nl; t++) expert_job_run(args[t]);
    for (int t = 0; t < nj; t++) /* every started call is finished, also on errors */
        if (jobs[t].r->kind == RETR_CALLBACK) expert_job_finish(&jobs[t]);
    if (pool_rc) return mr_err_set(e, MR_ENOMEM, "router: thread pool out of memory");
    for (int t = 0; t < nj; t++)
        if (jobs[t].rc && (rc = job_failure(rt, &jobs[t], jexp[t], "", arena, res, e))) return rc;
    /* Top-up: budget the searched experts could not fill passes on. */
    int64_t have = count_distinct(jobs, nj, ex, n_excl, e);
    if (have < 0) return (int)have;
    if (have < k) {
        int order[ROUTER_MAX_EXPERTS];
        int no = topup_order(rt, &qq, opt, sel, res->weights, jobs, jexp, nj, order);
        expert_job *more = mr_arena_calloc(arena, (size_t)(nj + no), sizeof *more);
        if (!more) return mr_err_set(e, MR_ENOMEM, "router: request arena exhausted");
        memcpy(more, jobs, (size_t)nj * sizeof *jobs);
        jobs = more;
        for (int o = 0; o < no && have < k; o++) {
            int i = order[o], t = 0;
            while (t < nj && jexp[t] != i) t++;
            router_expert *x = &rt->ex[i];
            expert_job *jb = &jobs[t];
            if (res->failed[i]) continue;
            if (t == nj) { /* an expert not searched yet */
                memset(jb, 0, sizeof *jb);
                jb->r = x->r;
                jb->user = user;
                jb->deadline_ms = deadline;
                if (x->r->dim > 0) {
                    jb->q = qq.vecs[x->space];
                    jb->dim = qq.dims[x->space];
                }
                jexp[nj++] = i;
            }
            /* enough for k new items even if every item in hand and every
             * exclusion comes back first */
            int64_t fetch = (int64_t)k + n_excl + have, size = retr_size(x->r);
            if (size > 0 && fetch > size + n_excl) fetch = size + n_excl;
            if (fetch > RETR_FETCH_MAX) fetch = RETR_FETCH_MAX;
            if (fetch <= jb->fetch) continue;
            expert_job before = *jb;            /* kept when a callback expert fails */
            res->budgets[i] += (int)(k - have); /* the budget passed on to it */
            jb->fetch = (int)fetch;
            jb->ids = mr_arena_alloc(arena, (size_t)jb->fetch * sizeof(int64_t));
            jb->scores = mr_arena_alloc(arena, (size_t)jb->fetch * sizeof(float));
            if (!jb->ids || !jb->scores)
                return mr_err_set(e, MR_ENOMEM, "router: request arena exhausted");
            expert_job_run(jb);
            if (jb->rc) {
                if ((rc = job_failure(rt, jb, i, " (top-up)", arena, res, e))) return rc;
                if (before.ids) { /* it answered before: keep that answer */
                    *jb = before;
                } else { /* never answered: nothing from it */
                    jb->fetch = 1;
                    retr_fill_missing(jb->ids, jb->scores, 0, 1);
                }
                jb->rc = 0;
                continue; /* the budget goes on to the next expert */
            }
            if ((have = count_distinct(jobs, nj, ex, n_excl, e)) < 0) return (int)have;
        }
    }
    res->n_searched = nj;
    for (int t = 0; t < nj; t++) /* vector experts only: the others scan nothing */
        if (rt->ex[jexp[t]].r->dim > 0 && retr_size(rt->ex[jexp[t]].r) > 0)
            res->cost += retr_size(rt->ex[jexp[t]].r); /* a callback may not know (-1) */

    /* Merge: one entry per distinct item; contributions summed. */
    int64_t total = 0;
    for (int t = 0; t < nj; t++) total += jobs[t].fetch;
    router_cand *pool = mr_arena_alloc(arena, (size_t)(total > 0 ? total : 1) * sizeof *pool);
    float *best_c = mr_arena_alloc(arena, (size_t)(total > 0 ? total : 1) * sizeof *best_c);
    unsigned char *taken = mr_arena_calloc(arena, (size_t)(total > 0 ? total : 1), 1);
    res->cands = mr_arena_alloc(arena, (size_t)k * sizeof *res->cands);
    if (!pool || !best_c || !taken || !res->cands)
        return mr_err_set(e, MR_ENOMEM, "router: request arena exhausted");
    retr_idmap seen;
    if (retr_idmap_init(&seen, total)) return mr_err_set(e, MR_ENOMEM, "router: out of memory");
    int np = 0;
    for (int t = 0; t < nj; t++) {
        const expert_job *jb = &jobs[t];
        int i = jexp[t];
        float lo = INFINITY, hi = -INFINITY;
        for (int r = 0; r < jb->fetch && jb->ids[r] >= 0; r++) {
            if (jb->scores[r] < lo) lo = jb->scores[r];
            if (jb->scores[r] > hi) hi = jb->scores[r];
        }
        for (int r = 0; r < jb->fetch && jb->ids[r] >= 0; r++) {
            int64_t id = jb->ids[r];
            if (is_excluded(ex, n_excl, id)) continue;
            float c = merge == ROUTER_MERGE_RRF ? 1.0f / (float)(rt->cfg.rrf_k + r + 1)
                      : merge == ROUTER_MERGE_RAW
                          ? jb->scores[r]
                          : w[i] * (hi > lo ? (jb->scores[r] - lo) / (hi - lo) : 1.0f);
            int64_t at = retr_idmap_get(&seen, id);
            if (at < 0) {
                at = np++;
                retr_idmap_put(&seen, id, at); /* capacity reserved by init */
                pool[at] = (router_cand){id, 0, jb->scores[r], i, r, res->weights[i], 0};
                best_c[at] = -INFINITY;
            }
            /* NORM and RRF sum an item's contributions; RAW keeps the best */
            if (merge != ROUTER_MERGE_RAW) pool[at].score += c;
            else if (c > best_c[at]) pool[at].score = c;
            pool[at].experts |= 1ull << i;
            if (c > best_c[at]) {
                best_c[at] = c;
                pool[at].expert = i;
                pool[at].rank = r;
                pool[at].raw = jb->scores[r];
                pool[at].weight = res->weights[i];
            }
        }
    }
    /* Quotas: each expert first fills its own budget, in its rank order. */
    int got = 0;
    if (!(mode == ROUTER_MODE_ALL)) {
        for (int t = 0; t < nj; t++) {
            const expert_job *jb = &jobs[t];
            int i = jexp[t], filled = 0;
            /* budgets may sum above k once top-ups passed budget on: stop at k */
            for (int r = 0; r < jb->fetch && jb->ids[r] >= 0 && filled < res->budgets[i] && got < k;
                 r++) {
                int64_t at = retr_idmap_get(&seen, jb->ids[r]);
                if (at < 0 || taken[at]) continue;
                taken[at] = 1;
                pool[at].expert = i; /* attributed to the expert whose budget took it */
                pool[at].rank = r;
                pool[at].raw = jb->scores[r];
                pool[at].weight = res->weights[i];
                res->cands[got++] = pool[at];
                filled++;
            }
        }
    }
    retr_idmap_free(&seen);
    if (got < k) { /* leftovers: the best remaining merged scores */
        int nl = 0;
        for (int a = 0; a < np; a++)
            if (!taken[a]) pool[nl++] = pool[a]; /* compact in place: nl <= a */
        qsort(pool, (size_t)nl, sizeof *pool, cmp_cand);
        for (int a = 0; a < nl && got < k; a++) res->cands[got++] = pool[a];
    }
    qsort(res->cands, (size_t)got, sizeof *res->cands, cmp_cand);
    res->n = got;
    assert(router_result_check(res, n, k));
    atomic_fetch_add(&rt->queries, 1);
    for (int i = 0; i < n; i++) {
        if (sel[i] == 1 || sel[i] == 3) atomic_fetch_add(&rt->ex[i].routed, 1);
        if (sel[i] == 2) atomic_fetch_add(&rt->ex[i].fallback, 1);
    }
    for (int c = 0; c < got; c++) atomic_fetch_add(&rt->ex[res->cands[c].expert].candidates, 1);
    return 0;
}
