/* test_retr_file.c — binary file helpers: buffer round trip, checksum
 * catches any flipped byte and truncation, atomic write then read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/atomic_file.h"
#include "hashing/idhash.h"
#include "index/retrieval/retr_file.h"
#include "test_retr_util.h"

static void test_roundtrip_and_checksum(void **s) {
    (void)s;
    retr_wbuf b = {0};
    for (uint32_t i = 0; i < 1000; i++) assert_int_equal(retr_wbuf_put(&b, &i, 4), 0);
    assert_int_equal(retr_wbuf_seal(&b), 0);
    assert_int_equal(b.n, 4008);
    retr_rbuf r;
    assert_int_equal(retr_rbuf_open(&r, b.p, b.n), 0);
    for (uint32_t i = 0; i < 1000; i++) {
        uint32_t v;
        assert_int_equal(retr_rbuf_take(&r, &v, 4), 0);
        assert_int_equal(v, i);
    }
    uint32_t extra;
    assert_int_equal(retr_rbuf_take(&r, &extra, 4), -1); /* checksum is not payload */
    for (size_t at = 0; at < b.n; at += 37) {
        b.p[at] ^= 1;
        assert_int_equal(retr_rbuf_open(&r, b.p, b.n), -1);
        b.p[at] ^= 1;
    }
    assert_int_equal(retr_rbuf_open(&r, b.p, b.n - 1), -1);
    assert_int_equal(retr_rbuf_open(&r, b.p, 3), -1);

    char *dir = tr_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/f.bin", dir);
    mr_err e = {0};
    unsigned char *back = NULL;
    size_t n = 0;
    assert_int_equal(retr_file_read(path, &back, &n, &e), MR_ENOTFOUND);
    assert_int_equal(mr_write_file_atomic(path, b.p, b.n, &e), 0);
    assert_int_equal(retr_file_read(path, &back, &n, &e), 0);
    assert_int_equal(n, b.n);
    assert_memory_equal(back, b.p, n);
    free(back);
    char bad[4300];
    snprintf(bad, sizeof bad, "%s/no/such/dir/f.bin", dir);
    assert_int_equal(mr_write_file_atomic(bad, b.p, b.n, &e), MR_EINTERNAL);
    retr_wbuf_free(&b);
    tr_rmdir(dir);
}

/* Version 2 files end in xxh3 (idhash_checksum); version 1 files, which
 * ended in FNV-1a, are still opened; a version 1 header with an xxh3 sum
 * or a version 2 header with an FNV-1a sum is damaged. */
static void test_versions_and_checksums(void **s) {
    (void)s;
    char *dir = tr_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/v.bin", dir);
    mr_err e = {0};
    for (int fnv = 0; fnv < 2; fnv++)
        for (uint32_t ver = 1; ver <= 2; ver++) {
            unsigned char img[8 + 4 + 4 + 8];
            uint32_t payload = 42;
            memcpy(img, "MRTESTV1", 8);
            memcpy(img + 8, &ver, 4);
            memcpy(img + 12, &payload, 4);
            uint64_t h = 1469598103934665603ull;
            for (size_t i = 0; i < 16; i++) h = (h ^ img[i]) * 1099511628211ull;
            if (!fnv) h = idhash_checksum(img, 16);
            memcpy(img + 16, &h, 8);
            assert_int_equal(mr_write_file_atomic(path, img, sizeof img, &e), 0);
            unsigned char *buf = NULL;
            retr_rbuf r;
            int rc = retr_file_open(path, "MRTESTV1", 2, "test", &buf, &r, &e);
            if ((ver == 2) == !fnv) {
                assert_int_equal(rc, 0);
                uint32_t got;
                assert_int_equal(retr_rbuf_take(&r, &got, 4), 0);
                assert_int_equal(got, 42);
                free(buf);
            } else {
                assert_int_equal(rc, MR_ECORRUPT);
            }
        }
    tr_rmdir(dir);
}

static void test_stem(void **s) {
    (void)s;
    char out[16];
    retr_file_stem("models/m/3/items.faiss", out, sizeof out);
    assert_string_equal(out, "items");
    retr_file_stem("router.bin.meta", out, sizeof out);
    assert_string_equal(out, "router");
    retr_file_stem("dir.v2/plain", out, sizeof out);
    assert_string_equal(out, "plain");
    retr_file_stem("a_very_long_file_name_indeed.x", out, sizeof out);
    assert_string_equal(out, "a_very_long_fil"); /* truncated to fit */
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_roundtrip_and_checksum),
                                       cmocka_unit_test(test_versions_and_checksums),
                                       cmocka_unit_test(test_stem)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
