/* stats_window.h — the last hour of one method's calls in per-minute
 * buckets: calls, errors and a latency histogram per minute, for the status
 * page's plots (server/status_page.h).
 *
 * A ring of 60 slots indexed by minute mod 60; each slot carries the minute
 * it holds, so a slot left over from an earlier hour reads as empty and is
 * cleared by the first call of its new minute. A tiny spin lock guards the
 * ring (held for a few increments; contention only between calls of the
 * same method finishing at the same instant), which keeps a minute's
 * counters and histogram consistent with each other. Minutes are monotonic
 * clock minutes, so a wall-clock jump neither loses nor repeats a bucket.
 * Zeroed memory is a valid empty window.
 */
#ifndef MOEREC_SERVER_STATS_WINDOW_H
#define MOEREC_SERVER_STATS_WINDOW_H

#include <stdatomic.h>
#include <stdint.h>

#define MR_WIN_MINUTES 60
#define MR_WIN_BUCKETS 128 /* same buckets as stats.h: 2^(i/4) us */

typedef struct mr_window_slot {
    int64_t minute; /* monotonic minute held + 1; 0 = never used */
    uint64_t calls, errors, sum_us;
    uint32_t hist[MR_WIN_BUCKETS]; /* latency histogram of the minute */
} mr_window_slot;

typedef struct mr_window {
    atomic_int lock; /* 0 free, 1 held */
    mr_window_slot slot[MR_WIN_MINUTES];
} mr_window;

/* One minute as read: calls 0 for a minute without calls. */
typedef struct mr_window_minute {
    int64_t minute; /* monotonic minute */
    uint64_t calls, errors;
    uint64_t p50_us, p99_us; /* upper bound of the quantile's bucket; 0 without calls */
    double mean_us;
} mr_window_minute;

/* Record a call that ended at monotonic second now_s into latency bucket b. */
void mr_window_record(mr_window *w, int64_t now_s, int bucket, uint64_t micros, int error);
/* The 60 minutes ending with now_s's minute, oldest first. */
void mr_window_read(mr_window *w, int64_t now_s, mr_window_minute out[MR_WIN_MINUTES]);
/* Monotonic seconds (the clock record and read use in the server). */
int64_t mr_window_now(void);

#endif
