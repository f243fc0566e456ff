/* tier_redis.c — store_tier over Redis Cluster (see tier_redis.h).
 *
 * One batch of rows is one pipeline: n GETs (or SETs) grouped per node by
 * rcluster_pipeline, so a lookup of 500 candidate rows over 3 masters is 3
 * round trips, not 500. Keys and argv arrays for a batch are carved from
 * one allocation.
 */
#include "index/store/tier_redis.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIER_KEY_MAX (TIER_REDIS_PREFIX_MAX + 48) /* ":" 16 hex ":" 20 digits, NUL */

struct tier_redis {
    rcluster *rc;
    char prefix[TIER_REDIS_PREFIX_MAX];
    char ttl_arg[16]; /* decimal seconds for SET ... EX, "" when none */
    _Atomic uint64_t gets, hits, misses, degraded, corrupt, puts, put_failed, dels, del_failed;
};

/* The per-batch scratch: keys, argv and lengths for n commands of up to
 * `argc` arguments. */
typedef struct tier_batch {
    char *mem;
    char (*keys)[TIER_KEY_MAX];
    const char **argv;    /* (n, argc) */
    size_t *argvlen;      /* (n, argc) */
    rcluster_cmd *cmds;   /* (n) */
    redisReply **replies; /* (n) */
} tier_batch;

static int tier_batch_alloc(tier_batch *b, size_t n, int argc) {
    size_t sz = n * (TIER_KEY_MAX + (size_t)argc * (sizeof(char *) + sizeof(size_t)) +
                     sizeof(rcluster_cmd) + sizeof(redisReply *));
    b->mem = calloc(1, sz); /* zeroed: GCC -O2 cannot tell every command is filled */
    if (!b->mem) return -1;
    b->argv = (const char **)b->mem;
    b->argvlen = (size_t *)(b->argv + n * (size_t)argc);
    b->cmds = (rcluster_cmd *)(b->argvlen + n * (size_t)argc);
    b->replies = (redisReply **)(b->cmds + n);
    b->keys = (char(*)[TIER_KEY_MAX])(b->replies + n);
    return 0;
}

static size_t tier_key(const tier_redis *t, uint64_t table_key, uint64_t id, char *out) {
    int len = snprintf(out, TIER_KEY_MAX, "%s:%016llx:%llu", t->prefix,
                       (unsigned long long)table_key, (unsigned long long)id);
    return (size_t)len;
}

/* A batch of n one-key commands, `cmd <key of row i>`. */
static int tier_batch_keys(const tier_redis *t, tier_batch *b, const char *cmd, uint64_t table_key,
                           const uint64_t *ids, size_t n) {
    if (tier_batch_alloc(b, n, 2)) return -1;
    for (size_t i = 0; i < n; i++) {
        const char **av = b->argv + 2 * i;
        size_t *al = b->argvlen + 2 * i;
        av[0] = cmd;
        al[0] = strlen(cmd);
        al[1] = tier_key(t, table_key, ids[i], b->keys[i]);
        av[1] = b->keys[i];
        b->cmds[i] = (rcluster_cmd){2, av, al, 1};
    }
    return 0;
}

/* Frees the batch and its replies; returns how many commands failed. */
static uint64_t tier_batch_failed(tier_batch *b, size_t n) {
    uint64_t failed = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *r = b->replies[i];
        failed += !r || r->type == REDIS_REPLY_ERROR;
        if (r) freeReplyObject(r);
    }
    free(b->mem);
    return failed;
}

static int tier_redis_get(void *ctx, uint64_t table_key, uint32_t dim, const uint64_t *ids,
                          size_t n, float *out, uint8_t *found, mr_err *e) {
    tier_redis *t = ctx;
    for (size_t i = 0; i < n; i++) found[i] = 0;
    if (n == 0) return 0;
    tier_batch b;
    if (tier_batch_keys(t, &b, "GET", table_key, ids, n))
        return mr_err_set(e, MR_ENOMEM, "redis tier: out of memory");
    rcluster_pipeline(t->rc, n, b.cmds, b.replies, NULL); /* a partial answer is still used */
    uint64_t hits = 0, misses = 0, degraded = 0, corrupt = 0;
    const size_t row_bytes = (size_t)dim * sizeof(float);
    for (size_t i = 0; i < n; i++) {
        redisReply *r = b.replies[i];
        if (!r || r->type == REDIS_REPLY_ERROR) {
            degraded++;
        } else if (r->type == REDIS_REPLY_STRING && (size_t)r->len == row_bytes) {
            memcpy(out + i * dim, r->str, row_bytes); /* little-endian hosts only (x86-64, arm64) */
            found[i] = 1;
            hits++;
        } else if (r->type == REDIS_REPLY_STRING && r->len == 0) {
            misses++; /* a deleted row's marker */
        } else if (r->type == REDIS_REPLY_STRING) {
            corrupt++; /* another dim or a foreign value: read from RocksDB instead */
        } else {
            misses++;
        }
        if (r) freeReplyObject(r);
    }
    free(b.mem);
    atomic_fetch_add(&t->gets, n);
    atomic_fetch_add(&t->hits, hits);
    atomic_fetch_add(&t->misses, misses + corrupt);
    atomic_fetch_add(&t->degraded, degraded);
    atomic_fetch_add(&t->corrupt, corrupt);
    return 0;
}

/* SET key value [NX] [EX ttl] for each row: NX for a fill (rows read from
 * RocksDB), so an entry written meanwhile, or a delete's marker, stays;
 * vecs NULL writes the marker, an empty value (tier_redis_del). */
static int tier_set(tier_redis *t, uint64_t table_key, uint32_t dim, const uint64_t *ids, size_t n,
                    const float *vecs, int fill, uint64_t *failed, mr_err *e) {
    const int argc = 3 + (fill ? 1 : 0) + (t->ttl_arg[0] ? 2 : 0);
    tier_batch b;
    if (tier_batch_alloc(&b, n, argc)) return mr_err_set(e, MR_ENOMEM, "redis tier: out of memory");
    const size_t ttl_len = strlen(t->ttl_arg);
    for (size_t i = 0; i < n; i++) {
        const char **av = b.argv + (size_t)argc * i;
        size_t *al = b.argvlen + (size_t)argc * i;
        av[0] = "SET";
        al[0] = 3;
        al[1] = tier_key(t, table_key, ids[i], b.keys[i]);
        av[1] = b.keys[i];
        av[2] = vecs ? (const char *)(vecs + i * dim) : "";
        al[2] = vecs ? (size_t)dim * sizeof(float) : 0;
        int a = 3;
        if (fill) {
            av[a] = "NX";
            al[a++] = 2;
        }
        if (t->ttl_arg[0]) {
            av[a] = "EX";
            al[a++] = 2;
            av[a] = t->ttl_arg;
            al[a++] = ttl_len;
        }
        b.cmds[i] = (rcluster_cmd){argc, av, al, 1};
    }
    int rc = rcluster_pipeline(t->rc, n, b.cmds, b.replies, e);
    *failed = tier_batch_failed(&b, n); /* an NX not done is a nil reply, not a failure */
    return rc;
}

static int tier_redis_put(void *ctx, uint64_t table_key, uint32_t dim, const uint64_t *ids,
                          size_t n, const float *vecs, int fill, mr_err *e) {
    tier_redis *t = ctx;
    if (n == 0) return 0;
    uint64_t failed = 0;
    int rc = tier_set(t, table_key, dim, ids, n, vecs, fill, &failed, e);
    atomic_fetch_add(&t->puts, n);
    atomic_fetch_add(&t->put_failed, failed);
    return rc;
}

/* A deleted row's marker: an empty value under its key (one SET per key: a
 * cluster routes keys, not batches), read as a miss and kept by a fill's NX;
 * it ages out like a row. A failed write leaves the old row to age out. */
static int tier_redis_del(void *ctx, uint64_t table_key, const uint64_t *ids, size_t n, mr_err *e) {
    tier_redis *t = ctx;
    if (n == 0) return 0;
    uint64_t failed = 0;
    int rc = tier_set(t, table_key, 0, ids, n, NULL, 0, &failed, e);
    atomic_fetch_add(&t->dels, n);
    atomic_fetch_add(&t->del_failed, failed);
    return rc;
}

int tier_redis_create(const tier_redis_config *cfg, tier_redis **out, store_tier *tier, mr_err *e) {
    *out = NULL;
    const char *prefix = cfg->prefix ? cfg->prefix : "mr";
    if (!*prefix || strlen(prefix) >= TIER_REDIS_PREFIX_MAX)
        return mr_err_set(e, MR_EINVAL, "redis tier: key prefix must be 1..%d bytes",
                          TIER_REDIS_PREFIX_MAX - 1);
    if (cfg->ttl_s < 0) return mr_err_set(e, MR_EINVAL, "redis tier: ttl_s must be >= 0");
    tier_redis *t = calloc(1, sizeof *t);
    if (!t) return mr_err_set(e, MR_ENOMEM, "redis tier: out of memory");
    snprintf(t->prefix, sizeof t->prefix, "%s", prefix);
    if (cfg->ttl_s > 0) snprintf(t->ttl_arg, sizeof t->ttl_arg, "%d", cfg->ttl_s);
    int rc = rcluster_create(&cfg->cluster, &t->rc, e);
    if (rc) {
        free(t);
        return rc;
    }
    *tier = (store_tier){t, tier_redis_get, tier_redis_put, tier_redis_del};
    *out = t;
    return 0;
}

void tier_redis_free(tier_redis *t) {
    if (!t) return;
    rcluster_free(t->rc);
    free(t);
}

void tier_redis_get_stats(tier_redis *t, tier_redis_stats *s) {
    s->gets = atomic_load(&t->gets);
    s->hits = atomic_load(&t->hits);
    s->misses = atomic_load(&t->misses);
    s->degraded = atomic_load(&t->degraded);
    s->corrupt = atomic_load(&t->corrupt);
    s->puts = atomic_load(&t->puts);
    s->put_failed = atomic_load(&t->put_failed);
    s->dels = atomic_load(&t->dels);
    s->del_failed = atomic_load(&t->del_failed);
    rcluster_get_stats(t->rc, &s->cluster);
}
