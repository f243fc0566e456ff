/* index_log.h — a small CSV reader for interaction logs (`moerec index
 * features`, `moerec index embeddings`, `moerec train --split user-time`): a
 * header line (a UTF-8 BOM is skipped; TSV when it holds a tab, as
 * moe_dataset_read decides), RFC-4180 quoting on one line ("a,b" is one field, "" a quote),
 * every row with the header's number of fields, empty lines skipped.
 * Kept behind these four functions so it can move to the common CSV reader.
 */
#ifndef MOEREC_TOOLS_INDEX_LOG_H
#define MOEREC_TOOLS_INDEX_LOG_H

#include <jansson.h>
#include <stdio.h>

#include "common/error.h"

#define IX_LOG_COLS 1024

typedef struct ix_log {
    FILE *f;
    const char *path;
    char *line, *work;        /* the raw line / its split copy      */
    size_t cap, wcap;
    long lineno;              /* of the current line (header = 1)   */
    int n;                    /* fields of the current line         */
    char *field[IX_LOG_COLS]; /* the current row's fields           */
    char *hdr[IX_LOG_COLS];   /* the header's column names          */
    int nh;
    char *hline;
    char delim;               /* ',' or a tab (the header has one)  */
} ix_log;

/* Open path and read its header. On error the caller still calls close. */
int ix_log_open(ix_log *l, const char *path, mr_err *e);
/* Index of column name, or MR_EINVAL naming the file and column. */
int ix_log_col(const ix_log *l, const char *name, mr_err *e);
/* 1 with a row in l->field, 0 at the end, < 0 on error (file:line). */
int ix_log_next(ix_log *l, mr_err *e);
void ix_log_close(ix_log *l);
/* Print o as one compact JSON line on stdout (full double precision) and
 * release it. */
void ix_print_summary(json_t *o);
/* Strip a trailing newline / CR in place. */
void ix_chomp(char *s);

#endif
