/* model_maps.c — load, save and attach the id -> row mappings of mapped
 * tables (model_maps.h). Building them from training rows is in
 * model_maps_build.c.
 *
 * Attaching validates the mapping against model.json before anything
 * changes: the file's table size must be the table's rows and its fallback
 * seed the table's seed, so a mapping built for another model.json (other
 * rows, other seed) is refused rather than silently shifting every row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moe/model_maps.h"

int moe_table_mapped(const moe_table *t) {
    return t->kind == IDHASH_FREQUENCY || t->kind == IDHASH_GRAPH ||
           t->kind == IDHASH_DOUBLE_GRAPH || t->kind == IDHASH_LSH;
}

int moe_model_maps_missing(const moe_model *m) {
    int n = 0;
    for (int i = 0; i < m->n_tables; i++)
        n += moe_table_mapped(&m->tables[i]) && !m->tables[i].gmap;
    return n;
}

/* The frequency mapper from a stored head: ids own rows 0..n-1 by rank,
 * which counts = n - row reproduce (create_frequency orders by count). */
static int frequency_from_map(idhash_mapper **out, const moe_table *t, const graphhash_map *gm,
                              mr_err *e) {
    const uint64_t *ids;
    const uint32_t *rows;
    size_t n;
    graphhash_map_table(gm, GRAPHHASH_USERS, &ids, &rows, &n);
    if ((long)n >= t->rows)
        return mr_err_set(e, MR_ECORRUPT, "frequency head of %zu ids, table has %ld rows", n,
                          t->rows);
    uint64_t *counts = malloc((n ? n : 1) * sizeof *counts);
    if (!counts) return mr_err_set(e, MR_ENOMEM, "out of memory");
    int rc = 0;
    for (size_t j = 0; j < n && !rc; j++)
        if (rows[j] >= n)
            rc = mr_err_set(e, MR_ECORRUPT, "frequency head row %u outside [0, %zu)", rows[j], n);
        else counts[j] = (uint64_t)n - rows[j];
    if (!rc)
        rc = idhash_mapper_create_frequency(out, (uint64_t)t->rows, (uint64_t)n, ids, counts, n,
                                            t->seed, e);
    free(counts);
    return rc;
}

int moe_model_maps_attach(moe_model *m, int ti, graphhash_map *gm, const char *what, mr_err *e) {
    moe_table *t = &m->tables[ti];
    idhash_mapper *mp = NULL;
    int rc = 0;
    if (graphhash_map_rows(gm, GRAPHHASH_USERS) != (uint64_t)t->rows)
        rc = mr_err_set(e, MR_ECORRUPT, "%s: mapping has %u rows, table '%s' has %ld", what,
                        graphhash_map_rows(gm, GRAPHHASH_USERS), t->name, t->rows);
    else if (graphhash_map_seed(gm) != t->seed)
        rc = mr_err_set(
            e, MR_ECORRUPT, "%s: mapping was built with seed %llu, table '%s' has seed %llu", what,
            (unsigned long long)graphhash_map_seed(gm), t->name, (unsigned long long)t->seed);
    else if (graphhash_map_size(gm, GRAPHHASH_ITEMS) != 0)
        rc = mr_err_set(e, MR_ECORRUPT,
                        "%s: a table mapping holds one side (its item side is not empty)", what);
    else if (t->kind == IDHASH_FREQUENCY) rc = frequency_from_map(&mp, t, gm, e);
    else if (t->kind == IDHASH_GRAPH) rc = graphhash_mapper_create(&mp, gm, GRAPHHASH_USERS, e);
    else if (t->kind == IDHASH_DOUBLE_GRAPH)
        rc = graphhash_mapper_create_double(&mp, gm, GRAPHHASH_USERS, t->seed2, e);
    else if (t->kind == IDHASH_LSH) rc = graphhash_mapper_create_lsh(&mp, gm, GRAPHHASH_USERS, e);
    else
        rc = mr_err_set(e, MR_EINVAL, "table '%s' (%s) takes no mapping", t->name,
                        idhash_kind_name(t->kind));
    const uint64_t *ids;
    const uint32_t *rows;
    size_t n;
    idhash_stats st = {0};
    graphhash_map_table(gm, GRAPHHASH_USERS, &ids, &rows, &n);
    if (!rc && n) rc = idhash_collision_stats(mp, ids, n, &st, e);
    if (!rc && !n) st.nrows = (uint64_t)t->rows;
    if (rc) {
        if (e && !strstr(e->msg, what)) mr_err_wrap(e, "%s", what);
        idhash_mapper_free(mp);
        graphhash_map_free(gm);
        return rc;
    }
    idhash_mapper_free(t->map);
    graphhash_map_free(t->gmap);
    t->map = mp;
    t->gmap = gm;
    t->stats = st;
    return 0;
}

int moe_model_maps_load(moe_model *m, const char *dir, mr_err *e) {
    for (int i = 0; i < m->n_tables; i++) {
        if (!moe_table_mapped(&m->tables[i])) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, m->tables[i].mapping);
        graphhash_map *gm = NULL;
        int rc = graphhash_map_load(&gm, path, e);
        if (rc) {
            if (e && !strstr(e->msg, path)) mr_err_wrap(e, "%s", path);
            mr_err_wrap(e, "table '%s' (%s)", m->tables[i].name,
                        idhash_kind_name(m->tables[i].kind));
            return rc;
        }
        if ((rc = moe_model_maps_attach(m, i, gm, path, e))) return rc;
    }
    return 0;
}

int moe_model_maps_save(const moe_model *m, const char *dir, mr_err *e) {
    for (int i = 0; i < m->n_tables; i++) {
        const moe_table *t = &m->tables[i];
        if (!moe_table_mapped(t)) continue;
        if (!t->gmap)
            return mr_err_set(
                e, MR_ESTATE,
                "table '%s' (%s) has no mapping to save: build it from the training data", t->name,
                idhash_kind_name(t->kind));
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, t->mapping);
        int rc = graphhash_map_save(t->gmap, path, e);
        if (rc) return rc;
    }
    return 0;
}
