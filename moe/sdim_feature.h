/* sdim_feature.h — the ranker's long-behaviour inputs: the SDIM long-interest
 * vector per candidate and a short-sequence target attention over the last
 * N events, computed the SAME way at training and at serving time.
 *
 * Serving (sdim_feature_serve): the request reads the user's bucket table
 * once (index/store/behaviour.h user_state_get), signs all candidates with one
 * sgemm and reads nsig buckets per candidate:
 *
 *   long(q) = (1/nsig) * sum_i pool(bucket sig_i(q) of signature i)
 *
 * O(m d + nsig d) per candidate, independent of the sequence length L.
 *
 * Training (sdim_seq): a user's events are replayed in time order into a
 * table with exactly the store's operations (sign with the same hasher in a
 * batch sgemm, sdim_table_add in order; when more than l_max events are
 * kept, sdim_table_sub of the oldest before the add, as behaviour_append
 * does), so a sample at time t sees only events before t (no leakage) and
 * its feature is bit-identical to what serving computes from the store's
 * table after the same appends. sdim_seq also keeps the last events for
 * the short-sequence attention.
 */
#ifndef MOEREC_MOE_SDIM_FEATURE_H
#define MOEREC_MOE_SDIM_FEATURE_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "hashing/sdim.h"
#include "moe/model.h"
#include "moe/scorer.h"

/* ---- serving ---------------------------------------------------------------- */

/* out row j (stride ostride >= d, so it can write straight into the ranker's
 * input matrix) = long-interest vector of candidate cand row j (n, d). table:
 * the user's bucket table (hasher's layout); NULL (no events) gives zeros.
 * Allocates (n, m) + (n, nsig) scratch per call. */
int sdim_feature_serve(const sdim_hasher *h, const void *table, const float *cand, int n,
                       sdim_pool pool, float *out, int ostride, mr_err *e);

/* Short-sequence target attention: out (n, ostride) rows = softmax(q K^T /
 * sqrt(d)) K over the k most recent events recent (k, d), oldest first.
 * k = 0 gives zeros. scratch NULL or (n, k) floats. */
int sdim_feature_short(const float *recent, int k, const float *cand, int n, int d, float *out,
                       int ostride, float *scratch, mr_err *e);

/* ---- the ranker's input --------------------------------------------------------- */

/* The id an event's action is stored under (index/store/behaviour.h
 * behaviour_event.action; the server's AppendEvents and `moerec train`'s
 * events file both use it): 0 for "" (no action), else the low 32 bits of
 * idhash_bytes(action, 0), never 0. */
uint32_t sdim_action_id(const char *action, size_t len);

/* The SDIM block of the ranker's "extra" input (model.json
 * features.extra_dim = 2 d): row j (stride ostride >= 2 d) =
 *   [ long(q_j) (d, l2 pooling, the paper's) | short(q_j) (d) ]
 * from the user's table (NULL: zeros) and the k most recent events recent
 * (k, d) (k = 0: zeros). A candidate row of all zeros (no item vector: the
 * store zeroes missing rows) gets an all-zero block. Training and serving
 * both build rows with this. */
int sdim_feature_extra(const sdim_hasher *h, const void *table, const float *recent, int k,
                       const float *cand, int n, float *out, int ostride, mr_err *e);

/* The same block with history actions (model.json features.history_actions,
 * n_act >= 0 action ids acts): row j (stride ostride >= 2 d + n_act) =
 *   [ long(q_j) (d) | short(q_j) (d) | act(q_j) (n_act) ]
 *   act_a(q_j) = sum_i softmax_i(q_j . k_i / sqrt(d)) [ract_i == acts_a]
 * the short attention's own weights over the k recent events, whose
 * actions are ract (k; NULL: every event has action 0): which share of
 * the recent events most like the candidate the user liked, loved, ...
 * k = 0 or a zero candidate row gives zeros. n_act 0 is sdim_feature_extra. */
int sdim_feature_extra_act(const sdim_hasher *h, const void *table, const float *recent,
                           const uint32_t *ract, int k, const uint32_t *acts, int n_act,
                           const float *cand, int n, float *out, int ostride, mr_err *e);

/* The model's history-action ids (its features.history_actions through
 * sdim_action_id) into acts (MOE_MAX_HIST_ACTIONS); returns how many. */
int sdim_model_actions(const moe_model *m, uint32_t *acts);

/* The serving hook: fill rows 0..n-1 of a scorer batch (moe_scorer_begin
 * done) with sdim_feature_extra. MR_EINVAL when the model's extra_dim is
 * not 2 d. One table read per request, O(m d + nsig d + k d) per candidate. */
int sdim_feature_to_scorer(moe_scorer *s, const moe_model *m, const sdim_hasher *h,
                           const void *table, const float *recent, int k, const float *cand, int n,
                           mr_err *e);
/* The same for a model with history actions: ract (k) are the recent
 * events' actions (NULL: all 0); the model's extra_dim must be 2 d +
 * m->n_hist_act. */
int sdim_feature_to_scorer_act(moe_scorer *s, const moe_model *m, const sdim_hasher *h,
                               const void *table, const float *recent, const uint32_t *ract, int k,
                               const float *cand, int n, mr_err *e);

/* ---- training: a user's table replayed from the raw sequence ------------------ */

typedef struct sdim_seq {
    const sdim_hasher *h; /* not owned; the store's hasher (same d, m, tau, seed) */
    int l_max;            /* events kept, as the store's l_max */
    int n;                /* events kept now (<= l_max) */
    int head;             /* ring index of the oldest kept event */
    void *table;          /* sdim_table_bytes(&h->layout) */
    float *vecs;          /* (l_max, d) ring of kept embeddings */
    uint32_t *acts;       /* (l_max) ring of their actions (sdim_action_id) */
    uint32_t *sigs;       /* (l_max, nsig) ring of their signatures */
    float *scratch;       /* (chunk, m) projections for batched signing */
    uint32_t *bsig;       /* (chunk, nsig) */
} sdim_seq;

int sdim_seq_create(sdim_seq **out, const sdim_hasher *h, int l_max, mr_err *e);
void sdim_seq_free(sdim_seq *s);
/* Empty the table and the ring (next user). */
void sdim_seq_reset(sdim_seq *s);
/* Append n event embeddings x (n, d), oldest first, each trimming the
 * oldest kept event first when l_max are kept. */
int sdim_seq_push(sdim_seq *s, const float *x, int n, mr_err *e);
/* The same with the events' actions act (n; NULL: all 0). */
int sdim_seq_push_act(sdim_seq *s, const float *x, const uint32_t *act, int n, mr_err *e);
/* The most recent min(k, n) kept embeddings into out (k, d), oldest first;
 * returns how many. */
int sdim_seq_recent(const sdim_seq *s, int k, float *out);
/* The same with their actions into act (k; NULL: not wanted). */
int sdim_seq_recent_act(const sdim_seq *s, int k, float *out, uint32_t *act);
/* Long-interest vectors for n candidates from the current table: exactly
 * sdim_feature_serve on a table equal to the store's. */
int sdim_seq_feature(const sdim_seq *s, const float *cand, int n, sdim_pool pool, float *out,
                     int ostride, mr_err *e);

/* One-shot: the feature from a whole sequence seq (L, d) (a store rebuild
 * of those events, no trims). */
int sdim_feature_from_sequence(const sdim_hasher *h, const float *seq, int L, const float *cand,
                               int n, sdim_pool pool, float *out, int ostride, mr_err *e);

#endif
