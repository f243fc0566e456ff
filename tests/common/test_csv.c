/* test_csv.c — every rule of the CSV/TSV reader (common/csv.h): header,
 * quoting, BOM, CRLF, blank lines, delimiter choice, missing values,
 * numeric parsing, cell counts, line and record limits, error positions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/csv.h"

/* A reader over text (a memory stream named name). */
static FILE *g_f;
static int open_text(mr_csv **c, const char *name, const char *text, const mr_csv_opts *o,
                     mr_err *e) {
    if (g_f) fclose(g_f);
    g_f = fmemopen((void *)text, strlen(text), "r");
    assert_non_null(g_f);
    mr_err_clear(e);
    return mr_csv_open_stream(c, g_f, name, o, e);
}

static void test_header_and_rows(void **s) {
    (void)s;
    mr_csv *c;
    mr_err e;
    assert_int_equal(open_text(&c, "t", "a,b,c\n1,2,3\n4,5,6\n", NULL, &e), 0);
    assert_int_equal(mr_csv_ncols(c), 3);
    assert_string_equal(mr_csv_header(c, 1), "b");
    assert_int_equal(mr_csv_col(c, "c"), 2);
    assert_int_equal(mr_csv_col(c, "z"), -1);
    int col;
    assert_int_equal(mr_csv_need(c, "z", &col, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "no column 'z' (header: a,b,c)"));
    assert_int_equal(mr_csv_next(c, &e), 1);
    assert_string_equal(mr_csv_cell(c, 0), "1");
    assert_string_equal(mr_csv_cell(c, 2), "3");
    assert_int_equal(mr_csv_line(c), 2);
    assert_int_equal(mr_csv_next(c, &e), 1);
    assert_string_equal(mr_csv_cell(c, 1), "5");
    assert_int_equal(mr_csv_cell_len(c, 1), 1);
    assert_int_equal(mr_csv_line(c), 3);
    assert_int_equal(mr_csv_next(c, &e), 0);
    assert_int_equal(mr_csv_next(c, &e), 0); /* stays at the end */
    mr_csv_close(c);
}

static void test_empty_input_is_an_error(void **s) {
    (void)s;
    mr_csv *c;
    mr_err e;
    assert_int_equal(open_text(&c, "t", "", NULL, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "empty"));
    assert_int_equal(open_text(&c, "t", "\n\n", NULL, &e), MR_EINVAL);
}

static void test_rfc4180_quotes(void **s) {
    (void)s;
    mr_csv *c;
    mr_err e;
    assert_int_equal(open_text(&c, "t",
                               "id,text\n1,\"a,b\"\n2,\"say \"\"hi\"\"\"\n3,\"two\nlines\"\n4,x\n",
                               NULL, &e),
                     0);
    assert_int_equal(mr_csv_next(c, &e), 1);
    assert_string_equal(mr_csv_cell(c, 1), "a,b");
    assert_int_equal(mr_csv_next(c, &e), 1);
    assert_string_equal(mr_csv_cell(c, 1), "say \"hi\"");
    assert_int_equal(mr_csv_next(c, &e), 1);
    assert_string_equal(mr_csv_cell(c, 1), "two\nlines");
    assert_int_equal(mr_csv_line(c), 4);
    assert_int_equal(mr_csv_next(c, &e), 1);
    assert_int_equal(mr_csv_line(c), 6); /* the quoted line break counted */
    assert_string_equal(mr_csv_cell(c, 1), "x");
    mr_csv_close(c);
}

static void test_bad_quotes_name_the_line(void **s) {
    (void)s;
    mr_csv *c;
    mr_err e;
    const char *bad[] = {"a,b\n1,x\"y\n", "a,b\n1,\"x\"y\n"};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(open_text(&c, "f.csv", bad[i], NULL, &e), 0);
        assert_int_equal(mr_csv_next(c, &e), MR_EINVAL);
        assert_non_null(strstr(e.msg, "f.csv:2: bad quotes in cell 2"));
        mr_csv_close(c);
    }
    assert_int_equal(open_text(&c, "f.csv", "a,b\n1,2\n3,\"open\n", NULL, &e), 0);
    assert_int_equal(mr_csv_next(c, &e), 1);
    assert_int_equal(mr_csv_next(c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "unterminated quoted cell"));
    assert_non_null(strstr(e.msg, "line 3"));
    mr_csv_close(c);
}

static void test_bom_crlf_blank_lines_no_trim(void **s) {
    (void)s;
    mr_csv *c;
    mr_err e;
    assert_int_equal(
        open_text(&c, "t", "\xef\xbb\xbfuser,v\r\n\r\n u ,1\r\n\nx,\"2\"\r\nlast,3", NULL, &e), 0);
    assert_string_equal(mr_csv_header(c, 0), "user"); /* BOM gone */
    assert_string_equal(mr_csv_header(c, 1), "v");    /* CR gone */
    assert_int_equal(mr_csv_next(c, &e), 1);
    assert_string_equal(mr_csv_cell(c, 0), " u "); /* never trimmed */
    assert_int_equal(mr_csv_line(c), 3);
    assert_int_equal(mr_csv_next(c, &e), 1);
    assert_string_equal(mr_csv_cell(c, 1), "2");
    assert_int_equal(mr_csv_line(c), 5);
    assert_int_equal(mr_csv_next(c, &e), 1); /* no final line end */
    assert_string_equal(mr_csv_cell(c, 1), "3");
    assert_int_equal(mr_csv_next(c, &e), 0);
    mr_csv_close(c);
}

static void test_delimiter_choice(void **s) {
    (void)s;
    mr_csv *c;
    mr_err e;
    /* sniffed: a tab in the header */
    assert_int_equal(open_text(&c, "data", "a\tb\n1,5\t\"x\ty\"\n", NULL, &e), 0);
    assert_int_equal(mr_csv_delim(c), '\t');
    assert_int_equal(mr_csv_next(c, &e), 1);
    assert_string_equal(mr_csv_cell(c, 0), "1,5");
    assert_string_equal(mr_csv_cell(c, 1), "x\ty"); /* quotes hold in TSV too */
    mr_csv_close(c);
    /* by name: .tsv is tab even without one in line 1, .csv is comma */
    assert_int_equal(open_text(&c, "x.TSV", "a\n1\n", NULL, &e), 0);
    assert_int_equal(mr_csv_delim(c), '\t');
    mr_csv_close(c);
    assert_int_equal(open_text(&c, "x.csv", "a\tb,c\n1\t2,3\n", NULL, &e), 0);
    assert_int_equal(mr_csv_delim(c), ',');
    assert_int_equal(mr_csv_ncols(c), 2);
    mr_csv_close(c);
    /* by flag, over the name */
    mr_csv_opts o = {.delim = '\t'};
    assert_int_equal(open_text(&c, "x.csv", "a,b\tc\n", &o, &e), 0);
    assert_int_equal(mr_csv_ncols(c), 2);
    assert_string_equal(mr_csv_header(c, 0), "a,b");
    mr_csv_close(c);
    o.delim = ';';
    assert_int_equal(open_text(&c, "x.csv", "a\n", &o, &e), MR_EINVAL);
}

static void test_cell_count_must_match(void **s) {
    (void)s;
    mr_csv *c;
    mr_err e;
    assert_int_equal(open_text(&c, "f", "a,b\n1,2\n\n1,2,3\n", NULL, &e), 0);
    assert_int_equal(mr_csv_next(c, &e), 1);
    assert_int_equal(mr_csv_next(c, &e), MR_EINVAL);
    assert_string_equal(e.msg, "f:4: 3 cells, the header has 2");
    mr_csv_close(c);
    mr_csv_opts o = {.max_cols = 2};
    assert_int_equal(open_text(&c, "f", "a,b,c\n", &o, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "more than 2 columns"));
}

static void test_line_and_record_limits(void **s) {
    (void)s;
    mr_csv *c;
    mr_err e;
    mr_csv_opts o = {.max_line = 16};
    assert_int_equal(open_text(&c, "f", "a,b\n1,2\n123456789,1234567890\n", &o, &e), 0);
    assert_int_equal(mr_csv_next(c, &e), 1);
    assert_int_equal(mr_csv_next(c, &e), MR_EINVAL);
    assert_string_equal(e.msg, "f:3: line longer than 16 bytes");
    mr_csv_close(c);
    /* exactly the limit is fine */
    assert_int_equal(open_text(&c, "f", "a,b\n1234567,12345678\n", &o, &e), 0);
    assert_int_equal(mr_csv_next(c, &e), 1);
    assert_string_equal(mr_csv_cell(c, 1), "12345678");
    mr_csv_close(c);
    /* a quoted cell spanning lines is bounded as a whole */
    assert_int_equal(open_text(&c, "f", "a\n\"12345\n12345\n12345\n12345\n\"\n", &o, &e), 0);
    assert_int_equal(mr_csv_next(c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "record longer than 16 bytes"));
    mr_csv_close(c);
    /* a bare CR inside a line is refused, not split into two records */
    assert_int_equal(open_text(&c, "f", "a\nx\ry\n", NULL, &e), 0);
    assert_int_equal(mr_csv_next(c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "f:2: a carriage return"));
    mr_csv_close(c);
}

static void test_missing_values(void **s) {
    (void)s;
    mr_csv *c;
    mr_err e;
    double v = 7;
    assert_int_equal(open_text(&c, "f", "x,y,z,w\n,NA,\"\",null\n", NULL, &e), 0);
    assert_int_equal(mr_csv_next(c, &e), 1);
    assert_int_equal(mr_csv_double(c, 0, &v, &e), 1);
    assert_int_equal(mr_csv_double(c, 1, &v, &e), 1);
    assert_int_equal(mr_csv_double(c, 2, &v, &e), 1);
    assert_true(v == 7);                                      /* untouched */
    assert_int_equal(mr_csv_double(c, 3, &v, &e), MR_EINVAL); /* not in the default list */
    int64_t i;
    assert_int_equal(mr_csv_i64(c, 1, &i, &e), 1);
    mr_csv_close(c);
    /* a configured list replaces the default */
    mr_csv_opts o = {.na = "null,-"};
    assert_int_equal(open_text(&c, "f", "x,y,z\nnull,-,NA\n", &o, &e), 0);
    assert_int_equal(mr_csv_next(c, &e), 1);
    assert_int_equal(mr_csv_double(c, 0, &v, &e), 1);
    assert_int_equal(mr_csv_double(c, 1, &v, &e), 1);
    assert_int_equal(mr_csv_double(c, 2, &v, &e), MR_EINVAL);
    assert_true(mr_csv_is_missing(c, "null"));
    assert_false(mr_csv_is_missing(c, ""));
    mr_csv_close(c);
}

static void test_numbers_one_rule(void **s) {
    (void)s;
    mr_csv *c;
    mr_err e;
    assert_int_equal(
        open_text(&c, "in.csv", "a,b,c,d,e,f,g,h\n1.5, -2 ,1;5,abc,nan,1e40,0x10,inf\n", NULL, &e),
        0);
    assert_int_equal(mr_csv_next(c, &e), 1);
    double d;
    float f;
    assert_int_equal(mr_csv_double(c, 0, &d, &e), 0);
    assert_true(d == 1.5);
    assert_int_equal(mr_csv_float(c, 1, &f, &e), 0); /* surrounding blanks allowed in numbers */
    assert_true(f == -2.0f);
    assert_int_equal(mr_csv_double(c, 2, &d, &e), MR_EINVAL);
    assert_string_equal(e.msg, "in.csv:2: column 'c' (3): '1;5' is not a finite number");
    assert_int_equal(mr_csv_double(c, 3, &d, &e), MR_EINVAL);
    assert_string_equal(e.msg, "in.csv:2: column 'd' (4): 'abc' is not a finite number");
    assert_int_equal(mr_csv_double(c, 4, &d, &e), MR_EINVAL);
    assert_int_equal(mr_csv_double(c, 5, &d, &e), 0);        /* fits a double ... */
    assert_int_equal(mr_csv_float(c, 5, &f, &e), MR_EINVAL); /* ... not a float */
    assert_int_equal(mr_csv_double(c, 6, &d, &e), MR_EINVAL);
    assert_int_equal(mr_csv_double(c, 7, &d, &e), MR_EINVAL);
    mr_csv_close(c);
}

static void test_integers_and_ids(void **s) {
    (void)s;
    mr_csv *c;
    mr_err e;
    assert_int_equal(open_text(&c, "f",
                               "a,b,c,d,e\n-5,18446744073709551615,1.5,-1,99999999999999999999\n",
                               NULL, &e),
                     0);
    assert_int_equal(mr_csv_next(c, &e), 1);
    int64_t i;
    uint64_t u;
    assert_int_equal(mr_csv_i64(c, 0, &i, &e), 0);
    assert_int_equal(i, -5);
    assert_int_equal(mr_csv_u64(c, 1, &u, &e), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(mr_csv_i64(c, 2, &i, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "'1.5' is not an integer"));
    assert_int_equal(mr_csv_u64(c, 3, &u, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "f:2: column 'd' (4): '-1' is not an id"));
    assert_int_equal(mr_csv_u64(c, 4, &u, &e), MR_EINVAL); /* overflow */
    assert_int_equal(mr_csv_i64(c, 1, &i, &e), MR_EINVAL);
    mr_csv_close(c);
    assert_int_equal(mr_parse_u64("12", &u), 0);
    assert_int_equal(mr_parse_u64("", &u), -1);
    assert_int_equal(mr_parse_double(" ", &(double){0}), -1);
}

static void test_open_file_and_stdin_name(void **s) {
    (void)s;
    char path[] = "/tmp/mr_csv_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "a\tb\n1\t2\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    mr_csv *c;
    mr_err e;
    mr_err_clear(&e);
    assert_int_equal(mr_csv_open(&c, path, NULL, &e), 0);
    assert_int_equal(mr_csv_delim(c), '\t');
    assert_int_equal(mr_csv_next(c, &e), 1);
    assert_string_equal(mr_csv_cell(c, 1), "2");
    assert_int_equal(mr_csv_offset(c), sizeof text - 1);
    mr_csv_close(c);
    unlink(path);
    assert_int_equal(mr_csv_open(&c, "/nonexistent/x.csv", NULL, &e), MR_ENOTFOUND);
    assert_non_null(strstr(e.msg, "/nonexistent/x.csv"));
}

/* What mr_csv_put_cell writes, the reader reads back cell for cell. */
static void test_put_cell_round_trip(void **s) {
    (void)s;
    const char *cells[] = {"plain", "a,b", "say \"hi\"", "two\nlines", "cr\r", "tab\there", ""};
    for (int d = 0; d < 2; d++) {
        char delim = d ? '\t' : ',', *buf = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&buf, &n);
        assert_non_null(f);
        fputs(d ? "h1\th2\th3\th4\th5\th6\th7\n" : "h1,h2,h3,h4,h5,h6,h7\n", f);
        for (int i = 0; i < 7; i++) {
            if (i) fputc(delim, f);
            mr_csv_put_cell(f, cells[i], delim);
        }
        fputc('\n', f);
        fclose(f);
        mr_csv *c;
        mr_err e;
        mr_csv_opts o = {.delim = delim};
        assert_int_equal(open_text(&c, "put.csv", buf, &o, &e), 0);
        assert_int_equal(mr_csv_next(c, &e), 1);
        for (int i = 0; i < 7; i++) assert_string_equal(mr_csv_cell(c, i), cells[i]);
        assert_int_equal(mr_csv_next(c, &e), 0);
        mr_csv_close(c);
        free(buf);
    }
    /* the tab needs no quotes in CSV, the comma none in TSV */
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    mr_csv_put_cell(f, "a\tb", ',');
    fputc('|', f);
    mr_csv_put_cell(f, "a,b", '\t');
    fclose(f);
    assert_string_equal(buf, "a\tb|a,b");
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_and_rows),
        cmocka_unit_test(test_empty_input_is_an_error),
        cmocka_unit_test(test_rfc4180_quotes),
        cmocka_unit_test(test_bad_quotes_name_the_line),
        cmocka_unit_test(test_bom_crlf_blank_lines_no_trim),
        cmocka_unit_test(test_delimiter_choice),
        cmocka_unit_test(test_cell_count_must_match),
        cmocka_unit_test(test_line_and_record_limits),
        cmocka_unit_test(test_missing_values),
        cmocka_unit_test(test_numbers_one_rule),
        cmocka_unit_test(test_integers_and_ids),
        cmocka_unit_test(test_open_file_and_stdin_name),
        cmocka_unit_test(test_put_cell_round_trip),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (g_f) fclose(g_f);
    return rc;
}
