/* attention.c — target attention and mean pooling over behaviour sequences
 * (see attention.h).
 *
 * Forward is sgemm (scores) -> row softmax in place -> sgemm (pooling);
 * backward is three sgemms plus the softmax Jacobian applied in place in
 * the caller's scratch. Keeping the (B, L) probabilities costs B*L floats:
 * 4 MB for 100 candidates at L = 10,000, acceptable for a reference layer
 * and one reason SDIM is the serving path.
 */
#include "moe/attention.h"

#include <math.h>
#include <string.h>

#include "common/tensor.h"
#include "moe/layers.h"

float moe_attn_scale(int D, float scale) {
    return scale > 0.0f ? scale : 1.0f / sqrtf((float)(D > 0 ? D : 1));
}

void moe_attn_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                      int B, int L, int D, float scale) {
    if (B <= 0) return;
    if (L <= 0) {
        memset(out, 0, sizeof(float) * (size_t)B * (size_t)D);
        return;
    }
    scale = moe_attn_scale(D, scale);
    mr_sgemm(0, 1, B, L, D, scale, q, k, 0.0f, probs);  /* (B, D) @ (D, L) */
    moe_softmax_forward(probs, probs, B, L);            /* in place, row-wise */
    mr_sgemm(0, 0, B, D, L, 1.0f, probs, v, 0.0f, out); /* (B, L) @ (L, D) */
}

void moe_attn_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                       const float *probs, const float *q, const float *k, const float *v, int B,
                       int L, int D, float scale) {
    if (B <= 0 || L <= 0) return;
    scale = moe_attn_scale(D, scale);
    if (dv) mr_sgemm(1, 0, L, D, B, 1.0f, probs, dout, 1.0f, dv); /* (L, B) @ (B, D) */
    if (!dq && !dk) return;
    float *ds = scratch;                              /* (B, L) */
    mr_sgemm(0, 1, B, L, D, 1.0f, dout, v, 0.0f, ds); /* dprobs = dout @ v^T */
    for (int r = 0; r < B; r++) {                     /* dscores = scale * p * (dp - <p, dp>) */
        const float *p = probs + (size_t)r * L;
        float *g = ds + (size_t)r * L;
        double dot = 0;
        for (int c = 0; c < L; c++) dot += (double)p[c] * g[c];
        for (int c = 0; c < L; c++) g[c] = scale * p[c] * (g[c] - (float)dot);
    }
    if (dq) mr_sgemm(0, 0, B, D, L, 1.0f, ds, k, 1.0f, dq); /* (B, L) @ (L, D) */
    if (dk) mr_sgemm(1, 0, L, D, B, 1.0f, ds, q, 1.0f, dk); /* (L, B) @ (B, D) */
}

void moe_meanpool_forward(float *out, const float *x, const uint32_t *off, int B, int D) {
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * D;
        memset(o, 0, sizeof(float) * (size_t)D);
        uint32_t n = off[b + 1] - off[b];
        if (n == 0) continue;
        for (uint32_t j = off[b]; j < off[b + 1]; j++) mr_axpy(D, 1.0f, x + (size_t)j * D, o);
        float inv = 1.0f / (float)n;
        for (int c = 0; c < D; c++) o[c] *= inv;
    }
}

void moe_meanpool_backward(float *dx, const float *dout, const uint32_t *off, int B, int D) {
    for (int b = 0; b < B; b++) {
        uint32_t n = off[b + 1] - off[b];
        if (n == 0) continue;
        float inv = 1.0f / (float)n;
        for (uint32_t j = off[b]; j < off[b + 1]; j++)
            mr_axpy(D, inv, dout + (size_t)b * D, dx + (size_t)j * D);
    }
}
