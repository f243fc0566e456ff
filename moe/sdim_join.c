/* sdim_join.c — training rows x event log -> SDIM blocks, time-safe (see
 * sdim_join.h).
 *
 * Events and rows are sorted by (user, time, original index) once; then
 * each user's events are replayed into one sdim_seq while walking that
 * user's rows in time order, pushing the events that precede each row as
 * one batch (at most its newest l_max matter, so at most 2 l_max are
 * buffered). Sorting is O((E + R) log(E + R)); the replay touches each
 * event once.
 */
#include "moe/sdim_join.h"

#include <stdlib.h>
#include <string.h>

#include "common/tensor.h"
#include "moe/sdim_feature.h"

typedef struct sdim_key {
    uint64_t user;
    int64_t ts;
    long idx;
} sdim_key;

static int sdim_key_cmp(const void *pa, const void *pb) {
    const sdim_key *a = pa, *b = pb;
    if (a->user != b->user) return a->user < b->user ? -1 : 1;
    if (a->ts != b->ts) return a->ts < b->ts ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static sdim_key *sdim_sorted_keys(const uint64_t *user, const int64_t *ts, long n) {
    sdim_key *k = malloc(sizeof *k * (size_t)(n > 0 ? n : 1));
    if (!k) return NULL;
    for (long i = 0; i < n; i++) k[i] = (sdim_key){user[i], ts[i], i};
    qsort(k, (size_t)n, sizeof *k, sdim_key_cmp);
    return k;
}

int sdim_join(const sdim_hasher *h, int l_max, int short_n, const sdim_events *ev,
              const uint64_t *row_user, const uint64_t *row_item, const int64_t *row_ts,
              long n_rows, sdim_item_vec_fn vec, void *ctx, float *out, int ostride, mr_err *e) {
    return sdim_join_act(h, l_max, short_n, NULL, 0, ev, row_user, row_item, row_ts, n_rows, vec,
                         ctx, out, ostride, e);
}

int sdim_join_act(const sdim_hasher *h, int l_max, int short_n, const uint32_t *acts, int n_act,
                  const sdim_events *ev, const uint64_t *row_user, const uint64_t *row_item,
                  const int64_t *row_ts, long n_rows, sdim_item_vec_fn vec, void *ctx, float *out,
                  int ostride, mr_err *e) {
    const int d = h->d, w = 2 * d + (n_act > 0 ? n_act : 0);
    if (l_max < 1 || short_n < 0 || n_act < 0 || ostride < w || n_rows < 0 || ev->n < 0)
        return mr_err_set(e, MR_EINVAL,
                          "sdim join: bad l_max %d / short_n %d / row stride %d (< 2 d + "
                          "actions = %d?)",
                          l_max, short_n, ostride, w);
    sdim_key *ek = sdim_sorted_keys(ev->user, ev->ts, ev->n);
    sdim_key *rk = sdim_sorted_keys(row_user, row_ts, n_rows);
    long cap = 256;
    float *buf = mr_floats_alloc((size_t)cap * d);       /* (cap, d) pending events */
    uint32_t *bact = malloc(sizeof *bact * (size_t)cap); /* (cap) their actions */
    float *recent = mr_floats_alloc((size_t)(short_n > 0 ? short_n : 1) * d); /* (short_n, d) */
    uint32_t *ract = malloc(sizeof *ract * (size_t)(short_n > 0 ? short_n : 1));
    sdim_seq *sq = NULL;
    int rc = 0;
    if (!ek || !rk || !buf || !bact || !recent || !ract ||
        (rc = sdim_seq_create(&sq, h, l_max, e))) {
        if (!rc) rc = mr_err_set(e, MR_ENOMEM, "sdim join: out of memory for %ld events", ev->n);
        goto out;
    }
    long j = 0; /* next event in ek */
    uint64_t cur = 0;
    int have_user = 0;
    for (long r = 0; r < n_rows && !rc; r++) {
        const sdim_key *row = &rk[r];
        if (!have_user || row->user != cur) { /* next user: skip earlier users' events */
            cur = row->user, have_user = 1;
            sdim_seq_reset(sq);
            while (j < ev->n && ek[j].user < cur) j++;
        }
        long np = 0; /* events of this user strictly before the row */
        for (; j < ev->n && ek[j].user == cur && ek[j].ts < row->ts; j++) {
            const float *x = vec(ev->item[ek[j].idx], ctx);
            if (!x) continue;
            if (np == cap && cap >= 2L * l_max) {
                /* Of a batch longer than l_max only the newest l_max are ever
                 * added (sdim_seq_push trims the rest and every kept event
                 * alike), so older pending ones can go: the same operations,
                 * with memory bounded by 2 l_max rows, not the user's history. */
                memmove(buf, buf + (size_t)(np - l_max) * d, sizeof(float) * (size_t)l_max * d);
                memmove(bact, bact + (np - l_max), sizeof *bact * (size_t)l_max);
                np = l_max;
            }
            if (np == cap) {
                float *nb = mr_floats_alloc((size_t)cap * 2 * d);
                uint32_t *na = nb ? realloc(bact, sizeof *bact * (size_t)cap * 2) : NULL;
                if (na) bact = na;
                if (!na) {
                    mr_floats_free(nb);
                    rc = mr_err_set(e, MR_ENOMEM, "sdim join: out of memory");
                    break;
                }
                memcpy(nb, buf, sizeof(float) * (size_t)cap * d);
                mr_floats_free(buf);
                buf = nb, cap *= 2;
            }
            bact[np] = ev->action ? ev->action[ek[j].idx] : 0;
            memcpy(buf + (size_t)np++ * d, x, sizeof(float) * (size_t)d);
        }
        if (rc || (np && (rc = sdim_seq_push_act(sq, buf, bact, (int)np, e)))) break;
        float *o = out + (size_t)row->idx * (size_t)ostride;
        const float *q = vec(row_item[row->idx], ctx);
        if (!q) {
            memset(o, 0, sizeof(float) * (size_t)w);
            continue;
        }
        int k = sdim_seq_recent_act(sq, short_n, recent, ract);
        rc = sdim_feature_extra_act(h, sq->n ? sq->table : NULL, recent, ract, k, acts, n_act, q, 1,
                                    o, ostride, e);
    }
out:
    sdim_seq_free(sq);
    mr_floats_free(buf);
    free(bact);
    mr_floats_free(recent);
    free(ract);
    free(ek);
    free(rk);
    return rc;
}
