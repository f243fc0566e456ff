/* test_cache.c — the sharded CLOCK cache (index/store/cache.c): exact counters
 * and CLOCK decisions under a scripted access pattern, the byte bound,
 * epoch-guarded inserts, update/erase/clear, and readers racing a writer
 * (run under -DMOEREC_TSAN=ON for ThreadSanitizer). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/rng.h"
#include "index/store/cache.h"

enum { V = 16 };

static void val(uint64_t id, uint64_t ver, uint64_t out[2]) {
    out[0] = id * 1000003u + ver;
    out[1] = ~out[0];
}

static int has(mr_cache *c, uint64_t id) {
    uint64_t v[2];
    return cache_get(c, 1, id, v, V, NULL);
}

static void put(mr_cache *c, uint64_t id) {
    uint64_t v[2];
    val(id, 0, v);
    assert_int_equal(cache_insert(c, 1, id, v, V, 0, CACHE_ANY_EPOCH), 1);
}

static void test_scripted_counters_exact(void **state) {
    (void)state;
    mr_cache *c = cache_create(4 * cache_entry_charge(V), 1);
    assert_non_null(c);
    for (uint64_t k = 1; k <= 4; k++) assert_false(has(c, k));
    for (uint64_t k = 1; k <= 4; k++) put(c, k);
    assert_true(has(c, 1));
    assert_true(has(c, 2));
    put(c, 5); /* CLOCK: 1, 2 get a second chance, 3 goes */
    assert_false(has(c, 3));
    assert_true(has(c, 4));
    assert_true(has(c, 5));
    put(c, 6); /* 4, 5 referenced: clear them; 1's bit was cleared: 1 goes */
    assert_false(has(c, 1));
    for (uint64_t k = 2; k <= 6; k++)
        if (k != 3) assert_true(has(c, k));
    cache_stats s;
    cache_get_stats(c, &s);
    assert_int_equal(s.hits, 2 + 2 + 4);
    assert_int_equal(s.misses, 4 + 1 + 1);
    assert_int_equal(s.inserts, 6);
    assert_int_equal(s.evictions, 2);
    assert_int_equal(s.entries, 4);
    assert_int_equal(s.bytes, 4 * cache_entry_charge(V));
    assert_int_equal(s.capacity, 4 * cache_entry_charge(V));
    assert_int_equal(s.rejected, 0);
    /* value round trip */
    uint64_t v[2], w[2];
    assert_int_equal(cache_get(c, 1, 6, v, V, NULL), 1);
    val(6, 0, w);
    assert_memory_equal(v, w, V);
    /* a lookup of the wrong size is a miss, not a partial copy */
    assert_int_equal(cache_get(c, 1, 6, v, 8, NULL), 0);
    /* namespaces are separate */
    assert_int_equal(cache_get(c, 2, 6, v, V, NULL), 0);
    cache_free(c);
}

static void noop_visit(const void *v, size_t len, int64_t ts, void *arg) {
    (void)v;
    (void)len;
    (void)ts;
    (void)arg;
}

static void test_byte_bound_with_mixed_sizes(void **state) {
    (void)state;
    const size_t cap = 64 * 1024;
    mr_cache *c = cache_create(cap, 4);
    mr_rng r;
    mr_rng_seed(&r, 11);
    char buf[3000];
    memset(buf, 7, sizeof buf);
    uint64_t ok = 0;
    for (int i = 0; i < 20000; i++) {
        size_t len = mr_rng_below(&r, sizeof buf);
        uint64_t id = mr_rng_below(&r, 5000);
        if (mr_rng_below(&r, 2))
            ok += (uint64_t)cache_insert(c, 3, id, buf, len, 0, CACHE_ANY_EPOCH);
        else cache_visit(c, 3, id, noop_visit, NULL);
        cache_stats s;
        if (i % 97 == 0) {
            cache_get_stats(c, &s);
            assert_true(s.bytes <= cap);
        }
    }
    cache_stats s;
    cache_get_stats(c, &s);
    assert_true(s.bytes <= cap);
    assert_true(s.evictions > 0);
    assert_int_equal(s.inserts, ok);
    assert_int_equal(s.inserts - s.evictions, s.entries);
    /* a value larger than a shard's share is refused, not half-stored */
    char *big = calloc(1, cap);
    assert_int_equal(cache_insert(c, 3, 999999, big, cap / 2, 0, CACHE_ANY_EPOCH), 0);
    free(big);
    cache_clear(c);
    cache_get_stats(c, &s);
    assert_int_equal(s.bytes, 0);
    assert_int_equal(s.entries, 0);
    cache_free(c);
}

/* The invariant checker holds across every kind of mutation: inserts that
 * evict, updates that change a row's size (remove + re-add), erases,
 * rehashes and clears. (Corrupted state cannot be built from outside: the
 * shard layout is private to cache.c; its mutations assert the checker.) */
static void test_check_after_random_mutations(void **state) {
    (void)state;
    mr_cache *c = cache_create(32 * 1024, 2);
    assert_true(cache_check(c));
    mr_rng r;
    mr_rng_seed(&r, 23);
    char buf[700];
    memset(buf, 3, sizeof buf);
    for (int i = 0; i < 20000; i++) {
        uint64_t id = mr_rng_below(&r, 800);
        size_t len = 1 + mr_rng_below(&r, sizeof buf - 1);
        switch (mr_rng_below(&r, 8)) {
        case 0: cache_update(c, 2, id, buf, len, i); break;
        case 1: cache_erase(c, 2, id); break;
        case 2:
            if (i % 1000 == 0) cache_clear(c);
            break;
        default: cache_insert(c, 2, id, buf, len, i, CACHE_ANY_EPOCH); break;
        }
        if (i % 500 == 0) assert_true(cache_check(c));
    }
    assert_true(cache_check(c));
    cache_stats st;
    cache_get_stats(c, &st);
    assert_true(st.evictions > 0 && st.bytes <= 32 * 1024);
    cache_free(c);
}

static void test_epoch_update_erase(void **state) {
    (void)state;
    mr_cache *c = cache_create(1 << 20, 1);
    uint64_t v[2], w[2];
    /* a reader took the epoch, then a writer wrote the row: the reader's
     * (older) value must not enter the cache */
    uint64_t ep = cache_epoch(c, 1, 10);
    val(10, 2, v);
    cache_update(c, 1, 10, v, V, 5); /* absent: bumps the epoch, adds nothing */
    assert_int_equal(cache_get(c, 1, 10, w, V, NULL), 0);
    val(10, 1, v);
    assert_int_equal(cache_insert(c, 1, 10, v, V, 4, ep), 0);
    assert_int_equal(cache_get(c, 1, 10, w, V, NULL), 0);
    /* with a fresh epoch it goes in; a second insert of a present key is refused */
    ep = cache_epoch(c, 1, 10);
    assert_int_equal(cache_insert(c, 1, 10, v, V, 4, ep), 1);
    assert_int_equal(cache_insert(c, 1, 10, v, V, 4, CACHE_ANY_EPOCH), 0);
    /* update replaces in place and carries the new write time */
    val(10, 3, v);
    cache_update(c, 1, 10, v, V, 9);
    int64_t ts = 0;
    assert_int_equal(cache_get(c, 1, 10, w, V, &ts), 1);
    assert_memory_equal(v, w, V);
    assert_int_equal(ts, 9);
    /* update with another length replaces the entry */
    char big[40] = {1};
    cache_update(c, 1, 10, big, sizeof big, 10);
    assert_int_equal(cache_get(c, 1, 10, w, V, NULL), 0);
    char got[40];
    assert_int_equal(cache_get(c, 1, 10, got, sizeof got, NULL), 1);
    cache_erase(c, 1, 10);
    assert_int_equal(cache_get(c, 1, 10, got, sizeof got, NULL), 0);
    cache_stats s;
    cache_get_stats(c, &s);
    assert_int_equal(s.rejected, 2);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.bytes, 0);
    cache_free(c);
}

/* The interleaving that made test_store_concurrent fail once: reader A
 * misses and reads version 1 from the database; the writer commits
 * version 2; reader B misses, reads and returns version 2; A inserts
 * version 1 before the writer's cache_update, so B's next hit goes back
 * to 1. The epoch has not moved yet when A inserts, so only the in-flight
 * write mark refuses it. Also: a reader that took its epoch while the
 * write was in flight is refused after cache_write_end (it may have read
 * before the commit), and one that takes it afterwards gets in. */
static void test_insert_refused_while_write_in_flight(void **state) {
    (void)state;
    mr_cache *c = cache_create(1 << 20, 1);
    uint64_t v1[2], v2[2], w[2], id = 10;
    val(id, 1, v1);
    val(id, 2, v2);
    uint64_t ep_a = cache_epoch(c, 1, id); /* A: miss, epoch, reads v1 */
    cache_write_begin(c, 1, &id, 1);       /* writer: commits v2 next */
    uint64_t ep_b = cache_epoch(c, 1, id); /* B: miss, reads v2 */
    assert_int_equal(cache_insert(c, 1, id, v1, V, 1, ep_a), 0);
    assert_int_equal(cache_insert(c, 1, id, v2, V, 2, ep_b), 0); /* unknown age: also out */
    assert_int_equal(cache_get(c, 1, id, w, V, NULL), 0);
    cache_update(c, 1, id, v2, V, 2); /* absent: adds nothing */
    cache_write_end(c, 1, &id, 1);
    assert_int_equal(cache_insert(c, 1, id, v1, V, 1, ep_a), 0);
    assert_int_equal(cache_insert(c, 1, id, v2, V, 2, ep_b), 0);
    uint64_t ep_c = cache_epoch(c, 1, id); /* after the write: reads v2 */
    assert_int_equal(cache_insert(c, 1, id, v2, V, 2, ep_c), 1);
    assert_int_equal(cache_get(c, 1, id, w, V, NULL), 1);
    assert_memory_equal(w, v2, V);
    /* A write blocks inserts of its own stripe of keys only. Find (through
     * the epochs) one id that shares id's stripe and one that does not. */
    uint64_t same = 0, other = 0;
    for (uint64_t k = 11; k < 100000 && (!same || !other); k++) {
        uint64_t ep = cache_epoch(c, 1, k);
        cache_update(c, 1, id, v2, V, 2); /* bumps id's stripe */
        if (cache_epoch(c, 1, k) != ep) {
            if (!same) same = k;
        } else if (!other) {
            other = k;
        }
    }
    assert_true(same && other);
    cache_write_begin(c, 1, &id, 1);
    assert_int_equal(cache_insert(c, 1, same, v1, V, 1, cache_epoch(c, 1, same)), 0);
    assert_int_equal(cache_insert(c, 1, other, v1, V, 1, cache_epoch(c, 1, other)), 1);
    /* begins and ends nest (duplicate ids in one batch, two writers) */
    cache_write_begin(c, 1, &id, 1);
    cache_write_end(c, 1, &id, 1);
    assert_int_equal(cache_insert(c, 1, same, v1, V, 1, cache_epoch(c, 1, same)), 0);
    cache_write_end(c, 1, &id, 1);
    assert_int_equal(cache_insert(c, 1, same, v1, V, 1, cache_epoch(c, 1, same)), 1);
    cache_stats s;
    cache_get_stats(c, &s);
    assert_int_equal(s.inserts, 3);
    assert_int_equal(s.rejected, 6);
    cache_free(c);
}

/* The batched lookup agrees with one-at-a-time lookups and counts exactly. */
static void test_batch_lookup(void **state) {
    (void)state;
    mr_cache *c = cache_create(1 << 20, 8);
    enum { N = 300 };
    uint64_t ids[N], v[2];
    for (uint64_t k = 0; k < 100; k++) {
        val(k, 7, v);
        assert_int_equal(cache_insert(c, 1, k, v, V, (int64_t)k + 1000, CACHE_ANY_EPOCH), 1);
    }
    for (int i = 0; i < N; i++) ids[i] = (uint64_t)((i * 37) % 200); /* repeats, half absent */
    uint64_t out[N][2];
    uint8_t hit[N];
    int64_t ts[N];
    cache_stats s0, s1;
    cache_get_stats(c, &s0);
    size_t nh = cache_get_batch(c, 1, ids, N, out, V, hit, ts);
    cache_get_stats(c, &s1);
    size_t want = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(hit[i], ids[i] < 100);
        if (!hit[i]) continue;
        want++;
        val(ids[i], 7, v);
        assert_memory_equal(out[i], v, V);
        assert_int_equal(ts[i], (int64_t)ids[i] + 1000);
    }
    assert_int_equal(nh, want);
    assert_int_equal(s1.hits - s0.hits, want);
    assert_int_equal(s1.misses - s0.misses, N - want);
    /* namespace and size must match too */
    assert_int_equal(cache_get_batch(c, 2, ids, N, out, V, hit, NULL), 0);
    assert_int_equal(cache_get_batch(c, 1, ids, N, out, 8, hit, NULL), 0);
    cache_free(c);
}

/* ---- the slab layout ---------------------------------------------------- */

/* The charge is the slab slot (24-byte header + value, rounded) plus one
 * 8-byte index slot; it never shrinks as values grow; over 65,535 bytes
 * nothing fits. */
static void test_charge_per_class(void **state) {
    (void)state;
    assert_int_equal(cache_entry_charge(68), 24 + 68 + 8); /* an int8 row of 64 dims */
    assert_int_equal(cache_entry_charge(1), 28 + 8);
    assert_int_equal(cache_entry_charge(16), 40 + 8);
    assert_int_equal(cache_entry_charge(104), 128 + 8);
    assert_int_equal(cache_entry_charge(105), 144 + 8);
    assert_int_equal(cache_entry_charge(256 - 24), 256 + 8);
    size_t prev = 0;
    for (size_t len = 0; len <= 65535; len++) {
        size_t ch = cache_entry_charge(len);
        assert_true(ch >= 24 + len + 8 && ch >= prev);
        assert_true(ch - (24 + len + 8) <= (24 + len) / 8 + 16); /* rounding waste */
        prev = ch;
    }
    assert_int_equal(cache_entry_charge(65536), SIZE_MAX);
    mr_cache *c = cache_create(1 << 24, 1);
    char *big = calloc(1, 65536);
    assert_int_equal(cache_insert(c, 1, 1, big, 65536, 0, CACHE_ANY_EPOCH), 0);
    assert_int_equal(cache_insert(c, 1, 2, big, 65535, 0, CACHE_ANY_EPOCH), 1);
    assert_int_equal(cache_get(c, 1, 2, big, 65535, NULL), 1);
    free(big);
    cache_stats s;
    cache_get_stats(c, &s);
    assert_int_equal(s.bytes, cache_entry_charge(65535));
    assert_int_equal(s.rejected, 1);
    cache_free(c);
}

/* A full cache evicts within the inserting value's class while that class
 * has entries, else from the class holding the most bytes; a freed slot is
 * reused by the next insert of its class. */
static void test_eviction_by_class(void **state) {
    (void)state;
    const size_t small = cache_entry_charge(V), large = cache_entry_charge(200);
    mr_cache *c = cache_create(6 * small + large, 1);
    char w[200];
    memset(w, 9, sizeof w);
    for (uint64_t k = 1; k <= 6; k++) put(c, k);
    assert_int_equal(cache_insert(c, 2, 100, w, sizeof w, 0, CACHE_ANY_EPOCH), 1); /* fits */
    /* class V is full of bits-clear entries: 7 evicts 1 (the hand's first) */
    put(c, 7);
    assert_false(has(c, 1));
    char got[200];
    assert_int_equal(cache_get(c, 2, 100, got, sizeof got, NULL), 1);
    /* a second large value: its class has an entry, so the large one goes */
    assert_int_equal(cache_insert(c, 2, 101, w, sizeof w, 0, CACHE_ANY_EPOCH), 1);
    assert_int_equal(cache_get(c, 2, 100, got, sizeof got, NULL), 0);
    assert_int_equal(cache_get(c, 2, 101, got, sizeof got, NULL), 1);
    cache_erase(c, 2, 101);
    put(c, 8); /* fits: 7 small entries, no large one */
    /* with no large entry left, a large insert takes from class V (the most
     * bytes): the hand clears 2..7's bits (set by these lookups) and evicts
     * 8, the one entry not read since its insert */
    for (uint64_t k = 2; k <= 7; k++) assert_true(has(c, k));
    assert_int_equal(cache_insert(c, 2, 102, w, sizeof w, 0, CACHE_ANY_EPOCH), 1);
    assert_false(has(c, 8));
    for (uint64_t k = 2; k <= 7; k++) assert_true(has(c, k));
    cache_stats s;
    cache_get_stats(c, &s);
    assert_int_equal(s.evictions, 3); /* 1, 100, 8 */
    assert_int_equal(s.entries, 7);
    assert_int_equal(s.bytes, large + 6 * small);
    assert_true(s.bytes <= s.capacity);
    assert_true(cache_check(c));
    cache_free(c);
}

/* Without evictions the cache is a map: random inserts, updates (same and
 * other sizes), erases over few ids in one shard (long probe runs, index
 * doublings, deletes that shift runs back) agree with a plain array. */
static void test_matches_reference_map(void **state) {
    (void)state;
    enum { IDS = 300 };
    mr_cache *c = cache_create(1 << 24, 1);
    int64_t ver[IDS]; /* -1: absent, else the value's version */
    size_t lens[IDS]; /* its length */
    memset(ver, 0xff, sizeof ver);
    mr_rng r;
    mr_rng_seed(&r, 31);
    unsigned char buf[600], got[600];
    for (int i = 0; i < 40000; i++) {
        uint64_t id = mr_rng_below(&r, IDS);
        size_t len = 1 + mr_rng_below(&r, 3) * 200 + mr_rng_below(&r, 8);
        memset(buf, (int)(i & 0xff), len);
        switch (mr_rng_below(&r, 4)) {
        case 0:
            cache_erase(c, 5, id);
            ver[id] = -1;
            break;
        case 1:
            cache_update(c, 5, id, buf, len, i);
            if (ver[id] >= 0) ver[id] = i, lens[id] = len;
            break;
        default:
            assert_int_equal(cache_insert(c, 5, id, buf, len, i, CACHE_ANY_EPOCH), ver[id] < 0);
            if (ver[id] < 0) ver[id] = i, lens[id] = len;
            break;
        }
        if (i % 2000 == 0 || i == 39999) {
            assert_true(cache_check(c));
            size_t n = 0, bytes = 0;
            for (uint64_t k = 0; k < IDS; k++) {
                int64_t ts = -1;
                if (ver[k] < 0) {
                    assert_int_equal(cache_get(c, 5, k, got, 1, NULL), 0);
                    continue;
                }
                assert_int_equal(cache_get(c, 5, k, got, lens[k], &ts), 1);
                assert_int_equal(ts, ver[k]);
                assert_int_equal(got[0], (unsigned char)(ver[k] & 0xff));
                assert_int_equal(got[lens[k] - 1], (unsigned char)(ver[k] & 0xff));
                n++;
                bytes += cache_entry_charge(lens[k]);
            }
            cache_stats s;
            cache_get_stats(c, &s);
            assert_int_equal(s.entries, n);
            assert_int_equal(s.bytes, bytes);
            assert_int_equal(s.evictions, 0);
        }
    }
    cache_free(c);
}

/* ---- readers racing one writer ----------------------------------------- */

typedef struct race {
    mr_cache *c;
    atomic_int stop;
    atomic_long torn; /* values whose two words disagree: must stay 0 */
    atomic_long hits;
} race;

static void race_init(race *r, mr_cache *c) {
    r->c = c;
    atomic_init(&r->stop, 0);
    atomic_init(&r->torn, 0);
    atomic_init(&r->hits, 0);
}

/* A value val() never wrote for id (two words that disagree, or another id's). */
static int torn(uint64_t id, const uint64_t v[2]) {
    return v[1] != ~v[0] || (v[0] - id * 1000003u) > 1000000u;
}

static void *race_reader(void *arg) {
    race *r = arg;
    mr_rng g;
    mr_rng_seed(&g, (uint64_t)(uintptr_t)&g);
    while (!atomic_load(&r->stop)) {
        uint64_t id = mr_rng_below(&g, 512), v[2];
        if (cache_get(r->c, 1, id, v, V, NULL)) {
            atomic_fetch_add(&r->hits, 1);
            if (torn(id, v)) atomic_fetch_add(&r->torn, 1);
        }
    }
    return NULL;
}

static void test_readers_and_writer(void **state) {
    (void)state;
    race r;
    race_init(&r, cache_create(200 * cache_entry_charge(V), 8));
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, race_reader, &r);
    mr_rng g;
    mr_rng_seed(&g, 5);
    for (uint64_t ver = 0; ver < 60000; ver++) {
        uint64_t id = mr_rng_below(&g, 512), v[2];
        val(id, ver % 1000000u, v);
        switch (ver % 4) {
        case 0:
        case 1: cache_insert(r.c, 1, id, v, V, 0, cache_epoch(r.c, 1, id)); break;
        case 2: cache_update(r.c, 1, id, v, V, 0); break;
        default: cache_erase(r.c, 1, id); break;
        }
    }
    atomic_store(&r.stop, 1);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&r.torn), 0);
    cache_stats s;
    cache_get_stats(r.c, &s);
    assert_true(s.bytes <= s.capacity);
    assert_int_equal(s.hits, (uint64_t)atomic_load(&r.hits));
    cache_free(r.c);
}

/* Two writers (inserts that evict, updates that move an entry to another
 * slab class and back, erases) race batch readers over a small cache of
 * few ids: readers never see a torn or foreign value, the counters add
 * up, and the slabs and index check out afterwards. */
static void *race2_reader(void *arg) {
    race *r = arg;
    mr_rng g;
    mr_rng_seed(&g, (uint64_t)(uintptr_t)&g);
    uint64_t ids[64], out[64][2];
    uint8_t hit[64];
    while (!atomic_load(&r->stop)) {
        for (int i = 0; i < 64; i++) ids[i] = mr_rng_below(&g, 256);
        size_t nh = cache_get_batch(r->c, 1, ids, 64, out, V, hit, NULL);
        atomic_fetch_add(&r->hits, (long)nh);
        for (int i = 0; i < 64; i++)
            if (hit[i] && torn(ids[i], out[i])) atomic_fetch_add(&r->torn, 1);
    }
    return NULL;
}

static void *race2_writer(void *arg) {
    race *r = arg;
    mr_rng g;
    mr_rng_seed(&g, (uint64_t)(uintptr_t)&g);
    char wide[100];
    memset(wide, 1, sizeof wide);
    for (uint64_t ver = 0; ver < 30000; ver++) {
        uint64_t id = mr_rng_below(&g, 256), v[2];
        val(id, ver % 1000000u, v);
        switch (ver % 5) {
        case 0:
        case 1: cache_insert(r->c, 1, id, v, V, 0, cache_epoch(r->c, 1, id)); break;
        case 2: cache_update(r->c, 1, id, v, V, 0); break;
        case 3: cache_update(r->c, 1, id, wide, sizeof wide, 0); break; /* another class */
        default: cache_erase(r->c, 1, id); break;
        }
    }
    return NULL;
}

static void test_batch_readers_and_writers(void **state) {
    (void)state;
    race r;
    race_init(&r, cache_create(100 * cache_entry_charge(V), 4));
    pthread_t rd[2], wr[2];
    for (int i = 0; i < 2; i++) pthread_create(&rd[i], NULL, race2_reader, &r);
    for (int i = 0; i < 2; i++) pthread_create(&wr[i], NULL, race2_writer, &r);
    for (int i = 0; i < 2; i++) pthread_join(wr[i], NULL);
    atomic_store(&r.stop, 1);
    for (int i = 0; i < 2; i++) pthread_join(rd[i], NULL);
    assert_int_equal(atomic_load(&r.torn), 0);
    assert_true(cache_check(r.c));
    cache_stats s;
    cache_get_stats(r.c, &s);
    assert_true(s.bytes <= s.capacity && s.evictions > 0);
    assert_int_equal(s.hits, (uint64_t)atomic_load(&r.hits));
    cache_free(r.c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scripted_counters_exact),
        cmocka_unit_test(test_byte_bound_with_mixed_sizes),
        cmocka_unit_test(test_check_after_random_mutations),
        cmocka_unit_test(test_epoch_update_erase),
        cmocka_unit_test(test_insert_refused_while_write_in_flight),
        cmocka_unit_test(test_batch_lookup),
        cmocka_unit_test(test_readers_and_writer),
        cmocka_unit_test(test_charge_per_class),
        cmocka_unit_test(test_eviction_by_class),
        cmocka_unit_test(test_matches_reference_map),
        cmocka_unit_test(test_batch_readers_and_writers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
