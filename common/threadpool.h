/* threadpool.h — a fixed pool of worker threads with fork-join batches.
 *
 * Used where one call fans out (experts searched in parallel, training
 * shards, batch scoring). A batch is a set of tasks submitted together and
 * waited on together; several batches from different threads may be in
 * flight at once. mr_pool_parallel_for splits [0, n) into chunks.
 */
#ifndef MOEREC_COMMON_THREADPOOL_H
#define MOEREC_COMMON_THREADPOOL_H

#include <stddef.h>

typedef struct mr_pool mr_pool;
typedef void (*mr_task_fn)(void *arg);
/* Body of a parallel for: process [begin, end); chunk is this range's index
 * in [0, nchunks), so callers can keep per-chunk scratch or partial sums. */
typedef void (*mr_range_fn)(long begin, long end, int chunk, void *arg);

/* nthreads <= 0 means the number of online CPUs. NULL on failure. */
mr_pool *mr_pool_create(int nthreads);
void mr_pool_free(mr_pool *p); /* waits for queued tasks first */
int mr_pool_size(const mr_pool *p);

/* Run fn(args[i]) for i in [0, n) on the pool and wait for all of them.
 * The calling thread also runs tasks, so a pool of 1 still makes progress
 * and nested calls cannot deadlock. Returns 0, or MR_ENOMEM. */
int mr_pool_run(mr_pool *p, mr_task_fn fn, void **args, int n);

/* Split [0, n) into min(nchunks, n) contiguous ranges and run them; nchunks
 * <= 0 means mr_pool_size(p) + 1. p may be NULL to run every chunk inline.
 * Chunk boundaries depend only on n and nchunks, so per-chunk partial
 * results reduced in chunk order are deterministic. */
int mr_pool_parallel_for(mr_pool *p, long n, int nchunks, mr_range_fn fn, void *arg);

#endif
