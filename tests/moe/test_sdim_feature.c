/* test_sdim_feature.c — moe/sdim_feature.c: the training-time replay and the
 * serving call give bit-identical long-interest vectors (whole sequence,
 * prefixes at sample times, batched or one-by-one pushes, strided output);
 * trims follow the store's l_max rule; with m/tau >= 16 the SDIM vector
 * approaches the oracle attention with weights (1 - arccos/pi)^tau; the
 * short-sequence attention reads exactly the last N events; the history
 * actions' block is the short attention's weights summed per action, and
 * the replay's ring keeps each event's action with its vector. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include <cmocka.h>

#include "common/rng.h"
#include "common/tensor.h"
#include "moe/attention.h"
#include "moe/sdim_feature.h"
#include "testmodel.h"

enum { D = 16, SEQ = 300, NC = 24 };

typedef struct fx {
    sdim_hasher *h;
    float seq[SEQ * D];
    float cand[NC * D];
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    assert_int_equal(sdim_hasher_create(&f->h, D, 48, 3, 7, NULL), 0);
    mr_rng g;
    mr_rng_seed(&g, 3);
    mr_rng_fill_normal(&g, f->seq, SEQ * D, 1);
    mr_rng_fill_normal(&g, f->cand, NC * D, 1);
    for (int j = 0; j < 6; j++) memcpy(f->cand + j * D, f->seq + (j * 37) * D, sizeof(float) * D);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    sdim_hasher_free(f->h);
    free(f);
    return 0;
}

/* Serving on a table built by hand with the hashing helpers (what the store
 * holds) == the training replay == the one-shot call, to the bit. */
static void test_train_equals_serve(void **state) {
    fx *f = *state;
    const sdim_layout *L = &f->h->layout;
    void *table = mr_floats_alloc(sdim_table_cells(L));
    uint32_t *sig = malloc(sizeof(uint32_t) * SEQ * L->nsig);
    assert_int_equal(sdim_signatures_batch(f->h, f->seq, SEQ, sig, NULL, NULL), 0);
    for (int j = 0; j < SEQ; j++)
        assert_int_equal(sdim_table_add(L, table, sig + j * L->nsig, f->seq + j * D, NULL), 0);
    for (sdim_pool pool = SDIM_POOL_SUM; pool <= SDIM_POOL_MEAN; pool++) {
        float a[NC * D], b[NC * D], c[NC * 40];
        assert_int_equal(sdim_feature_serve(f->h, table, f->cand, NC, pool, a, D, NULL), 0);
        assert_int_equal(
            sdim_feature_from_sequence(f->h, f->seq, SEQ, f->cand, NC, pool, b, D, NULL), 0);
        assert_memory_equal(a, b, sizeof a);
        sdim_seq *s;
        assert_int_equal(sdim_seq_create(&s, f->h, 1000, NULL), 0);
        for (int j = 0; j < SEQ; j += 7) /* uneven pushes */
            assert_int_equal(sdim_seq_push(s, f->seq + j * D, SEQ - j < 7 ? SEQ - j : 7, NULL), 0);
        assert_memory_equal(s->table, table, sdim_table_bytes(L));
        for (int i = 0; i < NC * 40; i++) c[i] = -7.0f;
        assert_int_equal(sdim_seq_feature(s, f->cand, NC, pool, c, 40, NULL), 0);
        for (int j = 0; j < NC; j++) {
            assert_memory_equal(c + j * 40, a + j * D, sizeof(float) * D);
            assert_true(c[j * 40 + D] == -7.0f); /* the stride's tail is untouched */
        }
        sdim_seq_free(s);
    }
    free(sig);
    mr_floats_free(table);
}

/* A sample at position p sees events [0, p) only: the replayed table at p
 * equals a rebuild of that prefix, and differs from the full history. */
static void test_prefix_features_no_leakage(void **state) {
    fx *f = *state;
    sdim_seq *s;
    assert_int_equal(sdim_seq_create(&s, f->h, 1000, NULL), 0);
    const int pos[] = {1, 50, 51, 200, SEQ};
    int at = 0, differs = 0;
    float full[NC * D];
    assert_int_equal(
        sdim_feature_from_sequence(f->h, f->seq, SEQ, f->cand, NC, SDIM_POOL_L2, full, D, NULL), 0);
    for (int t = 0; t < 5; t++) {
        assert_int_equal(sdim_seq_push(s, f->seq + at * D, pos[t] - at, NULL), 0);
        at = pos[t];
        float a[NC * D], b[NC * D];
        assert_int_equal(sdim_seq_feature(s, f->cand, NC, SDIM_POOL_L2, a, D, NULL), 0);
        assert_int_equal(
            sdim_feature_from_sequence(f->h, f->seq, at, f->cand, NC, SDIM_POOL_L2, b, D, NULL), 0);
        assert_memory_equal(a, b, sizeof a);
        if (at < SEQ && memcmp(a, full, sizeof a) != 0) differs++;
    }
    assert_int_equal(differs, 4);
    sdim_seq_free(s);
}

/* l_max = 40: after the trims the table holds exactly the last 40 events
 * (counts exact, sums within float drift), whatever the push sizes. */
static void test_trims_keep_last_lmax(void **state) {
    fx *f = *state;
    const sdim_layout *L = &f->h->layout;
    sdim_seq *s;
    assert_int_equal(sdim_seq_create(&s, f->h, 40, NULL), 0);
    const int steps[] = {1, 30, 25, 100, 3, 41, 100};
    int at = 0;
    for (int t = 0; t < 7; t++) {
        assert_int_equal(sdim_seq_push(s, f->seq + at * D, steps[t], NULL), 0);
        at += steps[t];
        sdim_seq *ref;
        int keep = at < 40 ? at : 40;
        assert_int_equal(s->n, keep);
        assert_int_equal(sdim_seq_create(&ref, f->h, 40, NULL), 0);
        assert_int_equal(sdim_seq_push(ref, f->seq + (at - keep) * D, keep, NULL), 0);
        for (int i = 0; i < L->nsig; i++)
            for (uint32_t b = 0; b < (uint32_t)L->nbuckets; b++) {
                assert_int_equal(sdim_table_count(L, s->table, i, b),
                                 sdim_table_count(L, ref->table, i, b));
                const float *x = sdim_table_sum_c(L, s->table, i, b),
                            *y = sdim_table_sum_c(L, ref->table, i, b);
                for (int c = 0; c < D; c++) assert_true(fabsf(x[c] - y[c]) < 1e-4f);
            }
        float rec[50 * D];
        assert_int_equal(sdim_seq_recent(s, 50, rec), keep);
        assert_memory_equal(rec, f->seq + (at - keep) * D, sizeof(float) * keep * D);
        sdim_seq_free(ref);
    }
    sdim_seq_free(s);
}

/* Oracle: E[SDIM sum-pooled vector] = sum_j (1 - theta_j/pi)^tau s_j over
 * the random projections. Averaged over hasher seeds at m/tau = 16 it is
 * within 5% (relative l2); one hasher's l2-pooled direction is within
 * cosine 0.9 of the oracle's normalised direction on average. */
static void test_oracle_weights(void **state) {
    fx *f = *state;
    enum { SEEDS = 400, TAU = 3, M = 48 };
    double relsum = 0, cossum = 0, cos1sum = 0;
    for (int q = 0; q < 6; q++) {
        const float *cq = f->cand + q * D;
        double o[D] = {0}, avg[D] = {0}, on = 0, ow = 0;
        double nq = mr_l2norm(cq, D);
        for (int j = 0; j < SEQ; j++) {
            const float *s = f->seq + j * D;
            double cs = mr_dot(cq, s, D) / (nq * mr_l2norm(s, D));
            cs = cs > 1 ? 1 : cs < -1 ? -1 : cs;
            double w = pow(1 - acos(cs) / 3.14159265358979323846, TAU);
            ow += w;
            for (int c = 0; c < D; c++) o[c] += w * s[c];
        }
        for (int c = 0; c < D; c++) on += o[c] * o[c];
        on = sqrt(on);
        assert_true(ow > 0);
        for (int seed = 0; seed < SEEDS; seed++) {
            sdim_hasher *h;
            assert_int_equal(sdim_hasher_create(&h, D, M, TAU, 1000 + seed, NULL), 0);
            assert_true(h->layout.nsig >= 16);
            float v[D], u[D];
            assert_int_equal(
                sdim_feature_from_sequence(h, f->seq, SEQ, cq, 1, SDIM_POOL_SUM, v, D, NULL), 0);
            assert_int_equal(
                sdim_feature_from_sequence(h, f->seq, SEQ, cq, 1, SDIM_POOL_L2, u, D, NULL), 0);
            double dot = 0, dot1 = 0;
            for (int c = 0; c < D; c++)
                avg[c] += v[c] / SEEDS, dot += u[c] * o[c], dot1 += v[c] * o[c];
            cossum += dot / (mr_l2norm(u, D) * on);
            cos1sum += dot1 / (mr_l2norm(v, D) * on);
            sdim_hasher_free(h);
        }
        double err = 0;
        for (int c = 0; c < D; c++) err += (avg[c] - o[c]) * (avg[c] - o[c]);
        double rel = sqrt(err) / on;
        print_message("candidate %d: |E[sdim] - oracle| / |oracle| = %.4f\n", q, rel);
        relsum += rel;
    }
    double mean_rel = relsum / 6, mean_cos = cossum / (6 * SEEDS),
           mean_cos1 = cos1sum / (6 * SEEDS);
    print_message("mean relative error %.4f; one hasher: mean cosine to the oracle %.4f (sum "
                  "pooling), %.4f (l2 pooling)\n",
                  mean_rel, mean_cos1, mean_cos);
    assert_true(mean_rel < 0.05);
    assert_true(mean_cos1 > 0.8 && mean_cos > 0.8);
}

/* More signatures, closer: one hasher with m/tau = 128 is nearer the oracle
 * direction than one with m/tau = 16 (sum pooling, averaged over seeds). */
static void test_oracle_more_signatures_closer(void **state) {
    fx *f = *state;
    enum { SEEDS = 20, TAU = 3 };
    const int ms[2] = {48, 384};
    double cs[2] = {0, 0};
    for (int t = 0; t < 2; t++)
        for (int seed = 0; seed < SEEDS; seed++) {
            sdim_hasher *h;
            assert_int_equal(sdim_hasher_create(&h, D, ms[t], TAU, 77 + seed, NULL), 0);
            for (int q = 0; q < 6; q++) {
                const float *cq = f->cand + q * D;
                double o[D] = {0}, nq = mr_l2norm(cq, D), dot = 0, on = 0;
                for (int j = 0; j < SEQ; j++) {
                    const float *s = f->seq + j * D;
                    double c = mr_dot(cq, s, D) / (nq * mr_l2norm(s, D));
                    double w = pow(1 - acos(c > 1    ? 1
                                            : c < -1 ? -1
                                                     : c) /
                                           3.14159265358979323846,
                                   TAU);
                    for (int k = 0; k < D; k++) o[k] += w * s[k];
                }
                float v[D];
                assert_int_equal(
                    sdim_feature_from_sequence(h, f->seq, SEQ, cq, 1, SDIM_POOL_SUM, v, D, NULL),
                    0);
                for (int k = 0; k < D; k++) dot += v[k] * o[k], on += o[k] * o[k];
                cs[t] += dot / (mr_l2norm(v, D) * sqrt(on)) / (6 * SEEDS);
            }
            sdim_hasher_free(h);
        }
    print_message("mean cosine to the oracle: %.4f at m/tau = 16, %.4f at m/tau = 128\n", cs[0],
                  cs[1]);
    assert_true(cs[1] > cs[0]);
    assert_true(cs[1] > 0.95);
}

static void test_short_attention_last_n(void **state) {
    fx *f = *state;
    enum { N = 50 };
    sdim_seq *s;
    assert_int_equal(sdim_seq_create(&s, f->h, 1000, NULL), 0);
    assert_int_equal(sdim_seq_push(s, f->seq, SEQ, NULL), 0);
    float rec[N * D], a[NC * 20], b[NC * D], p[NC * N];
    int k = sdim_seq_recent(s, N, rec);
    assert_int_equal(k, N);
    assert_int_equal(sdim_feature_short(rec, k, f->cand, NC, D, a, 20, NULL, NULL), 0);
    moe_attn_forward(b, p, f->cand, f->seq + (SEQ - N) * D, f->seq + (SEQ - N) * D, NC, N, D, 0.0f);
    for (int j = 0; j < NC; j++) assert_memory_equal(a + j * 20, b + j * D, sizeof(float) * D);
    assert_int_equal(sdim_feature_short(rec, 0, f->cand, NC, D, a, 20, NULL, NULL), 0);
    for (int j = 0; j < NC; j++)
        for (int c = 0; c < D; c++) assert_true(a[j * 20 + c] == 0.0f);
    sdim_seq_free(s);
}

static void test_empty_and_errors(void **state) {
    fx *f = *state;
    float out[NC * D];
    for (int i = 0; i < NC * D; i++) out[i] = 5.0f;
    assert_int_equal(sdim_feature_serve(f->h, NULL, f->cand, NC, SDIM_POOL_L2, out, D, NULL), 0);
    for (int i = 0; i < NC * D; i++) assert_true(out[i] == 0.0f);
    mr_err e;
    assert_int_equal(sdim_feature_serve(f->h, NULL, f->cand, NC, SDIM_POOL_L2, out, D - 1, &e),
                     MR_EINVAL);
    assert_non_null(strstr(e.msg, "stride"));
    sdim_seq *s = NULL;
    assert_int_equal(sdim_seq_create(&s, f->h, 0, &e), MR_EINVAL);
    assert_null(s);
    assert_int_equal(sdim_feature_short(f->seq, -1, f->cand, 1, D, out, D, NULL, &e), MR_EINVAL);
}

/* A candidate with no item vector reaches the serving hook as a zero row
 * (emb_store_get zeroes missing rows); its block must be zeros, what
 * sdim_join gives such a candidate at training time, and the other rows
 * must not change. */
static void test_zero_candidate_gets_zero_block(void **state) {
    fx *f = *state;
    enum { K = 20 };
    sdim_seq *sq;
    assert_int_equal(sdim_seq_create(&sq, f->h, 1000, NULL), 0);
    assert_int_equal(sdim_seq_push(sq, f->seq, SEQ, NULL), 0);
    float rec[K * D], c2[2 * D], want[2 * 2 * D], got[2 * 2 * D];
    int k = sdim_seq_recent(sq, K, rec);
    assert_int_equal(sdim_feature_extra(f->h, sq->table, rec, k, f->cand, 2, want, 2 * D, NULL), 0);
    memset(c2, 0, sizeof c2);
    memcpy(c2 + D, f->cand + D, sizeof(float) * D); /* row 0 missing, row 1 a real item */
    assert_int_equal(sdim_feature_extra(f->h, sq->table, rec, k, c2, 2, got, 2 * D, NULL), 0);
    for (int c = 0; c < 2 * D; c++) assert_true(got[c] == 0.0f);
    assert_memory_equal(got + 2 * D, want + 2 * D, sizeof(float) * 2 * D);
    sdim_seq_free(sq);
}

/* tau = 0 (one signature, one bucket): SDIM with mean pooling is exactly
 * mean pooling over the whole sequence. */
static void test_tau0_is_mean_pooling(void **state) {
    fx *f = *state;
    sdim_hasher *h;
    assert_int_equal(sdim_hasher_create(&h, D, 0, 0, 1, NULL), 0);
    float a[NC * D], m[D];
    const uint32_t off[2] = {0, SEQ};
    assert_int_equal(
        sdim_feature_from_sequence(h, f->seq, SEQ, f->cand, NC, SDIM_POOL_MEAN, a, D, NULL), 0);
    moe_meanpool_forward(m, f->seq, off, 1, D);
    for (int j = 0; j < NC; j++)
        for (int c = 0; c < D; c++) assert_true(fabsf(a[j * D + c] - m[c]) < 1e-5f);
    sdim_hasher_free(h);
}

/* The serving hook: the scorer's extra block gets [long | short]; scores
 * equal those from setting the same rows by hand, change when the user's
 * table changes, and a model with another extra_dim is refused. */
static void test_scorer_extra_block(void **state) {
    fx *f = *state;
    enum { N = NC, K = 20 };
    char fmt[4096], js[4096];
    const char *p = strstr(k_test_model_fmt, "\"extra_dim\":2");
    assert_non_null(p);
    snprintf(fmt, sizeof fmt, "%.*s\"extra_dim\":32%s", (int)(p - k_test_model_fmt),
             k_test_model_fmt, p + strlen("\"extra_dim\":2")); /* 2 d for d = 16 */
    snprintf(js, sizeof js, fmt, "{\"type\":\"mmoe\",\"experts\":3}");
    moe_model *m, *m2;
    mr_err e;
    if (moe_model_from_json(&m, js, 5, &e)) fail_msg("model: %s", e.msg);
    snprintf(js, sizeof js, k_test_model_fmt, "{\"type\":\"mmoe\",\"experts\":3}");
    assert_int_equal(moe_model_from_json(&m2, js, 5, &e), 0);
    moe_scorer *s;
    assert_int_equal(moe_scorer_create(&s, m, &e), 0);
    sdim_seq *sq;
    assert_int_equal(sdim_seq_create(&sq, f->h, 1000, NULL), 0);
    assert_int_equal(sdim_seq_push(sq, f->seq, SEQ - 1, NULL), 0);
    float rec[K * D], x[N * 2 * D], sc1[N], sc2[N], sc3[N];
    int k = sdim_seq_recent(sq, K, rec);
    assert_int_equal(sdim_feature_extra(f->h, sq->table, rec, k, f->cand, N, x, 2 * D, NULL), 0);
    for (int j = 0; j < N; j++) { /* the two halves are the two features */
        float a[D], b[D], pr[K];
        assert_int_equal(sdim_seq_feature(sq, f->cand + j * D, 1, SDIM_POOL_L2, a, D, NULL), 0);
        assert_int_equal(sdim_feature_short(rec, k, f->cand + j * D, 1, D, b, D, pr, NULL), 0);
        assert_memory_equal(x + j * 2 * D, a, sizeof a);
        for (int c = 0; c < D; c++) assert_true(fabsf(x[j * 2 * D + D + c] - b[c]) < 1e-6f);
    }
    assert_int_equal(moe_scorer_begin(s, N, &e), 0);
    assert_int_equal(sdim_feature_to_scorer(s, m, f->h, sq->table, rec, k, f->cand, N, &e), 0);
    assert_int_equal(moe_scorer_run(s, NULL, sc1, &e), 0);
    assert_int_equal(moe_scorer_begin(s, N, &e), 0);
    for (int j = 0; j < N; j++)
        assert_int_equal(moe_scorer_set_extra(s, j, x + j * 2 * D, 2 * D, &e), 0);
    assert_int_equal(moe_scorer_run(s, NULL, sc2, &e), 0);
    assert_memory_equal(sc1, sc2, sizeof sc1);
    /* One more event in the user's history: the long block and the score move. */
    assert_int_equal(sdim_seq_push(sq, f->seq + (SEQ - 1) * D, 1, NULL), 0);
    k = sdim_seq_recent(sq, K, rec);
    assert_int_equal(moe_scorer_begin(s, N, &e), 0);
    assert_int_equal(sdim_feature_to_scorer(s, m, f->h, sq->table, rec, k, f->cand, N, &e), 0);
    assert_int_equal(moe_scorer_run(s, NULL, sc3, &e), 0);
    int moved = 0;
    for (int j = 0; j < N; j++) moved += sc3[j] != sc1[j];
    assert_true(moved > 0);
    assert_int_equal(sdim_feature_to_scorer(s, m2, f->h, sq->table, rec, k, f->cand, N, &e),
                     MR_EINVAL);
    assert_non_null(strstr(e.msg, "extra_dim"));
    sdim_seq_free(sq);
    moe_scorer_free(s);
    moe_model_free(m);
    moe_model_free(m2);
}

/* History actions: the block's tail is, per action, the short attention's
 * weights summed over the recent events with that action (checked against
 * the weights sdim_feature_short returns); the ring returns each event's
 * action with its vector after trims; no events or a zero candidate give
 * zeros; ids are 0 only for "" and the model's list maps through them. */
static void test_history_actions(void **state) {
    fx *f = *state;
    enum { K = 12, NA = 3, W = 2 * D + NA, LMAX = 40 };
    uint32_t acts[NA] = {sdim_action_id("like", 4), sdim_action_id("love", 4),
                         sdim_action_id("skip", 4)};
    assert_int_equal(sdim_action_id("", 0), 0u);
    assert_true(acts[0] != 0 && acts[0] != acts[1] && acts[1] != acts[2]);
    uint32_t ev_act[SEQ];
    for (int i = 0; i < SEQ; i++) ev_act[i] = i % 4 == 3 ? 0u : acts[i % 4]; /* every 4th: none */
    sdim_seq *sq;
    assert_int_equal(sdim_seq_create(&sq, f->h, LMAX, NULL), 0);
    assert_int_equal(sdim_seq_push_act(sq, f->seq, ev_act, 100, NULL), 0); /* trims 60 */
    assert_int_equal(sdim_seq_push_act(sq, f->seq + 100 * D, ev_act + 100, 7, NULL), 0);
    float rec[K * D], x[NC * W], plain[NC * 2 * D];
    uint32_t ract[K];
    int k = sdim_seq_recent_act(sq, K, rec, ract);
    assert_int_equal(k, K);
    for (int i = 0; i < K; i++) { /* the last K of the 107 events pushed, oldest first */
        assert_memory_equal(rec + i * D, f->seq + (107 - K + i) * D, sizeof(float) * D);
        assert_int_equal(ract[i], ev_act[107 - K + i]);
    }
    assert_int_equal(
        sdim_feature_extra_act(f->h, sq->table, rec, ract, k, acts, NA, f->cand, NC, x, W, NULL),
        0);
    assert_int_equal(sdim_feature_extra(f->h, sq->table, rec, k, f->cand, NC, plain, 2 * D, NULL),
                     0);
    for (int j = 0; j < NC; j++) {
        float o[D], p[K], share = 0;
        assert_memory_equal(x + j * W, plain + j * 2 * D, sizeof(float) * 2 * D);
        assert_int_equal(sdim_feature_short(rec, k, f->cand + j * D, 1, D, o, D, p, NULL), 0);
        for (int a = 0; a < NA; a++) {
            float want = 0;
            for (int i = 0; i < K; i++) want += ract[i] == acts[a] ? p[i] : 0.0f;
            assert_true(fabsf(x[j * W + 2 * D + a] - want) < 1e-6f);
            share += x[j * W + 2 * D + a];
        }
        assert_true(share > 0.0f &&
                    share < 1.0f + 1e-5f); /* the events without one hold the rest */
    }
    /* no recent events: zeros; a zero candidate: a zero block; too short a stride: refused */
    float z[W], zc[D];
    assert_int_equal(
        sdim_feature_extra_act(f->h, sq->table, rec, ract, 0, acts, NA, f->cand, 1, z, W, NULL), 0);
    for (int a = 0; a < NA; a++) assert_true(z[2 * D + a] == 0.0f);
    memset(zc, 0, sizeof zc);
    assert_int_equal(
        sdim_feature_extra_act(f->h, sq->table, rec, ract, k, acts, NA, zc, 1, z, W, NULL), 0);
    for (int c = 0; c < W; c++) assert_true(z[c] == 0.0f);
    mr_err e;
    assert_int_equal(
        sdim_feature_extra_act(f->h, sq->table, rec, ract, k, acts, NA, f->cand, 1, z, W - 1, &e),
        MR_EINVAL);
    /* a model's list: model.json features.history_actions */
    char fmt[4096], js[4096];
    const char *q = strstr(k_test_model_fmt, "\"extra_dim\":2");
    assert_non_null(q);
    snprintf(fmt, sizeof fmt,
             "%.*s\"extra_dim\":35,\"history_actions\":[\"like\",\"love\",\"skip\"]%s",
             (int)(q - k_test_model_fmt), k_test_model_fmt, q + strlen("\"extra_dim\":2"));
    snprintf(js, sizeof js, fmt, "{\"type\":\"mmoe\",\"experts\":3}");
    moe_model *m;
    if (moe_model_from_json(&m, js, 5, &e)) fail_msg("model: %s", e.msg);
    uint32_t got[MOE_MAX_HIST_ACTIONS];
    assert_int_equal(sdim_model_actions(m, got), NA);
    assert_memory_equal(got, acts, sizeof acts);
    /* the scorer hook sets exactly these rows */
    moe_scorer *s;
    float sc1[NC], sc2[NC];
    assert_int_equal(moe_scorer_create(&s, m, &e), 0);
    assert_int_equal(moe_scorer_begin(s, NC, &e), 0);
    assert_int_equal(
        sdim_feature_to_scorer_act(s, m, f->h, sq->table, rec, ract, k, f->cand, NC, &e), 0);
    assert_int_equal(moe_scorer_run(s, NULL, sc1, &e), 0);
    assert_int_equal(moe_scorer_begin(s, NC, &e), 0);
    for (int j = 0; j < NC; j++) assert_int_equal(moe_scorer_set_extra(s, j, x + j * W, W, &e), 0);
    assert_int_equal(moe_scorer_run(s, NULL, sc2, &e), 0);
    assert_memory_equal(sc1, sc2, sizeof sc1);
    /* other actions on the same events change the block, so the scores */
    uint32_t ract2[K];
    for (int i = 0; i < K; i++) ract2[i] = ract[(i + 1) % K];
    assert_int_equal(moe_scorer_begin(s, NC, &e), 0);
    assert_int_equal(
        sdim_feature_to_scorer_act(s, m, f->h, sq->table, rec, ract2, k, f->cand, NC, &e), 0);
    assert_int_equal(moe_scorer_run(s, NULL, sc2, &e), 0);
    int moved = 0;
    for (int j = 0; j < NC; j++) moved += sc1[j] != sc2[j];
    assert_true(moved > 0);
    /* a block for another item dim is refused, naming both sizes */
    sdim_hasher *h8;
    assert_int_equal(sdim_hasher_create(&h8, 8, 48, 3, 7, NULL), 0);
    assert_int_equal(moe_scorer_begin(s, NC, &e), 0);
    assert_int_equal(sdim_feature_to_scorer_act(s, m, h8, NULL, rec, ract, 0, f->cand, NC, &e),
                     MR_EINVAL);
    assert_non_null(strstr(e.msg, "history actions"));
    sdim_hasher_free(h8);
    moe_scorer_free(s);
    moe_model_free(m);
    sdim_seq_free(sq);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_equals_serve),
        cmocka_unit_test(test_history_actions),
        cmocka_unit_test(test_prefix_features_no_leakage),
        cmocka_unit_test(test_trims_keep_last_lmax),
        cmocka_unit_test(test_oracle_weights),
        cmocka_unit_test(test_oracle_more_signatures_closer),
        cmocka_unit_test(test_short_attention_last_n),
        cmocka_unit_test(test_empty_and_errors),
        cmocka_unit_test(test_zero_candidate_gets_zero_block),
        cmocka_unit_test(test_tau0_is_mean_pooling),
        cmocka_unit_test(test_scorer_extra_block),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
