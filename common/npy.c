/* npy.c — .npy matrices (see npy.h). The header is parsed by a small
 * recursive-descent reader of the Python literal subset numpy writes
 * (strings in ' or ", True/False, tuples of integers), so key order and
 * spacing do not matter and nothing outside the subset is accepted.
 */
#include "common/npy.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lit {
    const char *s, *end, *start, *name;
    mr_err *e;
} lit;

static void skip_ws(lit *p) {
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t')) p->s++;
}

static int expect(lit *p, char c) {
    skip_ws(p);
    if (p->s < p->end && *p->s == c) {
        p->s++;
        return 0;
    }
    return mr_err_set(p->e, MR_EINVAL, "%s: .npy header: expected '%c' at header byte %d", p->name,
                      c, (int)(p->s - p->start));
}

/* A quoted string into out (cap bytes). */
static int str(lit *p, char *out, size_t cap) {
    skip_ws(p);
    if (p->s >= p->end || (*p->s != '\'' && *p->s != '"'))
        return mr_err_set(p->e, MR_EINVAL, "%s: .npy header: expected a quoted string", p->name);
    char q = *p->s++;
    size_t n = 0;
    while (p->s < p->end && *p->s != q) {
        if (*p->s == '\\' || n + 1 >= cap)
            return mr_err_set(p->e, MR_EINVAL, "%s: .npy header: string too long or escaped",
                              p->name);
        out[n++] = *p->s++;
    }
    if (p->s >= p->end)
        return mr_err_set(p->e, MR_EINVAL, "%s: .npy header: unterminated string", p->name);
    p->s++;
    out[n] = 0;
    return 0;
}

/* A tuple of non-negative integers: (), (n,), (n, m), ... */
static int tuple(lit *p, int64_t *dims, int *nd) {
    *nd = 0;
    if (expect(p, '(')) return MR_EINVAL;
    for (;;) {
        skip_ws(p);
        if (p->s < p->end && *p->s == ')') {
            p->s++;
            return 0;
        }
        if (p->s >= p->end || *p->s < '0' || *p->s > '9' || *nd == 8)
            return mr_err_set(p->e, MR_EINVAL, "%s: .npy header: shape is not a tuple of integers",
                              p->name);
        int64_t v = 0;
        while (p->s < p->end && *p->s >= '0' && *p->s <= '9') {
            if (v > (INT64_MAX - 9) / 10)
                return mr_err_set(p->e, MR_EINVAL, "%s: .npy header: shape value too large",
                                  p->name);
            v = v * 10 + (*p->s++ - '0');
        }
        dims[(*nd)++] = v;
        skip_ws(p);
        if (p->s < p->end && *p->s == ',') p->s++;
        else if (p->s < p->end && *p->s != ')')
            return mr_err_set(p->e, MR_EINVAL, "%s: .npy header: shape is not a tuple of integers",
                              p->name);
    }
}

static int boolean(lit *p, int *v) {
    skip_ws(p);
    size_t left = (size_t)(p->end - p->s);
    if (left >= 4 && !memcmp(p->s, "True", 4)) *v = 1, p->s += 4;
    else if (left >= 5 && !memcmp(p->s, "False", 5)) *v = 0, p->s += 5;
    else
        return mr_err_set(p->e, MR_EINVAL, "%s: .npy header: fortran_order is not True or False",
                          p->name);
    return 0;
}

int mr_npy_parse_header(const char *name, const unsigned char *buf, size_t len, mr_npy_header *h,
                        mr_err *e) {
    memset(h, 0, sizeof *h);
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6))
        return mr_err_set(e, MR_EINVAL, "%s: not a .npy file (no \\x93NUMPY magic)", name);
    int major = buf[6];
    size_t hl, pre;
    if (major == 1) hl = buf[8] | (size_t)buf[9] << 8, pre = 10;
    else if (major == 2 || major == 3) {
        if (len < 12)
            return mr_err_set(e, MR_EINVAL, "%s: .npy file truncated in its preamble", name);
        hl = buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        pre = 12;
    } else
        return mr_err_set(e, MR_EINVAL, "%s: .npy format version %d.%d (1.0, 2.0 and 3.0 are read)",
                          name, major, buf[7]);
    if (hl > MR_NPY_MAX_HEADER)
        return mr_err_set(e, MR_EINVAL, "%s: .npy header of %zu bytes (at most %u)", name, hl,
                          MR_NPY_MAX_HEADER);
    if (pre + hl > len)
        return mr_err_set(e, MR_EINVAL, "%s: .npy header truncated (%zu bytes announced)", name,
                          hl);
    const char *hs = (const char *)buf + pre;
    if (hl == 0 || hs[hl - 1] != '\n')
        return mr_err_set(e, MR_EINVAL, "%s: .npy header does not end with a newline", name);
    for (size_t i = 0; i < hl; i++)
        if ((unsigned char)hs[i] < 0x20 && hs[i] != '\n' && hs[i] != '\t')
            return mr_err_set(e, MR_EINVAL, "%s: .npy header holds a control byte at %zu", name, i);
    lit p = {hs, hs + hl - 1, hs, name, e};
    char descr[32] = "", key[32];
    int fortran = -1, seen = 0, nd = -1;
    int64_t dims[8];
    if (expect(&p, '{')) return MR_EINVAL;
    for (;;) {
        skip_ws(&p);
        if (p.s < p.end && *p.s == '}') {
            p.s++;
            break;
        }
        if (str(&p, key, sizeof key) || expect(&p, ':')) return MR_EINVAL;
        int bit = !strcmp(key, "descr")           ? 1
                  : !strcmp(key, "fortran_order") ? 2
                  : !strcmp(key, "shape")         ? 4
                                                  : 0;
        if (!bit) return mr_err_set(e, MR_EINVAL, "%s: .npy header: unknown key '%s'", name, key);
        if (seen & bit)
            return mr_err_set(e, MR_EINVAL, "%s: .npy header: key '%s' repeated", name, key);
        seen |= bit;
        int rc = bit == 1   ? str(&p, descr, sizeof descr)
                 : bit == 2 ? boolean(&p, &fortran)
                            : tuple(&p, dims, &nd);
        if (rc) return MR_EINVAL;
        skip_ws(&p);
        if (p.s < p.end && *p.s == ',') p.s++;
        else if (p.s < p.end && *p.s != '}') return expect(&p, '}');
    }
    skip_ws(&p);
    if (p.s != p.end)
        return mr_err_set(e, MR_EINVAL, "%s: .npy header: bytes after the dict", name);
    if (seen != 7)
        return mr_err_set(e, MR_EINVAL, "%s: .npy header lacks '%s'", name,
                          !(seen & 1)   ? "descr"
                          : !(seen & 2) ? "fortran_order"
                                        : "shape");
    if ((descr[0] == '<' || descr[0] == '=') && !strcmp(descr + 1, "f4")) h->itemsize = 4;
    else if ((descr[0] == '<' || descr[0] == '=') && !strcmp(descr + 1, "f8")) h->itemsize = 8;
    else
        return mr_err_set(e, MR_EINVAL,
                          "%s: .npy dtype '%s' (little-endian float32 '<f4' or float64 '<f8' only)",
                          name, descr);
    if (fortran)
        return mr_err_set(e, MR_EINVAL,
                          "%s: .npy data in Fortran order (save a C-order array: "
                          "np.ascontiguousarray)",
                          name);
    if (nd != 2)
        return mr_err_set(e, MR_EINVAL, "%s: .npy shape has %d dimensions (2: rows, columns)", name,
                          nd);
    if (dims[0] < 1 || dims[1] < 1)
        return mr_err_set(e, MR_EINVAL, "%s: .npy shape (%lld, %lld) is empty", name,
                          (long long)dims[0], (long long)dims[1]);
    if (dims[0] > INT64_MAX / dims[1] / 8)
        return mr_err_set(e, MR_EINVAL, "%s: .npy shape (%lld, %lld) too large", name,
                          (long long)dims[0], (long long)dims[1]);
    h->rows = dims[0];
    h->cols = dims[1];
    h->data_off = pre + hl;
    return 0;
}

int mr_npy_read_f32(const char *path, float **data, int64_t *rows, int64_t *cols, mr_err *e) {
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return mr_err_set(e, MR_ENOTFOUND, "%s: %s", path, strerror(errno));
    unsigned char *head = NULL, *raw = NULL;
    float *out = NULL;
    mr_npy_header h;
    int rc = MR_OK;
    size_t cap = 12 + MR_NPY_MAX_HEADER, got;
    if (!(head = malloc(cap))) goto oom;
    got = fread(head, 1, cap, f);
    if ((rc = mr_npy_parse_header(path, head, got, &h, e))) goto out;
    size_t n = (size_t)(h.rows * h.cols), bytes = n * (size_t)h.itemsize;
    if (fseek(f, 0, SEEK_END) || ftell(f) < 0) {
        rc = mr_err_set(e, MR_EINTERNAL, "%s: %s", path, strerror(errno));
        goto out;
    }
    size_t size = (size_t)ftell(f);
    if (size != h.data_off + bytes) {
        rc = mr_err_set(
            e, MR_EINVAL,
            "%s: .npy data is %zu bytes, shape (%lld, %lld) of %d-byte floats needs %zu", path,
            size - h.data_off, (long long)h.rows, (long long)h.cols, h.itemsize, bytes);
        goto out;
    }
    if (!(raw = malloc(bytes)) || !(out = malloc(sizeof *out * n))) goto oom;
    if (fseek(f, (long)h.data_off, SEEK_SET) || fread(raw, 1, bytes, f) != bytes) {
        rc = mr_err_set(e, MR_EINTERNAL, "%s: read failed", path);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        double v;
        if (h.itemsize == 4) {
            float x;
            memcpy(&x, raw + 4 * i, 4);
            v = x;
        } else
            memcpy(&v, raw + 8 * i,
                   8); /* little-endian data on a little-endian host (x86-64, arm64) */
        if (!isfinite(v) || fabs(v) > FLT_MAX) {
            rc = mr_err_set(
                e, MR_EINVAL,
                "%s: .npy value at row %zu, column %zu is %g (finite float values only)", path,
                i / (size_t)h.cols, i % (size_t)h.cols, v);
            goto out;
        }
        out[i] = (float)v;
    }
    *data = out;
    out = NULL;
    *rows = h.rows;
    *cols = h.cols;
    goto out;
oom:
    rc = mr_err_set(e, MR_ENOMEM, "%s: out of memory", path);
out:
    fclose(f);
    free(head);
    free(raw);
    free(out);
    return rc;
}
