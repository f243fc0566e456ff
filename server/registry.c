/* registry.c — see registry.h.
 *
 * The current-version pointers are guarded by one mutex held only to read
 * or swap a pointer and bump a reference count, never while loading: a
 * reload reads safetensors for seconds without stalling requests. Reference
 * counts are atomics; the version is freed by whichever thread drops the
 * last reference, which is the reload itself when no request holds it.
 */
#include "registry.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/name.h"
#include "server/remote_expert.h"

struct mr_registry {
    char root[4096];
    char default_name[64];
    mr_pool *pool;             /* experts of retriever sets run on it */
    mr_remotes *remotes;       /* owned: channels of remote experts, or NULL */
    int precision;             /* moe_precision override, -1 = model's own */
    pthread_mutex_t mu;        /* guards cur[] pointers */
    pthread_mutex_t reload_mu; /* one reload at a time  */
    pthread_mutex_t live_mu;   /* live writes vs reload swaps (registry.h) */
    mr_version_hook hook;      /* replay onto a reloaded version, or NULL */
    void *hook_arg;
    int n;
    char names[MR_MAX_MODELS][64];
    mr_model_ref *cur[MR_MAX_MODELS];
    /* model directory polling (mr_registry_poll_start) */
    pthread_t poll_th;
    int poll_s, poll_started, poll_stop; /* poll_stop guarded by poll_mu */
    pthread_mutex_t poll_mu;
    pthread_cond_t poll_cv;
    char poll_err[MR_MAX_MODELS]
                 [MR_ERR_MSG_MAX]; /* last load error logged per model (poll thread) */
    mr_store *st;                  /* store tables live here; NULL = none */
    char data_dir[4096];
    pthread_mutex_t tab_mu; /* guards tab_name/tab_uses and drops */
    int closing;            /* registry free: keep the tables for a restart */
    char tab_name[STORE_MAX_TABLES][STORE_TABLE_NAME_MAX];
    int tab_uses[STORE_MAX_TABLES]; /* loaded versions using the table */
};

/* Store-table use counts: a version counts its tables before it creates
 * them and uncounts them when freed; the last use drops the table. Under
 * tab_mu, so a table is never dropped between a new version's count and
 * its use of it (a Reload back to a version still draining). */
static int tab_use(mr_registry *r, const char *name, int delta, mr_err *e) {
    int rc = MR_OK, slot = -1, freeslot = -1;
    pthread_mutex_lock(&r->tab_mu);
    for (int i = 0; i < STORE_MAX_TABLES; i++) {
        if (r->tab_uses[i] && !strcmp(r->tab_name[i], name)) slot = i;
        if (!r->tab_uses[i] && freeslot < 0) freeslot = i;
    }
    if (delta > 0) {
        if (slot < 0 && freeslot < 0)
            rc = mr_err_set(e, MR_ENOMEM, "more than %d store tables in use", STORE_MAX_TABLES);
        else if (slot < 0) memcpy(r->tab_name[slot = freeslot], name, STORE_TABLE_NAME_MAX);
        if (slot >= 0) r->tab_uses[slot]++;
    } else if (slot >= 0 && --r->tab_uses[slot] == 0 && !r->closing && r->st) {
        mr_err de;
        if (emb_table_drop(r->st, name, &de) == MR_OK)
            mr_info("store table %s dropped (no loaded version uses it)", name);
        else if (de.code != MR_ENOTFOUND) mr_warn("store table %s: drop failed: %s", name, de.msg);
    }
    pthread_mutex_unlock(&r->tab_mu);
    return rc;
}

static void ref_free(mr_model_ref *m) {
    for (int i = 0; i < m->npool; i++) moe_scorer_free(m->pool[i]);
    pthread_mutex_destroy(&m->pool_mu);
    retr_set_free(m->retrievers);
    moe_model_free(m->model); /* before the drop: no row source is left */
    for (int i = 0; m->reg && i < MOE_MAX_TABLES; i++)
        if (m->stabs[i].name[0]) tab_use(m->reg, m->stabs[i].name, -1, NULL);
    free(m);
}

void mr_model_release(mr_model_ref *m) {
    if (m && atomic_fetch_sub(&m->refs, 1) == 1) ref_free(m);
}

/* Count, create, fill and attach the version's store tables. */
static int load_store_tables(mr_registry *r, mr_model_ref *m, const char *dir, mr_err *e) {
    moe_model *mm = m->model;
    for (int i = 0; i < mm->n_tables; i++) {
        if (mm->tables[i].storage != MOE_STORAGE_STORE || !r->st) continue;
        char nm[STORE_TABLE_NAME_MAX];
        int rc = mr_store_table_name(nm, m->name, m->version, mm->tables[i].name, e);
        if (!rc) rc = tab_use(r, nm, +1, e);
        if (rc) return rc;
        memcpy(m->stabs[i].name, nm, sizeof nm); /* counted: ref_free uncounts */
    }
    return mr_store_tables_attach(mm, dir, m->name, m->version, r->st, r->data_dir, m->stabs, e);
}

static int load_version(mr_registry *r, const char *root, const char *name, const char *version,
                        mr_pool *pool, mr_remotes *remotes, int precision, mr_model_ref **out,
                        mr_err *e) {
    char dir[4096 + 160], latest[4096 + 200], ver[32];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    if (!version || !version[0]) { /* the newest version's directory path */
        int rc = moe_model_latest_version(dir, latest, sizeof latest, e);
        if (rc) return mr_err_wrap(e, "model '%s'", name);
        const char *base = strrchr(latest, '/');
        base = base ? base + 1 : latest;
        if (strlen(base) >= sizeof ver)
            return mr_err_set(e, MR_EINVAL, "model '%s': version name too long", name);
        memcpy(ver, base, strlen(base) + 1);
    } else {
        if (!mr_file_name_ok(version, sizeof ver))
            return mr_err_set(e, MR_EINVAL, "model '%s': bad version '%.40s'", name, version);
        snprintf(ver, sizeof ver, "%s", version);
    }
    snprintf(dir, sizeof dir, "%s/%s/%s", root, name, ver);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return mr_err_set(e, MR_ENOTFOUND, "model '%s' has no version '%s'", name, ver);
    mr_model_ref *m = calloc(1, sizeof *m);
    if (!m) return mr_err_set(e, MR_ENOMEM, "out of memory");
    m->reg = r;
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->version, sizeof m->version, "%s", ver);
    pthread_mutex_init(&m->pool_mu, NULL);
    int rc = moe_model_load_flags(&m->model, dir, MOE_LOAD_STORE_LAZY, e);
    if (!rc && precision >= 0 && (moe_precision)precision != m->model->precision)
        rc = moe_model_set_precision(m->model, (moe_precision)precision, e);
    if (!rc) rc = load_store_tables(r, m, dir, e);
    if (rc) {
        ref_free(m);
        return mr_err_wrap(e, "model '%s' version %s", name, ver);
    }
    if (m->model->precision_note[0])
        mr_warn("model %s version %s: %s", name, ver, m->model->precision_note);
    /* The version's retriever set (moerec index retrievers), when built. */
    char rdir[4096 + 220];
    snprintf(rdir, sizeof rdir, "%s/retrievers", dir);
    if (stat(rdir, &st) == 0 && S_ISDIR(st.st_mode) &&
        (rc = retr_set_load_remote(&m->retrievers, rdir, pool, RETR_SET_LOAD_OMP1,
                                   remotes ? mr_remote_expert_make : NULL, remotes, e))) {
        ref_free(m);
        return mr_err_wrap(e, "model '%s' version %s: retrievers", name, ver);
    }
    m->loaded_at_ms = mr_unix_ms();
    atomic_init(&m->refs, 1);
    *out = m;
    return MR_OK;
}

static int by_name(const void *a, const void *b) { return strcmp(a, b); }

/* Drop the store tables of versions no longer served (left by a process
 * that stopped before their last request, or by versions removed since). */
static int drop_unserved(mr_registry *r, mr_err *e) {
    char(*names)[STORE_TABLE_NAME_MAX] = malloc(STORE_MAX_TABLES * sizeof *names);
    if (!names) return mr_err_set(e, MR_ENOMEM, "out of memory");
    int n = emb_table_list(r->st, MR_STORE_TABLE_PREFIX, names, STORE_MAX_TABLES), rc = MR_OK;
    for (int i = 0; !rc && i < n && i < STORE_MAX_TABLES; i++) {
        int used = 0;
        for (int k = 0; k < STORE_MAX_TABLES; k++)
            used |= r->tab_uses[k] && !strcmp(r->tab_name[k], names[i]);
        if (used) continue;
        if ((rc = emb_table_drop(r->st, names[i], e)))
            mr_err_wrap(e, "dropping store table %s of a version no longer served", names[i]);
        else mr_info("store table %s dropped (its version is not served)", names[i]);
    }
    free(names);
    return rc;
}

int mr_registry_open(mr_registry **out, const char *root, const char *default_model,
                     const char *precision, mr_pool *pool, mr_remotes *remotes, mr_store *st,
                     const char *data_dir, mr_err *e) {
    *out = NULL;
    moe_precision prec = MOE_PREC_FP32;
    if (precision && precision[0] && moe_precision_parse(precision, &prec)) {
        mr_remotes_free(remotes);
        return mr_err_set(e, MR_EINVAL, "precision '%.32s' (fp32, bf16, int8, openblas_fp32)",
                          precision);
    }
    DIR *d = opendir(root);
    mr_registry *r = d ? calloc(1, sizeof *r) : NULL;
    if (!r) {
        mr_remotes_free(remotes);
        if (!d) return mr_err_set(e, MR_ENOTFOUND, "model root '%s' cannot be opened", root);
        closedir(d);
        return mr_err_set(e, MR_ENOMEM, "out of memory");
    }
    r->remotes = remotes;
    snprintf(r->root, sizeof r->root, "%s", root);
    r->pool = pool;
    r->st = st;
    snprintf(r->data_dir, sizeof r->data_dir, "%s", data_dir ? data_dir : "");
    pthread_mutex_init(&r->tab_mu, NULL);
    r->precision = precision && precision[0] ? (int)prec : -1;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->reload_mu, NULL);
    pthread_mutex_init(&r->live_mu, NULL);
    pthread_mutex_init(&r->poll_mu, NULL);
    pthread_cond_init(&r->poll_cv, NULL);
    struct dirent *de;
    int rc = MR_OK;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char dir[4096 + 300];
        snprintf(dir, sizeof dir, "%s/%s", root, de->d_name);
        struct stat st;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || strlen(de->d_name) >= 64) continue;
        if (r->n == MR_MAX_MODELS) {
            rc = mr_err_set(e, MR_ENOMEM, "more than %d models under '%s'", MR_MAX_MODELS, root);
            break;
        }
        memcpy(r->names[r->n++], de->d_name, strlen(de->d_name) + 1); /* < 64, checked above */
    }
    closedir(d);
    if (rc) goto err;
    qsort(r->names, (size_t)r->n, sizeof r->names[0], by_name);
    for (int i = 0; i < r->n; i++) {
        rc = load_version(r, root, r->names[i], NULL, r->pool, r->remotes, r->precision, &r->cur[i],
                          e);
        if (rc) goto err;
        mr_info("loaded model %s version %s (precision %s)", r->names[i], r->cur[i]->version,
                moe_precision_name(r->cur[i]->model->precision_used));
    }
    if (r->n == 0) {
        rc = mr_err_set(e, MR_ENOTFOUND,
                        "no model under '%s' (expected <name>/<version>/model.json)", root);
        goto err;
    }
    if (r->st && (rc = drop_unserved(r, e))) goto err;
    snprintf(r->default_name, sizeof r->default_name, "%s",
             default_model && default_model[0] ? default_model : r->names[0]);
    int found = 0;
    for (int i = 0; i < r->n; i++) found |= !strcmp(r->names[i], r->default_name);
    if (!found) {
        rc = mr_err_set(e, MR_ENOTFOUND, "default model '%s' is not under '%s'", r->default_name,
                        root);
        goto err;
    }
    *out = r;
    return MR_OK;
err:
    mr_registry_free(r);
    return rc;
}

void mr_registry_free(mr_registry *r) {
    if (!r) return;
    if (r->poll_started) { /* first: a poll may be reloading */
        pthread_mutex_lock(&r->poll_mu);
        r->poll_stop = 1;
        pthread_cond_broadcast(&r->poll_cv);
        pthread_mutex_unlock(&r->poll_mu);
        pthread_join(r->poll_th, NULL);
    }
    pthread_mutex_lock(&r->tab_mu);
    r->closing = 1; /* the served versions' tables stay for the next start */
    pthread_mutex_unlock(&r->tab_mu);
    for (int i = 0; i < r->n; i++) mr_model_release(r->cur[i]);
    mr_remotes_free(r->remotes); /* after the experts that use its channels */
    pthread_mutex_destroy(&r->tab_mu);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->reload_mu);
    pthread_mutex_destroy(&r->live_mu);
    pthread_mutex_destroy(&r->poll_mu);
    pthread_cond_destroy(&r->poll_cv);
    free(r);
}

static int find(const mr_registry *r, const char *name) {
    if (!name || !name[0]) name = r->default_name;
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->names[i], name)) return i;
    return -1;
}

int mr_registry_acquire(mr_registry *r, const char *name, mr_model_ref **out, mr_err *e) {
    int i = find(r, name);
    if (i < 0) return mr_err_set(e, MR_ENOTFOUND, "unknown model '%.64s'", name);
    pthread_mutex_lock(&r->mu);
    mr_model_ref *m = r->cur[i];
    atomic_fetch_add(&m->refs, 1);
    pthread_mutex_unlock(&r->mu);
    *out = m;
    return MR_OK;
}

int mr_model_scorer_get(mr_model_ref *m, moe_scorer **out, mr_err *e) {
    pthread_mutex_lock(&m->pool_mu);
    moe_scorer *s = m->npool ? m->pool[--m->npool] : NULL;
    pthread_mutex_unlock(&m->pool_mu);
    if (s) {
        *out = s;
        return MR_OK;
    }
    return moe_scorer_create(out, m->model, e);
}

void mr_model_scorer_put(mr_model_ref *m, moe_scorer *s) {
    pthread_mutex_lock(&m->pool_mu);
    if (m->npool < MR_SCORER_POOL) {
        m->pool[m->npool++] = s;
        s = NULL;
    }
    pthread_mutex_unlock(&m->pool_mu);
    if (s) moe_scorer_free(s);
}

int mr_registry_reload(mr_registry *r, const char *name, const char *version, char *prev, char *now,
                       mr_err *e) {
    int i = find(r, name);
    if (i < 0) return mr_err_set(e, MR_ENOTFOUND, "unknown model '%.64s'", name);
    pthread_mutex_lock(&r->reload_mu);
    mr_model_ref *fresh;
    int rc = load_version(r, r->root, r->names[i], version, r->pool, r->remotes, r->precision,
                          &fresh, e);
    if (rc) {
        pthread_mutex_unlock(&r->reload_mu);
        return rc; /* the serving version is untouched */
    }
    pthread_mutex_lock(&r->live_mu);
    if (r->hook && (rc = r->hook(fresh, r->hook_arg, e))) {
        pthread_mutex_unlock(&r->live_mu);
        pthread_mutex_unlock(&r->reload_mu);
        mr_err_wrap(e, "model '%s' version %s: live catalogue replay", r->names[i], fresh->version);
        mr_model_release(fresh);
        return rc;
    }
    pthread_mutex_lock(&r->mu);
    mr_model_ref *old = r->cur[i];
    r->cur[i] = fresh;
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_unlock(&r->live_mu);
    snprintf(prev, 32, "%s", old->version);
    snprintf(now, 32, "%s", fresh->version);
    mr_info("model %s: version %s -> %s", r->names[i], old->version, fresh->version);
    mr_model_release(old);
    pthread_mutex_unlock(&r->reload_mu);
    return MR_OK;
}

void mr_registry_live_lock(mr_registry *r, int lock) {
    if (lock) pthread_mutex_lock(&r->live_mu);
    else pthread_mutex_unlock(&r->live_mu);
}

int mr_registry_each(mr_registry *r, mr_version_hook fn, void *arg, mr_err *e) {
    for (int i = 0; i < r->n; i++) {
        pthread_mutex_lock(&r->mu);
        mr_model_ref *m = r->cur[i];
        atomic_fetch_add(&m->refs, 1);
        pthread_mutex_unlock(&r->mu);
        int rc = fn(m, arg, e);
        mr_model_release(m);
        if (rc) return rc;
    }
    return MR_OK;
}

int mr_registry_set_live(mr_registry *r, mr_version_hook hook, void *arg, mr_err *e) {
    pthread_mutex_lock(&r->live_mu);
    r->hook = hook;
    r->hook_arg = arg;
    int rc = hook ? mr_registry_each(r, hook, arg, e) : MR_OK;
    pthread_mutex_unlock(&r->live_mu);
    return rc;
}

int mr_registry_count(const mr_registry *r) { return r->n; }
const char *mr_registry_default(const mr_registry *r) { return r->default_name; }

int mr_registry_poll(mr_registry *r) {
    int swapped = 0;
    for (int i = 0; i < r->n; i++) {
        char dir[4096 + 80], latest[4096 + 200], serving[32];
        snprintf(dir, sizeof dir, "%s/%s", r->root, r->names[i]);
        mr_err e = {0};
        if (moe_model_latest_version(dir, latest, sizeof latest, &e))
            continue; /* none on disk now */
        const char *ver = strrchr(latest, '/') + 1;
        pthread_mutex_lock(&r->mu);
        snprintf(serving, sizeof serving, "%s", r->cur[i]->version);
        pthread_mutex_unlock(&r->mu);
        if (!strcmp(ver, serving)) {
            r->poll_err[i][0] = 0;
            continue;
        }
        char prev[32], now[32];
        if (mr_registry_reload(r, r->names[i], ver, prev, now, &e) == MR_OK) {
            mr_info("model_poll_s: model %s now serves version %s (was %s)", r->names[i], now,
                    prev);
            r->poll_err[i][0] = 0;
            swapped++;
        } else if (strcmp(e.msg, r->poll_err[i])) { /* log each distinct failure once */
            mr_warn("model_poll_s: model %s version %s not loaded (version %s keeps serving; tried "
                    "again every poll): %s",
                    r->names[i], ver, serving, e.msg);
            snprintf(r->poll_err[i], sizeof r->poll_err[i], "%s", e.msg);
        }
    }
    return swapped;
}

static void *registry_poll_main(void *arg) {
    mr_registry *r = arg;
    pthread_mutex_lock(&r->poll_mu);
    while (!r->poll_stop) {
        int64_t until = mr_unix_ms() + (int64_t)r->poll_s * 1000;
        struct timespec ts = {until / 1000, (until % 1000) * 1000000L};
        while (!r->poll_stop && pthread_cond_timedwait(&r->poll_cv, &r->poll_mu, &ts) == 0) {
        }
        if (r->poll_stop) break;
        pthread_mutex_unlock(&r->poll_mu);
        mr_registry_poll(r);
        pthread_mutex_lock(&r->poll_mu);
    }
    pthread_mutex_unlock(&r->poll_mu);
    return NULL;
}

int mr_registry_poll_start(mr_registry *r, int seconds, mr_err *e) {
    if (seconds <= 0 || r->poll_started) return 0;
    r->poll_s = seconds;
    if (pthread_create(&r->poll_th, NULL, registry_poll_main, r) != 0)
        return mr_err_set(e, MR_EINTERNAL, "model_poll_s: cannot start the polling thread");
    r->poll_started = 1;
    return 0;
}

mr_remotes *mr_registry_remotes(const mr_registry *r) { return r ? r->remotes : NULL; }
