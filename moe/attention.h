/* attention.h — long-behaviour pooling layers of the ranker: full target
 * attention (the accuracy reference SDIM replaces) and mean pooling (the
 * cheap baseline), as forward/backward pairs in layers.h's argument order
 * (outputs, cached activations, inputs, weights, sizes; backward +=).
 *
 * Target attention of B candidates over ONE behaviour sequence of L items:
 *
 *   out (B, D) = softmax(q K^T * scale) V,   scale = 1/sqrt(D) by default
 *
 * computed as two sgemms over the whole candidate batch (the candidates of
 * one request share the user's sequence). Its cost is O(B L D): this is what
 * makes it undeployable at L = 10,000 and what SDIM (moe/sdim_feature.h)
 * avoids. Sequences of different users are separate calls.
 */
#ifndef MOEREC_MOE_ATTENTION_H
#define MOEREC_MOE_ATTENTION_H

#include <stdint.h>

/* scale <= 0 means 1/sqrt(D). */
float moe_attn_scale(int D, float scale);

/* out (B, D) = probs @ v; probs (B, L) = softmax(q @ k^T * scale), cached
 * for backward. q (B, D), k (L, D), v (L, D); v may alias k. L = 0 gives
 * out = 0 (no history). */
void moe_attn_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                      int B, int L, int D, float scale);
/* dq (B, D) +=, dk (L, D) +=, dv (L, D) += (any may be NULL; dk may alias
 * dv when k aliases v). scratch (B, L) floats. */
void moe_attn_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                       const float *probs, const float *q, const float *k, const float *v, int B,
                       int L, int D, float scale);

/* Mean pooling of B ragged sequences: out (B, D) row b = mean of x rows
 * [off[b], off[b+1]) of x (N, D), N = off[B]; an empty sequence gives 0. */
void moe_meanpool_forward(float *out, const float *x, const uint32_t *off, int B, int D);
/* dx (N, D) += dout row b / n_b for every row of sequence b. */
void moe_meanpool_backward(float *dx, const float *dout, const uint32_t *off, int B, int D);

#endif
