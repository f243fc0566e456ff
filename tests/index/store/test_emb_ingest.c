/* test_emb_ingest.c — bulk loading through external SST ingestion
 * (index/store/emb_ingest.c): ingested rows read back exactly as put rows
 * (fp32 bit-identical, fp16/int8 as the codec decodes), survive a reopen,
 * replace stale cached copies, and bad input writes nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>

#include "index/store/store.h"
#include "store_testutil.h"

#define N 5000
#define DIM 8

static void fill(float *v, size_t n, float bias) {
    for (size_t i = 0; i < n; i++) v[i] = sinf((float)i * 0.37f) * 3.0f + bias;
}

static void test_ingest_reads_back_like_puts(void **state) {
    (void)state;
    char dir[256], sst[300];
    assert_non_null(store_test_tmpdir(dir, sizeof dir, "ingest"));
    snprintf(sst, sizeof sst, "%s/load.sst", dir);
    mr_err e;
    mr_store *st;
    store_config c;
    store_config_init(&c);
    c.cache_bytes = 1 << 20;
    assert_int_equal(store_open(&st, dir, &c, &e), 0);
    static const char *names[3] = {"f32", "f16", "i8"};
    static float vecs[N * DIM], got[N * DIM], ref[N * DIM];
    static uint64_t ids[N];
    for (size_t i = 0; i < N; i++) ids[i] = 3 * i + 1;
    fill(vecs, N * DIM, 0);
    for (int enc = 0; enc < 3; enc++) {
        char pn[32];
        snprintf(pn, sizeof pn, "%s_put", names[enc]);
        assert_int_equal(emb_table_create(st, names[enc], DIM, (emb_encoding)enc, 0, &e), 0);
        assert_int_equal(emb_table_create(st, pn, DIM, (emb_encoding)enc, 0, &e), 0);
        mr_emb_table *t = emb_store_table(st, names[enc], &e), *tp = emb_store_table(st, pn, &e);
        assert_int_equal(emb_store_ingest(st, t, ids, N, vecs, N * DIM, sst, &e), 0);
        assert_int_equal(access(sst, F_OK), -1); /* moved into the database */
        for (size_t i = 0; i < N; i += 1000)
            assert_int_equal(emb_store_put(st, tp, ids + i, 1000, vecs + i * DIM, 1000 * DIM, &e),
                             0);
        assert_int_equal(emb_store_get_uncached(st, t, ids, N, got, NULL, &e), 0);
        assert_int_equal(emb_store_get_uncached(st, tp, ids, N, ref, NULL, &e), 0);
        assert_memory_equal(got, ref, sizeof got);
        if (enc == EMB_FP32) assert_memory_equal(got, vecs, sizeof got);
    }
    /* a cached row is replaced by a re-ingest of its id */
    mr_emb_table *t = emb_store_table(st, "f32", &e);
    uint8_t found;
    assert_int_equal(emb_store_get(st, t, ids, 1, got, &found, &e), 0);
    float newrow[DIM];
    fill(newrow, DIM, 100);
    assert_int_equal(emb_store_ingest(st, t, ids, 1, newrow, DIM, sst, &e), 0);
    assert_int_equal(emb_store_get(st, t, ids, 1, got, &found, &e), 0);
    assert_int_equal(found, 1);
    assert_memory_equal(got, newrow, sizeof newrow);
    /* bad input: nothing written, no file left */
    uint64_t bad_ids[2] = {10, 10};
    float two[2 * DIM];
    fill(two, 2 * DIM, 0);
    assert_int_equal(emb_store_ingest(st, t, bad_ids, 2, two, 2 * DIM, sst, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "strictly ascending"));
    assert_int_equal(emb_store_ingest(st, t, ids, 2, two, DIM, sst, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "dim 8"));
    two[3] = NAN;
    uint64_t fresh[2] = {2, 5};
    assert_int_equal(emb_store_ingest(st, t, fresh, 2, two, 2 * DIM, sst, &e), MR_EINVAL);
    uint8_t fr[2] = {1, 1};
    assert_int_equal(emb_store_get_uncached(st, t, fresh, 2, got, fr, &e), 0);
    assert_int_equal(fr[0] + fr[1], 0);
    assert_int_equal(access(sst, F_OK), -1);
    store_close(st);
    /* survives a reopen */
    assert_int_equal(store_open(&st, dir, &c, &e), 0);
    t = emb_store_table(st, "f32", &e);
    assert_int_equal(emb_store_get_uncached(st, t, ids + 1, N - 1, got, NULL, &e), 0);
    assert_memory_equal(got, vecs + DIM, sizeof(float) * (N - 1) * DIM);
    store_close(st);
    store_test_rmrf(dir);
}

static void test_read_only_refuses(void **state) {
    (void)state;
    char dir[256], sst[300];
    assert_non_null(store_test_tmpdir(dir, sizeof dir, "ingest-ro"));
    snprintf(sst, sizeof sst, "%s/load.sst", dir);
    mr_err e;
    mr_store *st;
    store_config c;
    store_config_init(&c);
    assert_int_equal(store_open(&st, dir, &c, &e), 0);
    assert_int_equal(emb_table_create(st, "t", 2, EMB_FP32, 0, &e), 0);
    store_close(st);
    c.mode = STORE_READ_ONLY;
    assert_int_equal(store_open(&st, dir, &c, &e), 0);
    uint64_t id = 1;
    float v[2] = {1, 2};
    assert_int_not_equal(emb_store_ingest(st, emb_store_table(st, "t", &e), &id, 1, v, 2, sst, &e),
                         0);
    store_close(st);
    store_test_rmrf(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ingest_reads_back_like_puts),
        cmocka_unit_test(test_read_only_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
