/* scorer.h — the inference API the server calls: load a model once
 * (moe_model_load), then per request fill one batch with the features of
 * all candidates of one user and score them in one pass.
 *
 * Thread safety: the model is read-only after loading; a scorer holds all
 * per-call scratch (input matrix, activations), so each worker thread (or
 * request) uses its own scorer and any number of them run at once on one
 * model. OpenBLAS should be single-threaded in request handlers
 * (mr_blas_set_threads(1)); parallelism comes from concurrent requests.
 *
 *   moe_scorer_begin(s, n)                       every field at its default
 *   moe_scorer_set_cat(s, MOE_ALL_ROWS, f, ...)  user/context features once
 *   moe_scorer_set_cat(s, i, f, ...)             candidate i's features
 *   moe_scorer_run(s, tasks, score)              (n, T) outputs, (n) scores
 *
 * Defaults: a categorical field not set is an empty bag (zero vector), a
 * numeric field takes the schema's fill value, extra inputs are 0.
 *
 * A per-row set_cat of an in-memory table records the rows; the bags are
 * summed (prefetching rows a few calls ahead) when the input is next
 * needed: moe_scorer_run, moe_scorer_input or a MOE_ALL_ROWS set_cat, in
 * call order, so results are those of summing at once.
 *
 * Tables with a row source (moe_model_set_row_source: rows in the store)
 * are gathered in moe_scorer_run: one fetch per such table for all
 * candidates' distinct rows; their bags are in moe_scorer_input only after
 * the run.
 */
#ifndef MOEREC_MOE_SCORER_H
#define MOEREC_MOE_SCORER_H

#include <stddef.h>

#include "common/error.h"
#include "common/threadpool.h"
#include "moe/model.h"

#define MOE_ALL_ROWS (-1)
#define MOE_MAX_BATCH 100000
#define MOE_SPLIT_MAX 4

typedef struct moe_scorer moe_scorer;

int moe_scorer_create(moe_scorer **out, const moe_model *m, mr_err *e);
void moe_scorer_free(moe_scorer *s);

/* Start a batch of n rows (1..MOE_MAX_BATCH). */
int moe_scorer_begin(moe_scorer *s, int n, mr_err *e);
/* Categorical field f of row (or MOE_ALL_ROWS): nvalues values (0..64), each
 * lens[i] bytes (lens NULL = NUL-terminated). Replaces earlier values. */
int moe_scorer_set_cat(moe_scorer *s, int row, int f, const char *const *values, const size_t *lens,
                       int nvalues, mr_err *e);
/* Numeric field f, raw units (normalised with the schema's mean/std). */
int moe_scorer_set_num(moe_scorer *s, int row, int f, float value, mr_err *e);
/* The extra dense block (n == model extra_dim floats). */
int moe_scorer_set_extra(moe_scorer *s, int row, const float *v, int n, mr_err *e);
/* The batch's input matrix (n, in_dim), for callers that build x directly. */
float *moe_scorer_input(moe_scorer *s);

/* Score the batch: tasks (n, T) row-major gets each task's probability
 * (binary) or prediction (regression); score (n) the weighted combination
 * sum_k weight_k * tasks_k. Either may be NULL. */
int moe_scorer_run(moe_scorer *s, float *tasks, float *score, mr_err *e);

/* The same as moe_scorer_run with the batch cut into parts (2..MOE_SPLIT_MAX)
 * contiguous row ranges run at once on pool (the calling thread takes one):
 * one large request on several cores. Rows never interact (row norm, not
 * batch norm), so each row gets what moe_scorer_run gives it, up to the
 * kernels' summation order for a different row count: bit for bit on
 * oneDNN's AVX-512 kernels, whose result for a row does not depend on the
 * row blocks it runs in (tests/moe/test_scorer.c, every oneDNN precision,
 * dense and routed gates); OpenBLAS's and oneDNN's AVX2 kernels differ in
 * the last bits for some rows. (Cutting at fixed 256-row tiles made dense
 * routing bit for bit on any kernel but cost 2-7% of a 500-row forward:
 * docs/benchmarks.md.) No gate
 * report afterwards (moe_scorer_gate_report finds none). Falls back to
 * moe_scorer_run when pool is NULL, parts < 2 or the batch has fewer than
 * 2 * parts rows. */
int moe_scorer_run_split(moe_scorer *s, float *tasks, float *score, mr_pool *pool, int parts,
                         mr_err *e);

/* Gate weights of the last run, averaged over the batch, for debugging. */
typedef struct moe_gate_report {
    char gate[MOE_NAME_MAX]; /* "level0/task:like", "level0/shared"  */
    int n;                   /* experts mixed                        */
    char expert[64][16];     /* "l0.e3"                              */
    float weight[64];        /* mean weight per expert               */
    float active_fraction;   /* mean fraction of routed experts kept */
} moe_gate_report;

/* Fill up to max reports; returns how many gates the model has. */
int moe_scorer_gate_report(const moe_scorer *s, moe_gate_report *out, int max);
/* Fraction of expert-rows the last run computed vs dense routing. */
double moe_scorer_active_fraction(const moe_scorer *s);

#endif
