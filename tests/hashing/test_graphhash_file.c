/* test_graphhash_file.c — mappings file round trip through mmap and every
 * kind of corruption rejected cleanly (hashing/graphhash_file.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/rng.h"
#include "hashing/graphhash.h"

typedef struct fixture {
    char dir[64];
    char path[128];
    graphhash_map *m;
    unsigned char *bytes; /* the saved file */
    size_t len;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/mr_ghash_XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/map.bin", f->dir);
    enum { NU = 1001, NI = 333 };
    uint64_t uids[NU], iids[NI];
    uint32_t urows[NU], irows[NI];
    mr_rng r;
    mr_rng_seed(&r, 3);
    for (int j = 0; j < NU; j++) uids[j] = mr_rng_u64(&r), urows[j] = (uint32_t)(j % 17);
    for (int j = 0; j < NI; j++) iids[j] = (uint64_t)j * 5, irows[j] = (uint32_t)(j % 4);
    if (graphhash_from_tables(&f->m, uids, urows, NU, 17, iids, irows, NI, 4, 200.0, 77, NULL))
        return -1;
    if (graphhash_map_save(f->m, f->path, NULL)) return -1;
    FILE *fp = fopen(f->path, "rb");
    fseek(fp, 0, SEEK_END);
    f->len = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    f->bytes = malloc(f->len);
    if (fread(f->bytes, 1, f->len, fp) != f->len) return -1;
    fclose(fp);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    unlink(f->path);
    rmdir(f->dir);
    graphhash_map_free(f->m);
    free(f->bytes);
    free(f);
    return 0;
}

static void write_bytes(const fixture *f, const unsigned char *b, size_t n) {
    FILE *fp = fopen(f->path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, n, fp), n);
    fclose(fp);
}

static void test_round_trip(void **state) {
    fixture *f = *state;
    graphhash_map *l;
    mr_err e = {0};
    assert_int_equal(graphhash_map_load(&l, f->path, &e), 0);
    /* header + 1001 * 12 bytes padded to 8 + 333 * 12 padded to 8 */
    assert_int_equal(f->len, 64 + 12016 + 4000);
    assert_int_equal(memcmp(f->bytes, "MRGHASH", 8), 0);
    for (int s = 0; s < 2; s++) {
        assert_int_equal(graphhash_map_rows(l, (graphhash_side)s),
                         graphhash_map_rows(f->m, (graphhash_side)s));
        assert_int_equal(graphhash_map_size(l, (graphhash_side)s),
                         graphhash_map_size(f->m, (graphhash_side)s));
    }
    assert_true(graphhash_map_resolution(l) == 200.0);
    assert_int_equal(graphhash_map_seed(l), 77);
    mr_rng r;
    mr_rng_seed(&r, 3);
    for (int j = 0; j < 1001; j++) {
        uint64_t id = mr_rng_u64(&r);
        uint32_t a, b;
        assert_int_equal(graphhash_map_row(l, GRAPHHASH_USERS, id, &a), 1);
        assert_int_equal(graphhash_map_row(f->m, GRAPHHASH_USERS, id, &b), 1);
        assert_int_equal(a, b);
        assert_int_equal(a, j % 17);
    }
    for (uint64_t id = 0; id < 3000; id++) {
        uint32_t a, b;
        int fa = graphhash_map_row(l, GRAPHHASH_ITEMS, id, &a);
        assert_int_equal(fa, graphhash_map_row(f->m, GRAPHHASH_ITEMS, id, &b));
        assert_int_equal(a, b);
        assert_int_equal(fa, id % 5 == 0 && id / 5 < 333);
    }
    graphhash_map_free(l);
}

static void expect_corrupt(const fixture *f, const char *what) {
    graphhash_map *l;
    mr_err e = {0};
    assert_int_equal(graphhash_map_load(&l, f->path, &e), MR_ECORRUPT);
    assert_null(l);
    assert_non_null(strstr(e.msg, what));
    assert_non_null(strstr(e.msg, f->path));
}

static void test_corrupt_files_rejected(void **state) {
    fixture *f = *state;
    unsigned char *b = malloc(f->len);
    /* Truncated. */
    write_bytes(f, f->bytes, f->len - 8);
    expect_corrupt(f, "size");
    write_bytes(f, f->bytes, 10);
    expect_corrupt(f, "header");
    /* Payload byte flipped. */
    memcpy(b, f->bytes, f->len);
    b[f->len / 2] ^= 0x40;
    write_bytes(f, b, f->len);
    expect_corrupt(f, "checksum");
    /* Magic, version, header size, counts. */
    memcpy(b, f->bytes, f->len);
    b[0] = 'X';
    write_bytes(f, b, f->len);
    expect_corrupt(f, "magic");
    memcpy(b, f->bytes, f->len);
    b[8] = 9;
    write_bytes(f, b, f->len);
    expect_corrupt(f, "version");
    memcpy(b, f->bytes, f->len);
    b[12] = 32;
    write_bytes(f, b, f->len);
    expect_corrupt(f, "header");
    memcpy(b, f->bytes, f->len);
    b[16 + 7] = 0xff; /* absurd user count */
    write_bytes(f, b, f->len);
    expect_corrupt(f, "size");
    /* Zero-length file. */
    write_bytes(f, f->bytes, 0);
    expect_corrupt(f, "empty");
    /* Missing file: NOT_FOUND, not corrupt. */
    graphhash_map *l;
    mr_err e = {0};
    unlink(f->path);
    assert_int_equal(graphhash_map_load(&l, f->path, &e), MR_ENOTFOUND);
    /* Unwritable destination. */
    char bad[160];
    snprintf(bad, sizeof bad, "%s/no/such/dir/map.bin", f->dir);
    assert_int_equal(graphhash_map_save(f->m, bad, &e), MR_EINTERNAL);
    free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_files_rejected, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
