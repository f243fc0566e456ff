/* moe_movielens — multi-task MovieLens (like = rating >= 4, love >= 4.5), time split: shared-bottom, MMoE, PLE vs XGBoost
 *
 * The C half of bench/moe_movielens.sh: reads DIR/train.csv and
 * DIR/test.csv (each user's latest 20% of ratings are the test set), trains
 * each architecture on the same features (userId, movieId, genres as a
 * mean bag, year) with early stopping on a random 10% of the training rows,
 * and prints one JSON line with test AUC and logloss per task.
 * Usage: bench_moe_movielens DIR [--epochs N] [--seed N]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/tensor.h"
#include "moe/layers.h"
#include "moe/metrics.h"
#include "moe/train.h"

/* Test predictions (T, n) task-major and labels/masks in the current
 * precision, batches of 1024 (the scorer's inference path). */
static int predict(const moe_model *m, const moe_dataset *d, const long *idx, long n, float *pred, float *ly, float *lm,
                   mr_err *e) {
    enum { B = 1024 };
    int T = m->n_tasks;
    float *x = mr_floats_alloc((size_t)B * (size_t)m->in_dim), y[B * MOE_MAX_TASKS], mk[B * MOE_MAX_TASKS];
    moe_pass p;
    moe_pass_init(&p);
    int rc = x ? 0 : mr_err_set(e, MR_ENOMEM, "out of memory");
    for (long s = 0; !rc && s < n; s += B) {
        int b = (int)(n - s < B ? n - s : B);
        moe_dataset_batch(d, m, idx + s, b, x, y, mk, NULL, NULL);
        if ((rc = moe_net_forward(&p, m->net, x, b, 0, NULL, e))) break;
        for (int k = 0; k < T; k++)
            for (int r = 0; r < b; r++) {
                pred[(long)k * n + s + r] = moe_sigmoidf(p.logit[k][r]);
                ly[(long)k * n + s + r] = y[(long)k * b + r];
                lm[(long)k * n + s + r] = mk[(long)k * b + r];
            }
    }
    moe_pass_free(&p);
    mr_floats_free(x);
    return rc;
}

/* Test AUC of every task in every precision on the trained model m, the
 * largest |AUC - AUC(openblas_fp32)| over tasks and the largest |p - p_fp32|
 * over all test predictions, per precision; as JSON into buf. */
static int precision_json(moe_model *m, const moe_dataset *te, const long *idx, char *buf, size_t len, mr_err *e) {
    long n = te->n;
    int T = m->n_tasks;
    float *ref = malloc(sizeof(float) * (size_t)n * T), *pr = malloc(sizeof(float) * (size_t)n * T),
          *ly = malloc(sizeof(float) * (size_t)n * T), *lm = malloc(sizeof(float) * (size_t)n * T);
    double auc0[MOE_MAX_TASKS];
    size_t o = (size_t)snprintf(buf, len, "{");
    int rc = ref && pr && ly && lm ? 0 : mr_err_set(e, MR_ENOMEM, "out of memory");
    for (int p = 0; !rc && p < MOE_PREC_COUNT; p++) {
        if ((rc = moe_model_set_precision(m, (moe_precision)p, e)) || (rc = predict(m, te, idx, n, p ? pr : ref, ly, lm, e)))
            break;
        const float *cur = p ? pr : ref;
        double dauc = 0, md = 0;
        for (long i = 0; i < n * T; i++) md = fabs(cur[i] - ref[i]) > md ? fabs(cur[i] - ref[i]) : md;
        o += (size_t)snprintf(buf + o, len - o, "%s\"%s\":{\"runs\":\"%s\"", p ? "," : "", moe_precision_name(p),
                              moe_precision_name(m->precision_used));
        for (int k = 0; k < T; k++) {
            double a = moe_auc(cur + (long)k * n, ly + (long)k * n, lm + (long)k * n, n);
            if (!p) auc0[k] = a;
            dauc = fabs(a - auc0[k]) > dauc ? fabs(a - auc0[k]) : dauc;
            o += (size_t)snprintf(buf + o, len - o, ",\"%s_auc\":%.6f", m->tasks[k].name, a);
        }
        o += (size_t)snprintf(buf + o, len - o, ",\"max_abs_auc_change\":%.6f,\"max_abs_score_diff\":%.3g}", dauc, md);
        fprintf(stderr, "  %-13s max |dAUC| %.6f, max |p diff| %.3g\n", moe_precision_name(p), dauc, md);
    }
    snprintf(buf + o, len - o, "}");
    moe_model_set_precision(m, MOE_PREC_OPENBLAS_FP32, e);
    free(ref);
    free(pr);
    free(ly);
    free(lm);
    return rc;
}

static const char *k_fmt =
    "{\"name\":\"movielens\",\"tables\":[{\"name\":\"user\",\"rows\":4096,\"dim\":16},"
    "{\"name\":\"item\",\"rows\":32768,\"dim\":16},{\"name\":\"genre\",\"rows\":256,\"dim\":8}],"
    "\"features\":{\"categorical\":[{\"name\":\"user\",\"column\":\"userId\",\"table\":\"user\"},"
    "{\"name\":\"item\",\"column\":\"movieId\",\"table\":\"item\"},"
    "{\"name\":\"genres\",\"table\":\"genre\",\"combiner\":\"mean\",\"separator\":\"|\"}],"
    "\"numeric\":[{\"name\":\"year\"}]},"
    "\"tasks\":[{\"name\":\"like\",\"label\":\"rating\",\"threshold\":4.0},"
    "{\"name\":\"love\",\"label\":\"rating\",\"threshold\":4.5}],\"arch\":%s}";

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_moe_movielens DIR [--epochs N] [--seed N]\n");
        return 2;
    }
    int epochs = 20;
    uint64_t seed = 1;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--epochs")) epochs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
    }
    static const char *archs[3][2] = {
        {"shared_bottom", "{\"type\":\"shared_bottom\",\"expert_hidden\":[128,64],\"tower_hidden\":[32]}"},
        {"mmoe", "{\"type\":\"mmoe\",\"experts\":6,\"expert_hidden\":[64,32],\"tower_hidden\":[32]}"},
        {"ple", "{\"type\":\"ple\",\"levels\":2,\"experts\":2,\"task_experts\":2,\"expert_hidden\":[64,32],"
                "\"tower_hidden\":[32]}"}};
    char trp[4096], tep[4096];
    snprintf(trp, sizeof trp, "%s/train.csv", argv[1]);
    snprintf(tep, sizeof tep, "%s/test.csv", argv[1]);
    mr_blas_set_threads(1);
    printf("{\"bench\":\"moe_movielens\",\"models\":{");
    for (int a = 0; a < 3; a++) {
        char js[4096];
        snprintf(js, sizeof js, k_fmt, archs[a][1]);
        moe_model *m;
        moe_dataset *tr = NULL, *te = NULL;
        mr_err e;
        long *ti, *vi, nt, nv;
        if (moe_model_from_json(&m, js, seed, &e) || moe_dataset_read(&tr, m, trp, NULL, 0, &e) ||
            moe_dataset_read(&te, m, tep, NULL, 0, &e) || moe_dataset_split(tr, 0.1, 0, seed, &ti, &nt, &vi, &nv, &e)) {
            fprintf(stderr, "moe_movielens: %s\n", e.msg);
            return 1;
        }
        moe_dataset_fit_numeric(tr, m, ti, nt);
        moe_train_opts o;
        moe_train_defaults(&o);
        o.epochs = epochs;
        o.batch = 256;
        o.lr = 1e-3f;
        o.emb_lr = 1e-3f;
        o.weight_decay = 1e-5f;
        o.patience = 2;
        o.seed = seed;
        moe_train_result res;
        moe_eval ev;
        long *all = malloc(sizeof(long) * (size_t)te->n);
        for (long i = 0; i < te->n; i++) all[i] = i;
        if (moe_train(m, tr, ti, nt, vi, nv, &o, &res, &e) || moe_evaluate(m, te, all, te->n, 1024, NULL, &ev, &e)) {
            fprintf(stderr, "moe_movielens: %s\n", e.msg);
            return 1;
        }
        fprintf(stderr, "%-13s best epoch %2d: like auc %.4f logloss %.4f | love auc %.4f logloss %.4f | %.0f samples/s\n",
                archs[a][0], res.best_epoch, ev.auc[0], ev.logloss[0], ev.auc[1], ev.logloss[1], res.samples_per_s);
        static char pj[4096];
        if (precision_json(m, te, all, pj, sizeof pj, &e)) {
            fprintf(stderr, "moe_movielens: %s\n", e.msg);
            return 1;
        }
        printf("%s\"%s\":{\"like\":{\"auc\":%.4f,\"logloss\":%.4f},\"love\":{\"auc\":%.4f,\"logloss\":%.4f},"
               "\"best_epoch\":%d,\"params\":%ld,\"train_samples_per_s\":%.0f,\"precision\":%s}",
               a ? "," : "", archs[a][0], ev.auc[0], ev.logloss[0], ev.auc[1], ev.logloss[1], res.best_epoch,
               m->net->n_params, res.samples_per_s, pj);
        free(all);
        free(ti);
        free(vi);
        moe_dataset_free(tr);
        moe_dataset_free(te);
        moe_model_free(m);
    }
    printf("},\"test_rows_file\":\"test.csv\"}\n");
    return 0;
}
