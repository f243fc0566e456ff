/* test_retr_util.h — shared helpers of the retrieval tests: seeded random
 * vectors, clustered data, an exact brute-force top-k oracle, temp dirs. */
#ifndef MOEREC_TESTS_INDEX_TEST_RETR_UTIL_H
#define MOEREC_TESTS_INDEX_TEST_RETR_UTIL_H

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/rng.h"
#include "common/tensor.h"
#include "index/retrieval/retr.h"

static inline float *tr_randn(uint64_t seed, int64_t n, int d) {
    mr_rng r;
    mr_rng_seed(&r, seed);
    float *x = mr_floats_alloc((size_t)n * (size_t)d);
    mr_rng_fill_normal(&r, x, (long)(n * d), 1.0f);
    return x;
}

/* Exact top-k by brute force: "higher is better" scores (IP, or -L2^2),
 * ties to the lower id. live (n) may be NULL (all live). ids from base_ids
 * (n) or the row number. */
static inline void tr_brute(const float *x, const int64_t *base_ids, const unsigned char *live,
                            int64_t n, int d, const float *q, retr_metric m, int k, int64_t *ids,
                            float *scores) {
    for (int j = 0; j < k; j++) {
        ids[j] = -1;
        scores[j] = -INFINITY;
    }
    for (int64_t i = 0; i < n; i++) {
        if (live && !live[i]) continue;
        const float *v = x + (size_t)i * d;
        float s = 0;
        if (m == RETR_METRIC_IP) {
            for (int t = 0; t < d; t++) s += v[t] * q[t];
        } else {
            for (int t = 0; t < d; t++) s -= (v[t] - q[t]) * (v[t] - q[t]);
        }
        int64_t id = base_ids ? base_ids[i] : i;
        int at = k;
        while (at > 0 && (s > scores[at - 1] || (s == scores[at - 1] && id < ids[at - 1]))) at--;
        if (at == k) continue;
        for (int j = k - 1; j > at; j--) {
            ids[j] = ids[j - 1];
            scores[j] = scores[j - 1];
        }
        ids[at] = id;
        scores[at] = s;
    }
}

/* |a ∩ b| / k for two id lists of length k (ids >= 0). */
static inline double tr_overlap(const int64_t *a, const int64_t *b, int k) {
    int hit = 0;
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++)
            if (a[i] >= 0 && a[i] == b[j]) {
                hit++;
                break;
            }
    return (double)hit / k;
}

/* XOR one byte of a file in place (to damage it). */
static inline void tr_flip_byte(const char *path, long at, int mask) {
    FILE *f = fopen(path, "r+b");
    if (!f) return;
    fseek(f, at, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(ch ^ mask, f);
    fclose(f);
}

static inline char *tr_tmpdir(void) {
    char *t = strdup("/tmp/moerec-retr-XXXXXX");
    return mkdtemp(t) ? t : NULL;
}

static inline void tr_rmdir(char *dir) {
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[4096];
    while (d && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
    free(dir);
}

#endif
