/* fuzz_config.c — the server's JSON config (mr_config_load_string, then the
 * range checks): any bytes either load or fail with a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    mr_server_config c;
    mr_config_defaults(&c);
    mr_err e = {0};
    int rc = mr_config_load_string(&c, s, &e);
    if (rc != MR_OK && !e.msg[0]) abort();
    if (rc == MR_OK) {
        rc = mr_config_validate(&c, &e);
        if (rc != MR_OK && !e.msg[0]) abort();
    }
    free(s);
    return 0;
}
