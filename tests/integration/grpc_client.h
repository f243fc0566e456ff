/* grpc_client.h — a minimal gRPC client on the C core API for integration
 * tests: start the real `moerec serve` binary on a random port, make unary
 * calls with raw bytes or protobuf-c messages, and read server streams. */
#ifndef MOEREC_TESTS_GRPC_CLIENT_H
#define MOEREC_TESTS_GRPC_CLIENT_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct test_server {
    pid_t pid;
    int port;
    char target[64]; /* "127.0.0.1:PORT" */
} test_server;

/* Start `moerec serve --port 0 ARGS...` (binary from $MOEREC_BIN) and read
 * its 'listening on' line. extra_args is NULL-terminated (may be NULL).
 * Returns 0 or -1. */
int test_server_start(test_server *s, const char *const *extra_args);
/* Send sig and wait; returns the exit status (or 128+signal). */
int test_server_stop(test_server *s, int sig);

typedef struct call_result {
    grpc_status_code status;
    char details[512];
    unsigned char *body; /* response bytes (malloc'd), NULL if none */
    size_t len;
} call_result;

/* Unary call with raw request bytes; 0 when the call completed (whatever
 * its status), -1 on client failure. timeout in seconds. */
int test_unary_raw(grpc_channel *ch, const char *method, const void *req, size_t len,
                   double timeout, call_result *out);
/* Pack msg, call, and unpack the response with resp_desc into *resp (NULL
 * unless status OK). Free it with protobuf_c_message_free_unpacked. */
int test_unary(grpc_channel *ch, const char *method, const ProtobufCMessage *msg,
               const ProtobufCMessageDescriptor *resp_desc, double timeout, ProtobufCMessage **resp,
               call_result *out);
void call_result_free(call_result *r);

grpc_channel *test_channel(const test_server *s);

#endif
