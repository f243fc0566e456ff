/* net_pass.c — forward and backward of the expert network over a batch.
 *
 * Sparse gates save compute by grouping rows per expert: an expert runs only
 * on the rows where some gate gives it a non-zero weight (gather those rows,
 * run the expert's sgemms on the compact block, scatter the result). Dense
 * routing skips the gather and runs on the batch in place. Experts (and
 * towers) are independent given the gates, so with a thread pool they run in
 * parallel; each one writes only its own parameters' gradients and its own
 * input-gradient block, and those blocks are reduced afterwards in expert
 * order, so results do not depend on the number of threads.
 *
 * All activations come from the pass's arena, allocated on the calling
 * thread before any parallel section (the arena is not thread-safe).
 */
#include <string.h>

#include "common/tensor.h"
#include "moe/layers.h"
#include "moe/net.h"

#define G(n, grads, ptr) ((grads) + ((ptr) - (n)->params))

void moe_pass_init(moe_pass *p) {
    memset(p, 0, sizeof *p);
    mr_arena_init(&p->arena, (size_t)1 << 22, 0);
    moe_dnn_exec_init(&p->dnn);
}

void moe_pass_free(moe_pass *p) {
    mr_arena_free(&p->arena);
    moe_dnn_exec_free(&p->dnn);
}

typedef struct pass_alloc {
    moe_pass *p;
    int oom;
} pass_alloc;

static float *fa(pass_alloc *a, long n) {
    float *f = mr_arena_alloc(&a->p->arena, sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!f) a->oom = 1;
    return f;
}

static float *fz(pass_alloc *a, long n) {
    float *f = fa(a, n);
    if (f) memset(f, 0, sizeof(float) * (size_t)(n > 0 ? n : 1));
    return f;
}

static int mlp_maxdim(const moe_mlp *m) {
    int d = 1;
    for (int l = 0; l <= m->n_layers; l++) d = m->dims[l] > d ? m->dims[l] : d;
    return d;
}

static void mlp_cache_alloc(pass_alloc *a, moe_mlp_cache *c, const moe_mlp *m, int R) {
    memset(c, 0, sizeof *c);
    c->rows = R;
    if (m->dnn && a->p->dnn_on) c->pass = a->p;
    if (m->fg_rank) {
        c->xin = fa(a, (long)R * m->dims[0]);
        c->fg_h = fa(a, (long)R * m->fg_rank);
        c->fg_t = fa(a, (long)R * m->dims[0]);
    }
    for (int l = 0; l < m->n_layers; l++) {
        long sz = (long)R * m->dims[l + 1];
        if (c->pass && l < m->n_layers - 1)
            continue; /* the plan keeps hidden layers in its scratch */
        c->z[l] = fa(a, sz);
        if (m->norm) {
            c->zn[l] = fa(a, sz);
            c->mean[l] = fa(a, R);
            c->rstd[l] = fa(a, R);
        }
        int has_act = l < m->n_layers - 1 || m->act_last;
        float *pre = m->norm ? c->zn[l] : c->z[l];
        /* activate in place unless backward needs the pre-activation (Swish
         * does; ReLU's backward only reads its output) */
        int in_place = !has_act || !a->p->train || m->act == MOE_ACT_RELU;
        c->a[l] = in_place ? pre : fa(a, sz);
    }
}

static void act_forward(float *out, const float *in, long n, moe_act act) {
    if (act == MOE_ACT_SWISH) moe_swish_forward(out, in, n);
    else moe_relu_forward(out, in, n);
}

static void mlp_forward(moe_mlp_cache *c, const moe_mlp *m, const float *x) {
    int R = c->rows;
    c->x = x;
    if (R == 0) return;
    const float *in = x;
    if (m->fg_rank) { /* feature gate: xin = x * 2 sigmoid(B (A x)) */
        int d = m->dims[0];
        moe_linear_forward(c->fg_h, x, m->fg_a, NULL, R, d, m->fg_rank);
        moe_linear_forward(c->fg_t, c->fg_h, m->fg_b, NULL, R, m->fg_rank, d);
        for (long i = 0; i < (long)R * d; i++) c->xin[i] = x[i] * 2.0f * moe_sigmoidf(c->fg_t[i]);
        in = c->xin;
    }
    if (c->pass) {
        moe_pass *p = c->pass;
        int rc = moe_dnn_mlp_forward(m->dnn, m, &p->dnn, &p->arena, c->a[m->n_layers - 1], in, R,
                                     p->dnn_rc ? NULL : &p->dnn_err);
        if (rc && !p->dnn_rc) p->dnn_rc = rc;
        return;
    }
    for (int l = 0; l < m->n_layers; l++) {
        int I = m->dims[l], O = m->dims[l + 1];
        moe_linear_forward(c->z[l], in, m->w[l], m->b[l], R, I, O);
        const float *pre = c->z[l];
        if (m->norm) {
            moe_rownorm_forward(c->zn[l], c->mean[l], c->rstd[l], c->z[l], m->ng[l], m->nb[l], R,
                                O);
            pre = c->zn[l];
        }
        if (l < m->n_layers - 1 || m->act_last) act_forward(c->a[l], pre, (long)R * O, m->act);
        in = c->a[l];
    }
}

/* Backward of one MLP over its c->rows rows: dout (R, dims[last]);
 * accumulates parameter gradients and dx (R, dims[0]) when dx != NULL.
 * scratch: mlp_scratch_floats(m, R). */
static long mlp_scratch_floats(const moe_mlp *m, int R) {
    return 3L * R * mlp_maxdim(m) + 2L * R * m->dims[0] + (long)R * (m->fg_rank + 1);
}

static void mlp_backward(const moe_mlp_cache *c, const moe_mlp *m, const moe_net *n, float *grads,
                         const float *dout, float *dx, float *scratch) {
    int R = c->rows, md = mlp_maxdim(m);
    if (R == 0) return;
    float *buf[3] = {scratch, scratch + (long)R * md, scratch + 2L * R * md};
    float *fgbuf = scratch + 3L * R * md; /* (R, d0) dxin, then (R, d0) dt, (R, r) dh */
    int last = m->n_layers - 1;
    float *da = buf[0];
    memcpy(da, dout, sizeof(float) * (size_t)R * (size_t)m->dims[last + 1]);
    for (int l = last; l >= 0; l--) {
        int I = m->dims[l], O = m->dims[l + 1];
        long sz = (long)R * O;
        const float *pre = m->norm ? c->zn[l] : c->z[l];
        float *dpre = da;
        if (l < last || m->act_last) {
            dpre = da == buf[0] ? buf[1] : buf[0];
            memset(dpre, 0, sizeof(float) * (size_t)sz);
            if (m->act == MOE_ACT_SWISH) moe_swish_backward(dpre, da, pre, sz);
            else moe_relu_backward(dpre, da, c->a[l], sz);
        }
        float *dz = dpre;
        if (m->norm) {
            dz = (dpre != buf[2] && da != buf[2])   ? buf[2]
                 : (dpre != buf[1] && da != buf[1]) ? buf[1]
                                                    : buf[0];
            memset(dz, 0, sizeof(float) * (size_t)sz);
            moe_rownorm_backward(dz, G(n, grads, m->ng[l]), G(n, grads, m->nb[l]), dpre, c->z[l],
                                 c->mean[l], c->rstd[l], m->ng[l], R, O);
        }
        const float *in_l = l > 0 ? c->a[l - 1] : (m->fg_rank ? c->xin : c->x);
        float *din = NULL;
        if (l > 0) {
            din = dz == buf[0] ? buf[1] : buf[0];
            memset(din, 0, sizeof(float) * (size_t)R * (size_t)I);
        } else if (m->fg_rank) {
            din = fgbuf;
            memset(din, 0, sizeof(float) * (size_t)R * (size_t)I);
        } else {
            din = dx;
        }
        moe_linear_backward(din, G(n, grads, m->w[l]), G(n, grads, m->b[l]), dz, in_l, m->w[l], R,
                            I, O);
        da = din;
    }
    if (m->fg_rank) {
        int d = m->dims[0], r = m->fg_rank;
        float *dxin = fgbuf, *dt = fgbuf + (long)R * d, *dh = dt + (long)R * d;
        for (long i = 0; i < (long)R * d; i++) {
            float s = moe_sigmoidf(c->fg_t[i]);
            if (dx) dx[i] += dxin[i] * 2.0f * s;
            dt[i] = dxin[i] * c->x[i] * 2.0f * s * (1.0f - s);
        }
        memset(dh, 0, sizeof(float) * (size_t)R * (size_t)r);
        moe_linear_backward(dh, G(n, grads, m->fg_b), NULL, dt, c->fg_h, m->fg_b, R, r, d);
        moe_linear_backward(dx, G(n, grads, m->fg_a), NULL, dh, c->x, m->fg_a, R, d, r);
    }
}

/* ---- parallel jobs ---------------------------------------------------------- */

typedef struct job {
    const moe_net *n;
    const moe_mlp *m;
    moe_mlp_cache *c;
    const int *rows; /* NULL = all rows */
    int B;
    int width_in, width_out;
    const float *x; /* forward: full (B, in); backward: full dout (B, out) */
    float *xg;      /* gathered block */
    float *out;     /* forward: scatter target (B, out) or NULL */
    float *grads, *dx, *scratch;
} job;

static void job_forward(void *arg) {
    job *j = arg;
    const float *x = j->x;
    if (j->rows) {
        for (int r = 0; r < j->c->rows; r++)
            memcpy(j->xg + (long)r * j->width_in, j->x + (long)j->rows[r] * j->width_in,
                   sizeof(float) * (size_t)j->width_in);
        x = j->xg;
    }
    mlp_forward(j->c, j->m, x);
    if (j->rows && j->out) {
        const float *a = j->c->a[j->m->n_layers - 1];
        for (int r = 0; r < j->c->rows; r++)
            memcpy(j->out + (long)j->rows[r] * j->width_out, a + (long)r * j->width_out,
                   sizeof(float) * (size_t)j->width_out);
    }
}

static void job_backward(void *arg) {
    job *j = arg;
    const float *d = j->x;
    if (j->rows) {
        for (int r = 0; r < j->c->rows; r++)
            memcpy(j->xg + (long)r * j->width_out, j->x + (long)j->rows[r] * j->width_out,
                   sizeof(float) * (size_t)j->width_out);
        d = j->xg;
    }
    mlp_backward(j->c, j->m, j->n, j->grads, d, j->dx, j->scratch);
}

static int run_jobs(mr_pool *pool, void (*fn)(void *), job *jobs, int nj) {
    if (!pool || nj <= 1) {
        for (int i = 0; i < nj; i++) fn(&jobs[i]);
        return 0;
    }
    void *args[MOE_MAX_EXPERTS];
    for (int i = 0; i < nj; i++) args[i] = &jobs[i];
    return mr_pool_run(pool, fn, args, nj);
}

/* ---- forward ---------------------------------------------------------------- */

static const float *expert_input(const moe_level *lv, const moe_level_cache *c, int i) {
    int nt = lv->n_slots * lv->m_task;
    return i < nt ? c->in[i / lv->m_task] : c->sin;
}

/* 16 floats: the compiler keeps a few of them in vector registers. */
typedef float mix_v16 __attribute__((vector_size(64)));

/* Memory-bound and run for every level: out[q] = sum over gate q's choices
 * of weight * expert output, row by row for all ng gates at once (each
 * expert row is read once for every gate while it is in L1), 64 columns at
 * a time in four vector accumulators. Vectorised over d only, so every
 * output sums its experts in the same order on every path. */
MOE_TARGET_CLONES static void mix(float *const *out, const moe_gate *const *g,
                                  const moe_gate_cache *const *gc, int ng, float *const *eout,
                                  int B, int D) {
    for (int b = 0; b < B; b++)
        for (int q = 0; q < ng; q++) {
            const float *w = gc[q]->weight + (long)b * g[q]->n_choice;
            float *o = out[q] + (long)b * D;
            int d0 = 0;
            for (; d0 + 64 <= D; d0 += 64) {
                mix_v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
                for (int ci = 0; ci < g[q]->n_choice; ci++) {
                    if (w[ci] == 0.0f) continue;
                    const float *x = eout[g[q]->choice[ci]] + (long)b * D + d0;
                    mix_v16 x0, x1, x2, x3;
                    memcpy(&x0, x, 64);
                    memcpy(&x1, x + 16, 64);
                    memcpy(&x2, x + 32, 64);
                    memcpy(&x3, x + 48, 64);
                    float wc = w[ci];
                    a0 += wc * x0;
                    a1 += wc * x1;
                    a2 += wc * x2;
                    a3 += wc * x3;
                }
                memcpy(o + d0, &a0, 64);
                memcpy(o + d0 + 16, &a1, 64);
                memcpy(o + d0 + 32, &a2, 64);
                memcpy(o + d0 + 48, &a3, 64);
            }
            if (d0 < D) {
                memset(o + d0, 0, sizeof(float) * (size_t)(D - d0));
                for (int ci = 0; ci < g[q]->n_choice; ci++) {
                    if (w[ci] == 0.0f) continue;
                    const float *x = eout[g[q]->choice[ci]] + (long)b * D;
                    for (int d = d0; d < D; d++) o[d] += w[ci] * x[d];
                }
            }
        }
}

static void mark_used(uint8_t *used, const moe_gate *g, const moe_gate_cache *gc, int B) {
    for (int b = 0; b < B; b++)
        for (int ci = 0; ci < g->n_choice; ci++)
            if (gc->weight[(long)b * g->n_choice + ci] != 0.0f)
                used[(long)g->choice[ci] * B + b] = 1;
}

static int level_forward(pass_alloc *A, const moe_net *n, int j, mr_pool *pool) {
    moe_pass *p = A->p;
    const moe_level *lv = &n->levels[j];
    moe_level_cache *c = &p->lv[j];
    int B = p->B, D = lv->out_dim;
    for (int s = 0; s < lv->n_slots; s++)
        c->in[s] = j == 0 ? p->x : p->lv[j - 1].out[lv->parent[s]];
    c->sin = j == 0 ? p->x : p->lv[j - 1].sout;
    /* gates first: they decide which rows each expert must compute. With
     * the oneDNN plan, level 0's routers (all reading x) run as one matmul */
    const moe_mlp *gm = j == 0 && p->dnn_on ? lv->dnn_gates : NULL;
    float *lg = NULL;
    if (gm) {
        lg = fa(A, (long)B * gm->dims[1]);
        if (!lg) return 1;
        int rc = moe_dnn_mlp_forward(gm->dnn, gm, &p->dnn, &p->arena, lg, p->x, B,
                                     p->dnn_rc ? NULL : &p->dnn_err);
        if (rc && !p->dnn_rc) p->dnn_rc = rc;
        if (rc) gm = NULL;
    }
    for (int s = 0, off = 0; s <= lv->n_slots; s++) {
        const moe_gate *g = s < lv->n_slots ? &lv->gates[s] : &lv->sgate;
        moe_gate_cache *gc = s < lv->n_slots ? &c->gc[s] : &c->sgc;
        if (s == lv->n_slots && !lv->has_sgate) break;
        float *buf = fa(A, moe_gate_cache_floats(g, B));
        uint8_t *kept = mr_arena_alloc(&p->arena, (size_t)B * (size_t)(g->n_logits + 1));
        if (!buf || !kept) return A->oom = 1;
        moe_gate_cache_bind(gc, g, B, buf, kept);
        gc->no_entropy = n->arch.ent_coef == 0.0f; /* only its regulariser reads it */
        if (gm && g->n_logits) {                   /* this gate's columns of the stacked logits */
            int L = g->n_logits, W = gm->dims[1];
            for (int b = 0; b < B; b++)
                memcpy(gc->logits + (long)b * L, lg + (long)b * W + off, sizeof(float) * (size_t)L);
            off += L;
            moe_gate_forward_logits(gc, g, B);
        } else {
            moe_gate_forward(gc, s < lv->n_slots ? c->in[s] : c->sin, g, B);
        }
        p->aux_lbl += gc->lbl;
        p->aux_ent += gc->entropy;
    }
    uint8_t *used = mr_arena_calloc(&p->arena, (size_t)lv->n_experts * (size_t)B, 1);
    if (!used) return A->oom = 1;
    for (int s = 0; s < lv->n_slots; s++) mark_used(used, &lv->gates[s], &c->gc[s], B);
    if (lv->has_sgate) mark_used(used, &lv->sgate, &c->sgc, B);
    job jobs[MOE_MAX_EXPERTS];
    for (int i = 0; i < lv->n_experts; i++) {
        const uint8_t *u = used + (long)i * B;
        int R = 0;
        for (int b = 0; b < B; b++) R += u[b];
        c->rows[i] = NULL;
        if (R < B) {
            c->rows[i] = mr_arena_alloc(&p->arena, sizeof(int) * (size_t)(R + 1));
            if (!c->rows[i]) return A->oom = 1;
            for (int b = 0, r = 0; b < B; b++)
                if (u[b]) c->rows[i][r++] = b;
            c->xg[i] = fa(A, (long)R * lv->in_dim);
        }
        c->nrows[i] = R;
        p->expert_rows += R;
        p->expert_rows_dense += B;
        mlp_cache_alloc(A, &c->ex[i], &lv->experts[i], R);
        if (A->oom) return 1;
        c->eout[i] = c->rows[i] ? fz(A, (long)B * D) : c->ex[i].a[lv->experts[i].n_layers - 1];
        jobs[i] = (job){.n = n,
                        .m = &lv->experts[i],
                        .c = &c->ex[i],
                        .rows = c->rows[i],
                        .B = B,
                        .width_in = lv->in_dim,
                        .width_out = D,
                        .x = expert_input(lv, c, i),
                        .xg = c->xg[i],
                        .out = c->rows[i] ? c->eout[i] : NULL};
    }
    if (A->oom) return 1;
    if (run_jobs(pool, job_forward, jobs, lv->n_experts)) return A->oom = 1;
    float *mo[MOE_MAX_TASKS + 1];
    const moe_gate *mg[MOE_MAX_TASKS + 1];
    const moe_gate_cache *mgc[MOE_MAX_TASKS + 1];
    int nm = 0;
    for (int s = 0; s <= lv->n_slots; s++) {
        if (s == lv->n_slots && !lv->has_sgate) break;
        float *o = fa(A, (long)B * D);
        if (!o) return 1;
        *(s < lv->n_slots ? &c->out[s] : &c->sout) = o;
        mo[nm] = o;
        mg[nm] = s < lv->n_slots ? &lv->gates[s] : &lv->sgate;
        mgc[nm++] = s < lv->n_slots ? &c->gc[s] : &c->sgc;
    }
    mix(mo, mg, mgc, nm, c->eout, B, D);
    for (int s = 0; s < lv->n_slots; s++) {
        if (lv->self_gate) { /* out += sigmoid(in W^T + b) * in */
            c->sg[s] = fa(A, (long)B * D);
            if (!c->sg[s]) return 1;
            moe_linear_forward(c->sg[s], c->in[s], lv->sg_w[s], lv->sg_b[s], B, lv->in_dim, D);
            for (long i = 0; i < (long)B * D; i++) {
                c->sg[s][i] = moe_sigmoidf(c->sg[s][i]);
                c->out[s][i] += c->sg[s][i] * c->in[s][i];
            }
        }
    }
    return 0;
}

int moe_net_forward(moe_pass *p, const moe_net *n, const float *x, int B, int train, mr_pool *pool,
                    mr_err *e) {
    if (B < 0) return mr_err_set(e, MR_EINVAL, "moe_net_forward: negative batch");
    if (p->arena.reserved > p->arena.chunk_size) {
        /* the last pass (forward + backward) spilled into several chunks:
         * regrow to one chunk that holds it, so steady-state passes never
         * malloc (large mallocs are fresh mmaps, paid again every step) */
        size_t want = p->arena.used + p->arena.used / 4 + ((size_t)1 << 16);
        mr_arena_free(&p->arena);
        mr_arena_init(&p->arena, want, 0);
    } else {
        mr_arena_reset(&p->arena);
    }
    moe_dnn_exec_reset(&p->dnn);
    p->dnn_on = !train && !pool;
    p->dnn_rc = 0;
    p->B = B;
    p->train = train;
    p->x = x;
    p->expert_rows = p->expert_rows_dense = 0;
    p->aux_lbl = p->aux_ent = 0;
    pass_alloc A = {.p = p};
    p->lv = mr_arena_calloc(&p->arena, (size_t)n->n_levels, sizeof *p->lv);
    if (!p->lv) goto oom;
    for (int j = 0; j < n->n_levels; j++)
        if (level_forward(&A, n, j, pool)) goto oom;
    const moe_level *last = &n->levels[n->n_levels - 1];
    job jobs[MOE_MAX_TASKS];
    for (int k = 0; k < n->arch.n_tasks; k++) {
        mlp_cache_alloc(&A, &p->tw[k], &n->towers[k], B);
        jobs[k] = (job){.n = n,
                        .m = &n->towers[k],
                        .c = &p->tw[k],
                        .B = B,
                        .x = p->lv[n->n_levels - 1].out[n->tower_slot[k]]};
    }
    (void)last;
    if (A.oom) goto oom;
    if (run_jobs(pool, job_forward, jobs, n->arch.n_tasks)) goto oom;
    if (p->dnn_rc) return mr_err_set(e, p->dnn_rc, "%s", p->dnn_err.msg);
    for (int k = 0; k < n->arch.n_tasks; k++) p->logit[k] = p->tw[k].a[n->towers[k].n_layers - 1];
    return 0;
oom:
    return mr_err_set(e, MR_ENOMEM, "moe_net_forward: out of memory for batch %d", B);
}

double moe_pass_active_fraction(const moe_pass *p) {
    return p->expert_rows_dense ? (double)p->expert_rows / (double)p->expert_rows_dense : 1.0;
}

/* ---- backward ---------------------------------------------------------------- */

/* dweight (B, NC) = <dout_b, eout_choice_b>; deout_choice_b += weight * dout_b. */
static void mix_backward(float *dweight, float *const *deout, const float *dout, const moe_gate *g,
                         const moe_gate_cache *gc, float *const *eout, int B, int D) {
    for (int b = 0; b < B; b++) {
        const float *w = gc->weight + (long)b * g->n_choice, *dy = dout + (long)b * D;
        for (int ci = 0; ci < g->n_choice; ci++) {
            float *dw = dweight + (long)b * g->n_choice + ci;
            *dw = 0;
            if (w[ci] == 0.0f) continue;
            const float *x = eout[g->choice[ci]] + (long)b * D;
            float *dx = deout[g->choice[ci]] + (long)b * D, s = 0;
            for (int d = 0; d < D; d++) {
                s += dy[d] * x[d];
                dx[d] += w[ci] * dy[d];
            }
            *dw = s;
        }
    }
}

static void add_rows(float *dst, const float *src, const int *rows, int R, int W) {
    for (int r = 0; r < R; r++) {
        float *d = dst + (long)(rows ? rows[r] : r) * W;
        const float *s = src + (long)r * W;
        for (int k = 0; k < W; k++) d[k] += s[k];
    }
}

static int level_backward(pass_alloc *A, const moe_net *n, int j, float *grads, float *const *dout,
                          float *dsout, float *const *din, float *dsin, mr_pool *pool) {
    moe_pass *p = A->p;
    const moe_level *lv = &n->levels[j];
    moe_level_cache *c = &p->lv[j];
    int B = p->B, D = lv->out_dim, I = lv->in_dim;
    float lbl = n->arch.lbl_coef, ent = n->arch.ent_coef;
    if (lv->self_gate) {
        float *t = fa(A, (long)B * D);
        if (!t) return 1;
        for (int s = 0; s < lv->n_slots; s++) {
            const float *sg = c->sg[s], *in = c->in[s], *dy = dout[s];
            for (long i = 0; i < (long)B * D; i++) {
                t[i] = dy[i] * in[i] * sg[i] * (1.0f - sg[i]);
                if (din[s]) din[s][i] += dy[i] * sg[i];
            }
            moe_linear_backward(din[s], G(n, grads, lv->sg_w[s]), G(n, grads, lv->sg_b[s]), t, in,
                                lv->sg_w[s], B, I, D);
        }
    }
    float *deout[MOE_MAX_EXPERTS];
    for (int i = 0; i < lv->n_experts; i++)
        if (!(deout[i] = fz(A, (long)B * D))) return 1;
    for (int s = 0; s <= lv->n_slots; s++) {
        if (s == lv->n_slots && !lv->has_sgate) break;
        const moe_gate *g = s < lv->n_slots ? &lv->gates[s] : &lv->sgate;
        const moe_gate_cache *gc = s < lv->n_slots ? &c->gc[s] : &c->sgc;
        float *dw = fa(A, (long)B * g->n_choice), *scr = fa(A, 2L * B * (g->n_logits + 1));
        if (!dw || !scr) return 1;
        mix_backward(dw, deout, s < lv->n_slots ? dout[s] : dsout, g, gc, c->eout, B, D);
        moe_gate_backward(s < lv->n_slots ? din[s] : dsin, g->w ? G(n, grads, g->w) : NULL, dw, gc,
                          s < lv->n_slots ? c->in[s] : c->sin, g, lbl, ent, scr);
    }
    job jobs[MOE_MAX_EXPERTS];
    int nt = lv->n_slots * lv->m_task;
    for (int i = 0; i < lv->n_experts; i++) {
        int R = c->nrows[i];
        float *target = i < nt ? din[i / lv->m_task] : dsin;
        jobs[i] = (job){.n = n,
                        .m = &lv->experts[i],
                        .c = &c->ex[i],
                        .rows = c->rows[i],
                        .B = B,
                        .width_in = I,
                        .width_out = D,
                        .x = deout[i],
                        .grads = grads};
        jobs[i].scratch = fa(A, mlp_scratch_floats(&lv->experts[i], R));
        if (c->rows[i]) jobs[i].xg = fa(A, (long)R * D);
        jobs[i].dx = target ? fz(A, (long)R * I) : NULL;
    }
    if (A->oom) return 1;
    if (run_jobs(pool, job_backward, jobs, lv->n_experts)) return A->oom = 1;
    for (int i = 0; i < lv->n_experts; i++) {
        float *target = i < nt ? din[i / lv->m_task] : dsin;
        if (target) add_rows(target, jobs[i].dx, c->rows[i], c->nrows[i], I);
    }
    return 0;
}

int moe_net_backward(moe_pass *p, const moe_net *n, float *grads, float *dx, float *const *dlogit,
                     mr_pool *pool, mr_err *e) {
    if (!p->train) return mr_err_set(e, MR_ESTATE, "moe_net_backward: forward ran without train");
    pass_alloc A = {.p = p};
    int B = p->B, L = n->n_levels, T = n->arch.n_tasks;
    float *dout[MOE_MAX_LEVELS][MOE_MAX_TASKS] = {{0}}, *dsout[MOE_MAX_LEVELS] = {0};
    for (int j = 0; j < L; j++) {
        const moe_level *lv = &n->levels[j];
        for (int s = 0; s < lv->n_slots; s++) dout[j][s] = fz(&A, (long)B * lv->out_dim);
        if (lv->has_sgate) dsout[j] = fz(&A, (long)B * lv->out_dim);
    }
    job jobs[MOE_MAX_TASKS];
    int D = n->levels[L - 1].out_dim;
    for (int k = 0; k < T; k++) {
        jobs[k] = (job){
            .n = n, .m = &n->towers[k], .c = &p->tw[k], .B = B, .x = dlogit[k], .grads = grads};
        jobs[k].scratch = fa(&A, mlp_scratch_floats(&n->towers[k], B));
        jobs[k].dx = fz(&A, (long)B * D);
    }
    if (A.oom) goto oom;
    if (run_jobs(pool, job_backward, jobs, T)) goto oom;
    for (int k = 0; k < T; k++) add_rows(dout[L - 1][n->tower_slot[k]], jobs[k].dx, NULL, B, D);
    for (int j = L - 1; j >= 0; j--) {
        const moe_level *lv = &n->levels[j];
        float *din[MOE_MAX_TASKS], *dsin;
        for (int s = 0; s < lv->n_slots; s++) din[s] = j == 0 ? dx : dout[j - 1][lv->parent[s]];
        dsin = j == 0 ? dx : dsout[j - 1];
        if (level_backward(&A, n, j, grads, dout[j], dsout[j], din, dsin, pool)) goto oom;
    }
    return 0;
oom:
    return mr_err_set(e, MR_ENOMEM, "moe_net_backward: out of memory for batch %d", B);
}
