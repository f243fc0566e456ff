/* test_error.c — status codes map to gRPC codes; messages format and wrap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"

static void test_codes_are_negated_grpc(void **s) {
    (void)s;
    assert_int_equal(mr_err_grpc_code(MR_OK), 0);
    assert_int_equal(mr_err_grpc_code(MR_EINVAL), 3);
    assert_int_equal(mr_err_grpc_code(MR_ENOTFOUND), 5);
    assert_int_equal(mr_err_grpc_code(MR_ENOMEM), 8);
    assert_int_equal(mr_err_grpc_code(MR_EUNIMPL), 12);
    assert_int_equal(mr_err_grpc_code(MR_ECORRUPT), 15);
    assert_int_equal(mr_err_grpc_code(-99), 2); /* out of range -> UNKNOWN */
    assert_string_equal(mr_err_name(MR_EINVAL), "INVALID_ARGUMENT");
    assert_string_equal(mr_err_name(MR_ECORRUPT), "DATA_LOSS");
}

static void test_set_and_wrap(void **s) {
    (void)s;
    mr_err e;
    mr_err_clear(&e);
    assert_int_equal(e.code, MR_OK);
    assert_string_equal(e.msg, "");
    assert_int_equal(mr_err_set(&e, MR_EINVAL, "bad %s %d", "dim", 7), MR_EINVAL);
    assert_string_equal(e.msg, "bad dim 7");
    assert_int_equal(mr_err_wrap(&e, "table %s", "users"), MR_EINVAL);
    assert_string_equal(e.msg, "table users: bad dim 7");
    assert_int_equal(mr_err_set(NULL, MR_ENOMEM, "ignored"), MR_ENOMEM); /* NULL is allowed */
    /* wrapping with no mr_err still returns the failure being wrapped */
    assert_int_equal(mr_err_wrap(NULL, "context"), MR_ENOMEM);
}

static void test_long_messages_truncate(void **s) {
    (void)s;
    mr_err e;
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    mr_err_set(&e, MR_EINVAL, "%s", big);
    assert_int_equal(strlen(e.msg), MR_ERR_MSG_MAX - 1);
    mr_err_wrap(&e, "%s", big);
    assert_int_equal(strlen(e.msg), MR_ERR_MSG_MAX - 1);
    assert_int_equal(e.msg[MR_ERR_MSG_MAX - 3], ':');
}

int main(void) {
    const struct CMUnitTest t[] = {cmocka_unit_test(test_codes_are_negated_grpc),
                                   cmocka_unit_test(test_set_and_wrap),
                                   cmocka_unit_test(test_long_messages_truncate)};
    return cmocka_run_group_tests(t, NULL, NULL);
}
