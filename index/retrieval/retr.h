/* retr.h — the expert retriever interface shared by every kind of expert.
 *
 * A retriever ("expert") answers: given query vectors (or, for experts that
 * need no vector, only the user's recent behaviour), return the k best item
 * ids with scores. FAISS indexes (retr_faiss.h), the MinHash co-occurrence
 * expert (retr_minhash.h), the popularity fallback (retr_pop.h) and experts
 * searched through callbacks (retr_callback.h: the server's remote experts,
 * another moerec reached over gRPC) all sit behind this one vtable, so the
 * router (router.h) treats them alike.
 *
 * Scores are "higher is better" for every kind: an L2 index reports the
 * negated squared distance. Missing results (fewer than k items) come back
 * as id -1 and score -INFINITY, after every real result.
 */
#ifndef MOEREC_INDEX_RETR_H
#define MOEREC_INDEX_RETR_H

#include <stdint.h>

#include "common/error.h"

#define RETR_NAME_MAX 64
#define RETR_K_MAX 10000     /* hard limit on the k a caller asks of a router */
#define RETR_FETCH_MAX 30000 /* hard limit on k per expert search (the router over-fetches) */

typedef enum {
    RETR_FAISS = 1,      /* vector index on the FAISS C API */
    RETR_MINHASH = 2,    /* MinHash-LSH item co-occurrence */
    RETR_POPULARITY = 3, /* decayed popularity counts */
    RETR_CALLBACK = 4,   /* searched through caller-supplied functions (retr_callback.h):
                                 the server's remote experts, another moerec over gRPC */
} retr_kind;

typedef enum { RETR_METRIC_IP = 0, RETR_METRIC_L2 = 1 } retr_metric;

/* What the caller knows about the user, as plain arrays (the retrievers do
 * not depend on the store). */
typedef struct retr_user {
    const int64_t *recent; /* (n_recent) item ids, oldest first; may be NULL */
    int n_recent;
} retr_user;

typedef struct mr_retr mr_retr;

typedef struct retr_ops {
    /* q (nq, dim) or NULL when dim == 0; ids, scores (nq, k). Inputs are
     * already validated by retr_search. Must be safe to call concurrently. */
    int (*search)(mr_retr *r, const float *q, int nq, int k, const retr_user *user, int64_t *ids,
                  float *scores, mr_err *e);
    int64_t (*size)(mr_retr *r); /* live items */
    void (*free)(mr_retr *r);
} retr_ops;

struct mr_retr {
    char name[RETR_NAME_MAX]; /* unique within a router */
    retr_kind kind;
    int dim; /* query dimension; 0 = needs no query vector */
    const retr_ops *ops;
    void *impl; /* the kind's own state */
};

/* Validated search: dim must equal r->dim (ignored when r->dim == 0), k in
 * [1, RETR_FETCH_MAX], nq >= 1, every query value finite. */
int retr_search(mr_retr *r, const float *q, int dim, int nq, int k, const retr_user *user,
                int64_t *ids, float *scores, mr_err *e);
/* Number of live items (0 for NULL). */
int64_t retr_size(mr_retr *r);
void retr_free(mr_retr *r);
const char *retr_kind_name(retr_kind kind);

/* Shared by the implementations: the name rule of common/name.h with the
 * expert limit (1..RETR_NAME_MAX-1 bytes of [A-Za-z0-9_.-]), and the
 * k/dim/finite checks of retr_search. */
int retr_check_name(const char *name, mr_err *e);
int retr_check_query(const mr_retr *r, const float *q, int dim, int nq, int k, mr_err *e);
/* Fill rows [from, k) of one result row with the "missing" marker. */
void retr_fill_missing(int64_t *ids, float *scores, int from, int k);

#endif
