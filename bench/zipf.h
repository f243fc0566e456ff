/* zipf.h — Zipf(s) draws over ranks 1..n for the benchmarks (emb_store,
 * emb_tier): rejection-inversion, O(1) per draw, no table of n weights. */
#ifndef MOEREC_BENCH_ZIPF_H
#define MOEREC_BENCH_ZIPF_H

#include <math.h>
#include <stdint.h>

#include "common/rng.h"

/* ---- Zipf(s) over ranks 1..n: rejection-inversion (Hormann & Derflinger
 * 1996), O(1) per draw without a table of n weights. */
typedef struct zipf {
    double s, n, hx1, hn, sval;
} zipf;

static inline double zh(const zipf *z, double x) { return exp(-z->s * log(x)); }
static inline double zhelper1(double x) {
    return fabs(x) > 1e-8 ? log1p(x) / x : 1 - x * (0.5 - x * (1.0 / 3 - x / 4));
}
static inline double zhelper2(double x) {
    return fabs(x) > 1e-8 ? expm1(x) / x : 1 + x / 2 * (1 + x / 3 * (1 + x / 4));
}
static inline double zhint(const zipf *z, double x) {
    double lx = log(x);
    return zhelper2((1 - z->s) * lx) * lx;
}
static inline double zhinv(const zipf *z, double x) {
    double t = x * (1 - z->s);
    if (t < -1) t = -1;
    return exp(zhelper1(t) * x);
}
static inline void zipf_init(zipf *z, double s, uint64_t n) {
    z->s = s;
    z->n = (double)n;
    z->hx1 = zhint(z, 1.5) - 1;
    z->hn = zhint(z, z->n + 0.5);
    z->sval = 2 - zhinv(z, zhint(z, 2.5) - zh(z, 2));
}
static inline uint64_t zipf_draw(const zipf *z, mr_rng *r) {
    for (;;) {
        double u = z->hn + mr_rng_uniform(r) * (z->hx1 - z->hn);
        double x = zhinv(z, u);
        double k = floor(x + 0.5);
        if (k < 1) k = 1;
        if (k > z->n) k = z->n;
        if (k - x <= z->sval || u >= zhint(z, k + 0.5) - zh(z, k)) return (uint64_t)k;
    }
}

#endif
