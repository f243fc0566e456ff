/* behaviour_int.h — internals of the behaviour store shared by
 * behaviour.c (open, append), behaviour_rows.c (row formats, reads) and
 * behaviour_rebuild.c. Row layouts are documented in docs/storage.md.
 */
#ifndef MOEREC_INDEX_BEHAVIOUR_INT_H
#define MOEREC_INDEX_BEHAVIOUR_INT_H

#include <pthread.h>

#include "index/store/behaviour.h"
#include "index/store/store_int.h"

#define BEH_STRIPES 256             /* user lock stripes */
#define BEH_STATE_MAGIC 0x5D1A0002u /* sdim row: magic + version 2 (XXH3) */
#define BEH_STATE_HDR 48u           /* bytes before the table */
#define BEH_EVENT_KEY 24u           /* user, biased ts, seq: all big-endian */
#define BEH_FLAG_ADDED 1u           /* the event's embedding is in the table */
#define BEH_EVENT_V2 \
    0x8000u /* stored flags bit: event row version 2, xxh3
                                     * checksum (without it: version 1, XXH32,
                                     * still read); never in beh_event.flags */

struct mr_behaviour {
    mr_store *st;         /* not owned */
    mr_emb_table *table;  /* item embeddings */
    behaviour_config cfg; /* copy; item_table points at table_name */
    char table_name[STORE_TABLE_NAME_MAX];
    sdim_hasher *hasher;                 /* (m, d) projections */
    sdim_layout layout;                  /* table shape */
    size_t table_bytes;                  /* sdim_table_bytes(layout) */
    pthread_mutex_t stripe[BEH_STRIPES]; /* appends/rebuilds of one user serialise */
};

/* Decoded per-user state row. The table is a separate buffer. */
typedef struct beh_state {
    uint32_t n_events; /* events kept */
    uint64_t next_seq; /* sequence number of the next appended event */
    int64_t oldest_ts; /* key of the oldest kept event (valid if n_events) */
    uint64_t oldest_seq;
    int64_t newest_ts; /* newest kept event time */
    uint32_t write_s;  /* unix seconds of the last append: user TTL */
} beh_state;

/* One event row, decoded. */
typedef struct beh_event {
    int64_t ts;    /* event time */
    uint64_t seq;  /* per-user arrival number, breaks ties of ts */
    uint64_t item; /* item id */
    uint32_t action;
    uint32_t flags; /* BEH_FLAG_ADDED */
    uint32_t src;   /* scratch: index in the caller's arrays */
} beh_event;

static inline int beh_event_cmp(const beh_event *a, const beh_event *b) {
    if (a->ts != b->ts) return a->ts < b->ts ? -1 : 1;
    return (a->seq > b->seq) - (a->seq < b->seq);
}

void beh_event_key(uint64_t user, int64_t ts, uint64_t seq, uint8_t out[BEH_EVENT_KEY]);
/* Value: item, action, flags, nsig sigs; out has beh_event_value_bytes. */
size_t beh_event_value_bytes(const mr_behaviour *b);
void beh_event_value(const mr_behaviour *b, const beh_event *ev, const uint32_t *sig, uint8_t *out);
/* Parse a key + value; sig (nsig) may be NULL. MR_ECORRUPT on mismatch. */
int beh_event_parse(const mr_behaviour *b, const char *k, size_t klen, const char *v, size_t vlen,
                    beh_event *ev, uint32_t *sig, mr_err *e);

/* Invariant checker of a state row (asserted by beh_state_encode, i.e. at
 * every write of one: append, rebuild, expire). 1 when n_events <= l_max
 * and <= next_seq, the oldest kept seq precedes next_seq, and, when table
 * is not NULL, every signature's bucket counts add up to the same number of
 * embedded events (<= n_events) and every empty bucket's sums are zero.
 * O(nsig * nbuckets * d). */
int beh_state_check(const mr_behaviour *b, const beh_state *s, const void *table);
size_t beh_state_bytes(const mr_behaviour *b);
/* out (beh_state_bytes) = header + table + checksum. */
void beh_state_encode(const mr_behaviour *b, const beh_state *s, const void *table, uint8_t *out);
/* table (table_bytes) may be NULL to read only the header. */
int beh_state_decode(const mr_behaviour *b, const char *v, size_t vlen, beh_state *s, void *table,
                     mr_err *e);
/* Load a user's state (fresh and zeroed when absent). */
int beh_state_load(mr_behaviour *b, uint64_t user, beh_state *s, void *table, mr_err *e);

/* Read up to cap events of user from (from_ts, from_seq) on, oldest first.
 * sigs (cap, nsig) may be NULL. *n gets the number read. */
int beh_events_scan(mr_behaviour *b, uint64_t user, int64_t from_ts, uint64_t from_seq,
                    beh_event *out, uint32_t *sigs, size_t cap, size_t *n, mr_err *e);

/* *expired = 1 when user_ttl_s is set and the user's last append is older
 * (reads then treat the user's events as gone until the sweep deletes them).
 * Reads only the state row's header. */
int beh_user_expired(mr_behaviour *b, uint64_t user, int *expired, mr_err *e);

/* Add to wb a range tombstone over all of user's events (behaviour_expire.c). */
void beh_delete_user_events(mr_behaviour *b, rocksdb_writebatch_t *wb, uint64_t user);

/* Rows of the item table for events[0..n): emb_store_get through the
 * cache; vecs (n, d), found (n). */
int beh_item_vectors(mr_behaviour *b, const uint64_t *items, size_t n, float *vecs, uint8_t *found,
                     mr_err *e);

static inline pthread_mutex_t *beh_lock_of(mr_behaviour *b, uint64_t user) {
    uint64_t h = user * 0x9e3779b97f4a7c15ULL;
    return &b->stripe[h >> 56];
}

#endif
