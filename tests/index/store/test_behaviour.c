/* test_behaviour.c — behaviour sequences and incremental SDIM tables
 * (index/store/behaviour*.c) on a real RocksDB: after thousands of random
 * appends (out-of-order times, duplicate times, items without embeddings)
 * that trim each user to l_max, every user's kept events and table equal an
 * in-test oracle and a from-scratch rebuild; serving reads a constant
 * number of rows; a retrained embedding table is repaired by a rebuild;
 * corrupt rows, read-only stores and changed SDIM parameters are errors;
 * rows appended with the events commit in their batch or not at all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include <rocksdb/c.h>
#include <cmocka.h>

#include "common/clock.h"
#include "common/rng.h"
#include "index/store/behaviour.h"
#include "index/store/behaviour_int.h" /* beh_state_check, a test of this library */
#include "index/store/emb_codec.h"
#include "store_testutil.h"

enum { D = 16, NITEMS = 200, NMISSING = 20, NUSERS = 6, LMAX = 40 };

typedef struct oev {
    int64_t ts;
    uint64_t arrival; /* global input order: ties of ts keep it */
    uint64_t item;
} oev;

typedef struct fx {
    char dir[256];
    mr_store *st;
    mr_behaviour *b;
    float emb[NITEMS][D];
    oev *seq[NUSERS]; /* oracle: kept events per user, sorted */
    int n[NUSERS];
} fx;

static void put_items(fx *f, uint64_t seed) {
    mr_rng r;
    mr_rng_seed(&r, seed);
    mr_rng_fill_normal(&r, &f->emb[0][0], NITEMS * D, 1.0f);
    uint64_t ids[NITEMS];
    for (int i = 0; i < NITEMS; i++) ids[i] = (uint64_t)i;
    mr_emb_table *t = emb_store_table(f->st, "items", NULL);
    assert_int_equal(emb_store_put(f->st, t, ids, NITEMS, &f->emb[0][0], NITEMS * D, NULL), 0);
}

static mr_behaviour *open_beh(mr_store *st, int m, int tau, mr_err *e) {
    behaviour_config c;
    behaviour_config_init(&c, "items");
    c.l_max = LMAX;
    c.m = m;
    c.tau = tau;
    mr_behaviour *b = NULL;
    behaviour_open(&b, st, &c, e);
    return b;
}

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    assert_non_null(store_test_tmpdir(f->dir, sizeof f->dir, "beh"));
    store_config c;
    store_config_init(&c);
    c.cache_bytes = 1 << 20;
    assert_int_equal(store_open(&f->st, f->dir, &c, NULL), 0);
    assert_int_equal(emb_table_create(f->st, "items", D, EMB_FP32, 0, NULL), 0);
    put_items(f, 1);
    mr_err e;
    f->b = open_beh(f->st, 12, 3, &e);
    if (!f->b) fail_msg("behaviour_open: %s", e.msg);
    for (int u = 0; u < NUSERS; u++) f->seq[u] = calloc(LMAX + 64, sizeof(oev));
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    behaviour_close(f->b);
    store_close(f->st);
    store_test_rmrf(f->dir);
    for (int u = 0; u < NUSERS; u++) free(f->seq[u]);
    free(f);
    return 0;
}

static int oev_cmp(const void *a, const void *b) {
    const oev *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return (x->arrival > y->arrival) - (x->arrival < y->arrival);
}

/* The oracle's view of one append batch. */
static void oracle_append(fx *f, const behaviour_event *ev, int n, uint64_t *arrival) {
    for (int i = 0; i < n; i++) {
        int u = (int)ev[i].user;
        f->seq[u][f->n[u]++] = (oev){ev[i].ts_ms, (*arrival)++, ev[i].item};
        if (f->n[u] == LMAX + 64) fail_msg("oracle overflow");
        qsort(f->seq[u], (size_t)f->n[u], sizeof(oev), oev_cmp);
        if (f->n[u] > LMAX) {
            memmove(f->seq[u], f->seq[u] + 1, (size_t)(f->n[u] - 1) * sizeof(oev));
            f->n[u]--;
        }
    }
}

/* Table the oracle expects for user u, with embeddings emb. */
static void oracle_table(fx *f, int u, void *table) {
    const sdim_layout *L = behaviour_layout(f->b);
    uint32_t sig[64];
    sdim_table_clear(L, table);
    for (int i = 0; i < f->n[u]; i++) {
        uint64_t it = f->seq[u][i].item;
        if (it >= NITEMS) continue; /* no embedding: contributes nothing */
        sdim_signatures(behaviour_hasher(f->b), f->emb[it], sig);
        assert_int_equal(sdim_table_add(L, table, sig, f->emb[it], NULL), 0);
    }
}

static void expect_tables_equal(const sdim_layout *L, const void *a, const void *b, float tol) {
    for (int s = 0; s < L->nsig; s++)
        for (int k = 0; k < L->nbuckets; k++) {
            assert_int_equal(sdim_table_count(L, a, s, (uint32_t)k),
                             sdim_table_count(L, b, s, (uint32_t)k));
            const float *x = sdim_table_sum_c(L, a, s, (uint32_t)k),
                        *y = sdim_table_sum_c(L, b, s, (uint32_t)k);
            for (int j = 0; j < L->d; j++)
                if (fabsf(x[j] - y[j]) > tol)
                    fail_msg("sig %d bucket %d [%d]: %g vs %g", s, k, j, (double)x[j],
                             (double)y[j]);
        }
}

static void check_against_oracle(fx *f, float tol) {
    const sdim_layout *L = behaviour_layout(f->b);
    void *want = malloc(sdim_table_bytes(L));
    behaviour_event evs[LMAX + 1];
    for (int u = 0; u < NUSERS; u++) {
        size_t n;
        assert_int_equal(behaviour_events(f->b, (uint64_t)u, evs, LMAX + 1, &n, NULL), 0);
        assert_int_equal(n, (size_t)f->n[u]);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(evs[i].item, f->seq[u][i].item);
            assert_int_equal(evs[i].ts_ms, f->seq[u][i].ts);
        }
        mr_user_state us;
        assert_int_equal(user_state_get(f->b, (uint64_t)u, &us, NULL), 0);
        if (f->n[u] == 0) {
            assert_null(us.table);
        } else {
            assert_non_null(us.table);
            assert_int_equal(us.n_events, (uint32_t)f->n[u]);
            oracle_table(f, u, want);
            expect_tables_equal(L, us.table, want, tol);
        }
        user_state_release(&us);
    }
    free(want);
}

static void random_appends(fx *f, mr_rng *r, int batches, uint64_t *arrival) {
    behaviour_event ev[24];
    for (int b = 0; b < batches; b++) {
        int n = 1 + (int)mr_rng_below(r, 24);
        for (int i = 0; i < n; i++) {
            ev[i].user = mr_rng_below(r, NUSERS);
            ev[i].item = mr_rng_below(r, NITEMS + NMISSING);
            /* times mostly increase, some jump back, some repeat */
            ev[i].ts_ms = (int64_t)(*arrival) * 10 - (int64_t)mr_rng_below(r, 400) - 1000;
            if (mr_rng_below(r, 8) == 0) ev[i].ts_ms = 5000;
            ev[i].action = (uint32_t)mr_rng_below(r, 3);
        }
        mr_err e;
        if (behaviour_append(f->b, ev, (size_t)n, &e)) fail_msg("append: %s", e.msg);
        oracle_append(f, ev, n, arrival);
    }
}

static void test_incremental_equals_oracle_and_rebuild(void **state) {
    fx *f = *state;
    mr_rng r;
    mr_rng_seed(&r, 42);
    uint64_t arrival = 0;
    random_appends(f, &r, 400, &arrival); /* ~5000 events over 6 users: thousands of trims */
    assert_true(arrival > 3000);
    check_against_oracle(f, 1e-3f);
    /* snapshot, rebuild everything, compare: the rebuild recomputes sums in
     * a different order, so equal within float tolerance */
    const sdim_layout *L = behaviour_layout(f->b);
    void *before[NUSERS];
    for (int u = 0; u < NUSERS; u++) {
        mr_user_state us;
        assert_int_equal(user_state_get(f->b, (uint64_t)u, &us, NULL), 0);
        before[u] = malloc(sdim_table_bytes(L));
        memcpy(before[u], us.table, sdim_table_bytes(L));
        user_state_release(&us);
    }
    uint64_t nu = 0;
    assert_int_equal(behaviour_rebuild_all(f->b, &nu, NULL), 0);
    assert_int_equal(nu, NUSERS);
    for (int u = 0; u < NUSERS; u++) {
        mr_user_state us;
        assert_int_equal(user_state_get(f->b, (uint64_t)u, &us, NULL), 0);
        expect_tables_equal(L, us.table, before[u], 1e-3f);
        user_state_release(&us);
        free(before[u]);
    }
    check_against_oracle(f, 1e-3f);
    /* appends continue correctly after a rebuild */
    random_appends(f, &r, 50, &arrival);
    check_against_oracle(f, 1e-3f);
}

static void test_state_read_cost_is_constant(void **state) {
    fx *f = *state;
    behaviour_event ev[LMAX];
    uint64_t users[2] = {1, 2};
    uint32_t lens[2] = {3, LMAX};
    for (int k = 0; k < 2; k++) {
        for (uint32_t i = 0; i < lens[k]; i++)
            ev[i] = (behaviour_event){users[k], i % NITEMS, 1000 + i, 0};
        assert_int_equal(behaviour_append(f->b, ev, lens[k], NULL), 0);
    }
    const char *prof = "age=30";
    store_blob blob = {prof, strlen(prof)};
    assert_int_equal(user_store_put(f->st, users, 1, &blob, NULL), 0);
    for (int k = 0; k < 2; k++) {
        store_stats s0, s1;
        store_get_stats(f->st, &s0);
        mr_user_state us;
        assert_int_equal(user_state_get(f->b, users[k], &us, NULL), 0);
        store_get_stats(f->st, &s1);
        assert_int_equal(s1.db_multigets - s0.db_multigets, 1); /* one multi-get ... */
        assert_int_equal(s1.db_rows_read - s0.db_rows_read, 2); /* ... of two rows, any L */
        assert_int_equal(us.n_events, lens[k]);
        assert_int_equal(us.newest_ts_ms, 1000 + lens[k] - 1);
        if (k == 0) {
            assert_int_equal(us.profile_len, strlen(prof));
            assert_memory_equal(us.profile, prof, strlen(prof));
        } else {
            assert_null(us.profile);
        }
        user_state_release(&us);
    }
    /* an unknown user: no table, no profile, no error */
    mr_user_state us;
    assert_int_equal(user_state_get(f->b, 999, &us, NULL), 0);
    assert_null(us.table);
    assert_null(us.profile);
    user_state_release(&us);
}

/* The state-row checker on real rows after random appends (trims
 * included), and on each kind of corruption of one. */
static void test_state_check_detects_corruption(void **state) {
    fx *f = *state;
    mr_rng r;
    mr_rng_seed(&r, 5);
    uint64_t arrival = 0;
    random_appends(f, &r, 40, &arrival);
    const sdim_layout *L = &f->b->layout;
    void *table = malloc(f->b->table_bytes);
    assert_non_null(table);
    for (uint64_t u = 0; u < NUSERS; u++) {
        beh_state s;
        mr_err e;
        if (beh_state_load(f->b, u, &s, table, &e)) fail_msg("load: %s", e.msg);
        assert_true(beh_state_check(f->b, &s, table));
    }
    beh_state s;
    assert_int_equal(beh_state_load(f->b, 0, &s, table, NULL), 0);
    assert_true(s.n_events > 0);
    beh_state bad = s;
    bad.n_events = LMAX + 1; /* more than l_max kept */
    assert_false(beh_state_check(f->b, &bad, NULL));
    bad = s;
    bad.oldest_seq = s.next_seq; /* oldest kept event not yet numbered */
    assert_false(beh_state_check(f->b, &bad, NULL));
    /* one signature counting an event the others do not */
    uint32_t *cnt = (uint32_t *)table + sdim_table_count_offset(L, L->nsig - 1, 0);
    (*cnt)++;
    assert_false(beh_state_check(f->b, &s, table));
    (*cnt)--;
    assert_true(beh_state_check(f->b, &s, table));
    /* residue in an empty bucket */
    uint32_t k = 0;
    while (k < (uint32_t)L->nbuckets && sdim_table_count(L, table, 0, k)) k++;
    if (k < (uint32_t)L->nbuckets) {
        sdim_table_sum(L, table, 0, k)[0] = 0.5f;
        assert_false(beh_state_check(f->b, &s, table));
    }
    free(table);
}

static void test_rebuild_after_retrain(void **state) {
    fx *f = *state;
    mr_rng r;
    mr_rng_seed(&r, 7);
    uint64_t arrival = 0;
    random_appends(f, &r, 60, &arrival);
    put_items(f, 2); /* new embeddings for every item: incremental sums now stale */
    uint64_t nu;
    assert_int_equal(behaviour_rebuild_all(f->b, &nu, NULL), 0);
    check_against_oracle(f, 1e-3f);
    /* and trims after the rebuild subtract the new embeddings exactly */
    random_appends(f, &r, 60, &arrival);
    check_against_oracle(f, 1e-3f);
}

static void test_bad_input_and_parameters(void **state) {
    fx *f = *state;
    mr_err e;
    behaviour_event ev = {1, 2, 3, 0};
    assert_int_equal(behaviour_append(f->b, NULL, 1, &e), MR_EINVAL);
    assert_int_equal(behaviour_append(f->b, &ev, (size_t)1 << 30, &e), MR_EINVAL);
    assert_int_equal(behaviour_append(f->b, &ev, 1, NULL), 0);
    /* other SDIM parameters than the tables were built with */
    mr_behaviour *b2 = open_beh(f->st, 24, 3, &e);
    assert_null(b2);
    assert_int_equal(e.code, MR_ESTATE);
    assert_non_null(strstr(e.msg, "m=12"));
    b2 = open_beh(f->st, 12, 3, &e);
    assert_non_null(b2);
    behaviour_close(b2);
    behaviour_config c;
    behaviour_config_init(&c, "nope");
    assert_int_equal(behaviour_open(&b2, f->st, &c, &e), MR_ENOTFOUND);
    assert_non_null(strstr(e.msg, "nope"));
    /* read-only store: reads work, appends are refused */
    behaviour_close(f->b);
    store_close(f->st);
    store_config sc;
    store_config_init(&sc);
    sc.mode = STORE_READ_ONLY;
    assert_int_equal(store_open(&f->st, f->dir, &sc, NULL), 0);
    f->b = open_beh(f->st, 12, 3, &e);
    assert_non_null(f->b);
    assert_int_equal(behaviour_append(f->b, &ev, 1, &e), MR_EPERM);
    mr_user_state us;
    assert_int_equal(user_state_get(f->b, 1, &us, NULL), 0);
    assert_int_equal(us.n_events, 1);
    user_state_release(&us);
}

/* behaviour_append_rows: item and user rows and a meta row commit in the
 * events' batch (read back, the cached item updated); a row over
 * max_value_bytes or a bad meta key fails the whole append: no event, no
 * row, no meta. */
static void test_append_rows_one_batch(void **state) {
    fx *f = *state;
    mr_err e;
    behaviour_event ev[2] = {{7, 3, 100, 0}, {8, 4, 101, 0}};
    uint64_t iid[1] = {4}, uid[2] = {7, 8};
    store_blob item[1] = {{"item-row", 8}}, users[2] = {{"u7", 2}, {"u8", 2}};
    void *buf = NULL;
    store_blob got[1];
    assert_int_equal(item_store_get(f->st, iid, 1, got, &buf, NULL), 0); /* cached as absent */
    assert_null(got[0].data);
    free(buf);
    store_append_rows rows = {iid, item, 1, uid, users, 2, "counts", {"meta!", 5}};
    assert_int_equal(behaviour_append_rows(f->b, ev, 2, &rows, &e), 0);
    assert_int_equal(item_store_get(f->st, iid, 1, got, &buf, NULL), 0);
    assert_int_equal(got[0].len, 8);
    assert_memory_equal(got[0].data, "item-row", 8);
    free(buf);
    mr_user_state us;
    assert_int_equal(user_state_get(f->b, 8, &us, NULL), 0);
    assert_int_equal(us.n_events, 1);
    assert_int_equal(us.profile_len, 2);
    assert_memory_equal(us.profile, "u8", 2);
    user_state_release(&us);
    void *v = NULL;
    size_t len = 0;
    assert_int_equal(store_meta_get(f->st, "counts", &v, &len, NULL), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(v, "meta!", 5);
    free(v);
    /* failures: nothing of the append is written */
    static char big[(1 << 20) + 1];
    store_blob huge[1] = {{big, sizeof big}};
    store_append_rows bad = {iid, huge, 1, NULL, NULL, 0, "counts", {"other", 5}};
    assert_int_equal(behaviour_append_rows(f->b, ev, 2, &bad, &e), MR_ENOMEM);
    store_append_rows bad_key = {iid, item, 1, NULL, NULL, 0, "Counts", {"other", 5}};
    assert_int_equal(behaviour_append_rows(f->b, ev, 2, &bad_key, &e), MR_EINVAL);
    assert_int_equal(user_state_get(f->b, 7, &us, NULL), 0);
    assert_int_equal(us.n_events, 1);
    user_state_release(&us);
    assert_int_equal(store_meta_get(f->st, "counts", &v, &len, NULL), 0);
    assert_memory_equal(v, "meta!", 5);
    free(v);
    assert_int_equal(store_meta_get(f->st, "absent", &v, &len, NULL), 0);
    assert_null(v);
    assert_int_equal(len, 0);
    /* application keys never meet the store's own meta rows */
    assert_int_equal(store_meta_put(f->st, "behaviour", "x", 1, NULL), 0);
    mr_behaviour *b2 = open_beh(f->st, 12, 3, &e);
    assert_non_null(b2);
    behaviour_close(b2);
    assert_int_equal(store_meta_put(f->st, "table/x", "x", 1, &e), MR_EINVAL);
}

/* A state row overwritten with garbage: serving reports it; a rebuild
 * recomputes it from the events. */
static void test_corrupt_state_row_repaired(void **state) {
    fx *f = *state;
    behaviour_event ev[5];
    for (int i = 0; i < 5; i++) ev[i] = (behaviour_event){3, (uint64_t)i, 100 + i, 0};
    assert_int_equal(behaviour_append(f->b, ev, 5, NULL), 0);
    f->n[3] = 5;
    for (int i = 0; i < 5; i++) f->seq[3][i] = (oev){100 + i, (uint64_t)i, (uint64_t)i};
    behaviour_close(f->b);
    store_close(f->st);
    char *err = NULL;
    rocksdb_options_t *o = rocksdb_options_create();
    size_t ncf;
    char **names = rocksdb_list_column_families(o, f->dir, &ncf, &err);
    const rocksdb_options_t **opts = calloc(ncf, sizeof *opts);
    rocksdb_column_family_handle_t **h = calloc(ncf, sizeof *h);
    for (size_t i = 0; i < ncf; i++) opts[i] = o;
    rocksdb_t *db = rocksdb_open_column_families(o, f->dir, (int)ncf, (const char *const *)names,
                                                 opts, h, &err);
    assert_null(err);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    for (size_t i = 0; i < ncf; i++)
        if (strcmp(names[i], "sdim") == 0) {
            uint8_t k[8];
            emb_key_encode(3, k);
            rocksdb_put_cf(db, wo, h[i], (const char *)k, 8, "junk", 4, &err);
            assert_null(err);
        }
    for (size_t i = 0; i < ncf; i++) rocksdb_column_family_handle_destroy(h[i]);
    rocksdb_close(db);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_list_column_families_destroy(names, ncf);
    rocksdb_options_destroy(o);
    free(opts);
    free(h);
    assert_int_equal(store_open(&f->st, f->dir, NULL, NULL), 0);
    mr_err e;
    f->b = open_beh(f->st, 12, 3, &e);
    mr_user_state us;
    assert_int_equal(user_state_get(f->b, 3, &us, &e), MR_ECORRUPT);
    assert_non_null(strstr(e.msg, "user 3"));
    assert_int_equal(behaviour_append(f->b, ev, 1, &e), MR_ECORRUPT); /* nothing written */
    uint64_t u = 3;
    assert_int_equal(behaviour_rebuild(f->b, &u, 1, NULL), 0);
    check_against_oracle(f, 1e-4f);
}

/* User TTL: no append for user_ttl_s -> the table reads as absent at once,
 * behaviour_expire deletes events and table, and a later append starts the
 * user afresh. */
static void test_user_ttl(void **state) {
    fx *f = *state;
    behaviour_close(f->b);
    store_close(f->st);
    store_config c;
    store_config_init(&c);
    c.user_ttl_s = 1;
    assert_int_equal(store_open(&f->st, f->dir, &c, NULL), 0);
    mr_err e;
    f->b = open_beh(f->st, 12, 3, &e);
    assert_non_null(f->b);
    behaviour_event ev[9];
    for (int i = 0; i < 9; i++)
        ev[i] = (behaviour_event){(uint64_t)(i % 3), (uint64_t)i, 10 + i, 0};
    int64_t t0 = mr_unix_ms();
    assert_int_equal(behaviour_append(f->b, ev, 9, NULL), 0);
    uint64_t n = 99;
    assert_int_equal(behaviour_expire(f->b, mr_unix_ms(), &n, NULL), 0);
    mr_user_state us;
    assert_int_equal(user_state_get(f->b, 1, &us, NULL), 0);
    if (mr_unix_ms() - t0 < 900) { /* unless this host stalled for a second */
        assert_int_equal(n, 0);
        assert_non_null(us.table);
        assert_int_equal(us.n_events, 3);
    }
    user_state_release(&us);
    int64_t t1 = mr_unix_ms();
    while (mr_unix_ms() <= t1 + 2100) usleep(50 * 1000); /* past the TTL in whole seconds */
    assert_int_equal(user_state_get(f->b, 1, &us, NULL), 0);
    assert_null(us.table); /* expired on the read path */
    user_state_release(&us);
    size_t got;
    behaviour_event out[8];
    assert_int_equal(behaviour_events(f->b, 1, out, 8, &got, NULL), 0);
    assert_int_equal(got, 0); /* the events too, before any sweep */
    /* user 0 appends before any sweep: its expired history must not come
     * back with it (it did: the append loaded the old state row) */
    behaviour_event ev0 = {0, 50, 200, 0};
    int64_t t2 = mr_unix_ms();
    assert_int_equal(behaviour_append(f->b, &ev0, 1, NULL), 0);
    assert_int_equal(user_state_get(f->b, 0, &us, NULL), 0);
    assert_int_equal(behaviour_events(f->b, 0, out, 8, &got, NULL), 0);
    assert_int_equal(behaviour_expire(f->b, mr_unix_ms(), &n, NULL), 0);
    if (mr_unix_ms() - t2 >= 900) { /* this host stalled a second: user 0 may be gone too */
        user_state_release(&us);
        return;
    }
    assert_non_null(us.table);
    assert_int_equal(us.n_events, 1);
    user_state_release(&us);
    assert_int_equal(got, 1);
    assert_int_equal(out[0].item, 50);
    assert_int_equal(n, 2); /* users 1 and 2; user 0 is fresh again */
    for (uint64_t u = 1; u < 3; u++) {
        assert_int_equal(behaviour_events(f->b, u, out, 8, &got, NULL), 0);
        assert_int_equal(got, 0);
    }
    assert_int_equal(behaviour_expire(f->b, mr_unix_ms(), &n, NULL), 0);
    assert_int_equal(n, 0);
    /* user 2 comes back: a fresh sequence that matches the oracle (with
     * user 0's one event) */
    uint64_t arrival = 0;
    oracle_append(f, &ev0, 1, &arrival);
    for (int i = 0; i < 4; i++) ev[i] = (behaviour_event){2, (uint64_t)(20 + i), 100 + i, 0};
    assert_int_equal(behaviour_append(f->b, ev, 4, NULL), 0);
    oracle_append(f, ev, 4, &arrival);
    check_against_oracle(f, 1e-4f);
}

/* behaviour_rebuild_all finds users whose ids are far apart: it seeks to
 * the next user's prefix, and a seek to a prefix with no events must not
 * end the scan (the events family has a prefix bloom; in prefix mode a
 * seek to an absent prefix may leave the iterator invalid). */
static void test_rebuild_all_sparse_users(void **state) {
    fx *f = *state;
    const uint64_t users[3] = {7, 1000, 123456789};
    behaviour_event ev[12];
    for (int i = 0; i < 12; i++)
        ev[i] = (behaviour_event){users[i % 3], (uint64_t)(i * 7 % NITEMS), 1000 + i, 0};
    assert_int_equal(behaviour_append(f->b, ev, 12, NULL), 0);
    put_items(f, 3); /* retrained: the tables are stale until a rebuild */
    uint64_t nu = 0;
    assert_int_equal(behaviour_rebuild_all(f->b, &nu, NULL), 0);
    assert_int_equal(nu, 3);
    const sdim_layout *L = behaviour_layout(f->b);
    for (int u = 0; u < 3; u++) { /* each equals a rebuild of that user alone */
        mr_user_state a, b;
        assert_int_equal(user_state_get(f->b, users[u], &a, NULL), 0);
        assert_int_equal(behaviour_rebuild(f->b, &users[u], 1, NULL), 0);
        assert_int_equal(user_state_get(f->b, users[u], &b, NULL), 0);
        assert_non_null(a.table);
        assert_int_equal(a.n_events, 4);
        expect_tables_equal(L, a.table, b.table, 0.0f);
        user_state_release(&a);
        user_state_release(&b);
    }
}

/* Event row versions: a written row is version 2 (flags bit 15, xxh3 sum),
 * which parse hides from the flags; a version 1 row (bit clear, XXH32 sum)
 * parses to the same event; either bit with the other version's sum is
 * MR_ECORRUPT. */
static void test_event_row_versions(void **state) {
    fx *f = *state;
    const mr_behaviour *b = f->b;
    int nsig = behaviour_layout(b)->nsig;
    size_t n = beh_event_value_bytes(b);
    uint8_t key[BEH_EVENT_KEY], v[512];
    uint32_t sig[64], got_sig[64];
    assert_true(n <= sizeof v && nsig <= 64);
    for (int i = 0; i < nsig; i++) sig[i] = (uint32_t)i % (uint32_t)behaviour_layout(b)->nbuckets;
    beh_event ev = {.ts = 1234, .seq = 5, .item = 77, .action = 2, .flags = BEH_FLAG_ADDED};
    beh_event_key(9, ev.ts, ev.seq, key);
    beh_event_value(b, &ev, sig, v);
    uint16_t flags;
    memcpy(&flags, v + 12, 2);
    assert_int_equal(flags, BEH_EVENT_V2 | BEH_FLAG_ADDED);
    beh_event got;
    assert_int_equal(beh_event_parse(b, (char *)key, sizeof key, (char *)v, n, &got, got_sig, NULL),
                     0);
    assert_int_equal(got.flags, BEH_FLAG_ADDED);
    flags = BEH_FLAG_ADDED; /* version 1 flags, version 2 sum: damaged */
    memcpy(v + 12, &flags, 2);
    assert_int_equal(beh_event_parse(b, (char *)key, sizeof key, (char *)v, n, &got, NULL, NULL),
                     MR_ECORRUPT);
    uint32_t sum = emb_codec_sum_v1(v, n - 4); /* a real version 1 row */
    memcpy(v + n - 4, &sum, 4);
    memset(&got, 0, sizeof got);
    assert_int_equal(beh_event_parse(b, (char *)key, sizeof key, (char *)v, n, &got, got_sig, NULL),
                     0);
    assert_true(got.ts == ev.ts && got.seq == ev.seq && got.item == ev.item);
    assert_int_equal(got.action, ev.action);
    assert_int_equal(got.flags, BEH_FLAG_ADDED);
    assert_memory_equal(got_sig, sig, (size_t)nsig * 4);
    flags = BEH_EVENT_V2 | BEH_FLAG_ADDED; /* version 2 flags, XXH32 sum: damaged */
    memcpy(v + 12, &flags, 2);
    sum = emb_codec_sum_v1(v, n - 4);
    memcpy(v + n - 4, &sum, 4);
    assert_int_equal(beh_event_parse(b, (char *)key, sizeof key, (char *)v, n, &got, NULL, NULL),
                     MR_ECORRUPT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_incremental_equals_oracle_and_rebuild, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_state_read_cost_is_constant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_check_detects_corruption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_after_retrain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_and_parameters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_state_row_repaired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_all_sparse_users, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_row_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_rows_one_batch, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
