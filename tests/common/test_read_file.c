/* test_read_file.c — common/read_file.c: a file read whole and
 * NUL-terminated (empty, across the 16 KiB buffer doublings, embedded NUL
 * bytes counted by len), a FIFO (no size to seek to), the max bound both
 * ways, and a missing file as MR_ENOTFOUND naming it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/read_file.h"

static char g_dir[64];

static void put(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void test_whole_file(void **s) {
    (void)s;
    char p[128];
    snprintf(p, sizeof p, "%s/a", g_dir);
    size_t sizes[] = {0, 1, 16383, 16384, 16385, 100000};
    char *data = malloc(100000);
    for (size_t i = 0; i < 100000; i++) data[i] = (char)(i * 7 + 1);
    data[5] = 0; /* a NUL inside: len counts it */
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        put(p, data, sizes[k]);
        size_t len = 1234;
        mr_err e;
        char *got = mr_read_file(p, 1 << 20, &len, &e);
        assert_non_null(got);
        assert_int_equal(len, sizes[k]);
        assert_memory_equal(got, data, sizes[k]);
        assert_int_equal(got[sizes[k]], 0);
        free(got);
    }
    free(data);
}

static void test_max_bound(void **s) {
    (void)s;
    char p[128];
    snprintf(p, sizeof p, "%s/b", g_dir);
    put(p, "0123456789", 10);
    mr_err e;
    char *got = mr_read_file(p, 10, NULL, &e);
    assert_non_null(got);
    free(got);
    assert_null(mr_read_file(p, 9, NULL, &e));
    assert_int_equal(e.code, MR_EINVAL);
    assert_non_null(strstr(e.msg, "longer than 9 bytes"));
}

static void test_missing_and_fifo(void **s) {
    (void)s;
    char p[128];
    mr_err e;
    snprintf(p, sizeof p, "%s/none", g_dir);
    assert_null(mr_read_file(p, 100, NULL, &e));
    assert_int_equal(e.code, MR_ENOTFOUND);
    assert_non_null(strstr(e.msg, "/none"));
    snprintf(p, sizeof p, "%s/fifo", g_dir);
    assert_int_equal(mkfifo(p, 0600), 0);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = fopen(p, "wb");
        for (int i = 0; f && i < 3000; i++) fputs("0123456789", f); /* 30000 bytes */
        if (f) fclose(f);
        _exit(0);
    }
    size_t len = 0;
    char *got = mr_read_file(p, 1 << 20, &len, &e);
    int st;
    waitpid(pid, &st, 0);
    assert_non_null(got);
    assert_int_equal(len, 30000);
    assert_memory_equal(got + 29990, "0123456789", 10);
    free(got);
    unlink(p);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/mr_read_file_XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_file),
        cmocka_unit_test(test_max_bound),
        cmocka_unit_test(test_missing_and_fifo),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) rc = rc ? rc : 1;
    return rc;
}
