/* dataset.c — CSV/TSV reading, hashing of categorical values to embedding
 * rows, splits and batch assembly (see dataset.h).
 *
 * Values are hashed once at load time rather than per epoch: hashing is the
 * most expensive per-value work, and the CSR of rows is what both the
 * forward (embedding bags) and the sparse optimizer need.
 */
#include "moe/dataset.h"
#include "moe/model_maps.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/csv.h"
#include "common/rng.h"
#include "moe/layers.h"

/* ---- growable arrays ------------------------------------------------------ */

typedef struct vec {
    void *p;
    size_t n, cap, elt;
} vec;

static int vec_push(vec *v, const void *x) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 1024;
        void *p = realloc(v->p, cap * v->elt);
        if (!p) return -1;
        v->p = p;
        v->cap = cap;
    }
    memcpy((char *)v->p + v->n * v->elt, x, v->elt);
    v->n++;
    return 0;
}

void moe_dataset_free(moe_dataset *d) {
    if (!d) return;
    for (int f = 0; f < d->n_cat; f++) {
        free(d->cat_off[f]);
        free(d->cat_rows[f]);
        free(d->cat_ids[f]);
    }
    free(d->num);
    free(d->extra);
    free(d->y);
    free(d->mask);
    free(d->time);
    free(d);
}

int moe_dataset_alloc(moe_dataset **out, const moe_model *m, long n, mr_err *e) {
    moe_dataset *d = calloc(1, sizeof *d);
    if (!d) return mr_err_set(e, MR_ENOMEM, "dataset: out of memory");
    d->n = n;
    d->n_cat = m->n_cat;
    d->n_num = m->n_num;
    d->n_tasks = m->n_tasks;
    d->extra_dim = m->extra_dim;
    int bad = 0;
    for (int f = 0; f < d->n_cat; f++) {
        d->cat_off[f] = calloc((size_t)n + 1, sizeof(uint32_t));
        d->cat_rows[f] = calloc(1, sizeof(uint32_t));
        bad |= !d->cat_off[f] || !d->cat_rows[f];
    }
    d->num = calloc((size_t)n * (size_t)d->n_num + 1, sizeof(float));
    d->extra = d->extra_dim ? calloc((size_t)n * (size_t)d->extra_dim, sizeof(float)) : NULL;
    d->y = calloc((size_t)n * (size_t)d->n_tasks + 1, sizeof(float));
    d->mask = calloc((size_t)n * (size_t)d->n_tasks + 1, sizeof(float));
    if (bad || !d->num || !d->y || !d->mask || (d->extra_dim && !d->extra)) {
        moe_dataset_free(d);
        return mr_err_set(e, MR_ENOMEM, "dataset: cannot allocate %ld rows", n);
    }
    *out = d;
    return 0;
}

/* ---- CSV ---------------------------------------------------------------------- */

/* Column of name, or an error naming the feature / task it is for. */
static int need_col(const mr_csv *c, const char *name, const char *what, const char *owner,
                    int *col, mr_err *e) {
    if ((*col = mr_csv_col(c, name)) >= 0) return 0;
    return mr_err_set(e, MR_EINVAL, "%s: no %scolumn '%s' (%s)", mr_csv_name(c), what, name, owner);
}

int moe_dataset_read(moe_dataset **out, const moe_model *m, const char *path, const char *time_col,
                     long max_rows, mr_err *e) {
    return moe_dataset_read_opts(out, m, path, time_col, max_rows, NULL, e);
}

int moe_dataset_read_opts(moe_dataset **out, const moe_model *m, const char *path,
                          const char *time_col, long max_rows, const mr_csv_opts *csv, mr_err *e) {
    *out = NULL;
    mr_csv *c = NULL;
    int rc = mr_csv_open(&c, path, csv, e);
    if (rc) return rc;
    vec rows[MOE_MAX_FIELDS], offs[MOE_MAX_FIELDS], ids[MOE_MAX_FIELDS],
        num = {.elt = sizeof(float)}, y = {.elt = sizeof(float)}, mask = {.elt = sizeof(float)},
        tv = {.elt = sizeof(double)};
    for (int i = 0; i < MOE_MAX_FIELDS; i++) {
        rows[i] = (vec){.elt = sizeof(uint32_t)};
        offs[i] = (vec){.elt = sizeof(uint32_t)};
        ids[i] = (vec){.elt = sizeof(uint64_t)};
    }
    int keep_ids = moe_model_maps_missing(m) > 0;
    int ccol[MOE_MAX_FIELDS], ncol[MOE_MAX_FIELDS], lcol[MOE_MAX_TASKS], tcol = -1;
    char owner[96];
    for (int i = 0; i < m->n_cat && !rc; i++) {
        snprintf(owner, sizeof owner, "feature '%s'", m->cat[i].name);
        rc = need_col(c, m->cat[i].column, "", owner, &ccol[i], e);
    }
    for (int i = 0; i < m->n_num && !rc; i++) {
        snprintf(owner, sizeof owner, "feature '%s'", m->num[i].name);
        rc = need_col(c, m->num[i].column, "", owner, &ncol[i], e);
    }
    for (int k = 0; k < m->n_tasks && !rc; k++) {
        snprintf(owner, sizeof owner, "task '%s'", m->tasks[k].name);
        rc = need_col(c, m->tasks[k].label, "label ", owner, &lcol[k], e);
    }
    if (!rc && time_col && *time_col && (tcol = mr_csv_col(c, time_col)) < 0)
        rc = mr_err_set(e, MR_EINVAL, "%s: no time column '%s'", path, time_col);
    if (rc) goto done;
    uint32_t zero = 0;
    for (int i = 0; i < m->n_cat; i++)
        if (vec_push(&offs[i], &zero)) goto oom;
    long n = 0;
    while ((max_rows <= 0 || n < max_rows) && (rc = mr_csv_next(c, e)) == 1) {
        rc = 0;
        for (int i = 0; i < m->n_cat; i++) {
            const char *v = mr_csv_cell(c, ccol[i]);
            char sep = m->cat[i].sep;
            while (*v) {
                const char *end = sep ? strchr(v, sep) : NULL;
                size_t len = end ? (size_t)(end - v) : strlen(v);
                uint64_t r[IDHASH_MAX_ROWS];
                /* an empty piece ("a||b", "|a") is no value, as an empty cell is */
                uint64_t id = len ? moe_model_value_id(m, i, v, len) : 0;
                int nr = len ? idhash_mapper_rows(m->tables[m->cat[i].table].map, id, r) : 0;
                if (nr && keep_ids && vec_push(&ids[i], &id)) goto oom;
                for (int j = 0; j < nr; j++) {
                    uint32_t r32 = (uint32_t)r[j];
                    if (vec_push(&rows[i], &r32)) goto oom;
                }
                if (!end) break;
                v = end + 1;
            }
            uint32_t o = (uint32_t)rows[i].n;
            if (vec_push(&offs[i], &o)) goto oom;
        }
        for (int i = 0; i < m->n_num; i++) {
            float v = NAN; /* missing: the field's fill */
            if ((rc = mr_csv_float(c, ncol[i], &v, e)) < 0) goto done;
            if (vec_push(&num, &v)) goto oom;
        }
        for (int k = 0; k < m->n_tasks; k++) {
            const char *cell = mr_csv_cell(c, lcol[k]);
            float v = 0, mk = 1.0f;
            if (mr_csv_is_missing(c, cell)) mk = 0; /* no label: outside this task's sample space */
            else {
                mr_err pe;
                mr_err_clear(&pe);
                int has_num = m->tasks[k].has_positive || mr_csv_float(c, lcol[k], &v, &pe) >= 0;
                if (moe_model_label(m, k, cell, has_num, v, &v,
                                    e)) { /* the reader's message, and what to do */
                    char why[MR_ERR_MSG_MAX];
                    snprintf(why, sizeof why, "%s", e ? e->msg : "");
                    rc = has_num ? mr_err_set(e, MR_EINVAL, "%s:%ld: %s", path, mr_csv_line(c), why)
                                 : mr_err_set(e, MR_EINVAL, "%s (%s)", pe.msg, why);
                    goto done;
                }
            }
            if (vec_push(&y, &v) || vec_push(&mask, &mk)) goto oom;
        }
        if (tcol >= 0) { /* a row without a time cannot be placed by a time split */
            double t = 0;
            if ((rc = mr_csv_double(c, tcol, &t, e)) < 0) goto done;
            if (rc == 1) {
                rc = mr_err_set(e, MR_EINVAL, "%s:%ld: time column '%s' is missing", path,
                                mr_csv_line(c), time_col);
                goto done;
            }
            if (vec_push(&tv, &t)) goto oom;
        }
        rc = 0;
        n++;
    }
    if (rc < 0) goto done;
    rc = 0;
    moe_dataset *d = calloc(1, sizeof *d);
    if (!d) goto oom;
    d->n = n;
    d->n_cat = m->n_cat;
    d->n_num = m->n_num;
    d->n_tasks = m->n_tasks;
    for (int i = 0; i < m->n_cat; i++) {
        d->cat_off[i] = offs[i].p;
        d->cat_rows[i] = rows[i].p ? rows[i].p : calloc(1, sizeof(uint32_t));
        d->cat_ids[i] = keep_ids ? (ids[i].p ? ids[i].p : calloc(1, sizeof(uint64_t))) : NULL;
        offs[i].p = rows[i].p = ids[i].p = NULL;
        if (!d->cat_rows[i] || (keep_ids && !d->cat_ids[i])) {
            moe_dataset_free(d);
            goto oom;
        }
    }
    d->num = num.p;
    d->y = y.p;
    d->mask = mask.p;
    d->time = tv.p;
    num.p = y.p = mask.p = tv.p = NULL;
    if (m->extra_dim) {
        d->extra_dim = m->extra_dim;
        d->extra = calloc((size_t)n * (size_t)m->extra_dim + 1, sizeof(float));
        if (!d->extra) {
            moe_dataset_free(d);
            goto oom;
        }
    }
    if (n == 0) {
        moe_dataset_free(d);
        rc = mr_err_set(e, MR_EINVAL, "%s: no data rows", path);
        goto done;
    }
    for (int k = 0; k < m->n_tasks; k++) { /* a task with no label at all would train on nothing */
        long labelled = 0;
        for (long i = 0; i < n; i++) labelled += d->mask[i * m->n_tasks + k] != 0;
        if (!labelled) {
            moe_dataset_free(d);
            rc = mr_err_set(e, MR_EINVAL, "%s: task '%s': no row has a label in column '%s'", path,
                            m->tasks[k].name, m->tasks[k].label);
            goto done;
        }
    }
    *out = d;
    goto done;
oom:
    rc = mr_err_set(e, MR_ENOMEM, "%s: out of memory", path);
done:
    for (int i = 0; i < MOE_MAX_FIELDS; i++) {
        free(rows[i].p);
        free(offs[i].p);
        free(ids[i].p);
    }
    free(num.p);
    free(y.p);
    free(mask.p);
    free(tv.p);
    mr_csv_close(c);
    return rc;
}

int moe_dataset_map_rows(moe_dataset *d, const moe_model *m, mr_err *e) {
    for (int f = 0; f < d->n_cat; f++) {
        if (!d->cat_ids[f])
            return mr_err_set(e, MR_ESTATE,
                              "dataset: value ids of '%s' were not kept (read before mapping)",
                              m->cat[f].name);
        const idhash_mapper *mp = m->tables[m->cat[f].table].map;
        int rpi = idhash_mapper_rows_per_id(mp);
        size_t nid = d->cat_off[f][d->n] / (uint32_t)rpi;
        uint64_t r[IDHASH_MAX_ROWS];
        for (size_t j = 0; j < nid; j++) {
            int nr = idhash_mapper_rows(mp, d->cat_ids[f][j], r);
            if (nr != rpi)
                return mr_err_set(e, MR_EINTERNAL, "dataset: '%s' maps to %d rows, read with %d",
                                  m->cat[f].name, nr, rpi);
            for (int k = 0; k < nr; k++)
                d->cat_rows[f][j * (size_t)rpi + (size_t)k] = (uint32_t)r[k];
        }
    }
    return 0;
}

/* ---- splits and batches ---------------------------------------------------------- */

static int by_time(const void *a, const void *b, void *ctx) {
    const double *tm = ctx;
    long x = *(const long *)a, y = *(const long *)b;
    double tx = tm[x], ty = tm[y];
    return tx < ty ? -1 : tx > ty ? 1 : (x > y) - (x < y);
}

int moe_dataset_split(const moe_dataset *d, double val_frac, int by_time_flag, uint64_t seed,
                      long **tr, long *ntr, long **va, long *nva, mr_err *e) {
    long n = d->n, nv = (long)(val_frac * (double)n);
    if (val_frac <= 0) nv = 0;
    if (nv >= n)
        return mr_err_set(e, MR_EINVAL, "validation fraction %.3f leaves no training rows",
                          val_frac);
    long *idx = malloc(sizeof(long) * (size_t)n);
    *tr = malloc(sizeof(long) * (size_t)(n - nv) + 1);
    *va = malloc(sizeof(long) * (size_t)nv + 1);
    if (!idx || !*tr || !*va) {
        free(idx);
        free(*tr);
        free(*va);
        return mr_err_set(e, MR_ENOMEM, "out of memory");
    }
    for (long i = 0; i < n; i++) idx[i] = i;
    if (by_time_flag && d->time) {
        qsort_r(idx, (size_t)n, sizeof(long), by_time, d->time);
        /* rows sharing the boundary time all go to validation: training
         * holds only rows strictly earlier than every validation row */
        if (nv > 0)
            while (nv < n && d->time[idx[n - nv - 1]] == d->time[idx[n - nv]]) nv++;
        if (nv >= n) {
            double t0 = d->time[idx[0]];
            free(idx);
            free(*tr);
            free(*va);
            return mr_err_set(e, MR_EINVAL,
                              "time split: every row has the boundary time %g, no training rows",
                              t0);
        }
        long *grown = realloc(*va, sizeof(long) * (size_t)nv + 1);
        if (!grown) {
            free(idx);
            free(*tr);
            free(*va);
            return mr_err_set(e, MR_ENOMEM, "out of memory");
        }
        *va = grown;
    } else {
        mr_rng r;
        mr_rng_seed(&r, seed);
        for (long i = n - 1; i > 0; i--) {
            long j = (long)mr_rng_below(&r, (uint64_t)i + 1), t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
    }
    memcpy(*tr, idx, sizeof(long) * (size_t)(n - nv));
    memcpy(*va, idx + (n - nv), sizeof(long) * (size_t)nv);
    *ntr = n - nv;
    *nva = nv;
    free(idx);
    return 0;
}

void moe_dataset_fit_numeric(const moe_dataset *d, moe_model *m, const long *idx, long n) {
    for (int f = 0; f < d->n_num; f++) {
        double s = 0, s2 = 0;
        long c = 0;
        for (long i = 0; i < n; i++) {
            float v = d->num[idx[i] * d->n_num + f];
            if (isnan(v)) continue;
            s += v;
            s2 += (double)v * v;
            c++;
        }
        if (!c) continue;
        double mean = s / (double)c, var = s2 / (double)c - mean * mean;
        m->num[f].mean = (float)mean;
        m->num[f].std = var > 1e-12 ? (float)sqrt(var) : 1.0f;
        m->num[f].fill = (float)mean;
    }
}

long moe_dataset_max_bag(const moe_dataset *d, int f) {
    long mx = 0;
    for (long i = 0; i < d->n; i++) {
        long c = d->cat_off[f][i + 1] - d->cat_off[f][i];
        mx = c > mx ? c : mx;
    }
    return mx;
}

void moe_dataset_batch(const moe_dataset *d, const moe_model *m, const long *idx, int B, float *x,
                       float *y, float *mask, uint32_t **rows, uint32_t **offs) {
    int D = m->in_dim, T = d->n_tasks;
    for (int f = 0; f < d->n_cat; f++) {
        const moe_cat_field *c = &m->cat[f];
        const moe_table *t = &m->tables[c->table];
        const uint32_t *off = d->cat_off[f], *rr = d->cat_rows[f];
        uint32_t local_off[2];
        for (int b = 0; b < B; b++) { /* one bag at a time, straight from the dataset CSR */
            long i = idx[b];
            local_off[0] = 0;
            local_off[1] = off[i + 1] - off[i];
            moe_embbag_forward(x + (long)b * D + c->offset, D, t->data, rr + off[i], local_off, 1,
                               t->dim, c->mean);
        }
        if (rows && offs) {
            uint32_t o = 0;
            for (int b = 0; b < B; b++) {
                long i = idx[b];
                offs[f][b] = o;
                for (uint32_t j = off[i]; j < off[i + 1]; j++) rows[f][o++] = rr[j];
            }
            offs[f][B] = o;
        }
    }
    for (int b = 0; b < B; b++) {
        long i = idx[b];
        float *xr = x + (long)b * D;
        for (int f = 0; f < d->n_num; f++) {
            float v = d->num[i * d->n_num + f];
            if (isnan(v)) v = m->num[f].fill;
            xr[m->num[f].offset] = (v - m->num[f].mean) / m->num[f].std;
        }
        if (d->extra_dim)
            memcpy(xr + (D - d->extra_dim), d->extra + i * d->extra_dim,
                   sizeof(float) * (size_t)d->extra_dim);
        for (int k = 0; k < T; k++) {
            y[(long)k * B + b] = d->y[i * T + k];
            mask[(long)k * B + b] = d->mask[i * T + k];
        }
    }
}
