/* gate_usage.h — per model version, how the ranker's gates spread weight
 * over their experts across all served requests: for each gate (one per
 * task, per task group or shared, per level) the mean weight each expert
 * received, averaged over requests (each request's weights are its batch
 * mean, moe_scorer_gate_report). The status page plots it as per-task
 * expert utilisation.
 *
 * Updated after every ranking pass under a small spin lock (a few hundred
 * additions); zeroed memory is a valid empty record.
 */
#ifndef MOEREC_SERVER_GATE_USAGE_H
#define MOEREC_SERVER_GATE_USAGE_H

#include <stdatomic.h>
#include <stdint.h>

#include "moe/scorer.h"

#define MR_GU_GATES 16 /* gates recorded (the rest are ignored) */
#define MR_GU_EXPERTS 64

typedef struct mr_gate_usage {
    atomic_int lock;
    uint64_t passes; /* ranking passes recorded */
    int n_gates;
    char gate[MR_GU_GATES][64];                  /* "level0/task:click" */
    int n[MR_GU_GATES];                          /* experts of the gate */
    char expert[MR_GU_GATES][MR_GU_EXPERTS][16]; /* "l0.e3" */
    double sum[MR_GU_GATES][MR_GU_EXPERTS];      /* sum over passes of mean weight */
    double active[MR_GU_GATES];                  /* sum of active fractions */
} mr_gate_usage;

/* Add the scorer's last run; nothing when it has no gate report (a batch
 * split over the pool by moe_scorer_run_split, so large non-debug Score
 * batches with score_split_candidates set are not counted). */
void mr_gate_usage_add(mr_gate_usage *u, const moe_scorer *s);
/* Copy out a consistent snapshot. */
void mr_gate_usage_read(mr_gate_usage *u, mr_gate_usage *out);

#endif
