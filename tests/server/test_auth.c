/* test_auth.c — token file parsing and the per-call check: health open,
 * Recommender needs any token, Admin an admin token; malformed headers,
 * wrong tokens and a same-length near miss are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/auth.h"

static char *write_tmp(const char *text) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/moerec-auth-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static int check(const mr_auth *a, const char *method, const char *hdr) {
    mr_err e;
    return mr_auth_check(a, method, hdr, hdr ? strlen(hdr) : 0, &e);
}

static void test_roles(void **s) {
    (void)s;
    char *p = write_tmp(
        "# services\nservice-token-0123456789\n\nadmin-token-abcdefghijkl admin  # ops\n");
    mr_auth *a;
    mr_err e;
    assert_int_equal(mr_auth_load(&a, p, &e), MR_OK);
    unlink(p);
    const char *rec = "/moerec.v1.Recommender/Score", *adm = "/moerec.v1.Admin/Reload";
    assert_int_equal(check(a, "/grpc.health.v1.Health/Check", NULL), MR_OK);
    assert_int_equal(check(a, rec, NULL), MR_EUNAUTH);
    assert_int_equal(check(a, rec, "Bearer service-token-0123456789"), MR_OK);
    assert_int_equal(check(a, rec, "bearer service-token-0123456789"), MR_OK);
    assert_int_equal(check(a, rec, "Bearer admin-token-abcdefghijkl"), MR_OK);
    assert_int_equal(check(a, adm, "Bearer admin-token-abcdefghijkl"), MR_OK);
    assert_int_equal(check(a, adm, "Bearer service-token-0123456789"), MR_EPERM);
    assert_int_equal(check(a, rec, "Bearer service-token-0123456788"), MR_EUNAUTH);  /* near miss */
    assert_int_equal(check(a, rec, "Bearer service-token-01234567890"), MR_EUNAUTH); /* longer */
    assert_int_equal(check(a, rec, "service-token-0123456789"), MR_EUNAUTH);         /* no scheme */
    assert_int_equal(check(a, rec, "Bearer "), MR_EUNAUTH);
    assert_int_equal(mr_auth_check(a, rec, "Bearer service-token-0123456789", 10, &e), MR_EUNAUTH);
    assert_int_equal(mr_err_grpc_code(MR_EUNAUTH), 16);
    mr_auth_free(a);
    assert_int_equal(check(NULL, adm, NULL), MR_OK); /* auth off */
}

/* A '#' inside a token is part of it (never a shorter, weaker token); a
 * '#' at the start of a word starts a comment. */
static void test_hash_in_token(void **s) {
    (void)s;
    char *p = write_tmp("abcdefghijklmnop#secret-part admin #ops\n");
    mr_auth *a;
    mr_err e;
    assert_int_equal(mr_auth_load(&a, p, &e), MR_OK);
    unlink(p);
    const char *adm = "/moerec.v1.Admin/Reload";
    assert_int_equal(check(a, adm, "Bearer abcdefghijklmnop"), MR_EUNAUTH);
    assert_int_equal(check(a, adm, "Bearer abcdefghijklmnop#secret-part"), MR_OK);
    mr_auth_free(a);
}

static void test_bad_files(void **s) {
    (void)s;
    mr_auth *a;
    mr_err e;
    assert_int_equal(mr_auth_load(&a, "/nonexistent/tokens", &e), MR_ENOTFOUND);
    char *p = write_tmp("short\n");
    assert_int_equal(mr_auth_load(&a, p, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, ":1: a token must be"));
    unlink(p);
    p = write_tmp("a-long-enough-token-1234 root\n");
    assert_int_equal(mr_auth_load(&a, p, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "unknown role 'root'"));
    unlink(p);
    p = write_tmp("a-long-enough-token-1234 admin extra\n");
    assert_int_equal(mr_auth_load(&a, p, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, ":1: expected '<token> [admin]'"));
    unlink(p);
    /* a comment longer than the line buffer: its tail is not a token */
    char big[1500] = "# ";
    memset(big + 2, 'c', 1100);
    snprintf(big + 1102, sizeof big - 1102,
             " tail-of-the-comment-9999\nservice-token-0123456789\n");
    p = write_tmp(big);
    assert_int_equal(mr_auth_load(&a, p, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, ":1: line longer than"));
    unlink(p);
    p = write_tmp("# nothing\n\n");
    assert_int_equal(mr_auth_load(&a, p, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "no token"));
    unlink(p);
}

int main(void) {
    const struct CMUnitTest t[] = {cmocka_unit_test(test_roles), cmocka_unit_test(test_bad_files),
                                   cmocka_unit_test(test_hash_in_token)};
    return cmocka_run_group_tests(t, NULL, NULL);
}
