/* louvain.h — Louvain community detection on Barber's bipartite modularity.
 *
 *   Q = (1/m) sum_{u,i} (B_ui - gamma k_u d_i / m) delta(c_u, c_i)
 *
 * over a user x item graph (bigraph.h): m the total edge weight, k_u and
 * d_i weighted degrees, gamma the resolution (GraphHash uses 200 for
 * retrieval sets, 5 for CTR sets). Per community c with user degree K_c,
 * item degree D_c and internal weight E_c, Q = (1/m) sum_c (E_c -
 * gamma K_c D_c / m); a node x (degrees k_x, d_x) joining c gains
 * w(x, c) - gamma (K_c d_x + k_x D_c) / m, which keeps the same form after
 * aggregation, when a super-node carries both degrees.
 *
 * Local moving (nodes in a seeded random order, best positive gain, ties
 * keep the current community; after the first pass only nodes with a
 * neighbour that moved are revisited) repeats until a pass moves nothing
 * or gains less than tol;
 * then communities become nodes and the next level starts; it stops when a
 * level moves nothing. Single-threaded and seeded: same graph, parameters
 * and seed -> same communities on every machine. Modularity never
 * decreases from one level to the next.
 */
#ifndef MOEREC_HASHING_LOUVAIN_H
#define MOEREC_HASHING_LOUVAIN_H

#include <stdint.h>

#include "common/error.h"
#include "hashing/bigraph.h"

#define LOUVAIN_MAX_LEVELS 32

typedef struct louvain_level {
    double modularity; /* Q after this level's local moving */
    int32_t ncomm;     /* communities after this level */
    int passes;        /* local-moving passes run */
    int64_t moves;     /* node moves made */
    double seconds;    /* wall time of the level */
} louvain_level;

/* Called after each level (e.g. to print progress); may be NULL. */
typedef void (*louvain_level_fn)(int level, const louvain_level *lv, void *ctx);

typedef struct louvain_params {
    double resolution; /* gamma > 0; 1 = Barber's modularity */
    uint64_t seed;     /* node order */
    int max_levels;    /* <= LOUVAIN_MAX_LEVELS; 0 = the maximum */
    int max_passes;    /* per level; 0 = 64 */
    double tol;        /* stop a level when a pass gains < tol in Q; 0 = 1e-7 */
    louvain_level_fn on_level;
    void *ctx;
} louvain_params;

/* Defaults: resolution 1, seed 0, limits as documented above. */
louvain_params louvain_params_default(void);

typedef struct louvain_result {
    int32_t *comm; /* (nu + ni) community of users then items, 0..ncomm-1
                                 numbered by first appearance in that order */
    int32_t ncomm;
    double modularity; /* final Q (maintained incrementally) */
    int nlevels;
    louvain_level level[LOUVAIN_MAX_LEVELS];
    /* Cluster sizes in original nodes (users + items). */
    int64_t size_min, size_max, size_median, size_p90, singletons;
    double size_mean;
} louvain_result;

int louvain_run(const bigraph *g, const louvain_params *p, louvain_result *out, mr_err *e);
void louvain_result_free(louvain_result *r);

/* Q of a partition comm (nu + ni) computed directly from the edges,
 * O(E + nu + ni): the reference the incremental value is checked against.
 * MR_EINVAL if a community id is negative or >= ncomm. */
int louvain_modularity(const bigraph *g, const int32_t *comm, int32_t ncomm, double resolution,
                       double *q, mr_err *e);

#endif
