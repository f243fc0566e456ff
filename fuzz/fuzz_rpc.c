/* fuzz_rpc.c — one RPC's request bytes through decode, validation and the
 * handler (mr_server_invoke) over the fixture's model, retrievers and
 * store. Built once per method with FZ_METHOD set to its path. Beyond not
 * crashing, every answer must be a real gRPC status with a message when it
 * is not OK, and an OK answer must have encoded. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz/fixture.h"
#include "server/inproc.h"

#ifndef FZ_METHOD
#error "build with -DFZ_METHOD=\"/package.Service/Method\""
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fz_server();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mr_inproc_result res;
    mr_err e = {0};
    if (mr_server_invoke(fz_server(), FZ_METHOD, data, size, &res, &e)) {
        fprintf(stderr, "%s: %s\n", FZ_METHOD, e.msg);
        abort();
    }
    if (res.status < 0 || res.status > 16 || (res.status != 0 && !res.msg[0])) {
        fprintf(stderr, "%s: status %d without a message\n", FZ_METHOD, res.status);
        abort();
    }
    if (getenv("MOEREC_FUZZ_VERBOSE")) fprintf(stderr, "status %d %s\n", res.status, res.msg);
    return 0;
}
