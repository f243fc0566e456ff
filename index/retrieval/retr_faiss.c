/* retr_faiss.c — FAISS expert retriever: create, params, writes, search.
 *
 * FAISS labels are dense slots owned by this file, not the caller's ids, so
 * that an index which cannot remove ids (HNSW) can still update and delete
 * items: the old slot becomes a tombstone filtered at search time. Search
 * over-fetches k + min(n_dead, k) labels, and again with twice as many
 * (up to the whole index) for queries that still come back short because
 * the tombstones cluster around them, so tombstones do not cut an
 * answer short. Save, load and rebuild live in retr_faiss_io.c.
 */
#include "index/retrieval/retr_faiss_int.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>

#include "common/tensor.h"

static retr_faiss *rf_of(mr_retr *r, mr_err *e) {
    if (!r) {
        mr_err_set(e, MR_EINVAL, "retriever is NULL");
        return NULL;
    }
    if (r->kind != RETR_FAISS) {
        mr_err_set(e, MR_EINVAL, "retriever '%s' is a %s retriever, not faiss", r->name,
                   retr_kind_name(r->kind));
        return NULL;
    }
    return (retr_faiss *)r;
}

int retr_faiss_err(mr_err *e, const retr_faiss *rf, const char *what) {
    const char *msg = faiss_get_last_error();
    return mr_err_set(e, MR_EINTERNAL, "retriever '%s': %s failed: %s", rf->base.name, what,
                      msg ? msg : "(no FAISS message)");
}

retr_faiss *retr_faiss_alloc(const char *name, int dim, const char *factory, retr_metric metric,
                             mr_err *e) {
    if (retr_check_name(name, e)) return NULL;
    if (dim <= 0 || dim > RETR_FAISS_DIM_MAX) {
        mr_err_set(e, MR_EINVAL, "retriever '%s': dim = %d out of range [1, %d]", name, dim,
                   RETR_FAISS_DIM_MAX);
        return NULL;
    }
    if (!factory || !factory[0] || strlen(factory) >= RETR_FAISS_FACTORY_MAX) {
        mr_err_set(e, MR_EINVAL, "retriever '%s': factory string empty or longer than %d", name,
                   RETR_FAISS_FACTORY_MAX - 1);
        return NULL;
    }
    if (metric != RETR_METRIC_IP && metric != RETR_METRIC_L2) {
        mr_err_set(e, MR_EINVAL, "retriever '%s': unknown metric %d", name, (int)metric);
        return NULL;
    }
    retr_faiss *rf = calloc(1, sizeof *rf);
    if (!rf) {
        mr_err_set(e, MR_ENOMEM, "retriever '%s': out of memory", name);
        return NULL;
    }
    snprintf(rf->base.name, sizeof rf->base.name, "%s", name);
    snprintf(rf->factory, sizeof rf->factory, "%s", factory);
    rf->base.kind = RETR_FAISS;
    rf->base.dim = dim;
    rf->base.ops = &retr_faiss_ops;
    rf->base.impl = rf;
    rf->metric = metric;
    rf->rebuild_threshold = 0.2f;
    rf->add_batch = 256;
    /* Writer preference: a steady stream of searches must not starve the
     * short write-lock holds of an add. */
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&rf->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&rf->writer, NULL);
    if (retr_idmap_init(&rf->map, 0)) {
        mr_err_set(e, MR_ENOMEM, "retriever '%s': out of memory", name);
        retr_faiss_ops.free(&rf->base);
        return NULL;
    }
    return rf;
}

static void rf_free(mr_retr *r) {
    retr_faiss *rf = (retr_faiss *)r;
    if (rf->index) faiss_Index_free(rf->index);
    free(rf->slot_ext);
    retr_idmap_free(&rf->map);
    pthread_rwlock_destroy(&rf->lock);
    pthread_mutex_destroy(&rf->writer);
    free(rf);
}

static int64_t rf_size(mr_retr *r) {
    retr_faiss *rf = (retr_faiss *)r;
    pthread_rwlock_rdlock(&rf->lock);
    int64_t n = rf->map.n;
    pthread_rwlock_unlock(&rf->lock);
    return n;
}

static int rf_set_param(retr_faiss *rf, FaissIndex *idx, const char *pname, double val, mr_err *e) {
    FaissParameterSpace *ps = NULL;
    if (faiss_ParameterSpace_new(&ps)) return retr_faiss_err(e, rf, "ParameterSpace_new");
    int rc = faiss_ParameterSpace_set_index_parameter(ps, idx, pname, val);
    faiss_ParameterSpace_free(ps);
    if (rc)
        return mr_err_set(e, MR_EINVAL, "retriever '%s': %s does not apply to factory '%s': %s",
                          rf->base.name, pname, rf->factory, faiss_get_last_error());
    return 0;
}

int retr_faiss_apply_params(retr_faiss *rf, FaissIndex *idx, mr_err *e) {
    if (rf->ef_search > 0) {
        int rc = rf_set_param(rf, idx, "efSearch", rf->ef_search, e);
        if (rc) return rc;
    }
    if (rf->nprobe > 0) {
        FaissIndexIVF *ivf = faiss_IndexIVF_cast(idx);
        if (ivf) {
            faiss_IndexIVF_set_nprobe(ivf, (size_t)rf->nprobe);
        } else {
            int rc = rf_set_param(rf, idx, "nprobe", rf->nprobe, e); /* IDMap,IVF... */
            if (rc) return rc;
        }
    }
    return 0;
}

/* 1 when FAISS can remove ids from idx (probed with an empty selector). */
static int rf_can_remove(FaissIndex *idx) {
    FaissIDSelectorBatch *sel = NULL;
    idx_t none = 0;
    if (faiss_IDSelectorBatch_new(&sel, 0, &none)) return 0;
    size_t nrem = 0;
    int rc = faiss_Index_remove_ids(idx, (FaissIDSelector *)sel, &nrem);
    faiss_IDSelector_free((FaissIDSelector *)sel);
    return rc == 0;
}

int retr_faiss_create(mr_retr **out, const retr_faiss_config *cfg, mr_err *e) {
    if (!out || !cfg) return mr_err_set(e, MR_EINVAL, "retr_faiss_create: NULL argument");
    *out = NULL;
    if (cfg->ef_search < 0 || cfg->nprobe < 0 || cfg->add_batch < 0 || cfg->omp_threads < 0)
        return mr_err_set(e, MR_EINVAL,
                          "retriever '%s': negative ef_search/nprobe/add_batch/"
                          "omp_threads",
                          cfg->name ? cfg->name : "?");
    if (!(cfg->rebuild_threshold >= 0.0f && cfg->rebuild_threshold < 1.0f))
        return mr_err_set(e, MR_EINVAL, "retriever '%s': rebuild_threshold %g not in [0, 1)",
                          cfg->name ? cfg->name : "?", cfg->rebuild_threshold);
    retr_faiss *rf = retr_faiss_alloc(cfg->name, cfg->dim, cfg->factory, cfg->metric, e);
    if (!rf) return e ? e->code : MR_EINVAL;
    rf->ef_search = cfg->ef_search;
    rf->nprobe = cfg->nprobe;
    if (cfg->rebuild_threshold > 0) rf->rebuild_threshold = cfg->rebuild_threshold;
    if (cfg->add_batch > 0) rf->add_batch = cfg->add_batch;
    rf->omp_threads = cfg->omp_threads;
    FaissMetricType m = cfg->metric == RETR_METRIC_IP ? METRIC_INNER_PRODUCT : METRIC_L2;
    int rc;
    if (faiss_index_factory(&rf->index, cfg->dim, cfg->factory, m)) {
        rc = mr_err_set(e, MR_EINVAL, "retriever '%s': bad factory string '%s': %s", cfg->name,
                        cfg->factory, faiss_get_last_error());
        goto err;
    }
    rf->tombstones = !rf_can_remove(rf->index);
    if (rf->tombstones && !faiss_IndexIDMap_cast(rf->index) && !faiss_IndexIDMap2_cast(rf->index)) {
        rc = mr_err_set(e, MR_EINVAL,
                        "retriever '%s': factory '%s' cannot add vectors with ids; "
                        "wrap it, e.g. 'IDMap,%s'",
                        cfg->name, cfg->factory, cfg->factory);
        goto err;
    }
    if ((rc = retr_faiss_apply_params(rf, rf->index, e))) goto err;
    *out = &rf->base;
    return 0;
err:
    rf_free(&rf->base);
    return rc;
}

int retr_faiss_set_params(mr_retr *r, int ef_search, int nprobe, mr_err *e) {
    retr_faiss *rf = rf_of(r, e);
    if (!rf) return e ? e->code : MR_EINVAL;
    if (ef_search < 0 || nprobe < 0)
        return mr_err_set(e, MR_EINVAL, "retriever '%s': negative ef_search or nprobe", r->name);
    pthread_mutex_lock(&rf->writer);
    pthread_rwlock_wrlock(&rf->lock);
    int old_ef = rf->ef_search, old_np = rf->nprobe;
    if (ef_search) rf->ef_search = ef_search;
    if (nprobe) rf->nprobe = nprobe;
    int rc = retr_faiss_apply_params(rf, rf->index, e);
    if (rc) {
        rf->ef_search = old_ef;
        rf->nprobe = old_np;
    }
    pthread_rwlock_unlock(&rf->lock);
    pthread_mutex_unlock(&rf->writer);
    return rc;
}

static int rf_check_vectors(retr_faiss *rf, const float *x, int64_t n, mr_err *e) {
    if (n <= 0)
        return mr_err_set(e, MR_EINVAL, "retriever '%s': %lld vectors", rf->base.name,
                          (long long)n);
    if (!x) return mr_err_set(e, MR_EINVAL, "retriever '%s': vectors are NULL", rf->base.name);
    if (!mr_all_finite(x, (size_t)n * (size_t)rf->base.dim))
        return mr_err_set(e, MR_EINVAL, "retriever '%s': vectors contain NaN or infinity",
                          rf->base.name);
    if (rf->read_only)
        return mr_err_set(e, MR_ESTATE, "retriever '%s' was loaded read-only (mmap)",
                          rf->base.name);
    return 0;
}

int retr_faiss_train(mr_retr *r, const float *x, int64_t n, mr_err *e) {
    retr_faiss *rf = rf_of(r, e);
    if (!rf) return e ? e->code : MR_EINVAL;
    int rc = rf_check_vectors(rf, x, n, e);
    if (rc) return rc;
    pthread_mutex_lock(&rf->writer);
    pthread_rwlock_wrlock(&rf->lock); /* an untrained index holds no items: nothing to read */
    if (!faiss_Index_is_trained(rf->index) && faiss_Index_train(rf->index, n, x))
        rc = retr_faiss_err(e, rf, "train");
    pthread_rwlock_unlock(&rf->lock);
    pthread_mutex_unlock(&rf->writer);
    return rc;
}

static int rf_grow_slots(retr_faiss *rf, int64_t need) {
    if (need <= rf->cap_slots) return 0;
    int64_t cap = rf->cap_slots ? rf->cap_slots : 1024;
    while (cap < need) cap *= 2;
    int64_t *p = realloc(rf->slot_ext, (size_t)cap * sizeof *p);
    if (!p) return MR_ENOMEM;
    rf->slot_ext = p;
    rf->cap_slots = cap;
    return 0;
}

/* Remove labels from FAISS (removable indexes only). */
static int rf_remove_labels(retr_faiss *rf, const idx_t *labels, int64_t n, mr_err *e) {
    if (n == 0) return 0;
    FaissIDSelectorBatch *sel = NULL;
    if (faiss_IDSelectorBatch_new(&sel, (size_t)n, labels))
        return retr_faiss_err(e, rf, "IDSelectorBatch_new");
    size_t nrem = 0;
    int rc = 0;
    if (faiss_Index_remove_ids(rf->index, (FaissIDSelector *)sel, &nrem))
        rc = retr_faiss_err(e, rf, "remove_ids");
    faiss_IDSelector_free((FaissIDSelector *)sel);
    return rc;
}

/* Mark the old slots of replaced/deleted items dead: tombstones, or removed
 * from FAISS. olds (n) are slots with slot_ext already set to -1. */
static int rf_retire(retr_faiss *rf, const idx_t *olds, int64_t n, mr_err *e) {
    if (rf->tombstones) {
        rf->n_dead += n;
        return 0;
    }
    return rf_remove_labels(rf, olds, n, e);
}

/* One batch of an upsert, under the write lock. */
static int rf_add_batch(retr_faiss *rf, const float *x, const int64_t *ids, int64_t n,
                        idx_t *labels, idx_t *olds, int64_t *prev, mr_err *e) {
    if (rf_grow_slots(rf, rf->n_slots + n))
        return mr_err_set(e, MR_ENOMEM, "retriever '%s': out of memory", rf->base.name);
    int64_t base = rf->n_slots, nold = 0;
    for (int64_t i = 0; i < n; i++) {
        prev[i] = retr_idmap_get(&rf->map, ids[i]);
        labels[i] = base + i;
        rf->slot_ext[base + i] = ids[i];
        if (retr_idmap_put(&rf->map, ids[i], base + i)) {
            for (int64_t j = i; j >= 0; j--) { /* undo this batch */
                if (prev[j] >= 0) retr_idmap_put(&rf->map, ids[j], prev[j]);
                else if (j < i) retr_idmap_del(&rf->map, ids[j]);
            }
            return mr_err_set(e, MR_ENOMEM, "retriever '%s': out of memory", rf->base.name);
        }
    }
    rf->n_slots = base + n;
    if (faiss_Index_add_with_ids(rf->index, n, x, labels)) {
        int rc = retr_faiss_err(e, rf, "add_with_ids");
        for (int64_t j = n - 1; j >= 0; j--) {
            if (prev[j] >= 0) retr_idmap_put(&rf->map, ids[j], prev[j]);
            else retr_idmap_del(&rf->map, ids[j]);
        }
        rf->n_slots = base;
        return rc;
    }
    for (int64_t i = 0; i < n; i++) {
        if (prev[i] < 0 || rf->slot_ext[prev[i]] < 0) continue; /* new, or a repeat in batch */
        rf->slot_ext[prev[i]] = -1;
        olds[nold++] = prev[i];
    }
    return rf_retire(rf, olds, nold, e);
}

static int rf_need_rebuild(const retr_faiss *rf) {
    if (!rf->tombstones || rf->n_dead == 0) return 0;
    return (double)rf->n_dead >
           (double)rf->rebuild_threshold * (double)(rf->n_slots > 0 ? rf->n_slots : 1);
}

int retr_faiss_add(mr_retr *r, const float *x, const int64_t *ids, int64_t n, mr_err *e) {
    retr_faiss *rf = rf_of(r, e);
    if (!rf) return e ? e->code : MR_EINVAL;
    int rc = rf_check_vectors(rf, x, n, e);
    if (rc) return rc;
    if (!ids) return mr_err_set(e, MR_EINVAL, "retriever '%s': ids are NULL", r->name);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0)
            return mr_err_set(e, MR_EINVAL, "retriever '%s': item id %lld is negative", r->name,
                              (long long)ids[i]);
    int64_t bs = rf->add_batch;
    idx_t *labels = malloc((size_t)bs * sizeof *labels);
    idx_t *olds = malloc((size_t)bs * sizeof *olds);
    int64_t *prev = malloc((size_t)bs * sizeof *prev);
    if (!labels || !olds || !prev) {
        rc = mr_err_set(e, MR_ENOMEM, "retriever '%s': out of memory", r->name);
        goto out;
    }
    pthread_mutex_lock(&rf->writer);
    if (!faiss_Index_is_trained(rf->index)) {
        rc = mr_err_set(e, MR_ESTATE, "retriever '%s': index '%s' must be trained before add",
                        r->name, rf->factory);
    }
    for (int64_t at = 0; !rc && at < n; at += bs) {
        int64_t m = n - at < bs ? n - at : bs;
        pthread_rwlock_wrlock(&rf->lock);
        rc = rf_add_batch(rf, x + (size_t)at * (size_t)r->dim, ids + at, m, labels, olds, prev, e);
        pthread_rwlock_unlock(&rf->lock);
    }
    if (!rc && rf_need_rebuild(rf)) rc = retr_faiss_rebuild_locked(rf, e);
    pthread_mutex_unlock(&rf->writer);
out:
    free(labels);
    free(olds);
    free(prev);
    return rc;
}

int retr_faiss_remove(mr_retr *r, const int64_t *ids, int64_t n, int64_t *n_removed, mr_err *e) {
    retr_faiss *rf = rf_of(r, e);
    if (!rf) return e ? e->code : MR_EINVAL;
    if (n_removed) *n_removed = 0;
    if (n < 0 || (n > 0 && !ids))
        return mr_err_set(e, MR_EINVAL, "retriever '%s': bad id list", r->name);
    if (rf->read_only)
        return mr_err_set(e, MR_ESTATE, "retriever '%s' was loaded read-only (mmap)", r->name);
    if (n == 0) return 0;
    idx_t *olds = malloc((size_t)n * sizeof *olds);
    if (!olds) return mr_err_set(e, MR_ENOMEM, "retriever '%s': out of memory", r->name);
    pthread_mutex_lock(&rf->writer);
    /* The map changes only under the writer mutex: without any id held
     * here, answer without the write lock (a live upsert asks every
     * expert to drop the ids it placed elsewhere; most hold none). */
    int64_t held = 0;
    for (int64_t i = 0; i < n && !held; i++) held = retr_idmap_get(&rf->map, ids[i]) >= 0;
    if (!held) {
        pthread_mutex_unlock(&rf->writer);
        free(olds);
        return 0;
    }
    pthread_rwlock_wrlock(&rf->lock);
    int64_t nold = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t slot = retr_idmap_get(&rf->map, ids[i]);
        if (slot < 0) continue;
        retr_idmap_del(&rf->map, ids[i]);
        rf->slot_ext[slot] = -1;
        olds[nold++] = slot;
    }
    int rc = rf_retire(rf, olds, nold, e);
    pthread_rwlock_unlock(&rf->lock);
    if (!rc && n_removed) *n_removed = nold;
    if (!rc && rf_need_rebuild(rf)) rc = retr_faiss_rebuild_locked(rf, e);
    pthread_mutex_unlock(&rf->writer);
    free(olds);
    return rc;
}

int retr_faiss_rebuild(mr_retr *r, mr_err *e) {
    retr_faiss *rf = rf_of(r, e);
    if (!rf) return e ? e->code : MR_EINVAL;
    if (rf->read_only)
        return mr_err_set(e, MR_ESTATE, "retriever '%s' was loaded read-only (mmap)", r->name);
    pthread_mutex_lock(&rf->writer);
    int rc = rf->tombstones ? retr_faiss_rebuild_locked(rf, e) : 0;
    pthread_mutex_unlock(&rf->writer);
    return rc;
}

static int rf_search(mr_retr *r, const float *q, int nq, int k, const retr_user *user, int64_t *ids,
                     float *scores, mr_err *e) {
    (void)user;
    retr_faiss *rf = (retr_faiss *)r;
    if (rf->omp_threads > 0) omp_set_num_threads(rf->omp_threads);
    pthread_rwlock_rdlock(&rf->lock);
    int64_t extra = rf->n_dead < k ? rf->n_dead : k;
    int64_t fetch = k + extra, ntotal = faiss_Index_ntotal(rf->index);
    idx_t *labels = NULL;
    float *dist = NULL;
    int rc = 0;
    for (;;) {
        idx_t *l2 = realloc(labels, (size_t)nq * (size_t)fetch * sizeof *labels);
        if (l2) labels = l2;
        float *d2 = realloc(dist, (size_t)nq * (size_t)fetch * sizeof *dist);
        if (d2) dist = d2;
        if (!l2 || !d2) {
            rc = mr_err_set(e, MR_ENOMEM, "retriever '%s': out of memory", r->name);
            goto out;
        }
        if (faiss_Index_search(rf->index, nq, q, fetch, dist, labels)) {
            rc = retr_faiss_err(e, rf, "search");
            goto out;
        }
        int short_rows = 0;
        for (int i = 0; i < nq; i++) {
            const idx_t *lab = labels + (size_t)i * (size_t)fetch;
            const float *d = dist + (size_t)i * (size_t)fetch;
            int64_t *oid = ids + (size_t)i * (size_t)k;
            float *osc = scores + (size_t)i * (size_t)k;
            int got = 0;
            for (int64_t t = 0; t < fetch && got < k; t++) {
                if (lab[t] < 0 || lab[t] >= rf->n_slots) continue;
                int64_t ext = rf->slot_ext[lab[t]];
                if (ext < 0) continue; /* tombstone */
                oid[got] = ext;
                osc[got] = rf->metric == RETR_METRIC_IP ? d[t] : -d[t];
                got++;
            }
            retr_fill_missing(oid, osc, got, k);
            short_rows += got < k;
        }
        /* More than `extra` tombstones among a query's nearest (deletes
         * clustered around it) leave it short although live items remain:
         * fetch more, at most the whole index. */
        if (!short_rows || rf->n_dead == 0 || fetch >= ntotal) break;
        fetch = fetch * 2 < ntotal ? fetch * 2 : ntotal;
    }
out:
    pthread_rwlock_unlock(&rf->lock);
    free(labels);
    free(dist);
    return rc;
}

int retr_faiss_stats_get(mr_retr *r, retr_faiss_stats *st, mr_err *e) {
    retr_faiss *rf = rf_of(r, e);
    if (!rf) return e ? e->code : MR_EINVAL;
    pthread_rwlock_rdlock(&rf->lock);
    st->n_live = rf->map.n;
    st->n_dead = rf->n_dead;
    st->ntotal = faiss_Index_ntotal(rf->index);
    st->is_trained = faiss_Index_is_trained(rf->index);
    pthread_rwlock_unlock(&rf->lock);
    st->n_rebuilds = atomic_load(&rf->n_rebuilds);
    st->tombstones = rf->tombstones;
    st->read_only = rf->read_only;
    return 0;
}

void *retr_faiss_raw_index(mr_retr *r) {
    if (!r || r->kind != RETR_FAISS) return NULL;
    return ((retr_faiss *)r)->index;
}

const retr_ops retr_faiss_ops = {rf_search, rf_size, rf_free};
