/* stats.h — per-method call counters and latency histograms.
 *
 * Lock-free: every counter is an atomic, so recording from any completion
 * queue thread costs a few relaxed increments. Latency buckets grow by a
 * factor of 2^(1/4) from 1 us, so a quantile is reported within +19%.
 */
#ifndef MOEREC_SERVER_STATS_H
#define MOEREC_SERVER_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "server/stats_window.h"

#define MR_HIST_BUCKETS 128 /* covers 1 us .. ~ 4e9 us */

typedef struct mr_method_stats {
    atomic_uint_fast64_t calls;                 /* finished calls */
    atomic_uint_fast64_t errors;                /* status != OK */
    atomic_uint_fast64_t sum_us;                /* total latency, microseconds */
    atomic_uint_fast64_t hist[MR_HIST_BUCKETS]; /* latency histogram */
    mr_window minutes;                          /* the last hour, per minute */
} mr_method_stats;

_Static_assert(MR_WIN_BUCKETS == MR_HIST_BUCKETS, "the window shares the histogram's buckets");

void mr_stats_record(mr_method_stats *s, uint64_t micros, int grpc_status);
/* The same at monotonic second now_s (tests). */
void mr_stats_record_at(mr_method_stats *s, int64_t now_s, uint64_t micros, int grpc_status);
/* Quantile q in (0, 1] in microseconds (upper bound of its bucket); 0 if empty. */
uint64_t mr_stats_quantile(const mr_method_stats *s, double q);
/* The same over a histogram's MR_HIST_BUCKETS counts. */
uint64_t mr_hist_quantile(const uint64_t *counts, double q);

#endif
