/* idsearch.h — lookup in a sorted array of uint64 ids (internal helper).
 *
 * Frequency hashing and GraphHash store their id -> row tables as a sorted
 * id array beside a row array: no pointers, so the same layout works in
 * memory and straight out of an mmap'd mappings file. Binary search is
 * O(log n) (~20 probes for 1M ids), fast enough for per-request lookups.
 */
#ifndef MOEREC_HASHING_IDSEARCH_H
#define MOEREC_HASHING_IDSEARCH_H

#include <stddef.h>
#include <stdint.h>

/* Index of key in ids[0..n) (sorted ascending, distinct), or -1. */
static inline long idsearch_find(const uint64_t *ids, size_t n, uint64_t key) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ids[mid] < key) lo = mid + 1;
        else hi = mid;
    }
    return (lo < n && ids[lo] == key) ? (long)lo : -1;
}

/* qsort comparator for uint64_t. */
static inline int idsearch_cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

#endif
