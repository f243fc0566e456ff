/* test_cli.c — the flag parsers of tools/cli.c: integers and floats at and
 * past both ends of their range, text that is not a number (`x`, `1;5`,
 * `1.5` for an integer), open lower bounds, getopt_long's two errors, the
 * --na list and the reader options it makes. */
#include <getopt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tools/cli.h"

static void test_int_range(void **s) {
    (void)s;
    mr_err e;
    int v = -7;
    assert_int_equal(cli_int("--epochs", "1", 1, 10, &v, &e), 0);
    assert_int_equal(v, 1);
    assert_int_equal(cli_int("--epochs", "10", 1, 10, &v, &e), 0);
    assert_int_equal(v, 10);
    const char *bad[] = {"0", "11", "x", "1;5", "1.5", "", " ", "0x10", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        v = -7;
        assert_int_equal(cli_int("--epochs", bad[i], 1, 10, &v, &e), MR_EINVAL);
        assert_int_equal(v, -7); /* untouched */
        assert_non_null(strstr(e.msg, "--epochs: '"));
        assert_non_null(strstr(e.msg, "is not an integer in [1, 10]"));
    }
    assert_int_equal(cli_int("--epochs", NULL, 1, 10, &v, &e), MR_EINVAL);
    unsigned long long u = 0;
    assert_int_equal(cli_u64("--seed", "18446744073709551615", &u, &e), 0);
    assert_true(u == 18446744073709551615ull);
    assert_int_equal(cli_u64("--seed", "-1", &u, &e), MR_EINVAL);
    assert_string_equal(e.msg, "--seed: '-1' is not an integer >= 0");
}

static void test_float_range(void **s) {
    (void)s;
    mr_err e;
    float f = 0;
    assert_int_equal(cli_float("--lr", "1e-3", 1e-12, 1e3, &f, &e), 0);
    assert_true(f > 0.00099f && f < 0.00101f);
    assert_int_equal(cli_float("--lr", "1e", 1e-12, 1e3, &f, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "--lr: '1e' is not a number in ["));
    assert_int_equal(cli_float("--lr", "nan", 0, 1, &f, &e), MR_EINVAL);
    assert_int_equal(cli_float("--lr", "inf", 0, 1e300, &f, &e), MR_EINVAL);
    /* (0, 1]: 0 is out, 1 is in */
    assert_int_equal(cli_float_gt("--top-p", "0", 0, 1, &f, &e), MR_EINVAL);
    assert_string_equal(e.msg, "--top-p: '0' is not a number in (0, 1]");
    assert_int_equal(cli_float_gt("--top-p", "1.0001", 0, 1, &f, &e), MR_EINVAL);
    assert_int_equal(cli_float_gt("--top-p", "1", 0, 1, &f, &e), 0);
    assert_true(f == 1.0f);
    assert_int_equal(cli_float_gt("--top-p", "1e-9", 0, 1, &f, &e), 0);
}

static void test_getopt_errors(void **s) {
    (void)s;
    mr_err e;
    static const struct option opts[] = {{"epochs", required_argument, 0, 'e'}, {0, 0, 0, 0}};
    char a0[] = "cmd", a1[] = "--bogus", a2[] = "--epochs";
    char *argv1[] = {a0, a1, NULL}, *argv2[] = {a0, a2, NULL};
    optind = 1;
    opterr = 0;
    int c = getopt_long(2, argv1, ":h", opts, NULL);
    assert_int_equal(cli_getopt_error(c, argv1, &e), MR_EINVAL);
    assert_string_equal(e.msg, "unknown option '--bogus'");
    optind = 1;
    c = getopt_long(2, argv2, ":h", opts, NULL);
    assert_int_equal(c, ':');
    assert_int_equal(cli_getopt_error(c, argv2, &e), MR_EINVAL);
    assert_string_equal(e.msg, "--epochs needs a value");
}

static void test_na_list(void **s) {
    (void)s;
    mr_err e;
    char buf[CLI_NA_MAX];
    assert_int_equal(cli_na("--na", "NA,null,-", buf, sizeof buf, &e), 0);
    assert_string_equal(buf, ",NA,null,-"); /* the empty cell stays missing */
    assert_int_equal(cli_na("--na", "", buf, sizeof buf, &e), 0);
    assert_string_equal(buf, ","); /* only the empty cell */
    const char *bad[] = {"NA,", ",NA", "NA,,null", "a\"b"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(cli_na("--na", bad[i], buf, sizeof buf, &e), MR_EINVAL);
        assert_non_null(strstr(e.msg, "--na: "));
    }
    char longw[80];
    memset(longw, 'x', 64);
    longw[64] = 0;
    assert_int_equal(cli_na("--na", longw, buf, sizeof buf, &e), MR_EINVAL);
    longw[63] = 0;
    assert_int_equal(cli_na("--na", longw, buf, sizeof buf, &e), 0);
    char huge[CLI_NA_MAX + 8];
    for (int i = 0; i < CLI_NA_MAX + 6; i += 2) huge[i] = 'a', huge[i + 1] = ',';
    huge[CLI_NA_MAX + 5] = 'a';
    huge[CLI_NA_MAX + 6] = 0;
    assert_int_equal(cli_na("--na", huge, buf, sizeof buf, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "longer than"));
    /* the reader options: the default before any --na */
    char none[CLI_NA_MAX] = "";
    assert_null(cli_csv_opts(none).na);
    assert_int_equal(cli_na("--na", "null", buf, sizeof buf, &e), 0);
    assert_string_equal(cli_csv_opts(buf).na, ",null");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int_range),
        cmocka_unit_test(test_float_range),
        cmocka_unit_test(test_getopt_errors),
        cmocka_unit_test(test_na_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
