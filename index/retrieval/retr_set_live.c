/* retr_set_live.c — live catalogue updates on a retriever set (see
 * retr_set_live.h).
 *
 * An upsert of n items into a set of E FAISS experts costs one
 * retr_faiss_add per expert that receives items plus one retr_faiss_remove
 * per expert of the ids placed elsewhere (O(n) id-map probes each; ids an
 * expert does not hold are skipped), so O(n * E) probes and the FAISS adds
 * themselves. Flat and IVF experts remove at once; HNSW experts keep a
 * tombstone and rebuild past their threshold (retr_faiss.h).
 */
#include "index/retrieval/retr_set_live.h"

#include <stdlib.h>
#include <string.h>

#include "index/retrieval/retr_faiss.h"
#include "index/retrieval/retr_minhash.h"
#include "index/retrieval/retr_pop.h"

int retr_set_place(const retr_set *s, const float *vec, const char *column) {
    int n = retr_set_n_experts(s), first = -1;
    for (int i = 0; i < n && first < 0; i++)
        if (retr_set_expert_at(s, i)->kind == RETR_FAISS) first = i;
    if (first < 0) return -1;
    const char *col = retr_set_expert_column(s);
    if (col && column && *column) {
        char name[RETR_NAME_MAX];
        retr_set_expert_name(col, column, name);
        for (int i = 0; i < n; i++) {
            const mr_retr *r = retr_set_expert_at(s, i);
            if (r->kind == RETR_FAISS && strcmp(r->name, name) == 0) return i;
            /* a remote expert's items live on its own server */
            if (r->kind == RETR_CALLBACK && strcmp(r->name, name) == 0) return -1;
        }
    }
    int near = vec ? router_nearest_expert(retr_set_router(s), vec, retr_set_dim(s), RETR_FAISS)
                   : -1;
    return near >= 0 ? near : first;
}

int retr_set_upsert(retr_set *s, const retr_live_item *items, int64_t n, int64_t *n_placed,
                    mr_err *e) {
    if (n_placed) *n_placed = 0;
    if (!s || n < 0 || (n > 0 && !items))
        return mr_err_set(e, MR_EINVAL, "retr_set_upsert: bad arguments");
    for (int64_t i = 0; i < n; i++)
        if (items[i].id < 0)
            return mr_err_set(e, MR_EINVAL, "live upsert: item id %lld is negative",
                              (long long)items[i].id);
    if (n == 0) return 0;
    int d = retr_set_dim(s), ne = retr_set_n_experts(s), rc = 0;
    int *to = malloc((size_t)n * sizeof *to);
    int64_t *ids = malloc((size_t)n * sizeof *ids);
    float *x = malloc((size_t)n * (size_t)d * sizeof *x);
    if (!to || !ids || !x) {
        rc = mr_err_set(e, MR_ENOMEM, "live upsert: out of memory");
        goto out;
    }
    int64_t placed = 0;
    for (int64_t i = 0; i < n; i++) {
        to[i] = items[i].vec ? retr_set_place(s, items[i].vec, items[i].column) : -1;
        placed += to[i] >= 0;
    }
    retr_set_live_lock(s, 1);
    for (int ex = 0; ex < ne && !rc; ex++) {
        mr_retr *r = retr_set_expert_at(s, ex);
        if (r->kind != RETR_FAISS) continue;
        int64_t na = 0, nr = 0;
        for (int64_t i = 0; i < n; i++) /* ids placed elsewhere (or nowhere) leave it */
            if (to[i] != ex) ids[nr++] = items[i].id;
        if (nr && (rc = retr_faiss_remove(r, ids, nr, NULL, e))) break;
        for (int64_t i = 0; i < n; i++)
            if (to[i] == ex) {
                ids[na] = items[i].id;
                memcpy(x + na * d, items[i].vec, (size_t)d * sizeof *x);
                na++;
            }
        if (na) rc = retr_faiss_add(r, x, ids, na, e);
    }
    retr_set_live_lock(s, 0);
    if (!rc && n_placed) *n_placed = placed;
out:
    free(to);
    free(ids);
    free(x);
    return rc;
}

int retr_set_delete(retr_set *s, const int64_t *ids, int64_t n, mr_err *e) {
    if (!s || n < 0 || (n > 0 && !ids))
        return mr_err_set(e, MR_EINVAL, "retr_set_delete: bad arguments");
    int rc = 0;
    retr_set_live_lock(s, 1);
    for (int ex = 0; ex < retr_set_n_experts(s) && !rc; ex++) {
        mr_retr *r = retr_set_expert_at(s, ex);
        if (r->kind == RETR_CALLBACK) continue; /* remote: its own server deletes */
        rc = r->kind == RETR_FAISS        ? retr_faiss_remove(r, ids, n, NULL, e)
             : r->kind == RETR_POPULARITY ? retr_pop_remove(r, ids, n, e)
                                          : retr_minhash_remove(r, ids, n, e);
    }
    retr_set_live_lock(s, 0);
    return rc;
}

int retr_set_add_events(retr_set *s, const int64_t *users, const int64_t *items,
                        const int64_t *ts_ms, int64_t n, mr_err *e) {
    if (!s || n < 0 || (n > 0 && (!users || !items || !ts_ms)))
        return mr_err_set(e, MR_EINVAL, "retr_set_add_events: bad arguments");
    int rc = 0;
    for (int ex = 0; ex < retr_set_n_experts(s) && !rc; ex++) {
        mr_retr *r = retr_set_expert_at(s, ex);
        if (r->kind == RETR_POPULARITY) rc = retr_pop_add_events(r, items, ts_ms, NULL, n, e);
        if (r->kind == RETR_MINHASH) rc = retr_minhash_add(r, users, items, n, e);
    }
    return rc;
}
