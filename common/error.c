/* error.c — see error.h. */
#include "error.h"

#include <stdio.h>
#include <string.h>

/* The last code set on this thread, so mr_err_wrap(NULL, ...) still
 * returns the failure it wraps when the caller passed no mr_err. */
static _Thread_local int t_last_code;

int mr_err_vset(mr_err *e, int code, const char *fmt, va_list ap) {
    t_last_code = code;
    if (e) {
        e->code = code;
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    }
    return code;
}

int mr_err_set(mr_err *e, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    mr_err_vset(e, code, fmt, ap);
    va_end(ap);
    return code;
}

int mr_err_wrap(mr_err *e, const char *fmt, ...) {
    if (!e) return t_last_code < 0 ? t_last_code : MR_EINTERNAL;
    char prefix[MR_ERR_MSG_MAX], old[MR_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof e->msg - 3) n = sizeof e->msg - 3;
    memcpy(e->msg, prefix, n);
    memcpy(e->msg + n, ": ", 2);
    size_t rest = sizeof e->msg - n - 3;
    size_t m = strnlen(old, rest);
    memcpy(e->msg + n + 2, old, m);
    e->msg[n + 2 + m] = '\0';
    return e->code;
}

void mr_err_clear(mr_err *e) {
    if (!e) return;
    e->code = MR_OK;
    e->msg[0] = '\0';
}

int mr_err_grpc_code(int code) {
    if (code >= 0) return 0;
    if (code < -16) return 2; /* UNKNOWN */
    return -code;
}

const char *mr_err_name(int code) {
    static const char *names[] = {"OK",
                                  "CANCELLED",
                                  "UNKNOWN",
                                  "INVALID_ARGUMENT",
                                  "DEADLINE_EXCEEDED",
                                  "NOT_FOUND",
                                  "ALREADY_EXISTS",
                                  "PERMISSION_DENIED",
                                  "RESOURCE_EXHAUSTED",
                                  "FAILED_PRECONDITION",
                                  "ABORTED",
                                  "OUT_OF_RANGE",
                                  "UNIMPLEMENTED",
                                  "INTERNAL",
                                  "UNAVAILABLE",
                                  "DATA_LOSS",
                                  "UNAUTHENTICATED"};
    return names[mr_err_grpc_code(code)];
}
