/* test_store_concurrent.c — concurrent readers and one writer on one store
 * handle: readers do batched embedding gets (through the cache), item gets
 * and user_state_get while the writer overwrites rows with rising versions
 * and appends events. Each row read must be whole (never torn) and, per
 * reader and id, versions never go backwards — which would mean the cache
 * kept a value older than one already served (it did once in CI: a reader
 * that read a row before a write's commit inserted it after the commit,
 * before the writer's cache_update; see cache_write_begin in cache.h).
 * Each check has its own counter, printed on failure. Build with
 * -DMOEREC_TSAN=ON and run it to check for data races under ThreadSanitizer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <cmocka.h>

#include "common/rng.h"
#include "index/store/behaviour.h"
#include "store_testutil.h"

enum { D = 8, NIDS = 256, NREADERS = 4, NUSERS = 8, WRITES = 400 };

/* What a reader checks; a failure names the check that failed. */
enum { BAD_GET, BAD_TORN, BAD_BACKWARDS, BAD_STATE_GET, BAD_COUNT, BAD_ITEM, NBAD };
static const char *const concurrent_checks[NBAD] = {
    "emb_store_get returned an error",
    "a torn row (values of two versions)",
    "a row version went backwards for one reader (stale cache insert)",
    "user_state_get returned an error",
    "an SDIM count total differs from the user's n_events",
    "item_store_get failed, or an item blob's version went backwards",
};

typedef struct shared {
    mr_store *st;
    mr_behaviour *b;
    mr_emb_table *t;
    atomic_int stop;
    atomic_long reads;
    atomic_long bad[NBAD]; /* one counter per check */
} shared;

static void row(uint64_t id, uint32_t ver, float *v) {
    v[0] = (float)id;
    for (int j = 1; j < D; j++) v[j] = (float)ver;
}

static void *reader(void *arg) {
    shared *s = arg;
    mr_rng r;
    mr_rng_seed(&r, (uint64_t)(uintptr_t)&r);
    uint32_t seen[NIDS] = {0}, seen_item[NIDS] = {0};
    uint64_t ids[32];
    float y[32 * D];
    uint8_t found[32];
    while (!atomic_load(&s->stop)) {
        for (int i = 0; i < 32; i++) ids[i] = mr_rng_below(&r, NIDS);
        if (emb_store_get(s->st, s->t, ids, 32, y, found, NULL)) {
            atomic_fetch_add(&s->bad[BAD_GET], 1);
            continue;
        }
        for (int i = 0; i < 32; i++) {
            if (!found[i]) continue;
            const float *v = y + i * D;
            uint32_t ver = (uint32_t)v[1];
            int torn = v[0] != (float)ids[i];
            for (int j = 2; j < D; j++) torn |= v[j] != v[1];
            if (torn) {
                atomic_fetch_add(&s->bad[BAD_TORN], 1);
                continue;
            }
            if (ver < seen[ids[i]]) atomic_fetch_add(&s->bad[BAD_BACKWARDS], 1);
            seen[ids[i]] = ver;
        }
        store_blob out[4];
        void *buf;
        if (item_store_get(s->st, ids, 4, out, &buf, NULL) == 0) {
            for (int i = 0; i < 4; i++) { /* items go through the same cache path */
                uint32_t ver;
                if (!out[i].data) continue;
                if (out[i].len != sizeof ver) {
                    atomic_fetch_add(&s->bad[BAD_ITEM], 1);
                    continue;
                }
                memcpy(&ver, out[i].data, sizeof ver);
                if (ver < seen_item[ids[i]]) atomic_fetch_add(&s->bad[BAD_ITEM], 1);
                seen_item[ids[i]] = ver;
            }
            free(buf);
        } else {
            atomic_fetch_add(&s->bad[BAD_ITEM], 1);
        }
        mr_user_state us;
        if (user_state_get(s->b, mr_rng_below(&r, NUSERS), &us, NULL) == 0) {
            if (us.table) { /* every count matches the number of events summed */
                const sdim_layout *L = behaviour_layout(s->b);
                uint32_t total = 0;
                for (int k = 0; k < L->nbuckets; k++)
                    total += sdim_table_count(L, us.table, 0, (uint32_t)k);
                if (total != us.n_events) atomic_fetch_add(&s->bad[BAD_COUNT], 1);
            }
            user_state_release(&us);
        } else {
            atomic_fetch_add(&s->bad[BAD_STATE_GET], 1);
        }
        atomic_fetch_add(&s->reads, 1);
    }
    return NULL;
}

static void test_readers_and_one_writer(void **state) {
    (void)state;
    char dir[256];
    assert_non_null(store_test_tmpdir(dir, sizeof dir, "conc"));
    shared s = {0};
    store_config c;
    store_config_init(&c);
    c.cache_bytes = 12 * 1024; /* ~40% of the rows: evictions race with inserts too */
    c.cache_shards = 4;
    assert_int_equal(store_open(&s.st, dir, &c, NULL), 0);
    assert_int_equal(emb_table_create(s.st, "t", D, EMB_FP32, 0, NULL), 0);
    s.t = emb_store_table(s.st, "t", NULL);
    behaviour_config bc;
    behaviour_config_init(&bc, "t");
    bc.l_max = 30;
    bc.m = 8;
    bc.tau = 2;
    assert_int_equal(behaviour_open(&s.b, s.st, &bc, NULL), 0);
    float x[NIDS * D];
    uint64_t ids[NIDS];
    for (int i = 0; i < NIDS; i++) {
        ids[i] = (uint64_t)i;
        row(ids[i], 0, x + i * D);
    }
    assert_int_equal(emb_store_put(s.st, s.t, ids, NIDS, x, NIDS * D, NULL), 0);
    pthread_t th[NREADERS];
    for (int i = 0; i < NREADERS; i++) pthread_create(&th[i], NULL, reader, &s);
    mr_rng r;
    mr_rng_seed(&r, 9);
    for (uint32_t ver = 1; ver <= WRITES; ver++) {
        uint64_t w[8];
        float v[8 * D];
        for (int k = 0; k < 8; k++) {
            w[k] = mr_rng_below(&r, NIDS);
            row(w[k], ver, v + k * D);
        }
        assert_int_equal(emb_store_put(s.st, s.t, w, 8, v, 8 * D, NULL), 0);
        behaviour_event ev[3];
        for (int k = 0; k < 3; k++)
            ev[k] = (behaviour_event){mr_rng_below(&r, NUSERS), w[k], (int64_t)ver, 0};
        assert_int_equal(behaviour_append(s.b, ev, 3, NULL), 0);
        store_blob bl = {&ver, sizeof ver};
        assert_int_equal(item_store_put(s.st, w, 1, &bl, NULL), 0);
    }
    atomic_store(&s.stop, 1);
    for (int i = 0; i < NREADERS; i++) pthread_join(th[i], NULL);
    long nbad = 0;
    for (int k = 0; k < NBAD; k++) {
        long c = atomic_load(&s.bad[k]);
        if (c) print_error("%ld reads: %s\n", c, concurrent_checks[k]);
        nbad += c;
    }
    assert_int_equal(nbad, 0);
    assert_true(atomic_load(&s.reads) > 0);
    store_stats ss;
    store_get_stats(s.st, &ss);
    assert_true(ss.cache_evictions > 0); /* the race the cache is built for was exercised */
    /* after the writer is done every reader sees the last version */
    float y[NIDS * D];
    assert_int_equal(emb_store_get(s.st, s.t, ids, NIDS, y, NULL, NULL), 0);
    float z[NIDS * D];
    assert_int_equal(emb_store_get_uncached(s.st, s.t, ids, NIDS, z, NULL, NULL), 0);
    assert_memory_equal(y, z, sizeof y);
    behaviour_close(s.b);
    store_close(s.st);
    store_test_rmrf(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readers_and_one_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
