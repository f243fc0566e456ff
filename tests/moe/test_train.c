/* test_train.c — moe/train.c: training learns a separable two-task problem
 * (validation AUC), is deterministic and independent of the thread count,
 * only updates embedding rows the data touches, restores the best epoch's
 * weights on early stopping, and rejects bad options. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/rng.h"
#include "moe/train.h"

static const char *k_model =
    "{\"tables\":[{\"name\":\"item\",\"rows\":64,\"dim\":4}],"
    "\"features\":{\"categorical\":[{\"name\":\"item\",\"table\":\"item\"}],"
    "\"numeric\":[{\"name\":\"a\"},{\"name\":\"b\"}]},"
    "\"tasks\":[{\"name\":\"pos\"},{\"name\":\"odd\"}],"
    "\"arch\":{\"type\":\"%s\",\"experts\":3,\"expert_hidden\":[16],\"tower_hidden\":[8]%s}}";

enum { N = 3000 };

/* task pos: a + b > 0; task odd: the item id (rows 0..31 used) is odd. */
static void make(moe_model **m, moe_dataset **d, const char *arch, const char *extra) {
    char js[1024];
    snprintf(js, sizeof js, k_model, arch, extra);
    mr_err e;
    assert_int_equal(moe_model_from_json(m, js, 3, &e), 0);
    assert_int_equal(moe_dataset_alloc(d, *m, N, &e), 0);
    mr_rng r;
    mr_rng_seed(&r, 4);
    uint32_t *rows = malloc(sizeof(uint32_t) * N);
    for (long i = 0; i < N; i++) {
        float a = (float)mr_rng_normal(&r), b = (float)mr_rng_normal(&r);
        uint32_t item = (uint32_t)mr_rng_below(&r, 32);
        (*d)->num[i * 2] = a;
        (*d)->num[i * 2 + 1] = b;
        rows[i] = item; /* directly a table row: rows 32..63 are never used */
        (*d)->cat_off[0][i + 1] = (uint32_t)i + 1;
        (*d)->y[i * 2] = a + b > 0;
        (*d)->y[i * 2 + 1] = item % 2;
        (*d)->mask[i * 2] = (*d)->mask[i * 2 + 1] = 1;
    }
    free((*d)->cat_rows[0]);
    (*d)->cat_rows[0] = rows;
}

/* An MMoE model and its data split 80/20 with numeric statistics fitted on
 * the training rows; flip_val inverts the validation labels. */
static void make_split(moe_model **m, moe_dataset **d, long **tr, long *ntr, long **va, long *nva,
                       int flip_val) {
    mr_err e;
    make(m, d, "mmoe", "");
    assert_int_equal(moe_dataset_split(*d, 0.2, 0, 1, tr, ntr, va, nva, &e), 0);
    for (long i = 0; flip_val && i < *nva; i++)
        for (int k = 0; k < 2; k++) (*d)->y[(*va)[i] * 2 + k] = 1.0f - (*d)->y[(*va)[i] * 2 + k];
    moe_dataset_fit_numeric(*d, *m, *tr, *ntr);
}

/* Options under which the problem is learnt in a few epochs. */
static void learn_opts(moe_train_opts *o, int epochs, int patience) {
    moe_train_defaults(o);
    o->epochs = epochs;
    o->batch = 64;
    o->lr = 5e-3f;
    o->emb_lr = 2e-2f;
    o->patience = patience;
}

static void test_learns(void **st) {
    (void)st;
    moe_model *m;
    moe_dataset *d;
    long *tr, *va, ntr, nva;
    mr_err e;
    make_split(&m, &d, &tr, &ntr, &va, &nva, 0);
    float unused_before[32 * 4];
    memcpy(unused_before, m->tables[0].data + 32 * 4, sizeof unused_before);
    moe_train_opts o;
    learn_opts(&o, 8, 8);
    moe_train_result res;
    assert_int_equal(moe_train(m, d, tr, ntr, va, nva, &o, &res, &e), 0);
    print_message("best epoch %d/%d: pos auc %.4f, odd auc %.4f, val loss %.4f, %.0f samples/s\n",
                  res.best_epoch, res.epochs_run, res.best.auc[0], res.best.auc[1], res.best.loss,
                  res.samples_per_s);
    assert_true(res.best.auc[0] > 0.95);
    assert_true(res.best.auc[1] > 0.95);
    /* the restored weights are the best epoch's: evaluating them again gives
     * the recorded validation loss */
    moe_eval ev;
    assert_int_equal(moe_evaluate(m, d, va, nva, 100, NULL, &ev, &e), 0);
    assert_true(fabs(ev.loss - res.best.loss) < 1e-6);
    /* rows no example looks up are never updated by the sparse optimizer */
    assert_memory_equal(unused_before, m->tables[0].data + 32 * 4, sizeof unused_before);
    free(tr);
    free(va);
    moe_dataset_free(d);
    moe_model_free(m);
}

static void run_once(int threads, const char *arch, const char *extra, moe_model **out,
                     moe_dataset **dout, moe_opt_kind emb) {
    moe_dataset *d;
    make(out, &d, arch, extra);
    long *tr, *va, ntr, nva;
    mr_err e;
    assert_int_equal(moe_dataset_split(d, 0.2, 0, 1, &tr, &ntr, &va, &nva, &e), 0);
    moe_train_opts o;
    moe_train_defaults(&o);
    o.epochs = 2;
    o.batch = 100;
    o.threads = threads;
    o.emb_opt = emb;
    o.clip = 0.5f; /* small, so clipping is exercised */
    moe_train_result res;
    assert_int_equal(moe_train(*out, d, tr, ntr, va, nva, &o, &res, &e), 0);
    free(tr);
    free(va);
    *dout = d;
}

static void test_deterministic_any_threads(void **st) {
    (void)st;
    const char *extra = ",\"gate\":{\"type\":\"topp\",\"p\":0.5},\"lbl_coef\":0.01";
    moe_model *m1, *m2;
    moe_dataset *d1, *d2;
    run_once(1, "ple", extra, &m1, &d1, MOE_OPT_ADAGRAD);
    run_once(2, "ple", extra, &m2, &d2, MOE_OPT_ADAGRAD);
    assert_memory_equal(m1->net->params, m2->net->params,
                        sizeof(float) * (size_t)m1->net->n_params);
    assert_memory_equal(m1->tables[0].data, m2->tables[0].data, sizeof(float) * 64 * 4);
    moe_model_free(m1);
    moe_model_free(m2);
    moe_dataset_free(d1);
    moe_dataset_free(d2);
}

/* Validation labels are the opposite of the training rule, so validation
 * loss is best after the first epoch and worsens after it: training must
 * stop early and hand back the first epoch's weights, not the last ones. */
static void test_early_stopping_restores_best(void **st) {
    (void)st;
    moe_model *m;
    moe_dataset *d;
    long *tr, *va, ntr, nva;
    mr_err e;
    make_split(&m, &d, &tr, &ntr, &va, &nva, 1);
    moe_train_opts o;
    learn_opts(&o, 10, 2);
    o.threads = 1;
    moe_train_result res;
    assert_int_equal(moe_train(m, d, tr, ntr, va, nva, &o, &res, &e), 0);
    print_message("best epoch %d of %d run, best val loss %.4f\n", res.best_epoch, res.epochs_run,
                  res.best.loss);
    assert_int_equal(res.best_epoch, 1);
    assert_int_equal(res.epochs_run, 1 + o.patience); /* stopped early */
    moe_eval ev;
    assert_int_equal(moe_evaluate(m, d, va, nva, 100, NULL, &ev, &e), 0);
    assert_true(fabs(ev.loss - res.best.loss) < 1e-6); /* epoch 1's weights are back */
    free(tr);
    free(va);
    moe_dataset_free(d);
    moe_model_free(m);
}

static void test_bad_options(void **st) {
    (void)st;
    moe_model *m;
    moe_dataset *d;
    make(&m, &d, "mmoe", "");
    moe_train_opts o;
    moe_train_defaults(&o);
    o.batch = 0;
    moe_train_result res;
    mr_err e;
    long idx[2] = {0, 1};
    assert_int_equal(moe_train(m, d, idx, 2, NULL, 0, &o, &res, &e), MR_EINVAL);
    moe_train_defaults(&o);
    assert_int_equal(moe_train(m, d, idx, 0, NULL, 0, &o, &res, &e), MR_EINVAL);
    moe_dataset_free(d);
    moe_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learns),
        cmocka_unit_test(test_deterministic_any_threads),
        cmocka_unit_test(test_early_stopping_restores_best),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
