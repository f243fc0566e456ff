/* metrics.h — evaluation metrics per task: ROC AUC (ties get half credit,
 * via average ranks), log loss and mean squared error, over the rows whose
 * mask is set. */
#ifndef MOEREC_MOE_METRICS_H
#define MOEREC_MOE_METRICS_H

/* AUC of scores for binary labels y (mask NULL = all rows); 0.5 when only
 * one class is present. Allocates O(n) scratch; returns -1 on OOM. */
double moe_auc(const float *score, const float *y, const float *mask, long n);
/* Mean log loss of probabilities p (clamped to [1e-7, 1 - 1e-7]). */
double moe_logloss(const float *p, const float *y, const float *mask, long n);
double moe_mse(const float *pred, const float *y, const float *mask, long n);

#endif
