/* test_rcluster.c — the Redis Cluster client (rcluster.c) and the shared
 * tier over it (tier_redis.c) against a real 3-master cluster started by
 * the test (redis_testutil.h): key slots against CLUSTER KEYSLOT, pipelines
 * spread over the masters, MOVED after a slot migrates, ASK while it
 * migrates, the tier between the store's cache and RocksDB, and a master
 * killed under the tier (every lookup still answered, from RocksDB). */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/rng.h"
#include "index/store/item_log.h"
#include "index/store/rcluster.h"
#include "index/store/store.h"
#include "index/store/tier_redis.h"
#include "redis_testutil.h"
#include "store_testutil.h"

static rct_cluster g_cl;

static int group_setup(void **state) {
    (void)state;
    if (!rct_available()) return 0; /* each test skips */
    if (rct_start(&g_cl, 3)) {
        fprintf(stderr, "could not start a 3-master Redis Cluster\n");
        rct_stop(&g_cl);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    rct_stop(&g_cl);
    return 0;
}

#define NEED_REDIS()                                                  \
    do {                                                              \
        if (!rct_available()) {                                       \
            fprintf(stderr, "redis-server not installed: skipped\n"); \
            skip();                                                   \
        }                                                             \
    } while (0)

static rcluster *connect_cluster(void) {
    rcluster_config cfg = {g_cl.seeds, 500, 500, 4, 0};
    rcluster *c = NULL;
    mr_err e = {0};
    int rc = rcluster_create(&cfg, &c, &e);
    if (rc) fprintf(stderr, "rcluster_create: %s\n", e.msg);
    assert_int_equal(rc, 0);
    return c;
}

/* The spec's examples, and CLUSTER KEYSLOT of the real server. */
static void test_keyslot(void **state) {
    (void)state;
    assert_int_equal(rcluster_keyslot("123456789", 9), 12739); /* CRC16 0x31C3 */
    assert_int_equal(rcluster_keyslot("{user1000}.following", 20),
                     rcluster_keyslot("{user1000}.followers", 20));
    assert_int_equal(rcluster_keyslot("{user1000}.x", 12), rcluster_keyslot("user1000", 8));
    assert_int_equal(rcluster_keyslot("foo{}{bar}", 10), rcluster_keyslot("foo{}{bar}", 10));
    assert_int_not_equal(rcluster_keyslot("foo{}{bar}", 10), rcluster_keyslot("bar", 3));
    assert_int_equal(rcluster_keyslot("foo{{bar}}zap", 13), rcluster_keyslot("{bar", 4));
    assert_int_equal(rcluster_keyslot("foo{bar}{zap}", 13), rcluster_keyslot("bar", 3));
    NEED_REDIS();
    char key[64];
    for (int i = 0; i < 300; i++) {
        int len = snprintf(key, sizeof key, i % 3 ? "mr:%d:%d" : "x{%d}y%d", i % 7, i * 7919);
        redisReply *r = rct_cmd(&g_cl, i % 3, "CLUSTER KEYSLOT %b", key, (size_t)len);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        assert_int_equal((unsigned)r->integer, rcluster_keyslot(key, (size_t)len));
        freeReplyObject(r);
    }
}

/* n SETs then n GETs of distinct keys, one pipeline each. */
static void set_get(rcluster *c, int n, const char *tag) {
    char(*keys)[32] = malloc((size_t)n * 32);
    char(*vals)[32] = malloc((size_t)n * 32);
    const char **argv = malloc((size_t)n * 3 * sizeof *argv);
    size_t *len = malloc((size_t)n * 3 * sizeof *len);
    rcluster_cmd *cmds = malloc((size_t)n * sizeof *cmds);
    redisReply **rep = malloc((size_t)n * sizeof *rep);
    assert_true(keys && vals && argv && len && cmds && rep);
    for (int i = 0; i < n; i++) {
        len[3 * i + 1] = (size_t)snprintf(keys[i], 32, "%s:%d", tag, i);
        len[3 * i + 2] = (size_t)snprintf(vals[i], 32, "v%d", i * 31);
        argv[3 * i] = "SET", len[3 * i] = 3;
        argv[3 * i + 1] = keys[i];
        argv[3 * i + 2] = vals[i];
        cmds[i] = (rcluster_cmd){3, argv + 3 * i, len + 3 * i, 1};
    }
    mr_err e = {0};
    assert_int_equal(rcluster_pipeline(c, (size_t)n, cmds, rep, &e), 0);
    for (int i = 0; i < n; i++) {
        assert_int_equal(rep[i]->type, REDIS_REPLY_STATUS);
        freeReplyObject(rep[i]);
        argv[3 * i] = "GET";
        cmds[i].argc = 2;
    }
    assert_int_equal(rcluster_pipeline(c, (size_t)n, cmds, rep, &e), 0);
    for (int i = 0; i < n; i++) {
        assert_int_equal(rep[i]->type, REDIS_REPLY_STRING);
        assert_string_equal(rep[i]->str, vals[i]);
        freeReplyObject(rep[i]);
    }
    free(keys), free(vals), free(argv), free(len), free(cmds), free(rep);
}

static void test_pipeline_spreads_over_masters(void **state) {
    (void)state;
    NEED_REDIS();
    rcluster *c = connect_cluster();
    set_get(c, 1000, "spread");
    rcluster_stats s;
    rcluster_get_stats(c, &s);
    assert_int_equal(s.nodes, 3);
    assert_int_equal(s.commands, 2000); /* one try each: the map was right */
    assert_int_equal(s.moved + s.ask + s.failed, 0);
    for (int i = 0; i < 3; i++) { /* every master holds part of the keys */
        redisReply *r = rct_cmd(&g_cl, i, "DBSIZE");
        assert_non_null(r);
        assert_true(r->integer > 100);
        freeReplyObject(r);
    }
    rcluster_free(c);
}

/* One GET through the client; returns its string value (malloc'd) or NULL. */
static char *client_get(rcluster *c, const char *key) {
    const char *argv[2] = {"GET", key};
    size_t len[2] = {3, strlen(key)};
    rcluster_cmd cmd = {2, argv, len, 1};
    redisReply *r = NULL;
    if (rcluster_pipeline(c, 1, &cmd, &r, NULL) || r->type != REDIS_REPLY_STRING) {
        if (r) freeReplyObject(r);
        return NULL;
    }
    char *v = strdup(r->str);
    freeReplyObject(r);
    return v;
}

static void expect_ok(redisReply *r) {
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR) fprintf(stderr, "redis: %s\n", r->str);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

/* Move the slot of `key` from its owner to another master by hand, as
 * redis-cli --cluster reshard does: IMPORTING/MIGRATING, MIGRATE, then
 * SETSLOT NODE everywhere. In the middle (key moved, slot still
 * migrating) the source answers ASK; afterwards it answers MOVED. */
static void test_ask_then_moved(void **state) {
    (void)state;
    NEED_REDIS();
    rcluster *c = connect_cluster();
    const char *key = "migrating-key";
    unsigned slot = rcluster_keyslot(key, strlen(key));
    expect_ok(rct_cmd(&g_cl, 0, "SET other-key x")); /* any node: check the map works */
    int src = rct_slot_owner(&g_cl, 0, slot), dst = (src + 1) % 3;
    assert_true(src >= 0);
    expect_ok(rct_cmd(&g_cl, src, "SET %s before", key));
    char *v = client_get(c, key);
    assert_string_equal(v, "before");
    free(v);
    char sid[48], did[48];
    assert_int_equal(rct_node_id(&g_cl, src, sid), 0);
    assert_int_equal(rct_node_id(&g_cl, dst, did), 0);
    expect_ok(rct_cmd(&g_cl, dst, "CLUSTER SETSLOT %u IMPORTING %s", slot, sid));
    expect_ok(rct_cmd(&g_cl, src, "CLUSTER SETSLOT %u MIGRATING %s", slot, did));
    expect_ok(rct_cmd(&g_cl, src, "MIGRATE 127.0.0.1 %d %s 0 5000", g_cl.port[dst], key));
    rcluster_stats s0, s1, s2;
    rcluster_get_stats(c, &s0);
    v = client_get(c, key); /* source: ASK -> ASKING + GET at the destination */
    assert_non_null(v);
    assert_string_equal(v, "before");
    free(v);
    rcluster_get_stats(c, &s1);
    assert_int_equal(s1.ask - s0.ask, 1);
    assert_int_equal(s1.moved - s0.moved, 0);
    for (int i = 0; i < 3; i++)
        expect_ok(rct_cmd(&g_cl, i, "CLUSTER SETSLOT %u NODE %s", slot, did));
    v = client_get(c, key); /* source: MOVED -> map updated -> destination */
    assert_non_null(v);
    assert_string_equal(v, "before");
    free(v);
    rcluster_get_stats(c, &s2);
    assert_int_equal(s2.moved - s1.moved, 1);
    v = client_get(c, key); /* the map knows now: no redirect */
    free(v);
    rcluster_stats s3;
    rcluster_get_stats(c, &s3);
    assert_int_equal(s3.moved, s2.moved);
    assert_int_equal(s3.ask, s2.ask);
    rcluster_free(c);
}

/* Lookups from a thread while `redis-cli --cluster reshard` moves 1,000
 * slots between masters: every row answered by the tier, through MOVED and
 * ASK, none degraded to RocksDB. */
typedef struct reshard_reader {
    rcluster *c;
    atomic_int stop;
    int rounds, bad;
} reshard_reader;

static void *reshard_read_loop(void *arg) {
    reshard_reader *rr = arg;
    enum { N = 400 };
    char keys[N][32];
    const char *argv[N][2];
    size_t len[N][2];
    rcluster_cmd cmds[N];
    redisReply *rep[N];
    for (int i = 0; i < N; i++) {
        len[i][1] = (size_t)snprintf(keys[i], 32, "reshard:%d", i);
        argv[i][0] = "GET", len[i][0] = 3, argv[i][1] = keys[i];
        cmds[i] = (rcluster_cmd){2, argv[i], len[i], 1};
    }
    while (!atomic_load(&rr->stop)) {
        int rc = rcluster_pipeline(rr->c, N, cmds, rep, NULL);
        for (int i = 0; i < N; i++) {
            char want[32];
            snprintf(want, sizeof want, "v%d", i * 31);
            if (rc || !rep[i] || rep[i]->type != REDIS_REPLY_STRING || strcmp(rep[i]->str, want))
                rr->bad++;
            if (rep[i]) freeReplyObject(rep[i]);
        }
        rr->rounds++;
    }
    return NULL;
}

static void test_reshard_under_traffic(void **state) {
    (void)state;
    NEED_REDIS();
    rcluster *c = connect_cluster();
    set_get(c, 400, "reshard");
    char from[48], to[48];
    assert_int_equal(rct_node_id(&g_cl, 0, from), 0);
    assert_int_equal(rct_node_id(&g_cl, 1, to), 0);
    reshard_reader rr = {c, 0, 0, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reshard_read_loop, &rr), 0);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "redis-cli --cluster reshard 127.0.0.1:%d --cluster-from %s --cluster-to %s "
             "--cluster-slots 1000 --cluster-yes >/dev/null 2>&1",
             g_cl.port[0], from, to);
    int rc = system(cmd);
    atomic_store(&rr.stop, 1);
    pthread_join(th, NULL);
    assert_int_equal(rc, 0);
    rcluster_stats s;
    rcluster_get_stats(c, &s);
    fprintf(stderr, "reshard: %d rounds of 400 GETs, %d bad, %llu MOVED, %llu ASK\n", rr.rounds,
            rr.bad, (unsigned long long)s.moved, (unsigned long long)s.ask);
    assert_true(rr.rounds > 0);
    assert_int_equal(rr.bad, 0);
    assert_true(s.moved > 0); /* the reader did see slots move */
    rcluster_free(c);
}

static void test_bad_seeds(void **state) {
    (void)state;
    rcluster *c = NULL;
    mr_err e = {0};
    rcluster_config cfg = {"no-port", 100, 100, 1, 0};
    assert_int_equal(rcluster_create(&cfg, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "no-port"));
    cfg.seeds = "";
    assert_int_equal(rcluster_create(&cfg, &c, &e), MR_EINVAL);
    int port = rct_pick_port(); /* nobody listens there */
    char seeds[64];
    snprintf(seeds, sizeof seeds, "127.0.0.1:%d", port);
    cfg.seeds = seeds;
    assert_int_equal(rcluster_create(&cfg, &c, &e), MR_EUNAVAIL);
    assert_null(c);
    /* lazy: starts without a map; a call fails fast with UNAVAILABLE */
    cfg.lazy = 1;
    assert_int_equal(rcluster_create(&cfg, &c, &e), 0);
    const char *argv[2] = {"GET", "k"};
    size_t len[2] = {3, 1};
    rcluster_cmd cmd = {2, argv, len, 1};
    redisReply *r = (redisReply *)1;
    assert_int_equal(rcluster_pipeline(c, 1, &cmd, &r, &e), MR_EUNAVAIL);
    assert_null(r);
    rcluster_stats s;
    rcluster_get_stats(c, &s);
    assert_int_equal(s.failed, 1);
    assert_true(s.conn_errors >= 1);
    rcluster_free(c);
}

/* The tier between the store's cache and RocksDB. */
enum { DIM = 8, NROWS = 2000 };

static mr_store *open_with_tier(const char *dir, const store_tier *tier) {
    store_config cfg;
    store_config_init(&cfg);
    cfg.cache_bytes = 0; /* every lookup reaches the tier */
    cfg.tier = tier;
    mr_store *st = NULL;
    mr_err e = {0};
    int rc = store_open(&st, dir, &cfg, &e);
    if (rc) fprintf(stderr, "store_open: %s\n", e.msg);
    assert_int_equal(rc, 0);
    return st;
}

static void test_tier_through_the_store(void **state) {
    (void)state;
    NEED_REDIS();
    char dir[256];
    assert_non_null(store_test_tmpdir(dir, sizeof dir, "tier"));
    tier_redis_config tcfg = {{g_cl.seeds, 500, 300, 4, 0}, "t1", 600};
    tier_redis *tr = NULL;
    store_tier tier;
    mr_err e = {0};
    assert_int_equal(tier_redis_create(&tcfg, &tr, &tier, &e), 0);
    mr_store *st = open_with_tier(dir, &tier);
    assert_int_equal(emb_table_create(st, "items", DIM, EMB_FP32, 0, &e), 0);
    mr_emb_table *t = emb_store_table(st, "items", &e);
    float *x = malloc(NROWS * DIM * sizeof *x), *y = malloc(NROWS * DIM * sizeof *y);
    uint64_t *ids = malloc(NROWS * sizeof *ids);
    uint8_t *found = malloc(NROWS);
    assert_true(x && y && ids && found);
    mr_rng r;
    mr_rng_seed(&r, 5);
    mr_rng_fill_normal(&r, x, NROWS * DIM, 1.0f);
    for (int i = 0; i < NROWS; i++) ids[i] = (uint64_t)i * 1000003u;
    for (int b = 0; b < NROWS; b += 500)
        assert_int_equal(emb_store_put(st, t, ids + b, 500, x + (size_t)b * DIM, 500 * DIM, &e), 0);
    tier_redis_stats ts;
    tier_redis_get_stats(tr, &ts);
    assert_int_equal(ts.puts, NROWS); /* written through */
    assert_int_equal(ts.put_failed, 0);

    /* every row answered by the tier: the store counts tier hits */
    assert_int_equal(emb_store_get(st, t, ids, NROWS, y, found, &e), 0);
    for (int i = 0; i < NROWS; i++) assert_true(found[i]);
    assert_memory_equal(x, y, NROWS * DIM * sizeof *x);
    store_stats ss;
    store_get_stats(st, &ss);
    assert_int_equal(ss.tier_hits, NROWS);
    tier_redis_get_stats(tr, &ts);
    assert_int_equal(ts.hits, NROWS);
    assert_int_equal(ts.degraded, 0);

    /* a TTL is set on every row; the key names the table by its name's
     * hash (store_tier_key), the same on every replica */
    char key[64];
    snprintf(key, sizeof key, "t1:%016llx:%llu", (unsigned long long)store_tier_key("items"),
             (unsigned long long)ids[1]);
    int owner = rct_slot_owner(&g_cl, 0, rcluster_keyslot(key, strlen(key)));
    redisReply *rr = rct_cmd(&g_cl, owner, "TTL %s", key);
    assert_non_null(rr);
    assert_true(rr->integer > 0 && rr->integer <= 600);
    freeReplyObject(rr);

    /* a deleted item's vector is replaced by a marker (an empty value), not
     * served, and a fill (a row read from RocksDB before the delete, put
     * back late) does not replace the marker; a write does */
    assert_int_equal(item_store_delete(st, t, ids + 1, 1, 1000, &e), 0);
    rr = rct_cmd(&g_cl, owner, "STRLEN %s", key);
    assert_non_null(rr);
    assert_int_equal(rr->integer, 0);
    freeReplyObject(rr);
    tier_redis_get_stats(tr, &ts);
    assert_int_equal(ts.dels, 1);
    assert_int_equal(ts.del_failed, 0);
    assert_int_equal(emb_store_get(st, t, ids, 3, y, found, &e), 0);
    assert_true(found[0] && !found[1] && found[2]);
    uint64_t tk = store_tier_key("items");
    assert_int_equal(tier.put(tier.ctx, tk, DIM, ids + 1, 1, x + DIM, 1, &e), 0); /* fill */
    rr = rct_cmd(&g_cl, owner, "STRLEN %s", key);
    assert_non_null(rr);
    assert_int_equal(rr->integer, 0);
    freeReplyObject(rr);
    assert_int_equal(emb_store_put(st, t, ids + 1, 1, x + DIM, DIM, &e), 0); /* back, for below */

    /* a master killed: every lookup still answered, from RocksDB */
    rct_kill(&g_cl, 2);
    for (int round = 0; round < 3; round++) {
        memset(y, 0, NROWS * DIM * sizeof *y);
        assert_int_equal(emb_store_get(st, t, ids, NROWS, y, found, &e), 0);
        for (int i = 0; i < NROWS; i++) assert_true(found[i]);
        assert_memory_equal(x, y, NROWS * DIM * sizeof *x);
    }
    tier_redis_get_stats(tr, &ts);
    assert_true(ts.degraded > 0); /* the dead master's rows */
    assert_true(ts.degraded < 3 * NROWS);
    /* writes still succeed too (write-through failures are only counted) */
    assert_int_equal(emb_store_put(st, t, ids, 500, x, 500 * DIM, &e), 0);
    tier_redis_get_stats(tr, &ts);
    assert_true(ts.put_failed > 0);
    store_close(st);
    tier_redis_free(tr);
    store_test_rmrf(dir);
    free(x), free(y), free(ids), free(found);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyslot),
        cmocka_unit_test(test_bad_seeds),
        cmocka_unit_test(test_pipeline_spreads_over_masters),
        cmocka_unit_test(test_ask_then_moved),
        cmocka_unit_test(test_reshard_under_traffic),
        cmocka_unit_test(test_tier_through_the_store), /* kills a master: last */
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
