/* fuzz_auth_tokens.c — the bearer-token file (mr_auth_load) and, when it
 * loads, a check of a header taken from the same input. */
#include <stdlib.h>
#include <string.h>

#include "fuzz/fixture.h"
#include "server/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *dir;
    if (!dir) dir = fz_tmpdir();
    const char *path = fz_write(dir, "tokens", data, size);
    mr_auth *a = NULL;
    mr_err e = {0};
    if (mr_auth_load(&a, path, &e) != MR_OK) {
        if (!e.msg[0]) abort();
        return 0;
    }
    /* the first line as a header: "Bearer " + token, and the raw bytes */
    size_t line = 0;
    while (line < size && data[line] != '\n') line++;
    char hdr[300];
    size_t n = line < 256 ? line : 256;
    memcpy(hdr, "Bearer ", 7);
    memcpy(hdr + 7, data, n);
    mr_auth_check(a, "/moerec.v1.Admin/Reload", hdr, 7 + n, &e);
    mr_auth_check(a, "/moerec.v1.Recommender/Score", (const char *)data, size, &e);
    mr_auth_free(a);
    return 0;
}
