/* error.h — status codes and error messages shared by every moerec library.
 *
 * Functions return 0 on success or a negative MR_E* code, and fill an
 * optional caller-provided mr_err with a human-readable message. The codes
 * are the negated gRPC status codes, so a handler turns any library error
 * into a gRPC status with mr_err_grpc_code() and no translation table.
 * Library code never exits and never prints to stdout.
 */
#ifndef MOEREC_COMMON_ERROR_H
#define MOEREC_COMMON_ERROR_H

#include <stdarg.h>

enum {
    MR_OK = 0,
    MR_ECANCELLED = -1, /* CANCELLED */
    MR_EINVAL = -3,     /* INVALID_ARGUMENT: bad input from the caller */
    MR_ETIMEOUT = -4,   /* DEADLINE_EXCEEDED */
    MR_ENOTFOUND = -5,  /* NOT_FOUND: unknown id, table, file */
    MR_EEXIST = -6,     /* ALREADY_EXISTS */
    MR_EPERM = -7,      /* PERMISSION_DENIED */
    MR_ENOMEM = -8,     /* RESOURCE_EXHAUSTED: allocation or a limit */
    MR_ESTATE = -9,     /* FAILED_PRECONDITION: not loaded, not trained */
    MR_ERANGE = -11,    /* OUT_OF_RANGE */
    MR_EUNIMPL = -12,   /* UNIMPLEMENTED */
    MR_EINTERNAL = -13, /* INTERNAL: a dependency failed (I/O, FAISS) */
    MR_EUNAVAIL = -14,  /* UNAVAILABLE: shutting down, try again */
    MR_ECORRUPT = -15,  /* DATA_LOSS: a file or row failed validation */
    MR_EUNAUTH = -16,   /* UNAUTHENTICATED: no or unknown credentials */
};

#define MR_ERR_MSG_MAX 512

typedef struct mr_err {
    int code;                 /* last MR_E* code, MR_OK when clear */
    char msg[MR_ERR_MSG_MAX]; /* NUL-terminated message, "" when clear */
} mr_err;

/* Record code and a printf-style message in e (which may be NULL); returns
 * code so callers can write `return mr_err_set(e, MR_EINVAL, ...)`. */
int mr_err_set(mr_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int mr_err_vset(mr_err *e, int code, const char *fmt, va_list ap);
/* Prefix the existing message with context: "ctx: old message", and return
 * the code being wrapped (e->code; with e NULL, the last code set on this
 * thread), so `return mr_err_wrap(e, ...)` never turns a failure into 0. */
int mr_err_wrap(mr_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mr_err_clear(mr_err *e);

/* gRPC status code (0..16) for an MR_E* code. */
int mr_err_grpc_code(int code);
/* Short name of a code: "INVALID_ARGUMENT", ... */
const char *mr_err_name(int code);

#endif
