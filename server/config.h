/* config.h — the server's configuration: one JSON file, every field has a
 * default, unknown fields are an error naming the field. Command-line flags
 * of `moerec serve` override the file. See docs/operations.md.
 */
#ifndef MOEREC_SERVER_CONFIG_H
#define MOEREC_SERVER_CONFIG_H

#include <stddef.h>

#include "common/error.h"

typedef struct mr_server_config {
    char host[256];                 /* bind address, "127.0.0.1" */
    int port;                       /* 50051; 0 picks a free port */
    int completion_queues;          /* worker threads, one completion queue each */
    int calls_per_queue;            /* request_calls kept armed per queue */
    size_t max_receive_bytes;       /* GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH */
    size_t max_send_bytes;          /* GRPC_ARG_MAX_SEND_MESSAGE_LENGTH */
    size_t request_arena_bytes;     /* decode + handler memory per request */
    int max_concurrent_streams;     /* per HTTP/2 connection */
    double drain_seconds;           /* SIGTERM: wait this long for in-flight calls */
    double drain_grace_seconds;     /* SIGTERM: NOT_SERVING but serving this long first */
    int max_inflight_calls;         /* past it a new call is RESOURCE_EXHAUSTED; 0 = no bound */
    int max_k;                      /* Recommend k limit */
    int max_candidates;             /* Score candidates limit */
    int score_split_candidates;     /* Score batches this large split over idle cores; 0 = never */
    int max_batch;                  /* UpsertItems / AppendEvents batch limit */
    char log_level[16];             /* debug, info, warn, error, off */
    char model_dir[1024];           /* model root: <name>/<version>/; "" = none */
    char default_model[64];         /* model used when a request names none */
    char precision[16];             /* ranker precision for every model; "" = model.json's */
    char data_dir[1024];            /* RocksDB store; "" = none (no events, items) */
    char item_table[48];            /* the store's item-vector table */
    int item_dim;                   /* its width; creates the table when absent */
    int store_sync;                 /* fsync the WAL on every write (1) or not (0) */
    int online_counts;              /* AppendEvents updates the stored counting features */
    long long user_ttl_seconds;     /* users not written for this long expire; 0 = never */
    double expire_interval_seconds; /* TTL sweep period; 0 = never sweep */
    size_t cache_bytes;             /* store memory cache in front of rows */
    size_t store_memtable_bytes;    /* RocksDB memtables of all column families together */
    size_t store_block_cache_bytes; /* RocksDB block cache shared by all column families */
    char cache_admission[12];       /* embedding rows: "always" or "seen_twice" (store.h) */
    int store_mmap_reads; /* read SST files through mmap (1, default) or pread + block cache (0) */
    int malloc_arena_max; /* glibc malloc arenas (moerec serve); 0 = glibc's choice */
    size_t
        malloc_mmap_threshold_bytes; /* fixed M_MMAP_THRESHOLD (moerec serve); 0 = glibc's dynamic one */
    size_t malloc_trim_threshold_bytes; /* M_TRIM_THRESHOLD (moerec serve); 0 = glibc's */
    size_t store_min_free_bytes;        /* writes refused below this much free disk; 0 = no check */
    int sdim_l_max;                     /* events kept per user */
    int sdim_m, sdim_tau;               /* SDIM projections, bits per signature */
    long long sdim_seed;                /* SDIM projection seed */
    int sdim_short;                     /* recent events for short attention */
    int query_events;                   /* recent item vectors averaged into a user's query */
    int retrieve_k;                     /* Recommend: candidates ranked when the request says 0 */
    char consumed_filter[8]; /* Recommend drops the user's stored events: all, last, none */
    int consumed_last_n;     /* consumed_filter "last": how many of the newest events */
    int retrieval_threads;   /* pool for parallel expert searches; 0 = cores */
    int remote_deadline_ms;  /* cap on each call to a remote expert (server/remote_expert.h) */
    int remote_tls;          /* remote experts over TLS */
    char remote_tls_ca_file[1024];   /* PEM CA(s) verifying them; "" = gRPC's default roots */
    char remote_tls_cert_file[1024]; /* client certificate for mutual TLS; "" = none */
    char remote_tls_key_file[1024];  /* its key */
    char remote_token_file[1024];    /* bearer token sent to them; "" = none */
    char auth_tokens_file[1024];     /* bearer tokens (server/auth.h); "" = no auth */
    char tls_cert_file[1024];        /* PEM chain for the gRPC port; "" = plaintext */
    char tls_key_file[1024];         /* its PEM private key */
    char tls_client_ca_file[1024];   /* PEM CA(s) verifying client certificates; "" = none */
    int tls_require_client_cert;     /* mutual TLS: refuse clients without a certificate */
    int metrics_tls;                 /* serve /metrics over HTTPS with the same certificate */
    char metrics_host[64];           /* Prometheus /metrics address */
    int metrics_port;                /* -1 = off, 0 = a free port */
    char shared_tier_seeds[512];     /* Redis Cluster "host:port,..."; "" = no shared tier */
    char shared_tier_prefix[32];     /* key prefix of this fleet's rows */
    int shared_tier_ttl_seconds;     /* expiry of rows written to the tier; 0 = none */
    int shared_tier_timeout_ms;      /* connect/reply timeout before falling back to RocksDB */
    char log_servers[512];           /* NATS JetStream "nats://h:p,..."; "" = no update log */
    char log_stream[64];             /* stream of the fleet's writes */
    char log_subject[128];           /* subject the stream captures */
    char log_consumer[64];           /* this replica's durable consumer (unique per replica) */
    int log_replicas;                /* stream copies when this server creates the stream */
    int log_timeout_ms;              /* publish acknowledgement / stream setup wait */
    long long log_max_lag; /* health NOT_SERVING above this many unapplied records; 0 = never */
    int log_read_wait_ms;  /* min_sequence wait when the call has no deadline */
    int model_poll_s;      /* look for a newer model version every this many s; 0 = never */
} mr_server_config;

void mr_config_defaults(mr_server_config *c);
/* Overlay the fields present in a JSON file on c. */
int mr_config_load_file(mr_server_config *c, const char *path, mr_err *err);
/* Same, from a JSON string (tests). */
int mr_config_load_string(mr_server_config *c, const char *json, mr_err *err);
/* Range checks; names the offending field. */
int mr_config_validate(const mr_server_config *c, mr_err *err);

#endif
