/* retr_minhash.c — MinHash-LSH co-occurrence expert (see retr_minhash.h).
 *
 * State: item id -> row (retr_idmap), signatures (n_items, bands*rows)
 * uint64, and the LSH index keyed by item id. Adding interactions groups
 * them by item (sort), folds each item's new users into its signature and
 * re-inserts it in LSH only when the signature changed. Search is read-only
 * under the read lock: LSH lookups may run concurrently (minhash.h).
 *
 * File (little-endian): "MRRMINHS" u32 version=1, i32 bands, rows,
 * max_recent, cand_cap, f32 recency_decay, u64 seed, i64 n,
 * i64 items[n], u64 signatures[n][bands*rows], u64 xxh3 checksum (version 1: FNV-1a). Load re-inserts
 * every signature into a fresh LSH index.
 */
#include "index/retrieval/retr_minhash.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hashing/minhash.h"
#include "index/retrieval/retr_file.h"
#include "index/retrieval/retr_idmap.h"

typedef struct retr_minhash {
    mr_retr base; /* must stay first */
    int k;        /* signature length = bands * rows */
    int max_recent;
    float decay;
    int cand_cap;
    pthread_rwlock_t lock; /* add: write; search: read */
    minhash *mh;
    lsh_index *lsh;
    retr_idmap map;    /* item id -> row */
    uint64_t *sig;     /* (cap, k) signatures */
    int64_t *row_item; /* (cap) item id of each row */
    int64_t n, cap;
    int64_t n_removed; /* rows emptied by retr_minhash_remove */
    int bands, rows;   /* LSH shape, kept for save */
    uint64_t seed;
} retr_minhash;

static void mh_free(mr_retr *r) {
    retr_minhash *m = (retr_minhash *)r;
    minhash_free(m->mh);
    lsh_index_free(m->lsh);
    retr_idmap_free(&m->map);
    free(m->sig);
    free(m->row_item);
    pthread_rwlock_destroy(&m->lock);
    free(m);
}

static int64_t mh_size(mr_retr *r) {
    retr_minhash *m = (retr_minhash *)r;
    pthread_rwlock_rdlock(&m->lock);
    int64_t n = m->n - m->n_removed;
    pthread_rwlock_unlock(&m->lock);
    return n;
}

/* A row whose signature is empty: removed (no item has zero users). */
static int mh_sig_empty(const uint64_t *sig, int k) {
    for (int j = 0; j < k; j++)
        if (sig[j] != MINHASH_EMPTY) return 0;
    return 1;
}

typedef struct mh_cand {
    int64_t id;
    float score;
} mh_cand;

static int mh_cand_cmp(const void *a, const void *b) {
    const mh_cand *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

/* One query: accumulate seed similarities into cands via the map `at`. */
static int mh_search_one(retr_minhash *m, int k, const retr_user *u, int64_t *ids, float *scores,
                         mr_err *e) {
    int nseed = u ? u->n_recent : 0;
    int first = nseed > m->max_recent ? nseed - m->max_recent : 0;
    size_t cap = (size_t)m->cand_cap;
    lsh_hit *hits = malloc(cap * sizeof *hits);
    mh_cand *cands = malloc(cap * (size_t)(nseed - first > 0 ? nseed - first : 1) * sizeof *cands);
    retr_idmap at;
    int rc = 0, nc = 0;
    if (!hits || !cands || retr_idmap_init(&at, (int64_t)cap)) {
        free(hits);
        free(cands);
        return mr_err_set(e, MR_ENOMEM, "retriever '%s': out of memory", m->base.name);
    }
    for (int s = nseed - 1; s >= first; s--) { /* newest seed first */
        int64_t row = retr_idmap_get(&m->map, u->recent[s]);
        if (row < 0) continue; /* an item nobody else touched yet */
        const uint64_t *qs = m->sig + (size_t)row * m->k;
        float w = powf(m->decay, (float)(nseed - 1 - s));
        size_t total = 0;
        if ((rc = lsh_index_query(m->lsh, qs, hits, cap, &total, e))) break;
        size_t nh = total < cap ? total : cap;
        for (size_t h = 0; h < nh; h++) {
            int64_t id = (int64_t)hits[h].key;
            int64_t crow = retr_idmap_get(&m->map, id);
            float sim = (float)minhash_similarity(qs, m->sig + (size_t)crow * m->k, m->k);
            int64_t c = retr_idmap_get(&at, id);
            if (c < 0) {
                c = nc++;
                retr_idmap_put(&at, id, c);
                cands[c] = (mh_cand){id, 0};
            }
            cands[c].score += w * sim;
        }
    }
    int got = 0;
    if (!rc) {
        qsort(cands, (size_t)nc, sizeof *cands, mh_cand_cmp);
        for (int c = 0; c < nc && got < k; c++) {
            int seed = 0; /* never return the seeds themselves */
            for (int s = first; s < nseed && !seed; s++) seed = u->recent[s] == cands[c].id;
            if (seed) continue;
            ids[got] = cands[c].id;
            scores[got++] = cands[c].score;
        }
        retr_fill_missing(ids, scores, got, k);
    }
    retr_idmap_free(&at);
    free(hits);
    free(cands);
    return rc;
}

static int mh_search(mr_retr *r, const float *q, int nq, int k, const retr_user *user, int64_t *ids,
                     float *scores, mr_err *e) {
    (void)q;
    retr_minhash *m = (retr_minhash *)r;
    int rc = 0;
    pthread_rwlock_rdlock(&m->lock);
    for (int i = 0; i < nq && !rc; i++) /* the answer depends on the user only */
        rc = mh_search_one(m, k, user, ids + (size_t)i * k, scores + (size_t)i * k, e);
    pthread_rwlock_unlock(&m->lock);
    return rc;
}

static const retr_ops mh_ops = {mh_search, mh_size, mh_free};

int retr_minhash_create(mr_retr **out, const retr_minhash_config *cfg, mr_err *e) {
    if (!out || !cfg) return mr_err_set(e, MR_EINVAL, "retr_minhash_create: NULL argument");
    *out = NULL;
    int rc = retr_check_name(cfg->name, e);
    if (rc) return rc;
    int bands = cfg->bands ? cfg->bands : 16, rows = cfg->rows ? cfg->rows : 4;
    float decay = cfg->recency_decay ? cfg->recency_decay : 0.9f;
    if (bands < 1 || rows < 1 || (int64_t)bands * rows > MINHASH_MAX_K)
        return mr_err_set(e, MR_EINVAL, "retriever '%s': bands %d x rows %d not in [1, %d]",
                          cfg->name, bands, rows, MINHASH_MAX_K);
    if (!(decay > 0 && decay <= 1) || cfg->max_recent < 0 || cfg->cand_cap < 0)
        return mr_err_set(e, MR_EINVAL,
                          "retriever '%s': recency_decay not in (0, 1] or negative "
                          "max_recent/cand_cap",
                          cfg->name);
    retr_minhash *m = calloc(1, sizeof *m);
    if (!m) return mr_err_set(e, MR_ENOMEM, "retriever '%s': out of memory", cfg->name);
    snprintf(m->base.name, sizeof m->base.name, "%s", cfg->name);
    m->base.kind = RETR_MINHASH;
    m->base.ops = &mh_ops;
    m->base.impl = m;
    m->k = bands * rows;
    m->bands = bands;
    m->rows = rows;
    m->seed = cfg->seed;
    m->max_recent = cfg->max_recent ? cfg->max_recent : 20;
    m->decay = decay;
    m->cand_cap = cfg->cand_cap ? cfg->cand_cap : 2000;
    pthread_rwlock_init(&m->lock, NULL);
    if ((rc = minhash_create(&m->mh, m->k, cfg->seed, e)) ||
        (rc = lsh_index_create(&m->lsh, bands, rows, cfg->seed ^ 0x5eedull, e)))
        goto err;
    if (retr_idmap_init(&m->map, 0)) {
        rc = mr_err_set(e, MR_ENOMEM, "retriever '%s': out of memory", cfg->name);
        goto err;
    }
    *out = &m->base;
    return 0;
err:
    mh_free(&m->base);
    return rc;
}

typedef struct mh_event {
    int64_t item, user;
} mh_event;

static int mh_event_cmp(const void *a, const void *b) {
    const mh_event *x = a, *y = b;
    if (x->item != y->item) return (x->item > y->item) - (x->item < y->item);
    return (x->user > y->user) - (x->user < y->user);
}

/* Row of item, created (with an empty signature) when new. */
static int64_t mh_row(retr_minhash *m, int64_t item, int *fresh) {
    int64_t row = retr_idmap_get(&m->map, item);
    *fresh = row < 0;
    if (row >= 0) return row;
    if (m->n == m->cap) {
        int64_t cap = m->cap ? m->cap * 2 : 1024;
        uint64_t *s = realloc(m->sig, (size_t)cap * (size_t)m->k * sizeof *s);
        if (!s) return -1;
        m->sig = s;
        int64_t *ri = realloc(m->row_item, (size_t)cap * sizeof *ri);
        if (!ri) return -1;
        m->row_item = ri;
        m->cap = cap;
    }
    if (retr_idmap_put(&m->map, item, m->n)) return -1;
    m->row_item[m->n] = item;
    for (int j = 0; j < m->k; j++) m->sig[(size_t)m->n * m->k + j] = MINHASH_EMPTY;
    return m->n++;
}

int retr_minhash_add(mr_retr *r, const int64_t *users, const int64_t *items, int64_t n, mr_err *e) {
    if (!r || r->kind != RETR_MINHASH)
        return mr_err_set(e, MR_EINVAL, "retr_minhash_add: not a minhash retriever");
    if (n < 0 || (n > 0 && (!users || !items)))
        return mr_err_set(e, MR_EINVAL, "retriever '%s': bad interaction arrays", r->name);
    for (int64_t i = 0; i < n; i++)
        if (users[i] < 0 || items[i] < 0)
            return mr_err_set(e, MR_EINVAL, "retriever '%s': interaction %lld has a negative id",
                              r->name, (long long)i);
    retr_minhash *m = (retr_minhash *)r;
    mh_event *ev = malloc((size_t)(n ? n : 1) * sizeof *ev);
    uint64_t *old = malloc((size_t)m->k * sizeof *old);
    uint64_t *uids = malloc((size_t)(n ? n : 1) * sizeof *uids);
    int rc = 0;
    if (!ev || !old || !uids) {
        rc = mr_err_set(e, MR_ENOMEM, "retriever '%s': out of memory", r->name);
        goto out;
    }
    for (int64_t i = 0; i < n; i++) ev[i] = (mh_event){items[i], users[i]};
    qsort(ev, (size_t)n, sizeof *ev, mh_event_cmp);
    pthread_rwlock_wrlock(&m->lock);
    for (int64_t i = 0; i < n && !rc;) {
        int64_t j = i, nu = 0;
        for (; j < n && ev[j].item == ev[i].item; j++) uids[nu++] = (uint64_t)ev[j].user;
        int fresh = 0;
        int64_t row = mh_row(m, ev[i].item, &fresh);
        if (row < 0) {
            rc = mr_err_set(e, MR_ENOMEM, "retriever '%s': out of memory", r->name);
            break;
        }
        uint64_t *sig = m->sig + (size_t)row * m->k;
        memcpy(old, sig, (size_t)m->k * sizeof *old);
        if (!fresh && mh_sig_empty(old, m->k)) { /* removed earlier: back as new */
            fresh = 1;
            m->n_removed--;
        }
        minhash_update(m->mh, sig, uids, (size_t)nu);
        if (fresh || memcmp(old, sig, (size_t)m->k * sizeof *old)) {
            if (!fresh && (rc = lsh_index_remove(m->lsh, (uint64_t)ev[i].item, old, e))) break;
            rc = lsh_index_insert(m->lsh, (uint64_t)ev[i].item, sig, e);
        }
        i = j;
    }
    pthread_rwlock_unlock(&m->lock);
out:
    free(ev);
    free(old);
    free(uids);
    return rc;
}

int retr_minhash_remove(mr_retr *r, const int64_t *ids, int64_t n, mr_err *e) {
    if (!r || r->kind != RETR_MINHASH)
        return mr_err_set(e, MR_EINVAL, "retr_minhash_remove: not a minhash retriever");
    if (n < 0 || (n > 0 && !ids))
        return mr_err_set(e, MR_EINVAL, "retriever '%s': bad id array", r->name);
    retr_minhash *m = (retr_minhash *)r;
    int rc = 0;
    pthread_rwlock_wrlock(&m->lock);
    for (int64_t i = 0; i < n && !rc; i++) {
        int64_t row = ids[i] < 0 ? -1 : retr_idmap_get(&m->map, ids[i]);
        if (row < 0) continue;
        uint64_t *sig = m->sig + (size_t)row * m->k;
        if (mh_sig_empty(sig, m->k)) continue;
        rc = lsh_index_remove(m->lsh, (uint64_t)ids[i], sig, e);
        for (int j = 0; j < m->k; j++) sig[j] = MINHASH_EMPTY;
        m->n_removed++;
    }
    pthread_rwlock_unlock(&m->lock);
    return rc;
}

double retr_minhash_similarity(mr_retr *r, int64_t a, int64_t b) {
    if (!r || r->kind != RETR_MINHASH) return 0;
    retr_minhash *m = (retr_minhash *)r;
    pthread_rwlock_rdlock(&m->lock);
    int64_t ra = retr_idmap_get(&m->map, a), rb = retr_idmap_get(&m->map, b);
    double s = ra < 0 || rb < 0 ? 0.0
                                : minhash_similarity(m->sig + (size_t)ra * m->k,
                                                     m->sig + (size_t)rb * m->k, m->k);
    pthread_rwlock_unlock(&m->lock);
    return s;
}

#define MH_MAGIC "MRRMINHS"
#define MH_VERSION 2u /* 2: xxh3 checksum (1: FNV-1a, still read) */

int retr_minhash_save(mr_retr *r, const char *path, mr_err *e) {
    if (!r || r->kind != RETR_MINHASH || !path)
        return mr_err_set(e, MR_EINVAL, "retr_minhash_save: not a minhash retriever or NULL path");
    retr_minhash *m = (retr_minhash *)r;
    retr_wbuf b = {0};
    uint32_t ver = MH_VERSION;
    pthread_rwlock_rdlock(&m->lock);
    int32_t cfg[4] = {m->bands, m->rows, m->max_recent, m->cand_cap};
    int64_t n = m->n;
    int bad = retr_wbuf_put(&b, MH_MAGIC, 8) || retr_wbuf_put(&b, &ver, 4) ||
              retr_wbuf_put(&b, cfg, sizeof cfg) || retr_wbuf_put(&b, &m->decay, 4) ||
              retr_wbuf_put(&b, &m->seed, 8) || retr_wbuf_put(&b, &n, 8) ||
              retr_wbuf_put(&b, m->row_item, (size_t)n * 8) ||
              retr_wbuf_put(&b, m->sig, (size_t)n * (size_t)m->k * 8) || retr_wbuf_seal(&b);
    pthread_rwlock_unlock(&m->lock);
    return retr_file_commit(&b, bad, path, e);
}

int retr_minhash_load(mr_retr **out, const char *path, const char *name, mr_err *e) {
    if (!out || !path) return mr_err_set(e, MR_EINVAL, "retr_minhash_load: NULL argument");
    *out = NULL;
    char defname[RETR_NAME_MAX];
    name = retr_file_name_or_stem(name, path, defname, sizeof defname);
    unsigned char *buf = NULL;
    retr_rbuf rb;
    int rc = retr_file_open(path, MH_MAGIC, MH_VERSION, "MinHash", &buf, &rb, e);
    if (rc) return rc;
    int32_t cfg[4];
    float decay;
    uint64_t seed;
    int64_t n;
    mr_retr *r = NULL;
    if (retr_rbuf_take(&rb, cfg, sizeof cfg) || retr_rbuf_take(&rb, &decay, 4) ||
        retr_rbuf_take(&rb, &seed, 8) || retr_rbuf_take(&rb, &n, 8) || n < 0 || cfg[0] < 1 ||
        cfg[1] < 1 || (int64_t)cfg[0] * cfg[1] > MINHASH_MAX_K ||
        (size_t)n > (rb.n - rb.at) / 8 / (size_t)(1 + cfg[0] * cfg[1]) ||
        (size_t)n * 8 * (size_t)(1 + cfg[0] * cfg[1]) != rb.n - rb.at)
        goto corrupt;
    retr_minhash_config c = {.name = name,
                             .bands = cfg[0],
                             .rows = cfg[1],
                             .seed = seed,
                             .max_recent = cfg[2],
                             .recency_decay = decay,
                             .cand_cap = cfg[3]};
    if ((rc = retr_minhash_create(&r, &c, e))) goto out;
    retr_minhash *m = (retr_minhash *)r;
    const unsigned char *items = rb.p + rb.at, *sigs = items + (size_t)n * 8;
    for (int64_t i = 0; i < n; i++) {
        int64_t item;
        memcpy(&item, items + (size_t)i * 8, 8);
        int fresh = 0;
        if (item < 0 || retr_idmap_get(&m->map, item) >= 0) goto corrupt;
        int64_t row = mh_row(m, item, &fresh);
        if (row < 0) {
            rc = mr_err_set(e, MR_ENOMEM, "retriever '%s': out of memory loading", name);
            goto out;
        }
        uint64_t *sig = m->sig + (size_t)row * m->k;
        memcpy(sig, sigs + (size_t)i * m->k * 8, (size_t)m->k * 8);
        if ((rc = lsh_index_insert(m->lsh, (uint64_t)item, sig, e))) goto out;
    }
    *out = r;
    r = NULL;
    goto out;
corrupt:
    rc = mr_err_set(e, MR_ECORRUPT, "%s is not a valid moerec MinHash file (or is damaged)", path);
out:
    retr_free(r);
    free(buf);
    return rc;
}
