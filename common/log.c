/* log.c — see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int g_level = MR_LOG_INFO;
static mr_log_sink g_sink; /* set at startup, before threads */
static void *g_sink_ctx;

void mr_log_set_level(mr_log_level level) { atomic_store(&g_level, (int)level); }
mr_log_level mr_log_get_level(void) { return (mr_log_level)atomic_load(&g_level); }

int mr_log_parse_level(const char *s) {
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (s && strcmp(s, names[i]) == 0) return i;
    return -1;
}

void mr_log_set_sink(mr_log_sink sink, void *ctx) {
    g_sink = sink;
    g_sink_ctx = ctx;
}

void mr_log(mr_log_level level, const char *fmt, ...) {
    if ((int)level < atomic_load(&g_level)) return;
    static const char tag[] = "DIWE";
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %c ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, tag[level < 4 ? level : 3]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (g_sink) {
        g_sink(level, line, g_sink_ctx);
        return;
    }
    size_t len = strlen(line);
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
