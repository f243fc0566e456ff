/* fuzz_model_json.c — model.json (moe_model_from_json): schema, hashing,
 * architecture and tasks; a model that parses is also serialised again and
 * re-read, which must succeed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moe/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 64 * 1024) return 0; /* a model of huge tables is slow, not wrong */
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    moe_model *m = NULL;
    mr_err e = {0};
    if (moe_model_from_json(&m, s, 1, &e) == MR_OK) {
        char *again = moe_model_to_json(m);
        moe_model *m2 = NULL;
        if (!again || moe_model_from_json(&m2, again, 1, &e) != MR_OK) abort();
        moe_model_free(m2);
        free(again);
        moe_model_free(m);
    } else if (!e.msg[0]) {
        abort();
    }
    free(s);
    return 0;
}
