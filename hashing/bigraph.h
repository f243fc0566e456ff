/* bigraph.h — a user x item interaction graph in CSR form, both directions.
 *
 * GraphHash clusters this graph. Nodes are dense int32 indices (users
 * 0..nu-1, items 0..ni-1, separate spaces); the raw-id builder keeps the
 * sorted raw ids so a dense index maps back to its id (and an id to its
 * index by binary search). Edges are stored twice, by user and by item,
 * each adjacency sorted, with optional float weights (NULL = all 1). Memory
 * is about 2 x (4 + 4 if weighted) bytes per edge plus 8 bytes per node:
 * 10M edges take ~80-160 MB.
 *
 * Input edges must be valid: indices in range, weights finite and > 0, no
 * duplicate (user, item) pair unless BIGRAPH_MERGE_DUPLICATES sums them;
 * with BIGRAPH_SHARED_IDS (users and items drawn from one id space) an edge
 * from an id to itself is rejected as a self-loop. Errors name the edge.
 */
#ifndef MOEREC_HASHING_BIGRAPH_H
#define MOEREC_HASHING_BIGRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

enum {
    BIGRAPH_MERGE_DUPLICATES = 1, /* sum the weights of repeated pairs */
    BIGRAPH_SHARED_IDS = 2,       /* raw ids: user x == item x is a self-loop */
};

#define BIGRAPH_MAX_NODES INT32_MAX

typedef struct bigraph {
    int32_t nu, ni;     /* users, items */
    int64_t nedges;     /* distinct (user, item) pairs */
    double total_w;     /* sum of edge weights: |E| in the modularity */
    int64_t *uoff;      /* (nu + 1) CSR offsets by user */
    int32_t *uadj;      /* (nedges) item of each edge, sorted per user */
    float *uw;          /* (nedges) weights by user, or NULL = all 1 */
    int64_t *ioff;      /* (ni + 1) CSR offsets by item */
    int32_t *iadj;      /* (nedges) user of each edge, sorted per item */
    float *iw;          /* (nedges) weights by item, or NULL */
    double *du;         /* (nu) weighted user degrees */
    double *di;         /* (ni) weighted item degrees */
    uint64_t *user_ids; /* (nu) sorted raw ids, or NULL (dense build) */
    uint64_t *item_ids; /* (ni) sorted raw ids, or NULL */
} bigraph;

/* From dense indices: edge j is (users[j], items[j]) with weight w[j]
 * (w may be NULL). nu, ni >= 1. */
int bigraph_build(bigraph **out, int32_t nu, int32_t ni, const int32_t *users, const int32_t *items,
                  const float *w, size_t nedges, int flags, mr_err *e);
/* From raw uint64 ids: users and items are numbered by ascending id. */
int bigraph_build_ids(bigraph **out, const uint64_t *users, const uint64_t *items, const float *w,
                      size_t nedges, int flags, mr_err *e);
void bigraph_free(bigraph *g);
/* Weight of the k-th edge in user order (1 when unweighted). */
static inline float bigraph_uweight(const bigraph *g, int64_t k) { return g->uw ? g->uw[k] : 1.0f; }
static inline float bigraph_iweight(const bigraph *g, int64_t k) { return g->iw ? g->iw[k] : 1.0f; }
/* Bytes held by g (for memory reports). */
size_t bigraph_bytes(const bigraph *g);

#endif
