/* bpr.h — user and item vectors from implicit feedback by BPR matrix
 * factorisation (Rendle et al. 2009), seeded and parallel.
 *
 * Model: score(u, i) = <U_u, V_i>. Each step takes a positive (u, i) and a
 * uniform negative j != i and ascends log sigma(<U_u, V_i - V_j>) with L2
 * reg (plain SGD, learning rate lr):
 *   U_u += lr (g (V_i - V_j) - reg U_u),  V_i += lr (g U_u - reg V_i),
 *   V_j += lr (-g U_u - reg V_j),         g = sigma(-<U_u, V_i - V_j>).
 *
 * Parallel and deterministic: users are split into BPR_SHARDS shards
 * (u mod BPR_SHARDS). Each epoch runs in `blocks` blocks; within a block
 * every shard processes its share of the block's positives (in a seeded
 * shuffled order) with its own RNG, updating its users' vectors in place
 * and accumulating item updates into its own delta buffer against the
 * item vectors as they were at the block's start; the deltas are then
 * added in shard order. Results depend on the seed and sizes only, not on
 * the thread count. Memory: BPR_SHARDS * n_items * dim floats of deltas.
 */
#ifndef MOEREC_MOE_BPR_H
#define MOEREC_MOE_BPR_H

#include <stdint.h>

#include "common/error.h"
#include "common/threadpool.h"

#define BPR_SHARDS 16

typedef struct bpr_opts {
    int dim;        /* vector width (32)                             */
    int epochs;     /* passes over the positives (20)                */
    int blocks;     /* item-sync blocks per epoch (20)               */
    float lr;       /* SGD learning rate (0.05)                      */
    float reg;      /* L2 (0.0025)                                   */
    float init_std; /* initial N(0, init_std) (0.1)                  */
    uint64_t seed;  /* initialisation, order and negatives (1)       */
    /* called after every epoch (may be NULL): epoch 1-based, mean loss */
    void (*progress)(int epoch, double loss, void *ctx);
    void *ctx;
} bpr_opts;

void bpr_defaults(bpr_opts *o);

/* Train on n positives (user[k], item[k]) with dense ids user < n_users,
 * item < n_items (n_items >= 2). U (n_users, dim) and V (n_items, dim) are
 * written (the caller allocates). pool may be NULL (the caller's thread). */
int bpr_train(const int32_t *user, const int32_t *item, long n, int n_users, int n_items,
              const bpr_opts *o, mr_pool *pool, float *U, float *V, mr_err *e);

/* The k best of s[0..n) into top/topv, best first (ties: lower index
 * first; -INFINITY entries are never better than a real score). Returns
 * how many were kept (min(k, n)). O(n k) worst case, O(n) typical. */
int bpr_topk(const float *s, int n, int k, int *top, float *topv);

/* Recall@k of held-out positives: for each user with test items, the top k
 * items by <U_u, V_i> over all items except the user's training items;
 * recall = hits / |test_u| (the graphhash benchmark's definition), averaged
 * over the users with test items. Training and test positives are CSR per
 * user (off: n_users + 1 offsets). */
double bpr_recall_at(const float *U, const float *V, int n_users, int n_items, int dim, int k,
                     const int64_t *train_off, const int32_t *train_items, const int64_t *test_off,
                     const int32_t *test_items);

#endif
