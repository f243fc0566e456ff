/* cache.c — sharded CLOCK cache (see cache.h for the contract).
 *
 * Per shard: a chained hash table (power-of-two buckets, doubled when the
 * entry count passes it) and a "ring" array of the same entries that the
 * CLOCK hand sweeps. A hit sets the entry's reference bit; the hand clears
 * set bits and evicts the first entry whose bit is clear. New entries start
 * with the bit clear, so a row read once is the first to go (good for the
 * Zipf-shaped streams recommendation traffic has). Removing from the ring
 * moves its last element into the hole: O(1), at the cost of perturbing the
 * sweep order slightly.
 */
#include "index/store/cache.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_STRIPES 64 /* staleness stripes per shard */

typedef struct cache_node {
    struct cache_node *next; /* hash chain */
    uint64_t id;             /* row id */
    uint32_t ns;             /* namespace: table id or items */
    uint32_t ring;           /* index in the shard's ring */
    size_t len;              /* value bytes */
    int64_t ts;              /* write time of the row, unix ms */
    atomic_uchar ref;        /* CLOCK reference bit, set by readers */
    unsigned char data[];    /* value */
} cache_node;

/* Invariants (write lock held): every node is in exactly one chain and at
 * ring[node->ring]; bytes == sum of cache_entry_charge(len) <= capacity. */
typedef struct cache_shard {
    pthread_rwlock_t lock;
    cache_node **buckets; /* nbuckets chains */
    size_t nbuckets;      /* power of two */
    cache_node **ring;    /* nring entries, CLOCK order */
    size_t nring, ring_cap;
    size_t hand;     /* next ring slot the CLOCK looks at */
    size_t bytes;    /* charged bytes held */
    size_t capacity; /* this shard's bound */
    /* Staleness guards, per stripe of the shard's keys (cache_stripe_of) so
     * a write blocks inserts of 1/CACHE_STRIPES of the shard, not all of
     * it: writes in flight (cache_write_begin minus _end) and an epoch
     * bumped by every update, erase and write end. */
    uint32_t writing[CACHE_STRIPES];
    atomic_uint_fast64_t epoch[CACHE_STRIPES];
    atomic_uint_fast64_t hits, misses, inserts, evictions, rejected;
} __attribute__((aligned(64))) cache_shard;

struct mr_cache {
    cache_shard *shards; /* nshards */
    unsigned nshards;    /* power of two */
    size_t capacity;     /* total bound */
};

size_t cache_entry_charge(size_t len) {
    return sizeof(cache_node) + len + 2 * sizeof(void *); /* node, bucket + ring slots */
}

static uint64_t cache_hash(uint32_t ns, uint64_t id) {
    uint64_t z = id ^ ((uint64_t)ns * 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static cache_shard *cache_shard_of(const mr_cache *c, uint64_t h) {
    return &c->shards[(h >> 40) & (c->nshards - 1)];
}

/* Bits independent of the shard's (h >> 40) and of the bucket's (low). */
static unsigned cache_stripe_of(uint64_t h) { return (unsigned)(h >> 58) % CACHE_STRIPES; }

mr_cache *cache_create(size_t capacity_bytes, int nshards) {
    unsigned n = 1;
    if (nshards <= 0) nshards = 64;
    while (n < (unsigned)nshards && n < (1u << 16)) n <<= 1;
    mr_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (posix_memalign((void **)&c->shards, 64, n * sizeof(cache_shard))) {
        free(c);
        return NULL;
    }
    memset(c->shards, 0, n * sizeof(cache_shard));
    c->nshards = n;
    c->capacity = capacity_bytes;
    /* glibc's default rwlock prefers readers: under steady hits an insert
     * or a writer's cache_update could wait for as long as reads keep
     * coming (a cache test took 30 s on two busy cores). No read lock is
     * ever taken twice by one thread, so writer preference is safe. */
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
#ifdef __GLIBC__
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    unsigned made = 0;
    for (; made < n; made++) {
        cache_shard *s = &c->shards[made];
        s->capacity = capacity_bytes / n;
        s->nbuckets = 16;
        s->buckets = calloc(s->nbuckets, sizeof *s->buckets);
        if (!s->buckets || pthread_rwlock_init(&s->lock, &attr)) {
            free(s->buckets);
            pthread_rwlockattr_destroy(&attr);
            goto err;
        }
    }
    pthread_rwlockattr_destroy(&attr);
    return c;
err:
    for (unsigned i = 0; i < made; i++) {
        pthread_rwlock_destroy(&c->shards[i].lock);
        free(c->shards[i].buckets);
    }
    free(c->shards);
    free(c);
    return NULL;
}

static void cache_shard_drop_all(cache_shard *s) {
    for (size_t i = 0; i < s->nring; i++) free(s->ring[i]);
    memset(s->buckets, 0, s->nbuckets * sizeof *s->buckets);
    s->nring = 0;
    s->hand = 0;
    s->bytes = 0;
}

void cache_free(mr_cache *c) {
    if (!c) return;
    for (unsigned i = 0; i < c->nshards; i++) {
        cache_shard *s = &c->shards[i];
        cache_shard_drop_all(s);
        free(s->ring);
        free(s->buckets);
        pthread_rwlock_destroy(&s->lock);
    }
    free(c->shards);
    free(c);
}

static cache_node **cache_find_slot(cache_shard *s, uint64_t h, uint32_t ns, uint64_t id) {
    cache_node **p = &s->buckets[h & (s->nbuckets - 1)];
    while (*p && ((*p)->id != id || (*p)->ns != ns)) p = &(*p)->next;
    return p;
}

/* ---- invariant checkers (write or read lock held) -------------------------
 * A mutation asserts the cheap part plus the node it touched; a rehash or
 * clear asserts the whole shard (O(entries), as the rehash itself is). */
static int cache_shard_check_cheap(const cache_shard *s) {
    return s->bytes <= s->capacity && s->nring <= s->nbuckets && s->nring <= s->ring_cap &&
           (s->nbuckets & (s->nbuckets - 1)) == 0 && (s->nring ? s->hand < s->nring : s->hand == 0);
}

/* n is at ring[n->ring] and in the chain of its bucket. */
static int cache_node_check(const cache_shard *s, const cache_node *n) {
    return n->ring < s->nring && s->ring[n->ring] == n &&
           *cache_find_slot((cache_shard *)s, cache_hash(n->ns, n->id), n->ns, n->id) == n;
}

/* Every node is in exactly one chain (its bucket's) and at ring[node->ring];
 * bytes == sum of cache_entry_charge(len) <= capacity. */
static int cache_shard_check(const cache_shard *s) {
    if (!cache_shard_check_cheap(s)) return 0;
    size_t bytes = 0, chained = 0;
    for (size_t i = 0; i < s->nring; i++) {
        const cache_node *n = s->ring[i];
        if (n->ring != i || !cache_node_check(s, n)) return 0;
        bytes += cache_entry_charge(n->len);
    }
    for (size_t b = 0; b < s->nbuckets; b++)
        for (const cache_node *n = s->buckets[b]; n; n = n->next) {
            if (++chained > s->nring) return 0; /* a node twice, or a cycle */
            if ((cache_hash(n->ns, n->id) & (s->nbuckets - 1)) != b) return 0;
        }
    return bytes == s->bytes && chained == s->nring;
}

int cache_check(mr_cache *c) {
    int ok = 1;
    for (unsigned i = 0; i < c->nshards && ok; i++) {
        cache_shard *s = &c->shards[i];
        pthread_rwlock_rdlock(&s->lock);
        ok = cache_shard_check(s);
        pthread_rwlock_unlock(&s->lock);
    }
    return ok;
}

int cache_visit(mr_cache *c, uint32_t ns, uint64_t id, cache_visit_fn fn, void *arg) {
    uint64_t h = cache_hash(ns, id);
    cache_shard *s = cache_shard_of(c, h);
    pthread_rwlock_rdlock(&s->lock);
    cache_node *n = *cache_find_slot(s, h, ns, id);
    if (n) {
        if (!atomic_load_explicit(&n->ref, memory_order_relaxed))
            atomic_store_explicit(&n->ref, 1, memory_order_relaxed);
        fn(n->data, n->len, n->ts, arg);
    }
    pthread_rwlock_unlock(&s->lock);
    atomic_fetch_add_explicit(n ? &s->hits : &s->misses, 1, memory_order_relaxed);
    return n != NULL;
}

typedef struct cache_copy_arg {
    void *out;
    size_t len;
    int64_t *ts;
    int ok;
} cache_copy_arg;

static void cache_copy_fixed(const void *val, size_t len, int64_t ts, void *arg) {
    cache_copy_arg *a = arg;
    if (len != a->len) return; /* a row of another size: treat as a miss */
    memcpy(a->out, val, len);
    if (a->ts) *a->ts = ts;
    a->ok = 1;
}

int cache_get(mr_cache *c, uint32_t ns, uint64_t id, void *out, size_t len, int64_t *ts) {
    cache_copy_arg a = {out, len, ts, 0};
    cache_visit(c, ns, id, cache_copy_fixed, &a);
    return a.ok;
}

/* Per shard of a batch: [start, end) in the order array. Processed in
 * groups of CACHE_GROUP keys: prefetch every bucket slot of the group, then
 * every chain head, then walk and copy, so the group's cache misses
 * overlap instead of queueing one behind another. */
#define CACHE_GROUP 16

static void cache_batch_shard(cache_shard *s, uint32_t ns, const uint64_t *ids, const uint64_t *h,
                              const uint32_t *idx, size_t m, unsigned char *out, size_t len,
                              uint8_t *hit, int64_t *ts, size_t *nhit) {
    pthread_rwlock_rdlock(&s->lock);
    const size_t mask = s->nbuckets - 1;
    for (size_t g = 0; g < m; g += CACHE_GROUP) {
        size_t ge = g + CACHE_GROUP < m ? g + CACHE_GROUP : m;
        cache_node *head[CACHE_GROUP];
        for (size_t k = g; k < ge; k++) __builtin_prefetch(&s->buckets[h[idx[k]] & mask]);
        for (size_t k = g; k < ge; k++) {
            head[k - g] = s->buckets[h[idx[k]] & mask];
            if (head[k - g]) __builtin_prefetch(head[k - g]);
        }
        for (size_t k = g; k < ge; k++) {
            uint32_t i = idx[k];
            cache_node *n = head[k - g];
            while (n && (n->id != ids[i] || n->ns != ns)) n = n->next;
            if (!n || n->len != len) continue;
            if (!atomic_load_explicit(&n->ref, memory_order_relaxed))
                atomic_store_explicit(&n->ref, 1, memory_order_relaxed);
            memcpy(out + (size_t)i * len, n->data, len);
            if (ts) ts[i] = n->ts;
            hit[i] = 1;
            (*nhit)++;
        }
    }
    pthread_rwlock_unlock(&s->lock);
}

size_t cache_get_batch(mr_cache *c, uint32_t ns, const uint64_t *ids, size_t n, void *out,
                       size_t len, uint8_t *hit, int64_t *ts) {
    size_t total = 0;
    if (n == 0) return 0;
    /* Group by shard with a counting sort: h (n), idx (n), start (nshards+1). */
    uint64_t *h = malloc(n * sizeof *h);
    uint32_t *idx = malloc(n * sizeof *idx), *start = calloc(c->nshards + 1, sizeof *start);
    if (!h || !idx || !start) { /* no scratch: one key at a time */
        free(h);
        free(idx);
        free(start);
        for (size_t i = 0; i < n; i++) {
            hit[i] = (uint8_t)cache_get(c, ns, ids[i], (unsigned char *)out + i * len, len,
                                        ts ? &ts[i] : NULL);
            total += hit[i];
        }
        return total;
    }
    for (size_t i = 0; i < n; i++) {
        hit[i] = 0;
        h[i] = cache_hash(ns, ids[i]);
        start[((h[i] >> 40) & (c->nshards - 1)) + 1]++;
    }
    for (unsigned k = 0; k < c->nshards; k++) start[k + 1] += start[k];
    for (size_t i = 0; i < n; i++) {
        unsigned k = (unsigned)((h[i] >> 40) & (c->nshards - 1));
        idx[start[k]++] = (uint32_t)i; /* start[k] ends at the next shard's start */
    }
    for (unsigned k = 0, b = 0; k < c->nshards; k++) {
        size_t e = start[k], nh = 0;
        if (e == b) continue;
        cache_shard *s = &c->shards[k];
        cache_batch_shard(s, ns, ids, h, idx + b, e - b, out, len, hit, ts, &nh);
        atomic_fetch_add_explicit(&s->hits, nh, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->misses, (e - b) - nh, memory_order_relaxed);
        total += nh;
        b = (unsigned)e;
    }
    free(h);
    free(idx);
    free(start);
    return total;
}

uint64_t cache_epoch(mr_cache *c, uint32_t ns, uint64_t id) {
    uint64_t h = cache_hash(ns, id);
    return atomic_load(&cache_shard_of(c, h)->epoch[cache_stripe_of(h)]);
}

/* Unlink ring slot i's node from its chain and the ring, and free it. */
static void cache_remove_at(cache_shard *s, size_t i) {
    cache_node *n = s->ring[i];
    cache_node **p = cache_find_slot(s, cache_hash(n->ns, n->id), n->ns, n->id);
    *p = n->next;
    s->ring[i] = s->ring[--s->nring];
    s->ring[i]->ring = (uint32_t)i;
    s->bytes -= cache_entry_charge(n->len);
    free(n);
    if (s->hand >= s->nring) s->hand = 0;
    assert(cache_shard_check_cheap(s) && (i >= s->nring || cache_node_check(s, s->ring[i])));
}

static void cache_evict_one(cache_shard *s) {
    for (;;) { /* terminates: each pass clears bits, the second finds one clear */
        cache_node *n = s->ring[s->hand];
        if (atomic_load_explicit(&n->ref, memory_order_relaxed)) {
            atomic_store_explicit(&n->ref, 0, memory_order_relaxed);
            s->hand = (s->hand + 1) % s->nring;
            continue;
        }
        cache_remove_at(s, s->hand);
        atomic_fetch_add_explicit(&s->evictions, 1, memory_order_relaxed);
        return;
    }
}

static int cache_grow(cache_shard *s) {
    if (s->nring == s->ring_cap) {
        size_t cap = s->ring_cap ? 2 * s->ring_cap : 64;
        cache_node **r = realloc(s->ring, cap * sizeof *r);
        if (!r) return -1;
        s->ring = r;
        s->ring_cap = cap;
    }
    if (s->nring + 1 > s->nbuckets) {
        size_t nb = 2 * s->nbuckets;
        cache_node **b = calloc(nb, sizeof *b);
        if (!b) return -1;
        for (size_t i = 0; i < s->nring; i++) {
            cache_node *n = s->ring[i];
            size_t k = cache_hash(n->ns, n->id) & (nb - 1);
            n->next = b[k];
            b[k] = n;
        }
        free(s->buckets);
        s->buckets = b;
        s->nbuckets = nb;
        assert(cache_shard_check(s));
    }
    return 0;
}

/* Write lock held; (ns, id) absent. Returns 1 when inserted. */
static int cache_add_locked(cache_shard *s, uint64_t h, uint32_t ns, uint64_t id, const void *val,
                            size_t len, int64_t ts) {
    size_t charge = cache_entry_charge(len);
    if (charge > s->capacity) return 0;
    while (s->bytes + charge > s->capacity) cache_evict_one(s);
    if (cache_grow(s)) return 0;
    cache_node *n = malloc(sizeof *n + len);
    if (!n) return 0;
    n->id = id;
    n->ns = ns;
    n->len = len;
    n->ts = ts;
    atomic_init(&n->ref, 0);
    memcpy(n->data, val, len);
    cache_node **slot = &s->buckets[h & (s->nbuckets - 1)];
    n->next = *slot;
    *slot = n;
    n->ring = (uint32_t)s->nring;
    s->ring[s->nring++] = n;
    s->bytes += charge;
    assert(cache_shard_check_cheap(s) && cache_node_check(s, n));
    return 1;
}

int cache_insert(mr_cache *c, uint32_t ns, uint64_t id, const void *val, size_t len, int64_t ts,
                 uint64_t epoch) {
    uint64_t h = cache_hash(ns, id);
    cache_shard *s = cache_shard_of(c, h);
    int ok = 0;
    pthread_rwlock_wrlock(&s->lock);
    const unsigned w = cache_stripe_of(h);
    if ((epoch == CACHE_ANY_EPOCH || (s->writing[w] == 0 && atomic_load(&s->epoch[w]) == epoch)) &&
        !*cache_find_slot(s, h, ns, id))
        ok = cache_add_locked(s, h, ns, id, val, len, ts);
    pthread_rwlock_unlock(&s->lock);
    atomic_fetch_add_explicit(ok ? &s->inserts : &s->rejected, 1, memory_order_relaxed);
    return ok;
}

/* The in-flight count is changed under the shard's write lock, so an
 * insert that takes the lock after a begin sees it (a plain atomic would
 * not order against the reader's database read). */
static void cache_write_mark(mr_cache *c, uint32_t ns, const uint64_t *ids, size_t n, int begin) {
    for (size_t i = 0; i < n; i++) {
        uint64_t h = cache_hash(ns, ids[i]);
        cache_shard *s = cache_shard_of(c, h);
        const unsigned w = cache_stripe_of(h);
        pthread_rwlock_wrlock(&s->lock);
        if (begin) {
            s->writing[w]++;
        } else {
            s->writing[w]--;
            atomic_fetch_add(&s->epoch[w], 1);
        }
        pthread_rwlock_unlock(&s->lock);
    }
}

void cache_write_begin(mr_cache *c, uint32_t ns, const uint64_t *ids, size_t n) {
    cache_write_mark(c, ns, ids, n, 1);
}

void cache_write_end(mr_cache *c, uint32_t ns, const uint64_t *ids, size_t n) {
    cache_write_mark(c, ns, ids, n, 0);
}

void cache_update(mr_cache *c, uint32_t ns, uint64_t id, const void *val, size_t len, int64_t ts) {
    uint64_t h = cache_hash(ns, id);
    cache_shard *s = cache_shard_of(c, h);
    pthread_rwlock_wrlock(&s->lock);
    atomic_fetch_add(&s->epoch[cache_stripe_of(h)], 1);
    cache_node *n = *cache_find_slot(s, h, ns, id);
    if (n && n->len == len) {
        memcpy(n->data, val, len);
        n->ts = ts;
    } else if (n) {
        cache_remove_at(s, n->ring);
        cache_add_locked(s, h, ns, id, val, len, ts);
    }
    pthread_rwlock_unlock(&s->lock);
}

void cache_erase(mr_cache *c, uint32_t ns, uint64_t id) {
    uint64_t h = cache_hash(ns, id);
    cache_shard *s = cache_shard_of(c, h);
    pthread_rwlock_wrlock(&s->lock);
    atomic_fetch_add(&s->epoch[cache_stripe_of(h)], 1);
    cache_node *n = *cache_find_slot(s, h, ns, id);
    if (n) cache_remove_at(s, n->ring);
    pthread_rwlock_unlock(&s->lock);
}

void cache_clear(mr_cache *c) {
    for (unsigned i = 0; i < c->nshards; i++) {
        cache_shard *s = &c->shards[i];
        pthread_rwlock_wrlock(&s->lock);
        for (unsigned w = 0; w < CACHE_STRIPES; w++) atomic_fetch_add(&s->epoch[w], 1);
        cache_shard_drop_all(s);
        assert(cache_shard_check(s));
        pthread_rwlock_unlock(&s->lock);
    }
}

uint64_t cache_evictions(const mr_cache *c) {
    uint64_t n = 0;
    for (unsigned i = 0; i < c->nshards; i++) n += atomic_load(&c->shards[i].evictions);
    return n;
}

void cache_get_stats(const mr_cache *c, cache_stats *st) {
    memset(st, 0, sizeof *st);
    st->capacity = c->capacity;
    for (unsigned i = 0; i < c->nshards; i++) {
        cache_shard *s = &c->shards[i];
        st->hits += atomic_load(&s->hits);
        st->misses += atomic_load(&s->misses);
        st->inserts += atomic_load(&s->inserts);
        st->evictions += atomic_load(&s->evictions);
        st->rejected += atomic_load(&s->rejected);
        pthread_rwlock_rdlock(&s->lock);
        st->bytes += s->bytes;
        st->entries += s->nring;
        pthread_rwlock_unlock(&s->lock);
    }
}
