/* synth_behaviour.c — seeded generator of long behaviour sequences with
 * clustered items, drifting user interests and clicks that depend on old
 * interests too (see synth_behaviour.h for the model).
 *
 * Memory is n_users * seq_len item ids (4 bytes each): 1,000 users at
 * L = 10,000 is 40 MB. Generation is O(n_users * seq_len) with a handful of
 * RNG draws per event; the only O(d) work is per item and per sample.
 */
#include "moe/synth_behaviour.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "common/tensor.h"

void synth_config_init(synth_config *c) {
    memset(c, 0, sizeof *c);
    c->n_items = 20000;
    c->n_clusters = 200;
    c->d = 32;
    c->n_users = 1000;
    c->seq_len = 1000;
    c->n_interests = 4;
    c->samples_per_user = 20;
    c->noise = 0.6f;
    c->explore = 0.1f;
    c->old_frac = 0.3f;
    c->min_pos_frac = 0.6f;
    c->sharp = 8.0f;
    c->seed = 1;
}

int64_t synth_ts(long j) { return 1700000000000LL + (int64_t)j * 60000; }

void synth_free(synth_data *s) {
    if (!s) return;
    mr_floats_free(s->item_emb);
    free(s->item_cluster);
    free(s->seq);
    free(s->s_user);
    free(s->s_item);
    free(s->s_pos);
    free(s->s_label);
    free(s->s_prob);
    free(s);
}

static int synth_check(const synth_config *c, mr_err *e) {
    if (c->d < 1 || c->d > 4096)
        return mr_err_set(e, MR_EINVAL, "synth: dim %d not in [1, 4096]", c->d);
    if (c->n_clusters < 1 || c->n_items < c->n_clusters)
        return mr_err_set(e, MR_EINVAL, "synth: need 1 <= clusters (%d) <= items (%d)",
                          c->n_clusters, c->n_items);
    if (c->n_interests < 2 || c->n_interests > SYNTH_MAX_INTERESTS ||
        c->n_interests > c->n_clusters)
        return mr_err_set(e, MR_EINVAL, "synth: interests %d not in [2, min(%d, clusters)]",
                          c->n_interests, SYNTH_MAX_INTERESTS);
    if (c->n_users < 1 || c->seq_len < 2 || c->samples_per_user < 0 ||
        c->samples_per_user > SYNTH_MAX_SAMPLES)
        return mr_err_set(e, MR_EINVAL,
                          "synth: bad users %d / length %d / samples %d (at most 1024 per user)",
                          c->n_users, c->seq_len, c->samples_per_user);
    if ((double)c->n_users * c->seq_len > 4e9 || (double)c->n_users * c->samples_per_user > 2e9)
        return mr_err_set(e, MR_EINVAL, "synth: %d users x %d events is too many", c->n_users,
                          c->seq_len);
    if (!(c->old_frac > 0 && c->old_frac < c->min_pos_frac && c->min_pos_frac <= 1 &&
          c->explore >= 0 && c->explore < 1 && c->noise >= 0))
        return mr_err_set(e, MR_EINVAL,
                          "synth: need 0 < old_frac < min_pos_frac <= 1, 0 <= explore < 1, "
                          "noise >= 0");
    return 0;
}

/* A random item of cluster k (items are assigned round-robin: i % C). */
static uint32_t synth_item_of(const synth_config *c, mr_rng *r, int k) {
    uint64_t cnt = (uint64_t)(c->n_items - k + c->n_clusters - 1) / (uint64_t)c->n_clusters;
    return (uint32_t)k + (uint32_t)c->n_clusters * (uint32_t)mr_rng_below(r, cnt);
}

static float synth_cos(const float *a, const float *b, int d) {
    float na = mr_l2norm(a, d), nb = mr_l2norm(b, d);
    return na > 0 && nb > 0 ? mr_dot(a, b, d) / (na * nb) : 0.0f;
}

static int synth_pos_cmp(const void *pa, const void *pb) {
    const uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return a < b ? -1 : a > b;
}

int synth_create(synth_data **out, const synth_config *cfg, mr_err *e) {
    *out = NULL;
    int rc = synth_check(cfg, e);
    if (rc) return rc;
    const synth_config *c = cfg;
    const int d = c->d, C = c->n_clusters, L = c->seq_len, S = c->samples_per_user;
    synth_data *s = calloc(1, sizeof *s);
    float *centre = mr_floats_alloc((size_t)C * d); /* (C, d) */
    if (!s || !centre) goto oom;
    s->cfg = *c;
    s->n_samples = c->n_users * S;
    s->item_emb = mr_floats_alloc((size_t)c->n_items * d);
    s->item_cluster = malloc(sizeof(uint32_t) * (size_t)c->n_items);
    s->seq = malloc(sizeof(uint32_t) * (size_t)c->n_users * (size_t)L);
    size_t ns = (size_t)(s->n_samples > 0 ? s->n_samples : 1);
    s->s_user = malloc(sizeof(uint32_t) * ns);
    s->s_item = malloc(sizeof(uint32_t) * ns);
    s->s_pos = malloc(sizeof(uint32_t) * ns);
    s->s_label = malloc(sizeof(float) * ns);
    s->s_prob = malloc(sizeof(float) * ns);
    if (!s->item_emb || !s->item_cluster || !s->seq || !s->s_user || !s->s_item || !s->s_pos ||
        !s->s_label || !s->s_prob)
        goto oom;

    mr_rng root, r;
    mr_rng_seed(&root, c->seed);
    mr_rng_fill_normal(&root, centre, (long)C * d, 1.0f);
    for (int i = 0; i < c->n_items; i++) {
        float *x = s->item_emb + (size_t)i * d;
        s->item_cluster[i] = (uint32_t)(i % C);
        mr_rng_fill_normal(&root, x, d, c->noise);
        mr_axpy(d, 1.0f, centre + (size_t)(i % C) * d, x);
    }
    uint64_t keys[SYNTH_MAX_SAMPLES]; /* (position << 32 | index) */
    for (int u = 0; u < c->n_users; u++) {
        r = mr_rng_split(&root);
        int K = c->n_interests, clus[SYNTH_MAX_INTERESTS];
        long start[SYNTH_MAX_INTERESTS], end[SYNTH_MAX_INTERESTS];
        for (int k = 0; k < K; k++) { /* distinct clusters */
            int dup;
            do {
                clus[k] = (int)mr_rng_below(&r, (uint64_t)C);
                dup = 0;
                for (int t = 0; t < k; t++) dup |= clus[t] == clus[k];
            } while (dup);
        }
        long old_end = (long)(c->old_frac * L);
        if (old_end < 1) old_end = 1;
        start[0] = 0, end[0] = old_end;                                   /* the old interest */
        start[1] = (long)mr_rng_below(&r, (uint64_t)old_end), end[1] = L; /* covers the gap */
        for (int k = 2; k < K; k++)
            start[k] = (long)mr_rng_below(&r, (uint64_t)(L / 2)), end[k] = L;
        uint32_t *seq = s->seq + (size_t)u * L;
        for (long j = 0; j < L; j++) {
            int act[SYNTH_MAX_INTERESTS], na = 0;
            for (int k = 0; k < K; k++)
                if (start[k] <= j && j < end[k]) act[na++] = k;
            if (na == 0 || mr_rng_uniform(&r) < c->explore)
                seq[j] = (uint32_t)mr_rng_below(&r, (uint64_t)c->n_items);
            else seq[j] = synth_item_of(c, &r, clus[act[mr_rng_below(&r, (uint64_t)na)]]);
        }
        /* Samples: positions sorted, then candidates and labels. */
        long lo = (long)(c->min_pos_frac * L), span = L - lo + 1;
        for (int t = 0; t < S; t++)
            keys[t] = ((uint64_t)(lo + (long)mr_rng_below(&r, (uint64_t)span)) << 32) | (uint64_t)t;
        qsort(keys, (size_t)S, sizeof keys[0], synth_pos_cmp);
        for (int t = 0; t < S; t++) {
            size_t x = (size_t)u * S + t;
            long p = (long)(keys[t] >> 32);
            int seen[SYNTH_MAX_INTERESTS], nseen = 0;
            for (int k = 0; k < K; k++)
                if (start[k] < p) seen[nseen++] = k;
            uint32_t item;
            if (nseen > 0 && mr_rng_uniform(&r) < 0.5)
                item = synth_item_of(c, &r, clus[seen[mr_rng_below(&r, (uint64_t)nseen)]]);
            else item = (uint32_t)mr_rng_below(&r, (uint64_t)c->n_items);
            float a = -1.0f;
            for (int q = 0; q < nseen; q++) {
                float cs = synth_cos(s->item_emb + (size_t)item * d,
                                     centre + (size_t)clus[seen[q]] * d, d);
                if (cs > a) a = cs;
            }
            float prob = 1.0f / (1.0f + expf(-c->sharp * (a - 0.5f)));
            s->s_user[x] = (uint32_t)u;
            s->s_item[x] = item;
            s->s_pos[x] = (uint32_t)p;
            s->s_prob[x] = prob;
            s->s_label[x] = mr_rng_uniform(&r) < prob ? 1.0f : 0.0f;
        }
    }
    mr_floats_free(centre);
    *out = s;
    return 0;
oom:
    mr_floats_free(centre);
    synth_free(s);
    return mr_err_set(e, MR_ENOMEM, "synth: out of memory for %d users x %d events", c->n_users,
                      c->seq_len);
}
