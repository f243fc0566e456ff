/* handlers_rank.c — moerec.v1.Recommender/Score and GetModelInfo: the
 * ranker behind the API.
 *
 * Score fills one scorer batch with every candidate of the request and
 * runs the model once (the ranker batches into sgemm; never a loop of
 * per-candidate passes). Feature precedence per row: the schema's fields
 * `user_id` / `item_id` (when the model has them) from the request ids,
 * then the user's stored profile, user and context features for every
 * row, then the candidate's stored features, the user's stored
 * (user, category) values for the candidate's categories, and the
 * candidate's own features. Any feature the model does not know is INVALID_ARGUMENT naming
 * it; nothing is scored.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "proto/moerec.pb-c.h"
#include "index/store/behaviour_recent.h"
#include "moe/featcount.h"
#include "moe/sdim_feature.h"
#include "server/backend.h"
#include "server/counts.h"
#include "server/handlers.h"
#include "server/replica.h"
#include "server/registry.h"

static const char *where_text(char *buf, size_t n, const char *where, int idx) {
    if (idx < 0) return where;
    snprintf(buf, n, "%s[%d].features", where, idx);
    return buf;
}

/* mr_features_check, and with cat_idx / num_idx (room for every field of
 * f) each field's index in m (-1 for one skipped as `also`), so that
 * apply_features does not look the names up a second time. where names
 * the features in errors: "user_features", or with where_idx >= 0
 * "<where>[where_idx].features" (formatted only for an error: a snprintf
 * per candidate was 1% of the server's CPU). */
static int features_resolve(const moe_model *m, const Moerec__V1__Features *f, const char *also,
                            const char *where, int where_idx, int *cat_idx, int *num_idx,
                            mr_err *err) {
    if (!f) return MR_OK;
    char wb[64];
#define WHERE where_text(wb, sizeof wb, where, where_idx)
    for (size_t i = 0; i < f->n_categorical; i++) {
        const Moerec__V1__CategoricalFeature *c = f->categorical[i];
        if (c->n_values == 0)
            return mr_err_set(err, MR_EINVAL, "%s: categorical feature '%s' has no values (1..64)",
                              WHERE, c->name);
        int numeric, idx = m ? moe_model_field(m, c->name, &numeric) : 0;
        if (cat_idx) cat_idx[i] = idx;
        if (!m || (idx < 0 && also && !strcmp(c->name, also))) continue;
        if (idx < 0)
            return mr_err_set(err, MR_EINVAL, "%s: unknown feature '%s' (model %s)", WHERE, c->name,
                              m->name);
        if (numeric)
            return mr_err_set(err, MR_EINVAL, "%s: feature '%s' is numeric, not categorical", WHERE,
                              c->name);
    }
    for (size_t i = 0; m && i < f->n_numeric; i++) {
        const Moerec__V1__NumericFeature *n = f->numeric[i];
        int numeric, idx = moe_model_field(m, n->name, &numeric);
        if (num_idx) num_idx[i] = idx;
        if (idx < 0)
            return mr_err_set(err, MR_EINVAL, "%s: unknown feature '%s' (model %s)", WHERE, n->name,
                              m->name);
        if (!numeric)
            return mr_err_set(err, MR_EINVAL, "%s: feature '%s' is categorical, not numeric", WHERE,
                              n->name);
    }
    return MR_OK;
}

int mr_features_check(const moe_model *m, const Moerec__V1__Features *f, const char *also,
                      const char *where, int where_idx, mr_err *err) {
    return features_resolve(m, f, also, where, where_idx, NULL, NULL, err);
}

/* Fields of one Features message whose indices apply_features keeps from
 * the check (a candidate has a few dozen; larger messages look up twice). */
#define RESOLVED_MAX 128

/* Request features are strict (mr_features_check): a field the model does
 * not know is the caller's error. Stored item features (strict = 0) may
 * have been written for another model: fields this model lacks are
 * skipped. */
static int apply_features(moe_scorer *s, const moe_model *m, int row, const Moerec__V1__Features *f,
                          const char *where, int where_idx, int strict, mr_err *err) {
    if (!f) return MR_OK;
    /* strict: checked first, every field resolved by the check (a
     * field's lookup was ~4% of a 500-candidate Score when done twice) */
    int known = strict && f->n_categorical <= RESOLVED_MAX && f->n_numeric <= RESOLVED_MAX;
    int cat_idx[RESOLVED_MAX], num_idx[RESOLVED_MAX];
    int rc = strict ? features_resolve(m, f, NULL, where, where_idx, known ? cat_idx : NULL,
                                       known ? num_idx : NULL, err)
                    : MR_OK;
    if (rc) return rc;
    char wb[64];
    for (size_t i = 0; i < f->n_categorical; i++) {
        const Moerec__V1__CategoricalFeature *c = f->categorical[i];
        int numeric = 0, idx = known ? cat_idx[i] : moe_model_field(m, c->name, &numeric);
        if (idx < 0 || numeric || c->n_values == 0) continue;
        rc = moe_scorer_set_cat(s, row, idx, (const char *const *)c->values, NULL, (int)c->n_values,
                                err);
        if (rc) return mr_err_wrap(err, "%s: feature '%s'", WHERE, c->name);
    }
    for (size_t i = 0; i < f->n_numeric; i++) {
        const Moerec__V1__NumericFeature *n = f->numeric[i];
        int numeric = 1, idx = known ? num_idx[i] : moe_model_field(m, n->name, &numeric);
        if (idx < 0 || !numeric) continue;
        rc = moe_scorer_set_num(s, row, idx, n->value, err);
        if (rc) return mr_err_wrap(err, "%s: feature '%s'", WHERE, n->name);
    }
    return MR_OK;
#undef WHERE
}

/* The schema's id field (`user_id`, `item_id`) set from the request. */
static int apply_id(moe_scorer *s, const moe_model *m, int row, const char *field, const char *id,
                    mr_err *err) {
    int numeric, idx = moe_model_field(m, field, &numeric);
    if (idx < 0 || numeric || !id[0]) return MR_OK;
    const char *v[1] = {id};
    return moe_scorer_set_cat(s, row, idx, v, NULL, 1, err);
}

/* The store's counting state (server/counts.h), read at most once per
 * request, when a stored row holds counters. */
typedef struct count_ctx {
    mr_counts c;
    int loaded, found;
} count_ctx;

/* A stored feature row as the entries to apply: a row with counters gets
 * the values derived from them (counts.h); one without, its entries. */
static int stored_row(mr_backend *be, count_ctx *k, mr_arena *a, int kind, const void *data,
                      size_t len, Moerec__V1__Features **out, mr_err *err) {
    ProtobufCAllocator al = mr_pb_arena(a);
    Moerec__V1__FeatureRow *row = moerec__v1__feature_row__unpack(&al, len, data);
    if (!row) return mr_err_set(err, MR_ECORRUPT, "the row does not decode");
    if (row->n_counts && !k->loaded) {
        int rc = mr_counts_load(be->st, &k->c, &k->found, err);
        if (rc) return rc;
        k->loaded = 1;
    }
    return mr_counts_expand(k->found ? &k->c : NULL, kind, row, a, out, err);
}

/* Stored features of the candidates (UpsertItems), before the request's
 * own candidate features, which override them. One batched, cached read. */
static int apply_stored(moe_scorer *s, const moe_model *m, mr_backend *be, mr_arena *a,
                        const Moerec__V1__ScoreRequest *r, count_ctx *k,
                        Moerec__V1__Features ***stored, mr_err *err) {
    size_t n = r->n_candidates;
    uint64_t *ids = mr_arena_alloc(a, n * sizeof *ids);
    store_blob *blobs = mr_arena_alloc(a, n * sizeof *blobs);
    Moerec__V1__Features **rows = mr_arena_calloc(
        a, n, sizeof *rows); /* kept for the user-category rows */
    if (!ids || !blobs || !rows) return mr_err_set(err, MR_ENOMEM, "out of request memory");
    *stored = rows;
    for (size_t i = 0; i < n; i++) ids[i] = mr_api_id(r->candidates[i]->item_id);
    void *buf = NULL;
    int rc = item_store_get(be->st, ids, n, blobs, &buf, err);
    if (rc) return mr_err_wrap(err, "stored item features");
    for (size_t i = 0; i < n && !rc; i++) {
        if (!blobs[i].data) continue;
        Moerec__V1__Features *f = NULL;
        if ((rc = stored_row(be, k, a, FC_ITEM, blobs[i].data, blobs[i].len, &f, err))) {
            mr_err_wrap(err, "stored features of item '%s'", r->candidates[i]->item_id);
            break;
        }
        rows[i] = f;
        rc = apply_features(s, m, (int)i, f, "stored item features", -1, 0, err);
    }
    free(buf);
    return rc;
}

/* The (user, category) counting rows of `moerec index features --store`
 * (tools/index_features_store.c): the profile's categorical entry
 * "@category" names the candidate feature holding an item's categories;
 * numeric entries "<field>@<category>" hold the user's values for that
 * category, "<field>@" those of a category without events. Per candidate:
 * its categories (the request's entry of that name, else the stored item
 * row's; empty values skipped, repeats counted once, at most FC_MAX_CATS),
 * each one's block (else the "@" block), and fc_mean_blocks over them, the
 * mean training rows get (moe/featcount.h), set on every field of the
 * model those entries name. A candidate without categories keeps the
 * fill. */
static int apply_user_cats(moe_scorer *s, const moe_model *m, mr_arena *a,
                           const Moerec__V1__Features *prof, const Moerec__V1__ScoreRequest *r,
                           Moerec__V1__Features *const *stored, mr_err *err) {
    if (!prof) return MR_OK;
    const char *catname = NULL;
    for (size_t i = 0; i < prof->n_categorical && !catname; i++)
        if (!strcmp(prof->categorical[i]->name, "@category") && prof->categorical[i]->n_values)
            catname = prof->categorical[i]->values[0];
    if (!catname) return MR_OK;
    size_t ne = prof->n_numeric;
    int *field = mr_arena_alloc(a, (ne ? ne : 1) * sizeof *field); /* model field of column q */
    int *col = mr_arena_alloc(a, (ne ? ne : 1) * sizeof *col);     /* column of entry e, -1 none */
    int *crow = mr_arena_alloc(a, (ne ? ne : 1) * sizeof *crow);   /* category row of entry e */
    const char **cat = mr_arena_alloc(a, (ne ? ne : 1) * sizeof *cat);
    if (!field || !col || !crow || !cat) return mr_err_set(err, MR_ENOMEM, "out of request memory");
    int nf = 0, nc = 0;
    for (size_t e = 0; e < ne;
         e++) { /* columns: distinct model fields; rows: distinct categories */
        const char *name = prof->numeric[e]->name, *at = strchr(name, '@');
        col[e] = -1;
        if (!at || at == name || (size_t)(at - name) >= 128) continue;
        char base[128];
        memcpy(base, name, (size_t)(at - name));
        base[at - name] = 0;
        int numeric, idx = moe_model_field(m, base, &numeric);
        if (idx < 0 || !numeric) continue;
        int q = 0, k = 0;
        while (q < nf && field[q] != idx) q++;
        if (q == nf) field[nf++] = idx;
        while (k < nc && strcmp(cat[k], at + 1)) k++;
        if (k == nc) cat[nc++] = at + 1;
        col[e] = q;
        crow[e] = k;
    }
    if (!nf) return MR_OK;
    float *vals = mr_arena_alloc(a, (size_t)nc * (size_t)nf * sizeof *vals); /* (nc, nf) */
    float *blocks = mr_arena_alloc(a, (size_t)FC_MAX_CATS * (size_t)nf * sizeof *blocks);
    float *mean = mr_arena_alloc(a, (size_t)nf * sizeof *mean);
    if (!vals || !blocks || !mean) return mr_err_set(err, MR_ENOMEM, "out of request memory");
    for (size_t j = 0; j < (size_t)nc * (size_t)nf; j++) vals[j] = NAN;
    int absent = -1;
    for (size_t e = 0; e < ne; e++)
        if (col[e] >= 0)
            vals[(size_t)crow[e] * (size_t)nf + (size_t)col[e]] = prof->numeric[e]->value;
    for (int k = 0; k < nc && absent < 0; k++)
        if (!cat[k][0]) absent = k;
    for (size_t i = 0; i < r->n_candidates; i++) {
        const Moerec__V1__CategoricalFeature *cf = NULL;
        const Moerec__V1__Features *src[2] = {r->candidates[i]->features,
                                              stored ? stored[i] : NULL};
        for (int w = 0; w < 2 && !cf; w++)
            for (size_t j = 0; src[w] && j < src[w]->n_categorical && !cf; j++)
                if (!strcmp(src[w]->categorical[j]->name, catname)) cf = src[w]->categorical[j];
        if (!cf) continue;
        int nb = 0;
        for (size_t v = 0; v < cf->n_values && nb < FC_MAX_CATS; v++) {
            const char *x = cf->values[v];
            int dup = !x[0];
            for (size_t u = 0; u < v && !dup; u++) dup = !strcmp(cf->values[u], x);
            if (dup) continue;
            int k = 0;
            while (k < nc && strcmp(cat[k], x)) k++;
            if (k == nc) k = absent;
            for (int q = 0; q < nf; q++)
                blocks[(size_t)nb * nf + q] = k >= 0 ? vals[(size_t)k * nf + q] : NAN;
            nb++;
        }
        fc_mean_blocks(blocks, nb, nf, mean);
        for (int q = 0; q < nf; q++) {
            if (isnan(mean[q])) continue;
            int rc = moe_scorer_set_num(s, (int)i, field[q], mean[q], err);
            if (rc) return mr_err_wrap(err, "stored user-category features");
        }
    }
    return MR_OK;
}

/* The SDIM block (moe/sdim_feature.h): the user's bucket table (one read),
 * the item vectors of the last sdim_short events, and the candidates' item
 * vectors; cost independent of the history length. */
static int apply_sdim(moe_scorer *s, const moe_model *m, mr_backend *be, mr_arena *a,
                      const Moerec__V1__ScoreRequest *r, const mr_user_state *us,
                      uint32_t *behaviour_length, mr_err *err) {
    if (!be)
        return mr_err_set(err, MR_ESTATE,
                          "model '%s' takes a long-behaviour input (extra_dim %d) but the server "
                          "has no store: set data_dir",
                          m->name, m->extra_dim);
    int d = be->item_dim, n = (int)r->n_candidates;
    if (m->extra_dim != 2 * d + m->n_hist_act)
        return mr_err_set(err, MR_ESTATE,
                          "model '%s' has extra_dim %d; the SDIM block of item table dim %d "
                          "needs %d (2 d + %d history actions)",
                          m->name, m->extra_dim, d, 2 * d + m->n_hist_act, m->n_hist_act);
    float *cand = mr_arena_alloc(a, (size_t)n * (size_t)d * sizeof *cand);
    float *recent = mr_arena_alloc(a, (size_t)(be->short_n ? be->short_n : 1) * (size_t)d *
                                          sizeof *recent);
    uint64_t *ids = mr_arena_alloc(a, (size_t)n * sizeof *ids);
    uint32_t *ract = mr_arena_alloc(a, (size_t)(be->short_n ? be->short_n : 1) * sizeof *ract);
    if (!cand || !recent || !ids || !ract)
        return mr_err_set(err, MR_ENOMEM, "out of request memory");
    for (int i = 0; i < n; i++) ids[i] = mr_api_id(r->candidates[i]->item_id);
    uint64_t user = mr_api_id(r->user_id);
    int rc = emb_store_get(be->st, be->items, ids, (size_t)n, cand, NULL, err);
    if (rc) return mr_err_wrap(err, "candidate item vectors");
    int k = 0;
    if ((rc = behaviour_recent_vectors_act(be->beh, user, be->short_n, recent, ract, &k, err)))
        return mr_err_wrap(err, "recent events");
    *behaviour_length = us->n_events;
    return sdim_feature_to_scorer_act(s, m, behaviour_hasher(be->beh), us->table, recent, ract, k,
                                      cand, n, err);
}

/* The user's stored profile (packed Features, e.g. the counting features
 * of `moerec index features --store`) for every row; fields this model
 * does not know are skipped, as for stored item features. */
static int apply_profile(moe_scorer *s, const moe_model *m, mr_backend *be, count_ctx *k,
                         mr_arena *a, const mr_user_state *us, const char *user_id,
                         Moerec__V1__Features **prof, mr_err *err) {
    if (!us->profile) return MR_OK;
    Moerec__V1__Features *f = NULL;
    int rc = stored_row(be, k, a, FC_USER, us->profile, us->profile_len, &f, err);
    if (rc) return mr_err_wrap(err, "stored profile of user '%s'", user_id);
    *prof = f;
    return apply_features(s, m, MOE_ALL_ROWS, f, "stored user profile", -1, 0, err);
}

/* Stages: decode (arrival to the handler), features (ids, request, stored
 * and SDIM features into the scorer), rank (the batched ranker), total. */
static Moerec__V1__DebugInfo *debug_info(mr_arena *a, const moe_scorer *s, uint64_t start_ns,
                                         uint64_t handler_ns, uint64_t features_ns,
                                         uint64_t ranked_ns) {
    enum { NT = 4 };
    Moerec__V1__DebugInfo *d = mr_arena_alloc(a, sizeof *d);
    Moerec__V1__StageTiming *t = mr_arena_calloc(a, NT, sizeof *t);
    Moerec__V1__StageTiming **tp = mr_arena_calloc(a, NT, sizeof *tp);
    moe_gate_report *rep = mr_arena_calloc(a, 32, sizeof *rep);
    if (!d || !t || !tp || !rep) return NULL;
    moerec__v1__debug_info__init(d);
    static const char *names[NT] = {"decode", "features", "rank", "total"};
    uint64_t us[NT] = {(handler_ns - start_ns) / 1000, (features_ns - handler_ns) / 1000,
                       (ranked_ns - features_ns) / 1000, (mr_now_ns() - start_ns) / 1000};
    for (int i = 0; i < NT; i++) {
        moerec__v1__stage_timing__init(&t[i]);
        t[i].stage = (char *)names[i];
        t[i].micros = us[i];
        tp[i] = &t[i];
    }
    d->timings = tp;
    d->n_timings = NT;
    int ng = moe_scorer_gate_report(s, rep, 32);
    if (ng > 32) ng = 32;
    Moerec__V1__GateWeights *g = mr_arena_calloc(a, (size_t)ng, sizeof *g);
    Moerec__V1__GateWeights **gp = mr_arena_calloc(a, (size_t)ng, sizeof *gp);
    if (ng && (!g || !gp)) return NULL;
    for (int i = 0; i < ng; i++) {
        moerec__v1__gate_weights__init(&g[i]);
        g[i].gate = rep[i].gate;
        g[i].n_weights = g[i].n_experts = (size_t)rep[i].n;
        g[i].weights = rep[i].weight;
        g[i].experts = mr_arena_calloc(a, (size_t)rep[i].n, sizeof(char *));
        if (rep[i].n && !g[i].experts) return NULL;
        for (int k = 0; k < rep[i].n; k++) g[i].experts[k] = rep[i].expert[k];
        g[i].active_fraction = rep[i].active_fraction;
        gp[i] = &g[i];
    }
    d->gates = gp;
    d->n_gates = (size_t)ng;
    return d;
}

int mr_handle_score(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                    mr_err *err) {
    const Moerec__V1__ScoreRequest *r = (const void *)req;
    if (!r->user_id[0]) return mr_err_set(err, MR_EINVAL, "user_id is required");
    int wait_rc = mr_replica_wait(ctx, r->min_sequence, err); /* read-your-writes */
    if (wait_rc) return wait_rc;
    if (r->n_candidates == 0)
        return mr_err_set(err, MR_EINVAL, "candidates: at least one is required");
    for (size_t i = 0; i < r->n_candidates; i++)
        if (!r->candidates[i]->item_id[0])
            return mr_err_set(err, MR_EINVAL, "candidates[%zu].item_id is required", i);
    mr_registry *reg = mr_server_registry(ctx->server);
    if (!reg)
        return mr_err_set(err, MR_ESTATE, "no model loaded: start the server with --model-dir");
    mr_model_ref *ref;
    int rc = mr_registry_acquire(reg, r->model, &ref, err);
    if (rc) return rc;
    Moerec__V1__ScoreResponse *out = NULL;
    rc = mr_score_with_model(ctx, ref, r, &out, err);
    mr_model_release(ref);
    if (rc == MR_OK) *resp = &out->base;
    return rc;
}

/* How many parts to cut a Score batch of n into: one per core that no
 * handler is using, when n reaches score_split_candidates. Only idle cores
 * are taken, so under concurrency (every core busy) nothing splits and
 * throughput is what it was. Debug requests report gates: never split. */
static int split_parts(mr_call_ctx *ctx, const Moerec__V1__ScoreRequest *r, int n) {
    const mr_server_config *cfg = mr_server_config_of(ctx->server);
    mr_pool *pool = mr_server_pool(ctx->server);
    if (r->debug || !pool || cfg->score_split_candidates <= 0 || n < cfg->score_split_candidates)
        return 1;
    int parts = mr_pool_size(pool) - mr_server_running_handlers(ctx->server) + 1;
    return parts < 1 ? 1 : parts > MOE_SPLIT_MAX ? MOE_SPLIT_MAX : parts;
}

int mr_score_with_model(mr_call_ctx *ctx, mr_model_ref *ref, const Moerec__V1__ScoreRequest *r,
                        Moerec__V1__ScoreResponse **outp, mr_err *err) {
    uint64_t handler_ns = mr_now_ns();
    mr_backend *be = mr_server_backend(ctx->server);
    int rc = MR_OK;
    const moe_model *m = ref->model;
    moe_scorer *s = NULL;
    uint32_t behaviour_length = 0;
    mr_user_state us = {0}; /* released at done, also on the early exits */
    int n = (int)r->n_candidates, T = m->n_tasks;
    float *tasks = mr_arena_alloc(ctx->arena, (size_t)n * (size_t)T * sizeof(float));
    float *score = mr_arena_alloc(ctx->arena, (size_t)n * sizeof(float));
    if (!tasks || !score) {
        rc = mr_err_set(err, MR_ENOMEM, "request memory exhausted scoring %d candidates", n);
        goto done;
    }
    /* Later writes replace earlier ones, so the order is the precedence of
     * docs/api.md: ids, user/context features, stored item features, the
     * candidate's own features. */
    if ((rc = mr_model_scorer_get(ref, &s, err)) || (rc = moe_scorer_begin(s, n, err)) ||
        (rc = apply_id(s, m, MOE_ALL_ROWS, "user_id", r->user_id, err)))
        goto done;
    /* one read of the user's rows: the profile here, the SDIM table below */
    if (be && (rc = user_state_get(be->beh, mr_api_id(r->user_id), &us, err))) {
        rc = mr_err_wrap(err, "user state");
        goto done;
    }
    Moerec__V1__Features *prof = NULL, **stored = NULL;
    count_ctx counts = {0};
    if (be && (rc = apply_profile(s, m, be, &counts, ctx->arena, &us, r->user_id, &prof, err)))
        goto done;
    for (int i = 0; i < n; i++)
        if ((rc = apply_id(s, m, i, "item_id", r->candidates[i]->item_id, err))) goto done;
    if ((rc = apply_features(s, m, MOE_ALL_ROWS, r->user_features, "user_features", -1, 1, err)) ||
        (rc = apply_features(s, m, MOE_ALL_ROWS, r->context_features, "context_features", -1, 1,
                             err)))
        goto done;
    if (be && (rc = apply_stored(s, m, be, ctx->arena, r, &counts, &stored, err))) goto done;
    if (be && (rc = apply_user_cats(s, m, ctx->arena, prof, r, stored, err))) goto done;
    for (int i = 0; i < n; i++)
        if ((rc = apply_features(s, m, i, r->candidates[i]->features, "candidates", i, 1, err)))
            goto done;
    if (m->extra_dim > 0 && (rc = apply_sdim(s, m, be, ctx->arena, r, &us, &behaviour_length, err)))
        goto done;
    uint64_t features_ns = mr_now_ns();
    if ((rc = moe_scorer_run_split(s, tasks, score, mr_server_pool(ctx->server),
                                   split_parts(ctx, r, n), err)))
        goto done;
    mr_gate_usage_add(&ref->usage, s); /* no-op after a split run (no gate report) */
    uint64_t ranked_ns = mr_now_ns();

    mr_arena *a = ctx->arena;
    Moerec__V1__ScoreResponse *out = mr_arena_alloc(a, sizeof *out);
    Moerec__V1__ScoredItem *items = mr_arena_alloc(a, (size_t)n * sizeof *items);
    Moerec__V1__ScoredItem **ip = mr_arena_alloc(a, (size_t)n * sizeof *ip);
    Moerec__V1__TaskScore *ts = mr_arena_alloc(a, (size_t)n * (size_t)T * sizeof *ts);
    Moerec__V1__TaskScore **tp = mr_arena_alloc(a, (size_t)n * (size_t)T * sizeof *tp);
    char *mv = mr_arena_alloc(a, 100);
    /* Names are copied into the arena: the response is encoded after the
     * model reference is released, and a reload may free that version. */
    char **task_name = mr_arena_alloc(a, (size_t)T * sizeof *task_name);
    for (int k = 0; task_name && k < T; k++)
        if (!(task_name[k] = mr_arena_strdup(a, m->tasks[k].name))) task_name = NULL;
    if (!out || !items || !ip || !ts || !tp || !mv || !task_name) {
        rc = mr_err_set(err, MR_ENOMEM, "request memory exhausted building the response");
        goto done;
    }
    moerec__v1__score_response__init(out);
    out->request_id = r->request_id;
    snprintf(mv, 100, "%s/%s", ref->name, ref->version);
    out->model_version = mv;
    for (int i = 0; i < n; i++) {
        moerec__v1__scored_item__init(&items[i]);
        items[i].item_id = r->candidates[i]->item_id;
        items[i].score = score[i];
        for (int k = 0; k < T; k++) {
            Moerec__V1__TaskScore *t = &ts[(size_t)i * T + k];
            moerec__v1__task_score__init(t);
            t->task = task_name[k];
            t->value = tasks[(size_t)i * T + k];
            tp[(size_t)i * T + k] = t;
        }
        items[i].tasks = &tp[(size_t)i * T];
        items[i].n_tasks = (size_t)T;
        ip[i] = &items[i];
    }
    out->items = ip;
    out->n_items = (size_t)n;
    if (r->debug) {
        out->debug = debug_info(a, s, ctx->start_ns, handler_ns, features_ns, ranked_ns);
        if (!out->debug) {
            rc = mr_err_set(err, MR_ENOMEM, "request memory exhausted building debug info");
            goto done;
        }
        out->debug->behaviour_length = behaviour_length;
    }
    *outp = out;
done:
    user_state_release(&us);
    if (s) mr_model_scorer_put(ref, s);
    return rc;
}
