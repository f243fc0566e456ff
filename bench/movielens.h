/* movielens.h — load ../shared/data/movielens.csv (the r-cran-dslabs
 * export: movieId,"title",year,"genres",userId,rating,timestamp) for the
 * hashing benchmarks (graphhash, louvain_scale). Header-only, bench use
 * only: quote-aware CSV, one row per rating, columns found by header name.
 */
#ifndef MOEREC_BENCH_MOVIELENS_H
#define MOEREC_BENCH_MOVIELENS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ml_rating {
    uint64_t user, item;
    float rating;
    int64_t ts;
} ml_rating;

/* Split one CSV line in place into at most max fields (quotes removed,
 * "" unescaped). Returns the number of fields. */
static inline int ml_split(char *line, char **f, int max) {
    int n = 0;
    char *p = line;
    while (n < max) {
        char *out = p;
        f[n++] = p;
        if (*p == '"') {
            char *q = p + 1;
            for (;;) {
                if (*q == '\0' || *q == '\n' || *q == '\r') break;
                if (*q == '"' && q[1] == '"') {
                    *out++ = '"';
                    q += 2;
                    continue;
                }
                if (*q == '"') {
                    q++;
                    break;
                }
                *out++ = *q++;
            }
            p = q;
        } else {
            while (*p && *p != ',' && *p != '\n' && *p != '\r') *out++ = *p++;
        }
        char sep = *p;
        *out = '\0';
        if (sep != ',') break;
        p++;
    }
    return n;
}

/* Read all ratings; *n gets the count. NULL (and a message on stderr) on
 * failure. */
static inline ml_rating *ml_load(const char *path, size_t *n) {
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "movielens: cannot open %s\n", path);
        return NULL;
    }
    char line[4096];
    char *f[16];
    int cu = -1, ci = -1, cr = -1, ct = -1;
    if (!fgets(line, sizeof line, fp)) {
        fclose(fp);
        return NULL;
    }
    int nf = ml_split(line, f, 16);
    for (int j = 0; j < nf; j++) {
        if (!strcmp(f[j], "userId")) cu = j;
        else if (!strcmp(f[j], "movieId")) ci = j;
        else if (!strcmp(f[j], "rating")) cr = j;
        else if (!strcmp(f[j], "timestamp")) ct = j;
    }
    if (cu < 0 || ci < 0 || cr < 0 || ct < 0) {
        fprintf(stderr, "movielens: %s lacks userId/movieId/rating/timestamp columns\n", path);
        fclose(fp);
        return NULL;
    }
    size_t cap = 1 << 17, cnt = 0;
    ml_rating *r = malloc(cap * sizeof *r);
    while (r && fgets(line, sizeof line, fp)) {
        nf = ml_split(line, f, 16);
        if (nf <= cu || nf <= ci || nf <= cr || nf <= ct) continue;
        if (cnt == cap) {
            cap *= 2;
            ml_rating *r2 = realloc(r, cap * sizeof *r);
            if (!r2) {
                free(r);
                r = NULL;
                break;
            }
            r = r2;
        }
        r[cnt++] = (ml_rating){strtoull(f[cu], NULL, 10), strtoull(f[ci], NULL, 10),
                               strtof(f[cr], NULL), strtoll(f[ct], NULL, 10)};
    }
    fclose(fp);
    *n = cnt;
    return r;
}

#endif
