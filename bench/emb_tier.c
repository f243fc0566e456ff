/* bench_emb_tier: the programs bench/emb_tier.sh runs (see there).
 *
 *   make   --out DIR --rows N --mem-rows M [--dim D] [--encoding int8|fp16|fp32]
 *          writes DIR/store/tier/1 (the item table: N rows, "storage":
 *          "store") and DIR/memory/tier/1 (the same model with an M-row
 *          in-memory item table): model.json and weights.safetensors, the
 *          big tensor streamed (never held in memory); the dense weights
 *          are identical. Prints the dense bytes (dense weights + user table).
 *   client --target HOST:PORT --pid PID [--metrics URL --table NAME --cache-bytes B]
 *          [--rows N] [--candidates 500] [--requests 400] [--warm-candidates 5000]
 *          [--warm-max 20000] [--warm-seconds 600] [--warm-after-full 0] [--seed 7]
 *          Score RPCs over loopback (one channel, one call at a time) with
 *          --candidates items whose ids are Zipf(1.1) over N. With --table
 *          (a store table): warm-up first, until the cache is full and the
 *          table's hit rate (moerec_store_table_cache_*_total{table}) stops
 *          rising over 3 windows and --warm-after-full calls went by since it
 *          became full (the policy's steady state), or --warm-max requests /
 *          --warm-seconds;
 *          then the timed requests. Prints one JSON object: p50/p99 (us),
 *          the timed requests' hit rate, the warm-up, the server's RSS.
 *   puts   --dir DIR --n N [--dim D]: N row-by-row emb_store_put calls into
 *          an int8 table IN PROCESS (a store of its own, no server), for
 *          scale against the bulk load.
 */
#include <arpa/inet.h>
#include <grpc/grpc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/rng.h"
#include "common/tensor.h"
#include "index/store/store.h"
#include "moe/model.h"
#include "moe/net.h"
#include "proto/moerec.pb-c.h"
#include "tests/integration/grpc_client.h"
#include "zipf.h"

static const char *k_fmt =
    "{\"name\":\"tier\",\"tables\":[{\"name\":\"user\",\"rows\":4096,\"dim\":16},"
    "{\"name\":\"item\",\"rows\":%ld,\"dim\":%d%s}],"
    "\"features\":{\"categorical\":[{\"name\":\"user_id\",\"table\":\"user\"},"
    "{\"name\":\"item_id\",\"table\":\"item\"}]},"
    "\"tasks\":[{\"name\":\"click\"},{\"name\":\"like\"}],"
    "\"arch\":{\"type\":\"mmoe\",\"experts\":4,\"expert_hidden\":[64],\"tower_hidden\":[16]}}";

static const char *arg(int argc, char **argv, const char *name, const char *def) {
    for (int i = 2; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) return argv[i + 1];
    return def;
}

/* ---- make ---------------------------------------------------------------- */

typedef struct hdr {
    char *s;
    size_t n, cap;
} hdr;

static void hput(hdr *h, const char *name, long r, long c, size_t *off) {
    size_t bytes = (size_t)r * (size_t)(c ? c : 1) * 4;
    char tmp[512];
    int k = c ? snprintf(
                    tmp, sizeof tmp,
                    "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%ld,%ld],\"data_offsets\":[%zu,%zu]}",
                    h->n > 1 ? "," : "", name, r, c, *off, *off + bytes)
              : snprintf(tmp, sizeof tmp,
                         "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%ld],\"data_offsets\":[%zu,%zu]}",
                         h->n > 1 ? "," : "", name, r, *off, *off + bytes);
    if (h->n + (size_t)k + 2 > h->cap) {
        h->cap = (h->n + (size_t)k + 2) * 2;
        h->s = realloc(h->s, h->cap);
    }
    memcpy(h->s + h->n, tmp, (size_t)k + 1);
    h->n += (size_t)k;
    *off += bytes;
}

/* One version dir: model.json and weights.safetensors of m's dense weights
 * and user table, with an item table of `rows` rows generated in chunks. */
static int write_version(const char *dir, const moe_model *m, long rows, int dim,
                         const char *storage) {
    char p[4096], js[2048];
    snprintf(p, sizeof p, "mkdir -p '%s'", dir);
    if (system(p) != 0) return -1;
    snprintf(js, sizeof js, k_fmt, rows, dim, storage);
    snprintf(p, sizeof p, "%s/model.json", dir);
    FILE *f = fopen(p, "w");
    if (!f || fputs(js, f) < 0 || fclose(f)) return -1;
    hdr h = {malloc(64), 1, 64};
    h.s[0] = '{';
    size_t off = 0;
    hput(&h, "emb.user", m->tables[0].rows, m->tables[0].dim, &off);
    hput(&h, "emb.item", rows, dim, &off);
    for (int i = 0; i < m->net->n_tensors; i++) {
        const moe_tensor *t = &m->net->tensors[i];
        hput(&h, t->name, t->shape[0], t->ndim == 2 ? t->shape[1] : 0, &off);
    }
    h.s[h.n++] = '}';
    while (h.n % 8) h.s[h.n++] = ' ';
    snprintf(p, sizeof p, "%s/weights.safetensors", dir);
    f = fopen(p, "wb");
    if (!f) return -1;
    uint64_t hl = h.n;
    int bad = fwrite(&hl, 8, 1, f) != 1 || fwrite(h.s, 1, h.n, f) != h.n;
    bad |= fwrite(m->tables[0].data, 4, (size_t)m->tables[0].rows * (size_t)m->tables[0].dim, f) !=
           (size_t)m->tables[0].rows * (size_t)m->tables[0].dim;
    mr_rng r;
    mr_rng_seed(&r, 42);
    const long chunk = 1 << 18;
    float *buf = malloc(sizeof(float) * (size_t)chunk * (size_t)dim);
    for (long lo = 0; !bad && lo < rows; lo += chunk) {
        long n = rows - lo < chunk ? rows - lo : chunk;
        for (long i = 0; i < n * dim; i++) buf[i] = (float)(mr_rng_uniform(&r) * 0.2 - 0.1);
        bad |= fwrite(buf, sizeof(float) * (size_t)dim, (size_t)n, f) != (size_t)n;
    }
    free(buf);
    for (int i = 0; !bad && i < m->net->n_tensors; i++)
        bad |= fwrite(m->net->tensors[i].data, 4, (size_t)m->net->tensors[i].n, f) !=
               (size_t)m->net->tensors[i].n;
    free(h.s);
    return fclose(f) || bad ? -1 : 0;
}

static int cmd_make(int argc, char **argv) {
    const char *out = arg(argc, argv, "--out", NULL), *enc = arg(argc, argv, "--encoding", "int8");
    long rows = atol(arg(argc, argv, "--rows", "50000000"));
    long mem_rows = atol(arg(argc, argv, "--mem-rows", "5000000"));
    int dim = atoi(arg(argc, argv, "--dim", "64"));
    if (!out || rows < 1000 || mem_rows < 2 || dim < 1 || dim > 1024) {
        fprintf(stderr, "emb_tier make: need --out, --rows >= 1000, --mem-rows, --dim\n");
        return 2;
    }
    char js[2048], dir[4096], storage[128];
    snprintf(js, sizeof js, k_fmt, 2L, dim, "");
    moe_model *m;
    mr_err e;
    if (moe_model_from_json(&m, js, 1, &e)) {
        fprintf(stderr, "emb_tier make: %s\n", e.msg);
        return 1;
    }
    snprintf(storage, sizeof storage, ",\"storage\":\"store\",\"encoding\":\"%s\"", enc);
    snprintf(dir, sizeof dir, "%s/store/tier/1", out);
    if (write_version(dir, m, rows, dim, storage)) return perror("emb_tier make: store"), 1;
    snprintf(dir, sizeof dir, "%s/memory/tier/1", out);
    if (write_version(dir, m, mem_rows, dim, "")) return perror("emb_tier make: memory"), 1;
    printf("%ld\n", m->net->n_params * 4 + m->tables[0].rows * m->tables[0].dim * 4);
    moe_model_free(m);
    return 0;
}

/* ---- client -------------------------------------------------------------- */

/* GET http://127.0.0.1:PORT/metrics into a malloc'd string (NULL on error). */
static char *get_metrics(const char *url) {
    int port = 0;
    const char *c = strrchr(url, ':');
    if (!c || (port = atoi(c + 1)) <= 0) return NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) {
        if (fd >= 0) close(fd);
        return NULL;
    }
    const char *q = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, q, strlen(q)) != (ssize_t)strlen(q)) {
        close(fd);
        return NULL;
    }
    size_t n = 0, cap = 1 << 16;
    char *b = malloc(cap);
    ssize_t r;
    while ((r = read(fd, b + n, cap - n - 1)) > 0) {
        n += (size_t)r;
        if (n + 1 == cap) b = realloc(b, cap *= 2);
    }
    close(fd);
    b[n] = 0;
    return b;
}

static double metric(const char *m, const char *key) {
    char k[320];
    snprintf(k, sizeof k, "\n%.300s ", key);
    const char *p = m ? strstr(m, k) : NULL;
    return p ? atof(p + strlen(k)) : -1;
}

typedef struct tstats {
    double hits, misses, cache_bytes, cache_cap;
} tstats;

static double g_cache_cap; /* --cache-bytes: the server's cache_bytes */

static int table_stats(const char *url, const char *table, tstats *s) {
    s->cache_cap = g_cache_cap;
    char *m = get_metrics(url), k[256];
    if (!m) return -1;
    snprintf(k, sizeof k, "moerec_store_table_cache_hits_total{table=\"%s\"}", table);
    s->hits = metric(m, k);
    snprintf(k, sizeof k, "moerec_store_table_cache_misses_total{table=\"%s\"}", table);
    s->misses = metric(m, k);
    s->cache_bytes = metric(m, "moerec_store_cache_bytes");
    free(m);
    return s->hits < 0 || s->misses < 0 ? -1 : 0;
}

static long status_mb(long pid, const char *key) {
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%ld/status", pid);
    FILE *f = fopen(p, "r");
    long kb = -1;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') kb = atol(line + kl + 1);
    if (f) fclose(f);
    return kb < 0 ? -1 : kb / 1024;
}

typedef struct req {
    Moerec__V1__ScoreRequest r;
    Moerec__V1__Candidate *c, **cp;
    char (*ids)[24];
} req;

static void req_init(req *q, int C) {
    moerec__v1__score_request__init(&q->r);
    q->r.user_id = "user-7";
    q->r.model = "tier";
    q->c = calloc((size_t)C, sizeof *q->c);
    q->cp = calloc((size_t)C, sizeof *q->cp);
    q->ids = calloc((size_t)C, sizeof *q->ids);
    for (int i = 0; i < C; i++) {
        moerec__v1__candidate__init(&q->c[i]);
        q->c[i].item_id = q->ids[i];
        q->cp[i] = &q->c[i];
    }
    q->r.candidates = q->cp;
}

/* One Score of C Zipf ids; returns latency in ns, 0 on a failed call. */
static uint64_t score(grpc_channel *ch, req *q, int C, const zipf *z, mr_rng *r) {
    for (int i = 0; i < C; i++)
        snprintf(q->ids[i], sizeof q->ids[i], "i%llu", /* the rank: the table's hash scatters it */
                 (unsigned long long)zipf_draw(z, r));
    q->r.n_candidates = (size_t)C;
    call_result res;
    ProtobufCMessage *resp = NULL;
    uint64_t t0 = mr_now_ns();
    int rc = test_unary(ch, "/moerec.v1.Recommender/Score", &q->r.base,
                        &moerec__v1__score_response__descriptor, 60, &resp, &res);
    uint64_t dt = mr_now_ns() - t0;
    int ok = !rc && res.status == GRPC_STATUS_OK && resp;
    if (!ok) fprintf(stderr, "emb_tier: Score failed: %d %s\n", (int)res.status, res.details);
    if (resp) protobuf_c_message_free_unpacked(resp, NULL);
    call_result_free(&res);
    return ok ? (dt ? dt : 1) : 0;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int cmd_client(int argc, char **argv) {
    const char *target = arg(argc, argv, "--target", NULL),
               *url = arg(argc, argv, "--metrics", NULL), *table = arg(argc, argv, "--table", NULL);
    long pid = atol(arg(argc, argv, "--pid", "0"));
    uint64_t rows = (uint64_t)atoll(arg(argc, argv, "--rows", "50000000"));
    int C = atoi(arg(argc, argv, "--candidates", "500")),
        N = atoi(arg(argc, argv, "--requests", "400")),
        WC = atoi(arg(argc, argv, "--warm-candidates", "5000")),
        warm_max = atoi(arg(argc, argv, "--warm-max", "20000")),
        after_full = atoi(arg(argc, argv, "--warm-after-full", "0"));
    double warm_s_max = atof(arg(argc, argv, "--warm-seconds", "600"));
    g_cache_cap = atof(arg(argc, argv, "--cache-bytes", "0"));
    if (!target || pid <= 0 || rows < 2 || C < 1 || N < 2 || WC < 1 || (table && !url)) {
        fprintf(stderr, "emb_tier client: need --target, --pid (and --metrics with --table)\n");
        return 2;
    }
    grpc_init();
    test_server ts;
    memset(&ts, 0, sizeof ts);
    snprintf(ts.target, sizeof ts.target, "%s", target);
    grpc_channel *ch = test_channel(&ts);
    mr_rng r;
    mr_rng_seed(&r, (uint64_t)atoll(arg(argc, argv, "--seed", "7")));
    zipf z;
    zipf_init(&z, 1.1, rows);
    req q;
    req_init(&q, C > WC ? C : WC);
    /* warm-up: windows of requests until the cache is full and the hit rate
     * has stopped rising (no window 0.002 above the best of the 3 before) */
    int warm = 0, full = 0, windows = 0, full_at = -1;
    double best[64] = {0}, last_rate = 0, t0 = (double)mr_now_ns() / 1e9, warm_s = 0;
    tstats a, b;
    if (table && table_stats(url, table, &a)) {
        fprintf(stderr, "emb_tier: no counters for table %s at %s\n", table, url);
        return 1;
    }
    int stop = !table;
    while (!stop) {
        int wn = 20;
        for (int i = 0; i < wn; i++, warm++)
            if (!score(ch, &q, WC, &z, &r)) return 1;
        if (table_stats(url, table, &b)) return 1;
        double h = b.hits - a.hits, m = b.misses - a.misses;
        last_rate = h + m > 0 ? h / (h + m) : 0;
        a = b;
        full = b.cache_bytes >= 0.97 * b.cache_cap;
        if (full && full_at < 0) full_at = warm;
        best[windows % 64] = last_rate;
        windows++;
        int rising = windows < 4;
        for (int k = 1; !rising && k <= 3; k++)
            rising = last_rate > best[(windows - 1 - k) % 64] + 0.002;
        warm_s = (double)mr_now_ns() / 1e9 - t0;
        fprintf(stderr,
                "\rwarm-up: %d requests of %d, %.0f s, window hit rate %.4f, cache %.0f / %.0f MB",
                warm, WC, warm_s, last_rate, b.cache_bytes / 1048576, b.cache_cap / 1048576);
        stop = (full && !rising && warm - full_at >= after_full) || warm >= warm_max ||
               warm_s >= warm_s_max;
    }
    if (table) fprintf(stderr, "\n");
    if (table && table_stats(url, table, &a)) return 1;
    uint64_t *lat = malloc(sizeof *lat * (size_t)N);
    for (int i = 0; i < N; i++)
        if (!(lat[i] = score(ch, &q, C, &z, &r))) return 1;
    double hit_rate = -1;
    if (table) {
        if (table_stats(url, table, &b)) return 1;
        hit_rate = (b.hits - a.hits) / (b.hits - a.hits + b.misses - a.misses);
    }
    qsort(lat, (size_t)N, sizeof *lat, cmp_u64);
    double p50 = (double)lat[(int)(0.5 * (N - 1) + 0.5)] / 1e3,
           p99 = (double)lat[(int)(0.99 * (N - 1) + 0.5)] / 1e3;
    printf(
        "{\"p50_us\":%.0f,\"p99_us\":%.0f,\"requests\":%d,\"hit_rate\":%.4f,"
        "\"warm_requests\":%d,\"warm_full_at\":%d,\"warm_candidates\":%d,\"warm_s\":%.1f,\"warm_last_window_hit_rate\":%.4f,"
        "\"cache_full\":%s,\"cache_mb_used\":%.0f,\"rss_mb\":%ld,\"rss_anon_mb\":%ld,"
        "\"rss_file_mb\":%ld}\n",
        p50, p99, N, hit_rate, warm, full_at, WC, warm_s, last_rate, full ? "true" : "false",
        table ? b.cache_bytes / 1048576 : 0.0, status_mb(pid, "VmRSS"), status_mb(pid, "RssAnon"),
        status_mb(pid, "RssFile"));
    free(lat);
    grpc_channel_destroy(ch);
    grpc_shutdown();
    return 0;
}

/* ---- puts (in process) --------------------------------------------------- */

static int cmd_puts(int argc, char **argv) {
    const char *dir = arg(argc, argv, "--dir", NULL);
    long n = atol(arg(argc, argv, "--n", "1000000"));
    int dim = atoi(arg(argc, argv, "--dim", "64"));
    if (!dir || n < 1 || dim < 1) return 2;
    store_config c;
    store_config_init(&c);
    mr_store *st;
    mr_err e;
    if (store_open(&st, dir, &c, &e) ||
        emb_table_create(st, "puts", (uint32_t)dim, EMB_INT8, 0, &e)) {
        fprintf(stderr, "emb_tier puts: %s\n", e.msg);
        return 1;
    }
    mr_emb_table *t = emb_store_table(st, "puts", &e);
    float *v = mr_floats_alloc((size_t)dim * 1024);
    mr_rng r;
    mr_rng_seed(&r, 3);
    for (long i = 0; i < (long)dim * 1024; i++) v[i] = (float)(mr_rng_uniform(&r) * 0.2 - 0.1);
    uint64_t t0 = mr_now_ns();
    for (long i = 0; i < n; i++) {
        uint64_t id = (uint64_t)i * 7919u;
        if (emb_store_put(st, t, &id, 1, v + (i % 1024) * dim, (size_t)dim, &e)) {
            fprintf(stderr, "emb_tier puts: %s\n", e.msg);
            return 1;
        }
    }
    printf("%.2f\n", (double)(mr_now_ns() - t0) / 1e9);
    mr_floats_free(v);
    store_close(st);
    return 0;
}

int main(int argc, char **argv) {
    const char *cmd = argc > 1 ? argv[1] : "";
    if (!strcmp(cmd, "make")) return cmd_make(argc, argv);
    if (!strcmp(cmd, "client")) return cmd_client(argc, argv);
    if (!strcmp(cmd, "puts")) return cmd_puts(argc, argv);
    fprintf(stderr, "usage: bench_emb_tier make|client|puts ... (bench/emb_tier.sh)\n");
    return 2;
}
