/* handlers_health.c — grpc.health.v1.Health/Check. (Watch is a stream and
 * lives in server.c's state machine.) */
#include <string.h>

#include "proto/health.pb-c.h"
#include "server/handlers.h"
#include "server/replica.h"

static const char *services[] = {"", "grpc.health.v1.Health", "moerec.v1.Recommender",
                                 "moerec.v1.Admin"};

int mr_health_status(const mr_server *s, const char *service) {
    for (size_t i = 0; i < sizeof services / sizeof services[0]; i++)
        if (!strcmp(service ? service : "", services[i]))
            return mr_server_serving(s) && mr_replica_healthy((mr_server *)s)
                       ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                       : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    return -1;
}

int mr_handle_health_check(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                           mr_err *err) {
    const Grpc__Health__V1__HealthCheckRequest *r = (const void *)req;
    int st = mr_health_status(ctx->server, r->service);
    if (st < 0) return mr_err_set(err, MR_ENOTFOUND, "unknown service '%.200s'", r->service);
    Grpc__Health__V1__HealthCheckResponse *out = mr_arena_alloc(ctx->arena, sizeof *out);
    if (!out) return mr_err_set(err, MR_ENOMEM, "out of request memory");
    grpc__health__v1__health_check_response__init(out);
    out->status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)st;
    *resp = &out->base;
    return MR_OK;
}
