/* rcluster.c — Redis Cluster client side over hiredis (see rcluster.h).
 *
 * Invariants:
 *   - nodes[] only grows; a node's index and pointer stay valid until
 *     rcluster_free, so the slot map can hold plain indices and callers
 *     can use a node without holding map_mu.
 *   - slot_node[s] is -1 (unknown: any node will answer MOVED) or < nnodes.
 *   - an idle context in a node's pool is connected and has no replies
 *     pending; a context that failed is freed, never pooled.
 */
#include "index/store/rcluster.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"

#define RC_HOST_MAX 64
#define RC_POOL_MAX 32

typedef struct rc_node {
    char host[RC_HOST_MAX];
    int port;
    pthread_mutex_t mu; /* guards idle[], nidle */
    redisContext *idle[RC_POOL_MAX];
    int nidle;
    _Atomic int64_t down_until; /* unix ms; no connect attempt before it */
} rc_node;

struct rcluster {
    rcluster_config cfg;
    char *seeds;                       /* copy of cfg.seeds */
    pthread_rwlock_t map_mu;           /* guards slot_node */
    int16_t slot_node[RCLUSTER_SLOTS]; /* node index per slot, -1 unknown */
    pthread_mutex_t nodes_mu;          /* guards appends to nodes[] */
    rc_node *nodes[RCLUSTER_MAX_NODES];
    _Atomic int nnodes;
    _Atomic int64_t last_refresh; /* unix ms of the last reload */
    _Atomic uint64_t n_commands, n_moved, n_ask, n_tryagain, n_clusterdown, n_conn_errors,
        n_refreshes, n_failed;
};

/* ---- key slots ------------------------------------------------------------ */

/* CRC16-CCITT (XMODEM: poly 0x1021, init 0), the cluster spec's checksum. */
static uint16_t rc_crc16(const char *buf, size_t len) {
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint8_t)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned rcluster_keyslot(const char *key, size_t len) {
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t off = (size_t)(open - key) + 1;
        const char *close = memchr(key + off, '}', len - off);
        if (close && close > key + off) /* a non-empty tag: hash only it */
            return rc_crc16(key + off, (size_t)(close - (key + off))) & (RCLUSTER_SLOTS - 1);
    }
    return rc_crc16(key, len) & (RCLUSTER_SLOTS - 1);
}

/* ---- nodes and connections ------------------------------------------------ */

/* Index of host:port, added when new; -1 when the table is full. */
static int rc_node_index(rcluster *c, const char *host, int port) {
    int n = atomic_load(&c->nnodes);
    for (int i = 0; i < n; i++)
        if (c->nodes[i]->port == port && strcmp(c->nodes[i]->host, host) == 0) return i;
    pthread_mutex_lock(&c->nodes_mu);
    n = atomic_load(&c->nnodes);
    for (int i = 0; i < n; i++) /* added by another thread meanwhile */
        if (c->nodes[i]->port == port && strcmp(c->nodes[i]->host, host) == 0) {
            pthread_mutex_unlock(&c->nodes_mu);
            return i;
        }
    int idx = -1;
    rc_node *nd = n < RCLUSTER_MAX_NODES && strlen(host) < RC_HOST_MAX ? calloc(1, sizeof *nd)
                                                                       : NULL;
    if (nd) {
        snprintf(nd->host, sizeof nd->host, "%s", host);
        nd->port = port;
        pthread_mutex_init(&nd->mu, NULL);
        c->nodes[n] = nd;
        atomic_store(&c->nnodes, n + 1); /* publish after the node is whole */
        idx = n;
    }
    pthread_mutex_unlock(&c->nodes_mu);
    return idx;
}

static struct timeval rc_tv(int ms) { return (struct timeval){ms / 1000, (ms % 1000) * 1000}; }

/* A connection to node i: an idle one, or a new one. NULL while the node
 * is marked down or when the connect fails (which marks it down). */
static redisContext *rc_conn_get(rcluster *c, rc_node *nd) {
    pthread_mutex_lock(&nd->mu);
    redisContext *ctx = nd->nidle ? nd->idle[--nd->nidle] : NULL;
    pthread_mutex_unlock(&nd->mu);
    if (ctx) return ctx;
    if (mr_unix_ms() < atomic_load(&nd->down_until)) return NULL;
    ctx = redisConnectWithTimeout(nd->host, nd->port, rc_tv(c->cfg.timeout_ms));
    if (!ctx || ctx->err || redisSetTimeout(ctx, rc_tv(c->cfg.timeout_ms)) != REDIS_OK) {
        if (ctx) redisFree(ctx);
        atomic_fetch_add(&c->n_conn_errors, 1);
        atomic_store(&nd->down_until, mr_unix_ms() + c->cfg.down_ms);
        return NULL;
    }
    atomic_store(&nd->down_until, 0);
    return ctx;
}

/* Give back a healthy connection (or free it when the pool is full). */
static void rc_conn_put(rcluster *c, rc_node *nd, redisContext *ctx) {
    pthread_mutex_lock(&nd->mu);
    if (nd->nidle < c->cfg.pool) {
        nd->idle[nd->nidle++] = ctx;
        ctx = NULL;
    }
    pthread_mutex_unlock(&nd->mu);
    if (ctx) redisFree(ctx);
}

/* A broken connection: free it and every idle one of the node (they were
 * likely opened to the same dead process). */
static void rc_conn_drop(rcluster *c, rc_node *nd, redisContext *ctx) {
    redisFree(ctx);
    atomic_fetch_add(&c->n_conn_errors, 1);
    pthread_mutex_lock(&nd->mu);
    while (nd->nidle) redisFree(nd->idle[--nd->nidle]);
    pthread_mutex_unlock(&nd->mu);
}

/* ---- slot map ------------------------------------------------------------- */

__attribute__((unused)) static int rc_map_check(const rcluster *c) {
    int n = atomic_load(&((rcluster *)c)->nnodes);
    for (int s = 0; s < RCLUSTER_SLOTS; s++)
        if (c->slot_node[s] < -1 || c->slot_node[s] >= n) return 0;
    return 1;
}

/* Apply one CLUSTER SLOTS reply; asked_host fills an empty host field. */
static int rc_map_apply(rcluster *c, const redisReply *r, const char *asked_host, mr_err *e) {
    if (r->type != REDIS_REPLY_ARRAY)
        return mr_err_set(e, MR_EUNAVAIL, "CLUSTER SLOTS: not an array");
    int16_t *map = malloc(sizeof c->slot_node);
    if (!map) return mr_err_set(e, MR_ENOMEM, "CLUSTER SLOTS: out of memory");
    for (int s = 0; s < RCLUSTER_SLOTS; s++) map[s] = -1;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *range = r->element[i];
        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 ||
            range->element[0]->type != REDIS_REPLY_INTEGER ||
            range->element[1]->type != REDIS_REPLY_INTEGER ||
            range->element[2]->type != REDIS_REPLY_ARRAY || range->element[2]->elements < 2)
            continue;
        const redisReply *master = range->element[2];
        if (master->element[0]->type != REDIS_REPLY_STRING ||
            master->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        const char *host = master->element[0]->len ? master->element[0]->str : asked_host;
        int idx = rc_node_index(c, host, (int)master->element[1]->integer);
        if (idx < 0) continue;
        long long lo = range->element[0]->integer, hi = range->element[1]->integer;
        for (long long s = lo < 0 ? 0 : lo; s <= hi && s < RCLUSTER_SLOTS; s++)
            map[s] = (int16_t)idx;
    }
    pthread_rwlock_wrlock(&c->map_mu);
    memcpy(c->slot_node, map, sizeof c->slot_node);
    assert(rc_map_check(c));
    pthread_rwlock_unlock(&c->map_mu);
    free(map);
    atomic_store(&c->last_refresh, mr_unix_ms());
    atomic_fetch_add(&c->n_refreshes, 1);
    return 0;
}

/* Ask node i for CLUSTER SLOTS. */
static int rc_refresh_from(rcluster *c, int i, mr_err *e) {
    rc_node *nd = c->nodes[i];
    redisContext *ctx = rc_conn_get(c, nd);
    if (!ctx) return mr_err_set(e, MR_EUNAVAIL, "%s:%d: cannot connect", nd->host, nd->port);
    redisReply *r = redisCommand(ctx, "CLUSTER SLOTS");
    if (!r) {
        int rc = mr_err_set(e, MR_EUNAVAIL, "%s:%d: %s", nd->host, nd->port, ctx->errstr);
        rc_conn_drop(c, nd, ctx);
        return rc;
    }
    int rc = r->type == REDIS_REPLY_ERROR ? mr_err_set(e, MR_EUNAVAIL, "%s:%d: CLUSTER SLOTS: %s",
                                                       nd->host, nd->port, r->str)
                                          : rc_map_apply(c, r, nd->host, e);
    freeReplyObject(r);
    rc_conn_put(c, nd, ctx);
    return rc;
}

int rcluster_refresh(rcluster *c, mr_err *e) {
    int n = atomic_load(&c->nnodes), rc = mr_err_set(e, MR_EUNAVAIL, "no Redis Cluster node known");
    for (int i = 0; i < n; i++)
        if ((rc = rc_refresh_from(c, i, e)) == 0) return 0;
    return rc;
}

/* A MOVED or ASK target "slot host:port" -> node index, or -1. */
static int rc_redirect_node(rcluster *c, const char *msg, unsigned *slot) {
    const char *sp = strchr(msg, ' ');
    if (!sp) return -1;
    char *end;
    unsigned long s = strtoul(sp + 1, &end, 10);
    if (*end != ' ' || s >= RCLUSTER_SLOTS) return -1;
    const char *hp = end + 1, *colon = strrchr(hp, ':');
    if (!colon || colon == hp || (size_t)(colon - hp) >= RC_HOST_MAX) return -1;
    char host[RC_HOST_MAX];
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = 0;
    long port = strtol(colon + 1, &end, 10);
    if (port <= 0 || port > 65535) return -1;
    *slot = (unsigned)s;
    return rc_node_index(c, host, (int)port);
}

/* ---- create / free -------------------------------------------------------- */

int rcluster_create(const rcluster_config *cfg, rcluster **out, mr_err *e) {
    *out = NULL;
    if (!cfg || !cfg->seeds || !*cfg->seeds)
        return mr_err_set(e, MR_EINVAL, "redis cluster: no seed address");
    rcluster *c = calloc(1, sizeof *c);
    if (!c) return mr_err_set(e, MR_ENOMEM, "redis cluster: out of memory");
    c->cfg = *cfg;
    if (c->cfg.timeout_ms <= 0) c->cfg.timeout_ms = 200;
    if (c->cfg.down_ms <= 0) c->cfg.down_ms = 1000;
    if (c->cfg.pool <= 0) c->cfg.pool = 8;
    if (c->cfg.pool > RC_POOL_MAX) c->cfg.pool = RC_POOL_MAX;
    pthread_rwlock_init(&c->map_mu, NULL);
    pthread_mutex_init(&c->nodes_mu, NULL);
    for (int s = 0; s < RCLUSTER_SLOTS; s++) c->slot_node[s] = -1;
    int rc = 0;
    c->seeds = strdup(cfg->seeds);
    if (!c->seeds) {
        rc = mr_err_set(e, MR_ENOMEM, "redis cluster: out of memory");
        goto err;
    }
    c->cfg.seeds = c->seeds;
    char *save = NULL, *list = strdup(cfg->seeds);
    if (!list) {
        rc = mr_err_set(e, MR_ENOMEM, "redis cluster: out of memory");
        goto err;
    }
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        char *colon = strrchr(tok, ':'), *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || colon == tok || !end || *end || port <= 0 || port > 65535) {
            rc = mr_err_set(e, MR_EINVAL, "redis cluster: seed '%s' is not host:port", tok);
            free(list);
            goto err;
        }
        *colon = 0;
        if (rc_node_index(c, tok, (int)port) < 0) {
            rc = mr_err_set(e, MR_EINVAL, "redis cluster: seed host '%s' too long", tok);
            free(list);
            goto err;
        }
    }
    free(list);
    if ((rc = rcluster_refresh(c, e)) && !c->cfg.lazy) {
        mr_err_wrap(e, "redis cluster: no seed answered CLUSTER SLOTS");
        goto err;
    }
    *out = c;
    return 0;
err:
    rcluster_free(c);
    return rc;
}

void rcluster_free(rcluster *c) {
    if (!c) return;
    int n = atomic_load(&c->nnodes);
    for (int i = 0; i < n; i++) {
        rc_node *nd = c->nodes[i];
        while (nd->nidle) redisFree(nd->idle[--nd->nidle]);
        pthread_mutex_destroy(&nd->mu);
        free(nd);
    }
    pthread_rwlock_destroy(&c->map_mu);
    pthread_mutex_destroy(&c->nodes_mu);
    free(c->seeds);
    free(c);
}

/* ---- pipelines ------------------------------------------------------------ */

/* Per command state across attempts. */
typedef struct rc_pending {
    size_t i;   /* index into the caller's cmds */
    int node;   /* node to send to, -1 = from the slot map */
    int asking; /* 1: send ASKING first (an ASK redirect) */
} rc_pending;

/* Send the commands of one node (p[0..m)) pipelined and read the replies.
 * Sets replies[] for final answers; redirected or failed ones are written
 * back to `again` (count returned through *nagain). */
static void rc_node_round(rcluster *c, int node, rc_pending *p, size_t m, const rcluster_cmd *cmds,
                          redisReply **replies, rc_pending *again, size_t *nagain, int *refresh,
                          int *pause) {
    rc_node *nd = c->nodes[node];
    redisContext *ctx = rc_conn_get(c, nd);
    if (!ctx) { /* down: these commands fail this round, the map may be stale */
        for (size_t k = 0; k < m; k++) again[(*nagain)++] = (rc_pending){p[k].i, -1, 0};
        *refresh = 1;
        return;
    }
    static const char *asking_argv[] = {"ASKING"};
    static const size_t asking_len[] = {6};
    for (size_t k = 0; k < m; k++) {
        const rcluster_cmd *cmd = &cmds[p[k].i];
        if (p[k].asking) redisAppendCommandArgv(ctx, 1, asking_argv, asking_len);
        redisAppendCommandArgv(ctx, cmd->argc, cmd->argv, cmd->argvlen);
    }
    atomic_fetch_add(&c->n_commands, m);
    size_t k = 0;
    for (; k < m; k++) {
        redisReply *r = NULL;
        if (p[k].asking) {
            if (redisGetReply(ctx, (void **)&r) != REDIS_OK) break;
            freeReplyObject(r); /* +OK of ASKING */
            r = NULL;
        }
        if (redisGetReply(ctx, (void **)&r) != REDIS_OK) break;
        if (r->type == REDIS_REPLY_ERROR &&
            (!strncmp(r->str, "MOVED ", 6) || !strncmp(r->str, "ASK ", 4))) {
            int ask = r->str[1] == 'S';
            unsigned slot;
            int to = rc_redirect_node(c, r->str, &slot);
            atomic_fetch_add(ask ? &c->n_ask : &c->n_moved, 1);
            if (!ask && to >= 0) { /* the slot lives elsewhere now */
                pthread_rwlock_wrlock(&c->map_mu);
                c->slot_node[slot] = (int16_t)to;
                pthread_rwlock_unlock(&c->map_mu);
                *refresh = 1; /* more slots probably moved with it */
            }
            again[(*nagain)++] = (rc_pending){p[k].i, to, ask && to >= 0};
            freeReplyObject(r);
        } else if (r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "TRYAGAIN", 8)) {
            /* a multi-key command during a slot migration: retry shortly */
            atomic_fetch_add(&c->n_tryagain, 1);
            again[(*nagain)++] = (rc_pending){p[k].i, -1, 0};
            *pause = 1;
            freeReplyObject(r);
        } else if (r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "CLUSTERDOWN", 11)) {
            /* the cluster lost coverage: no retry in the request path (the
             * tier's caller falls through to RocksDB); the map is reloaded */
            atomic_fetch_add(&c->n_clusterdown, 1);
            *refresh = 1;
            freeReplyObject(r);
        } else {
            replies[p[k].i] = r;
        }
    }
    if (k < m) { /* the connection broke: the rest go again, after a reload */
        for (; k < m; k++) again[(*nagain)++] = (rc_pending){p[k].i, -1, 0};
        rc_conn_drop(c, nd, ctx);
        *refresh = 1;
        return;
    }
    rc_conn_put(c, nd, ctx);
}

static int rc_pending_node_cmp(const void *a, const void *b) {
    const rc_pending *x = a, *y = b;
    return (x->node > y->node) - (x->node < y->node);
}

int rcluster_pipeline(rcluster *c, size_t n, const rcluster_cmd *cmds, redisReply **replies,
                      mr_err *e) {
    for (size_t i = 0; i < n; i++) replies[i] = NULL;
    if (n == 0) return 0;
    rc_pending *p = malloc(2 * n * sizeof *p);
    if (!p) return mr_err_set(e, MR_ENOMEM, "redis pipeline of %zu commands: out of memory", n);
    rc_pending *again = p + n;
    size_t np = n;
    for (size_t i = 0; i < n; i++) p[i] = (rc_pending){i, -1, 0};
    for (int attempt = 0; attempt < RCLUSTER_MAX_ATTEMPTS && np; attempt++) {
        /* route by the slot map where no redirect named a node */
        pthread_rwlock_rdlock(&c->map_mu);
        for (size_t k = 0; k < np; k++)
            if (p[k].node < 0) {
                const rcluster_cmd *cmd = &cmds[p[k].i];
                unsigned s = rcluster_keyslot(cmd->argv[cmd->key_arg], cmd->argvlen[cmd->key_arg]);
                p[k].node = c->slot_node[s] >= 0 ? c->slot_node[s] : 0; /* unknown: MOVED tells */
            }
        pthread_rwlock_unlock(&c->map_mu);
        qsort(p, np, sizeof *p, rc_pending_node_cmp);
        size_t nagain = 0;
        int refresh = 0, pause = 0;
        for (size_t lo = 0; lo < np;) {
            size_t hi = lo;
            while (hi < np && p[hi].node == p[lo].node) hi++;
            rc_node_round(c, p[lo].node, p + lo, hi - lo, cmds, replies, again, &nagain, &refresh,
                          &pause);
            lo = hi;
        }
        memcpy(p, again, nagain * sizeof *p);
        np = nagain;
        if (np && refresh && mr_unix_ms() - atomic_load(&c->last_refresh) >= 50)
            rcluster_refresh(c, NULL); /* best effort: redirects still work without it */
        if (np && pause) usleep(1000u << attempt); /* 1, 2, 4, 8 ms */
    }
    size_t nfail = 0;
    for (size_t i = 0; i < n; i++) nfail += replies[i] == NULL;
    int rc = 0;
    if (nfail) {
        atomic_fetch_add(&c->n_failed, nfail);
        rc = mr_err_set(e, MR_EUNAVAIL, "redis cluster: %zu of %zu commands got no reply", nfail,
                        n);
    }
    free(p);
    return rc;
}

void rcluster_get_stats(rcluster *c, rcluster_stats *s) {
    s->commands = atomic_load(&c->n_commands);
    s->moved = atomic_load(&c->n_moved);
    s->ask = atomic_load(&c->n_ask);
    s->tryagain = atomic_load(&c->n_tryagain);
    s->clusterdown = atomic_load(&c->n_clusterdown);
    s->conn_errors = atomic_load(&c->n_conn_errors);
    s->refreshes = atomic_load(&c->n_refreshes);
    s->failed = atomic_load(&c->n_failed);
    s->nodes = atomic_load(&c->nnodes);
}
