/* layers.h — the ranker's layers as forward/backward pairs (llm.c style).
 *
 * Argument order is fixed: outputs, cached activations, inputs, weights,
 * sizes. Every backward ACCUMULATES into its gradient outputs (+=), so a
 * tensor read by two consumers gets the sum of both gradients. Dense layers
 * are one row-major sgemm over all B rows (common/tensor.h), never a loop of
 * matrix-vector products. Weights follow PyTorch's nn.Linear layout,
 * w (OC, C), so a torch state_dict exports without transposes.
 */
#ifndef MOEREC_MOE_LAYERS_H
#define MOEREC_MOE_LAYERS_H

/* Memory-bound loops compiled for AVX-512 and AVX2 too and picked when the
 * program loads (ifunc). Not under sanitizers: an ifunc resolver runs
 * before the sanitizer runtime is up and crashes in its instrumentation. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MOE_TARGET_CLONES
#else
#define MOE_TARGET_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif

#include <stdint.h>

/* out (B, OC) = in (B, C) @ w^T + b; w (OC, C), b (OC) or NULL. */
void moe_linear_forward(float *out, const float *in, const float *w, const float *b, int B, int C,
                        int OC);
/* din (B, C) += dout @ w; dw (OC, C) += dout^T @ in; db (OC) += colsum(dout).
 * Any of din, dw, db may be NULL to skip it. */
void moe_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                         const float *w, int B, int C, int OC);

/* out = max(0, in), n values; in-place allowed. */
void moe_relu_forward(float *out, const float *in, long n);
/* din += dout * [out > 0]. */
void moe_relu_backward(float *din, const float *dout, const float *out, long n);

/* out = in * sigmoid(in) (Swish / SiLU). */
void moe_swish_forward(float *out, const float *in, long n);
/* din += dout * (s + in s (1 - s)), s = sigmoid(in). */
void moe_swish_backward(float *din, const float *dout, const float *in, long n);

/* Per-row normalisation of an expert's output (HoME's fix for experts whose
 * outputs live on different scales): out = g * (in - mean) * rstd + b over
 * the C features of each row. Row-wise rather than over the batch so that a
 * candidate's score never depends on which other candidates share its
 * request. mean, rstd (B) are cached for backward. */
void moe_rownorm_forward(float *out, float *mean, float *rstd, const float *in, const float *g,
                         const float *b, int B, int C);
/* din (B, C) +=, dg (C) +=, db (C) += . */
void moe_rownorm_backward(float *din, float *dg, float *db, const float *dout, const float *in,
                          const float *mean, const float *rstd, const float *g, int B, int C);

/* probs (B, C) = softmax over each row of logits (B, C). */
void moe_softmax_forward(float *probs, const float *logits, int B, int C);
/* dlogits += J^T dprobs, row by row: p * (dp - sum(p * dp)). */
void moe_softmax_backward(float *dlogits, const float *dprobs, const float *probs, int B, int C);

static inline float moe_sigmoidf(float x) {
    return x >= 0 ? 1.0f / (1.0f + __builtin_expf(-x))
                  : __builtin_expf(x) / (1.0f + __builtin_expf(x));
}

/* Embedding bag: out (B, D) (row stride ostride) = sum (or mean when mean)
 * of table rows rows[off[b] .. off[b+1]) for each b. An empty bag gives 0. */
void moe_embbag_forward(float *out, int ostride, const float *table, const uint32_t *rows,
                        const uint32_t *off, int B, int D, int mean);
/* Gradient rows: drows (nnz, D) = dout of the row's bag (scaled by 1/n for
 * mean), one gradient row per looked-up row, in the order of rows[], so a
 * sparse optimizer can apply them (duplicates are simply applied twice). */
void moe_embbag_backward(float *drows, const float *dout, int dstride, const uint32_t *off, int B,
                         int D, int mean);

/* Binary cross-entropy on logits, masked: returns sum_b mask_b * loss_b
 * (mask NULL = all ones; label y in [0, 1]). Numerically stable. */
double moe_bce_forward(const float *logit, const float *y, const float *mask, int B);
/* dlogit[b] += scale * mask_b * (sigmoid(logit_b) - y_b). */
void moe_bce_backward(float *dlogit, const float *logit, const float *y, const float *mask,
                      float scale, int B);
/* Squared error, masked: returns sum_b mask_b * (pred_b - y_b)^2. */
double moe_mse_forward(const float *pred, const float *y, const float *mask, int B);
/* dpred[b] += scale * mask_b * 2 (pred_b - y_b). */
void moe_mse_backward(float *dpred, const float *pred, const float *y, const float *mask,
                      float scale, int B);

#endif
