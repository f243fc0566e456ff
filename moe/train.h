/* train.h — mini-batch training and evaluation of a model on a dataset.
 *
 * Adam on the dense weights, lazy Adam or Adagrad on the embedding rows a
 * batch touches, global-norm clipping over both, seeded shuffling, early
 * stopping on the validation loss with the best epoch's weights restored.
 * Experts and towers of each step run on a thread pool (deterministic: the
 * result does not depend on the thread count).
 */
#ifndef MOEREC_MOE_TRAIN_H
#define MOEREC_MOE_TRAIN_H

#include "common/threadpool.h"
#include "moe/dataset.h"
#include "moe/optim.h"

typedef struct moe_train_opts {
    int epochs;           /* most epochs                                 */
    int batch;            /* rows per step                               */
    float lr;             /* dense Adam learning rate                    */
    float emb_lr;         /* embedding learning rate                     */
    moe_opt_kind emb_opt; /* embedding optimizer                         */
    float clip;           /* global gradient norm limit, 0 = off         */
    float weight_decay;   /* L2 on dense weights (Adam's g += wd * p)    */
    uint64_t seed;        /* shuffling                                   */
    int patience;         /* epochs without validation gain before stop  */
    int threads;          /* threads in all (1 = the caller only), 0 = one per core */
    int progress;         /* draw a progress line on stderr              */
} moe_train_opts;

typedef struct moe_eval {
    long n;                        /* rows evaluated                       */
    double loss;                   /* sum_k loss_weight_k * (logloss|mse),
                                       * undecayed, so epochs compare         */
    double auc[MOE_MAX_TASKS];     /* binary tasks                         */
    double logloss[MOE_MAX_TASKS]; /* binary tasks                         */
    double mse[MOE_MAX_TASKS];     /* regression tasks                     */
    long count[MOE_MAX_TASKS];     /* labelled rows per task               */
    double active_fraction;        /* expert-rows computed / dense         */
} moe_eval;

typedef struct moe_train_result {
    int epochs_run, best_epoch;    /* best_epoch is 1-based                */
    double train_loss;             /* mean loss of the last epoch          */
    moe_eval best;                 /* validation metrics at best_epoch     */
    double seconds, samples_per_s; /* training time (without evaluation)   */
} moe_train_result;

void moe_train_defaults(moe_train_opts *o);

/* Train m on rows tr[0..ntr) of d, validating on va[0..nva) (nva may be 0:
 * no early stopping). */
int moe_train(moe_model *m, const moe_dataset *d, const long *tr, long ntr, const long *va,
              long nva, const moe_train_opts *o, moe_train_result *res, mr_err *e);

/* Evaluate m on rows idx[0..n) of d; pool may be NULL. */
int moe_evaluate(const moe_model *m, const moe_dataset *d, const long *idx, long n, int batch,
                 mr_pool *pool, moe_eval *out, mr_err *e);

#endif
