/* dnn_int.h — the plan's layout, shared by dnn.c (building it) and
 * dnn_exec.c (running it). Not part of the moe/ API.
 *
 * Per layer the primitives compute dst = post(src (R, K) x W^T). Each layer
 * has primitives for fixed row blocks (DNN_FIX_ROWS) and one with a
 * run-time row count: a call runs as many of the largest block as fit, then
 * of the next, and the last rows (fewer than the smallest block) as one
 * smallest block through a zero-padded copy. The run-time primitive only
 * serves when oneDNN builds no fixed-row one. Measured on this CPU (bf16,
 * moe_speed model, batch 500, per CPU second): oneDNN gives fixed rows its
 * brgemm kernels on pre-blocked weights and run-time rows a gemm that packs
 * its operands on every call; a forward all on run-time primitives ran
 * 48-55k candidates/s, one on fixed blocks without a run-time call 74-82k,
 * and each extra execution costs ~5 us, hence few, large blocks.
 *
 * What post covers depends on the precision: fp32 and bf16
 * fuse the bias and, when the layer has no row norm, the activation; int8
 * only applies the per-channel weight scales (output scales), and the
 * executor finishes each row with its activation scale, the bias, the norm
 * and the activation. A bf16 hidden layer without norm writes bf16 straight
 * into the next layer's input.
 */
#ifndef MOEREC_MOE_DNN_INT_H
#define MOEREC_MOE_DNN_INT_H

#include <dnnl.h>

#include "moe/dnn.h"
#include "moe/net.h"

/* Fixed row blocks, largest first. */
#define DNN_N_FIX 12
#define DNN_FIX_ROWS \
    { 512, 384, 256, 192, 128, 96, 64, 48, 32, 16, 8, 4 }
#define DNN_N_VAR (1 + DNN_N_FIX)

typedef struct dnn_prim {
    int rows; /* 0: run-time row count                   */
    dnnl_primitive_t prim;
    dnnl_memory_t wei; /* weights in its layout (read-only)       */
    int owns_wei;      /* else shares an earlier variant's        */
} dnn_prim;

typedef struct dnn_layer {
    int id;   /* index in the plan (moe_dnn_exec.mems)   */
    int K, N; /* in, out widths                          */
    dnnl_data_type_t src_dt, dst_dt;
    int n_var;
    dnn_prim v[DNN_N_VAR]; /* [0] run-time rows, then fixed blocks    */
    dnnl_memory_t bias;    /* (1, N) f32, NULL when not fused         */
    size_t scratch_bytes;  /* user scratchpad for any one execution   */
    int fused_act;         /* activation done by the primitive        */
    int has_act;           /* layer is followed by the activation     */
} dnn_layer;

struct moe_dnn_mlp {
    moe_precision prec;
    int n_layers;
    dnn_layer l[MOE_MAX_LAYERS];
};

struct moe_dnn {
    moe_precision prec;
    int n_mlps;
    moe_dnn_mlp *mlps; /* (n_mlps) every expert, then towers      */
    /* level 0's routers (n_logits > 0; slot gates, then the shared gate)
     * stacked into one (sum n_logits, in_dim) fp32 layer without bias: every
     * precision routes on fp32 logits of the same input */
    moe_mlp gates; /* n_layers 0 when there is none            */
    moe_dnn_mlp gates_dnn;
};

/* The process's CPU engine (created once), or NULL with e set. */
dnnl_engine_t moe_dnn_engine(mr_err *e);

#endif
