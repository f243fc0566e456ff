/* optim.h — optimizers: Adam for the dense weights, Adam (lazy: only the
 * rows touched by the batch) or Adagrad for embedding rows, and global-norm
 * gradient clipping over both.
 *
 * Sparse Adam updates a row's moments only when the row is in the batch
 * and uses the global step for bias correction (TensorFlow's LazyAdam):
 * rows of rare ids are not decayed towards zero on every step.
 */
#ifndef MOEREC_MOE_OPTIM_H
#define MOEREC_MOE_OPTIM_H

#include <stdint.h>

typedef enum { MOE_OPT_ADAM = 0, MOE_OPT_ADAGRAD } moe_opt_kind;

typedef struct moe_adam {
    float lr, beta1, beta2, eps, weight_decay;
    long step; /* updates done so far */
} moe_adam;

/* p (n) -= Adam step for gradient g (n), moments m, v (n). Increments nothing:
 * the caller advances a->step once per batch before the updates. */
void moe_adam_update(float *p, const float *g, float *m, float *v, long n, const moe_adam *a);
/* Embedding rows: for each of nrows touched rows r = rows[i], update the
 * dim-wide row of table p with gradient g + r*dim (the grad buffer is
 * table-shaped). Adam uses m, v; Adagrad uses v as its accumulator. */
void moe_sparse_update(float *p, const float *g, float *m, float *v, const uint32_t *rows,
                       long nrows, int dim, moe_opt_kind kind, const moe_adam *a);
/* Scale factor min(1, clip / ||g||) for a global norm sq_norm = ||g||^2;
 * clip <= 0 disables clipping. */
float moe_clip_scale(double sq_norm, float clip);

#endif
