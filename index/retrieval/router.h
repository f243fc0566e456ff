/* router.h — routes each query to the top-p set of expert retrievers,
 * searches them in parallel and merges their candidates.
 *
 * Like RouterRetriever (AAAI 2025) each expert owns pilot embeddings:
 * k-means centroids of the queries (or items) on which that expert is
 * best, built by router_build_pilots and saved with the model version. Per
 * query:
 *   similarity of the routing vector to every pilot (cosine) -> per-expert
 *   score (its best pilot) -> softmax with temperature -> the top-p set
 *   (the smallest prefix whose cumulative probability exceeds p; at least
 *   one, at most max_experts) -> plus the fallback expert, always on when
 *   configured -> the candidate budget k split across the kept experts in
 *   proportion to routing weight (budgets sum to k) -> experts searched in
 *   parallel on a thread pool -> merge (per-expert min-max normalised score
 *   times routing weight, reciprocal rank fusion, or raw scores for experts
 *   sharing one embedding space), deduplicate, drop
 *   exclusions; each expert first fills its own budget, leftovers go to
 *   the best remaining candidates.
 * Every candidate keeps its expert attribution and routing weight, and the
 * router counts per expert how often it was routed, for metrics.
 *
 * Callback experts (retr_callback.h: remote experts on other machines)
 * are started before the local experts are searched and finished after,
 * so their calls run in parallel with each other and with the local
 * searches; one that fails (unreachable, past the deadline, an error
 * answer) does not fail the query: it is reported in the result and its
 * budget passes on like the budget of an expert that ran dry.
 *
 * Thread safety: router_retrieve and router_route may run concurrently.
 * Adding experts and changing pilots must happen before serving (build a
 * new router and swap it to reload). The router does not own its experts.
 */
#ifndef MOEREC_INDEX_ROUTER_H
#define MOEREC_INDEX_ROUTER_H

#include <stdint.h>

#include "common/arena.h"
#include "common/error.h"
#include "common/threadpool.h"
#include "index/retrieval/retr.h"

#define ROUTER_MAX_EXPERTS 64 /* attribution is a 64-bit mask */
#define ROUTER_MAX_SPACES 8   /* query vectors per request */

/* NORM: per-expert min-max normalised score x routing weight, summed over
 * the experts that found an item. RRF: sum of 1 / (rrf_k + rank + 1).
 * RAW: the experts' own scores, best one kept: only for experts that share
 * one embedding space and metric (e.g. one catalogue split by domain). */
typedef enum { ROUTER_MERGE_NORM = 0, ROUTER_MERGE_RRF = 1, ROUTER_MERGE_RAW = 2 } router_merge;
typedef enum { ROUTER_MODE_TOPP = 0, ROUTER_MODE_ALL = 1 } router_mode;

typedef struct router_config {
    int dim;               /* routing space (query vector 0) dimension */
    float temperature;     /* softmax temperature; 0 = 0.05 */
    float top_p;           /* top-p threshold in (0, 1]; 0 = 0.6 */
    int max_experts;       /* routed experts at most; 0 = 3 */
    const char *fallback;  /* always-on expert's name; NULL = none */
    float fallback_weight; /* least budget weight of the fallback; 0 = 0.1 */
    router_merge merge;    /* ROUTER_MERGE_NORM (default), _RRF or _RAW */
    int rrf_k;             /* RRF constant; 0 = 60 */
    int k_max;             /* largest k a caller may ask; 0 = RETR_K_MAX */
} router_config;

/* Fill the zero fields of c with the defaults above (the one place they
 * are defined: router_create and the retriever set's manifest use it). */
void router_config_defaults(router_config *c);

typedef struct mr_router mr_router;

/* Query vectors, one per embedding space; vecs[0] is the routing space. */
typedef struct router_query {
    const float *vecs[ROUTER_MAX_SPACES];
    int dims[ROUTER_MAX_SPACES];
    int n_spaces;
} router_query;

typedef struct router_options {
    router_mode mode;           /* TOPP (default) or ALL: every expert (or every
                                 named one) asked for k, merged without quotas */
    float top_p;                /* > 0 overrides the config */
    int merge;                  /* -1 (or 0 with merge_set = 0) = config */
    int merge_set;              /* 1: use `merge` */
    const char *const *experts; /* (n_experts) search only these, by name */
    int n_experts;
    int no_fallback;     /* 1: do not add the fallback expert */
    int64_t deadline_ms; /* callback (remote) experts answer by this CLOCK_REALTIME time
                                 in ms; 0 = their own limit */
} router_options;

typedef struct router_cand {
    int64_t id;       /* item id */
    float score;      /* merged score, descending in a result */
    float raw;        /* the attributed expert's own score */
    int expert;       /* attributed expert (index, see router_expert_name) */
    int rank;         /* rank in that expert's list, 0-based */
    float weight;     /* routing weight of that expert */
    uint64_t experts; /* bit e set: expert e returned this item */
} router_cand;

typedef struct router_result {
    router_cand *cands;  /* (n) best first */
    int n;               /* <= k; fewer when the experts ran dry */
    float *weights;      /* (n_experts) routing probability per expert */
    int *budgets;        /* (n_experts) candidates asked; 0 = not searched. They sum
                                 to k, plus the budget passed on to experts that took up
                                 what others could not fill (router_retrieve) */
    int n_searched;      /* experts searched */
    int64_t cost;        /* vectors held by the searched vector experts */
    int *failed;         /* (n_experts) 0, or the MR_E* code of a callback (remote) expert
                                 whose search failed: it returned nothing and its budget
                                 passed on to the others (step 8 of the rule) */
    const char **errors; /* (n_experts) NULL, or why that expert failed */
    int n_failed;        /* experts with failed[e] != 0 */
} router_result;

typedef struct router_expert_stats {
    uint64_t routed;     /* kept by the top-p rule (or named by the caller) */
    uint64_t fallback;   /* added as the fallback */
    uint64_t candidates; /* candidates attributed to it in results */
} router_expert_stats;

int router_create(mr_router **out, const router_config *cfg, mr_pool *pool, mr_err *e);
void router_free(mr_router *rt);
/* Add an expert searched with query vector `space`; returns its index
 * (>= 0) or a negative error (duplicate name, too many experts). */
int router_add_expert(mr_router *rt, mr_retr *r, int space, mr_err *e);
int router_n_experts(const mr_router *rt);
const char *router_expert_name(const mr_router *rt, int expert);
/* Index of the expert called name, or MR_EINVAL naming the known experts. */
int router_find(const mr_router *rt, const char *name, mr_err *e);

/* Replace expert's pilots: p (n, dim); n = 0 clears them. */
int router_set_pilots(mr_router *rt, int expert, const float *p, int n, mr_err *e);
int router_n_pilots(const mr_router *rt, int expert);
/* Builder: x (n, dim) training queries or items, best (n) the expert each
 * row belongs to (-1 = skip). Per expert, k-means (FAISS) with up to
 * k_per_expert centroids becomes its pilots. */
int router_build_pilots(mr_router *rt, const float *x, const int *best, int64_t n, int k_per_expert,
                        mr_err *e);
/* Pilots + routing settings, saved beside the model version; load matches
 * experts by name; experts absent from the file keep the pilots they had
 * (none on a fresh router). On an error, experts read before it already
 * have their new pilots: load into a fresh router and discard it on
 * failure. */
int router_save(const mr_router *rt, const char *path, mr_err *e);
int router_load_pilots(mr_router *rt, const char *path, mr_err *e);

/* Routing only. q (dim). probs (n_experts): softmax over experts with
 * pilots (0 for the others); kept (n_experts): 1 routed, 2 fallback, 0 not.
 * Returns the number kept, or a negative error. top_p <= 0: config. */
int router_route(mr_router *rt, const float *q, int dim, float top_p, float *probs, int *kept,
                 mr_err *e);
/* The full retrieve. exclusions (n_excl) item ids never returned. Result
 * memory comes from arena (freed by the caller with the request). */
int router_retrieve(mr_router *rt, const router_query *q, const retr_user *user, int k,
                    const int64_t *exclusions, int n_excl, const router_options *opt,
                    mr_arena *arena, router_result *res, mr_err *e);
/* The expert of `kind` whose pilot is nearest (cosine) to v (dim), for
 * placing a new item; -1 when no such expert has pilots. */
int router_nearest_expert(const mr_router *rt, const float *v, int dim, retr_kind kind);
int router_stats_get(const mr_router *rt, int expert, router_expert_stats *st);
uint64_t router_queries(const mr_router *rt);

/* The routing rules as pure functions (used by router_route, tested alone). */
/* probs (n) = softmax(scores / temperature). */
void router_softmax(const float *scores, int n, float temperature, float *probs);
/* Indices (out, by probability descending, ties to the lower index) of the
 * smallest prefix whose cumulative sum exceeds p; at least 1, at most
 * max_keep; probs < 0 are never kept. Returns the count. */
int router_top_p(const float *probs, int n, float p, int max_keep, int *out);
/* Split k over n weights (>= 0) by largest remainder: budgets sum to k;
 * every expert gets >= 1 when k >= n. */
void router_split_budget(const float *w, int n, int k, int *budgets);

#endif
