/* sdim_feature.c — SDIM long-interest and short-attention inputs of the
 * ranker, at serving and at training time (see sdim_feature.h).
 *
 * Both paths end in the same two calls, sdim_signatures_batch for the
 * candidates and sdim_table_interest_batch on a table, and the training
 * replay builds its table with the store's own operations in the store's
 * order, so the two features agree bit for bit rather than "closely".
 */
#include "moe/sdim_feature.h"

#include <stdlib.h>
#include <string.h>

#include "common/tensor.h"
#include "hashing/idhash.h"
#include "moe/attention.h"

enum { SDIM_SEQ_CHUNK = 256 }; /* events signed per sgemm in sdim_seq_push */

int sdim_feature_serve(const sdim_hasher *h, const void *table, const float *cand, int n,
                       sdim_pool pool, float *out, int ostride, mr_err *e) {
    const int d = h->d, nsig = h->layout.nsig;
    if (n < 0 || ostride < d)
        return mr_err_set(e, MR_EINVAL, "sdim feature: bad batch %d or row stride %d < d = %d", n,
                          ostride, d);
    if (n == 0) return 0;
    if (!table) {
        for (int j = 0; j < n; j++) memset(out + (size_t)j * ostride, 0, sizeof(float) * (size_t)d);
        return 0;
    }
    uint32_t *qsig = malloc(sizeof(uint32_t) * (size_t)n * (size_t)nsig);      /* (n, nsig) */
    float *proj = h->m > 0 ? mr_floats_alloc((size_t)n * (size_t)h->m) : NULL; /* (n, m) */
    float *tmp = ostride == d ? out : mr_floats_alloc((size_t)n * (size_t)d);  /* (n, d) */
    int rc = 0;
    if (!qsig || (h->m > 0 && !proj) || !tmp) {
        rc = mr_err_set(e, MR_ENOMEM, "sdim feature: out of memory for %d candidates", n);
        goto out;
    }
    if ((rc = sdim_signatures_batch(h, cand, n, qsig, proj, e))) goto out;
    sdim_table_interest_batch(&h->layout, table, qsig, n, pool, tmp);
    if (tmp != out)
        for (int j = 0; j < n; j++)
            memcpy(out + (size_t)j * ostride, tmp + (size_t)j * d, sizeof(float) * (size_t)d);
out:
    free(qsig);
    mr_floats_free(proj);
    if (tmp != out) mr_floats_free(tmp);
    return rc;
}

int sdim_feature_short(const float *recent, int k, const float *cand, int n, int d, float *out,
                       int ostride, float *scratch, mr_err *e) {
    if (n < 0 || k < 0 || d < 1 || ostride < d)
        return mr_err_set(e, MR_EINVAL, "short attention: bad sizes n=%d k=%d d=%d stride=%d", n, k,
                          d, ostride);
    if (n == 0) return 0;
    if (k == 0) {
        for (int j = 0; j < n; j++) memset(out + (size_t)j * ostride, 0, sizeof(float) * (size_t)d);
        return 0;
    }
    float *p = scratch ? scratch : mr_floats_alloc((size_t)n * (size_t)k); /* (n, k) */
    float *tmp = ostride == d ? out : mr_floats_alloc((size_t)n * (size_t)d);
    int rc = 0;
    if (!p || !tmp) {
        rc = mr_err_set(e, MR_ENOMEM, "short attention: out of memory (%d x %d)", n, k);
        goto out;
    }
    moe_attn_forward(tmp, p, cand, recent, recent, n, k, d, 0.0f);
    if (tmp != out)
        for (int j = 0; j < n; j++)
            memcpy(out + (size_t)j * ostride, tmp + (size_t)j * d, sizeof(float) * (size_t)d);
out:
    if (p != scratch) mr_floats_free(p);
    if (tmp != out) mr_floats_free(tmp);
    return rc;
}

uint32_t sdim_action_id(const char *action, size_t len) {
    if (len == 0) return 0;
    uint32_t id = (uint32_t)idhash_bytes(action, len, 0);
    return id ? id : 1;
}

int sdim_model_actions(const moe_model *m, uint32_t *acts) {
    for (int a = 0; a < m->n_hist_act; a++)
        acts[a] = sdim_action_id(m->hist_act[a], strlen(m->hist_act[a]));
    return m->n_hist_act;
}

int sdim_feature_extra_act(const sdim_hasher *h, const void *table, const float *recent,
                           const uint32_t *ract, int k, const uint32_t *acts, int n_act,
                           const float *cand, int n, float *out, int ostride, mr_err *e) {
    const int d = h->d, w = 2 * d + (n_act > 0 ? n_act : 0);
    if (n_act < 0 || ostride < w)
        return mr_err_set(e, MR_EINVAL, "sdim extra: row stride %d < 2 d + actions = %d", ostride,
                          w);
    if (n < 0 || k < 0) return mr_err_set(e, MR_EINVAL, "sdim extra: bad sizes n=%d k=%d", n, k);
    float *p = n_act > 0 && k > 0 && n > 0 ? mr_floats_alloc((size_t)n * (size_t)k) : NULL;
    if (n_act > 0 && k > 0 && n > 0 && !p)
        return mr_err_set(e, MR_ENOMEM, "sdim extra: out of memory (%d x %d)", n, k);
    int rc = sdim_feature_serve(h, table, cand, n, SDIM_POOL_L2, out, ostride, e);
    if (!rc) rc = sdim_feature_short(recent, k, cand, n, d, out + d, ostride, p, e);
    /* The actions' shares under the short attention's weights p (n, k),
     * summed in event order (training and serving add the same terms in
     * the same order). */
    for (int j = 0; j < n && !rc && n_act > 0; j++) {
        float *o = out + (size_t)j * ostride + 2 * d;
        for (int a = 0; a < n_act; a++) {
            float acc = 0.0f;
            for (int i = 0; i < k; i++)
                if ((ract ? ract[i] : 0u) == acts[a]) acc += p[(size_t)j * k + i];
            o[a] = acc;
        }
    }
    mr_floats_free(p);
    /* A candidate without a vector is a zero row (the store zeroes missing
     * rows): its block is zeros, as sdim_join writes for training, not the
     * bucket a zero vector happens to sign into nor the mean of the recent
     * events that a uniform attention over them would give. */
    for (int j = 0; j < n && !rc; j++) {
        const float *q = cand + (size_t)j * d;
        int zero = 1;
        for (int c = 0; c < d && zero; c++) zero = q[c] == 0.0f;
        if (zero) memset(out + (size_t)j * ostride, 0, sizeof(float) * (size_t)w);
    }
    return rc;
}

int sdim_feature_extra(const sdim_hasher *h, const void *table, const float *recent, int k,
                       const float *cand, int n, float *out, int ostride, mr_err *e) {
    return sdim_feature_extra_act(h, table, recent, NULL, k, NULL, 0, cand, n, out, ostride, e);
}

int sdim_feature_to_scorer_act(moe_scorer *s, const moe_model *m, const sdim_hasher *h,
                               const void *table, const float *recent, const uint32_t *ract, int k,
                               const float *cand, int n, mr_err *e) {
    const int w = 2 * h->d + m->n_hist_act;
    if (m->extra_dim != w)
        return mr_err_set(e, MR_EINVAL,
                          "sdim: the model's extra_dim is %d, the SDIM block needs 2 d + actions = "
                          "%d (d = %d, %d history actions)",
                          m->extra_dim, w, h->d, m->n_hist_act);
    if (n <= 0) return n == 0 ? 0 : mr_err_set(e, MR_EINVAL, "sdim: negative batch %d", n);
    uint32_t acts[MOE_MAX_HIST_ACTIONS];
    int na = sdim_model_actions(m, acts);
    float *x = mr_floats_alloc((size_t)n * (size_t)w); /* (n, w) */
    if (!x) return mr_err_set(e, MR_ENOMEM, "sdim: out of memory for %d candidates", n);
    int rc = sdim_feature_extra_act(h, table, recent, ract, k, acts, na, cand, n, x, w, e);
    for (int j = 0; j < n && !rc; j++) rc = moe_scorer_set_extra(s, j, x + (size_t)j * w, w, e);
    mr_floats_free(x);
    return rc;
}

int sdim_feature_to_scorer(moe_scorer *s, const moe_model *m, const sdim_hasher *h,
                           const void *table, const float *recent, int k, const float *cand, int n,
                           mr_err *e) {
    return sdim_feature_to_scorer_act(s, m, h, table, recent, NULL, k, cand, n, e);
}

int sdim_seq_create(sdim_seq **out, const sdim_hasher *h, int l_max, mr_err *e) {
    *out = NULL;
    if (l_max < 1) return mr_err_set(e, MR_EINVAL, "sdim seq: l_max %d < 1", l_max);
    const sdim_layout *L = &h->layout;
    sdim_seq *s = calloc(1, sizeof *s);
    if (!s) return mr_err_set(e, MR_ENOMEM, "sdim seq: out of memory");
    s->h = h;
    s->l_max = l_max;
    s->table = mr_floats_alloc(sdim_table_cells(L));
    s->vecs = mr_floats_alloc((size_t)l_max * (size_t)h->d);
    s->acts = calloc((size_t)l_max, sizeof *s->acts);
    s->sigs = malloc(sizeof(uint32_t) * (size_t)l_max * (size_t)L->nsig);
    s->scratch = mr_floats_alloc((size_t)SDIM_SEQ_CHUNK * (size_t)(h->m > 0 ? h->m : 1));
    s->bsig = malloc(sizeof(uint32_t) * SDIM_SEQ_CHUNK * (size_t)L->nsig);
    if (!s->table || !s->vecs || !s->acts || !s->sigs || !s->scratch || !s->bsig) {
        sdim_seq_free(s);
        return mr_err_set(e, MR_ENOMEM, "sdim seq: out of memory for l_max = %d", l_max);
    }
    *out = s;
    return 0;
}

void sdim_seq_free(sdim_seq *s) {
    if (!s) return;
    mr_floats_free(s->table);
    mr_floats_free(s->vecs);
    free(s->acts);
    free(s->sigs);
    mr_floats_free(s->scratch);
    free(s->bsig);
    free(s);
}

void sdim_seq_reset(sdim_seq *s) {
    sdim_table_clear(&s->h->layout, s->table);
    s->n = 0;
    s->head = 0;
}

/* Ring slot of the i-th kept event (0 = oldest). */
static int sdim_seq_slot(const sdim_seq *s, int i) { return (s->head + i) % s->l_max; }

int sdim_seq_push(sdim_seq *s, const float *x, int n, mr_err *e) {
    return sdim_seq_push_act(s, x, NULL, n, e);
}

int sdim_seq_push_act(sdim_seq *s, const float *x, const uint32_t *act, int n, mr_err *e) {
    const sdim_layout *L = &s->h->layout;
    const size_t d = (size_t)L->d, nsig = (size_t)L->nsig;
    if (n < 0) return mr_err_set(e, MR_EINVAL, "sdim seq: negative batch %d", n);
    /* As behaviour_append: the r oldest of (kept, new) go; trimmed kept
     * events are subtracted first, then the surviving new ones are added. */
    long total = (long)s->n + n, r = total > s->l_max ? total - s->l_max : 0;
    int r_old = (int)(r < s->n ? r : s->n), r_new = (int)(r - r_old);
    for (int i = 0; i < r_old; i++) {
        int slot = sdim_seq_slot(s, 0);
        int rc = sdim_table_sub(L, s->table, s->sigs + (size_t)slot * nsig,
                                s->vecs + (size_t)slot * d, e);
        if (rc) return rc;
        s->head = (s->head + 1) % s->l_max;
        s->n--;
    }
    for (int j0 = r_new; j0 < n; j0 += SDIM_SEQ_CHUNK) {
        int c = n - j0 < SDIM_SEQ_CHUNK ? n - j0 : SDIM_SEQ_CHUNK;
        const float *xc = x + (size_t)j0 * d;
        int rc = sdim_signatures_batch(s->h, xc, c, s->bsig, s->scratch, e);
        if (rc) return rc;
        for (int j = 0; j < c; j++) {
            int slot = sdim_seq_slot(s, s->n);
            memcpy(s->vecs + (size_t)slot * d, xc + (size_t)j * d, sizeof(float) * d);
            s->acts[slot] = act ? act[j0 + j] : 0;
            memcpy(s->sigs + (size_t)slot * nsig, s->bsig + (size_t)j * nsig,
                   sizeof(uint32_t) * nsig);
            if ((rc = sdim_table_add(L, s->table, s->bsig + (size_t)j * nsig, xc + (size_t)j * d,
                                     e)))
                return rc;
            s->n++;
        }
    }
    return 0;
}

int sdim_seq_recent(const sdim_seq *s, int k, float *out) {
    return sdim_seq_recent_act(s, k, out, NULL);
}

int sdim_seq_recent_act(const sdim_seq *s, int k, float *out, uint32_t *act) {
    const size_t d = (size_t)s->h->d;
    int got = k < s->n ? k : s->n;
    for (int i = 0; i < got; i++) {
        int slot = sdim_seq_slot(s, s->n - got + i);
        memcpy(out + (size_t)i * d, s->vecs + (size_t)slot * d, sizeof(float) * d);
        if (act) act[i] = s->acts[slot];
    }
    return got;
}

int sdim_seq_feature(const sdim_seq *s, const float *cand, int n, sdim_pool pool, float *out,
                     int ostride, mr_err *e) {
    return sdim_feature_serve(s->h, s->n > 0 ? s->table : NULL, cand, n, pool, out, ostride, e);
}

int sdim_feature_from_sequence(const sdim_hasher *h, const float *seq, int L, const float *cand,
                               int n, sdim_pool pool, float *out, int ostride, mr_err *e) {
    sdim_seq *s;
    int rc = sdim_seq_create(&s, h, L > 0 ? L : 1, e);
    if (rc) return rc;
    if (!(rc = sdim_seq_push(s, seq, L, e)))
        rc = sdim_seq_feature(s, cand, n, pool, out, ostride, e);
    sdim_seq_free(s);
    return rc;
}
