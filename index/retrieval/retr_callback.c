/* retr_callback.c — the callback expert kind (retr_callback.h): the
 * retriever vtable over caller-supplied start / finish / size / free.
 * retr_search on such an expert is start + finish with no deadline of its
 * own (the implementation's limit applies).
 */
#include "index/retrieval/retr_callback.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct retr_cb {
    retr_callbacks cb; /* copied at creation */
    void *ctx;         /* owned: cb.free releases it */
} retr_cb;

static int retr_cb_search(mr_retr *r, const float *q, int nq, int k, const retr_user *user,
                          int64_t *ids, float *scores, mr_err *e) {
    retr_cb *c = r->impl;
    for (int i = 0; i < nq; i++) {
        void *call = NULL;
        const float *qi = q ? q + (size_t)i * (size_t)r->dim : NULL;
        int rc = c->cb.start(c->ctx, qi, r->dim, k, user, 0, &call, e);
        if (rc) return rc;
        rc = c->cb.finish(c->ctx, call, ids + (size_t)i * (size_t)k, scores + (size_t)i * (size_t)k,
                          k, e);
        if (rc) return rc;
    }
    return 0;
}

static int64_t retr_cb_size(mr_retr *r) {
    retr_cb *c = r->impl;
    return c->cb.size ? c->cb.size(c->ctx) : -1;
}

static void retr_cb_free(mr_retr *r) {
    retr_cb *c = r->impl;
    if (c->cb.free) c->cb.free(c->ctx);
    free(c);
    free(r);
}

static const retr_ops retr_cb_ops = {retr_cb_search, retr_cb_size, retr_cb_free};

int retr_callback_create(mr_retr **out, const char *name, int dim, const retr_callbacks *cb,
                         void *ctx, mr_err *e) {
    mr_retr *r = NULL;
    retr_cb *c = NULL;
    int rc;
    if (out) *out = NULL;
    if (!out || !cb || !cb->start || !cb->finish) {
        rc = mr_err_set(e, MR_EINVAL, "retr_callback_create: NULL argument or callback");
        goto err;
    }
    if ((rc = retr_check_name(name, e))) goto err;
    if (dim < 0) {
        rc = mr_err_set(e, MR_EINVAL, "retriever '%s': dim %d < 0", name, dim);
        goto err;
    }
    r = calloc(1, sizeof *r);
    c = calloc(1, sizeof *c);
    if (!r || !c) {
        rc = mr_err_set(e, MR_ENOMEM, "retriever '%s': out of memory", name);
        goto err;
    }
    c->cb = *cb;
    c->ctx = ctx;
    snprintf(r->name, sizeof r->name, "%s", name);
    r->kind = RETR_CALLBACK;
    r->dim = dim;
    r->ops = &retr_cb_ops;
    r->impl = c;
    *out = r;
    return 0;
err:
    free(r);
    free(c);
    if (cb && cb->free) cb->free(ctx);
    return rc;
}

int retr_callback_start(mr_retr *r, const float *q, int dim, int k, const retr_user *user,
                        int64_t deadline_ms, void **call, mr_err *e) {
    int rc = retr_check_query(r, q, dim, 1, k, e);
    if (rc) return rc;
    if (r->kind != RETR_CALLBACK || !call)
        return mr_err_set(e, MR_EINVAL, "retriever '%s' is not a callback expert", r->name);
    retr_cb *c = r->impl;
    *call = NULL;
    return c->cb.start(c->ctx, r->dim ? q : NULL, r->dim, k, user, deadline_ms, call, e);
}

int retr_callback_finish(mr_retr *r, void *call, int64_t *ids, float *scores, int k, mr_err *e) {
    if (!r || r->kind != RETR_CALLBACK || !ids || !scores || k <= 0)
        return mr_err_set(e, MR_EINVAL, "retr_callback_finish: bad argument");
    retr_cb *c = r->impl;
    return c->cb.finish(c->ctx, call, ids, scores, k, e);
}

void *retr_callback_ctx(const mr_retr *r) {
    return r && r->kind == RETR_CALLBACK ? ((const retr_cb *)r->impl)->ctx : NULL;
}

const retr_callbacks *retr_callback_table(const mr_retr *r) {
    return r && r->kind == RETR_CALLBACK ? &((const retr_cb *)r->impl)->cb : NULL;
}
