/* test_tls.c — the TLS certificate store: config combinations that are
 * refused, files checked at create and on reload (unparsable PEM, a key
 * that does not match, a missing file), a failed reload keeping the pair
 * in use, a good one replacing it. Keys and certificates are made with the
 * openssl command in a temp dir. (Handshakes: tests/integration/test_tls.py.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/tls.h"

static char dir[64];

static void sh(const char *fmt, const char *a) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, fmt, a, a, a, a);
    assert_int_equal(system(cmd), 0);
}

/* dir/NAME.pem + dir/NAME.key: a self-signed EC certificate. */
static void make_pair(const char *name) {
    char base[128];
    snprintf(base, sizeof base, "%s/%s", dir, name);
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout %s.key "
       "-out %s.pem -days 1 -subj /CN=localhost 2>/dev/null",
       base);
}

static const char *path(const char *name) {
    static char p[4][128];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof p[i], "%s/%s", dir, name);
    return p[i];
}

static void copy(const char *from, const char *to) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp %s %s", path(from), path(to));
    assert_int_equal(system(cmd), 0);
}

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/moerec-tls-XXXXXX");
    assert_non_null(mkdtemp(dir));
    make_pair("a");
    make_pair("b");
    FILE *f = fopen(path("junk.pem"), "w");
    fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    sh("rm -rf %s", dir);
    return 0;
}

static void cfg_with(mr_server_config *c, const char *cert, const char *key, const char *ca) {
    mr_config_defaults(c);
    snprintf(c->tls_cert_file, sizeof c->tls_cert_file, "%s", cert ? path(cert) : "");
    snprintf(c->tls_key_file, sizeof c->tls_key_file, "%s", key ? path(key) : "");
    snprintf(c->tls_client_ca_file, sizeof c->tls_client_ca_file, "%s", ca ? path(ca) : "");
}

static void test_off_and_refused_combinations(void **state) {
    (void)state;
    mr_server_config c;
    mr_tls *t = (mr_tls *)1;
    mr_err e;
    cfg_with(&c, NULL, NULL, NULL);
    assert_int_equal(mr_tls_create(&t, &c, &e), MR_OK);
    assert_null(t); /* off */
    cfg_with(&c, "a.pem", NULL, NULL);
    assert_int_equal(mr_tls_create(&t, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "go together"));
    cfg_with(&c, "a.pem", "a.key", NULL);
    c.tls_require_client_cert = 1;
    assert_int_equal(mr_tls_create(&t, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "tls_client_ca_file"));
    cfg_with(&c, NULL, NULL, NULL);
    c.metrics_tls = 1;
    assert_int_equal(mr_tls_create(&t, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "metrics_tls"));
}

static void test_files_are_checked(void **state) {
    (void)state;
    mr_server_config c;
    mr_tls *t;
    mr_err e;
    cfg_with(&c, "a.pem", "b.key", NULL);
    assert_int_equal(mr_tls_create(&t, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "does not match"));
    cfg_with(&c, "junk.pem", "a.key", NULL);
    assert_int_equal(mr_tls_create(&t, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "tls_cert_file"));
    cfg_with(&c, "a.pem", "a.key", "junk.pem");
    assert_int_equal(mr_tls_create(&t, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "tls_client_ca_file"));
    cfg_with(&c, "missing.pem", "a.key", NULL);
    assert_int_equal(mr_tls_create(&t, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "cannot open"));
    cfg_with(&c, "a.pem", "a.key", "b.pem"); /* a client CA that parses */
    assert_int_equal(mr_tls_create(&t, &c, &e), MR_OK);
    assert_non_null(t);
    mr_tls_free(t);
}

static char *slurp(const char *name) {
    FILE *f = fopen(path(name), "rb");
    assert_non_null(f);
    char *buf = calloc(1, 65536);
    assert_int_equal(ferror(f), 0);
    size_t n = fread(buf, 1, 65535, f);
    assert_true(n > 0);
    fclose(f);
    return buf;
}

static void assert_pair_is(mr_tls *t, const char *name) {
    char *cert, *key, pem[16], keyf[16];
    mr_err e;
    assert_int_equal(mr_tls_pem(t, &cert, &key, &e), MR_OK);
    snprintf(pem, sizeof pem, "%s.pem", name);
    snprintf(keyf, sizeof keyf, "%s.key", name);
    char *want_cert = slurp(pem), *want_key = slurp(keyf);
    assert_string_equal(cert, want_cert);
    assert_string_equal(key, want_key);
    free(want_cert);
    free(want_key);
    free(cert);
    free(key);
}

static void test_reload_keeps_or_replaces(void **state) {
    (void)state;
    copy("a.pem", "live.pem");
    copy("a.key", "live.key");
    mr_server_config c;
    mr_tls *t;
    mr_err e;
    cfg_with(&c, "live.pem", "live.key", NULL);
    assert_int_equal(mr_tls_create(&t, &c, &e), MR_OK);
    assert_pair_is(t, "a");
    grpc_server_credentials *creds = mr_tls_credentials(t);
    assert_non_null(creds);
    grpc_server_credentials_release(creds);
    copy("b.pem", "live.pem"); /* half a rotation: b's certificate, a's key */
    assert_int_equal(mr_tls_reload(t, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "does not match"));
    assert_pair_is(t, "a"); /* unchanged */
    copy("b.key", "live.key");
    assert_int_equal(mr_tls_reload(t, &e), MR_OK);
    assert_pair_is(t, "b");
    unlink(path("live.key"));
    assert_int_equal(mr_tls_reload(t, &e), MR_EINVAL);
    assert_pair_is(t, "b");
    mr_tls_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_and_refused_combinations),
        cmocka_unit_test(test_files_are_checked),
        cmocka_unit_test(test_reload_keeps_or_replaces),
    };
    return cmocka_run_group_tests_name("server_tls", tests, setup, teardown);
}
