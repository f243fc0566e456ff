/* test_npy.c — common/npy.c: float32 and float64 matrices in format 1.0
 * and 2.0 (what numpy.save writes), headers with other key orders and
 * spacing, and every malformed case refused with a message naming it:
 * magic, version, header length, dict syntax, keys, dtype, Fortran order,
 * shape, data size, non-finite and out-of-range values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/npy.h"

static char g_path[64];

/* A .npy file: preamble of version major, header dict (padded with spaces
 * to a multiple of 64 and '\n'), then data bytes. */
static void write_npy(int major, const char *dict, const void *data, size_t bytes) {
    char hdr[512];
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict), hl = dl + 1;
    while ((pre + hl) % 64) hl++;
    memcpy(hdr, dict, dl);
    memset(hdr + dl, ' ', hl - dl - 1);
    hdr[hl - 1] = '\n';
    FILE *f = fopen(g_path, "wb");
    assert_non_null(f);
    fwrite("\x93NUMPY", 1, 6, f);
    unsigned char v[6] = {(unsigned char)major,     0, (unsigned char)(hl & 255),
                          (unsigned char)(hl >> 8), 0, 0};
    fwrite(v, 1, pre - 6, f);
    fwrite(hdr, 1, hl, f);
    if (bytes) fwrite(data, 1, bytes, f);
    fclose(f);
}

static void write_raw(const void *p, size_t n) {
    FILE *f = fopen(g_path, "wb");
    assert_non_null(f);
    fwrite(p, 1, n, f);
    fclose(f);
}

static int setup(void **st) {
    (void)st;
    snprintf(g_path, sizeof g_path, "/tmp/test_npy_%d.npy", (int)getpid());
    return 0;
}

static int teardown(void **st) {
    (void)st;
    unlink(g_path);
    return 0;
}

static void test_read_f32_f64(void **st) {
    (void)st;
    float a[6] = {1, -2.5f, 3, 0.125f, 5e-8f, 6};
    write_npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", a, sizeof a);
    float *d = NULL;
    int64_t r = 0, c = 0;
    mr_err e;
    assert_int_equal(mr_npy_read_f32(g_path, &d, &r, &c, &e), 0);
    assert_int_equal(r, 3);
    assert_int_equal(c, 2);
    assert_memory_equal(d, a, sizeof a);
    free(d);
    double b[4] = {0.1, -1e30, 2, 3.0000000001};
    /* version 2.0, other key order, double quotes, no trailing comma */
    write_npy(2, "{\"shape\":(2,2),\"fortran_order\":False,\"descr\":\"<f8\"}", b, sizeof b);
    assert_int_equal(mr_npy_read_f32(g_path, &d, &r, &c, &e), 0);
    assert_int_equal(r, 2);
    assert_int_equal(c, 2);
    for (int i = 0; i < 4; i++) assert_true(d[i] == (float)b[i]);
    free(d);
}

/* Each case: header dict, data bytes, the message part expected. */
static void test_malformed_headers(void **st) {
    (void)st;
    float a[4] = {1, 2, 3, 4};
    struct {
        const char *dict;
        size_t bytes;
        const char *msg;
    } bad[] = {
        {"{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }", 16, "dtype '>f4'"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (2, 2), }", 16, "dtype '<i8'"},
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16, "Fortran order"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", 16, "shape has 1 dimensions"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 2), }", 16,
         "shape has 3 dimensions"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (0, 2), }", 0, "is empty"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 12, "data is 12 bytes"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 16 + 4, "data is 20 bytes"},
        {"{'descr': '<f4', 'shape': (2, 2), }", 16, "lacks 'fortran_order'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), 'x': 1}", 16,
         "unknown key 'x'"},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 2)}", 16,
         "'descr' repeated"},
        {"{'descr': '<f4', 'fortran_order': Fals, 'shape': (2, 2)}", 16, "not True or False"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, -2)}", 16,
         "not a tuple of integers"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2) 'x'}", 16, "expected '}'"},
        {"{'descr': '<f4, 'fortran_order': False, 'shape': (2, 2)}", 16,
         "expected '}' at header byte 17"},
        {"{'descr' '<f4', 'fortran_order': False, 'shape': (2, 2)}", 16, "expected ':'"},
        {"['descr', '<f4']", 16, "expected '{'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2)} x", 16, "bytes after the dict"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999)}", 16,
         "too large"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char data[32] = {0};
        memcpy(data, a, sizeof a);
        write_npy(1, bad[i].dict, data, bad[i].bytes);
        float *d = (float *)1;
        int64_t r, c;
        mr_err e;
        mr_err_clear(&e);
        assert_int_equal(mr_npy_read_f32(g_path, &d, &r, &c, &e), MR_EINVAL);
        if (!strstr(e.msg, bad[i].msg)) print_message("case %zu: %s\n", i, e.msg);
        assert_non_null(strstr(e.msg, bad[i].msg));
        assert_non_null(strstr(e.msg, g_path));
        assert_null(d);
    }
}

static void test_malformed_preamble(void **st) {
    (void)st;
    mr_err e;
    float *d;
    int64_t r, c;
    write_raw("PK\x03\x04 not npy at all", 20);
    assert_int_equal(mr_npy_read_f32(g_path, &d, &r, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "no \\x93NUMPY magic"));
    write_raw("\x93NUMPY\x04\x00\x10\x00{}", 12);
    assert_int_equal(mr_npy_read_f32(g_path, &d, &r, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "format version 4.0"));
    write_raw("\x93NUMPY\x01\x00\xff\x00{'descr'", 18); /* announces 255 header bytes */
    assert_int_equal(mr_npy_read_f32(g_path, &d, &r, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "header truncated"));
    write_raw("\x93NUMPY\x02\x00\x00\x00\x00\x10", 12); /* 2.0: a 256 MiB header */
    assert_int_equal(mr_npy_read_f32(g_path, &d, &r, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "at most"));
    write_raw("\x93NUMPY\x01\x00\x04\x00{}  ", 14); /* no final newline */
    assert_int_equal(mr_npy_read_f32(g_path, &d, &r, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "does not end with a newline"));
    write_raw("\x93NUM", 4);
    assert_int_equal(mr_npy_read_f32(g_path, &d, &r, &c, &e), MR_EINVAL);
    unlink(g_path);
    assert_int_equal(mr_npy_read_f32(g_path, &d, &r, &c, &e), MR_ENOTFOUND);
}

static void test_non_finite_values(void **st) {
    (void)st;
    float a[4] = {1, 2, NAN, 4};
    write_npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", a, sizeof a);
    float *d;
    int64_t r, c;
    mr_err e;
    assert_int_equal(mr_npy_read_f32(g_path, &d, &r, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "row 1, column 0"));
    double b[2] = {1, 1e39}; /* finite, but not a float */
    write_npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }", b, sizeof b);
    assert_int_equal(mr_npy_read_f32(g_path, &d, &r, &c, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "row 0, column 1"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_f32_f64, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_preamble, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_finite_values, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
