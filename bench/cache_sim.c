/* cache_sim — the row cache alone on emb_tier's stream: hit rate at a byte budget vs an oracle
 *
 * No RocksDB, no server: the same Zipf(1.1) stream emb_tier sends (ranks
 * over --rows ids, scattered onto the table's rows by a hash, a request's
 * repeated rows looked up once) goes through cache_get_batch, and every
 * miss is inserted (cache_epoch + cache_insert, what emb_store_get does
 * with cache_admission "always") with a --payload byte value (68: an int8
 * row of 64 dims plus its scale). The cache is --cache-mb (439, emb_tier's
 * budget at 50M rows). Warm-up: --warm-candidates (5,000) candidate
 * requests until the cache is full (>= 97% of its bytes), then
 * --after-full more; then --requests (2,000) requests of --candidates (500)
 * whose per-distinct-row hit rate is reported, the figure emb_tier's table
 * counters give. For scale it also reports two oracles over the same timed
 * stream: a cache holding exactly the heaviest rows (by rank) that fit the
 * budget at this cache's charge per entry, and at 132 bytes an entry (the
 * chained cache's charge at 68-byte rows before the slab layout).
 *
 * Usage: bench/run cache_sim [--rows N] [--cache-mb MB] [--payload B]
 *          [--candidates C] [--requests N] [--warm-candidates C] [--after-full N]
 *          [--shards N] [--seed S]
 * The last stdout line is one JSON object.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/rng.h"
#include "index/store/cache.h"

#include "zipf.h"

static const char *arg(int argc, char **argv, const char *name, const char *dflt) {
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) return argv[i + 1];
    return dflt;
}

/* The table's hash: a rank's row, as a hashed table scatters its ids. */
static uint64_t row_of(uint64_t rank, uint64_t rows) {
    uint64_t s = rank * 0x2545f4914f6cdd1dULL;
    return mr_splitmix64(&s) % rows;
}

/* Distinct rows of one request of C draws into out; returns how many. */
static size_t draw_request(const zipf *z, mr_rng *r, uint64_t rows, int C, uint64_t *ranks,
                           uint64_t *out, uint8_t *seen) {
    size_t n = 0;
    for (int i = 0; i < C; i++) {
        uint64_t k = zipf_draw(z, r), row = row_of(k, rows);
        if (seen[row >> 3] & (1u << (row & 7))) continue;
        seen[row >> 3] |= (uint8_t)(1u << (row & 7));
        ranks[n] = k;
        out[n++] = row;
    }
    for (size_t i = 0; i < n; i++) seen[out[i] >> 3] &= (uint8_t) ~(1u << (out[i] & 7));
    return n;
}

/* Look the rows up, insert the misses; returns the hits. */
static size_t one_request(mr_cache *c, const uint64_t *ids, size_t n, unsigned char *out,
                          uint8_t *hit, size_t payload) {
    size_t nh = cache_get_batch(c, 1, ids, n, out, payload, hit, NULL);
    for (size_t i = 0; i < n; i++) {
        if (hit[i]) continue;
        memset(out + i * payload, (int)(ids[i] & 0xff), payload);
        cache_insert(c, 1, ids[i], out + i * payload, payload, 0, cache_epoch(c, 1, ids[i]));
    }
    return nh;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf(
                "usage: bench_cache_sim [--rows N] [--cache-mb MB] [--payload B] [--candidates C]\n"
                "  [--requests N] [--warm-candidates C] [--after-full N] [--shards N] [--seed S]\n");
            return 0;
        }
    const uint64_t rows = (uint64_t)atoll(arg(argc, argv, "--rows", "50000000"));
    const double cache_mb = atof(arg(argc, argv, "--cache-mb", "439"));
    const size_t payload = (size_t)atoll(arg(argc, argv, "--payload", "68"));
    const int C = atoi(arg(argc, argv, "--candidates", "500"));
    const int requests = atoi(arg(argc, argv, "--requests", "2000"));
    const int warmC = atoi(arg(argc, argv, "--warm-candidates", "5000"));
    const int after_full = atoi(arg(argc, argv, "--after-full", "2000"));
    const int shards = atoi(arg(argc, argv, "--shards", "64"));
    const uint64_t seed = (uint64_t)atoll(arg(argc, argv, "--seed", "7"));
    if (rows < 2 || cache_mb <= 0 || payload == 0 || C <= 0 || warmC <= 0 || requests <= 0) {
        fprintf(stderr, "cache_sim: bad arguments\n");
        return 2;
    }
    const size_t cap = (size_t)(cache_mb * 1048576.0);
    mr_cache *c = cache_create(cap, shards);
    const int maxC = warmC > C ? warmC : C;
    uint64_t *ids = malloc((size_t)maxC * sizeof *ids),
             *ranks = malloc((size_t)maxC * sizeof *ranks);
    unsigned char *out = malloc((size_t)maxC * payload);
    uint8_t *hit = malloc((size_t)maxC), *seen = calloc(rows / 8 + 1, 1);
    if (!c || !ids || !ranks || !out || !hit || !seen) {
        fprintf(stderr, "cache_sim: out of memory\n");
        return 1;
    }
    zipf z;
    zipf_init(&z, 1.1, rows);
    mr_rng r;
    mr_rng_seed(&r, seed);
    double t0 = (double)mr_now_ns() * 1e-9;
    long warm = 0, full_at = -1;
    cache_stats st;
    for (;;) {
        size_t n = draw_request(&z, &r, rows, warmC, ranks, ids, seen);
        one_request(c, ids, n, out, hit, payload);
        warm++;
        cache_get_stats(c, &st);
        if (full_at < 0 && (double)st.bytes >= 0.97 * (double)cap) full_at = warm;
        if (full_at >= 0 && warm - full_at >= after_full) break;
        if (warm >= 200000) break; /* a budget the stream never fills */
    }
    double warm_s = (double)mr_now_ns() * 1e-9 - t0;
    /* Oracles: the rows of the K heaviest ranks, K = budget / charge. */
    const size_t charge = cache_entry_charge(payload), old_charge = 132;
    uint64_t k_new = cap / charge, k_old = cap / old_charge;
    size_t looked = 0, hits = 0, ohit_new = 0, ohit_old = 0;
    cache_stats s0;
    cache_get_stats(c, &s0);
    t0 = (double)mr_now_ns() * 1e-9;
    for (int q = 0; q < requests; q++) {
        size_t n = draw_request(&z, &r, rows, C, ranks, ids, seen);
        hits += one_request(c, ids, n, out, hit, payload);
        looked += n;
        for (size_t i = 0; i < n; i++) {
            ohit_new += ranks[i] <= k_new;
            ohit_old += ranks[i] <= k_old;
        }
    }
    double timed_s = (double)mr_now_ns() * 1e-9 - t0;
    cache_get_stats(c, &st);
    int ok = cache_check(c);
    fprintf(stderr,
            "cache_sim: %llu entries in %.1f of %.1f MB (%zu bytes charged an entry), %ld warm "
            "requests (full at %ld) in %.1f s, %d timed in %.2f s, check %s\n",
            (unsigned long long)st.entries, (double)st.bytes / 1048576.0, (double)cap / 1048576.0,
            charge, warm, full_at, warm_s, requests, timed_s, ok ? "ok" : "FAILED");
    printf(
        "{\"bench\":\"cache_sim\",\"rows\":%llu,\"cache_mb\":%.0f,\"payload\":%zu,\"charge\":%zu,"
        "\"shards\":%d,\"candidates\":%d,\"requests\":%d,\"warm_requests\":%ld,\"warm_full_at\":%ld,"
        "\"entries\":%llu,\"hit_rate\":%.4f,\"oracle_hit_rate\":%.4f,\"oracle_hit_rate_132\":%.4f,"
        "\"evictions\":%llu,\"check\":%s}\n",
        (unsigned long long)rows, cache_mb, payload, charge, shards, C, requests, warm, full_at,
        (unsigned long long)st.entries, looked ? (double)hits / (double)looked : 0,
        looked ? (double)ohit_new / (double)looked : 0,
        looked ? (double)ohit_old / (double)looked : 0,
        (unsigned long long)(st.evictions - s0.evictions), ok ? "true" : "false");
    cache_free(c);
    free(ids);
    free(ranks);
    free(out);
    free(hit);
    free(seen);
    return ok ? 0 : 1;
}
