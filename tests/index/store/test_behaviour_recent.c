/* test_behaviour_recent.c — the last k events of a user by reverse scan:
 * equal to the tail of the full (oldest-first) read, across trims, users
 * with neighbouring ids, and events whose item has no vector (skipped by
 * behaviour_recent_vectors, as training's replay skips them); users past
 * user_ttl_s read as having none. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/clock.h"
#include "index/store/behaviour_recent.h"
#include "store_testutil.h"

enum { D = 4, LMAX = 20 };

static void item_vec(uint64_t item, float *v) {
    for (int j = 0; j < D; j++) v[j] = (float)item + 0.25f * (float)j;
}

/* The kept events that have a vector (items not divisible by 7). */
static int m_total(const behaviour_event *all, size_t n) {
    int m = 0;
    for (size_t i = 0; i < n; i++) m += (all[i].item % 7) != 0;
    return m;
}

static void test_recent_matches_full_read(void **state) {
    (void)state;
    char dir[256];
    assert_non_null(store_test_tmpdir(dir, sizeof dir, "recent"));
    mr_store *st;
    assert_int_equal(store_open(&st, dir, NULL, NULL), 0);
    assert_int_equal(emb_table_create(st, "items", D, EMB_FP32, 0, NULL), 0);
    mr_emb_table *t = emb_store_table(st, "items", NULL);
    /* items 1..60 have vectors except multiples of 7 */
    uint64_t ids[60];
    float vecs[60 * D];
    size_t nv = 0;
    for (uint64_t i = 1; i <= 60; i++)
        if (i % 7) {
            ids[nv] = i;
            item_vec(i, vecs + nv * D);
            nv++;
        }
    assert_int_equal(emb_store_put(st, t, ids, nv, vecs, nv * D, NULL), 0);
    behaviour_config c;
    behaviour_config_init(&c, "items");
    c.l_max = LMAX;
    mr_behaviour *b;
    assert_int_equal(behaviour_open(&b, st, &c, NULL), 0);

    /* user 5: 35 events in 5 batches (trimmed to 20); users 4 and 6 interleaved */
    for (int batch = 0; batch < 5; batch++) {
        behaviour_event ev[21];
        int n = 0;
        for (int j = 0; j < 7; j++) {
            int64_t ts = batch * 100 + j * 3 + (j % 2); /* times, some equal across batches */
            /* the action: the item's id + 1000 (0 = none for every 5th), to be read back */
            uint64_t item = (uint64_t)(batch * 7 + j + 1);
            ev[n++] = (behaviour_event){5, item, ts, item % 5 ? (uint32_t)item + 1000 : 0};
            ev[n++] = (behaviour_event){4, 50, ts, 0};
            ev[n++] = (behaviour_event){6, 51, ts, 0};
        }
        assert_int_equal(behaviour_append(b, ev, (size_t)n, NULL), 0);
    }
    behaviour_event all[LMAX + 5], rec[LMAX + 5];
    size_t nall, nrec;
    assert_int_equal(behaviour_events(b, 5, all, LMAX + 5, &nall, NULL), 0);
    assert_int_equal(nall, LMAX);
    for (size_t k = 0; k <= LMAX + 3; k++) {
        assert_int_equal(behaviour_recent(b, 5, rec, k, &nrec, NULL), 0);
        size_t want = k < nall ? k : nall;
        assert_int_equal(nrec, want);
        for (size_t i = 0; i < nrec; i++) {
            assert_int_equal(rec[i].item, all[nall - want + i].item);
            assert_int_equal(rec[i].ts_ms, all[nall - want + i].ts_ms);
            assert_int_equal(rec[i].user, 5);
        }
    }
    /* vectors: the last k events with a vector, oldest first */
    for (int k = 1; k <= LMAX; k++) {
        float got[LMAX * D], want_v[LMAX * D];
        int n;
        assert_int_equal(behaviour_recent_vectors(b, 5, k, got, &n, NULL), 0);
        int m = 0;
        for (int i = (int)nall - 1; i >= 0 && m < k; i--)
            if (all[i].item % 7) item_vec(all[i].item, want_v + (size_t)(k - 1 - m++) * D);
        assert_int_equal(n, m);
        assert_memory_equal(got, want_v + (size_t)(k - m) * D, (size_t)m * D * sizeof(float));
        /* with the actions: the same vectors, each with its own event's action */
        float got2[LMAX * D];
        uint32_t act[LMAX];
        int n2;
        assert_int_equal(behaviour_recent_vectors_act(b, 5, k, got2, act, &n2, NULL), 0);
        assert_int_equal(n2, n);
        assert_memory_equal(got2, got, (size_t)n * D * sizeof(float));
        for (int i = 0, seen = 0; i < (int)nall; i++) { /* the last n events with a vector */
            if (!(all[i].item % 7)) continue;
            int pos = seen++ - (m_total(all, nall) - n);
            if (pos < 0) continue;
            assert_int_equal(act[pos], all[i].action);
            assert_int_equal(act[pos], all[i].item % 5 ? (uint32_t)all[i].item + 1000 : 0u);
        }
    }
    /* a user with no events */
    assert_int_equal(behaviour_recent(b, 99, rec, 5, &nrec, NULL), 0);
    assert_int_equal(nrec, 0);
    int n;
    float v[D];
    assert_int_equal(behaviour_recent_vectors(b, 99, 1, v, &n, NULL), 0);
    assert_int_equal(n, 0);
    behaviour_close(b);
    store_close(st);
    store_test_rmrf(dir);
}

/* Past user_ttl_s the user's recent events read as gone, like its SDIM
 * table (user_state_get), before any behaviour_expire sweep. */
static void test_recent_respects_user_ttl(void **state) {
    (void)state;
    char dir[256];
    assert_non_null(store_test_tmpdir(dir, sizeof dir, "recentttl"));
    store_config sc;
    store_config_init(&sc);
    sc.user_ttl_s = 1;
    mr_store *st;
    assert_int_equal(store_open(&st, dir, &sc, NULL), 0);
    assert_int_equal(emb_table_create(st, "items", D, EMB_FP32, 0, NULL), 0);
    mr_emb_table *t = emb_store_table(st, "items", NULL);
    uint64_t ids[3] = {1, 2, 3};
    float vecs[3 * D];
    for (int i = 0; i < 3; i++) item_vec(ids[i], vecs + i * D);
    assert_int_equal(emb_store_put(st, t, ids, 3, vecs, 3 * D, NULL), 0);
    behaviour_config c;
    behaviour_config_init(&c, "items");
    mr_behaviour *b;
    assert_int_equal(behaviour_open(&b, st, &c, NULL), 0);
    behaviour_event ev[3];
    for (int i = 0; i < 3; i++) ev[i] = (behaviour_event){8, ids[i], 10 + i, 0};
    int64_t t0 = mr_unix_ms();
    assert_int_equal(behaviour_append(b, ev, 3, NULL), 0);
    behaviour_event rec[4];
    size_t nrec;
    float v[3 * D];
    int n;
    assert_int_equal(behaviour_recent(b, 8, rec, 4, &nrec, NULL), 0);
    if (mr_unix_ms() - t0 < 900) assert_int_equal(nrec, 3); /* unless the host stalled 1 s */
    int64_t t1 = mr_unix_ms();
    while (mr_unix_ms() <= t1 + 2100) usleep(50 * 1000); /* past the TTL in whole seconds */
    assert_int_equal(behaviour_recent(b, 8, rec, 4, &nrec, NULL), 0);
    assert_int_equal(nrec, 0);
    assert_int_equal(behaviour_recent_vectors(b, 8, 3, v, &n, NULL), 0);
    assert_int_equal(n, 0);
    behaviour_close(b);
    store_close(st);
    store_test_rmrf(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_recent_matches_full_read),
                                       cmocka_unit_test(test_recent_respects_user_ttl)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
