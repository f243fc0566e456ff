/* inproc.h — one unary call through the server's request path without the
 * network: decode into a bounded arena, validate, run the handler, encode.
 * The same steps and the same statuses a call on the wire gets once its
 * method is known (authentication, deadlines and the transport are not
 * involved). Used by the fuzz targets (fuzz/) and tests.
 */
#ifndef MOEREC_SERVER_INPROC_H
#define MOEREC_SERVER_INPROC_H

#include <stddef.h>
#include <stdint.h>

#include "server/server.h"

typedef struct mr_inproc_result {
    int status;        /* gRPC status code the client would get */
    char msg[512];     /* its message ("" on OK) */
    size_t resp_bytes; /* packed size of the response on OK */
} mr_inproc_result;

/* Call method path (e.g. "/moerec.v1.Recommender/Score") with the
 * serialized request req[0..n) on s (created; it need not be started).
 * Returns MR_OK with *out filled, whatever status the call got, or MR_EINVAL
 * for an unknown path. Thread-safe as the handlers are. */
int mr_server_invoke(mr_server *s, const char *path, const uint8_t *req, size_t n,
                     mr_inproc_result *out, mr_err *err);

#endif
