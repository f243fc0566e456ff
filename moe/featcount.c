/* featcount.c — counting features (see featcount.h for the definitions).
 *
 * One counter holds, per kind (user, item, user x category), a hash map
 * from key to a slot of doubles: last event time, the time the decayed
 * sums refer to, then per window the event count and per task the
 * positive and labelled sums. Doubles, because counts of popular items
 * pass float's 2^24 exact integers and decay products accumulate.
 * O(1) per event and key; memory (2 + W + 2 W T) * 8 bytes per key.
 */
#include "moe/featcount.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hashing/u64map.h"

typedef struct fc_kind {
    u64map map;    /* key -> slot                           */
    double *v;     /* (cap, stride) slot values             */
    uint64_t *key; /* (cap) key of each slot, for fc_keys   */
    size_t n, cap; /* slots used / allocated                */
} fc_kind;

struct fc_counter {
    fc_spec s;
    int stride; /* doubles per slot                      */
    fc_kind k[FC_KINDS];
    double g_pos[FC_MAX_TASKS]; /* global labelled positives (all time)  */
    double g_lab[FC_MAX_TASKS]; /* global labelled events (all time)     */
};

/* slot layout */
#define S_LAST 0
#define S_REF 1
#define S_CNT(w) (2 + (w))

int fc_kind_values(const fc_spec *s) { return s->n_windows * (1 + s->n_tasks) + !s->no_recency; }

int fc_row_values(const fc_spec *s) { return fc_kind_values(s) * (s->use_cats ? 3 : 2); }

int fc_spec_check(const fc_spec *s, mr_err *e) {
    if (s->n_tasks < 1 || s->n_tasks > FC_MAX_TASKS)
        return mr_err_set(e, MR_EINVAL, "counting features: %d tasks (1..%d)", s->n_tasks,
                          FC_MAX_TASKS);
    if (s->n_windows < 1 || s->n_windows > FC_MAX_WINDOWS)
        return mr_err_set(e, MR_EINVAL, "counting features: %d windows (1..%d)", s->n_windows,
                          FC_MAX_WINDOWS);
    for (int w = 0; w < s->n_windows; w++)
        if (!(s->window[w] >= 0) || !isfinite(s->window[w]))
            return mr_err_set(e, MR_EINVAL,
                              "counting features: window %d is %g (0 = all time, or > 0)", w,
                              s->window[w]);
    if (!(s->prior_strength >= 0) || !isfinite(s->prior_strength))
        return mr_err_set(e, MR_EINVAL, "counting features: prior strength %g (>= 0)",
                          s->prior_strength);
    return MR_OK;
}

int fc_value_name(const fc_spec *s, int j, const char *const *task_names,
                  const char *const *window_names, char *buf, size_t cap, mr_err *e) {
    static const char *const prefix[FC_KINDS] = {"u", "i", "uc"};
    int per = fc_kind_values(s), kind = j / per, r = j % per, W = s->n_windows, n;
    if (j < 0 || j >= fc_row_values(s))
        return mr_err_set(e, MR_EINVAL, "counting features: no value %d", j);
    if (r < W) n = snprintf(buf, cap, "%s_cnt_%s", prefix[kind], window_names[r]);
    else if (r < W + W * s->n_tasks)
        n = snprintf(buf, cap, "%s_%s_rate_%s", prefix[kind], task_names[(r - W) % s->n_tasks],
                     window_names[(r - W) / s->n_tasks]);
    else n = snprintf(buf, cap, "%s_recency", prefix[kind]);
    if (n < 0 || (size_t)n >= cap)
        return mr_err_set(e, MR_EINVAL, "counting features: name of value %d too long", j);
    return MR_OK;
}

int fc_create(fc_counter **out, const fc_spec *s, mr_err *e) {
    *out = NULL;
    int rc = fc_spec_check(s, e);
    if (rc) return rc;
    fc_counter *c = calloc(1, sizeof *c);
    if (!c) return mr_err_set(e, MR_ENOMEM, "counting features: out of memory");
    c->s = *s;
    c->stride = fc_slot_len(s);
    for (int k = 0; k < FC_KINDS; k++)
        if (u64map_init(&c->k[k].map, 1024)) goto err;
    *out = c;
    return MR_OK;
err:
    fc_free(c);
    return mr_err_set(e, MR_ENOMEM, "counting features: out of memory");
}

void fc_free(fc_counter *c) {
    if (!c) return;
    for (int k = 0; k < FC_KINDS; k++) {
        u64map_free(&c->k[k].map);
        free(c->k[k].v);
        free(c->k[k].key);
    }
    free(c);
}

uint64_t fc_user_cat_key(uint64_t user, uint64_t cat) {
    uint64_t x = user * 0x9e3779b97f4a7c15ull ^
                 (cat + 0x632be59bd9b4e019ull + (user << 6) + (user >> 2));
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    return x ^ (x >> 29);
}

/* The slot of key (created as "never seen" when absent); NULL on ENOMEM. */
static double *slot_get(fc_counter *c, int kind, uint64_t key) {
    fc_kind *k = &c->k[kind];
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 256;
        double *v = realloc(k->v, cap * (size_t)c->stride * sizeof *v);
        if (!v) return NULL;
        k->v = v;
        uint64_t *ks = realloc(k->key, cap * sizeof *ks);
        if (!ks) return NULL;
        k->key = ks;
        k->cap = cap;
    }
    int ins = 0;
    uint32_t i = u64map_intern(&k->map, key, (uint32_t)k->n, &ins);
    if (i == U64MAP_NONE) return NULL;
    double *v = k->v + (size_t)i * (size_t)c->stride;
    if (ins) {
        fc_slot_init(&c->s, v);
        k->key[k->n++] = key;
    }
    return v;
}

static const double *slot_find(const fc_counter *c, int kind, uint64_t key) {
    uint32_t i = u64map_get(&c->k[kind].map, key);
    return i == U64MAP_NONE ? NULL : c->k[kind].v + (size_t)i * (size_t)c->stride;
}

/* Weight of an event of time t in window w of a slot referring to ref. */
static double decay(double window, double age) {
    return window > 0 && age > 0 ? exp(-age / window) : 1.0;
}

int fc_slot_len(const fc_spec *s) { return 2 + s->n_windows + 2 * s->n_windows * s->n_tasks; }

void fc_slot_init(const fc_spec *s, double *slot) {
    memset(slot, 0, (size_t)fc_slot_len(s) * sizeof *slot);
    slot[S_LAST] = slot[S_REF] = -INFINITY;
}

/* positives and labelled sums of window w, task t */
#define P_POS(s, w, t) (2 + (s)->n_windows + 2 * ((w) * (s)->n_tasks + (t)))
#define P_LAB(s, w, t) (P_POS(s, w, t) + 1)

void fc_slot_add(const fc_spec *s, double *v, const fc_event *ev) {
    int W = s->n_windows, T = s->n_tasks;
    double wt[FC_MAX_WINDOWS];
    if (ev->t > v[S_REF]) { /* move the sums forward to ev->t */
        for (int w = 0; w < W; w++) {
            double f = v[S_REF] == -INFINITY ? 1.0 : decay(s->window[w], ev->t - v[S_REF]);
            v[S_CNT(w)] *= f;
            for (int t = 0; t < T; t++) v[P_POS(s, w, t)] *= f, v[P_LAB(s, w, t)] *= f;
            wt[w] = 1.0;
        }
        v[S_REF] = ev->t;
    } else /* an older event than the slot's reference: counted decayed */
        for (int w = 0; w < W; w++) wt[w] = decay(s->window[w], v[S_REF] - ev->t);
    if (ev->t > v[S_LAST]) v[S_LAST] = ev->t;
    for (int w = 0; w < W; w++) {
        v[S_CNT(w)] += wt[w];
        for (int t = 0; t < T; t++)
            if (ev->has[t]) {
                v[P_LAB(s, w, t)] += wt[w];
                v[P_POS(s, w, t)] += wt[w] * ev->y[t];
            }
    }
}

static void slot_add(fc_counter *c, double *v, const fc_event *ev) { fc_slot_add(&c->s, v, ev); }

/* A category repeated in one event ("Drama|Drama") counts once. */
static int dup_cat(const fc_event *ev, int j) {
    for (int k = 0; k < j; k++)
        if (ev->cats[k] == ev->cats[j]) return 1;
    return 0;
}

int fc_add(fc_counter *c, const fc_event *ev, mr_err *e) {
    if (!isfinite(ev->t))
        return mr_err_set(e, MR_EINVAL, "counting features: event time %g", ev->t);
    if (c->s.use_cats && ev->n_cats > FC_MAX_CATS)
        return mr_err_set(e, MR_EINVAL,
                          "counting features: %d categories in one event (at most %d)", ev->n_cats,
                          FC_MAX_CATS);
    double *u = slot_get(c, FC_USER, ev->user), *i = u ? slot_get(c, FC_ITEM, ev->item) : NULL;
    if (!i) return mr_err_set(e, MR_ENOMEM, "counting features: out of memory");
    slot_add(c, u, ev);
    slot_add(c, i, ev);
    for (int j = 0; c->s.use_cats && j < ev->n_cats; j++) {
        if (dup_cat(ev, j)) continue;
        double *uc = slot_get(c, FC_USER_CAT, fc_user_cat_key(ev->user, ev->cats[j]));
        if (!uc) return mr_err_set(e, MR_ENOMEM, "counting features: out of memory");
        slot_add(c, uc, ev);
    }
    for (int t = 0; t < c->s.n_tasks; t++)
        if (ev->has[t]) c->g_lab[t] += 1, c->g_pos[t] += ev->y[t];
    return MR_OK;
}

void fc_slot_values(const fc_spec *s, const double *gpos, const double *glab, const double *v,
                    double now, float *out) {
    int W = s->n_windows, T = s->n_tasks;
    double a = s->prior_strength, prior[FC_MAX_TASKS];
    for (int t = 0; t < T; t++) prior[t] = (gpos[t] + 1) / (glab[t] + 2);
    for (int w = 0; w < W; w++) {
        double f = v ? decay(s->window[w], now - v[S_REF]) : 0;
        double cnt = v ? f * v[S_CNT(w)] : 0;
        out[w] = (float)log1p(cnt > 0 ? cnt : 0);
        for (int t = 0; t < T; t++) {
            double pos = v ? f * v[P_POS(s, w, t)] : 0;
            double lab = v ? f * v[P_LAB(s, w, t)] : 0;
            if (lab < 0) lab = 0;
            if (pos < 0) pos = 0;
            out[W + w * T + t] = (float)(lab + a > 0 ? (pos + a * prior[t]) / (lab + a) : prior[t]);
        }
    }
    if (s->no_recency) return;
    out[W + W * T] = v && v[S_LAST] > -INFINITY
                         ? (float)log1p(now > v[S_LAST] ? now - v[S_LAST] : 0)
                         : NAN;
}

/* Values of slot v (NULL: no events) of c minus slot s of sub (both may be
 * NULL; sub is a counter of a subset of c's events with windows all 0,
 * out-of-fold), read at now: the difference is made a slot read by
 * fc_slot_values (its reference time now, so no decay is applied twice). */
static void read_slot(const fc_counter *c, const fc_counter *sub, const double *v, const double *s,
                      double now, float *out) {
    int T = c->s.n_tasks;
    double pos[FC_MAX_TASKS], lab[FC_MAX_TASKS];
    for (int t = 0; t < T; t++) {
        pos[t] = c->g_pos[t] - (sub ? sub->g_pos[t] : 0);
        lab[t] = c->g_lab[t] - (sub ? sub->g_lab[t] : 0);
    }
    if (!v || !s) {
        fc_slot_values(&c->s, pos, lab, v, now, out);
        return;
    }
    double d[2 + FC_MAX_WINDOWS + 2 * FC_MAX_WINDOWS * FC_MAX_TASKS];
    d[S_LAST] = v[S_LAST];
    d[S_REF] = now;
    for (int j = 2; j < c->stride; j++) {
        int w = j < 2 + c->s.n_windows ? j - 2 : (j - 2 - c->s.n_windows) / (2 * T);
        d[j] = decay(c->s.window[w], now - v[S_REF]) * v[j] - s[j];
    }
    fc_slot_values(&c->s, pos, lab, d, now, out);
}

static void read_diff(const fc_counter *c, const fc_counter *sub, int kind, uint64_t key,
                      double now, float *out) {
    read_slot(c, sub, slot_find(c, kind, key), sub ? slot_find(sub, kind, key) : NULL, now, out);
}

void fc_read_key(const fc_counter *c, int kind, uint64_t key, double now, float *out) {
    read_diff(c, NULL, kind, key, now, out);
}

const double *fc_slot_of(const fc_counter *c, int kind, uint64_t key) {
    return slot_find(c, kind, key);
}

void fc_global(const fc_counter *c, double *pos, double *lab) {
    for (int t = 0; t < c->s.n_tasks; t++) pos[t] = c->g_pos[t], lab[t] = c->g_lab[t];
}

void fc_read_absent(const fc_counter *c, double now, float *out) {
    read_slot(c, NULL, NULL, NULL, now, out);
}

void fc_mean_blocks(const float *blocks, int n, int per, float *out) {
    for (int j = 0; j < per; j++) {
        float sum = 0;
        int seen = 0;
        for (int k = 0; k < n; k++) {
            float v = blocks[(size_t)k * (size_t)per + (size_t)j];
            if (!isnan(v)) sum += v, seen++;
        }
        out[j] = seen ? sum / (float)seen : NAN;
    }
}

static void read_row_diff(const fc_counter *c, const fc_counter *sub, const fc_event *ev,
                          double now, float *out) {
    int per = fc_kind_values(&c->s);
    read_diff(c, sub, FC_USER, ev->user, now, out);
    read_diff(c, sub, FC_ITEM, ev->item, now, out + per);
    if (!c->s.use_cats) return;
    float blocks[FC_MAX_CATS * (FC_MAX_WINDOWS * (1 + FC_MAX_TASKS) + 1)];
    int n = 0;
    for (int k = 0; k < ev->n_cats && k < FC_MAX_CATS; k++)
        if (!dup_cat(ev, k))
            read_diff(c, sub, FC_USER_CAT, fc_user_cat_key(ev->user, ev->cats[k]), now,
                      blocks + (size_t)n++ * per);
    fc_mean_blocks(blocks, n, per, out + 2 * per);
}

void fc_read_row(const fc_counter *c, const fc_event *ev, double now, float *out) {
    read_row_diff(c, NULL, ev, now, out);
}

size_t fc_key_count(const fc_counter *c, int kind) { return c->k[kind].n; }

int fc_keys(const fc_counter *c, int kind, uint64_t **keys, size_t *n, mr_err *e) {
    const fc_kind *k = &c->k[kind];
    *n = k->n;
    *keys = malloc((k->n ? k->n : 1) * sizeof **keys);
    if (!*keys) return mr_err_set(e, MR_ENOMEM, "counting features: out of memory");
    if (k->n) memcpy(*keys, k->key, k->n * sizeof **keys);
    return MR_OK;
}

static int by_time(const void *a, const void *b, void *ctx) {
    const fc_event *ev = ctx;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return ev[x].t < ev[y].t ? -1 : ev[x].t > ev[y].t ? 1 : (x > y) - (x < y);
}

static uint64_t fold_hash(uint64_t seed, uint64_t i) {
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + i + 1;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

int fc_fold(uint64_t seed, size_t row, int folds) {
    return (int)(fold_hash(seed, row) % (uint64_t)folds);
}

int fc_train_values(const fc_spec *s, const fc_event *ev, size_t n, int mode, int folds,
                    uint64_t seed, float *out, fc_counter **final, mr_err *e) {
    if (final) *final = NULL;
    int rc = fc_spec_check(s, e);
    if (rc) return rc;
    if (mode == FC_OOF) {
        if (folds < 2 || folds > 64)
            return mr_err_set(e, MR_EINVAL, "counting features: %d folds (2..64)", folds);
        for (int w = 0; w < s->n_windows; w++)
            if (s->window[w] != 0)
                return mr_err_set(
                    e, MR_EINVAL,
                    "counting features: out-of-fold values need all-time windows (window %d is %g)",
                    w, s->window[w]);
    } else if (mode != FC_PAST)
        return mr_err_set(e, MR_EINVAL, "counting features: mode %d (past, oof)", mode);
    int per_row = fc_row_values(s);
    size_t *ord = malloc((n ? n : 1) * sizeof *ord);
    fc_counter *c = NULL, **fold = NULL;
    if (!ord) return mr_err_set(e, MR_ENOMEM, "counting features: out of memory");
    for (size_t i = 0; i < n; i++) ord[i] = i;
    qsort_r(ord, n, sizeof *ord, by_time, (void *)ev);
    if ((rc = fc_create(&c, s, e))) goto err;
    /* Past: a group of equal times is read before any of it is counted. */
    for (size_t g = 0; g < n;) {
        size_t h = g;
        while (h < n && ev[ord[h]].t == ev[ord[g]].t) h++;
        for (size_t i = g; i < h; i++)
            fc_read_row(c, &ev[ord[i]], ev[ord[i]].t, out + ord[i] * (size_t)per_row);
        for (size_t i = g; i < h; i++)
            if ((rc = fc_add(c, &ev[ord[i]], e))) goto err;
        g = h;
    }
    if (mode == FC_OOF) { /* counts and rates from the other folds; recency stays from the past */
        fold = calloc((size_t)folds, sizeof *fold);
        if (!fold) {
            rc = mr_err_set(e, MR_ENOMEM, "counting features: out of memory");
            goto err;
        }
        for (int f = 0; f < folds; f++)
            if ((rc = fc_create(&fold[f], s, e))) goto err;
        for (size_t i = 0; i < n; i++)
            if ((rc = fc_add(fold[fc_fold(seed, i, folds)], &ev[i], e))) goto err;
        float tmp[3 * (FC_MAX_WINDOWS * (1 + FC_MAX_TASKS) + 1)];
        int per = fc_kind_values(s), kinds = per_row / per;
        for (size_t i = 0; i < n; i++) {
            read_row_diff(c, fold[fc_fold(seed, i, folds)], &ev[i], ev[i].t, tmp);
            float *o = out + i * (size_t)per_row;
            int counted = s->n_windows *
                          (1 + s->n_tasks); /* recency, if any, stays from the past */
            for (int k = 0; k < kinds; k++)
                memcpy(o + k * per, tmp + k * per, sizeof(float) * (size_t)counted);
        }
    }
    if (fold)
        for (int f = 0; f < folds; f++) fc_free(fold[f]);
    free(fold);
    free(ord);
    if (final) *final = c;
    else fc_free(c);
    return MR_OK;
err:
    if (fold)
        for (int f = 0; f < folds; f++) fc_free(fold[f]);
    free(fold);
    fc_free(c);
    free(ord);
    return rc;
}
