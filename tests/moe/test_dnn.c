/* test_dnn.c — moe/dnn.c: precision names, model.json "precision" (parsed,
 * refused when unknown, written back), building and dropping a plan, and
 * the fallback to fp32 with its reason, and level 0's routers stacked into
 * one fp32 matmul of the plan. The fallback case runs as its own
 * ctest entry (test_moe_dnn_no_avx512) with ONEDNN_MAX_CPU_ISA=AVX2, which
 * makes oneDNN behave as on a CPU without AVX512_BF16 and AVX-512 VNNI; the
 * plain run checks the precisions this CPU has. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "moe/dnn.h"
#include "moe/model.h"

static const char *k_fmt =
    "{\"name\":\"p\",%s\"tables\":[{\"name\":\"a\",\"rows\":8,\"dim\":4}],"
    "\"features\":{\"categorical\":[{\"name\":\"u\",\"table\":\"a\"}],\"numeric\":[{\"name\":\"n\"}]},"
    "\"tasks\":[{\"name\":\"click\"}],\"arch\":{\"type\":\"mmoe\",\"experts\":2,\"expert_hidden\":[16]}}";

static int from(moe_model **m, const char *prec, mr_err *e) {
    char js[2048];
    snprintf(js, sizeof js, k_fmt, prec);
    return moe_model_from_json(m, js, 1, e);
}

static void test_names(void **st) {
    (void)st;
    for (int p = 0; p < MOE_PREC_COUNT; p++) {
        moe_precision q;
        assert_int_equal(moe_precision_parse(moe_precision_name((moe_precision)p), &q), 0);
        assert_int_equal(q, p);
    }
    moe_precision q;
    assert_int_equal(moe_precision_parse("fp16", &q), -1);
    assert_int_equal(moe_precision_parse("", &q), -1);
    assert_string_equal(moe_precision_name(MOE_PREC_OPENBLAS_FP32), "openblas_fp32");
}

static void test_model_json(void **st) {
    (void)st;
    moe_model *m = NULL;
    mr_err e;
    assert_int_equal(from(&m, "", &e), 0);
    assert_int_equal(m->precision, MOE_PREC_FP32);               /* the default */
    assert_int_equal(m->precision_used, MOE_PREC_OPENBLAS_FP32); /* no plan until asked */
    assert_null(m->dnn);
    moe_model_free(m);
    assert_int_equal(from(&m, "\"precision\":\"int8\",", &e), 0);
    assert_int_equal(m->precision, MOE_PREC_INT8);
    char *js = moe_model_to_json(m);
    assert_non_null(strstr(js, "\"precision\": \"int8\""));
    free(js);
    moe_model_free(m);
    assert_int_not_equal(from(&m, "\"precision\":\"fp16\",", &e), 0);
    assert_null(m);
    assert_non_null(strstr(e.msg, "precision"));
    assert_int_not_equal(from(&m, "\"precision\":8,", &e), 0);
    assert_non_null(strstr(e.msg, "precision"));
}

static void test_plan(void **st) {
    (void)st;
    moe_model *m = NULL;
    mr_err e;
    assert_int_equal(from(&m, "", &e), 0);
    moe_dnn *d = NULL;
    moe_precision got;
    char why[256];
    assert_int_equal(moe_dnn_create(&d, m->net, MOE_PREC_OPENBLAS_FP32, &got, why, sizeof why, &e),
                     MR_EINVAL);
    assert_null(d);
    assert_int_equal(moe_dnn_create(&d, m->net, MOE_PREC_FP32, &got, why, sizeof why, &e), 0);
    assert_int_equal(got, MOE_PREC_FP32);
    assert_string_equal(why, "");
    assert_int_equal(moe_dnn_precision(d), MOE_PREC_FP32);
    assert_non_null(m->net->levels[0].experts[0].dnn);
    assert_non_null(m->net->towers[0].dnn);
    /* the routers ride along as one fp32 matmul: (in_dim) -> 2 logits */
    const moe_mlp *gm = m->net->levels[0].dnn_gates;
    assert_non_null(gm);
    assert_non_null(gm->dnn);
    assert_int_equal(gm->n_layers, 1);
    assert_int_equal(gm->dims[0], m->net->levels[0].in_dim);
    assert_int_equal(gm->dims[1], m->net->levels[0].gates[0].n_logits);
    moe_dnn_free(d, m->net);
    assert_null(m->net->levels[0].experts[0].dnn);
    assert_null(m->net->towers[0].dnn);
    assert_null(m->net->levels[0].dnn_gates);
    moe_dnn_free(NULL, m->net);
    print_message("oneDNN ISA: %s\n", moe_dnn_isa_name());
    int no_avx512 = getenv("ONEDNN_MAX_CPU_ISA") && !strcmp(getenv("ONEDNN_MAX_CPU_ISA"), "AVX2");
    for (int p = MOE_PREC_BF16; p <= MOE_PREC_INT8; p++) {
        assert_int_equal(moe_model_set_precision(m, (moe_precision)p, &e), 0);
        print_message("%s -> %s %s\n", moe_precision_name((moe_precision)p),
                      moe_precision_name(m->precision_used), m->precision_note);
        if (no_avx512) {
            assert_string_equal(moe_dnn_isa_name(), "avx2");
            assert_int_equal(m->precision_used, MOE_PREC_FP32);
            assert_non_null(strstr(m->precision_note, p == MOE_PREC_BF16 ? "AVX512_BF16" : "VNNI"));
            assert_non_null(strstr(m->precision_note, "using fp32"));
        } else {
            assert_true(m->precision_used == (moe_precision)p || m->precision_note[0]);
        }
        assert_int_equal(moe_dnn_precision(m->dnn), m->precision_used);
    }
    moe_model_free(m);
}

/* A shared-bottom model's gate is the constant 1: no router matmul. A PLE
 * level 0 stacks every slot's gate and the shared gate. */
static void test_plan_gates(void **st) {
    (void)st;
    static const char *sb =
        "{\"name\":\"p\",\"tables\":[{\"name\":\"a\",\"rows\":8,\"dim\":4}],"
        "\"features\":{\"categorical\":[{\"name\":\"u\",\"table\":\"a\"}]},"
        "\"tasks\":[{\"name\":\"click\"},{\"name\":\"like\"}],\"arch\":{\"type\":\"%s\"%s}}";
    char js[1024];
    moe_model *m = NULL;
    mr_err e;
    snprintf(js, sizeof js, sb, "shared_bottom", "");
    assert_int_equal(moe_model_from_json(&m, js, 1, &e), 0);
    assert_int_equal(moe_model_set_precision(m, MOE_PREC_FP32, &e), 0);
    assert_non_null(m->net->towers[0].dnn);
    assert_null(m->net->levels[0].dnn_gates);
    moe_model_free(m);
    snprintf(js, sizeof js, sb, "ple", ",\"experts\":2,\"task_experts\":1,\"levels\":2");
    assert_int_equal(moe_model_from_json(&m, js, 1, &e), 0);
    assert_int_equal(moe_model_set_precision(m, MOE_PREC_BF16, &e), 0);
    const moe_level *lv = &m->net->levels[0];
    assert_true(lv->has_sgate);
    assert_non_null(lv->dnn_gates);
    assert_int_equal(lv->dnn_gates->dims[1],
                     lv->gates[0].n_logits + lv->gates[1].n_logits + lv->sgate.n_logits);
    assert_null(m->net->levels[1].dnn_gates); /* level 1's gates read different inputs */
    moe_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_model_json),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_plan_gates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
