/* featcount.h — counting features from an interaction log, I/O-free.
 *
 * Per user, per item and per (user, category) key: event counts, smoothed
 * per-task positive rates and the time since the key's last event, over
 * configurable windows. The same code computes the columns `moerec train`
 * reads and the values `moerec index features` writes into the store, so
 * training and serving see the same numbers (docs/index-tool.md,
 * "Counting features").
 *
 * Windows: 0 = all time (plain sums); w > 0 = exponential decay with time
 * constant w (an event of age a counts exp(-a / w)), whose state is O(1)
 * per key and window and updates incrementally, unlike a sliding window
 * that must keep every event. Values of one key, per window w and task t:
 *
 *   cnt_w        log1p(count_w)                      (count_w: decayed count)
 *   rate_w_t     (pos_w_t + a * prior_t) / (count_w + a)
 *   recency      log1p(seconds since the key's last event), NaN when none
 *
 * a = spec.prior_strength; prior_t = (pos_t + 1) / (count + 2) over every
 * event the counter has seen (all time, all keys), so a key with no events
 * gets the (Laplace-smoothed) global rate, never a value from its own
 * label. Times are seconds (any unit works if windows use it too).
 *
 * Training rows (fc_train_values): "past" mode reads each row's values
 * from the events strictly earlier than the row; rows with the same time
 * are simultaneous (none sees another's label), so the row's own label is
 * never counted. "oof" mode (out-of-fold, windows must all be 0): the rows
 * are split into k folds by a seeded hash of the row index, and a row's
 * counts and rates come from the rows of the other folds (past and
 * future); its recency still comes from the past only.
 */
#ifndef MOEREC_MOE_FEATCOUNT_H
#define MOEREC_MOE_FEATCOUNT_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define FC_MAX_TASKS 8
#define FC_MAX_WINDOWS 8
#define FC_MAX_CATS 64 /* categories of one row (a multi-valued cell) */

enum { FC_USER = 0, FC_ITEM = 1, FC_USER_CAT = 2, FC_KINDS = 3 };

typedef struct fc_spec {
    int n_tasks;                   /* 1..FC_MAX_TASKS labels per event        */
    int n_windows;                 /* 1..FC_MAX_WINDOWS                       */
    double window[FC_MAX_WINDOWS]; /* 0 = all time, > 0 = decay time constant */
    double prior_strength;         /* a >= 0 in the rate's smoothing          */
    int use_cats;                  /* compute the (user, category) block      */
    int no_recency;                /* leave the recency value out             */
} fc_spec;

/* One event of the log. y/has: label and presence per task (a missing label
 * counts the event but not as positive or negative: rates use only the
 * labelled events, count_w every event). A label outside {0, 1} (a rating)
 * makes the "rate" a smoothed mean of the label. */
typedef struct fc_event {
    double t;             /* time, seconds                 */
    uint64_t user, item;  /* hashed ids                    */
    const uint64_t *cats; /* (n_cats) hashed categories    */
    int n_cats;
    float y[FC_MAX_TASKS];     /* 1 positive, 0 negative, or a value */
    uint8_t has[FC_MAX_TASKS]; /* 1 = y[t] present              */
} fc_event;

typedef struct fc_counter fc_counter;

/* Values per kind (W + W*T rates + 1 recency) and per row (user, item and,
 * with use_cats, the mean over the row's categories of the (user, category)
 * block, a category repeated in one row counted once; a row without
 * categories gets NaN there). */
int fc_kind_values(const fc_spec *s);
int fc_row_values(const fc_spec *s);
/* Name of row value j: "<p>_cnt_<w>", "<p>_<task>_rate_<w>", "<p>_recency"
 * with p = u, i, uc and w = window_names[w]. 0 or MR_EINVAL (too long). */
int fc_value_name(const fc_spec *s, int j, const char *const *task_names,
                  const char *const *window_names, char *buf, size_t cap, mr_err *e);

int fc_spec_check(const fc_spec *s, mr_err *e);
int fc_create(fc_counter **out, const fc_spec *s, mr_err *e);
void fc_free(fc_counter *c);

/* Count one event (every key it touches and the global prior). Events may
 * come in any order; decayed windows refer to the latest time seen per key. */
int fc_add(fc_counter *c, const fc_event *ev, mr_err *e);
/* Values of one key at time now into out (fc_kind_values floats); a key
 * never seen gets count 0, the prior's rates and NaN recency. */
void fc_read_key(const fc_counter *c, int kind, uint64_t key, double now, float *out);
/* The row values (fc_row_values floats) of ev read at time now (ev's labels
 * are not used). */
void fc_read_row(const fc_counter *c, const fc_event *ev, double now, float *out);
/* Keys of a kind seen so far: *keys is malloc'd. */
int fc_keys(const fc_counter *c, int kind, uint64_t **keys, size_t *n, mr_err *e);
/* Keys of a kind seen so far. */
size_t fc_key_count(const fc_counter *c, int kind);
/* Key of (user, category) as used by FC_USER_CAT. */
uint64_t fc_user_cat_key(uint64_t user, uint64_t cat);

/* Values of a key with no events (what fc_read_key gives for any absent
 * key of this counter at now: count 0, the rates' prior, recency NaN). */
void fc_read_absent(const fc_counter *c, double now, float *out);

/* The (user, category) block of a row from the blocks of its n distinct
 * categories (blocks: (n, per), in the row's category order): per value j,
 * the float mean of the blocks' non-NaN values, summed in that order; NaN
 * when none. The one definition of the mean, used by training rows
 * (fc_read_row) and by the server for a candidate's categories. */
void fc_mean_blocks(const float *blocks, int n, int per, float *out);

/* Raw counters of one key ("slot"): what the store keeps so that values
 * can be derived at read time and updated by new events (docs/storage.md,
 * CountSlot). fc_slot_len doubles: last event time, the time the decayed
 * sums refer to, per window the count, per window and task the positives
 * and the labelled events. The counter itself uses these functions, so a
 * slot kept elsewhere gives the values fc_read_key gives. */
int fc_slot_len(const fc_spec *s);
/* A slot of no events. */
void fc_slot_init(const fc_spec *s, double *slot);
/* Count ev in slot (ev's labels; its keys are not looked at). */
void fc_slot_add(const fc_spec *s, double *slot, const fc_event *ev);
/* The one derivation of served and training values: the fc_kind_values
 * floats of slot (NULL: a key without events) read at now, with the
 * rates' prior from the global sums pos[t], lab[t] (prior_t = (pos + 1) /
 * (lab + 2)). */
void fc_slot_values(const fc_spec *s, const double *pos, const double *lab, const double *slot,
                    double now, float *out);
/* The counter's slot of key (NULL when never seen) and its global sums
 * (n_tasks each). */
const double *fc_slot_of(const fc_counter *c, int kind, uint64_t key);
void fc_global(const fc_counter *c, double *pos, double *lab);

enum { FC_PAST = 0, FC_OOF = 1 };

/* Fold (0..folds) of training row i in FC_OOF with this seed. */
int fc_fold(uint64_t seed, size_t row, int folds);

/* Leak-free values of training rows ev[0..n) into out (n * fc_row_values,
 * row-major), in the rows' order (ev need not be sorted). mode FC_PAST or
 * FC_OOF (folds >= 2, seed). If final is not NULL, *final is a counter of
 * every event (the serving state). */
int fc_train_values(const fc_spec *s, const fc_event *ev, size_t n, int mode, int folds,
                    uint64_t seed, float *out, fc_counter **final, mr_err *e);

#endif
