/* metrics.c — AUC by sorting scores once and summing positive ranks
 * (Mann-Whitney U), with tied scores sharing their average rank (NaN
 * scores rank lowest, tied together); log loss and MSE in double precision. */
#include "moe/metrics.h"

#include <math.h>
#include <stdlib.h>

typedef struct sy {
    float s, y;
} sy;

/* NaN scores (a diverged model) rank below every number and tie with each
 * other, so the comparator stays a total order for qsort. */
static int cmp_score(float x, float y) {
    int nx = isnan(x), ny = isnan(y);
    if (nx || ny) return ny - nx;
    return (x > y) - (x < y);
}

static int by_score(const void *a, const void *b) {
    return cmp_score(((const sy *)a)->s, ((const sy *)b)->s);
}

double moe_auc(const float *score, const float *y, const float *mask, long n) {
    sy *v = malloc(sizeof(sy) * (size_t)(n > 0 ? n : 1));
    if (!v) return -1;
    long m = 0;
    for (long i = 0; i < n; i++)
        if (!mask || mask[i] != 0.0f) v[m++] = (sy){score[i], y[i]};
    qsort(v, (size_t)m, sizeof *v, by_score);
    double npos = 0, rank_sum = 0;
    for (long i = 0; i < m;) {
        long j = i;
        while (j < m && cmp_score(v[j].s, v[i].s) == 0) j++;
        double avg = (double)(i + 1 + j) / 2.0; /* ranks i+1 .. j */
        for (long k = i; k < j; k++)
            if (v[k].y > 0.5f) {
                rank_sum += avg;
                npos++;
            }
        i = j;
    }
    free(v);
    double nneg = (double)m - npos;
    if (npos == 0 || nneg == 0) return 0.5;
    return (rank_sum - npos * (npos + 1) / 2.0) / (npos * nneg);
}

double moe_logloss(const float *p, const float *y, const float *mask, long n) {
    double s = 0, c = 0;
    for (long i = 0; i < n; i++) {
        if (mask && mask[i] == 0.0f) continue;
        double q = fmin(fmax(p[i], 1e-7), 1 - 1e-7);
        s -= y[i] * log(q) + (1 - y[i]) * log(1 - q);
        c++;
    }
    return c ? s / c : 0;
}

double moe_mse(const float *pred, const float *y, const float *mask, long n) {
    double s = 0, c = 0;
    for (long i = 0; i < n; i++) {
        if (mask && mask[i] == 0.0f) continue;
        double d = (double)pred[i] - y[i];
        s += d * d;
        c++;
    }
    return c ? s / c : 0;
}
