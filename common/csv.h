/* csv.h — the one CSV/TSV reader of moerec (train, score, index, the SDIM
 * join), a streaming wrapper over libcsv with one set of rules:
 *
 *  - a header row names the columns; every later record has as many cells;
 *  - RFC 4180 quoting for CSV and TSV alike: a cell in double quotes may
 *    hold the delimiter, a line break or "" (one quote); a quote inside an
 *    unquoted cell, text after a closing quote or an unterminated quote is
 *    an error naming file and line;
 *  - a UTF-8 byte order mark before the header is skipped; LF and CRLF line
 *    ends; blank lines are skipped; cells are never trimmed;
 *  - the delimiter is a comma or a tab: the caller's choice, else by the
 *    file name (.tsv / .tab: tab, .csv: comma), else a tab when the header
 *    line holds one;
 *  - a record (with its quoted line breaks) is at most max_line bytes;
 *    longer is an error naming the line, never a silent cut;
 *  - missing values: a cell spelled as one of the missing list (default
 *    "" and "NA"; quoted or not) is missing to the numeric readers below;
 *  - numbers: mr_csv_double / _float / _i64 / _u64 are the only number
 *    parsers for input files; the whole cell must be the number (`1;5`,
 *    `abc`, `1.5` for an id, `nan`, `inf` are errors naming file, line,
 *    column name and number, and the cell).
 *
 * Cells of the current record stay valid until the next mr_csv_next.
 */
#ifndef MOEREC_COMMON_CSV_H
#define MOEREC_COMMON_CSV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/error.h"

#define MR_CSV_MAX_LINE_DEFAULT (1 << 20) /* bytes per record */
#define MR_CSV_MAX_COLS_DEFAULT 4096
#define MR_CSV_NA_DEFAULT ",NA" /* "" and NA */

typedef struct mr_csv_opts {
    char delim;      /* ',' or '\t'; 0 = by name, else sniff the header  */
    size_t max_line; /* bytes per record; 0 = MR_CSV_MAX_LINE_DEFAULT     */
    int max_cols;    /* columns; 0 = MR_CSV_MAX_COLS_DEFAULT              */
    const char *na;  /* comma-separated missing spellings; NULL = default */
} mr_csv_opts;

typedef struct mr_csv mr_csv;

/* Open path ("-" = stdin) and read its header row. */
int mr_csv_open(mr_csv **out, const char *path, const mr_csv_opts *o, mr_err *e);
/* Read from an open stream (not closed by mr_csv_close); name is used in
 * messages and for the delimiter choice. */
int mr_csv_open_stream(mr_csv **out, FILE *f, const char *name, const mr_csv_opts *o, mr_err *e);
void mr_csv_close(mr_csv *c);

/* 1: the next record is current; 0: end of input; < 0: error (message
 * names file and line). */
int mr_csv_next(mr_csv *c, mr_err *e);

const char *mr_csv_name(const mr_csv *c);
char mr_csv_delim(const mr_csv *c);
int mr_csv_ncols(const mr_csv *c);
const char *mr_csv_header(const mr_csv *c, int col);
/* Column index of name, or -1. */
int mr_csv_col(const mr_csv *c, const char *name);
/* A column that must exist: 0 and *col, or MR_EINVAL naming it. */
int mr_csv_need(const mr_csv *c, const char *name, int *col, mr_err *e);
/* Physical line (1-based) where the current record starts. */
long mr_csv_line(const mr_csv *c);
/* Bytes read so far (for progress). */
uint64_t mr_csv_offset(const mr_csv *c);

/* Cell col of the current record (NUL-terminated; "" past the end). */
const char *mr_csv_cell(const mr_csv *c, int col);
size_t mr_csv_cell_len(const mr_csv *c, int col);
/* 1 when s is one of the reader's missing spellings. */
int mr_csv_is_missing(const mr_csv *c, const char *s);

/* Numeric cells: 0 and *v, 1 when missing (*v untouched), MR_EINVAL
 * naming file:line, column and cell otherwise. _u64 refuses a sign. */
int mr_csv_double(const mr_csv *c, int col, double *v, mr_err *e);
int mr_csv_float(const mr_csv *c, int col, float *v, mr_err *e);
int mr_csv_i64(const mr_csv *c, int col, int64_t *v, mr_err *e);
int mr_csv_u64(const mr_csv *c, int col, uint64_t *v, mr_err *e);
/* mr_csv_double's rule for a cell kept from an earlier record (its line
 * and column), e.g. parsed later on another thread. */
int mr_csv_double_at(const mr_csv *c, long line, int col, const char *cell, double *v, mr_err *e);

/* The writer's side of the quoting rule: s as one cell of a delim-separated
 * output record, in double quotes ("" for a quote) when it holds the
 * delimiter, a quote, CR or LF, so the reader above reads s back. */
void mr_csv_put_cell(FILE *f, const char *s, char delim);

/* The parsers behind them, for one string: 0 ok, -1 not a (finite)
 * number of that kind. */
int mr_parse_double(const char *s, double *v);
int mr_parse_i64(const char *s, int64_t *v);
int mr_parse_u64(const char *s, uint64_t *v);

#endif
