/* fuzz_npy.c — the .npy reader of `moerec index embeddings --import`
 * (common/npy.h): the input as a file through mr_npy_read_f32, and the
 * same bytes through mr_npy_parse_header alone. A matrix that reads must
 * have the shape its header announces, and finite values only. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/npy.h"
#include "fuzz/fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *dir;
    if (!dir) dir = fz_tmpdir();
    mr_err e = {0};
    mr_npy_header h;
    int hrc = mr_npy_parse_header("in", data, size, &h, &e);
    if (hrc && !e.msg[0]) abort();
    if (!hrc && (h.rows < 1 || h.cols < 1 || h.data_off > size)) abort();
    const char *path = fz_write(dir, "m.npy", data, size);
    float *x = NULL;
    int64_t rows = 0, cols = 0;
    e = (mr_err){0};
    if (mr_npy_read_f32(path, &x, &rows, &cols, &e) != MR_OK) {
        if (!e.msg[0] || x) abort();
        return 0;
    }
    /* it read, so the header parsed and the data matched it exactly */
    if (hrc || rows != h.rows || cols != h.cols ||
        h.data_off + (size_t)(rows * cols) * (size_t)h.itemsize != size) {
        fprintf(stderr, "npy: read %lld x %lld against the header\n", (long long)rows,
                (long long)cols);
        abort();
    }
    for (int64_t i = 0; i < rows * cols; i++)
        if (!isfinite(x[i])) abort();
    free(x);
    return 0;
}
