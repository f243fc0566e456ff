/* test_counts.c — server/counts.c and the label checks of
 * server/counts_online.c: the CountState round trip and its corrupt
 * forms; the entries served for a row with counters (names as the
 * training columns, values fc_slot_values at as_of, the (user, category)
 * blocks, the "@" block, "@category"), stored entries kept, a row without
 * counters served as stored; labels: unknown task, value not 0/1, a task
 * twice are INVALID_ARGUMENT. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_round_trip),
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
