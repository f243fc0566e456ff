/* retr_set.h — a retriever set: the expert retrievers of one model version
 * and the router over them, saved as one directory.
 *
 * `moerec index retrievers` builds a set and saves it; the server loads
 * models/<name>/<version>/retrievers/ with retr_set_load and gets a ready
 * router with its experts. The directory:
 *
 *   retrievers.json   manifest: format "moerec-retrievers", version, dim,
 *                     metric, experts (name, kind, file, factory, search
 *                     params), fallback, expert_column (or null), router
 *                     settings
 *   <expert>.faiss    FAISS experts (retr_faiss_save: + <expert>.faiss.meta)
 *   <expert>.pop      popularity experts (retr_pop_save)
 *   <expert>.minhash  MinHash co-occurrence experts (retr_minhash_save)
 *   router.bin        the router's pilots (router_save)
 *
 * An expert of kind "remote" has no file: it names another moerec
 * (address, remote_name, remote_model) that serves it through Retrieve.
 *
 * The manifest is read strictly: an unknown field, a wrong type, a file
 * name that leaves the directory, or an expert file that is missing or
 * damaged is an error naming it. Save writes a sibling temporary directory
 * and swaps it in with one rename (an existing set is exchanged atomically
 * and then removed), so a reader sees the old set or the new one.
 *
 * Thread safety: as router.h says. retr_set_router's router_retrieve may
 * run concurrently from any number of threads; online adds to a FAISS
 * expert (retr_faiss_add on retr_set_expert) are safe beside searches
 * (retr_faiss.h), except on a set loaded with RETR_SET_LOAD_MMAP (read
 * only). Adding experts and saving must not race with searches.
 */
#ifndef MOEREC_INDEX_RETR_SET_H
#define MOEREC_INDEX_RETR_SET_H

#include "common/error.h"
#include "common/threadpool.h"
#include "index/retrieval/retr.h"
#include "index/retrieval/retr_faiss.h"
#include "index/retrieval/router.h"

#define RETR_SET_FORMAT "moerec-retrievers"
#define RETR_SET_VERSION 1
#define RETR_SET_MANIFEST "retrievers.json"
#define RETR_SET_PILOTS "router.bin"
#define RETR_SET_FILE_MAX 96

enum {
    RETR_SET_LOAD_MMAP = 1, /* FAISS experts mapped read-only (IVF lists) */
    RETR_SET_LOAD_OMP1 = 2, /* each FAISS search uses one OpenMP thread (servers) */
};

typedef struct retr_set_config {
    int dim;                   /* query (routing) dimension of every FAISS expert */
    retr_metric metric;        /* of every FAISS expert */
    router_config router;      /* router.dim is set to dim; 0 fields = router defaults */
    const char *expert_column; /* item column the FAISS experts split by ("genre": expert
                                  "genre_<value>", see retr_set_expert_name); NULL = none */
} retr_set_config;

#define RETR_SET_ADDRESS_MAX 256
#define RETR_SET_MODEL_MAX 64

/* What the manifest says of one expert (read-only view). */
typedef struct retr_set_expert_info {
    char name[RETR_NAME_MAX];
    retr_kind kind;                        /* RETR_CALLBACK: a remote expert ("remote") */
    char file[RETR_SET_FILE_MAX];          /* inside the set directory; "" for a remote expert */
    char factory[RETR_FAISS_FACTORY_MAX];  /* FAISS only, else "" */
    int ef_search;                         /* FAISS only; 0 = default */
    int nprobe;                            /* FAISS only; 0 = default */
    char address[RETR_SET_ADDRESS_MAX];    /* remote only: "host:port" of the moerec serving it */
    char remote_name[RETR_NAME_MAX];       /* remote only: its name in that server's set */
    char remote_model[RETR_SET_MODEL_MAX]; /* remote only: that server's model; "" = its default */
} retr_set_expert_info;

/* A remote expert as the manifest names it: kind "remote", searched on
 * another moerec through Retrieve. The retrieval library does not talk to
 * networks: whoever loads the set supplies a factory that turns this into
 * an expert (the server's is server/remote_expert.c: a callback expert,
 * retr_callback.h). It is searched with query vector 0, of the set's dim. */
typedef struct retr_set_remote {
    const char *name;         /* its name in this set */
    int dim;                  /* the set's dim */
    const char *address;      /* "host:port" */
    const char *remote_name;  /* its name on the remote server */
    const char *remote_model; /* the remote server's model; "" = its default */
} retr_set_remote;
typedef int (*retr_set_remote_fn)(void *ctx, const retr_set_remote *spec, mr_retr **out, mr_err *e);

typedef struct retr_set retr_set;

/* An empty set: a router (on pool, which may be NULL: experts searched in
 * the calling thread) with no experts. */
int retr_set_create(retr_set **out, const retr_set_config *cfg, mr_pool *pool, mr_err *e);
/* Frees the router, then every expert. NULL is a no-op. */
void retr_set_free(retr_set *s);

/* Add an expert (searched with query vector 0). On success the set owns r
 * and the return is its index in the router; on error the caller still
 * owns r. factory, ef_search, nprobe describe a FAISS expert (factory
 * required for one, ignored otherwise). A FAISS expert's dim must be the
 * set's. */
int retr_set_add(retr_set *s, mr_retr *r, const char *factory, int ef_search, int nprobe,
                 mr_err *e);

/* Add a remote expert r (a callback expert of the set's dim) described by
 * spec (its name must be r's). Ownership as retr_set_add. */
int retr_set_add_remote(retr_set *s, mr_retr *r, const retr_set_remote *spec, mr_err *e);

/* Write the set into dir (created; an existing set there is replaced). */
int retr_set_save(retr_set *s, const char *dir, mr_err *e);
/* Load the set in dir. flags: RETR_SET_LOAD_MMAP | RETR_SET_LOAD_OMP1. */
int retr_set_load(retr_set **out, const char *dir, mr_pool *pool, int flags, mr_err *e);
/* The same; remote experts in the manifest are made by remote(ctx, ..)
 * (retr_set_load has none: a set naming a remote expert is then
 * MR_EUNIMPL naming it). */
int retr_set_load_remote(retr_set **out, const char *dir, mr_pool *pool, int flags,
                         retr_set_remote_fn remote, void *ctx, mr_err *e);

mr_router *retr_set_router(const retr_set *s);
int retr_set_dim(const retr_set *s);
retr_metric retr_set_metric(const retr_set *s);
int retr_set_n_experts(const retr_set *s);
/* Expert by router index (NULL when out of range) or by name (NULL when
 * unknown). Owned by the set. */
mr_retr *retr_set_expert_at(const retr_set *s, int i);
mr_retr *retr_set_expert(const retr_set *s, const char *name);
const retr_set_expert_info *retr_set_info(const retr_set *s, int i);
/* The router settings as saved (defaults resolved); fallback may be NULL. */
const router_config *retr_set_router_config(const retr_set *s);

/* The expert column the set was built with (manifest "expert_column"), or
 * NULL. */
const char *retr_set_expert_column(const retr_set *s);
/* The expert name of one column value: "<column>_<value>" with characters
 * outside [A-Za-z0-9_.-] replaced by '_' (column cut at 31 bytes). */
void retr_set_expert_name(const char *column, const char *value, char out[RETR_NAME_MAX]);
/* Live updates (retr_set_live.h) hold this mutex; 1 = lock, 0 = unlock. */
void retr_set_live_lock(retr_set *s, int lock);

/* "norm" / "rrf" / "raw" <-> router_merge; parse returns -1 if unknown. */
const char *retr_set_merge_name(router_merge m);
int retr_set_merge_parse(const char *s);

#endif
