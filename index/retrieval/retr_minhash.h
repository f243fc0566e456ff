/* retr_minhash.h — the co-occurrence expert: items whose user sets are
 * similar (Jaccard) to those of the items in the user's recent behaviour.
 *
 * Each item is keyed by the MinHash signature of the set of users who
 * interacted with it (hashing/minhash.h), indexed with LSH banding. A
 * query needs no vector: for each of the user's most recent items (the
 * seeds), LSH gives the items sharing a band; a candidate's score is the
 * recency-weighted sum over seeds of the estimated Jaccard similarity,
 * weight recency_decay^age (the newest seed has age 0). The seeds
 * themselves are never returned. Interactions stream in online: an item's
 * signature only ever moves down (minhash_update), and is re-indexed when
 * it changes.
 */
#ifndef MOEREC_INDEX_RETR_MINHASH_H
#define MOEREC_INDEX_RETR_MINHASH_H

#include <stdint.h>

#include "common/error.h"
#include "index/retrieval/retr.h"

typedef struct retr_minhash_config {
    const char *name;
    int bands;           /* LSH bands; 0 = 16 */
    int rows;            /* rows per band; 0 = 4 (signature = bands * rows) */
    uint64_t seed;       /* MinHash / LSH seed */
    int max_recent;      /* seeds used from the user's recent items; 0 = 20 */
    float recency_decay; /* seed weight per step of age, (0, 1]; 0 = 0.9 */
    int cand_cap;        /* LSH candidates read per seed; 0 = 2000 */
} retr_minhash_config;

int retr_minhash_create(mr_retr **out, const retr_minhash_config *cfg, mr_err *e);
/* n (user, item) interactions; ids >= 0. */
int retr_minhash_add(mr_retr *r, const int64_t *users, const int64_t *items, int64_t n, mr_err *e);
/* Estimated Jaccard similarity of two items' user sets (0 if unknown). */
double retr_minhash_similarity(mr_retr *r, int64_t a, int64_t b);
/* Save signatures and settings beside the model version (checksummed,
 * atomic); load into a new expert named `name` (NULL: the file's base
 * name), re-indexing LSH. */
int retr_minhash_save(mr_retr *r, const char *path, mr_err *e);
int retr_minhash_load(mr_retr **out, const char *path, const char *name, mr_err *e);

/* Remove items: they are never returned again (as seeds they give
 * nothing) until new interactions add them back. Unknown ids are skipped. */
int retr_minhash_remove(mr_retr *r, const int64_t *ids, int64_t n, mr_err *e);

#endif
