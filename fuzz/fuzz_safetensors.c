/* fuzz_safetensors.c — the weights file reader (moe_st_read): header
 * length, JSON header, dtype/shape/offsets against the file size. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz/fixture.h"
#include "moe/model.h"
#include "moe/safetensors.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    if (!getenv("MOEREC_FUZZ_SEEDS_OUT")) return 0;
    moe_model *m = NULL; /* seed: the fixture model's weights */
    mr_err e = {0};
    char dir[128], p[160];
    snprintf(dir, sizeof dir, "%s/m", fz_tmpdir());
    if (moe_model_from_json(&m, fz_model_json, 7, &e) || moe_model_save(m, dir, &e)) abort();
    moe_model_free(m);
    snprintf(p, sizeof p, "%s/weights.safetensors", dir);
    size_t n;
    uint8_t *b = fz_read(p, &n);
    fz_dump_seed("seed-fixture.safetensors", NULL, 0, b, n);
    free(b);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *dir;
    if (!dir) dir = fz_tmpdir();
    const char *path = fz_write(dir, "weights.safetensors", data, size);
    moe_st_file f;
    mr_err e = {0};
    if (moe_st_read(&f, path, &e) == MR_OK) moe_st_free(&f);
    else if (!e.msg[0]) abort();
    return 0;
}
