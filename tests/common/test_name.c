/* test_name.c — the name rule (common/name.c): every byte value against
 * the character set, the length bound at max-1 and max, empty and NULL,
 * the messages, sanitize producing names the check accepts, and the
 * file-name rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/name.h"

/* Each of the 255 non-NUL bytes, alone and inside a name: exactly the 65
 * of [A-Za-z0-9_.-] pass. */
static void test_character_set(void **s) {
    (void)s;
    const char *set = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-";
    int ok = 0;
    for (int c = 1; c < 256; c++) {
        int want = strchr(set, c) != NULL;
        char one[2] = {(char)c, 0}, mid[4] = {'a', (char)c, 'b', 0};
        assert_int_equal(mr_name_char_ok(c), want);
        assert_int_equal(mr_name_ok(one, 64), want);
        assert_int_equal(mr_name_ok(mid, 64), want);
        assert_int_equal(mr_name_check("name", mid, 64, NULL), want ? 0 : MR_EINVAL);
        ok += want;
    }
    assert_int_equal(ok, 65);
    assert_true(mr_name_ok("genre_action-1.v2", 64));
    assert_true(mr_name_ok("..", 64)); /* dots are plain characters of a name */
}

static void test_length_and_empty(void **s) {
    (void)s;
    char buf[49];
    memset(buf, 'x', 48);
    buf[48] = 0;
    mr_err e;
    assert_int_equal(mr_name_check("table name", buf, 48, &e), MR_EINVAL); /* 48 bytes */
    assert_non_null(strstr(e.msg, "longer than 47 bytes"));
    buf[47] = 0;
    assert_int_equal(mr_name_check("table name", buf, 48, &e), 0); /* 47 bytes */
    assert_int_equal(mr_name_check("table name", buf, 47, &e), MR_EINVAL);
    assert_int_equal(mr_name_check("table name", "", 48, &e), MR_EINVAL);
    assert_string_equal(e.msg, "table name is empty");
    assert_int_equal(mr_name_check("retriever name", NULL, 64, &e), MR_EINVAL);
    assert_string_equal(e.msg, "retriever name is empty");
    assert_false(mr_name_ok(NULL, 64));
    assert_false(mr_name_ok("", 64));
}

static void test_message_names_the_character(void **s) {
    (void)s;
    mr_err e;
    assert_int_equal(mr_name_check("retriever name", "ab/cd", 64, &e), MR_EINVAL);
    assert_string_equal(e.msg, "retriever name 'ab/cd' has a bad character at 2 (allowed: letters, "
                               "digits, _ . -)");
    assert_int_equal(mr_name_check("table name", "caf\xc3\xa9", 48, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "at 3"));
}

static void test_sanitize(void **s) {
    (void)s;
    char a[] = "genre_sci fi/noir", b[] = "ok.name-1", c[] = "\xc3\xa9t\xc3\xa9";
    mr_name_sanitize(a);
    mr_name_sanitize(b);
    mr_name_sanitize(c);
    assert_string_equal(a, "genre_sci_fi_noir");
    assert_string_equal(b, "ok.name-1");
    assert_string_equal(c, "__t__");
    assert_true(mr_name_ok(a, 64) && mr_name_ok(b, 64) && mr_name_ok(c, 64));
}

/* The file-name rule: anything but a slash, "." and ".." and the length
 * bound; the name rule's characters are not required. */
static void test_file_name(void **s) {
    (void)s;
    assert_true(mr_file_name_ok("items.faiss", 96));
    assert_true(mr_file_name_ok("genre map (v2).bin", 96));
    assert_true(mr_file_name_ok("...", 96));
    assert_true(mr_file_name_ok(".hidden", 96));
    const char *bad[] = {"", ".", "..", "a/b", "/abs", "dir/", "../up"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) assert_false(mr_file_name_ok(bad[i], 96));
    assert_false(mr_file_name_ok(NULL, 96));
    assert_true(mr_file_name_ok("abc", 4));
    assert_false(mr_file_name_ok("abcd", 4));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_character_set),
        cmocka_unit_test(test_length_and_empty),
        cmocka_unit_test(test_message_names_the_character),
        cmocka_unit_test(test_sanitize),
        cmocka_unit_test(test_file_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
