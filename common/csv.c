/* csv.c — the CSV/TSV reader (see csv.h) over libcsv.
 *
 * Input is read one physical line at a time (bounded, so a file without
 * line ends cannot make us allocate without limit) and fed to libcsv in
 * strict mode; its cell callback copies cells into one buffer of the
 * current record and its row callback marks the record complete. Feeding a
 * line at a time is what gives every record its line number: an unquoted
 * line end closes a record, so a line completes at most one (a bare CR in
 * mid-line would close two; that is reported as an error, not guessed).
 */
#include "common/csv.h"

#include <csv.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct mr_csv {
    FILE *f;
    int own; /* f was opened here                          */
    char name[256];
    struct csv_parser p;
    int p_init;
    char delim;
    size_t max_line;
    int max_cols;
    /* missing spellings, split from opts.na */
    char *na_buf;
    char **na;
    int nna;
    /* the physical line being fed */
    char *line;
    size_t line_cap;
    long lineno;     /* lines read so far                          */
    uint64_t offset; /* bytes read so far                          */
    int eof;
    long pending; /* line already read (sniffing), to feed first */
    /* the record being assembled / current */
    char *buf; /* cells, each NUL-terminated                 */
    size_t len, cap;
    size_t *cell; /* (max_cols) offsets into buf                */
    int ncells;
    int rows_done;    /* records closed during the current feed     */
    int overflow;     /* 1: too long, 2: too many cells, 3: no mem  */
    long rec_line;    /* line where the current record starts       */
    size_t rec_bytes; /* bytes of it fed so far                     */
    /* the header */
    char *hbuf;
    size_t *hcell;
    int nh;
};

/* ---- number parsing: the only one for input files ---------------------- */

/* s without surrounding blanks into tmp (size n); NULL when it is too long. */
static const char *trim(const char *s, char *tmp, size_t n) {
    while (*s == ' ' || *s == '\t') s++;
    size_t l = strlen(s);
    while (l && (s[l - 1] == ' ' || s[l - 1] == '\t')) l--;
    if (l >= n) return NULL;
    memcpy(tmp, s, l);
    tmp[l] = 0;
    return tmp;
}

int mr_parse_double(const char *s, double *v) {
    char tmp[128];
    if (!(s = trim(s, tmp, sizeof tmp)) || !*s) return -1;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (*end || !isfinite(x) || strpbrk(s, "xX")) return -1; /* no hex, nan, inf */
    *v = x;
    return 0;
}

int mr_parse_i64(const char *s, int64_t *v) {
    char tmp[64];
    if (!(s = trim(s, tmp, sizeof tmp)) || !*s) return -1;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (*end || errno) return -1;
    *v = x;
    return 0;
}

int mr_parse_u64(const char *s, uint64_t *v) {
    char tmp[64];
    if (!(s = trim(s, tmp, sizeof tmp)) || !*s || *s == '-') return -1;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (*end || errno) return -1;
    *v = x;
    return 0;
}

/* ---- libcsv callbacks ---------------------------------------------------- */

static int no_space(unsigned char ch) {
    (void)ch;
    return 0; /* cells are never trimmed */
}

static void on_cell(void *s, size_t n, void *data) {
    mr_csv *c = data;
    if (c->overflow) return;
    if (c->rows_done) { /* a second record on one line: a bare CR */
        c->overflow = 4;
        return;
    }
    if (c->ncells == c->max_cols) {
        c->overflow = 2;
        return;
    }
    if (c->len + n + 1 > c->max_line + 1) {
        c->overflow = 1;
        return;
    }
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n + 1) cap *= 2;
        char *b = realloc(c->buf, cap);
        if (!b) {
            c->overflow = 3;
            return;
        }
        c->buf = b;
        c->cap = cap;
    }
    c->cell[c->ncells++] = c->len;
    if (n) memcpy(c->buf + c->len, s, n);
    c->len += n;
    c->buf[c->len++] = 0;
}

static void on_row(int term, void *data) {
    (void)term;
    mr_csv *c = data;
    c->rows_done++;
}

/* ---- reading ------------------------------------------------------------- */

/* Next physical line (with its '\n') into c->line: its length, 0 at the
 * end, -1 when longer than max_line. */
static long read_line(mr_csv *c) {
    size_t n = 0;
    int ch;
    while ((ch = getc_unlocked(c->f)) != EOF) {
        if (n + 2 > c->line_cap) {
            if (n >= c->max_line + 2) return -1;
            size_t cap = c->line_cap ? c->line_cap * 2 : 4096;
            char *l = realloc(c->line, cap);
            if (!l) return -2;
            c->line = l;
            c->line_cap = cap;
        }
        c->line[n++] = (char)ch;
        if (ch == '\n') break;
    }
    if (c->line) c->line[n] = 0;
    if (n > c->max_line + 1 || (n == c->max_line + 1 && c->line[n - 1] != '\n')) return -1;
    c->offset += n;
    if (n) c->lineno++;
    return (long)n;
}

static int feed_error(mr_csv *c, mr_err *e) {
    switch (c->overflow) {
    case 1:
        return mr_err_set(e, MR_EINVAL, "%s:%ld: record longer than %zu bytes", c->name, c->lineno,
                          c->max_line);
    case 2:
        return mr_err_set(e, MR_EINVAL, "%s:%ld: more than %d columns", c->name, c->lineno,
                          c->max_cols);
    case 3: return mr_err_set(e, MR_ENOMEM, "%s: out of memory", c->name);
    default:
        return mr_err_set(e, MR_EINVAL,
                          "%s:%ld: a carriage return inside an unquoted cell (CR-only line ends "
                          "are not supported)",
                          c->name, c->lineno);
    }
}

/* Assemble the next record into buf / cell: 1, 0 at the end, < 0 error. */
static int next_record(mr_csv *c, mr_err *e) {
    c->len = 0;
    c->ncells = 0;
    c->rows_done = 0;
    c->rec_line = 0;
    c->rec_bytes = 0;
    while (!c->rows_done) {
        if (c->eof) return 0;
        long n = c->pending ? c->pending : read_line(c);
        c->pending = 0;
        if (n == -1)
            return mr_err_set(e, MR_EINVAL, "%s:%ld: line longer than %zu bytes", c->name,
                              c->lineno + 1, c->max_line);
        if (n == -2) return mr_err_set(e, MR_ENOMEM, "%s: out of memory", c->name);
        const char *s = c->line;
        if (n == 0) {
            if (ferror(c->f))
                return mr_err_set(e, MR_EINTERNAL, "%s: read error: %s", c->name, strerror(errno));
            c->eof = 1;
            if (csv_fini(&c->p, on_cell, on_row, c) != 0)
                return mr_err_set(
                    e, MR_EINVAL,
                    "%s:%ld: unterminated quoted cell (in the record starting on line %ld)",
                    c->name, c->lineno, c->rec_line ? c->rec_line : c->lineno);
            if (c->overflow) return feed_error(c, e);
            if (!c->rows_done) return 0;
            break;
        }
        if (c->lineno == 1 && n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3)) s += 3, n -= 3; /* BOM */
        if (!c->rec_line && (size_t)n != strspn(s, "\r\n")) c->rec_line = c->lineno;
        if (c->rec_line && (c->rec_bytes += (size_t)n) > c->max_line + 2) {
            c->overflow = 1;
            return feed_error(c, e);
        }
        if (csv_parse(&c->p, s, (size_t)n, on_cell, on_row, c) != (size_t)n) {
            if (csv_error(&c->p) == CSV_EPARSE)
                return mr_err_set(e, MR_EINVAL,
                                  "%s:%ld: bad quotes in cell %d (a quote inside an unquoted "
                                  "cell, or text after a closing quote)",
                                  c->name, c->lineno, c->ncells + 1);
            return mr_err_set(e, MR_ENOMEM, "%s:%ld: %s", c->name, c->lineno,
                              csv_strerror(csv_error(&c->p)));
        }
        if (c->overflow) return feed_error(c, e);
    }
    if (!c->rec_line) c->rec_line = c->lineno;
    return 1;
}

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcasecmp(s + a - b, suf);
}

int mr_csv_open_stream(mr_csv **out, FILE *f, const char *name, const mr_csv_opts *o, mr_err *e) {
    *out = NULL;
    mr_csv_opts d = {0};
    if (!o) o = &d;
    if (o->delim && o->delim != ',' && o->delim != '\t')
        return mr_err_set(e, MR_EINVAL, "%s: the delimiter must be a comma or a tab", name);
    mr_csv *c = calloc(1, sizeof *c);
    if (!c) return mr_err_set(e, MR_ENOMEM, "%s: out of memory", name);
    int rc;
    c->f = f;
    snprintf(c->name, sizeof c->name, "%s", name);
    c->max_line = o->max_line ? o->max_line : MR_CSV_MAX_LINE_DEFAULT;
    c->max_cols = o->max_cols > 0 ? o->max_cols : MR_CSV_MAX_COLS_DEFAULT;
    c->cell = malloc(sizeof *c->cell * (size_t)c->max_cols);
    c->na_buf = strdup(o->na ? o->na : MR_CSV_NA_DEFAULT);
    if (!c->cell || !c->na_buf) goto oom;
    c->nna = 1;
    for (const char *p = c->na_buf; *p; p++) c->nna += *p == ',';
    if (!(c->na = malloc(sizeof *c->na * (size_t)c->nna))) goto oom;
    c->nna = 0;
    for (char *p = c->na_buf;;) {
        c->na[c->nna++] = p;
        char *q = strchr(p, ',');
        if (!q) break;
        *q = 0;
        p = q + 1;
    }
    if (csv_init(&c->p, CSV_STRICT | CSV_STRICT_FINI)) goto oom;
    c->p_init = 1;
    csv_set_space_func(&c->p, no_space);
    /* the delimiter: the caller's, the name's, else sniffed from line 1 */
    c->delim = o->delim;
    if (!c->delim && (has_suffix(name, ".tsv") || has_suffix(name, ".tab"))) c->delim = '\t';
    if (!c->delim && has_suffix(name, ".csv")) c->delim = ',';
    if (!c->delim) { /* sniff line 1, then feed it as the first line */
        long n = read_line(c);
        if (n < -1) goto oom;
        if (n == -1) {
            rc = mr_err_set(e, MR_EINVAL, "%s:1: line longer than %zu bytes", name, c->max_line);
            goto err;
        }
        c->delim = n > 0 && memchr(c->line, '\t', (size_t)n) ? '\t' : ',';
        c->pending = n;
    }
    csv_set_delim(&c->p, (unsigned char)c->delim);
    if ((rc = next_record(c, e)) < 0) goto err;
    if (!c->rows_done || c->ncells == 0) {
        rc = mr_err_set(e, MR_EINVAL, "%s is empty (a header line is required)", name);
        goto err;
    }
    /* keep the header */
    c->nh = c->ncells;
    c->hbuf = malloc(c->len ? c->len : 1);
    c->hcell = malloc(sizeof *c->hcell * (size_t)c->nh);
    if (!c->hbuf || !c->hcell) goto oom;
    memcpy(c->hbuf, c->buf, c->len);
    memcpy(c->hcell, c->cell, sizeof *c->hcell * (size_t)c->nh);
    *out = c;
    return 0;
oom:
    rc = mr_err_set(e, MR_ENOMEM, "%s: out of memory", name);
err:
    c->f = NULL; /* the caller's stream */
    mr_csv_close(c);
    return rc;
}

int mr_csv_open(mr_csv **out, const char *path, const mr_csv_opts *o, mr_err *e) {
    *out = NULL;
    int is_stdin = !strcmp(path, "-");
    FILE *f = is_stdin ? stdin : fopen(path, "r");
    if (!f)
        return mr_err_set(e, errno == ENOENT ? MR_ENOTFOUND : MR_EINTERNAL, "cannot open %s: %s",
                          path, strerror(errno));
    int rc = mr_csv_open_stream(out, f, is_stdin ? "stdin" : path, o, e);
    if (rc) {
        if (!is_stdin) fclose(f);
        return rc;
    }
    (*out)->own = !is_stdin;
    return 0;
}

void mr_csv_close(mr_csv *c) {
    if (!c) return;
    if (c->own && c->f) fclose(c->f);
    if (c->p_init) csv_free(&c->p);
    free(c->na_buf);
    free(c->na);
    free(c->line);
    free(c->buf);
    free(c->cell);
    free(c->hbuf);
    free(c->hcell);
    free(c);
}

int mr_csv_next(mr_csv *c, mr_err *e) {
    int rc = next_record(c, e);
    if (rc <= 0) return rc;
    if (c->ncells != c->nh)
        return mr_err_set(e, MR_EINVAL, "%s:%ld: %d cells, the header has %d", c->name, c->rec_line,
                          c->ncells, c->nh);
    return 1;
}

/* ---- accessors ----------------------------------------------------------- */

const char *mr_csv_name(const mr_csv *c) { return c->name; }
char mr_csv_delim(const mr_csv *c) { return c->delim; }
int mr_csv_ncols(const mr_csv *c) { return c->nh; }
long mr_csv_line(const mr_csv *c) { return c->rec_line; }
uint64_t mr_csv_offset(const mr_csv *c) { return c->offset; }

const char *mr_csv_header(const mr_csv *c, int col) {
    return col >= 0 && col < c->nh ? c->hbuf + c->hcell[col] : "";
}

int mr_csv_col(const mr_csv *c, const char *name) {
    for (int i = 0; i < c->nh; i++)
        if (!strcmp(c->hbuf + c->hcell[i], name)) return i;
    return -1;
}

int mr_csv_need(const mr_csv *c, const char *name, int *col, mr_err *e) {
    if ((*col = mr_csv_col(c, name)) >= 0) return 0;
    char hdr[160];
    size_t n = 0;
    hdr[0] = 0;
    for (int i = 0; i < c->nh && n + 1 < sizeof hdr; i++) {
        int w = snprintf(hdr + n, sizeof hdr - n, "%s%s", i ? "," : "", mr_csv_header(c, i));
        if (w < 0) break;
        n += (size_t)w;
    }
    if (n >= sizeof hdr) memcpy(hdr + sizeof hdr - 4, "...", 4);
    return mr_err_set(e, MR_EINVAL, "%s has no column '%s' (header: %s)", c->name, name, hdr);
}

const char *mr_csv_cell(const mr_csv *c, int col) {
    return col >= 0 && col < c->ncells ? c->buf + c->cell[col] : "";
}

size_t mr_csv_cell_len(const mr_csv *c, int col) {
    if (col < 0 || col >= c->ncells) return 0;
    size_t end = col + 1 < c->ncells ? c->cell[col + 1] - 1 : c->len - 1;
    return end - c->cell[col];
}

int mr_csv_is_missing(const mr_csv *c, const char *s) {
    for (int i = 0; i < c->nna; i++)
        if (!strcmp(c->na[i], s)) return 1;
    return 0;
}

static int bad_cell(const mr_csv *c, long line, int col, const char *cell, const char *what,
                    mr_err *e) {
    return mr_err_set(e, MR_EINVAL, "%s:%ld: column '%s' (%d): '%.40s' is not %s", c->name, line,
                      mr_csv_header(c, col), col + 1, cell, what);
}

static int bad_number(const mr_csv *c, int col, const char *what, mr_err *e) {
    return bad_cell(c, c->rec_line, col, mr_csv_cell(c, col), what, e);
}

int mr_csv_double_at(const mr_csv *c, long line, int col, const char *cell, double *v, mr_err *e) {
    if (mr_csv_is_missing(c, cell)) return 1;
    if (mr_parse_double(cell, v)) return bad_cell(c, line, col, cell, "a finite number", e);
    return 0;
}

int mr_csv_double(const mr_csv *c, int col, double *v, mr_err *e) {
    return mr_csv_double_at(c, c->rec_line, col, mr_csv_cell(c, col), v, e);
}

int mr_csv_float(const mr_csv *c, int col, float *v, mr_err *e) {
    double x;
    int rc = mr_csv_double(c, col, &x, e);
    if (rc) return rc;
    if (fabs(x) > FLT_MAX) return bad_number(c, col, "a finite float", e);
    *v = (float)x;
    return 0;
}

int mr_csv_i64(const mr_csv *c, int col, int64_t *v, mr_err *e) {
    const char *s = mr_csv_cell(c, col);
    if (mr_csv_is_missing(c, s)) return 1;
    if (mr_parse_i64(s, v)) return bad_number(c, col, "an integer", e);
    return 0;
}

int mr_csv_u64(const mr_csv *c, int col, uint64_t *v, mr_err *e) {
    const char *s = mr_csv_cell(c, col);
    if (mr_csv_is_missing(c, s)) return 1;
    if (mr_parse_u64(s, v)) return bad_number(c, col, "an id (an integer >= 0)", e);
    return 0;
}

void mr_csv_put_cell(FILE *f, const char *s, char delim) {
    const char special[] = {delim, '"', '\r', '\n', 0};
    if (!strpbrk(s, special)) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}
