/* log.h — leveled logging to stderr (or a caller-installed sink).
 *
 * Libraries log rarely (state changes, recoveries), never to stdout. The
 * server sets the level from its config; tests may install a sink to
 * capture lines. Thread-safe: each line is formatted, then written once.
 */
#ifndef MOEREC_COMMON_LOG_H
#define MOEREC_COMMON_LOG_H

typedef enum { MR_LOG_DEBUG = 0, MR_LOG_INFO, MR_LOG_WARN, MR_LOG_ERROR, MR_LOG_OFF } mr_log_level;

typedef void (*mr_log_sink)(mr_log_level level, const char *line, void *ctx);

void mr_log_set_level(mr_log_level level);
mr_log_level mr_log_get_level(void);
/* Parse "debug", "info", "warn", "error", "off"; returns -1 if unknown. */
int mr_log_parse_level(const char *s);
/* NULL restores the default stderr sink. */
void mr_log_set_sink(mr_log_sink sink, void *ctx);

void mr_log(mr_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define mr_debug(...) mr_log(MR_LOG_DEBUG, __VA_ARGS__)
#define mr_info(...) mr_log(MR_LOG_INFO, __VA_ARGS__)
#define mr_warn(...) mr_log(MR_LOG_WARN, __VA_ARGS__)
#define mr_error(...) mr_log(MR_LOG_ERROR, __VA_ARGS__)

#endif
