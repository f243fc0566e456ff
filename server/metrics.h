/* metrics.h — Prometheus text exposition over HTTP (libmicrohttpd):
 * GET /metrics on its own port, beside gRPC. Everything it reports is read
 * from counters the server keeps anyway (atomics), so a scrape never blocks
 * a request. Families:
 *   moerec_up, moerec_serving, moerec_uptime_seconds, moerec_build_info
 *   moerec_rpc_calls_total / moerec_rpc_errors_total {method}
 *   moerec_rpc_latency_microseconds histogram {method} (power-of-two buckets)
 *   moerec_model_info {model, version}
 *   moerec_store_cache_{hits,misses,evictions}_total, _bytes (with data_dir)
 *   moerec_router_routed_total {retriever} (default model's retrievers)
 *   moerec_gate_passes_total {model}, moerec_gate_expert_weight_sum {model, gate, expert}
 *   moerec_store_ttl_sweeps_total, moerec_store_expired_{rows,users}_total
 *   moerec_store_memtable_bytes, _memtable_budget_bytes, _block_cache_bytes,
 *   _block_cache_capacity_bytes, _table_reader_bytes (RocksDB memory)
 *   moerec_process_resident_bytes, moerec_malloc_held_bytes, _in_use_bytes
 * GET / is the status page (status_page.h).
 */
#ifndef MOEREC_SERVER_METRICS_H
#define MOEREC_SERVER_METRICS_H

#include "common/error.h"
#include "server/server.h"

typedef struct mr_metrics mr_metrics;

/* Listen on host:port (0 picks a free port; *bound gets it). With
 * tls_cert and tls_key (PEM texts, copied) it serves HTTPS only. */
int mr_metrics_start(mr_metrics **out, mr_server *s, const char *host, int port,
                     const char *tls_cert, const char *tls_key, int *bound, mr_err *e);
/* HTTPS only (a no-op otherwise): new connections get this pair (PEM
 * texts, copied); connections already open keep theirs. The listening
 * socket stays open throughout. On error the previous pair keeps serving. */
int mr_metrics_set_cert(mr_metrics *m, const char *cert, const char *key, mr_err *e);
void mr_metrics_stop(mr_metrics *m);

/* The exposition text (malloc'd), for the handler and for tests. */
char *mr_metrics_render(mr_server *s);

#endif
