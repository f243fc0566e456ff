/* speed_model.h — model.json of the moe_speed-shaped model, shared by
 * bench_moe_speed and bench_serve_peer: 20 categorical fields c0..c19 (own
 * table t<f> of 10000 x 16 each), 32 numeric n0..n31, 3 binary tasks, MMoE
 * of 8 experts [256, 128], towers [64]. */
#ifndef MOEREC_BENCH_SPEED_MODEL_H
#define MOEREC_BENCH_SPEED_MODEL_H

#include <stdio.h>
#include <string.h>

#define SPEED_NCAT 20
#define SPEED_NNUM 32
#define SPEED_MODEL_SEED 7

/* Write the JSON for gate ("dense" or "topk") into js (16 KiB is enough). */
static inline void speed_model_json(char *js, size_t n, const char *gate) {
    char tables[4096] = "", cats[4096] = "", nums[4096] = "";
    for (int f = 0; f < SPEED_NCAT; f++) {
        char t[160];
        snprintf(t, sizeof t, "%s{\"name\":\"t%d\",\"rows\":10000,\"dim\":16}", f ? "," : "", f);
        strcat(tables, t);
        snprintf(t, sizeof t, "%s{\"name\":\"c%d\",\"table\":\"t%d\"}", f ? "," : "", f, f);
        strcat(cats, t);
    }
    for (int f = 0; f < SPEED_NNUM; f++) {
        char t[64];
        snprintf(t, sizeof t, "%s{\"name\":\"n%d\"}", f ? "," : "", f);
        strcat(nums, t);
    }
    snprintf(
        js, n,
        "{\"name\":\"speed\",\"tables\":[%s],\"features\":{\"categorical\":[%s],\"numeric\":[%s]},"
        "\"tasks\":[{\"name\":\"click\"},{\"name\":\"like\"},{\"name\":\"share\"}],"
        "\"arch\":{\"type\":\"mmoe\",\"experts\":8,\"expert_hidden\":[256,128],\"tower_hidden\":[64],"
        "\"gate\":{\"type\":\"%s\",\"k\":2}}}",
        tables, cats, nums, gate);
}

#endif
