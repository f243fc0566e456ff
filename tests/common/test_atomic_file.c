/* test_atomic_file.c — atomic writes: the target holds the old file or the
 * whole new one, never a part; no temporary is left on success or error. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/atomic_file.h"

static char g_dir[64];

static int setup(void **s) {
    (void)s;
    snprintf(g_dir, sizeof g_dir, "/tmp/mr_afile_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **s) {
    (void)s;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    return system(cmd);
}

/* Entries in g_dir (other than . and ..). */
static int entries(void) {
    DIR *d = opendir(g_dir);
    int n = 0;
    for (struct dirent *de; (de = readdir(d));) n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static void slurp(const char *path, char *buf, size_t n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t got = fread(buf, 1, n - 1, f);
    buf[got] = 0;
    fclose(f);
}

static void test_write_replace_and_no_temp(void **s) {
    (void)s;
    char path[128], buf[64];
    snprintf(path, sizeof path, "%s/out.bin", g_dir);
    mr_err e;
    mr_err_clear(&e);
    assert_int_equal(mr_write_file_atomic(path, "first", 5, &e), 0);
    slurp(path, buf, sizeof buf);
    assert_string_equal(buf, "first");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    mr_afile a;
    assert_int_equal(mr_afile_open(&a, path, &e), 0);
    fputs("second, longer", a.f);
    slurp(path, buf, sizeof buf); /* not yet visible */
    assert_string_equal(buf, "first");
    assert_int_equal(entries(), 2); /* the target and the temporary */
    assert_int_equal(mr_afile_commit(&a, &e), 0);
    slurp(path, buf, sizeof buf);
    assert_string_equal(buf, "second, longer");
    assert_int_equal(entries(), 1);
    assert_int_equal(mr_write_file_atomic(path, "", 0, &e), 0); /* empty is a file too */
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0);
}

static void test_abort_keeps_the_old_file(void **s) {
    (void)s;
    char path[128], buf[64];
    snprintf(path, sizeof path, "%s/keep.txt", g_dir);
    mr_err e;
    assert_int_equal(mr_write_file_atomic(path, "old", 3, &e), 0);
    int before = entries();
    mr_afile a;
    assert_int_equal(mr_afile_open(&a, path, &e), 0);
    fputs("partial", a.f);
    mr_afile_abort(&a);
    mr_afile_abort(&a); /* idempotent */
    slurp(path, buf, sizeof buf);
    assert_string_equal(buf, "old");
    assert_int_equal(entries(), before);
}

static void test_errors_leave_nothing(void **s) {
    (void)s;
    mr_err e;
    mr_err_clear(&e);
    char path[128];
    snprintf(path, sizeof path, "%s/no/such/dir/x", g_dir);
    assert_int_equal(mr_write_file_atomic(path, "x", 1, &e), MR_EINTERNAL);
    assert_non_null(strstr(e.msg, path));
    /* the rename fails (the target is a non-empty directory): the temporary goes */
    snprintf(path, sizeof path, "%s/adir", g_dir);
    assert_int_equal(mkdir(path, 0755), 0);
    char inner[160];
    snprintf(inner, sizeof inner, "%s/f", path);
    assert_int_equal(mr_write_file_atomic(inner, "x", 1, &e), 0);
    int before = entries();
    assert_int_equal(mr_write_file_atomic(path, "x", 1, &e), MR_EINTERNAL);
    assert_non_null(strstr(e.msg, "writing"));
    assert_int_equal(entries(), before);
    assert_int_equal(mr_fsync_parent(g_dir, 1, &e), 0);
    assert_int_equal(mr_fsync_parent("relative-name", 0, &e), 0); /* "." */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_replace_and_no_temp),
        cmocka_unit_test(test_abort_keeps_the_old_file),
        cmocka_unit_test(test_errors_leave_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
