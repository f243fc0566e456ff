/* handlers_model.c — Recommender/GetModelInfo and Admin/Reload: what model
 * is serving, and swapping in another version without a restart. */
#include <stdio.h>
#include <string.h>

#include "proto/moerec.pb-c.h"
#include "server/handlers.h"
#include "server/registry.h"

static const char *gate_kind_name(moe_gate_kind k) {
    switch (k) {
    case MOE_GATE_TOPK: return "top_k";
    case MOE_GATE_TOPP: return "top_p";
    default: return "dense";
    }
}

/* The version's expert retrievers, for GetModelInfo. */
static int retriever_info(mr_arena *a, const retr_set *set, Moerec__V1__GetModelInfoResponse *out) {
    int n = retr_set_n_experts(set);
    Moerec__V1__RetrieverInfo *ri = mr_arena_calloc(a, (size_t)(n ? n : 1), sizeof *ri);
    Moerec__V1__RetrieverInfo **rp = mr_arena_calloc(a, (size_t)(n ? n : 1), sizeof *rp);
    if (!ri || !rp) return MR_ENOMEM;
    const router_config *rc = retr_set_router_config(set);
    for (int i = 0; i < n; i++) {
        const retr_set_expert_info *inf = retr_set_info(set, i);
        mr_retr *r = retr_set_expert_at(set, i);
        moerec__v1__retriever_info__init(&ri[i]);
        ri[i].name = mr_arena_strdup(a, inf->name);
        int remote = inf->kind == RETR_CALLBACK;
        ri[i].kind = remote ? "remote" : (char *)retr_kind_name(inf->kind);
        ri[i].index = mr_arena_strdup(a, remote ? inf->address : inf->factory);
        if (!ri[i].name || !ri[i].index) return MR_ENOMEM;
        ri[i].dim = r ? (uint32_t)r->dim : 0;
        int64_t size = retr_size(r); /* a remote expert: -1 until its server told it */
        ri[i].size = size > 0 ? (uint64_t)size : 0;
        ri[i].always_on = rc->fallback && !strcmp(rc->fallback, inf->name);
        rp[i] = &ri[i];
    }
    out->retrievers = rp;
    out->n_retrievers = (size_t)n;
    return MR_OK;
}

/* The ranker's embedding tables, for GetModelInfo (strings point into the
 * model: the caller copies them before releasing its reference). */
static int table_info(mr_arena *a, const mr_model_ref *ref, Moerec__V1__GetModelInfoResponse *out) {
    const moe_model *m = ref->model;
    int n = m->n_tables;
    Moerec__V1__TableInfo *ti = mr_arena_calloc(a, (size_t)(n ? n : 1), sizeof *ti);
    Moerec__V1__TableInfo **tp = mr_arena_calloc(a, (size_t)(n ? n : 1), sizeof *tp);
    if (!ti || !tp) return MR_ENOMEM;
    for (int i = 0; i < n; i++) {
        const moe_table *t = &m->tables[i];
        moerec__v1__table_info__init(&ti[i]);
        ti[i].name = mr_arena_strdup(a, t->name);
        ti[i].kind = (char *)idhash_kind_name(t->kind);
        ti[i].mapping = mr_arena_strdup(a, t->mapping);
        if (!ti[i].name || !ti[i].mapping) return MR_ENOMEM;
        ti[i].rows = (uint64_t)t->rows;
        ti[i].dim = (uint32_t)t->dim;
        ti[i].mapped_ids = t->stats.nids;
        ti[i].occupied_rows = t->stats.occupied;
        ti[i].shared_fraction = t->stats.shared_fraction;
        ti[i].mean_load = t->stats.mean_load;
        ti[i].max_load = t->stats.max_load;
        ti[i].storage = t->storage == MOE_STORAGE_STORE ? "store" : "memory";
        ti[i].encoding = (char *)moe_encoding_name(t->encoding);
        ti[i].ttl_seconds = (uint64_t)t->ttl_s;
        ti[i].store_table = mr_arena_strdup(a, ref->stabs[i].name);
        if (!ti[i].store_table) return MR_ENOMEM;
        tp[i] = &ti[i];
    }
    out->tables = tp;
    out->n_tables = (size_t)n;
    return MR_OK;
}

int mr_handle_get_model_info(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                             mr_err *err) {
    const Moerec__V1__GetModelInfoRequest *r = (const void *)req;
    mr_registry *reg = mr_server_registry(ctx->server);
    if (!reg)
        return mr_err_set(err, MR_ESTATE, "no model loaded: start the server with --model-dir");
    mr_model_ref *ref;
    int rc = mr_registry_acquire(reg, r->model, &ref, err);
    if (rc) return rc;
    const moe_model *m = ref->model;
    mr_arena *a = ctx->arena;
    int T = m->n_tasks, F = m->n_cat + m->n_num;
    Moerec__V1__GetModelInfoResponse *out = mr_arena_alloc(a, sizeof *out);
    Moerec__V1__TaskInfo *ti = mr_arena_calloc(a, (size_t)T, sizeof *ti);
    Moerec__V1__TaskInfo **tp = mr_arena_calloc(a, (size_t)T, sizeof *tp);
    Moerec__V1__FeatureInfo *fi = mr_arena_calloc(a, (size_t)F + 1, sizeof *fi);
    Moerec__V1__FeatureInfo **fp = mr_arena_calloc(a, (size_t)F + 1, sizeof *fp);
    if (!out || !ti || !tp || !fi || !fp) {
        mr_model_release(ref);
        return mr_err_set(err, MR_ENOMEM, "out of request memory");
    }
    moerec__v1__get_model_info_response__init(out);
    /* every string is copied: the reference is released before encoding */
    out->model = mr_arena_strdup(a, ref->name);
    out->version = mr_arena_strdup(a, ref->version);
    out->architecture = (char *)moe_arch_kind_name(m->net->arch.kind);
    out->gate = (char *)gate_kind_name(m->net->arch.gate.kind);
    out->loaded_at_ms = ref->loaded_at_ms;
    out->precision = (char *)moe_precision_name(m->precision_used);
    out->precision_note = mr_arena_strdup(a, m->precision_note);
    int experts = 0;
    for (int j = 0; j < m->net->n_levels; j++) experts += m->net->levels[j].n_experts;
    out->experts = (uint32_t)experts;
    for (int k = 0; k < T; k++) {
        moerec__v1__task_info__init(&ti[k]);
        ti[k].name = mr_arena_strdup(a, m->tasks[k].name);
        ti[k].kind = m->tasks[k].kind == MOE_TASK_REGRESSION ? "regression" : "binary";
        ti[k].weight = m->tasks[k].weight;
        tp[k] = &ti[k];
    }
    for (int f = 0; f < m->n_cat; f++) {
        const moe_table *t = &m->tables[m->cat[f].table];
        moerec__v1__feature_info__init(&fi[f]);
        fi[f].name = mr_arena_strdup(a, m->cat[f].name);
        fi[f].kind = "categorical";
        fi[f].hashing = (char *)idhash_kind_name(t->kind);
        fi[f].rows = (uint64_t)t->rows;
        fi[f].dim = (uint32_t)t->dim;
        fp[f] = &fi[f];
    }
    for (int f = 0; f < m->n_num; f++) {
        Moerec__V1__FeatureInfo *x = &fi[m->n_cat + f];
        moerec__v1__feature_info__init(x);
        x->name = mr_arena_strdup(a, m->num[f].name);
        x->kind = "numeric";
        x->dim = 1;
        fp[m->n_cat + f] = x;
    }
    out->tasks = tp;
    out->n_tasks = (size_t)T;
    out->features = fp;
    out->n_features = (size_t)F;
    out->extra_dim = (uint32_t)m->extra_dim;
    if (m->n_hist_act) { /* the actions AppendEvents should carry for this model */
        char **ha = mr_arena_calloc(a, (size_t)m->n_hist_act, sizeof *ha);
        for (int i = 0; ha && i < m->n_hist_act; i++)
            if (!(ha[i] = mr_arena_strdup(a, m->hist_act[i]))) ha = NULL;
        if (!ha) {
            mr_model_release(ref);
            return mr_err_set(err, MR_ENOMEM, "out of request memory");
        }
        out->history_actions = ha;
        out->n_history_actions = (size_t)m->n_hist_act;
    }
    if ((rc = table_info(a, ref, out)) ||
        (ref->retrievers && (rc = retriever_info(a, ref->retrievers, out)))) {
        mr_model_release(ref);
        return mr_err_set(err, rc, "out of request memory");
    }
    mr_model_release(ref);
    *resp = &out->base;
    return MR_OK;
}

int mr_handle_admin_reload(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                           mr_err *err) {
    const Moerec__V1__ReloadRequest *r = (const void *)req;
    mr_registry *reg = mr_server_registry(ctx->server);
    /* TLS certificate files first: bad ones fail the call before any model
     * is swapped (the certificate in use stays) */
    if (mr_server_reload_tls(ctx->server, err)) return MR_ESTATE;
    Moerec__V1__ReloadResponse *out = mr_arena_alloc(ctx->arena, sizeof *out);
    if (!reg && mr_server_tls_on(ctx->server) && !r->model[0] && !r->version[0]) {
        if (!out) return mr_err_set(err, MR_ENOMEM, "out of request memory");
        moerec__v1__reload_response__init(out); /* certificates only: no model here */
        *resp = &out->base;
        return MR_OK;
    }
    if (!reg)
        return mr_err_set(err, MR_ESTATE, "no model loaded: start the server with --model-dir");
    char *prev = mr_arena_alloc(ctx->arena, 32), *now = mr_arena_alloc(ctx->arena, 32);
    if (!out || !prev || !now) return mr_err_set(err, MR_ENOMEM, "out of request memory");
    int rc = mr_registry_reload(reg, r->model, r->version, prev, now, err);
    if (rc) return rc;
    moerec__v1__reload_response__init(out);
    out->model = mr_arena_strdup(ctx->arena, r->model[0] ? r->model : mr_registry_default(reg));
    out->previous_version = prev;
    out->version = now;
    *resp = &out->base;
    return MR_OK;
}
