/* rcluster.h — the client side of the Redis Cluster specification over
 * hiredis 0.14, which has no cluster support of its own.
 *
 * What the specification asks of a client, and where it is here:
 *   key slot = CRC16(key) mod 16384, hashing only a {tag} when the key has
 *   one (rcluster_keyslot); the slot map read from CLUSTER SLOTS of any
 *   reachable node (rcluster_refresh); MOVED answers update the map and
 *   retry at the named node; ASK answers retry once at the named node
 *   after ASKING, without touching the map; TRYAGAIN retries after a short
 *   pause; CLUSTERDOWN is not retried (a cache caller falls through to its
 *   source of truth) but reloads the map; a broken connection is dropped
 *   and reconnected.
 *
 * Commands for many keys go out pipelined, one round trip per node
 * (rcluster_pipeline), which is what the shared tier needs for a batch of
 * embedding rows. A node that refuses a connection is skipped for
 * `down_ms` so a dead master costs one failed connect, not one per call:
 * callers (the tier) fall through to RocksDB meanwhile.
 *
 * Threads: any number of callers at once. A hiredis context is never used
 * by two threads: each node keeps a small pool of idle connections.
 */
#ifndef MOEREC_INDEX_STORE_RCLUSTER_H
#define MOEREC_INDEX_STORE_RCLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "common/error.h"

#define RCLUSTER_SLOTS 16384
#define RCLUSTER_MAX_NODES 128  /* masters and replicas ever seen */
#define RCLUSTER_MAX_ATTEMPTS 5 /* redirects/retries per command */

typedef struct rcluster rcluster;

typedef struct rcluster_config {
    const char *seeds; /* "host:port[,host:port...]", at least one */
    int timeout_ms;    /* connect and per-reply timeout; 0 = 200 */
    int down_ms;       /* skip a node this long after a failed connect; 0 = 1000 */
    int pool;          /* idle connections kept per node; 0 = 8 */
    int lazy;          /* 1: start even when no seed answers (calls fail
                             * fast and the map loads once a node is back) */
} rcluster_config;

/* One command of a pipeline: argv[key_arg] is the key that routes it. */
typedef struct rcluster_cmd {
    int argc;
    const char **argv;
    const size_t *argvlen;
    int key_arg;
} rcluster_cmd;

typedef struct rcluster_stats {
    uint64_t commands;    /* commands sent, retries included */
    uint64_t moved;       /* MOVED redirects followed */
    uint64_t ask;         /* ASK redirects followed */
    uint64_t tryagain;    /* TRYAGAIN retries */
    uint64_t clusterdown; /* CLUSTERDOWN answers (not retried) */
    uint64_t conn_errors; /* failed connects and broken connections */
    uint64_t refreshes;   /* slot map reloads */
    uint64_t failed;      /* commands that got no reply after every attempt */
    int nodes;            /* nodes known */
} rcluster_stats;

/* Connect to the seeds and load the slot map. Fails when no seed answers
 * CLUSTER SLOTS (not a cluster, or every seed down), unless cfg->lazy. */
int rcluster_create(const rcluster_config *cfg, rcluster **out, mr_err *e);
void rcluster_free(rcluster *c);

/* The slot of a key (0..16383), with {hash tag} handling. */
unsigned rcluster_keyslot(const char *key, size_t len);

/* Send n commands, pipelined per node, following redirects. replies[i]
 * gets command i's final reply (free with freeReplyObject; an error reply
 * such as WRONGTYPE is a reply) or NULL when it got none after
 * RCLUSTER_MAX_ATTEMPTS. Returns 0 when every command got a reply, else
 * MR_EUNAVAIL with a message naming the first failure (replies that did
 * arrive are still filled). */
int rcluster_pipeline(rcluster *c, size_t n, const rcluster_cmd *cmds, redisReply **replies,
                      mr_err *e);

/* Reload the slot map from CLUSTER SLOTS of the first node that answers. */
int rcluster_refresh(rcluster *c, mr_err *e);

void rcluster_get_stats(rcluster *c, rcluster_stats *s);

#endif
