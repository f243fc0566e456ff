/* graphhash_file.c — the GraphHash mappings file: pack, validate, save,
 * mmap load (layout in graphhash.h).
 *
 * The in-memory map and the loaded one share the same byte image, so one
 * validator covers both and save is a single write. Validation is O(n)
 * (checksum + order + range); loading 1M ids takes a few milliseconds and
 * protects the server from a truncated or corrupted file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomic_file.h"
#include "hashing/graphhash_int.h"
#include "hashing/idhash.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GraphHash mappings file is little-endian; add byte swapping for this target"
#endif

static size_t pad8(size_t x) { return (x + 7) & ~(size_t)7; }

static size_t side_bytes(uint64_t n) { return pad8((size_t)n * 12); }

size_t graphhash_image_len(uint64_t nusers, uint64_t nitems) {
    return GRAPHHASH_HEADER_BYTES + side_bytes(nusers) + side_bytes(nitems);
}

/* Header field offsets. */
enum {
    H_MAGIC = 0,
    H_VERSION = 8,
    H_HBYTES = 12,
    H_NU = 16,
    H_NI = 24,
    H_UK = 32,
    H_IK = 36,
    H_RES = 40,
    H_SEED = 48,
    H_SUM = 56
};

int graphhash_pack(void **image, size_t *len, const uint64_t *uids, const uint32_t *urows,
                   uint64_t nu, uint32_t uk, const uint64_t *iids, const uint32_t *irows,
                   uint64_t ni, uint32_t ik, double resolution, uint64_t seed, mr_err *e) {
    if (nu > ((uint64_t)1 << 40) || ni > ((uint64_t)1 << 40))
        return mr_err_set(e, MR_EINVAL, "graphhash: too many ids to pack");
    size_t n = graphhash_image_len(nu, ni);
    unsigned char *b = calloc(1, n);
    if (!b) return mr_err_set(e, MR_ENOMEM, "graphhash: out of memory for a %zu-byte map", n);
    uint32_t version = GRAPHHASH_FILE_VERSION, hbytes = GRAPHHASH_HEADER_BYTES;
    memcpy(b + H_MAGIC, GRAPHHASH_MAGIC, 8);
    memcpy(b + H_VERSION, &version, 4);
    memcpy(b + H_HBYTES, &hbytes, 4);
    memcpy(b + H_NU, &nu, 8);
    memcpy(b + H_NI, &ni, 8);
    memcpy(b + H_UK, &uk, 4);
    memcpy(b + H_IK, &ik, 4);
    memcpy(b + H_RES, &resolution, 8);
    memcpy(b + H_SEED, &seed, 8);
    unsigned char *p = b + GRAPHHASH_HEADER_BYTES;
    if (nu) memcpy(p, uids, nu * 8);
    if (nu) memcpy(p + nu * 8, urows, nu * 4);
    p += side_bytes(nu);
    if (ni) memcpy(p, iids, ni * 8);
    if (ni) memcpy(p + ni * 8, irows, ni * 4);
    uint64_t sum = idhash_checksum(b + GRAPHHASH_HEADER_BYTES, n - GRAPHHASH_HEADER_BYTES);
    memcpy(b + H_SUM, &sum, 8);
    *image = b;
    *len = n;
    return 0;
}

static int check_side(const uint64_t *ids, const uint32_t *rows, uint64_t n, uint32_t k,
                      const char *what, mr_err *e) {
    for (uint64_t j = 0; j < n; j++) {
        if (j && ids[j] <= ids[j - 1])
            return mr_err_set(e, MR_ECORRUPT,
                              "graphhash map: %s ids not strictly ascending at "
                              "%llu",
                              what, (unsigned long long)j);
        if (rows[j] >= k)
            return mr_err_set(e, MR_ECORRUPT, "graphhash map: %s row %u >= table size %u", what,
                              rows[j], k);
    }
    return 0;
}

int graphhash_attach(graphhash_map *m, void *image, size_t len, mr_err *e) {
    const unsigned char *b = image;
    if (len < GRAPHHASH_HEADER_BYTES)
        return mr_err_set(e, MR_ECORRUPT, "graphhash map: %zu bytes is shorter than the header",
                          len);
    if (memcmp(b + H_MAGIC, GRAPHHASH_MAGIC, 8) != 0)
        return mr_err_set(e, MR_ECORRUPT, "graphhash map: bad magic (not a mappings file)");
    uint32_t version, hbytes;
    memcpy(&version, b + H_VERSION, 4);
    memcpy(&hbytes, b + H_HBYTES, 4);
    if (version != GRAPHHASH_FILE_VERSION)
        return mr_err_set(e, MR_ECORRUPT, "graphhash map: version %u, this build reads %u", version,
                          GRAPHHASH_FILE_VERSION);
    if (hbytes != GRAPHHASH_HEADER_BYTES)
        return mr_err_set(e, MR_ECORRUPT, "graphhash map: header of %u bytes, expected %d", hbytes,
                          GRAPHHASH_HEADER_BYTES);
    uint64_t nu, ni, sum;
    memcpy(&nu, b + H_NU, 8);
    memcpy(&ni, b + H_NI, 8);
    memcpy(&m->k[0], b + H_UK, 4);
    memcpy(&m->k[1], b + H_IK, 4);
    memcpy(&m->resolution, b + H_RES, 8);
    memcpy(&m->seed, b + H_SEED, 8);
    memcpy(&sum, b + H_SUM, 8);
    if (nu > len || ni > len || graphhash_image_len(nu, ni) != len)
        return mr_err_set(e, MR_ECORRUPT,
                          "graphhash map: size %zu does not match %llu users "
                          "and %llu items (truncated?)",
                          len, (unsigned long long)nu, (unsigned long long)ni);
    if (m->k[0] == 0 || m->k[1] == 0)
        return mr_err_set(e, MR_ECORRUPT, "graphhash map: zero table size");
    if (idhash_checksum(b + GRAPHHASH_HEADER_BYTES, len - GRAPHHASH_HEADER_BYTES) != sum)
        return mr_err_set(e, MR_ECORRUPT, "graphhash map: checksum mismatch");
    const unsigned char *p = b + GRAPHHASH_HEADER_BYTES;
    m->n[0] = nu;
    m->ids[0] = (const uint64_t *)p;
    m->rows[0] = (const uint32_t *)(p + nu * 8);
    p += side_bytes(nu);
    m->n[1] = ni;
    m->ids[1] = (const uint64_t *)p;
    m->rows[1] = (const uint32_t *)(p + ni * 8);
    int rc = check_side(m->ids[0], m->rows[0], nu, m->k[0], "user", e);
    if (!rc) rc = check_side(m->ids[1], m->rows[1], ni, m->k[1], "item", e);
    if (rc) return rc;
    m->image = image;
    m->image_len = len;
    return 0;
}

int graphhash_map_save(const graphhash_map *m, const char *path, mr_err *e) {
    if (mr_write_file_atomic(path, m->image, m->image_len, e))
        return mr_err_wrap(e, "graphhash save");
    return 0;
}

int graphhash_map_load(graphhash_map **out, const char *path, mr_err *e) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mr_err_set(e, errno == ENOENT ? MR_ENOTFOUND : MR_EINTERNAL,
                          "graphhash load: cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size <= 0) {
        close(fd);
        return mr_err_set(e, MR_ECORRUPT, "graphhash load: %s is empty or unreadable", path);
    }
    size_t len = (size_t)st.st_size;
    void *img = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (img == MAP_FAILED)
        return mr_err_set(e, MR_EINTERNAL, "graphhash load: mmap %s: %s", path, strerror(errno));
    graphhash_map *m = calloc(1, sizeof *m);
    if (!m) {
        munmap(img, len);
        return mr_err_set(e, MR_ENOMEM, "graphhash load: out of memory");
    }
    int rc = graphhash_attach(m, img, len, e);
    if (rc) {
        munmap(img, len);
        free(m);
        mr_err_wrap(e, "%s", path);
        return rc;
    }
    m->mapped = 1;
    *out = m;
    return 0;
}

void graphhash_map_free(graphhash_map *m) {
    if (!m) return;
    if (m->mapped) munmap(m->image, m->image_len);
    else free(m->image);
    free(m);
}
