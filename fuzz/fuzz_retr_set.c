/* fuzz_retr_set.c — the files of a retriever set: the manifest
 * (retrievers.json), the FAISS meta file, popularity counts, MinHash
 * signatures and router pilots. The first byte picks which file of the
 * fixture's set the rest of the input replaces; its high bit asks the
 * target to repair the trailing checksum (xxh3) of a binary file, so
 * mutations reach the parser behind it. Then the set is loaded and, when
 * it loads, searched. The FAISS index itself: fuzz_faiss_index. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fixture.h"
#include "hashing/idhash.h"
#include "index/retrieval/retr_file.h"
#include "index/retrieval/retr_set.h"

static const char *k_files[] = {RETR_SET_MANIFEST, "flat.faiss.meta", "popular.pop", "cooc.minhash",
                                RETR_SET_PILOTS};
enum { NFILES = sizeof k_files / sizeof k_files[0] };

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    for (int i = 0; i < NFILES; i++) { /* seeds: each file as it is, with a repair flag */
        char p[256], name[64];
        snprintf(p, sizeof p, "%s/%s", fz_retrievers_dir(), k_files[i]);
        size_t n;
        uint8_t *b = fz_read(p, &n), sel = (uint8_t)(i | (i ? 0x80 : 0));
        snprintf(name, sizeof name, "seed-%s", k_files[i]);
        fz_dump_seed(name, &sel, 1, b, n);
        free(b);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *dir = fz_retrievers_copy();
    int which = (data[0] & 0x7f) % NFILES, fix = data[0] >> 7;
    uint8_t *b = malloc(size);
    if (!b) return 0;
    memcpy(b, data + 1, size - 1);
    size_t n = size - 1;
    if (fix && which > 0 && n >= 8) {
        uint64_t h = idhash_checksum(b, n - 8);
        memcpy(b + n - 8, &h, 8);
    }
    /* the original back in place after this input */
    char orig_path[256];
    snprintf(orig_path, sizeof orig_path, "%s/%s", fz_retrievers_dir(), k_files[which]);
    size_t on;
    uint8_t *orig = fz_read(orig_path, &on);
    fz_write(dir, k_files[which], b, n);
    free(b);
    fz_load_and_retrieve(dir);
    fz_write(dir, k_files[which], orig, on);
    free(orig);
    return 0;
}
