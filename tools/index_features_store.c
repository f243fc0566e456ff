/* index_features_store.c — `moerec index features --store DIR`: the
 * counting features of every user and item of the log as store rows Score
 * and Recommend add to every request (server/counts.h, docs/storage.md).
 *
 *   user profile row (replaced): a FeatureRow whose counters are the
 *     user's slot and, with --category-column, the slot of every (user,
 *     C) pair of the log, C the category text;
 *   item feature row (merged: old counters and old entries named as the
 *     i_ columns dropped, every other entry UpsertItems wrote kept): the
 *     item's slot; with categories, the categorical entry <category
 *     column> = the categories of the item's latest log event, in cell
 *     order;
 *   store meta "counts": tasks, windows, prior strength, category column,
 *     the global sums and the read time T.
 *
 * The server derives the served values from these at T with
 * fc_slot_values (the training columns' function), so they are the floats
 * of a test row read at T; AppendEvents with online_counts keeps the
 * counters current (server/counts_online.c).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/store/store.h"
#include "proto/moerec.pb-c.h"
#include "server/counts.h"
#include "tools/index_features_int.h"

#define FX_BATCH 512

int fx_dict_add(fx_dict *d, uint64_t h, const char *s, size_t len, mr_err *e) {
    if (u64map_get(&d->map, h) != U64MAP_NONE) return MR_OK;
    if (d->n == d->cap) {
        uint32_t cap = d->cap ? 2 * d->cap : 64;
        char **t = realloc(d->text, sizeof *t * cap);
        if (!t) return mr_err_set(e, MR_ENOMEM, "out of memory");
        d->text = t;
        d->cap = cap;
    }
    char *c = malloc(len + 1);
    if (!c) return mr_err_set(e, MR_ENOMEM, "out of memory");
    memcpy(c, s, len);
    c[len] = 0;
    if (u64map_put(&d->map, h, d->n)) {
        free(c);
        return mr_err_set(e, MR_ENOMEM, "out of memory");
    }
    d->text[d->n++] = c;
    return MR_OK;
}

const char *fx_dict_text(const fx_dict *d, uint64_t h) {
    uint32_t i = u64map_get(&d->map, h);
    return i == U64MAP_NONE ? NULL : d->text[i];
}

void fx_dict_free(fx_dict *d) {
    for (uint32_t i = 0; i < d->n; i++) free(d->text[i]);
    free(d->text);
    u64map_free(&d->map);
}

/* One row under construction: the counters (own slot first), at most one
 * categorical entry of ours, then the kept entries of the old row. */
typedef struct fx_row {
    Moerec__V1__CountSlot *cs;
    Moerec__V1__CountSlot **cp;
    size_t n, cap;
    Moerec__V1__CategoricalFeature cf;
    const char *cat_vals[FC_MAX_CATS];
    int has_cf;
} fx_row;

/* Add the slot (NULL: none, nothing added) of category cat ("" = own). */
static int row_slot(fx_row *r, const fc_spec *spec, const char *cat, const double *slot,
                    mr_err *e) {
    if (!slot) return MR_OK;
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        Moerec__V1__CountSlot *cs = realloc(r->cs, sizeof *cs * cap);
        if (cs) r->cs = cs;
        Moerec__V1__CountSlot **cp = cs ? realloc(r->cp, sizeof *cp * cap) : NULL;
        if (!cp) return mr_err_set(e, MR_ENOMEM, "out of memory");
        r->cp = cp;
        r->cap = cap;
    }
    moerec__v1__count_slot__init(&r->cs[r->n]);
    r->cs[r->n].category = (char *)cat;
    r->cs[r->n].sums = (double *)slot;
    r->cs[r->n].n_sums = (size_t)fc_slot_len(spec);
    r->n++;
    return MR_OK;
}

static void row_clear(fx_row *r) {
    r->n = 0;
    r->has_cf = 0;
}

static void row_free(fx_row *r) {
    free(r->cs);
    free(r->cp);
}

/* Pack r as a FeatureRow (plus old's entries, when old, but for the numeric
 * entries named in drop[0..ndrop), the values the counters now give, and
 * old's counters) into a malloc'd buffer. */
static int row_pack(fx_row *r, const Moerec__V1__FeatureRow *old, const char *const *drop,
                    int ndrop, uint8_t **out, size_t *len, mr_err *e) {
    size_t nn = old ? old->n_numeric : 0, nc = 1 + (old ? old->n_categorical : 0);
    Moerec__V1__NumericFeature **np = malloc(sizeof *np * (nn ? nn : 1));
    Moerec__V1__CategoricalFeature **cp = malloc(sizeof *cp * nc);
    if (!np || !cp) {
        free(np);
        free(cp);
        return mr_err_set(e, MR_ENOMEM, "out of memory");
    }
    size_t k = 0, c = 0;
    if (r->has_cf) cp[c++] = &r->cf;
    for (size_t j = 0; old && j < old->n_numeric; j++) { /* keep what the counters do not give */
        int ours = 0;
        for (int q = 0; q < ndrop && !ours; q++) ours = !strcmp(old->numeric[j]->name, drop[q]);
        if (!ours) np[k++] = old->numeric[j];
    }
    for (size_t j = 0; old && j < old->n_categorical; j++)
        if (!r->has_cf || strcmp(old->categorical[j]->name, r->cf.name))
            cp[c++] = old->categorical[j];
    for (size_t i = 0; i < r->n; i++) r->cp[i] = &r->cs[i];
    Moerec__V1__FeatureRow msg;
    moerec__v1__feature_row__init(&msg);
    msg.numeric = np;
    msg.n_numeric = k;
    msg.categorical = cp;
    msg.n_categorical = c;
    msg.counts = r->cp;
    msg.n_counts = r->n;
    *len = moerec__v1__feature_row__get_packed_size(&msg);
    *out = malloc(*len ? *len : 1);
    if (*out) moerec__v1__feature_row__pack(&msg, *out);
    free(np);
    free(cp);
    return *out ? MR_OK : mr_err_set(e, MR_ENOMEM, "out of memory");
}

/* (user, category hash) pairs of the log, sorted, distinct. */
typedef struct fx_pair {
    uint64_t user, cat;
} fx_pair;

static int by_pair(const void *a, const void *b) {
    const fx_pair *x = a, *y = b;
    if (x->user != y->user) return x->user < y->user ? -1 : 1;
    return (x->cat > y->cat) - (x->cat < y->cat);
}

static int fx_pairs(const fx_rows *log, fx_pair **out, size_t *n, mr_err *e) {
    size_t total = 0, k = 0;
    for (size_t i = 0; i < log->n; i++) total += (size_t)log->ev[i].n_cats;
    fx_pair *p = malloc(sizeof *p * (total ? total : 1));
    if (!p) return mr_err_set(e, MR_ENOMEM, "out of memory");
    for (size_t i = 0; i < log->n; i++)
        for (int c = 0; c < log->ev[i].n_cats; c++)
            p[k++] = (fx_pair){log->ev[i].user, log->ev[i].cats[c]};
    qsort(p, k, sizeof *p, by_pair);
    size_t w = 0;
    for (size_t i = 0; i < k; i++)
        if (!w || by_pair(&p[w - 1], &p[i])) p[w++] = p[i];
    *out = p;
    *n = w;
    return MR_OK;
}

/* The user's own counters, then with categories those of every (user,
 * category) pair of the log. */
static int user_row(const fx_opts *o, const fx_rows *log, const fc_counter *fin, uint64_t user,
                    const fx_pair *pairs, size_t npairs, fx_row *r, mr_err *e) {
    int rc = row_slot(r, &o->spec, "", fc_slot_of(fin, FC_USER, user), e);
    if (rc || !o->spec.use_cats) return rc;
    fx_pair key = {user, 0};
    size_t lo = 0, hi = npairs; /* first pair of this user */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (by_pair(&pairs[mid], &key) < 0) lo = mid + 1;
        else hi = mid;
    }
    for (size_t k = lo; k < npairs && pairs[k].user == user && !rc; k++) {
        const char *cat = fx_dict_text(log->dict, pairs[k].cat);
        if (!cat) return mr_err_set(e, MR_EINTERNAL, "category text lost");
        rc = row_slot(r, &o->spec, cat,
                      fc_slot_of(fin, FC_USER_CAT, fc_user_cat_key(user, pairs[k].cat)), e);
    }
    return rc;
}

/* The item's counters, then with categories the item's latest event's
 * categories. */
static int item_row(const fx_opts *o, const fx_rows *log, const fc_counter *fin, uint64_t item,
                    const fc_event *latest, fx_row *r, mr_err *e) {
    int rc = row_slot(r, &o->spec, "", fc_slot_of(fin, FC_ITEM, item), e);
    if (rc || !o->spec.use_cats || !latest || !latest->n_cats) return rc;
    moerec__v1__categorical_feature__init(&r->cf);
    r->cf.name = (char *)o->cat_col;
    for (int c = 0; c < latest->n_cats; c++)
        if (!(r->cat_vals[c] = fx_dict_text(log->dict, latest->cats[c])))
            return mr_err_set(e, MR_EINTERNAL, "category text lost");
    r->cf.values = (char **)r->cat_vals;
    r->cf.n_values = (size_t)latest->n_cats;
    r->has_cf = 1;
    return rc;
}

/* The store's counting state: the definition, the global sums, read at now. */
static int state_put(const fx_opts *o, mr_store *st, const fc_counter *fin, double now, mr_err *e) {
    mr_counts c;
    memset(&c, 0, sizeof c);
    c.spec = o->spec;
    for (int t = 0; t < o->spec.n_tasks; t++)
        snprintf(c.task[t], sizeof c.task[t], "%s", o->task[t].name);
    for (int w = 0; w < o->spec.n_windows; w++)
        snprintf(c.window_name[w], sizeof c.window_name[w], "%s", o->window_name[w]);
    if (o->spec.use_cats) {
        if (strlen(o->cat_col) >= sizeof c.cat_col)
            return mr_err_set(e, MR_EINVAL, "--category-column: at most %zu bytes for --store",
                              sizeof c.cat_col - 1);
        snprintf(c.cat_col, sizeof c.cat_col, "%s", o->cat_col);
    }
    fc_global(fin, c.pos, c.lab);
    c.as_of = now;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = mr_counts_pack(&c, &buf, &len, e);
    if (!rc) rc = store_meta_put(st, MR_COUNTS_META, buf, len, e);
    free(buf);
    return rc;
}

/* Index of each item's latest event (ties: the later row) by item key. */
static int latest_events(const fx_rows *log, u64map *m, mr_err *e) {
    if (u64map_init(m, 1024)) return mr_err_set(e, MR_ENOMEM, "out of memory");
    for (size_t i = 0; i < log->n; i++) {
        int ins = 0;
        uint32_t at = u64map_intern(m, log->ev[i].item, (uint32_t)i, &ins);
        if (at == U64MAP_NONE) return mr_err_set(e, MR_ENOMEM, "out of memory");
        if (!ins && log->ev[i].t >= log->ev[at].t && u64map_put(m, log->ev[i].item, (uint32_t)i))
            return mr_err_set(e, MR_ENOMEM, "out of memory");
    }
    return MR_OK;
}

int fx_store(const fx_opts *o, const fx_rows *log, const fc_counter *fin, double now, json_t *sum,
             mr_err *e) {
    int nv = fc_row_values(&o->spec), rc;
    const char *tasks[FC_MAX_TASKS], *wins[FC_MAX_WINDOWS];
    for (int t = 0; t < o->spec.n_tasks; t++) tasks[t] = o->task[t].name;
    for (int w = 0; w < o->spec.n_windows; w++) wins[w] = o->window_name[w];
    char name_buf[3 * (FC_MAX_WINDOWS * (1 + FC_MAX_TASKS) + 1)][128];
    const char *names[3 * (FC_MAX_WINDOWS * (1 + FC_MAX_TASKS) + 1)];
    for (int j = 0; j < nv; j++) {
        if ((rc = fc_value_name(&o->spec, j, tasks, wins, name_buf[j], sizeof name_buf[j], e)))
            return rc;
        names[j] = name_buf[j];
    }
    int per = fc_kind_values(&o->spec); /* an item row's old i_ entries are dropped */
    store_config cfg;
    store_config_init(&cfg);
    mr_store *st = NULL;
    uint64_t *keys = NULL;
    fx_pair *pairs = NULL;
    size_t npairs = 0;
    u64map latest = {0};
    int have_latest = 0;
    fx_row *rows = calloc(FX_BATCH, sizeof *rows);
    store_blob *blobs = calloc(FX_BATCH, sizeof *blobs), *cur = calloc(FX_BATCH, sizeof *cur);
    if (!rows || !blobs || !cur) {
        rc = mr_err_set(e, MR_ENOMEM, "out of memory");
        goto done;
    }
    if (o->spec.use_cats) {
        if ((rc = fx_pairs(log, &pairs, &npairs, e))) goto done;
        have_latest = 1;
        if ((rc = latest_events(log, &latest, e))) goto done;
    }
    if ((rc = store_open(&st, o->store_dir, &cfg, e))) {
        rc = mr_err_wrap(e, "--store %s", o->store_dir);
        goto done;
    }
    for (int kind = FC_USER; kind <= FC_ITEM && !rc; kind++) {
        size_t n;
        free(keys);
        keys = NULL;
        if ((rc = fc_keys(fin, kind, &keys, &n, e))) break;
        for (size_t b = 0; b < n && !rc; b += FX_BATCH) {
            size_t nb = n - b < FX_BATCH ? n - b : FX_BATCH;
            void *buf = NULL;
            if (kind == FC_ITEM && (rc = item_store_get(st, keys + b, nb, cur, &buf, e))) break;
            for (size_t i = 0; i < nb && !rc; i++) {
                row_clear(&rows[i]);
                blobs[i] = (store_blob){NULL, 0};
                Moerec__V1__FeatureRow *old = NULL;
                if (kind == FC_USER)
                    rc = user_row(o, log, fin, keys[b + i], pairs, npairs, &rows[i], e);
                else {
                    uint32_t at = have_latest ? u64map_get(&latest, keys[b + i]) : U64MAP_NONE;
                    rc = item_row(o, log, fin, keys[b + i], at == U64MAP_NONE ? NULL : &log->ev[at],
                                  &rows[i], e);
                    if (!rc && cur[i].data &&
                        !(old = moerec__v1__feature_row__unpack(NULL, cur[i].len, cur[i].data)))
                        rc = mr_err_set(e, MR_ECORRUPT,
                                        "stored features of item %" PRIu64 " do not decode",
                                        keys[b + i]);
                }
                uint8_t *packed = NULL;
                size_t len = 0;
                if (!rc) rc = row_pack(&rows[i], old, names + per, per, &packed, &len, e);
                blobs[i] = (store_blob){packed, len};
                if (old) moerec__v1__feature_row__free_unpacked(old, NULL);
            }
            if (!rc)
                rc = kind == FC_USER ? user_store_put(st, keys + b, nb, blobs, e)
                                     : item_store_put(st, keys + b, nb, blobs, e);
            for (size_t i = 0; i < nb; i++) {
                free((void *)blobs[i].data);
                blobs[i].data = NULL;
            }
            free(buf);
        }
        json_object_set_new(sum, kind == FC_USER ? "stored_users" : "stored_items",
                            json_integer((json_int_t)n));
    }
    if (!rc) rc = state_put(o, st, fin, now, e);
    if (!rc && o->spec.use_cats)
        json_object_set_new(sum, "stored_user_categories", json_integer((json_int_t)npairs));
    json_object_set_new(sum, "store_as_of", json_real(now));
done:
    store_close(st);
    free(keys);
    free(pairs);
    if (have_latest) u64map_free(&latest);
    for (int i = 0; rows && i < FX_BATCH; i++) row_free(&rows[i]);
    free(rows);
    free(blobs);
    free(cur);
    return rc;
}
