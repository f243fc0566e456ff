/* handlers_recommend.c — Recommender/Retrieve and Recommend: candidates from
 * the model version's retriever set (models/<name>/<version>/retrievers/,
 * built by `moerec index retrievers`), routed to the top-p set of expert
 * retrievers, then — for Recommend — ranked by the MoE ranker exactly as
 * Score ranks them, best first, top k.
 *
 * The query: the request's query_vector, else the mean of the item vectors
 * of the user's last `query_events` events (store, one reverse scan), in
 * the space of the store's item table, which must be the retrievers'. A
 * user with neither gets the fallback expert alone (popularity) when the
 * set has one; otherwise FAILED_PRECONDITION says why.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "index/store/behaviour_recent.h"
#include "index/retrieval/retr_set.h"
#include "proto/moerec.pb-c.h"
#include "server/backend.h"
#include "server/handlers.h"
#include "server/replica.h"
#include "server/registry.h"

#define RECENT_IDS 50 /* recent items passed to behaviour-based experts */

typedef struct retrieval {
    router_result res;
    const retr_set *set;
    uint64_t micros;      /* user state + retrieve */
    uint64_t user_micros; /* user state: query vector, recent and consumed events */
} retrieval;

/* The query vector for a user: mean of recent item vectors; *have = 0 when
 * the user has none. */
static int user_query(mr_backend *be, uint64_t user, int n_events, int dim, float *q, int *have,
                      mr_arena *a, mr_err *err) {
    *have = 0;
    if (!be || n_events <= 0) return MR_OK;
    if (be->item_dim != dim)
        return mr_err_set(err, MR_ESTATE,
                          "the retrievers' dim is %d but the store's item table has dim %d", dim,
                          be->item_dim);
    float *v = mr_arena_alloc(a, (size_t)n_events * (size_t)dim * sizeof *v);
    if (!v) return mr_err_set(err, MR_ENOMEM, "out of request memory");
    int k = 0;
    int rc = behaviour_recent_vectors(be->beh, user, n_events, v, &k, err);
    if (rc) return mr_err_wrap(err, "recent events");
    if (k == 0) return MR_OK;
    for (int j = 0; j < dim; j++) {
        double s = 0;
        for (int i = 0; i < k; i++) s += v[(size_t)i * dim + j];
        q[j] = (float)(s / k);
    }
    *have = 1;
    return MR_OK;
}

/* Whether name is one of names[0..n). */
static int named(char **names, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], name)) return 1;
    return 0;
}

/* Shared by Retrieve and Recommend. */
static int retrieve(mr_call_ctx *ctx, mr_model_ref *ref, const char *user_id, const float *qv,
                    size_t nq, int k, char **excl, size_t n_excl, const int64_t *consumed,
                    size_t n_consumed, char **names, size_t n_names, retrieval *out, mr_err *err) {
    uint64_t t0 = mr_now_ns();
    int rc;
    const retr_set *set = ref->retrievers;
    if (!set)
        return mr_err_set(err, MR_ESTATE,
                          "model '%s' version %s has no retrievers: build them with `moerec index "
                          "retrievers --out <model dir>/%s/%s/retrievers`",
                          ref->name, ref->version, ref->name, ref->version);
    mr_backend *be = mr_server_backend(ctx->server);
    mr_arena *a = ctx->arena;
    mr_router *rt = retr_set_router(set);
    int dim = retr_set_dim(set);
    for (size_t i = 0; i < n_names; i++) /* an unknown name is INVALID_ARGUMENT, cold user or not */
        if ((rc = router_find(rt, names[i], err)) < 0) return rc;
    if (nq && (int)nq != dim)
        return mr_err_set(err, MR_EINVAL, "query_vector has %zu values, the retrievers' dim is %d",
                          nq, dim);
    float *q = mr_arena_alloc(a, (size_t)dim * sizeof *q);
    int64_t *ex = mr_arena_alloc(a, (n_excl + n_consumed ? n_excl + n_consumed : 1) * sizeof *ex);
    int64_t *recent = mr_arena_alloc(a, RECENT_IDS * sizeof *recent);
    behaviour_event *ev = mr_arena_alloc(a, RECENT_IDS * sizeof *ev);
    if (!q || !ex || !recent || !ev) return mr_err_set(err, MR_ENOMEM, "out of request memory");
    for (size_t i = 0; i < n_excl; i++) ex[i] = (int64_t)mr_api_id(excl[i]);
    if (n_consumed) memcpy(ex + n_excl, consumed, n_consumed * sizeof *ex);
    n_excl += n_consumed;
    int have = 0;
    uint64_t user = user_id[0] ? mr_api_id(user_id) : 0;
    if (nq) {
        memcpy(q, qv, (size_t)dim * sizeof *q);
        have = 1;
    } else if ((rc = user_query(be, user, mr_server_config_of(ctx->server)->query_events, dim, q,
                                &have, a, err))) {
        return rc;
    }
    retr_user u = {recent, 0};
    if (be && user_id[0]) {
        size_t n = 0;
        if ((rc = behaviour_recent(be->beh, user, ev, RECENT_IDS, &n, err)))
            return mr_err_wrap(err, "recent events");
        for (size_t i = 0; i < n; i++) recent[i] = (int64_t)ev[i].item;
        u.n_recent = (int)n;
    }
    out->user_micros = (mr_now_ns() - t0) / 1000;
    router_query rq;
    memset(&rq, 0, sizeof rq);
    router_options opt;
    memset(&opt, 0, sizeof opt);
    opt.merge = -1;
    opt.experts = (const char *const *)names;
    opt.n_experts = (int)n_names;
    opt.deadline_ms = ctx->deadline_ms; /* remote experts: capped by remote_deadline_ms */
    const router_config *rc_cfg = retr_set_router_config(set);
    const char *fallback[1];
    if (have) {
        rq.vecs[0] = q;
        rq.dims[0] = dim;
        rq.n_spaces = 1;
    } else if (rc_cfg->fallback && (!n_names || named(names, n_names, rc_cfg->fallback))) {
        fallback[0] = rc_cfg->fallback; /* cold user: the always-on expert alone (if allowed) */
        opt.experts = fallback;
        opt.n_experts = 1;
    } else {
        return mr_err_set(err, MR_ESTATE,
                          "no query for user '%.100s': no events with item vectors in the store "
                          "and no query_vector%s",
                          user_id, rc_cfg->fallback ? "" : ", and the retrievers have no fallback");
    }
    rc = router_retrieve(rt, &rq, &u, k, ex, (int)n_excl, &opt, a, &out->res, err);
    if (rc) return rc;
    out->set = set;
    out->micros = (mr_now_ns() - t0) / 1000;
    return MR_OK;
}

/* Expert names of candidate i (its bitmask), copied into the arena. */
static int attribution(mr_arena *a, const retrieval *rv, int i, Moerec__V1__ScoredItem *it) {
    const router_cand *c = &rv->res.cands[i];
    mr_router *rt = retr_set_router(rv->set);
    int ne = router_n_experts(rt), n = 0;
    char **names = mr_arena_alloc(a, (size_t)(ne ? ne : 1) * sizeof *names);
    if (!names) return -1;
    for (int e = 0; e < ne; e++)
        if (c->experts >> e & 1)
            if (!(names[n++] = mr_arena_strdup(a, router_expert_name(rt, e)))) return -1;
    it->retrievers = names;
    it->n_retrievers = (size_t)n;
    it->retrieval_score = c->score;
    it->expert_score = c->raw;
    return 0;
}

static Moerec__V1__DebugInfo *routes(mr_arena *a, const retrieval *rv, Moerec__V1__DebugInfo *d) {
    if (!d) {
        d = mr_arena_alloc(a, sizeof *d);
        if (!d) return NULL;
        moerec__v1__debug_info__init(d);
    }
    mr_router *rt = retr_set_router(rv->set);
    int ne = router_n_experts(rt);
    Moerec__V1__RouteInfo *ri = mr_arena_calloc(a, (size_t)(ne ? ne : 1), sizeof *ri);
    Moerec__V1__RouteInfo **rp = mr_arena_calloc(a, (size_t)(ne ? ne : 1), sizeof *rp);
    Moerec__V1__StageTiming *t = mr_arena_calloc(a, 2, sizeof *t);
    Moerec__V1__StageTiming **tp = mr_arena_alloc(a, (d->n_timings + 2) * sizeof *tp);
    if (!ri || !rp || !t || !tp) return NULL;
    for (int e = 0; e < ne; e++) {
        moerec__v1__route_info__init(&ri[e]);
        ri[e].retriever = mr_arena_strdup(a, router_expert_name(rt, e));
        if (!ri[e].retriever) return NULL;
        ri[e].weight = rv->res.weights[e];
        ri[e].selected = rv->res.budgets[e] > 0;
        ri[e].budget = (uint32_t)rv->res.budgets[e];
        for (int i = 0; i < rv->res.n; i++) ri[e].returned += rv->res.cands[i].expert == e;
        if (rv->res.failed[e] && !(ri[e].error = mr_arena_strdup(a, rv->res.errors[e])))
            return NULL;
        rp[e] = &ri[e];
    }
    d->routes = rp;
    d->n_routes = (size_t)ne;
    moerec__v1__stage_timing__init(&t[0]);
    moerec__v1__stage_timing__init(&t[1]);
    t[0].stage = "user_state";
    t[0].micros = rv->user_micros;
    t[1].stage = "retrieve"; /* routing, expert searches, merge */
    t[1].micros = rv->micros - rv->user_micros;
    tp[0] = &t[0];
    tp[1] = &t[1];
    /* Ranking's "decode" stage counts from the call's arrival to ranking:
     * take the retrieval out of it. */
    for (size_t i = 0; i < d->n_timings; i++)
        if (!strcmp(d->timings[i]->stage, "decode"))
            d->timings[i]->micros = d->timings[i]->micros > rv->micros
                                        ? d->timings[i]->micros - rv->micros
                                        : 0;
    for (size_t i = 0; i < d->n_timings; i++) tp[i + 2] = d->timings[i];
    d->timings = tp;
    d->n_timings += 2;
    return d;
}

static char *id_string(mr_arena *a, int64_t id) {
    char *s = mr_arena_alloc(a, 24);
    if (s) snprintf(s, 24, id >= 0 ? "%lld" : "#%llx", id >= 0 ? (long long)id : (long long)id);
    return s;
}

static int acquire(mr_call_ctx *ctx, const char *model, mr_model_ref **ref, mr_err *err) {
    mr_registry *reg = mr_server_registry(ctx->server);
    if (!reg)
        return mr_err_set(err, MR_ESTATE, "no model loaded: start the server with --model-dir");
    return mr_registry_acquire(reg, model, ref, err);
}

/* The request's user and context features against the model, before
 * retrieval: an unknown or wrong-kind feature, or a categorical without
 * values, is INVALID_ARGUMENT whatever the retrievers return (Recommend
 * with nothing retrieved scored nothing and so checked nothing). */
static int request_features_check(const mr_model_ref *ref, const Moerec__V1__Features *user,
                                  const Moerec__V1__Features *context, mr_err *err) {
    int rc = mr_features_check(ref->model, user, NULL, "user_features", -1, err);
    return rc ? rc : mr_features_check(ref->model, context, NULL, "context_features", -1, err);
}

int mr_handle_retrieve(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                       mr_err *err) {
    const Moerec__V1__RetrieveRequest *r = (const void *)req;
    if (!r->user_id[0] && !r->n_query_vector)
        return mr_err_set(err, MR_EINVAL, "user_id or query_vector is required");
    int wait_rc = mr_replica_wait(ctx, r->min_sequence, err); /* read-your-writes */
    if (wait_rc) return wait_rc;
    /* uint32 limits are checked before any cast to int (2^31 would wrap) */
    if (r->k > RETR_K_MAX)
        return mr_err_set(err, MR_EINVAL, "k is %u, at most %d", (unsigned)r->k, RETR_K_MAX);
    int k = r->k ? (int)r->k : 100;
    mr_model_ref *ref;
    int rc = acquire(ctx, r->model, &ref, err);
    if (rc) return rc;
    retrieval rv;
    mr_arena *a = ctx->arena;
    if ((rc = request_features_check(ref, r->user_features, r->context_features, err))) goto done;
    if ((rc = retrieve(ctx, ref, r->user_id, r->query_vector, r->n_query_vector, k,
                       r->exclude_item_ids, r->n_exclude_item_ids, NULL, 0, r->retrievers,
                       r->n_retrievers, &rv, err)))
        goto done;
    Moerec__V1__RetrieveResponse *out = mr_arena_alloc(a, sizeof *out);
    Moerec__V1__ScoredItem *items = mr_arena_calloc(a, (size_t)(rv.res.n ? rv.res.n : 1),
                                                    sizeof *items);
    Moerec__V1__ScoredItem **ip = mr_arena_calloc(a, (size_t)(rv.res.n ? rv.res.n : 1), sizeof *ip);
    char *mv = mr_arena_alloc(a, 100);
    if (!out || !items || !ip || !mv) {
        rc = mr_err_set(err, MR_ENOMEM, "out of request memory");
        goto done;
    }
    moerec__v1__retrieve_response__init(out);
    out->request_id = r->request_id;
    snprintf(mv, 100, "%s/%s", ref->name, ref->version);
    out->model_version = mv;
    for (int i = 0; i < rv.res.n; i++) {
        moerec__v1__scored_item__init(&items[i]);
        items[i].item_id = id_string(a, rv.res.cands[i].id);
        items[i].score = rv.res.cands[i].score;
        if (!items[i].item_id || attribution(a, &rv, i, &items[i])) {
            rc = mr_err_set(err, MR_ENOMEM, "out of request memory");
            goto done;
        }
        ip[i] = &items[i];
    }
    out->items = ip;
    out->n_items = (size_t)rv.res.n;
    if (r->debug && !(out->debug = routes(a, &rv, NULL))) {
        rc = mr_err_set(err, MR_ENOMEM, "out of request memory");
        goto done;
    }
    *resp = &out->base;
done:
    mr_model_release(ref);
    return rc;
}

static int by_score_desc(const void *pa, const void *pb) {
    const Moerec__V1__ScoredItem *a = *(Moerec__V1__ScoredItem *const *)pa;
    const Moerec__V1__ScoredItem *b = *(Moerec__V1__ScoredItem *const *)pb;
    if (a->score != b->score) return a->score < b->score ? 1 : -1;
    return strcmp(a->item_id, b->item_id); /* deterministic ties */
}

/* The user's consumed items Recommend drops (docs/api.md, consumed_filter):
 * the request's ConsumedFilter, else the config's policy. "all" reads the
 * user's kept events (at most sdim_l_max), "last" the newest last_n, with
 * one reverse scan (O(events read)). */
static int consumed_items(mr_call_ctx *ctx, const Moerec__V1__RecommendRequest *r, int64_t **out,
                          size_t *n, mr_err *err) {
    const mr_server_config *cfg = mr_server_config_of(ctx->server);
    const char *policy = cfg->consumed_filter;
    int last_n = cfg->consumed_last_n;
    const Moerec__V1__ConsumedFilter *f = r->consumed_filter;
    if (f) {
        policy = f->policy;
        if (strcmp(policy, "all") && strcmp(policy, "last") && strcmp(policy, "none"))
            return mr_err_set(err, MR_EINVAL,
                              "consumed_filter.policy must be \"all\", \"last\" or \"none\", "
                              "not \"%.32s\"",
                              policy);
        if (!strcmp(policy, "last") && (f->last_n < 1 || f->last_n > 10000))
            return mr_err_set(err, MR_EINVAL,
                              "consumed_filter.last_n is %u, must be 1..10000 "
                              "with policy \"last\"",
                              (unsigned)f->last_n);
        last_n = (int)f->last_n;
    }
    *out = NULL;
    *n = 0;
    mr_backend *be = mr_server_backend(ctx->server);
    if (!be || !strcmp(policy, "none")) return MR_OK;
    size_t cap = !strcmp(policy, "all") ? (size_t)cfg->sdim_l_max : (size_t)last_n;
    behaviour_event *ev = mr_arena_alloc(ctx->arena, cap * sizeof *ev);
    int64_t *ids = mr_arena_alloc(ctx->arena, cap * sizeof *ids);
    if (!ev || !ids) return mr_err_set(err, MR_ENOMEM, "out of request memory");
    int rc = behaviour_recent(be->beh, mr_api_id(r->user_id), ev, cap, n, err);
    if (rc) return mr_err_wrap(err, "consumed items");
    for (size_t i = 0; i < *n; i++) ids[i] = (int64_t)ev[i].item;
    *out = ids;
    return MR_OK;
}

int mr_handle_recommend(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                        mr_err *err) {
    const Moerec__V1__RecommendRequest *r = (const void *)req;
    const mr_server_config *cfg = mr_server_config_of(ctx->server);
    if (!r->user_id[0]) return mr_err_set(err, MR_EINVAL, "user_id is required");
    int wait_rc = mr_replica_wait(ctx, r->min_sequence, err); /* read-your-writes */
    if (wait_rc) return wait_rc;
    /* uint32 limits are checked before any cast to int (2^31 would wrap) */
    if (r->k > (uint32_t)cfg->max_k)
        return mr_err_set(err, MR_EINVAL, "k is %u, at most %d", (unsigned)r->k, cfg->max_k);
    if (r->retrieve_k > RETR_K_MAX)
        return mr_err_set(err, MR_EINVAL, "retrieve_k is %u, at most %d", (unsigned)r->retrieve_k,
                          RETR_K_MAX);
    int k = r->k ? (int)r->k : 10;
    int rk = r->retrieve_k ? (int)r->retrieve_k : cfg->retrieve_k;
    if (rk < k) rk = k;
    if (rk > RETR_K_MAX) /* max_k may be configured above the retrieval limit */
        return mr_err_set(err, MR_EINVAL, "k is %d, at most %d candidates can be retrieved", k,
                          RETR_K_MAX);
    int64_t *consumed = NULL;
    size_t n_consumed = 0;
    uint64_t c0 = mr_now_ns();
    int rc = consumed_items(ctx, r, &consumed, &n_consumed, err);
    uint64_t consumed_us = (mr_now_ns() - c0) / 1000;
    if (rc) return rc;
    mr_model_ref *ref;
    if ((rc = acquire(ctx, r->model, &ref, err))) return rc;
    mr_arena *a = ctx->arena;
    retrieval rv;
    Moerec__V1__ScoreResponse *sr = NULL;
    if ((rc = request_features_check(ref, r->user_features, r->context_features, err))) goto done;
    if ((rc = retrieve(ctx, ref, r->user_id, NULL, 0, rk, r->exclude_item_ids,
                       r->n_exclude_item_ids, consumed, n_consumed, r->retrievers, r->n_retrievers,
                       &rv, err)))
        goto done;
    rv.micros += consumed_us; /* reading the consumed events is user state too */
    rv.user_micros += consumed_us;
    Moerec__V1__RecommendResponse *out = mr_arena_alloc(a, sizeof *out);
    if (!out) {
        rc = mr_err_set(err, MR_ENOMEM, "out of request memory");
        goto done;
    }
    moerec__v1__recommend_response__init(out);
    out->request_id = r->request_id;
    if (rv.res.n > 0) {
        /* Rank the candidates exactly as Score would, on this version. */
        int n = rv.res.n;
        Moerec__V1__Candidate *cs = mr_arena_calloc(a, (size_t)n, sizeof *cs);
        Moerec__V1__Candidate **cp = mr_arena_calloc(a, (size_t)n, sizeof *cp);
        if (!cs || !cp) {
            rc = mr_err_set(err, MR_ENOMEM, "out of request memory");
            goto done;
        }
        for (int i = 0; i < n; i++) {
            moerec__v1__candidate__init(&cs[i]);
            if (!(cs[i].item_id = id_string(a, rv.res.cands[i].id))) {
                rc = mr_err_set(err, MR_ENOMEM, "out of request memory");
                goto done;
            }
            cp[i] = &cs[i];
        }
        Moerec__V1__ScoreRequest s = MOEREC__V1__SCORE_REQUEST__INIT;
        s.request_id = r->request_id;
        s.user_id = r->user_id;
        s.user_features = r->user_features;
        s.context_features = r->context_features;
        s.candidates = cp;
        s.n_candidates = (size_t)n;
        s.debug = r->debug;
        if ((rc = mr_score_with_model(ctx, ref, &s, &sr, err))) goto done;
        for (int i = 0; i < n; i++)
            if (attribution(a, &rv, i, sr->items[i])) {
                rc = mr_err_set(err, MR_ENOMEM, "out of request memory");
                goto done;
            }
        qsort(sr->items, sr->n_items, sizeof *sr->items, by_score_desc);
        out->items = sr->items;
        out->n_items = sr->n_items < (size_t)k ? sr->n_items : (size_t)k;
        out->model_version = sr->model_version;
        out->debug = sr->debug;
    } else {
        char *mv = mr_arena_alloc(a, 100);
        if (!mv) {
            rc = mr_err_set(err, MR_ENOMEM, "out of request memory");
            goto done;
        }
        snprintf(mv, 100, "%s/%s", ref->name, ref->version);
        out->model_version = mv;
    }
    if (r->debug && !(out->debug = routes(a, &rv, out->debug))) {
        rc = mr_err_set(err, MR_ENOMEM, "out of request memory");
        goto done;
    }
    *resp = &out->base;
done:
    mr_model_release(ref);
    return rc;
}
