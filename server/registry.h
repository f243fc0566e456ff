/* registry.h — the models a server serves, and hot reload.
 *
 * The model root holds models/<name>/<version>/{model.json,
 * weights.safetensors} (docs/model-format.md); at open, the newest version of
 * every model under the root is loaded. A request acquires a reference to
 * the current version of a model and releases it when done; Reload loads a
 * version beside the serving one and swaps the pointer, and the old version
 * is freed when its last in-flight request releases it. Scorers (per-call
 * scratch) are pooled per version so a request does not allocate them.
 */
#ifndef MOEREC_SERVER_REGISTRY_H
#define MOEREC_SERVER_REGISTRY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "common/error.h"
#include "moe/model.h"
#include "common/threadpool.h"
#include "index/retrieval/retr_set.h"
#include "moe/scorer.h"
#include "server/gate_usage.h"
#include "server/store_tables.h"

struct mr_remotes; /* server/remote_expert.h */

#define MR_MAX_MODELS 16
#define MR_SCORER_POOL 64

typedef struct mr_model_ref {
    moe_model *model;        /* read-only once loaded               */
    retr_set *retrievers;    /* <version>/retrievers/, or NULL      */
    char name[64];           /* directory name under the root       */
    char version[32];        /* version directory name              */
    int64_t loaded_at_ms;    /* unix ms                             */
    atomic_int refs;         /* registry's own + in-flight requests */
    pthread_mutex_t pool_mu; /* guards pool                         */
    int npool;
    moe_scorer *pool[MR_SCORER_POOL];
    mr_gate_usage usage;                  /* gate weights over served requests   */
    struct mr_registry *reg;              /* its registry (store-table use counts) */
    mr_store_table stabs[MOE_MAX_TABLES]; /* "storage": "store" tables (name
                                  * "" for in-memory ones); server/store_tables.h */
} mr_model_ref;

typedef struct mr_registry mr_registry;

/* Load the newest version of every model under root. default_model names
 * the model used when a request leaves `model` empty ("" = the first model
 * in name order). precision ("" = each model.json's own "precision") is the
 * serve config's override for every model and every later reload (moe/dnn.h
 * names; MR_EINVAL otherwise). MR_ENOTFOUND if root has no model.
 * remotes (server/remote_expert.h; NULL = retriever sets may not name
 * remote experts) is owned by the registry from here on, also on error. */
/* st (NULL without a data_dir) holds the tables of models with "storage":
 * "store" (server/store_tables.h; data_dir: st's folder, for ingestion);
 * after the load, store tables of versions no longer served are dropped. */
int mr_registry_open(mr_registry **out, const char *root, const char *default_model,
                     const char *precision, mr_pool *pool, struct mr_remotes *remotes, mr_store *st,
                     const char *data_dir, mr_err *e);
void mr_registry_free(mr_registry *r);

/* Current version of a model ("" = default); MR_ENOTFOUND names it. */
int mr_registry_acquire(mr_registry *r, const char *name, mr_model_ref **out, mr_err *e);
void mr_model_release(mr_model_ref *m);

/* A scorer for this version (pooled); give it back with mr_model_scorer_put. */
int mr_model_scorer_get(mr_model_ref *m, moe_scorer **out, mr_err *e);
void mr_model_scorer_put(mr_model_ref *m, moe_scorer *s);

/* Load version ("" = newest on disk) of model name ("" = default) and swap
 * it in. prev/now receive the versions (32 bytes each). Reloads are
 * serialised; requests keep running on the old version meanwhile. */
int mr_registry_reload(mr_registry *r, const char *name, const char *version, char *prev, char *now,
                       mr_err *e);

/* Live catalogue writes (UpsertItems, DeleteItems, AppendEvents) and
 * reloads are serialised by one mutex: a writer holds it across its store
 * write and its apply to every current version; a reload holds it across
 * the hook (the replay of the store's catalogue log onto the new version)
 * and the swap, so no write lands between the replay and the swap. */
typedef int (*mr_version_hook)(mr_model_ref *m, void *arg, mr_err *e);
/* Install the hook run on every version a reload loads (before the swap;
 * a failing hook fails the reload, the old version keeps serving), and run
 * it now on every current version. */
int mr_registry_set_live(mr_registry *r, mr_version_hook hook, void *arg, mr_err *e);
void mr_registry_live_lock(mr_registry *r, int lock);
/* fn on the current version of every model (caller holds the live lock). */
int mr_registry_each(mr_registry *r, mr_version_hook fn, void *arg, mr_err *e);

/* Model directory polling (config model_poll_s): every `seconds`, each
 * model whose newest version on disk (the highest number with a
 * model.json) is not the one serving is reloaded to it, as Admin/Reload
 * with an empty version does (hook, swap). A version that fails to load
 * is logged (once per distinct error) and tried again at the next poll, so
 * a version still being copied loads once it is whole. The thread stops in
 * mr_registry_free. Start it after mr_registry_set_live. */
int mr_registry_poll_start(mr_registry *r, int seconds, mr_err *e);
/* One poll now (the thread's body); returns the number of models swapped. */
int mr_registry_poll(mr_registry *r);

int mr_registry_count(const mr_registry *r);
/* The remote experts' channels and counters, or NULL. */
struct mr_remotes *mr_registry_remotes(const mr_registry *r);
const char *mr_registry_default(const mr_registry *r);

#endif
