/* tls.h — TLS and mutual TLS on the gRPC port, with certificate files that
 * can be re-read while serving.
 *
 * The credentials use gRPC's certificate-config fetcher: gRPC asks it for
 * the current certificate before each new TLS handshake, so a reload (SIGHUP
 * or Admin/Reload -> mr_tls_reload) changes what new connections see while
 * open connections keep their session. A reload reads and checks the files
 * first (PEM parses, the key matches the certificate, the CA parses) and
 * changes nothing when they are bad.
 */
#ifndef MOEREC_SERVER_TLS_H
#define MOEREC_SERVER_TLS_H

#include <grpc/grpc_security.h>

#include "common/error.h"
#include "server/config.h"

typedef struct mr_tls mr_tls;

/* Read cfg's tls_* files. *out stays NULL (and MR_OK) when TLS is off. */
int mr_tls_create(mr_tls **out, const mr_server_config *cfg, mr_err *e);
/* Server credentials over the fetcher; the caller releases them. t must
 * outlive the server they are added to. */
grpc_server_credentials *mr_tls_credentials(mr_tls *t);
/* Re-read the files; new handshakes use them. On error nothing changes. */
int mr_tls_reload(mr_tls *t, mr_err *e);
/* Copies (malloc'd, the caller frees) of the current certificate chain
 * and key as PEM text, for the metrics port's TLS. */
int mr_tls_pem(mr_tls *t, char **cert, char **key, mr_err *e);
void mr_tls_free(mr_tls *t);
/* A PEM (or token) file read whole, NUL-terminated, malloc'd (at most
 * 1 MiB; empty is an error); NULL with a message naming what and path. */
char *mr_tls_read_file(const char *path, const char *what, mr_err *e);

#endif
