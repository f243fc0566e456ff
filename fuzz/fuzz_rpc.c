/* fuzz_rpc.c — one RPC's request bytes through decode, validation and the
 * handler (mr_server_invoke) over the fixture's model, retrievers and
 * store. Built once per method with FZ_METHOD set to its path. Beyond not
 * crashing, every answer must be a real gRPC status with a message when it
 * is not OK, and an OK answer must have encoded. */
#include "fuzz/fixture.h"

#ifndef FZ_METHOD
#error "build with -DFZ_METHOD=\"/package.Service/Method\""
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fz_server();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_invoke_check(FZ_METHOD, data, size);
    return 0;
}
