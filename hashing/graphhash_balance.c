/* graphhash_balance.c — balanced rows from GraphHash clusters
 * (graphhash_balance_rows in graphhash.h).
 *
 * Louvain at a resolution that yields about as many clusters as rows puts
 * most popular ids into a few giant clusters and leaves the tail as
 * singletons, so the ids that carry most training rows share one row.
 * Splitting by mass keeps the community structure (ids of one cluster stay
 * in consecutive rows and share rows only with ids of their cluster) while
 * every row carries about the same number of training interactions.
 *
 * Hubs (graphhash_hub_rows): the heaviest ids own the first rows outright,
 * as frequency hashing's head does, and only the rest share rows by
 * cluster, so the ids that carry most training and test rows never share
 * a row with another id, whatever their community.
 */
#include <math.h>
#include <stdlib.h>

#include "hashing/graphhash.h"

typedef struct bal_key {
    uint32_t cluster;
    double mass;
    size_t j;
} bal_key;

static int bal_cmp(const void *a, const void *b) {
    const bal_key *x = a, *y = b;
    if (x->cluster != y->cluster) return x->cluster < y->cluster ? -1 : 1;
    if (x->mass != y->mass) return x->mass > y->mass ? -1 : 1;
    return (x->j > y->j) - (x->j < y->j);
}

int graphhash_balance_rows(const uint32_t *cluster, const double *mass, size_t n, uint32_t rows,
                           uint32_t *row, mr_err *e) {
    if (rows == 0) return mr_err_set(e, MR_EINVAL, "graphhash balance: rows = 0");
    bal_key *k = malloc((n ? n : 1) * sizeof *k);
    if (!k) return mr_err_set(e, MR_ENOMEM, "graphhash balance: out of memory");
    double left = 0; /* mass not yet in a closed row */
    for (size_t j = 0; j < n; j++) {
        if (!(mass[j] > 0) || !isfinite(mass[j])) {
            free(k);
            return mr_err_set(e, MR_EINVAL, "graphhash balance: id %zu has mass %g (need > 0)", j,
                              mass[j]);
        }
        k[j] = (bal_key){cluster[j], mass[j], j};
        left += mass[j];
    }
    qsort(k, n, sizeof *k, bal_cmp);
    uint32_t cur = 0;
    double share = left / rows, cm = 0;
    size_t cn = 0;
    for (size_t i = 0; i < n; i++) {
        if (cn && cur + 1 < rows) {
            int boundary = k[i].cluster != k[i - 1].cluster;
            int few = n - i <= (size_t)(rows - cur - 1); /* one id per remaining row */
            if (cm >= share || (boundary && cm >= 0.5 * share) || few) {
                left -= cm;
                cur++;
                share = left / (rows - cur);
                cm = 0;
                cn = 0;
            }
        }
        row[k[i].j] = cur;
        cm += k[i].mass;
        cn++;
    }
    free(k);
    return 0;
}

typedef struct hub_key {
    double mass;
    size_t j;
} hub_key;

static int hub_cmp(const void *a, const void *b) { /* mass desc, then index asc */
    const hub_key *x = a, *y = b;
    if (x->mass != y->mass) return x->mass > y->mass ? -1 : 1;
    return (x->j > y->j) - (x->j < y->j);
}

int graphhash_hub_rows(const uint32_t *cluster, const double *mass, size_t n, uint32_t rows,
                       uint32_t hubs, int balance, uint32_t *row, mr_err *e) {
    if (hubs >= rows)
        return mr_err_set(e, MR_EINVAL, "graphhash hubs: %u hubs need more than %u rows", hubs,
                          rows);
    for (size_t j = 0; j < n; j++)
        if (!(mass[j] > 0) || !isfinite(mass[j]))
            return mr_err_set(e, MR_EINVAL, "graphhash hubs: id %zu has mass %g (need > 0)", j,
                              mass[j]);
    size_t nh = hubs < n ? hubs : n, nr = n - nh, m = n ? n : 1;
    hub_key *k = malloc(m * sizeof *k);
    uint32_t *sub_cl = malloc(m * sizeof *sub_cl), *sub_row = malloc(m * sizeof *sub_row);
    double *sub_mass = malloc(m * sizeof *sub_mass);
    char *hub = calloc(m, 1);
    int rc = 0;
    if (!k || !sub_cl || !sub_row || !sub_mass || !hub) {
        rc = mr_err_set(e, MR_ENOMEM, "graphhash hubs: out of memory");
    } else {
        for (size_t j = 0; j < n; j++) k[j] = (hub_key){mass[j], j};
        qsort(k, n, sizeof *k, hub_cmp);
        for (size_t i = 0; i < nh; i++) row[k[i].j] = (uint32_t)i, hub[k[i].j] = 1;
        /* the rest, in index order, share rows nh.. by cluster */
        size_t r = 0;
        for (size_t j = 0; j < n; j++)
            if (!hub[j]) sub_cl[r] = cluster[j], sub_mass[r] = mass[j], k[r++].j = j;
        uint32_t left = rows - (uint32_t)nh;
        if (balance) rc = graphhash_balance_rows(sub_cl, sub_mass, nr, left, sub_row, e);
        else
            for (size_t i = 0; i < nr; i++) sub_row[i] = sub_cl[i] % left;
        for (size_t i = 0; !rc && i < nr; i++) row[k[i].j] = (uint32_t)nh + sub_row[i];
    }
    free(k);
    free(sub_cl);
    free(sub_row);
    free(sub_mass);
    free(hub);
    return rc;
}
