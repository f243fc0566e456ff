/* store_testutil.h — helpers shared by the store's tests: a temporary
 * database folder made with mkdtemp and removed recursively afterwards. */
#ifndef MOEREC_TESTS_STORE_TESTUTIL_H
#define MOEREC_TESTS_STORE_TESTUTIL_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int store_test_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* Remove a folder and everything below it. */
static inline void store_test_rmrf(const char *dir) {
    nftw(dir, store_test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh folder under TMPDIR (or /tmp) in buf; returns buf. */
static inline char *store_test_tmpdir(char *buf, size_t n, const char *tag) {
    const char *base = getenv("TMPDIR");
    snprintf(buf, n, "%s/moerec-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    return mkdtemp(buf);
}

#endif
