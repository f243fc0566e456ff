/* sdim_join_csv.c — `moerec train`'s SDIM input from files: the training
 * CSV's (user, item, time) columns joined with an events CSV through
 * sdim_join, item vectors from an items CSV, written into the dataset's
 * extra block (see sdim_join.h).
 *
 * The rows are read with the same reader as moe_dataset_read (common/csv.h,
 * the same max_rows) and the count is checked against the dataset, so row
 * r of the file is row r of the dataset. Ids and times must be integers
 * (the store's ids are uint64); anything else, or a missing one, is an
 * error naming file, line and column.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/csv.h"
#include "common/tensor.h"
#include "hashing/u64map.h"
#include "moe/sdim_feature.h"
#include "moe/sdim_join.h"

void sdim_csv_opts_init(sdim_csv_opts *o) {
    memset(o, 0, sizeof *o);
    snprintf(o->user_col, sizeof o->user_col, "user_id");
    snprintf(o->item_col, sizeof o->item_col, "item_id");
    snprintf(o->time_col, sizeof o->time_col, "ts_ms");
    o->m = SDIM_DEFAULT_M; /* the store's tables and the server's config use these too */
    o->tau = SDIM_DEFAULT_TAU;
    o->seed = SDIM_DEFAULT_SEED;
    o->l_max = SDIM_DEFAULT_L_MAX;
    o->short_n = SDIM_DEFAULT_SHORT;
}

/* Integer cell col of the current record into *v (uint64 when u, else
 * int64); a missing cell is an error too (every row needs its ids). */
static int sdim_csv_int(const mr_csv *c, int col, int u, void *v, mr_err *e) {
    int rc = u ? mr_csv_u64(c, col, v, e) : mr_csv_i64(c, col, v, e);
    if (rc == 1)
        rc = mr_err_set(e, MR_EINVAL, "%s:%ld: column '%s' is missing", mr_csv_name(c),
                        mr_csv_line(c), mr_csv_header(c, col));
    return rc;
}

/* The growing arrays of one file's (user, item, time) triples, and the
 * events' actions when asked for. */
typedef struct sdim_triples {
    long n, cap;
    uint64_t *user, *item;
    int64_t *ts;
    uint32_t *action; /* NULL unless read */
} sdim_triples;

static void sdim_triples_free(sdim_triples *t) {
    free(t->user);
    free(t->item);
    free(t->ts);
    free(t->action);
}

/* ac: the action column's name, or NULL (not read). An action is
 * sdim_action_id of the cell as written (at most 64 bytes, as
 * Event.action; no missing spellings: "NA" is an action like any other, as
 * AppendEvents stores it); only an empty cell is no action. */
static int sdim_read_triples(const char *path, const char *uc, const char *ic, const char *tc,
                             const char *ac, long max_rows, const mr_csv_opts *co, sdim_triples *t,
                             mr_err *e) {
    mr_csv *c = NULL;
    int rc = mr_csv_open(&c, path, co, e), cu = -1, ci = -1, ct = -1, ca = -1, more = 0;
    if (!rc) rc = mr_csv_need(c, uc, &cu, e);
    if (!rc) rc = mr_csv_need(c, ic, &ci, e);
    if (!rc) rc = mr_csv_need(c, tc, &ct, e);
    if (!rc && ac && mr_csv_need(c, ac, &ca, e))
        rc = mr_err_wrap(e, "the model has history actions (features.history_actions)");
    while (!rc && (max_rows <= 0 || t->n < max_rows) && (more = mr_csv_next(c, e)) == 1) {
        if (t->n == t->cap) {
            long nc = t->cap ? 2 * t->cap : 4096;
            uint64_t *u = realloc(t->user, sizeof *u * (size_t)nc),
                     *it = u ? realloc(t->item, sizeof *it * (size_t)nc) : NULL;
            if (u) t->user = u;
            if (it) t->item = it;
            int64_t *ts = it ? realloc(t->ts, sizeof *ts * (size_t)nc) : NULL;
            if (ts) t->ts = ts;
            uint32_t *a = ts && ca >= 0 ? realloc(t->action, sizeof *a * (size_t)nc) : NULL;
            if (a) t->action = a;
            if (!ts || (ca >= 0 && !a)) {
                rc = mr_err_set(e, MR_ENOMEM, "%s: out of memory at line %ld", path,
                                mr_csv_line(c));
                break;
            }
            t->cap = nc;
        }
        if (!rc && ca >= 0) {
            const char *cell = mr_csv_cell(c, ca);
            size_t len = strlen(cell); /* the literal cell, as AppendEvents stores it */
            if (len > 64)
                rc = mr_err_set(e, MR_EINVAL, "%s:%ld: column '%s': an action is at most 64 bytes",
                                mr_csv_name(c), mr_csv_line(c), mr_csv_header(c, ca));
            else t->action[t->n] = sdim_action_id(cell, len);
        }
        if (!rc && !(rc = sdim_csv_int(c, cu, 1, &t->user[t->n], e)) &&
            !(rc = sdim_csv_int(c, ci, 1, &t->item[t->n], e)) &&
            !(rc = sdim_csv_int(c, ct, 0, &t->ts[t->n], e)))
            t->n++;
    }
    if (!rc && more < 0) rc = more;
    mr_csv_close(c);
    return rc;
}

typedef struct sdim_items {
    u64map map;  /* item id -> row */
    float *vecs; /* (n, d) */
    long n, cap;
    int d;
} sdim_items;

static const float *sdim_items_vec(uint64_t item, void *ctx) {
    const sdim_items *it = ctx;
    uint32_t r = u64map_get(&it->map, item);
    return r == U64MAP_NONE ? NULL : it->vecs + (size_t)r * it->d;
}

/* items CSV: item_id and e0 .. e{d-1}. */
static int sdim_read_items(const char *path, int d, const mr_csv_opts *co, sdim_items *it,
                           mr_err *e) {
    mr_csv *c = NULL;
    int rc = mr_csv_open(&c, path, co, e), ci = -1, ce[1024], got = 0;
    it->d = d;
    if (!rc) rc = u64map_init(&it->map, 1024) ? mr_err_set(e, MR_ENOMEM, "out of memory") : 0;
    if (!rc) rc = mr_csv_need(c, "item_id", &ci, e);
    for (int k = 0; k < d && !rc; k++) {
        char name[16];
        snprintf(name, sizeof name, "e%d", k);
        if (mr_csv_need(c, name, &ce[k], e)) rc = mr_err_wrap(e, "SDIM item vectors (d = %d)", d);
    }
    char more[16];
    snprintf(more, sizeof more, "e%d", d);
    if (!rc && mr_csv_col(c, more) >= 0)
        rc = mr_err_set(e, MR_EINVAL,
                        "%s: item vectors have more than d = %d columns (%s): the model's "
                        "extra_dim must be 2 x the item dimension (+ history actions)",
                        path, d, more);
    while (!rc && (got = mr_csv_next(c, e)) == 1) {
        uint64_t id;
        if ((rc = sdim_csv_int(c, ci, 1, &id, e))) break;
        if (it->n == it->cap) {
            long nc = it->cap ? 2 * it->cap : 4096;
            float *v = mr_floats_alloc((size_t)nc * d);
            if (!v) {
                rc = mr_err_set(e, MR_ENOMEM, "%s: out of memory", path);
                break;
            }
            if (it->n) memcpy(v, it->vecs, sizeof(float) * (size_t)it->n * d);
            mr_floats_free(it->vecs);
            it->vecs = v, it->cap = nc;
        }
        float *x = it->vecs + (size_t)it->n * d;
        for (int k = 0; k < d && !rc; k++)
            if ((rc = mr_csv_float(c, ce[k], &x[k], e)) == 1)
                rc = mr_err_set(e, MR_EINVAL, "%s:%ld: column 'e%d' is missing", path,
                                mr_csv_line(c), k);
        if (!rc && u64map_put(&it->map, id, (uint32_t)it->n))
            rc = mr_err_set(e, MR_ENOMEM, "%s: out of memory", path);
        it->n++;
    }
    if (!rc && got < 0) rc = got;
    mr_csv_close(c);
    return rc;
}

int sdim_join_csv(moe_dataset *d, const char *data_path, long max_rows, const sdim_csv_opts *o,
                  mr_err *e) {
    const int na = o->n_actions, rest = d->extra_dim - na;
    if (na < 0 || na > MOE_MAX_HIST_ACTIONS || rest < 2 || rest % 2 || rest / 2 > 1024 || !d->extra)
        return mr_err_set(e, MR_EINVAL,
                          "sdim: the model's extra_dim (%d) must be 2 d + %d (history actions) "
                          "for item vectors of d floats",
                          d->extra_dim, na);
    if (!o->events_path || !o->items_path)
        return mr_err_set(e, MR_EINVAL,
                          "sdim: both an events file and an item-vectors file are needed");
    const int dim = rest / 2;
    sdim_items it = {0};
    sdim_triples ev = {0}, rows = {0};
    sdim_hasher *h = NULL;
    mr_csv_opts co = {.na = o->na};
    int rc;
    if ((rc = sdim_read_items(o->items_path, dim, &co, &it, e)) ||
        (rc = sdim_read_triples(o->events_path, "user_id", "item_id", "ts_ms", na ? "action" : NULL,
                                0, &co, &ev, e)) ||
        (rc = sdim_read_triples(data_path, o->user_col, o->item_col, o->time_col, NULL, max_rows,
                                &co, &rows, e)))
        goto out;
    if (rows.n != d->n) {
        rc = mr_err_set(e, MR_EINVAL, "%s: %ld rows with ids, the dataset has %ld", data_path,
                        rows.n, d->n);
        goto out;
    }
    if ((rc = sdim_hasher_create(&h, dim, o->m, o->tau, o->seed, e))) goto out;
    const sdim_events sev = {ev.n, ev.user, ev.item, ev.ts, ev.action};
    rc = sdim_join_act(h, o->l_max, o->short_n, o->actions, na, &sev, rows.user, rows.item, rows.ts,
                       rows.n, sdim_items_vec, &it, d->extra, d->extra_dim, e);
out:
    sdim_hasher_free(h);
    u64map_free(&it.map);
    mr_floats_free(it.vecs);
    sdim_triples_free(&ev);
    sdim_triples_free(&rows);
    return rc;
}
