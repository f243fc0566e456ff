/* sbm.h — test helper: planted-partition bipartite graphs (stochastic
 * block model). Header-only; used by test_louvain.c and test_graphhash.c. */
#ifndef MOEREC_TESTS_HASHING_SBM_H
#define MOEREC_TESTS_HASHING_SBM_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/rng.h"

/* nb blocks of per users and per items each; user u is in block u / per,
 * item i in block i / per. Edge (u, i) with probability pin inside a block,
 * pout across. Fills malloc'd dense edge arrays; returns the edge count. */
static inline size_t sbm_edges(uint64_t seed, int nb, int per, double pin, double pout,
                               int32_t **users, int32_t **items) {
    mr_rng r;
    mr_rng_seed(&r, seed);
    int n = nb * per;
    size_t cap = 1024, ne = 0;
    *users = malloc(cap * sizeof **users);
    *items = malloc(cap * sizeof **items);
    for (int u = 0; u < n; u++)
        for (int i = 0; i < n; i++) {
            double p = u / per == i / per ? pin : pout;
            if (mr_rng_uniform(&r) >= p) continue;
            if (ne == cap) {
                cap *= 2;
                *users = realloc(*users, cap * sizeof **users);
                *items = realloc(*items, cap * sizeof **items);
            }
            (*users)[ne] = u;
            (*items)[ne] = i;
            ne++;
        }
    return ne;
}

/* Normalised mutual information of two labelings a, b of n nodes (labels
 * in [0, na) and [0, nb)); 1 = identical up to renaming. */
static inline double sbm_nmi(const int32_t *a, const int32_t *b, int n, int na, int nb) {
    double *joint = calloc((size_t)na * nb, sizeof *joint);
    double *pa = calloc((size_t)na, sizeof *pa), *pb = calloc((size_t)nb, sizeof *pb);
    for (int x = 0; x < n; x++) {
        joint[(size_t)a[x] * nb + b[x]] += 1.0 / n;
        pa[a[x]] += 1.0 / n;
        pb[b[x]] += 1.0 / n;
    }
    double mi = 0, ha = 0, hb = 0;
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++) {
            double p = joint[(size_t)i * nb + j];
            if (p > 0) mi += p * log(p / (pa[i] * pb[j]));
        }
    for (int i = 0; i < na; i++)
        if (pa[i] > 0) ha -= pa[i] * log(pa[i]);
    for (int j = 0; j < nb; j++)
        if (pb[j] > 0) hb -= pb[j] * log(pb[j]);
    free(joint);
    free(pa);
    free(pb);
    return ha + hb > 0 ? 2 * mi / (ha + hb) : 1.0;
}

#endif
