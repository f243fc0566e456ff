/* test_emb_store.c — batched embedding reads and writes (index/store/emb_store.c)
 * on a real RocksDB in a temp folder: round trips per encoding, exact cache
 * counters through the store, the tier order (cache -> tier -> RocksDB),
 * TTL on the read path, and bad input (wrong length, NaN/Inf, fp16 range,
 * unknown table, corrupt rows written behind the store's back) giving clear
 * errors with nothing written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include <rocksdb/c.h>
#include <cmocka.h>

#include "common/clock.h"
#include "common/rng.h"
#include "index/store/cache.h"
#include "index/store/emb_codec.h"
#include "index/store/item_log.h"
#include "index/store/store.h"
#include "store_testutil.h"

enum { D = 16 };

typedef struct fx {
    char dir[256];
    mr_store *st;
} fx;

static mr_store *open_store(const char *dir, size_t cache_bytes, const store_tier *tier) {
    store_config c;
    store_config_init(&c);
    c.cache_bytes = cache_bytes;
    c.cache_shards = 1;
    c.tier = tier;
    mr_store *st = NULL;
    mr_err e;
    int rc = store_open(&st, dir, &c, &e);
    if (rc) fail_msg("store_open: %s", e.msg);
    return st;
}

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    assert_non_null(store_test_tmpdir(f->dir, sizeof f->dir, "emb"));
    f->st = open_store(f->dir, 1 << 20, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    store_close(f->st);
    store_test_rmrf(f->dir);
    free(f);
    return 0;
}

static void rows(uint64_t seed, float *x, size_t n) {
    mr_rng r;
    mr_rng_seed(&r, seed);
    mr_rng_fill_normal(&r, x, (long)n, 1.0f);
}

static void test_round_trip_each_encoding(void **state) {
    fx *f = *state;
    const char *names[3] = {"f32", "f16", "i8"};
    enum { N = 300 };
    float *x = malloc(N * D * sizeof *x), *y = malloc(N * D * sizeof *y);
    uint64_t ids[N];
    uint8_t found[N];
    for (int i = 0; i < N; i++) ids[i] = (uint64_t)i * 7919u;
    rows(1, x, N * D);
    for (int enc = 0; enc < 3; enc++) {
        assert_int_equal(emb_table_create(f->st, names[enc], D, (emb_encoding)enc, 0, NULL), 0);
        mr_emb_table *t = emb_store_table(f->st, names[enc], NULL);
        assert_non_null(t);
        assert_int_equal(emb_store_put(f->st, t, ids, N, x, N * D, NULL), 0);
        for (int pass = 0; pass < 2; pass++) { /* pass 0 from RocksDB, pass 1 from the cache */
            memset(y, 0xff, N * D * sizeof *y);
            assert_int_equal(emb_store_get(f->st, t, ids, N, y, found, NULL), 0);
            for (int i = 0; i < N; i++) {
                assert_int_equal(found[i], 1);
                float amax = 0;
                for (int j = 0; j < D; j++) amax = fmaxf(amax, fabsf(x[i * D + j]));
                for (int j = 0; j < D; j++) {
                    float err = fabsf(y[i * D + j] - x[i * D + j]);
                    if (enc == EMB_FP32) assert_true(err == 0.0f);
                    if (enc == EMB_FP16)
                        assert_true(err <= ldexpf(fabsf(x[i * D + j]), -11) + 1e-7f);
                    if (enc == EMB_INT8) assert_true(err <= amax / 254.0f * 1.0001f);
                }
            }
        }
        /* uncached path returns the same numbers */
        float *z = malloc(N * D * sizeof *z);
        assert_int_equal(emb_store_get_uncached(f->st, t, ids, N, z, found, NULL), 0);
        assert_memory_equal(y, z, N * D * sizeof *z);
        free(z);
    }
    assert_int_equal(emb_store_ntables(f->st), 3);
    free(x);
    free(y);
}

static void test_missing_rows_zeroed(void **state) {
    fx *f = *state;
    assert_int_equal(emb_table_create(f->st, "t", D, EMB_FP32, 0, NULL), 0);
    mr_emb_table *t = emb_store_table(f->st, "t", NULL);
    float x[2 * D], y[4 * D];
    rows(2, x, 2 * D);
    uint64_t ids[2] = {10, 30}, q[4] = {30, 20, 10, 40};
    uint8_t found[4];
    assert_int_equal(emb_store_put(f->st, t, ids, 2, x, 2 * D, NULL), 0);
    memset(y, 0x7f, sizeof y);
    assert_int_equal(emb_store_get(f->st, t, q, 4, y, found, NULL), 0);
    assert_int_equal(found[0], 1);
    assert_int_equal(found[1], 0);
    assert_int_equal(found[2], 1);
    assert_int_equal(found[3], 0);
    assert_memory_equal(y, x + D, D * sizeof(float));
    assert_memory_equal(y + 2 * D, x, D * sizeof(float));
    for (int j = 0; j < D; j++) assert_true(y[D + j] == 0.0f && y[3 * D + j] == 0.0f);
}

/* Scripted access: counters through the store are exact, misses go to
 * RocksDB in ONE multi-get per call, puts refresh cached rows. */
static void test_cache_counters_exact(void **state) {
    fx *f = *state;
    assert_int_equal(emb_table_create(f->st, "t", D, EMB_FP16, 0, NULL), 0);
    mr_emb_table *t = emb_store_table(f->st, "t", NULL);
    enum { N = 100 };
    float x[N * D], y[N * D];
    uint64_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = (uint64_t)i;
    rows(3, x, N * D);
    assert_int_equal(emb_store_put(f->st, t, ids, N, x, N * D, NULL), 0);
    store_stats s0, s;
    store_get_stats(f->st, &s0);
    assert_int_equal(emb_store_get(f->st, t, ids, 60, y, NULL, NULL), 0); /* 60 misses */
    assert_int_equal(emb_store_get(f->st, t, ids, N, y, NULL, NULL), 0);  /* 60 hits, 40 misses */
    assert_int_equal(emb_store_get(f->st, t, ids + 50, 50, y, NULL, NULL), 0); /* 50 hits */
    store_get_stats(f->st, &s);
    assert_int_equal(s.cache_hits - s0.cache_hits, 110);
    assert_int_equal(s.cache_misses - s0.cache_misses, 100);
    assert_int_equal(s.cache_inserts - s0.cache_inserts, 100);
    assert_int_equal(s.db_multigets - s0.db_multigets, 2);
    assert_int_equal(s.db_rows_read - s0.db_rows_read, 100);
    assert_int_equal(s.db_rows_found - s0.db_rows_found, 100);
    assert_int_equal(s.cache_entries, 100);
    /* a put refreshes the cached copy: the next read hits and is new */
    float nx[D];
    rows(33, nx, D);
    assert_int_equal(emb_store_put(f->st, t, ids + 5, 1, nx, D, NULL), 0);
    float got[D];
    assert_int_equal(emb_store_get(f->st, t, ids + 5, 1, got, NULL, NULL), 0);
    for (int j = 0; j < D; j++) assert_true(got[j] == emb_f16_to_f32(emb_f32_to_f16(nx[j])));
    store_stats s2;
    store_get_stats(f->st, &s2);
    assert_int_equal(s2.cache_hits - s.cache_hits, 1);
    assert_int_equal(s2.db_multigets, s.db_multigets);
}

/* The cache keeps rows in their stored encoding (payload only) and decodes
 * on copy-out: byte accounting is exact (bytes == entries x the charge of
 * the payload), the budget is never exceeded, and the same budget holds
 * charge(fp32 row) / charge(int8 payload) times more int8 rows. Hits decode
 * to exactly what the uncached read returns. */
static void test_cache_holds_encoded_rows(void **state) {
    (void)state;
    enum { DIM = 64, N = 400, K = 100 };
    const emb_encoding encs[3] = {EMB_FP32, EMB_FP16, EMB_INT8};
    const size_t budget = K * cache_entry_charge(emb_codec_payload_bytes(EMB_INT8, DIM));
    float *x = malloc(N * DIM * sizeof *x), *y = malloc(N * DIM * sizeof *y),
          *z = malloc(N * DIM * sizeof *z);
    uint64_t ids[N], held[3];
    uint8_t found[N];
    for (int i = 0; i < N; i++) ids[i] = (uint64_t)i;
    rows(7, x, N * DIM);
    for (int k = 0; k < 3; k++) {
        char dir[256];
        assert_non_null(store_test_tmpdir(dir, sizeof dir, "embenc"));
        mr_store *st = open_store(dir, budget, NULL);
        assert_int_equal(emb_table_create(st, "t", DIM, encs[k], 0, NULL), 0);
        mr_emb_table *t = emb_store_table(st, "t", NULL);
        assert_int_equal(emb_store_put(st, t, ids, N, x, N * DIM, NULL), 0);
        for (int b = 0; b < N; b += 50) /* fill: every read inserts its misses */
            assert_int_equal(emb_store_get(st, t, ids + b, 50, y + b * DIM, found, NULL), 0);
        store_stats s;
        store_get_stats(st, &s);
        size_t charge = cache_entry_charge(emb_codec_payload_bytes(encs[k], DIM));
        assert_true(s.cache_entries > 0);
        assert_int_equal(s.cache_bytes, s.cache_entries * charge);
        assert_true(s.cache_bytes <= s.cache_capacity);
        assert_true(s.cache_capacity == budget);
        assert_true(s.cache_bytes + charge > s.cache_capacity); /* full: no room for one more */
        held[k] = s.cache_entries;
        /* what is cached now decodes to what RocksDB holds */
        assert_int_equal(emb_store_get(st, t, ids, N, y, found, NULL), 0);
        assert_int_equal(emb_store_get_uncached(st, t, ids, N, z, found, NULL), 0);
        assert_memory_equal(y, z, N * DIM * sizeof *y);
        store_stats s2;
        store_get_stats(st, &s2);
        assert_true(s2.cache_hits > s.cache_hits);
        assert_true(s2.cache_bytes <= s2.cache_capacity);
        store_close(st);
        store_test_rmrf(dir);
    }
    assert_int_equal(held[2], K); /* int8 + scale: 68-byte payloads */
    assert_int_equal(held[0], budget / cache_entry_charge(DIM * 4));
    assert_true(held[1] == budget / cache_entry_charge(DIM * 2));
    assert_true(held[2] > 2 * held[0]); /* 2.4x at dim 64: the charge has 64 B of node overhead */
    free(x);
    free(y);
    free(z);
}

/* cache_seen_twice: every miss is admitted until the cache first evicts;
 * after that a row is admitted on its second miss, not its first. */
static void test_cache_admission_seen_twice(void **state) {
    (void)state;
    enum { DIM = 16, K = 10 };
    char dir[256];
    assert_non_null(store_test_tmpdir(dir, sizeof dir, "embadm"));
    store_config c;
    store_config_init(&c);
    c.cache_bytes = K * cache_entry_charge(emb_codec_payload_bytes(EMB_INT8, DIM));
    c.cache_shards = 1;
    c.cache_seen_twice = 1;
    mr_store *st = NULL;
    assert_int_equal(store_open(&st, dir, &c, NULL), 0);
    assert_int_equal(emb_table_create(st, "t", DIM, EMB_INT8, 0, NULL), 0);
    mr_emb_table *t = emb_store_table(st, "t", NULL);
    float x[40 * DIM], y[DIM];
    uint64_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = (uint64_t)i;
    rows(9, x, 40 * DIM);
    assert_int_equal(emb_store_put(st, t, ids, 40, x, 40 * DIM, NULL), 0);
    store_stats s0, s;
    for (int i = 0; i <= K; i++) /* K + 1 first misses: all admitted, one eviction */
        assert_int_equal(emb_store_get(st, t, ids + i, 1, y, NULL, NULL), 0);
    store_get_stats(st, &s0);
    assert_int_equal(s0.cache_inserts, K + 1);
    assert_int_equal(s0.cache_evictions, 1);
    assert_int_equal(emb_store_get(st, t, ids + 20, 1, y, NULL, NULL), 0); /* first miss */
    store_get_stats(st, &s);
    assert_int_equal(s.cache_inserts, s0.cache_inserts);
    assert_int_equal(emb_store_get(st, t, ids + 20, 1, y, NULL, NULL), 0); /* second: admitted */
    store_get_stats(st, &s);
    assert_int_equal(s.cache_inserts, s0.cache_inserts + 1);
    assert_int_equal(emb_store_get(st, t, ids + 20, 1, y, NULL, NULL), 0); /* now a hit */
    store_stats s2;
    store_get_stats(st, &s2);
    assert_int_equal(s2.cache_hits, s.cache_hits + 1);
    assert_true(s2.cache_bytes <= s2.cache_capacity);
    store_close(st);
    store_test_rmrf(dir);
}

/* ---- a fake shared tier: counts calls, holds rows in a small table ------- */
typedef struct fake_tier {
    uint64_t ids[64];
    float vecs[64][D];
    int n, gets, puts, asked, dels;
    uint64_t table_key; /* of the last call */
} fake_tier;

static int fake_get(void *ctx, uint64_t table, uint32_t dim, const uint64_t *ids, size_t n,
                    float *out, uint8_t *found, mr_err *e) {
    (void)e;
    fake_tier *t = ctx;
    t->table_key = table;
    t->gets++;
    t->asked += (int)n;
    for (size_t i = 0; i < n; i++) {
        found[i] = 0;
        for (int k = 0; k < t->n; k++)
            if (t->ids[k] == ids[i]) {
                memcpy(out + i * dim, t->vecs[k], dim * sizeof(float));
                found[i] = 1;
            }
    }
    return 0;
}

static int fake_put(void *ctx, uint64_t table, uint32_t dim, const uint64_t *ids, size_t n,
                    const float *vecs, int fill, mr_err *e) {
    (void)e;
    (void)fill;
    fake_tier *t = ctx;
    t->table_key = table;
    t->puts++;
    for (size_t i = 0; i < n && t->n < 64; i++) {
        t->ids[t->n] = ids[i];
        memcpy(t->vecs[t->n++], vecs + i * dim, dim * sizeof(float));
    }
    return 0;
}

static int fake_del(void *ctx, uint64_t table, const uint64_t *ids, size_t n, mr_err *e) {
    (void)e;
    fake_tier *t = ctx;
    t->table_key = table;
    t->dels++;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < t->n; k++)
            if (t->ids[k] == ids[i]) t->ids[k] = UINT64_MAX; /* forgotten */
    return 0;
}

static void test_tier_order(void **state) {
    fx *f = *state;
    assert_int_equal(emb_table_create(f->st, "t", D, EMB_FP32, 0, NULL), 0);
    mr_emb_table *t = emb_store_table(f->st, "t", NULL);
    float x[4 * D];
    rows(4, x, 4 * D);
    uint64_t ids[4] = {1, 2, 3, 4};
    assert_int_equal(emb_store_put(f->st, t, ids, 4, x, 4 * D, NULL), 0);
    store_close(f->st);
    fake_tier ft = {0};
    store_tier tier = {&ft, fake_get, fake_put, fake_del};
    /* the tier holds row 9, which RocksDB does not have */
    ft.ids[0] = 9;
    for (int j = 0; j < D; j++) ft.vecs[0][j] = (float)j;
    ft.n = 1;
    f->st = open_store(f->dir, 1 << 20, &tier);
    t = emb_store_table(f->st, "t", NULL);
    uint64_t q[3] = {1, 9, 2};
    float y[3 * D];
    uint8_t found[3];
    assert_int_equal(emb_store_get(f->st, t, q, 3, y, found, NULL), 0);
    assert_true(found[0] && found[1] && found[2]);
    assert_true(y[D + 5] == 5.0f);                /* row 9 from the tier */
    assert_memory_equal(y, x, D * sizeof(float)); /* rows 1, 2 from RocksDB ... */
    assert_int_equal(ft.gets, 1);
    assert_int_equal(ft.asked, 3);
    assert_int_equal(ft.puts, 1); /* ... and offered to the tier */
    assert_int_equal(ft.n, 3);
    store_stats s;
    store_get_stats(f->st, &s);
    assert_int_equal(s.tier_hits, 1);
    assert_int_equal(s.db_rows_read, 2);
    /* second read: all from the memory cache, the tier is not asked */
    assert_int_equal(emb_store_get(f->st, t, q, 3, y, found, NULL), 0);
    assert_int_equal(ft.gets, 1);
    /* rows are keyed by the table's name, not its per-store numeric id */
    assert_true(ft.table_key == store_tier_key("t"));
    store_close(f->st);
    f->st = open_store(f->dir, 1 << 20, NULL); /* teardown must not see the stack tier */
}

/* A table with a TTL does not use the tier (which holds no write time and
 * would serve an expired row); deleted item vectors are forgotten there. */
static void test_tier_ttl_and_delete(void **state) {
    fx *f = *state;
    store_close(f->st);
    fake_tier ft = {0};
    store_tier tier = {&ft, fake_get, fake_put, fake_del};
    f->st = open_store(f->dir, 0, &tier); /* no memory cache: every read reaches the tier */
    assert_int_equal(emb_table_create(f->st, "ttl", D, EMB_FP32, 3600, NULL), 0);
    assert_int_equal(emb_table_create(f->st, "vec", D, EMB_FP32, 0, NULL), 0);
    mr_emb_table *tt = emb_store_table(f->st, "ttl", NULL),
                 *tv = emb_store_table(f->st, "vec", NULL);
    float x[2 * D], y[2 * D];
    rows(2, x, 2 * D);
    uint64_t ids[2] = {4, 5};
    uint8_t found[2];
    assert_int_equal(emb_store_put(f->st, tt, ids, 2, x, 2 * D, NULL), 0);
    assert_int_equal(emb_store_get(f->st, tt, ids, 2, y, found, NULL), 0);
    assert_true(found[0] && found[1]);
    assert_int_equal(ft.gets + ft.puts, 0); /* the TTL table never reached the tier */
    assert_int_equal(emb_store_put(f->st, tv, ids, 2, x, 2 * D, NULL), 0);
    assert_int_equal(ft.puts, 1); /* written through */
    assert_int_equal(ft.n, 2);
    assert_int_equal(emb_store_get(f->st, tv, ids, 2, y, found, NULL), 0);
    assert_int_equal(ft.gets, 1);
    assert_memory_equal(y, x, 2 * D * sizeof(float));
    /* delete item 4: gone from RocksDB and from the tier */
    assert_int_equal(item_store_delete(f->st, tv, ids, 1, 1000, NULL), 0);
    assert_int_equal(ft.dels, 1);
    assert_true(ft.table_key == store_tier_key("vec"));
    assert_int_equal(emb_store_get(f->st, tv, ids, 2, y, found, NULL), 0);
    assert_int_equal(found[0], 0);
    assert_int_equal(found[1], 1);
    store_close(f->st);
    f->st = open_store(f->dir, 1 << 20, NULL); /* teardown must not see the stack tier */
}

static void expect_nothing_written(mr_store *st, mr_emb_table *t, const uint64_t *ids, size_t n) {
    float y[D];
    uint8_t found;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(emb_store_get_uncached(st, t, ids + i, 1, y, &found, NULL), 0);
        assert_int_equal(found, 0);
    }
}

static void test_bad_input(void **state) {
    fx *f = *state;
    assert_int_equal(emb_table_create(f->st, "t", D, EMB_FP16, 0, NULL), 0);
    mr_emb_table *t = emb_store_table(f->st, "t", NULL);
    float x[3 * D];
    rows(5, x, 3 * D);
    uint64_t ids[3] = {100, 101, 102};
    mr_err e;
    store_stats s0, s;
    store_get_stats(f->st, &s0);
    /* wrong length */
    assert_int_equal(emb_store_put(f->st, t, ids, 3, x, 3 * D - 1, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "dim 16"));
    /* NaN in the last row: the first two must not be written either */
    x[2 * D + 3] = NAN;
    assert_int_equal(emb_store_put(f->st, t, ids, 3, x, 3 * D, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "row 102"));
    assert_non_null(strstr(e.msg, "NaN"));
    x[2 * D + 3] = INFINITY;
    assert_int_equal(emb_store_put(f->st, t, ids, 3, x, 3 * D, &e), MR_EINVAL);
    x[2 * D + 3] = 1e9f; /* finite but beyond fp16 */
    assert_int_equal(emb_store_put(f->st, t, ids, 3, x, 3 * D, &e), MR_ERANGE);
    assert_non_null(strstr(e.msg, "fp16"));
    expect_nothing_written(f->st, t, ids, 3);
    store_get_stats(f->st, &s);
    assert_int_equal(s.batches_written, s0.batches_written);
    /* unknown table */
    assert_null(emb_store_table(f->st, "nope", &e));
    assert_int_equal(e.code, MR_ENOTFOUND);
    assert_non_null(strstr(e.msg, "nope"));
    float y[D];
    assert_int_equal(emb_store_get(f->st, NULL, ids, 1, y, NULL, &e), MR_ENOTFOUND);
    assert_int_equal(emb_store_put(f->st, NULL, ids, 1, x, D, &e), MR_ENOTFOUND);
    /* bad schema */
    assert_int_equal(emb_table_create(f->st, "bad name", D, EMB_FP32, 0, &e), MR_EINVAL);
    assert_int_equal(emb_table_create(f->st, "z", 0, EMB_FP32, 0, &e), MR_EINVAL);
    assert_int_equal(emb_table_create(f->st, "z", D, (emb_encoding)9, 0, &e), MR_EINVAL);
    assert_int_equal(emb_table_create(f->st, "t", D + 1, EMB_FP16, 0, &e), MR_EEXIST);
    assert_int_equal(emb_table_create(f->st, "t", D, EMB_FP16, 0, NULL), 0); /* idempotent */
}

/* Values written into family fam of the closed store at dir behind the
 * store's back, in raw RocksDB: n (id, value, length) triples. */
static void raw_put(const char *dir, const char *fam, int n, const uint64_t *ids,
                    const uint8_t *const *vals, const size_t *lens) {
    char *err = NULL;
    rocksdb_options_t *o = rocksdb_options_create();
    size_t ncf;
    char **names = rocksdb_list_column_families(o, dir, &ncf, &err);
    assert_null(err);
    const rocksdb_options_t **opts = calloc(ncf, sizeof *opts);
    rocksdb_column_family_handle_t **h = calloc(ncf, sizeof *h);
    for (size_t i = 0; i < ncf; i++) opts[i] = o;
    rocksdb_t *db = rocksdb_open_column_families(o, dir, (int)ncf, (const char *const *)names, opts,
                                                 h, &err);
    assert_null(err);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    int put = 0;
    for (size_t i = 0; i < ncf; i++)
        if (strcmp(names[i], fam) == 0)
            for (int j = 0; j < n; j++, put++) {
                uint8_t k[8];
                emb_key_encode(ids[j], k);
                rocksdb_put_cf(db, wo, h[i], (const char *)k, 8, (const char *)vals[j], lens[j],
                               &err);
                assert_null(err);
            }
    assert_int_equal(put, n);
    for (size_t i = 0; i < ncf; i++) rocksdb_column_family_handle_destroy(h[i]);
    rocksdb_close(db);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_list_column_families_destroy(names, ncf);
    rocksdb_options_destroy(o);
    free(opts);
    free(h);
}

/* Rows overwritten with garbage behind the store's back: MR_ECORRUPT that
 * names the row; the other rows of the batch are still served. */
static void test_corrupt_rows(void **state) {
    fx *f = *state;
    assert_int_equal(emb_table_create(f->st, "t", D, EMB_INT8, 0, NULL), 0);
    mr_emb_table *t = emb_store_table(f->st, "t", NULL);
    float x[3 * D];
    rows(6, x, 3 * D);
    uint64_t ids[3] = {1, 2, 3};
    assert_int_equal(emb_store_put(f->st, t, ids, 3, x, 3 * D, NULL), 0);
    store_close(f->st);
    /* row 2: garbage; row 3: the right length, one flipped byte */
    uint8_t good[256];
    emb_codec_encode(EMB_INT8, x + 2 * D, D, 0, good);
    good[20] ^= 1;
    const uint8_t *vals[2] = {(const uint8_t *)"garbage!", good};
    size_t lens[2] = {8, emb_codec_row_bytes(EMB_INT8, D)};
    raw_put(f->dir, "emb.t", 2, ids + 1, vals, lens);

    f->st = open_store(f->dir, 1 << 20, NULL);
    t = emb_store_table(f->st, "t", NULL);
    float y[3 * D];
    uint8_t found[3];
    mr_err e;
    assert_int_equal(emb_store_get(f->st, t, ids, 3, y, found, &e), MR_ECORRUPT);
    assert_non_null(strstr(e.msg, "row 2"));
    assert_int_equal(found[0], 1);
    assert_int_equal(found[1], 0);
    assert_int_equal(found[2], 0);
    store_stats s;
    store_get_stats(f->st, &s);
    assert_int_equal(s.corrupt_rows, 2);
    assert_int_equal(s.cache_entries, 1); /* corrupt rows are never cached */
    /* rewriting the row repairs it */
    assert_int_equal(emb_store_put(f->st, t, ids + 1, 2, x + D, 2 * D, NULL), 0);
    assert_int_equal(emb_store_get(f->st, t, ids, 3, y, found, NULL), 0);
    assert_true(found[1] && found[2]);
}

/* A store written before rows moved to xxh3: version 1 rows (magic 0xE5,
 * XXH32) are served as the same floats as version 2 rows, without a
 * rebuild, and count as no corrupt row. */
static void test_version1_rows_served(void **state) {
    fx *f = *state;
    assert_int_equal(emb_table_create(f->st, "t", D, EMB_FP16, 0, NULL), 0);
    mr_emb_table *t = emb_store_table(f->st, "t", NULL);
    float x[3 * D], want[3 * D], y[3 * D];
    rows(8, x, 3 * D);
    uint64_t ids[3] = {4, 5, 6};
    uint8_t found[3];
    assert_int_equal(emb_store_put(f->st, t, ids, 3, x, 3 * D, NULL), 0);
    assert_int_equal(emb_store_get(f->st, t, ids, 3, want, found, NULL), 0);
    store_close(f->st);
    size_t n = emb_codec_row_bytes(EMB_FP16, D);
    uint8_t v1[2][512];
    assert_true(n <= sizeof v1[0]);
    for (int j = 0; j < 2; j++) {
        emb_codec_encode(EMB_FP16, x + (size_t)(j + 1) * D, D, 77, v1[j]);
        v1[j][0] = EMB_ROW_MAGIC_V1;
        uint32_t sum = emb_codec_sum_v1(v1[j], n - EMB_SUM_BYTES);
        memcpy(v1[j] + n - EMB_SUM_BYTES, &sum, 4);
    }
    const uint8_t *vals[2] = {v1[0], v1[1]};
    size_t lens[2] = {n, n};
    raw_put(f->dir, "emb.t", 2, ids + 1, vals, lens);

    f->st = open_store(f->dir, 1 << 20, NULL);
    t = emb_store_table(f->st, "t", NULL);
    memset(found, 0, sizeof found);
    assert_int_equal(emb_store_get(f->st, t, ids, 3, y, found, NULL), 0);
    assert_true(found[0] && found[1] && found[2]);
    assert_memory_equal(y, want, sizeof y);
    store_stats s;
    store_get_stats(f->st, &s);
    assert_int_equal(s.corrupt_rows, 0);
}

static void test_ttl_on_read_and_expire(void **state) {
    fx *f = *state;
    assert_int_equal(emb_table_create(f->st, "short", D, EMB_FP32, 1, NULL), 0);
    assert_int_equal(emb_table_create(f->st, "forever", D, EMB_FP32, 0, NULL), 0);
    mr_emb_table *ts = emb_store_table(f->st, "short", NULL),
                 *tf = emb_store_table(f->st, "forever", NULL);
    float x[2 * D], y[2 * D];
    rows(7, x, 2 * D);
    uint64_t ids[2] = {5, 6};
    uint8_t found[2];
    int64_t t0 = mr_unix_ms();
    assert_int_equal(emb_store_put(f->st, ts, ids, 2, x, 2 * D, NULL), 0);
    assert_int_equal(emb_store_put(f->st, tf, ids, 2, x, 2 * D, NULL), 0);
    assert_int_equal(emb_store_get(f->st, ts, ids, 2, y, found, NULL), 0); /* now cached */
    int64_t t1 = mr_unix_ms();
    if (t1 - t0 < 900) assert_true(found[0] && found[1]); /* unless this host stalled 1 s */
    while (mr_unix_ms() <= t1 + 1100) usleep(50 * 1000);  /* > 1 s after the writes */
    /* cached and uncached reads both treat the rows as gone */
    assert_int_equal(emb_store_get(f->st, ts, ids, 2, y, found, NULL), 0);
    assert_true(!found[0] && !found[1]);
    assert_int_equal(emb_store_get_uncached(f->st, ts, ids, 2, y, found, NULL), 0);
    assert_true(!found[0] && !found[1]);
    assert_int_equal(emb_store_get(f->st, tf, ids, 2, y, found, NULL), 0);
    assert_true(found[0] && found[1]);
    store_stats s;
    store_get_stats(f->st, &s);
    assert_true(s.expired_rows >= 4);
    uint64_t ndel = 0;
    assert_int_equal(store_expire(f->st, mr_unix_ms(), &ndel, NULL), 0);
    assert_int_equal(ndel, 2);
    assert_int_equal(store_expire(f->st, mr_unix_ms(), &ndel, NULL), 0);
    assert_int_equal(ndel, 0);
}

/* A put that refreshes a row while store_expire sweeps must survive: the
 * sweep's scan sees the old (expired) row, and deleting it by key after
 * the put committed used to drop an acknowledged write.
 * The sweep runs at a chosen clock (store_expire takes now_ms) one TTL past
 * the initial puts, so with a long TTL the initial rows are expired for the
 * sweep while every re-put is fresh, both for the sweep and for the final
 * read at the real clock. (A 1 s TTL with real time made the final read
 * treat re-puts older than a second as expired when the host stalled.) */
typedef struct expire_race {
    mr_store *st;
    mr_emb_table *t;
    const float *x;
    atomic_int go, stop, puts;
} expire_race;

enum { EXP_ROWS = 20000, EXP_BATCH = 250 };

static void *expire_race_putter(void *arg) {
    expire_race *r = arg;
    while (!atomic_load(&r->go)) {
    }
    uint64_t ids[EXP_BATCH];
    do { /* whole passes until the sweep is over: every row re-put at least once */
        for (size_t b = 0; b < EXP_ROWS; b += EXP_BATCH) {
            for (size_t i = 0; i < EXP_BATCH; i++) ids[i] = b + i;
            if (emb_store_put(r->st, r->t, ids, EXP_BATCH, r->x + b * D, EXP_BATCH * D, NULL))
                return (void *)1;
            atomic_fetch_add(&r->puts, 1);
        }
    } while (!atomic_load(&r->stop));
    return NULL;
}

static void test_expire_keeps_concurrent_puts(void **state) {
    fx *f = *state;
    enum { TTL_S = 3600 };
    assert_int_equal(emb_table_create(f->st, "ttl1", D, EMB_FP32, TTL_S, NULL), 0);
    expire_race r = {f->st, emb_store_table(f->st, "ttl1", NULL), NULL, 0, 0, 0};
    float *x = malloc((size_t)EXP_ROWS * D * sizeof *x);
    assert_non_null(x);
    rows(11, x, (size_t)EXP_ROWS * D);
    r.x = x;
    uint64_t ids[EXP_BATCH];
    for (size_t b = 0; b < EXP_ROWS; b += EXP_BATCH) {
        for (size_t i = 0; i < EXP_BATCH; i++) ids[i] = b + i;
        assert_int_equal(emb_store_put(f->st, r.t, ids, EXP_BATCH, x + b * D, EXP_BATCH * D, NULL),
                         0);
    }
    int64_t t1 = mr_unix_ms(); /* every initial row was written at or before t1 */
    int64_t sweep_now = t1 + (int64_t)TTL_S * 1000 + 1; /* ...so each is expired at sweep_now */
    while (mr_unix_ms() <= t1 + 2) usleep(1000);        /* re-puts written after t1 + 2: fresh */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, expire_race_putter, &r), 0);
    atomic_store(&r.go, 1);
    while (atomic_load(&r.puts) < 2) usleep(100); /* puts under way when the sweep starts */
    uint64_t ndel = 0;
    assert_int_equal(store_expire(f->st, sweep_now, &ndel, NULL), 0);
    atomic_store(&r.stop, 1);
    void *ret;
    pthread_join(th, &ret);
    assert_null(ret);
    /* every row was re-put (acknowledged) after it expired, and puts went on
     * until the sweep returned: all present */
    float *y = malloc((size_t)EXP_ROWS * D * sizeof *y);
    uint8_t *found = malloc(EXP_ROWS);
    uint64_t *all = malloc(EXP_ROWS * sizeof *all);
    assert_true(y && found && all);
    for (size_t i = 0; i < EXP_ROWS; i++) all[i] = i;
    assert_int_equal(emb_store_get_uncached(f->st, r.t, all, EXP_ROWS, y, found, NULL), 0);
    size_t lost = 0;
    for (size_t i = 0; i < EXP_ROWS; i++) lost += !found[i];
    if (lost)
        print_error("%zu of %d acknowledged puts lost (%llu deleted)\n", lost, EXP_ROWS,
                    (unsigned long long)ndel);
    assert_int_equal(lost, 0);
    assert_memory_equal(x, y, (size_t)EXP_ROWS * D * sizeof *x);
    free(x);
    free(y);
    free(found);
    free(all);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_each_encoding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_rows_zeroed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_counters_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_holds_encoded_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_admission_seen_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tier_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tier_ttl_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version1_rows_served, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_on_read_and_expire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expire_keeps_concurrent_puts, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
