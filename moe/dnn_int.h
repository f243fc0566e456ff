/* dnn_int.h — the plan's layout, shared by dnn.c (building it) and
 * dnn_exec.c (running it). Not part of the moe/ API.
 *
 * Per layer the primitive computes dst = post(src (R, K) x W^T) with R given
 * at execution. What post covers depends on the precision: fp32 and bf16
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

typedef struct dnn_layer {
    int id;                         /* index in the plan (moe_dnn_exec.mems)   */
    int K, N;                       /* in, out widths                          */
    dnnl_data_type_t src_dt, dst_dt;
    dnnl_primitive_t prim;
    dnnl_memory_t wei;              /* packed weights (read-only)              */
    dnnl_memory_t bias;             /* (1, N) f32, NULL when not fused         */
    size_t scratch_bytes;           /* user scratchpad for one execution       */
    int fused_act;                  /* activation done by the primitive        */
    int has_act;                    /* layer is followed by the activation     */
} dnn_layer;

struct moe_dnn_mlp {
    moe_precision prec;
    int n_layers;
    dnn_layer l[MOE_MAX_LAYERS];
};

struct moe_dnn {
    moe_precision prec;
    int n_mlps;
    moe_dnn_mlp *mlps;              /* (n_mlps) every expert, then towers      */
    /* level 0's routers (n_logits > 0; slot gates, then the shared gate)
     * stacked into one (sum n_logits, in_dim) fp32 layer without bias: every
     * precision routes on fp32 logits of the same input */
    moe_mlp gates;                  /* n_layers 0 when there is none            */
    moe_dnn_mlp gates_dnn;
};

/* The process's CPU engine (created once), or NULL with e set. */
dnnl_engine_t moe_dnn_engine(mr_err *e);

#endif
