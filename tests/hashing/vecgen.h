/* vecgen.h — test helper: random unit vectors at a chosen angle.
 * Header-only, shared by test_simhash.c and test_sdim.c. */
#ifndef MOEREC_TESTS_HASHING_VECGEN_H
#define MOEREC_TESTS_HASHING_VECGEN_H

#include <math.h>

#include "common/rng.h"
#include "common/tensor.h"

/* x (d): random unit vector. */
static inline void vecgen_unit(mr_rng *r, float *x, int d) {
    mr_rng_fill_normal(r, x, d, 1.0f);
    float n = mr_l2norm(x, d);
    for (int i = 0; i < d; i++) x[i] /= n;
}

/* y (d): unit vector at angle theta from the unit vector q; tmp (d) scratch. */
static inline void vecgen_at_angle(mr_rng *r, const float *q, double theta, float *y, float *tmp,
                                   int d) {
    vecgen_unit(r, tmp, d);
    float c = mr_dot(tmp, q, d);
    for (int i = 0; i < d; i++) tmp[i] -= c * q[i];
    float n = mr_l2norm(tmp, d);
    for (int i = 0; i < d; i++) y[i] = (float)(cos(theta) * q[i] + sin(theta) * tmp[i] / n);
}

#endif
