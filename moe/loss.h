/* loss.h — the multi-task objective over one forward pass.
 *
 * Task k's loss is masked to its sample space (PLE): L_k = sum_b m_kb l_kb /
 * sum_b m_kb, with BCE on the tower logit for binary tasks and squared error
 * for regression tasks. The total is sum_k w_k L_k plus the gates' auxiliary
 * losses (arch.lbl_coef * LBL + arch.ent_coef * entropy, summed over gates).
 */
#ifndef MOEREC_MOE_LOSS_H
#define MOEREC_MOE_LOSS_H

#include "moe/net.h"

typedef struct moe_loss {
    double total;               /* what backward differentiates          */
    double task[MOE_MAX_TASKS]; /* L_k, unweighted                        */
    double aux;                 /* weighted auxiliary part of total       */
} moe_loss;

/* y, mask: (T, B) task-major (mask NULL = every label present); task_w (T)
 * or NULL for weight 1. When dlogit != NULL, dlogit[k] (B) is OVERWRITTEN
 * with dtotal/dlogit_k. */
void moe_net_loss(moe_loss *out, float *const *dlogit, const moe_pass *p, const moe_net *n,
                  const float *y, const float *mask, const float *task_w);

#endif
