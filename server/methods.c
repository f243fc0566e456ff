/* methods.c — the method table: every RPC of moerec.proto and health.proto,
 * with its message types and handler. A NULL handler answers UNIMPLEMENTED
 * with a message naming the method; the table itself is the list of what
 * this build serves (docs/api.md says which issue builds the rest).
 */
#include "proto/health.pb-c.h"
#include "proto/moerec.pb-c.h"
#include "server/handlers.h"
#include "server/server.h"

#define RPC(svc, name, req, resp, fn) \
    { "/" svc "/" name, &req##__descriptor, &resp##__descriptor, fn, 0, 0 }

const mr_method mr_methods[] = {
    RPC("grpc.health.v1.Health", "Check", grpc__health__v1__health_check_request,
        grpc__health__v1__health_check_response, mr_handle_health_check),
    {"/grpc.health.v1.Health/Watch", &grpc__health__v1__health_check_request__descriptor,
     &grpc__health__v1__health_check_response__descriptor, NULL, 1, 0},
    RPC("moerec.v1.Recommender", "Recommend", moerec__v1__recommend_request,
        moerec__v1__recommend_response, mr_handle_recommend),
    RPC("moerec.v1.Recommender", "Score", moerec__v1__score_request, moerec__v1__score_response,
        mr_handle_score),
    RPC("moerec.v1.Recommender", "Retrieve", moerec__v1__retrieve_request,
        moerec__v1__retrieve_response, mr_handle_retrieve),
    RPC("moerec.v1.Recommender", "UpsertItems", moerec__v1__upsert_items_request,
        moerec__v1__upsert_items_response, mr_handle_upsert_items),
    RPC("moerec.v1.Recommender", "AppendEvents", moerec__v1__append_events_request,
        moerec__v1__append_events_response, mr_handle_append_events),
    RPC("moerec.v1.Recommender", "GetModelInfo", moerec__v1__get_model_info_request,
        moerec__v1__get_model_info_response, mr_handle_get_model_info),
    RPC("moerec.v1.Recommender", "DeleteItems", moerec__v1__delete_items_request,
        moerec__v1__delete_items_response, mr_handle_delete_items),
    /* Reload reads a whole model (seconds for a large one): offloaded so it
     * never stalls the calls queued behind it on a completion queue. */
    {"/moerec.v1.Admin/Reload", &moerec__v1__reload_request__descriptor,
     &moerec__v1__reload_response__descriptor, mr_handle_admin_reload, 0, 1},
    RPC("moerec.v1.Admin", "Stats", moerec__v1__stats_request, moerec__v1__stats_response,
        mr_handle_admin_stats),
    /* A checkpoint flushes memtables and links files: offloaded like Reload. */
    {"/moerec.v1.Admin/Checkpoint", &moerec__v1__checkpoint_request__descriptor,
     &moerec__v1__checkpoint_response__descriptor, mr_handle_admin_checkpoint, 0, 1},
    /* fsync'd before the answer: offloaded like Checkpoint */
    {"/moerec.v1.Admin/PushEmbeddings", &moerec__v1__push_embeddings_request__descriptor,
     &moerec__v1__push_embeddings_response__descriptor, mr_handle_admin_push_embeddings, 0, 1},
};
const int mr_nmethods = (int)(sizeof mr_methods / sizeof mr_methods[0]);
