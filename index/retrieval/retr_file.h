/* retr_file.h — small binary-file helpers shared by the retrieval files
 * that persist state (FAISS meta files, router pilots): a growable write
 * buffer, a bounds-checked reader, the xxh3 file checksum, whole-file read and
 * atomic write (temporary file + rename). */
#ifndef MOEREC_INDEX_RETR_FILE_H
#define MOEREC_INDEX_RETR_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct retr_wbuf {
    unsigned char *p;
    size_t n, cap;
} retr_wbuf;

typedef struct retr_rbuf {
    const unsigned char *p;
    size_t n, at;
} retr_rbuf;

/* 0 or MR_ENOMEM. */
int retr_wbuf_put(retr_wbuf *b, const void *src, size_t n);
/* Append the checksum (idhash_checksum, xxh3) of everything so far (8 bytes). */
int retr_wbuf_seal(retr_wbuf *b);
void retr_wbuf_free(retr_wbuf *b);
/* 0, or -1 when fewer than n bytes remain. */
int retr_rbuf_take(retr_rbuf *r, void *dst, size_t n);
/* Check the trailing checksum; on success r covers the payload only. */
int retr_rbuf_open(retr_rbuf *r, const unsigned char *p, size_t n);
int retr_file_read(const char *path, unsigned char **out, size_t *n, mr_err *e);
/* Size and xxh3-64 of a whole file, read in chunks (FAISS index files are
 * checked against their meta file before FAISS parses them). */
int retr_file_hash(const char *path, uint64_t *size, uint64_t *hash, mr_err *e);
/* Write a buffer built with retr_wbuf_put/_seal (bad != 0: a put failed,
 * report MR_ENOMEM) atomically to path, then free it. */
int retr_file_commit(retr_wbuf *b, int bad, const char *path, mr_err *e);
/* Read path, check its checksum, 8-byte magic and u32 version: on success
 * *buf (free it) holds the file and r is positioned after the version.
 * MR_ENOTFOUND when missing, MR_ECORRUPT (naming `what`) when invalid. */
int retr_file_open(const char *path, const char *magic, uint32_t version, const char *what,
                   unsigned char **buf, retr_rbuf *r, mr_err *e);
/* A default expert name from a file path: the base name up to its first
 * '.' ("v3/items.faiss" -> "items"), truncated to fit out (n bytes). */
void retr_file_stem(const char *path, char *out, size_t n);
/* name when given, else the stem of path written into buf. */
const char *retr_file_name_or_stem(const char *name, const char *path, char *buf, size_t n);

#endif
