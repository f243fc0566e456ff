/* dnn.c — building the oneDNN plan of a model (see dnn.h): the CPU check,
 * per dense layer one matmul primitive per fixed row-block size and one with
 * a run-time row count (and the same for level 0's routers stacked), and
 * the weights reordered (and converted or quantised) once into the layouts
 * the primitives ask for (the fixed-row ones share one when it is equal).
 *
 * Why fixed row blocks (dnn_int.h has the figures): oneDNN 2.6 gives a
 * run-time row count (DNNL_RUNTIME_DIM_VAL) its gemm path, which packs the
 * operands on every call, and fixed rows its brgemm kernels on pre-blocked
 * weights. Creating every block size at load added no measurable time for
 * the moe_speed model (23 layers: its bench process took 0.17 s of user
 * time with and without them), while a primitive per exact row count would
 * have to be created (JIT) for every new batch size and sparse-gate subset.
 */
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dnnl_debug.h>

#include "moe/dnn_int.h"

static const char *const k_prec_names[MOE_PREC_COUNT] = {"openblas_fp32", "fp32", "bf16", "int8"};

const char *moe_precision_name(moe_precision p) {
    return (unsigned)p < MOE_PREC_COUNT ? k_prec_names[p] : "?";
}

int moe_precision_parse(const char *s, moe_precision *out) {
    for (int i = 0; i < MOE_PREC_COUNT; i++)
        if (!strcmp(s, k_prec_names[i])) {
            *out = (moe_precision)i;
            return 0;
        }
    return -1;
}

static pthread_once_t g_engine_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t g_engine;
static dnnl_status_t g_engine_status;

static void engine_init(void) { g_engine_status = dnnl_engine_create(&g_engine, dnnl_cpu, 0); }

dnnl_engine_t moe_dnn_engine(mr_err *e) {
    pthread_once(&g_engine_once, engine_init);
    if (g_engine_status != dnnl_success) {
        mr_err_set(e, MR_EINTERNAL, "oneDNN: cannot create the CPU engine (%s)",
                   dnnl_status2str(g_engine_status));
        return NULL;
    }
    return g_engine;
}

const char *moe_dnn_isa_name(void) {
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

/* Why the CPU cannot run p natively, or NULL. The ISA values are nested bit
 * sets (avx512_core_bf16 contains avx512_core_vnni, ...). */
static const char *isa_lacks(moe_precision p) {
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    if (p == MOE_PREC_BF16 &&
        (isa & dnnl_cpu_isa_avx512_core_bf16) != dnnl_cpu_isa_avx512_core_bf16)
        return "the CPU (as oneDNN sees it) has no AVX512_BF16";
    if (p == MOE_PREC_INT8 &&
        (isa & dnnl_cpu_isa_avx512_core_vnni) != dnnl_cpu_isa_avx512_core_vnni &&
        (isa & dnnl_cpu_isa_avx2_vnni) != dnnl_cpu_isa_avx2_vnni)
        return "the CPU (as oneDNN sees it) has no VNNI";
    return NULL;
}

#define DN(call, what)                                                                       \
    do {                                                                                     \
        dnnl_status_t s_ = (call);                                                           \
        if (s_ != dnnl_success) {                                                            \
            rc = mr_err_set(e, MR_EINTERNAL, "oneDNN: %s: %s", (what), dnnl_status2str(s_)); \
            goto err;                                                                        \
        }                                                                                    \
    } while (0)

static void layer_free(dnn_layer *l) {
    for (int v = 0; v < DNN_N_VAR; v++) {
        if (l->v[v].prim) dnnl_primitive_destroy(l->v[v].prim);
        if (l->v[v].wei && l->v[v].owns_wei) dnnl_memory_destroy(l->v[v].wei);
    }
    if (l->bias) dnnl_memory_destroy(l->bias);
    memset(l, 0, sizeof *l);
}

/* Reorder src_mem into a new memory of desc dst_md (same engine). */
static int reorder_into(dnnl_memory_t *out, dnnl_engine_t eng, dnnl_stream_t st,
                        dnnl_memory_t src_mem, const dnnl_memory_desc_t *src_md,
                        const dnnl_memory_desc_t *dst_md, const dnnl_primitive_attr_t attr,
                        mr_err *e) {
    int rc = 0;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t r = NULL;
    *out = NULL;
    DN(dnnl_memory_create(out, dst_md, eng, DNNL_MEMORY_ALLOCATE), "weights memory");
    DN(dnnl_reorder_primitive_desc_create(&pd, src_md, eng, dst_md, eng, attr), "weights reorder");
    DN(dnnl_primitive_create(&r, pd), "weights reorder");
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, src_mem}, {DNNL_ARG_TO, *out}};
    DN(dnnl_primitive_execute(r, st, 2, args), "weights reorder");
    DN(dnnl_stream_wait(st), "weights reorder");
    dnnl_primitive_destroy(r);
    dnnl_primitive_desc_destroy(pd);
    return 0;
err:
    if (r) dnnl_primitive_destroy(r);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (*out) dnnl_memory_destroy(*out);
    *out = NULL;
    return rc;
}

/* Symmetric per-output-channel quantisation: q[o][k] = round(w[o][k] / s[o]),
 * s[o] = max_k |w[o][k]| / 127 (1 for an all-zero row). */
static void quantize_rows(int8_t *q, float *scale, const float *w, int N, int K) {
    for (int o = 0; o < N; o++) {
        const float *r = w + (long)o * K;
        float mx = 0;
        for (int k = 0; k < K; k++) mx = r[k] > mx ? r[k] : (-r[k] > mx ? -r[k] : mx);
        float s = mx > 0 ? mx / 127.0f : 1.0f, inv = 1.0f / s;
        scale[o] = s;
        for (int k = 0; k < K; k++) {
            float t = r[k] * inv;
            int v = (int)(t + (t >= 0 ? 0.5f : -0.5f));
            q[(long)o * K + k] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
        }
    }
}

static int layer_build(dnn_layer *L, const moe_mlp *m, int l, moe_precision p, dnnl_engine_t eng,
                       dnnl_stream_t st, mr_err *e) {
    int rc = 0, K = m->dims[l], N = m->dims[l + 1], last = l == m->n_layers - 1;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_memory_t plain = NULL;
    int8_t *q = NULL;
    float *scale = NULL;
    memset(L, 0, sizeof *L);
    L->K = K;
    L->N = N;
    L->has_act = !last || m->act_last;
    L->src_dt = p == MOE_PREC_BF16 ? dnnl_bf16 : p == MOE_PREC_INT8 ? dnnl_s8 : dnnl_f32;
    /* after a ReLU the input is >= 0: u8 gives it all 8 bits (u8 x s8 is
     * also VNNI's native form) */
    if (p == MOE_PREC_INT8 && l > 0 && m->act == MOE_ACT_RELU && !m->norm) L->src_dt = dnnl_u8;
    L->dst_dt = p == MOE_PREC_BF16 && !last && !m->norm ? dnnl_bf16 : dnnl_f32;
    L->fused_act = p != MOE_PREC_INT8 && !m->norm && L->has_act;
    dnnl_dims_t sd = {DNNL_RUNTIME_DIM_VAL, K}, wd = {K, N}, dd = {DNNL_RUNTIME_DIM_VAL, N},
                bd = {1, N};
    dnnl_memory_desc_t smd, wmd, dmd, bmd, wplain;
    DN(dnnl_memory_desc_init_by_tag(&smd, 2, sd, L->src_dt, dnnl_ab), "src desc");
    DN(dnnl_memory_desc_init_by_tag(&wmd, 2, wd, L->src_dt == dnnl_u8 ? dnnl_s8 : L->src_dt,
                                    dnnl_format_tag_any),
       "weights desc");
    DN(dnnl_memory_desc_init_by_tag(&dmd, 2, dd, L->dst_dt, dnnl_ab), "dst desc");
    DN(dnnl_memory_desc_init_by_tag(&bmd, 2, bd, dnnl_f32, dnnl_ab), "bias desc");
    DN(dnnl_primitive_attr_create(&attr), "attr");
    DN(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode");
    if (L->fused_act) {
        DN(dnnl_post_ops_create(&po), "post-ops");
        DN(dnnl_post_ops_append_eltwise(
               po, 1.0f, m->act == MOE_ACT_SWISH ? dnnl_eltwise_swish : dnnl_eltwise_relu,
               m->act == MOE_ACT_SWISH ? 1.0f : 0.0f, 0.0f),
           "post-op");
        DN(dnnl_primitive_attr_set_post_ops(attr, po), "post-ops");
    }
    if (p == MOE_PREC_INT8) {
        q = malloc((size_t)N * (size_t)K);
        scale = malloc(sizeof(float) * (size_t)N);
        if (!q || !scale) {
            rc = mr_err_set(e, MR_ENOMEM, "oneDNN plan: out of memory");
            goto err;
        }
        quantize_rows(q, scale, m->w[l], N, K);
        DN(dnnl_primitive_attr_set_output_scales(attr, N, 1 << 1, scale), "output scales");
    }
    int with_bias = p != MOE_PREC_INT8 && m->b[l];
    /* our weights are (N, K) row-major: as a (K, N) matrix that is tag ba */
    dnnl_data_type_t wdt = p == MOE_PREC_INT8 ? dnnl_s8 : dnnl_f32;
    DN(dnnl_memory_desc_init_by_tag(&wplain, 2, wd, wdt, dnnl_ba), "weights desc");
    DN(dnnl_memory_create(&plain, &wplain, eng, p == MOE_PREC_INT8 ? (void *)q : (void *)m->w[l]),
       "weights");
    static const int fix_rows[DNN_N_FIX] = DNN_FIX_ROWS;
    for (int v = 0; v < DNN_N_VAR; v++) {
        int rows = v ? fix_rows[v - 1] : 0;
        dnnl_memory_desc_t smv = smd, dmv = dmd;
        if (rows) {
            dnnl_dims_t sdv = {rows, K}, ddv = {rows, N};
            DN(dnnl_memory_desc_init_by_tag(&smv, 2, sdv, L->src_dt, dnnl_ab), "src desc");
            DN(dnnl_memory_desc_init_by_tag(&dmv, 2, ddv, L->dst_dt, dnnl_ab), "dst desc");
        }
        dnnl_matmul_desc_t md;
        DN(dnnl_matmul_desc_init(&md, &smv, &wmd, with_bias ? &bmd : NULL, &dmv), "matmul desc");
        pd = NULL;
        dnnl_status_t ps = dnnl_primitive_desc_create(&pd, &md, attr, eng, NULL);
        if (ps != dnnl_success && rows)
            continue; /* no fixed-row kernel: the run-time one covers it */
        DN(ps, "matmul");
        dnn_prim *P = &L->v[L->n_var];
        ps = dnnl_primitive_create(&P->prim, pd);
        if (ps != dnnl_success && rows) {
            dnnl_primitive_desc_destroy(pd);
            pd = NULL;
            continue;
        }
        DN(ps, "matmul");
        P->rows = rows;
        L->n_var++;
        const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md,
                                                                    0);
        size_t sb = sp ? dnnl_memory_desc_get_size(sp) : 0;
        L->scratch_bytes = sb > L->scratch_bytes ? sb : L->scratch_bytes;
        for (int u = 0; u < L->n_var - 1 && !P->wei;
             u++) { /* the same layout as a variant before: share */
            const dnnl_memory_desc_t *have = NULL;
            if (dnnl_memory_get_memory_desc(L->v[u].wei, &have) == dnnl_success &&
                dnnl_memory_desc_equal(have, want))
                P->wei = L->v[u].wei;
        }
        if (!P->wei) {
            rc = reorder_into(&P->wei, eng, st, plain, &wplain, want, NULL, e);
            if (rc) goto err;
            P->owns_wei = 1;
        }
        dnnl_primitive_desc_destroy(pd);
        pd = NULL;
    }
    if (with_bias) {
        DN(dnnl_memory_create(&L->bias, &bmd, eng, DNNL_MEMORY_ALLOCATE), "bias");
        void *h = NULL;
        DN(dnnl_memory_get_data_handle(L->bias, &h), "bias");
        memcpy(h, m->b[l], sizeof(float) * (size_t)N);
    }
err:
    if (plain) dnnl_memory_destroy(plain);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    free(q);
    free(scale);
    if (rc) layer_free(L);
    return rc;
}

/* The MLPs a plan covers, in plan order: level by level every expert, then
 * the towers. */
static int collect_mlps(moe_net *net, moe_mlp **out) {
    int n = 0;
    for (int j = 0; j < net->n_levels; j++)
        for (int i = 0; i < net->levels[j].n_experts; i++) out[n++] = &net->levels[j].experts[i];
    for (int k = 0; k < net->arch.n_tasks; k++) out[n++] = &net->towers[k];
    return n;
}

#define MAX_PLAN_MLPS (MOE_MAX_LEVELS * MOE_MAX_EXPERTS + MOE_MAX_TASKS)

static void plan_free(moe_dnn *d) {
    if (!d) return;
    for (int i = 0; i < d->n_mlps; i++)
        for (int l = 0; l < d->mlps[i].n_layers; l++) layer_free(&d->mlps[i].l[l]);
    if (d->gates_dnn.n_layers) layer_free(&d->gates_dnn.l[0]);
    free(d->gates.w[0]);
    free(d->mlps);
    free(d);
}

/* Stack level 0's routers into d->gates (fp32, one matmul); nothing when
 * every gate is constant. */
static int gates_build(moe_dnn *d, const moe_net *net, dnnl_engine_t eng, dnnl_stream_t st, int id,
                       mr_err *e) {
    const moe_level *lv = &net->levels[0];
    int total = 0;
    for (int s = 0; s <= lv->n_slots; s++) {
        if (s == lv->n_slots && !lv->has_sgate) break;
        total += (s < lv->n_slots ? &lv->gates[s] : &lv->sgate)->n_logits;
    }
    if (!total) return 0;
    moe_mlp *gm = &d->gates;
    float *w = malloc(sizeof(float) * (size_t)total * (size_t)lv->in_dim);
    if (!w) return mr_err_set(e, MR_ENOMEM, "oneDNN plan: out of memory");
    gm->w[0] = w;
    for (int s = 0; s <= lv->n_slots; s++) {
        if (s == lv->n_slots && !lv->has_sgate) break;
        const moe_gate *g = s < lv->n_slots ? &lv->gates[s] : &lv->sgate;
        size_t n = (size_t)g->n_logits * (size_t)lv->in_dim;
        if (n) memcpy(w, g->w, sizeof(float) * n);
        w += n;
    }
    gm->n_layers = 1;
    gm->dims[0] = lv->in_dim;
    gm->dims[1] = total;
    int rc = layer_build(&d->gates_dnn.l[0], gm, 0, MOE_PREC_FP32, eng, st, e);
    if (rc) return mr_err_wrap(e, "fp32 routers (%d -> %d)", lv->in_dim, total);
    d->gates_dnn.l[0].id = id;
    d->gates_dnn.prec = MOE_PREC_FP32;
    d->gates_dnn.n_layers = 1;
    gm->dnn = &d->gates_dnn;
    return 0;
}

static int plan_build(moe_dnn **out, moe_net *net, moe_precision p, mr_err *e) {
    int rc = 0;
    dnnl_stream_t st = NULL;
    moe_mlp *mlps[MAX_PLAN_MLPS];
    int n = collect_mlps(net, mlps);
    moe_dnn *d = calloc(1, sizeof *d);
    if (d) d->mlps = calloc((size_t)n, sizeof *d->mlps);
    if (!d || !d->mlps) {
        rc = mr_err_set(e, MR_ENOMEM, "oneDNN plan: out of memory");
        goto err;
    }
    d->prec = p;
    dnnl_engine_t eng = moe_dnn_engine(e);
    if (!eng) {
        rc = MR_EINTERNAL;
        goto err;
    }
    DN(dnnl_stream_create(&st, eng, dnnl_stream_default_flags), "stream");
    int id = 0;
    for (int i = 0; i < n; i++) {
        moe_dnn_mlp *dm = &d->mlps[i];
        dm->prec = p;
        for (int l = 0; l < mlps[i]->n_layers; l++) {
            rc = layer_build(&dm->l[l], mlps[i], l, p, eng, st, e);
            if (rc) {
                mr_err_wrap(e, "%s layer %d (%d -> %d)", moe_precision_name(p), l, mlps[i]->dims[l],
                            mlps[i]->dims[l + 1]);
                goto err;
            }
            dm->l[l].id = id++;
            dm->n_layers = l + 1;
        }
        d->n_mlps = i + 1;
    }
    rc = gates_build(d, net, eng, st, id, e);
    if (rc) goto err;
    dnnl_stream_destroy(st);
    *out = d;
    return 0;
err:
    if (st) dnnl_stream_destroy(st);
    plan_free(d);
    return rc;
}

int moe_dnn_create(moe_dnn **out, moe_net *net, moe_precision want, moe_precision *got, char *why,
                   size_t whylen, mr_err *e) {
    *out = NULL;
    if (why && whylen) why[0] = 0;
    if (want == MOE_PREC_OPENBLAS_FP32 || (unsigned)want >= MOE_PREC_COUNT)
        return mr_err_set(e, MR_EINVAL, "moe_dnn_create: precision '%s' has no oneDNN plan",
                          moe_precision_name(want));
    moe_precision p = want;
    const char *lack = isa_lacks(want);
    if (lack) {
        if (why)
            snprintf(why, whylen, "%s requested, %s: using fp32", moe_precision_name(want), lack);
        p = MOE_PREC_FP32;
    }
    /* oneDNN sizes a primitive's thread partition when it is created, from
     * omp_get_max_threads(): create them single-threaded (each request runs
     * on one core), or every call would fork a team that waits for a core
     * (measured: 0.7 ms -> 400 ms per call on a loaded 2-core machine). */
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    moe_dnn *d = NULL;
    int rc = plan_build(&d, net, p, e);
    if (rc && p != MOE_PREC_FP32) { /* oneDNN refused a primitive: fp32 */
        if (why)
            snprintf(why, whylen, "%s requested, oneDNN refused it (%s): using fp32",
                     moe_precision_name(want), e ? e->msg : "");
        p = MOE_PREC_FP32;
        rc = plan_build(&d, net, p, e);
    }
    omp_set_num_threads(threads);
    if (rc) return rc;
    moe_mlp *mlps[MAX_PLAN_MLPS];
    int n = collect_mlps(net, mlps);
    for (int i = 0; i < n; i++) mlps[i]->dnn = &d->mlps[i];
    net->levels[0].dnn_gates = d->gates.n_layers ? &d->gates : NULL;
    *got = p;
    *out = d;
    return 0;
}

void moe_dnn_free(moe_dnn *d, moe_net *net) {
    if (!d) return;
    if (net) {
        moe_mlp *mlps[MAX_PLAN_MLPS];
        int n = collect_mlps(net, mlps);
        for (int i = 0; i < n; i++) mlps[i]->dnn = NULL;
        net->levels[0].dnn_gates = NULL;
    }
    plan_free(d);
}

moe_precision moe_dnn_precision(const moe_dnn *d) { return d ? d->prec : MOE_PREC_OPENBLAS_FP32; }
