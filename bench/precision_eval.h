/* precision_eval.h — shared by bench/moe_movielens.c and bench/precision.c:
 * a trained model's predictions on a labelled dataset in every inference
 * precision (moe/dnn.h), with test AUC per task, the largest AUC change
 * and the largest |p - p_openblas_fp32|, as one JSON object. Header-only
 * (static functions): each benchmark is one translation unit.
 */
#ifndef MOEREC_BENCH_PRECISION_EVAL_H
#define MOEREC_BENCH_PRECISION_EVAL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/tensor.h"
#include "moe/dataset.h"
#include "moe/layers.h"
#include "moe/metrics.h"
#include "moe/model.h"

/* Test predictions (T, n) task-major and labels/masks in the current
 * precision, batches of 1024 (the scorer's inference path). */
static int predict(const moe_model *m, const moe_dataset *d, const long *idx, long n, float *pred,
                   float *ly, float *lm, mr_err *e) {
    enum { B = 1024 };
    int T = m->n_tasks;
    float *x = mr_floats_alloc((size_t)B * (size_t)m->in_dim), y[B * MOE_MAX_TASKS],
          mk[B * MOE_MAX_TASKS];
    moe_pass p;
    moe_pass_init(&p);
    int rc = x ? 0 : mr_err_set(e, MR_ENOMEM, "out of memory");
    for (long s = 0; !rc && s < n; s += B) {
        int b = (int)(n - s < B ? n - s : B);
        moe_dataset_batch(d, m, idx + s, b, x, y, mk, NULL, NULL);
        if ((rc = moe_net_forward(&p, m->net, x, b, 0, NULL, e))) break;
        for (int k = 0; k < T; k++)
            for (int r = 0; r < b; r++) {
                pred[(long)k * n + s + r] = m->tasks[k].kind == MOE_TASK_BINARY
                                                ? moe_sigmoidf(p.logit[k][r])
                                                : p.logit[k][r];
                ly[(long)k * n + s + r] = y[(long)k * b + r];
                lm[(long)k * n + s + r] = mk[(long)k * b + r];
            }
    }
    moe_pass_free(&p);
    mr_floats_free(x);
    return rc;
}

/* Test AUC of every binary task in every precision on the trained model m, the
 * largest |AUC - AUC(openblas_fp32)| over tasks and the largest |p - p_fp32|
 * over all test predictions, per precision; as JSON into buf. */
static int precision_json(moe_model *m, const moe_dataset *te, const long *idx, char *buf,
                          size_t len, mr_err *e) {
    long n = te->n;
    int T = m->n_tasks;
    float *ref = malloc(sizeof(float) * (size_t)n * T), *pr = malloc(sizeof(float) * (size_t)n * T),
          *ly = malloc(sizeof(float) * (size_t)n * T), *lm = malloc(sizeof(float) * (size_t)n * T);
    double auc0[MOE_MAX_TASKS];
    size_t o = (size_t)snprintf(buf, len, "{");
    int rc = ref && pr && ly && lm ? 0 : mr_err_set(e, MR_ENOMEM, "out of memory");
    for (int p = 0; !rc && p < MOE_PREC_COUNT; p++) {
        if ((rc = moe_model_set_precision(m, (moe_precision)p, e)) ||
            (rc = predict(m, te, idx, n, p ? pr : ref, ly, lm, e)))
            break;
        const float *cur = p ? pr : ref;
        double dauc = 0, md = 0;
        for (long i = 0; i < n * T; i++)
            md = fabs(cur[i] - ref[i]) > md ? fabs(cur[i] - ref[i]) : md;
        o += (size_t)snprintf(buf + o, len - o, "%s\"%s\":{\"runs\":\"%s\"", p ? "," : "",
                              moe_precision_name(p), moe_precision_name(m->precision_used));
        for (int k = 0; k < T; k++) {
            if (m->tasks[k].kind != MOE_TASK_BINARY) continue; /* AUC of binary tasks */
            double a = moe_auc(cur + (long)k * n, ly + (long)k * n, lm + (long)k * n, n);
            if (!p) auc0[k] = a;
            dauc = fabs(a - auc0[k]) > dauc ? fabs(a - auc0[k]) : dauc;
            o += (size_t)snprintf(buf + o, len - o, ",\"%s_auc\":%.6f", m->tasks[k].name, a);
        }
        o += (size_t)snprintf(buf + o, len - o,
                              ",\"max_abs_auc_change\":%.6f,\"max_abs_score_diff\":%.3g}", dauc,
                              md);
        fprintf(stderr, "  %-13s max |dAUC| %.6f, max |p diff| %.3g\n", moe_precision_name(p), dauc,
                md);
    }
    snprintf(buf + o, len - o, "}");
    moe_model_set_precision(m, MOE_PREC_OPENBLAS_FP32, e);
    free(ref);
    free(pr);
    free(ly);
    free(lm);
    return rc;
}

#endif
