/* safetensors.c — validated reader and atomic writer of safetensors files
 * (see safetensors.h). The readers copy data (the whole data section into
 * one aligned buffer, or one tensor range at a time with moe_st_pread)
 * rather than mmap-ing it: model files are loaded once per version, and a
 * private copy cannot change under a serving process if the file is
 * rewritten in place.
 */
#include "moe/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/atomic_file.h"
#include "common/tensor.h"

#define ST_MAX_HEADER (100u << 20) /* the Python reader's own limit */

/* Read the file's header bytes into *hdr (malloc'd, *hlen bytes) and its
 * data section straight into the aligned *data buffer (*datalen bytes): the
 * data is never held twice, so loading a model of S bytes peaks at S plus
 * the header, not 2S. */
static int read_parts(const char *path, char **hdr, uint64_t *hlen, float **data, size_t *datalen,
                      int header_only, mr_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return mr_err_set(e, errno == ENOENT ? MR_ENOTFOUND : MR_EINTERNAL, "%s: %s", path,
                          strerror(errno));
    int rc = 0;
    long sz;
    unsigned char lenb[8];
    if (fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) goto io;
    size_t len = (size_t)sz;
    if (len < 8) {
        rc = mr_err_set(e, MR_ECORRUPT, "%s: %zu bytes, too short for a safetensors header", path,
                        len);
        goto done;
    }
    if (fread(lenb, 1, 8, f) != 8) goto io;
    *hlen = 0;
    for (int i = 7; i >= 0; i--) *hlen = (*hlen << 8) | lenb[i];
    if (*hlen > ST_MAX_HEADER || *hlen > len - 8) {
        rc = mr_err_set(e, MR_ECORRUPT, "%s: header length %llu does not fit the %zu-byte file",
                        path, (unsigned long long)*hlen, len);
        goto done;
    }
    *datalen = len - 8 - (size_t)*hlen;
    *hdr = malloc((size_t)*hlen + 1);
    if (!header_only) *data = mr_floats_alloc(*datalen / sizeof(float) + 1);
    if (!*hdr || (!header_only && !*data)) {
        rc = mr_err_set(e, MR_ENOMEM, "%s: cannot allocate %zu bytes", path, len);
        goto done;
    }
    if (fread(*hdr, 1, (size_t)*hlen, f) != (size_t)*hlen ||
        (!header_only && fread(*data, 1, *datalen, f) != *datalen))
        goto io;
    goto done;
io:
    rc = mr_err_set(e, MR_EINTERNAL, "%s: read failed: %s", path,
                    ferror(f) ? strerror(errno) : "short read");
done:
    fclose(f);
    return rc;
}

void moe_st_free(moe_st_file *f) {
    if (!f) return;
    if (f->has_fd) close(f->fd);
    for (int i = 0; i < f->n; i++) free(f->entries[i].name);
    free(f->entries);
    mr_floats_free(f->buf);
    free(f->metadata_json);
    memset(f, 0, sizeof *f);
}

const moe_st_entry *moe_st_find(const moe_st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->entries[i].name, name)) return &f->entries[i];
    return NULL;
}

typedef struct span {
    size_t b, e;
    int idx;
} span;

static int by_begin(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->b < y->b ? -1 : x->b > y->b;
}

static int parse_entry(moe_st_entry *en, span *sp, const char *name, json_t *v, size_t datalen,
                       const char *path, mr_err *e) {
    if (!json_is_object(v))
        return mr_err_set(e, MR_ECORRUPT, "%s: tensor '%s': header entry is not an object", path,
                          name);
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
           *off = json_object_get(v, "data_offsets");
    if (!json_is_string(dt))
        return mr_err_set(e, MR_ECORRUPT, "%s: tensor '%s': missing dtype", path, name);
    if (strcmp(json_string_value(dt), "F32") != 0)
        return mr_err_set(e, MR_ECORRUPT, "%s: tensor '%s': dtype %s, moerec needs F32", path, name,
                          json_string_value(dt));
    if (!json_is_array(shape) || json_array_size(shape) > MOE_ST_MAX_DIMS)
        return mr_err_set(e, MR_ECORRUPT, "%s: tensor '%s': bad shape", path, name);
    if (!json_is_array(off) || json_array_size(off) != 2 ||
        !json_is_integer(json_array_get(off, 0)) || !json_is_integer(json_array_get(off, 1)))
        return mr_err_set(e, MR_ECORRUPT, "%s: tensor '%s': bad data_offsets", path, name);
    size_t n = 1;
    en->ndim = (int)json_array_size(shape);
    for (int d = 0; d < en->ndim; d++) {
        json_t *s = json_array_get(shape, (size_t)d);
        if (!json_is_integer(s) || json_integer_value(s) < 0 || json_integer_value(s) > (1LL << 40))
            return mr_err_set(e, MR_ECORRUPT, "%s: tensor '%s': bad shape[%d]", path, name, d);
        en->shape[d] = json_integer_value(s);
        if (en->shape[d] && n > (SIZE_MAX / 8) / (size_t)en->shape[d])
            return mr_err_set(e, MR_ECORRUPT, "%s: tensor '%s': shape too large", path, name);
        n *= (size_t)en->shape[d];
    }
    json_int_t b = json_integer_value(json_array_get(off, 0)),
               end = json_integer_value(json_array_get(off, 1));
    if (b < 0 || end < b || (size_t)end > datalen)
        return mr_err_set(
            e, MR_ECORRUPT,
            "%s: tensor '%s': data_offsets [%lld, %lld] outside the %zu data bytes (truncated file?)",
            path, name, (long long)b, (long long)end, datalen);
    if ((size_t)(end - b) != n * sizeof(float))
        return mr_err_set(e, MR_ECORRUPT, "%s: tensor '%s': %lld bytes for shape of %zu floats",
                          path, name, (long long)(end - b), n);
    en->n = n;
    sp->b = (size_t)b;
    sp->e = (size_t)end;
    en->name = strdup(name);
    if (!en->name) return mr_err_set(e, MR_ENOMEM, "out of memory");
    return 0;
}

static int st_load(moe_st_file *out, const char *path, int header_only, mr_err *e) {
    memset(out, 0, sizeof *out);
    char *raw_hdr = NULL;
    float *data = NULL;
    uint64_t hlen = 0;
    size_t datalen = 0;
    json_t *hdr = NULL;
    span *spans = NULL;
    int rc = read_parts(path, &raw_hdr, &hlen, &data, &datalen, header_only, e);
    out->buf = data; /* owned by out from here: moe_st_free releases it */
    if (rc) goto done;
    json_error_t je;
    hdr = json_loadb(raw_hdr, (size_t)hlen, 0, &je);
    if (!json_is_object(hdr)) {
        rc = mr_err_set(e, MR_ECORRUPT, "%s: header is not a JSON object (%s)", path,
                        hdr ? "" : je.text);
        goto done;
    }
    size_t nent = json_object_size(hdr);
    out->entries = calloc(nent + 1, sizeof *out->entries);
    spans = calloc(nent + 1, sizeof *spans);
    if (!out->entries || !spans) {
        rc = mr_err_set(e, MR_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    out->nbytes = datalen;
    const char *key;
    json_t *v;
    json_object_foreach(hdr, key, v) {
        if (!strcmp(key, "__metadata__")) {
            out->metadata_json = json_dumps(v, JSON_COMPACT);
            continue;
        }
        moe_st_entry *en = &out->entries[out->n];
        rc = parse_entry(en, &spans[out->n], key, v, datalen, path, e);
        if (rc) goto done;
        spans[out->n].idx = out->n;
        en->data = out->buf ? (const float *)((const char *)out->buf + spans[out->n].b) : NULL;
        en->off = 8 + hlen + spans[out->n].b;
        out->n++;
    }
    qsort(spans, (size_t)out->n, sizeof *spans, by_begin);
    for (int i = 1; i < out->n; i++)
        if (spans[i].b < spans[i - 1].e) {
            rc = mr_err_set(e, MR_ECORRUPT, "%s: tensor '%s' overlaps tensor '%s'", path,
                            out->entries[spans[i].idx].name, out->entries[spans[i - 1].idx].name);
            goto done;
        }
    for (int i = 0; i < out->n; i++)
        if (spans[i].b % sizeof(float)) {
            rc = mr_err_set(e, MR_ECORRUPT, "%s: tensor '%s' is not 4-byte aligned", path,
                            out->entries[spans[i].idx].name);
            goto done;
        }
    rc = 0;
    if (header_only) {
        out->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (out->fd < 0) {
            rc = mr_err_set(e, MR_EINTERNAL, "%s: %s", path, strerror(errno));
            goto done;
        }
        out->has_fd = 1;
    }
done:
    if (rc) moe_st_free(out);
    json_decref(hdr);
    free(spans);
    free(raw_hdr);
    return rc;
}

int moe_st_read(moe_st_file *out, const char *path, mr_err *e) { return st_load(out, path, 0, e); }

int moe_st_open(moe_st_file *out, const char *path, mr_err *e) { return st_load(out, path, 1, e); }

int moe_st_pread(const moe_st_file *f, const moe_st_entry *en, size_t first, size_t n, float *dst,
                 mr_err *e) {
    if (!f->has_fd) return mr_err_set(e, MR_EINVAL, "tensor '%s': file not open", en->name);
    if (first > en->n || n > en->n - first)
        return mr_err_set(e, MR_EINVAL, "tensor '%s': floats [%zu, %zu) outside its %zu", en->name,
                          first, first + n, en->n);
    char *p = (char *)dst;
    size_t left = n * sizeof(float);
    off_t at = (off_t)(en->off + first * sizeof(float));
    while (left) {
        ssize_t r = pread(f->fd, p, left, at);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return mr_err_set(e, MR_EINTERNAL, "tensor '%s': read failed: %s", en->name,
                              r < 0 ? strerror(errno) : "short read (file truncated?)");
        p += r;
        at += r;
        left -= (size_t)r;
    }
    return 0;
}

int moe_st_write(const char *path, const moe_st_tensor *t, int n, const char *const *meta,
                 int nmeta, mr_err *e) {
    json_t *hdr = json_object();
    if (!hdr) return mr_err_set(e, MR_ENOMEM, "out of memory");
    if (nmeta > 0) {
        json_t *m = json_object();
        for (int i = 0; i < nmeta; i++)
            json_object_set_new(m, meta[2 * i], json_string(meta[2 * i + 1]));
        json_object_set_new(hdr, "__metadata__", m);
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t cnt = 1;
        json_t *shape = json_array();
        for (int d = 0; d < t[i].ndim; d++) {
            json_array_append_new(shape, json_integer(t[i].shape[d]));
            cnt *= (size_t)t[i].shape[d];
        }
        json_t *en = json_object();
        json_object_set_new(en, "dtype", json_string("F32"));
        json_object_set_new(en, "shape", shape);
        json_t *o = json_array();
        json_array_append_new(o, json_integer((json_int_t)off));
        json_array_append_new(o, json_integer((json_int_t)(off + cnt * sizeof(float))));
        json_object_set_new(en, "data_offsets", o);
        json_object_set_new(hdr, t[i].name, en);
        off += cnt * sizeof(float);
    }
    char *js = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(hdr);
    if (!js) return mr_err_set(e, MR_ENOMEM, "out of memory");
    size_t jl = strlen(js), padded = (jl + 7) & ~(size_t)7; /* data starts 8-byte aligned */
    mr_afile af;
    int rc = mr_afile_open(&af, path, e);
    if (rc) {
        free(js);
        return rc;
    }
    FILE *f = af.f;
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int ok = fwrite(lenb, 1, 8, f) == 8 && fwrite(js, 1, jl, f) == jl;
    for (size_t i = jl; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    for (int i = 0; ok && i < n; i++) {
        size_t cnt = 1;
        for (int d = 0; d < t[i].ndim; d++) cnt *= (size_t)t[i].shape[d];
        ok = fwrite(t[i].data, sizeof(float), cnt, f) == cnt; /* x86/arm64: already little-endian */
    }
    free(js);
    if (!ok) {
        int err = errno;
        mr_afile_abort(&af);
        return mr_err_set(e, MR_EINTERNAL, "%s: write failed: %s", path, strerror(err));
    }
    return mr_afile_commit(&af, e);
}
