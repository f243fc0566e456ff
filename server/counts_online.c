/* counts_online.c — AppendEvents with online_counts: the events' labels
 * update the counters of the stored feature rows (counts.h) in the
 * WriteBatch of the events themselves, so a Score after the answer sees
 * both or neither.
 *
 * One append under be->count_mu: read the state, the touched users'
 * profiles and items' rows, count the events with fc_slot_add (the
 * counter `moerec index features` uses), write events, rows and state in
 * one batch. Serialised, because item rows and the global sums are shared
 * by every user's appends (a lost update would make the counts drift from
 * the log); appends without online counts stay concurrent. Cost per
 * append: one meta read, one profile read per distinct user, one batched
 * (cached) item read, and the rows' re-encoding.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "server/backend.h"
#include "server/counts.h"
#include "server/server.h"

int mr_counts_labels(const mr_counts *c, const Moerec__V1__AppendEventsRequest *r,
                     mr_count_labels *out, mr_err *e) {
    for (size_t i = 0; i < r->n_events; i++) {
        const Moerec__V1__Event *x = r->events[i];
        mr_count_labels *l = &out[i];
        memset(l, 0, sizeof *l);
        if (x->n_labels > FC_MAX_TASKS)
            return mr_err_set(e, MR_EINVAL, "events[%zu].labels: %zu labels, at most %d", i,
                              x->n_labels, FC_MAX_TASKS);
        for (size_t k = 0; k < x->n_labels; k++) {
            const Moerec__V1__EventLabel *lb = x->labels[k];
            if (!lb->task[0])
                return mr_err_set(e, MR_EINVAL, "events[%zu].labels[%zu].task is empty", i, k);
            if (lb->value != 0.0f && lb->value != 1.0f)
                return mr_err_set(e, MR_EINVAL,
                                  "events[%zu].labels[%zu]: task '%.64s' has value %g (0 or 1)", i,
                                  k, lb->task, (double)lb->value);
            for (size_t j = 0; j < k; j++)
                if (!strcmp(x->labels[j]->task, lb->task))
                    return mr_err_set(e, MR_EINVAL, "events[%zu].labels: task '%.64s' twice", i,
                                      lb->task);
            if (!c) continue;
            int t = mr_counts_task(c, lb->task);
            if (t < 0)
                return mr_err_set(e, MR_EINVAL,
                                  "events[%zu].labels[%zu]: unknown task '%.64s' (the store's "
                                  "counting features have %d tasks, the first '%s')",
                                  i, k, lb->task, c->spec.n_tasks, c->task[0]);
            l->y[t] = lb->value;
            l->has[t] = 1;
            l->any = 1;
        }
    }
    return MR_OK;
}

/* A key's slots while counting: the row's, copied, plus new ones. */
typedef struct work_row {
    uint64_t id;
    Moerec__V1__FeatureRow *row;                /* stored row (arena), NULL when none */
    const Moerec__V1__CategoricalFeature *cats; /* item: its categories entry */
    char **cat;                                 /* (n) slot categories, "" = own */
    double **sum;                               /* (n) slots */
    size_t n, cap;
} work_row;

static double *work_slot(work_row *w, const mr_counts *c, const char *cat, mr_arena *a, mr_err *e) {
    for (size_t i = 0; i < w->n; i++)
        if (!strcmp(w->cat[i], cat)) return w->sum[i];
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 8;
        char **cc = mr_arena_alloc(a, cap * sizeof *cc);
        double **ss = mr_arena_alloc(a, cap * sizeof *ss);
        if (!cc || !ss) {
            mr_err_set(e, MR_ENOMEM, "out of request memory");
            return NULL;
        }
        if (w->n) memcpy(cc, w->cat, w->n * sizeof *cc), memcpy(ss, w->sum, w->n * sizeof *ss);
        w->cat = cc;
        w->sum = ss;
        w->cap = cap;
    }
    double *s = mr_arena_alloc(a, (size_t)fc_slot_len(&c->spec) * sizeof *s);
    char *k = mr_arena_strdup(a, cat);
    if (!s || !k) {
        mr_err_set(e, MR_ENOMEM, "out of request memory");
        return NULL;
    }
    fc_slot_init(&c->spec, s);
    w->cat[w->n] = k;
    w->sum[w->n++] = s;
    return s;
}

/* Load a stored row's slots into w. */
static int work_load(work_row *w, const mr_counts *c, const void *blob, size_t len, mr_arena *a,
                     const char *what, mr_err *e) {
    if (!blob) return MR_OK;
    ProtobufCAllocator al = mr_pb_arena(a);
    if (!(w->row = moerec__v1__feature_row__unpack(&al, len, blob)))
        return mr_err_set(e, MR_ECORRUPT, "stored features of %s %llu do not decode", what,
                          (unsigned long long)w->id);
    for (size_t i = 0; i < w->row->n_counts; i++) {
        const Moerec__V1__CountSlot *cs = w->row->counts[i];
        if (cs->n_sums != (size_t)fc_slot_len(&c->spec))
            return mr_err_set(e, MR_ECORRUPT, "stored counters of %s %llu: %zu values, want %d",
                              what, (unsigned long long)w->id, cs->n_sums, fc_slot_len(&c->spec));
        double *s = work_slot(w, c, cs->category, a, e);
        if (!s) return MR_ENOMEM;
        memcpy(s, cs->sums, cs->n_sums * sizeof *s);
    }
    for (size_t i = 0; c->spec.use_cats && i < w->row->n_categorical && !w->cats; i++)
        if (!strcmp(w->row->categorical[i]->name, c->cat_col)) w->cats = w->row->categorical[i];
    return MR_OK;
}

/* The row to store: the stored entries, the slots (own first). */
static int work_pack(const work_row *w, const mr_counts *c, mr_arena *a, store_blob *out,
                     mr_err *e) {
    Moerec__V1__FeatureRow r;
    moerec__v1__feature_row__init(&r);
    if (w->row) {
        r.categorical = w->row->categorical, r.n_categorical = w->row->n_categorical;
        r.numeric = w->row->numeric, r.n_numeric = w->row->n_numeric;
    }
    Moerec__V1__CountSlot *cs = mr_arena_alloc(a, (w->n ? w->n : 1) * sizeof *cs);
    Moerec__V1__CountSlot **cp = mr_arena_alloc(a, (w->n ? w->n : 1) * sizeof *cp);
    if (!cs || !cp) return mr_err_set(e, MR_ENOMEM, "out of request memory");
    size_t k = 0;
    for (int own = 1; own >= 0; own--) /* the key's own slot first, as the tool writes */
        for (size_t i = 0; i < w->n; i++)
            if ((w->cat[i][0] == 0) == own) {
                moerec__v1__count_slot__init(&cs[k]);
                cs[k].category = w->cat[i];
                cs[k].sums = w->sum[i];
                cs[k].n_sums = (size_t)fc_slot_len(&c->spec);
                cp[k] = &cs[k];
                k++;
            }
    r.counts = cp;
    r.n_counts = k;
    size_t len = moerec__v1__feature_row__get_packed_size(&r);
    uint8_t *buf = mr_arena_alloc(a, len ? len : 1);
    if (!buf) return mr_err_set(e, MR_ENOMEM, "out of request memory");
    moerec__v1__feature_row__pack(&r, buf);
    *out = (store_blob){buf, len};
    return MR_OK;
}

static work_row *work_find(work_row *w, size_t n, uint64_t id) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (w[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && w[lo].id == id ? &w[lo] : NULL;
}

static int by_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Distinct sorted ids of ids[0..n) into out; returns their number. */
static size_t distinct(const uint64_t *ids, size_t n, uint64_t *out) {
    memcpy(out, ids, n * sizeof *out);
    qsort(out, n, sizeof *out, by_u64);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!k || out[k - 1] != out[i]) out[k++] = out[i];
    return k;
}

static int by_time(const void *a, const void *b, void *ctx) {
    const behaviour_event *ev = ctx;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int64_t tx = ev[x].ts_ms, ty = ev[y].ts_ms;
    return tx != ty ? (tx > ty) - (tx < ty) : (x > y) - (x < y);
}

/* Count the events into the work rows and the state. */
static int count_events(mr_counts *c, const behaviour_event *ev, const mr_count_labels *lab,
                        size_t n, work_row *users, size_t nu, work_row *items, size_t ni,
                        mr_arena *a, mr_err *e) {
    size_t *ord = mr_arena_alloc(a, (n ? n : 1) * sizeof *ord);
    if (!ord) return mr_err_set(e, MR_ENOMEM, "out of request memory");
    for (size_t i = 0; i < n; i++) ord[i] = i;
    qsort_r(ord, n, sizeof *ord, by_time, (void *)ev);
    for (size_t q = 0; q < n; q++) {
        size_t i = ord[q];
        fc_event fe;
        memset(&fe, 0, sizeof fe);
        fe.t = (double)ev[i].ts_ms / 1000.0;
        memcpy(fe.y, lab[i].y, sizeof fe.y);
        memcpy(fe.has, lab[i].has, sizeof fe.has);
        work_row *u = work_find(users, nu, ev[i].user), *it = work_find(items, ni, ev[i].item);
        double *us = work_slot(u, c, "", a, e), *is = us ? work_slot(it, c, "", a, e) : NULL;
        if (!is) return MR_ENOMEM;
        fc_slot_add(&c->spec, us, &fe);
        fc_slot_add(&c->spec, is, &fe);
        const Moerec__V1__CategoricalFeature *cf = it->cats;
        for (size_t k = 0; cf && k < cf->n_values && k < FC_MAX_CATS; k++) {
            const char *cat = cf->values[k];
            int dup = !cat[0]; /* empty or repeated in the cell: counted once, as the tool */
            for (size_t j = 0; j < k && !dup; j++) dup = !strcmp(cf->values[j], cat);
            if (dup) continue;
            double *s = work_slot(u, c, cat, a, e);
            if (!s) return MR_ENOMEM;
            fc_slot_add(&c->spec, s, &fe);
        }
        for (int t = 0; t < c->spec.n_tasks; t++)
            if (fe.has[t]) c->lab[t] += 1, c->pos[t] += fe.y[t];
        if (fe.t > c->as_of) c->as_of = fe.t;
    }
    return MR_OK;
}

static int append_locked(mr_backend *be, const behaviour_event *ev, const mr_count_labels *lab,
                         size_t n, mr_arena *a, mr_err *e) {
    mr_counts c;
    int found = 0, rc = mr_counts_load(be->st, &c, &found, e);
    if (rc) return rc;
    if (!found) return behaviour_append(be->beh, ev, n, e);
    uint64_t *ids = mr_arena_alloc(a, n * sizeof *ids), *uid = mr_arena_alloc(a, n * sizeof *uid),
             *iid = mr_arena_alloc(a, n * sizeof *iid);
    if (!ids || !uid || !iid) return mr_err_set(e, MR_ENOMEM, "out of request memory");
    for (size_t i = 0; i < n; i++) ids[i] = ev[i].user;
    size_t nu = distinct(ids, n, uid);
    for (size_t i = 0; i < n; i++) ids[i] = ev[i].item;
    size_t ni = distinct(ids, n, iid);
    work_row *users = mr_arena_calloc(a, nu, sizeof *users);
    work_row *items = mr_arena_calloc(a, ni, sizeof *items);
    store_blob *ublob = mr_arena_alloc(a, nu * sizeof *ublob);
    store_blob *iblob = mr_arena_alloc(a, ni * sizeof *iblob);
    if (!users || !items || !ublob || !iblob)
        return mr_err_set(e, MR_ENOMEM, "out of request memory");
    for (size_t k = 0; k < nu && !rc; k++) {
        mr_user_state us = {0};
        users[k].id = uid[k];
        if (!(rc = user_state_get(be->beh, uid[k], &us, e)))
            rc = work_load(&users[k], &c, us.profile, us.profile_len, a, "user", e);
        user_state_release(&us);
    }
    void *buf = NULL;
    if (!rc) rc = item_store_get(be->st, iid, ni, iblob, &buf, e);
    for (size_t k = 0; k < ni && !rc; k++) {
        items[k].id = iid[k];
        rc = work_load(&items[k], &c, iblob[k].data, iblob[k].len, a, "item", e);
    }
    free(buf); /* the rows were unpacked into the arena */
    if (!rc) rc = count_events(&c, ev, lab, n, users, nu, items, ni, a, e);
    for (size_t k = 0; k < nu && !rc; k++) rc = work_pack(&users[k], &c, a, &ublob[k], e);
    for (size_t k = 0; k < ni && !rc; k++) rc = work_pack(&items[k], &c, a, &iblob[k], e);
    uint8_t *meta = NULL;
    size_t meta_len = 0;
    if (!rc) rc = mr_counts_pack(&c, &meta, &meta_len, e);
    if (!rc) {
        store_append_rows rows = {iid, iblob, ni, uid, ublob, nu, MR_COUNTS_META, {meta, meta_len}};
        rc = behaviour_append_rows(be->beh, ev, n, &rows, e);
    }
    free(meta);
    return rc;
}

int mr_counts_append(mr_backend *be, const behaviour_event *ev, const mr_count_labels *lab,
                     size_t n, mr_arena *a, mr_err *e) {
    pthread_mutex_lock(&be->count_mu);
    int rc = append_locked(be, ev, lab, n, a, e);
    pthread_mutex_unlock(&be->count_mu);
    return rc;
}
