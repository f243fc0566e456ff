/* retr_pop.h — the popularity expert: recently popular items by decayed
 * event counts. It needs no query vector, so it always has an answer; the
 * router uses it as the always-on fallback expert (cold users, queries far
 * from every pilot).
 *
 * An item's count decays with a half-life: count(t) = sum_j w_j *
 * 2^-((t - t_j) / half_life). Every item decays at the same rate, so the
 * ranking never changes without new events; the expert keeps each item's
 * count in a time-invariant log form (log2 count + t / half_life) and
 * re-sorts its top list only after new events (at most once per
 * refresh_ms). Scores are decayed counts at the newest event time seen.
 */
#ifndef MOEREC_INDEX_RETR_POP_H
#define MOEREC_INDEX_RETR_POP_H

#include <stdint.h>

#include "common/error.h"
#include "index/retrieval/retr.h"

typedef struct retr_pop_config {
    const char *name;   /* expert name */
    double half_life_s; /* decay half-life in seconds; 0 = 7 days */
    int top_cap;        /* items kept in the sorted top list; 0 = 2048 */
    int refresh_ms;     /* min ms between re-sorts; 0 = re-sort on every dirty search */
} retr_pop_config;

int retr_pop_create(mr_retr **out, const retr_pop_config *cfg, mr_err *e);
/* n events: item ids (n) >= 0, ts_ms (n) unix ms, weights (n) > 0 or NULL
 * for 1 each. Events may arrive out of order. */
int retr_pop_add_events(mr_retr *r, const int64_t *items, const int64_t *ts_ms,
                        const float *weights, int64_t n, mr_err *e);
/* Remove items (their count becomes 0 at once: the next search does not
 * return them); later events count them again from zero. Unknown ids are
 * skipped. */
int retr_pop_remove(mr_retr *r, const int64_t *items, int64_t n, mr_err *e);
/* Decayed count of one item at time now_ms (0 when unseen). */
double retr_pop_count(mr_retr *r, int64_t item, int64_t now_ms);
/* Save the counts beside the model version (checksummed, atomic); load
 * them into a new expert named `name` (NULL: the file's base name). */
int retr_pop_save(mr_retr *r, const char *path, mr_err *e);
int retr_pop_load(mr_retr **out, const char *path, const char *name, mr_err *e);

#endif
