/* emb_codec.h — on-disk encodings of embedding rows and feature blobs.
 *
 * Every value the store writes carries a small header (magic, encoding,
 * dim, write time) and an XXH32 checksum, so a corrupt or foreign row is
 * reported as MR_ECORRUPT instead of being served as numbers. Vector
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

#define EMB_ROW_MAGIC 0xE5u
#define EMB_BLOB_MAGIC 0xB1u
#define EMB_HDR_BYTES 12u /* magic, encoding, dim (u16), write time (i64 ms) */
#define EMB_SUM_BYTES 4u  /* trailing XXH32 of header + payload */
#define EMB_FP16_MAX 65504.0f

/* Bytes of one encoded row of `dim` floats (header and checksum included). */
size_t emb_codec_row_bytes(emb_encoding enc, uint32_t dim);
/* Check that x (dim) can be stored: all finite, and within fp16 range for
 * EMB_FP16. Names the first bad element in e. */
int emb_codec_check(emb_encoding enc, const float *x, uint32_t dim, mr_err *e);
/* Encode x (dim) into out (emb_codec_row_bytes bytes). x must pass check. */
void emb_codec_encode(emb_encoding enc, const float *x, uint32_t dim, int64_t ts_ms,
                      uint8_t *out);
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
