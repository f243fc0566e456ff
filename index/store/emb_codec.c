/* emb_codec.c — encode and decode the store's row values.
 *
 * Kept free of RocksDB so the formats can be tested (and fuzzed) alone.
 * fp16 is converted by hand (round to nearest even, subnormals kept) rather
 * than with _Float16, which older compilers and -std=c11 do not all accept.
 * int8 uses one symmetric scale per row: error <= max|x| / 254 per element.
 * Multi-byte fields are little-endian; this file assumes a little-endian host.
 */
#include "index/store/emb_codec.h"

#include <math.h>
#include <string.h>
#include <xxhash.h>

#include "hashing/idhash.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "emb_codec.c assumes a little-endian host"
#endif

size_t emb_codec_payload_bytes(emb_encoding enc, uint32_t dim) {
    switch (enc) {
    case EMB_FP32: return (size_t)dim * 4;
    case EMB_FP16: return (size_t)dim * 2;
    case EMB_INT8: return 4 + (size_t)dim;
    }
    return 0;
}

size_t emb_codec_row_bytes(emb_encoding enc, uint32_t dim) {
    return EMB_HDR_BYTES + emb_codec_payload_bytes(enc, dim) + EMB_SUM_BYTES;
}

uint16_t emb_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf stays inf, NaN stays a quiet NaN */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds past 65504 */
    if (ax < 0x38800000u) {                                   /* half subnormal */
        if (ax < 0x33000000u) return (uint16_t)sign;          /* <= 2^-25: zero */
        uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(ax >> 23); /* units of 2^-24 */
        uint32_t n = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (n & 1))) n++;
        return (uint16_t)(sign | n);
    }
    uint32_t r = ax - ((uint32_t)(127 - 15) << 23);
    uint32_t n = r >> 13, rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (n & 1))) n++; /* carry may bump exponent */
    return (uint16_t)(sign | n);
}

float emb_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
    if (e == 0) {
        float f = ldexpf((float)m, -24);
        return sign ? -f : f;
    }
    if (e == 31) x = sign | 0x7f800000u | (m << 13);
    else x = sign | ((e + 112) << 23) | (m << 13);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

int emb_codec_check(emb_encoding enc, const float *x, uint32_t dim, mr_err *e) {
    if (enc != EMB_FP32 && enc != EMB_FP16 && enc != EMB_INT8)
        return mr_err_set(e, MR_EINVAL, "unknown encoding %d", (int)enc);
    for (uint32_t i = 0; i < dim; i++) {
        if (!isfinite(x[i]))
            return mr_err_set(e, MR_EINVAL, "element %u is %s", i,
                              isnan(x[i]) ? "NaN" : "infinite");
        if (enc == EMB_FP16 && fabsf(x[i]) > EMB_FP16_MAX)
            return mr_err_set(e, MR_ERANGE, "element %u = %g is outside the fp16 range (+-65504)",
                              i, (double)x[i]);
    }
    return 0;
}

static void emb_codec_header(uint8_t magic, uint8_t enc, uint16_t dim, int64_t ts, uint8_t *out) {
    out[0] = magic;
    out[1] = enc;
    memcpy(out + 2, &dim, 2);
    memcpy(out + 4, &ts, 8);
}

void emb_codec_encode(emb_encoding enc, const float *x, uint32_t dim, int64_t ts_ms, uint8_t *out) {
    emb_codec_header(EMB_ROW_MAGIC, (uint8_t)enc, (uint16_t)dim, ts_ms, out);
    uint8_t *p = out + EMB_HDR_BYTES;
    if (enc == EMB_FP32) {
        memcpy(p, x, (size_t)dim * 4);
    } else if (enc == EMB_FP16) {
        for (uint32_t i = 0; i < dim; i++) {
            uint16_t h = emb_f32_to_f16(x[i]);
            memcpy(p + 2 * (size_t)i, &h, 2);
        }
    } else {
        float amax = 0.0f;
        for (uint32_t i = 0; i < dim; i++) amax = fmaxf(amax, fabsf(x[i]));
        float scale = amax / 127.0f;
        memcpy(p, &scale, 4);
        for (uint32_t i = 0; i < dim; i++) {
            long q = scale > 0.0f ? lrintf(x[i] / scale) : 0;
            q = q > 127 ? 127 : q < -127 ? -127 : q;
            p[4 + i] = (uint8_t)(int8_t)q;
        }
    }
    size_t n = EMB_HDR_BYTES + emb_codec_payload_bytes(enc, dim);
    uint32_t sum = emb_codec_sum(out, n);
    memcpy(out + n, &sum, 4);
}

uint32_t emb_codec_sum(const void *data, size_t n) { return (uint32_t)idhash_checksum(data, n); }

uint32_t emb_codec_sum_v1(const void *data, size_t n) { return XXH32(data, n, 0); }

/* The trailing checksum of a value: xxh3's for version 2, XXH32's for v1. */
static int emb_codec_sum_ok(const uint8_t *v, size_t len, int v1) {
    uint32_t want;
    memcpy(&want, v + len - EMB_SUM_BYTES, 4);
    size_t n = len - EMB_SUM_BYTES;
    return (v1 ? emb_codec_sum_v1(v, n) : emb_codec_sum(v, n)) == want;
}

int emb_codec_decode(emb_encoding enc, uint32_t dim, const uint8_t *v, size_t len, float *x,
                     int64_t *ts_ms, mr_err *e) {
    if (len != emb_codec_row_bytes(enc, dim))
        return mr_err_set(e, MR_ECORRUPT, "row is %zu bytes, expected %zu", len,
                          emb_codec_row_bytes(enc, dim));
    uint16_t d16;
    memcpy(&d16, v + 2, 2);
    int v1 = v[0] == EMB_ROW_MAGIC_V1;
    if ((v[0] != EMB_ROW_MAGIC && !v1) || v[1] != (uint8_t)enc || d16 != dim)
        return mr_err_set(e, MR_ECORRUPT,
                          "row header does not match the table (magic %#x, "
                          "encoding %u, dim %u)",
                          v[0], v[1], d16);
    if (!emb_codec_sum_ok(v, len, v1)) return mr_err_set(e, MR_ECORRUPT, "row checksum mismatch");
    if (ts_ms) memcpy(ts_ms, v + 4, 8);
    emb_codec_payload_decode(enc, dim, v + EMB_HDR_BYTES, x);
    return 0;
}

void emb_codec_payload_decode(emb_encoding enc, uint32_t dim, const uint8_t *p, float *x) {
    if (enc == EMB_FP32) {
        memcpy(x, p, (size_t)dim * 4);
    } else if (enc == EMB_FP16) {
        for (uint32_t i = 0; i < dim; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * (size_t)i, 2);
            x[i] = emb_f16_to_f32(h);
        }
    } else {
        float scale;
        memcpy(&scale, p, 4);
        for (uint32_t i = 0; i < dim; i++) x[i] = (float)(int8_t)p[4 + i] * scale;
    }
}

size_t emb_codec_blob_bytes(size_t len) { return EMB_HDR_BYTES + 4 + len + EMB_SUM_BYTES; }

void emb_codec_blob_encode(const void *data, size_t len, int64_t ts_ms, uint8_t *out) {
    emb_codec_header(EMB_BLOB_MAGIC, EMB_BLOB_VERSION, 0, ts_ms, out);
    uint32_t l32 = (uint32_t)len;
    memcpy(out + EMB_HDR_BYTES, &l32, 4);
    if (len) memcpy(out + EMB_HDR_BYTES + 4, data, len);
    size_t n = EMB_HDR_BYTES + 4 + len;
    uint32_t sum = emb_codec_sum(out, n);
    memcpy(out + n, &sum, 4);
}

int emb_codec_blob_decode(const uint8_t *v, size_t vlen, const uint8_t **data, size_t *len,
                          int64_t *ts_ms, mr_err *e) {
    if (vlen < emb_codec_blob_bytes(0))
        return mr_err_set(e, MR_ECORRUPT, "blob is %zu bytes, shorter than its header", vlen);
    uint32_t l32;
    memcpy(&l32, v + EMB_HDR_BYTES, 4);
    if (v[0] != EMB_BLOB_MAGIC || (v[1] != EMB_BLOB_VERSION && v[1] != 1) ||
        emb_codec_blob_bytes(l32) != vlen)
        return mr_err_set(e, MR_ECORRUPT, "blob header does not match its length (%zu bytes)",
                          vlen);
    if (!emb_codec_sum_ok(v, vlen, v[1] == 1))
        return mr_err_set(e, MR_ECORRUPT, "blob checksum mismatch");
    if (ts_ms) memcpy(ts_ms, v + 4, 8);
    *data = v + EMB_HDR_BYTES + 4;
    *len = l32;
    return 0;
}
