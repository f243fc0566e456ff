/* test_model.c — moe/model.c: save/load round trip (identical weights and
 * scores), version directories, and loading damaged model directories:
 * missing, reshaped, non-finite or unexpected tensors and truncated files
 * fail with an error naming the tensor; label rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "moe/model.h"
#include "moe/safetensors.h"
#include "moe/scorer.h"
#include "testmodel.h"

static char g_root[64];

static int setup(void **st) {
    (void)st;
    snprintf(g_root, sizeof g_root, "/tmp/moe_model_XXXXXX");
    return mkdtemp(g_root) ? 0 : -1;
}

static int teardown(void **st) {
    (void)st;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    return system(cmd) == 0 ? 0 : -1;
}

static moe_model *make(const char *arch, uint64_t seed) {
    char js[4096];
    snprintf(js, sizeof js, k_test_model_fmt, arch);
    moe_model *m = NULL;
    mr_err e;
    int rc = moe_model_from_json(&m, js, seed, &e);
    if (rc) print_message("%s\n", e.msg);
    assert_int_equal(rc, 0);
    return m;
}

static void score(const moe_model *m, float *out) {
    moe_scorer *s;
    mr_err e;
    assert_int_equal(moe_scorer_create(&s, m, &e), 0);
    assert_int_equal(moe_scorer_begin(s, 3, &e), 0);
    const char *u = "u42", *items[3] = {"a", "b", "c"}, *g[2] = {"Drama", "Comedy"};
    assert_int_equal(moe_scorer_set_cat(s, MOE_ALL_ROWS, 0, &u, NULL, 1, &e), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(moe_scorer_set_cat(s, i, 1, &items[i], NULL, 1, &e), 0);
    assert_int_equal(moe_scorer_set_cat(s, 1, 2, g, NULL, 2, &e), 0);
    assert_int_equal(moe_scorer_set_num(s, 2, 0, 55.0f, &e), 0);
    assert_int_equal(moe_scorer_run(s, out, out + 9, &e), 0);
    moe_scorer_free(s);
}

static void test_round_trip(void **st) {
    (void)st;
    const char *archs[] = {
        "{\"type\":\"mmoe\",\"experts\":3,\"gate\":{\"type\":\"topk\",\"k\":2}}",
        "{\"type\":\"ple\",\"experts\":2,\"task_experts\":1,\"levels\":2}",
        "{\"type\":\"home\",\"task_groups\":[0,0,1],\"feature_gate_rank\":2,\"self_gate\":true}"};
    for (int a = 0; a < 3; a++) {
        moe_model *m = make(archs[a], 11 + (uint64_t)a), *l = NULL;
        char dir[128];
        snprintf(dir, sizeof dir, "%s/m%d", g_root, a);
        mkdir(dir, 0755);
        snprintf(dir, sizeof dir, "%s/m%d/1", g_root, a);
        mr_err e;
        assert_int_equal(moe_model_save(m, dir, &e), 0);
        int rc = moe_model_load(&l, dir, &e);
        if (rc) print_message("%s\n", e.msg);
        assert_int_equal(rc, 0);
        assert_int_equal(l->net->n_params, m->net->n_params);
        assert_memory_equal(l->net->params, m->net->params,
                            sizeof(float) * (size_t)m->net->n_params);
        for (int t = 0; t < m->n_tables; t++)
            assert_memory_equal(l->tables[t].data, m->tables[t].data,
                                sizeof(float) * (size_t)(m->tables[t].rows * m->tables[t].dim));
        float s1[12], s2[12];
        score(m, s1);
        /* a loaded model runs its model.json precision (fp32 on oneDNN by
         * default): close to OpenBLAS, bit-equal only on the same path */
        assert_int_equal(l->precision, MOE_PREC_FP32);
        assert_int_equal(l->precision_used, MOE_PREC_FP32);
        score(l, s2);
        for (int i = 0; i < 12; i++)
            assert_float_equal(s1[i], s2[i], 1e-5f * (1.0f + fabsf(s1[i])));
        assert_int_equal(moe_model_set_precision(l, MOE_PREC_OPENBLAS_FP32, &e), 0);
        score(l, s2);
        assert_memory_equal(s1, s2, sizeof s1);
        assert_string_equal(l->tasks[1].label, "rating");
        assert_int_equal(l->net->arch.kind, m->net->arch.kind);
        moe_model_free(l);
        moe_model_free(m);
    }
    char latest[256];
    mr_err e;
    char root[128];
    snprintf(root, sizeof root, "%s/m0", g_root);
    char v7[160];
    snprintf(v7, sizeof v7, "%s/7", root);
    mkdir(v7, 0755); /* no model.json: not a version */
    assert_int_equal(moe_model_latest_version(root, latest, sizeof latest, &e), 0);
    assert_non_null(strstr(latest, "/m0/1"));
}

/* Rewrite dir's weights with tensor `victim` changed by `how`. */
static void damage(const char *dir, const char *victim, int how) {
    char path[256];
    snprintf(path, sizeof path, "%s/weights.safetensors", dir);
    moe_st_file f;
    mr_err e;
    assert_int_equal(moe_st_read(&f, path, &e), 0);
    moe_st_tensor *t = calloc((size_t)f.n + 1, sizeof *t);
    float *bad = calloc(4096, sizeof(float));
    int n = 0;
    for (int i = 0; i < f.n; i++) {
        const moe_st_entry *en = &f.entries[i];
        int is = !strcmp(en->name, victim);
        if (is && how == 0) continue; /* drop it */
        t[n] = (moe_st_tensor){.name = en->name, .ndim = en->ndim, .data = en->data};
        memcpy(t[n].shape, en->shape, sizeof en->shape);
        if (is && how == 1) t[n].shape[0] -= 1; /* reshape */
        if (is && how == 2) {                   /* NaN */
            memcpy(bad, en->data, en->n * sizeof(float));
            bad[0] = 0.0f / 0.0f;
            t[n].data = bad;
        }
        n++;
    }
    if (how == 3)
        t[n++] = (moe_st_tensor){.name = "l9.e0.fc0.w", .ndim = 1, .shape = {1}, .data = bad};
    assert_int_equal(moe_st_write(path, t, n, NULL, 0, &e), 0);
    free(t);
    free(bad);
    moe_st_free(&f);
}

/* MOE_LOAD_STORE_LAZY: a "storage": "store" table keeps no rows in memory
 * but its tensor must still be there with its shape; its values are the
 * store's to check (bulk load), in-memory tables load as usual. */
static void test_lazy_store_tables(void **st) {
    (void)st;
    char base[4096], js[8300], dir[128];
    snprintf(base, sizeof base, k_test_model_fmt, "{\"type\":\"mmoe\"}");
    const char *key = "\"seed2\":9", *p = strstr(base, key); /* the item table */
    assert_non_null(p);
    p += strlen(key);
    snprintf(js, sizeof js, "%.*s,\"storage\":\"store\"%s", (int)(p - base), base, p);
    moe_model *m = NULL, *l = NULL;
    mr_err e;
    int rc = moe_model_from_json(&m, js, 5, &e);
    if (rc) print_message("%s\n%s\n", js, e.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(m->tables[1].storage, MOE_STORAGE_STORE);
    snprintf(dir, sizeof dir, "%s/lazy", g_root);
    assert_int_equal(moe_model_save(m, dir, &e), 0);
    assert_int_equal(moe_model_load_flags(&l, dir, MOE_LOAD_STORE_LAZY, &e), 0);
    assert_null(l->tables[1].data);
    assert_non_null(l->tables[0].data);
    assert_memory_equal(l->tables[0].data, m->tables[0].data, sizeof(float) * 50 * 4);
    moe_model_free(l);
    assert_int_equal(moe_model_load(&l, dir, &e), 0); /* without the flag: every row in memory */
    assert_memory_equal(l->tables[1].data, m->tables[1].data, sizeof(float) * 40 * 3);
    moe_model_free(l);
    damage(dir, "emb.item", 2); /* NaN: the bulk load refuses it, not the lazy load */
    assert_int_equal(moe_model_load_flags(&l, dir, MOE_LOAD_STORE_LAZY, &e), 0);
    moe_model_free(l);
    assert_int_equal(moe_model_load(&l, dir, &e), MR_ECORRUPT);
    assert_int_equal(moe_model_save(m, dir, &e), 0);
    damage(dir, "emb.item", 1); /* a wrong shape fails either way, naming the tensor */
    l = NULL;
    assert_int_equal(moe_model_load_flags(&l, dir, MOE_LOAD_STORE_LAZY, &e), MR_ECORRUPT);
    assert_null(l);
    assert_non_null(strstr(e.msg, "emb.item"));
    moe_model_free(m);
}

static void test_damaged(void **st) {
    (void)st;
    moe_model *m = make("{\"type\":\"cgc\",\"experts\":1,\"task_experts\":1}", 3);
    char dir[128], path[256];
    snprintf(dir, sizeof dir, "%s/bad", g_root);
    const char *victims[] = {"l0.gate1.w", "emb.item", "tower2.fc0.b", "x"};
    const char *msgs[] = {"missing", "shape", "NaN", "not part"};
    for (int how = 0; how < 4; how++) {
        mr_err e;
        assert_int_equal(moe_model_save(m, dir, &e), 0);
        damage(dir, victims[how], how);
        moe_model *l = NULL;
        int rc = moe_model_load(&l, dir, &e);
        print_message("damage %d: %s\n", how, e.msg);
        assert_int_equal(rc, MR_ECORRUPT);
        assert_null(l);
        assert_non_null(strstr(e.msg, how == 3 ? "l9.e0.fc0.w" : victims[how]));
        assert_non_null(strstr(e.msg, msgs[how]));
    }
    /* truncated weights file */
    mr_err e;
    assert_int_equal(moe_model_save(m, dir, &e), 0);
    snprintf(path, sizeof path, "%s/weights.safetensors", dir);
    struct stat sb;
    stat(path, &sb);
    assert_int_equal(truncate(path, sb.st_size - 10), 0);
    moe_model *l = NULL;
    assert_int_equal(moe_model_load(&l, dir, &e), MR_ECORRUPT);
    print_message("truncated: %s\n", e.msg);
    assert_non_null(strstr(e.msg, "tensor '"));
    /* missing directory */
    assert_int_equal(moe_model_load(&l, "/nonexistent/model/1", &e), MR_ENOTFOUND);
    moe_model_free(m);
}

static void test_value_rows(void **st) {
    (void)st;
    moe_model *m = make("{\"type\":\"mmoe\"}", 1);
    uint64_t r1[2], r2[2];
    assert_int_equal(moe_model_value_rows(m, 1, "abc", 3, r1), 2); /* double hashing: 2 rows */
    assert_int_equal(moe_model_value_rows(m, 1, "abc", 3, r2), 2);
    assert_memory_equal(r1, r2, sizeof r1);
    assert_true(r1[0] != r1[1] && r1[0] < 40 && r1[1] < 40);
    assert_int_equal(moe_model_value_rows(m, 0, "abc", 3, r1), 1);
    int numeric;
    assert_int_equal(moe_model_field(m, "price", &numeric), 1);
    assert_int_equal(numeric, 1);
    assert_int_equal(moe_model_field(m, "genre", &numeric), 2);
    assert_int_equal(numeric, 0);
    assert_int_equal(moe_model_field(m, "nope", &numeric), -1);
    assert_int_equal(moe_model_task(m, "dwell"), 2);
    moe_model_free(m);
}

/* Label rules (moe_model_label_rule) and the label of a cell (moe_model_label),
 * both ways: each rule replaces the other, bad specs are refused and change
 * nothing. Tasks: click (binary), like (rating >= 4), dwell (regression). */
static void test_label_rules(void **st) {
    (void)st;
    moe_model *m = make("{\"type\":\"mmoe\"}", 1);
    mr_err e;
    float y = -1;
    /* model.json's rules: like = rating >= 4; click needs 0/1; dwell any number */
    assert_int_equal(moe_model_label(m, 1, "4", 1, 4.0, &y, &e), 0);
    assert_true(y == 1.0f);
    assert_int_equal(moe_model_label(m, 1, "3.99", 1, 3.99, &y, &e), 0);
    assert_true(y == 0.0f);
    assert_int_equal(moe_model_label(m, 0, "2", 1, 2.0, &y, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "--label-threshold click=X"));
    assert_int_equal(moe_model_label(m, 0, "yes", 0, 0, &y, &e), MR_EINVAL);
    assert_non_null(strstr(
        e.msg,
        "label column 'click' is not a number; for text labels pass --label-positive click="));
    assert_int_equal(moe_model_label(m, 2, "12.5", 1, 12.5, &y, &e), 0);
    assert_true(y == 12.5f);
    /* positive rule on click: text labels */
    assert_int_equal(moe_model_label_rule(m, "--label-positive", "click=yes", 0, &e), 0);
    assert_int_equal(moe_model_label(m, 0, "yes", 0, 0, &y, &e), 0);
    assert_true(y == 1.0f);
    assert_int_equal(moe_model_label(m, 0, "no", 0, 0, &y, &e), 0);
    assert_true(y == 0.0f);
    assert_int_equal(moe_model_label(m, 0, "Yes", 0, 0, &y, &e),
                     0); /* exact match, case included */
    assert_true(y == 0.0f);
    /* a threshold replaces it, and the other way round */
    assert_int_equal(moe_model_label_rule(m, "--label-threshold", "click=0.5", 1, &e), 0);
    assert_true(m->tasks[0].has_threshold && !m->tasks[0].has_positive &&
                m->tasks[0].threshold == 0.5f);
    assert_int_equal(moe_model_label(m, 0, "2", 1, 2.0, &y, &e), 0);
    assert_true(y == 1.0f);
    assert_int_equal(moe_model_label_rule(m, "--label-positive", "like=5", 0, &e), 0);
    assert_true(m->tasks[1].has_positive && !m->tasks[1].has_threshold);
    assert_int_equal(moe_model_label(m, 1, "5.0", 1, 5.0, &y, &e),
                     0); /* text equality, not numeric */
    assert_true(y == 0.0f);
    /* refused: each leaves the tasks as they were */
    moe_task before[MOE_MAX_TASKS];
    memcpy(before, m->tasks, sizeof before);
    const char *bad[][2] = {{"click", "expected TASK=VALUE"},
                            {"=1", "expected TASK=VALUE"},
                            {"nope=1", "no task 'nope'"},
                            {"click=", "the value is empty"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(moe_model_label_rule(m, "--label-positive", bad[i][0], 0, &e), MR_EINVAL);
        assert_non_null(strstr(e.msg, bad[i][1]));
    }
    assert_int_equal(moe_model_label_rule(m, "--label-positive", "dwell=1", 0, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "task 'dwell' is not binary"));
    assert_int_equal(moe_model_label_rule(m, "--label-threshold", "click=abc", 1, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "'abc' is not a finite number"));
    assert_int_equal(moe_model_label_rule(m, "--label-threshold", "click=inf", 1, &e), MR_EINVAL);
    assert_int_equal(moe_model_label_rule(m, "--label-threshold", "click=1e39", 1, &e), MR_EINVAL);
    assert_memory_equal(before, m->tasks, sizeof before);
    moe_model_free(m);
}

/* The name -> field hash table at its largest: every field of a full schema
 * (MOE_MAX_FIELDS categorical + MOE_MAX_FIELDS numeric) resolves to its own
 * index and kind; prefixes, extensions and other names do not resolve. */
static void test_field_lookup_full_schema(void **st) {
    (void)st;
    static char js[65536];
    size_t o = (size_t)snprintf(
        js, sizeof js,
        "{\"name\":\"wide\",\"tables\":[{\"name\":\"t\",\"rows\":8,\"dim\":1}],"
        "\"features\":{\"categorical\":[");
    for (int i = 0; i < MOE_MAX_FIELDS; i++)
        o += (size_t)snprintf(js + o, sizeof js - o, "%s{\"name\":\"feature_c%d\",\"table\":\"t\"}",
                              i ? "," : "", i);
    o += (size_t)snprintf(js + o, sizeof js - o, "],\"numeric\":[");
    for (int i = 0; i < MOE_MAX_FIELDS; i++)
        o += (size_t)snprintf(js + o, sizeof js - o, "%s{\"name\":\"feature_n%d\"}", i ? "," : "",
                              i);
    snprintf(js + o, sizeof js - o,
             "]},\"tasks\":[{\"name\":\"y\"}],\"arch\":{\"type\":\"mmoe\",\"experts\":1}}");
    moe_model *m;
    mr_err e;
    int rc = moe_model_from_json(&m, js, 1, &e);
    if (rc) print_message("%s\n", e.msg);
    assert_int_equal(rc, 0);
    for (int i = 0; i < MOE_MAX_FIELDS; i++) {
        char name[32];
        int numeric = -1;
        snprintf(name, sizeof name, "feature_c%d", i);
        assert_int_equal(moe_model_field(m, name, &numeric), i);
        assert_int_equal(numeric, 0);
        snprintf(name, sizeof name, "feature_n%d", i);
        assert_int_equal(moe_model_field(m, name, &numeric), i);
        assert_int_equal(numeric, 1);
        snprintf(name, sizeof name, "feature_x%d", i);
        assert_int_equal(moe_model_field(m, name, &numeric), -1);
    }
    int numeric;
    assert_int_equal(moe_model_field(m, "feature_c", &numeric), -1);
    assert_int_equal(moe_model_field(m, "feature_c1000", &numeric), -1);
    assert_int_equal(moe_model_field(m, "", &numeric), -1);
    moe_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_field_lookup_full_schema),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_damaged),
        cmocka_unit_test(test_lazy_store_tables),
        cmocka_unit_test(test_value_rows),
        cmocka_unit_test(test_label_rules),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
