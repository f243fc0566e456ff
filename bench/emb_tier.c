/* emb_tier — ranker item table of 50M int8 rows served from RocksDB behind the cache vs a 5M-row table in memory
 *
 * In process (no gRPC): the same MMoE scores requests of --candidates
 * (500) items each, item ids drawn from Zipf(1.1) over --rows values, two
 * ways: (a) the item table's --rows rows (50,000,000, --dim 64, int8 +
 * scale) live in a RocksDB column family, bulk-loaded with
 * emb_store_ingest (SST files + external ingestion, --chunk rows per
 * file), and the scorer fetches each request's distinct rows with ONE
 * emb_store_get (memory cache -> batched multi-get; moe_model_set_row_source);
 * (b) the same model with a --mem-rows (5,000,000) fp32 table in memory.
 * The cache is --cache-mb (default: a tenth of the table's bytes on disk).
 * --warm requests fill the cache first (untimed); then --requests timed
 * requests run on (a), and the same requests on (b) afterwards (b's table
 * is built only after (a)'s RSS reading). Reported: p50/p99
 * per side, the ratio of p99s (target <= 1.5 at a hit rate >= 90%), the
 * cache hit rate of the timed requests, the process RSS after the store
 * side (target: below cache + dense weights + 500 MB; the in-memory table
 * is built only after that reading), ingest time and rows/s, and for scale
 * --puts (1,000,000) row-by-row emb_store_put calls into another int8 table.
 * The database goes to --dir (default $TMPDIR) and is removed afterwards.
 * Usage: bench/run emb_tier [--rows N] [--mem-rows N] [--dim D] [--cache-mb MB]
 *          [--candidates C] [--requests N] [--warm N] [--puts N] [--chunk N] [--dir DIR]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/rng.h"
#include "common/tensor.h"
#include "index/store/emb_codec.h"
#include "index/store/store.h"
#include "moe/scorer.h"
#include "zipf.h"

static const char *k_fmt =
    "{\"name\":\"tier\",\"tables\":[{\"name\":\"user\",\"rows\":4096,\"dim\":16},"
    "{\"name\":\"item\",\"rows\":%ld,\"dim\":%d}],"
    "\"features\":{\"categorical\":[{\"name\":\"user\",\"table\":\"user\"},{\"name\":\"item\",\"table\":\"item\"}]},"
    "\"tasks\":[{\"name\":\"click\"},{\"name\":\"like\"}],"
    "\"arch\":{\"type\":\"mmoe\",\"experts\":4,\"expert_hidden\":[64],\"tower_hidden\":[16]}}";

typedef struct src {
    mr_store *st;
    mr_emb_table *t;
} src;

static int fetch(void *ctx, int t, const uint64_t *rows, size_t n, float *out, mr_err *e) {
    (void)t;
    src *s = ctx;
    return emb_store_get(s->st, s->t, rows, n, out, NULL, e);
}

/* A /proc/self/status field in MB (VmRSS, RssAnon, RssFile: SST pages
 * read through mmap count as file-backed RSS). */
static long status_mb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') kb = atol(line + kl + 1);
    if (f) fclose(f);
    return kb / 1024;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static double pct_us(uint64_t *v, int n, double p) {
    qsort(v, (size_t)n, sizeof *v, cmp_u64);
    return (double)v[(int)(p * (n - 1) + 0.5)] / 1e3;
}

/* One request: candidates of the stream at *pos, then run. */
static int request(moe_scorer *s, const uint64_t *stream, long *pos, int C, float *score,
                   mr_err *e) {
    char buf[32];
    const char *u = "user-7", *v = buf;
    int rc = moe_scorer_begin(s, C, e);
    if (!rc) rc = moe_scorer_set_cat(s, MOE_ALL_ROWS, 0, &u, NULL, 1, e);
    for (int i = 0; !rc && i < C; i++) {
        snprintf(buf, sizeof buf, "i%llu", (unsigned long long)stream[(*pos)++]);
        rc = moe_scorer_set_cat(s, i, 1, &v, NULL, 1, e);
    }
    return rc ? rc : moe_scorer_run(s, NULL, score, e);
}

int main(int argc, char **argv) {
    long rows = 50000000, mem_rows = 5000000, chunk = 2000000, puts_n = 1000000;
    int dim = 64, C = 500, requests = 400, warm = 2000;
    double cache_mb = 0;
    const char *dirbase = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--rows")) rows = atol(v);
        else if (!strcmp(a, "--mem-rows")) mem_rows = atol(v);
        else if (!strcmp(a, "--dim")) dim = atoi(v);
        else if (!strcmp(a, "--cache-mb")) cache_mb = atof(v);
        else if (!strcmp(a, "--candidates")) C = atoi(v);
        else if (!strcmp(a, "--requests")) requests = atoi(v);
        else if (!strcmp(a, "--warm")) warm = atoi(v);
        else if (!strcmp(a, "--puts")) puts_n = atol(v);
        else if (!strcmp(a, "--chunk")) chunk = atol(v);
        else if (!strcmp(a, "--dir")) dirbase = v;
        else {
            fprintf(stderr, "emb_tier: unknown option %s\n", a);
            return 2;
        }
    }
    if (rows < 1000 || mem_rows < 2 || dim < 1 || dim > 1024 || C < 1 || requests < 2 ||
        chunk < 1) {
        fprintf(stderr, "emb_tier: bad sizes\n");
        return 2;
    }
    mr_blas_set_threads(1);
    size_t row_bytes = emb_codec_row_bytes(EMB_INT8, (uint32_t)dim);
    double disk_mb = (double)rows * (double)(row_bytes + 8) / 1048576.0;
    if (cache_mb <= 0) cache_mb = disk_mb / 10;
    char dir[512], sst[600];
    snprintf(dir, sizeof dir, "%s/moerec-emb-tier-XXXXXX", dirbase);
    if (!mkdtemp(dir)) {
        perror("emb_tier: mkdtemp");
        return 1;
    }
    mr_err e;
    store_config c;
    store_config_init(&c);
    c.cache_bytes = (size_t)(cache_mb * 1048576.0);
    mr_store *st;
    if (store_open(&st, dir, &c, &e) ||
        emb_table_create(st, "item", (uint32_t)dim, EMB_INT8, 0, &e) ||
        emb_table_create(st, "puts", (uint32_t)dim, EMB_INT8, 0, &e)) {
        fprintf(stderr, "emb_tier: %s\n", e.msg);
        return 1;
    }
    src sc = {st, emb_store_table(st, "item", &e)};
    /* ---- ingest: chunks of ascending ids, one SST file each */
    mr_rng r;
    mr_rng_seed(&r, 42);
    uint64_t *ids = malloc(sizeof *ids * (size_t)chunk);
    float *vecs = mr_floats_alloc((size_t)chunk * (size_t)dim);
    uint64_t t0 = mr_now_ns();
    for (long base = 0; base < rows; base += chunk) {
        long n = rows - base < chunk ? rows - base : chunk;
        for (long i = 0; i < n; i++) ids[i] = (uint64_t)(base + i);
        for (long i = 0; i < n * dim; i++) vecs[i] = (float)(mr_rng_uniform(&r) * 0.2 - 0.1);
        snprintf(sst, sizeof sst, "%s/chunk-%ld.sst", dir, base / chunk);
        if (emb_store_ingest(st, sc.t, ids, (size_t)n, vecs, (size_t)(n * dim), sst, &e)) {
            fprintf(stderr, "emb_tier: %s\n", e.msg);
            return 1;
        }
        fprintf(stderr, "\ringest: %ld / %ld rows, %.0f s", base + n, rows,
                (double)(mr_now_ns() - t0) / 1e9);
    }
    double ingest_s = (double)(mr_now_ns() - t0) / 1e9;
    mr_floats_free(
        vecs); /* the ingest buffer is the bench's, not the server's: gone before RSS is read */
    vecs = mr_floats_alloc((size_t)dim * 1024);
    for (long i = 0; i < (long)dim * 1024; i++) vecs[i] = (float)(mr_rng_uniform(&r) * 0.2 - 0.1);
    fprintf(stderr, "\n");
    /* ---- the store-backed model: the item table's rows are only in the store */
    char js[2048];
    snprintf(js, sizeof js, k_fmt, 2L,
             dim); /* no 50M-row buffer: build small, then point at the store */
    moe_model *ms;
    if (moe_model_from_json(&ms, js, 1, &e)) {
        fprintf(stderr, "emb_tier: %s\n", e.msg);
        return 1;
    }
    moe_table *it = &ms->tables[1];
    idhash_mapper_free(it->map);
    it->rows = rows;
    if (idhash_mapper_create_hash(&it->map, (uint64_t)rows, it->seed, &e)) return 1;
    moe_model_set_row_source(ms, 1, fetch, &sc);
    double dense_mb = (double)ms->net->n_params * 4 / 1048576.0 + 4096.0 * 16 * 4 / 1048576.0;
    /* ---- id stream: Zipf(1.1) ranks scattered over values */
    long nstream = (long)(warm + 2 * requests) * C;
    uint64_t *stream = malloc(sizeof *stream * (size_t)nstream);
    zipf z;
    zipf_init(&z, 1.1, (uint64_t)rows);
    for (long i = 0; i < nstream; i++)
        stream[i] = (zipf_draw(&z, &r) * 0x9e3779b97f4a7c15ull) % (uint64_t)rows;
    moe_scorer *ss;
    float *score = malloc(sizeof(float) * (size_t)C);
    uint64_t *lat_s = malloc(sizeof(uint64_t) * (size_t)requests),
             *lat_m = malloc(sizeof(uint64_t) * (size_t)requests);
    long pos = 0;
    if (moe_scorer_create(&ss, ms, &e)) return 1;
    t0 = mr_now_ns();
    for (int q = 0; q < warm; q++)
        if (request(ss, stream, &pos, C, score, &e)) {
            fprintf(stderr, "emb_tier: %s\n", e.msg);
            return 1;
        }
    double warm_s = (double)(mr_now_ns() - t0) / 1e9;
    store_stats a, b;
    store_get_stats(st, &a);
    long pos_timed = pos;
    for (int q = 0; q < requests; q++) {
        uint64_t q0 = mr_now_ns();
        if (request(ss, stream, &pos, C, score, &e)) return 1;
        lat_s[q] = mr_now_ns() - q0;
    }
    store_get_stats(st, &b);
    long rss = status_mb("VmRSS"), rss_anon = status_mb("RssAnon"), rss_file = status_mb("RssFile");
    double hits = (double)(b.cache_hits - a.cache_hits),
           miss = (double)(b.cache_misses - a.cache_misses);
    /* ---- row-by-row puts, for scale */
    mr_emb_table *pt = emb_store_table(st, "puts", &e);
    t0 = mr_now_ns();
    for (long i = 0; i < puts_n; i++) {
        uint64_t id = (uint64_t)i * 7919u;
        if (emb_store_put(st, pt, &id, 1, vecs + (i % 1024) * dim, (size_t)dim, &e)) {
            fprintf(stderr, "emb_tier: %s\n", e.msg);
            return 1;
        }
    }
    double puts_s = (double)(mr_now_ns() - t0) / 1e9;
    /* ---- the in-memory model on the same requests */
    snprintf(js, sizeof js, k_fmt, mem_rows, dim);
    moe_model *mm;
    moe_scorer *sm;
    if (moe_model_from_json(&mm, js, 1, &e) || moe_scorer_create(&sm, mm, &e)) return 1;
    memcpy(mm->net->params, ms->net->params, sizeof(float) * (size_t)ms->net->n_params);
    pos = pos_timed >= (long)C * 200 ? pos_timed - (long)C * 200 : 0; /* warm its CPU caches too */
    for (int q = 0; q < 200; q++)
        if (request(sm, stream, &pos, C, score, &e)) return 1;
    for (int q = 0; q < requests; q++) {
        uint64_t q0 = mr_now_ns();
        if (request(sm, stream, &pos, C, score, &e)) return 1;
        lat_m[q] = mr_now_ns() - q0;
    }
    double s50 = pct_us(lat_s, requests, 0.5), s99 = pct_us(lat_s, requests, 0.99);
    double m50 = pct_us(lat_m, requests, 0.5), m99 = pct_us(lat_m, requests, 0.99);
    double budget = cache_mb + dense_mb + 500;
    fprintf(
        stderr,
        "store: p50 %.0f us p99 %.0f us, hit rate %.3f, RSS %ld MB (anon %ld, file %ld; budget %.0f) | memory (%ld rows): p50 %.0f us p99 %.0f us\n"
        "ingest %ld rows in %.1f s (%.0f rows/s); %ld row-by-row puts in %.1f s (%.0f rows/s); warm-up %d requests %.1f s\n",
        s50, s99, hits / (hits + miss), rss, rss_anon, rss_file, budget, mem_rows, m50, m99, rows,
        ingest_s, rows / ingest_s, puts_n, puts_s, puts_n / puts_s, warm, warm_s);
    printf(
        "{\"bench\":\"emb_tier\",\"rows\":%ld,\"mem_rows\":%ld,\"dim\":%d,\"encoding\":\"int8\",\"candidates\":%d,"
        "\"requests\":%d,\"disk_mb\":%.0f,\"cache_mb\":%.0f,\"store_p50_us\":%.0f,\"store_p99_us\":%.0f,"
        "\"memory_p50_us\":%.0f,\"memory_p99_us\":%.0f,\"p99_ratio_store_vs_memory\":%.3f,\"hit_rate\":%.4f,"
        "\"rss_mb\":%ld,\"rss_anon_mb\":%ld,\"rss_file_mb\":%ld,\"rss_budget_mb\":%.0f,\"ingest_s\":%.1f,\"ingest_rows_per_s\":%.0f,\"puts\":%ld,"
        "\"puts_s\":%.1f,\"puts_rows_per_s\":%.0f}\n",
        rows, mem_rows, dim, C, requests, disk_mb, cache_mb, s50, s99, m50, m99, s99 / m99,
        hits / (hits + miss), rss, rss_anon, rss_file, budget, ingest_s, rows / ingest_s, puts_n,
        puts_s, puts_n / puts_s);
    moe_scorer_free(ss);
    moe_scorer_free(sm);
    moe_model_free(ms);
    moe_model_free(mm);
    store_close(st);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "emb_tier: could not remove %s\n", dir);
    free(ids);
    mr_floats_free(vecs);
    free(stream);
    free(score);
    free(lat_s);
    free(lat_m);
    return 0;
}
