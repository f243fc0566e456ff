/* handlers_admin.c — moerec.v1.Admin: Stats (Reload arrives with model
 * loading). */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/moerec.pb-c.h"
#include "server/backend.h"
#include "server/handlers.h"
#include "server/registry.h"
#include "server/replog.h"

/* The store's memory cache counters. */
static int store_stats_into(mr_call_ctx *ctx, Moerec__V1__StatsResponse *out) {
    mr_backend *be = mr_server_backend(ctx->server);
    if (!be) return 0;
    store_stats st;
    store_get_stats(be->st, &st);
    Moerec__V1__CacheStats *cs = mr_arena_alloc(ctx->arena, sizeof *cs);
    Moerec__V1__CacheStats **cp = mr_arena_alloc(ctx->arena, sizeof *cp);
    if (!cs || !cp) return -1;
    moerec__v1__cache_stats__init(cs);
    cs->name = "store";
    cs->hits = st.cache_hits;
    cs->misses = st.cache_misses;
    cs->evictions = st.cache_evictions;
    cs->bytes = st.cache_bytes;
    cp[0] = cs;
    out->caches = cp;
    out->n_caches = 1;
    return 0;
}

/* Routing counts per expert of the default model's serving version. */
static int route_stats_into(mr_call_ctx *ctx, Moerec__V1__StatsResponse *out) {
    mr_registry *reg = mr_server_registry(ctx->server);
    mr_model_ref *ref;
    if (!reg || mr_registry_acquire(reg, "", &ref, NULL)) return 0;
    int rc = 0;
    if (ref->retrievers) {
        mr_router *rt = retr_set_router(ref->retrievers);
        int n = router_n_experts(rt);
        Moerec__V1__RouteStats *rs = mr_arena_calloc(ctx->arena, (size_t)(n ? n : 1), sizeof *rs);
        Moerec__V1__RouteStats **rp = mr_arena_calloc(ctx->arena, (size_t)(n ? n : 1), sizeof *rp);
        if (!rs || !rp) rc = -1;
        for (int e = 0; !rc && e < n; e++) {
            router_expert_stats es;
            router_stats_get(rt, e, &es);
            moerec__v1__route_stats__init(&rs[e]);
            rs[e].retriever = mr_arena_strdup(ctx->arena, router_expert_name(rt, e));
            if (!rs[e].retriever) rc = -1;
            rs[e].routed = es.routed + es.fallback;
            rp[e] = &rs[e];
        }
        if (!rc) {
            out->routes = rp;
            out->n_routes = (size_t)n;
        }
    }
    mr_model_release(ref);
    return rc;
}

int mr_handle_admin_stats(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                          mr_err *err) {
    const Moerec__V1__StatsRequest *r = (const void *)req;
    mr_arena *a = ctx->arena;
    Moerec__V1__StatsResponse *out = mr_arena_alloc(a, sizeof *out);
    int n = mr_server_method_count();
    Moerec__V1__MethodStats **ms = mr_arena_calloc(a, (size_t)n, sizeof *ms);
    Moerec__V1__MethodStats *items = mr_arena_calloc(a, (size_t)n, sizeof *items);
    if (!out || !ms || !items) return mr_err_set(err, MR_ENOMEM, "out of request memory");
    moerec__v1__stats_response__init(out);
    for (int i = 0; i < n; i++) {
        mr_method_stats *st = mr_server_stats(ctx->server, i);
        moerec__v1__method_stats__init(&items[i]);
        items[i].method = (char *)mr_server_method_at(i)->path;
        items[i].calls = atomic_load(&st->calls);
        items[i].errors = atomic_load(&st->errors);
        items[i].p50_micros = mr_stats_quantile(st, 0.50);
        items[i].p99_micros = mr_stats_quantile(st, 0.99);
        ms[i] = &items[i];
    }
    out->methods = ms;
    out->n_methods = (size_t)n;
    out->uptime_seconds = mr_server_uptime_seconds(ctx->server);
    if (store_stats_into(ctx, out) || route_stats_into(ctx, out))
        return mr_err_set(err, MR_ENOMEM, "out of request memory");
    out->version = (char *)MOEREC_VERSION;
    mr_backend *be = mr_server_backend(ctx->server);
    if (r->digest && !be) return mr_err_set(err, MR_ESTATE, "digest: no store (data_dir)");
    int rc;
    if (r->digest && (rc = store_digest(be->st, &out->store_digest, &out->store_rows, err)))
        return rc;
    if (be && be->log) {
        mr_replog_stats ls;
        mr_replog_get_stats(be->log, &ls);
        out->log_applied_sequence = ls.applied_seq;
        out->log_pending = ls.pending;
        out->log_rejected = ls.rejected;
        out->log_applied_records = ls.applied;
    }
    *resp = &out->base;
    return MR_OK;
}

int mr_handle_admin_checkpoint(mr_call_ctx *ctx, const ProtobufCMessage *req,
                               ProtobufCMessage **resp, mr_err *err) {
    const Moerec__V1__CheckpointRequest *r = (const void *)req;
    mr_backend *be = mr_server_backend(ctx->server);
    if (!be) return mr_err_set(err, MR_ESTATE, "no store to checkpoint: start with data_dir");
    if (r->dir[0] != '/')
        return mr_err_set(err, MR_EINVAL,
                          "dir must be an absolute path on the server, got '%.200s'", r->dir);
    if (strlen(r->dir) > 1024) return mr_err_set(err, MR_EINVAL, "dir: longer than 1024 bytes");
    if (access(r->dir, F_OK) == 0)
        return mr_err_set(err, MR_EEXIST, "dir '%.200s' exists: a checkpoint needs a new folder",
                          r->dir);
    /* a missing parent is the caller's error, not an I/O failure (RocksDB
     * would report it as INTERNAL) */
    char parent[1025];
    size_t pl = strlen(r->dir);
    memcpy(parent, r->dir, pl + 1);
    while (pl > 1 && parent[pl - 1] == '/') parent[--pl] = 0;
    char *slash = strrchr(parent, '/'); /* not NULL: dir starts with '/' */
    if (slash == parent) parent[1] = 0; /* "/x" -> "/" */
    else *slash = 0;
    struct stat sb;
    if (stat(parent, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return mr_err_set(err, MR_EINVAL,
                          "dir '%.200s': its parent '%.200s' is not an existing directory", r->dir,
                          parent);
    int rc = store_checkpoint(be->st, r->dir, err);
    if (rc) return rc;
    /* The sequence the copy holds: read from the copy itself, since the
     * log consumer may have applied more records meanwhile. */
    store_config sc;
    store_config_init(&sc);
    sc.mode = STORE_READ_ONLY;
    sc.cache_bytes = 0;
    mr_store *cp = NULL;
    uint64_t seq = 0;
    if ((rc = store_open(&cp, r->dir, &sc, err)) == 0) {
        rc = store_log_seq_get(cp, &seq, err);
        store_close(cp);
    }
    if (rc) return mr_err_wrap(err, "checkpoint written to '%.200s' but not readable", r->dir);
    Moerec__V1__CheckpointResponse *out = mr_arena_alloc(ctx->arena, sizeof *out);
    if (!out) return mr_err_set(err, MR_ENOMEM, "out of request memory");
    moerec__v1__checkpoint_response__init(out);
    out->dir = (char *)r->dir;
    out->log_sequence = seq;
    *resp = &out->base;
    return MR_OK;
}
