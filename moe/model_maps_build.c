/* model_maps_build.c — build the mappings of mapped tables from training
 * rows (model_maps.h): a frequency count, Louvain clusters of the
 * this-table x pair-table graph, SimHash buckets of content vectors, or
 * MinHash buckets of neighbour sets.
 *
 * Everything is keyed by the value ids the model computes at serve time
 * (moe_model_value_id: field name, value, table seed), read from the ids a
 * moe_dataset keeps while a mapping is missing, so train, score and serve
 * map a value to the same row. Only the rows given (the training split)
 * are read: validation rows never shape the table.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/csv.h"
#include "hashing/bigraph.h"
#include "hashing/graphhash.h"
#include "hashing/idsearch.h"
#include "hashing/minhash.h"
#include "hashing/simhash.h"
#include "moe/model_maps.h"

typedef struct u64vec {
    uint64_t *p;
    size_t n, cap;
} u64vec;

static int u64_push(u64vec *v, uint64_t x) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4096;
        uint64_t *p = realloc(v->p, cap * sizeof *p);
        if (!p) return -1;
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = x;
    return 0;
}

/* Ids of row i in field f: (*ids)[0..return). */
static size_t row_ids(const moe_dataset *d, const moe_model *m, int f, long i,
                      const uint64_t **ids) {
    int rpi = idhash_mapper_rows_per_id(m->tables[m->cat[f].table].map);
    uint32_t a = d->cat_off[f][i] / (uint32_t)rpi, b = d->cat_off[f][i + 1] / (uint32_t)rpi;
    *ids = d->cat_ids[f] + a;
    return b - a;
}

/* Every id of table t in the rows (one entry per occurrence). */
static int table_stream(const moe_dataset *d, const moe_model *m, int t, const long *idx, long n,
                        u64vec *out) {
    for (long r = 0; r < n; r++)
        for (int f = 0; f < m->n_cat; f++) {
            if (m->cat[f].table != t) continue;
            const uint64_t *ids;
            size_t k = row_ids(d, m, f, idx[r], &ids);
            for (size_t j = 0; j < k; j++)
                if (u64_push(out, ids[j])) return -1;
        }
    return 0;
}

/* (a, b) for every id a of table t and id b of table p in the same row. */
static int table_edges(const moe_dataset *d, const moe_model *m, int t, int p, const long *idx,
                       long n, u64vec *ua, u64vec *ub) {
    for (long r = 0; r < n; r++)
        for (int f = 0; f < m->n_cat; f++) {
            if (m->cat[f].table != t) continue;
            const uint64_t *a;
            size_t na = row_ids(d, m, f, idx[r], &a);
            for (int g = 0; g < m->n_cat; g++) {
                if (m->cat[g].table != p) continue;
                const uint64_t *b;
                size_t nb = row_ids(d, m, g, idx[r], &b);
                for (size_t x = 0; x < na; x++)
                    for (size_t y = 0; y < nb; y++)
                        if (u64_push(ua, a[x]) || u64_push(ub, b[y])) return -1;
            }
        }
    return 0;
}

static int one_side(graphhash_map **out, const moe_table *t, const uint64_t *ids,
                    const uint32_t *rows, size_t n, double resolution, mr_err *e) {
    return graphhash_from_tables(out, ids, rows, n, (uint32_t)t->rows, NULL, NULL, 0, 1, resolution,
                                 t->seed, e);
}

static int build_frequency(graphhash_map **out, const moe_model *m, int t, const u64vec *s,
                           mr_err *e) {
    const moe_table *tb = &m->tables[t];
    uint64_t *ids = NULL, *counts = NULL;
    size_t nd = 0;
    idhash_mapper *mp = NULL;
    uint32_t *rows = NULL;
    int rc = idhash_count_ids(s->p, s->n, &ids, &counts, &nd, e);
    if (!rc)
        rc = idhash_mapper_create_frequency(&mp, (uint64_t)tb->rows, (uint64_t)-1, ids, counts, nd,
                                            tb->seed, e);
    if (!rc) {
        const uint64_t *hid, *hrow;
        uint64_t nh;
        idhash_mapper_head(mp, &hid, &hrow, &nh);
        rows = malloc((nh ? nh : 1) * sizeof *rows);
        if (!rows) rc = mr_err_set(e, MR_ENOMEM, "out of memory");
        for (uint64_t j = 0; !rc && j < nh; j++) rows[j] = (uint32_t)hrow[j];
        if (!rc) rc = one_side(out, tb, hid, rows, (size_t)nh, 0, e);
    }
    free(rows);
    idhash_mapper_free(mp);
    free(ids);
    free(counts);
    return rc;
}

/* Louvain at resolution r; *k = clusters on this table's side. */
static int cluster_at(graphhash_map **gm, const bigraph *g, double r, uint64_t lseed, uint64_t seed,
                      uint32_t *k, mr_err *e) {
    louvain_params lp = louvain_params_default();
    lp.resolution = r;
    lp.seed = lseed;
    int rc = graphhash_build(gm, g, &lp, seed, NULL, e);
    if (!rc) *k = graphhash_map_rows(*gm, GRAPHHASH_USERS);
    return rc;
}

/* "balance": "degree" and "hubs": rows from graphhash_hub_rows (with 0
 * hubs: graphhash_balance_rows) with each id's training degree (its number
 * of training rows with a pair id) as mass. */
static int balance(const bigraph *g, const moe_table *tb, const uint64_t *ids, const uint32_t *cl,
                   size_t n, uint32_t *rows, mr_err *e) {
    double *mass = malloc((n ? n : 1) * sizeof *mass);
    if (!mass) return mr_err_set(e, MR_ENOMEM, "out of memory");
    for (size_t j = 0; j < n; j++) {
        long u = idsearch_find(g->user_ids, (size_t)g->nu, ids[j]);
        mass[j] = u >= 0 && g->du[u] > 0 ? g->du[u] : 1.0;
    }
    int rc = graphhash_hub_rows(cl, mass, n, (uint32_t)tb->rows, (uint32_t)tb->hubs, tb->balance,
                                rows, e);
    free(mass);
    return rc;
}

/* Resolution "auto" (o->resolution <= 0): the GraphHash paper sizes the
 * table by the number of clusters; here the table size is given, so search
 * the resolution (bisection on log r in [1e-2, 1e4], 14 Louvain runs) whose
 * cluster count on this side is closest to rows. */
static int build_graph(graphhash_map **out, const moe_model *m, int t, const u64vec *ua,
                       const u64vec *ub, const moe_maps_opts *o, mr_err *e) {
    const moe_table *tb = &m->tables[t];
    bigraph *g = NULL;
    graphhash_map *gm = NULL, *best = NULL;
    uint32_t *rows = NULL, k = 0, kbest = 0;
    double res = tb->resolution > 0 ? tb->resolution : o->resolution, rbest = res;
    int rc = bigraph_build_ids(&g, ua->p, ub->p, NULL, ua->n, BIGRAPH_MERGE_DUPLICATES, e);
    if (!rc && res > 0) {
        rc = cluster_at(&best, g, res, o->seed, tb->seed, &kbest, e);
    } else if (!rc) {
        double lo = log(1e-2), hi = log(1e4);
        for (int it = 0; it < 14 && !rc; it++) {
            double mid = 0.5 * (lo + hi);
            if ((rc = cluster_at(&gm, g, exp(mid), o->seed, tb->seed, &k, e))) break;
            long d = labs((long)k - tb->rows), db = labs((long)kbest - tb->rows);
            if (!best || d < db) {
                graphhash_map_free(best);
                best = gm, kbest = k, rbest = exp(mid);
            } else {
                graphhash_map_free(gm);
            }
            gm = NULL;
            if ((long)k < tb->rows) lo = mid;
            else hi = mid;
        }
    }
    if (!rc) {
        const uint64_t *ids;
        const uint32_t *cl;
        size_t n;
        graphhash_map_table(best, GRAPHHASH_USERS, &ids, &cl, &n);
        rows = malloc((n ? n : 1) * sizeof *rows);
        if (!rows) rc = mr_err_set(e, MR_ENOMEM, "out of memory");
        if (!rc && (tb->balance || tb->hubs)) rc = balance(g, tb, ids, cl, n, rows, e);
        /* more clusters than rows: fold them (c mod rows) */
        else
            for (size_t j = 0; !rc && j < n; j++) rows[j] = cl[j] % (uint32_t)tb->rows;
        if (!rc) rc = one_side(out, tb, ids, rows, n, rbest, e);
    }
    free(rows);
    graphhash_map_free(best);
    bigraph_free(g);
    return rc;
}

static int id_cmp(const void *a, const void *b) {
    const uint64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : (x[1] > y[1]) - (x[1] < y[1]);
}

/* MinHash (one permutation) of each id's neighbour set, mod rows:
 * P[two ids share the bucket] >= their Jaccard similarity. */
static int build_lsh_pairs(graphhash_map **out, const moe_model *m, int t, const u64vec *ua,
                           const u64vec *ub, const moe_maps_opts *o, mr_err *e) {
    const moe_table *tb = &m->tables[t];
    size_t n = ua->n;
    uint64_t *pr = malloc((n ? n : 1) * 2 * sizeof *pr), *ids = malloc((n ? n : 1) * sizeof *ids);
    uint32_t *rows = malloc((n ? n : 1) * sizeof *rows);
    minhash *mh = NULL;
    int rc = !pr || !ids || !rows ? mr_err_set(e, MR_ENOMEM, "out of memory")
                                  : minhash_create(&mh, 1, o->seed, e);
    size_t nid = 0;
    if (!rc) {
        for (size_t j = 0; j < n; j++) pr[2 * j] = ua->p[j], pr[2 * j + 1] = ub->p[j];
        qsort(pr, n, 2 * sizeof *pr, id_cmp);
        for (size_t a = 0; a < n;) {
            size_t b = a;
            uint64_t sig = MINHASH_EMPTY;
            while (b < n && pr[2 * b] == pr[2 * a]) {
                uint64_t v;
                minhash_signature(mh, &pr[2 * b + 1], 1, &v);
                if (v < sig) sig = v;
                b++;
            }
            ids[nid] = pr[2 * a];
            rows[nid++] = (uint32_t)(sig % (uint64_t)tb->rows);
            a = b;
        }
        rc = one_side(out, tb, ids, rows, nid, 0, e);
    }
    minhash_free(mh);
    free(pr);
    free(ids);
    free(rows);
    return rc;
}

/* SimHash bucket (floor(log2 rows) bits, at most 62) of every vector in
 * the file: a header row, then "value,e0,...,e{d-1}" read by the one CSV
 * reader (common/csv.h: quoting, BOM, CRLF, delimiter by name); the value
 * is the table's first feature's. A vector cell that is missing or not a
 * finite float is an error naming file, line and column. */
static int build_lsh_vectors(graphhash_map **out, const moe_model *m, int t, const moe_maps_opts *o,
                             mr_err *e) {
    const moe_table *tb = &m->tables[t];
    char path[4096];
    if (tb->vectors[0] == '/' || !o->base_dir) snprintf(path, sizeof path, "%s", tb->vectors);
    else snprintf(path, sizeof path, "%s/%s", o->base_dir, tb->vectors);
    int f0 = -1;
    for (int f = 0; f < m->n_cat && f0 < 0; f++)
        if (m->cat[f].table == t) f0 = f;
    if (f0 < 0)
        return mr_err_set(e, MR_EINVAL, "table '%s': no feature uses it, so no value ids",
                          tb->name);
    mr_csv *c = NULL;
    int rc = mr_csv_open(&c, path, NULL, e);
    if (rc) return mr_err_wrap(e, "table '%s' vectors", tb->name);
    int bits = 0, d = mr_csv_ncols(c) - 1;
    while (bits < 62 && (2ull << bits) <= (uint64_t)tb->rows) bits++;
    u64vec ids = {0};
    uint32_t *rows = NULL;
    size_t rcap = 0;
    float *x = NULL;
    simhash *sh = NULL;
    if (d < 1 || d > SIMHASH_MAX_DIM || !(x = malloc((size_t)d * sizeof *x))) {
        rc = mr_err_set(e, MR_EINVAL, "%s: header needs a value column and 1..%d vector columns",
                        path, SIMHASH_MAX_DIM);
        goto done;
    }
    if ((rc = simhash_create(&sh, d, bits ? bits : 1, o->seed, e))) goto done;
    while ((rc = mr_csv_next(c, e)) == 1) {
        for (int j = 0; j < d; j++) {
            int r = mr_csv_float(c, j + 1, &x[j], e);
            if (r == 1)
                r = mr_err_set(e, MR_EINVAL,
                               "%s:%ld: column %d (%s) is missing (a vector needs every element)",
                               mr_csv_name(c), mr_csv_line(c), j + 2, mr_csv_header(c, j + 1));
            if (r) {
                rc = r;
                goto done;
            }
        }
        uint64_t sig[SIMHASH_MAX_BITS / 64];
        simhash_sign(sh, x, sig);
        if (ids.n == rcap) {
            rcap = rcap ? 2 * rcap : 4096;
            uint32_t *r2 = realloc(rows, rcap * sizeof *rows);
            if (!r2) goto oom;
            rows = r2;
        }
        rows[ids.n] = (uint32_t)((sig[0] & ((bits ? (1ull << bits) : 1) - 1)) % (uint64_t)tb->rows);
        if (u64_push(&ids, moe_model_value_id(m, f0, mr_csv_cell(c, 0), mr_csv_cell_len(c, 0))))
            goto oom;
    }
    if (rc < 0) goto done;
    rc = one_side(out, tb, ids.p, rows, ids.n, 0, e);
    if (rc) mr_err_wrap(e, "%s", path);
    goto done;
oom:
    rc = mr_err_set(e, MR_ENOMEM, "%s: out of memory", path);
done:
    simhash_free(sh);
    free(x);
    free(ids.p);
    free(rows);
    mr_csv_close(c);
    return rc;
}

int moe_model_maps_build(moe_model *m, const moe_dataset *d, const long *idx, long n,
                         const moe_maps_opts *o, mr_err *e) {
    for (int f = 0; f < m->n_cat; f++)
        if (moe_table_mapped(&m->tables[m->cat[f].table]) && !d->cat_ids[f])
            return mr_err_set(e, MR_ESTATE, "dataset was read without value ids (field '%s')",
                              m->cat[f].name);
    for (int t = 0; t < m->n_tables; t++) {
        moe_table *tb = &m->tables[t];
        if (!moe_table_mapped(tb) || tb->gmap) continue;
        u64vec a = {0}, b = {0};
        graphhash_map *gm = NULL;
        int rc = 0;
        if (tb->kind == IDHASH_FREQUENCY) {
            rc = table_stream(d, m, t, idx, n, &a) ? mr_err_set(e, MR_ENOMEM, "out of memory") : 0;
            if (!rc && a.n == 0) rc = mr_err_set(e, MR_EINVAL, "no values in the training rows");
            if (!rc) rc = build_frequency(&gm, m, t, &a, e);
        } else if (tb->kind == IDHASH_LSH && tb->vectors[0]) {
            rc = build_lsh_vectors(&gm, m, t, o, e);
        } else {
            rc = table_edges(d, m, t, tb->pair, idx, n, &a, &b)
                     ? mr_err_set(e, MR_ENOMEM, "out of memory")
                     : 0;
            if (!rc && a.n == 0)
                rc = mr_err_set(e, MR_EINVAL, "no (%s, %s) pairs in the training rows", tb->name,
                                m->tables[tb->pair].name);
            if (!rc)
                rc = tb->kind == IDHASH_LSH ? build_lsh_pairs(&gm, m, t, &a, &b, o, e)
                                            : build_graph(&gm, m, t, &a, &b, o, e);
        }
        free(a.p);
        free(b.p);
        if (!rc) rc = moe_model_maps_attach(m, t, gm, "built mapping", e);
        if (rc) {
            mr_err_wrap(e, "table '%s' (%s)", tb->name, idhash_kind_name(tb->kind));
            return rc;
        }
    }
    return 0;
}
