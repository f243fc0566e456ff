/* graphhash_int.h — the graphhash_map fields, shared by graphhash.c
 * (build, lookup), graphhash_file.c (pack, save, mmap load) and
 * graphhash_mapper.c. Internal to hashing/.
 *
 * A map always points into one image of the mappings file: a malloc'd
 * buffer when built in memory, the mmap'd file when loaded. Both are
 * validated by graphhash_attach, so in-memory and loaded maps behave alike.
 */
#ifndef MOEREC_HASHING_GRAPHHASH_INT_H
#define MOEREC_HASHING_GRAPHHASH_INT_H

#include "hashing/graphhash.h"

#define GRAPHHASH_HEADER_BYTES 64

struct graphhash_map {
    uint64_t n[2];           /* ids per side (users, items) */
    uint32_t k[2];           /* table size per side */
    const uint64_t *ids[2];  /* (n[s]) sorted ids */
    const uint32_t *rows[2]; /* (n[s]) cluster row of ids[s][j] */
    double resolution;       /* Louvain resolution used (informational) */
    uint64_t seed;           /* fallback hash seed */
    void *image;             /* the file image */
    size_t image_len;        /* its bytes */
    int mapped;              /* 1: image is mmap'd, else malloc'd */
};

/* Bytes of the image for n users and n items. */
size_t graphhash_image_len(uint64_t nusers, uint64_t nitems);
/* Allocate an image and write header + tables (ids sorted per side). */
int graphhash_pack(void **image, size_t *len, const uint64_t *uids, const uint32_t *urows,
                   uint64_t nu, uint32_t uk, const uint64_t *iids, const uint32_t *irows,
                   uint64_t ni, uint32_t ik, double resolution, uint64_t seed, mr_err *e);
/* Validate image and point m's tables into it (takes no ownership). */
int graphhash_attach(graphhash_map *m, void *image, size_t len, mr_err *e);

#endif
