/* retr_set.c — the retriever set: experts + router saved as one directory
 * with a JSON manifest (retr_set.h has the layout).
 *
 * The manifest is parsed with jansson and checked field by field against
 * fixed lists, so a typo ("top-p") or a field a newer writer added is an
 * error naming it rather than a silently ignored setting. Expert files are
 * loaded by the experts' own loaders (checksummed there); this file only
 * wraps their errors with the expert's name and file. Save builds the set
 * in "<dir>.tmp.<pid>" and swaps it in: rename when dir is absent,
 * renameat2(RENAME_EXCHANGE) when a set is already there (then the old one,
 * now under the temporary name, is removed).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* renameat2 */
#endif
#include "index/retrieval/retr_set.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomic_file.h"
#include "common/name.h"
#include "index/retrieval/retr_minhash.h"
#include "index/retrieval/retr_pop.h"

struct retr_set {
    retr_set_config cfg;          /* router defaults resolved */
    char fallback[RETR_NAME_MAX]; /* cfg.router.fallback points here */
    mr_router *rt;
    mr_retr *ex[ROUTER_MAX_EXPERTS]; /* (n) owned, in router order */
    retr_set_expert_info info[ROUTER_MAX_EXPERTS];
    int n;
    char column[RETR_NAME_MAX]; /* cfg.expert_column points here; "" = none */
    pthread_mutex_t live_mu;    /* serialises live upserts/deletes (retr_set_live.c) */
};

/* ---------------------------------------------------------------- names */

static const char *const retr_set_merge_names[] = {"norm", "rrf", "raw"};

const char *retr_set_merge_name(router_merge m) {
    return (unsigned)m < 3 ? retr_set_merge_names[m] : "?";
}

int retr_set_merge_parse(const char *s) {
    for (int i = 0; s && i < 3; i++)
        if (strcmp(s, retr_set_merge_names[i]) == 0) return i;
    return -1;
}

static const char *retr_set_kind_name(retr_kind k) {
    return k == RETR_FAISS        ? "faiss"
           : k == RETR_POPULARITY ? "popularity"
           : k == RETR_MINHASH    ? "minhash"
           : k == RETR_CALLBACK   ? "remote"
                                  : NULL;
}

static int retr_set_kind_parse(const char *s) {
    for (int k = RETR_FAISS; k <= RETR_CALLBACK; k++)
        if (strcmp(s, retr_set_kind_name((retr_kind)k)) == 0) return k;
    return -1;
}

static const char *retr_set_kind_ext(retr_kind k) {
    return k == RETR_FAISS ? "faiss" : k == RETR_POPULARITY ? "pop" : "minhash";
}

/* A file named in the manifest stays inside the set directory. */
static int retr_set_file_ok(const char *f) {
    return mr_file_name_ok(f, RETR_SET_FILE_MAX) && strcmp(f, RETR_SET_MANIFEST) &&
           strcmp(f, RETR_SET_PILOTS);
}

/* dir/file into out (PATH_MAX bytes), or MR_EINVAL when too long. */
static int retr_set_join(char *out, const char *dir, const char *file, mr_err *e) {
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, file);
    if (n < 0 || n >= PATH_MAX)
        return mr_err_set(e, MR_EINVAL, "retriever set: path too long: %s/%s", dir, file);
    return 0;
}

/* ------------------------------------------------------------ lifecycle */

int retr_set_create(retr_set **out, const retr_set_config *cfg, mr_pool *pool, mr_err *e) {
    if (!out || !cfg) return mr_err_set(e, MR_EINVAL, "retr_set_create: NULL argument");
    *out = NULL;
    if (cfg->dim < 1 || cfg->dim > RETR_FAISS_DIM_MAX)
        return mr_err_set(e, MR_EINVAL, "retriever set: dim %d not in [1, %d]", cfg->dim,
                          RETR_FAISS_DIM_MAX);
    if (cfg->metric != RETR_METRIC_IP && cfg->metric != RETR_METRIC_L2)
        return mr_err_set(e, MR_EINVAL, "retriever set: unknown metric %d", (int)cfg->metric);
    retr_set *s = calloc(1, sizeof *s);
    if (!s) return mr_err_set(e, MR_ENOMEM, "retriever set: out of memory");
    s->cfg = *cfg;
    s->cfg.router.dim = cfg->dim;
    /* the router defaults written out, so the manifest says what is in
     * force (a later change of a default does not move a saved set) */
    router_config_defaults(&s->cfg.router);
    if (cfg->router.fallback) {
        if (strlen(cfg->router.fallback) >= sizeof s->fallback) {
            free(s);
            return mr_err_set(e, MR_EINVAL, "retriever set: fallback name too long");
        }
        strcpy(s->fallback, cfg->router.fallback);
        s->cfg.router.fallback = s->fallback;
    }
    if (cfg->expert_column) {
        if (!*cfg->expert_column || strlen(cfg->expert_column) >= sizeof s->column) {
            free(s);
            return mr_err_set(e, MR_EINVAL, "retriever set: expert column must be 1..%d bytes",
                              RETR_NAME_MAX - 1);
        }
        strcpy(s->column, cfg->expert_column);
        s->cfg.expert_column = s->column;
    }
    int rc = router_create(&s->rt, &s->cfg.router, pool, e);
    if (rc) {
        free(s);
        return mr_err_wrap(e, "retriever set");
    }
    pthread_mutex_init(&s->live_mu, NULL);
    *out = s;
    return 0;
}

void retr_set_free(retr_set *s) {
    if (!s) return;
    router_free(s->rt);
    for (int i = 0; i < s->n; i++) retr_free(s->ex[i]);
    pthread_mutex_destroy(&s->live_mu);
    free(s);
}

/* r into the router and the set, as described by in. */
static int retr_set_place(retr_set *s, mr_retr *r, const retr_set_expert_info *in, mr_err *e) {
    int at = router_add_expert(s->rt, r, 0, e);
    if (at < 0) return mr_err_wrap(e, "retriever set");
    s->ex[at] = r;
    s->info[at] = *in;
    s->n = at + 1;
    return at;
}

int retr_set_add(retr_set *s, mr_retr *r, const char *factory, int ef_search, int nprobe,
                 mr_err *e) {
    if (!s || !r) return mr_err_set(e, MR_EINVAL, "retr_set_add: NULL argument");
    const char *kind = retr_set_kind_name(r->kind);
    if (!kind) return mr_err_set(e, MR_EINVAL, "retriever set: expert %s of unknown kind", r->name);
    if (r->kind == RETR_CALLBACK)
        return mr_err_set(e, MR_EINVAL,
                          "retriever set: expert %s is a callback expert: add it "
                          "with retr_set_add_remote",
                          r->name);
    retr_set_expert_info in = {.kind = r->kind};
    snprintf(in.name, sizeof in.name, "%s", r->name);
    snprintf(in.file, sizeof in.file, "%s.%s", r->name, retr_set_kind_ext(r->kind));
    if (r->kind == RETR_FAISS) {
        if (r->dim != s->cfg.dim)
            return mr_err_set(e, MR_EINVAL, "retriever set: expert %s has dim %d, the set %d",
                              r->name, r->dim, s->cfg.dim);
        if (!factory || !*factory || strlen(factory) >= sizeof in.factory)
            return mr_err_set(e, MR_EINVAL, "retriever set: FAISS expert %s needs a factory string",
                              r->name);
        if (ef_search < 0 || nprobe < 0)
            return mr_err_set(e, MR_EINVAL, "retriever set: expert %s: negative search parameter",
                              r->name);
        strcpy(in.factory, factory);
        in.ef_search = ef_search;
        in.nprobe = nprobe;
    }
    return retr_set_place(s, r, &in, e);
}

int retr_set_add_remote(retr_set *s, mr_retr *r, const retr_set_remote *spec, mr_err *e) {
    if (!s || !r || !spec || !spec->address || !spec->name)
        return mr_err_set(e, MR_EINVAL, "retr_set_add_remote: NULL argument");
    retr_set_expert_info in = {.kind = RETR_CALLBACK};
    const char *rn = spec->remote_name && *spec->remote_name ? spec->remote_name : spec->name;
    const char *rm = spec->remote_model ? spec->remote_model : "";
    if (r->kind != RETR_CALLBACK || strcmp(r->name, spec->name) || r->dim != s->cfg.dim)
        return mr_err_set(e, MR_EINVAL,
                          "retriever set: remote expert %s must be a callback "
                          "expert of that name with the set's dim %d",
                          spec->name, s->cfg.dim);
    if (!*spec->address || strlen(spec->address) >= sizeof in.address ||
        strlen(rm) >= sizeof in.remote_model || retr_check_name(rn, NULL))
        return mr_err_set(e, MR_EINVAL,
                          "retriever set: remote expert %s: address must be 1..%d "
                          "bytes, remote_model at most %d, remote_name a retriever name",
                          spec->name, RETR_SET_ADDRESS_MAX - 1, RETR_SET_MODEL_MAX - 1);
    snprintf(in.name, sizeof in.name, "%s", r->name);
    snprintf(in.address, sizeof in.address, "%s", spec->address);
    snprintf(in.remote_name, sizeof in.remote_name, "%s", rn);
    snprintf(in.remote_model, sizeof in.remote_model, "%s", rm);
    return retr_set_place(s, r, &in, e);
}

/* ------------------------------------------------------------ accessors */

mr_router *retr_set_router(const retr_set *s) { return s ? s->rt : NULL; }
int retr_set_dim(const retr_set *s) { return s ? s->cfg.dim : 0; }
retr_metric retr_set_metric(const retr_set *s) { return s ? s->cfg.metric : RETR_METRIC_IP; }
int retr_set_n_experts(const retr_set *s) { return s ? s->n : 0; }

mr_retr *retr_set_expert_at(const retr_set *s, int i) {
    return s && i >= 0 && i < s->n ? s->ex[i] : NULL;
}

mr_retr *retr_set_expert(const retr_set *s, const char *name) {
    for (int i = 0; s && name && i < s->n; i++)
        if (strcmp(s->ex[i]->name, name) == 0) return s->ex[i];
    return NULL;
}

const retr_set_expert_info *retr_set_info(const retr_set *s, int i) {
    return s && i >= 0 && i < s->n ? &s->info[i] : NULL;
}

const router_config *retr_set_router_config(const retr_set *s) { return s ? &s->cfg.router : NULL; }

const char *retr_set_expert_column(const retr_set *s) {
    return s && s->column[0] ? s->column : NULL;
}

void retr_set_live_lock(retr_set *s, int lock) {
    if (lock) pthread_mutex_lock(&s->live_mu);
    else pthread_mutex_unlock(&s->live_mu);
}

void retr_set_expert_name(const char *column, const char *value, char out[RETR_NAME_MAX]) {
    snprintf(out, RETR_NAME_MAX, "%.31s_%s", column, value);
    mr_name_sanitize(out);
}

/* ----------------------------------------------------------------- save */

/* The shortest decimal that reads back as the same float (0.6f is 0.6 in
 * the manifest, not 0.60000002384185791). */
static double retr_set_short(float f) {
    char b[32];
    for (int digits = 6; digits < 9; digits++) {
        snprintf(b, sizeof b, "%.*g", digits, (double)f);
        if ((float)strtod(b, NULL) == f) return strtod(b, NULL);
    }
    return (double)f;
}

static json_t *retr_set_manifest(const retr_set *s) {
    const router_config *c = &s->cfg.router;
    json_t *ex = json_array();
    for (int i = 0; i < s->n; i++) {
        const retr_set_expert_info *in = &s->info[i];
        json_t *o = in->kind == RETR_CALLBACK
                        ? json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", in->name, "kind", "remote",
                                    "address", in->address, "remote_name", in->remote_name,
                                    "remote_model", in->remote_model)
                        : json_pack("{s:s, s:s, s:s}", "name", in->name, "kind",
                                    retr_set_kind_name(in->kind), "file", in->file);
        if (o && in->kind == RETR_FAISS) {
            json_object_set_new(o, "factory", json_string(in->factory));
            json_object_set_new(o, "ef_search", json_integer(in->ef_search));
            json_object_set_new(o, "nprobe", json_integer(in->nprobe));
        }
        if (!o || json_array_append_new(ex, o)) {
            json_decref(ex);
            return NULL;
        }
    }
    json_t *rt = json_pack("{s:f, s:f, s:i, s:s, s:f, s:i, s:i, s:s}", "temperature",
                           retr_set_short(c->temperature), "top_p", retr_set_short(c->top_p),
                           "max_experts", c->max_experts, "merge", retr_set_merge_name(c->merge),
                           "fallback_weight", retr_set_short(c->fallback_weight), "rrf_k", c->rrf_k,
                           "k_max", c->k_max, "pilots", RETR_SET_PILOTS);
    return json_pack("{s:s, s:i, s:i, s:s, s:o, s:o, s:o, s:o}", "format", RETR_SET_FORMAT,
                     "version", RETR_SET_VERSION, "dim", s->cfg.dim, "metric",
                     s->cfg.metric == RETR_METRIC_L2 ? "l2" : "ip", "experts", ex, "fallback",
                     s->fallback[0] ? json_string(s->fallback) : json_null(), "expert_column",
                     s->column[0] ? json_string(s->column) : json_null(), "router", rt);
}

/* Remove a directory holding only plain files (a set, or a failed save). */
static void retr_set_rmdir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char p[PATH_MAX];
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name) < (int)sizeof p)
            unlink(p);
    closedir(d);
    rmdir(dir);
}

static int retr_set_save_expert(retr_set *s, int i, const char *path, mr_err *e) {
    mr_retr *r = s->ex[i];
    switch (r->kind) {
    case RETR_FAISS: return retr_faiss_save(r, path, e);
    case RETR_POPULARITY: return retr_pop_save(r, path, e);
    case RETR_MINHASH: return retr_minhash_save(r, path, e);
    case RETR_CALLBACK: return 0; /* a remote expert is its manifest entry */
    }
    return mr_err_set(e, MR_EINVAL, "unknown kind");
}

/* dir may be replaced: absent, empty, or a retriever set (has a manifest).
 * Anything else is refused, so a wrong --out never wipes a folder. */
static int retr_set_replaceable(const char *dir, mr_err *e) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *de;
    int other = 0, manifest = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (!strcmp(de->d_name, RETR_SET_MANIFEST)) manifest = 1;
        else other = 1;
    }
    closedir(d);
    if (other && !manifest)
        return mr_err_set(e, MR_EEXIST,
                          "retriever set: %s exists and is not a retriever set (no %s); "
                          "not replacing it",
                          dir, RETR_SET_MANIFEST);
    return 0;
}

/* Put the finished tmp directory at dir. */
static int retr_set_swap_in(const char *tmp, const char *dir, mr_err *e) {
    if (rename(tmp, dir) == 0) return mr_fsync_parent(dir, 0, e);
    if (errno != EEXIST && errno != ENOTEMPTY)
        return mr_err_set(e, MR_EINTERNAL, "retriever set: rename to %s: %s", dir, strerror(errno));
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE))
        return mr_err_set(e, MR_EINTERNAL, "retriever set: replace %s: %s", dir, strerror(errno));
    retr_set_rmdir(tmp); /* the old set, now under the temporary name */
    return mr_fsync_parent(dir, 0, e);
}

int retr_set_save(retr_set *s, const char *dir, mr_err *e) {
    if (!s || !dir || !*dir) return mr_err_set(e, MR_EINVAL, "retr_set_save: NULL argument");
    char tmp[PATH_MAX], p[PATH_MAX];
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    if (snprintf(tmp, sizeof tmp, "%.*s.tmp.%ld", (int)dl, dir, (long)getpid()) >= (int)sizeof tmp)
        return mr_err_set(e, MR_EINVAL, "retriever set: path too long: %s", dir);
    int rc = retr_set_replaceable(dir, e);
    if (rc) return rc;
    retr_set_rmdir(tmp); /* left by a crashed save of this pid */
    if (mkdir(tmp, 0755))
        return mr_err_set(e, MR_EINTERNAL, "retriever set: mkdir %s: %s", tmp, strerror(errno));
    for (int i = 0; i < s->n && !rc; i++) {
        if (s->info[i].kind == RETR_CALLBACK) continue;
        if ((rc = retr_set_join(p, tmp, s->info[i].file, e)) ||
            (rc = retr_set_save_expert(s, i, p, e)))
            mr_err_wrap(e, "retriever set: expert %s", s->info[i].name);
    }
    if (!rc) {
        if ((rc = retr_set_join(p, tmp, RETR_SET_PILOTS, e)) || (rc = router_save(s->rt, p, e)))
            mr_err_wrap(e, "retriever set: pilots");
    }
    if (!rc) {
        json_t *m = retr_set_manifest(s);
        if (retr_set_join(p, tmp, RETR_SET_MANIFEST, e)) rc = MR_EINVAL;
        else if (!m)
            rc = mr_err_set(e, MR_ENOMEM, "retriever set: out of memory building the manifest");
        else {
            char *js = json_dumps(m, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
            rc = js ? mr_write_file_atomic(p, js, strlen(js), e)
                    : mr_err_set(e, MR_ENOMEM, "retriever set: out of memory writing %s", p);
            free(js);
        }
        json_decref(m);
    }
    if (!rc) {
        snprintf(p, sizeof p, "%.*s", (int)dl, dir);
        if (!(rc = mr_fsync_parent(tmp, 1, e)))
            rc = retr_set_swap_in(tmp, p, e); /* entries first */
    }
    if (rc) retr_set_rmdir(tmp);
    return rc;
}

/* ----------------------------------------------------------------- load */

/* Every key of o must be one of the NULL-terminated list. */
static int retr_set_known(json_t *o, const char *const *keys, const char *where, const char *path,
                          mr_err *e) {
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        int ok = 0;
        for (int i = 0; keys[i] && !ok; i++) ok = strcmp(k, keys[i]) == 0;
        if (!ok)
            return mr_err_set(e, MR_ECORRUPT, "%s: unknown field \"%s\" in %s", path, k, where);
    }
    return 0;
}

#define RETR_SET_BAD(...) (rc = mr_err_set(e, MR_ECORRUPT, __VA_ARGS__))

/* Optional number field: 0 when absent. */
static int retr_set_num(json_t *o, const char *key, const char *where, const char *path, double *v,
                        mr_err *e) {
    json_t *x = json_object_get(o, key);
    *v = 0;
    if (!x) return 0;
    if (!json_is_number(x))
        return mr_err_set(e, MR_ECORRUPT, "%s: field \"%s\" in %s must be a number", path, key,
                          where);
    *v = json_number_value(x);
    return 0;
}

static int retr_set_int(json_t *o, const char *key, const char *where, const char *path, int *v,
                        mr_err *e) {
    json_t *x = json_object_get(o, key);
    *v = 0;
    if (!x) return 0;
    if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > INT_MAX)
        return mr_err_set(e, MR_ECORRUPT, "%s: field \"%s\" in %s must be an integer >= 0", path,
                          key, where);
    *v = (int)json_integer_value(x);
    return 0;
}

static const char *retr_set_str(json_t *o, const char *key, const char *where, const char *path,
                                mr_err *e) {
    json_t *x = json_object_get(o, key);
    if (!json_is_string(x)) {
        mr_err_set(e, MR_ECORRUPT, "%s: field \"%s\" in %s must be a string", path, key, where);
        return NULL;
    }
    return json_string_value(x);
}

/* Top level and router settings -> cfg (fallback copied into fb). */
static int retr_set_parse_head(json_t *m, const char *path, retr_set_config *cfg, char *fb,
                               char *col, mr_err *e) {
    static const char *const top[] = {"format",   "version",       "dim",    "metric", "experts",
                                      "fallback", "expert_column", "router", NULL};
    static const char *const rkeys[] = {"temperature", "top_p",           "max_experts",
                                        "merge",       "fallback_weight", "rrf_k",
                                        "k_max",       "pilots",          NULL};
    int rc = 0, ver = 0;
    const char *s;
    if (!json_is_object(m)) return RETR_SET_BAD("%s: not a JSON object", path);
    if ((rc = retr_set_known(m, top, "the manifest", path, e))) return rc;
    if (!(s = retr_set_str(m, "format", "the manifest", path, e))) return MR_ECORRUPT;
    if (strcmp(s, RETR_SET_FORMAT))
        return RETR_SET_BAD("%s: format \"%s\", expected \"%s\"", path, s, RETR_SET_FORMAT);
    if ((rc = retr_set_int(m, "version", "the manifest", path, &ver, e))) return rc;
    if (ver != RETR_SET_VERSION)
        return RETR_SET_BAD("%s: version %d, this build reads version %d", path, ver,
                            RETR_SET_VERSION);
    if ((rc = retr_set_int(m, "dim", "the manifest", path, &cfg->dim, e))) return rc;
    if (cfg->dim < 1) return RETR_SET_BAD("%s: field \"dim\" must be given, >= 1", path);
    if (!(s = retr_set_str(m, "metric", "the manifest", path, e))) return MR_ECORRUPT;
    if (strcmp(s, "ip") && strcmp(s, "l2"))
        return RETR_SET_BAD("%s: metric \"%s\" is neither \"ip\" nor \"l2\"", path, s);
    cfg->metric = strcmp(s, "l2") ? RETR_METRIC_IP : RETR_METRIC_L2;
    json_t *f = json_object_get(m, "fallback");
    if (json_is_string(f)) {
        if (strlen(json_string_value(f)) >= RETR_NAME_MAX)
            return RETR_SET_BAD("%s: fallback name too long", path);
        strcpy(fb, json_string_value(f));
        cfg->router.fallback = fb;
    } else if (f && !json_is_null(f)) {
        return RETR_SET_BAD("%s: field \"fallback\" must be a string or null", path);
    }
    json_t *xc = json_object_get(m, "expert_column");
    if (json_is_string(xc)) {
        if (!*json_string_value(xc) || strlen(json_string_value(xc)) >= RETR_NAME_MAX)
            return RETR_SET_BAD("%s: expert_column must be 1..%d bytes", path, RETR_NAME_MAX - 1);
        strcpy(col, json_string_value(xc));
        cfg->expert_column = col;
    } else if (xc && !json_is_null(xc)) {
        return RETR_SET_BAD("%s: field \"expert_column\" must be a string or null", path);
    }
    json_t *r = json_object_get(m, "router");
    if (!json_is_object(r)) return RETR_SET_BAD("%s: field \"router\" must be an object", path);
    if ((rc = retr_set_known(r, rkeys, "router", path, e))) return rc;
    double t, p, fw;
    if ((rc = retr_set_num(r, "temperature", "router", path, &t, e)) ||
        (rc = retr_set_num(r, "top_p", "router", path, &p, e)) ||
        (rc = retr_set_num(r, "fallback_weight", "router", path, &fw, e)) ||
        (rc = retr_set_int(r, "max_experts", "router", path, &cfg->router.max_experts, e)) ||
        (rc = retr_set_int(r, "rrf_k", "router", path, &cfg->router.rrf_k, e)) ||
        (rc = retr_set_int(r, "k_max", "router", path, &cfg->router.k_max, e)))
        return rc;
    cfg->router.temperature = (float)t;
    cfg->router.top_p = (float)p;
    cfg->router.fallback_weight = (float)fw;
    json_t *mg = json_object_get(r, "merge");
    if (mg) {
        int mm = json_is_string(mg) ? retr_set_merge_parse(json_string_value(mg)) : -1;
        if (mm < 0)
            return RETR_SET_BAD("%s: router merge must be \"norm\", \"rrf\" or \"raw\"", path);
        cfg->router.merge = (router_merge)mm;
    }
    json_t *pl = json_object_get(r, "pilots");
    if (pl && (!json_is_string(pl) || strcmp(json_string_value(pl), RETR_SET_PILOTS)))
        return RETR_SET_BAD("%s: router pilots must be \"%s\"", path, RETR_SET_PILOTS);
    return 0;
}

/* A remote expert's entry: address, optional remote_name and remote_model,
 * made into an expert by the loader's factory. */
static int retr_set_load_remote_expert(json_t *o, const char *where, const char *path, int dim,
                                       retr_set_remote_fn remote, void *ctx,
                                       retr_set_expert_info *in, mr_retr **out, mr_err *e) {
    static const char *const keys[] = {"name",        "kind",         "address",
                                       "remote_name", "remote_model", NULL};
    int rc = retr_set_known(o, keys, where, path, e);
    if (rc) return rc;
    const char *s = retr_set_str(o, "address", where, path, e);
    if (!s) return MR_ECORRUPT;
    if (!*s || strlen(s) >= sizeof in->address)
        return RETR_SET_BAD("%s: %s: address must be \"host:port\", 1..%d bytes", path, where,
                            RETR_SET_ADDRESS_MAX - 1);
    snprintf(in->address, sizeof in->address, "%s", s);
    snprintf(in->remote_name, sizeof in->remote_name, "%s", in->name);
    if (json_object_get(o, "remote_name")) {
        if (!(s = retr_set_str(o, "remote_name", where, path, e))) return MR_ECORRUPT;
        if (retr_check_name(s, NULL))
            return RETR_SET_BAD("%s: %s: bad remote_name \"%s\"", path, where, s);
        snprintf(in->remote_name, sizeof in->remote_name, "%s", s);
    }
    if (json_object_get(o, "remote_model")) {
        if (!(s = retr_set_str(o, "remote_model", where, path, e))) return MR_ECORRUPT;
        if (strlen(s) >= sizeof in->remote_model)
            return RETR_SET_BAD("%s: %s: remote_model longer than %d bytes", path, where,
                                RETR_SET_MODEL_MAX - 1);
        snprintf(in->remote_model, sizeof in->remote_model, "%s", s);
    }
    if (!remote)
        return mr_err_set(e, MR_EUNIMPL,
                          "%s: %s is a remote expert (at %s): only `moerec serve` "
                          "searches remote experts",
                          path, where, in->address);
    retr_set_remote spec = {in->name, dim, in->address, in->remote_name, in->remote_model};
    if ((rc = remote(ctx, &spec, out, e))) return mr_err_wrap(e, "%s: %s", path, where);
    if ((*out)->kind != RETR_CALLBACK || (*out)->dim != dim || strcmp((*out)->name, in->name)) {
        retr_free(*out);
        *out = NULL;
        return mr_err_set(e, MR_EINTERNAL, "%s: %s: the remote factory made a wrong expert", path,
                          where);
    }
    return 0;
}

/* One expert entry -> a loaded retr (or an error naming the expert). */
static int retr_set_load_expert(json_t *o, int i, const char *dir, const char *path, int flags,
                                int dim, retr_set_remote_fn remote, void *ctx,
                                retr_set_expert_info *in, mr_retr **out, mr_err *e) {
    static const char *const keys[] = {"name",      "kind",   "file", "factory",
                                       "ef_search", "nprobe", NULL};
    char where[96], p[PATH_MAX];
    int rc = 0, kind;
    const char *s;
    snprintf(where, sizeof where, "experts[%d]", i);
    if (!json_is_object(o)) return RETR_SET_BAD("%s: %s must be an object", path, where);
    if (!(s = retr_set_str(o, "name", where, path, e))) return MR_ECORRUPT;
    if (retr_check_name(s, NULL))
        return RETR_SET_BAD("%s: %s: bad expert name \"%s\"", path, where, s);
    snprintf(in->name, sizeof in->name, "%s", s);
    snprintf(where, sizeof where, "expert %s", in->name);
    if (!(s = retr_set_str(o, "kind", where, path, e))) return MR_ECORRUPT;
    if ((kind = retr_set_kind_parse(s)) < 0)
        return RETR_SET_BAD("%s: %s: unknown kind \"%s\" (faiss, popularity, minhash, remote)",
                            path, where, s);
    in->kind = (retr_kind)kind;
    if (in->kind == RETR_CALLBACK)
        return retr_set_load_remote_expert(o, where, path, dim, remote, ctx, in, out, e);
    char at[32];
    snprintf(at, sizeof at, "experts[%d]", i);
    if ((rc = retr_set_known(o, keys, at, path, e))) return rc;
    if (!(s = retr_set_str(o, "file", where, path, e))) return MR_ECORRUPT;
    if (!retr_set_file_ok(s))
        return RETR_SET_BAD("%s: %s: file \"%s\" is not a plain file name in the set", path, where,
                            s);
    snprintf(in->file, sizeof in->file, "%s", s);
    if ((rc = retr_set_int(o, "ef_search", where, path, &in->ef_search, e)) ||
        (rc = retr_set_int(o, "nprobe", where, path, &in->nprobe, e)))
        return rc;
    json_t *fa = json_object_get(o, "factory");
    if (in->kind == RETR_FAISS) {
        if (!json_is_string(fa) || !*json_string_value(fa) ||
            strlen(json_string_value(fa)) >= sizeof in->factory)
            return RETR_SET_BAD("%s: %s: field \"factory\" must be a FAISS factory string", path,
                                where);
        strcpy(in->factory, json_string_value(fa));
    } else if (fa || in->ef_search || in->nprobe) {
        return RETR_SET_BAD("%s: %s: factory / ef_search / nprobe apply to FAISS experts only",
                            path, where);
    }
    if ((rc = retr_set_join(p, dir, in->file, e))) return rc;
    struct stat st;
    if (stat(p, &st))
        return mr_err_set(e, errno == ENOENT ? MR_ENOTFOUND : MR_EINTERNAL,
                          "retriever set %s: %s: file %s: %s", dir, where, in->file,
                          strerror(errno));
    if (in->kind == RETR_FAISS) {
        retr_faiss_config fc = {.name = in->name,
                                .ef_search = in->ef_search,
                                .nprobe = in->nprobe,
                                .omp_threads = flags & RETR_SET_LOAD_OMP1 ? 1 : 0};
        rc = retr_faiss_load(out, p, flags & RETR_SET_LOAD_MMAP ? RETR_FAISS_LOAD_MMAP : 0, &fc, e);
    } else if (in->kind == RETR_POPULARITY) {
        rc = retr_pop_load(out, p, in->name, e);
    } else {
        rc = retr_minhash_load(out, p, in->name, e);
    }
    if (rc) return mr_err_wrap(e, "retriever set %s: %s (%s)", dir, where, in->file);
    if (in->kind == RETR_FAISS && (*out)->dim != dim) {
        int d = (*out)->dim;
        retr_free(*out);
        *out = NULL;
        return RETR_SET_BAD("%s: %s: file %s has dim %d, the manifest %d", path, where, in->file, d,
                            dim);
    }
    return 0;
}

/* The parsed manifest, or NULL with *rc set. */
static json_t *retr_set_read_manifest(const char *dir, char *path, int *rc, mr_err *e) {
    if ((*rc = retr_set_join(path, dir, RETR_SET_MANIFEST, e))) return NULL;
    struct stat st;
    if (stat(path, &st)) {
        *rc = mr_err_set(e, errno == ENOENT ? MR_ENOTFOUND : MR_EINTERNAL, "retriever set: %s: %s",
                         path, strerror(errno));
        return NULL;
    }
    json_error_t je;
    json_t *m = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!m)
        *rc = mr_err_set(e, MR_ECORRUPT, "%s: invalid JSON at line %d: %s", path, je.line, je.text);
    return m;
}

int retr_set_load(retr_set **out, const char *dir, mr_pool *pool, int flags, mr_err *e) {
    return retr_set_load_remote(out, dir, pool, flags, NULL, NULL, e);
}

int retr_set_load_remote(retr_set **out, const char *dir, mr_pool *pool, int flags,
                         retr_set_remote_fn remote, void *ctx, mr_err *e) {
    if (!out || !dir) return mr_err_set(e, MR_EINVAL, "retr_set_load: NULL argument");
    *out = NULL;
    char path[PATH_MAX], fb[RETR_NAME_MAX] = "", col[RETR_NAME_MAX] = "", p[PATH_MAX];
    int rc;
    json_t *m = retr_set_read_manifest(dir, path, &rc, e);
    if (!m) return rc;
    retr_set_config cfg = {0};
    retr_set *s = NULL;
    rc = retr_set_parse_head(m, path, &cfg, fb, col, e);
    json_t *ex = json_object_get(m, "experts");
    if (!rc && (!json_is_array(ex) || json_array_size(ex) == 0 ||
                json_array_size(ex) > ROUTER_MAX_EXPERTS))
        RETR_SET_BAD("%s: field \"experts\" must be an array of 1..%d experts", path,
                     ROUTER_MAX_EXPERTS);
    if (!rc && (rc = retr_set_create(&s, &cfg, pool, e))) {
        mr_err_wrap(e, "%s", path);
        if (rc == MR_EINVAL) { /* a setting out of range: the file is bad */
            rc = MR_ECORRUPT;
            if (e) e->code = rc;
        }
    }
    for (size_t i = 0; !rc && i < json_array_size(ex); i++) {
        retr_set_expert_info in = {0};
        mr_retr *r = NULL;
        rc = retr_set_load_expert(json_array_get(ex, i), (int)i, dir, path, flags, cfg.dim, remote,
                                  ctx, &in, &r, e);
        if (rc) break;
        if (in.kind == RETR_CALLBACK) {
            retr_set_remote spec = {in.name, cfg.dim, in.address, in.remote_name, in.remote_model};
            rc = retr_set_add_remote(s, r, &spec, e);
        } else {
            rc = retr_set_add(s, r, in.factory, in.ef_search, in.nprobe, e);
        }
        if (rc < 0) {
            retr_free(r);
            mr_err_wrap(e, "%s", path);
            break;
        }
        snprintf(s->info[rc].file, RETR_SET_FILE_MAX, "%s", in.file); /* as the manifest says */
        rc = 0;
    }
    if (!rc && fb[0] && router_find(s->rt, fb, NULL) < 0)
        RETR_SET_BAD("%s: fallback \"%s\" is not one of the experts", path, fb);
    if (!rc) {
        if ((rc = retr_set_join(p, dir, RETR_SET_PILOTS, e)) ||
            (rc = router_load_pilots(s->rt, p, e)))
            mr_err_wrap(e, "retriever set %s: pilots (%s)", dir, RETR_SET_PILOTS);
    }
    json_decref(m);
    if (rc) {
        retr_set_free(s);
        return rc;
    }
    *out = s;
    return 0;
}
