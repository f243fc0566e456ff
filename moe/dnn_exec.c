/* dnn_exec.c — running one MLP of a oneDNN plan (see dnn.h, dnn_int.h).
 *
 * Per layer: point the layer's memory objects (kept in the exec while the
 * row count stays the same) at the call's buffers, execute, then finish
 * what the primitive did not fuse. The first layer's input is converted
 * (bf16) or quantised (int8) once per forward and source buffer: in dense
 * routing every expert of level 0 reads the same x, so the conversion is
 * paid once, not once per expert.
 *
 * oneDNN here is built on OpenMP; a request runs on one core (parallelism
 * comes from concurrent requests), so each forward asks OpenMP for one
 * thread and restores the caller's setting afterwards.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <dnnl_debug.h>

#include "moe/dnn_int.h"
#include "moe/layers.h"

/* One memory object and the shape it was created for. */
typedef struct dnn_mem {
    dnnl_memory_t m;
    dnnl_dim_t rows, cols;
    dnnl_data_type_t dt;
} dnn_mem;

/* A plan layer's src, dst and scratchpad objects in one exec: created when
 * the layer first runs with a row count, then only re-pointed at the call's
 * buffers (dnnl_memory_set_data_handle); a memory object costs ~3 us to
 * create and destroy, ~70 of them per forward of the moe_speed model. */
struct moe_dnn_mems {
    dnn_mem src[DNN_N_VAR], dst[DNN_N_VAR], scr;
};

void moe_dnn_exec_init(moe_dnn_exec *x) { memset(x, 0, sizeof *x); }

void moe_dnn_exec_reset(moe_dnn_exec *x) {
    x->conv_src = NULL;
    x->conv_buf = NULL;
    x->conv_scale = NULL;
}

void moe_dnn_exec_free(moe_dnn_exec *x) {
    for (int i = 0; i < x->n_mems; i++) {
        struct moe_dnn_mems *mm = &x->mems[i];
        for (int v = 0; v < DNN_N_VAR; v++) {
            if (mm->src[v].m) dnnl_memory_destroy(mm->src[v].m);
            if (mm->dst[v].m) dnnl_memory_destroy(mm->dst[v].m);
        }
        if (mm->scr.m) dnnl_memory_destroy(mm->scr.m);
    }
    free(x->mems);
    if (x->stream) dnnl_stream_destroy((dnnl_stream_t)x->stream);
    memset(x, 0, sizeof *x);
}

static void *alloc64(mr_arena *a, size_t n) {
    unsigned char *p = mr_arena_alloc(a, n + 64);
    return p ? (void *)(((uintptr_t)p + 63) & ~(uintptr_t)63) : NULL;
}

/* fp32 -> bf16, round to nearest even (inputs are finite). */
MOE_TARGET_CLONES static void to_bf16(uint16_t *dst, const float *src, long n) {
    for (long i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], 4);
        u += 0x7fffu + ((u >> 16) & 1u);
        dst[i] = (uint16_t)(u >> 16);
    }
}

/* Dynamic symmetric per-row quantisation: scale[r] = max |x_r| / 127.
 * Rounding to nearest even by adding and removing 1.5 * 2^23 (|t| <= 127). */
MOE_TARGET_CLONES static void quant_rows(int8_t *q, float *scale, const float *x, int R, int K) {
    for (int r = 0; r < R; r++) {
        const float *row = x + (long)r * K;
        int8_t *qr = q + (long)r * K;
        float mx = 0;
        for (int k = 0; k < K; k++) mx = fmaxf(mx, fabsf(row[k]));
        float s = mx > 0 ? mx / 127.0f : 1.0f, inv = 1.0f / s;
        scale[r] = s;
        for (int k = 0; k < K; k++) /* not folded: no -fassociative-math here */
            qr[k] = (int8_t)(int)((row[k] * inv + 12582912.0f) - 12582912.0f);
    }
}

/* The same for inputs known to be >= 0 (after a ReLU): u8, max / 255. */
MOE_TARGET_CLONES static void quant_rows_u8(uint8_t *q, float *scale, const float *x, int R,
                                            int K) {
    for (int r = 0; r < R; r++) {
        const float *row = x + (long)r * K;
        uint8_t *qr = q + (long)r * K;
        float mx = 0;
        for (int k = 0; k < K; k++) mx = fmaxf(mx, row[k]);
        float s = mx > 0 ? mx / 255.0f : 1.0f, inv = 1.0f / s;
        scale[r] = s;
        for (int k = 0; k < K; k++)
            qr[k] = (uint8_t)(int)((fmaxf(row[k], 0.0f) * inv + 12582912.0f) - 12582912.0f);
    }
}

/* x (R, K) fp32 in the layer's source type; int8 row scales in *scale. */
static int convert_src(const void **src, float **scale, const dnn_layer *L, const float *x, int R,
                       mr_arena *a) {
    long n = (long)R * L->K;
    if (L->src_dt == dnnl_f32) {
        *src = x;
        return 0;
    }
    if (L->src_dt == dnnl_bf16) {
        uint16_t *b = alloc64(a, sizeof(uint16_t) * (size_t)n);
        if (!b) return -1;
        to_bf16(b, x, n);
        *src = b;
        return 0;
    }
    int8_t *q = alloc64(a, (size_t)n);
    float *s = alloc64(a, sizeof(float) * (size_t)R);
    if (!q || !s) return -1;
    if (L->src_dt == dnnl_u8) quant_rows_u8((uint8_t *)q, s, x, R, L->K);
    else quant_rows(q, s, x, R, L->K);
    *src = q;
    *scale = s;
    return 0;
}

/* Point *m at h as a (rows, cols) matrix of dt (cols 0: a 1-D byte buffer
 * of rows bytes), re-creating the object only when the shape changed. */
static dnnl_status_t mem_bind(dnn_mem *m, dnnl_engine_t eng, dnnl_dim_t rows, dnnl_dim_t cols,
                              dnnl_data_type_t dt, void *h) {
    if (m->m && m->rows == rows && m->cols == cols && m->dt == dt)
        return dnnl_memory_set_data_handle(m->m, h);
    if (m->m) dnnl_memory_destroy(m->m);
    m->m = NULL;
    dnnl_memory_desc_t md;
    dnnl_dims_t d = {rows, cols};
    dnnl_status_t s = cols ? dnnl_memory_desc_init_by_tag(&md, 2, d, dt, dnnl_ab)
                           : dnnl_memory_desc_init_by_tag(&md, 1, d, dnnl_u8, dnnl_a);
    if (s == dnnl_success) s = dnnl_memory_create(&m->m, &md, eng, h);
    if (s != dnnl_success) {
        m->m = NULL;
        return s;
    }
    m->rows = rows;
    m->cols = cols;
    m->dt = dt;
    return dnnl_success;
}

static struct moe_dnn_mems *exec_mems(moe_dnn_exec *x, int id) {
    if (id >= x->n_mems) {
        int n = id + 1 > 2 * x->n_mems ? id + 1 : 2 * x->n_mems;
        struct moe_dnn_mems *g = realloc(x->mems, sizeof *g * (size_t)n);
        if (!g) return NULL;
        memset(g + x->n_mems, 0, sizeof *g * (size_t)(n - x->n_mems));
        x->mems = g;
        x->n_mems = n;
    }
    return &x->mems[id];
}

static size_t dt_size(dnnl_data_type_t dt) { return dt == dnnl_f32 ? 4 : dt == dnnl_bf16 ? 2 : 1; }

/* Rows [r0, r0 + R) on variant v (R = its block, or any count on v 0). */
static dnnl_status_t var_exec(const dnn_layer *L, int v, struct moe_dnn_mems *mm, moe_dnn_exec *ex,
                              dnnl_engine_t eng, const void *src, void *dst, int r0, int R) {
    const unsigned char *s0 = (const unsigned char *)src +
                              (size_t)r0 * (size_t)L->K * dt_size(L->src_dt);
    unsigned char *d0 = (unsigned char *)dst + (size_t)r0 * (size_t)L->N * dt_size(L->dst_dt);
    dnnl_status_t s = mem_bind(&mm->src[v], eng, R, L->K, L->src_dt, (void *)s0);
    if (s == dnnl_success) s = mem_bind(&mm->dst[v], eng, R, L->N, L->dst_dt, d0);
    if (s != dnnl_success) return s;
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, mm->src[v].m},
                               {DNNL_ARG_WEIGHTS, L->v[v].wei},
                               {DNNL_ARG_DST, mm->dst[v].m}};
    int na = 3;
    if (L->bias) args[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, L->bias};
    if (L->scratch_bytes) args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, mm->scr.m};
    return dnnl_primitive_execute(L->v[v].prim, (dnnl_stream_t)ex->stream, na, args);
}

/* The layer over R rows: fixed-row blocks largest first, the rest as one
 * zero-padded smallest block (on the run-time primitive when oneDNN built
 * no fixed one). */
static int layer_exec(const dnn_layer *L, moe_dnn_exec *ex, dnnl_engine_t eng, const void *src,
                      void *dst, int R, mr_arena *a, mr_err *e) {
    struct moe_dnn_mems *mm = exec_mems(ex, L->id);
    dnnl_status_t s = mm ? dnnl_success : dnnl_out_of_memory;
    if (s == dnnl_success && L->scratch_bytes) {
        void *buf = alloc64(a, L->scratch_bytes);
        s = buf ? mem_bind(&mm->scr, eng, (dnnl_dim_t)L->scratch_bytes, 0, dnnl_u8, buf)
                : dnnl_out_of_memory;
    }
    int r0 = 0, last = L->n_var - 1;
    for (int v = 1; v < L->n_var && s == dnnl_success; v++)
        for (; R - r0 >= L->v[v].rows && s == dnnl_success; r0 += L->v[v].rows)
            s = var_exec(L, v, mm, ex, eng, src, dst, r0, L->v[v].rows);
    if (s == dnnl_success && r0 < R && last == 0)
        s = var_exec(L, 0, mm, ex, eng, src, dst, r0, R - r0);
    if (s == dnnl_success && r0 < R && last > 0) { /* the rest, zero-padded to the smallest block */
        int b = L->v[last].rows, n = R - r0;
        size_t se = dt_size(L->src_dt) * (size_t)L->K, de = dt_size(L->dst_dt) * (size_t)L->N;
        unsigned char *ps = alloc64(a, se * (size_t)b), *pd = alloc64(a, de * (size_t)b);
        if (!ps || !pd) s = dnnl_out_of_memory;
        if (s == dnnl_success) {
            memcpy(ps, (const unsigned char *)src + se * (size_t)r0, se * (size_t)n);
            memset(ps + se * (size_t)n, 0, se * (size_t)(b - n));
            s = var_exec(L, last, mm, ex, eng, ps, pd, 0, b);
        }
        if (s == dnnl_success) s = dnnl_stream_wait((dnnl_stream_t)ex->stream);
        if (s == dnnl_success) memcpy((unsigned char *)dst + de * (size_t)r0, pd, de * (size_t)n);
    }
    if (s == dnnl_success) s = dnnl_stream_wait((dnnl_stream_t)ex->stream);
    if (s != dnnl_success)
        return mr_err_set(e, MR_EINTERNAL, "oneDNN: matmul %d -> %d over %d rows: %s", L->K, L->N,
                          R, dnnl_status2str(s));
    return 0;
}

/* What the primitive left undone, on fp32 z (R, N): int8's row scale and
 * bias, the row norm, the activation. */
MOE_TARGET_CLONES static void layer_finish(float *z, const dnn_layer *L, const moe_mlp *m, int l,
                                           const float *rscale, int R, mr_arena *a) {
    int N = L->N, relu = L->has_act && !L->fused_act && m->act == MOE_ACT_RELU && !m->norm;
    if (rscale) /* int8: row scale and bias, with the ReLU in the same pass when it comes next */
        for (int r = 0; r < R; r++) {
            float *row = z + (long)r * N, s = rscale[r];
            const float *b = m->b[l];
            if (relu)
                for (int o = 0; o < N; o++) row[o] = fmaxf(row[o] * s + b[o], 0.0f);
            else
                for (int o = 0; o < N; o++) row[o] = row[o] * s + b[o];
        }
    if (m->norm) {
        float *mean = mr_arena_alloc(a, sizeof(float) * (size_t)R),
              *rstd = mr_arena_alloc(a, sizeof(float) * (size_t)R);
        if (mean && rstd) moe_rownorm_forward(z, mean, rstd, z, m->ng[l], m->nb[l], R, N);
    }
    if (L->has_act && !L->fused_act && !(relu && rscale)) {
        long n = (long)R * N;
        if (m->act == MOE_ACT_SWISH) moe_swish_forward(z, z, n);
        else
            for (long i = 0; i < n; i++) z[i] = fmaxf(z[i], 0.0f);
    }
}

int moe_dnn_mlp_forward(const moe_dnn_mlp *d, const moe_mlp *m, moe_dnn_exec *ex, mr_arena *arena,
                        float *out, const float *x, int R, mr_err *e) {
    if (R <= 0) return 0;
    dnnl_engine_t eng = moe_dnn_engine(e);
    if (!eng) return MR_EINTERNAL;
    if (!ex->stream) {
        dnnl_stream_t st;
        dnnl_status_t s = dnnl_stream_create(&st, eng, dnnl_stream_default_flags);
        if (s != dnnl_success)
            return mr_err_set(e, MR_EINTERNAL, "oneDNN: stream: %s", dnnl_status2str(s));
        ex->stream = st;
    }
    const dnn_layer *L0 = &d->l[0];
    const void *src;
    float *rscale = NULL;
    if (ex->conv_buf && ex->conv_src == x && ex->conv_rows == R && ex->conv_cols == L0->K &&
        ex->conv_dt == (int)L0->src_dt) {
        src = ex->conv_buf;
        rscale = ex->conv_scale;
    } else {
        if (convert_src(&src, &rscale, L0, x, R, arena)) goto oom;
        if (src != x) {
            ex->conv_src = x;
            ex->conv_rows = R;
            ex->conv_cols = L0->K;
            ex->conv_dt = (int)L0->src_dt;
            ex->conv_buf = (void *)src;
            ex->conv_scale = rscale;
        }
    }
    int threads = omp_get_max_threads(), rc = 0;
    if (threads != 1) omp_set_num_threads(1);
    for (int l = 0; l < d->n_layers; l++) {
        const dnn_layer *L = &d->l[l];
        int last = l == d->n_layers - 1;
        size_t esz = L->dst_dt == dnnl_bf16 ? 2 : 4;
        void *dst = last ? (void *)out : alloc64(arena, esz * (size_t)R * (size_t)L->N);
        if (!dst) {
            rc = -1;
            break;
        }
        rc = layer_exec(L, ex, eng, src, dst, R, arena, e);
        if (rc) break;
        if (L->dst_dt == dnnl_f32) layer_finish(dst, L, m, l, rscale, R, arena);
        if (last) break;
        const dnn_layer *Ln = &d->l[l + 1];
        rscale = NULL;
        if (Ln->src_dt == L->dst_dt) src = dst;
        else if (convert_src(&src, &rscale, Ln, dst, R, arena)) rc = -1;
        if (rc) break;
    }
    if (threads != 1) omp_set_num_threads(threads);
    if (rc < 0) goto oom;
    return rc;
oom:
    return mr_err_set(e, MR_ENOMEM, "oneDNN forward: out of memory for %d rows", R);
}
