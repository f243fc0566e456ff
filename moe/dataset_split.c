/* dataset_split.c — per-group time splits and joining two datasets (for
 * `moerec train --split user-time` and `--val-data`); dataset.c holds the
 * reader and the global splits. */
#include <stdlib.h>
#include <string.h>

#include "moe/dataset.h"

typedef struct grp_key {
    const uint64_t *group;
    const double *time;
} grp_key;

static int by_group_time(const void *a, const void *b, void *ctx) {
    const grp_key *k = ctx;
    long x = *(const long *)a, y = *(const long *)b;
    if (k->group[x] != k->group[y]) return k->group[x] < k->group[y] ? -1 : 1;
    if (k->time[x] != k->time[y]) return k->time[x] < k->time[y] ? -1 : 1;
    return (x > y) - (x < y);
}

static int by_index(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

int moe_dataset_split_groups(const moe_dataset *d, const uint64_t *group, double val_frac,
                             long **tr, long *ntr, long **va, long *nva, mr_err *e) {
    *tr = *va = NULL;
    *ntr = *nva = 0;
    if (!d->time)
        return mr_err_set(e, MR_EINVAL, "per-user time split: the dataset has no time column");
    if (!(val_frac > 0 && val_frac < 1))
        return mr_err_set(e, MR_EINVAL, "per-user time split: validation fraction %g (0 < f < 1)",
                          val_frac);
    long n = d->n, *idx = malloc(sizeof(long) * (size_t)n);
    *tr = malloc(sizeof(long) * (size_t)n);
    *va = malloc(sizeof(long) * (size_t)n);
    if (!idx || !*tr || !*va) {
        free(idx);
        free(*tr);
        free(*va);
        *tr = *va = NULL;
        return mr_err_set(e, MR_ENOMEM, "out of memory");
    }
    for (long i = 0; i < n; i++) idx[i] = i;
    grp_key key = {group, d->time};
    qsort_r(idx, (size_t)n, sizeof(long), by_group_time, &key);
    for (long g = 0; g < n;) {
        long h = g;
        while (h < n && group[idx[h]] == group[idx[g]]) h++;
        long cnt = h - g, k = (long)(val_frac * (double)cnt);
        if (k < 1 && cnt >= 2) k = 1; /* every user with two rows or more is validated */
        long cut = h - k;             /* first validation row in time order */
        /* rows tied with the boundary time go to validation too, so each
         * user's training rows are strictly earlier than their validation rows */
        while (k > 0 && cut > g && d->time[idx[cut - 1]] == d->time[idx[cut]]) cut--;
        for (long i = g; i < h; i++) {
            if (i < cut || k == 0) (*tr)[(*ntr)++] = idx[i];
            else (*va)[(*nva)++] = idx[i];
        }
        g = h;
    }
    free(idx);
    qsort(*tr, (size_t)*ntr, sizeof(long),
          by_index); /* file order, as the other splits keep it stable */
    qsort(*va, (size_t)*nva, sizeof(long), by_index);
    if (*ntr == 0) {
        free(*tr);
        free(*va);
        *tr = *va = NULL;
        *nva = 0;
        return mr_err_set(e, MR_EINVAL, "per-user time split leaves no training rows");
    }
    return MR_OK;
}

/* realloc that keeps p on failure; 0 or -1. */
static int grow(void **p, size_t sz) {
    void *q = realloc(*p, sz ? sz : 1);
    if (!q) return -1;
    *p = q;
    return 0;
}

int moe_dataset_append(moe_dataset *a, const moe_dataset *b, mr_err *e) {
    if (a->n_cat != b->n_cat || a->n_num != b->n_num || a->n_tasks != b->n_tasks ||
        a->extra_dim != b->extra_dim || !a->time != !b->time)
        return mr_err_set(
            e, MR_EINVAL,
            "datasets of different layouts (fields, tasks, extra block or time column)");
    long n = a->n + b->n;
    for (int f = 0; f < a->n_cat; f++) {
        uint32_t na = a->cat_off[f][a->n], nb = b->cat_off[f][b->n];
        if (grow((void **)&a->cat_rows[f], sizeof(uint32_t) * (na + nb)) ||
            grow((void **)&a->cat_off[f], sizeof(uint32_t) * ((size_t)n + 1)))
            return mr_err_set(e, MR_ENOMEM, "out of memory");
        memcpy(a->cat_rows[f] + na, b->cat_rows[f], sizeof(uint32_t) * nb);
        for (long i = 1; i <= b->n; i++) a->cat_off[f][a->n + i] = na + b->cat_off[f][i];
    }
    if (grow((void **)&a->num, sizeof(float) * (size_t)n * (size_t)a->n_num) ||
        grow((void **)&a->y, sizeof(float) * (size_t)n * (size_t)a->n_tasks) ||
        grow((void **)&a->mask, sizeof(float) * (size_t)n * (size_t)a->n_tasks) ||
        (a->extra &&
         grow((void **)&a->extra, sizeof(float) * ((size_t)n * (size_t)a->extra_dim + 1))) ||
        (a->time && grow((void **)&a->time, sizeof(double) * (size_t)n)))
        return mr_err_set(e, MR_ENOMEM, "out of memory");
    memcpy(a->num + (size_t)a->n * a->n_num, b->num,
           sizeof(float) * (size_t)b->n * (size_t)a->n_num);
    memcpy(a->y + (size_t)a->n * a->n_tasks, b->y,
           sizeof(float) * (size_t)b->n * (size_t)a->n_tasks);
    memcpy(a->mask + (size_t)a->n * a->n_tasks, b->mask,
           sizeof(float) * (size_t)b->n * (size_t)a->n_tasks);
    if (a->extra)
        memcpy(a->extra + (size_t)a->n * a->extra_dim, b->extra,
               sizeof(float) * (size_t)b->n * (size_t)a->extra_dim);
    if (a->time) memcpy(a->time + a->n, b->time, sizeof(double) * (size_t)b->n);
    a->n = n;
    return MR_OK;
}
