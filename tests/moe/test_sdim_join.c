/* test_sdim_join.c — moe/sdim_join.c: each training row's SDIM block equals
 * a brute-force recomputation from exactly the user's events strictly
 * before the row (bit for bit without trims, to rounding with l_max
 * trims), later events and other users' events never change it, items
 * without vectors are skipped, candidates without one get zeros. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include <cmocka.h>

#include "common/rng.h"
#include "common/tensor.h"
#include "moe/sdim_feature.h"
#include "moe/sdim_join.h"

enum { D = 8, NI = 60, NMISS = 5, NE = 900, NR = 120, NU = 4, SHORT = 6 };

typedef struct fx {
    float vec[NI * D];
    uint64_t eu[NE], ei[NE], ru[NR], ri[NR];
    int64_t et[NE], rt[NR];
    sdim_hasher *h;
} fx;

static const float *item_vec(uint64_t item, void *ctx) {
    fx *f = ctx;
    return item < NI - NMISS ? f->vec + item * D : NULL; /* the last NMISS have no vector */
}

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    mr_rng g;
    mr_rng_seed(&g, 31);
    mr_rng_fill_normal(&g, f->vec, NI * D, 1.0f);
    for (int i = 0; i < NE; i++) {
        f->eu[i] = 100 + mr_rng_below(&g, NU);
        f->ei[i] = mr_rng_below(&g, NI);
        f->et[i] = (int64_t)mr_rng_below(&g, 1000); /* unsorted, with ties */
    }
    for (int r = 0; r < NR; r++) {
        f->ru[r] = 100 + mr_rng_below(&g, NU + 1); /* user 100 + NU has no events */
        f->ri[r] = mr_rng_below(&g, NI);
        f->rt[r] = (int64_t)mr_rng_below(&g, 1100);
    }
    f->rt[0] = f->et[0], f->ru[0] = f->eu[0]; /* a row at the exact time of an event */
    assert_int_equal(sdim_hasher_create(&f->h, D, 24, 3, 4, NULL), 0);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    sdim_hasher_free(f->h);
    free(f);
    return 0;
}

/* Brute force for row r: the user's events with ts < row time and a vector,
 * sorted by (ts, index), the newest l_max pushed into a fresh replay. */
static void brute(fx *f, int r, int l_max, float *o) {
    int idx[NE], n = 0;
    for (int i = 0; i < NE; i++)
        if (f->eu[i] == f->ru[r] && f->et[i] < f->rt[r] && item_vec(f->ei[i], f)) idx[n++] = i;
    for (int a = 1; a < n; a++) /* insertion sort by (ts, index) */
        for (int b = a; b > 0 && (f->et[idx[b - 1]] > f->et[idx[b]] ||
                                  (f->et[idx[b - 1]] == f->et[idx[b]] && idx[b - 1] > idx[b]));
             b--) {
            int t = idx[b];
            idx[b] = idx[b - 1], idx[b - 1] = t;
        }
    int from = n > l_max ? n - l_max : 0;
    float *x = mr_floats_alloc((size_t)(n + 1) * D), rec[SHORT * D];
    for (int i = from; i < n; i++)
        memcpy(x + (i - from) * D, item_vec(f->ei[idx[i]], f), sizeof(float) * D);
    sdim_seq *s;
    assert_int_equal(sdim_seq_create(&s, f->h, l_max, NULL), 0);
    assert_int_equal(sdim_seq_push(s, x, n - from, NULL), 0);
    const float *q = item_vec(f->ri[r], f);
    if (!q) memset(o, 0, sizeof(float) * 2 * D);
    else {
        int k = sdim_seq_recent(s, SHORT, rec);
        assert_int_equal(
            sdim_feature_extra(f->h, s->n ? s->table : NULL, rec, k, q, 1, o, 2 * D, NULL), 0);
    }
    sdim_seq_free(s);
    mr_floats_free(x);
}

static void run_join(fx *f, int l_max, float *out) {
    const sdim_events ev = {NE, f->eu, f->ei, f->et, NULL};
    mr_err e;
    if (sdim_join(f->h, l_max, SHORT, &ev, f->ru, f->ri, f->rt, NR, item_vec, f, out, 2 * D, &e))
        fail_msg("sdim_join: %s", e.msg);
}

static void test_equals_brute_force_no_trims(void **state) {
    fx *f = *state;
    float *out = mr_floats_alloc(NR * 2 * D), want[2 * D];
    run_join(f, 10000, out);
    int zeros = 0, nonzero = 0;
    for (int r = 0; r < NR; r++) {
        brute(f, r, 10000, want);
        assert_memory_equal(out + r * 2 * D, want, sizeof want);
        float nrm = mr_l2norm(out + r * 2 * D, 2 * D);
        zeros += nrm == 0.0f, nonzero += nrm > 0.0f;
    }
    assert_true(zeros > 0 && nonzero > NR / 2); /* no-history users, missing candidates */
    mr_floats_free(out);
}

static void test_equals_brute_force_with_trims(void **state) {
    fx *f = *state;
    float *out = mr_floats_alloc(NR * 2 * D), want[2 * D];
    run_join(f, 10, out);
    for (int r = 0; r < NR; r++) {
        brute(f, r, 10, want);
        for (int c = 0; c < 2 * D; c++) assert_true(fabsf(out[r * 2 * D + c] - want[c]) < 1e-5f);
    }
    mr_floats_free(out);
}

/* History actions: each event gets one of 3 actions (or none); the join's
 * blocks [long | short | action shares] equal a fresh replay of the row's
 * events with their actions (to the bit without trims, to 1e-5 with); with no
 * actions on the events the shares are 0. */
static void test_actions_equal_brute_force(void **state) {
    fx *f = *state;
    enum { NA = 2, W = 2 * D + NA };
    static uint32_t ea[NE];
    const uint32_t acts[NA] = {sdim_action_id("like", 4), sdim_action_id("love", 4)};
    for (int i = 0; i < NE; i++) ea[i] = i % 3 == 2 ? sdim_action_id("skip", 4) : acts[i % 3];
    const sdim_events ev = {NE, f->eu, f->ei, f->et, ea};
    const int lmax[2] = {10000, 10};
    float *out = mr_floats_alloc(NR * W);
    for (int t = 0; t < 2; t++) {
        mr_err e;
        if (sdim_join_act(f->h, lmax[t], SHORT, acts, NA, &ev, f->ru, f->ri, f->rt, NR, item_vec, f,
                          out, W, &e))
            fail_msg("sdim_join_act: %s", e.msg);
        int shared = 0;
        for (int r = 0; r < NR; r++) {
            int idx[NE], n = 0;
            for (int i = 0; i < NE; i++)
                if (f->eu[i] == f->ru[r] && f->et[i] < f->rt[r] && item_vec(f->ei[i], f))
                    idx[n++] = i;
            for (int a = 1; a < n; a++) /* by (ts, index), as brute() */
                for (int b = a;
                     b > 0 && (f->et[idx[b - 1]] > f->et[idx[b]] ||
                               (f->et[idx[b - 1]] == f->et[idx[b]] && idx[b - 1] > idx[b]));
                     b--) {
                    int x = idx[b];
                    idx[b] = idx[b - 1], idx[b - 1] = x;
                }
            int from = n > lmax[t] ? n - lmax[t] : 0;
            float *x = mr_floats_alloc((size_t)(n + 1) * D), rec[SHORT * D], want[W];
            uint32_t xa[NE], ra[SHORT];
            for (int i = from; i < n; i++) {
                memcpy(x + (i - from) * D, item_vec(f->ei[idx[i]], f), sizeof(float) * D);
                xa[i - from] = ea[idx[i]];
            }
            sdim_seq *sq;
            assert_int_equal(sdim_seq_create(&sq, f->h, lmax[t], NULL), 0);
            assert_int_equal(sdim_seq_push_act(sq, x, xa, n - from, NULL), 0);
            const float *q = item_vec(f->ri[r], f);
            if (!q) memset(want, 0, sizeof want);
            else {
                int k = sdim_seq_recent_act(sq, SHORT, rec, ra);
                assert_int_equal(sdim_feature_extra_act(f->h, sq->n ? sq->table : NULL, rec, ra, k,
                                                        acts, NA, q, 1, want, W, NULL),
                                 0);
            }
            if (t == 0) assert_memory_equal(out + r * W, want, sizeof want);
            else /* trims subtract in another order than a fresh replay adds: last bits */
                for (int c = 0; c < W; c++) assert_true(fabsf(out[r * W + c] - want[c]) < 1e-5f);
            shared += want[2 * D] > 0.0f && want[2 * D + 1] > 0.0f;
            sdim_seq_free(sq);
            mr_floats_free(x);
        }
        assert_true(shared > NR / 2);
    }
    /* the same log without actions: shares 0, the rest as sdim_join */
    const sdim_events ev0 = {NE, f->eu, f->ei, f->et, NULL};
    float *plain = mr_floats_alloc(NR * 2 * D);
    assert_int_equal(sdim_join_act(f->h, 10, SHORT, acts, NA, &ev0, f->ru, f->ri, f->rt, NR,
                                   item_vec, f, out, W, NULL),
                     0);
    run_join(f, 10, plain);
    for (int r = 0; r < NR; r++) {
        assert_memory_equal(out + r * W, plain + r * 2 * D, sizeof(float) * 2 * D);
        assert_true(out[r * W + 2 * D] == 0.0f && out[r * W + 2 * D + 1] == 0.0f);
    }
    mr_err e;
    assert_int_equal(sdim_join_act(f->h, 10, SHORT, acts, NA, &ev, f->ru, f->ri, f->rt, NR,
                                   item_vec, f, out, W - 1, &e),
                     MR_EINVAL);
    mr_floats_free(plain);
    mr_floats_free(out);
}

/* Rewriting every event at or after a row's time (and every event of the
 * other users) does not change that row: no leakage. */
static void test_future_events_do_not_leak(void **state) {
    fx *f = *state;
    float *a = mr_floats_alloc(NR * 2 * D), *b = mr_floats_alloc(NR * 2 * D);
    run_join(f, 10000, a);
    const int r = 0; /* the row sitting exactly on an event's time */
    uint64_t keep[NE];
    memcpy(keep, f->ei, sizeof keep);
    for (int i = 0; i < NE; i++)
        if (f->eu[i] != f->ru[r] || f->et[i] >= f->rt[r]) f->ei[i] = (f->ei[i] + 7) % NI;
    run_join(f, 10000, b);
    memcpy(f->ei, keep, sizeof keep);
    assert_memory_equal(a + r * 2 * D, b + r * 2 * D, sizeof(float) * 2 * D);
    int changed = 0;
    for (int x = 1; x < NR; x++)
        changed += memcmp(a + x * 2 * D, b + x * 2 * D, sizeof(float) * 2 * D) != 0;
    assert_true(changed > 0); /* the rewrite did matter for other rows */
    mr_floats_free(a);
    mr_floats_free(b);
}

/* A user with far more than l_max events before a row: the join keeps at
 * most 2 l_max pending events in memory, and its blocks are bit-identical
 * to pushing each row's whole batch of preceding events into sdim_seq. */
static void test_long_history_bounded_buffer_same_ops(void **state) {
    fx *f = *state;
    enum { LE = 3000, LR = 3, LMAX = 10 };
    uint64_t *eu = malloc(LE * sizeof *eu), *ei = malloc(LE * sizeof *ei);
    int64_t *et = malloc(LE * sizeof *et);
    for (int i = 0; i < LE; i++) eu[i] = 5, ei[i] = (uint64_t)((i * 7) % NI), et[i] = i;
    uint64_t ru[LR] = {5, 5, 5}, ri[LR] = {3, 4, 8};
    int64_t rt[LR] = {1500, 2999, 3100};
    float out[LR * 2 * D], want[LR * 2 * D], rec[SHORT * D];
    const sdim_events ev = {LE, eu, ei, et, NULL};
    assert_int_equal(
        sdim_join(f->h, LMAX, SHORT, &ev, ru, ri, rt, LR, item_vec, f, out, 2 * D, NULL), 0);
    sdim_seq *s;
    assert_int_equal(sdim_seq_create(&s, f->h, LMAX, NULL), 0);
    float *x = mr_floats_alloc((size_t)LE * D);
    int at = 0;
    for (int r = 0; r < LR; r++) {
        int n = 0;
        for (; at < LE && et[at] < rt[r]; at++)
            if (item_vec(ei[at], f))
                memcpy(x + (size_t)n++ * D, item_vec(ei[at], f), sizeof(float) * D);
        assert_int_equal(sdim_seq_push(s, x, n, NULL), 0);
        int k = sdim_seq_recent(s, SHORT, rec);
        assert_int_equal(sdim_feature_extra(f->h, s->table, rec, k, item_vec(ri[r], f), 1,
                                            want + r * 2 * D, 2 * D, NULL),
                         0);
    }
    assert_memory_equal(out, want, sizeof want);
    sdim_seq_free(s);
    mr_floats_free(x);
    free(eu);
    free(ei);
    free(et);
}

static void test_bad_args(void **state) {
    fx *f = *state;
    const sdim_events ev = {NE, f->eu, f->ei, f->et, NULL};
    float out[2 * D];
    mr_err e;
    assert_int_equal(
        sdim_join(f->h, 10, SHORT, &ev, f->ru, f->ri, f->rt, 1, item_vec, f, out, D, &e),
        MR_EINVAL);
    assert_int_equal(
        sdim_join(f->h, 0, SHORT, &ev, f->ru, f->ri, f->rt, 1, item_vec, f, out, 2 * D, &e),
        MR_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equals_brute_force_no_trims),
        cmocka_unit_test(test_equals_brute_force_with_trims),
        cmocka_unit_test(test_actions_equal_brute_force),
        cmocka_unit_test(test_future_events_do_not_leak),
        cmocka_unit_test(test_long_history_bounded_buffer_same_ops),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
