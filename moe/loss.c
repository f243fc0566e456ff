/* loss.c — masked multi-task loss and its gradient on the tower logits
 * (see loss.h). The auxiliary gate losses are already summed by the forward
 * pass; their gradients flow in moe_net_backward, which reads the same
 * coefficients from the arch.
 */
#include "moe/loss.h"

#include <string.h>

#include "moe/layers.h"

void moe_net_loss(moe_loss *out, float *const *dlogit, const moe_pass *p, const moe_net *n,
                  const float *y, const float *mask, const float *task_w) {
    int B = p->B, T = n->arch.n_tasks;
    memset(out, 0, sizeof *out);
    for (int k = 0; k < T; k++) {
        const float *yk = y + (long)k * B, *mk = mask ? mask + (long)k * B : NULL;
        double cnt = 0;
        for (int b = 0; b < B; b++) cnt += mk ? mk[b] : 1.0f;
        float w = task_w ? task_w[k] : 1.0f;
        int bin = n->arch.task_kind[k] == MOE_TASK_BINARY;
        double s = cnt > 0 ? (bin ? moe_bce_forward(p->logit[k], yk, mk, B)
                                  : moe_mse_forward(p->logit[k], yk, mk, B))
                           : 0.0;
        out->task[k] = cnt > 0 ? s / cnt : 0.0;
        out->total += w * out->task[k];
        if (dlogit) {
            memset(dlogit[k], 0, sizeof(float) * (size_t)B);
            if (cnt > 0) {
                float sc = (float)(w / cnt);
                if (bin) moe_bce_backward(dlogit[k], p->logit[k], yk, mk, sc, B);
                else moe_mse_backward(dlogit[k], p->logit[k], yk, mk, sc, B);
            }
        }
    }
    out->aux = n->arch.lbl_coef * p->aux_lbl + n->arch.ent_coef * p->aux_ent;
    out->total += out->aux;
}
