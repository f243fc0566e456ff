/* gate.c — router softmax, top-k / top-p selection, null and always-on
 * experts, and the auxiliary losses (see gate.h for the exact rules).
 *
 * The router itself is one sgemm over the batch; selection is a per-row
 * sort of a handful of probabilities (n_logits <= 64), so an insertion sort
 * beats anything clever.
 */
#include "moe/gate.h"

#include <math.h>
#include <string.h>

#include "moe/layers.h"

long moe_gate_cache_floats(const moe_gate *g, int B) {
    return 2L * B * g->n_logits + (long)B * g->n_choice + g->n_logits;
}

void moe_gate_cache_bind(moe_gate_cache *c, const moe_gate *g, int B, float *buf, uint8_t *kept) {
    memset(c, 0, sizeof *c);
    c->B = B;
    c->logits = buf;
    c->probs = buf + (long)B * g->n_logits;
    c->weight = c->probs + (long)B * g->n_logits;
    c->frac = c->weight + (long)B * g->n_choice;
    c->kept = kept;
}

int moe_gate_route_row(uint8_t *kept, const float *p, int n, const moe_gate_spec *s) {
    if (n <= 0 || n > 64) return 0;
    if (s->kind == MOE_GATE_DENSE) {
        memset(kept, 1, (size_t)n);
        return n;
    }
    int order[64];
    for (int i = 0; i < n; i++) { /* insertion sort, descending, stable */
        int j = i;
        while (j > 0 && p[order[j - 1]] < p[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    memset(kept, 0, (size_t)n);
    int nk;
    if (s->kind == MOE_GATE_TOPK) {
        nk = s->k < n ? s->k : n;
    } else {
        double cum = 0;
        nk = n;
        for (int i = 0; i < n; i++) {
            cum += p[order[i]];
            if (cum > s->p) {
                nk = i + 1;
                break;
            }
        }
    }
    for (int i = 0; i < nk; i++) kept[order[i]] = 1;
    return nk;
}

void moe_gate_forward(moe_gate_cache *c, const float *in, const moe_gate *g, int B) {
    if (g->n_logits) moe_linear_forward(c->logits, in, g->w, NULL, B, g->in_dim, g->n_logits);
    moe_gate_forward_logits(c, g, B);
}

void moe_gate_forward_logits(moe_gate_cache *c, const moe_gate *g, int B) {
    int L = g->n_logits, NC = g->n_choice, NA = g->spec.n_always;
    c->lbl = 0;
    c->entropy = 0;
    if (L == 0) { /* constant gate: every choice always on */
        for (long i = 0; i < (long)B * NC; i++) c->weight[i] = 1.0f;
        return;
    }
    moe_softmax_forward(c->probs, c->logits, B, L);
    long total = 0;
    double counts[64] = {0}, pbar[64] = {0}, ent = 0;
    int want_ent = !c->no_entropy;
    for (int b = 0; b < B; b++) {
        const float *p = c->probs + (long)b * L;
        uint8_t *k = c->kept + (long)b * L;
        total += moe_gate_route_row(k, p, L, &g->spec);
        float *w = c->weight + (long)b * NC;
        for (int a = 0; a < NA; a++) w[a] = 1.0f;
        for (int i = 0; i < g->n_routed; i++) w[NA + i] = k[i] ? p[i] : 0.0f;
        for (int i = 0; i < L; i++) {
            counts[i] += k[i];
            pbar[i] += p[i];
            if (want_ent && p[i] > 0) ent -= (double)p[i] * log((double)p[i]);
        }
    }
    double lbl = 0;
    for (int i = 0; i < L; i++) {
        c->frac[i] = total ? (float)(counts[i] / (double)total) : 0.0f;
        lbl += c->frac[i] * (pbar[i] / B);
    }
    c->lbl = B ? L * lbl : 0;
    c->entropy = B ? ent / B : 0;
}

void moe_gate_backward(float *din, float *dw, const float *dweight, const moe_gate_cache *c,
                       const float *in, const moe_gate *g, float lbl_coef, float ent_coef,
                       float *scratch) {
    int L = g->n_logits, NC = g->n_choice, NA = g->spec.n_always, B = c->B;
    if (L == 0 || B == 0) return;
    float *dprobs = scratch, *dlogits = scratch + (long)B * L;
    memset(dlogits, 0, sizeof(float) * (size_t)B * (size_t)L);
    for (int b = 0; b < B; b++) {
        const float *p = c->probs + (long)b * L;
        const uint8_t *k = c->kept + (long)b * L;
        const float *dwt = dweight + (long)b * NC;
        float *dp = dprobs + (long)b * L;
        for (int i = 0; i < L; i++) {
            float v = 0;
            if (i < g->n_routed && k[i]) v += dwt[NA + i];
            v += lbl_coef * L * c->frac[i] / B;
            if (ent_coef != 0.0f && p[i] > 0) v -= ent_coef * (logf(p[i]) + 1.0f) / B;
            dp[i] = v;
        }
    }
    moe_softmax_backward(dlogits, dprobs, c->probs, B, L);
    moe_linear_backward(din, dw, NULL, dlogits, in, g->w, B, g->in_dim, L);
}
