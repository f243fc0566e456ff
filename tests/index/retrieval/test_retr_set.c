/* test_retr_set.c — the retriever set directory (index/retrieval/retr_set.c): a set
 * built in memory (three FAISS domain experts, one of them IVF, a MinHash
 * expert and a popularity fallback, pilots from router_build_pilots)
 * retrieves exactly the same candidates after save + load; saving over a
 * set replaces it; a damaged manifest, an unknown field, a missing or
 * damaged expert file are errors that name what is wrong, never a crash;
 * an expert of kind "remote" is made by the loader's factory (the same
 * candidates when it answers like the local expert), survives save +
 * load, and is refused by a loader without a factory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>

#include "index/retrieval/retr_callback.h"
#include "index/retrieval/retr_minhash.h"
#include "index/retrieval/retr_pop.h"
#include "index/retrieval/retr_set.h"
#include "test_retr_util.h"

#define SD 8     /* dimension */
#define SDOM 3   /* FAISS domain experts */
#define SPER 200 /* items per domain */
#define SQ 12    /* queries compared */

typedef struct ts_fix {
    char *tmp;     /* mkdtemp folder */
    char dir[512]; /* tmp/set */
    retr_set *set;
} ts_fix;

/* Domain d: items 4 e_d + N(0,1), ids d * 1000 + i; the last domain is IVF. */
static retr_set *ts_build(float *all, int *best) {
    mr_err e = {0};
    retr_set *s = NULL;
    retr_set_config cfg = {.dim = SD,
                           .metric = RETR_METRIC_IP,
                           .router = {.fallback = "popular", .top_p = 0.7f, .max_experts = 2}};
    if (retr_set_create(&s, &cfg, NULL, &e)) fail_msg("%s", e.msg);
    for (int d = 0; d < SDOM; d++) {
        char name[16];
        snprintf(name, sizeof name, "dom%d", d);
        const char *fac = d == SDOM - 1 ? "IVF4,Flat" : "IDMap,Flat";
        retr_faiss_config c = {.name = name,
                               .dim = SD,
                               .factory = fac,
                               .metric = RETR_METRIC_IP,
                               .nprobe = d == SDOM - 1 ? 2 : 0};
        mr_retr *r = NULL;
        if (retr_faiss_create(&r, &c, &e)) fail_msg("%s", e.msg);
        float *x = tr_randn(7 + (uint64_t)d, SPER, SD);
        int64_t ids[SPER];
        for (int i = 0; i < SPER; i++) {
            x[i * SD + d] += 4.0f;
            ids[i] = d * 1000 + i;
            best[d * SPER + i] = d;
        }
        memcpy(all + (size_t)d * SPER * SD, x, sizeof(float) * SPER * SD);
        if (retr_faiss_train(r, x, SPER, &e) || retr_faiss_add(r, x, ids, SPER, &e))
            fail_msg("%s", e.msg);
        mr_floats_free(x);
        assert_int_equal(retr_set_add(s, r, fac, 0, c.nprobe, &e), d);
    }
    mr_retr *mh = NULL, *pop = NULL;
    retr_minhash_config mc = {.name = "cooc", .seed = 3};
    retr_pop_config pc = {.name = "popular", .half_life_s = 3600};
    if (retr_minhash_create(&mh, &mc, &e) || retr_pop_create(&pop, &pc, &e)) fail_msg("%s", e.msg);
    int64_t us[400], it[400], ts[400];
    for (int j = 0; j < 400; j++) {
        us[j] = j % 40;
        it[j] = (j % 40) / 10 * 1000 + j % 7; /* users 0..9 share items, ... */
        ts[j] = 1000 + j;
    }
    if (retr_minhash_add(mh, us, it, 400, &e) || retr_pop_add_events(pop, it, ts, NULL, 400, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(retr_set_add(s, mh, NULL, 0, 0, &e), SDOM);
    assert_int_equal(retr_set_add(s, pop, NULL, 0, 0, &e), SDOM + 1);
    if (router_build_pilots(retr_set_router(s), all, best, SDOM * SPER, 3, &e))
        fail_msg("%s", e.msg);
    return s;
}

static int ts_setup(void **state) {
    ts_fix *f = calloc(1, sizeof *f);
    f->tmp = tr_tmpdir();
    assert_non_null(f->tmp);
    snprintf(f->dir, sizeof f->dir, "%s/set", f->tmp);
    float *all = malloc(sizeof(float) * SDOM * SPER * SD);
    int *best = malloc(sizeof(int) * SDOM * SPER);
    f->set = ts_build(all, best);
    free(all);
    free(best);
    mr_err e = {0};
    if (retr_set_save(f->set, f->dir, &e)) fail_msg("%s", e.msg);
    *state = f;
    return 0;
}

static void ts_rm_set(const char *dir) {
    char *d = strdup(dir);
    tr_rmdir(d); /* frees d */
}

static int ts_teardown(void **state) {
    ts_fix *f = *state;
    retr_set_free(f->set);
    ts_rm_set(f->dir);
    tr_rmdir(f->tmp);
    free(f);
    return 0;
}

/* Retrieve query q (k = 20, recent items for the MinHash expert) into res. */
static void ts_retrieve(retr_set *s, const float *q, mr_arena *a, router_result *res) {
    mr_err e = {0};
    int64_t recent[2] = {0, 1};
    retr_user u = {recent, 2};
    router_query rq = {.n_spaces = 1, .vecs = {q}, .dims = {SD}};
    router_options o = {0};
    if (router_retrieve(retr_set_router(s), &rq, &u, 20, NULL, 0, &o, a, res, &e))
        fail_msg("%s", e.msg);
}

static void test_round_trip_identical(void **state) {
    ts_fix *f = *state;
    mr_err e = {0};
    retr_set *l = NULL;
    if (retr_set_load(&l, f->dir, NULL, 0, &e)) fail_msg("%s", e.msg);
    assert_int_equal(retr_set_dim(l), SD);
    assert_int_equal(retr_set_metric(l), RETR_METRIC_IP);
    assert_int_equal(retr_set_n_experts(l), SDOM + 2);
    for (int i = 0; i < SDOM + 2; i++) {
        const retr_set_expert_info *a = retr_set_info(f->set, i), *b = retr_set_info(l, i);
        assert_string_equal(a->name, b->name);
        assert_string_equal(a->file, b->file);
        assert_string_equal(a->factory, b->factory);
        assert_int_equal(a->kind, b->kind);
        assert_int_equal(a->nprobe, b->nprobe);
        assert_int_equal(retr_size(retr_set_expert_at(l, i)),
                         retr_size(retr_set_expert_at(f->set, i)));
        assert_int_equal(router_n_pilots(retr_set_router(l), i),
                         router_n_pilots(retr_set_router(f->set), i));
    }
    assert_ptr_equal(retr_set_expert(l, "cooc"), retr_set_expert_at(l, SDOM));
    assert_null(retr_set_expert(l, "nope"));
    const router_config *c = retr_set_router_config(l);
    assert_true(c->top_p == 0.7f && c->max_experts == 2 && c->temperature == 0.05f);
    assert_string_equal(c->fallback, "popular");

    mr_arena arena, *a = &arena;
    mr_arena_init(a, 1 << 16, 0);
    float *q = tr_randn(99, SQ, SD);
    int routed_to[SDOM] = {0};
    for (int t = 0; t < SQ; t++) {
        q[t * SD + t % SDOM] += 4.0f;
        router_result r0, r1;
        ts_retrieve(f->set, q + t * SD, a, &r0);
        ts_retrieve(l, q + t * SD, a, &r1);
        assert_true(r0.n > 0);
        assert_int_equal(r0.n, r1.n);
        for (int i = 0; i < r0.n; i++) {
            assert_int_equal(r0.cands[i].id, r1.cands[i].id);
            assert_true(r0.cands[i].score == r1.cands[i].score);
            assert_int_equal(r0.cands[i].expert, r1.cands[i].expert);
            assert_true(r0.cands[i].experts == r1.cands[i].experts);
        }
        for (int x = 0; x < SDOM + 2; x++) {
            assert_true(r0.weights[x] == r1.weights[x]);
            assert_int_equal(r0.budgets[x], r1.budgets[x]);
        }
        routed_to[t % SDOM] += r1.budgets[t % SDOM] > 0; /* pilots route to the domain */
        assert_true(r1.budgets[SDOM + 1] > 0);           /* the fallback always runs */
        mr_arena_reset(a);
    }
    for (int d = 0; d < SDOM; d++) assert_int_equal(routed_to[d], SQ / SDOM);
    mr_floats_free(q);
    mr_arena_free(a);
    retr_set_free(l);
}

static void test_mmap_load_is_read_only(void **state) {
    ts_fix *f = *state;
    mr_err e = {0};
    retr_set *l = NULL;
    if (retr_set_load(&l, f->dir, NULL, RETR_SET_LOAD_MMAP | RETR_SET_LOAD_OMP1, &e))
        fail_msg("%s", e.msg);
    retr_faiss_stats st;
    if (retr_faiss_stats_get(retr_set_expert(l, "dom2"), &st, &e)) fail_msg("%s", e.msg);
    assert_int_equal(st.read_only, 1);
    float v[SD] = {1};
    int64_t id = 5555; /* a new item */
    assert_int_equal(retr_faiss_add(retr_set_expert(l, "dom2"), v, &id, 1, &e), MR_ESTATE);
    /* a set loaded normally takes online adds */
    retr_set_free(l);
    if (retr_set_load(&l, f->dir, NULL, 0, &e)) fail_msg("%s", e.msg);
    if (retr_faiss_add(retr_set_expert(l, "dom0"), v, &id, 1, &e)) fail_msg("%s", e.msg);
    assert_int_equal(retr_size(retr_set_expert(l, "dom0")), SPER + 1);
    retr_set_free(l);
}

static void test_save_replaces_existing(void **state) {
    ts_fix *f = *state;
    mr_err e = {0};
    retr_set *s = NULL, *l = NULL;
    retr_set_config cfg = {
        .dim = SD, .metric = RETR_METRIC_L2, .router = {.merge = ROUTER_MERGE_RRF}};
    if (retr_set_create(&s, &cfg, NULL, &e)) fail_msg("%s", e.msg);
    retr_faiss_config c = {
        .name = "only", .dim = SD, .factory = "IDMap,Flat", .metric = RETR_METRIC_L2};
    mr_retr *r = NULL;
    if (retr_faiss_create(&r, &c, &e)) fail_msg("%s", e.msg);
    assert_int_equal(retr_set_add(s, r, "IDMap,Flat", 0, 0, &e), 0);
    if (retr_set_save(s, f->dir, &e)) fail_msg("%s", e.msg);
    if (retr_set_load(&l, f->dir, NULL, 0, &e)) fail_msg("%s", e.msg);
    assert_int_equal(retr_set_n_experts(l), 1);
    assert_int_equal(retr_set_metric(l), RETR_METRIC_L2);
    assert_int_equal(retr_set_router_config(l)->merge, ROUTER_MERGE_RRF);
    assert_null(retr_set_router_config(l)->fallback);
    /* no old expert file and no temporary folder left behind */
    char p[600];
    struct stat st;
    snprintf(p, sizeof p, "%s/dom0.faiss", f->dir);
    assert_int_not_equal(stat(p, &st), 0);
    snprintf(p, sizeof p, "%s.tmp.%ld", f->dir, (long)getpid());
    assert_int_not_equal(stat(p, &st), 0);
    retr_set_free(l);
    retr_set_free(s);
    /* put the shared fixture back */
    if (retr_set_save(f->set, f->dir, &e)) fail_msg("%s", e.msg);
}

/* A folder that is not a set is never replaced (a wrong --out must not
 * wipe it); an empty one is used. */
static void test_save_refuses_other_folders(void **state) {
    ts_fix *f = *state;
    mr_err e = {0};
    char other[600], keep[700];
    snprintf(other, sizeof other, "%s/data", f->tmp);
    assert_int_equal(mkdir(other, 0755), 0);
    assert_int_equal(retr_set_save(f->set, other, &e), 0); /* empty: fine */
    retr_set *l = NULL;
    if (retr_set_load(&l, other, NULL, 0, &e)) fail_msg("%s", e.msg);
    retr_set_free(l);
    ts_rm_set(other);
    assert_int_equal(mkdir(other, 0755), 0);
    snprintf(keep, sizeof keep, "%s/items.csv", other);
    FILE *fp = fopen(keep, "w");
    fputs("item_id\n", fp);
    fclose(fp);
    assert_int_equal(retr_set_save(f->set, other, &e), MR_EEXIST);
    assert_non_null(strstr(e.msg, "not a retriever set"));
    struct stat st;
    assert_int_equal(stat(keep, &st), 0);
    snprintf(keep, sizeof keep, "%s.tmp.%ld", other, (long)getpid());
    assert_int_not_equal(stat(keep, &st), 0);
    ts_rm_set(other);
}

static void test_add_errors_leave_ownership(void **state) {
    (void)state;
    mr_err e = {0};
    retr_set *s = NULL;
    retr_set_config cfg = {.dim = SD};
    if (retr_set_create(&s, &cfg, NULL, &e)) fail_msg("%s", e.msg);
    mr_retr *r = NULL;
    retr_faiss_config c = {.name = "x", .dim = SD + 1, .factory = "IDMap,Flat"};
    if (retr_faiss_create(&r, &c, &e)) fail_msg("%s", e.msg);
    assert_int_equal(retr_set_add(s, r, "IDMap,Flat", 0, 0, &e), MR_EINVAL); /* dim */
    assert_non_null(strstr(e.msg, "dim"));
    retr_free(r);
    c.dim = SD;
    if (retr_faiss_create(&r, &c, &e)) fail_msg("%s", e.msg);
    assert_int_equal(retr_set_add(s, r, NULL, 0, 0, &e), MR_EINVAL); /* factory */
    assert_int_equal(retr_set_add(s, r, "IDMap,Flat", 0, 0, &e), 0);
    assert_true(retr_set_add(s, r, "IDMap,Flat", 0, 0, &e) < 0); /* same name */
    retr_set_free(s);                                            /* frees r once */
    cfg.dim = 0;
    assert_int_equal(retr_set_create(&s, &cfg, NULL, &e), MR_EINVAL);
    assert_null(s);
}

/* ---- damaged sets: each case edits the saved set, loads, restores. */

static void ts_manifest_path(const ts_fix *f, char *path) {
    snprintf(path, 600, "%s/%s", f->dir, RETR_SET_MANIFEST);
}

static json_t *ts_manifest(const ts_fix *f, char *path) {
    ts_manifest_path(f, path);
    json_t *m = json_load_file(path, 0, NULL);
    assert_non_null(m);
    return m;
}

/* Load after writing m (consumed) as the manifest; expect code and every
 * needle in the message. */
static void ts_expect(ts_fix *f, json_t *m, int code, const char *n1, const char *n2) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", f->dir, RETR_SET_MANIFEST);
    if (m) {
        assert_int_equal(json_dump_file(m, path, 0), 0);
        json_decref(m);
    }
    mr_err e = {0};
    retr_set *l = NULL;
    int rc = retr_set_load(&l, f->dir, NULL, 0, &e);
    if (rc != code) fail_msg("expected %d, got %d: %s", code, rc, e.msg);
    assert_null(l);
    if (n1 && !strstr(e.msg, n1)) fail_msg("'%s' not in: %s", n1, e.msg);
    if (n2 && !strstr(e.msg, n2)) fail_msg("'%s' not in: %s", n2, e.msg);
    struct stat st;
    if (stat(path, &st)) ts_rm_set(f->dir); /* no manifest: save would refuse the folder */
    if (retr_set_save(f->set, f->dir, &e)) fail_msg("%s", e.msg); /* restore */
}

static void test_bad_manifests(void **state) {
    ts_fix *f = *state;
    char path[600];
    json_t *m;

    m = ts_manifest(f, path);
    json_object_set_new(m, "shards", json_integer(4));
    ts_expect(f, m, MR_ECORRUPT, "unknown field \"shards\"", NULL);

    m = ts_manifest(f, path);
    json_object_set_new(json_array_get(json_object_get(m, "experts"), 1), "efsearch",
                        json_integer(64));
    ts_expect(f, m, MR_ECORRUPT, "\"efsearch\"", "experts[1]");

    m = ts_manifest(f, path);
    json_object_set_new(json_object_get(m, "router"), "top-p", json_real(0.5));
    ts_expect(f, m, MR_ECORRUPT, "\"top-p\"", "router");

    m = ts_manifest(f, path);
    json_object_set_new(m, "version", json_integer(RETR_SET_VERSION + 1));
    ts_expect(f, m, MR_ECORRUPT, "version", NULL);

    m = ts_manifest(f, path);
    json_object_set_new(json_object_get(m, "router"), "top_p", json_real(5));
    ts_expect(f, m, MR_ECORRUPT, "top_p", NULL);

    m = ts_manifest(f, path);
    json_object_del(m, "dim");
    ts_expect(f, m, MR_ECORRUPT, "\"dim\"", NULL);

    m = ts_manifest(f, path);
    json_object_set_new(m, "dim", json_string("8"));
    ts_expect(f, m, MR_ECORRUPT, "\"dim\"", NULL);

    m = ts_manifest(f, path);
    json_object_set_new(json_array_get(json_object_get(m, "experts"), 0), "file",
                        json_string("../dom0.faiss"));
    ts_expect(f, m, MR_ECORRUPT, "../dom0.faiss", "dom0");

    m = ts_manifest(f, path);
    json_object_set_new(json_array_get(json_object_get(m, "experts"), 3), "kind",
                        json_string("bm25"));
    ts_expect(f, m, MR_ECORRUPT, "bm25", "cooc");

    m = ts_manifest(f, path);
    json_object_set_new(m, "fallback", json_string("trending"));
    ts_expect(f, m, MR_ECORRUPT, "trending", NULL);

    m = ts_manifest(f, path);
    json_object_set_new(m, "dim", json_integer(SD + 1)); /* experts are SD */
    ts_expect(f, m, MR_ECORRUPT, "dim", "dom0");

    /* not JSON at all, then no manifest */
    ts_manifest_path(f, path);
    FILE *fp = fopen(path, "w");
    fputs("{\"format\": \"moerec-retrievers\", ", fp);
    fclose(fp);
    ts_expect(f, NULL, MR_ECORRUPT, "invalid JSON", RETR_SET_MANIFEST);
    ts_manifest_path(f, path);
    unlink(path);
    ts_expect(f, NULL, MR_ENOTFOUND, RETR_SET_MANIFEST, NULL);
}

static void test_bad_expert_files(void **state) {
    ts_fix *f = *state;
    mr_err e = {0};
    char p[600];

    snprintf(p, sizeof p, "%s/dom1.faiss", f->dir);
    unlink(p);
    ts_expect(f, NULL, MR_ENOTFOUND, "dom1", "dom1.faiss");

    snprintf(p, sizeof p, "%s/popular.pop", f->dir);
    tr_flip_byte(p, 20, 0x40);
    ts_expect(f, NULL, MR_ECORRUPT, "popular", "popular.pop");

    snprintf(p, sizeof p, "%s/cooc.minhash", f->dir);
    assert_int_equal(truncate(p, 10), 0);
    ts_expect(f, NULL, MR_ECORRUPT, "cooc", "cooc.minhash");

    snprintf(p, sizeof p, "%s/%s", f->dir, RETR_SET_PILOTS);
    tr_flip_byte(p, 30, 0x01);
    ts_expect(f, NULL, MR_ECORRUPT, "pilots", NULL);

    retr_set *l = NULL; /* and the restored set loads again */
    if (retr_set_load(&l, f->dir, NULL, 0, &e)) fail_msg("%s", e.msg);
    retr_set_free(l);
}

/* The loader's factory for the remote test: a callback expert that
 * searches the local expert of the remote_name in the fixture's set. */
typedef struct ts_remote {
    retr_set *holder; /* the "remote server's" set */
    char address[64], remote_name[64], remote_model[64];
    int made;
} ts_remote;

typedef struct ts_call {
    mr_retr *r;
    float q[SD];
} ts_call;

static int ts_cb_start(void *ctx, const float *q, int dim, int k, const retr_user *u,
                       int64_t deadline_ms, void **call, mr_err *e) {
    (void)k, (void)u, (void)deadline_ms, (void)e;
    ts_call *c = malloc(sizeof *c);
    c->r = ctx;
    memcpy(c->q, q, sizeof(float) * (size_t)dim);
    *call = c;
    return 0;
}

static int ts_cb_finish(void *ctx, void *call, int64_t *ids, float *scores, int k, mr_err *e) {
    (void)ctx;
    ts_call *c = call;
    int rc = retr_search(c->r, c->q, SD, 1, k, NULL, ids, scores, e);
    free(c);
    return rc;
}

static int64_t ts_cb_size(void *ctx) { return retr_size(ctx); }

static int ts_make_remote(void *ctx, const retr_set_remote *spec, mr_retr **out, mr_err *e) {
    ts_remote *t = ctx;
    snprintf(t->address, sizeof t->address, "%s", spec->address);
    snprintf(t->remote_name, sizeof t->remote_name, "%s", spec->remote_name);
    snprintf(t->remote_model, sizeof t->remote_model, "%s", spec->remote_model);
    assert_int_equal(spec->dim, SD);
    mr_retr *inner = retr_set_expert(t->holder, spec->remote_name);
    if (!inner) return mr_err_set(e, MR_ENOTFOUND, "no expert %s there", spec->remote_name);
    retr_callbacks cb = {ts_cb_start, ts_cb_finish, ts_cb_size, NULL};
    t->made++;
    return retr_callback_create(out, spec->name, spec->dim, &cb, inner, e);
}

static void test_remote_experts(void **state) {
    ts_fix *f = *state;
    char path[600];
    mr_err e = {0};
    json_t *m = ts_manifest(f, path);
    json_t *ex = json_object_get(m, "experts");
    json_array_set_new(ex, 1,
                       json_pack("{s:s, s:s, s:s, s:s}", "name", "dom1", "kind", "remote",
                                 "address", "10.1.2.3:50051", "remote_name", "dom1"));
    assert_int_equal(json_dump_file(m, path, 0), 0);
    ts_remote t = {.holder = f->set};
    retr_set *l = NULL;
    if (retr_set_load_remote(&l, f->dir, NULL, 0, ts_make_remote, &t, &e)) fail_msg("%s", e.msg);
    assert_int_equal(t.made, 1);
    assert_string_equal(t.address, "10.1.2.3:50051");
    assert_string_equal(t.remote_model, "");
    const retr_set_expert_info *in = retr_set_info(l, 1);
    assert_int_equal(in->kind, RETR_CALLBACK);
    assert_string_equal(in->file, "");
    assert_string_equal(in->remote_name, "dom1");
    assert_int_equal(router_n_pilots(retr_set_router(l), 1), 3); /* pilots matched by name */
    mr_arena arena;
    mr_arena_init(&arena, 1 << 16, 0);
    float *q = tr_randn(5, SQ, SD);
    for (int i = 0; i < SQ; i++) {
        q[i * SD + i % SDOM] += 4.0f;
        router_result r0, r1;
        ts_retrieve(f->set, q + i * SD, &arena, &r0);
        ts_retrieve(l, q + i * SD, &arena, &r1);
        assert_int_equal(r0.n, r1.n);
        for (int c = 0; c < r0.n; c++) {
            assert_int_equal(r0.cands[c].id, r1.cands[c].id);
            assert_true(r0.cands[c].score == r1.cands[c].score);
            assert_int_equal(r0.cands[c].expert, r1.cands[c].expert);
        }
    }
    mr_floats_free(q);
    mr_arena_free(&arena);
    /* save writes the entry back (no file), load reads it again */
    char dir2[600];
    snprintf(dir2, sizeof dir2, "%s/set2", f->tmp);
    if (retr_set_save(l, dir2, &e)) fail_msg("%s", e.msg);
    retr_set_free(l);
    l = NULL;
    if (retr_set_load_remote(&l, dir2, NULL, 0, ts_make_remote, &t, &e)) fail_msg("%s", e.msg);
    assert_int_equal(retr_set_info(l, 1)->kind, RETR_CALLBACK);
    assert_string_equal(retr_set_info(l, 1)->address, "10.1.2.3:50051");
    retr_set_free(l);
    l = NULL;
    ts_rm_set(dir2);
    /* without a factory: UNIMPLEMENTED naming the expert */
    assert_int_equal(retr_set_load(&l, f->dir, NULL, 0, &e), MR_EUNIMPL);
    assert_null(l);
    assert_non_null(strstr(e.msg, "remote expert"));
    /* a factory error names the expert and keeps its code */
    json_array_set_new(ex, 1,
                       json_pack("{s:s, s:s, s:s, s:s}", "name", "dom1", "kind", "remote",
                                 "address", "h:1", "remote_name", "gone"));
    assert_int_equal(json_dump_file(m, path, 0), 0);
    assert_int_equal(retr_set_load_remote(&l, f->dir, NULL, 0, ts_make_remote, &t, &e),
                     MR_ENOTFOUND);
    assert_non_null(strstr(e.msg, "expert dom1"));
    /* bad entries */
    const char *bad[][2] = {
        {"{\"name\":\"dom1\",\"kind\":\"remote\"}", "address"},
        {"{\"name\":\"dom1\",\"kind\":\"remote\",\"address\":\"\"}", "address"},
        {"{\"name\":\"dom1\",\"kind\":\"remote\",\"address\":\"h:1\",\"file\":\"x\"}",
         "unknown field \"file\""},
        {"{\"name\":\"dom1\",\"kind\":\"remote\",\"address\":\"h:1\",\"remote_name\":\"a b\"}",
         "remote_name"},
        {"{\"name\":\"dom1\",\"kind\":\"remote\",\"address\":7}", "must be a string"},
    };
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        json_array_set_new(ex, 1, json_loads(bad[b][0], 0, NULL));
        assert_int_equal(json_dump_file(m, path, 0), 0);
        int rc = retr_set_load_remote(&l, f->dir, NULL, 0, ts_make_remote, &t, &e);
        if (rc != MR_ECORRUPT || !strstr(e.msg, bad[b][1]))
            fail_msg("entry %zu: %d %s", b, rc, e.msg);
        assert_null(l);
    }
    json_decref(m);
    /* a callback expert goes through retr_set_add_remote only */
    retr_callbacks cb = {ts_cb_start, ts_cb_finish, ts_cb_size, NULL};
    mr_retr *r = NULL;
    assert_int_equal(retr_callback_create(&r, "far", SD, &cb, retr_set_expert_at(f->set, 0), &e),
                     0);
    assert_int_equal(retr_set_add(f->set, r, NULL, 0, 0, &e), MR_EINVAL);
    retr_set_remote spec = {"far", SD, "", "far", ""};
    assert_int_equal(retr_set_add_remote(f->set, r, &spec, &e), MR_EINVAL);
    spec.name = "other";
    spec.address = "h:1";
    assert_int_equal(retr_set_add_remote(f->set, r, &spec, &e), MR_EINVAL);
    retr_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_identical, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_mmap_load_is_read_only, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_save_replaces_existing, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_save_refuses_other_folders, ts_setup, ts_teardown),
        cmocka_unit_test(test_add_errors_leave_ownership),
        cmocka_unit_test_setup_teardown(test_bad_manifests, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_bad_expert_files, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_remote_experts, ts_setup, ts_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
