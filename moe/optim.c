/* optim.c — Adam, lazy sparse Adam, Adagrad and clipping (see optim.h). */
#include "moe/optim.h"

#include <math.h>

void moe_adam_update(float *p, const float *g, float *m, float *v, long n, const moe_adam *a) {
    float b1 = a->beta1, b2 = a->beta2;
    float c1 = 1.0f - powf(b1, (float)a->step), c2 = 1.0f - powf(b2, (float)a->step);
    float lr = a->lr * sqrtf(c2) / c1;
    for (long i = 0; i < n; i++) {
        float gi = g[i] + a->weight_decay * p[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        p[i] -= lr * m[i] / (sqrtf(v[i]) + a->eps);
    }
}

void moe_sparse_update(float *p, const float *g, float *m, float *v, const uint32_t *rows,
                       long nrows, int dim, moe_opt_kind kind, const moe_adam *a) {
    for (long i = 0; i < nrows; i++) {
        long o = (long)rows[i] * dim;
        if (kind == MOE_OPT_ADAM) {
            moe_adam_update(p + o, g + o, m + o, v + o, dim, a);
        } else {
            for (int d = 0; d < dim; d++) {
                float gi = g[o + d];
                v[o + d] += gi * gi;
                p[o + d] -= a->lr * gi / (sqrtf(v[o + d]) + 1e-8f);
            }
        }
    }
}

float moe_clip_scale(double sq_norm, float clip) {
    if (clip <= 0) return 1.0f;
    double n = sqrt(sq_norm);
    return n > clip ? (float)(clip / n) : 1.0f;
}
