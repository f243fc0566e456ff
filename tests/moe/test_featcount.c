/* test_featcount.c — moe/featcount.c: counts, smoothed rates and recency
 * against a brute-force recomputation from the raw events (per row, only
 * the events strictly earlier; out-of-fold: only the other folds), decayed
 * windows against the closed form, ties, names and argument checks. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/rng.h"
#include "moe/featcount.h"

enum { N = 400, T = 2 };
static uint64_t g_cats[N][2];

static void make_events(fc_event *ev, int n) {
    mr_rng r;
    mr_rng_seed(&r, 7);
    for (int i = 0; i < n; i++) {
        memset(&ev[i], 0, sizeof ev[i]);
        ev[i].t = (double)mr_rng_below(&r, 60); /* many ties */
        ev[i].user = mr_rng_below(&r, 9);
        ev[i].item = 100 + mr_rng_below(&r, 13);
        g_cats[i][0] = 1000 + mr_rng_below(&r, 3);
        g_cats[i][1] = 1000 + mr_rng_below(&r, 3);
        ev[i].cats = g_cats[i];
        ev[i].n_cats = 1 + (int)mr_rng_below(&r, 2);
        for (int t = 0; t < T; t++) {
            ev[i].has[t] = mr_rng_below(&r, 5) != 0;
            ev[i].y[t] = (float)mr_rng_below(&r, 2);
        }
    }
}

/* Reference value of kind block for row i, using events j with use(j). */
typedef int (*use_fn)(const fc_event *ev, int i, int j, void *ctx);

static void ref_block(const fc_spec *s, const fc_event *ev, int n, int i, int kind, uint64_t cat,
                      use_fn use, void *ctx, double *out) {
    int W = s->n_windows;
    double gp[T] = {0}, gl[T] = {0}, cnt[FC_MAX_WINDOWS] = {0}, pos[FC_MAX_WINDOWS][T] = {{0}},
           lab[FC_MAX_WINDOWS][T] = {{0}}, last = -INFINITY;
    for (int j = 0; j < n; j++) {
        if (!use(ev, i, j, ctx)) continue;
        for (int t = 0; t < T; t++)
            if (ev[j].has[t]) gl[t]++, gp[t] += ev[j].y[t];
        int hit = kind == FC_USER   ? ev[j].user == ev[i].user
                  : kind == FC_ITEM ? ev[j].item == ev[i].item
                                    : 0;
        if (kind == FC_USER_CAT && ev[j].user == ev[i].user)
            for (int k = 0; k < ev[j].n_cats; k++) hit |= ev[j].cats[k] == cat;
        if (!hit) continue;
        if (ev[j].t > last) last = ev[j].t;
        for (int w = 0; w < W; w++) {
            double wt = s->window[w] > 0 ? exp(-(ev[i].t - ev[j].t) / s->window[w]) : 1;
            cnt[w] += wt;
            for (int t = 0; t < T; t++)
                if (ev[j].has[t]) lab[w][t] += wt, pos[w][t] += wt * ev[j].y[t];
        }
    }
    double a = s->prior_strength;
    for (int w = 0; w < W; w++) {
        out[w] = log1p(cnt[w]);
        for (int t = 0; t < T; t++) {
            double prior = (gp[t] + 1) / (gl[t] + 2);
            out[W + w * T + t] = (pos[w][t] + a * prior) / (lab[w][t] + a);
        }
    }
    out[W + W * T] = last > -INFINITY ? log1p(ev[i].t - last) : NAN;
}

static int use_past(const fc_event *ev, int i, int j, void *ctx) {
    (void)ctx;
    return ev[j].t < ev[i].t;
}

static void check_row(const fc_spec *s, const fc_event *ev, int i, const float *got, use_fn use,
                      void *ctx, int skip_recency) {
    int per = fc_kind_values(s);
    double want[3][FC_MAX_WINDOWS * (1 + FC_MAX_TASKS) + 1];
    ref_block(s, ev, N, i, FC_USER, 0, use, ctx, want[0]);
    ref_block(s, ev, N, i, FC_ITEM, 0, use, ctx, want[1]);
    double sum[FC_MAX_WINDOWS * (1 + FC_MAX_TASKS) + 1] = {0},
                                                     tmp[FC_MAX_WINDOWS * (1 + FC_MAX_TASKS) + 1];
    int seen[FC_MAX_WINDOWS * (1 + FC_MAX_TASKS) + 1] = {0};
    for (int k = 0; k < ev[i].n_cats; k++) {
        if (k == 1 && ev[i].cats[1] == ev[i].cats[0]) continue; /* repeated: once */
        ref_block(s, ev, N, i, FC_USER_CAT, ev[i].cats[k], use, ctx, tmp);
        for (int j = 0; j < per; j++)
            if (!isnan(tmp[j])) sum[j] += tmp[j], seen[j]++;
    }
    for (int j = 0; j < per; j++) want[2][j] = seen[j] ? sum[j] / seen[j] : NAN;
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < per; j++) {
            double w = want[k][j], g = got[k * per + j];
            if (skip_recency && j == per - 1) continue;
            if (isnan(w)) {
                assert_true(isnan(g));
                continue;
            }
            if (fabs(w - g) > 1e-5 * (1 + fabs(w))) {
                print_message("row %d kind %d value %d: want %.7f got %.7f\n", i, k, j, w, g);
                fail();
            }
        }
}

static fc_spec spec3(void) {
    fc_spec s = {
        .n_tasks = T, .n_windows = 2, .window = {0, 20}, .prior_strength = 3, .use_cats = 1};
    return s;
}

static void test_past_matches_brute_force(void **st) {
    (void)st;
    static fc_event ev[N];
    make_events(ev, N);
    fc_spec s = spec3();
    int per_row = fc_row_values(&s);
    assert_int_equal(per_row, 3 * (2 + 2 * T + 1));
    float *out = malloc(sizeof(float) * N * (size_t)per_row);
    fc_counter *fin = NULL;
    mr_err e;
    assert_int_equal(fc_train_values(&s, ev, N, FC_PAST, 0, 0, out, &fin, &e), 0);
    for (int i = 0; i < N; i++) check_row(&s, ev, i, out + i * per_row, use_past, NULL, 0);
    /* the final counter is every event: read at the last time + 5 */
    fc_event q = ev[0];
    q.t = 65;
    float row[64];
    fc_read_row(fin, &q, q.t, row);
    uint64_t *keys;
    size_t nk;
    assert_int_equal(fc_keys(fin, FC_USER, &keys, &nk, &e), 0);
    assert_int_equal((int)nk, 9);
    free(keys);
    assert_true(row[0] > 0); /* user 0's count is positive */
    fc_free(fin);
    free(out);
}

/* A row's own label never reaches its values: flipping it leaves its row
 * unchanged (past mode: also every row with the same time). */
static void test_own_label_not_used(void **st) {
    (void)st;
    static fc_event ev[N];
    make_events(ev, N);
    fc_spec s = spec3();
    int per_row = fc_row_values(&s);
    float *a = malloc(sizeof(float) * N * (size_t)per_row),
          *b = malloc(sizeof(float) * N * (size_t)per_row);
    mr_err e;
    for (int mode = FC_PAST; mode <= FC_OOF; mode++) {
        fc_spec sm = s;
        if (mode == FC_OOF) sm.window[1] = 0;
        assert_int_equal(fc_train_values(&sm, ev, N, mode, 5, 3, a, NULL, &e), 0);
        for (int i = 0; i < N; i += 37) {
            ev[i].y[0] = 1 - ev[i].y[0];
            assert_int_equal(fc_train_values(&sm, ev, N, mode, 5, 3, b, NULL, &e), 0);
            assert_memory_equal(a + i * per_row, b + i * per_row, sizeof(float) * (size_t)per_row);
            for (int j = 0; mode == FC_PAST && j < N; j++)
                if (ev[j].t == ev[i].t)
                    assert_memory_equal(a + j * per_row, b + j * per_row,
                                        sizeof(float) * (size_t)per_row);
            ev[i].y[0] = 1 - ev[i].y[0];
        }
    }
    free(a);
    free(b);
}

static const int *g_fold;

static int use_oof(const fc_event *ev, int i, int j, void *ctx) {
    (void)ev;
    (void)ctx;
    return g_fold[j] != g_fold[i];
}

static void test_oof_matches_brute_force(void **st) {
    (void)st;
    static fc_event ev[N];
    make_events(ev, N);
    fc_spec s = spec3();
    s.window[1] = 0;
    int per_row = fc_row_values(&s), per = fc_kind_values(&s);
    float *out = malloc(sizeof(float) * N * (size_t)per_row),
          *past = malloc(sizeof(float) * N * (size_t)per_row);
    mr_err e;
    assert_int_equal(fc_train_values(&s, ev, N, FC_OOF, 4, 11, out, NULL, &e), 0);
    assert_int_equal(fc_train_values(&s, ev, N, FC_PAST, 0, 0, past, NULL, &e), 0);
    static int fold[N];
    int used[4] = {0};
    for (int i = 0; i < N; i++) {
        fold[i] = fc_fold(11, (size_t)i, 4);
        assert_in_range(fold[i], 0, 3);
        used[fold[i]]++;
    }
    for (int f = 0; f < 4; f++) assert_true(used[f] > N / 8); /* the hash spreads rows */
    g_fold = fold;
    for (int i = 0; i < N; i++) {
        check_row(&s, ev, i, out + i * per_row, use_oof, NULL, 1);
        for (int k = 0; k < 3; k++) { /* recency: from the past pass */
            float a = out[i * per_row + k * per + per - 1],
                  b = past[i * per_row + k * per + per - 1];
            assert_true(isnan(a) ? isnan(b) : a == b);
        }
    }
    free(out);
    free(past);
}

static void test_decay_closed_form(void **st) {
    (void)st;
    fc_spec s = {.n_tasks = 1, .n_windows = 2, .window = {0, 10}, .prior_strength = 0};
    fc_counter *c;
    mr_err e;
    assert_int_equal(fc_create(&c, &s, &e), 0);
    fc_event a = {.t = 0, .user = 1, .item = 2, .y = {1}, .has = {1}}, b = a;
    b.t = 10;
    b.y[0] = 0;
    assert_int_equal(fc_add(c, &b, &e), 0); /* out of order: the later one first */
    assert_int_equal(fc_add(c, &a, &e), 0);
    float v[5]; /* (cnt, cnt, rate, rate, recency) */
    fc_read_key(c, FC_USER, 1, 20, v);
    double w0 = exp(-2.0), w1 = exp(-1.0); /* ages 20 and 10, constant 10 */
    assert_float_equal(v[0], log1p(2.0), 1e-6);
    assert_float_equal(v[1], log1p(w0 + w1), 1e-6);
    assert_float_equal(v[2], 0.5, 1e-6);            /* all time: 1 of 2 */
    assert_float_equal(v[3], w0 / (w0 + w1), 1e-6); /* decayed rate, a = 0 */
    assert_float_equal(v[4], log1p(10.0), 1e-6);    /* the later event was at 10 */
    fc_read_key(c, FC_ITEM, 99, 20, v);             /* never seen: prior (1+1)/(2+2), NaN recency */
    assert_float_equal(v[0], 0, 0);
    assert_float_equal(v[2], 0.5, 1e-6);
    assert_true(isnan(v[4]));
    fc_free(c);
}

static void test_recency_and_names(void **st) {
    (void)st;
    fc_spec s = {.n_tasks = 2, .n_windows = 1, .window = {0}, .prior_strength = 1, .use_cats = 1};
    fc_counter *c;
    mr_err e;
    assert_int_equal(fc_create(&c, &s, &e), 0);
    fc_event a = {.t = 100, .user = 5, .item = 6, .has = {1, 0}, .y = {1, 0}};
    assert_int_equal(fc_add(c, &a, &e), 0);
    float v[4];
    fc_read_key(c, FC_USER, 5, 150, v);
    assert_float_equal(v[3], log1p(50.0), 1e-6);
    fc_read_key(c, FC_USER, 5, 50, v); /* read before the event: 0, never negative */
    assert_float_equal(v[3], 0, 0);
    /* task 1 unlabelled: its rate is the prior (0+1)/(0+2) */
    fc_read_key(c, FC_USER, 5, 150, v);
    assert_float_equal(v[2], 0.5, 1e-6);
    fc_event noc = a; /* no categories: NaN in the (user, category) block */
    float row[12];
    fc_read_row(c, &noc, 150, row);
    for (int j = 8; j < 12; j++) assert_true(isnan(row[j]));
    const char *tasks[] = {"like", "love"}, *wins[] = {"all"};
    char name[64];
    const char *want[] = {"u_cnt_all",  "u_like_rate_all",  "u_love_rate_all",  "u_recency",
                          "i_cnt_all",  "i_like_rate_all",  "i_love_rate_all",  "i_recency",
                          "uc_cnt_all", "uc_like_rate_all", "uc_love_rate_all", "uc_recency"};
    for (int j = 0; j < 12; j++) {
        assert_int_equal(fc_value_name(&s, j, tasks, wins, name, sizeof name, &e), 0);
        assert_string_equal(name, want[j]);
    }
    assert_int_equal(fc_value_name(&s, 12, tasks, wins, name, sizeof name, &e), MR_EINVAL);
    assert_int_equal(fc_value_name(&s, 0, tasks, wins, name, 4, &e), MR_EINVAL);
    fc_free(c);
}

/* The (user, category) block of a row is fc_mean_blocks over its distinct
 * categories' blocks (fc_read_key, or fc_read_absent for a category
 * without events): what the server computes from the stored blocks. */
static void test_category_mean_from_blocks(void **st) {
    (void)st;
    fc_spec s = {.n_tasks = 1, .n_windows = 1, .window = {0}, .prior_strength = 2, .use_cats = 1};
    fc_counter *c;
    mr_err e;
    assert_int_equal(fc_create(&c, &s, &e), 0);
    uint64_t ca[2] = {11, 12}, cb[1] = {11};
    fc_event a = {.t = 10, .user = 1, .item = 2, .cats = ca, .n_cats = 2, .has = {1}, .y = {1}};
    fc_event b = {.t = 20, .user = 1, .item = 3, .cats = cb, .n_cats = 1, .has = {1}, .y = {0}};
    assert_int_equal(fc_add(c, &a, &e), 0);
    assert_int_equal(fc_add(c, &b, &e), 0);
    uint64_t cq[4] = {12, 99, 12, 11}; /* 99: no events of (1, 99); 12 repeated */
    fc_event q = {.t = 30, .user = 1, .item = 2, .cats = cq, .n_cats = 4};
    int per = fc_kind_values(&s);
    float row[9], blocks[3 * 3], mean[3], absent[3];
    assert_int_equal(per, 3);
    fc_read_row(c, &q, 40, row);
    fc_read_key(c, FC_USER_CAT, fc_user_cat_key(1, 12), 40, blocks);
    fc_read_absent(c, 40, blocks + per);
    fc_read_key(c, FC_USER_CAT, fc_user_cat_key(1, 11), 40, blocks + 2 * per);
    fc_mean_blocks(blocks, 3, per, mean);
    assert_memory_equal(mean, row + 2 * per, sizeof mean);
    /* the absent block: count 0, the prior rate, no recency */
    fc_read_absent(c, 40, absent);
    float unseen[3];
    fc_read_key(c, FC_USER_CAT, fc_user_cat_key(1, 99), 40, unseen);
    assert_true(absent[0] == 0 && absent[0] == unseen[0] && absent[1] == unseen[1]);
    assert_float_equal(absent[1], (1.0 + 1) / (2 + 2), 1e-7);
    assert_true(isnan(absent[2]) && isnan(unseen[2]));
    /* recency: the mean over the categories that have one (11 and 12) */
    assert_float_equal(mean[2], (log1p(30.0) + log1p(20.0)) / 2, 1e-6);
    /* no blocks, or only NaN: NaN */
    fc_mean_blocks(blocks, 0, per, mean);
    assert_true(isnan(mean[0]) && isnan(mean[1]) && isnan(mean[2]));
    fc_free(c);
}

static void test_no_recency(void **st) {
    (void)st;
    static fc_event ev[N];
    make_events(ev, N);
    fc_spec a = spec3(), b = spec3();
    a.window[1] = b.window[1] = 0;
    b.no_recency = 1;
    int pa = fc_kind_values(&a), pb = fc_kind_values(&b);
    assert_int_equal(pb, pa - 1);
    float *va = malloc(sizeof(float) * N * 3 * (size_t)pa),
          *vb = malloc(sizeof(float) * N * 3 * (size_t)pb);
    mr_err e;
    for (int mode = FC_PAST; mode <= FC_OOF;
         mode++) { /* the same values without the recency column */
        assert_int_equal(fc_train_values(&a, ev, N, mode, 3, 1, va, NULL, &e), 0);
        assert_int_equal(fc_train_values(&b, ev, N, mode, 3, 1, vb, NULL, &e), 0);
        for (int i = 0; i < N; i++)
            for (int k = 0; k < 3; k++)
                assert_memory_equal(va + (i * 3 + k) * pa, vb + (i * 3 + k) * pb,
                                    sizeof(float) * (size_t)pb);
    }
    const char *tasks[] = {"a", "b"}, *wins[] = {"all", "all2"};
    char name[64];
    assert_int_equal(fc_value_name(&b, pb, tasks, wins, name, sizeof name, &e), 0);
    assert_string_equal(name, "i_cnt_all");
    free(va);
    free(vb);
}

/* A slot kept outside the counter (the store's rows, server/counts.h):
 * fc_slot_init + fc_slot_add over a key's events in time order, read with
 * fc_slot_values and the counter's global sums, gives exactly the floats
 * fc_read_key gives, for users, items and (user, category) keys, at the
 * latest time and later (decayed windows); a NULL slot reads as absent. */
static void test_slot_outside_counter(void **st) {
    (void)st;
    fc_event ev[N];
    make_events(ev, N);
    fc_spec s = spec3();
    fc_counter *c = NULL;
    mr_err e;
    assert_int_equal(fc_create(&c, &s, &e), 0);
    int ord[N];
    for (int i = 0; i < N; i++) ord[i] = i;
    for (int i = 1; i < N; i++) /* insertion sort by time, stable */
        for (int j = i; j > 0 && ev[ord[j - 1]].t > ev[ord[j]].t; j--) {
            int x = ord[j];
            ord[j] = ord[j - 1], ord[j - 1] = x;
        }
    for (int i = 0; i < N; i++) assert_int_equal(fc_add(c, &ev[ord[i]], &e), 0);
    double gp[FC_MAX_TASKS], gl[FC_MAX_TASKS];
    fc_global(c, gp, gl);
    int per = fc_kind_values(&s), len = fc_slot_len(&s);
    assert_int_equal(len, 2 + 2 + 2 * 2 * T);
    double slot[2 + FC_MAX_WINDOWS + 2 * FC_MAX_WINDOWS * FC_MAX_TASKS];
    float want[FC_MAX_WINDOWS * (1 + FC_MAX_TASKS) + 1],
        got[FC_MAX_WINDOWS * (1 + FC_MAX_TASKS) + 1];
    int checked = 0;
    for (uint64_t key = 0; key < 1200; key++)
        for (int kind = 0; kind < FC_KINDS; kind++) {
            uint64_t user = key % 9, cat = 1000 + key % 3, k = key;
            if (kind == FC_USER_CAT) k = fc_user_cat_key(user, cat);
            else if ((kind == FC_USER && key >= 9) ||
                     (kind == FC_ITEM && (key < 100 || key >= 113)))
                continue;
            fc_slot_init(&s, slot);
            int hits = 0;
            for (int q = 0; q < N; q++) {
                const fc_event *x = &ev[ord[q]];
                int hit = kind == FC_USER ? x->user == key : kind == FC_ITEM ? x->item == key : 0;
                for (int j = 0; kind == FC_USER_CAT && x->user == user && j < x->n_cats && !hit;
                     j++)
                    hit = x->cats[j] == cat;
                if (hit) fc_slot_add(&s, slot, x), hits++;
            }
            const double *in = fc_slot_of(c, kind, k);
            assert_int_equal(in != NULL, hits > 0);
            for (int later = 0; later < 2; later++) {
                double now = 59 + 37 * later;
                fc_read_key(c, kind, k, now, want);
                fc_slot_values(&s, gp, gl, hits ? slot : NULL, now, got);
                assert_memory_equal(want, got, sizeof(float) * (size_t)per);
                if (in) assert_memory_equal(in, slot, sizeof(double) * (size_t)len);
                checked++;
            }
        }
    assert_true(checked > 2 * (9 + 13));
    fc_read_absent(c, 59, want);
    fc_slot_values(&s, gp, gl, NULL, 59, got);
    assert_memory_equal(want, got, sizeof(float) * (size_t)(per - 1)); /* recency NaN */
    assert_true(isnan(got[per - 1]));
    fc_free(c);
}

static void test_bad_args(void **st) {
    (void)st;
    fc_counter *c;
    mr_err e;
    fc_spec s = {.n_tasks = 0, .n_windows = 1};
    assert_int_equal(fc_create(&c, &s, &e), MR_EINVAL);
    s.n_tasks = 1;
    s.window[0] = -1;
    assert_int_equal(fc_create(&c, &s, &e), MR_EINVAL);
    s.window[0] = 5;
    fc_event ev = {.t = 1};
    float out[8];
    assert_int_equal(fc_train_values(&s, &ev, 1, FC_OOF, 5, 1, out, NULL, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "all-time"));
    s.window[0] = 0;
    assert_int_equal(fc_train_values(&s, &ev, 1, FC_OOF, 1, 1, out, NULL, &e), MR_EINVAL);
    assert_int_equal(fc_create(&c, &s, &e), 0);
    ev.t = NAN;
    assert_int_equal(fc_add(c, &ev, &e), MR_EINVAL);
    fc_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_past_matches_brute_force),
        cmocka_unit_test(test_own_label_not_used),
        cmocka_unit_test(test_oof_matches_brute_force),
        cmocka_unit_test(test_decay_closed_form),
        cmocka_unit_test(test_recency_and_names),
        cmocka_unit_test(test_no_recency),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_slot_outside_counter),
        cmocka_unit_test(test_category_mean_from_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
