/* fixture.h — what the fuzz targets run over: a temp directory (removed at
 * exit) holding a small model version with a retriever set and a RocksDB
 * store, and a server created over them (never started: no listener is
 * served, calls go through mr_server_invoke). Built once per process, in
 * LLVMFuzzerInitialize or on the first input.
 */
#ifndef MOEREC_FUZZ_FIXTURE_H
#define MOEREC_FUZZ_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "server/server.h"

#define FZ_DIM 4    /* item vectors and retrievers */
#define FZ_ITEMS 40 /* items 1..FZ_ITEMS in the FAISS expert and the store */

/* The model JSON of the fixture (user_id, item_id, genre; one numeric).
 * The genre table (16 rows) has "storage": "store", fp16: the table
 * PushEmbeddings writes. */
extern const char fz_model_json[];

/* A fresh temp directory, removed at exit; aborts when none can be made. */
const char *fz_tmpdir(void);
/* Write data to dir/name (aborts on failure); returns the path (static). */
const char *fz_write(const char *dir, const char *name, const uint8_t *data, size_t n);
/* The server over the fixture (model "fz" version 1 + retrievers + store
 * with items 1..FZ_ITEMS and a few events; no update log). Aborts when it
 * cannot be built. */
mr_server *fz_server(void);
/* Call method on fz_server() with req[0..n) (mr_server_invoke) and abort
 * unless the answer is a real gRPC status, with a message when not OK;
 * MOEREC_FUZZ_VERBOSE set prints each status. The RPC targets' check. */
void fz_invoke_check(const char *method, const uint8_t *req, size_t n);
/* A saved retriever set alone, built once: a FAISS "IDMap,Flat" expert
 * "flat" of FZ_ITEMS vectors, a popularity fallback "popular", a MinHash
 * expert "cooc" and router pilots. Files: retrievers.json, flat.faiss,
 * flat.faiss.meta, popular.pop, cooc.minhash, router.bin. */
const char *fz_retrievers_dir(void);
/* Copy the fixture's set into a fresh directory of this process (once)
 * and return it, so a target may overwrite one file per input. */
const char *fz_retrievers_copy(void);
/* Read a whole file into a malloc'd buffer (aborts when unreadable). */
uint8_t *fz_read(const char *path, size_t *n);
/* Load the set in dir and, when it loads, retrieve for one query vector
 * and one user through its router; aborts on a failure without a message. */
void fz_load_and_retrieve(const char *dir);

/* With MOEREC_FUZZ_SEEDS_OUT set, write prefix (plen bytes, may be 0) +
 * data as file `name` there: targets whose seeds are the fixture's own
 * files (a FAISS index, a MinHash file) write them this way (fuzz/seeds.sh). */
void fz_dump_seed(const char *name, const uint8_t *prefix, size_t plen, const uint8_t *data,
                  size_t n);

#endif
