/* stats_window.c — see stats_window.h. */
#include "stats_window.h"

#include <string.h>

#include "common/clock.h"
#include "server/spinlock.h"
#include "server/stats.h"

int64_t mr_window_now(void) { return (int64_t)(mr_now_ns() / 1000000000ull); }

void mr_window_record(mr_window *w, int64_t now_s, int bucket, uint64_t micros, int error) {
    int64_t m = now_s / 60;
    if (bucket < 0) bucket = 0;
    if (bucket >= MR_WIN_BUCKETS) bucket = MR_WIN_BUCKETS - 1;
    mr_spin_lock(&w->lock);
    mr_window_slot *s = &w->slot[m % MR_WIN_MINUTES];
    if (s->minute != m + 1) {
        memset(s, 0, sizeof *s);
        s->minute = m + 1;
    }
    s->calls++;
    s->errors += error != 0;
    s->sum_us += micros;
    s->hist[bucket]++;
    mr_spin_unlock(&w->lock);
}

void mr_window_read(mr_window *w, int64_t now_s, mr_window_minute out[MR_WIN_MINUTES]) {
    int64_t now_m = now_s / 60;
    mr_spin_lock(&w->lock);
    for (int i = 0; i < MR_WIN_MINUTES; i++) {
        int64_t m = now_m - (MR_WIN_MINUTES - 1) + i;
        mr_window_minute *o = &out[i];
        memset(o, 0, sizeof *o);
        o->minute = m;
        if (m < 0) continue;
        const mr_window_slot *s = &w->slot[m % MR_WIN_MINUTES];
        if (s->minute != m + 1 || s->calls == 0) continue;
        o->calls = s->calls;
        o->errors = s->errors;
        o->mean_us = (double)s->sum_us / (double)s->calls;
        uint64_t counts[MR_WIN_BUCKETS];
        for (int b = 0; b < MR_WIN_BUCKETS; b++) counts[b] = s->hist[b];
        o->p50_us = mr_hist_quantile(counts, 0.5);
        o->p99_us = mr_hist_quantile(counts, 0.99);
    }
    mr_spin_unlock(&w->lock);
}
