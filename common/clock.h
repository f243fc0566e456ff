/* clock.h — monotonic and wall clocks in one place. */
#ifndef MOEREC_COMMON_CLOCK_H
#define MOEREC_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic nanoseconds, for durations. */
static inline uint64_t mr_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Wall clock, unix milliseconds, for timestamps stored with data. */
static inline int64_t mr_unix_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep ns nanoseconds (resumed across signal interruptions). */
static inline void mr_sleep_ns(uint64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

#endif
