/* cmd_serve.c — `moerec serve`: run the gRPC server until SIGTERM/SIGINT;
 * SIGHUP re-reads the TLS certificate files.
 *
 * SIGTERM/SIGINT are blocked before the server starts its threads, which
 * inherit the mask, and the main thread takes them with sigtimedwait, so
 * shutdown runs as ordinary code: stop accepting, drain in-flight calls,
 * exit 0. Threads started before main (OpenBLAS's pool) do not inherit the
 * mask: a signal the kernel hands to one of them (when main is not
 * waiting, e.g. a second SIGTERM during the drain) would kill the process
 * with the default action, so a handler catches it there and writes it to
 * a pipe that main also checks. Signals after the first are ignored.
 * (Waiting in sigtimedwait rather than on the pipe alone keeps the main
 * thread the one the kernel picks, which ThreadSanitizer builds need: they
 * defer a handler in a thread that sits in uninstrumented code.)
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/tensor.h"
#include "server/server.h"
#include "tools/cli.h"
#include "tools/command.h"

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: moerec serve [--config FILE] [--host ADDR] [--port N] [--queues N]\n"
        "                    [--model-dir DIR] [--default-model NAME] [--precision P] [--data-dir DIR]\n"
        "                    [--item-dim N] [--metrics-port N] [--auth-tokens FILE]\n"
        "                    [--drain-grace SECONDS] [--log-level LEVEL]\n\n"
        "Serve the moerec gRPC API (moerec.v1.Recommender, moerec.v1.Admin,\n"
        "grpc.health.v1.Health) until SIGTERM or SIGINT, then drain and exit 0.\n"
        "SIGHUP re-reads the TLS certificate files (tls_* in the config file).\n\n"
        "  --config FILE      JSON config (docs/operations.md); flags override it\n"
        "  --host ADDR        bind address (default 127.0.0.1)\n"
        "  --port N           port (default 50051); 0 picks a free port\n"
        "  --queues N         completion queues = worker threads (default 2)\n"
        "  --model-dir DIR    model root: DIR/<name>/<version>/model.json; the newest\n"
        "                     version of each model is loaded (Score, GetModelInfo, Reload)\n"
        "  --default-model NAME\n"
        "                     model used when a request names none (default: first by name)\n"
        "  --precision P      ranker precision for every model: fp32, bf16, int8 or\n"
        "                     openblas_fp32 (default: each model.json's \"precision\")\n"
        "  --data-dir DIR     RocksDB store for items, events and SDIM tables\n"
        "                     (UpsertItems, AppendEvents, stored features, SDIM input)\n"
        "  --item-dim N       width of the store's item vectors (creates the table)\n"
        "  --metrics-port N   serve Prometheus /metrics on N (0 = a free port; off by default)\n"
        "  --auth-tokens FILE require 'authorization: Bearer <token>' (tokens, one a line;\n"
        "                     'admin' after a token allows moerec.v1.Admin; health stays open)\n"
        "  --drain-grace SECONDS\n"
        "                     on SIGTERM, report NOT_SERVING but keep serving SECONDS\n"
        "                     before refusing new calls (default 5; drain_grace_seconds)\n"
        "  --log-level LEVEL  debug, info, warn, error, off (default info)\n\n"
        "Once listening it prints one line to stdout: 'listening on HOST:PORT' (and,\n"
        "with metrics on, a second: 'metrics on http://HOST:PORT/metrics'; the status\n"
        "page is at http://HOST:PORT/).\n\n"
        "Example:\n"
        "  moerec serve --port 50051 --model-dir models --data-dir db --item-dim 16 \\\n"
        "      --metrics-port 9464\n");
}

static int serve_sig_pipe[2] = {-1, -1};

static void serve_on_signal(int sig) { /* async-signal-safe: one write */
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (write(serve_sig_pipe[1], &b, 1) < 0) { /* pipe full: a signal is already pending */
    }
    errno = saved;
}

/* Block until SIGTERM, SIGINT or SIGHUP (sigs, blocked in this thread);
 * returns it. */
static int serve_wait_signal(const sigset_t *sigs) {
    for (;;) {
        struct timespec poll_every = {0, 100 * 1000 * 1000};
        int sig = sigtimedwait(sigs, NULL, &poll_every);
        if (sig > 0) return sig;
        unsigned char b;
        if (read(serve_sig_pipe[0], &b, 1) == 1) return b; /* caught in another thread */
    }
}

static int serve_main(int argc, char **argv) {
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"host", required_argument, 0, 'H'},
                                         {"port", required_argument, 0, 'p'},
                                         {"queues", required_argument, 0, 'q'},
                                         {"log-level", required_argument, 0, 'l'},
                                         {"help", no_argument, 0, 'h'},
                                         {"model-dir", required_argument, 0, 'm'},
                                         {"default-model", required_argument, 0, 'd'},
                                         {"data-dir", required_argument, 0, 'D'},
                                         {"item-dim", required_argument, 0, 'I'},
                                         {"metrics-port", required_argument, 0, 'M'},
                                         {"auth-tokens", required_argument, 0, 'A'},
                                         {"precision", required_argument, 0, 'P'},
                                         {"drain-grace", required_argument, 0, 'g'},
                                         {0, 0, 0, 0}};
    mr_server_config cfg;
    mr_config_defaults(&cfg);
    mr_err err;
    mr_err_clear(&err);
    /* The config file first, wherever --config appears; then flags on top. */
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--config") && mr_config_load_file(&cfg, argv[i + 1], &err)) {
            fprintf(stderr, "moerec serve: %s\n", err.msg);
            return 2;
        }
    int o;
    mr_err ce;
    mr_err_clear(&ce);
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int bad = 0;
        switch (o) {
        case 'c': break;
        case 'H': snprintf(cfg.host, sizeof cfg.host, "%s", optarg); break;
        case 'p': bad = cli_int("--port", optarg, 0, 65535, &cfg.port, &ce); break;
        case 'q': bad = cli_int("--queues", optarg, 1, 256, &cfg.completion_queues, &ce); break;
        case 'l': snprintf(cfg.log_level, sizeof cfg.log_level, "%s", optarg); break;
        case 'm': snprintf(cfg.model_dir, sizeof cfg.model_dir, "%s", optarg); break;
        case 'd': snprintf(cfg.default_model, sizeof cfg.default_model, "%s", optarg); break;
        case 'D': snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", optarg); break;
        case 'I': bad = cli_int("--item-dim", optarg, 0, 65536, &cfg.item_dim, &ce); break;
        case 'M': bad = cli_int("--metrics-port", optarg, -1, 65535, &cfg.metrics_port, &ce); break;
        case 'P': snprintf(cfg.precision, sizeof cfg.precision, "%s", optarg); break;
        case 'g':
            bad = cli_parse_double("--drain-grace", optarg, 0, 3600, &cfg.drain_grace_seconds, &ce);
            break;
        case 'A': snprintf(cfg.auth_tokens_file, sizeof cfg.auth_tokens_file, "%s", optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (bad) {
            fprintf(stderr, "moerec serve: %s (see --help)\n", ce.msg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "moerec serve: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (mr_config_validate(&cfg, &err)) {
        fprintf(stderr, "moerec serve: %s\n", err.msg);
        return 2;
    }
    mr_log_set_level((mr_log_level)mr_log_parse_level(cfg.log_level));
    /* glibc malloc, before the server starts its threads (docs/operations.md,
     * Memory budget). A fixed mmap threshold: with glibc's dynamic one, the
     * first free of an mmapped block (RocksDB's 1 MiB memtable arena
     * blocks, freed at each flush) raises the threshold, later blocks come
     * from the heap and their free pages stayed held — measured in the
     * soak: anonymous RSS +8 MB in 2 minutes at a steady state with it,
     * flat without. Few arenas: each thread's arena keeps its own freed
     * memory (requests allocate from their mr_arena, so contention is
     * low). A fixed mmap threshold also fixes glibc's trim threshold (128
     * KiB): freed memory above it at the heap's top goes back to the OS at
     * once. A Score call's request arena (16 KiB chunks, ~1-2 MB for 500
     * candidates) is freed at the end of every call, so each call gave the
     * heap's top back (brk) and faulted it in again: 5.3% of the server's
     * CPU at 500 candidates, 1 client (page faults 4.3%, brk 0.8%), 0.02%
     * with the trim threshold at 32 MiB (docs/benchmarks.md). The
     * environment's MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ /
     * MALLOC_ARENA_MAX win. */
#ifdef __GLIBC__
    if (cfg.malloc_mmap_threshold_bytes > 0 && !getenv("MALLOC_MMAP_THRESHOLD_"))
        mallopt(M_MMAP_THRESHOLD, (int)cfg.malloc_mmap_threshold_bytes);
    if (cfg.malloc_trim_threshold_bytes > 0 && !getenv("MALLOC_TRIM_THRESHOLD_"))
        mallopt(M_TRIM_THRESHOLD, (int)cfg.malloc_trim_threshold_bytes);
    if (cfg.malloc_arena_max > 0 && !getenv("MALLOC_ARENA_MAX"))
        mallopt(M_ARENA_MAX, cfg.malloc_arena_max);
#endif
    /* Parallelism comes from concurrent requests: each handler's sgemm runs
     * on its own worker thread, never fanning out across the cores. */
    mr_blas_set_threads(1);

    if (pipe(serve_sig_pipe) != 0 || fcntl(serve_sig_pipe[0], F_SETFL, O_NONBLOCK) != 0 ||
        fcntl(serve_sig_pipe[1], F_SETFL, O_NONBLOCK) != 0) {
        fprintf(stderr, "moerec serve: pipe: %s\n", strerror(errno));
        return 1;
    }
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = serve_on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    mr_server *srv;
    if (mr_server_create(&cfg, &srv, &err) || mr_server_start(srv, &err)) {
        fprintf(stderr, "moerec serve: %s\n", err.msg);
        return 1;
    }
    /* a target a client can dial as printed: IPv6 addresses in brackets */
    if (strchr(cfg.host, ':')) printf("listening on [%s]:%d\n", cfg.host, mr_server_port(srv));
    else printf("listening on %s:%d\n", cfg.host, mr_server_port(srv));
    if (mr_server_metrics_port(srv) >= 0) /* second line: tests read the first */
        printf("metrics on %s://%s:%d/metrics\n", cfg.metrics_tls ? "https" : "http",
               cfg.metrics_host, mr_server_metrics_port(srv));
    fflush(stdout);
    mr_info("serving on %s:%d with %d queues", cfg.host, mr_server_port(srv),
            cfg.completion_queues);
    int sig;
    while ((sig = serve_wait_signal(&sigs)) == SIGHUP) { /* re-read the certificate files */
        if (!mr_server_tls_on(srv)) mr_info("SIGHUP: TLS is off; nothing to re-read");
        else if (mr_server_reload_tls(srv, &err))
            mr_warn("SIGHUP: %s; the certificate in use stays", err.msg);
    }
    mr_info("%s: draining (grace %.3f s, then up to %.1f s for calls in flight); further "
            "signals are ignored",
            sig == SIGTERM ? "SIGTERM" : "SIGINT", cfg.drain_grace_seconds, cfg.drain_seconds);
    mr_server_drain(srv);
    mr_server_free(srv);
    mr_info("stopped");
    return 0;
}

MR_COMMAND(serve_command, "serve", "serve the gRPC API (Recommend, Score, Retrieve, health)",
           serve_main)
