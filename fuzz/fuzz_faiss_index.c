/* fuzz_faiss_index.c — a FAISS index file (flat.faiss of the fixture's
 * set, read by faiss_read_index_fname through retr_faiss_load) beside its
 * valid meta file, then a search when it loads. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz/fixture.h"

static uint8_t *orig;
static size_t on;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    char p[256];
    snprintf(p, sizeof p, "%s/flat.faiss", fz_retrievers_dir());
    orig = fz_read(p, &on);
    fz_dump_seed("seed-flat.faiss", NULL, 0, orig, on);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *dir = fz_retrievers_copy();
    fz_write(dir, "flat.faiss", data, size);
    fz_load_and_retrieve(dir);
    fz_write(dir, "flat.faiss", orig, on);
    return 0;
}
