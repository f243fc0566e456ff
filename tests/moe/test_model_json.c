/* test_model_json.c — moe/model_json.c: defaults, the input layout implied
 * by the schema, errors naming the field for unknown or invalid fields, and
 * that writing model.json and parsing it back gives the same model. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "moe/model.h"
#include "testmodel.h"

static int parse(const char *arch, moe_model **m, mr_err *e) {
    char js[4096];
    snprintf(js, sizeof js, k_test_model_fmt, arch);
    return moe_model_from_json(m, js, 1, e);
}

static void test_layout_and_defaults(void **st) {
    (void)st;
    moe_model *m;
    mr_err e;
    assert_int_equal(parse("{\"type\":\"mmoe\"}", &m, &e), 0);
    /* user (4) + item (3) + genre (3) + 2 numeric + 2 extra */
    assert_int_equal(m->in_dim, 4 + 3 + 3 + 2 + 2);
    assert_int_equal(m->cat[2].offset, 7);
    assert_int_equal(m->num[0].offset, 10);
    assert_int_equal(m->num[1].offset, 11);
    assert_string_equal(m->cat[0].column, "uid");
    assert_string_equal(m->cat[1].column, "item"); /* column defaults to the name */
    assert_int_equal(m->cat[2].sep, '|');
    assert_int_equal(m->cat[2].mean, 1);
    assert_true(m->num[1].std == 1.0f);
    assert_int_equal(m->tasks[2].kind, MOE_TASK_REGRESSION);
    assert_int_equal(m->tasks[1].has_threshold, 1);
    assert_true(m->tasks[0].loss_decay == 1.0f); /* default: no decay */
    assert_true(moe_model_loss_weight(m, 0, 5) == m->tasks[0].loss_weight);
    /* MMoE paper defaults: 8 experts of 16 units, towers of 8 */
    assert_int_equal(m->net->arch.n_shared, 8);
    assert_int_equal(m->net->arch.expert_hidden[0], 16);
    assert_int_equal(m->net->arch.tower_hidden[0], 8);
    assert_int_equal(m->net->arch.task_kind[2], MOE_TASK_REGRESSION);
    moe_model_free(m);
}

static void expect_error(const char *arch, const char *needle) {
    moe_model *m = NULL;
    mr_err e;
    int rc = parse(arch, &m, &e);
    print_message("%s -> %s\n", arch, e.msg);
    assert_int_equal(rc, MR_EINVAL);
    assert_null(m);
    assert_non_null(strstr(e.msg, needle));
}

static void test_errors_name_the_field(void **st) {
    (void)st;
    expect_error("{\"type\":\"mmoe\",\"expertz\":3}", "arch.expertz: unknown field");
    expect_error("{\"type\":\"mmoe\",\"gate\":{\"kind\":\"topk\"}}",
                 "arch.gate.kind: unknown field");
    expect_error("{\"type\":\"mmmoe\"}", "arch.type 'mmmoe'");
    expect_error("{\"type\":\"mmoe\",\"gate\":{\"type\":\"topp\",\"p\":2}}", "gate.p");
    expect_error("{\"type\":\"mmoe\",\"expert_hidden\":[0]}", "arch.expert_hidden[0]");
    /* widths within range whose product is not: refused before anything
     * is allocated (a fuzzer's [21111, 11111] tower asked for 939 MB) */
    expect_error("{\"type\":\"mmoe\",\"tower_hidden\":[30000,20000]}", "at most 268435456");
    expect_error("{\"type\":\"home\",\"task_groups\":[0,1]}", "arch.task_groups");
    /* a huge group id is refused by range, not overflowed into n_groups */
    expect_error("{\"type\":\"home\",\"task_groups\":[0,0,2147483647]}",
                 "arch.task_groups[2] must be");
    expect_error("{\"type\":\"home\",\"task_groups\":[0,-1,0]}", "arch.task_groups[1] must be");
    expect_error("{\"type\":\"mmoe\",\"activation\":\"tanh\"}", "arch.activation");
    expect_error("[1]", "arch is required");
    /* a number past the float range (fuzz: a task weight of 1.8e44 became inf and the
     * model could not be written back) */
    expect_error("{\"type\":\"mmoe\",\"lbl_coef\":1e300}",
                 "arch.lbl_coef = 1e+300 is outside the float range");
    /* issue 13: settings the architecture would ignore are refused */
    expect_error("{\"type\":\"shared_bottom\",\"experts\":4}",
                 "arch.experts does not apply to shared_bottom");
    expect_error("{\"type\":\"shared_bottom\",\"gate\":{\"type\":\"topk\"}}",
                 "arch.gate does not apply");
    expect_error("{\"type\":\"mmoe\",\"experts\":4,\"gate\":{\"type\":\"topk\",\"k\":9}}",
                 "arch.gate.k is 9 but a gate chooses among 4 experts");
    moe_model *ok = NULL;
    mr_err oke;
    assert_int_equal(
        parse("{\"type\":\"mmoe\",\"experts\":4,\"gate\":{\"type\":\"topk\",\"k\":4}}", &ok, &oke),
        0);
    moe_model_free(ok);
    /* the values shared_bottom uses anyway pass: both writers (moerec's
     * model.json of a version, moerec_torch's) spell every arch key out */
    assert_int_equal(
        parse("{\"type\":\"shared_bottom\",\"experts\":1,\"task_experts\":0,\"levels\":1,"
              "\"gate\":{\"type\":\"dense\",\"k\":2,\"p\":0.4,\"null_experts\":0,\"always_on\":0},"
              "\"lbl_coef\":0,\"entropy_coef\":0}",
              &ok, &oke),
        0);
    char *sj = moe_model_to_json(ok);
    moe_model_free(ok);
    ok = NULL;
    assert_int_equal(moe_model_from_json(&ok, sj, 1, &oke), 0); /* a saved shared_bottom reloads */
    free(sj);
    moe_model_free(ok);
    assert_int_equal(
        moe_model_from_json(&ok,
                            "{\"tasks\":[{\"name\":\"a\",\"positive\":\"yes\",\"threshold\":1}],"
                            "\"features\":{\"extra_dim\":1},\"arch\":{\"type\":\"mmoe\"}}",
                            1, &oke),
        MR_EINVAL);
    assert_non_null(strstr(oke.msg, "tasks[0].positive"));
    assert_int_equal(
        moe_model_from_json(&ok,
                            "{\"tasks\":[{\"name\":\"a\",\"positive\":\"yes\"}],"
                            "\"features\":{\"extra_dim\":1},\"arch\":{\"type\":\"mmoe\"}}",
                            1, &oke),
        0);
    char *pj = moe_model_to_json(ok);
    assert_non_null(strstr(pj, "\"positive\""));
    assert_non_null(strstr(pj, "\"yes\""));
    free(pj);
    moe_model_free(ok);
    /* two tasks of one name: the server looks tasks up by name */
    moe_model *dup = NULL;
    mr_err dupe;
    assert_int_equal(
        moe_model_from_json(&dup,
                            "{\"tasks\":[{\"name\":\"a\"},{\"name\":\"a\"}],"
                            "\"features\":{\"extra_dim\":1},\"arch\":{\"type\":\"mmoe\"}}",
                            1, &dupe),
        MR_EINVAL);
    assert_non_null(strstr(dupe.msg, "tasks[1].name 'a' is used twice"));
    moe_model *d = NULL;
    mr_err de;
    assert_int_equal(
        moe_model_from_json(&d,
                            "{\"tasks\":[{\"name\":\"a\",\"loss_weight\":2,\"loss_decay\":0.5}],"
                            "\"features\":{\"extra_dim\":1},\"arch\":{\"type\":\"mmoe\"}}",
                            1, &de),
        0);
    assert_true(fabsf(moe_model_loss_weight(d, 0, 0) - 2.0f) < 1e-6f); /* w_k(t) = w_k0 gamma^t */
    assert_true(fabsf(moe_model_loss_weight(d, 0, 3) - 0.25f) < 1e-6f);
    char *dj = moe_model_to_json(d);
    assert_non_null(strstr(dj, "loss_decay"));
    free(dj);
    moe_model_free(d);
    assert_int_equal(
        moe_model_from_json(&d, "{\"tasks\":[{\"name\":\"a\",\"loss_decay\":1.5}],\"arch\":{}}", 1,
                            &de),
        MR_EINVAL);
    assert_non_null(strstr(de.msg, "tasks[0].loss_decay"));
    moe_model *m = NULL;
    mr_err e;
    assert_int_equal(
        moe_model_from_json(&m, "{\"tasks\":[{\"name\":\"a\",\"kind\":\"ranking\"}],\"arch\":{}}",
                            1, &e),
        MR_EINVAL);
    assert_non_null(strstr(e.msg, "tasks[0].kind"));
    assert_int_equal(moe_model_from_json(&m, "{\"bogus\":1}", 1, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "bogus: unknown field"));
    assert_int_equal(
        moe_model_from_json(&m, "{\"tables\":[{\"name\":\"t\",\"rows\":10,\"hash\":\"cuckoo\"}]}",
                            1, &e),
        MR_EINVAL);
    assert_non_null(strstr(e.msg, "tables[0].hash"));
    /* a graph table needs the other side of its graph */
    assert_int_equal(
        moe_model_from_json(&m, "{\"tables\":[{\"name\":\"t\",\"rows\":10,\"hash\":\"graph\"}]}", 1,
                            &e),
        MR_EINVAL);
    assert_non_null(strstr(e.msg, "tables[0].pair is required"));
    assert_int_equal(
        moe_model_from_json(
            &m, "{\"features\":{\"categorical\":[{\"name\":\"f\",\"table\":\"zz\"}]}}", 1, &e),
        MR_EINVAL);
    assert_non_null(strstr(e.msg, "table 'zz'"));
    assert_int_equal(moe_model_from_json(&m, "{not json", 1, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "line 1"));
}

static void test_to_json_round_trip(void **st) {
    (void)st;
    moe_model *m, *m2;
    mr_err e;
    assert_int_equal(
        parse("{\"type\":\"home\",\"task_groups\":[0,0,1],\"feature_gate_rank\":3,"
              "\"gate\":{\"type\":\"topp\",\"p\":0.5,\"null_experts\":1},\"lbl_coef\":0.01}",
              &m, &e),
        0);
    char *js = moe_model_to_json(m);
    assert_non_null(js);
    assert_int_equal(moe_model_from_json(&m2, js, 1, &e), 0);
    assert_memory_equal(&m->net->arch, &m2->net->arch, sizeof m->net->arch);
    assert_int_equal(m2->in_dim, m->in_dim);
    assert_int_equal(m2->net->n_params, m->net->n_params);
    assert_int_equal(m2->tables[1].kind, IDHASH_DOUBLE);
    assert_true(m2->tables[1].seed2 == 9);
    free(js);
    moe_model_free(m);
    moe_model_free(m2);
}

/* "storage", "encoding", "ttl_seconds": parsed, defaulted, refused with the
 * field named, and written back by moe_model_to_json. */
static void test_storage_fields(void **st) {
    (void)st;
    moe_model *m = NULL, *m2 = NULL;
    mr_err e;
    const char *ok =
        "{\"tables\":[{\"name\":\"a\",\"rows\":10,\"dim\":2},"
        "{\"name\":\"b\",\"rows\":10,\"dim\":2,\"storage\":\"store\",\"encoding\":\"int8\","
        "\"ttl_seconds\":60},{\"name\":\"c\",\"rows\":10,\"dim\":2,\"storage\":\"store\"}],"
        "\"tasks\":[{\"name\":\"a\"}],\"features\":{\"extra_dim\":1},\"arch\":{\"type\":\"mmoe\"}}";
    int prc = moe_model_from_json(&m, ok, 1, &e);
    if (prc) print_message("%s\n", e.msg);
    assert_int_equal(prc, 0);
    assert_int_equal(m->tables[0].storage, MOE_STORAGE_MEMORY);
    assert_int_equal(m->tables[0].encoding, MOE_ENC_FP32);
    assert_int_equal(m->tables[1].storage, MOE_STORAGE_STORE);
    assert_int_equal(m->tables[1].encoding, MOE_ENC_INT8);
    assert_int_equal(m->tables[1].ttl_s, 60);
    assert_int_equal(m->tables[2].encoding, MOE_ENC_FP32); /* the default encoding */
    char *js = moe_model_to_json(m);
    assert_null(strstr(js, "\"memory\"")); /* the default is not spelled out */
    assert_int_equal(moe_model_from_json(&m2, js, 1, &e), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(m2->tables[i].storage, m->tables[i].storage);
        assert_int_equal(m2->tables[i].encoding, m->tables[i].encoding);
        assert_int_equal(m2->tables[i].ttl_s, m->tables[i].ttl_s);
    }
    free(js);
    moe_model_free(m);
    moe_model_free(m2);
    static const struct {
        const char *table, *needle;
    } bad[] = {
        {"\"storage\":\"disk\"", "tables[0].storage 'disk' must be"},
        {"\"storage\":\"store\",\"encoding\":\"bf16\"", "tables[0].encoding 'bf16' must be"},
        {"\"encoding\":\"fp16\"", "tables[0]: encoding and ttl_seconds describe rows in the store"},
        {"\"ttl_seconds\":5", "tables[0]: encoding and ttl_seconds"},
        {"\"storage\":\"store\",\"ttl_seconds\":-1", "tables[0].ttl_seconds must be"},
        {"\"storage\":\"store\",\"ttl_seconds\":1.5", "tables[0].ttl_seconds must be"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char js2[512];
        snprintf(js2, sizeof js2, "{\"tables\":[{\"name\":\"a\",\"rows\":10,%s}],\"arch\":{}}",
                 bad[i].table);
        m = NULL;
        assert_int_equal(moe_model_from_json(&m, js2, 1, &e), MR_EINVAL);
        assert_null(m);
        print_message("%s -> %s\n", bad[i].table, e.msg);
        assert_non_null(strstr(e.msg, bad[i].needle));
    }
}

/* features.history_actions: parsed, written back by moe_model_to_json,
 * refused with the reason when malformed or when extra_dim is not 2 d + n. */
static void test_history_actions(void **st) {
    (void)st;
    moe_model *m = NULL, *m2 = NULL;
    mr_err e;
    const char *fmt =
        "{\"tables\":[{\"name\":\"a\",\"rows\":10,\"dim\":2}],\"tasks\":[{\"name\":\"a\"}],"
        "\"features\":{%s},\"arch\":{\"type\":\"mmoe\"}}";
    char js[1024];
    snprintf(js, sizeof js, fmt, "\"extra_dim\":34,\"history_actions\":[\"like\",\"love\"]");
    int prc = moe_model_from_json(&m, js, 1, &e);
    if (prc) print_message("%s\n", e.msg);
    assert_int_equal(prc, 0);
    assert_int_equal(m->n_hist_act, 2);
    assert_string_equal(m->hist_act[1], "love");
    char *out = moe_model_to_json(m);
    assert_int_equal(moe_model_from_json(&m2, out, 1, &e), 0);
    assert_int_equal(m2->n_hist_act, 2);
    assert_string_equal(m2->hist_act[0], "like");
    assert_int_equal(m2->extra_dim, 34);
    free(out);
    moe_model_free(m);
    moe_model_free(m2);
    snprintf(js, sizeof js, fmt, "\"extra_dim\":32");
    assert_int_equal(moe_model_from_json(&m, js, 1, &e), 0);
    out = moe_model_to_json(m);
    assert_null(strstr(out, "history_actions")); /* none: not written */
    free(out);
    moe_model_free(m);
    char long_name[80], long_item[120];
    memset(long_name, 'x', 65);
    long_name[65] = 0;
    snprintf(long_item, sizeof long_item, "\"extra_dim\":3,\"history_actions\":[\"%s\"]",
             long_name);
    static const char *const many =
        "\"extra_dim\":19,\"history_actions\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\","
        "\"j\",\"k\",\"l\",\"m\",\"n\",\"o\",\"p\",\"q\"]";
    const struct {
        const char *features, *needle;
    } bad[] = {
        {"\"extra_dim\":34,\"history_actions\":\"like\"", "must be a list of 1..16"},
        {"\"extra_dim\":34,\"history_actions\":[]", "must be a list of 1..16"},
        {many, "must be a list of 1..16"},
        {"\"extra_dim\":34,\"history_actions\":[\"like\",3]",
         "history_actions[1] must be a string"},
        {"\"extra_dim\":34,\"history_actions\":[\"\"]",
         "history_actions[0] must be a string of 1..64"},
        {long_item, "history_actions[0] must be a string of 1..64"},
        {"\"extra_dim\":34,\"history_actions\":[\"like\",\"like\"]", "'like' is listed twice"},
        {"\"extra_dim\":33,\"history_actions\":[\"like\",\"love\"]", "must be 2 d + 2"},
        {"\"extra_dim\":2,\"history_actions\":[\"like\",\"love\"]", "must be 2 d + 2"},
        {"\"history_actions\":[\"like\"]", "extra_dim 0 must be 2 d + 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(js, sizeof js, fmt, bad[i].features);
        m = NULL;
        assert_int_equal(moe_model_from_json(&m, js, 1, &e), MR_EINVAL);
        assert_null(m);
        print_message("%s -> %s\n", bad[i].features, e.msg);
        assert_non_null(strstr(e.msg, bad[i].needle));
    }
}

/* Graph tables' "resolution", "balance" and "hubs": parsed, defaulted, refused
 * with the field named (also on other kinds), written back. */
static void test_graph_fields(void **st) {
    (void)st;
    moe_model *m = NULL, *m2 = NULL;
    mr_err e;
    const char *ok =
        "{\"tables\":[{\"name\":\"u\",\"rows\":10,\"dim\":2,\"hash\":\"graph\",\"pair\":\"i\","
        "\"balance\":\"degree\",\"resolution\":1.5,\"hubs\":3},{\"name\":\"i\",\"rows\":10,"
        "\"dim\":2,"
        "\"hash\":\"double_graph\",\"pair\":\"u\"}],"
        "\"tasks\":[{\"name\":\"a\"}],\"features\":{\"extra_dim\":1},\"arch\":{\"type\":\"mmoe\"}}";
    int prc = moe_model_from_json(&m, ok, 1, &e);
    if (prc) print_message("%s\n", e.msg);
    assert_int_equal(prc, 0);
    assert_int_equal(m->tables[0].balance, 1);
    assert_true(m->tables[0].resolution == 1.5);
    assert_int_equal(m->tables[1].balance, 0); /* defaults: a row per cluster, */
    assert_true(m->tables[1].resolution == 0); /* the build's resolution, */
    assert_int_equal(m->tables[0].hubs, 3);
    assert_int_equal(m->tables[1].hubs, 0); /* no hubs */
    char *js = moe_model_to_json(m);
    assert_null(strstr(js, "\"none\"")); /* the default is not spelled out */
    assert_int_equal(moe_model_from_json(&m2, js, 1, &e), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(m2->tables[i].balance, m->tables[i].balance);
        assert_true(m2->tables[i].resolution == m->tables[i].resolution);
        assert_int_equal(m2->tables[i].hubs, m->tables[i].hubs);
    }
    free(js);
    moe_model_free(m);
    moe_model_free(m2);
    static const struct {
        const char *table, *needle;
    } bad[] = {
        {"\"hash\":\"graph\",\"pair\":\"b\",\"balance\":\"size\"",
         "tables[0].balance 'size' must be"},
        {"\"hash\":\"graph\",\"pair\":\"b\",\"balance\":1", "tables[0].balance must be a string"},
        {"\"hash\":\"graph\",\"pair\":\"b\",\"resolution\":0", "tables[0].resolution must be in"},
        {"\"hash\":\"graph\",\"pair\":\"b\",\"resolution\":-2", "tables[0].resolution must be in"},
        {"\"hash\":\"graph\",\"pair\":\"b\",\"resolution\":\"auto\"",
         "tables[0].resolution must be a number"},
        {"\"hash\":\"frequency\",\"balance\":\"degree\"",
         "tables[0]: resolution, balance and hubs belong to the graph"},
        {"\"resolution\":5", "tables[0]: resolution, balance and hubs belong to the graph"},
        {"\"hubs\":2", "tables[0]: resolution, balance and hubs belong to the graph"},
        {"\"hash\":\"graph\",\"pair\":\"b\",\"hubs\":10",
         "tables[0].hubs must be an integer in [0, 9]"},
        {"\"hash\":\"graph\",\"pair\":\"b\",\"hubs\":-1",
         "tables[0].hubs must be an integer in [0, 9]"},
        {"\"hash\":\"graph\",\"pair\":\"b\",\"hubs\":1.5", "tables[0].hubs must be an integer"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char js2[512];
        snprintf(js2, sizeof js2,
                 "{\"tables\":[{\"name\":\"a\",\"rows\":10,%s},{\"name\":\"b\",\"rows\":10}],"
                 "\"arch\":{}}",
                 bad[i].table);
        m = NULL;
        assert_int_equal(moe_model_from_json(&m, js2, 1, &e), MR_EINVAL);
        assert_null(m);
        print_message("%s -> %s\n", bad[i].table, e.msg);
        assert_non_null(strstr(e.msg, bad[i].needle));
    }
}

/* 400 random single-character mutations of a valid model.json: parsing
 * either succeeds or fails with MR_EINVAL, never crashes (ASan run). */
static void test_fuzz(void **st) {
    (void)st;
    char js[4096];
    snprintf(js, sizeof js, k_test_model_fmt, "{\"type\":\"ple\",\"gate\":{\"type\":\"topp\"}}");
    size_t n = strlen(js);
    unsigned seed = 7;
    int ok = 0, bad = 0;
    static const char alphabet[] = "{}[]:,\"0123456789-.eE abcxyz";
    for (int i = 0; i < 400; i++) {
        char c[4096];
        memcpy(c, js, n + 1);
        seed = seed * 1103515245u + 12345u;
        c[(seed >> 8) % n] = alphabet[(seed >> 20) % (sizeof alphabet - 1)];
        moe_model *m = NULL;
        mr_err e;
        int rc = moe_model_from_json(&m, c, 1, &e);
        assert_true(rc == 0 || rc == MR_EINVAL || rc == MR_ENOMEM);
        if (rc == 0) {
            ok++;
            moe_model_free(m);
        } else {
            bad++;
            assert_true(strlen(e.msg) > 0);
        }
    }
    print_message("fuzz: %d mutations parsed, %d rejected\n", ok, bad);
    assert_true(bad > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_and_defaults), cmocka_unit_test(test_errors_name_the_field),
        cmocka_unit_test(test_to_json_round_trip),  cmocka_unit_test(test_storage_fields),
        cmocka_unit_test(test_graph_fields),        cmocka_unit_test(test_fuzz),
        cmocka_unit_test(test_history_actions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
