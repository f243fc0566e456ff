/* idhash.c — seeded xxh3 id hashing and the hash / double / frequency row
 * mappers (the GraphHash kinds live in graphhash_mapper.c).
 *
 * Rows are pure functions of (id, seeds, table), so a mapper can be shared
 * by all threads and rebuilt identically from its config. Frequency hashing
 * keeps its head ids sorted (hashing/idsearch.h) instead of in a hash map:
 * one allocation, cache-friendly, and the same layout GraphHash mmaps.
 */
#include "hashing/idhash.h"

#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "hashing/idhash_int.h"
#include "hashing/idsearch.h"
#include "hashing/u64map.h"

uint64_t idhash_u64(uint64_t id, uint64_t seed) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(id >> (8 * i)); /* little-endian */
    return XXH3_64bits_withSeed(b, sizeof b, seed);
}

uint64_t idhash_bytes(const void *data, size_t n, uint64_t seed) {
    return XXH3_64bits_withSeed(data, n, seed);
}

/* xxh3 of field, 0x1f, value. Short keys are hashed in one call over a
 * copy (the streaming state's reset derives a secret from the seed: most of
 * the time of a Score's 10,000 hashes); xxh3 gives the same value for the
 * same bytes either way. */
uint64_t idhash_field(const char *field, size_t nfield, const char *value, size_t nvalue,
                      uint64_t seed) {
    static const char sep = 0x1f; /* ASCII unit separator: never in field names */
    char buf[256];
    if (nfield + nvalue < sizeof buf) {
        if (nfield) memcpy(buf, field, nfield);
        buf[nfield] = sep;
        if (nvalue) memcpy(buf + nfield + 1, value, nvalue);
        return XXH3_64bits_withSeed(buf, nfield + 1 + nvalue, seed);
    }
    XXH3_state_t st;
    XXH3_64bits_reset_withSeed(&st, seed);
    if (nfield) XXH3_64bits_update(&st, field, nfield);
    XXH3_64bits_update(&st, &sep, 1);
    if (nvalue) XXH3_64bits_update(&st, value, nvalue);
    return XXH3_64bits_digest(&st);
}

uint64_t idhash_field_str(const char *field, const char *value, uint64_t seed) {
    return idhash_field(field, field ? strlen(field) : 0, value, value ? strlen(value) : 0, seed);
}

static const char *const kind_names[] = {"hash",  "double",       "frequency",
                                         "graph", "double_graph", "lsh"};

const char *idhash_kind_name(idhash_kind kind) {
    if ((unsigned)kind >= sizeof kind_names / sizeof kind_names[0]) return "unknown";
    return kind_names[kind];
}

int idhash_kind_parse(const char *name, idhash_kind *out, mr_err *e) {
    for (size_t i = 0; name && i < sizeof kind_names / sizeof kind_names[0]; i++)
        if (!strcmp(name, kind_names[i])) {
            *out = (idhash_kind)i;
            return 0;
        }
    return mr_err_set(e, MR_EINVAL,
                      "unknown hashing kind '%s' (expected hash, double, frequency, graph, "
                      "double_graph, lsh)",
                      name ? name : "(null)");
}

static int mapper_alloc(idhash_mapper **out, idhash_kind kind, uint64_t k, mr_err *e) {
    *out = NULL;
    if (k == 0)
        return mr_err_set(e, MR_EINVAL, "%s mapper: table size k must be > 0",
                          idhash_kind_name(kind));
    idhash_mapper *m = calloc(1, sizeof *m);
    if (!m) return mr_err_set(e, MR_ENOMEM, "%s mapper: out of memory", idhash_kind_name(kind));
    m->kind = kind;
    m->k = k;
    *out = m;
    return 0;
}

int idhash_mapper_create_hash(idhash_mapper **out, uint64_t k, uint64_t seed, mr_err *e) {
    int rc = mapper_alloc(out, IDHASH_HASH, k, e);
    if (rc == 0) (*out)->seed1 = seed;
    return rc;
}

int idhash_mapper_create_double(idhash_mapper **out, uint64_t k, uint64_t seed1, uint64_t seed2,
                                mr_err *e) {
    if (k < 2) {
        *out = NULL;
        return mr_err_set(e, MR_EINVAL, "double mapper: needs k >= 2 rows, got %llu",
                          (unsigned long long)k);
    }
    if (seed1 == seed2) {
        *out = NULL;
        return mr_err_set(e, MR_EINVAL, "double mapper: the two seeds must differ");
    }
    int rc = mapper_alloc(out, IDHASH_DOUBLE, k, e);
    if (rc == 0) {
        (*out)->seed1 = seed1;
        (*out)->seed2 = seed2;
    }
    return rc;
}

typedef struct freq_entry {
    uint64_t id, count;
} freq_entry;

static int freq_cmp(const void *a, const void *b) { /* count desc, then id asc */
    const freq_entry *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int head_cmp(const void *a, const void *b) { /* id asc */
    const freq_entry *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

int idhash_mapper_create_frequency(idhash_mapper **out, uint64_t k, uint64_t nhead,
                                   const uint64_t *ids, const uint64_t *counts, size_t n,
                                   uint64_t seed, mr_err *e) {
    *out = NULL;
    if (nhead == (uint64_t)-1) nhead = k / 2;
    if (k == 0 || nhead >= k)
        return mr_err_set(e, MR_EINVAL,
                          "frequency mapper: need 0 <= nhead < k (nhead=%llu, k=%llu)",
                          (unsigned long long)nhead, (unsigned long long)k);
    if (n && (!ids || !counts)) return mr_err_set(e, MR_EINVAL, "frequency mapper: NULL ids");
    if (nhead > n) nhead = n;
    freq_entry *all = malloc((n ? n : 1) * sizeof *all);
    if (!all) return mr_err_set(e, MR_ENOMEM, "frequency mapper: out of memory for %zu ids", n);
    for (size_t i = 0; i < n; i++) all[i] = (freq_entry){ids[i], counts[i]};
    qsort(all, n, sizeof *all, head_cmp);
    for (size_t i = 1; i < n; i++)
        if (all[i].id == all[i - 1].id) {
            uint64_t dup = all[i].id;
            free(all);
            return mr_err_set(e, MR_EINVAL,
                              "frequency mapper: id %llu appears twice in the "
                              "count pass",
                              (unsigned long long)dup);
        }
    qsort(all, n, sizeof *all, freq_cmp);
    /* The head, re-sorted by id; each keeps its rank (row) in the value. */
    for (uint64_t r = 0; r < nhead; r++) all[r].count = r;
    qsort(all, nhead, sizeof *all, head_cmp);
    int rc = mapper_alloc(out, IDHASH_FREQUENCY, k, e);
    idhash_mapper *m = *out;
    if (rc) goto err;
    m->seed1 = seed;
    m->nhead = nhead;
    m->head_ids = malloc((nhead ? nhead : 1) * sizeof *m->head_ids);
    m->head_rows = malloc((nhead ? nhead : 1) * sizeof *m->head_rows);
    if (!m->head_ids || !m->head_rows) {
        rc = mr_err_set(e, MR_ENOMEM, "frequency mapper: out of memory");
        goto err;
    }
    for (uint64_t r = 0; r < nhead; r++) {
        m->head_ids[r] = all[r].id;
        m->head_rows[r] = all[r].count;
    }
    free(all);
    return 0;
err:
    free(all);
    idhash_mapper_free(*out);
    *out = NULL;
    return rc;
}

void idhash_mapper_free(idhash_mapper *m) {
    if (!m) return;
    free(m->head_ids);
    free(m->head_rows);
    free(m);
}

void idhash_mapper_head(const idhash_mapper *m, const uint64_t **ids, const uint64_t **rows,
                        uint64_t *n) {
    int freq = m->kind == IDHASH_FREQUENCY;
    *ids = freq ? m->head_ids : NULL;
    *rows = freq ? m->head_rows : NULL;
    *n = freq ? m->nhead : 0;
}

int idhash_count_ids(const uint64_t *stream, size_t n, uint64_t **ids, uint64_t **counts,
                     size_t *ndistinct, mr_err *e) {
    *ids = NULL;
    *counts = NULL;
    *ndistinct = 0;
    if (n == 0) return mr_err_set(e, MR_EINVAL, "count pass: no ids");
    if (n >= U64MAP_NONE) return mr_err_set(e, MR_EINVAL, "count pass: over 4G ids");
    u64map map;
    uint64_t *first = malloc(n * sizeof *first); /* distinct ids, first-seen order */
    uint64_t *cnt = calloc(n, sizeof *cnt);
    if (!first || !cnt || u64map_init(&map, 1024)) {
        free(first);
        free(cnt);
        return mr_err_set(e, MR_ENOMEM, "count pass: out of memory for %zu ids", n);
    }
    uint32_t nd = 0;
    for (size_t j = 0; j < n; j++) {
        uint32_t v = u64map_intern(&map, stream[j], nd, NULL);
        if (v == U64MAP_NONE) {
            u64map_free(&map);
            free(first);
            free(cnt);
            return mr_err_set(e, MR_ENOMEM, "count pass: out of memory");
        }
        if (v == nd) first[nd++] = stream[j];
        cnt[v]++;
    }
    /* Ascending id order: sort the distinct ids, then look up their counts. */
    uint64_t *sorted = malloc((size_t)nd * sizeof *sorted), *c2 = malloc((size_t)nd * sizeof *c2);
    int rc = 0;
    if (!sorted || !c2) {
        free(sorted);
        free(c2);
        rc = mr_err_set(e, MR_ENOMEM, "count pass: out of memory");
    } else {
        memcpy(sorted, first, (size_t)nd * sizeof *sorted);
        qsort(sorted, nd, sizeof *sorted, idsearch_cmp_u64);
        for (uint32_t j = 0; j < nd; j++) c2[j] = cnt[u64map_get(&map, sorted[j])];
        *ids = sorted;
        *counts = c2;
        *ndistinct = nd;
    }
    u64map_free(&map);
    free(first);
    free(cnt);
    return rc;
}

idhash_kind idhash_mapper_kind(const idhash_mapper *m) { return m->kind; }
uint64_t idhash_mapper_nrows(const idhash_mapper *m) { return m->k; }

int idhash_mapper_rows_per_id(const idhash_mapper *m) {
    return (m->kind == IDHASH_DOUBLE || m->kind == IDHASH_DOUBLE_GRAPH) ? 2 : 1;
}

uint64_t idhash_second_row(uint64_t first, uint64_t id, uint64_t seed, uint64_t k) {
    return (first + 1 + idhash_u64(id, seed) % (k - 1)) % k;
}

int idhash_mapper_rows(const idhash_mapper *m, uint64_t id, uint64_t *rows) {
    switch (m->kind) {
    case IDHASH_HASH: rows[0] = idhash_row(idhash_u64(id, m->seed1), m->k); return 1;
    case IDHASH_DOUBLE:
        rows[0] = idhash_row(idhash_u64(id, m->seed1), m->k);
        rows[1] = idhash_second_row(rows[0], id, m->seed2, m->k);
        return 2;
    case IDHASH_FREQUENCY: {
        long i = idsearch_find(m->head_ids, m->nhead, id);
        rows[0] = i >= 0 ? m->head_rows[i]
                         : m->nhead + idhash_row(idhash_u64(id, m->seed1), m->k - m->nhead);
        return 1;
    }
    case IDHASH_GRAPH:
    case IDHASH_DOUBLE_GRAPH:
    case IDHASH_LSH: return idhash_graph_rows(m, id, rows);
    }
    rows[0] = 0;
    return 1;
}
