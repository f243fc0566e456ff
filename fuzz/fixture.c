/* fixture.c — see fixture.h. Aborting is right here: a fuzz process whose
 * fixture cannot be built has nothing to test. */
#include "fuzz/fixture.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "index/retrieval/retr_faiss.h"
#include "index/retrieval/retr_minhash.h"
#include "index/retrieval/retr_pop.h"
#include "index/retrieval/retr_set.h"
#include "moe/model.h"
#include "proto/moerec.pb-c.h"
#include "server/inproc.h"

const char fz_model_json[] =
    "{\"format\":\"moerec.model\",\"format_version\":1,\"name\":\"fz\","
    "\"tables\":[{\"name\":\"user\",\"rows\":64,\"dim\":4},{\"name\":\"item\",\"rows\":64,\"dim\":4},"
    "{\"name\":\"genre\",\"rows\":16,\"dim\":4,"
    "\"storage\":\"store\",\"encoding\":\"fp16\"}],"
    "\"features\":{\"categorical\":[{\"name\":\"user_id\",\"table\":\"user\"},"
    "{\"name\":\"item_id\",\"table\":\"item\"},{\"name\":\"genre\",\"table\":\"genre\"}],"
    "\"numeric\":[{\"name\":\"price\",\"mean\":10,\"std\":5,\"fill\":10}]},"
    "\"tasks\":[{\"name\":\"click\",\"weight\":1.0},{\"name\":\"like\",\"weight\":0.5}],"
    "\"arch\":{\"type\":\"mmoe\",\"experts\":3,\"expert_hidden\":[8],\"tower_hidden\":[4]}}";

static char g_dirs[8][64];
static int g_ndirs;
static mr_server *g_server;

static void fz_die(const char *what, const char *msg) {
    fprintf(stderr, "fuzz fixture: %s: %s\n", what, msg);
    abort();
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* Only the directories: the server stays up to the end (freeing it from
 * atexit races RocksDB's and gRPC's own static teardown). */
static void fz_cleanup(void) {
    for (int i = 0; i < g_ndirs; i++) nftw(g_dirs[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fz_tmpdir(void) {
    if (g_ndirs == 8) fz_die("tmpdir", "too many temp dirs");
    const char *base = getenv("TMPDIR");
    snprintf(g_dirs[g_ndirs], sizeof g_dirs[0], "%s/moerec-fuzz-XXXXXX",
             base && strlen(base) < 40 ? base : "/tmp");
    if (!mkdtemp(g_dirs[g_ndirs])) fz_die("mkdtemp", g_dirs[g_ndirs]);
    if (g_ndirs == 0) atexit(fz_cleanup);
    return g_dirs[g_ndirs++];
}

const char *fz_write(const char *dir, const char *name, const uint8_t *data, size_t n) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f)) fz_die("write", path);
    return path;
}

static void item_vec(int i, float *v) {
    for (int j = 0; j < FZ_DIM; j++) v[j] = (float)((i * 7 + j * 3) % 11) / 11.0f - 0.4f;
}

static void build_retrievers(const char *dir) {
    mr_err e = {0};
    retr_set *s = NULL;
    retr_set_config cfg = {.dim = FZ_DIM,
                           .metric = RETR_METRIC_IP,
                           .router = {.fallback = "popular", .top_p = 0.9f, .max_experts = 2}};
    if (retr_set_create(&s, &cfg, NULL, &e)) fz_die("retr_set_create", e.msg);
    retr_faiss_config c = {
        .name = "flat", .dim = FZ_DIM, .factory = "IDMap,Flat", .metric = RETR_METRIC_IP};
    mr_retr *r = NULL;
    if (retr_faiss_create(&r, &c, &e)) fz_die("retr_faiss_create", e.msg);
    float x[FZ_ITEMS * FZ_DIM];
    int64_t ids[FZ_ITEMS], ts[FZ_ITEMS];
    for (int i = 0; i < FZ_ITEMS; i++) {
        item_vec(i + 1, x + i * FZ_DIM);
        ids[i] = i + 1;
        ts[i] = 1000 + i;
    }
    if (retr_faiss_add(r, x, ids, FZ_ITEMS, &e)) fz_die("retr_faiss_add", e.msg);
    if (retr_set_add(s, r, "IDMap,Flat", 0, 0, &e) < 0) fz_die("retr_set_add", e.msg);
    mr_retr *pop = NULL;
    retr_pop_config pc = {.name = "popular", .half_life_s = 3600};
    if (retr_pop_create(&pop, &pc, &e) || retr_pop_add_events(pop, ids, ts, NULL, FZ_ITEMS, &e))
        fz_die("retr_pop", e.msg);
    if (retr_set_add(s, pop, NULL, 0, 0, &e) < 0) fz_die("retr_set_add", e.msg);
    mr_retr *mh = NULL;
    retr_minhash_config mc = {.name = "cooc", .seed = 3};
    int64_t us[FZ_ITEMS];
    for (int i = 0; i < FZ_ITEMS; i++) us[i] = i % 5;
    if (retr_minhash_create(&mh, &mc, &e) || retr_minhash_add(mh, us, ids, FZ_ITEMS, &e))
        fz_die("retr_minhash", e.msg);
    if (retr_set_add(s, mh, NULL, 0, 0, &e) < 0) fz_die("retr_set_add", e.msg);
    int best[FZ_ITEMS] = {0};
    if (router_build_pilots(retr_set_router(s), x, best, FZ_ITEMS, 2, &e))
        fz_die("router_build_pilots", e.msg);
    if (retr_set_save(s, dir, &e)) fz_die("retr_set_save", e.msg);
    retr_set_free(s);
}

/* Items 1..FZ_ITEMS with vectors and a genre, and a few events of user "u1",
 * through the handlers themselves. */
static void seed_store(mr_server *s) {
    Moerec__V1__UpsertItemsRequest up = MOEREC__V1__UPSERT_ITEMS_REQUEST__INIT;
    Moerec__V1__Item items[FZ_ITEMS], *ip[FZ_ITEMS];
    float vec[FZ_ITEMS][FZ_DIM];
    char id[FZ_ITEMS][16];
    for (int i = 0; i < FZ_ITEMS; i++) {
        moerec__v1__item__init(&items[i]);
        snprintf(id[i], sizeof id[i], "%d", i + 1);
        item_vec(i + 1, vec[i]);
        items[i].item_id = id[i];
        items[i].n_embedding = FZ_DIM;
        items[i].embedding = vec[i];
        ip[i] = &items[i];
    }
    up.n_items = FZ_ITEMS;
    up.items = ip;
    Moerec__V1__AppendEventsRequest ap = MOEREC__V1__APPEND_EVENTS_REQUEST__INIT;
    Moerec__V1__Event ev[5], *ep[5];
    for (int i = 0; i < 5; i++) {
        moerec__v1__event__init(&ev[i]);
        ev[i].user_id = "u1";
        ev[i].item_id = id[i * 3];
        ev[i].timestamp_ms = 1000 + i;
        ep[i] = &ev[i];
    }
    ap.n_events = 5;
    ap.events = ep;
    uint8_t buf[4096];
    mr_inproc_result res;
    mr_err e = {0};
    size_t n = moerec__v1__upsert_items_request__pack(&up, buf);
    if (mr_server_invoke(s, "/moerec.v1.Recommender/UpsertItems", buf, n, &res, &e) || res.status)
        fz_die("seed UpsertItems", res.msg[0] ? res.msg : e.msg);
    n = moerec__v1__append_events_request__pack(&ap, buf);
    if (mr_server_invoke(s, "/moerec.v1.Recommender/AppendEvents", buf, n, &res, &e) || res.status)
        fz_die("seed AppendEvents", res.msg[0] ? res.msg : e.msg);
}

const char *fz_retrievers_dir(void) {
    static char dir[128];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/retrievers", fz_tmpdir());
        build_retrievers(dir);
    }
    return dir;
}

uint8_t *fz_read(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) fz_die("read", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(len > 0 ? (size_t)len : 1);
    if (!b || (len > 0 && fread(b, 1, (size_t)len, f) != (size_t)len)) fz_die("read", path);
    fclose(f);
    *n = (size_t)len;
    return b;
}

void fz_dump_seed(const char *name, const uint8_t *prefix, size_t plen, const uint8_t *data,
                  size_t n) {
    const char *out = getenv("MOEREC_FUZZ_SEEDS_OUT");
    if (!out || !out[0]) return;
    uint8_t *b = malloc(plen + n + 1);
    if (!b) fz_die("seed", "out of memory");
    if (plen) memcpy(b, prefix, plen);
    if (n) memcpy(b + plen, data, n);
    fz_write(out, name, b, plen + n);
    free(b);
}

const char *fz_retrievers_copy(void) {
    static const char *names[] = {RETR_SET_MANIFEST, "flat.faiss",   "flat.faiss.meta",
                                  "popular.pop",     "cooc.minhash", RETR_SET_PILOTS};
    static const char *copy;
    if (copy) return copy;
    const char *src = fz_retrievers_dir();
    copy = fz_tmpdir();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", src, names[i]);
        size_t n;
        uint8_t *b = fz_read(p, &n);
        fz_write(copy, names[i], b, n);
        free(b);
    }
    return copy;
}

void fz_load_and_retrieve(const char *dir) {
    retr_set *s = NULL;
    mr_err e = {0};
    if (retr_set_load(&s, dir, NULL, RETR_SET_LOAD_OMP1, &e) != MR_OK) {
        if (!e.msg[0]) fz_die("retr_set_load", "error without a message");
        return;
    }
    int dim = retr_set_dim(s);
    float *q = calloc((size_t)(dim > 0 ? dim : 1), sizeof *q);
    if (!q) fz_die("retrieve", "out of memory");
    for (int j = 0; j < dim; j++) q[j] = (float)(j % 3) - 0.5f;
    int64_t recent[3] = {1, 4, 7};
    retr_user u = {recent, 3};
    router_query rq;
    memset(&rq, 0, sizeof rq);
    rq.vecs[0] = q;
    rq.dims[0] = dim;
    rq.n_spaces = 1;
    router_options opt;
    memset(&opt, 0, sizeof opt);
    opt.merge = -1;
    mr_arena a;
    mr_arena_init(&a, 16 * 1024, 64u << 20);
    router_result res;
    if (router_retrieve(retr_set_router(s), &rq, &u, 10, NULL, 0, &opt, &a, &res, &e) != MR_OK &&
        !e.msg[0])
        fz_die("router_retrieve", "error without a message");
    mr_arena_free(&a);
    free(q);
    retr_set_free(s);
}

void fz_invoke_check(const char *method, const uint8_t *req, size_t n) {
    mr_inproc_result res;
    mr_err e = {0};
    if (mr_server_invoke(fz_server(), method, req, n, &res, &e)) fz_die(method, e.msg);
    if (res.status < 0 || res.status > 16 || (res.status != 0 && !res.msg[0])) {
        fprintf(stderr, "%s: status %d without a message\n", method, res.status);
        abort();
    }
    if (getenv("MOEREC_FUZZ_VERBOSE")) fprintf(stderr, "status %d %s\n", res.status, res.msg);
}

mr_server *fz_server(void) {
    if (g_server) return g_server;
    mr_log_set_level(MR_LOG_OFF);
    const char *root = fz_tmpdir();
    char p[256];
    mr_err e = {0};
    snprintf(p, sizeof p, "%s/models", root);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/models/fz", root);
    mkdir(p, 0700);
    char version_dir[128];
    snprintf(version_dir, sizeof version_dir, "%s/models/fz/1", root);
    moe_model *m = NULL;
    if (moe_model_from_json(&m, fz_model_json, 7, &e)) fz_die("model", e.msg);
    if (moe_model_save(m, version_dir, &e)) fz_die("model save", e.msg);
    moe_model_free(m);
    snprintf(p, sizeof p, "%s/retrievers", version_dir);
    build_retrievers(p);
    mr_server_config cfg;
    mr_config_defaults(&cfg);
    snprintf(cfg.host, sizeof cfg.host, "127.0.0.1");
    cfg.port = 0;
    cfg.completion_queues = 1;
    cfg.retrieval_threads = 1;
    cfg.item_dim = FZ_DIM;
    cfg.store_sync = 0;
    cfg.cache_bytes = 1 << 20;
    snprintf(cfg.log_level, sizeof cfg.log_level, "off");
    snprintf(cfg.model_dir, sizeof cfg.model_dir, "%s/models", root);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s/db", root);
    if (mr_server_create(&cfg, &g_server, &e)) fz_die("server", e.msg);
    seed_store(g_server);
    return g_server;
}
