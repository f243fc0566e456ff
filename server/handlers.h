/* handlers.h — RPC handlers (see server.h for the signature). Each reads as
 * guard clauses: validate, return an error with a message, then the happy
 * path. Responses are allocated in the call's arena. */
#ifndef MOEREC_SERVER_HANDLERS_H
#define MOEREC_SERVER_HANDLERS_H

#include "server/server.h"

int mr_handle_health_check(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                           mr_err *err);
int mr_handle_score(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                    mr_err *err);
int mr_handle_get_model_info(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                             mr_err *err);
int mr_handle_admin_reload(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                           mr_err *err);
int mr_handle_retrieve(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                       mr_err *err);
int mr_handle_recommend(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                        mr_err *err);
int mr_handle_upsert_items(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                           mr_err *err);
int mr_handle_append_events(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                            mr_err *err);
int mr_handle_admin_push_embeddings(mr_call_ctx *ctx, const ProtobufCMessage *req,
                                    ProtobufCMessage **resp, mr_err *err);
int mr_handle_admin_checkpoint(mr_call_ctx *ctx, const ProtobufCMessage *req,
                               ProtobufCMessage **resp, mr_err *err);
int mr_handle_admin_stats(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                          mr_err *err);

/* Score r's candidates on one model version (ref held by the caller): the
 * body of Score, shared with Recommend. *out lives in ctx->arena. */
struct mr_model_ref;
struct Moerec__V1__ScoreRequest;
struct Moerec__V1__ScoreResponse;
int mr_score_with_model(mr_call_ctx *ctx, struct mr_model_ref *ref,
                        const struct Moerec__V1__ScoreRequest *r,
                        struct Moerec__V1__ScoreResponse **out, mr_err *err);

/* Request features against model m's schema: every name known and of its
 * kind, every categorical with 1..64 values (INVALID_ARGUMENT naming it).
 * `also` (may be NULL) is one more categorical name accepted (UpsertItems:
 * the retriever set's expert column). where / where_idx name the features
 * in errors ("user_features", or "<where>[where_idx].features" when
 * where_idx >= 0). m NULL (no model loaded): only the value counts are
 * checked. */
struct moe_model;
struct Moerec__V1__Features;
int mr_features_check(const struct moe_model *m, const struct Moerec__V1__Features *f,
                      const char *also, const char *where, int where_idx, mr_err *err);
int mr_handle_delete_items(mr_call_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                           mr_err *err);

/* Health status of a service name ("" = whole server): a
 * HealthCheckResponse ServingStatus, or -1 for a service moerec does not
 * serve. */
int mr_health_status(const mr_server *s, const char *service);

#endif
