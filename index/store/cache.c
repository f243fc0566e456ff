/* cache.c — sharded CLOCK cache over slab-allocated entries (see cache.h).
 *
 * Per shard: entries live in slabs of fixed-size slots, one slab class per
 * slot stride (cache_class_stride: the 24-byte header plus the value,
 * rounded to 4 bytes up to 128, then to 16, then in steps of 1/8), carved
 * from chunks of CACHE_CHUNK slots, so there is no malloc per entry and no
 * per-entry pointer. An entry is named by a 32-bit handle (class << 25 |
 * slot). The index is open addressing with linear probing over 8-byte
 * slots: the handle plus the key hash's low 32 bits, which also give the
 * slot's home (h & mask), so a probe compares hashes without touching an
 * entry and a delete shifts the probe run back (no tombstones). The table
 * doubles past 3/4 full.
 *
 * Each class's CLOCK hand sweeps its slab slots in order (free slots are
 * skipped): a hit sets the entry's reference bit, the hand clears set bits
 * and evicts the first entry whose bit is clear. New entries start with
 * the bit clear and reuse the slot just freed, behind the hand. An insert
 * evicts from its own class while that class has entries, else from the
 * class holding the most bytes. A freed slot stays its class's (on a free
 * list): the charged bytes, not the slabs, are bounded by the capacity, so
 * a mix of value sizes can hold slabs beyond it (a fixed row size cannot).
 */
#include "index/store/cache.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_STRIPES 64    /* staleness stripes per shard */
#define CACHE_HDR 24u       /* sizeof(cache_ent) */
#define CACHE_CHUNK 512u    /* slots per slab chunk */
#define CACHE_SLOT_BITS 25u /* handle = class << 25 | slot */
#define CACHE_MAX_SLOTS (1u << CACHE_SLOT_BITS)
#define CACHE_MAX_VALUE 65535u     /* len is 16 bits */
#define CACHE_FREE_CLS 0xff        /* cls of a slot on the free list */
#define CACHE_MAX_SHARD (1u << 29) /* per-shard capacity: nshards grows to keep below */

/* An entry: header then value, in a slab slot. 4-byte fields only, so any
 * multiple of 4 is a valid stride. */
typedef struct cache_ent {
    uint32_t id_lo, id_hi; /* row id */
    uint32_t ts_lo, ts_hi; /* write time of the row, unix ms */
    uint32_t ns;           /* namespace: table id or items */
    uint16_t len;          /* value bytes */
    uint8_t cls;           /* slab class; CACHE_FREE_CLS: free (id_lo: next free + 1) */
    atomic_uchar ref;      /* CLOCK reference bit, set by readers */
    unsigned char data[];  /* value */
} cache_ent;
_Static_assert(sizeof(cache_ent) == CACHE_HDR, "cache_ent header is 24 bytes");

/* Index slot: handle + 1 (0: empty) and the key hash's low 32 bits. */
typedef struct cache_slot {
    uint32_t hlo;
    uint32_t ref;
} cache_slot;

/* One slab class of a shard: slots [0, nslots) handed out of chunks, used
 * or on the free list. */
typedef struct cache_class {
    unsigned char **chunks; /* nchunks chunks of CACHE_CHUNK slots */
    uint32_t nchunks, chunks_cap;
    uint32_t nslots;    /* slots handed out, used or free */
    uint32_t used;      /* entries */
    uint32_t free_head; /* first free slot + 1; 0: none */
    uint32_t hand;      /* next slot the CLOCK looks at */
} cache_class;

/* Slab classes: strides of header + value, the last >= CACHE_HDR +
 * CACHE_MAX_VALUE. */
#define CACHE_NCLASS 80
static uint32_t cache_strides[CACHE_NCLASS];
static pthread_once_t cache_strides_once = PTHREAD_ONCE_INIT;

static void cache_strides_init(void) {
    unsigned k = 0;
    for (uint32_t s = 28; s <= 128; s += 4) cache_strides[k++] = s;   /* 26 classes */
    for (uint32_t s = 144; s <= 256; s += 16) cache_strides[k++] = s; /* 8 */
    uint32_t s = 256;
    while (k < CACHE_NCLASS) {
        s = (s + s / 8 + 15) & ~15u;
        cache_strides[k++] = s;
    }
    assert(cache_strides[CACHE_NCLASS - 1] >= CACHE_HDR + CACHE_MAX_VALUE &&
           cache_strides[CACHE_NCLASS - 2] < CACHE_HDR + CACHE_MAX_VALUE);
}

/* Invariants (write lock held): every used slot is in the index exactly
 * once, under its key's hash; bytes == sum of cache_entry_charge(len) of
 * used slots <= capacity; each class's used + free == nslots. */
typedef struct cache_shard {
    pthread_rwlock_t lock;
    cache_slot *index; /* nindex slots, linear probing */
    size_t nindex;     /* power of two, < 2^32 */
    size_t entries;    /* used slots over all classes */
    cache_class cls[CACHE_NCLASS];
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

/* Class of a value of len bytes (len <= CACHE_MAX_VALUE). */
static unsigned cache_class_of(size_t len) {
    pthread_once(&cache_strides_once, cache_strides_init);
    size_t need = CACHE_HDR + len;
    unsigned lo = 0, hi = CACHE_NCLASS - 1;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (cache_strides[mid] >= need) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

size_t cache_entry_charge(size_t len) {
    if (len > CACHE_MAX_VALUE) return SIZE_MAX; /* never fits */
    return cache_strides[cache_class_of(len)] + sizeof(cache_slot);
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

/* Bits independent of the shard's (h >> 40) and of the index's (low 32). */
static unsigned cache_stripe_of(uint64_t h) { return (unsigned)(h >> 58) % CACHE_STRIPES; }

static cache_ent *cache_ent_at(const cache_shard *s, unsigned k, uint32_t slot) {
    const cache_class *cl = &s->cls[k];
    return (cache_ent *)(cl->chunks[slot / CACHE_CHUNK] +
                         (size_t)(slot % CACHE_CHUNK) * cache_strides[k]);
}

static cache_ent *cache_ent_of(const cache_shard *s, uint32_t handle) {
    return cache_ent_at(s, handle >> CACHE_SLOT_BITS, handle & (CACHE_MAX_SLOTS - 1));
}

static uint64_t cache_ent_id(const cache_ent *n) { return (uint64_t)n->id_hi << 32 | n->id_lo; }
static int64_t cache_ent_ts(const cache_ent *n) {
    return (int64_t)((uint64_t)n->ts_hi << 32 | n->ts_lo);
}

/* ---- create / free -------------------------------------------------------- */

mr_cache *cache_create(size_t capacity_bytes, int nshards) {
    unsigned n = 1;
    pthread_once(&cache_strides_once, cache_strides_init);
    if (nshards <= 0) nshards = 64;
    while ((n < (unsigned)nshards || capacity_bytes / n > CACHE_MAX_SHARD) && n < (1u << 16))
        n <<= 1;
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
        s->nindex = 16;
        s->index = calloc(s->nindex, sizeof *s->index);
        if (!s->index || pthread_rwlock_init(&s->lock, &attr)) {
            free(s->index);
            pthread_rwlockattr_destroy(&attr);
            goto err;
        }
    }
    pthread_rwlockattr_destroy(&attr);
    return c;
err:
    for (unsigned i = 0; i < made; i++) {
        pthread_rwlock_destroy(&c->shards[i].lock);
        free(c->shards[i].index);
    }
    free(c->shards);
    free(c);
    return NULL;
}

static void cache_shard_drop_all(cache_shard *s) {
    for (unsigned k = 0; k < CACHE_NCLASS; k++) {
        cache_class *cl = &s->cls[k];
        for (uint32_t i = 0; i < cl->nchunks; i++) free(cl->chunks[i]);
        free(cl->chunks);
        memset(cl, 0, sizeof *cl);
    }
    memset(s->index, 0, s->nindex * sizeof *s->index);
    s->entries = 0;
    s->bytes = 0;
}

void cache_free(mr_cache *c) {
    if (!c) return;
    for (unsigned i = 0; i < c->nshards; i++) {
        cache_shard *s = &c->shards[i];
        cache_shard_drop_all(s);
        free(s->index);
        pthread_rwlock_destroy(&s->lock);
    }
    free(c->shards);
    free(c);
}

/* Index position of (ns, id), or of the empty slot ending its probe run
 * (ref == 0 there). Never full: the table stays under 3/4. */
static size_t cache_find(const cache_shard *s, uint64_t h, uint32_t ns, uint64_t id) {
    const size_t mask = s->nindex - 1;
    const uint32_t hlo = (uint32_t)h;
    for (size_t p = h & mask;; p = (p + 1) & mask) {
        const cache_slot *q = &s->index[p];
        if (!q->ref) return p;
        if (q->hlo != hlo) continue;
        const cache_ent *n = cache_ent_of(s, q->ref - 1);
        if (n->ns == ns && cache_ent_id(n) == id) return p;
    }
}

/* ---- invariant checkers (write or read lock held) -------------------------
 * A mutation asserts the cheap part plus the entry it touched; a rehash or
 * clear asserts the whole shard (O(entries), as the rehash itself is). */
static int cache_shard_check_cheap(const cache_shard *s) {
    return s->bytes <= s->capacity && (s->nindex & (s->nindex - 1)) == 0 &&
           4 * s->entries <= 3 * s->nindex;
}

/* The used entry at handle is found in the index under its own handle. */
static int cache_ent_check(const cache_shard *s, uint32_t handle) {
    const cache_ent *n = cache_ent_of(s, handle);
    if (n->cls != handle >> CACHE_SLOT_BITS) return 0;
    size_t p = cache_find(s, cache_hash(n->ns, cache_ent_id(n)), n->ns, cache_ent_id(n));
    return s->index[p].ref == handle + 1;
}

static int cache_shard_check(const cache_shard *s) {
    if (!cache_shard_check_cheap(s)) return 0;
    size_t bytes = 0, used = 0, indexed = 0;
    for (unsigned k = 0; k < CACHE_NCLASS; k++) {
        const cache_class *cl = &s->cls[k];
        uint32_t u = 0, nfree = 0;
        if (cl->nslots > cl->nchunks * CACHE_CHUNK || (cl->nslots && cl->hand > cl->nslots))
            return 0;
        for (uint32_t i = 0; i < cl->nslots; i++) {
            const cache_ent *n = cache_ent_at(s, k, i);
            if (n->cls == CACHE_FREE_CLS) continue;
            if (!cache_ent_check(s, k << CACHE_SLOT_BITS | i)) return 0;
            bytes += cache_entry_charge(n->len);
            u++;
        }
        for (uint32_t f = cl->free_head; f; f = cache_ent_at(s, k, f - 1)->id_lo) {
            if (f > cl->nslots || cache_ent_at(s, k, f - 1)->cls != CACHE_FREE_CLS ||
                ++nfree > cl->nslots)
                return 0;
        }
        if (u != cl->used || u + nfree != cl->nslots) return 0;
        used += u;
    }
    for (size_t p = 0; p < s->nindex; p++) {
        const cache_slot *q = &s->index[p];
        if (!q->ref) continue;
        const cache_ent *n = cache_ent_of(s, q->ref - 1);
        if (n->cls == CACHE_FREE_CLS || (uint32_t)cache_hash(n->ns, cache_ent_id(n)) != q->hlo)
            return 0;
        indexed++;
    }
    return bytes == s->bytes && used == s->entries && indexed == used;
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

/* ---- lookups (read lock) ------------------------------------------------ */

static void cache_touch(cache_ent *n) {
    if (!atomic_load_explicit(&n->ref, memory_order_relaxed))
        atomic_store_explicit(&n->ref, 1, memory_order_relaxed);
}

int cache_visit(mr_cache *c, uint32_t ns, uint64_t id, cache_visit_fn fn, void *arg) {
    uint64_t h = cache_hash(ns, id);
    cache_shard *s = cache_shard_of(c, h);
    pthread_rwlock_rdlock(&s->lock);
    const cache_slot *q = &s->index[cache_find(s, h, ns, id)];
    cache_ent *n = q->ref ? cache_ent_of(s, q->ref - 1) : NULL;
    if (n) {
        cache_touch(n);
        fn(n->data, n->len, cache_ent_ts(n), arg);
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
 * groups of CACHE_GROUP keys: prefetch every home slot of the group, then
 * the entry each home slot's hash matches, then probe and copy, so the group's cache misses overlap instead of queueing
 * one behind another. */
#define CACHE_GROUP 16

static void cache_batch_shard(cache_shard *s, uint32_t ns, const uint64_t *ids, const uint64_t *h,
                              const uint32_t *idx, size_t m, unsigned char *out, size_t len,
                              uint8_t *hit, int64_t *ts, size_t *nhit) {
    pthread_rwlock_rdlock(&s->lock);
    const size_t mask = s->nindex - 1;
    for (size_t g = 0; g < m; g += CACHE_GROUP) {
        size_t ge = g + CACHE_GROUP < m ? g + CACHE_GROUP : m;
        for (size_t k = g; k < ge; k++) {
            __builtin_prefetch(&s->index[h[idx[k]] & mask]);
        }
        for (size_t k = g; k < ge; k++) {
            const cache_slot *q = &s->index[h[idx[k]] & mask];
            if (q->ref && q->hlo == (uint32_t)h[idx[k]])
                __builtin_prefetch(cache_ent_of(s, q->ref - 1));
        }
        for (size_t k = g; k < ge; k++) {
            uint32_t i = idx[k];
            const cache_slot *q = &s->index[cache_find(s, h[i], ns, ids[i])];
            if (!q->ref) continue;
            cache_ent *n = cache_ent_of(s, q->ref - 1);
            if (n->len != len) continue;
            cache_touch(n);
            memcpy(out + (size_t)i * len, n->data, len);
            if (ts) ts[i] = cache_ent_ts(n);
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

/* ---- mutations (write lock) --------------------------------------------- */

/* Delete index position p: shift the rest of its probe run back over the
 * hole so every key stays reachable from its home. */
static void cache_index_delete(cache_shard *s, size_t p) {
    const size_t mask = s->nindex - 1;
    for (size_t q = (p + 1) & mask; s->index[q].ref; q = (q + 1) & mask) {
        size_t home = s->index[q].hlo & mask;
        /* q's entry may fill the hole at p when p lies on its way from home to q */
        if (((q - home) & mask) >= ((q - p) & mask)) {
            s->index[p] = s->index[q];
            p = q;
        }
    }
    s->index[p].ref = 0;
}

/* Remove the used entry at (class k, slot i): out of the index, onto the
 * class's free list. */
static void cache_remove_at(cache_shard *s, unsigned k, uint32_t i) {
    cache_ent *n = cache_ent_at(s, k, i);
    uint64_t id = cache_ent_id(n);
    size_t p = cache_find(s, cache_hash(n->ns, id), n->ns, id);
    assert(s->index[p].ref == (k << CACHE_SLOT_BITS | i) + 1);
    cache_index_delete(s, p);
    s->bytes -= cache_entry_charge(n->len);
    s->entries--;
    cache_class *cl = &s->cls[k];
    cl->used--;
    n->cls = CACHE_FREE_CLS;
    n->id_lo = cl->free_head;
    cl->free_head = i + 1;
    assert(cache_shard_check_cheap(s));
}

/* The class an eviction takes from: k itself while it has entries, else
 * the class holding the most charged bytes. -1 when the shard is empty. */
static int cache_victim_class(const cache_shard *s, unsigned k) {
    if (s->cls[k].used) return (int)k;
    int best = -1;
    size_t most = 0;
    for (unsigned j = 0; j < CACHE_NCLASS; j++) {
        size_t b = (size_t)s->cls[j].used * cache_strides[j];
        if (b > most) most = b, best = (int)j;
    }
    return best;
}

/* CLOCK over class k's slots (used > 0): clear set bits, stop at the first
 * clear one and return its slot; the hand stays on it. Terminates: one
 * pass clears every bit, the next finds one clear. */
static uint32_t cache_clock_victim(cache_shard *s, unsigned k) {
    cache_class *cl = &s->cls[k];
    for (;;) {
        if (cl->hand >= cl->nslots) cl->hand = 0;
        cache_ent *n = cache_ent_at(s, k, cl->hand);
        if (n->cls != CACHE_FREE_CLS) {
            if (!atomic_load_explicit(&n->ref, memory_order_relaxed)) return cl->hand;
            atomic_store_explicit(&n->ref, 0, memory_order_relaxed);
        }
        cl->hand++;
    }
}

static void cache_evict(cache_shard *s, unsigned k, uint32_t slot) {
    cache_remove_at(s, k, slot);
    s->cls[k].hand = slot + 1;
    atomic_fetch_add_explicit(&s->evictions, 1, memory_order_relaxed);
}

/* A free slot of class k (popped) or a new one; returns slot + 1, 0 when
 * out of memory or slots. */
static uint32_t cache_slot_alloc(cache_shard *s, unsigned k) {
    cache_class *cl = &s->cls[k];
    if (cl->free_head) {
        uint32_t i = cl->free_head - 1;
        cl->free_head = cache_ent_at(s, k, i)->id_lo;
        return i + 1;
    }
    if (cl->nslots == CACHE_MAX_SLOTS) return 0;
    if (cl->nslots == cl->nchunks * CACHE_CHUNK) {
        if (cl->nchunks == cl->chunks_cap) {
            uint32_t cap = cl->chunks_cap ? 2 * cl->chunks_cap : 4;
            unsigned char **ch = realloc(cl->chunks, cap * sizeof *ch);
            if (!ch) return 0;
            cl->chunks = ch;
            cl->chunks_cap = cap;
        }
        unsigned char *chunk = malloc((size_t)CACHE_CHUNK * cache_strides[k]);
        if (!chunk) return 0;
        cl->chunks[cl->nchunks++] = chunk;
    }
    return ++cl->nslots;
}

/* Double the index once one more entry would pass 3/4. */
static int cache_index_grow(cache_shard *s) {
    if (4 * (s->entries + 1) <= 3 * s->nindex) return 0;
    size_t nb = 2 * s->nindex;
    if (nb > ((size_t)1 << 32)) return -1;
    cache_slot *t = calloc(nb, sizeof *t);
    if (!t) return -1;
    for (size_t p = 0; p < s->nindex; p++) {
        if (!s->index[p].ref) continue;
        size_t q = s->index[p].hlo & (nb - 1);
        while (t[q].ref) q = (q + 1) & (nb - 1);
        t[q] = s->index[p];
    }
    free(s->index);
    s->index = t;
    s->nindex = nb;
    assert(cache_shard_check(s));
    return 0;
}

/* Write lock held; (ns, id) absent. Returns 1 when inserted. */
static int cache_add_locked(cache_shard *s, uint64_t h, uint32_t ns, uint64_t id, const void *val,
                            size_t len, int64_t ts) {
    size_t charge = cache_entry_charge(len);
    if (charge > s->capacity) return 0;
    const unsigned k = cache_class_of(len);
    while (s->bytes + charge > s->capacity) {
        int vk = cache_victim_class(s, k);
        cache_evict(s, (unsigned)vk, cache_clock_victim(s, (unsigned)vk));
    }
    if (cache_index_grow(s)) return 0;
    uint32_t slot = cache_slot_alloc(s, k);
    if (!slot--) return 0;
    cache_ent *n = cache_ent_at(s, k, slot);
    n->id_lo = (uint32_t)id;
    n->id_hi = (uint32_t)(id >> 32);
    n->ts_lo = (uint32_t)(uint64_t)ts;
    n->ts_hi = (uint32_t)((uint64_t)ts >> 32);
    n->ns = ns;
    n->len = (uint16_t)len;
    n->cls = (uint8_t)k;
    atomic_store_explicit(&n->ref, 0, memory_order_relaxed);
    memcpy(n->data, val, len);
    size_t p = cache_find(s, h, ns, id);
    s->index[p].hlo = (uint32_t)h;
    s->index[p].ref = (k << CACHE_SLOT_BITS | slot) + 1;
    s->cls[k].used++;
    s->entries++;
    s->bytes += charge;
    assert(cache_shard_check_cheap(s) && cache_ent_check(s, k << CACHE_SLOT_BITS | slot));
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
        !s->index[cache_find(s, h, ns, id)].ref)
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
    const cache_slot *q = &s->index[cache_find(s, h, ns, id)];
    if (q->ref) {
        uint32_t handle = q->ref - 1;
        cache_ent *n = cache_ent_of(s, handle);
        if (n->len == len) {
            memcpy(n->data, val, len);
            n->ts_lo = (uint32_t)(uint64_t)ts;
            n->ts_hi = (uint32_t)((uint64_t)ts >> 32);
        } else {
            cache_remove_at(s, handle >> CACHE_SLOT_BITS, handle & (CACHE_MAX_SLOTS - 1));
            cache_add_locked(s, h, ns, id, val, len, ts);
        }
    }
    pthread_rwlock_unlock(&s->lock);
}

void cache_erase(mr_cache *c, uint32_t ns, uint64_t id) {
    uint64_t h = cache_hash(ns, id);
    cache_shard *s = cache_shard_of(c, h);
    pthread_rwlock_wrlock(&s->lock);
    atomic_fetch_add(&s->epoch[cache_stripe_of(h)], 1);
    const cache_slot *q = &s->index[cache_find(s, h, ns, id)];
    if (q->ref)
        cache_remove_at(s, (q->ref - 1) >> CACHE_SLOT_BITS, (q->ref - 1) & (CACHE_MAX_SLOTS - 1));
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
        st->entries += s->entries;
        pthread_rwlock_unlock(&s->lock);
    }
}
