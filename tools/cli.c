/* cli.c — range-checked flag values (see cli.h). */
#include "tools/cli.h"

#include <stdint.h>

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
