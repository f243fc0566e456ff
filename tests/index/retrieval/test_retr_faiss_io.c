/* test_retr_faiss_io.c — save/load of FAISS retrievers: a loaded index
 * answers identically (Flat, HNSW with tombstones, IVF memory-mapped), the
 * mmap copy is read-only, and damaged or mismatched files are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hashing/idhash.h"

#include "index/retrieval/retr_faiss.h"
#include "test_retr_util.h"

#define D 12
#define N 1500
#define NQ 25
#define K 10

static mr_retr *build(const char *factory, int64_t n_del) {
    retr_faiss_config c = {.name = "io",
                           .dim = D,
                           .factory = factory,
                           .metric = RETR_METRIC_IP,
                           .ef_search = strstr(factory, "HNSW") ? 40 : 0,
                           .nprobe = strstr(factory, "IVF") ? 3 : 0,
                           .rebuild_threshold = 0.5f};
    mr_retr *r = NULL;
    mr_err e = {0};
    assert_int_equal(retr_faiss_create(&r, &c, &e), 0);
    float *x = tr_randn(21, N, D);
    int64_t *ids = malloc(N * sizeof *ids);
    for (int i = 0; i < N; i++) ids[i] = 1000 + 3 * i; /* sparse ids */
    assert_int_equal(retr_faiss_train(r, x, N, &e), 0);
    assert_int_equal(retr_faiss_add(r, x, ids, N, &e), 0);
    assert_int_equal(retr_faiss_remove(r, ids, n_del, NULL, &e), 0);
    assert_int_equal(retr_faiss_add(r, x + 7 * D, ids + 900, 1, &e), 0); /* one update */
    free(ids);
    mr_floats_free(x);
    return r;
}

static void same_answers(mr_retr *a, mr_retr *b) {
    float *q = tr_randn(22, NQ, D);
    int64_t ia[NQ * K], ib[NQ * K];
    float sa[NQ * K], sb[NQ * K];
    mr_err e = {0};
    assert_int_equal(retr_search(a, q, D, NQ, K, NULL, ia, sa, &e), 0);
    assert_int_equal(retr_search(b, q, D, NQ, K, NULL, ib, sb, &e), 0);
    assert_memory_equal(ia, ib, sizeof ia);
    assert_memory_equal(sa, sb, sizeof sa);
    assert_int_equal(retr_size(a), retr_size(b));
    mr_floats_free(q);
}

static void roundtrip(const char *factory, int64_t n_del, int flags) {
    char *dir = tr_tmpdir();
    assert_non_null(dir);
    char path[4200];
    snprintf(path, sizeof path, "%s/items.faiss", dir);
    mr_retr *r = build(factory, n_del);
    mr_err e = {0};
    assert_int_equal(retr_faiss_save(r, path, &e), 0);
    mr_retr *l = NULL;
    assert_int_equal(retr_faiss_load(&l, path, flags, NULL, &e), 0);
    assert_string_equal(l->name, "items"); /* default name from the file */
    same_answers(r, l);
    retr_faiss_stats sr, sl;
    retr_faiss_stats_get(r, &sr, &e);
    retr_faiss_stats_get(l, &sl, &e);
    assert_int_equal(sr.n_dead, sl.n_dead);
    assert_int_equal(sr.ntotal, sl.ntotal);
    assert_int_equal(sr.tombstones, sl.tombstones);
    assert_int_equal(sl.read_only, flags ? 1 : 0);
    float v[D] = {1};
    int64_t id = 5;
    if (flags) {
        assert_int_equal(retr_faiss_add(l, v, &id, 1, &e), MR_ESTATE);
        assert_non_null(strstr(e.msg, "read-only"));
        assert_int_equal(retr_faiss_remove(l, &id, 1, NULL, &e), MR_ESTATE);
    } else { /* a loaded index keeps taking writes */
        assert_int_equal(retr_faiss_add(l, v, &id, 1, &e), 0);
        assert_int_equal(retr_size(l), retr_size(r) + 1);
    }
    retr_free(l);
    retr_free(r);
    tr_rmdir(dir);
}

static void test_flat_roundtrip(void **s) {
    (void)s;
    roundtrip("IDMap,Flat", 100, 0);
}

static void test_hnsw_tombstones_roundtrip(void **s) {
    (void)s;
    roundtrip("IDMap,HNSW16", 200, 0);
}

static void test_ivf_mmap_roundtrip(void **s) {
    (void)s;
    roundtrip("IVF16,Flat", 50, RETR_FAISS_LOAD_MMAP);
    roundtrip("IVF16,PQ4x4", 0, 0);
}

static void test_load_overrides_params(void **s) {
    (void)s;
    char *dir = tr_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/h.faiss", dir);
    mr_retr *r = build("IDMap,HNSW16", 0);
    mr_err e = {0};
    assert_int_equal(retr_faiss_save(r, path, &e), 0);
    retr_faiss_config c = {.name = "renamed", .ef_search = 200};
    mr_retr *l = NULL;
    assert_int_equal(retr_faiss_load(&l, path, 0, &c, &e), 0);
    assert_string_equal(l->name, "renamed");
    retr_free(l);
    retr_free(r);
    tr_rmdir(dir);
}

/* Delete the byte at offset at (the file shifts left by one). */
static void remove_byte(const char *path, long at) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    memmove(b + at, b + at + 1, (size_t)(n - at - 1));
    f = fopen(path, "wb");
    assert_int_equal(fwrite(b, 1, (size_t)(n - 1), f), (size_t)(n - 1));
    fclose(f);
    free(b);
}

static void test_damaged_files(void **s) {
    (void)s;
    char *dir = tr_tmpdir();
    char path[4200], meta[4300], other[4200];
    snprintf(path, sizeof path, "%s/a.faiss", dir);
    snprintf(meta, sizeof meta, "%s.meta", path);
    snprintf(other, sizeof other, "%s/b.faiss", dir);
    mr_retr *r = build("IDMap,Flat", 0);
    mr_err e = {0};
    mr_retr *l = NULL;
    assert_int_equal(retr_faiss_load(&l, path, 0, NULL, &e), MR_ENOTFOUND);
    assert_int_equal(retr_faiss_save(r, path, &e), 0);
    /* flip one byte of the meta file: checksum refuses it */
    tr_flip_byte(meta, 30, 0x40);
    assert_int_equal(retr_faiss_load(&l, path, 0, NULL, &e), MR_ECORRUPT);
    assert_non_null(strstr(e.msg, "meta"));
    /* a meta file that belongs to a different index: counts do not match */
    assert_int_equal(retr_faiss_save(r, path, &e), 0);
    mr_retr *small = build("IDMap,Flat", 1000);
    assert_int_equal(retr_faiss_save(small, other, &e), 0);
    char ometa[4300];
    snprintf(ometa, sizeof ometa, "%s.meta", other);
    assert_int_equal(rename(ometa, meta), 0);
    assert_int_equal(retr_faiss_load(&l, path, 0, NULL, &e), MR_ECORRUPT);
    assert_non_null(strstr(e.msg, "does not match its meta file"));
    assert_null(l);
    /* the index file itself damaged: refused before FAISS parses it. The
     * fuzz target faiss_index found an IDMap,Flat file with one byte
     * removed inside the vectors that loaded (dim and count as the meta
     * says) and then crashed the first search. */
    assert_int_equal(retr_faiss_save(r, path, &e), 0);
    remove_byte(path, 394);
    assert_int_equal(retr_faiss_load(&l, path, 0, NULL, &e), MR_ECORRUPT);
    assert_non_null(strstr(e.msg, "does not match its meta file"));
    assert_null(l);
    assert_int_equal(retr_faiss_save(r, path, &e), 0);
    tr_flip_byte(path, 500, 0x01);
    assert_int_equal(retr_faiss_load(&l, path, RETR_FAISS_LOAD_MMAP, NULL, &e), MR_ECORRUPT);
    assert_non_null(strstr(e.msg, "a.faiss"));
    assert_null(l);
    /* a slot count whose byte size wraps (2^61 + n slots: n * 8 bytes
     * modulo 2^64) with a valid checksum: refused, nothing allocated from
     * the wrapped size (found by the fuzz target retr_set under ASan) */
    assert_int_equal(retr_faiss_save(r, path, &e), 0);
    {
        FILE *f = fopen(meta, "rb");
        assert_non_null(f);
        uint8_t buf[1 << 16];
        size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        uint32_t flen;
        memcpy(&flen, buf + 36, 4); /* magic 8, u32 x4, i32 x2, f32 */
        size_t at = 40 + flen + 16; /* factory, index file size + hash */
        assert_true(at + 16 + 8 <= len);
        int64_t slots;
        memcpy(&slots, buf + at, 8);
        assert_true(slots > 0 && (size_t)slots * 8 == len - at - 16 - 8);
        slots += (int64_t)1 << 61;
        memcpy(buf + at, &slots, 8);
        uint64_t h = idhash_checksum(buf, len - 8);
        memcpy(buf + len - 8, &h, 8);
        f = fopen(meta, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(buf, 1, len, f), len);
        fclose(f);
    }
    assert_int_equal(retr_faiss_load(&l, path, 0, NULL, &e), MR_ECORRUPT);
    assert_non_null(strstr(e.msg, "meta"));
    assert_null(l);
    /* the same file intact loads */
    assert_int_equal(retr_faiss_save(r, path, &e), 0);
    assert_int_equal(retr_faiss_load(&l, path, 0, NULL, &e), 0);
    same_answers(r, l);
    retr_free(l);
    retr_free(small);
    retr_free(r);
    tr_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flat_roundtrip),     cmocka_unit_test(test_hnsw_tombstones_roundtrip),
        cmocka_unit_test(test_ivf_mmap_roundtrip), cmocka_unit_test(test_load_overrides_params),
        cmocka_unit_test(test_damaged_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
