/* gate.h — gates that mix experts: dense softmax, top-k and top-p routing,
 * null experts and always-on shared experts, with the load-balance loss and
 * the entropy regulariser.
 *
 * A gate mixes n_choice experts (indices into its level's expert list). The
 * first n_always of them are always on with weight 1 (DeepSeekMoE's shared
 * experts); the other n_routed compete in a router softmax together with
 * n_null null experts (AdaMoE: output 0, no FLOPs):
 *   P (B, n_logits) = softmax(in @ w^T),  w (n_logits, in_dim), no bias,
 *   n_logits = n_routed + n_null.
 * Routing keeps a subset of logits per row; a kept routed expert gets weight
 * P_i, anything else 0. Weights are NOT renormalised (algorithms.md, top-p):
 *   dense: keep all;  top-k: the k largest (ties: lower index);
 *   top-p: sort descending, keep up to and including the first index whose
 *          cumulative sum exceeds p (all, if rounding never exceeds p).
 * When n_logits == 1 and nothing is routed away the gate is the constant 1
 * and has no router (Shared-Bottom).
 *
 * Auxiliary losses, over the whole batch given to forward (global f_i):
 *   LBL = n_logits * sum_i f_i * pbar_i, f_i = kept count of logit i / total
 *   kept, pbar_i = mean_b P_bi (f_i is treated as a constant);
 *   H   = mean_b ( -sum_i P_bi log P_bi ), minimised for top-p.
 */
#ifndef MOEREC_MOE_GATE_H
#define MOEREC_MOE_GATE_H

#include <stdint.h>

typedef enum { MOE_GATE_DENSE = 0, MOE_GATE_TOPK, MOE_GATE_TOPP } moe_gate_kind;

typedef struct moe_gate_spec {
    moe_gate_kind kind; /* routing rule                                        */
    int k;              /* top-k: logits kept per row (>= 1)                   */
    float p;            /* top-p: cumulative probability threshold (0, 1]      */
    int n_null;         /* null experts added to the router                    */
    int n_always;       /* of each gate's choice, how many are always on       */
} moe_gate_spec;

typedef struct moe_gate {
    moe_gate_spec spec;
    int n_choice;   /* experts mixed                                       */
    int choice[64]; /* level expert index of each choice                   */
    int n_routed;   /* n_choice - n_always                                 */
    int n_logits;   /* n_routed + n_null; 0 when the gate is constant      */
    int in_dim;     /* selector input width                                */
    float *w;       /* (n_logits, in_dim) router, NULL when constant        */
} moe_gate;

/* Per-call activations of one gate over B rows. */
typedef struct moe_gate_cache {
    int B;
    float *logits;  /* (B, n_logits) */
    float *probs;   /* (B, n_logits) */
    uint8_t *kept;  /* (B, n_logits) 1 when routing kept the logit */
    float *weight;  /* (B, n_choice) mixing weight of each choice */
    float *frac;    /* (n_logits) global f_i */
    double lbl;     /* load-balance loss value */
    double entropy; /* mean row entropy */
    int no_entropy; /* set after bind: forward leaves entropy 0 (the net
                       sets it when arch.ent_coef is 0: only that
                       regulariser reads it, and its log per logit was 1%
                       of a bf16 forward) */
} moe_gate_cache;

/* Cache arrays the caller allocates (moe_gate_cache_floats floats, bytes of
 * kept): B rows. */
long moe_gate_cache_floats(const moe_gate *g, int B);
void moe_gate_cache_bind(moe_gate_cache *c, const moe_gate *g, int B, float *buf, uint8_t *kept);

/* Route B rows of in (B, in_dim): fills c->weight, probs, kept, frac, lbl,
 * entropy (unless c->no_entropy). */
void moe_gate_forward(moe_gate_cache *c, const float *in, const moe_gate *g, int B);
/* The same from c->logits (B, n_logits) already computed (e.g. several
 * gates' routers in one matmul, moe/dnn.h). */
void moe_gate_forward_logits(moe_gate_cache *c, const moe_gate *g, int B);

/* Backward: dweight (B, n_choice) is dL/dweight from the mixture; lbl_coef and
 * ent_coef scale the auxiliary losses. Accumulates dw (n_logits, in_dim) and
 * din (B, in_dim) (either may be NULL). scratch: 2 * B * n_logits floats. */
void moe_gate_backward(float *din, float *dw, const float *dweight, const moe_gate_cache *c,
                       const float *in, const moe_gate *g, float lbl_coef, float ent_coef,
                       float *scratch);

/* Select kept logits of one row of probabilities p (n) into kept (n) by the
 * spec's rule; exposed for tests. Returns how many were kept. */
int moe_gate_route_row(uint8_t *kept, const float *p, int n, const moe_gate_spec *s);

#endif
