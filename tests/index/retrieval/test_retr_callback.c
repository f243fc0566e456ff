/* test_retr_callback.c — the callback expert kind and the router over it:
 * a callback wrapping a local FAISS expert answers exactly like it (also
 * through the router, so two local + two callback experts return the
 * same candidates as four local ones, with or without a thread pool);
 * every call is started before the first one is finished (they are in
 * flight together); the request's deadline reaches start; a failing
 * callback expert (at start or at finish, first pass or top-up) does not
 * fail the query: its budget passes on and the result names it and why;
 * a bad query is still the request's INVALID_ARGUMENT; creation checks
 * its arguments and frees ctx on failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <pthread.h>

#include "index/retrieval/retr_callback.h"
#include "test_router_util.h"

/* A fake remote: start copies the query, finish searches the wrapped
 * expert. fail_start / fail_finish make it fail with MR_EUNAVAIL. */
typedef struct fake {
    mr_retr *inner; /* borrowed */
    int fail_start, fail_finish;
    int fail_after; /* > 0: finishes after the first fail_after fail */
    int calls;
    int64_t size; /* what size() says; 0 = the inner expert's */
    int64_t last_deadline;
    int *log; /* shared event log: +id started, -id finished */
    int *n_log;
    pthread_mutex_t *mu;
    int id;
    int freed;
} fake;

typedef struct fake_call {
    float q[RD];
    int k;
} fake_call;

static void fake_log(fake *f, int ev) {
    if (!f->log) return;
    pthread_mutex_lock(f->mu);
    f->log[(*f->n_log)++] = ev;
    pthread_mutex_unlock(f->mu);
}

static int fake_start(void *ctx, const float *q, int dim, int k, const retr_user *user,
                      int64_t deadline_ms, void **call, mr_err *e) {
    (void)user;
    fake *f = ctx;
    f->last_deadline = deadline_ms;
    if (f->fail_start) return mr_err_set(e, MR_EUNAVAIL, "fake %d: connection refused", f->id);
    fake_call *c = calloc(1, sizeof *c);
    assert_non_null(c);
    assert_int_equal(dim, RD);
    memcpy(c->q, q, sizeof c->q);
    c->k = k;
    *call = c;
    fake_log(f, f->id);
    return 0;
}

static int fake_finish(void *ctx, void *call, int64_t *ids, float *scores, int k, mr_err *e) {
    fake *f = ctx;
    fake_call *c = call;
    assert_non_null(c);
    assert_int_equal(c->k, k);
    fake_log(f, -f->id);
    int fail = f->fail_finish || (f->fail_after > 0 && ++f->calls > f->fail_after);
    int rc = fail ? mr_err_set(e, MR_ETIMEOUT, "fake %d: deadline exceeded", f->id)
                  : retr_search(f->inner, c->q, RD, 1, k, NULL, ids, scores, e);
    free(c);
    return rc;
}

static int64_t fake_size(void *ctx) {
    fake *f = ctx;
    return f->size ? f->size : retr_size(f->inner);
}

static void fake_free(void *ctx) { ((fake *)ctx)->freed = 1; }

static const retr_callbacks fake_cb = {fake_start, fake_finish, fake_size, fake_free};

/* A router over w's experts with dom1 and dom2 behind callbacks. */
typedef struct mixed {
    fake f[2];
    mr_retr *cb[2];
    mr_router *rt;
} mixed;

static void mixed_make(mixed *m, tr_world *w, const router_config *c, mr_pool *pool, int *log,
                       int *n_log, pthread_mutex_t *mu) {
    mr_err e = {0};
    memset(m, 0, sizeof *m);
    assert_int_equal(router_create(&m->rt, c, pool, &e), 0);
    for (int d = 0; d <= RDOM; d++) {
        mr_retr *r = w->ex[d];
        if (d == 1 || d == 2) {
            fake *f = &m->f[d - 1];
            *f = (fake){.inner = w->ex[d], .log = log, .n_log = n_log, .mu = mu, .id = d};
            assert_int_equal(
                retr_callback_create(&m->cb[d - 1], w->ex[d]->name, RD, &fake_cb, f, &e), 0);
            r = m->cb[d - 1];
        }
        assert_int_equal(router_add_expert(m->rt, r, 0, &e), d);
    }
    for (int d = 0; d < RDOM; d++)
        assert_int_equal(router_set_pilots(m->rt, d, w->center[d], 1, &e), 0);
}

static void mixed_free(mixed *m) {
    router_free(m->rt);
    for (int i = 0; i < 2; i++) {
        retr_free(m->cb[i]);
        assert_int_equal(m->f[i].freed, 1);
    }
}

static void test_create_and_search(void **s) {
    (void)s;
    tr_world w;
    router_config c = tr_cfg_default();
    tr_world_make(&w, &c, NULL);
    mr_err e = {0};
    fake f = {.inner = w.ex[0], .id = 1};
    mr_retr *r = NULL;
    assert_int_equal(retr_callback_create(&r, "remote0", RD, &fake_cb, &f, &e), 0);
    assert_int_equal(r->kind, RETR_CALLBACK);
    assert_string_equal(retr_kind_name(r->kind), "callback");
    assert_ptr_equal(retr_callback_ctx(r), &f);
    assert_ptr_equal(retr_callback_table(r)->start, fake_start);
    assert_null(retr_callback_ctx(w.ex[0]));
    assert_int_equal(retr_size(r), RPER);
    float q[RD] = {0};
    q[0] = 4;
    int64_t ids[10], ids2[10];
    float sc[10], sc2[10];
    assert_int_equal(retr_search(r, q, RD, 1, 10, NULL, ids, sc, &e), 0);
    assert_int_equal(retr_search(w.ex[0], q, RD, 1, 10, NULL, ids2, sc2, &e), 0);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(ids[i], ids2[i]);
        assert_true(sc[i] == sc2[i]);
    }
    /* the query checks of every expert */
    assert_int_equal(retr_search(r, q, RD - 1, 1, 10, NULL, ids, sc, &e), MR_EINVAL);
    q[3] = NAN;
    assert_int_equal(retr_callback_start(r, q, RD, 10, NULL, 0, (void **)&ids, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "NaN"));
    retr_free(r);
    assert_int_equal(f.freed, 1);
    /* bad arguments: ctx is released even so */
    fake g = {0};
    assert_int_equal(retr_callback_create(&r, "bad name", RD, &fake_cb, &g, &e), MR_EINVAL);
    assert_null(r);
    assert_int_equal(g.freed, 1);
    g.freed = 0;
    assert_int_equal(retr_callback_create(&r, "x", -1, &fake_cb, &g, &e), MR_EINVAL);
    assert_int_equal(g.freed, 1);
    retr_callbacks none = {0};
    assert_int_equal(retr_callback_create(&r, "x", RD, &none, NULL, &e), MR_EINVAL);
    tr_world_free(&w);
}

/* Two local + two callback experts = four local, for routed, all-experts
 * and named requests, exclusions and a k that needs top-ups, with and
 * without a pool; the calls of one query are all started first. */
static void test_same_as_local(void **s) {
    (void)s;
    router_config c = tr_cfg_default();
    mr_pool *pool = mr_pool_create(3);
    for (int use_pool = 0; use_pool < 2; use_pool++) {
        tr_world w;
        tr_world_make(&w, &c, use_pool ? pool : NULL);
        int log[64], n_log = 0;
        pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
        mixed m;
        mixed_make(&m, &w, &c, use_pool ? pool : NULL, log, &n_log, &mu);
        mr_arena a;
        mr_arena_init(&a, 1 << 16, 0);
        mr_err e = {0};
        float *qs = tr_randn(77, 12, RD);
        const char *names[] = {"dom1", "dom2", "dom0"};
        for (int t = 0; t < 12; t++) {
            float *v = qs + t * RD;
            v[t % RDOM] += 3.0f;
            v[(t + 1) % RDOM] += 2.5f; /* between two domains: both are routed */
            router_query q = tr_query(v);
            router_options o = {.merge = -1};
            if (t % 4 == 1) o.mode = ROUTER_MODE_ALL;
            if (t % 4 == 2) {
                o.experts = names;
                o.n_experts = 2;
            }
            int64_t ex[3] = {1000, 2001, 5};
            int k = t % 4 == 3 ? 700 : 40; /* 700: more than two experts hold, top-ups */
            router_result r1, r2;
            n_log = 0;
            assert_int_equal(router_retrieve(w.rt, &q, NULL, k, ex, 3, &o, &a, &r1, &e), 0);
            assert_int_equal(router_retrieve(m.rt, &q, NULL, k, ex, 3, &o, &a, &r2, &e), 0);
            tr_same_cands(&r1, &r2);
            assert_int_equal(r2.n_failed, 0);
            for (int i = 0; i <= RDOM; i++) {
                assert_int_equal(r1.budgets[i], r2.budgets[i]);
                assert_true(r1.weights[i] == r2.weights[i]);
                assert_int_equal(r2.failed[i], 0);
                assert_null(r2.errors[i]);
            }
            assert_int_equal(r1.cost, r2.cost);
            if (t % 4 == 1) { /* both callbacks searched in the first pass */
                assert_true(n_log >= 4);
                assert_true(log[0] > 0 && log[1] > 0 && log[2] < 0 && log[3] < 0);
            }
        }
        mr_floats_free(qs);
        mr_arena_free(&a);
        mixed_free(&m);
        tr_world_free(&w);
    }
    mr_pool_free(pool);
}

static void test_deadline_reaches_start(void **s) {
    (void)s;
    router_config c = tr_cfg_default();
    tr_world w;
    tr_world_make(&w, &c, NULL);
    mixed m;
    mixed_make(&m, &w, &c, NULL, NULL, NULL, NULL);
    mr_arena a;
    mr_arena_init(&a, 1 << 16, 0);
    mr_err e = {0};
    float v[RD] = {0};
    v[1] = 4;
    router_query q = tr_query(v);
    router_options o = {.merge = -1, .mode = ROUTER_MODE_ALL, .deadline_ms = 1234567};
    router_result r;
    assert_int_equal(router_retrieve(m.rt, &q, NULL, 10, NULL, 0, &o, &a, &r, &e), 0);
    assert_int_equal(m.f[0].last_deadline, 1234567);
    assert_int_equal(m.f[1].last_deadline, 1234567);
    mr_arena_free(&a);
    mixed_free(&m);
    tr_world_free(&w);
}

/* dom1 fails: the query succeeds with k items from the others, dom1 is
 * named with its reason, and its budget went to the others. */
static void test_failure_passes_budget(void **s) {
    (void)s;
    router_config c = tr_cfg_default();
    for (int mode = 0; mode < 2; mode++) { /* fail at start, fail at finish */
        tr_world w;
        tr_world_make(&w, &c, NULL);
        mixed m;
        mixed_make(&m, &w, &c, NULL, NULL, NULL, NULL);
        if (mode == 0) m.f[0].fail_start = 1;
        else m.f[0].fail_finish = 1;
        mr_arena a;
        mr_arena_init(&a, 1 << 16, 0);
        mr_err e = {0};
        float v[RD] = {0};
        v[1] = 4; /* dom1's centre: dom1 takes most of the budget */
        router_query q = tr_query(v);
        router_options o = {.merge = -1};
        router_result r1, r2;
        int k = 50;
        assert_int_equal(router_retrieve(w.rt, &q, NULL, k, NULL, 0, &o, &a, &r1, &e), 0);
        assert_true(r1.budgets[1] > k / 2);
        assert_int_equal(router_retrieve(m.rt, &q, NULL, k, NULL, 0, &o, &a, &r2, &e), 0);
        assert_int_equal(r2.n, k);
        assert_int_equal(r2.n_failed, 1);
        assert_int_equal(r2.failed[1], mode == 0 ? MR_EUNAVAIL : MR_ETIMEOUT);
        assert_non_null(strstr(r2.errors[1], mode == 0 ? "connection refused" : "deadline"));
        assert_int_equal(r2.budgets[1], r1.budgets[1]); /* what it was asked */
        int others = 0;
        for (int i = 0; i < r2.n; i++) {
            assert_true(r2.cands[i].expert != 1);
            assert_false(r2.cands[i].experts & 2);
        }
        for (int i = 0; i <= RDOM; i++)
            if (i != 1) others += r2.budgets[i];
        assert_true(others >= k); /* the failed share passed on */
        /* both fail: dom0 and the fallback still answer */
        m.f[1].fail_finish = 1;
        o.mode = ROUTER_MODE_ALL;
        assert_int_equal(router_retrieve(m.rt, &q, NULL, k, NULL, 0, &o, &a, &r2, &e), 0);
        assert_int_equal(r2.n_failed, 2);
        assert_int_equal(r2.n, k);
        for (int i = 0; i < r2.n; i++)
            assert_true(r2.cands[i].expert == 0 || r2.cands[i].expert == RDOM);
        mr_arena_free(&a);
        mixed_free(&m);
        tr_world_free(&w);
    }
}

/* A callback expert that fails only in the top-up keeps its first answer;
 * one never searched before that fails gives nothing; either way the
 * query answers from the others. */
static void test_failure_in_topup(void **s) {
    (void)s;
    router_config c = tr_cfg_default();
    c.fallback = NULL;
    tr_world w;
    tr_world_make(&w, &c, NULL);
    mixed m;
    mixed_make(&m, &w, &c, NULL, NULL, NULL, NULL);
    mr_arena a;
    mr_arena_init(&a, 1 << 16, 0);
    mr_err e = {0};
    float v[RD] = {0};
    v[2] = 4; /* dom2 alone is routed */
    router_query q = tr_query(v);
    router_options o = {.merge = -1, .top_p = 0.01f};
    router_result r1, r2;
    int k = 400; /* more than dom2 holds: top-up into dom0 / dom1 */
    assert_int_equal(router_retrieve(w.rt, &q, NULL, k, NULL, 0, &o, &a, &r1, &e), 0);
    assert_int_equal(r1.n, k);
    m.f[0].fail_start = 1; /* dom1: only reached in the top-up */
    assert_int_equal(router_retrieve(m.rt, &q, NULL, k, NULL, 0, &o, &a, &r2, &e), 0);
    assert_int_equal(r2.n, k);
    int from2 = 0;
    for (int i = 0; i < r2.n; i++) {
        assert_true(r2.cands[i].expert != 1);
        from2 += r2.cands[i].expert == 2;
    }
    assert_int_equal(from2, RPER);
    if (r2.failed[1]) assert_non_null(r2.errors[1]);
    /* dom2 answers the first pass (its 150 best, 120 of them excluded),
     * fails the deeper search: its 30 stay, dom0 / dom1 give the rest */
    m.f[0].fail_start = 0;
    m.f[1].fail_after = 1;
    int64_t top[120];
    float ts[120];
    assert_int_equal(retr_search(w.ex[2], v, RD, 1, 120, NULL, top, ts, &e), 0);
    k = 50;
    assert_int_equal(router_retrieve(m.rt, &q, NULL, k, top, 120, &o, &a, &r2, &e), 0);
    assert_int_equal(m.f[1].calls, 2);
    assert_int_equal(r2.n, k);
    assert_int_equal(r2.n_failed, 1);
    assert_int_equal(r2.failed[2], MR_ETIMEOUT);
    from2 = 0;
    for (int i = 0; i < r2.n; i++) {
        for (int x = 0; x < 120; x++) assert_true(r2.cands[i].id != top[x]);
        from2 += r2.cands[i].expert == 2;
    }
    assert_int_equal(from2, 30);
    /* the same query answered by the local router (no failure) takes all
     * 50 from dom2 */
    assert_int_equal(router_retrieve(w.rt, &q, NULL, k, top, 120, &o, &a, &r1, &e), 0);
    from2 = 0;
    for (int i = 0; i < r1.n; i++) from2 += r1.cands[i].expert == 2;
    assert_int_equal(from2, k);
    mr_arena_free(&a);
    mixed_free(&m);
    tr_world_free(&w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_search),      cmocka_unit_test(test_same_as_local),
        cmocka_unit_test(test_deadline_reaches_start), cmocka_unit_test(test_failure_passes_budget),
        cmocka_unit_test(test_failure_in_topup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
