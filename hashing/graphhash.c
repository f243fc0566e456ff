/* graphhash.c — build GraphHash maps from Louvain clusters or explicit
 * tables, and look rows up (see graphhash.h).
 *
 * Louvain numbers communities over users and items together; a community
 * holding only items must not take a user row, so each side renumbers the
 * communities it touches, in id order, to 0..k_side-1. Lookups are a binary
 * search over the sorted ids in the (possibly mmap'd) image.
 */
#include <stdlib.h>
#include <string.h>

#include "hashing/graphhash_int.h"
#include "hashing/idsearch.h"

/* rows[j] = side-local number of community comm[j], by first appearance. */
static int graphhash_side_rows(const int32_t *comm, int32_t n, int32_t ncomm, uint32_t *rows,
                               uint32_t *k) {
    int32_t *map = malloc(((size_t)ncomm + 1) * sizeof *map);
    if (!map) return MR_ENOMEM;
    for (int32_t c = 0; c < ncomm; c++) map[c] = -1;
    uint32_t next = 0;
    for (int32_t j = 0; j < n; j++) {
        if (map[comm[j]] < 0) map[comm[j]] = (int32_t)next++;
        rows[j] = (uint32_t)map[comm[j]];
    }
    free(map);
    *k = next ? next : 1;
    return 0;
}

static int graphhash_wrap(graphhash_map **out, void *image, size_t len, mr_err *e) {
    graphhash_map *m = calloc(1, sizeof *m);
    if (!m) {
        free(image);
        return mr_err_set(e, MR_ENOMEM, "graphhash: out of memory");
    }
    int rc = graphhash_attach(m, image, len, e);
    if (rc) {
        free(image);
        free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int graphhash_build(graphhash_map **out, const bigraph *g, const louvain_params *params,
                    uint64_t seed, louvain_result *rep, mr_err *e) {
    *out = NULL;
    if (!g || !g->user_ids || !g->item_ids)
        return mr_err_set(e, MR_EINVAL,
                          "graphhash: the graph needs raw ids "
                          "(build it with bigraph_build_ids)");
    louvain_result r;
    int rc = louvain_run(g, params, &r, e);
    if (rc) return rc;
    uint32_t *urows = malloc(((size_t)g->nu + 1) * sizeof *urows);
    uint32_t *irows = malloc(((size_t)g->ni + 1) * sizeof *irows);
    uint32_t uk = 0, ik = 0;
    void *img = NULL;
    size_t len = 0;
    if (!urows || !irows || graphhash_side_rows(r.comm, g->nu, r.ncomm, urows, &uk) ||
        graphhash_side_rows(r.comm + g->nu, g->ni, r.ncomm, irows, &ik)) {
        rc = mr_err_set(e, MR_ENOMEM, "graphhash: out of memory");
        goto done;
    }
    double res = params ? params->resolution : louvain_params_default().resolution;
    rc = graphhash_pack(&img, &len, g->user_ids, urows, (uint64_t)g->nu, uk, g->item_ids, irows,
                        (uint64_t)g->ni, ik, res, seed, e);
    if (!rc) rc = graphhash_wrap(out, img, len, e);
done:
    free(urows);
    free(irows);
    if (rep && rc == 0) *rep = r;
    else louvain_result_free(&r);
    return rc;
}

typedef struct id_row {
    uint64_t id;
    uint32_t row;
} id_row;

static int id_row_cmp(const void *a, const void *b) {
    const id_row *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* Sort one side's (id, row) pairs into ids/rows, checking them. */
static int graphhash_sort_side(const uint64_t *ids, const uint32_t *rows, size_t n, uint32_t k,
                               uint64_t **ids_out, uint32_t **rows_out, const char *what,
                               mr_err *e) {
    if (k == 0) return mr_err_set(e, MR_EINVAL, "graphhash: %s table size k = 0", what);
    id_row *p = malloc((n ? n : 1) * sizeof *p);
    *ids_out = malloc((n ? n : 1) * sizeof **ids_out);
    *rows_out = malloc((n ? n : 1) * sizeof **rows_out);
    if (!p || !*ids_out || !*rows_out) {
        free(p);
        return mr_err_set(e, MR_ENOMEM, "graphhash: out of memory");
    }
    for (size_t j = 0; j < n; j++) {
        if (rows[j] >= k) {
            free(p);
            return mr_err_set(e, MR_EINVAL, "graphhash: %s id %llu has row %u >= k = %u", what,
                              (unsigned long long)ids[j], rows[j], k);
        }
        p[j] = (id_row){ids[j], rows[j]};
    }
    qsort(p, n, sizeof *p, id_row_cmp);
    for (size_t j = 0; j < n; j++) {
        if (j && p[j].id == p[j - 1].id) {
            uint64_t dup = p[j].id;
            free(p);
            return mr_err_set(e, MR_EINVAL, "graphhash: %s id %llu listed twice", what,
                              (unsigned long long)dup);
        }
        (*ids_out)[j] = p[j].id;
        (*rows_out)[j] = p[j].row;
    }
    free(p);
    return 0;
}

int graphhash_from_tables(graphhash_map **out, const uint64_t *user_ids, const uint32_t *user_rows,
                          size_t nusers, uint32_t user_k, const uint64_t *item_ids,
                          const uint32_t *item_rows, size_t nitems, uint32_t item_k,
                          double resolution, uint64_t seed, mr_err *e) {
    *out = NULL;
    uint64_t *uids = NULL, *iids = NULL;
    uint32_t *urows = NULL, *irows = NULL;
    void *img = NULL;
    size_t len = 0;
    int rc = graphhash_sort_side(user_ids, user_rows, nusers, user_k, &uids, &urows, "user", e);
    if (!rc)
        rc = graphhash_sort_side(item_ids, item_rows, nitems, item_k, &iids, &irows, "item", e);
    if (!rc)
        rc = graphhash_pack(&img, &len, uids, urows, nusers, user_k, iids, irows, nitems, item_k,
                            resolution, seed, e);
    if (!rc) rc = graphhash_wrap(out, img, len, e);
    free(uids);
    free(iids);
    free(urows);
    free(irows);
    return rc;
}

uint32_t graphhash_map_rows(const graphhash_map *m, graphhash_side side) { return m->k[side]; }
size_t graphhash_map_size(const graphhash_map *m, graphhash_side side) {
    return (size_t)m->n[side];
}
void graphhash_map_table(const graphhash_map *m, graphhash_side side, const uint64_t **ids,
                         const uint32_t **rows, size_t *n) {
    *ids = m->ids[side];
    *rows = m->rows[side];
    *n = (size_t)m->n[side];
}
double graphhash_map_resolution(const graphhash_map *m) { return m->resolution; }
uint64_t graphhash_map_seed(const graphhash_map *m) { return m->seed; }

int graphhash_map_row(const graphhash_map *m, graphhash_side side, uint64_t id, uint32_t *row) {
    long j = idsearch_find(m->ids[side], (size_t)m->n[side], id);
    if (j >= 0) {
        *row = m->rows[side][j];
        return 1;
    }
    *row = (uint32_t)idhash_row(idhash_u64(id, m->seed), m->k[side]);
    return 0;
}
