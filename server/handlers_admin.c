/* handlers_admin.c — moerec.v1.Admin: Stats (Reload arrives with model
 * loading). */
#include "proto/moerec.pb-c.h"
#include "server/handlers.h"

int mr_handle_admin_stats(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                          mr_err *err) {
    (void)req;
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
    out->version = (char *)MOEREC_VERSION;
    *resp = &out->base;
    return MR_OK;
}
