/* stats.c — see stats.h. */
#include "stats.h"

#include <math.h>

static int bucket_of(uint64_t micros) {
    if (micros <= 1) return 0;
    int b = (int)ceil(4.0 * log2((double)micros));
    return b >= MR_HIST_BUCKETS ? MR_HIST_BUCKETS - 1 : b;
}

void mr_stats_record_at(mr_method_stats *s, int64_t now_s, uint64_t micros, int grpc_status) {
    int b = bucket_of(micros);
    atomic_fetch_add_explicit(&s->calls, 1, memory_order_relaxed);
    if (grpc_status != 0) atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_us, micros, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->hist[b], 1, memory_order_relaxed);
    mr_window_record(&s->minutes, now_s, b, micros, grpc_status != 0);
}

void mr_stats_record(mr_method_stats *s, uint64_t micros, int grpc_status) {
    mr_stats_record_at(s, mr_window_now(), micros, grpc_status);
}

uint64_t mr_stats_quantile(const mr_method_stats *s, double q) {
    uint64_t counts[MR_HIST_BUCKETS];
    for (int i = 0; i < MR_HIST_BUCKETS; i++)
        counts[i] = atomic_load_explicit(&s->hist[i], memory_order_relaxed);
    return mr_hist_quantile(counts, q);
}

uint64_t mr_hist_quantile(const uint64_t *counts, double q) {
    uint64_t total = 0;
    for (int i = 0; i < MR_HIST_BUCKETS; i++) total += counts[i];
    if (total == 0) return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)total), seen = 0;
    if (rank == 0) rank = 1;
    for (int i = 0; i < MR_HIST_BUCKETS; i++) {
        seen += counts[i];
        if (seen >= rank) return (uint64_t)ceil(exp2((double)i / 4.0));
    }
    return (uint64_t)ceil(exp2((double)(MR_HIST_BUCKETS - 1) / 4.0));
}
