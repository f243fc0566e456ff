/* auth.c — see auth.h. The token list is small (operators' and services'
 * tokens), so a check compares against every entry in constant time per
 * entry and never stops at the first match: timing reveals neither which
 * token matched nor how much of a wrong one was right. */
#include "auth.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_MIN 16
#define TOKEN_MAX 256
#define MAX_TOKENS 1024

typedef struct token {
    size_t len;
    int admin;
    unsigned char b[TOKEN_MAX];
} token;

struct mr_auth {
    int n;
    token *t;
};

int mr_auth_load(mr_auth **out, const char *path, mr_err *e) {
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) return mr_err_set(e, MR_ENOTFOUND, "auth_tokens_file '%s' cannot be read", path);
    mr_auth *a = calloc(1, sizeof *a);
    a->t = a ? calloc(MAX_TOKENS, sizeof *a->t) : NULL;
    int rc = MR_OK, lineno = 0;
    char line[1024];
    if (!a || !a->t) {
        rc = mr_err_set(e, MR_ENOMEM, "out of memory");
        goto done;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t ll = strlen(line);
        if (ll == sizeof line - 1 && line[ll - 1] != '\n' && !feof(f)) {
            /* never read the rest of a long line (a comment) as a token */
            rc = mr_err_set(e, MR_EINVAL, "%s:%d: line longer than %zu bytes", path, lineno,
                            sizeof line - 2);
            goto done;
        }
        /* '#' starts a comment at the start of a word only: a token may hold
         * '#' and must never be cut to a shorter (weaker) prefix */
        for (char *h = line; (h = strchr(h, '#')); h++)
            if (h == line || h[-1] == ' ' || h[-1] == '\t') {
                *h = '\0';
                break;
            }
        char *tok = strtok(line, " \t\r\n"), *role = tok ? strtok(NULL, " \t\r\n") : NULL;
        if (!tok) continue;
        if (role && strtok(NULL, " \t\r\n")) {
            rc = mr_err_set(e, MR_EINVAL, "%s:%d: expected '<token> [admin]'", path, lineno);
            goto done;
        }
        size_t len = strlen(tok);
        if (len < TOKEN_MIN || len > TOKEN_MAX) {
            rc = mr_err_set(e, MR_EINVAL, "%s:%d: a token must be %d..%d bytes", path, lineno,
                            TOKEN_MIN, TOKEN_MAX);
            goto done;
        }
        if (role && strcmp(role, "admin") != 0) {
            rc = mr_err_set(e, MR_EINVAL, "%s:%d: unknown role '%.32s' (only 'admin')", path,
                            lineno, role);
            goto done;
        }
        if (a->n == MAX_TOKENS) {
            rc = mr_err_set(e, MR_EINVAL, "%s: more than %d tokens", path, MAX_TOKENS);
            goto done;
        }
        token *t = &a->t[a->n++];
        t->len = len;
        t->admin = role != NULL;
        memcpy(t->b, tok, len);
    }
    if (a->n == 0) rc = mr_err_set(e, MR_EINVAL, "%s: no token", path);
done:
    fclose(f);
    if (rc) {
        mr_auth_free(a);
        return rc;
    }
    *out = a;
    return MR_OK;
}

void mr_auth_free(mr_auth *a) {
    if (!a) return;
    if (a->t) memset(a->t, 0, MAX_TOKENS * sizeof *a->t); /* no tokens left in freed memory */
    free(a->t);
    free(a);
}

/* 1 if the n bytes of x equal token t, in time independent of where they
 * differ (the length check leaks only the length). */
static int same(const token *t, const unsigned char *x, size_t n) {
    if (n != t->len) return 0;
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++) d |= (unsigned char)(x[i] ^ t->b[i]);
    return d == 0;
}

int mr_auth_check(const mr_auth *a, const char *method, const char *header, size_t len, mr_err *e) {
    if (!a || !strncmp(method, "/grpc.health.v1.Health/", 23)) return MR_OK;
    static const char bearer[] = "Bearer ";
    if (!header || len <= sizeof bearer - 1 || strncasecmp(header, bearer, sizeof bearer - 1) != 0)
        return mr_err_set(e, MR_EUNAUTH, "missing 'authorization: Bearer <token>' metadata");
    const unsigned char *x = (const unsigned char *)header + sizeof bearer - 1;
    size_t n = len - (sizeof bearer - 1);
    int found = -1;
    for (int i = 0; i < a->n; i++) /* all of them, whatever matched */
        if (same(&a->t[i], x, n)) found = i;
    if (found < 0) return mr_err_set(e, MR_EUNAUTH, "unknown token");
    if (!strncmp(method, "/moerec.v1.Admin/", 17) && !a->t[found].admin)
        return mr_err_set(e, MR_EPERM, "%s needs an admin token", method);
    return MR_OK;
}
