/* dnn.h — the ranker's inference path on oneDNN: every expert and tower MLP
 * of a loaded model as oneDNN matmul primitives, in fp32, bf16 or int8.
 *
 * A plan (moe_dnn) is built once per model version: for each dense layer
 * matmul primitives for a fixed ladder of row-block sizes (512 down to 4)
 * plus one with a run-time row count, so every batch size and every
 * sparse-gate row subset runs on a few large fixed-row blocks (dnn_int.h);
 * weights reordered once into the layout the primitives prefer (bf16
 * copies, or int8 with one scale per output channel), bias and ReLU/Swish
 * fused as post-ops where the precision allows. The plan snapshots the weights: rebuild it after
 * changing them (training never uses it).
 *
 * Precisions:
 *   openblas_fp32  no plan; the OpenBLAS path training uses
 *   fp32           oneDNN fp32 (AVX-512 or AVX2 kernels)
 *   bf16           bf16 weights and activations, fp32 accumulation; hidden
 *                  layers hand bf16 to the next layer, each MLP's output is
 *                  fp32 (gates, mixing and towers' inputs stay fp32)
 *   int8           s8 weights with a per-output-channel scale, activations
 *                  quantised per row (dynamic, symmetric s8) at each layer,
 *                  s32 accumulation, fp32 out
 * bf16 needs AVX512_BF16 and int8 needs VNNI (AVX-512 or AVX2); without them
 * (or when oneDNN refuses a primitive) the plan falls back to fp32 and says
 * why. Level 0's routers (every gate there reads x) run as one stacked
 * fp32 matmul of the plan in every precision, so routing is the same in all
 * of them; self-gates, feature-gates and deeper levels' routers (small)
 * stay on OpenBLAS fp32.
 *
 * Threads: primitives and packed weights are read-only after creation and
 * shared by every thread. Each moe_pass owns a moe_dnn_exec (its oneDNN
 * stream, each layer's memory objects for the last row count, and a
 * per-forward cache of the converted input); its scratch comes from the
 * pass's arena, so concurrent passes share nothing mutable.
 */
#ifndef MOEREC_MOE_DNN_H
#define MOEREC_MOE_DNN_H

#include <stddef.h>

#include "common/arena.h"
#include "common/error.h"

typedef enum {
    MOE_PREC_OPENBLAS_FP32 = 0,
    MOE_PREC_FP32,
    MOE_PREC_BF16,
    MOE_PREC_INT8,
} moe_precision;

#define MOE_PREC_COUNT 4

const char *moe_precision_name(moe_precision p);
/* "openblas_fp32", "fp32", "bf16", "int8"; -1 for anything else. */
int moe_precision_parse(const char *s, moe_precision *out);

struct moe_net;
struct moe_mlp;
typedef struct moe_dnn moe_dnn;
typedef struct moe_dnn_mlp moe_dnn_mlp;

/* Per-pass execution state (one per moe_pass, never shared). */
typedef struct moe_dnn_exec {
    void *stream;              /* dnnl_stream_t, created on first use    */
    struct moe_dnn_mems *mems; /* (n_mems) per plan layer: its memory     */
    int n_mems;                /* objects, kept while the row count stays */
    const float *conv_src;     /* input last converted in this forward   */
    int conv_rows, conv_cols;
    int conv_dt;       /* dnnl data type it was converted to     */
    void *conv_buf;    /* (rows, cols) bf16 or s8                */
    float *conv_scale; /* (rows) int8 row scales                 */
} moe_dnn_exec;

void moe_dnn_exec_init(moe_dnn_exec *x);
void moe_dnn_exec_free(moe_dnn_exec *x);
/* Forget the converted-input cache (the arena it lives in was reset). */
void moe_dnn_exec_reset(moe_dnn_exec *x);

/* Build a plan for every expert and tower MLP of net in precision want
 * (not MOE_PREC_OPENBLAS_FP32) and attach it (net's mlps point into it).
 * *got is the precision built: want, or MOE_PREC_FP32 when the CPU or
 * oneDNN cannot do want, with the reason in why (why[0] = 0 when got ==
 * want). An error (MR_EINTERNAL naming the layer) when even fp32 fails;
 * then nothing is attached. */
int moe_dnn_create(moe_dnn **out, struct moe_net *net, moe_precision want, moe_precision *got,
                   char *why, size_t whylen, mr_err *e);
/* Detach from net (its mlps go back to OpenBLAS) and free. NULL is fine. */
void moe_dnn_free(moe_dnn *d, struct moe_net *net);
moe_precision moe_dnn_precision(const moe_dnn *d);
/* The ISA oneDNN dispatches to on this CPU ("avx512_core_bf16", ...). */
const char *moe_dnn_isa_name(void);

/* Inference forward of one MLP over R rows: out (R, dims[last]) fp32 from
 * x (R, dims[0]) fp32 (already feature-gated). Scratch from arena. */
int moe_dnn_mlp_forward(const moe_dnn_mlp *d, const struct moe_mlp *m, moe_dnn_exec *ex,
                        mr_arena *arena, float *out, const float *x, int R, mr_err *e);

#endif
