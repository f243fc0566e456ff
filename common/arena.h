/* arena.h — bump allocator for request-scoped memory.
 *
 * A request decodes into an arena and frees it once at the end. The arena
 * grows in chunks up to a hard byte limit, so a hostile message cannot make
 * one request take unbounded memory: past the limit, allocation returns NULL
 * (protobuf-c then fails the unpack cleanly). Not thread-safe: one arena
 * belongs to one request.
 */
#ifndef MOEREC_COMMON_ARENA_H
#define MOEREC_COMMON_ARENA_H

#include <stddef.h>

typedef struct mr_arena_chunk mr_arena_chunk;

typedef struct mr_arena {
    mr_arena_chunk *head; /* current chunk, linked to older ones */
    size_t chunk_size;    /* default size of a new chunk */
    size_t limit;         /* max bytes over all chunks, 0 = unlimited */
    size_t used;          /* bytes handed out (incl. alignment) */
    size_t reserved;      /* bytes malloc'd for chunks */
} mr_arena;

void mr_arena_init(mr_arena *a, size_t chunk_size, size_t limit);
/* 16-byte aligned; NULL when the limit would be exceeded or malloc fails. */
void *mr_arena_alloc(mr_arena *a, size_t n);
void *mr_arena_calloc(mr_arena *a, size_t count, size_t size);
char *mr_arena_strdup(mr_arena *a, const char *s);
/* A point to come back to: mr_arena_rewind(a, m) frees what was allocated
 * after mr_arena_mark(a) (chunks added since are freed), as if it never
 * was. Marks taken later than m are invalid after the rewind. */
typedef struct mr_arena_mark {
    mr_arena_chunk *head;
    size_t off, used;
} mr_arena_mark;

mr_arena_mark mr_arena_mark_of(const mr_arena *a);
void mr_arena_rewind(mr_arena *a, mr_arena_mark m);
/* Free every chunk but the first and rewind: the arena can be reused. */
void mr_arena_reset(mr_arena *a);
void mr_arena_free(mr_arena *a);
/* Invariant checker (walks the chunks): 1 when used and reserved match the
 * chunks and the limit holds. Allocation, reset and free assert it (debug
 * builds). */
int mr_arena_check(const mr_arena *a);

#endif
