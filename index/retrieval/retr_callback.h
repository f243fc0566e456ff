/* retr_callback.h — an expert retriever searched through caller-supplied
 * functions (kind RETR_CALLBACK).
 *
 * The retrieval library knows nothing of networks; the server plugs its
 * remote experts (server/remote_expert.c: another moerec answering
 * Retrieve over gRPC) in through this interface, and the router treats
 * them like any other expert. A search is split in two so the router can
 * keep several remote calls in flight at once without a thread each:
 * `start` sends the request and returns at once, `finish` waits for the
 * answer (up to the deadline) and fills the results. The router starts
 * every callback expert of a query first, searches its local experts on
 * the thread pool meanwhile, then finishes the callbacks.
 *
 * A callback expert may fail for reasons outside the caller's request (a
 * machine down, a deadline passed): the router does not fail the query,
 * it passes the expert's budget on to the others and reports the failure
 * per expert in router_result (router.h).
 */
#ifndef MOEREC_INDEX_RETR_CALLBACK_H
#define MOEREC_INDEX_RETR_CALLBACK_H

#include "index/retrieval/retr.h"

typedef struct retr_callbacks {
    /* Send one search: q (dim) (NULL when dim == 0), k results wanted,
     * deadline_ms an absolute CLOCK_REALTIME time in ms (0 = the
     * implementation's own limit). On success *call is the pending
     * search, always passed to finish exactly once. Must be safe to call
     * concurrently. */
    int (*start)(void *ctx, const float *q, int dim, int k, const retr_user *user,
                 int64_t deadline_ms, void **call, mr_err *e);
    /* Wait for a started search and release it: ids, scores (k), best
     * first, missing results id -1 / score -INFINITY. */
    int (*finish)(void *ctx, void *call, int64_t *ids, float *scores, int k, mr_err *e);
    /* Items the expert holds; -1 when not known (yet). */
    int64_t (*size)(void *ctx);
    /* Release ctx (NULL: nothing to release). */
    void (*free)(void *ctx);
} retr_callbacks;

/* A callback expert called name with query dimension dim (>= 0). cb is
 * copied; ctx is owned by the expert from here on (cb->free releases it
 * with the expert, also when this call fails). */
int retr_callback_create(mr_retr **out, const char *name, int dim, const retr_callbacks *cb,
                         void *ctx, mr_err *e);
/* The two halves of a search, with retr_search's checks on start (a
 * failed start needs no finish). */
int retr_callback_start(mr_retr *r, const float *q, int dim, int k, const retr_user *user,
                        int64_t deadline_ms, void **call, mr_err *e);
int retr_callback_finish(mr_retr *r, void *call, int64_t *ids, float *scores, int k, mr_err *e);
/* The ctx given at creation (NULL when r is not a callback expert), and
 * its callback table, so an implementation recognises its own experts. */
void *retr_callback_ctx(const mr_retr *r);
const retr_callbacks *retr_callback_table(const mr_retr *r);

#endif
