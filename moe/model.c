/* model.c — model lifecycle: build from model.json, load and save a
 * version directory, value -> embedding-row hashing.
 *
 * Loading is strict: the safetensors file must hold exactly the tensors the
 * model.json architecture implies (every "emb.<table>" and every network
 * tensor), each F32 with the expected shape, and all values finite. A
 * mismatch is an error naming the tensor, so a model exported from PyTorch
 * with a wrong layout fails at load, not with silent garbage at serve time.
 */
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/atomic_file.h"
#include "common/read_file.h"
#include "common/csv.h"
#include "common/rng.h"
#include "common/tensor.h"
#include "hashing/idhash.h"
#include "moe/model_int.h"
#include "moe/model_maps.h"
#include "moe/safetensors.h"

void moe_model_free(moe_model *m) {
    if (!m) return;
    moe_dnn_free(m->dnn, m->net);
    for (int i = 0; i < m->n_tables; i++) {
        idhash_mapper_free(m->tables[i].map);
        graphhash_map_free(m->tables[i].gmap);
        mr_floats_free(m->tables[i].data);
    }
    moe_net_free(m->net);
    free(m->train_json);
    free(m);
}

/* Build from model.json; init_tables = 0 leaves the tables zero (a load
 * overwrites every row, and drawing normals for a table of 10^8 floats costs
 * seconds on every reload). */
static int model_build(moe_model **out, const char *json_text, uint64_t seed, int init_tables,
                       int flags, mr_err *e) {
    *out = NULL;
    moe_model *m = calloc(1, sizeof *m);
    if (!m) return mr_err_set(e, MR_ENOMEM, "moe_model: out of memory");
    moe_arch arch;
    int rc = moe_model_parse_json(m, &arch, json_text, e);
    if (rc) goto err;
    moe_model_index_fields(m);
    rc = moe_net_create(&m->net, &arch, seed, e);
    if (rc) {
        mr_err_wrap(e, "model.json");
        goto err;
    }
    mr_rng r;
    mr_rng_seed(&r, seed ^ 0x5eedf00dULL);
    for (int i = 0; i < m->n_tables; i++) {
        moe_table *t = &m->tables[i];
        /* mapped kinds hash (their fallback) until a mapping is attached */
        rc = t->kind == IDHASH_DOUBLE || t->kind == IDHASH_DOUBLE_GRAPH
                 ? idhash_mapper_create_double(&t->map, (uint64_t)t->rows, t->seed, t->seed2, e)
                 : idhash_mapper_create_hash(&t->map, (uint64_t)t->rows, t->seed, e);
        if (rc) {
            mr_err_wrap(e, "table '%s'", t->name);
            goto err;
        }
        if ((flags & MOE_LOAD_STORE_LAZY) && t->storage == MOE_STORAGE_STORE)
            continue; /* rows: the store */
        t->data = mr_floats_alloc((size_t)t->rows * (size_t)t->dim);
        if (!t->data) {
            rc = mr_err_set(e, MR_ENOMEM, "table '%s': cannot allocate %ld x %d floats", t->name,
                            t->rows, t->dim);
            goto err;
        }
        if (init_tables) mr_rng_fill_normal(&r, t->data, t->rows * t->dim, 0.05f);
    }
    *out = m;
    return 0;
err:
    moe_model_free(m);
    return rc;
}

int moe_model_from_json(moe_model **out, const char *json_text, uint64_t seed, mr_err *e) {
    return model_build(out, json_text, seed, 1, 0, e);
}

static int load_tensor(float *dst, long n, int ndim, const int64_t *shape, const char *name,
                       const moe_st_file *st, const char *path, mr_err *e) {
    const moe_st_entry *en = moe_st_find(st, name);
    if (!en) return mr_err_set(e, MR_ECORRUPT, "%s: tensor '%s' is missing", path, name);
    int same = en->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = en->shape[d] == shape[d];
    if (!same) {
        char want[64], got[64];
        int o = 0;
        for (int d = 0; d < ndim; d++)
            o += snprintf(want + o, sizeof want - (size_t)o, "%s%lld", d ? "," : "",
                          (long long)shape[d]);
        o = 0;
        got[0] = 0;
        for (int d = 0; d < en->ndim && o < 60; d++)
            o += snprintf(got + o, sizeof got - (size_t)o, "%s%lld", d ? "," : "",
                          (long long)en->shape[d]);
        return mr_err_set(e, MR_ECORRUPT, "%s: tensor '%s' has shape [%s], model.json implies [%s]",
                          path, name, got, want);
    }
    if (!dst) return 0; /* a lazily loaded store table: shape only (ingestion checks the values) */
    /* straight from the file into the model: a tensor is never held twice,
     * and the tensors of lazily loaded store tables are never read here */
    int rc = moe_st_pread(st, en, 0, (size_t)n, dst, e);
    if (rc) return mr_err_wrap(e, "%s", path);
    if (!mr_all_finite(dst, (size_t)n))
        return mr_err_set(e, MR_ECORRUPT, "%s: tensor '%s' holds NaN or Inf", path, name);
    return 0;
}

int moe_model_load(moe_model **out, const char *dir, mr_err *e) {
    return moe_model_load_flags(out, dir, 0, e);
}

int moe_model_load_flags(moe_model **out, const char *dir, int flags, mr_err *e) {
    *out = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.json", dir);
    char *text = mr_read_file(path, MOE_JSON_MAX, NULL, e);
    if (!text) return e ? e->code : MR_EINTERNAL;
    moe_model *m = NULL;
    int rc = model_build(&m, text, 0, 0, flags, e);
    free(text);
    if (rc) {
        mr_err_wrap(e, "%s", path);
        return rc;
    }
    snprintf(path, sizeof path, "%s/weights.safetensors", dir);
    moe_st_file st;
    rc = moe_st_open(&st, path, e);
    if (rc) goto err;
    int expected = m->n_tables + m->net->n_tensors;
    for (int i = 0; rc == 0 && i < m->n_tables; i++) {
        char name[MOE_NAME_MAX + 8];
        snprintf(name, sizeof name, "emb.%s", m->tables[i].name);
        int64_t shape[2] = {m->tables[i].rows, m->tables[i].dim};
        rc = load_tensor(m->tables[i].data, m->tables[i].rows * m->tables[i].dim, 2, shape, name,
                         &st, path, e);
    }
    for (int i = 0; rc == 0 && i < m->net->n_tensors; i++) {
        const moe_tensor *t = &m->net->tensors[i];
        int64_t shape[2] = {t->shape[0], t->shape[1]};
        rc = load_tensor(t->data, t->n, t->ndim, shape, t->name, &st, path, e);
    }
    if (rc == 0 && st.n != expected) {
        for (int i = 0; i < st.n; i++) {
            const char *nm = st.entries[i].name;
            int emb = !strncmp(nm, "emb.", 4), known = !emb && moe_net_tensor(m->net, nm) != NULL;
            for (int t = 0; emb && !known && t < m->n_tables; t++)
                known = !strcmp(nm + 4, m->tables[t].name);
            if (!known) {
                rc = mr_err_set(e, MR_ECORRUPT,
                                "%s: tensor '%s' is not part of the model.json architecture", path,
                                nm);
                break;
            }
        }
    }
    moe_st_free(&st);
    if (rc == 0) rc = moe_model_maps_load(m, dir, e);
    if (rc) goto err;
    rc = moe_model_set_precision(m, m->precision, e);
    if (rc) goto err;
    *out = m;
    return 0;
err:
    moe_model_free(m);
    return rc;
}

int moe_model_set_precision(moe_model *m, moe_precision p, mr_err *e) {
    moe_dnn_free(m->dnn, m->net);
    m->dnn = NULL;
    m->precision_used = MOE_PREC_OPENBLAS_FP32;
    m->precision_note[0] = 0;
    if (p == MOE_PREC_OPENBLAS_FP32) {
        m->precision_used = p;
        return 0;
    }
    moe_precision got;
    int rc = moe_dnn_create(&m->dnn, m->net, p, &got, m->precision_note, sizeof m->precision_note,
                            e);
    if (rc) return mr_err_wrap(e, "model '%s': precision %s", m->name, moe_precision_name(p));
    m->precision_used = got;
    return 0;
}

int moe_model_save(const moe_model *m, const char *dir, mr_err *e) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return mr_err_set(e, MR_EINTERNAL, "%s: %s", dir, strerror(errno));
    int n = m->n_tables + m->net->n_tensors;
    moe_st_tensor *ts = calloc((size_t)n, sizeof *ts);
    char(*names)[MOE_NAME_MAX + 8] = calloc((size_t)m->n_tables + 1, sizeof *names);
    if (!ts || !names) {
        free(ts);
        free(names);
        return mr_err_set(e, MR_ENOMEM, "out of memory");
    }
    for (int i = 0; i < m->n_tables; i++) {
        snprintf(names[i], sizeof names[i], "emb.%s", m->tables[i].name);
        ts[i] = (moe_st_tensor){.name = names[i],
                                .ndim = 2,
                                .shape = {m->tables[i].rows, m->tables[i].dim},
                                .data = m->tables[i].data};
    }
    for (int i = 0; i < m->net->n_tensors; i++) {
        const moe_tensor *t = &m->net->tensors[i];
        ts[m->n_tables + i] = (moe_st_tensor){
            .name = t->name, .ndim = t->ndim, .shape = {t->shape[0], t->shape[1]}, .data = t->data};
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/weights.safetensors", dir);
    const char *meta[] = {"format", "moerec.model", "arch", moe_arch_kind_name(m->net->arch.kind)};
    int rc = moe_st_write(path, ts, n, meta, 2, e);
    free(ts);
    free(names);
    if (rc) return rc;
    if ((rc = moe_model_maps_save(m, dir, e))) return rc;
    char *js = moe_model_to_json(m);
    if (!js) return mr_err_set(e, MR_ENOMEM, "out of memory");
    snprintf(path, sizeof path, "%s/model.json", dir);
    size_t jl = strlen(js);
    js[jl] = '\n'; /* the NUL's place: the file ends in a line end */
    rc = mr_write_file_atomic(path, js, jl + 1, e);
    free(js);
    return rc;
}

int moe_model_latest_version(const char *root, char *out, size_t outlen, mr_err *e) {
    DIR *d = opendir(root);
    if (!d) return mr_err_set(e, MR_ENOTFOUND, "%s: %s", root, strerror(errno));
    long best = -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        long v = strtol(de->d_name, &end, 10);
        if (end == de->d_name || *end || v < 0) continue;
        char p[4096];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s/model.json", root, de->d_name);
        if (stat(p, &sb) == 0 && v > best) best = v;
    }
    closedir(d);
    if (best < 0)
        return mr_err_set(e, MR_ENOTFOUND, "%s: no version directory with a model.json", root);
    snprintf(out, outlen, "%s/%ld", root, best);
    return 0;
}

/* The field index's slot hash: moerec's one string hash (xxh3, seed 0). */
static uint32_t field_hash(const char *name) {
    return (uint32_t)idhash_bytes(name, strlen(name), 0);
}

static const char *slot_name(const moe_model *m, int code) {
    return code > 0 ? m->cat[code - 1].name : m->num[-code - 1].name;
}

static void field_insert(moe_model *m, const char *name, int code) {
    uint32_t h = field_hash(name) & (MOE_FIELD_SLOTS - 1);
    for (; m->field_slot[h]; h = (h + 1) & (MOE_FIELD_SLOTS - 1))
        if (!strcmp(slot_name(m, m->field_slot[h]), name)) return; /* the first of a name wins */
    m->field_slot[h] = (int16_t)code;
}

void moe_model_index_fields(moe_model *m) {
    memset(m->field_slot, 0, sizeof m->field_slot);
    for (int i = 0; i < m->n_cat; i++) field_insert(m, m->cat[i].name, i + 1);
    for (int i = 0; i < m->n_num; i++) field_insert(m, m->num[i].name, -(i + 1));
}

int moe_model_field(const moe_model *m, const char *name, int *numeric) {
    uint32_t h = field_hash(name) & (MOE_FIELD_SLOTS - 1);
    for (; m->field_slot[h]; h = (h + 1) & (MOE_FIELD_SLOTS - 1)) {
        int code = m->field_slot[h];
        if (!strcmp(slot_name(m, code), name)) {
            *numeric = code < 0;
            return code > 0 ? code - 1 : -code - 1;
        }
    }
    return -1;
}

int moe_model_task(const moe_model *m, const char *name) {
    for (int i = 0; i < m->n_tasks; i++)
        if (!strcmp(m->tasks[i].name, name)) return i;
    return -1;
}

int moe_model_label_rule(moe_model *m, const char *flag, const char *spec, int threshold,
                         mr_err *e) {
    const char *eq = strchr(spec, '=');
    char task[MOE_NAME_MAX];
    if (!eq || eq == spec || (size_t)(eq - spec) >= sizeof task)
        return mr_err_set(e, MR_EINVAL, "%s '%s': expected TASK=%s", flag, spec,
                          threshold ? "X" : "VALUE");
    memcpy(task, spec, (size_t)(eq - spec));
    task[eq - spec] = 0;
    int k = moe_model_task(m, task);
    if (k < 0)
        return mr_err_set(e, MR_EINVAL, "%s '%s': the model has no task '%s'", flag, spec, task);
    moe_task *t = &m->tasks[k];
    const char *v = eq + 1;
    if (!v[0] || strlen(v) >= sizeof t->positive)
        return mr_err_set(e, MR_EINVAL, "%s '%s': the value is empty or longer than %d bytes", flag,
                          spec, MOE_NAME_MAX - 1);
    if (threshold) {
        double x;
        if (mr_parse_double(v, &x) || !isfinite(x) || fabs(x) > FLT_MAX)
            return mr_err_set(e, MR_EINVAL, "%s '%s': '%s' is not a finite number", flag, spec, v);
        t->has_threshold = 1;
        t->threshold = (float)x;
        t->has_positive = 0;
        t->positive[0] = 0;
        return MR_OK;
    }
    if (t->kind != MOE_TASK_BINARY)
        return mr_err_set(e, MR_EINVAL, "%s '%s': task '%s' is not binary", flag, spec, task);
    t->has_positive = 1;
    snprintf(t->positive, sizeof t->positive, "%s", v);
    t->has_threshold = 0;
    return MR_OK;
}

int moe_model_label(const moe_model *m, int k, const char *cell, int has_num, double num, float *y,
                    mr_err *e) {
    const moe_task *t = &m->tasks[k];
    if (t->has_positive) {
        *y = !strcmp(cell, t->positive);
        return MR_OK;
    }
    if (!has_num)
        return mr_err_set(e, MR_EINVAL,
                          "task '%s': label column '%s' is not a number; for text labels pass "
                          "--label-positive %s=VALUE or set the task's \"positive\" in model.json",
                          t->name, t->label, t->name);
    if (t->has_threshold) {
        *y = num >= t->threshold ? 1.0f : 0.0f;
        return MR_OK;
    }
    if (t->kind == MOE_TASK_BINARY && num != 0.0 && num != 1.0)
        return mr_err_set(e, MR_EINVAL,
                          "task '%s' is binary but label is %g; pass --label-threshold %s=X "
                          "(label = value >= X) or set the task's \"threshold\"",
                          t->name, num, t->name);
    *y = (float)num;
    return MR_OK;
}

float moe_model_loss_weight(const moe_model *m, int k, int epoch) {
    return m->tasks[k].loss_weight * powf(m->tasks[k].loss_decay, (float)epoch);
}

void moe_model_set_row_source(moe_model *m, int t, moe_row_fetch_fn fetch, void *ctx) {
    m->tables[t].fetch = fetch;
    m->tables[t].fetch_ctx = ctx;
}

uint64_t moe_model_value_id(const moe_model *m, int f, const char *value, size_t len) {
    const moe_cat_field *c = &m->cat[f];
    return idhash_field(c->name, strlen(c->name), value, len, m->tables[c->table].seed);
}

int moe_model_value_rows(const moe_model *m, int f, const char *value, size_t len, uint64_t *rows) {
    return idhash_mapper_rows(m->tables[m->cat[f].table].map, moe_model_value_id(m, f, value, len),
                              rows);
}
