/* safetensors.h — read and write the safetensors format (the one the Python
 * `safetensors` package and PyTorch exports use).
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON header
 *   {"__metadata__": {str: str}, "NAME": {"dtype": "F32", "shape": [..],
 *    "data_offsets": [begin, end]}, ...}
 * then the tensor bytes, little-endian, offsets relative to the byte after
 * the header. moerec stores only F32; a reader validates everything before
 * handing out a pointer: header length within the file, JSON well formed,
 * every entry's dtype, shape and offsets, sizes = product(shape) * 4, data
 * inside the file, no overlaps. Errors are MR_ECORRUPT naming the tensor.
 */
#ifndef MOEREC_MOE_SAFETENSORS_H
#define MOEREC_MOE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define MOE_ST_MAX_DIMS 4

typedef struct moe_st_entry {
    char *name;
    int ndim;
    int64_t shape[MOE_ST_MAX_DIMS];
    const float *data; /* into the file buffer (aligned copy); NULL after moe_st_open */
    size_t n;          /* number of floats                     */
    uint64_t off;      /* byte offset of the data in the file  */
} moe_st_entry;

typedef struct moe_st_file {
    void *buf; /* the data section, 64-byte aligned     */
    size_t nbytes;
    moe_st_entry *entries;
    int n;
    char *metadata_json; /* the __metadata__ object, or NULL      */
    int fd;              /* moe_st_open: the open file (else unused) */
    int has_fd;
} moe_st_file;

/* Read and validate path. On error *out is left empty. */
int moe_st_read(moe_st_file *out, const char *path, mr_err *e);
void moe_st_free(moe_st_file *f);
/* Open and validate path like moe_st_read, but read only the header: the
 * entries' data stay NULL and the file stays open for moe_st_pread, so a
 * file larger than memory (a store table's tensor) can be streamed. */
int moe_st_open(moe_st_file *out, const char *path, mr_err *e);
/* Read floats [first, first + n) of en (of a file from moe_st_open) into dst. */
int moe_st_pread(const moe_st_file *f, const moe_st_entry *en, size_t first, size_t n, float *dst,
                 mr_err *e);
const moe_st_entry *moe_st_find(const moe_st_file *f, const char *name);

/* One tensor to write. */
typedef struct moe_st_tensor {
    const char *name;
    int ndim;
    int64_t shape[MOE_ST_MAX_DIMS];
    const float *data;
} moe_st_tensor;

/* Write tensors (in the given order) and string metadata pairs
 * (meta[2i] = key, meta[2i+1] = value; nmeta pairs) to path, atomically
 * (temporary file + rename). */
int moe_st_write(const char *path, const moe_st_tensor *t, int n, const char *const *meta,
                 int nmeta, mr_err *e);

#endif
