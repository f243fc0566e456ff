/* bigraph.c — build the CSR user x item graph (see bigraph.h).
 *
 * O(E) with no comparison sort: a counting sort by item, then a second
 * counting sort by user walking items in order, leaves every user's
 * adjacency sorted by item, so duplicate pairs are adjacent and are merged
 * or rejected in one scan; the item side is the transpose, built the same
 * way. Raw ids are numbered through a u64map, then renumbered in id order.
 */
#include "hashing/bigraph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hashing/idsearch.h"
#include "hashing/u64map.h"

void bigraph_free(bigraph *g) {
    if (!g) return;
    free(g->uoff);
    free(g->uadj);
    free(g->uw);
    free(g->ioff);
    free(g->iadj);
    free(g->iw);
    free(g->du);
    free(g->di);
    free(g->user_ids);
    free(g->item_ids);
    free(g);
}

size_t bigraph_bytes(const bigraph *g) {
    size_t e = (size_t)g->nedges, wb = g->uw ? 2 * e * sizeof(float) : 0;
    return sizeof *g + ((size_t)g->nu + 1 + (size_t)g->ni + 1) * sizeof(int64_t) +
           2 * e * sizeof(int32_t) + wb + ((size_t)g->nu + (size_t)g->ni) * sizeof(double) +
           (g->user_ids ? ((size_t)g->nu + (size_t)g->ni) * sizeof(uint64_t) : 0);
}

static int bigraph_check_edges(int32_t nu, int32_t ni, const int32_t *users, const int32_t *items,
                               const float *w, size_t n, mr_err *e) {
    if (n == 0) return mr_err_set(e, MR_EINVAL, "graph: no edges (empty interaction graph)");
    if (nu < 1 || ni < 1)
        return mr_err_set(e, MR_EINVAL, "graph: need at least one user and one item (%d, %d)", nu,
                          ni);
    if (n > (size_t)INT64_MAX / 4) return mr_err_set(e, MR_EINVAL, "graph: too many edges");
    for (size_t j = 0; j < n; j++) {
        if (users[j] < 0 || users[j] >= nu || items[j] < 0 || items[j] >= ni)
            return mr_err_set(e, MR_EINVAL,
                              "graph: edge %zu (user %d, item %d) out of range (%d users, "
                              "%d items)",
                              j, users[j], items[j], nu, ni);
        if (w && !(isfinite(w[j]) && w[j] > 0.0f))
            return mr_err_set(e, MR_EINVAL,
                              "graph: edge %zu has weight %g (must be finite "
                              "and > 0)",
                              j, (double)w[j]);
    }
    return 0;
}

/* Counting sort of n (key, val, w) triples by key into off/adj/wout:
 * stable, so equal keys keep input order. off has nkeys + 1 slots. */
static void bigraph_bucket(int32_t nkeys, const int32_t *key, const int32_t *val, const float *w,
                           size_t n, int64_t *off, int32_t *adj, float *wout) {
    memset(off, 0, ((size_t)nkeys + 1) * sizeof *off);
    for (size_t j = 0; j < n; j++) off[key[j] + 1]++;
    for (int32_t k = 0; k < nkeys; k++) off[k + 1] += off[k];
    for (size_t j = 0; j < n; j++) {
        int64_t p = off[key[j]]++;
        adj[p] = val[j];
        if (wout) wout[p] = w ? w[j] : 1.0f;
    }
    for (int32_t k = nkeys; k > 0; k--) off[k] = off[k - 1]; /* restore starts */
    off[0] = 0;
}

/* Transpose CSR (noff keys) into the other side (nkeys_out keys), walking
 * keys in order so each output list comes out sorted. */
static void bigraph_transpose(int32_t nin, const int64_t *inoff, const int32_t *inadj,
                              const float *inw, int32_t nout, int64_t *off, int32_t *adj,
                              float *wout) {
    memset(off, 0, ((size_t)nout + 1) * sizeof *off);
    for (int64_t k = 0; k < inoff[nin]; k++) off[inadj[k] + 1]++;
    for (int32_t k = 0; k < nout; k++) off[k + 1] += off[k];
    for (int32_t a = 0; a < nin; a++)
        for (int64_t k = inoff[a]; k < inoff[a + 1]; k++) {
            int64_t p = off[inadj[k]]++;
            adj[p] = a;
            if (wout) wout[p] = inw[k];
        }
    for (int32_t k = nout; k > 0; k--) off[k] = off[k - 1];
    off[0] = 0;
}

int bigraph_build(bigraph **out, int32_t nu, int32_t ni, const int32_t *users, const int32_t *items,
                  const float *w, size_t n, int flags, mr_err *e) {
    *out = NULL;
    int rc = bigraph_check_edges(nu, ni, users, items, w, n, e);
    if (rc) return rc;
    int weighted = w != NULL || (flags & BIGRAPH_MERGE_DUPLICATES);
    bigraph *g = calloc(1, sizeof *g);
    int64_t *toff = malloc(((size_t)ni + 1) * sizeof *toff);
    int32_t *tadj = malloc(n * sizeof *tadj);
    float *tw = weighted ? malloc(n * sizeof *tw) : NULL;
    if (!g || !toff || !tadj || (weighted && !tw)) goto nomem;
    g->nu = nu;
    g->ni = ni;
    g->uoff = malloc(((size_t)nu + 1) * sizeof *g->uoff);
    g->uadj = malloc(n * sizeof *g->uadj);
    g->uw = weighted ? malloc(n * sizeof *g->uw) : NULL;
    if (!g->uoff || !g->uadj || (weighted && !g->uw)) goto nomem;
    /* By item (stable), then by user walking items in order: sorted lists. */
    bigraph_bucket(ni, items, users, w, n, toff, tadj, tw);
    bigraph_transpose(ni, toff, tadj, tw, nu, g->uoff, g->uadj, g->uw);
    free(toff);
    free(tadj);
    free(tw);
    toff = NULL;
    tadj = NULL;
    tw = NULL;
    /* Duplicates are adjacent now: reject, or merge and compact. */
    int64_t wpos = 0;
    for (int32_t u = 0; u < nu; u++) {
        int64_t start = g->uoff[u], end = g->uoff[u + 1];
        g->uoff[u] = wpos;
        for (int64_t k = start; k < end; k++) {
            if (k > start && g->uadj[k] == g->uadj[k - 1]) {
                if (!(flags & BIGRAPH_MERGE_DUPLICATES)) {
                    rc = mr_err_set(e, MR_EINVAL,
                                    "graph: duplicate edge (user %d, item %d); "
                                    "merge duplicates or pass BIGRAPH_MERGE_DUPLICATES",
                                    u, g->uadj[k]);
                    goto err;
                }
                g->uw[wpos - 1] += g->uw[k];
                continue;
            }
            g->uadj[wpos] = g->uadj[k];
            if (g->uw) g->uw[wpos] = g->uw[k];
            wpos++;
        }
    }
    g->uoff[nu] = wpos;
    g->nedges = wpos;
    g->ioff = malloc(((size_t)ni + 1) * sizeof *g->ioff);
    g->iadj = malloc((size_t)wpos * sizeof *g->iadj);
    g->iw = weighted ? malloc((size_t)wpos * sizeof *g->iw) : NULL;
    g->du = calloc((size_t)nu, sizeof *g->du);
    g->di = calloc((size_t)ni, sizeof *g->di);
    if (!g->ioff || !g->iadj || (weighted && !g->iw) || !g->du || !g->di) goto nomem;
    bigraph_transpose(nu, g->uoff, g->uadj, g->uw, ni, g->ioff, g->iadj, g->iw);
    double total = 0;
    for (int32_t u = 0; u < nu; u++)
        for (int64_t k = g->uoff[u]; k < g->uoff[u + 1]; k++) {
            double x = bigraph_uweight(g, k);
            g->du[u] += x;
            g->di[g->uadj[k]] += x;
            total += x;
        }
    g->total_w = total;
    *out = g;
    return 0;
nomem:
    rc = mr_err_set(e, MR_ENOMEM, "graph: out of memory for %zu edges", n);
err:
    free(toff);
    free(tadj);
    free(tw);
    bigraph_free(g);
    return rc;
}

/* Number the distinct ids[0..n) by ascending id: dense[j] = rank of ids[j];
 * *sorted_out (ndistinct) the sorted ids. */
static int bigraph_number_ids(const uint64_t *ids, size_t n, int32_t *dense, uint64_t **sorted_out,
                              int32_t *nout, const char *what, mr_err *e) {
    u64map map;
    if (u64map_init(&map, 1024)) return mr_err_set(e, MR_ENOMEM, "graph: out of memory");
    uint32_t next = 0;
    for (size_t j = 0; j < n; j++) {
        uint32_t v = u64map_intern(&map, ids[j], next, NULL);
        if (v == U64MAP_NONE) {
            u64map_free(&map);
            return mr_err_set(e, MR_ENOMEM, "graph: out of memory numbering %s", what);
        }
        if (v == next && ++next >= (uint32_t)BIGRAPH_MAX_NODES) {
            u64map_free(&map);
            return mr_err_set(e, MR_EINVAL, "graph: more than %d distinct %s",
                              BIGRAPH_MAX_NODES - 1, what);
        }
        dense[j] = (int32_t)v;
    }
    uint64_t *sorted = malloc(((size_t)next + 1) * sizeof *sorted);
    int32_t *rank = malloc(((size_t)next + 1) * sizeof *rank);
    if (!sorted || !rank) {
        free(sorted);
        free(rank);
        u64map_free(&map);
        return mr_err_set(e, MR_ENOMEM, "graph: out of memory numbering %s", what);
    }
    for (size_t s = 0; s < map.cap; s++)
        if (map.vals[s] != U64MAP_NONE) sorted[map.vals[s]] = map.keys[s];
    u64map_free(&map);
    /* Provisional index p holds sorted[p]; sort ids, then rank[p] = position. */
    uint64_t *byid = malloc(((size_t)next + 1) * sizeof *byid);
    if (!byid) {
        free(sorted);
        free(rank);
        return mr_err_set(e, MR_ENOMEM, "graph: out of memory numbering %s", what);
    }
    memcpy(byid, sorted, (size_t)next * sizeof *byid);
    qsort(byid, next, sizeof *byid, idsearch_cmp_u64);
    for (uint32_t p = 0; p < next; p++) rank[p] = (int32_t)idsearch_find(byid, next, sorted[p]);
    for (size_t j = 0; j < n; j++) dense[j] = rank[dense[j]];
    free(sorted);
    free(rank);
    *sorted_out = byid;
    *nout = (int32_t)next;
    return 0;
}

int bigraph_build_ids(bigraph **out, const uint64_t *users, const uint64_t *items, const float *w,
                      size_t n, int flags, mr_err *e) {
    *out = NULL;
    if (n == 0) return mr_err_set(e, MR_EINVAL, "graph: no edges (empty interaction graph)");
    if (flags & BIGRAPH_SHARED_IDS)
        for (size_t j = 0; j < n; j++)
            if (users[j] == items[j])
                return mr_err_set(e, MR_EINVAL, "graph: edge %zu is a self-loop (id %llu)", j,
                                  (unsigned long long)users[j]);
    int32_t *du = malloc(n * sizeof *du), *di = malloc(n * sizeof *di);
    uint64_t *uids = NULL, *iids = NULL;
    int32_t nu = 0, ni = 0;
    int rc;
    if (!du || !di) {
        rc = mr_err_set(e, MR_ENOMEM, "graph: out of memory for %zu edges", n);
        goto done;
    }
    if ((rc = bigraph_number_ids(users, n, du, &uids, &nu, "users", e)) ||
        (rc = bigraph_number_ids(items, n, di, &iids, &ni, "items", e)))
        goto done;
    if ((rc = bigraph_build(out, nu, ni, du, di, w, n, flags, e))) {
        mr_err_wrap(e, "graph from raw ids (user/item numbers are ranks of the sorted ids)");
        goto done;
    }
    (*out)->user_ids = uids;
    (*out)->item_ids = iids;
    uids = iids = NULL;
done:
    free(du);
    free(di);
    free(uids);
    free(iids);
    return rc;
}
