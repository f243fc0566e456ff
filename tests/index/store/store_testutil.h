/* store_testutil.h — helpers shared by the store's tests: a temporary
 * database folder made with mkdtemp and removed recursively afterwards,
 * and a fixture holding a store opened in one. */
#ifndef MOEREC_TESTS_STORE_TESTUTIL_H
#define MOEREC_TESTS_STORE_TESTUTIL_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/store/store.h"

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

/* A store opened in a fresh folder: store_test_fx_open returns NULL when
 * the folder or the store cannot be made; store_test_fx_close closes,
 * removes the folder and frees. */
typedef struct store_test_fx {
    char dir[256];
    mr_store *st;
} store_test_fx;

static inline store_test_fx *store_test_fx_open(const char *tag, const store_config *c) {
    store_test_fx *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    if (!store_test_tmpdir(f->dir, sizeof f->dir, tag) || store_open(&f->st, f->dir, c, NULL)) {
        if (f->dir[0]) store_test_rmrf(f->dir);
        free(f);
        return NULL;
    }
    return f;
}

static inline void store_test_fx_close(store_test_fx *f) {
    store_close(f->st);
    store_test_rmrf(f->dir);
    free(f);
}

#endif
