/* test_config.c — defaults, JSON overlay, unknown fields and type errors
 * named in the message, range validation (also of the remote experts'
 * settings). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "index/store/behaviour.h"
#include "moe/scorer.h"
#include "moe/sdim_join.h"
#include "server/config.h"

static void test_defaults_are_valid(void **s) {
    (void)s;
    mr_server_config c;
    mr_config_defaults(&c);
    mr_err e;
    assert_int_equal(mr_config_validate(&c, &e), MR_OK);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 50051);
    assert_int_equal(c.max_receive_bytes, 4u << 20);
}

static void test_overlay(void **s) {
    (void)s;
    mr_server_config c;
    mr_config_defaults(&c);
    mr_err e;
    assert_int_equal(mr_config_load_string(&c,
                                           "{\"port\": 0, \"host\": \"0.0.0.0\", "
                                           "\"drain_seconds\": 2.5, \"log_level\": \"warn\"}",
                                           &e),
                     MR_OK);
    assert_int_equal(c.port, 0);
    assert_string_equal(c.host, "0.0.0.0");
    assert_true(c.drain_seconds == 2.5);
    assert_int_equal(c.completion_queues, 2); /* untouched fields keep defaults */
    assert_int_equal(mr_config_validate(&c, &e), MR_OK);
}

/* The drain, overload and TLS fields: defaults, loading, ranges. */
static void test_reliability_fields(void **s) {
    (void)s;
    mr_server_config c;
    mr_config_defaults(&c);
    mr_err e;
    assert_true(c.drain_grace_seconds == 5.0);
    assert_int_equal(c.max_inflight_calls, 1024);
    assert_string_equal(c.tls_cert_file, "");
    assert_int_equal(c.tls_require_client_cert, 0);
    assert_int_equal(c.metrics_tls, 0);
    assert_int_equal(
        mr_config_load_string(&c,
                              "{\"drain_grace_seconds\": 0.25, "
                              "\"max_inflight_calls\": 0, "
                              "\"tls_cert_file\": \"c.pem\", \"tls_key_file\": \"k.pem\", "
                              "\"tls_client_ca_file\": \"ca.pem\", "
                              "\"tls_require_client_cert\": true, \"metrics_tls\": true}",
                              &e),
        MR_OK);
    assert_true(c.drain_grace_seconds == 0.25);
    assert_int_equal(c.max_inflight_calls, 0); /* no bound */
    assert_string_equal(c.tls_client_ca_file, "ca.pem");
    assert_int_equal(c.tls_require_client_cert, 1);
    assert_int_equal(c.metrics_tls, 1);
    assert_int_equal(mr_config_validate(&c, &e), MR_OK);
    c.drain_grace_seconds = -1;
    assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "drain_grace_seconds"));
    c.drain_grace_seconds = 1;
    c.max_inflight_calls = (1 << 20) + 1;
    assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "max_inflight_calls"));
    assert_int_equal(mr_config_load_string(&c, "{\"tls_require_client_cert\": 1}", &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "true or false"));
    /* combinations: the pair goes together; CA, require and metrics_tls need it */
    mr_config_defaults(&c);
    snprintf(c.tls_cert_file, sizeof c.tls_cert_file, "c.pem");
    assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "go together"));
    mr_config_defaults(&c);
    c.metrics_tls = 1;
    assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "'metrics_tls'"));
    mr_config_defaults(&c);
    snprintf(c.tls_cert_file, sizeof c.tls_cert_file, "c.pem");
    snprintf(c.tls_key_file, sizeof c.tls_key_file, "k.pem");
    c.tls_require_client_cert = 1;
    assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "tls_client_ca_file"));
}

static void test_memory_fields(void **s) {
    (void)s;
    mr_server_config c;
    mr_config_defaults(&c);
    mr_err e;
    assert_int_equal(c.store_memtable_bytes, 64u << 20);
    assert_int_equal(c.store_block_cache_bytes, 64u << 20);
    assert_int_equal(c.store_mmap_reads, 1);
    assert_string_equal(c.cache_admission, "always");
    assert_int_equal(c.malloc_arena_max, 2);
    assert_int_equal(c.malloc_mmap_threshold_bytes, 128u << 10);
    assert_int_equal(c.malloc_trim_threshold_bytes, 32u << 20);
    assert_int_equal(mr_config_load_string(&c,
                                           "{\"store_memtable_bytes\": 8388608, "
                                           "\"store_block_cache_bytes\": 16777216, "
                                           "\"store_mmap_reads\": false, "
                                           "\"cache_admission\": \"seen_twice\", "
                                           "\"malloc_arena_max\": 0, "
                                           "\"malloc_mmap_threshold_bytes\": 0, "
                                           "\"malloc_trim_threshold_bytes\": 0}",
                                           &e),
                     MR_OK);
    assert_int_equal(c.malloc_mmap_threshold_bytes, 0);
    assert_int_equal(c.malloc_trim_threshold_bytes, 0); /* glibc's own */
    assert_int_equal(c.store_memtable_bytes, 8u << 20);
    assert_int_equal(c.store_block_cache_bytes, 16u << 20);
    assert_int_equal(c.store_mmap_reads, 0);
    assert_string_equal(c.cache_admission, "seen_twice");
    assert_int_equal(c.malloc_arena_max, 0); /* glibc's own default */
    assert_int_equal(mr_config_validate(&c, &e), MR_OK);
    snprintf(c.cache_admission, sizeof c.cache_admission, "lfu");
    assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "cache_admission"));
    snprintf(c.cache_admission, sizeof c.cache_admission, "always");
    c.store_memtable_bytes = (1u << 20) - 1; /* below 1 MiB */
    assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "store_memtable_bytes"));
    c.store_memtable_bytes = 1u << 20;
    c.store_block_cache_bytes = 0;
    assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "store_block_cache_bytes"));
    c.store_block_cache_bytes = 1u << 20;
    c.malloc_arena_max = -1;
    assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "malloc_arena_max"));
    c.malloc_arena_max = 2;
    c.malloc_mmap_threshold_bytes = (32u << 20) + 1;
    assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "malloc_mmap_threshold_bytes"));
    c.malloc_mmap_threshold_bytes = 0;
    c.malloc_trim_threshold_bytes = ((size_t)1 << 30) + 1;
    assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "malloc_trim_threshold_bytes"));
    c.malloc_trim_threshold_bytes = (size_t)1 << 30;
    assert_int_equal(mr_config_validate(&c, &e), MR_OK);
}

static void test_errors_name_the_field(void **s) {
    (void)s;
    mr_server_config c;
    mr_config_defaults(&c);
    mr_err e;
    assert_int_equal(mr_config_load_string(&c, "{\"prot\": 1}", &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "'prot'"));
    assert_int_equal(mr_config_load_string(&c, "{\"port\": \"x\"}", &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "'port'"));
    assert_int_equal(mr_config_load_string(&c, "{\"port\": -1}", &e), MR_EINVAL);
    assert_int_equal(mr_config_load_string(&c, "{\"host\": 5}", &e), MR_EINVAL);
    assert_int_equal(mr_config_load_string(&c, "[1]", &e), MR_EINVAL);
    assert_int_equal(mr_config_load_string(&c, "{\"port\": 1, \"port\": 2}", &e), MR_EINVAL);
    assert_int_equal(mr_config_load_string(&c, "{bad json", &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "line 1"));
    assert_int_equal(mr_config_load_file(&c, "/nonexistent/moerec.json", &e), MR_ENOTFOUND);
}

static void test_validate_ranges(void **s) {
    (void)s;
    mr_server_config c;
    mr_err e;
    mr_config_defaults(&c);
    c.port = 70000;
    assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "port"));
    mr_config_defaults(&c);
    c.completion_queues = 0;
    assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
    mr_config_defaults(&c); /* an update log needs a consumer name and a store */
    snprintf(c.log_servers, sizeof c.log_servers, "nats://127.0.0.1:4222");
    snprintf(c.data_dir, sizeof c.data_dir, "data");
    assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "log_consumer"));
    snprintf(c.log_consumer, sizeof c.log_consumer, "r1");
    assert_int_equal(mr_config_validate(&c, &e), MR_OK);
    c.data_dir[0] = 0;
    assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "data_dir"));
    mr_config_defaults(&c);
    snprintf(c.log_level, sizeof c.log_level, "loud");
    assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "loud"));
    /* precision: empty (each model's own) or one of moe/dnn.h's names */
    mr_config_defaults(&c);
    assert_string_equal(c.precision, "");
    assert_int_equal(mr_config_load_string(&c, "{\"precision\": \"int8\"}", &e), MR_OK);
    assert_int_equal(mr_config_validate(&c, &e), MR_OK);
    snprintf(c.precision, sizeof c.precision, "fp16");
    assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "'precision'"));
    /* Score runs every candidate in one scorer batch: no more than it holds */
    mr_config_defaults(&c);
    c.max_candidates = MOE_MAX_BATCH;
    assert_int_equal(mr_config_validate(&c, &e), MR_OK);
    c.max_candidates = MOE_MAX_BATCH + 1;
    assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
    assert_non_null(strstr(
        e.msg,
        "max_candidates")); /* Recommend's consumed-items filter: all (default), last (consumed_last_n), none */
    mr_config_defaults(&c);
    assert_string_equal(c.consumed_filter, "all");
    assert_int_equal(c.consumed_last_n, 100);
    assert_int_equal(mr_config_load_string(&c,
                                           "{\"consumed_filter\": \"last\", "
                                           "\"consumed_last_n\": 5}",
                                           &e),
                     MR_OK);
    assert_int_equal(mr_config_validate(&c, &e), MR_OK);
    snprintf(c.consumed_filter, sizeof c.consumed_filter, "some");
    assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "consumed_filter"));
    mr_config_defaults(&c);
    c.consumed_last_n = 0;
    assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "consumed_last_n"));
    /* retrieve_k up to the retrieval limit (issue 15: 5000 in the config works) */
    mr_config_defaults(&c);
    c.retrieve_k = 10000;
    assert_int_equal(mr_config_validate(&c, &e), MR_OK);
    c.retrieve_k = 10001;
    assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
    /* model_poll_s: off by default, 0..86400 s */
    mr_config_defaults(&c);
    assert_int_equal(c.model_poll_s, 0);
    assert_int_equal(mr_config_load_string(&c, "{\"model_poll_s\": 86400}", &e), MR_OK);
    assert_int_equal(mr_config_validate(&c, &e), MR_OK);
    c.model_poll_s = -1;
    assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "model_poll_s"));
}

static void test_load_file(void **s) {
    (void)s;
    char path[] = "/tmp/moerec-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *j = "{\n  \"max_k\": 50,\n  \"calls_per_queue\": 4\n}\n";
    assert_int_equal(write(fd, j, strlen(j)), (ssize_t)strlen(j));
    close(fd);
    mr_server_config c;
    mr_config_defaults(&c);
    mr_err e;
    assert_int_equal(mr_config_load_file(&c, path, &e), MR_OK);
    assert_int_equal(c.max_k, 50);
    assert_int_equal(c.calls_per_queue, 4);
    unlink(path);
}

/* Training (moerec train --sdim-params), the store's behaviour tables and
 * the server's config must agree on SDIM's settings: a model trained with
 * one hasher and served with another scores noise. */
static void test_sdim_defaults_match_training(void **st) {
    (void)st;
    mr_server_config c;
    mr_config_defaults(&c);
    sdim_csv_opts o;
    sdim_csv_opts_init(&o);
    behaviour_config b;
    behaviour_config_init(&b, "item");
    assert_int_equal(c.sdim_m, o.m);
    assert_int_equal(c.sdim_tau, o.tau);
    assert_true((uint64_t)c.sdim_seed == o.seed);
    assert_int_equal(c.sdim_l_max, o.l_max);
    assert_int_equal(c.sdim_short, o.short_n);
    assert_int_equal(b.m, o.m);
    assert_int_equal(b.tau, o.tau);
    assert_true(b.seed == o.seed);
    assert_int_equal(b.l_max, o.l_max);
}

/* The remote experts' settings: the deadline's range, the client
 * certificate with its key, TLS files only with remote_tls. */
static void test_remote_settings(void **st) {
    (void)st;
    mr_server_config c;
    mr_err e = {0};
    const char *bad[][2] = {
        {"{\"remote_deadline_ms\": 0}", "remote_deadline_ms"},
        {"{\"remote_deadline_ms\": 60001}", "[1, 60000]"},
        {"{\"remote_tls\": true, \"remote_tls_cert_file\": \"c.pem\"}", "remote_tls_key_file"},
        {"{\"remote_tls_ca_file\": \"ca.pem\"}", "'remote_tls': true"},
        {"{\"remote_tls_cert_file\": \"c.pem\", \"remote_tls_key_file\": \"k.pem\"}",
         "'remote_tls': true"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mr_config_defaults(&c);
        assert_int_equal(mr_config_load_string(&c, bad[i][0], &e), 0);
        assert_int_equal(mr_config_validate(&c, &e), MR_EINVAL);
        if (!strstr(e.msg, bad[i][1])) fail_msg("%s: %s", bad[i][0], e.msg);
    }
    mr_config_defaults(&c);
    assert_int_equal(c.remote_deadline_ms, 200);
    assert_int_equal(
        mr_config_load_string(&c,
                              "{\"remote_deadline_ms\": 50, \"remote_tls\": true, "
                              "\"remote_tls_ca_file\": \"ca.pem\", \"remote_tls_cert_file\": "
                              "\"c.pem\", \"remote_tls_key_file\": \"k.pem\", "
                              "\"remote_token_file\": \"t\"}",
                              &e),
        0);
    assert_int_equal(mr_config_validate(&c, &e), 0);
    assert_int_equal(c.remote_deadline_ms, 50);
    assert_int_equal(c.remote_tls, 1);
    assert_string_equal(c.remote_token_file, "t");
    assert_int_equal(mr_config_load_string(&c, "{\"remote_tls\": 3}", &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "remote_tls"));
}

int main(void) {
    const struct CMUnitTest t[] = {cmocka_unit_test(test_defaults_are_valid),
                                   cmocka_unit_test(test_overlay),
                                   cmocka_unit_test(test_errors_name_the_field),
                                   cmocka_unit_test(test_reliability_fields),
                                   cmocka_unit_test(test_memory_fields),
                                   cmocka_unit_test(test_validate_ranges),
                                   cmocka_unit_test(test_load_file),
                                   cmocka_unit_test(test_sdim_defaults_match_training),
                                   cmocka_unit_test(test_remote_settings)};
    return cmocka_run_group_tests(t, NULL, NULL);
}
