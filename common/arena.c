/* arena.c — see arena.h. Chunks are singly linked, newest first; reset
 * keeps the oldest chunk so a reused arena does not malloc per request. */
#include "arena.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct mr_arena_chunk {
    mr_arena_chunk *next; /* older chunk */
    size_t cap;           /* usable bytes in data */
    size_t off;           /* next free byte */
    _Alignas(16) unsigned char data[];
};

/* Invariants: used == sum of the chunks' off (bytes handed out), reserved
 * == sum of their cap, off <= cap in every chunk, used <= limit when there
 * is one. The head chunk alone is checked on every allocation (cheap); the
 * whole list on reset. */
static int arena_check_chunk(const mr_arena_chunk *c) {
    return c->off <= c->cap && c->off % 16 == 0;
}

__attribute__((unused)) static int arena_check_head(const mr_arena *a) {
    return a->used <= a->reserved && (!a->limit || a->used <= a->limit) &&
           (!a->head || arena_check_chunk(a->head));
}

int mr_arena_check(const mr_arena *a) {
    size_t used = 0, reserved = 0;
    for (const mr_arena_chunk *c = a->head; c; c = c->next) {
        if (!arena_check_chunk(c)) return 0;
        used += c->off;
        reserved += c->cap;
    }
    return used == a->used && reserved == a->reserved && (!a->limit || a->used <= a->limit);
}

void mr_arena_init(mr_arena *a, size_t chunk_size, size_t limit) {
    memset(a, 0, sizeof *a);
    a->chunk_size = chunk_size ? chunk_size : 64 * 1024;
    a->limit = limit;
}

void *mr_arena_alloc(mr_arena *a, size_t n) {
    size_t need = (n + 15) & ~(size_t)15;
    if (need < n) return NULL; /* overflow */
    if (a->limit && (need > a->limit || a->used > a->limit - need)) return NULL;
    mr_arena_chunk *c = a->head;
    if (!c || c->cap - c->off < need) {
        size_t cap = need > a->chunk_size ? need : a->chunk_size;
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->cap = cap;
        c->off = 0;
        c->next = a->head;
        a->head = c;
        a->reserved += cap;
    }
    void *p = c->data + c->off;
    c->off += need;
    a->used += need;
    assert(arena_check_head(a));
    return p;
}

void *mr_arena_calloc(mr_arena *a, size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) return NULL;
    void *p = mr_arena_alloc(a, count * size);
    if (p) memset(p, 0, count * size);
    return p;
}

char *mr_arena_strdup(mr_arena *a, const char *s) {
    size_t n = strlen(s) + 1;
    char *p = mr_arena_alloc(a, n);
    if (p) memcpy(p, s, n);
    return p;
}

mr_arena_mark mr_arena_mark_of(const mr_arena *a) {
    return (mr_arena_mark){a->head, a->head ? a->head->off : 0, a->used};
}

void mr_arena_rewind(mr_arena *a, mr_arena_mark m) {
    while (a->head != m.head) { /* chunks newer than the mark */
        mr_arena_chunk *c = a->head;
        assert(c);
        a->head = c->next;
        a->reserved -= c->cap;
        free(c);
    }
    if (a->head) a->head->off = m.off;
    a->used = m.used;
    assert(mr_arena_check(a));
}

void mr_arena_reset(mr_arena *a) {
    assert(mr_arena_check(a));
    mr_arena_chunk *c = a->head;
    while (c && c->next) {
        mr_arena_chunk *next = c->next;
        a->reserved -= c->cap;
        free(c);
        c = next;
    }
    a->head = c;
    if (c) c->off = 0;
    a->used = 0;
    assert(mr_arena_check(a));
}

void mr_arena_free(mr_arena *a) {
    assert(mr_arena_check(a));
    mr_arena_chunk *c = a->head;
    while (c) {
        mr_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->used = a->reserved = 0;
}
