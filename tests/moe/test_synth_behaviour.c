/* test_synth_behaviour.c — moe/synth_behaviour.c: the generator is
 * deterministic per seed, items cluster, sequences follow the users'
 * interests with drift, samples come after their history in time, labels
 * follow their click probabilities, and some clicks are explained only by
 * an interest absent from the last 50 events (the case long-history
 * features exist for). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include <cmocka.h>

#include "common/tensor.h"
#include "moe/synth_behaviour.h"

static synth_config small_cfg(uint64_t seed) {
    synth_config c;
    synth_config_init(&c);
    c.n_items = 2000;
    c.n_clusters = 40;
    c.d = 16;
    c.n_users = 200;
    c.seq_len = 400;
    c.samples_per_user = 30;
    c.seed = seed;
    return c;
}

static void test_deterministic_per_seed(void **st) {
    (void)st;
    synth_config c = small_cfg(5);
    synth_data *a, *b, *x;
    assert_int_equal(synth_create(&a, &c, NULL), 0);
    assert_int_equal(synth_create(&b, &c, NULL), 0);
    c.seed = 6;
    assert_int_equal(synth_create(&x, &c, NULL), 0);
    size_t nseq = (size_t)c.n_users * c.seq_len;
    assert_memory_equal(a->item_emb, b->item_emb, sizeof(float) * c.n_items * c.d);
    assert_memory_equal(a->seq, b->seq, sizeof(uint32_t) * nseq);
    assert_memory_equal(a->s_label, b->s_label, sizeof(float) * a->n_samples);
    assert_true(memcmp(a->seq, x->seq, sizeof(uint32_t) * nseq) != 0);
    synth_free(a);
    synth_free(b);
    synth_free(x);
}

static double cosf_(const float *a, const float *b, int d) {
    return mr_dot(a, b, d) / (mr_l2norm(a, d) * mr_l2norm(b, d));
}

static void test_items_cluster_and_sequences_focus(void **st) {
    (void)st;
    synth_config c = small_cfg(7);
    synth_data *s;
    assert_int_equal(synth_create(&s, &c, NULL), 0);
    double in = 0, out = 0;
    for (int i = 0; i < 500; i++) {
        int j = (i + c.n_clusters) % c.n_items, k = (i + 1) % c.n_items; /* same / other cluster */
        assert_int_equal(s->item_cluster[i], s->item_cluster[j]);
        in += cosf_(s->item_emb + i * c.d, s->item_emb + j * c.d, c.d) / 500;
        out += cosf_(s->item_emb + i * c.d, s->item_emb + k * c.d, c.d) / 500;
    }
    print_message("mean cosine in cluster %.3f, across %.3f\n", in, out);
    assert_true(in > 0.6 && fabs(out) < 0.15);
    /* A user's events concentrate on few clusters (interests + exploration),
     * and the early and late halves differ (drift). */
    int *cnt = calloc((size_t)c.n_clusters, sizeof(int));
    double top_share = 0, drift = 0;
    for (int u = 0; u < c.n_users; u++) {
        const uint32_t *q = s->seq + (size_t)u * c.seq_len;
        memset(cnt, 0, sizeof(int) * c.n_clusters);
        for (int j = 0; j < c.seq_len; j++) cnt[s->item_cluster[q[j]]]++;
        int top[4] = {0};
        for (int k = 0; k < c.n_clusters; k++)
            for (int t = 0; t < 4; t++)
                if (cnt[k] > top[t]) {
                    memmove(top + t + 1, top + t, sizeof(int) * (3 - t));
                    top[t] = cnt[k];
                    break;
                }
        top_share += (double)(top[0] + top[1] + top[2] + top[3]) / c.seq_len / c.n_users;
        int early = 0, late = 0, first = s->item_cluster[q[0]];
        for (int j = 0; j < c.seq_len / 10; j++) early += (int)s->item_cluster[q[j]] == first;
        for (int j = c.seq_len - c.seq_len / 10; j < c.seq_len; j++)
            late += (int)s->item_cluster[q[j]] == first;
        drift += (double)(early - late) / c.n_users;
    }
    print_message("top-4 cluster share %.3f, first-cluster early - late count %.2f\n", top_share,
                  drift);
    assert_true(top_share > 0.85);
    assert_true(drift > 5);
    free(cnt);
    synth_free(s);
}

static void test_samples_labels_and_old_interests(void **st) {
    (void)st;
    synth_config c = small_cfg(9);
    synth_data *s;
    assert_int_equal(synth_create(&s, &c, NULL), 0);
    assert_int_equal(s->n_samples, c.n_users * c.samples_per_user);
    double hi_n = 0, hi_pos = 0, lo_n = 0, lo_pos = 0;
    int old_only = 0;
    for (int x = 0; x < s->n_samples; x++) {
        int u = (int)s->s_user[x], p = (int)s->s_pos[x];
        assert_true(p >= (int)(c.min_pos_frac * c.seq_len) && p <= c.seq_len);
        if (x > 0 && (int)s->s_user[x - 1] == u) assert_true(s->s_pos[x - 1] <= s->s_pos[x]);
        assert_true(s->s_label[x] == 0.0f || s->s_label[x] == 1.0f);
        assert_true(synth_ts(p) - 1 > synth_ts(p - 1)); /* sample time: after its history */
        if (s->s_prob[x] > 0.5f) hi_n++, hi_pos += s->s_label[x];
        else lo_n++, lo_pos += s->s_label[x];
        if (s->s_prob[x] > 0.9f) { /* likely click: is its cluster only in the old history? */
            const uint32_t *q = s->seq + (size_t)u * c.seq_len;
            uint32_t k = s->item_cluster[s->s_item[x]];
            int recent = 0, old = 0;
            for (int j = p - 50; j < p; j++) recent += s->item_cluster[q[j]] == k;
            for (int j = 0; j < p - 50; j++) old += s->item_cluster[q[j]] == k;
            old_only += recent == 0 && old > 20;
        }
    }
    print_message("click rate %.3f (p > 0.5, n=%.0f) vs %.3f (p <= 0.5, n=%.0f); %d likely clicks "
                  "explained only by the long history\n",
                  hi_pos / hi_n, hi_n, lo_pos / lo_n, lo_n, old_only);
    assert_true(hi_n > 500 && lo_n > 500);
    assert_true(hi_pos / hi_n > 0.8 && lo_pos / lo_n < 0.2);
    assert_true(old_only > 50);
    synth_free(s);
}

static void test_bad_config(void **st) {
    (void)st;
    synth_config c = small_cfg(1);
    synth_data *s = (synth_data *)1;
    mr_err e;
    c.n_interests = 1;
    assert_int_equal(synth_create(&s, &c, &e), MR_EINVAL);
    assert_null(s);
    assert_non_null(strstr(e.msg, "interests"));
    c = small_cfg(1);
    c.samples_per_user = 5000;
    assert_int_equal(synth_create(&s, &c, &e), MR_EINVAL);
    c = small_cfg(1);
    c.old_frac = 0.9f;
    assert_int_equal(synth_create(&s, &c, &e), MR_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic_per_seed),
        cmocka_unit_test(test_items_cluster_and_sequences_focus),
        cmocka_unit_test(test_samples_labels_and_old_interests),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
