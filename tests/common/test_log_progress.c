/* test_log_progress.c — level filtering and sinks of the logger; the
 * progress line never writes to stdout and reports totals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/progress.h"

static char g_last[1024];
static int g_lines;

static void capture(mr_log_level level, const char *line, void *ctx) {
    (void)level, (void)ctx;
    snprintf(g_last, sizeof g_last, "%s", line);
    g_lines++;
}

static void test_levels_and_sink(void **s) {
    (void)s;
    mr_log_set_sink(capture, NULL);
    mr_log_set_level(MR_LOG_WARN);
    g_lines = 0;
    mr_info("hidden %d", 1);
    assert_int_equal(g_lines, 0);
    mr_warn("shown %d", 2);
    assert_int_equal(g_lines, 1);
    assert_non_null(strstr(g_last, " W shown 2"));
    mr_log_set_level(MR_LOG_OFF);
    mr_error("off");
    assert_int_equal(g_lines, 1);
    mr_log_set_sink(NULL, NULL);
    mr_log_set_level(MR_LOG_INFO);
    assert_int_equal(mr_log_parse_level("debug"), MR_LOG_DEBUG);
    assert_int_equal(mr_log_parse_level("error"), MR_LOG_ERROR);
    assert_int_equal(mr_log_parse_level("loud"), -1);
}

static void test_progress_goes_to_stderr(void **s) {
    (void)s;
    /* Redirect stderr to a temp file and check the final line. */
    char path[] = "/tmp/moerec-progress-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    mr_progress p;
    mr_progress_begin(&p, "index build", "rows", 1000, 1);
    mr_progress_update(&p, 10, NULL);
    mr_progress_end(&p, 1000, "loss 0.5");
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    char buf[512] = "";
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    unlink(path);
    assert_true(n > 0);
    assert_non_null(strstr(buf, "index build: 1000/1000 (100%) rows"));
    assert_non_null(strstr(buf, "loss 0.5"));
    mr_progress_begin(&p, "quiet", "rows", 10, 0); /* disabled: no output, no crash */
    mr_progress_end(&p, 10, NULL);
}

int main(void) {
    const struct CMUnitTest t[] = {cmocka_unit_test(test_levels_and_sink),
                                   cmocka_unit_test(test_progress_goes_to_stderr)};
    return cmocka_run_group_tests(t, NULL, NULL);
}
