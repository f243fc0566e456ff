/* retr_faiss_int.h — internals of the FAISS retriever shared by its source
 * files (retr_faiss.c: search and writes; retr_faiss_io.c: save/load and
 * rebuild). Not part of the public API.
 *
 * Invariants (under `lock`): slot_ext[s] is the item id stored under FAISS
 * label s, or -1 once that slot was deleted or replaced; `map` holds exactly
 * the live (id -> slot) pairs; in tombstone mode every dead slot is still in
 * the index and n_dead counts them, otherwise dead slots were removed from
 * FAISS and n_dead == 0.
 */
#ifndef MOEREC_INDEX_RETR_FAISS_INT_H
#define MOEREC_INDEX_RETR_FAISS_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <faiss/c_api/Index_c.h>

#include "index/retrieval/retr.h"
#include "index/retrieval/retr_faiss.h"
#include "index/retrieval/retr_idmap.h"

typedef struct retr_faiss {
    mr_retr base; /* must stay first: (mr_retr *) <-> (retr_faiss *) */
    char factory[RETR_FAISS_FACTORY_MAX];
    retr_metric metric;
    int ef_search;           /* 0 = FAISS default */
    int nprobe;              /* 0 = FAISS default */
    float rebuild_threshold; /* dead / ntotal that triggers a rebuild */
    int add_batch;           /* vectors per write-lock hold */
    int omp_threads;         /* 0 = leave OpenMP alone */
    int tombstones;          /* 1: FAISS cannot remove ids from this index */
    int read_only;           /* 1: loaded memory-mapped */
    pthread_rwlock_t lock;   /* search: read; index/slot mutation: write */
    pthread_mutex_t writer;  /* serialises writers, held across a rebuild */
    FaissIndex *index;
    int64_t *slot_ext; /* (cap_slots) item id per label, -1 dead */
    int64_t n_slots;   /* labels handed out */
    int64_t cap_slots;
    int64_t n_dead; /* tombstones inside the index */
    retr_idmap map; /* item id -> slot, live items only */
    atomic_uint_fast64_t n_rebuilds;
} retr_faiss;

extern const retr_ops retr_faiss_ops;

/* Turn a failed FAISS call into MR_EINTERNAL with FAISS's (per-thread)
 * last error message. */
int retr_faiss_err(mr_err *e, const retr_faiss *rf, const char *what);
/* Apply ef_search / nprobe to idx. Caller holds the write lock or owns idx. */
int retr_faiss_apply_params(retr_faiss *rf, FaissIndex *idx, mr_err *e);
/* Allocate and initialise the struct (locks, empty map), no index yet. */
retr_faiss *retr_faiss_alloc(const char *name, int dim, const char *factory, retr_metric metric,
                             mr_err *e);
/* Rebuild from live vectors. Caller holds `writer` (not `lock`). */
int retr_faiss_rebuild_locked(retr_faiss *rf, mr_err *e);

#endif
