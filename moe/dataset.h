/* dataset.h — training data in memory, laid out for batching: categorical
 * fields already hashed to embedding rows (CSR per field), numeric fields
 * raw (normalised per batch with the model's statistics), labels and masks
 * per task, and an optional time column for time-based splits.
 *
 * Read with the one CSV/TSV reader (common/csv.h: RFC 4180 quotes, BOM,
 * CRLF, missing values "" and NA). Columns are found by the names in
 * model.json (feature "column", task "label"); a missing column is an error
 * naming it. A missing label leaves the task's mask at 0 for that row (PLE's
 * per-task sample space); a present label goes through the task's rule
 * (moe_model_label: "positive", "threshold", else a number, 0/1 for binary
 * tasks), an error naming file, line, column and task; a task without any
 * label is an error. A missing
 * numeric value becomes NaN and is replaced by the field's fill; a numeric
 * cell that is not a number (`1;5`, `abc`) is an error naming file, line
 * and column.
 */
#ifndef MOEREC_MOE_DATASET_H
#define MOEREC_MOE_DATASET_H

#include <stdint.h>

#include "common/csv.h"
#include "common/error.h"
#include "moe/model.h"

typedef struct moe_dataset {
    long n; /* rows                                  */
    int n_cat, n_num, n_tasks, extra_dim;
    uint32_t *cat_off[MOE_MAX_FIELDS];  /* (n + 1) per field                     */
    uint32_t *cat_rows[MOE_MAX_FIELDS]; /* (cat_off[f][n]) embedding rows        */
    uint64_t *cat_ids[MOE_MAX_FIELDS];  /* (cat_off[f][n] / rows per id) value ids
                                           * (moe_model_value_id), kept only when
                                           * the model had mapped tables without a
                                           * mapping at read time, else NULL       */
    float *num;                         /* (n, n_num) raw, NaN = missing         */
    float *extra;                       /* (n, extra_dim) or NULL                */
    float *y;                           /* (n, n_tasks)                          */
    float *mask;                        /* (n, n_tasks) 1 = label present        */
    double *time;                       /* (n) or NULL                           */
} moe_dataset;

/* Read path ("-" = stdin) for model m. time_col may be NULL (a missing
 * time or one that is not a finite number is an error naming the line);
 * max_rows <= 0 reads everything. */
int moe_dataset_read(moe_dataset **out, const moe_model *m, const char *path, const char *time_col,
                     long max_rows, mr_err *e);
/* The same with the reader's options (csv: the missing-value set of a
 * command's --na, ...; NULL = common/csv.h's defaults). */
int moe_dataset_read_opts(moe_dataset **out, const moe_model *m, const char *path,
                          const char *time_col, long max_rows, const mr_csv_opts *csv, mr_err *e);
/* Recompute every categorical row from the kept ids with m's current row
 * mappers (after moe_model_maps_build attached the mappings). MR_ESTATE if
 * the ids were not kept. */
int moe_dataset_map_rows(moe_dataset *d, const moe_model *m, mr_err *e);
/* An empty dataset of n rows with no categorical values, for callers that
 * fill num / extra / y / mask themselves (synthetic benchmarks, tests). */
int moe_dataset_alloc(moe_dataset **out, const moe_model *m, long n, mr_err *e);
void moe_dataset_free(moe_dataset *d);

/* Split rows into train and validation: time-ordered (the latest val_frac
 * by time; rows tied with the boundary time also go to validation, so every
 * training row is strictly earlier than every validation row) when by_time
 * and d->time, else a seeded random split. *tr and *va are malloc'd index
 * arrays. */
int moe_dataset_split(const moe_dataset *d, double val_frac, int by_time, uint64_t seed, long **tr,
                      long *ntr, long **va, long *nva, mr_err *e);

/* Per-group time split (moerec train --split user-time; dataset_split.c):
 * within each group (group[i] of row i, e.g. the hashed user id), the
 * latest floor(val_frac * rows) rows by time (at least 1 for a group of two
 * rows or more; a one-row group stays in training) go to validation, and
 * so do the group's rows tied with that boundary time, so each group's
 * training rows are strictly earlier than its validation rows. Needs
 * d->time; 0 < val_frac < 1. Index arrays in row order. */
int moe_dataset_split_groups(const moe_dataset *d, const uint64_t *group, double val_frac,
                             long **tr, long *ntr, long **va, long *nva, mr_err *e);
/* Append b's rows to a (same model: fields, tasks, extra block, time
 * column); b is unchanged. For --val-data: rows [0, a->n) then b's. */
int moe_dataset_append(moe_dataset *a, const moe_dataset *b, mr_err *e);

/* Set every numeric field's mean/std (and fill = mean) from rows idx. */
void moe_dataset_fit_numeric(const moe_dataset *d, moe_model *m, const long *idx, long n);

/* The batch of rows idx[0..B): x (B, in_dim), y and mask (T, B) task-major.
 * When rows/offs are given, the per-field batch CSR of embedding rows is
 * written there too (rows[f] needs room for the batch's values; offs[f]
 * for B + 1), as the training backward needs it. */
void moe_dataset_batch(const moe_dataset *d, const moe_model *m, const long *idx, int B, float *x,
                       float *y, float *mask, uint32_t **rows, uint32_t **offs);
/* Most embedding rows one row of field f looks up (sizes batch CSRs). */
long moe_dataset_max_bag(const moe_dataset *d, int f);

#endif
