/* fuzz_csv.c — the CSV/TSV reader of training and scoring data
 * (moe_dataset_read over the fixture's model schema: header lookup,
 * RFC-4180 quoting, separators inside fields, labels, numeric values, the
 * time column). */
#include <stdlib.h>

#include "fuzz/fixture.h"
#include "moe/dataset.h"
#include "moe/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *dir;
    static moe_model *m;
    mr_err e = {0};
    if (!dir) {
        dir = fz_tmpdir();
        if (moe_model_from_json(&m, fz_model_json, 1, &e)) abort();
    }
    const char *path = fz_write(dir, "data.csv", data, size);
    moe_dataset *d = NULL;
    /* every other input also with a time column */
    const char *time_col = size && (data[size - 1] & 1) ? "ts" : NULL;
    if (moe_dataset_read(&d, m, path, time_col, 0, &e) == MR_OK) moe_dataset_free(d);
    else if (!e.msg[0]) abort();
    return 0;
}
