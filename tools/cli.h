/* cli.h — flag values for every `moerec` subcommand: numbers through the
 * one number parser (common/csv.h's mr_parse_*), range-checked, with an
 * error naming the flag ("--epochs: 'x' is not an integer in [1, 1000000]"),
 * never atoi's silent 0. */
#ifndef MOEREC_TOOLS_CLI_H
#define MOEREC_TOOLS_CLI_H

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

#endif
