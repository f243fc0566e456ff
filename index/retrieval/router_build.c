/* router_build.c — pilot embeddings: the builder and their file.
 *
 * router_build_pilots is what `moerec index` and the routing benchmark call:
 * given rows (training queries, or items) labelled with the expert that is
 * best for them, each expert's rows are L2-normalised (routing compares by
 * cosine) and clustered with FAISS k-means (faiss_kmeans_clustering, fixed
 * seed, so the same input gives the same pilots); the centroids become the
 * expert's pilots. An expert with no more rows than k keeps the rows.
 *
 * File layout (little-endian): "MRROUTER" u32 version=1, u32 dim,
 * f32 temperature, f32 top_p, i32 max_experts (settings, for the record),
 * u32 n_experts, per expert: u32 name length + name, i32 n_pilots,
 * f32 pilots (n_pilots, dim); u64 xxh3 checksum (version 1: FNV-1a).
 */
#include "index/retrieval/router_int.h"

#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/Clustering_c.h>
#include <faiss/c_api/error_c.h>

#include "common/tensor.h"
#include "index/retrieval/retr_file.h"

#define ROUTER_MAGIC "MRROUTER"
#define ROUTER_VERSION 2u /* 2: xxh3 checksum (1: FNV-1a, still read) */

int router_build_pilots(mr_router *rt, const float *x, const int *best, int64_t n, int k_per_expert,
                        mr_err *e) {
    if (!rt || (n > 0 && (!x || !best)) || n < 0)
        return mr_err_set(e, MR_EINVAL, "router_build_pilots: bad arguments");
    if (k_per_expert < 1 || k_per_expert > 4096)
        return mr_err_set(e, MR_EINVAL, "router: k_per_expert %d not in [1, 4096]", k_per_expert);
    int d = rt->cfg.dim;
    if (!mr_all_finite(x, (size_t)n * (size_t)d))
        return mr_err_set(e, MR_EINVAL, "router: pilot training rows contain NaN or infinity");
    for (int64_t i = 0; i < n; i++)
        if (best[i] < -1 || best[i] >= rt->n)
            return mr_err_set(e, MR_EINVAL, "router: row %lld labelled expert %d, have %d",
                              (long long)i, best[i], rt->n);
    float *rows = mr_floats_alloc((size_t)(n > 0 ? n : 1) * (size_t)d);
    float *cent = mr_floats_alloc((size_t)k_per_expert * (size_t)d);
    int rc = 0;
    if (!rows || !cent) {
        rc = mr_err_set(e, MR_ENOMEM, "router: out of memory building pilots");
        goto out;
    }
    for (int ex = 0; ex < rt->n && !rc; ex++) {
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++) {
            if (best[i] != ex) continue;
            const float *src = x + (size_t)i * d;
            float nrm = mr_l2norm(src, d), inv = nrm > 0 ? 1.0f / nrm : 0.0f;
            for (int j = 0; j < d; j++) rows[(size_t)m * d + j] = src[j] * inv;
            m++;
        }
        if (m == 0) {
            rc = router_set_pilots(rt, ex, NULL, 0, e);
            continue;
        }
        if (m <= k_per_expert) {
            rc = router_set_pilots(rt, ex, rows, (int)m, e);
            continue;
        }
        float qerr = 0;
        if (faiss_kmeans_clustering((size_t)d, (size_t)m, (size_t)k_per_expert, rows, cent,
                                    &qerr)) {
            rc = mr_err_set(e, MR_EINTERNAL, "router: k-means for expert '%s' failed: %s",
                            rt->ex[ex].r->name, faiss_get_last_error());
            break;
        }
        rc = router_set_pilots(rt, ex, cent, k_per_expert, e);
    }
out:
    mr_floats_free(rows);
    mr_floats_free(cent);
    return rc;
}

int router_save(const mr_router *rt, const char *path, mr_err *e) {
    if (!rt || !path) return mr_err_set(e, MR_EINVAL, "router_save: NULL argument");
    retr_wbuf b = {0};
    uint32_t head[2] = {ROUTER_VERSION, (uint32_t)rt->cfg.dim};
    float set[2] = {rt->cfg.temperature, rt->cfg.top_p};
    int32_t maxe = rt->cfg.max_experts;
    uint32_t nex = (uint32_t)rt->n;
    int bad = retr_wbuf_put(&b, ROUTER_MAGIC, 8) || retr_wbuf_put(&b, head, sizeof head) ||
              retr_wbuf_put(&b, set, sizeof set) || retr_wbuf_put(&b, &maxe, 4) ||
              retr_wbuf_put(&b, &nex, 4);
    for (int i = 0; i < rt->n && !bad; i++) {
        const router_expert *x = &rt->ex[i];
        uint32_t len = (uint32_t)strlen(x->r->name);
        int32_t np = x->n_pilots;
        bad = retr_wbuf_put(&b, &len, 4) || retr_wbuf_put(&b, x->r->name, len) ||
              retr_wbuf_put(&b, &np, 4) ||
              retr_wbuf_put(&b, x->pilots, (size_t)np * (size_t)rt->cfg.dim * sizeof(float));
    }
    return retr_file_commit(&b, bad || retr_wbuf_seal(&b), path, e);
}

int router_load_pilots(mr_router *rt, const char *path, mr_err *e) {
    if (!rt || !path) return mr_err_set(e, MR_EINVAL, "router_load_pilots: NULL argument");
    unsigned char *buf = NULL;
    retr_rbuf r;
    int rc = retr_file_open(path, ROUTER_MAGIC, ROUTER_VERSION, "router", &buf, &r, e);
    if (rc) return rc;
    char name[RETR_NAME_MAX];
    uint32_t dim, nex, nlen;
    float set[2];
    int32_t maxe, np;
    float *p = NULL;
    if (retr_rbuf_take(&r, &dim, 4) || retr_rbuf_take(&r, set, sizeof set) ||
        retr_rbuf_take(&r, &maxe, 4) || retr_rbuf_take(&r, &nex, 4))
        goto corrupt;
    if ((int)dim != rt->cfg.dim) {
        rc = mr_err_set(e, MR_EINVAL, "router: %s has pilots of dim %u, the router routes dim %d",
                        path, dim, rt->cfg.dim);
        goto out;
    }
    for (uint32_t i = 0; i < nex; i++) {
        if (retr_rbuf_take(&r, &nlen, 4) || nlen == 0 || nlen >= sizeof name ||
            retr_rbuf_take(&r, name, nlen) || retr_rbuf_take(&r, &np, 4) || np < 0 ||
            (size_t)np * dim * sizeof(float) > r.n - r.at)
            goto corrupt;
        name[nlen] = 0;
        size_t nf = (size_t)np * dim;
        p = malloc((nf ? nf : 1) * sizeof *p);
        if (!p) {
            rc = mr_err_set(e, MR_ENOMEM, "router: out of memory loading %s", path);
            goto out;
        }
        retr_rbuf_take(&r, p, nf * sizeof *p);
        int at = router_find(rt, name, NULL);
        if (at >= 0 && (rc = router_pilots_install(rt, at, p, np, 0, e))) goto out;
        free(p);
        p = NULL;
    }
    if (r.at != r.n) goto corrupt;
    goto out;
corrupt:
    rc = mr_err_set(e, MR_ECORRUPT, "%s is not a valid moerec router file (or is damaged)", path);
out:
    free(p);
    free(buf);
    return rc;
}
