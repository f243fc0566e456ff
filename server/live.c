/* live.c — the served retriever sets follow the store's catalogue (see
 * live.h).
 *
 * One apply of n item ids: one batched read of their vectors and one of
 * their feature blobs (both cached, just written), then per version one
 * retr_set_upsert. A replay walks the log in batches of LIVE_BATCH, so a
 * start-up costs one scan of the log plus the FAISS adds: O(items written
 * since the sets were built).
 */
#include "server/live.h"

#include <stdlib.h>
#include <string.h>

#include "index/retrieval/retr_set_live.h"
#include "index/store/item_log.h"
#include "proto/moerec.pb-c.h"

#define LIVE_BATCH 1024

/* The value of categorical feature `col` in a stored blob, or NULL. The
 * result points into *f (free it with moerec__v1__features__free_unpacked). */
static const char *live_column(const store_blob *b, const char *col, Moerec__V1__Features **f) {
    *f = NULL;
    if (!col || !b->data) return NULL;
    *f = moerec__v1__features__unpack(NULL, b->len, b->data);
    if (!*f) return NULL;
    for (size_t i = 0; i < (*f)->n_categorical; i++) {
        const Moerec__V1__CategoricalFeature *c = (*f)->categorical[i];
        if (!strcmp(c->name, col) && c->n_values > 0) return c->values[0];
    }
    return NULL;
}

/* Upsert ids into one set, reading vectors and features from the store. */
static int live_apply(retr_set *set, mr_backend *be, const uint64_t *ids, size_t n, mr_err *e) {
    int d = retr_set_dim(set);
    if (!be || !set || n == 0) return MR_OK;
    if (be->item_dim != d) return MR_OK; /* the set searches another space */
    const char *col = retr_set_expert_column(set);
    float *v = malloc(n * (size_t)d * sizeof *v);
    uint8_t *found = malloc(n);
    retr_live_item *it = malloc(n * sizeof *it);
    Moerec__V1__Features **fs = calloc(n, sizeof *fs);
    store_blob *blobs = malloc(n * sizeof *blobs);
    void *buf = NULL;
    int rc = MR_OK;
    if (!v || !found || !it || !fs || !blobs) {
        rc = mr_err_set(e, MR_ENOMEM, "live apply: out of memory");
        goto out;
    }
    if ((rc = emb_store_get(be->st, be->items, ids, n, v, found, e))) goto out;
    if (col && (rc = item_store_get(be->st, ids, n, blobs, &buf, e))) goto out;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >> 63) continue; /* a hashed string id: retrievers hold numeric ids only */
        it[m].id = (int64_t)ids[i];
        it[m].vec = found[i] ? v + i * (size_t)d : NULL;
        it[m++].column = col ? live_column(&blobs[i], col, &fs[i]) : NULL;
    }
    rc = retr_set_upsert(set, it, (int64_t)m, NULL, e);
out:
    for (size_t i = 0; fs && i < n; i++)
        if (fs[i]) moerec__v1__features__free_unpacked(fs[i], NULL);
    free(buf);
    free(v);
    free(found);
    free(it);
    free(fs);
    free(blobs);
    return rc;
}

typedef struct replay_ctx {
    retr_set *set;
    mr_backend *be;
    uint64_t *up, *del; /* (LIVE_BATCH) */
} replay_ctx;

static int replay_batch(const uint64_t *ids, const uint8_t *ops, size_t n, void *arg, mr_err *e) {
    replay_ctx *c = arg;
    size_t nu = 0, nd = 0;
    for (size_t i = 0; i < n; i++) {
        if (ops[i] == ITEM_LOG_UPSERT) c->up[nu++] = ids[i];
        else c->del[nd++] = ids[i];
    }
    int rc = live_apply(c->set, c->be, c->up, nu, e);
    if (!rc && nd) rc = retr_set_delete(c->set, (const int64_t *)c->del, (int64_t)nd, e);
    return rc;
}

int mr_live_replay(mr_model_ref *m, void *backend, mr_err *e) {
    mr_backend *be = backend;
    if (!m->retrievers || !be) return MR_OK;
    replay_ctx c = {m->retrievers, be, malloc(LIVE_BATCH * 8), malloc(LIVE_BATCH * 8)};
    int rc = !c.up || !c.del ? mr_err_set(e, MR_ENOMEM, "live replay: out of memory")
                             : item_log_scan(be->st, LIVE_BATCH, replay_batch, &c, e);
    free(c.up);
    free(c.del);
    return rc;
}

typedef struct each_ctx {
    mr_backend *be;
    const uint64_t *ids;
    size_t n;
    const int64_t *users, *items, *ts;
} each_ctx;

static int each_upserted(mr_model_ref *m, void *arg, mr_err *e) {
    each_ctx *c = arg;
    return m->retrievers ? live_apply(m->retrievers, c->be, c->ids, c->n, e) : MR_OK;
}

static int each_deleted(mr_model_ref *m, void *arg, mr_err *e) {
    each_ctx *c = arg;
    return m->retrievers ? retr_set_delete(m->retrievers, (const int64_t *)c->ids, (int64_t)c->n, e)
                         : MR_OK;
}

static int each_events(mr_model_ref *m, void *arg, mr_err *e) {
    each_ctx *c = arg;
    return m->retrievers
               ? retr_set_add_events(m->retrievers, c->users, c->items, c->ts, (int64_t)c->n, e)
               : MR_OK;
}

int mr_live_upserted(mr_registry *reg, mr_backend *be, const uint64_t *ids, size_t n, mr_err *e) {
    each_ctx c = {.be = be, .ids = ids, .n = n};
    return reg ? mr_registry_each(reg, each_upserted, &c, e) : MR_OK;
}

int mr_live_deleted(mr_registry *reg, const uint64_t *ids, size_t n, mr_err *e) {
    each_ctx c = {.ids = ids, .n = n};
    return reg ? mr_registry_each(reg, each_deleted, &c, e) : MR_OK;
}

int mr_live_events(mr_registry *reg, const int64_t *users, const int64_t *items,
                   const int64_t *ts_ms, size_t n, mr_err *e) {
    each_ctx c = {.n = n, .users = users, .items = items, .ts = ts_ms};
    return reg ? mr_registry_each(reg, each_events, &c, e) : MR_OK;
}
