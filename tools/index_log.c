/* index_log.c — the CSV reader of `moerec index features` and `moerec
 * index embeddings` (see index_log.h). */
#include "tools/index_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void ix_chomp(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = 0;
}

/* Split s in place at delim (RFC-4180: "a,b" is one field, "" a quote). */
static int split(char *s, char delim, char **out, int max) {
    int n = 0;
    while (n < max) {
        char *w = s;
        out[n++] = s;
        if (*s == '"') {
            char *r = s + 1;
            for (;;) {
                if (!*r) break;
                if (*r == '"' && r[1] == '"') *w++ = '"', r += 2;
                else if (*r == '"') {
                    r++;
                    break;
                } else *w++ = *r++;
            }
            while (*r && *r != delim) r++;
            char *next = *r ? r + 1 : NULL;
            *w = 0;
            if (!next) return n;
            s = next;
        } else {
            char *c = strchr(s, delim);
            if (!c) return n;
            *c = 0;
            s = c + 1;
        }
    }
    return n + 1; /* too many: the caller reports it */
}

int ix_log_open(ix_log *l, const char *path, mr_err *e) {
    memset(l, 0, sizeof *l);
    l->path = path;
    if (!(l->f = fopen(path, "r"))) return mr_err_set(e, MR_ENOTFOUND, "%s: %s", path, strerror(errno));
    if (getline(&l->line, &l->cap, l->f) < 0) return mr_err_set(e, MR_EINVAL, "%s: empty file (a header line is required)", path);
    ix_chomp(l->line);
    char *s = l->line;
    if (!strncmp(s, "\xEF\xBB\xBF", 3)) s += 3; /* UTF-8 BOM */
    if (!(l->hline = strdup(s))) return mr_err_set(e, MR_ENOMEM, "out of memory");
    l->delim = strchr(l->hline, '\t') ? '\t' : ',';
    l->nh = split(l->hline, l->delim, l->hdr, IX_LOG_COLS);
    if (l->nh > IX_LOG_COLS) return mr_err_set(e, MR_EINVAL, "%s: more than %d columns", path, IX_LOG_COLS);
    l->lineno = 1;
    return MR_OK;
}

int ix_log_col(const ix_log *l, const char *name, mr_err *e) {
    for (int i = 0; i < l->nh; i++)
        if (!strcmp(l->hdr[i], name)) return i;
    return mr_err_set(e, MR_EINVAL, "%s: no column '%s'", l->path, name);
}

/* 1 with a row in l->field, 0 at the end, < 0 on error. */
int ix_log_next(ix_log *l, mr_err *e) {
    for (;;) {
        if (getline(&l->line, &l->cap, l->f) < 0) return 0;
        l->lineno++;
        ix_chomp(l->line);
        if (!l->line[0]) continue;
        size_t n = strlen(l->line) + 1;
        if (n > l->wcap) {
            char *w = realloc(l->work, n);
            if (!w) return mr_err_set(e, MR_ENOMEM, "out of memory");
            l->work = w;
            l->wcap = n;
        }
        memcpy(l->work, l->line, n);
        l->n = split(l->work, l->delim, l->field, IX_LOG_COLS);
        if (l->n != l->nh)
            return mr_err_set(e, MR_EINVAL, "%s:%ld: %d fields, header has %d", l->path, l->lineno, l->n, l->nh);
        return 1;
    }
}

void ix_log_close(ix_log *l) {
    if (l->f) fclose(l->f);
    free(l->line);
    free(l->work);
    free(l->hline);
}


void ix_print_summary(json_t *o) {
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s) printf("%s\n", s);
    free(s);
    json_decref(o);
}
