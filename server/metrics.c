/* metrics.c — see metrics.h. The HTTP side is libmicrohttpd with its own
 * polling thread; rendering builds the text in a growable buffer. */
#include "metrics.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/backend.h"
#include "server/replog.h"
#include "server/registry.h"
#include "server/remote_expert.h"
#include "server/status_page.h"

/* HTTPS certificate rotation (mr_metrics_set_cert): the serving daemon is
 * quiesced (it stops accepting but keeps its open connections), a new one
 * takes over the same listening socket with the new pair, and the old one
 * is retired: stopped at the next rotation or at mr_metrics_stop, so a
 * scrape on an open keep-alive connection is not cut by a rotation. */
struct mr_metrics {
    pthread_mutex_t mu;     /* rotation against rotation and stop */
    struct MHD_Daemon *d;   /* accepting */
    struct MHD_Daemon *old; /* quiesced by the last rotation; NULL = none */
    mr_server *s;
    char *tls_cert, *tls_key; /* PEM of d, kept for its life; NULL = plain HTTP */
    char *old_cert, *old_key; /* PEM of old */
};

typedef struct buf {
    char *p;
    size_t n, cap;
    int oom;
} buf;

__attribute__((format(printf, 2, 3))) static void put(buf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)k;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* One counter family without labels: HELP, TYPE and the sample. */
static void put_counter(buf *b, const char *name, const char *help, uint64_t v) {
    put(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
        (unsigned long long)v);
}

/* A label value escaped for the exposition format (backslash, quote and
 * newline), into dst (cap >= 2 * strlen + 1 keeps it whole). Model and
 * retriever names come from directory names and data, so they may hold
 * any of these. */
static const char *label(char *dst, size_t cap, const char *s) {
    size_t n = 0;
    for (; *s && n + 3 <= cap; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n') dst[n++] = '\\';
        dst[n++] = *s == '\n' ? 'n' : *s;
    }
    dst[n] = '\0';
    return dst;
}

/* Latency buckets: every 4th histogram bucket is a power of two (us).
 * name is the histogram, labels its label pairs ("method=\"...\""). */
static void latency(buf *b, const char *name, const char *labels, const mr_method_stats *st) {
    uint64_t cum = 0;
    for (int i = 0; i < MR_HIST_BUCKETS; i++) {
        cum += atomic_load_explicit(&st->hist[i], memory_order_relaxed);
        if (i % 4 == 0 && i <= 4 * 32)
            put(b, "%s_bucket{%s,le=\"%llu\"} %llu\n", name, labels, 1ull << (i / 4),
                (unsigned long long)cum);
    }
    put(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels, (unsigned long long)cum);
    put(b, "%s_sum{%s} %llu\n", name, labels,
        (unsigned long long)atomic_load_explicit(&st->sum_us, memory_order_relaxed));
    put(b, "%s_count{%s} %llu\n", name, labels, (unsigned long long)cum);
}

/* Remote experts (server/remote_expert.h): calls, errors by reason and
 * latency per expert and address. */
static void metrics_remote(buf *b, const mr_remotes *rs) {
    int n = mr_remotes_count(rs);
    if (n == 0) return;
    char l1[2 * RETR_NAME_MAX + 1], l2[2 * RETR_SET_ADDRESS_MAX + 1];
    char lab[sizeof l1 + sizeof l2 + 32];
    put(b, "# HELP moerec_remote_expert_calls_total Searches sent to remote experts.\n"
           "# TYPE moerec_remote_expert_calls_total counter\n");
    for (int i = 0; i < n; i++) {
        mr_remote_stats st;
        mr_remotes_stats(rs, i, &st);
        put(b, "moerec_remote_expert_calls_total{retriever=\"%s\",address=\"%s\"} %llu\n",
            label(l1, sizeof l1, st.name), label(l2, sizeof l2, st.address),
            (unsigned long long)atomic_load(&st.calls->calls));
    }
    put(b, "# HELP moerec_remote_expert_errors_total Remote expert searches that failed, by "
           "reason (deadline: DEADLINE_EXCEEDED, unavailable: UNAVAILABLE, other).\n"
           "# TYPE moerec_remote_expert_errors_total counter\n");
    for (int i = 0; i < n; i++) {
        mr_remote_stats st;
        mr_remotes_stats(rs, i, &st);
        uint64_t all = atomic_load(&st.calls->errors);
        uint64_t other = all - st.timeouts - st.unavailable;
        const char *why[3] = {"deadline", "unavailable", "other"};
        uint64_t v[3] = {st.timeouts, st.unavailable, other};
        for (int r = 0; r < 3; r++)
            put(b,
                "moerec_remote_expert_errors_total{retriever=\"%s\",address=\"%s\","
                "reason=\"%s\"} %llu\n",
                label(l1, sizeof l1, st.name), label(l2, sizeof l2, st.address), why[r],
                (unsigned long long)v[r]);
    }
    put(b, "# HELP moerec_remote_expert_latency_microseconds Time from sending a remote "
           "expert's search to its answer (or failure).\n"
           "# TYPE moerec_remote_expert_latency_microseconds histogram\n");
    for (int i = 0; i < n; i++) {
        mr_remote_stats st;
        mr_remotes_stats(rs, i, &st);
        snprintf(lab, sizeof lab, "retriever=\"%s\",address=\"%s\"", label(l1, sizeof l1, st.name),
                 label(l2, sizeof l2, st.address));
        latency(b, "moerec_remote_expert_latency_microseconds", lab, st.calls);
    }
}

/* The shared Redis Cluster tier: rows by outcome, write-through, redirects. */
static void metrics_shared_tier(buf *b, tier_redis *t) {
    tier_redis_stats s;
    tier_redis_get_stats(t, &s);
    put(b,
        "# HELP moerec_shared_tier_rows_total Rows looked up in the shared tier, by outcome "
        "(degraded: no answer, read from RocksDB).\n"
        "# TYPE moerec_shared_tier_rows_total counter\n"
        "moerec_shared_tier_rows_total{result=\"hit\"} %llu\n"
        "moerec_shared_tier_rows_total{result=\"miss\"} %llu\n"
        "moerec_shared_tier_rows_total{result=\"degraded\"} %llu\n",
        (unsigned long long)s.hits, (unsigned long long)s.misses, (unsigned long long)s.degraded);
    put(b,
        "# HELP moerec_shared_tier_writes_total Rows written through to the shared tier.\n"
        "# TYPE moerec_shared_tier_writes_total counter\n"
        "moerec_shared_tier_writes_total{result=\"ok\"} %llu\n"
        "moerec_shared_tier_writes_total{result=\"failed\"} %llu\n",
        (unsigned long long)(s.puts - s.put_failed), (unsigned long long)s.put_failed);
    put(b,
        "# HELP moerec_shared_tier_deletes_total Deleted item vectors marked deleted in the "
        "shared tier (failed: left to age out).\n"
        "# TYPE moerec_shared_tier_deletes_total counter\n"
        "moerec_shared_tier_deletes_total{result=\"ok\"} %llu\n"
        "moerec_shared_tier_deletes_total{result=\"failed\"} %llu\n",
        (unsigned long long)(s.dels - s.del_failed), (unsigned long long)s.del_failed);
    put(b,
        "# HELP moerec_shared_tier_redirects_total Redis Cluster redirects followed.\n"
        "# TYPE moerec_shared_tier_redirects_total counter\n"
        "moerec_shared_tier_redirects_total{kind=\"moved\"} %llu\n"
        "moerec_shared_tier_redirects_total{kind=\"ask\"} %llu\n",
        (unsigned long long)s.cluster.moved, (unsigned long long)s.cluster.ask);
    put(b,
        "# HELP moerec_shared_tier_connection_errors_total Failed connects and broken "
        "connections to Redis Cluster nodes.\n"
        "# TYPE moerec_shared_tier_connection_errors_total counter\n"
        "moerec_shared_tier_connection_errors_total %llu\n",
        (unsigned long long)s.cluster.conn_errors);
}

/* The store's size per column family (store_get_sizes): RocksDB's
 * properties, read on every scrape (no I/O). */
static void store_size_metrics(buf *b, const mr_store *st) {
    store_cf_size sz[STORE_MAX_FAMILIES];
    int n = store_get_sizes(st, sz, STORE_MAX_FAMILIES);
    static const struct {
        const char *name, *help;
        size_t off;
    } fam[] = {
        {"moerec_store_sst_bytes",
         "Bytes of the column family's SST files on disk "
         "(rocksdb.total-sst-files-size).",
         offsetof(store_cf_size, sst_bytes)},
        {"moerec_store_live_data_bytes",
         "RocksDB's estimate of the column family's live data "
         "(rocksdb.estimate-live-data-size).",
         offsetof(store_cf_size, live_bytes)},
        {"moerec_store_memtable_bytes",
         "Memory of the column family's memtables, which hold "
         "the writes not yet flushed to SST files (rocksdb.cur-size-all-mem-tables).",
         offsetof(store_cf_size, memtable_bytes)},
        {"moerec_store_keys_estimate",
         "RocksDB's estimate of the column family's keys "
         "(rocksdb.estimate-num-keys; counts overwritten keys until compaction).",
         offsetof(store_cf_size, keys)},
    };
    for (size_t f = 0; f < sizeof fam / sizeof *fam; f++) {
        put(b, "# HELP %s %s\n# TYPE %s gauge\n", fam[f].name, fam[f].help, fam[f].name);
        for (int i = 0; i < n; i++) {
            uint64_t v;
            memcpy(&v, (const char *)&sz[i] + fam[f].off, sizeof v);
            put(b, "%s{family=\"%s\"} %llu\n", fam[f].name, sz[i].name, (unsigned long long)v);
        }
    }
    /* per embedding table (label: the store table's name, without "emb.") */
    static const struct {
        const char *name, *help;
        size_t off;
    } tab[] = {
        {"moerec_store_table_cache_hits_total",
         "Row lookups of the embedding table answered by the memory cache.",
         offsetof(store_cf_size, cache_hits)},
        {"moerec_store_table_cache_misses_total",
         "Row lookups of the embedding table the memory cache did not answer.",
         offsetof(store_cf_size, cache_misses)},
        {"moerec_store_table_ttl_evictions_total",
         "Rows of the embedding table deleted by TTL sweeps (not touched for ttl_seconds).",
         offsetof(store_cf_size, ttl_evictions)},
        {"moerec_store_table_expired_reads_total",
         "Rows of the embedding table read past their TTL and served as absent.",
         offsetof(store_cf_size, expired_reads)},
    };
    for (size_t f = 0; f < sizeof tab / sizeof *tab; f++) {
        put(b, "# HELP %s %s\n# TYPE %s counter\n", tab[f].name, tab[f].help, tab[f].name);
        for (int i = 0; i < n; i++) {
            if (!sz[i].is_table) continue;
            uint64_t v;
            memcpy(&v, (const char *)&sz[i] + tab[f].off, sizeof v);
            put(b, "%s{table=\"%s\"} %llu\n", tab[f].name, sz[i].name + 4, (unsigned long long)v);
        }
    }
}

/* The default model's gate usage (gate_usage.h): passes, and per gate and
 * expert the sum over passes of the mean weight. */
static void gate_metrics(buf *b, mr_model_ref *ref, const char *model) {
    mr_gate_usage *u = malloc(sizeof *u);
    if (!u) {
        b->oom = 1;
        return;
    }
    mr_gate_usage_read(&ref->usage, u);
    put(b,
        "# HELP moerec_gate_passes_total Ranking passes of the default model's version.\n"
        "# TYPE moerec_gate_passes_total counter\nmoerec_gate_passes_total{model=\"%s\"} %llu\n",
        model, (unsigned long long)u->passes);
    put(b, "# HELP moerec_gate_expert_weight_sum Sum over ranking passes of an expert's mean "
           "gate weight.\n# TYPE moerec_gate_expert_weight_sum counter\n");
    for (int g = 0; g < u->n_gates; g++) {
        char lg[2 * sizeof u->gate[g] + 1];
        for (int x = 0; x < u->n[g]; x++)
            put(b, "moerec_gate_expert_weight_sum{model=\"%s\",gate=\"%s\",expert=\"%s\"} %.9g\n",
                model, label(lg, sizeof lg, u->gate[g]), u->expert[g][x], u->sum[g][x]);
    }
    free(u);
}

/* The process's memory: resident set (/proc/self/statm) and what glibc's
 * malloc holds from the OS (every arena plus mmapped chunks) against what
 * is allocated in it; the difference is freed memory kept in the arenas. */
static void metrics_process(buf *b) {
    unsigned long long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%llu %llu", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    put(b,
        "# HELP moerec_process_resident_bytes Resident set size of the server process.\n"
        "# TYPE moerec_process_resident_bytes gauge\nmoerec_process_resident_bytes %llu\n",
        rss * (unsigned long long)sysconf(_SC_PAGESIZE));
#ifdef __GLIBC__
    struct mallinfo2 mi = mallinfo2();
    put(b,
        "# HELP moerec_malloc_held_bytes Memory glibc malloc holds from the OS (all arenas, "
        "mmapped chunks).\n# TYPE moerec_malloc_held_bytes gauge\nmoerec_malloc_held_bytes %llu\n"
        "# HELP moerec_malloc_in_use_bytes Memory allocated through malloc now.\n"
        "# TYPE moerec_malloc_in_use_bytes gauge\nmoerec_malloc_in_use_bytes %llu\n",
        (unsigned long long)(mi.arena + mi.hblkhd), (unsigned long long)(mi.uordblks + mi.hblkhd));
#endif
}

char *mr_metrics_render(mr_server *s) {
    buf b = {malloc(16384), 0, 16384, 0};
    if (!b.p) return NULL;
    put(&b, "# HELP moerec_up 1 while the process runs.\n# TYPE moerec_up gauge\nmoerec_up 1\n");
    put(&b,
        "# HELP moerec_serving 1 while serving, 0 once draining.\n# TYPE moerec_serving gauge\n"
        "moerec_serving %d\n",
        mr_server_serving(s));
    put(&b,
        "# HELP moerec_uptime_seconds Seconds since the server started serving.\n"
        "# TYPE moerec_uptime_seconds gauge\nmoerec_uptime_seconds %llu\n",
        (unsigned long long)mr_server_uptime_seconds(s));
    put(&b,
        "# HELP moerec_build_info The moerec version serving.\n# TYPE moerec_build_info gauge\nmoerec_build_info{version=\"%s\"} 1\n",
        MOEREC_VERSION);
    put(&b,
        "# HELP moerec_calls_in_flight Accepted calls not yet answered (health excluded).\n"
        "# TYPE moerec_calls_in_flight gauge\nmoerec_calls_in_flight %d\n"
        "# HELP moerec_rpc_overload_rejected_total Calls refused with RESOURCE_EXHAUSTED "
        "because max_inflight_calls were in flight.\n"
        "# TYPE moerec_rpc_overload_rejected_total counter\n"
        "moerec_rpc_overload_rejected_total %llu\n",
        mr_server_inflight(s), (unsigned long long)mr_server_overload_rejected(s));
    int n = mr_server_method_count();
    put(&b, "# HELP moerec_rpc_calls_total Finished calls per method.\n"
            "# TYPE moerec_rpc_calls_total counter\n");
    for (int i = 0; i < n; i++)
        put(&b, "moerec_rpc_calls_total{method=\"%s\"} %llu\n", mr_server_method_at(i)->path,
            (unsigned long long)atomic_load(&mr_server_stats(s, i)->calls));
    put(&b, "# HELP moerec_rpc_errors_total Calls answered with a non-OK status.\n"
            "# TYPE moerec_rpc_errors_total counter\n");
    for (int i = 0; i < n; i++)
        put(&b, "moerec_rpc_errors_total{method=\"%s\"} %llu\n", mr_server_method_at(i)->path,
            (unsigned long long)atomic_load(&mr_server_stats(s, i)->errors));
    put(&b, "# HELP moerec_rpc_latency_microseconds Time from arrival to the end of the call.\n"
            "# TYPE moerec_rpc_latency_microseconds histogram\n");
    for (int i = 0; i < n; i++) {
        char lab[300];
        snprintf(lab, sizeof lab, "method=\"%s\"", mr_server_method_at(i)->path);
        latency(&b, "moerec_rpc_latency_microseconds", lab, mr_server_stats(s, i));
    }
    mr_registry *reg = mr_server_registry(s);
    if (reg) metrics_remote(&b, mr_registry_remotes(reg));
    if (reg) {
        mr_model_ref *ref;
        if (mr_registry_acquire(reg, "", &ref, NULL) == MR_OK) {
            char l1[2 * sizeof ref->name + 1], l2[2 * sizeof ref->version + 1];
            put(&b,
                "# HELP moerec_model_info The default model's serving version and ranker precision.\n"
                "# TYPE moerec_model_info gauge\n"
                "moerec_model_info{model=\"%s\",version=\"%s\",precision=\"%s\"} 1\n",
                label(l1, sizeof l1, ref->name), label(l2, sizeof l2, ref->version),
                moe_precision_name(ref->model->precision_used));
            if (ref->retrievers) {
                mr_router *rt = retr_set_router(ref->retrievers);
                put(&b, "# HELP moerec_router_routed_total Queries sent to each expert retriever "
                        "(routed or fallback).\n# TYPE moerec_router_routed_total counter\n");
                for (int e = 0; e < router_n_experts(rt); e++) {
                    router_expert_stats es;
                    router_stats_get(rt, e, &es);
                    char l[1024];
                    put(&b, "moerec_router_routed_total{retriever=\"%s\"} %llu\n",
                        label(l, sizeof l, router_expert_name(rt, e)),
                        (unsigned long long)(es.routed + es.fallback));
                }
            }
            gate_metrics(&b, ref, l1);
            mr_model_release(ref);
        }
    }
    mr_backend *be = mr_server_backend(s);
    if (be) {
        store_stats st;
        store_get_stats(be->st, &st);
        put(&b,
            "# HELP moerec_store_cache_hits_total Store cache hits.\n"
            "# TYPE moerec_store_cache_hits_total counter\nmoerec_store_cache_hits_total %llu\n",
            (unsigned long long)st.cache_hits);
        put(&b,
            "# HELP moerec_store_cache_misses_total Store cache misses.\n"
            "# TYPE moerec_store_cache_misses_total counter\nmoerec_store_cache_misses_total %llu\n",
            (unsigned long long)st.cache_misses);
        put(&b,
            "# HELP moerec_store_cache_evictions_total Store cache evictions.\n"
            "# TYPE moerec_store_cache_evictions_total counter\n"
            "moerec_store_cache_evictions_total %llu\n",
            (unsigned long long)st.cache_evictions);
        put(&b,
            "# HELP moerec_store_cache_bytes Bytes held by the store cache.\n"
            "# TYPE moerec_store_cache_bytes gauge\nmoerec_store_cache_bytes %llu\n",
            (unsigned long long)st.cache_bytes);
        store_size_metrics(&b, be->st);
        put(&b,
            "# HELP moerec_store_memtable_budget_bytes Bound of the memtables of all column "
            "families together (store_memtable_bytes).\n"
            "# TYPE moerec_store_memtable_budget_bytes gauge\n"
            "moerec_store_memtable_budget_bytes %llu\n",
            (unsigned long long)st.memtable_budget);
        put(&b,
            "# HELP moerec_store_block_cache_bytes RocksDB block cache usage.\n"
            "# TYPE moerec_store_block_cache_bytes gauge\nmoerec_store_block_cache_bytes %llu\n"
            "# HELP moerec_store_block_cache_capacity_bytes Its bound "
            "(store_block_cache_bytes).\n# TYPE moerec_store_block_cache_capacity_bytes gauge\n"
            "moerec_store_block_cache_capacity_bytes %llu\n",
            (unsigned long long)st.block_cache_bytes, (unsigned long long)st.block_cache_capacity);
        put(&b,
            "# HELP moerec_store_table_reader_bytes Index and filter blocks of open SST files.\n"
            "# TYPE moerec_store_table_reader_bytes gauge\nmoerec_store_table_reader_bytes %llu\n",
            (unsigned long long)st.table_reader_bytes);
        if (be->tier) metrics_shared_tier(&b, be->tier);
        if (be->log) {
            mr_replog_stats ls;
            mr_replog_get_stats(be->log, &ls);
            put(&b,
                "# HELP moerec_log_applied_sequence Last update-log sequence applied to this "
                "replica's store.\n# TYPE moerec_log_applied_sequence gauge\n"
                "moerec_log_applied_sequence %llu\n",
                (unsigned long long)ls.applied_seq);
            put(&b,
                "# HELP moerec_log_pending Update-log records not yet applied here.\n"
                "# TYPE moerec_log_pending gauge\nmoerec_log_pending %llu\n",
                (unsigned long long)ls.pending);
            put(&b,
                "# HELP moerec_log_published_total Write RPCs this server published to the "
                "update log.\n# TYPE moerec_log_published_total counter\n"
                "moerec_log_published_total %llu\n",
                (unsigned long long)ls.published);
            put(&b,
                "# HELP moerec_log_rejected_total Update-log records skipped on apply as invalid."
                "\n# TYPE moerec_log_rejected_total counter\nmoerec_log_rejected_total %llu\n",
                (unsigned long long)ls.rejected);
        }
        put(&b,
            "# HELP moerec_store_ttl_sweeps_total TTL sweeps run.\n"
            "# TYPE moerec_store_ttl_sweeps_total counter\nmoerec_store_ttl_sweeps_total %llu\n",
            (unsigned long long)atomic_load(&be->sweeps));
        put(&b,
            "# HELP moerec_store_expired_rows_total Rows deleted by TTL sweeps.\n"
            "# TYPE moerec_store_expired_rows_total counter\nmoerec_store_expired_rows_total %llu\n",
            (unsigned long long)atomic_load(&be->expired_rows));
        put_counter(&b, "moerec_embedding_pushes_total", "PushEmbeddings calls that wrote rows.",
                    atomic_load(&be->pushes));
        put_counter(&b, "moerec_embedding_pushed_rows_total",
                    "Embedding rows written by PushEmbeddings.", atomic_load(&be->pushed_rows));
        put_counter(&b, "moerec_embedding_push_skipped_total",
                    "Update-log PushEmbeddings records skipped: model, version or store table "
                    "not served here.",
                    atomic_load(&be->push_skipped));
        put(&b,
            "# HELP moerec_store_expired_users_total Users whose behaviour TTL sweeps deleted.\n"
            "# TYPE moerec_store_expired_users_total counter\n"
            "moerec_store_expired_users_total %llu\n",
            (unsigned long long)atomic_load(&be->expired_users));
    }
    metrics_process(&b);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state) {
    (void)version, (void)upload, (void)upload_size, (void)state;
    mr_metrics *m = cls;
    struct MHD_Response *r;
    unsigned code = MHD_HTTP_OK;
    if (strcmp(method, "GET") != 0) {
        static const char msg[] = "only GET\n";
        r = MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
        code = MHD_HTTP_METHOD_NOT_ALLOWED;
    } else if (strcmp(url, "/") == 0) {
        size_t n = 0;
        char *page = mr_status_page_render(m->s, &n);
        r = page ? MHD_create_response_from_buffer(n, page, MHD_RESPMEM_MUST_FREE) : NULL;
        if (!r) free(page);
        else MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    } else if (strcmp(url, "/metrics") != 0) {
        static const char msg[] = "moerec serves / (status page) and /metrics\n";
        r = MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
        code = MHD_HTTP_NOT_FOUND;
    } else {
        char *text = mr_metrics_render(m->s);
        if (!text) {
            static const char msg[] = "out of memory\n";
            r = MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg,
                                                MHD_RESPMEM_PERSISTENT);
            code = MHD_HTTP_INTERNAL_SERVER_ERROR;
        } else {
            r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
            MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
        }
    }
    if (!r) return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static char *metrics_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static void metrics_free(mr_metrics *m) {
    pthread_mutex_destroy(&m->mu);
    free(m->tls_cert);
    free(m->tls_key);
    free(m->old_cert);
    free(m->old_key);
    free(m);
}

/* A daemon on sa (listen_fd < 0) or on an open listening socket. MHD stops
 * reading options at the first MHD_OPTION_END: without TLS the
 * certificate pair is never read. */
static struct MHD_Daemon *metrics_daemon(mr_metrics *m, const struct sockaddr_in *sa, int listen_fd,
                                         const char *cert, const char *key) {
    /* MHD_USE_ITC: quiescing (certificate rotation) needs it */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (cert) flags |= MHD_USE_TLS;
    if (listen_fd >= 0)
        return MHD_start_daemon(flags, 0, NULL, NULL, answer, m, MHD_OPTION_LISTEN_SOCKET,
                                (MHD_socket)listen_fd, MHD_OPTION_CONNECTION_LIMIT, 64u,
                                MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                                cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, cert,
                                MHD_OPTION_HTTPS_MEM_KEY, key, MHD_OPTION_END);
    return MHD_start_daemon(flags, 0, NULL, NULL, answer, m, MHD_OPTION_SOCK_ADDR,
                            (const struct sockaddr *)sa, MHD_OPTION_CONNECTION_LIMIT, 64u,
                            MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                            cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, cert,
                            MHD_OPTION_HTTPS_MEM_KEY, key, MHD_OPTION_END);
}

int mr_metrics_start(mr_metrics **out, mr_server *s, const char *host, int port,
                     const char *tls_cert, const char *tls_key, int *bound, mr_err *e) {
    *out = NULL;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return mr_err_set(e, MR_EINVAL, "metrics: '%s' is not an IPv4 address", host);
    mr_metrics *m = calloc(1, sizeof *m);
    if (!m) return mr_err_set(e, MR_ENOMEM, "out of memory");
    m->s = s;
    pthread_mutex_init(&m->mu, NULL);
    if (tls_cert) { /* HTTPS: GnuTLS inside libmicrohttpd */
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            free(m);
            return mr_err_set(e, MR_EINVAL, "metrics_tls: this libmicrohttpd has no TLS support");
        }
        m->tls_cert = metrics_strdup(tls_cert);
        m->tls_key = metrics_strdup(tls_key);
        if (!m->tls_cert || !m->tls_key) {
            metrics_free(m);
            return mr_err_set(e, MR_ENOMEM, "out of memory");
        }
    }
    m->d = metrics_daemon(m, &sa, -1, m->tls_cert, m->tls_key);
    if (!m->d) {
        metrics_free(m);
        return mr_err_set(e, MR_EUNAVAIL, "metrics: cannot listen on %s:%d (in use%s?)", host, port,
                          tls_cert ? ", or GnuTLS refused the certificate" : "");
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
    if (bound) *bound = info ? info->port : port;
    *out = m;
    return MR_OK;
}

int mr_metrics_set_cert(mr_metrics *m, const char *cert, const char *key, mr_err *e) {
    if (!m || !m->tls_cert) return MR_OK; /* off, or plain HTTP: nothing to rotate */
    pthread_mutex_lock(&m->mu);
    int rc = MR_OK;
    char *c = metrics_strdup(cert), *k = metrics_strdup(key);
    MHD_socket fd = c && k ? MHD_quiesce_daemon(m->d) : MHD_INVALID_SOCKET;
    struct MHD_Daemon *d = fd == MHD_INVALID_SOCKET ? NULL : metrics_daemon(m, NULL, fd, c, k);
    if (!d && fd != MHD_INVALID_SOCKET) {
        /* GnuTLS refused the pair: the socket goes to a daemon with the
         * previous one (its own copies: each daemon keeps its PEM texts) */
        rc = mr_err_set(e, MR_EUNAVAIL,
                        "metrics_tls: the HTTPS port did not take the new "
                        "certificate; it keeps the previous one");
        free(c);
        free(k);
        c = metrics_strdup(m->tls_cert);
        k = metrics_strdup(m->tls_key);
        d = c && k ? metrics_daemon(m, NULL, fd, c, k) : NULL;
    }
    if (d) {
        if (m->old) MHD_stop_daemon(m->old); /* retired one rotation ago */
        free(m->old_cert);
        free(m->old_key);
        m->old = m->d;
        m->old_cert = m->tls_cert;
        m->old_key = m->tls_key;
        m->d = d;
        m->tls_cert = c;
        m->tls_key = k;
    } else {
        free(c);
        free(k);
        rc = mr_err_set(e, MR_EUNAVAIL,
                        fd == MHD_INVALID_SOCKET
                            ? "metrics_tls: out of memory or the daemon could not "
                              "be quiesced; the previous certificate stays"
                            : "metrics_tls: the HTTPS port stopped accepting (no "
                              "daemon took its socket back); restart the server");
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

void mr_metrics_stop(mr_metrics *m) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    MHD_stop_daemon(m->d);
    if (m->old) MHD_stop_daemon(m->old);
    pthread_mutex_unlock(&m->mu);
    metrics_free(m);
}
