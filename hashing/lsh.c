/* lsh.c — LSH banding index over uint64 signatures (see minhash.h).
 *
 * Each band's r values hash (xxh3, seeded by band number) to one 64-bit
 * bucket key; one u64map maps bucket keys of all bands to the head of a
 * singly linked list of entries in one growable array (freed entries are
 * recycled through a free list); a bucket emptied by removes is deleted
 * from the map. A query walks b lists, so its cost is the
 * number of colliding items, not the index size. Two different bands' keys
 * may collide with probability ~2^-64 per pair: a spurious candidate at
 * worst, never a missed one.
 */
#include <stdlib.h>
#include <string.h>

#include "hashing/idhash.h"
#include "hashing/minhash.h"
#include "hashing/u64map.h"

#include <math.h>

#define LSH_NIL UINT32_MAX

typedef struct lsh_entry {
    uint64_t key;  /* item key */
    uint32_t next; /* next entry in the bucket, or LSH_NIL */
} lsh_entry;

struct lsh_index {
    int b, r;           /* bands, rows per band */
    uint64_t seed;      /* bucket-key hash seed */
    u64map heads;       /* bucket key -> first entry (LSH_NIL-free lists) */
    lsh_entry *ent;     /* (cap) entries */
    uint32_t nent, cap; /* used, allocated */
    uint32_t freelist;  /* recycled entries chained by next */
    size_t nitems;      /* inserted items */
};

int lsh_index_create(lsh_index **out, int bands, int rows, uint64_t seed, mr_err *e) {
    *out = NULL;
    if (bands < 1 || rows < 1 || (long)bands * rows > MINHASH_MAX_K)
        return mr_err_set(e, MR_EINVAL,
                          "lsh: need bands >= 1, rows >= 1, bands*rows <= %d "
                          "(got %d x %d)",
                          MINHASH_MAX_K, bands, rows);
    lsh_index *ix = calloc(1, sizeof *ix);
    if (!ix || u64map_init(&ix->heads, 1024)) {
        free(ix);
        return mr_err_set(e, MR_ENOMEM, "lsh: out of memory");
    }
    ix->b = bands;
    ix->r = rows;
    ix->seed = seed;
    ix->freelist = LSH_NIL;
    *out = ix;
    return 0;
}

void lsh_index_free(lsh_index *ix) {
    if (!ix) return;
    u64map_free(&ix->heads);
    free(ix->ent);
    free(ix);
}

int lsh_index_bands(const lsh_index *ix) { return ix->b; }
int lsh_index_rows(const lsh_index *ix) { return ix->r; }
size_t lsh_index_size(const lsh_index *ix) { return ix->nitems; }

/* The index lives in memory only, so the band's values are hashed in host
 * byte order. */
static uint64_t lsh_band_key(const lsh_index *ix, const uint64_t *sig, int band) {
    return idhash_bytes(sig + (size_t)band * ix->r, 8 * (size_t)ix->r, ix->seed + (uint64_t)band);
}

/* Point bucket bk at entry head; LSH_NIL (the map's "absent" value too)
 * removes the bucket, so the map holds non-empty buckets only. */
static int lsh_set_head(lsh_index *ix, uint64_t bk, uint32_t head) {
    if (head == LSH_NIL) {
        u64map_del(&ix->heads, bk);
        return 0;
    }
    return u64map_put(&ix->heads, bk, head);
}

static uint32_t lsh_entry_new(lsh_index *ix) {
    if (ix->freelist != LSH_NIL) {
        uint32_t i = ix->freelist;
        ix->freelist = ix->ent[i].next;
        return i;
    }
    if (ix->nent == ix->cap) {
        uint32_t cap = ix->cap ? ix->cap * 2 : 1024;
        if (cap < ix->cap || cap == LSH_NIL) return LSH_NIL;
        lsh_entry *ent = realloc(ix->ent, (size_t)cap * sizeof *ent);
        if (!ent) return LSH_NIL;
        ix->ent = ent;
        ix->cap = cap;
    }
    return ix->nent++;
}

int lsh_index_insert(lsh_index *ix, uint64_t key, const uint64_t *sig, mr_err *e) {
    /* Reserve every entry first so a failure leaves the index unchanged. */
    uint32_t idx[MINHASH_MAX_K];
    for (int band = 0; band < ix->b; band++) {
        idx[band] = lsh_entry_new(ix);
        if (idx[band] == LSH_NIL) {
            for (int j = 0; j < band; j++) {
                ix->ent[idx[j]].next = ix->freelist;
                ix->freelist = idx[j];
            }
            return mr_err_set(e, MR_ENOMEM, "lsh: out of memory inserting key %llu",
                              (unsigned long long)key);
        }
    }
    for (int band = 0; band < ix->b; band++) {
        uint64_t bk = lsh_band_key(ix, sig, band);
        uint32_t head = u64map_get(&ix->heads, bk);
        ix->ent[idx[band]] = (lsh_entry){key, head == U64MAP_NONE ? LSH_NIL : head};
        if (u64map_put(&ix->heads, bk, idx[band])) {
            /* Bands before this one stay indexed; undo them. */
            ix->ent[idx[band]].next = ix->freelist;
            ix->freelist = idx[band];
            for (int j = band + 1; j < ix->b; j++) {
                ix->ent[idx[j]].next = ix->freelist;
                ix->freelist = idx[j];
            }
            for (int j = 0; j < band; j++) {
                uint64_t k2 = lsh_band_key(ix, sig, j);
                uint32_t h = u64map_get(&ix->heads, k2); /* our entry is the head */
                lsh_set_head(ix, k2, ix->ent[h].next);
                ix->ent[h].next = ix->freelist;
                ix->freelist = h;
            }
            return mr_err_set(e, MR_ENOMEM, "lsh: out of memory inserting key %llu",
                              (unsigned long long)key);
        }
    }
    ix->nitems++;
    return 0;
}

int lsh_index_remove(lsh_index *ix, uint64_t key, const uint64_t *sig, mr_err *e) {
    /* Check every band first: remove all or nothing. */
    for (int band = 0; band < ix->b; band++) {
        uint32_t i = u64map_get(&ix->heads, lsh_band_key(ix, sig, band));
        while (i != U64MAP_NONE && i != LSH_NIL && ix->ent[i].key != key) i = ix->ent[i].next;
        if (i == U64MAP_NONE || i == LSH_NIL)
            return mr_err_set(e, MR_ENOTFOUND, "lsh: key %llu not indexed under this signature",
                              (unsigned long long)key);
    }
    for (int band = 0; band < ix->b; band++) {
        uint64_t bk = lsh_band_key(ix, sig, band);
        uint32_t i = u64map_get(&ix->heads, bk), prev = LSH_NIL;
        while (ix->ent[i].key != key) {
            prev = i;
            i = ix->ent[i].next;
        }
        if (prev == LSH_NIL) lsh_set_head(ix, bk, ix->ent[i].next);
        else ix->ent[prev].next = ix->ent[i].next;
        ix->ent[i].next = ix->freelist;
        ix->freelist = i;
    }
    ix->nitems--;
    return 0;
}

static int lsh_hit_cmp(const void *a, const void *b) {
    const lsh_hit *x = a, *y = b;
    if (x->bands != y->bands) return x->bands > y->bands ? -1 : 1;
    return (x->key > y->key) - (x->key < y->key);
}

static int lsh_key_cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int lsh_index_query(const lsh_index *ix, const uint64_t *sig, lsh_hit *hits, size_t cap,
                    size_t *ntotal, mr_err *e) {
    *ntotal = 0;
    size_t n = 0, room = 256;
    uint64_t *keys = malloc(room * sizeof *keys);
    if (!keys) return mr_err_set(e, MR_ENOMEM, "lsh: out of memory in query");
    for (int band = 0; band < ix->b; band++) {
        uint32_t i = u64map_get(&ix->heads, lsh_band_key(ix, sig, band));
        for (; i != U64MAP_NONE && i != LSH_NIL; i = ix->ent[i].next) {
            if (n == room) {
                uint64_t *k2 = realloc(keys, 2 * room * sizeof *keys);
                if (!k2) {
                    free(keys);
                    return mr_err_set(e, MR_ENOMEM, "lsh: out of memory in query");
                }
                keys = k2;
                room *= 2;
            }
            keys[n++] = ix->ent[i].key;
        }
    }
    qsort(keys, n, sizeof *keys, lsh_key_cmp);
    /* Run-length the sorted keys into hits, reusing keys' memory is not
     * possible (hits are wider), so count distinct first. */
    size_t ndist = 0;
    for (size_t i = 0; i < n; i++) ndist += i == 0 || keys[i] != keys[i - 1];
    lsh_hit *all = malloc((ndist ? ndist : 1) * sizeof *all);
    if (!all) {
        free(keys);
        return mr_err_set(e, MR_ENOMEM, "lsh: out of memory in query");
    }
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || keys[i] != keys[i - 1]) all[j++] = (lsh_hit){keys[i], 0};
        all[j - 1].bands++;
    }
    qsort(all, ndist, sizeof *all, lsh_hit_cmp);
    size_t nout = ndist < cap ? ndist : cap;
    if (nout) memcpy(hits, all, nout * sizeof *hits);
    *ntotal = ndist;
    free(keys);
    free(all);
    return 0;
}

double lsh_recall_curve(double s, int bands, int rows) {
    return 1.0 - pow(1.0 - pow(s, rows), bands);
}
