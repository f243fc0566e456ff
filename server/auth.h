/* auth.h — bearer-token authentication of calls.
 *
 * With `auth_tokens_file` set, every call but grpc.health.v1.Health (so
 * stock probes keep working) must carry the metadata
 *   authorization: Bearer <token>
 * with a token from the file; moerec.v1.Admin calls need a token marked
 * `admin`. File format: one token per line, optionally followed by a space
 * and `admin`; `#` at the start of a word starts a comment; tokens are
 * 16..256 printable bytes; a line with anything else is an error.
 * Tokens are compared in constant time. A missing or unknown token is
 * UNAUTHENTICATED; a valid non-admin token on Admin is PERMISSION_DENIED.
 * Transport security (TLS) is separate: without it tokens cross the wire
 * in clear text, so bind to 127.0.0.1 or put TLS in front.
 */
#ifndef MOEREC_SERVER_AUTH_H
#define MOEREC_SERVER_AUTH_H

#include <stddef.h>

#include "common/error.h"

typedef struct mr_auth mr_auth;

int mr_auth_load(mr_auth **out, const char *path, mr_err *e);
void mr_auth_free(mr_auth *a);

/* Check one call: header is the authorization metadata value (NULL when
 * absent), method the full path. MR_OK, or MR_EUNAUTH / MR_EPERM with a
 * message. */
int mr_auth_check(const mr_auth *a, const char *method, const char *header, size_t len, mr_err *e);

#endif
