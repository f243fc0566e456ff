/* retr_file.c — binary-file helpers for the retrieval half (see
 * retr_file.h). Formats are little-endian, as written by x86-64 and arm64;
 * each file starts with its own magic and version and ends with the xxh3
 * checksum of hashing/idhash.h (version 1 files: FNV-1a, still read), so a
 * truncated or damaged file is refused, not misread. */
#include "index/retrieval/retr_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/atomic_file.h"
#include "hashing/idhash.h"

#include <xxhash.h>

/* Version 1 files of every retriever format ended in FNV-1a; still read. */
static uint64_t retr_fnv1a(const unsigned char *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

int retr_wbuf_put(retr_wbuf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) return MR_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
    return 0;
}

int retr_wbuf_seal(retr_wbuf *b) {
    uint64_t h = idhash_checksum(b->p, b->n);
    return retr_wbuf_put(b, &h, sizeof h);
}

void retr_wbuf_free(retr_wbuf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

int retr_rbuf_take(retr_rbuf *r, void *dst, size_t n) {
    if (n > r->n - r->at) return -1;
    memcpy(dst, r->p + r->at, n);
    r->at += n;
    return 0;
}

static int rbuf_open_sum(retr_rbuf *r, const unsigned char *p, size_t n, int fnv) {
    uint64_t h;
    if (n < sizeof h) return -1;
    memcpy(&h, p + n - sizeof h, sizeof h);
    if (h != (fnv ? retr_fnv1a(p, n - sizeof h) : idhash_checksum(p, n - sizeof h))) return -1;
    r->p = p;
    r->n = n - sizeof h;
    r->at = 0;
    return 0;
}

int retr_rbuf_open(retr_rbuf *r, const unsigned char *p, size_t n) {
    return rbuf_open_sum(r, p, n, 0);
}

int retr_file_hash(const char *path, uint64_t *size, uint64_t *hash, mr_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return mr_err_set(e, MR_ENOTFOUND, "cannot open %s", path);
    XXH3_state_t *st = XXH3_createState();
    unsigned char *buf = malloc(1 << 20);
    int rc = 0;
    if (!st || !buf || XXH3_64bits_reset(st) != XXH_OK) {
        rc = mr_err_set(e, MR_ENOMEM, "out of memory hashing %s", path);
        goto out;
    }
    uint64_t n = 0;
    size_t got;
    while ((got = fread(buf, 1, 1 << 20, f)) > 0) {
        XXH3_64bits_update(st, buf, got);
        n += got;
    }
    if (ferror(f)) {
        rc = mr_err_set(e, MR_EINTERNAL, "read error on %s", path);
        goto out;
    }
    *size = n;
    *hash = XXH3_64bits_digest(st);
out:
    free(buf);
    if (st) XXH3_freeState(st);
    fclose(f);
    return rc;
}

int retr_file_read(const char *path, unsigned char **out, size_t *n, mr_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return mr_err_set(e, MR_ENOTFOUND, "cannot open %s", path);
    unsigned char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            unsigned char *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                fclose(f);
                return mr_err_set(e, MR_ENOMEM, "out of memory reading %s", path);
            }
            buf = p;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return mr_err_set(e, MR_EINTERNAL, "read error on %s", path);
    }
    *out = buf;
    *n = len;
    return 0;
}

void retr_file_stem(const char *path, char *out, size_t n) {
    const char *slash = strrchr(path, '/');
    snprintf(out, n, "%s", slash ? slash + 1 : path);
    out[strcspn(out, ".")] = 0;
}

int retr_file_commit(retr_wbuf *b, int bad, const char *path, mr_err *e) {
    int rc = bad ? mr_err_set(e, MR_ENOMEM, "out of memory writing %s", path)
                 : mr_write_file_atomic(path, b->p, b->n, e);
    retr_wbuf_free(b);
    return rc;
}

int retr_file_open(const char *path, const char *magic, uint32_t version, const char *what,
                   unsigned char **buf, retr_rbuf *r, mr_err *e) {
    size_t len = 0;
    *buf = NULL;
    int rc = retr_file_read(path, buf, &len, e);
    if (rc) return rc;
    char m[8];
    uint32_t v = 0;
    if (len >= 12) memcpy(&v, *buf + 8, 4);
    /* version 1 of every format differs from 2 only in its FNV-1a checksum */
    int old = version == 2 && v == 1;
    if (rbuf_open_sum(r, *buf, len, old) || retr_rbuf_take(r, m, 8) || memcmp(m, magic, 8) ||
        retr_rbuf_take(r, &v, 4) || (v != version && !old)) {
        free(*buf);
        *buf = NULL;
        return mr_err_set(e, MR_ECORRUPT, "%s is not a valid moerec %s file (or is damaged)", path,
                          what);
    }
    return 0;
}

const char *retr_file_name_or_stem(const char *name, const char *path, char *buf, size_t n) {
    if (name) return name;
    retr_file_stem(path, buf, n);
    return buf;
}
