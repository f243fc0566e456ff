/* npy.h — reading NumPy .npy files of 2-D float matrices (format versions
 * 1.0, 2.0 and 3.0: "\x93NUMPY", major, minor, a little-endian header
 * length of 2 bytes (1.0) or 4 (2.0, 3.0), then an ASCII Python dict
 * literal with exactly the keys 'descr', 'fortran_order' and 'shape',
 * padded with spaces and ended by '\n').
 *
 * Accepted: descr '<f4' or '<f8' ('=', native, is read as
 * little-endian: moerec runs on little-endian hosts), fortran_order False, shape (rows, cols) with rows >= 1 and
 * cols >= 1, and exactly rows * cols * itemsize data bytes after the
 * header. Refused with an error naming the file and what is wrong: a bad
 * magic, version, header length or dict syntax, a missing, repeated or
 * unknown key, big-endian or non-float dtypes (e.g. '>f4', '<i8'), Fortran
 * order, a shape that is not 2-D, a truncated or longer data section, and
 * any value that is not finite or (float64) outside float's range, named
 * by row and column. float64 data is rounded to float32.
 */
#ifndef MOEREC_COMMON_NPY_H
#define MOEREC_COMMON_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define MR_NPY_MAX_HEADER (1u << 20) /* header bytes accepted (2.0/3.0 allow 4 GiB) */

typedef struct mr_npy_header {
    int itemsize;       /* 4 (float32) or 8 (float64)       */
    int64_t rows, cols; /* shape                            */
    size_t data_off;    /* first data byte in the file      */
} mr_npy_header;

/* Parse the preamble and header at buf[0..len) (len may exceed the header;
 * bytes after it are data). name prefixes messages. */
int mr_npy_parse_header(const char *name, const unsigned char *buf, size_t len, mr_npy_header *h,
                        mr_err *e);

/* Read path into *data (rows * cols float32, row-major, malloc'd). */
int mr_npy_read_f32(const char *path, float **data, int64_t *rows, int64_t *cols, mr_err *e);

#endif
