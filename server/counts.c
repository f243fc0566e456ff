/* counts.c — the CountState codec and the served entries derived from a
 * row's counters (see counts.h). The derivation is fc_slot_values, the
 * function `moerec index features` computes its training columns with, so
 * a stored row served at as_of holds the floats the tool writes for a
 * row read at that time.
 */
#include "server/counts.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"

static int copy_name(char *dst, const char *src, const char *what, mr_err *e) {
    size_t n = strlen(src);
    if (n == 0 || n >= MR_COUNTS_NAME_MAX)
        return mr_err_set(e, MR_ECORRUPT, "counting state: %s '%.64s' (1..%d bytes)", what, src,
                          MR_COUNTS_NAME_MAX - 1);
    memcpy(dst, src, n + 1);
    return MR_OK;
}

int mr_counts_unpack(const void *data, size_t len, mr_counts *c, mr_err *e) {
    memset(c, 0, sizeof *c);
    Moerec__V1__CountState *m = moerec__v1__count_state__unpack(NULL, len, data);
    if (!m)
        return mr_err_set(e, MR_ECORRUPT, "counting state (store meta \"counts\") does not decode");
    int rc = MR_OK, T = (int)m->n_tasks, W = (int)m->n_windows;
    if (T < 1 || T > FC_MAX_TASKS || W < 1 || W > FC_MAX_WINDOWS ||
        m->n_window_names != (size_t)W || m->n_positives != (size_t)T ||
        m->n_labelled != (size_t)T) {
        rc = mr_err_set(e, MR_ECORRUPT, "counting state: %d tasks, %d windows, %zu/%zu/%zu sums", T,
                        W, m->n_window_names, m->n_positives, m->n_labelled);
        goto out;
    }
    c->spec.n_tasks = T;
    c->spec.n_windows = W;
    c->spec.prior_strength = m->prior_strength;
    c->spec.no_recency = m->no_recency ? 1 : 0;
    for (int t = 0; t < T && !rc; t++) {
        rc = copy_name(c->task[t], m->tasks[t], "task", e);
        c->pos[t] = m->positives[t];
        c->lab[t] = m->labelled[t];
    }
    for (int w = 0; w < W && !rc; w++) {
        rc = copy_name(c->window_name[w], m->window_names[w], "window", e);
        c->spec.window[w] = m->windows[w];
    }
    if (!rc && m->category_column[0]) {
        rc = copy_name(c->cat_col, m->category_column, "category column", e);
        c->spec.use_cats = 1;
    }
    c->as_of = m->as_of;
    if (!rc && (rc = fc_spec_check(&c->spec, e))) mr_err_wrap(e, "counting state");
out:
    moerec__v1__count_state__free_unpacked(m, NULL);
    return rc;
}

int mr_counts_pack(const mr_counts *c, uint8_t **out, size_t *len, mr_err *e) {
    Moerec__V1__CountState m;
    moerec__v1__count_state__init(&m);
    char *tasks[FC_MAX_TASKS], *wnames[FC_MAX_WINDOWS];
    double windows[FC_MAX_WINDOWS], pos[FC_MAX_TASKS], lab[FC_MAX_TASKS];
    for (int t = 0; t < c->spec.n_tasks; t++)
        tasks[t] = (char *)c->task[t], pos[t] = c->pos[t], lab[t] = c->lab[t];
    for (int w = 0; w < c->spec.n_windows; w++)
        wnames[w] = (char *)c->window_name[w], windows[w] = c->spec.window[w];
    m.n_tasks = m.n_positives = m.n_labelled = (size_t)c->spec.n_tasks;
    m.tasks = tasks;
    m.positives = pos;
    m.labelled = lab;
    m.n_window_names = m.n_windows = (size_t)c->spec.n_windows;
    m.window_names = wnames;
    m.windows = windows;
    m.prior_strength = c->spec.prior_strength;
    m.no_recency = c->spec.no_recency;
    m.category_column = (char *)(c->spec.use_cats ? c->cat_col : "");
    m.as_of = c->as_of;
    *len = moerec__v1__count_state__get_packed_size(&m);
    if (!(*out = malloc(*len ? *len : 1)))
        return mr_err_set(e, MR_ENOMEM, "counting state: out of memory");
    moerec__v1__count_state__pack(&m, *out);
    return MR_OK;
}

int mr_counts_load(mr_store *st, mr_counts *c, int *found, mr_err *e) {
    void *v = NULL;
    size_t len = 0;
    *found = 0;
    int rc = store_meta_get(st, MR_COUNTS_META, &v, &len, e);
    if (rc || !v) return rc;
    rc = mr_counts_unpack(v, len, c, e);
    free(v);
    *found = rc == MR_OK;
    return rc;
}

int mr_counts_task(const mr_counts *c, const char *name) {
    for (int t = 0; t < c->spec.n_tasks; t++)
        if (!strcmp(c->task[t], name)) return t;
    return -1;
}

int mr_counts_value_name(const mr_counts *c, int j, char *buf, size_t cap, mr_err *e) {
    const char *tasks[FC_MAX_TASKS], *wins[FC_MAX_WINDOWS];
    for (int t = 0; t < c->spec.n_tasks; t++) tasks[t] = c->task[t];
    for (int w = 0; w < c->spec.n_windows; w++) wins[w] = c->window_name[w];
    return fc_value_name(&c->spec, j, tasks, wins, buf, cap, e);
}

const Moerec__V1__CountSlot *mr_counts_slot(const Moerec__V1__FeatureRow *row, const char *cat) {
    for (size_t i = 0; row && i < row->n_counts; i++)
        if (!strcmp(row->counts[i]->category, cat)) return row->counts[i];
    return NULL;
}

/* Growing list of numeric entries in the arena. */
typedef struct num_list {
    Moerec__V1__NumericFeature **p;
    size_t n, cap;
} num_list;

static int num_add(num_list *l, mr_arena *a, const char *name, const char *cat, float v,
                   mr_err *e) {
    if (isnan(v)) return MR_OK;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 32;
        Moerec__V1__NumericFeature **p = mr_arena_alloc(a, cap * sizeof *p);
        if (!p) return mr_err_set(e, MR_ENOMEM, "out of request memory");
        if (l->n) memcpy(p, l->p, l->n * sizeof *p);
        l->p = p;
        l->cap = cap;
    }
    Moerec__V1__NumericFeature *f = mr_arena_alloc(a, sizeof *f);
    size_t len = strlen(name) + (cat ? 1 + strlen(cat) : 0) + 1;
    char *nm = mr_arena_alloc(a, len);
    if (!f || !nm) return mr_err_set(e, MR_ENOMEM, "out of request memory");
    snprintf(nm, len, cat ? "%s@%s" : "%s", name, cat ? cat : "");
    moerec__v1__numeric_feature__init(f);
    f->name = nm;
    f->value = v;
    l->p[l->n++] = f;
    return MR_OK;
}

/* The block of base value index j0 (u_: 0, i_: per, uc_: 2 per) of slot
 * (NULL: no events), entries named "<name>" or "<name>@<cat>". */
static int add_block(const mr_counts *c, const Moerec__V1__CountSlot *slot, int j0, const char *cat,
                     num_list *l, mr_arena *a, mr_err *e) {
    int per = fc_kind_values(&c->spec), rc = MR_OK;
    if (slot && slot->n_sums != (size_t)fc_slot_len(&c->spec))
        return mr_err_set(e, MR_ECORRUPT, "stored counters: %zu values, the state has %d",
                          slot->n_sums, fc_slot_len(&c->spec));
    float v[FC_MAX_WINDOWS * (1 + FC_MAX_TASKS) + 1];
    fc_slot_values(&c->spec, c->pos, c->lab, slot ? slot->sums : NULL, c->as_of, v);
    for (int j = 0; j < per && !rc; j++) {
        char name[128];
        if ((rc = mr_counts_value_name(c, j0 + j, name, sizeof name, e))) break;
        rc = num_add(l, a, name, cat, v[j], e);
    }
    return rc;
}

int mr_counts_expand(const mr_counts *c, int kind, const Moerec__V1__FeatureRow *row, mr_arena *a,
                     Moerec__V1__Features **out, mr_err *e) {
    Moerec__V1__Features *f = mr_arena_alloc(a, sizeof *f);
    if (!f) return mr_err_set(e, MR_ENOMEM, "out of request memory");
    moerec__v1__features__init(f);
    *out = f;
    f->categorical = row->categorical;
    f->n_categorical = row->n_categorical;
    f->numeric = row->numeric;
    f->n_numeric = row->n_numeric;
    if (!c || !row->n_counts) return MR_OK;
    num_list l = {0};
    int rc = MR_OK, per = fc_kind_values(&c->spec);
    for (size_t i = 0; i < row->n_numeric && !rc; i++)
        rc = num_add(&l, a, row->numeric[i]->name, NULL, row->numeric[i]->value, e);
    const Moerec__V1__CountSlot *own = mr_counts_slot(row, "");
    if (!rc) rc = add_block(c, own, kind == FC_USER ? 0 : per, NULL, &l, a, e);
    if (!rc && kind == FC_USER && c->spec.use_cats) {
        for (size_t i = 0; i < row->n_counts && !rc; i++)
            if (row->counts[i]->category[0])
                rc = add_block(c, row->counts[i], 2 * per, row->counts[i]->category, &l, a, e);
        if (!rc) rc = add_block(c, NULL, 2 * per, "", &l, a, e);
        Moerec__V1__CategoricalFeature *cf = mr_arena_alloc(a, sizeof *cf);
        Moerec__V1__CategoricalFeature **cp = mr_arena_alloc(a,
                                                             (row->n_categorical + 1) * sizeof *cp);
        char **vals = mr_arena_alloc(a, sizeof *vals);
        if (!rc && (!cf || !cp || !vals)) rc = mr_err_set(e, MR_ENOMEM, "out of request memory");
        if (!rc) {
            moerec__v1__categorical_feature__init(cf);
            cf->name = "@category";
            vals[0] = (char *)c->cat_col;
            cf->values = vals;
            cf->n_values = 1;
            if (row->n_categorical) memcpy(cp, row->categorical, row->n_categorical * sizeof *cp);
            cp[row->n_categorical] = cf;
            f->categorical = cp;
            f->n_categorical = row->n_categorical + 1;
        }
    }
    f->numeric = l.p;
    f->n_numeric = l.n;
    return rc;
}
