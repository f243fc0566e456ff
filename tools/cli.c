/* cli.c — range-checked flag values (see cli.h). */
#include "tools/cli.h"

#include <getopt.h>
#include <stdint.h>
#include <string.h>

#include "common/csv.h"

int cli_parse_int(const char *flag, const char *text, long long min, long long max, long long *out,
                  mr_err *e) {
    int64_t v;
    if (!text || mr_parse_i64(text, &v) || v < min || v > max)
        return mr_err_set(e, MR_EINVAL, "%s: '%s' is not an integer in [%lld, %lld]", flag,
                          text ? text : "", min, max);
    *out = v;
    return 0;
}

int cli_parse_double(const char *flag, const char *text, double min, double max, double *out,
                     mr_err *e) {
    double v;
    if (!text || mr_parse_double(text, &v) || v < min || v > max)
        return mr_err_set(e, MR_EINVAL, "%s: '%s' is not a number in [%g, %g]", flag,
                          text ? text : "", min, max);
    *out = v;
    return 0;
}

int cli_int(const char *flag, const char *text, int min, int max, int *out, mr_err *e) {
    long long v = 0;
    int rc = cli_parse_int(flag, text, min, max, &v, e);
    if (!rc) *out = (int)v;
    return rc;
}

int cli_float(const char *flag, const char *text, double min, double max, float *out, mr_err *e) {
    double v = 0;
    int rc = cli_parse_double(flag, text, min, max, &v, e);
    if (!rc) *out = (float)v;
    return rc;
}

int cli_u64(const char *flag, const char *text, unsigned long long *out, mr_err *e) {
    uint64_t v;
    if (!text || mr_parse_u64(text, &v))
        return mr_err_set(e, MR_EINVAL, "%s: '%s' is not an integer >= 0", flag, text ? text : "");
    *out = v;
    return 0;
}

int cli_float_gt(const char *flag, const char *text, double min, double max, float *out,
                 mr_err *e) {
    double v;
    if (!text || mr_parse_double(text, &v) || !(v > min) || v > max)
        return mr_err_set(e, MR_EINVAL, "%s: '%s' is not a number in (%g, %g]", flag,
                          text ? text : "", min, max);
    *out = (float)v;
    return 0;
}

int cli_getopt_error(int c, char **argv, mr_err *e) {
    if (c == ':') return mr_err_set(e, MR_EINVAL, "%s needs a value", argv[optind - 1]);
    return mr_err_set(e, MR_EINVAL, "unknown option '%s'", argv[optind - 1]);
}

int cli_na(const char *flag, const char *text, char *buf, size_t n, mr_err *e) {
    size_t len = text ? strlen(text) : 0;
    if (!text || len + 2 > n || len + 2 > CLI_NA_MAX)
        return mr_err_set(e, MR_EINVAL, "%s: the list is longer than %d bytes", flag,
                          CLI_NA_MAX - 2);
    for (const char *p = text; *p;) {
        size_t w = strcspn(p, ",");
        if (w == 0 || w > 63 || memchr(p, '"', w))
            return mr_err_set(e, MR_EINVAL,
                              "%s: '%s': each spelling is 1..63 bytes without a quote, "
                              "separated by commas (the empty cell is always missing)",
                              flag, text);
        p += w;
        if (*p == ',' && !*++p)
            return mr_err_set(e, MR_EINVAL, "%s: '%s' ends in a comma", flag, text);
    }
    buf[0] = ',';
    memcpy(buf + 1, text, len + 1);
    return 0;
}

const char cli_label_usage[] =
    "  --label-positive TASK=VALUE  label of TASK = 1 when its cell equals VALUE, else 0\n"
    "                      (text labels; binary tasks; replaces model.json's rule)\n"
    "  --label-threshold TASK=X  label of TASK = 1 when its number is >= X, else 0\n"
    "                      (replaces model.json's rule; repeat either flag per task)\n";
