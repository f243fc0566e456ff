/* cli.h — flag values for every `moerec` subcommand: numbers through the
 * one number parser (common/csv.h's mr_parse_*), range-checked, with an
 * error naming the flag ("--epochs: 'x' is not an integer in [1, 1000000]"),
 * never atoi's silent 0. */
#ifndef MOEREC_TOOLS_CLI_H
#define MOEREC_TOOLS_CLI_H

#include "common/csv.h"
#include "common/error.h"

/* 0 and *out, or MR_EINVAL naming flag, text and the range. */
int cli_parse_int(const char *flag, const char *text, long long min, long long max, long long *out,
                  mr_err *e);
int cli_parse_double(const char *flag, const char *text, double min, double max, double *out,
                     mr_err *e);
/* Same, straight into an int / float / unsigned 64-bit seed. */
int cli_int(const char *flag, const char *text, int min, int max, int *out, mr_err *e);
int cli_float(const char *flag, const char *text, double min, double max, float *out, mr_err *e);
int cli_u64(const char *flag, const char *text, unsigned long long *out, mr_err *e);
/* A float in (min, max]: "--top-p: '0' is not a number in (0, 1]". */
int cli_float_gt(const char *flag, const char *text, double min, double max, float *out, mr_err *e);

/* getopt_long's ':' (a flag without its value) and '?' (an unknown flag)
 * as MR_EINVAL naming the flag: "--epochs needs a value", "unknown option
 * '--bogus'". argv and optind as getopt_long left them. */
int cli_getopt_error(int c, char **argv, mr_err *e);

/* --na LIST: the cell spellings (comma-separated, each 1..63 bytes, no
 * quote) that input files' readers take as a missing value besides the
 * empty cell, which is always missing. Writes common/csv.h's na list (",LIST")
 * into buf (CLI_NA_MAX bytes); the default, without the flag, is "NA". */
#define CLI_NA_MAX 512
int cli_na(const char *flag, const char *text, char *buf, size_t n, mr_err *e);
/* The reader options of a command's input files: na as cli_na wrote it
 * ("" before any --na: the reader's default). */
static inline mr_csv_opts cli_csv_opts(const char *na) {
    mr_csv_opts o = {0};
    o.na = na && na[0] ? na : NULL;
    return o;
}

/* --label-positive / --label-threshold (moerec train, moerec score; the
 * rules of moe_model_label_rule), at most this many per command line. */
#define CLI_MAX_LABEL_RULES 32
extern const char cli_label_usage[];

#endif
