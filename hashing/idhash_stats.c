/* idhash_stats.c — collision statistics of a row mapper over a set of ids.
 *
 * Everything is computed by sorting the ids' row tuples, so memory is
 * O(n) whatever the table size k (k may be far larger than the id count,
 * e.g. when sizing a table before training).
 */
#include <stdlib.h>

#include "hashing/idhash.h"
#include "hashing/idsearch.h"

typedef struct row_pair {
    uint64_t a, b; /* rows of one id; b = UINT64_MAX for single-row kinds */
} row_pair;

static int pair_cmp(const void *x, const void *y) {
    const row_pair *p = x, *q = y;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    return (p->b > q->b) - (p->b < q->b);
}

int idhash_collision_stats(const idhash_mapper *m, const uint64_t *ids, size_t n, idhash_stats *out,
                           mr_err *e) {
    *out = (idhash_stats){0};
    out->nrows = idhash_mapper_nrows(m);
    if (n == 0) return 0;
    int per = idhash_mapper_rows_per_id(m);
    uint64_t *sorted = malloc(n * sizeof *sorted);
    row_pair *pairs = malloc(n * sizeof *pairs);
    uint64_t *all = malloc(n * (size_t)per * sizeof *all);
    int rc = 0;
    if (!sorted || !pairs || !all) {
        rc = mr_err_set(e, MR_ENOMEM, "collision stats: out of memory for %zu ids", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) sorted[i] = ids[i];
    qsort(sorted, n, sizeof *sorted, idsearch_cmp_u64);
    for (size_t i = 1; i < n; i++)
        if (sorted[i] == sorted[i - 1]) {
            rc = mr_err_set(e, MR_EINVAL, "collision stats: id %llu appears twice",
                            (unsigned long long)sorted[i]);
            goto done;
        }
    for (size_t i = 0; i < n; i++) {
        uint64_t r[IDHASH_MAX_ROWS];
        int nr = idhash_mapper_rows(m, ids[i], r);
        pairs[i].a = r[0];
        pairs[i].b = nr > 1 ? r[1] : UINT64_MAX;
        for (int j = 0; j < nr; j++) all[(size_t)per * i + (size_t)j] = r[j];
    }
    /* Shared: ids whose whole row tuple occurs more than once. */
    qsort(pairs, n, sizeof *pairs, pair_cmp);
    size_t shared = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && pairs[j].a == pairs[i].a && pairs[j].b == pairs[i].b) j++;
        if (j - i > 1) shared += j - i;
        i = j;
    }
    /* Load on the first row (pairs are sorted by a). */
    uint64_t first_rows = 0, max_load = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && pairs[j].a == pairs[i].a) j++;
        first_rows++;
        if (j - i > max_load) max_load = j - i;
        i = j;
    }
    /* Occupancy over every row used. */
    size_t nall = n * (size_t)per;
    qsort(all, nall, sizeof *all, idsearch_cmp_u64);
    uint64_t occupied = 0;
    for (size_t i = 0; i < nall; i++)
        if (i == 0 || all[i] != all[i - 1]) occupied++;
    out->nids = n;
    out->occupied = occupied;
    out->occupancy = (double)occupied / (double)out->nrows;
    out->shared_fraction = (double)shared / (double)n;
    out->mean_load = (double)n / (double)first_rows;
    out->max_load = max_load;
done:
    free(sorted);
    free(pairs);
    free(all);
    return rc;
}
