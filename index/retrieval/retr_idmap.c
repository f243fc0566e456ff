/* retr_idmap.c — linear-probing int64 -> int64 map (see retr_idmap.h).
 *
 * Deletions leave a marker so probe chains stay intact; the table is rebuilt
 * when live + markers pass 70% of capacity. Keys are mixed with splitmix64
 * because item ids are often sequential.
 */
#include "index/retrieval/retr_idmap.h"

#include <assert.h>
#include <stdlib.h>

#include "common/error.h"
#include "common/rng.h"

#define IDMAP_EMPTY (-1)
#define IDMAP_DELETED (-2)

static uint64_t idmap_hash(int64_t key) {
    uint64_t s = (uint64_t)key;
    return mr_splitmix64(&s);
}

int retr_idmap_init(retr_idmap *m, int64_t expected) {
    int64_t cap = 16;
    while (cap < expected * 2) cap <<= 1;
    m->keys = malloc((size_t)cap * sizeof *m->keys);
    m->vals = malloc((size_t)cap * sizeof *m->vals);
    if (!m->keys || !m->vals) {
        free(m->keys);
        free(m->vals);
        m->keys = m->vals = NULL;
        return MR_ENOMEM;
    }
    for (int64_t i = 0; i < cap; i++) m->keys[i] = IDMAP_EMPTY;
    m->cap = cap;
    m->n = m->used = 0;
    return 0;
}

void retr_idmap_free(retr_idmap *m) {
    free(m->keys);
    free(m->vals);
    m->keys = m->vals = NULL;
    m->cap = m->n = m->used = 0;
}

/* Invariant: every live key is reachable from its home slot without
 * crossing an empty slot (markers do not end a probe); n counts live keys,
 * used live keys + markers, and used stays under the 70% load bound. */
static int idmap_check_key(const retr_idmap *m, int64_t key) {
    uint64_t mask = (uint64_t)m->cap - 1, i = idmap_hash(key) & mask;
    for (int64_t steps = 0; steps < m->cap; steps++, i = (i + 1) & mask) {
        if (m->keys[i] == key) return 1;
        if (m->keys[i] == IDMAP_EMPTY) return 0;
    }
    return 0;
}

int retr_idmap_check(const retr_idmap *m) {
    if (m->cap == 0) return m->n == 0 && m->used == 0;
    if ((m->cap & (m->cap - 1)) || m->used * 10 > m->cap * 7 || m->n > m->used) return 0;
    int64_t live = 0, marks = 0;
    for (int64_t i = 0; i < m->cap; i++) {
        if (m->keys[i] == IDMAP_DELETED) marks++;
        if (m->keys[i] < 0) continue;
        live++;
        if (!idmap_check_key(m, m->keys[i])) return 0;
    }
    return live == m->n && live + marks == m->used;
}

int64_t retr_idmap_get(const retr_idmap *m, int64_t key) {
    if (key < 0 || m->cap == 0) return -1;
    uint64_t mask = (uint64_t)m->cap - 1;
    for (uint64_t i = idmap_hash(key) & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == key) return m->vals[i];
        if (m->keys[i] == IDMAP_EMPTY) return -1;
    }
}

static int idmap_grow(retr_idmap *m) {
    retr_idmap bigger;
    int64_t want = m->n * 2 > 16 ? m->n * 2 : 16;
    if (retr_idmap_init(&bigger, want)) return MR_ENOMEM;
    for (int64_t i = 0; i < m->cap; i++)
        if (m->keys[i] >= 0) retr_idmap_put(&bigger, m->keys[i], m->vals[i]);
    retr_idmap_free(m);
    *m = bigger;
    assert(retr_idmap_check(m)); /* O(cap), like the rehash itself */
    return 0;
}

int retr_idmap_put(retr_idmap *m, int64_t key, int64_t val) {
    if (key < 0) return MR_EINVAL;
    if ((m->used + 1) * 10 > m->cap * 7 && idmap_grow(m)) return MR_ENOMEM;
    uint64_t mask = (uint64_t)m->cap - 1;
    int64_t tomb = -1;
    for (uint64_t i = idmap_hash(key) & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == key) {
            m->vals[i] = val;
            assert(m->used * 10 <= m->cap * 7);
            return 0;
        }
        if (m->keys[i] == IDMAP_DELETED && tomb < 0) tomb = (int64_t)i;
        if (m->keys[i] == IDMAP_EMPTY) {
            int64_t at = tomb >= 0 ? tomb : (int64_t)i;
            if (tomb < 0) m->used++;
            m->keys[at] = key;
            m->vals[at] = val;
            m->n++;
            assert(idmap_check_key(m, key) && m->n <= m->used && m->used * 10 <= m->cap * 7);
            return 0;
        }
    }
}

int retr_idmap_del(retr_idmap *m, int64_t key) {
    if (key < 0 || m->cap == 0) return 0;
    uint64_t mask = (uint64_t)m->cap - 1;
    for (uint64_t i = idmap_hash(key) & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == key) {
            m->keys[i] = IDMAP_DELETED;
            m->n--;
            assert(retr_idmap_get(m, key) == -1 && m->n >= 0);
            return 1;
        }
        if (m->keys[i] == IDMAP_EMPTY) return 0;
    }
}
