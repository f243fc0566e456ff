/* fuzz_model_json.c — model.json (moe_model_from_json): schema, hashing,
 * architecture and tasks; a model that parses is also serialised again and
 * re-read, which must succeed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moe/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 64 * 1024) return 0; /* a model of huge tables is slow, not wrong */
    /* so is a wide network: 4M parameters (16 MB) build in well under a
     * second under ASan, a 234M one took 36 s; the bound itself is tested
     * at its default in tests/moe/test_model_json.c */
    moe_net_max_params = 1L << 22;
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    moe_model *m = NULL;
    mr_err e = {0};
    if (moe_model_from_json(&m, s, 1, &e) == MR_OK) {
        char *again = moe_model_to_json(m);
        moe_model_free(m); /* one network at a time: up to MOE_MAX_PARAMS floats each */
        moe_model *m2 = NULL;
        if (!again || moe_model_from_json(&m2, again, 1, &e) != MR_OK) abort();
        moe_model_free(m2);
        free(again);
    } else if (!e.msg[0]) {
        abort();
    }
    free(s);
    return 0;
}
