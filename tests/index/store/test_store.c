/* test_store.c — opening the database (index/store/store.c): schema persisted in
 * meta across reopen, read-only opens refuse writes, checkpoints are
 * consistent point-in-time copies, a secondary sees the primary's writes
 * after store_catch_up (not before, even for cached rows), TTL sweeps of
 * tables and users, and stats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <rocksdb/c.h>
#include <cmocka.h>

#include "common/clock.h"
#include "common/rng.h"
#include "index/store/store.h"
#include "store_testutil.h"

enum { D = 8 };

typedef struct fx {
    char dir[256];
    mr_store *st;
} fx;

static mr_store *open_mode(const char *dir, store_mode mode, const char *sec, mr_err *e) {
    store_config c;
    store_config_init(&c);
    c.mode = mode;
    c.secondary_path = sec;
    c.cache_bytes = 1 << 20;
    mr_store *st = NULL;
    store_open(&st, dir, &c, e);
    return st;
}

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    assert_non_null(store_test_tmpdir(f->dir, sizeof f->dir, "store"));
    mr_err e;
    f->st = open_mode(f->dir, STORE_PRIMARY, NULL, &e);
    if (!f->st) fail_msg("open: %s", e.msg);
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

static void put_rows(mr_store *st, const char *table, uint64_t first, int n, float base) {
    mr_emb_table *t = emb_store_table(st, table, NULL);
    assert_non_null(t);
    float *x = malloc((size_t)n * D * sizeof *x);
    uint64_t *ids = malloc((size_t)n * sizeof *ids);
    for (int i = 0; i < n; i++) {
        ids[i] = first + (uint64_t)i;
        for (int j = 0; j < D; j++) x[i * D + j] = base + (float)i + 0.125f * (float)j;
    }
    assert_int_equal(emb_store_put(st, t, ids, (size_t)n, x, (size_t)n * D, NULL), 0);
    free(x);
    free(ids);
}

/* Number of rows [first, first+n) present, each checked for its value. */
static int count_rows(mr_store *st, const char *table, uint64_t first, int n, float base) {
    mr_emb_table *t = emb_store_table(st, table, NULL);
    if (!t) return -1;
    float y[D];
    int got = 0;
    for (int i = 0; i < n; i++) {
        uint64_t id = first + (uint64_t)i;
        uint8_t found;
        assert_int_equal(emb_store_get(st, t, &id, 1, y, &found, NULL), 0);
        if (!found) continue;
        assert_true(y[1] == base + (float)i + 0.125f);
        got++;
    }
    return got;
}

static void test_schema_persists(void **state) {
    fx *f = *state;
    assert_int_equal(emb_table_create(f->st, "user_emb", D, EMB_FP16, 0, NULL), 0);
    assert_int_equal(emb_table_create(f->st, "item_emb", 2 * D, EMB_INT8, 3600, NULL), 0);
    put_rows(f->st, "user_emb", 0, 10, 1.0f);
    store_close(f->st);
    mr_err e;
    f->st = open_mode(f->dir, STORE_PRIMARY, NULL, &e);
    assert_non_null(f->st);
    assert_int_equal(emb_store_ntables(f->st), 2);
    emb_table_info a, b;
    emb_table_get_info(emb_store_table(f->st, "user_emb", NULL), &a);
    emb_table_get_info(emb_store_table(f->st, "item_emb", NULL), &b);
    assert_string_equal(a.name, "user_emb");
    assert_int_equal(a.dim, D);
    assert_int_equal(a.encoding, EMB_FP16);
    assert_int_equal(b.dim, 2 * D);
    assert_int_equal(b.encoding, EMB_INT8);
    assert_int_equal(b.ttl_s, 3600);
    assert_true(a.id != b.id);
    assert_int_equal(count_rows(f->st, "user_emb", 0, 10, 1.0f), 10);
    assert_int_equal(store_compact(f->st, NULL), 0);
    assert_int_equal(count_rows(f->st, "user_emb", 0, 10, 1.0f), 10);
    /* ids stay unique after reopen */
    assert_int_equal(emb_table_create(f->st, "third", D, EMB_FP32, 0, NULL), 0);
    emb_table_info c;
    emb_table_get_info(emb_store_table(f->st, "third", NULL), &c);
    assert_true(c.id != a.id && c.id != b.id);
}

static void test_read_only(void **state) {
    fx *f = *state;
    assert_int_equal(emb_table_create(f->st, "t", D, EMB_FP32, 0, NULL), 0);
    put_rows(f->st, "t", 0, 5, 2.0f);
    store_close(f->st);
    mr_err e;
    f->st = open_mode(f->dir, STORE_READ_ONLY, NULL, &e);
    if (!f->st) fail_msg("read-only open: %s", e.msg);
    assert_int_equal(count_rows(f->st, "t", 0, 5, 2.0f), 5);
    mr_emb_table *t = emb_store_table(f->st, "t", NULL);
    float x[D] = {0};
    uint64_t id = 9;
    assert_int_equal(emb_store_put(f->st, t, &id, 1, x, D, &e), MR_EPERM);
    assert_non_null(strstr(e.msg, "read-only"));
    assert_int_equal(emb_table_create(f->st, "u", D, EMB_FP32, 0, &e), MR_EPERM);
    store_blob bl = {"x", 1};
    assert_int_equal(item_store_put(f->st, &id, 1, &bl, &e), MR_EPERM);
    assert_int_equal(store_expire(f->st, 0, NULL, &e), MR_EPERM);
    assert_int_equal(store_compact(f->st, &e), MR_EPERM);
    /* a folder that holds no database */
    char empty[256];
    assert_non_null(store_test_tmpdir(empty, sizeof empty, "empty"));
    assert_null(open_mode(empty, STORE_READ_ONLY, NULL, &e));
    assert_int_equal(e.code, MR_ENOTFOUND);
    store_test_rmrf(empty);
}

static void test_checkpoint_is_point_in_time(void **state) {
    fx *f = *state;
    assert_int_equal(emb_table_create(f->st, "t", D, EMB_FP32, 0, NULL), 0);
    put_rows(f->st, "t", 0, 50, 3.0f);
    char cp[300];
    snprintf(cp, sizeof cp, "%s-cp", f->dir);
    assert_int_equal(store_checkpoint(f->st, cp, NULL), 0);
    put_rows(f->st, "t", 50, 50, 3.0f + 50);
    mr_err e;
    assert_int_equal(store_checkpoint(f->st, cp, &e), MR_EINTERNAL); /* exists already */
    mr_store *c = open_mode(cp, STORE_READ_ONLY, NULL, &e);
    if (!c) fail_msg("open checkpoint: %s", e.msg);
    assert_int_equal(count_rows(c, "t", 0, 100, 3.0f), 50);
    assert_int_equal(count_rows(f->st, "t", 0, 100, 3.0f), 100);
    store_close(c);
    store_test_rmrf(cp);
}

static void test_secondary_catches_up(void **state) {
    fx *f = *state;
    assert_int_equal(emb_table_create(f->st, "t", D, EMB_FP32, 0, NULL), 0);
    put_rows(f->st, "t", 0, 20, 4.0f);
    char sec[256];
    assert_non_null(store_test_tmpdir(sec, sizeof sec, "sec"));
    mr_err e;
    assert_null(open_mode(f->dir, STORE_SECONDARY, NULL, &e));
    assert_int_equal(e.code, MR_EINVAL);
    mr_store *s = open_mode(f->dir, STORE_SECONDARY, sec, &e);
    if (!s) fail_msg("open secondary: %s", e.msg);
    assert_int_equal(count_rows(s, "t", 0, 40, 4.0f), 20); /* rows 0..19 now cached */
    put_rows(f->st, "t", 20, 20, 4.0f + 20);               /* primary moves on */
    float v[D];
    for (int j = 0; j < D; j++) v[j] = -1.0f;
    uint64_t id0 = 0;
    assert_int_equal(emb_store_put(f->st, emb_store_table(f->st, "t", NULL), &id0, 1, v, D, NULL),
                     0);
    assert_int_equal(count_rows(s, "t", 20, 20, 4.0f + 20), 0); /* not yet */
    assert_int_equal(store_catch_up(s, NULL), 0);
    assert_int_equal(count_rows(s, "t", 20, 20, 4.0f + 20), 20);
    float y[D];
    assert_int_equal(emb_store_get(s, emb_store_table(s, "t", NULL), &id0, 1, y, NULL, NULL), 0);
    assert_true(y[3] == -1.0f); /* the cached old row 0 was dropped on catch-up */
    assert_int_equal(emb_store_put(s, emb_store_table(s, "t", NULL), &id0, 1, v, D, &e), MR_EPERM);
    assert_int_equal(store_catch_up(f->st, &e), MR_ESTATE);
    store_close(s);
    store_test_rmrf(sec);
}

static void test_ttl_sweep_tables_and_users(void **state) {
    fx *f = *state;
    store_close(f->st);
    store_config c;
    store_config_init(&c);
    c.user_ttl_s = 60;
    assert_int_equal(store_open(&f->st, f->dir, &c, NULL), 0);
    assert_int_equal(emb_table_create(f->st, "ttl", D, EMB_FP32, 60, NULL), 0);
    assert_int_equal(emb_table_create(f->st, "keep", D, EMB_FP32, 0, NULL), 0);
    put_rows(f->st, "ttl", 0, 30, 1.0f);
    put_rows(f->st, "keep", 0, 30, 1.0f);
    uint64_t users[3] = {7, 8, 9};
    store_blob p[3] = {{"a", 1}, {"bb", 2}, {"", 0}};
    assert_int_equal(user_store_put(f->st, users, 3, p, NULL), 0);
    uint64_t n = 99;
    int64_t now = mr_unix_ms();
    assert_int_equal(store_expire(f->st, now, &n, NULL), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_expire(f->st, now + 61 * 1000, &n, NULL), 0);
    assert_int_equal(n, 30 + 3);
    assert_int_equal(count_rows(f->st, "ttl", 0, 30, 1.0f), 0);
    assert_int_equal(count_rows(f->st, "keep", 0, 30, 1.0f), 30);
    store_stats s;
    store_get_stats(f->st, &s);
    assert_true(s.batches_written >= 5);
    assert_int_equal(s.rows_written, 30 + 30 + 3);
}

/* A crash inside emb_table_create after the family was created but
 * before its schema row was written leaves a family with no table. The
 * table must still be creatable after a reopen (it failed with "column
 * family already exists"). The crash is staged by adding the family with
 * RocksDB's own API. */
/* store_memtable_bytes bounds the memtables: after 16 MiB of rows into
 * a 2 MiB budget they hold at most twice the budget (RocksDB stalls a
 * family's writes at two full write buffers, each at most the budget, so
 * the bound holds however slow the flush thread is), and the stats report
 * RocksDB's memory. */
static void test_memtable_budget(void **state) {
    (void)state;
    char dir[256];
    assert_non_null(store_test_tmpdir(dir, sizeof dir, "store-mem"));
    store_config c;
    store_config_init(&c);
    assert_int_equal(c.memtable_bytes, 64u << 20);
    c.memtable_bytes = 2u << 20;
    c.block_cache_bytes = 3u << 20;
    c.cache_bytes = 0;
    mr_store *st = NULL;
    mr_err e;
    if (store_open(&st, dir, &c, &e)) fail_msg("open: %s", e.msg);
    assert_int_equal(emb_table_create(st, "wide", 256, EMB_FP32, 0, &e), 0);
    mr_emb_table *t = emb_store_table(st, "wide", &e);
    assert_non_null(t);
    enum { N = 256 };
    float *x = calloc((size_t)N * 256, sizeof *x);
    uint64_t ids[N];
    store_stats s;
    uint64_t peak = 0;
    for (int round = 0; round < 64; round++) { /* 64 x 256 rows x 1 KiB = 16 MiB */
        for (int i = 0; i < N; i++) {
            ids[i] = (uint64_t)(round * N + i);
            x[(size_t)i * 256] = (float)ids[i];
        }
        assert_int_equal(emb_store_put(st, t, ids, N, x, (size_t)N * 256, &e), 0);
        store_get_stats(st, &s);
        if (s.memtable_bytes > peak) peak = s.memtable_bytes;
    }
    free(x);
    assert_int_equal(s.memtable_budget, 2u << 20);
    assert_int_equal(s.block_cache_capacity, 3u << 20);
    assert_true(peak > 0);
    assert_true(peak <= 2 * (2u << 20) + (512u << 10)); /* + arena block slack */
    uint64_t id = 5 * N + 7;
    float y[256];
    uint8_t found = 0;
    assert_int_equal(emb_store_get(st, t, &id, 1, y, &found, &e), 0);
    assert_int_equal(found, 1);
    assert_true(y[0] == (float)id);
    store_close(st);
    store_test_rmrf(dir);
}

static void test_table_after_crash_in_create(void **state) {
    fx *f = *state;
    store_close(f->st);
    f->st = NULL;
    char *err = NULL;
    size_t n = 0;
    rocksdb_options_t *o = rocksdb_options_create();
    char **names = rocksdb_list_column_families(o, f->dir, &n, &err);
    assert_null(err);
    const rocksdb_options_t **opts = calloc(n, sizeof *opts);
    rocksdb_column_family_handle_t **h = calloc(n, sizeof *h);
    for (size_t i = 0; i < n; i++) opts[i] = o;
    rocksdb_t *db = rocksdb_open_column_families(o, f->dir, (int)n, (const char *const *)names,
                                                 opts, h, &err);
    assert_null(err);
    rocksdb_column_family_handle_t *orphan = rocksdb_create_column_family(db, o, "emb.late", &err);
    assert_null(err);
    rocksdb_column_family_handle_destroy(orphan);
    for (size_t i = 0; i < n; i++) rocksdb_column_family_handle_destroy(h[i]);
    rocksdb_close(db);
    rocksdb_list_column_families_destroy(names, n);
    rocksdb_options_destroy(o);
    free(opts);
    free(h);
    mr_err e;
    f->st = open_mode(f->dir, STORE_PRIMARY, NULL, &e);
    if (!f->st) fail_msg("open: %s", e.msg);
    assert_null(emb_store_table(f->st, "late", NULL));
    int rc = emb_table_create(f->st, "late", D, EMB_FP16, 0, &e);
    if (rc) fail_msg("create after a crashed create: %s", e.msg);
    put_rows(f->st, "late", 0, 4, 1.0f);
    /* and it survives a reopen as an ordinary table */
    store_close(f->st);
    f->st = open_mode(f->dir, STORE_PRIMARY, NULL, &e);
    assert_non_null(f->st);
    mr_emb_table *t = emb_store_table(f->st, "late", NULL);
    assert_non_null(t);
    uint64_t ids[4] = {0, 1, 2, 3};
    float y[4 * D];
    uint8_t found[4];
    assert_int_equal(emb_store_get(f->st, t, ids, 4, y, found, NULL), 0);
    for (int i = 0; i < 4; i++) assert_true(found[i]);
}

/* Update-log replay: the applied sequence commits with the record's rows,
 * the record's time is the rows' write time, and two stores that applied
 * the same records have one digest. */
static void apply_record(mr_store *st, uint64_t seq, int64_t time_ms, uint64_t id, float v) {
    mr_emb_table *t = emb_store_table(st, "logged", NULL);
    float row[4] = {v, v + 1, v + 2, v + 3};
    store_blob blob = {(const uint8_t *)"feat", 4};
    store_log_seq_begin(seq, time_ms);
    assert_int_equal(emb_store_put(st, t, &id, 1, row, 4, NULL), 0);
    assert_int_equal(item_store_put(st, &id, 1, &blob, NULL), 0);
    store_log_seq_end();
}

static void test_log_sequence_and_digest(void **state) {
    fx *f = *state;
    char dir2[256];
    assert_non_null(store_test_tmpdir(dir2, sizeof dir2, "store2"));
    mr_err e;
    mr_store *st2 = open_mode(dir2, STORE_PRIMARY, NULL, &e);
    assert_non_null(st2);
    mr_store *both[2] = {f->st, st2};
    uint64_t seq = 1;
    for (int s = 0; s < 2; s++) {
        assert_int_equal(store_log_seq_get(both[s], &seq, NULL), 0);
        assert_int_equal(seq, 0); /* never applied */
        assert_int_equal(emb_table_create(both[s], "logged", 4, EMB_FP32, 0, NULL), 0);
        for (uint64_t r = 1; r <= 20; r++)
            apply_record(both[s], r, 1700000000000 + (int64_t)r, r % 7, (float)r);
        assert_int_equal(store_log_seq_get(both[s], &seq, NULL), 0);
        assert_int_equal(seq, 20);
    }
    /* a write outside replay does not move the sequence */
    uint64_t id = 99;
    float row[4] = {1, 2, 3, 4};
    assert_int_equal(emb_store_put(st2, emb_store_table(st2, "logged", NULL), &id, 1, row, 4, NULL),
                     0);
    assert_int_equal(store_log_seq_get(st2, &seq, NULL), 0);
    assert_int_equal(seq, 20);
    uint64_t d1, d2, n1, n2;
    assert_int_equal(store_digest(f->st, &d1, &n1, NULL), 0);
    assert_int_equal(store_digest(st2, &d2, &n2, NULL), 0);
    assert_int_equal(n2, n1 + 1);
    assert_int_not_equal(d1, d2);
    /* the same record applied to the first store: same rows, same time, same digest */
    store_log_seq_begin(21, 1700000000500);
    assert_int_equal(
        emb_store_put(f->st, emb_store_table(f->st, "logged", NULL), &id, 1, row, 4, NULL), 0);
    store_log_seq_end();
    store_log_seq_begin(21, 1700000000500);
    assert_int_equal(emb_store_put(st2, emb_store_table(st2, "logged", NULL), &id, 1, row, 4, NULL),
                     0);
    store_log_seq_end();
    assert_int_equal(store_digest(f->st, &d1, &n1, NULL), 0);
    assert_int_equal(store_digest(st2, &d2, &n2, NULL), 0);
    assert_int_equal(n1, n2);
    assert_int_equal(d1, d2);
    /* the sequence survives a reopen */
    store_close(st2);
    st2 = open_mode(dir2, STORE_PRIMARY, NULL, &e);
    assert_non_null(st2);
    assert_int_equal(store_log_seq_get(st2, &seq, NULL), 0);
    assert_int_equal(seq, 21);
    store_close(st2);
    store_test_rmrf(dir2);
}

/* A record that spans batches (store_log_seq_begin_multi): until its
 * commit the store holds it as partly applied, so a crash between its
 * batches leaves the applied sequence before it and the replay applies it
 * again, whole; old 8-byte markers still read. */
static void test_log_record_spanning_batches(void **state) {
    fx *f = *state;
    mr_err e;
    assert_int_equal(emb_table_create(f->st, "logged", 4, EMB_FP32, 0, NULL), 0);
    apply_record(f->st, 1, 1700000000001, 1, 1.0f); /* one batch per write: whole after each */
    uint64_t seq = 0, id = 7;
    assert_int_equal(store_log_seq_get(f->st, &seq, NULL), 0);
    assert_int_equal(seq, 1);
    float row[4] = {1, 2, 3, 4};
    store_blob blob = {(const uint8_t *)"feat", 4};
    /* record 2: its vector batch is written, then the process "dies" */
    store_log_seq_begin_multi(2, 1700000000002);
    assert_int_equal(
        emb_store_put(f->st, emb_store_table(f->st, "logged", NULL), &id, 1, row, 4, NULL), 0);
    store_log_seq_end();
    assert_int_equal(store_log_seq_get(f->st, &seq, NULL), 0);
    assert_int_equal(seq, 1); /* record 2 is not whole */
    store_close(f->st);
    f->st = open_mode(f->dir, STORE_PRIMARY, NULL, &e);
    assert_non_null(f->st);
    assert_int_equal(store_log_seq_get(f->st, &seq, NULL), 0);
    assert_int_equal(seq, 1);
    /* the replay applies record 2 again, whole, and commits it */
    uint64_t d1, n1, d2, n2;
    for (int pass = 0; pass < 2; pass++) { /* a second pass writes the same rows */
        store_log_seq_begin_multi(2, 1700000000002);
        assert_int_equal(
            emb_store_put(f->st, emb_store_table(f->st, "logged", NULL), &id, 1, row, 4, NULL), 0);
        assert_int_equal(item_store_put(f->st, &id, 1, &blob, NULL), 0);
        assert_int_equal(store_log_seq_commit(f->st, NULL), 0);
        store_log_seq_end();
        assert_int_equal(store_digest(f->st, pass ? &d2 : &d1, pass ? &n2 : &n1, NULL), 0);
    }
    assert_int_equal(d1, d2);
    assert_int_equal(n1, n2);
    assert_int_equal(store_log_seq_get(f->st, &seq, NULL), 0);
    assert_int_equal(seq, 2);
    assert_int_equal(store_log_seq_commit(f->st, NULL), 0); /* outside a record: nothing */
    store_close(f->st);
    f->st = open_mode(f->dir, STORE_PRIMARY, NULL, &e);
    assert_non_null(f->st);
    assert_int_equal(store_log_seq_get(f->st, &seq, NULL), 0);
    assert_int_equal(seq, 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schema_persists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_record_spanning_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_is_point_in_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secondary_catches_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_sweep_tables_and_users, setup, teardown),
        cmocka_unit_test(test_memtable_budget),
        cmocka_unit_test_setup_teardown(test_table_after_crash_in_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_sequence_and_digest, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
