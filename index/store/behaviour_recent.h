/* behaviour_recent.h — the most recent events of a user, read newest first
 * with a reverse iterator: O(k) for the last k events, however long the
 * user's history. Serving uses it for the ranker's short-sequence
 * attention (moe/sdim_feature.h), which needs the last k events that have
 * an item vector — exactly what training's replay (sdim_seq) keeps.
 */
#ifndef MOEREC_INDEX_BEHAVIOUR_RECENT_H
#define MOEREC_INDEX_BEHAVIOUR_RECENT_H

#include <stddef.h>

#include "index/store/behaviour.h"

/* The last min(cap, kept) events of user into out, OLDEST first; *n gets
 * the count. A user past store_config.user_ttl_s has none (as in
 * user_state_get), swept or not. */
int behaviour_recent(mr_behaviour *b, uint64_t user, behaviour_event *out, size_t cap, size_t *n,
                     mr_err *e);

/* The item vectors (k, d) of the user's last k events whose item has a row
 * in the item table, oldest first; events without a row are skipped (they
 * contribute nothing to the SDIM table either). *n gets the count (< k when
 * the user has fewer such events). */
int behaviour_recent_vectors(mr_behaviour *b, uint64_t user, int k, float *vecs, int *n, mr_err *e);
/* The same with those events' actions into acts (k; NULL: not wanted), in
 * the same order: the ranker's history actions (moe/sdim_feature.h). */
int behaviour_recent_vectors_act(mr_behaviour *b, uint64_t user, int k, float *vecs, uint32_t *acts,
                                 int *n, mr_err *e);

#endif
