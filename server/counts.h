/* counts.h — the counting features in the store (issue 13): their raw
 * counters, the values served from them, and online updates.
 *
 * `moerec index features --store` writes, per user and per item, the
 * counters of moe/featcount.h (a slot: last time, reference time, per
 * window the count, per window and task the positives and labelled
 * events) into the feature row (FeatureRow.counts: the key's own slot,
 * and in a user's row one slot per category the user has events in),
 * and the definition (tasks, windows, prior strength, category column)
 * with the global sums and the read time in store meta "counts"
 * (CountState). Layouts: docs/storage.md.
 *
 * Score and Recommend derive the served entries from those counters with
 * fc_slot_values, the function the training columns come from, read at
 * CountState.as_of, named as the columns; rows without counters (written
 * before this layout) are served as stored. With online_counts, an
 * AppendEvents updates the counters of the user, the item and the (user,
 * category) pairs, the global sums and as_of in the WriteBatch of its
 * events (counts_online.c).
 */
#ifndef MOEREC_SERVER_COUNTS_H
#define MOEREC_SERVER_COUNTS_H

#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/error.h"
#include "index/store/store.h"
#include "moe/featcount.h"
#include "proto/moerec.pb-c.h"

#define MR_COUNTS_META "counts" /* store meta key of the CountState */
#define MR_COUNTS_NAME_MAX 64   /* task, window and category column names */

/* The decoded CountState. */
typedef struct mr_counts {
    fc_spec spec;                                /* use_cats: cat_col is set */
    char task[FC_MAX_TASKS][MR_COUNTS_NAME_MAX]; /* task names, slot order */
    char window_name[FC_MAX_WINDOWS][MR_COUNTS_NAME_MAX];
    char cat_col[MR_COUNTS_NAME_MAX];            /* "" = no (user, category) block */
    double pos[FC_MAX_TASKS], lab[FC_MAX_TASKS]; /* global sums (the rates' prior) */
    double as_of;                                /* served values are read at this time */
} mr_counts;

/* Pack c as a CountState into a malloc'd buffer. */
int mr_counts_pack(const mr_counts *c, uint8_t **out, size_t *len, mr_err *e);
int mr_counts_unpack(const void *data, size_t len, mr_counts *c, mr_err *e);
/* The store's state: *found 0 when the store has none. */
int mr_counts_load(mr_store *st, mr_counts *c, int *found, mr_err *e);
/* Index of task name in c, -1 when none. */
int mr_counts_task(const mr_counts *c, const char *name);

/* Name of row value j (fc_value_name with c's task and window names). */
int mr_counts_value_name(const mr_counts *c, int j, char *buf, size_t cap, mr_err *e);

/* A slot of the row (category "" = the key's own); NULL when none. */
const Moerec__V1__CountSlot *mr_counts_slot(const Moerec__V1__FeatureRow *row, const char *cat);

/* The entries served for a stored row of kind FC_USER or FC_ITEM: its
 * stored entries, then the values derived from its counters (c NULL or a
 * row without counters: the stored entries only). User: the u_ block,
 * with a category column the uc_ block of every category slot as
 * "<name>@<category>", the block of a category without events as
 * "<name>@" and the categorical "@category" = [column] (what
 * handlers_rank.c's user-category step reads); item: the i_ block. NaN
 * values (recency without events) are left out. Memory from a. */
int mr_counts_expand(const mr_counts *c, int kind, const Moerec__V1__FeatureRow *row, mr_arena *a,
                     Moerec__V1__Features **out, mr_err *e);

/* ---- online updates (counts_online.c) ---------------------------------- */

struct mr_backend;
struct behaviour_event;

/* The labels of one event, per task of the state. */
typedef struct mr_count_labels {
    float y[FC_MAX_TASKS];
    uint8_t has[FC_MAX_TASKS];
    int any; /* the event has labels */
} mr_count_labels;

/* Check the labels of r's events into out (r->n_events): each task named
 * once, value 0 or 1, and with c (NULL: not checked) a task of c.
 * INVALID_ARGUMENT naming the event and the label. */
int mr_counts_labels(const mr_counts *c, const Moerec__V1__AppendEventsRequest *r,
                     mr_count_labels *out, mr_err *e);

/* Append n events (behaviour_append) with the counters of every event's
 * user, item and (user, category of the item's stored categories), the
 * global sums and as_of (max with the events' times, in seconds) updated in
 * the same WriteBatch. Events are counted in time order (ties: request
 * order), as the tool counts its log. Serialised on be->count_mu. */
int mr_counts_append(struct mr_backend *be, const struct behaviour_event *ev,
                     const mr_count_labels *lab, size_t n, mr_arena *a, mr_err *e);

#endif
