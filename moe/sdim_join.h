/* sdim_join.h — the SDIM inputs of training rows, joined with a behaviour
 * event log by user and time, with no leakage from the future.
 *
 * Each training row (user, candidate item, time t) gets the ranker's SDIM
 * block (sdim_feature_extra: [long | short]) computed from the user's
 * events with time < t only, replayed oldest first (ties of time in log
 * order) through sdim_seq — the store's operations, the store's l_max —
 * so a model trained on these rows sees what serving computes from the
 * store for the same history. Cost: O(total events x m d) for the replay
 * plus O(rows x (m d + nsig d + short_n d)).
 *
 * Events whose item has no vector are skipped (the store keeps such events
 * and counts them toward l_max, contributing nothing; with an item table
 * covering the log the two agree).
 */
#ifndef MOEREC_MOE_SDIM_JOIN_H
#define MOEREC_MOE_SDIM_JOIN_H

#include <stdint.h>

#include "common/error.h"
#include "hashing/sdim.h"
#include "moe/dataset.h"

typedef struct sdim_events {
    long n;                 /* events in the log, any order */
    const uint64_t *user;   /* (n) */
    const uint64_t *item;   /* (n) */
    const int64_t *ts;      /* (n) event time (any unit, same as the rows') */
    const uint32_t *action; /* (n) sdim_action_id of each event, or NULL: all 0 */
} sdim_events;

/* An item's vector (d floats, the store's item table row), or NULL when the
 * item has none. */
typedef const float *(*sdim_item_vec_fn)(uint64_t item, void *ctx);

/* out row r (stride ostride >= 2 d) = the SDIM block of candidate
 * row_item[r] for user row_user[r] at time row_ts[r]: history = that
 * user's events with ts < row_ts[r], the newest l_max of them kept, short
 * part over the newest short_n. A candidate without a vector gets zeros. */
int sdim_join(const sdim_hasher *h, int l_max, int short_n, const sdim_events *ev,
              const uint64_t *row_user, const uint64_t *row_item, const int64_t *row_ts,
              long n_rows, sdim_item_vec_fn vec, void *ctx, float *out, int ostride, mr_err *e);
/* The same with history actions (sdim_feature_extra_act): each row's block
 * ends with n_act floats, the short attention's shares of the actions acts
 * (ids, sdim_action_id) among the events it attends to; stride >= 2 d +
 * n_act. n_act 0 is sdim_join. */
int sdim_join_act(const sdim_hasher *h, int l_max, int short_n, const uint32_t *acts, int n_act,
                  const sdim_events *ev, const uint64_t *row_user, const uint64_t *row_item,
                  const int64_t *row_ts, long n_rows, sdim_item_vec_fn vec, void *ctx, float *out,
                  int ostride, mr_err *e);

/* ---- from files (moerec train --sdim-events/--sdim-items) ------------------- */

typedef struct sdim_csv_opts {
    const char *events_path; /* CSV/TSV: user_id, item_id, ts_ms (moerec synth's events.csv),
                              * and action when the model has history actions */
    const char *items_path;  /* CSV/TSV: item_id, e0 .. e{d-1} (the store's item table) */
    char user_col[64];       /* the training file's columns: user_id, item_id, ts_ms */
    char item_col[64];
    char time_col[64];  /* same unit as the events' ts_ms */
    int m, tau;         /* must match the store's behaviour config: 48, 3 */
    uint64_t seed;      /* SDIM_DEFAULT_SEED (hashing/sdim.h) */
    int l_max, short_n; /* 1024, 50 */
    const char *na;     /* the readers' missing set (common/csv.h); NULL = default */
    /* the model's history actions (sdim_model_actions; 0 = none): the
     * events file then needs an "action" column (an empty cell: no action) */
    int n_actions;
    uint32_t actions[MOE_MAX_HIST_ACTIONS];
} sdim_csv_opts;

void sdim_csv_opts_init(sdim_csv_opts *o);
/* Fill d->extra (n, extra_dim = 2 d + o->n_actions) of a dataset read by
 * moe_dataset_read from data_path with the same max_rows: row r gets the
 * SDIM block of its (user, item, time). MR_EINVAL when extra_dim is not
 * 2 d + n_actions for the item vectors' d, a column is missing or an
 * id/time is not an integer. */
int sdim_join_csv(moe_dataset *d, const char *data_path, long max_rows, const sdim_csv_opts *o,
                  mr_err *e);

#endif
