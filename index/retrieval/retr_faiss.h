/* retr_faiss.h — an expert retriever over one FAISS index (C API).
 *
 * Any factory string works ("IDMap,HNSW32", "IVF1024,PQ16", "IDMap,Flat"),
 * inner product or L2. Item ids are the caller's int64 ids; inside FAISS
 * each vector is stored under a dense "slot" label, so an item can be
 * updated (re-added) or deleted whatever the index type:
 *   - indexes that can remove ids (Flat, IVF) remove the old slot at once;
 *   - indexes that cannot (HNSW) keep the old vector as a tombstone that
 *     search filters out, and rebuild themselves (copy-on-write: readers
 *     keep searching the old index, the swap takes the write lock briefly)
 *     once tombstones pass rebuild_threshold of the index.
 * Concurrency: any number of searches run at once under a read lock;
 * writers are serialised by a mutex and take the write lock only per small
 * batch (add_batch vectors), so a long add never blocks readers for long.
 */
#ifndef MOEREC_INDEX_RETR_FAISS_H
#define MOEREC_INDEX_RETR_FAISS_H

#include <stdint.h>

#include "common/error.h"
#include "index/retrieval/retr.h"

#define RETR_FAISS_FACTORY_MAX 128
#define RETR_FAISS_DIM_MAX 65536

typedef struct retr_faiss_config {
    const char *name;        /* expert name, unique within a router */
    int dim;                 /* vector dimension, 1..RETR_FAISS_DIM_MAX */
    const char *factory;     /* FAISS factory string */
    retr_metric metric;      /* RETR_METRIC_IP or RETR_METRIC_L2 */
    int ef_search;           /* HNSW efSearch; 0 = FAISS default */
    int nprobe;              /* IVF nprobe; 0 = FAISS default */
    float rebuild_threshold; /* tombstone fraction that triggers a rebuild; 0 = 0.2 */
    int add_batch;           /* vectors added per write-lock hold; 0 = 256 */
    int omp_threads;         /* >0: cap OpenMP threads of the searching thread; 0 = leave */
} retr_faiss_config;

typedef struct retr_faiss_stats {
    int64_t n_live;      /* items searchable */
    int64_t n_dead;      /* tombstones still inside the index */
    int64_t ntotal;      /* vectors inside the FAISS index */
    uint64_t n_rebuilds; /* rebuilds done since create/load */
    int tombstones;      /* 1 when the index cannot remove ids */
    int read_only;       /* 1 when loaded memory-mapped */
    int is_trained;
} retr_faiss_stats;

enum { RETR_FAISS_LOAD_MMAP = 1 }; /* map IVF lists read-only from the file */

int retr_faiss_create(mr_retr **out, const retr_faiss_config *cfg, mr_err *e);
/* Train (IVF, PQ); a no-op for indexes that need no training. x (n, dim). */
int retr_faiss_train(mr_retr *r, const float *x, int64_t n, mr_err *e);
/* Insert or replace items: x (n, dim), ids (n) >= 0. A repeated id keeps
 * its last vector. */
int retr_faiss_add(mr_retr *r, const float *x, const int64_t *ids, int64_t n, mr_err *e);
/* Delete items; unknown ids are skipped. n_removed may be NULL. */
int retr_faiss_remove(mr_retr *r, const int64_t *ids, int64_t n, int64_t *n_removed, mr_err *e);
/* Rebuild without tombstones now (a no-op for indexes that remove ids). */
int retr_faiss_rebuild(mr_retr *r, mr_err *e);
/* Change efSearch / nprobe (0 = keep). */
int retr_faiss_set_params(mr_retr *r, int ef_search, int nprobe, mr_err *e);
/* Write path (the FAISS index) and path.meta (ids, settings), each via a
 * temporary file and rename. */
int retr_faiss_save(mr_retr *r, const char *path, mr_err *e);
/* flags: RETR_FAISS_LOAD_MMAP (the retriever is then read-only). cfg may be
 * NULL; when given, its ef_search / nprobe / omp_threads override the saved
 * ones. */
int retr_faiss_load(mr_retr **out, const char *path, int flags, const retr_faiss_config *cfg,
                    mr_err *e);
int retr_faiss_stats_get(mr_retr *r, retr_faiss_stats *st, mr_err *e);
/* The FAISS index itself, for benchmarks comparing against raw FAISS.
 * Borrowed; valid until the next write or rebuild. */
void *retr_faiss_raw_index(mr_retr *r);

#endif
