/* fuzz_graphhash_map.c — the GraphHash mappings file (graphhash_map_load:
 * size, magic, version, checksum, id order, row range) and lookups in a map
 * that loads. The first input byte chooses whether the target repairs the
 * header's checksum first, so mutations reach the checks behind it. */
#include <stdlib.h>
#include <string.h>

#include "fuzz/fixture.h"
#include "hashing/graphhash.h"

#define HEADER 64
#define SUM_AT 56

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *dir;
    if (!dir) dir = fz_tmpdir();
    if (size < 1) return 0;
    int fix = data[0] & 1;
    data++, size--;
    uint8_t *b = malloc(size ? size : 1);
    if (!b) return 0;
    memcpy(b, data, size);
    if (fix && size >= HEADER) {
        uint64_t sum = idhash_bytes(b + HEADER, size - HEADER, 0);
        memcpy(b + SUM_AT, &sum, 8);
    }
    const char *path = fz_write(dir, "map.ghash", b, size);
    free(b);
    graphhash_map *m = NULL;
    mr_err e = {0};
    if (graphhash_map_load(&m, path, &e) != MR_OK) {
        if (!e.msg[0]) abort();
        return 0;
    }
    uint32_t row;
    for (uint64_t id = 0; id < 64; id++) {
        if (graphhash_map_row(m, GRAPHHASH_USERS, id, &row) == MR_OK &&
            row >= graphhash_map_rows(m, GRAPHHASH_USERS))
            abort();
        if (graphhash_map_row(m, GRAPHHASH_ITEMS, id * 977, &row) == MR_OK &&
            row >= graphhash_map_rows(m, GRAPHHASH_ITEMS))
            abort();
    }
    graphhash_map_free(m);
    return 0;
}
