/* net.h — the multi-task expert network: levels of experts mixed by gates,
 * then one tower per task. One structure covers every architecture:
 *
 *   level j has n_slots gate outputs ("slots": tasks, or task groups in
 *   HoME's first level), m_task experts owned by each slot and m_shared
 *   shared experts. Slot s's gate mixes the shared experts followed by s's
 *   own experts; the optional shared gate mixes all experts of the level and
 *   feeds the next level's shared experts (PLE). At level 0 every expert
 *   reads x; at level j > 0 slot s's experts read the previous level's slot
 *   parent[s] output, shared experts read its shared-gate output. Tower k
 *   reads slot tower_slot[k] of the last level.
 *
 *   shared_bottom: 1 level, 1 slot, one shared expert, constant gate.
 *   omoe:  1 level, 1 slot (all tasks share one gate), n shared experts.
 *   mmoe:  1 level, one slot per task, n shared experts.
 *   cgc:   1 level, one slot per task, m_task + m_shared experts.
 *   ple:   n_levels CGC levels, shared gate on every level but the last.
 *   home:  2 levels: meta level with one slot per task group + global shared
 *          experts and a shared gate, then a per-task CGC level whose task
 *          experts read their group's output; normalised Swish experts,
 *          optional feature-gate (each expert sees x * 2 sigmoid(B A x)) and
 *          self-gate (slot output += sigmoid(W in + b) * in, level > 0).
 *
 * Expert index order in a level: slot 0's m_task experts, slot 1's, ...,
 * then the m_shared shared experts. All parameters live in one allocation
 * (params), carved into named tensors (docs/model-format.md); gradients use
 * the same layout, so grad(p) = grads + (p - params).
 */
#ifndef MOEREC_MOE_NET_H
#define MOEREC_MOE_NET_H

#include "common/arena.h"
#include "common/error.h"
#include "common/threadpool.h"
#include "moe/dnn.h"
#include "moe/gate.h"

#define MOE_MAX_TASKS 16
#define MOE_MAX_LAYERS 6
#define MOE_MAX_LEVELS 4
#define MOE_MAX_EXPERTS 64
/* Dense parameters (experts, gates, towers, norms) one network may have:
 * 2^28 floats, 1 GiB in fp32. model.json's widths (up to 65536, 6 layers)
 * could otherwise ask for tens of GB, which the loader would try to
 * allocate (and, with memory overcommitted, fault in) before failing. */
#define MOE_MAX_PARAMS (1L << 28)
/* The bound moe_net_create enforces: MOE_MAX_PARAMS unless a fuzz target
 * lowers it to keep each input fast (set before any network is built). */
extern long moe_net_max_params;
#define MOE_NAME_MAX 64

typedef enum {
    MOE_ARCH_SHARED_BOTTOM = 0,
    MOE_ARCH_OMOE,
    MOE_ARCH_MMOE,
    MOE_ARCH_CGC,
    MOE_ARCH_PLE,
    MOE_ARCH_HOME,
} moe_arch_kind;

typedef enum { MOE_ACT_RELU = 0, MOE_ACT_SWISH } moe_act;
typedef enum { MOE_TASK_BINARY = 0, MOE_TASK_REGRESSION } moe_task_kind;

/* What model.json's "arch" section describes. */
typedef struct moe_arch {
    moe_arch_kind kind;
    int in_dim;  /* width of the input x             */
    int n_tasks; /* towers                           */
    moe_task_kind task_kind[MOE_MAX_TASKS];
    int n_levels;       /* ple: extraction levels           */
    int n_shared;       /* shared experts per level         */
    int n_task_experts; /* experts per slot (cgc/ple/home)  */
    int n_expert_layers;
    int expert_hidden[MOE_MAX_LAYERS]; /* expert MLP widths, last = output */
    int n_tower_layers;
    int tower_hidden[MOE_MAX_LAYERS]; /* tower hidden widths (+ 1 output) */
    moe_act act;                      /* expert activation                */
    int expert_norm;                  /* row-normalise expert layers      */
    int feature_gate_rank;            /* 0 = off                          */
    int self_gate;                    /* gated residual at level > 0      */
    int n_groups;                     /* home: task groups                */
    int task_group[MOE_MAX_TASKS];    /* home: group of each task         */
    moe_gate_spec gate;               /* routing of every gate            */
    float lbl_coef;                   /* load-balance loss weight         */
    float ent_coef;                   /* entropy regulariser weight       */
} moe_arch;

/* A stack of dense layers: y = act(norm(W x + b)) per layer. */
typedef struct moe_mlp {
    int n_layers;
    int dims[MOE_MAX_LAYERS + 1]; /* dims[0] = input width                  */
    int act_last;                 /* activation after the last layer too    */
    moe_act act;
    int norm;                  /* row norm before each activation        */
    int fg_rank;               /* feature-gate rank, 0 = off             */
    float *w[MOE_MAX_LAYERS];  /* (dims[l+1], dims[l])                   */
    float *b[MOE_MAX_LAYERS];  /* (dims[l+1])                            */
    float *ng[MOE_MAX_LAYERS]; /* (dims[l+1]) norm gain, when norm       */
    float *nb[MOE_MAX_LAYERS]; /* (dims[l+1]) norm bias, when norm       */
    float *fg_a;               /* (fg_rank, dims[0])                     */
    float *fg_b;               /* (dims[0], fg_rank)                     */
    const moe_dnn_mlp *dnn;    /* oneDNN plan for inference, or NULL     */
} moe_mlp;

typedef struct moe_level {
    int n_slots;
    int parent[MOE_MAX_TASKS]; /* previous level's slot each slot reads  */
    int m_task, m_shared, n_experts;
    int in_dim, out_dim;
    moe_mlp experts[MOE_MAX_EXPERTS];
    moe_gate gates[MOE_MAX_TASKS]; /* one per slot                           */
    int has_sgate;
    moe_gate sgate; /* over all experts, feeds next level     */
    int self_gate;
    float *sg_w[MOE_MAX_TASKS]; /* (out_dim, in_dim)                      */
    float *sg_b[MOE_MAX_TASKS]; /* (out_dim)                              */
    const moe_mlp *dnn_gates;   /* level 0: every router (slots, then the */
                                /* shared gate) stacked as one fp32       */
                                /* oneDNN matmul for inference, or NULL   */
} moe_level;

typedef struct moe_tensor {
    char name[MOE_NAME_MAX];
    int ndim;
    int shape[2];
    long n; /* number of floats                       */
    float *data;
} moe_tensor;

typedef struct moe_net {
    moe_arch arch;
    int n_levels;
    moe_level *levels; /* (n_levels)                             */
    int tower_slot[MOE_MAX_TASKS];
    moe_mlp towers[MOE_MAX_TASKS];
    float *params; /* (n_params) every dense weight          */
    long n_params;
    moe_tensor *tensors; /* (n_tensors) named views into params    */
    int n_tensors;
} moe_net;

/* Build the structure for arch, allocate and initialise the weights from
 * seed. MR_EINVAL naming the field for an inconsistent arch. */
int moe_net_create(moe_net **out, const moe_arch *arch, uint64_t seed, mr_err *e);
void moe_net_free(moe_net *n);
/* The named tensor, or NULL. */
moe_tensor *moe_net_tensor(const moe_net *n, const char *name);
/* Fill arch with the defaults of kind (sizes from the MMoE paper). */
void moe_arch_defaults(moe_arch *a, moe_arch_kind kind, int in_dim, int n_tasks);
const char *moe_arch_kind_name(moe_arch_kind k);
int moe_arch_kind_parse(const char *s, moe_arch_kind *out);

/* ---- one pass ----------------------------------------------------------- */

typedef struct moe_mlp_cache {
    int rows;
    const float *x;              /* (rows, dims[0]) input as given         */
    float *xin;                  /* (rows, dims[0]) feature-gated input    */
    float *fg_h, *fg_t;          /* (rows, r), (rows, dims[0])             */
    float *z[MOE_MAX_LAYERS];    /* (rows, dims[l+1]) pre-activation       */
    float *zn[MOE_MAX_LAYERS];   /* (rows, dims[l+1]) normed (norm only)   */
    float *mean[MOE_MAX_LAYERS]; /* (rows)                                 */
    float *rstd[MOE_MAX_LAYERS]; /* (rows)                                 */
    float *a[MOE_MAX_LAYERS];    /* (rows, dims[l+1]) layer output         */
    float *dx;                   /* (rows, dims[0]) backward result        */
    struct moe_pass *pass;       /* owner, when the oneDNN plan runs it    */
} moe_mlp_cache;

typedef struct moe_level_cache {
    int *rows[MOE_MAX_EXPERTS]; /* active rows per expert, NULL = all B   */
    int nrows[MOE_MAX_EXPERTS];
    float *xg[MOE_MAX_EXPERTS]; /* (nrows, in_dim) gathered input         */
    moe_mlp_cache ex[MOE_MAX_EXPERTS];
    float *eout[MOE_MAX_EXPERTS]; /* (B, out_dim) expert output, 0 = unused */
    moe_gate_cache gc[MOE_MAX_TASKS];
    moe_gate_cache sgc;
    const float *in[MOE_MAX_TASKS]; /* (B, in_dim) slot inputs                */
    const float *sin;               /* (B, in_dim) shared input               */
    float *out[MOE_MAX_TASKS];      /* (B, out_dim) slot outputs              */
    float *sout;                    /* (B, out_dim) shared-gate output        */
    float *sg[MOE_MAX_TASKS];       /* (B, out_dim) self-gate sigmoid         */
} moe_level_cache;

/* Activations of one forward over B rows; everything lives in arena. */
typedef struct moe_pass {
    mr_arena arena;
    moe_dnn_exec dnn; /* oneDNN stream + converted-input cache  */
    int dnn_on;       /* this forward runs mlps' oneDNN plans   */
    int dnn_rc;       /* first oneDNN failure of the forward    */
    mr_err dnn_err;
    int B;
    int train;           /* keep what backward needs               */
    const float *x;      /* (B, in_dim)                            */
    moe_level_cache *lv; /* (n_levels)                             */
    moe_mlp_cache tw[MOE_MAX_TASKS];
    float *logit[MOE_MAX_TASKS]; /* (B) tower outputs (pre-sigmoid)        */
    long expert_rows;            /* sum over experts of rows computed      */
    long expert_rows_dense;      /* what dense gates would have computed   */
    double aux_lbl, aux_ent;     /* summed over gates                      */
} moe_pass;

void moe_pass_init(moe_pass *p);
void moe_pass_free(moe_pass *p);

/* Forward x (B, in_dim). train = 1 keeps backward buffers. pool may be NULL
 * (everything inline) or spread experts and towers over threads. An
 * inference forward (train = 0) without a pool runs each MLP's oneDNN plan
 * when it has one (moe/dnn.h); training always runs OpenBLAS. */
int moe_net_forward(moe_pass *p, const moe_net *n, const float *x, int B, int train, mr_pool *pool,
                    mr_err *e);
/* Fraction of expert-rows computed vs. dense routing, in (0, 1]. */
double moe_pass_active_fraction(const moe_pass *p);

/* Backward from dlogit[k] (B) per task plus the auxiliary losses (coefs
 * from arch). Accumulates grads (n_params, same layout as params) and, if
 * dx != NULL, dx (B, in_dim). */
int moe_net_backward(moe_pass *p, const moe_net *n, float *grads, float *dx, float *const *dlogit,
                     mr_pool *pool, mr_err *e);

#endif
