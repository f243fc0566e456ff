/* emb_store — cached vs plain RocksDB multi-get of embedding rows (10M x 64-d, Zipf 1.1)
 *
 * One table of --rows rows (default 10,000,000) of --dim floats (64) is
 * built once into a cache folder and reused by later runs (a marker file
 * says the build finished). An id stream drawn from Zipf(--zipf, 1.1) over
 * the rows (ranks scattered over ids by a fixed permutation) is read in
 * batches of --batch ids (1,000) two ways on the same database in the same
 * run: emb_store_get (memory cache -> RocksDB, misses in one multi-get)
 * and emb_store_get_uncached (one plain batched multi-get). Timed rounds
 * alternate the two paths so both see the same page cache. Target: the
 * cached path >= 5x the rows/s of the plain one at a hit rate >= 90%
 * ("speedup", from total time; "p50_speedup" compares median batches and
 * is less moved by stalls from other processes).
 *
 * Usage: bench/run emb_store [--rows N] [--dim D] [--enc fp32|fp16|int8]
 *          [--cache-mb MB] [--block-cache-mb MB] [--batch B] [--batches N] [--warm N]
 *          [--zipf S] [--dir DIR]
 * --warm batches (20,000) go through the cached path untimed first (the
 * last 100 also through the plain path): the cache fills and its hit rate
 * reaches the steady state of a long-running server. --block-cache-mb
 * (64) sizes RocksDB's block cache, which both paths share.
 * The last stdout line is one JSON object.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/clock.h"
#include "common/progress.h"
#include "common/rng.h"
#include "index/store/store.h"

#include "zipf.h"

static uint64_t gcd(uint64_t a, uint64_t b) {
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static double pct(uint64_t *v, size_t n, double p) {
    qsort(v, n, sizeof *v, cmp_u64);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1e3; /* ns -> us */
}

static void die(const char *what, const mr_err *e) {
    fprintf(stderr, "emb_store: %s: %s\n", what, e->msg);
    exit(1);
}

/* Deterministic row values: row id -> dim floats. */
static void make_row(uint64_t id, int dim, float *x) {
    uint64_t st = id * 0x9e3779b97f4a7c15ULL + 1;
    for (int j = 0; j < dim; j++)
        x[j] = (float)((int64_t)(mr_splitmix64(&st) >> 40) - (1 << 23)) / (float)(1 << 23);
}

static int build_db(const char *dir, uint64_t rows, int dim, emb_encoding enc) {
    char marker[1200];
    snprintf(marker, sizeof marker, "%s/BUILD_COMPLETE", dir);
    struct stat sb;
    if (stat(marker, &sb) == 0) {
        fprintf(stderr, "emb_store: reusing %s\n", dir);
        return 0;
    }
    fprintf(stderr, "emb_store: building %llu rows into %s (once; later runs reuse it)\n",
            (unsigned long long)rows, dir);
    store_config c;
    store_config_init(&c);
    c.no_wal = 1; /* bulk load: memtables are flushed on close */
    c.cache_bytes = 0;
    mr_store *st;
    mr_err e;
    if (store_open(&st, dir, &c, &e)) die("open for build", &e);
    if (emb_table_create(st, "bench", (uint32_t)dim, enc, 0, &e)) die("create table", &e);
    mr_emb_table *t = emb_store_table(st, "bench", &e);
    enum { CHUNK = 10000 };
    uint64_t *ids = malloc(CHUNK * sizeof *ids);
    float *x = malloc((size_t)CHUNK * (size_t)dim * sizeof *x);
    mr_progress p;
    mr_progress_begin(&p, "build emb_store db", "rows", rows, 1);
    for (uint64_t r0 = 0; r0 < rows; r0 += CHUNK) {
        size_t n = rows - r0 < CHUNK ? (size_t)(rows - r0) : CHUNK;
        for (size_t i = 0; i < n; i++) {
            ids[i] = r0 + i;
            make_row(ids[i], dim, x + i * (size_t)dim);
        }
        if (emb_store_put(st, t, ids, n, x, n * (size_t)dim, &e)) die("put", &e);
        mr_progress_update(&p, r0 + n, NULL);
    }
    mr_progress_end(&p, rows, NULL);
    fprintf(stderr, "emb_store: compacting\n");
    if (store_compact(st, &e)) die("compact", &e);
    store_close(st);
    free(ids);
    free(x);
    FILE *f = fopen(marker, "w");
    if (!f) return -1;
    fprintf(f, "rows=%llu dim=%d enc=%d\n", (unsigned long long)rows, dim, (int)enc);
    fclose(f);
    return 0;
}

static void mkdirs(const char *path) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *q = tmp + 1; *q; q++)
        if (*q == '/') {
            *q = 0;
            mkdir(tmp, 0755);
            *q = '/';
        }
    mkdir(tmp, 0755);
}

int main(int argc, char **argv) {
    uint64_t rows = 10000000;
    int dim = 64, batch = 1000, batches = 1000, warm = 20000;
    double zs = 1.1, cache_mb = 512, block_mb = 64;
    const char *encs = "fp32", *dirarg = NULL;
    for (int i = 1; i < argc; i += 2) { /* --name value pairs */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf(
                "usage: bench/run emb_store [--rows N] [--dim D] [--enc fp32|fp16|int8] "
                "[--cache-mb MB] [--block-cache-mb MB] [--batch B] [--batches N] [--warm N] [--zipf S] [--dir DIR]\n");
            return 0;
        }
        if (!v) {
            fprintf(stderr, "emb_store: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--rows")) rows = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--dim")) dim = atoi(v);
        else if (!strcmp(a, "--enc")) encs = v;
        else if (!strcmp(a, "--cache-mb")) cache_mb = atof(v);
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--batches")) batches = atoi(v);
        else if (!strcmp(a, "--warm")) warm = atoi(v);
        else if (!strcmp(a, "--block-cache-mb")) block_mb = atof(v);
        else if (!strcmp(a, "--zipf")) zs = atof(v);
        else if (!strcmp(a, "--dir")) dirarg = v;
        else {
            fprintf(stderr, "emb_store: unknown option %s\n", a);
            return 2;
        }
    }
    emb_encoding enc = !strcmp(encs, "fp16")   ? EMB_FP16
                       : !strcmp(encs, "int8") ? EMB_INT8
                                               : EMB_FP32;
    if (rows < 1000 || dim < 1 || batch < 1 || batches < 4) {
        fprintf(stderr, "emb_store: bad sizes\n");
        return 2;
    }
    char dir[1024];
    if (dirarg) {
        snprintf(dir, sizeof dir, "%s", dirarg);
    } else {
        const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
        char base[900];
        if (xdg && *xdg) snprintf(base, sizeof base, "%s/moerec/bench", xdg);
        else snprintf(base, sizeof base, "%s/.cache/moerec/bench", home ? home : "/tmp");
        snprintf(dir, sizeof dir, "%s/emb_store-%llu-%d-%s", base, (unsigned long long)rows, dim,
                 encs);
    }
    mkdirs(dir);
    if (build_db(dir, rows, dim, enc)) {
        fprintf(stderr, "emb_store: build failed\n");
        return 1;
    }

    store_config c;
    store_config_init(&c);
    c.cache_bytes = (size_t)(cache_mb * 1048576.0);
    c.block_cache_bytes = (size_t)(block_mb * 1048576.0);
    mr_store *st;
    mr_err e;
    if (store_open(&st, dir, &c, &e)) die("open", &e);
    mr_emb_table *t = emb_store_table(st, "bench", &e);
    if (!t) die("table", &e);

    zipf z;
    zipf_init(&z, zs, rows);
    uint64_t perm = 2654435761ULL % rows;
    while (gcd(perm, rows) != 1) perm++;
    mr_rng r;
    mr_rng_seed(&r, 11);
    /* ids: warm-up stream, then the timed stream (same for both paths) */
    uint64_t *ids = malloc((size_t)(warm + batches) * (size_t)batch * sizeof *ids);
    for (size_t i = 0; i < (size_t)(warm + batches) * (size_t)batch; i++)
        ids[i] = (uint64_t)(((unsigned __int128)(zipf_draw(&z, &r) - 1) * perm) % rows);
    float *out = malloc((size_t)batch * (size_t)dim * sizeof *out);
    uint8_t *found = malloc((size_t)batch);
    uint64_t *lat_c = malloc((size_t)batches * sizeof *lat_c),
             *lat_p = malloc((size_t)batches * sizeof *lat_p);

    mr_progress wp;
    mr_progress_begin(&wp, "emb_store warm-up", "batches", (uint64_t)warm, 1);
    for (int b = 0; b < warm; b++) { /* fill the cache, warm the page cache */
        mr_progress_update(&wp, (uint64_t)b, NULL);
        if (emb_store_get(st, t, ids + (size_t)b * batch, (size_t)batch, out, found, &e))
            die("get", &e);
        if (b >= warm - 100 &&
            emb_store_get_uncached(st, t, ids + (size_t)b * batch, (size_t)batch, out, found, &e))
            die("get", &e);
    }
    mr_progress_end(&wp, (uint64_t)warm, NULL);
    store_stats s0, s1;
    store_get_stats(st, &s0);
    uint64_t tc = 0, tp = 0, missing = 0;
    const int round = 10;
    for (int b0 = 0; b0 < batches; b0 += round) {
        int b1 = b0 + round < batches ? b0 + round : batches;
        for (int b = b0; b < b1; b++) {
            const uint64_t *q = ids + (size_t)(warm + b) * batch;
            uint64_t t0 = mr_now_ns();
            if (emb_store_get(st, t, q, (size_t)batch, out, found, &e)) die("get", &e);
            lat_c[b] = mr_now_ns() - t0;
            tc += lat_c[b];
            for (int i = 0; i < batch; i++) missing += !found[i];
        }
        for (int b = b0; b < b1; b++) {
            const uint64_t *q = ids + (size_t)(warm + b) * batch;
            uint64_t t0 = mr_now_ns();
            if (emb_store_get_uncached(st, t, q, (size_t)batch, out, found, &e)) die("get", &e);
            lat_p[b] = mr_now_ns() - t0;
            tp += lat_p[b];
        }
    }
    store_get_stats(st, &s1);
    uint64_t hits = s1.cache_hits - s0.cache_hits, misses = s1.cache_misses - s0.cache_misses;
    double hit = (double)hits / (double)(hits + misses);
    double nrows = (double)batches * batch;
    double rc = nrows / ((double)tc / 1e9), rp = nrows / ((double)tp / 1e9);
    double c50 = pct(lat_c, (size_t)batches, 0.5), c99 = pct(lat_c, (size_t)batches, 0.99);
    double p50 = pct(lat_p, (size_t)batches, 0.5), p99 = pct(lat_p, (size_t)batches, 0.99);
    fprintf(stderr,
            "cached: %.0f rows/s (p50 %.0f us, p99 %.0f us per %d-row batch), hit rate %.3f\n", rc,
            c50, c99, batch, hit);
    fprintf(stderr, "plain multi-get: %.0f rows/s (p50 %.0f us, p99 %.0f us)\n", rp, p50, p99);
    fprintf(stderr, "cache: %llu entries, %.1f MiB of %.1f MiB, %llu evictions\n",
            (unsigned long long)s1.cache_entries, (double)s1.cache_bytes / 1048576.0,
            (double)s1.cache_capacity / 1048576.0, (unsigned long long)s1.cache_evictions);
    double speedup = rc / rp;
    printf(
        "{\"bench\":\"emb_store\",\"rows\":%llu,\"dim\":%d,\"enc\":\"%s\",\"zipf\":%.2f,"
        "\"batch\":%d,\"batches\":%d,\"warm_batches\":%d,\"cache_mb\":%.0f,\"block_cache_mb\":%.0f,\"hit_rate\":%.4f,"
        "\"cached_rows_per_s\":%.0f,\"plain_rows_per_s\":%.0f,\"speedup\":%.2f,\"p50_speedup\":%.2f,"
        "\"cached_p50_us\":%.1f,\"cached_p99_us\":%.1f,\"plain_p50_us\":%.1f,"
        "\"plain_p99_us\":%.1f,\"missing_rows\":%llu,\"target_speedup\":5,\"target_hit_rate\":0.9,"
        "\"pass\":%s}\n",
        (unsigned long long)rows, dim, encs, zs, batch, batches, warm, cache_mb, block_mb, hit, rc,
        rp, speedup, p50 / c50, c50, c99, p50, p99, (unsigned long long)missing,
        speedup >= 5 && hit >= 0.9 ? "true" : "false");
    free(ids);
    free(out);
    free(found);
    free(lat_c);
    free(lat_p);
    store_close(st);
    return 0;
}
