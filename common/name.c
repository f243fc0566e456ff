/* name.c — the name rule of name.h: one character set, one length check,
 * one message. */
#include "common/name.h"

#include <string.h>

int mr_name_char_ok(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

int mr_name_ok(const char *s, size_t max) { return mr_name_check("name", s, max, NULL) == 0; }

int mr_name_check(const char *what, const char *s, size_t max, mr_err *e) {
    if (!s || !s[0]) return mr_err_set(e, MR_EINVAL, "%s is empty", what);
    size_t n = strlen(s);
    if (n >= max)
        return mr_err_set(e, MR_EINVAL, "%s '%.32s...' is longer than %zu bytes", what, s, max - 1);
    for (size_t i = 0; i < n; i++)
        if (!mr_name_char_ok((unsigned char)s[i]))
            return mr_err_set(e, MR_EINVAL,
                              "%s '%s' has a bad character at %zu (allowed: letters, "
                              "digits, _ . -)",
                              what, s, i);
    return 0;
}

int mr_file_name_ok(const char *s, size_t max) {
    size_t n = s ? strlen(s) : 0;
    return n > 0 && n < max && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

void mr_name_sanitize(char *s) {
    for (; *s; s++)
        if (!mr_name_char_ok((unsigned char)*s)) *s = '_';
}
