/* test_counts.c — server/counts.c and the label checks of
 * server/counts_online.c: the CountState round trip and its corrupt
 * forms; the entries served for a row with counters (names as the
 * training columns, values fc_slot_values at as_of, the (user, category)
 * blocks, the "@" block, "@category"), stored entries kept, a row without
 * counters served as stored; labels: unknown task, value not 0/1, a task
 * twice are INVALID_ARGUMENT; concurrent online appends of one item lose
 * no update (count_mu) and count the item's categories per user. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend_testutil.h"

#include "server/backend.h"
#include "server/counts.h"

static mr_counts state(void) {
    mr_counts c;
    memset(&c, 0, sizeof c);
    c.spec = (fc_spec){
        .n_tasks = 2, .n_windows = 2, .window = {0, 100}, .prior_strength = 4, .use_cats = 1};
    strcpy(c.task[0], "like");
    strcpy(c.task[1], "love");
    strcpy(c.window_name[0], "all");
    strcpy(c.window_name[1], "100s");
    strcpy(c.cat_col, "genre");
    c.pos[0] = 30, c.lab[0] = 90, c.pos[1] = 5, c.lab[1] = 60;
    c.as_of = 5000;
    return c;
}

static void test_state_round_trip(void **s) {
    (void)s;
    mr_counts c = state(), d;
    uint8_t *buf = NULL;
    size_t len = 0;
    mr_err e;
    assert_int_equal(mr_counts_pack(&c, &buf, &len, &e), 0);
    assert_int_equal(mr_counts_unpack(buf, len, &d, &e), 0);
    assert_memory_equal(&c, &d, sizeof c);
    assert_int_equal(mr_counts_task(&d, "love"), 1);
    assert_int_equal(mr_counts_task(&d, "buy"), -1);
    free(buf);
    c.spec.n_tasks = 0; /* packs, but is not a state */
    assert_int_equal(mr_counts_pack(&c, &buf, &len, &e), 0);
    assert_int_equal(mr_counts_unpack(buf, len, &d, &e), MR_ECORRUPT);
    free(buf);
    assert_int_equal(mr_counts_unpack("\xff\xff\xff", 3, &d, &e), MR_ECORRUPT);
}

static float find(const Moerec__V1__Features *f, const char *name, int *n) {
    *n = 0;
    float v = NAN;
    for (size_t i = 0; i < f->n_numeric; i++)
        if (!strcmp(f->numeric[i]->name, name)) v = f->numeric[i]->value, ++*n;
    return v;
}

static void test_expand(void **s) {
    (void)s;
    mr_counts c = state();
    double own[2 + 2 + 8], drama[2 + 2 + 8];
    fc_event ev = {.t = 4900, .y = {1, 0}, .has = {1, 1}};
    fc_slot_init(&c.spec, own);
    fc_slot_init(&c.spec, drama);
    fc_slot_add(&c.spec, own, &ev);
    ev.t = 4990;
    ev.has[1] = 0;
    fc_slot_add(&c.spec, own, &ev);
    fc_slot_add(&c.spec, drama, &ev);
    Moerec__V1__CountSlot s_own = MOEREC__V1__COUNT_SLOT__INIT, s_dr = MOEREC__V1__COUNT_SLOT__INIT;
    s_own.category = "";
    s_own.sums = own;
    s_own.n_sums = 12;
    s_dr.category = "Drama";
    s_dr.sums = drama;
    s_dr.n_sums = 12;
    Moerec__V1__CountSlot *slots[2] = {&s_dr, &s_own};
    Moerec__V1__NumericFeature kept = MOEREC__V1__NUMERIC_FEATURE__INIT, *kp[1] = {&kept};
    kept.name = "age";
    kept.value = 31;
    Moerec__V1__FeatureRow row = MOEREC__V1__FEATURE_ROW__INIT;
    row.counts = slots;
    row.n_counts = 2;
    row.numeric = kp;
    row.n_numeric = 1;
    mr_arena a;
    mr_arena_init(&a, 1 << 16, 1 << 22);
    mr_err e;
    Moerec__V1__Features *f = NULL;
    assert_int_equal(mr_counts_expand(&c, FC_USER, &row, &a, &f, &e), 0);
    int per = fc_kind_values(&c.spec), n;
    float want[16];
    assert_float_equal(find(f, "age", &n), 31, 0);
    fc_slot_values(&c.spec, c.pos, c.lab, own, c.as_of, want);
    const char *u_names[] = {"u_cnt_all",       "u_cnt_100s",       "u_like_rate_all",
                             "u_love_rate_all", "u_like_rate_100s", "u_love_rate_100s",
                             "u_recency"};
    for (int j = 0; j < per; j++) {
        float v = find(f, u_names[j], &n);
        assert_int_equal(n, 1);
        assert_memory_equal(&v, &want[j], sizeof v); /* the same float */
    }
    assert_float_equal(find(f, "u_recency", &n), log1pf(10), 1e-6);
    fc_slot_values(&c.spec, c.pos, c.lab, drama, c.as_of, want);
    float v = find(f, "uc_like_rate_100s@Drama", &n);
    assert_memory_equal(&v, &want[4], sizeof v);
    fc_slot_values(&c.spec, c.pos, c.lab, NULL, c.as_of, want);
    v = find(f, "uc_like_rate_all@", &n);
    assert_memory_equal(&v, &want[2], sizeof v);
    assert_float_equal(v, (30.0 + 1) / (90 + 2), 1e-6); /* the prior */
    find(f, "uc_recency@", &n);
    assert_int_equal(n, 0); /* NaN: left out */
    assert_int_equal(f->n_categorical, 1);
    assert_string_equal(f->categorical[0]->name, "@category");
    assert_string_equal(f->categorical[0]->values[0], "genre");
    /* an item row: the i_ block of its own slot */
    assert_int_equal(mr_counts_expand(&c, FC_ITEM, &row, &a, &f, &e), 0);
    fc_slot_values(&c.spec, c.pos, c.lab, own, c.as_of, want);
    v = find(f, "i_cnt_all", &n);
    assert_memory_equal(&v, &want[0], sizeof v);
    find(f, "u_cnt_all", &n);
    assert_int_equal(n, 0);
    /* without counters (an older row) or without a state: the stored entries */
    row.n_counts = 0;
    assert_int_equal(mr_counts_expand(&c, FC_USER, &row, &a, &f, &e), 0);
    assert_int_equal(f->n_numeric, 1);
    assert_int_equal(f->n_categorical, 0);
    row.n_counts = 2;
    assert_int_equal(mr_counts_expand(NULL, FC_USER, &row, &a, &f, &e), 0);
    assert_int_equal(f->n_numeric, 1);
    /* counters of another layout */
    s_own.n_sums = 6;
    assert_int_equal(mr_counts_expand(&c, FC_USER, &row, &a, &f, &e), MR_ECORRUPT);
    mr_arena_free(&a);
}

static void test_labels(void **s) {
    (void)s;
    mr_counts c = state();
    Moerec__V1__EventLabel l1 = MOEREC__V1__EVENT_LABEL__INIT, l2 = MOEREC__V1__EVENT_LABEL__INIT;
    Moerec__V1__EventLabel *lp[2] = {&l1, &l2};
    Moerec__V1__Event ev0 = MOEREC__V1__EVENT__INIT, ev1 = MOEREC__V1__EVENT__INIT;
    Moerec__V1__Event *evp[2] = {&ev0, &ev1};
    ev1.labels = lp;
    ev1.n_labels = 2;
    l1.task = "love";
    l1.value = 1;
    l2.task = "like";
    l2.value = 0;
    Moerec__V1__AppendEventsRequest r = MOEREC__V1__APPEND_EVENTS_REQUEST__INIT;
    r.events = evp;
    r.n_events = 2;
    mr_count_labels out[2];
    mr_err e;
    assert_int_equal(mr_counts_labels(&c, &r, out, &e), 0);
    assert_int_equal(out[0].any, 0);
    assert_int_equal(out[1].any, 1);
    assert_int_equal(out[1].has[0] + out[1].has[1], 2);
    assert_float_equal(out[1].y[1], 1, 0);
    assert_float_equal(out[1].y[0], 0, 0);
    l2.task = "buy";
    assert_int_equal(mr_counts_labels(&c, &r, out, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "events[1].labels[1]: unknown task 'buy'"));
    assert_int_equal(mr_counts_labels(NULL, &r, out, &e), 0); /* no state: not checked */
    l2.task = "like";
    l2.value = 0.5f;
    assert_int_equal(mr_counts_labels(NULL, &r, out, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "(0 or 1)"));
    l2.value = 1;
    l2.task = "love";
    assert_int_equal(mr_counts_labels(&c, &r, out, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "twice"));
    l2.task = "";
    assert_int_equal(mr_counts_labels(&c, &r, out, &e), MR_EINVAL);
}

enum { THREADS = 4, APPENDS = 40, PER = 3 };

typedef struct app_arg {
    mr_backend *be;
    int t, rc;
} app_arg;

/* Thread t: APPENDS appends of PER events of user 100 + t on item 7,
 * times distinct over all threads, like = 1 on every other event. */
static void *appender(void *p) {
    app_arg *x = p;
    mr_arena a;
    mr_arena_init(&a, 1 << 16, 1 << 24);
    for (int i = 0; i < APPENDS && !x->rc; i++) {
        behaviour_event ev[PER];
        mr_count_labels lab[PER];
        memset(lab, 0, sizeof lab);
        for (int k = 0; k < PER; k++) {
            int64_t s = 1000 + (int64_t)((i * PER + k) * THREADS + x->t);
            ev[k] = (behaviour_event){100 + (uint64_t)x->t, 7, s * 1000, 0};
            lab[k].has[0] = lab[k].any = 1;
            lab[k].y[0] = (float)(k % 2);
        }
        mr_err e;
        x->rc = mr_counts_append(x->be, ev, lab, PER, &a, &e);
        if (x->rc) fprintf(stderr, "append: %s\n", e.msg);
        mr_arena_reset(&a);
    }
    mr_arena_free(&a);
    return NULL;
}

static void test_concurrent_appends(void **s) {
    (void)s;
    char dir[64];
    mr_server_config cfg;
    backend_test_config(dir, &cfg);
    mr_backend *be;
    mr_err e;
    assert_int_equal(mr_backend_open(&be, &cfg, &e), MR_OK);
    mr_counts c;
    memset(&c, 0, sizeof c);
    c.spec = (fc_spec){.n_tasks = 1, .n_windows = 1, .prior_strength = 1, .use_cats = 1};
    strcpy(c.task[0], "like");
    strcpy(c.window_name[0], "all");
    strcpy(c.cat_col, "genre");
    uint8_t *buf;
    size_t len;
    assert_int_equal(mr_counts_pack(&c, &buf, &len, &e), 0);
    assert_int_equal(store_meta_put(be->st, MR_COUNTS_META, buf, len, &e), 0);
    free(buf);
    /* item 7's stored categories: genre = [a, b, a] (a counted once) */
    char *vals[3] = {"a", "b", "a"};
    Moerec__V1__CategoricalFeature cf = MOEREC__V1__CATEGORICAL_FEATURE__INIT, *cp[1] = {&cf};
    cf.name = "genre";
    cf.values = vals;
    cf.n_values = 3;
    Moerec__V1__Features f = MOEREC__V1__FEATURES__INIT;
    f.categorical = cp;
    f.n_categorical = 1;
    uint8_t row[256];
    size_t rl = moerec__v1__features__pack(&f, row);
    uint64_t item = 7;
    store_blob b = {row, rl};
    assert_int_equal(item_store_put(be->st, &item, 1, &b, &e), 0);
    pthread_t th[THREADS];
    app_arg arg[THREADS];
    for (int t = 0; t < THREADS; t++) {
        arg[t] = (app_arg){be, t, 0};
        assert_int_equal(pthread_create(&th[t], NULL, appender, &arg[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(arg[t].rc, 0);
    }
    const double total = THREADS * APPENDS * PER, per_user = APPENDS * PER;
    int found = 0;
    assert_int_equal(mr_counts_load(be->st, &c, &found, &e), 0);
    assert_true(found);
    assert_float_equal(c.lab[0], total, 0);
    assert_float_equal(c.pos[0], (double)THREADS * APPENDS, 0); /* k = 1 of each 3 */
    assert_float_equal(c.as_of, 1000 + total - 1, 0);
    void *ibuf = NULL;
    store_blob got;
    assert_int_equal(item_store_get(be->st, &item, 1, &got, &ibuf, &e), 0);
    Moerec__V1__FeatureRow *ir = moerec__v1__feature_row__unpack(NULL, got.len, got.data);
    assert_non_null(ir);
    assert_int_equal(ir->n_counts, 1);
    assert_int_equal(ir->n_categorical, 1); /* UpsertItems' entry kept */
    const double *sl = ir->counts[0]->sums; /* last, ref, count, positives, labelled */
    assert_float_equal(sl[2], total, 0);
    assert_float_equal(sl[3], (double)THREADS * APPENDS, 0);
    assert_float_equal(sl[4], total, 0);
    assert_float_equal(sl[0], 1000 + total - 1, 0);
    moerec__v1__feature_row__free_unpacked(ir, NULL);
    free(ibuf);
    for (int t = 0; t < THREADS; t++) {
        mr_user_state us = {0};
        assert_int_equal(user_state_get(be->beh, 100 + (uint64_t)t, &us, &e), 0);
        assert_int_equal(us.n_events, (uint32_t)per_user);
        Moerec__V1__FeatureRow *ur = moerec__v1__feature_row__unpack(NULL, us.profile_len,
                                                                     us.profile);
        assert_non_null(ur);
        assert_int_equal(ur->n_counts, 3); /* own, then a and b */
        assert_string_equal(ur->counts[0]->category, "");
        for (size_t k = 0; k < 3; k++) assert_float_equal(ur->counts[k]->sums[2], per_user, 0);
        moerec__v1__feature_row__free_unpacked(ur, NULL);
        user_state_release(&us);
    }
    mr_backend_close(be);
    backend_test_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_round_trip),
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_concurrent_appends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
