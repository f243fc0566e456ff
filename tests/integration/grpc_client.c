/* grpc_client.c — see grpc_client.h. */
#include "grpc_client.h"

#include <errno.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int test_server_start(test_server *s, const char *const *extra_args) {
    const char *bin = getenv("MOEREC_BIN");
    if (!bin) {
        fprintf(stderr, "MOEREC_BIN is not set\n");
        return -1;
    }
    int fds[2];
    if (pipe(fds) != 0) return -1;
    /* no drain grace: the tests' SIGTERMs would each wait 5 s for nothing */
    const char *argv[32] = {bin,           "serve", "--port",        "0",
                            "--log-level", "warn",  "--drain-grace", "0"};
    int n = 8;
    for (int i = 0; extra_args && extra_args[i] && n < 31; i++) argv[n++] = extra_args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[256] = "";
    int ok = f && fgets(line, sizeof line, f) != NULL;
    if (f) fclose(f);
    char *colon = ok ? strrchr(line, ':') : NULL;
    if (!colon || strncmp(line, "listening on ", 13) != 0) {
        fprintf(stderr, "server did not report a port (got '%s')\n", line);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    s->pid = pid;
    s->port = atoi(colon + 1);
    snprintf(s->target, sizeof s->target, "127.0.0.1:%d", s->port);
    return 0;
}

int test_server_stop(test_server *s, int sig) {
    int status = 0;
    kill(s->pid, sig);
    while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

grpc_channel *test_channel(const test_server *s) {
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(s->target, creds, NULL);
    grpc_channel_credentials_release(creds);
    return ch;
}

int test_unary_raw(grpc_channel *ch, const char *method, const void *req, size_t len,
                   double timeout, call_result *out) {
    memset(out, 0, sizeof *out);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_slice m = grpc_slice_from_copied_string(method);
    gpr_timespec deadline = gpr_time_add(
        gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis((int64_t)(timeout * 1000), GPR_TIMESPAN));
    grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL,
                                               deadline, NULL);
    grpc_slice_unref(m);
    grpc_slice body = grpc_slice_from_copied_buffer(req, len);
    grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&body, 1);
    grpc_slice_unref(body);
    grpc_metadata_array init_md, trail_md;
    grpc_metadata_array_init(&init_md);
    grpc_metadata_array_init(&trail_md);
    grpc_byte_buffer *recv = NULL;
    grpc_slice details;
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
    ops[5].data.recv_status_on_client.status = &out->status;
    ops[5].data.recv_status_on_client.status_details = &details;
    int rc = -1;
    static int tag;
    if (grpc_call_start_batch(call, ops, 6, &tag, NULL) == GRPC_CALL_OK) {
        grpc_event ev = grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME),
                                                    NULL);
        if (ev.type == GRPC_OP_COMPLETE) {
            rc = 0;
            size_t dl = GRPC_SLICE_LENGTH(details);
            if (dl >= sizeof out->details) dl = sizeof out->details - 1;
            memcpy(out->details, GRPC_SLICE_START_PTR(details), dl);
            out->details[dl] = '\0';
            grpc_slice_unref(details);
            if (recv) {
                grpc_byte_buffer_reader r;
                grpc_byte_buffer_reader_init(&r, recv);
                grpc_slice all = grpc_byte_buffer_reader_readall(&r);
                grpc_byte_buffer_reader_destroy(&r);
                out->len = GRPC_SLICE_LENGTH(all);
                out->body = malloc(out->len ? out->len : 1);
                memcpy(out->body, GRPC_SLICE_START_PTR(all), out->len);
                grpc_slice_unref(all);
                grpc_byte_buffer_destroy(recv);
            }
        }
    }
    grpc_byte_buffer_destroy(send);
    grpc_metadata_array_destroy(&init_md);
    grpc_metadata_array_destroy(&trail_md);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    return rc;
}

int test_unary(grpc_channel *ch, const char *method, const ProtobufCMessage *msg,
               const ProtobufCMessageDescriptor *resp_desc, double timeout, ProtobufCMessage **resp,
               call_result *out) {
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(n ? n : 1);
    protobuf_c_message_pack(msg, buf);
    int rc = test_unary_raw(ch, method, buf, n, timeout, out);
    free(buf);
    *resp = NULL;
    if (rc == 0 && out->status == GRPC_STATUS_OK && out->body)
        *resp = protobuf_c_message_unpack(resp_desc, NULL, out->len, out->body);
    else if (rc == 0 && out->status == GRPC_STATUS_OK) /* empty body = default message */
        *resp = protobuf_c_message_unpack(resp_desc, NULL, 0, (const uint8_t *)"");
    return rc;
}

void call_result_free(call_result *r) {
    free(r->body);
    r->body = NULL;
}
