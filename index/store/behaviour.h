/* behaviour.h — per-user behaviour sequences and their SDIM bucket tables.
 *
 * Events (user, item, time, action) are appended in batches; each user keeps
 * the last l_max events (by time, then arrival), the oldest trimmed. Beside
 * them the store keeps, per user, the SDIM bucket table of hashing/sdim.h
 * over the item embeddings of the kept events, updated incrementally: an
 * append adds the item's embedding to its bucket under every signature, a
 * trim subtracts it. Serving reads ONE row per user (user_state_get), so
 * its cost does not depend on the sequence length.
 *
 * Each event stores the signatures it was added under, so a trim always
 * decrements the same buckets. If an item's embedding changes between
 * append and trim the sums drift; behaviour_rebuild recomputes a user's
 * table from the events with the current embeddings (run it after an
 * embedding table is retrained). Events whose item has no embedding row
 * are kept but contribute nothing (until a rebuild finds the row).
 *
 * Threads: appends, rebuilds and reads may run concurrently on one handle
 * (appends/rebuilds of the same user serialise on a striped lock). Open ONE
 * behaviour handle per store: the user locks live in the handle.
 *
 * The SDIM parameters (m, tau, seed, item table, dim) are recorded in meta
 * on first open; opening with other parameters fails (tables would be
 * inconsistent) — rebuild into a fresh store instead.
 */
#ifndef MOEREC_INDEX_BEHAVIOUR_H
#define MOEREC_INDEX_BEHAVIOUR_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "hashing/sdim.h"
#include "index/store/store.h"

typedef struct mr_behaviour mr_behaviour;

typedef struct behaviour_config {
    const char *item_table; /* embedding table of the items (its dim is SDIM's d) */
    int l_max;              /* events kept per user; 0 = 1024 */
    int m, tau;             /* SDIM projections and bits per signature; 0,0 = 48,3 */
    uint64_t seed;          /* projection seed */
    /* item id -> row of item_table; NULL = the item id is the row id */
    uint64_t (*item_row)(uint64_t item, void *ctx);
    void *item_row_ctx;
} behaviour_config;

void behaviour_config_init(behaviour_config *c, const char *item_table);

typedef struct behaviour_event {
    uint64_t user;   /* user id */
    uint64_t item;   /* item id */
    int64_t ts_ms;   /* event time, unix ms */
    uint32_t action; /* caller-defined: click, like, ... */
} behaviour_event;

/* Bind the behaviour store to an open store (kept, not owned). */
int behaviour_open(mr_behaviour **out, mr_store *st, const behaviour_config *cfg, mr_err *e);
void behaviour_close(mr_behaviour *b);

const sdim_layout *behaviour_layout(const mr_behaviour *b);
/* The hasher that made the tables: candidates must be signed with it. */
const sdim_hasher *behaviour_hasher(const mr_behaviour *b);

/* Append n events (any users, any order) in ONE WriteBatch: events, trims
 * and the updated tables of every user touched commit together. The batch
 * is validated first; on error nothing is written. */
int behaviour_append(mr_behaviour *b, const behaviour_event *ev, size_t n, mr_err *e);
/* The same with rows (may be NULL) committed in that one WriteBatch: the
 * online counting features (server/counts.h) change with the events or
 * not at all. */
int behaviour_append_rows(mr_behaviour *b, const behaviour_event *ev, size_t n,
                          const store_append_rows *rows, mr_err *e);

/* Recompute the tables of the given users from their events (and trim to
 * l_max if it was lowered). behaviour_rebuild_all does every user. */
int behaviour_rebuild(mr_behaviour *b, const uint64_t *users, size_t n, mr_err *e);
int behaviour_rebuild_all(mr_behaviour *b, uint64_t *n_users, mr_err *e);

/* User TTL (store_config.user_ttl_s > 0): delete the events and the SDIM
 * row of every user with no append for user_ttl_s at now_ms (unix ms).
 * user_state_get already reports such users as having no table; this
 * reclaims the space (store_expire does the profiles). Each user is
 * re-checked under its lock, so a concurrent append is never lost.
 * *n_users (may be NULL) gets the number of users removed. */
int behaviour_expire(mr_behaviour *b, int64_t now_ms, uint64_t *n_users, mr_err *e);

/* A user's kept events, oldest first: up to cap into out; *n gets the count
 * returned (none for a user past user_ttl_s, as in user_state_get). O(L):
 * for tools and tests, not the serving path. */
int behaviour_events(mr_behaviour *b, uint64_t user, behaviour_event *out, size_t cap, size_t *n,
                     mr_err *e);

/* What serving reads for one user: one multi-get of the profile row and the
 * bucket-table row. Pointers live in buf until user_state_release. */
typedef struct mr_user_state {
    const void *profile; /* user profile blob; NULL when none (or expired) */
    size_t profile_len;
    const void *table;    /* SDIM table (behaviour_layout); NULL: no events yet */
    uint32_t n_events;    /* events the table sums */
    int64_t newest_ts_ms; /* time of the newest kept event */
    void *buf;            /* owned */
} mr_user_state;

int user_state_get(mr_behaviour *b, uint64_t user, mr_user_state *out, mr_err *e);
void user_state_release(mr_user_state *s);

#endif
