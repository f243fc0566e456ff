/* status_page.h — the human-readable status page, GET / on the metrics port:
 * default model and version, uptime, per-RPC calls per second, error rate
 * and p50/p99 latency over the last hour in per-minute buckets
 * (stats_window.h), cache hit rate per tier, router selection share per
 * expert retriever, per-gate expert utilisation (gate_usage.h), store
 * figures and the store's size per RocksDB column family (on-disk SST
 * bytes, live data, memtables, approximate keys: store_get_sizes). Plots
 * are inline SVG drawn here; the page needs no network and runs no script.
 * Every name taken from data is HTML-escaped.
 * docs/operations.md ("Status page") describes it.
 */
#ifndef MOEREC_SERVER_STATUS_PAGE_H
#define MOEREC_SERVER_STATUS_PAGE_H

#include <stddef.h>

#include "server/server.h"

/* The page (malloc'd, NUL-terminated; *len its length), or NULL out of memory. */
char *mr_status_page_render(mr_server *s, size_t *len);

#endif
