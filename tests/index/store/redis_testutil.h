/* redis_testutil.h — a real Redis Cluster for tests: n masters (redis-server
 * from Debian, cluster mode, no persistence) on 127.0.0.1 with free ports
 * in a temporary folder, created with `redis-cli --cluster create`, and
 * waited for until every node reports cluster_state:ok. Killed and removed
 * by rct_stop. Tests call rct_available() first and skip when redis-server
 * is not installed (scripts/install-deps.sh --tests installs it).
 */
#ifndef MOEREC_TESTS_REDIS_TESTUTIL_H
#define MOEREC_TESTS_REDIS_TESTUTIL_H

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RCT_MAX 8

typedef struct rct_cluster {
    int n;
    int port[RCT_MAX];
    pid_t pid[RCT_MAX];
    char dir[256];
    char seeds[256]; /* "127.0.0.1:p1,127.0.0.1:p2,..." */
} rct_cluster;

static inline int rct_available(void) {
    return access("/usr/bin/redis-server", X_OK) == 0 && access("/usr/bin/redis-cli", X_OK) == 0;
}

static inline int rct_port_free(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* A port p with p and p + 10000 (the cluster bus) free. */
static inline int rct_pick_port(void) {
    for (int tries = 0; tries < 200; tries++) {
        int p = 20000 + (int)((unsigned)rand() % 30000u);
        if (rct_port_free(p) && rct_port_free(p + 10000)) return p;
    }
    return -1;
}

static inline void rct_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A command on node i; NULL when it does not answer. */
static inline redisReply *rct_cmd(const rct_cluster *c, int i, const char *fmt, ...) {
    struct timeval tv = {2, 0};
    redisContext *ctx = redisConnectWithTimeout("127.0.0.1", c->port[i], tv);
    if (!ctx || ctx->err) {
        if (ctx) redisFree(ctx);
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(ctx, fmt, ap);
    va_end(ap);
    redisFree(ctx);
    return r;
}

static inline int rct_node_ok(const rct_cluster *c, int i) {
    redisReply *r = rct_cmd(c, i, "CLUSTER INFO");
    int ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok") != NULL;
    if (r) freeReplyObject(r);
    return ok;
}

static inline void rct_stop(rct_cluster *c) {
    for (int i = 0; i < c->n; i++)
        if (c->pid[i] > 0) {
            kill(c->pid[i], SIGKILL);
            waitpid(c->pid[i], NULL, 0);
            c->pid[i] = 0;
        }
    if (c->dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", c->dir);
        if (system(cmd)) {
        }
        c->dir[0] = 0;
    }
}

static inline void rct_kill(rct_cluster *c, int i) {
    kill(c->pid[i], SIGKILL);
    waitpid(c->pid[i], NULL, 0);
    c->pid[i] = 0;
}

/* Start n masters and form the cluster; 0 on success. */
static inline int rct_start(rct_cluster *c, int n) {
    memset(c, 0, sizeof *c);
    c->n = n;
    srand((unsigned)getpid() ^ (unsigned)time(NULL));
    const char *base = getenv("TMPDIR");
    snprintf(c->dir, sizeof c->dir, "%s/moerec-redis-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(c->dir)) return -1;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        if ((c->port[i] = rct_pick_port()) < 0) return -1;
        char sub[300], port[16];
        snprintf(sub, sizeof sub, "%s/n%d", c->dir, i);
        mkdir(sub, 0700);
        snprintf(port, sizeof port, "%d", c->port[i]);
        pid_t pid = fork();
        if (pid == 0) {
            if (!freopen("/dev/null", "w", stdout)) _exit(127);
            execl("/usr/bin/redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
                  "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--dir", sub,
                  "--save", "", "--appendonly", "no", "--cluster-node-timeout", "1000",
                  "--protected-mode", "no", (char *)NULL);
            _exit(127);
        }
        c->pid[i] = pid;
        off += (size_t)snprintf(c->seeds + off, sizeof c->seeds - off, "%s127.0.0.1:%d",
                                i ? "," : "", c->port[i]);
    }
    for (int i = 0; i < n; i++) { /* wait until each answers PING */
        int up = 0;
        for (int t = 0; t < 200 && !up; t++) {
            redisReply *r = rct_cmd(c, i, "PING");
            up = r != NULL;
            if (r) freeReplyObject(r);
            if (!up) rct_sleep_ms(25);
        }
        if (!up) return -1;
    }
    char cmd[1024];
    size_t o = (size_t)snprintf(cmd, sizeof cmd, "redis-cli --cluster create");
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(cmd + o, sizeof cmd - o, " 127.0.0.1:%d", c->port[i]);
    snprintf(cmd + o, sizeof cmd - o, " --cluster-replicas 0 --cluster-yes >/dev/null 2>&1");
    if (system(cmd) != 0) return -1;
    for (int t = 0; t < 400; t++) {
        int ok = 1;
        for (int i = 0; i < n && ok; i++) ok = rct_node_ok(c, i);
        if (ok) return 0;
        rct_sleep_ms(25);
    }
    return -1;
}

/* CLUSTER MYID of node i into id (41 bytes). */
static inline int rct_node_id(const rct_cluster *c, int i, char id[48]) {
    redisReply *r = rct_cmd(c, i, "CLUSTER MYID");
    int ok = r && r->type == REDIS_REPLY_STRING && r->len < 48;
    if (ok) snprintf(id, 48, "%s", r->str);
    if (r) freeReplyObject(r);
    return ok ? 0 : -1;
}

/* Index of the node serving `slot` (by CLUSTER SLOTS of node `ask`). */
static inline int rct_slot_owner(const rct_cluster *c, int ask, unsigned slot) {
    redisReply *r = rct_cmd(c, ask, "CLUSTER SLOTS");
    int owner = -1;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *rg = r->element[i];
        if ((unsigned)rg->element[0]->integer <= slot &&
            slot <= (unsigned)rg->element[1]->integer) {
            int port = (int)rg->element[2]->element[1]->integer;
            for (int k = 0; k < c->n; k++)
                if (c->port[k] == port) owner = k;
        }
    }
    if (r) freeReplyObject(r);
    return owner;
}

#endif
