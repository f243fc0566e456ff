/* inproc.c — a call through decode, validate, handler and encode in the
 * calling thread (see inproc.h). Mirrors server.c's on_recv/run_handler:
 * the same arena bound, the same messages, the same status mapping, so a
 * fuzz target reaches exactly the code a client's bytes reach.
 */
#include "server/inproc.h"

#include <grpc/status.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "server/score_decode.h"
#include "server/validate.h"

typedef struct inproc_alloc {
    mr_arena *arena;
    int exhausted;
} inproc_alloc;

static void *inproc_pb_alloc(void *data, size_t size) {
    inproc_alloc *a = data;
    void *p = mr_arena_alloc(a->arena, size);
    if (!p) a->exhausted = 1;
    return p;
}
static void inproc_pb_free(void *data, void *ptr) { (void)data, (void)ptr; }

static void set_result(mr_inproc_result *out, int status, const char *msg) {
    out->status = status;
    snprintf(out->msg, sizeof out->msg, "%s", msg ? msg : "");
}

/* Everything after the method lookup; the arena is the caller's. */
static void inproc_run(mr_server *s, const mr_method *m, mr_arena *arena, const uint8_t *req,
                       size_t n, mr_inproc_result *out) {
    const mr_server_config *cfg = mr_server_config_of(s);
    inproc_alloc ia = {arena, 0};
    ProtobufCAllocator alloc = {inproc_pb_alloc, inproc_pb_free, &ia};
    ProtobufCMessage *msg = NULL;
    if (m->request == &moerec__v1__score_request__descriptor) { /* as server.c's decode */
        Moerec__V1__ScoreRequest *sr = mr_score_request_decode(arena, req, n);
        if (sr) msg = &sr->base;
    }
    if (!msg) msg = protobuf_c_message_unpack(m->request, &alloc, n, req);
    char buf[256];
    if (!msg) {
        if (ia.exhausted) {
            snprintf(buf, sizeof buf, "request needs more than %zu bytes of memory to decode",
                     cfg->request_arena_bytes);
            set_result(out, GRPC_STATUS_RESOURCE_EXHAUSTED, buf);
        } else {
            snprintf(buf, sizeof buf, "malformed %s message", m->request->name);
            set_result(out, GRPC_STATUS_INVALID_ARGUMENT, buf);
        }
        return;
    }
    mr_err err;
    mr_err_clear(&err);
    if (mr_validate_message(msg, cfg, &err) != MR_OK) {
        set_result(out, GRPC_STATUS_INVALID_ARGUMENT, err.msg);
        return;
    }
    mr_call_ctx ctx = {.server = s, .arena = arena, .method = m->path, .start_ns = mr_now_ns()};
    ProtobufCMessage *resp = NULL;
    int rc = m->handler(&ctx, msg, &resp, &err);
    if (rc != MR_OK) {
        set_result(out, mr_err_grpc_code(rc), err.msg[0] ? err.msg : mr_err_name(rc));
        return;
    }
    size_t sz = protobuf_c_message_get_packed_size(resp);
    if (sz > cfg->max_send_bytes) {
        snprintf(buf, sizeof buf, "response of %zu bytes exceeds max_send_bytes %zu", sz,
                 cfg->max_send_bytes);
        set_result(out, GRPC_STATUS_RESOURCE_EXHAUSTED, buf);
        return;
    }
    uint8_t *packed = mr_arena_alloc(arena, sz ? sz : 1);
    if (!packed) { /* the wire path packs into a gRPC slice, outside the arena */
        set_result(out, GRPC_STATUS_OK, NULL);
        out->resp_bytes = sz;
        return;
    }
    out->resp_bytes = protobuf_c_message_pack(resp, packed);
    set_result(out, GRPC_STATUS_OK, NULL);
}

int mr_server_invoke(mr_server *s, const char *path, const uint8_t *req, size_t n,
                     mr_inproc_result *out, mr_err *err) {
    memset(out, 0, sizeof *out);
    const mr_method *m = mr_server_find_method(path, NULL);
    if (!m) return mr_err_set(err, MR_EINVAL, "unknown method %s", path);
    if (!m->handler || m->server_streaming) {
        set_result(out, GRPC_STATUS_UNIMPLEMENTED, "streaming or unbuilt method");
        return MR_OK;
    }
    mr_arena arena;
    mr_arena_init(&arena, 16 * 1024, mr_server_config_of(s)->request_arena_bytes);
    inproc_run(s, m, &arena, req, n, out);
    mr_arena_free(&arena);
    return MR_OK;
}
