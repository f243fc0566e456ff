/* test_parity.c — moerec's forward (moe/net_pass.c through the scorer)
 * against an independent numpy implementation (tests/moe/parity.py, run
 * with /usr/bin/python3) that reads the same model.json and
 * weights.safetensors: MMoE with top-k, 3-level PLE with top-p + null +
 * always-on experts, and HoME (normalised Swish experts, task groups,
 * feature-gate, self-gate). Tower outputs must agree within 1e-5 relative.
 * Skipped (not failed) only when /usr/bin/python3 has no numpy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "common/rng.h"
#include "common/tensor.h"
#include "moe/scorer.h"
#include "testmodel.h"

static char g_dir[64];

static int setup(void **st) {
    (void)st;
    snprintf(g_dir, sizeof g_dir, "/tmp/moe_parity_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **st) {
    (void)st;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_f32(const char *name, const float *v, size_t n) {
    char p[160];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(v, sizeof(float), n, f), n);
    fclose(f);
}

static void check(const char *arch, uint64_t seed) {
    enum { N = 64 };
    if (system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0) {
        print_message("numpy missing for /usr/bin/python3: skipped\n");
        skip();
    }
    char js[4096];
    snprintf(js, sizeof js, k_test_model_fmt, arch);
    moe_model *m;
    mr_err e;
    assert_int_equal(moe_model_from_json(&m, js, seed, &e), 0);
    /* larger-than-init weights so gates are decisive and nothing is ~0 */
    mr_rng g;
    mr_rng_seed(&g, seed);
    mr_rng_fill_normal(&g, m->net->params, m->net->n_params, 0.4f);
    assert_int_equal(moe_model_save(m, g_dir, &e), 0);
    moe_scorer *s;
    assert_int_equal(moe_scorer_create(&s, m, &e), 0);
    assert_int_equal(moe_scorer_begin(s, N, &e), 0);
    mr_rng_fill_normal(&g, moe_scorer_input(s), (long)N * m->in_dim, 1.0f);
    float tasks[N * 3], out[3 * N];
    assert_int_equal(moe_scorer_run(s, tasks, NULL, &e), 0);
    /* raw tower outputs (logits) of the same input, and the scorer's
     * probabilities must be their sigmoid */
    moe_pass p;
    moe_pass_init(&p);
    assert_int_equal(moe_net_forward(&p, m->net, moe_scorer_input(s), N, 0, NULL, &e), 0);
    for (int k = 0; k < 3; k++)
        for (int r = 0; r < N; r++) {
            out[k * N + r] = p.logit[k][r];
            float want = m->tasks[k].kind == MOE_TASK_BINARY ? 1.0f / (1.0f + expf(-p.logit[k][r]))
                                                             : p.logit[k][r];
            assert_true(fabsf(tasks[r * 3 + k] - want) < 1e-6f);
        }
    moe_pass_free(&p);
    write_f32("x.f32", moe_scorer_input(s), (size_t)N * (size_t)m->in_dim);
    write_f32("out.f32", out, 3 * N);
    char cmd[512];
    const char *src = getenv("MOEREC_SOURCE_DIR");
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/moe/parity.py %s --rtol 1e-5",
             src ? src : ".", g_dir);
    int rc = system(cmd);
    moe_scorer_free(s);
    moe_model_free(m);
    assert_int_equal(rc, 0);
}

static void test_mmoe(void **st) {
    (void)st;
    check("{\"type\":\"mmoe\",\"experts\":4,\"expert_hidden\":[16,8],\"tower_hidden\":[8],"
          "\"gate\":{\"type\":\"topk\",\"k\":2}}",
          1);
}

static void test_ple(void **st) {
    (void)st;
    check("{\"type\":\"ple\",\"levels\":3,\"experts\":3,\"task_experts\":2,\"expert_hidden\":[12],"
          "\"gate\":{\"type\":\"topp\",\"p\":0.4,\"null_experts\":1,\"always_on\":1}}",
          2);
}

static void test_home(void **st) {
    (void)st;
    check("{\"type\":\"home\",\"task_groups\":[0,0,1],\"experts\":2,\"task_experts\":2,"
          "\"expert_hidden\":[14],\"feature_gate_rank\":3,\"self_gate\":true}",
          3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mmoe),
        cmocka_unit_test(test_ple),
        cmocka_unit_test(test_home),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
