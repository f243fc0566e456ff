/* read_file.c — whole-file reads (see read_file.h). The buffer doubles from
 * 16 KiB, so a file of n bytes costs O(n) copies at most. */
#include "common/read_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *mr_read_file(const char *path, size_t max, size_t *len, mr_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        mr_err_set(e, errno == ENOENT ? MR_ENOTFOUND : MR_EINTERNAL, "%s: %s", path,
                   strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 14, n = 0, got;
    char *s = malloc(cap);
    int code = s ? 0 : MR_ENOMEM;
    while (!code && (got = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n > max) {
            code = MR_EINVAL;
        } else if (n + 1 == cap) {
            char *t = realloc(s, cap * 2);
            if (t) s = t, cap *= 2;
            else code = MR_ENOMEM;
        }
    }
    if (!code && ferror(f)) code = MR_EINTERNAL;
    fclose(f);
    if (code) {
        free(s);
        if (code == MR_EINVAL) mr_err_set(e, code, "%s: longer than %zu bytes", path, max);
        else
            mr_err_set(e, code, "%s: %s", path, code == MR_ENOMEM ? "out of memory" : "read error");
        return NULL;
    }
    s[n] = 0;
    if (len) *len = n;
    return s;
}
