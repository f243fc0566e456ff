/* test_sdim_serving.c — the SDIM serving path end to end on a real RocksDB
 * store (index/store/behaviour.h) and the ranker's feature code (moe/
 * sdim_feature.h): the long-interest vectors computed from the bucket table
 * the store serves equal, to the bit, the training-time replay of the same
 * events; an appended event changes the table and the next score without
 * any rebuild, and exactly as a rebuild from the events would; with l_max
 * trims the store and the replay still agree bit for bit, and a rebuild
 * agrees to float rounding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/rng.h"
#include "common/tensor.h"
#include "index/store/behaviour.h"
#include "moe/layers.h"
#include "moe/sdim_feature.h"
#include "tests/index/store/store_testutil.h"

enum { D = 16, NITEMS = 300, NC = 12, H = 8, USER = 42, OTHER = 43 };

typedef struct fx {
    char dir[256];
    mr_store *st;
    mr_behaviour *b;
    float emb[NITEMS * D];                 /* (NITEMS, D) item embeddings, as in the store */
    float w1[H * 3 * D], b1[H], w2[H], b2; /* the toy ranker */
    uint64_t cand_items[NC];
    float cand[NC * D];
    int64_t ts; /* next event time */
} fx;

static fx *open_fx(int l_max) {
    fx *f = calloc(1, sizeof *f);
    assert_non_null(store_test_tmpdir(f->dir, sizeof f->dir, "sdimserve"));
    store_config c;
    store_config_init(&c);
    c.cache_bytes = 1 << 20;
    assert_int_equal(store_open(&f->st, f->dir, &c, NULL), 0);
    assert_int_equal(emb_table_create(f->st, "items", D, EMB_FP32, 0, NULL), 0);
    mr_rng g;
    mr_rng_seed(&g, 21);
    mr_rng_fill_normal(&g, f->emb, NITEMS * D, 1.0f);
    uint64_t ids[NITEMS];
    for (int i = 0; i < NITEMS; i++) ids[i] = (uint64_t)i;
    mr_emb_table *t = emb_store_table(f->st, "items", NULL);
    assert_int_equal(emb_store_put(f->st, t, ids, NITEMS, f->emb, NITEMS * D, NULL), 0);
    behaviour_config bc;
    behaviour_config_init(&bc, "items");
    bc.l_max = l_max;
    bc.m = 48;
    bc.tau = 3;
    bc.seed = 5;
    mr_err e;
    if (behaviour_open(&f->b, f->st, &bc, &e)) fail_msg("behaviour_open: %s", e.msg);
    mr_rng_fill_normal(&g, f->w1, H * 3 * D, 0.3f);
    mr_rng_fill_normal(&g, f->b1, H, 0.1f);
    mr_rng_fill_normal(&g, f->w2, H, 0.5f);
    for (int j = 0; j < NC; j++) {
        f->cand_items[j] = (uint64_t)(j * 23 % NITEMS);
        memcpy(f->cand + j * D, f->emb + f->cand_items[j] * D, sizeof(float) * D);
    }
    f->ts = 1700000000000LL;
    return f;
}

static void close_fx(fx *f) {
    behaviour_close(f->b);
    store_close(f->st);
    store_test_rmrf(f->dir);
    free(f);
}

/* Append items[0..n) for user (one batch, increasing times), with one event
 * of another user in the same batch; mirror the user's part into s. */
static void append(fx *f, sdim_seq *s, uint64_t user, const uint64_t *items, int n) {
    behaviour_event ev[64];
    float x[64 * D];
    assert_true(n < 64);
    for (int i = 0; i < n; i++) {
        ev[i] = (behaviour_event){.user = user, .item = items[i], .ts_ms = f->ts++, .action = 1};
        memcpy(x + i * D, f->emb + items[i] * D, sizeof(float) * D);
    }
    ev[n] = (behaviour_event){.user = OTHER, .item = items[0], .ts_ms = f->ts++, .action = 1};
    mr_err e;
    if (behaviour_append(f->b, ev, (size_t)n + 1, &e)) fail_msg("append: %s", e.msg);
    if (s) assert_int_equal(sdim_seq_push(s, x, n, NULL), 0);
}

/* Scores of the candidates: sigmoid(w2 . relu(W1 [q, u, q*u] + b1) + b2),
 * u the SDIM long interest — a toy stand-in for the ranker's input. */
static void score(const fx *f, const float *u, float *out) {
    float in[NC * 3 * D], h[NC * H];
    for (int j = 0; j < NC; j++)
        for (int c = 0; c < D; c++) {
            float q = f->cand[j * D + c], v = u[j * D + c];
            in[j * 3 * D + c] = q, in[j * 3 * D + D + c] = v, in[j * 3 * D + 2 * D + c] = q * v;
        }
    moe_linear_forward(h, in, f->w1, f->b1, NC, 3 * D, H);
    moe_relu_forward(h, h, NC * H);
    for (int j = 0; j < NC; j++) out[j] = moe_sigmoidf(mr_dot(h + j * H, f->w2, H) + f->b2);
}

/* The serving call: one user_state_get, one feature batch, the ranker. */
static void serve(fx *f, uint64_t user, float *table_copy, float *u, float *sc) {
    mr_user_state us;
    mr_err e;
    if (user_state_get(f->b, user, &us, &e)) fail_msg("user_state_get: %s", e.msg);
    assert_non_null(us.table);
    const sdim_hasher *h = behaviour_hasher(f->b);
    assert_int_equal(sdim_feature_serve(h, us.table, f->cand, NC, SDIM_POOL_L2, u, D, NULL), 0);
    score(f, u, sc);
    if (table_copy) memcpy(table_copy, us.table, sdim_table_bytes(behaviour_layout(f->b)));
    user_state_release(&us);
}

static void test_append_then_score_equals_replay_and_rebuild(void **st) {
    (void)st;
    fx *f = open_fx(1000);
    const sdim_hasher *h = behaviour_hasher(f->b);
    const size_t tb = sdim_table_bytes(&h->layout);
    sdim_seq *s;
    assert_int_equal(sdim_seq_create(&s, h, 1000, NULL), 0);
    mr_rng g;
    mr_rng_seed(&g, 8);
    for (int batch = 0; batch < 6; batch++) {
        uint64_t items[20];
        for (int i = 0; i < 20; i++) items[i] = 1 + mr_rng_below(&g, NITEMS - 1);
        append(f, s, USER, items, 20);
    }
    float *t1 = mr_floats_alloc(tb / 4), *t2 = mr_floats_alloc(tb / 4),
          *t3 = mr_floats_alloc(tb / 4);
    float u1[NC * D], s1[NC], u2[NC * D], s2[NC], u3[NC * D], s3[NC], ur[NC * D], sr[NC];
    serve(f, USER, t1, u1, s1);
    /* Training replay == serving, to the bit. */
    assert_memory_equal(s->table, t1, tb);
    assert_int_equal(sdim_seq_feature(s, f->cand, NC, SDIM_POOL_L2, ur, D, NULL), 0);
    score(f, ur, sr);
    assert_memory_equal(ur, u1, sizeof u1);
    assert_memory_equal(sr, s1, sizeof s1);

    /* One new event (the item of candidate 0): the next call sees it. */
    uint64_t one = f->cand_items[0];
    append(f, s, USER, &one, 1);
    serve(f, USER, t2, u2, s2);
    assert_true(memcmp(t1, t2, tb) != 0);
    assert_true(s2[0] != s1[0]);
    assert_memory_equal(s->table, t2, tb); /* replay still equal */
    int changed = 0;
    for (int j = 0; j < NC; j++) changed += s2[j] != s1[j];
    print_message(
        "one appended event changed %d of %d candidate scores (candidate 0: %.6f -> %.6f)\n",
        changed, NC, s1[0], s2[0]);

    /* A rebuild from the stored events gives the same table and scores. */
    uint64_t user = USER;
    mr_err e;
    if (behaviour_rebuild(f->b, &user, 1, &e)) fail_msg("rebuild: %s", e.msg);
    serve(f, USER, t3, u3, s3);
    assert_memory_equal(t3, t2, tb);
    assert_memory_equal(u3, u2, sizeof u2);
    assert_memory_equal(s3, s2, sizeof s2);
    mr_floats_free(t1);
    mr_floats_free(t2);
    mr_floats_free(t3);
    sdim_seq_free(s);
    close_fx(f);
}

static void test_trims_replay_bit_exact_rebuild_close(void **st) {
    (void)st;
    enum { LMAX = 40 };
    fx *f = open_fx(LMAX);
    const sdim_hasher *h = behaviour_hasher(f->b);
    const sdim_layout *L = &h->layout;
    const size_t tb = sdim_table_bytes(L);
    sdim_seq *s;
    assert_int_equal(sdim_seq_create(&s, h, LMAX, NULL), 0);
    mr_rng g;
    mr_rng_seed(&g, 9);
    const int sizes[] = {1, 30, 1, 1, 25, 3, 50, 1, 7, 33, 1, 1};
    float *t = mr_floats_alloc(tb / 4), u[NC * D], sc[NC], ur[NC * D];
    for (int k = 0; k < 12; k++) {
        uint64_t items[64];
        for (int i = 0; i < sizes[k]; i++) items[i] = mr_rng_below(&g, NITEMS);
        append(f, s, USER, items, sizes[k]);
        serve(f, USER, t, u, sc);
        assert_memory_equal(s->table, t, tb);
        assert_int_equal(sdim_seq_feature(s, f->cand, NC, SDIM_POOL_L2, ur, D, NULL), 0);
        assert_memory_equal(ur, u, sizeof u);
    }
    /* Rebuild: sums in another order after the subtractions — equal counts,
     * sums and scores within rounding. */
    uint64_t user = USER;
    assert_int_equal(behaviour_rebuild(f->b, &user, 1, NULL), 0);
    float *t2 = mr_floats_alloc(tb / 4), u2[NC * D], sc2[NC];
    serve(f, USER, t2, u2, sc2);
    double worst = 0;
    for (int i = 0; i < L->nsig; i++)
        for (uint32_t bk = 0; bk < (uint32_t)L->nbuckets; bk++) {
            assert_int_equal(sdim_table_count(L, t, i, bk), sdim_table_count(L, t2, i, bk));
            const float *x = sdim_table_sum_c(L, t, i, bk), *y = sdim_table_sum_c(L, t2, i, bk);
            for (int c = 0; c < D; c++) worst = fmax(worst, fabs(x[c] - y[c]));
        }
    for (int j = 0; j < NC; j++) assert_true(fabsf(sc[j] - sc2[j]) < 1e-5f);
    print_message("l_max %d: store == replay bit-exact; rebuild within %.2e on bucket sums\n", LMAX,
                  worst);
    assert_true(worst < 1e-4);
    mr_floats_free(t);
    mr_floats_free(t2);
    sdim_seq_free(s);
    close_fx(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_then_score_equals_replay_and_rebuild),
        cmocka_unit_test(test_trims_replay_bit_exact_rebuild_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
