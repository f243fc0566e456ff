/* retr.c — validation and dispatch for the expert retriever interface.
 *
 * Every public search goes through retr_search so that the checks a client
 * can trip (wrong dimension, k out of range, NaN in the query) produce the
 * same clear INVALID_ARGUMENT message whatever the kind of expert.
 */
#include "index/retrieval/retr.h"

#include <math.h>
#include <string.h>

#include "common/name.h"
#include "common/tensor.h"

const char *retr_kind_name(retr_kind kind) {
    switch (kind) {
    case RETR_FAISS: return "faiss";
    case RETR_MINHASH: return "minhash";
    case RETR_POPULARITY: return "popularity";
    case RETR_CALLBACK: return "callback";
    }
    return "unknown";
}

int retr_check_name(const char *name, mr_err *e) {
    return mr_name_check("retriever name", name, RETR_NAME_MAX, e);
}

int retr_check_query(const mr_retr *r, const float *q, int dim, int nq, int k, mr_err *e) {
    if (!r) return mr_err_set(e, MR_EINVAL, "retriever is NULL");
    if (k <= 0 || k > RETR_FETCH_MAX)
        return mr_err_set(e, MR_EINVAL, "retriever '%s': k = %d out of range [1, %d]", r->name, k,
                          RETR_FETCH_MAX);
    if (nq <= 0) return mr_err_set(e, MR_EINVAL, "retriever '%s': %d queries", r->name, nq);
    if (r->dim == 0) return 0;
    if (!q) return mr_err_set(e, MR_EINVAL, "retriever '%s' needs a query vector", r->name);
    if (dim != r->dim)
        return mr_err_set(e, MR_EINVAL, "retriever '%s': query dimension %d, index has %d", r->name,
                          dim, r->dim);
    for (int i = 0; i < nq; i++) {
        const float *row = q + (size_t)i * (size_t)dim;
        if (!mr_all_finite(row, (size_t)dim))
            return mr_err_set(e, MR_EINVAL, "retriever '%s': query %d has a NaN or infinite value",
                              r->name, i);
    }
    return 0;
}

void retr_fill_missing(int64_t *ids, float *scores, int from, int k) {
    for (int j = from; j < k; j++) {
        ids[j] = -1;
        scores[j] = -INFINITY;
    }
}

int retr_search(mr_retr *r, const float *q, int dim, int nq, int k, const retr_user *user,
                int64_t *ids, float *scores, mr_err *e) {
    int rc = retr_check_query(r, q, dim, nq, k, e);
    if (rc) return rc;
    if (!ids || !scores) return mr_err_set(e, MR_EINVAL, "retriever '%s': NULL output", r->name);
    if (user && user->n_recent < 0)
        return mr_err_set(e, MR_EINVAL, "retriever '%s': n_recent = %d", r->name, user->n_recent);
    if (user && user->n_recent > 0 && !user->recent)
        return mr_err_set(e, MR_EINVAL, "retriever '%s': recent items NULL", r->name);
    return r->ops->search(r, q, nq, k, user, ids, scores, e);
}

int64_t retr_size(mr_retr *r) { return r ? r->ops->size(r) : 0; }

void retr_free(mr_retr *r) {
    if (r) r->ops->free(r);
}
