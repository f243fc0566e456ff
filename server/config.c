/* config.c — JSON configuration with defaults (jansson).
 *
 * A table maps each JSON key to a field and a kind; loading walks the JSON
 * object and looks every key up in the table, so an unknown or mistyped
 * key is reported by name instead of being silently ignored.
 */
#include "config.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "hashing/sdim.h"
#include "moe/dnn.h"
#include "moe/scorer.h"

typedef enum { K_STR, K_INT, K_SIZE, K_DOUBLE, K_BOOL, K_LL } kind;

typedef struct field {
    const char *key;
    kind kind;
    size_t offset;
    size_t size; /* for strings */
} field;

#define F(key, kind, member) \
    { key, kind, offsetof(mr_server_config, member), sizeof(((mr_server_config *)0)->member) }
static const field fields[] = {
    F("host", K_STR, host),
    F("port", K_INT, port),
    F("completion_queues", K_INT, completion_queues),
    F("calls_per_queue", K_INT, calls_per_queue),
    F("max_receive_bytes", K_SIZE, max_receive_bytes),
    F("max_send_bytes", K_SIZE, max_send_bytes),
    F("request_arena_bytes", K_SIZE, request_arena_bytes),
    F("max_concurrent_streams", K_INT, max_concurrent_streams),
    F("drain_seconds", K_DOUBLE, drain_seconds),
    F("drain_grace_seconds", K_DOUBLE, drain_grace_seconds),
    F("max_inflight_calls", K_INT, max_inflight_calls),
    F("max_k", K_INT, max_k),
    F("max_candidates", K_INT, max_candidates),
    F("score_split_candidates", K_INT, score_split_candidates),
    F("max_batch", K_INT, max_batch),
    F("log_level", K_STR, log_level),
    F("model_dir", K_STR, model_dir),
    F("default_model", K_STR, default_model),
    F("precision", K_STR, precision),
    F("data_dir", K_STR, data_dir),
    F("item_table", K_STR, item_table),
    F("item_dim", K_INT, item_dim),
    F("store_sync", K_BOOL, store_sync),
    F("online_counts", K_BOOL, online_counts),
    F("user_ttl_seconds", K_LL, user_ttl_seconds),
    F("expire_interval_seconds", K_DOUBLE, expire_interval_seconds),
    F("cache_bytes", K_SIZE, cache_bytes),
    F("store_memtable_bytes", K_SIZE, store_memtable_bytes),
    F("store_block_cache_bytes", K_SIZE, store_block_cache_bytes),
    F("store_mmap_reads", K_BOOL, store_mmap_reads),
    F("cache_admission", K_STR, cache_admission),
    F("malloc_arena_max", K_INT, malloc_arena_max),
    F("malloc_mmap_threshold_bytes", K_SIZE, malloc_mmap_threshold_bytes),
    F("malloc_trim_threshold_bytes", K_SIZE, malloc_trim_threshold_bytes),
    F("store_min_free_bytes", K_SIZE, store_min_free_bytes),
    F("sdim_l_max", K_INT, sdim_l_max),
    F("sdim_m", K_INT, sdim_m),
    F("sdim_tau", K_INT, sdim_tau),
    F("sdim_seed", K_LL, sdim_seed),
    F("sdim_short", K_INT, sdim_short),
    F("query_events", K_INT, query_events),
    F("retrieve_k", K_INT, retrieve_k),
    F("consumed_filter", K_STR, consumed_filter),
    F("consumed_last_n", K_INT, consumed_last_n),
    F("retrieval_threads", K_INT, retrieval_threads),
    F("remote_deadline_ms", K_INT, remote_deadline_ms),
    F("remote_tls", K_BOOL, remote_tls),
    F("remote_tls_ca_file", K_STR, remote_tls_ca_file),
    F("remote_tls_cert_file", K_STR, remote_tls_cert_file),
    F("remote_tls_key_file", K_STR, remote_tls_key_file),
    F("remote_token_file", K_STR, remote_token_file),
    F("auth_tokens_file", K_STR, auth_tokens_file),
    F("tls_cert_file", K_STR, tls_cert_file),
    F("tls_key_file", K_STR, tls_key_file),
    F("tls_client_ca_file", K_STR, tls_client_ca_file),
    F("tls_require_client_cert", K_BOOL, tls_require_client_cert),
    F("metrics_tls", K_BOOL, metrics_tls),
    F("metrics_host", K_STR, metrics_host),
    F("metrics_port", K_INT, metrics_port),
    F("shared_tier_seeds", K_STR, shared_tier_seeds),
    F("shared_tier_prefix", K_STR, shared_tier_prefix),
    F("shared_tier_ttl_seconds", K_INT, shared_tier_ttl_seconds),
    F("shared_tier_timeout_ms", K_INT, shared_tier_timeout_ms),
    F("log_servers", K_STR, log_servers),
    F("log_stream", K_STR, log_stream),
    F("log_subject", K_STR, log_subject),
    F("log_consumer", K_STR, log_consumer),
    F("log_replicas", K_INT, log_replicas),
    F("log_timeout_ms", K_INT, log_timeout_ms),
    F("log_max_lag", K_LL, log_max_lag),
    F("log_read_wait_ms", K_INT, log_read_wait_ms),
    F("model_poll_s", K_INT, model_poll_s),
};
#undef F

void mr_config_defaults(mr_server_config *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->host, sizeof c->host, "127.0.0.1");
    c->port = 50051;
    c->completion_queues = 2;
    c->calls_per_queue = 8;
    c->max_receive_bytes = 4u << 20;
    c->max_send_bytes = 16u << 20;
    c->request_arena_bytes = 64u << 20;
    c->max_concurrent_streams = 256;
    c->drain_seconds = 10.0;
    c->drain_grace_seconds = 5.0;
    c->max_inflight_calls = 1024;
    c->max_k = 1000;
    c->max_candidates = 5000;
    c->score_split_candidates = 256;
    c->max_batch = 10000;
    snprintf(c->log_level, sizeof c->log_level, "info");
    snprintf(c->item_table, sizeof c->item_table, "item");
    c->cache_bytes = 256u << 20;
    c->store_memtable_bytes = 64u << 20;
    c->store_block_cache_bytes = 64u << 20;
    c->store_mmap_reads = 1;
    snprintf(c->cache_admission, sizeof c->cache_admission, "always");
    c->malloc_arena_max = 2;
    c->malloc_mmap_threshold_bytes = 128u << 10;
    c->malloc_trim_threshold_bytes = 32u << 20;
    c->store_min_free_bytes = 128u << 20;
    c->expire_interval_seconds = 3600;
    c->sdim_l_max = SDIM_DEFAULT_L_MAX; /* = behaviour_config_init, moerec train --sdim-params */
    c->sdim_m = SDIM_DEFAULT_M;
    c->sdim_tau = SDIM_DEFAULT_TAU;
    c->sdim_seed = SDIM_DEFAULT_SEED;
    c->sdim_short = SDIM_DEFAULT_SHORT;
    c->query_events = 20;
    c->retrieve_k = 200;
    snprintf(c->consumed_filter, sizeof c->consumed_filter, "all");
    c->consumed_last_n = 100;
    c->remote_deadline_ms = 200;
    snprintf(c->metrics_host, sizeof c->metrics_host, "127.0.0.1");
    c->metrics_port = -1;
    snprintf(c->shared_tier_prefix, sizeof c->shared_tier_prefix, "mr");
    c->shared_tier_ttl_seconds = 3600;
    c->shared_tier_timeout_ms = 50;
    snprintf(c->log_stream, sizeof c->log_stream, "moerec");
    snprintf(c->log_subject, sizeof c->log_subject, "moerec.writes");
    c->log_replicas = 3;
    c->log_timeout_ms = 5000;
    c->log_max_lag = 1000;
    c->log_read_wait_ms = 1000;
}

static int apply(mr_server_config *c, json_t *root, const char *src, mr_err *err) {
    if (!json_is_object(root))
        return mr_err_set(err, MR_EINVAL, "%s: top level must be a JSON object", src);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        const field *f = NULL;
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
            if (!strcmp(fields[i].key, key)) f = &fields[i];
        if (!f) return mr_err_set(err, MR_EINVAL, "%s: unknown field '%s'", src, key);
        char *dst = (char *)c + f->offset;
        switch (f->kind) {
        case K_STR:
            if (!json_is_string(v))
                return mr_err_set(err, MR_EINVAL, "%s: field '%s' must be a string", src, key);
            if (strlen(json_string_value(v)) >= f->size)
                return mr_err_set(err, MR_EINVAL, "%s: field '%s' is longer than %zu bytes", src,
                                  key, f->size - 1);
            snprintf(dst, f->size, "%s", json_string_value(v));
            break;
        case K_INT:
        case K_SIZE:
            if (!json_is_integer(v) || json_integer_value(v) < 0)
                return mr_err_set(err, MR_EINVAL, "%s: field '%s' must be a non-negative integer",
                                  src, key);
            if (f->kind == K_INT) {
                if (json_integer_value(v) > 0x7fffffff)
                    return mr_err_set(err, MR_EINVAL, "%s: field '%s' is too large", src, key);
                *(int *)dst = (int)json_integer_value(v);
            } else {
                *(size_t *)dst = (size_t)json_integer_value(v);
            }
            break;
        case K_BOOL:
            if (!json_is_boolean(v))
                return mr_err_set(err, MR_EINVAL, "%s: field '%s' must be true or false", src, key);
            *(int *)dst = json_is_true(v);
            break;
        case K_LL:
            if (!json_is_integer(v) || json_integer_value(v) < 0)
                return mr_err_set(err, MR_EINVAL, "%s: field '%s' must be a non-negative integer",
                                  src, key);
            *(long long *)dst = json_integer_value(v);
            break;
        case K_DOUBLE:
            if (!json_is_number(v))
                return mr_err_set(err, MR_EINVAL, "%s: field '%s' must be a number", src, key);
            *(double *)dst = json_number_value(v);
            break;
        }
    }
    return MR_OK;
}

int mr_config_load_string(mr_server_config *c, const char *json, mr_err *err) {
    json_error_t je;
    json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &je);
    if (!root) return mr_err_set(err, MR_EINVAL, "config: line %d: %s", je.line, je.text);
    int rc = apply(c, root, "config", err);
    json_decref(root);
    return rc;
}

int mr_config_load_file(mr_server_config *c, const char *path, mr_err *err) {
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (je.line <= 0) return mr_err_set(err, MR_ENOTFOUND, "%s: %s", path, je.text);
        return mr_err_set(err, MR_EINVAL, "%s: line %d: %s", path, je.line, je.text);
    }
    int rc = apply(c, root, path, err);
    json_decref(root);
    return rc;
}

int mr_config_validate(const mr_server_config *c, mr_err *err) {
#define RANGE(member, lo, hi)                                                          \
    if (c->member < (lo) || c->member > (hi))                                          \
        return mr_err_set(err, MR_EINVAL, "config: '%s' must be in [%g, %g]", #member, \
                          (double)(lo), (double)(hi));
    RANGE(port, 0, 65535);
    RANGE(completion_queues, 1, 256);
    RANGE(calls_per_queue, 1, 1024);
    RANGE(max_receive_bytes, 1024, (size_t)1 << 30);
    RANGE(max_send_bytes, 1024, (size_t)1 << 30);
    RANGE(request_arena_bytes, 64 * 1024, (size_t)8 << 30);
    RANGE(max_concurrent_streams, 1, 1 << 20);
    RANGE(drain_seconds, 0.0, 3600.0);
    RANGE(drain_grace_seconds, 0.0, 3600.0);
    RANGE(max_inflight_calls, 0, 1 << 20);
    RANGE(max_k, 1, 100000);
    RANGE(max_candidates, 1, MOE_MAX_BATCH); /* one scorer batch holds them all */
    RANGE(score_split_candidates, 0, MOE_MAX_BATCH);
    RANGE(max_batch, 1, 1000000);
    RANGE(item_dim, 0, 65535);
    RANGE(sdim_l_max, 1, 1 << 20);
    RANGE(sdim_m, 1, 1024);
    RANGE(sdim_tau, 0, 16);
    RANGE(sdim_short, 0, 1024);
    RANGE(query_events, 0, 1024);
    RANGE(retrieve_k, 1, 10000);
    RANGE(consumed_last_n, 1, 10000);
    RANGE(retrieval_threads, 0, 256);
    RANGE(metrics_port, -1, 65535);
    RANGE(expire_interval_seconds, 0.0, 7 * 86400.0);
    RANGE(store_memtable_bytes, (size_t)1 << 20, (size_t)64 << 30);
    RANGE(store_block_cache_bytes, (size_t)1 << 20, (size_t)1 << 40);
    RANGE(malloc_arena_max, 0, 1024);
    if (c->malloc_mmap_threshold_bytes > ((size_t)32 << 20)) /* glibc's largest */
        return mr_err_set(err, MR_EINVAL,
                          "config: 'malloc_mmap_threshold_bytes' must be in [0, %zu]",
                          (size_t)32 << 20);
    if (c->malloc_trim_threshold_bytes > ((size_t)1 << 30)) /* an int for mallopt */
        return mr_err_set(err, MR_EINVAL,
                          "config: 'malloc_trim_threshold_bytes' must be in [0, %zu]",
                          (size_t)1 << 30);
    RANGE(log_replicas, 1, 5);
    RANGE(log_timeout_ms, 1, 600000);
    RANGE(log_read_wait_ms, 0, 600000);
    RANGE(model_poll_s, 0, 86400);
#undef RANGE
    if (c->sdim_tau > 0 && c->sdim_m % c->sdim_tau)
        return mr_err_set(err, MR_EINVAL,
                          "config: 'sdim_m' (%d) must be a multiple of 'sdim_tau' (%d)", c->sdim_m,
                          c->sdim_tau);
    if (!c->item_table[0])
        return mr_err_set(err, MR_EINVAL, "config: 'item_table' must not be empty");
    if (c->log_servers[0] && !c->log_consumer[0])
        return mr_err_set(err, MR_EINVAL,
                          "config: 'log_servers' needs 'log_consumer', a name unique "
                          "to this replica (its durable consumer of the log)");
    if (c->log_servers[0] && !c->data_dir[0])
        return mr_err_set(err, MR_EINVAL,
                          "config: 'log_servers' needs 'data_dir' (each replica "
                          "applies the log to its own store)");
    if (c->remote_deadline_ms < 1 || c->remote_deadline_ms > 60000)
        return mr_err_set(err, MR_EINVAL,
                          "config: 'remote_deadline_ms' is %d, must be in [1, 60000]",
                          c->remote_deadline_ms);
    if (!c->remote_tls_cert_file[0] != !c->remote_tls_key_file[0])
        return mr_err_set(err, MR_EINVAL,
                          "config: 'remote_tls_cert_file' and 'remote_tls_key_file' go together");
    if (!c->remote_tls && (c->remote_tls_ca_file[0] || c->remote_tls_cert_file[0]))
        return mr_err_set(err, MR_EINVAL,
                          "config: 'remote_tls_ca_file' and 'remote_tls_cert_file' "
                          "need 'remote_tls': true");
    if (!c->tls_cert_file[0] != !c->tls_key_file[0])
        return mr_err_set(err, MR_EINVAL, "config: 'tls_cert_file' and 'tls_key_file' go together");
    if (!c->tls_cert_file[0] && (c->tls_client_ca_file[0] || c->metrics_tls))
        return mr_err_set(err, MR_EINVAL, "config: %s needs 'tls_cert_file' and 'tls_key_file'",
                          c->metrics_tls ? "'metrics_tls'" : "'tls_client_ca_file'");
    if (c->tls_require_client_cert && !c->tls_client_ca_file[0])
        return mr_err_set(err, MR_EINVAL,
                          "config: 'tls_require_client_cert' needs 'tls_client_ca_file'");
    if (!c->host[0]) return mr_err_set(err, MR_EINVAL, "config: 'host' must not be empty");
    moe_precision prec;
    if (c->precision[0] && moe_precision_parse(c->precision, &prec))
        return mr_err_set(
            err, MR_EINVAL,
            "config: 'precision' must be fp32, bf16, int8 or openblas_fp32 (or empty), not '%s'",
            c->precision);
    if (strcmp(c->cache_admission, "always") && strcmp(c->cache_admission, "seen_twice"))
        return mr_err_set(err, MR_EINVAL,
                          "config: 'cache_admission' must be always or seen_twice, not '%s'",
                          c->cache_admission);
    if (strcmp(c->consumed_filter, "all") && strcmp(c->consumed_filter, "last") &&
        strcmp(c->consumed_filter, "none"))
        return mr_err_set(err, MR_EINVAL,
                          "config: 'consumed_filter' must be all, last or none, not '%s'",
                          c->consumed_filter);
    if (mr_log_parse_level(c->log_level) < 0)
        return mr_err_set(err, MR_EINVAL,
                          "config: 'log_level' must be debug, info, warn, error or off, not '%s'",
                          c->log_level);
    return MR_OK;
}
