/* test_backend.c — the server's store backend: the id mapping, and the TTL
 * sweeper thread really deleting an expired user's behaviour (reads hide
 * it before the sweep; the sweep reclaims it and counts it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend_testutil.h"

#include "common/clock.h"
#include "server/backend.h"

static void test_sweeper_expires_users(void **s) {
    (void)s;
    char dir[64];
    mr_server_config cfg;
    backend_test_config(dir, &cfg);
    cfg.user_ttl_seconds = 1;
    cfg.expire_interval_seconds = 0.2;
    mr_backend *b;
    mr_err e;
    assert_int_equal(mr_backend_open(&b, &cfg, &e), MR_OK);
    uint64_t ids[2] = {mr_api_id("10"), mr_api_id("11")};
    float v[8] = {1, 0, 0, 0, 0, 1, 0, 0};
    assert_int_equal(emb_store_put(b->st, b->items, ids, 2, v, 8, &e), MR_OK);
    uint64_t user = mr_api_id("alice");
    behaviour_event ev[2] = {{user, ids[0], mr_unix_ms(), 0}, {user, ids[1], mr_unix_ms() + 1, 0}};
    assert_int_equal(behaviour_append(b->beh, ev, 2, &e), MR_OK);
    behaviour_event got[4];
    size_t n;
    assert_int_equal(behaviour_events(b->beh, user, got, 4, &n, &e), MR_OK);
    assert_int_equal(n, 2);
    /* after the TTL and a few sweep periods the user is gone, and counted */
    uint64_t deadline = mr_now_ns() + 10ull * 1000000000ull;
    while (atomic_load(&b->expired_users) == 0 && mr_now_ns() < deadline) usleep(50 * 1000);
    assert_true(atomic_load(&b->expired_users) >= 1);
    assert_true(atomic_load(&b->sweeps) >= 1);
    assert_int_equal(behaviour_events(b->beh, user, got, 4, &n, &e), MR_OK);
    assert_int_equal(n, 0);
    mr_backend_close(b); /* joins the sweeper */
    backend_test_remove(dir);
}

/* The free-space guard: a reserve larger than any disk refuses writes with
 * RESOURCE_EXHAUSTED and a message; 0 turns the check off; a reserve this
 * filesystem has passes; unflushed memtables add to what a write needs. */
static void test_check_space(void **s) {
    (void)s;
    char dir[64];
    mr_server_config cfg;
    backend_test_config(dir, &cfg);
    cfg.store_min_free_bytes = (size_t)1 << 62;
    mr_backend *b;
    mr_err e;
    assert_int_equal(mr_backend_open(&b, &cfg, &e), MR_OK);
    mr_err_clear(&e);
    assert_int_equal(mr_backend_check_space(b, &e), MR_ENOMEM);
    assert_non_null(strstr(e.msg, "disk full"));
    assert_non_null(strstr(e.msg, "store_min_free_bytes"));
    b->min_free = 0;
    assert_int_equal(mr_backend_check_space(b, &e), MR_OK);
    assert_int_equal(mr_backend_space_needed(b), 0);
    b->min_free = 1;
    assert_int_equal(mr_backend_check_space(b, &e), MR_OK);
    /* rows in the memtables (not yet flushed) raise the space a write needs
     * by at least their size: their flush writes them again */
    uint64_t before = mr_backend_space_needed(b);
    uint64_t ids[64];
    float vecs[64 * 4];
    for (int i = 0; i < 64; i++) {
        ids[i] = (uint64_t)i + 1;
        for (int j = 0; j < 4; j++) vecs[i * 4 + j] = (float)(i + j);
    }
    assert_int_equal(emb_store_put(b->st, b->items, ids, 64, vecs, 64 * 4, &e), MR_OK);
    assert_true(mr_backend_space_needed(b) >= before + 64 * 4 * sizeof(float));
    b->min_free = (size_t)1 << 62;
    assert_int_equal(mr_backend_check_space(b, &e), MR_ENOMEM);
    assert_non_null(strstr(e.msg, "unflushed memtables"));
    mr_backend_close(b);
    backend_test_remove(dir);
}

static void test_api_ids(void **s) {
    (void)s;
    assert_int_equal(mr_api_id("42"), 42);
    assert_true(mr_api_id("4x2") >> 63);
    assert_true(mr_api_id("") >> 63);
}

int main(void) {
    const struct CMUnitTest t[] = {cmocka_unit_test(test_sweeper_expires_users),
                                   cmocka_unit_test(test_check_space),
                                   cmocka_unit_test(test_api_ids)};
    return cmocka_run_group_tests(t, NULL, NULL);
}
