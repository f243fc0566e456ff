/* retr_pop.c — popularity expert (see retr_pop.h).
 *
 * State: item id -> dense index (retr_idmap), and per index the log-domain
 * key L = log2(count at t0) where t0 is a fixed reference (the first event
 * time), so that count(t) = 2^(L - (t - t0)/h). Adding an event is a
 * log-add-exp. Search reads a top list sorted by L; the list is rebuilt
 * (O(n log cap) with a heap) when events arrived since the last sort.
 *
 * File (little-endian): "MRRPOPUL" u32 version=1, f64 half_life_ms,
 * i32 top_cap, i32 refresh_ms, i64 t0_ms, i64 latest_ms, i32 started,
 * i64 n, i64 items[n], f64 keys[n], u64 xxh3 checksum (version 1: FNV-1a).
 */
#include "index/retrieval/retr_pop.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "index/retrieval/retr_file.h"
#include "index/retrieval/retr_idmap.h"

typedef struct retr_pop {
    mr_retr base; /* must stay first */
    double half_life_ms;
    int top_cap;
    int refresh_ms;
    pthread_rwlock_t lock; /* events and re-sorts: write; search: read */
    retr_idmap map;        /* item id -> index */
    int64_t *items;        /* (n) item id per index */
    double *key;           /* (n) log2 of count at t0 */
    int64_t n, cap;
    int64_t n_removed; /* items whose key is -inf (retr_pop_remove) */
    int64_t t0_ms;     /* reference time, set by the first event */
    int64_t latest_ms; /* newest event time seen */
    int64_t *top;      /* (n_top) indexes, key descending */
    int n_top;
    int started;        /* t0_ms is set */
    int dirty;          /* events since the last sort */
    uint64_t sorted_ns; /* when the top list was last sorted */
} retr_pop;

static void pop_free(mr_retr *r) {
    retr_pop *p = (retr_pop *)r;
    retr_idmap_free(&p->map);
    free(p->items);
    free(p->key);
    free(p->top);
    pthread_rwlock_destroy(&p->lock);
    free(p);
}

static int64_t pop_size(mr_retr *r) {
    retr_pop *p = (retr_pop *)r;
    pthread_rwlock_rdlock(&p->lock);
    int64_t n = p->n - p->n_removed;
    pthread_rwlock_unlock(&p->lock);
    return n;
}

/* "a ranks before b": higher key, then the smaller id (deterministic ties). */
static int pop_before(const retr_pop *p, int64_t a, int64_t b) {
    if (p->key[a] != p->key[b]) return p->key[a] > p->key[b];
    return p->items[a] < p->items[b];
}

/* Min-heap on rank (root = worst kept), for the top-cap selection. */
static void pop_sift_down(const retr_pop *p, int64_t *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && pop_before(p, h[w], h[l])) w = l;
        if (r < n && pop_before(p, h[w], h[r])) w = r;
        if (w == i) return;
        int64_t t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* Rebuild the top list. Caller holds the write lock. */
static void pop_resort(retr_pop *p) {
    int cap = p->top_cap, n = 0;
    int64_t *h = p->top;
    for (int64_t i = 0; i < p->n; i++) {
        if (p->key[i] == -INFINITY) continue; /* removed */
        if (n < cap) {
            h[n++] = i;
            for (int j = n / 2 - 1; j >= 0 && n == cap; j--) pop_sift_down(p, h, n, j);
            continue;
        }
        if (pop_before(p, i, h[0])) {
            h[0] = i;
            pop_sift_down(p, h, n, 0);
        }
    }
    if (n < cap)
        for (int j = n / 2 - 1; j >= 0; j--) pop_sift_down(p, h, n, j);
    for (int end = n - 1; end > 0; end--) { /* heap sort: best first */
        int64_t t = h[0];
        h[0] = h[end];
        h[end] = t;
        pop_sift_down(p, h, end, 0);
    }
    p->n_top = n;
    p->dirty = 0;
    p->sorted_ns = mr_now_ns();
}

static int pop_search(mr_retr *r, const float *q, int nq, int k, const retr_user *user,
                      int64_t *ids, float *scores, mr_err *e) {
    (void)q;
    (void)user;
    (void)e;
    retr_pop *p = (retr_pop *)r;
    pthread_rwlock_rdlock(&p->lock);
    uint64_t age_ms = (mr_now_ns() - p->sorted_ns) / 1000000u;
    if (p->dirty && (p->sorted_ns == 0 || age_ms >= (uint64_t)p->refresh_ms)) {
        pthread_rwlock_unlock(&p->lock);
        pthread_rwlock_wrlock(&p->lock);
        if (p->dirty) pop_resort(p);
        pthread_rwlock_unlock(&p->lock);
        pthread_rwlock_rdlock(&p->lock);
    }
    double now = (double)(p->latest_ms - p->t0_ms) / p->half_life_ms;
    int got = p->n_top < k ? p->n_top : k;
    for (int j = 0; j < got; j++) {
        int64_t i = p->top[j];
        ids[j] = p->items[i];
        scores[j] = (float)exp2(p->key[i] - now);
    }
    retr_fill_missing(ids, scores, got, k);
    pthread_rwlock_unlock(&p->lock);
    for (int qi = 1; qi < nq; qi++) { /* the answer does not depend on the query */
        for (int j = 0; j < k; j++) {
            ids[(size_t)qi * k + j] = ids[j];
            scores[(size_t)qi * k + j] = scores[j];
        }
    }
    return 0;
}

static const retr_ops pop_ops = {pop_search, pop_size, pop_free};

int retr_pop_create(mr_retr **out, const retr_pop_config *cfg, mr_err *e) {
    if (!out || !cfg) return mr_err_set(e, MR_EINVAL, "retr_pop_create: NULL argument");
    *out = NULL;
    int rc = retr_check_name(cfg->name, e);
    if (rc) return rc;
    if (cfg->half_life_s < 0 || cfg->top_cap < 0 || cfg->top_cap > RETR_K_MAX * 10 ||
        cfg->refresh_ms < 0)
        return mr_err_set(e, MR_EINVAL,
                          "retriever '%s': negative half_life_s/refresh_ms or "
                          "top_cap outside [0, %d]",
                          cfg->name, RETR_K_MAX * 10);
    retr_pop *p = calloc(1, sizeof *p);
    if (!p) return mr_err_set(e, MR_ENOMEM, "retriever '%s': out of memory", cfg->name);
    snprintf(p->base.name, sizeof p->base.name, "%s", cfg->name);
    p->base.kind = RETR_POPULARITY;
    p->base.dim = 0;
    p->base.ops = &pop_ops;
    p->base.impl = p;
    p->half_life_ms = (cfg->half_life_s > 0 ? cfg->half_life_s : 7 * 86400.0) * 1000.0;
    p->top_cap = cfg->top_cap > 0 ? cfg->top_cap : 2048;
    p->refresh_ms = cfg->refresh_ms;
    pthread_rwlock_init(&p->lock, NULL);
    p->top = malloc((size_t)p->top_cap * sizeof *p->top);
    if (!p->top || retr_idmap_init(&p->map, 0)) {
        pop_free(&p->base);
        return mr_err_set(e, MR_ENOMEM, "retriever '%s': out of memory", cfg->name);
    }
    *out = &p->base;
    return 0;
}

static int pop_grow(retr_pop *p) {
    if (p->n < p->cap) return 0;
    int64_t cap = p->cap ? p->cap * 2 : 1024;
    int64_t *items = realloc(p->items, (size_t)cap * sizeof *items);
    if (!items) return MR_ENOMEM;
    p->items = items;
    double *key = realloc(p->key, (size_t)cap * sizeof *key);
    if (!key) return MR_ENOMEM;
    p->key = key;
    p->cap = cap;
    return 0;
}

/* log2(2^a + 2^b) without overflow. */
static double log2_add(double a, double b) {
    if (a == -INFINITY) return b;
    double hi = a > b ? a : b, lo = a > b ? b : a;
    return hi + log2(1.0 + exp2(lo - hi));
}

int retr_pop_add_events(mr_retr *r, const int64_t *items, const int64_t *ts_ms,
                        const float *weights, int64_t n, mr_err *e) {
    if (!r || r->kind != RETR_POPULARITY)
        return mr_err_set(e, MR_EINVAL, "retr_pop_add_events: not a popularity retriever");
    if (n < 0 || (n > 0 && (!items || !ts_ms)))
        return mr_err_set(e, MR_EINVAL, "retriever '%s': bad event arrays", r->name);
    for (int64_t i = 0; i < n; i++) {
        if (items[i] < 0)
            return mr_err_set(e, MR_EINVAL, "retriever '%s': item id %lld is negative", r->name,
                              (long long)items[i]);
        if (weights && !(weights[i] > 0 && isfinite(weights[i])))
            return mr_err_set(e, MR_EINVAL, "retriever '%s': event %lld has weight %g", r->name,
                              (long long)i, weights[i]);
    }
    retr_pop *p = (retr_pop *)r;
    int rc = 0;
    pthread_rwlock_wrlock(&p->lock);
    for (int64_t i = 0; i < n; i++) {
        if (!p->started) {
            p->t0_ms = p->latest_ms = ts_ms[i];
            p->started = 1;
        }
        int64_t at = retr_idmap_get(&p->map, items[i]);
        int fresh = at < 0;
        if (at < 0) {
            if (pop_grow(p) || retr_idmap_put(&p->map, items[i], p->n)) {
                rc = mr_err_set(e, MR_ENOMEM, "retriever '%s': out of memory", r->name);
                break;
            }
            at = p->n++;
            p->items[at] = items[i];
            p->key[at] = -INFINITY;
        }
        double w = weights ? weights[i] : 1.0;
        double t = (double)(ts_ms[i] - p->t0_ms) / p->half_life_ms;
        if (!fresh && p->key[at] == -INFINITY) p->n_removed--; /* removed, now back */
        p->key[at] = log2_add(p->key[at], log2(w) + t);
        if (ts_ms[i] > p->latest_ms) p->latest_ms = ts_ms[i];
        p->dirty = 1;
    }
    pthread_rwlock_unlock(&p->lock);
    return rc;
}

int retr_pop_remove(mr_retr *r, const int64_t *items, int64_t n, mr_err *e) {
    if (!r || r->kind != RETR_POPULARITY)
        return mr_err_set(e, MR_EINVAL, "retr_pop_remove: not a popularity retriever");
    if (n < 0 || (n > 0 && !items))
        return mr_err_set(e, MR_EINVAL, "retriever '%s': bad id array", r->name);
    retr_pop *p = (retr_pop *)r;
    pthread_rwlock_wrlock(&p->lock);
    for (int64_t i = 0; i < n; i++) {
        int64_t at = items[i] < 0 ? -1 : retr_idmap_get(&p->map, items[i]);
        if (at < 0 || p->key[at] == -INFINITY) continue;
        p->key[at] = -INFINITY; /* count 0: out of the top list at the next sort */
        p->n_removed++;
        p->dirty = 1;
        p->sorted_ns = 0; /* re-sort on the next search, whatever refresh_ms says */
    }
    pthread_rwlock_unlock(&p->lock);
    return 0;
}

double retr_pop_count(mr_retr *r, int64_t item, int64_t now_ms) {
    if (!r || r->kind != RETR_POPULARITY) return 0;
    retr_pop *p = (retr_pop *)r;
    pthread_rwlock_rdlock(&p->lock);
    int64_t at = retr_idmap_get(&p->map, item);
    double c = at < 0 ? 0.0 : exp2(p->key[at] - (double)(now_ms - p->t0_ms) / p->half_life_ms);
    pthread_rwlock_unlock(&p->lock);
    return c;
}

#define POP_MAGIC "MRRPOPUL"
#define POP_VERSION 2u /* 2: xxh3 checksum (1: FNV-1a, still read) */

int retr_pop_save(mr_retr *r, const char *path, mr_err *e) {
    if (!r || r->kind != RETR_POPULARITY || !path)
        return mr_err_set(e, MR_EINVAL, "retr_pop_save: not a popularity retriever or NULL path");
    retr_pop *p = (retr_pop *)r;
    retr_wbuf b = {0};
    uint32_t ver = POP_VERSION;
    pthread_rwlock_rdlock(&p->lock);
    int32_t cfg[2] = {p->top_cap, p->refresh_ms}, started = p->started;
    int64_t t[2] = {p->t0_ms, p->latest_ms}, n = p->n;
    int bad = retr_wbuf_put(&b, POP_MAGIC, 8) || retr_wbuf_put(&b, &ver, 4) ||
              retr_wbuf_put(&b, &p->half_life_ms, 8) || retr_wbuf_put(&b, cfg, sizeof cfg) ||
              retr_wbuf_put(&b, t, sizeof t) || retr_wbuf_put(&b, &started, 4) ||
              retr_wbuf_put(&b, &n, 8) || retr_wbuf_put(&b, p->items, (size_t)n * 8) ||
              retr_wbuf_put(&b, p->key, (size_t)n * 8) || retr_wbuf_seal(&b);
    pthread_rwlock_unlock(&p->lock);
    return retr_file_commit(&b, bad, path, e);
}

int retr_pop_load(mr_retr **out, const char *path, const char *name, mr_err *e) {
    if (!out || !path) return mr_err_set(e, MR_EINVAL, "retr_pop_load: NULL argument");
    *out = NULL;
    char defname[RETR_NAME_MAX];
    name = retr_file_name_or_stem(name, path, defname, sizeof defname);
    unsigned char *buf = NULL;
    retr_rbuf rb;
    int rc = retr_file_open(path, POP_MAGIC, POP_VERSION, "popularity", &buf, &rb, e);
    if (rc) return rc;
    double hl;
    int32_t cfg[2], started;
    int64_t t[2], n;
    mr_retr *r = NULL;
    if (retr_rbuf_take(&rb, &hl, 8) || retr_rbuf_take(&rb, cfg, sizeof cfg) ||
        retr_rbuf_take(&rb, t, sizeof t) || retr_rbuf_take(&rb, &started, 4) ||
        retr_rbuf_take(&rb, &n, 8) || n < 0 || (size_t)n > (rb.n - rb.at) / 16 ||
        (size_t)n * 16 != rb.n - rb.at || !(hl > 0))
        goto corrupt;
    retr_pop_config c = {
        .name = name, .half_life_s = hl / 1000.0, .top_cap = cfg[0], .refresh_ms = cfg[1]};
    if ((rc = retr_pop_create(&r, &c, e))) goto out;
    retr_pop *p = (retr_pop *)r;
    p->t0_ms = t[0];
    p->latest_ms = t[1];
    p->started = started != 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t item;
        double key;
        memcpy(&item, rb.p + rb.at + (size_t)i * 8, 8);
        memcpy(&key, rb.p + rb.at + (size_t)n * 8 + (size_t)i * 8, 8);
        if (item < 0 || retr_idmap_get(&p->map, item) >= 0) goto corrupt;
        if (pop_grow(p) || retr_idmap_put(&p->map, item, p->n)) {
            rc = mr_err_set(e, MR_ENOMEM, "retriever '%s': out of memory loading", name);
            goto out;
        }
        p->items[p->n] = item;
        p->key[p->n++] = key;
        p->n_removed += key == -INFINITY;
    }
    p->dirty = n > 0;
    *out = r;
    r = NULL;
    goto out;
corrupt:
    rc = mr_err_set(e, MR_ECORRUPT, "%s is not a valid moerec popularity file (or is damaged)",
                    path);
out:
    retr_free(r);
    free(buf);
    return rc;
}
