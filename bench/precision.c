/* precision — a trained model's test AUC and scores in every inference precision (fp32, bf16, int8 vs OpenBLAS fp32)
 *
 * The C half of bench/precision.sh: loads a model version directory, reads
 * a labelled CSV with the model's own schema (moe_dataset_read), scores it
 * in openblas_fp32 (the bound: the training path), fp32, bf16 and int8 on
 * oneDNN, and prints one JSON line: AUC per binary task per precision, the
 * largest AUC change and the largest |p - p_openblas_fp32|.
 * Usage: bench_precision MODEL_DIR DATA.csv
 */
#include <stdio.h>
#include <stdlib.h>

#include "moe/dataset.h"
#include "precision_eval.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: bench_precision MODEL_DIR DATA.csv\n");
        return 2;
    }
    mr_blas_set_threads(1);
    moe_model *m;
    moe_dataset *d;
    mr_err e;
    if (moe_model_load(&m, argv[1], &e) || moe_dataset_read(&d, m, argv[2], NULL, 0, &e)) {
        fprintf(stderr, "bench_precision: %s\n", e.msg);
        return 1;
    }
    long *all = malloc(sizeof(long) * (size_t)d->n);
    for (long i = 0; i < d->n; i++) all[i] = i;
    static char pj[4096];
    if (precision_json(m, d, all, pj, sizeof pj, &e)) {
        fprintf(stderr, "bench_precision: %s\n", e.msg);
        return 1;
    }
    printf("{\"bench\":\"precision\",\"model\":\"%s\",\"rows\":%ld,\"precision\":%s}\n", m->name,
           d->n, pj);
    free(all);
    moe_dataset_free(d);
    moe_model_free(m);
    return 0;
}
