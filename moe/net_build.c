/* net_build.c — turns an architecture description into a moe_net: level
 * structure, gates' choice lists, the one parameter allocation and its
 * named tensors, and the seeded initialisation.
 *
 * Built in two passes over the same walk: the first registers every tensor
 * (name, shape) and sums the sizes, the second points each tensor into the
 * single allocation. Keeping one walk avoids two descriptions of the layout
 * drifting apart.
 */
#include "moe/net.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "common/tensor.h"

static const char *k_arch_names[] = {"shared_bottom", "omoe", "mmoe", "cgc", "ple", "home"};

const char *moe_arch_kind_name(moe_arch_kind k) { return (unsigned)k < 6 ? k_arch_names[k] : "?"; }

int moe_arch_kind_parse(const char *s, moe_arch_kind *out) {
    for (int i = 0; i < 6; i++)
        if (!strcmp(s, k_arch_names[i])) {
            *out = (moe_arch_kind)i;
            return 0;
        }
    return MR_EINVAL;
}

void moe_arch_defaults(moe_arch *a, moe_arch_kind kind, int in_dim, int n_tasks) {
    memset(a, 0, sizeof *a);
    a->kind = kind;
    a->in_dim = in_dim;
    a->n_tasks = n_tasks;
    a->n_levels = kind == MOE_ARCH_PLE ? 2 : kind == MOE_ARCH_HOME ? 2 : 1;
    a->n_shared = kind == MOE_ARCH_SHARED_BOTTOM                                          ? 1
                  : kind == MOE_ARCH_CGC || kind == MOE_ARCH_PLE || kind == MOE_ARCH_HOME ? 2
                                                                                          : 8;
    a->n_task_experts = (kind == MOE_ARCH_CGC || kind == MOE_ARCH_PLE || kind == MOE_ARCH_HOME) ? 2
                                                                                                : 0;
    a->n_expert_layers = 1;
    a->expert_hidden[0] = kind == MOE_ARCH_SHARED_BOTTOM ? 113 : 16;
    a->n_tower_layers = 1;
    a->tower_hidden[0] = 8;
    a->act = kind == MOE_ARCH_HOME ? MOE_ACT_SWISH : MOE_ACT_RELU;
    a->expert_norm = kind == MOE_ARCH_HOME;
    a->n_groups = 1;
    a->gate.kind = MOE_GATE_DENSE;
    a->gate.k = 2;
    a->gate.p = 0.4f;
}

/* ---- tensor registration -------------------------------------------------- */

typedef struct builder {
    moe_net *n;
    int pass; /* 0 count, 1 assign */
    long off;
    int nt;
    mr_err *e;
} builder;

static float *reg(builder *b, int ndim, int d0, int d1, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static float *reg(builder *b, int ndim, int d0, int d1, const char *fmt, ...) {
    long n = ndim == 1 ? d0 : (long)d0 * d1;
    float *p = NULL;
    if (b->pass == 1) {
        moe_tensor *t = &b->n->tensors[b->nt];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->name, sizeof t->name, fmt, ap);
        va_end(ap);
        t->ndim = ndim;
        t->shape[0] = d0;
        t->shape[1] = ndim == 2 ? d1 : 0;
        t->n = n;
        t->data = p = b->n->params + b->off;
    }
    b->nt++;
    b->off += (n + 15) & ~15L; /* keep every tensor 64-byte aligned */
    return p;
}

static void reg_mlp(builder *b, moe_mlp *m, const char *prefix) {
    if (m->fg_rank > 0) {
        m->fg_a = reg(b, 2, m->fg_rank, m->dims[0], "%s.fg.a", prefix);
        m->fg_b = reg(b, 2, m->dims[0], m->fg_rank, "%s.fg.b", prefix);
    }
    for (int l = 0; l < m->n_layers; l++) {
        m->w[l] = reg(b, 2, m->dims[l + 1], m->dims[l], "%s.fc%d.w", prefix, l);
        m->b[l] = reg(b, 1, m->dims[l + 1], 0, "%s.fc%d.b", prefix, l);
        if (m->norm) {
            m->ng[l] = reg(b, 1, m->dims[l + 1], 0, "%s.norm%d.g", prefix, l);
            m->nb[l] = reg(b, 1, m->dims[l + 1], 0, "%s.norm%d.b", prefix, l);
        }
    }
}

static void reg_all(builder *b) {
    moe_net *n = b->n;
    char pre[48];
    for (int j = 0; j < n->n_levels; j++) {
        moe_level *lv = &n->levels[j];
        for (int i = 0; i < lv->n_experts; i++) {
            snprintf(pre, sizeof pre, "l%d.e%d", j, i);
            reg_mlp(b, &lv->experts[i], pre);
        }
        for (int s = 0; s < lv->n_slots; s++)
            if (lv->gates[s].n_logits > 0)
                lv->gates[s].w = reg(b, 2, lv->gates[s].n_logits, lv->in_dim, "l%d.gate%d.w", j, s);
        if (lv->has_sgate && lv->sgate.n_logits > 0)
            lv->sgate.w = reg(b, 2, lv->sgate.n_logits, lv->in_dim, "l%d.sgate.w", j);
        if (lv->self_gate)
            for (int s = 0; s < lv->n_slots; s++) {
                lv->sg_w[s] = reg(b, 2, lv->out_dim, lv->in_dim, "l%d.selfgate%d.w", j, s);
                lv->sg_b[s] = reg(b, 1, lv->out_dim, 0, "l%d.selfgate%d.b", j, s);
            }
    }
    for (int k = 0; k < n->arch.n_tasks; k++) {
        snprintf(pre, sizeof pre, "tower%d", k);
        reg_mlp(b, &n->towers[k], pre);
    }
}

/* ---- structure ------------------------------------------------------------- */

static int gate_setup(moe_gate *g, const moe_arch *a, const int *choice, int nchoice, int in_dim,
                      mr_err *e) {
    memset(g, 0, sizeof *g);
    g->spec = a->gate;
    if (nchoice > 64 || nchoice < 1)
        return mr_err_set(e, MR_EINVAL, "arch: a gate mixes %d experts (1..64)", nchoice);
    if (g->spec.n_always > nchoice) g->spec.n_always = nchoice;
    g->n_choice = nchoice;
    memcpy(g->choice, choice, sizeof(int) * (size_t)nchoice);
    g->n_routed = nchoice - g->spec.n_always;
    g->n_logits = g->n_routed + g->spec.n_null;
    if (g->n_logits > 64)
        return mr_err_set(e, MR_EINVAL, "arch.gate: %d router logits (max 64)", g->n_logits);
    if (g->spec.kind == MOE_GATE_TOPK && g->spec.k > g->n_logits)
        return mr_err_set(
            e, MR_EINVAL,
            "arch.gate.k is %d but a gate chooses among %d experts (%d routed + %d null)",
            g->spec.k, g->n_logits, g->n_routed, g->spec.n_null);
    if (g->n_logits == 1 && g->spec.n_null == 0) g->n_logits = 0; /* constant 1 */
    if (g->n_logits == 0) {
        g->spec.n_always = nchoice;
        g->n_routed = 0;
    }
    g->in_dim = in_dim;
    return 0;
}

static void mlp_setup(moe_mlp *m, int in, const int *hidden, int nh, int out_extra, moe_act act,
                      int norm, int act_last, int fg_rank) {
    memset(m, 0, sizeof *m);
    m->dims[0] = in;
    for (int l = 0; l < nh; l++) m->dims[l + 1] = hidden[l];
    m->n_layers = nh;
    if (out_extra) m->dims[++m->n_layers] = out_extra;
    m->act = act;
    m->norm = norm;
    m->act_last = act_last;
    m->fg_rank = fg_rank;
}

static int check_arch(const moe_arch *a, mr_err *e) {
    if (a->in_dim < 1)
        return mr_err_set(e, MR_EINVAL, "arch.in_dim must be >= 1 (got %d)", a->in_dim);
    if (a->n_tasks < 1 || a->n_tasks > MOE_MAX_TASKS)
        return mr_err_set(e, MR_EINVAL, "tasks: %d tasks (1..%d)", a->n_tasks, MOE_MAX_TASKS);
    if (a->n_expert_layers < 1 || a->n_expert_layers > MOE_MAX_LAYERS)
        return mr_err_set(e, MR_EINVAL, "arch.expert_hidden: 1..%d layers", MOE_MAX_LAYERS);
    if (a->n_tower_layers < 0 || a->n_tower_layers >= MOE_MAX_LAYERS)
        return mr_err_set(e, MR_EINVAL, "arch.tower_hidden: 0..%d layers", MOE_MAX_LAYERS - 1);
    for (int l = 0; l < a->n_expert_layers; l++)
        if (a->expert_hidden[l] < 1)
            return mr_err_set(e, MR_EINVAL, "arch.expert_hidden[%d] < 1", l);
    for (int l = 0; l < a->n_tower_layers; l++)
        if (a->tower_hidden[l] < 1) return mr_err_set(e, MR_EINVAL, "arch.tower_hidden[%d] < 1", l);
    if (a->n_levels < 1 || a->n_levels > MOE_MAX_LEVELS)
        return mr_err_set(e, MR_EINVAL, "arch.levels: 1..%d", MOE_MAX_LEVELS);
    if (a->n_shared < 0 || a->n_task_experts < 0)
        return mr_err_set(e, MR_EINVAL, "arch: negative expert count");
    if (a->gate.kind == MOE_GATE_TOPK && a->gate.k < 1)
        return mr_err_set(e, MR_EINVAL, "arch.gate.k must be >= 1");
    if (a->gate.kind == MOE_GATE_TOPP && !(a->gate.p > 0 && a->gate.p <= 1))
        return mr_err_set(e, MR_EINVAL, "arch.gate.p must be in (0, 1]");
    if (a->gate.n_null < 0 || a->gate.n_always < 0)
        return mr_err_set(e, MR_EINVAL, "arch.gate: negative count");
    if (a->kind == MOE_ARCH_HOME) {
        if (a->n_groups < 1 || a->n_groups > a->n_tasks)
            return mr_err_set(e, MR_EINVAL, "arch.task_groups: %d groups for %d tasks", a->n_groups,
                              a->n_tasks);
        for (int k = 0; k < a->n_tasks; k++)
            if (a->task_group[k] < 0 || a->task_group[k] >= a->n_groups)
                return mr_err_set(e, MR_EINVAL, "arch.task_groups[%d] = %d out of range", k,
                                  a->task_group[k]);
    }
    return 0;
}

/* Fill levels from the arch kind. */
static int layout(moe_net *n, mr_err *e) {
    const moe_arch *a = &n->arch;
    int T = a->n_tasks, nl = 1, slots0 = T, mt = a->n_task_experts, ms = a->n_shared;
    switch (a->kind) {
    case MOE_ARCH_SHARED_BOTTOM:
        slots0 = 1;
        mt = 0;
        ms = 1;
        break;
    case MOE_ARCH_OMOE:
        slots0 = 1;
        mt = 0;
        break;
    case MOE_ARCH_MMOE: mt = 0; break;
    case MOE_ARCH_CGC: break;
    case MOE_ARCH_PLE: nl = a->n_levels; break;
    case MOE_ARCH_HOME:
        nl = 2;
        slots0 = a->n_groups;
        break;
    }
    if (mt + ms < 1)
        return mr_err_set(e, MR_EINVAL, "arch: no experts (shared_experts + task_experts = 0)");
    n->n_levels = nl;
    n->levels = calloc((size_t)nl, sizeof *n->levels);
    if (!n->levels) return mr_err_set(e, MR_ENOMEM, "moe_net: out of memory");
    int home = a->kind == MOE_ARCH_HOME;
    int out_dim = a->expert_hidden[a->n_expert_layers - 1];
    for (int j = 0; j < nl; j++) {
        moe_level *lv = &n->levels[j];
        lv->n_slots = j == 0 ? slots0 : T;
        for (int s = 0; s < lv->n_slots; s++)
            lv->parent[s] = (home && j == 1) ? a->task_group[s] : s;
        lv->m_task = mt;
        lv->m_shared = ms;
        lv->n_experts = lv->n_slots * mt + ms;
        if (lv->n_experts > MOE_MAX_EXPERTS)
            return mr_err_set(e, MR_EINVAL, "arch: level %d has %d experts (max %d)", j,
                              lv->n_experts, MOE_MAX_EXPERTS);
        lv->in_dim = j == 0 ? a->in_dim : out_dim;
        lv->out_dim = out_dim;
        lv->has_sgate = j < nl - 1 && ms > 0;
        lv->self_gate = a->self_gate && j > 0 && lv->in_dim == lv->out_dim;
        if (j > 0 && ms > 0 && !n->levels[j - 1].has_sgate)
            return mr_err_set(e, MR_EINVAL,
                              "arch: level %d shared experts need a shared gate below", j);
        for (int i = 0; i < lv->n_experts; i++)
            mlp_setup(&lv->experts[i], lv->in_dim, a->expert_hidden, a->n_expert_layers, 0, a->act,
                      a->expert_norm, 1, a->feature_gate_rank);
        int choice[MOE_MAX_EXPERTS], nc;
        for (int s = 0; s < lv->n_slots; s++) {
            nc = 0;
            for (int i = 0; i < ms; i++) choice[nc++] = lv->n_slots * mt + i;
            for (int i = 0; i < mt; i++) choice[nc++] = s * mt + i;
            int rc = gate_setup(&lv->gates[s], a, choice, nc, lv->in_dim, e);
            if (rc) return rc;
        }
        if (lv->has_sgate) {
            nc = 0;
            for (int i = 0; i < ms; i++) choice[nc++] = lv->n_slots * mt + i;
            for (int i = 0; i < lv->n_slots * mt; i++) choice[nc++] = i;
            int rc = gate_setup(&lv->sgate, a, choice, nc, lv->in_dim, e);
            if (rc) return rc;
        }
    }
    for (int k = 0; k < T; k++) {
        n->tower_slot[k] = n->levels[nl - 1].n_slots == 1 ? 0 : k;
        mlp_setup(&n->towers[k], out_dim, a->tower_hidden, a->n_tower_layers, 1, MOE_ACT_RELU, 0, 0,
                  0);
    }
    return 0;
}

static void init_mlp(moe_mlp *m, mr_rng *r) {
    if (m->fg_rank > 0) {
        mr_rng_fill_normal(r, m->fg_a, (long)m->fg_rank * m->dims[0],
                           1.0f / sqrtf((float)m->dims[0]));
        mr_rng_fill_normal(r, m->fg_b, (long)m->fg_rank * m->dims[0], 0.01f);
    }
    for (int l = 0; l < m->n_layers; l++) {
        mr_rng_fill_normal(r, m->w[l], (long)m->dims[l + 1] * m->dims[l],
                           sqrtf(2.0f / (float)m->dims[l]));
        if (m->norm)
            for (int i = 0; i < m->dims[l + 1]; i++) m->ng[l][i] = 1.0f;
    }
}

long moe_net_max_params = MOE_MAX_PARAMS;

int moe_net_create(moe_net **out, const moe_arch *arch, uint64_t seed, mr_err *e) {
    *out = NULL;
    int rc = check_arch(arch, e);
    if (rc) return rc;
    moe_net *n = calloc(1, sizeof *n);
    if (!n) return mr_err_set(e, MR_ENOMEM, "moe_net: out of memory");
    n->arch = *arch;
    rc = layout(n, e);
    if (rc) goto err;
    builder b = {.n = n, .pass = 0, .e = e};
    reg_all(&b);
    n->n_params = b.off;
    n->n_tensors = b.nt;
    if (n->n_params > moe_net_max_params) {
        rc = mr_err_set(e, MR_EINVAL,
                        "moe_net: the dense network has %ld parameters, at most %ld: narrow "
                        "expert_hidden / tower_hidden or use fewer experts",
                        n->n_params, moe_net_max_params);
        goto err;
    }
    n->params = mr_floats_alloc((size_t)n->n_params);
    n->tensors = calloc((size_t)n->n_tensors + 1, sizeof *n->tensors);
    if (!n->params || !n->tensors) {
        rc = mr_err_set(e, MR_ENOMEM, "moe_net: cannot allocate %ld parameters", n->n_params);
        goto err;
    }
    b = (builder){.n = n, .pass = 1, .e = e};
    reg_all(&b);
    mr_rng r;
    mr_rng_seed(&r, seed);
    for (int j = 0; j < n->n_levels; j++) {
        moe_level *lv = &n->levels[j];
        for (int i = 0; i < lv->n_experts; i++) init_mlp(&lv->experts[i], &r);
        for (int s = 0; s < lv->n_slots; s++)
            if (lv->gates[s].w)
                mr_rng_fill_normal(&r, lv->gates[s].w, (long)lv->gates[s].n_logits * lv->in_dim,
                                   1.0f / sqrtf((float)lv->in_dim));
        if (lv->sgate.w)
            mr_rng_fill_normal(&r, lv->sgate.w, (long)lv->sgate.n_logits * lv->in_dim,
                               1.0f / sqrtf((float)lv->in_dim));
        if (lv->self_gate)
            for (int s = 0; s < lv->n_slots; s++)
                mr_rng_fill_normal(&r, lv->sg_w[s], (long)lv->out_dim * lv->in_dim,
                                   1.0f / sqrtf((float)lv->in_dim));
    }
    for (int k = 0; k < arch->n_tasks; k++) init_mlp(&n->towers[k], &r);
    *out = n;
    return 0;
err:
    moe_net_free(n);
    return rc;
}

void moe_net_free(moe_net *n) {
    if (!n) return;
    mr_floats_free(n->params);
    free(n->tensors);
    free(n->levels);
    free(n);
}

moe_tensor *moe_net_tensor(const moe_net *n, const char *name) {
    for (int i = 0; i < n->n_tensors; i++)
        if (!strcmp(n->tensors[i].name, name)) return &n->tensors[i];
    return NULL;
}
