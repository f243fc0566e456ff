/* test_safetensors.c — moe/safetensors.c: write/read round trip, the byte
 * layout (8-byte little-endian header length, JSON header), and corrupt
 * files: truncated, bad header length, bad JSON, wrong dtype, size/shape
 * mismatch, overlapping tensors — each an MR_ECORRUPT naming the tensor,
 * never a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "moe/safetensors.h"

static char g_dir[64], g_path[128];

static int setup(void **st) {
    (void)st;
    snprintf(g_dir, sizeof g_dir, "/tmp/moe_st_XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    snprintf(g_path, sizeof g_path, "%s/w.safetensors", g_dir);
    return 0;
}

static int teardown(void **st) {
    (void)st;
    unlink(g_path);
    rmdir(g_dir);
    return 0;
}

static void write_raw(const char *header, const void *data, size_t dlen) {
    FILE *f = fopen(g_path, "wb");
    assert_non_null(f);
    uint64_t n = strlen(header);
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(n >> (8 * i));
    fwrite(b, 1, 8, f);
    fwrite(header, 1, n, f);
    if (dlen) fwrite(data, 1, dlen, f);
    fclose(f);
}

static void test_round_trip(void **st) {
    (void)st;
    float a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {-1.5f, 0, 1e30f};
    moe_st_tensor t[2] = {{.name = "layer.w", .ndim = 2, .shape = {2, 3}, .data = a},
                          {.name = "layer.b", .ndim = 1, .shape = {3}, .data = b}};
    const char *meta[] = {"format", "moerec.model"};
    mr_err e;
    assert_int_equal(moe_st_write(g_path, t, 2, meta, 1, &e), 0);
    /* byte layout: header length, then a JSON object, data 8-byte aligned */
    FILE *f = fopen(g_path, "rb");
    unsigned char h[8];
    assert_int_equal(fread(h, 1, 8, f), 8);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | h[i];
    assert_int_equal(n % 8, 0);
    char c;
    assert_int_equal(fread(&c, 1, 1, f), 1);
    assert_int_equal(c, '{');
    fseek(f, 0, SEEK_END);
    assert_int_equal((uint64_t)ftell(f), 8 + n + sizeof a + sizeof b);
    fclose(f);
    moe_st_file rf;
    assert_int_equal(moe_st_read(&rf, g_path, &e), 0);
    assert_int_equal(rf.n, 2);
    const moe_st_entry *w = moe_st_find(&rf, "layer.w"), *bb = moe_st_find(&rf, "layer.b");
    assert_non_null(w);
    assert_non_null(bb);
    assert_int_equal(w->ndim, 2);
    assert_int_equal(w->shape[0], 2);
    assert_int_equal(w->shape[1], 3);
    assert_memory_equal(w->data, a, sizeof a);
    assert_memory_equal(bb->data, b, sizeof b);
    assert_non_null(strstr(rf.metadata_json, "moerec.model"));
    assert_null(moe_st_find(&rf, "nope"));
    moe_st_free(&rf);
}

static void expect_corrupt(const char *what, const char *needle) {
    moe_st_file rf;
    mr_err e;
    int rc = moe_st_read(&rf, g_path, &e);
    print_message("%s -> %s\n", what, e.msg);
    assert_int_equal(rc, MR_ECORRUPT);
    if (needle) assert_non_null(strstr(e.msg, needle));
    assert_int_equal(rf.n, 0);
    /* the header-only open validates the same way */
    assert_int_equal(moe_st_open(&rf, g_path, &e), MR_ECORRUPT);
    if (needle) assert_non_null(strstr(e.msg, needle));
    assert_int_equal(rf.n, 0);
    assert_int_equal(rf.has_fd, 0);
}

/* moe_st_open reads the header only; moe_st_pread streams any range of a
 * tensor, and a range outside it is refused. */
static void test_open_and_pread(void **st) {
    (void)st;
    enum { R = 1000, C = 8 };
    float *a = malloc(R * C * sizeof *a), b[3] = {7, 8, 9}, got[3 * C];
    for (int i = 0; i < R * C; i++) a[i] = (float)i * 0.5f;
    moe_st_tensor t[2] = {{.name = "small", .ndim = 1, .shape = {3}, .data = b},
                          {.name = "emb.big", .ndim = 2, .shape = {R, C}, .data = a}};
    mr_err e;
    assert_int_equal(moe_st_write(g_path, t, 2, NULL, 0, &e), 0);
    moe_st_file f;
    assert_int_equal(moe_st_open(&f, g_path, &e), 0);
    assert_null(f.buf);
    assert_int_equal(f.n, 2);
    const moe_st_entry *big = moe_st_find(&f, "emb.big"), *sm = moe_st_find(&f, "small");
    assert_non_null(big);
    assert_null(big->data);
    assert_int_equal(big->n, R * C);
    assert_int_equal(moe_st_pread(&f, sm, 0, 3, got, &e), 0);
    assert_memory_equal(got, b, sizeof b);
    for (size_t lo = 0; lo + 3 <= R; lo += 331) {
        assert_int_equal(moe_st_pread(&f, big, lo * C, 3 * C, got, &e), 0);
        assert_memory_equal(got, a + lo * C, 3 * C * sizeof *got);
    }
    assert_int_equal(moe_st_pread(&f, big, (R - 1) * C, 2 * C, got, &e), MR_EINVAL);
    assert_non_null(strstr(e.msg, "emb.big"));
    moe_st_free(&f);
    free(a);
}

static void test_corrupt(void **st) {
    (void)st;
    float d[4] = {1, 2, 3, 4};
    write_raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", d, 8);
    expect_corrupt("truncated data", "'t'");
    write_raw("{\"t\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]}}", d, 8);
    expect_corrupt("wrong dtype", "'t'");
    write_raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", d, 16);
    expect_corrupt("shape vs size", "'t'");
    write_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
              d, 16);
    expect_corrupt("overlap", "overlaps");
    write_raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]", d, 16);
    expect_corrupt("bad json", "JSON");
    write_raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", d, 16);
    expect_corrupt("negative dim", "'t'");
    /* header length larger than the file */
    FILE *f = fopen(g_path, "wb");
    unsigned char b[12] = {0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, '{', '}', ' ', ' '};
    fwrite(b, 1, sizeof b, f);
    fclose(f);
    expect_corrupt("header length", "header length");
    f = fopen(g_path, "wb");
    fwrite(b, 1, 5, f);
    fclose(f);
    expect_corrupt("5-byte file", "too short");
    moe_st_file rf;
    mr_err e;
    assert_int_equal(moe_st_read(&rf, "/nonexistent/x.safetensors", &e), MR_ENOTFOUND);
}

/* Every truncation and 300 random single-byte corruptions of a valid file:
 * reading must fail cleanly (or, for bytes inside tensor data, succeed),
 * never crash or read out of bounds (this test also runs under ASan). */
static void test_fuzz(void **st) {
    (void)st;
    float a[6] = {1, 2, 3, 4, 5, 6};
    moe_st_tensor t[2] = {{.name = "w", .ndim = 2, .shape = {2, 2}, .data = a},
                          {.name = "b", .ndim = 1, .shape = {2}, .data = a + 4}};
    mr_err e;
    assert_int_equal(moe_st_write(g_path, t, 2, NULL, 0, &e), 0);
    FILE *f = fopen(g_path, "rb");
    unsigned char buf[1024];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(n > 8 && n < sizeof buf);
    moe_st_file rf;
    for (size_t len = 0; len < n; len++) {
        f = fopen(g_path, "wb");
        fwrite(buf, 1, len, f);
        fclose(f);
        assert_int_equal(moe_st_read(&rf, g_path, &e), MR_ECORRUPT);
    }
    unsigned seed = 12345;
    int ok = 0, bad = 0;
    for (int i = 0; i < 300; i++) {
        unsigned char c[1024];
        memcpy(c, buf, n);
        seed = seed * 1103515245u + 12345u;
        size_t pos = (seed >> 8) % n;
        c[pos] = (unsigned char)(seed >> 24);
        f = fopen(g_path, "wb");
        fwrite(c, 1, n, f);
        fclose(f);
        int rc = moe_st_read(&rf, g_path, &e);
        assert_true(rc == 0 || rc == MR_ECORRUPT);
        if (rc == 0) {
            ok++;
            moe_st_free(&rf);
        } else {
            bad++;
        }
    }
    print_message("fuzz: %d corruptions read, %d rejected\n", ok, bad);
    assert_true(bad > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_open_and_pread),
        cmocka_unit_test(test_fuzz),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
