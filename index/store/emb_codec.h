/* emb_codec.h — on-disk encodings of embedding rows and feature blobs.
 *
 * Every value the store writes carries a small header (magic, encoding,
 * dim, write time) and a checksum (the low 32 bits of xxh3-64, moerec's one
 * checksum), so a corrupt or foreign row is reported as MR_ECORRUPT instead
 * of being served as numbers. Version 1 values (row magic 0xE5, blob
 * version 1: XXH32 checksum), written before the move to xxh3, are still
 * read and verified with XXH32; nothing writes them any more. Vector
 * payloads are fp32, fp16 (IEEE binary16, round to nearest even) or int8
 * with one fp32 scale per row (symmetric, scale = max|x| / 127). The read
 * path always returns fp32. Layouts: docs/storage.md.
 */
#ifndef MOEREC_INDEX_EMB_CODEC_H
#define MOEREC_INDEX_EMB_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "index/store/store.h"

#define EMB_ROW_MAGIC 0xE6u    /* row version 2: xxh3 checksum */
#define EMB_ROW_MAGIC_V1 0xE5u /* row version 1: XXH32 checksum (still read) */
#define EMB_BLOB_MAGIC 0xB1u
#define EMB_BLOB_VERSION 2u /* 2: xxh3 checksum; 1: XXH32 (still read) */
#define EMB_HDR_BYTES 12u   /* magic, encoding, dim (u16), write time (i64 ms) */
#define EMB_SUM_BYTES 4u    /* trailing checksum of header + payload */
#define EMB_FP16_MAX 65504.0f

/* Bytes of one encoded row of `dim` floats (header and checksum included). */
size_t emb_codec_row_bytes(emb_encoding enc, uint32_t dim);
/* Bytes of a row's payload alone (what the memory cache keeps): fp32 4*dim,
 * fp16 2*dim, int8 4+dim (scale, then the values). It starts at
 * EMB_HDR_BYTES in an encoded row. */
size_t emb_codec_payload_bytes(emb_encoding enc, uint32_t dim);
/* Decode a payload (checked before: it came from a decoded row) into x. */
void emb_codec_payload_decode(emb_encoding enc, uint32_t dim, const uint8_t *p, float *x);
/* Check that x (dim) can be stored: all finite, and within fp16 range for
 * EMB_FP16. Names the first bad element in e. */
int emb_codec_check(emb_encoding enc, const float *x, uint32_t dim, mr_err *e);
/* Encode x (dim) into out (emb_codec_row_bytes bytes). x must pass check. */
void emb_codec_encode(emb_encoding enc, const float *x, uint32_t dim, int64_t ts_ms, uint8_t *out);
/* Decode one row into x (dim); MR_ECORRUPT when the length, header or
 * checksum does not match the table. *ts_ms (may be NULL) gets the write time. */
int emb_codec_decode(emb_encoding enc, uint32_t dim, const uint8_t *v, size_t len, float *x,
                     int64_t *ts_ms, mr_err *e);

/* Blobs (items, user profiles): header + u32 length + bytes + checksum. */
size_t emb_codec_blob_bytes(size_t len);
void emb_codec_blob_encode(const void *data, size_t len, int64_t ts_ms, uint8_t *out);
/* Points *data into v (no copy). */
int emb_codec_blob_decode(const uint8_t *v, size_t vlen, const uint8_t **data, size_t *len,
                          int64_t *ts_ms, mr_err *e);

/* The checksum of every store value written today: the low 32 bits of
 * xxh3-64 (idhash_checksum) over data[0..n). */
uint32_t emb_codec_sum(const void *data, size_t n);
/* Version 1 values' checksum (XXH32, seed 0): only for reading rows
 * written before version 2; never for new ones. */
uint32_t emb_codec_sum_v1(const void *data, size_t n);

/* IEEE binary16 conversions, round to nearest even; exposed for tests. */
uint16_t emb_f32_to_f16(float f);
float emb_f16_to_f32(uint16_t h);

/* Big-endian u64 keys sort numerically in RocksDB's bytewise order. */
static inline void emb_key_encode(uint64_t id, uint8_t out[8]) {
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)(id & 0xff);
        id >>= 8;
    }
}
static inline uint64_t emb_key_decode(const uint8_t in[8]) {
    uint64_t id = 0;
    for (int i = 0; i < 8; i++) id = (id << 8) | in[i];
    return id;
}

#endif
