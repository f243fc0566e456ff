/* test_emb_codec.c — row encodings (index/store/emb_codec.c): fp32 exact, fp16
 * within half an ulp of binary16 (and exact on representable values,
 * subnormals included), int8 within max|x|/254, range and NaN/Inf checks,
 * corrupt values (length, header, any flipped byte) rejected, and the
 * row versions (2: xxh3 written; 1: XXH32 still read). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <xxhash.h>

#include "common/rng.h"
#include "index/store/emb_codec.h"

enum { D = 64 };

static void fill(mr_rng *r, float *x, int n, float scale) {
    for (int i = 0; i < n; i++) x[i] = (float)(mr_rng_normal(r) * scale);
}

static void test_fp32_exact(void **state) {
    (void)state;
    mr_rng r;
    mr_rng_seed(&r, 1);
    float x[D], y[D];
    uint8_t buf[1024];
    fill(&r, x, D, 3.0f);
    size_t n = emb_codec_row_bytes(EMB_FP32, D);
    assert_int_equal(n, EMB_HDR_BYTES + 4 * D + EMB_SUM_BYTES);
    emb_codec_encode(EMB_FP32, x, D, 1234, buf);
    int64_t ts = 0;
    assert_int_equal(emb_codec_decode(EMB_FP32, D, buf, n, y, &ts, NULL), 0);
    assert_memory_equal(x, y, sizeof x);
    assert_int_equal(ts, 1234);
}

/* Every finite binary16 value converts to float and back unchanged. */
static void test_fp16_all_halves_round_trip(void **state) {
    (void)state;
    int checked = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00) continue; /* inf/NaN */
        float f = emb_f16_to_f32((uint16_t)h);
        assert_int_equal(emb_f32_to_f16(f), h);
        checked++;
    }
    assert_int_equal(checked, 63488);
    assert_true(emb_f16_to_f32(0x3c00) == 1.0f);
    assert_true(emb_f16_to_f32(0x0001) == ldexpf(1.0f, -24)); /* smallest subnormal */
    assert_true(emb_f16_to_f32(0x7bff) == 65504.0f);
}

/* Random floats: error <= half an ulp of binary16 (relative 2^-11 for
 * normals, absolute 2^-25 for subnormals); ties go to even. */
static void test_fp16_rounding_error_bound(void **state) {
    (void)state;
    mr_rng r;
    mr_rng_seed(&r, 2);
    for (int i = 0; i < 200000; i++) {
        float x = (float)(mr_rng_normal(&r) * ldexp(1.0, (int)mr_rng_below(&r, 40) - 24));
        if (fabsf(x) > 65504.0f) continue;
        float y = emb_f16_to_f32(emb_f32_to_f16(x));
        float ax = fabsf(x);
        double bound = ax >= ldexpf(1.0f, -14) ? ldexp(ax, -11) : ldexp(1.0, -25);
        assert_true(fabs((double)y - x) <= bound * (1 + 1e-6));
    }
    /* 1 + 2^-11 is halfway between 1 and 1 + 2^-10: rounds to even (1). */
    assert_true(emb_f16_to_f32(emb_f32_to_f16(1.0f + ldexpf(1.0f, -11))) == 1.0f);
    assert_true(emb_f16_to_f32(emb_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11))) ==
                1.0f + ldexpf(1.0f, -9));
    assert_true(isinf(emb_f16_to_f32(emb_f32_to_f16(70000.0f))));
    assert_true(emb_f16_to_f32(emb_f32_to_f16(65519.0f)) == 65504.0f);
}

static void test_fp16_row_and_range(void **state) {
    (void)state;
    mr_rng r;
    mr_rng_seed(&r, 3);
    float x[D], y[D];
    uint8_t buf[1024];
    fill(&r, x, D, 10.0f);
    assert_int_equal(emb_codec_check(EMB_FP16, x, D, NULL), 0);
    emb_codec_encode(EMB_FP16, x, D, 7, buf);
    size_t n = emb_codec_row_bytes(EMB_FP16, D);
    assert_int_equal(n, EMB_HDR_BYTES + 2 * D + EMB_SUM_BYTES);
    assert_int_equal(emb_codec_decode(EMB_FP16, D, buf, n, y, NULL, NULL), 0);
    for (int i = 0; i < D; i++) assert_true(fabsf(y[i] - x[i]) <= ldexpf(fabsf(x[i]), -11) + 1e-7f);
    mr_err e;
    mr_err_clear(&e);
    x[5] = 1e6f;
    assert_int_equal(emb_codec_check(EMB_FP16, x, D, &e), MR_ERANGE);
    assert_non_null(strstr(e.msg, "element 5"));
    assert_int_equal(emb_codec_check(EMB_FP32, x, D, NULL), 0);
}

static void test_int8_error_bound(void **state) {
    (void)state;
    mr_rng r;
    mr_rng_seed(&r, 4);
    float x[D], y[D];
    uint8_t buf[1024];
    size_t n = emb_codec_row_bytes(EMB_INT8, D);
    assert_int_equal(n, EMB_HDR_BYTES + 4 + D + EMB_SUM_BYTES);
    for (int t = 0; t < 1000; t++) {
        fill(&r, x, D, (float)ldexp(1.0, (int)mr_rng_below(&r, 20) - 10));
        float amax = 0;
        for (int i = 0; i < D; i++) amax = fmaxf(amax, fabsf(x[i]));
        emb_codec_encode(EMB_INT8, x, D, 0, buf);
        assert_int_equal(emb_codec_decode(EMB_INT8, D, buf, n, y, NULL, NULL), 0);
        for (int i = 0; i < D; i++) assert_true(fabsf(y[i] - x[i]) <= amax / 254.0f * 1.0001f);
    }
    /* An all-zero row has scale 0 and decodes to zeros. */
    memset(x, 0, sizeof x);
    emb_codec_encode(EMB_INT8, x, D, 0, buf);
    assert_int_equal(emb_codec_decode(EMB_INT8, D, buf, n, y, NULL, NULL), 0);
    for (int i = 0; i < D; i++) assert_true(y[i] == 0.0f);
}

static void test_nan_inf_rejected(void **state) {
    (void)state;
    float x[D] = {0};
    mr_err e;
    for (int enc = EMB_FP32; enc <= EMB_INT8; enc++) {
        x[3] = NAN;
        assert_int_equal(emb_codec_check((emb_encoding)enc, x, D, &e), MR_EINVAL);
        assert_non_null(strstr(e.msg, "NaN"));
        x[3] = -INFINITY;
        assert_int_equal(emb_codec_check((emb_encoding)enc, x, D, &e), MR_EINVAL);
        assert_non_null(strstr(e.msg, "infinite"));
        x[3] = 0;
    }
    assert_int_equal(emb_codec_check((emb_encoding)7, x, D, NULL), MR_EINVAL);
}

/* Every single flipped byte, a truncated row, and a row of another table
 * (dim or encoding) are all MR_ECORRUPT. */
static void test_corrupt_rows_detected(void **state) {
    (void)state;
    mr_rng r;
    mr_rng_seed(&r, 5);
    float x[D], y[D];
    uint8_t buf[1024];
    fill(&r, x, D, 1.0f);
    for (int enc = EMB_FP32; enc <= EMB_INT8; enc++) {
        size_t n = emb_codec_row_bytes((emb_encoding)enc, D);
        emb_codec_encode((emb_encoding)enc, x, D, 99, buf);
        for (size_t i = 0; i < n; i++) {
            buf[i] ^= 0x10;
            assert_int_equal(emb_codec_decode((emb_encoding)enc, D, buf, n, y, NULL, NULL),
                             MR_ECORRUPT);
            buf[i] ^= 0x10;
        }
        assert_int_equal(emb_codec_decode((emb_encoding)enc, D, buf, n - 1, y, NULL, NULL),
                         MR_ECORRUPT);
        assert_int_equal(emb_codec_decode((emb_encoding)enc, D, buf, n, y, NULL, NULL), 0);
    }
    /* fp32 row of dim 32 has the byte size of an fp16 row of dim 64 */
    emb_codec_encode(EMB_FP32, x, 32, 0, buf);
    mr_err e;
    assert_int_equal(
        emb_codec_decode(EMB_FP16, 64, buf, emb_codec_row_bytes(EMB_FP32, 32), y, NULL, &e),
        MR_ECORRUPT);
    assert_non_null(strstr(e.msg, "header"));
}

static void test_blob_round_trip_and_corruption(void **state) {
    (void)state;
    const char *msg = "genres=comedy|drama;year=1995";
    size_t len = strlen(msg), n = emb_codec_blob_bytes(len);
    uint8_t *buf = malloc(n);
    emb_codec_blob_encode(msg, len, 42, buf);
    const uint8_t *data;
    size_t got;
    int64_t ts;
    assert_int_equal(emb_codec_blob_decode(buf, n, &data, &got, &ts, NULL), 0);
    assert_int_equal(got, len);
    assert_memory_equal(data, msg, len);
    assert_int_equal(ts, 42);
    for (size_t i = 0; i < n; i++) {
        buf[i] ^= 1;
        assert_int_equal(emb_codec_blob_decode(buf, n, &data, &got, NULL, NULL), MR_ECORRUPT);
        buf[i] ^= 1;
    }
    assert_int_equal(emb_codec_blob_decode(buf, 5, &data, &got, NULL, NULL), MR_ECORRUPT);
    /* empty blob */
    emb_codec_blob_encode(NULL, 0, 1, buf);
    assert_int_equal(emb_codec_blob_decode(buf, emb_codec_blob_bytes(0), &data, &got, NULL, NULL),
                     0);
    assert_int_equal(got, 0);
    free(buf);
}

/* The row version: encode writes version 2 (magic 0xE6, the low 32 bits of
 * xxh3-64); a version 1 row (magic 0xE5, XXH32) written before still
 * decodes to the same floats; a version's magic with the other version's
 * checksum, or an unknown magic, is MR_ECORRUPT. The same for blobs
 * (version byte 2 / 1). */
static void test_row_versions(void **state) {
    (void)state;
    mr_rng r;
    mr_rng_seed(&r, 8);
    float x[D], y[D], z[D];
    uint8_t buf[1024];
    fill(&r, x, D, 1.0f);
    for (int enc = EMB_FP32; enc <= EMB_INT8; enc++) {
        size_t n = emb_codec_row_bytes((emb_encoding)enc, D), body = n - EMB_SUM_BYTES;
        emb_codec_encode((emb_encoding)enc, x, D, 7, buf);
        assert_int_equal(buf[0], 0xE6);
        uint32_t sum;
        memcpy(&sum, buf + body, 4);
        assert_true(sum == (uint32_t)XXH3_64bits(buf, body));
        assert_int_equal(emb_codec_decode((emb_encoding)enc, D, buf, n, y, NULL, NULL), 0);
        buf[0] = 0xE5; /* version 1 magic, xxh3 sum: damaged */
        assert_int_equal(emb_codec_decode((emb_encoding)enc, D, buf, n, z, NULL, NULL),
                         MR_ECORRUPT);
        sum = XXH32(buf, body, 0); /* a real version 1 row */
        memcpy(buf + body, &sum, 4);
        int64_t ts = 0;
        assert_int_equal(emb_codec_decode((emb_encoding)enc, D, buf, n, z, &ts, NULL), 0);
        assert_memory_equal(y, z, sizeof y);
        assert_int_equal(ts, 7);
        buf[0] = 0xE6; /* version 2 magic, XXH32 sum: damaged */
        assert_int_equal(emb_codec_decode((emb_encoding)enc, D, buf, n, z, NULL, NULL),
                         MR_ECORRUPT);
        buf[0] = 0xE7;
        sum = emb_codec_sum(buf, body);
        memcpy(buf + body, &sum, 4);
        mr_err e;
        assert_int_equal(emb_codec_decode((emb_encoding)enc, D, buf, n, z, NULL, &e), MR_ECORRUPT);
        assert_non_null(strstr(e.msg, "header"));
    }
    const char *msg = "a blob";
    size_t len = strlen(msg), n = emb_codec_blob_bytes(len), body = n - EMB_SUM_BYTES;
    emb_codec_blob_encode(msg, len, 3, buf);
    assert_int_equal(buf[1], 2);
    const uint8_t *data;
    size_t got;
    buf[1] = 1;
    assert_int_equal(emb_codec_blob_decode(buf, n, &data, &got, NULL, NULL), MR_ECORRUPT);
    uint32_t sum = XXH32(buf, body, 0);
    memcpy(buf + body, &sum, 4);
    assert_int_equal(emb_codec_blob_decode(buf, n, &data, &got, NULL, NULL), 0);
    assert_int_equal(got, len);
    assert_memory_equal(data, msg, len);
    buf[1] = 3;
    sum = emb_codec_sum(buf, body);
    memcpy(buf + body, &sum, 4);
    assert_int_equal(emb_codec_blob_decode(buf, n, &data, &got, NULL, NULL), MR_ECORRUPT);
}

static void test_keys_sort_numerically(void **state) {
    (void)state;
    mr_rng r;
    mr_rng_seed(&r, 6);
    for (int i = 0; i < 10000; i++) {
        uint64_t a = mr_rng_u64(&r) >> mr_rng_below(&r, 64),
                 b = mr_rng_u64(&r) >> mr_rng_below(&r, 64);
        uint8_t ka[8], kb[8];
        emb_key_encode(a, ka);
        emb_key_encode(b, kb);
        int c = memcmp(ka, kb, 8);
        assert_true((a < b && c < 0) || (a > b && c > 0) || (a == b && c == 0));
        assert_true(emb_key_decode(ka) == a);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp32_exact),
        cmocka_unit_test(test_fp16_all_halves_round_trip),
        cmocka_unit_test(test_fp16_rounding_error_bound),
        cmocka_unit_test(test_fp16_row_and_range),
        cmocka_unit_test(test_int8_error_bound),
        cmocka_unit_test(test_nan_inf_rejected),
        cmocka_unit_test(test_corrupt_rows_detected),
        cmocka_unit_test(test_blob_round_trip_and_corruption),
        cmocka_unit_test(test_row_versions),
        cmocka_unit_test(test_keys_sort_numerically),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
