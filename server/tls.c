/* tls.c — see tls.h. The PEM texts live under mu with a generation
 * number; the fetcher hands gRPC a new certificate config only when the
 * generation moved since its last call, which gRPC makes before every new
 * handshake (so an unchanged answer must be cheap: one lock, one compare).
 * Files are checked with OpenSSL (which gRPC itself uses on Debian) so a
 * bad rotation is refused up front instead of failing handshakes later.
 */
#include "tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

struct mr_tls {
    char cert_file[1024], key_file[1024], ca_file[1024]; /* ca_file "" = none */
    grpc_ssl_client_certificate_request_type request;
    pthread_mutex_t mu;    /* guards the fields below */
    char *cert, *key, *ca; /* PEM texts; ca NULL without a client CA */
    unsigned generation;   /* bumped by each successful read */
    unsigned fetched;      /* generation last handed to gRPC */
};

#define TLS_MAX_FILE (1u << 20) /* a certificate chain is KiBs; refuse anything absurd */

static char *read_file(const char *path, const char *what, mr_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        mr_err_set(e, MR_EINVAL, "%s '%s': cannot open", what, path);
        return NULL;
    }
    char *buf = malloc(TLS_MAX_FILE + 1);
    size_t n = buf ? fread(buf, 1, TLS_MAX_FILE + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad || n == 0 || n > TLS_MAX_FILE) {
        mr_err_set(e, MR_EINVAL, "%s '%s': %s", what, path,
                   !buf     ? "out of memory"
                   : bad    ? "read error"
                   : n == 0 ? "empty"
                            : "over 1 MiB");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

char *mr_tls_read_file(const char *path, const char *what, mr_err *e) {
    return read_file(path, what, e);
}

/* The first OpenSSL error as text, and the queue cleared. */
static const char *ssl_reason(char *buf, size_t cap) {
    unsigned long code = ERR_get_error();
    if (code) ERR_error_string_n(code, buf, cap);
    else snprintf(buf, cap, "no PEM data");
    ERR_clear_error();
    return buf;
}

/* cert (a chain: the first certificate is the server's) and key parse and
 * belong together; ca, when given, holds at least one certificate. */
static int check_pems(const mr_tls *t, const char *cert, const char *key, const char *ca,
                      mr_err *e) {
    char why[256];
    int rc = MR_OK;
    BIO *b = BIO_new_mem_buf(cert, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!x)
        return mr_err_set(e, MR_EINVAL, "tls_cert_file '%s': %s", t->cert_file,
                          ssl_reason(why, sizeof why));
    b = BIO_new_mem_buf(key, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!k)
        rc = mr_err_set(e, MR_EINVAL, "tls_key_file '%s': %s", t->key_file,
                        ssl_reason(why, sizeof why));
    else if (X509_check_private_key(x, k) != 1)
        rc = mr_err_set(e, MR_EINVAL, "tls_key_file '%s' does not match the certificate in '%s'",
                        t->key_file, t->cert_file);
    ERR_clear_error();
    EVP_PKEY_free(k);
    X509_free(x);
    if (rc || !ca) return rc;
    b = BIO_new_mem_buf(ca, -1);
    x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!x)
        return mr_err_set(e, MR_EINVAL, "tls_client_ca_file '%s': %s", t->ca_file,
                          ssl_reason(why, sizeof why));
    X509_free(x);
    return MR_OK;
}

int mr_tls_reload(mr_tls *t, mr_err *e) {
    char *cert = read_file(t->cert_file, "tls_cert_file", e);
    char *key = cert ? read_file(t->key_file, "tls_key_file", e) : NULL;
    char *ca = NULL;
    int rc = cert && key ? MR_OK : MR_EINVAL;
    if (!rc && t->ca_file[0] && !(ca = read_file(t->ca_file, "tls_client_ca_file", e)))
        rc = MR_EINVAL;
    if (!rc) rc = check_pems(t, cert, key, ca, e);
    if (rc) {
        free(cert);
        free(key);
        free(ca);
        return rc;
    }
    pthread_mutex_lock(&t->mu);
    free(t->cert);
    free(t->key);
    free(t->ca);
    t->cert = cert;
    t->key = key;
    t->ca = ca;
    t->generation++;
    pthread_mutex_unlock(&t->mu);
    return MR_OK;
}

/* gRPC's fetcher: called at server start and before each new handshake. */
static grpc_ssl_certificate_config_reload_status fetch(void *user,
                                                       grpc_ssl_server_certificate_config **cfg) {
    mr_tls *t = user;
    pthread_mutex_lock(&t->mu);
    if (t->fetched == t->generation) {
        pthread_mutex_unlock(&t->mu);
        return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
    }
    grpc_ssl_pem_key_cert_pair pair = {t->key, t->cert};
    /* gRPC 1.51 asserts that a fetched config has client roots even when it
     * requests no client certificate; then they are never used, so the
     * server's own chain stands in (texts copied) */
    *cfg = grpc_ssl_server_certificate_config_create(t->ca ? t->ca : t->cert, &pair, 1);
    t->fetched = t->generation;
    pthread_mutex_unlock(&t->mu);
    mr_info("tls: new connections now get the certificate read from %s", t->cert_file);
    return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
}

int mr_tls_create(mr_tls **out, const mr_server_config *cfg, mr_err *e) {
    *out = NULL;
    if (!cfg->tls_cert_file[0] && !cfg->tls_key_file[0]) {
        if (cfg->tls_client_ca_file[0] || cfg->tls_require_client_cert || cfg->metrics_tls)
            return mr_err_set(e, MR_EINVAL, "config: %s needs 'tls_cert_file' and 'tls_key_file'",
                              cfg->metrics_tls ? "'metrics_tls'" : "a client CA");
        return MR_OK;
    }
    if (!cfg->tls_cert_file[0] || !cfg->tls_key_file[0])
        return mr_err_set(e, MR_EINVAL, "config: 'tls_cert_file' and 'tls_key_file' go together");
    if (cfg->tls_require_client_cert && !cfg->tls_client_ca_file[0])
        return mr_err_set(e, MR_EINVAL,
                          "config: 'tls_require_client_cert' needs 'tls_client_ca_file'");
    mr_tls *t = calloc(1, sizeof *t);
    if (!t) return mr_err_set(e, MR_ENOMEM, "out of memory");
    snprintf(t->cert_file, sizeof t->cert_file, "%s", cfg->tls_cert_file);
    snprintf(t->key_file, sizeof t->key_file, "%s", cfg->tls_key_file);
    snprintf(t->ca_file, sizeof t->ca_file, "%s", cfg->tls_client_ca_file);
    t->request = !cfg->tls_client_ca_file[0] ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                 : cfg->tls_require_client_cert
                     ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                     : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
    pthread_mutex_init(&t->mu, NULL);
    int rc = mr_tls_reload(t, e);
    if (rc) {
        mr_tls_free(t);
        return rc;
    }
    *out = t;
    return MR_OK;
}

grpc_server_credentials *mr_tls_credentials(mr_tls *t) {
    grpc_ssl_server_credentials_options *o =
        grpc_ssl_server_credentials_create_options_using_config_fetcher(t->request, fetch, t);
    return grpc_ssl_server_credentials_create_with_options(o); /* takes o */
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

int mr_tls_pem(mr_tls *t, char **cert, char **key, mr_err *e) {
    pthread_mutex_lock(&t->mu);
    *cert = dup_str(t->cert);
    *key = dup_str(t->key);
    pthread_mutex_unlock(&t->mu);
    if (*cert && *key) return MR_OK;
    free(*cert);
    free(*key);
    *cert = *key = NULL;
    return mr_err_set(e, MR_ENOMEM, "out of memory");
}

void mr_tls_free(mr_tls *t) {
    if (!t) return;
    pthread_mutex_destroy(&t->mu);
    free(t->cert);
    free(t->key);
    free(t->ca);
    free(t);
}
