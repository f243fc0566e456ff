/* retr_faiss_io.c — FAISS retriever persistence and rebuild.
 *
 * Save writes two files next to the model version: `path` is the FAISS
 * index (faiss_write_index), `path.meta` holds what FAISS does not
 * know: the slot -> item id table, the settings and a checksum. Both go
 * through the atomic writer (common/atomic_file.h), so a crash never leaves a torn
 * file under the final name. Load can map IVF inverted lists read-only from
 * the file (FAISS's IO_FLAG_MMAP), which shares pages between processes.
 *
 * Rebuild (tombstone mode) is copy-on-write: reconstruct the live vectors
 * from the current index while readers keep searching it, build a fresh
 * index from the same factory string, then swap under a short write lock.
 *
 * meta layout (little-endian): "MRRFAISS" u32 version=2, u32 dim,
 * u32 metric, u32 tombstones, i32 ef_search, i32 nprobe, f32 threshold,
 * u32 len + factory bytes, u64 index file bytes, u64 xxh3-64 of the index
 * file, i64 n_slots, i64 n_dead, i64 slot_ext[n_slots], u64 xxh3 checksum
 * of everything before it. Version 2 (no index size and hash) and 1 (no
 * index size and hash, FNV-1a checksum) still load.
 *
 * The index file's size and hash are checked before FAISS parses it:
 * faiss_read_index_fname trusts its input (the fuzz target faiss_index
 * found a damaged IDMap that loads, matches dim and count, and then
 * crashes the first search), so a damaged or swapped file must never
 * reach it.
 */
#include "common/atomic_file.h"
#include "index/retrieval/retr_faiss_int.h"
#include "index/retrieval/retr_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

#define META_MAGIC "MRRFAISS"
#define META_VERSION 3u /* 3: index size + hash; 2: xxh3 checksum; 1: FNV-1a; all read */
/* FAISS 1.7.3's C++ IO_FLAG_MMAP (IO_FLAG_SKIP_IVF_DATA | 0x646f0000): the
 * C header's FAISS_IO_FLAG_MMAP (1) does not match what read_index tests. */
#define RF_IO_FLAG_MMAP (0x646f0000 | 8)

int retr_faiss_save(mr_retr *r, const char *path, mr_err *e) {
    if (!r || r->kind != RETR_FAISS || !path)
        return mr_err_set(e, MR_EINVAL, "retr_faiss_save: not a faiss retriever or NULL path");
    retr_faiss *rf = (retr_faiss *)r;
    char meta[4096];
    if (snprintf(meta, sizeof meta, "%s.meta", path) >= (int)sizeof meta)
        return mr_err_set(e, MR_EINVAL, "retriever '%s': path too long", r->name);
    retr_wbuf b = {0};
    mr_afile af;
    int rc = 0;
    pthread_mutex_lock(&rf->writer); /* no writes while saving; searches go on */
    if ((rc = mr_afile_open(&af, path, e))) goto out;
    if (faiss_write_index(rf->index, af.f)) {
        rc = retr_faiss_err(e, rf, "write_index");
        mr_afile_abort(&af);
        goto out;
    }
    if ((rc = mr_afile_commit(&af, e))) goto out;
    uint64_t fsum[2]; /* size, xxh3 of the index file just written */
    if ((rc = retr_file_hash(path, &fsum[0], &fsum[1], e))) goto out;
    uint32_t u[4] = {META_VERSION, (uint32_t)r->dim, (uint32_t)rf->metric,
                     (uint32_t)rf->tombstones};
    int32_t p[2] = {rf->ef_search, rf->nprobe};
    uint32_t flen = (uint32_t)strlen(rf->factory);
    int64_t n[2] = {rf->n_slots, rf->n_dead};
    int bad = retr_wbuf_put(&b, META_MAGIC, 8) || retr_wbuf_put(&b, u, sizeof u) ||
              retr_wbuf_put(&b, p, sizeof p) || retr_wbuf_put(&b, &rf->rebuild_threshold, 4) ||
              retr_wbuf_put(&b, &flen, 4) || retr_wbuf_put(&b, rf->factory, flen) ||
              retr_wbuf_put(&b, fsum, sizeof fsum) || retr_wbuf_put(&b, n, sizeof n) ||
              retr_wbuf_put(&b, rf->slot_ext, (size_t)rf->n_slots * sizeof(int64_t)) ||
              retr_wbuf_seal(&b);
    rc = retr_file_commit(&b, bad, meta, e);
out:
    pthread_mutex_unlock(&rf->writer);
    retr_wbuf_free(&b);
    return rc;
}

/* Parse path.meta into a fresh retr_faiss (no index yet); *fsum gets the
 * index file's size and hash ({0, 0} from a version-1 meta: unchecked). */
static int rf_read_meta(const char *meta, retr_faiss **out, const char *name, uint64_t fsum[2],
                        mr_err *e) {
    unsigned char *buf = NULL;
    retr_rbuf m;
    fsum[0] = fsum[1] = 0;
    int hashed = 1,
        rc = retr_file_open(meta, META_MAGIC, META_VERSION, "FAISS meta", &buf, &m, NULL);
    if (rc == MR_ECORRUPT) { /* maybe a version-2 or -1 file */
        hashed = 0;
        rc = retr_file_open(meta, META_MAGIC, 2, "FAISS meta", &buf, &m, e); /* or 1 */
    } else if (rc) {
        rc = retr_file_open(meta, META_MAGIC, META_VERSION, "FAISS meta", &buf, &m, e);
    }
    if (rc) return rc;
    uint32_t u[3], flen; /* dim, metric, tombstones */
    int32_t p[2];
    float thr;
    int64_t n[2];
    char factory[RETR_FAISS_FACTORY_MAX];
    retr_faiss *rf = NULL;
    if (retr_rbuf_take(&m, u, sizeof u) || retr_rbuf_take(&m, p, sizeof p) ||
        retr_rbuf_take(&m, &thr, 4) || retr_rbuf_take(&m, &flen, 4) || flen == 0 ||
        flen >= sizeof factory || retr_rbuf_take(&m, factory, flen))
        goto corrupt;
    factory[flen] = 0;
    if (hashed && (retr_rbuf_take(&m, fsum, 16) || fsum[0] == 0)) goto corrupt;
    /* the count is checked by division first: n_slots * 8 can wrap (fuzz
     * target retr_set: a count of 2^61 + 40 matched 320 bytes of slots,
     * and the slot array was allocated just as wrapped) */
    if (retr_rbuf_take(&m, n, sizeof n) || n[0] < 0 || n[1] < 0 || n[1] > n[0] ||
        (uint64_t)n[0] > (m.n - m.at) / 8 || (size_t)n[0] * 8 != m.n - m.at)
        goto corrupt;
    rf = retr_faiss_alloc(name, (int)u[0], factory, (retr_metric)u[1], e);
    if (!rf) {
        free(buf);
        return e ? e->code : MR_ECORRUPT;
    }
    rf->tombstones = u[2] != 0;
    rf->ef_search = p[0];
    rf->nprobe = p[1];
    rf->rebuild_threshold = thr;
    rf->n_dead = n[1];
    rf->cap_slots = n[0] > 0 ? n[0] : 1;
    rf->slot_ext = malloc((size_t)rf->cap_slots * sizeof *rf->slot_ext);
    if (!rf->slot_ext) {
        rc = mr_err_set(e, MR_ENOMEM, "out of memory loading %s", meta);
        goto err;
    }
    retr_rbuf_take(&m, rf->slot_ext, (size_t)n[0] * 8);
    rf->n_slots = n[0];
    for (int64_t s = 0; s < n[0]; s++) {
        if (rf->slot_ext[s] < 0) continue;
        if (retr_idmap_get(&rf->map, rf->slot_ext[s]) >= 0) goto corrupt; /* id twice */
        if (retr_idmap_put(&rf->map, rf->slot_ext[s], s)) {
            rc = mr_err_set(e, MR_ENOMEM, "out of memory loading %s", meta);
            goto err;
        }
    }
    free(buf);
    *out = rf;
    return 0;
corrupt:
    rc = mr_err_set(e, MR_ECORRUPT, "%s is not a valid moerec FAISS meta file (or is damaged)",
                    meta);
err:
    free(buf);
    if (rf) retr_faiss_ops.free(&rf->base);
    return rc;
}

int retr_faiss_load(mr_retr **out, const char *path, int flags, const retr_faiss_config *cfg,
                    mr_err *e) {
    if (!out || !path) return mr_err_set(e, MR_EINVAL, "retr_faiss_load: NULL argument");
    *out = NULL;
    const char *name = cfg && cfg->name ? cfg->name : NULL;
    char meta[4096], defname[RETR_NAME_MAX];
    if (snprintf(meta, sizeof meta, "%s.meta", path) >= (int)sizeof meta)
        return mr_err_set(e, MR_EINVAL, "path too long: %s", path);
    name = retr_file_name_or_stem(name, path, defname, sizeof defname);
    retr_faiss *rf = NULL;
    uint64_t fsum[2], got[2];
    int rc = rf_read_meta(meta, &rf, name, fsum, e);
    if (rc) return rc;
    if (fsum[0]) {
        if ((rc = retr_file_hash(path, &got[0], &got[1], e))) goto err;
        if (got[0] != fsum[0] || got[1] != fsum[1]) {
            rc = mr_err_set(e, MR_ECORRUPT,
                            "retriever '%s': %s does not match its meta file (%llu "
                            "bytes, checksum %s; expected %llu bytes): damaged or replaced",
                            name, path, (unsigned long long)got[0],
                            got[1] == fsum[1] ? "equal" : "differs", (unsigned long long)fsum[0]);
            goto err;
        }
    }
    int io = (flags & RETR_FAISS_LOAD_MMAP) ? (RF_IO_FLAG_MMAP | FAISS_IO_FLAG_READ_ONLY) : 0;
    if (faiss_read_index_fname(path, io, &rf->index)) {
        rc = mr_err_set(e, MR_ECORRUPT, "retriever '%s': cannot read FAISS index %s: %s", name,
                        path, faiss_get_last_error());
        goto err;
    }
    int64_t expect = rf->tombstones ? rf->n_slots : rf->map.n;
    if (faiss_Index_d(rf->index) != rf->base.dim || faiss_Index_ntotal(rf->index) != expect) {
        rc = mr_err_set(e, MR_ECORRUPT,
                        "retriever '%s': %s holds %lld vectors of dim %d, its "
                        "meta file expects %lld of dim %d",
                        name, path, (long long)faiss_Index_ntotal(rf->index),
                        faiss_Index_d(rf->index), (long long)expect, rf->base.dim);
        goto err;
    }
    if (cfg) {
        if (cfg->ef_search > 0) rf->ef_search = cfg->ef_search;
        if (cfg->nprobe > 0) rf->nprobe = cfg->nprobe;
        if (cfg->omp_threads > 0) rf->omp_threads = cfg->omp_threads;
        if (cfg->add_batch > 0) rf->add_batch = cfg->add_batch;
    }
    if ((rc = retr_faiss_apply_params(rf, rf->index, e))) goto err;
    rf->read_only = (flags & RETR_FAISS_LOAD_MMAP) != 0;
    *out = &rf->base;
    return 0;
err:
    retr_faiss_ops.free(&rf->base);
    return rc;
}

/* Copy every live vector out of rf->index into x (n_live, dim) and its item
 * id into ext, in label order. Reads only: safe beside concurrent searches. */
static int rf_collect_live(retr_faiss *rf, float *x, int64_t *ext, int64_t *n_out, mr_err *e) {
    int64_t n = 0, d = rf->base.dim;
    FaissIndexIDMap *im = faiss_IndexIDMap_cast(rf->index);
    if (im) { /* IDMap cannot reconstruct by id: walk its positions */
        idx_t *pos_label = NULL;
        size_t npos = 0;
        faiss_IndexIDMap_id_map(im, &pos_label, &npos);
        FaissIndex *sub = faiss_IndexIDMap_sub_index(im);
        for (size_t pos = 0; pos < npos; pos++) {
            idx_t lab = pos_label[pos];
            if (lab < 0 || lab >= rf->n_slots || rf->slot_ext[lab] < 0) continue;
            if (faiss_Index_reconstruct(sub, (idx_t)pos, x + n * d))
                return retr_faiss_err(e, rf, "reconstruct (rebuild)");
            ext[n++] = rf->slot_ext[lab];
        }
    } else {
        for (int64_t s = 0; s < rf->n_slots; s++) {
            if (rf->slot_ext[s] < 0) continue;
            if (faiss_Index_reconstruct(rf->index, s, x + n * d))
                return retr_faiss_err(e, rf, "reconstruct (rebuild)");
            ext[n++] = rf->slot_ext[s];
        }
    }
    *n_out = n;
    return 0;
}

int retr_faiss_rebuild_locked(retr_faiss *rf, mr_err *e) {
    int64_t n_live = rf->map.n, d = rf->base.dim, n = 0;
    size_t cap = (size_t)(n_live > 0 ? n_live : 1);
    float *x = malloc(cap * (size_t)d * sizeof *x);
    int64_t *ext = malloc(cap * sizeof *ext);
    idx_t *labels = malloc(cap * sizeof *labels);
    FaissIndex *fresh = NULL;
    retr_idmap map = {0};
    int rc = 0;
    if (!x || !ext || !labels || retr_idmap_init(&map, n_live)) {
        rc = mr_err_set(e, MR_ENOMEM, "retriever '%s': out of memory for rebuild", rf->base.name);
        goto out;
    }
    if ((rc = rf_collect_live(rf, x, ext, &n, e))) goto out;
    FaissMetricType m = rf->metric == RETR_METRIC_IP ? METRIC_INNER_PRODUCT : METRIC_L2;
    if (faiss_index_factory(&fresh, (int)d, rf->factory, m)) {
        rc = retr_faiss_err(e, rf, "index_factory (rebuild)");
        goto out;
    }
    if (!faiss_Index_is_trained(fresh) && n > 0 && faiss_Index_train(fresh, n, x)) {
        rc = retr_faiss_err(e, rf, "train (rebuild)");
        goto out;
    }
    for (int64_t i = 0; i < n; i++) {
        labels[i] = i;
        if (retr_idmap_put(&map, ext[i], i)) {
            rc = mr_err_set(e, MR_ENOMEM, "retriever '%s': out of memory", rf->base.name);
            goto out;
        }
    }
    if (n > 0 && faiss_Index_add_with_ids(fresh, n, x, labels)) {
        rc = retr_faiss_err(e, rf, "add_with_ids (rebuild)");
        goto out;
    }
    if ((rc = retr_faiss_apply_params(rf, fresh, e))) goto out;
    /* The swap: the only moment readers wait. */
    pthread_rwlock_wrlock(&rf->lock);
    FaissIndex *old = rf->index;
    int64_t *old_ext = rf->slot_ext;
    retr_idmap old_map = rf->map;
    rf->index = fresh;
    rf->slot_ext = ext;
    rf->cap_slots = (int64_t)cap;
    rf->n_slots = n;
    rf->n_dead = 0;
    rf->map = map;
    pthread_rwlock_unlock(&rf->lock);
    atomic_fetch_add(&rf->n_rebuilds, 1);
    fresh = old;
    ext = old_ext;
    map = old_map;
out:
    if (fresh) faiss_Index_free(fresh);
    free(x);
    free(ext);
    free(labels);
    retr_idmap_free(&map);
    return rc;
}
