/* u64map.c — linear-probing uint64 -> uint32 map (see u64map.h). */
#include "hashing/u64map.h"

#include <assert.h>
#include <stdlib.h>

#include "common/error.h"
#include "hashing/idhash.h"

static int u64map_alloc(u64map *m, size_t cap) {
    m->keys = malloc(cap * sizeof *m->keys);
    m->vals = malloc(cap * sizeof *m->vals);
    if (!m->keys || !m->vals) {
        free(m->keys);
        free(m->vals);
        m->keys = NULL;
        m->vals = NULL;
        return MR_ENOMEM;
    }
    for (size_t i = 0; i < cap; i++) m->vals[i] = U64MAP_NONE;
    m->cap = cap;
    m->n = 0;
    return 0;
}

int u64map_init(u64map *m, size_t expect) {
    size_t cap = 16;
    while (cap < 2 * expect) cap <<= 1;
    return u64map_alloc(m, cap);
}

void u64map_free(u64map *m) {
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->n = 0;
}

uint32_t u64map_get(const u64map *m, uint64_t key) {
    size_t mask = m->cap - 1;
    for (size_t i = idhash_mix64(key) & mask;; i = (i + 1) & mask) {
        if (m->vals[i] == U64MAP_NONE) return U64MAP_NONE;
        if (m->keys[i] == key) return m->vals[i];
    }
}

/* Invariant: every occupied slot's key is reachable from its home slot
 * without crossing an empty slot (what get and the backward-shift delete
 * rely on); n counts the occupied slots; the table is at most half full. */
static int u64map_check_key(const u64map *m, uint64_t key) {
    size_t mask = m->cap - 1, i = idhash_mix64(key) & mask;
    for (size_t steps = 0; steps < m->cap; steps++, i = (i + 1) & mask) {
        if (m->vals[i] == U64MAP_NONE) return 0;
        if (m->keys[i] == key) return 1;
    }
    return 0;
}

/* The probe run that starts after slot i, up to the next empty slot: the
 * entries a delete may have shifted. Cheap (runs are short at <= 1/2 load). */
__attribute__((unused)) static int u64map_check_run(const u64map *m, size_t i) {
    size_t mask = m->cap - 1;
    for (size_t steps = 0; steps < m->cap; steps++) {
        i = (i + 1) & mask;
        if (m->vals[i] == U64MAP_NONE) return 2 * m->n <= m->cap;
        if (!u64map_check_key(m, m->keys[i])) return 0;
    }
    return 0; /* no empty slot at all */
}

int u64map_check(const u64map *m) {
    if (m->cap == 0) return m->n == 0 && !m->keys && !m->vals;
    if ((m->cap & (m->cap - 1)) || 2 * m->n > m->cap) return 0;
    size_t live = 0;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->vals[i] == U64MAP_NONE) continue;
        live++;
        if (!u64map_check_key(m, m->keys[i])) return 0;
    }
    return live == m->n;
}

static uint32_t *u64map_probe(u64map *m, uint64_t key, int *fresh) {
    size_t mask = m->cap - 1;
    for (size_t i = idhash_mix64(key) & mask;; i = (i + 1) & mask) {
        if (m->vals[i] == U64MAP_NONE) {
            *fresh = 1;
            m->keys[i] = key;
            return &m->vals[i];
        }
        if (m->keys[i] == key) {
            *fresh = 0;
            return &m->vals[i];
        }
    }
}

static int u64map_grow(u64map *m) {
    u64map old = *m;
    if (u64map_alloc(m, old.cap * 2)) {
        *m = old;
        return MR_ENOMEM;
    }
    for (size_t i = 0; i < old.cap; i++)
        if (old.vals[i] != U64MAP_NONE) {
            int fresh;
            *u64map_probe(m, old.keys[i], &fresh) = old.vals[i];
            m->n++;
        }
    u64map_free(&old);
    assert(u64map_check(m)); /* O(cap), like the rehash itself */
    return 0;
}

int u64map_put(u64map *m, uint64_t key, uint32_t val) {
    if (2 * (m->n + 1) > m->cap && u64map_grow(m)) return MR_ENOMEM;
    int fresh;
    uint32_t *v = u64map_probe(m, key, &fresh);
    *v = val;
    m->n += (size_t)fresh;
    assert(u64map_check_key(m, key) && 2 * m->n <= m->cap);
    return 0;
}

uint32_t u64map_intern(u64map *m, uint64_t key, uint32_t val_if_absent, int *inserted) {
    if (2 * (m->n + 1) > m->cap && u64map_grow(m)) return U64MAP_NONE;
    int fresh;
    uint32_t *v = u64map_probe(m, key, &fresh);
    if (fresh) {
        *v = val_if_absent;
        m->n++;
    }
    if (inserted) *inserted = fresh;
    assert(u64map_check_key(m, key) && 2 * m->n <= m->cap);
    return *v;
}

int u64map_del(u64map *m, uint64_t key) {
    size_t mask = m->cap - 1, i = idhash_mix64(key) & mask;
    for (;; i = (i + 1) & mask) {
        if (m->vals[i] == U64MAP_NONE) return 0;
        if (m->keys[i] == key) break;
    }
    /* Backward shift: an entry further along the chain moves into the hole
     * unless its home slot lies cyclically in (hole, its slot]. */
    for (size_t j = i;;) {
        j = (j + 1) & mask;
        if (m->vals[j] == U64MAP_NONE) break;
        size_t h = idhash_mix64(m->keys[j]) & mask;
        int stays = i < j ? (h > i && h <= j) : (h > i || h <= j);
        if (stays) continue;
        m->keys[i] = m->keys[j];
        m->vals[i] = m->vals[j];
        i = j;
    }
    m->vals[i] = U64MAP_NONE;
    m->n--;
    assert(u64map_get(m, key) == U64MAP_NONE && u64map_check_run(m, i));
    return 1;
}
