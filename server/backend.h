/* backend.h — the server's state on disk: one RocksDB store (index/store/store.h)
 * holding the item table (retrieval/SDIM vectors), item feature blobs, and
 * per-user behaviour with SDIM bucket tables (index/store/behaviour.h).
 *
 * API ids are strings; the store's are uint64. mr_api_id maps one to the
 * other with one rule shared by every RPC: a decimal string below 2^63 is
 * its own number (so numeric ids from training files match), anything else
 * is xxh3-64 of the bytes with the top bit set, so the two ranges never
 * meet.
 */
#ifndef MOEREC_SERVER_BACKEND_H
#define MOEREC_SERVER_BACKEND_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "common/error.h"
#include "index/store/behaviour.h"
#include "index/store/store.h"
#include "index/store/tier_redis.h"
#include "server/config.h"

typedef struct mr_backend {
    mr_store *st;
    tier_redis *tier;      /* shared Redis Cluster tier; NULL = none */
    store_tier tier_cb;    /* its callbacks (must outlive st) */
    struct mr_replog *log; /* update log (server/replog.h); NULL = writes go to st */
    long long log_max_lag; /* health NOT_SERVING past this many unapplied records */
    int log_read_wait_ms;  /* min_sequence wait when the call has no deadline */
    mr_emb_table *items;   /* item vectors: SDIM space, UpsertItems.embedding */
    int item_dim;          /* its width d */
    mr_behaviour *beh;     /* events + SDIM tables */
    int short_n;           /* recent events for the short-sequence attention */
    /* TTL sweeper: reads already hide expired rows; this reclaims them. */
    pthread_t sweeper;
    int has_sweeper;
    double sweep_every_s; /* expire_interval_seconds */
    pthread_mutex_t sweep_mu;
    pthread_cond_t sweep_cv;
    int stopping; /* guarded by sweep_mu */
    atomic_uint_fast64_t sweeps, expired_rows, expired_users;
    atomic_uint_fast64_t pushes, pushed_rows; /* PushEmbeddings calls / rows written */
    atomic_uint_fast64_t push_skipped;        /* log push records not served here */
    char dir[1024];                           /* data_dir, for the free-space check */
    uint64_t min_free;                        /* store_min_free_bytes */
    int online_counts;        /* AppendEvents updates the counting features (server/counts.h) */
    pthread_mutex_t count_mu; /* serialises those updates: rows of items and the global
                               * sums are shared by every user's appends */
} mr_backend;

/* Before a write RPC touches the store: MR_OK, or RESOURCE_EXHAUSTED with a
 * message when the data dir's filesystem has less free than
 * mr_backend_space_needed (nothing is written then). RocksDB must never
 * meet ENOSPC itself: after a failed WAL append, Debian's librocksdb 7.8
 * (built with assertions) aborts the process on the next use of that log
 * file, and a flush that fails for space is a hard background error that
 * refuses every later write until RocksDB recovers (which, with the data
 * still unflushed, it may never). */
int mr_backend_check_space(const mr_backend *b, mr_err *e);

/* The free space a write needs: store_min_free_bytes plus the memtables
 * not yet flushed (their data is in the WAL already; the flushes to come
 * write it again as SST files before the WAL is freed, and once the disk
 * is below the reserve they would meet ENOSPC); 0 when the check is off. */
uint64_t mr_backend_space_needed(const mr_backend *b);

/* One sweep now: store_expire + behaviour_expire at the current time. */
int mr_backend_sweep(mr_backend *b, mr_err *e);

/* Open cfg->data_dir (creating the database and the item table when
 * item_dim is set). */
int mr_backend_open(mr_backend **out, const mr_server_config *cfg, mr_err *e);
void mr_backend_close(mr_backend *b);

uint64_t mr_api_id(const char *s);

#endif
