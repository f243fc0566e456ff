/* remote_expert.h — retrieval experts served by another moerec.
 *
 * A retriever set may name an expert of kind "remote" (docs/retrieval.md):
 * another moerec that holds it and answers Retrieve for it. This module
 * turns such an entry into a callback expert (index/retrieval/
 * retr_callback.h) that sends
 *   Retrieve{query_vector, k, retrievers: [remote_name], model: remote_model}
 * over a gRPC C-core channel (one per address, shared by every expert and
 * every reloaded version) and reads back the item ids and each item's
 * expert_score, the remote expert's own score, so the router merges them
 * exactly like a local expert's. start sends the call and returns; finish
 * waits for it, so the router keeps every remote call of a query in flight
 * at once.
 *
 * Settings come from the serve config (server/config.h): remote_deadline_ms
 * caps every call (half of the incoming call's remaining time applies when
 * that is shorter), remote_tls / remote_tls_ca_file / remote_tls_cert_file /
 * remote_tls_key_file choose TLS (and a client certificate), and
 * remote_token_file a bearer token sent as `authorization`. The size of a
 * remote expert (for the router's top-up rule and GetModelInfo) is learned
 * from the remote's GetModelInfo, sent beside a Retrieve when the last
 * answer is older than MR_REMOTE_INFO_MS (-1 until the first answer).
 *
 * Counters per (expert, address) live here, not in the experts, so they
 * survive reloads: calls, errors, deadline and unavailable errors, and a
 * latency histogram (/metrics, docs/operations.md).
 */
#ifndef MOEREC_SERVER_REMOTE_EXPERT_H
#define MOEREC_SERVER_REMOTE_EXPERT_H

#include <stdint.h>

#include "common/error.h"
#include "index/retrieval/retr_set.h"
#include "server/config.h"
#include "server/stats.h"

#define MR_REMOTE_INFO_MS 10000 /* size refresh period */
#define MR_REMOTE_MAX 256       /* distinct (expert, address) pairs per server */

typedef struct mr_remotes mr_remotes;

/* Channels, credentials and counters for cfg's remote_* settings (files
 * are read here: a missing CA, certificate or token file is an error
 * naming it). */
int mr_remotes_create(mr_remotes **out, const mr_server_config *cfg, mr_err *e);
/* After every expert made by it is freed. NULL is a no-op. */
void mr_remotes_free(mr_remotes *rs);

/* A retr_set_remote_fn: ctx is the mr_remotes. */
int mr_remote_expert_make(void *ctx, const retr_set_remote *spec, mr_retr **out, mr_err *e);

typedef struct mr_remote_stats {
    const char *name; /* the expert's name in the local set */
    const char *address;
    const mr_method_stats *calls; /* calls, errors, latency histogram */
    uint64_t timeouts;            /* DEADLINE_EXCEEDED */
    uint64_t unavailable;         /* UNAVAILABLE (unreachable, refused, shutting down) */
} mr_remote_stats;

int mr_remotes_count(const mr_remotes *rs);
/* Entry i < mr_remotes_count; the strings live as long as rs. */
int mr_remotes_stats(const mr_remotes *rs, int i, mr_remote_stats *out);

#endif
