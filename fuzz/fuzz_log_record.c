/* fuzz_log_record.c — one update-log record as a replica applies it
 * (mr_replica_apply: decode of moerec.v1.LogRecord, then the write's
 * handler in replay mode under the record's sequence and time) over the
 * fixture's model and store. Every input gets the next sequence, as the
 * consumer would pass them. Beyond not crashing: a refused record carries
 * a message, and only MR_EINVAL (skipped) or MR_ENOMEM may refuse it; an
 * INTERNAL or UNAVAILABLE answer would be retried for ever on a healthy
 * disk and stall the replica's log. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz/fixture.h"
#include "server/replica.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fz_server();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static uint64_t seq;
    mr_err e = {0};
    int rc = mr_replica_apply(fz_server(), ++seq, data, size, &e);
    if (getenv("MOEREC_FUZZ_VERBOSE")) fprintf(stderr, "rc %d %s\n", rc, e.msg);
    if (rc == MR_OK) return 0;
    if (!e.msg[0] || (rc != MR_EINVAL && rc != MR_ENOMEM)) {
        fprintf(stderr, "log record %llu: rc %d: %s\n", (unsigned long long)seq, rc, e.msg);
        abort();
    }
    return 0;
}
